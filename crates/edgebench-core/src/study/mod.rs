//! Studies: several experiments, or the steps of one, run as one plan and judged together (the
//! FP8 KV-cache calibration A/B, the quantization frontier, the one-model step studies).

pub mod fp8_kv;
pub mod quant;
pub mod steps;

use std::path::{Path, PathBuf};

use crate::experiment::ExperimentError;
use crate::report::document::StudyTable;
use crate::report::{self, Format, Report, ReportInput};
use crate::results::{atomic_write, file_timestamp, ResultsFolder};
use crate::store::StoreLocation;

/// An error reading a study's own experiments back.
fn read_error(e: impl std::fmt::Display) -> ExperimentError {
    ExperimentError::Plan(format!("reading the study back: {e}"))
}

/// A study's experiments `ids` read back through the one results reader (the folder `dir`, or
/// `store`), and the report built from them alone.
fn read_back(
    dir: &Path,
    store: Option<&StoreLocation>,
    ids: &[String],
) -> Result<(ResultsFolder, ReportInput, Report), ExperimentError> {
    let folder = match store {
        Some(s) => ResultsFolder::open_store(s),
        None => ResultsFolder::open(dir),
    }
    .map_err(read_error)?;
    let input = report::load_from(&folder).map_err(read_error)?.only(ids);
    let rep = report::build(&input, time::OffsetDateTime::now_utc());
    Ok((folder, input, rep))
}

/// Writes `study_{slug}_{ts}.json` and the report, headed by the study's table, as
/// `benchmark_report_{slug}_{ts}.{md,html}`; returns the paths written.
fn write_out(
    dir: &Path,
    slug: &str,
    study: &impl serde::Serialize,
    table: StudyTable,
    mut rep: Report,
) -> Result<Vec<PathBuf>, ExperimentError> {
    let ts = file_timestamp(time::OffsetDateTime::now_utc());
    let file = dir.join(format!("study_{slug}_{ts}.json"));
    let bytes = serde_json::to_vec_pretty(study).map_err(|e| ExperimentError::io(&file, e))?;
    atomic_write(&file, &bytes).map_err(|e| ExperimentError::io(&file, e))?;
    rep.timestamp = format!("{slug}_{ts}");
    rep.study = Some(table);
    let formats = [Format::Md, Format::Html].into_iter().collect();
    let mut written = vec![file];
    written.extend(report::write(&rep, dir, &formats).map_err(|e| ExperimentError::io(dir, e))?);
    Ok(written)
}
