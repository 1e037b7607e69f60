//! Machine comparison: the same model x scenario measured on several machines, side by side with
//! their confidence intervals, and the machines' hardware. Each machine's results come from a
//! results folder (its run summaries) or from a `results export --format json` file (another
//! machine's experiment), under a label.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

use super::reader::ExportFile;
use super::{PerfLine, ReadError, ResultsFolder, UnitReport};
use crate::compare::{self, CompareOptions, Comparison, Criteria, ResultSet};
use crate::hw::text::BenchReport;
use crate::report::document::MetricStats;
use crate::report::layout::{self, Blocks, Cell};
use crate::report::markdown::{cell, mean_ci, num};
use crate::repro::Environment;
use crate::store::MachineRow as StoredMachine;

/// One machine's perf results.
#[derive(Debug, Clone, Serialize)]
pub struct MachineResults {
    pub label: String,
    /// The machine as the experiment recorded it (CPU, cores, RAM, GPUs, OS).
    pub environment: Option<Environment>,
    /// Per model and scenario, the newest unit.
    pub units: Vec<UnitReport>,
    /// The request lines of those units (what the tests between machines are run on).
    #[serde(skip)]
    pub lines: Vec<PerfLine>,
    /// Memory read bandwidth from the machine's newest `hw bench` in the store, when it has one.
    pub read_bandwidth_gb_s: Option<f64>,
}

/// Why a machine's results cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("{0}: {1}")]
    File(String, String),
}

/// The newest unit per (model, scenario), units given oldest first with their run ids.
fn newest(units: impl IntoIterator<Item = (String, UnitReport)>) -> Vec<(String, UnitReport)> {
    let mut by: BTreeMap<(String, String), (String, UnitReport)> = BTreeMap::new();
    for (run, u) in units {
        by.insert(
            (u.summary.model.clone(), u.summary.scenario.clone()),
            (run, u),
        );
    }
    by.into_values().collect()
}

/// The read bandwidth of a stored `hw bench` report.
fn read_bandwidth(bench_json: Option<&str>) -> Option<f64> {
    let report: BenchReport = serde_json::from_str(bench_json?).ok()?;
    report
        .bandwidth
        .iter()
        .find(|b| b.kernel == "read")
        .map(|b| b.best_gb_s)
        .filter(|g| *g > 0.0)
}

/// The newest bench of these machines.
fn newest_bandwidth<'a>(machines: impl Iterator<Item = &'a StoredMachine>) -> Option<f64> {
    machines
        .filter(|m| m.bench_json.is_some())
        .max_by(|a, b| a.bench_taken.cmp(&b.bench_taken))
        .and_then(|m| read_bandwidth(m.bench_json.as_deref()))
}

impl MachineResults {
    /// The newest unit of each model x scenario over `runs` (oldest first), with their lines.
    fn from_runs(
        folder: &ResultsFolder,
        label: &str,
        mut runs: Vec<super::Loaded<super::RunSummary>>,
        read_bandwidth_gb_s: Option<f64>,
    ) -> Result<Self, MachineError> {
        runs.sort_by(|a, b| a.value.started.cmp(&b.value.started));
        let environment = runs.last().map(|r| r.value.environment.clone());
        let chosen = newest(runs.into_iter().flat_map(|r| {
            let id = r.value.run_id;
            r.value
                .models
                .into_iter()
                .flat_map(|m| m.units)
                .map(move |u| (id.clone(), u))
        }));
        let run_ids: Vec<String> = chosen
            .iter()
            .map(|(r, _)| r.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let lines = folder
            .perf_lines(Some(&run_ids))?
            .into_iter()
            .filter(|l| {
                chosen.iter().any(|(r, u)| {
                    *r == l.run_id && u.summary.model == l.model && u.summary.scenario == l.scenario
                })
            })
            .collect();
        Ok(Self {
            label: label.to_string(),
            environment,
            units: chosen.into_iter().map(|(_, u)| u).collect(),
            lines,
            read_bandwidth_gb_s,
        })
    }

    /// A results folder's perf results: the newest unit of each model x scenario over its run
    /// summaries, and the newest run's machine.
    pub fn from_folder(dir: &Path, label: &str) -> Result<Self, MachineError> {
        let folder = ResultsFolder::open_lenient(dir)?;
        let runs = folder.run_summaries()?;
        let bandwidth = match folder.store() {
            Some(store) => newest_bandwidth(store.machines()?.iter()),
            None => None,
        };
        Self::from_runs(&folder, label, runs, bandwidth)
    }

    /// The results of the machines labelled `label` in a store (a team store opened as a
    /// results folder): the newest unit of each model x scenario over their finished runs.
    pub fn from_store(folder: &ResultsFolder, label: &str) -> Result<Self, MachineError> {
        let Some(store) = folder.store() else {
            return Err(MachineError::File(label.into(), "no store".into()));
        };
        let machines: Vec<StoredMachine> = store
            .machines()?
            .into_iter()
            .filter(|m| m.label == label)
            .collect();
        if machines.is_empty() {
            let known: Vec<String> = store.machines()?.into_iter().map(|m| m.label).collect();
            return Err(MachineError::File(
                label.into(),
                format!(
                    "no machine with this label in {} (labels there: {})",
                    folder.dir().display(),
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        }
        let ids: std::collections::BTreeSet<String> = store
            .experiments()?
            .into_iter()
            .filter(|e| machines.iter().any(|m| m.id == e.machine_id))
            .map(|e| e.id)
            .collect();
        let runs = folder
            .run_summaries()?
            .into_iter()
            .filter(|r| ids.contains(&r.value.run_id))
            .collect();
        Self::from_runs(folder, label, runs, newest_bandwidth(machines.iter()))
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
        let run = file.experiment.id.clone();
        let chosen = newest(
            file.units
                .iter()
                .filter_map(|u| u.perf_report())
                .map(|u| (run.clone(), u)),
        );
        if chosen.is_empty() {
            return Err(bad(&"the export holds no finished perf unit"));
        }
        let lines = file
            .units
            .into_iter()
            .flat_map(|u| u.request_lines)
            .filter(|l| {
                chosen
                    .iter()
                    .any(|(_, u)| u.summary.model == l.model && u.summary.scenario == l.scenario)
            })
            .collect();
        Ok(Self {
            label: label.to_string(),
            environment: config.map(|c| c.environment),
            units: chosen.into_iter().map(|(_, u)| u).collect(),
            lines,
            read_bandwidth_gb_s: None,
        })
    }

    /// The machine's results as one side of `compare`.
    pub fn result_set(&self) -> ResultSet {
        ResultSet {
            label: self.label.clone(),
            run_id: self.label.clone(),
            lines: self.lines.clone(),
            units: self.units.clone(),
            evals: Vec::new(),
        }
    }
}

/// One machine's figures for a model x scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineCell {
    pub ttft_ms: Option<MetricStats>,
    pub output_tokens_per_s: Option<MetricStats>,
    pub decode_tokens_per_s: Option<MetricStats>,
    pub peak_rss_mb: Option<f64>,
    /// Mean decode tokens/s per GB/s of the machine's measured read bandwidth: how much of its
    /// own memory ceiling a machine turns into tokens (comparable across machines for one model).
    pub decode_tokens_per_s_per_gb_s: Option<f64>,
    /// Why the figures are less trustworthy (busy machine, interference), when they are.
    pub warning: Option<String>,
}

/// A machine against the first one: `compare`'s tests on the same model x scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineTest {
    pub baseline: String,
    pub candidate: String,
    pub comparison: Option<Comparison>,
    /// Why there is no comparison (nothing in common).
    pub error: Option<String>,
}

/// A model x scenario across machines (`None` where a machine did not run it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineRow {
    pub model: String,
    pub scenario: String,
    pub cells: Vec<Option<MachineCell>>,
}

/// A machine's hardware, as the comparison shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineInfo {
    pub label: String,
    pub cpu: String,
    pub cores: String,
    pub ram_gb: Option<f64>,
    pub gpus: String,
    pub os: String,
    pub edgebench: String,
    pub read_bandwidth_gb_s: Option<f64>,
}

/// Machines side by side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineComparison {
    pub machines: Vec<MachineInfo>,
    pub rows: Vec<MachineRow>,
    /// Each machine after the first against the first.
    pub tests: Vec<MachineTest>,
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
        read_bandwidth_gb_s: m.read_bandwidth_gb_s,
    }
}

/// The machines side by side: every model x scenario any of them ran, and each machine after
/// the first tested against the first as `compare` tests two result sets.
pub fn compare(machines: &[MachineResults], opts: &CompareOptions) -> MachineComparison {
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
                        decode_tokens_per_s_per_gb_s: s
                            .decode_tokens_per_s
                            .as_ref()
                            .zip(m.read_bandwidth_gb_s)
                            .map(|(d, bw)| d.summary.mean / bw),
                        warning: u.machine_warning(),
                    })
                })
                .collect(),
            model,
            scenario,
        })
        .collect();
    let tests = match machines.split_first() {
        Some((first, rest)) => {
            let base = first.result_set();
            rest.iter()
                .map(|m| {
                    let r = compare::compare(&base, &m.result_set(), &Criteria::default(), opts);
                    MachineTest {
                        baseline: first.label.clone(),
                        candidate: m.label.clone(),
                        error: r.as_ref().err().map(ToString::to_string),
                        comparison: r.ok(),
                    }
                })
                .collect()
        }
        None => Vec::new(),
    };
    MachineComparison {
        machines: machines.iter().map(info).collect(),
        rows,
        tests,
    }
}

/// The comparison as blocks: the machines' hardware, one table per model x scenario, then each
/// machine against the first (headings from level 2; the report's "Machines" section).
pub fn blocks(b: &mut Blocks, c: &MachineComparison) {
    b.heading(2, "Machines");
    let t = b.table(
        &[
            "machine",
            "CPU",
            "cores",
            "RAM",
            "GPUs",
            "OS",
            "edgebench",
            "read GB/s",
        ],
        "lllrlllr",
    );
    for m in &c.machines {
        t.row(vec![
            cell(&m.label).into(),
            cell(&m.cpu).into(),
            m.cores.clone().into(),
            m.ram_gb
                .map_or_else(|| "-".into(), |g| format!("{g:.1} GB"))
                .into(),
            cell(&m.gpus).into(),
            cell(&m.os).into(),
            m.edgebench.clone().into(),
            m.read_bandwidth_gb_s
                .map_or_else(|| "-".into(), |g| format!("{g:.1}"))
                .into(),
        ]);
    }
    for r in &c.rows {
        b.heading(3, format!("{} · {}", r.model, r.scenario));
        let t = b.table(
            &[
                "machine",
                "ttft_ms",
                "output_tokens_per_s",
                "decode_tokens_per_s",
                "decode per GB/s",
                "n",
                "peak_rss_mb",
            ],
            "lrrrrrr",
        );
        for (m, x) in c.machines.iter().zip(&r.cells) {
            let cells: Vec<String> = match x {
                Some(x) => vec![
                    format!(
                        "{}{}",
                        cell(&m.label),
                        if x.warning.is_some() {
                            " (flagged)"
                        } else {
                            ""
                        }
                    ),
                    mean_ci(x.ttft_ms.as_ref()),
                    mean_ci(x.output_tokens_per_s.as_ref()),
                    mean_ci(x.decode_tokens_per_s.as_ref()),
                    x.decode_tokens_per_s_per_gb_s
                        .map_or_else(|| "-".into(), |v| format!("{v:.3}")),
                    x.ttft_ms.as_ref().map_or(0, |f| f.n).to_string(),
                    x.peak_rss_mb.map_or_else(|| "-".into(), num),
                ],
                None => {
                    let mut v = vec![cell(&m.label), "not run".into()];
                    v.resize(7, String::new());
                    v
                }
            };
            t.row(cells.into_iter().map(Cell::from).collect());
        }
    }
    b.para(
        "Means with their 95% CIs over each machine's measured requests. Decode per GB/s: mean \
         decode tokens/s divided by the machine's measured read bandwidth (`hw bench --results` \
         or `--store` records it), how much of its own memory ceiling each machine turns into \
         tokens.",
    );
    for t in &c.tests {
        b.heading(2, format!("{} against {}", t.candidate, t.baseline));
        match (&t.comparison, &t.error) {
            (Some(cmp), _) => crate::report::compare_md::test_blocks(b, cmp, None),
            (None, Some(e)) => b.para(format!("Not compared: {e}")),
            (None, None) => {}
        }
    }
}

/// The comparison as Markdown (what `compare --machines` prints).
pub fn to_markdown(c: &MachineComparison) -> String {
    let mut b = Blocks::default();
    blocks(&mut b, c);
    layout::to_markdown(&b.0)
}

/// Every machine label of a store (a team store opened as a results folder), sorted, once each.
pub fn store_labels(folder: &ResultsFolder) -> Result<Vec<String>, MachineError> {
    let Some(store) = folder.store() else {
        return Ok(Vec::new());
    };
    let labels: std::collections::BTreeSet<String> =
        store.machines()?.into_iter().map(|m| m.label).collect();
    Ok(labels.into_iter().collect())
}

/// Every machine of a store side by side, when it holds results of two machines or more (the
/// report's machine comparison); machines without a finished run are left out.
pub fn store_comparison(
    folder: &ResultsFolder,
    opts: &CompareOptions,
) -> Result<Option<MachineComparison>, MachineError> {
    let mut sets = Vec::new();
    for label in store_labels(folder)? {
        let set = MachineResults::from_store(folder, &label)?;
        if !set.units.is_empty() {
            sets.push(set);
        }
    }
    Ok((sets.len() >= 2).then(|| compare(&sets, opts)))
}

/// Every machine of `compare --machines` or `report --machines`, in order (see [`load_spec`]).
pub fn load_specs(
    specs: &[String],
    store: Option<&ResultsFolder>,
) -> Result<Vec<MachineResults>, MachineError> {
    specs.iter().map(|spec| load_spec(spec, store)).collect()
}

/// One machine of `compare --machines` or `report --machines`: `LABEL=PATH` (a results folder
/// or a `results export --format json` file), a bare path (labelled by its file name), or, with a
/// store, a machine label of the store.
pub fn load_spec(
    spec: &str,
    store: Option<&ResultsFolder>,
) -> Result<MachineResults, MachineError> {
    let (label, path) = match spec.split_once('=') {
        Some((l, p)) => (l.to_string(), std::path::PathBuf::from(p)),
        None => {
            let p = std::path::PathBuf::from(spec);
            let l = p
                .file_stem()
                .map_or_else(|| spec.to_string(), |s| s.to_string_lossy().into_owned());
            (l, p)
        }
    };
    match store {
        Some(f) if !spec.contains('=') && !path.exists() => MachineResults::from_store(f, spec),
        _ if path.is_dir() => MachineResults::from_folder(&path, &label),
        _ => {
            let bytes = std::fs::read(&path)
                .map_err(|e| MachineError::File(path.display().to_string(), e.to_string()))?;
            MachineResults::from_export(&bytes, &label)
        }
    }
}
