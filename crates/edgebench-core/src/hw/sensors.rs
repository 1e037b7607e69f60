//! Power, energy and temperature sensors the monitor reads: RAPL and thermal zones in sysfs
//! (Linux), NVML for NVIDIA GPUs (utilisation, VRAM, temperature, power, energy).

use std::path::{Path, PathBuf};
use std::time::Instant;

/// One RAPL package domain (`/sys/class/powercap/intel-rapl:N`).
#[derive(Debug)]
struct RaplZone {
    energy: PathBuf,
    max_uj: u64,
    last_uj: u64,
}

/// A reading of every sensor that answered.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Reading {
    /// Energy since the sensors were opened, joules (RAPL packages plus NVML boards).
    pub energy_j: Option<f64>,
    /// Highest temperature among CPU thermal zones and GPUs, degrees C.
    pub temp_c: Option<f64>,
    /// GPU utilisation, percent (highest GPU).
    pub gpu_util_percent: Option<f64>,
    /// VRAM in use, MB (all GPUs).
    pub vram_used_mb: Option<f64>,
    /// Power draw, watts: RAPL packages (energy since the previous reading / the time between
    /// the readings) plus NVML boards (their power reading).
    pub power_w: Option<f64>,
}

/// Open sensors; [`Sensors::read`] samples them all.
pub struct Sensors {
    rapl: Vec<RaplZone>,
    rapl_total_uj: u128,
    /// When the RAPL counters were last read (the start of the next power interval).
    rapl_read_at: Instant,
    thermal: Vec<PathBuf>,
    nvml: Option<nvml_wrapper::Nvml>,
    nvml_start_mj: Vec<Option<u64>>,
    /// Boards without an energy counter (before Volta): energy integrated from their power
    /// readings, millijoules, and when each was last read.
    nvml_integrated_mj: Vec<(f64, Option<Instant>)>,
    /// Which energy sources are counted ("RAPL", "NVML").
    pub energy_sources: Vec<String>,
    /// Why energy is not measured, when it is not.
    pub energy_unavailable: Option<String>,
}

fn read_u64(p: &Path) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// Mean power, watts, of `delta_uj` microjoules over `seconds` (`None` for an empty interval).
pub fn power_from_energy(delta_uj: u128, seconds: f64) -> Option<f64> {
    (seconds > 0.0).then(|| delta_uj as f64 / 1e6 / seconds)
}

/// Energy consumed between two readings of a counter that wraps at `max`.
pub fn counter_delta(prev: u64, now: u64, max: u64) -> u64 {
    if now >= prev {
        now - prev
    } else {
        max.saturating_sub(prev) + now
    }
}

impl Sensors {
    /// Opens the sensors of this machine.
    pub fn open() -> Self {
        Self::open_at(Path::new("/"), true)
    }

    /// Opens sysfs sensors under `root` (a fake tree in tests), and NVML when `use_nvml`.
    pub fn open_at(root: &Path, use_nvml: bool) -> Self {
        let mut rapl = Vec::new();
        let powercap = root.join("sys/class/powercap");
        let mut rapl_reason = format!("no RAPL counters under {}", powercap.display());
        if let Ok(entries) = std::fs::read_dir(&powercap) {
            let mut names: Vec<String> = entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().to_string())
                // Top-level package domains only (intel-rapl:0), not subzones (intel-rapl:0:1).
                .filter(|n| {
                    n.strip_prefix("intel-rapl:")
                        .is_some_and(|r| !r.contains(':'))
                })
                .collect();
            names.sort();
            for n in names {
                let dir = powercap.join(&n);
                let energy = dir.join("energy_uj");
                match read_u64(&energy) {
                    Some(now) => rapl.push(RaplZone {
                        max_uj: read_u64(&dir.join("max_energy_range_uj")).unwrap_or(u64::MAX),
                        energy,
                        last_uj: now,
                    }),
                    None => {
                        rapl_reason = format!(
                            "{} is not readable (RAPL needs root on recent kernels)",
                            energy.display()
                        )
                    }
                }
            }
        }
        let mut thermal = Vec::new();
        if let Ok(entries) = std::fs::read_dir(root.join("sys/class/thermal")) {
            for e in entries.filter_map(Result::ok) {
                let p = e.path().join("temp");
                if e.file_name().to_string_lossy().starts_with("thermal_zone")
                    && read_u64(&p).is_some()
                {
                    thermal.push(p);
                }
            }
        }
        let nvml = if use_nvml {
            nvml_wrapper::Nvml::init().ok()
        } else {
            None
        };
        let nvml_start_mj: Vec<Option<u64>> = nvml
            .as_ref()
            .map(|n| {
                (0..n.device_count().unwrap_or(0))
                    .map(|i| {
                        n.device_by_index(i)
                            .ok()
                            .and_then(|d| d.total_energy_consumption().ok())
                    })
                    .collect()
            })
            .unwrap_or_default();
        let nvml_integrated_mj = vec![(0.0, None); nvml_start_mj.len()];
        let mut energy_sources = Vec::new();
        if !rapl.is_empty() {
            energy_sources.push("RAPL".to_string());
        }
        if nvml.is_some() {
            energy_sources.push("NVML".to_string());
        }
        let energy_unavailable = energy_sources
            .is_empty()
            .then(|| format!("{rapl_reason}; no NVIDIA GPU"));
        Self {
            rapl,
            rapl_total_uj: 0,
            rapl_read_at: Instant::now(),
            thermal,
            nvml,
            nvml_start_mj,
            nvml_integrated_mj,
            energy_sources,
            energy_unavailable,
        }
    }

    /// Reads every sensor.
    pub fn read(&mut self) -> Reading {
        let mut energy_j = None;
        let mut power_w = None;
        let now_at = Instant::now();
        let mut rapl_delta_uj = 0u128;
        for z in &mut self.rapl {
            if let Some(now) = read_u64(&z.energy) {
                rapl_delta_uj += u128::from(counter_delta(z.last_uj, now, z.max_uj));
                z.last_uj = now;
            }
        }
        if !self.rapl.is_empty() {
            self.rapl_total_uj += rapl_delta_uj;
            energy_j = Some(self.rapl_total_uj as f64 / 1e6);
            power_w = power_from_energy(
                rapl_delta_uj,
                now_at.duration_since(self.rapl_read_at).as_secs_f64(),
            );
            self.rapl_read_at = now_at;
        }
        let mut temp_c = self
            .thermal
            .iter()
            .filter_map(|p| read_u64(p))
            .map(|m| m as f64 / 1000.0)
            .reduce(f64::max);
        let (mut util, mut vram) = (None, None);
        if let Some(n) = &self.nvml {
            for (i, (start, integrated)) in self
                .nvml_start_mj
                .iter()
                .zip(&mut self.nvml_integrated_mj)
                .enumerate()
            {
                let Ok(d) = n.device_by_index(i as u32) else {
                    continue;
                };
                // Milliwatts, averaged by the driver over its own short window.
                let board_w = d.power_usage().ok().map(|mw| f64::from(mw) / 1e3);
                if let Some(w) = board_w {
                    *power_w.get_or_insert(0.0) += w;
                }
                match (start, d.total_energy_consumption()) {
                    (Some(s), Ok(now)) => {
                        *energy_j.get_or_insert(0.0) += now.saturating_sub(*s) as f64 / 1e3;
                    }
                    // No energy counter: integrate the power readings (rectangle rule, the
                    // current reading over the time since the previous one).
                    (None, _) => {
                        if let Some(w) = board_w {
                            if let Some(prev) = integrated.1 {
                                integrated.0 += w * now_at.duration_since(prev).as_secs_f64() * 1e3;
                            }
                            integrated.1 = Some(now_at);
                        }
                        if integrated.1.is_some() {
                            *energy_j.get_or_insert(0.0) += integrated.0 / 1e3;
                        }
                    }
                    (Some(_), Err(_)) => {}
                }
                if let Ok(u) = d.utilization_rates() {
                    util = Some(util.map_or(f64::from(u.gpu), |x: f64| x.max(f64::from(u.gpu))));
                }
                if let Ok(m) = d.memory_info() {
                    *vram.get_or_insert(0.0) += m.used as f64 / 1e6;
                }
                if let Ok(t) =
                    d.temperature(nvml_wrapper::enum_wrappers::device::TemperatureSensor::Gpu)
                {
                    temp_c = Some(temp_c.map_or(f64::from(t), |x| x.max(f64::from(t))));
                }
            }
        }
        Reading {
            energy_j,
            temp_c,
            gpu_util_percent: util,
            vram_used_mb: vram,
            power_w,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_wrap() {
        assert_eq!(counter_delta(10, 25, 100), 15);
        assert_eq!(counter_delta(90, 5, 100), 15);
    }

    #[test]
    fn power_is_energy_over_time() {
        assert_eq!(power_from_energy(5_000_000, 0.5), Some(10.0));
        assert_eq!(power_from_energy(5_000_000, 0.0), None);
    }

    #[test]
    fn rapl_and_thermal_from_a_fake_sysfs() {
        let root = tempfile::tempdir().unwrap();
        let pkg = root.path().join("sys/class/powercap/intel-rapl:0");
        let sub = root.path().join("sys/class/powercap/intel-rapl:0:0");
        let zone = root.path().join("sys/class/thermal/thermal_zone0");
        for d in [&pkg, &sub, &zone] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(pkg.join("energy_uj"), "999000000\n").unwrap();
        std::fs::write(pkg.join("max_energy_range_uj"), "1000000000\n").unwrap();
        std::fs::write(sub.join("energy_uj"), "5\n").unwrap();
        std::fs::write(zone.join("temp"), "61500\n").unwrap();
        let mut s = Sensors::open_at(root.path(), false);
        assert_eq!(s.energy_sources, ["RAPL"]);
        assert!(s.energy_unavailable.is_none());
        // The counter wraps: 999 J -> 1000 J (max) -> 2 J is 3 J.
        std::fs::write(pkg.join("energy_uj"), "2000000\n").unwrap();
        let r = s.read();
        assert_eq!(r.energy_j, Some(3.0));
        assert_eq!(r.temp_c, Some(61.5));
        // 3 J since the sensors were opened, a moment ago: a large but finite power.
        assert!(r.power_w.is_some_and(|w| w.is_finite() && w > 3.0), "{r:?}");
        std::fs::write(pkg.join("energy_uj"), "4500000\n").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let r = s.read();
        assert_eq!(r.energy_j, Some(5.5));
        // 2.5 J over at least 50 ms (the sleep): at most 50 W.
        assert!(r.power_w.is_some_and(|w| w > 0.0 && w <= 50.0), "{r:?}");
        // Nothing consumed since: no power.
        assert_eq!(s.read().power_w, Some(0.0));
    }

    #[test]
    fn no_sensors_says_why() {
        let root = tempfile::tempdir().unwrap();
        let mut s = Sensors::open_at(root.path(), false);
        let r = s.read();
        assert_eq!(r, Reading::default());
        let why = s.energy_unavailable.unwrap();
        assert!(why.contains("no RAPL counters"), "{why}");
    }
}
