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
