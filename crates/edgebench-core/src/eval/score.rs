//! Scores over scored items: accuracy, macro-F1, rates, and the most frequent confusions, each
//! with a seeded bootstrap 95% CI over items.

use std::collections::{BTreeMap, BTreeSet};

use crate::results::eval::{Confusion, Score};
use crate::stats::{self, bootstrap::DEFAULT_LEVEL};

/// Resamples for the CIs of scores.
pub const RESAMPLES: usize = 10_000;

/// Macro-F1 over the given items: the mean F1 over every label that is gold or predicted for
/// some item (as scikit-learn's default); `None` predictions (invalid answers) count as wrong
/// and are not a label.
pub fn macro_f1(gold: &[usize], pred: &[Option<usize>], idx: &[usize]) -> f64 {
    let mut tp: BTreeMap<usize, f64> = BTreeMap::new();
    let mut fp: BTreeMap<usize, f64> = BTreeMap::new();
    let mut fn_: BTreeMap<usize, f64> = BTreeMap::new();
    let mut labels = BTreeSet::new();
    for &i in idx {
        let g = gold[i];
        labels.insert(g);
        match pred[i] {
            Some(p) if p == g => *tp.entry(g).or_default() += 1.0,
            Some(p) => {
                labels.insert(p);
                *fp.entry(p).or_default() += 1.0;
                *fn_.entry(g).or_default() += 1.0;
            }
            None => *fn_.entry(g).or_default() += 1.0,
        }
    }
    if labels.is_empty() {
        return 0.0;
    }
    let f1_sum: f64 = labels
        .iter()
        .map(|l| {
            let t = tp.get(l).copied().unwrap_or(0.0);
            let denom =
                2.0 * t + fp.get(l).copied().unwrap_or(0.0) + fn_.get(l).copied().unwrap_or(0.0);
            if denom == 0.0 {
                0.0
            } else {
                2.0 * t / denom
            }
        })
        .sum();
    f1_sum / labels.len() as f64
}

/// The unbiased pass@k estimate of one problem with `n` samples of which `c` passed (Chen et
/// al. 2021): 1 - C(n-c, k) / C(n, k), as a stable product; `None` when `k > n`.
pub fn pass_at_k(n: usize, c: usize, k: usize) -> Option<f64> {
    if k == 0 || k > n {
        return None;
    }
    if n - c.min(n) < k {
        return Some(1.0);
    }
    let mut fail = 1.0;
    for i in (n - c + 1)..=n {
        fail *= 1.0 - k as f64 / i as f64;
    }
    Some(1.0 - fail)
}

/// The mean of a 0/1 (or fractional) per-item score, with its bootstrap CI.
pub fn mean_score(values: &[f64], seed: u64) -> Score {
    let n = values.len();
    let value = stats::mean(values).unwrap_or(0.0);
    let ci = stats::bootstrap_indices_ci(
        n,
        |idx| idx.iter().map(|&i| values[i]).sum::<f64>() / idx.len() as f64,
        DEFAULT_LEVEL,
        RESAMPLES,
        seed,
    )
    .ok();
    Score {
        value,
        ci_low: ci.as_ref().map(|c| c.lower),
        ci_high: ci.as_ref().map(|c| c.upper),
        n,
    }
}

/// Classification scores: accuracy, macro-F1 (both with CIs) and the invalid-answer rate.
pub fn classification(
    gold: &[usize],
    pred: &[Option<usize>],
    seed: u64,
) -> BTreeMap<String, Score> {
    let correct: Vec<f64> = gold
        .iter()
        .zip(pred)
        .map(|(g, p)| f64::from(u8::from(*p == Some(*g))))
        .collect();
    let invalid: Vec<f64> = pred
        .iter()
        .map(|p| f64::from(u8::from(p.is_none())))
        .collect();
    let n = gold.len();
    let all: Vec<usize> = (0..n).collect();
    let f1 = stats::bootstrap_indices_ci(
        n,
        |idx| macro_f1(gold, pred, idx),
        DEFAULT_LEVEL,
        // Macro-F1 is costlier per resample; 2,000 resamples keep the CI's Monte-Carlo error small.
        2_000,
        seed,
    )
    .ok();
    let mut out = BTreeMap::new();
    out.insert("accuracy".to_string(), mean_score(&correct, seed));
    out.insert(
        "macro_f1".to_string(),
        Score {
            value: macro_f1(gold, pred, &all),
            ci_low: f1.as_ref().map(|c| c.lower),
            ci_high: f1.as_ref().map(|c| c.upper),
            n,
        },
    );
    out.insert("invalid_rate".to_string(), mean_score(&invalid, seed));
    out
}

/// The `k` most frequent (gold, predicted) mistakes, invalid answers included as "invalid".
pub fn top_confusions(
    gold: &[usize],
    pred: &[Option<usize>],
    labels: &[String],
    k: usize,
) -> Vec<Confusion> {
    let mut counts: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (g, p) in gold.iter().zip(pred) {
        if *p != Some(*g) {
            let name = |i: usize| labels.get(i).cloned().unwrap_or_default();
            let pred = p.map_or_else(|| "invalid".to_string(), name);
            *counts.entry((name(*g), pred)).or_default() += 1;
        }
    }
    let mut v: Vec<Confusion> = counts
        .into_iter()
        .map(|((gold, predicted), count)| Confusion {
            gold,
            predicted,
            count,
        })
        .collect();
    v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.gold.cmp(&b.gold)));
    v.truncate(k);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macro_f1_matches_scikit_learn() {
        // sklearn.metrics.f1_score([0,0,1,1,2,2],[0,1,1,1,2,0], average="macro") = 0.6555555...
        let gold = [0, 0, 1, 1, 2, 2];
        let pred = [Some(0), Some(1), Some(1), Some(1), Some(2), Some(0)];
        let all: Vec<usize> = (0..6).collect();
        assert!((macro_f1(&gold, &pred, &all) - 0.655_555_555_555_555_6).abs() < 1e-12);
        // A predicted label outside the gold set counts with F1 0:
        // f1_score([0,0],[0,1], average="macro") = (2/3 + 0) / 2
        assert!((macro_f1(&[0, 0], &[Some(0), Some(1)], &[0, 1]) - 1.0 / 3.0).abs() < 1e-12);
        // Invalid answers are wrong but not a label: gold 0 recall 1/2, precision 1 -> 2/3.
        assert!((macro_f1(&[0, 0], &[Some(0), None], &[0, 1]) - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn classification_scores_have_cis_around_the_estimate() {
        let gold: Vec<usize> = (0..200).map(|i| i % 4).collect();
        let pred: Vec<Option<usize>> = gold
            .iter()
            .enumerate()
            .map(|(i, &g)| match i % 5 {
                0 => None,
                1 => Some((g + 1) % 4),
                _ => Some(g),
            })
            .collect();
        let s = classification(&gold, &pred, 42);
        let acc = &s["accuracy"];
        assert!((acc.value - 0.6).abs() < 1e-12);
        assert!(acc.ci_low.unwrap() < 0.6 && acc.ci_high.unwrap() > 0.6);
        assert!((s["invalid_rate"].value - 0.2).abs() < 1e-12);
        let f1 = &s["macro_f1"];
        assert!(f1.ci_low.unwrap() <= f1.value && f1.value <= f1.ci_high.unwrap());
        let c = top_confusions(
            &gold,
            &pred,
            &["a".into(), "b".into(), "c".into(), "d".into()],
            3,
        );
        assert_eq!(c.len(), 3);
        assert!(c[0].count >= c[1].count);
    }

    #[test]
    fn pass_at_k_is_the_unbiased_estimator() {
        // n = 10, c = 3: pass@1 = c/n; pass@10 = 1 (some sample of ten passes).
        assert!((pass_at_k(10, 3, 1).unwrap() - 0.3).abs() < 1e-12);
        assert_eq!(pass_at_k(10, 3, 10), Some(1.0));
        assert_eq!(pass_at_k(10, 0, 5), Some(0.0));
        // n = 5, c = 2, k = 2: 1 - C(3,2)/C(5,2) = 1 - 3/10.
        assert!((pass_at_k(5, 2, 2).unwrap() - 0.7).abs() < 1e-12);
        assert_eq!(pass_at_k(5, 2, 6), None);
    }
}
