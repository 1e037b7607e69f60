//! Tests of the OpenAI-compatible client against the mock server: chunk parsing, token counts,
//! timings, errors and timeouts, request bodies, model lists and server probes.
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
    let t = OpenAiTarget::new(HttpConfig::new(format!("http://127.0.0.1:{port}/v1"), "m")).unwrap();
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

/// A 200 response with these headers and body steps.
async fn run_with(
    headers: &[(&str, &str)],
    steps: Vec<Step>,
    cfg: impl FnOnce(&mut HttpConfig),
) -> RequestRecord {
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect();
    let server = MockServer::start(move |_| Response {
        status: 200,
        headers: headers.clone(),
        steps: steps.clone(),
        tag: None,
    })
    .await
    .unwrap();
    let mut c = HttpConfig::new(server.base_url(), "m");
    cfg(&mut c);
    let t = OpenAiTarget::new(c).unwrap();
    t.generate(req(false), &Clock::new()).await
}

fn kind_and_message(r: &RequestRecord) -> (ErrorKind, String) {
    let e = r.error.as_ref().expect("the request failed");
    (e.kind, e.message.clone())
}

#[tokio::test]
async fn a_200_that_is_not_an_event_stream_is_a_protocol_error() {
    let page = vec![Step::Bytes(
        b"<html><body>proxy login</body></html>".to_vec(),
    )];
    let r = run_with(
        &[("Content-Type", "text/html; charset=utf-8")],
        page,
        |_| {},
    )
    .await;
    let (kind, msg) = kind_and_message(&r);
    assert_eq!(kind, ErrorKind::Protocol, "{msg}");
    assert!(msg.contains("text/html"), "{msg}");
    // Compressed streams: named as such, not a lost connection.
    let gz = vec![Step::Bytes(vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3])];
    let r = run_with(
        &[
            ("Content-Type", "text/event-stream"),
            ("Content-Encoding", "gzip"),
        ],
        gz,
        |_| {},
    )
    .await;
    let (kind, msg) = kind_and_message(&r);
    assert_eq!(kind, ErrorKind::Protocol, "{msg}");
    assert!(msg.contains("Content-Encoding: gzip"), "{msg}");
    // No content type at all: the body decides (here a good stream).
    let ok = vec![Step::content("hi"), finish("stop"), Step::done()];
    let r = run_with(&[], ok, |_| {}).await;
    assert!(r.ok(), "{:?}", r.error);
}

#[tokio::test]
async fn an_error_event_keeps_the_servers_message() {
    for (body, want) in [
        (r#"{"message":"model crashed"}"#, "model crashed"),
        (
            r#"{"error":{"message":"out of memory","type":"server_error"}}"#,
            "out of memory",
        ),
        ("plain words", "plain words"),
    ] {
        let steps = vec![
            Step::content("par"),
            Step::Bytes(format!("event: error\ndata: {body}\n\n").into_bytes()),
            Step::content("ignored after the error"),
        ];
        let r = run_with(&[("Content-Type", "text/event-stream")], steps, |_| {}).await;
        let (kind, msg) = kind_and_message(&r);
        assert_eq!(kind, ErrorKind::Http, "{msg}");
        assert!(msg.contains(want), "{msg}");
        assert_eq!(
            r.chunks.len(),
            1,
            "what came before the error is kept, nothing after"
        );
    }
}

#[tokio::test]
async fn a_bad_chunk_counts_the_same_whatever_the_read_boundaries() {
    let nested = format!("data: {}{}\n\n", "[".repeat(5000), "]".repeat(5000));
    let good: Vec<u8> = (0..8)
        .flat_map(|i| {
            format!(
                "data: {}\n\n",
                json!({"choices": [{"delta": {"content": format!("t{i}")}}]})
            )
            .into_bytes()
        })
        .collect();
    let mut all = good.clone();
    all.extend_from_slice(nested.as_bytes());
    all.extend_from_slice(&good);
    all.extend_from_slice(b"data: [DONE]\n\n");
    let mut counts = std::collections::BTreeSet::new();
    // One write, and the same bytes in reads of 1, 7 and 300 bytes.
    for size in [all.len(), 1, 7, 300] {
        let steps: Vec<Step> = all.chunks(size).map(|c| Step::Bytes(c.to_vec())).collect();
        let r = run_with(&[("Content-Type", "text/event-stream")], steps, |_| {}).await;
        let (kind, _) = kind_and_message(&r);
        assert_eq!(kind, ErrorKind::Protocol);
        counts.insert((r.chunks.len(), r.output_tokens));
    }
    assert_eq!(counts.into_iter().collect::<Vec<_>>(), [(8, 8)]);
}

#[tokio::test]
async fn oversized_events_and_responses_fail_as_protocol_with_the_size() {
    // One event that never ends: 8 MiB of one line, against the default 1 MiB cap.
    let steps = vec![
        Step::content("a"),
        Step::Bytes(b"data: {\"choices\":[{\"delta\":{\"content\":\"".to_vec()),
        Step::Repeat(vec![b'x'; 64 << 10], 128),
    ];
    let r = run_with(&[("Content-Type", "text/event-stream")], steps, |_| {}).await;
    let (kind, msg) = kind_and_message(&r);
    assert_eq!(kind, ErrorKind::Protocol, "{msg}");
    assert!(
        msg.contains("limit 1048576") && msg.contains("--max-event-bytes"),
        "{msg}"
    );
    assert_eq!(r.output_text, "a");
    // Many small events past a response cap.
    let event = format!(
        "data: {}\n\n",
        json!({"choices": [{"delta": {"content": "y"}}]})
    );
    let steps = vec![Step::Repeat(event.clone().into_bytes(), 2000)];
    let r = run_with(&[("Content-Type", "text/event-stream")], steps, |c| {
        c.max_response_bytes = 10_000;
    })
    .await;
    let (kind, msg) = kind_and_message(&r);
    assert_eq!(kind, ErrorKind::Protocol, "{msg}");
    assert!(
        msg.contains("limit 10000") && msg.contains("--max-response-bytes"),
        "{msg}"
    );
    assert!(r.output_text.len() < 10_000 / event.len() + 1000);
}

#[test]
fn kept_text_is_bounded_on_a_character_boundary() {
    let long = "\u{e9}".repeat(crate::record::MAX_KEPT_TEXT_BYTES);
    let kept = crate::record::bounded_text(long);
    assert!(kept.len() <= crate::record::MAX_KEPT_TEXT_BYTES);
    assert!(kept.len() > crate::record::MAX_KEPT_TEXT_BYTES - 2);
    assert_eq!(crate::record::bounded_text("short".into()), "short");
}
