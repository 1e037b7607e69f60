//! The part of an experiment's life that runs and evals share: the store (or its in-memory
//! stand-in), create or resume under the config-hash rule, units and their statuses, the
//! checkpoint summary, and cleaning up after a plan that failed before it measured anything.

use std::path::{Path, PathBuf};

use super::ExperimentError;
use crate::results::{file_timestamp, UnitKey, DB_FILE};
use crate::store::{ExperimentRow, MachineRow, Store, StoreLocation, UnitRow};

/// How to resume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// A new experiment.
    No,
    /// The newest unfinished experiment with this configuration.
    Latest,
    /// This experiment.
    Id(String),
}

impl Resume {
    /// `--resume [ID]` as given: absent, without an id (the latest), or with one.
    pub fn from_flag(flag: Option<&str>) -> Self {
        match flag {
            None => Self::No,
            Some("") => Self::Latest,
            Some(id) => Self::Id(id.to_string()),
        }
    }
}

/// What opening an experiment needs.
#[derive(Debug, Clone)]
pub struct ExperimentStart {
    pub results_dir: PathBuf,
    /// Another store than the folder's `edgebench.db` (a team store's URL).
    pub store: Option<StoreLocation>,
    /// Keep nothing on disk (`--no-checkpoint`): the store lives in memory.
    pub no_checkpoint: bool,
    pub resume: Resume,
    /// "perf" or "eval".
    pub kind: String,
    /// Prefix of new ids ("" for runs, "eval_" for evals).
    pub id_prefix: String,
    pub config_hash: String,
    /// The configuration as JSON (evals store it at creation; runs set it as they go).
    pub config_json: String,
    /// The command that started it, for the resume hint.
    pub command: String,
    pub started: time::OffsetDateTime,
}

/// An open experiment: its row in the store and the store itself.
pub struct Experiment {
    pub store: Store,
    pub row: ExperimentRow,
    pub resumed: bool,
    persistent: bool,
    results_dir: PathBuf,
    location: StoreLocation,
    dir_existed: bool,
    db_existed: bool,
}

/// Done, or skipped because its sweep stopped.
pub fn finished(u: &UnitRow) -> bool {
    u.status == "done" || u.status == "skipped"
}

impl Experiment {
    /// Creates the experiment, or resumes one with the same configuration hash; tells the
    /// observers and records the machine as this invocation found it.
    pub fn start(
        s: &ExperimentStart,
        environment: &crate::repro::Environment,
        events: &dyn super::EventSink,
    ) -> Result<Self, ExperimentError> {
        let exp = Self::open(s, &environment.machine().id)?;
        events.event(super::Event::Started {
            experiment_id: exp.id().to_string(),
            kind: exp.row.kind.clone(),
            resumed: exp.resumed,
        });
        exp.snapshot_hardware(environment)?;
        Ok(exp)
    }

    /// Creates the experiment, or resumes one with the same configuration hash (without an id:
    /// the newest unfinished one of this machine, `machine_id`, or of no recorded machine).
    pub fn open(s: &ExperimentStart, machine_id: &str) -> Result<Self, ExperimentError> {
        let location = match (&s.store, s.no_checkpoint) {
            (_, true) => StoreLocation::Memory,
            (Some(l), false) => l.clone(),
            (None, false) => StoreLocation::File(s.results_dir.join(DB_FILE)),
        };
        let (dir_existed, db_existed) = (s.results_dir.exists(), !location.is_missing_file());
        let store = Store::connect(&location)?;
        let shown = location.shown();
        let short = |h: &str| h[..12.min(h.len())].to_string();
        let (row, resumed) = match &s.resume {
            Resume::No => {
                let mut row = ExperimentRow {
                    id: format!("{}{}", s.id_prefix, file_timestamp(s.started)),
                    kind: s.kind.clone(),
                    created: s
                        .started
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_default(),
                    config_hash: s.config_hash.clone(),
                    config_json: s.config_json.clone(),
                    command: s.command.clone(),
                    status: "running".into(),
                    uuid: crate::store::new_uuid(),
                    machine_id: String::new(),
                };
                row.id = store.create_experiment_free(&row)?;
                (row, false)
            }
            resume => {
                let row = match resume {
                    Resume::Id(id) => store.experiment(id)?.ok_or_else(|| {
                        ExperimentError::Plan(format!(
                            "--resume {id}: no such experiment in {shown}"
                        ))
                    })?,
                    _ => match store.latest_unfinished(&s.config_hash, machine_id)? {
                        Some(row) => row,
                        None => {
                            // Say so when the experiment with this configuration already finished.
                            let done = store
                                .experiments()?
                                .into_iter()
                                .find(|e| e.config_hash == s.config_hash && e.status == "done");
                            let why = done.map_or_else(String::new, |e| {
                                format!("; experiment {} with it is done", e.id)
                            });
                            return Err(ExperimentError::Plan(format!(
                                "nothing to resume: {shown} has no unfinished {} with this configuration (config {}){why}",
                                if s.kind == "eval" { "eval" } else { "experiment" },
                                short(&s.config_hash)
                            )));
                        }
                    },
                };
                if row.config_hash != s.config_hash {
                    return Err(ExperimentError::Plan(format!(
                        "--resume {}: that experiment ran with another configuration (config {} here, {} there); repeat its command: {}",
                        row.id,
                        short(&s.config_hash),
                        short(&row.config_hash),
                        row.command
                    )));
                }
                store.set_status(&row.id, "running")?;
                (row, true)
            }
        };
        Ok(Self {
            store,
            row,
            resumed,
            persistent: !s.no_checkpoint,
            results_dir: s.results_dir.clone(),
            location,
            dir_existed,
            db_existed,
        })
    }

    /// The experiment's id.
    pub fn id(&self) -> &str {
        &self.row.id
    }

    /// Whether the store is on disk (a resume is possible).
    pub fn persistent(&self) -> bool {
        self.persistent
    }

    /// Records the machine as this invocation found it (each resume adds one).
    pub fn snapshot_hardware(
        &self,
        environment: &crate::repro::Environment,
    ) -> Result<(), ExperimentError> {
        let taken = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let json = serde_json::to_string(&environment.hardware)
            .map_err(|e| ExperimentError::Plan(e.to_string()))?;
        self.store
            .add_hardware_snapshot(&self.row.id, &taken, &json)?;
        let machine = environment.machine();
        self.store.set_machine(
            &self.row.id,
            &MachineRow {
                id: machine.id,
                label: machine.label,
                hardware_json: json,
                first_seen: taken,
                bench_json: None,
                bench_taken: None,
            },
        )?;
        Ok(())
    }

    /// Makes sure the experiment has these units, in order.
    pub fn ensure_units(&mut self, keys: &[UnitKey]) -> Result<(), ExperimentError> {
        let id = self.row.id.clone();
        self.store.ensure_units(&id, keys)?;
        Ok(())
    }

    /// The experiment's units, in order.
    pub fn units(&self) -> Result<Vec<UnitRow>, ExperimentError> {
        Ok(self.store.units(&self.row.id)?)
    }

    /// Sets the experiment's status.
    pub fn set_status(&self, status: &str) -> Result<(), ExperimentError> {
        self.store.set_status(&self.row.id, status)?;
        self.snapshot();
        Ok(())
    }

    /// `results/checkpoint_{id}.json`.
    pub fn checkpoint_path(&self) -> PathBuf {
        self.results_dir
            .join(format!("checkpoint_{}.json", self.row.id))
    }

    /// Writes `checkpoint_{id}.json`, a snapshot of where the experiment stands (status, each
    /// unit's status and requests, the command that resumes it), at every unit boundary. The
    /// store stays the truth: a snapshot that cannot be written is skipped, not an error, and
    /// nothing is written with `--no-checkpoint`.
    pub fn snapshot(&self) {
        if !self.persistent || !self.results_dir.is_dir() {
            return;
        }
        let (Ok(Some(e)), Ok(units)) = (self.store.experiment(&self.row.id), self.units()) else {
            return;
        };
        let done = units.iter().filter(|u| finished(u)).count();
        let doc = serde_json::json!({
            "experiment_id": e.id,
            "kind": e.kind,
            "status": e.status,
            "config_hash": e.config_hash,
            "updated": time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            "units_done": done,
            "units_total": units.len(),
            "resume_command": format!("{} --resume {}", e.command, e.id),
            "units": units.iter().map(|u| serde_json::json!({
                "model": u.key.model_label(),
                "scenario": u.key.scenario,
                "status": u.status,
                "requests": u.requests,
                "error": u.error,
            })).collect::<Vec<_>>(),
            "note": "a snapshot; the results database (edgebench.db or the team store) is the truth",
        });
        if let Ok(bytes) = serde_json::to_vec_pretty(&doc) {
            let _ = crate::results::atomic_write(&self.checkpoint_path(), &bytes);
        }
    }

    /// Writes `experiment_config_{id}.json` and keeps it in the store.
    pub fn save_config(
        &self,
        config: &crate::results::ExperimentConfig,
    ) -> Result<PathBuf, ExperimentError> {
        let bytes =
            serde_json::to_vec_pretty(config).map_err(|e| ExperimentError::Plan(e.to_string()))?;
        if self.row.kind != "eval" {
            self.store
                .set_config(&self.row.id, &String::from_utf8_lossy(&bytes))?;
        }
        let path = self.config_path();
        crate::results::atomic_write(&path, &bytes).map_err(|e| ExperimentError::io(&path, e))?;
        Ok(path)
    }

    /// `results/experiment_config_{id}.json`.
    pub fn config_path(&self) -> PathBuf {
        self.results_dir
            .join(format!("experiment_config_{}.json", self.row.id))
    }

    /// The CHECKPOINT SUMMARY printed at the end of every run and eval.
    pub fn checkpoint_summary(&self) -> Result<String, ExperimentError> {
        use std::fmt::Write;
        let e = self
            .store
            .experiment(&self.row.id)?
            .unwrap_or_else(|| self.row.clone());
        let units = self.units()?;
        let done = units.iter().filter(|u| finished(u)).count();
        let mut out = String::new();
        let _ = writeln!(out, "\nCHECKPOINT SUMMARY");
        let _ = writeln!(
            out,
            "  experiment: {} ({}, config {})",
            e.id,
            e.kind,
            &e.config_hash[..12.min(e.config_hash.len())]
        );
        let _ = writeln!(out, "  progress:   {done}/{} units done", units.len());
        for u in units.iter().filter(|u| u.status == "failed") {
            let _ = writeln!(
                out,
                "  failed:     {} · {}: {}",
                u.key.model_label(),
                u.key.scenario,
                u.error.as_deref().unwrap_or("unknown error")
            );
        }
        let remaining: Vec<String> = units
            .iter()
            .filter(|u| !finished(u))
            .map(|u| format!("{} · {}", u.key.model_label(), u.key.scenario))
            .collect();
        if remaining.is_empty() {
            let _ = writeln!(out, "  remaining:  none");
        } else {
            let _ = writeln!(out, "  remaining:  {}", remaining.join(", "));
            if self.persistent {
                let _ = writeln!(out, "  to finish:  {} --resume {}", e.command, e.id);
            } else {
                let _ = writeln!(out, "  (--no-checkpoint: nothing was saved to resume from)");
            }
        }
        Ok(out)
    }

    /// Whether this invocation created the experiment and nothing was measured yet (a
    /// failure then is bad input found while preparing).
    pub fn untouched(&self) -> Result<bool, ExperimentError> {
        Ok(!self.resumed
            && self
                .units()?
                .iter()
                .all(|u| u.requests == 0 && u.status != "done"))
    }

    /// Removes what this invocation created: the experiment, its config file, and the
    /// database and folder when they did not exist before.
    pub fn discard(self) -> Result<(), ExperimentError> {
        self.store.delete_experiment(&self.row.id)?;
        let config = self.config_path();
        let _ = std::fs::remove_file(self.checkpoint_path());
        let db_path = match &self.location {
            StoreLocation::File(p) => Some(p.clone()),
            _ => None,
        };
        let (dir, dir_existed, db_existed) =
            (self.results_dir.clone(), self.dir_existed, self.db_existed);
        drop(self.store);
        let _ = std::fs::remove_file(&config);
        if let (Some(db_path), false) = (db_path, db_existed) {
            for suffix in ["", "-wal", "-shm"] {
                let mut p = db_path.clone().into_os_string();
                p.push(suffix);
                let _ = std::fs::remove_file(p);
            }
        }
        if !dir_existed {
            let _ = std::fs::remove_dir(&dir);
        }
        Ok(())
    }

    /// Marks the experiment as it stopped (interrupted or failed) and tells the observers; returns
    /// the error to report. With `discard_untouched`, a new experiment that failed before anything
    /// was measured (bad input found while preparing) is removed instead, files and all.
    pub fn stop(
        self,
        e: ExperimentError,
        events: &dyn super::EventSink,
        discard_untouched: bool,
    ) -> ExperimentError {
        let interrupted = matches!(e, ExperimentError::Interrupted);
        let id = self.id().to_string();
        if discard_untouched && !interrupted {
            match self.untouched() {
                Ok(true) => {
                    let r = self.discard();
                    events.event(super::Event::Finished {
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
        if let Err(other) = self.set_status(status) {
            return other;
        }
        events.event(super::Event::Finished {
            experiment_id: id,
            status: status.into(),
            checkpoint: self.checkpoint_summary().unwrap_or_default(),
        });
        e
    }

    /// The results folder.
    pub fn results_dir(&self) -> &Path {
        &self.results_dir
    }
}
