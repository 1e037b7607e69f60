//! Load sweeps (`--sweep concurrency=1,2,4,8`): one scenario step per value, a throughput vs
//! latency table per step, and the saturation rule that stops a sweep early.

use serde::{Deserialize, Serialize};

use super::{Scenario, ScenarioFile, WorkloadError};
use crate::metrics::UnitSummary;

/// Throughput must grow by at least this share from the best earlier step, or the sweep stops.
pub const MIN_GAIN: f64 = 0.10;
/// A step whose success rate falls below this stops the sweep too.
pub const MIN_SUCCESS_RATE: f64 = 0.9;

/// A parsed `--sweep`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sweep {
    /// Concurrency levels, strictly increasing.
    pub concurrency: Vec<u32>,
}

/// Parses `concurrency=1,2,4,8`.
pub fn parse(spec: &str) -> Result<Sweep, WorkloadError> {
    let bad = |why: &str| WorkloadError::Invalid(format!("--sweep {spec:?}: {why}"));
    let (key, values) = spec
        .split_once('=')
        .ok_or_else(|| bad("expected concurrency=N,N,..."))?;
    if key.trim() != "concurrency" {
        return Err(bad("only concurrency can be swept"));
    }
    let levels = values
        .split(',')
        .map(|v| {
            v.trim()
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=4096).contains(n))
        })
        .collect::<Option<Vec<u32>>>()
        .ok_or_else(|| bad("levels are whole numbers from 1 to 4096"))?;
    if levels.is_empty() || levels.windows(2).any(|w| w[0] >= w[1]) {
        return Err(bad("levels must be strictly increasing"));
    }
    Ok(Sweep {
        concurrency: levels,
    })
}

/// The name of a step: `interactive_assistant@c4`.
pub fn step_name(scenario: &str, concurrency: u32) -> String {
    format!("{scenario}@c{concurrency}")
}

/// Replaces each selected scenario by its steps (same text, one concurrency each).
pub fn expand(file: &ScenarioFile, selected: &[&Scenario], sweep: &Sweep) -> ScenarioFile {
    let scenarios = selected
        .iter()
        .flat_map(|sc| {
            sweep.concurrency.iter().map(move |&c| Scenario {
                name: step_name(&sc.name, c),
                concurrency: Some(c),
                sweep_of: Some(sc.name.clone()),
                ..(*sc).clone()
            })
        })
        .collect();
    ScenarioFile {
        version: file.version,
        scenarios,
        passages: file.passages.clone(),
    }
}

/// Why a sweep stops after a step, if it does: throughput gained less than [`MIN_GAIN`] over the
/// best earlier step, or too many requests failed.
pub fn stop_reason(best_before: Option<f64>, step: &UnitSummary) -> Option<String> {
    if step.success_rate < MIN_SUCCESS_RATE {
        return Some(format!(
            "success rate {:.0}% < {:.0}%",
            step.success_rate * 100.0,
            MIN_SUCCESS_RATE * 100.0
        ));
    }
    let now = step.output_token_throughput_per_s?;
    let best = best_before?;
    (now < best * (1.0 + MIN_GAIN)).then(|| {
        format!(
            "saturated: {now:.1} output tokens/s is less than {:.0}% above the best earlier step ({best:.1})",
            MIN_GAIN * 100.0
        )
    })
}

/// Where each sweep of a run stands: the best output throughput so far per swept scenario, and
/// the reason a sweep stopped. A resumed run replays the steps already done through
/// [`SweepState::observe`] before it runs the rest.
#[derive(Debug, Clone, Default)]
pub struct SweepState {
    best: std::collections::HashMap<String, f64>,
    stopped: std::collections::HashMap<String, String>,
}

impl SweepState {
    /// Takes in a finished step of the sweep of `base` at `level`; returns why the sweep stops
    /// after it, when it does.
    pub fn observe(&mut self, base: &str, level: u32, step: &UnitSummary) -> Option<String> {
        let best = self.best.get(base).copied();
        let why = stop_reason(best, step);
        if let Some(w) = &why {
            self.stopped.entry(base.to_string()).or_insert_with(|| {
                format!("not run: the sweep stopped at concurrency {level} ({w})")
            });
        }
        if let Some(t) = step.output_token_throughput_per_s {
            self.best
                .insert(base.to_string(), best.map_or(t, |b| b.max(t)));
        }
        why
    }

    /// Why the steps left of the sweep of `base` are not run, once it stopped.
    pub fn stopped(&self, base: &str) -> Option<&str> {
        self.stopped.get(base).map(String::as_str)
    }
}

/// One row of the sweep table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepStep {
    pub scenario: String,
    pub model: String,
    pub concurrency: u32,
    pub requests: usize,
    pub success_rate: f64,
    pub output_token_throughput_per_s: Option<f64>,
    pub request_throughput_per_s: Option<f64>,
    pub ttft_ms_p50: Option<f64>,
    pub ttft_ms_p99: Option<f64>,
    pub e2e_ms_p50: Option<f64>,
    pub itl_ms_p99: Option<f64>,
}

/// The table row of a step's summary.
pub fn step_row(base: &str, concurrency: u32, s: &UnitSummary) -> SweepStep {
    SweepStep {
        scenario: base.to_string(),
        model: s.model.clone(),
        concurrency,
        requests: s.requests,
        success_rate: s.success_rate,
        output_token_throughput_per_s: s.output_token_throughput_per_s,
        request_throughput_per_s: s.request_throughput_per_s,
        ttft_ms_p50: s.ttft_ms.as_ref().map(|m| m.summary.p50),
        ttft_ms_p99: s.ttft_ms.as_ref().map(|m| m.summary.p99),
        e2e_ms_p50: s.e2e_ms.as_ref().map(|m| m.summary.p50),
        itl_ms_p99: s.itl_ms.as_ref().map(|m| m.summary.p99),
    }
}

/// The sweep table as text.
pub fn render(steps: &[SweepStep]) -> String {
    use std::fmt::Write;
    let f = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.1}"));
    let label = |s: &SweepStep| format!("{} · {}", s.model, s.scenario);
    let w = steps
        .iter()
        .map(|s| label(s).chars().count())
        .max()
        .unwrap_or(0)
        .max(5);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<w$} {:>5} {:>6} {:>8} {:>14} {:>10} {:>11} {:>11} {:>10} {:>10}",
        "sweep",
        "conc",
        "n",
        "success",
        "output_tok/s",
        "req/s",
        "ttft_p50_ms",
        "ttft_p99_ms",
        "e2e_p50_ms",
        "itl_p99_ms"
    );
    for s in steps {
        let _ = writeln!(
            out,
            "{:<w$} {:>5} {:>6} {:>7.1}% {:>14} {:>10} {:>11} {:>11} {:>10} {:>10}",
            label(s),
            s.concurrency,
            s.requests,
            s.success_rate * 100.0,
            f(s.output_token_throughput_per_s),
            s.request_throughput_per_s
                .map_or_else(|| "-".to_string(), |v| format!("{v:.2}")),
            f(s.ttft_ms_p50),
            f(s.ttft_ms_p99),
            f(s.e2e_ms_p50),
            f(s.itl_ms_p99),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_increasing_levels_and_names_the_flag_otherwise() {
        assert_eq!(
            parse("concurrency=1,2,4,8").unwrap().concurrency,
            [1, 2, 4, 8]
        );
        assert_eq!(parse(" concurrency = 3 ").unwrap().concurrency, [3]);
        for bad in [
            "concurrency",
            "rate=1,2",
            "concurrency=4,2",
            "concurrency=1,1",
            "concurrency=0,1",
            "concurrency=a",
            "concurrency=",
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.starts_with("--sweep"), "{e}");
        }
    }

    #[test]
    fn expands_each_scenario_into_named_steps() {
        let file = ScenarioFile::default_file().unwrap();
        let sel = file.select(&["interactive_assistant".into()]).unwrap();
        let out = expand(&file, &sel, &parse("concurrency=1,4").unwrap());
        let names: Vec<&str> = out.scenarios.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            ["interactive_assistant@c1", "interactive_assistant@c4"]
        );
        assert_eq!(out.scenarios[1].concurrency, Some(4));
        assert_eq!(
            out.scenarios[1].sweep_of.as_deref(),
            Some("interactive_assistant")
        );
        assert_eq!(out.scenarios[1].instructions, sel[0].instructions);
        assert_eq!(out.passages, file.passages);
    }

    fn summary(tps: Option<f64>, success: f64) -> UnitSummary {
        let mut s = crate::metrics::summarize_unit(
            &[],
            &crate::metrics::UnitContext {
                model: "m",
                scenario: "s@c1",
                json: false,
                peak_rss_mb: None,
                duration_s: 1.0,
                seed: 1,
            },
        );
        s.output_token_throughput_per_s = tps;
        s.success_rate = success;
        s
    }

    #[test]
    fn stops_when_throughput_flattens_or_requests_fail() {
        assert_eq!(stop_reason(None, &summary(Some(50.0), 1.0)), None);
        assert_eq!(stop_reason(Some(50.0), &summary(Some(90.0), 1.0)), None);
        let flat = stop_reason(Some(90.0), &summary(Some(95.0), 1.0)).unwrap();
        assert!(flat.starts_with("saturated"), "{flat}");
        assert!(stop_reason(Some(90.0), &summary(Some(80.0), 1.0)).is_some());
        let failing = stop_reason(Some(50.0), &summary(Some(200.0), 0.5)).unwrap();
        assert!(failing.contains("success rate 50%"), "{failing}");
    }

    #[test]
    fn the_state_replayed_from_done_steps_is_the_live_one() {
        let steps = [
            ("a", 1, summary(Some(50.0), 1.0)),
            ("b", 1, summary(Some(10.0), 1.0)),
            ("a", 2, summary(Some(90.0), 1.0)),
            ("a", 4, summary(Some(92.0), 1.0)),
        ];
        let mut live = SweepState::default();
        let whys: Vec<bool> = steps
            .iter()
            .map(|(b, l, s)| live.observe(b, *l, s).is_some())
            .collect();
        assert_eq!(whys, [false, false, false, true]);
        let stop = live.stopped("a").unwrap();
        assert!(stop.contains("stopped at concurrency 4"), "{stop}");
        assert_eq!(live.stopped("b"), None);
        // Resumed after the first two steps of "a": its next step is judged against 90, not
        // taken as the first.
        let mut resumed = SweepState::default();
        for (b, l, s) in &steps[..3] {
            resumed.observe(b, *l, s);
        }
        assert!(resumed.observe("a", 4, &steps[3].2).is_some());
        assert_eq!(resumed.stopped("a"), live.stopped("a"));
    }

    #[test]
    fn the_table_has_a_row_per_step() {
        let mut s = summary(Some(123.45), 1.0);
        s.requests = 20;
        let rows = [step_row("s", 1, &s), step_row("s", 4, &s)];
        let text = render(&rows);
        assert_eq!(text.lines().count(), 3);
        assert!(text.lines().nth(2).unwrap().contains("123.5"), "{text}");
    }
}
