//! `edgebench serve`: the local web UI on loopback (or, with a token, on another address), until
//! Ctrl-C, which cancels a run going the way Ctrl-C on `edgebench run` does (resumable).

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use edgebench_llama::LlamaLoader;
use edgebench_web::WebConfig;
use rand::RngCore;

use super::run::environment;
use crate::args::ServeArgs;

pub fn serve(a: ServeArgs) -> anyhow::Result<ExitCode> {
    super::block_on(serve_async(a))
}

async fn serve_async(a: ServeArgs) -> anyhow::Result<ExitCode> {
    let token = match (&a.token, a.bind.ip().is_loopback()) {
        (Some(t), _) if t.is_empty() => anyhow::bail!("--token: must not be empty"),
        (Some(t), _) => Some(t.clone()),
        (None, true) => None,
        (None, false) => {
            let mut b = [0u8; 16];
            rand::thread_rng().fill_bytes(&mut b);
            Some(hex::encode(b))
        }
    };
    let listener = tokio::net::TcpListener::bind(a.bind)
        .await
        .with_context(|| format!("--bind {}", a.bind))?;
    let url = format!("http://{}/", listener.local_addr()?);
    match &token {
        Some(t) => eprintln!("edgebench web UI: {url}?token={t}"),
        None => eprintln!("edgebench web UI: {url}"),
    }
    eprintln!(
        "results: {} · Ctrl-C stops the server (a run going is interrupted, resumable)",
        a.results.display()
    );
    let store = a
        .store
        .as_deref()
        .map(edgebench_core::store::StoreLocation::parse);
    if let Some(l) = &store {
        // A store that cannot be reached is refused now, not on the first page.
        edgebench_core::store::Store::connect(l)
            .with_context(|| format!("--store {}", l.shown()))?;
        eprintln!("store: {}", l.shown());
    }
    let config = WebConfig {
        results: a.results,
        store,
        token,
        engine: Arc::new(LlamaLoader),
        environment: environment(),
        backends: edgebench_llama::built_backends(),
        version: env!("CARGO_PKG_VERSION").to_string(),
    };
    edgebench_web::serve(listener, config, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .context("web server")?;
    Ok(ExitCode::SUCCESS)
}
