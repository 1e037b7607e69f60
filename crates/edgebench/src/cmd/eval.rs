//! `edgebench eval`: score models on capability tasks, item by item into the store, and write
//! `results/eval_{task}_{model}_{timestamp}.json` per task and model.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use edgebench_core::catalog::{self, ModelInfo};
use edgebench_core::clock::Clock;
use edgebench_core::eval::http::HttpEvalBackend;
use edgebench_core::eval::tasks::{self, Sink};
use edgebench_core::eval::{EvalBackend, EvalError, EvalSummary, ItemResult, TaskOptions};
use edgebench_core::hw::settle;
use edgebench_core::monitor::{self, Monitor};
use edgebench_core::report::{self, files};
use edgebench_core::repro::{self, Environment};
use edgebench_core::store::{ExperimentRow, Store};
use edgebench_core::target::openai::{self, HttpConfig, OpenAiTarget};
use edgebench_llama::{EngineConfig, LlamaEvalBackend, LlamaTarget};
use serde::Serialize;

use super::run::{
    base_command, checkpoint_summary, progress_bar, resolve_models, store_row, unit_model_key,
};
use super::Interrupted;
use crate::args::EvalArgs;

pub fn eval(a: EvalArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(eval_async(a))
}

/// What decides an eval's results (hashed for `--resume` and comparisons).
#[derive(Serialize)]
struct EvalConfig<'a> {
    kind: &'static str,
    tasks: &'a [&'static str],
    models: Vec<String>,
    endpoint: Option<String>,
    sample_size: Option<usize>,
    per_subject: Option<usize>,
    shots: u32,
    agreement: &'a str,
    seed: u64,
    temperature: f64,
    realistic_file: Option<String>,
}

fn file_model_name(m: &ModelInfo) -> String {
    report::sanitize(&format!("{}_{}_{}", m.name, m.format, m.quantization))
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
    let started = time::OffsetDateTime::now_utc();
    let threads = a.threads.unwrap_or_else(repro::default_threads);
    // Models: embedded (catalog keys or paths) or the server's.
    let base = a
        .endpoint
        .as_deref()
        .map(openai::resolve_endpoint)
        .transpose()?;
    let models: Vec<ModelInfo> = match &base {
        None => {
            let specs: Vec<String> = if a.all_models {
                vec!["all".into()]
            } else {
                a.model.iter().cloned().collect()
            };
            resolve_models(&specs)?
        }
        Some(base) => {
            let id = match &a.model {
                Some(m) => m.clone(),
                None => {
                    let mut cfg = HttpConfig::new(base.clone(), "");
                    cfg.api_key = a.api_key.clone();
                    let t = OpenAiTarget::new(cfg)?;
                    t.list_models().await?.into_iter().next().ok_or_else(|| {
                        anyhow!("--endpoint {base}: the server lists no models; pass --model ID")
                    })?
                }
            };
            vec![catalog::model_info_from_id(&id, base).0]
        }
    };
    let config = EvalConfig {
        kind: "eval",
        tasks: &task_list,
        models: models.iter().map(unit_model_key).collect(),
        endpoint: base.clone(),
        sample_size: a.sample_size,
        per_subject: a.per_subject,
        shots: a.shots,
        agreement: &a.agreement,
        seed: a.seed,
        temperature: 0.0,
        realistic_file: a.realistic_file.as_ref().map(|p| p.display().to_string()),
    };
    let config_hash = files::canonical_hash(&config)?;
    let environment = Environment::capture(
        env!("CARGO_PKG_VERSION"),
        Some(env!("EDGEBENCH_GIT_COMMIT")).filter(|c| !c.is_empty()),
        &edgebench_llama::built_backends(),
    );

    let db_path = a.results.join("edgebench.db");
    let mut store = Store::open(&db_path)?;
    let experiment = match &a.resume {
        Some(id) => {
            let row = if id.is_empty() {
                store.latest_unfinished(&config_hash)?.ok_or_else(|| {
                    anyhow!(
                        "nothing to resume: {} has no unfinished eval with this configuration (config {})",
                        db_path.display(),
                        &config_hash[..12]
                    )
                })?
            } else {
                store.experiment(id)?.ok_or_else(|| {
                    anyhow!("--resume {id}: no such experiment in {}", db_path.display())
                })?
            };
            if row.config_hash != config_hash {
                bail!(
                    "--resume {}: that eval ran with another configuration; repeat its command: {}",
                    row.id,
                    row.command
                );
            }
            eprintln!("resuming eval {}", row.id);
            store.set_status(&row.id, "running")?;
            row
        }
        None => {
            let mut id = format!("eval_{}", report::file_timestamp(started));
            let mut n = 2;
            while store.has_experiment(&id)? {
                id = format!("eval_{}-{n}", report::file_timestamp(started));
                n += 1;
            }
            let row = ExperimentRow {
                id,
                kind: "eval".into(),
                created: started
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
                config_hash: config_hash.clone(),
                config_json: serde_json::to_string(&config)?,
                command: base_command(),
                status: "running".into(),
            };
            store.create_experiment(&row)?;
            row
        }
    };
    super::snapshot_hardware(&store, &experiment.id, &environment)?;
    // The reproducibility record, as for runs: machine, software, configuration, hash; the
    // targets are filled in as each model's backend opens.
    let mut record = files::ExperimentConfig {
        experiment_id: experiment.id.clone(),
        created: experiment.created.clone(),
        config_hash: config_hash.clone(),
        environment: environment.clone(),
        plan: edgebench_core::runner::RunPlan {
            seed: a.seed,
            ..Default::default()
        },
        scenarios_source: String::new(),
        scenarios: Vec::new(),
        passages_sha256: String::new(),
        models: models
            .iter()
            .map(|m| files::ModelSetup {
                model: m.clone(),
                target: Default::default(),
            })
            .collect(),
        eval: Some(serde_json::to_value(&config)?),
    };
    let record_path = a
        .results
        .join(format!("experiment_config_{}.json", experiment.id));
    let save_record = |r: &files::ExperimentConfig| -> anyhow::Result<()> {
        report::atomic_write(&record_path, &serde_json::to_vec_pretty(r)?)
            .with_context(|| format!("writing {}", record_path.display()))
    };
    save_record(&record)?;
    let unit_keys: Vec<(String, String, String)> = models
        .iter()
        .flat_map(|m| {
            task_list
                .iter()
                .map(move |t| (unit_model_key(m), t.to_string(), String::new()))
        })
        .collect();
    store.ensure_units(&experiment.id, &unit_keys)?;

    let cancelled = Arc::new(AtomicBool::new(false));
    {
        let c = cancelled.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                c.store(true, Ordering::SeqCst);
            }
        });
    }
    let opts = TaskOptions {
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
    let mut summaries: Vec<EvalSummary> = Vec::new();
    let mut failures = 0usize;
    for model in &models {
        let units = store.units(&experiment.id)?;
        let pending: Vec<&str> = task_list
            .iter()
            .copied()
            .filter(|t| {
                units.iter().any(|u| {
                    u.model == unit_model_key(model) && u.scenario == *t && u.status != "done"
                })
            })
            .collect();
        for u in units
            .iter()
            .filter(|u| u.model == unit_model_key(model) && u.status == "done")
        {
            if let Some(s) = u
                .report_json
                .as_deref()
                .and_then(|j| serde_json::from_str(j).ok())
            {
                summaries.push(s);
            }
        }
        if pending.is_empty() {
            continue;
        }
        let backend: Box<dyn EvalBackend> = match &base {
            None => {
                let mut cfg = EngineConfig::new(&model.path, threads);
                cfg.cancel = Some(cancelled.clone());
                eprintln!(
                    "loading {} ({} {}, {threads} threads)",
                    model.name, model.format, model.quantization
                );
                let t = tokio::task::spawn_blocking(move || LlamaTarget::load(cfg))
                    .await
                    .context("engine thread")??;
                Box::new(LlamaEvalBackend::new(t, a.parallel as usize))
            }
            Some(base) => Box::new(HttpEvalBackend::new(
                base,
                &model.name,
                a.api_key.clone(),
                a.concurrency as usize,
                super::run::local_port(base).and_then(monitor::pid_listening_on),
            )?),
        };
        if let Some(setup) = record
            .models
            .iter_mut()
            .find(|s| s.model.path == model.path)
        {
            setup.target = backend.info();
            save_record(&record)?;
        }
        for task in pending {
            let unit = units
                .iter()
                .find(|u| u.model == unit_model_key(model) && u.scenario == task)
                .ok_or_else(|| anyhow!("unit {task} missing"))?;
            store.continue_unit(unit.id)?;
            let done: HashMap<String, ItemResult> = store
                .eval_items(unit.id)?
                .into_iter()
                .filter_map(|(id, j)| serde_json::from_str(&j).ok().map(|r| (id, r)))
                .collect();
            if !done.is_empty() {
                eprintln!("{task}: {} items already scored", done.len());
            }
            let pb = progress_bar();
            pb.set_message(format!("{task} · {}", model.name));
            let unit_id = unit.id;
            let mut commit_err: Option<String> = None;
            let mut commit = |items: &[ItemResult]| -> Result<(), String> {
                let rows: Vec<(String, String)> = items
                    .iter()
                    .map(|i| Ok((i.id.clone(), serde_json::to_string(i)?)))
                    .collect::<Result<_, serde_json::Error>>()
                    .map_err(|e| e.to_string())?;
                store.add_eval_items(unit_id, &rows).map_err(|e| {
                    let s = e.to_string();
                    commit_err = Some(s.clone());
                    s
                })
            };
            let progress = |d: usize, t: usize| {
                pb.set_length(t as u64);
                pb.set_position(d as u64);
            };
            let settle = a.machine.settle_policy().map(|p| settle::settle(&p));
            if let Some(w) = settle.as_ref().and_then(|r| r.warning()) {
                eprintln!("warning: {task}: {w}");
            }
            let mon = Monitor::start(
                backend.info().pid,
                Duration::from_millis(a.machine.monitor_interval_ms),
                Clock::new(),
            );
            let is_cancelled = || cancelled.load(Ordering::SeqCst);
            let mut sink = Sink {
                commit: &mut commit,
                progress: &progress,
                cancelled: &is_cancelled,
            };
            let outcome = tasks::run_task(task, backend.as_ref(), &opts, &done, &mut sink).await;
            pb.finish_and_clear();
            let (samples, cost) = mon.finish();
            let mut usage = monitor::summarize(&samples);
            usage.sampler_cpu_percent_of_core = cost.percent_of_core();
            usage.energy_source = Some(cost.energy_source);
            let outcome = match outcome {
                Ok(o) => o,
                Err(EvalError::Interrupted) => {
                    store.set_status(&experiment.id, "interrupted")?;
                    eprintln!("[Interrupted] Checkpoint saved. Use --resume to continue.");
                    eprint!(
                        "{}",
                        checkpoint_summary(&store, &store_row(&store, &experiment.id)?, true)?
                    );
                    return Err(Interrupted.into());
                }
                Err(
                    e @ (EvalError::Data(_)
                    | EvalError::Usage(_)
                    | EvalError::TaskFile { .. }
                    | EvalError::Sandbox(_)),
                ) => {
                    store.fail_unit(unit_id, &e.to_string())?;
                    store.set_status(&experiment.id, "failed")?;
                    eprint!(
                        "{}",
                        checkpoint_summary(&store, &store_row(&store, &experiment.id)?, true)?
                    );
                    return Err(e.into());
                }
                Err(e) => {
                    eprintln!("error: {task} on {}: {e}", model.name);
                    store.fail_unit(unit_id, &e.to_string())?;
                    failures += 1;
                    continue;
                }
            };
            let (scores, confusions) = tasks::scores(&outcome, a.seed);
            let summary = EvalSummary {
                experiment_id: experiment.id.clone(),
                created: experiment.created.clone(),
                config_hash: config_hash.clone(),
                task: task.to_string(),
                method: outcome.method.clone(),
                model: model.clone(),
                target: backend.info(),
                environment: environment.clone(),
                seed: a.seed,
                items: outcome.items.len(),
                items_total: outcome.items_total,
                scores,
                confusions,
                sandbox: outcome.sandbox.clone(),
                items_per_s: if outcome.elapsed_s > 0.0 {
                    outcome.new_items as f64 / outcome.elapsed_s
                } else {
                    0.0
                },
                duration_s: outcome.elapsed_s,
                options: outcome.options.clone(),
                monitor: Some(usage),
                settle,
            };
            let path = a.results.join(format!(
                "eval_{task}_{}_{}.json",
                file_model_name(model),
                report::file_timestamp(started)
            ));
            let json = serde_json::to_vec_pretty(&summary)?;
            report::atomic_write(&path, &json)
                .with_context(|| format!("writing {}", path.display()))?;
            store.finish_unit_report(
                unit_id,
                &String::from_utf8_lossy(&json),
                Some(&path),
                &samples,
            )?;
            eprintln!("{}", render_line(&summary));
            eprintln!("  wrote {}", path.display());
            summaries.push(summary);
        }
    }
    store.set_status(
        &experiment.id,
        if failures == 0 { "done" } else { "failed" },
    )?;
    eprint!(
        "{}",
        checkpoint_summary(&store, &store_row(&store, &experiment.id)?, true)?
    );
    if a.json {
        println!("{}", serde_json::to_string_pretty(&summaries)?);
    }
    Ok(if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// One line per task: the scores with their CIs, items and speed.
fn render_line(s: &EvalSummary) -> String {
    let scores: Vec<String> = s
        .scores
        .iter()
        .map(|(k, v)| match (v.ci_low, v.ci_high) {
            (Some(lo), Some(hi)) => format!("{k} {:.3} [{lo:.3}, {hi:.3}]", v.value),
            _ => format!("{k} {:.3}", v.value),
        })
        .collect();
    format!(
        "{} · {} ({}, n={} of {}): {} · {:.2} items/s",
        s.task,
        s.model.name,
        s.method,
        s.items,
        s.items_total,
        scores.join(", "),
        s.items_per_s
    )
}
