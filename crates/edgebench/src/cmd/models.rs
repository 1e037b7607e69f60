//! `edgebench models`: the catalog, model facts from GGUF metadata, and fetching.

use anyhow::Context;
use std::process::ExitCode;

use edgebench_core::catalog::{self, CATALOG, DEFAULT_MODEL};

use crate::args::ModelsCommand;

pub fn models(cmd: ModelsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ModelsCommand::List { json } => list(json),
        ModelsCommand::Info { model, json } => info(&model, json),
        ModelsCommand::Pull { key } => {
            let key = key.unwrap_or_else(|| DEFAULT_MODEL.to_string());
            let m = catalog::resolve(&key, true, &|m| eprintln!("{m}"))?;
            println!("{}", m.path.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn list(json: bool) -> anyhow::Result<ExitCode> {
    let dir = catalog::model_cache_dir();
    if json {
        let rows: Vec<_> = CATALOG
            .iter()
            .map(|e| {
                serde_json::json!({
                    "key": e.key,
                    "name": e.name,
                    "publisher": e.publisher,
                    "license": e.license,
                    "default": e.key == DEFAULT_MODEL,
                    "cached": dir.join(e.file_name).is_file(),
                    "path": dir.join(e.file_name),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<30} {:<24} {:<20} {:<8}",
        "key", "name", "license", "cached"
    );
    for e in CATALOG {
        let cached = if dir.join(e.file_name).is_file() {
            "yes"
        } else {
            "no"
        };
        let default = if e.key == DEFAULT_MODEL {
            " (default)"
        } else {
            ""
        };
        println!(
            "{:<30} {:<24} {:<20} {:<8}",
            format!("{}{default}", e.key),
            e.name,
            e.license,
            cached
        );
    }
    eprintln!("model cache: {}", dir.display());
    Ok(ExitCode::SUCCESS)
}

fn info(model: &str, json: bool) -> anyhow::Result<ExitCode> {
    let m = catalog::resolve(model, false, &|_| {})?;
    let i = catalog::model_info(&m.path, m.key.as_deref())
        .with_context(|| format!("reading model {model}"))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&i)?);
        return Ok(ExitCode::SUCCESS);
    }
    let ctx = i.context_length.map_or("unknown".into(), |c| c.to_string());
    println!("path               {}", i.path.display());
    println!("name               {}", i.name);
    println!("publisher          {}", i.publisher);
    println!("architecture       {}", i.architecture);
    println!(
        "parameters         {} ({:.1} M)",
        i.parameters,
        i.parameters as f64 / 1e6
    );
    println!("format             {}", i.format);
    println!("quantization       {}", i.quantization);
    println!("context length     {ctx}");
    println!(
        "license            {}",
        i.license.as_deref().unwrap_or("unknown")
    );
    println!(
        "chat template      {}",
        if i.has_chat_template { "yes" } else { "no" }
    );
    println!("file size          {} bytes", i.file_size_bytes);
    Ok(ExitCode::SUCCESS)
}
