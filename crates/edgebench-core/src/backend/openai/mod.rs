//! The OpenAI-compatible HTTP target (LM Studio, llama-server, Ollama, vLLM, TGI): streaming
//! `chat/completions` or `completions` over SSE, each chunk stamped when its bytes arrive.

mod eval;
mod stream;
mod wire;

use stream::*;
use wire::*;

use async_trait::async_trait;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::borrow::Cow;
use std::time::{Duration, Instant};

use super::sse::{SseEvent, SseParser};
use super::{ChatMessage, GenRequest, ServerFacts, Target, TargetError, TargetInfo};
use crate::clock::Clock;
use crate::record::{
    Chunk, EngineTimings, ErrorKind, FinishReason, RequestError, RequestRecord, TokenCountSource,
};

/// Which OpenAI API to call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Api {
    /// `POST /chat/completions` with messages (the server applies the chat template).
    Chat,
    /// `POST /completions` with a plain prompt.
    Completions,
}

/// Known local servers and their default base URLs.
pub const ALIASES: &[(&str, &str)] = &[
    ("lmstudio", "http://localhost:1234/v1"),
    ("llama-server", "http://localhost:8080/v1"),
    ("ollama", "http://localhost:11434/v1"),
    ("vllm", "http://localhost:8000/v1"),
    ("tgi", "http://localhost:8080/v1"),
];

/// Turns `--endpoint` into a base URL: an alias, or an http(s) URL (trailing `/` removed).
pub fn resolve_endpoint(endpoint: &str) -> Result<String, TargetError> {
    if let Some((_, url)) = ALIASES
        .iter()
        .find(|(a, _)| a.eq_ignore_ascii_case(endpoint))
    {
        return Ok((*url).to_string());
    }
    let url = reqwest::Url::parse(endpoint).map_err(|e| {
        TargetError::Unavailable(format!(
            "--endpoint {endpoint:?} is neither a URL nor one of {}: {e}",
            ALIASES
                .iter()
                .map(|(a, _)| *a)
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(TargetError::Unavailable(format!(
            "--endpoint {endpoint:?}: only http and https URLs are supported"
        )));
    }
    Ok(endpoint.trim_end_matches('/').to_string())
}

/// How to reach and use the server.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub base_url: String,
    pub api_key: Option<String>,
    /// The model id sent in requests.
    pub model: String,
    pub api: Api,
    pub connect_timeout: Duration,
    /// From the send to the first response chunk.
    pub first_token_timeout: Duration,
    /// From the send to the end of the response.
    pub total_timeout: Duration,
    /// Send `ignore_eos` when a scenario asks for fixed output lengths (vLLM, llama-server and
    /// TGI honour it; strict OpenAI servers reject unknown fields).
    pub send_ignore_eos: bool,
    /// The server's context window, when the user states it.
    pub context_tokens: Option<u32>,
    /// The serving process, for memory sampling.
    pub server_pid: Option<u32>,
    /// Counts output tokens when the server sends no `usage` (else chunks are counted).
    pub tokenizer: Option<std::sync::Arc<dyn super::TokenCounter>>,
    /// Eval requests in flight at once (`eval --concurrency`).
    pub eval_concurrency: usize,
    /// The most bytes one event of a stream may hold before the request fails as `protocol`.
    pub max_event_bytes: usize,
    /// The most bytes one response may hold before the request fails as `protocol`.
    pub max_response_bytes: usize,
}

/// The default cap on one stream event: no real server's chunk comes near it.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1 << 20;
/// The default cap on one response.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 64 << 20;

impl HttpConfig {
    /// Defaults for a base URL and model id.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            api_key: None,
            model: model.into(),
            api: Api::Chat,
            connect_timeout: Duration::from_secs(10),
            first_token_timeout: Duration::from_secs(120),
            total_timeout: Duration::from_secs(600),
            send_ignore_eos: true,
            context_tokens: None,
            server_pid: None,
            tokenizer: None,
            eval_concurrency: 4,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }

    /// `{base_url}/{path}`.
    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base_url)
    }

    /// The request with the API key, when there is one.
    fn auth(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.api_key {
            Some(k) => rb.bearer_auth(k),
            None => rb,
        }
    }
}

/// A server speaking the OpenAI API.
pub struct OpenAiTarget {
    cfg: std::sync::Arc<HttpConfig>,
    client: reqwest::Client,
    /// What the server said about itself ([`OpenAiTarget::probe`]) and the model ids its
    /// responses named.
    facts: std::sync::Mutex<ServerFacts>,
}

/// Builds the JSON body of a streaming request.
pub fn request_body(cfg: &HttpConfig, r: &GenRequest) -> Value {
    let mut body = json!({
        "model": cfg.model,
        "max_tokens": r.max_tokens,
        "stream": true,
        "stream_options": {"include_usage": true},
        "temperature": r.sampling.temperature,
        "top_p": r.sampling.top_p,
        "seed": r.sampling.seed,
    });
    match cfg.api {
        Api::Chat => body["messages"] = json!(r.messages),
        Api::Completions => {
            let prompt: Vec<&str> = r.messages.iter().map(|m| m.content.as_str()).collect();
            body["prompt"] = json!(prompt.join("\n\n"));
        }
    }
    if r.sampling.top_k > 0 {
        body["top_k"] = json!(r.sampling.top_k);
    }
    if (r.sampling.repeat_penalty - 1.0).abs() > f32::EPSILON {
        body["repetition_penalty"] = json!(r.sampling.repeat_penalty);
    }
    if r.ignore_eos && cfg.send_ignore_eos {
        body["ignore_eos"] = json!(true);
    }
    body
}

impl OpenAiTarget {
    /// A target for the configured server (no request is sent yet).
    pub fn new(cfg: HttpConfig) -> Result<Self, TargetError> {
        let client = reqwest::Client::builder()
            .connect_timeout(cfg.connect_timeout)
            .tcp_nodelay(true)
            .pool_max_idle_per_host(1024)
            .build()
            .map_err(|e| TargetError::Unavailable(e.to_string()))?;
        Ok(Self {
            cfg: std::sync::Arc::new(cfg),
            client,
            facts: std::sync::Mutex::default(),
        })
    }

    /// The server root (the base URL without its `/v1`).
    fn root(&self) -> &str {
        self.cfg
            .base_url
            .strip_suffix("/v1")
            .unwrap_or(&self.cfg.base_url)
    }

    /// A GET of `url` answered with JSON, within the connect timeout plus 5 s.
    async fn get_json(&self, url: &str) -> Option<Value> {
        let resp = self
            .cfg
            .auth(self.client.get(url))
            .timeout(self.cfg.connect_timeout + Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        if !resp.status().is_success() {
            return None;
        }
        resp.json().await.ok()
    }

    /// Asks the server what it is and what it serves: its version (llama-server `GET /props`,
    /// vLLM `GET /version`, Ollama `GET /api/version`, TGI `GET /info`) and, from LM Studio's
    /// `GET /api/v0/models`, the requested model's format, quantization and whether it is
    /// loaded. Anything a server does not answer stays unknown; the facts go into
    /// [`Target::info`].
    pub async fn probe(&self) -> ServerFacts {
        let root = self.root().to_string();
        let mut f = ServerFacts::default();
        if let Some(v) = self.get_json(&format!("{root}/props")).await {
            let build = v.get("build_info").and_then(Value::as_str);
            if let Some(b) = build {
                f.version = Some(format!("llama-server {b}"));
                f.version_source = Some("GET /props".into());
            }
        }
        if f.version.is_none() {
            for (path, name) in [
                ("version", "vLLM"),
                ("api/version", "Ollama"),
                ("info", "TGI"),
            ] {
                let Some(v) = self.get_json(&format!("{root}/{path}")).await else {
                    continue;
                };
                if let Some(ver) = v.get("version").and_then(Value::as_str) {
                    let who = if path == "info" && v.get("model_id").is_none() {
                        "server"
                    } else {
                        name
                    };
                    f.version = Some(format!("{who} {ver}"));
                    f.version_source = Some(format!("GET /{path}"));
                    break;
                }
            }
        }
        if let Some(v) = self.get_json(&format!("{root}/api/v0/models")).await {
            // Both builds of a model can be listed under one id: the loaded one is the one served.
            let entry = v.get("data").and_then(Value::as_array).and_then(|a| {
                let mine = || {
                    a.iter()
                        .filter(|m| str_field(m, "id") == Some(&self.cfg.model))
                };
                mine()
                    .find(|m| str_field(m, "state") == Some("loaded"))
                    .or_else(|| mine().next())
            });
            if let Some(m) = entry {
                f.format = str_field(m, "compatibility_type").map(str::to_ascii_uppercase);
                f.quantization = str_field(m, "quantization").map(str::to_string);
                f.loaded = str_field(m, "state").map(|s| s == "loaded");
                if f.version.is_none() {
                    f.version = Some("LM Studio".into());
                    f.version_source = Some("GET /api/v0/models".into());
                }
            }
        }
        if let Ok(mut g) = self.facts.lock() {
            let served = std::mem::take(&mut g.served_models);
            *g = ServerFacts {
                served_models: served,
                ..f.clone()
            };
        }
        f
    }

    /// The model ids the server's responses named so far.
    pub fn served_models(&self) -> Vec<String> {
        self.facts
            .lock()
            .map(|g| g.served_models.clone())
            .unwrap_or_default()
    }

    fn saw_model(&self, model: Option<String>) {
        let Some(m) = model else { return };
        if let Ok(mut g) = self.facts.lock() {
            if !g.served_models.contains(&m) {
                g.served_models.push(m);
            }
        }
    }

    /// The pre-flight "model is responding" check: one non-streamed chat completion of one
    /// token, before any warm-up; its time, or why it failed (HTTP status and the start of the
    /// body), naming the URL.
    pub async fn ping(&self, timeout: Duration) -> Result<Duration, TargetError> {
        let url = self.cfg.url("chat/completions");
        let body = serde_json::json!({
            "model": self.cfg.model,
            "messages": [{"role": "user", "content": "Reply with OK."}],
            "max_tokens": 1,
            "stream": false,
        });
        let t = std::time::Instant::now();
        let resp = self
            .cfg
            .auth(self.client.post(&url))
            .json(&body)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| TargetError::Unavailable(format!("{url}: {}", describe(&e))))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        // A JSON completion, or an event stream from a server that streams regardless.
        let answered = text.contains("\"choices\"");
        if !status.is_success() || !answered {
            let head: String = text.chars().take(200).collect();
            return Err(TargetError::Unavailable(format!(
                "{url}: HTTP {status}, {}",
                if head.is_empty() {
                    "empty body".to_string()
                } else {
                    head
                }
            )));
        }
        Ok(t.elapsed())
    }

    /// The model ids the server lists at `GET /models` (also a health check).
    pub async fn list_models(&self) -> Result<Vec<String>, TargetError> {
        let url = self.cfg.url("models");
        let resp = self
            .cfg
            .auth(self.client.get(&url))
            .timeout(self.cfg.connect_timeout + Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| TargetError::Unavailable(format!("{url}: {}", describe(&e))))?;
        if !resp.status().is_success() {
            return Err(TargetError::Unavailable(format!(
                "{url}: HTTP {}",
                resp.status()
            )));
        }
        let v: Value = resp
            .json()
            .await
            .map_err(|e| TargetError::Unavailable(format!("{url}: {e}")))?;
        Ok(v.get("data")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|m| m.get("id").and_then(Value::as_str).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The configuration.
    pub fn config(&self) -> &HttpConfig {
        &self.cfg
    }
}

/// A reqwest error in words, with its cause (connection refused, timed out ...).
fn describe(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// The kind of a failed send: connect errors (refused, unreachable) and connect timeouts are
/// told apart from a connection lost later.
fn error_kind(e: &reqwest::Error) -> ErrorKind {
    match (e.is_connect(), e.is_timeout()) {
        (true, true) => ErrorKind::ConnectTimeout,
        (true, false) => ErrorKind::Connect,
        (false, true) => ErrorKind::Timeout,
        (false, false) => ErrorKind::Disconnected,
    }
}

#[async_trait]
impl Target for OpenAiTarget {
    fn info(&self) -> TargetInfo {
        TargetInfo {
            kind: "http".into(),
            engine: format!("OpenAI-compatible server at {}", self.cfg.base_url),
            context_tokens: self.cfg.context_tokens,
            pid: self.cfg.server_pid,
            server: self
                .facts
                .lock()
                .ok()
                .map(|g| g.clone())
                .filter(|f| *f != ServerFacts::default()),
            ..TargetInfo::default()
        }
    }

    async fn count_prompt_tokens(
        &self,
        _messages: &[ChatMessage],
    ) -> Result<Option<u64>, TargetError> {
        Ok(None)
    }

    fn context_tokens(&self) -> Option<u32> {
        self.cfg.context_tokens
    }

    /// `n` concurrent `GET /models`, read to the end: each leaves a kept-alive connection in
    /// the client's pool for the measured requests to take.
    async fn open_connections(&self, n: usize) -> usize {
        let url = self.cfg.url("models");
        let one = || async {
            let resp = self
                .cfg
                .auth(self.client.get(&url))
                .timeout(self.cfg.connect_timeout + Duration::from_secs(5))
                .send()
                .await
                .ok()?;
            resp.bytes().await.ok().map(|_| ())
        };
        futures_util::future::join_all((0..n).map(|_| one()))
            .await
            .into_iter()
            .flatten()
            .count()
    }

    /// The request runs as a task of its own, so its chunks are stamped as they arrive however
    /// the caller polls (a runner polling hundreds of streams and committing finished ones to
    /// its store in one task would otherwise hold every other stream's stamp back). Dropping the
    /// returned future (Ctrl-C) aborts the task.
    async fn generate(&self, request: GenRequest, clock: &Clock) -> RequestRecord {
        let (index, warmup, prompt_id) = (request.index, request.warmup, request.prompt_id.clone());
        let scheduled_ns = clock.ns(request.scheduled);
        let task = AbortOnDrop(tokio::spawn(stream_request(
            self.cfg.clone(),
            self.client.clone(),
            request,
            *clock,
        )));
        match task.join().await {
            Ok((record, model)) => {
                self.saw_model(model);
                record
            }
            // A panic in the request's task is a bug: it reaches the caller, as it did before
            // the request ran as a task of its own.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => {
                let now = clock.now_ns();
                let mut r = RequestRecord::begin(
                    index,
                    warmup,
                    prompt_id,
                    scheduled_ns,
                    now,
                    TokenCountSource::Chunks,
                );
                r.error = Some(RequestError {
                    kind: ErrorKind::Protocol,
                    message: format!("the request's task ended abnormally: {e}"),
                });
                r
            }
        }
    }
}

#[cfg(test)]
mod tests;
