//! The experiment lifecycle as a front end sees it: a mock run's events arrive in order and its
//! files appear; a cancelled run stops as interrupted and resumes to the end without measuring
//! a finished unit twice.

use std::sync::{Arc, Mutex};

use edgebench_core::experiment::perf::{self, Models, PerfPlan};
use edgebench_core::experiment::{
    targets, BackendSpec, CancelFlag, Context, Event, ExperimentError, NoEngine, Resume,
};
use edgebench_core::repro::Environment;
use edgebench_core::results::ResultsFolder;
use edgebench_core::runner::RunPlan;
use edgebench_core::workload::ScenarioFile;

fn plan(dir: &std::path::Path, resume: Resume) -> PerfPlan {
    let file = ScenarioFile::default_file().unwrap();
    let scenarios = file
        .select(&["interactive_assistant,structured_json_output".to_string()])
        .unwrap()
        .into_iter()
        .cloned()
        .collect();
    PerfPlan {
        full: None,
        run: RunPlan {
            runs: 3,
            warmup: 1,
            cooldown_s: 0.0,
            max_tokens: Some(4),
            ..RunPlan::default()
        },
        file,
        scenarios,
        scenarios_source: "built-in".into(),
        models: Models::Given(vec![(targets::mock_model(), BackendSpec::Mock)]),
        serve: None,
        results_dir: dir.to_path_buf(),
        store: None,
        no_checkpoint: false,
        resume,
        command: "edgebench run --endpoint mock".into(),
        environment: Environment::capture("test", None, &["CPU"]),
        request: None,
        fit: Default::default(),
    }
}

/// A context whose events are collected, and whose token `cancel_after` request events cancel.
fn context(events: Arc<Mutex<Vec<Event>>>, cancel_after: Option<usize>) -> Context {
    let cancel = CancelFlag::default();
    let c = cancel.clone();
    let sink = move |e: Event| {
        let mut g = events.lock().unwrap();
        g.push(e);
        let requests = g
            .iter()
            .filter(|e| matches!(e, Event::RequestDone { .. }))
            .count();
        if cancel_after.is_some_and(|n| requests >= n) {
            c.cancel();
        }
    };
    Context {
        events: Arc::new(sink),
        cancel,
        engine: Arc::new(NoEngine),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_reports_its_life_in_order_and_leaves_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let out = perf::run(plan(dir.path(), Resume::No), &context(events.clone(), None))
        .await
        .unwrap();
    let ev = events.lock().unwrap();
    assert!(
        matches!(ev.first(), Some(Event::Started { resumed: false, .. })),
        "{ev:?}"
    );
    assert!(
        matches!(ev.last(), Some(Event::Finished { status, .. }) if status == "done"),
        "{ev:?}"
    );
    let kinds: Vec<&str> = ev
        .iter()
        .filter_map(|e| match e {
            Event::UnitStarted { .. } => Some("start"),
            Event::RequestDone { .. } => Some("req"),
            Event::UnitDone { .. } => Some("done"),
            _ => None,
        })
        .collect();
    let unit = ["start", "req", "req", "req", "req", "done"];
    assert_eq!(
        kinds,
        [unit, unit].concat(),
        "1 warm-up + 3 measured per unit"
    );
    assert_eq!(out.summary.models[0].units.len(), 2);
    for u in &out.summary.models[0].units {
        assert_eq!(u.summary.requests, 3);
    }
    let folder = ResultsFolder::open(dir.path()).unwrap();
    assert_eq!(folder.run_summaries().unwrap().len(), 1);
    assert_eq!(folder.perf_files(None).unwrap().len(), 2);
    let lines = folder.perf_lines(None).unwrap();
    assert_eq!(
        lines.len(),
        8,
        "each request once, from exports and store alike"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_run_is_interrupted_and_resumes_to_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    // Cancel during the second unit: the first is done, the second is not.
    let err = perf::run(
        plan(dir.path(), Resume::No),
        &context(events.clone(), Some(6)),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ExperimentError::Interrupted), "{err}");
    let checkpoint = events
        .lock()
        .unwrap()
        .iter()
        .find_map(|e| match e {
            Event::Finished {
                status, checkpoint, ..
            } if status == "interrupted" => Some(checkpoint.clone()),
            _ => None,
        })
        .expect("an interrupted Finished event");
    assert!(checkpoint.contains("1/2 units done"), "{checkpoint}");
    assert!(checkpoint.contains("--resume"), "{checkpoint}");

    let events = Arc::new(Mutex::new(Vec::new()));
    let out = perf::run(
        plan(dir.path(), Resume::Latest),
        &context(events.clone(), None),
    )
    .await
    .unwrap();
    let ev = events.lock().unwrap();
    assert!(
        matches!(ev.first(), Some(Event::Started { resumed: true, .. })),
        "{ev:?}"
    );
    let started = ev
        .iter()
        .filter(|e| matches!(e, Event::UnitStarted { .. }))
        .count();
    assert_eq!(started, 1, "only the unfinished unit runs again");
    assert_eq!(out.summary.models[0].units.len(), 2);
    let lines = ResultsFolder::open(dir.path())
        .unwrap()
        .perf_lines(None)
        .unwrap();
    assert_eq!(lines.len(), 8, "no request lost or doubled by the resume");
}

#[tokio::test]
async fn a_plan_that_fails_before_measuring_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let mut p = plan(&results, Resume::No);
    p.models = Models::Given(vec![(
        targets::mock_model(),
        BackendSpec::Embedded(Default::default()),
    )]);
    let err = perf::run(p, &context(Arc::new(Mutex::new(Vec::new())), None))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no embedded engine"), "{err}");
    assert!(!results.exists(), "the folder this run created is gone");
}

/// A front end (the web server) runs experiments on spawned tasks: their futures are `Send`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn experiments_run_on_spawned_tasks() {
    fn is_send<T: Send>(_: &T) {}
    let dir = tempfile::tempdir().unwrap();
    let ctx = Arc::new(context(Arc::new(Mutex::new(Vec::new())), None));
    let eval_plan = edgebench_core::experiment::eval::EvalPlan {
        tasks: vec!["gsm8k"],
        models: edgebench_core::experiment::eval::EvalModels::Embedded(
            Vec::new(),
            Default::default(),
        ),
        options: Default::default(),
        results_dir: dir.path().join("evals"),
        store: None,
        resume: Resume::No,
        command: String::new(),
        environment: Environment::capture("test", None, &["CPU"]),
        settle: None,
        monitor_interval: std::time::Duration::from_millis(500),
    };
    is_send(&edgebench_core::experiment::eval::run(eval_plan, &ctx));
    let p = plan(dir.path(), Resume::No);
    let c = ctx.clone();
    let out = tokio::spawn(async move { perf::run(p, &c).await })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.summary.models[0].units.len(), 2);
}
