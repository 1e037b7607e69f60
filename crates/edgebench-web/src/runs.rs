//! The one experiment the server runs at a time: started through the library's experiment (the
//! code path `edgebench run` uses), its events kept for late subscribers and broadcast live, and
//! its cancellation.

use std::sync::{Arc, Mutex};

use edgebench_core::experiment::eval::{self, EvalPlan};
use edgebench_core::experiment::perf::{self, PerfPlan};
use edgebench_core::experiment::{CancelFlag, Context, EngineLoader, Event, EventSink};
use serde_json::{json, Value};
use tokio::sync::broadcast;

/// One run started from the web UI.
pub struct Run {
    pub id: String,
    pub cancel: CancelFlag,
    /// Every event so far, as the JSON the page receives.
    history: Mutex<Vec<Value>>,
    live: broadcast::Sender<Value>,
    /// Set once the run has ended.
    done: Mutex<bool>,
}

impl Run {
    /// The events so far and a receiver for the ones to come (none once the run ended).
    pub fn subscribe(&self) -> (Vec<Value>, Option<broadcast::Receiver<Value>>) {
        // Take the history and subscribe under one lock, so no event falls between.
        let Ok(history) = self.history.lock() else {
            return (Vec::new(), None);
        };
        let done = self.done.lock().map(|d| *d).unwrap_or(true);
        let rx = (!done).then(|| self.live.subscribe());
        (history.clone(), rx)
    }

    /// Keeps and broadcasts event `v`; `last` marks the run ended (under the history's lock,
    /// so a subscriber sees either the end in the history or a live receiver).
    fn record(&self, v: Value, last: bool) {
        if let Ok(mut h) = self.history.lock() {
            h.push(v.clone());
            if last {
                if let Ok(mut d) = self.done.lock() {
                    *d = true;
                }
            }
            let _ = self.live.send(v);
        }
    }

    /// Whether the run has ended.
    pub fn is_done(&self) -> bool {
        self.done.lock().map(|d| *d).unwrap_or(true)
    }
}

/// Sends a run's events to its history and subscribers.
struct Sink(Arc<Run>);

impl EventSink for Sink {
    fn event(&self, e: Event) {
        if let Some(v) = event_json(&e) {
            self.0.record(v, false);
        }
    }
}

/// An event as the page receives it (request events carry their figures, not the record).
pub fn event_json(e: &Event) -> Option<Value> {
    Some(match e {
        Event::Started {
            experiment_id,
            kind,
            resumed,
        } => {
            json!({"type": "started", "experiment_id": experiment_id, "kind": kind, "resumed": resumed})
        }
        Event::Info(s) => json!({"type": "info", "message": s}),
        Event::Warning(s) => json!({"type": "warning", "message": s}),
        Event::UnitStarted { key, work } => {
            json!({"type": "unit_started", "unit": key, "work": work})
        }
        Event::RequestDone {
            key,
            line,
            progress,
        } => json!({
            "type": "request_done",
            "unit": key,
            "progress": progress,
            "warmup": line.record.warmup,
            "ok": line.record.ok(),
            "ttft_ms": line.metrics.ttft_ms,
            "output_tokens_per_s": line.metrics.output_tokens_per_s,
            "output_tokens": line.record.output_tokens,
        }),
        Event::ItemsScored { key, done, total } => {
            json!({"type": "items_scored", "unit": key, "done": done, "total": total})
        }
        Event::UnitSkipped { key, reason } => {
            json!({"type": "unit_skipped", "unit": key, "reason": reason})
        }
        Event::UnitDone { key, file, line } => {
            json!({"type": "unit_done", "unit": key, "file": file, "line": line})
        }
        Event::UnitFailed { key, error } => {
            json!({"type": "unit_failed", "unit": key, "error": error})
        }
        // The run's own end event says how it ended (with the error, when there is one).
        Event::Finished { .. } => return None,
    })
}

/// What a run runs: a benchmark (`edgebench run`) or an evaluation (`edgebench eval`).
pub enum Job {
    Perf(Box<PerfPlan>),
    Eval(Box<EvalPlan>),
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("run {0} is still going; cancel it or wait for it to end")]
    Busy(String),
}

/// The server's runs: at most one going at a time, the last ones kept for their events.
#[derive(Default)]
pub struct Runs {
    runs: Mutex<Vec<Arc<Run>>>,
    next: Mutex<u64>,
}

/// How many ended runs are kept for their events.
const KEPT: usize = 16;

impl Runs {
    /// The run `id`.
    pub fn get(&self, id: &str) -> Option<Arc<Run>> {
        self.runs.lock().ok()?.iter().find(|r| r.id == id).cloned()
    }

    /// The run going now.
    pub fn active(&self) -> Option<Arc<Run>> {
        self.runs
            .lock()
            .ok()?
            .iter()
            .find(|r| !r.is_done())
            .cloned()
    }

    /// Starts `job` on its own task, unless a run is going.
    pub fn start(&self, job: Job, engine: Arc<dyn EngineLoader>) -> Result<Arc<Run>, StartError> {
        let mut runs = self.runs.lock().map_err(|_| StartError::Busy("?".into()))?;
        if let Some(r) = runs.iter().find(|r| !r.is_done()) {
            return Err(StartError::Busy(r.id.clone()));
        }
        let n = {
            let mut g = self.next.lock().map_err(|_| StartError::Busy("?".into()))?;
            *g += 1;
            *g
        };
        let (live, _) = broadcast::channel(4096);
        let run = Arc::new(Run {
            id: format!("run-{n}"),
            cancel: CancelFlag::default(),
            history: Mutex::new(Vec::new()),
            live,
            done: Mutex::new(false),
        });
        runs.push(run.clone());
        if runs.len() > KEPT {
            runs.remove(0);
        }
        let ctx = Context {
            events: Arc::new(Sink(run.clone())),
            cancel: run.cancel.clone(),
            engine,
        };
        let r = run.clone();
        tokio::spawn(async move {
            let failed = |e: edgebench_core::experiment::ExperimentError| {
                let status =
                    if matches!(e, edgebench_core::experiment::ExperimentError::Interrupted) {
                        "interrupted"
                    } else {
                        "failed"
                    };
                json!({"type": "finished", "status": status, "error": e.to_string()})
            };
            let end = match job {
                Job::Perf(plan) => match perf::run(*plan, &ctx).await {
                    Ok(out) => json!({
                        "type": "finished",
                        "status": "done",
                        "experiment_id": out.summary.run_id,
                        "checkpoint": out.checkpoint,
                        "next": out.next,
                    }),
                    Err(e) => failed(e),
                },
                Job::Eval(plan) => match eval::run(*plan, &ctx).await {
                    Ok(out) => json!({
                        "type": "finished",
                        "status": if out.failures == 0 { "done" } else { "failed" },
                        "experiment_id": out.summaries.first().map(|s| s.experiment_id.clone()),
                        "scores": out.summaries.iter().map(eval::render_line).collect::<Vec<_>>(),
                    }),
                    Err(e) => failed(e),
                },
            };
            r.record(end, true);
        });
        Ok(run)
    }

    /// Cancels every run going (server shutdown).
    pub fn cancel_all(&self) {
        if let Ok(runs) = self.runs.lock() {
            for r in runs.iter() {
                r.cancel.cancel();
            }
        }
    }
}
