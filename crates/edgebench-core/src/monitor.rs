//! The resource monitor: samples the serving process's memory, the machine's CPU and, where the
//! platform exposes them, GPU use, VRAM, temperature and energy, in the background; power is
//! summarised from the energy samples.

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

use crate::clock::Clock;

/// One sample.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub t_ns: u64,
    /// Resident memory of the watched process, MB (10^6 bytes).
    pub rss_mb: Option<f64>,
    /// System-wide CPU use, percent of all cores, since the previous CPU reading (at least
    /// sysinfo's `MINIMUM_CPU_UPDATE_INTERVAL` earlier; shorter sampling intervals repeat it).
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
    /// Energy since the monitor started, joules (RAPL and/or NVML). Power is not stored per
    /// sample: [`summarize`] derives it from this counter and the sample times.
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
    /// Mean power over the sampled span, watts: the energy over the span / its duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_power_w: Option<f64>,
    /// Highest power between two successive samples, watts (their energy difference / the time
    /// between them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_power_w: Option<f64>,
    /// Energy per output token, joules (set by the runner, which knows the token count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joules_per_output_token: Option<f64>,
    /// Where energy comes from ("RAPL", "NVML"), or why it is not measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy_source: Option<String>,
    /// The sampler's own CPU time as a percent of one core over its lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampler_cpu_percent_of_core: Option<f64>,
    /// Other processes' CPU, steal time and throttling during the measured requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interference: Option<crate::hw::interference::Interference>,
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
        mean_power_w: mean_power_w(samples),
        max_power_w: max_of(energy_pairs(samples).filter_map(|(a, b)| power_between(a, b))),
        ..MonitorSummary::default()
    }
}

/// Successive samples that both carry energy, as (earlier, later).
fn energy_pairs(samples: &[Sample]) -> impl Iterator<Item = ((u64, f64), (u64, f64))> + '_ {
    let with_energy = || {
        samples
            .iter()
            .filter_map(|s| s.energy_j.map(|e| (s.t_ns, e)))
    };
    with_energy().zip(with_energy().skip(1))
}

/// Watts between two (time ns, energy J) points; `None` when no time passed or the counter went
/// backwards.
fn power_between(a: (u64, f64), b: (u64, f64)) -> Option<f64> {
    let dt_s = b.0.checked_sub(a.0).filter(|&d| d > 0)? as f64 / 1e9;
    let de_j = b.1 - a.1;
    (de_j >= 0.0 && de_j.is_finite()).then(|| de_j / dt_s)
}

/// Energy over the span of the energy-carrying samples / the span's duration, watts.
fn mean_power_w(samples: &[Sample]) -> Option<f64> {
    let mut e = samples
        .iter()
        .filter_map(|s| s.energy_j.map(|e| (s.t_ns, e)));
    let first = e.next()?;
    power_between(first, e.next_back()?)
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

/// Resident memory of a process in MB, read now: for another process (a server), the sum over
/// it and its descendants, since Ollama, vLLM and LM Studio hold the model in child processes;
/// for edgebench itself, its own memory only (its children are sandboxed eval programs).
pub fn rss_mb(pid: u32) -> Option<f64> {
    tree_rss_mb(pid).or_else(|| process_rss_mb(pid))
}

/// RSS of the one process `pid` (not its children), MB, through sysinfo.
fn process_rss_mb(pid: u32) -> Option<f64> {
    let mut sys = System::new();
    let p = Pid::from_u32(pid);
    sys.refresh_processes_specifics(
        ProcessesToUpdate::Some(&[p]),
        true,
        ProcessRefreshKind::nothing().with_memory(),
    );
    sys.process(p).map(|pr| pr.memory() as f64 / 1e6)
}

/// Linux: RSS (`VmRSS` of `/proc/PID/status`) of `pid` plus all its descendants (found through
/// `/proc/PID/task/*/children`), MB; `None` for edgebench's own process, or where `/proc` does
/// not tell (then the caller reads the one process through sysinfo).
fn tree_rss_mb(pid: u32) -> Option<f64> {
    if pid == std::process::id() {
        return None;
    }
    let vm_rss_kb = |p: u32| -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{p}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    let root_kb = vm_rss_kb(pid)?;
    let rest: u64 = process_tree(pid)
        .into_iter()
        .skip(1)
        .map(|p| vm_rss_kb(p).unwrap_or(0))
        .sum();
    Some((root_kb + rest) as f64 * 1024.0 / 1e6)
}

/// A process and its descendants (Linux: the `children` lists under `/proc/<pid>/task`), the
/// process first; at most 4,096.
pub fn process_tree(pid: u32) -> Vec<u32> {
    let mut seen = vec![pid];
    let mut stack = vec![pid];
    while let Some(p) = stack.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let Ok(children) = std::fs::read_to_string(t.path().join("children")) else {
                continue;
            };
            for c in children
                .split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok())
            {
                if seen.len() < 4096 && !seen.contains(&c) {
                    seen.push(c);
                    stack.push(c);
                }
            }
        }
    }
    seen
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

/// Takes samples. sysinfo computes CPU use between two refreshes, which must be at least
/// `MINIMUM_CPU_UPDATE_INTERVAL` apart to mean anything: the baseline refresh happens when the
/// sampler is made, the first sample must wait that long after it, and with a shorter sampling
/// interval a sample repeats the last CPU reading until the next refresh is due.
struct Sampler {
    sys: System,
    pid: Option<Pid>,
    sensors: crate::hw::sensors::Sensors,
    clock: Clock,
    cpu_refreshed: Instant,
    cpu_percent: f32,
}

impl Sampler {
    fn new(pid: Option<Pid>, sensors: crate::hw::sensors::Sensors, clock: Clock) -> Self {
        let mut sys = System::new();
        sys.refresh_cpu_usage();
        Self {
            sys,
            pid,
            sensors,
            clock,
            cpu_refreshed: Instant::now(),
            cpu_percent: 0.0,
        }
    }

    /// Whether enough time has passed since the last CPU refresh for a new reading.
    fn cpu_due(&self) -> bool {
        self.cpu_refreshed.elapsed() >= sysinfo::MINIMUM_CPU_UPDATE_INTERVAL
    }

    fn take(&mut self) -> Sample {
        let sys = &mut self.sys;
        let rss = self.pid.and_then(|p| {
            if let Some(t) = tree_rss_mb(p.as_u32()) {
                return Some(t);
            }
            sys.refresh_processes_specifics(
                ProcessesToUpdate::Some(&[p]),
                true,
                ProcessRefreshKind::nothing().with_memory(),
            );
            sys.process(p).map(|pr| pr.memory() as f64 / 1e6)
        });
        if self.cpu_due() {
            self.sys.refresh_cpu_usage();
            self.cpu_refreshed = Instant::now();
            self.cpu_percent = self.sys.global_cpu_usage();
        }
        let r = self.sensors.read();
        Sample {
            t_ns: self.clock.now_ns(),
            rss_mb: rss,
            cpu_percent: self.cpu_percent,
            gpu_util_percent: r.gpu_util_percent,
            vram_mb: r.vram_used_mb,
            temp_c: r.temp_c,
            energy_j: r.energy_j,
        }
    }
}

fn push(samples: &Mutex<Vec<Sample>>, s: Sample) {
    if let Ok(mut v) = samples.lock() {
        v.push(s);
    }
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
                let pid = pid.map(Pid::from_u32);
                let sensors = crate::hw::sensors::Sensors::open();
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
                let mut sampler = Sampler::new(pid, sensors, clock);
                let mut first = true;
                loop {
                    // The first sample waits for a CPU reading (see `Sampler`).
                    let wait = if first {
                        interval.max(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL)
                    } else {
                        interval
                    };
                    // Sleep in short steps so stop() returns quickly.
                    let t = Instant::now();
                    while t.elapsed() < wait {
                        if s2.load(Ordering::Relaxed) {
                            // A last sample covers the tail of the span (energy, memory), when
                            // the CPU reading can be refreshed for it.
                            if sampler.cpu_due() {
                                push(&v2, sampler.take());
                            }
                            return cost(cpu0);
                        }
                        std::thread::sleep(
                            wait.saturating_sub(t.elapsed())
                                .min(Duration::from_millis(20)),
                        );
                    }
                    push(&v2, sampler.take());
                    first = false;
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
        let clock = Clock::new();
        let m = Monitor::start(Some(std::process::id()), Duration::from_millis(10), clock);
        std::thread::sleep(Duration::from_millis(300));
        let (s, cost) = m.finish();
        assert!(s.len() >= 2, "{} samples", s.len());
        // The first CPU reading spans at least sysinfo's minimum interval after the baseline.
        let min_ns = sysinfo::MINIMUM_CPU_UPDATE_INTERVAL.as_nanos() as u64;
        assert!(s[0].t_ns >= min_ns, "first sample at {} ns", s[0].t_ns);
        assert!(cost.wall_ns >= 250_000_000, "{cost:?}");
        assert!(cost.percent_of_core().is_some());
        assert!(!cost.energy_source.is_empty());
        let sum = summarize(&s);
        assert!(sum.peak_rss_mb.unwrap() > 1.0);
        assert!(s.windows(2).all(|w| w[0].t_ns <= w[1].t_ns));
    }

    #[test]
    fn a_stop_before_the_first_cpu_reading_leaves_no_sample() {
        let m = Monitor::start(None, Duration::from_millis(500), Clock::new());
        std::thread::sleep(Duration::from_millis(20));
        assert!(m.stop().is_empty());
    }

    #[test]
    fn the_sampler_costs_under_one_percent_of_a_core_at_500_ms() {
        // The production interval, watching this (multi-threaded) test process, for 3 s; the
        // cost is the sampler thread's own CPU clock over its wall time, start-up included.
        let m = Monitor::start(
            Some(std::process::id()),
            Duration::from_millis(500),
            Clock::new(),
        );
        std::thread::sleep(Duration::from_millis(3000));
        let (s, cost) = m.finish();
        assert!(s.len() >= 5, "{} samples", s.len());
        let pct = cost.percent_of_core().unwrap();
        eprintln!("sampler cost: {pct:.4}% of a core over {} samples", s.len());
        assert!(pct < 1.0, "sampler used {pct:.3}% of a core: {cost:?}");
    }

    #[test]
    fn power_comes_from_energy_over_time() {
        let at = |t_s: f64, e: Option<f64>| Sample {
            t_ns: (t_s * 1e9) as u64,
            energy_j: e,
            ..Sample::default()
        };
        // 10 W for 1 s, 30 W for 0.5 s, then a sample without energy, then 10 W for 0.5 s.
        let s = [
            at(0.0, Some(100.0)),
            at(1.0, Some(110.0)),
            at(1.5, Some(125.0)),
            at(1.75, None),
            at(2.0, Some(130.0)),
        ];
        let m = summarize(&s);
        assert_eq!(m.energy_j, Some(30.0));
        assert_eq!(m.mean_power_w, Some(15.0));
        assert_eq!(m.max_power_w, Some(30.0));
        // One sample: energy but no span; none: nothing.
        let one = summarize(&s[..1]);
        assert_eq!(
            (one.energy_j, one.mean_power_w, one.max_power_w),
            (Some(0.0), None, None)
        );
        assert_eq!(summarize(&[]).mean_power_w, None);
        // Same instant twice: no division by zero.
        assert_eq!(
            summarize(&[at(1.0, Some(1.0)), at(1.0, Some(2.0))]).max_power_w,
            None
        );
        // Old summaries without the power fields still read.
        let old: MonitorSummary = serde_json::from_str(
            r#"{"samples":3,"peak_rss_mb":1.0,"mean_cpu_percent":2.0,"max_cpu_percent":3.0,"energy_j":4.0}"#,
        )
        .unwrap();
        assert_eq!((old.energy_j, old.mean_power_w), (Some(4.0), None));
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

    #[cfg(target_os = "linux")]
    #[test]
    fn a_servers_memory_includes_its_child_processes() {
        // A parent shell whose child holds ~64 MB: the tree's RSS includes the child's.
        let mut parent = std::process::Command::new("sh")
            .arg("-c")
            .arg("python3 -c 'import time; b = bytearray(64 * 1024 * 1024); b[::4096] = b\"x\" * len(b[::4096]); time.sleep(30)' & wait")
            .spawn()
            .unwrap();
        let pid = parent.id();
        let mut tree = 0.0;
        for _ in 0..100 {
            std::thread::sleep(Duration::from_millis(50));
            tree = rss_mb(pid).unwrap_or(0.0);
            if tree > 60.0 {
                break;
            }
        }
        let own = process_rss_mb(pid).unwrap_or(0.0);
        let _ = std::process::Command::new("pkill")
            .args(["-P", &pid.to_string()])
            .status();
        let _ = parent.kill();
        let _ = parent.wait();
        assert!(own < 20.0, "the shell alone holds {own} MB");
        assert!(tree > 60.0, "the tree holds {tree} MB");
    }
}
