//! The raw record of one request: monotonic timestamps, token counts and errors, as measured.

use serde::{Deserialize, Serialize};

/// Where a record's token counts came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenCountSource {
    /// The embedded engine counted the tokens it decoded.
    Engine,
    /// The server's `usage` object.
    ServerUsage,
    /// The model's tokenizer, applied by edgebench to the text.
    Tokenizer,
    /// One token per streamed chunk (an estimate).
    Chunks,
}

impl TokenCountSource {
    /// The snake_case name used in files and summaries.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Engine => "engine",
            Self::ServerUsage => "server_usage",
            Self::Tokenizer => "tokenizer",
            Self::Chunks => "chunks",
        }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model emitted an end-of-generation token.
    Stop,
    /// The output-token limit was reached.
    Length,
    /// The request failed (see the record's error).
    Error,
    /// The run was interrupted.
    Cancelled,
}

impl FinishReason {
    /// The name used in summaries, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
            Self::Error => "error",
            Self::Cancelled => "cancelled",
        }
    }
}

/// The kind of a failed request, counted in the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The prompt and the output do not fit the context window.
    ContextOverflow,
    /// The model produced no token.
    NoOutput,
    /// The engine failed while decoding.
    Engine,
    /// The target could not be reached.
    Connect,
    /// The connection could not be set up in time (`--connect-timeout`).
    ConnectTimeout,
    /// No generated text arrived in time (`--first-token-timeout`).
    FirstTokenTimeout,
    /// The response did not complete in time (`--timeout`).
    Timeout,
    /// The server answered with an HTTP error status (or an error object in the stream).
    Http,
    /// HTTP 429: the server asked to slow down.
    RateLimited,
    /// The connection was lost before the response was complete.
    Disconnected,
    /// The server's stream could not be parsed.
    Protocol,
    /// The run was interrupted before the request finished.
    Cancelled,
}

impl ErrorKind {
    /// The snake_case name used in files and summaries.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ContextOverflow => "context_overflow",
            Self::NoOutput => "no_output",
            Self::Engine => "engine",
            Self::Connect => "connect",
            Self::ConnectTimeout => "connect_timeout",
            Self::FirstTokenTimeout => "first_token_timeout",
            Self::Timeout => "timeout",
            Self::Http => "http",
            Self::RateLimited => "rate_limited",
            Self::Disconnected => "disconnected",
            Self::Protocol => "protocol",
            Self::Cancelled => "cancelled",
        }
    }
}

/// A failed request's error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestError {
    pub kind: ErrorKind,
    pub message: String,
}

/// One arrival of generated text: a token from the engine, or a chunk from a server.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    /// Arrival time, ns on the run clock.
    pub t_ns: u64,
    /// Tokens the chunk carried.
    pub tokens: u32,
    /// True for reasoning ("thinking") text, false for answer text.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reasoning: bool,
}

/// The engine's or server's own timings for a request, stored beside the client's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineTimings {
    /// Who measured: "llama.cpp" for the embedded engine, "llama-server" for its `timings`.
    pub source: String,
    pub prompt_ms: f64,
    pub prompt_tokens: u64,
    pub decode_ms: f64,
    pub decode_tokens: u64,
}

/// Everything measured about one request. Timestamps are ns on the run's [`crate::clock::Clock`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// The request's sequence number in its unit (warm-ups first).
    pub index: u32,
    /// Warm-up requests are stored but left out of statistics.
    pub warmup: bool,
    /// A stable id of the prompt (so two runs of the same prompts can be paired).
    pub prompt_id: String,
    /// When the request was due: the send time in a closed loop, the arrival time under a rate.
    pub t_scheduled_ns: u64,
    /// When the request was handed to the target.
    pub t_sent_ns: u64,
    /// The first response byte (HTTP) or the first token (engine).
    pub t_first_byte_ns: Option<u64>,
    /// Every text-bearing arrival, in order.
    pub chunks: Vec<Chunk>,
    /// When the response was complete (or failed).
    pub t_end_ns: u64,
    /// Prompt tokens, as counted by `token_count_source`.
    pub prompt_tokens: Option<u64>,
    /// Generated tokens (answer and reasoning).
    pub output_tokens: u64,
    /// The part of `output_tokens` that was reasoning.
    #[serde(default)]
    pub reasoning_tokens: u64,
    pub token_count_source: TokenCountSource,
    pub finish_reason: FinishReason,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RequestError>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_timings: Option<EngineTimings>,
    /// The generated answer text (at most [`MAX_KEPT_TEXT_BYTES`] of it; see [`bounded_text`]).
    pub output_text: String,
}

/// The most answer text a record keeps: far beyond any answer a benchmark asks for, small enough
/// that a runaway response cannot fill the results files and the store.
pub const MAX_KEPT_TEXT_BYTES: usize = 256 << 10;

/// The text cut to at most [`MAX_KEPT_TEXT_BYTES`] (on a character boundary).
pub fn bounded_text(mut text: String) -> String {
    if text.len() > MAX_KEPT_TEXT_BYTES {
        let cut = (0..=MAX_KEPT_TEXT_BYTES)
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        text.truncate(cut);
        text.shrink_to_fit();
    }
    text
}

impl RequestRecord {
    /// A request sent at `t_sent_ns` that has nothing yet: no chunk, no token, no error, and
    /// `FinishReason::Error` until the target says how it ended.
    pub fn begin(
        index: u32,
        warmup: bool,
        prompt_id: String,
        t_scheduled_ns: u64,
        t_sent_ns: u64,
        token_count_source: TokenCountSource,
    ) -> Self {
        Self {
            index,
            warmup,
            prompt_id,
            t_scheduled_ns,
            t_sent_ns,
            t_first_byte_ns: None,
            chunks: Vec::new(),
            t_end_ns: t_sent_ns,
            prompt_tokens: None,
            output_tokens: 0,
            reasoning_tokens: 0,
            token_count_source,
            finish_reason: FinishReason::Error,
            error: None,
            engine_timings: None,
            output_text: String::new(),
        }
    }

    /// True when the request finished without an error.
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }
}
