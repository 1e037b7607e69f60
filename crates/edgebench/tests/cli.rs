//! End-to-end tests of the `edgebench` binary: exit codes, one-line errors, file names, and a
//! short real run of the default model.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn test_model() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    edgebench_core::catalog::dev_model(&root).expect("default model")
}

fn edgebench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edgebench"))
        .args(args)
        .env(
            "EDGEBENCH_HOME",
            std::env::temp_dir().join("edgebench-cli-test-home"),
        )
        .output()
        .expect("run edgebench")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts exit code 2 with a single `error:` line mentioning `needle`.
fn assert_input_error(o: &Output, needle: &str) {
    assert_eq!(o.status.code(), Some(2), "stderr: {}", stderr(o));
    let err = stderr(o);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains(needle),
        "{needle:?} not in {:?}",
        lines[0]
    );
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn bad_input_exits_2_naming_the_thing_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let r = results.to_str().unwrap();

    let o = edgebench(&["run", "--models", "/no/such/model.gguf", "--results", r]);
    assert_input_error(&o, "/no/such/model.gguf");

    let corrupt = dir.path().join("corrupt.gguf");
    std::fs::write(&corrupt, b"GGUF\x03\x00\x00\x00truncated").unwrap();
    let o = edgebench(&["run", "--models", corrupt.to_str().unwrap(), "--results", r]);
    assert_input_error(&o, "corrupt.gguf");

    let not_gguf = dir.path().join("notes.gguf");
    std::fs::write(&not_gguf, b"hello").unwrap();
    let o = edgebench(&[
        "run",
        "--models",
        not_gguf.to_str().unwrap(),
        "--results",
        r,
    ]);
    assert_input_error(&o, "not a GGUF file");

    let o = edgebench(&["run", "--scenarios", "nope", "--results", r]);
    assert_input_error(&o, "\"nope\"");

    let o = edgebench(&[
        "run",
        "--scenarios-file",
        "/no/such/scenarios.toml",
        "--results",
        r,
    ]);
    assert_input_error(&o, "/no/such/scenarios.toml");

    let o = edgebench(&["run", "--runs", "0", "--results", r]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--runs"));

    let o = edgebench(&["run", "--cooldown", "-1", "--results", r]);
    assert_eq!(o.status.code(), Some(2));

    let o = edgebench(&["models", "info", "/no/such/model.gguf"]);
    assert_input_error(&o, "/no/such/model.gguf");

    assert!(files_in(&results).is_empty(), "{:?}", files_in(&results));
}

#[test]
fn a_prompt_longer_than_the_context_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let o = edgebench(&[
        "run",
        "--models",
        test_model().to_str().unwrap(),
        "--scenarios",
        "long_form_summarization",
        "--ctx-size",
        "1024",
        "--results",
        results.to_str().unwrap(),
    ]);
    assert_input_error(&o, "long_form_summarization");
    assert!(stderr(&o).contains("1024-token context"), "{}", stderr(&o));
    assert!(files_in(&results).is_empty());
}

#[test]
fn models_info_reads_gguf_metadata() {
    let o = edgebench(&["models", "info", test_model().to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    for want in [
        "architecture       llama",
        "parameters         134515008",
        "quantization       Q4_1",
        "context length     8192",
        "license            apache-2.0",
        "chat template      yes",
    ] {
        assert!(out.contains(want), "{want:?} missing from\n{out}");
    }
    let o = edgebench(&["models", "info", "--json", test_model().to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["publisher"], "HuggingFaceTB");
    assert_eq!(v["format"], "GGUF");
}

#[test]
fn a_short_real_run_writes_jsonl_per_unit_and_a_json_summary() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let o = edgebench(&[
        "run",
        "--models",
        test_model().to_str().unwrap(),
        "--scenarios",
        "interactive_assistant,structured_json_output",
        "--runs",
        "3",
        "--warmup",
        "1",
        "--cooldown",
        "0",
        "--max-tokens",
        "12",
        "--results",
        results.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let summary: serde_json::Value =
        serde_json::from_slice(&o.stdout).expect("stdout is one JSON document");
    let err = stderr(&o);
    assert!(
        err.contains("ttft_ms") && err.contains("decode_tokens_per_s"),
        "{err}"
    );

    let files = files_in(&results);
    assert_eq!(files.len(), 3, "{files:?}");
    let stamp = summary["run_id"].as_str().unwrap();
    let hash = summary["config_hash"].as_str().unwrap();
    assert_eq!(hash.len(), 64);
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(results.join(format!("experiment_config_{stamp}.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(config["config_hash"], hash);
    assert_eq!(config["plan"]["seed"], 42);
    let target = &config["models"][0]["target"];
    assert!(target["model_load_ms"].as_f64().unwrap() > 0.0);
    assert!(target["rss_after_load_mb"].as_f64().unwrap() > 50.0);
    assert!(target["system_info"].as_str().unwrap().contains("CPU"));
    assert!(config["environment"]["logical_cores"].as_u64().unwrap() >= 1);
    for (f, sc) in files[1..]
        .iter()
        .zip(["interactive_assistant", "structured_json_output"])
    {
        assert_eq!(
            f,
            &format!("perf_HuggingFaceTB_SmolLM2-135M-Instruct_GGUF_Q4_1_{sc}_{stamp}.jsonl")
        );
        let text = std::fs::read_to_string(results.join(f)).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 4, "1 warm-up + 3 measured");
        assert_eq!(lines[0]["warmup"], true);
        assert!(lines[1..].iter().all(|l| l["warmup"] == false));
        for l in &lines {
            assert_eq!(l["config_hash"], hash);
            assert_eq!(l["scenario"], sc);
            assert_eq!(l["quantization"], "Q4_1");
            let out = l["output_tokens"].as_u64().unwrap();
            if sc == "interactive_assistant" {
                assert_eq!(out, 12, "the speed scenario generates exactly --max-tokens");
            } else {
                assert!((1..=12).contains(&out), "{out}");
            }
            assert!(l["t_sent_ns"].as_u64().unwrap() > 0 || l["index"] == 0);
            assert!(l["metrics"]["ttft_ms"].as_f64().unwrap() > 0.0);
            assert!(l["engine_timings"]["prompt_tokens"].as_u64().unwrap() > 100);
            if sc == "structured_json_output" {
                assert!(l["json_valid"].is_boolean());
            }
        }
    }

    let units = summary["models"][0]["units"].as_array().unwrap();
    assert_eq!(units.len(), 2);
    let u = &units[0];
    assert_eq!(u["requests"], 3);
    assert_eq!(u["success_rate"], 1.0);
    let ttft = &u["ttft_ms"];
    assert_eq!(ttft["n"], 3);
    let (lo, mean, hi) = (
        ttft["mean_ci"]["lower"].as_f64().unwrap(),
        ttft["mean"].as_f64().unwrap(),
        ttft["mean_ci"]["upper"].as_f64().unwrap(),
    );
    assert!(lo <= mean && mean <= hi);
    assert!(u["decode_tokens_per_s"]["mean"].as_f64().unwrap() > 5.0);
    assert!(u["peak_rss_mb"].as_f64().unwrap() > 50.0);
    assert!(units[1]["json_valid_rate"].is_number());
    assert!(summary["models"][0]["target"]["system_info"]
        .as_str()
        .unwrap()
        .contains("CPU"));
}
