//! The JSON API the pages use (and scripts may): health, hardware, experiments from the store
//! and their downloads, comparisons of two experiments, starting a run, its live events over
//! server-sent events, and cancelling it.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse};
use axum::Json;
use edgebench_core::experiment::eval_request::EvalRequest;
use edgebench_core::experiment::request::RunRequest;
use edgebench_core::results::ResultsFolder;
use futures_util::stream::{self, Stream, StreamExt};
use serde_json::{json, Value};
use tokio::sync::broadcast;

use crate::runs::{Job, StartError};
use crate::{ApiError, AppState};

/// The single page (hardware, benchmark, results), with its script and style inline.
pub async fn index() -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "no-store")],
        Html(include_str!("../assets/index.html")),
    )
}

pub async fn health(State(s): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({"status": "ok", "version": s.config.version}))
}

/// What `hw detect --json` prints.
pub async fn hardware(State(s): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let backends = s.config.backends.clone();
    let h = tokio::task::spawn_blocking(move || edgebench_core::hw::detect(&backends))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(serde_json::to_value(h).unwrap_or(Value::Null)))
}

fn folder(s: &AppState) -> Result<Option<ResultsFolder>, ApiError> {
    let internal = |e: edgebench_core::results::ReadError| {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    };
    if let Some(store) = &s.config.store {
        return ResultsFolder::open_store(store).map(Some).map_err(internal);
    }
    if !s.config.results.is_dir() {
        return Ok(None);
    }
    ResultsFolder::open(&s.config.results)
        .map(Some)
        .map_err(internal)
}

/// The experiments in the store, newest first, with their progress.
pub async fn experiments(State(s): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let Some(f) = folder(&s)? else {
        return Ok(Json(json!([])));
    };
    let Some(store) = f.store() else {
        return Ok(Json(json!([])));
    };
    let err = |e: edgebench_core::store::StoreError| {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    };
    let mut out = Vec::new();
    for e in store.experiments().map_err(err)? {
        let units = store.units(&e.id).map_err(err)?;
        let done = units.iter().filter(|u| u.status == "done").count();
        out.push(json!({
            "id": e.id, "kind": e.kind, "created": e.created, "status": e.status,
            "config_hash": e.config_hash, "units_done": done, "units_total": units.len(),
        }));
    }
    Ok(Json(Value::Array(out)))
}

/// One experiment: its row and units (with their summaries).
pub async fn experiment(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let missing = || ApiError(StatusCode::NOT_FOUND, format!("no experiment {id:?}"));
    let f = folder(&s)?.ok_or_else(missing)?;
    let store = f.store().ok_or_else(missing)?;
    let err = |e: edgebench_core::store::StoreError| {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    };
    let e = store.experiment(&id).map_err(err)?.ok_or_else(missing)?;
    let units = store.units(&id).map_err(err)?;
    Ok(Json(json!({"experiment": e, "units": units})))
}

/// `?format=` of a download.
#[derive(serde::Deserialize)]
pub struct ExportQuery {
    format: Option<String>,
}

/// One experiment's requests as a file to download: `csv`, `json` (the experiment with its
/// units and requests) or `jsonl` (default), as `edgebench results export` writes them.
pub async fn export_experiment(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<ExportQuery>,
) -> Result<impl IntoResponse, ApiError> {
    use edgebench_core::report::export::{self, ExportFormat};
    let (format, ext, mime) = match q.format.as_deref().unwrap_or("jsonl") {
        "csv" => (ExportFormat::Csv, "csv", "text/csv; charset=utf-8"),
        "json" => (ExportFormat::Json, "json", "application/json"),
        "jsonl" => (ExportFormat::Jsonl, "jsonl", "application/x-ndjson"),
        other => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!("format: {other:?} is not csv, json or jsonl"),
            ))
        }
    };
    let missing = || ApiError(StatusCode::NOT_FOUND, format!("no experiment {id:?}"));
    let f = folder(&s)?.ok_or_else(missing)?;
    let store = f.store().ok_or_else(missing)?;
    let internal = |e: String| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e);
    let e = store
        .experiment(&id)
        .map_err(|e| internal(e.to_string()))?
        .ok_or_else(missing)?;
    let bytes = export::export(store, &e, format).map_err(|e| internal(e.to_string()))?;
    let file = format!("attachment; filename=\"edgebench_{id}.{ext}\"");
    Ok((
        [
            (header::CONTENT_TYPE, mime.to_string()),
            (header::CONTENT_DISPOSITION, file),
        ],
        bytes,
    ))
}

/// `?baseline=&candidate=` of a comparison: experiment ids (or result files) in the results
/// folder.
#[derive(serde::Deserialize)]
pub struct CompareQuery {
    baseline: String,
    candidate: String,
}

/// Two experiments compared as `edgebench compare A B` does: the comparison (tests, decision)
/// and its Markdown.
pub async fn compare(
    State(s): State<Arc<AppState>>,
    Query(q): Query<CompareQuery>,
) -> Result<Json<Value>, ApiError> {
    use edgebench_core::compare::{self, CompareOptions, Criteria};
    let dir = s.config.results.clone();
    let store = s.config.store.clone();
    let out = tokio::task::spawn_blocking(move || {
        let bad = |e: compare::CompareError| ApiError(StatusCode::BAD_REQUEST, e.to_string());
        let (b, c) = match &store {
            Some(store) => {
                let f = ResultsFolder::open_store(store)
                    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
                (
                    compare::load_stored(&q.baseline, &f).map_err(bad)?,
                    compare::load_stored(&q.candidate, &f).map_err(bad)?,
                )
            }
            None => (
                compare::load(&q.baseline, &dir).map_err(bad)?,
                compare::load(&q.candidate, &dir).map_err(bad)?,
            ),
        };
        let cmp = compare::compare(&b, &c, &Criteria::default(), &CompareOptions::default())
            .map_err(bad)?;
        let markdown = edgebench_core::report::compare_md::render(&cmp);
        Ok::<_, ApiError>(json!({"comparison": cmp, "markdown": markdown}))
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    Ok(Json(out))
}

/// `?label=` of an import.
#[derive(serde::Deserialize)]
pub struct ImportQuery {
    label: String,
}

/// The folder of imported machines' results, inside the results folder.
fn imports_dir(s: &AppState) -> std::path::PathBuf {
    s.config.results.join("imports")
}

/// Takes another machine's `results export --format json` file (the body) under a label: checked,
/// then kept as `imports/LABEL.json` in the results folder for the machine comparison.
pub async fn import_machine(
    State(s): State<Arc<AppState>>,
    Query(q): Query<ImportQuery>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    use edgebench_core::results::machines::MachineResults;
    let ok = !q.label.is_empty()
        && q.label.len() <= 64
        && q.label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && !q.label.starts_with('.');
    if !ok {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "label: 1 to 64 letters, digits, '-', '_' or '.', not starting with '.'".into(),
        ));
    }
    let m = MachineResults::from_export(&body, &q.label)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("body: {e}")))?;
    let dir = imports_dir(&s);
    let path = dir.join(format!("{}.json", q.label));
    let internal = |e: std::io::Error| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    std::fs::create_dir_all(&dir).map_err(internal)?;
    edgebench_core::results::atomic_write(&path, &body).map_err(internal)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"label": q.label, "units": m.units.len()})),
    ))
}

/// This machine's results beside every imported machine's: the same model x scenario side by
/// side with CIs, and the machines' hardware (JSON and Markdown).
pub async fn machines(State(s): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    use edgebench_core::results::machines::{self, MachineResults};
    let results = s.config.results.clone();
    let store = s.config.store.clone();
    let imports = imports_dir(&s);
    let out = tokio::task::spawn_blocking(move || {
        let err =
            |e: machines::MachineError| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
        let mut sets = Vec::new();
        match &store {
            // Every machine of the team store, by label.
            Some(store) => {
                let f = ResultsFolder::open_store(store)
                    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
                let labels = machines::store_labels(&f).map_err(err)?;
                for l in labels {
                    sets.push(MachineResults::from_store(&f, &l).map_err(err)?);
                }
            }
            None if results.is_dir() => {
                sets.push(MachineResults::from_folder(&results, "this machine").map_err(err)?);
            }
            None => {}
        }
        let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&imports)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|x| x == "json"));
        files.sort();
        for f in files {
            let label = f
                .file_stem()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let bytes = std::fs::read(&f)
                .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
            sets.push(MachineResults::from_export(&bytes, &label).map_err(err)?);
        }
        let c = machines::compare(&sets, &edgebench_core::compare::CompareOptions::default());
        let markdown = machines::to_markdown(&c);
        Ok::<_, ApiError>(json!({"comparison": c, "markdown": markdown}))
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    Ok(Json(out))
}

/// Refused before a plan is built (building may fetch a model); `Runs::start` checks again.
fn refuse_if_busy(s: &AppState) -> Result<(), ApiError> {
    match s.runs.active() {
        Some(r) => Err(ApiError(
            StatusCode::CONFLICT,
            StartError::Busy(r.id.clone()).to_string(),
        )),
        None => Ok(()),
    }
}

/// Builds a plan off the async threads (resolving models may fetch a catalog model) and starts
/// it: 202 with the run's id, 400 for a bad request, 409 while another run is going.
async fn start_job(
    s: Arc<AppState>,
    build: impl FnOnce() -> Result<Job, edgebench_core::experiment::ExperimentError> + Send + 'static,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    refuse_if_busy(&s)?;
    let job = tokio::task::spawn_blocking(build)
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))?;
    let run = s
        .runs
        .start(job, s.config.engine.clone())
        .map_err(|e| ApiError(StatusCode::CONFLICT, e.to_string()))?;
    Ok((StatusCode::ACCEPTED, Json(json!({"id": run.id}))))
}

/// Starts a run from a JSON body naming what `edgebench run` takes; 409 while one is going.
pub async fn start_run(
    State(s): State<Arc<AppState>>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let mut req: RunRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("request body: {e}")))?;
    if req.serve.is_some() {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "serve: starting a server command is not offered over HTTP; start it yourself and name its endpoint".into(),
        ));
    }
    // Results go where the server keeps them.
    req.results = s.config.results.clone();
    let env = s.config.environment.clone();
    let store = s.config.store.clone();
    start_job(s, move || {
        req.into_plan(env, "edgebench serve (web UI)".into(), None, &|_| {})
            .map(|mut p| {
                p.store = store;
                Job::Perf(Box::new(p))
            })
    })
    .await
}

/// Starts an evaluation from a JSON body naming what `edgebench eval` takes (`task`, `model`,
/// `sample_size`, `endpoint` ...); 409 while a run is going.
pub async fn start_eval(
    State(s): State<Arc<AppState>>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let mut req: EvalRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("request body: {e}")))?;
    req.results = s.config.results.clone();
    let env = s.config.environment.clone();
    let store = s.config.store.clone();
    start_job(s, move || {
        req.into_plan(env, "edgebench serve (web UI)".into(), &|_| {})
            .map(|mut p| {
                p.store = store;
                Job::Eval(Box::new(p))
            })
    })
    .await
}

/// Cancels run `id` (what it measured is kept and can be resumed).
pub async fn cancel_run(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let run = s
        .runs
        .get(&id)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no run {id:?}")))?;
    run.cancel.cancel();
    Ok(Json(json!({"id": id, "cancelled": true})))
}

/// The run's events as server-sent events: those so far, then live ones until it ends.
pub async fn run_events(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let run = s
        .runs
        .get(&id)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no run {id:?}")))?;
    let (history, rx) = run.subscribe();
    // Those so far, then live ones; the stream ends right after the run's "finished" event.
    let events = stream::unfold(
        (history.into_iter(), rx, false),
        |(mut past, mut rx, ended)| async move {
            if ended {
                return None;
            }
            let v = match past.next() {
                Some(v) => v,
                None => loop {
                    match rx.as_mut()?.recv().await {
                        Ok(v) => break v,
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                },
            };
            let end = v["type"] == "finished";
            Some((v, (past, rx, end)))
        },
    )
    .map(|v| Ok(SseEvent::default().data(v.to_string())));
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
