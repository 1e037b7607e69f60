//! Comparisons of two result sets (A/B): per scenario and metric, the baseline and candidate
//! values, the relative change with its bootstrap CI, a paired or unpaired test chosen by a
//! normality check (and why), Holm-adjusted p-values across the family, effect sizes with
//! labels, and a decision by the criteria that names the rule which decided.

pub mod criteria;
pub mod load;

pub use criteria::{Criteria, CriteriaError};
pub use load::{load, CompareError, ResultSet};

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

use crate::report::files::PerfLine;
use crate::stats;

/// How a comparison computes its intervals.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CompareOptions {
    /// Seed of the bootstrap.
    pub seed: u64,
    /// Bootstrap resamples for the CIs of relative changes (10,000 by default).
    pub resamples: usize,
}

impl Default for CompareOptions {
    fn default() -> Self {
        Self {
            seed: 42,
            resamples: 10_000,
        }
    }
}
/// Normal-theory tests need this many observations and a passing normality check.
const MIN_N_PARAMETRIC: usize = 20;

/// A metric compared between the two sides.
#[derive(Debug, Clone, Copy)]
pub struct MetricDef {
    pub name: &'static str,
    pub higher_is_better: bool,
    /// Whether it is a quality figure (0/1 per request) rather than a speed figure.
    pub proportion: bool,
    extract: fn(&PerfLine) -> Option<f64>,
}

fn itl_p90(l: &PerfLine) -> Option<f64> {
    stats::percentile(&l.metrics.itl_ms, 90.0).ok()
}

/// The metrics compared, per request.
pub const METRICS: &[MetricDef] = &[
    MetricDef {
        name: "ttft_ms",
        higher_is_better: false,
        proportion: false,
        extract: |l| l.record.ok().then_some(l.metrics.ttft_ms).flatten(),
    },
    MetricDef {
        name: "output_tokens_per_s",
        higher_is_better: true,
        proportion: false,
        extract: |l| {
            l.record
                .ok()
                .then_some(l.metrics.output_tokens_per_s)
                .flatten()
        },
    },
    MetricDef {
        name: "decode_tokens_per_s",
        higher_is_better: true,
        proportion: false,
        extract: |l| {
            l.record
                .ok()
                .then_some(l.metrics.decode_tokens_per_s)
                .flatten()
        },
    },
    MetricDef {
        name: "itl_p90_ms",
        higher_is_better: false,
        proportion: false,
        extract: |l| l.record.ok().then(|| itl_p90(l)).flatten(),
    },
    MetricDef {
        name: "e2e_ms",
        higher_is_better: false,
        proportion: false,
        extract: |l| l.record.ok().then_some(l.metrics.e2e_ms),
    },
    MetricDef {
        name: "success_rate",
        higher_is_better: true,
        proportion: true,
        extract: |l| Some(if l.record.ok() { 1.0 } else { 0.0 }),
    },
    MetricDef {
        name: "json_valid_rate",
        higher_is_better: true,
        proportion: true,
        extract: |l| l.json_valid.map(|v| if v { 1.0 } else { 0.0 }),
    },
];

/// One metric's comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricComparison {
    pub metric: String,
    pub higher_is_better: bool,
    pub baseline: f64,
    pub candidate: f64,
    pub n_baseline: usize,
    pub n_candidate: usize,
    /// candidate / baseline - 1.
    pub relative_change: Option<f64>,
    /// Bootstrap 95% CI of the relative change.
    pub change_ci: Option<[f64; 2]>,
    /// The test used, or why there is none.
    pub test: String,
    pub p_value: Option<f64>,
    /// Holm-Bonferroni adjusted over every test of the comparison.
    pub p_holm: Option<f64>,
    /// "d_z", "d" or "r" (rank-biserial); positive when the candidate is larger.
    pub effect_kind: Option<String>,
    pub effect_size: Option<f64>,
    pub effect_label: Option<String>,
}

/// One scenario's comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioComparison {
    pub scenario: String,
    pub baseline_model: String,
    pub candidate_model: String,
    pub paired: bool,
    /// Why the tests are paired or not.
    pub pairing: String,
    pub metrics: Vec<MetricComparison>,
    /// Peak RSS of each side, from the run summaries.
    pub peak_rss_mb: [Option<f64>; 2],
    /// Server log lines matching each pattern, per side.
    pub log_pattern_counts: [BTreeMap<String, u64>; 2],
}

/// The verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Apply,
    ApplyWithMonitoring,
    KeepBaseline,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Apply => "apply",
            Self::ApplyWithMonitoring => "apply with monitoring",
            Self::KeepBaseline => "keep baseline",
        })
    }
}

/// A decision and the rule that made it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub verdict: Verdict,
    pub rule: String,
    /// The worst relative degradation of the primary metric over the scenarios (positive = worse).
    pub performance_impact: Option<f64>,
}

/// A whole comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub baseline: String,
    pub candidate: String,
    pub scenarios: Vec<ScenarioComparison>,
    pub criteria: Criteria,
    pub decision: Decision,
}

/// The test of one metric on two samples (paired when `paired`).
fn test_metric(
    def: &MetricDef,
    b: &[f64],
    c: &[f64],
    paired: bool,
    opts: &CompareOptions,
) -> MetricComparison {
    let mean = |x: &[f64]| stats::mean(x).unwrap_or(f64::NAN);
    let mut m = MetricComparison {
        metric: def.name.to_string(),
        higher_is_better: def.higher_is_better,
        baseline: mean(b),
        candidate: mean(c),
        n_baseline: b.len(),
        n_candidate: c.len(),
        relative_change: None,
        change_ci: None,
        test: String::new(),
        p_value: None,
        p_holm: None,
        effect_kind: None,
        effect_size: None,
        effect_label: None,
    };
    if m.baseline != 0.0 && m.baseline.is_finite() && m.candidate.is_finite() {
        m.relative_change = Some(m.candidate / m.baseline - 1.0);
    }
    if b.len() < 2 || c.len() < 2 {
        m.test = "none: fewer than 2 values on a side".into();
        return m;
    }
    m.change_ci = stats::bootstrap_ratio_of_means_ci(b, c, 0.95, opts.resamples, opts.seed, paired)
        .ok()
        .map(|ci| [ci.lower, ci.upper]);
    let normal = |x: &[f64]| {
        x.len() >= MIN_N_PARAMETRIC && stats::shapiro_wilk(x).is_ok_and(|t| t.p_value >= 0.05)
    };
    let outcome = if paired {
        let diffs: Vec<f64> = c.iter().zip(b).map(|(c, b)| c - b).collect();
        if !def.proportion && normal(&diffs) {
            (
                "paired t-test (n >= 20, differences pass Shapiro-Wilk)",
                stats::paired_t_test(c, b),
                "d_z",
                stats::cohens_d_paired(c, b),
            )
        } else {
            (
                "Wilcoxon signed-rank (paired; n < 20 or differences not normal)",
                stats::wilcoxon_signed_rank(c, b),
                "r",
                stats::rank_biserial_paired(c, b),
            )
        }
    } else if !def.proportion && normal(b) && normal(c) {
        (
            "Welch t-test (unpaired; n >= 20, both pass Shapiro-Wilk)",
            stats::welch_t_test(c, b),
            "d",
            stats::cohens_d_pooled(c, b),
        )
    } else {
        (
            "Mann-Whitney U (unpaired; n < 20 or not normal)",
            stats::mann_whitney_u(c, b),
            "r",
            stats::rank_biserial_unpaired(c, b),
        )
    };
    let (name, test, kind, effect) = outcome;
    match test {
        Ok(t) => {
            m.test = name.to_string();
            m.p_value = Some(t.p_value);
        }
        Err(e) => m.test = format!("none: {e}"),
    }
    if let Ok(es) = effect {
        m.effect_kind = Some(kind.to_string());
        m.effect_size = Some(es);
        let label = if kind == "r" {
            stats::rank_biserial_label(es)
        } else {
            stats::cohens_d_label(es)
        };
        m.effect_label = label.ok().map(|l| l.to_string());
    }
    m
}

/// The measured lines of one side, by scenario.
fn by_scenario(set: &ResultSet) -> BTreeMap<String, Vec<&PerfLine>> {
    let mut out: BTreeMap<String, Vec<&PerfLine>> = BTreeMap::new();
    for l in set.lines.iter().filter(|l| !l.record.warmup) {
        out.entry(l.scenario.clone()).or_default().push(l);
    }
    out
}

/// Compares two result sets scenario by scenario and decides by `criteria`.
pub fn compare(
    baseline: &ResultSet,
    candidate: &ResultSet,
    criteria: &Criteria,
    opts: &CompareOptions,
) -> Result<Comparison, CompareError> {
    let bs = by_scenario(baseline);
    let cs = by_scenario(candidate);
    let common: Vec<&String> = bs.keys().filter(|k| cs.contains_key(*k)).collect();
    if common.is_empty() {
        return Err(CompareError::NothingInCommon {
            baseline: bs.keys().cloned().collect::<Vec<_>>().join(", "),
            candidate: cs.keys().cloned().collect::<Vec<_>>().join(", "),
        });
    }
    let mut scenarios = Vec::new();
    for sc in common {
        let (bl, cl) = (&bs[sc], &cs[sc]);
        let b_ids: BTreeSet<&str> = bl.iter().map(|l| l.record.prompt_id.as_str()).collect();
        let c_ids: BTreeSet<&str> = cl.iter().map(|l| l.record.prompt_id.as_str()).collect();
        let paired = b_ids == c_ids && b_ids.len() == bl.len() && c_ids.len() == cl.len();
        let pairing = if paired {
            format!(
                "paired by prompt: both sides ran the same {} prompts",
                b_ids.len()
            )
        } else {
            let shared = b_ids.intersection(&c_ids).count();
            format!(
                "unpaired: the sides share {shared} of {} / {} prompts (different seeds or scenarios)",
                b_ids.len(),
                c_ids.len()
            )
        };
        let mut metrics = Vec::new();
        for def in METRICS {
            let (b, c): (Vec<f64>, Vec<f64>) = if paired {
                let cmap: BTreeMap<&str, &PerfLine> = cl
                    .iter()
                    .map(|l| (l.record.prompt_id.as_str(), *l))
                    .collect();
                bl.iter()
                    .filter_map(|l| {
                        let other = cmap.get(l.record.prompt_id.as_str())?;
                        Some(((def.extract)(l)?, (def.extract)(other)?))
                    })
                    .unzip()
            } else {
                (
                    bl.iter().filter_map(|l| (def.extract)(l)).collect(),
                    cl.iter().filter_map(|l| (def.extract)(l)).collect(),
                )
            };
            if b.is_empty() && c.is_empty() {
                continue;
            }
            metrics.push(test_metric(def, &b, &c, paired, opts));
        }
        let unit = |set: &ResultSet| {
            set.units
                .iter()
                .find(|u| &u.summary.scenario == sc)
                .cloned()
        };
        let (bu, cu) = (unit(baseline), unit(candidate));
        scenarios.push(ScenarioComparison {
            scenario: sc.clone(),
            baseline_model: bl[0].model.clone(),
            candidate_model: cl[0].model.clone(),
            paired,
            pairing,
            metrics,
            peak_rss_mb: [
                bu.as_ref().and_then(|u| u.summary.peak_rss_mb),
                cu.as_ref().and_then(|u| u.summary.peak_rss_mb),
            ],
            log_pattern_counts: [
                bu.map(|u| u.log_pattern_counts).unwrap_or_default(),
                cu.map(|u| u.log_pattern_counts).unwrap_or_default(),
            ],
        });
    }
    // Holm over the whole family of tests.
    let ps: Vec<f64> = scenarios
        .iter()
        .flat_map(|s| s.metrics.iter().filter_map(|m| m.p_value))
        .collect();
    if let Ok(adj) = stats::holm(&ps) {
        let mut it = adj.into_iter();
        for m in scenarios.iter_mut().flat_map(|s| s.metrics.iter_mut()) {
            if m.p_value.is_some() {
                m.p_holm = it.next();
            }
        }
    }
    let decision = decide(&scenarios, criteria);
    Ok(Comparison {
        baseline: baseline.label.clone(),
        candidate: candidate.label.clone(),
        scenarios,
        criteria: criteria.clone(),
        decision,
    })
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
    for s in scenarios {
        for m in s
            .metrics
            .iter()
            .filter(|m| c.quality_metrics.contains(&m.metric))
        {
            if m.p_holm.is_some_and(|p| p < c.alpha) && worse(m).is_some_and(|w| w > 0.0) {
                return Decision {
                    verdict: Verdict::KeepBaseline,
                    rule: format!(
                        "quality dropped significantly: {} in {} went from {:.3} to {:.3} (Holm p = {:.3} < {})",
                        m.metric,
                        s.scenario,
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
    let counted = scenarios
        .iter()
        .any(|s| !s.log_pattern_counts[0].is_empty() || !s.log_pattern_counts[1].is_empty());
    let remaining: u64 = scenarios
        .iter()
        .flat_map(|s| s.log_pattern_counts[1].values())
        .sum();
    let before: u64 = scenarios
        .iter()
        .flat_map(|s| s.log_pattern_counts[0].values())
        .sum();
    if c.require_warnings_resolved && counted && remaining > 0 {
        return Decision {
            verdict: Verdict::KeepBaseline,
            rule: format!(
                "warnings not resolved: the candidate still logged {remaining} matching line(s) (baseline {before})"
            ),
            performance_impact: impact,
        };
    }
    let warnings = if counted {
        format!("warnings resolved ({before} -> 0)")
    } else {
        "no log patterns counted".to_string()
    };
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

#[cfg(test)]
mod tests;
