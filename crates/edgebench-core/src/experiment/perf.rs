//! A performance experiment (`edgebench run`): every unfinished unit of every model, each
//! request committed to the store as it ends, the unit's export read back from the store, the
//! run summary and the experiment config written atomically.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use super::lifecycle::finished;
use super::snapshots::Snapshots;
use super::targets::{self, open_target, planned_info, same_model};
use super::{BackendSpec, Context, Event, Experiment, ExperimentError, ExperimentStart, Resume};
use crate::backend::managed::ManagedServer;
use crate::backend::openai::HttpConfig;
use crate::backend::server_metrics::Scraper;
use crate::backend::TargetInfo;
use crate::catalog::ModelInfo;
use crate::clock::Clock;
use crate::metrics::{self, UnitContext};
use crate::record::RequestRecord;
use crate::repro::Environment;
use crate::results::{
    self, atomic_write, file_timestamp, perf_file_name, ExperimentConfig, ModelReport, ModelSetup,
    PerfLine, RunSummary, UnitKey, UnitReport,
};
use crate::runner::{self, RunEvent, RunPlan};
use crate::workload::sweep::{self, SweepState, SweepStep};
use crate::workload::{Scenario, ScenarioFile};

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
    /// The scenarios file, with any sweep expanded.
    pub file: ScenarioFile,
    /// The selected scenarios, in order.
    pub scenarios: Vec<Scenario>,
    /// "built-in" or the scenarios file's path.
    pub scenarios_source: String,
    pub models: Models,
    pub serve: Option<ServeSpec>,
    pub results_dir: PathBuf,
    pub no_checkpoint: bool,
    pub resume: Resume,
    /// The command line, for the resume hint.
    pub command: String,
    pub environment: Environment,
}

/// What a finished run leaves.
#[derive(Debug, Clone)]
pub struct PerfOutcome {
    pub summary: RunSummary,
    /// Files written, in order.
    pub written: Vec<PathBuf>,
    /// The checkpoint summary (progress, failures, how to resume).
    pub checkpoint: String,
}

/// Runs the plan to its files. Errors after measuring started leave the experiment resumable
/// (interrupted or failed); errors before leave nothing this invocation created.
pub async fn run(plan: PerfPlan, ctx: &Context) -> Result<PerfOutcome, ExperimentError> {
    let started = time::OffsetDateTime::now_utc();
    let events = ctx.events.as_ref();
    let mut server = match &plan.serve {
        Some(s) => {
            let log = plan
                .results_dir
                .join(format!("server_{}.log", file_timestamp(started)));
            events.event(Event::Info(format!("starting server: {}", s.command)));
            let srv = ManagedServer::start(
                &s.command,
                &format!("{}/models", s.base_url),
                &s.log_patterns,
                &log,
                s.timeout,
            )
            .await?;
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

async fn run_with_server(
    plan: &PerfPlan,
    ctx: &Context,
    started: time::OffsetDateTime,
    server: &mut Option<ManagedServer>,
) -> Result<PerfOutcome, ExperimentError> {
    let events = ctx.events.as_ref();
    let models: Vec<(ModelInfo, BackendSpec)> = match &plan.models {
        Models::Given(m) => m.clone(),
        Models::Endpoint { template, ids } => targets::http_models(template, ids, events)
            .await?
            .into_iter()
            .map(|(m, c)| (m, BackendSpec::Http(Box::new(c))))
            .collect(),
    };
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
            if let Some(p) = prev.models.iter().find(|p| p.model.path == s.model.path) {
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
    };
    let mut written: Vec<PathBuf> = Vec::new();
    let clock = Clock::new();
    let mut state = RunState {
        plan,
        ctx,
        exp: &mut exp,
        config: &mut config,
        setups: &mut setups,
        server,
        clock: &clock,
        written: &mut written,
    };
    let outcome = state.run_models(&models).await;
    match outcome {
        Ok(()) => {}
        Err(e) => return Err(stop(exp, e, events, true)),
    }
    // The summary, from the store (units of earlier invocations included).
    let units = exp.units()?;
    let reports: Vec<ModelReport> = models
        .iter()
        .zip(&setups)
        .map(|((m, _), setup)| ModelReport {
            model: m.clone(),
            target: setup.target.clone(),
            units: units
                .iter()
                .filter(|u| u.key.is_model(m))
                .filter_map(|u| u.report.clone())
                .collect(),
        })
        .collect();
    let sweep: Vec<SweepStep> = reports
        .iter()
        .flat_map(|m| &m.units)
        .filter_map(|u| {
            let sc = plan
                .scenarios
                .iter()
                .find(|s| s.name == u.summary.scenario)?;
            Some(sweep::step_row(
                sc.sweep_of.as_deref()?,
                sc.concurrency?,
                &u.summary,
            ))
        })
        .collect();
    let summary = RunSummary {
        run_id: exp.id().to_string(),
        config_hash,
        started: config.created.clone(),
        environment: plan.environment.clone(),
        plan: plan.run.clone(),
        models: reports,
        sweep,
    };
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
    Ok(PerfOutcome {
        summary,
        written,
        checkpoint,
    })
}

/// Marks the experiment as it stopped (interrupted or failed) and tells the observers; returns
/// the error to report. With `discard_untouched`, a new experiment that failed before anything
/// was measured (bad input found while preparing) is removed instead, files and all.
pub(super) fn stop(
    exp: Experiment,
    e: ExperimentError,
    events: &dyn super::EventSink,
    discard_untouched: bool,
) -> ExperimentError {
    let interrupted = matches!(e, ExperimentError::Interrupted);
    let id = exp.id().to_string();
    if discard_untouched && !interrupted {
        match exp.untouched() {
            Ok(true) => {
                let r = exp.discard();
                events.event(Event::Finished {
                    experiment_id: id,
                    status: "discarded".into(),
                    checkpoint: String::new(),
                });
                return match r {
                    Ok(()) => e,
                    Err(other) => other,
                };
            }
            Ok(false) => {}
            Err(other) => return other,
        }
    }
    let status = if interrupted { "interrupted" } else { "failed" };
    if let Err(other) = exp.set_status(status) {
        return other;
    }
    events.event(Event::Finished {
        experiment_id: id,
        status: status.into(),
        checkpoint: exp.checkpoint_summary().unwrap_or_default(),
    });
    e
}

/// The state a run carries from model to model.
struct RunState<'a> {
    plan: &'a PerfPlan,
    ctx: &'a Context,
    exp: &'a mut Experiment,
    config: &'a mut ExperimentConfig,
    setups: &'a mut Vec<ModelSetup>,
    server: &'a mut Option<ManagedServer>,
    clock: &'a Clock,
    written: &'a mut Vec<PathBuf>,
}

impl RunState<'_> {
    /// Writes the experiment config with what the targets told so far.
    fn save_config(&mut self) -> Result<(), ExperimentError> {
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

    /// Runs one unit: its requests committed as they end (the last with the unit's
    /// completion), the server's figures around its measured phase, its export read back from
    /// the store. Returns its summary and export path.
    #[allow(clippy::too_many_arguments)]
    async fn run_unit(
        &mut self,
        unit_id: i64,
        key: &UnitKey,
        model: &ModelInfo,
        backend: &BackendSpec,
        target: &dyn crate::backend::Target,
        info: &mut TargetInfo,
        unit: &runner::PreparedUnit,
        model_index: usize,
    ) -> Result<(metrics::UnitSummary, PathBuf), ExperimentError> {
        let plan = self.plan;
        let run_id = self.exp.id().to_string();
        let config_hash = self.config.config_hash.clone();
        let line = |r: &RequestRecord| PerfLine {
            run_id: run_id.clone(),
            config_hash: config_hash.clone(),
            model: model.name.clone(),
            publisher: model.publisher.clone(),
            format: model.format.clone(),
            quantization: model.quantization.clone(),
            scenario: unit.scenario.name.clone(),
            target: info.kind.clone(),
            metrics: metrics::derive(r),
            json_valid: unit
                .scenario
                .json
                .then(|| r.ok() && metrics::is_valid_json_object(&r.output_text)),
            record: r.clone(),
        };
        // The server's own /metrics (vLLM, llama-server --metrics, TGI), when it has them, and
        // its log-pattern counts, taken when the warm-ups are done.
        let scraper = match backend {
            BackendSpec::Http(c) => Some(Scraper::new(&c.base_url)),
            _ => None,
        };
        let snapshots = Snapshots::new(self.server.as_ref(), scraper.as_ref());
        // Every request is committed as it finishes, except the unit's last, which is
        // committed with the unit's completion.
        let events = self.ctx.events.as_ref();
        let shared = Mutex::new((&mut self.exp.store, None::<PerfLine>));
        let on_event = |e: RunEvent| -> Result<(), String> {
            match e {
                RunEvent::UnitStarted { .. } => Ok(()),
                RunEvent::RequestDone { record, last, .. } => {
                    let l = line(&record);
                    let mut g = shared
                        .lock()
                        .map_err(|_| "store lock poisoned".to_string())?;
                    let r = if last {
                        g.1 = Some(l.clone());
                        Ok(())
                    } else {
                        g.0.add_request(unit_id, &l).map_err(|e| e.to_string())
                    };
                    drop(g);
                    events.event(Event::RequestDone {
                        key: key.clone(),
                        line: Box::new(l),
                    });
                    r
                }
            }
        };
        let result = runner::run_unit(
            &plan.run,
            unit,
            target,
            &model.name,
            self.clock,
            &self.ctx.cancel,
            &on_event,
            Some(&snapshots),
        )
        .await;
        // The server's figures only for a unit that ended well (an interrupted or failed one
        // reports at once).
        let figures = if result.is_ok() {
            snapshots.figures().await
        } else {
            Default::default()
        };
        let last = shared
            .into_inner()
            .map_err(|_| ExperimentError::Plan("store lock poisoned".into()))?
            .1;
        let out = match result {
            Ok(o) => o,
            Err(runner::RunError::Interrupted) => return Err(ExperimentError::Interrupted),
            Err(e) => {
                // The error itself ends the run; the unit keeps it for the checkpoint summary.
                self.exp.store.fail_unit(unit_id, &e.to_string())?;
                return Err(e.into());
            }
        };
        if let (Some(s), Some(first)) = (self.server.as_mut(), out.records.first()) {
            if s.facts.launch_to_first_token_ms.is_none() {
                if let Some(c) = first.chunks.first() {
                    let spawned = self.clock.ns(s.spawned()) as f64;
                    s.facts.launch_to_first_token_ms = Some((c.t_ns as f64 - spawned) / 1e6);
                    info.launch = Some(s.facts.clone());
                    self.setups[model_index].target = info.clone();
                    self.save_config()?;
                }
            }
        }
        let summary = metrics::summarize_unit(
            &out.records,
            &UnitContext {
                model: &model.name,
                scenario: &unit.scenario.name,
                json: unit.scenario.json,
                peak_rss_mb: out.monitor.peak_rss_mb,
                duration_s: out.duration.as_secs_f64(),
                seed: plan.run.seed,
            },
        );
        let path = plan
            .results_dir
            .join(perf_file_name(model, &unit.scenario.name, &run_id));
        if let Some(w) = out.settle.as_ref().and_then(|r| r.warning()) {
            events.event(Event::Warning(format!(
                "{} × {}: {w}",
                model.name, unit.scenario.name
            )));
        }
        let unit_report = UnitReport {
            summary: summary.clone(),
            monitor: out.monitor,
            context_tokens: out.context_tokens,
            log_pattern_counts: figures.log_pattern_counts,
            file: Some(path.clone()),
            settle: out.settle.clone(),
            server_metrics: figures.server_metrics,
        };
        // The unit is done in the store (with its last request) before its export is written,
        // and the export is read back from the store: the file never holds a request the store
        // does not.
        self.exp
            .store
            .finish_unit(unit_id, last.as_ref(), &out.samples, &unit_report)?;
        let lines = self.exp.store.requests(unit_id)?;
        let bytes = results::jsonl(&lines).map_err(|e| ExperimentError::io(&path, e))?;
        atomic_write(&path, &bytes).map_err(|e| ExperimentError::io(&path, e))?;
        Ok((summary, path))
    }
}
