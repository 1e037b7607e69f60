//! The scenarios file: scenario definitions and the real-text passages prompts are built from.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// The scenarios shipped with edgebench (users can edit a copy and pass `--scenarios-file`).
pub const DEFAULT_SCENARIOS_TOML: &str = include_str!("../../scenarios/default.toml");

/// Why a scenarios file or selection is unusable.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("scenarios file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("unknown scenario {name:?} (known: {known})")]
    UnknownScenario { name: String, known: String },
    #[error("{0}")]
    Invalid(String),
    #[error("counting prompt tokens: {0}")]
    Tokenize(String),
}

/// One benchmark scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub system: String,
    /// Target prompt length range, tokens (inclusive).
    pub prompt_tokens: [u32; 2],
    /// Output length range, tokens (inclusive), sampled per request.
    pub output_tokens: [u32; 2],
    /// Generate exactly the sampled output length, past end-of-generation tokens.
    #[serde(default)]
    pub ignore_eos: bool,
    /// Answers are JSON objects: the summary reports the JSON validity rate.
    #[serde(default)]
    pub json: bool,
    pub instructions: Vec<String>,
    /// Measured requests in flight for this scenario (overrides `--concurrency`; set by sweeps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// The scenario this one is a sweep step of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep_of: Option<String>,
    /// The sampling temperature of this scenario's requests (overrides `--temperature`; set by
    /// the temperature study).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Request k asks instruction k mod n (instead of one drawn at random), so steps that share
    /// an instruction list ask the same things in the same order (the language study).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cycle_instructions: bool,
}

/// A real-text passage prompts are assembled from (paragraphs separated by blank lines).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Passage {
    pub id: String,
    pub kind: String,
    pub text: String,
}

/// A parsed and validated scenarios file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    pub version: u32,
    pub scenarios: Vec<Scenario>,
    pub passages: Vec<Passage>,
}

impl ScenarioFile {
    /// The built-in scenarios.
    pub fn default_file() -> Result<Self, WorkloadError> {
        Self::parse(DEFAULT_SCENARIOS_TOML, "<built-in scenarios>")
    }

    /// Reads and validates a scenarios file.
    pub fn load(path: &Path) -> Result<Self, WorkloadError> {
        let text = std::fs::read_to_string(path).map_err(|e| WorkloadError::File {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and validates scenarios TOML; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, WorkloadError> {
        let err = |reason: String| WorkloadError::File {
            path: origin.to_string(),
            reason,
        };
        let f: ScenarioFile = toml::from_str(text).map_err(|e| err(e.message().to_string()))?;
        if f.version != 1 {
            return Err(err(format!("unsupported version {}", f.version)));
        }
        if f.scenarios.is_empty() {
            return Err(err("no [[scenarios]]".into()));
        }
        if f.passages.is_empty() {
            return Err(err("no [[passages]]".into()));
        }
        let mut names = std::collections::HashSet::new();
        for s in &f.scenarios {
            if !names.insert(s.name.as_str()) {
                return Err(err(format!("scenario {} is defined twice", s.name)));
            }
            let bad_range = |[lo, hi]: [u32; 2]| lo == 0 || lo > hi;
            if bad_range(s.prompt_tokens) {
                return Err(err(format!(
                    "scenario {}: prompt_tokens must be [min, max] with 0 < min <= max",
                    s.name
                )));
            }
            if bad_range(s.output_tokens) {
                return Err(err(format!(
                    "scenario {}: output_tokens must be [min, max] with 0 < min <= max",
                    s.name
                )));
            }
            if s.instructions.is_empty() {
                return Err(err(format!("scenario {}: no instructions", s.name)));
            }
        }
        if f.passages.iter().any(|p| p.text.trim().is_empty()) {
            return Err(err("a passage has no text".into()));
        }
        Ok(f)
    }

    /// SHA-256 (hex) of the passages' ids and texts, in file order.
    pub fn passages_sha256(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for p in &self.passages {
            h.update(p.id.as_bytes());
            h.update([0]);
            h.update(p.text.as_bytes());
            h.update([0]);
        }
        hex::encode(h.finalize())
    }

    /// The scenarios named by a selection: "all", or names separated by commas.
    pub fn select(&self, selection: &[String]) -> Result<Vec<&Scenario>, WorkloadError> {
        let names: Vec<&str> = selection
            .iter()
            .flat_map(|s| s.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if names.is_empty() || names.contains(&"all") {
            return Ok(self.scenarios.iter().collect());
        }
        names
            .iter()
            .map(|n| {
                self.scenarios.iter().find(|s| s.name == *n).ok_or_else(|| {
                    WorkloadError::UnknownScenario {
                        name: n.to_string(),
                        known: self
                            .scenarios
                            .iter()
                            .map(|s| s.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    }
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_file_has_the_three_scenarios() {
        let f = ScenarioFile::default_file().unwrap();
        let names: Vec<_> = f.scenarios.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "interactive_assistant",
                "long_form_summarization",
                "structured_json_output"
            ]
        );
        let ia = &f.scenarios[0];
        assert_eq!(ia.prompt_tokens, [200, 400]);
        assert_eq!(ia.output_tokens, [128, 128]);
        assert_eq!(f.scenarios[1].prompt_tokens, [2000, 4000]);
        assert_eq!(f.scenarios[1].output_tokens, [256, 512]);
        assert_eq!(f.scenarios[2].prompt_tokens, [500, 1000]);
        assert!(f.scenarios[2].json);
        assert!(f.passages.len() >= 12);
    }

    #[test]
    fn selection_accepts_all_lists_and_rejects_unknown() {
        let f = ScenarioFile::default_file().unwrap();
        assert_eq!(f.select(&["all".into()]).unwrap().len(), 3);
        assert_eq!(f.select(&[]).unwrap().len(), 3);
        let two = f
            .select(&["interactive_assistant,structured_json_output".into()])
            .unwrap();
        assert_eq!(two.len(), 2);
        let e = f.select(&["nope".into()]).unwrap_err();
        assert!(e.to_string().contains("\"nope\""), "{e}");
        assert!(e.to_string().contains("interactive_assistant"));
    }

    #[test]
    fn bad_files_name_the_problem() {
        let e = ScenarioFile::parse("version = 1\nscenarios = []\npassages = []", "x.toml")
            .unwrap_err();
        assert!(e.to_string().starts_with("scenarios file x.toml:"), "{e}");
        let bad_range = r#"
version = 1
[[scenarios]]
name = "a"
system = "s"
prompt_tokens = [10, 5]
output_tokens = [1, 1]
instructions = ["q"]
[[passages]]
id = "p"
kind = "k"
text = "t"
"#;
        let e = ScenarioFile::parse(bad_range, "x.toml").unwrap_err();
        assert!(e.to_string().contains("prompt_tokens"), "{e}");
        let e = ScenarioFile::parse("version = 1\nbogus = 3", "x.toml").unwrap_err();
        assert!(e.to_string().contains("x.toml"), "{e}");
        let e = ScenarioFile::load(Path::new("/no/such/scenarios.toml")).unwrap_err();
        assert!(e.to_string().contains("/no/such/scenarios.toml"), "{e}");
    }
}
