//! GPU detection: NVML for NVIDIA, `rocm-smi` for AMD, `xpu-smi` for Intel, sysfs DRM for any
//! vendor on Linux,
//! `system_profiler` on macOS; each probe says what it found or why it found nothing.

use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};

use super::detect::backend_for_vendor;

/// One GPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuInfo {
    /// "NVIDIA", "AMD", "Intel", "Apple" or the PCI vendor id.
    pub vendor: String,
    pub model: String,
    pub vram_mb: Option<u64>,
    pub driver: Option<String>,
    /// The llama.cpp backend for it (CUDA, ROCm/HIP, SYCL, Metal, Vulkan).
    pub backend: String,
    /// Which probe found it.
    pub source: String,
}

/// One detection attempt and its outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    pub source: String,
    pub detected: bool,
    /// What was found, or why nothing was ("not detected: ...").
    pub detail: String,
}

impl Probe {
    fn found(source: &str, n: usize) -> Self {
        Self {
            source: source.to_string(),
            detected: true,
            detail: format!("{n} GPU(s)"),
        }
    }
    fn none(source: &str, reason: impl Into<String>) -> Self {
        Self {
            source: source.to_string(),
            detected: false,
            detail: format!("not detected: {}", reason.into()),
        }
    }
}

/// Runs every probe that applies to this OS; GPUs found by a vendor tool win over sysfs.
pub fn detect_all(root: &Path) -> (Vec<GpuInfo>, Vec<Probe>) {
    let mut gpus = Vec::new();
    let mut probes = Vec::new();
    if cfg!(target_os = "macos") {
        let (g, p) = mac_gpus();
        gpus.extend(g);
        probes.push(p);
        return (gpus, probes);
    }
    let (g, p) = nvml_gpus();
    gpus.extend(g);
    probes.push(p);
    let (g, p) = rocm_gpus();
    gpus.extend(g);
    probes.push(p);
    let (g, p) = xpu_gpus();
    gpus.extend(g);
    probes.push(p);
    let (sysfs, p) = sysfs_gpus(root);
    probes.push(p);
    for g in sysfs {
        if !gpus.iter().any(|k| k.vendor == g.vendor) {
            gpus.push(g);
        }
    }
    (gpus, probes)
}

/// NVIDIA GPUs through NVML (the driver's library, loaded at run time).
pub fn nvml_gpus() -> (Vec<GpuInfo>, Probe) {
    let nvml = match nvml_wrapper::Nvml::init() {
        Ok(n) => n,
        Err(e) => return (Vec::new(), Probe::none("NVML", e.to_string())),
    };
    let driver = nvml.sys_driver_version().ok();
    let count = nvml.device_count().unwrap_or(0);
    let gpus: Vec<GpuInfo> = (0..count)
        .filter_map(|i| nvml.device_by_index(i).ok())
        .map(|d| GpuInfo {
            vendor: "NVIDIA".into(),
            model: d.name().unwrap_or_else(|_| "NVIDIA GPU".into()),
            vram_mb: d.memory_info().ok().map(|m| m.total / 1_000_000),
            driver: driver.clone(),
            backend: "CUDA".into(),
            source: "NVML".into(),
        })
        .collect();
    let probe = if gpus.is_empty() {
        Probe::none("NVML", "the driver reports no devices")
    } else {
        Probe::found("NVML", gpus.len())
    };
    (gpus, probe)
}

/// AMD GPUs through `rocm-smi --json`.
pub fn rocm_gpus() -> (Vec<GpuInfo>, Probe) {
    tool_gpus(
        "rocm-smi",
        &["--showproductname", "--showmeminfo", "vram", "--json"],
        parse_rocm_smi,
        "no cards in its output",
    )
}

/// Runs a vendor tool and parses what it prints; a probe that says why nothing was found (not
/// on PATH, a failed run, or `empty` when its output lists no GPU).
fn tool_gpus(
    tool: &str,
    args: &[&str],
    parse: fn(&str) -> Vec<GpuInfo>,
    empty: &str,
) -> (Vec<GpuInfo>, Probe) {
    let out = match Command::new(tool).args(args).output() {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            return (
                Vec::new(),
                Probe::none(tool, format!("{tool} exited with {}", o.status)),
            )
        }
        Err(_) => return (Vec::new(), Probe::none(tool, format!("{tool} not on PATH"))),
    };
    let gpus = parse(&String::from_utf8_lossy(&out.stdout));
    let probe = if gpus.is_empty() {
        Probe::none(tool, empty)
    } else {
        Probe::found(tool, gpus.len())
    };
    (gpus, probe)
}

/// Parses `rocm-smi --showproductname --showmeminfo vram --json`.
pub fn parse_rocm_smi(json: &str) -> Vec<GpuInfo> {
    let Ok(serde_json::Value::Object(cards)) = serde_json::from_str::<serde_json::Value>(json)
    else {
        return Vec::new();
    };
    cards
        .iter()
        .filter(|(k, _)| k.starts_with("card"))
        .map(|(_, v)| {
            let field = |name: &str| v.get(name).and_then(|x| x.as_str()).map(str::to_string);
            GpuInfo {
                vendor: "AMD".into(),
                model: field("Card Series")
                    .or_else(|| field("Card series"))
                    .or_else(|| field("Card model"))
                    .unwrap_or_else(|| "AMD GPU".into()),
                vram_mb: field("VRAM Total Memory (B)")
                    .and_then(|b| b.trim().parse::<u64>().ok())
                    .map(|b| b / 1_000_000),
                driver: field("Driver version"),
                backend: "ROCm/HIP".into(),
                source: "rocm-smi".into(),
            }
        })
        .collect()
}

/// Intel GPUs through `xpu-smi discovery -j`.
pub fn xpu_gpus() -> (Vec<GpuInfo>, Probe) {
    tool_gpus(
        "xpu-smi",
        &["discovery", "-j"],
        parse_xpu_smi,
        "no devices in its output",
    )
}

/// Parses `xpu-smi discovery -j`: a `device_list` of devices with `device_name`, and the
/// memory size (`memory_physical_size_byte`, a number or a string) where the tool gives it.
pub fn parse_xpu_smi(json: &str) -> Vec<GpuInfo> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(json) else {
        return Vec::new();
    };
    let Some(list) = v.get("device_list").and_then(|l| l.as_array()) else {
        return Vec::new();
    };
    list.iter()
        .filter(|d| {
            d.get("device_type")
                .and_then(|t| t.as_str())
                .is_none_or(|t| t.eq_ignore_ascii_case("gpu"))
        })
        .map(|d| {
            let bytes = d.get("memory_physical_size_byte").and_then(|b| {
                b.as_u64()
                    .or_else(|| b.as_str().and_then(|s| s.trim().parse().ok()))
            });
            GpuInfo {
                vendor: "Intel".into(),
                model: d
                    .get("device_name")
                    .and_then(|n| n.as_str())
                    .unwrap_or("Intel GPU")
                    .to_string(),
                vram_mb: bytes.map(|b| b / 1_000_000),
                driver: d
                    .get("driver_version")
                    .and_then(|n| n.as_str())
                    .map(str::to_string),
                backend: "SYCL".into(),
                source: "xpu-smi".into(),
            }
        })
        .collect()
}

fn vendor_name(pci_id: &str) -> String {
    match pci_id.trim().to_ascii_lowercase().as_str() {
        "0x10de" => "NVIDIA".into(),
        "0x1002" => "AMD".into(),
        "0x8086" => "Intel".into(),
        other => other.to_string(),
    }
}

/// Display devices in sysfs DRM under `root` (`/sys/class/drm/card*/device`): vendor, driver,
/// and VRAM where the driver exposes it (amdgpu `mem_info_vram_total`, Intel `lmem_total_bytes`).
pub fn sysfs_gpus(root: &Path) -> (Vec<GpuInfo>, Probe) {
    let drm = root.join("sys/class/drm");
    let Ok(entries) = std::fs::read_dir(&drm) else {
        return (
            Vec::new(),
            Probe::none("sysfs", format!("no {}", drm.display())),
        );
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("card") && !n.contains('-'))
        .collect();
    names.sort();
    let mut gpus = Vec::new();
    for name in names {
        let dev = drm.join(&name).join("device");
        let Ok(vendor_id) = std::fs::read_to_string(dev.join("vendor")) else {
            continue;
        };
        let vendor = vendor_name(&vendor_id);
        let read_u64 = |f: &str| {
            std::fs::read_to_string(dev.join(f))
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
        };
        let driver = std::fs::read_link(dev.join("driver"))
            .ok()
            .and_then(|p| p.file_name().map(|f| f.to_string_lossy().to_string()));
        let device_id = std::fs::read_to_string(dev.join("device"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        gpus.push(GpuInfo {
            backend: backend_for_vendor(&vendor).to_string(),
            model: format!("{vendor} {device_id}").trim().to_string(),
            vendor,
            vram_mb: read_u64("mem_info_vram_total")
                .or_else(|| read_u64("lmem_total_bytes"))
                .map(|b| b / 1_000_000),
            driver,
            source: "sysfs".into(),
        });
    }
    let probe = if gpus.is_empty() {
        Probe::none("sysfs", "no display devices under /sys/class/drm")
    } else {
        Probe::found("sysfs", gpus.len())
    };
    (gpus, probe)
}

/// GPUs on macOS (`system_profiler SPDisplaysDataType -json`).
fn mac_gpus() -> (Vec<GpuInfo>, Probe) {
    tool_gpus(
        "system_profiler",
        &["SPDisplaysDataType", "-json"],
        parse_system_profiler,
        "no displays in its output",
    )
}

/// Parses `system_profiler SPDisplaysDataType -json`.
pub fn parse_system_profiler(json: &str) -> Vec<GpuInfo> {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    let Some(list) = v.get("SPDisplaysDataType").and_then(|l| l.as_array()) else {
        return Vec::new();
    };
    list.iter()
        .map(|g| {
            let s = |k: &str| g.get(k).and_then(|x| x.as_str()).map(str::to_string);
            let vendor_raw = s("spdisplays_vendor").unwrap_or_default();
            let vendor = if vendor_raw.contains("pple") {
                "Apple"
            } else if vendor_raw.contains("AMD") || vendor_raw.contains("ATI") {
                "AMD"
            } else if vendor_raw.contains("ntel") {
                "Intel"
            } else if vendor_raw.contains("NVIDIA") {
                "NVIDIA"
            } else {
                "Apple"
            };
            // Discrete cards report "8 GB"; Apple Silicon shares system memory.
            let vram_mb = s("spdisplays_vram")
                .or_else(|| s("_spdisplays_vram"))
                .and_then(|t| {
                    let mut it = t.split_whitespace();
                    let n: f64 = it.next()?.parse().ok()?;
                    match it.next()? {
                        "GB" => Some((n * 1000.0) as u64),
                        "MB" => Some(n as u64),
                        _ => None,
                    }
                });
            GpuInfo {
                vendor: vendor.to_string(),
                model: s("sppci_model").unwrap_or_else(|| "GPU".into()),
                vram_mb,
                driver: s("spdisplays_mtlgpufamilysupport"),
                backend: "Metal".into(),
                source: "system_profiler".into(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysfs_finds_an_amd_card_with_vram_and_skips_connectors() {
        let root = tempfile::tempdir().unwrap();
        let drm = root.path().join("sys/class/drm");
        let dev = drm.join("card0/device");
        std::fs::create_dir_all(&dev).unwrap();
        std::fs::create_dir_all(drm.join("card0-DP-1")).unwrap();
        std::fs::write(dev.join("vendor"), "0x1002\n").unwrap();
        std::fs::write(dev.join("device"), "0x744c\n").unwrap();
        std::fs::write(dev.join("mem_info_vram_total"), "25753026560\n").unwrap();
        let (g, p) = sysfs_gpus(root.path());
        assert!(p.detected);
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].vendor, "AMD");
        assert_eq!(g[0].backend, "ROCm/HIP");
        assert_eq!(g[0].vram_mb, Some(25_753));
        let empty = tempfile::tempdir().unwrap();
        let (g, p) = sysfs_gpus(empty.path());
        assert!(g.is_empty() && !p.detected);
        assert!(p.detail.starts_with("not detected: no "), "{}", p.detail);
    }

    #[test]
    fn parses_rocm_smi_and_system_profiler() {
        let rocm = r#"{"card0": {"Card Series": "Radeon RX 7900 XTX", "VRAM Total Memory (B)": "25753026560"}, "system": {}}"#;
        let g = parse_rocm_smi(rocm);
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].model, "Radeon RX 7900 XTX");
        assert_eq!(g[0].vram_mb, Some(25_753));
        assert!(parse_rocm_smi("not json").is_empty());
        let xpu = r#"{"device_list": [
            {"device_id": 0, "device_name": "Intel(R) Data Center GPU Max 1550", "device_type": "GPU",
             "memory_physical_size_byte": "68719476736", "driver_version": "1.3.27191"},
            {"device_id": 1, "device_name": "Intel(R) Arc(TM) A770 Graphics",
             "memory_physical_size_byte": 17179869184}]}"#;
        let g = parse_xpu_smi(xpu);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].model, "Intel(R) Data Center GPU Max 1550");
        assert_eq!(g[0].vram_mb, Some(68_719));
        assert_eq!(g[0].driver.as_deref(), Some("1.3.27191"));
        assert_eq!(
            (g[1].backend.as_str(), g[1].vram_mb),
            ("SYCL", Some(17_179))
        );
        assert!(parse_xpu_smi(r#"{"device_list": []}"#).is_empty());
        assert!(parse_xpu_smi("garbage").is_empty());
        let mac = r#"{"SPDisplaysDataType": [{"sppci_model": "Apple M2 Pro", "spdisplays_vendor": "sppci_vendor_Apple"}]}"#;
        let g = parse_system_profiler(mac);
        assert_eq!(g.len(), 1);
        assert_eq!(
            (g[0].vendor.as_str(), g[0].backend.as_str()),
            ("Apple", "Metal")
        );
        assert_eq!(g[0].vram_mb, None);
    }

    #[test]
    fn nvml_absent_is_a_reason_not_an_error() {
        // On machines without the NVIDIA driver this reports why; with it, the devices.
        let (g, p) = nvml_gpus();
        assert_eq!(p.detected, !g.is_empty());
        assert!(!p.detail.is_empty());
    }
}
