//! Eval comparisons: the tasks both sides scored, compared item by item (paired where the
//! items match) on their item scores and invalid-answer rates.

use super::*;
use crate::results::ItemResult;

/// The eval tasks both sides scored on (same task name, models matched as for perf units),
/// baseline first.
pub(super) fn common_tasks<'a>(
    baseline: &'a ResultSet,
    candidate: &'a ResultSet,
    matching: &ModelMatch,
) -> Vec<(&'a EvalSide, &'a EvalSide)> {
    baseline
        .evals
        .iter()
        .filter_map(|b| {
            let key = (b.summary.model.name.clone(), b.summary.task.clone());
            let want = matching.partner(&key)?;
            candidate
                .evals
                .iter()
                .find(|c| c.summary.model.name == want.0 && c.summary.task == want.1)
                .map(|c| (b, c))
        })
        .collect()
}

/// One figure of an eval item.
pub(super) type ItemFigure = fn(&ItemResult) -> Option<f64>;

/// The item-level figures compared for evals: the item score (accuracy, exact match, pass@1 or
/// the realistic task's overall score) and whether the answer could be mapped at all (only for
/// the tasks of [`INVALID_RATE_TASKS`]).
pub(super) const EVAL_METRICS: &[(MetricDef, ItemFigure)] = &[
    (
        MetricDef {
            name: "accuracy",
            higher_is_better: true,
            proportion: true,
            extract: |_| None,
        },
        |i| Some(i.score),
    ),
    (
        MetricDef {
            name: "invalid_rate",
            higher_is_better: false,
            proportion: true,
            extract: |_| None,
        },
        |i| Some(if i.predicted.is_none() { 1.0 } else { 0.0 }),
    ),
];

/// The tasks whose items have an unmapped answer (`predicted: None`) exactly when the model's
/// answer could not be read as a label, a choice letter or a number: the classification tasks,
/// MMLU (a choice letter) and GSM8K. The realistic tasks leave `predicted` empty by design and
/// coding always sets an outcome, so an invalid rate would mean nothing there.
pub const INVALID_RATE_TASKS: &[&str] = &["banking77", "financial_phrasebank", "mmlu", "gsm8k"];

/// The test text of eval scores compared from the summaries only.
pub(super) const WHOLE_SET: &str = "none: a whole-set score";

/// The name of a task's per-item score, as its summary calls it.
pub(super) fn item_score_name(side: &EvalSide) -> &'static str {
    ITEM_SCORES
        .iter()
        .find(|n| side.summary.scores.contains_key(**n))
        .copied()
        .unwrap_or("item_score")
}

/// Per-item scores of the eval tasks, by the names their summaries use.
pub const ITEM_SCORES: &[&str] = &["accuracy", "exact_match", "pass_at_1", "overall"];

/// One eval task compared item by item (paired by item id when both sides scored the same items),
/// plus the whole-set scores of the summaries (macro-F1 ...) as values without a test.
pub(super) fn compare_eval(
    b: &EvalSide,
    c: &EvalSide,
    opts: &CompareOptions,
) -> ScenarioComparison {
    let b_ids: BTreeSet<&str> = b.items.iter().map(|i| i.id.as_str()).collect();
    let c_ids: BTreeSet<&str> = c.items.iter().map(|i| i.id.as_str()).collect();
    let paired = !b_ids.is_empty()
        && b_ids == c_ids
        && b_ids.len() == b.items.len()
        && c_ids.len() == c.items.len();
    let pairing = if b.items.is_empty() || c.items.is_empty() {
        "summary scores only: the items are not in a results database".to_string()
    } else if paired {
        format!(
            "paired by item: both sides scored the same {} items",
            b_ids.len()
        )
    } else {
        format!(
            "unpaired: the sides share {} of {} / {} items (different samples)",
            b_ids.intersection(&c_ids).count(),
            b_ids.len(),
            c_ids.len()
        )
    };
    let mut metrics = Vec::new();
    if !b.items.is_empty() && !c.items.is_empty() {
        let invalid_rate_means_something = INVALID_RATE_TASKS.contains(&b.summary.task.as_str());
        for (def, get) in EVAL_METRICS {
            if def.name == "invalid_rate" && !invalid_rate_means_something {
                continue;
            }
            let (xb, xc): (Vec<f64>, Vec<f64>) = if paired {
                let cmap: BTreeMap<&str, &ItemResult> =
                    c.items.iter().map(|i| (i.id.as_str(), i)).collect();
                b.items
                    .iter()
                    .filter_map(|i| Some((get(i)?, get(cmap.get(i.id.as_str())?)?)))
                    .unzip()
            } else {
                (
                    b.items.iter().filter_map(get).collect(),
                    c.items.iter().filter_map(get).collect(),
                )
            };
            let mut m = test_metric(def, &xb, &xc, paired, opts);
            if def.name == "accuracy" {
                m.metric = item_score_name(b).to_string();
            }
            metrics.push(m);
        }
    }
    // Whole-set scores (macro-F1 and the rest) as reported by each summary.
    for (name, sb) in &b.summary.scores {
        if metrics.iter().any(|m| &m.metric == name) {
            continue;
        }
        let Some(sc) = c.summary.scores.get(name) else {
            continue;
        };
        let higher = !name.contains("invalid");
        metrics.push(MetricComparison {
            metric: name.clone(),
            higher_is_better: higher,
            baseline: sb.value,
            candidate: sc.value,
            n_baseline: sb.n,
            n_candidate: sc.n,
            relative_change: (sb.value != 0.0).then(|| sc.value / sb.value - 1.0),
            change_ci: None,
            test: format!("{WHOLE_SET}; its 95% CIs are in the eval summaries"),
            p_value: None,
            p_holm: None,
            effect_kind: None,
            effect_size: None,
            effect_label: None,
            change_ci_90: None,
            margin: None,
            equivalent: None,
        });
    }
    let peak_rss_mb = [
        b.summary.monitor.as_ref().and_then(|m| m.peak_rss_mb),
        c.summary.monitor.as_ref().and_then(|m| m.peak_rss_mb),
    ];
    metrics.extend(peak_rss_row(peak_rss_mb[0], peak_rss_mb[1]));
    ScenarioComparison {
        scenario: format!("eval:{}", b.summary.task),
        baseline_model: b.summary.model.name.clone(),
        candidate_model: c.summary.model.name.clone(),
        paired,
        pairing,
        metrics,
        peak_rss_mb,
        log_pattern_counts: [BTreeMap::new(), BTreeMap::new()],
        log_pattern_counts_since_launch: [BTreeMap::new(), BTreeMap::new()],
        server_warnings: [Vec::new(), Vec::new()],
        machine_warnings: [
            crate::results::machine_warning(b.summary.settle.as_ref(), b.summary.monitor.as_ref()),
            crate::results::machine_warning(c.summary.settle.as_ref(), c.summary.monitor.as_ref()),
        ],
    }
}
