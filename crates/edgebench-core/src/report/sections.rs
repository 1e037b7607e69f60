//! The report's sections as blocks: setup, performance, capability, trade-off, comparisons,
//! interpretation, failures, the community row and compliance, each figure with its verdict.

use super::document::{model_label, Report, PERF_METRICS};
use super::layout::{Blocks, Cell, Span};
use super::markdown::{cell, mean_ci, num, p, pct, score_ci, verdict_of};
use super::verdict::{self, Applies, Level};
use crate::compliance::Compliance;

pub(super) fn or_dash(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "-".into(), f)
}

pub(super) fn setup(b: &mut Blocks, r: &Report) {
    b.heading(2, "Setup");
    if r.setup.is_empty() {
        b.para("No setup recorded.");
        return;
    }
    let t = b.table(
        &[
            "experiment",
            "kind",
            "started",
            "config hash",
            "edgebench",
            "machine",
            "RAM (MB)",
            "OS",
            "engine",
            "threads",
            "seed",
            "runs / items",
        ],
        "llllllrllrrr",
    );
    for s in &r.setup {
        let cores = match s.physical_cores {
            Some(p) => format!("{p}C/{}T", s.logical_cores),
            None => format!("{}T", s.logical_cores),
        };
        let version = match &s.edgebench_commit {
            Some(c) => format!("{} ({})", s.edgebench_version, &c[..c.len().min(10)]),
            None => s.edgebench_version.clone(),
        };
        t.row(vec![
            s.id.clone().into(),
            s.kind.clone().into(),
            s.started.clone().into(),
            format!("`{}`", &s.config_hash[..s.config_hash.len().min(12)]).into(),
            cell(&version).into(),
            format!("{} ({cores})", cell(&s.cpu_model)).into(),
            s.ram_total_mb.to_string().into(),
            format!("{} {}", cell(&s.os), cell(&s.kernel)).into(),
            cell(&s.engines.join(", ")).into(),
            s.threads
                .map_or_else(|| "-".into(), |t| t.to_string())
                .into(),
            s.seed.to_string().into(),
            s.runs.to_string().into(),
        ]);
    }
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
        let list = |v: &[String], sep: &str| {
            if v.is_empty() {
                "-".to_string()
            } else {
                cell(&v.join(sep))
            }
        };
        let everyone = hw.len() == 1 && hw[0].0.len() == r.setup.len() && r.setup.len() > 1;
        let t = b.table(
            &[
                "experiments",
                "GPUs",
                "llama.cpp backends built",
                "CPU SIMD",
                "engine system info",
            ],
            "lllll",
        );
        for (ids, [gpus, backends, simd, info]) in &hw {
            t.row(vec![
                if everyone {
                    "all".to_string()
                } else {
                    ids.join(", ")
                }
                .into(),
                if gpus.is_empty() {
                    "none found".to_string()
                } else {
                    cell(&gpus.join("; "))
                }
                .into(),
                list(backends, ", ").into(),
                list(simd, " ").into(),
                list(info, "; ").into(),
            ]);
        }
    }
    let files: Vec<&str> = r
        .setup
        .iter()
        .filter_map(|s| s.config_file.as_deref())
        .collect();
    if !files.is_empty() {
        b.para(format!(
            "Full configurations (plan, scenarios, models, config hash inputs): {}.",
            files.join(", ")
        ));
    }
}

pub(super) fn performance(b: &mut Blocks, r: &Report) {
    b.heading(2, "Performance");
    if r.performance.is_empty() {
        b.para("No performance runs in the input.");
        return;
    }
    b.spans(vec![
        Span::Text(
            "Means with 95% CIs over measured requests (warm-ups excluded; bootstrap up to 500, Student's t beyond). `ttft_ms` runs \
             from the scheduled time to the first text-bearing chunk; `output_tokens_per_s` is output \
             tokens / e2e; `decode_tokens_per_s` excludes the first chunk. Marks: "
                .into(),
        ),
        Span::Mark(Level::Good),
        Span::Text(" good, ".into()),
        Span::Mark(Level::Fair),
        Span::Text(" fair, ".into()),
        Span::Mark(Level::Poor),
        Span::Text(" poor (see Interpretation).".into()),
    ]);
    let t = b.table(
        &[
            "model",
            "scenario",
            "n ok / n",
            "success",
            "ttft_ms",
            "ttft_ms p90",
            "output_tokens_per_s",
            "decode_tokens_per_s",
            "e2e_ms",
            "itl_ms p90",
            "peak_rss_mb",
            "json_valid_rate",
        ],
        "llrrrrrrrrrr",
    );
    for row in &r.performance {
        let label = model_label(&row.model, &row.quantization);
        let m = |k: &str| row.metrics.get(k);
        let v = |k: &str| verdict_of(r, &label, &row.scenario, k);
        t.row(vec![
            cell(&label).into(),
            row.scenario.clone().into(),
            format!("{} / {}", row.successes, row.requests).into(),
            pct(row.success_rate).into(),
            Cell::judged(mean_ci(m("ttft_ms")), v("ttft_ms")),
            m("ttft_ms")
                .map_or_else(|| "-".into(), |x| num(x.p90))
                .into(),
            Cell::judged(mean_ci(m("output_tokens_per_s")), v("output_tokens_per_s")),
            mean_ci(m("decode_tokens_per_s")).into(),
            mean_ci(m("e2e_ms")).into(),
            m("itl_ms")
                .map_or_else(|| "-".into(), |x| num(x.p90))
                .into(),
            Cell::judged(or_dash(row.peak_rss_mb, num), v("peak_rss_mb")),
            or_dash(row.json_valid_rate, pct).into(),
        ]);
    }
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
        b.para(
            "Energy, GPU memory and temperature over each unit's sampled span (warm-ups \
             included; \"-\" where the machine does not expose the sensor).",
        );
        let t = b.table(
            &[
                "model",
                "scenario",
                "energy_j",
                "joules_per_output_token",
                "peak_vram_mb",
                "max_temp_c",
            ],
            "llrrrr",
        );
        for row in resources {
            t.row(vec![
                cell(&model_label(&row.model, &row.quantization)).into(),
                row.scenario.clone().into(),
                or_dash(row.energy_j, num).into(),
                or_dash(row.joules_per_output_token, |j| format!("{j:.4}")).into(),
                or_dash(row.peak_vram_mb, num).into(),
                or_dash(row.max_temp_c, num).into(),
            ]);
        }
    }
    for row in &r.performance {
        if let Some(w) = &row.busy_machine {
            b.note(format!(
                "**Busy machine** during {} / {}: {w}. Its figures may be slow.",
                cell(&model_label(&row.model, &row.quantization)),
                row.scenario
            ));
        }
    }
    let metrics: Vec<&str> = PERF_METRICS.iter().map(|(n, _)| *n).collect();
    b.para(format!(
        "Every metric ({}) with p50/p90/p99 is in performance_results.csv.",
        metrics.join(", ")
    ));
}

pub(super) fn capability(b: &mut Blocks, r: &Report) {
    b.heading(2, "Capability");
    if r.capability.is_empty() {
        b.para("No capability evals in the input.");
        return;
    }
    b.para("Scores with bootstrap 95% CIs over items (percent).");
    let t = b.table(
        &[
            "model",
            "task",
            "method",
            "items",
            "accuracy",
            "macro_f1",
            "invalid_rate",
            "other scores",
            "items/s",
        ],
        "lllrrrrlr",
    );
    for c in &r.capability {
        let label = model_label(&c.model, &c.quantization);
        let s = |k: &str| {
            c.scores.get(k).map_or_else(
                || Cell::from("-"),
                |x| {
                    Cell::judged(
                        score_ci(x.value, x.ci_low, x.ci_high),
                        verdict_of(r, &label, &c.task, k),
                    )
                },
            )
        };
        let mut other: Vec<Span> = Vec::new();
        for (k, v) in c
            .scores
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "accuracy" | "macro_f1" | "invalid_rate"))
        {
            if !other.is_empty() {
                other.push(Span::Text("; ".into()));
            }
            other.push(Span::Text(format!("{k} ")));
            other.extend(
                Cell::judged(
                    score_ci(v.value, v.ci_low, v.ci_high),
                    verdict_of(r, &label, &c.task, k),
                )
                .0,
            );
        }
        let items = if c.items == c.items_total {
            c.items.to_string()
        } else {
            format!("{} of {}", c.items, c.items_total)
        };
        t.row(vec![
            cell(&label).into(),
            c.task.clone().into(),
            c.method.clone().into(),
            items.into(),
            s("accuracy"),
            s("macro_f1"),
            s("invalid_rate"),
            if other.is_empty() {
                "-".into()
            } else {
                Cell(other)
            },
            num(c.items_per_s).into(),
        ]);
    }
    for c in &r.capability {
        if let Some(w) = &c.busy_machine {
            b.note(format!(
                "**Busy machine** during {} / {}: {w}. Its items/s may be slow.",
                cell(&model_label(&c.model, &c.quantization)),
                c.task
            ));
        }
    }
    for c in r.capability.iter().filter(|c| !c.confusions.is_empty()) {
        let conf: Vec<String> = c
            .confusions
            .iter()
            .map(|x| format!("{} → {} ×{}", x.gold, x.predicted, x.count))
            .collect();
        b.para(format!(
            "Most frequent confusions, {} on {}: {}.",
            model_label(&c.model, &c.quantization),
            c.task,
            conf.join("; ")
        ));
    }
}

pub(super) fn tradeoff(b: &mut Blocks, r: &Report) {
    b.heading(2, "Trade-off: accuracy vs decode speed");
    if r.tradeoff.is_empty() {
        b.para("Needs both a performance run and an eval of the same model.");
        return;
    }
    let t = b.table(
        &[
            "model",
            "format",
            "task",
            "accuracy",
            "decode_tokens_per_s (mean over n requests)",
            "frontier",
        ],
        "lllrrl",
    );
    for x in &r.tradeoff {
        t.row(vec![
            cell(&model_label(&x.model, &x.quantization)).into(),
            x.format.clone().into(),
            x.task.clone().into(),
            score_ci(x.accuracy.value, x.accuracy.ci_low, x.accuracy.ci_high).into(),
            format!("{} (n = {})", num(x.decode_tokens_per_s), x.decode_n).into(),
            (if x.frontier { "yes" } else { "no" }).into(),
        ]);
    }
    let mut on: Vec<String> = Vec::new();
    for x in r.tradeoff.iter().filter(|x| x.frontier) {
        let s = format!("{} ({})", model_label(&x.model, &x.quantization), x.task);
        if !on.contains(&s) {
            on.push(s);
        }
    }
    if r.tradeoff.len() > 1 {
        b.para(format!(
            "On the frontier (no other model of the task, scored the same way, is at least as \
             accurate and as fast and better on one, by point estimates; overlapping CIs mean the \
             order may not hold): {}.",
            on.join(", ")
        ));
    }
    let formats: std::collections::BTreeSet<&str> =
        r.tradeoff.iter().map(|t| t.format.as_str()).collect();
    if formats.len() > 1 {
        b.para(format!(
            "Formats side by side: {}.",
            formats.into_iter().collect::<Vec<_>>().join(" vs ")
        ));
    }
}

pub(super) fn comparisons(b: &mut Blocks, r: &Report) {
    b.heading(2, "Comparisons");
    if r.comparisons.is_empty() {
        b.para("One model only (or no per-request files): nothing to compare.");
        return;
    }
    b.para(
        "Each model against the first one, per shared scenario. Change = candidate / baseline - 1 \
         with a bootstrap 95% CI; p values are two-sided, Holm-adjusted within each pair of \
         models; effect sizes are positive when the candidate is larger.",
    );
    let t = b.table(
        &[
            "baseline",
            "candidate",
            "scenario",
            "metric",
            "baseline",
            "candidate",
            "change [95% CI]",
            "test",
            "p (Holm)",
            "effect",
            "n",
        ],
        "llllrrllrlr",
    );
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
                t.row(vec![
                    cell(&c.baseline).into(),
                    cell(&c.candidate).into(),
                    s.scenario.clone().into(),
                    m.metric.clone().into(),
                    num(m.baseline).into(),
                    num(m.candidate).into(),
                    change.into(),
                    m.test.clone().into(),
                    format!("{}{sig}", p(m.p_holm)).into(),
                    effect.into(),
                    format!("{} / {}", m.n_baseline, m.n_candidate).into(),
                ]);
            }
        }
    }
    b.para("\\* significant at 0.05 after Holm correction.");
}

pub(super) fn interpretation(b: &mut Blocks, r: &Report) {
    b.heading(2, "Interpretation");
    let t = b.table(&["metric", "applies to", "rule", "why"], "llll");
    for x in verdict::THRESHOLDS {
        let scope = match x.applies {
            Applies::Performance => "every model x scenario".to_string(),
            Applies::Task(task) => task.to_string(),
        };
        t.row(vec![
            x.metric.into(),
            scope.into(),
            x.rule().into(),
            x.basis.into(),
        ]);
    }
    if r.verdicts.is_empty() {
        return;
    }
    let t = b.table(
        &["model", "scenario / task", "metric", "value", "verdict"],
        "lllrl",
    );
    for v in &r.verdicts {
        let value = if v.unit == "fraction" {
            pct(v.value)
        } else {
            format!("{} {}", num(v.value), v.unit)
        };
        t.row(vec![
            cell(&v.model).into(),
            v.context.clone().into(),
            v.metric.clone().into(),
            value.into(),
            Cell::judged(v.verdict.as_str(), Some(v.verdict)),
        ]);
    }
}

pub(super) fn failures(b: &mut Blocks, r: &Report) {
    b.heading(2, "Failures");
    if r.failures.is_empty() {
        b.para("No failed requests or units.");
        return;
    }
    let t = b.table(
        &["run", "model", "scenario", "kind", "count", "detail"],
        "llllrl",
    );
    for f in &r.failures {
        t.row(vec![
            f.run_id.clone().into(),
            cell(&f.model).into(),
            f.scenario.clone().into(),
            f.kind.clone().into(),
            f.count.to_string().into(),
            cell(&f.detail).into(),
        ]);
    }
}

pub(super) fn community_rows(b: &mut Blocks, r: &Report) {
    let t = b.table(&super::document::CommunityRow::HEAD, "llrlrrr");
    for c in &r.community {
        t.row(c.cells().into_iter().map(Cell::from).collect());
    }
}

pub(super) fn community(b: &mut Blocks, r: &Report) {
    if r.community.is_empty() {
        return;
    }
    b.heading(2, "Community results row");
    b.para(
        "device = the GPU when one was used (VRAM use measured, or a \
         GPU the engine can drive), else the CPU; mean tok/s = decode_tokens_per_s over all \
         measured requests of the model; gen_tokens = mean output tokens per request; peak VRAM = \
         the highest over the model's units; KV cache \"-\" and VRAM \"-\" when not known or not \
         measured.",
    );
    community_rows(b, r);
}

/// The compliance section's blocks.
pub(super) fn compliance_blocks(b: &mut Blocks, c: &Compliance) {
    b.heading(2, "Compliance");
    b.para(format!(
        "Residual risk after what edgebench measured, per risk of the {}, mapped to NIST AI RMF \
         functions. Levels come from the rules in compliance/risks.toml; \"default\" means no \
         measurement applies and organisational controls must carry the risk.",
        c.risk_analysis.frameworks.join(" and ")
    ));
    let t = b.table(
        &[
            "id",
            "risk",
            "RMF functions",
            "evidence",
            "residual risk",
            "rationale",
        ],
        "llllll",
    );
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
            crate::compliance::RiskLevel::Low => Cell::judged("low", Some(Level::Good)),
            crate::compliance::RiskLevel::Medium => Cell::judged("medium", Some(Level::Fair)),
            crate::compliance::RiskLevel::High => Cell::judged("high", Some(Level::Poor)),
        };
        t.row(vec![
            risk.id.clone().into(),
            cell(&risk.name).into(),
            risk.rmf_functions.join(", ").into(),
            if ev.is_empty() {
                "not measured".to_string()
            } else {
                ev.join("; ")
            }
            .into(),
            level,
            cell(&risk.rationale).into(),
        ]);
    }
    b.heading(3, "Licence audit");
    let t = b.table(
        &[
            "model",
            "GGUF licence",
            "catalog licence",
            "licence",
            "commercial use",
            "obligations",
            "review",
        ],
        "lllllll",
    );
    for m in &c.license_audit.models {
        let obligations = match (&m.attribution, &m.use_policy) {
            (Some(a), Some(u)) => format!("{a} {u}"),
            _ => "-".into(),
        };
        t.row(vec![
            cell(&model_label(&m.model, &m.quantization)).into(),
            m.gguf_license.as_deref().unwrap_or("-").into(),
            m.catalog_license.as_deref().unwrap_or("-").into(),
            m.license.as_deref().unwrap_or("unknown").into(),
            format!("{:?}", m.commercial_use).into(),
            cell(&obligations).into(),
            if m.flagged {
                format!("⚠ {}", cell(&m.notes.join("; ")))
            } else {
                "-".into()
            }
            .into(),
        ]);
    }
}
