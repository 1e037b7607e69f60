//! Loading a result set for a comparison: a perf JSONL file, a results folder (its newest run),
//! or a run id looked up in the results folder, with the run's summary when it was saved; a run
//! summary (`summary_*.json`) with its perf files; an experiment export (JSON); or an eval (an
//! `eval_*` experiment id or an `eval_*.json` file) with its scored items from the store.

use serde::Deserialize;
use std::path::{Path, PathBuf};

use crate::results::reader::{self, ExportFile, ReadError};
use crate::results::{EvalSummary, ItemResult, PerfLine, ResultsFolder, UnitReport};

/// Why a result set could not be loaded or compared.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("{0:?} is not a results file, a results folder, or a run id with files in {1}")]
    NotFound(String, String),
    #[error("results file {file}, line {line}: {reason}")]
    Parse {
        file: String,
        line: usize,
        reason: String,
    },
    #[error("{0}: no measured requests")]
    Empty(String),
    #[error("{0} holds one model ({1}); --all needs two or more")]
    OneModel(String, String),
    #[error("the result sets share no scenario (baseline: {baseline}; candidate: {candidate})")]
    NothingInCommon { baseline: String, candidate: String },
    #[error(
        "the baseline holds models {baseline} and the candidate {candidate}, none on both sides: \
         compare one model per side, or every pair of models of one result set with `--all`"
    )]
    ModelsDiffer { baseline: String, candidate: String },
    #[error(
        "{file}: {reason} (compare reads perf_*.jsonl, summary_*.json, eval_*.json, a JSON export \
         of `edgebench results export --format json`, a results folder, or a run or eval id)"
    )]
    NotResults { file: String, reason: String },
    #[error("reading {path}: {reason}")]
    Io { path: String, reason: String },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// One side of a comparison.
#[derive(Debug, Clone)]
pub struct ResultSet {
    /// What the user named, and the run it resolved to.
    pub label: String,
    pub run_id: String,
    pub lines: Vec<PerfLine>,
    /// Unit summaries from `summary_{run_id}.json`, when present.
    pub units: Vec<UnitReport>,
    /// Eval tasks (an eval experiment), with their items when the store has them.
    pub evals: Vec<EvalSide>,
}

/// One task on one model of an eval.
#[derive(Debug, Clone)]
pub struct EvalSide {
    pub summary: EvalSummary,
    /// Scored items (from the results database); empty when only the summary file is at hand.
    pub items: Vec<ItemResult>,
}

impl ResultSet {
    /// The models in the set, in order of first appearance.
    pub fn models(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let names = self
            .lines
            .iter()
            .map(|l| l.model.clone())
            .chain(self.evals.iter().map(|e| e.summary.model.name.clone()));
        for n in names {
            if !out.contains(&n) {
                out.push(n);
            }
        }
        out
    }

    /// The part of the set that belongs to `model`.
    pub fn only_model(&self, model: &str) -> ResultSet {
        ResultSet {
            label: format!("{model} ({})", self.run_id),
            run_id: self.run_id.clone(),
            lines: self
                .lines
                .iter()
                .filter(|l| l.model == model)
                .cloned()
                .collect(),
            units: self
                .units
                .iter()
                .filter(|u| u.summary.model == model)
                .cloned()
                .collect(),
            evals: self
                .evals
                .iter()
                .filter(|e| e.summary.model.name == model)
                .cloned()
                .collect(),
        }
    }
}

/// Loads the tasks of eval experiment `id` from the database in `dir`.
fn load_eval(spec: &str, id: &str, dir: &Path) -> Result<ResultSet, CompareError> {
    if !dir.is_dir() {
        return Err(CompareError::NotFound(
            spec.to_string(),
            dir.display().to_string(),
        ));
    }
    load_eval_in(spec, id, &ResultsFolder::open(dir)?)
}

/// Loads the tasks of eval experiment `id` from an opened folder or store.
fn load_eval_in(spec: &str, id: &str, folder: &ResultsFolder) -> Result<ResultSet, CompareError> {
    let not_found = || CompareError::NotFound(spec.to_string(), folder.dir().display().to_string());
    let Some(units) = folder.eval_units(id)? else {
        return Err(not_found());
    };
    let evals: Vec<EvalSide> = units
        .into_iter()
        .map(|u| EvalSide {
            summary: u.summary,
            items: u.items,
        })
        .collect();
    if evals.is_empty() {
        return Err(CompareError::Empty(spec.to_string()));
    }
    Ok(ResultSet {
        label: if spec == id {
            spec.to_string()
        } else {
            format!("{spec} (eval {id})")
        },
        run_id: id.to_string(),
        lines: Vec::new(),
        units: Vec::new(),
        evals,
    })
}

/// An eval summary file (`eval_*.json`): its experiment from the database beside it, or the
/// file alone.
fn load_eval_file(path: &Path, summary: EvalSummary) -> Result<ResultSet, CompareError> {
    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let spec = path.display().to_string();
    if let Ok(mut set) = load_eval(&spec, &summary.experiment_id, &dir) {
        set.evals.retain(|e| {
            e.summary.task == summary.task && e.summary.model.name == summary.model.name
        });
        if !set.evals.is_empty() {
            return Ok(set);
        }
    }
    Ok(ResultSet {
        label: spec,
        run_id: summary.experiment_id.clone(),
        lines: Vec::new(),
        units: Vec::new(),
        evals: vec![EvalSide {
            summary,
            items: Vec::new(),
        }],
    })
}

/// A JSON result file, told apart by its content: an eval summary (`eval_*.json`), a run summary
/// (`summary_*.json`, read with the perf files of its run beside it), or an experiment export
/// (`edgebench results export --format json`). Anything else is a one-line error.
fn load_json_file(path: &Path) -> Result<ResultSet, CompareError> {
    let text = std::fs::read_to_string(path).map_err(|e| io(path, e))?;
    let not = |reason: String| CompareError::NotResults {
        file: path.display().to_string(),
        reason,
    };
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| not(format!("not a JSON document ({e})")))?;
    let has = |k: &str| v.get(k).is_some();
    if has("experiment_id") && has("task") {
        let summary: EvalSummary = serde_json::from_value(v)
            .map_err(|e| not(format!("an eval summary that does not parse ({e})")))?;
        return load_eval_file(path, summary);
    }
    if has("run_id") && has("models") {
        let summary: SummaryFile = serde_json::from_value(v)
            .map_err(|e| not(format!("a run summary that does not parse ({e})")))?;
        return load_run_summary(path, summary);
    }
    if has("experiment") && has("units") {
        let export: ExportFile = serde_json::from_value(v)
            .map_err(|e| not(format!("a results export that does not parse ({e})")))?;
        return load_export(path, export);
    }
    if has("experiment_id") && has("plan") {
        let id = v["experiment_id"].as_str().unwrap_or("");
        return Err(not(format!(
            "an experiment config (what was run), not its results; name the run id {id} or \
             summary_{id}.json instead"
        )));
    }
    Err(not(
        "a JSON file that is not a run summary, an eval summary or a results export".into(),
    ))
}

/// A run summary: the perf files of its run in the same folder (or the files its units name),
/// with the summary's units.
fn load_run_summary(path: &Path, summary: SummaryFile) -> Result<ResultSet, CompareError> {
    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let run_id = summary.run_id;
    let units: Vec<UnitReport> = summary.models.into_iter().flat_map(|m| m.units).collect();
    let mut files: Vec<PathBuf> = perf_files(&dir)?
        .into_iter()
        .filter(|p| run_id_of(p).as_deref() == Some(run_id.as_str()))
        .collect();
    if files.is_empty() {
        files = units
            .iter()
            .filter_map(|u| u.file.as_ref())
            .filter_map(|f| {
                let beside = f.file_name().map(|n| dir.join(n));
                [Some(f.clone()), beside]
                    .into_iter()
                    .flatten()
                    .find(|p| p.is_file())
            })
            .collect();
    }
    let spec = path.display().to_string();
    if files.is_empty() {
        return Err(CompareError::NotResults {
            file: spec,
            reason: format!("the run summary of {run_id}, but no perf_*_{run_id}.jsonl beside it"),
        });
    }
    let mut lines = Vec::new();
    for f in &files {
        read_lines(f, &mut lines)?;
    }
    if !lines.iter().any(|l| !l.record.warmup) {
        return Err(CompareError::Empty(spec));
    }
    Ok(ResultSet {
        label: spec,
        run_id,
        lines,
        units,
        evals: Vec::new(),
    })
}

/// An experiment export: every unit's request lines and report (perf), or its summary and
/// scored items (eval).
fn load_export(path: &Path, export: ExportFile) -> Result<ResultSet, CompareError> {
    let mut lines = Vec::new();
    let mut units = Vec::new();
    let mut evals = Vec::new();
    for u in export.units {
        let eval = u
            .report_json
            .as_deref()
            .filter(|_| u.status == "done")
            .and_then(|j| serde_json::from_str::<EvalSummary>(j).ok());
        if let Some(summary) = eval {
            evals.push(EvalSide {
                summary,
                items: u.eval_items,
            });
            continue;
        }
        if let Some(r) = u.perf_report() {
            units.push(r);
        }
        lines.extend(u.request_lines);
    }
    let spec = path.display().to_string();
    if evals.is_empty() && !lines.iter().any(|l| !l.record.warmup) {
        return Err(CompareError::Empty(spec));
    }
    Ok(ResultSet {
        label: spec,
        run_id: export.experiment.id,
        lines,
        units,
        evals,
    })
}

/// `summary_{run_id}.json` (what compare reads of it).
#[derive(Deserialize)]
struct SummaryFile {
    #[serde(default)]
    run_id: String,
    models: Vec<SummaryModel>,
}

#[derive(Deserialize)]
struct SummaryModel {
    units: Vec<UnitReport>,
}

fn io(path: &Path, e: impl std::fmt::Display) -> CompareError {
    CompareError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

impl From<ReadError> for CompareError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Parse { file, reason } => {
                // "path line N" from the reader: keep the line number apart.
                match file
                    .rsplit_once(" line ")
                    .and_then(|(f, n)| Some((f, n.parse().ok()?)))
                {
                    Some((f, line)) => CompareError::Parse {
                        file: f.to_string(),
                        line,
                        reason,
                    },
                    None => CompareError::Io { path: file, reason },
                }
            }
            ReadError::Io { path, reason } => CompareError::Io { path, reason },
            ReadError::NoInput(d) => CompareError::Io {
                path: d,
                reason: "not a folder".into(),
            },
            ReadError::Store(e) => CompareError::Store(e),
        }
    }
}

fn read_lines(path: &Path, out: &mut Vec<PerfLine>) -> Result<(), CompareError> {
    Ok(reader::read_perf_lines(path, out)?)
}

fn perf_files(dir: &Path) -> Result<Vec<PathBuf>, CompareError> {
    Ok(reader::files_with(dir, "perf_", ".jsonl")?)
}

fn run_id_of(path: &Path) -> Option<String> {
    reader::run_id_of(path)
}

/// Loads experiment `id` (a run or an eval) from a store opened as a results folder (a team
/// store, [`ResultsFolder::open_store`]): its request lines and unit reports from the rows.
/// A path to a result file is read as [`load`] reads it.
pub fn load_stored(spec: &str, folder: &ResultsFolder) -> Result<ResultSet, CompareError> {
    let path = Path::new(spec);
    if path.exists() {
        return load(spec, folder.dir());
    }
    let not_found = || CompareError::NotFound(spec.to_string(), folder.dir().display().to_string());
    let Some(store) = folder.store() else {
        return Err(not_found());
    };
    let Some(e) = store.experiment(spec)? else {
        return Err(not_found());
    };
    if e.kind == "eval" {
        return load_eval_in(spec, spec, folder);
    }
    let ids = [spec.to_string()];
    let lines = folder.perf_lines(Some(&ids))?;
    if !lines.iter().any(|l| !l.record.warmup) {
        return Err(CompareError::Empty(spec.to_string()));
    }
    let units = folder
        .units(spec)?
        .into_iter()
        .filter_map(|u| u.report)
        .collect();
    Ok(ResultSet {
        label: spec.to_string(),
        run_id: spec.to_string(),
        lines,
        units,
        evals: Vec::new(),
    })
}

/// Loads `spec`: a `.jsonl` perf file, a `.json` result file (a run summary, an eval summary or
/// an experiment export), a results folder (its newest run), or a run or eval id in
/// `results_dir`.
pub fn load(spec: &str, results_dir: &Path) -> Result<ResultSet, CompareError> {
    let path = Path::new(spec);
    let is_json = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if path.is_file() && is_json {
        return load_json_file(path);
    }
    if !path.exists() && spec.starts_with("eval_") {
        return load_eval(spec, spec, results_dir);
    }
    let (dir, lines, run_id) = if path.is_file() {
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let id = run_id_of(path).unwrap_or_default();
        let mut lines = Vec::new();
        read_lines(path, &mut lines)?;
        (dir, lines, id)
    } else {
        let (dir, wanted) = if path.is_dir() {
            (path.to_path_buf(), None)
        } else {
            (results_dir.to_path_buf(), Some(spec.to_string()))
        };
        let not_found =
            || CompareError::NotFound(spec.to_string(), results_dir.display().to_string());
        if !dir.is_dir() {
            return Err(not_found());
        }
        // The one results reader: the run's exports, and its stored units no export holds.
        let folder = ResultsFolder::open_lenient(&dir)?;
        let named = wanted.is_some();
        let candidates = match wanted {
            Some(id) => vec![id],
            // The newest run that holds requests.
            None => folder.run_ids()?.into_iter().rev().collect(),
        };
        let mut found = None;
        for id in candidates {
            let lines = folder.perf_lines(Some(std::slice::from_ref(&id)))?;
            // A named run is taken as it is (no measured request is an error below); the
            // newest run is the newest with measured requests.
            if (named && !lines.is_empty()) || lines.iter().any(|l| !l.record.warmup) {
                found = Some((lines, id));
                break;
            }
        }
        let (lines, id) = found.ok_or_else(not_found)?;
        (dir, lines, id)
    };
    if !lines.iter().any(|l| !l.record.warmup) {
        return Err(CompareError::Empty(spec.to_string()));
    }
    let summary = dir.join(format!("summary_{run_id}.json"));
    let units = match std::fs::read_to_string(&summary) {
        Ok(text) => serde_json::from_str::<SummaryFile>(&text)
            .map_err(|e| io(&summary, e))?
            .models
            .into_iter()
            .flat_map(|m| m.units)
            .collect(),
        Err(_) => Vec::new(),
    };
    Ok(ResultSet {
        label: if spec.contains(&run_id) || run_id.is_empty() {
            spec.to_string()
        } else {
            format!("{spec} (run {run_id})")
        },
        run_id,
        lines,
        units,
        evals: Vec::new(),
    })
}
