//! Managed servers (`--serve "COMMAND"`): start a server command, wait until it is healthy,
//! capture its output, count log lines matching patterns, and stop it cleanly.

use regex::Regex;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::TargetError;

/// How the server started, for the results (cold start is a figure).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LaunchFacts {
    pub command: String,
    pub pid: u32,
    /// From spawning the command to the first healthy answer of `GET /models`.
    pub launch_to_healthy_ms: f64,
    /// From spawning the command to the first token of the first request.
    pub launch_to_first_token_ms: Option<f64>,
    /// Where the server's stdout and stderr were written.
    pub log_file: PathBuf,
}

#[derive(Default)]
struct LogState {
    counts: Vec<u64>,
    lines: u64,
}

/// A running server command; dropping it stops the server.
pub struct ManagedServer {
    child: Child,
    spawned: Instant,
    patterns: Vec<String>,
    state: Arc<Mutex<LogState>>,
    readers: Vec<std::thread::JoinHandle<()>>,
    pub facts: LaunchFacts,
}

fn reader(
    stream: impl std::io::Read + Send + 'static,
    log: Arc<Mutex<std::fs::File>>,
    regexes: Arc<Vec<Regex>>,
    state: Arc<Mutex<LogState>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if let Ok(mut f) = log.lock() {
                let _ = writeln!(f, "{line}");
            }
            if let Ok(mut s) = state.lock() {
                s.lines += 1;
                for (i, re) in regexes.iter().enumerate() {
                    if re.is_match(&line) {
                        s.counts[i] += 1;
                    }
                }
            }
        }
    })
}

impl ManagedServer {
    /// Starts `command` with `sh -c` in its own process group, writing its output to `log_file`,
    /// then polls `health_url` until it answers 200, or 401/403 (up, behind an API key); the
    /// process exiting or `timeout` passing is an error naming the command and the log file.
    pub async fn start(
        command: &str,
        health_url: &str,
        patterns: &[String],
        log_file: &Path,
        timeout: Duration,
    ) -> Result<Self, TargetError> {
        let regexes = patterns
            .iter()
            .map(|p| {
                Regex::new(p).map_err(|e| {
                    TargetError::Unavailable(format!(
                        "--log-pattern {p:?} is not a valid regex: {e}"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(dir) = log_file.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                TargetError::Unavailable(format!("server log {}: {e}", log_file.display()))
            })?;
        }
        let log = std::fs::File::create(log_file).map_err(|e| {
            TargetError::Unavailable(format!("server log {}: {e}", log_file.display()))
        })?;
        let started = Instant::now();
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(command)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| TargetError::Unavailable(format!("--serve {command:?}: {e}")))?;
        let state = Arc::new(Mutex::new(LogState {
            counts: vec![0; regexes.len()],
            lines: 0,
        }));
        let log = Arc::new(Mutex::new(log));
        let regexes = Arc::new(regexes);
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(reader(out, log.clone(), regexes.clone(), state.clone()));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(reader(err, log, regexes, state.clone()));
        }
        let mut server = Self {
            facts: LaunchFacts {
                command: command.to_string(),
                pid: child.id(),
                launch_to_healthy_ms: 0.0,
                launch_to_first_token_ms: None,
                log_file: log_file.to_path_buf(),
            },
            child,
            spawned: started,
            patterns: patterns.to_vec(),
            state,
            readers,
        };
        let client = reqwest::Client::new();
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(TargetError::Unavailable(format!(
                    "--serve {command:?} exited ({status}) before it was healthy; see {}",
                    log_file.display()
                )));
            }
            let ok = client
                .get(health_url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                // 401/403: up, and guarding its API with a key (vLLM --api-key); 503: still loading.
                .is_ok_and(|r| r.status().is_success() || matches!(r.status().as_u16(), 401 | 403));
            if ok {
                break;
            }
            if started.elapsed() > timeout {
                return Err(TargetError::Unavailable(format!(
                    "--serve {command:?} was not healthy at {health_url} within {:.0} s; see {}",
                    timeout.as_secs_f64(),
                    log_file.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        server.facts.launch_to_healthy_ms = started.elapsed().as_secs_f64() * 1e3;
        Ok(server)
    }

    /// Matching-line counts so far, per pattern, in the order given.
    pub fn pattern_counts(&self) -> Vec<(String, u64)> {
        let counts = self
            .state
            .lock()
            .map(|s| s.counts.clone())
            .unwrap_or_default();
        self.patterns.iter().cloned().zip(counts).collect()
    }

    /// When the command was spawned.
    pub fn spawned(&self) -> Instant {
        self.spawned
    }

    /// Lines the server has printed so far.
    pub fn lines(&self) -> u64 {
        self.state.lock().map(|s| s.lines).unwrap_or(0)
    }

    /// Stops the server: SIGTERM to its process group, then SIGKILL after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        let pgid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGTERM);
        let end = Instant::now() + grace;
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
            let _ = self.child.wait();
        }
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }
}

impl Drop for ManagedServer {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            self.stop(Duration::from_secs(10));
        }
    }
}

/// Per-pattern counts between two snapshots.
pub fn count_delta(before: &[(String, u64)], after: &[(String, u64)]) -> Vec<(String, u64)> {
    after
        .iter()
        .map(|(p, n)| {
            let b = before.iter().find(|(q, _)| q == p).map_or(0, |(_, m)| *m);
            (p.clone(), n.saturating_sub(b))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::mock_server::{MockServer, Response};

    #[tokio::test]
    async fn starts_waits_for_health_counts_patterns_and_stops() {
        let health = MockServer::start(|_| Response::json(200, &serde_json::json!({"data": []})))
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("server.log");
        let cmd = "echo 'Using KV cache scaling factor 1.0 for fp8_e4m3'; \
                   echo 'Using KV cache scaling factor 1.0 for fp8_e4m3' >&2; echo ready; exec sleep 30";
        let mut s = ManagedServer::start(
            cmd,
            &format!("{}/models", health.base_url()),
            &["scaling factor 1\\.0 for fp8".into(), "never".into()],
            &log,
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        assert!(s.facts.launch_to_healthy_ms > 0.0);
        // Output is read in the background; wait until the three lines are in.
        for _ in 0..100 {
            if s.lines() >= 3 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let counts = s.pattern_counts();
        assert_eq!(counts[0].1, 2);
        assert_eq!(counts[1].1, 0);
        let pid = s.facts.pid;
        let t = Instant::now();
        s.stop(Duration::from_secs(5));
        assert!(t.elapsed() < Duration::from_secs(4), "SIGTERM was enough");
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
        assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 3);
    }

    #[tokio::test]
    async fn a_server_that_dies_or_never_gets_healthy_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("s.log");
        let e = ManagedServer::start(
            "echo boom; exit 3",
            "http://127.0.0.1:9/v1/models",
            &[],
            &log,
            Duration::from_secs(10),
        )
        .await
        .err()
        .unwrap();
        assert!(
            e.to_string().contains("exited") && e.to_string().contains("s.log"),
            "{e}"
        );
        let e = ManagedServer::start(
            "exec sleep 30",
            "http://127.0.0.1:9/v1/models",
            &[],
            &log,
            Duration::from_millis(300),
        )
        .await
        .err()
        .unwrap();
        assert!(e.to_string().contains("not healthy"), "{e}");
        let e = ManagedServer::start(
            "true",
            "http://x",
            &["(".into()],
            &log,
            Duration::from_secs(1),
        )
        .await
        .err()
        .unwrap();
        assert!(e.to_string().contains("--log-pattern"), "{e}");
    }

    #[test]
    fn deltas_between_snapshots() {
        let a = vec![("x".to_string(), 2), ("y".to_string(), 0)];
        let b = vec![("x".to_string(), 5), ("y".to_string(), 1)];
        assert_eq!(
            count_delta(&a, &b),
            vec![("x".to_string(), 3), ("y".to_string(), 1)]
        );
    }
}
