//! Results: the one data model of what edgebench measured (request lines, unit and run
//! summaries, eval summaries and scored items, the experiment config and its hash), typed unit
//! keys, the file names users script against, atomic writes (a file appears whole or not at
//! all), and the one reader of a results folder that reports, comparisons and `results` use.

pub mod eval;
pub mod key;
pub mod machines;
pub mod reader;

pub use eval::{EvalSummary, ItemResult};
pub use key::UnitKey;
pub use reader::{Loaded, ReadError, ResultsFolder, DB_FILE};

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::backend::TargetInfo;
use crate::catalog::ModelInfo;
use crate::metrics::{RequestMetrics, UnitSummary};
use crate::monitor::MonitorSummary;
use crate::record::RequestRecord;
use crate::repro::Environment;
use crate::runner::RunPlan;

/// Writes `bytes` to `path` through a temporary file in the same folder, then renames it into
/// place; on error nothing is left at `path` or beside it.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".edgebench-")
        .suffix(".tmp")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// A file-name component: characters other than letters, digits, `.`, `-` and `_` become `-`.
pub fn sanitize(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '-'
            }
        })
        .collect();
    if out.is_empty() {
        "unknown".into()
    } else {
        out
    }
}

/// The timestamp used in file names: UTC, `YYYYMMDD_HHMMSS`.
pub fn file_timestamp(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}_{:02}{:02}{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `perf_{publisher}_{model}_{FORMAT}_{QUANT}_{scenario}_{timestamp}.jsonl`.
pub fn perf_file_name(model: &ModelInfo, scenario: &str, timestamp: &str) -> String {
    format!(
        "perf_{}_{}_{}_{}_{}_{}.jsonl",
        sanitize(&model.publisher),
        sanitize(&model.name),
        sanitize(&model.format.to_ascii_uppercase()),
        sanitize(&model.quantization),
        sanitize(scenario),
        timestamp
    )
}

/// One line of a perf JSONL file: who and what, the raw record, and the derived metrics.
/// Read through [`PerfLineWire`], the same fields flat (serde's `flatten` buffers every line
/// into an intermediate tree first: a third of the time of a report on 100,000 requests).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(from = "PerfLineWire")]
pub struct PerfLine {
    pub run_id: String,
    /// The run's config hash (see `experiment_config_{run_id}.json`).
    pub config_hash: String,
    pub model: String,
    pub publisher: String,
    /// Written as `model_format` / `model_quantization`, the names the bank study's readers
    /// look for; `format` / `quantization` from older files read too.
    #[serde(rename = "model_format")]
    pub format: String,
    #[serde(rename = "model_quantization")]
    pub quantization: String,
    pub scenario: String,
    pub target: String,
    #[serde(flatten)]
    pub record: RequestRecord,
    pub metrics: RequestMetrics,
    /// For structured-output scenarios: the answer is one valid JSON object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_valid: Option<bool>,
}

/// A perf line as written: [`PerfLine`]'s fields with [`RequestRecord`]'s in place of the
/// flattened record (the same attributes; a test checks that every line reads back unchanged).
#[derive(Deserialize)]
struct PerfLineWire {
    run_id: String,
    config_hash: String,
    model: String,
    publisher: String,
    #[serde(rename = "model_format", alias = "format")]
    format: String,
    #[serde(rename = "model_quantization", alias = "quantization")]
    quantization: String,
    scenario: String,
    target: String,
    index: u32,
    warmup: bool,
    prompt_id: String,
    t_scheduled_ns: u64,
    t_sent_ns: u64,
    t_first_byte_ns: Option<u64>,
    chunks: Vec<crate::record::Chunk>,
    t_end_ns: u64,
    prompt_tokens: Option<u64>,
    output_tokens: u64,
    #[serde(default)]
    reasoning_tokens: u64,
    token_count_source: crate::record::TokenCountSource,
    finish_reason: crate::record::FinishReason,
    #[serde(default)]
    error: Option<crate::record::RequestError>,
    #[serde(default)]
    engine_timings: Option<crate::record::EngineTimings>,
    output_text: String,
    metrics: RequestMetrics,
    #[serde(default)]
    json_valid: Option<bool>,
}

impl From<PerfLineWire> for PerfLine {
    fn from(w: PerfLineWire) -> Self {
        Self {
            run_id: w.run_id,
            config_hash: w.config_hash,
            model: w.model,
            publisher: w.publisher,
            format: w.format,
            quantization: w.quantization,
            scenario: w.scenario,
            target: w.target,
            record: RequestRecord {
                index: w.index,
                warmup: w.warmup,
                prompt_id: w.prompt_id,
                t_scheduled_ns: w.t_scheduled_ns,
                t_sent_ns: w.t_sent_ns,
                t_first_byte_ns: w.t_first_byte_ns,
                chunks: w.chunks,
                t_end_ns: w.t_end_ns,
                prompt_tokens: w.prompt_tokens,
                output_tokens: w.output_tokens,
                reasoning_tokens: w.reasoning_tokens,
                token_count_source: w.token_count_source,
                finish_reason: w.finish_reason,
                error: w.error,
                engine_timings: w.engine_timings,
                output_text: w.output_text,
            },
            metrics: w.metrics,
            json_valid: w.json_valid,
        }
    }
}

/// Renders perf lines as JSONL.
pub fn jsonl(lines: &[PerfLine]) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::new();
    for l in lines {
        serde_json::to_writer(&mut out, l)?;
        out.push(b'\n');
    }
    Ok(out)
}

/// One unit in the run summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitReport {
    #[serde(flatten)]
    pub summary: UnitSummary,
    pub monitor: MonitorSummary,
    /// The context window used for the unit, when the target sizes it.
    pub context_tokens: Option<u32>,
    /// Server log lines matching each `--log-pattern` during the unit.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub log_pattern_counts: std::collections::BTreeMap<String, u64>,
    /// The same patterns over the server's whole log, from its launch to the unit's end
    /// (warnings logged at startup, before any request, count here).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub log_pattern_counts_since_launch: std::collections::BTreeMap<String, u64>,
    /// The distinct warnings the managed server logged from its launch to the unit's end.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub server_warnings: Vec<crate::backend::managed::LogWarning>,
    /// The unit's JSONL file.
    pub file: Option<PathBuf>,
    /// How the machine settled before the unit (flags a busy machine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settle: Option<crate::hw::settle::SettleReport>,
    /// Figures from the server's own `/metrics` over the unit (`vllm_mean_ttft_ms`,
    /// `llamacpp_decode_tokens_per_s` ...), when it exposes them.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub server_metrics: std::collections::BTreeMap<String, f64>,
}

/// What made a unit's or a task's figures less trustworthy, in one line: the machine was busy
/// before it (settling) or interfered with during it (other processes, steal, throttling).
pub fn machine_warning(
    settle: Option<&crate::hw::settle::SettleReport>,
    monitor: Option<&MonitorSummary>,
) -> Option<String> {
    let parts: Vec<String> = [
        settle.and_then(|s| s.warning()),
        monitor
            .and_then(|m| m.interference.as_ref())
            .and_then(|i| i.warning()),
    ]
    .into_iter()
    .flatten()
    .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

impl UnitReport {
    /// See [`machine_warning`].
    pub fn machine_warning(&self) -> Option<String> {
        machine_warning(self.settle.as_ref(), Some(&self.monitor))
    }
}

/// One model of the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelReport {
    pub model: ModelInfo,
    pub target: TargetInfo,
    pub units: Vec<UnitReport>,
}

/// One model's setup in the reproducibility record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelSetup {
    pub model: ModelInfo,
    pub target: TargetInfo,
}

/// `results/experiment_config_{id}.json`: what was run, where, with what, and the config hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExperimentConfig {
    pub experiment_id: String,
    pub created: String,
    /// SHA-256 over the canonical JSON of [`ConfigForHash`]: equal hashes mean comparable runs.
    pub config_hash: String,
    pub environment: Environment,
    pub plan: RunPlan,
    /// Where the scenarios came from: "built-in" or the file's path.
    pub scenarios_source: String,
    pub scenarios: Vec<crate::workload::Scenario>,
    /// SHA-256 of the passages text the prompts were built from.
    pub passages_sha256: String,
    pub models: Vec<ModelSetup>,
    /// Eval experiments: the eval configuration the hash is taken over (tasks, sample sizes,
    /// shots, agreement, seed ...); `plan` and `scenarios` are then unused defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval: Option<serde_json::Value>,
    /// The run request the experiment was started from (without its API key), so `--resume`
    /// alone runs it again as asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<serde_json::Value>,
}

/// The part of a run's configuration that decides its results (not the machine, not the time).
#[derive(Debug, Clone, Serialize)]
pub struct ConfigForHash<'a> {
    pub plan: &'a RunPlan,
    pub scenarios: &'a [crate::workload::Scenario],
    pub passages_sha256: &'a str,
    /// Per model: name, quantization, parameters, file size, engine, threads, context size.
    pub models: Vec<serde_json::Value>,
}

/// SHA-256 (hex) of the canonical JSON (keys sorted, no spaces) of a value.
pub fn canonical_hash<T: Serialize>(value: &T) -> Result<String, serde_json::Error> {
    use sha2::{Digest, Sha256};
    // serde_json::Value keeps object keys sorted, which makes the text canonical.
    let v = serde_json::to_value(value)?;
    Ok(hex::encode(Sha256::digest(serde_json::to_vec(&v)?)))
}

/// The config hash of a run.
pub fn config_hash(
    plan: &RunPlan,
    scenarios: &[crate::workload::Scenario],
    passages_sha256: &str,
    models: &[ModelSetup],
) -> Result<String, serde_json::Error> {
    let models = models
        .iter()
        .map(|m| {
            serde_json::json!({
                "name": m.model.name,
                "quantization": m.model.quantization,
                "format": m.model.format,
                "parameters": m.model.parameters,
                "file_size_bytes": m.model.file_size_bytes,
                "engine": m.target.engine,
                "kind": m.target.kind,
                "threads": m.target.threads,
            })
        })
        .collect();
    canonical_hash(&ConfigForHash {
        plan,
        scenarios,
        passages_sha256,
        models,
    })
}

/// The summary of a run (what `--json` prints).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunSummary {
    pub run_id: String,
    pub started: String,
    pub config_hash: String,
    pub environment: Environment,
    pub plan: RunPlan,
    pub models: Vec<ModelReport>,
    /// `--sweep`: throughput and latency per step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sweep: Vec<crate::workload::sweep::SweepStep>,
}

impl RunSummary {
    /// A run's summary from its configuration and its stored units (those of every invocation
    /// of a resumed run): what `summary_{id}.json` holds, and what a team store gives back
    /// without the file. `run_id` is the experiment's id in the store it was read from (a copy
    /// renamed on push or import keeps its old id in its configuration).
    pub fn from_units(
        run_id: &str,
        config: &ExperimentConfig,
        units: &[crate::store::UnitRow],
    ) -> Self {
        let models: Vec<ModelReport> = config
            .models
            .iter()
            .map(|setup| ModelReport {
                model: setup.model.clone(),
                target: setup.target.clone(),
                units: units
                    .iter()
                    .filter(|u| u.key.is_model(&setup.model))
                    .filter_map(|u| u.report.clone())
                    .collect(),
            })
            .collect();
        let sweep = models
            .iter()
            .flat_map(|m| &m.units)
            .filter_map(|u| {
                let sc = config
                    .scenarios
                    .iter()
                    .find(|s| s.name == u.summary.scenario)?;
                Some(crate::workload::sweep::step_row(
                    sc.sweep_of.as_deref()?,
                    sc.concurrency?,
                    &u.summary,
                ))
            })
            .collect();
        Self {
            run_id: run_id.to_string(),
            started: config.created.clone(),
            config_hash: config.config_hash.clone(),
            environment: config.environment.clone(),
            plan: config.plan.clone(),
            models,
            sweep,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> ModelInfo {
        ModelInfo {
            path: "m.gguf".into(),
            key: None,
            name: "SmolLM2-135M-Instruct".into(),
            publisher: "HuggingFaceTB".into(),
            format: "gguf".into(),
            quantization: "Q4_1".into(),
            architecture: "llama".into(),
            parameters: 1,
            context_length: None,
            license: None,
            has_chat_template: true,
            file_size_bytes: 1,
        }
    }

    #[test]
    fn perf_file_name_follows_the_contract() {
        let t = time::macros::datetime!(2026-11-24 19:03:05 UTC);
        assert_eq!(
            perf_file_name(&model(), "interactive_assistant", &file_timestamp(t)),
            "perf_HuggingFaceTB_SmolLM2-135M-Instruct_GGUF_Q4_1_interactive_assistant_20261124_190305.jsonl"
        );
        let mut m = model();
        m.publisher = "Some Org/x".into();
        assert!(perf_file_name(&m, "s", "t").starts_with("perf_Some-Org-x_"));
        assert_eq!(sanitize(""), "unknown");
    }

    #[test]
    fn atomic_write_replaces_whole_files_and_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/out.jsonl");
        atomic_write(&p, b"one").unwrap();
        atomic_write(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let mode =
            std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&p).unwrap().permissions());
        assert_eq!(
            mode & 0o777,
            0o644,
            "result files are readable by others, like any file"
        );
        let names: Vec<_> = std::fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("out.jsonl")]);
    }

    #[test]
    fn canonical_hash_ignores_key_order_and_sees_values() {
        let a = serde_json::json!({"b": 1, "a": [1, 2]});
        let b: serde_json::Value = serde_json::from_str(r#"{"a":[1,2],"b":1}"#).unwrap();
        assert_eq!(canonical_hash(&a).unwrap(), canonical_hash(&b).unwrap());
        let c = serde_json::json!({"b": 2, "a": [1, 2]});
        assert_ne!(canonical_hash(&a).unwrap(), canonical_hash(&c).unwrap());
        assert_eq!(canonical_hash(&a).unwrap().len(), 64);
    }

    #[test]
    fn config_hash_depends_on_plan_not_on_the_machine() {
        let setup = ModelSetup {
            model: model(),
            target: TargetInfo::default(),
        };
        let plan = RunPlan::default();
        let h1 = config_hash(&plan, &[], "x", std::slice::from_ref(&setup)).unwrap();
        let mut other = setup.clone();
        other.target.model_load_ms = Some(123.0);
        other.target.pid = Some(99);
        assert_eq!(h1, config_hash(&plan, &[], "x", &[other]).unwrap());
        let seeded = RunPlan {
            seed: 7,
            ..RunPlan::default()
        };
        assert_ne!(h1, config_hash(&seeded, &[], "x", &[setup]).unwrap());
    }

    #[test]
    fn atomic_write_into_a_file_path_fails_cleanly() {
        let d = tempfile::tempdir().unwrap();
        let blocker = d.path().join("file");
        std::fs::write(&blocker, b"x").unwrap();
        assert!(atomic_write(&blocker.join("out.json"), b"y").is_err());
    }
}
