//! One streamed request on its own task: send, read the SSE events with one timer for the
//! first text and the total, stamp every chunk, and turn what happened into a record.

use super::*;

/// Aborts a spawned task when dropped (a join handle alone would let it run on).
pub(super) struct AbortOnDrop<T>(pub(super) tokio::task::JoinHandle<T>);

impl<T> AbortOnDrop<T> {
    pub(super) async fn join(mut self) -> Result<T, tokio::task::JoinError> {
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
pub(super) async fn stream_request(
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
    if let Some(why) = not_an_event_stream(resp.headers()) {
        return fail(record, ErrorKind::Protocol, why);
    }
    let mut stream = resp.bytes_stream();
    let mut parser = SseParser::with_limit(cfg.max_event_bytes);
    let mut received: usize = 0;
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
                received = received.saturating_add(bytes.len());
                let pushed = parser.push(&bytes, &mut events);
                for e in events.drain(..) {
                    st.event(&e, t, cfg.api);
                }
                if let Err(o) = pushed {
                    st.error.get_or_insert(RequestError {
                        kind: ErrorKind::Protocol,
                        message: format!(
                            "an event of the stream passed {} bytes (limit {}; --max-event-bytes raises it)",
                            o.bytes, o.limit
                        ),
                    });
                } else if received > cfg.max_response_bytes {
                    st.error.get_or_insert(RequestError {
                        kind: ErrorKind::Protocol,
                        message: format!(
                            "the response passed {received} bytes (limit {}; --max-response-bytes raises it)",
                            cfg.max_response_bytes
                        ),
                    });
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
    record.output_text = crate::record::bounded_text(st.text);
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

/// Why a successful response cannot be read as an event stream, if it cannot: a JSON document
/// (the server ignored `stream: true`), another content type (an HTML page from a proxy, say), or
/// a compressed body (edgebench asks for none; compression holds tokens back until a block fills,
/// so the timings would not be the server's).
pub(super) fn not_an_event_stream(headers: &reqwest::header::HeaderMap) -> Option<String> {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_ascii_lowercase())
            .filter(|v| !v.is_empty())
    };
    if let Some(enc) = header(reqwest::header::CONTENT_ENCODING).filter(|e| e != "identity") {
        return Some(format!(
            "the server compressed the event stream (Content-Encoding: {enc}) though none was asked for: compressed tokens arrive when a block fills, so their timings would not be the server's"
        ));
    }
    // No content type at all is tolerated: the parser then decides.
    let ct = header(reqwest::header::CONTENT_TYPE)?;
    if ct.starts_with("text/event-stream") {
        return None;
    }
    if ct.starts_with("application/json") {
        return Some(format!(
            "the server answered with {ct}, not an event stream: it does not stream this request"
        ));
    }
    Some(format!(
        "the server answered 200 with {ct}, not an event stream (text/event-stream)"
    ))
}
