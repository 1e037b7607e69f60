//! Capability evaluations: datasets, prompts, answer mapping, scorers and the code sandbox.

pub mod summary;

pub use summary::{Confusion, EvalSummary, SandboxReport, Score};
