//! Confidence intervals chosen by sample size, so that summaries of any size stay fast and keep
//! their coverage: the mean by the percentile bootstrap up to [`BOOTSTRAP_MAX_N`] observations and
//! by Student's t beyond (where the bootstrap distribution of a mean is normal anyway, and
//! 10,000 resamples of 100,000 values would take a minute); percentiles by the distribution-free
//! order-statistic interval (exact binomial coverage; none when the sample is too small to give
//! one); proportions by Wilson's score interval (a bootstrap of 5 successes out of 5 says
//! [100%, 100%]).

use statrs::distribution::{ContinuousCDF, StudentsT};

use super::bootstrap::{bootstrap_mean_ci, CiMethod, ConfidenceInterval};
use super::descriptive::{mean_unchecked, quantile_sorted, variance_unchecked};
use super::{std_normal, validate, Result, StatsError};

/// The largest sample whose mean interval is bootstrapped.
pub const BOOTSTRAP_MAX_N: usize = 500;

/// Up to this many observations, order-statistic levels come from the exact binomial sums;
/// beyond, from the normal approximation (with continuity correction).
const EXACT_BINOMIAL_MAX_N: usize = 5_000;

fn check_level(level: f64) -> Result<()> {
    if level > 0.0 && level < 1.0 {
        Ok(())
    } else {
        Err(StatsError::InvalidArgument(format!(
            "confidence level must be in (0, 1), got {level}"
        )))
    }
}

/// The interval of the mean of `x`: the percentile bootstrap (`resamples`, `seed`) for up to
/// [`BOOTSTRAP_MAX_N`] observations, Student's t interval beyond.
///
/// Errors: as [`bootstrap_mean_ci`] (`Empty`, `NonFinite`, `TooFew` for one observation, a bad
/// level or resample count).
pub fn mean_ci(x: &[f64], level: f64, resamples: usize, seed: u64) -> Result<ConfidenceInterval> {
    if x.len() <= BOOTSTRAP_MAX_N {
        return bootstrap_mean_ci(x, level, resamples, seed);
    }
    validate(x, 2)?;
    check_level(level)?;
    let n = x.len() as f64;
    let m = mean_unchecked(x);
    let se = (variance_unchecked(x) / n).sqrt();
    let t = StudentsT::new(0.0, 1.0, n - 1.0)
        .map_err(|e| StatsError::InvalidArgument(e.to_string()))?
        .inverse_cdf(0.5 + level / 2.0);
    Ok(ConfidenceInterval {
        estimate: m,
        lower: m - t * se,
        upper: m + t * se,
        level,
        method: CiMethod::StudentT,
        resamples: 0,
    })
}

/// Wilson's score interval of a proportion: `successes` out of `n`.
///
/// Errors: `Empty` for `n = 0`, `InvalidArgument` for `successes > n` or a bad level.
pub fn proportion_ci(successes: usize, n: usize, level: f64) -> Result<ConfidenceInterval> {
    if n == 0 {
        return Err(StatsError::Empty);
    }
    if successes > n {
        return Err(StatsError::InvalidArgument(format!(
            "{successes} successes out of {n}"
        )));
    }
    check_level(level)?;
    let z = std_normal().inverse_cdf(0.5 + level / 2.0);
    let nf = n as f64;
    let p = successes as f64 / nf;
    let z2 = z * z;
    let centre = (p + z2 / (2.0 * nf)) / (1.0 + z2 / nf);
    let half = z / (1.0 + z2 / nf) * (p * (1.0 - p) / nf + z2 / (4.0 * nf * nf)).sqrt();
    Ok(ConfidenceInterval {
        estimate: p,
        // Exact at the ends (all failures, all successes), where rounding would leave 1e-16.
        lower: if successes == 0 {
            0.0
        } else {
            (centre - half).max(0.0)
        },
        upper: if successes == n {
            1.0
        } else {
            (centre + half).min(1.0)
        },
        level,
        method: CiMethod::Wilson,
        resamples: 0,
    })
}

/// `P(Binomial(n, p) <= k)` for every `k` in `0..=n` (exact sums in log space).
fn binomial_cdf(n: usize, p: f64) -> Vec<f64> {
    let (lp, lq) = (p.ln(), (1.0 - p).ln());
    let mut log_choose = 0.0f64;
    let mut cdf = Vec::with_capacity(n + 1);
    let mut acc = 0.0;
    for k in 0..=n {
        if k > 0 {
            log_choose += ((n - k + 1) as f64).ln() - (k as f64).ln();
        }
        acc += (log_choose + k as f64 * lp + (n - k) as f64 * lq).exp();
        cdf.push(acc.min(1.0));
    }
    cdf
}

/// The 1-based ranks `(l, u)` of the order statistics that bracket the `p` quantile with
/// probability at least `level` (`P(l <= B < u) >= level` for `B ~ Binomial(n, p)`, as near
/// equal-tailed as the discreteness allows), or `None` when even the sample's extremes do not.
pub fn quantile_ranks(n: usize, p: f64, level: f64) -> Option<(usize, usize)> {
    if n == 0 || !(p > 0.0 && p < 1.0) || !(level > 0.0 && level < 1.0) {
        return None;
    }
    let alpha = (1.0 - level) / 2.0;
    // F(k) = P(B <= k). The interval [X_(l), X_(u)] covers when l <= B and B < u, that is
    // with probability F(u - 1) - F(l - 1).
    let cdf: Box<dyn Fn(usize) -> f64> = if n <= EXACT_BINOMIAL_MAX_N {
        let table = binomial_cdf(n, p);
        Box::new(move |k| table[k.min(n)])
    } else {
        let (mu, sd) = (n as f64 * p, (n as f64 * p * (1.0 - p)).sqrt());
        let normal = std_normal();
        Box::new(move |k| normal.cdf((k as f64 + 0.5 - mu) / sd))
    };
    let below = |l: usize| if l == 0 { 0.0 } else { cdf(l - 1) };
    // The largest l with P(B < l) <= alpha, the smallest u with P(B >= u) <= alpha.
    let (mut lo, mut hi) = (0usize, n);
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if below(mid) <= alpha {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    let l = lo.max(1);
    let (mut a, mut b) = (l, n + 1);
    while a < b {
        let mid = (a + b) / 2;
        if 1.0 - cdf(mid - 1) <= alpha {
            b = mid;
        } else {
            a = mid + 1;
        }
    }
    let u = a.min(n);
    let coverage = cdf(u - 1) - below(l);
    (u > l && coverage >= level - 1e-12).then_some((l, u))
}

/// The distribution-free interval of the `p` quantile (`0 < p < 1`) of the sample `sorted`
/// (ascending): the order statistics of [`quantile_ranks`], with the sample quantile (NumPy's
/// linear rule) as the estimate. `None` when the sample is too small for `level` (a p99 needs
/// about 300 observations at 95%).
pub fn quantile_ci(sorted: &[f64], p: f64, level: f64) -> Option<ConfidenceInterval> {
    let (l, u) = quantile_ranks(sorted.len(), p, level)?;
    Some(ConfidenceInterval {
        estimate: quantile_sorted(sorted, p),
        lower: sorted[l - 1],
        upper: sorted[u - 1],
        level,
        method: CiMethod::OrderStatistic,
        resamples: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use statrs::distribution::{LogNormal, Normal};
    use statrs::statistics::Distribution;

    #[test]
    fn wilson_matches_the_textbook() {
        // 5 of 5 at 95%: [0.566, 1].
        let c = proportion_ci(5, 5, 0.95).unwrap();
        assert!((c.lower - 0.5655).abs() < 1e-3, "{c:?}");
        assert_eq!(c.upper, 1.0);
        // 8 of 10: [0.490, 0.943] (Wilson 1927; Newcombe 1998, table I).
        let c = proportion_ci(8, 10, 0.95).unwrap();
        assert!(
            (c.lower - 0.4902).abs() < 1e-3 && (c.upper - 0.9433).abs() < 1e-3,
            "{c:?}"
        );
        assert!(proportion_ci(0, 0, 0.95).is_err());
        assert!(proportion_ci(3, 2, 0.95).is_err());
    }

    #[test]
    fn order_statistic_ranks() {
        // The median of 6 at 95%: the extremes (coverage 1 - 2/64 = 0.969); of 5, none (0.9375).
        assert_eq!(quantile_ranks(6, 0.5, 0.95), Some((1, 6)));
        assert_eq!(quantile_ranks(5, 0.5, 0.95), None);
        // The median of 100 at 95%: ranks 40 and 61 (Conover, Practical Nonparametric
        // Statistics, table A3).
        assert_eq!(quantile_ranks(100, 0.5, 0.95), Some((40, 61)));
        // A p99 needs about 300 observations.
        assert_eq!(quantile_ranks(20, 0.99, 0.95), None);
        assert!(quantile_ranks(400, 0.99, 0.95).is_some());
        // Exact and approximate agree near the switch.
        let (l, u) = quantile_ranks(EXACT_BINOMIAL_MAX_N, 0.9, 0.95).unwrap();
        let (l2, u2) = quantile_ranks(EXACT_BINOMIAL_MAX_N + 1, 0.9, 0.95).unwrap();
        assert!(
            l.abs_diff(l2) <= 2 && u.abs_diff(u2) <= 2,
            "{l} {u} {l2} {u2}"
        );
    }

    #[test]
    fn large_samples_take_the_t_interval() {
        let x: Vec<f64> = (0..10_000).map(|i| f64::from(i % 100)).collect();
        let c = mean_ci(&x, 0.95, 10_000, 1).unwrap();
        assert_eq!(c.method, CiMethod::StudentT);
        assert!((c.estimate - 49.5).abs() < 1e-9);
        let se = (variance_unchecked(&x) / 10_000.0).sqrt();
        assert!(
            ((c.upper - c.lower) / 2.0 - 1.96 * se).abs() < 0.01 * se,
            "{c:?}"
        );
        let small = mean_ci(&x[..100], 0.95, 1000, 1).unwrap();
        assert_eq!(small.method, CiMethod::Percentile);
    }

    /// An interval from a sample (which it may sort) and a seed.
    type Interval<'a> = &'a dyn Fn(&mut Vec<f64>, u64) -> Option<(f64, f64)>;

    /// Simulated coverage: the share of `reps` samples of `n` draws whose interval holds the
    /// true value.
    fn coverage(
        n: usize,
        reps: usize,
        seed: u64,
        draw: &dyn Fn(&mut ChaCha8Rng) -> f64,
        interval: Interval<'_>,
        truth: f64,
    ) -> f64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut hit = 0;
        for r in 0..reps {
            let mut x: Vec<f64> = (0..n).map(|_| draw(&mut rng)).collect();
            if let Some((lo, hi)) = interval(&mut x, r as u64) {
                hit += usize::from(lo <= truth && truth <= hi);
            }
        }
        hit as f64 / reps as f64
    }

    #[test]
    fn intervals_keep_their_coverage_by_simulation() {
        use rand::distributions::Distribution as _;
        // Latency-like data: log-normal, sigma 0.5 (a right tail).
        let dist = LogNormal::new(0.0, 0.5).unwrap();
        let draw = |rng: &mut ChaCha8Rng| dist.sample(rng);
        let truth_mean = dist.mean().unwrap();
        let normal = Normal::new(0.0, 0.5).unwrap();
        let quantile = |p: f64| normal.inverse_cdf(p).exp();
        let mean_interval = |x: &mut Vec<f64>, seed: u64| {
            mean_ci(x, 0.95, 2_000, seed)
                .ok()
                .map(|c| (c.lower, c.upper))
        };
        let q_interval = |p: f64| {
            move |x: &mut Vec<f64>, _seed: u64| {
                x.sort_by(f64::total_cmp);
                quantile_ci(x, p, 0.95).map(|c| (c.lower, c.upper))
            }
        };
        // 400 replications: a 95% interval should cover 95% +- 2.2% (2 standard errors).
        let reps = 400;
        let small = coverage(30, reps, 1, &draw, &mean_interval, truth_mean);
        let large = coverage(5_000, reps, 2, &draw, &mean_interval, truth_mean);
        let median = coverage(200, reps, 3, &draw, &q_interval(0.5), quantile(0.5));
        let p99 = coverage(20_000, reps, 4, &draw, &q_interval(0.99), quantile(0.99));
        eprintln!("coverage: mean n=30 (bootstrap) {small}, mean n=5000 (t) {large}, median n=200 {median}, p99 n=20000 {p99}");
        // The percentile bootstrap of a skewed mean at n=30 runs a little narrow (known).
        assert!(small >= 0.90, "bootstrap mean, n=30: {small}");
        assert!(large >= 0.92, "t mean, n=5000: {large}");
        // Order statistics are exact (conservative): at least the level, less sampling error.
        assert!(median >= 0.93, "median, n=200: {median}");
        assert!(p99 >= 0.93, "p99, n=20000: {p99}");
    }
}
