//! Capability evaluations: datasets, prompts, answer mapping, scorers and the code sandbox.

pub mod answer;
pub mod backend;
pub mod data;
pub mod http;
pub mod sandbox;
pub mod score;
pub mod tasks;

pub use crate::results::eval::{Confusion, EvalSummary, ItemResult, SandboxReport, Score};
pub use backend::{BackendError, EvalBackend, GenOptions};
pub use tasks::{EvalError, TaskOptions, TaskOutcome};
