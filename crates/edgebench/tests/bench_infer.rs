//! `edgebench bench-infer` on the default model: the community table's benchmark, its settings
//! from a `[generation]` section and flags, its JSON document and Markdown row.

use std::path::Path;
use std::process::Command;

fn edgebench(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_edgebench"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn bench_infer_writes_the_json_and_the_community_row() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let model = edgebench_core::catalog::dev_model(&root).expect("default model");
    let d = tempfile::tempdir().unwrap();
    let config = d.path().join("base.toml");
    std::fs::write(
        &config,
        "[model]\nn_layer = 6\n\n[generation]\nseed = 7\niters = 2\ngen_tokens = 64\ntemperature = 0.7\n",
    )
    .unwrap();
    let (json, md) = (
        d.path().join("out/bench.json"),
        d.path().join("out/bench.md"),
    );
    let o = edgebench(&[
        "bench-infer",
        "--checkpoint",
        model.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--gen-tokens",
        "24",
        "--warmup-tokens",
        "4",
        "--threads",
        "2",
        "--json-out",
        json.to_str().unwrap(),
        "--md-out",
        md.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    // The file's settings, the flags over them.
    let g = &doc["generation"];
    assert_eq!(
        (g["seed"].clone(), g["iters"].clone()),
        (7.into(), 2.into())
    );
    assert_eq!(g["gen_tokens"], 24, "the flag wins over the file");
    assert_eq!(g["warmup_tokens"], 4);
    assert_eq!(g["use_kv_cache"], true);
    let r = &doc["results"];
    assert_eq!(r["iters"], 2);
    assert_eq!(r["runs_tokens_per_sec"].as_array().unwrap().len(), 2);
    let t = &r["tokens_per_sec"];
    let (mean, min, max) = (
        t["mean"].as_f64().unwrap(),
        t["min"].as_f64().unwrap(),
        t["max"].as_f64().unwrap(),
    );
    assert!(min > 0.0 && min <= mean && mean <= max, "{t}");
    assert!(r["vram_peak_mib"].is_null());
    assert_eq!(doc["device"]["type"], "cpu");
    assert_eq!(doc["model"]["source"], "local");
    assert!(doc["model"]["params_m"].as_f64().unwrap() > 100.0);
    // The Markdown: the table's head and a row in its formats.
    let text = std::fs::read_to_string(&md).unwrap();
    let row = text.lines().nth(2).expect("a row under the head");
    let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
    assert_eq!(cells.len(), 7, "{row}");
    assert_eq!(cells[1], "local");
    assert!(
        cells[2].split('.').nth(1).is_some_and(|d| d.len() == 3),
        "params to 3 decimals: {row}"
    );
    assert_eq!((cells[3], cells[4], cells[6]), ("on", "24", "N/A"));
    assert_eq!(cells[5], format!("{mean:.2}"));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        text,
        "the row is printed too"
    );
}

#[test]
fn bench_infer_refuses_what_the_engine_cannot_do_in_one_line() {
    let d = tempfile::tempdir().unwrap();
    let o = edgebench(&[
        "bench-infer",
        "--kv-cache",
        "off",
        "--json-out",
        d.path().join("x.json").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("KV cache"), "{err}");
    assert!(!d.path().join("x.json").exists());
    let bad = d.path().join("bad.toml");
    std::fs::write(&bad, "[generation]\ntemprature = 0.5\n").unwrap();
    let o = edgebench(&["bench-infer", "--config", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("temprature"),
        "{err}"
    );
    let o = edgebench(&["bench-infer", "--device", "cuda"]);
    assert_eq!(o.status.code(), Some(2));
}
