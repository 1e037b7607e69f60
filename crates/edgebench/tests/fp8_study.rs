//! The FP8 KV-cache calibration study end to end: `edgebench study fp8-kv` against a real
//! llama-server started through a stand-in for vLLM's start-up, which logs the study's three FP8
//! warnings unless it is given `--calculate-kv-scales` (and always when told to). Checks the
//! study's files, the warnings counted over each server's whole log, and the decision.

mod peers;

use peers::{free_port, llama_server};
use std::path::{Path, PathBuf};
use std::process::Command;

/// vLLM's FP8 start-up as far as the study sees it: the three warnings on stderr (unless
/// calibrated, or `FP8_ALWAYS_WARN` is set), then the server, without the flag it does not know.
const FAKE_VLLM: &str = r#"#!/bin/sh
cal=0
for a do
  shift
  if [ "$a" = --calculate-kv-scales ]; then cal=1; else set -- "$@" "$a"; fi
done
if [ $cal = 0 ] || [ -n "$FP8_ALWAYS_WARN" ]; then
  echo "WARNING 10-30 12:48:00 [kv_cache.py:85] Using KV cache scaling factor 1.0 for fp8_e4m3. This may cause accuracy issues." >&2
  echo "(VllmWorker TP1 pid=42) WARNING 10-30 12:48:00 [kv_cache.py:85] Using KV cache scaling factor 1.0 for fp8_e4m3. This may cause accuracy issues." >&2
  echo "WARNING 10-30 12:48:01 [fp8.py:120] Using uncalibrated q_scale 1.0 and/or prob_scale 1.0 with fp8 attention. This may cause accuracy issues." >&2
  echo "WARNING 10-30 12:48:01 [fp8.py:98] Checkpoint does not provide a q scaling factor. Setting it to k_scale." >&2
fi
exec "$@"
"#;

fn study(dir: &Path, serve: &str, calibrated: Option<&str>, port: u16) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_edgebench"));
    c.env("EDGEBENCH_SETTLE_TIMEOUT", "1")
        .args(["study", "fp8-kv", "--serve", serve, "--endpoint"])
        .arg(format!("http://127.0.0.1:{port}/v1"))
        .args(["--scenarios", "interactive_assistant", "--runs", "4"])
        .args(["--warmup", "1", "--cooldown", "0", "--max-tokens", "24"])
        .args(["--json", "--results"])
        .arg(dir);
    if let Some(cal) = calibrated {
        c.args(["--calibrated-serve", cal]);
    }
    c.output().unwrap()
}

fn one(dir: &Path, prefix: &str) -> serde_json::Value {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    assert_eq!(files.len(), 1, "one {prefix}*.json in {}", dir.display());
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    let stamp = name.trim_start_matches(prefix).trim_end_matches(".json");
    assert!(
        stamp.len() == 15 && stamp.as_bytes()[8] == b'_',
        "{prefix}YYYYMMDD_HHMMSS.json: {name}"
    );
    serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap()
}

#[test]
fn the_fp8_study_counts_the_warnings_writes_its_files_and_decides_by_its_rules() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let Some(server) = llama_server() else {
        return;
    };
    let model = edgebench_core::catalog::dev_model(&root).expect("default model");
    let tmp = tempfile::tempdir().unwrap();
    let fake = tmp.path().join("fake-vllm.sh");
    std::fs::write(&fake, FAKE_VLLM).unwrap();
    let port = free_port();
    // --no-repack: the reference build's AMX kernels fault on VMs advertising AMX.
    let serve = format!(
        "exec sh {} {} -m {} -t 2 -c 2048 -np 1 --no-repack --host 127.0.0.1 --port {port}",
        fake.display(),
        server.display(),
        model.display()
    );
    let warnings = [
        "Using KV cache scaling factor 1.0 for fp8_e4m3. This may cause accuracy issues.",
        "Using uncalibrated q_scale 1.0 and/or prob_scale 1.0 with fp8 attention. This may cause accuracy issues.",
        "Checkpoint does not provide a q scaling factor. Setting it to k_scale.",
    ];

    // The calibrated server no longer warns: resolved, and the decision follows the impact.
    let dir = tmp.path().join("resolved");
    let out = study(&dir, &serve, None, port);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let cmp: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    let base = one(&dir, "benchmark_fp8_baseline_");
    let cal = one(&dir, "benchmark_fp8_calibrated_");
    let file = one(&dir, "fp8_comparison_");
    assert_eq!(file, cmp, "the comparison file is what was printed");
    let cal_serve = cal["models"][0]["target"]["launch"]["command"]
        .as_str()
        .unwrap();
    assert!(cal_serve.ends_with(" --calculate-kv-scales"), "{cal_serve}");
    let bu = &base["models"][0]["units"][0];
    let cu = &cal["models"][0]["units"][0];
    assert_eq!(bu["successes"], 4, "{stderr}");
    assert_eq!(cu["successes"], 4, "{stderr}");
    // Logged at start-up: none during the unit, all of them since the launch.
    let counts = bu["log_pattern_counts_since_launch"].as_object().unwrap();
    assert_eq!(counts.len(), 3, "{bu}");
    let total: u64 = counts.values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(
        total, 4,
        "two processes logged the first warning: {counts:?}"
    );
    assert!(bu["log_pattern_counts"]
        .as_object()
        .unwrap()
        .values()
        .all(|v| v == 0));
    assert!(cu["log_pattern_counts_since_launch"]
        .as_object()
        .unwrap()
        .values()
        .all(|v| v == 0));
    // The distinct warnings, once each however many processes logged them.
    let seen: Vec<&str> = bu["server_warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["message"].as_str().unwrap())
        .collect();
    for w in warnings {
        assert!(seen.contains(&w), "{w} in {seen:?}");
    }
    assert_eq!(bu["server_warnings"][0]["count"], 2, "{seen:?}");
    assert!(bu["finish_reasons"].is_object(), "{bu}");
    // The decision by the study's rules, on TTFT and throughput.
    let d = &cmp["decision"];
    let impact = d["performance_impact"].as_f64().unwrap();
    let want = if impact < 0.15 {
        "apply"
    } else if impact < 0.25 {
        "apply_with_monitoring"
    } else {
        "keep_baseline"
    };
    assert_eq!(d["verdict"], want, "{d}");
    if impact < 0.25 {
        assert!(
            d["rule"]
                .as_str()
                .unwrap()
                .contains("3 of 3 warning(s) resolved"),
            "{d}"
        );
        assert_eq!(out.status.code(), Some(0), "{stderr}");
    }
    let recs = cmp["recommendations"].as_array().unwrap();
    assert!(recs.len() >= 2, "{recs:?}");
    assert!(
        recs.iter().any(|r| r
            .as_str()
            .unwrap()
            .contains("gone on the candidate's: \"Checkpoint does not provide")),
        "{recs:?}"
    );
    assert_eq!(cmp["criteria"]["min_warnings_resolved"], 3);

    // A calibrated server that still warns: not resolved, the baseline is kept (exit 1).
    let dir = tmp.path().join("unresolved");
    let calibrated = format!("FP8_ALWAYS_WARN=1 {serve} --calculate-kv-scales");
    let out = study(&dir, &serve, Some(&calibrated), port);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let cmp: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    assert_eq!(cmp["decision"]["verdict"], "keep_baseline", "{cmp}");
    assert!(
        cmp["decision"]["rule"]
            .as_str()
            .unwrap()
            .contains("warnings not resolved"),
        "{}",
        cmp["decision"]
    );
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(cmp["recommendations"][0]
        .as_str()
        .unwrap()
        .starts_with("Keep the baseline"));
}

#[test]
fn the_fp8_study_without_a_server_command_is_one_line_naming_serve() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_edgebench"))
        .args([
            "study",
            "fp8-kv",
            "--endpoint",
            "http://127.0.0.1:9/v1",
            "--results",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("--serve"), "{err}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing written"
    );
}
