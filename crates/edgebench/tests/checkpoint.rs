//! Checkpoint and resume on the mock target: SIGKILL at random points, many times, then resume;
//! the final experiment has every unit exactly once and no request lost or doubled. Ctrl-C
//! prints the checkpoint message and exits 130.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use edgebench_core::store::Store;

const ARGS: &[&str] = &[
    "run",
    "--endpoint",
    "mock",
    "--runs",
    "6",
    "--warmup",
    "1",
    "--cooldown",
    "0.02",
    "--max-tokens",
    "12",
];

fn start(results: &Path, resume: bool) -> std::process::Child {
    let mut c = Command::new(env!("CARGO_BIN_EXE_edgebench"));
    c.args(ARGS).arg("--results").arg(results);
    // The kill points are timed; waiting for a quiet machine would only move them.
    c.env("EDGEBENCH_SETTLE_TIMEOUT", "0");
    if resume {
        c.arg("--resume");
    }
    c.stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn sigkill_at_random_points_then_resume_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15; // a fixed seed: the same kill times every run
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut kills, mut resume) = (0, false);
    let (mut mid_unit, mut after_unit) = (0usize, 0usize);
    for attempt in 0.. {
        assert!(attempt < 300, "never finished");
        let mut child = start(&results, resume);
        let delay = Duration::from_millis(20 + next() % 500);
        let t0 = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break Some(s);
            }
            if t0.elapsed() >= delay {
                break None;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        match status {
            None => {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills += 1;
                resume = true;
                // Where did it die? Count kills inside a unit (some requests of an unfinished
                // unit committed) and after a finished unit, so the test shows it resumed both.
                if let Ok(st) = Store::open(&results.join("edgebench.db")) {
                    for e in st.experiments().unwrap() {
                        let units = st.units(&e.id).unwrap();
                        mid_unit +=
                            usize::from(units.iter().any(|u| u.status != "done" && u.requests > 0));
                        after_unit += usize::from(
                            units.iter().any(|u| u.status == "done")
                                && units.iter().any(|u| u.status != "done"),
                        );
                    }
                }
            }
            Some(s) if s.success() => break,
            Some(s) => {
                let mut err = String::new();
                std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
                // Killed before the experiment was recorded: nothing to resume yet. Or killed
                // after it was marked done, while printing its summary: nothing left to do.
                assert!(err.contains("nothing to resume"), "exit {s}: {err}");
                if err.contains("is done") {
                    break;
                }
                resume = false;
            }
        }
    }
    assert!(kills >= 5, "only {kills} kills");
    assert!(
        mid_unit >= 1 && after_unit >= 1,
        "{kills} kills: {mid_unit} inside a unit, {after_unit} between units"
    );

    let store = Store::open(&results.join("edgebench.db")).unwrap();
    assert!(store.integrity_ok().unwrap());
    let exps = store.experiments().unwrap();
    assert_eq!(exps.len(), 1, "one experiment");
    assert_eq!(exps[0].status, "done");
    let units = store.units(&exps[0].id).unwrap();
    assert_eq!(units.len(), 3);
    for u in &units {
        assert_eq!(u.status, "done", "{u:?}");
        let idx: Vec<u32> = store
            .requests(u.id)
            .unwrap()
            .iter()
            .map(|l| l.record.index)
            .collect();
        assert_eq!(
            idx,
            (0..7).collect::<Vec<_>>(),
            "{}: lost or doubled",
            u.key.scenario
        );
        let report = u.report.as_ref().unwrap();
        assert_eq!(report.summary.requests, 6);
        let file = report.file.as_ref().unwrap();
        let lines = std::fs::read_to_string(file).unwrap();
        let idx: Vec<u64> = lines
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["index"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(
            idx,
            (0..7).collect::<Vec<u64>>(),
            "export of {}",
            u.key.scenario
        );
    }
    assert!(results
        .join(format!("summary_{}.json", exps[0].id))
        .is_file());
    eprintln!("{kills} SIGKILLs before the run completed");
}

#[test]
fn ctrl_c_saves_the_checkpoint_and_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let child = start(&results, false);
    std::thread::sleep(Duration::from_millis(400));
    let st = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(
        err.contains("[Interrupted] Checkpoint saved. Use --resume to continue."),
        "{err}"
    );
    assert!(err.contains("CHECKPOINT SUMMARY"), "{err}");
    let finish = err
        .lines()
        .find_map(|l| l.trim().strip_prefix("to finish:"))
        .unwrap_or_else(|| panic!("no command to finish: {err}"))
        .trim()
        .to_string();
    assert!(finish.contains("edgebench run --endpoint mock"), "{finish}");
    assert!(finish.contains("--resume 20"), "{finish}");
    // The printed command, run as printed from another folder, finishes the experiment.
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(&finish)
        .current_dir(std::env::temp_dir())
        .env("EDGEBENCH_SETTLE_TIMEOUT", "0")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{finish}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("3/3 units done"));
}

#[test]
fn resume_alone_continues_the_latest_unfinished_run_as_it_was_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let child = start(&results, false);
    std::thread::sleep(Duration::from_millis(400));
    let st = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    // The snapshot beside the store says where it stopped and how to go on.
    let snapshot = || -> serde_json::Value {
        let f = std::fs::read_dir(&results)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("checkpoint_")
            })
            .expect("a checkpoint_{id}.json");
        serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap()
    };
    let s = snapshot();
    assert_eq!(s["status"], "interrupted", "{s}");
    assert!(
        s["resume_command"]
            .as_str()
            .unwrap()
            .contains("--resume 20"),
        "{s}"
    );
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_edgebench"))
            .args(args)
            .arg("--results")
            .arg(&results)
            .env("EDGEBENCH_SETTLE_TIMEOUT", "0")
            .output()
            .unwrap()
    };
    // A typed flag that contradicts it: refused, naming the flag and both values.
    let out = run(&["run", "--endpoint", "mock", "--runs", "3", "--resume"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let named = err
        .split("leave those flags out")
        .next()
        .unwrap_or_default();
    assert!(
        named.contains("--runs 3 (it ran with 6)") && !named.contains("--warmup"),
        "only what was typed: {err}"
    );
    // Another machine (a team store's other member) does not take it over.
    let out = Command::new(env!("CARGO_BIN_EXE_edgebench"))
        .args(ARGS)
        .args(["--resume", "--results"])
        .arg(&results)
        .env("EDGEBENCH_SETTLE_TIMEOUT", "0")
        .env("EDGEBENCH_MACHINE_LABEL", "another-machine")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("nothing to resume") && !err.contains("resuming experiment"),
        "{err}"
    );
    // `--resume` alone: the experiment as it was asked for (--runs 6, --warmup 1 ...).
    let out = run(&["run", "--resume"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("resuming experiment 20"), "{err}");
    assert!(
        err.contains("edgebench run --endpoint mock --runs 6"),
        "{err}"
    );
    assert!(err.contains("3/3 units done"), "{err}");
    assert_eq!(snapshot()["status"], "done");
    // Nothing unfinished is left: a second `--resume` says so.
    let out = run(&["run", "--resume"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to resume"));
}
