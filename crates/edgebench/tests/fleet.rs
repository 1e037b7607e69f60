//! The fleet queue end to end, against a real PostgreSQL server started for the test: six plans
//! queued, two agent processes draining them, one killed mid-plan and its plan resumed by the
//! other after the lease, each plan run exactly once and no request counted twice.

use std::collections::BTreeSet;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use edgebench_core::store::{temp_pg, QueueStatus, Store, StoreLocation};

fn edgebench() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_edgebench"));
    c.env(
        "EDGEBENCH_HOME",
        std::env::temp_dir().join("edgebench-cli-test-home"),
    )
    .env("EDGEBENCH_SETTLE_TIMEOUT", "1")
    .env_remove("EDGEBENCH_STORE");
    c
}

fn output(args: &[&str]) -> Output {
    edgebench().args(args).output().expect("run edgebench")
}

/// An agent process, killed when the test ends however it ends.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn agent(url: &str, results: &std::path::Path, label: &str) -> Agent {
    Agent(
        edgebench()
            .args([
                "agent",
                "--store",
                url,
                "--results",
                results.to_str().unwrap(),
                "--label",
                label,
                "--lease",
                "3",
                "--poll",
                "0.2",
                "--drain",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start an agent"),
    )
}

/// Requests committed so far in an experiment.
fn committed(store: &Store, experiment: &str) -> usize {
    store
        .units(experiment)
        .unwrap()
        .iter()
        .map(|u| store.requests(u.id).unwrap().len())
        .sum()
}

#[test]
fn two_agents_drain_a_queue_and_a_killed_agents_plan_is_resumed_once() {
    let Some(url) = temp_pg::database() else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    // Without a store the queue is refused in one line.
    let o = output(&["queue", "list"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("--store"), "{err}");
    // Out-of-range plans are refused before they reach the queue.
    let o = output(&[
        "queue",
        "add",
        "--store",
        &url,
        "run",
        "--endpoint",
        "mock",
        "--timeout",
        "-1",
    ]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // 21 requests of ~105 ms each: a plan takes a few seconds on the mock target.
    let o = output(&[
        "queue",
        "add",
        "--store",
        &url,
        "--copies",
        "6",
        "run",
        "--endpoint",
        "mock",
        "--runs",
        "20",
        "--warmup",
        "1",
        "--cooldown",
        "0",
        "--max-tokens",
        "100",
        "--scenarios",
        "interactive_assistant",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let store = Store::connect(&StoreLocation::parse(&url)).unwrap();
    assert_eq!(store.queue().unwrap().len(), 6);

    let mut a = agent(&url, &d.path().join("a"), "bench-node");
    let mut b = agent(&url, &d.path().join("b"), "bench-node");
    let a_pid = format!(":{}", a.0.id());
    // Kill agent A once it holds a plan with some of its requests committed.
    let t0 = Instant::now();
    let killed = loop {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "agent A never got going"
        );
        let held = store.queue().unwrap().into_iter().find(|i| {
            i.status == QueueStatus::Running
                && i.agent.as_deref().is_some_and(|n| n.ends_with(&a_pid))
                && i.experiment_id.is_some()
        });
        if let Some(i) = held {
            let exp = i.experiment_id.clone().unwrap();
            if committed(&store, &exp) >= 3 {
                a.0.kill().unwrap();
                a.0.wait().unwrap();
                break i;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let partial = committed(&store, killed.experiment_id.as_deref().unwrap());
    assert!(partial < 21, "agent A finished before it was killed");

    // B drains the rest, waiting out A's lease to take its plan.
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = b.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "agent B did not drain the queue"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut log = String::new();
    std::io::Read::read_to_string(b.0.stderr.as_mut().unwrap(), &mut log).unwrap();
    assert!(status.success(), "agent B: {log}");
    assert!(
        log.contains(&format!(
            "resuming {}",
            killed.experiment_id.as_deref().unwrap()
        )),
        "{log}"
    );

    let queue = store.queue().unwrap();
    assert_eq!(queue.len(), 6);
    for i in &queue {
        assert_eq!(i.status, QueueStatus::Done, "{i:?}");
        assert!(!i.agent.as_deref().unwrap().ends_with(&a_pid), "{i:?}");
        let want = if i.id == killed.id { 2 } else { 1 };
        assert_eq!(i.attempts, want, "{i:?}");
    }
    // Each plan is exactly one experiment, done, with each request index once.
    let experiments = store.experiments().unwrap();
    assert_eq!(experiments.len(), 6);
    let ids: BTreeSet<_> = queue
        .iter()
        .filter_map(|i| i.experiment_id.clone())
        .collect();
    assert_eq!(ids.len(), 6);
    for e in &experiments {
        assert!(ids.contains(&e.id), "{} is no queued plan's", e.id);
        assert_eq!(e.status, "done", "{}", e.id);
        let units = store.units(&e.id).unwrap();
        assert_eq!(units.len(), 1);
        let requests = store.requests(units[0].id).unwrap();
        let indices: BTreeSet<_> = requests
            .iter()
            .map(|r| (r.record.warmup, r.record.index))
            .collect();
        assert_eq!(requests.len(), 21, "{}", e.id);
        assert_eq!(indices.len(), 21, "{}: a request counted twice", e.id);
    }
    // `queue list` shows them.
    let o = output(&["queue", "list", "--store", &url]);
    assert!(o.status.success());
    let list = String::from_utf8_lossy(&o.stdout);
    assert_eq!(list.matches(" done ").count(), 6, "{list}");
}
