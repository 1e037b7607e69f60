//! Clean state between phases: wait for the machine's CPU to settle below a threshold (or a
//! timeout) and record whether something else was busy, so reports can flag the measurement.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, System};

/// How long to wait and what counts as quiet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SettlePolicy {
    /// System CPU use (percent of all cores) below which the machine is quiet.
    pub threshold_percent: f64,
    pub timeout: Duration,
    pub poll: Duration,
}

impl Default for SettlePolicy {
    fn default() -> Self {
        Self {
            threshold_percent: 15.0,
            timeout: Duration::from_secs(10),
            poll: Duration::from_millis(250),
        }
    }
}

/// Another process that used CPU while edgebench waited.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BusyProcess {
    pub pid: u32,
    pub name: String,
    /// Percent of one core.
    pub cpu_percent: f64,
}

/// What happened before a phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettleReport {
    pub waited_ms: u64,
    /// System CPU use at the last check, percent of all cores.
    pub cpu_percent: f64,
    pub threshold_percent: f64,
    /// False when the timeout passed with the CPU still above the threshold.
    pub settled: bool,
    /// Other processes using more than half a core at the last check (busiest first).
    pub busy_processes: Vec<BusyProcess>,
}

impl SettleReport {
    /// The one-line warning a report shows when the machine was busy.
    pub fn warning(&self) -> Option<String> {
        if self.settled {
            return None;
        }
        let who = self
            .busy_processes
            .iter()
            .take(3)
            .map(|p| format!("{} ({:.0}% of a core)", p.name, p.cpu_percent))
            .collect::<Vec<_>>()
            .join(", ");
        Some(format!(
            "machine busy: CPU at {:.0}% (threshold {:.0}%) after {:.1} s{}",
            self.cpu_percent,
            self.threshold_percent,
            self.waited_ms as f64 / 1e3,
            if who.is_empty() {
                String::new()
            } else {
                format!("; {who}")
            }
        ))
    }
}

/// Decides, from successive CPU readings, whether the machine has settled (pure).
pub fn is_quiet(cpu_percent: f64, policy: &SettlePolicy) -> bool {
    cpu_percent < policy.threshold_percent
}

/// Waits until system CPU use drops below the threshold or the timeout passes.
pub fn settle(policy: &SettlePolicy) -> SettleReport {
    let t0 = Instant::now();
    let me = sysinfo::get_current_pid().ok();
    let mut sys = System::new();
    sys.refresh_cpu_usage();
    sys.refresh_processes_specifics(
        ProcessesToUpdate::All,
        true,
        ProcessRefreshKind::nothing().with_cpu(),
    );
    let poll = policy.poll.max(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL);
    loop {
        std::thread::sleep(poll);
        sys.refresh_cpu_usage();
        let cpu = f64::from(sys.global_cpu_usage());
        let quiet = is_quiet(cpu, policy);
        if quiet || t0.elapsed() >= policy.timeout {
            let busy_processes = if quiet {
                Vec::new()
            } else {
                sys.refresh_processes_specifics(
                    ProcessesToUpdate::All,
                    true,
                    ProcessRefreshKind::nothing().with_cpu(),
                );
                let mut busy: Vec<BusyProcess> = sys
                    .processes()
                    .iter()
                    .filter(|(pid, _)| Some(**pid) != me)
                    .map(|(pid, p)| BusyProcess {
                        pid: pid.as_u32(),
                        name: p.name().to_string_lossy().to_string(),
                        cpu_percent: f64::from(p.cpu_usage()),
                    })
                    .filter(|p| p.cpu_percent > 50.0)
                    .collect();
                busy.sort_by(|a, b| b.cpu_percent.total_cmp(&a.cpu_percent));
                busy
            };
            return SettleReport {
                waited_ms: t0.elapsed().as_millis() as u64,
                cpu_percent: cpu,
                threshold_percent: policy.threshold_percent,
                settled: quiet,
                busy_processes,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_below_threshold_only() {
        let p = SettlePolicy::default();
        assert!(is_quiet(3.0, &p));
        assert!(!is_quiet(15.0, &p));
    }

    #[test]
    fn a_busy_machine_is_flagged_with_the_busy_process() {
        // Two spinning threads on this machine keep the CPU above a 5% threshold.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let spinners: Vec<_> = (0..2)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        std::hint::black_box(0u64);
                    }
                })
            })
            .collect();
        let policy = SettlePolicy {
            threshold_percent: 5.0,
            timeout: Duration::from_millis(600),
            poll: Duration::from_millis(200),
        };
        let r = settle(&policy);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for s in spinners {
            s.join().unwrap();
        }
        assert!(!r.settled, "{r:?}");
        assert!(r.waited_ms >= 600);
        let w = r.warning().unwrap();
        assert!(w.starts_with("machine busy: CPU at "), "{w}");
        let quiet = SettleReport {
            waited_ms: 250,
            cpu_percent: 1.0,
            threshold_percent: 15.0,
            settled: true,
            busy_processes: vec![],
        };
        assert_eq!(quiet.warning(), None);
    }
}
