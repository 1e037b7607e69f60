//! What the engine's benchmarks share: the project's shared folder and its scripts.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `path` under the shared folder beside the repository (`../shared`).
pub fn shared(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared")
        .join(path)
}

/// What `script` prints, trimmed; panics naming the script when it cannot run or fails.
pub fn script_output(script: &Path) -> String {
    let out = Command::new(script)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(out.status.success(), "{} failed", script.display());
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs the reference llama-bench `bin` with `args` (and `-o json`); its array of tests, each
/// with `n_prompt`, `n_gen`, `n_depth`, `avg_ts` and `samples_ts`.
pub fn llama_bench_json(bin: &str, args: &[&str]) -> Vec<serde_json::Value> {
    let out = Command::new(bin)
        .args(args)
        .args(["-o", "json"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
    assert!(out.status.success(), "llama-bench failed: {}", out.status);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("llama-bench JSON");
    v.as_array().expect("llama-bench JSON array").clone()
}
