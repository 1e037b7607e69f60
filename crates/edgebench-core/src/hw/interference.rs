//! Interference during a unit's measured requests: the CPU time that processes other than the
//! measured ones took (edgebench and the target server's process tree), the hypervisor's steal
//! time (`/proc/stat`), and thermal throttling where the platform counts it
//! (`/sys/devices/system/cpu/cpu*/thermal_throttle/*_throttle_count`); a unit above a threshold
//! is flagged beside its figures. Settling checks the machine before a unit; this watches it
//! during one.

use serde::{Deserialize, Serialize};
use std::time::Instant;

/// The flag threshold: other processes or steal above this share of one core.
pub const DEFAULT_THRESHOLD_PERCENT_OF_CORE: f64 = 10.0;

/// Clock ticks per second of `/proc` CPU times (USER_HZ: 100 on every Linux ABI in use).
const TICKS_PER_S: f64 = 100.0;

/// The machine's and the measured processes' CPU counters at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    at: Instant,
    /// Busy ticks of all CPUs (user, nice, system, irq, softirq; guest time is within user).
    busy: u64,
    steal: u64,
    /// The measured processes' own ticks (user and system, with their waited-for children).
    measured: u64,
    /// Thermal throttling events counted so far, where the platform counts them.
    throttle: Option<u64>,
}

/// What happened between two snapshots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interference {
    /// CPU taken by other processes, percent of one core, over the measured span.
    pub other_cpu_percent_of_core: f64,
    /// The hypervisor's steal time, percent of one core.
    pub steal_percent_of_core: f64,
    /// Thermal throttling events during the span (`None`: the platform does not count them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle_events: Option<u64>,
    pub threshold_percent_of_core: f64,
    /// Above the threshold, or throttled.
    pub flagged: bool,
}

impl Interference {
    /// The one-line warning for a flagged unit.
    pub fn warning(&self) -> Option<String> {
        if !self.flagged {
            return None;
        }
        let mut parts = Vec::new();
        if self.other_cpu_percent_of_core > self.threshold_percent_of_core {
            parts.push(format!(
                "other processes took {:.0}% of a core",
                self.other_cpu_percent_of_core
            ));
        }
        if self.steal_percent_of_core > self.threshold_percent_of_core {
            parts.push(format!(
                "the hypervisor stole {:.0}% of a core",
                self.steal_percent_of_core
            ));
        }
        if let Some(n) = self.throttle_events.filter(|&n| n > 0) {
            parts.push(format!("{n} thermal throttling event(s)"));
        }
        Some(format!(
            "interference during the unit: {} (threshold {:.0}% of a core)",
            parts.join(", "),
            self.threshold_percent_of_core
        ))
    }
}

/// The `cpu` line of `/proc/stat`: (busy, steal) ticks.
pub fn parse_proc_stat(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal guest guest_nice
    let busy = at(0) + at(1) + at(2) + at(5) + at(6);
    Some((busy, at(7)))
}

/// User and system ticks of a process, with those of its waited-for children, from
/// `/proc/<pid>/stat` (fields 14 to 17, counted after the command's closing parenthesis).
pub fn parse_pid_stat(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ")": state is field 3, so field k is f[k - 3].
    let tick = |k: usize| f.get(k - 3).and_then(|x| x.parse::<u64>().ok());
    Some(tick(14)? + tick(15)? + tick(16)? + tick(17)?)
}

fn throttle_count() -> Option<u64> {
    let dir = std::fs::read_dir("/sys/devices/system/cpu").ok()?;
    let mut total = None;
    for e in dir.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with("cpu") && name[3..].bytes().all(|b| b.is_ascii_digit())) {
            continue;
        }
        for f in ["core_throttle_count", "package_throttle_count"] {
            let p = e.path().join("thermal_throttle").join(f);
            if let Some(n) = std::fs::read_to_string(p)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
            {
                *total.get_or_insert(0) += n;
            }
        }
    }
    total
}

/// The counters now; `pids` are the measured processes (each with its process tree). `None`
/// where `/proc/stat` cannot be read (not Linux).
pub fn snapshot(pids: &[u32]) -> Option<Snapshot> {
    let (busy, steal) = parse_proc_stat(&std::fs::read_to_string("/proc/stat").ok()?)?;
    let mut seen: Vec<u32> = Vec::new();
    for &p in pids {
        for q in crate::monitor::process_tree(p) {
            if !seen.contains(&q) {
                seen.push(q);
            }
        }
    }
    let measured = seen
        .iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
        .filter_map(|s| parse_pid_stat(&s))
        .sum();
    Some(Snapshot {
        at: Instant::now(),
        busy,
        steal,
        measured,
        throttle: throttle_count(),
    })
}

/// What happened between `a` and `b`, flagged above `threshold_percent_of_core`.
pub fn between(a: &Snapshot, b: &Snapshot, threshold_percent_of_core: f64) -> Interference {
    let span_s = b.at.duration_since(a.at).as_secs_f64().max(1e-3);
    let pct = |ticks: u64| ticks as f64 / TICKS_PER_S / span_s * 100.0;
    // Counters of the measured processes move on their own clock: never below zero.
    let other = b
        .busy
        .saturating_sub(a.busy)
        .saturating_sub(b.measured.saturating_sub(a.measured));
    let throttle_events = match (a.throttle, b.throttle) {
        (Some(x), Some(y)) => Some(y.saturating_sub(x)),
        _ => None,
    };
    let other_cpu = pct(other);
    let steal = pct(b.steal.saturating_sub(a.steal));
    Interference {
        other_cpu_percent_of_core: other_cpu,
        steal_percent_of_core: steal,
        throttle_events,
        threshold_percent_of_core,
        flagged: other_cpu > threshold_percent_of_core
            || steal > threshold_percent_of_core
            || throttle_events.is_some_and(|n| n > 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn parses_proc_files() {
        let stat =
            "cpu  1239259 354 98498 825860 11552 0 901 2941 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n";
        assert_eq!(
            parse_proc_stat(stat),
            Some((1239259 + 354 + 98498 + 901, 2941))
        );
        // A command with spaces and parentheses.
        let pid =
            "1234 (my (odd) cmd) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 7 3 20 0 1 0 100 0 0";
        assert_eq!(parse_pid_stat(pid), Some(250 + 50 + 7 + 3));
        assert_eq!(parse_pid_stat("garbage"), None);
    }

    fn snap(at: Instant, busy: u64, steal: u64, measured: u64, throttle: Option<u64>) -> Snapshot {
        Snapshot {
            at,
            busy,
            steal,
            measured,
            throttle,
        }
    }

    #[test]
    fn other_processes_steal_and_throttling_are_flagged() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(10);
        // 10 s: the machine busy 1,500 ticks, 1,400 of them the measured process: 1% of a core.
        let quiet = between(
            &snap(t0, 0, 0, 0, Some(0)),
            &snap(t1, 1_500, 10, 1_400, Some(0)),
            10.0,
        );
        assert!(
            (quiet.other_cpu_percent_of_core - 10.0).abs() < 1e-9,
            "{quiet:?}"
        );
        assert!(!quiet.flagged && quiet.warning().is_none());
        // Another process took 300 ticks in 10 s: 30% of a core.
        let busy = between(
            &snap(t0, 0, 0, 0, None),
            &snap(t1, 1_700, 0, 1_400, None),
            10.0,
        );
        assert!(busy.flagged, "{busy:?}");
        assert!(busy
            .warning()
            .unwrap()
            .contains("other processes took 30% of a core"));
        let stolen = between(
            &snap(t0, 0, 0, 0, None),
            &snap(t1, 1_400, 200, 1_400, None),
            10.0,
        );
        assert!(stolen.warning().unwrap().contains("stole 20%"));
        let hot = between(
            &snap(t0, 0, 0, 0, Some(5)),
            &snap(t1, 100, 0, 100, Some(7)),
            10.0,
        );
        assert_eq!(hot.throttle_events, Some(2));
        assert!(hot.flagged);
    }

    #[test]
    fn a_busy_loop_beside_the_measured_process_is_seen() {
        // A process that burns a core for a second, outside the measured set (here empty).
        let mut child = std::process::Command::new("sh")
            .args([
                "-c",
                "end=$(($(date +%s) + 2)); while [ $(date +%s) -lt $end ]; do :; done",
            ])
            .spawn()
            .expect("sh");
        std::thread::sleep(Duration::from_millis(100));
        let Some(a) = snapshot(&[]) else {
            let _ = child.kill();
            let _ = child.wait();
            return;
        };
        std::thread::sleep(Duration::from_millis(700));
        let b = snapshot(&[]).expect("snapshot");
        let _ = child.kill();
        let _ = child.wait();
        let i = between(&a, &b, 10.0);
        assert!(i.other_cpu_percent_of_core > 40.0, "{i:?}");
        assert!(i.flagged);
    }
}
