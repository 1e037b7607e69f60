//! Capability evaluations: datasets, prompts, answer mapping, scorers and the code sandbox.

pub mod answer;
pub mod backend;
pub mod data;
pub mod http;
pub mod sandbox;
pub mod score;
pub mod summary;
pub mod tasks;

pub use backend::{BackendError, EvalBackend, GenOptions};
pub use summary::{Confusion, EvalSummary, SandboxReport, Score};
pub use tasks::{EvalError, ItemResult, TaskOptions, TaskOutcome};
