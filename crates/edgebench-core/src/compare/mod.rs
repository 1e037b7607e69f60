//! Comparisons of two result sets (A/B): per unit (model x scenario) and metric, the baseline
//! and candidate values, the relative change with its bootstrap CI, a paired or unpaired test
//! chosen by a normality check (and which reason applied), Holm-adjusted p-values across the
//! family, effect sizes with labels, and a decision by the criteria that names the rule which
//! decided.

pub mod criteria;
mod decide;
mod eval;
pub mod load;
mod metric;

pub use criteria::{Criteria, CriteriaError, FP8_WARNINGS, PRESETS};
pub use decide::{decide, recommend};
pub use eval::{INVALID_RATE_TASKS, ITEM_SCORES};
pub use load::{load, load_stored, CompareError, EvalSide, ResultSet};
pub use metric::{
    metric_def, metric_names, test_lines, MetricDef, METRICS, PEAK_RSS, STEP_METRICS,
};

use eval::*;
use metric::*;

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

use crate::results::{PerfLine, UnitReport};
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
    /// The equivalence margin of this metric (a fraction of the baseline, from the criteria).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub margin: Option<f64>,
    /// Bootstrap 90% CI of the relative change: the interval of two one-sided tests at 5%.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_ci_90: Option<[f64; 2]>,
    /// Two one-sided tests at `margin`: `Some(true)` when the change is shown to lie within
    /// +/- margin (`change_ci_90` inside it), so it is no practical difference whatever its
    /// p-value; `None` without a CI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equivalent: Option<bool>,
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
    /// Peak RSS of each side, from the run summaries (also the `peak_rss_mb` metric row when
    /// both sides have it).
    pub peak_rss_mb: [Option<f64>; 2],
    /// Server log lines matching each pattern, per side (a pattern missing from a side was not
    /// counted there).
    pub log_pattern_counts: [BTreeMap<String, u64>; 2],
    /// Per side, what made its figures less trustworthy (a busy machine before the unit,
    /// interference during it), when anything did.
    #[serde(default)]
    pub machine_warnings: [Option<String>; 2],
    /// Per side, the same patterns counted over the server's whole log up to the unit's end
    /// (startup warnings included); empty where the results predate it.
    #[serde(default)]
    pub log_pattern_counts_since_launch: [BTreeMap<String, u64>; 2],
    /// Per side, the distinct warnings the server logged from its launch to the unit's end.
    #[serde(default)]
    pub server_warnings: [Vec<crate::backend::managed::LogWarning>; 2],
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
    /// What to do, in sentences: the decision and what it rests on, the warnings left, the
    /// changes too small to matter (`jq .recommendations`).
    #[serde(default)]
    pub recommendations: Vec<String>,
}

/// A unit of a result set: (model, scenario) for perf lines, (model, task) for evals.
type UnitKey = (String, String);

/// The measured lines of one side, by (model, scenario).
fn by_unit(set: &ResultSet) -> BTreeMap<UnitKey, Vec<&PerfLine>> {
    let mut out: BTreeMap<UnitKey, Vec<&PerfLine>> = BTreeMap::new();
    for l in set.lines.iter().filter(|l| !l.record.warmup) {
        out.entry((l.model.clone(), l.scenario.clone()))
            .or_default()
            .push(l);
    }
    out
}

/// Which units of the two sides are compared with each other.
enum ModelMatch {
    /// Units of the same model and scenario (some model is on both sides).
    SameModel,
    /// No model on both sides and one model per side: that model pair, scenario by scenario.
    Crossed { baseline: String, candidate: String },
}

impl ModelMatch {
    fn of(baseline: &ResultSet, candidate: &ResultSet) -> Result<Self, CompareError> {
        let (bm, cm) = (baseline.models(), candidate.models());
        if bm.is_empty() || cm.is_empty() || bm.iter().any(|m| cm.contains(m)) {
            return Ok(Self::SameModel);
        }
        match (bm.as_slice(), cm.as_slice()) {
            ([b], [c]) => Ok(Self::Crossed {
                baseline: b.clone(),
                candidate: c.clone(),
            }),
            _ => Err(CompareError::ModelsDiffer {
                baseline: bm.join(", "),
                candidate: cm.join(", "),
            }),
        }
    }

    /// The candidate unit compared with the baseline unit `key`, if it is one to compare.
    fn partner(&self, key: &UnitKey) -> Option<UnitKey> {
        match self {
            Self::SameModel => Some(key.clone()),
            Self::Crossed {
                baseline,
                candidate,
            } => (&key.0 == baseline).then(|| (candidate.clone(), key.1.clone())),
        }
    }
}

/// The unit report of `(model, scenario)`, when the set has its run summary.
fn unit_report<'a>(set: &'a ResultSet, key: &UnitKey) -> Option<&'a UnitReport> {
    set.units
        .iter()
        .find(|u| u.summary.model == key.0 && u.summary.scenario == key.1)
}

/// Compares two result sets unit by unit and decides by `criteria`. Units are (model, scenario)
/// pairs: the same model on both sides is compared with itself; when no model is on both sides
/// and each side holds one model (an A/B of two models), they are compared scenario by scenario;
/// anything else is refused ([`CompareError::ModelsDiffer`]).
pub fn compare(
    baseline: &ResultSet,
    candidate: &ResultSet,
    criteria: &Criteria,
    opts: &CompareOptions,
) -> Result<Comparison, CompareError> {
    let matching = ModelMatch::of(baseline, candidate)?;
    let bs = by_unit(baseline);
    let cs = by_unit(candidate);
    let common: Vec<(&UnitKey, UnitKey)> = bs
        .keys()
        .filter_map(|k| {
            matching
                .partner(k)
                .filter(|p| cs.contains_key(p))
                .map(|p| (k, p))
        })
        .collect();
    let tasks = common_tasks(baseline, candidate, &matching);
    if common.is_empty() && tasks.is_empty() {
        let names = |set: &ResultSet, by: &BTreeMap<UnitKey, Vec<&PerfLine>>| {
            by.keys()
                .map(|(m, s)| format!("{s} ({m})"))
                .chain(
                    set.evals
                        .iter()
                        .map(|e| format!("eval:{} ({})", e.summary.task, e.summary.model.name)),
                )
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(CompareError::NothingInCommon {
            baseline: names(baseline, &bs),
            candidate: names(candidate, &cs),
        });
    }
    let mut scenarios = Vec::new();
    for (bk, ck) in common {
        let (bl, cl) = (&bs[bk], &cs[&ck]);
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
        let (bu, cu) = (unit_report(baseline, bk), unit_report(candidate, &ck));
        let rss = |u: Option<&UnitReport>| {
            u.and_then(|u| u.summary.peak_rss_mb.or(u.monitor.peak_rss_mb))
        };
        let peak_rss_mb = [rss(bu), rss(cu)];
        metrics.extend(peak_rss_row(peak_rss_mb[0], peak_rss_mb[1]));
        let counts =
            |u: Option<&UnitReport>| u.map(|u| u.log_pattern_counts.clone()).unwrap_or_default();
        let since_launch = |u: Option<&UnitReport>| {
            u.map(|u| u.log_pattern_counts_since_launch.clone())
                .unwrap_or_default()
        };
        let warnings =
            |u: Option<&UnitReport>| u.map(|u| u.server_warnings.clone()).unwrap_or_default();
        scenarios.push(ScenarioComparison {
            scenario: bk.1.clone(),
            baseline_model: bk.0.clone(),
            candidate_model: ck.0.clone(),
            paired,
            pairing,
            metrics,
            peak_rss_mb,
            log_pattern_counts: [counts(bu), counts(cu)],
            machine_warnings: [
                bu.and_then(UnitReport::machine_warning),
                cu.and_then(UnitReport::machine_warning),
            ],
            log_pattern_counts_since_launch: [since_launch(bu), since_launch(cu)],
            server_warnings: [warnings(bu), warnings(cu)],
        });
    }
    for (b, c) in tasks {
        scenarios.push(compare_eval(b, c, opts));
    }
    holm_adjust(scenarios.iter_mut());
    apply_margins(&mut scenarios, criteria);
    let decision = decide(&scenarios, criteria);
    let recommendations = recommend(&scenarios, criteria, &decision);
    Ok(Comparison {
        baseline: baseline.label.clone(),
        candidate: candidate.label.clone(),
        scenarios,
        criteria: criteria.clone(),
        decision,
        recommendations,
    })
}

/// Holm-Bonferroni over every test of `family` (one comparison, or every pair of `--all`).
fn holm_adjust<'a>(family: impl Iterator<Item = &'a mut ScenarioComparison>) {
    let mut tested: Vec<&mut MetricComparison> = family
        .flat_map(|s| s.metrics.iter_mut())
        .filter(|m| m.p_value.is_some())
        .collect();
    let ps: Vec<f64> = tested.iter().filter_map(|m| m.p_value).collect();
    if let Ok(adj) = stats::holm(&ps) {
        for (m, p) in tested.iter_mut().zip(adj) {
            m.p_holm = Some(p);
        }
    }
}

/// Each metric's equivalence margin from the criteria, and whether its change is shown to lie
/// inside it (two one-sided tests, [`stats::within_margin`]).
fn apply_margins(scenarios: &mut [ScenarioComparison], criteria: &Criteria) {
    for m in scenarios.iter_mut().flat_map(|s| s.metrics.iter_mut()) {
        let margin = criteria.margin(&m.metric);
        m.margin = Some(margin);
        m.equivalent = m.change_ci_90.map(|ci| stats::within_margin(ci, margin));
    }
}

/// Every pair of models in one result set (`compare --all`), the earlier model as baseline,
/// with Holm's correction over the whole family of tests and each pair decided again after it.
pub fn compare_all(
    set: &ResultSet,
    criteria: &Criteria,
    opts: &CompareOptions,
) -> Result<AllComparison, CompareError> {
    let models = set.models();
    if models.len() < 2 {
        return Err(CompareError::OneModel(
            set.label.clone(),
            models.first().cloned().unwrap_or_default(),
        ));
    }
    let sides: Vec<ResultSet> = models.iter().map(|m| set.only_model(m)).collect();
    let mut pairs = Vec::new();
    for i in 0..sides.len() {
        for j in i + 1..sides.len() {
            match compare(&sides[i], &sides[j], criteria, opts) {
                Ok(c) => pairs.push(c),
                Err(CompareError::NothingInCommon { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    holm_adjust(pairs.iter_mut().flat_map(|c| c.scenarios.iter_mut()));
    for c in &mut pairs {
        apply_margins(&mut c.scenarios, criteria);
    }
    for c in &mut pairs {
        c.decision = decide(&c.scenarios, criteria);
        c.recommendations = recommend(&c.scenarios, criteria, &c.decision);
    }
    let family_tests = pairs
        .iter()
        .flat_map(|c| c.scenarios.iter().flat_map(|s| s.metrics.iter()))
        .filter(|m| m.p_value.is_some())
        .count();
    Ok(AllComparison {
        source: set.label.clone(),
        models,
        family_tests,
        comparisons: pairs,
    })
}

/// Every pair of models of one experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AllComparison {
    pub source: String,
    pub models: Vec<String>,
    /// Tests in the Holm family (over every pair).
    pub family_tests: usize,
    pub comparisons: Vec<Comparison>,
}

#[cfg(test)]
mod tests;
