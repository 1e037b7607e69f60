//! The decision: warnings from server-log pattern counts, and the rules of the criteria that
//! keep the baseline or adopt the candidate, naming the rule that decided.

use super::*;

/// What the server-log pattern counts say about the warnings the criteria care about: the
/// patterns named by `warning_patterns`, or (when it is empty) every pattern either side counted,
/// in every perf scenario.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Warnings {
    /// No pattern was counted on either side and none is named.
    NotCounted,
    /// The candidate has no count of these patterns (`pattern` in scenario): its results came
    /// without a run summary, or it ran without `--log-pattern`.
    NotChecked(Vec<String>),
    /// Every pattern is counted on the candidate: baseline and candidate totals (the baseline's
    /// `None` when it did not count them all).
    Checked { before: Option<u64>, after: u64 },
}

/// Whether the comparison holds units of more than one baseline model.
pub(super) fn several_models(scenarios: &[ScenarioComparison]) -> bool {
    scenarios
        .iter()
        .map(|s| &s.baseline_model)
        .collect::<BTreeSet<_>>()
        .len()
        > 1
}

/// Where a scenario comparison is, for the decision's rule: the scenario, and its model when
/// there are several.
pub(super) fn place(s: &ScenarioComparison, several: bool) -> String {
    if several {
        format!("{} of {}", s.scenario, s.baseline_model)
    } else {
        s.scenario.clone()
    }
}

pub(super) fn check_warnings(scenarios: &[ScenarioComparison], c: &Criteria) -> Warnings {
    let mut missing = Vec::new();
    let mut before = Some(0u64);
    let mut after = 0u64;
    let mut any = false;
    let several = several_models(scenarios);
    for s in scenarios
        .iter()
        .filter(|s| !s.scenario.starts_with("eval:"))
    {
        let [b, cand] = &s.log_pattern_counts;
        let patterns: BTreeSet<&String> = if c.warning_patterns.is_empty() {
            b.keys().chain(cand.keys()).collect()
        } else {
            c.warning_patterns.iter().collect()
        };
        for p in patterns {
            any = true;
            match cand.get(p) {
                Some(n) => after += n,
                None => missing.push(format!("`{p}` in {}", place(s, several))),
            }
            before = before.zip(b.get(p)).map(|(sum, n)| sum + n);
        }
    }
    if !any {
        Warnings::NotCounted
    } else if !missing.is_empty() {
        Warnings::NotChecked(missing)
    } else {
        Warnings::Checked { before, after }
    }
}

/// Applies the criteria to the scenario comparisons.
pub fn decide(scenarios: &[ScenarioComparison], c: &Criteria) -> Decision {
    let worse = |m: &MetricComparison| {
        m.relative_change
            .map(|r| if m.higher_is_better { -r } else { r })
    };
    let impact = scenarios
        .iter()
        .flat_map(|s| s.metrics.iter())
        .filter(|m| m.metric == c.primary_metric)
        .filter_map(worse)
        .reduce(f64::max);
    let several = several_models(scenarios);
    for s in scenarios {
        for m in s
            .metrics
            .iter()
            .filter(|m| c.quality_metrics.contains(&m.metric))
        {
            if m.p_holm.is_some_and(|p| p < c.alpha) && worse(m).is_some_and(|w| w > 0.0) {
                let place = place(s, several);
                return Decision {
                    verdict: Verdict::KeepBaseline,
                    rule: format!(
                        "quality dropped significantly: {} in {place} went from {:.3} to {:.3} (Holm p = {:.3} < {})",
                        m.metric,
                        m.baseline,
                        m.candidate,
                        m.p_holm.unwrap_or(f64::NAN),
                        c.alpha
                    ),
                    performance_impact: impact,
                };
            }
        }
    }
    let check = check_warnings(scenarios, c);
    if c.require_warnings_resolved {
        match &check {
            Warnings::NotChecked(missing) => {
                return Decision {
                    verdict: Verdict::KeepBaseline,
                    rule: format!(
                        "warnings not checked: the candidate has no count of {} (results without \
                         their run summary, or a run without --log-pattern), and the criteria \
                         require them resolved",
                        missing.join(", ")
                    ),
                    performance_impact: impact,
                };
            }
            Warnings::Checked { before, after } if *after > 0 => {
                return Decision {
                    verdict: Verdict::KeepBaseline,
                    rule: format!(
                        "warnings not resolved: the candidate still logged {after} matching line(s) (baseline {})",
                        before.map_or_else(|| "not counted".to_string(), |b| b.to_string())
                    ),
                    performance_impact: impact,
                };
            }
            _ => {}
        }
    }
    let warnings = match &check {
        Warnings::NotCounted => "no log patterns counted".to_string(),
        Warnings::NotChecked(missing) => format!(
            "warnings not checked (the candidate has no count of {}; not required by the criteria)",
            missing.join(", ")
        ),
        Warnings::Checked {
            before: Some(b),
            after: 0,
        } => format!("warnings resolved ({b} -> 0)"),
        Warnings::Checked {
            before: None,
            after: 0,
        } => "warnings resolved (not counted on the baseline -> 0)".to_string(),
        Warnings::Checked { before, after } => format!(
            "warnings not resolved ({} -> {after}; not required by the criteria)",
            before.map_or_else(|| "not counted".to_string(), |b| b.to_string())
        ),
    };
    let quality_tested: Vec<String> = scenarios
        .iter()
        .filter(|s| s.scenario.starts_with("eval:"))
        .flat_map(|s| s.metrics.iter())
        .filter(|m| c.quality_metrics.contains(&m.metric) && !m.test.starts_with(WHOLE_SET))
        .map(|m| m.metric.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if impact.is_none() && !quality_tested.is_empty() {
        let warnings = if check == Warnings::NotCounted {
            String::new()
        } else {
            format!("; {warnings}")
        };
        return Decision {
            verdict: Verdict::Apply,
            rule: format!(
                "no significant quality drop in {} (item by item, Holm p >= {} or no difference){warnings}; no {} figures, so no performance gate",
                quality_tested.join(", "),
                c.alpha,
                c.primary_metric
            ),
            performance_impact: None,
        };
    }
    let Some(imp) = impact else {
        return Decision {
            verdict: Verdict::KeepBaseline,
            rule: format!(
                "no {} figures to judge the performance impact",
                c.primary_metric
            ),
            performance_impact: None,
        };
    };
    let pct = |x: f64| format!("{:.1}%", x * 100.0);
    let (verdict, rule) = if imp < c.apply_below {
        (
            Verdict::Apply,
            format!(
                "{warnings} and {} impact {} < {}",
                c.primary_metric,
                pct(imp.max(0.0)),
                pct(c.apply_below)
            ),
        )
    } else if imp < c.monitor_below {
        (
            Verdict::ApplyWithMonitoring,
            format!(
                "{warnings}; {} impact {} in [{}, {})",
                c.primary_metric,
                pct(imp),
                pct(c.apply_below),
                pct(c.monitor_below)
            ),
        )
    } else {
        (
            Verdict::KeepBaseline,
            format!(
                "{} impact {} >= {}",
                c.primary_metric,
                pct(imp),
                pct(c.monitor_below)
            ),
        )
    };
    Decision {
        verdict,
        rule,
        performance_impact: Some(imp),
    }
}
