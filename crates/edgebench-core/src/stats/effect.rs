//! Effect sizes (Cohen's d, rank-biserial correlation) and their
//! conventional magnitude labels. Positive values always mean `a > b`.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::descriptive::{mean_unchecked, variance_unchecked};
use super::{average_ranks, differences, validate_paired, validate_two, Result, StatsError};

/// Cohen's d for paired samples, `d_z = mean(d) / sd(d)` with `d_i = a_i - b_i`
/// and the sample sd (`n - 1`). Positive means `a` tends to be larger.
///
/// Errors: `Empty`, `NonFinite`, `LengthMismatch`, `TooFew { needed: 2 }`,
/// `ZeroVariance` when all differences are identical.
pub fn cohens_d_paired(a: &[f64], b: &[f64]) -> Result<f64> {
    validate_paired(a, b, 2)?;
    let d = differences(a, b);
    if d.iter().all(|v| *v == d[0]) {
        return Err(StatsError::ZeroVariance(
            "all paired differences are identical; d_z is undefined".into(),
        ));
    }
    Ok(mean_unchecked(&d) / variance_unchecked(&d).sqrt())
}

/// Cohen's d for independent samples with the pooled sd:
/// `d = (mean(a) - mean(b)) / s_p`,
/// `s_p = sqrt(((n_a - 1) s_a^2 + (n_b - 1) s_b^2) / (n_a + n_b - 2))`
/// (sample variances with `n - 1`; no Hedges small-sample correction).
/// Positive means `a` tends to be larger.
///
/// Errors: `Empty`, `NonFinite`, `TooFew { needed: 2 }` for either sample,
/// `ZeroVariance` when both samples are constant (`s_p = 0`).
pub fn cohens_d_pooled(a: &[f64], b: &[f64]) -> Result<f64> {
    validate_two(a, b, 2)?;
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let pooled =
        ((na - 1.0) * variance_unchecked(a) + (nb - 1.0) * variance_unchecked(b)) / (na + nb - 2.0);
    if pooled == 0.0 {
        return Err(StatsError::ZeroVariance(
            "both samples are constant; the pooled sd is zero".into(),
        ));
    }
    Ok((mean_unchecked(a) - mean_unchecked(b)) / pooled.sqrt())
}

/// Matched-pairs rank-biserial correlation `r = (W+ - W-) / (W+ + W-)`,
/// where `W+` / `W-` are the sums of the average ranks of `|d_i|` over
/// positive / negative differences `d_i = a_i - b_i`, zero differences
/// dropped (Kerby 2014). In `[-1, 1]`; positive means `a` tends to be larger.
///
/// Errors: `Empty`, `NonFinite`, `LengthMismatch`, `TooFew { needed: 2 }`,
/// `ZeroVariance` when every difference is zero.
pub fn rank_biserial_paired(a: &[f64], b: &[f64]) -> Result<f64> {
    validate_paired(a, b, 2)?;
    let d: Vec<f64> = differences(a, b)
        .into_iter()
        .filter(|v| *v != 0.0)
        .collect();
    if d.is_empty() {
        return Err(StatsError::ZeroVariance(
            "all paired differences are zero; the rank-biserial correlation is undefined".into(),
        ));
    }
    let abs: Vec<f64> = d.iter().map(|v| v.abs()).collect();
    let (ranks, _) = average_ranks(&abs);
    let (mut plus, mut minus) = (0.0, 0.0);
    for (v, r) in d.iter().zip(&ranks) {
        if *v > 0.0 {
            plus += r;
        } else {
            minus += r;
        }
    }
    Ok((plus - minus) / (plus + minus))
}

/// Rank-biserial correlation for independent samples,
/// `r = 2 U_a / (n_a n_b) - 1 = (U_a - U_b) / (n_a n_b)`, where `U_a` is the
/// Mann-Whitney U of `a` (pairs with `a_i > b_j`, ties counting 1/2; the
/// statistic returned by `scipy.stats.mannwhitneyu(a, b)`). Equivalently
/// `P(a > b) - P(a < b)`. In `[-1, 1]`; positive means `a` tends to be
/// larger (note: the opposite sign of the `1 - 2U/(n_a n_b)` form).
///
/// Errors: `Empty`, `NonFinite`, `TooFew { needed: 2 }` for either sample.
/// Identical values give `r = 0`.
pub fn rank_biserial_unpaired(a: &[f64], b: &[f64]) -> Result<f64> {
    validate_two(a, b, 2)?;
    let (n1, n2) = (a.len(), b.len());
    let pooled: Vec<f64> = a.iter().chain(b).copied().collect();
    let (ranks, _) = average_ranks(&pooled);
    let r1: f64 = ranks[..n1].iter().sum();
    let u1 = r1 - (n1 * (n1 + 1)) as f64 / 2.0;
    Ok(2.0 * u1 / (n1 * n2) as f64 - 1.0)
}

/// Conventional magnitude label of an effect size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EffectLabel {
    /// Below the "small" threshold.
    Negligible,
    /// At least small, below medium.
    Small,
    /// At least medium, below large.
    Medium,
    /// At least the "large" threshold.
    Large,
}

impl fmt::Display for EffectLabel {
    /// Lowercase name: `negligible`, `small`, `medium`, `large`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EffectLabel::Negligible => "negligible",
            EffectLabel::Small => "small",
            EffectLabel::Medium => "medium",
            EffectLabel::Large => "large",
        })
    }
}

fn label(value: f64, small: f64, medium: f64, large: f64) -> Result<EffectLabel> {
    if !value.is_finite() {
        return Err(StatsError::NonFinite);
    }
    let v = value.abs();
    Ok(if v < small {
        EffectLabel::Negligible
    } else if v < medium {
        EffectLabel::Small
    } else if v < large {
        EffectLabel::Medium
    } else {
        EffectLabel::Large
    })
}

/// Cohen's (1988) labels for a d: `|d| < 0.2` negligible, `< 0.5` small,
/// `< 0.8` medium, otherwise large (sign ignored).
///
/// Errors: `NonFinite` for NaN or infinite `d`.
pub fn cohens_d_label(d: f64) -> Result<EffectLabel> {
    label(d, 0.2, 0.5, 0.8)
}

/// Labels for a rank-biserial (or any correlation) `r`: `|r| < 0.1`
/// negligible, `< 0.3` small, `< 0.5` medium, otherwise large (sign ignored).
///
/// Errors: `NonFinite` for NaN or infinite `r`.
pub fn rank_biserial_label(r: f64) -> Result<EffectLabel> {
    label(r, 0.1, 0.3, 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_boundaries() {
        assert_eq!(cohens_d_label(0.0).unwrap(), EffectLabel::Negligible);
        assert_eq!(cohens_d_label(0.19).unwrap(), EffectLabel::Negligible);
        assert_eq!(cohens_d_label(0.2).unwrap(), EffectLabel::Small);
        assert_eq!(cohens_d_label(-0.5).unwrap(), EffectLabel::Medium);
        assert_eq!(cohens_d_label(0.79).unwrap(), EffectLabel::Medium);
        assert_eq!(cohens_d_label(0.8).unwrap(), EffectLabel::Large);
        assert_eq!(cohens_d_label(-3.0).unwrap(), EffectLabel::Large);
        assert_eq!(rank_biserial_label(0.09).unwrap(), EffectLabel::Negligible);
        assert_eq!(rank_biserial_label(-0.1).unwrap(), EffectLabel::Small);
        assert_eq!(rank_biserial_label(0.3).unwrap(), EffectLabel::Medium);
        assert_eq!(rank_biserial_label(0.5).unwrap(), EffectLabel::Large);
        assert_eq!(cohens_d_label(f64::NAN), Err(StatsError::NonFinite));
        assert_eq!(
            rank_biserial_label(f64::INFINITY),
            Err(StatsError::NonFinite)
        );
        let names: Vec<String> = [
            EffectLabel::Negligible,
            EffectLabel::Small,
            EffectLabel::Medium,
            EffectLabel::Large,
        ]
        .iter()
        .map(|l| l.to_string())
        .collect();
        assert_eq!(names, ["negligible", "small", "medium", "large"]);
    }

    #[test]
    fn signs_mean_a_larger() {
        let a = [5.0, 6.0, 7.0, 8.0];
        let b = [1.0, 2.0, 3.0, 4.5];
        assert!(cohens_d_pooled(&a, &b).unwrap() > 0.0);
        assert!(cohens_d_paired(&a, &b).unwrap() > 0.0);
        assert_eq!(rank_biserial_unpaired(&a, &b).unwrap(), 1.0);
        assert_eq!(rank_biserial_unpaired(&b, &a).unwrap(), -1.0);
        assert_eq!(rank_biserial_paired(&a, &b).unwrap(), 1.0);
        assert_eq!(rank_biserial_paired(&b, &a).unwrap(), -1.0);
    }

    #[test]
    fn degenerate_inputs() {
        let c = [2.0; 4];
        assert!(matches!(
            cohens_d_pooled(&c, &c),
            Err(StatsError::ZeroVariance(_))
        ));
        assert!(matches!(
            cohens_d_paired(&c, &c),
            Err(StatsError::ZeroVariance(_))
        ));
        assert!(matches!(
            rank_biserial_paired(&c, &c),
            Err(StatsError::ZeroVariance(_))
        ));
        assert_eq!(rank_biserial_unpaired(&c, &c).unwrap(), 0.0);
        // Constant shift: differences identical but non-zero.
        let shifted = [3.0; 4];
        assert!(matches!(
            cohens_d_paired(&shifted, &c),
            Err(StatsError::ZeroVariance(_))
        ));
        assert_eq!(rank_biserial_paired(&shifted, &c).unwrap(), 1.0);
    }
}
