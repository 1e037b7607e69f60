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
use edgebench_core::target::managed::{self, ManagedServer};
use edgebench_core::target::openai::{self, Api, HttpConfig, OpenAiTarget};
use edgebench_core::target::{Sampling, Target, TargetInfo};
use edgebench_core::workload::ScenarioFile;
use edgebench_llama::{EngineConfig, LlamaTarget, ENGINE_NAME};

use super::Interrupted;
use crate::args::{ApiArg, RunArgs};

fn plan(a: &RunArgs) -> RunPlan {
    RunPlan {
        runs: a.runs,
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
        ..RunPlan::default()
    }
}

/// The embedded-engine models named on the command line, resolved to files (catalog models
/// are fetched).
fn resolve_models(specs: &[String]) -> anyhow::Result<Vec<ModelInfo>> {
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
fn local_port(base: &str) -> Option<u16> {
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
        let (info, unconfirmed) = catalog::model_info_from_id(&id, base);
        if !unconfirmed.is_empty() {
            eprintln!(
                "warning: the {} of model {id:?} cannot be confirmed from the server; results are labelled \"unknown\" (LM Studio serves GGUF and MLX builds under one id)",
                unconfirmed.join(" and ")
            );
        }
        out.push((info, http_config(a, base, &id)));
    }
    Ok(out)
}

fn progress_bar() -> ProgressBar {
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
    Embedded { threads: u32 },
    Http(Box<HttpConfig>),
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
        Backend::Http(cfg) => Ok(Box::new(OpenAiTarget::new((**cfg).clone())?)),
    }
}

async fn run_async(a: RunArgs) -> anyhow::Result<ExitCode> {
    let file = match &a.scenarios_file {
        Some(p) => ScenarioFile::load(p)?,
        None => ScenarioFile::default_file()?,
    };
    let scenarios = file.select(&a.scenarios)?;
    let plan = plan(&a);
    let threads = a.threads.unwrap_or_else(repro::default_threads);
    let started = time::OffsetDateTime::now_utc();
    let stamp = report::file_timestamp(started);
    let run_id = stamp.clone();
    let results_dir: PathBuf = a.results.clone();
    let clock = Clock::new();
    let mut server = match (&a.serve, &a.endpoint) {
        (Some(cmd), Some(ep)) => {
            let base = openai::resolve_endpoint(ep)?;
            let log = results_dir.join(format!("server_{run_id}.log"));
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
    // The reproducibility record: written once the first model is ready, rewritten as each
    // model's load facts arrive.
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
            },
        })
        .collect();
    let selected: Vec<_> = scenarios.iter().map(|s| (*s).clone()).collect();
    let passages_sha256 = file.passages_sha256();
    let config_hash = files::config_hash(&plan, &selected, &passages_sha256, &setups)?;
    let mut experiment = ExperimentConfig {
        experiment_id: run_id.clone(),
        created: started
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
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
    };
    let config_path = results_dir.join(format!("experiment_config_{run_id}.json"));
    let write_config = |e: &ExperimentConfig| -> anyhow::Result<()> {
        let bytes = serde_json::to_vec_pretty(e)?;
        report::atomic_write(&config_path, &bytes)
            .with_context(|| format!("writing {}", config_path.display()))
    };
    let mut reports = Vec::new();
    let mut written: Vec<PathBuf> = Vec::new();
    for (i, (model, backend)) in models.iter().enumerate() {
        let target = open_target(&a, model, backend, &engine_cancel).await?;
        let mut info = target.info();
        if let Some(s) = &server {
            info.launch = Some(s.facts.clone());
        }
        if let Some(si) = &info.system_info {
            eprintln!("llama.cpp: {si}");
        }
        let units = runner::prepare(&plan, &file, &scenarios, target.as_ref(), &model.name).await?;
        setups[i].target = info.clone();
        experiment.models = setups.clone();
        write_config(&experiment)?;
        if !written.contains(&config_path) {
            written.push(config_path.clone());
        }
        let pb = progress_bar();
        pb.set_length(
            units
                .iter()
                .map(|u| (u.warmup.len() + u.measured.len()) as u64)
                .sum(),
        );
        let on_event = {
            let pb = pb.clone();
            move |e: RunEvent| match e {
                RunEvent::UnitStarted {
                    model, scenario, ..
                } => pb.set_message(format!("{model} · {scenario}")),
                RunEvent::RequestDone { .. } => pb.inc(1),
            }
        };
        let mut unit_reports = Vec::new();
        for unit in &units {
            let log_before = server.as_ref().map(ManagedServer::pattern_counts);
            let out = match runner::run_unit(
                &plan,
                unit,
                target.as_ref(),
                &model.name,
                &clock,
                &cancel,
                &on_event,
            )
            .await
            {
                Ok(o) => o,
                Err(RunError::Interrupted) => {
                    pb.finish_and_clear();
                    eprintln!(
                        "[Interrupted] Stopped before {} · {} finished.",
                        model.name, unit.scenario.name
                    );
                    if !written.is_empty() {
                        eprintln!("Finished units were saved:");
                        for w in &written {
                            eprintln!("  {}", w.display());
                        }
                    }
                    return Err(anyhow!(Interrupted));
                }
                Err(e) => {
                    pb.finish_and_clear();
                    return Err(e.into());
                }
            };
            let log_pattern_counts = match (&server, &log_before) {
                (Some(s), Some(before)) => {
                    // Give the log readers a moment to catch up with the last lines.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    managed::count_delta(before, &s.pattern_counts())
                        .into_iter()
                        .collect()
                }
                _ => Default::default(),
            };
            if let (Some(s), Some(first)) = (&mut server, out.records.first()) {
                if s.facts.launch_to_first_token_ms.is_none() {
                    if let Some(c) = first.chunks.first() {
                        let spawned = clock.ns(s.spawned()) as f64;
                        s.facts.launch_to_first_token_ms = Some((c.t_ns as f64 - spawned) / 1e6);
                        info.launch = Some(s.facts.clone());
                        setups[i].target = info.clone();
                        experiment.models = setups.clone();
                        write_config(&experiment)?;
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
            let lines: Vec<PerfLine> = out
                .records
                .iter()
                .map(|r| PerfLine {
                    run_id: run_id.clone(),
                    config_hash: config_hash.clone(),
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
                })
                .collect();
            let path = results_dir.join(report::perf_file_name(model, &unit.scenario.name, &stamp));
            let bytes = files::jsonl(&lines).context("serialising results")?;
            report::atomic_write(&path, &bytes)
                .with_context(|| format!("writing results file {}", path.display()))?;
            written.push(path.clone());
            unit_reports.push(UnitReport {
                summary,
                monitor: out.monitor,
                context_tokens: out.context_tokens,
                log_pattern_counts,
                file: Some(path),
            });
        }
        pb.finish_and_clear();
        reports.push(ModelReport {
            model: model.clone(),
            target: info,
            units: unit_reports,
        });
    }
    if let Some(s) = &mut server {
        s.stop(Duration::from_secs(15));
        written.push(s.facts.log_file.clone());
    }
    let summary = RunSummary {
        run_id,
        config_hash,
        started: experiment.created.clone(),
        environment,
        plan,
        models: reports,
    };
    let summary_path = results_dir.join(format!("summary_{}.json", summary.run_id));
    report::atomic_write(&summary_path, &serde_json::to_vec_pretty(&summary)?)
        .with_context(|| format!("writing {}", summary_path.display()))?;
    written.push(summary_path);
    eprint!("{}", report::render_summary(&summary));
    eprintln!("\nresults:");
    for w in &written {
        eprintln!("  {}", w.display());
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    }
    Ok(ExitCode::SUCCESS)
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
