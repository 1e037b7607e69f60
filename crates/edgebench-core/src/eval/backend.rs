//! What an eval needs from a target: batched greedy chat generations and, where the target can,
//! log-likelihoods of continuations. The embedded engine and HTTP servers implement it; tests
//! use fakes.

use async_trait::async_trait;

use crate::backend::TargetInfo;

/// Generation settings for a batch.
#[derive(Debug, Clone)]
pub struct GenOptions {
    pub max_tokens: u32,
    /// Stop when the answer contains one of these (the stop text is cut off).
    pub stop: Vec<String>,
    pub seed: u64,
}

/// Why a backend failed as a whole (a failed item is an `Err` string in its slot instead).
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("{0}")]
    Failed(String),
}

/// A target that evals can use.
#[async_trait]
pub trait EvalBackend: Send + Sync {
    /// What the target is.
    fn info(&self) -> TargetInfo;

    /// Greedy answers to chat prompts that share the system message, in input order; a failed
    /// item is an `Err` with its reason.
    async fn generate(
        &self,
        system: &str,
        users: &[String],
        opts: &GenOptions,
    ) -> Result<Vec<Result<String, String>>, BackendError>;

    /// The log-likelihood of each continuation after the raw `context` (no chat template);
    /// `Ok(None)` when the target cannot score.
    async fn loglikelihoods(
        &self,
        context: &str,
        continuations: &[String],
    ) -> Result<Option<Vec<f64>>, BackendError>;
}
