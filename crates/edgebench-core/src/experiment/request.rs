//! What `edgebench run` takes, as one typed request that every front end fills (the CLI from its
//! flags, the web UI from a JSON body), checked and turned into a [`PerfPlan`].

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::field_error as bad;
use super::perf::{FullProtocol, Models, PerfPlan, ServeSpec};
use super::profile::Profile;
use super::{targets, BackendSpec, EngineSpec, ExperimentError, Resume};
use crate::backend::openai::{self, Api, HttpConfig};
use crate::backend::{Sampling, TokenCounter};
use crate::catalog;
use crate::hw::settle::SettlePolicy;
use crate::repro::{self, Environment};
use crate::runner::RunPlan;
use crate::workload::{self, ScenarioFile};

/// A run as a user asks for it; every field has the CLI's default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunRequest {
    /// An OpenAI-compatible server (URL or alias: lmstudio, llama-server, ollama, vllm, tgi),
    /// `mock` for the in-process mock; none: the embedded engine.
    pub endpoint: Option<String>,
    /// Catalog keys or GGUF paths (embedded), or the server's model ids; none: the default.
    pub models: Vec<String>,
    /// A server command to start and stop around the run.
    pub serve: Option<String>,
    pub serve_timeout_s: f64,
    pub log_patterns: Vec<String>,
    pub api_key: Option<String>,
    /// "chat" or "completions".
    pub api: String,
    pub server_pid: Option<u32>,
    pub no_ignore_eos: bool,
    pub connect_timeout_s: f64,
    pub first_token_timeout_s: f64,
    pub timeout_s: f64,
    /// The most bytes one stream event, and one response, may hold.
    pub max_event_bytes: usize,
    pub max_response_bytes: usize,
    pub concurrency: u32,
    /// `concurrency=1,2,4`.
    pub sweep: Option<String>,
    pub rate: Option<f64>,
    pub scenarios: Vec<String>,
    pub scenarios_file: Option<PathBuf>,
    /// `quick` for a first look in minutes; none or `full`: the documented protocol (`runs`,
    /// `warmup`, `cooldown_s` as given).
    pub profile: Option<Profile>,
    pub runs: u32,
    pub duration_s: Option<f64>,
    pub warmup: u32,
    pub cooldown_s: f64,
    pub seed: u64,
    pub max_tokens: Option<u32>,
    pub threads: Option<u32>,
    pub ctx_size: Option<u32>,
    pub temperature: f32,
    pub top_p: f32,
    pub top_k: i32,
    pub repeat_penalty: f32,
    pub allow_prefix_cache: bool,
    pub verbose: bool,
    pub monitor_interval_ms: u64,
    /// 0 disables settling.
    pub settle_timeout_s: f64,
    pub settle_threshold_percent: f64,
    pub results: PathBuf,
    pub no_checkpoint: bool,
    pub resume: Option<String>,
    /// A tokenizer file named in the results (the tokenizer itself is opened by the caller).
    pub tokenizer: Option<PathBuf>,
    /// Run embedded models that will not fit in memory anyway.
    pub force: bool,
    /// The memory models must fit in, MB (default: what is available when the run starts).
    pub memory_budget_mb: Option<u64>,
}

impl Default for RunRequest {
    fn default() -> Self {
        Self {
            endpoint: None,
            models: Vec::new(),
            serve: None,
            serve_timeout_s: 300.0,
            log_patterns: Vec::new(),
            api_key: None,
            api: "chat".into(),
            server_pid: None,
            no_ignore_eos: false,
            connect_timeout_s: 10.0,
            first_token_timeout_s: 120.0,
            timeout_s: 600.0,
            max_event_bytes: openai::DEFAULT_MAX_EVENT_BYTES,
            max_response_bytes: openai::DEFAULT_MAX_RESPONSE_BYTES,
            concurrency: 1,
            sweep: None,
            rate: None,
            scenarios: vec!["all".into()],
            scenarios_file: None,
            profile: None,
            runs: 20,
            duration_s: None,
            warmup: 3,
            cooldown_s: 2.0,
            seed: 42,
            max_tokens: None,
            threads: None,
            ctx_size: None,
            temperature: 0.0,
            top_p: 1.0,
            top_k: 0,
            repeat_penalty: 1.0,
            allow_prefix_cache: false,
            verbose: false,
            monitor_interval_ms: 500,
            settle_timeout_s: 10.0,
            settle_threshold_percent: 15.0,
            results: PathBuf::from("results"),
            no_checkpoint: false,
            resume: None,
            tokenizer: None,
            force: false,
            memory_budget_mb: None,
        }
    }
}

impl RunRequest {
    /// Checks the ranges clap checks for the CLI (a JSON body has no parser in front of it).
    pub fn check(&self) -> Result<(), ExperimentError> {
        let secs = |v: f64| v.is_finite() && v >= 0.0;
        if self.runs == 0 {
            return Err(bad("runs", "must be at least 1"));
        }
        if self.concurrency == 0 {
            return Err(bad("concurrency", "must be at least 1"));
        }
        if self.max_tokens == Some(0) {
            return Err(bad("max_tokens", "must be at least 1"));
        }
        if self.threads == Some(0) {
            return Err(bad("threads", "must be at least 1"));
        }
        if self.ctx_size.is_some_and(|c| c < 64) {
            return Err(bad("ctx_size", "must be at least 64"));
        }
        if self.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
            return Err(bad(
                "rate",
                "must be a positive number of requests per second",
            ));
        }
        for (f, v) in [
            ("cooldown_s", self.cooldown_s),
            ("timeout_s", self.timeout_s),
            ("first_token_timeout_s", self.first_token_timeout_s),
            ("serve_timeout_s", self.serve_timeout_s),
            ("settle_timeout_s", self.settle_timeout_s),
        ] {
            if !secs(v) {
                return Err(bad(f, "must be a number of seconds, 0 or more"));
            }
        }
        if !(self.connect_timeout_s.is_finite() && self.connect_timeout_s > 0.0) {
            return Err(bad(
                "connect_timeout_s",
                "must be a positive number of seconds",
            ));
        }
        if self.max_event_bytes == 0 {
            return Err(bad("max_event_bytes", "must be at least 1"));
        }
        if self.max_response_bytes == 0 {
            return Err(bad("max_response_bytes", "must be at least 1"));
        }
        if self.duration_s.is_some_and(|d| !(d.is_finite() && d > 0.0)) {
            return Err(bad("duration_s", "must be a positive number of seconds"));
        }
        if !matches!(self.api.as_str(), "chat" | "completions") {
            return Err(bad("api", "must be \"chat\" or \"completions\""));
        }
        if self.serve.is_some() && self.endpoint.is_none() {
            return Err(bad("serve", "needs an endpoint (the server's URL)"));
        }
        if self.monitor_interval_ms < 10 {
            return Err(bad("monitor_interval_ms", "must be at least 10"));
        }
        Ok(())
    }

    /// The target settings that change what is measured, for the configuration hash and the
    /// experiment record (only those that apply).
    fn target_options(&self) -> BTreeMap<String, serde_json::Value> {
        use serde_json::json;
        let mut o = BTreeMap::new();
        if let Some(n) = self.ctx_size {
            o.insert("ctx_size".into(), json!(n));
        }
        if self.endpoint.is_some() {
            o.insert("api".into(), json!(self.api));
            o.insert("send_ignore_eos".into(), json!(!self.no_ignore_eos));
            o.insert("connect_timeout_s".into(), json!(self.connect_timeout_s));
            o.insert(
                "first_token_timeout_s".into(),
                json!(self.first_token_timeout_s),
            );
            o.insert("timeout_s".into(), json!(self.timeout_s));
            if let Some(t) = &self.tokenizer {
                let name = t.file_name().map_or_else(
                    || t.display().to_string(),
                    |n| n.to_string_lossy().into_owned(),
                );
                o.insert("tokenizer".into(), json!(name));
            }
        }
        o
    }

    /// How the runner runs each unit (before any profile).
    pub(super) fn run_plan(&self) -> RunPlan {
        RunPlan {
            runs: self.runs,
            duration_s: self.duration_s,
            warmup: self.warmup,
            cooldown_s: self.cooldown_s,
            seed: self.seed,
            max_tokens: self.max_tokens,
            unique_prefix: !self.allow_prefix_cache,
            sampling: Sampling {
                temperature: self.temperature,
                top_p: self.top_p,
                top_k: self.top_k,
                repeat_penalty: self.repeat_penalty,
                seed: self.seed,
            },
            concurrency: self.concurrency,
            rate_per_s: self.rate,
            monitor_interval_ms: self.monitor_interval_ms,
            settle: SettlePolicy::from_flags(self.settle_timeout_s, self.settle_threshold_percent),
            target_options: self.target_options(),
            profile: None,
        }
    }

    /// The HTTP settings every model of the endpoint `base` shares.
    fn http_template(&self, base: &str, tokenizer: Option<Arc<dyn TokenCounter>>) -> HttpConfig {
        let mut cfg = HttpConfig::new(base, "");
        cfg.api_key = self.api_key.clone();
        cfg.api = if self.api == "completions" {
            Api::Completions
        } else {
            Api::Chat
        };
        cfg.connect_timeout = Duration::from_secs_f64(self.connect_timeout_s);
        cfg.first_token_timeout = Duration::from_secs_f64(self.first_token_timeout_s);
        cfg.total_timeout = Duration::from_secs_f64(self.timeout_s);
        cfg.send_ignore_eos = !self.no_ignore_eos;
        cfg.max_event_bytes = self.max_event_bytes;
        cfg.max_response_bytes = self.max_response_bytes;
        cfg.context_tokens = self.ctx_size;
        cfg.server_pid = self.server_pid;
        cfg.tokenizer = tokenizer;
        cfg
    }

    /// The plan: scenarios (a sweep expanded), models resolved (catalog models fetched, with
    /// `log` told), the target, the load and where results go. `tokenizer` is the opened
    /// `tokenizer` file, when there is one.
    pub fn into_plan(
        self,
        environment: Environment,
        command: String,
        tokenizer: Option<Arc<dyn TokenCounter>>,
        log: &dyn Fn(&str),
    ) -> Result<PerfPlan, ExperimentError> {
        self.check()?;
        // What is kept with the experiment so `--resume` can run it again as it was asked for
        // (never the API key).
        let kept = RunRequest {
            api_key: None,
            resume: None,
            ..self.clone()
        };
        let plan_err = |e: &dyn std::fmt::Display| ExperimentError::Plan(e.to_string());
        let base_file = match &self.scenarios_file {
            Some(p) => ScenarioFile::load(p),
            None => ScenarioFile::default_file(),
        }
        .map_err(|e| plan_err(&e))?;
        // A sweep replaces each selected scenario by one step per level.
        let file = match self.sweep.as_deref() {
            Some(spec) => {
                let sweep = workload::sweep::parse(spec).map_err(|e| plan_err(&e))?;
                let selected = base_file
                    .select(&self.scenarios)
                    .map_err(|e| plan_err(&e))?;
                workload::sweep::expand(&base_file, &selected, &sweep)
            }
            None => base_file,
        };
        let every = ["all".to_string()];
        let mut scenarios: Vec<_> = file
            .select(if self.sweep.is_some() {
                &every
            } else {
                &self.scenarios
            })
            .map_err(|e| plan_err(&e))?
            .into_iter()
            .cloned()
            .collect();
        let endpoint = self
            .endpoint
            .as_deref()
            .filter(|e| *e != "mock")
            .map(openai::resolve_endpoint)
            .transpose()?;
        let models = match (&self.endpoint, &endpoint) {
            (None, _) => {
                let spec = EngineSpec {
                    threads: self.threads.unwrap_or_else(repro::default_threads),
                    ctx_size: self.ctx_size,
                    verbose: self.verbose,
                    parallel: 1,
                };
                Models::Given(
                    catalog::resolve_models(&self.models, log)
                        .map_err(|e| plan_err(&e))?
                        .into_iter()
                        .map(|m| (m, BackendSpec::Embedded(spec.clone())))
                        .collect(),
                )
            }
            (Some(_), None) => Models::Given(vec![(targets::mock_model(), BackendSpec::Mock)]),
            (Some(_), Some(base)) => Models::Endpoint {
                template: Box::new(self.http_template(base, tokenizer)),
                ids: self.models.clone(),
            },
        };
        let serve = match (&self.serve, &endpoint) {
            (Some(cmd), Some(base)) => Some(ServeSpec {
                command: cmd.clone(),
                base_url: base.clone(),
                log_patterns: self.log_patterns.clone(),
                timeout: Duration::from_secs_f64(self.serve_timeout_s),
            }),
            _ => None,
        };
        let mut run = self.run_plan();
        let full = match self.profile {
            Some(Profile::Quick) => {
                let full = FullProtocol {
                    plan: run.clone(),
                    scenarios: scenarios.clone(),
                    command: command
                        .replace("--profile quick", "--profile full")
                        .replace("--profile=quick", "--profile=full"),
                };
                Profile::Quick.apply(&mut run, &mut scenarios);
                run.profile = Some(Profile::Quick);
                Some(full)
            }
            Some(Profile::Full) | None => None,
        };
        Ok(PerfPlan {
            run,
            full,
            file,
            scenarios,
            scenarios_source: self
                .scenarios_file
                .as_ref()
                .map_or_else(|| "built-in".to_string(), |p| p.display().to_string()),
            models,
            serve,
            results_dir: self.results.clone(),
            store: None,
            no_checkpoint: self.no_checkpoint,
            resume: Resume::from_flag(self.resume.as_deref()),
            request: Some(kept),
            command,
            environment,
            fit: super::fit::FitPolicy {
                budget_mb: self.memory_budget_mb,
                force: self.force,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_bodies_take_defaults_and_name_bad_fields() {
        let r: RunRequest =
            serde_json::from_str(r#"{"endpoint": "mock", "runs": 2, "max_tokens": 4}"#).unwrap();
        assert_eq!((r.runs, r.warmup, r.max_tokens), (2, 3, Some(4)));
        let e = serde_json::from_str::<RunRequest>(r#"{"runz": 2}"#).unwrap_err();
        assert!(e.to_string().contains("runz"), "{e}");
        let r = RunRequest {
            runs: 0,
            ..RunRequest::default()
        };
        assert!(r.check().unwrap_err().to_string().starts_with("runs:"));
        let r = RunRequest {
            api: "grpc".into(),
            ..RunRequest::default()
        };
        assert!(r.check().unwrap_err().to_string().starts_with("api:"));
        let env = Environment::capture("test", None, &["CPU"]);
        let plan = RunRequest {
            endpoint: Some("mock".into()),
            scenarios: vec!["interactive_assistant".into()],
            ..RunRequest::default()
        }
        .into_plan(env, "test".into(), None, &|_| {})
        .unwrap();
        assert_eq!(plan.scenarios.len(), 1);
        assert!(matches!(plan.models, Models::Given(ref m) if m.len() == 1));
    }
}

/// The request fields a resume may differ in without changing what the experiment measures.
const NOT_THE_EXPERIMENT: [&str; 8] = [
    "results",
    "resume",
    "api_key",
    "no_checkpoint",
    "verbose",
    "tokenizer",
    "force",
    "memory_budget_mb",
];

impl RunRequest {
    /// The fields in which `other` asks for something else than `self`: (field, self's value,
    /// other's value), values as JSON text; where the results go, the resume flag and the API
    /// key are not the experiment and are left out.
    pub fn differences(&self, other: &RunRequest) -> Vec<(String, String, String)> {
        let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) =
            (serde_json::to_value(self), serde_json::to_value(other))
        else {
            return Vec::new();
        };
        a.iter()
            .filter(|(k, _)| !NOT_THE_EXPERIMENT.contains(&k.as_str()))
            .filter_map(|(k, va)| {
                let vb = b.get(k).cloned().unwrap_or(serde_json::Value::Null);
                (*va != vb).then(|| (k.clone(), va.to_string(), vb.to_string()))
            })
            .collect()
    }
}

/// The most recent unfinished run of a results folder (or store), with the request it was
/// started from when it kept one (runs since this was recorded).
#[derive(Debug, Clone)]
pub struct Unfinished {
    pub id: String,
    pub config_hash: String,
    pub command: String,
    pub request: Option<RunRequest>,
}

/// The most recent experiment of `kind` ("perf" or "eval") that is not done, in the results
/// folder's database or `store`; `None` when there is none (or no database yet).
pub fn latest_unfinished(
    results: &std::path::Path,
    store: Option<&crate::store::StoreLocation>,
    kind: &str,
    machine_id: &str,
) -> Result<Option<Unfinished>, ExperimentError> {
    let location = match store {
        Some(s) => s.clone(),
        None => crate::store::StoreLocation::for_folder(results, None),
    };
    if location.is_missing_file() {
        return Ok(None);
    }
    let store = crate::store::Store::connect(&location)?;
    let Some(row) = store
        .experiments()?
        .into_iter()
        // Only this machine's (or one that never recorded a machine): in a team store another
        // machine's unfinished run is not ours to continue.
        .find(|e| {
            e.kind == kind
                && e.status != "done"
                && (e.machine_id.is_empty() || e.machine_id == machine_id)
        })
    else {
        return Ok(None);
    };
    let request = serde_json::from_str::<crate::results::ExperimentConfig>(&row.config_json)
        .ok()
        .and_then(|c| c.request)
        .and_then(|r| serde_json::from_value::<RunRequest>(r).ok());
    Ok(Some(Unfinished {
        id: row.id,
        config_hash: row.config_hash,
        command: row.command,
        request,
    }))
}
