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
    /// Distinct warning messages and how often each was logged (at most [`MAX_WARNINGS`]).
    warnings: std::collections::BTreeMap<String, u64>,
}

/// Distinct warning messages kept per server (a chatty server cannot grow the summary).
pub const MAX_WARNINGS: usize = 100;

/// A distinct warning a server logged, and how many times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogWarning {
    pub message: String,
    pub count: u64,
}

/// The message of a warning-level log line, without its level, timestamp and source location
/// (`WARNING 10-30 12:48:00 [kv_cache.py:85] Using KV cache ...` gives `Using KV cache ...`), so
/// the same warning from two processes or at two times is one message; `None` for other lines.
pub fn warning_message(line: &str) -> Option<String> {
    static LEVEL: std::sync::OnceLock<Option<Regex>> = std::sync::OnceLock::new();
    static ANSI: std::sync::OnceLock<Option<Regex>> = std::sync::OnceLock::new();
    let level = LEVEL
        .get_or_init(|| Regex::new(r"(?i)(\b(warn|warning)\b[:\]]?|\w+Warning:)").ok())
        .as_ref()?;
    let ansi = ANSI
        .get_or_init(|| Regex::new(r"\x1b\[[0-9;]*[A-Za-z]").ok())
        .as_ref()?;
    let line = ansi.replace_all(line, "");
    let m = level.find(&line)?;
    let rest = &line[m.end()..];
    // A source location in brackets after the level ends the prefix.
    let rest = match rest.find("] ") {
        Some(i) if rest[..i].contains('[') => &rest[i + 2..],
        _ => rest,
    };
    let msg = rest.trim_start_matches([':', ' ', '-']).trim();
    // `  warnings.warn(` and the like: no message in it.
    if !msg.chars().any(char::is_alphabetic) {
        return None;
    }
    Some(msg.chars().take(240).collect())
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
                if let Some(msg) = warning_message(&line) {
                    let known = s.warnings.len();
                    match s.warnings.get_mut(&msg) {
                        Some(n) => *n += 1,
                        None if known < MAX_WARNINGS => {
                            s.warnings.insert(msg, 1);
                        }
                        None => {}
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
            ..LogState::default()
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

    /// The distinct warnings logged since the launch, most frequent first.
    pub fn warnings(&self) -> Vec<LogWarning> {
        let mut out: Vec<LogWarning> = self
            .state
            .lock()
            .map(|s| {
                s.warnings
                    .iter()
                    .map(|(message, count)| LogWarning {
                        message: message.clone(),
                        count: *count,
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by(|a, b| b.count.cmp(&a.count).then(a.message.cmp(&b.message)));
        out
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
        let cmd = "echo 'WARNING 10-30 12:48:00 [kv_cache.py:85] Using KV cache scaling factor 1.0 for fp8_e4m3'; \
                   echo '(Worker pid=7) WARNING 10-30 12:48:01 [kv_cache.py:85] Using KV cache scaling factor 1.0 for fp8_e4m3' >&2; echo ready; exec sleep 30";
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
        // Two processes, two times: one distinct warning, seen twice.
        assert_eq!(
            s.warnings(),
            vec![LogWarning {
                message: "Using KV cache scaling factor 1.0 for fp8_e4m3".into(),
                count: 2
            }]
        );
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
    fn warning_lines_give_their_message_and_other_lines_none() {
        for (line, want) in [
            (
                "WARNING 10-30 12:48:00 [kv_cache.py:85] Checkpoint does not provide a q scaling factor",
                Some("Checkpoint does not provide a q scaling factor"),
            ),
            (
                "\x1b[33mWARNING\x1b[0m 10-30 [attn.py:1] Using uncalibrated q_scale 1.0",
                Some("Using uncalibrated q_scale 1.0"),
            ),
            ("warn: context size exceeded", Some("context size exceeded")),
            ("INFO 10-30 [api.py:2] started", None),
            ("srv  log_server_r: request: POST /v1/chat/completions 200", None),
            ("WARNING", None),
            (
                "/x/y.py:12: UserWarning: TypedStorage is deprecated",
                Some("TypedStorage is deprecated"),
            ),
            ("  warnings.warn(", None),
        ] {
            assert_eq!(warning_message(line).as_deref(), want, "{line}");
        }
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
