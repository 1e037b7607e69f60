//! End-to-end tests of the `edgebench` binary: exit codes, one-line errors, file names, and a
//! short real run of the default model.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn test_model() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    edgebench_core::catalog::dev_model(&root).expect("default model")
}

/// Tests that run the real model take this lock, so they do not compete for the cores.
static MODEL_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn model_lock() -> std::sync::MutexGuard<'static, ()> {
    MODEL_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn edgebench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edgebench"))
        .args(args)
        .env(
            "EDGEBENCH_HOME",
            std::env::temp_dir().join("edgebench-cli-test-home"),
        )
        // Other tests share the cores; do not wait the default 10 s for a quiet machine.
        .env("EDGEBENCH_SETTLE_TIMEOUT", "1")
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

    // Usage errors are one line naming the flag, nothing else.
    for (args, flag) in [
        (&["run", "--runs", "0", "--results", r][..], "--runs"),
        (&["run", "--cooldown=-1", "--results", r][..], "--cooldown"),
        (
            &["run", "--no-such-flag", "--results", r][..],
            "--no-such-flag",
        ),
        (
            &[
                "eval",
                "--task",
                "banking77",
                "--answer",
                "greedy",
                "--results",
                r,
            ][..],
            "--answer",
        ),
        (
            &["eval", "--task", "coding", "--samples", "5", "--results", r][..],
            "--samples",
        ),
        (
            &[
                "eval",
                "--task",
                "mmlu",
                "--format",
                "essay",
                "--results",
                r,
            ][..],
            "--format",
        ),
    ] {
        let o = edgebench(args);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        let err = stderr(&o);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.starts_with("error: ") && err.contains(flag), "{err}");
    }
    let o = edgebench(&["run", "--help"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("--runs"));

    let o = edgebench(&["models", "info", "/no/such/model.gguf"]);
    assert_input_error(&o, "/no/such/model.gguf");

    assert!(files_in(&results).is_empty(), "{:?}", files_in(&results));
}

#[test]
fn no_checkpoint_writes_only_the_exports() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let o = edgebench(&[
        "run",
        "--endpoint",
        "mock",
        "--runs",
        "2",
        "--warmup",
        "0",
        "--cooldown",
        "0",
        "--max-tokens",
        "4",
        "--scenarios",
        "interactive_assistant",
        "--no-checkpoint",
        "--results",
        results.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let files = files_in(&results);
    assert!(
        !files.iter().any(|f| f.starts_with("edgebench.db")),
        "{files:?}"
    );
    assert_eq!(files.len(), 3, "config, perf, summary: {files:?}");
    let o = edgebench(&[
        "run",
        "--endpoint",
        "mock",
        "--resume",
        "--results",
        results.to_str().unwrap(),
    ]);
    assert_input_error(&o, "nothing to resume");
}

#[test]
fn a_prompt_longer_than_the_context_is_refused_before_anything_runs() {
    let _lock = model_lock();
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
    let _lock = model_lock();
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
    assert_eq!(files.len(), 6, "{files:?}");
    let stamp = summary["run_id"].as_str().unwrap();
    assert_eq!(files[0], format!("checkpoint_{stamp}.json"));
    assert_eq!(files[1], "edgebench.db");
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
    for (f, sc) in files[3..5]
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
            assert_eq!(l["model_quantization"], "Q4_1");
            let out = l["output_tokens"].as_u64().unwrap();
            if sc == "interactive_assistant" {
                assert_eq!(out, 12, "the speed scenario generates exactly --max-tokens");
            } else {
                assert!((1..=12).contains(&out), "{out}");
            }
            assert!(l["t_sent_ns"].as_u64().unwrap() > 0 || l["index"] == 0);
            assert!(l["metrics"]["ttft_ms"].as_f64().unwrap() > 0.0);
            assert!(l["engine_timings"]["prompt_tokens"].as_u64().unwrap() > 100);
            // The model's own tokenizer puts each prompt in its scenario's range.
            let p = l["prompt_tokens"].as_u64().unwrap();
            let range = if sc == "interactive_assistant" {
                200..=400
            } else {
                500..=1000
            };
            assert!(range.contains(&p), "{sc}: {p} prompt tokens");
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
    assert!(u["decode_tokens_per_s"]["mean"].as_f64().unwrap() > 0.0);
    assert!(u["peak_rss_mb"].as_f64().unwrap() > 50.0);
    assert!(units[1]["json_valid_rate"].is_number());
    let monitor = &u["monitor"];
    assert!(monitor["samples"].as_u64().unwrap() >= 1, "{monitor}");
    let cost = monitor["sampler_cpu_percent_of_core"].as_f64().unwrap();
    assert!((0.0..5.0).contains(&cost), "sampler cost {cost}% of a core");
    assert!(monitor["energy_source"].is_string(), "{monitor}");
    assert!(u["settle"]["threshold_percent"].as_f64().unwrap() > 0.0);
    assert!(config["environment"]["hardware"]["cpu"]["logical_cores"]
        .as_u64()
        .is_some_and(|n| n >= 1));
    assert!(summary["models"][0]["target"]["system_info"]
        .as_str()
        .unwrap()
        .contains("CPU"));
}

#[test]
fn compare_two_real_runs_pairs_prompts_and_decides() {
    let _lock = model_lock();
    let dir = tempfile::tempdir().unwrap();
    let model = test_model();
    // The same prompts with 128 or 4 output tokens after the same ~300-token prefill. With TTFT
    // T and decode rate d, short/long output tokens/s is (x + 128) / (32 (x + 4)) for x = T * d:
    // below 0.6 (the -40 % asserted below) for any x > 2.8 tokens, which any machine gives
    // (2026-12-02 CI runs here measured x ~ 12; 96 vs 24 gave only -23.6 % and 128 vs 16 -35.5 %).
    let run = |name: &str, max_tokens: &str| {
        let out = dir.path().join(name);
        let o = edgebench(&[
            "run",
            "--models",
            model.to_str().unwrap(),
            "--scenarios",
            "interactive_assistant",
            "--runs",
            "4",
            "--warmup",
            "1",
            "--cooldown",
            "0",
            "--max-tokens",
            max_tokens,
            "--results",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        out
    };
    let a = run("long-answers", "128");
    let b = run("short-answers", "4");
    // A large drop in output tokens/s: the default rules keep the baseline (exit 1).
    let o = edgebench(&["compare", a.to_str().unwrap(), b.to_str().unwrap()]);
    let md = String::from_utf8(o.stdout.clone()).unwrap();
    assert_eq!(o.status.code(), Some(1), "{md}\n{}", stderr(&o));
    assert!(md.contains("**Decision: keep baseline**"), "{md}");
    assert!(
        md.contains("paired by prompt: both sides ran the same 4 prompts"),
        "{md}"
    );
    assert!(md.contains("| decode_tokens_per_s ↑ |"), "{md}");
    let o = edgebench(&[
        "compare",
        "--json",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let out_tps = v["scenarios"][0]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["metric"] == "output_tokens_per_s")
        .unwrap()
        .clone();
    assert!(
        out_tps["relative_change"].as_f64().unwrap() < -0.4,
        "{out_tps}"
    );
    assert!(v["decision"]["performance_impact"].as_f64().unwrap() > 0.25);
    // The other way round it is an improvement: apply (exit 0).
    let o = edgebench(&["compare", b.to_str().unwrap(), a.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    // Looser rules accept the same slowdown.
    let criteria = dir.path().join("loose.toml");
    std::fs::write(&criteria, "apply_below = 0.95\nmonitor_below = 0.99\n").unwrap();
    let o = edgebench(&[
        "compare",
        "--criteria",
        criteria.to_str().unwrap(),
        a.to_str().unwrap(),
        b.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    // The FP8 study's rules: an improvement without counted warnings is no evidence, the
    // baseline is kept; --output writes the comparison with its recommendations.
    let report = dir.path().join("fp8_comparison.json");
    let o = edgebench(&[
        "compare",
        "--preset",
        "fp8-kv",
        "--output",
        report.to_str().unwrap(),
        b.to_str().unwrap(),
        a.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert!(
        v["decision"]["rule"]
            .as_str()
            .unwrap()
            .contains("warnings not checked"),
        "{}",
        v["decision"]
    );
    assert!(v["recommendations"][0]
        .as_str()
        .unwrap()
        .starts_with("Keep the baseline"));
    let o = edgebench(&[
        "compare",
        "--preset",
        "fp9",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
    ]);
    assert_input_error(&o, "fp9");
    // Bad input: exit 2 naming the thing.
    let o = edgebench(&["compare", "no-such-run", b.to_str().unwrap()]);
    assert_input_error(&o, "no-such-run");
}

#[test]
fn results_list_show_export_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let r = results.to_str().unwrap();
    let o = edgebench(&[
        "run",
        "--endpoint",
        "mock",
        "--runs",
        "3",
        "--warmup",
        "1",
        "--cooldown",
        "0",
        "--max-tokens",
        "4",
        "--scenarios",
        "interactive_assistant",
        "--results",
        r,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = edgebench(&["results", "--results", r, "list", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let id = list[0]["id"].as_str().unwrap().to_string();
    assert_eq!(list[0]["units_done"], 1);
    assert_eq!(list[0]["status"], "done");

    let o = edgebench(&["results", "--results", r, "show", &id]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("4 records"));

    let o = edgebench(&["results", "--results", r, "export", &id, "--format", "csv"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = String::from_utf8(o.stdout).unwrap();
    assert_eq!(
        csv.lines().count(),
        1 + 4,
        "header + warm-up + 3 runs:\n{csv}"
    );
    assert!(csv.starts_with("experiment_id,config_hash,model,scenario"));

    let out = dir.path().join("x.jsonl");
    let o = edgebench(&[
        "results",
        "--results",
        r,
        "export",
        &id,
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 4);

    assert_input_error(
        &edgebench(&["results", "--results", r, "show", "no-such-id"]),
        "no-such-id",
    );
    let o = edgebench(&["results", "--results", r, "delete", &id]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = edgebench(&["results", "--results", r, "list", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(list.as_array().unwrap().is_empty());
    assert!(!files_in(&results)
        .iter()
        .any(|f| f.starts_with("experiment_config_")));
    assert_input_error(
        &edgebench(&["results", "--results", "/nonexistent-dir", "list"]),
        "/nonexistent-dir/edgebench.db",
    );
}

fn shared_datasets() -> Option<PathBuf> {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets");
    if d.join("banking77/test.csv").exists() {
        Some(d)
    } else {
        assert!(
            std::env::var("EDGEBENCH_REQUIRE_PEERS").is_err(),
            "{} is missing",
            d.display()
        );
        eprintln!("SKIPPED: {} not found", d.display());
        None
    }
}

#[test]
fn eval_scores_a_sample_writes_the_summary_and_resumes_without_rescoring() {
    let Some(data) = shared_datasets() else {
        return;
    };
    let _g = model_lock();
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let model = test_model();
    let args = |extra: &[&str]| {
        let mut v = vec![
            "eval",
            "--task",
            "banking_all",
            "--sample-size",
            "12",
            "--model",
            model.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "--results",
            results.to_str().unwrap(),
            "--monitor-interval",
            "100",
            "--json",
        ];
        v.extend_from_slice(extra);
        v.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let a = args(&[]);
    let o = edgebench(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let tasks: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["task"].as_str().unwrap())
        .collect();
    assert_eq!(tasks, ["banking77", "financial_phrasebank"]);
    for s in v.as_array().unwrap() {
        assert_eq!(s["items"], 12);
        let acc = &s["scores"]["accuracy"];
        assert!(acc["value"].as_f64().unwrap() >= 0.0 && acc["n"] == 12);
        assert!(s["items_per_s"].as_f64().unwrap() > 0.0);
        let m = &s["monitor"];
        assert!(m["samples"].as_u64().unwrap() >= 1, "{m}");
        assert!(m["peak_rss_mb"].as_f64().unwrap() > 50.0, "{m}");
        assert!(s["settle"]["threshold_percent"].is_number(), "{s}");
    }
    let files = files_in(&results);
    assert!(
        files
            .iter()
            .any(|f| f.starts_with("eval_banking77_SmolLM2-135M-Instruct_GGUF_Q4_1_")),
        "{files:?}"
    );
    // The reproducibility record, as for runs, and the CHECKPOINT SUMMARY.
    let id = v[0]["experiment_id"].as_str().unwrap();
    let record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(results.join(format!("experiment_config_{id}.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(record["config_hash"], v[0]["config_hash"]);
    assert_eq!(record["eval"]["tasks"][1], "financial_phrasebank");
    // The checkpoint snapshot beside the store, as of the last unit boundary.
    let ckpt: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(results.join(format!("checkpoint_{id}.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(ckpt["status"], "done", "{ckpt}");
    assert_eq!(
        (ckpt["units_done"].clone(), ckpt["units_total"].clone()),
        (2.into(), 2.into())
    );
    assert_eq!(record["models"][0]["target"]["kind"], "embedded");
    assert!(record["environment"]["hardware"]["cpu"].is_object());
    let err = stderr(&o);
    assert!(
        err.contains("CHECKPOINT SUMMARY") && err.contains("2/2 units done"),
        "{err}"
    );
    // An eval compared with itself, item by item from the store: no quality drop.
    let o = edgebench(&[
        "compare",
        id,
        id,
        "--results",
        results.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let cmp: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let sc = &cmp["scenarios"][0];
    assert_eq!(sc["scenario"], "eval:banking77");
    assert_eq!(sc["paired"], true, "{sc}");
    assert_eq!(sc["metrics"][0]["metric"], "accuracy");
    assert_eq!(sc["metrics"][0]["n_baseline"], 12);
    assert_eq!(cmp["decision"]["verdict"], "apply");
    let summary_file = files
        .iter()
        .find(|f| f.starts_with("eval_banking77_"))
        .unwrap();
    let o = edgebench(&[
        "compare",
        results.join(summary_file).to_str().unwrap(),
        id,
        "--results",
        results.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let cmp: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(cmp["scenarios"].as_array().unwrap().len(), 1, "{cmp}");
    assert_input_error(
        &edgebench(&[
            "compare",
            "--all",
            id,
            "--results",
            results.to_str().unwrap(),
        ]),
        "one model",
    );

    // Nothing left to resume: the eval finished.
    let mut r = args(&["--resume"]);
    r.retain(|x| x != "--json");
    assert_input_error(
        &edgebench(&r.iter().map(String::as_str).collect::<Vec<_>>()),
        "nothing to resume",
    );
    assert_input_error(&edgebench(&["eval", "--task", "bogus"]), "bogus");
    assert_input_error(
        &edgebench(&[
            "eval",
            "--task",
            "gsm8k",
            "--data-dir",
            dir.path().join("none").to_str().unwrap(),
        ]),
        "--data-dir",
    );
    let empty = tempfile::tempdir().unwrap();
    assert_input_error(
        &edgebench(&[
            "eval",
            "--task",
            "gsm8k",
            "--model",
            model.to_str().unwrap(),
            "--data-dir",
            empty.path().to_str().unwrap(),
            "--results",
            results.to_str().unwrap(),
        ]),
        "gsm8k/test.jsonl",
    );
}

#[test]
fn hw_detect_and_bench_print_json_and_refuse_bad_sizes() {
    let o = edgebench(&["hw", "detect", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let d: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(d["cpu"]["logical_cores"].as_u64().unwrap() >= 1);
    assert!(d["memory"]["total_mb"].as_u64().unwrap() > 0);
    assert!(d["recommendation"]["backend"].is_string(), "{d}");
    let probes: Vec<&str> = d["gpu_probes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["source"].as_str().unwrap())
        .collect();
    assert_eq!(probes, ["NVML", "rocm-smi", "xpu-smi", "sysfs"], "{d}");

    let o = edgebench(&["hw", "detect"]);
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("CPU") && text.contains("recommended"),
        "{text}"
    );

    let _lock = model_lock();
    let o = edgebench(&[
        "hw",
        "bench",
        "--no-decode",
        "--sizes",
        "64",
        "--runs",
        "1",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let b: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let kernels: Vec<&str> = b["bandwidth"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kernel"].as_str().unwrap())
        .collect();
    // The cache-aware size, then the hardware-report document's 256 MiB block where it differs.
    assert_eq!(kernels[..4], ["read", "write", "copy", "triad"]);
    assert!(kernels.len() == 4 || kernels.len() == 8, "{kernels:?}");
    if kernels.len() == 8 {
        assert_eq!(b["bandwidth"][4]["array_bytes"], 256 << 20);
    }
    assert!(b["gemm"][0]["best_gflops"].as_f64().unwrap() > 0.0, "{b}");
    let g = &b["gemm"][0];
    let mean = g["mean_gflops"].as_f64().unwrap();
    assert!(
        mean > 0.0 && mean <= g["best_gflops"].as_f64().unwrap(),
        "GFLOPS from the mean time: {g}"
    );

    // Every phase, saved as the hardware report's file.
    let dir = tempfile::tempdir().unwrap();
    let o = edgebench(&[
        "hw",
        "all",
        "--skip-ai",
        "--sizes",
        "64",
        "--runs",
        "1",
        "--results",
        dir.path().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("recommended") && out.contains("f32 GEMM"),
        "{out}"
    );
    let saved: Vec<std::path::PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    assert_eq!(saved.len(), 1, "{saved:?}");
    let name = saved[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("benchmark_") && name.contains("_Linux_"),
        "{name}"
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&saved[0]).unwrap()).unwrap();
    assert!(doc["hardware"]["cpu"]["model"].is_string(), "{doc}");
    assert!(doc["bench"]["gemm"][0]["mean_gflops"].as_f64().unwrap() > 0.0);
    assert_eq!(
        doc["bench"]["ceilings"].as_array().unwrap().len(),
        0,
        "--skip-ai"
    );

    assert_input_error(&edgebench(&["hw", "bench", "--sizes", "0"]), "--sizes");
    assert_input_error(&edgebench(&["hw", "bench", "--runs", "0"]), "--runs");
}

#[test]
fn compare_all_decides_every_pair_of_an_experiment() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../edgebench-core/tests/data/report");
    let o = edgebench(&[
        "compare",
        "--all",
        "20261124_190305",
        "--results",
        data.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let all: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(all["models"].as_array().unwrap().len(), 2);
    assert_eq!(all["comparisons"].as_array().unwrap().len(), 1);
    assert!(all["family_tests"].as_u64().unwrap() >= 10, "{all}");
    let o = edgebench(&[
        "compare",
        "--all",
        "20261124_190305",
        "--results",
        data.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("| baseline | candidate | decision | rule |"),
        "{text}"
    );
    // --all takes one experiment; two are a usage error.
    let o = edgebench(&["compare", "--all", "a", "b"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn a_concurrency_sweep_runs_steps_in_order_and_tabulates_them() {
    let _lock = model_lock();
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let o = edgebench(&[
        "run",
        "--models",
        test_model().to_str().unwrap(),
        "--scenarios",
        "interactive_assistant",
        "--sweep",
        "concurrency=1,2,4",
        "--runs",
        "4",
        "--warmup",
        "0",
        "--cooldown",
        "0",
        "--max-tokens",
        "8",
        "--results",
        results.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let steps = s["sweep"].as_array().unwrap();
    let levels: Vec<u64> = steps
        .iter()
        .map(|r| r["concurrency"].as_u64().unwrap())
        .collect();
    // The steps run in order; a sweep may stop early, and says why.
    assert!(
        !levels.is_empty() && [1, 2, 4].starts_with(&levels),
        "{levels:?}"
    );
    let err = stderr(&o);
    assert!(
        err.contains("sweep") && err.contains("output_tok/s"),
        "{err}"
    );
    if levels.len() < 3 {
        assert!(err.contains("stopping after concurrency"), "{err}");
    }
    for r in steps {
        assert_eq!(r["scenario"], "interactive_assistant");
        assert_eq!(r["requests"], 4);
        assert!(r["output_token_throughput_per_s"].as_f64().unwrap() > 0.0);
    }
    let files = files_in(&results);
    assert!(
        files
            .iter()
            .any(|f| f.contains("_interactive_assistant-c1_")),
        "{files:?}"
    );
    assert_input_error(
        &edgebench(&["run", "--sweep", "concurrency=4,2", "--endpoint", "mock"]),
        "--sweep",
    );
}

#[test]
fn a_server_without_usage_is_counted_with_the_given_tokenizer() {
    use edgebench_core::backend::mock_server::{MockServer, Response, Step};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt
        .block_on(MockServer::start(|req| {
            if req.path.ends_with("/models") {
                Response::json(200, &serde_json::json!({"data": [{"id": "served-model"}]}))
            } else {
                Response::sse(vec![
                    Step::content("The card"),
                    Step::content(" was declined."),
                    Step::done(),
                ])
            }
        }))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "--endpoint",
            &server.base_url(),
            "--scenarios",
            "interactive_assistant",
            "--runs",
            "2",
            "--warmup",
            "0",
            "--cooldown",
            "0",
            "--results",
            results.to_str().unwrap(),
            "--json",
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        args.extend(extra.iter().map(|s| s.to_string()));
        edgebench(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let model = test_model();
    let o = run(&["--tokenizer", model.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let file = s["models"][0]["units"][0]["file"].as_str().unwrap();
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    for l in &lines {
        assert_eq!(l["token_count_source"], "tokenizer", "{l}");
        // "The card was declined." is more tokens than its 2 chunks.
        assert!(l["output_tokens"].as_u64().unwrap() > 2, "{l}");
    }
    // A Hugging Face tokenizer.json: "The", "card", "was", "declined", ".".
    let json_tok = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../edgebench-llama/tests/data/wordlevel_tokenizer.json");
    let o = run(&["--tokenizer", json_tok.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let file = s["models"][0]["units"][0]["file"].as_str().unwrap();
    let first = std::fs::read_to_string(file).unwrap();
    let l: serde_json::Value = serde_json::from_str(first.lines().next().unwrap()).unwrap();
    assert_eq!(l["token_count_source"], "tokenizer");
    assert_eq!(l["output_tokens"], 5);
    // Without a tokenizer: chunks, labelled as such.
    let o = run(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let file = s["models"][0]["units"][0]["file"].as_str().unwrap();
    let first = std::fs::read_to_string(file).unwrap();
    let l: serde_json::Value = serde_json::from_str(first.lines().next().unwrap()).unwrap();
    assert_eq!(l["token_count_source"], "chunks");
    assert_eq!(l["output_tokens"], 2);
    assert_input_error(&run(&["--tokenizer", "/nonexistent.gguf"]), "--tokenizer");
    drop(server);
}

/// Every reader of a results folder counts each request once: after two mock runs of 4
/// measured requests each (the store and the JSONL exports both hold them), `report`,
/// `compare` and `results show` agree on counts and means.
#[test]
fn report_compare_and_results_count_each_request_once() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let r = results.to_str().unwrap();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let o = edgebench(&[
            "run",
            "--endpoint",
            "mock",
            "--runs",
            "4",
            "--warmup",
            "1",
            "--cooldown",
            "0",
            "--max-tokens",
            "8",
            "--scenarios",
            "interactive_assistant",
            "--results",
            r,
            "--json",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        ids.push(v["run_id"].as_str().unwrap().to_string());
        // Distinct ids: the second run may start within the same second.
    }
    assert_ne!(ids[0], ids[1]);
    let out = dir.path().join("report");
    let o = edgebench(&[
        "report",
        "--input",
        r,
        "--output",
        out.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let json = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .expect("a JSON report");
    let rep: serde_json::Value = serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap();
    let perf = rep["performance"].as_array().unwrap();
    assert_eq!(perf.len(), 2, "one row per run");
    for row in perf {
        for (name, m) in row["metrics"].as_object().unwrap() {
            if name != "itl_ms" {
                assert_eq!(m["n"], 4, "{name}: {m}");
            }
        }
    }
    let latency = rep["latency"].as_array().unwrap();
    assert_eq!(latency.len(), 2, "{latency:?}");
    for s in latency {
        assert_eq!(s["ttft_ms"].as_array().unwrap().len(), 4, "{s}");
    }
    // The report's A/B section tests 4 against 4.
    let ab = &rep["comparisons"][0]["scenarios"][0]["metrics"];
    let ttft = ab
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["metric"] == "ttft_ms")
        .expect("ttft_ms compared");
    assert_eq!(
        (ttft["n_baseline"].clone(), ttft["n_candidate"].clone()),
        (4.into(), 4.into())
    );
    // compare on the same folder: the same counts and means.
    let o = edgebench(&["compare", &ids[0], &ids[1], "--results", r, "--json"]);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", stderr(&o));
    let cmp: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let m = cmp["scenarios"][0]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["metric"] == "ttft_ms")
        .unwrap()
        .clone();
    assert_eq!(
        (m["n_baseline"].clone(), m["n_candidate"].clone()),
        (4.into(), 4.into())
    );
    for (side, id) in [("baseline", &ids[0]), ("candidate", &ids[1])] {
        let row = perf.iter().find(|p| p["run_id"] == id.as_str()).unwrap();
        let mean = row["metrics"]["ttft_ms"]["mean"].as_f64().unwrap();
        let got = m[side].as_f64().unwrap();
        assert!(
            (mean - got).abs() < 1e-9,
            "{side}: report {mean} vs compare {got}"
        );
    }
    // results show: 1 warm-up and 4 measured records per unit.
    for id in &ids {
        let o = edgebench(&["results", "--results", r, "show", id, "--json"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let units = v["units"].as_array().unwrap();
        assert_eq!(units.len(), 1);
        assert_eq!(units[0]["requests"], 5, "{}", units[0]);
        assert_eq!(units[0]["format"], "mock");
    }
}

#[test]
fn coding_completions_that_exit_before_their_tests_score_zero() {
    use edgebench_core::backend::mock_server::{MockServer, Response};
    let Some(datasets) = shared_datasets() else {
        return;
    };
    // Every answer ends the function's body with `return None`, then leaves with status 0
    // before the tests run: a wrong answer dressed as a pass.
    let exits = [
        "import os\nos._exit(0)",
        "import sys\nsys.exit(0)",
        "raise SystemExit",
    ];
    let next = std::sync::atomic::AtomicUsize::new(0);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt
        .block_on(MockServer::start(move |req| {
            if req.path.ends_with("/models") {
                return Response::json(200, &serde_json::json!({"data": [{"id": "hostile"}]}));
            }
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let code = format!("    return None\n{}\n", exits[i % exits.len()]);
            Response::json(
                200,
                &serde_json::json!({"choices": [{"index": 0, "finish_reason": "stop",
                    "message": {"role": "assistant", "content": code}}]}),
            )
        }))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let o = edgebench(&[
        "eval",
        "--task",
        "coding",
        "--endpoint",
        &server.base_url(),
        "--sample-size",
        "5",
        "--data-dir",
        datasets.to_str().unwrap(),
        "--results",
        dir.path().join("results").to_str().unwrap(),
        "--json",
    ]);
    if stderr(&o).contains("needs Linux namespaces")
        && std::env::var("EDGEBENCH_REQUIRE_PEERS").is_err()
    {
        eprintln!("SKIPPED: no sandbox here");
        return;
    }
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let s = &v[0];
    assert_eq!(s["scores"]["pass_at_1"]["value"], 0.0, "{s}");
    assert_eq!(s["sandbox"]["programs_run"], 5, "{s}");
    assert_eq!(s["sandbox"]["suspicious_code"], 5, "{s}");
    assert!(
        s["sandbox"]["memory_cap"].as_str().unwrap().contains("MiB"),
        "{s}"
    );
}

#[test]
fn a_quick_profile_is_recorded_and_ends_with_the_full_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let o = edgebench(&[
        "run",
        "--endpoint",
        "mock",
        "--profile",
        "quick",
        "--results",
        results.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("quick profile: 5 measured requests"), "{err}");
    assert!(err.contains("--profile full"), "{err}");
    assert!(
        err.contains("on this machine (estimated from this run)"),
        "{err}"
    );
    // Not a terminal: a plain line per finished unit with the experiment's progress.
    let done: Vec<&str> = err.lines().filter(|l| l.starts_with("done ")).collect();
    assert_eq!(done.len(), 3, "{err}");
    assert!(done[2].contains("experiment 18/18 requests"), "{err}");
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["plan"]["profile"], "quick");
    assert_eq!(s["plan"]["runs"], 5);
    for u in s["models"][0]["units"].as_array().unwrap() {
        assert_eq!(u["requests"], 5, "{u}");
        assert!(u["output_tokens"]["max"].as_f64().unwrap() <= 256.0, "{u}");
    }
    // The profile sets the counts: giving them too is an input error.
    assert_input_error(
        &edgebench(&[
            "run",
            "--endpoint",
            "mock",
            "--profile",
            "quick",
            "--runs",
            "3",
        ]),
        "--runs",
    );
}

#[test]
fn a_busy_process_during_a_unit_flags_it() {
    // Another process burns a core for the whole unit.
    let mut busy = Command::new("sh")
        .args([
            "-c",
            "end=$(($(date +%s) + 8)); while [ $(date +%s) -lt $end ]; do :; done",
        ])
        .spawn()
        .expect("sh");
    let dir = tempfile::tempdir().unwrap();
    let o = edgebench(&[
        "run",
        "--endpoint",
        "mock",
        "--scenarios",
        "interactive_assistant",
        "--duration",
        "2",
        "--warmup",
        "0",
        "--cooldown",
        "0",
        "--settle-timeout",
        "0",
        "--results",
        dir.path().join("results").to_str().unwrap(),
        "--json",
    ]);
    let _ = busy.kill();
    let _ = busy.wait();
    assert!(o.status.success(), "{}", stderr(&o));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let i = &s["models"][0]["units"][0]["monitor"]["interference"];
    assert_eq!(i["flagged"], true, "{i}");
    assert!(
        i["other_cpu_percent_of_core"].as_f64().unwrap() > 40.0,
        "{i}"
    );
    let err = stderr(&o);
    assert!(
        err.contains("warning: interference during the unit: other processes took"),
        "{err}"
    );
}

/// Whether a folder holds exactly these file names.
fn files_unchanged(dir: &std::path::Path, before: &[String]) -> bool {
    let mut now: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let mut before = before.to_vec();
    now.sort();
    before.sort();
    now == before
}

/// A mock LM Studio: `GET /v1/models`, `GET /api/v0/models` with the loaded build (`format`,
/// `quantization`), and streamed chat completions; non-streamed ones answer the pre-flight.
fn mock_lm_studio(
    format: &'static str,
    quantization: &'static str,
) -> (
    tokio::runtime::Runtime,
    edgebench_core::backend::mock_server::MockServer,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use edgebench_core::backend::mock_server::{MockServer, Response, Step};
    let pings = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = pings.clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt
        .block_on(MockServer::start(move |req| {
            if req.path.ends_with("/v1/models") {
                return Response::json(
                    200,
                    &serde_json::json!({"data": [{"id": "google/gemma-3n-e4b"}]}),
                );
            }
            if req.path.ends_with("/api/v0/models") {
                return Response::json(
                    200,
                    &serde_json::json!({"data": [{"id": "google/gemma-3n-e4b",
                        "compatibility_type": format, "quantization": quantization,
                        "state": "loaded"}]}),
                );
            }
            if req.body["stream"] == false {
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                return Response::json(
                    200,
                    &serde_json::json!({"choices": [{"index": 0, "finish_reason": "length",
                        "message": {"role": "assistant", "content": "OK"}}]}),
                );
            }
            if !req.path.ends_with("/chat/completions") {
                return Response::json(404, &serde_json::json!({"error": "no such route"}));
            }
            let mut steps: Vec<Step> = (0..8).map(|_| Step::content("tok ")).collect();
            steps.push(Step::data(&serde_json::json!({"choices": [{"index": 0,
                "delta": {}, "finish_reason": "length"}],
                "usage": {"prompt_tokens": 40, "completion_tokens": 8}})));
            steps.push(Step::done());
            Response::sse(steps)
        }))
        .unwrap();
    (rt, server, pings)
}

#[test]
fn the_bank_study_runs_a_registry_configuration_against_lm_studio() {
    // 000 Phase 3: `--models gemma_3n_e4b_gguf --scenarios interactive_assistant --runs 5 --warmup 1`.
    let (_rt, server, pings) = mock_lm_studio("gguf", "Q4_K_M");
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path().join("results");
    let o = edgebench(&[
        "run",
        "--endpoint",
        &server.base_url(),
        "--models",
        "gemma_3n_e4b_gguf",
        "--scenarios",
        "interactive_assistant",
        "--runs",
        "5",
        "--warmup",
        "1",
        "--cooldown",
        "0",
        "--results",
        r.to_str().unwrap(),
        "--api-key",
        "sk-never-written",
        "--json",
    ]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    // The API key is sent, never written: not in the database, the config or the checkpoint.
    for f in files_in(&r) {
        let bytes = std::fs::read(r.join(&f)).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains("sk-never-written"),
            "the API key in {f}"
        );
    }
    assert!(
        err.contains("make sure model google/gemma-3n-e4b is loaded as GGUF Q4_K_M"),
        "{err}"
    );
    assert!(
        err.contains("[check] model google/gemma-3n-e4b is responding"),
        "{err}"
    );
    assert_eq!(
        pings.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one pre-flight"
    );
    // The file names the study's users look for: format and quantization as it spells them.
    let files: Vec<String> = std::fs::read_dir(&r)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        files
            .iter()
            .any(|f| f.starts_with("perf_google_gemma-3n-e4b_GGUF_Q4_K_M_interactive_assistant_")),
        "{files:?}"
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["models"][0]["units"][0]["successes"], 5, "{err}");

    // The MLX configuration while the GGUF build is loaded: refused before any request, naming
    // both builds.
    let o = edgebench(&[
        "run",
        "--endpoint",
        &server.base_url(),
        "--models",
        "gemma_3n_e4b_mlx",
        "--results",
        r.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    let last = err.trim().lines().last().unwrap_or_default();
    assert!(last.starts_with("error: "), "{err}");
    assert!(
        last.contains("gemma_3n_e4b_mlx")
            && last.contains("GGUF Q4_K_M build loaded")
            && last.contains("expects MLX 4bit"),
        "{err}"
    );
    assert!(
        !r.join("edgebench.db").exists() || files_unchanged(&r, &files),
        "nothing written"
    );
    assert_eq!(
        pings.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "no pre-flight"
    );
}

#[test]
fn the_mlx_build_is_labelled_as_the_study_spells_it() {
    let (_rt, server, _) = mock_lm_studio("mlx", "4bit");
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path().join("results");
    let o = edgebench(&[
        "run",
        "--endpoint",
        &server.base_url(),
        "--models",
        "mlx",
        "--scenarios",
        "interactive_assistant",
        "--runs",
        "2",
        "--warmup",
        "0",
        "--cooldown",
        "0",
        "--results",
        r.to_str().unwrap(),
    ]);
    // `mlx` is both MLX configurations; the mock serves only Gemma, so Qwen's is reported as
    // not listed and its requests still go (the mock answers any model).
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    let files: Vec<String> = std::fs::read_dir(&r)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        files
            .iter()
            .any(|f| f.starts_with("perf_google_gemma-3n-e4b_MLX_4bit_interactive_assistant_")),
        "{files:?}"
    );
}

#[test]
fn the_realistic_task_is_also_written_under_the_name_the_bank_study_reads() {
    let Some(data) = shared_datasets() else {
        return;
    };
    let _g = model_lock();
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let o = edgebench(&[
        "eval",
        "--task",
        "realistic",
        "--sample-size",
        "2",
        "--model",
        test_model().to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--results",
        results.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let files = files_in(&results);
    let named = |prefix: &str| {
        files
            .iter()
            .find(|f| f.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix}*.json in {files:?}"))
            .clone()
    };
    let (eval, alias) = (named("eval_realistic_"), named("realistic_"));
    assert_eq!(
        std::fs::read(results.join(&eval)).unwrap(),
        std::fs::read(results.join(&alias)).unwrap()
    );
    assert!(
        files.iter().any(|f| f.starts_with("checkpoint_eval_")),
        "{files:?}"
    );
}

#[test]
fn a_model_that_will_not_fit_is_skipped_unless_forced() {
    let _g = model_lock();
    let m = test_model();
    let d = tempfile::tempdir().unwrap();
    let r = d.path().join("results");
    let args = |extra: &[&'static str]| {
        let mut v: Vec<String> = ["run", "--models"].iter().map(|s| s.to_string()).collect();
        v.push(m.display().to_string());
        for a in [
            "--scenarios",
            "interactive_assistant",
            "--runs",
            "1",
            "--warmup",
            "0",
            "--cooldown",
            "0",
            "--max-tokens",
            "4",
            "--memory-budget",
            "100",
            "--results",
        ] {
            v.push(a.into());
        }
        v.push(r.display().to_string());
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    // The default model's weights alone are about 98 MB; with its KV cache and the runtime it
    // needs about 400 MB.
    let a = args(&[]);
    let o = edgebench(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_input_error(&o, "--force: no model fits in memory");
    assert!(
        stderr(&o).contains("skipped (--force runs it anyway"),
        "{}",
        stderr(&o)
    );
    assert!(!r.exists() || files_in(&r).iter().all(|f| !f.starts_with("summary_")));
    let a = args(&["--force"]);
    let o = edgebench(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("running it anyway (--force)"),
        "{}",
        stderr(&o)
    );
}
