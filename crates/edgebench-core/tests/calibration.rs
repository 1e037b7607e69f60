//! Calibration of the hypothesis tests by simulation: under the null the
//! rejection rate at alpha = 0.05 must be near 5%, a real shift must be
//! detected with high power, and Holm's adjustment over a family of null tests
//! must hold the family-wise error at alpha. 2,000 seeded data sets per scenario.

use edgebench_core::stats as st;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SEEDS: u64 = 2_000;
const N: usize = 30;
const ALPHA: f64 = 0.05;

/// Standard normal draw (Box-Muller), so the test needs no extra crate.
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = 1.0 - rng.gen::<f64>(); // (0, 1]
    let u2: f64 = rng.gen::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Paired benchmark-like data: a shared per-pair component (sd 1) plus
/// independent noise with sd sqrt(1/2) on each side, so the differences
/// `a - b` are N(-shift, 1): `shift` is in units of the sd of the differences.
fn paired_sample(seed: u64, shift: f64) -> (Vec<f64>, Vec<f64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let noise = std::f64::consts::FRAC_1_SQRT_2;
    let mut a = Vec::with_capacity(N);
    let mut b = Vec::with_capacity(N);
    for _ in 0..N {
        let common = 10.0 + normal(&mut rng);
        a.push(common + noise * normal(&mut rng));
        b.push(common + noise * normal(&mut rng) + shift);
    }
    (a, b)
}

/// Two independent N(0, 1) and N(shift, 1) samples of size N.
fn independent_samples(seed: u64, shift: f64) -> (Vec<f64>, Vec<f64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x9E37_79B9_7F4A_7C15);
    let a = (0..N).map(|_| normal(&mut rng)).collect();
    let b = (0..N).map(|_| normal(&mut rng) + shift).collect();
    (a, b)
}

type Test = fn(&[f64], &[f64]) -> st::Result<st::TestResult>;

fn rejection_rate(test: Test, data: fn(u64, f64) -> (Vec<f64>, Vec<f64>), shift: f64) -> f64 {
    let rejected = (0..SEEDS)
        .filter(|&seed| {
            let (a, b) = data(seed, shift);
            let r = test(&a, &b).expect("continuous data: test is defined");
            assert!((0.0..=1.0).contains(&r.p_value));
            r.p_value < ALPHA
        })
        .count();
    rejected as f64 / SEEDS as f64
}

/// Binomial sd of a 5% rate over 2,000 seeds is about 0.5%, so [3%, 7%] is a
/// ±4 sd band.
#[track_caller]
fn assert_size(rate: f64, what: &str) {
    assert!(
        (0.03..=0.07).contains(&rate),
        "{what}: null rejection rate {rate} outside [0.03, 0.07]"
    );
}

#[test]
fn paired_tests_hold_their_size_and_have_power() {
    let t_null = rejection_rate(st::paired_t_test, paired_sample, 0.0);
    let w_null = rejection_rate(st::wilcoxon_signed_rank, paired_sample, 0.0);
    assert_size(t_null, "paired t");
    assert_size(w_null, "Wilcoxon");
    // d_z = 0.8 with 30 pairs: theoretical power ~0.99 (t), ~0.98 (Wilcoxon).
    let t_power = rejection_rate(st::paired_t_test, paired_sample, 0.8);
    let w_power = rejection_rate(st::wilcoxon_signed_rank, paired_sample, 0.8);
    println!("paired: size t {t_null}, W {w_null}; power t {t_power}, W {w_power}");
    assert!(t_power > 0.9, "paired t power {t_power}");
    assert!(w_power > 0.9, "Wilcoxon power {w_power}");
}

#[test]
fn unpaired_tests_hold_their_size_and_have_power() {
    let welch_null = rejection_rate(st::welch_t_test, independent_samples, 0.0);
    let mwu_null = rejection_rate(st::mann_whitney_u, independent_samples, 0.0);
    assert_size(welch_null, "Welch");
    assert_size(mwu_null, "Mann-Whitney");
    // d = 0.8 with 30 + 30 observations: theoretical power ~0.86 (Welch),
    // ~0.84 (Mann-Whitney); the bound leaves room for simulation noise.
    let welch_power = rejection_rate(st::welch_t_test, independent_samples, 0.8);
    let mwu_power = rejection_rate(st::mann_whitney_u, independent_samples, 0.8);
    println!(
        "unpaired: size Welch {welch_null}, MWU {mwu_null}; power Welch {welch_power}, MWU {mwu_power}"
    );
    assert!(welch_power > 0.8, "Welch power {welch_power}");
    assert!(mwu_power > 0.78, "Mann-Whitney power {mwu_power}");
}

/// Tests in the simulated family (a comparison tests several metrics at once).
const FAMILY: usize = 5;

/// `FAMILY` independent paired null tests per seed: how often at least one p,
/// raw and Holm-adjusted, falls below alpha.
fn family_error(test: Test) -> (f64, f64) {
    let (mut raw, mut holm) = (0usize, 0usize);
    for seed in 0..SEEDS {
        let ps: Vec<f64> = (0..FAMILY as u64)
            .map(|k| {
                let (a, b) = paired_sample(seed * FAMILY as u64 + k + 1_000_000, 0.0);
                test(&a, &b).expect("continuous data").p_value
            })
            .collect();
        let adj = st::holm(&ps).expect("p-values in [0, 1]");
        raw += usize::from(ps.iter().any(|p| *p < ALPHA));
        holm += usize::from(adj.iter().any(|p| *p < ALPHA));
    }
    (raw as f64 / SEEDS as f64, holm as f64 / SEEDS as f64)
}

#[test]
fn holm_holds_the_family_wise_error_of_null_families() {
    // Holm guarantees a family-wise error <= alpha. Simulated over 2,000 seeds,
    // a procedure at exactly alpha has a Binomial(2000, 0.05) count: sd =
    // sqrt(0.05 * 0.95 / 2000) = 0.0049, and three sd (one-sided; exceeded
    // with probability ~0.13% by the normal approximation) allow 0.05 + 0.0146.
    let margin = 3.0 * (ALPHA * (1.0 - ALPHA) / SEEDS as f64).sqrt();
    assert!((margin - 0.0146).abs() < 1e-3, "{margin}");
    for (name, test) in [
        ("paired t", st::paired_t_test as Test),
        ("Wilcoxon", st::wilcoxon_signed_rank as Test),
    ] {
        let (raw, holm) = family_error(test);
        println!("{name}: family of {FAMILY}, any raw p < alpha {raw}, any Holm p < alpha {holm}");
        assert!(
            holm <= ALPHA + margin,
            "{name}: Holm family-wise error {holm}"
        );
        // Without the adjustment the family errs far more often: 1 - 0.95^5 = 0.226
        // for independent tests; the band is +-4 binomial sd (0.0094 each).
        assert!(
            (0.18..=0.27).contains(&raw),
            "{name}: raw family-wise error {raw}"
        );
    }
}
