//! The decision: warnings from server-log pattern counts, and the rules of the criteria that
//! keep the baseline or adopt the candidate, naming the rule that decided; and the
//! recommendations that say it in sentences.

use super::*;

/// One warning pattern over the perf scenarios: its baseline count (`None` when a scenario's
/// baseline did not count it) and its candidate count.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct PatternCount {
    pub pattern: String,
    pub before: Option<u64>,
    pub after: u64,
}

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
    /// Every pattern is counted on the candidate.
    Checked(Vec<PatternCount>),
}

impl Warnings {
    /// Patterns logged by the baseline and not by the candidate.
    fn resolved(&self) -> usize {
        match self {
            Self::Checked(p) => p
                .iter()
                .filter(|p| p.before.is_some_and(|b| b > 0) && p.after == 0)
                .count(),
            _ => 0,
        }
    }

    /// Lines the candidate still logged.
    fn after(&self) -> u64 {
        match self {
            Self::Checked(p) => p.iter().map(|p| p.after).sum(),
            _ => 0,
        }
    }

    /// Lines the baseline logged, when it counted every pattern.
    fn before(&self) -> Option<u64> {
        match self {
            Self::Checked(p) => p.iter().map(|p| p.before).sum(),
            _ => None,
        }
    }
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

/// A count of `pattern` in a side's counts: keyed by the pattern as given, or by the same text
/// regex-escaped or not (`--log-pattern 'factor 1.0'` counts what a preset names `factor 1\.0`).
fn count_of(m: &BTreeMap<String, u64>, pattern: &str) -> Option<u64> {
    m.get(pattern).copied().or_else(|| {
        m.iter()
            .find(|(k, _)| regex::escape(k) == pattern || **k == regex::escape(pattern))
            .map(|(_, n)| *n)
    })
}

/// One side's count of a pattern: over the whole server log (since its launch, so startup
/// warnings count) when `since_launch`, the largest such count over the scenarios since they
/// are cumulative; else the per-unit counts summed.
fn side_count(
    scenarios: &[&ScenarioComparison],
    side: usize,
    pattern: &str,
    since_launch: bool,
) -> Option<u64> {
    if since_launch {
        return scenarios
            .iter()
            .map(|s| count_of(&s.log_pattern_counts_since_launch[side], pattern))
            .max()
            .flatten();
    }
    scenarios
        .iter()
        .map(|s| count_of(&s.log_pattern_counts[side], pattern))
        .sum()
}

pub(super) fn check_warnings(scenarios: &[ScenarioComparison], c: &Criteria) -> Warnings {
    let perf: Vec<&ScenarioComparison> = scenarios
        .iter()
        .filter(|s| !s.scenario.starts_with("eval:"))
        .collect();
    let patterns: BTreeSet<String> = if c.warning_patterns.is_empty() {
        perf.iter()
            .flat_map(|s| {
                s.log_pattern_counts
                    .iter()
                    .chain(&s.log_pattern_counts_since_launch)
                    .flat_map(|m| m.keys().cloned())
            })
            .collect()
    } else if perf.is_empty() {
        BTreeSet::new()
    } else {
        c.warning_patterns.iter().cloned().collect()
    };
    if patterns.is_empty() {
        return Warnings::NotCounted;
    }
    let several = several_models(scenarios);
    // Whole-log counts only when both sides have them everywhere: a side from before they
    // existed has per-unit counts only, which miss start-up warnings, and would look resolved.
    let since_launch = perf.iter().all(|s| {
        s.log_pattern_counts_since_launch
            .iter()
            .all(|m| !m.is_empty())
    });
    let mut missing = Vec::new();
    let mut counts = Vec::new();
    for p in patterns {
        // Every scenario of the candidate must have counted it.
        let unchecked: Vec<String> = perf
            .iter()
            .filter(|s| {
                count_of(&s.log_pattern_counts[1], &p).is_none()
                    && count_of(&s.log_pattern_counts_since_launch[1], &p).is_none()
            })
            .map(|s| format!("`{p}` in {}", place(s, several)))
            .collect();
        if !unchecked.is_empty() {
            missing.extend(unchecked);
            continue;
        }
        counts.push(PatternCount {
            before: side_count(&perf, 0, &p, since_launch),
            after: side_count(&perf, 1, &p, since_launch).unwrap_or(0),
            pattern: p,
        });
    }
    if missing.is_empty() {
        Warnings::Checked(counts)
    } else {
        Warnings::NotChecked(missing)
    }
}

/// How much worse the candidate is on a metric (positive = worse), or 0 for a change shown to
/// lie inside the equivalence margin: such a change never decides.
fn worse(m: &MetricComparison) -> Option<f64> {
    if m.equivalent == Some(true) {
        return Some(0.0);
    }
    m.relative_change
        .map(|r| if m.higher_is_better { -r } else { r })
}

/// The worst impact over the impact metrics, where it is (metric, place) and its value.
fn impact(scenarios: &[ScenarioComparison], c: &Criteria) -> Option<(f64, String)> {
    let metrics = c.impact_metrics();
    let several = several_models(scenarios);
    scenarios
        .iter()
        .flat_map(|s| s.metrics.iter().map(move |m| (s, m)))
        .filter(|(_, m)| metrics.contains(&m.metric))
        .filter_map(|(s, m)| {
            worse(m).map(|w| (w, format!("{} in {}", m.metric, place(s, several))))
        })
        .fold(None, |best: Option<(f64, String)>, (w, at)| match best {
            Some((b, _)) if b >= w => best,
            _ => Some((w, at)),
        })
}

/// A significant quality drop: where, how much, and the rule's text.
struct QualityDrop {
    loss: f64,
    text: String,
}

/// Significant quality drops (Holm p < alpha, worse, outside the equivalence margin), worst
/// first.
fn quality_drops(scenarios: &[ScenarioComparison], c: &Criteria) -> Vec<QualityDrop> {
    let several = several_models(scenarios);
    let mut out: Vec<QualityDrop> = scenarios
        .iter()
        .flat_map(|s| s.metrics.iter().map(move |m| (s, m)))
        .filter(|(_, m)| c.quality_metrics.contains(&m.metric))
        .filter(|(_, m)| m.p_holm.is_some_and(|p| p < c.alpha))
        .filter_map(|(s, m)| {
            let loss = worse(m).filter(|w| *w > 0.0)?;
            Some(QualityDrop {
                loss,
                text: format!(
                    "{} in {} went from {:.3} to {:.3} ({:.1}% worse, Holm p = {:.3} < {})",
                    m.metric,
                    place(s, several),
                    m.baseline,
                    m.candidate,
                    loss * 100.0,
                    m.p_holm.unwrap_or(f64::NAN),
                    c.alpha
                ),
            })
        })
        .collect();
    out.sort_by(|a, b| b.loss.total_cmp(&a.loss));
    out
}

/// Applies the criteria to the scenario comparisons.
pub fn decide(scenarios: &[ScenarioComparison], c: &Criteria) -> Decision {
    let imp = impact(scenarios, c);
    let performance_impact = imp.as_ref().map(|(w, _)| *w);
    let keep = |rule: String| Decision {
        verdict: Verdict::KeepBaseline,
        rule,
        performance_impact,
    };
    let drops = quality_drops(scenarios, c);
    if let Some(d) = drops.first().filter(|d| d.loss > c.slight_quality_loss) {
        return keep(format!(
            "quality dropped significantly: {} (more than the slight loss of {:.0}% the criteria tolerate)",
            d.text,
            c.slight_quality_loss * 100.0
        ));
    }
    let slight = drops.first().map(|d| d.text.clone());
    let check = check_warnings(scenarios, c);
    if c.require_warnings_resolved {
        match &check {
            Warnings::NotChecked(missing) => {
                return keep(format!(
                    "warnings not checked: the candidate has no count of {} (results without \
                     their run summary, or a run without --log-pattern), and the criteria \
                     require them resolved",
                    missing.join(", ")
                ));
            }
            Warnings::Checked(_) if check.after() > 0 => {
                return keep(format!(
                    "warnings not resolved: the candidate still logged {} matching line(s) (baseline {})",
                    check.after(),
                    check
                        .before()
                        .map_or_else(|| "not counted".to_string(), |b| b.to_string())
                ));
            }
            _ => {}
        }
    }
    let resolved = check.resolved();
    if resolved < c.min_warnings_resolved {
        return keep(match &check {
            Warnings::NotCounted | Warnings::NotChecked(_) => format!(
                "no warning evidence: the criteria need {} warning(s) resolved and none was \
                 counted (run both sides with --log-pattern, or with the fp8-kv preset's \
                 patterns), so nothing shows the candidate fixes them",
                c.min_warnings_resolved
            ),
            Warnings::Checked(p) => format!(
                "only {resolved} of {} warning(s) resolved (logged by the baseline, gone on the \
                 candidate); the criteria need {}: without the warnings on the baseline there is \
                 nothing the candidate is shown to fix",
                p.len(),
                c.min_warnings_resolved
            ),
        });
    }
    let warnings = match &check {
        Warnings::NotCounted => "no log patterns counted".to_string(),
        Warnings::NotChecked(missing) => format!(
            "warnings not checked (the candidate has no count of {}; not required by the criteria)",
            missing.join(", ")
        ),
        Warnings::Checked(p) if check.after() == 0 => format!(
            "{resolved} of {} warning(s) resolved ({} -> 0)",
            p.len(),
            check.before().map_or_else(
                || "not counted on the baseline".to_string(),
                |b| b.to_string()
            )
        ),
        Warnings::Checked(_) => format!(
            "warnings not resolved ({} -> {}; not required by the criteria)",
            check
                .before()
                .map_or_else(|| "not counted".to_string(), |b| b.to_string()),
            check.after()
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
    let slight_text = |s: &str| {
        format!(
            "a slight quality loss ({s}, within {:.0}%)",
            c.slight_quality_loss * 100.0
        )
    };
    if imp.is_none() && !quality_tested.is_empty() {
        let warnings = if check == Warnings::NotCounted {
            String::new()
        } else {
            format!("; {warnings}")
        };
        let metrics_text = c.impact_metrics().join(" or ");
        return match &slight {
            Some(s) => Decision {
                verdict: Verdict::ApplyWithMonitoring,
                rule: format!(
                    "{}{warnings}; no {metrics_text} figures, so no performance gate",
                    slight_text(s)
                ),
                performance_impact: None,
            },
            None => Decision {
                verdict: Verdict::Apply,
                rule: format!(
                    "no significant quality drop in {} (item by item, Holm p >= {} or no difference){warnings}; no {metrics_text} figures, so no performance gate",
                    quality_tested.join(", "),
                    c.alpha,
                ),
                performance_impact: None,
            },
        };
    }
    let Some((imp, at)) = imp else {
        return keep(format!(
            "no {} figures to judge the performance impact",
            c.impact_metrics().join(" or ")
        ));
    };
    let pct = |x: f64| format!("{:.1}%", x * 100.0);
    let (verdict, rule) = if imp < c.apply_below && slight.is_none() {
        (
            Verdict::Apply,
            format!(
                "{warnings} and performance impact {} < {} (worst: {at})",
                pct(imp.max(0.0)),
                pct(c.apply_below)
            ),
        )
    } else if imp < c.monitor_below {
        let why = match &slight {
            Some(s) if imp < c.apply_below => format!(
                "{}; performance impact {} < {} (worst: {at})",
                slight_text(s),
                pct(imp.max(0.0)),
                pct(c.apply_below)
            ),
            Some(s) => format!(
                "{}; performance impact {} in [{}, {}) (worst: {at})",
                slight_text(s),
                pct(imp),
                pct(c.apply_below),
                pct(c.monitor_below)
            ),
            None => format!(
                "performance impact {} in [{}, {}) (worst: {at})",
                pct(imp),
                pct(c.apply_below),
                pct(c.monitor_below)
            ),
        };
        (Verdict::ApplyWithMonitoring, format!("{warnings}; {why}"))
    } else {
        (
            Verdict::KeepBaseline,
            format!(
                "performance impact {} >= {} (worst: {at})",
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

/// The decision in sentences, then what the reader should know beside it: warnings the
/// candidate still logs, changes too small to matter, flagged measurements.
pub fn recommend(scenarios: &[ScenarioComparison], c: &Criteria, d: &Decision) -> Vec<String> {
    let mut out = vec![match d.verdict {
        Verdict::Apply => format!("Apply the candidate: {}.", d.rule),
        Verdict::ApplyWithMonitoring => format!(
            "Apply the candidate with monitoring ({} and {} in production, then compare again): {}.",
            c.impact_metrics().join(", "),
            c.quality_metrics.join(", "),
            d.rule
        ),
        Verdict::KeepBaseline => format!("Keep the baseline: {}.", d.rule),
    }];
    let several = several_models(scenarios);
    // Server warnings are counted from the launch, so each scenario repeats its server's:
    // per side, each message once with its largest count.
    let side = |i: usize| {
        let mut m: BTreeMap<&str, u64> = BTreeMap::new();
        for w in scenarios.iter().flat_map(|s| &s.server_warnings[i]) {
            let n = m.entry(w.message.as_str()).or_default();
            *n = (*n).max(w.count);
        }
        m
    };
    let (before, after) = (side(0), side(1));
    if !after.is_empty() {
        out.push(format!(
            "The candidate's server still logged {} distinct warning(s): {}.",
            after.len(),
            after
                .iter()
                .map(|(w, n)| format!("\"{w}\" ({n}x)"))
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    let gone: Vec<&str> = before
        .keys()
        .filter(|w| !after.contains_key(*w))
        .copied()
        .collect();
    if !gone.is_empty() {
        out.push(format!(
            "Warnings of the baseline's server gone on the candidate's: {}.",
            gone.iter()
                .map(|w| format!("\"{w}\""))
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    for s in scenarios {
        let same: Vec<String> = s
            .metrics
            .iter()
            .filter(|m| m.equivalent == Some(true))
            .map(|m| {
                format!(
                    "{} ({:+.1}%)",
                    m.metric,
                    m.relative_change.unwrap_or(0.0) * 100.0
                )
            })
            .collect();
        if !same.is_empty() {
            out.push(format!(
                "No practical difference in {} of {}: each change lies within its equivalence margin (two one-sided tests), whatever its p-value.",
                same.join(", "),
                place(s, several)
            ));
        }
        for (side, w) in ["baseline", "candidate"].iter().zip(&s.machine_warnings) {
            if let Some(w) = w {
                out.push(format!(
                    "The {side}'s figures for {} are less trustworthy: {w}; run it again on a quiet machine before acting.",
                    place(s, several)
                ));
            }
        }
    }
    out
}
