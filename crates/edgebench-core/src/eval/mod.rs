//! Capability evaluations: datasets, prompts, answer mapping, scorers and the code sandbox; the
//! backend they run on is any [`crate::backend::Backend`].

pub mod answer;
pub mod data;
pub mod method;
pub mod sandbox;
pub mod score;
pub mod tasks;

pub use crate::results::eval::{Confusion, EvalSummary, ItemResult, SandboxReport, Score};
pub use tasks::{EvalError, TaskOptions, TaskOutcome};
