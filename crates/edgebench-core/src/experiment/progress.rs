//! Progress of a whole experiment: requests done out of the total, and the time left, from the
//! requests measured so far. Scenarios differ in cost (a long-form summary takes several times
//! an assistant turn): a scenario's remaining requests take its own mean time so far, and a
//! scenario not started yet takes its weight (from its sizes) at the seconds per weight measured
//! on the others.

use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;

use crate::workload::Scenario;

/// Where an experiment stands.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Progress {
    /// Requests finished (warm-ups included), over every unit of this invocation.
    pub requests_done: u64,
    /// Requests of every unit this invocation runs; 0 when unknown (fixed-duration runs).
    pub requests_total: u64,
    pub elapsed_s: f64,
    /// Seconds left, once a request has finished and the total is known.
    pub eta_s: Option<f64>,
}

/// A request's relative cost before any is measured: on a CPU, prefilling three prompt tokens
/// costs about what decoding one output token does, decoding slows as the context fills, and a
/// request has some fixed cost.
pub fn weight(s: &Scenario) -> f64 {
    let mean = |r: [u32; 2]| f64::from(r[0] + r[1]) / 2.0;
    let (p, o) = (mean(s.prompt_tokens), mean(s.output_tokens));
    1.0 + p / 3.0 + o * (1.0 + p / 3000.0)
}

/// One scenario's requests: planned, done, and the seconds the done ones took.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Share {
    pub weight: f64,
    pub planned: u64,
    pub done: u64,
    pub seconds: f64,
}

/// Seconds left: each scenario's remaining requests at its own mean so far, or (not started)
/// at its weight times the seconds per weight of the measured ones. `None` before any request.
pub fn eta_s<'a>(shares: impl Iterator<Item = &'a Share> + Clone) -> Option<f64> {
    let (secs, weight): (f64, f64) = shares
        .clone()
        .map(|s| (s.seconds, s.weight * s.done as f64))
        .fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
    if weight <= 0.0 {
        return None;
    }
    let per_weight = secs / weight;
    Some(
        shares
            .map(|s| {
                let left = s.planned.saturating_sub(s.done) as f64;
                let each = if s.done > 0 {
                    s.seconds / s.done as f64
                } else {
                    s.weight * per_weight
                };
                left * each
            })
            .sum(),
    )
}

/// Requests finished before an estimate is given.
pub const MIN_REQUESTS_FOR_ETA: u64 = 3;

/// Counts an experiment's requests as they finish.
#[derive(Debug)]
pub struct Tracker {
    started: Instant,
    last: Instant,
    shares: BTreeMap<String, Share>,
    /// Every unit's number of requests is known.
    known: bool,
    done: u64,
}

impl Tracker {
    /// A tracker for units to run: each scenario with its number of requests (`None` when
    /// unknown, as with a fixed duration).
    pub fn new<'a>(units: impl IntoIterator<Item = (&'a Scenario, Option<u64>)>) -> Self {
        let now = Instant::now();
        let mut t = Self {
            started: now,
            last: now,
            shares: BTreeMap::new(),
            known: true,
            done: 0,
        };
        for (s, n) in units {
            let share = t.shares.entry(s.name.clone()).or_default();
            share.weight = weight(s);
            match n {
                Some(n) => share.planned += n,
                None => t.known = false,
            }
        }
        t
    }

    /// A request of `scenario` finished (its time: since the previous one finished).
    pub fn request_done(&mut self, scenario: &str) -> Progress {
        let now = Instant::now();
        let took = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.done += 1;
        let share = self.shares.entry(scenario.to_string()).or_insert(Share {
            weight: 1.0,
            ..Share::default()
        });
        share.done += 1;
        share.seconds += took;
        let total = if self.known {
            self.shares.values().map(|s| s.planned.max(s.done)).sum()
        } else {
            0
        };
        Progress {
            requests_done: self.done,
            requests_total: total,
            elapsed_s: now.duration_since(self.started).as_secs_f64(),
            // The first requests carry the set-up (settling, loading): no estimate before the
            // third.
            eta_s: (self.known && self.done >= MIN_REQUESTS_FOR_ETA)
                .then(|| eta_s(self.shares.values()))
                .flatten(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::ScenarioFile;

    fn share(weight: f64, planned: u64, done: u64, seconds: f64) -> Share {
        Share {
            weight,
            planned,
            done,
            seconds,
        }
    }

    #[test]
    fn eta_from_measured_scenarios_and_weights() {
        assert_eq!(eta_s([share(1.0, 5, 0, 0.0)].iter()), None);
        // 2 of 6 done in 8 s: 4 left at 4 s.
        assert_eq!(eta_s([share(1.0, 6, 2, 8.0)].iter()), Some(16.0));
        // A scenario not started, 5 times the weight: 5 x 4 s per request.
        let e = eta_s([share(1.0, 6, 6, 24.0), share(5.0, 2, 0, 0.0)].iter()).unwrap();
        assert!((e - 40.0).abs() < 1e-9, "{e}");
        // Started: its own mean, whatever its weight said.
        let e = eta_s([share(1.0, 6, 6, 24.0), share(5.0, 2, 1, 7.0)].iter()).unwrap();
        assert!((e - 7.0).abs() < 1e-9, "{e}");
    }

    #[test]
    fn long_form_weighs_more_and_unknown_totals_give_no_eta() {
        let file = ScenarioFile::default_file().unwrap();
        let by = |n: &str| file.scenarios.iter().find(|s| s.name == n).unwrap();
        let (chat, long) = (by("interactive_assistant"), by("long_form_summarization"));
        // Measured on 2 cores with the default model: 2.2 s and 20.5 s per request (9.3
        // times; 6.4 times with the quick profile's shorter long-form outputs).
        let ratio = weight(long) / weight(chat);
        assert!((5.0..10.0).contains(&ratio), "{ratio}");
        let mut t = Tracker::new([(chat, Some(2)), (long, Some(1))]);
        let p = t.request_done("interactive_assistant");
        assert_eq!((p.requests_done, p.requests_total, p.eta_s), (1, 3, None));
        t.request_done("interactive_assistant");
        let p = t.request_done("long_form_summarization");
        assert_eq!((p.requests_done, p.eta_s), (3, Some(0.0)));
        let mut t = Tracker::new([(chat, Some(2)), (long, None)]);
        let p = t.request_done("interactive_assistant");
        assert_eq!((p.requests_total, p.eta_s), (0, None));
    }
}
