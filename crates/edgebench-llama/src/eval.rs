//! The embedded engine as an eval backend (its `Backend` methods): chat prompts that share a system message are decoded
//! with the shared prefix in the KV cache once and several sequences per llama.cpp batch.

use async_trait::async_trait;

use edgebench_core::backend::{Backend, BackendError, ChatMessage, GenOptions};

use crate::backend::LlamaTarget;
use crate::engine::SharedPrefixJob;

/// A marker that stands for the user's text while the chat template is rendered.
const MARK: &str = "\u{1}EDGEBENCH_USER_TEXT\u{1}";

fn failed(e: impl std::fmt::Display) -> BackendError {
    BackendError::Failed(e.to_string())
}

#[async_trait]
impl Backend for LlamaTarget {
    async fn generate_batch(
        &self,
        system: &str,
        users: &[String],
        opts: &GenOptions,
    ) -> Result<Vec<Result<String, String>>, BackendError> {
        let mut messages = Vec::new();
        if !system.is_empty() {
            messages.push(ChatMessage::new("system", system));
        }
        messages.push(ChatMessage::new("user", MARK));
        let rendered = self.engine().render_chat(messages).await.map_err(failed)?;
        let (prefix, tail) = rendered.split_once(MARK).ok_or_else(|| {
            failed("the chat template changed the user text; cannot share the prefix")
        })?;
        let job = SharedPrefixJob {
            prefix: prefix.to_string(),
            suffixes: users.iter().map(|u| format!("{u}{tail}")).collect(),
            max_tokens: opts.max_tokens,
            stop: opts.stop.clone(),
            parallel: self.parallel(),
            choices: opts.choices.clone(),
            temperature: opts.temperature as f32,
            seed: opts.seed,
        };
        let out = self
            .engine()
            .generate_shared_prefix(job)
            .await
            .map_err(failed)?;
        Ok(out.into_iter().map(Ok).collect())
    }

    async fn constraint(&self) -> Result<String, String> {
        Ok("llama.cpp grammar sampler".into())
    }

    async fn chat_context(&self, system: &str, user: &str) -> Result<Option<String>, BackendError> {
        let mut messages = Vec::new();
        if !system.is_empty() {
            messages.push(ChatMessage::new("system", system));
        }
        messages.push(ChatMessage::new("user", user));
        self.engine()
            .render_chat(messages)
            .await
            .map(Some)
            .map_err(failed)
    }

    async fn loglikelihoods(
        &self,
        context: &str,
        continuations: &[String],
    ) -> Result<Option<Vec<f64>>, BackendError> {
        self.engine()
            .loglikelihoods(context.to_string(), continuations.to_vec())
            .await
            .map(Some)
            .map_err(failed)
    }
}
