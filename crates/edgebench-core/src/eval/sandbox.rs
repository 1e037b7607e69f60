//! The code sandbox: runs model-written Python in its own temporary folder, in new network and
//! PID namespaces (no network; every process dies with the run), as an unprivileged user when
//! started as root, with CPU-time, memory, process-count, open-file and file-size limits, a wall
//! timeout, a clean environment and capped output. Without namespaces it refuses to run unless
//! the caller allows unisolated execution (`--unsafe-exec`).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Why the sandbox cannot run programs.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("no Python interpreter: {0}")]
    NoPython(String),
    #[error("the code sandbox needs Linux namespaces (unshare --net --pid), which this machine refuses ({0}); pass --unsafe-exec to run generated code without isolation")]
    NoIsolation(String),
    #[error("sandbox: {0}")]
    Io(#[from] std::io::Error),
}

/// Limits for one program.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Limits {
    pub cpu_seconds: u64,
    pub memory_bytes: u64,
    /// Processes the program may have at once (on top of what its user already runs).
    pub processes: u64,
    pub file_size_bytes: u64,
    pub open_files: u64,
    pub wall: Duration,
    /// Output kept for the record (the rest is discarded).
    pub output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            cpu_seconds: 10,
            memory_bytes: 1 << 30,
            processes: 32,
            file_size_bytes: 1 << 20,
            open_files: 64,
            wall: Duration::from_secs(15),
            output_bytes: 4096,
        }
    }
}

/// How programs are isolated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Isolation {
    /// New network, PID and mount namespaces, an unprivileged user, resource limits.
    Namespaces,
    /// Resource limits and a private folder only (the user passed `--unsafe-exec`).
    UnsafeExec,
}

/// What happened to one program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Passed,
    /// Non-zero exit (a failed assertion, an exception).
    Failed,
    /// Killed at the wall timeout.
    Timeout,
    /// Killed by a resource limit (CPU time, memory, file size) or a signal.
    Killed,
}

/// The result of one program.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    pub outcome: Outcome,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub wall_ms: f64,
    /// The start of stderr (then stdout), capped.
    pub output: String,
}

/// A ready sandbox.
#[derive(Debug, Clone)]
pub struct Sandbox {
    python: PathBuf,
    isolation: Isolation,
    as_root: bool,
    limits: Limits,
}

/// True for root (then programs run as `nobody`).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Processes this user already runs (RLIMIT_NPROC counts them too).
fn own_processes() -> u64 {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                })
                .count() as u64
        })
        .unwrap_or(0)
}

const NOBODY: u32 = 65534;

impl Sandbox {
    /// Finds Python and checks that the isolation works; `allow_unsafe` accepts running without
    /// namespaces when they are refused.
    pub fn new(limits: Limits, allow_unsafe: bool) -> Result<Self, SandboxError> {
        let python = ["/usr/bin/python3", "/usr/local/bin/python3", "/opt/homebrew/bin/python3"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .ok_or_else(|| {
                SandboxError::NoPython("python3 not found in /usr/bin, /usr/local/bin or /opt/homebrew/bin (programs run with a clean environment, so a system interpreter is needed)".into())
            })?;
        let mut sb = Self {
            python,
            isolation: Isolation::Namespaces,
            as_root: is_root(),
            limits,
        };
        let probe = sb.run_program("print('ok')\n");
        match probe {
            Ok(r) if r.outcome == Outcome::Passed && r.output.contains("ok") => Ok(sb),
            other => {
                let why = match other {
                    Ok(r) => format!("probe {:?}: {}", r.outcome, r.output.trim()),
                    Err(e) => e.to_string(),
                };
                if allow_unsafe {
                    sb.isolation = Isolation::UnsafeExec;
                    Ok(sb)
                } else {
                    Err(SandboxError::NoIsolation(why))
                }
            }
        }
    }

    /// How programs are isolated.
    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    fn command(&self, dir: &Path, script: &Path) -> Command {
        let l = &self.limits;
        let mut args: Vec<String> = Vec::new();
        let mut program = "sh".to_string();
        if self.isolation == Isolation::Namespaces {
            program = "unshare".into();
            if !self.as_root {
                args.extend(["--user", "--map-root-user"].map(String::from));
            }
            args.extend(
                ["--net", "--pid", "--fork", "--kill-child", "--mount-proc"].map(String::from),
            );
            if self.as_root {
                args.extend(
                    [
                        "setpriv",
                        "--reuid=65534",
                        "--regid=65534",
                        "--clear-groups",
                    ]
                    .map(String::from),
                );
            }
        }
        // A shell records the program's own exit status (unshare's would hide a signal).
        if self.isolation == Isolation::Namespaces {
            args.push("sh".into());
        }
        args.extend(["-c", "\"$@\"; echo $? > .exit", "sh", "prlimit"].map(String::from));
        let nproc = if self.as_root {
            l.processes
        } else {
            own_processes() + l.processes
        };
        args.extend([
            format!("--cpu={}", l.cpu_seconds),
            format!("--as={}", l.memory_bytes),
            format!("--nproc={nproc}"),
            format!("--fsize={}", l.file_size_bytes),
            format!("--nofile={}", l.open_files),
            "--core=0".into(),
            "--".into(),
        ]);
        args.push(self.python.display().to_string());
        args.extend(["-I", "-B"].map(String::from));
        args.push(script.display().to_string());
        let mut c = Command::new(program);
        c.args(args)
            .current_dir(dir)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", dir)
            .env("TMPDIR", dir)
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut c, 0);
        c
    }

    /// Runs one Python program; a hostile program ends as Failed, Timeout or Killed, never hangs.
    pub fn run_program(&self, source: &str) -> Result<RunResult, SandboxError> {
        let dir = tempfile::Builder::new()
            .prefix("edgebench-sandbox-")
            .tempdir()?;
        let script = dir.path().join("program.py");
        std::fs::write(&script, source)?;
        if self.as_root && self.isolation == Isolation::Namespaces {
            std::os::unix::fs::chown(dir.path(), Some(NOBODY), Some(NOBODY))?;
            std::os::unix::fs::chown(&script, Some(NOBODY), Some(NOBODY))?;
        }
        let out_path = dir.path().join(".stdout");
        let err_path = dir.path().join(".stderr");
        let out = std::fs::File::create(&out_path)?;
        let err = std::fs::File::create(&err_path)?;
        let mut cmd = self.command(dir.path(), &script);
        cmd.stdout(out).stderr(err);
        let started = Instant::now();
        let mut child = cmd.spawn()?;
        let pgid = child.id();
        let mut timed_out = false;
        let status = loop {
            if let Some(s) = child.try_wait()? {
                break s;
            }
            if started.elapsed() >= self.limits.wall {
                timed_out = true;
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pgid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
                break child.wait()?;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let wall_ms = started.elapsed().as_secs_f64() * 1e3;
        // Whatever the program left running in its group goes too.
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pgid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let read_capped = |p: &Path| -> String {
            let mut buf = Vec::new();
            if let Ok(f) = std::fs::File::open(p) {
                let _ = f
                    .take(self.limits.output_bytes as u64)
                    .read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        };
        let mut output = read_capped(&err_path);
        if output.len() < self.limits.output_bytes {
            output.push_str(&read_capped(&out_path));
            output.truncate(
                (0..=self.limits.output_bytes.min(output.len()))
                    .rev()
                    .find(|&i| output.is_char_boundary(i))
                    .unwrap_or(0),
            );
        }
        let _ = status;
        // The shell's `$?`: the exit code, or 128 + the signal that killed the program.
        let recorded: Option<i32> = std::fs::read_to_string(dir.path().join(".exit"))
            .ok()
            .and_then(|s| s.trim().parse().ok());
        let (code, signal) = match recorded {
            Some(c) if c > 128 => (None, Some(c - 128)),
            Some(c) => (Some(c), None),
            None => (None, None),
        };
        let outcome = if timed_out {
            Outcome::Timeout
        } else {
            match (code, signal) {
                (Some(0), _) => Outcome::Passed,
                (Some(_), _) => Outcome::Failed,
                _ => Outcome::Killed,
            }
        };
        Ok(RunResult {
            outcome,
            exit_code: code,
            signal,
            wall_ms,
            output,
        })
    }
}

/// Generated code that tries to reach the network, start processes, or touch files outside its
/// folder (a static check, for the compliance evidence; the sandbox contains them either way).
pub fn escape_attempt(code: &str) -> bool {
    const PATTERNS: &[&str] = &[
        "import socket",
        "from socket",
        "urllib",
        "http.client",
        "requests.",
        "subprocess",
        "os.system",
        "os.popen",
        "os.fork",
        "os.exec",
        "multiprocessing",
        "open('/",
        "open(\"/",
        "shutil.rmtree",
        "os.remove",
        "os.unlink",
        "ctypes",
    ];
    PATTERNS.iter().any(|p| code.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_patterns() {
        assert!(escape_attempt("import socket\ns = socket.socket()"));
        assert!(escape_attempt("print(open('/etc/passwd').read())"));
        assert!(!escape_attempt("def f(x):\n    return sorted(x)\n"));
    }
}
