//! The Markdown rendering of a comparison: printed by `edgebench compare` and reused by reports.

use std::fmt::Write;

use crate::compare::{AllComparison, Comparison, MetricComparison};

fn num(v: f64) -> String {
    if !v.is_finite() {
        "-".into()
    } else if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

fn pct(v: f64) -> String {
    format!("{:+.1}%", v * 100.0)
}

fn p(v: Option<f64>) -> String {
    match v {
        Some(p) if p < 0.001 => "<0.001".into(),
        Some(p) => format!("{p:.3}"),
        None => "-".into(),
    }
}

fn row(out: &mut String, m: &MetricComparison) {
    let change = match (m.relative_change, m.change_ci) {
        (Some(r), Some([lo, hi])) => format!("{} [{}, {}]", pct(r), pct(lo), pct(hi)),
        (Some(r), None) => pct(r),
        _ => "-".into(),
    };
    let effect = match (&m.effect_kind, m.effect_size, &m.effect_label) {
        (Some(k), Some(e), Some(l)) => format!("{k} = {e:+.2} ({l})"),
        _ => "-".into(),
    };
    let better = if m.higher_is_better { "↑" } else { "↓" };
    let _ = writeln!(
        out,
        "| {} {better} | {} | {} | {change} | {} | {} | {} | {effect} | {} / {} |",
        m.metric,
        num(m.baseline),
        num(m.candidate),
        m.test,
        p(m.p_value),
        p(m.p_holm),
        m.n_baseline,
        m.n_candidate,
    );
}

/// Renders a comparison as Markdown.
pub fn render(c: &Comparison) -> String {
    render_one(c, None)
}

/// Renders every pair of `compare --all`: an overview table of decisions, then each pair.
pub fn render_all(a: &AllComparison) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Every pair of models in {}

{} models, {} pairs with something in common; Holm's \
         correction runs over all {} tests of all pairs.
",
        a.source,
        a.models.len(),
        a.comparisons.len(),
        a.family_tests
    );
    let _ = writeln!(out, "| baseline | candidate | decision | rule |");
    let _ = writeln!(out, "|---|---|---|---|");
    for c in &a.comparisons {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            c.baseline,
            c.candidate,
            c.decision.verdict,
            c.decision.rule.replace('|', "\\|")
        );
    }
    out.push('\n');
    for c in &a.comparisons {
        out.push_str(&render_one(c, Some(a.family_tests)));
        out.push('\n');
    }
    out
}

fn render_one(c: &Comparison, family: Option<usize>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## Comparison: {} vs {}\n", c.baseline, c.candidate);
    let _ = writeln!(
        out,
        "**Decision: {}** — {}\n",
        c.decision.verdict, c.decision.rule
    );
    out.push_str(&render_tests(c, family));
    out
}

/// A comparison's scenario tables (differences, tests, effect sizes) and their legend, without
/// a decision: what the machine comparison shows between two machines.
pub fn render_tests(c: &Comparison, family: Option<usize>) -> String {
    let mut out = String::new();
    for s in &c.scenarios {
        let _ = writeln!(
            out,
            "### {} ({} vs {})\n\n{}.\n",
            s.scenario, s.baseline_model, s.candidate_model, s.pairing
        );
        let _ = writeln!(
            out,
            "| metric | baseline | candidate | change [95% CI] | test | p | p (Holm) | effect | n |"
        );
        let _ = writeln!(out, "|---|---:|---:|---|---|---:|---:|---|---:|");
        for m in &s.metrics {
            row(&mut out, m);
        }
        // Comparisons made before peak RSS became a metric row carry it on the side only.
        let rss_row = s
            .metrics
            .iter()
            .any(|m| m.metric == crate::compare::PEAK_RSS);
        if let ([Some(b), Some(cand)], false) = (s.peak_rss_mb, rss_row) {
            let _ = writeln!(
                out,
                "\npeak_rss_mb: {} -> {} ({})",
                num(b),
                num(cand),
                pct(cand / b - 1.0)
            );
        }
        let patterns: std::collections::BTreeSet<&String> =
            s.log_pattern_counts.iter().flat_map(|m| m.keys()).collect();
        for pat in patterns {
            let get = |i: usize| {
                s.log_pattern_counts[i]
                    .get(pat)
                    .map_or_else(|| "not counted".to_string(), |n| n.to_string())
            };
            let _ = writeln!(
                out,
                "\nserver log lines matching `{pat}`: {} -> {}",
                get(0),
                get(1)
            );
        }
        for (side, w) in ["baseline", "candidate"].iter().zip(&s.machine_warnings) {
            if let Some(w) = w {
                let _ = writeln!(out, "\n**{side} flagged**: {w}");
            }
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "Change = candidate / baseline - 1 with a bootstrap 95% CI; p values are two-sided; Holm \
         adjusts over all {} tests{}; effect sizes are positive when the candidate is larger \
         (d_z paired, d pooled, r rank-biserial). Arrows: which direction is better.",
        family.unwrap_or_else(|| c
            .scenarios
            .iter()
            .flat_map(|s| &s.metrics)
            .filter(|m| m.p_value.is_some())
            .count()),
        if family.is_some() {
            " of every pair"
        } else {
            ""
        }
    );
    out
}
