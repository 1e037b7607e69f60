//! What a report reads from a results folder: run summaries, eval summaries, experiment configs,
//! per-request JSONL lines, and (when `edgebench.db` is there) monitor samples and failed units.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::files::{ExperimentConfig, PerfLine, RunSummary};
use crate::eval::EvalSummary;
use crate::monitor::Sample;
use crate::store::Store;

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("input folder {0} does not exist or is not a folder")]
    NoInput(String),
    #[error("no results in {0}: expected summary_*.json or eval_*.json files")]
    NothingFound(String),
    #[error("{file}: {reason}")]
    Parse { file: String, reason: String },
    #[error("{path}: {reason}")]
    Io { path: String, reason: String },
    #[error("unknown report format {0:?} (expected md, html, csv, json or all)")]
    Format(String),
}

impl ReportError {
    fn io(path: &Path, e: impl std::fmt::Display) -> Self {
        Self::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        }
    }
}

/// A file read from the input, with its name.
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
    pub model: String,
    pub scenario: String,
    pub error: String,
}

/// A (run id, model, scenario) key.
pub type UnitKey = (String, String, String);

/// Everything a report is built from.
#[derive(Debug, Clone, Default)]
pub struct ReportInput {
    pub dir: PathBuf,
    pub runs: Vec<Loaded<RunSummary>>,
    pub evals: Vec<Loaded<EvalSummary>>,
    pub configs: Vec<Loaded<ExperimentConfig>>,
    /// Measured and warm-up request lines, in file order.
    pub lines: Vec<PerfLine>,
    /// Monitor samples per unit, from the store.
    pub samples: BTreeMap<UnitKey, Vec<Sample>>,
    pub failed_units: Vec<FailedUnit>,
}

fn files_with(dir: &Path, prefix: &str, suffix: &str) -> Result<Vec<PathBuf>, ReportError> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| ReportError::io(dir, e))?
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

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Loaded<T>, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|e| ReportError::io(path, e))?;
    let value = serde_json::from_str(&text).map_err(|e| ReportError::Parse {
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

fn read_jsonl(path: &Path, out: &mut Vec<PerfLine>) -> Result<(), ReportError> {
    let text = std::fs::read_to_string(path).map_err(|e| ReportError::io(path, e))?;
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        out.push(serde_json::from_str(l).map_err(|e| ReportError::Parse {
            file: format!("{} line {}", path.display(), i + 1),
            reason: e.to_string(),
        })?);
    }
    Ok(())
}

/// Reads the results folder `dir`. Every file that matches a result name must parse.
pub fn load(dir: &Path) -> Result<ReportInput, ReportError> {
    if !dir.is_dir() {
        return Err(ReportError::NoInput(dir.display().to_string()));
    }
    let runs = files_with(dir, "summary_", ".json")?
        .iter()
        .map(|p| read_json::<RunSummary>(p))
        .collect::<Result<Vec<_>, _>>()?;
    let evals = files_with(dir, "eval_", ".json")?
        .iter()
        .map(|p| read_json::<EvalSummary>(p))
        .collect::<Result<Vec<_>, _>>()?;
    if runs.is_empty() && evals.is_empty() {
        return Err(ReportError::NothingFound(dir.display().to_string()));
    }
    let configs = files_with(dir, "experiment_config_", ".json")?
        .iter()
        .map(|p| read_json::<ExperimentConfig>(p))
        .collect::<Result<Vec<_>, _>>()?;
    let mut lines = Vec::new();
    for p in files_with(dir, "perf_", ".jsonl")? {
        read_jsonl(&p, &mut lines)?;
    }
    let mut input = ReportInput {
        dir: dir.to_path_buf(),
        runs,
        evals,
        configs,
        lines,
        ..ReportInput::default()
    };
    let db = dir.join("edgebench.db");
    if db.is_file() {
        read_store(&db, &mut input)?;
    }
    Ok(input)
}

/// Adds monitor samples, failed units, and request lines missing from the JSONL files.
fn read_store(db: &Path, input: &mut ReportInput) -> Result<(), ReportError> {
    let err = |e: crate::store::StoreError| ReportError::Io {
        path: db.display().to_string(),
        reason: e.to_string(),
    };
    let store = Store::open(db).map_err(err)?;
    let run_ids: Vec<String> = input.runs.iter().map(|r| r.value.run_id.clone()).collect();
    for run_id in run_ids {
        for u in store.units(&run_id).map_err(err)? {
            let key = (run_id.clone(), u.model.clone(), u.scenario.clone());
            if u.status == "failed" {
                input.failed_units.push(FailedUnit {
                    run_id: run_id.clone(),
                    model: u.model.clone(),
                    scenario: u.scenario.clone(),
                    error: u.error.clone().unwrap_or_default(),
                });
            }
            let samples = store.samples(u.id).map_err(err)?;
            if !samples.is_empty() {
                input.samples.insert(key.clone(), samples);
            }
            let have = input
                .lines
                .iter()
                .any(|l| l.run_id == key.0 && l.model == key.1 && l.scenario == key.2);
            if !have {
                input.lines.extend(store.requests(u.id).map_err(err)?);
            }
        }
    }
    Ok(())
}
