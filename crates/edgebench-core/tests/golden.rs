//! Golden tests of the output formats: the terminal summary and a perf JSONL line. Regenerate
//! with `UPDATE_GOLDEN=1 cargo test -p edgebench-core --test golden` and review the diff.

use std::path::{Path, PathBuf};

use edgebench_core::backend::TargetInfo;
use edgebench_core::catalog::ModelInfo;
use edgebench_core::metrics::{self, UnitContext};
use edgebench_core::monitor::MonitorSummary;
use edgebench_core::record::{
    Chunk, EngineTimings, ErrorKind, FinishReason, RequestError, RequestRecord, TokenCountSource,
};
use edgebench_core::report::render_summary;
use edgebench_core::repro::Environment;
use edgebench_core::results::{jsonl, ModelReport, PerfLine, RunSummary, UnitReport};
use edgebench_core::runner::RunPlan;

const MS: u64 = 1_000_000;

fn record(i: u32, warmup: bool, ttft_ms: u64, gap_ms: u64, tokens: u64) -> RequestRecord {
    let start = u64::from(i) * 1000 * MS;
    let chunks: Vec<Chunk> = (0..tokens)
        .map(|k| Chunk {
            t_ns: start + (ttft_ms + k * gap_ms) * MS,
            tokens: 1,
            reasoning: false,
        })
        .collect();
    RequestRecord {
        index: i,
        warmup,
        prompt_id: format!("prompt{i:02}"),
        t_scheduled_ns: start,
        t_sent_ns: start,
        t_first_byte_ns: chunks.first().map(|c| c.t_ns),
        t_end_ns: chunks.last().map_or(start, |c| c.t_ns + MS),
        chunks,
        prompt_tokens: Some(300 + u64::from(i)),
        output_tokens: tokens,
        reasoning_tokens: 0,
        token_count_source: TokenCountSource::Engine,
        finish_reason: FinishReason::Length,
        error: None,
        engine_timings: Some(EngineTimings {
            source: "llama.cpp".into(),
            prompt_ms: ttft_ms as f64 - 2.0,
            prompt_tokens: 300 + u64::from(i),
            decode_ms: (gap_ms * (tokens - 1)) as f64 - 1.0,
            decode_tokens: tokens - 1,
        }),
        output_text: "{\"answer\": 1}".into(),
    }
}

fn records() -> Vec<RequestRecord> {
    let mut v = vec![record(0, true, 900, 9, 4)];
    for (i, (t, g)) in [(100, 7), (110, 8), (95, 7), (130, 9), (105, 8)]
        .iter()
        .enumerate()
    {
        v.push(record(i as u32 + 1, false, *t, *g, 4));
    }
    let mut failed = record(6, false, 0, 1, 1);
    failed.chunks.clear();
    failed.output_tokens = 0;
    failed.t_first_byte_ns = None;
    failed.finish_reason = FinishReason::Error;
    failed.error = Some(RequestError {
        kind: ErrorKind::ContextOverflow,
        message: "too long".into(),
    });
    failed.engine_timings = None;
    failed.output_text.clear();
    v.push(failed);
    v
}

fn model() -> ModelInfo {
    ModelInfo {
        path: "/models/SmolLM2-135M-Instruct.Q4_1.gguf".into(),
        key: Some("smollm2-135m-instruct-q4_1".into()),
        name: "SmolLM2-135M-Instruct".into(),
        publisher: "HuggingFaceTB".into(),
        format: "GGUF".into(),
        quantization: "Q4_1".into(),
        architecture: "llama".into(),
        parameters: 134_515_008,
        context_length: Some(8192),
        license: Some("apache-2.0".into()),
        has_chat_template: true,
        file_size_bytes: 98_362_432,
    }
}

fn golden(name: &str, actual: &str) {
    let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("missing {}; run with UPDATE_GOLDEN=1", path.display()));
    assert_eq!(
        actual,
        want,
        "{} differs (UPDATE_GOLDEN=1 to accept)",
        path.display()
    );
}

#[test]
fn summary_table() {
    let recs = records();
    let summary = metrics::summarize_unit(
        &recs,
        &UnitContext {
            model: "SmolLM2-135M-Instruct",
            scenario: "structured_json_output",
            json: true,
            peak_rss_mb: Some(331.25),
            duration_s: 7.5,
            seed: 42,
        },
    );
    let run = RunSummary {
        run_id: "20261124_190305".into(),
        started: "2026-11-24T19:03:05Z".into(),
        config_hash: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
        environment: Environment::default(),
        plan: RunPlan {
            runs: 6,
            warmup: 1,
            ..RunPlan::default()
        },
        models: vec![ModelReport {
            model: model(),
            target: TargetInfo {
                kind: "embedded".into(),
                engine: "llama.cpp".into(),
                system_info: Some("CPU : AVX2 = 1".into()),
                threads: Some(2),
                context_tokens: Some(8192),
                model_load_ms: Some(208.4),
                rss_after_load_mb: Some(313.6),
                pid: Some(1),
                launch: None,
                server: None,
            },
            units: vec![UnitReport {
                summary,
                monitor: MonitorSummary {
                    samples: 15,
                    peak_rss_mb: Some(331.25),
                    mean_cpu_percent: Some(95.5),
                    max_cpu_percent: Some(100.0),
                    ..MonitorSummary::default()
                },
                context_tokens: Some(1280),
                log_pattern_counts: [("fp8 warning".to_string(), 3)].into_iter().collect(),
                log_pattern_counts_since_launch: [("fp8 warning".to_string(), 5)]
                    .into_iter()
                    .collect(),
                server_warnings: vec![edgebench_core::backend::managed::LogWarning {
                    message: "Using KV cache scaling factor 1.0 for fp8_e4m3".into(),
                    count: 5,
                }],
                file: None,
                settle: None,
                server_metrics: Default::default(),
            }],
        }],
        sweep: Vec::new(),
    };
    golden("summary.txt", &render_summary(&run));

    // The same unit on two machines, one of them without it and flagged elsewhere: the machine
    // comparison's Markdown.
    use edgebench_core::results::machines::{self, MachineResults};
    let unit = run.models[0].units[0].clone();
    let mut flagged = unit.clone();
    flagged.monitor.interference = Some(edgebench_core::hw::interference::Interference {
        other_cpu_percent_of_core: 35.0,
        steal_percent_of_core: 0.5,
        throttle_events: None,
        threshold_percent_of_core: 10.0,
        flagged: true,
    });
    let mut other = unit.clone();
    other.summary.scenario = "interactive_assistant".into();
    let env = |cpu: &str, ram: u64| Environment {
        cpu_model: cpu.into(),
        physical_cores: Some(8),
        logical_cores: 16,
        ram_total_mb: ram,
        os: "Linux".into(),
        kernel: "6.1".into(),
        edgebench_version: "0.1.0".into(),
        ..Environment::default()
    };
    let to_lines = |recs: Vec<RequestRecord>| -> Vec<PerfLine> {
        recs.into_iter()
            .map(|r| PerfLine {
                run_id: "r".into(),
                config_hash: "h".into(),
                model: unit.summary.model.clone(),
                publisher: String::new(),
                format: "gguf".into(),
                quantization: "Q4_1".into(),
                scenario: unit.summary.scenario.clone(),
                target: "embedded".into(),
                metrics: metrics::derive(&r),
                json_valid: None,
                record: r,
            })
            .collect()
    };
    let slower: Vec<RequestRecord> = [(150, 10), (160, 11), (140, 10), (170, 12), (155, 11)]
        .iter()
        .enumerate()
        .map(|(i, (t, g))| record(i as u32 + 1, false, *t, *g, 4))
        .collect();
    let sets = [
        MachineResults {
            label: "laptop-a".into(),
            environment: Some(env("Ryzen 7 7840U", 32768)),
            units: vec![unit.clone(), other],
            lines: to_lines(records()),
            read_bandwidth_gb_s: Some(80.0),
        },
        MachineResults {
            label: "laptop-b".into(),
            environment: Some(env("Core Ultra 7 155H", 16384)),
            units: vec![flagged],
            lines: to_lines(slower),
            read_bandwidth_gb_s: None,
        },
    ];
    golden(
        "machines.md",
        &machines::to_markdown(&machines::compare(
            &sets,
            &edgebench_core::compare::CompareOptions::default(),
        )),
    );
}

#[test]
fn perf_jsonl_lines() {
    let lines: Vec<PerfLine> = records()[..2]
        .iter()
        .map(|r| PerfLine {
            run_id: "20261124_190305".into(),
            config_hash: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
            model: "SmolLM2-135M-Instruct".into(),
            publisher: "HuggingFaceTB".into(),
            format: "GGUF".into(),
            quantization: "Q4_1".into(),
            scenario: "structured_json_output".into(),
            target: "embedded".into(),
            metrics: metrics::derive(r),
            json_valid: Some(metrics::is_valid_json_object(&r.output_text)),
            record: r.clone(),
        })
        .collect();
    let text = String::from_utf8(jsonl(&lines).unwrap()).unwrap();
    golden("perf_lines.jsonl", &text);
    // Lines read back into the same records.
    for (line, want) in text.lines().zip(&lines) {
        let back: PerfLine = serde_json::from_str(line).unwrap();
        assert_eq!(back.record, want.record);
    }
    // Every kind of record (failed, with engine timings, reasoning) reads back to the very
    // same line: the flat reader misses no field.
    for r in records() {
        let mut l = lines[0].clone();
        l.record = r.clone();
        l.record.reasoning_tokens = 2;
        l.json_valid = None;
        let line = serde_json::to_string(&l).unwrap();
        let back: PerfLine = serde_json::from_str(&line).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), line);
    }
    // The bank study's field names are written; files from before, with `format` and
    // `quantization`, read the same.
    let first = text.lines().next().unwrap();
    assert!(first.contains("\"model_format\":\"GGUF\",\"model_quantization\":\"Q4_1\""));
    let old = first
        .replace("\"model_format\"", "\"format\"")
        .replace("\"model_quantization\"", "\"quantization\"");
    let back: PerfLine = serde_json::from_str(&old).unwrap();
    assert_eq!(
        (back.format.as_str(), back.quantization.as_str()),
        ("GGUF", "Q4_1")
    );
}

#[test]
fn comparison_markdown() {
    use edgebench_core::compare::{
        Comparison, Criteria, Decision, MetricComparison, ScenarioComparison, Verdict,
    };
    let m = |metric: &str, hib: bool, b: f64, c: f64, p: Option<f64>| MetricComparison {
        metric: metric.into(),
        higher_is_better: hib,
        baseline: b,
        candidate: c,
        n_baseline: 20,
        n_candidate: 20,
        relative_change: Some(c / b - 1.0),
        change_ci: Some([c / b - 1.02, c / b - 0.98]),
        test: "paired t-test (n >= 20, differences pass Shapiro-Wilk)".into(),
        p_value: p,
        p_holm: p.map(|p| (p * 2.0).min(1.0)),
        effect_kind: Some("d_z".into()),
        effect_size: Some(-0.91),
        effect_label: Some("large".into()),
        change_ci_90: Some([c / b - 1.01, c / b - 0.99]),
        margin: Some(0.02),
        equivalent: Some(edgebench_core::stats::within_margin(
            [c / b - 1.01, c / b - 0.99],
            0.02,
        )),
    };
    let mut cmp = Comparison {
        baseline: "results/fp8-default".into(),
        candidate: "results/fp8-calibrated".into(),
        scenarios: vec![ScenarioComparison {
            scenario: "interactive_assistant".into(),
            baseline_model: "Qwen3-8B".into(),
            candidate_model: "Qwen3-8B".into(),
            paired: true,
            pairing: "paired by prompt: both sides ran the same 20 prompts".into(),
            metrics: vec![
                m("ttft_ms", false, 120.5, 124.25, Some(0.0004)),
                m("output_tokens_per_s", true, 41.2, 39.9, Some(0.02)),
                m("success_rate", true, 1.0, 1.0, None),
            ],
            peak_rss_mb: [Some(9120.0), Some(9050.5)],
            log_pattern_counts: [
                [("scaling factor 1.0".to_string(), 14)]
                    .into_iter()
                    .collect(),
                [("scaling factor 1.0".to_string(), 0)]
                    .into_iter()
                    .collect(),
            ],
            machine_warnings: [
                None,
                Some("interference during the unit: the hypervisor stole 14% of a core (threshold 10% of a core)".into()),
            ],
            log_pattern_counts_since_launch: Default::default(),
            server_warnings: [
                vec![edgebench_core::backend::managed::LogWarning {
                    message: "Using KV cache scaling factor 1.0 for fp8_e4m3".into(),
                    count: 14,
                }],
                Vec::new(),
            ],
        }],
        criteria: Criteria::default(),
        decision: Decision {
            verdict: Verdict::KeepBaseline,
            rule: String::new(),
            performance_impact: None,
        },
        recommendations: Vec::new(),
    };
    // The decision and the recommendations as the library makes them.
    cmp.decision = edgebench_core::compare::decide(&cmp.scenarios, &cmp.criteria);
    assert_eq!(
        cmp.decision.verdict,
        Verdict::Apply,
        "{}",
        cmp.decision.rule
    );
    cmp.recommendations =
        edgebench_core::compare::recommend(&cmp.scenarios, &cmp.criteria, &cmp.decision);
    golden(
        "comparison.md",
        &edgebench_core::report::compare_md::render(&cmp),
    );
}

#[test]
fn requests_csv_export() {
    let lines: Vec<PerfLine> = records()
        .into_iter()
        .map(|r| PerfLine {
            run_id: "20261124_190305".into(),
            config_hash: "0123456789abcdef".into(),
            model: "SmolLM2-135M-Instruct".into(),
            publisher: "HuggingFaceTB".into(),
            format: "gguf".into(),
            quantization: "Q4_1".into(),
            scenario: "structured_json_output".into(),
            target: "embedded".into(),
            metrics: metrics::derive(&r),
            json_valid: r.ok().then_some(true),
            record: r,
        })
        .collect();
    let bytes = edgebench_core::report::export::requests_csv(&lines).expect("csv");
    golden("requests.csv", &String::from_utf8(bytes).expect("utf-8"));
}
