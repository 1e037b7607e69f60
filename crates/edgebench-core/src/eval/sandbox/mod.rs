//! The code sandbox: runs model-written Python in new mount, network and PID namespaces (no
//! network; every process dies with the run) inside a minimal root file system of its own: the
//! system's software read-only (`/usr`, `/bin`, `/lib*`, the interpreter's own folders), a private
//! in-memory working folder and `/tmp`, a few device files and (where the kernel allows) a fresh
//! `/proc`; nothing else of the host (no `/home`, `/root`, `/work`, `/var`, host `/tmp`, nor most
//! of `/etc`) exists in it. The program runs as `nobody` when started as root, with no
//! capabilities and `no_new_privs`, under CPU-time, memory, process-count, open-file and file-size
//! limits, a wall timeout, a clean environment and capped output. Memory and processes are also
//! capped for the sandbox as a whole, by a control group of its own where the kernel allows one
//! ([`cgroup`]), else by fewer processes with a share of the total each. Tests run under a harness
//! that proves they ran to the end ([`harness`]). Without namespaces it refuses to run unless the
//! caller allows unisolated execution (`--unsafe-exec`).

mod cgroup;
pub mod harness;

pub use harness::suspicious_code;

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
    /// Memory for the whole sandbox, every process and its scratch files together.
    #[serde(default = "default_total_memory_bytes")]
    pub total_memory_bytes: u64,
}

fn default_scratch_bytes() -> u64 {
    16 << 20
}

fn default_total_memory_bytes() -> u64 {
    1 << 30
}

/// Processes a sandbox may have when no control group caps their memory together: each then
/// gets an equal share of the total.
const PROCESSES_WITHOUT_CGROUP: u64 = 8;

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
            total_memory_bytes: default_total_memory_bytes(),
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
    /// Stopped by a resource limit (memory, file size, CPU time, processes) or a signal.
    Killed,
}

/// Which limit stopped a program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// The sandbox's memory (its control group's kill, or `MemoryError`).
    Memory,
    /// The file-size limit (`SIGXFSZ`, or `EFBIG` raised in Python).
    FileSize,
    /// The CPU-time limit (`SIGXCPU`).
    Cpu,
    /// The process limit (no new process or thread).
    Processes,
    /// Another signal (see [`RunResult::signal`]).
    Signal,
}

impl Limit {
    /// The snake_case name used in files and summaries.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::FileSize => "file_size",
            Self::Cpu => "cpu",
            Self::Processes => "processes",
            Self::Signal => "signal",
        }
    }
}

/// The result of one program.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    pub outcome: Outcome,
    /// The limit that stopped it, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<Limit>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub wall_ms: f64,
    /// The sandbox's peak memory, as its control group measured it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_memory_bytes: Option<u64>,
    /// The start of stderr (then stdout), capped.
    pub output: String,
}

/// What one program's end means: the outcome and the limit it hit. `proved` is whether the
/// harness printed its proof (`None` for a bare program, which passes on exit status 0);
/// `memory_hit` whether the control group killed for memory.
fn classify(
    timed_out: bool,
    code: Option<i32>,
    signal: Option<i32>,
    proved: Option<bool>,
    memory_hit: bool,
) -> (Outcome, Option<Limit>) {
    if timed_out {
        return (Outcome::Timeout, None);
    }
    let harness = proved.is_some();
    match (code, signal) {
        (Some(0), _) if proved != Some(false) => (Outcome::Passed, None),
        (Some(_), _) if memory_hit => (Outcome::Killed, Some(Limit::Memory)),
        (Some(harness::EXIT_MEMORY), _) if harness => (Outcome::Killed, Some(Limit::Memory)),
        (Some(harness::EXIT_FILE_SIZE), _) if harness => (Outcome::Killed, Some(Limit::FileSize)),
        (Some(harness::EXIT_PROCESSES), _) if harness => (Outcome::Killed, Some(Limit::Processes)),
        (Some(_), _) => (Outcome::Failed, None),
        (None, _) if memory_hit => (Outcome::Killed, Some(Limit::Memory)),
        (None, Some(24)) => (Outcome::Killed, Some(Limit::Cpu)),
        (None, Some(25)) => (Outcome::Killed, Some(Limit::FileSize)),
        (None, _) => (Outcome::Killed, Some(Limit::Signal)),
    }
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
    /// The control group interface that caps each run as a whole; `None`: rlimits only.
    cgroup: Option<cgroup::Version>,
    /// Why there is no control group, when there is none.
    no_cgroup: Option<String>,
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
            cgroup: None,
            no_cgroup: None,
        };
        match cgroup::Group::create(sb.limits.total_memory_bytes, sb.limits.processes) {
            Ok(g) => sb.cgroup = Some(g.version()),
            Err(e) => sb.no_cgroup = Some(e),
        }
        let works = |sb: &Self| match sb.run_program("print('ok')\n") {
            Ok(r) if r.outcome == Outcome::Passed && r.output.contains("ok") => Ok(()),
            Ok(r) => Err(format!("probe {:?}: {}", r.outcome, r.output.trim())),
            Err(e) => Err(e.to_string()),
        };
        let mut probe = works(&sb);
        if probe.is_err() && sb.cgroup.is_some() {
            // A group that can be made but not joined: without it, with the rlimits' share.
            sb.cgroup = None;
            sb.no_cgroup = Some("a program could not join its control group".into());
            probe = works(&sb);
        }
        match probe {
            Ok(()) => Ok(sb),
            Err(why) => {
                if allow_unsafe {
                    sb.isolation = Isolation::UnsafeExec;
                    Ok(sb)
                } else {
                    Err(SandboxError::NoIsolation(why))
                }
            }
        }
    }

    /// How the sandbox's memory and processes are capped as a whole, in words (for the eval
    /// summary).
    pub fn memory_cap(&self) -> String {
        let mib = |b: u64| b >> 20;
        match (self.cgroup, &self.no_cgroup) {
            (Some(v), _) => format!(
                "{}: {} MiB and {} processes for each program with all its children",
                v.name(),
                mib(self.limits.total_memory_bytes),
                self.limits.processes
            ),
            (None, why) => format!(
                "rlimits: {} processes of {} MiB address space each, {} MiB in all (no control group: {})",
                self.process_cap(),
                mib(self.address_space()),
                mib(self.process_cap() * self.address_space()),
                why.as_deref().unwrap_or("unknown")
            ),
        }
    }

    /// Processes a program may have at once.
    fn process_cap(&self) -> u64 {
        if self.cgroup.is_some() {
            self.limits.processes
        } else {
            self.limits.processes.min(PROCESSES_WITHOUT_CGROUP)
        }
    }

    /// Each process's address-space limit: without a control group, a share of the total.
    fn address_space(&self) -> u64 {
        if self.cgroup.is_some() {
            self.limits.memory_bytes
        } else {
            self.limits
                .memory_bytes
                .min(self.limits.total_memory_bytes / self.process_cap().max(1))
        }
    }

    /// How programs are isolated.
    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    /// The RLIMIT_NPROC value that gives the program `limits.processes` tasks: the kernel counts
    /// every task of the program's real user (in its user namespace, since Linux 5.14).
    fn nproc(&self) -> u64 {
        let l = self.process_cap();
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

    /// The command that runs `run`'s program; `join` are the control-group files its first
    /// process writes its pid to before anything else starts (so every child is in the group).
    fn command(&self, run: &Path, join: &[PathBuf]) -> Command {
        let l = &self.limits;
        let work = run.join("work");
        let mut args: Vec<String> = Vec::new();
        let mut program;
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
            // SIGXCPU at the limit (recorded as the CPU limit), SIGKILL a second later.
            format!("--cpu={}:{}", l.cpu_seconds, l.cpu_seconds + 1),
            format!("--as={}", self.address_space()),
            format!("--nproc={}", self.nproc()),
            format!("--fsize={}", l.file_size_bytes),
            format!("--nofile={}", l.open_files),
            "--core=0".into(),
            "--".into(),
        ]);
        args.push(self.python.display().to_string());
        args.extend(["-I", "-B"].map(String::from));
        args.push(script);
        if !join.is_empty() {
            let mut wrapped: Vec<String> = [
                "-c",
                "while [ \"$1\" != -- ]; do echo $$ > \"$1\" || exit 125; shift; done; shift; exec \"$@\"",
                "sh",
            ]
            .map(String::from)
            .to_vec();
            wrapped.extend(join.iter().map(|p| p.display().to_string()));
            wrapped.push("--".into());
            wrapped.push(program.into());
            wrapped.append(&mut args);
            args = wrapped;
            program = "sh";
        }
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

    /// Runs one Python program; it passes when it exits with status 0. A hostile program ends as
    /// Failed, Timeout or Killed, never hangs.
    pub fn run_program(&self, source: &str) -> Result<RunResult, SandboxError> {
        self.run(source, None)
    }

    /// Runs generated `code`, then its `tests`, under the [`harness`]: it passes only when the
    /// tests ran to the end (an early exit with status 0 fails), and limit hits that Python
    /// reports as exceptions are recorded as limits.
    pub fn run_tests(&self, code: &str, tests: &str) -> Result<RunResult, SandboxError> {
        let proof = harness::new_proof();
        self.run(&harness::program(code, tests), Some(&proof))
    }

    fn run(&self, source: &str, proof: Option<&str>) -> Result<RunResult, SandboxError> {
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
        // Made before the program starts, removed (what is left in it killed) when dropped.
        let group = match self.cgroup {
            Some(_) => Some(
                cgroup::Group::create(self.limits.total_memory_bytes, self.limits.processes)
                    .map_err(|e| std::io::Error::other(format!("control group: {e}")))?,
            ),
            None => None,
        };
        let join = group
            .as_ref()
            .map(cgroup::Group::procs_files)
            .unwrap_or_default();
        let mut cmd = self.command(run.path(), &join);
        cmd.stdout(out).stderr(err);
        if proof.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let started = Instant::now();
        let mut child = cmd.spawn()?;
        if let (Some(p), Some(mut stdin)) = (proof, child.stdin.take()) {
            // A pipe takes these few bytes at once; a program that never reads them is fine.
            use std::io::Write;
            let _ = stdin.write_all(format!("{p}\n").as_bytes());
        }
        let pgid = child.id();
        let mut timed_out = false;
        loop {
            if child.try_wait()?.is_some() {
                break;
            }
            if started.elapsed() >= self.limits.wall {
                timed_out = true;
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pgid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
                child.wait()?;
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let wall_ms = started.elapsed().as_secs_f64() * 1e3;
        // Whatever the program left running in its group goes too.
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pgid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let memory_hit = group.as_ref().is_some_and(cgroup::Group::memory_limit_hit);
        let peak_memory_bytes = group.as_ref().and_then(cgroup::Group::peak_bytes);
        drop(group);
        let read_capped = |p: &Path| -> String {
            let mut buf = Vec::new();
            if let Ok(f) = std::fs::File::open(p) {
                let _ = f
                    .take(self.limits.output_bytes as u64)
                    .read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        };
        // The proof is the last thing the harness prints: it is in the last few hundred bytes.
        let proved = proof.map(|p| harness::proved(&read_tail(&out_path, 512), p));
        let mut output = read_capped(&err_path);
        if output.len() < self.limits.output_bytes {
            let stdout = read_capped(&out_path);
            match proof {
                Some(p) => {
                    let line = harness::proof_line(p);
                    let kept: Vec<&str> = stdout.lines().filter(|l| *l != line).collect();
                    output.push_str(&kept.join("\n"));
                }
                None => output.push_str(&stdout),
            }
            output.truncate(
                (0..=self.limits.output_bytes.min(output.len()))
                    .rev()
                    .find(|&i| output.is_char_boundary(i))
                    .unwrap_or(0),
            );
        }
        // The shell's `$?`: the exit code, or 128 + the signal that killed the program.
        let recorded: Option<i32> = std::fs::read_to_string(run.path().join("exit"))
            .ok()
            .and_then(|s| s.trim().parse().ok());
        let (code, signal) = match recorded {
            Some(c) if c > 128 => (None, Some(c - 128)),
            Some(c) => (Some(c), None),
            None => (None, None),
        };
        let (outcome, limit) = classify(timed_out, code, signal, proved, memory_hit);
        if proved == Some(false) && code == Some(0) {
            output.insert_str(0, "exited with status 0 before its tests finished\n");
        }
        Ok(RunResult {
            outcome,
            limit,
            exit_code: code,
            signal,
            wall_ms,
            peak_memory_bytes,
            output,
        })
    }
}

/// The last `n` bytes of a file, as text.
fn read_tail(path: &Path, n: u64) -> String {
    use std::io::{Seek, SeekFrom};
    let mut buf = Vec::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(n)));
        let _ = f.read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_and_limits() {
        let c = classify;
        assert_eq!(
            c(false, Some(0), None, None, false),
            (Outcome::Passed, None)
        );
        assert_eq!(
            c(false, Some(0), None, Some(true), false),
            (Outcome::Passed, None)
        );
        // Status 0 without the proof: an early exit, a failure.
        assert_eq!(
            c(false, Some(0), None, Some(false), false),
            (Outcome::Failed, None)
        );
        assert_eq!(
            c(false, Some(1), None, Some(false), false),
            (Outcome::Failed, None)
        );
        let killed = |l| (Outcome::Killed, Some(l));
        assert_eq!(
            c(false, Some(120), None, Some(false), false),
            killed(Limit::Memory)
        );
        assert_eq!(
            c(false, Some(121), None, Some(false), false),
            killed(Limit::FileSize)
        );
        assert_eq!(
            c(false, Some(122), None, Some(false), false),
            killed(Limit::Processes)
        );
        // A bare program's own exit codes mean nothing special.
        assert_eq!(
            c(false, Some(120), None, None, false),
            (Outcome::Failed, None)
        );
        assert_eq!(
            c(false, None, Some(9), Some(false), true),
            killed(Limit::Memory)
        );
        assert_eq!(
            c(false, Some(1), None, Some(false), true),
            killed(Limit::Memory)
        );
        assert_eq!(c(false, None, Some(24), None, false), killed(Limit::Cpu));
        assert_eq!(
            c(false, None, Some(25), None, false),
            killed(Limit::FileSize)
        );
        assert_eq!(c(false, None, Some(9), None, false), killed(Limit::Signal));
        assert_eq!(
            c(true, Some(0), None, Some(true), false),
            (Outcome::Timeout, None)
        );
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
        // (Not compared with every process's count: threads of other tests come and go.)
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
