//! The code sandbox against hostile programs: each ends (failed, killed or timed out) within its
//! limits, and the machine is left as it was.

use std::time::{Duration, Instant};

use edgebench_core::eval::sandbox::{Limits, Outcome, Sandbox};

fn sandbox() -> Option<Sandbox> {
    let limits = Limits {
        cpu_seconds: 2,
        wall: Duration::from_secs(4),
        ..Limits::default()
    };
    match Sandbox::new(limits, false) {
        Ok(s) => Some(s),
        Err(e) if std::env::var("EDGEBENCH_REQUIRE_PEERS").is_ok() => panic!("{e}"),
        Err(e) => {
            eprintln!("SKIPPED: no sandbox here: {e}");
            None
        }
    }
}

#[test]
fn passing_and_failing_programs() {
    let Some(sb) = sandbox() else { return };
    let ok = sb
        .run_program("def f(x):\n    return x + 1\nassert f(1) == 2\n")
        .unwrap();
    assert_eq!(ok.outcome, Outcome::Passed, "{ok:?}");
    let bad = sb.run_program("assert 1 == 2\n").unwrap();
    assert_eq!(bad.outcome, Outcome::Failed);
    assert!(bad.output.contains("AssertionError"), "{bad:?}");
}

#[test]
fn hostile_programs_are_contained() {
    let Some(sb) = sandbox() else { return };
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
    // Files outside its folder: root-only files are out of reach (programs run unprivileged).
    let r = sb.run_program("open('/root/.bashrc').read()\n").unwrap();
    if std::path::Path::new("/root/.bashrc").exists()
        && std::env::var("USER").as_deref() != Ok("root")
    {
        assert_eq!(r.outcome, Outcome::Failed, "{r:?}");
    }
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
