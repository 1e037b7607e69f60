//! Reports from a fixed results folder (`tests/data/report/`): golden Markdown, CSV and JSON,
//! the JSON validated against the published schema (`schemas/report.schema.json`), the compliance
//! files, and input errors. Regenerate the goldens with
//! `UPDATE_GOLDEN=1 cargo test --release -p edgebench-core --test report` and review the diff;
//! regenerate the fixture folder itself with `UPDATE_FIXTURES=1` (same command).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use edgebench_core::backend::TargetInfo;
use edgebench_core::catalog::ModelInfo;
use edgebench_core::compliance::{self, CommercialUse, RiskLevel};
use edgebench_core::eval::{Confusion, EvalSummary, SandboxReport, Score};
use edgebench_core::hw::detect::{CpuInfo, MemoryInfo, Recommendation};
use edgebench_core::hw::gpu::Probe;
use edgebench_core::hw::settle::{BusyProcess, SettleReport};
use edgebench_core::hw::HardwareInfo;
use edgebench_core::metrics::{self, UnitContext};
use edgebench_core::monitor::{self, MonitorSummary};
use edgebench_core::record::{
    Chunk, EngineTimings, ErrorKind, FinishReason, RequestError, RequestRecord, TokenCountSource,
};
use edgebench_core::report::{self, csv, markdown, Format, ReportError};
use edgebench_core::repro::Environment;
use edgebench_core::results::{
    jsonl, ExperimentConfig, ModelReport, ModelSetup, PerfLine, RunSummary, UnitReport,
};
use edgebench_core::runner::RunPlan;
use edgebench_core::workload::ScenarioFile;

const MS: u64 = 1_000_000;
const RUN_ID: &str = "20261124_190305";
const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/report")
}

fn generated() -> time::OffsetDateTime {
    time::macros::datetime!(2026-11-25 08:00:00 UTC)
}

fn environment() -> Environment {
    Environment {
        edgebench_version: "0.1.0".into(),
        edgebench_commit: Some("7878f90abcdef".into()),
        os: "Linux (Debian GNU/Linux 12)".into(),
        kernel: "6.1.0".into(),
        cpu_model: "AMD EPYC 7B13".into(),
        physical_cores: Some(2),
        logical_cores: 2,
        ram_total_mb: 16_000,
        ram_available_mb: 12_000,
        // A CPU-only machine: no GPU found, the CPU backend built.
        hardware: Some(HardwareInfo {
            os: "Linux (Debian GNU/Linux 12)".into(),
            kernel: "6.1.0".into(),
            cpu: CpuInfo {
                model: "AMD EPYC 7B13".into(),
                vendor: "AuthenticAMD".into(),
                arch: "x86_64".into(),
                physical_cores: Some(2),
                logical_cores: 2,
                simd: ["SSE4.2", "AVX", "AVX2", "FMA"]
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                ..CpuInfo::default()
            },
            memory: MemoryInfo {
                total_mb: 16_000,
                available_mb: 12_000,
                unified: false,
            },
            gpus: Vec::new(),
            gpu_probes: vec![Probe {
                source: "sysfs-drm".into(),
                detected: false,
                detail: "not detected: no /sys/class/drm/card*".into(),
            }],
            backends_built: vec!["CPU".into()],
            recommendation: Recommendation::default(),
        }),
    }
}

fn smollm() -> ModelInfo {
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

fn gemma() -> ModelInfo {
    ModelInfo {
        path: "/models/gemma-3-270m-q4_k_m.gguf".into(),
        key: Some("gemma-3-270m-q4_k_m".into()),
        name: "gemma-3-270m".into(),
        publisher: "google".into(),
        format: "GGUF".into(),
        quantization: "Q4_K_M".into(),
        architecture: "gemma3".into(),
        parameters: 268_098_176,
        context_length: Some(32768),
        license: Some("gemma".into()),
        has_chat_template: true,
        file_size_bytes: 253_114_112,
    }
}

fn target(load_ms: f64) -> TargetInfo {
    TargetInfo {
        kind: "embedded".into(),
        engine: "llama.cpp (llama-cpp-sys-2 0.1.161)".into(),
        system_info: Some(
            "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | OPENMP = 1 | REPACK = 1 |"
                .into(),
        ),
        threads: Some(2),
        context_tokens: Some(4096),
        model_load_ms: Some(load_ms),
        rss_after_load_mb: Some(300.0),
        pid: None,
        launch: None,
        server: None,
    }
}

/// A request: `ttft` ms to the first token, then `tokens - 1` tokens `gap` ms apart.
fn record(i: u32, warmup: bool, ttft: u64, gap: u64, tokens: u64, json: bool) -> RequestRecord {
    let start = u64::from(i) * 5000 * MS;
    let chunks: Vec<Chunk> = (0..tokens)
        .map(|k| Chunk {
            t_ns: start + (ttft + k * gap) * MS,
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
        prompt_tokens: Some(200 + u64::from(i)),
        output_tokens: tokens,
        reasoning_tokens: 0,
        token_count_source: TokenCountSource::Engine,
        finish_reason: FinishReason::Length,
        error: None,
        engine_timings: Some(EngineTimings {
            source: "llama.cpp".into(),
            prompt_ms: ttft as f64 - 2.0,
            prompt_tokens: 200 + u64::from(i),
            decode_ms: (gap * (tokens - 1)) as f64,
            decode_tokens: tokens - 1,
        }),
        output_text: if json && i % 4 != 3 {
            "{\"intent\": \"card_arrival\"}".into()
        } else if json {
            "intent: card_arrival".into()
        } else {
            "Sure.".into()
        },
    }
}

/// Measured (ttft, gap) per request, 8 requests per unit.
fn unit_records(base_ttft: u64, base_gap: u64, json: bool, fail_last: bool) -> Vec<RequestRecord> {
    let jitter = [0, 7, 3, 11, 5, 2, 9, 4];
    let mut v = vec![record(0, true, base_ttft * 3, base_gap, 8, json)];
    for (k, j) in jitter.iter().enumerate() {
        v.push(record(
            k as u32 + 1,
            false,
            base_ttft + j * 3,
            base_gap + j % 3,
            8,
            json,
        ));
    }
    if fail_last {
        let last = v.last_mut().expect("records");
        last.chunks.clear();
        last.output_tokens = 0;
        last.t_first_byte_ns = None;
        last.finish_reason = FinishReason::Error;
        last.error = Some(RequestError {
            kind: ErrorKind::Timeout,
            message: "no first token within 120 s".into(),
        });
        last.engine_timings = None;
        last.output_text.clear();
    }
    v
}

struct Unit {
    model: ModelInfo,
    scenario: &'static str,
    records: Vec<RequestRecord>,
    json: bool,
    rss: f64,
    cpu: f64,
    /// Mean package power over the unit, watts (RAPL), and the hottest thermal zone.
    watts: f64,
    temp_c: f64,
}

fn units() -> Vec<Unit> {
    vec![
        Unit {
            model: smollm(),
            scenario: "interactive_assistant",
            records: unit_records(95, 9, false, false),
            json: false,
            rss: 331.25,
            cpu: 92.5,
            watts: 28.0,
            temp_c: 61.5,
        },
        Unit {
            model: smollm(),
            scenario: "structured_json_output",
            records: unit_records(120, 10, true, false),
            json: true,
            rss: 334.5,
            cpu: 93.0,
            watts: 28.5,
            temp_c: 62.0,
        },
        Unit {
            model: gemma(),
            scenario: "interactive_assistant",
            records: unit_records(210, 24, false, true),
            json: false,
            rss: 520.0,
            cpu: 97.5,
            watts: 31.0,
            temp_c: 66.5,
        },
        Unit {
            model: gemma(),
            scenario: "structured_json_output",
            records: unit_records(260, 26, true, false),
            json: true,
            rss: 528.75,
            cpu: 98.0,
            watts: 32.0,
            temp_c: 68.0,
        },
    ]
}

fn score(value: f64, lo: f64, hi: f64, n: usize) -> Score {
    Score {
        value,
        ci_low: Some(lo),
        ci_high: Some(hi),
        n,
    }
}

fn eval(task: &str, model: ModelInfo, scores: &[(&str, Score)], created: &str) -> EvalSummary {
    EvalSummary {
        experiment_id: format!("eval_{created}"),
        created: format!("2026-11-24T19:{}:00Z", &created[11..13]),
        config_hash: "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae".into(),
        task: task.into(),
        method: "generate".into(),
        model,
        target: target(200.0),
        environment: environment(),
        seed: 42,
        items: 200,
        items_total: 3080,
        scores: scores
            .iter()
            .map(|(k, s)| (k.to_string(), s.clone()))
            .collect(),
        confusions: Vec::new(),
        sandbox: None,
        items_per_s: 1.75,
        duration_s: 114.3,
        options: BTreeMap::new(),
        monitor: None,
        settle: None,
    }
}

/// A compile job was running when the unit or task started.
fn busy_settle() -> SettleReport {
    SettleReport {
        waited_ms: 10_000,
        cpu_percent: 96.0,
        threshold_percent: 15.0,
        settled: false,
        busy_processes: vec![BusyProcess {
            pid: 4242,
            name: "rustc".into(),
            cpu_percent: 190.0,
        }],
    }
}

/// What the monitor saw over an eval: `watts` for `duration_s`.
fn eval_monitor(watts: f64, duration_s: f64) -> MonitorSummary {
    MonitorSummary {
        samples: 200,
        peak_rss_mb: Some(340.0),
        mean_cpu_percent: Some(96.0),
        max_cpu_percent: Some(100.0),
        max_temp_c: Some(70.0),
        energy_j: Some(watts * duration_s),
        mean_power_w: Some(watts),
        max_power_w: Some(watts + 5.0),
        energy_source: Some("RAPL".into()),
        ..MonitorSummary::default()
    }
}

fn evals() -> Vec<EvalSummary> {
    let mut b1 = eval(
        "banking77",
        smollm(),
        &[
            ("accuracy", score(0.415, 0.35, 0.48, 200)),
            ("macro_f1", score(0.362, 0.30, 0.42, 200)),
            ("invalid_rate", score(0.08, 0.045, 0.12, 200)),
        ],
        "20261124_191000",
    );
    b1.confusions = vec![
        Confusion {
            gold: "card_arrival".into(),
            predicted: "card_delivery_estimate".into(),
            count: 9,
        },
        Confusion {
            gold: "top_up_failed".into(),
            predicted: "top_up_reverted".into(),
            count: 6,
        },
    ];
    b1.monitor = Some(eval_monitor(30.0, b1.duration_s));
    let mut b2 = eval(
        "banking77",
        gemma(),
        &[
            ("accuracy", score(0.735, 0.675, 0.795, 200)),
            ("macro_f1", score(0.648, 0.59, 0.71, 200)),
            ("invalid_rate", score(0.02, 0.005, 0.04, 200)),
        ],
        "20261124_192000",
    );
    // The same compile job as Gemma's JSON unit: the task is flagged too.
    b2.settle = Some(busy_settle());
    let mut fp = eval(
        "financial_phrasebank",
        smollm(),
        &[
            ("accuracy", score(0.62, 0.555, 0.685, 200)),
            ("macro_f1", score(0.51, 0.44, 0.58, 200)),
            ("invalid_rate", score(0.01, 0.0, 0.025, 200)),
        ],
        "20261124_193000",
    );
    fp.items_total = 2264;
    fp.options
        .insert("agreement".into(), "sentences_allagree".into());
    let mut coding = eval(
        "coding",
        smollm(),
        &[("pass_at_1", score(0.05, 0.0, 0.15, 20))],
        "20261124_194000",
    );
    coding.items = 20;
    coding.items_total = 164;
    coding.sandbox = Some(SandboxReport {
        isolation: "namespaces".into(),
        memory_cap: "cgroup v1: 1024 MiB and 32 processes for each program with all its children"
            .into(),
        programs_run: 20,
        timeouts: 2,
        limit_kills: 1,
        suspicious_code: 0,
    });
    let mut realistic = eval(
        "realistic",
        smollm(),
        &[
            ("faq_fact_coverage", score(0.55, 0.45, 0.65, 12)),
            ("sentiment_accuracy", score(0.7, 0.5, 0.9, 10)),
            ("field_accuracy", score(0.8, 0.7, 0.9, 10)),
            ("summary_fact_coverage", score(0.4, 0.3, 0.5, 8)),
            ("json_valid_rate", score(0.9, 0.7, 1.0, 10)),
            ("overall", score(0.62, 0.55, 0.69, 40)),
        ],
        "20261124_195000",
    );
    realistic.items = 40;
    realistic.items_total = 40;
    vec![b1, b2, fp, coding, realistic]
}

/// Writes the fixture folder (run summary, perf JSONL, experiment config, eval summaries).
fn write_fixtures(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let plan = RunPlan {
        runs: 8,
        warmup: 1,
        ..RunPlan::default()
    };
    let mut models: Vec<ModelReport> = Vec::new();
    for u in units() {
        let summary = metrics::summarize_unit(
            &u.records,
            &UnitContext {
                model: &u.model.name,
                scenario: u.scenario,
                json: u.json,
                peak_rss_mb: Some(u.rss),
                duration_s: 45.0,
                seed: 42,
            },
        );
        let file = edgebench_core::results::perf_file_name(&u.model, u.scenario, RUN_ID);
        let lines: Vec<PerfLine> = u
            .records
            .iter()
            .map(|r| PerfLine {
                run_id: RUN_ID.into(),
                config_hash: HASH.into(),
                model: u.model.name.clone(),
                publisher: u.model.publisher.clone(),
                format: u.model.format.clone(),
                quantization: u.model.quantization.clone(),
                scenario: u.scenario.into(),
                target: "embedded".into(),
                metrics: metrics::derive(r),
                json_valid: u
                    .json
                    .then(|| metrics::is_valid_json_object(&r.output_text)),
                record: r.clone(),
            })
            .collect();
        std::fs::write(dir.join(&file), jsonl(&lines).unwrap()).unwrap();
        // 45 s sampled at the unit's mean power; energy shared over every token generated.
        let energy_j = u.watts * 45.0;
        let tokens: u64 = u.records.iter().map(|r| r.output_tokens).sum();
        let unit = UnitReport {
            summary,
            monitor: MonitorSummary {
                samples: 90,
                peak_rss_mb: Some(u.rss),
                mean_cpu_percent: Some(u.cpu),
                max_cpu_percent: Some(100.0),
                max_temp_c: Some(u.temp_c),
                energy_j: Some(energy_j),
                mean_power_w: Some(u.watts),
                max_power_w: Some(u.watts + 4.0),
                joules_per_output_token: monitor::joules_per_token(Some(energy_j), tokens),
                energy_source: Some("RAPL".into()),
                sampler_cpu_percent_of_core: Some(0.2),
                ..MonitorSummary::default()
            },
            context_tokens: Some(4096),
            log_pattern_counts: BTreeMap::new(),
            log_pattern_counts_since_launch: Default::default(),
            server_warnings: Vec::new(),
            file: Some(PathBuf::from("results").join(&file)),
            // A compile job was running while Gemma's JSON unit started.
            settle: (u.model.name.starts_with("gemma") && u.json).then(busy_settle),
            server_metrics: BTreeMap::new(),
        };
        match models.iter_mut().find(|m| m.model.name == u.model.name) {
            Some(m) => m.units.push(unit),
            None => models.push(ModelReport {
                model: u.model.clone(),
                target: target(if u.model.name.starts_with("gemma") {
                    412.0
                } else {
                    208.4
                }),
                units: vec![unit],
            }),
        }
    }
    let run = RunSummary {
        run_id: RUN_ID.into(),
        started: "2026-11-24T19:03:05Z".into(),
        config_hash: HASH.into(),
        environment: environment(),
        plan: plan.clone(),
        models: models.clone(),
        sweep: Vec::new(),
    };
    std::fs::write(
        dir.join(format!("summary_{RUN_ID}.json")),
        serde_json::to_vec_pretty(&run).unwrap(),
    )
    .unwrap();
    let file = ScenarioFile::default_file().unwrap();
    let scenarios: Vec<_> = file
        .scenarios
        .iter()
        .filter(|s| s.name == "interactive_assistant" || s.name == "structured_json_output")
        .cloned()
        .collect();
    let config = ExperimentConfig {
        experiment_id: RUN_ID.into(),
        created: "2026-11-24T19:03:05Z".into(),
        config_hash: HASH.into(),
        environment: environment(),
        plan,
        scenarios_source: "built-in".into(),
        scenarios,
        passages_sha256: file.passages_sha256(),
        models: models
            .iter()
            .map(|m| ModelSetup {
                model: m.model.clone(),
                target: m.target.clone(),
            })
            .collect(),
        eval: None,
        request: None,
    };
    std::fs::write(
        dir.join(format!("experiment_config_{RUN_ID}.json")),
        serde_json::to_vec_pretty(&config).unwrap(),
    )
    .unwrap();
    for e in evals() {
        let name = format!(
            "eval_{}_{}_{}.json",
            e.task,
            edgebench_core::results::sanitize(&e.model.name),
            &e.experiment_id[5..]
        );
        std::fs::write(dir.join(name), serde_json::to_vec_pretty(&e).unwrap()).unwrap();
    }
}

fn fixtures() -> PathBuf {
    let dir = data_dir();
    if std::env::var_os("UPDATE_FIXTURES").is_some() {
        write_fixtures(&dir);
    }
    dir
}

fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
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

fn full_report() -> report::Report {
    let input = report::load(&fixtures()).unwrap();
    let mut r = report::build(&input, generated());
    r.compliance = Some(compliance::analyse(&input, &r.generated).unwrap());
    r
}

/// The HTML report is rendered from the same blocks as the Markdown one: every section, table
/// and verdict is there, verdicts as classes (no emoji), nothing loaded from elsewhere.
#[test]
fn html_report() {
    let r = full_report();
    let html = report::html::render(&r);
    golden("report.html", &html);
    assert!(!html.contains('🟢') && !html.contains('🟡') && !html.contains('🔴'));
    let md = markdown::render(&r);
    let md_rows = md.lines().filter(|l| l.starts_with("| ")).count();
    let html_rows = html.matches("<tr>").count();
    assert_eq!(
        html_rows, md_rows,
        "one HTML row per Markdown row (headers included)"
    );
    let marks = ["🟢", "🟡", "🔴"]
        .iter()
        .map(|m| md.matches(m).count())
        .sum::<usize>();
    let dots = html.matches("<span class=\"v ").count();
    assert_eq!(dots, marks, "one verdict dot per Markdown mark");
}

#[test]
fn markdown_report() {
    let r = full_report();
    let md = markdown::render(&r);
    golden("report.md", &md);
    for section in [
        "## Setup",
        "## Performance",
        "## Capability",
        "## Trade-off",
        "## Comparisons",
        "## Interpretation",
        "## Failures",
        "## Community results row",
        "## Compliance",
    ] {
        assert!(md.contains(section), "{section} missing");
    }
}

#[test]
fn csv_files() {
    let r = full_report();
    golden("performance_results.csv", &csv::performance(&r));
    golden("capability_results.csv", &csv::capability(&r));
}

#[test]
fn json_report_matches_golden_and_schema() {
    let r = full_report();
    let text = serde_json::to_string_pretty(&r).unwrap();
    golden("report.json", &text);
    let schema_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/report.schema.json");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&schema_path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("a valid JSON Schema");
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    // The schema is strict: an unknown top-level field fails.
    let mut bad = doc.clone();
    bad["surprise"] = serde_json::json!(1);
    assert!(!validator.is_valid(&bad));
    // And a report without compliance validates too.
    let mut plain = doc;
    plain.as_object_mut().unwrap().remove("compliance");
    assert!(validator.is_valid(&plain));
}

#[test]
fn report_content_follows_the_inputs() {
    let r = full_report();
    assert_eq!(r.performance.len(), 4);
    assert_eq!(r.capability.len(), 5);
    // Gemma failed one request in interactive_assistant.
    assert_eq!(r.failures.len(), 1);
    assert_eq!(r.failures[0].kind, "timeout");
    // SmolLM2 vs Gemma on both scenarios.
    assert_eq!(r.comparisons.len(), 1);
    assert_eq!(r.comparisons[0].scenarios.len(), 2);
    assert!(r.comparisons[0].scenarios.iter().all(|s| s.paired));
    // Trade-off: banking77 and financial_phrasebank for SmolLM2, banking77 for Gemma.
    assert_eq!(r.tradeoff.len(), 3);
    assert_eq!(r.community.len(), 2);
    assert!(r.community[0].markdown().starts_with(
        "| AMD EPYC 7B13 | HuggingFaceTB/SmolLM2-135M-Instruct (GGUF Q4_1) | 134.5 | f16 | 8 |"
    ));
    assert_eq!(r.latency.len(), 4);
    let busy: Vec<&str> = r
        .performance
        .iter()
        .filter(|p| p.busy_machine.is_some())
        .map(|p| p.scenario.as_str())
        .collect();
    assert_eq!(busy, ["structured_json_output"]);
    let md = markdown::render(&r);
    assert!(md.contains("**Busy machine** during gemma-3-270m Q4_K_M / structured_json_output"));
    // Evals carry the flag too.
    let busy_tasks: Vec<(&str, &str)> = r
        .capability
        .iter()
        .filter(|c| c.busy_machine.is_some())
        .map(|c| (c.model.as_str(), c.task.as_str()))
        .collect();
    assert_eq!(busy_tasks, [("gemma-3-270m", "banking77")]);
    assert!(md.contains("**Busy machine** during gemma-3-270m Q4_K_M / banking77"));
    // The setup shows the recorded hardware and the engine's system info.
    let setup = &r.setup[0];
    assert_eq!(setup.llama_cpp_backends, ["CPU"]);
    assert_eq!(setup.simd, ["SSE4.2", "AVX", "AVX2", "FMA"]);
    assert!(setup.gpus.is_empty());
    assert_eq!(setup.engine_system_info.len(), 1);
    assert!(md.contains("| all | none found | CPU | SSE4.2 AVX AVX2 FMA | CPU : SSE3 = 1 "));
    // Energy and temperature reach the performance rows; no GPU, so no VRAM.
    let first = &r.performance[0];
    assert_eq!(first.energy_j, Some(28.0 * 45.0));
    assert_eq!(first.joules_per_output_token, Some(28.0 * 45.0 / 72.0));
    assert_eq!((first.max_temp_c, first.peak_vram_mb), (Some(61.5), None));
    assert_eq!(r.community[0].peak_vram_mib, None);
    // The realistic task's sentiment accuracy is judged like financial_phrasebank's.
    let senti = r
        .verdicts
        .iter()
        .find(|v| v.context == "realistic")
        .unwrap();
    assert_eq!(senti.metric, "sentiment_accuracy");
    assert_eq!(senti.verdict, edgebench_core::report::verdict::Level::Fair);
    let c = r.compliance.as_ref().unwrap();
    assert_eq!(c.risk_analysis.risks.len(), 22);
    let lic = |name: &str| {
        c.license_audit
            .models
            .iter()
            .find(|m| m.model == name)
            .unwrap()
    };
    assert_eq!(
        lic("SmolLM2-135M-Instruct").commercial_use,
        CommercialUse::Allowed
    );
    assert_eq!(
        lic("gemma-3-270m").commercial_use,
        CommercialUse::Restricted
    );
    let risk = |id: &str| c.risk_analysis.risks.iter().find(|r| r.id == id).unwrap();
    // One structured unit had 75% valid JSON: improper output handling stays high.
    assert_eq!(risk("LLM05").residual_risk, RiskLevel::High);
    // Embedded engine only: local inference.
    assert_eq!(risk("LLM02").residual_risk, RiskLevel::Low);
    assert_eq!(risk("NIST-GAI-10").residual_risk, RiskLevel::Medium);
    // Energy: the four units (45 s at 28-32 W) plus the one eval that measured it, in Wh.
    let energy_wh = c
        .risk_analysis
        .evidence
        .iter()
        .find(|e| e.name == "energy_wh")
        .unwrap();
    let want = (45.0 * (28.0 + 28.5 + 31.0 + 32.0) + 30.0 * 114.3) / 3600.0;
    assert!((energy_wh.value - want).abs() < 1e-9, "{energy_wh:?}");
    assert_eq!(energy_wh.unit, "Wh");
    assert_eq!(energy_wh.sources.len(), 2, "{energy_wh:?}");
    let gai05 = risk("NIST-GAI-05");
    assert_eq!(gai05.rule, "energy_wh >= 0");
    assert_eq!(gai05.residual_risk, RiskLevel::Low);
    assert!(gai05.evidence_missing.is_empty());
}

#[test]
fn written_files_follow_the_names() {
    let out = tempfile::tempdir().unwrap();
    let r = full_report();
    let written = report::write(&r, out.path(), &Format::ALL.into_iter().collect()).unwrap();
    let names: Vec<String> = written
        .iter()
        .map(|p| p.strip_prefix(out.path()).unwrap().display().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "benchmark_report_20261125_080000.md",
            "benchmark_report_20261125_080000.html",
            "performance_results.csv",
            "capability_results.csv",
            "benchmark_report_20261125_080000.json",
            "compliance/risk_analysis_20261125_080000.json",
            "compliance/license_audit_20261125_080000.json",
        ]
    );
    let html = std::fs::read_to_string(&written[1]).unwrap();
    assert!(html.contains("<svg class=\"chart\" id=\"chart-ttft_ms\""));
    assert!(html.contains("id=\"chart-tradeoff\""));
    assert!(html.contains("id=\"chart-cdf-interactive_assistant\""));
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("<script"));
}

#[test]
fn input_errors_name_the_file() {
    let missing = report::load(Path::new("/nonexistent/results")).unwrap_err();
    assert!(matches!(missing, ReportError::NoInput(_)), "{missing}");
    let empty = tempfile::tempdir().unwrap();
    let none = report::load(empty.path()).unwrap_err();
    assert!(matches!(none, ReportError::NothingFound(_)), "{none}");
    std::fs::write(empty.path().join("summary_x.json"), b"{not json").unwrap();
    let bad = report::load(empty.path()).unwrap_err().to_string();
    assert!(bad.contains("summary_x.json"), "{bad}");
    assert_eq!(bad.lines().count(), 1);
}

#[test]
fn store_samples_become_timelines() {
    use edgebench_core::monitor::Sample;
    use edgebench_core::store::{ExperimentRow, Store};
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(fixtures()).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
    }
    let mut store = Store::open(&dir.path().join("edgebench.db")).unwrap();
    store
        .create_experiment(&ExperimentRow {
            id: RUN_ID.into(),
            kind: "run".into(),
            created: "2026-11-24T19:03:05Z".into(),
            config_hash: HASH.into(),
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
    let unit = store.units(RUN_ID).unwrap()[0].clone();
    let samples: Vec<Sample> = (0..10)
        .map(|i| Sample {
            t_ns: 1_000_000_000 + i * 500 * MS,
            rss_mb: Some(300.0 + i as f64),
            cpu_percent: 90.0,
            ..Sample::default()
        })
        .collect();
    let r = edgebench_core::results::RunSummary::clone(
        &report::load(dir.path()).unwrap().runs[0].value,
    );
    let unit_report = r.models[0].units[0].clone();
    store.start_unit(unit.id).unwrap();
    store
        .finish_unit(unit.id, None, &samples, &unit_report)
        .unwrap();
    drop(store);
    let input = report::load(dir.path()).unwrap();
    let rep = report::build(&input, generated());
    assert_eq!(rep.timelines.len(), 1);
    assert_eq!(rep.timelines[0].t_s[1], 0.5);
    assert_eq!(rep.timelines[0].rss_mb[9], Some(309.0));
    let html = report::html::render(&rep);
    assert!(html.contains("chart-rss-"));
}
