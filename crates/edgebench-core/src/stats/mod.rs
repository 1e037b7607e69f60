//! Pure statistics for edgebench: descriptive summaries, bootstrap confidence
//! intervals and intervals chosen by sample size, hypothesis tests and effect
//! sizes, with one shared error type.
//!
//! Every function is pure (no I/O, no global state), validates its input and
//! returns [`Result`]. Conventions shared by all submodules:
//!
//! * an empty input is [`StatsError::Empty`];
//! * any NaN or infinite value is [`StatsError::NonFinite`];
//! * too few observations for the quantity is [`StatsError::TooFew`];
//! * data without spread where the quantity divides by it (e.g. a t statistic
//!   of constant differences) is [`StatsError::ZeroVariance`].
//!
//! Reference values were produced with NumPy/SciPy (see
//! `scripts/stats_reference.py`); each function documents which SciPy routine
//! and which options it reproduces.

pub mod bootstrap;
pub mod descriptive;
pub mod effect;
pub mod hypothesis;
pub mod interval;

pub use bootstrap::{
    bca_levels, bootstrap_ci, bootstrap_indices_ci, bootstrap_mean_ci, bootstrap_ratio_of_means_ci,
    jackknife_acceleration, CiMethod, ConfidenceInterval,
};
pub use descriptive::{
    cv, max, mean, median, min, ols_slope, percentile, percentiles, std_dev, summarize,
    summarize_sorted, variance, Summary,
};
pub use effect::{
    cohens_d_label, cohens_d_paired, cohens_d_pooled, rank_biserial_label, rank_biserial_paired,
    rank_biserial_unpaired, EffectLabel,
};
pub use hypothesis::{
    holm, mann_whitney_u, paired_t_test, shapiro_wilk, welch_t_test, wilcoxon_signed_rank,
    within_margin, TestResult,
};
pub use interval::{mean_ci, proportion_ci, quantile_ci, quantile_ranks, BOOTSTRAP_MAX_N};

/// Errors returned by every function of the statistics module.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StatsError {
    /// The input slice has no elements.
    #[error("empty input: at least one observation is required")]
    Empty,
    /// The input has fewer observations than the quantity requires.
    #[error("too few observations: needed at least {needed}, got {got}")]
    TooFew {
        /// Minimum number of observations required.
        needed: usize,
        /// Number of observations supplied.
        got: usize,
    },
    /// The input contains NaN or an infinite value.
    #[error("non-finite input: NaN or infinite values are not allowed")]
    NonFinite,
    /// Two inputs that must be paired have different lengths.
    #[error("length mismatch: left has {left} observations, right has {right}")]
    LengthMismatch {
        /// Length of the first input.
        left: usize,
        /// Length of the second input.
        right: usize,
    },
    /// The data have no spread (all values, or all paired differences,
    /// identical), so the requested statistic would divide by zero.
    #[error("zero variance: {0}")]
    ZeroVariance(String),
    /// An argument other than the data is out of its domain.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// Result type of the statistics module.
pub type Result<T> = std::result::Result<T, StatsError>;

/// Checks `x` is non-empty, all finite, and has at least `needed` elements,
/// in that order of precedence (`Empty`, `NonFinite`, `TooFew`).
pub(crate) fn validate(x: &[f64], needed: usize) -> Result<()> {
    if x.is_empty() {
        return Err(StatsError::Empty);
    }
    if x.iter().any(|v| !v.is_finite()) {
        return Err(StatsError::NonFinite);
    }
    if x.len() < needed {
        return Err(StatsError::TooFew {
            needed,
            got: x.len(),
        });
    }
    Ok(())
}

/// Validates two samples independently (see [`validate`]).
pub(crate) fn validate_two(a: &[f64], b: &[f64], needed: usize) -> Result<()> {
    validate(a, needed)?;
    validate(b, needed)
}

/// Validates two paired samples: both valid, then equal lengths.
pub(crate) fn validate_paired(a: &[f64], b: &[f64], needed: usize) -> Result<()> {
    if a.is_empty() || b.is_empty() {
        return Err(StatsError::Empty);
    }
    if a.iter().chain(b.iter()).any(|v| !v.is_finite()) {
        return Err(StatsError::NonFinite);
    }
    if a.len() != b.len() {
        return Err(StatsError::LengthMismatch {
            left: a.len(),
            right: b.len(),
        });
    }
    validate(a, needed)
}

/// Paired differences `a[i] - b[i]` (lengths already validated).
pub(crate) fn differences(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x - y).collect()
}

/// Returns a sorted copy (total order; inputs are finite).
pub(crate) fn sorted(x: &[f64]) -> Vec<f64> {
    let mut v = x.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

/// Average ranks (1-based, ties get the mean of the ranks they span, as
/// `scipy.stats.rankdata(method="average")`) plus the sizes of all tie
/// groups (groups of size 1 included). Inputs must be finite.
pub(crate) fn average_ranks(x: &[f64]) -> (Vec<f64>, Vec<usize>) {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&i, &j| x[i].total_cmp(&x[j]));
    let mut ranks = vec![0.0; x.len()];
    let mut groups = Vec::new();
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && x[order[end]] == x[order[start]] {
            end += 1;
        }
        // Ranks start+1 ..= end, average = (start + 1 + end) / 2.
        let avg = (start + 1 + end) as f64 / 2.0;
        for &idx in &order[start..end] {
            ranks[idx] = avg;
        }
        groups.push(end - start);
        start = end;
    }
    (ranks, groups)
}

/// Standard normal distribution (infallible construction).
pub(crate) fn std_normal() -> statrs::distribution::Normal {
    statrs::distribution::Normal::standard()
}
