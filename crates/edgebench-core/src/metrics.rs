//! Metrics derived from raw request records, and their per-unit summary (names carry units).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::clock::ms_between;
use crate::record::RequestRecord;
use crate::stats::{self, ConfidenceInterval, Summary};

/// Bootstrap settings used for every CI of a mean in summaries.
pub const BOOTSTRAP_RESAMPLES: usize = 10_000;
/// Confidence level of summary CIs.
pub const CI_LEVEL: f64 = 0.95;

/// Per-request metrics, derived from one record. `None` where a figure is undefined (for example
/// `tpot_ms` with fewer than two output tokens, or anything of a failed request without tokens).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestMetrics {
    /// Scheduled time to the first text-bearing chunk (answer or reasoning).
    pub ttft_ms: Option<f64>,
    /// Scheduled time to the first response byte.
    pub first_byte_ms: Option<f64>,
    /// Scheduled time to the first answer (non-reasoning) chunk.
    pub first_answer_ms: Option<f64>,
    /// Scheduled time to the end of the response.
    pub e2e_ms: f64,
    /// Gaps between consecutive text-bearing chunks.
    pub itl_ms: Vec<f64>,
    /// (e2e - ttft) / (output_tokens - 1).
    pub tpot_ms: Option<f64>,
    /// Tokens after the first chunk / time from the first to the last chunk.
    pub decode_tokens_per_s: Option<f64>,
    /// Prompt tokens / (send to first chunk).
    pub prefill_tokens_per_s: Option<f64>,
    /// Output tokens / e2e (the seeds' "tokens/s").
    pub output_tokens_per_s: Option<f64>,
    /// The engine's own prompt rate (llama.cpp timings), when reported.
    pub engine_prefill_tokens_per_s: Option<f64>,
    /// The engine's own decode rate (llama.cpp timings), when reported.
    pub engine_decode_tokens_per_s: Option<f64>,
}

/// Derives a request's metrics from its raw timestamps and counts.
pub fn derive(r: &RequestRecord) -> RequestMetrics {
    let start = r.t_scheduled_ns;
    let first = r.chunks.first();
    let last = r.chunks.last();
    let ttft_ms = first.map(|c| ms_between(start, c.t_ns));
    let e2e_ms = ms_between(start, r.t_end_ns);
    let itl_ms: Vec<f64> = r
        .chunks
        .windows(2)
        .map(|w| ms_between(w[0].t_ns, w[1].t_ns))
        .collect();
    let tpot_ms = match ttft_ms {
        Some(t) if r.output_tokens >= 2 => Some((e2e_ms - t) / (r.output_tokens - 1) as f64),
        _ => None,
    };
    let decode_tokens_per_s = match (first, last) {
        (Some(f), Some(l)) if l.t_ns > f.t_ns => {
            let tokens = r.output_tokens.saturating_sub(u64::from(f.tokens));
            Some(tokens as f64 / (ms_between(f.t_ns, l.t_ns) / 1e3))
        }
        _ => None,
    };
    let prefill_tokens_per_s = match (first, r.prompt_tokens) {
        (Some(f), Some(p)) if f.t_ns > r.t_sent_ns && p > 0 => {
            Some(p as f64 / (ms_between(r.t_sent_ns, f.t_ns) / 1e3))
        }
        _ => None,
    };
    let output_tokens_per_s =
        (r.output_tokens > 0 && e2e_ms > 0.0).then(|| r.output_tokens as f64 / (e2e_ms / 1e3));
    let rate = |tokens: u64, ms: f64| (tokens > 0 && ms > 0.0).then(|| tokens as f64 / (ms / 1e3));
    RequestMetrics {
        ttft_ms,
        first_byte_ms: r.t_first_byte_ns.map(|t| ms_between(start, t)),
        first_answer_ms: r
            .chunks
            .iter()
            .find(|c| !c.reasoning)
            .map(|c| ms_between(start, c.t_ns)),
        e2e_ms,
        itl_ms,
        tpot_ms,
        decode_tokens_per_s,
        prefill_tokens_per_s,
        output_tokens_per_s,
        engine_prefill_tokens_per_s: r
            .engine_timings
            .as_ref()
            .and_then(|t| rate(t.prompt_tokens, t.prompt_ms)),
        engine_decode_tokens_per_s: r
            .engine_timings
            .as_ref()
            .and_then(|t| rate(t.decode_tokens, t.decode_ms)),
    }
}

/// True when `text` is one JSON object, allowing surrounding whitespace and a Markdown code fence.
pub fn is_valid_json_object(text: &str) -> bool {
    let t = text.trim();
    let t = t
        .strip_prefix("```json")
        .or_else(|| t.strip_prefix("```"))
        .and_then(|s| s.strip_suffix("```"))
        .unwrap_or(t)
        .trim();
    matches!(
        serde_json::from_str::<serde_json::Value>(t),
        Ok(serde_json::Value::Object(_))
    )
}

/// A metric's descriptive figures, with the bootstrap CI of its mean when n >= 2.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSummary {
    #[serde(flatten)]
    pub summary: Summary,
    /// The mean's interval: the bootstrap for small samples, Student's t for large ones.
    pub mean_ci: Option<ConfidenceInterval>,
    /// The median's and the p90's and p99's distribution-free intervals (order statistics),
    /// where the sample is large enough to give one at [`CI_LEVEL`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50_ci: Option<ConfidenceInterval>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p90_ci: Option<ConfidenceInterval>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_ci: Option<ConfidenceInterval>,
}

/// Summarises the finite values of a metric; `None` when there are none. Linear in the number
/// of values past the sort, whatever their number (see [`stats::interval`]).
pub fn summarize_metric(values: &[f64], seed: u64) -> Option<MetricSummary> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    let mean_ci = stats::mean_ci(&v, CI_LEVEL, BOOTSTRAP_RESAMPLES, seed).ok();
    v.sort_unstable_by(f64::total_cmp);
    let summary = stats::summarize_sorted(&v).ok()?;
    let q = |p| stats::quantile_ci(&v, p, CI_LEVEL);
    Some(MetricSummary {
        summary,
        mean_ci,
        p50_ci: q(0.5),
        p90_ci: q(0.9),
        p99_ci: q(0.99),
    })
}

/// The summary of one unit (model x scenario) over its measured (non-warm-up) requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitSummary {
    pub model: String,
    pub scenario: String,
    /// Measured requests (warm-ups excluded).
    pub requests: usize,
    pub successes: usize,
    /// successes / requests, with the bootstrap CI of that proportion.
    pub success_rate: f64,
    pub success_rate_ci: Option<ConfidenceInterval>,
    /// Failed requests per error kind.
    pub failures: BTreeMap<String, usize>,
    /// Measured requests per finish reason (`stop`, `length`, `error`, `cancelled`): how many
    /// answers ended on their own and how many hit the token limit.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub finish_reasons: BTreeMap<String, usize>,
    pub ttft_ms: Option<MetricSummary>,
    pub e2e_ms: Option<MetricSummary>,
    pub tpot_ms: Option<MetricSummary>,
    /// Every inter-token gap of every successful request, pooled.
    pub itl_ms: Option<MetricSummary>,
    pub output_tokens_per_s: Option<MetricSummary>,
    pub decode_tokens_per_s: Option<MetricSummary>,
    pub prefill_tokens_per_s: Option<MetricSummary>,
    pub engine_decode_tokens_per_s: Option<MetricSummary>,
    pub engine_prefill_tokens_per_s: Option<MetricSummary>,
    pub prompt_tokens: Option<MetricSummary>,
    pub output_tokens: Option<MetricSummary>,
    /// Share of successful answers that are one valid JSON object (structured-output scenarios).
    pub json_valid_rate: Option<f64>,
    /// Successful measured requests per second over the measured window (first scheduled
    /// request to last response end).
    pub request_throughput_per_s: Option<f64>,
    /// Output tokens of successful measured requests per second over the same window.
    pub output_token_throughput_per_s: Option<f64>,
    /// Peak resident memory of the serving process during the unit.
    pub peak_rss_mb: Option<f64>,
    /// Wall time of the unit, warm-ups included.
    pub duration_s: f64,
    /// Where the successful requests' output-token counts came from, per source (`engine`,
    /// `server_usage`, `tokenizer`, or `chunks`: one token per streamed chunk, an estimate).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub token_count_sources: BTreeMap<String, usize>,
    /// Thinking models: reasoning tokens per request (part of `output_tokens`), when any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<MetricSummary>,
    /// Thinking models: scheduled time to the first answer (non-reasoning) text, when any
    /// request reasoned first (`ttft_ms` counts reasoning text too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_answer_ms: Option<MetricSummary>,
}

/// Inputs to a unit summary besides the records.
#[derive(Debug, Clone)]
pub struct UnitContext<'a> {
    pub model: &'a str,
    pub scenario: &'a str,
    pub json: bool,
    pub peak_rss_mb: Option<f64>,
    pub duration_s: f64,
    pub seed: u64,
}

/// Summarises a unit's records; warm-ups are left out, failures count in the success rate.
pub fn summarize_unit(records: &[RequestRecord], cx: &UnitContext<'_>) -> UnitSummary {
    let measured: Vec<&RequestRecord> = records.iter().filter(|r| !r.warmup).collect();
    let ok: Vec<&RequestRecord> = measured.iter().copied().filter(|r| r.ok()).collect();
    let derived: Vec<RequestMetrics> = ok.iter().map(|r| derive(r)).collect();
    let mut finish_reasons: BTreeMap<String, usize> = BTreeMap::new();
    for r in &measured {
        *finish_reasons
            .entry(r.finish_reason.as_str().to_string())
            .or_insert(0) += 1;
    }
    let mut failures = BTreeMap::new();
    for r in measured.iter().filter(|r| !r.ok()) {
        if let Some(e) = &r.error {
            *failures.entry(e.kind.as_str().to_string()).or_insert(0) += 1;
        }
    }
    let collect = |f: &dyn Fn(&RequestMetrics) -> Option<f64>| -> Vec<f64> {
        derived.iter().filter_map(f).collect()
    };
    let seed = cx.seed;
    let success_rate = if measured.is_empty() {
        0.0
    } else {
        ok.len() as f64 / measured.len() as f64
    };
    let itl: Vec<f64> = derived
        .iter()
        .flat_map(|m| m.itl_ms.iter().copied())
        .collect();
    let window_s = match (
        measured.iter().map(|r| r.t_scheduled_ns).min(),
        measured.iter().map(|r| r.t_end_ns).max(),
    ) {
        (Some(a), Some(b)) if b > a => Some(ms_between(a, b) / 1e3),
        _ => None,
    };
    let ok_tokens: u64 = ok.iter().map(|r| r.output_tokens).sum();
    let mut token_count_sources = BTreeMap::new();
    for r in &ok {
        *token_count_sources
            .entry(r.token_count_source.as_str().to_string())
            .or_insert(0) += 1;
    }
    let reasoned = ok.iter().any(|r| r.reasoning_tokens > 0);
    UnitSummary {
        model: cx.model.to_string(),
        scenario: cx.scenario.to_string(),
        requests: measured.len(),
        successes: ok.len(),
        success_rate,
        success_rate_ci: stats::proportion_ci(ok.len(), measured.len(), CI_LEVEL).ok(),
        failures,
        finish_reasons,
        ttft_ms: summarize_metric(&collect(&|m| m.ttft_ms), seed),
        e2e_ms: summarize_metric(&collect(&|m| Some(m.e2e_ms)), seed),
        tpot_ms: summarize_metric(&collect(&|m| m.tpot_ms), seed),
        itl_ms: summarize_metric(&itl, seed),
        output_tokens_per_s: summarize_metric(&collect(&|m| m.output_tokens_per_s), seed),
        decode_tokens_per_s: summarize_metric(&collect(&|m| m.decode_tokens_per_s), seed),
        prefill_tokens_per_s: summarize_metric(&collect(&|m| m.prefill_tokens_per_s), seed),
        engine_decode_tokens_per_s: summarize_metric(
            &collect(&|m| m.engine_decode_tokens_per_s),
            seed,
        ),
        engine_prefill_tokens_per_s: summarize_metric(
            &collect(&|m| m.engine_prefill_tokens_per_s),
            seed,
        ),
        prompt_tokens: summarize_metric(
            &ok.iter()
                .filter_map(|r| r.prompt_tokens.map(|p| p as f64))
                .collect::<Vec<_>>(),
            seed,
        ),
        output_tokens: summarize_metric(
            &ok.iter()
                .map(|r| r.output_tokens as f64)
                .collect::<Vec<_>>(),
            seed,
        ),
        json_valid_rate: (cx.json && !ok.is_empty()).then(|| {
            ok.iter()
                .filter(|r| is_valid_json_object(&r.output_text))
                .count() as f64
                / ok.len() as f64
        }),
        request_throughput_per_s: window_s.map(|w| ok.len() as f64 / w),
        output_token_throughput_per_s: window_s.map(|w| ok_tokens as f64 / w),
        peak_rss_mb: cx.peak_rss_mb,
        duration_s: cx.duration_s,
        token_count_sources,
        reasoning_tokens: reasoned
            .then(|| {
                summarize_metric(
                    &ok.iter()
                        .map(|r| r.reasoning_tokens as f64)
                        .collect::<Vec<_>>(),
                    seed,
                )
            })
            .flatten(),
        first_answer_ms: reasoned
            .then(|| summarize_metric(&collect(&|m| m.first_answer_ms), seed))
            .flatten(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{
        Chunk, EngineTimings, ErrorKind, FinishReason, RequestError, TokenCountSource,
    };

    const MS: u64 = 1_000_000;

    fn chunk(ms: u64, tokens: u32) -> Chunk {
        Chunk {
            t_ns: ms * MS,
            tokens,
            reasoning: false,
        }
    }

    fn record(scheduled_ms: u64, sent_ms: u64, chunks: Vec<Chunk>, end_ms: u64) -> RequestRecord {
        RequestRecord {
            index: 0,
            warmup: false,
            prompt_id: "p".into(),
            t_scheduled_ns: scheduled_ms * MS,
            t_sent_ns: sent_ms * MS,
            t_first_byte_ns: chunks.first().map(|c| c.t_ns),
            output_tokens: chunks.iter().map(|c| u64::from(c.tokens)).sum(),
            chunks,
            t_end_ns: end_ms * MS,
            prompt_tokens: Some(200),
            reasoning_tokens: 0,
            token_count_source: TokenCountSource::Engine,
            finish_reason: FinishReason::Length,
            error: None,
            engine_timings: None,
            output_text: String::new(),
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn derives_the_contract_metrics_by_hand() {
        // Sent at 1 ms; tokens at 101, 111 and 131 ms; done at 132 ms; 200 prompt tokens.
        let m = derive(&record(
            1,
            1,
            vec![chunk(101, 1), chunk(111, 1), chunk(131, 1)],
            132,
        ));
        assert!(close(m.ttft_ms.unwrap(), 100.0));
        assert!(close(m.e2e_ms, 131.0));
        assert_eq!(m.itl_ms, vec![10.0, 20.0]);
        // (131 - 100) / (3 - 1)
        assert!(close(m.tpot_ms.unwrap(), 15.5));
        // 2 tokens after the first over 30 ms
        assert!(close(m.decode_tokens_per_s.unwrap(), 2.0 / 0.030));
        // 200 prompt tokens over 100 ms
        assert!(close(m.prefill_tokens_per_s.unwrap(), 2000.0));
        assert!(close(m.output_tokens_per_s.unwrap(), 3.0 / 0.131));
        assert_eq!(m.first_answer_ms, m.ttft_ms);
    }

    #[test]
    fn latency_counts_from_the_scheduled_time_and_prefill_from_the_send() {
        // Due at 0, sent late at 50 ms (queueing), first token at 150 ms.
        let m = derive(&record(0, 50, vec![chunk(150, 1), chunk(160, 1)], 160));
        assert!(close(m.ttft_ms.unwrap(), 150.0));
        assert!(close(m.e2e_ms, 160.0));
        assert!(close(m.prefill_tokens_per_s.unwrap(), 2000.0));
    }

    #[test]
    fn multi_token_chunks_and_reasoning() {
        let mut r = record(0, 0, vec![chunk(100, 4), chunk(120, 2), chunk(140, 2)], 140);
        r.chunks[0].reasoning = true;
        let m = derive(&r);
        // 4 tokens after the first chunk, over 40 ms
        assert!(close(m.decode_tokens_per_s.unwrap(), 100.0));
        assert!(close(m.tpot_ms.unwrap(), 40.0 / 7.0));
        assert!(close(m.ttft_ms.unwrap(), 100.0));
        assert!(close(m.first_answer_ms.unwrap(), 120.0));
    }

    #[test]
    fn summaries_report_reasoning_apart_and_name_token_count_sources() {
        let cx = UnitContext {
            model: "m",
            scenario: "s",
            json: false,
            peak_rss_mb: None,
            duration_s: 1.0,
            seed: 1,
        };
        let plain = summarize_unit(&[record(0, 0, vec![chunk(10, 1), chunk(20, 1)], 20)], &cx);
        assert_eq!(plain.reasoning_tokens, None);
        assert_eq!(plain.first_answer_ms, None);
        assert_eq!(
            plain.token_count_sources,
            BTreeMap::from([("engine".to_string(), 1)])
        );

        let mut thinking = record(0, 0, vec![chunk(100, 1), chunk(120, 1), chunk(140, 1)], 140);
        thinking.chunks[0].reasoning = true;
        thinking.chunks[1].reasoning = true;
        thinking.reasoning_tokens = 2;
        thinking.token_count_source = TokenCountSource::Chunks;
        let mut usage = thinking.clone();
        usage.token_count_source = TokenCountSource::ServerUsage;
        let s = summarize_unit(&[thinking, usage], &cx);
        assert!(close(s.reasoning_tokens.unwrap().summary.mean, 2.0));
        assert!(close(s.first_answer_ms.unwrap().summary.mean, 140.0));
        assert!(close(s.ttft_ms.unwrap().summary.mean, 100.0));
        assert_eq!(
            s.token_count_sources,
            BTreeMap::from([("chunks".to_string(), 1), ("server_usage".to_string(), 1)])
        );
    }

    #[test]
    fn undefined_figures_are_none() {
        let one = derive(&record(0, 0, vec![chunk(10, 1)], 10));
        assert_eq!(one.tpot_ms, None);
        assert_eq!(one.decode_tokens_per_s, None);
        assert!(one.itl_ms.is_empty());
        let mut failed = record(0, 0, vec![], 5);
        failed.error = Some(RequestError {
            kind: ErrorKind::Engine,
            message: "x".into(),
        });
        let m = derive(&failed);
        assert_eq!(m.ttft_ms, None);
        assert_eq!(m.output_tokens_per_s, None);
        assert!(close(m.e2e_ms, 5.0));
    }

    #[test]
    fn engine_rates_come_from_engine_timings() {
        let mut r = record(0, 0, vec![chunk(10, 1), chunk(20, 1)], 20);
        r.engine_timings = Some(EngineTimings {
            source: "llama.cpp".into(),
            prompt_ms: 100.0,
            prompt_tokens: 200,
            decode_ms: 8.0,
            decode_tokens: 1,
        });
        let m = derive(&r);
        assert!(close(m.engine_prefill_tokens_per_s.unwrap(), 2000.0));
        assert!(close(m.engine_decode_tokens_per_s.unwrap(), 125.0));
    }

    #[test]
    fn json_validity() {
        assert!(is_valid_json_object(r#" {"a": 1} "#));
        assert!(is_valid_json_object("```json\n{\"a\": [1, 2]}\n```"));
        assert!(!is_valid_json_object("[1, 2]"));
        assert!(!is_valid_json_object(r#"{"a": 1} and more"#));
        assert!(!is_valid_json_object(r#"{"a": "#));
        assert!(!is_valid_json_object(""));
    }

    #[test]
    fn unit_summary_leaves_out_warmups_and_counts_failures() {
        let mut warm = record(0, 0, vec![chunk(1000, 1), chunk(2000, 1)], 2000);
        warm.warmup = true;
        let ok1 = record(0, 0, vec![chunk(100, 1), chunk(110, 1)], 110);
        let ok2 = record(0, 0, vec![chunk(200, 1), chunk(220, 1)], 220);
        let mut bad = record(0, 0, vec![], 5);
        bad.error = Some(RequestError {
            kind: ErrorKind::Timeout,
            message: "t".into(),
        });
        let s = summarize_unit(
            &[warm, ok1, ok2, bad],
            &UnitContext {
                model: "m",
                scenario: "s",
                json: true,
                peak_rss_mb: Some(12.5),
                duration_s: 3.0,
                seed: 42,
            },
        );
        assert_eq!((s.requests, s.successes), (3, 2));
        assert!(close(s.success_rate, 2.0 / 3.0));
        assert_eq!(s.failures.get("timeout"), Some(&1));
        assert_eq!(
            s.finish_reasons.values().sum::<usize>(),
            3,
            "{:?}",
            s.finish_reasons
        );
        let ttft = s.ttft_ms.unwrap();
        assert!(close(ttft.summary.mean, 150.0));
        assert_eq!(ttft.summary.n, 2);
        let ci = ttft.mean_ci.unwrap();
        assert!(ci.lower >= 100.0 && ci.upper <= 200.0 && ci.lower <= ci.upper);
        // Pooled gaps: 10 and 20 ms.
        assert!(close(s.itl_ms.unwrap().summary.mean, 15.0));
        assert_eq!(s.json_valid_rate, Some(0.0));
        // Window: scheduled 0 to the last end, 220 ms; 2 ok requests with 4 tokens.
        assert!(close(s.request_throughput_per_s.unwrap(), 2.0 / 0.220));
        assert!(close(s.output_token_throughput_per_s.unwrap(), 4.0 / 0.220));
        assert_eq!(s.peak_rss_mb, Some(12.5));
    }
}
