//! `edgebench compare`: two result sets side by side, with significance and a decision.

use std::process::ExitCode;

use edgebench_core::compare::{self, CompareOptions, Criteria, Verdict};
use edgebench_core::report::compare_md;

use crate::args::CompareArgs;
use anyhow::Context;
use edgebench_core::results::machines;
use edgebench_core::results::ResultsFolder;
use edgebench_core::store::StoreLocation;

/// `--machines`: each `[LABEL=]PATH` read (a results folder, or an export file), or with
/// `--store` each machine label of the team store, and shown side by side.
fn machines(a: &CompareArgs, store: Option<&ResultsFolder>) -> anyhow::Result<ExitCode> {
    let sets =
        machines::load_specs(&a.machines, store).map_err(|e| anyhow::anyhow!("--machines {e}"))?;
    let opts = CompareOptions {
        seed: a.seed,
        ..CompareOptions::default()
    };
    let c = machines::compare(&sets, &opts);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&c)?);
    } else {
        print!("{}", machines::to_markdown(&c));
    }
    Ok(ExitCode::SUCCESS)
}

/// Exit code 0 when the decision is to apply (with or without monitoring), 1 when the baseline is
/// kept (a gate failed); `--all` exits 0 once every pair is compared.
pub fn compare(a: CompareArgs) -> anyhow::Result<ExitCode> {
    let store = match &a.store {
        Some(url) => {
            let location = StoreLocation::parse(url);
            Some(
                ResultsFolder::open_store(&location)
                    .with_context(|| format!("--store {}", location.shown()))?,
            )
        }
        None => None,
    };
    let load = |spec: &str| match &store {
        Some(f) => compare::load_stored(spec, f),
        None => compare::load(spec, &a.results),
    };
    if !a.machines.is_empty() {
        return machines(&a, store.as_ref());
    }
    let Some(baseline) = &a.baseline else {
        anyhow::bail!("compare: give a baseline, or --machines");
    };
    let criteria = match (&a.criteria, &a.preset) {
        (Some(p), _) => Criteria::load(p)?,
        (None, Some(name)) => Criteria::preset(name)
            .ok_or_else(|| anyhow::anyhow!("--preset {name}: unknown preset"))?,
        (None, None) => Criteria::default(),
    };
    let opts = CompareOptions {
        seed: a.seed,
        ..CompareOptions::default()
    };
    let baseline = load(baseline)?;
    let Some(candidate) = &a.candidate else {
        let all = compare::compare_all(&baseline, &criteria, &opts)?;
        write(a.output.as_deref(), &all)?;
        if a.json {
            println!("{}", serde_json::to_string_pretty(&all)?);
        } else {
            print!("{}", compare_md::render_all(&all));
        }
        return Ok(ExitCode::SUCCESS);
    };
    let candidate = load(candidate)?;
    let cmp = compare::compare(&baseline, &candidate, &criteria, &opts)?;
    write(a.output.as_deref(), &cmp)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&cmp)?);
    } else {
        print!("{}", compare_md::render(&cmp));
    }
    Ok(match cmp.decision.verdict {
        Verdict::KeepBaseline => ExitCode::from(1),
        Verdict::Apply | Verdict::ApplyWithMonitoring => ExitCode::SUCCESS,
    })
}

/// `--output FILE`: the comparison as pretty JSON, written whole or not at all.
fn write(path: Option<&std::path::Path>, value: &impl serde::Serialize) -> anyhow::Result<()> {
    if let Some(path) = path {
        let bytes = serde_json::to_vec_pretty(value)?;
        edgebench_core::results::atomic_write(path, &bytes)
            .with_context(|| format!("--output {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
