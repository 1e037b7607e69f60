//! The human-readable run summary printed to stderr at the end of a run.

use std::fmt::Write;

use crate::metrics::MetricSummary;
use crate::results::{RunSummary, UnitReport};

fn num(v: f64) -> String {
    if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn row(out: &mut String, name: &str, m: &Option<MetricSummary>) {
    let Some(m) = m else {
        let _ = writeln!(out, "  {name:<28} {:>10}", "-");
        return;
    };
    let s = &m.summary;
    let ci = m.mean_ci.as_ref().map_or_else(
        || "-".to_string(),
        |c| format!("[{}, {}]", num(c.lower), num(c.upper)),
    );
    let _ = writeln!(
        out,
        "  {name:<28} {:>10} {:>22} {:>10} {:>10} {:>10} {:>6}",
        num(s.mean),
        ci,
        num(s.p50),
        num(s.p90),
        num(s.p99),
        s.n
    );
}

fn unit(out: &mut String, u: &UnitReport) {
    let s = &u.summary;
    let rate_ci = s.success_rate_ci.as_ref().map_or_else(String::new, |c| {
        format!(" [{:.1}, {:.1}]", c.lower * 100.0, c.upper * 100.0)
    });
    let _ = writeln!(
        out,
        "{}: {} requests, {} ok ({:.1}%{rate_ci}), {:.1} s",
        s.scenario,
        s.requests,
        s.successes,
        s.success_rate * 100.0,
        s.duration_s
    );
    if !s.failures.is_empty() {
        let kinds: Vec<String> = s
            .failures
            .iter()
            .map(|(k, n)| format!("{k} x{n}"))
            .collect();
        let _ = writeln!(out, "  failures: {}", kinds.join(", "));
    }
    let _ = writeln!(
        out,
        "  {:<28} {:>10} {:>22} {:>10} {:>10} {:>10} {:>6}",
        "metric", "mean", "95% CI of mean", "p50", "p90", "p99", "n"
    );
    row(out, "ttft_ms", &s.ttft_ms);
    row(out, "output_tokens_per_s", &s.output_tokens_per_s);
    row(out, "decode_tokens_per_s", &s.decode_tokens_per_s);
    row(out, "prefill_tokens_per_s", &s.prefill_tokens_per_s);
    row(out, "itl_ms", &s.itl_ms);
    row(out, "tpot_ms", &s.tpot_ms);
    row(out, "e2e_ms", &s.e2e_ms);
    if s.engine_decode_tokens_per_s.is_some() {
        row(
            out,
            "engine_decode_tokens_per_s",
            &s.engine_decode_tokens_per_s,
        );
        row(
            out,
            "engine_prefill_tokens_per_s",
            &s.engine_prefill_tokens_per_s,
        );
    }
    if s.first_answer_ms.is_some() {
        row(out, "first_answer_ms", &s.first_answer_ms);
    }
    row(out, "prompt_tokens", &s.prompt_tokens);
    row(out, "output_tokens", &s.output_tokens);
    if s.reasoning_tokens.is_some() {
        row(out, "reasoning_tokens", &s.reasoning_tokens);
    }
    if let Some(n) = s.token_count_sources.get("chunks") {
        let _ = writeln!(
            out,
            "  warning: output tokens of {n} of {} requests are streamed chunks (the server sent no usage; an estimate, pass --tokenizer to count them)",
            s.successes
        );
    }
    if let (Some(rq), Some(tk)) = (s.request_throughput_per_s, s.output_token_throughput_per_s) {
        let _ = writeln!(
            out,
            "  throughput: {} requests/s, {} output tokens/s",
            num(rq),
            num(tk)
        );
    }
    let rss = s
        .peak_rss_mb
        .map_or_else(|| "-".to_string(), |v| format!("{v:.1}"));
    let _ = write!(out, "  peak_rss_mb {rss}");
    if let Some(cpu) = u.monitor.mean_cpu_percent {
        let _ = write!(out, "   mean_cpu_percent {cpu:.1}");
    }
    if let Some(c) = u.context_tokens {
        let _ = write!(out, "   context_tokens {c}");
    }
    if let Some(j) = s.json_valid_rate {
        let _ = write!(out, "   json_valid_rate {:.1}%", j * 100.0);
    }
    if let Some(i) = &u.monitor.interference {
        let _ = write!(
            out,
            "   other_cpu {:.1}%   steal {:.1}%",
            i.other_cpu_percent_of_core, i.steal_percent_of_core
        );
    }
    out.push('\n');
    if let Some(w) = u.machine_warning() {
        let _ = writeln!(out, "  warning: {w}");
    }
    for (pattern, n) in &u.log_pattern_counts {
        let since = u
            .log_pattern_counts_since_launch
            .get(pattern)
            .filter(|all| *all != n)
            .map_or_else(String::new, |all| format!(" ({all} since the launch)"));
        let _ = writeln!(out, "  server log lines matching {pattern:?}: {n}{since}");
    }
    for w in &u.server_warnings {
        let _ = writeln!(out, "  server warning ({}x): {}", w.count, w.message);
    }
}

/// Renders the run summary as aligned text.
pub fn render_summary(r: &RunSummary) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "edgebench run {} (seed {}, {} runs + {} warm-up per scenario, config {})",
        r.run_id,
        r.plan.seed,
        r.plan.runs,
        r.plan.warmup,
        &r.config_hash[..r.config_hash.len().min(12)]
    );
    for m in &r.models {
        let _ = writeln!(out);
        let threads = m
            .target
            .threads
            .map_or_else(String::new, |t| format!(", {t} threads"));
        let load = m
            .target
            .model_load_ms
            .map_or_else(String::new, |t| format!(", load {t:.0} ms"));
        let rss = m
            .target
            .rss_after_load_mb
            .map_or_else(String::new, |v| format!(", RSS after load {v:.1} MB"));
        let _ = writeln!(
            out,
            "== {} ({} {}) on {}{threads}{load}{rss}",
            m.model.name, m.model.format, m.model.quantization, m.target.engine
        );
        for u in &m.units {
            unit(&mut out, u);
        }
    }
    if !r.sweep.is_empty() {
        out.push('\n');
        out.push_str(&crate::workload::sweep::render(&r.sweep));
    }
    out
}
