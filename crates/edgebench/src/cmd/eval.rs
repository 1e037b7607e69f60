//! `edgebench eval`: turns the flags into an eval plan, runs it through the library's
//! experiment (items committed to the store as they are scored), and renders its events.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use edgebench_core::backend::openai::{self, HttpConfig};
use edgebench_core::eval::tasks;
use edgebench_core::eval::TaskOptions;
use edgebench_core::experiment::eval::{self, EvalModels, EvalPlan};
use edgebench_core::experiment::{Context as ExperimentContext, EngineSpec, Resume};
use edgebench_core::repro;
use edgebench_llama::LlamaLoader;

use super::render::{ctrl_c_token, Terminal};
use super::run::{base_command, cli_error, environment, resolve_models};
use crate::args::EvalArgs;

pub fn eval(a: EvalArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(eval_async(a))
}

async fn eval_async(a: EvalArgs) -> anyhow::Result<ExitCode> {
    let task_list = tasks::expand(&a.task)?;
    if let Some(d) = &a.data_dir {
        if !d.is_dir() {
            bail!("--data-dir {}: no such folder", d.display());
        }
    }
    if let Some(p) = &a.realistic_file {
        let text = std::fs::read_to_string(p)
            .with_context(|| format!("--realistic-file {}", p.display()))?;
        tasks::load_cases(&text, &p.display().to_string())?;
    }
    let threads = a.threads.unwrap_or_else(repro::default_threads);
    let base = a
        .endpoint
        .as_deref()
        .map(openai::resolve_endpoint)
        .transpose()?;
    let models = match &base {
        None => {
            let specs: Vec<String> = if a.all_models {
                vec!["all".into()]
            } else {
                a.model.iter().cloned().collect()
            };
            let spec = EngineSpec {
                threads,
                ctx_size: None,
                verbose: false,
                parallel: a.parallel as usize,
            };
            EvalModels::Embedded(resolve_models(&specs)?, spec)
        }
        Some(base) => {
            let mut template = HttpConfig::new(base.clone(), "");
            template.api_key = a.api_key.clone();
            template.connect_timeout = Duration::from_secs_f64(a.connect_timeout);
            template.total_timeout = Duration::from_secs_f64(a.timeout);
            template.max_response_bytes = a.max_response_bytes;
            EvalModels::Endpoint {
                template: Box::new(template),
                id: a.model.clone(),
                concurrency: a.concurrency as usize,
            }
        }
    };
    let options = TaskOptions {
        sample_size: a.sample_size,
        per_subject: a.per_subject,
        seed: a.seed,
        data_dir: a.data_dir.clone(),
        agreement: a.agreement.clone(),
        shots: a.shots,
        batch: match &base {
            None => 32 * a.parallel as usize,
            Some(_) => 4 * a.concurrency as usize,
        },
        unsafe_exec: a.unsafe_exec,
        realistic_file: a.realistic_file.clone(),
    };
    let plan = EvalPlan {
        tasks: task_list,
        models,
        options,
        results_dir: a.results.clone(),
        resume: Resume::from_flag(a.resume.as_deref()),
        command: base_command(),
        environment: environment(),
        settle: a.machine.settle_policy(),
        monitor_interval: Duration::from_millis(a.machine.monitor_interval_ms),
    };
    let ctx = ExperimentContext {
        events: Arc::new(Terminal::new("items", true, true)),
        cancel: ctrl_c_token(),
        engine: Arc::new(LlamaLoader),
    };
    let out = eval::run(plan, &ctx).await.map_err(cli_error)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&out.summaries)?);
    }
    Ok(if out.failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
