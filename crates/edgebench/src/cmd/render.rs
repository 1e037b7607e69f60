//! Renders an experiment's events on the terminal: a progress bar per unit, info and warnings
//! above it, and the checkpoint summary at the end (all on stderr).

use std::sync::Mutex;
use std::time::Duration;

use edgebench_core::experiment::{CancelFlag, Event, EventSink};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The terminal view of an experiment.
pub struct Terminal {
    bar: Mutex<Option<ProgressBar>>,
    /// "requests" or "items".
    unit: &'static str,
    /// Whether the store is on disk (what an interruption leaves).
    persistent: bool,
    /// Print the checkpoint summary of a finished experiment too (runs print it after their
    /// summary table instead).
    done_checkpoint: bool,
}

impl Terminal {
    pub fn new(unit: &'static str, persistent: bool, done_checkpoint: bool) -> Self {
        Self {
            bar: Mutex::new(None),
            unit,
            persistent,
            done_checkpoint,
        }
    }

    fn bar(&self, len: u64, msg: String) -> ProgressBar {
        let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
        pb.set_style(
            ProgressStyle::with_template(&format!(
                "{{spinner}} [{{elapsed_precise}}] {{bar:30}} {{pos}}/{{len}} {}  {{msg}}",
                self.unit
            ))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        pb.enable_steady_tick(Duration::from_millis(200));
        pb.set_message(msg);
        pb
    }

    /// Prints a line above the bar.
    fn say(&self, line: &str) {
        match self.bar.lock().ok().as_ref().and_then(|g| g.as_ref()) {
            Some(pb) => pb.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    fn clear(&self) {
        if let Ok(mut g) = self.bar.lock() {
            if let Some(pb) = g.take() {
                pb.finish_and_clear();
            }
        }
    }
}

impl EventSink for Terminal {
    fn event(&self, e: Event) {
        match e {
            Event::Started {
                experiment_id,
                kind,
                resumed: true,
            } => {
                let what = if kind == "eval" { "eval" } else { "experiment" };
                self.say(&format!("resuming {what} {experiment_id}"));
            }
            Event::Started { .. } => {}
            Event::Info(s) => self.say(&s),
            Event::Warning(s) => self.say(&format!("warning: {s}")),
            Event::UnitStarted { key, work } => {
                self.clear();
                let pb = self.bar(work, format!("{} · {}", key.model, key.scenario));
                if let Ok(mut g) = self.bar.lock() {
                    *g = Some(pb);
                }
            }
            Event::RequestDone { .. } => {
                if let Some(pb) = self.bar.lock().ok().as_ref().and_then(|g| g.as_ref()) {
                    pb.inc(1);
                }
            }
            Event::ItemsScored { done, total, .. } => {
                if let Some(pb) = self.bar.lock().ok().as_ref().and_then(|g| g.as_ref()) {
                    pb.set_length(total);
                    pb.set_position(done);
                }
            }
            Event::UnitSkipped { .. } => {}
            Event::UnitDone { line, file, .. } => {
                self.clear();
                if let Some(l) = line {
                    eprintln!("{l}");
                    if let Some(f) = file {
                        eprintln!("  wrote {}", f.display());
                    }
                }
            }
            Event::UnitFailed { error, .. } => {
                self.clear();
                eprintln!("error: {error}");
            }
            Event::Finished {
                status, checkpoint, ..
            } => {
                self.clear();
                if status == "interrupted" {
                    if self.persistent {
                        eprintln!("[Interrupted] Checkpoint saved. Use --resume to continue.");
                    } else {
                        eprintln!("[Interrupted] (--no-checkpoint: nothing saved to resume from)");
                    }
                }
                if status == "discarded" {
                    return;
                }
                if status != "done" || self.done_checkpoint {
                    eprint!("{checkpoint}");
                }
            }
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        self.clear();
    }
}

/// A cancellation token that Ctrl-C sets.
pub fn ctrl_c_token() -> CancelFlag {
    let cancel = CancelFlag::default();
    let c = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            c.cancel();
        }
    });
    cancel
}
