//! Tests of the store: schema and migrations, experiments, units and requests, the checkpoint
//! rules (redo from start, no duplicates), and failures that must not corrupt the database.

use super::*;
use crate::record::{FinishReason, RequestRecord, TokenCountSource};
use crate::results::PerfLine;

/// The unit of model `m` (GGUF Q4_1, as the lines below) on scenario `s`.
fn key(m: &str, s: &str) -> UnitKey {
    UnitKey {
        model: m.into(),
        format: "GGUF".into(),
        quantization: "Q4_1".into(),
        scenario: s.into(),
        setting: String::new(),
    }
}

fn line(idx: u32, warmup: bool) -> PerfLine {
    PerfLine {
        run_id: "e1".into(),
        config_hash: "h".into(),
        model: "m".into(),
        publisher: "p".into(),
        format: "GGUF".into(),
        quantization: "Q4_1".into(),
        scenario: "s".into(),
        target: "mock".into(),
        record: RequestRecord {
            index: idx,
            warmup,
            prompt_id: format!("p{idx}"),
            t_scheduled_ns: 1,
            t_sent_ns: 1,
            t_first_byte_ns: None,
            chunks: vec![],
            t_end_ns: 2,
            prompt_tokens: Some(10),
            output_tokens: 0,
            reasoning_tokens: 0,
            token_count_source: TokenCountSource::Engine,
            finish_reason: FinishReason::Length,
            error: None,
            engine_timings: None,
            output_text: "x".repeat(200),
        },
        metrics: Default::default(),
        json_valid: None,
    }
}

fn experiment(id: &str, hash: &str, created: &str) -> ExperimentRow {
    ExperimentRow {
        id: id.into(),
        kind: "perf".into(),
        created: created.into(),
        config_hash: hash.into(),
        config_json: "{}".into(),
        command: "edgebench run".into(),
        status: "running".into(),
        uuid: String::new(),
        machine_id: String::new(),
    }
}

fn report() -> UnitReport {
    UnitReport {
        summary: crate::metrics::summarize_unit(
            &[],
            &crate::metrics::UnitContext {
                model: "m",
                scenario: "s",
                json: false,
                peak_rss_mb: None,
                duration_s: 1.0,
                seed: 1,
            },
        ),
        monitor: Default::default(),
        context_tokens: None,
        log_pattern_counts: Default::default(),
        log_pattern_counts_since_launch: Default::default(),
        server_warnings: Vec::new(),
        file: Some("results/x.jsonl".into()),
        settle: None,
        server_metrics: Default::default(),
    }
}

#[test]
fn schema_is_created_once_and_reopens() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("sub/edgebench.db");
    let s = Store::open(&p).unwrap();
    assert_eq!(s.schema_version().unwrap(), sqlite::MIGRATIONS.len() as i64);
    s.create_experiment(&experiment("e1", "h", "2026-01-01"))
        .unwrap();
    drop(s);
    let s = Store::open(&p).unwrap();
    assert!(s.has_experiment("e1").unwrap());
    let mode = s.query("PRAGMA journal_mode", vec![]).unwrap();
    assert_eq!(mode[0].text(0).unwrap(), "wal");
}

/// Runs a test on an in-memory SQLite store and on a fresh PostgreSQL database (when a server
/// can be started here; CI requires one).
fn each_backend(test: impl Fn(&mut Store)) {
    test(&mut Store::in_memory().unwrap());
    if let Some(url) = temp_pg::database() {
        let mut s = Store::connect(&StoreLocation::Postgres(url)).unwrap();
        assert_eq!(s.dialect(), Dialect::Postgres);
        test(&mut s);
    }
}

#[test]
fn another_machines_unfinished_experiment_is_not_resumed() {
    each_backend(|s| {
        let mine = ExperimentRow {
            machine_id: "m1".into(),
            ..experiment("a", "h1", "2026-01-01")
        };
        let theirs = ExperimentRow {
            machine_id: "m2".into(),
            ..experiment("b", "h1", "2026-01-02")
        };
        s.create_experiment(&mine).unwrap();
        s.create_experiment(&theirs).unwrap();
        assert_eq!(s.latest_unfinished("h1", "m1").unwrap().unwrap().id, "a");
        assert_eq!(s.latest_unfinished("h1", "m2").unwrap().unwrap().id, "b");
        assert!(s.latest_unfinished("h1", "m3").unwrap().is_none());
    });
}

#[test]
fn experiments_are_found_by_hash_listed_and_deleted_with_their_units() {
    each_backend(experiments_by_hash);
}

fn experiments_by_hash(s: &mut Store) {
    s.create_experiment(&experiment("a", "h1", "2026-01-01"))
        .unwrap();
    s.create_experiment(&experiment("b", "h1", "2026-01-02"))
        .unwrap();
    s.create_experiment(&experiment("c", "h2", "2026-01-03"))
        .unwrap();
    assert_eq!(s.latest_unfinished("h1", "").unwrap().unwrap().id, "b");
    s.set_status("b", "done").unwrap();
    assert_eq!(s.latest_unfinished("h1", "").unwrap().unwrap().id, "a");
    assert!(s.latest_unfinished("h3", "").unwrap().is_none());
    assert_eq!(
        s.experiments()
            .unwrap()
            .iter()
            .map(|e| e.id.as_str())
            .collect::<Vec<_>>(),
        ["c", "b", "a"]
    );
    s.ensure_units("a", &[key("m", "s")]).unwrap();
    let u = s.units("a").unwrap()[0].id;
    s.add_request(u, &line(0, false)).unwrap();
    assert!(s.delete_experiment("a").unwrap());
    assert!(!s.delete_experiment("a").unwrap());
    assert!(s.requests(u).unwrap().is_empty(), "cascade");
}

#[test]
fn units_keep_state_and_restart_from_scratch_without_duplicates() {
    each_backend(units_restart);
}

fn units_restart(s: &mut Store) {
    s.create_experiment(&experiment("e", "h", "t")).unwrap();
    let units = vec![key("m", "s1"), key("m", "s2")];
    s.ensure_units("e", &units).unwrap();
    s.ensure_units("e", &units).unwrap();
    let rows = s.units("e").unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|u| u.status == "pending"));
    let u = rows[0].id;
    s.start_unit(u).unwrap();
    s.add_request(u, &line(0, true)).unwrap();
    s.add_request(u, &line(1, false)).unwrap();
    assert!(
        s.add_request(u, &line(1, false)).is_err(),
        "an index is stored once"
    );
    // Interrupted here: the unit restarts from its start.
    s.start_unit(u).unwrap();
    assert!(s.requests(u).unwrap().is_empty());
    s.add_request(u, &line(0, true)).unwrap();
    s.add_request(u, &line(1, false)).unwrap();
    let samples = [crate::monitor::Sample {
        t_ns: 5,
        rss_mb: Some(1.5),
        cpu_percent: 50.0,
        temp_c: Some(64.0),
        energy_j: Some(2.5),
        ..Default::default()
    }];
    s.finish_unit(u, Some(&line(2, false)), &samples, &report())
        .unwrap();
    let rows = s.units("e").unwrap();
    assert_eq!((rows[0].status.as_str(), rows[0].requests), ("done", 3));
    assert!(rows[0].report.is_some());
    assert_eq!(
        s.requests(u)
            .unwrap()
            .iter()
            .map(|l| l.record.index)
            .collect::<Vec<_>>(),
        [0, 1, 2]
    );
    assert_eq!(s.samples(u).unwrap(), samples);
    s.fail_unit(rows[1].id, "boom").unwrap();
    assert_eq!(s.units("e").unwrap()[1].error.as_deref(), Some("boom"));

    // An eval unit finished twice (resumed) keeps the samples of the last pass only.
    let e = rows[1].id;
    let pass = |t: u64| crate::monitor::Sample {
        t_ns: t,
        cpu_percent: 10.0,
        ..Default::default()
    };
    s.finish_unit_report(e, "{}", None, &[pass(1), pass(2)])
        .unwrap();
    s.finish_unit_report(e, "{\"items\":3}", None, &[pass(9)])
        .unwrap();
    assert_eq!(s.samples(e).unwrap(), [pass(9)]);
    let row = &s.units("e").unwrap()[1];
    assert_eq!((row.status.as_str(), row.error.as_deref()), ("done", None));
    assert_eq!(row.report_json.as_deref(), Some("{\"items\":3}"));
}

#[test]
fn a_full_disk_is_a_clear_error_and_leaves_the_database_intact() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("edgebench.db");
    let mut s = Store::open(&p).unwrap();
    s.create_experiment(&experiment("e", "h", "t")).unwrap();
    s.ensure_units("e", &[key("m", "s")]).unwrap();
    let u = s.units("e").unwrap()[0].id;
    s.start_unit(u).unwrap();
    s.add_request(u, &line(0, false)).unwrap();
    let pages = s.query("PRAGMA page_count", vec![]).unwrap()[0]
        .int(0)
        .unwrap();
    s.set_max_pages(pages).unwrap();
    let mut failed = None;
    for i in 1..500 {
        if let Err(e) = s.add_request(u, &line(i, false)) {
            failed = Some(e);
            break;
        }
    }
    let e = failed.expect("the size limit is reached");
    assert!(e.to_string().contains("full"), "{e}");
    assert!(e.to_string().contains("edgebench.db"), "{e}");
    drop(s);
    let s = Store::open(&p).unwrap();
    assert!(s.integrity_ok().unwrap());
    assert!(!s.requests(u).unwrap().is_empty());
}

#[test]
fn unusable_paths_are_clear_errors() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let e = Store::open(&file.join("edgebench.db")).err().unwrap();
    assert!(e.to_string().contains("a-file"), "{e}");
    let not_db = d.path().join("not.db");
    std::fs::write(
        &not_db,
        b"this is not a database, just some text of enough length...",
    )
    .unwrap();
    let e = Store::open(&not_db).err().unwrap();
    assert!(e.to_string().contains("not.db"), "{e}");
}

#[test]
fn a_version_1_database_gains_the_sensor_columns_and_keeps_its_samples() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("edgebench.db");
    {
        let c = rusqlite::Connection::open(&p).unwrap();
        c.execute_batch(sqlite::MIGRATIONS[0]).unwrap();
        c.pragma_update(None, "user_version", 1).unwrap();
        c.execute_batch(
            "INSERT INTO experiments (id, kind, created, config_hash, config_json, command, status) \
             VALUES ('e', 'run', '2026-01-01', 'h', '{}', '', 'done'); \
             INSERT INTO units (id, experiment_id, model, scenario, position, status) \
             VALUES (1, 'e', 'm', 's', 0, 'done'); \
             INSERT INTO monitor_samples (unit_id, t_ns, rss_mb, cpu_percent) VALUES (1, 7, 2.0, 30.0);",
        )
        .unwrap();
    }
    let s = Store::open(&p).unwrap();
    assert_eq!(s.schema_version().unwrap(), sqlite::MIGRATIONS.len() as i64);
    let got = s.samples(1).unwrap();
    assert_eq!(
        got,
        [crate::monitor::Sample {
            t_ns: 7,
            rss_mb: Some(2.0),
            cpu_percent: 30.0,
            ..Default::default()
        }]
    );
}

/// A store holding one finished perf experiment (3 requests, a sample, a snapshot, a machine)
/// and one eval experiment with two scored items.
fn filled(s: &mut Store, id: &str) {
    s.create_experiment(&experiment(id, "h", "2026-01-01"))
        .unwrap();
    s.add_hardware_snapshot(id, "2026-01-01T00:00:00Z", "{\"cpu\":1}")
        .unwrap();
    s.set_machine(
        id,
        &MachineRow {
            id: "abcd".into(),
            label: "laptop-1".into(),
            hardware_json: "{}".into(),
            first_seen: "2026-01-01".into(),
            bench_json: None,
            bench_taken: None,
        },
    )
    .unwrap();
    s.ensure_units(id, &[key("m", "s1"), key("m", "s2")])
        .unwrap();
    let u = s.units(id).unwrap()[0].id;
    s.start_unit(u).unwrap();
    s.add_request(u, &line(0, true)).unwrap();
    s.add_request(u, &line(1, false)).unwrap();
    let sample = crate::monitor::Sample {
        t_ns: 3,
        rss_mb: Some(10.0),
        cpu_percent: 20.0,
        ..Default::default()
    };
    s.finish_unit(u, Some(&line(2, false)), &[sample], &report())
        .unwrap();
    let ev = format!("{id}-eval");
    s.create_experiment(&ExperimentRow {
        kind: "eval".into(),
        ..experiment(&ev, "h2", "2026-01-02")
    })
    .unwrap();
    s.ensure_units(&ev, &[key("m", "banking77")]).unwrap();
    let e = s.units(&ev).unwrap()[0].id;
    s.add_eval_items(
        e,
        &[("a".into(), "{\"x\":1}".into()), ("b".into(), "{}".into())],
    )
    .unwrap();
}

#[test]
fn experiments_copy_between_stores_without_duplicates() {
    let mut local = Store::in_memory().unwrap();
    filled(&mut local, "e1");
    let mut stores = vec![Store::in_memory().unwrap()];
    if let Some(url) = temp_pg::database() {
        stores.push(Store::connect(&StoreLocation::Postgres(url)).unwrap());
    }
    for team in &mut stores {
        let first = copy_experiments(&local, team, None).unwrap();
        assert_eq!((first.copied, first.records), (2, 5), "{first:?}");
        let again = copy_experiments(&local, team, None).unwrap();
        assert_eq!((again.copied, again.updated, again.unchanged), (0, 0, 2));
        assert_eq!(team.experiments().unwrap().len(), 2);
        for e in local.experiments().unwrap() {
            let a = local.read_experiment(&e.id).unwrap();
            let b = team.read_experiment(&e.id).unwrap();
            assert_eq!(a, b, "an experiment arrives whole");
        }
        assert_eq!(team.machines().unwrap()[0].label, "laptop-1");

        // Resumed and finished locally since: the next push replaces the team's copy.
        let u = local.units("e1").unwrap()[1].id;
        local.start_unit(u).unwrap();
        local
            .finish_unit(u, Some(&line(0, false)), &[], &report())
            .unwrap();
        local.set_status("e1", "done").unwrap();
        let third = copy_experiments(&local, team, None).unwrap();
        assert_eq!((third.updated, third.unchanged), (1, 1));
        assert_eq!(team.experiment("e1").unwrap().unwrap().status, "done");
        assert_eq!(team.units("e1").unwrap()[1].requests, 1);

        // Pulled back into an empty store: the same experiments, nothing doubled.
        let pulled = Store::in_memory().unwrap();
        copy_experiments(team, &pulled, None).unwrap();
        let again = copy_experiments(team, &pulled, None).unwrap();
        assert_eq!(again.unchanged, 2);
        assert_eq!(
            pulled.read_experiment("e1").unwrap(),
            local.read_experiment("e1").unwrap()
        );
        // Another machine's experiment with the same id keeps its own identity under a new id.
        let mut other = Store::in_memory().unwrap();
        filled(&mut other, "e1");
        copy_experiments(&other, team, None).unwrap();
        assert!(team.has_experiment("e1-2").unwrap());
        // Start the next store from the first state again.
        local = Store::in_memory().unwrap();
        filled(&mut local, "e1");
    }
}

#[test]
fn the_queue_hands_each_plan_to_one_agent_and_back_after_a_lease() {
    each_backend(queue_rules);
}

fn queue_rules(s: &mut Store) {
    let a = s.queue_add("run", "{\"runs\":1}", "").unwrap();
    let b = s.queue_add("run", "{\"runs\":2}", "gpu-box").unwrap();
    // The labelled plan goes only to its machine.
    let got = s.queue_claim("agent-1", "laptop", 60_000).unwrap().unwrap();
    assert_eq!((got.id, got.attempts), (a, 1));
    assert!(s
        .queue_claim("agent-2", "laptop", 60_000)
        .unwrap()
        .is_none());
    let got_b = s
        .queue_claim("agent-2", "gpu-box", 60_000)
        .unwrap()
        .unwrap();
    assert_eq!(got_b.id, b);
    assert!(s.queue_renew(a, "agent-1", 60_000).unwrap());
    assert!(
        !s.queue_renew(a, "agent-2", 60_000).unwrap(),
        "not its plan"
    );
    s.queue_set_experiment(a, "agent-1", "exp-1").unwrap();
    // agent-1 dies: its lease runs out and the plan goes to the next agent, experiment and all.
    assert!(s.queue_renew(a, "agent-1", -1).unwrap());
    let again = s.queue_claim("agent-3", "", 60_000).unwrap().unwrap();
    assert_eq!(
        (again.id, again.attempts, again.experiment_id.as_deref()),
        (a, 2, Some("exp-1"))
    );
    assert!(
        !s.queue_finish(a, "agent-1", QueueStatus::Done, None)
            .unwrap(),
        "the dead agent's late finish is ignored"
    );
    assert!(s
        .queue_finish(a, "agent-3", QueueStatus::Done, None)
        .unwrap());
    s.queue_release(b, "agent-2").unwrap();
    let q = s.queue().unwrap();
    assert_eq!(
        q.iter().map(|i| i.status).collect::<Vec<_>>(),
        [QueueStatus::Done, QueueStatus::Queued]
    );
}

#[test]
fn a_machines_bench_survives_its_next_experiment_and_a_newer_bench_replaces_it() {
    each_backend(machine_bench);
}

fn machine_bench(s: &mut Store) {
    let m = |bench: Option<&str>| MachineRow {
        id: "m1".into(),
        label: "node-1".into(),
        hardware_json: "{}".into(),
        first_seen: "2026-01-01".into(),
        bench_json: bench.map(str::to_string),
        bench_taken: bench.map(|_| "2026-01-02".to_string()),
    };
    s.set_machine_bench(&m(Some("{\"a\":1}"))).unwrap();
    s.create_experiment(&experiment("e1", "h", "2026-01-03"))
        .unwrap();
    s.set_machine("e1", &m(None)).unwrap();
    let got = s.machine("m1").unwrap().unwrap();
    assert_eq!(got.bench_json.as_deref(), Some("{\"a\":1}"));
    s.set_machine_bench(&m(Some("{\"a\":2}"))).unwrap();
    assert_eq!(
        s.machine("m1").unwrap().unwrap().bench_json.as_deref(),
        Some("{\"a\":2}")
    );
    assert_eq!(s.machines().unwrap().len(), 1);
}

#[test]
fn a_copy_renamed_in_the_team_store_reads_back_under_its_new_id() {
    // Two machines' experiments that started in the same second: the second keeps its identity
    // under `e1-2`, and the one reader gives its lines that id (their JSON still says `e1`).
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("team.db");
    let team = Store::connect(&StoreLocation::File(path.clone())).unwrap();
    for _ in 0..2 {
        let mut machine = Store::in_memory().unwrap();
        filled(&mut machine, "e1");
        copy_experiments(&machine, &team, None).unwrap();
    }
    assert!(team.has_experiment("e1-2").unwrap());
    drop(team);
    let folder = crate::results::ResultsFolder::open_store(&StoreLocation::File(path)).unwrap();
    let ids = ["e1-2".to_string()];
    let lines = folder.perf_lines(Some(&ids)).unwrap();
    assert!(!lines.is_empty());
    assert!(lines.iter().all(|l| l.run_id == "e1-2"), "{lines:?}");
}

#[test]
fn experiments_started_in_the_same_second_get_ids_of_their_own() {
    each_backend(same_second);
}

fn same_second(s: &mut Store) {
    let e = experiment("20261205_120000", "h", "2026-12-05");
    assert_eq!(s.create_experiment_free(&e).unwrap(), "20261205_120000");
    assert_eq!(s.create_experiment_free(&e).unwrap(), "20261205_120000-2");
    assert_eq!(s.create_experiment_free(&e).unwrap(), "20261205_120000-3");
    assert_eq!(s.experiments().unwrap().len(), 3);
}
