//! Descriptive statistics: location, spread, percentiles and a one-call
//! [`Summary`] of a sample of measurements.

use serde::{Deserialize, Serialize};

use super::{sorted, validate, Result, StatsError};

/// Arithmetic mean `sum(x) / n`.
///
/// Errors: `Empty`, `NonFinite`. Defined for `n = 1`.
pub fn mean(x: &[f64]) -> Result<f64> {
    validate(x, 1)?;
    Ok(mean_unchecked(x))
}

/// Mean of a validated, non-empty slice.
pub(crate) fn mean_unchecked(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

/// Sample variance with Bessel's correction, two-pass:
/// `sum((x_i - mean)^2) / (n - 1)`.
pub(crate) fn variance_unchecked(x: &[f64]) -> f64 {
    let m = mean_unchecked(x);
    x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (x.len() as f64 - 1.0)
}

/// Median: the middle order statistic for odd `n`, the mean of the two middle
/// order statistics for even `n` (same as `numpy.median` and as
/// `percentile(x, 50.0)`).
///
/// Errors: `Empty`, `NonFinite`. Defined for `n = 1`.
pub fn median(x: &[f64]) -> Result<f64> {
    validate(x, 1)?;
    let s = sorted(x);
    Ok(median_sorted(&s))
}

fn median_sorted(s: &[f64]) -> f64 {
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// Sample variance with Bessel's correction:
/// `sum((x_i - mean)^2) / (n - 1)` (NumPy `var(ddof=1)`).
///
/// Errors: `Empty`, `NonFinite`, `TooFew { needed: 2 }` for `n = 1`.
pub fn variance(x: &[f64]) -> Result<f64> {
    validate(x, 2)?;
    Ok(variance_unchecked(x))
}

/// Sample standard deviation `sqrt(variance(x))`, i.e. with the `n - 1`
/// denominator (NumPy `std(ddof=1)`).
///
/// Errors: `Empty`, `NonFinite`, `TooFew { needed: 2 }` for `n = 1`.
pub fn std_dev(x: &[f64]) -> Result<f64> {
    Ok(variance(x)?.sqrt())
}

/// Coefficient of variation `std_dev(x) / mean(x)` (sample std with `n - 1`;
/// signed: negative when the mean is negative; not in percent).
///
/// Errors: `Empty`, `NonFinite`, `TooFew { needed: 2 }`, and
/// `InvalidArgument` when the mean is exactly zero.
pub fn cv(x: &[f64]) -> Result<f64> {
    let sd = std_dev(x)?;
    let m = mean_unchecked(x);
    if m == 0.0 {
        return Err(StatsError::InvalidArgument(
            "coefficient of variation is undefined when the mean is zero".into(),
        ));
    }
    Ok(sd / m)
}

/// Smallest value of `x`.
///
/// Errors: `Empty`, `NonFinite`.
pub fn min(x: &[f64]) -> Result<f64> {
    validate(x, 1)?;
    Ok(x.iter().copied().fold(f64::INFINITY, f64::min))
}

/// Largest value of `x`.
///
/// Errors: `Empty`, `NonFinite`.
pub fn max(x: &[f64]) -> Result<f64> {
    validate(x, 1)?;
    Ok(x.iter().copied().fold(f64::NEG_INFINITY, f64::max))
}

/// The `p`-th percentile, `p` in `[0, 100]`, by linear interpolation between
/// the closest ranks: with the sorted sample `s_0 <= ... <= s_{n-1}` and the
/// virtual index `h = (n - 1) * p / 100`, the result is
/// `s_floor(h) + (h - floor(h)) * (s_floor(h)+1 - s_floor(h))`.
/// This is NumPy's default `method="linear"` (Hyndman & Fan type 7); the
/// interpolation is evaluated the way NumPy does (from the upper neighbour
/// when the fraction is >= 0.5) so results agree to the last bits.
///
/// Errors: `Empty`, `NonFinite`, `InvalidArgument` when `p` is NaN or
/// outside `[0, 100]`. Defined for `n = 1` (returns the value).
pub fn percentile(x: &[f64], p: f64) -> Result<f64> {
    Ok(percentiles(x, &[p])?[0])
}

/// Several percentiles at once (the sample is sorted once); same definition
/// as [`percentile`], results in the order of `ps`.
///
/// Errors: as [`percentile`]; an empty `ps` yields an empty vector.
pub fn percentiles(x: &[f64], ps: &[f64]) -> Result<Vec<f64>> {
    validate(x, 1)?;
    check_percentiles(ps)?;
    let s = sorted(x);
    Ok(ps.iter().map(|&p| quantile_sorted(&s, p / 100.0)).collect())
}

fn check_percentiles(ps: &[f64]) -> Result<()> {
    if let Some(p) = ps.iter().find(|p| !(0.0..=100.0).contains(*p)) {
        return Err(StatsError::InvalidArgument(format!(
            "percentile must be in [0, 100], got {p}"
        )));
    }
    Ok(())
}

/// Type-7 (NumPy "linear") quantile of an already sorted, non-empty slice,
/// `q` in `[0, 1]`. Mirrors NumPy's `_lerp` for bit-level agreement.
pub(crate) fn quantile_sorted(s: &[f64], q: f64) -> f64 {
    let n = s.len();
    let h = (n as f64 - 1.0) * q;
    let lo_f = h.floor();
    // h is within [0, n-1]; clamp defensively against rounding.
    let lo = (lo_f.max(0.0) as usize).min(n - 1);
    let hi = (lo + 1).min(n - 1);
    let t = h - lo_f;
    let (a, b) = (s[lo], s[hi]);
    let diff = b - a;
    if t >= 0.5 {
        b - diff * (1.0 - t)
    } else {
        a + diff * t
    }
}

/// One-call description of a sample.
///
/// All fields follow the definitions of the functions of this module:
/// `std_dev` uses `n - 1`, percentiles use linear interpolation (NumPy
/// "linear"), `p50 == median`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Number of observations.
    pub n: usize,
    /// Arithmetic mean.
    pub mean: f64,
    /// Median.
    pub median: f64,
    /// Sample standard deviation (`n - 1`); `None` when `n = 1`.
    pub std_dev: Option<f64>,
    /// `std_dev / mean`; `None` when `n = 1` or the mean is zero.
    pub cv: Option<f64>,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// 50th percentile (equals `median`).
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// Computes a [`Summary`] of `x` (sorting once).
///
/// Errors: `Empty`, `NonFinite`. Defined for `n = 1` (then `std_dev` and
/// `cv` are `None`).
pub fn summarize(x: &[f64]) -> Result<Summary> {
    validate(x, 1)?;
    summarize_sorted(&sorted(x))
}

/// [`summarize`] of a sample already sorted ascending (no copy, no sort: for large samples).
///
/// Errors: `Empty`, `NonFinite`.
pub fn summarize_sorted(s: &[f64]) -> Result<Summary> {
    validate(s, 1)?;
    let x = s;
    let n = x.len();
    let m = mean_unchecked(x);
    let sd = (n >= 2).then(|| variance_unchecked(x).sqrt());
    let cv = sd.filter(|_| m != 0.0).map(|sd| sd / m);
    Ok(Summary {
        n,
        mean: m,
        median: median_sorted(s),
        std_dev: sd,
        cv,
        min: s[0],
        max: s[n - 1],
        p50: quantile_sorted(s, 0.5),
        p90: quantile_sorted(s, 0.9),
        p95: quantile_sorted(s, 0.95),
        p99: quantile_sorted(s, 0.99),
    })
}

/// The least-squares slope of `y` on `x` (how much `y` grows per unit of `x`); `None` with fewer
/// than two points, lengths that differ, or no spread in `x`.
pub fn ols_slope(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.len() != y.len() || x.len() < 2 {
        return None;
    }
    let (mx, my) = (mean(x).ok()?, mean(y).ok()?);
    let sxx: f64 = x.iter().map(|a| (a - mx) * (a - mx)).sum();
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_slope_ignores_a_constant_offset() {
        // y = 25 + 0.5 x: the offset (a chat template's tokens) does not move the slope.
        let x = [10.0, 40.0, 25.0, 70.0];
        let y: Vec<f64> = x.iter().map(|v| 25.0 + 0.5 * v).collect();
        assert!((ols_slope(&x, &y).unwrap() - 0.5).abs() < 1e-12);
        assert_eq!(ols_slope(&[3.0, 3.0], &[1.0, 2.0]), None);
        assert_eq!(ols_slope(&[1.0], &[1.0]), None);
    }

    use super::*;

    #[test]
    fn basic_values() {
        let x = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        assert_eq!(mean(&x).unwrap(), 5.0);
        assert_eq!(median(&x).unwrap(), 4.5);
        assert!((variance(&x).unwrap() - 32.0 / 7.0).abs() < 1e-12);
        assert_eq!(min(&x).unwrap(), 2.0);
        assert_eq!(max(&x).unwrap(), 9.0);
        assert_eq!(percentile(&x, 0.0).unwrap(), 2.0);
        assert_eq!(percentile(&x, 100.0).unwrap(), 9.0);
    }

    #[test]
    fn single_observation() {
        let x = [3.5];
        assert_eq!(mean(&x).unwrap(), 3.5);
        assert_eq!(median(&x).unwrap(), 3.5);
        assert_eq!(percentile(&x, 99.0).unwrap(), 3.5);
        assert_eq!(variance(&x), Err(StatsError::TooFew { needed: 2, got: 1 }));
        assert_eq!(std_dev(&x), Err(StatsError::TooFew { needed: 2, got: 1 }));
        assert_eq!(cv(&x), Err(StatsError::TooFew { needed: 2, got: 1 }));
        let s = summarize(&x).unwrap();
        assert_eq!(s.n, 1);
        assert_eq!(s.std_dev, None);
        assert_eq!(s.cv, None);
        assert_eq!(s.p99, 3.5);
    }

    #[test]
    fn two_observations() {
        let x = [1.0, 3.0];
        assert_eq!(variance(&x).unwrap(), 2.0);
        assert_eq!(percentile(&x, 25.0).unwrap(), 1.5);
        assert_eq!(median(&x).unwrap(), 2.0);
    }

    #[test]
    fn empty_and_non_finite() {
        let e: [f64; 0] = [];
        for r in [
            mean(&e),
            median(&e),
            variance(&e),
            std_dev(&e),
            cv(&e),
            min(&e),
            max(&e),
            percentile(&e, 50.0),
        ] {
            assert_eq!(r, Err(StatsError::Empty));
        }
        assert_eq!(summarize(&e), Err(StatsError::Empty));
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let x = [1.0, bad, 2.0];
            assert_eq!(mean(&x), Err(StatsError::NonFinite));
            assert_eq!(median(&x), Err(StatsError::NonFinite));
            assert_eq!(std_dev(&x), Err(StatsError::NonFinite));
            assert_eq!(percentiles(&x, &[50.0]), Err(StatsError::NonFinite));
            assert_eq!(summarize(&x), Err(StatsError::NonFinite));
            assert_eq!(min(&x), Err(StatsError::NonFinite));
            assert_eq!(max(&x), Err(StatsError::NonFinite));
        }
    }

    #[test]
    fn identical_values_and_zero_mean() {
        let x = [4.0; 5];
        assert_eq!(std_dev(&x).unwrap(), 0.0);
        assert_eq!(cv(&x).unwrap(), 0.0);
        assert_eq!(percentile(&x, 37.0).unwrap(), 4.0);
        let z = [-1.0, 1.0];
        assert!(matches!(cv(&z), Err(StatsError::InvalidArgument(_))));
        assert_eq!(summarize(&z).unwrap().cv, None);
    }

    #[test]
    fn percentile_argument_checks() {
        let x = [1.0, 2.0, 3.0];
        for p in [-0.1, 100.1, f64::NAN, f64::INFINITY] {
            assert!(matches!(
                percentile(&x, p),
                Err(StatsError::InvalidArgument(_))
            ));
        }
        assert_eq!(percentiles(&x, &[]).unwrap(), Vec::<f64>::new());
        assert_eq!(
            percentiles(&x, &[0.0, 50.0, 100.0]).unwrap(),
            vec![1.0, 2.0, 3.0]
        );
    }

    #[test]
    fn summary_is_consistent() {
        let x = [5.0, 1.0, 3.0, 2.0, 4.0, 10.0];
        let s = summarize(&x).unwrap();
        assert_eq!(s.p50, s.median);
        assert_eq!(s.min, 1.0);
        assert_eq!(s.max, 10.0);
        assert_eq!(
            s.p90,
            percentile(&x, 90.0).unwrap(),
            "summary and percentile agree"
        );
        assert_eq!(s.cv, Some(cv(&x).unwrap()));
    }
}
