//! CPU affinity: the CPUs this process may run on, and pinning the calling thread to some of
//! them (Linux; elsewhere there is nothing to list and pinning does nothing).

/// The CPUs this process may run on, in order (empty off Linux or when the kernel refuses).
pub fn allowed_cpus() -> Vec<usize> {
    #[cfg(target_os = "linux")]
    {
        use nix::sched::{sched_getaffinity, CpuSet};
        sched_getaffinity(nix::unistd::Pid::from_raw(0))
            .map(|set| {
                (0..CpuSet::count())
                    .filter(|i| set.is_set(*i).unwrap_or(false))
                    .collect()
            })
            .unwrap_or_default()
    }
    #[cfg(not(target_os = "linux"))]
    {
        Vec::new()
    }
}

/// Pins the calling thread to `cpus`; false when it could not be done (off Linux, an empty or
/// out-of-range set, or a refusal).
pub fn pin_current_thread(cpus: &[usize]) -> bool {
    #[cfg(target_os = "linux")]
    {
        use nix::sched::{sched_setaffinity, CpuSet};
        let mut set = CpuSet::new();
        if cpus.is_empty() || cpus.iter().any(|&c| set.set(c).is_err()) {
            return false;
        }
        sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).is_ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = cpus;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_pinned_to_one_allowed_cpu_sees_only_that_cpu() {
        let cpus = allowed_cpus();
        if cfg!(target_os = "linux") {
            assert!(!cpus.is_empty(), "Linux always lists at least one CPU");
        }
        let Some(&last) = cpus.last() else { return };
        let seen = std::thread::spawn(move || {
            assert!(pin_current_thread(&[last]));
            allowed_cpus()
        })
        .join()
        .unwrap();
        assert_eq!(seen, [last]);
        assert!(!pin_current_thread(&[]));
        assert_eq!(allowed_cpus(), cpus, "other threads keep their affinity");
    }
}
