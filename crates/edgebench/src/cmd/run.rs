//! `edgebench run`: turns the flags into a performance plan, runs it through the library's
//! experiment, renders its events, and prints the summary.

use anyhow::Context;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use edgebench_core::backend::openai::{self, Api, HttpConfig};
use edgebench_core::backend::{Sampling, TokenCounter};
use edgebench_core::catalog::{self, ModelInfo};
use edgebench_core::experiment::perf::{self, Models, PerfPlan, ServeSpec};
use edgebench_core::experiment::{
    targets, BackendSpec, Context as ExperimentContext, EngineSpec, ExperimentError, Resume,
};
use edgebench_core::repro::{self, Environment};
use edgebench_core::runner::RunPlan;
use edgebench_core::workload::{self, ScenarioFile};
use edgebench_llama::{open_tokenizer, LlamaLoader};

use super::render::{ctrl_c_token, Terminal};
use super::Interrupted;
use crate::args::{ApiArg, RunArgs};

fn plan(a: &RunArgs) -> RunPlan {
    RunPlan {
        runs: a.runs,
        duration_s: a.duration,
        warmup: a.warmup,
        cooldown_s: a.cooldown,
        seed: a.seed,
        max_tokens: a.max_tokens,
        unique_prefix: !a.allow_prefix_cache,
        sampling: Sampling {
            temperature: a.temperature,
            top_p: a.top_p,
            top_k: a.top_k,
            repeat_penalty: a.repeat_penalty,
            seed: a.seed,
        },
        concurrency: a.concurrency,
        rate_per_s: a.rate,
        monitor_interval_ms: a.machine.monitor_interval_ms,
        settle: a.machine.settle_policy(),
        target_options: target_options(a),
    }
}

/// The target settings that change what is measured, for the configuration hash and the
/// experiment record (only those that apply and differ from nothing).
fn target_options(a: &RunArgs) -> std::collections::BTreeMap<String, serde_json::Value> {
    use serde_json::json;
    let mut o = std::collections::BTreeMap::new();
    if let Some(n) = a.ctx_size {
        o.insert("ctx_size".into(), json!(n));
    }
    if a.endpoint.is_some() {
        let api = match a.api {
            ApiArg::Chat => "chat",
            ApiArg::Completions => "completions",
        };
        o.insert("api".into(), json!(api));
        o.insert("send_ignore_eos".into(), json!(!a.no_ignore_eos));
        o.insert("connect_timeout_s".into(), json!(a.connect_timeout));
        o.insert("first_token_timeout_s".into(), json!(a.first_token_timeout));
        o.insert("timeout_s".into(), json!(a.timeout));
        if let Some(t) = &a.tokenizer {
            let name = t.file_name().map_or_else(
                || t.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            o.insert("tokenizer".into(), json!(name));
        }
    }
    o
}

/// The embedded-engine models named on the command line (see [`catalog::resolve_models`]).
pub(crate) fn resolve_models(specs: &[String]) -> anyhow::Result<Vec<ModelInfo>> {
    Ok(catalog::resolve_models(specs, &|msg| eprintln!("{msg}"))?)
}

/// The command line as typed (the program as invoked, from the folder it ran in, so relative
/// paths still hold), without any `--resume [ID]`, shell-quoted where needed.
pub(crate) fn base_command() -> String {
    let quote = |a: String| {
        let plain = !a.is_empty()
            && a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+".contains(c));
        if plain {
            a
        } else {
            format!("'{}'", a.replace('\'', "'\\''"))
        }
    };
    let program = std::env::args()
        .next()
        .filter(|p| p.contains('/'))
        .unwrap_or_else(|| "edgebench".to_string());
    let mut out = Vec::new();
    if program.contains('/') && !program.starts_with('/') {
        if let Ok(cwd) = std::env::current_dir() {
            out.push(format!("cd {} &&", quote(cwd.display().to_string())));
        }
    }
    out.push(quote(program));
    let mut args = std::env::args().skip(1).peekable();
    while let Some(a) = args.next() {
        if a == "--resume" {
            if args.peek().is_some_and(|n| !n.starts_with('-')) {
                args.next();
            }
            continue;
        }
        if a.starts_with("--resume=") {
            continue;
        }
        out.push(quote(a));
    }
    out.join(" ")
}

/// The environment this binary records with every experiment.
pub(crate) fn environment() -> Environment {
    Environment::capture(
        env!("CARGO_PKG_VERSION"),
        Some(env!("EDGEBENCH_GIT_COMMIT")).filter(|c| !c.is_empty()),
        &edgebench_llama::built_backends(),
    )
}

/// How `--resume [ID]` reads.
pub(crate) fn resume(r: &Option<String>) -> Resume {
    match r.as_deref() {
        None => Resume::No,
        Some("") => Resume::Latest,
        Some(id) => Resume::Id(id.to_string()),
    }
}

/// An experiment's error for the binary: interrupted exits 130, the rest 2.
pub(crate) fn cli_error(e: ExperimentError) -> anyhow::Error {
    match e {
        ExperimentError::Interrupted => anyhow::anyhow!(Interrupted),
        e => e.into(),
    }
}

/// The HTTP settings every model of the endpoint `base` shares.
fn http_template(a: &RunArgs, base: &str) -> anyhow::Result<HttpConfig> {
    let mut cfg = HttpConfig::new(base, "");
    cfg.api_key = a.api_key.clone();
    cfg.api = match a.api {
        ApiArg::Chat => Api::Chat,
        ApiArg::Completions => Api::Completions,
    };
    cfg.connect_timeout = Duration::from_secs_f64(a.connect_timeout);
    cfg.first_token_timeout = Duration::from_secs_f64(a.first_token_timeout);
    cfg.total_timeout = Duration::from_secs_f64(a.timeout);
    cfg.send_ignore_eos = !a.no_ignore_eos;
    cfg.context_tokens = a.ctx_size;
    cfg.server_pid = a.server_pid;
    cfg.tokenizer = match &a.tokenizer {
        Some(p) => {
            let t: Arc<dyn TokenCounter> =
                open_tokenizer(p).with_context(|| format!("--tokenizer {}", p.display()))?;
            Some(t)
        }
        None => None,
    };
    Ok(cfg)
}

pub fn run(a: RunArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(run_async(a))
}

async fn run_async(a: RunArgs) -> anyhow::Result<ExitCode> {
    let base_file = match &a.scenarios_file {
        Some(p) => ScenarioFile::load(p)?,
        None => ScenarioFile::default_file()?,
    };
    // A sweep replaces each selected scenario by one step per level.
    let file = match a.sweep.as_deref() {
        Some(spec) => {
            let sweep = workload::sweep::parse(spec)?;
            let selected = base_file.select(&a.scenarios)?;
            workload::sweep::expand(&base_file, &selected, &sweep)
        }
        None => base_file,
    };
    let every = ["all".to_string()];
    let scenarios: Vec<_> = file
        .select(if a.sweep.is_some() {
            &every
        } else {
            &a.scenarios
        })?
        .into_iter()
        .cloned()
        .collect();
    let threads = a.threads.unwrap_or_else(repro::default_threads);
    let endpoint = a
        .endpoint
        .as_deref()
        .filter(|e| *e != "mock")
        .map(openai::resolve_endpoint)
        .transpose()?;
    let models = match (&a.endpoint, &endpoint) {
        (None, _) => Models::Given(
            resolve_models(&a.models)?
                .into_iter()
                .map(|m| {
                    let spec = EngineSpec {
                        threads,
                        ctx_size: a.ctx_size,
                        verbose: a.verbose,
                        parallel: 1,
                    };
                    (m, BackendSpec::Embedded(spec))
                })
                .collect(),
        ),
        (Some(_), None) => Models::Given(vec![(targets::mock_model(), BackendSpec::Mock)]),
        (Some(_), Some(base)) => Models::Endpoint {
            template: Box::new(http_template(&a, base)?),
            ids: a.models.clone(),
        },
    };
    let serve = match (&a.serve, &endpoint) {
        (Some(cmd), Some(base)) => Some(ServeSpec {
            command: cmd.clone(),
            base_url: base.clone(),
            log_patterns: a.log_pattern.clone(),
            timeout: Duration::from_secs_f64(a.serve_timeout),
        }),
        _ => None,
    };
    let plan = PerfPlan {
        run: plan(&a),
        file,
        scenarios,
        scenarios_source: a
            .scenarios_file
            .as_ref()
            .map_or_else(|| "built-in".to_string(), |p| p.display().to_string()),
        models,
        serve,
        results_dir: a.results.clone(),
        no_checkpoint: a.no_checkpoint,
        resume: resume(&a.resume),
        command: base_command(),
        environment: environment(),
    };
    let ctx = ExperimentContext {
        events: Arc::new(Terminal::new("requests", !a.no_checkpoint, false)),
        cancel: ctrl_c_token(),
        engine: Arc::new(LlamaLoader),
    };
    let out = perf::run(plan, &ctx).await.map_err(cli_error)?;
    eprint!("{}", edgebench_core::report::render_summary(&out.summary));
    eprintln!("\nresults:");
    for w in &out.written {
        eprintln!("  {}", w.display());
    }
    eprint!("{}", out.checkpoint);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&out.summary)?);
    }
    Ok(ExitCode::SUCCESS)
}
