//! The resource monitor: samples the serving process's memory, the machine's CPU and, where the
//! platform exposes them, GPU use, VRAM, temperature and energy, in the background.

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

use crate::clock::Clock;

/// One sample.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub t_ns: u64,
    /// Resident memory of the watched process, MB (10^6 bytes).
    pub rss_mb: Option<f64>,
    /// System-wide CPU use, percent of all cores.
    pub cpu_percent: f32,
    /// GPU utilisation, percent (highest GPU).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_util_percent: Option<f64>,
    /// VRAM in use, MB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vram_mb: Option<f64>,
    /// Highest CPU/GPU temperature, degrees C.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temp_c: Option<f64>,
    /// Energy since the monitor started, joules (RAPL and/or NVML).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy_j: Option<f64>,
}

/// Peak and mean figures over a set of samples.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MonitorSummary {
    pub samples: usize,
    pub peak_rss_mb: Option<f64>,
    pub mean_cpu_percent: Option<f64>,
    pub max_cpu_percent: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_vram_mb: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_gpu_util_percent: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_temp_c: Option<f64>,
    /// Energy over the sampled span, joules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy_j: Option<f64>,
    /// Energy per output token, joules (set by the runner, which knows the token count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joules_per_output_token: Option<f64>,
    /// Where energy comes from ("RAPL", "NVML"), or why it is not measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy_source: Option<String>,
    /// The sampler's own CPU time as a percent of one core over its lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampler_cpu_percent_of_core: Option<f64>,
}

fn max_of(xs: impl Iterator<Item = f64>) -> Option<f64> {
    xs.reduce(f64::max)
}

/// Summarises samples.
pub fn summarize(samples: &[Sample]) -> MonitorSummary {
    let rss = samples
        .iter()
        .filter_map(|s| s.rss_mb)
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    let cpu: Vec<f64> = samples.iter().map(|s| f64::from(s.cpu_percent)).collect();
    MonitorSummary {
        samples: samples.len(),
        peak_rss_mb: rss,
        mean_cpu_percent: (!cpu.is_empty()).then(|| cpu.iter().sum::<f64>() / cpu.len() as f64),
        max_cpu_percent: cpu.iter().copied().reduce(f64::max),
        peak_vram_mb: max_of(samples.iter().filter_map(|s| s.vram_mb)),
        max_gpu_util_percent: max_of(samples.iter().filter_map(|s| s.gpu_util_percent)),
        max_temp_c: max_of(samples.iter().filter_map(|s| s.temp_c)),
        // Energy is cumulative from the monitor's start: the span is last minus first.
        energy_j: {
            let mut e = samples.iter().filter_map(|s| s.energy_j);
            let first = e.next();
            first.map(|f| e.next_back().map_or(0.0, |l| l - f))
        },
        ..MonitorSummary::default()
    }
}

/// Energy per output token, joules.
pub fn joules_per_token(energy_j: Option<f64>, output_tokens: u64) -> Option<f64> {
    energy_j
        .filter(|_| output_tokens > 0)
        .map(|e| e / output_tokens as f64)
}

/// CPU time this thread has used, nanoseconds.
fn thread_cpu_ns() -> Option<u64> {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .ok()
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
}

/// Resident memory of a process in MB, read now.
pub fn rss_mb(pid: u32) -> Option<f64> {
    let mut sys = System::new();
    let p = Pid::from_u32(pid);
    sys.refresh_processes_specifics(
        ProcessesToUpdate::Some(&[p]),
        true,
        ProcessRefreshKind::nothing().with_memory(),
    );
    sys.process(p).map(|pr| pr.memory() as f64 / 1e6)
}

/// The process listening on a TCP port on this machine (Linux: `/proc/net/tcp*` and the
/// processes' socket descriptors), when it can be found and read.
pub fn pid_listening_on(port: u16) -> Option<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address is HEX_IP:HEX_PORT; state 0A is LISTEN; inode is field 9.
            let listening = f.get(3) == Some(&"0A");
            let local_port = f
                .get(1)
                .and_then(|a| a.rsplit_once(':'))
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            if listening && local_port == Some(port) {
                if let Some(inode) = f.get(9) {
                    inodes.push(format!("socket:[{inode}]"));
                }
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    for proc_entry in std::fs::read_dir("/proc").ok()?.filter_map(Result::ok) {
        let Some(pid) = proc_entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(proc_entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.filter_map(Result::ok) {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                if inodes.iter().any(|i| target.as_os_str() == i.as_str()) {
                    return Some(pid);
                }
            }
        }
    }
    None
}

/// A running sampler; [`Monitor::stop`] ends it and returns its samples.
pub struct Monitor {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    handle: Option<JoinHandle<SamplerCost>>,
}

/// What the sampler itself cost and what it could measure.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SamplerCost {
    pub cpu_ns: u64,
    pub wall_ns: u64,
    /// "RAPL", "NVML", "RAPL+NVML", or "not measured: <why>".
    pub energy_source: String,
}

impl SamplerCost {
    /// The sampler's CPU time as a percent of one core.
    pub fn percent_of_core(&self) -> Option<f64> {
        (self.wall_ns > 0).then(|| self.cpu_ns as f64 / self.wall_ns as f64 * 100.0)
    }
}

impl Monitor {
    /// Starts sampling `pid` (or only the CPU when `None`) every `interval`, from now.
    pub fn start(pid: Option<u32>, interval: Duration, clock: Clock) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (s2, v2) = (stop.clone(), samples.clone());
        let handle = std::thread::Builder::new()
            .name("edgebench-monitor".into())
            .spawn(move || {
                let started = std::time::Instant::now();
                let cpu0 = thread_cpu_ns();
                let mut sys = System::new();
                let pid = pid.map(Pid::from_u32);
                let mut sensors = crate::hw::sensors::Sensors::open();
                let energy_source = if sensors.energy_sources.is_empty() {
                    format!(
                        "not measured: {}",
                        sensors.energy_unavailable.clone().unwrap_or_default()
                    )
                } else {
                    sensors.energy_sources.join("+")
                };
                let cost = |cpu0: Option<u64>| SamplerCost {
                    cpu_ns: thread_cpu_ns()
                        .zip(cpu0)
                        .map_or(0, |(b, a)| b.saturating_sub(a)),
                    wall_ns: started.elapsed().as_nanos() as u64,
                    energy_source: energy_source.clone(),
                };
                sys.refresh_cpu_usage();
                loop {
                    let rss = pid.and_then(|p| {
                        sys.refresh_processes_specifics(
                            ProcessesToUpdate::Some(&[p]),
                            true,
                            ProcessRefreshKind::nothing().with_memory(),
                        );
                        sys.process(p).map(|pr| pr.memory() as f64 / 1e6)
                    });
                    sys.refresh_cpu_usage();
                    let r = sensors.read();
                    let sample = Sample {
                        t_ns: clock.now_ns(),
                        rss_mb: rss,
                        cpu_percent: sys.global_cpu_usage(),
                        gpu_util_percent: r.gpu_util_percent,
                        vram_mb: r.vram_used_mb,
                        temp_c: r.temp_c,
                        energy_j: r.energy_j,
                    };
                    if let Ok(mut v) = v2.lock() {
                        v.push(sample);
                    }
                    // Sleep in short steps so stop() returns quickly.
                    let mut left = interval;
                    while !left.is_zero() {
                        if s2.load(Ordering::Relaxed) {
                            return cost(cpu0);
                        }
                        let step = left.min(Duration::from_millis(20));
                        std::thread::sleep(step);
                        left -= step;
                    }
                }
            })
            .ok();
        Self {
            stop,
            samples,
            handle,
        }
    }

    /// Stops the sampler and returns every sample taken.
    pub fn stop(self) -> Vec<Sample> {
        self.finish().0
    }

    /// Stops the sampler and returns its samples and what it cost.
    pub fn finish(mut self) -> (Vec<Sample>, SamplerCost) {
        self.stop.store(true, Ordering::Relaxed);
        let cost = self
            .handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let samples = self
            .samples
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        (samples, cost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_own_process_memory() {
        let m = Monitor::start(
            Some(std::process::id()),
            Duration::from_millis(10),
            Clock::new(),
        );
        std::thread::sleep(Duration::from_millis(60));
        let (s, cost) = m.finish();
        assert!(s.len() >= 2, "{} samples", s.len());
        assert!(cost.wall_ns >= 50_000_000, "{cost:?}");
        assert!(cost.percent_of_core().is_some());
        assert!(!cost.energy_source.is_empty());
        let sum = summarize(&s);
        assert!(sum.peak_rss_mb.unwrap() > 1.0);
        assert!(s.windows(2).all(|w| w[0].t_ns <= w[1].t_ns));
    }

    #[test]
    fn finds_the_process_listening_on_a_port() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert_eq!(pid_listening_on(port), Some(std::process::id()));
        drop(l);
        assert_eq!(pid_listening_on(port), None);
    }

    #[test]
    fn summary_takes_peak_and_mean() {
        let s = [
            Sample {
                t_ns: 0,
                rss_mb: Some(10.0),
                cpu_percent: 50.0,
                energy_j: Some(1.0),
                temp_c: Some(50.0),
                ..Sample::default()
            },
            Sample {
                t_ns: 1,
                rss_mb: Some(30.0),
                cpu_percent: 100.0,
                energy_j: Some(4.5),
                vram_mb: Some(900.0),
                ..Sample::default()
            },
            Sample {
                t_ns: 2,
                rss_mb: None,
                cpu_percent: 0.0,
                energy_j: Some(7.0),
                temp_c: Some(71.0),
                ..Sample::default()
            },
        ];
        let m = summarize(&s);
        assert_eq!(m.peak_rss_mb, Some(30.0));
        assert_eq!(m.mean_cpu_percent, Some(50.0));
        assert_eq!(m.max_cpu_percent, Some(100.0));
        assert_eq!(m.energy_j, Some(6.0));
        assert_eq!(m.max_temp_c, Some(71.0));
        assert_eq!(m.peak_vram_mb, Some(900.0));
        assert_eq!(joules_per_token(m.energy_j, 12), Some(0.5));
        assert_eq!(joules_per_token(m.energy_j, 0), None);
        assert_eq!(summarize(&[]).peak_rss_mb, None);
        assert_eq!(summarize(&[]).energy_j, None);
    }
}
