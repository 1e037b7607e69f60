//! Two-sided hypothesis tests (t-tests, Wilcoxon signed-rank, Mann-Whitney U,
//! Shapiro-Wilk) and Holm's multiple-comparison adjustment, matching SciPy.
//!
//! The rank tests reproduce the automatic method choice of SciPy 1.17
//! (`method="auto"`), documented on each function.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

use super::descriptive::{mean_unchecked, variance_unchecked};
use super::{
    average_ranks, differences, sorted, std_normal, validate, validate_paired, validate_two,
    Result, StatsError,
};

/// Outcome of a hypothesis test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestResult {
    /// The test statistic (its definition is given by each test).
    pub statistic: f64,
    /// Two-sided p-value in `[0, 1]`.
    pub p_value: f64,
    /// Degrees of freedom for t-tests; `None` otherwise.
    pub df: Option<f64>,
    /// Number of observations the test used (defined by each test).
    pub n: usize,
    /// Human-readable name of the test and of the p-value method.
    pub method: String,
}

fn zero_variance(what: &str) -> StatsError {
    StatsError::ZeroVariance(what.to_string())
}

fn all_equal(x: &[f64]) -> bool {
    x.iter().all(|v| *v == x[0])
}

/// Two-sided p-value `2 * P(T_df <= -|t|)` of Student's t distribution.
fn t_two_sided(t: f64, df: f64) -> Result<f64> {
    let dist = StudentsT::new(0.0, 1.0, df)
        .map_err(|e| StatsError::InvalidArgument(format!("t distribution: {e}")))?;
    Ok((2.0 * dist.cdf(-t.abs())).min(1.0))
}

/// Two-sided p-value `2 * P(Z >= |z|)` of the standard normal.
fn normal_two_sided(z: f64) -> f64 {
    (2.0 * std_normal().cdf(-z.abs())).min(1.0)
}

/// Paired (dependent-samples) Student t-test on `d_i = a_i - b_i`:
/// `t = mean(d) / (sd(d) / sqrt(n))` with the sample sd (`n - 1`),
/// `df = n - 1`, two-sided p from Student's t (as `scipy.stats.ttest_rel`).
/// `n` is the number of pairs; `t > 0` means `a` tends to be larger.
///
/// Errors: `Empty`, `NonFinite`, `LengthMismatch`, `TooFew { needed: 2 }`,
/// `ZeroVariance` when all differences are identical (t undefined).
pub fn paired_t_test(a: &[f64], b: &[f64]) -> Result<TestResult> {
    validate_paired(a, b, 2)?;
    let d = differences(a, b);
    if all_equal(&d) {
        return Err(zero_variance(
            "all paired differences are identical; the t statistic is undefined",
        ));
    }
    let n = d.len() as f64;
    let t = mean_unchecked(&d) / (variance_unchecked(&d) / n).sqrt();
    let df = n - 1.0;
    Ok(TestResult {
        statistic: t,
        p_value: t_two_sided(t, df)?,
        df: Some(df),
        n: d.len(),
        method: "paired t-test".into(),
    })
}

/// Welch's unequal-variances t-test:
/// `t = (mean(a) - mean(b)) / sqrt(s_a^2/n_a + s_b^2/n_b)` (sample variances
/// with `n - 1`), Welch-Satterthwaite
/// `df = (s_a^2/n_a + s_b^2/n_b)^2 / ((s_a^2/n_a)^2/(n_a-1) + (s_b^2/n_b)^2/(n_b-1))`,
/// two-sided p from Student's t (as `scipy.stats.ttest_ind(equal_var=False)`).
/// `n = n_a + n_b`; `t > 0` means `a` tends to be larger.
///
/// Errors: `Empty`, `NonFinite`, `TooFew { needed: 2 }` for either sample,
/// `ZeroVariance` when both samples are constant.
pub fn welch_t_test(a: &[f64], b: &[f64]) -> Result<TestResult> {
    validate_two(a, b, 2)?;
    if all_equal(a) && all_equal(b) {
        return Err(zero_variance(
            "both samples are constant; the t statistic is undefined",
        ));
    }
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let (va, vb) = (variance_unchecked(a) / na, variance_unchecked(b) / nb);
    let se2 = va + vb;
    let t = (mean_unchecked(a) - mean_unchecked(b)) / se2.sqrt();
    let df = se2 * se2 / (va * va / (na - 1.0) + vb * vb / (nb - 1.0));
    Ok(TestResult {
        statistic: t,
        p_value: t_two_sided(t, df)?,
        df: Some(df),
        n: a.len() + b.len(),
        method: "Welch t-test".into(),
    })
}

/// Counts of every subset sum of `weights` (index = sum). The total count is
/// `2^weights.len()`; callers keep `weights.len() <= 50` so `u64` is exact.
fn subset_sum_counts(weights: &[usize]) -> Vec<u64> {
    let total: usize = weights.iter().sum();
    let mut counts = vec![0u64; total + 1];
    counts[0] = 1;
    let mut reach = 0;
    for &w in weights {
        reach += w;
        for s in (w..=reach).rev() {
            counts[s] += counts[s - w];
        }
    }
    counts
}

/// Wilcoxon signed-rank test, two-sided, on `d_i = a_i - b_i`, reproducing
/// `scipy.stats.wilcoxon(a, b, correction=True)` of SciPy 1.17 (defaults
/// `zero_method="wilcox"`, `method="auto"`). Note SciPy's own default is
/// `correction=False`; the continuity correction is applied here on purpose
/// (it only affects the normal-approximation branch, making it slightly
/// more conservative, like R's `wilcox.test`).
///
/// * zero differences are dropped; the `m` remaining `|d_i|` get average
///   ranks; `W+` / `W-` are the rank sums of positive / negative differences;
/// * `statistic = min(W+, W-)`, `n = m` (number of non-zero differences);
/// * p-value, with `N` = number of pairs *including* zero differences:
///   - `N <= 50`, no ties and no zeros: exact null distribution of `W+`,
///     `p = min(1, 2 min(P(W+ <= w), P(W+ >= w)))`;
///   - otherwise, `N <= 13` (ties or zeros present): exact sign-flip
///     permutation distribution of `W+` over all `2^m` sign patterns with the
///     observed (tied) ranks, same formula (SciPy's `PermutationMethod`, which
///     is exhaustive, hence deterministic, for `N <= 13`);
///   - otherwise normal approximation: `z = (W+ - m(m+1)/4) / se` with
///     `se^2 = (m(m+1)(2m+1) - sum(t^3 - t)/2) / 24` over tie groups `t`,
///     continuity correction `z -= sign(z) * 0.5 / se`, `p = 2 P(Z >= |z|)`.
///
/// Note the threshold for the exact distribution is 50 pairs *before*
/// dropping zeros, as in SciPy.
///
/// Errors: `Empty`, `NonFinite`, `LengthMismatch`, `TooFew { needed: 2 }`,
/// `ZeroVariance` when every difference is zero.
pub fn wilcoxon_signed_rank(a: &[f64], b: &[f64]) -> Result<TestResult> {
    validate_paired(a, b, 2)?;
    let n_total = a.len();
    let d = differences(a, b);
    let nonzero: Vec<f64> = d.into_iter().filter(|v| *v != 0.0).collect();
    let m = nonzero.len();
    if m == 0 {
        return Err(zero_variance(
            "all paired differences are zero; the signed-rank test is undefined",
        ));
    }
    let has_zeros = m < n_total;
    let abs: Vec<f64> = nonzero.iter().map(|v| v.abs()).collect();
    let (ranks, groups) = average_ranks(&abs);
    let has_ties = groups.iter().any(|&g| g > 1);
    let w_plus: f64 = nonzero
        .iter()
        .zip(&ranks)
        .filter(|(v, _)| **v > 0.0)
        .map(|(_, r)| r)
        .sum();
    let w_minus = (m * (m + 1)) as f64 / 2.0 - w_plus;
    let statistic = w_plus.min(w_minus);

    let exact = n_total <= 50 && !has_ties && !has_zeros;
    let permutation = !exact && n_total <= 13;
    let (p_value, method) = if exact || permutation {
        // Doubled ranks are integers (average ranks are multiples of 1/2).
        let doubled: Vec<usize> = ranks.iter().map(|r| (2.0 * r).round() as usize).collect();
        let observed = (2.0 * w_plus).round() as usize;
        let counts = subset_sum_counts(&doubled);
        let le: u64 = counts[..=observed].iter().sum();
        let ge: u64 = counts[observed..].iter().sum();
        let total = 2f64.powi(m as i32);
        let p = (2.0 * le.min(ge) as f64 / total).min(1.0);
        let method = if exact {
            "Wilcoxon signed-rank (exact)"
        } else {
            "Wilcoxon signed-rank (exact permutation, ties/zeros)"
        };
        (p, method)
    } else {
        let mf = m as f64;
        let mean_w = mf * (mf + 1.0) * 0.25;
        let tie_term: f64 = groups
            .iter()
            .map(|&t| {
                let t = t as f64;
                t * t * t - t
            })
            .sum();
        let se = ((mf * (mf + 1.0) * (2.0 * mf + 1.0) - tie_term / 2.0) / 24.0).sqrt();
        let z = (w_plus - mean_w) / se;
        // numpy.sign semantics: no correction when z == 0.
        let sign = if z > 0.0 {
            1.0
        } else if z < 0.0 {
            -1.0
        } else {
            0.0
        };
        let z = z - sign * 0.5 / se;
        (
            normal_two_sided(z),
            "Wilcoxon signed-rank (normal approximation, tie and continuity corrected)",
        )
    };
    Ok(TestResult {
        statistic,
        p_value,
        df: None,
        n: m,
        method: method.into(),
    })
}

/// Lower-tail probability `P(U <= k)` of the Mann-Whitney U null distribution
/// without ties for sample sizes `n1`, `n2` (`k <= n1 n2 / 2` expected).
///
/// Uses the generating function `prod_{j=1..m} (1 - q^(n+j)) / (1 - q^j)`
/// (a Gaussian binomial coefficient) truncated at degree `k`, divided by
/// `C(n1 + n2, n1)`.
fn mwu_cdf(k: usize, n1: usize, n2: usize) -> f64 {
    let (m, n) = (n1.min(n2), n1.max(n2));
    let mut c = vec![0.0f64; k + 1];
    c[0] = 1.0;
    let mut total = 1.0f64;
    for j in 1..=m {
        let shift = n + j;
        if shift <= k {
            for i in (shift..=k).rev() {
                c[i] -= c[i - shift];
            }
        }
        for i in j..=k {
            c[i] += c[i - j];
        }
        total = total * (n + j) as f64 / j as f64;
    }
    c.iter().sum::<f64>() / total
}

/// Mann-Whitney U test (Wilcoxon rank-sum), two-sided, reproducing
/// `scipy.stats.mannwhitneyu(a, b)` defaults of SciPy 1.17
/// (`use_continuity=True`, `method="auto"`):
///
/// * pooled average ranks; `U_a = R_a - n_a(n_a+1)/2` (number of pairs with
///   `a_i > b_j`, ties counting 1/2), `U_b = n_a n_b - U_a`;
/// * `statistic = U_a` (as SciPy's returned statistic), `n = n_a + n_b`;
/// * p-value with `U = max(U_a, U_b)`:
///   - no ties and `min(n_a, n_b) <= 8`: exact, `p = min(1, 2 P(U' >= U))`
///     (SciPy's "auto" goes exact when *either* sample has at most 8
///     observations, not only when both do);
///   - otherwise normal approximation with tie correction
///     `s = sqrt(n_a n_b / 12 * ((N + 1) - sum(t^3 - t) / (N (N - 1))))`,
///     `z = (U - n_a n_b / 2 - 0.5) / s`, `p = min(1, 2 P(Z >= z))`.
///
/// Errors: `Empty`, `NonFinite`, `TooFew { needed: 2 }` for either sample,
/// `ZeroVariance` when all pooled values are identical.
pub fn mann_whitney_u(a: &[f64], b: &[f64]) -> Result<TestResult> {
    validate_two(a, b, 2)?;
    let (n1, n2) = (a.len(), b.len());
    let pooled: Vec<f64> = a.iter().chain(b).copied().collect();
    let (ranks, groups) = average_ranks(&pooled);
    if groups.len() == 1 {
        return Err(zero_variance(
            "all values are identical; the rank-sum test is undefined",
        ));
    }
    let r1: f64 = ranks[..n1].iter().sum();
    let u1 = r1 - (n1 * (n1 + 1)) as f64 / 2.0;
    let nn = (n1 * n2) as f64;
    let u = u1.max(nn - u1);
    let has_ties = groups.iter().any(|&g| g > 1);
    let (p_value, method) = if !has_ties && n1.min(n2) <= 8 {
        // Without ties U is an integer; P(U' >= u) = P(U' <= n1 n2 - u).
        let k = (nn - u).round() as usize;
        (
            (2.0 * mwu_cdf(k, n1, n2)).min(1.0),
            "Mann-Whitney U (exact)",
        )
    } else {
        let n = (n1 + n2) as f64;
        let tie_term: f64 = groups
            .iter()
            .map(|&t| {
                let t = t as f64;
                t * t * t - t
            })
            .sum();
        let s = (nn / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)))).sqrt();
        let z = (u - nn / 2.0 - 0.5) / s;
        (
            (2.0 * std_normal().cdf(-z)).min(1.0),
            "Mann-Whitney U (normal approximation, tie and continuity corrected)",
        )
    };
    Ok(TestResult {
        statistic: u1,
        p_value,
        df: None,
        n: n1 + n2,
        method: method.into(),
    })
}

/// Holm-Bonferroni step-down adjusted p-values, in the input order.
///
/// With the p-values sorted ascending `p_(1) <= ... <= p_(m)`:
/// `adj_(i) = min(1, max_{j <= i} (m - j + 1) p_(j))` (monotone in `i`,
/// capped at 1; as `statsmodels.stats.multitest.multipletests(method="holm")`).
///
/// Errors: `Empty`, `NonFinite` (NaN/inf), `InvalidArgument` for a value
/// outside `[0, 1]`.
pub fn holm(p_values: &[f64]) -> Result<Vec<f64>> {
    validate(p_values, 1)?;
    if let Some(p) = p_values.iter().find(|p| !(0.0..=1.0).contains(*p)) {
        return Err(StatsError::InvalidArgument(format!(
            "p-values must be in [0, 1], got {p}"
        )));
    }
    let m = p_values.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&i, &j| p_values[i].total_cmp(&p_values[j]));
    let mut adjusted = vec![0.0; m];
    let mut running = 0.0f64;
    for (rank, &idx) in order.iter().enumerate() {
        running = running.max((m - rank) as f64 * p_values[idx]);
        adjusted[idx] = running.min(1.0);
    }
    Ok(adjusted)
}

/// Evaluates `c[0] + c[1] x + c[2] x^2 + ...`, Horner order as AS R94's POLY.
fn poly(c: &[f64], x: f64) -> f64 {
    match c.len() {
        0 => 0.0,
        1 => c[0],
        len => {
            let mut p = x * c[len - 1];
            for &ci in c[1..len - 1].iter().rev() {
                p = (p + ci) * x;
            }
            c[0] + p
        }
    }
}

/// Normal quantile, algorithm AS 111 (Beasley & Springer 1977), used by
/// AS R94 for the approximate expected normal order statistics.
fn ppnd(p: f64) -> f64 {
    const A: [f64; 4] = [
        2.50662823884,
        -18.61500062529,
        41.39119773534,
        -25.44106049637,
    ];
    const B: [f64; 4] = [
        -8.47351093090,
        23.08336743743,
        -21.06224101826,
        3.13082909833,
    ];
    const C: [f64; 4] = [-2.78718931138, -2.29796479134, 4.85014127135, 2.32121276858];
    const D: [f64; 2] = [3.54388924762, 1.63706781897];
    let q = p - 0.5;
    if q.abs() <= 0.42 {
        let r = q * q;
        return q * (((A[3] * r + A[2]) * r + A[1]) * r + A[0])
            / ((((B[3] * r + B[2]) * r + B[1]) * r + B[0]) * r + 1.0);
    }
    let mut r = if q > 0.0 { 1.0 - p } else { p };
    if r <= 0.0 {
        return 0.0;
    }
    r = (-r.ln()).sqrt();
    let v = (((C[3] * r + C[2]) * r + C[1]) * r + C[0]) / ((D[1] * r + D[0]) * r + 1.0);
    if q < 0.0 {
        -v
    } else {
        v
    }
}

/// Upper normal tail `P(Z > x)`, algorithm AS 66 (Hill 1973) with the
/// extended range of the 2001 revision, as used by AS R94 / SciPy.
fn alnorm_upper(x: f64) -> f64 {
    const LTONE: f64 = 7.0;
    const UTZERO: f64 = 38.0;
    const CON: f64 = 1.28;
    let mut upper = true;
    let mut z = x;
    if z <= 0.0 {
        upper = false;
        z = -z;
    }
    if !(z <= LTONE || (upper && z <= UTZERO)) {
        return if upper { 0.0 } else { 1.0 };
    }
    let y = 0.5 * z * z;
    let temp = if z <= CON {
        0.5 - z
            * (0.398942280444
                - 0.399903438504 * y
                    / (y + 5.75885480458
                        - 29.8213557808
                            / (y + 2.62433121679 + 48.6959930692 / (y + 5.92885724438))))
    } else {
        0.398942280385 * (-y).exp()
            / (z - 3.8052e-8
                + 1.00000615302
                    / (z + 3.98064794e-4
                        + 1.98615381364
                            / (z - 0.151679116635
                                + 5.29330324926
                                    / (z + 4.8385912808
                                        - 15.1508972451
                                            / (z + 0.742380924027
                                                + 30.789933034 / (z + 3.99019417011))))))
    };
    if upper {
        temp
    } else {
        1.0 - temp
    }
}

/// Shapiro-Wilk test of normality, Royston's algorithm AS R94 (Royston 1995,
/// "Remark AS R94", Applied Statistics 44:547-551), as `scipy.stats.shapiro`:
///
/// * `W = (sum a_i x_(i))^2 / sum (x_i - mean)^2` with Royston's
///   approximation of the coefficients `a` (computed, like SciPy, as the
///   squared correlation of `a` and the sorted, centred, range-scaled data);
/// * p-value: `n = 3` exact, `p = 1 - (6/pi) acos(sqrt(W))` (`W < 0.75` is
///   clamped to `W = 0.75, p = 0`); `4 <= n <= 11` and `n >= 12` use
///   Royston's normalising transformations of `1 - W` and the AS 66 upper
///   normal tail; for `n <= 11` a `W` below the transformation's domain gives
///   `p = 1e-19` (as AS R94).
///
/// `statistic = W`, `n` = sample size.
///
/// Errors: `Empty`, `NonFinite`, `TooFew { needed: 3 }`, `InvalidArgument`
/// for `n > 5000` (outside the algorithm's validated range), `ZeroVariance`
/// when all values are identical.
pub fn shapiro_wilk(x: &[f64]) -> Result<TestResult> {
    validate(x, 3)?;
    let n = x.len();
    if n > 5000 {
        return Err(StatsError::InvalidArgument(format!(
            "Shapiro-Wilk supports 3 <= n <= 5000, got n = {n}"
        )));
    }
    // Centre on a data value first (SciPy subtracts x[n/2] of the unsorted
    // input; it does not change W mathematically, only rounding).
    let shift = x[n / 2];
    let y: Vec<f64> = sorted(x).into_iter().map(|v| v - shift).collect();
    let range = y[n - 1] - y[0];
    if range < 1e-19 {
        return Err(zero_variance(
            "all values are identical; the Shapiro-Wilk test is undefined",
        ));
    }

    let half = n / 2;
    let mut a = vec![0.0; half];
    if n == 3 {
        a[0] = std::f64::consts::FRAC_1_SQRT_2;
    } else {
        const C1: [f64; 6] = [0.0, 0.221157, -0.147981, -2.071190, 4.434685, -2.706056];
        const C2: [f64; 6] = [0.0, 0.042981, -0.293762, -1.752461, 5.682633, -3.582633];
        let an = n as f64;
        let an25 = an + 0.25;
        let mut summ2 = 0.0;
        for (i, ai) in a.iter_mut().enumerate() {
            let m = ppnd((i as f64 + 1.0 - 0.375) / an25);
            *ai = m;
            summ2 += m * m;
        }
        summ2 *= 2.0;
        let ssumm2 = summ2.sqrt();
        let rsn = 1.0 / an.sqrt();
        let a1 = poly(&C1, rsn) - a[0] / ssumm2;
        let (first_scaled, fac) = if n > 5 {
            let a2 = -a[1] / ssumm2 + poly(&C2, rsn);
            let fac = ((summ2 - 2.0 * a[0] * a[0] - 2.0 * a[1] * a[1])
                / (1.0 - 2.0 * a1 * a1 - 2.0 * a2 * a2))
                .sqrt();
            a[1] = a2;
            (2, fac)
        } else {
            let fac = ((summ2 - 2.0 * a[0] * a[0]) / (1.0 - 2.0 * a1 * a1)).sqrt();
            (1, fac)
        };
        a[0] = a1;
        for ai in a.iter_mut().skip(first_scaled) {
            *ai *= -1.0 / fac;
        }
    }
    // Full antisymmetric coefficient vector over the order statistics.
    let coef = |i: usize| -> f64 {
        let j = n - 1 - i;
        match i.cmp(&j) {
            std::cmp::Ordering::Less => -a[i],
            std::cmp::Ordering::Greater => a[j],
            std::cmp::Ordering::Equal => 0.0,
        }
    };
    let nf = n as f64;
    let sa = (0..n).map(coef).sum::<f64>() / nf;
    let sx = y.iter().map(|v| v / range).sum::<f64>() / nf;
    let (mut ssa, mut ssx, mut sax) = (0.0, 0.0, 0.0);
    for (i, yi) in y.iter().enumerate() {
        let asa = coef(i) - sa;
        let xsx = yi / range - sx;
        ssa += asa * asa;
        ssx += xsx * xsx;
        sax += asa * xsx;
    }
    let ssassx = (ssa * ssx).sqrt();
    let w1 = (ssassx - sax) * (ssassx + sax) / (ssa * ssx);
    let mut w = 1.0 - w1;

    let p_value = if n == 3 {
        if w < 0.75 {
            w = 0.75;
            0.0
        } else {
            1.0 - 6.0 / std::f64::consts::PI * w.sqrt().acos()
        }
    } else if w1 <= 0.0 {
        // W rounds to 1 (or above): perfect agreement with normal scores.
        // SciPy reaches p = 1 here through a NaN in AS 66.
        1.0
    } else {
        let y = w1.ln();
        let xx = nf.ln();
        let mut small_p = None;
        let (yv, m, s) = if n <= 11 {
            let gamma = poly(&[-2.273, 0.459], nf);
            if y >= gamma {
                small_p = Some(1e-19);
            }
            let m = poly(&[0.5440, -0.39978, 0.025054, -6.714e-4], nf);
            let s = poly(&[1.3822, -0.77857, 0.062767, -0.0020322], nf).exp();
            (-(gamma - y).ln(), m, s)
        } else {
            let m = poly(&[-1.5861, -0.31082, -0.083751, 0.0038915], xx);
            let s = poly(&[-0.4803, -0.082676, 0.0030302], xx).exp();
            (y, m, s)
        };
        small_p.unwrap_or_else(|| alnorm_upper((yv - m) / s))
    };
    Ok(TestResult {
        statistic: w,
        p_value,
        df: None,
        n,
        method: "Shapiro-Wilk (Royston AS R94)".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subset_counts_small() {
        // Subsets of {1,2,3}: sums 0,1,2,3,3,4,5,6.
        assert_eq!(subset_sum_counts(&[1, 2, 3]), vec![1, 1, 1, 2, 1, 1, 1]);
    }

    #[test]
    fn mwu_cdf_matches_enumeration() {
        // n1 = 2, n2 = 3: U takes 0..=6 with counts 1,1,2,2,2,1,1 over 10.
        let expected = [1.0, 2.0, 4.0, 6.0, 8.0, 9.0, 10.0];
        for (k, e) in expected.iter().enumerate() {
            assert!((mwu_cdf(k, 2, 3) - e / 10.0).abs() < 1e-15);
            assert!((mwu_cdf(k, 3, 2) - e / 10.0).abs() < 1e-15);
        }
    }

    #[test]
    fn ppnd_and_alnorm_are_sane() {
        assert!(ppnd(0.5).abs() < 1e-12);
        assert!((ppnd(0.975) - 1.959964).abs() < 1e-5);
        assert!((alnorm_upper(1.959964) - 0.025).abs() < 1e-6);
        assert!((alnorm_upper(-1.0) - 0.841344746).abs() < 1e-8);
        assert_eq!(alnorm_upper(40.0), 0.0);
        assert_eq!(alnorm_upper(-40.0), 1.0);
    }

    #[test]
    fn holm_known() {
        let adj = holm(&[0.01, 0.04, 0.03, 0.005]).unwrap();
        let expected = [0.03, 0.06, 0.06, 0.02];
        for (a, e) in adj.iter().zip(expected) {
            assert!((a - e).abs() < 1e-15, "{adj:?}");
        }
        assert_eq!(holm(&[0.9, 0.8]).unwrap(), vec![1.0, 1.0]);
        assert_eq!(holm(&[0.2]).unwrap(), vec![0.2]);
    }
}

/// Two one-sided tests (TOST) on a relative change: equivalent within `+/- margin` when the
/// change's `1 - 2 alpha` confidence interval (`ci`, e.g. the 90% CI for alpha = 5%) lies inside
/// `(-margin, margin)`, i.e. both one-sided nulls (change <= -margin, change >= margin) are
/// rejected at alpha. A change can be statistically significant and still equivalent.
pub fn within_margin(ci: [f64; 2], margin: f64) -> bool {
    margin > 0.0 && ci[0] > -margin && ci[1] < margin
}

#[cfg(test)]
mod tost_tests {
    use super::within_margin;

    #[test]
    fn equivalence_needs_the_whole_interval_inside_the_margin() {
        assert!(within_margin([-0.01, 0.015], 0.02));
        assert!(!within_margin([-0.01, 0.025], 0.02));
        assert!(!within_margin([-0.03, 0.0], 0.02));
        assert!(!within_margin([-0.001, 0.001], 0.0));
        // A tight CI away from zero: significant, yet equivalent.
        assert!(within_margin([0.004, 0.006], 0.02));
    }
}
