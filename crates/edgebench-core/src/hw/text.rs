//! Text renderings of `edgebench hw detect` and `edgebench hw bench` (the JSON forms are the
//! structs themselves).

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use super::bench::{BandwidthResult, Ceiling, GemmResult};
use super::detect::HardwareInfo;

/// Everything `edgebench hw bench` measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    pub cpu_model: String,
    pub threads: usize,
    pub gemm: Vec<GemmResult>,
    pub bandwidth: Vec<BandwidthResult>,
    /// GPU compute GFLOPS, or why it was not measured.
    pub gpu: GpuCompute,
    pub ceilings: Vec<Ceiling>,
}

/// The GPU part of the benchmark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuCompute {
    pub gflops: Option<f64>,
    pub skipped: Option<String>,
}

fn opt_mhz(x: Option<f64>) -> String {
    x.map_or_else(|| "not exposed".to_string(), |v| format!("{v:.0} MHz"))
}

/// `edgebench hw detect` as text.
pub fn render_detect(h: &HardwareInfo) -> String {
    let mut s = String::new();
    let c = &h.cpu;
    let _ = writeln!(s, "OS        {} (kernel {})", h.os, h.kernel);
    let _ = writeln!(s, "CPU       {} ({}, {})", c.model, c.vendor, c.arch);
    let _ = writeln!(
        s,
        "cores     {} physical, {} logical",
        c.physical_cores
            .map_or_else(|| "?".to_string(), |n| n.to_string()),
        c.logical_cores
    );
    let _ = writeln!(
        s,
        "frequency base {}, max {}, now {}",
        opt_mhz(c.base_mhz),
        opt_mhz(c.max_mhz),
        opt_mhz(c.current_mhz)
    );
    let caches: Vec<String> = c
        .caches
        .iter()
        .map(|k| {
            let kind = match k.kind.as_str() {
                "Data" => "d",
                "Instruction" => "i",
                _ => "",
            };
            let size = if k.size_kb >= 1024 && k.size_kb % 1024 == 0 {
                format!("{} MiB", k.size_kb / 1024)
            } else {
                format!("{} KiB", k.size_kb)
            };
            format!("L{}{kind} {size}", k.level)
        })
        .collect();
    let _ = writeln!(
        s,
        "caches    {}",
        if caches.is_empty() {
            "not exposed".to_string()
        } else {
            caches.join(", ")
        }
    );
    let _ = writeln!(
        s,
        "SIMD      {}",
        if c.simd.is_empty() {
            "none detected".to_string()
        } else {
            c.simd.join(" ")
        }
    );
    let _ = writeln!(
        s,
        "memory    {} MB total, {} MB available{}",
        h.memory.total_mb,
        h.memory.available_mb,
        if h.memory.unified {
            " (unified with the GPU)"
        } else {
            ""
        }
    );
    if h.gpus.is_empty() {
        let _ = writeln!(s, "GPU       none");
    }
    for g in &h.gpus {
        let _ = writeln!(
            s,
            "GPU       {} {} ({}{}{}; backend {}; via {})",
            g.vendor,
            g.model,
            g.vram_mb
                .map_or_else(|| "VRAM unknown".to_string(), |v| format!("{v} MB VRAM")),
            if g.driver.is_some() { ", driver " } else { "" },
            g.driver.as_deref().unwrap_or(""),
            g.backend,
            g.source
        );
    }
    for p in &h.gpu_probes {
        let _ = writeln!(s, "  probe {:<16} {}", p.source, p.detail);
    }
    let _ = writeln!(
        s,
        "built     llama.cpp backends: {}",
        h.backends_built.join(", ")
    );
    let r = &h.recommendation;
    let _ = writeln!(s, "\nrecommended backend: {} ({})", r.backend, r.reason);
    if !h.backends_built.contains(&r.backend) {
        let feature = match r.backend.as_str() {
            "CUDA" => Some("cuda"),
            "Metal" => Some("metal"),
            "Vulkan" | "ROCm/HIP" | "SYCL" => Some("vulkan"),
            _ => None,
        };
        if let Some(f) = feature {
            let _ = writeln!(
                s,
                "  this binary lacks it: cargo build --release --features edgebench-llama/{f}"
            );
        }
    }
    let _ = writeln!(s, "models that fit in {} MB:", r.budget_mb);
    for m in &r.models {
        let _ = writeln!(
            s,
            "  {:<30} {:>7} MB file, needs ~{:>6} MB  {}",
            m.key,
            m.size_mb,
            m.need_mb,
            if m.fits { "fits" } else { "does not fit" }
        );
    }
    s
}

/// `edgebench hw bench` as text.
pub fn render_bench(b: &BenchReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{} ({} threads)", b.cpu_model, b.threads);
    let _ = writeln!(s, "\nf32 GEMM (1 warm-up, then timed runs)");
    let _ = writeln!(
        s,
        "  {:>6} {:>8} {:>12} {:>12} {:>12}",
        "n", "threads", "best GFLOPS", "median", "mean time"
    );
    for g in &b.gemm {
        let _ = writeln!(
            s,
            "  {:>6} {:>8} {:>12.1} {:>12.1} {:>12.1}",
            g.n, g.threads, g.best_gflops, g.median_gflops, g.mean_gflops
        );
    }
    let mut size = None;
    for w in &b.bandwidth {
        if size != Some(w.array_bytes) {
            size = Some(w.array_bytes);
            let _ = writeln!(
                s,
                "\nmemory bandwidth ({} MiB per array, {} threads)",
                w.array_bytes >> 20,
                w.threads
            );
        }
        let _ = writeln!(
            s,
            "  {:<6} {:>8.1} GB/s best {:>8.1} GB/s median {:>8.1} GB/s mean time",
            w.kernel, w.best_gb_s, w.median_gb_s, w.mean_gb_s
        );
    }
    match (&b.gpu.gflops, &b.gpu.skipped) {
        (Some(g), _) => {
            let _ = writeln!(s, "\nGPU compute {g:.1} GFLOPS");
        }
        (None, Some(why)) => {
            let _ = writeln!(s, "\nGPU compute skipped: {why}");
        }
        _ => {}
    }
    if !b.ceilings.is_empty() {
        let _ = writeln!(
            s,
            "\ninference ceiling (decode tokens/s <= read bandwidth / model file bytes per token)"
        );
    }
    for c in &b.ceilings {
        let measured = match (c.measured_tokens_per_s, c.efficiency) {
            (Some(m), Some(e)) => format!("measured {m:.1} tok/s ({:.0}% of ceiling)", e * 100.0),
            _ => "not measured".to_string(),
        };
        let _ = writeln!(
            s,
            "  {}: {:.1} MB/token at {:.1} GB/s -> ceiling {:.1} tok/s; {measured}",
            c.model,
            c.bytes_per_token as f64 / 1e6,
            c.bandwidth_gb_s,
            c.ceiling_tokens_per_s
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hw::bench::ceiling;
    use crate::hw::detect::{recommend, CacheInfo, CpuInfo, MemoryInfo};
    use crate::hw::gpu::{GpuInfo, Probe};

    fn golden(name: &str, got: &str) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(name);
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, got).unwrap();
        }
        let want = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            got, want,
            "golden {name} differs (UPDATE_GOLDEN=1 to rewrite)"
        );
    }

    fn machine() -> HardwareInfo {
        let cpu = CpuInfo {
            model: "Example CPU 9000".into(),
            vendor: "GenuineIntel".into(),
            arch: "x86_64".into(),
            physical_cores: Some(8),
            logical_cores: 16,
            base_mhz: Some(2600.0),
            max_mhz: None,
            current_mhz: Some(2601.0),
            caches: vec![
                CacheInfo {
                    level: 1,
                    kind: "Data".into(),
                    size_kb: 48,
                    shared_by: Some(2),
                },
                CacheInfo {
                    level: 3,
                    kind: "Unified".into(),
                    size_kb: 32 * 1024,
                    shared_by: Some(16),
                },
            ],
            simd: vec!["AVX2".into(), "AVX-512F".into()],
        };
        let memory = MemoryInfo {
            total_mb: 32_000,
            available_mb: 24_000,
            unified: false,
        };
        let gpus = vec![GpuInfo {
            vendor: "NVIDIA".into(),
            model: "RTX 4060".into(),
            vram_mb: Some(8188),
            driver: Some("550.54".into()),
            backend: "CUDA".into(),
            source: "NVML".into(),
        }];
        let recommendation = recommend(&cpu, &memory, &gpus);
        HardwareInfo {
            os: "Linux (Debian GNU/Linux 12)".into(),
            kernel: "6.1.0".into(),
            cpu,
            memory,
            gpus,
            gpu_probes: vec![
                Probe {
                    source: "NVML".into(),
                    detected: true,
                    detail: "1 GPU(s)".into(),
                },
                Probe {
                    source: "rocm-smi".into(),
                    detected: false,
                    detail: "not detected: rocm-smi not on PATH".into(),
                },
            ],
            backends_built: vec!["CPU".into()],
            recommendation,
        }
    }

    #[test]
    fn detect_text_matches_golden() {
        golden("hw_detect.txt", &render_detect(&machine()));
    }

    #[test]
    fn bench_text_matches_golden() {
        let b = BenchReport {
            cpu_model: "Example CPU 9000".into(),
            threads: 8,
            gemm: vec![GemmResult {
                n: 1024,
                threads: 8,
                best_gflops: 812.25,
                median_gflops: 790.0,
                mean_gflops: 790.4,
                runs_gflops: vec![812.25, 790.0, 770.0],
            }],
            bandwidth: vec![BandwidthResult {
                kernel: "read".into(),
                threads: 8,
                array_bytes: 128 << 20,
                best_gb_s: 41.5,
                median_gb_s: 40.25,
                mean_gb_s: 40.0,
            }],
            gpu: GpuCompute {
                gflops: None,
                skipped: Some("this build of llama.cpp has no GPU backend".into()),
            },
            ceilings: vec![ceiling("SmolLM2 Q4_1", 98_362_432, 41.5, Some(130.0))],
        };
        golden("hw_bench.txt", &render_bench(&b));
    }
}
