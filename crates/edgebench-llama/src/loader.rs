//! The embedded engine as the experiment's engine loader: loads a model on the engine thread,
//! for generation or for evals, sharing the experiment's cancellation token.

use async_trait::async_trait;

use edgebench_core::backend::Backend;
use edgebench_core::catalog::ModelInfo;
use edgebench_core::experiment::{CancelFlag, EngineLoader, EngineSpec, QuantizeJob};

use crate::{EngineConfig, LlamaTarget, ENGINE_NAME};

/// Loads models into llama.cpp.
#[derive(Debug, Default, Clone, Copy)]
pub struct LlamaLoader;

impl LlamaLoader {
    async fn open(
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
    async fn load(
        &self,
        model: &ModelInfo,
        spec: &EngineSpec,
        cancel: &CancelFlag,
    ) -> Result<Box<dyn Backend>, String> {
        let t = Self::open(model, spec, cancel).await?;
        Ok(Box::new(t.with_parallel(spec.parallel)))
    }

    fn engine_name(&self) -> String {
        ENGINE_NAME.into()
    }

    async fn quantize(&self, job: &QuantizeJob) -> Result<(), String> {
        let job = job.clone();
        tokio::task::spawn_blocking(move || crate::quantize::quantize(&job))
            .await
            .map_err(|e| format!("quantize thread: {e}"))?
    }
}
