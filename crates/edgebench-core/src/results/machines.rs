//! Machine comparison: the same model x scenario measured on several machines, side by side with
//! their confidence intervals, and the machines' hardware. Each machine's results come from a
//! results folder (its run summaries) or from a `results export --format json` file (another
//! machine's experiment), under a label.

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use super::reader::ExportFile;
use super::{ReadError, ResultsFolder, UnitReport};
use crate::report::document::MetricStats;
use crate::report::markdown::mean_ci;
use crate::repro::Environment;

/// One machine's perf results.
#[derive(Debug, Clone, Serialize)]
pub struct MachineResults {
    pub label: String,
    /// The machine as the experiment recorded it (CPU, cores, RAM, GPUs, OS).
    pub environment: Option<Environment>,
    /// Per model and scenario, the newest unit.
    pub units: Vec<UnitReport>,
}

/// Why a machine's results cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("{0}: {1}")]
    File(String, String),
}

/// The newest unit per (model, quantization, scenario), units given oldest first.
fn newest(units: impl IntoIterator<Item = UnitReport>) -> Vec<UnitReport> {
    let mut by: BTreeMap<(String, String), UnitReport> = BTreeMap::new();
    for u in units {
        by.insert((u.summary.model.clone(), u.summary.scenario.clone()), u);
    }
    by.into_values().collect()
}

impl MachineResults {
    /// A results folder's perf results: the newest unit of each model x scenario over its run
    /// summaries, and the newest run's machine.
    pub fn from_folder(dir: &Path, label: &str) -> Result<Self, MachineError> {
        let folder = ResultsFolder::open_lenient(dir)?;
        let mut runs = folder.run_summaries()?;
        runs.sort_by(|a, b| a.value.started.cmp(&b.value.started));
        let environment = runs.last().map(|r| r.value.environment.clone());
        let units = newest(
            runs.into_iter()
                .flat_map(|r| r.value.models.into_iter().flat_map(|m| m.units)),
        );
        Ok(Self {
            label: label.to_string(),
            environment,
            units,
        })
    }

    /// Another machine's experiment, as `results export --format json` wrote it.
    pub fn from_export(bytes: &[u8], label: &str) -> Result<Self, MachineError> {
        let bad = |e: &dyn std::fmt::Display| MachineError::File(label.to_string(), e.to_string());
        let file: ExportFile = serde_json::from_slice(bytes).map_err(|e| {
            bad(&format!(
                "not a `results export --format json` file of a run: {e}"
            ))
        })?;
        let config = file.config();
        let units = newest(file.units.iter().filter_map(|u| u.perf_report()));
        if units.is_empty() {
            return Err(bad(&"the export holds no finished perf unit"));
        }
        Ok(Self {
            label: label.to_string(),
            environment: config.map(|c| c.environment),
            units,
        })
    }
}

/// One machine's figures for a model x scenario.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MachineCell {
    pub ttft_ms: Option<MetricStats>,
    pub output_tokens_per_s: Option<MetricStats>,
    pub decode_tokens_per_s: Option<MetricStats>,
    pub peak_rss_mb: Option<f64>,
    /// Why the figures are less trustworthy (busy machine, interference), when they are.
    pub warning: Option<String>,
}

/// A model x scenario across machines (`None` where a machine did not run it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MachineRow {
    pub model: String,
    pub scenario: String,
    pub cells: Vec<Option<MachineCell>>,
}

/// A machine's hardware, as the comparison shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MachineInfo {
    pub label: String,
    pub cpu: String,
    pub cores: String,
    pub ram_gb: Option<f64>,
    pub gpus: String,
    pub os: String,
    pub edgebench: String,
}

/// Machines side by side.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MachineComparison {
    pub machines: Vec<MachineInfo>,
    pub rows: Vec<MachineRow>,
}

fn info(m: &MachineResults) -> MachineInfo {
    let e = m.environment.as_ref();
    let gpus = e
        .and_then(|e| e.hardware.as_ref())
        .map(|h| {
            h.gpus
                .iter()
                .map(|g| match g.vram_mb {
                    Some(v) => format!("{} {} ({} MB)", g.vendor, g.model, v),
                    None => format!("{} {}", g.vendor, g.model),
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "none".into());
    MachineInfo {
        label: m.label.clone(),
        cpu: e.map_or_else(|| "unknown".into(), |e| e.cpu_model.clone()),
        cores: e.map_or_else(
            || "?".into(),
            |e| match e.physical_cores {
                Some(p) => format!("{p} cores, {} threads", e.logical_cores),
                None => format!("{} threads", e.logical_cores),
            },
        ),
        ram_gb: e.map(|e| e.ram_total_mb as f64 / 1024.0),
        gpus,
        os: e.map_or_else(String::new, |e| format!("{} {}", e.os, e.kernel)),
        edgebench: e.map_or_else(String::new, |e| e.edgebench_version.clone()),
    }
}

/// The machines side by side: every model x scenario any of them ran.
pub fn compare(machines: &[MachineResults]) -> MachineComparison {
    let mut keys: Vec<(String, String)> = machines
        .iter()
        .flat_map(|m| {
            m.units
                .iter()
                .map(|u| (u.summary.model.clone(), u.summary.scenario.clone()))
        })
        .collect();
    keys.sort();
    keys.dedup();
    let rows = keys
        .into_iter()
        .map(|(model, scenario)| MachineRow {
            cells: machines
                .iter()
                .map(|m| {
                    let u = m
                        .units
                        .iter()
                        .find(|u| u.summary.model == model && u.summary.scenario == scenario)?;
                    let s = &u.summary;
                    Some(MachineCell {
                        ttft_ms: s.ttft_ms.as_ref().map(MetricStats::from),
                        output_tokens_per_s: s.output_tokens_per_s.as_ref().map(MetricStats::from),
                        decode_tokens_per_s: s.decode_tokens_per_s.as_ref().map(MetricStats::from),
                        peak_rss_mb: s.peak_rss_mb.or(u.monitor.peak_rss_mb),
                        warning: u.machine_warning(),
                    })
                })
                .collect(),
            model,
            scenario,
        })
        .collect();
    MachineComparison {
        machines: machines.iter().map(info).collect(),
        rows,
    }
}

/// The comparison as Markdown: the machines' hardware, then one table per model x scenario.
pub fn to_markdown(c: &MachineComparison) -> String {
    let mut out = String::from("## Machines\n\n| machine | CPU | cores | RAM | GPUs | OS | edgebench |\n|---|---|---|---:|---|---|---|\n");
    for m in &c.machines {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            m.label,
            m.cpu,
            m.cores,
            m.ram_gb
                .map_or_else(|| "-".into(), |g| format!("{g:.1} GB")),
            m.gpus,
            m.os,
            m.edgebench
        );
    }
    for r in &c.rows {
        let _ = writeln!(
            out,
            "\n### {} · {}\n\n| machine | ttft_ms | output_tokens_per_s | decode_tokens_per_s | n | peak_rss_mb |\n|---|---:|---:|---:|---:|---:|",
            r.model, r.scenario
        );
        for (m, cell) in c.machines.iter().zip(&r.cells) {
            match cell {
                Some(x) => {
                    let _ = writeln!(
                        out,
                        "| {}{} | {} | {} | {} | {} | {} |",
                        m.label,
                        if x.warning.is_some() {
                            " (flagged)"
                        } else {
                            ""
                        },
                        mean_ci(x.ttft_ms.as_ref()),
                        mean_ci(x.output_tokens_per_s.as_ref()),
                        mean_ci(x.decode_tokens_per_s.as_ref()),
                        x.ttft_ms.as_ref().map_or(0, |f| f.n),
                        x.peak_rss_mb
                            .map_or_else(|| "-".into(), crate::report::markdown::num),
                    );
                }
                None => {
                    let _ = writeln!(out, "| {} | not run | | | | |", m.label);
                }
            }
        }
    }
    out.push_str("\nMeans with their 95% CIs over each machine's measured requests.\n");
    out
}
