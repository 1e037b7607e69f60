//! The one-model step studies end to end on the default model with small sizes: each step a unit
//! of one run experiment, the study file, the table and chart at the head of the report, and
//! bad steps refused naming the flag.

use std::path::{Path, PathBuf};
use std::process::Command;

fn model() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    edgebench_core::catalog::dev_model(&root).expect("default model")
}

fn study(kind: &str, results: &Path, extra: &[&str]) -> std::process::Output {
    let m = model();
    Command::new(env!("CARGO_BIN_EXE_edgebench"))
        .env("EDGEBENCH_SETTLE_TIMEOUT", "1")
        .args(["study", kind, "--models", m.to_str().unwrap()])
        .args([
            "--runs",
            "2",
            "--warmup",
            "0",
            "--cooldown",
            "0",
            "--threads",
            "2",
        ])
        .args(["--json", "--results"])
        .arg(results)
        .args(extra)
        .output()
        .unwrap()
}

/// Runs a study and returns its JSON, checking the files every study writes.
fn run_ok(kind: &str, extra: &[&str]) -> serde_json::Value {
    let d = tempfile::tempdir().unwrap();
    let o = study(kind, d.path(), extra);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{kind}: {err}");
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let slug = kind.replace('-', "_");
    let names: Vec<String> = std::fs::read_dir(d.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .any(|n| n.starts_with(&format!("study_{slug}_"))),
        "{names:?}"
    );
    let html = names
        .iter()
        .find(|n| n.starts_with(&format!("benchmark_report_{slug}_")) && n.ends_with(".html"))
        .unwrap_or_else(|| panic!("report: {names:?}"));
    let html = std::fs::read_to_string(d.path().join(html)).unwrap();
    assert!(html.contains(&format!("Study: {kind}")), "{kind}");
    assert!(html.contains("chart-study"), "{kind}");
    // Every step a unit of the one experiment, with figures.
    for r in s["rows"].as_array().unwrap() {
        assert_eq!(r["successes"], 2, "{r}");
        assert!(
            r["decode_tokens_per_s"]["mean"].as_f64().unwrap() > 0.0,
            "{r}"
        );
        assert!(r["ttft_ms"]["mean"].as_f64().unwrap() > 0.0, "{r}");
    }
    s
}

fn settings(s: &serde_json::Value) -> Vec<String> {
    s["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["setting"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn context_prompts_grow_by_step() {
    let s = run_ok("context", &["--values", "128,512", "--max-tokens", "8"]);
    assert_eq!(settings(&s), ["128", "512"]);
    let p = |i: usize| s["rows"][i]["prompt_tokens_mean"].as_f64().unwrap();
    assert!(p(0) >= 128.0 && p(1) >= 512.0 && p(1) < 700.0, "{s}");
    assert!(
        s["rows"][1]["prefill_tokens_per_s"]["mean"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    let steps = s["steps"].as_array().unwrap();
    assert!(steps
        .iter()
        .any(|t| t["metric"] == "prefill_tokens_per_s" && t["from"] == "128"));
}

#[test]
fn language_counts_tokens_per_character() {
    let s = run_ok("language", &["--values", "en,zh", "--max-tokens", "8"]);
    assert_eq!(settings(&s), ["en", "zh"]);
    let tpc = |i: usize| s["rows"][i]["prompt_tokens_per_char"].as_f64().unwrap();
    // The same prompt costs more tokens per character in Chinese than in English.
    assert!(tpc(1) > tpc(0), "{s}");
}

#[test]
fn prompt_types_and_temperatures_are_steps_of_one_run() {
    let s = run_ok(
        "prompt-type",
        &["--values", "code,math", "--max-tokens", "16"],
    );
    assert_eq!(settings(&s), ["code", "math"]);
    assert!(s["rows"][0]["output_tokens"]["mean"].as_f64().unwrap() >= 1.0);
    let s = run_ok("temperature", &["--values", "0,0.9", "--max-tokens", "8"]);
    assert_eq!(settings(&s), ["0", "0.9"]);
}

#[test]
fn threads_reload_the_model_per_count_and_name_the_best() {
    let s = run_ok("threads", &["--values", "1,2", "--max-tokens", "8"]);
    assert_eq!(settings(&s), ["1", "2"]);
    let models: Vec<&str> = s["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["model"].as_str().unwrap())
        .collect();
    assert!(
        models[0].ends_with("@ 1 thread") && models[1].ends_with("@ 2 threads"),
        "{models:?}"
    );
    assert!(["1", "2"].contains(&s["best"].as_str().unwrap()), "{s}");
    // Both counts asked the same prompts: the tests pair them.
    let t = s["steps"][0]["test"].as_str().unwrap();
    assert!(t.contains("paired") && !t.contains("unpaired"), "{t}");
}

#[test]
fn bad_steps_are_refused_naming_the_flag() {
    let d = tempfile::tempdir().unwrap();
    for (kind, values, needle) in [
        ("temperature", "3", "--values"),
        ("language", "en,xx", "xx"),
        ("context", "128,128", "twice"),
    ] {
        let o = study(kind, d.path(), &["--values", values]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{kind}: {err}");
        assert!(err.contains(needle), "{kind}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{kind}: {err}");
    }
    let o = study(
        "context",
        d.path(),
        &["--scenarios", "interactive_assistant"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--scenarios"));
    assert_eq!(
        std::fs::read_dir(d.path()).unwrap().count(),
        0,
        "nothing written"
    );
}

#[test]
fn each_temperature_step_reaches_the_server_with_its_own_temperature() {
    use edgebench_core::backend::mock_server::{MockServer, Response, Step};
    use std::sync::{Arc, Mutex};
    let seen: Arc<Mutex<Vec<f64>>> = Arc::default();
    let log = seen.clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt
        .block_on(MockServer::start(move |req| {
            if req.path.ends_with("/models") {
                return Response::json(200, &serde_json::json!({"data": [{"id": "m"}]}));
            }
            if req.body["stream"] == true {
                if let Some(t) = req.body["temperature"].as_f64() {
                    log.lock().unwrap().push(t);
                }
            }
            let mut steps: Vec<Step> = (0..4).map(|_| Step::content("tok ")).collect();
            steps.push(Step::data(&serde_json::json!({"choices": [{"index": 0,
                "delta": {}, "finish_reason": "length"}],
                "usage": {"prompt_tokens": 40, "completion_tokens": 4}})));
            steps.push(Step::done());
            Response::sse(steps)
        }))
        .unwrap();
    let d = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_edgebench"))
        .env("EDGEBENCH_SETTLE_TIMEOUT", "0")
        .args(["study", "temperature", "--endpoint", &server.base_url()])
        .args([
            "--values",
            "0.25,0.75",
            "--runs",
            "3",
            "--warmup",
            "0",
            "--cooldown",
            "0",
        ])
        .args(["--max-tokens", "4", "--json", "--results"])
        .arg(d.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let mut got = seen.lock().unwrap().clone();
    got.sort_by(f64::total_cmp);
    assert_eq!(got, [0.25, 0.25, 0.25, 0.75, 0.75, 0.75], "{err}");
}
