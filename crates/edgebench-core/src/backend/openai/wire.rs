//! The chunks of a streamed completion: typed parsing with a lenient fallback, and the state
//! a stream accumulates (text, token counts, finish reason, usage, server timings).

use super::*;

/// What the stream said so far.
#[derive(Debug, Default)]
pub(super) struct StreamState {
    pub(super) chunks: Vec<Chunk>,
    pub(super) text: String,
    /// Thinking-model reasoning deltas (kept apart from the answer).
    pub(super) reasoning_text: String,
    pub(super) done: bool,
    pub(super) finish: Option<String>,
    pub(super) usage_prompt: Option<u64>,
    pub(super) usage_completion: Option<u64>,
    pub(super) usage_reasoning: Option<u64>,
    pub(super) timings: Option<EngineTimings>,
    pub(super) error: Option<RequestError>,
    /// The `model` field of the chunks: the model the server answered with.
    pub(super) model: Option<String>,
}

pub(super) fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// A JSON string, borrowed from the event's text when it has no escapes (serde borrows a `Cow`
/// only when it is the field's own type, not inside an `Option`).
#[derive(Debug, Deserialize)]
pub(super) struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

/// One stream chunk as servers send it, read straight from the event's text (the hot path; no
/// `Value` tree per chunk). `usage`, `timings` and `error` come once per stream and stay JSON
/// values.
#[derive(Debug, Default, Deserialize)]
pub(super) struct WireChunk<'a> {
    #[serde(borrow, default)]
    pub(super) model: Option<Text<'a>>,
    #[serde(default)]
    pub(super) error: Option<Value>,
    #[serde(borrow, default)]
    pub(super) choices: Option<Vec<WireChoice<'a>>>,
    #[serde(default)]
    pub(super) usage: Option<Value>,
    #[serde(default)]
    pub(super) timings: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct WireChoice<'a> {
    #[serde(borrow, default)]
    pub(super) delta: Option<WireDelta<'a>>,
    /// The `completions` API's text.
    #[serde(borrow, default)]
    pub(super) text: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(super) finish_reason: Option<Text<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct WireDelta<'a> {
    #[serde(borrow, default)]
    pub(super) content: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(super) reasoning_content: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(super) reasoning: Option<Text<'a>>,
}

impl WireChunk<'static> {
    /// The lenient reading of a chunk whose fields have unexpected types (a number where text
    /// was expected, say): what is not text is ignored, as if absent.
    pub(super) fn from_value(v: &Value) -> Self {
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

/// The message of an `event: error`: its JSON's `message` (or `error.message`, or `error` as
/// text), else the data itself, shortened.
pub(super) fn error_message(data: &str) -> String {
    let v: Option<Value> = serde_json::from_str(data).ok();
    let msg = v.as_ref().and_then(|v| {
        str_field(v, "message")
            .or_else(|| v.get("error").and_then(|e| str_field(e, "message")))
            .or_else(|| str_field(v, "error"))
            .map(str::to_string)
    });
    match msg {
        Some(m) => short(&m),
        None if data.is_empty() => "(no message)".into(),
        None => short(data),
    }
}

/// At most 300 characters of a server's message.
fn short(s: &str) -> String {
    let mut out: String = s.chars().take(300).collect();
    if out.len() < s.len() {
        out.push_str("...");
    }
    out
}

/// Text that is there and not empty.
pub(super) fn some_text<'a>(x: &'a Option<Text<'_>>) -> Option<&'a str> {
    x.as_ref().map(|t| t.0.as_ref()).filter(|s| !s.is_empty())
}

impl StreamState {
    /// Applies one SSE event that arrived at `t_ns`.
    /// Once the stream has failed, later events are ignored, so what a stream counts does not
    /// depend on how its bytes were split into reads.
    pub(super) fn event(&mut self, e: &SseEvent, t_ns: u64, api: Api) {
        if self.error.is_some() {
            return;
        }
        let data = e.data.trim();
        if e.event.as_deref() == Some("error") {
            self.error = Some(RequestError {
                kind: ErrorKind::Http,
                message: format!("server error in the stream: {}", error_message(data)),
            });
            return;
        }
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

    pub(super) fn apply(&mut self, w: &WireChunk<'_>, t_ns: u64, api: Api) {
        if let Some(err) = &w.error {
            let msg = err
                .get("message")
                .and_then(Value::as_str)
                .map_or_else(|| short(&err.to_string()), str::to_string);
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
