//! `edgebench run`: turns the flags into a performance plan, runs it through the library's
//! experiment, renders its events, and prints the summary.

use anyhow::Context;
use std::process::ExitCode;
use std::sync::Arc;

use edgebench_core::backend::TokenCounter;
use edgebench_core::catalog::{self, ModelInfo};
use edgebench_core::experiment::perf;
use edgebench_core::experiment::profile::Profile;
use edgebench_core::experiment::request::{self, RunRequest};
use edgebench_core::experiment::{Context as ExperimentContext, ExperimentError};
use edgebench_core::repro::Environment;
use edgebench_llama::{open_tokenizer, LlamaLoader};

use super::render::{ctrl_c_token, Terminal};
use super::Interrupted;
use crate::args::{ApiArg, RunArgs};

/// The flags as the library's run request.
pub(crate) fn request(a: &RunArgs) -> RunRequest {
    RunRequest {
        endpoint: a.endpoint.clone(),
        models: a.models.clone(),
        serve: a.serve.clone(),
        serve_timeout_s: a.serve_timeout,
        log_patterns: a.log_pattern.clone(),
        api_key: a.api_key.clone(),
        api: match a.api {
            ApiArg::Chat => "chat",
            ApiArg::Completions => "completions",
        }
        .into(),
        server_pid: a.server_pid,
        no_ignore_eos: a.no_ignore_eos,
        connect_timeout_s: a.connect_timeout,
        first_token_timeout_s: a.first_token_timeout,
        timeout_s: a.timeout,
        max_event_bytes: a.max_event_bytes,
        max_response_bytes: a.max_response_bytes,
        concurrency: a.concurrency,
        sweep: a.sweep.clone(),
        rate: a.rate,
        scenarios: a.scenarios.clone(),
        scenarios_file: a.scenarios_file.clone(),
        profile: a.profile.map(|p| match p {
            crate::args::ProfileArg::Quick => Profile::Quick,
            crate::args::ProfileArg::Full => Profile::Full,
        }),
        runs: a.runs,
        duration_s: a.duration,
        warmup: a.warmup,
        cooldown_s: a.cooldown,
        seed: a.seed,
        max_tokens: a.max_tokens,
        threads: a.threads,
        ctx_size: a.ctx_size,
        temperature: a.temperature,
        top_p: a.top_p,
        top_k: a.top_k,
        repeat_penalty: a.repeat_penalty,
        allow_prefix_cache: a.allow_prefix_cache,
        verbose: a.verbose,
        monitor_interval_ms: a.machine.monitor_interval_ms,
        settle_timeout_s: a.machine.settle_timeout,
        settle_threshold_percent: a.machine.settle_threshold,
        results: a.results.clone(),
        no_checkpoint: a.no_checkpoint,
        resume: a.resume.clone(),
        tokenizer: a.tokenizer.clone(),
        force: a.force,
        memory_budget_mb: a.memory_budget,
    }
}

/// The embedded-engine models named on the command line (see [`catalog::resolve_models`]).
pub(crate) fn resolve_models(specs: &[String]) -> anyhow::Result<Vec<ModelInfo>> {
    Ok(catalog::resolve_models(specs, &|msg| eprintln!("{msg}"))?)
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
        if a.starts_with("--resume=") || a.starts_with("--api-key=") {
            continue;
        }
        // The key is not written anywhere (it comes from OPENAI_API_KEY or is typed again).
        if a == "--api-key" {
            args.next();
            continue;
        }
        out.push(quote(a));
    }
    out.join(" ")
}

/// The environment this binary records with every experiment.
pub(crate) fn environment() -> Environment {
    Environment::capture(
        env!("CARGO_PKG_VERSION"),
        Some(env!("EDGEBENCH_GIT_COMMIT")).filter(|c| !c.is_empty()),
        &edgebench_llama::built_backends(),
    )
}

/// An experiment's error for the binary: interrupted exits 130, the rest 2. A request field the
/// library names (`data_dir: ...`) is named as its flag (`--data-dir: ...`).
pub(crate) fn cli_error(e: ExperimentError) -> anyhow::Error {
    match e {
        ExperimentError::Interrupted => anyhow::anyhow!(Interrupted),
        ExperimentError::Plan(msg) => anyhow::anyhow!(flag_named(&msg)),
        e => e.into(),
    }
}

/// `field: why` with the request field written as its flag (`timeout_s` is `--timeout`,
/// `monitor_interval_ms` is `--monitor-interval`); other messages unchanged.
fn flag_named(msg: &str) -> String {
    let Some((field, why)) = msg.split_once(": ") else {
        return msg.to_string();
    };
    if field.is_empty() || !field.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        return msg.to_string();
    }
    format!("{}: {why}", flag_of(field))
}

/// The flag of a request field: `timeout_s` is `--timeout`, `monitor_interval_ms` is
/// `--monitor-interval`.
fn flag_of(field: &str) -> String {
    format!("--{}", field_base(field).replace('_', "-"))
}

/// A request field without its unit suffix (the clap id of its flag).
fn field_base(field: &str) -> &str {
    ["_percent", "_ms", "_s"]
        .iter()
        .find_map(|suffix| field.strip_suffix(suffix))
        .unwrap_or(field)
}

pub fn run(a: RunArgs) -> anyhow::Result<ExitCode> {
    super::block_on(run_async(a))
}

/// `--resume` without an id: the most recent unfinished run, run again as it was asked for
/// whatever flags are given now, unless a typed flag contradicts it (refused, naming it).
/// Experiments from before requests were kept resume by configuration hash, as before.
fn resume_latest(a: &RunArgs, given: RunRequest) -> anyhow::Result<RunRequest> {
    let store = a
        .store
        .as_deref()
        .map(edgebench_core::store::StoreLocation::parse);
    let machine = environment().machine().id;
    let Some(u) = request::latest_unfinished(&a.results, store.as_ref(), "perf", &machine)? else {
        return Ok(given);
    };
    let Some(stored) = u.request.clone() else {
        return Ok(given);
    };
    // A field was typed when its flag was: `cooldown_s` is `--cooldown`.
    // `log_patterns` is typed as `--log-pattern`.
    let typed_field = |f: &str| {
        let id = if f == "log_patterns" {
            "log_pattern"
        } else {
            field_base(f)
        };
        super::typed(f) || super::typed(id)
    };
    let contradictions: Vec<String> = stored
        .differences(&given)
        .into_iter()
        .filter(|(f, _, _)| typed_field(f))
        .map(|(f, there, here)| format!("{} {here} (it ran with {there})", flag_of(&f)))
        .collect();
    if !contradictions.is_empty() {
        anyhow::bail!(
            "--resume: the most recent unfinished experiment, {}, ran with another configuration: {}; leave those flags out to continue it as it was ({})",
            u.id,
            contradictions.join(", "),
            u.command
        );
    }
    eprintln!(
        "resuming experiment {} (config {}): {}",
        u.id,
        &u.config_hash[..u.config_hash.len().min(12)],
        u.command
    );
    Ok(RunRequest {
        resume: Some(u.id),
        results: given.results,
        api_key: given.api_key.or(stored.api_key.clone()),
        no_checkpoint: given.no_checkpoint,
        verbose: given.verbose || stored.verbose,
        tokenizer: given.tokenizer.or(stored.tokenizer.clone()),
        force: given.force,
        memory_budget_mb: given.memory_budget_mb,
        ..stored
    })
}

async fn run_async(a: RunArgs) -> anyhow::Result<ExitCode> {
    let mut req = request(&a);
    if a.resume.as_deref() == Some("") {
        req = resume_latest(&a, req)?;
    }
    let tokenizer: Option<Arc<dyn TokenCounter>> = match &req.tokenizer {
        Some(p) => Some(open_tokenizer(p).with_context(|| format!("--tokenizer {}", p.display()))?),
        None => None,
    };
    let mut plan = req.into_plan(environment(), base_command(), tokenizer, &|m| {
        eprintln!("{m}")
    })?;
    plan.store = a
        .store
        .as_deref()
        .map(edgebench_core::store::StoreLocation::parse);
    let ctx = ExperimentContext {
        events: Arc::new(Terminal::new("requests", !a.no_checkpoint, false)),
        cancel: ctrl_c_token(),
        engine: Arc::new(LlamaLoader),
    };
    let out = perf::run(plan, &ctx).await.map_err(cli_error)?;
    eprint!("{}", edgebench_core::report::render_summary(&out.summary));
    eprintln!("\nresults:");
    for w in &out.written {
        eprintln!("  {}", w.display());
    }
    eprint!("{}", out.checkpoint);
    if let Some(next) = &out.next {
        eprintln!("\n{next}");
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&out.summary)?);
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_fields_read_as_flags() {
        use super::flag_named;
        assert_eq!(
            flag_named("data_dir: /x: no such folder"),
            "--data-dir: /x: no such folder"
        );
        assert_eq!(
            flag_named("timeout_s: must be 0 or more"),
            "--timeout: must be 0 or more"
        );
        assert_eq!(
            flag_named("monitor_interval_ms: at least 10"),
            "--monitor-interval: at least 10"
        );
        assert_eq!(
            flag_named("settle_threshold_percent: x"),
            "--settle-threshold: x"
        );
        assert_eq!(
            flag_named("no experiment \"x\": y"),
            "no experiment \"x\": y"
        );
        assert_eq!(flag_named("plain"), "plain");
    }
}
