//! Renders an experiment's events on the terminal: a progress bar per unit with the whole
//! experiment's time left, info and warnings above it, and the checkpoint summary at the end (all
//! on stderr). When stderr is not a terminal (logs, CI), one line per finished unit and one every
//! 30 s during a unit instead of the bar.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use edgebench_core::experiment::progress::Progress;
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
    /// stderr is a terminal: a live bar; else plain lines.
    live: bool,
    /// The current unit's requests done and total, the experiment's progress, and when the
    /// last plain line was printed.
    state: Mutex<Lines>,
}

#[derive(Default)]
struct Lines {
    unit: String,
    done: u64,
    work: u64,
    progress: Option<Progress>,
    last_line: Option<Instant>,
}

/// Seconds as `1m30s` or `45s`.
fn clock(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// `experiment 12/69 requests, ETA 2m10s` (what is known of it).
fn experiment_line(p: &Progress) -> String {
    let mut out = if p.requests_total > 0 {
        format!(
            "experiment {}/{} requests",
            p.requests_done, p.requests_total
        )
    } else {
        format!("experiment {} requests", p.requests_done)
    };
    out.push_str(&format!(", {} elapsed", clock(p.elapsed_s)));
    if let Some(eta) = p.eta_s {
        out.push_str(&format!(", ETA {}", clock(eta)));
    }
    out
}

impl Terminal {
    pub fn new(unit: &'static str, persistent: bool, done_checkpoint: bool) -> Self {
        Self {
            bar: Mutex::new(None),
            unit,
            persistent,
            done_checkpoint,
            live: std::io::stderr().is_terminal(),
            state: Mutex::new(Lines::default()),
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
                let name = format!("{} · {}", key.model, key.scenario);
                if let Ok(mut st) = self.state.lock() {
                    st.unit = name.clone();
                    (st.done, st.work) = (0, work);
                }
                if !self.live {
                    eprintln!("started {name} ({work} {})", self.unit);
                    return;
                }
                let pb = self.bar(work, name);
                if let Ok(mut g) = self.bar.lock() {
                    *g = Some(pb);
                }
            }
            Event::RequestDone { progress, .. } => {
                let Ok(mut st) = self.state.lock() else {
                    return;
                };
                st.done += 1;
                st.progress = Some(progress);
                if self.live {
                    if let Some(pb) = self.bar.lock().ok().as_ref().and_then(|g| g.as_ref()) {
                        pb.inc(1);
                        pb.set_message(format!("{} · {}", st.unit, experiment_line(&progress)));
                    }
                } else if st
                    .last_line
                    .is_none_or(|t| t.elapsed() >= Duration::from_secs(30))
                {
                    st.last_line = Some(Instant::now());
                    eprintln!(
                        "  {}: {}/{} {} · {}",
                        st.unit,
                        st.done,
                        st.work,
                        self.unit,
                        experiment_line(&progress)
                    );
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
                } else if !self.live {
                    if let Ok(mut st) = self.state.lock() {
                        let exp = st
                            .progress
                            .as_ref()
                            .map(experiment_line)
                            .unwrap_or_default();
                        eprintln!("done {} · {exp}", st.unit);
                        st.last_line = Some(Instant::now());
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
