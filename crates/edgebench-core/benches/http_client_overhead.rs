//! Is the HTTP client the bottleneck? An in-process mock server streams tokens; it logs the
//! instant it flushed each chunk, and the client stamps each chunk when its bytes arrive, on the
//! same monotonic clock. The difference is the client's own error in TTFT and ITL. Printed for
//! 1 stream and for 512 concurrent streams (goals: p99 within 0.5 ms and 2 ms). A third row
//! covers the request path too: the client's send-to-first-chunk time against the server's
//! own request-read-to-first-write time (what the client adds by building, sending and
//! reading, loopback included). Exits 1 when a figure misses its goal.
//! Run: `cargo bench -p edgebench-core --bench http_client_overhead`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use edgebench_core::clock::Clock;
use edgebench_core::stats;
use edgebench_core::target::mock_server::{MockServer, Response, Step};
use edgebench_core::target::openai::{HttpConfig, OpenAiTarget};
use edgebench_core::target::{ChatMessage, GenRequest, Sampling, Target};
use futures_util::StreamExt;

const TOKENS: usize = 32;

fn script(gap: Duration, tag: String) -> Response {
    let mut steps = vec![Step::Sleep(gap * 2)];
    for i in 0..TOKENS {
        if i > 0 {
            steps.push(Step::Sleep(gap));
        }
        steps.push(Step::content("tok"));
    }
    steps.push(Step::data(
        &serde_json::json!({"choices": [{"delta": {}, "finish_reason": "length"}]}),
    ));
    steps.push(Step::done());
    let mut r = Response::sse(steps);
    r.tag = Some(tag);
    r
}

struct Errors {
    ttft_ms: Vec<f64>,
    itl_ms: Vec<f64>,
    /// (client: send -> first chunk) - (server: request read -> first write).
    request_path_ms: Vec<f64>,
}

fn measure(streams: usize, requests: usize, gap: Duration) -> Errors {
    // The server gets its own runtime and thread, as a real server would be its own process.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("server runtime");
    let server = server_rt
        .block_on(MockServer::start(move |r| {
            let tag = r.body["messages"][0]["content"]
                .as_str()
                .unwrap_or("")
                .to_string();
            script(gap, tag)
        }))
        .expect("mock server");
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("client runtime");
    let clock = Clock::new();
    let target = OpenAiTarget::new(HttpConfig::new(server.base_url(), "mock")).expect("target");
    let records = client_rt.block_on(async {
        let futs = (0..requests).map(|i| {
            let req = GenRequest {
                index: i as u32,
                warmup: false,
                prompt_id: format!("r{i}"),
                messages: vec![ChatMessage::new("user", format!("r{i}"))],
                max_tokens: TOKENS as u32,
                ignore_eos: false,
                sampling: Sampling::default(),
                scheduled: Instant::now(),
            };
            let (target, clock) = (&target, &clock);
            async move { target.generate(req, clock).await }
        });
        futures_util::stream::iter(futs)
            .buffer_unordered(streams)
            .collect::<Vec<_>>()
            .await
    });
    let mut by_tag: HashMap<String, Vec<u64>> = HashMap::new();
    for w in server.writes() {
        by_tag.entry(w.tag).or_default().push(clock.ns(w.at));
    }
    let read_at: HashMap<String, u64> = server
        .received()
        .into_iter()
        .map(|w| (w.tag, clock.ns(w.at)))
        .collect();
    let mut e = Errors {
        ttft_ms: Vec::new(),
        itl_ms: Vec::new(),
        request_path_ms: Vec::new(),
    };
    for r in &records {
        assert!(r.ok(), "{:?}", r.error);
        let server_t = &by_tag[&r.prompt_id];
        let client_t: Vec<u64> = r.chunks.iter().map(|c| c.t_ns).collect();
        assert_eq!(client_t.len(), TOKENS);
        // Server writes: TOKENS content chunks first, then finish and [DONE].
        let diff = |k: usize| (client_t[k] as f64 - server_t[k] as f64) / 1e6;
        e.ttft_ms.push(diff(0));
        let client = (client_t[0] as f64 - r.t_sent_ns as f64) / 1e6;
        let served = (server_t[0] as f64 - read_at[&r.prompt_id] as f64) / 1e6;
        e.request_path_ms.push(client - served);
        for k in 1..TOKENS {
            e.itl_ms.push(diff(k) - diff(k - 1));
        }
    }
    drop(server);
    e
}

/// Prints one row; false when its p99 misses the goal.
fn line(name: &str, x: &[f64], goal: f64) -> bool {
    let abs: Vec<f64> = x.iter().map(|v| v.abs()).collect();
    let p = stats::percentiles(&abs, &[50.0, 99.0, 100.0]).expect("samples");
    let ok = p[1] <= goal;
    let verdict = if ok { "ok" } else { "ABOVE GOAL" };
    println!(
        "  {name:<12} n={:<6} |error| p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms   (goal p99 <= {goal} ms: {verdict})",
        x.len(),
        p[0],
        p[1],
        p[2]
    );
    ok
}

fn main() {
    println!("client-side error of TTFT and ITL against the server's write times");
    let one = measure(1, 200, Duration::from_millis(5));
    println!("1 stream (200 requests x {TOKENS} tokens, 5 ms apart):");
    let mut ok = line("ttft", &one.ttft_ms, 0.5);
    ok &= line("itl", &one.itl_ms, 0.5);
    ok &= line("ttft+request", &one.request_path_ms, 0.5);
    let many = measure(512, 1024, Duration::from_millis(20));
    println!("512 concurrent streams (1024 requests x {TOKENS} tokens, 20 ms apart):");
    ok &= line("ttft", &many.ttft_ms, 2.0);
    ok &= line("itl", &many.itl_ms, 2.0);
    ok &= line("ttft+request", &many.request_path_ms, 2.0);
    if !ok {
        std::process::exit(1);
    }
}
