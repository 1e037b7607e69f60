//! `edgebench hw detect` and `edgebench hw bench`: the machine, and what it can do.

use std::process::ExitCode;

use anyhow::Context;
use edgebench_core::backend::Sampling;
use edgebench_core::hw::bench::{self, Ceiling};
use edgebench_core::hw::text::{self, BenchReport, GpuCompute};
use edgebench_core::hw::{self as corehw, HardwareInfo};
use edgebench_core::repro;
use edgebench_core::stats;
use edgebench_llama::{Engine, EngineConfig, GenerateJob, Prompt};

use crate::args::{HwBenchArgs, HwCommand};

pub fn hw(cmd: HwCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        HwCommand::Detect { json } => {
            let h = corehw::detect(&edgebench_llama::built_backends());
            if json {
                println!("{}", serde_json::to_string_pretty(&h)?);
            } else {
                print!("{}", text::render_detect(&h));
            }
            Ok(ExitCode::SUCCESS)
        }
        HwCommand::Bench(a) => bench_cmd(a),
    }
}

/// Why GPU compute is not measured on this machine and build.
fn gpu_skip_reason(h: &HardwareInfo) -> String {
    if h.gpus.is_empty() {
        return "no GPU detected".to_string();
    }
    let gpu_backends: Vec<&String> = h.backends_built.iter().filter(|b| *b != "CPU").collect();
    if gpu_backends.is_empty() {
        format!(
            "this build of llama.cpp has no GPU backend (the machine has {} {}; rebuild with its backend)",
            h.gpus[0].vendor, h.gpus[0].model
        )
    } else {
        "GPU GEMM needs a GPU BLAS this build does not link; see the engine's prefill rate"
            .to_string()
    }
}

/// llama.cpp's own decode rate for `path`: 64 tokens from a one-token prompt, median of `runs`.
fn decode_rate(path: &std::path::Path, threads: u32, runs: u32) -> anyhow::Result<f64> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let engine = Engine::load(EngineConfig::new(path, threads))
        .with_context(|| format!("loading model {}", path.display()))?;
    rt.block_on(async {
        let first = engine
            .tokenize("The".to_string())
            .await?
            .last()
            .copied()
            .unwrap_or(1);
        engine.reserve_context(80).await?;
        let mut rates = Vec::new();
        for i in 0..=runs {
            let g = engine
                .generate(GenerateJob {
                    prompt: Prompt::Tokens(vec![first]),
                    max_tokens: 64,
                    ignore_eos: true,
                    sampling: Sampling::default(),
                    stream: None,
                })
                .await?;
            if i > 0 && g.decode_ms > 0.0 {
                rates.push(g.decode_tokens as f64 / (g.decode_ms / 1e3));
            }
        }
        Ok::<f64, anyhow::Error>(stats::median(&rates).unwrap_or(0.0))
    })
}

fn bench_cmd(a: HwBenchArgs) -> anyhow::Result<ExitCode> {
    if let Some(n) = a.sizes.iter().find(|n| **n == 0 || **n > 8192) {
        anyhow::bail!("--sizes: {n} is not a GEMM size between 1 and 8192");
    }
    let threads = a.threads.unwrap_or_else(repro::default_threads).max(1);
    let models = super::run::resolve_models(&a.models)?;
    let h = corehw::detect(&edgebench_llama::built_backends());
    let runs = a.runs as usize;
    let progress = |m: &str| {
        if !a.json {
            eprintln!("{m}");
        }
    };
    let mut gemm = Vec::new();
    for &n in &a.sizes {
        let counts: &[usize] = if threads > 1 {
            &[1, threads as usize]
        } else {
            &[1]
        };
        for &t in counts {
            progress(&format!("GEMM {n}x{n}, {t} thread(s)"));
            gemm.push(bench::gemm(n, t, runs));
        }
    }
    let llc_kb = h.cpu.caches.iter().map(|c| c.size_kb).max();
    let bytes = bench::bandwidth_array_bytes(llc_kb, h.memory.available_mb);
    progress(&format!(
        "memory bandwidth, {} MiB per array, {threads} threads",
        bytes >> 20
    ));
    let bandwidth = bench::bandwidth(bytes, threads as usize, runs.max(3));
    let read_gb_s = bandwidth
        .iter()
        .find(|b| b.kernel == "read")
        .map_or(0.0, |b| b.best_gb_s);
    let mut ceilings: Vec<Ceiling> = Vec::new();
    for m in &models {
        let measured = if a.no_decode {
            None
        } else {
            progress(&format!("decode rate of {} ({threads} threads)", m.name));
            Some(decode_rate(&m.path, threads, a.runs)?)
        };
        let label = format!("{} {}", m.name, m.quantization);
        ceilings.push(bench::ceiling(
            &label,
            m.file_size_bytes,
            read_gb_s,
            measured,
        ));
    }
    let report = BenchReport {
        cpu_model: h.cpu.model.clone(),
        threads: threads as usize,
        gemm,
        bandwidth,
        gpu: GpuCompute {
            gflops: None,
            skipped: Some(gpu_skip_reason(&h)),
        },
        ceilings,
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", text::render_bench(&report));
    }
    Ok(ExitCode::SUCCESS)
}
