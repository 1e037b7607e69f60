//! A capability experiment (`edgebench eval`): every unfinished task of every model, scored
//! items committed to the store batch by batch (a resume keeps them), one
//! `results/eval_{task}_{model}_{timestamp}.json` per task and model.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::{
    CancelFlag, Context, EngineSpec, Event, Experiment, ExperimentError, ExperimentStart, Resume,
};
use crate::backend::openai::HttpConfig;
use crate::backend::openai::OpenAiTarget;
use crate::backend::Backend;
use crate::catalog::ModelInfo;
use crate::clock::Clock;
use crate::eval::method::AnswerMode;
use crate::eval::tasks::{self, Sink};
use crate::eval::{EvalError, EvalSummary, ItemResult, TaskOptions};
use crate::hw::settle::{self, SettlePolicy};
use crate::monitor::{self, Monitor};
use crate::repro::Environment;
use crate::results::{
    atomic_write, file_timestamp, sanitize, ExperimentConfig, ModelSetup, UnitKey,
};
use crate::runner::RunPlan;

/// Where the evaluated models run.
#[derive(Debug, Clone)]
pub enum EvalModels {
    /// Embedded engine models.
    Embedded(Vec<ModelInfo>, EngineSpec),
    /// An OpenAI-compatible server: `id` (none: the first it lists), `concurrency` requests
    /// at a time.
    Endpoint {
        template: Box<HttpConfig>,
        id: Option<String>,
        concurrency: usize,
    },
}

/// Everything an eval needs, validated.
#[derive(Debug, Clone)]
pub struct EvalPlan {
    pub tasks: Vec<&'static str>,
    pub models: EvalModels,
    pub options: TaskOptions,
    pub results_dir: PathBuf,
    /// Another store than the results folder's `edgebench.db` (`--store URL`).
    pub store: Option<crate::store::StoreLocation>,
    pub resume: Resume,
    pub command: String,
    pub environment: Environment,
    pub settle: Option<SettlePolicy>,
    pub monitor_interval: Duration,
}

/// What a finished eval leaves.
#[derive(Debug, Clone)]
pub struct EvalOutcome {
    pub summaries: Vec<EvalSummary>,
    /// Tasks that failed on a model (the others still ran).
    pub failures: usize,
    pub written: Vec<PathBuf>,
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
    /// Left out at their defaults, so earlier experiments keep their hash (and resume).
    #[serde(skip_serializing_if = "is_free")]
    answer: AnswerMode,
    #[serde(skip_serializing_if = "is_letter")]
    format: &'a str,
    #[serde(skip_serializing_if = "is_one")]
    samples: u32,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    full: bool,
    #[serde(skip_serializing_if = "is_zero")]
    sample_temperature: f64,
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

fn is_zero(t: &f64) -> bool {
    *t == 0.0
}

fn is_free(a: &AnswerMode) -> bool {
    *a == AnswerMode::Free
}

fn is_letter(f: &&str) -> bool {
    *f == "letter"
}

/// The model part of eval file names.
fn file_model_name(m: &ModelInfo) -> String {
    sanitize(&format!("{}_{}_{}", m.name, m.format, m.quantization))
}

/// Runs the plan to its files.
pub async fn run(plan: EvalPlan, ctx: &Context) -> Result<EvalOutcome, ExperimentError> {
    let started = time::OffsetDateTime::now_utc();
    let events = ctx.events.as_ref();
    let (models, endpoint): (Vec<ModelInfo>, Option<String>) = match &plan.models {
        EvalModels::Embedded(m, _) => (m.clone(), None),
        EvalModels::Endpoint { template, id, .. } => {
            let base = template.base_url.clone();
            let id = match id {
                Some(m) => m.clone(),
                None => crate::backend::openai::OpenAiTarget::new((**template).clone())?
                    .list_models()
                    .await?
                    .into_iter()
                    .next()
                    .ok_or_else(|| {
                        ExperimentError::Plan(format!(
                            "--endpoint {base}: the server lists no models; pass --model ID"
                        ))
                    })?,
            };
            (
                vec![crate::catalog::model_info_from_id(&id, &base).0],
                Some(base),
            )
        }
    };
    let o = &plan.options;
    let config = EvalConfig {
        kind: "eval",
        tasks: &plan.tasks,
        models: models
            .iter()
            .map(|m| UnitKey::new(m, "").model_label())
            .collect(),
        endpoint,
        sample_size: o.sample_size,
        per_subject: o.per_subject,
        shots: o.shots,
        agreement: &o.agreement,
        seed: o.seed,
        temperature: 0.0,
        realistic_file: o.realistic_file.as_ref().map(|p| p.display().to_string()),
        answer: o.answer,
        format: &o.format,
        samples: o.samples,
        full: o.full,
        sample_temperature: o.temperature,
    };
    let plan_err = |e: serde_json::Error| ExperimentError::Plan(e.to_string());
    let config_hash = crate::results::canonical_hash(&config).map_err(plan_err)?;
    let config_json = serde_json::to_string(&config).map_err(plan_err)?;
    let mut exp = Experiment::start(
        &ExperimentStart {
            results_dir: plan.results_dir.clone(),
            store: plan.store.clone(),
            no_checkpoint: false,
            resume: plan.resume.clone(),
            kind: "eval".into(),
            id_prefix: "eval_".into(),
            config_hash: config_hash.clone(),
            config_json,
            command: plan.command.clone(),
            started,
        },
        &plan.environment,
        events,
    )?;
    // The reproducibility record, as for runs: machine, software, configuration, hash; the
    // targets are filled in as each model's backend opens.
    let mut record = ExperimentConfig {
        experiment_id: exp.id().to_string(),
        created: exp.row.created.clone(),
        config_hash: config_hash.clone(),
        environment: plan.environment.clone(),
        plan: RunPlan {
            seed: o.seed,
            ..Default::default()
        },
        scenarios_source: String::new(),
        scenarios: Vec::new(),
        passages_sha256: String::new(),
        models: models
            .iter()
            .map(|m| ModelSetup {
                model: m.clone(),
                target: Default::default(),
            })
            .collect(),
        eval: Some(serde_json::to_value(&config).map_err(plan_err)?),
        request: None,
    };
    exp.save_config(&record)?;
    let keys: Vec<UnitKey> = models
        .iter()
        .flat_map(|m| plan.tasks.iter().map(move |t| UnitKey::new(m, t)))
        .collect();
    exp.ensure_units(&keys)?;
    let mut run = EvalRun {
        plan: &plan,
        ctx,
        exp: &mut exp,
        config_hash: &config_hash,
        stamp: file_timestamp(started),
        summaries: Vec::new(),
        failures: 0,
        written: Vec::new(),
    };
    let result = run.models(&models, &mut record).await;
    let (summaries, failures, written) = (run.summaries, run.failures, run.written);
    if let Err(e) = result {
        return Err(exp.stop(e, events, false));
    }
    let status = if failures == 0 { "done" } else { "failed" };
    exp.set_status(status)?;
    events.event(Event::Finished {
        experiment_id: exp.id().to_string(),
        status: status.into(),
        checkpoint: exp.checkpoint_summary()?,
    });
    Ok(EvalOutcome {
        summaries,
        failures,
        written,
    })
}

/// Opens the eval backend of `model`.
async fn open_backend(
    plan: &EvalPlan,
    ctx: &Context,
    model: &ModelInfo,
    cancel: &CancelFlag,
) -> Result<Box<dyn Backend>, ExperimentError> {
    match &plan.models {
        EvalModels::Embedded(_, spec) => {
            ctx.events.event(Event::Info(format!(
                "loading {} ({} {}, {} threads)",
                model.name, model.format, model.quantization, spec.threads
            )));
            ctx.engine
                .load(model, spec, cancel)
                .await
                .map_err(ExperimentError::Engine)
        }
        EvalModels::Endpoint {
            template,
            concurrency,
            ..
        } => {
            let mut cfg = super::targets::http_config_for(template, &model.name);
            cfg.eval_concurrency = *concurrency;
            Ok(Box::new(OpenAiTarget::new(cfg)?))
        }
    }
}

/// The state of an eval from task to task.
struct EvalRun<'a> {
    plan: &'a EvalPlan,
    ctx: &'a Context,
    exp: &'a mut Experiment,
    config_hash: &'a str,
    stamp: String,
    summaries: Vec<EvalSummary>,
    failures: usize,
    written: Vec<PathBuf>,
}

impl EvalRun<'_> {
    async fn models(
        &mut self,
        models: &[ModelInfo],
        record: &mut ExperimentConfig,
    ) -> Result<(), ExperimentError> {
        for model in models {
            let units = self.exp.units()?;
            let pending: Vec<&str> = self
                .plan
                .tasks
                .iter()
                .copied()
                .filter(|t| {
                    units
                        .iter()
                        .any(|u| u.key == UnitKey::new(model, t) && u.status != "done")
                })
                .collect();
            for u in units
                .iter()
                .filter(|u| u.key.is_model(model) && u.status == "done")
            {
                if let Some(s) = u
                    .report_json
                    .as_deref()
                    .and_then(|j| serde_json::from_str(j).ok())
                {
                    self.summaries.push(s);
                }
            }
            if pending.is_empty() {
                continue;
            }
            let backend = open_backend(self.plan, self.ctx, model, &self.ctx.cancel).await?;
            if let Some(setup) = record
                .models
                .iter_mut()
                .find(|s| s.model.path == model.path)
            {
                setup.target = backend.info();
                self.exp.save_config(record)?;
            }
            for task in pending {
                let key = UnitKey::new(model, task);
                let unit_id = units
                    .iter()
                    .find(|u| u.key == key)
                    .map(|u| u.id)
                    .ok_or_else(|| ExperimentError::Plan(format!("unit {key} is missing")))?;
                match self
                    .task(model, task, &key, unit_id, backend.as_ref())
                    .await
                {
                    Ok(()) => {}
                    Err(ExperimentError::Eval(
                        e @ (EvalError::Data(_)
                        | EvalError::Usage(_)
                        | EvalError::TaskFile { .. }
                        | EvalError::Sandbox(_)),
                    )) => {
                        // Bad input: stop here.
                        self.exp.store.fail_unit(unit_id, &e.to_string())?;
                        return Err(ExperimentError::Eval(e));
                    }
                    Err(ExperimentError::Eval(e)) => {
                        // The task failed on this model; the others still run.
                        self.exp.store.fail_unit(unit_id, &e.to_string())?;
                        self.ctx.events.event(Event::UnitFailed {
                            key,
                            error: format!("{task} on {}: {e}", model.name),
                        });
                        self.exp.snapshot();
                        self.failures += 1;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// Runs one task on one model.
    async fn task(
        &mut self,
        model: &ModelInfo,
        task: &str,
        key: &UnitKey,
        unit_id: i64,
        backend: &dyn Backend,
    ) -> Result<(), ExperimentError> {
        let events = self.ctx.events.as_ref();
        self.exp.store.continue_unit(unit_id)?;
        let done: HashMap<String, ItemResult> = self
            .exp
            .store
            .eval_items(unit_id)?
            .into_iter()
            .filter_map(|(id, j)| serde_json::from_str(&j).ok().map(|r| (id, r)))
            .collect();
        if !done.is_empty() {
            events.event(Event::Info(format!(
                "{task}: {} items already scored",
                done.len()
            )));
        }
        events.event(Event::UnitStarted {
            key: key.clone(),
            work: 0,
        });
        let store = &mut self.exp.store;
        let mut commit = |items: &[ItemResult]| -> Result<(), String> {
            let rows: Vec<(String, String)> = items
                .iter()
                .map(|i| Ok((i.id.clone(), serde_json::to_string(i)?)))
                .collect::<Result<_, serde_json::Error>>()
                .map_err(|e| e.to_string())?;
            store
                .add_eval_items(unit_id, &rows)
                .map_err(|e| e.to_string())
        };
        let progress = |d: usize, t: usize| {
            events.event(Event::ItemsScored {
                key: key.clone(),
                done: d as u64,
                total: t as u64,
            })
        };
        let settle = self.plan.settle.as_ref().map(settle::settle);
        if let Some(w) = settle.as_ref().and_then(|r| r.warning()) {
            events.event(Event::Warning(format!("{task}: {w}")));
        }
        let mon = Monitor::start(backend.info().pid, self.plan.monitor_interval, Clock::new());
        let cancel = self.ctx.cancel.clone();
        let is_cancelled = move || cancel.is_cancelled();
        let mut sink = Sink {
            commit: &mut commit,
            progress: &progress,
            cancelled: &is_cancelled,
        };
        let outcome = tasks::run_task(task, backend, &self.plan.options, &done, &mut sink).await;
        let (samples, cost) = mon.finish();
        let outcome = outcome?;
        let mut usage = monitor::summarize(&samples);
        usage.sampler_cpu_percent_of_core = cost.percent_of_core();
        usage.energy_source = Some(cost.energy_source);
        let seed = self.plan.options.seed;
        let (scores, confusions) = tasks::scores(&outcome, seed);
        let summary = EvalSummary {
            experiment_id: self.exp.id().to_string(),
            created: self.exp.row.created.clone(),
            config_hash: self.config_hash.to_string(),
            task: task.to_string(),
            method: outcome.method.clone(),
            model: model.clone(),
            target: backend.info(),
            environment: self.plan.environment.clone(),
            seed,
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
        let path = self.plan.results_dir.join(format!(
            "eval_{task}_{}_{}.json",
            file_model_name(model),
            self.stamp
        ));
        let json =
            serde_json::to_vec_pretty(&summary).map_err(|e| ExperimentError::io(&path, e))?;
        atomic_write(&path, &json).map_err(|e| ExperimentError::io(&path, e))?;
        // The bank study's readers look for `realistic_*.json`: the same document under that
        // name too (the eval_ file stays the one the reader loads).
        if task == "realistic" {
            let alias = self.plan.results_dir.join(format!(
                "realistic_{}_{}.json",
                file_model_name(model),
                self.stamp
            ));
            atomic_write(&alias, &json).map_err(|e| ExperimentError::io(&alias, e))?;
            self.written.push(alias);
        }
        self.exp.store.finish_unit_report(
            unit_id,
            &String::from_utf8_lossy(&json),
            Some(&path),
            &samples,
        )?;
        events.event(Event::UnitDone {
            key: key.clone(),
            file: Some(path.clone()),
            line: Some(render_line(&summary)),
        });
        self.exp.snapshot();
        self.written.push(path);
        self.summaries.push(summary);
        Ok(())
    }
}

/// One line per task: the scores with their CIs, items and speed.
pub fn render_line(s: &EvalSummary) -> String {
    let scores: Vec<String> = s
        .scores
        .iter()
        .map(|(k, v)| match (v.ci_low, v.ci_high) {
            (Some(lo), Some(hi)) => format!("{k} {:.3} [{lo:.3}, {hi:.3}]", v.value),
            _ => format!("{k} {:.3}", v.value),
        })
        .collect();
    let mut line = format!(
        "{} · {} ({}, n={} of {}): {} · {:.2} items/s",
        s.task,
        s.model.name,
        s.method_in_setting(),
        s.items,
        s.items_total,
        scores.join(", "),
        s.items_per_s
    );
    if let Some(sb) = &s.sandbox {
        line.push_str(&format!(
            "\n  sandbox: {} isolation; {}; {} program(s): {} timed out, {} stopped by a limit, {} with suspicious code",
            sb.isolation, sb.memory_cap, sb.programs_run, sb.timeouts, sb.limit_kills, sb.suspicious_code
        ));
    }
    line
}
