//! `edgebench eval`: turns the flags into an eval plan, runs it through the library's
//! experiment (items committed to the store as they are scored), and renders its events.

use std::process::ExitCode;
use std::sync::Arc;

use edgebench_core::experiment::eval;
use edgebench_core::experiment::eval_request::EvalRequest;
use edgebench_core::experiment::Context as ExperimentContext;
use edgebench_llama::LlamaLoader;

use super::render::{ctrl_c_token, Terminal};
use super::run::{base_command, cli_error, environment};
use crate::args::EvalArgs;

pub fn eval(a: EvalArgs) -> anyhow::Result<ExitCode> {
    super::block_on(eval_async(a))
}

/// The flags as the library's eval request.
pub(crate) fn request(a: &EvalArgs) -> EvalRequest {
    EvalRequest {
        task: a.task.clone(),
        model: a.model.clone(),
        all_models: a.all_models,
        sample_size: a.sample_size,
        full: a.full,
        per_subject: a.per_subject,
        shots: a.shots,
        agreement: a.agreement.clone(),
        answer: a.answer,
        format: a.format.clone(),
        samples: a.samples,
        temperature: a.temperature,
        data_dir: a.data_dir.clone(),
        realistic_file: a.realistic_file.clone(),
        endpoint: a.endpoint.clone(),
        api_key: a.api_key.clone(),
        concurrency: a.concurrency,
        connect_timeout_s: a.connect_timeout,
        timeout_s: a.timeout,
        max_response_bytes: a.max_response_bytes,
        parallel: a.parallel,
        threads: a.threads,
        unsafe_exec: a.unsafe_exec,
        seed: a.seed,
        monitor_interval_ms: a.machine.monitor_interval_ms,
        settle_timeout_s: a.machine.settle_timeout,
        settle_threshold_percent: a.machine.settle_threshold,
        results: a.results.clone(),
        resume: a.resume.clone(),
    }
}

async fn eval_async(a: EvalArgs) -> anyhow::Result<ExitCode> {
    let mut plan = request(&a)
        .into_plan(environment(), base_command(), &|m| eprintln!("{m}"))
        .map_err(cli_error)?;
    plan.store = a
        .store
        .as_deref()
        .map(edgebench_core::store::StoreLocation::parse);
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
