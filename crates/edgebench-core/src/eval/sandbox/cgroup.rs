//! A control group around one sandboxed program, so that its memory and its processes are capped
//! as a whole (a per-process limit lets 32 processes take 32 times the memory): cgroup v2
//! (`memory.max`, `memory.swap.max`, `pids.max`) or the v1 `memory` and `pids` hierarchies,
//! created under this process's own group, where the kernel lets this user do so.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Which cgroup interface a group uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

impl Version {
    /// `cgroup v1` or `cgroup v2`.
    pub fn name(self) -> &'static str {
        match self {
            Self::V1 => "cgroup v1",
            Self::V2 => "cgroup v2",
        }
    }
}

/// One program's group; removed (with anything still in it killed) when dropped.
#[derive(Debug)]
pub struct Group {
    version: Version,
    /// v2: one folder; v1: the memory folder, then the pids folder.
    dirs: Vec<PathBuf>,
}

const ROOT: &str = "/sys/fs/cgroup";

/// A name no other group of this machine has.
fn unique_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "edgebench-sandbox-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// This process's group path for a v1 controller, or (`None`) the v2 path, from
/// `/proc/self/cgroup` (`4:memory:/a/b`, `0::/a/b`).
fn own_path(proc_cgroup: &str, controller: Option<&str>) -> Option<String> {
    proc_cgroup.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        let hit = match controller {
            Some(c) => ctrls.split(',').any(|x| x == c),
            None => ctrls.is_empty(),
        };
        hit.then(|| path.to_string())
    })
}

fn write(dir: &Path, file: &str, value: &str) -> Result<(), String> {
    std::fs::write(dir.join(file), value).map_err(|e| format!("{}: {e}", dir.join(file).display()))
}

/// A `key value` line of a flat-keyed cgroup file (`memory.events`, `memory.oom_control`).
fn keyed(dir: &Path, file: &str, key: &str) -> Option<u64> {
    std::fs::read_to_string(dir.join(file))
        .ok()?
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == key).then(|| v.trim().parse().ok()).flatten()
        })
}

fn number(dir: &Path, file: &str) -> Option<u64> {
    std::fs::read_to_string(dir.join(file))
        .ok()?
        .trim()
        .parse()
        .ok()
}

impl Group {
    /// A new group capped at `memory_bytes` (swap included where the kernel accounts it) and
    /// `pids` tasks: v2 first, then v1. The error says why neither works here.
    pub fn create(memory_bytes: u64, pids: u64) -> Result<Self, String> {
        let proc_cgroup = std::fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| format!("/proc/self/cgroup: {e}"))?;
        let v2 = Self::create_v2(&proc_cgroup, memory_bytes, pids);
        match v2 {
            Ok(g) => Ok(g),
            Err(e2) => Self::create_v1(&proc_cgroup, memory_bytes, pids)
                .map_err(|e1| format!("cgroup v2: {e2}; cgroup v1: {e1}")),
        }
    }

    fn create_v2(proc_cgroup: &str, memory_bytes: u64, pids: u64) -> Result<Self, String> {
        let controllers = std::fs::read_to_string(Path::new(ROOT).join("cgroup.controllers"))
            .map_err(|_| "not mounted".to_string())?;
        let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
        if !(has("memory") && has("pids")) {
            return Err("the memory and pids controllers are not enabled".into());
        }
        let own = own_path(proc_cgroup, None).ok_or("no v2 entry in /proc/self/cgroup")?;
        // A group may only hold children with controllers when it holds no process itself
        // (the root excepted): try this process's group, then the root.
        let mut last = String::new();
        for parent in [
            Path::new(ROOT).join(own.trim_start_matches('/')),
            PathBuf::from(ROOT),
        ] {
            let control =
                std::fs::read_to_string(parent.join("cgroup.subtree_control")).unwrap_or_default();
            let enabled = |c: &str| control.split_whitespace().any(|x| x == c);
            if !(enabled("memory") && enabled("pids"))
                && write(&parent, "cgroup.subtree_control", "+memory +pids").is_err()
            {
                last = format!("{}: cannot enable memory and pids", parent.display());
                continue;
            }
            let dir = parent.join(unique_name());
            if let Err(e) = std::fs::create_dir(&dir) {
                last = format!("{}: {e}", dir.display());
                continue;
            }
            let g = Self {
                version: Version::V2,
                dirs: vec![dir.clone()],
            };
            write(&dir, "memory.max", &memory_bytes.to_string())?;
            // Without swap accounting the file is absent: the cap is then on memory alone.
            let _ = write(&dir, "memory.swap.max", "0");
            write(&dir, "pids.max", &pids.to_string())?;
            return Ok(g);
        }
        Err(last)
    }

    fn create_v1(proc_cgroup: &str, memory_bytes: u64, pids: u64) -> Result<Self, String> {
        let mut dirs = Vec::new();
        for controller in ["memory", "pids"] {
            let own = own_path(proc_cgroup, Some(controller))
                .ok_or_else(|| format!("no {controller} hierarchy"))?;
            let base = Path::new(ROOT).join(controller);
            let dir = base.join(own.trim_start_matches('/')).join(unique_name());
            std::fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            dirs.push(dir);
        }
        let g = Self {
            version: Version::V1,
            dirs,
        };
        write(
            &g.dirs[0],
            "memory.limit_in_bytes",
            &memory_bytes.to_string(),
        )?;
        // Memory plus swap, where swap is accounted (set after the memory limit, which it may
        // not be below).
        let _ = write(
            &g.dirs[0],
            "memory.memsw.limit_in_bytes",
            &memory_bytes.to_string(),
        );
        write(&g.dirs[1], "pids.max", &pids.to_string())?;
        Ok(g)
    }

    /// `cgroup v1` or `cgroup v2`.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The files a process writes its pid to, to join the group (every hierarchy's).
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }

    /// True when the kernel killed a process of the group for its memory limit (or, on v1
    /// kernels without the count, when the limit was hit at all).
    pub fn memory_limit_hit(&self) -> bool {
        let dir = &self.dirs[0];
        match self.version {
            Version::V2 => keyed(dir, "memory.events", "oom_kill").unwrap_or(0) > 0,
            Version::V1 => match keyed(dir, "memory.oom_control", "oom_kill") {
                Some(n) => n > 0,
                None => number(dir, "memory.failcnt").unwrap_or(0) > 0,
            },
        }
    }

    /// The group's peak memory, where the kernel records it.
    pub fn peak_bytes(&self) -> Option<u64> {
        let dir = &self.dirs[0];
        match self.version {
            Version::V2 => number(dir, "memory.peak"),
            Version::V1 => number(dir, "memory.max_usage_in_bytes"),
        }
    }

    /// The pids still in the group.
    fn members(&self) -> Vec<i32> {
        self.procs_files()
            .iter()
            .filter_map(|f| std::fs::read_to_string(f).ok())
            .flat_map(|s| {
                s.lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .collect::<Vec<i32>>()
            })
            .collect()
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // Whatever is left (a daemon that left the process group) is killed, then the group
        // goes; an exiting process may hold it a moment.
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let members = self.members();
            if members.is_empty() || Instant::now() >= deadline {
                break;
            }
            for pid in members {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        for d in &self.dirs {
            for _ in 0..100 {
                if std::fs::remove_dir(d).is_ok() || !d.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_paths_from_proc_cgroup() {
        let hybrid =
            "9:name=systemd:/\n8:pids:/a\n4:memory:/process_api/x\n1:cpu,cpuacct:/\n0::/\n";
        assert_eq!(
            own_path(hybrid, Some("memory")).as_deref(),
            Some("/process_api/x")
        );
        assert_eq!(own_path(hybrid, Some("pids")).as_deref(), Some("/a"));
        assert_eq!(own_path(hybrid, Some("cpuacct")).as_deref(), Some("/"));
        assert_eq!(own_path(hybrid, None).as_deref(), Some("/"));
        assert_eq!(
            own_path("0::/user.slice/u.scope\n", None).as_deref(),
            Some("/user.slice/u.scope")
        );
        assert_eq!(own_path("0::/x\n", Some("memory")), None);
    }

    #[test]
    fn a_group_caps_and_goes_away() {
        let Ok(g) = Group::create(64 << 20, 8) else {
            eprintln!("SKIPPED: no cgroup for this user here");
            return;
        };
        let dirs = g.dirs.clone();
        assert!(dirs.iter().all(|d| d.is_dir()));
        assert!(!g.memory_limit_hit());
        drop(g);
        assert!(dirs.iter().all(|d| !d.exists()));
    }
}
