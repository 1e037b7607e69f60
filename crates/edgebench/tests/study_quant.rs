//! `edgebench study quant` on the default model, requantized (`--allow-requantize`, as only tests
//! and quick looks do): real llama.cpp quantization into a cache, a speed run and a Banking77 eval
//! of every type, the study file, the frontier in the report, the cache reused, bad input refused.

use std::path::{Path, PathBuf};
use std::process::Command;

fn edgebench(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_edgebench"))
        .env("EDGEBENCH_SETTLE_TIMEOUT", "1")
        .args(args)
        .output()
        .unwrap()
}

fn files(dir: &Path, prefix: &str, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with(prefix) && n.ends_with(suffix)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn study_quant_measures_each_type_and_names_the_frontier() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let model = edgebench_core::catalog::dev_model(&root).expect("default model");
    let data = root.join("../shared/datasets");
    let d = tempfile::tempdir().unwrap();
    let (results, cache) = (d.path().join("results"), d.path().join("quant"));
    let study = |types: &str, extra: &[&str]| {
        let mut args = vec![
            "study",
            "quant",
            "--models",
            model.to_str().unwrap(),
            "--types",
            types,
            "--cache-dir",
            cache.to_str().unwrap(),
            "--results",
            results.to_str().unwrap(),
            "--tasks",
            "banking77",
            "--sample-size",
            "6",
            "--scenarios",
            "interactive_assistant",
            "--runs",
            "3",
            "--warmup",
            "0",
            "--cooldown",
            "0",
            "--max-tokens",
            "12",
            "--threads",
            "2",
        ];
        if data.is_dir() {
            args.extend(["--data-dir", data.to_str().unwrap()]);
        }
        args.extend_from_slice(extra);
        edgebench(&args)
    };

    // Bad input: one line naming the flag, exit 2, nothing written.
    let o = study("Q8_0,Q4_0", &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("error: --allow-requantize: "), "{err}");
    let o = study("Q8_0,Q9_9", &["--allow-requantize"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("error: --types: ") && err.contains("Q9_9"),
        "{err}"
    );
    let o = study("IQ2_XXS", &["--allow-requantize"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("importance matrix"), "{err}");
    assert!(!cache.exists() || std::fs::read_dir(&cache).unwrap().next().is_none());

    let o = study("Q8_0,Q5_K_M,Q4_0,Q2_K", &["--allow-requantize", "--json"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert_eq!(err.matches("quant: writing").count(), 4, "{err}");
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = s["rows"].as_array().unwrap();
    let types: Vec<&str> = rows
        .iter()
        .map(|r| r["quantization"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["Q8_0", "Q5_K_M", "Q4_0", "Q2_K"]);
    let size = |i: usize| rows[i]["file_size_bytes"].as_u64().unwrap();
    assert!(size(0) > size(1) && size(1) > size(2) && size(2) > size(3));
    for r in rows {
        assert!(r["decode_tokens_per_s"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["prefill_tokens_per_s"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["model_load_ms"].as_f64().unwrap() > 0.0, "{r}");
        let acc = r["accuracy"]["banking77"]["value"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&acc), "{r}");
        // Each type is a model of its own in the results, file and name.
        let q = r["quantization"].as_str().unwrap();
        assert!(r["model"].as_str().unwrap().ends_with(q), "{r}");
        assert!(
            r["file"].as_str().unwrap().ends_with(&format!(".{q}.gguf")),
            "{r}"
        );
    }
    // The frontier is the set no other type dominates: checked against the figures themselves.
    let pts: Vec<(f64, f64)> = rows
        .iter()
        .map(|r| {
            (
                r["decode_tokens_per_s"].as_f64().unwrap(),
                r["accuracy"]["banking77"]["value"].as_f64().unwrap(),
            )
        })
        .collect();
    for (i, r) in rows.iter().enumerate() {
        let dominated = pts
            .iter()
            .any(|&(x, y)| x >= pts[i].0 && y >= pts[i].1 && (x > pts[i].0 || y > pts[i].1));
        let on = !r["frontier"].as_array().unwrap().is_empty();
        assert_eq!(on, !dominated, "{r}");
    }
    // Adjacent types tested on speed and accuracy.
    let steps = s["steps"].as_array().unwrap();
    for pair in [("Q8_0", "Q5_K_M"), ("Q5_K_M", "Q4_0"), ("Q4_0", "Q2_K")] {
        for metric in ["decode_tokens_per_s", "accuracy"] {
            assert!(
                steps
                    .iter()
                    .any(|x| x["from"] == pair.0 && x["to"] == pair.1 && x["metric"] == metric),
                "{pair:?} {metric}: {steps:?}"
            );
        }
    }
    // The study file, and the report with the frontier chart.
    assert_eq!(files(&results, "study_quant_", ".json").len(), 1);
    let html = files(&results, "benchmark_report_quant_", ".html");
    assert_eq!(html.len(), 1);
    let html = std::fs::read_to_string(&html[0]).unwrap();
    assert!(html.contains("chart-tradeoff") && html.contains('★'));
    let md =
        std::fs::read_to_string(&files(&results, "benchmark_report_quant_", ".md")[0]).unwrap();
    assert!(
        md.contains("| frontier |") && md.contains("On the frontier"),
        "{md}"
    );

    // Again with two of the types: both from the cache, nothing rewritten.
    let o = study("Q8_0,Q2_K", &["--allow-requantize", "--json"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert_eq!(err.matches("quant: writing").count(), 0, "{err}");
    assert_eq!(err.matches("from the cache").count(), 2, "{err}");

    // A Q8_0 source is a real study's start: no --allow-requantize, and llama.cpp quantizes it.
    let q8 = rows[0]["file"].as_str().unwrap();
    let results2 = d.path().join("results-q8");
    let mut args = vec![
        "study",
        "quant",
        "--models",
        q8,
        "--types",
        "Q4_0",
        "--cache-dir",
    ];
    args.extend([
        cache.to_str().unwrap(),
        "--results",
        results2.to_str().unwrap(),
    ]);
    args.extend(["--tasks", "banking77", "--sample-size", "4", "--scenarios"]);
    args.extend([
        "interactive_assistant",
        "--runs",
        "2",
        "--warmup",
        "0",
        "--cooldown",
        "0",
    ]);
    args.extend(["--max-tokens", "8", "--json"]);
    if data.is_dir() {
        args.extend(["--data-dir", data.to_str().unwrap()]);
    }
    let o = edgebench(&args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["source_quantization"], "Q8_0");
    assert_eq!(s["rows"][0]["quantization"], "Q4_0");
}
