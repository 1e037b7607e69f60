//! Tests of comparisons: detection power with a known shift, the false-positive rate without one,
//! pairing, Holm, decisions, and loading result sets from files.

use super::*;
use crate::metrics::RequestMetrics;
use crate::record::{FinishReason, RequestRecord, TokenCountSource};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    // Box-Muller.
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn line(prompt: &str, tps: f64, ok: bool, json: Option<bool>) -> PerfLine {
    PerfLine {
        run_id: "r".into(),
        config_hash: "h".into(),
        model: "m".into(),
        publisher: "p".into(),
        format: "GGUF".into(),
        quantization: "Q4_1".into(),
        scenario: "s".into(),
        target: "mock".into(),
        record: RequestRecord {
            index: 0,
            warmup: false,
            prompt_id: prompt.into(),
            t_scheduled_ns: 0,
            t_sent_ns: 0,
            t_first_byte_ns: None,
            chunks: vec![],
            t_end_ns: 0,
            prompt_tokens: None,
            output_tokens: 0,
            reasoning_tokens: 0,
            token_count_source: TokenCountSource::Engine,
            finish_reason: FinishReason::Length,
            error: (!ok).then(|| crate::record::RequestError {
                kind: crate::record::ErrorKind::Engine,
                message: "x".into(),
            }),
            engine_timings: None,
            output_text: String::new(),
        },
        metrics: RequestMetrics {
            output_tokens_per_s: Some(tps),
            ttft_ms: Some(1000.0 / tps),
            e2e_ms: 2000.0 / tps,
            ..RequestMetrics::default()
        },
        json_valid: json,
    }
}

fn set(label: &str, lines: Vec<PerfLine>) -> ResultSet {
    ResultSet {
        label: label.into(),
        run_id: label.into(),
        lines,
        units: vec![],
        evals: vec![],
    }
}

/// Two sides of `n` requests: baseline ~ N(100, 10) per prompt; candidate = baseline + shift +
/// N(0, 5) noise (paired), or an independent draw (unpaired, different prompt ids).
fn synthetic(seed: u64, n: usize, shift: f64, paired: bool) -> (ResultSet, ResultSet) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut b = Vec::new();
    let mut c = Vec::new();
    for i in 0..n {
        let base = 100.0 + 10.0 * normal(&mut rng);
        b.push(line(&format!("p{i}"), base, true, None));
        if paired {
            c.push(line(
                &format!("p{i}"),
                base + shift + 5.0 * normal(&mut rng),
                true,
                None,
            ));
        } else {
            let other = 100.0 + shift + 10.0 * normal(&mut rng);
            c.push(line(&format!("q{i}"), other, true, None));
        }
    }
    (set("base", b), set("cand", c))
}

fn quick() -> CompareOptions {
    CompareOptions {
        seed: 1,
        resamples: 200,
    }
}

fn p_of(cmp: &Comparison, metric: &str) -> f64 {
    cmp.scenarios[0]
        .metrics
        .iter()
        .find(|m| m.metric == metric)
        .and_then(|m| m.p_value)
        .unwrap()
}

fn rejection_rate(shift: f64, paired: bool, seeds: u64) -> f64 {
    let hits = (0..seeds)
        .filter(|&s| {
            let (b, c) = synthetic(s, 30, shift, paired);
            let cmp = compare(&b, &c, &Criteria::default(), &quick()).unwrap();
            p_of(&cmp, "output_tokens_per_s") < 0.05
        })
        .count();
    hits as f64 / seeds as f64
}

#[test]
fn a_known_shift_is_detected_at_the_stated_power_and_no_shift_stays_near_alpha() {
    // Paired, n = 30, shift of 0.8 sd of the differences (4 of 5): t-test power ~0.99.
    let power = rejection_rate(-4.0, true, 300);
    assert!(power >= 0.95, "paired power {power}");
    let alpha = rejection_rate(0.0, true, 300);
    assert!(alpha <= 0.08, "paired false-positive rate {alpha}");
    // Unpaired, n = 30 per side, shift of 0.8 sd (8 of 10): Welch power ~0.86.
    let power = rejection_rate(-8.0, false, 300);
    assert!(power >= 0.78, "unpaired power {power}");
    let alpha = rejection_rate(0.0, false, 300);
    assert!(alpha <= 0.08, "unpaired false-positive rate {alpha}");
}

#[test]
fn pairing_test_choice_change_ci_and_effect_are_reported() {
    let (b, c) = synthetic(7, 30, -10.0, true);
    let cmp = compare(&b, &c, &Criteria::default(), &CompareOptions::default()).unwrap();
    let s = &cmp.scenarios[0];
    assert!(s.paired, "{}", s.pairing);
    let m = s
        .metrics
        .iter()
        .find(|m| m.metric == "output_tokens_per_s")
        .unwrap();
    assert!(
        m.test.starts_with("paired t-test") || m.test.starts_with("Wilcoxon"),
        "{}",
        m.test
    );
    let rc = m.relative_change.unwrap();
    assert!((-0.13..-0.07).contains(&rc), "{rc}");
    let [lo, hi] = m.change_ci.unwrap();
    assert!(lo <= rc && rc <= hi && hi < 0.0);
    assert!(m.effect_size.unwrap() < -0.8, "{:?}", m.effect_size);
    assert_eq!(m.effect_label.as_deref(), Some("large"));
    assert!(m.p_holm.unwrap() >= m.p_value.unwrap());
    // TTFT got worse (higher), and is lower-is-better.
    let t = s.metrics.iter().find(|m| m.metric == "ttft_ms").unwrap();
    assert!(!t.higher_is_better && t.relative_change.unwrap() > 0.0);

    let (b, c) = synthetic(7, 12, -10.0, false);
    let cmp = compare(&b, &c, &Criteria::default(), &CompareOptions::default()).unwrap();
    let s = &cmp.scenarios[0];
    assert!(!s.paired && s.pairing.contains("share 0"), "{}", s.pairing);
    let m = s
        .metrics
        .iter()
        .find(|m| m.metric == "output_tokens_per_s")
        .unwrap();
    assert!(m.test.starts_with("Mann-Whitney"), "n < 20: {}", m.test);
    assert_eq!(m.effect_kind.as_deref(), Some("r"));
}

fn with_counts(mut s: ResultSet, counts: &[(&str, u64)]) -> ResultSet {
    let summary = crate::metrics::summarize_unit(
        &[],
        &crate::metrics::UnitContext {
            model: "m",
            scenario: "s",
            json: false,
            peak_rss_mb: Some(100.0),
            duration_s: 1.0,
            seed: 1,
        },
    );
    s.units = vec![crate::report::files::UnitReport {
        summary,
        monitor: Default::default(),
        context_tokens: None,
        log_pattern_counts: counts.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        file: None,
        settle: None,
        server_metrics: BTreeMap::new(),
    }];
    s
}

#[test]
fn decisions_follow_the_fp8_study_rules() {
    let c = Criteria::default();
    let run = |shift: f64, bw: u64, cw: u64| {
        let (b, cand) = synthetic(3, 30, shift, true);
        let b = with_counts(b, &[("fp8 warning", bw)]);
        let cand = with_counts(cand, &[("fp8 warning", cw)]);
        compare(&b, &cand, &c, &quick()).unwrap().decision
    };
    let d = run(-5.0, 12, 0);
    assert_eq!(d.verdict, Verdict::Apply, "{}", d.rule);
    assert!(d.rule.contains("warnings resolved (12 -> 0)"), "{}", d.rule);
    let d = run(-20.0, 12, 0);
    assert_eq!(d.verdict, Verdict::ApplyWithMonitoring, "{}", d.rule);
    let d = run(-30.0, 12, 0);
    assert_eq!(d.verdict, Verdict::KeepBaseline, "{}", d.rule);
    assert!(d.rule.contains(">= 25.0%"), "{}", d.rule);
    let d = run(0.0, 12, 3);
    assert_eq!(d.verdict, Verdict::KeepBaseline);
    assert!(d.rule.contains("warnings not resolved"), "{}", d.rule);
    // A faster candidate has no impact.
    let d = run(10.0, 0, 0);
    assert_eq!(d.verdict, Verdict::Apply, "{}", d.rule);
    assert!(d.performance_impact.unwrap() < 0.0);
}

#[test]
fn a_significant_quality_drop_keeps_the_baseline() {
    let b: Vec<PerfLine> = (0..40)
        .map(|i| line(&format!("p{i}"), 100.0, true, Some(true)))
        .collect();
    let c: Vec<PerfLine> = (0..40)
        .map(|i| line(&format!("p{i}"), 101.0, true, Some(i % 3 != 0)))
        .collect();
    let cmp = compare(&set("b", b), &set("c", c), &Criteria::default(), &quick()).unwrap();
    assert_eq!(cmp.decision.verdict, Verdict::KeepBaseline);
    assert!(
        cmp.decision.rule.contains("json_valid_rate"),
        "{}",
        cmp.decision.rule
    );
}

#[test]
fn nothing_in_common_is_an_error() {
    let (b, mut c) = synthetic(1, 5, 0.0, true);
    for l in &mut c.lines {
        l.scenario = "other".into();
    }
    let e = compare(&b, &c, &Criteria::default(), &quick()).unwrap_err();
    assert!(e.to_string().contains("share no scenario"), "{e}");
}

#[test]
fn loads_files_folders_and_run_ids() {
    let d = tempfile::tempdir().unwrap();
    let write = |run: &str, tps: f64| {
        let lines: Vec<PerfLine> = (0..3)
            .map(|i| line(&format!("p{i}"), tps, true, None))
            .collect();
        let path = d.path().join(format!("perf_p_m_GGUF_Q4_1_s_{run}.jsonl"));
        std::fs::write(&path, crate::report::files::jsonl(&lines).unwrap()).unwrap();
        path
    };
    let old = write("20260101_000000", 50.0);
    write("20260202_000000", 60.0);
    let newest = load(d.path().to_str().unwrap(), Path::new("unused")).unwrap();
    assert_eq!(newest.run_id, "20260202_000000");
    assert!(newest.label.contains("run 20260202_000000"));
    let by_id = load("20260101_000000", d.path()).unwrap();
    assert_eq!(by_id.lines[0].metrics.output_tokens_per_s, Some(50.0));
    let by_file = load(old.to_str().unwrap(), Path::new("unused")).unwrap();
    assert_eq!(by_file.lines.len(), 3);
    let e = load("nope", d.path()).unwrap_err();
    assert!(e.to_string().contains("\"nope\""), "{e}");
    std::fs::write(d.path().join("perf_x_20270101_000000.jsonl"), "{broken\n").unwrap();
    let e = load(d.path().to_str().unwrap(), Path::new("unused")).unwrap_err();
    assert!(e.to_string().contains("line 1"), "{e}");
}

fn eval_side(
    model: &str,
    right: impl Fn(usize) -> bool,
    invalid: impl Fn(usize) -> bool,
) -> EvalSide {
    let mut summary: crate::eval::EvalSummary = serde_json::from_str(include_str!(
        "../../tests/data/report/eval_banking77_SmolLM2-135M-Instruct_20261124_191000.json"
    ))
    .unwrap();
    summary.model.name = model.into();
    let items = (0..100)
        .map(|i| ItemResult {
            id: format!("item{i}"),
            group: "card_arrival".into(),
            gold: "card_arrival".into(),
            predicted: (!invalid(i)).then(|| "card_arrival".into()),
            score: if right(i) { 1.0 } else { 0.0 },
            answer: String::new(),
            extra: BTreeMap::new(),
            error: None,
        })
        .collect();
    EvalSide { summary, items }
}

fn eval_set(label: &str, sides: Vec<EvalSide>) -> ResultSet {
    ResultSet {
        label: label.into(),
        run_id: label.into(),
        lines: vec![],
        units: vec![],
        evals: sides,
    }
}

#[test]
fn evals_are_compared_item_by_item_and_an_accuracy_drop_keeps_the_baseline() {
    let b = eval_set("b", vec![eval_side("m", |i| i % 5 != 0, |_| false)]);
    let worse = eval_set("c", vec![eval_side("m", |i| i % 5 < 2, |i| i % 5 == 4)]);
    let cmp = compare(&b, &worse, &Criteria::default(), &quick()).unwrap();
    let s = &cmp.scenarios[0];
    assert_eq!(s.scenario, "eval:banking77");
    assert!(s.paired, "{}", s.pairing);
    let acc = s.metrics.iter().find(|m| m.metric == "accuracy").unwrap();
    assert!((acc.baseline - 0.8).abs() < 1e-9 && (acc.candidate - 0.4).abs() < 1e-9);
    assert!(acc.p_holm.unwrap() < 0.001, "{acc:?}");
    assert!(acc.test.starts_with("Wilcoxon"), "{}", acc.test);
    let inv = s
        .metrics
        .iter()
        .find(|m| m.metric == "invalid_rate")
        .unwrap();
    assert!((inv.candidate - 0.2).abs() < 1e-9);
    // The summaries' whole-set scores ride along without a test.
    let f1 = s.metrics.iter().find(|m| m.metric == "macro_f1").unwrap();
    assert!(f1.p_value.is_none() && f1.test.contains("whole-set"));
    assert_eq!(cmp.decision.verdict, Verdict::KeepBaseline);
    assert!(
        cmp.decision.rule.contains("accuracy"),
        "{}",
        cmp.decision.rule
    );

    // The same answers on both sides: no drop, and no speed figures to gate on.
    let same = eval_set("c", vec![eval_side("m", |i| i % 5 != 0, |_| false)]);
    let cmp = compare(&b, &same, &Criteria::default(), &quick()).unwrap();
    assert_eq!(
        cmp.decision.verdict,
        Verdict::Apply,
        "{}",
        cmp.decision.rule
    );
    assert!(cmp.decision.rule.contains("no significant quality drop"));

    // Different samples: unpaired.
    let mut other = eval_side("m", |i| i % 5 != 0, |_| false);
    for it in &mut other.items[..50] {
        it.id = format!("x{}", it.id);
    }
    let cmp = compare(
        &b,
        &eval_set("c", vec![other]),
        &Criteria::default(),
        &quick(),
    )
    .unwrap();
    assert!(!cmp.scenarios[0].paired);
    assert!(cmp.scenarios[0].pairing.contains("share 50 of 100 / 100"));
}

#[test]
fn all_pairs_of_models_share_one_holm_family() {
    let mut lines = Vec::new();
    for (model, tps) in [("a", 100.0), ("b", 96.0), ("c", 60.0)] {
        for i in 0..10 {
            let mut l = line(&format!("p{i}"), tps + f64::from(i % 3), true, None);
            l.model = model.into();
            lines.push(l);
        }
    }
    let mut set = set("run", lines);
    set.evals = vec![
        eval_side("a", |i| i % 5 != 0, |_| false),
        eval_side("c", |i| i % 2 == 0, |_| false),
    ];
    let all = compare_all(&set, &Criteria::default(), &quick()).unwrap();
    assert_eq!(all.models, ["a", "b", "c"]);
    let pairs: Vec<(&str, &str)> = all
        .comparisons
        .iter()
        .map(|c| {
            (
                c.scenarios[0].baseline_model.as_str(),
                c.scenarios[0].candidate_model.as_str(),
            )
        })
        .collect();
    assert_eq!(pairs, [("a", "b"), ("a", "c"), ("b", "c")]);
    // a vs c also compares the banking77 eval.
    assert!(all.comparisons[1]
        .scenarios
        .iter()
        .any(|s| s.scenario == "eval:banking77"));
    let tested: Vec<&MetricComparison> = all
        .comparisons
        .iter()
        .flat_map(|c| c.scenarios.iter().flat_map(|s| s.metrics.iter()))
        .filter(|m| m.p_value.is_some())
        .collect();
    assert_eq!(all.family_tests, tested.len());
    // Holm over the family: never below the single-pair adjustment.
    let single = compare(
        &set.only_model("a"),
        &set.only_model("b"),
        &Criteria::default(),
        &quick(),
    )
    .unwrap();
    for (fam, one) in all.comparisons[0]
        .scenarios
        .iter()
        .flat_map(|s| s.metrics.iter())
        .zip(single.scenarios.iter().flat_map(|s| s.metrics.iter()))
    {
        if let (Some(f), Some(o)) = (fam.p_holm, one.p_holm) {
            assert!(f >= o - 1e-12, "{} {f} < {o}", fam.metric);
        }
    }
    assert_eq!(all.comparisons[1].decision.verdict, Verdict::KeepBaseline);
    let md = crate::report::compare_md::render_all(&all);
    assert!(
        md.contains(&format!("all {} tests of all pairs", all.family_tests)),
        "{md}"
    );

    let one = set.only_model("a");
    let e = compare_all(&one, &Criteria::default(), &quick()).unwrap_err();
    assert!(e.to_string().contains("one model (a)"), "{e}");
}
