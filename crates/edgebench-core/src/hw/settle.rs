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
    /// A process using more than this, percent of one core, is listed as busy.
    pub busy_process_percent: f64,
}

impl SettlePolicy {
    /// The policy of `--settle-timeout` and `--settle-threshold`: `None` when the timeout is 0
    /// (waiting turned off).
    pub fn from_flags(timeout_s: f64, threshold_percent: f64) -> Option<Self> {
        (timeout_s > 0.0).then(|| Self {
            threshold_percent,
            timeout: std::time::Duration::from_secs_f64(timeout_s),
            ..Self::default()
        })
    }
}

impl Default for SettlePolicy {
    fn default() -> Self {
        Self {
            threshold_percent: 15.0,
            timeout: Duration::from_secs(10),
            poll: Duration::from_millis(250),
            busy_process_percent: 50.0,
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
    /// Other processes using more than the policy's share of a core (half, by default) over
    /// the last poll interval before the timeout (busiest first).
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

/// Every process with its CPU use since the previous refresh of `procs`, percent of one core.
fn refresh_processes(procs: &mut System) {
    procs.refresh_processes_specifics(
        ProcessesToUpdate::All,
        true,
        ProcessRefreshKind::nothing().with_cpu(),
    );
}

/// Waits until system CPU use drops below the threshold or the timeout passes.
pub fn settle(policy: &SettlePolicy) -> SettleReport {
    let t0 = Instant::now();
    let me = sysinfo::get_current_pid().ok();
    let mut sys = System::new();
    sys.refresh_cpu_usage();
    // Processes live in their own System: sysinfo divides a process's CPU time since the last
    // process refresh by the machine's CPU time since *its* last CPU refresh, so the per-poll
    // `refresh_cpu_usage` above must not move that reference. Refreshing them at every check
    // also gives processes started during the wait a reading (sysinfo skips a process whose
    // first reading had no CPU time yet).
    let mut procs = System::new();
    refresh_processes(&mut procs);
    let poll = policy.poll.max(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL);
    loop {
        std::thread::sleep(poll);
        sys.refresh_cpu_usage();
        refresh_processes(&mut procs);
        let cpu = f64::from(sys.global_cpu_usage());
        let quiet = is_quiet(cpu, policy);
        if quiet || t0.elapsed() >= policy.timeout {
            let busy_processes = if quiet {
                Vec::new()
            } else {
                let mut busy: Vec<BusyProcess> = procs
                    .processes()
                    .iter()
                    .filter(|(pid, _)| Some(**pid) != me)
                    .map(|(pid, p)| BusyProcess {
                        pid: pid.as_u32(),
                        name: p.name().to_string_lossy().to_string(),
                        cpu_percent: f64::from(p.cpu_usage()),
                    })
                    .filter(|p| p.cpu_percent > policy.busy_process_percent)
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

    /// A child process spinning on one core, killed (and reaped) when dropped.
    struct Spinner(std::process::Child);

    impl Drop for Spinner {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    fn a_busy_machine_is_flagged_with_the_busy_process() {
        // Another process (not ours: edgebench's own process is left out of the list) spins on
        // one core. A 0% threshold can never be met, whatever the core count, so settle waits
        // for the whole timeout and then lists the busy processes; the 10%-of-a-core cut keeps
        // the spinner listed on a loaded machine where it gets only part of a core.
        let child = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .unwrap();
        let spinner = Spinner(child);
        let pid = spinner.0.id();
        let policy = SettlePolicy {
            threshold_percent: 0.0,
            timeout: Duration::from_millis(1000),
            poll: Duration::from_millis(250),
            busy_process_percent: 10.0,
        };
        let r = settle(&policy);
        drop(spinner);
        assert!(!r.settled, "{r:?}");
        assert!(r.waited_ms >= 1000);
        let busy = r
            .busy_processes
            .iter()
            .find(|p| p.pid == pid)
            .unwrap_or_else(|| panic!("child {pid} not among the busy processes: {r:?}"));
        assert_eq!(busy.name, "sh");
        assert!(busy.cpu_percent > 10.0, "{busy:?}");
        assert!(r.busy_processes.iter().all(|p| p.pid != std::process::id()));
        let w = r.warning().unwrap();
        assert!(w.starts_with("machine busy: CPU at "), "{w}");
        assert!(w.contains("sh ("), "{w}");
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
