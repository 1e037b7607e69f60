//! Interpretation thresholds and the coloured verdicts they give: the one table every report
//! reads (speed, memory and capability bounds for a 16 GB laptop).

use serde::{Deserialize, Serialize};

/// A verdict on one figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Good,
    Fair,
    Poor,
}

impl Level {
    /// The word shown in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Good => "good",
            Self::Fair => "fair",
            Self::Poor => "poor",
        }
    }

    /// A coloured mark for Markdown.
    pub fn mark(self) -> &'static str {
        match self {
            Self::Good => "🟢",
            Self::Fair => "🟡",
            Self::Poor => "🔴",
        }
    }
}

/// What a threshold applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Applies {
    /// A performance figure of every model x scenario unit.
    Performance,
    /// A capability score of one eval task.
    Task(&'static str),
}

/// One interpretation threshold: `good` and `fair` bounds on a metric.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Threshold {
    pub metric: &'static str,
    pub applies: Applies,
    /// The unit of the bounds (same as the metric's).
    pub unit: &'static str,
    pub higher_is_better: bool,
    /// Good when better than this bound (strictly).
    pub good: f64,
    /// Fair when better than this bound (strictly) but not good; poor otherwise.
    pub fair: f64,
    /// Why these bounds.
    pub basis: &'static str,
}

/// The thresholds, in report order. `good` bounds are the targets for an interactive assistant
/// on a 16 GB laptop; `fair` bounds mark what is still usable with care.
pub const THRESHOLDS: &[Threshold] = &[
    Threshold {
        metric: "ttft_ms",
        applies: Applies::Performance,
        unit: "ms",
        higher_is_better: false,
        good: 300.0,
        fair: 600.0,
        basis: "the bank study's bands (000 §7.1): within 300 ms an answer feels immediate; past 600 ms users wait",
    },
    Threshold {
        metric: "output_tokens_per_s",
        applies: Applies::Performance,
        unit: "tokens/s",
        higher_is_better: true,
        good: 40.0,
        fair: 20.0,
        basis: "the bank study's bands (000 §7.1): above 40 tokens/s text streams faster than anyone reads; below 20 it lags",
    },
    Threshold {
        metric: "peak_rss_mb",
        applies: Applies::Performance,
        unit: "MB",
        higher_is_better: false,
        good: 8000.0,
        fair: 12000.0,
        basis: "on a 16 GB laptop, under 8 GB leaves room for the rest of the desk; over 12 GB swaps",
    },
    Threshold {
        metric: "accuracy",
        applies: Applies::Task("banking77"),
        unit: "fraction",
        higher_is_better: true,
        good: 0.70,
        fair: 0.50,
        basis: "Banking77 intent routing: above 70% saves agents work; below 50% misroutes most calls",
    },
    Threshold {
        metric: "macro_f1",
        applies: Applies::Task("banking77"),
        unit: "fraction",
        higher_is_better: true,
        good: 0.60,
        fair: 0.40,
        basis: "Banking77 macro-F1 above 60% means rare intents are served too, not only frequent ones",
    },
    Threshold {
        metric: "accuracy",
        applies: Applies::Task("financial_phrasebank"),
        unit: "fraction",
        higher_is_better: true,
        good: 0.75,
        fair: 0.60,
        basis: "three-way sentiment: above 75% is usable for triage; 60% is little better than the majority class",
    },
    Threshold {
        metric: "macro_f1",
        applies: Applies::Task("financial_phrasebank"),
        unit: "fraction",
        higher_is_better: true,
        good: 0.60,
        fair: 0.40,
        basis: "the bank study's macro-F1 bands (000 §7.2), for every classification task: above 60% every sentiment is served, not only the majority one",
    },
    Threshold {
        metric: "sentiment_accuracy",
        applies: Applies::Task("realistic"),
        unit: "fraction",
        higher_is_better: true,
        good: 0.75,
        fair: 0.60,
        basis: "the realistic task's sentiment cases, judged like financial_phrasebank: above 75% is usable for triage",
    },
];

impl Threshold {
    /// The verdict on `value`; `None` when it is not a finite number.
    pub fn judge(&self, value: f64) -> Option<Level> {
        if !value.is_finite() {
            return None;
        }
        let better = |bound: f64| {
            if self.higher_is_better {
                value > bound
            } else {
                value < bound
            }
        };
        Some(if better(self.good) {
            Level::Good
        } else if better(self.fair) {
            Level::Fair
        } else {
            Level::Poor
        })
    }

    /// The rule as text, e.g. "good < 300 ms, fair < 600 ms".
    pub fn rule(&self) -> String {
        let op = if self.higher_is_better { ">" } else { "<" };
        let show = |v: f64| {
            if self.unit == "fraction" {
                format!("{:.0}%", v * 100.0)
            } else {
                format!("{v} {}", self.unit)
            }
        };
        format!(
            "good {op} {}, fair {op} {}",
            show(self.good),
            show(self.fair)
        )
    }
}

/// The performance thresholds.
pub fn performance() -> impl Iterator<Item = &'static Threshold> {
    THRESHOLDS
        .iter()
        .filter(|t| t.applies == Applies::Performance)
}

/// The thresholds of an eval task.
pub fn for_task(task: &str) -> impl Iterator<Item = &'static Threshold> + '_ {
    let key = task_key(task);
    THRESHOLDS
        .iter()
        .filter(move |t| matches!(t.applies, Applies::Task(x) if x == key))
}

/// Tasks that share thresholds: `banking_all` runs contain Banking77 scores.
fn task_key(task: &str) -> &str {
    match task {
        "banking_all" => "banking77",
        t => t,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(metric: &str, applies: Applies) -> &'static Threshold {
        THRESHOLDS
            .iter()
            .find(|t| t.metric == metric && t.applies == applies)
            .unwrap()
    }

    #[test]
    fn ttft_bounds_are_strict() {
        let t = find("ttft_ms", Applies::Performance);
        assert_eq!(t.judge(120.0), Some(Level::Good));
        assert_eq!(t.judge(299.9), Some(Level::Good));
        assert_eq!(t.judge(300.0), Some(Level::Fair));
        assert_eq!(t.judge(599.0), Some(Level::Fair));
        assert_eq!(t.judge(600.0), Some(Level::Poor));
        assert_eq!(t.judge(f64::NAN), None);
        assert_eq!(t.rule(), "good < 300 ms, fair < 600 ms");
    }

    #[test]
    fn higher_is_better_metrics() {
        let t = find("output_tokens_per_s", Applies::Performance);
        assert_eq!(t.judge(40.0), Some(Level::Fair));
        assert_eq!(t.judge(40.1), Some(Level::Good));
        assert_eq!(t.judge(20.1), Some(Level::Fair));
        assert_eq!(t.judge(20.0), Some(Level::Poor));
        let acc = find("accuracy", Applies::Task("banking77"));
        assert_eq!(acc.judge(0.71), Some(Level::Good));
        assert_eq!(acc.judge(0.70), Some(Level::Fair));
        assert_eq!(acc.judge(0.2), Some(Level::Poor));
        assert_eq!(acc.rule(), "good > 70%, fair > 50%");
        let f1 = find("macro_f1", Applies::Task("banking77"));
        assert_eq!(f1.judge(0.61), Some(Level::Good));
        let f1 = find("macro_f1", Applies::Task("financial_phrasebank"));
        assert_eq!((f1.good, f1.fair), (0.60, 0.40));
        let senti = find("accuracy", Applies::Task("financial_phrasebank"));
        assert_eq!(senti.judge(0.75), Some(Level::Fair));
        assert_eq!(senti.judge(0.76), Some(Level::Good));
        let realistic = find("sentiment_accuracy", Applies::Task("realistic"));
        assert_eq!(
            (realistic.good, realistic.fair, realistic.unit),
            (senti.good, senti.fair, senti.unit)
        );
        assert_eq!(realistic.judge(0.8), Some(Level::Good));
        assert_eq!(realistic.judge(0.75), Some(Level::Fair));
        assert_eq!(realistic.judge(0.5), Some(Level::Poor));
    }

    #[test]
    fn ram_is_judged_against_a_16_gb_laptop() {
        let t = find("peak_rss_mb", Applies::Performance);
        assert_eq!(t.judge(331.0), Some(Level::Good));
        assert_eq!(t.judge(9000.0), Some(Level::Fair));
        assert_eq!(t.judge(14000.0), Some(Level::Poor));
    }

    #[test]
    fn tasks_select_their_thresholds() {
        assert_eq!(for_task("banking77").count(), 2);
        assert_eq!(for_task("banking_all").count(), 2);
        assert_eq!(for_task("financial_phrasebank").count(), 2);
        assert_eq!(for_task("gsm8k").count(), 0);
        let realistic: Vec<&str> = for_task("realistic").map(|t| t.metric).collect();
        assert_eq!(realistic, ["sentiment_accuracy"]);
        assert_eq!(performance().count(), 3);
    }
}
