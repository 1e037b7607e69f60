//! What the machine is: OS, CPU (cores, frequencies, caches, SIMD), memory, GPUs, and which
//! llama.cpp backend and catalog models suit it.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sysinfo::System;

use super::gpu::{self, GpuInfo, Probe};
use crate::catalog::CATALOG;

/// One CPU cache level as the OS reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheInfo {
    pub level: u8,
    /// "Data", "Instruction" or "Unified".
    pub kind: String,
    pub size_kb: u64,
    /// Logical CPUs sharing this cache, when known.
    pub shared_by: Option<usize>,
}

/// The processor.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuInfo {
    pub model: String,
    pub vendor: String,
    pub arch: String,
    pub physical_cores: Option<usize>,
    pub logical_cores: usize,
    /// Base (nominal) frequency, MHz, when the OS exposes it.
    pub base_mhz: Option<f64>,
    /// Maximum (turbo) frequency, MHz, when the OS exposes it.
    pub max_mhz: Option<f64>,
    /// The frequency at detection time, MHz.
    pub current_mhz: Option<f64>,
    pub caches: Vec<CacheInfo>,
    /// SIMD extensions llama.cpp kernels use (AVX2, AVX-512, AMX, NEON, SVE...).
    pub simd: Vec<String>,
}

/// Main memory.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryInfo {
    pub total_mb: u64,
    pub available_mb: u64,
    /// CPU and GPU share one memory (Apple Silicon).
    pub unified: bool,
}

/// Whether a catalog model fits this machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFit {
    pub key: String,
    pub size_mb: u64,
    /// Memory the model needs to run (weights, KV cache and compute buffers), MB.
    pub need_mb: u64,
    pub fits: bool,
}

/// Which llama.cpp backend to build and which models fit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    pub backend: String,
    pub reason: String,
    /// The memory models must fit in (VRAM of the best GPU, else available RAM), MB.
    pub budget_mb: u64,
    pub models: Vec<ModelFit>,
}

/// Everything `edgebench hw detect` reports; captured with every experiment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HardwareInfo {
    pub os: String,
    pub kernel: String,
    pub cpu: CpuInfo,
    pub memory: MemoryInfo,
    pub gpus: Vec<GpuInfo>,
    /// Each GPU probe that ran, detected or not and why.
    pub gpu_probes: Vec<Probe>,
    /// The llama.cpp backends this edgebench binary was built with.
    pub backends_built: Vec<String>,
    pub recommendation: Recommendation,
}

/// Detects this machine. `backends_built` comes from the engine crate (its cargo features).
pub fn detect(backends_built: &[&str]) -> HardwareInfo {
    let root = Path::new("/");
    let mut sys = System::new();
    sys.refresh_memory();
    sys.refresh_cpu_all();
    let first = sys.cpus().first();
    let brand = first
        .map(|c| c.brand().trim().to_string())
        .unwrap_or_default();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let mut cpu = CpuInfo {
        model: if brand.is_empty() {
            std::env::consts::ARCH.to_string()
        } else {
            brand
        },
        vendor: first.map(|c| c.vendor_id().to_string()).unwrap_or_default(),
        arch: std::env::consts::ARCH.to_string(),
        physical_cores: System::physical_core_count(&sys),
        logical_cores: sys.cpus().len(),
        base_mhz: None,
        max_mhz: None,
        current_mhz: first.map(|c| c.frequency() as f64).filter(|f| *f > 0.0),
        caches: linux_caches(root),
        simd: if cpuinfo.is_empty() {
            simd_from_runtime()
        } else {
            simd_from_cpuinfo(&cpuinfo)
        },
    };
    let (base, max) = linux_frequencies(root);
    cpu.base_mhz = base;
    cpu.max_mhz = max;
    if cfg!(target_os = "macos") {
        mac_cpu(&mut cpu);
    }
    let memory = MemoryInfo {
        total_mb: sys.total_memory() / 1_000_000,
        available_mb: sys.available_memory() / 1_000_000,
        unified: cfg!(all(target_os = "macos", target_arch = "aarch64")),
    };
    let (gpus, gpu_probes) = gpu::detect_all(root);
    let recommendation = recommend(&cpu, &memory, &gpus);
    HardwareInfo {
        os: System::long_os_version().unwrap_or_else(|| std::env::consts::OS.to_string()),
        kernel: System::kernel_version().unwrap_or_default(),
        cpu,
        memory,
        gpus,
        gpu_probes,
        backends_built: backends_built.iter().map(|s| s.to_string()).collect(),
        recommendation,
    }
}

/// SIMD names, in the order shown, and the `/proc/cpuinfo` flag that means each.
const SIMD_FLAGS: &[(&str, &str)] = &[
    ("sse4_2", "SSE4.2"),
    ("avx", "AVX"),
    ("avx2", "AVX2"),
    ("fma", "FMA"),
    ("f16c", "F16C"),
    ("avx_vnni", "AVX-VNNI"),
    ("avx512f", "AVX-512F"),
    ("avx512bw", "AVX-512BW"),
    ("avx512vl", "AVX-512VL"),
    ("avx512_vnni", "AVX-512-VNNI"),
    ("avx512_bf16", "AVX-512-BF16"),
    ("avx512_fp16", "AVX-512-FP16"),
    ("amx_tile", "AMX-TILE"),
    ("amx_int8", "AMX-INT8"),
    ("amx_bf16", "AMX-BF16"),
    ("asimd", "NEON"),
    ("asimddp", "NEON-DOTPROD"),
    ("i8mm", "I8MM"),
    ("sve", "SVE"),
    ("sve2", "SVE2"),
];

/// The SIMD extensions named by the first `flags` (x86) or `Features` (Arm) line of `/proc/cpuinfo`.
pub fn simd_from_cpuinfo(cpuinfo: &str) -> Vec<String> {
    let flags: Vec<&str> = cpuinfo
        .lines()
        .find(|l| l.starts_with("flags") || l.starts_with("Features"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.split_whitespace().collect())
        .unwrap_or_default();
    SIMD_FLAGS
        .iter()
        .filter(|(flag, _)| flags.contains(flag))
        .map(|(_, name)| name.to_string())
        .collect()
}

/// SIMD extensions from the CPU itself (where `/proc/cpuinfo` is absent, e.g. macOS).
fn simd_from_runtime() -> Vec<String> {
    #[allow(unused_mut)]
    let mut out: Vec<String> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        let checks = [
            (std::arch::is_x86_feature_detected!("sse4.2"), "SSE4.2"),
            (std::arch::is_x86_feature_detected!("avx"), "AVX"),
            (std::arch::is_x86_feature_detected!("avx2"), "AVX2"),
            (std::arch::is_x86_feature_detected!("fma"), "FMA"),
            (std::arch::is_x86_feature_detected!("f16c"), "F16C"),
            (std::arch::is_x86_feature_detected!("avx512f"), "AVX-512F"),
            (std::arch::is_x86_feature_detected!("avx512bw"), "AVX-512BW"),
            (std::arch::is_x86_feature_detected!("avx512vl"), "AVX-512VL"),
        ];
        out.extend(checks.iter().filter(|c| c.0).map(|c| c.1.to_string()));
    }
    #[cfg(target_arch = "aarch64")]
    {
        let checks = [
            (std::arch::is_aarch64_feature_detected!("neon"), "NEON"),
            (
                std::arch::is_aarch64_feature_detected!("dotprod"),
                "NEON-DOTPROD",
            ),
            (std::arch::is_aarch64_feature_detected!("i8mm"), "I8MM"),
            (std::arch::is_aarch64_feature_detected!("sve"), "SVE"),
        ];
        out.extend(checks.iter().filter(|c| c.0).map(|c| c.1.to_string()));
    }
    out
}

fn read_trim(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Parses a sysfs cache size ("48K", "2048K", "32M").
pub fn parse_cache_size_kb(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last()? {
        'K' | 'k' => (&s[..s.len() - 1], 1),
        'M' | 'm' => (&s[..s.len() - 1], 1024),
        'G' | 'g' => (&s[..s.len() - 1], 1024 * 1024),
        _ => (s, 1),
    };
    num.trim().parse::<u64>().ok().map(|n| n * mult)
}

/// Counts the CPUs in a sysfs CPU list ("0-3,8-11", "5").
pub fn count_cpu_list(list: &str) -> Option<usize> {
    let mut n = 0usize;
    for part in list.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (a.parse::<usize>().ok()?, b.parse::<usize>().ok()?);
                n += b.checked_sub(a)? + 1;
            }
            None => {
                part.parse::<usize>().ok()?;
                n += 1;
            }
        }
    }
    (n > 0).then_some(n)
}

/// CPU 0's caches from sysfs under `root`.
pub fn linux_caches(root: &Path) -> Vec<CacheInfo> {
    let dir = root.join("sys/devices/system/cpu/cpu0/cache");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<CacheInfo> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("index"))
        .filter_map(|e| {
            let p = e.path();
            Some(CacheInfo {
                level: read_trim(&p.join("level"))?.parse().ok()?,
                kind: read_trim(&p.join("type"))?,
                size_kb: parse_cache_size_kb(&read_trim(&p.join("size"))?)?,
                shared_by: read_trim(&p.join("shared_cpu_list")).and_then(|l| count_cpu_list(&l)),
            })
        })
        .collect();
    out.sort_by(|a, b| (a.level, &a.kind).cmp(&(b.level, &b.kind)));
    out
}

/// Base and maximum frequency of CPU 0 from sysfs cpufreq, MHz.
pub fn linux_frequencies(root: &Path) -> (Option<f64>, Option<f64>) {
    let dir = root.join("sys/devices/system/cpu/cpu0/cpufreq");
    let khz = |name: &str| {
        read_trim(&dir.join(name))
            .and_then(|s| s.parse::<f64>().ok())
            .map(|k| k / 1000.0)
    };
    (khz("base_frequency"), khz("cpuinfo_max_freq"))
}

fn sysctl(name: &str) -> Option<String> {
    let out = std::process::Command::new("sysctl")
        .args(["-n", name])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Frequencies and caches on macOS (sysctl).
fn mac_cpu(cpu: &mut CpuInfo) {
    let num = |n: &str| sysctl(n).and_then(|s| s.parse::<u64>().ok());
    if let Some(hz) = num("hw.cpufrequency") {
        cpu.base_mhz = Some(hz as f64 / 1e6);
    }
    if let Some(hz) = num("hw.cpufrequency_max") {
        cpu.max_mhz = Some(hz as f64 / 1e6);
    }
    for (level, kind, key) in [
        (1, "Data", "hw.l1dcachesize"),
        (1, "Instruction", "hw.l1icachesize"),
        (2, "Unified", "hw.l2cachesize"),
        (3, "Unified", "hw.l3cachesize"),
    ] {
        if let Some(bytes) = num(key).filter(|b| *b > 0) {
            cpu.caches.push(CacheInfo {
                level,
                kind: kind.to_string(),
                size_kb: bytes / 1024,
                shared_by: None,
            });
        }
    }
}

/// Memory a model needs: its weights plus about 20% and 300 MB for the KV cache at a few
/// thousand tokens, compute buffers and the runtime (MB).
pub fn model_need_mb(size_bytes: u64) -> u64 {
    (size_bytes as f64 * 1.2 / 1e6).ceil() as u64 + 300
}

/// The llama.cpp backend for a GPU vendor.
pub fn backend_for_vendor(vendor: &str) -> &'static str {
    match vendor {
        "NVIDIA" => "CUDA",
        "AMD" => "ROCm/HIP",
        "Intel" => "SYCL",
        "Apple" => "Metal",
        _ => "Vulkan",
    }
}

/// Picks the backend to build and checks which catalog models fit (pure: from detected facts).
pub fn recommend(cpu: &CpuInfo, memory: &MemoryInfo, gpus: &[GpuInfo]) -> Recommendation {
    let best = gpus
        .iter()
        .filter(|g| g.vram_mb.is_some() || memory.unified)
        .max_by_key(|g| g.vram_mb.unwrap_or(0));
    let (backend, reason, budget_mb) = match best {
        Some(g) if memory.unified => (
            backend_for_vendor(&g.vendor).to_string(),
            format!(
                "{} shares {} MB of unified memory with the CPU",
                g.model, memory.total_mb
            ),
            // macOS lets the GPU wire about three quarters of unified memory by default.
            memory.total_mb * 3 / 4,
        ),
        Some(g) => (
            backend_for_vendor(&g.vendor).to_string(),
            format!(
                "{} {} with {} MB VRAM",
                g.vendor,
                g.model,
                g.vram_mb.unwrap_or(0)
            ),
            g.vram_mb.unwrap_or(0),
        ),
        None => {
            let simd = ["AVX-512F", "AVX2", "NEON"]
                .into_iter()
                .find(|s| cpu.simd.iter().any(|c| c == s))
                .unwrap_or("no wide SIMD");
            (
                "CPU".to_string(),
                format!(
                    "no GPU detected; build llama.cpp for this CPU ({simd}, GGML_NATIVE) and run with {} threads",
                    cpu.physical_cores.unwrap_or(cpu.logical_cores)
                ),
                memory.available_mb,
            )
        }
    };
    let models = CATALOG
        .iter()
        .filter(|e| e.size_bytes > 0)
        .map(|e| {
            let need_mb = model_need_mb(e.size_bytes);
            ModelFit {
                key: e.key.to_string(),
                size_mb: e.size_bytes / 1_000_000,
                need_mb,
                fits: need_mb <= budget_mb,
            }
        })
        .collect();
    Recommendation {
        backend,
        reason,
        budget_mb,
        models,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simd_flags_from_x86_and_arm_cpuinfo() {
        let x86 = "processor\t: 0\nflags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512bw amx_tile amx_int8\n";
        assert_eq!(
            simd_from_cpuinfo(x86),
            [
                "SSE4.2",
                "AVX",
                "AVX2",
                "FMA",
                "AVX-512F",
                "AVX-512BW",
                "AMX-TILE",
                "AMX-INT8"
            ]
        );
        let arm = "processor\t: 0\nFeatures\t: fp asimd evtstrm asimddp sve\n";
        assert_eq!(simd_from_cpuinfo(arm), ["NEON", "NEON-DOTPROD", "SVE"]);
        assert!(simd_from_cpuinfo("").is_empty());
    }

    #[test]
    fn cache_sizes_and_cpu_lists_parse() {
        assert_eq!(parse_cache_size_kb("48K"), Some(48));
        assert_eq!(parse_cache_size_kb("32M"), Some(32 * 1024));
        assert_eq!(parse_cache_size_kb("bogus"), None);
        assert_eq!(count_cpu_list("0-3,8-11"), Some(8));
        assert_eq!(count_cpu_list("5"), Some(1));
        assert_eq!(count_cpu_list("3-1"), None);
    }

    #[test]
    fn caches_and_frequencies_from_a_fake_sysfs() {
        let root = tempfile::tempdir().unwrap();
        let cpu0 = root.path().join("sys/devices/system/cpu/cpu0");
        for (i, level, kind, size, shared) in [
            (0, "1", "Data", "48K", "0-1"),
            (3, "3", "Unified", "105M", "0-55"),
        ] {
            let d = cpu0.join(format!("cache/index{i}"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("level"), level).unwrap();
            std::fs::write(d.join("type"), kind).unwrap();
            std::fs::write(d.join("size"), size).unwrap();
            std::fs::write(d.join("shared_cpu_list"), shared).unwrap();
        }
        std::fs::create_dir_all(cpu0.join("cpufreq")).unwrap();
        std::fs::write(cpu0.join("cpufreq/base_frequency"), "2600000\n").unwrap();
        std::fs::write(cpu0.join("cpufreq/cpuinfo_max_freq"), "3800000\n").unwrap();
        let c = linux_caches(root.path());
        assert_eq!(c.len(), 2);
        assert_eq!((c[0].level, c[0].size_kb, c[0].shared_by), (1, 48, Some(2)));
        assert_eq!(
            (c[1].level, c[1].size_kb, c[1].shared_by),
            (3, 105 * 1024, Some(56))
        );
        assert_eq!(linux_frequencies(root.path()), (Some(2600.0), Some(3800.0)));
        let empty = tempfile::tempdir().unwrap();
        assert!(linux_caches(empty.path()).is_empty());
        assert_eq!(linux_frequencies(empty.path()), (None, None));
    }

    #[test]
    fn recommends_cuda_for_an_nvidia_card_and_cpu_without_gpu() {
        let cpu = CpuInfo {
            simd: vec!["AVX2".into(), "AVX-512F".into()],
            physical_cores: Some(8),
            logical_cores: 16,
            ..CpuInfo::default()
        };
        let memory = MemoryInfo {
            total_mb: 32_000,
            available_mb: 20_000,
            unified: false,
        };
        let r = recommend(&cpu, &memory, &[]);
        assert_eq!(r.backend, "CPU");
        assert!(
            r.reason.contains("AVX-512F") && r.reason.contains("8 threads"),
            "{}",
            r.reason
        );
        assert_eq!(r.budget_mb, 20_000);
        assert!(r.models.iter().all(|m| m.fits));
        let gpu = GpuInfo {
            vendor: "NVIDIA".into(),
            model: "RTX 4090".into(),
            vram_mb: Some(50),
            driver: None,
            backend: "CUDA".into(),
            source: "NVML".into(),
        };
        let r = recommend(&cpu, &memory, &[gpu]);
        assert_eq!((r.backend.as_str(), r.budget_mb), ("CUDA", 50));
        // The default model (98 MB) does not fit 50 MB of VRAM.
        assert!(r.models.iter().any(|m| !m.fits));
    }

    #[test]
    fn need_grows_with_size() {
        assert_eq!(model_need_mb(0), 300);
        assert_eq!(model_need_mb(1_000_000_000), 1500);
    }
}
