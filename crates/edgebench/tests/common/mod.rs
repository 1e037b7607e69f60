//! What the browser tests share: finding Debian's chromium, node and playwright-core, and
//! skipping loudly when they are missing (failing instead under EDGEBENCH_REQUIRE_BROWSER=1, as
//! in CI). playwright-core is looked up through NODE_PATH, then in
//! ~/.cache/edgebench-ci/node/node_modules (where `.ci/run` installs it).

use std::path::{Path, PathBuf};
use std::process::Command;

/// A browser to drive: chromium's path and the folder holding playwright-core.
pub struct Browser {
    pub chromium: String,
    pub modules: PathBuf,
}

fn playwright_dir() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("NODE_PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(home).join(".cache/edgebench-ci/node/node_modules"));
    }
    candidates
        .into_iter()
        .find(|d| d.join("playwright-core/package.json").is_file())
}

fn missing(what: &str) -> Option<Browser> {
    let msg = format!(
        "BROWSER TEST SKIPPED: {what}. Install Debian chromium, nodejs and playwright-core \
         (see .ci/run) to run the browser tests."
    );
    if std::env::var("EDGEBENCH_REQUIRE_BROWSER").as_deref() == Ok("1") {
        panic!("{msg} (EDGEBENCH_REQUIRE_BROWSER=1)");
    }
    eprintln!("\n!!!!!!!! {msg}\n");
    None
}

impl Browser {
    /// Runs the node script `tests/browser/NAME` with `args` against this browser, and returns
    /// the one JSON line it prints last, after checking that the page logged no console or page
    /// error and asked no other host for anything.
    pub fn run(&self, name: &str, args: &[&std::ffi::OsStr]) -> serde_json::Value {
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/browser")
            .join(name);
        let run = Command::new("node")
            .arg(&script)
            .args(args)
            .env("NODE_PATH", &self.modules)
            .env("EDGEBENCH_CHROMIUM", &self.chromium)
            .output()
            .expect("run node");
        assert!(
            run.status.success(),
            "browser script failed: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        let stdout = String::from_utf8_lossy(&run.stdout);
        let v: serde_json::Value =
            serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("one JSON line");
        assert_eq!(v["console_errors"], serde_json::json!([]), "{v}");
        assert_eq!(v["page_errors"], serde_json::json!([]), "{v}");
        assert_eq!(v["external_requests"], serde_json::json!([]), "{v}");
        v
    }
}

/// The browser, or `None` (after saying why) when one of its parts is missing.
pub fn browser() -> Option<Browser> {
    let chromium =
        std::env::var("EDGEBENCH_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).is_file() {
        return missing(&format!("{chromium} not found"));
    }
    if Command::new("node").arg("--version").output().is_err() {
        return missing("node not found");
    }
    let Some(modules) = playwright_dir() else {
        return missing("playwright-core not found (NODE_PATH, ~/.cache/edgebench-ci/node)");
    };
    Some(Browser { chromium, modules })
}
