//! The code sandbox: runs model-written Python in new mount, network and PID namespaces (no
//! network; every process dies with the run) inside a minimal root file system of its own: the
//! system's software read-only (`/usr`, `/bin`, `/lib*`, the interpreter's own folders), a private
//! in-memory working folder and `/tmp`, a few device files and (where the kernel allows) a fresh
//! `/proc`; nothing else of the host (no `/home`, `/root`, `/work`, `/var`, host `/tmp`, nor most
//! of `/etc`) exists in it. The program runs as `nobody` when started as root, with no
//! capabilities and `no_new_privs`, under CPU-time, memory, process-count, open-file and file-size
//! limits, a wall timeout, a clean environment and capped output. Without namespaces it refuses to
//! run unless the caller allows unisolated execution (`--unsafe-exec`).

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
    #[error("the code sandbox needs Linux namespaces (unshare --mount --net --pid, and --user when not root) and a private root file system, which this machine refuses ({0}); pass --unsafe-exec to run generated code without isolation")]
    NoIsolation(String),
    #[error("sandbox: {0}")]
    Io(#[from] std::io::Error),
}

/// Limits for one program.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Limits {
    pub cpu_seconds: u64,
    pub memory_bytes: u64,
    /// Processes (threads included) the program may have at once.
    pub processes: u64,
    pub file_size_bytes: u64,
    pub open_files: u64,
    pub wall: Duration,
    /// Output kept for the record (the rest is discarded).
    pub output_bytes: usize,
    /// Size of each of the program's two in-memory scratch file systems (its folder and `/tmp`).
    #[serde(default = "default_scratch_bytes")]
    pub scratch_bytes: u64,
}

fn default_scratch_bytes() -> u64 {
    16 << 20
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
            scratch_bytes: default_scratch_bytes(),
        }
    }
}

/// How programs are isolated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Isolation {
    /// New mount, network and PID namespaces (and a user namespace when not root), a minimal
    /// read-only root file system, an unprivileged user without capabilities, resource limits.
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

/// A host path that appears, read-only, in the sandbox's root file system.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Exposed {
    /// A folder, bind-mounted read-only.
    Dir(PathBuf),
    /// A file, bind-mounted read-only.
    File(PathBuf),
    /// A symbolic link, recreated with the same target.
    Link(PathBuf, PathBuf),
}

/// A ready sandbox.
#[derive(Debug, Clone)]
pub struct Sandbox {
    python: PathBuf,
    isolation: Isolation,
    /// The real user id edgebench runs as.
    uid: u32,
    /// The kernel counts RLIMIT_NPROC per user namespace (Linux 5.14 and later).
    nproc_per_userns: bool,
    exposed: Vec<Exposed>,
    limits: Limits,
}

/// The real user id of this process.
fn real_uid() -> Option<u32> {
    status_field(Path::new("/proc/self/status"), "Uid:")
}

/// The first number of a `/proc/<pid>/status` line.
fn status_field(path: &Path, key: &str) -> Option<u32> {
    std::fs::read_to_string(path).ok().and_then(|s| {
        s.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    })
}

/// Tasks (processes and their threads) whose real user is `uid`: what RLIMIT_NPROC counts.
fn own_processes(uid: u32) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| {
            let status = e.path().join("status");
            (status_field(&status, "Uid:")? == uid)
                .then(|| status_field(&status, "Threads:").unwrap_or(1))
        })
        .map(u64::from)
        .sum()
}

/// True when a kernel release string (`6.1.0-18-amd64`) is at least `major.minor`.
fn kernel_at_least(release: &str, major: u32, minor: u32) -> bool {
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (ma, mi) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (ma, mi) >= (major, minor)
}

const NOBODY: u32 = 65534;

/// Host paths of the system's software, shown read-only in the sandbox (when they exist).
const SYSTEM_PATHS: &[&str] = &[
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/etc/alternatives",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
];

/// The folders the interpreter needs (its binary's, the standard library, site-packages,
/// libpython's), as real paths: asked from the interpreter itself.
fn python_paths(python: &Path) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Some(bin) = std::fs::canonicalize(python)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
    {
        paths.push(bin);
    }
    let query = "import sysconfig\n\
        for k in ('stdlib', 'platstdlib', 'purelib', 'platlib'):\n    print(sysconfig.get_path(k))\n\
        print(sysconfig.get_config_var('LIBDIR') or '')\n";
    let out = Command::new(python)
        .args(["-I", "-c", query])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    if let Ok(out) = out {
        if out.status.success() {
            paths.extend(
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .filter_map(|l| std::fs::canonicalize(l).ok()),
            );
        }
    }
    paths.retain(|p| p.is_dir() && p.parent().is_some());
    paths
}

/// What the sandbox's root shows of the host: the system paths as they are (folders, files or
/// links) and the interpreter's folders, without a folder that another one already contains.
fn exposures(system: &[&str], python: &[PathBuf]) -> Vec<Exposed> {
    let mut all: Vec<Exposed> = system
        .iter()
        .map(PathBuf::from)
        .filter_map(|p| {
            let meta = std::fs::symlink_metadata(&p).ok()?;
            if meta.file_type().is_symlink() {
                std::fs::read_link(&p).ok().map(|t| Exposed::Link(p, t))
            } else if meta.is_dir() {
                Some(Exposed::Dir(p))
            } else if meta.is_file() {
                Some(Exposed::File(p))
            } else {
                None
            }
        })
        .collect();
    all.extend(python.iter().cloned().map(Exposed::Dir));
    let path = |e: &Exposed| match e {
        Exposed::Dir(p) | Exposed::File(p) | Exposed::Link(p, _) => p.clone(),
    };
    all.sort_by_key(path);
    let mut kept: Vec<Exposed> = Vec::new();
    for e in all {
        let p = path(&e);
        let covered = kept.iter().any(|k| match k {
            Exposed::Dir(d) => p.starts_with(d),
            Exposed::File(f) | Exposed::Link(f, _) => &p == f,
        });
        if !covered {
            kept.push(e);
        }
    }
    kept
}

/// Run (as root of the new namespaces) before the program: builds the root file system on a
/// tmpfs, makes it the root (`pivot_root`, or `chroot` where the current root cannot be moved),
/// then starts the program with its exit status written to a descriptor the program does not
/// inherit. Arguments: the run's host folder, the uid owning the program's folder, the scratch
/// size, triples (`dir`|`file`|`link`, path, link target) up to `--`, then the program. (`mount -o
/// bind,ro` binds then remounts read-only: util-linux 2.27 and later, older than any `unshare`
/// with `--kill-child`.) Apart from `/proc` (left out where the kernel refuses it) and
/// `pivot_root` (then `chroot`), any failed step ends the script, so the probe fails and the sandbox
/// refuses instead of running with less isolation.
const SETUP: &str = r##"set -eu
umask 022
T=$1; ID=$2; SCRATCH=$3; shift 3
R=$T/root
PATH=/usr/sbin:/usr/bin:/sbin:/bin
exec 3> "$T/exit"
mount -t tmpfs -o mode=0755,size=1m,nosuid,nodev edgebench-root "$R"
mkdir "$R/sandbox" "$R/tmp" "$R/dev" "$R/proc" "$R/etc" "$R/.old"
while [ "$1" != -- ]; do
  kind=$1; p=$2; target=$3; shift 3
  case $kind in
    link) mkdir -p "$R${p%/*}"; ln -s "$target" "$R$p" ;;
    dir) mkdir -p "$R$p"; mount -o bind,ro,nosuid,nodev "$p" "$R$p" ;;
    file) mkdir -p "$R${p%/*}"; : > "$R$p"; mount -o bind,ro,nosuid,nodev "$p" "$R$p" ;;
  esac
done
shift
for d in null zero random urandom; do
  : > "$R/dev/$d"; mount --bind "/dev/$d" "$R/dev/$d"
done
ln -s /proc/self/fd "$R/dev/fd"
mount -t tmpfs -o "mode=0700,uid=$ID,gid=$ID,size=$SCRATCH,nosuid,nodev" edgebench-work "$R/sandbox"
mount -t tmpfs -o "mode=1777,size=$SCRATCH,nosuid,nodev" edgebench-tmp "$R/tmp"
cp "$T/work/program.py" "$R/sandbox/program.py"
chown "$ID:$ID" "$R/sandbox/program.py"
printf 'root:x:0:0:root:/:/usr/sbin/nologin\nsandbox:x:%s:%s:sandbox:/sandbox:/usr/sbin/nologin\n' "$ID" "$ID" > "$R/etc/passwd"
printf 'root:x:0:\nsandbox:x:%s:\n' "$ID" > "$R/etc/group"
mount -t proc -o nosuid,nodev,noexec proc "$R/proc" 2>/dev/null || rmdir "$R/proc"
CHROOT=$(command -v chroot || true)
cd "$R"
if pivot_root . .old 2>/dev/null; then
  cd /
  umount -l /.old
  rmdir /.old
  mount -o remount,bind,ro,nosuid,nodev /
  cd /sandbox
  PATH=/usr/bin:/bin
  set +e
  "$@" 3>&-
else
  rmdir .old
  mount -o remount,bind,ro,nosuid,nodev "$R"
  [ -n "$CHROOT" ]
  PATH=/usr/bin:/bin
  set +e
  "$CHROOT" "$R" /bin/sh -c 'cd /sandbox && exec "$@"' sh "$@" 3>&-
fi
echo $? >&3
"##;

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
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let exposed = exposures(SYSTEM_PATHS, &python_paths(&python));
        let mut sb = Self {
            python,
            isolation: Isolation::Namespaces,
            uid: real_uid().unwrap_or(NOBODY),
            nproc_per_userns: kernel_at_least(release.trim(), 5, 14),
            exposed,
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

    /// The RLIMIT_NPROC value that gives the program `limits.processes` tasks: the kernel counts
    /// every task of the program's real user (in its user namespace, since Linux 5.14).
    fn nproc(&self) -> u64 {
        let l = self.limits.processes;
        match (self.isolation, self.uid) {
            // Root ignores RLIMIT_NPROC (only the unsafe mode runs programs as root).
            (Isolation::UnsafeExec, 0) => l,
            // Programs run as the host's `nobody`, which other processes may share.
            (Isolation::Namespaces, 0) => own_processes(NOBODY) + l,
            // A new user namespace: only the run's own tasks count there, the setup shell too.
            (Isolation::Namespaces, _) if self.nproc_per_userns => l + 1,
            (_, uid) => own_processes(uid) + l,
        }
    }

    fn command(&self, run: &Path) -> Command {
        let l = &self.limits;
        let work = run.join("work");
        let mut args: Vec<String> = Vec::new();
        let program;
        let script;
        if self.isolation == Isolation::Namespaces {
            program = "unshare";
            if self.uid != 0 {
                args.extend(["--user", "--map-root-user"].map(String::from));
            }
            args.extend(
                [
                    "--mount",
                    "--net",
                    "--pid",
                    "--fork",
                    "--kill-child",
                    "--propagation",
                    "private",
                    "--",
                    "sh",
                    "-c",
                    SETUP,
                    "sh",
                ]
                .map(String::from),
            );
            args.push(run.display().to_string());
            let owner = if self.uid == 0 { NOBODY } else { 0 };
            args.push(owner.to_string());
            args.push(l.scratch_bytes.to_string());
            for e in &self.exposed {
                let (kind, path, target) = match e {
                    Exposed::Dir(p) => ("dir", p, String::new()),
                    Exposed::File(p) => ("file", p, String::new()),
                    Exposed::Link(p, t) => ("link", p, t.display().to_string()),
                };
                args.extend([kind.to_string(), path.display().to_string(), target]);
            }
            args.extend(
                [
                    "--",
                    "setpriv",
                    "--no-new-privs",
                    "--inh-caps=-all",
                    "--bounding-set=-all",
                ]
                .map(String::from),
            );
            if self.uid == 0 {
                args.extend([
                    format!("--reuid={NOBODY}"),
                    format!("--regid={NOBODY}"),
                    "--clear-groups".into(),
                ]);
            }
            script = "/sandbox/program.py".to_string();
        } else {
            // A shell records the program's own exit status.
            program = "sh";
            args.extend(["-c", "x=$1; shift; \"$@\"; echo $? > \"$x\"", "sh"].map(String::from));
            args.push(run.join("exit").display().to_string());
            script = work.join("program.py").display().to_string();
        }
        args.extend([
            "prlimit".into(),
            format!("--cpu={}", l.cpu_seconds),
            format!("--as={}", l.memory_bytes),
            format!("--nproc={}", self.nproc()),
            format!("--fsize={}", l.file_size_bytes),
            format!("--nofile={}", l.open_files),
            "--core=0".into(),
            "--".into(),
        ]);
        args.push(self.python.display().to_string());
        args.extend(["-I", "-B"].map(String::from));
        args.push(script);
        let (home, tmp) = if self.isolation == Isolation::Namespaces {
            (PathBuf::from("/sandbox"), PathBuf::from("/tmp"))
        } else {
            (work.clone(), work.clone())
        };
        let mut c = Command::new(program);
        c.args(args)
            .current_dir(&work)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", home)
            .env("TMPDIR", tmp)
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut c, 0);
        c
    }

    /// Runs one Python program; a hostile program ends as Failed, Timeout or Killed, never hangs.
    pub fn run_program(&self, source: &str) -> Result<RunResult, SandboxError> {
        // The run's host folder: `work/program.py`, the mount point of the sandbox's root, the
        // recorded output and exit status. Inside the namespaces the program sees none of it.
        let run = tempfile::Builder::new()
            .prefix("edgebench-sandbox-")
            .tempdir()?;
        std::fs::create_dir(run.path().join("work"))?;
        std::fs::create_dir(run.path().join("root"))?;
        std::fs::write(run.path().join("work").join("program.py"), source)?;
        let out_path = run.path().join("stdout");
        let err_path = run.path().join("stderr");
        let out = std::fs::File::create(&out_path)?;
        let err = std::fs::File::create(&err_path)?;
        let mut cmd = self.command(run.path());
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
        let recorded: Option<i32> = std::fs::read_to_string(run.path().join("exit"))
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

    #[test]
    fn kernel_versions() {
        assert!(kernel_at_least("6.18.44-fc-v1045", 5, 14));
        assert!(kernel_at_least("5.14.0-362.el9.x86_64", 5, 14));
        assert!(!kernel_at_least("5.10.0-28-amd64", 5, 14));
        assert!(!kernel_at_least("4.19.0", 5, 14));
        assert!(!kernel_at_least("", 5, 14));
    }

    #[test]
    fn own_processes_counts_only_that_user() {
        let me = real_uid().expect("uid");
        let mine = own_processes(me);
        assert!(mine >= 1, "this test process itself");
        let all: u64 = std::fs::read_dir("/proc")
            .expect("/proc")
            .filter_map(Result::ok)
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .bytes()
                    .all(|b| b.is_ascii_digit())
            })
            .map(|e| u64::from(status_field(&e.path().join("status"), "Threads:").unwrap_or(1)))
            .sum();
        assert!(mine <= all);
        // A user id nobody has.
        assert_eq!(own_processes(4_000_000_000), 0);
    }

    #[test]
    fn exposures_skip_what_a_folder_already_covers() {
        let e = exposures(
            &["/usr", "/nonexistent-edgebench"],
            &[PathBuf::from("/usr/lib"), PathBuf::from("/opt/python/lib")],
        );
        assert!(e.contains(&Exposed::Dir("/usr".into())));
        assert!(!e.contains(&Exposed::Dir("/usr/lib".into())));
        assert!(e.contains(&Exposed::Dir("/opt/python/lib".into())));
        assert!(!e
            .iter()
            .any(|x| matches!(x, Exposed::Dir(p) if p.starts_with("/nonexistent-edgebench"))));
    }

    #[test]
    fn interpreter_folders_are_real_paths() {
        let Some(py) = ["/usr/bin/python3", "/usr/local/bin/python3"]
            .iter()
            .map(Path::new)
            .find(|p| p.is_file())
        else {
            return;
        };
        let paths = python_paths(py);
        assert!(!paths.is_empty());
        for p in &paths {
            assert_eq!(&std::fs::canonicalize(p).expect("exists"), p);
            assert_ne!(p, Path::new("/"));
        }
    }
}
