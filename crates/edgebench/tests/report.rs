//! `edgebench report` and `edgebench compliance` end to end: input errors (exit 2, one line,
//! nothing written), the files of a full report, and the HTML rendered in a real headless
//! browser (Debian chromium driven by playwright-core): no console errors, no requests leaving
//! the file, charts with a size, a screenshot and a PDF in the target folder.
//!
//! The browser test skips (loudly) when node, chromium or playwright-core is missing, unless
//! EDGEBENCH_REQUIRE_BROWSER=1 (CI), where it fails (see `common`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

use edgebench_core::monitor::Sample;
use edgebench_core::store::{ExperimentRow, Store};

const RUN_ID: &str = "20261124_190305";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../edgebench-core/tests/data/report")
}

fn edgebench(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edgebench"))
        .args(args)
        .current_dir(cwd)
        .env("SOURCE_DATE_EPOCH", "1795593600")
        .output()
        .expect("run edgebench")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_input_error(o: &Output, needle: &str) {
    assert_eq!(o.status.code(), Some(2), "stderr: {}", stderr(o));
    let err = stderr(o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: ") && err.contains(needle), "{err}");
}

/// A results folder: the fixtures plus a store with monitor samples for one unit.
fn results_with_store(dir: &Path) -> PathBuf {
    let results = dir.join("results");
    std::fs::create_dir_all(&results).unwrap();
    for e in std::fs::read_dir(fixtures()).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, results.join(p.file_name().unwrap())).unwrap();
    }
    let mut store = Store::open(&results.join("edgebench.db")).unwrap();
    store
        .create_experiment(&ExperimentRow {
            id: RUN_ID.into(),
            kind: "run".into(),
            created: "2026-11-24T19:03:05Z".into(),
            config_hash: "x".into(),
            config_json: "{}".into(),
            command: "edgebench run".into(),
            status: "done".into(),
            uuid: String::new(),
            machine_id: String::new(),
        })
        .unwrap();
    store
        .ensure_units(
            RUN_ID,
            &[edgebench_core::results::UnitKey {
                model: "SmolLM2-135M-Instruct".into(),
                format: "GGUF".into(),
                quantization: "Q4_1".into(),
                scenario: "interactive_assistant".into(),
                setting: String::new(),
            }],
        )
        .unwrap();
    let unit = store.units(RUN_ID).unwrap()[0].id;
    let samples: Vec<Sample> = (0..60u64)
        .map(|i| Sample {
            t_ns: i * 500_000_000,
            rss_mb: Some(300.0 + (i as f64).sqrt() * 4.0),
            cpu_percent: 80.0 + (i % 5) as f32 * 4.0,
            ..Sample::default()
        })
        .collect();
    let summary: edgebench_core::results::RunSummary = serde_json::from_slice(
        &std::fs::read(results.join(format!("summary_{RUN_ID}.json"))).unwrap(),
    )
    .unwrap();
    store.start_unit(unit).unwrap();
    store
        .finish_unit(unit, None, &samples, &summary.models[0].units[0])
        .unwrap();
    results
}

#[test]
fn bad_input_exits_2_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_input_error(
        &edgebench(&["report", "--input", "missing", "--output", "out"], d),
        "missing",
    );
    std::fs::create_dir(d.join("empty")).unwrap();
    assert_input_error(
        &edgebench(&["report", "--input", "empty", "--output", "out"], d),
        "no results in empty",
    );
    std::fs::create_dir(d.join("bad")).unwrap();
    std::fs::write(d.join("bad/summary_1.json"), b"{\"run_id\": ").unwrap();
    assert_input_error(
        &edgebench(&["report", "--input", "bad", "--output", "out"], d),
        "summary_1.json",
    );
    assert_input_error(
        &edgebench(&["compliance", "--input", "bad", "--output", "out"], d),
        "summary_1.json",
    );
    std::fs::copy(
        fixtures().join(format!("summary_{RUN_ID}.json")),
        d.join("empty/summary_x.json"),
    )
    .unwrap();
    assert_input_error(
        &edgebench(
            &[
                "report", "--input", "empty", "--output", "out", "--format", "pdf",
            ],
            d,
        ),
        "pdf",
    );
    assert!(!d.join("out").exists(), "nothing may be written on error");
}

#[test]
fn report_and_compliance_write_their_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = fixtures();
    let input = input.to_str().unwrap();
    let o = edgebench(
        &[
            "report",
            "--input",
            input,
            "--output",
            "report",
            "--compliance",
            "--community",
        ],
        d,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.starts_with(
            "| device | source | params (M) | KV cache | gen_tokens | mean tok/s | peak VRAM MiB |"
        ),
        "{stdout}"
    );
    assert_eq!(stdout.lines().count(), 4, "{stdout}");
    let ts = "20261125_080000";
    for f in [
        format!("benchmark_report_{ts}.md"),
        format!("benchmark_report_{ts}.html"),
        format!("benchmark_report_{ts}.json"),
        "performance_results.csv".into(),
        "capability_results.csv".into(),
        format!("compliance/risk_analysis_{ts}.json"),
        format!("compliance/license_audit_{ts}.json"),
    ] {
        assert!(d.join("report").join(&f).is_file(), "{f} missing");
    }
    let o = edgebench(
        &[
            "compliance",
            "--input",
            input,
            "--output",
            "only-compliance",
        ],
        d,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("| LLM01 | Prompt Injection |"));
    let mut names: Vec<String> = std::fs::read_dir(d.join("only-compliance/compliance"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            format!("license_audit_{ts}.json"),
            format!("risk_analysis_{ts}.json")
        ]
    );
    let o = edgebench(
        &[
            "report", "--input", input, "--output", "md-only", "--format", "md",
        ],
        d,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(std::fs::read_dir(d.join("md-only")).unwrap().count(), 1);
}

#[test]
fn html_report_renders_in_headless_chromium() {
    let Some(browser) = common::browser() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let results = results_with_store(dir.path());
    let o = edgebench(
        &[
            "report",
            "--input",
            results.to_str().unwrap(),
            "--output",
            "report",
            "--format",
            "html",
            "--compliance",
        ],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let html = dir
        .path()
        .join("report/benchmark_report_20261125_080000.html");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-browser");
    std::fs::create_dir_all(&out).unwrap();
    let png = out.join("benchmark_report.png");
    let pdf = out.join("benchmark_report.pdf");
    let v = browser.run(
        "check_report.js",
        &[html.as_os_str(), png.as_os_str(), pdf.as_os_str()],
    );
    let charts = v["charts"].as_array().unwrap();
    let ids: Vec<&str> = charts.iter().filter_map(|c| c["id"].as_str()).collect();
    for want in [
        "chart-ttft_ms",
        "chart-output_tokens_per_s",
        "chart-decode_tokens_per_s",
        "chart-cdf-interactive_assistant",
        "chart-cdf-structured_json_output",
        "chart-accuracy",
        "chart-tradeoff",
    ] {
        assert!(ids.contains(&want), "{want} not in {ids:?}");
    }
    assert!(ids.iter().any(|i| i.starts_with("chart-rss-")), "{ids:?}");
    assert!(ids.iter().any(|i| i.starts_with("chart-cpu-")), "{ids:?}");
    for c in charts {
        assert!(
            c["width"].as_f64().unwrap() > 100.0 && c["height"].as_f64().unwrap() > 100.0,
            "{c}"
        );
        assert!(c["marks"].as_u64().unwrap() > 0, "chart without marks: {c}");
    }
    assert!(v["verdicts"].as_u64().unwrap() > 10, "{v}");
    assert!(std::fs::metadata(&png).unwrap().len() > 10_000);
    let pdf_bytes = std::fs::read(&pdf).unwrap();
    assert!(pdf_bytes.starts_with(b"%PDF") && pdf_bytes.len() > 10_000);
    eprintln!("screenshot: {}\npdf: {}", png.display(), pdf.display());
}
