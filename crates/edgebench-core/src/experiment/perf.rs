//! A performance experiment (`edgebench run`): every unfinished unit of every model, each
//! request committed to the store as it ends, the unit's export read back from the store, the
//! run summary and the experiment config written atomically.

use std::path::PathBuf;
use std::time::Duration;

use super::lifecycle::finished;
use super::targets::{self, open_target, planned_info, same_model};
use super::{BackendSpec, Context, Event, Experiment, ExperimentError, ExperimentStart, Resume};
use crate::backend::managed::ManagedServer;
use crate::backend::openai::HttpConfig;
use crate::backend::TargetInfo;
use crate::catalog::ModelInfo;
use crate::clock::Clock;
use crate::repro::Environment;
use crate::results::{
    self, atomic_write, file_timestamp, ExperimentConfig, ModelSetup, RunSummary, UnitKey,
};
use crate::runner::{self, RunPlan};
use crate::workload::sweep::SweepState;
use crate::workload::{Scenario, ScenarioFile};

use super::profile::{self, Profile};

/// Which models a run measures.
#[derive(Debug, Clone)]
pub enum Models {
    /// Models already resolved, each with its backend (embedded files, the mock).
    Given(Vec<(ModelInfo, BackendSpec)>),
    /// The models of an OpenAI-compatible server: these ids (none: what it serves), each with
    /// `template` (timeouts, API, key, tokenizer) and its model id.
    Endpoint {
        template: Box<HttpConfig>,
        ids: Vec<String>,
    },
}

/// A server the run starts, waits for, and stops (`--serve`).
#[derive(Debug, Clone)]
pub struct ServeSpec {
    pub command: String,
    /// The server's base URL (its `/models` is the health check).
    pub base_url: String,
    pub log_patterns: Vec<String>,
    pub timeout: Duration,
}

/// Everything a run needs, validated.
#[derive(Debug, Clone)]
pub struct PerfPlan {
    pub run: RunPlan,
    /// A quick run: the full protocol it stands in for (to estimate and print at the end).
    pub full: Option<FullProtocol>,
    /// The scenarios file, with any sweep expanded.
    pub file: ScenarioFile,
    /// The selected scenarios, in order.
    pub scenarios: Vec<Scenario>,
    /// "built-in" or the scenarios file's path.
    pub scenarios_source: String,
    pub models: Models,
    pub serve: Option<ServeSpec>,
    pub results_dir: PathBuf,
    /// Another store than the results folder's `edgebench.db` (`--store URL`).
    pub store: Option<crate::store::StoreLocation>,
    pub no_checkpoint: bool,
    pub resume: Resume,
    /// The command line, for the resume hint.
    pub command: String,
    pub environment: Environment,
    /// The request the plan was built from, kept with the experiment (see
    /// [`super::request::latest_unfinished`]).
    pub request: Option<super::request::RunRequest>,
    /// Embedded models that will not fit in memory are skipped unless forced.
    pub fit: super::fit::FitPolicy,
}

/// The full protocol a quick run stands in for.
#[derive(Debug, Clone)]
pub struct FullProtocol {
    pub plan: RunPlan,
    pub scenarios: Vec<Scenario>,
    /// The command that runs it.
    pub command: String,
}

/// What a finished run leaves.
#[derive(Debug, Clone)]
pub struct PerfOutcome {
    pub summary: RunSummary,
    /// Files written, in order.
    pub written: Vec<PathBuf>,
    /// The checkpoint summary (progress, failures, how to resume).
    pub checkpoint: String,
    /// After a quick run: the command of the full protocol and how long it would take here.
    pub next: Option<String>,
}

/// Runs the plan to its files. Errors after measuring started leave the experiment resumable
/// (interrupted or failed); errors before leave nothing this invocation created.
pub async fn run(plan: PerfPlan, ctx: &Context) -> Result<PerfOutcome, ExperimentError> {
    let started = time::OffsetDateTime::now_utc();
    let events = ctx.events.as_ref();
    if let Some(p) = plan.run.profile {
        events.event(Event::Info(p.describe()));
    }
    let mut server = match &plan.serve {
        Some(s) => {
            let log = plan
                .results_dir
                .join(format!("server_{}.log", file_timestamp(started)));
            events.event(Event::Info(format!("starting server: {}", s.command)));
            // Ctrl-C while the server starts stops the start (the server is killed on drop).
            let health = format!("{}/models", s.base_url);
            let srv = tokio::select! {
                srv = ManagedServer::start(
                    &s.command,
                    &health,
                    &s.log_patterns,
                    &log,
                    s.timeout,
                ) => srv?,
                _ = ctx.cancel.cancelled() => return Err(ExperimentError::Interrupted),
            };
            events.event(Event::Info(format!(
                "server healthy after {:.0} ms (pid {}, log {})",
                srv.facts.launch_to_healthy_ms,
                srv.facts.pid,
                log.display()
            )));
            Some(srv)
        }
        None => None,
    };
    let outcome = run_with_server(&plan, ctx, started, &mut server).await;
    if let Some(s) = &mut server {
        s.stop(Duration::from_secs(15));
    }
    let mut outcome = outcome?;
    if let Some(s) = &server {
        outcome.written.push(s.facts.log_file.clone());
    }
    Ok(outcome)
}

/// The embedded models that fit in memory (all of them with `--force`), each one left out told
/// why; none left is a plan error, before anything is created.
fn fitting(
    plan: &PerfPlan,
    models: Vec<(ModelInfo, BackendSpec)>,
    events: &dyn super::EventSink,
) -> Result<Vec<(ModelInfo, BackendSpec)>, ExperimentError> {
    use super::fit;
    let mut budget = plan.fit.budget_mb;
    let mut kept = Vec::with_capacity(models.len());
    let mut skipped = Vec::new();
    for (m, b) in models {
        let BackendSpec::Embedded(spec) = &b else {
            kept.push((m, b));
            continue;
        };
        let ctx_tokens = fit::context_needed(&plan.scenarios, plan.run.max_tokens, spec.ctx_size);
        let need = fit::need(&m, ctx_tokens);
        let budget_mb = *budget.get_or_insert_with(fit::available_mb);
        if need.total_mb() <= budget_mb {
            kept.push((m, b));
            continue;
        }
        let line = fit::verdict(&m, &need, budget_mb, plan.fit.force);
        events.event(Event::Warning(line.clone()));
        if plan.fit.force {
            kept.push((m, b));
        } else {
            skipped.push(line);
        }
    }
    if kept.is_empty() && !skipped.is_empty() {
        return Err(ExperimentError::Plan(format!(
            "force: no model fits in memory ({})",
            skipped.join("; ")
        )));
    }
    Ok(kept)
}

async fn run_with_server(
    plan: &PerfPlan,
    ctx: &Context,
    started: time::OffsetDateTime,
    server: &mut Option<ManagedServer>,
) -> Result<PerfOutcome, ExperimentError> {
    let events = ctx.events.as_ref();
    let models: Vec<(ModelInfo, BackendSpec)> = match &plan.models {
        Models::Given(m) => m.clone(),
        Models::Endpoint { template, ids } => tokio::select! {
            m = targets::http_models(template, ids, events) => m?,
            _ = ctx.cancel.cancelled() => return Err(ExperimentError::Interrupted),
        }
        .into_iter()
        .map(|(m, c)| (m, BackendSpec::Http(Box::new(c))))
        .collect(),
    };
    let models = fitting(plan, models, events)?;
    // Interrupted before anything was created: nothing to resume.
    if ctx.cancel.is_cancelled() {
        return Err(ExperimentError::Interrupted);
    }
    // The configuration and its hash (what decides the results, not the machine or the time).
    let mut setups: Vec<ModelSetup> = models
        .iter()
        .map(|(m, b)| ModelSetup {
            model: m.clone(),
            target: planned_info(b, ctx.engine.as_ref()),
        })
        .collect();
    let passages_sha256 = plan.file.passages_sha256();
    let config_hash = results::config_hash(&plan.run, &plan.scenarios, &passages_sha256, &setups)
        .map_err(|e| ExperimentError::Plan(e.to_string()))?;
    let mut exp = Experiment::start(
        &ExperimentStart {
            results_dir: plan.results_dir.clone(),
            store: plan.store.clone(),
            no_checkpoint: plan.no_checkpoint,
            resume: plan.resume.clone(),
            kind: "perf".into(),
            id_prefix: String::new(),
            config_hash: config_hash.clone(),
            config_json: String::new(),
            command: plan.command.clone(),
            started,
        },
        &plan.environment,
        events,
    )?;
    // Earlier invocations of a resumed experiment recorded the targets they loaded.
    if let Ok(prev) = serde_json::from_str::<ExperimentConfig>(&exp.row.config_json) {
        for s in &mut setups {
            if let Some(p) = prev
                .models
                .iter()
                .find(|p| p.model.path == s.model.path && p.model.name == s.model.name)
            {
                s.target = p.target.clone();
            }
        }
    }
    let keys: Vec<UnitKey> = models
        .iter()
        .flat_map(|(m, _)| plan.scenarios.iter().map(move |s| UnitKey::new(m, &s.name)))
        .collect();
    exp.ensure_units(&keys)?;
    let mut config = ExperimentConfig {
        experiment_id: exp.id().to_string(),
        created: exp.row.created.clone(),
        config_hash: config_hash.clone(),
        environment: plan.environment.clone(),
        plan: plan.run.clone(),
        scenarios_source: plan.scenarios_source.clone(),
        scenarios: plan.scenarios.clone(),
        passages_sha256,
        models: setups.clone(),
        eval: None,
        request: plan
            .request
            .as_ref()
            .and_then(|r| serde_json::to_value(r).ok()),
    };
    let mut written: Vec<PathBuf> = Vec::new();
    let clock = Clock::new();
    // The units this invocation runs, each with its requests (unknown for fixed durations).
    let pending = exp.units()?;
    let per_unit = plan
        .run
        .duration_s
        .is_none()
        .then(|| u64::from(plan.run.warmup + plan.run.runs));
    let tracker = super::progress::Tracker::new(
        pending
            .iter()
            .filter(|u| !finished(u))
            .filter_map(|u| plan.scenarios.iter().find(|s| s.name == u.key.scenario))
            .map(|s| (s, per_unit)),
    );
    let mut state = RunState {
        plan,
        ctx,
        exp: &mut exp,
        config: &mut config,
        setups: &mut setups,
        server,
        clock: &clock,
        written: &mut written,
        progress: std::sync::Mutex::new(tracker),
    };
    let outcome = state.run_models(&models).await;
    match outcome {
        Ok(()) => {}
        Err(e) => return Err(exp.stop(e, events, true)),
    }
    // The summary, from the store (units of earlier invocations included).
    let units = exp.units()?;
    config.models = setups.clone();
    let summary = RunSummary::from_units(exp.id(), &config, &units);
    let summary_path = plan.results_dir.join(format!("summary_{}.json", exp.id()));
    let bytes =
        serde_json::to_vec_pretty(&summary).map_err(|e| ExperimentError::Plan(e.to_string()))?;
    atomic_write(&summary_path, &bytes).map_err(|e| ExperimentError::io(&summary_path, e))?;
    written.push(summary_path);
    exp.set_status("done")?;
    let checkpoint = exp.checkpoint_summary()?;
    events.event(Event::Finished {
        experiment_id: exp.id().to_string(),
        status: "done".into(),
        checkpoint: checkpoint.clone(),
    });
    let next = plan.full.as_ref().map(|full| {
        let took = profile::estimate(&summary, &full.plan, &full.scenarios)
            .map_or_else(String::new, |d| {
                format!(", about {} on this machine (estimated from this run)", profile::human(d))
            });
        format!(
            "{}\nthe full protocol ({} measured requests per scenario after {} warm-ups){took}:\n  {}",
            Profile::Quick.describe(),
            full.plan.runs,
            full.plan.warmup,
            full.command
        )
    });
    Ok(PerfOutcome {
        summary,
        written,
        checkpoint,
        next,
    })
}

/// The state a run carries from model to model.
pub(super) struct RunState<'a> {
    pub(super) plan: &'a PerfPlan,
    pub(super) ctx: &'a Context,
    pub(super) exp: &'a mut Experiment,
    pub(super) config: &'a mut ExperimentConfig,
    pub(super) setups: &'a mut Vec<ModelSetup>,
    pub(super) server: &'a mut Option<ManagedServer>,
    pub(super) clock: &'a Clock,
    pub(super) written: &'a mut Vec<PathBuf>,
    /// Requests done and the time left, over every unit of this invocation.
    pub(super) progress: std::sync::Mutex<super::progress::Tracker>,
}

impl RunState<'_> {
    /// Writes the experiment config with what the targets told so far.
    pub(super) fn save_config(&mut self) -> Result<(), ExperimentError> {
        self.config.models = self.setups.clone();
        self.exp.save_config(self.config)?;
        Ok(())
    }

    /// Runs every unfinished unit of every model.
    async fn run_models(
        &mut self,
        models: &[(ModelInfo, BackendSpec)],
    ) -> Result<(), ExperimentError> {
        self.save_config()?;
        for (i, (model, backend)) in models.iter().enumerate() {
            let rows = self.exp.units()?;
            let pending: Vec<&str> = rows
                .iter()
                .filter(|u| u.key.is_model(model) && !finished(u))
                .map(|u| u.key.scenario.as_str())
                .collect();
            if pending.is_empty() {
                continue;
            }
            let events = self.ctx.events.as_ref();
            let target = open_target(
                model,
                backend,
                self.ctx.engine.as_ref(),
                &self.ctx.cancel,
                events,
            )
            .await?;
            let mut info = target.info();
            if let Some(s) = self.server.as_ref() {
                info.launch = Some(s.facts.clone());
            }
            if let Some(si) = &info.system_info {
                events.event(Event::Info(format!("llama.cpp: {si}")));
            }
            let todo: Vec<&Scenario> = self
                .plan
                .scenarios
                .iter()
                .filter(|s| pending.contains(&s.name.as_str()))
                .collect();
            let units = runner::prepare(
                &self.plan.run,
                &self.plan.file,
                &todo,
                target.as_ref(),
                &model.name,
            )
            .await?;
            self.setups[i].target = info.clone();
            self.save_config()?;
            // Sweeps: the best output throughput so far per swept scenario, and why a sweep
            // stopped. A resumed sweep goes on from the steps already done.
            let mut sweeps = SweepState::default();
            for row in rows
                .iter()
                .filter(|u| u.key.is_model(model) && u.status == "done")
            {
                let Some(sc) = self
                    .plan
                    .scenarios
                    .iter()
                    .find(|s| s.name == row.key.scenario)
                else {
                    continue;
                };
                if let (Some(base), Some(report)) = (&sc.sweep_of, &row.report) {
                    sweeps.observe(base, sc.concurrency.unwrap_or(1), &report.summary);
                }
            }
            for unit in &units {
                let key = UnitKey::new(model, &unit.scenario.name);
                let unit_id = rows
                    .iter()
                    .find(|u| u.key == key)
                    .map(|u| u.id)
                    .ok_or_else(|| {
                        ExperimentError::Plan(format!("unit {key} is not in the store"))
                    })?;
                let work = (unit.warmup.len() + unit.measured.len()) as u64;
                if let Some(why) = unit
                    .scenario
                    .sweep_of
                    .as_ref()
                    .and_then(|b| sweeps.stopped(b))
                {
                    self.exp.store.skip_unit(unit_id, why)?;
                    events.event(Event::UnitSkipped {
                        key,
                        reason: why.to_string(),
                    });
                    self.exp.snapshot();
                    continue;
                }
                self.exp.store.start_unit(unit_id)?;
                events.event(Event::UnitStarted {
                    key: key.clone(),
                    work,
                });
                let out = self
                    .run_unit(
                        unit_id,
                        &key,
                        model,
                        backend,
                        target.as_ref(),
                        &mut info,
                        unit,
                        i,
                    )
                    .await?;
                let (summary, report_path) = (out.0, out.1);
                if let Some(base) = &unit.scenario.sweep_of {
                    let level = unit.scenario.concurrency.unwrap_or(1);
                    if let Some(why) = sweeps.observe(base, level, &summary) {
                        events.event(Event::Info(format!(
                            "sweep {} × {base}: stopping after concurrency {level}: {why}",
                            model.name
                        )));
                    }
                }
                self.written.push(report_path.clone());
                events.event(Event::UnitDone {
                    key,
                    file: Some(report_path),
                    line: None,
                });
                self.exp.snapshot();
            }
            // What the target learnt while running (the model ids a server answered with).
            let learnt = target.info();
            if let (BackendSpec::Http(c), Some(srv)) = (backend, &learnt.server) {
                let other: Vec<&String> = srv
                    .served_models
                    .iter()
                    .filter(|m| !same_model(m, &c.model))
                    .collect();
                if !other.is_empty() {
                    events.event(Event::Warning(format!(
                        "requested model {:?} but {} answered as {}; check that the server serves the model you mean",
                        c.model,
                        c.base_url,
                        other.iter().map(|m| format!("{m:?}")).collect::<Vec<_>>().join(", ")
                    )));
                }
            }
            self.setups[i].target = TargetInfo {
                launch: info.launch.clone(),
                ..learnt
            };
            self.save_config()?;
        }
        Ok(())
    }
}
