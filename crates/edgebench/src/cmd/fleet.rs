//! `edgebench queue add|list` and `edgebench agent`: plans put on a team store's queue, and the
//! agent that takes them on each machine (the loop itself is the library's).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use edgebench_core::experiment::agent::{self, AgentOptions, QueuedPlan};
use edgebench_core::experiment::Context as ExperimentContext;
use edgebench_core::store::StoreLocation;
use edgebench_llama::{open_tokenizer, LlamaLoader};

use super::render::{ctrl_c_token, Terminal};
use super::run::{cli_error, environment};
use crate::args::{AgentArgs, QueueCommand, QueuedCommand};

pub fn queue(store: Option<&str>, command: QueueCommand) -> anyhow::Result<ExitCode> {
    let Some(url) = store else {
        anyhow::bail!("queue: --store URL (or EDGEBENCH_STORE) names the team store");
    };
    match command {
        QueueCommand::Add {
            label,
            copies,
            plan,
        } => {
            let plan = match plan {
                QueuedCommand::Run(a) => QueuedPlan::Run(Box::new(super::run::request(&a))),
                QueuedCommand::Eval(a) => QueuedPlan::Eval(Box::new(super::eval::request(&a))),
            };
            // Checked before it reaches the store: bad flags are refused here, not by an agent.
            plan.check().map_err(cli_error)?;
            let store = super::connect_store(url)?;
            let ids = agent::enqueue(&store, &plan, &label, copies).map_err(cli_error)?;
            let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
            eprintln!(
                "queued {} plan{} {} on {}{}",
                plan.kind(),
                if ids.len() == 1 { "" } else { "s" },
                ids.join(", "),
                store.shown(),
                if label.is_empty() {
                    String::new()
                } else {
                    format!(" for label {label}")
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        QueueCommand::List { json } => {
            let items = super::connect_store(url)?.queue()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&items)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:>5}  {:<5}  {:<12}  {:<8}  {:<24}  {:<28}  {:>8}",
                "id", "kind", "label", "status", "agent", "experiment", "attempts"
            );
            for i in items {
                println!(
                    "{:>5}  {:<5}  {:<12}  {:<8}  {:<24}  {:<28}  {:>8}{}",
                    i.id,
                    i.kind,
                    if i.label.is_empty() { "any" } else { &i.label },
                    i.status.as_str(),
                    i.agent.as_deref().unwrap_or("-"),
                    i.experiment_id.as_deref().unwrap_or("-"),
                    i.attempts,
                    i.error.map_or_else(String::new, |e| format!("  {e}"))
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn agent(a: AgentArgs) -> anyhow::Result<ExitCode> {
    super::block_on(agent_async(a))
}

async fn agent_async(a: AgentArgs) -> anyhow::Result<ExitCode> {
    let environment = environment();
    let machine = environment.machine();
    let label = a.label.clone().unwrap_or(machine.label.clone());
    let opts = AgentOptions {
        store: StoreLocation::parse(&a.store),
        name: format!(
            "{label}-{}:{}",
            &machine.id[..6.min(machine.id.len())],
            std::process::id()
        ),
        label,
        results_dir: a.results.clone(),
        lease: Duration::from_secs_f64(a.lease),
        poll: Duration::from_secs_f64(a.poll),
        drain: a.drain,
        environment,
        open_tokenizer: Some(Arc::new(|p: &std::path::Path| {
            open_tokenizer(p).map_err(|e| e.to_string())
        })),
    };
    let ctx = ExperimentContext {
        events: Arc::new(Terminal::new("requests", true, false)),
        cancel: ctrl_c_token(),
        engine: Arc::new(LlamaLoader),
    };
    let out = agent::run(&opts, &ctx)
        .await
        .map_err(cli_error)
        .with_context(|| format!("agent on --store {}", opts.store.shown()))?;
    eprintln!(
        "agent {}: {} plan(s) done, {} failed, {} taken over by another agent",
        opts.name, out.done, out.failed, out.lost
    );
    Ok(if out.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
