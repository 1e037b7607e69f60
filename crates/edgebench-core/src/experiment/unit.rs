//! One unit of a run: its requests committed to the store as they end (the last with the
//! unit's completion), the server's figures around its measured phase, its summary, and its
//! JSONL export read back from the store.

use std::path::PathBuf;
use std::sync::Mutex;

use super::perf::RunState;
use super::snapshots::Snapshots;
use super::{BackendSpec, Event, ExperimentError};
use crate::backend::server_metrics::Scraper;
use crate::backend::TargetInfo;
use crate::catalog::ModelInfo;
use crate::metrics::{self, UnitContext};
use crate::record::RequestRecord;
use crate::results::{self, atomic_write, perf_file_name, PerfLine, UnitKey, UnitReport};
use crate::runner::{self, RunEvent};

impl RunState<'_> {
    /// Runs one unit: its requests committed as they end (the last with the unit's
    /// completion), the server's figures around its measured phase, its export read back from
    /// the store. Returns its summary and export path.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn run_unit(
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
        let progress = &self.progress;
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
                    let progress = progress
                        .lock()
                        .map_err(|_| "progress lock poisoned".to_string())?
                        .request_done(&unit.scenario.name);
                    events.event(Event::RequestDone {
                        key: key.clone(),
                        line: Box::new(l),
                        progress,
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
            log_pattern_counts_since_launch: figures.log_pattern_counts_since_launch,
            server_warnings: figures.server_warnings,
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
