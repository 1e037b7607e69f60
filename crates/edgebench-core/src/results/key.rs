//! Typed unit keys: which model (name, format, quantization) ran which scenario (or eval task)
//! under which setting. Results are matched by these fields, never by a formatted label.

use serde::{Deserialize, Serialize};

use crate::catalog::ModelInfo;
use crate::results::PerfLine;

/// One unit of an experiment: a model build times a scenario (perf) or a task (eval), and a
/// setting (a study step; empty when there is none).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct UnitKey {
    /// The model's name, as in [`ModelInfo::name`].
    pub model: String,
    /// "gguf", "mlx", "unknown" ...
    #[serde(default)]
    pub format: String,
    /// "Q4_1", "4bit", "unknown" ...
    #[serde(default)]
    pub quantization: String,
    /// The scenario or eval task.
    pub scenario: String,
    /// The study setting, or empty.
    #[serde(default)]
    pub setting: String,
}

impl UnitKey {
    /// The unit of `model` on `scenario`, with no setting.
    pub fn new(model: &ModelInfo, scenario: &str) -> Self {
        Self {
            model: model.name.clone(),
            format: model.format.clone(),
            quantization: model.quantization.clone(),
            scenario: scenario.to_string(),
            setting: String::new(),
        }
    }

    /// The unit a request line belongs to (lines carry no setting).
    pub fn of_line(l: &PerfLine) -> Self {
        Self {
            model: l.model.clone(),
            format: l.format.clone(),
            quantization: l.quantization.clone(),
            scenario: l.scenario.clone(),
            setting: String::new(),
        }
    }

    /// Whether this unit belongs to `model` (name, format and quantization).
    pub fn is_model(&self, model: &ModelInfo) -> bool {
        self.model == model.name
            && self.format == model.format
            && self.quantization == model.quantization
    }

    /// The model as people read it: `name (format quantization)`; for display only.
    pub fn model_label(&self) -> String {
        if self.format.is_empty() && self.quantization.is_empty() {
            self.model.clone()
        } else {
            format!("{} ({} {})", self.model, self.format, self.quantization)
        }
    }

    /// Reads a label written by [`UnitKey::model_label`] back into name, format and
    /// quantization (stores written before the key was typed hold only the label).
    pub fn parse_model_label(label: &str) -> (String, String, String) {
        if let Some((name, rest)) = label.rsplit_once(" (") {
            if let Some((format, quant)) = rest.strip_suffix(')').and_then(|r| r.split_once(' ')) {
                return (name.to_string(), format.to_string(), quant.to_string());
            }
        }
        (label.to_string(), String::new(), String::new())
    }
}

impl std::fmt::Display for UnitKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} · {}", self.model_label(), self.scenario)?;
        if !self.setting.is_empty() {
            write!(f, " · {}", self.setting)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip_and_bare_names_stay_whole() {
        let k = UnitKey {
            model: "Qwen (2.5) 0.5B".into(),
            format: "gguf".into(),
            quantization: "Q4_K_M".into(),
            scenario: "s".into(),
            setting: String::new(),
        };
        assert_eq!(k.model_label(), "Qwen (2.5) 0.5B (gguf Q4_K_M)");
        assert_eq!(
            UnitKey::parse_model_label(&k.model_label()),
            ("Qwen (2.5) 0.5B".into(), "gguf".into(), "Q4_K_M".into())
        );
        assert_eq!(
            UnitKey::parse_model_label("m"),
            ("m".into(), String::new(), String::new())
        );
        assert_eq!(k.to_string(), "Qwen (2.5) 0.5B (gguf Q4_K_M) · s");
    }
}
