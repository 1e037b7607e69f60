//! `edgebench push`, `pull` and `import`: experiments copied whole between a results folder's
//! database and a team store, matched by identity, so running them again adds nothing.

use std::process::ExitCode;

use anyhow::Context;
use edgebench_core::store::{
    copy_experiments, CopyReport, ExperimentCopy, Store, StoreLocation, Written,
};

use crate::args::{ImportArgs, SyncArgs};

fn told(what: &str, from: &str, to: &str, r: &CopyReport) {
    eprintln!(
        "{what} {from} -> {to}: {} new, {} updated, {} already there ({} requests and items written)",
        r.copied, r.updated, r.unchanged, r.records
    );
}

pub fn push(a: SyncArgs) -> anyhow::Result<ExitCode> {
    let local = Store::connect_existing(&StoreLocation::for_folder(&a.results, None))?;
    let team = super::connect_store(&a.store)?;
    let only = (!a.only.is_empty()).then_some(a.only.as_slice());
    let r = copy_experiments(&local, &team, only)?;
    told("push", local.shown(), team.shown(), &r);
    Ok(ExitCode::SUCCESS)
}

pub fn pull(a: SyncArgs) -> anyhow::Result<ExitCode> {
    let team = super::connect_store(&a.store)?;
    let local = Store::connect(&StoreLocation::for_folder(&a.results, None))?;
    let only = (!a.only.is_empty()).then_some(a.only.as_slice());
    let r = copy_experiments(&team, &local, only)?;
    told("pull", team.shown(), local.shown(), &r);
    Ok(ExitCode::SUCCESS)
}

pub fn import(a: ImportArgs) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(&a.file).with_context(|| format!("{}", a.file.display()))?;
    let copy = ExperimentCopy::from_export(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.file.display()))?;
    let store = match &a.store {
        Some(url) => super::connect_store(url)?,
        None => Store::connect(&StoreLocation::for_folder(&a.results, None))?,
    };
    let what = match store.write_experiment(&copy)? {
        Written::Copied => "imported",
        Written::Updated => "updated",
        Written::Unchanged => "already there:",
    };
    // Two machines can make experiments with one id (same second): the store keeps a copy
    // under a free one, and that is the id to use there.
    let stored = store
        .experiment_by_uuid(&copy.experiment.uuid)?
        .map_or_else(|| copy.experiment.id.clone(), |e| e.id);
    let renamed = if stored == copy.experiment.id {
        String::new()
    } else {
        format!(" as {stored} (its id was taken)")
    };
    eprintln!(
        "{what} experiment {}{renamed} ({} units, {} requests and items) into {}",
        copy.experiment.id,
        copy.units.len(),
        copy.records(),
        store.shown()
    );
    Ok(ExitCode::SUCCESS)
}
