//! Tests of comparisons: detection power with a known shift, the false-positive rate without one
//! (raw and through Holm and the decision), pairing, the test-choice reasons, units by model and
//! scenario, Holm, decisions, and loading result sets from files.

use super::*;
use crate::metrics::RequestMetrics;
use crate::record::{FinishReason, RequestRecord, TokenCountSource};
use crate::results::ItemResult;
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

fn unit_report(
    model: &str,
    scenario: &str,
    counts: &[(&str, u64)],
    peak_rss_mb: Option<f64>,
) -> crate::results::UnitReport {
    let summary = crate::metrics::summarize_unit(
        &[],
        &crate::metrics::UnitContext {
            model,
            scenario,
            json: false,
            peak_rss_mb,
            duration_s: 1.0,
            seed: 1,
        },
    );
    crate::results::UnitReport {
        summary,
        monitor: Default::default(),
        context_tokens: None,
        log_pattern_counts: counts.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        log_pattern_counts_since_launch: Default::default(),
        server_warnings: Vec::new(),
        file: None,
        settle: None,
        server_metrics: BTreeMap::new(),
    }
}

fn with_counts(mut s: ResultSet, counts: &[(&str, u64)]) -> ResultSet {
    s.units = vec![unit_report("m", "s", counts, Some(100.0))];
    s
}

#[test]
fn decisions_follow_the_fp8_study_rules() {
    // The tiers on throughput alone (the synthetic sets move TTFT with it).
    let c = Criteria {
        impact_metrics: vec!["output_tokens_per_s".into()],
        ..Criteria::default()
    };
    let run = |shift: f64, bw: u64, cw: u64| {
        let (b, cand) = synthetic(3, 30, shift, true);
        let b = with_counts(b, &[("fp8 warning", bw)]);
        let cand = with_counts(cand, &[("fp8 warning", cw)]);
        compare(&b, &cand, &c, &quick()).unwrap().decision
    };
    let d = run(-5.0, 12, 0);
    assert_eq!(d.verdict, Verdict::Apply, "{}", d.rule);
    assert!(
        d.rule.contains("1 of 1 warning(s) resolved (12 -> 0)"),
        "{}",
        d.rule
    );
    // By default the impact is the worse of TTFT and throughput.
    let (b, cand) = synthetic(3, 30, -5.0, true);
    let d = compare(&b, &cand, &Criteria::default(), &quick())
        .unwrap()
        .decision;
    assert!(d.rule.contains("(worst: ttft_ms in s)"), "{}", d.rule);
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
        std::fs::write(&path, crate::results::jsonl(&lines).unwrap()).unwrap();
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

#[test]
fn a_candidate_without_log_counts_has_its_warnings_unchecked() {
    let c = Criteria::default();
    let (b, cand) = synthetic(3, 30, -5.0, true);
    let b = with_counts(b, &[("fp8 warning", 12)]);
    // A JSONL without its run summary: no unit report at all.
    let no_summary = compare(&b, &cand, &c, &quick()).unwrap();
    // A run without --log-pattern: a unit report with no counts.
    let no_pattern = compare(&b, &with_counts(cand.clone(), &[]), &c, &quick()).unwrap();
    for cmp in [&no_summary, &no_pattern] {
        let d = &cmp.decision;
        assert_eq!(d.verdict, Verdict::KeepBaseline, "{}", d.rule);
        assert!(d.rule.starts_with("warnings not checked"), "{}", d.rule);
        assert!(d.rule.contains("`fp8 warning` in s"), "{}", d.rule);
        assert!(!d.rule.contains("resolved ("), "{}", d.rule);
    }
    let md = crate::report::compare_md::render(&no_summary);
    assert!(
        md.contains("matching `fp8 warning`: 12 -> not counted"),
        "{md}"
    );
    // Not required: the performance rule decides, and says the warnings went unchecked.
    let lax = Criteria {
        require_warnings_resolved: false,
        ..Criteria::default()
    };
    let d = compare(&b, &cand, &lax, &quick()).unwrap().decision;
    assert_eq!(d.verdict, Verdict::Apply, "{}", d.rule);
    assert!(d.rule.starts_with("warnings not checked"), "{}", d.rule);
    // Counted on the candidate only: checked, the baseline's count unknown.
    let d = compare(
        &with_counts(synthetic(3, 30, -5.0, true).0, &[]),
        &with_counts(cand.clone(), &[("fp8 warning", 0)]),
        &c,
        &quick(),
    )
    .unwrap()
    .decision;
    assert_eq!(d.verdict, Verdict::Apply, "{}", d.rule);
    assert!(
        d.rule.contains("not counted on the baseline -> 0"),
        "{}",
        d.rule
    );
    // Nothing counted on either side: no warnings to resolve.
    let d = compare(&synthetic(3, 30, -5.0, true).0, &cand, &c, &quick())
        .unwrap()
        .decision;
    assert_eq!(d.verdict, Verdict::Apply, "{}", d.rule);
    assert!(d.rule.starts_with("no log patterns counted"), "{}", d.rule);
}

#[test]
fn named_warning_patterns_are_the_only_ones_that_count() {
    let (b, cand) = synthetic(3, 30, -5.0, true);
    let b = with_counts(b, &[("fp8 warning", 12), ("slow tokenizer", 5)]);
    let cand = with_counts(cand, &[("fp8 warning", 0), ("slow tokenizer", 4)]);
    let d = compare(&b, &cand, &Criteria::default(), &quick())
        .unwrap()
        .decision;
    assert_eq!(d.verdict, Verdict::KeepBaseline, "{}", d.rule);
    assert!(d.rule.contains("still logged 4"), "{}", d.rule);
    let named = |p: &str| Criteria {
        warning_patterns: vec![p.to_string()],
        ..Criteria::default()
    };
    let d = compare(&b, &cand, &named("fp8 warning"), &quick())
        .unwrap()
        .decision;
    assert_eq!(d.verdict, Verdict::Apply, "{}", d.rule);
    assert!(
        d.rule.contains("warning(s) resolved (12 -> 0)"),
        "{}",
        d.rule
    );
    // A named pattern neither side counted: not checked.
    let d = compare(&b, &cand, &named("scaling factor 1.0"), &quick())
        .unwrap()
        .decision;
    assert_eq!(d.verdict, Verdict::KeepBaseline, "{}", d.rule);
    assert!(
        d.rule.contains("no count of `scaling factor 1.0`"),
        "{}",
        d.rule
    );
}

fn metric<'a>(cmp: &'a Comparison, name: &str) -> &'a MetricComparison {
    cmp.scenarios[0]
        .metrics
        .iter()
        .find(|m| m.metric == name)
        .unwrap()
}

#[test]
fn the_test_choice_says_which_reason_applied() {
    // Paired, n = 30, normal differences: the t-test, with the Shapiro-Wilk p.
    let (b, c) = synthetic(7, 30, -10.0, true);
    let cmp = compare(&b, &c, &Criteria::default(), &quick()).unwrap();
    let t = &metric(&cmp, "output_tokens_per_s").test;
    if t.starts_with("paired t-test") {
        assert!(
            t.starts_with("paired t-test (n = 30 >= 20, differences pass Shapiro-Wilk, p = "),
            "{t}"
        );
    } else {
        assert!(t.contains("differences fail Shapiro-Wilk (p"), "{t}");
    }
    // Too few pairs: the n, and nothing about normality.
    let (b, c) = synthetic(7, 12, -10.0, true);
    let cmp = compare(&b, &c, &Criteria::default(), &quick()).unwrap();
    let t = &metric(&cmp, "output_tokens_per_s").test;
    assert!(
        t.starts_with("Wilcoxon signed-rank (paired; n = 12 < 20"),
        "{t}"
    );
    // Unpaired, 12 per side.
    let (b, c) = synthetic(7, 12, -10.0, false);
    let cmp = compare(&b, &c, &Criteria::default(), &quick()).unwrap();
    let t = &metric(&cmp, "output_tokens_per_s").test;
    assert!(
        t.starts_with("Mann-Whitney U (unpaired; baseline n = 12 < 20; candidate n = 12 < 20"),
        "{t}"
    );
    // Enough pairs but skewed differences: the Shapiro-Wilk p.
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut bl = Vec::new();
    let mut cl = Vec::new();
    for i in 0..40 {
        let base = 100.0 + 10.0 * normal(&mut rng);
        let skew: f64 = -(rng.gen_range(f64::EPSILON..1.0f64)).ln() * 20.0;
        bl.push(line(&format!("p{i}"), base, true, Some(true)));
        cl.push(line(&format!("p{i}"), base + skew, true, Some(i % 4 != 0)));
    }
    let cmp = compare(&set("b", bl), &set("c", cl), &Criteria::default(), &quick()).unwrap();
    let t = &metric(&cmp, "output_tokens_per_s").test;
    assert!(
        t.starts_with("Wilcoxon signed-rank (paired; n = 40, differences fail Shapiro-Wilk (p"),
        "{t}"
    );
    // A 0/1 metric says so.
    let t = &metric(&cmp, "json_valid_rate").test;
    assert_eq!(
        t,
        "Wilcoxon signed-rank (paired; 0/1 values (a proportion), so no normal-theory test)"
    );
}

#[test]
fn units_are_matched_by_model_and_scenario() {
    let lines_of = |models: &[(&str, f64)]| -> Vec<PerfLine> {
        let mut v = Vec::new();
        for (model, tps) in models {
            for i in 0..8 {
                let mut l = line(&format!("p{i}"), tps + f64::from(i % 3), true, None);
                l.model = model.to_string();
                v.push(l);
            }
        }
        v
    };
    // Two models on both sides: each is compared with itself, not pooled.
    let b = set("b", lines_of(&[("a", 100.0), ("z", 50.0)]));
    let c = set("c", lines_of(&[("a", 90.0), ("z", 50.0)]));
    let cmp = compare(&b, &c, &Criteria::default(), &quick()).unwrap();
    let models: Vec<(&str, &str)> = cmp
        .scenarios
        .iter()
        .map(|s| (s.baseline_model.as_str(), s.candidate_model.as_str()))
        .collect();
    assert_eq!(models, [("a", "a"), ("z", "z")]);
    let tps = |i: usize| {
        cmp.scenarios[i]
            .metrics
            .iter()
            .find(|m| m.metric == "output_tokens_per_s")
            .unwrap()
            .relative_change
            .unwrap()
    };
    assert!((tps(0) + 0.099).abs() < 0.01 && tps(1).abs() < 1e-12);
    assert_eq!(cmp.scenarios[0].metrics[0].n_baseline, 8);
    // Unit reports are matched by model too, and the rule says which model's unit it means.
    let mut bw = b.clone();
    bw.units = vec![
        unit_report("a", "s", &[("w", 1)], None),
        unit_report("z", "s", &[("w", 1)], None),
    ];
    let mut cw = c.clone();
    cw.units = vec![unit_report("a", "s", &[("w", 0)], None)];
    let d = compare(&bw, &cw, &Criteria::default(), &quick())
        .unwrap()
        .decision;
    assert_eq!(d.verdict, Verdict::KeepBaseline, "{}", d.rule);
    assert!(d.rule.contains("no count of `w` in s of z"), "{}", d.rule);
    // One model per side, different models: the usual A/B, scenario by scenario.
    let cmp = compare(
        &set("b", lines_of(&[("a", 100.0)])),
        &set("c", lines_of(&[("q", 80.0)])),
        &Criteria::default(),
        &quick(),
    )
    .unwrap();
    assert_eq!(cmp.scenarios.len(), 1);
    assert_eq!(
        (
            cmp.scenarios[0].baseline_model.as_str(),
            cmp.scenarios[0].candidate_model.as_str()
        ),
        ("a", "q")
    );
    // Several models and none on both sides: ambiguous.
    let e = compare(
        &b,
        &set("c", lines_of(&[("q", 80.0)])),
        &Criteria::default(),
        &quick(),
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("models a, z") && msg.contains("--all"),
        "{msg}"
    );
}

#[test]
fn peak_rss_is_a_metric_row_without_a_test() {
    let (b, c) = synthetic(3, 30, -5.0, true);
    let mut b = with_counts(b, &[]);
    let mut c = with_counts(c, &[]);
    b.units[0].summary.peak_rss_mb = Some(9120.0);
    c.units[0].summary.peak_rss_mb = Some(9050.5);
    let cmp = compare(&b, &c, &Criteria::default(), &quick()).unwrap();
    let m = metric(&cmp, "peak_rss_mb");
    assert!(!m.higher_is_better);
    assert_eq!((m.baseline, m.candidate), (9120.0, 9050.5));
    assert_eq!((m.n_baseline, m.n_candidate), (1, 1));
    assert!((m.relative_change.unwrap() - (9050.5 / 9120.0 - 1.0)).abs() < 1e-12);
    assert_eq!(m.test, "none: n=1 per side, no test");
    assert!(m.p_value.is_none() && m.p_holm.is_none() && m.change_ci.is_none());
    let md = crate::report::compare_md::render(&cmp);
    assert!(
        md.contains("| peak_rss_mb ↓ | 9120.0 | 9050.5 | -0.8% | none: n=1 per side, no test | - | - | - | 1 / 1 |"),
        "{md}"
    );
    assert!(!md.contains("\npeak_rss_mb:"), "no second peak line: {md}");
    // It can be the primary metric: memory as the performance impact.
    let mem = Criteria {
        impact_metrics: vec!["peak_rss_mb".into()],
        ..Criteria::default()
    };
    let d = compare(&b, &c, &mem, &quick()).unwrap().decision;
    assert!(d.performance_impact.unwrap() < 0.0, "{d:?}");
    // One side without it: no row.
    c.units.clear();
    let cmp = compare(&b, &c, &Criteria::default(), &quick()).unwrap();
    assert!(cmp.scenarios[0]
        .metrics
        .iter()
        .all(|m| m.metric != "peak_rss_mb"));
}

#[test]
fn the_invalid_rate_is_only_compared_where_it_means_something() {
    for (task, expected) in [
        ("banking77", true),
        ("financial_phrasebank", true),
        ("gsm8k", true),
        ("mmlu", true),
        ("realistic", false),
        ("coding", false),
    ] {
        let side = |right: fn(usize) -> bool| {
            let mut s = eval_side("m", right, |i| i % 7 == 0);
            s.summary.task = task.into();
            if !expected {
                // Their summaries carry no invalid_rate either.
                s.summary.scores.remove("invalid_rate");
            }
            s
        };
        let cmp = compare(
            &eval_set("b", vec![side(|i| i % 5 != 0)]),
            &eval_set("c", vec![side(|i| i % 4 != 0)]),
            &Criteria::default(),
            &quick(),
        )
        .unwrap();
        let has = cmp.scenarios[0]
            .metrics
            .iter()
            .any(|m| m.metric == "invalid_rate");
        assert_eq!(has, expected, "{task}");
    }
}

#[test]
fn the_holm_adjusted_decision_holds_alpha_on_the_null() {
    // No shift in speed, and JSON validity Bernoulli(0.85) on both sides independently: every
    // null is true. Over 400 seeded data sets, count (a) any Holm-adjusted p < alpha among the
    // comparison's tests (the family-wise error Holm controls at alpha), and (b) the decision
    // keeping the baseline by the quality rule.
    const SEEDS: u64 = 400;
    const ALPHA: f64 = 0.05;
    // A correct procedure's count is at most Binomial(400, 0.05): sd = sqrt(0.05 * 0.95 / 400)
    // = 0.0109; three sd (one-sided, exceeded with probability ~0.13% by the normal
    // approximation) gives 0.05 + 0.033 = 0.083.
    let margin = 3.0 * (ALPHA * (1.0 - ALPHA) / SEEDS as f64).sqrt();
    assert!((margin - 0.0327).abs() < 1e-3, "{margin}");
    let mut any_flag = 0;
    let mut quality_flag = 0;
    let mut raw_flag = 0;
    for seed in 0..SEEDS {
        let mut rng = ChaCha8Rng::seed_from_u64(1_000 + seed);
        let mut b = Vec::new();
        let mut c = Vec::new();
        for i in 0..30 {
            let base = 100.0 + 10.0 * normal(&mut rng);
            let jb = rng.gen_bool(0.85);
            let jc = rng.gen_bool(0.85);
            b.push(line(&format!("p{i}"), base, true, Some(jb)));
            c.push(line(
                &format!("p{i}"),
                base + 5.0 * normal(&mut rng),
                true,
                Some(jc),
            ));
        }
        let cmp = compare(&set("b", b), &set("c", c), &Criteria::default(), &quick()).unwrap();
        let tested: Vec<&MetricComparison> = cmp.scenarios[0]
            .metrics
            .iter()
            .filter(|m| m.p_value.is_some())
            .collect();
        // ttft_ms, output_tokens_per_s, e2e_ms and json_valid_rate (success_rate is all 1).
        assert_eq!(tested.len(), 4, "{tested:?}");
        if tested.iter().any(|m| m.p_holm.is_some_and(|p| p < ALPHA)) {
            any_flag += 1;
        }
        if tested.iter().any(|m| m.p_value.is_some_and(|p| p < ALPHA)) {
            raw_flag += 1;
        }
        if cmp.decision.rule.starts_with("quality dropped") {
            quality_flag += 1;
        }
    }
    let rate = |n: i32| f64::from(n) / SEEDS as f64;
    println!(
        "null: any raw p < alpha {}, any Holm p < alpha {}, quality rule {} (bound {})",
        rate(raw_flag),
        rate(any_flag),
        rate(quality_flag),
        ALPHA + margin
    );
    assert!(
        rate(any_flag) <= ALPHA + margin,
        "family-wise error after Holm {}",
        rate(any_flag)
    );
    assert!(
        rate(quality_flag) <= ALPHA + margin,
        "quality rule on the null {}",
        rate(quality_flag)
    );
    // Holm is what holds it there: unadjusted, some test of the family fires more often.
    assert!(raw_flag > any_flag, "{raw_flag} <= {any_flag}");
}

#[test]
fn json_result_files_are_read_by_their_content() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/report");
    // A run summary brings the perf files of its run and its units.
    let s = load(
        data.join("summary_20261124_190305.json").to_str().unwrap(),
        Path::new("unused"),
    )
    .unwrap();
    assert_eq!(s.run_id, "20261124_190305");
    assert_eq!(s.models().len(), 2);
    assert!(!s.units.is_empty() && !s.lines.is_empty());
    // An experiment config is not results: one line saying what to name instead.
    let e = load(
        data.join("experiment_config_20261124_190305.json")
            .to_str()
            .unwrap(),
        Path::new("unused"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("experiment_config_20261124_190305.json"), "{e}");
    assert!(e.contains("summary_20261124_190305.json instead"), "{e}");
    assert!(!e.contains('\n'), "{e}");
    let d = tempfile::tempdir().unwrap();
    let other = d.path().join("notes.json");
    std::fs::write(&other, "{\"hello\": 1}").unwrap();
    let e = load(other.to_str().unwrap(), Path::new("unused"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("notes.json") && e.contains("summary_*.json"),
        "{e}"
    );
    assert!(!e.contains("line 1") && !e.contains('\n'), "{e}");
    // An experiment export: request lines and unit reports.
    let lines: Vec<PerfLine> = (0..4)
        .map(|i| line(&format!("p{i}"), 50.0 + f64::from(i), true, None))
        .collect();
    let report = unit_report("m", "s", &[("fp8 warning", 2)], Some(512.0));
    let export = serde_json::json!({
        "experiment": {"id": "20260303_000000", "kind": "perf", "created": "", "config_hash": "",
                       "config_json": "{}", "command": "", "status": "done"},
        "units": [{
            "id": 1, "model": "m", "scenario": "s", "setting": "", "status": "done",
            "error": null, "report": report,
            "report_json": serde_json::to_string(&report).unwrap(),
            "requests": 4, "request_lines": lines,
        }],
    });
    let path = d.path().join("export.json");
    std::fs::write(&path, serde_json::to_vec(&export).unwrap()).unwrap();
    let s = load(path.to_str().unwrap(), Path::new("unused")).unwrap();
    assert_eq!(s.run_id, "20260303_000000");
    assert_eq!(s.lines.len(), 4);
    assert_eq!(s.units[0].log_pattern_counts["fp8 warning"], 2);
    // The eval summary file still loads as before (alone: no database beside it).
    let e = load(
        data.join("eval_banking77_SmolLM2-135M-Instruct_20261124_191000.json")
            .to_str()
            .unwrap(),
        Path::new("unused"),
    )
    .unwrap();
    assert_eq!(e.evals.len(), 1);
}

#[test]
fn the_fp8_preset_needs_its_three_warnings_resolved_counted_since_the_launch() {
    let c = Criteria::fp8_kv();
    let (b, cand) = synthetic(3, 30, -5.0, true);
    let three = |n: u64| -> Vec<(String, u64)> {
        c.warning_patterns.iter().map(|p| (p.clone(), n)).collect()
    };
    // Warnings logged at startup: nothing during the units, all of them since the launch.
    let side = |s: ResultSet, since: Vec<(String, u64)>| {
        let mut s = with_counts(
            s,
            &since
                .iter()
                .map(|(p, _)| (p.as_str(), 0))
                .collect::<Vec<_>>(),
        );
        s.units[0].log_pattern_counts_since_launch = since.into_iter().collect();
        s
    };
    let d = compare(
        &side(b.clone(), three(2)),
        &side(cand.clone(), three(0)),
        &c,
        &quick(),
    )
    .unwrap()
    .decision;
    assert_eq!(d.verdict, Verdict::Apply, "{}", d.rule);
    assert!(
        d.rule.contains("3 of 3 warning(s) resolved (6 -> 0)"),
        "{}",
        d.rule
    );
    // The baseline never logged them: no evidence, the baseline is kept.
    let d = compare(
        &side(b.clone(), three(0)),
        &side(cand.clone(), three(0)),
        &c,
        &quick(),
    )
    .unwrap()
    .decision;
    assert_eq!(d.verdict, Verdict::KeepBaseline, "{}", d.rule);
    assert!(d.rule.contains("only 0 of 3"), "{}", d.rule);
    // Nothing counted at all: not checked, and it says how to count them.
    let d = compare(&b, &cand, &c, &quick()).unwrap().decision;
    assert_eq!(d.verdict, Verdict::KeepBaseline, "{}", d.rule);
    assert!(
        d.rule.contains("warnings not checked") && d.rule.contains("--log-pattern"),
        "{}",
        d.rule
    );
    // Without the resolved-warnings requirement, the count of resolved ones still gates.
    let lax = Criteria {
        require_warnings_resolved: false,
        ..c.clone()
    };
    let d = compare(&b, &cand, &lax, &quick()).unwrap().decision;
    assert_eq!(d.verdict, Verdict::KeepBaseline, "{}", d.rule);
    assert!(d.rule.contains("no warning evidence"), "{}", d.rule);
    // Counted with the warnings' plain text (`--log-pattern 'factor 1.0 ...'`): the same
    // patterns as the preset's escaped ones.
    let plain = |n: u64| -> Vec<(String, u64)> {
        crate::compare::FP8_WARNINGS
            .iter()
            .map(|w| (w.to_string(), n))
            .collect()
    };
    let d = compare(
        &side(b.clone(), plain(1)),
        &side(cand.clone(), plain(0)),
        &c,
        &quick(),
    )
    .unwrap()
    .decision;
    assert_eq!(d.verdict, Verdict::Apply, "{}", d.rule);
    // A candidate without whole-log counts (older results): per-unit counts on both sides, so
    // start-up warnings are not taken as resolved.
    let old = with_counts(
        cand.clone(),
        &three(0)
            .iter()
            .map(|(p, n)| (p.as_str(), *n))
            .collect::<Vec<_>>(),
    );
    let d = compare(&side(b.clone(), three(2)), &old, &c, &quick())
        .unwrap()
        .decision;
    assert_eq!(d.verdict, Verdict::KeepBaseline, "{}", d.rule);
    assert!(d.rule.contains("only 0 of 3"), "{}", d.rule);
    // Still logged by the candidate: not resolved.
    let d = compare(&side(b, three(2)), &side(cand, three(1)), &c, &quick())
        .unwrap()
        .decision;
    assert_eq!(d.verdict, Verdict::KeepBaseline, "{}", d.rule);
    assert!(d.rule.contains("not resolved"), "{}", d.rule);
}

#[test]
fn a_change_inside_the_margin_is_equivalent_and_never_decides() {
    // Identical but for a steady +3% on every request: significant; outside a 2% margin,
    // inside a 5% one.
    let b: Vec<PerfLine> = (0..40)
        .map(|i| line(&format!("p{i}"), 100.0 + (i % 7) as f64, true, None))
        .collect();
    let c: Vec<PerfLine> = b
        .iter()
        .map(|l| {
            let tps = l.metrics.output_tokens_per_s.unwrap() * 0.97;
            line(&l.record.prompt_id, tps, true, None)
        })
        .collect();
    let (b, c) = (set("b", b), set("c", c));
    let strict = Criteria {
        impact_metrics: vec!["output_tokens_per_s".into()],
        apply_below: 0.01,
        monitor_below: 0.02,
        ..Criteria::default()
    };
    let cmp = compare(&b, &c, &strict, &quick()).unwrap();
    let m = cmp.scenarios[0]
        .metrics
        .iter()
        .find(|m| m.metric == "output_tokens_per_s")
        .unwrap();
    assert!(m.p_holm.unwrap() < 0.05, "significant: {m:?}");
    assert_eq!((m.margin, m.equivalent), (Some(0.02), Some(false)));
    assert_eq!(
        cmp.decision.verdict,
        Verdict::KeepBaseline,
        "{}",
        cmp.decision.rule
    );
    let loose = Criteria {
        margins: [("output_tokens_per_s".to_string(), 0.05)]
            .into_iter()
            .collect(),
        ..strict
    };
    let cmp = compare(&b, &c, &loose, &quick()).unwrap();
    let m = cmp.scenarios[0]
        .metrics
        .iter()
        .find(|m| m.metric == "output_tokens_per_s")
        .unwrap();
    assert_eq!(m.equivalent, Some(true), "{m:?}");
    assert_eq!(
        cmp.decision.verdict,
        Verdict::Apply,
        "{}",
        cmp.decision.rule
    );
    assert!(
        cmp.recommendations
            .iter()
            .any(|r| r.contains("No practical difference in output_tokens_per_s")),
        "{:?}",
        cmp.recommendations
    );
}

#[test]
fn a_slight_quality_loss_asks_for_monitoring_and_a_larger_one_keeps_the_baseline() {
    let b: Vec<PerfLine> = (0..200)
        .map(|i| line(&format!("p{i}"), 100.0, true, Some(true)))
        .collect();
    let drop = |every: usize| -> Vec<PerfLine> {
        (0..200)
            .map(|i| line(&format!("p{i}"), 100.0, true, Some(i % every != 0)))
            .collect()
    };
    let c = Criteria {
        impact_metrics: vec!["output_tokens_per_s".into()],
        ..Criteria::default()
    };
    // 1 in 25 invalid: 4% worse, significant, within the 5% slight loss.
    let cmp = compare(&set("b", b.clone()), &set("c", drop(25)), &c, &quick()).unwrap();
    assert_eq!(
        cmp.decision.verdict,
        Verdict::ApplyWithMonitoring,
        "{}",
        cmp.decision.rule
    );
    assert!(
        cmp.decision.rule.contains("slight quality loss"),
        "{}",
        cmp.decision.rule
    );
    assert!(cmp.recommendations[0].starts_with("Apply the candidate with monitoring"));
    // 1 in 10: 10% worse, more than slight.
    let cmp = compare(&set("b", b), &set("c", drop(10)), &c, &quick()).unwrap();
    assert_eq!(
        cmp.decision.verdict,
        Verdict::KeepBaseline,
        "{}",
        cmp.decision.rule
    );
    assert!(cmp.recommendations[0].starts_with("Keep the baseline"));
}
