//! Exporters: result files (written atomically), the terminal summary, and reports (Markdown,
//! self-contained HTML, CSV and JSON) built from a results folder.

mod build;
pub mod compare_md;
pub mod csv;
pub mod document;
pub mod export;
pub mod html;
pub mod input;
pub mod layout;
pub mod markdown;
mod sections;
pub mod svg;
pub mod table;
pub mod verdict;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::results::atomic_write;
pub use build::{build, device_name};
pub use document::Report;
pub use input::{load, load_from, ReportError, ReportInput};
pub use table::render_summary;

/// An output format of `edgebench report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Format {
    Md,
    Html,
    Csv,
    Json,
}

impl Format {
    pub const ALL: [Format; 4] = [Format::Md, Format::Html, Format::Csv, Format::Json];
}

/// Parses format names ("md", "html", "csv", "json", "all"; also comma-separated).
pub fn parse_formats<S: AsRef<str>>(names: &[S]) -> Result<BTreeSet<Format>, ReportError> {
    let mut out = BTreeSet::new();
    for name in names.iter().flat_map(|n| n.as_ref().split(',')) {
        match name.trim().to_ascii_lowercase().as_str() {
            "md" | "markdown" => {
                out.insert(Format::Md);
            }
            "html" => {
                out.insert(Format::Html);
            }
            "csv" => {
                out.insert(Format::Csv);
            }
            "json" => {
                out.insert(Format::Json);
            }
            "all" => out.extend(Format::ALL),
            "" => {}
            other => return Err(ReportError::Format(other.to_string())),
        }
    }
    if out.is_empty() {
        out.extend(Format::ALL);
    }
    Ok(out)
}

fn write_file(path: PathBuf, bytes: &[u8], written: &mut Vec<PathBuf>) -> Result<(), ReportError> {
    atomic_write(&path, bytes).map_err(|e| ReportError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    written.push(path);
    Ok(())
}

/// Writes the report in `formats` under `out_dir` (and the compliance files when the report
/// carries an analysis); every file is written atomically. Returns the paths written.
pub fn write(
    r: &Report,
    out_dir: &Path,
    formats: &BTreeSet<Format>,
) -> Result<Vec<PathBuf>, ReportError> {
    let ts = &r.timestamp;
    let mut written = Vec::new();
    for f in formats {
        match f {
            Format::Md => write_file(
                out_dir.join(format!("benchmark_report_{ts}.md")),
                markdown::render(r).as_bytes(),
                &mut written,
            )?,
            Format::Html => write_file(
                out_dir.join(format!("benchmark_report_{ts}.html")),
                html::render(r).as_bytes(),
                &mut written,
            )?,
            Format::Csv => {
                write_file(
                    out_dir.join("performance_results.csv"),
                    csv::performance(r).as_bytes(),
                    &mut written,
                )?;
                write_file(
                    out_dir.join("capability_results.csv"),
                    csv::capability(r).as_bytes(),
                    &mut written,
                )?;
            }
            Format::Json => {
                let path = out_dir.join(format!("benchmark_report_{ts}.json"));
                let bytes = serde_json::to_vec_pretty(r).map_err(|e| ReportError::Io {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?;
                write_file(path, &bytes, &mut written)?;
            }
        }
    }
    if let Some(c) = &r.compliance {
        written.extend(crate::compliance::write(c, out_dir, ts)?);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse() {
        assert_eq!(parse_formats(&["all"]).unwrap().len(), 4);
        assert_eq!(
            parse_formats(&["md,csv"])
                .unwrap()
                .into_iter()
                .collect::<Vec<_>>(),
            [Format::Md, Format::Csv]
        );
        assert_eq!(parse_formats::<&str>(&[]).unwrap().len(), 4);
        assert!(parse_formats(&["pdf"]).is_err());
    }
}
