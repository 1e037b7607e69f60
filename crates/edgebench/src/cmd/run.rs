//! `edgebench run`: benchmark models on the scenarios (embedded engine or an OpenAI-compatible
//! server), write the result files, print the summary.

use anyhow::{anyhow, bail, Context};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use edgebench_core::catalog::{self, ModelInfo, CATALOG, DEFAULT_MODEL};
use edgebench_core::clock::Clock;
use edgebench_core::metrics::{self, UnitContext};
use edgebench_core::monitor;
use edgebench_core::report::files::{self, ExperimentConfig, ModelReport, ModelSetup, UnitReport};
use edgebench_core::report::{self, PerfLine, RunSummary};
use edgebench_core::repro::{self, Environment};
use edgebench_core::runner::{self, CancelFlag, RunError, RunEvent, RunPlan};
use edgebench_core::store::{ExperimentRow, Store};
use edgebench_core::target::managed::{self, ManagedServer};
use edgebench_core::target::mock::MockTarget;
use edgebench_core::target::openai::{self, Api, HttpConfig, OpenAiTarget};
use edgebench_core::target::server_metrics;
use edgebench_core::target::{Sampling, Target, TargetInfo, TokenCounter};
use edgebench_core::workload::{self, ScenarioFile};
use edgebench_llama::{open_tokenizer, EngineConfig, LlamaTarget, ENGINE_NAME};

use super::Interrupted;
use crate::args::{ApiArg, RunArgs};

fn plan(a: &RunArgs) -> RunPlan {
    RunPlan {
        runs: a.runs,
        duration_s: a.duration,
        warmup: a.warmup,
        cooldown_s: a.cooldown,
        seed: a.seed,
        max_tokens: a.max_tokens,
        unique_prefix: !a.allow_prefix_cache,
        sampling: Sampling {
            temperature: a.temperature,
            top_p: a.top_p,
            top_k: a.top_k,
            repeat_penalty: a.repeat_penalty,
            seed: a.seed,
        },
        concurrency: a.concurrency,
        rate_per_s: a.rate,
        monitor_interval_ms: a.machine.monitor_interval_ms,
        settle: a.machine.settle_policy(),
        target_options: target_options(a),
    }
}

/// The target settings that change what is measured, for the configuration hash and the
/// experiment record (only those that apply and differ from nothing).
fn target_options(a: &RunArgs) -> std::collections::BTreeMap<String, serde_json::Value> {
    use serde_json::json;
    let mut o = std::collections::BTreeMap::new();
    if let Some(n) = a.ctx_size {
        o.insert("ctx_size".into(), json!(n));
    }
    if a.endpoint.is_some() {
        let api = match a.api {
            ApiArg::Chat => "chat",
            ApiArg::Completions => "completions",
        };
        o.insert("api".into(), json!(api));
        o.insert("send_ignore_eos".into(), json!(!a.no_ignore_eos));
        o.insert("connect_timeout_s".into(), json!(a.connect_timeout));
        o.insert("first_token_timeout_s".into(), json!(a.first_token_timeout));
        o.insert("timeout_s".into(), json!(a.timeout));
        if let Some(t) = &a.tokenizer {
            let name = t.file_name().map_or_else(
                || t.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            o.insert("tokenizer".into(), json!(name));
        }
    }
    o
}

/// The embedded-engine models named on the command line, resolved to files (catalog models
/// are fetched).
pub(crate) fn resolve_models(specs: &[String]) -> anyhow::Result<Vec<ModelInfo>> {
    let specs: Vec<String> = if specs.is_empty() {
        vec![DEFAULT_MODEL.to_string()]
    } else if specs.iter().any(|s| s == "all") {
        CATALOG.iter().map(|e| e.key.to_string()).collect()
    } else {
        specs.to_vec()
    };
    specs
        .iter()
        .map(|s| {
            let m = catalog::resolve(s, true, &|msg| eprintln!("{msg}"))?;
            Ok(catalog::model_info(&m.path, m.key.as_deref())?)
        })
        .collect()
}

/// The server's configuration for `model`.
fn http_config(a: &RunArgs, base: &str, model: &str) -> HttpConfig {
    let mut cfg = HttpConfig::new(base, model);
    cfg.api_key = a.api_key.clone();
    cfg.api = match a.api {
        ApiArg::Chat => Api::Chat,
        ApiArg::Completions => Api::Completions,
    };
    cfg.connect_timeout = Duration::from_secs_f64(a.connect_timeout);
    cfg.first_token_timeout = Duration::from_secs_f64(a.first_token_timeout);
    cfg.total_timeout = Duration::from_secs_f64(a.timeout);
    cfg.send_ignore_eos = !a.no_ignore_eos;
    cfg.context_tokens = a.ctx_size;
    cfg.server_pid = a.server_pid.or_else(|| {
        let url = local_port(base)?;
        monitor::pid_listening_on(url)
    });
    cfg
}

/// The port of a local base URL (`http://localhost:1234/v1` -> 1234), when the host is local.
pub(super) fn local_port(base: &str) -> Option<u16> {
    let rest = base.split_once("://")?.1;
    let host_port = rest.split('/').next()?;
    let (host, port) = host_port.rsplit_once(':')?;
    matches!(host, "localhost" | "127.0.0.1" | "[::1]" | "0.0.0.0")
        .then(|| port.parse().ok())
        .flatten()
}

/// With --endpoint: ask the server what it serves, check the requested models against it, and
/// warn about what cannot be confirmed (LM Studio serves GGUF and MLX under one id).
async fn http_models(a: &RunArgs, base: &str) -> anyhow::Result<Vec<(ModelInfo, HttpConfig)>> {
    let tokenizer: Option<Arc<dyn TokenCounter>> = match &a.tokenizer {
        Some(p) => Some(open_tokenizer(p).with_context(|| format!("--tokenizer {}", p.display()))?),
        None => None,
    };
    let probe = OpenAiTarget::new(http_config(a, base, ""))?;
    let listed = probe
        .list_models()
        .await
        .with_context(|| format!("endpoint {base} is not answering"))?;
    let ids: Vec<String> = if a.models.is_empty() {
        match listed.as_slice() {
            [] => bail!("endpoint {base} lists no models; name one with --models"),
            [one] => vec![one.clone()],
            many => {
                eprintln!(
                    "warning: {base} serves {} models ({}); benchmarking the first, {} (choose with --models)",
                    many.len(),
                    many.join(", "),
                    many[0]
                );
                vec![many[0].clone()]
            }
        }
    } else {
        a.models.clone()
    };
    let mut out = Vec::new();
    for id in ids {
        if !listed.is_empty() && !listed.contains(&id) {
            eprintln!(
                "warning: {base} does not list model {id:?} (it lists: {}); the server may answer with another model",
                listed.join(", ")
            );
        }
        let (mut info, mut unconfirmed) = catalog::model_info_from_id(&id, base);
        // LM Studio tells format and quantization of its models; other servers do not.
        let facts = OpenAiTarget::new(http_config(a, base, &id))?.probe().await;
        if let Some(f) = &facts.format {
            info.format.clone_from(f);
            unconfirmed.retain(|u| *u != "format");
        }
        if let Some(q) = &facts.quantization {
            info.quantization.clone_from(q);
            unconfirmed.retain(|u| *u != "quantization");
        }
        if facts.loaded == Some(false) {
            eprintln!(
                "warning: {base} reports model {id:?} as not loaded; the first requests include its load time"
            );
        }
        if !unconfirmed.is_empty() {
            eprintln!(
                "warning: the {} of model {id:?} cannot be confirmed from the server; results are labelled \"unknown\" (LM Studio serves GGUF and MLX builds under one id)",
                unconfirmed.join(" and ")
            );
        }
        let mut cfg = http_config(a, base, &id);
        cfg.tokenizer = tokenizer.clone();
        out.push((info, cfg));
    }
    Ok(out)
}

pub(crate) fn progress_bar() -> ProgressBar {
    let pb = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    pb.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} requests  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}

pub fn run(a: RunArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(run_async(a))
}

/// What a model is benchmarked on.
enum Backend {
    Embedded {
        threads: u32,
    },
    Http(Box<HttpConfig>),
    /// The in-process mock target (`--endpoint mock`): known delays, no model.
    Mock,
}

async fn open_target(
    a: &RunArgs,
    model: &ModelInfo,
    backend: &Backend,
    engine_cancel: &Arc<AtomicBool>,
) -> anyhow::Result<Box<dyn Target>> {
    match backend {
        Backend::Embedded { threads } => {
            let mut cfg = EngineConfig::new(&model.path, *threads);
            cfg.n_ctx = a.ctx_size;
            cfg.verbose = a.verbose;
            cfg.cancel = Some(engine_cancel.clone());
            eprintln!(
                "loading {} ({} {}, {threads} threads)",
                model.name, model.format, model.quantization
            );
            let t = tokio::task::spawn_blocking(move || LlamaTarget::load(cfg))
                .await
                .context("engine thread")??;
            Ok(Box::new(t))
        }
        Backend::Http(cfg) => {
            let t = OpenAiTarget::new((**cfg).clone())?;
            let facts = t.probe().await;
            if let (Some(v), Some(src)) = (&facts.version, &facts.version_source) {
                eprintln!("server: {v} ({src})");
            }
            Ok(Box::new(t))
        }
        Backend::Mock => Ok(Box::new(MockTarget {
            ttft: Duration::from_millis(3),
            itl: Duration::from_millis(1),
            ..MockTarget::default()
        })),
    }
}

/// The model facts of the mock target.
fn mock_model() -> ModelInfo {
    let (mut m, _) = catalog::model_info_from_id("edgebench/mock", "mock");
    m.format = "mock".into();
    m.quantization = "none".into();
    m
}

/// The key of a model's units in the store: name, format and quantization.
pub(crate) fn unit_model_key(m: &ModelInfo) -> String {
    format!("{} ({} {})", m.name, m.format, m.quantization)
}

/// The command line as typed (the program as invoked, from the folder it ran in, so relative
/// paths still hold), without any `--resume [ID]`, shell-quoted where needed.
pub(crate) fn base_command() -> String {
    let quote = |a: String| {
        let plain = !a.is_empty()
            && a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+".contains(c));
        if plain {
            a
        } else {
            format!("'{}'", a.replace('\'', "'\\''"))
        }
    };
    let program = std::env::args()
        .next()
        .filter(|p| p.contains('/'))
        .unwrap_or_else(|| "edgebench".to_string());
    let mut out = Vec::new();
    if program.contains('/') && !program.starts_with('/') {
        if let Ok(cwd) = std::env::current_dir() {
            out.push(format!("cd {} &&", quote(cwd.display().to_string())));
        }
    }
    out.push(quote(program));
    let mut args = std::env::args().skip(1).peekable();
    while let Some(a) = args.next() {
        if a == "--resume" {
            if args.peek().is_some_and(|n| !n.starts_with('-')) {
                args.next();
            }
            continue;
        }
        if a.starts_with("--resume=") {
            continue;
        }
        out.push(quote(a));
    }
    out.join(" ")
}

/// The CHECKPOINT SUMMARY printed at the end of every run and eval.
pub(crate) fn checkpoint_summary(
    store: &Store,
    e: &ExperimentRow,
    persistent: bool,
) -> anyhow::Result<String> {
    use std::fmt::Write;
    let units = store.units(&e.id)?;
    let done = units.iter().filter(|u| finished(u)).count();
    let mut out = String::new();
    writeln!(out, "\nCHECKPOINT SUMMARY")?;
    writeln!(
        out,
        "  experiment: {} ({}, config {})",
        e.id,
        e.kind,
        &e.config_hash[..12.min(e.config_hash.len())]
    )?;
    writeln!(out, "  progress:   {done}/{} units done", units.len())?;
    for u in units.iter().filter(|u| u.status == "failed") {
        writeln!(
            out,
            "  failed:     {} · {}: {}",
            u.model,
            u.scenario,
            u.error.as_deref().unwrap_or("unknown error")
        )?;
    }
    let remaining: Vec<String> = units
        .iter()
        .filter(|u| !finished(u))
        .map(|u| format!("{} · {}", u.model, u.scenario))
        .collect();
    if remaining.is_empty() {
        writeln!(out, "  remaining:  none")?;
    } else {
        writeln!(out, "  remaining:  {}", remaining.join(", "))?;
        if persistent {
            writeln!(out, "  to finish:  {} --resume {}", e.command, e.id)?;
        } else {
            writeln!(out, "  (--no-checkpoint: nothing was saved to resume from)")?;
        }
    }
    Ok(out)
}

async fn run_async(a: RunArgs) -> anyhow::Result<ExitCode> {
    let base_file = match &a.scenarios_file {
        Some(p) => ScenarioFile::load(p)?,
        None => ScenarioFile::default_file()?,
    };
    // A sweep replaces each selected scenario by one step per level.
    let file = match a.sweep.as_deref() {
        Some(spec) => {
            let sweep = workload::sweep::parse(spec)?;
            let selected = base_file.select(&a.scenarios)?;
            workload::sweep::expand(&base_file, &selected, &sweep)
        }
        None => base_file,
    };
    let every = ["all".to_string()];
    let scenarios = file.select(if a.sweep.is_some() {
        &every
    } else {
        &a.scenarios
    })?;
    let plan = plan(&a);
    let threads = a.threads.unwrap_or_else(repro::default_threads);
    let started = time::OffsetDateTime::now_utc();
    let results_dir: PathBuf = a.results.clone();
    let clock = Clock::new();
    let is_mock = a.endpoint.as_deref() == Some("mock");
    let mut server = match (&a.serve, &a.endpoint) {
        (Some(cmd), Some(ep)) => {
            let base = openai::resolve_endpoint(ep)?;
            let log = results_dir.join(format!("server_{}.log", report::file_timestamp(started)));
            eprintln!("starting server: {cmd}");
            let s = ManagedServer::start(
                cmd,
                &format!("{base}/models"),
                &a.log_pattern,
                &log,
                Duration::from_secs_f64(a.serve_timeout),
            )
            .await?;
            eprintln!(
                "server healthy after {:.0} ms (pid {}, log {})",
                s.facts.launch_to_healthy_ms,
                s.facts.pid,
                log.display()
            );
            Some(s)
        }
        _ => None,
    };
    let models: Vec<(ModelInfo, Backend)> = match &a.endpoint {
        None => resolve_models(&a.models)?
            .into_iter()
            .map(|m| (m, Backend::Embedded { threads }))
            .collect(),
        Some(_) if is_mock => vec![(mock_model(), Backend::Mock)],
        Some(ep) => {
            let base = openai::resolve_endpoint(ep)?;
            http_models(&a, &base)
                .await?
                .into_iter()
                .map(|(m, c)| (m, Backend::Http(Box::new(c))))
                .collect()
        }
    };
    let environment = Environment::capture(
        env!("CARGO_PKG_VERSION"),
        Some(env!("EDGEBENCH_GIT_COMMIT")).filter(|c| !c.is_empty()),
        &edgebench_llama::built_backends(),
    );
    let cancel = CancelFlag::default();
    let engine_cancel = Arc::new(AtomicBool::new(false));
    {
        let (cancel, engine_cancel) = (cancel.clone(), engine_cancel.clone());
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                cancel.cancel();
                engine_cancel.store(true, Ordering::SeqCst);
            }
        });
    }

    // The configuration and its hash (what decides the results, not the machine or the time).
    let mut setups: Vec<ModelSetup> = models
        .iter()
        .map(|(m, b)| ModelSetup {
            model: m.clone(),
            target: match b {
                Backend::Embedded { threads } => TargetInfo {
                    kind: "embedded".into(),
                    engine: ENGINE_NAME.into(),
                    threads: Some(*threads),
                    ..TargetInfo::default()
                },
                Backend::Http(c) => TargetInfo {
                    kind: "http".into(),
                    engine: format!("OpenAI-compatible server at {}", c.base_url),
                    ..TargetInfo::default()
                },
                Backend::Mock => TargetInfo {
                    kind: "mock".into(),
                    engine: "mock".into(),
                    ..TargetInfo::default()
                },
            },
        })
        .collect();
    let selected: Vec<_> = scenarios.iter().map(|s| (*s).clone()).collect();
    let passages_sha256 = file.passages_sha256();
    let config_hash = files::config_hash(&plan, &selected, &passages_sha256, &setups)?;

    // The store: the checkpoint, or an in-memory stand-in with --no-checkpoint.
    let db_path = results_dir.join("edgebench.db");
    let (dir_existed, db_existed) = (results_dir.exists(), db_path.exists());
    let mut store = if a.no_checkpoint {
        Store::in_memory()?
    } else {
        Store::open(&db_path)?
    };
    let experiment_row = match &a.resume {
        Some(id) => {
            let row = if id.is_empty() {
                match store.latest_unfinished(&config_hash)? {
                    Some(row) => row,
                    None => {
                        // Say so when the experiment with this configuration already finished.
                        let done = store
                            .experiments()?
                            .into_iter()
                            .find(|e| e.config_hash == config_hash && e.status == "done");
                        let why = done.map_or_else(String::new, |e| {
                            format!("; experiment {} with it is done", e.id)
                        });
                        bail!(
                            "nothing to resume: {} has no unfinished experiment with this configuration (config {}){why}",
                            db_path.display(),
                            &config_hash[..12]
                        )
                    }
                }
            } else {
                store.experiment(id)?.ok_or_else(|| {
                    anyhow!("--resume {id}: no such experiment in {}", db_path.display())
                })?
            };
            if row.config_hash != config_hash {
                bail!(
                    "--resume {}: that experiment ran with another configuration (config {} here, {} there); repeat its command: {}",
                    row.id,
                    &config_hash[..12],
                    &row.config_hash[..12.min(row.config_hash.len())],
                    row.command
                );
            }
            eprintln!("resuming experiment {}", row.id);
            store.set_status(&row.id, "running")?;
            row
        }
        None => {
            let mut id = report::file_timestamp(started);
            let mut n = 2;
            while store.has_experiment(&id)? {
                id = format!("{}-{n}", report::file_timestamp(started));
                n += 1;
            }
            let row = ExperimentRow {
                id,
                kind: "perf".into(),
                created: started
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
                config_hash: config_hash.clone(),
                config_json: String::new(),
                command: base_command(),
                status: "running".into(),
            };
            store.create_experiment(&row)?;
            row
        }
    };
    let run_id = experiment_row.id.clone();
    super::snapshot_hardware(&store, &run_id, &environment)?;
    let persistent = !a.no_checkpoint;
    // Earlier invocations of a resumed experiment recorded the targets they loaded.
    if let Ok(prev) = serde_json::from_str::<ExperimentConfig>(&experiment_row.config_json) {
        for s in &mut setups {
            if let Some(p) = prev.models.iter().find(|p| p.model.path == s.model.path) {
                s.target = p.target.clone();
            }
        }
    }
    let unit_keys: Vec<(String, String, String)> = models
        .iter()
        .flat_map(|(m, _)| {
            scenarios
                .iter()
                .map(move |s| (unit_model_key(m), s.name.clone(), String::new()))
        })
        .collect();
    store.ensure_units(&run_id, &unit_keys)?;

    let mut experiment = ExperimentConfig {
        experiment_id: run_id.clone(),
        created: experiment_row.created.clone(),
        config_hash: config_hash.clone(),
        environment: environment.clone(),
        plan: plan.clone(),
        scenarios_source: a
            .scenarios_file
            .as_ref()
            .map_or_else(|| "built-in".to_string(), |p| p.display().to_string()),
        scenarios: selected,
        passages_sha256,
        models: setups.clone(),
        eval: None,
    };
    let config_path = results_dir.join(format!("experiment_config_{run_id}.json"));
    let save_config = |store: &Store, e: &ExperimentConfig| -> anyhow::Result<()> {
        let bytes = serde_json::to_vec_pretty(e)?;
        store.set_config(&e.experiment_id, &String::from_utf8_lossy(&bytes))?;
        report::atomic_write(&config_path, &bytes)
            .with_context(|| format!("writing {}", config_path.display()))
    };
    let mut written: Vec<PathBuf> = Vec::new();
    let outcome = run_models(
        &a,
        &plan,
        &file,
        &scenarios,
        &models,
        &mut setups,
        &mut experiment,
        &mut store,
        &save_config,
        &mut server,
        &clock,
        &cancel,
        &engine_cancel,
        &results_dir,
        &run_id,
        &config_hash,
        &mut written,
    )
    .await;
    if let Some(s) = &mut server {
        s.stop(Duration::from_secs(15));
        written.push(s.facts.log_file.clone());
    }
    match outcome {
        Ok(()) => {}
        Err(e) if e.downcast_ref::<Interrupted>().is_some() => {
            store.set_status(&run_id, "interrupted")?;
            if persistent {
                eprintln!("[Interrupted] Checkpoint saved. Use --resume to continue.");
            } else {
                eprintln!("[Interrupted] (--no-checkpoint: nothing saved to resume from)");
            }
            eprint!(
                "{}",
                checkpoint_summary(&store, &store_row(&store, &run_id)?, persistent)?
            );
            return Err(e);
        }
        Err(e) => {
            // Failed before any request was measured (bad input found while preparing): leave
            // nothing behind that this invocation created.
            let untouched = store
                .units(&run_id)?
                .iter()
                .all(|u| u.requests == 0 && u.status != "done");
            if a.resume.is_none() && untouched {
                store.delete_experiment(&run_id)?;
                drop(store);
                let _ = std::fs::remove_file(&config_path);
                if !db_existed {
                    for suffix in ["", "-wal", "-shm"] {
                        let mut p = db_path.clone().into_os_string();
                        p.push(suffix);
                        let _ = std::fs::remove_file(p);
                    }
                }
                if !dir_existed {
                    let _ = std::fs::remove_dir(&results_dir);
                }
                return Err(e);
            }
            store.set_status(&run_id, "failed")?;
            eprint!(
                "{}",
                checkpoint_summary(&store, &store_row(&store, &run_id)?, persistent)?
            );
            return Err(e);
        }
    }

    // The summary, from the store (units of earlier invocations included).
    let units = store.units(&run_id)?;
    let reports: Vec<ModelReport> = models
        .iter()
        .zip(&setups)
        .map(|((m, _), setup)| ModelReport {
            model: m.clone(),
            target: setup.target.clone(),
            units: units
                .iter()
                .filter(|u| u.model == unit_model_key(m))
                .filter_map(|u| u.report.clone())
                .collect(),
        })
        .collect();
    let sweep: Vec<workload::sweep::SweepStep> = reports
        .iter()
        .flat_map(|m| &m.units)
        .filter_map(|u| {
            let sc = scenarios.iter().find(|s| s.name == u.summary.scenario)?;
            Some(workload::sweep::step_row(
                sc.sweep_of.as_deref()?,
                sc.concurrency?,
                &u.summary,
            ))
        })
        .collect();
    let summary = RunSummary {
        run_id: run_id.clone(),
        config_hash,
        started: experiment.created.clone(),
        environment,
        plan,
        models: reports,
        sweep,
    };
    let summary_path = results_dir.join(format!("summary_{run_id}.json"));
    report::atomic_write(&summary_path, &serde_json::to_vec_pretty(&summary)?)
        .with_context(|| format!("writing {}", summary_path.display()))?;
    written.push(summary_path);
    store.set_status(&run_id, "done")?;
    eprint!("{}", report::render_summary(&summary));
    eprintln!("\nresults:");
    for w in &written {
        eprintln!("  {}", w.display());
    }
    eprint!(
        "{}",
        checkpoint_summary(&store, &store_row(&store, &run_id)?, persistent)?
    );
    if a.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    }
    Ok(ExitCode::SUCCESS)
}

/// Done, or skipped because its sweep stopped.
fn finished(u: &edgebench_core::store::UnitRow) -> bool {
    u.status == "done" || u.status == "skipped"
}

pub(crate) fn store_row(store: &Store, id: &str) -> anyhow::Result<ExperimentRow> {
    store
        .experiment(id)?
        .ok_or_else(|| anyhow!("experiment {id} vanished from the store"))
}

/// What is taken from a server when a unit's warm-ups are done, so the figures around the unit
/// (log-pattern counts, `/metrics`) cover its measured requests only.
struct Snapshots<'a> {
    server: Option<&'a ManagedServer>,
    scraper: Option<&'a server_metrics::Scraper>,
    log: std::sync::Mutex<Option<Vec<(String, u64)>>>,
    metrics: std::sync::Mutex<Option<std::collections::BTreeMap<String, f64>>>,
}

type Taken = (
    Option<Vec<(String, u64)>>,
    Option<std::collections::BTreeMap<String, f64>>,
);

impl Snapshots<'_> {
    fn take(self) -> Taken {
        (
            self.log.into_inner().ok().flatten(),
            self.metrics.into_inner().ok().flatten(),
        )
    }
}

#[async_trait::async_trait]
impl runner::PhaseHook for Snapshots<'_> {
    async fn measured_starting(&self) {
        if let Some(s) = self.server {
            // Let the log readers catch up with the warm-ups' last lines.
            tokio::time::sleep(Duration::from_millis(200)).await;
            if let Ok(mut g) = self.log.lock() {
                *g = Some(s.pattern_counts());
            }
        }
        if let Some(sc) = self.scraper {
            let m = sc.scrape().await;
            if let Ok(mut g) = self.metrics.lock() {
                *g = m;
            }
        }
    }
}

/// Runs every unfinished unit of every model, committing each request to the store.
#[allow(clippy::too_many_arguments)]
async fn run_models(
    a: &RunArgs,
    plan: &RunPlan,
    file: &ScenarioFile,
    scenarios: &[&edgebench_core::workload::Scenario],
    models: &[(ModelInfo, Backend)],
    setups: &mut [ModelSetup],
    experiment: &mut ExperimentConfig,
    store: &mut Store,
    save_config: &dyn Fn(&Store, &ExperimentConfig) -> anyhow::Result<()>,
    server: &mut Option<ManagedServer>,
    clock: &Clock,
    cancel: &CancelFlag,
    engine_cancel: &Arc<AtomicBool>,
    results_dir: &std::path::Path,
    run_id: &str,
    config_hash: &str,
    written: &mut Vec<PathBuf>,
) -> anyhow::Result<()> {
    for (i, (model, backend)) in models.iter().enumerate() {
        let key = unit_model_key(model);
        let rows = store.units(run_id)?;
        let pending: Vec<&str> = rows
            .iter()
            .filter(|u| u.model == key && !finished(u))
            .map(|u| u.scenario.as_str())
            .collect();
        if pending.is_empty() {
            continue;
        }
        let target = open_target(a, model, backend, engine_cancel).await?;
        let mut info = target.info();
        if let Some(s) = server.as_ref() {
            info.launch = Some(s.facts.clone());
        }
        if let Some(si) = &info.system_info {
            eprintln!("llama.cpp: {si}");
        }
        let todo: Vec<&edgebench_core::workload::Scenario> = scenarios
            .iter()
            .copied()
            .filter(|s| pending.contains(&s.name.as_str()))
            .collect();
        let units = runner::prepare(plan, file, &todo, target.as_ref(), &model.name).await?;
        setups[i].target = info.clone();
        experiment.models = setups.to_vec();
        save_config(store, experiment)?;
        let pb = progress_bar();
        pb.set_length(
            units
                .iter()
                .map(|u| (u.warmup.len() + u.measured.len()) as u64)
                .sum(),
        );
        // Sweeps: the best output throughput so far per swept scenario, and why a sweep stopped.
        let mut sweeps = workload::sweep::SweepState::default();
        // A resumed sweep goes on from the steps already done: their best throughput, and a
        // stop one of them already called.
        for row in rows.iter().filter(|u| u.model == key && u.status == "done") {
            let Some(sc) = scenarios.iter().find(|s| s.name == row.scenario) else {
                continue;
            };
            if let (Some(base), Some(report)) = (&sc.sweep_of, &row.report) {
                sweeps.observe(base, sc.concurrency.unwrap_or(1), &report.summary);
            }
        }
        for unit in &units {
            let unit_id = rows
                .iter()
                .find(|u| u.model == key && u.scenario == unit.scenario.name)
                .map(|u| u.id)
                .ok_or_else(|| {
                    anyhow!("unit {key} · {} is not in the store", unit.scenario.name)
                })?;
            if let Some(why) = unit
                .scenario
                .sweep_of
                .as_ref()
                .and_then(|b| sweeps.stopped(b))
            {
                store.skip_unit(unit_id, why)?;
                pb.inc((unit.warmup.len() + unit.measured.len()) as u64);
                continue;
            }
            store.start_unit(unit_id)?;
            let line = |r: &edgebench_core::record::RequestRecord| PerfLine {
                run_id: run_id.to_string(),
                config_hash: config_hash.to_string(),
                model: model.name.clone(),
                publisher: model.publisher.clone(),
                format: model.format.clone(),
                quantization: model.quantization.clone(),
                scenario: unit.scenario.name.clone(),
                target: info.kind.clone(),
                metrics: metrics::derive(r),
                json_valid: unit
                    .scenario
                    .json
                    .then(|| r.ok() && metrics::is_valid_json_object(&r.output_text)),
                record: r.clone(),
            };
            // The server's own /metrics (vLLM, llama-server --metrics, TGI), when it has them,
            // and its log-pattern counts, taken when the warm-ups are done.
            let scraper = match backend {
                Backend::Http(c) => Some(server_metrics::Scraper::new(&c.base_url)),
                _ => None,
            };
            let snapshots = Snapshots {
                server: server.as_ref(),
                scraper: scraper.as_ref(),
                log: std::sync::Mutex::new(None),
                metrics: std::sync::Mutex::new(None),
            };
            // Every request is committed as it finishes, except the unit's last, which is
            // committed with the unit's completion.
            let shared = std::sync::Mutex::new((&mut *store, None::<PerfLine>));
            let on_event = |e: RunEvent| -> Result<(), String> {
                match e {
                    RunEvent::UnitStarted {
                        model, scenario, ..
                    } => {
                        pb.set_message(format!("{model} · {scenario}"));
                        Ok(())
                    }
                    RunEvent::RequestDone { record, last, .. } => {
                        pb.inc(1);
                        let l = line(&record);
                        let mut g = shared
                            .lock()
                            .map_err(|_| "store lock poisoned".to_string())?;
                        if last {
                            g.1 = Some(l);
                            Ok(())
                        } else {
                            g.0.add_request(unit_id, &l).map_err(|e| e.to_string())
                        }
                    }
                }
            };
            let result = runner::run_unit(
                plan,
                unit,
                target.as_ref(),
                &model.name,
                clock,
                cancel,
                &on_event,
                Some(&snapshots),
            )
            .await;
            let (log_before, metrics_before) = snapshots.take();
            let last = shared
                .into_inner()
                .map_err(|_| anyhow!("store lock poisoned"))?
                .1;
            let out = match result {
                Ok(o) => o,
                Err(RunError::Interrupted) => {
                    pb.finish_and_clear();
                    return Err(anyhow!(Interrupted));
                }
                Err(e) => {
                    pb.finish_and_clear();
                    store.fail_unit(unit_id, &e.to_string())?;
                    return Err(e.into());
                }
            };
            let server_figures = match (&scraper, &metrics_before) {
                (Some(sc), Some(before)) => sc
                    .scrape()
                    .await
                    .map(|after| server_metrics::derive(&server_metrics::delta(before, &after)))
                    .unwrap_or_default(),
                _ => Default::default(),
            };
            let log_pattern_counts = match (server.as_ref(), &log_before) {
                (Some(s), Some(before)) => {
                    // Give the log readers a moment to catch up with the last lines.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    managed::count_delta(before, &s.pattern_counts())
                        .into_iter()
                        .collect()
                }
                _ => Default::default(),
            };
            if let (Some(s), Some(first)) = (server.as_mut(), out.records.first()) {
                if s.facts.launch_to_first_token_ms.is_none() {
                    if let Some(c) = first.chunks.first() {
                        let spawned = clock.ns(s.spawned()) as f64;
                        s.facts.launch_to_first_token_ms = Some((c.t_ns as f64 - spawned) / 1e6);
                        info.launch = Some(s.facts.clone());
                        setups[i].target = info.clone();
                        experiment.models = setups.to_vec();
                        save_config(store, experiment)?;
                    }
                }
            }
            let summary = metrics::summarize_unit(
                &out.records,
                &UnitContext {
                    model: &model.name,
                    scenario: &unit.scenario.name,
                    json: unit.scenario.json,
                    peak_rss_mb: out.monitor.peak_rss_mb,
                    duration_s: out.duration.as_secs_f64(),
                    seed: plan.seed,
                },
            );
            if let Some(base) = &unit.scenario.sweep_of {
                let level = unit.scenario.concurrency.unwrap_or(1);
                if let Some(why) = sweeps.observe(base, level, &summary) {
                    pb.suspend(|| {
                        eprintln!(
                            "sweep {} × {base}: stopping after concurrency {level}: {why}",
                            model.name
                        );
                    });
                }
            }
            let path = results_dir.join(report::perf_file_name(model, &unit.scenario.name, run_id));
            let unit_report = UnitReport {
                summary,
                monitor: out.monitor,
                context_tokens: out.context_tokens,
                log_pattern_counts,
                file: Some(path.clone()),
                settle: out.settle.clone(),
                server_metrics: server_figures,
            };
            if let Some(w) = out.settle.as_ref().and_then(|r| r.warning()) {
                pb.suspend(|| eprintln!("warning: {} × {}: {w}", model.name, unit.scenario.name));
            }
            // The unit is done in the store (with its last request) before its export is
            // written, and the export is read back from the store: the file never holds a
            // request the store does not.
            store.finish_unit(unit_id, last.as_ref(), &out.samples, &unit_report)?;
            let lines = store.requests(unit_id)?;
            let bytes = files::jsonl(&lines).context("serialising results")?;
            report::atomic_write(&path, &bytes)
                .with_context(|| format!("writing results file {}", path.display()))?;
            written.push(path);
        }
        pb.finish_and_clear();
        // What the target learnt while running (the model ids a server answered with).
        let learnt = target.info();
        if let (Backend::Http(c), Some(srv)) = (backend, &learnt.server) {
            let other: Vec<&String> = srv
                .served_models
                .iter()
                .filter(|m| !same_model(m, &c.model))
                .collect();
            if !other.is_empty() {
                eprintln!(
                    "warning: requested model {:?} but {} answered as {}; check that the server serves the model you mean",
                    c.model,
                    c.base_url,
                    other.iter().map(|m| format!("{m:?}")).collect::<Vec<_>>().join(", ")
                );
            }
        }
        setups[i].target = TargetInfo {
            launch: info.launch.clone(),
            ..learnt
        };
        experiment.models = setups.to_vec();
        save_config(store, experiment)?;
    }
    Ok(())
}

/// Whether a model id a server answered with names the requested one (llama-server and
/// Ollama may answer with a path or a tag where the request named a file or a bare name).
fn same_model(answered: &str, requested: &str) -> bool {
    let norm = |s: &str| {
        let s = s.rsplit('/').next().unwrap_or(s).to_ascii_lowercase();
        s.strip_suffix(".gguf")
            .or_else(|| s.strip_suffix(":latest"))
            .map_or(s.clone(), str::to_string)
    };
    requested.is_empty() || norm(answered) == norm(requested)
}

#[cfg(test)]
mod tests {
    use super::local_port;

    #[test]
    fn local_ports_of_base_urls() {
        assert_eq!(local_port("http://localhost:1234/v1"), Some(1234));
        assert_eq!(local_port("http://127.0.0.1:8080/v1"), Some(8080));
        assert_eq!(local_port("http://gpu-box:8000/v1"), None);
        assert_eq!(local_port("http://localhost/v1"), None);
    }
}
