//! Comparisons of two result sets (A/B): per unit (model x scenario) and metric, the baseline
//! and candidate values, the relative change with its bootstrap CI, a paired or unpaired test
//! chosen by a normality check (and which reason applied), Holm-adjusted p-values across the
//! family, effect sizes with labels, and a decision by the criteria that names the rule which
//! decided.

pub mod criteria;
pub mod load;

pub use criteria::{Criteria, CriteriaError};
pub use load::{load, CompareError, EvalSide, ResultSet};

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

use crate::eval::ItemResult;
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
/// Normal-theory tests need this many observations and a passing normality check.
const MIN_N_PARAMETRIC: usize = 20;

/// A metric compared between the two sides.
#[derive(Debug, Clone, Copy)]
pub struct MetricDef {
    pub name: &'static str,
    pub higher_is_better: bool,
    /// Whether it is a quality figure (0/1 per request, or an item score in [0, 1]) rather than
    /// a speed figure: always a rank test.
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

/// Every metric name a comparison can test or give a change for (what criteria files may name):
/// the per-request metrics, peak RSS, and the item-level eval figures.
pub fn metric_names() -> Vec<&'static str> {
    METRICS
        .iter()
        .map(|m| m.name)
        .chain([PEAK_RSS])
        .chain(ITEM_SCORES.iter().copied())
        .chain(["invalid_rate"])
        .collect()
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

/// Significance level of the Shapiro-Wilk gate in front of the t-tests.
const SW_ALPHA: f64 = 0.05;

/// `p = 0.412`, or `p < 0.001`.
fn p_text(p: f64) -> String {
    if p < 0.001 {
        "p < 0.001".into()
    } else {
        format!("p = {p:.3}")
    }
}

/// What the normality gate of the t-tests found for one sample (or the paired differences).
enum Normality {
    /// n >= 20 and Shapiro-Wilk does not reject: the Shapiro-Wilk p.
    Normal(f64),
    /// n < 20; the Shapiro-Wilk p too when it rejects as well.
    Small { n: usize, rejected: Option<f64> },
    /// n >= 20 but Shapiro-Wilk rejects.
    NotNormal { n: usize, p: f64 },
    /// Shapiro-Wilk could not be computed (all values identical ...).
    Undefined { n: usize, why: String },
}

fn normality(x: &[f64]) -> Normality {
    let n = x.len();
    let sw = stats::shapiro_wilk(x);
    if n < MIN_N_PARAMETRIC {
        let rejected = sw.ok().map(|t| t.p_value).filter(|p| *p < SW_ALPHA);
        return Normality::Small { n, rejected };
    }
    match sw {
        Ok(t) if t.p_value >= SW_ALPHA => Normality::Normal(t.p_value),
        Ok(t) => Normality::NotNormal { n, p: t.p_value },
        Err(stats::StatsError::ZeroVariance(_)) => Normality::Undefined {
            n,
            why: "all values identical".into(),
        },
        Err(e) => Normality::Undefined {
            n,
            why: e.to_string(),
        },
    }
}

impl Normality {
    /// Why the sample failed the gate; `who` names it ("differences", "baseline" ...) and `verb`
    /// agrees with it ("fail" / "fails"); `side` prefixes the n ("" or "baseline ").
    fn failure(&self, side: &str, who: &str, verb: &str) -> Option<String> {
        let min = MIN_N_PARAMETRIC;
        match self {
            Self::Normal(_) => None,
            Self::Small { n, rejected: None } => Some(format!("{side}n = {n} < {min}")),
            Self::Small {
                n,
                rejected: Some(p),
            } => Some(format!(
                "{side}n = {n} < {min} and {who} {verb} Shapiro-Wilk ({})",
                p_text(*p)
            )),
            Self::NotNormal { n, p } => Some(format!(
                "{side}n = {n}, {who} {verb} Shapiro-Wilk ({})",
                p_text(*p)
            )),
            Self::Undefined { n, why } => Some(format!(
                "{side}n = {n}, Shapiro-Wilk undefined for {who} ({why})"
            )),
        }
    }
}

/// Why a proportion metric gets a rank test: 0/1 values, or bounded item scores.
fn proportion_reason(b: &[f64], c: &[f64]) -> &'static str {
    if b.iter().chain(c).all(|v| *v == 0.0 || *v == 1.0) {
        "0/1 values (a proportion), so no normal-theory test"
    } else {
        "item scores bounded in [0, 1], so no normal-theory test"
    }
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
    let min = MIN_N_PARAMETRIC;
    let outcome = if paired {
        let diffs: Vec<f64> = c.iter().zip(b).map(|(c, b)| c - b).collect();
        let gate = normality(&diffs);
        let failure = gate.failure("", "differences", "fail");
        match (def.proportion, gate, failure) {
            (false, Normality::Normal(p), _) => (
                format!(
                    "paired t-test (n = {} >= {min}, differences pass Shapiro-Wilk, {})",
                    diffs.len(),
                    p_text(p)
                ),
                stats::paired_t_test(c, b),
                "d_z",
                stats::cohens_d_paired(c, b),
            ),
            (proportion, _, failure) => (
                format!(
                    "Wilcoxon signed-rank (paired; {})",
                    if proportion {
                        proportion_reason(b, c).to_string()
                    } else {
                        failure.unwrap_or_default()
                    }
                ),
                stats::wilcoxon_signed_rank(c, b),
                "r",
                stats::rank_biserial_paired(c, b),
            ),
        }
    } else {
        let (gb, gc) = (normality(b), normality(c));
        let failures: Vec<String> = [
            gb.failure("baseline ", "baseline", "fails"),
            gc.failure("candidate ", "candidate", "fails"),
        ]
        .into_iter()
        .flatten()
        .collect();
        match (def.proportion, gb, gc) {
            (false, Normality::Normal(pb), Normality::Normal(pc)) => (
                format!(
                    "Welch t-test (unpaired; n = {} / {} >= {min}, both pass Shapiro-Wilk, {} / {})",
                    b.len(),
                    c.len(),
                    p_text(pb),
                    p_text(pc)
                ),
                stats::welch_t_test(c, b),
                "d",
                stats::cohens_d_pooled(c, b),
            ),
            (proportion, _, _) => (
                format!(
                    "Mann-Whitney U (unpaired; {})",
                    if proportion {
                        proportion_reason(b, c).to_string()
                    } else {
                        failures.join("; ")
                    }
                ),
                stats::mann_whitney_u(c, b),
                "r",
                stats::rank_biserial_unpaired(c, b),
            ),
        }
    };
    let (name, test, kind, effect) = outcome;
    match test {
        Ok(t) => {
            m.test = name;
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

/// The name of the peak-RSS row.
pub const PEAK_RSS: &str = "peak_rss_mb";

/// The test text of figures that exist once per side (peak RSS of a unit).
const ONE_PER_SIDE: &str = "none: n=1 per side, no test";

/// The peak-RSS row of a unit pair: one value per side, a relative change and no test.
fn peak_rss_row(b: Option<f64>, c: Option<f64>) -> Option<MetricComparison> {
    let (b, c) = (b?, c?);
    Some(MetricComparison {
        metric: PEAK_RSS.to_string(),
        higher_is_better: false,
        baseline: b,
        candidate: c,
        n_baseline: 1,
        n_candidate: 1,
        relative_change: (b != 0.0 && b.is_finite() && c.is_finite()).then(|| c / b - 1.0),
        change_ci: None,
        test: ONE_PER_SIDE.to_string(),
        p_value: None,
        p_holm: None,
        effect_kind: None,
        effect_size: None,
        effect_label: None,
    })
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
        scenarios.push(ScenarioComparison {
            scenario: bk.1.clone(),
            baseline_model: bk.0.clone(),
            candidate_model: ck.0.clone(),
            paired,
            pairing,
            metrics,
            peak_rss_mb,
            log_pattern_counts: [counts(bu), counts(cu)],
        });
    }
    for (b, c) in tasks {
        scenarios.push(compare_eval(b, c, opts));
    }
    holm_adjust(scenarios.iter_mut());
    let decision = decide(&scenarios, criteria);
    Ok(Comparison {
        baseline: baseline.label.clone(),
        candidate: candidate.label.clone(),
        scenarios,
        criteria: criteria.clone(),
        decision,
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

/// The eval tasks both sides scored on (same task name, models matched as for perf units),
/// baseline first.
fn common_tasks<'a>(
    baseline: &'a ResultSet,
    candidate: &'a ResultSet,
    matching: &ModelMatch,
) -> Vec<(&'a EvalSide, &'a EvalSide)> {
    baseline
        .evals
        .iter()
        .filter_map(|b| {
            let key = (b.summary.model.name.clone(), b.summary.task.clone());
            let want = matching.partner(&key)?;
            candidate
                .evals
                .iter()
                .find(|c| c.summary.model.name == want.0 && c.summary.task == want.1)
                .map(|c| (b, c))
        })
        .collect()
}

/// One figure of an eval item.
type ItemFigure = fn(&ItemResult) -> Option<f64>;

/// The item-level figures compared for evals: the item score (accuracy, exact match, pass@1 or
/// the realistic task's overall score) and whether the answer could be mapped at all (only for
/// the tasks of [`INVALID_RATE_TASKS`]).
const EVAL_METRICS: &[(MetricDef, ItemFigure)] = &[
    (
        MetricDef {
            name: "accuracy",
            higher_is_better: true,
            proportion: true,
            extract: |_| None,
        },
        |i| Some(i.score),
    ),
    (
        MetricDef {
            name: "invalid_rate",
            higher_is_better: false,
            proportion: true,
            extract: |_| None,
        },
        |i| Some(if i.predicted.is_none() { 1.0 } else { 0.0 }),
    ),
];

/// The tasks whose items have an unmapped answer (`predicted: None`) exactly when the model's
/// answer could not be read as a label, a choice letter or a number: the classification tasks,
/// MMLU (a choice letter) and GSM8K. The realistic tasks leave `predicted` empty by design and
/// coding always sets an outcome, so an invalid rate would mean nothing there.
pub const INVALID_RATE_TASKS: &[&str] = &["banking77", "financial_phrasebank", "mmlu", "gsm8k"];

/// The test text of eval scores compared from the summaries only.
const WHOLE_SET: &str = "none: a whole-set score";

/// The name of a task's per-item score, as its summary calls it.
fn item_score_name(side: &EvalSide) -> &'static str {
    ITEM_SCORES
        .iter()
        .find(|n| side.summary.scores.contains_key(**n))
        .copied()
        .unwrap_or("item_score")
}

/// Per-item scores of the eval tasks, by the names their summaries use.
pub const ITEM_SCORES: &[&str] = &["accuracy", "exact_match", "pass_at_1", "overall"];

/// One eval task compared item by item (paired by item id when both sides scored the same items),
/// plus the whole-set scores of the summaries (macro-F1 ...) as values without a test.
fn compare_eval(b: &EvalSide, c: &EvalSide, opts: &CompareOptions) -> ScenarioComparison {
    let b_ids: BTreeSet<&str> = b.items.iter().map(|i| i.id.as_str()).collect();
    let c_ids: BTreeSet<&str> = c.items.iter().map(|i| i.id.as_str()).collect();
    let paired = !b_ids.is_empty()
        && b_ids == c_ids
        && b_ids.len() == b.items.len()
        && c_ids.len() == c.items.len();
    let pairing = if b.items.is_empty() || c.items.is_empty() {
        "summary scores only: the items are not in a results database".to_string()
    } else if paired {
        format!(
            "paired by item: both sides scored the same {} items",
            b_ids.len()
        )
    } else {
        format!(
            "unpaired: the sides share {} of {} / {} items (different samples)",
            b_ids.intersection(&c_ids).count(),
            b_ids.len(),
            c_ids.len()
        )
    };
    let mut metrics = Vec::new();
    if !b.items.is_empty() && !c.items.is_empty() {
        let invalid_rate_means_something = INVALID_RATE_TASKS.contains(&b.summary.task.as_str());
        for (def, get) in EVAL_METRICS {
            if def.name == "invalid_rate" && !invalid_rate_means_something {
                continue;
            }
            let (xb, xc): (Vec<f64>, Vec<f64>) = if paired {
                let cmap: BTreeMap<&str, &ItemResult> =
                    c.items.iter().map(|i| (i.id.as_str(), i)).collect();
                b.items
                    .iter()
                    .filter_map(|i| Some((get(i)?, get(cmap.get(i.id.as_str())?)?)))
                    .unzip()
            } else {
                (
                    b.items.iter().filter_map(get).collect(),
                    c.items.iter().filter_map(get).collect(),
                )
            };
            let mut m = test_metric(def, &xb, &xc, paired, opts);
            if def.name == "accuracy" {
                m.metric = item_score_name(b).to_string();
            }
            metrics.push(m);
        }
    }
    // Whole-set scores (macro-F1 and the rest) as reported by each summary.
    for (name, sb) in &b.summary.scores {
        if metrics.iter().any(|m| &m.metric == name) {
            continue;
        }
        let Some(sc) = c.summary.scores.get(name) else {
            continue;
        };
        let higher = !name.contains("invalid");
        metrics.push(MetricComparison {
            metric: name.clone(),
            higher_is_better: higher,
            baseline: sb.value,
            candidate: sc.value,
            n_baseline: sb.n,
            n_candidate: sc.n,
            relative_change: (sb.value != 0.0).then(|| sc.value / sb.value - 1.0),
            change_ci: None,
            test: format!("{WHOLE_SET}; its 95% CIs are in the eval summaries"),
            p_value: None,
            p_holm: None,
            effect_kind: None,
            effect_size: None,
            effect_label: None,
        });
    }
    let peak_rss_mb = [
        b.summary.monitor.as_ref().and_then(|m| m.peak_rss_mb),
        c.summary.monitor.as_ref().and_then(|m| m.peak_rss_mb),
    ];
    metrics.extend(peak_rss_row(peak_rss_mb[0], peak_rss_mb[1]));
    ScenarioComparison {
        scenario: format!("eval:{}", b.summary.task),
        baseline_model: b.summary.model.name.clone(),
        candidate_model: c.summary.model.name.clone(),
        paired,
        pairing,
        metrics,
        peak_rss_mb,
        log_pattern_counts: [BTreeMap::new(), BTreeMap::new()],
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
        c.decision = decide(&c.scenarios, criteria);
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

/// What the server-log pattern counts say about the warnings the criteria care about: the
/// patterns named by `warning_patterns`, or (when it is empty) every pattern either side counted,
/// in every perf scenario.
#[derive(Debug, Clone, PartialEq)]
enum Warnings {
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
fn several_models(scenarios: &[ScenarioComparison]) -> bool {
    scenarios
        .iter()
        .map(|s| &s.baseline_model)
        .collect::<BTreeSet<_>>()
        .len()
        > 1
}

/// Where a scenario comparison is, for the decision's rule: the scenario, and its model when
/// there are several.
fn place(s: &ScenarioComparison, several: bool) -> String {
    if several {
        format!("{} of {}", s.scenario, s.baseline_model)
    } else {
        s.scenario.clone()
    }
}

fn check_warnings(scenarios: &[ScenarioComparison], c: &Criteria) -> Warnings {
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

#[cfg(test)]
mod tests;
