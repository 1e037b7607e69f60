//! What a report is built from: a results folder as the one results reader gives it (run and
//! eval summaries, experiment configs, each request line once, monitor samples, failed units).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::monitor::Sample;
use crate::results::reader::FailedUnit;
use crate::results::{
    EvalSummary, ExperimentConfig, Loaded, PerfLine, ReadError, ResultsFolder, RunSummary, UnitKey,
};
use crate::store::StoreError;

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
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ReadError> for ReportError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::NoInput(d) => Self::NoInput(d),
            ReadError::Parse { file, reason } => Self::Parse { file, reason },
            ReadError::Io { path, reason } => Self::Io { path, reason },
            ReadError::Store(e) => Self::Store(e),
        }
    }
}

/// A (run id, unit) key.
pub type RunUnitKey = (String, UnitKey);

/// Everything a report is built from.
#[derive(Debug, Clone, Default)]
pub struct ReportInput {
    pub dir: PathBuf,
    pub runs: Vec<Loaded<RunSummary>>,
    pub evals: Vec<Loaded<EvalSummary>>,
    pub configs: Vec<Loaded<ExperimentConfig>>,
    /// Measured and warm-up request lines, each request once.
    pub lines: Vec<PerfLine>,
    /// Monitor samples per unit, from the store.
    pub samples: BTreeMap<RunUnitKey, Vec<Sample>>,
    pub failed_units: Vec<FailedUnit>,
}

/// Reads the results folder `dir` through the one results reader. Every file that matches a
/// result name must parse.
pub fn load(dir: &Path) -> Result<ReportInput, ReportError> {
    load_from(&ResultsFolder::open(dir)?)
}

/// Reads an opened results folder, or a team store opened as one
/// ([`ResultsFolder::open_store`]).
pub fn load_from(folder: &ResultsFolder) -> Result<ReportInput, ReportError> {
    let dir = folder.dir();
    let runs = folder.run_summaries()?;
    let evals = folder.eval_summaries()?;
    if runs.is_empty() && evals.is_empty() {
        return Err(ReportError::NothingFound(dir.display().to_string()));
    }
    let configs = folder.configs()?;
    let run_ids: Vec<String> = runs.iter().map(|r| r.value.run_id.clone()).collect();
    // Lines of every export in the folder, plus the stored units of the summarised runs
    // that no export holds.
    let mut lines = folder.export_lines(None)?;
    folder.add_stored_lines(&run_ids, &mut lines)?;
    let mut samples = BTreeMap::new();
    let mut failed_units = Vec::new();
    for id in &run_ids {
        for (k, s) in folder.samples(id)? {
            samples.insert((id.clone(), k), s);
        }
        failed_units.extend(folder.failed_units(id)?);
    }
    Ok(ReportInput {
        dir: dir.to_path_buf(),
        runs,
        evals,
        configs,
        lines,
        samples,
        failed_units,
    })
}

impl ReportInput {
    /// Keeps only the experiments `ids` (a study's own, out of a folder that holds others).
    pub fn only(mut self, ids: &[String]) -> Self {
        let keep = |id: &String| ids.contains(id);
        self.runs.retain(|r| keep(&r.value.run_id));
        self.evals.retain(|e| keep(&e.value.experiment_id));
        self.configs.retain(|c| keep(&c.value.experiment_id));
        self.lines.retain(|l| keep(&l.run_id));
        self.samples.retain(|(id, _), _| keep(id));
        self.failed_units.retain(|f| keep(&f.run_id));
        self
    }
}
