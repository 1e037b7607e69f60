//! The team store end to end, against a real PostgreSQL server started for the test: a run
//! written straight to it, push twice, pull, import twice, with counts checked at each step.

use std::path::Path;
use std::process::{Command, Output};

use edgebench_core::store::temp_pg;

fn edgebench(args: &[&str]) -> Output {
    command(args).output().expect("run edgebench")
}

/// The binary with the test's environment (no store from the caller's shell).
fn command(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_edgebench"));
    c.args(args)
        .env(
            "EDGEBENCH_HOME",
            std::env::temp_dir().join("edgebench-cli-test-home"),
        )
        .env("EDGEBENCH_SETTLE_TIMEOUT", "1")
        .env_remove("EDGEBENCH_STORE");
    c
}

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// (experiments, sum of records over every unit) in a store, through `results show --json`.
fn counts(results: &Path, store: Option<&str>) -> (usize, i64) {
    let mut base = vec!["results", "--results", results.to_str().unwrap()];
    if let Some(s) = store {
        base.extend(["--store", s]);
    }
    let list: serde_json::Value =
        serde_json::from_str(&ok(edgebench(&[&base[..], &["list", "--json"]].concat()))).unwrap();
    let mut records = 0;
    for e in list.as_array().unwrap() {
        let id = e["id"].as_str().unwrap();
        let show: serde_json::Value = serde_json::from_str(&ok(edgebench(
            &[&base[..], &["show", id, "--json"]].concat(),
        )))
        .unwrap();
        records += show["units"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["requests"].as_i64().unwrap())
            .sum::<i64>();
    }
    (list.as_array().unwrap().len(), records)
}

#[test]
fn push_pull_and_import_through_a_team_store_add_nothing_twice() {
    let Some(url) = temp_pg::database() else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let laptop = d.path().join("laptop");
    let run = |dir: &Path, extra: &[&str]| {
        ok(edgebench(
            &[
                &[
                    "run",
                    "--endpoint",
                    "mock",
                    "--runs",
                    "3",
                    "--warmup",
                    "1",
                    "--cooldown",
                    "0",
                    "--scenarios",
                    "interactive_assistant",
                    "--results",
                    dir.to_str().unwrap(),
                ][..],
                extra,
            ]
            .concat(),
        ))
    };
    run(&laptop, &[]);
    run(&laptop, &["--seed", "7"]);
    let local = counts(&laptop, None);
    assert_eq!(local, (2, 8), "two runs of 1 warm-up + 3 requests");

    let lp = laptop.to_str().unwrap();
    let push = edgebench(&["push", "--results", lp, "--store", &url]);
    assert!(String::from_utf8_lossy(&push.stderr).contains("2 new"));
    ok(push);
    let again = edgebench(&["push", "--results", lp, "--store", &url]);
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("0 new, 0 updated, 2 already there"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(
        counts(&laptop, Some(&url)),
        local,
        "pushed twice, stored once"
    );

    // A run written straight to the team store: files in the folder, rows in PostgreSQL.
    let direct = d.path().join("direct");
    run(&direct, &["--store", &url, "--seed", "9"]);
    assert!(!direct.join("edgebench.db").exists());
    assert_eq!(counts(&laptop, Some(&url)), (3, 12));

    // Pulled into an empty folder: everything, once.
    let desk = d.path().join("desk");
    let dp = desk.to_str().unwrap();
    ok(edgebench(&["pull", "--results", dp, "--store", &url]));
    ok(edgebench(&["pull", "--results", dp, "--store", &url]));
    assert_eq!(counts(&desk, None), (3, 12));

    // Another machine's export imported twice: one experiment more.
    let other = d.path().join("other");
    run(&other, &["--seed", "11"]);
    let list: serde_json::Value = serde_json::from_str(&ok(edgebench(&[
        "results",
        "--results",
        other.to_str().unwrap(),
        "list",
        "--json",
    ])))
    .unwrap();
    let id = list[0]["id"].as_str().unwrap().to_string();
    let file = d.path().join("other.json");
    ok(edgebench(&[
        "results",
        "--results",
        other.to_str().unwrap(),
        "export",
        &id,
        "--format",
        "json",
        "-o",
        file.to_str().unwrap(),
    ]));
    ok(edgebench(&[
        "import",
        file.to_str().unwrap(),
        "--store",
        &url,
    ]));
    ok(edgebench(&[
        "import",
        file.to_str().unwrap(),
        "--store",
        &url,
    ]));
    assert_eq!(counts(&laptop, Some(&url)), (4, 16));

    // A store URL that answers nothing is one clear line, exit 2.
    let bad = edgebench(&[
        "push",
        "--results",
        lp,
        "--store",
        "postgres://nobody:secret@127.0.0.1:1/none",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("127.0.0.1:1") && !err.contains("secret"),
        "{err}"
    );
}

/// `edgebench` with a machine label.
fn edgebench_on(label: &str, args: &[&str]) -> Output {
    command(args)
        .env("EDGEBENCH_MACHINE_LABEL", label)
        .output()
        .expect("run edgebench")
}

#[test]
fn machines_compared_in_a_team_store_give_compares_figures_and_reports_read_it() {
    let Some(url) = temp_pg::database() else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    // Two machines' runs, each exported and imported into the team store.
    let mut exports = Vec::new();
    for label in ["node-a", "node-b"] {
        let dir = d.path().join(label);
        let dp = dir.to_str().unwrap();
        ok(edgebench_on(
            label,
            &[
                "run",
                "--endpoint",
                "mock",
                "--runs",
                "8",
                "--warmup",
                "1",
                "--cooldown",
                "0",
                "--max-tokens",
                "20",
                "--scenarios",
                "interactive_assistant",
                "--results",
                dp,
            ],
        ));
        let list: serde_json::Value = serde_json::from_str(&ok(edgebench(&[
            "results",
            "--results",
            dp,
            "list",
            "--json",
        ])))
        .unwrap();
        let id = list[0]["id"].as_str().unwrap().to_string();
        let file = d.path().join(format!("{label}.json"));
        ok(edgebench(&[
            "results",
            "--results",
            dp,
            "export",
            &id,
            "--format",
            "json",
            "--output",
            file.to_str().unwrap(),
        ]));
        let o = edgebench(&["import", file.to_str().unwrap(), "--store", &url]);
        let said = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{said}");
        // Runs of two machines in one second share an id: the store names the copy.
        let id = said
            .split(" as ")
            .nth(1)
            .and_then(|t| t.split_whitespace().next())
            .map_or(id, str::to_string);
        exports.push((id, file));
    }
    // A bench of node-a's memory, kept with it in the store, normalises its decode speed.
    if let Ok(model) = std::env::var("EDGEBENCH_TEST_MODEL") {
        ok(edgebench_on(
            "node-a",
            &[
                "hw",
                "bench",
                "--models",
                &model,
                "--no-decode",
                "--sizes",
                "64",
                "--runs",
                "1",
                "--store",
                &url,
            ],
        ));
    }

    let by_machine: serde_json::Value = serde_json::from_str(&ok(edgebench(&[
        "compare",
        "--store",
        &url,
        "--machines",
        "node-a,node-b",
        "--json",
    ])))
    .unwrap();
    let (a, b) = (&exports[0].1, &exports[1].1);
    let direct = edgebench(&[
        "compare",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--json",
    ]);
    let direct: serde_json::Value = serde_json::from_slice(&direct.stdout).unwrap();
    let labels: Vec<&str> = by_machine["machines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["node-a", "node-b"]);
    let test = &by_machine["tests"][0]["comparison"];
    assert!(test.is_object(), "{by_machine}");
    assert_eq!(
        test["scenarios"], direct["scenarios"],
        "the machine comparison's tests are compare's"
    );
    let metrics = direct["scenarios"][0]["metrics"].as_array().unwrap();
    assert!(metrics
        .iter()
        .any(|m| m["metric"] == "ttft_ms" && m["p_value"].is_number()));
    if std::env::var("EDGEBENCH_TEST_MODEL").is_ok() {
        let bw = by_machine["machines"][0]["read_bandwidth_gb_s"]
            .as_f64()
            .unwrap();
        assert!(bw > 0.0);
        let cell = &by_machine["rows"][0]["cells"][0];
        let decode = cell["decode_tokens_per_s"]["mean"].as_f64().unwrap();
        let per = cell["decode_tokens_per_s_per_gb_s"].as_f64().unwrap();
        assert!((per - decode / bw).abs() < 1e-9 * per.abs().max(1.0));
        assert!(by_machine["machines"][1]["read_bandwidth_gb_s"].is_null());
    }

    // compare and report read the team store by experiment id, with no folder.
    let ids = (exports[0].0.as_str(), exports[1].0.as_str());
    let stored: serde_json::Value = serde_json::from_str(&ok(edgebench(&[
        "compare", "--store", &url, ids.0, ids.1, "--json",
    ])))
    .unwrap();
    assert_eq!(stored["scenarios"], direct["scenarios"]);
    let report = d.path().join("report");
    ok(edgebench(&[
        "report",
        "--store",
        &url,
        "--output",
        report.to_str().unwrap(),
        "--format",
        "json",
    ]));
    let files: Vec<_> = std::fs::read_dir(&report).unwrap().flatten().collect();
    let json = files
        .iter()
        .find(|f| f.path().extension().is_some_and(|e| e == "json"))
        .expect("a JSON report");
    let text = std::fs::read_to_string(json.path()).unwrap();
    assert!(
        text.contains(ids.0) && text.contains(ids.1),
        "both runs in the report"
    );
    // The report of a store holding two machines compares them, with compare's tests.
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        doc["machines"]["tests"][0]["comparison"]["scenarios"], direct["scenarios"],
        "the report's machine comparison is compare's"
    );
    ok(edgebench(&[
        "report",
        "--store",
        &url,
        "--machines",
        "node-b",
        "--output",
        report.to_str().unwrap(),
        "--format",
        "md",
    ]));
    let md = std::fs::read_dir(&report)
        .unwrap()
        .flatten()
        .find(|f| f.path().extension().is_some_and(|e| e == "md"))
        .map(|f| std::fs::read_to_string(f.path()).unwrap())
        .expect("a Markdown report");
    assert!(
        md.contains("## Machines") && md.contains("| node-b |"),
        "{md}"
    );
    assert!(
        !md.contains("| node-a |"),
        "only the machines asked for: {md}"
    );

    // A label the store does not know is one line naming it.
    let o = edgebench(&["compare", "--store", &url, "--machines", "node-a,node-z"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("node-z") && err.contains("node-a"), "{err}");
}
