//! Seeded, deterministic bootstrap confidence intervals (percentile and BCa)
//! for a statistic of one sample and for the relative change of two means.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};

use super::descriptive::{mean_unchecked, quantile_sorted};
use super::{std_normal, validate, validate_paired, validate_two, Result, StatsError};

/// Default number of bootstrap resamples used by edgebench.
pub const DEFAULT_RESAMPLES: usize = 10_000;
/// Default confidence level used by edgebench.
pub const DEFAULT_LEVEL: f64 = 0.95;
/// Default RNG seed used by edgebench.
pub const DEFAULT_SEED: u64 = 42;

/// Relative tolerance under which a resample value counts as tied with the
/// estimate in the BCa bias correction (see [`bca_levels`]).
const TIE_RTOL: f64 = 1e-12;

/// How the interval is read off the bootstrap distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CiMethod {
    /// Percentile interval: the `(1-level)/2` and `(1+level)/2` quantiles of
    /// the bootstrap distribution.
    Percentile,
    /// Bias-corrected and accelerated interval (Efron 1987; Efron &
    /// Tibshirani 1993, eq. 14.10 and 14.15), as `scipy.stats.bootstrap`
    /// with `method="BCa"`.
    Bca,
    /// Student's t interval of a mean (large samples; see [`super::interval::mean_ci`]).
    StudentT,
    /// Wilson's score interval of a proportion.
    Wilson,
    /// The distribution-free interval of a quantile between two order statistics.
    OrderStatistic,
}

/// A confidence interval (bootstrap unless its method says otherwise).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfidenceInterval {
    /// The statistic evaluated on the original data.
    pub estimate: f64,
    /// Lower bound of the interval.
    pub lower: f64,
    /// Upper bound of the interval.
    pub upper: f64,
    /// Two-sided confidence level in `(0, 1)`, e.g. `0.95`.
    pub level: f64,
    /// How the bounds were computed.
    pub method: CiMethod,
    /// Number of bootstrap resamples drawn (0 for the closed-form methods).
    pub resamples: usize,
}

/// Checks level and resample count.
fn check_args(level: f64, resamples: usize) -> Result<()> {
    if !(level > 0.0 && level < 1.0) {
        return Err(StatsError::InvalidArgument(format!(
            "confidence level must be in (0, 1), got {level}"
        )));
    }
    if resamples == 0 {
        return Err(StatsError::InvalidArgument(
            "the number of bootstrap resamples must be at least 1".into(),
        ));
    }
    Ok(())
}

/// Uniform index in `0..n`, drawn through `u64` so that the stream of
/// indices does not depend on the platform's pointer width.
fn draw_index(rng: &mut ChaCha8Rng, n: usize) -> usize {
    rng.gen_range(0..n as u64) as usize
}

/// Sorts a bootstrap distribution, rejecting non-finite statistic values.
fn sorted_distribution(mut dist: Vec<f64>) -> Result<Vec<f64>> {
    if dist.iter().any(|v| !v.is_finite()) {
        return Err(StatsError::NonFinite);
    }
    dist.sort_by(f64::total_cmp);
    Ok(dist)
}

/// Bootstrap confidence interval for `statistic(x)`.
///
/// Definition: `resamples` samples of size `n` are drawn with replacement
/// from `x` using `ChaCha8Rng::seed_from_u64(seed)` (indices drawn in order,
/// resample after resample, as `gen_range(0..n as u64)`), so the result is
/// fully determined by the inputs and the seed. With `alpha = (1 - level)/2`
/// the bounds are quantiles of the bootstrap distribution, computed with the
/// NumPy "linear" rule (see [`super::descriptive::percentile`]):
///
/// * [`CiMethod::Percentile`]: quantiles `alpha` and `1 - alpha`.
/// * [`CiMethod::Bca`]: quantiles `Phi(z0 + (z0 + z)/(1 - a (z0 + z)))` for
///   `z = Phi^-1(alpha)` and `z = Phi^-1(1 - alpha)`, where the bias
///   correction is `z0 = Phi^-1((#{b < est} + #{b <= est}) / (2B))` (SciPy's
///   "mean" percentile-of-score: resamples equal to the estimate count one
///   half) and `a` is the jackknife acceleration (see
///   [`jackknife_acceleration`]; 0 for constant data); see [`bca_levels`].
///   This is `scipy.stats.bootstrap(method="BCa")`.
///
/// The result differs from SciPy's by Monte-Carlo error only (different RNG).
///
/// Errors: `Empty`, `NonFinite` (in `x` or in any value of the statistic),
/// `TooFew { needed: 2 }` for `n = 1`, `InvalidArgument` when `level` is not
/// in `(0, 1)`, `resamples == 0`, or the BCa correction is undefined because
/// the estimate lies outside the bootstrap distribution (`z0` infinite).
pub fn bootstrap_ci(
    x: &[f64],
    statistic: fn(&[f64]) -> f64,
    level: f64,
    resamples: usize,
    seed: u64,
    method: CiMethod,
) -> Result<ConfidenceInterval> {
    validate(x, 2)?;
    check_args(level, resamples)?;
    let bca = match method {
        CiMethod::Percentile => false,
        CiMethod::Bca => true,
        CiMethod::StudentT | CiMethod::Wilson | CiMethod::OrderStatistic => {
            return Err(StatsError::InvalidArgument(format!(
                "{method:?} is not a bootstrap method"
            )))
        }
    };
    let estimate = statistic(x);
    if !estimate.is_finite() {
        return Err(StatsError::NonFinite);
    }
    let n = x.len();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut buf = vec![0.0; n];
    let mut dist = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        for slot in buf.iter_mut() {
            *slot = x[draw_index(&mut rng, n)];
        }
        dist.push(statistic(&buf));
    }
    let dist = sorted_distribution(dist)?;
    let alpha = (1.0 - level) / 2.0;
    let (q_lo, q_hi) = if bca {
        let a_hat = jackknife_acceleration(x, statistic)?;
        bca_levels(&dist, estimate, a_hat, level)?
    } else {
        (alpha, 1.0 - alpha)
    };
    Ok(ConfidenceInterval {
        estimate,
        lower: quantile_sorted(&dist, q_lo),
        upper: quantile_sorted(&dist, q_hi),
        level,
        method,
        resamples,
    })
}

/// BCa acceleration from the jackknife (Efron & Tibshirani 1993, eq. 14.15):
/// with `theta_(i)` the statistic on `x` without observation `i` and
/// `theta_dot` their mean, `U_i = (n - 1)(theta_dot - theta_(i))` and
/// `a = sum(U_i^3) / (6 (sum(U_i^2))^1.5)`; `a = 0` when all `U_i` are zero
/// (e.g. constant data). Same as the `a_hat` of `scipy.stats.bootstrap`.
///
/// Errors: `Empty`, `NonFinite` (in `x` or a jackknife value),
/// `TooFew { needed: 2 }`.
pub fn jackknife_acceleration(x: &[f64], statistic: fn(&[f64]) -> f64) -> Result<f64> {
    validate(x, 2)?;
    let n = x.len();
    let mut buf = Vec::with_capacity(n - 1);
    let mut theta = Vec::with_capacity(n);
    for i in 0..n {
        buf.clear();
        buf.extend(
            x.iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, v)| *v),
        );
        let t = statistic(&buf);
        if !t.is_finite() {
            return Err(StatsError::NonFinite);
        }
        theta.push(t);
    }
    let nf = n as f64;
    let dot = theta.iter().sum::<f64>() / nf;
    let u: Vec<f64> = theta.iter().map(|t| (nf - 1.0) * (dot - t)).collect();
    // SciPy divides the sums by n^3 and n^2; this cancels in the ratio but is
    // kept for bit-level closeness.
    let num = u.iter().map(|v| v * v * v).sum::<f64>() / (nf * nf * nf);
    let den = u.iter().map(|v| v * v).sum::<f64>() / (nf * nf);
    if den == 0.0 {
        return Ok(0.0);
    }
    Ok(num / (6.0 * den.powf(1.5)))
}

/// Quantile levels `(alpha_1, alpha_2)` of the BCa interval for a bootstrap
/// distribution (any order) of a statistic whose estimate on the data is
/// `estimate`: with `alpha = (1 - level) / 2`,
/// `z0 = Phi^-1((#{b < estimate} + #{b <= estimate}) / (2 B))` and
/// `alpha_k = Phi(z0 + (z0 + z_k) / (1 - acceleration (z0 + z_k)))` for
/// `z_1 = Phi^-1(alpha)`, `z_2 = Phi^-1(1 - alpha)`. The interval is then the
/// `alpha_1` and `alpha_2` quantiles (NumPy "linear") of the distribution.
///
/// Deliberate difference from SciPy: a resample value within a relative
/// `1e-12` of the estimate counts as equal to it. With discrete data (e.g.
/// timer ticks) many resample means equal the estimate mathematically but
/// differ from it in the last bits because they are summed in another order;
/// SciPy compares exactly and so splits such ties arbitrarily. Without such
/// near-ties (continuous data) the result is SciPy's.
///
/// Errors: `Empty`, `NonFinite` (distribution, estimate or acceleration),
/// `InvalidArgument` for `level` outside `(0, 1)` or when `z0` is infinite
/// (the estimate lies outside the bootstrap distribution).
pub fn bca_levels(
    distribution: &[f64],
    estimate: f64,
    acceleration: f64,
    level: f64,
) -> Result<(f64, f64)> {
    validate(distribution, 1)?;
    if !(estimate.is_finite() && acceleration.is_finite()) {
        return Err(StatsError::NonFinite);
    }
    check_args(level, 1)?;
    let normal: Normal = std_normal();
    // Resamples equal to the estimate up to rounding count as ties (see doc).
    let gamma = TIE_RTOL * estimate.abs();
    let below = distribution
        .iter()
        .filter(|&&v| v < estimate - gamma)
        .count();
    let at_or_below = distribution
        .iter()
        .filter(|&&v| v <= estimate + gamma)
        .count();
    let frac = (below + at_or_below) as f64 / (2 * distribution.len()) as f64;
    let z0 = normal.inverse_cdf(frac);
    if !z0.is_finite() {
        return Err(StatsError::InvalidArgument(
            "BCa interval undefined: the estimate lies outside the bootstrap distribution".into(),
        ));
    }
    let z_alpha = normal.inverse_cdf((1.0 - level) / 2.0);
    let level_at = |z: f64| {
        let num = z0 + z;
        normal.cdf(z0 + num / (1.0 - acceleration * num))
    };
    let lo = level_at(z_alpha);
    let hi = level_at(-z_alpha);
    if !(lo.is_finite() && hi.is_finite()) {
        return Err(StatsError::InvalidArgument(
            "BCa interval undefined for this bootstrap distribution".into(),
        ));
    }
    Ok((lo, hi))
}

/// Percentile bootstrap CI of the mean: `bootstrap_ci(x, mean, level,
/// resamples, seed, CiMethod::Percentile)`. edgebench's defaults are
/// [`DEFAULT_LEVEL`] (0.95), [`DEFAULT_RESAMPLES`] (10,000) and
/// [`DEFAULT_SEED`] (42).
///
/// Errors: as [`bootstrap_ci`].
pub fn bootstrap_mean_ci(
    x: &[f64],
    level: f64,
    resamples: usize,
    seed: u64,
) -> Result<ConfidenceInterval> {
    bootstrap_ci(
        x,
        mean_unchecked,
        level,
        resamples,
        seed,
        CiMethod::Percentile,
    )
}

/// Percentile bootstrap CI of the relative change of means
/// `mean(candidate) / mean(baseline) - 1` (e.g. `0.05` = candidate 5% larger).
///
/// Resampling, with `ChaCha8Rng::seed_from_u64(seed)`:
/// * `paired == true`: the two slices must have equal length `n`; each
///   resample draws `n` indices and takes `(baseline[i], candidate[i])`
///   together (pairs are kept intact, as `scipy.stats.bootstrap(paired=True)`).
/// * `paired == false`: each resample draws `len(baseline)` indices into the
///   baseline, then `len(candidate)` indices into the candidate, independently.
///
/// Bounds are the `(1-level)/2` and `(1+level)/2` quantiles (NumPy "linear")
/// of the bootstrap distribution; `method` is [`CiMethod::Percentile`].
///
/// Errors: `Empty`, `NonFinite`, `TooFew { needed: 2 }` when either sample
/// has one observation, `LengthMismatch` when `paired` and the lengths
/// differ, `InvalidArgument` for a bad `level`/`resamples`, when
/// `mean(baseline)` is zero, or when some resampled baseline mean is zero
/// (possible only when the baseline has values of both signs).
pub fn bootstrap_ratio_of_means_ci(
    baseline: &[f64],
    candidate: &[f64],
    level: f64,
    resamples: usize,
    seed: u64,
    paired: bool,
) -> Result<ConfidenceInterval> {
    if paired {
        validate_paired(baseline, candidate, 2)?;
    } else {
        validate_two(baseline, candidate, 2)?;
    }
    check_args(level, resamples)?;
    let zero_baseline =
        || StatsError::InvalidArgument("relative change undefined: baseline mean is zero".into());
    let mb = mean_unchecked(baseline);
    if mb == 0.0 {
        return Err(zero_baseline());
    }
    let estimate = mean_unchecked(candidate) / mb - 1.0;
    let (nb, nc) = (baseline.len(), candidate.len());
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut dist = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        let (sum_b, sum_c) = if paired {
            let (mut sb, mut sc) = (0.0, 0.0);
            for _ in 0..nb {
                let i = draw_index(&mut rng, nb);
                sb += baseline[i];
                sc += candidate[i];
            }
            (sb, sc)
        } else {
            let sb: f64 = (0..nb).map(|_| baseline[draw_index(&mut rng, nb)]).sum();
            let sc: f64 = (0..nc).map(|_| candidate[draw_index(&mut rng, nc)]).sum();
            (sb, sc)
        };
        let rb = sum_b / nb as f64;
        if rb == 0.0 {
            return Err(zero_baseline());
        }
        dist.push((sum_c / nc as f64) / rb - 1.0);
    }
    let dist = sorted_distribution(dist)?;
    let alpha = (1.0 - level) / 2.0;
    Ok(ConfidenceInterval {
        estimate,
        lower: quantile_sorted(&dist, alpha),
        upper: quantile_sorted(&dist, 1.0 - alpha),
        level,
        method: CiMethod::Percentile,
        resamples,
    })
}

/// Percentile bootstrap CI of any statistic of `n` items, given as a function of the resampled
/// item indices (for statistics of several columns: macro-F1 of gold and predicted labels).
/// Resampling as [`bootstrap_ci`]: `ChaCha8Rng::seed_from_u64(seed)`, `n` indices per resample.
///
/// Errors: `TooFew { needed: 2 }` for `n < 2`, `InvalidArgument` for a bad `level`/`resamples`,
/// `NonFinite` when the statistic is not finite.
pub fn bootstrap_indices_ci<F: Fn(&[usize]) -> f64>(
    n: usize,
    statistic: F,
    level: f64,
    resamples: usize,
    seed: u64,
) -> Result<ConfidenceInterval> {
    if n < 2 {
        return Err(StatsError::TooFew { needed: 2, got: n });
    }
    check_args(level, resamples)?;
    let all: Vec<usize> = (0..n).collect();
    let estimate = statistic(&all);
    if !estimate.is_finite() {
        return Err(StatsError::NonFinite);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut idx = vec![0usize; n];
    let mut dist = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        for slot in idx.iter_mut() {
            *slot = draw_index(&mut rng, n);
        }
        dist.push(statistic(&idx));
    }
    let dist = sorted_distribution(dist)?;
    let alpha = (1.0 - level) / 2.0;
    Ok(ConfidenceInterval {
        estimate,
        lower: quantile_sorted(&dist, alpha),
        upper: quantile_sorted(&dist, 1.0 - alpha),
        level,
        method: CiMethod::Percentile,
        resamples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn median_stat(x: &[f64]) -> f64 {
        let mut v = x.to_vec();
        v.sort_by(f64::total_cmp);
        quantile_sorted(&v, 0.5)
    }

    const X: [f64; 10] = [9.8, 10.1, 10.4, 9.9, 10.0, 10.7, 9.6, 10.2, 11.5, 10.3];

    #[test]
    fn deterministic_for_a_seed() {
        for method in [CiMethod::Percentile, CiMethod::Bca] {
            let a = bootstrap_ci(&X, mean_unchecked, 0.95, 2000, 7, method).unwrap();
            let b = bootstrap_ci(&X, mean_unchecked, 0.95, 2000, 7, method).unwrap();
            assert_eq!(a, b);
            let c = bootstrap_ci(&X, mean_unchecked, 0.95, 2000, 8, method).unwrap();
            assert_ne!(a, c, "different seeds give different intervals");
            assert!(a.lower < a.estimate && a.estimate < a.upper);
            assert_eq!(a.method, method);
            assert_eq!(a.resamples, 2000);
        }
    }

    #[test]
    fn other_statistic_and_narrower_level() {
        let wide = bootstrap_ci(&X, median_stat, 0.99, 1000, 1, CiMethod::Bca).unwrap();
        let narrow = bootstrap_ci(&X, median_stat, 0.50, 1000, 1, CiMethod::Bca).unwrap();
        assert!(wide.lower <= narrow.lower && narrow.upper <= wide.upper);
    }

    #[test]
    fn two_observations_work() {
        let ci = bootstrap_mean_ci(&[1.0, 2.0], 0.95, 1000, 42).unwrap();
        assert_eq!((ci.lower, ci.upper), (1.0, 2.0));
        let ci = bootstrap_ci(&[1.0, 2.0], mean_unchecked, 0.9, 1000, 42, CiMethod::Bca).unwrap();
        assert!(ci.lower >= 1.0 && ci.upper <= 2.0);
    }

    #[test]
    fn constant_data_gives_degenerate_interval() {
        let x = [3.0; 6];
        for method in [CiMethod::Percentile, CiMethod::Bca] {
            let ci = bootstrap_ci(&x, mean_unchecked, 0.95, 500, 1, method).unwrap();
            assert_eq!((ci.lower, ci.estimate, ci.upper), (3.0, 3.0, 3.0));
        }
    }

    #[test]
    fn bca_undefined_when_estimate_outside_distribution() {
        // A resample of 30 distinct values almost surely repeats some value,
        // so this statistic is below the estimate in every resample: z0 = -inf.
        fn distinct(x: &[f64]) -> f64 {
            let mut v = x.to_vec();
            v.sort_by(f64::total_cmp);
            v.dedup();
            v.len() as f64
        }
        let x: Vec<f64> = (0..30).map(f64::from).collect();
        let r = bootstrap_ci(&x, distinct, 0.95, 200, 3, CiMethod::Bca);
        assert!(matches!(r, Err(StatsError::InvalidArgument(_))));
    }

    #[test]
    fn errors() {
        let e: [f64; 0] = [];
        assert_eq!(bootstrap_mean_ci(&e, 0.95, 100, 1), Err(StatsError::Empty));
        assert_eq!(
            bootstrap_mean_ci(&[1.0], 0.95, 100, 1),
            Err(StatsError::TooFew { needed: 2, got: 1 })
        );
        assert_eq!(
            bootstrap_mean_ci(&[1.0, f64::NAN], 0.95, 100, 1),
            Err(StatsError::NonFinite)
        );
        for level in [0.0, 1.0, -0.5, f64::NAN] {
            assert!(matches!(
                bootstrap_mean_ci(&X, level, 100, 1),
                Err(StatsError::InvalidArgument(_))
            ));
        }
        assert!(matches!(
            bootstrap_mean_ci(&X, 0.95, 0, 1),
            Err(StatsError::InvalidArgument(_))
        ));
        fn nan_stat(_: &[f64]) -> f64 {
            f64::NAN
        }
        assert_eq!(
            bootstrap_ci(&X, nan_stat, 0.95, 10, 1, CiMethod::Percentile),
            Err(StatsError::NonFinite)
        );
    }

    #[test]
    fn ratio_of_means() {
        let base = [10.0, 10.2, 9.9, 10.1, 10.0, 9.8];
        let cand = [11.0, 11.1, 10.8, 11.2, 11.0, 10.9];
        for paired in [true, false] {
            let ci = bootstrap_ratio_of_means_ci(&base, &cand, 0.95, 2000, 42, paired).unwrap();
            assert!((ci.estimate - (66.0 / 60.0 - 1.0)).abs() < 1e-12);
            assert!(ci.lower < ci.estimate && ci.estimate < ci.upper);
            assert!(ci.lower > 0.05 && ci.upper < 0.15);
            let again = bootstrap_ratio_of_means_ci(&base, &cand, 0.95, 2000, 42, paired).unwrap();
            assert_eq!(ci, again);
        }
        // Unpaired accepts different sizes; paired does not.
        assert!(bootstrap_ratio_of_means_ci(&base, &cand[..4], 0.95, 100, 1, false).is_ok());
        assert_eq!(
            bootstrap_ratio_of_means_ci(&base, &cand[..4], 0.95, 100, 1, true),
            Err(StatsError::LengthMismatch { left: 6, right: 4 })
        );
        assert_eq!(
            bootstrap_ratio_of_means_ci(&[1.0], &[2.0], 0.95, 100, 1, true),
            Err(StatsError::TooFew { needed: 2, got: 1 })
        );
        assert_eq!(
            bootstrap_ratio_of_means_ci(&[1.0, 2.0], &[2.0], 0.95, 100, 1, false),
            Err(StatsError::TooFew { needed: 2, got: 1 })
        );
        assert!(matches!(
            bootstrap_ratio_of_means_ci(&[-1.0, 1.0], &[2.0, 3.0], 0.95, 100, 1, false),
            Err(StatsError::InvalidArgument(_))
        ));
        assert_eq!(
            bootstrap_ratio_of_means_ci(&[1.0, f64::INFINITY], &[2.0, 3.0], 0.95, 100, 1, false),
            Err(StatsError::NonFinite)
        );
    }
}
