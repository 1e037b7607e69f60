//! Hostile servers against the HTTP client, in a process of its own so its peak memory is the
//! client's: a runaway event and a runaway non-streamed answer fail as `protocol` with the size
//! in the message, and the client never holds them whole.

use std::time::Instant;

use edgebench_core::backend::mock_server::{MockServer, Response, Step};
use edgebench_core::backend::openai::{HttpConfig, OpenAiTarget};
use edgebench_core::backend::{Backend, ChatMessage, GenOptions, GenRequest, Sampling, Target};
use edgebench_core::clock::Clock;
use edgebench_core::record::ErrorKind;

/// The process's peak resident memory (`VmHWM`), in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("VmHWM");
    kb / 1024.0
}

fn request() -> GenRequest {
    GenRequest {
        index: 0,
        warmup: false,
        prompt_id: "p".into(),
        messages: vec![ChatMessage::new("user", "hello")],
        max_tokens: 16,
        ignore_eos: false,
        sampling: Sampling::default(),
        scheduled: Instant::now(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_256_mib_event_and_a_256_mib_answer_fail_in_little_memory() {
    // One SSE line of 256 MiB (a client that buffers lines whole would hold it, then copy it).
    let stream = vec![
        Step::Bytes(b"data: {\"choices\":[{\"delta\":{\"content\":\"".to_vec()),
        Step::Repeat(vec![b'x'; 1 << 20], 256),
        Step::Bytes(b"\"}}]}\n\ndata: [DONE]\n\n".to_vec()),
    ];
    // A non-streamed answer of 256 MiB.
    let answer = vec![
        Step::Bytes(b"{\"choices\":[{\"message\":{\"content\":\"".to_vec()),
        Step::Repeat(vec![b'y'; 1 << 20], 256),
        Step::Bytes(b"\"}}]}".to_vec()),
    ];
    let server = MockServer::start(move |r| {
        let mut resp = Response::sse(stream.clone());
        if r.body.get("stream").and_then(serde_json::Value::as_bool) != Some(true) {
            resp.headers = vec![("Content-Type".into(), "application/json".into())];
            resp.steps = answer.clone();
        }
        resp
    })
    .await
    .unwrap();
    let before = peak_rss_mib();
    let target = OpenAiTarget::new(HttpConfig::new(server.base_url(), "m")).unwrap();
    let r = target.generate(request(), &Clock::new()).await;
    let e = r.error.as_ref().expect("an oversized event fails");
    assert_eq!(e.kind, ErrorKind::Protocol, "{}", e.message);
    assert!(e.message.contains("bytes (limit 1048576"), "{}", e.message);
    assert!(r.output_text.is_empty());

    let opts = GenOptions {
        choices: Vec::new(),
        temperature: 0.0,
        max_tokens: 16,
        stop: Vec::new(),
        seed: 1,
    };
    let answers = target
        .generate_batch("system", &["hello".to_string()], &opts)
        .await
        .expect("the batch runs");
    let err = answers
        .into_iter()
        .next()
        .expect("one answer")
        .expect_err("an oversized answer fails");
    assert!(err.contains("limit 67108864"), "{err}");

    let peak = peak_rss_mib();
    eprintln!("peak resident memory: {before:.0} MiB before, {peak:.0} MiB after");
    assert!(peak < 200.0, "peak {peak:.0} MiB");
}
