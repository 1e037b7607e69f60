//! `performance_results.csv` and `capability_results.csv`: one row per unit or per score, with
//! stable column names that carry units (RFC 4180 quoting; empty cells where undefined). New
//! columns are added at the end; `busy_machine` is the warning text when the machine did not
//! settle before the unit or task, empty otherwise.

use super::document::{Report, PERF_METRICS};

fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn opt(v: Option<f64>) -> String {
    v.filter(|x| x.is_finite())
        .map_or_else(String::new, |x| x.to_string())
}

fn line(out: &mut String, cells: &[String]) {
    let row: Vec<String> = cells.iter().map(|c| field(c)).collect();
    out.push_str(&row.join(","));
    out.push('\n');
}

/// The per-metric column suffixes, in order.
const STATS: &[&str] = &["mean", "ci_low", "ci_high", "p50", "p90", "p99", "n"];

/// The header of `performance_results.csv`.
pub fn performance_header() -> Vec<String> {
    let mut h: Vec<String> = [
        "run_id",
        "config_hash",
        "model",
        "publisher",
        "format",
        "quantization",
        "parameters",
        "scenario",
        "target_kind",
        "engine",
        "requests",
        "successes",
        "success_rate",
        "success_rate_ci_low",
        "success_rate_ci_high",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (name, _) in PERF_METRICS {
        for s in STATS {
            h.push(format!("{name}_{s}"));
        }
    }
    for s in [
        "peak_rss_mb",
        "mean_cpu_percent",
        "json_valid_rate",
        "model_load_ms",
        "context_tokens",
        "energy_j",
        "joules_per_output_token",
        "peak_vram_mb",
        "max_temp_c",
        "busy_machine",
    ] {
        h.push(s.to_string());
    }
    h
}

/// `performance_results.csv`.
pub fn performance(r: &Report) -> String {
    let mut out = String::new();
    line(&mut out, &performance_header());
    for row in &r.performance {
        let mut c = vec![
            row.run_id.clone(),
            row.config_hash.clone(),
            row.model.clone(),
            row.publisher.clone(),
            row.format.clone(),
            row.quantization.clone(),
            row.parameters.to_string(),
            row.scenario.clone(),
            row.target_kind.clone(),
            row.engine.clone(),
            row.requests.to_string(),
            row.successes.to_string(),
            row.success_rate.to_string(),
            opt(row.success_rate_ci_low),
            opt(row.success_rate_ci_high),
        ];
        for (name, _) in PERF_METRICS {
            match row.metrics.get(*name) {
                Some(m) => c.extend([
                    m.mean.to_string(),
                    opt(m.ci_low),
                    opt(m.ci_high),
                    m.p50.to_string(),
                    m.p90.to_string(),
                    m.p99.to_string(),
                    m.n.to_string(),
                ]),
                None => c.extend(STATS.iter().map(|_| String::new())),
            }
        }
        c.extend([
            opt(row.peak_rss_mb),
            opt(row.mean_cpu_percent),
            opt(row.json_valid_rate),
            opt(row.model_load_ms),
            row.context_tokens
                .map_or_else(String::new, |x| x.to_string()),
            opt(row.energy_j),
            opt(row.joules_per_output_token),
            opt(row.peak_vram_mb),
            opt(row.max_temp_c),
            row.busy_machine.clone().unwrap_or_default(),
        ]);
        line(&mut out, &c);
    }
    out
}

/// The header of `capability_results.csv`; scores are fractions in [0, 1].
pub const CAPABILITY_HEADER: &[&str] = &[
    "experiment_id",
    "config_hash",
    "model",
    "format",
    "quantization",
    "task",
    "method",
    "items",
    "items_total",
    "items_per_s",
    "score",
    "value_fraction",
    "ci_low_fraction",
    "ci_high_fraction",
    "n",
    "busy_machine",
];

/// `capability_results.csv`: one row per model x task x score.
pub fn capability(r: &Report) -> String {
    let mut out = String::new();
    line(
        &mut out,
        &CAPABILITY_HEADER
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>(),
    );
    for c in &r.capability {
        for (name, s) in &c.scores {
            line(
                &mut out,
                &[
                    c.experiment_id.clone(),
                    c.config_hash.clone(),
                    c.model.clone(),
                    c.format.clone(),
                    c.quantization.clone(),
                    c.task.clone(),
                    c.method.clone(),
                    c.items.to_string(),
                    c.items_total.to_string(),
                    c.items_per_s.to_string(),
                    name.clone(),
                    s.value.to_string(),
                    opt(s.ci_low),
                    opt(s.ci_high),
                    s.n.to_string(),
                    c.busy_machine.clone().unwrap_or_default(),
                ],
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_when_needed() {
        assert_eq!(field("a"), "a");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"x\""), "\"say \"\"x\"\"\"");
    }

    #[test]
    fn performance_columns_carry_units() {
        let h = performance_header();
        assert!(h.contains(&"ttft_ms_mean".to_string()));
        assert!(h.contains(&"ttft_ms_ci_low".to_string()));
        assert!(h.contains(&"decode_tokens_per_s_ci_high".to_string()));
        for c in [
            "energy_j",
            "joules_per_output_token",
            "peak_vram_mb",
            "max_temp_c",
        ] {
            assert!(h.contains(&c.to_string()), "{c}");
        }
        assert_eq!(h.last().map(String::as_str), Some("busy_machine"));
        let unique: std::collections::BTreeSet<&String> = h.iter().collect();
        assert_eq!(unique.len(), h.len());
    }
}
