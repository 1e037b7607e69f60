//! The embedded engine as an edgebench target: turns generations into request records.

use async_trait::async_trait;
use std::time::Instant;

use edgebench_core::backend::{ChatMessage, GenRequest, Target, TargetError, TargetInfo};
use edgebench_core::clock::Clock;
use edgebench_core::record::{
    Chunk, EngineTimings, ErrorKind, FinishReason, RequestError, RequestRecord, TokenCountSource,
};

use crate::engine::{Engine, EngineConfig, EngineError, GenerateJob, Prompt, ENGINE_NAME};

/// The embedded llama.cpp engine with one model loaded.
pub struct LlamaTarget {
    engine: Engine,
    rss_after_load_mb: Option<f64>,
    /// Eval sequences decoded together per batch.
    parallel: usize,
}

impl LlamaTarget {
    /// Loads the model and records the process's memory right after.
    pub fn load(config: EngineConfig) -> Result<Self, EngineError> {
        let engine = Engine::load(config)?;
        let rss_after_load_mb = edgebench_core::monitor::rss_mb(std::process::id());
        Ok(Self {
            engine,
            rss_after_load_mb,
            parallel: 1,
        })
    }

    /// Decodes up to `n` eval sequences together per batch.
    pub fn with_parallel(mut self, n: usize) -> Self {
        self.parallel = n.max(1);
        self
    }

    /// Eval sequences decoded together per batch.
    pub fn parallel(&self) -> usize {
        self.parallel
    }

    /// The engine, for direct use (benchmarks, token counting).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

fn failed(mut r: RequestRecord, kind: ErrorKind, message: String, end: u64) -> RequestRecord {
    r.finish_reason = FinishReason::Error;
    r.error = Some(RequestError { kind, message });
    r.t_end_ns = end;
    r
}

#[async_trait]
impl Target for LlamaTarget {
    fn info(&self) -> TargetInfo {
        let i = self.engine.info();
        TargetInfo {
            kind: "embedded".into(),
            engine: ENGINE_NAME.into(),
            system_info: Some(i.system_info.clone()),
            threads: Some(i.threads),
            context_tokens: Some(i.n_ctx),
            model_load_ms: Some(i.model_load_ms),
            rss_after_load_mb: self.rss_after_load_mb,
            pid: Some(std::process::id()),
            launch: None,
            server: None,
        }
    }

    async fn count_prompt_tokens(
        &self,
        messages: &[ChatMessage],
    ) -> Result<Option<u64>, TargetError> {
        self.engine
            .count_tokens(Prompt::Chat(messages.to_vec()))
            .await
            .map(|n| Some(n as u64))
            .map_err(|e| TargetError::Tokenizer(e.to_string()))
    }

    fn context_tokens(&self) -> Option<u32> {
        Some(self.engine.info().n_ctx)
    }

    async fn reserve_context(&self, tokens: u32) -> Result<Option<u32>, TargetError> {
        self.engine
            .reserve_context(tokens)
            .await
            .map(Some)
            .map_err(|e| TargetError::Unavailable(e.to_string()))
    }

    async fn generate(&self, request: GenRequest, clock: &Clock) -> RequestRecord {
        let sent = Instant::now();
        let mut record = RequestRecord {
            index: request.index,
            warmup: request.warmup,
            prompt_id: request.prompt_id.clone(),
            t_scheduled_ns: clock.ns(request.scheduled),
            t_sent_ns: clock.ns(sent),
            t_first_byte_ns: None,
            chunks: Vec::new(),
            t_end_ns: 0,
            prompt_tokens: None,
            output_tokens: 0,
            reasoning_tokens: 0,
            token_count_source: TokenCountSource::Engine,
            finish_reason: FinishReason::Length,
            error: None,
            engine_timings: None,
            output_text: String::new(),
        };
        let job = GenerateJob {
            prompt: Prompt::Chat(request.messages),
            max_tokens: request.max_tokens,
            ignore_eos: request.ignore_eos,
            sampling: request.sampling,
            stream: None,
        };
        let g = match self.engine.generate(job).await {
            Ok(g) => g,
            Err(e) => {
                let kind = match e {
                    EngineError::ContextOverflow { .. } => ErrorKind::ContextOverflow,
                    _ => ErrorKind::Engine,
                };
                return failed(record, kind, e.to_string(), clock.now_ns());
            }
        };
        let end = clock.now_ns();
        record.prompt_tokens = Some(g.prompt_tokens as u64);
        record.chunks = g
            .token_times
            .iter()
            .map(|&t| Chunk {
                t_ns: clock.ns(t),
                tokens: 1,
                reasoning: false,
            })
            .collect();
        record.t_first_byte_ns = record.chunks.first().map(|c| c.t_ns);
        record.output_tokens = g.token_times.len() as u64;
        record.output_text = g.text;
        record.engine_timings = Some(EngineTimings {
            source: "llama.cpp".into(),
            prompt_ms: g.prompt_eval_ms,
            prompt_tokens: g.prompt_eval_tokens,
            decode_ms: g.decode_ms,
            decode_tokens: g.decode_tokens,
        });
        record.finish_reason = if g.cancelled {
            FinishReason::Cancelled
        } else if g.stopped {
            FinishReason::Stop
        } else {
            FinishReason::Length
        };
        record.t_end_ns = end;
        if g.cancelled {
            return failed(record, ErrorKind::Cancelled, "interrupted".into(), end);
        }
        if record.output_tokens == 0 {
            return failed(
                record,
                ErrorKind::NoOutput,
                "the first sampled token ended the generation".into(),
                end,
            );
        }
        record
    }
}
