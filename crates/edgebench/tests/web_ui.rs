//! `edgebench serve` in a real browser (Debian chromium driven by playwright-core): every page,
//! two short benchmarks of the default model started with the button and followed to their end,
//! a third cancelled, an experiment's figures, a comparison of the two, a CSV download, and another
//! machine's export imported and compared with this one; no
//! console error, no request to another host, a screenshot of each page under the target folder.
//! (That the page's source names no other host is checked in edgebench-web's API tests.)

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

/// Kills the server when the test ends, however it ends.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_user_runs_cancels_compares_and_downloads_in_a_browser() {
    let Some(browser) = common::browser() else {
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let model = edgebench_core::catalog::dev_model(&root).expect("default model");
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let mut child = Command::new(env!("CARGO_BIN_EXE_edgebench"))
        .args(["serve", "--bind", "127.0.0.1:0", "--results"])
        .arg(&results)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("edgebench serve");
    let stderr = child.stderr.take().expect("stderr");
    let server = Server(child);
    let mut lines = BufReader::new(stderr).lines();
    let first = lines.next().expect("a line").expect("utf-8");
    let url = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {first:?}"))
        .to_string();
    // Keep draining the server's stderr so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-ui");
    std::fs::create_dir_all(&out).unwrap();
    let v = browser.run(
        "check_web.js",
        &[url.as_ref(), model.as_os_str(), out.as_os_str()],
    );
    drop(server);
    let hw: Vec<&str> = v["hardware_rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r.as_str())
        .collect();
    assert!(hw.contains(&"CPU") && hw.contains(&"RAM"), "{hw:?}");
    for r in v["runs"].as_array().unwrap() {
        let p = r["progress"].as_str().unwrap();
        assert!(
            p.contains("units done 1/1") && p.contains("requests 2/2"),
            "{p}"
        );
        assert!(p.contains("last TTFT"), "{p}");
        assert!(r["log"].as_str().unwrap().contains("finished: done"), "{r}");
    }
    assert!(
        v["cancelled"].as_str().unwrap().contains("interrupted"),
        "{v}"
    );
    let statuses: Vec<&str> = v["experiments"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s.as_str())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == "done").count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == "interrupted").count(),
        1,
        "{statuses:?}"
    );
    // The experiment's table: a TTFT mean with its interval.
    let detail = v["detail"][0].as_str().unwrap();
    assert!(detail.contains('[') && detail.contains(']'), "{detail}");
    assert!(
        v["verdict"].as_str().unwrap().starts_with("decision: "),
        "{v}"
    );
    assert!(v["comparison"].as_str().unwrap().contains("ttft_ms"), "{v}");
    let metrics = v["compared_metrics"].as_array().unwrap();
    assert!(
        metrics
            .iter()
            .any(|m| m.as_str().unwrap().starts_with("ttft_ms")),
        "{metrics:?}"
    );
    let head = v["csv_head"][0].as_str().unwrap();
    assert!(head.contains("ttft_ms"), "{head}");
    assert!(v["csv_name"].as_str().unwrap().ends_with(".csv"), "{v}");
    // The imported machine beside this one, both with figures and intervals.
    assert!(v["imported"].as_str().unwrap().contains("laptop-b"), "{v}");
    assert_eq!(
        v["machines"],
        serde_json::json!(["this machine", "laptop-b"]),
        "{v}"
    );
    let cells = v["machine_cells"].as_array().unwrap();
    assert_eq!(cells.len(), 2, "{v}");
    for c in cells {
        assert!(c.as_str().unwrap().contains('['), "{v}");
    }
    for shot in [
        "hardware.png",
        "benchmark.png",
        "results.png",
        "machines.png",
    ] {
        assert!(out.join(shot).metadata().unwrap().len() > 10_000, "{shot}");
    }
}
