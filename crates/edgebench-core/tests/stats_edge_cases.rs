//! Error contract and edge cases of every public function of the `stats`
//! module: empty input, n = 1, n = 2, NaN/inf, length mismatch, constant data,
//! ties and zero differences.

use edgebench_core::stats::{self as st, CiMethod, StatsError};

type Two = fn(&[f64], &[f64]) -> st::Result<f64>;
type TwoTest = fn(&[f64], &[f64]) -> st::Result<st::TestResult>;

fn test_fns() -> Vec<(&'static str, TwoTest, bool)> {
    // (name, function, paired)
    vec![
        ("paired_t_test", st::paired_t_test, true),
        ("welch_t_test", st::welch_t_test, false),
        ("wilcoxon_signed_rank", st::wilcoxon_signed_rank, true),
        ("mann_whitney_u", st::mann_whitney_u, false),
    ]
}

fn effect_fns() -> Vec<(&'static str, Two, bool)> {
    vec![
        ("cohens_d_paired", st::cohens_d_paired, true),
        ("cohens_d_pooled", st::cohens_d_pooled, false),
        ("rank_biserial_paired", st::rank_biserial_paired, true),
        ("rank_biserial_unpaired", st::rank_biserial_unpaired, false),
    ]
}

fn ratio(a: &[f64], b: &[f64], paired: bool) -> st::Result<st::ConfidenceInterval> {
    st::bootstrap_ratio_of_means_ci(a, b, 0.95, 200, 1, paired)
}

const A: [f64; 6] = [1.0, 2.5, 3.0, 4.5, 5.0, 7.0];
const B: [f64; 6] = [1.5, 2.0, 3.5, 4.0, 6.5, 6.0];

#[test]
fn empty_inputs_are_rejected() {
    let e: [f64; 0] = [];
    for (name, f, _) in test_fns() {
        assert_eq!(f(&e, &B).err(), Some(StatsError::Empty), "{name}");
        assert_eq!(f(&A, &e).err(), Some(StatsError::Empty), "{name}");
    }
    for (name, f, _) in effect_fns() {
        assert_eq!(f(&e, &B).err(), Some(StatsError::Empty), "{name}");
        assert_eq!(f(&A, &e).err(), Some(StatsError::Empty), "{name}");
    }
    assert_eq!(st::shapiro_wilk(&e).err(), Some(StatsError::Empty));
    assert_eq!(st::holm(&e).err(), Some(StatsError::Empty));
    assert_eq!(st::summarize(&e).err(), Some(StatsError::Empty));
    assert_eq!(
        st::bootstrap_mean_ci(&e, 0.95, 100, 1).err(),
        Some(StatsError::Empty)
    );
    assert_eq!(ratio(&e, &B, true).err(), Some(StatsError::Empty));
    assert_eq!(ratio(&A, &e, false).err(), Some(StatsError::Empty));
}

#[test]
fn single_observation_is_too_few() {
    let one = [1.0];
    let too_few = Some(StatsError::TooFew { needed: 2, got: 1 });
    for (name, f, paired) in test_fns() {
        if paired {
            assert_eq!(f(&one, &[2.0]).err(), too_few, "{name}");
        } else {
            assert_eq!(f(&one, &B).err(), too_few, "{name}");
            assert_eq!(f(&A, &one).err(), too_few, "{name}");
        }
    }
    for (name, f, paired) in effect_fns() {
        if paired {
            assert_eq!(f(&one, &[2.0]).err(), too_few, "{name}");
        } else {
            assert_eq!(f(&one, &B).err(), too_few, "{name}");
        }
    }
    assert_eq!(st::std_dev(&one).err(), too_few);
    assert_eq!(st::variance(&one).err(), too_few);
    assert_eq!(st::cv(&one).err(), too_few);
    assert_eq!(st::bootstrap_mean_ci(&one, 0.95, 100, 1).err(), too_few);
    assert_eq!(ratio(&one, &[2.0], true).err(), too_few);
    assert_eq!(
        st::shapiro_wilk(&[1.0, 2.0]).err(),
        Some(StatsError::TooFew { needed: 3, got: 2 })
    );
    // Defined for n = 1:
    assert_eq!(st::mean(&one).unwrap(), 1.0);
    assert_eq!(st::holm(&[0.3]).unwrap(), vec![0.3]);
}

#[test]
fn two_observations_work_where_defined() {
    let (a, b) = ([1.0, 2.0], [3.0, 5.0]);
    for (name, f, _) in test_fns() {
        let r = f(&a, &b).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!((0.0..=1.0).contains(&r.p_value), "{name}");
    }
    for (name, f, _) in effect_fns() {
        let v = f(&a, &b).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(v.is_finite(), "{name}");
    }
    assert!(ratio(&a, &b, true).is_ok());
    assert!(st::summarize(&a).unwrap().std_dev.is_some());
}

#[test]
fn non_finite_values_are_rejected_everywhere() {
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let mut x = A;
        x[3] = bad;
        for (name, f, _) in test_fns() {
            assert_eq!(f(&x, &B).err(), Some(StatsError::NonFinite), "{name}");
            assert_eq!(f(&A, &x).err(), Some(StatsError::NonFinite), "{name}");
        }
        for (name, f, _) in effect_fns() {
            assert_eq!(f(&x, &B).err(), Some(StatsError::NonFinite), "{name}");
            assert_eq!(f(&A, &x).err(), Some(StatsError::NonFinite), "{name}");
        }
        assert_eq!(st::shapiro_wilk(&x).err(), Some(StatsError::NonFinite));
        assert_eq!(st::summarize(&x).err(), Some(StatsError::NonFinite));
        assert_eq!(st::percentile(&x, 50.0).err(), Some(StatsError::NonFinite));
        assert_eq!(st::holm(&[0.1, bad]).err(), Some(StatsError::NonFinite));
        assert_eq!(
            st::bootstrap_ci(&x, |v| v[0], 0.95, 10, 1, CiMethod::Bca).err(),
            Some(StatsError::NonFinite)
        );
        assert_eq!(ratio(&x, &B, true).err(), Some(StatsError::NonFinite));
        assert_eq!(ratio(&A, &x, false).err(), Some(StatsError::NonFinite));
        assert_eq!(st::cohens_d_label(bad).err(), Some(StatsError::NonFinite));
        assert_eq!(
            st::rank_biserial_label(bad).err(),
            Some(StatsError::NonFinite)
        );
        assert_eq!(
            st::bca_levels(&[1.0, 2.0], bad, 0.0, 0.95).err(),
            Some(StatsError::NonFinite)
        );
    }
}

#[test]
fn paired_functions_require_equal_lengths() {
    let mismatch = Some(StatsError::LengthMismatch { left: 6, right: 5 });
    for (name, f, paired) in test_fns() {
        let r = f(&A, &B[..5]);
        if paired {
            assert_eq!(r.err(), mismatch, "{name}");
        } else {
            assert!(r.is_ok(), "{name}: unpaired accepts different sizes");
        }
    }
    for (name, f, paired) in effect_fns() {
        let r = f(&A, &B[..5]);
        if paired {
            assert_eq!(r.err(), mismatch, "{name}");
        } else {
            assert!(r.is_ok(), "{name}");
        }
    }
    assert_eq!(ratio(&A, &B[..5], true).err(), mismatch);
}

#[test]
fn constant_data_gives_zero_variance_errors() {
    let c = [3.0; 6];
    let zero_var = |r: st::Result<st::TestResult>| matches!(r, Err(StatsError::ZeroVariance(_)));
    // Identical samples: every difference is zero.
    assert!(zero_var(st::paired_t_test(&c, &c)));
    assert!(zero_var(st::wilcoxon_signed_rank(&c, &c)));
    assert!(zero_var(st::welch_t_test(&c, &c)));
    assert!(zero_var(st::mann_whitney_u(&c, &c)));
    assert!(zero_var(st::shapiro_wilk(&c)));
    // Two different constants: Welch undefined, rank test defined.
    let d = [4.0; 6];
    assert!(zero_var(st::welch_t_test(&c, &d)));
    let mwu = st::mann_whitney_u(&c, &d).unwrap();
    assert_eq!(mwu.statistic, 0.0);
    // Constant non-zero differences: t undefined, signed-rank defined
    // (SciPy: exact permutation, p = 2 / 2^6).
    assert!(zero_var(st::paired_t_test(&d, &c)));
    let w = st::wilcoxon_signed_rank(&d, &c).unwrap();
    assert!((w.p_value - 2.0 / 64.0).abs() < 1e-15);
    assert_eq!(w.statistic, 0.0);
    // One constant sample is fine for Welch.
    assert!(st::welch_t_test(&c, &A).is_ok());
}

#[test]
fn zero_differences_are_dropped_by_signed_rank() {
    let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let b = [1.0, 2.0, 2.5, 3.0, 4.0, 8.0];
    let w = st::wilcoxon_signed_rank(&a, &b).unwrap();
    assert_eq!(w.n, 4, "two zero differences dropped");
    assert!(w.method.contains("permutation"));
    // d = [0.5, 1, 1, -2] -> ranks of |d|: 1, 2.5, 2.5, 4; W+ = 6, W- = 4.
    assert_eq!(w.statistic, 4.0);
    let r = st::rank_biserial_paired(&a, &b).unwrap();
    assert!((r - 0.2).abs() < 1e-15);
}

#[test]
fn ties_use_average_ranks() {
    let a = [1.0, 2.0, 2.0, 3.0];
    let b = [2.0, 3.0, 3.0, 4.0];
    let r = st::mann_whitney_u(&a, &b).unwrap();
    // Pooled ranks: 1, 3, 3, 6 for a -> R_a = 13, U_a = 3.
    assert_eq!(r.statistic, 3.0);
    assert!(r.method.contains("normal approximation"));
    let rb = st::rank_biserial_unpaired(&a, &b).unwrap();
    assert!((rb - (2.0 * 3.0 / 16.0 - 1.0)).abs() < 1e-15);
}

#[test]
fn shapiro_range_and_arguments() {
    let big: Vec<f64> = (0..5001).map(|i| f64::from(i % 97)).collect();
    assert!(matches!(
        st::shapiro_wilk(&big),
        Err(StatsError::InvalidArgument(_))
    ));
    let ok: Vec<f64> = (0..5000).map(|i| f64::from(i % 97) + 0.5).collect();
    let r = st::shapiro_wilk(&ok).unwrap();
    assert!((0.0..=1.0).contains(&r.statistic) && (0.0..=1.0).contains(&r.p_value));
    assert!(st::shapiro_wilk(&[1.0, 2.0, 2.0]).is_ok());
}

#[test]
fn holm_argument_checks() {
    assert!(matches!(
        st::holm(&[0.1, 1.5]),
        Err(StatsError::InvalidArgument(_))
    ));
    assert!(matches!(
        st::holm(&[-0.1]),
        Err(StatsError::InvalidArgument(_))
    ));
    let adj = st::holm(&[0.04, 0.01, 0.04]).unwrap();
    assert_eq!(adj, vec![0.08, 0.03, 0.08]);
}

#[test]
fn results_serialize() {
    let t = st::welch_t_test(&A, &B).unwrap();
    let json = serde_json::to_string(&t).unwrap();
    let back: st::TestResult = serde_json::from_str(&json).unwrap();
    assert_eq!(back, t);
    let ci = st::bootstrap_mean_ci(&A, 0.95, 100, 42).unwrap();
    let back: st::ConfidenceInterval =
        serde_json::from_str(&serde_json::to_string(&ci).unwrap()).unwrap();
    assert_eq!(back, ci);
    let s = st::summarize(&[1.0]).unwrap();
    let v: serde_json::Value = serde_json::to_value(&s).unwrap();
    assert!(v["std_dev"].is_null());
    assert_eq!(
        serde_json::to_string(&st::EffectLabel::Medium).unwrap(),
        "\"medium\""
    );
}

#[test]
fn errors_display_clearly() {
    assert_eq!(
        StatsError::TooFew { needed: 2, got: 1 }.to_string(),
        "too few observations: needed at least 2, got 1"
    );
    assert!(StatsError::NonFinite.to_string().contains("NaN"));
    assert!(StatsError::LengthMismatch { left: 3, right: 4 }
        .to_string()
        .contains("3"));
}
