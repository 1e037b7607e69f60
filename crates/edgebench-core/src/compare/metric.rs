//! Per-metric comparison: the metrics compared, the normality gate, the test chosen (paired
//! or not, parametric or rank), the relative change with its bootstrap CI, and effect sizes.

use super::*;

/// Normal-theory tests need this many observations and a passing normality check.
pub(super) const MIN_N_PARAMETRIC: usize = 20;

/// A metric compared between the two sides.
#[derive(Debug, Clone, Copy)]
pub struct MetricDef {
    pub name: &'static str,
    pub higher_is_better: bool,
    /// Whether it is a quality figure (0/1 per request, or an item score in [0, 1]) rather than
    /// a speed figure: always a rank test.
    pub proportion: bool,
    pub(super) extract: fn(&PerfLine) -> Option<f64>,
}

pub(super) fn itl_p90(l: &PerfLine) -> Option<f64> {
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

/// Per-request figures the step studies test beside [`METRICS`] (not in `compare`'s own table).
pub const STEP_METRICS: &[MetricDef] = &[
    MetricDef {
        name: "prefill_tokens_per_s",
        higher_is_better: true,
        proportion: false,
        extract: |l| {
            l.record
                .ok()
                .then_some(l.metrics.prefill_tokens_per_s)
                .flatten()
        },
    },
    MetricDef {
        name: "output_tokens",
        higher_is_better: true,
        proportion: false,
        extract: |l| l.record.ok().then_some(l.record.output_tokens as f64),
    },
];

/// The definition of a per-request metric by name, from [`METRICS`] or [`STEP_METRICS`].
pub fn metric_def(name: &str) -> Option<&'static MetricDef> {
    METRICS.iter().chain(STEP_METRICS).find(|m| m.name == name)
}

/// Two sets of measured requests (two steps of a study) compared on `metrics` with the test
/// `compare` chooses, Holm-adjusted over them: paired by prompt when both sides asked the same
/// prompts (a thread count against another), else unpaired.
pub fn test_lines(
    metrics: &[&MetricDef],
    baseline: &[&PerfLine],
    candidate: &[&PerfLine],
    opts: &CompareOptions,
) -> Vec<MetricComparison> {
    let values = |lines: &[&PerfLine], d: &MetricDef| -> Vec<f64> {
        lines
            .iter()
            .filter(|l| !l.record.warmup)
            .filter_map(|l| (d.extract)(l))
            .collect()
    };
    let ids = |lines: &[&PerfLine]| -> BTreeSet<String> {
        lines
            .iter()
            .filter(|l| !l.record.warmup)
            .map(|l| l.record.prompt_id.clone())
            .collect()
    };
    let paired = !baseline.is_empty() && ids(baseline) == ids(candidate);
    let pairs = |d: &MetricDef| -> (Vec<f64>, Vec<f64>) {
        baseline
            .iter()
            .filter(|l| !l.record.warmup)
            .filter_map(|b| {
                let c = candidate
                    .iter()
                    .find(|c| !c.record.warmup && c.record.prompt_id == b.record.prompt_id)?;
                Some(((d.extract)(b)?, (d.extract)(c)?))
            })
            .unzip()
    };
    let mut out: Vec<MetricComparison> = metrics
        .iter()
        .map(|d| {
            if paired {
                let (b, c) = pairs(d);
                test_metric(d, &b, &c, true, opts)
            } else {
                test_metric(d, &values(baseline, d), &values(candidate, d), false, opts)
            }
        })
        .collect();
    let ps: Vec<f64> = out.iter().filter_map(|m| m.p_value).collect();
    if let Ok(adj) = stats::holm(&ps) {
        for (m, p) in out.iter_mut().filter(|m| m.p_value.is_some()).zip(adj) {
            m.p_holm = Some(p);
        }
    }
    out
}

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

/// Significance level of the Shapiro-Wilk gate in front of the t-tests.
pub(super) const SW_ALPHA: f64 = 0.05;

/// `p = 0.412`, or `p < 0.001`.
pub(super) fn p_text(p: f64) -> String {
    if p < 0.001 {
        "p < 0.001".into()
    } else {
        format!("p = {p:.3}")
    }
}

/// What the normality gate of the t-tests found for one sample (or the paired differences).
pub(super) enum Normality {
    /// n >= 20 and Shapiro-Wilk does not reject: the Shapiro-Wilk p.
    Normal(f64),
    /// n < 20; the Shapiro-Wilk p too when it rejects as well.
    Small { n: usize, rejected: Option<f64> },
    /// n >= 20 but Shapiro-Wilk rejects.
    NotNormal { n: usize, p: f64 },
    /// Shapiro-Wilk could not be computed (all values identical ...).
    Undefined { n: usize, why: String },
}

pub(super) fn normality(x: &[f64]) -> Normality {
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
pub(super) fn proportion_reason(b: &[f64], c: &[f64]) -> &'static str {
    if b.iter().chain(c).all(|v| *v == 0.0 || *v == 1.0) {
        "0/1 values (a proportion), so no normal-theory test"
    } else {
        "item scores bounded in [0, 1], so no normal-theory test"
    }
}

/// The test of one metric on two samples (paired when `paired`).
pub(super) fn test_metric(
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
        change_ci_90: None,
        margin: None,
        equivalent: None,
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
    m.change_ci_90 =
        stats::bootstrap_ratio_of_means_ci(b, c, 0.90, opts.resamples, opts.seed, paired)
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
pub(super) const ONE_PER_SIDE: &str = "none: n=1 per side, no test";

/// The peak-RSS row of a unit pair: one value per side, a relative change and no test.
pub(super) fn peak_rss_row(b: Option<f64>, c: Option<f64>) -> Option<MetricComparison> {
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
        change_ci_90: None,
        margin: None,
        equivalent: None,
    })
}
