//! `edgebench study`: builds a study's plans from the run flags, runs them through the
//! library's study, renders its events, and prints the decision or the study's table.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use edgebench_core::catalog::ModelInfo;
use edgebench_core::compare::{Criteria, Verdict};
use edgebench_core::eval::tasks;
use edgebench_core::experiment::eval_request::EvalRequest;
use edgebench_core::experiment::Context as ExperimentContext;
use edgebench_core::experiment::{perf, ExperimentError};
use edgebench_core::report::compare_md;
use edgebench_core::study::steps::{self as step_study, StepsSpec, StudyKind};
use edgebench_core::study::{fp8_kv, quant};
use edgebench_llama::LlamaLoader;

use super::render::{ctrl_c_token, Terminal};
use super::run::{base_command, cli_error, environment, request};
use crate::args::{Fp8Args, QuantArgs, StepsArgs, StudyCommand};

pub fn study(kind: StudyCommand) -> anyhow::Result<ExitCode> {
    match kind {
        StudyCommand::Fp8Kv(a) => super::block_on(fp8(*a)),
        StudyCommand::Quant(a) => super::block_on(quant(*a)),
        StudyCommand::Context(a) => super::block_on(steps(StudyKind::Context, *a)),
        StudyCommand::Temperature(a) => super::block_on(steps(StudyKind::Temperature, *a)),
        StudyCommand::Language(a) => super::block_on(steps(StudyKind::Language, *a)),
        StudyCommand::PromptType(a) => super::block_on(steps(StudyKind::PromptType, *a)),
        StudyCommand::Threads(a) => super::block_on(steps(StudyKind::Threads, *a)),
    }
}

async fn fp8(a: Fp8Args) -> anyhow::Result<ExitCode> {
    let criteria = match &a.criteria {
        Some(p) => Criteria::load(p)?,
        None => Criteria::fp8_kv(),
    };
    let [b, c] =
        fp8_kv::requests(&request(&a.run), a.calibrated_serve.as_deref()).map_err(cli_error)?;
    let mut plans = Vec::new();
    for r in [b, c] {
        let mut plan = r
            .into_plan(environment(), base_command(), None, &|m| eprintln!("{m}"))
            .map_err(cli_error)?;
        plan.store = a
            .run
            .store
            .as_deref()
            .map(edgebench_core::store::StoreLocation::parse);
        plans.push(plan);
    }
    let plans: [_; 2] = plans
        .try_into()
        .map_err(|_| anyhow::anyhow!("the study has two plans"))?;
    let ctx = context(a.run.no_checkpoint);
    let out = fp8_kv::run(plans, &criteria, &ctx)
        .await
        .map_err(cli_error)
        .context("FP8 study")?;
    show(
        &out.written,
        a.run.json,
        &out.comparison,
        compare_md::render,
    )?;
    Ok(match out.comparison.decision.verdict {
        Verdict::KeepBaseline => ExitCode::from(1),
        Verdict::Apply | Verdict::ApplyWithMonitoring => ExitCode::SUCCESS,
    })
}

async fn quant(a: QuantArgs) -> anyhow::Result<ExitCode> {
    let plan_err = |m: &str| cli_error(ExperimentError::Plan(m.to_string()));
    if a.run.endpoint.is_some() {
        return Err(plan_err(
            "endpoint: the quant study writes GGUF files and measures them on the embedded engine; \
             to compare a server's builds, run `edgebench run --endpoint` on each",
        ));
    }
    if a.run.resume.is_some() {
        return Err(plan_err(
            "resume: the quant study is not resumed; run it again (its quantized files are cached, \
             and what the interrupted experiments measured stays in the results)",
        ));
    }
    if a.run.no_checkpoint {
        return Err(plan_err(
            "no_checkpoint: a study reads its experiments back from the results store",
        ));
    }
    let store = a
        .run
        .store
        .as_deref()
        .map(edgebench_core::store::StoreLocation::parse);
    let mut perf_plan = request(&a.run)
        .into_plan(environment(), base_command(), None, &|m| eprintln!("{m}"))
        .map_err(cli_error)?;
    perf_plan.store = store.clone();
    // The study's models are its quantized files: a bare `run --resume` must not take this run
    // for one of the source model.
    perf_plan.request = None;
    let resolved: Vec<ModelInfo> = match &perf_plan.models {
        perf::Models::Given(g) => g.iter().map(|(m, _)| m.clone()).collect(),
        perf::Models::Endpoint { .. } => Vec::new(),
    };
    let Some(source) = resolved.first().cloned() else {
        return Err(plan_err("models: give the source GGUF"));
    };
    let quantize = resolved.len() == 1 || !a.types.is_empty();
    if quantize && resolved.len() > 1 {
        return Err(plan_err(
            "models: quantizing starts from one source GGUF; give one --models with --types \
             (or several pre-quantized files without --types)",
        ));
    }
    let mut tasks: Vec<&'static str> = Vec::new();
    for t in &a.tasks {
        for name in tasks::expand(t).map_err(|e| plan_err(&format!("tasks: {e}")))? {
            if !tasks.contains(&name) {
                tasks.push(name);
            }
        }
    }
    let eval_request = EvalRequest {
        task: tasks.first().map_or("banking77", |t| *t).to_string(),
        model: Some(source.path.display().to_string()),
        sample_size: usize::try_from(a.sample_size).ok(),
        per_subject: usize::try_from(a.per_subject).ok(),
        data_dir: a.data_dir.clone(),
        answer: a.answer,
        threads: a.run.threads,
        seed: a.run.seed,
        monitor_interval_ms: a.run.machine.monitor_interval_ms,
        settle_timeout_s: a.run.machine.settle_timeout,
        settle_threshold_percent: a.run.machine.settle_threshold,
        results: a.run.results.clone(),
        ..EvalRequest::default()
    };
    let mut eval_plan = eval_request
        .into_plan(environment(), base_command(), &|m| eprintln!("{m}"))
        .map_err(cli_error)?;
    eval_plan.tasks = tasks;
    eval_plan.store = store;
    let ctx = context(a.run.no_checkpoint);
    let models = if quantize {
        let spec = quant::QuantSpec {
            source: source.path.clone(),
            types: a.types.clone(),
            allow_requantize: a.allow_requantize,
            threads: a
                .run
                .threads
                .unwrap_or_else(edgebench_core::repro::default_threads),
            cache_dir: a.cache_dir.clone().unwrap_or_else(quant::default_cache_dir),
        };
        quant::prepare(&spec, &ctx).await.map_err(cli_error)?
    } else {
        quant::as_given(resolved).map_err(cli_error)?
    };
    quant::set_models(&mut perf_plan, &mut eval_plan, &models);
    let out = quant::run(&source, perf_plan, eval_plan, &ctx)
        .await
        .map_err(cli_error)
        .context("quant study")?;
    show(&out.written, a.run.json, &out.study, quant::render)?;
    Ok(ExitCode::SUCCESS)
}

async fn steps(kind: StudyKind, a: StepsArgs) -> anyhow::Result<ExitCode> {
    let plan_err = |m: &str| cli_error(ExperimentError::Plan(m.to_string()));
    if a.run.no_checkpoint {
        return Err(plan_err(
            "no_checkpoint: a study reads its experiment back from the results store",
        ));
    }
    if a.run.sweep.is_some() || a.run.scenarios_file.is_some() || a.run.scenarios != ["all"] {
        return Err(plan_err(
            "scenarios: a study makes its own scenarios (one per step); leave out --scenarios, \
             --scenarios-file and --sweep",
        ));
    }
    let mut plan = request(&a.run)
        .into_plan(environment(), base_command(), None, &|m| eprintln!("{m}"))
        .map_err(cli_error)?;
    plan.store = a
        .run
        .store
        .as_deref()
        .map(edgebench_core::store::StoreLocation::parse);
    let model_ctx = match &plan.models {
        perf::Models::Given(g) if g.len() == 1 => g[0].0.context_length,
        perf::Models::Given(_) => return Err(plan_err("models: a study measures one model")),
        perf::Models::Endpoint { ids, .. } if ids.len() > 1 => {
            return Err(plan_err("models: a study measures one model"))
        }
        perf::Models::Endpoint { .. } => None,
    };
    if a.max_ctx.is_some() && kind != StudyKind::Context {
        return Err(plan_err("max_ctx: only the context study takes it"));
    }
    if a.run.duration.is_some() && kind == StudyKind::Language {
        return Err(plan_err(
            "duration: the language study maps each request to its prompt; give --runs",
        ));
    }
    let spec = StepsSpec {
        kind,
        values: a.values.clone(),
        max_ctx: a.max_ctx,
        fixed_ctx: a.run.ctx_size,
        max_tokens: a.run.max_tokens,
        cores: edgebench_core::repro::default_threads(),
    };
    let steps = step_study::steps(&spec, &plan.file, model_ctx).map_err(cli_error)?;
    step_study::apply(&mut plan, &steps).map_err(cli_error)?;
    let ctx = context(a.run.no_checkpoint);
    let out = step_study::run(kind, &steps, plan, &ctx)
        .await
        .map_err(cli_error)
        .with_context(|| format!("{} study", kind.name()))?;
    show(&out.written, a.run.json, &out.study, step_study::render)?;
    Ok(ExitCode::SUCCESS)
}

/// The experiment context a study runs with: the terminal's progress, Ctrl-C, the engine.
fn context(no_checkpoint: bool) -> ExperimentContext {
    ExperimentContext {
        events: Arc::new(Terminal::new("requests", !no_checkpoint, false)),
        cancel: ctrl_c_token(),
        engine: Arc::new(LlamaLoader),
    }
}

/// The files written (stderr), then the study's document: JSON with `--json`, else Markdown.
fn show<T: serde::Serialize>(
    written: &[std::path::PathBuf],
    json: bool,
    doc: &T,
    markdown: fn(&T) -> String,
) -> anyhow::Result<()> {
    eprintln!("\nresults:");
    for w in written {
        eprintln!("  {}", w.display());
    }
    if json {
        println!("{}", serde_json::to_string_pretty(doc)?);
    } else {
        print!("{}", markdown(doc));
    }
    Ok(())
}
