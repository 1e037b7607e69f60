//! Side by side on one machine: the reference `llama-bench` (pp512, tg128) against the embedded
//! engine's own generation path (the one `edgebench run` measures), same model and threads.
//! Prints both rates and their ratio. Run with `cargo bench -p edgebench-llama --bench vs_llama_bench`.
//!
//! Environment: EDGEBENCH_BENCH_MODEL (GGUF path; default: the default model, see `catalog::dev_model`),
//! LLAMA_BENCH (path; default: built by ../shared/scripts/peer-llama-tools.sh),
//! EDGEBENCH_BENCH_THREADS (default: physical cores), EDGEBENCH_BENCH_ROUNDS (default 3),
//! EDGEBENCH_BENCH_REPS (default 5), EDGEBENCH_BENCH_CTX (context size; default as `edgebench run`),
//! EDGEBENCH_BENCH_DEPTHS (default "0,512,4096": tg128 after that many tokens already in the
//! KV cache, as llama-bench's `-d`; empty to skip).

use std::process::Command;

use edgebench_core::backend::Sampling;
use edgebench_core::stats;
use edgebench_core::workload::ScenarioFile;
use edgebench_llama::{Engine, EngineConfig, GenerateJob, Prompt};

mod common;
use common::{llama_bench_json, script_output};

fn shared_script(name: &str) -> std::path::PathBuf {
    common::shared(&format!("scripts/{name}"))
}

fn env_or(name: &str, default: impl FnOnce() -> String) -> String {
    std::env::var(name).unwrap_or_else(|_| default())
}

/// Runs llama-bench and returns its per-repetition samples (t/s) for pp512 and tg128.
fn llama_bench(
    bin: &str,
    model: &str,
    threads: u32,
    reps: u32,
    extra: &[&str],
) -> (Vec<f64>, Vec<f64>) {
    let (threads, reps) = (threads.to_string(), reps.to_string());
    let mut args = vec![
        "-m", model, "-t", &threads, "-p", "512", "-n", "128", "-r", &reps,
    ];
    args.extend_from_slice(extra);
    let mut pp = Vec::new();
    let mut tg = Vec::new();
    for t in &llama_bench_json(bin, &args) {
        let samples = samples_ts(t);
        if t["n_prompt"].as_u64() == Some(512) && t["n_gen"].as_u64() == Some(0) {
            pp = samples;
        } else if t["n_gen"].as_u64() == Some(128) && t["n_prompt"].as_u64() == Some(0) {
            tg = samples;
        }
    }
    (pp, tg)
}

struct Ours {
    pp_client: Vec<f64>,
    pp_engine: Vec<f64>,
    tg_client: Vec<f64>,
    tg_engine: Vec<f64>,
}

async fn ours(engine: &Engine, prompt512: &[i32], reps: u32, out: &mut Ours) {
    let greedy = Sampling::default();
    for _ in 0..reps {
        // pp512: exactly 512 prompt tokens, one output token (context sized as llama-bench does).
        engine.reserve_context(513).await.expect("context");
        let job = GenerateJob {
            prompt: Prompt::Tokens(prompt512.to_vec()),
            max_tokens: 1,
            ignore_eos: true,
            sampling: greedy.clone(),
            stream: None,
        };
        let g = engine.generate(job).await.expect("pp512");
        let ttft = g.token_times[0].duration_since(g.started).as_secs_f64();
        out.pp_client.push(512.0 / ttft);
        out.pp_engine
            .push(g.prompt_eval_tokens as f64 / (g.prompt_eval_ms / 1e3));
        // tg128: one prompt token, 128 generated tokens from an empty context.
        engine.reserve_context(129).await.expect("context");
        let job = GenerateJob {
            prompt: Prompt::Tokens(prompt512[..1].to_vec()),
            max_tokens: 128,
            ignore_eos: true,
            sampling: greedy.clone(),
            stream: None,
        };
        let g = engine.generate(job).await.expect("tg128");
        let n = g.token_times.len();
        let span = g.token_times[n - 1]
            .duration_since(g.token_times[0])
            .as_secs_f64();
        out.tg_client.push((n - 1) as f64 / span);
        out.tg_engine
            .push(g.decode_tokens as f64 / (g.decode_ms / 1e3));
    }
}

/// llama-bench's tg128 samples (t/s) at KV depth `depth`.
fn llama_bench_tg_at(
    bin: &str,
    model: &str,
    threads: u32,
    reps: u32,
    depth: usize,
    extra: &[&str],
) -> Vec<f64> {
    let (threads, reps, depth) = (threads.to_string(), reps.to_string(), depth.to_string());
    let mut args = vec!["-m", model, "-t", &threads, "-p", "0", "-n", "128"];
    args.extend_from_slice(&["-d", &depth, "-r", &reps]);
    args.extend_from_slice(extra);
    samples_ts(&llama_bench_json(bin, &args)[0])
}

/// A llama-bench test's per-repetition rates (t/s).
fn samples_ts(test: &serde_json::Value) -> Vec<f64> {
    test["samples_ts"]
        .as_array()
        .expect("samples_ts")
        .iter()
        .filter_map(serde_json::Value::as_f64)
        .collect()
}

/// The embedded engine's decode rate for 128 tokens after a `depth`-token prompt (client
/// timestamps between the first and the last token, and llama.cpp's own counters).
async fn tg_at(engine: &Engine, corpus: &[i32], depth: usize, reps: u32) -> (Vec<f64>, Vec<f64>) {
    let mut prompt: Vec<i32> = Vec::with_capacity(depth.max(1));
    while prompt.len() < depth.max(1) {
        let take = (depth.max(1) - prompt.len()).min(corpus.len());
        prompt.extend_from_slice(&corpus[..take]);
    }
    let (mut client, mut eng) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        engine
            .reserve_context(prompt.len() as u32 + 129)
            .await
            .expect("context");
        let g = engine
            .generate(GenerateJob {
                prompt: Prompt::Tokens(prompt.clone()),
                max_tokens: 128,
                ignore_eos: true,
                sampling: Sampling::default(),
                stream: None,
            })
            .await
            .expect("tg at depth");
        let n = g.token_times.len();
        let span = g.token_times[n - 1]
            .duration_since(g.token_times[0])
            .as_secs_f64();
        client.push((n - 1) as f64 / span);
        eng.push(g.decode_tokens as f64 / (g.decode_ms / 1e3));
    }
    (client, eng)
}

fn fmt(x: &[f64]) -> String {
    let m = stats::mean(x).unwrap_or(f64::NAN);
    let sd = stats::std_dev(x).unwrap_or(0.0);
    format!("{m:8.1} ± {sd:5.1}")
}

fn ratio(a: &[f64], b: &[f64]) -> f64 {
    stats::mean(a).unwrap_or(f64::NAN) / stats::mean(b).unwrap_or(f64::NAN)
}

fn main() {
    let model = env_or("EDGEBENCH_BENCH_MODEL", || {
        script_output(&shared_script("default-model.sh"))
    });
    let bin = env_or("LLAMA_BENCH", || {
        format!(
            "{}/llama-bench",
            script_output(&shared_script("peer-llama-tools.sh"))
        )
    });
    let threads: u32 = std::env::var("EDGEBENCH_BENCH_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(edgebench_core::repro::default_threads);
    let rounds: u32 = std::env::var("EDGEBENCH_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let reps: u32 = std::env::var("EDGEBENCH_BENCH_REPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);

    // llama-bench built with -march=native uses AMX kernels for some weight types; on VMs that
    // advertise AMX but fault on it, it dies by signal. Probe once; fall back to --repack 0
    // (no extra buffer types), which for Q4_1 is what the embedded engine runs anyway.
    let probe = Command::new(&bin)
        .args([
            "-m",
            &model,
            "-t",
            &threads.to_string(),
            "-p",
            "8",
            "-n",
            "0",
            "-r",
            "1",
            "--no-warmup",
        ])
        .output()
        .expect("run llama-bench");
    let extra: Vec<&str> = if probe.status.success() {
        vec![]
    } else {
        eprintln!(
            "llama-bench crashed with default settings ({}); using --repack 0",
            probe.status
        );
        vec!["--repack", "0"]
    };

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut cfg = EngineConfig::new(&model, threads);
    cfg.n_ctx = std::env::var("EDGEBENCH_BENCH_CTX")
        .ok()
        .and_then(|s| s.parse().ok());
    let engine = Engine::load(cfg).expect("load model");
    eprintln!("model {model}, {threads} threads, {rounds} rounds x {reps} repetitions");
    eprintln!("llama.cpp (embedded): {}", engine.info().system_info);
    let corpus: String = ScenarioFile::default_file()
        .expect("scenarios")
        .passages
        .iter()
        .map(|p| p.text.as_str())
        .collect::<Vec<_>>()
        .join("\n\n");
    let mut tokens = rt.block_on(engine.tokenize(corpus)).expect("tokenize");
    while tokens.len() < 512 {
        tokens.extend_from_within(..);
    }
    tokens.truncate(512);

    let mut reference = (Vec::new(), Vec::new());
    let mut mine = Ours {
        pp_client: vec![],
        pp_engine: vec![],
        tg_client: vec![],
        tg_engine: vec![],
    };
    // Warm-up of the embedded engine (llama-bench warms itself up).
    rt.block_on(ours(
        &engine,
        &tokens,
        1,
        &mut Ours {
            pp_client: vec![],
            pp_engine: vec![],
            tg_client: vec![],
            tg_engine: vec![],
        },
    ));
    for round in 0..rounds {
        let (pp, tg) = llama_bench(&bin, &model, threads, reps, &extra);
        reference.0.extend(pp);
        reference.1.extend(tg);
        rt.block_on(ours(&engine, &tokens, reps, &mut mine));
        eprintln!("round {}/{rounds} done", round + 1);
    }
    println!();
    println!(
        "test    llama-bench t/s     edgebench client t/s   ratio   edgebench engine t/s   ratio"
    );
    println!(
        "pp512   {}   {}      {:5.3}   {}      {:5.3}",
        fmt(&reference.0),
        fmt(&mine.pp_client),
        ratio(&mine.pp_client, &reference.0),
        fmt(&mine.pp_engine),
        ratio(&mine.pp_engine, &reference.0)
    );
    println!(
        "tg128   {}   {}      {:5.3}   {}      {:5.3}",
        fmt(&reference.1),
        fmt(&mine.tg_client),
        ratio(&mine.tg_client, &reference.1),
        fmt(&mine.tg_engine),
        ratio(&mine.tg_engine, &reference.1)
    );
    let depths: Vec<usize> = std::env::var("EDGEBENCH_BENCH_DEPTHS")
        .unwrap_or_else(|_| "0,512,4096".into())
        .split(',')
        .filter_map(|d| d.trim().parse().ok())
        .collect();
    for depth in depths {
        let (mut theirs, mut client, mut eng) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            theirs.extend(llama_bench_tg_at(
                &bin, &model, threads, reps, depth, &extra,
            ));
            let (c, e) = rt.block_on(tg_at(&engine, &tokens, depth, reps));
            client.extend(c);
            eng.extend(e);
        }
        println!(
            "tg128@d{depth:<5} {}   {}      {:5.3}   {}      {:5.3}",
            fmt(&theirs),
            fmt(&client),
            ratio(&client, &theirs),
            fmt(&eng),
            ratio(&eng, &theirs)
        );
    }
    println!(
        "(client: edgebench's timestamps around its generation path, as `edgebench run` reports;"
    );
    println!(
        " engine: llama.cpp's own perf counters; ratio = edgebench / llama-bench; goal: within 5%)"
    );
}
