//! Run profiles: `full`, the documented protocol (20 measured requests per scenario after 3
//! warm-ups, as the source documents ask), and `quick`, a first look in a few minutes (fewer
//! measured requests, shorter fixed-length outputs, shorter pauses), recorded in the
//! configuration and stated in the output; and the estimate of how long the full protocol would
//! take, from what a run measured.

use serde::{Deserialize, Serialize};
use std::time::Duration;

use crate::results::RunSummary;
use crate::runner::RunPlan;
use crate::workload::Scenario;

/// How much a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// The documented protocol (the flags' own defaults).
    Full,
    /// A first look: [`QUICK_RUNS`] measured requests after one warm-up, fixed-length outputs
    /// of at most [`QUICK_MAX_OUTPUT_TOKENS`] tokens, [`QUICK_COOLDOWN_S`] s pauses.
    Quick,
}

/// Measured requests per scenario in the quick profile.
pub const QUICK_RUNS: u32 = 5;
/// Warm-up requests per scenario in the quick profile.
pub const QUICK_WARMUP: u32 = 1;
/// The longest fixed-length output of the quick profile (long-form summaries are shortened).
pub const QUICK_MAX_OUTPUT_TOKENS: u32 = 128;
/// The pause after each request in the quick profile, seconds.
pub const QUICK_COOLDOWN_S: f64 = 0.5;

impl Profile {
    /// Reads `quick` or `full`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "quick" => Some(Self::Quick),
            "full" => Some(Self::Full),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Quick => "quick",
        }
    }

    /// What the profile changes in a plan and its scenarios (the full profile changes nothing).
    pub fn apply(self, plan: &mut RunPlan, scenarios: &mut [Scenario]) {
        if self == Self::Full {
            return;
        }
        plan.runs = QUICK_RUNS;
        plan.warmup = QUICK_WARMUP;
        plan.cooldown_s = plan.cooldown_s.min(QUICK_COOLDOWN_S);
        for s in scenarios.iter_mut().filter(|s| s.ignore_eos) {
            s.output_tokens = s.output_tokens.map(|t| t.min(QUICK_MAX_OUTPUT_TOKENS));
        }
    }

    /// One line saying what the profile measured, for the output.
    pub fn describe(self) -> String {
        match self {
            Self::Full => "full protocol".into(),
            Self::Quick => format!(
                "quick profile: {QUICK_RUNS} measured requests per scenario after {QUICK_WARMUP} warm-up, fixed-length outputs of at most {QUICK_MAX_OUTPUT_TOKENS} tokens, {QUICK_COOLDOWN_S} s pauses (a first look; the full protocol measures 20 per scenario)"
            ),
        }
    }
}

/// How long `full` (the full protocol's plan and scenarios) would take on the machine that
/// produced `measured`: per unit, (warm-ups + measured requests) x (mean time to first token +
/// the full scenario's mean output length x mean time per output token + the pause). `None` when
/// a unit has no timing or its scenario is not in `full`.
pub fn estimate(measured: &RunSummary, full: &RunPlan, scenarios: &[Scenario]) -> Option<Duration> {
    let mut total_s = 0.0;
    for unit in measured.models.iter().flat_map(|m| &m.units) {
        let s = &unit.summary;
        let scenario = scenarios.iter().find(|x| x.name == s.scenario)?;
        let ttft_ms = s.ttft_ms.as_ref()?.summary.mean;
        let tpot_ms = s.tpot_ms.as_ref().map_or(0.0, |t| t.summary.mean);
        let out_tokens = match full.max_tokens {
            Some(m) => f64::from(m),
            None => f64::from(scenario.output_tokens[0] + scenario.output_tokens[1]) / 2.0,
        };
        let request_s = (ttft_ms + out_tokens * tpot_ms) / 1e3 + full.cooldown_s;
        total_s += f64::from(full.runs + full.warmup) * request_s;
    }
    (total_s > 0.0).then(|| Duration::from_secs_f64(total_s))
}

/// A duration as `13 min` or `45 s`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 90.0 {
        format!("{:.0} min", s / 60.0)
    } else {
        format!("{s:.0} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::ScenarioFile;

    #[test]
    fn quick_shortens_fixed_length_outputs_only() {
        let file = ScenarioFile::default_file().unwrap();
        let mut scenarios: Vec<Scenario> = file.scenarios.clone();
        let mut plan = RunPlan::default();
        let before = scenarios.clone();
        Profile::Full.apply(&mut plan, &mut scenarios);
        assert_eq!(scenarios, before);
        assert_eq!((plan.runs, plan.warmup), (20, 3));
        Profile::Quick.apply(&mut plan, &mut scenarios);
        assert_eq!((plan.runs, plan.warmup, plan.cooldown_s), (5, 1, 0.5));
        for (s, b) in scenarios.iter().zip(&before) {
            if s.ignore_eos {
                assert!(s.output_tokens[1] <= 128, "{s:?}");
            } else {
                assert_eq!(s.output_tokens, b.output_tokens, "{}", s.name);
            }
        }
        let long = scenarios
            .iter()
            .find(|s| s.name == "long_form_summarization")
            .unwrap();
        assert_eq!(long.output_tokens, [128, 128]);
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human(Duration::from_secs(45)), "45 s");
        assert_eq!(human(Duration::from_secs(13 * 60 + 10)), "13 min");
        assert_eq!(Profile::parse("quick"), Some(Profile::Quick));
        assert_eq!(Profile::parse("fast"), None);
    }
}
