//! How long a unit's summary takes as units grow: 20 to 100,000 requests of 16 tokens each
//! (the pooled inter-token latencies reach 1.5 million values), and which interval methods the
//! summary chose. Run with `cargo bench -p edgebench-core --bench summary_scale`.

use std::time::Instant;

use edgebench_core::metrics::{summarize_unit, UnitContext};
use edgebench_core::record::{Chunk, FinishReason, RequestRecord, TokenCountSource};

const MS: u64 = 1_000_000;

/// A request with a log-normal-ish time to first token and 16 tokens.
fn record(i: u32) -> RequestRecord {
    let start = u64::from(i) * 50 * MS;
    let jitter = u64::from(i.wrapping_mul(2_654_435_761) % 997);
    let ttft = 4 * MS + jitter * 10_000;
    let chunks: Vec<Chunk> = (0..16u64)
        .map(|k| Chunk {
            t_ns: start + ttft + k * (2 * MS + (jitter * k) % 500_000),
            tokens: 1,
            reasoning: false,
        })
        .collect();
    let mut r = RequestRecord::begin(
        i,
        false,
        format!("p{i}"),
        start,
        start,
        TokenCountSource::Chunks,
    );
    r.t_first_byte_ns = chunks.first().map(|c| c.t_ns);
    r.t_end_ns = chunks.last().map_or(start, |c| c.t_ns);
    r.chunks = chunks;
    r.output_tokens = 16;
    r.prompt_tokens = Some(300);
    r.finish_reason = FinishReason::Length;
    r
}

fn main() {
    println!("requests   itl values   summary ms   ttft mean CI      ttft p99 CI");
    for n in [20u32, 500, 501, 10_000, 100_000] {
        let records: Vec<RequestRecord> = (0..n).map(record).collect();
        let cx = UnitContext {
            model: "m",
            scenario: "s",
            json: false,
            peak_rss_mb: None,
            duration_s: 1.0,
            seed: 42,
        };
        let t = Instant::now();
        let s = summarize_unit(&records, &cx);
        let ms = t.elapsed().as_secs_f64() * 1e3;
        let ttft = s.ttft_ms.expect("ttft");
        let method = |c: &Option<edgebench_core::stats::ConfidenceInterval>| {
            c.as_ref()
                .map_or("none".to_string(), |c| format!("{:?}", c.method))
        };
        println!(
            "{n:>8}   {:>10}   {ms:>10.1}   {:<15}  {}",
            s.itl_ms.map_or(0, |m| m.summary.n),
            method(&ttft.mean_ci),
            method(&ttft.p99_ci)
        );
    }
}
