//! Reproducibility: the machine and software a result was measured on.

use serde::{Deserialize, Serialize};
use sysinfo::System;

/// The machine and software of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    pub edgebench_version: String,
    /// The git commit edgebench was built from, when known.
    pub edgebench_commit: Option<String>,
    pub os: String,
    pub kernel: String,
    pub cpu_model: String,
    pub physical_cores: Option<usize>,
    pub logical_cores: usize,
    pub ram_total_mb: u64,
    pub ram_available_mb: u64,
    /// The full hardware description (`edgebench hw detect`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware: Option<crate::hw::HardwareInfo>,
}

impl Environment {
    /// Reads the environment of this machine now; `backends` are the llama.cpp backends built in.
    pub fn capture(version: &str, commit: Option<&str>, backends: &[&str]) -> Self {
        let mut sys = System::new();
        sys.refresh_memory();
        sys.refresh_cpu_list(sysinfo::CpuRefreshKind::nothing());
        let cpu_model = sys
            .cpus()
            .first()
            .map(|c| c.brand().trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| std::env::consts::ARCH.to_string());
        Self {
            edgebench_version: version.to_string(),
            edgebench_commit: commit.map(str::to_string),
            os: System::long_os_version().unwrap_or_else(|| std::env::consts::OS.to_string()),
            kernel: System::kernel_version().unwrap_or_default(),
            cpu_model,
            physical_cores: System::physical_core_count(&sys),
            logical_cores: sys.cpus().len(),
            ram_total_mb: sys.total_memory() / 1_000_000,
            ram_available_mb: sys.available_memory() / 1_000_000,
            hardware: Some(crate::hw::detect(backends)),
        }
    }
}

/// This machine as the store knows it: a fingerprint of its hardware and name, and a label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineIdentity {
    /// 16 hex digits of SHA-256 over CPU, cores, RAM (GB), GPUs, OS and host name.
    pub id: String,
    /// `EDGEBENCH_MACHINE_LABEL`, else the host name.
    pub label: String,
}

impl Environment {
    /// The machine this environment was captured on.
    pub fn machine(&self) -> MachineIdentity {
        use sha2::{Digest, Sha256};
        let host = System::host_name().unwrap_or_default();
        let gpus: Vec<String> = self
            .hardware
            .iter()
            .flat_map(|h| h.gpus.iter())
            .map(|g| format!("{} {} {:?}", g.vendor, g.model, g.vram_mb))
            .collect();
        let chosen = std::env::var("EDGEBENCH_MACHINE_LABEL")
            .ok()
            .filter(|l| !l.trim().is_empty());
        // A label given on purpose is part of the identity (two labels on one host are two
        // machines to compare, a VM relabelled after a resize is a new one); else the host.
        let key = format!(
            "{}|{}|{}|{}|{}|{}{}",
            self.cpu_model,
            self.logical_cores,
            (self.ram_total_mb as f64 / 1000.0).round(),
            gpus.join(","),
            self.os,
            host,
            chosen
                .as_deref()
                .map_or_else(String::new, |l| format!("|{l}"))
        );
        let id = hex::encode(&Sha256::digest(key.as_bytes())[..8]);
        let label = chosen.unwrap_or(if host.is_empty() { id.clone() } else { host });
        MachineIdentity { id, label }
    }
}

/// Threads for decoding by default: the physical core count (as llama-bench does), at least 1.
pub fn default_threads() -> u32 {
    System::physical_core_count(&System::new())
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .map_or(1, |n| n.max(1) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_reads_this_machine() {
        let e = Environment::capture("1.2.3", Some("abc"), &["CPU"]);
        assert_eq!(e.edgebench_version, "1.2.3");
        assert!(e.logical_cores >= 1);
        assert!(e.ram_total_mb > 0);
        let hw = e.hardware.unwrap();
        assert_eq!(hw.backends_built, ["CPU"]);
        assert_eq!(hw.cpu.logical_cores, e.logical_cores);
        assert!(default_threads() >= 1);
        let m = Environment::capture("1.2.3", None, &["CPU"]).machine();
        assert_eq!(m.id.len(), 16);
        assert_eq!(
            m,
            e_again().machine(),
            "the same machine, the same identity"
        );
        assert!(!m.label.is_empty());
    }

    fn e_again() -> Environment {
        Environment::capture("9.9.9", None, &["CPU"])
    }
}
