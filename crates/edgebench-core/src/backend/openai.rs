//! The OpenAI-compatible HTTP target (LM Studio, llama-server, Ollama, vLLM, TGI): streaming
//! `chat/completions` or `completions` over SSE, each chunk stamped when its bytes arrive.

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
}

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

/// What the stream said so far.
#[derive(Debug, Default)]
struct StreamState {
    chunks: Vec<Chunk>,
    text: String,
    /// Thinking-model reasoning deltas (kept apart from the answer).
    reasoning_text: String,
    done: bool,
    finish: Option<String>,
    usage_prompt: Option<u64>,
    usage_completion: Option<u64>,
    usage_reasoning: Option<u64>,
    timings: Option<EngineTimings>,
    error: Option<RequestError>,
    /// The `model` field of the chunks: the model the server answered with.
    model: Option<String>,
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// A JSON string, borrowed from the event's text when it has no escapes (serde borrows a `Cow`
/// only when it is the field's own type, not inside an `Option`).
#[derive(Debug, Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

/// One stream chunk as servers send it, read straight from the event's text (the hot path; no
/// `Value` tree per chunk). `usage`, `timings` and `error` come once per stream and stay JSON
/// values.
#[derive(Debug, Default, Deserialize)]
struct WireChunk<'a> {
    #[serde(borrow, default)]
    model: Option<Text<'a>>,
    #[serde(default)]
    error: Option<Value>,
    #[serde(borrow, default)]
    choices: Option<Vec<WireChoice<'a>>>,
    #[serde(default)]
    usage: Option<Value>,
    #[serde(default)]
    timings: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
struct WireChoice<'a> {
    #[serde(borrow, default)]
    delta: Option<WireDelta<'a>>,
    /// The `completions` API's text.
    #[serde(borrow, default)]
    text: Option<Text<'a>>,
    #[serde(borrow, default)]
    finish_reason: Option<Text<'a>>,
}

#[derive(Debug, Default, Deserialize)]
struct WireDelta<'a> {
    #[serde(borrow, default)]
    content: Option<Text<'a>>,
    #[serde(borrow, default)]
    reasoning_content: Option<Text<'a>>,
    #[serde(borrow, default)]
    reasoning: Option<Text<'a>>,
}

impl WireChunk<'static> {
    /// The lenient reading of a chunk whose fields have unexpected types (a number where text
    /// was expected, say): what is not text is ignored, as if absent.
    fn from_value(v: &Value) -> Self {
        let text =
            |x: &Value, key: &str| str_field(x, key).map(|s| Text(Cow::Owned(s.to_string())));
        let choices = v.get("choices").and_then(Value::as_array).map(|a| {
            a.iter()
                .map(|c| WireChoice {
                    delta: c.get("delta").map(|d| WireDelta {
                        content: text(d, "content"),
                        reasoning_content: text(d, "reasoning_content"),
                        reasoning: text(d, "reasoning"),
                    }),
                    text: text(c, "text"),
                    finish_reason: text(c, "finish_reason"),
                })
                .collect()
        });
        Self {
            model: text(v, "model"),
            error: v.get("error").filter(|e| !e.is_null()).cloned(),
            choices,
            usage: v.get("usage").cloned(),
            timings: v.get("timings").cloned(),
        }
    }
}

/// Text that is there and not empty.
fn some_text<'a>(x: &'a Option<Text<'_>>) -> Option<&'a str> {
    x.as_ref().map(|t| t.0.as_ref()).filter(|s| !s.is_empty())
}

impl StreamState {
    /// Applies one SSE event that arrived at `t_ns`.
    fn event(&mut self, e: &SseEvent, t_ns: u64, api: Api) {
        let data = e.data.trim();
        if data == "[DONE]" {
            self.done = true;
            return;
        }
        if data.is_empty() {
            return;
        }
        // Only objects take the typed path: serde would also read a JSON array into the struct,
        // field by field in order.
        let typed = data
            .starts_with('{')
            .then(|| serde_json::from_str::<WireChunk<'_>>(data).ok())
            .flatten();
        match typed {
            Some(w) => self.apply(&w, t_ns, api),
            None => match serde_json::from_str::<Value>(data) {
                Ok(v) => self.apply(&WireChunk::from_value(&v), t_ns, api),
                Err(err) => {
                    self.error.get_or_insert(RequestError {
                        kind: ErrorKind::Protocol,
                        message: format!("malformed JSON in a stream chunk: {err}"),
                    });
                }
            },
        }
    }

    fn apply(&mut self, w: &WireChunk<'_>, t_ns: u64, api: Api) {
        if let Some(err) = &w.error {
            let msg = err
                .get("message")
                .and_then(Value::as_str)
                .map_or_else(|| err.to_string(), str::to_string);
            self.error.get_or_insert(RequestError {
                kind: ErrorKind::Http,
                message: format!("server error in the stream: {msg}"),
            });
            return;
        }
        if self.model.is_none() {
            self.model = some_text(&w.model).map(str::to_string);
        }
        if let Some(choice) = w.choices.as_ref().and_then(|c| c.first()) {
            let (answer, reasoning) = match (api, &choice.delta) {
                (Api::Chat, Some(d)) => (
                    some_text(&d.content),
                    some_text(&d.reasoning_content).or_else(|| some_text(&d.reasoning)),
                ),
                (Api::Chat, None) => (None, None),
                (Api::Completions, _) => (some_text(&choice.text), None),
            };
            if let Some(r) = reasoning {
                self.chunks.push(Chunk {
                    t_ns,
                    tokens: 1,
                    reasoning: true,
                });
                self.reasoning_text.push_str(r);
            }
            if let Some(a) = answer {
                self.chunks.push(Chunk {
                    t_ns,
                    tokens: 1,
                    reasoning: false,
                });
                self.text.push_str(a);
            }
            if let Some(f) = some_text(&choice.finish_reason) {
                self.finish = Some(f.to_string());
            }
        }
        if let Some(u) = w.usage.as_ref().filter(|u| u.is_object()) {
            self.usage_prompt = u.get("prompt_tokens").and_then(Value::as_u64);
            self.usage_completion = u.get("completion_tokens").and_then(Value::as_u64);
            self.usage_reasoning = u
                .get("completion_tokens_details")
                .and_then(|d| d.get("reasoning_tokens"))
                .and_then(Value::as_u64);
        }
        if let Some(t) = w.timings.as_ref().filter(|t| t.is_object()) {
            let f = |k: &str| t.get(k).and_then(Value::as_f64);
            if let (Some(pm), Some(pn), Some(dm), Some(dn)) = (
                f("prompt_ms"),
                f("prompt_n"),
                f("predicted_ms"),
                f("predicted_n"),
            ) {
                self.timings = Some(EngineTimings {
                    source: "llama-server".into(),
                    prompt_ms: pm,
                    prompt_tokens: pn as u64,
                    decode_ms: dm,
                    decode_tokens: dn as u64,
                });
            }
        }
    }
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
            let entry = v.get("data").and_then(Value::as_array).and_then(|a| {
                a.iter()
                    .find(|m| str_field(m, "id") == Some(&self.cfg.model))
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

/// Aborts a spawned task when dropped (a join handle alone would let it run on).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> AbortOnDrop<T> {
    async fn join(mut self) -> Result<T, tokio::task::JoinError> {
        (&mut self.0).await
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Sends one streaming request and reads its events, stamping each read when its bytes arrive;
/// returns the record and the model id the stream named.
async fn stream_request(
    cfg: std::sync::Arc<HttpConfig>,
    client: reqwest::Client,
    request: GenRequest,
    clock: Clock,
) -> (RequestRecord, Option<String>) {
    let clock = &clock;
    let body = request_body(&cfg, &request);
    let path = match cfg.api {
        Api::Chat => "chat/completions",
        Api::Completions => "completions",
    };
    let sent = Instant::now();
    let mut record = RequestRecord::begin(
        request.index,
        request.warmup,
        request.prompt_id,
        clock.ns(request.scheduled),
        clock.ns(sent),
        TokenCountSource::Chunks,
    );
    let deadline = sent + cfg.total_timeout;
    let first_deadline = sent + cfg.first_token_timeout.min(cfg.total_timeout);
    let fail = |mut r: RequestRecord, kind, message: String| {
        r.t_end_ns = clock.now_ns();
        r.finish_reason = FinishReason::Error;
        r.error = Some(RequestError { kind, message });
        (r, None)
    };
    let rb = cfg.auth(client.post(cfg.url(path))).json(&body);
    let resp = match tokio::time::timeout_at(first_deadline.into(), rb.send()).await {
        Err(_) => {
            return fail(
                record,
                ErrorKind::FirstTokenTimeout,
                format!(
                    "no response within {:.1} s",
                    cfg.first_token_timeout.as_secs_f64()
                ),
            )
        }
        Ok(Err(e)) => return fail(record, error_kind(&e), describe(&e)),
        Ok(Ok(r)) => r,
    };
    let status = resp.status();
    if !status.is_success() {
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        // The error body gets what is left of the total timeout, not forever.
        let text = tokio::time::timeout_at(deadline.into(), resp.text())
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        let short: String = text.chars().take(300).collect();
        let kind = if status.as_u16() == 429 {
            ErrorKind::RateLimited
        } else {
            ErrorKind::Http
        };
        let retry = retry_after.map_or_else(String::new, |r| format!(" (Retry-After: {r})"));
        return fail(record, kind, format!("HTTP {status}{retry}: {short}"));
    }
    // A server that ignores `stream: true` answers with one JSON document.
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("application/json") {
        return fail(
            record,
            ErrorKind::Protocol,
            format!("the server answered with {content_type}, not an event stream: it does not stream this request"),
        );
    }
    let mut stream = resp.bytes_stream();
    let mut parser = SseParser::new();
    let mut events = Vec::new();
    let mut st = StreamState::default();
    // One timer for the whole stream, moved from the first-token deadline to the total one
    // when the first text arrives (not a new timer per read).
    let timer = tokio::time::sleep_until(first_deadline.into());
    tokio::pin!(timer);
    loop {
        let next = tokio::select! {
            biased;
            n = stream.next() => n,
            () = &mut timer => {
                let (what, kind, limit) = if st.chunks.is_empty() {
                    ("no token", ErrorKind::FirstTokenTimeout, first_deadline)
                } else {
                    ("response not complete", ErrorKind::Timeout, deadline)
                };
                let waited = limit.saturating_duration_since(sent).as_secs_f64();
                st.error.get_or_insert(RequestError {
                    kind,
                    message: format!("{what} within {waited:.1} s"),
                });
                break;
            }
        };
        match next {
            None => {
                parser.finish(&mut events);
                let t = clock.now_ns();
                for e in events.drain(..) {
                    st.event(&e, t, cfg.api);
                }
                break;
            }
            Some(Err(e)) => {
                st.error.get_or_insert(RequestError {
                    kind: ErrorKind::Disconnected,
                    message: format!("connection lost mid-stream: {}", describe(&e)),
                });
                break;
            }
            Some(Ok(bytes)) => {
                // Stamp the arrival before any parsing.
                let t = clock.now_ns();
                record.t_first_byte_ns.get_or_insert(t);
                let had_text = !st.chunks.is_empty();
                parser.push(&bytes, &mut events);
                for e in events.drain(..) {
                    st.event(&e, t, cfg.api);
                }
                if st.done || st.error.is_some() {
                    break;
                }
                if !had_text && !st.chunks.is_empty() {
                    timer.as_mut().reset(deadline.into());
                }
            }
        }
    }
    record.t_end_ns = clock.now_ns();
    record.prompt_tokens = st.usage_prompt;
    let reasoning_chunks = st.chunks.iter().filter(|c| c.reasoning).count() as u64;
    match st.usage_completion {
        Some(n) => {
            record.output_tokens = n;
            record.reasoning_tokens = st.usage_reasoning.unwrap_or(reasoning_chunks);
            record.token_count_source = TokenCountSource::ServerUsage;
        }
        None => match &cfg.tokenizer {
            Some(t) => {
                record.reasoning_tokens = t.count(&st.reasoning_text);
                record.output_tokens = t.count(&st.text) + record.reasoning_tokens;
                record.token_count_source = TokenCountSource::Tokenizer;
            }
            None => {
                record.output_tokens = st.chunks.iter().map(|c| u64::from(c.tokens)).sum();
                record.reasoning_tokens = reasoning_chunks;
                record.token_count_source = TokenCountSource::Chunks;
            }
        },
    }
    record.chunks = st.chunks;
    record.output_text = st.text;
    record.engine_timings = st.timings;
    record.finish_reason = match st.finish.as_deref() {
        Some("length") => FinishReason::Length,
        Some(_) => FinishReason::Stop,
        None if st.done => FinishReason::Stop,
        None => FinishReason::Error,
    };
    if let Some(e) = st.error {
        record.finish_reason = FinishReason::Error;
        record.error = Some(e);
    } else if !st.done && st.finish.is_none() {
        record.finish_reason = FinishReason::Error;
        record.error = Some(RequestError {
            kind: ErrorKind::Disconnected,
            message: "the stream ended without a finish reason or [DONE]".into(),
        });
    } else if record.chunks.is_empty() {
        record.finish_reason = FinishReason::Error;
        record.error = Some(RequestError {
            kind: ErrorKind::NoOutput,
            message: "the response carried no generated text".into(),
        });
    }
    (record, st.model)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::mock_server::{MockServer, Response, Step};
    use crate::backend::Sampling;
    use std::sync::{Arc, Mutex};

    fn req(ignore_eos: bool) -> GenRequest {
        GenRequest {
            index: 3,
            warmup: false,
            prompt_id: "p".into(),
            messages: vec![
                ChatMessage::new("system", "s"),
                ChatMessage::new("user", "hello"),
            ],
            max_tokens: 8,
            ignore_eos,
            sampling: Sampling::default(),
            scheduled: Instant::now(),
        }
    }

    async fn run(steps: Vec<Step>) -> RequestRecord {
        let server = MockServer::start(move |_| Response::sse(steps.clone()))
            .await
            .unwrap();
        let t = OpenAiTarget::new(HttpConfig::new(server.base_url(), "m")).unwrap();
        t.generate(req(false), &Clock::new()).await
    }

    fn finish(reason: &str) -> Step {
        Step::data(&json!({"choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}))
    }

    fn usage(p: u64, c: u64) -> Step {
        Step::data(
            &json!({"choices": [], "usage": {"prompt_tokens": p, "completion_tokens": c,
            "completion_tokens_details": {"reasoning_tokens": 2}}}),
        )
    }

    #[tokio::test]
    async fn odd_field_types_are_ignored_not_fatal_and_escapes_are_decoded() {
        let r = run(vec![
            // Not text where text is expected: ignored, as if absent.
            Step::data(&json!({"model": 7, "choices": [{"delta": {"content": 5, "role": "assistant"}}]})),
            Step::data(&json!({"choices": [{"delta": {"content": ["a"]}, "finish_reason": false}]})),
            Step::data(&json!({"choices": "none", "error": null})),
            // An array is not a chunk (read as a struct, serde would fill fields in order).
            Step::data(&json!(["m", {"message": "x"}, [{"delta": {"content": "no"}}]])),
            // Escaped text cannot be borrowed from the event; it is decoded all the same.
            Step::content("\"q\"\n\u{e9}"),
            Step::data(&json!({"model": "m-served", "choices": [{"delta": {"content": "!"}, "finish_reason": "length"}]})),
            Step::done(),
        ])
        .await;
        assert!(r.ok(), "{:?}", r.error);
        assert_eq!(r.output_text, "\"q\"\n\u{e9}!");
        assert_eq!(r.chunks.len(), 2);
        assert_eq!(r.finish_reason, FinishReason::Length);
    }

    #[tokio::test]
    async fn role_only_and_empty_deltas_do_not_count_and_usage_wins() {
        let r = run(vec![
            Step::data(&json!({"choices": [{"delta": {"role": "assistant"}}]})),
            Step::Sleep(Duration::from_millis(30)),
            Step::data(&json!({"choices": [{"delta": {"content": ""}}]})),
            Step::data(&json!({"choices": [{"delta": {"reasoning_content": "hmm"}}]})),
            Step::data(&json!({"choices": [{"delta": {"reasoning": "so"}}]})),
            Step::content("Hel"),
            Step::content("lo"),
            finish("stop"),
            usage(11, 6),
            Step::done(),
        ])
        .await;
        assert!(r.ok(), "{:?}", r.error);
        assert_eq!(r.output_text, "Hello");
        assert_eq!(r.chunks.len(), 4);
        assert_eq!(r.chunks.iter().filter(|c| c.reasoning).count(), 2);
        assert_eq!(r.output_tokens, 6);
        assert_eq!(r.reasoning_tokens, 2);
        assert_eq!(r.prompt_tokens, Some(11));
        assert_eq!(r.token_count_source, TokenCountSource::ServerUsage);
        assert_eq!(r.finish_reason, FinishReason::Stop);
        // The role-only chunk is the first byte; the first token came 30 ms later.
        let first_byte = r.t_first_byte_ns.unwrap();
        assert!(r.chunks[0].t_ns >= first_byte + 25_000_000);
        let m = crate::metrics::derive(&r);
        assert!(m.first_answer_ms.unwrap() >= m.ttft_ms.unwrap());
    }

    #[tokio::test]
    async fn without_usage_tokens_are_counted_as_chunks() {
        let r = run(vec![
            Step::content("a"),
            Step::content("b"),
            finish("length"),
            Step::done(),
        ])
        .await;
        assert!(r.ok());
        assert_eq!(r.output_tokens, 2);
        assert_eq!(r.token_count_source, TokenCountSource::Chunks);
        assert_eq!(r.finish_reason, FinishReason::Length);
    }

    /// A tokenizer that counts characters.
    #[derive(Debug)]
    struct CharCounter;

    impl crate::backend::TokenCounter for CharCounter {
        fn count(&self, text: &str) -> u64 {
            text.chars().count() as u64
        }
        fn name(&self) -> String {
            "chars".into()
        }
    }

    #[tokio::test]
    async fn without_usage_a_given_tokenizer_counts_and_usage_still_wins() {
        let steps = vec![
            Step::data(&json!({"choices": [{"delta": {"reasoning_content": "hmm"}}]})),
            Step::content("hello"),
            Step::content(" you"),
            finish("stop"),
            Step::done(),
        ];
        let server = MockServer::start(move |_| Response::sse(steps.clone()))
            .await
            .unwrap();
        let mut cfg = HttpConfig::new(server.base_url(), "m");
        cfg.tokenizer = Some(Arc::new(CharCounter));
        let t = OpenAiTarget::new(cfg).unwrap();
        let r = t.generate(req(false), &Clock::new()).await;
        assert_eq!(r.token_count_source, TokenCountSource::Tokenizer);
        assert_eq!(r.output_tokens, 12, "9 answer + 3 reasoning characters");
        assert_eq!(r.reasoning_tokens, 3);

        let with_usage = vec![Step::content("hello"), usage(4, 1), Step::done()];
        let server = MockServer::start(move |_| Response::sse(with_usage.clone()))
            .await
            .unwrap();
        let mut cfg = HttpConfig::new(server.base_url(), "m");
        cfg.tokenizer = Some(Arc::new(CharCounter));
        let r = OpenAiTarget::new(cfg)
            .unwrap()
            .generate(req(false), &Clock::new())
            .await;
        assert_eq!(r.token_count_source, TokenCountSource::ServerUsage);
        assert_eq!(r.output_tokens, 1);
    }

    #[tokio::test]
    async fn llama_server_timings_are_kept() {
        let r = run(vec![
            Step::content("x"),
            Step::data(&json!({"choices": [{"delta": {}, "finish_reason": "stop"}],
                "timings": {"prompt_n": 20, "prompt_ms": 10.0, "predicted_n": 1, "predicted_ms": 5.0,
                            "predicted_per_second": 200.0}})),
            Step::done(),
        ])
        .await;
        let t = r.engine_timings.unwrap();
        assert_eq!(
            (t.source.as_str(), t.prompt_tokens, t.decode_tokens),
            ("llama-server", 20, 1)
        );
    }

    #[tokio::test]
    async fn events_split_and_joined_across_reads_with_comments_crlf_and_utf8() {
        let two = "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\r\n\r\n\
                   : keep-alive\r\n\r\n\
                   data: {\"choices\":[{\"delta\":{\"content\":\"\u{e9}\"}}]}\r\n\r\n";
        let bytes = two.as_bytes();
        let cut = two.find('\u{e9}').unwrap() + 1; // inside the two-byte character
        let r = run(vec![
            Step::Bytes(bytes[..7].to_vec()),
            Step::Bytes(bytes[7..cut].to_vec()),
            Step::Bytes(bytes[cut..].to_vec()),
            Step::Bytes(b"data: {\"choices\":[{\"delta\":{\"content\":\"z\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n".to_vec()),
        ])
        .await;
        assert!(r.ok(), "{:?}", r.error);
        assert_eq!(r.output_text, "a\u{e9}z");
        assert_eq!(r.chunks.len(), 3);
        // The first two tokens arrived in different reads, the last two in the same one.
        assert!(r.chunks[1].t_ns >= r.chunks[0].t_ns);
    }

    #[tokio::test]
    async fn a_server_that_never_sends_done_is_fine_when_it_finished() {
        let r = run(vec![Step::content("a"), finish("stop")]).await;
        assert!(r.ok(), "{:?}", r.error);
        let r = run(vec![Step::content("a")]).await;
        assert_eq!(r.error.unwrap().kind, ErrorKind::Disconnected);
    }

    #[tokio::test]
    async fn errors_mid_stream_keep_what_was_measured() {
        let r = run(vec![
            Step::content("a"),
            Step::data(&json!({"error": {"message": "out of memory"}})),
        ])
        .await;
        let e = r.error.clone().unwrap();
        assert_eq!(e.kind, ErrorKind::Http);
        assert!(e.message.contains("out of memory"));
        assert_eq!(r.chunks.len(), 1);

        let r = run(vec![Step::content("a"), Step::content("b"), Step::Cut]).await;
        assert_eq!(r.error.unwrap().kind, ErrorKind::Disconnected);
        assert_eq!(r.chunks.len(), 2);

        let r = run(vec![
            Step::content("a"),
            Step::Bytes(b"data: {not json\n\n".to_vec()),
        ])
        .await;
        assert_eq!(r.error.unwrap().kind, ErrorKind::Protocol);

        let r = run(vec![finish("stop"), Step::done()]).await;
        assert_eq!(r.error.unwrap().kind, ErrorKind::NoOutput);
    }

    #[tokio::test]
    async fn http_errors_rate_limits_refusals_and_timeouts() {
        let server = MockServer::start(|r| {
            if r.body["model"] == "busy" {
                let mut resp = Response::json(429, &json!({"error": "slow down"}));
                resp.headers.push(("Retry-After".into(), "7".into()));
                resp
            } else if r.body["model"] == "stalls" {
                Response::sse(vec![
                    Step::content("a"),
                    Step::Sleep(Duration::from_secs(5)),
                ])
            } else if r.body["model"] == "stuck-body" {
                let mut resp = Response::json(503, &json!({"error": "x"}));
                resp.steps = vec![
                    Step::Bytes(b"{\"error\": ".to_vec()),
                    Step::Sleep(Duration::from_secs(5)),
                ];
                resp
            } else if r.body["model"] == "no-stream" {
                Response::json(200, &json!({"choices": [{"message": {"content": "hi"}}]}))
            } else if r.body["model"] == "slow" {
                Response::sse(vec![
                    Step::Sleep(Duration::from_millis(400)),
                    Step::content("late"),
                ])
            } else {
                Response::json(500, &json!({"error": "boom"}))
            }
        })
        .await
        .unwrap();
        let clock = Clock::new();
        let t = OpenAiTarget::new(HttpConfig::new(server.base_url(), "m")).unwrap();
        let r = t.generate(req(false), &clock).await;
        let e = r.error.unwrap();
        assert_eq!(e.kind, ErrorKind::Http);
        assert!(
            e.message.contains("500") && e.message.contains("boom"),
            "{}",
            e.message
        );

        let t = OpenAiTarget::new(HttpConfig::new(server.base_url(), "busy")).unwrap();
        let e = t.generate(req(false), &clock).await.error.unwrap();
        assert_eq!(e.kind, ErrorKind::RateLimited);
        assert!(e.message.contains("Retry-After: 7"), "{}", e.message);

        let mut cfg = HttpConfig::new(server.base_url(), "slow");
        cfg.first_token_timeout = Duration::from_millis(100);
        let r = OpenAiTarget::new(cfg)
            .unwrap()
            .generate(req(false), &clock)
            .await;
        let e = r.error.unwrap();
        assert_eq!(e.kind, ErrorKind::FirstTokenTimeout);
        assert!(ms_between_ok(r.t_sent_ns, r.t_end_ns, 90.0, 350.0));

        // A total timeout after the first token is a timeout of its own kind.
        let mut cfg = HttpConfig::new(server.base_url(), "stalls");
        cfg.total_timeout = Duration::from_millis(250);
        let r = OpenAiTarget::new(cfg)
            .unwrap()
            .generate(req(false), &clock)
            .await;
        assert_eq!(r.error.as_ref().unwrap().kind, ErrorKind::Timeout, "{r:?}");
        assert_eq!(r.chunks.len(), 1);
        assert!(ms_between_ok(r.t_sent_ns, r.t_end_ns, 200.0, 600.0));

        // An error whose body never ends fails at the total timeout, not never.
        let mut cfg = HttpConfig::new(server.base_url(), "stuck-body");
        cfg.total_timeout = Duration::from_millis(300);
        let r = OpenAiTarget::new(cfg)
            .unwrap()
            .generate(req(false), &clock)
            .await;
        assert_eq!(r.error.as_ref().unwrap().kind, ErrorKind::Http, "{r:?}");
        assert!(ms_between_ok(r.t_sent_ns, r.t_end_ns, 250.0, 1500.0));

        // A server that ignores `stream: true`.
        let t = OpenAiTarget::new(HttpConfig::new(server.base_url(), "no-stream")).unwrap();
        let e = t.generate(req(false), &clock).await.error.unwrap();
        assert_eq!(e.kind, ErrorKind::Protocol);
        assert!(e.message.contains("not an event stream"), "{}", e.message);

        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let t =
            OpenAiTarget::new(HttpConfig::new(format!("http://127.0.0.1:{port}/v1"), "m")).unwrap();
        assert_eq!(
            t.generate(req(false), &clock).await.error.unwrap().kind,
            ErrorKind::Connect
        );
        assert!(t
            .list_models()
            .await
            .unwrap_err()
            .to_string()
            .contains(&port.to_string()));
    }

    fn ms_between_ok(a: u64, b: u64, lo: f64, hi: f64) -> bool {
        let ms = crate::clock::ms_between(a, b);
        ms >= lo && ms <= hi
    }

    #[tokio::test]
    async fn request_body_headers_apis_and_model_list() {
        let seen: Arc<Mutex<Vec<crate::backend::mock_server::Request>>> = Arc::default();
        let s2 = seen.clone();
        let server = MockServer::start(move |r| {
            s2.lock().unwrap().push(r.clone());
            if r.path.ends_with("/models") {
                return Response::json(200, &json!({"data": [{"id": "a"}, {"id": "b"}]}));
            }
            Response::sse(vec![
                Step::data(&json!({"choices": [{"text": "done", "finish_reason": "stop"}]})),
                Step::done(),
            ])
        })
        .await
        .unwrap();
        let mut cfg = HttpConfig::new(server.base_url(), "m");
        cfg.api = Api::Completions;
        cfg.api_key = Some("sekret".into());
        let t = OpenAiTarget::new(cfg).unwrap();
        assert_eq!(t.list_models().await.unwrap(), ["a", "b"]);
        let r = t.generate(req(true), &Clock::new()).await;
        assert!(r.ok(), "{:?}", r.error);
        assert_eq!(r.output_text, "done");
        let seen = seen.lock().unwrap();
        let post = &seen[1];
        assert_eq!(post.path, "/v1/completions");
        assert_eq!(post.body["prompt"], "s\n\nhello");
        assert_eq!(post.body["stream"], true);
        assert_eq!(post.body["stream_options"]["include_usage"], true);
        assert_eq!(post.body["ignore_eos"], true);
        assert_eq!(post.body["max_tokens"], 8);
        assert!(post
            .headers
            .iter()
            .any(|(k, v)| k == "authorization" && v == "Bearer sekret"));
    }

    #[test]
    fn endpoints_resolve_aliases_and_reject_garbage() {
        assert_eq!(
            resolve_endpoint("lmstudio").unwrap(),
            "http://localhost:1234/v1"
        );
        assert_eq!(
            resolve_endpoint("vllm").unwrap(),
            "http://localhost:8000/v1"
        );
        assert_eq!(
            resolve_endpoint("ollama").unwrap(),
            "http://localhost:11434/v1"
        );
        assert_eq!(resolve_endpoint("http://h:9/v1/").unwrap(), "http://h:9/v1");
        assert!(resolve_endpoint("nonsense")
            .unwrap_err()
            .to_string()
            .contains("nonsense"));
        assert!(resolve_endpoint("ftp://h/v1").is_err());
    }

    #[tokio::test]
    async fn the_model_a_server_answers_with_is_recorded() {
        let server = MockServer::start(|_| {
            Response::sse(vec![
                Step::data(&json!({"model": "other-model", "choices": [{"index": 0, "delta": {"content": "x"}}]})),
                finish("stop"),
                Step::done(),
            ])
        })
        .await
        .unwrap();
        let t = OpenAiTarget::new(HttpConfig::new(server.base_url(), "asked-for")).unwrap();
        assert!(t.generate(req(false), &Clock::new()).await.ok());
        assert_eq!(t.served_models(), ["other-model"]);
        assert_eq!(
            t.info().server.unwrap().served_models,
            ["other-model".to_string()]
        );
    }

    #[tokio::test]
    async fn connections_are_opened_ahead_with_concurrent_model_lists() {
        let gets = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = gets.clone();
        let server = MockServer::start(move |r| {
            if r.method == "GET" && r.path == "/v1/models" {
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            Response::json(200, &json!({"data": [{"id": "m"}]}))
        })
        .await
        .unwrap();
        let t = OpenAiTarget::new(HttpConfig::new(server.base_url(), "m")).unwrap();
        assert_eq!(t.open_connections(8).await, 8);
        assert_eq!(gets.load(std::sync::atomic::Ordering::SeqCst), 8);
        assert_eq!(t.open_connections(0).await, 0);
        // Nothing listening: nothing opened, no error.
        let gone = OpenAiTarget::new(HttpConfig::new("http://127.0.0.1:9/v1", "m")).unwrap();
        assert_eq!(gone.open_connections(3).await, 0);
    }

    #[tokio::test]
    async fn probes_server_versions_and_lm_studio_model_facts() {
        let server = MockServer::start(|r| match r.path.as_str() {
            "/props" => Response::json(200, &json!({"build_info": "b6500-abc"})),
            _ => Response::json(404, &json!({"error": "no"})),
        })
        .await
        .unwrap();
        let t = OpenAiTarget::new(HttpConfig::new(server.base_url(), "m")).unwrap();
        let f = t.probe().await;
        assert_eq!(f.version.as_deref(), Some("llama-server b6500-abc"));
        assert_eq!(f.version_source.as_deref(), Some("GET /props"));
        assert_eq!(f.format, None);

        let server = MockServer::start(|r| match r.path.as_str() {
            "/version" => Response::json(200, &json!({"version": "0.11.0"})),
            _ => Response::json(404, &json!({"error": "no"})),
        })
        .await
        .unwrap();
        let t = OpenAiTarget::new(HttpConfig::new(server.base_url(), "m")).unwrap();
        assert_eq!(t.probe().await.version.as_deref(), Some("vLLM 0.11.0"));

        let server = MockServer::start(|r| match r.path.as_str() {
            "/api/v0/models" => Response::json(
                200,
                &json!({"data": [
                    {"id": "qwen3-8b", "compatibility_type": "mlx", "quantization": "4bit", "state": "loaded"},
                    {"id": "other", "compatibility_type": "gguf", "quantization": "Q4_K_M", "state": "not-loaded"}
                ]}),
            ),
            _ => Response::json(404, &json!({"error": "no"})),
        })
        .await
        .unwrap();
        let t = OpenAiTarget::new(HttpConfig::new(server.base_url(), "qwen3-8b")).unwrap();
        let f = t.probe().await;
        assert_eq!(f.format.as_deref(), Some("MLX"));
        assert_eq!(f.quantization.as_deref(), Some("4bit"));
        assert_eq!(f.loaded, Some(true));
        assert_eq!(f.version.as_deref(), Some("LM Studio"));
        assert_eq!(
            t.info().server.unwrap().quantization.as_deref(),
            Some("4bit")
        );
    }
}
