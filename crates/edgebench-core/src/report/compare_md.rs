//! The Markdown rendering of a comparison: printed by `edgebench compare` and reused by reports.

use std::fmt::Write;

use super::layout::{self, Blocks, Cell};
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

/// One metric's cells in the tests table.
fn row(m: &MetricComparison) -> Vec<String> {
    let change = match (m.relative_change, m.change_ci) {
        (Some(r), Some([lo, hi])) => format!("{} [{}, {}]", pct(r), pct(lo), pct(hi)),
        (Some(r), None) => pct(r),
        _ => "-".into(),
    };
    let change = match (m.equivalent, m.margin) {
        (Some(true), Some(mg)) => format!("{change} ≈ within ±{:.0}%", mg * 100.0),
        _ => change,
    };
    let effect = match (&m.effect_kind, m.effect_size, &m.effect_label) {
        (Some(k), Some(e), Some(l)) => format!("{k} = {e:+.2} ({l})"),
        _ => "-".into(),
    };
    let better = if m.higher_is_better { "↑" } else { "↓" };
    vec![
        format!("{} {better}", m.metric),
        num(m.baseline),
        num(m.candidate),
        change,
        m.test.replace('|', "\\|"),
        p(m.p_value),
        p(m.p_holm),
        effect,
        format!("{} / {}", m.n_baseline, m.n_candidate),
    ]
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
    for r in &c.recommendations {
        let _ = writeln!(out, "- {r}");
    }
    if !c.recommendations.is_empty() {
        out.push('\n');
    }
    out.push_str(&render_tests(c, family));
    out
}

/// A comparison's scenario tables (differences, tests, effect sizes) and their legend, without
/// a decision: what the machine comparison shows between two machines.
pub fn render_tests(c: &Comparison, family: Option<usize>) -> String {
    let mut b = Blocks::default();
    test_blocks(&mut b, c, family);
    layout::to_markdown(&b.0)
}

/// The blocks of [`render_tests`] (scenario headings at level 3), for the report's sections.
pub fn test_blocks(b: &mut Blocks, c: &Comparison, family: Option<usize>) {
    for s in &c.scenarios {
        b.heading(
            3,
            format!(
                "{} ({} vs {})",
                s.scenario, s.baseline_model, s.candidate_model
            ),
        );
        b.para(format!("{}.", s.pairing));
        let t = b.table(
            &[
                "metric",
                "baseline",
                "candidate",
                "change [95% CI]",
                "test",
                "p",
                "p (Holm)",
                "effect",
                "n",
            ],
            "lrrllrrlr",
        );
        for m in &s.metrics {
            t.row(row(m).into_iter().map(Cell::from).collect());
        }
        // Comparisons made before peak RSS became a metric row carry it on the side only.
        let rss_row = s
            .metrics
            .iter()
            .any(|m| m.metric == crate::compare::PEAK_RSS);
        if let ([Some(base), Some(cand)], false) = (s.peak_rss_mb, rss_row) {
            b.para(format!(
                "peak_rss_mb: {} -> {} ({})",
                num(base),
                num(cand),
                pct(cand / base - 1.0)
            ));
        }
        let patterns: std::collections::BTreeSet<&String> = s
            .log_pattern_counts
            .iter()
            .chain(&s.log_pattern_counts_since_launch)
            .flat_map(|m| m.keys())
            .collect();
        let since_launch = s
            .log_pattern_counts_since_launch
            .iter()
            .any(|m| !m.is_empty());
        for pat in patterns {
            let get = |m: &std::collections::BTreeMap<String, u64>| {
                m.get(pat)
                    .map_or_else(|| "not counted".to_string(), |n| n.to_string())
            };
            let [ub, uc] = &s.log_pattern_counts;
            let mut text = format!(
                "server log lines matching `{pat}`: {} -> {}",
                get(ub),
                get(uc)
            );
            if since_launch {
                let [lb, lc] = &s.log_pattern_counts_since_launch;
                text.push_str(&format!(
                    " during the unit, {} -> {} since the launch",
                    get(lb),
                    get(lc)
                ));
            }
            b.para(text);
        }
        for (side, w) in ["baseline", "candidate"].iter().zip(&s.machine_warnings) {
            if let Some(w) = w {
                b.note(format!("{side} flagged: {w}"));
            }
        }
    }
    b.para(format!(
        "Change = candidate / baseline - 1 with a bootstrap 95% CI; ≈: the change is shown to lie \
         within its equivalence margin (two one-sided tests, the 90% CI inside it), no practical \
         difference whatever its p; p values are two-sided; Holm adjusts over all {} tests{}; \
         effect sizes are positive when the candidate is larger (d_z paired, d pooled, r \
         rank-biserial; labels on the correlation scale, 0.1/0.3/0.5, for r). Arrows: which \
         direction is better.",
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
    ));
}
