//! The one reader of a results folder: run and eval summaries, experiment configs, request
//! lines (the JSONL exports, and from `edgebench.db` the units no export holds), monitor
//! samples, failed units and scored eval items. `report`, `compare`, `compliance` and the
//! `results` command all read through it, so they count the same requests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::monitor::Sample;
use crate::results::{
    EvalSummary, ExperimentConfig, ItemResult, PerfLine, RunSummary, UnitKey, UnitReport,
};
use crate::store::{Store, StoreError, UnitRow};

/// `edgebench results export --format json`, read back (by `compare` and the machine
/// comparison): the experiment and, per unit, its status, report and requests or scored items.
#[derive(Debug, serde::Deserialize)]
pub struct ExportFile {
    pub experiment: ExportExperiment,
    pub units: Vec<ExportUnit>,
}

/// The experiment of an export.
#[derive(Debug, serde::Deserialize)]
pub struct ExportExperiment {
    pub id: String,
    /// The experiment's configuration (its machine included), as JSON text.
    #[serde(default)]
    pub config_json: String,
}

/// One unit of an export. Its report is kept as JSON: a perf unit's [`UnitReport`], or an eval
/// unit's summary (in `report_json`).
#[derive(Debug, serde::Deserialize)]
pub struct ExportUnit {
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub report: Option<serde_json::Value>,
    #[serde(default)]
    pub report_json: Option<String>,
    #[serde(default)]
    pub request_lines: Vec<PerfLine>,
    #[serde(default)]
    pub eval_items: Vec<ItemResult>,
}

impl ExportFile {
    /// The experiment's configuration, when it parses.
    pub fn config(&self) -> Option<ExperimentConfig> {
        serde_json::from_str(&self.experiment.config_json).ok()
    }
}

impl ExportUnit {
    /// The unit's perf report, when it is a perf unit with one.
    pub fn perf_report(&self) -> Option<UnitReport> {
        self.report
            .as_ref()
            .and_then(|r| serde_json::from_value(r.clone()).ok())
    }
}

/// The results database's file name in a results folder.
pub const DB_FILE: &str = "edgebench.db";

/// Why results could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("input folder {0} does not exist or is not a folder")]
    NoInput(String),
    #[error("{file}: {reason}")]
    Parse { file: String, reason: String },
    #[error("{path}: {reason}")]
    Io { path: String, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ReadError {
    fn io(path: &Path, e: impl std::fmt::Display) -> Self {
        Self::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        }
    }
}

/// A file read from the folder, with its name.
#[derive(Debug, Clone)]
pub struct Loaded<T> {
    /// The file name (not the full path, so reports do not depend on where the folder lives).
    pub file: String,
    pub value: T,
}

/// A unit the store marks failed (it has no summary).
#[derive(Debug, Clone, PartialEq)]
pub struct FailedUnit {
    pub run_id: String,
    pub key: UnitKey,
    pub error: String,
}

/// One task on one model of an eval, with its scored items when the store has them.
#[derive(Debug, Clone)]
pub struct EvalUnit {
    pub summary: EvalSummary,
    pub items: Vec<ItemResult>,
}

/// A results folder, with its database when it has one.
pub struct ResultsFolder {
    dir: PathBuf,
    store: Option<Store>,
    /// Whether `dir` is a folder of result files; a team store alone has none, and its
    /// summaries are built from its rows.
    files: bool,
}

/// The files in `dir` whose names start with `prefix` and end with `suffix`, sorted.
pub fn files_with(dir: &Path, prefix: &str, suffix: &str) -> Result<Vec<PathBuf>, ReadError> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| ReadError::io(dir, e))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(prefix) && n.ends_with(suffix))
        })
        .collect();
    v.sort();
    Ok(v)
}

/// Reads one JSON result file.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Loaded<T>, ReadError> {
    let text = std::fs::read_to_string(path).map_err(|e| ReadError::io(path, e))?;
    let value = serde_json::from_str(&text).map_err(|e| ReadError::Parse {
        file: path.display().to_string(),
        reason: e.to_string(),
    })?;
    Ok(Loaded {
        file: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        value,
    })
}

/// Appends the lines of a perf JSONL file to `out`; a line that does not parse is an error
/// naming the file and the line.
pub fn read_perf_lines(path: &Path, out: &mut Vec<PerfLine>) -> Result<(), ReadError> {
    let text = std::fs::read_to_string(path).map_err(|e| ReadError::io(path, e))?;
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        out.push(serde_json::from_str(l).map_err(|e| ReadError::Parse {
            file: format!("{} line {}", path.display(), i + 1),
            reason: e.to_string(),
        })?);
    }
    Ok(())
}

/// The run id at the end of a perf file name (`..._YYYYMMDD_HHMMSS.jsonl`).
pub fn run_id_of(path: &Path) -> Option<String> {
    let stem = path.file_stem()?.to_str()?;
    let parts: Vec<&str> = stem.rsplitn(3, '_').collect();
    (parts.len() == 3).then(|| format!("{}_{}", parts[1], parts[0]))
}

impl ResultsFolder {
    /// Opens the folder `dir` (and its `edgebench.db` when there is one).
    pub fn open(dir: &Path) -> Result<Self, ReadError> {
        if !dir.is_dir() {
            return Err(ReadError::NoInput(dir.display().to_string()));
        }
        let db = dir.join(DB_FILE);
        let store = if db.is_file() {
            Some(Store::open(&db)?)
        } else {
            None
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            store,
            files: true,
        })
    }

    /// A store without a folder of files (a team store): summaries, configs, lines and samples
    /// all come from its rows. `dir` is then the store as shown (password hidden).
    pub fn open_store(location: &crate::store::StoreLocation) -> Result<Self, ReadError> {
        let store = Store::connect_existing(location)?;
        Ok(Self {
            dir: PathBuf::from(location.shown()),
            store: Some(store),
            files: false,
        })
    }

    /// The stored experiments of `kind` ("perf" or "eval"), each with its configuration text,
    /// done ones only (a file summary exists only for a finished experiment).
    fn stored_done(&self, eval: bool) -> Result<Vec<crate::store::ExperimentRow>, ReadError> {
        let Some(store) = &self.store else {
            return Ok(Vec::new());
        };
        Ok(store
            .experiments()?
            .into_iter()
            .filter(|e| (e.kind == "eval") == eval && e.status == "done")
            .collect())
    }

    /// Opens the folder, reading files only when its database cannot be opened (read-only
    /// folder, a database of a newer edgebench): what a comparison needs.
    pub fn open_lenient(dir: &Path) -> Result<Self, ReadError> {
        match Self::open(dir) {
            Err(ReadError::Store(_)) => Ok(Self {
                dir: dir.to_path_buf(),
                store: None,
                files: true,
            }),
            other => other,
        }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The results database, when the folder has one.
    pub fn store(&self) -> Option<&Store> {
        self.store.as_ref()
    }

    /// Every run summary (`summary_*.json`); each must parse.
    pub fn run_summaries(&self) -> Result<Vec<Loaded<RunSummary>>, ReadError> {
        if !self.files {
            let mut out = Vec::new();
            for e in self.stored_done(false)? {
                let Ok(config) = serde_json::from_str::<ExperimentConfig>(&e.config_json) else {
                    continue;
                };
                let units = self.units(&e.id)?;
                out.push(Loaded {
                    file: format!("summary_{}.json", e.id),
                    value: RunSummary::from_units(&e.id, &config, &units),
                });
            }
            return Ok(out);
        }
        files_with(&self.dir, "summary_", ".json")?
            .iter()
            .map(|p| read_json(p))
            .collect()
    }

    /// Every eval summary (`eval_*.json`); each must parse.
    pub fn eval_summaries(&self) -> Result<Vec<Loaded<EvalSummary>>, ReadError> {
        if !self.files {
            let mut out = Vec::new();
            for e in self.stored_done(true)? {
                for u in self.eval_units(&e.id)?.unwrap_or_default() {
                    out.push(Loaded {
                        file: format!("{}_{}_{}.json", e.id, u.summary.task, u.summary.model.name),
                        value: u.summary,
                    });
                }
            }
            return Ok(out);
        }
        files_with(&self.dir, "eval_", ".json")?
            .iter()
            .map(|p| read_json(p))
            .collect()
    }

    /// Every experiment config (`experiment_config_*.json`); each must parse.
    pub fn configs(&self) -> Result<Vec<Loaded<ExperimentConfig>>, ReadError> {
        if !self.files {
            let Some(store) = &self.store else {
                return Ok(Vec::new());
            };
            return Ok(store
                .experiments()?
                .into_iter()
                .filter_map(|e| {
                    let value = serde_json::from_str::<ExperimentConfig>(&e.config_json).ok()?;
                    Some(Loaded {
                        file: format!("experiment_config_{}.json", e.id),
                        value,
                    })
                })
                .collect());
        }
        files_with(&self.dir, "experiment_config_", ".json")?
            .iter()
            .map(|p| read_json(p))
            .collect()
    }

    /// The perf JSONL exports, of run `run_id` only when given.
    pub fn perf_files(&self, run_id: Option<&str>) -> Result<Vec<PathBuf>, ReadError> {
        if !self.files {
            return Ok(Vec::new());
        }
        Ok(files_with(&self.dir, "perf_", ".jsonl")?
            .into_iter()
            .filter(|p| run_id.is_none_or(|id| run_id_of(p).as_deref() == Some(id)))
            .collect())
    }

    /// The run ids of the perf exports and of the stored perf experiments, oldest first.
    pub fn run_ids(&self) -> Result<Vec<String>, ReadError> {
        let mut ids: BTreeSet<String> = self
            .perf_files(None)?
            .iter()
            .filter_map(|p| run_id_of(p))
            .collect();
        if let Some(s) = &self.store {
            ids.extend(
                s.experiments()?
                    .into_iter()
                    .filter(|e| e.kind != "eval")
                    .map(|e| e.id),
            );
        }
        Ok(ids.into_iter().collect())
    }

    /// The stored units of experiment `id` (none without a database).
    pub fn units(&self, id: &str) -> Result<Vec<UnitRow>, ReadError> {
        match &self.store {
            Some(s) => Ok(s.units(id)?),
            None => Ok(Vec::new()),
        }
    }

    /// Every request line (warm-ups included) of the runs in `run_ids`, or of every run when
    /// `None`: the JSONL exports, then from the store the units no export holds.
    pub fn perf_lines(&self, run_ids: Option<&[String]>) -> Result<Vec<PerfLine>, ReadError> {
        let mut lines = self.export_lines(run_ids)?;
        let stored: Vec<String> = match (run_ids, &self.store) {
            (Some(ids), _) => ids.to_vec(),
            (None, Some(store)) => store
                .experiments()?
                .into_iter()
                .filter(|e| e.kind != "eval")
                .map(|e| e.id)
                .collect(),
            (None, None) => Vec::new(),
        };
        self.add_stored_lines(&stored, &mut lines)?;
        Ok(lines)
    }

    /// The lines of the JSONL exports, in file order, of the runs in `run_ids` (by the run id
    /// that ends each file name; every run when `None`).
    pub fn export_lines(&self, run_ids: Option<&[String]>) -> Result<Vec<PerfLine>, ReadError> {
        let mut lines = Vec::new();
        for p in self.perf_files(None)? {
            let wanted =
                run_ids.is_none_or(|ids| run_id_of(&p).is_some_and(|id| ids.contains(&id)));
            if wanted {
                read_perf_lines(&p, &mut lines)?;
            }
        }
        Ok(lines)
    }

    /// Adds the stored requests of the units of `run_ids` that `lines` does not hold yet (an
    /// interrupted unit, a deleted export). A unit is matched on its run id and typed key, so
    /// each request counts once.
    pub fn add_stored_lines(
        &self,
        run_ids: &[String],
        lines: &mut Vec<PerfLine>,
    ) -> Result<(), ReadError> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let mut have: BTreeSet<(String, UnitKey)> = lines
            .iter()
            .map(|l| (l.run_id.clone(), UnitKey::of_line(l)))
            .collect();
        let run_ids: BTreeSet<&String> = run_ids.iter().collect();
        for run_id in run_ids {
            for u in store.units(run_id)? {
                let key = UnitKey {
                    setting: String::new(),
                    ..u.key.clone()
                };
                // `insert` is false when the exports (or an earlier unit) hold it already.
                if u.requests == 0 || !have.insert((run_id.clone(), key)) {
                    continue;
                }
                // The store's id is the experiment's: a copy renamed on push or import (its id
                // taken there) still holds lines written under the old one.
                lines.extend(store.requests(u.id)?.into_iter().map(|mut l| {
                    l.run_id.clone_from(run_id);
                    l
                }));
            }
        }
        Ok(())
    }

    /// Monitor samples of the stored units of `run_id`, by unit.
    pub fn samples(&self, run_id: &str) -> Result<BTreeMap<UnitKey, Vec<Sample>>, ReadError> {
        let mut out = BTreeMap::new();
        if let Some(store) = &self.store {
            for u in store.units(run_id)? {
                let s = store.samples(u.id)?;
                if !s.is_empty() {
                    out.insert(u.key, s);
                }
            }
        }
        Ok(out)
    }

    /// The units of `run_id` the store marks failed.
    pub fn failed_units(&self, run_id: &str) -> Result<Vec<FailedUnit>, ReadError> {
        Ok(self
            .units(run_id)?
            .into_iter()
            .filter(|u| u.status == "failed")
            .map(|u| FailedUnit {
                run_id: run_id.to_string(),
                error: u.error.unwrap_or_default(),
                key: u.key,
            })
            .collect())
    }

    /// The finished tasks of eval experiment `id` with their scored items; `None` when the
    /// store does not hold that experiment.
    pub fn eval_units(&self, id: &str) -> Result<Option<Vec<EvalUnit>>, ReadError> {
        let Some(store) = &self.store else {
            return Ok(None);
        };
        if store.experiment(id)?.is_none() {
            return Ok(None);
        }
        let mut out = Vec::new();
        for u in store.units(id)? {
            let Some(json) = u.report_json.as_deref().filter(|_| u.status == "done") else {
                continue;
            };
            let Ok(summary) = serde_json::from_str::<EvalSummary>(json) else {
                continue;
            };
            let items = store
                .eval_items(u.id)?
                .into_iter()
                .filter_map(|(_, j)| serde_json::from_str::<ItemResult>(&j).ok())
                .collect();
            out.push(EvalUnit { summary, items });
        }
        Ok(Some(out))
    }
}
