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
    assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as i64);
    s.create_experiment(&experiment("e1", "h", "2026-01-01"))
        .unwrap();
    drop(s);
    let s = Store::open(&p).unwrap();
    assert!(s.has_experiment("e1").unwrap());
    let mode: String = s
        .conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn experiments_are_found_by_hash_listed_and_deleted_with_their_units() {
    let mut s = Store::in_memory().unwrap();
    s.create_experiment(&experiment("a", "h1", "2026-01-01"))
        .unwrap();
    s.create_experiment(&experiment("b", "h1", "2026-01-02"))
        .unwrap();
    s.create_experiment(&experiment("c", "h2", "2026-01-03"))
        .unwrap();
    assert_eq!(s.latest_unfinished("h1").unwrap().unwrap().id, "b");
    s.set_status("b", "done").unwrap();
    assert_eq!(s.latest_unfinished("h1").unwrap().unwrap().id, "a");
    assert!(s.latest_unfinished("h3").unwrap().is_none());
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
    let mut s = Store::in_memory().unwrap();
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
    let pages: i64 = s
        .conn
        .query_row("PRAGMA page_count", [], |r| r.get(0))
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
        c.execute_batch(MIGRATIONS[0]).unwrap();
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
    assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as i64);
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
