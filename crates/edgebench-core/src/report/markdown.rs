//! The Markdown report (`benchmark_report_{timestamp}.md`) and the number formats shared by the
//! Markdown and HTML renderings.

use std::fmt::Write;

use super::document::{model_label, MetricStats, Report, PERF_METRICS};
use super::verdict::{self, Applies, Level};
use crate::compliance::Compliance;

/// A figure with a precision that suits its size.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        "-".into()
    } else if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A fraction as a percentage.
pub fn pct(v: f64) -> String {
    if v.is_finite() {
        format!("{:.1}%", v * 100.0)
    } else {
        "-".into()
    }
}

/// Mean and CI, e.g. "123.4 [110.2, 130.8]".
pub fn mean_ci(m: Option<&MetricStats>) -> String {
    match m {
        None => "-".into(),
        Some(m) => match (m.ci_low, m.ci_high) {
            (Some(lo), Some(hi)) => format!("{} [{}, {}]", num(m.mean), num(lo), num(hi)),
            _ => num(m.mean),
        },
    }
}

/// A fraction score with its CI, e.g. "72.0% [65.1, 78.4]".
pub fn score_ci(value: f64, lo: Option<f64>, hi: Option<f64>) -> String {
    match (lo, hi) {
        (Some(lo), Some(hi)) => format!("{} [{:.1}, {:.1}]", pct(value), lo * 100.0, hi * 100.0),
        _ => pct(value),
    }
}

/// The p-value as shown.
pub fn p(v: Option<f64>) -> String {
    match v {
        Some(p) if p < 0.001 => "<0.001".into(),
        Some(p) => format!("{p:.3}"),
        None => "-".into(),
    }
}

/// Text safe inside a Markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The verdict of a figure, looked up in the report's verdicts.
pub fn verdict_of(r: &Report, model: &str, context: &str, metric: &str) -> Option<Level> {
    r.verdicts
        .iter()
        .find(|v| v.model == model && v.context == context && v.metric == metric)
        .map(|v| v.verdict)
}

fn with_mark(text: String, level: Option<Level>) -> String {
    match level {
        Some(l) => format!("{} {text}", l.mark()),
        None => text,
    }
}

fn setup(out: &mut String, r: &Report) {
    let _ = writeln!(out, "## Setup\n");
    if r.setup.is_empty() {
        let _ = writeln!(out, "No setup recorded.\n");
        return;
    }
    let _ = writeln!(
        out,
        "| experiment | kind | started | config hash | edgebench | machine | RAM (MB) | OS | engine | threads | seed | runs / items |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---:|---|---|---:|---:|---:|");
    for s in &r.setup {
        let cores = match s.physical_cores {
            Some(p) => format!("{p}C/{}T", s.logical_cores),
            None => format!("{}T", s.logical_cores),
        };
        let version = match &s.edgebench_commit {
            Some(c) => format!("{} ({})", s.edgebench_version, &c[..c.len().min(10)]),
            None => s.edgebench_version.clone(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | `{}` | {} | {} ({cores}) | {} | {} {} | {} | {} | {} | {} |",
            s.id,
            s.kind,
            s.started,
            &s.config_hash[..s.config_hash.len().min(12)],
            cell(&version),
            cell(&s.cpu_model),
            s.ram_total_mb,
            cell(&s.os),
            cell(&s.kernel),
            cell(&s.engines.join(", ")),
            s.threads.map_or_else(|| "-".into(), |t| t.to_string()),
            s.seed,
            s.runs
        );
    }
    out.push('\n');
    // Experiments on the same hardware and engine build share one line.
    let mut hw: Vec<(Vec<&str>, [&[String]; 4])> = Vec::new();
    for s in &r.setup {
        let key = [
            &s.gpus[..],
            &s.llama_cpp_backends[..],
            &s.simd[..],
            &s.engine_system_info[..],
        ];
        if key.iter().all(|v| v.is_empty()) {
            continue;
        }
        match hw.iter_mut().find(|(_, k)| *k == key) {
            Some((ids, _)) => ids.push(&s.id),
            None => hw.push((vec![&s.id], key)),
        }
    }
    if !hw.is_empty() {
        let _ = writeln!(
            out,
            "| experiments | GPUs | llama.cpp backends built | CPU SIMD | engine system info |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|");
        let list = |v: &[String], sep: &str| {
            if v.is_empty() {
                "-".to_string()
            } else {
                cell(&v.join(sep))
            }
        };
        let everyone = hw.len() == 1 && hw[0].0.len() == r.setup.len() && r.setup.len() > 1;
        for (ids, [gpus, backends, simd, info]) in &hw {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                if everyone {
                    "all".to_string()
                } else {
                    ids.join(", ")
                },
                if gpus.is_empty() {
                    "none found".to_string()
                } else {
                    cell(&gpus.join("; "))
                },
                list(backends, ", "),
                list(simd, " "),
                list(info, "; ")
            );
        }
        out.push('\n');
    }
    let files: Vec<&str> = r
        .setup
        .iter()
        .filter_map(|s| s.config_file.as_deref())
        .collect();
    if !files.is_empty() {
        let _ = writeln!(
            out,
            "Full configurations (plan, scenarios, models, config hash inputs): {}.\n",
            files.join(", ")
        );
    }
}

fn performance(out: &mut String, r: &Report) {
    let _ = writeln!(out, "## Performance\n");
    if r.performance.is_empty() {
        let _ = writeln!(out, "No performance runs in the input.\n");
        return;
    }
    let _ = writeln!(
        out,
        "Means with bootstrap 95% CIs over measured requests (warm-ups excluded). `ttft_ms` runs \
         from the scheduled time to the first text-bearing chunk; `output_tokens_per_s` is output \
         tokens / e2e; `decode_tokens_per_s` excludes the first chunk. Marks: {} good, {} fair, \
         {} poor (see Interpretation).\n",
        Level::Good.mark(),
        Level::Fair.mark(),
        Level::Poor.mark()
    );
    let _ = writeln!(
        out,
        "| model | scenario | n ok / n | success | ttft_ms | ttft_ms p90 | output_tokens_per_s | decode_tokens_per_s | e2e_ms | itl_ms p90 | peak_rss_mb | json_valid_rate |"
    );
    let _ = writeln!(
        out,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for row in &r.performance {
        let label = model_label(&row.model, &row.quantization);
        let m = |k: &str| row.metrics.get(k);
        let v = |k: &str| verdict_of(r, &label, &row.scenario, k);
        let _ = writeln!(
            out,
            "| {} | {} | {} / {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(&label),
            row.scenario,
            row.successes,
            row.requests,
            pct(row.success_rate),
            with_mark(mean_ci(m("ttft_ms")), v("ttft_ms")),
            m("ttft_ms").map_or_else(|| "-".into(), |x| num(x.p90)),
            with_mark(mean_ci(m("output_tokens_per_s")), v("output_tokens_per_s")),
            mean_ci(m("decode_tokens_per_s")),
            mean_ci(m("e2e_ms")),
            m("itl_ms").map_or_else(|| "-".into(), |x| num(x.p90)),
            with_mark(
                row.peak_rss_mb.map_or_else(|| "-".into(), num),
                v("peak_rss_mb")
            ),
            row.json_valid_rate.map_or_else(|| "-".into(), pct),
        );
    }
    out.push('\n');
    let resources: Vec<_> = r
        .performance
        .iter()
        .filter(|p| {
            p.energy_j.is_some()
                || p.joules_per_output_token.is_some()
                || p.peak_vram_mb.is_some()
                || p.max_temp_c.is_some()
        })
        .collect();
    if !resources.is_empty() {
        let _ = writeln!(
            out,
            "Energy, GPU memory and temperature over each unit's sampled span (warm-ups \
             included; \"-\" where the machine does not expose the sensor).\n"
        );
        let _ = writeln!(
            out,
            "| model | scenario | energy_j | joules_per_output_token | peak_vram_mb | max_temp_c |"
        );
        let _ = writeln!(out, "|---|---|---:|---:|---:|---:|");
        let show = |v: Option<f64>| v.map_or_else(|| "-".into(), num);
        for row in resources {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                cell(&model_label(&row.model, &row.quantization)),
                row.scenario,
                show(row.energy_j),
                row.joules_per_output_token
                    .map_or_else(|| "-".into(), |j| format!("{j:.4}")),
                show(row.peak_vram_mb),
                show(row.max_temp_c)
            );
        }
        out.push('\n');
    }
    for row in &r.performance {
        if let Some(w) = &row.busy_machine {
            let _ = writeln!(
                out,
                "> **Busy machine** during {} / {}: {w}. Its figures may be slow.\n",
                cell(&model_label(&row.model, &row.quantization)),
                row.scenario
            );
        }
    }
    let metrics: Vec<&str> = PERF_METRICS.iter().map(|(n, _)| *n).collect();
    let _ = writeln!(
        out,
        "Every metric ({}) with p50/p90/p99 is in performance_results.csv.\n",
        metrics.join(", ")
    );
}

fn capability(out: &mut String, r: &Report) {
    let _ = writeln!(out, "## Capability\n");
    if r.capability.is_empty() {
        let _ = writeln!(out, "No capability evals in the input.\n");
        return;
    }
    let _ = writeln!(
        out,
        "Scores with bootstrap 95% CIs over items (percent).\n\n| model | task | method | items | accuracy | macro_f1 | invalid_rate | other scores | items/s |"
    );
    let _ = writeln!(out, "|---|---|---|---:|---:|---:|---:|---|---:|");
    for c in &r.capability {
        let label = model_label(&c.model, &c.quantization);
        let s = |k: &str| {
            c.scores.get(k).map_or_else(
                || "-".to_string(),
                |x| {
                    with_mark(
                        score_ci(x.value, x.ci_low, x.ci_high),
                        verdict_of(r, &label, &c.task, k),
                    )
                },
            )
        };
        let other: Vec<String> = c
            .scores
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "accuracy" | "macro_f1" | "invalid_rate"))
            .map(|(k, v)| {
                format!(
                    "{k} {}",
                    with_mark(
                        score_ci(v.value, v.ci_low, v.ci_high),
                        verdict_of(r, &label, &c.task, k)
                    )
                )
            })
            .collect();
        let items = if c.items == c.items_total {
            c.items.to_string()
        } else {
            format!("{} of {}", c.items, c.items_total)
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {items} | {} | {} | {} | {} | {} |",
            cell(&label),
            c.task,
            c.method,
            s("accuracy"),
            s("macro_f1"),
            s("invalid_rate"),
            if other.is_empty() {
                "-".into()
            } else {
                other.join("; ")
            },
            num(c.items_per_s)
        );
    }
    out.push('\n');
    for c in &r.capability {
        if let Some(w) = &c.busy_machine {
            let _ = writeln!(
                out,
                "> **Busy machine** during {} / {}: {w}. Its items/s may be slow.\n",
                cell(&model_label(&c.model, &c.quantization)),
                c.task
            );
        }
    }
    for c in r.capability.iter().filter(|c| !c.confusions.is_empty()) {
        let conf: Vec<String> = c
            .confusions
            .iter()
            .map(|x| format!("{} → {} ×{}", x.gold, x.predicted, x.count))
            .collect();
        let _ = writeln!(
            out,
            "Most frequent confusions, {} on {}: {}.\n",
            model_label(&c.model, &c.quantization),
            c.task,
            conf.join("; ")
        );
    }
}

fn tradeoff(out: &mut String, r: &Report) {
    let _ = writeln!(out, "## Trade-off: accuracy vs decode speed\n");
    if r.tradeoff.is_empty() {
        let _ = writeln!(
            out,
            "Needs both a performance run and an eval of the same model.\n"
        );
        return;
    }
    let _ = writeln!(
        out,
        "| model | format | task | accuracy | decode_tokens_per_s (mean over n requests) |"
    );
    let _ = writeln!(out, "|---|---|---|---:|---:|");
    for t in &r.tradeoff {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} (n = {}) |",
            cell(&model_label(&t.model, &t.quantization)),
            t.format,
            t.task,
            score_ci(t.accuracy.value, t.accuracy.ci_low, t.accuracy.ci_high),
            num(t.decode_tokens_per_s),
            t.decode_n
        );
    }
    let formats: std::collections::BTreeSet<&str> =
        r.tradeoff.iter().map(|t| t.format.as_str()).collect();
    if formats.len() > 1 {
        let _ = writeln!(
            out,
            "\nFormats side by side: {}.",
            formats.into_iter().collect::<Vec<_>>().join(" vs ")
        );
    }
    out.push('\n');
}

fn comparisons(out: &mut String, r: &Report) {
    let _ = writeln!(out, "## Comparisons\n");
    if r.comparisons.is_empty() {
        let _ = writeln!(
            out,
            "One model only (or no per-request files): nothing to compare.\n"
        );
        return;
    }
    let _ = writeln!(
        out,
        "Each model against the first one, per shared scenario. Change = candidate / baseline - 1 \
         with a bootstrap 95% CI; p values are two-sided, Holm-adjusted within each pair of \
         models; effect sizes are positive when the candidate is larger.\n"
    );
    let _ = writeln!(
        out,
        "| baseline | candidate | scenario | metric | baseline | candidate | change [95% CI] | test | p (Holm) | effect | n |"
    );
    let _ = writeln!(out, "|---|---|---|---|---:|---:|---|---|---:|---|---:|");
    for c in &r.comparisons {
        for s in &c.scenarios {
            for m in &s.metrics {
                let change = match (m.relative_change, m.change_ci) {
                    (Some(x), Some([lo, hi])) => format!(
                        "{:+.1}% [{:+.1}%, {:+.1}%]",
                        x * 100.0,
                        lo * 100.0,
                        hi * 100.0
                    ),
                    (Some(x), None) => format!("{:+.1}%", x * 100.0),
                    _ => "-".into(),
                };
                let effect = match (&m.effect_kind, m.effect_size, &m.effect_label) {
                    (Some(k), Some(e), Some(l)) => format!("{k} = {e:+.2} ({l})"),
                    _ => "-".into(),
                };
                let sig = if m.p_holm.is_some_and(|p| p < 0.05) {
                    " *"
                } else {
                    ""
                };
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {change} | {} | {}{sig} | {effect} | {} / {} |",
                    cell(&c.baseline),
                    cell(&c.candidate),
                    s.scenario,
                    m.metric,
                    num(m.baseline),
                    num(m.candidate),
                    m.test,
                    p(m.p_holm),
                    m.n_baseline,
                    m.n_candidate
                );
            }
        }
    }
    let _ = writeln!(out, "\n\\* significant at 0.05 after Holm correction.\n");
}

fn interpretation(out: &mut String, r: &Report) {
    let _ = writeln!(out, "## Interpretation\n");
    let _ = writeln!(out, "| metric | applies to | rule | why |");
    let _ = writeln!(out, "|---|---|---|---|");
    for t in verdict::THRESHOLDS {
        let scope = match t.applies {
            Applies::Performance => "every model x scenario".to_string(),
            Applies::Task(task) => task.to_string(),
        };
        let _ = writeln!(
            out,
            "| {} | {scope} | {} | {} |",
            t.metric,
            t.rule(),
            t.basis
        );
    }
    out.push('\n');
    if r.verdicts.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "| model | scenario / task | metric | value | verdict |"
    );
    let _ = writeln!(out, "|---|---|---|---:|---|");
    for v in &r.verdicts {
        let value = if v.unit == "fraction" {
            pct(v.value)
        } else {
            format!("{} {}", num(v.value), v.unit)
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {value} | {} {} |",
            cell(&v.model),
            v.context,
            v.metric,
            v.verdict.mark(),
            v.verdict.as_str()
        );
    }
    out.push('\n');
}

fn failures(out: &mut String, r: &Report) {
    let _ = writeln!(out, "## Failures\n");
    if r.failures.is_empty() {
        let _ = writeln!(out, "No failed requests or units.\n");
        return;
    }
    let _ = writeln!(out, "| run | model | scenario | kind | count | detail |");
    let _ = writeln!(out, "|---|---|---|---|---:|---|");
    for f in &r.failures {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            f.run_id,
            cell(&f.model),
            f.scenario,
            f.kind,
            f.count,
            cell(&f.detail)
        );
    }
    out.push('\n');
}

/// The community rows as a pasteable Markdown table.
pub fn community_table(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", super::document::CommunityRow::HEADER);
    for c in &r.community {
        let _ = writeln!(out, "{}", c.markdown());
    }
    out
}

fn community(out: &mut String, r: &Report) {
    if r.community.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "## Community results row\n\ndevice = the GPU when one was used (VRAM use measured, or a \
         GPU the engine can drive), else the CPU; mean tok/s = decode_tokens_per_s over all \
         measured requests of the model; gen_tokens = mean output tokens per request; peak VRAM = \
         the highest over the model's units; KV cache \"-\" and VRAM \"-\" when not known or not \
         measured.\n"
    );
    out.push_str(&community_table(r));
    out.push('\n');
}

/// The compliance section (shared by the report and `edgebench compliance`).
pub fn compliance_section(c: &Compliance) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## Compliance\n");
    let _ = writeln!(
        out,
        "Residual risk after what edgebench measured, per risk of the {}, mapped to NIST AI RMF \
         functions. Levels come from the rules in compliance/risks.toml; \"default\" means no \
         measurement applies and organisational controls must carry the risk.\n",
        c.risk_analysis.frameworks.join(" and ")
    );
    let _ = writeln!(
        out,
        "| id | risk | RMF functions | evidence | residual risk | rationale |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for risk in &c.risk_analysis.risks {
        let ev: Vec<String> = risk
            .evidence
            .iter()
            .map(|e| {
                let v = match e.unit.as_str() {
                    "fraction" => pct(e.value),
                    "count" | "flag" => format!("{:.0}", e.value),
                    _ => num(e.value),
                };
                format!("{} = {v}", e.name)
            })
            .collect();
        let level = match risk.residual_risk {
            crate::compliance::RiskLevel::Low => "🟢 low",
            crate::compliance::RiskLevel::Medium => "🟡 medium",
            crate::compliance::RiskLevel::High => "🔴 high",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {level} | {} |",
            risk.id,
            cell(&risk.name),
            risk.rmf_functions.join(", "),
            if ev.is_empty() {
                "not measured".into()
            } else {
                ev.join("; ")
            },
            cell(&risk.rationale)
        );
    }
    let _ = writeln!(out, "\n### Licence audit\n");
    let _ = writeln!(
        out,
        "| model | GGUF licence | catalog licence | licence | commercial use | obligations | review |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    for m in &c.license_audit.models {
        let obligations = match (&m.attribution, &m.use_policy) {
            (Some(a), Some(u)) => format!("{a} {u}"),
            _ => "-".into(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:?} | {} | {} |",
            cell(&model_label(&m.model, &m.quantization)),
            m.gguf_license.as_deref().unwrap_or("-"),
            m.catalog_license.as_deref().unwrap_or("-"),
            m.license.as_deref().unwrap_or("unknown"),
            m.commercial_use,
            cell(&obligations),
            if m.flagged {
                format!("⚠ {}", cell(&m.notes.join("; ")))
            } else {
                "-".into()
            }
        );
    }
    out.push('\n');
    out
}

/// The report's sections in order, each with an id and its Markdown (HTML reuses them).
pub fn sections(r: &Report) -> Vec<(&'static str, String)> {
    type Section = fn(&mut String, &Report);
    let parts: [(&'static str, Section); 8] = [
        ("setup", setup),
        ("performance", performance),
        ("capability", capability),
        ("tradeoff", tradeoff),
        ("comparisons", comparisons),
        ("interpretation", interpretation),
        ("failures", failures),
        ("community", community),
    ];
    let mut out: Vec<(&'static str, String)> = parts
        .iter()
        .map(|(id, f)| {
            let mut s = String::new();
            f(&mut s, r);
            (*id, s)
        })
        .filter(|(_, s)| !s.is_empty())
        .collect();
    if let Some(c) = &r.compliance {
        out.push(("compliance", compliance_section(c)));
    }
    out
}

/// The title and the line under it.
pub fn preamble(r: &Report) -> String {
    format!(
        "# edgebench benchmark report\n\nGenerated {} from {} run(s) and {} eval(s).\n\n",
        r.generated,
        r.setup.iter().filter(|s| s.kind == "run").count(),
        r.capability.len()
    )
}

/// Renders the whole report as Markdown.
pub fn render(r: &Report) -> String {
    let mut out = preamble(r);
    for (_, s) in sections(r) {
        out.push_str(&s);
    }
    out
}
