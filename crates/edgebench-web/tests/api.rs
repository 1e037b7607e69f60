//! The web API with axum's own test tools: health, a run started over the API that writes what
//! the CLI writes (store rows, JSONL, summary) and streams its events, one run at a time, bad
//! bodies named, cancellation, and the token and cross-site guards.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use edgebench_core::experiment::NoEngine;
use edgebench_core::repro::Environment;
use edgebench_web::{router, runs::Runs, AppState, WebConfig};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

fn state(results: &std::path::Path, token: Option<&str>) -> Arc<AppState> {
    Arc::new(AppState {
        config: WebConfig {
            store: None,
            results: results.to_path_buf(),
            token: token.map(str::to_string),
            engine: Arc::new(NoEngine),
            environment: Environment::capture("test", None, &["CPU"]),
            backends: vec!["CPU"],
            version: "test".into(),
        },
        runs: Runs::default(),
    })
}

async fn call(s: &Arc<AppState>, req: Request<Body>) -> (StatusCode, String) {
    let resp = router(s.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn post(path: &str, body: Value) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

/// The JSON events of a finished run's event stream.
fn events(sse: &str) -> Vec<Value> {
    sse.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_started_over_the_api_writes_what_the_cli_writes_and_streams_its_events() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(dir.path(), None);
    let (st, body) = call(&s, get("/api/health")).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["status"],
        "ok"
    );

    let (st, body) = call(
        &s,
        post(
            "/api/runs",
            json!({"endpoint": "mock", "runs": 3, "warmup": 1, "cooldown_s": 0, "max_tokens": 4,
                   "scenarios": ["interactive_assistant"], "settle_timeout_s": 0}),
        ),
    )
    .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The stream ends with the run.
    let (st, sse) = call(&s, get(&format!("/api/runs/{id}/events"))).await;
    assert_eq!(st, StatusCode::OK);
    let ev = events(&sse);
    let kinds: Vec<&str> = ev.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"started"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"finished"), "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "request_done").count(), 4);
    let end = ev.last().unwrap();
    assert_eq!(end["status"], "done", "{end}");
    let exp = end["experiment_id"].as_str().unwrap();

    // What the CLI writes: the store's rows and the files.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for want in [
        "edgebench.db".to_string(),
        format!("summary_{exp}.json"),
        format!("experiment_config_{exp}.json"),
    ] {
        assert!(names.contains(&want), "{want} in {names:?}");
    }
    assert!(names
        .iter()
        .any(|n| n.starts_with("perf_") && n.ends_with(&format!("{exp}.jsonl"))));
    let (st, body) = call(&s, get(&format!("/api/experiments/{exp}"))).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["experiment"]["status"], "done");
    assert_eq!(v["units"][0]["requests"], 4);
    let (_, body) = call(&s, get("/api/experiments")).await;
    assert!(body.contains(exp), "{body}");

    // Downloads: what `results export` writes, as a file.
    let resp = router(s.clone())
        .oneshot(get(&format!("/api/experiments/{exp}/export?format=csv")))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let disposition = resp.headers()[header::CONTENT_DISPOSITION]
        .to_str()
        .unwrap();
    assert!(
        disposition.contains(&format!("edgebench_{exp}.csv")),
        "{disposition}"
    );
    let csv = resp.into_body().collect().await.unwrap().to_bytes();
    let csv = String::from_utf8_lossy(&csv);
    assert!(csv.lines().next().unwrap().contains("ttft_ms"), "{csv}");
    assert_eq!(
        csv.lines().count(),
        1 + 4,
        "a header and one line per request"
    );
    let (st, body) = call(
        &s,
        get(&format!("/api/experiments/{exp}/export?format=xml")),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(body.contains("format"), "{body}");
    let (st, _) = call(&s, get("/api/experiments/nope/export?format=csv")).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    // A comparison, as `compare A B` makes it (here an experiment against itself).
    let (st, body) = call(
        &s,
        get(&format!("/api/compare?baseline={exp}&candidate={exp}")),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(v["comparison"]["decision"]["verdict"].is_string(), "{v}");
    assert!(v["markdown"].as_str().unwrap().contains("ttft_ms"), "{v}");
    let (st, body) = call(
        &s,
        get(&format!("/api/compare?baseline={exp}&candidate=missing")),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("missing"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_run_at_a_time_and_a_cancelled_run_is_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(dir.path(), None);
    let long = json!({"endpoint": "mock", "runs": 200, "warmup": 0, "cooldown_s": 0.05,
                      "max_tokens": 4, "scenarios": ["interactive_assistant"], "settle_timeout_s": 0});
    let (st, body) = call(&s, post("/api/runs", long.clone())).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, body) = call(&s, post("/api/runs", long)).await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    assert!(body.contains(&id), "{body}");
    let (st, _) = call(
        &s,
        Request::delete(format!("/api/runs/{id}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let (_, sse) = call(&s, get(&format!("/api/runs/{id}/events"))).await;
    let end = events(&sse).pop().unwrap();
    assert_eq!(end["status"], "interrupted", "{end}");
}

#[tokio::test]
async fn bad_bodies_are_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(dir.path(), None);
    let (st, body) = call(&s, post("/api/runs", json!({"runz": 2}))).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(body.contains("runz"), "{body}");
    let (st, body) = call(
        &s,
        post("/api/runs", json!({"runs": 0, "endpoint": "mock"})),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(body.contains("runs"), "{body}");
    let (st, body) = call(
        &s,
        post(
            "/api/runs",
            json!({"endpoint": "mock", "scenarios": ["nope"]}),
        ),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(body.contains("nope"), "{body}");
    let (st, body) = call(
        &s,
        post(
            "/api/runs",
            json!({"endpoint": "http://127.0.0.1:9/v1", "serve": "sleep 1"}),
        ),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(body.contains("serve"), "{body}");
    let (st, _) = call(&s, get("/api/runs/run-99/events")).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_token_protected_server_refuses_requests_without_it_and_cross_site_posts() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(dir.path(), Some("sekrit"));
    let (st, body) = call(&s, get("/api/health")).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{body}");
    let bearer = Request::get("/api/health")
        .header(header::AUTHORIZATION, "Bearer sekrit")
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&s, bearer).await.0, StatusCode::OK);
    // The printed URL sets the cookie the browser then sends.
    let resp = router(s.clone())
        .oneshot(get("/?token=sekrit"))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let cookie = resp.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(cookie.starts_with("edgebench_token=sekrit") && cookie.contains("HttpOnly"));
    let with_cookie = Request::get("/api/health")
        .header(header::COOKIE, "edgebench_token=sekrit")
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&s, with_cookie).await.0, StatusCode::OK);
    let wrong = Request::get("/api/health")
        .header(header::AUTHORIZATION, "Bearer nope")
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&s, wrong).await.0, StatusCode::UNAUTHORIZED);
    // A state-changing request from another site is refused even with the cookie.
    let cross = Request::post("/api/runs")
        .header(header::COOKIE, "edgebench_token=sekrit")
        .header(header::HOST, "127.0.0.1:8686")
        .header(header::ORIGIN, "http://evil.example")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json!({"endpoint": "mock"}).to_string()))
        .unwrap();
    assert_eq!(call(&s, cross).await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_page_loads_nothing_from_another_host() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(dir.path(), None);
    let (st, html) = call(&s, get("/")).await;
    assert_eq!(st, StatusCode::OK);
    assert!(html.contains("<title>edgebench</title>"));
    for bad in ["http://", "https://", "//cdn", "@import"] {
        assert!(!html.contains(bad), "the page references {bad}");
    }
    // Links only to inline data (the empty icon that keeps browsers from asking for one).
    for (i, _) in html.match_indices("<link") {
        let tag = &html[i..i + html[i..].find('>').unwrap()];
        assert!(tag.contains("href=\"data:"), "{tag}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eval_started_over_the_api_scores_items_and_names_bad_fields() {
    use edgebench_core::backend::mock_server::{MockServer, Response};
    let dir = tempfile::tempdir().unwrap();
    let s = state(dir.path(), None);
    let (st, body) = call(&s, post("/api/evals", json!({"task": "bogus"}))).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(body.contains("task"), "{body}");
    let (st, body) = call(&s, post("/api/evals", json!({"task": "mmlu", "shotz": 5}))).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(body.contains("shotz"), "{body}");
    let (st, body) = call(
        &s,
        post(
            "/api/evals",
            json!({"task": "banking77", "answer": "greedy"}),
        ),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(body.contains("answer") && body.contains("greedy"), "{body}");

    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets");
    if !data.join("banking77/test.csv").is_file() {
        assert!(
            std::env::var("EDGEBENCH_REQUIRE_PEERS").is_err(),
            "no datasets"
        );
        eprintln!("SKIPPED: no datasets at {}", data.display());
        return;
    }
    // A server that always answers with one intent.
    let server = MockServer::start(|req| {
        if req.path.ends_with("/models") {
            return Response::json(200, &json!({"data": [{"id": "m"}]}));
        }
        Response::json(
            200,
            &json!({"choices": [{"index": 0, "finish_reason": "stop",
                "message": {"role": "assistant", "content": "card_arrival"}}]}),
        )
    })
    .await
    .unwrap();
    let (st, body) = call(
        &s,
        post(
            "/api/evals",
            json!({"task": "banking77", "endpoint": server.base_url(), "sample_size": 6,
                   "data_dir": data, "settle_timeout_s": 0}),
        ),
    )
    .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, sse) = call(&s, get(&format!("/api/runs/{id}/events"))).await;
    let ev = events(&sse);
    let end = ev.last().unwrap();
    assert_eq!(end["status"], "done", "{end}");
    assert!(
        end["scores"][0].as_str().unwrap().contains("banking77"),
        "{end}"
    );
    assert!(ev.iter().any(|e| e["type"] == "items_scored"), "{ev:?}");
    let exp = end["experiment_id"].as_str().unwrap();
    let (st, body) = call(&s, get(&format!("/api/experiments/{exp}"))).await;
    assert_eq!(st, StatusCode::OK, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_machines_export_is_imported_and_compared() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(dir.path(), None);
    let (st, body) = call(
        &s,
        post(
            "/api/runs",
            json!({"endpoint": "mock", "runs": 3, "warmup": 0, "cooldown_s": 0, "max_tokens": 4,
                   "scenarios": ["interactive_assistant"], "settle_timeout_s": 0}),
        ),
    )
    .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, sse) = call(&s, get(&format!("/api/runs/{id}/events"))).await;
    let exp = events(&sse).last().unwrap()["experiment_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, export) = call(
        &s,
        get(&format!("/api/experiments/{exp}/export?format=json")),
    )
    .await;
    let import = |label: &str, body: String| {
        Request::post(format!("/api/imports?label={label}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap()
    };
    // Bad labels and bodies are named.
    let (st, body) = call(&s, import("..%2Fx", export.clone())).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(body.contains("label"), "{body}");
    let (st, body) = call(&s, import("b", "{}".into())).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(body.contains("body"), "{body}");
    let (st, body) = call(&s, import("laptop-b", export)).await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    assert!(dir.path().join("imports/laptop-b.json").is_file());
    let (st, body) = call(&s, get("/api/machines")).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let labels: Vec<&str> = v["comparison"]["machines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["this machine", "laptop-b"]);
    let row = &v["comparison"]["rows"][0];
    assert_eq!(row["scenario"], "interactive_assistant");
    // The same experiment on both sides: the same figures.
    assert_eq!(row["cells"][0], row["cells"][1], "{row}");
    assert_eq!(row["cells"][0]["ttft_ms"]["n"], 3, "{row}");
}
