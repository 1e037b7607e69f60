//! The report as data: setup, performance and capability tables, trade-off, model comparisons,
//! verdicts, failures, the community row and chart series. Every output format renders this one
//! document; its JSON form follows `schemas/report.schema.json`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::verdict::Level;
use crate::compare::ScenarioComparison;
use crate::eval::{Confusion, SandboxReport, Score};
use crate::metrics::{MetricSummary, UnitSummary};

/// Version of the JSON document's layout (bumped on incompatible changes).
pub const SCHEMA_VERSION: u32 = 1;

/// A metric's mean with its 95% CI, percentiles and sample count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricStats {
    pub mean: f64,
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub n: usize,
}

impl From<&MetricSummary> for MetricStats {
    fn from(m: &MetricSummary) -> Self {
        Self {
            mean: m.summary.mean,
            ci_low: m.mean_ci.as_ref().map(|c| c.lower),
            ci_high: m.mean_ci.as_ref().map(|c| c.upper),
            p50: m.summary.p50,
            p90: m.summary.p90,
            p99: m.summary.p99,
            n: m.summary.n,
        }
    }
}

/// Reads one metric's summary from a unit summary.
pub type MetricOf = fn(&UnitSummary) -> &Option<MetricSummary>;

/// The per-request metrics of the performance table, in column order.
pub const PERF_METRICS: &[(&str, MetricOf)] = &[
    ("ttft_ms", |s| &s.ttft_ms),
    ("e2e_ms", |s| &s.e2e_ms),
    ("tpot_ms", |s| &s.tpot_ms),
    ("itl_ms", |s| &s.itl_ms),
    ("output_tokens_per_s", |s| &s.output_tokens_per_s),
    ("decode_tokens_per_s", |s| &s.decode_tokens_per_s),
    ("prefill_tokens_per_s", |s| &s.prefill_tokens_per_s),
    ("output_tokens", |s| &s.output_tokens),
];

/// One run or eval experiment: where and how it was measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetupRow {
    pub id: String,
    /// "run" or "eval".
    pub kind: String,
    pub started: String,
    pub config_hash: String,
    /// The experiment config file, when the folder has one.
    pub config_file: Option<String>,
    pub edgebench_version: String,
    pub edgebench_commit: Option<String>,
    pub os: String,
    pub kernel: String,
    pub cpu_model: String,
    pub physical_cores: Option<usize>,
    pub logical_cores: usize,
    pub ram_total_mb: u64,
    /// Engines or servers used, e.g. "llama.cpp (llama-cpp-sys-2 0.1.161)".
    pub engines: Vec<String>,
    pub threads: Option<u32>,
    pub seed: u64,
    /// Measured requests per unit (runs) or items scored (evals).
    pub runs: u32,
    pub warmup: u32,
    /// GPUs the machine has, e.g. "NVIDIA GeForce RTX 4060 (8188 MB VRAM, CUDA)" (from the
    /// recorded hardware; absent when none was found or none recorded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<String>,
    /// The llama.cpp backends the edgebench binary was built with (CPU, CUDA, Metal, Vulkan).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub llama_cpp_backends: Vec<String>,
    /// The engines' own system/feature lines (llama.cpp's system info), one per distinct line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub engine_system_info: Vec<String>,
    /// The CPU's SIMD features (AVX2, AVX-512F, NEON...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub simd: Vec<String>,
}

/// One model x scenario unit of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerfRow {
    pub run_id: String,
    pub config_hash: String,
    pub model: String,
    pub publisher: String,
    pub format: String,
    pub quantization: String,
    pub parameters: u64,
    pub scenario: String,
    pub target_kind: String,
    pub engine: String,
    pub requests: usize,
    pub successes: usize,
    pub success_rate: f64,
    pub success_rate_ci_low: Option<f64>,
    pub success_rate_ci_high: Option<f64>,
    /// By name (see [`PERF_METRICS`]); absent when undefined for the unit.
    pub metrics: BTreeMap<String, MetricStats>,
    pub peak_rss_mb: Option<f64>,
    pub mean_cpu_percent: Option<f64>,
    pub json_valid_rate: Option<f64>,
    pub model_load_ms: Option<f64>,
    pub context_tokens: Option<u32>,
    /// Energy over the unit's sampled span, joules (absent when not measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy_j: Option<f64>,
    /// Energy per output token, joules (warm-ups included, as sampled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joules_per_output_token: Option<f64>,
    /// Peak GPU memory in use, MB (10^6 bytes; NVIDIA GPUs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_vram_mb: Option<f64>,
    /// Highest CPU/GPU temperature seen, degrees C.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_temp_c: Option<f64>,
    /// Set when the machine did not settle before the unit (another busy process).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub busy_machine: Option<String>,
}

/// One task on one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapabilityRow {
    pub experiment_id: String,
    pub config_hash: String,
    pub task: String,
    pub method: String,
    pub model: String,
    pub format: String,
    pub quantization: String,
    pub items: usize,
    pub items_total: usize,
    pub items_per_s: f64,
    /// By name: accuracy, macro_f1, invalid_rate, pass_at_1... (fractions in [0, 1]).
    pub scores: BTreeMap<String, Score>,
    pub confusions: Vec<Confusion>,
    pub sandbox: Option<SandboxReport>,
    /// Set when the machine did not settle before the task (another busy process).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub busy_machine: Option<String>,
}

/// A point of the accuracy-vs-speed trade-off: one model on one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TradeoffPoint {
    pub model: String,
    pub format: String,
    pub quantization: String,
    pub task: String,
    pub accuracy: Score,
    /// Mean decode rate of the model over all its measured requests (all scenarios).
    pub decode_tokens_per_s: f64,
    /// Requests behind the decode rate.
    pub decode_n: usize,
    /// On the accuracy-vs-speed frontier of its task (scored the same way): no other point is at
    /// least as accurate and at least as fast, and better in one (point estimates).
    #[serde(default)]
    pub frontier: bool,
}

/// Models compared on the scenarios they share (the first model of the input is the baseline).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelComparison {
    pub baseline: String,
    pub candidate: String,
    pub scenarios: Vec<ScenarioComparison>,
}

/// A figure judged against a threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerdictRow {
    pub model: String,
    /// The scenario (performance) or task (capability).
    pub context: String,
    pub metric: String,
    pub value: f64,
    pub unit: String,
    pub verdict: Level,
    pub rule: String,
}

/// What failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureRow {
    pub run_id: String,
    pub model: String,
    pub scenario: String,
    /// An error kind (failed requests) or "unit failed".
    pub kind: String,
    pub count: usize,
    pub detail: String,
}

/// The community results row of one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommunityRow {
    /// The GPU when one was used (see [`device_name`]), else the CPU.
    pub device: String,
    pub source: String,
    pub params_m: f64,
    pub kv_cache: String,
    /// Mean output tokens per request.
    pub gen_tokens: f64,
    /// Mean decode rate over all measured requests of the model.
    pub mean_tokens_per_s: f64,
    /// Peak GPU memory over the model's units, MiB (2^20 bytes), when measured.
    pub peak_vram_mib: Option<f64>,
}

impl CommunityRow {
    /// The column names of the community table.
    pub const HEAD: [&'static str; 7] = [
        "device",
        "source",
        "params (M)",
        "KV cache",
        "gen_tokens",
        "mean tok/s",
        "peak VRAM MiB",
    ];

    /// The row's cells, as the community table shows them.
    pub fn cells(&self) -> Vec<String> {
        vec![
            self.device.clone(),
            self.source.clone(),
            format!("{:.1}", self.params_m),
            self.kv_cache.clone(),
            format!("{:.0}", self.gen_tokens),
            format!("{:.2}", self.mean_tokens_per_s),
            self.peak_vram_mib
                .map_or_else(|| "-".to_string(), |v| format!("{v:.0}")),
        ]
    }

    /// The row, ready to paste into the community table.
    pub fn markdown(&self) -> String {
        format!("| {} |", self.cells().join(" | "))
    }
}

/// Sorted TTFT values of one unit (for the latency CDF).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencySeries {
    pub run_id: String,
    pub model: String,
    pub scenario: String,
    pub ttft_ms: Vec<f64>,
}

/// Resource samples of one unit: seconds since the unit's first sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    pub run_id: String,
    pub model: String,
    pub scenario: String,
    pub t_s: Vec<f64>,
    pub rss_mb: Vec<Option<f64>>,
    pub cpu_percent: Vec<f64>,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema_version: u32,
    /// When the report was made (RFC 3339, UTC).
    pub generated: String,
    /// The timestamp in the report's file names.
    pub timestamp: String,
    pub setup: Vec<SetupRow>,
    pub performance: Vec<PerfRow>,
    pub capability: Vec<CapabilityRow>,
    pub tradeoff: Vec<TradeoffPoint>,
    pub comparisons: Vec<ModelComparison>,
    pub verdicts: Vec<VerdictRow>,
    pub failures: Vec<FailureRow>,
    pub community: Vec<CommunityRow>,
    pub latency: Vec<LatencySeries>,
    pub timelines: Vec<Timeline>,
    /// The compliance analysis, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compliance: Option<crate::compliance::Compliance>,
    /// The machines side by side (`report --machines`, or a team store holding several).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machines: Option<crate::results::machines::MachineComparison>,
    /// A study's own table and chart, at the head of the report it writes (`edgebench study`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub study: Option<StudyTable>,
}

/// A study's table as the report shows it: cells already formatted, notes under it, a chart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyTable {
    pub title: String,
    pub head: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub notes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart: Option<StudyChart>,
}

/// A bar per step, with its 95% CI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyChart {
    pub title: String,
    pub unit: String,
    pub bars: Vec<StudyBar>,
}

/// One bar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyBar {
    pub label: String,
    pub value: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci: Option<[f64; 2]>,
}

/// The label of a model: name and quantization.
pub fn model_label(name: &str, quantization: &str) -> String {
    if quantization.is_empty() || quantization == "unknown" || name.contains(quantization) {
        name.to_string()
    } else {
        format!("{name} {quantization}")
    }
}
