//! `edgebench results export`: an experiment's stored requests as JSONL, CSV or one JSON document.

use serde::Serialize;

use crate::results::PerfLine;
use crate::store::{ExperimentRow, Store, StoreError, UnitRow};

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Jsonl,
    Csv,
    Json,
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("writing CSV: {0}")]
    Csv(#[from] csv::Error),
    #[error("writing JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One row of the CSV export: the request's identity and its derived figures.
#[derive(Debug, Serialize)]
struct CsvRow<'a> {
    experiment_id: &'a str,
    config_hash: &'a str,
    model: &'a str,
    scenario: &'a str,
    target: &'a str,
    index: u32,
    warmup: bool,
    ok: bool,
    error_kind: &'a str,
    prompt_id: &'a str,
    prompt_tokens: Option<u64>,
    output_tokens: u64,
    reasoning_tokens: u64,
    token_count_source: String,
    finish_reason: String,
    ttft_ms: Option<f64>,
    first_byte_ms: Option<f64>,
    e2e_ms: f64,
    tpot_ms: Option<f64>,
    itl_ms_mean: Option<f64>,
    decode_tokens_per_s: Option<f64>,
    prefill_tokens_per_s: Option<f64>,
    output_tokens_per_s: Option<f64>,
    engine_prefill_tokens_per_s: Option<f64>,
    engine_decode_tokens_per_s: Option<f64>,
    json_valid: Option<bool>,
}

fn tag<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Renders the requests as CSV (one row per request, stable column names with units).
pub fn requests_csv(lines: &[PerfLine]) -> Result<Vec<u8>, ExportError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for l in lines {
        let itl = &l.metrics.itl_ms;
        w.serialize(CsvRow {
            experiment_id: &l.run_id,
            config_hash: &l.config_hash,
            model: &l.model,
            scenario: &l.scenario,
            target: &l.target,
            index: l.record.index,
            warmup: l.record.warmup,
            ok: l.record.ok(),
            error_kind: l.record.error.as_ref().map_or("", |e| e.kind.as_str()),
            prompt_id: &l.record.prompt_id,
            prompt_tokens: l.record.prompt_tokens,
            output_tokens: l.record.output_tokens,
            reasoning_tokens: l.record.reasoning_tokens,
            token_count_source: tag(&l.record.token_count_source),
            finish_reason: tag(&l.record.finish_reason),
            ttft_ms: l.metrics.ttft_ms,
            first_byte_ms: l.metrics.first_byte_ms,
            e2e_ms: l.metrics.e2e_ms,
            tpot_ms: l.metrics.tpot_ms,
            itl_ms_mean: crate::stats::descriptive::mean(itl).ok(),
            decode_tokens_per_s: l.metrics.decode_tokens_per_s,
            prefill_tokens_per_s: l.metrics.prefill_tokens_per_s,
            output_tokens_per_s: l.metrics.output_tokens_per_s,
            engine_prefill_tokens_per_s: l.metrics.engine_prefill_tokens_per_s,
            engine_decode_tokens_per_s: l.metrics.engine_decode_tokens_per_s,
            json_valid: l.json_valid,
        })?;
    }
    w.flush()?;
    w.into_inner().map_err(|e| ExportError::Io(e.into_error()))
}

/// The JSON export: the experiment, its units (with their reports) and every request.
#[derive(Debug, Serialize)]
pub struct ExperimentExport<'a> {
    pub experiment: &'a ExperimentRow,
    /// The machine it ran on, when the store knows it (for `import` on another store).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine: Option<crate::store::MachineRow>,
    pub units: Vec<UnitExport<'a>>,
}

/// One unit in the JSON export.
#[derive(Debug, Serialize)]
pub struct UnitExport<'a> {
    #[serde(flatten)]
    pub unit: &'a UnitRow,
    pub request_lines: &'a [PerfLine],
    /// Scored eval items, as stored.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub eval_items: Vec<serde_json::Value>,
}

/// Renders the experiment as one pretty JSON document.
pub fn experiment_json(e: &ExperimentExport<'_>) -> Result<Vec<u8>, ExportError> {
    let mut v = serde_json::to_vec_pretty(e)?;
    v.push(b'\n');
    Ok(v)
}

/// Experiment `e` of `store` in `format`: its stored requests (JSONL, CSV), or the experiment
/// with its units, requests and scored eval items (JSON).
pub fn export(
    store: &Store,
    e: &ExperimentRow,
    format: ExportFormat,
) -> Result<Vec<u8>, ExportError> {
    let units = store.units(&e.id)?;
    let mut lines: Vec<Vec<PerfLine>> = Vec::new();
    for u in &units {
        lines.push(store.requests(u.id)?);
    }
    match format {
        ExportFormat::Jsonl => Ok(crate::results::jsonl(&lines.concat())?),
        ExportFormat::Csv => requests_csv(&lines.concat()),
        ExportFormat::Json => {
            let mut out = Vec::new();
            for (u, l) in units.iter().zip(&lines) {
                let items = store
                    .eval_items(u.id)?
                    .into_iter()
                    .filter_map(|(_, j)| serde_json::from_str(&j).ok())
                    .collect();
                out.push(UnitExport {
                    unit: u,
                    request_lines: l,
                    eval_items: items,
                });
            }
            experiment_json(&ExperimentExport {
                experiment: e,
                machine: match e.machine_id.as_str() {
                    "" => None,
                    m => store.machine(m)?,
                },
                units: out,
            })
        }
    }
}
