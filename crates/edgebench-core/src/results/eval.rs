//! Eval results: the summary file (`results/eval_{task}_{model}_{timestamp}.json`: scores with CIs, speed, the setup) and the scored items the store keeps.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::backend::TargetInfo;
use crate::catalog::ModelInfo;
use crate::repro::Environment;

/// One score with its bootstrap 95% CI over items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Score {
    pub value: f64,
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
    /// Items the score is computed over.
    pub n: usize,
}

/// A frequent confusion: `gold` answered as `predicted`, `count` times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Confusion {
    pub gold: String,
    pub predicted: String,
    pub count: usize,
}

/// What the code sandbox saw (coding task): evidence for the compliance analysis.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SandboxReport {
    /// "netns" (a private network namespace) or "unsafe-exec" (no isolation, user's choice).
    pub isolation: String,
    /// How memory and processes were capped for each program as a whole (a control group, or
    /// per-process limits sharing a total).
    #[serde(default)]
    pub memory_cap: String,
    pub programs_run: usize,
    pub timeouts: usize,
    /// Programs stopped by a resource limit (memory, file size, CPU, processes) or a signal.
    pub limit_kills: usize,
    /// Completions matching a static list of network, process, exit, signal and file-system
    /// calls (suspicious code, not proven escape attempts; the sandbox contains them either way).
    #[serde(alias = "escape_attempts")]
    pub suspicious_code: usize,
}

/// The summary of one task on one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalSummary {
    pub experiment_id: String,
    pub created: String,
    pub config_hash: String,
    /// banking77, financial_phrasebank, realistic, coding, mmlu, gsm8k.
    pub task: String,
    /// How answers were obtained: "generate", "loglikelihood", "generate-letter".
    pub method: String,
    pub model: ModelInfo,
    pub target: TargetInfo,
    pub environment: Environment,
    pub seed: u64,
    /// Items scored (after `--sample-size`).
    pub items: usize,
    /// Items in the full split.
    pub items_total: usize,
    /// Scores by name: accuracy, macro_f1, invalid_rate, pass_at_1, exact_match, field_accuracy...
    pub scores: BTreeMap<String, Score>,
    /// Up to 10 most frequent confusions (classification tasks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub confusions: Vec<Confusion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<SandboxReport>,
    /// Items per second over the whole task.
    pub items_per_s: f64,
    pub duration_s: f64,
    /// Task options that change the score (agreement level, shots...).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// What the resource monitor saw while the task ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor: Option<crate::monitor::MonitorSummary>,
    /// How the machine settled before the task (flags a busy machine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settle: Option<crate::hw::settle::SettleReport>,
}

/// The setting scores were measured in, from the options that change a score: the prompt
/// format, shots, the constraint, samples and temperature, the agreement level (e.g. "cloze,
/// 5-shot"); empty when there are none.
pub fn setting(o: &BTreeMap<String, String>) -> String {
    let mut parts = Vec::new();
    if let Some(f) = o.get("format") {
        parts.push(f.clone());
    }
    if let Some(n) = o.get("shots") {
        parts.push(format!("{n}-shot"));
    }
    if let Some(c) = o.get("constraint") {
        parts.push(format!("via {c}"));
    }
    if let Some(n) = o.get("samples").filter(|n| *n != "1") {
        let t = o.get("temperature").map_or("?", String::as_str);
        parts.push(format!("{n} samples at temperature {t}"));
    }
    if let Some(a) = o.get("agreement") {
        parts.push(format!("agreement {a}"));
    }
    parts.join(", ")
}

impl EvalSummary {
    /// The method with its setting, as tables and lines show it: "loglikelihood (cloze, 5-shot)".
    pub fn method_in_setting(&self) -> String {
        let setting = setting(&self.options);
        if setting.is_empty() {
            self.method.clone()
        } else {
            format!("{} ({setting})", self.method)
        }
    }
}

/// One scored item, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemResult {
    pub id: String,
    /// A stratum or kind (label, subject, case kind) for breakdowns.
    #[serde(default)]
    pub group: String,
    pub gold: String,
    /// The mapped answer (label, number, letter), `None` when invalid.
    pub predicted: Option<String>,
    /// 1 right, 0 wrong, or a fraction (fact coverage, fields matched).
    pub score: f64,
    /// The raw answer (capped at 2,000 characters).
    pub answer: String,
    /// Extra per-item figures (json_valid, length_ok, escape_attempt...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_name_what_changes_a_score() {
        let o = |kv: &[(&str, &str)]| -> BTreeMap<String, String> {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(setting(&o(&[])), "");
        assert_eq!(
            setting(&o(&[
                ("format", "cloze"),
                ("shots", "5"),
                ("isolation", "namespaces")
            ])),
            "cloze, 5-shot"
        );
        assert_eq!(
            setting(&o(&[("samples", "10"), ("temperature", "0.8")])),
            "10 samples at temperature 0.8"
        );
        assert_eq!(setting(&o(&[("samples", "1"), ("temperature", "0")])), "");
        assert_eq!(
            setting(&o(&[
                ("answer", "constrained"),
                ("constraint", "llama.cpp grammar sampler"),
                ("agreement", "all")
            ])),
            "via llama.cpp grammar sampler, agreement all"
        );
    }
}
