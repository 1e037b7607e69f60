//! What `edgebench eval` takes, as one typed request that every front end fills (the CLI from
//! its flags, the web UI from a JSON body), checked and turned into an [`EvalPlan`].

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

use super::eval::{EvalModels, EvalPlan};
use super::field_error as bad;
use super::{EngineSpec, ExperimentError, Resume};
use crate::backend::openai::{self, HttpConfig};
use crate::catalog;
use crate::eval::method::AnswerMode;
use crate::eval::{tasks, TaskOptions};
use crate::hw::settle::SettlePolicy;
use crate::repro::{self, Environment};

/// An evaluation as a user asks for it; every field has the CLI's default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalRequest {
    /// banking77, financial_phrasebank, banking_all, realistic, coding, mmlu, gsm8k, harness
    /// (mmlu and gsm8k) or all.
    pub task: String,
    /// A catalog key or GGUF path (embedded), or the server's model id; none: the default.
    pub model: Option<String>,
    /// Every catalog model (embedded engine).
    pub all_models: bool,
    /// Items per task; none: the documented subsets (HumanEval 30, MMLU 200, GSM8K 100) or,
    /// with `full`, every item.
    pub sample_size: Option<usize>,
    pub full: bool,
    pub per_subject: Option<usize>,
    pub shots: u32,
    /// Financial PhraseBank agreement: all, 75, 66 or 50.
    pub agreement: String,
    /// Classification tasks: free, constrained or loglik.
    pub answer: AnswerMode,
    /// MMLU: letter (the letter after the lettered choices) or cloze (each answer's text).
    pub format: String,
    /// Coding: answers sampled per problem for pass@k (1: one greedy answer).
    pub samples: u32,
    /// Coding: sampling temperature (0: greedy; above 0 needs no --samples 1).
    pub temperature: f64,
    pub data_dir: Option<PathBuf>,
    pub realistic_file: Option<PathBuf>,
    pub endpoint: Option<String>,
    pub api_key: Option<String>,
    pub concurrency: u32,
    pub connect_timeout_s: f64,
    pub timeout_s: f64,
    pub max_response_bytes: usize,
    pub parallel: u32,
    pub threads: Option<u32>,
    pub unsafe_exec: bool,
    pub seed: u64,
    pub monitor_interval_ms: u64,
    /// 0 disables settling.
    pub settle_timeout_s: f64,
    pub settle_threshold_percent: f64,
    pub results: PathBuf,
    pub resume: Option<String>,
}

impl Default for EvalRequest {
    fn default() -> Self {
        Self {
            task: String::new(),
            model: None,
            all_models: false,
            sample_size: None,
            full: false,
            per_subject: None,
            shots: 0,
            agreement: tasks::DEFAULT_AGREEMENT.into(),
            answer: AnswerMode::Free,
            format: "letter".into(),
            samples: 1,
            temperature: 0.0,
            data_dir: None,
            realistic_file: None,
            endpoint: None,
            api_key: None,
            concurrency: 4,
            connect_timeout_s: 10.0,
            timeout_s: 600.0,
            max_response_bytes: openai::DEFAULT_MAX_RESPONSE_BYTES,
            parallel: 64,
            threads: None,
            unsafe_exec: false,
            seed: 42,
            monitor_interval_ms: 500,
            settle_timeout_s: 10.0,
            settle_threshold_percent: 15.0,
            results: PathBuf::from("results"),
            resume: None,
        }
    }
}

impl EvalRequest {
    /// Checks what serde cannot: ranges, files and folders, the task name.
    pub fn check(&self) -> Result<Vec<&'static str>, ExperimentError> {
        let tasks = tasks::expand(&self.task).map_err(|e| bad("task", &e.to_string()))?;
        if self.shots > 5 {
            return Err(bad("shots", "must be 0 to 5"));
        }
        if !matches!(self.agreement.as_str(), "all" | "75" | "66" | "50") {
            return Err(bad("agreement", "must be all, 75, 66 or 50"));
        }
        if !matches!(self.format.as_str(), "letter" | "cloze") {
            return Err(bad("format", "must be letter or cloze"));
        }
        if !(1..=200).contains(&self.samples) {
            return Err(bad("samples", "must be 1 to 200"));
        }
        if !(self.temperature.is_finite() && (0.0..=2.0).contains(&self.temperature)) {
            return Err(bad("temperature", "must be 0 to 2"));
        }
        if self.samples > 1 && self.temperature == 0.0 {
            return Err(bad(
                "samples",
                "more than one sample needs a temperature above 0 (greedy answers are all the same); pass@k is usually measured at 0.8",
            ));
        }
        if !(1..=512).contains(&self.concurrency) {
            return Err(bad("concurrency", "must be 1 to 512"));
        }
        if !(1..=64).contains(&self.parallel) {
            return Err(bad("parallel", "must be 1 to 64"));
        }
        if !(self.connect_timeout_s.is_finite() && self.connect_timeout_s > 0.0) {
            return Err(bad(
                "connect_timeout_s",
                "must be a positive number of seconds",
            ));
        }
        for (f, v) in [
            ("timeout_s", self.timeout_s),
            ("settle_timeout_s", self.settle_timeout_s),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(bad(f, "must be a number of seconds, 0 or more"));
            }
        }
        if self.max_response_bytes == 0 {
            return Err(bad("max_response_bytes", "must be at least 1"));
        }
        if self.monitor_interval_ms < 10 {
            return Err(bad("monitor_interval_ms", "must be at least 10"));
        }
        if self.sample_size == Some(0) || self.per_subject == Some(0) {
            return Err(bad("sample_size", "must be at least 1"));
        }
        if let Some(d) = &self.data_dir {
            if !d.is_dir() {
                return Err(bad("data_dir", &format!("{}: no such folder", d.display())));
            }
        }
        if let Some(p) = &self.realistic_file {
            let text = std::fs::read_to_string(p)
                .map_err(|e| bad("realistic_file", &format!("{}: {e}", p.display())))?;
            tasks::load_cases(&text, &p.display().to_string())
                .map_err(|e| bad("realistic_file", &e.to_string()))?;
        }
        if self.all_models && self.endpoint.is_some() {
            return Err(bad(
                "all_models",
                "is for the embedded engine, not an endpoint",
            ));
        }
        Ok(tasks)
    }

    /// The plan: tasks, models resolved (catalog models fetched, with `log` told), the target,
    /// the options and where results go.
    pub fn into_plan(
        self,
        environment: Environment,
        command: String,
        log: &dyn Fn(&str),
    ) -> Result<EvalPlan, ExperimentError> {
        let tasks = self.check()?;
        let base = self
            .endpoint
            .as_deref()
            .map(openai::resolve_endpoint)
            .transpose()?;
        let models = match &base {
            None => {
                let specs: Vec<String> = if self.all_models {
                    vec!["all".into()]
                } else {
                    self.model.iter().cloned().collect()
                };
                let spec = EngineSpec {
                    threads: self.threads.unwrap_or_else(repro::default_threads),
                    ctx_size: None,
                    verbose: false,
                    parallel: self.parallel as usize,
                };
                let models = catalog::resolve_models(&specs, log)
                    .map_err(|e| ExperimentError::Plan(e.to_string()))?;
                EvalModels::Embedded(models, spec)
            }
            Some(base) => {
                let mut template = HttpConfig::new(base.clone(), "");
                template.api_key = self.api_key.clone();
                template.connect_timeout = Duration::from_secs_f64(self.connect_timeout_s);
                template.total_timeout = Duration::from_secs_f64(self.timeout_s);
                template.max_response_bytes = self.max_response_bytes;
                EvalModels::Endpoint {
                    template: Box::new(template),
                    id: self.model.clone(),
                    concurrency: self.concurrency as usize,
                }
            }
        };
        let options = TaskOptions {
            sample_size: self.sample_size,
            full: self.full,
            per_subject: self.per_subject,
            seed: self.seed,
            data_dir: self.data_dir.clone(),
            agreement: self.agreement.clone(),
            shots: self.shots,
            batch: match &base {
                None => 32 * self.parallel as usize,
                Some(_) => 4 * self.concurrency as usize,
            },
            unsafe_exec: self.unsafe_exec,
            realistic_file: self.realistic_file.clone(),
            answer: self.answer,
            format: self.format.clone(),
            samples: self.samples,
            temperature: self.temperature,
        };
        Ok(EvalPlan {
            tasks,
            models,
            options,
            results_dir: self.results.clone(),
            store: None,
            resume: Resume::from_flag(self.resume.as_deref()),
            command,
            environment,
            settle: SettlePolicy::from_flags(self.settle_timeout_s, self.settle_threshold_percent),
            monitor_interval: Duration::from_millis(self.monitor_interval_ms),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_fields_are_named() {
        let bad = |r: EvalRequest, field: &str| {
            let e = r.check().expect_err("refused").to_string();
            assert!(e.starts_with(&format!("{field}: ")), "{e}");
        };
        let ok = EvalRequest {
            task: "banking77".into(),
            ..EvalRequest::default()
        };
        assert_eq!(ok.check().unwrap(), ["banking77"]);
        bad(EvalRequest::default(), "task");
        bad(
            EvalRequest {
                shots: 9,
                ..ok.clone()
            },
            "shots",
        );
        bad(
            EvalRequest {
                data_dir: Some("/nonexistent-edgebench".into()),
                ..ok.clone()
            },
            "data_dir",
        );
        bad(
            EvalRequest {
                concurrency: 0,
                ..ok.clone()
            },
            "concurrency",
        );
        let e = serde_json::from_str::<EvalRequest>(r#"{"task": "mmlu", "shotz": 5}"#)
            .expect_err("unknown field");
        assert!(e.to_string().contains("shotz"), "{e}");
    }
}
