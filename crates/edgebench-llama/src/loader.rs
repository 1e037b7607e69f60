//! The embedded engine as the experiment's engine loader: loads a model on the engine thread,
//! for generation or for evals, sharing the experiment's cancellation token.

use async_trait::async_trait;

use edgebench_core::backend::Target;
use edgebench_core::catalog::ModelInfo;
use edgebench_core::eval::EvalBackend;
use edgebench_core::experiment::{CancelFlag, EngineLoader, EngineSpec};

use crate::{EngineConfig, LlamaEvalBackend, LlamaTarget, ENGINE_NAME};

/// Loads models into llama.cpp.
#[derive(Debug, Default, Clone, Copy)]
pub struct LlamaLoader;

impl LlamaLoader {
    async fn load(
        model: &ModelInfo,
        spec: &EngineSpec,
        cancel: &CancelFlag,
    ) -> Result<LlamaTarget, String> {
        let mut cfg = EngineConfig::new(&model.path, spec.threads);
        cfg.n_ctx = spec.ctx_size;
        cfg.verbose = spec.verbose;
        cfg.cancel = Some(cancel.flag());
        tokio::task::spawn_blocking(move || LlamaTarget::load(cfg))
            .await
            .map_err(|e| format!("engine thread: {e}"))?
            .map_err(|e| e.to_string())
    }
}

#[async_trait]
impl EngineLoader for LlamaLoader {
    async fn load_target(
        &self,
        model: &ModelInfo,
        spec: &EngineSpec,
        cancel: &CancelFlag,
    ) -> Result<Box<dyn Target>, String> {
        Ok(Box::new(Self::load(model, spec, cancel).await?))
    }

    async fn load_eval(
        &self,
        model: &ModelInfo,
        spec: &EngineSpec,
        cancel: &CancelFlag,
    ) -> Result<Box<dyn EvalBackend>, String> {
        let t = Self::load(model, spec, cancel).await?;
        Ok(Box::new(LlamaEvalBackend::new(t, spec.parallel.max(1))))
    }

    fn engine_name(&self) -> String {
        ENGINE_NAME.into()
    }
}
