//! Hardware: what the machine is (`detect`, `gpu`), what it can do (`bench`), its power and
//! temperature sensors (`sensors`), settling it between phases (`settle`), and pinning threads
//! to CPUs (`affinity`).

pub mod affinity;
pub mod bench;
pub mod detect;
pub mod gpu;
pub mod infer;
pub mod interference;
pub mod sensors;
pub mod settle;

pub use detect::{detect, HardwareInfo};
pub mod text;

/// Why GPU compute is not measured on this machine and build.
pub fn gpu_skip_reason(h: &HardwareInfo) -> String {
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

/// The file the hardware report is saved as: `benchmark_{CPU}_{OS}_{timestamp}.json`.
pub fn bench_file_name(h: &HardwareInfo, t: time::OffsetDateTime) -> String {
    let words: Vec<&str> = h
        .cpu
        .model
        .split_whitespace()
        .filter(|w| *w != "@")
        .collect();
    let cpu = crate::results::sanitize(&words.join("_").replace(['(', ')'], ""));
    format!(
        "benchmark_{cpu}_{}_{}.json",
        // The system's name alone ("Linux (Debian GNU/Linux 12)" -> "Linux").
        crate::results::sanitize(h.os.split_whitespace().next().unwrap_or("unknown")),
        crate::results::file_timestamp(t)
    )
}

/// The saved hardware report: when, the machine as detected, and the benchmark.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SavedBench {
    pub timestamp: String,
    pub hardware: HardwareInfo,
    pub bench: text::BenchReport,
}

/// Writes the hardware report into `dir` (created if needed) as [`bench_file_name`], whole or
/// not at all; returns its path.
pub fn save_bench_file(
    dir: &std::path::Path,
    h: &HardwareInfo,
    bench: &text::BenchReport,
    t: time::OffsetDateTime,
) -> std::io::Result<std::path::PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(bench_file_name(h, t));
    let doc = SavedBench {
        timestamp: t
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        hardware: h.clone(),
        bench: bench.clone(),
    };
    let bytes = serde_json::to_vec_pretty(&doc).map_err(std::io::Error::other)?;
    crate::results::atomic_write(&path, &bytes)?;
    Ok(path)
}

#[cfg(test)]
mod file_tests {
    #[test]
    fn the_saved_report_is_named_by_cpu_os_and_time() {
        let mut h = super::HardwareInfo::default();
        h.cpu.model = "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz".into();
        h.os = "Linux (Debian GNU/Linux 12)".into();
        let t = time::macros::datetime!(2026-12-05 22:30:01 UTC);
        assert_eq!(
            super::bench_file_name(&h, t),
            "benchmark_IntelR_XeonR_Platinum_8481C_CPU_2.70GHz_Linux_20261205_223001.json"
        );
    }
}
