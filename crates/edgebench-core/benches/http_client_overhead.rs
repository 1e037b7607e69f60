//! Is the HTTP client the bottleneck? An in-process mock server streams tokens; it logs the
//! instant it flushed each chunk, and the client stamps each chunk when its bytes arrive, on the
//! same monotonic clock. The difference is the client's own error in TTFT and ITL. Printed for
//! 1 stream and for 512 concurrent streams (goals: p99 within 0.5 ms and 2 ms). A third row
//! covers the request path too: the client's send-to-first-chunk time against the server's
//! own request-read-to-first-write time (what the client adds by building, sending and
//! reading, loopback included; the client opens its connections first, as the runner does
//! before a concurrent phase). A "floor" row measures the same streams with a bare TCP reader
//! (hand-written request, each read stamped, no HTTP library, SSE or JSON): what the OS, the
//! loopback and the async runtime cost alone, so a missed goal can be told apart from the
//! machine's own wake-up latency. Exits 1 when a figure misses its goal.
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

/// The k-th SSE `data:` event's arrival: the stamp of the read that completed it.
fn event_times(reads: &[(u64, usize)], bytes: &[u8]) -> Vec<u64> {
    let mut out = Vec::new();
    let mut at = 0usize;
    let mut read = 0usize;
    let mut end = reads.first().map_or(0, |r| r.1);
    while let Some(i) = bytes[at..].windows(6).position(|w| w == b"data: ") {
        let pos = at + i + 6;
        while pos > end && read + 1 < reads.len() {
            read += 1;
            end += reads[read].1;
        }
        out.push(reads[read].0);
        at = pos;
    }
    out
}

/// One request over a bare TCP connection: (send time, per-event arrival times).
async fn raw_request(addr: &str, i: usize, clock: &Clock) -> (u64, Vec<u64>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = serde_json::json!({
        "model": "mock", "stream": true, "max_tokens": TOKENS,
        "messages": [{"role": "user", "content": format!("r{i}")}],
    })
    .to_string();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut sock = tokio::net::TcpStream::connect(addr).await.expect("connect");
    sock.set_nodelay(true).expect("nodelay");
    let sent = clock.now_ns();
    sock.write_all(format!("{head}{body}").as_bytes())
        .await
        .expect("send");
    let mut bytes = Vec::new();
    let mut reads = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = sock.read(&mut buf).await.expect("read");
        let t = clock.now_ns();
        if n == 0 {
            break;
        }
        reads.push((t, n));
        let from = bytes.len().saturating_sub(5);
        bytes.extend_from_slice(&buf[..n]);
        if bytes[from..].windows(6).any(|w| w == b"[DONE]") {
            break;
        }
    }
    (sent, event_times(&reads, &bytes))
}

/// The mock server on its own one-thread runtime (as a real server would be its own process),
/// a one-thread client runtime, and the clock both stamp with.
struct Rig {
    _server_rt: tokio::runtime::Runtime,
    server: MockServer,
    client_rt: tokio::runtime::Runtime,
    clock: Clock,
}

fn rig(gap: Duration) -> Rig {
    let runtime = |what| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect(what)
    };
    let server_rt = runtime("server runtime");
    let server = server_rt
        .block_on(MockServer::start(move |r| {
            if r.method == "GET" {
                return Response::json(200, &serde_json::json!({"data": [{"id": "mock"}]}));
            }
            let tag = r.body["messages"][0]["content"]
                .as_str()
                .unwrap_or("")
                .to_string();
            script(gap, tag)
        }))
        .expect("mock server");
    Rig {
        _server_rt: server_rt,
        server,
        client_rt: runtime("client runtime"),
        clock: Clock::new(),
    }
}

/// The same streams read by [`raw_request`]: the floor under any HTTP client.
fn measure_floor(streams: usize, requests: usize, gap: Duration) -> Errors {
    let Rig {
        _server_rt,
        server,
        client_rt,
        clock,
    } = rig(gap);
    let base = server.base_url();
    let addr = base
        .trim_start_matches("http://")
        .trim_end_matches("/v1")
        .to_string();
    let got = client_rt.block_on(async {
        let futs = (0..requests).map(|i| {
            let (addr, clock) = (&addr, &clock);
            async move { (format!("r{i}"), raw_request(addr, i, clock).await) }
        });
        futures_util::stream::iter(futs)
            .buffer_unordered(streams)
            .collect::<Vec<_>>()
            .await
    });
    errors_against(&server, &clock, got)
}

/// Client stamps against the server's write log, per request: (tag, (sent, content chunks)).
fn errors_against(
    server: &MockServer,
    clock: &Clock,
    got: Vec<(String, (u64, Vec<u64>))>,
) -> Errors {
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
    for (tag, (sent, client_t)) in &got {
        let server_t = &by_tag[tag];
        assert!(client_t.len() >= TOKENS, "{tag}: {} events", client_t.len());
        // Server writes: TOKENS content chunks first, then finish and [DONE].
        let diff = |k: usize| (client_t[k] as f64 - server_t[k] as f64) / 1e6;
        e.ttft_ms.push(diff(0));
        let client = (client_t[0] as f64 - *sent as f64) / 1e6;
        let served = (server_t[0] as f64 - read_at[tag] as f64) / 1e6;
        e.request_path_ms.push(client - served);
        for k in 1..TOKENS {
            e.itl_ms.push(diff(k) - diff(k - 1));
        }
    }
    e
}

fn measure(streams: usize, requests: usize, gap: Duration) -> Errors {
    let Rig {
        _server_rt,
        server,
        client_rt,
        clock,
    } = rig(gap);
    let target = OpenAiTarget::new(HttpConfig::new(server.base_url(), "mock")).expect("target");
    let records = client_rt.block_on(async {
        // As the runner does before a concurrent phase: the connections are opened first.
        target.open_connections(streams).await;
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
    let got = records
        .iter()
        .map(|r| {
            assert!(r.ok(), "{:?}", r.error);
            assert_eq!(r.chunks.len(), TOKENS);
            let t: Vec<u64> = r.chunks.iter().map(|c| c.t_ns).collect();
            (r.prompt_id.clone(), (r.t_sent_ns, t))
        })
        .collect();
    let e = errors_against(&server, &clock, got);
    drop(server);
    e
}

/// Prints one row; false when its p99 misses the goal (a floor row has none).
fn line(name: &str, x: &[f64], goal: Option<f64>) -> bool {
    let abs: Vec<f64> = x.iter().map(|v| v.abs()).collect();
    let p = stats::percentiles(&abs, &[50.0, 99.0, 100.0]).expect("samples");
    let ok = goal.is_none_or(|g| p[1] <= g);
    let verdict = goal.map_or_else(String::new, |g| {
        format!(
            "   (goal p99 <= {g} ms: {})",
            if ok { "ok" } else { "ABOVE GOAL" }
        )
    });
    println!(
        "  {name:<12} n={:<6} |error| p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms{verdict}",
        x.len(),
        p[0],
        p[1],
        p[2]
    );
    ok
}

/// The three rows of one measurement against `goal` (none for a floor).
fn rows(e: &Errors, goal: Option<f64>) -> bool {
    let mut ok = line("ttft", &e.ttft_ms, goal);
    ok &= line("itl", &e.itl_ms, goal);
    ok &= line("ttft+request", &e.request_path_ms, goal);
    ok
}

fn main() {
    println!("client-side error of TTFT and ITL against the server's write times");
    let one = measure(1, 200, Duration::from_millis(5));
    let floor = measure_floor(1, 200, Duration::from_millis(5));
    println!("1 stream (200 requests x {TOKENS} tokens, 5 ms apart):");
    let mut ok = rows(&one, Some(0.5));
    println!("  the floor (bare TCP reads, no HTTP client):");
    rows(&floor, None);
    let many = measure(512, 1024, Duration::from_millis(20));
    let floor = measure_floor(512, 1024, Duration::from_millis(20));
    println!("512 concurrent streams (1024 requests x {TOKENS} tokens, 20 ms apart):");
    ok &= rows(&many, Some(2.0));
    println!("  the floor (bare TCP reads, no HTTP client):");
    rows(&floor, None);
    if !ok {
        std::process::exit(1);
    }
}
