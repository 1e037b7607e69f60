//! edgebench-web: the local web UI (`edgebench serve`). Pages and a JSON API that start, observe
//! and cancel experiments only through the library's `experiment`, and read results only
//! through `results`. Everything the pages load is compiled into the binary.
#![forbid(unsafe_code)]

mod api;
pub mod runs;

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use edgebench_core::experiment::EngineLoader;
use edgebench_core::repro::Environment;
use serde_json::json;

/// What the server works with.
pub struct WebConfig {
    /// The results folder runs write to and pages read from.
    pub results: PathBuf,
    /// A team store that runs write to and pages read from instead of the folder's database
    /// (result files still go to `results`).
    pub store: Option<edgebench_core::store::StoreLocation>,
    /// Required on every request when set (`Authorization: Bearer`, or the cookie the
    /// `?token=` URL sets).
    pub token: Option<String>,
    pub engine: Arc<dyn EngineLoader>,
    /// The machine and software, recorded with every run.
    pub environment: Environment,
    /// The llama.cpp backends this build has (for the hardware page).
    pub backends: Vec<&'static str>,
    pub version: String,
}

/// The server's state.
pub struct AppState {
    pub config: WebConfig,
    pub runs: runs::Runs,
}

/// The cookie that carries the token for the browser.
const COOKIE: &str = "edgebench_token";

/// An error as the API answers it: a status and `{"error": "..."}`.
pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

/// The router: pages, the JSON API under `/api`, the token check and the cross-site guard.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(api::index))
        .route("/api/health", get(api::health))
        .route("/api/hardware", get(api::hardware))
        .route("/api/experiments", get(api::experiments))
        .route("/api/experiments/{id}", get(api::experiment))
        .route("/api/experiments/{id}/export", get(api::export_experiment))
        .route("/api/compare", get(api::compare))
        // Another machine's export holds every request: more than axum's 2 MB default.
        .route(
            "/api/imports",
            post(api::import_machine).layer(axum::extract::DefaultBodyLimit::max(256 << 20)),
        )
        .route("/api/machines", get(api::machines))
        .route("/api/runs", post(api::start_run))
        .route("/api/evals", post(api::start_eval))
        .route("/api/runs/{id}", delete(api::cancel_run))
        .route("/api/runs/{id}/events", get(api::run_events))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// The `token=` parameter of a query string.
fn query_token(query: Option<&str>) -> Option<&str> {
    query?.split('&').find_map(|kv| kv.strip_prefix("token="))
}

/// The token a request carries, if any: the header, the `?token=` parameter, or the cookie.
fn request_token(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(v.trim().to_string());
    }
    if let Some(t) = query_token(query) {
        return Some(t.to_string());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            c.trim()
                .strip_prefix(&format!("{COOKIE}="))
                .map(str::to_string)
        })
}

/// Refuses requests without the token (when one is set) and state-changing requests from
/// another site (an `Origin` that is not this server); the `?token=` URL sets the cookie.
async fn guard(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let headers = req.headers().clone();
    let query = req.uri().query().map(str::to_string);
    let from_query = query_token(query.as_deref()).is_some();
    if let Some(want) = &state.config.token {
        let got = request_token(&headers, query.as_deref());
        if got.as_deref() != Some(want.as_str()) {
            return ApiError(
                StatusCode::UNAUTHORIZED,
                "a token is required: open the URL the server printed, or send Authorization: Bearer TOKEN".into(),
            )
            .into_response();
        }
    }
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
        let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
        let same = match (origin, host) {
            (None, _) => true,
            (Some(o), Some(h)) => o.split_once("://").is_some_and(|(_, rest)| rest == h),
            (Some(_), None) => false,
        };
        if !same {
            return ApiError(
                StatusCode::FORBIDDEN,
                "cross-site request refused (Origin is not this server)".into(),
            )
            .into_response();
        }
    }
    let mut resp = next.run(req).await;
    if let (true, Some(t)) = (from_query, &state.config.token) {
        if let Ok(v) = format!("{COOKIE}={t}; Path=/; HttpOnly; SameSite=Strict").parse() {
            resp.headers_mut().insert(header::SET_COOKIE, v);
        }
    }
    resp
}

/// Serves `listener` until `shutdown` resolves; a run still going is cancelled (resumable).
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: WebConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let state = Arc::new(AppState {
        config,
        runs: runs::Runs::default(),
    });
    let s = state.clone();
    let shutdown = async move {
        shutdown.await;
        s.runs.cancel_all();
        // Let the run record that it was interrupted.
        for _ in 0..100 {
            if s.runs.active().is_none() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    };
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
