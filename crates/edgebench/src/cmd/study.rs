//! `edgebench study`: builds a study's plans from the run flags, runs them through the
//! library's study, renders its events, and prints the decision.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use edgebench_core::compare::{Criteria, Verdict};
use edgebench_core::experiment::Context as ExperimentContext;
use edgebench_core::report::compare_md;
use edgebench_core::study::fp8_kv;
use edgebench_llama::LlamaLoader;

use super::render::{ctrl_c_token, Terminal};
use super::run::{base_command, cli_error, environment, request};
use crate::args::{Fp8Args, StudyCommand};

pub fn study(kind: StudyCommand) -> anyhow::Result<ExitCode> {
    match kind {
        StudyCommand::Fp8Kv(a) => super::block_on(fp8(*a)),
    }
}

async fn fp8(a: Fp8Args) -> anyhow::Result<ExitCode> {
    let criteria = match &a.criteria {
        Some(p) => Criteria::load(p)?,
        None => Criteria::fp8_kv(),
    };
    let [b, c] =
        fp8_kv::requests(&request(&a.run), a.calibrated_serve.as_deref()).map_err(cli_error)?;
    let mut plans = Vec::new();
    for r in [b, c] {
        let mut plan = r
            .into_plan(environment(), base_command(), None, &|m| eprintln!("{m}"))
            .map_err(cli_error)?;
        plan.store = a
            .run
            .store
            .as_deref()
            .map(edgebench_core::store::StoreLocation::parse);
        plans.push(plan);
    }
    let plans: [_; 2] = plans
        .try_into()
        .map_err(|_| anyhow::anyhow!("the study has two plans"))?;
    let ctx = ExperimentContext {
        events: Arc::new(Terminal::new("requests", !a.run.no_checkpoint, false)),
        cancel: ctrl_c_token(),
        engine: Arc::new(LlamaLoader),
    };
    let out = fp8_kv::run(plans, &criteria, &ctx)
        .await
        .map_err(cli_error)
        .context("FP8 study")?;
    eprintln!("\nresults:");
    for w in &out.written {
        eprintln!("  {}", w.display());
    }
    if a.run.json {
        println!("{}", serde_json::to_string_pretty(&out.comparison)?);
    } else {
        print!("{}", compare_md::render(&out.comparison));
    }
    Ok(match out.comparison.decision.verdict {
        Verdict::KeepBaseline => ExitCode::from(1),
        Verdict::Apply | Verdict::ApplyWithMonitoring => ExitCode::SUCCESS,
    })
}
