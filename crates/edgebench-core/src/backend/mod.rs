//! Backends: what edgebench measures and evaluates (the embedded engine, an OpenAI-compatible
//! server, a mock), behind one abstraction: [`Target`] for measured generation, and
//! [`Backend`] on top of it for evals (batched greedy answers and log-likelihoods).

pub mod managed;
pub mod mock;
pub mod mock_server;
pub mod openai;
pub mod server_metrics;
pub mod sse;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::time::Instant;

use crate::clock::Clock;
use crate::record::RequestRecord;

/// A chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    /// A message with the given role.
    pub fn new(role: &str, content: impl Into<String>) -> Self {
        Self {
            role: role.to_string(),
            content: content.into(),
        }
    }
}

/// Sampling settings (the seeds' defaults: temperature 0, top-p 1, seed 42).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    /// 0 means greedy decoding.
    pub temperature: f32,
    pub top_p: f32,
    /// 0 disables top-k.
    pub top_k: i32,
    /// 1.0 disables the penalty.
    pub repeat_penalty: f32,
    pub seed: u64,
}

impl Default for Sampling {
    fn default() -> Self {
        Self {
            temperature: 0.0,
            top_p: 1.0,
            top_k: 0,
            repeat_penalty: 1.0,
            seed: 42,
        }
    }
}

/// One generation request.
#[derive(Debug, Clone)]
pub struct GenRequest {
    pub index: u32,
    pub warmup: bool,
    pub prompt_id: String,
    pub messages: Vec<ChatMessage>,
    pub max_tokens: u32,
    /// Keep generating past end-of-generation tokens until `max_tokens`.
    pub ignore_eos: bool,
    pub sampling: Sampling,
    /// When the request was due (latency counts from here).
    pub scheduled: Instant,
}

/// What a target says about itself, recorded with the results.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TargetInfo {
    /// "embedded", "http", "mock".
    pub kind: String,
    /// The engine or server and its version, e.g. "llama.cpp (llama-cpp-sys-2 0.1.161)".
    pub engine: String,
    /// The engine's system/feature line (llama.cpp's system info), when it has one.
    pub system_info: Option<String>,
    /// Threads used for decoding, when the target controls them.
    pub threads: Option<u32>,
    /// Context window in tokens.
    pub context_tokens: Option<u32>,
    /// Model load time in ms (cold start), when the target loaded the model.
    pub model_load_ms: Option<f64>,
    /// Resident memory of the serving process right after the model loaded, MB.
    pub rss_after_load_mb: Option<f64>,
    /// The process whose memory is sampled during the run.
    pub pid: Option<u32>,
    /// A managed server's command and cold start (see `--serve`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch: Option<managed::LaunchFacts>,
    /// What an HTTP server says about itself: version, the model it answers as, its format and
    /// quantization where it tells them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerFacts>,
}

/// What an OpenAI-compatible server reports about itself (each field where it says so).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerFacts {
    /// The server's name and version, e.g. "llama-server b6500" or "vLLM 0.11.0".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Where the version came from (`GET /props`, `/version`, `/api/version`, `/info`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_source: Option<String>,
    /// The model ids the server's responses named (the `model` field of the stream).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub served_models: Vec<String>,
    /// Format and quantization of the requested model as the server reports them (LM Studio's
    /// `GET /api/v0/models`), and whether it is loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loaded: Option<bool>,
}

/// Counts the tokens of a text with a model's tokenizer (for servers that send no `usage`).
pub trait TokenCounter: Send + Sync + std::fmt::Debug {
    /// Tokens of `text`, without special tokens added.
    fn count(&self, text: &str) -> u64;
    /// What the tokenizer is (a file name), for the results.
    fn name(&self) -> String;
}

/// Errors a target can report outside a request (requests fail as data, not as errors).
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("{0}")]
    Unavailable(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
}

/// Something that generates text and can be measured.
#[async_trait]
pub trait Target: Send + Sync {
    /// Facts about the target for the results.
    fn info(&self) -> TargetInfo;

    /// Tokens the rendered prompt of `messages` takes, when the target can tell.
    async fn count_prompt_tokens(
        &self,
        messages: &[ChatMessage],
    ) -> Result<Option<u64>, TargetError>;

    /// The largest context window the target offers, when known.
    fn context_tokens(&self) -> Option<u32>;

    /// Sizes the target's context for requests of up to `tokens` tokens (prompt plus output),
    /// when it controls its context (the embedded engine does, as llama-bench does per test);
    /// returns the size in use, or `None` when the target does not size its context.
    async fn reserve_context(&self, tokens: u32) -> Result<Option<u32>, TargetError> {
        let _ = tokens;
        Ok(None)
    }

    /// Runs one request. Never fails: a failed request comes back as a record with its error.
    async fn generate(&self, request: GenRequest, clock: &Clock) -> RequestRecord;

    /// Opens up to `n` connections ahead of a load phase so its requests do not pay for
    /// connection set-up all at once (HTTP targets); returns how many answered. Nothing to do
    /// for in-process targets.
    async fn open_connections(&self, n: usize) -> usize {
        let _ = n;
        0
    }
}

/// Generation settings for a batch of eval prompts.
#[derive(Debug, Clone)]
pub struct GenOptions {
    pub max_tokens: u32,
    /// Stop when the answer contains one of these (the stop text is cut off).
    pub stop: Vec<String>,
    pub seed: u64,
    /// When not empty, the answer can only be one of these (constrained generation; see
    /// [`Backend::constraint`]).
    pub choices: Vec<String>,
    /// 0: greedy. Above 0: sampled at this temperature with top-p 0.95, the i-th prompt of a
    /// batch seeded with `seed + i`.
    pub temperature: f64,
}

impl GenOptions {
    /// The seed of the `i`-th prompt of a batch.
    pub fn seed_of(&self, i: usize) -> u64 {
        self.seed.wrapping_add(i as u64)
    }
}

/// Why a backend failed as a whole (a failed item is an `Err` string in its slot instead).
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("{0}")]
    Failed(String),
}

/// The one backend abstraction: a [`Target`] that also answers evals. The embedded engine and
/// the OpenAI-compatible client implement both methods with their own fast paths (a shared
/// prompt prefix in the KV cache; concurrent requests and `logprobs`); by default answers are
/// generated one streamed request at a time and log-likelihoods are not available.
#[async_trait]
pub trait Backend: Target {
    /// Greedy answers to chat prompts that share the system message, in input order; a failed
    /// item is an `Err` with its reason.
    async fn generate_batch(
        &self,
        system: &str,
        users: &[String],
        opts: &GenOptions,
    ) -> Result<Vec<Result<String, String>>, BackendError> {
        if !opts.choices.is_empty() {
            return Err(BackendError::Failed(
                self.constraint().await.err().unwrap_or_else(|| {
                    "this target cannot constrain answers to a list of choices".into()
                }),
            ));
        }
        let clock = Clock::new();
        let mut out = Vec::with_capacity(users.len());
        for (i, user) in users.iter().enumerate() {
            let mut messages = Vec::new();
            if !system.is_empty() {
                messages.push(ChatMessage::new("system", system));
            }
            messages.push(ChatMessage::new("user", user.clone()));
            let request = GenRequest {
                index: u32::try_from(i).unwrap_or(u32::MAX),
                warmup: false,
                prompt_id: format!("item{i}"),
                messages,
                max_tokens: opts.max_tokens,
                ignore_eos: false,
                sampling: Sampling {
                    seed: opts.seed_of(i),
                    temperature: opts.temperature as f32,
                    top_p: if opts.temperature > 0.0 { 0.95 } else { 1.0 },
                    ..Sampling::default()
                },
                scheduled: Instant::now(),
            };
            let r = self.generate(request, &clock).await;
            out.push(match r.error {
                Some(e) => Err(e.message),
                None => Ok(cut_at_stop(r.output_text, &opts.stop)),
            });
        }
        Ok(out)
    }

    /// How this backend keeps an answer to a list of choices (named with the results, e.g.
    /// "llama.cpp grammar sampler"), or why it cannot.
    async fn constraint(&self) -> Result<String, String> {
        Err("this target has no way to constrain answers to a list of choices".into())
    }

    /// The raw text the model reads before its answer to a chat of `system` and `user` (the chat
    /// template applied), for log-likelihood scoring; `Ok(None)` when the backend cannot tell.
    async fn chat_context(&self, system: &str, user: &str) -> Result<Option<String>, BackendError> {
        let _ = (system, user);
        Ok(None)
    }

    /// The log-likelihood of each continuation after the raw `context` (no chat template);
    /// `Ok(None)` when the backend cannot score.
    async fn loglikelihoods(
        &self,
        context: &str,
        continuations: &[String],
    ) -> Result<Option<Vec<f64>>, BackendError> {
        let _ = (context, continuations);
        Ok(None)
    }
}

/// `text` up to the first stop string (not included).
pub fn cut_at_stop(mut text: String, stop: &[String]) -> String {
    for s in stop.iter().filter(|s| !s.is_empty()) {
        if let Some(k) = text.find(s.as_str()) {
            text.truncate(k);
        }
    }
    text
}
