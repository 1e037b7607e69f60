//! The code sandbox against hostile programs: each ends (failed, killed or timed out) within its
//! limits, sees nothing of the host's files outside its own folder, and the machine is left as it
//! was.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use edgebench_core::eval::sandbox::{Limit, Limits, Outcome, Sandbox};

/// Held by every test while its programs run: some watch the machine's processes (leftovers,
/// memory seen from outside), which the other tests' programs must not blur.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn sandbox() -> Option<(std::sync::MutexGuard<'static, ()>, Sandbox)> {
    let guard = serial();
    let limits = Limits {
        cpu_seconds: 2,
        wall: Duration::from_secs(4),
        ..Limits::default()
    };
    match Sandbox::new(limits, false) {
        Ok(s) => Some((guard, s)),
        Err(e) if std::env::var("EDGEBENCH_REQUIRE_PEERS").is_ok() => panic!("{e}"),
        Err(e) => {
            eprintln!("SKIPPED: no sandbox here: {e}");
            None
        }
    }
}

/// A folder outside the sandbox that any user may read and write (so only the sandbox's own
/// file-system view, not file permissions, keeps the program out): under /var/tmp, else $HOME.
fn outside_folder() -> tempfile::TempDir {
    let base = [
        "/var/tmp".into(),
        std::env::var("HOME").unwrap_or_default().into(),
    ]
    .into_iter()
    .find(|p: &PathBuf| p.is_dir())
    .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::Builder::new()
        .prefix("edgebench-outside-")
        .tempdir_in(base)
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

fn write_public(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A Python string literal for a path.
fn py(path: &Path) -> String {
    format!("{:?}", path.display().to_string())
}

#[test]
fn passing_and_failing_programs() {
    let Some((_serial, sb)) = sandbox() else {
        return;
    };
    let ok = sb
        .run_program("def f(x):\n    return x + 1\nassert f(1) == 2\n")
        .unwrap();
    assert_eq!(ok.outcome, Outcome::Passed, "{ok:?}");
    let bad = sb.run_program("assert 1 == 2\n").unwrap();
    assert_eq!(bad.outcome, Outcome::Failed);
    assert!(bad.output.contains("AssertionError"), "{bad:?}");
}

#[test]
fn humaneval_style_program_passes_with_the_standard_library() {
    let Some((_serial, sb)) = sandbox() else {
        return;
    };
    // What HumanEval prompts, completions and checks import, and a scratch file in the folder.
    let program = r#"
from typing import List, Optional, Tuple
import math, re, collections, itertools, functools, heapq, bisect, string, json, hashlib
import random, statistics, fractions, decimal, datetime, os, sys, tempfile

def below_zero(operations: List[int]) -> bool:
    balance = 0
    for op in operations:
        balance += op
        if balance < 0:
            return True
    return False

def check(candidate):
    assert candidate([]) == False
    assert candidate([1, 2, -3, 1, 2, -3]) == False
    assert candidate([1, 2, -4, 5, 6]) == True
    assert hashlib.md5(b'x').hexdigest() == '9dd4e461268c8034f5c8564e155c67a6'
    assert decimal.Decimal('1.1') + decimal.Decimal('2.2') == decimal.Decimal('3.3')
    assert math.isclose(statistics.mean([1, 2, 3]), 2.0)
    assert re.sub(r'\s+', ' ', 'a  b') == 'a b'
    with open('scratch.txt', 'w') as f:
        f.write('ok')
    assert open('scratch.txt').read() == 'ok'
    with tempfile.NamedTemporaryFile() as t:
        t.write(b'ok')

check(below_zero)
"#;
    let r = sb.run_program(program).unwrap();
    assert_eq!(r.outcome, Outcome::Passed, "{r:?}");
}

#[test]
fn hostile_programs_are_contained() {
    let Some((_serial, sb)) = sandbox() else {
        return;
    };
    let started = Instant::now();
    // An infinite loop: the CPU limit or the wall timeout ends it.
    let r = sb.run_program("while True:\n    pass\n").unwrap();
    assert!(
        matches!(r.outcome, Outcome::Killed | Outcome::Timeout),
        "{r:?}"
    );
    // A fork bomb: the process limit stops it, the PID namespace takes every child down.
    let r = sb
        .run_program("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n")
        .unwrap();
    assert_ne!(r.outcome, Outcome::Passed, "{r:?}");
    // The process limit is the sandbox's own (not shifted by the host's processes): a program
    // gets far fewer than a hundred.
    let r = sb
        .run_program(
            "import os, time\nn = 0\nfor _ in range(200):\n    try:\n        if os.fork() == 0:\n            time.sleep(2)\n            os._exit(0)\n        n += 1\n    except OSError:\n        break\nprint('forked', n)\nassert n < 100, n\n",
        )
        .unwrap();
    assert_eq!(r.outcome, Outcome::Passed, "{r:?}");
    // Huge output: capped in the record, stopped by the file-size limit.
    let r = sb
        .run_program("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n")
        .unwrap();
    assert_ne!(r.outcome, Outcome::Passed);
    assert!(r.output.len() <= 4096, "{}", r.output.len());
    // Memory: the address-space limit.
    let r = sb.run_program("x = bytearray(8 * 1024 ** 3)\n").unwrap();
    assert_ne!(r.outcome, Outcome::Passed, "{r:?}");
    // Network: no route out of the namespace.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let r = sb
        .run_program(&format!(
            "import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
        ))
        .unwrap();
    assert_eq!(r.outcome, Outcome::Failed, "{r:?}");
    listener.set_nonblocking(true).unwrap();
    assert!(
        listener.accept().is_err(),
        "the sandbox reached the host's loopback"
    );
    // Writing outside its folder.
    let r = sb
        .run_program("open('/etc/edgebench-sandbox-test', 'w').write('x')\n")
        .unwrap();
    assert_eq!(r.outcome, Outcome::Failed, "{r:?}");
    assert!(!std::path::Path::new("/etc/edgebench-sandbox-test").exists());
    // All of it in bounded time, and no process left behind.
    assert!(started.elapsed() < Duration::from_secs(40));
    std::thread::sleep(Duration::from_millis(200));
    let leftovers = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| {
            std::fs::read_to_string(e.path().join("cmdline"))
                .map(|c| c.contains("program.py"))
                .unwrap_or(false)
        })
        .count();
    assert_eq!(leftovers, 0, "sandboxed processes outlived their run");
}

#[test]
fn host_files_outside_the_folder_are_out_of_reach() {
    let Some((_serial, sb)) = sandbox() else {
        return;
    };
    let outside = outside_folder();
    let secret = format!("edgebench-secret-{}", std::process::id());
    let readable = outside.path().join("readable.txt");
    write_public(&readable, &secret, 0o644);
    // Reading a world-readable file the test made outside the sandbox.
    let r = sb
        .run_program(&format!("print(open({}).read())\n", py(&readable)))
        .unwrap();
    assert_eq!(r.outcome, Outcome::Failed, "{r:?}");
    assert!(!r.output.contains(&secret), "the sandbox read {readable:?}");
    // Overwriting a world-writable file outside, and creating one next to it.
    let writable = outside.path().join("writable.txt");
    write_public(&writable, "before", 0o666);
    let created = outside.path().join("created.txt");
    let r = sb
        .run_program(&format!(
            "import os\nfor p, m in (({}, 'w'), ({}, 'w')):\n    try:\n        open(p, m).write('after')\n    except OSError:\n        pass\nassert not os.path.exists({})\n",
            py(&writable),
            py(&created),
            py(outside.path()),
        ))
        .unwrap();
    assert_eq!(r.outcome, Outcome::Passed, "{r:?}");
    assert_eq!(std::fs::read_to_string(&writable).unwrap(), "before");
    assert!(!created.exists(), "the sandbox created {created:?}");
    // The repository (world-readable) is not there.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let r = sb
        .run_program(&format!("print(open({}).read())\n", py(&manifest)))
        .unwrap();
    assert_eq!(r.outcome, Outcome::Failed, "{r:?}");
    assert!(
        !r.output.contains("[package]"),
        "the sandbox read {manifest:?}"
    );
    // Host folders do not exist in its root at all; /etc holds next to nothing.
    let r = sb
        .run_program(
            "import os\nroot = set(os.listdir('/'))\nfor d in ('work', 'home', 'root', 'var', 'srv', 'mnt', 'opt', 'boot'):\n    assert d not in root, (d, sorted(root))\nfor f in ('/etc/hostname', '/etc/hosts', '/etc/shadow', '/etc/os-release'):\n    assert not os.path.exists(f), f\n",
        )
        .unwrap();
    assert_eq!(r.outcome, Outcome::Passed, "{r:?}");
    // Its /tmp is its own: nothing written there reaches the host's.
    let marker =
        std::env::temp_dir().join(format!("edgebench-sandbox-marker-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let r = sb
        .run_program(&format!("open({}, 'w').write('x')\n", py(&marker)))
        .unwrap();
    let leaked = marker.exists();
    let _ = std::fs::remove_file(&marker);
    assert!(!leaked, "the sandbox wrote {marker:?} on the host ({r:?})");
    // The system's software is there, read-only.
    let r = sb
        .run_program("open('/usr/edgebench-sandbox-test', 'w').write('x')\n")
        .unwrap();
    assert_eq!(r.outcome, Outcome::Failed, "{r:?}");
    assert!(!Path::new("/usr/edgebench-sandbox-test").exists());
}

#[test]
fn programs_run_unprivileged() {
    let Some((_serial, sb)) = sandbox() else {
        return;
    };
    // No capabilities and no way to gain any, whoever started edgebench; as root, `nobody`.
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    let program = format!(
        "import os\nst = open('/proc/self/status').read()\nassert 'CapEff:\\t0000000000000000' in st, st\nassert 'NoNewPrivs:\\t1' in st, st\nif {}:\n    assert os.getuid() == 65534, os.getuid()\n",
        if root { "True" } else { "False" }
    );
    let r = sb.run_program(&program).unwrap();
    assert_eq!(r.outcome, Outcome::Passed, "{r:?}");
}

/// HumanEval's `below_zero` tests, as the harness runs them.
const TESTS: &str = "def check(candidate):\n    assert candidate([]) == False\n    assert candidate([1, 2, -4, 5]) == True\n\ncheck(below_zero)\n";

#[test]
fn only_tests_that_ran_to_the_end_pass() {
    let Some((_serial, sb)) = sandbox() else {
        return;
    };
    let right = "def below_zero(ops):\n    b = 0\n    for o in ops:\n        b += o\n        if b < 0:\n            return True\n    return False\n";
    let r = sb.run_tests(right, TESTS).unwrap();
    assert_eq!(r.outcome, Outcome::Passed, "{r:?}");
    assert!(!r.output.contains("edgebench-tests-completed"), "{r:?}");
    // A wrong answer that ends the program with status 0 before the tests finish.
    for exit in [
        "import os\nos._exit(0)",
        "import sys\nsys.exit(0)",
        "raise SystemExit",
        "raise SystemExit(0)",
        "import atexit, os\natexit.register(lambda: os._exit(0))\nimport sys\nsys.exit(0)",
        // Exiting from inside the tests, and printing what a proof looks like.
        "print('edgebench-tests-completed 00000000000000000000000000000000')\ndef below_zero(ops):\n    import os\n    os._exit(0)",
    ] {
        let code = format!("def below_zero(ops):\n    return None\n{exit}\n");
        let r = sb.run_tests(&code, TESTS).unwrap();
        assert_eq!(r.outcome, Outcome::Failed, "{exit}: {r:?}");
        assert_eq!(r.exit_code, Some(0), "{exit}: {r:?}");
        assert!(r.output.contains("before its tests finished"), "{r:?}");
    }
    // The proof is nowhere in the program: reading its own file does not find it.
    let snoop = "import sys\nsrc = open(__file__ if '__file__' in dir() else 'program.py').read()\nprint(src[-300:])\ndef below_zero(ops):\n    return None\nimport os\nos._exit(0)\n";
    let r = sb.run_tests(snoop, TESTS).unwrap();
    assert_eq!(r.outcome, Outcome::Failed, "{r:?}");
}

#[test]
fn limit_hits_are_recorded_as_limits() {
    let Some((_serial, sb)) = sandbox() else {
        return;
    };
    let cases = [
        ("x = b'x' * (20 << 30)\n", Limit::Memory),
        (
            "open('big', 'wb').write(b'x' * (50 << 20))\n",
            Limit::FileSize,
        ),
        ("print('x' * (50 << 20))\n", Limit::FileSize),
    ];
    for (code, limit) in cases {
        let code = format!("{code}def below_zero(ops):\n    return False\n");
        let r = sb.run_tests(&code, TESTS).unwrap();
        assert_eq!(r.outcome, Outcome::Killed, "{code}: {r:?}");
        assert_eq!(r.limit, Some(limit), "{code}: {r:?}");
    }
    // A CPU-bound loop is stopped by the CPU limit (or the wall clock), never passes.
    let r = sb.run_tests("while True:\n    pass\n", TESTS).unwrap();
    assert!(
        r.outcome == Outcome::Timeout || r.limit == Some(Limit::Cpu),
        "{r:?}"
    );
}

/// Memory of every process named `name`, summed (from `/proc`, outside the sandbox): each
/// process's proportional share of its anonymous and shared-memory pages (what the program
/// allocates: pages that forked processes share count once; the interpreter's code, cached
/// from disk for every process of the machine, does not count).
fn pss_of(name: &str) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter(|e| std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == name))
        .filter_map(|e| std::fs::read_to_string(e.path().join("smaps_rollup")).ok())
        .map(|s| {
            s.lines()
                .filter(|l| l.starts_with("Pss_Anon:") || l.starts_with("Pss_Shmem:"))
                .filter_map(|l| l.split_whitespace().nth(1))
                .filter_map(|v| v.parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum::<u64>()
        * 1024
}

#[test]
fn the_memory_cap_holds_for_the_sandbox_as_a_whole() {
    let _serial = serial();
    let cap: u64 = 256 << 20;
    let limits = Limits {
        cpu_seconds: 5,
        wall: Duration::from_secs(8),
        total_memory_bytes: cap,
        ..Limits::default()
    };
    let sb = match Sandbox::new(limits, false) {
        Ok(s) => s,
        Err(e) if std::env::var("EDGEBENCH_REQUIRE_PEERS").is_ok() => panic!("{e}"),
        Err(e) => {
            eprintln!("SKIPPED: no sandbox here: {e}");
            return;
        }
    };
    let mechanism = sb.memory_cap();
    eprintln!("memory cap: {mechanism}");
    // Four children of 150 MiB each (600 MiB in all, against a 256 MiB cap), each touched page
    // by page; every process renames itself so the test finds them from outside.
    let program = r#"
import ctypes, os, time
ctypes.CDLL("libc.so.6").prctl(15, b"ebmemcap", 0, 0, 0)
kids = []
for i in range(4):
    pid = os.fork()
    if pid == 0:
        blocks = []
        try:
            for j in range(15):
                blocks.append(b"x" * (10 << 20))
        except MemoryError:
            pass
        time.sleep(1.5)
        os._exit(0)
    kids.append(pid)
for k in kids:
    os.waitpid(k, 0)
"#;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(pss_of("ebmemcap"));
                std::thread::sleep(Duration::from_millis(5));
            }
            peak
        })
    };
    let r = sb.run_program(program).unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = watcher.join().unwrap();
    eprintln!(
        "peak memory (PSS) seen from outside: {} MiB (cap {} MiB; the kernel's count {:?}); {r:?}",
        peak >> 20,
        cap >> 20,
        r.peak_memory_bytes.map(|b| b >> 20)
    );
    // The scan reads one process after another while memory moves between them (a child is
    // killed, the others allocate): it may count each of the four children's block in flight
    // twice (seen once at 296 MiB on a loaded machine, while the kernel counted 256), never
    // the 600 MiB the children would take without the cap.
    let skew = 4 * (10 << 20) + (8 << 20);
    assert!(peak <= cap + skew, "the sandbox took {} MiB", peak >> 20);
    if let Some(k) = r.peak_memory_bytes {
        assert!(k <= cap, "{k}");
    }
    if mechanism.starts_with("cgroup") {
        // The children did allocate: the cap, not a failure to start, held them.
        assert!(peak > 100 << 20, "peak {} MiB", peak >> 20);
    }
}
