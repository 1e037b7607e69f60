//! `edgebench results`: list, show, export and delete experiments in the results database.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{anyhow, Context};
use edgebench_core::report::export::{self, ExportFormat};
use edgebench_core::results::atomic_write;
use edgebench_core::store::{ExperimentRow, Store, StoreLocation, UnitRow};

use crate::args::{ExportFormatArg, ResultsCommand};

pub fn results(dir: &Path, url: Option<&str>, command: ResultsCommand) -> anyhow::Result<ExitCode> {
    let location = StoreLocation::for_folder(dir, url);
    let store = Store::connect_existing(&location)?;
    let db = location.shown();
    match command {
        ResultsCommand::List { json } => list(&store, json)?,
        ResultsCommand::Show { id, json } => show(&store, &db, &id, json)?,
        ResultsCommand::Export { id, format, output } => {
            let e = experiment(&store, &db, &id)?;
            let format = match format {
                ExportFormatArg::Jsonl => ExportFormat::Jsonl,
                ExportFormatArg::Csv => ExportFormat::Csv,
                ExportFormatArg::Json => ExportFormat::Json,
            };
            let bytes = export::export(&store, &e, format)?;
            match output {
                Some(p) => {
                    atomic_write(&p, &bytes).with_context(|| format!("writing {}", p.display()))?;
                    eprintln!("wrote {}", p.display());
                }
                None => std::io::stdout().write_all(&bytes)?,
            }
        }
        ResultsCommand::Delete { id } => {
            let e = experiment(&store, &db, &id)?;
            store.delete_experiment(&e.id)?;
            let config = dir.join(format!("experiment_config_{}.json", e.id));
            let summary = dir.join(format!("summary_{}.json", e.id));
            for f in [config, summary] {
                if f.exists() {
                    std::fs::remove_file(&f)
                        .with_context(|| format!("removing {}", f.display()))?;
                }
            }
            store.vacuum()?;
            eprintln!(
                "deleted experiment {} (exported JSONL/JSON files are left in place)",
                e.id
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn experiment(store: &Store, db: &str, id: &str) -> anyhow::Result<ExperimentRow> {
    store
        .experiment(id)?
        .ok_or_else(|| anyhow!("no experiment {id:?} in {db} (see `edgebench results list`)"))
}

fn progress(units: &[UnitRow]) -> (usize, usize, usize) {
    let done = units.iter().filter(|u| u.status == "done").count();
    let failed = units.iter().filter(|u| u.status == "failed").count();
    (done, failed, units.len())
}

fn list(store: &Store, json: bool) -> anyhow::Result<()> {
    let exps = store.experiments()?;
    if json {
        let mut out = Vec::new();
        for e in &exps {
            let (done, failed, total) = progress(&store.units(&e.id)?);
            out.push(serde_json::json!({
                "id": e.id, "kind": e.kind, "created": e.created, "status": e.status,
                "config_hash": e.config_hash, "units_done": done, "units_failed": failed,
                "units_total": total,
            }));
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    if exps.is_empty() {
        eprintln!("no experiments yet");
        return Ok(());
    }
    println!(
        "{:<22} {:<5} {:<12} {:>9} {:<12} created",
        "id", "kind", "status", "units", "config"
    );
    for e in &exps {
        let (done, failed, total) = progress(&store.units(&e.id)?);
        let units = if failed > 0 {
            format!("{done}/{total} ({failed} failed)")
        } else {
            format!("{done}/{total}")
        };
        println!(
            "{:<22} {:<5} {:<12} {:>9} {:<12} {}",
            e.id,
            e.kind,
            e.status,
            units,
            &e.config_hash[..12.min(e.config_hash.len())],
            e.created
        );
    }
    Ok(())
}

fn show(store: &Store, db: &str, id: &str, json: bool) -> anyhow::Result<()> {
    let e = experiment(store, db, id)?;
    let units = store.units(&e.id)?;
    if json {
        let v = serde_json::json!({ "experiment": e, "units": units });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let (done, failed, total) = progress(&units);
    println!("experiment {} ({}, {})", e.id, e.kind, e.status);
    println!("created     {}", e.created);
    println!("config hash {}", e.config_hash);
    println!("command     {}", e.command);
    println!("units       {done}/{total} done, {failed} failed");
    for u in &units {
        let k = &u.key;
        let what = if k.setting.is_empty() {
            format!("{} / {}", k.model_label(), k.scenario)
        } else {
            format!("{} / {} / {}", k.model_label(), k.scenario, k.setting)
        };
        let mut line = format!("  [{:<7}] {what}: {} records", u.status, u.requests);
        if let Some(err) = &u.error {
            line.push_str(&format!(" (error: {err})"));
        }
        println!("{line}");
    }
    Ok(())
}
