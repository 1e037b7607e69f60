//! `edgebench hw detect` and `edgebench hw bench`: the machine, and what it can do.

use std::process::ExitCode;

use anyhow::Context;
use edgebench_core::hw as corehw;
use edgebench_core::hw::bench::{self, Ceiling};
use edgebench_core::hw::text::{self, BenchReport, GpuCompute};
use edgebench_core::repro;
use edgebench_llama::{Engine, EngineConfig};

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
        HwCommand::Bench(a) => bench_cmd(a, Phases::default()),
        HwCommand::All(mut a) => {
            if !a.bench.json {
                let h = corehw::detect(&edgebench_llama::built_backends());
                println!("{}", text::render_detect(&h));
            }
            a.bench.results.get_or_insert_with(|| "results".into());
            a.bench.no_decode |= a.skip_ai;
            bench_cmd(
                a.bench,
                Phases {
                    classic: !a.skip_classic,
                    ai: !a.skip_ai,
                },
            )
        }
    }
}

/// Which phases of the hardware report run.
struct Phases {
    /// GEMM, and the document's 256 MB bandwidth block.
    classic: bool,
    /// The decode-ceiling lines of the models.
    ai: bool,
}

impl Default for Phases {
    fn default() -> Self {
        Self {
            classic: true,
            ai: true,
        }
    }
}

/// llama.cpp's own decode rate for the model at `path` (see [`Engine::decode_rate`]).
fn decode_rate(path: &std::path::Path, threads: u32, runs: u32) -> anyhow::Result<f64> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let engine = Engine::load(EngineConfig::new(path, threads))
        .with_context(|| format!("loading model {}", path.display()))?;
    Ok(rt.block_on(engine.decode_rate(runs))?)
}

fn bench_cmd(a: HwBenchArgs, phases: Phases) -> anyhow::Result<ExitCode> {
    if let Some(n) = a.sizes.iter().find(|n| **n == 0 || **n > 8192) {
        anyhow::bail!("--sizes: {n} is not a GEMM size between 1 and 8192");
    }
    let threads = a.threads.unwrap_or_else(repro::default_threads).max(1);
    let models = if phases.ai {
        super::run::resolve_models(&a.models)?
    } else {
        Vec::new()
    };
    let h = corehw::detect(&edgebench_llama::built_backends());
    let runs = a.runs as usize;
    let progress = |m: &str| {
        if !a.json {
            eprintln!("{m}");
        }
    };
    let mut gemm = Vec::new();
    for &n in a.sizes.iter().filter(|_| phases.classic) {
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
    let mut bandwidth = bench::bandwidth(bytes, threads as usize, runs.max(3));
    // The hardware-report document's block too, where it differs and three arrays fit.
    let block = bench::DOCUMENT_BLOCK_BYTES;
    let fits = 3 * block < (h.memory.available_mb as usize * 1_000_000) / 2;
    if phases.classic && block != bytes && fits {
        progress(&format!(
            "memory bandwidth, {} MiB per array (the document's block), {threads} threads",
            block >> 20
        ));
        bandwidth.extend(bench::bandwidth(block, threads as usize, runs.max(3)));
    }
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
            skipped: Some(corehw::gpu_skip_reason(&h)),
        },
        ceilings,
    };
    if a.results.is_some() || a.store.is_some() {
        save_bench(&a, &report)?;
    }
    if let Some(dir) = &a.results {
        let path =
            edgebench_core::hw::save_bench_file(dir, &h, &report, time::OffsetDateTime::now_utc())
                .with_context(|| format!("--results {}", dir.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", text::render_bench(&report));
    }
    Ok(ExitCode::SUCCESS)
}

/// Keeps the bench report with this machine's row in the results database or the team store.
fn save_bench(a: &HwBenchArgs, report: &BenchReport) -> anyhow::Result<()> {
    use edgebench_core::store::{MachineRow, Store, StoreLocation};
    let location = match (&a.store, &a.results) {
        (Some(url), _) => StoreLocation::parse(url),
        (None, Some(dir)) => StoreLocation::for_folder(dir, None),
        (None, None) => return Ok(()),
    };
    let store = Store::connect(&location).map_err(|e| {
        anyhow::anyhow!(
            "{}: {e}",
            if a.store.is_some() {
                "--store"
            } else {
                "--results"
            }
        )
    })?;
    let environment = super::run::environment();
    let machine = environment.machine();
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    store.set_machine_bench(&MachineRow {
        id: machine.id,
        label: machine.label.clone(),
        hardware_json: serde_json::to_string(&environment.hardware)?,
        first_seen: now.clone(),
        bench_json: Some(serde_json::to_string(report)?),
        bench_taken: Some(now),
    })?;
    eprintln!(
        "saved with machine {} in {}",
        machine.label,
        location.shown()
    );
    Ok(())
}
