//! The runner: builds each unit's prompts, checks them, sends warm-ups and measured requests in
//! order with cool-downs, samples resources, and hands back raw records (no statistics here).

use futures_util::StreamExt;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backend::{GenRequest, Sampling, Target};
use crate::clock::Clock;
use crate::monitor::{self, Monitor, MonitorSummary, Sample};
use crate::record::{ErrorKind, RequestRecord};
use crate::workload::{self, BuildOptions, BuiltPrompt, PromptRole, Scenario, ScenarioFile};

/// What to run against one target.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunPlan {
    /// Measured requests per unit.
    pub runs: u32,
    /// Instead of `runs`: send measured requests for this long, seconds (from a prompt pool of
    /// [`duration_pool`] prompts; requests in flight at the deadline finish and count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    /// Warm-up requests per unit (stored, flagged, left out of statistics).
    pub warmup: u32,
    /// Pause after each request, seconds.
    pub cooldown_s: f64,
    pub seed: u64,
    /// Overrides the scenarios' output lengths.
    pub max_tokens: Option<u32>,
    /// Give every prompt a unique lead-in so no prefix cache can help (default).
    pub unique_prefix: bool,
    pub sampling: Sampling,
    /// Resource sampling interval, ms.
    pub monitor_interval_ms: u64,
    /// Measured requests in flight at once (closed loop); 1 = one after another with cool-downs.
    pub concurrency: u32,
    /// Open-loop arrivals: requests per second, Poisson (seeded); latency counts from each
    /// request's scheduled arrival, so a slow server cannot hide queueing (no coordinated omission).
    pub rate_per_s: Option<f64>,
    /// Wait for the machine to go quiet before each unit (and record if it did not). Not part
    /// of the configuration hash: it decides when a unit starts, not what it measures.
    #[serde(skip)]
    pub settle: Option<crate::hw::settle::SettlePolicy>,
    /// Target settings that change what is measured (context size, API, timeouts, the
    /// tokenizer that counts tokens ...), by name; part of the configuration hash, so a resumed
    /// or compared run with other settings is told apart.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub target_options: std::collections::BTreeMap<String, serde_json::Value>,
    /// The profile that shaped this plan (`quick`); none: the documented protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<crate::experiment::profile::Profile>,
}

impl Default for RunPlan {
    fn default() -> Self {
        Self {
            runs: 20,
            duration_s: None,
            warmup: 3,
            cooldown_s: 2.0,
            seed: 42,
            max_tokens: None,
            unique_prefix: true,
            sampling: Sampling::default(),
            monitor_interval_ms: 500,
            concurrency: 1,
            rate_per_s: None,
            settle: None,
            target_options: std::collections::BTreeMap::new(),
            profile: None,
        }
    }
}

/// Why a run could not go on.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("--runs must be at least 1")]
    ZeroRuns,
    #[error(
        "--concurrency must be at least 1 and --rate a positive number of requests per second"
    )]
    BadLoad,
    #[error(transparent)]
    Workload(#[from] workload::WorkloadError),
    #[error(
        "scenario {scenario}: a prompt of {prompt_tokens} tokens plus {max_tokens} output tokens does not fit the {context}-token context of model {model}"
    )]
    PromptTooLong {
        model: String,
        scenario: String,
        prompt_tokens: u64,
        max_tokens: u32,
        context: u32,
    },
    #[error("model {model} emitted no token for scenario {scenario}: {message}")]
    NoOutput {
        model: String,
        scenario: String,
        message: String,
    },
    #[error(
        "the target went away during {model} × {scenario}: {failures} requests in a row could not connect ({message}); what was measured before is kept (start the server again and --resume)"
    )]
    TargetGone {
        model: String,
        scenario: String,
        failures: u32,
        message: String,
    },
    #[error("interrupted")]
    Interrupted,
    #[error("target: {0}")]
    Target(#[from] crate::backend::TargetError),
    #[error("{0}")]
    Storage(String),
}

/// Progress of a run, for the CLI's progress bar or a live view.
#[derive(Debug, Clone)]
pub enum RunEvent {
    /// A unit is about to start, with its number of requests (warm-ups included).
    UnitStarted {
        model: String,
        scenario: String,
        requests: u32,
    },
    /// A request finished; `last` is true for the unit's final request.
    RequestDone {
        model: String,
        scenario: String,
        record: Box<RequestRecord>,
        last: bool,
    },
}

/// The raw outcome of one unit (model x scenario).
#[derive(Debug, Clone)]
pub struct UnitOutcome {
    pub scenario: Scenario,
    /// Warm-ups first, then measured requests, in send order.
    pub records: Vec<RequestRecord>,
    pub samples: Vec<Sample>,
    pub monitor: MonitorSummary,
    pub started: time::OffsetDateTime,
    pub duration: Duration,
    /// The context window the target used for this unit, when it sizes its context.
    pub context_tokens: Option<u32>,
    /// How the machine settled before the unit, when the plan asks to settle.
    pub settle: Option<crate::hw::settle::SettleReport>,
}

/// A flag the runner checks between requests; set it to stop the run early.
#[derive(Debug, Clone, Default)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    /// Asks the run to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// True once cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Resolves once cancelled (polled every 50 ms).
    pub async fn cancelled(&self) {
        while !self.is_cancelled() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The flag itself, for code that polls an atomic (the engine thread between tokens).
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.0.clone()
    }
}

/// Prompts of one unit, checked against the context window.
#[derive(Debug, Clone)]
pub struct PreparedUnit {
    pub scenario: Scenario,
    pub warmup: Vec<BuiltPrompt>,
    pub measured: Vec<BuiltPrompt>,
}

/// Builds every unit's prompts and checks that each fits the target's context, before anything runs.
pub async fn prepare(
    plan: &RunPlan,
    file: &ScenarioFile,
    scenarios: &[&Scenario],
    target: &dyn Target,
    model: &str,
) -> Result<Vec<PreparedUnit>, RunError> {
    if plan.runs == 0 {
        return Err(RunError::ZeroRuns);
    }
    if plan.concurrency == 0 || plan.rate_per_s.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
        return Err(RunError::BadLoad);
    }
    let opts = BuildOptions {
        seed: plan.seed,
        unique_prefix: plan.unique_prefix,
        max_tokens: plan.max_tokens,
    };
    let mut units = Vec::new();
    for sc in scenarios {
        let warmup =
            workload::build_prompts(file, sc, PromptRole::Warmup, plan.warmup, &opts, target)
                .await?;
        let n = match plan.duration_s {
            Some(d) => duration_pool(
                d,
                sc.concurrency.unwrap_or(plan.concurrency),
                plan.rate_per_s,
            ),
            None => plan.runs,
        };
        let measured =
            workload::build_prompts(file, sc, PromptRole::Measured, n, &opts, target).await?;
        if let Some(context) = target.context_tokens() {
            for p in warmup.iter().chain(&measured) {
                let prompt_tokens = p.prompt_tokens.unwrap_or(0);
                if prompt_tokens + u64::from(p.max_tokens) > u64::from(context) {
                    return Err(RunError::PromptTooLong {
                        model: model.to_string(),
                        scenario: sc.name.clone(),
                        prompt_tokens,
                        max_tokens: p.max_tokens,
                        context,
                    });
                }
            }
        }
        units.push(PreparedUnit {
            scenario: (*sc).clone(),
            warmup,
            measured,
        });
    }
    Ok(units)
}

/// Measured prompts prepared for a `--duration` unit: enough for the expected arrivals of an
/// open loop (1.5x, plus slack), or 64 per stream in a closed loop; at least 256, at most 20,000.
pub fn duration_pool(duration_s: f64, concurrency: u32, rate_per_s: Option<f64>) -> u32 {
    let n = match rate_per_s {
        Some(r) => (r * duration_s * 1.5).ceil() + 16.0,
        None => 64.0 * f64::from(concurrency.max(1)),
    };
    n.clamp(256.0, 20_000.0) as u32
}

/// Called once per unit between the warm-ups and the first measured request, so figures taken
/// around a unit (a server's `/metrics`, its log-pattern counts) cover the measured requests only.
#[async_trait::async_trait]
pub trait PhaseHook: Send + Sync {
    /// The warm-ups are done; the first measured request is about to be sent.
    async fn measured_starting(&self);
}

/// Connection failures in a row (refused, unreachable, or timed out while connecting) after
/// which the target counts as gone.
pub const GONE_AFTER_CONNECT_FAILURES: u32 = 3;

/// Receives run events; an error (for example the store refusing a record) stops the run.
pub type EventSink<'a> = dyn Fn(RunEvent) -> Result<(), String> + Send + Sync + 'a;

/// Runs one prepared unit: warm-ups, then measured requests, one at a time with the cool-down
/// after each. A failed request is recorded and the unit goes on; a first request that yields no
/// token at all stops the run (the model is unusable for this scenario). Every finished request
/// is handed to `on_event` as it finishes.
#[allow(clippy::too_many_arguments)]
pub async fn run_unit(
    plan: &RunPlan,
    unit: &PreparedUnit,
    target: &dyn Target,
    model: &str,
    clock: &Clock,
    cancel: &CancelFlag,
    on_event: &EventSink<'_>,
    hook: Option<&dyn PhaseHook>,
) -> Result<UnitOutcome, RunError> {
    let need = unit
        .warmup
        .iter()
        .chain(&unit.measured)
        .map(|p| p.prompt_tokens.unwrap_or(0) + u64::from(p.max_tokens))
        .max()
        .unwrap_or(0);
    let context_tokens = target
        .reserve_context(u32::try_from(need).unwrap_or(u32::MAX))
        .await?;
    let started = time::OffsetDateTime::now_utc();
    let t0 = Instant::now();
    let pid = target.info().pid;
    let settle = plan.settle.as_ref().map(crate::hw::settle::settle);
    let mon = Monitor::start(pid, Duration::from_millis(plan.monitor_interval_ms), *clock);
    let total = (unit.warmup.len() + unit.measured.len()) as u32;
    on_event(RunEvent::UnitStarted {
        model: model.to_string(),
        scenario: unit.scenario.name.clone(),
        requests: total,
    })
    .map_err(RunError::Storage)?;
    let mut records = Vec::with_capacity(total as usize);
    let request = |index: usize, warmup: bool, p: &BuiltPrompt, scheduled: Instant| GenRequest {
        index: index as u32,
        warmup,
        prompt_id: p.prompt_id.clone(),
        messages: p.messages.clone(),
        max_tokens: p.max_tokens,
        ignore_eos: unit.scenario.ignore_eos,
        sampling: crate::backend::Sampling {
            temperature: unit
                .scenario
                .temperature
                .unwrap_or(plan.sampling.temperature),
            ..plan.sampling.clone()
        },
        scheduled,
    };
    let finished = std::sync::atomic::AtomicU32::new(0);
    let done = |rec: &RequestRecord| {
        let n = finished.fetch_add(1, Ordering::SeqCst) + 1;
        on_event(RunEvent::RequestDone {
            model: model.to_string(),
            scenario: unit.scenario.name.clone(),
            record: Box::new(rec.clone()),
            last: n == total,
        })
        .map_err(RunError::Storage)
    };
    // A server that stops answering ends the unit instead of failing every request left.
    let connect_failures = std::sync::atomic::AtomicU32::new(0);
    let gone = |rec: &RequestRecord| match &rec.error {
        Some(e) if matches!(e.kind, ErrorKind::Connect | ErrorKind::ConnectTimeout) => {
            let n = connect_failures.fetch_add(1, Ordering::SeqCst) + 1;
            (n >= GONE_AFTER_CONNECT_FAILURES).then(|| RunError::TargetGone {
                model: model.to_string(),
                scenario: unit.scenario.name.clone(),
                failures: n,
                message: e.message.clone(),
            })
        }
        _ => {
            connect_failures.store(0, Ordering::SeqCst);
            None
        }
    };
    let no_output = |rec: &RequestRecord| {
        rec.error
            .as_ref()
            .filter(|e| rec.index == 0 && e.kind == ErrorKind::NoOutput)
            .map(|e| RunError::NoOutput {
                model: model.to_string(),
                scenario: unit.scenario.name.clone(),
                message: e.message.clone(),
            })
    };
    let concurrency = unit.scenario.concurrency.unwrap_or(plan.concurrency).max(1);
    let sequential = concurrency <= 1 && plan.rate_per_s.is_none();
    // --duration: measured requests start until the window closes (it opens with the first);
    // a pool that runs out is sent again behind fresh lead-ins (see `workload::reuse`).
    let window = plan.duration_s.map(Duration::from_secs_f64);
    let pool = unit.measured.len();
    // Owned prompts: futures built from borrowed ones (a `Cow`) in the iterator below are
    // taken as higher-ranked, which makes the unit's future not `Send` (a spawned experiment).
    // The request clones the messages anyway.
    let measured_prompt = |k: usize| -> Option<BuiltPrompt> {
        let p = unit.measured.get(k % pool.max(1))?;
        match k / pool.max(1) {
            0 => Some(p.clone()),
            _ if window.is_none() => None,
            round => Some(workload::reuse(p, u32::try_from(round).unwrap_or(u32::MAX))),
        }
    };
    // Warm-ups always run one at a time; measured requests follow the load shape.
    let mut index = 0usize;
    for p in &unit.warmup {
        let rec = tokio::select! {
            rec = target.generate(request(index, true, p, Instant::now()), clock) => rec,
            _ = cancelled(cancel) => {
                mon.stop();
                return Err(RunError::Interrupted);
            }
        };
        index += 1;
        if let Err(e) = step(&rec, &no_output, &done, &gone) {
            mon.stop();
            return Err(e);
        }
        records.push(rec);
        if plan.cooldown_s > 0.0 && (index as u32) < total {
            sleep_unless_cancelled(Duration::from_secs_f64(plan.cooldown_s), cancel).await;
        }
    }
    if cancel.is_cancelled() {
        mon.stop();
        return Err(RunError::Interrupted);
    }
    // N streams open N connections: opened here, not in the measured requests' first
    // milliseconds (a closed loop at concurrency 512 otherwise opens 511 at once).
    if !sequential {
        let n = if plan.rate_per_s.is_some() {
            pool.min(MAX_PREOPENED)
        } else {
            (concurrency as usize).min(pool.max(1))
        };
        target.open_connections(n.saturating_sub(1)).await;
    }
    if let Some(h) = hook {
        h.measured_starting().await;
    }
    // Who is measured (edgebench and the target's process tree), and the machine's counters
    // when the measured requests start.
    let measured_pids: Vec<u32> = std::iter::once(std::process::id()).chain(pid).collect();
    let quiet_before = crate::hw::interference::snapshot(&measured_pids);
    let base = index;
    if sequential {
        let end = window.map(|w| Instant::now() + w);
        for k in 0.. {
            if cancel.is_cancelled() {
                mon.stop();
                return Err(RunError::Interrupted);
            }
            if end.is_some_and(|e| Instant::now() >= e) {
                break;
            }
            let Some(p) = measured_prompt(k) else { break };
            let rec = tokio::select! {
                rec = target.generate(request(base + k, false, &p, Instant::now()), clock) => rec,
                _ = cancelled(cancel) => {
                    mon.stop();
                    return Err(RunError::Interrupted);
                }
            };
            if let Err(e) = step(&rec, &no_output, &done, &gone) {
                mon.stop();
                return Err(e);
            }
            records.push(rec);
            let more = end.is_some() || k + 1 < pool;
            if plan.cooldown_s > 0.0 && more {
                sleep_unless_cancelled(Duration::from_secs_f64(plan.cooldown_s), cancel).await;
            }
        }
    } else {
        let schedule = arrival_schedule(plan, &unit.scenario.name, pool, Instant::now());
        let end = window.map(|w| Instant::now() + w);
        let late = move |t: Instant| end.is_some_and(|e| t >= e);
        // Open loop: one request per scheduled arrival. Closed loop: the next prompt is taken
        // when a stream frees up, until the runs are sent or the window closes.
        let count = if schedule.is_some() || end.is_none() {
            pool
        } else {
            usize::MAX
        };
        let futs = (0..count)
            .map_while(|k| {
                if schedule.is_none() && late(Instant::now()) {
                    return None;
                }
                Some((k, measured_prompt(k)?))
            })
            .map(|(k, p)| {
                let at = schedule.as_ref().map(|s| s[k]);
                let request = &request;
                async move {
                    if at.is_some_and(late) {
                        return None;
                    }
                    if let Some(at) = at {
                        tokio::time::sleep_until(at.into()).await;
                    }
                    if cancel.is_cancelled() || late(Instant::now()) {
                        return None;
                    }
                    let scheduled = at.unwrap_or_else(Instant::now);
                    tokio::select! {
                        rec = target.generate(request(base + k, false, &p, scheduled), clock) => Some(rec),
                        _ = cancelled(cancel) => None,
                    }
                }
            });
        let in_flight = if schedule.is_some() {
            pool.max(1)
        } else {
            concurrency as usize
        };
        let mut stream = futures_util::stream::iter(futs).buffer_unordered(in_flight);
        let mut failure = None;
        while let Some(rec) = stream.next().await {
            let Some(rec) = rec else { continue };
            if let Err(e) = done(&rec) {
                cancel.cancel();
                failure.get_or_insert(e);
            }
            if let Some(e) = gone(&rec) {
                cancel.cancel();
                failure.get_or_insert(e);
            }
            records.push(rec);
        }
        drop(stream);
        if let Some(e) = failure {
            mon.stop();
            return Err(e);
        }
        records.sort_by_key(|r| r.index);
        if let Some(e) = records.iter().find_map(no_output) {
            mon.stop();
            return Err(e);
        }
    }
    // A request cut short by Ctrl-C is not a measurement: the unit stays unfinished.
    if cancel.is_cancelled()
        || records.iter().any(|r| {
            r.error
                .as_ref()
                .is_some_and(|e| e.kind == ErrorKind::Cancelled)
        })
    {
        mon.stop();
        return Err(RunError::Interrupted);
    }
    let quiet_after = crate::hw::interference::snapshot(&measured_pids);
    let (samples, cost) = mon.finish();
    let mut monitor = monitor::summarize(&samples);
    if let (Some(a), Some(b)) = (&quiet_before, &quiet_after) {
        monitor.interference = Some(crate::hw::interference::between(
            a,
            b,
            crate::hw::interference::DEFAULT_THRESHOLD_PERCENT_OF_CORE,
        ));
    }
    monitor.sampler_cpu_percent_of_core = cost.percent_of_core();
    monitor.energy_source = Some(cost.energy_source);
    // The sampled span covers warm-ups too, so energy is shared over every token generated.
    let all_tokens: u64 = records.iter().map(|r| r.output_tokens).sum();
    monitor.joules_per_output_token = monitor::joules_per_token(monitor.energy_j, all_tokens);
    if let Some(now) = pid.and_then(monitor::rss_mb) {
        monitor.peak_rss_mb = Some(monitor.peak_rss_mb.map_or(now, |p| p.max(now)));
    }
    Ok(UnitOutcome {
        scenario: unit.scenario.clone(),
        records,
        samples,
        monitor,
        started,
        duration: t0.elapsed(),
        context_tokens,
        settle,
    })
}

/// Connections opened ahead of an open-loop (`--rate`) unit at most.
const MAX_PREOPENED: usize = 64;

/// Poisson arrival times for an open-loop unit (`None` in closed loop): exponential gaps with
/// mean 1/rate, from a RNG seeded by the plan's seed and the scenario.
pub fn arrival_schedule(
    plan: &RunPlan,
    scenario: &str,
    n: usize,
    start: Instant,
) -> Option<Vec<Instant>> {
    let rate = plan.rate_per_s?;
    let mut seed = plan.seed;
    for b in scenario.bytes() {
        seed = seed.rotate_left(5) ^ u64::from(b);
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut t = 0.0_f64;
    Some(
        (0..n)
            .map(|_| {
                let u: f64 = rng.gen_range(f64::EPSILON..1.0);
                t += -u.ln() / rate;
                start + Duration::from_secs_f64(t)
            })
            .collect(),
    )
}

/// One finished sequential request: the no-output check, the event, the gone check.
fn step(
    rec: &RequestRecord,
    no_output: &dyn Fn(&RequestRecord) -> Option<RunError>,
    done: &dyn Fn(&RequestRecord) -> Result<(), RunError>,
    gone: &dyn Fn(&RequestRecord) -> Option<RunError>,
) -> Result<(), RunError> {
    if let Some(e) = no_output(rec) {
        return Err(e);
    }
    done(rec)?;
    gone(rec).map_or(Ok(()), Err)
}

/// Resolves once the run is cancelled (polled every 50 ms).
async fn cancelled(cancel: &CancelFlag) {
    cancel.cancelled().await
}

async fn sleep_unless_cancelled(d: Duration, cancel: &CancelFlag) {
    let end = Instant::now() + d;
    while Instant::now() < end && !cancel.is_cancelled() {
        let left = end.saturating_duration_since(Instant::now());
        tokio::time::sleep(left.min(Duration::from_millis(50))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::mock::MockTarget;
    use crate::metrics::{summarize_unit, UnitContext};
    use std::sync::Mutex;

    fn plan() -> RunPlan {
        RunPlan {
            runs: 4,
            warmup: 2,
            cooldown_s: 0.0,
            max_tokens: Some(5),
            monitor_interval_ms: 10,
            ..RunPlan::default()
        }
    }

    struct Marker(Mutex<Vec<&'static str>>);

    #[async_trait::async_trait]
    impl PhaseHook for Marker {
        async fn measured_starting(&self) {
            self.0.lock().unwrap().push("hook");
        }
    }

    #[tokio::test]
    async fn the_phase_hook_runs_between_warmups_and_measured_requests() {
        let file = ScenarioFile::default_file().unwrap();
        let sc = file.select(&["interactive_assistant".into()]).unwrap();
        let target = MockTarget::default();
        for concurrency in [1, 3] {
            let p = RunPlan {
                concurrency,
                ..plan()
            };
            let units = prepare(&p, &file, &sc, &target, "m").await.unwrap();
            let marker = Marker(Mutex::new(Vec::new()));
            run_unit(
                &p,
                &units[0],
                &target,
                "m",
                &Clock::new(),
                &CancelFlag::default(),
                &|e| {
                    if let RunEvent::RequestDone { record, .. } = e {
                        marker.0.lock().unwrap().push(if record.warmup {
                            "warmup"
                        } else {
                            "measured"
                        });
                    }
                    Ok(())
                },
                Some(&marker),
            )
            .await
            .unwrap();
            let seen = marker.0.into_inner().unwrap();
            assert_eq!(
                seen,
                ["warmup", "warmup", "hook", "measured", "measured", "measured", "measured"],
                "concurrency {concurrency}"
            );
        }
    }

    #[tokio::test]
    async fn a_duration_unit_reuses_its_pool_behind_fresh_lead_ins() {
        let file = ScenarioFile::default_file().unwrap();
        let sc = file.select(&["interactive_assistant".into()]).unwrap();
        let target = MockTarget {
            ttft: Duration::ZERO,
            itl: Duration::ZERO,
            ..MockTarget::default()
        };
        for concurrency in [1, 4] {
            let p = RunPlan {
                duration_s: Some(1.5),
                warmup: 0,
                concurrency,
                max_tokens: Some(1),
                ..plan()
            };
            let units = prepare(&p, &file, &sc, &target, "m").await.unwrap();
            let pool = units[0].measured.len();
            let out = run_unit(
                &p,
                &units[0],
                &target,
                "m",
                &Clock::new(),
                &CancelFlag::default(),
                &|_| Ok(()),
                None,
            )
            .await
            .unwrap();
            assert!(
                out.records.len() > pool,
                "concurrency {concurrency}: {} requests from a pool of {pool}",
                out.records.len()
            );
            let ids: std::collections::HashSet<_> =
                out.records.iter().map(|r| r.prompt_id.clone()).collect();
            assert_eq!(ids.len(), out.records.len(), "every prompt is unique");
            let mut idx: Vec<u32> = out.records.iter().map(|r| r.index).collect();
            idx.dedup();
            assert_eq!(idx.len(), out.records.len());
        }
    }

    #[tokio::test]
    async fn ctrl_c_during_the_last_request_leaves_the_unit_unfinished() {
        let file = ScenarioFile::default_file().unwrap();
        let sc = file.select(&["interactive_assistant".into()]).unwrap();
        let target = MockTarget {
            itl: Duration::from_millis(20),
            ..MockTarget::default()
        };
        let p = RunPlan {
            runs: 1,
            warmup: 0,
            max_tokens: Some(200),
            ..plan()
        };
        let units = prepare(&p, &file, &sc, &target, "m").await.unwrap();
        let cancel = CancelFlag::default();
        let c = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            c.cancel();
        });
        let t = Instant::now();
        let e = run_unit(
            &p,
            &units[0],
            &target,
            "m",
            &Clock::new(),
            &cancel,
            &|_| Ok(()),
            None,
        )
        .await
        .unwrap_err();
        assert!(matches!(e, RunError::Interrupted), "{e}");
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "the request in flight was not cut short"
        );
    }

    #[tokio::test]
    async fn a_server_that_goes_away_mid_run_ends_the_unit_with_what_it_measured() {
        use crate::backend::mock_server::{MockServer, Response, Step};
        let file = ScenarioFile::default_file().unwrap();
        let sc = file.select(&["interactive_assistant".into()]).unwrap();
        let server = MockServer::start(|_| {
            Response::sse(vec![
                Step::content("a"),
                Step::content("b"),
                Step::data(&serde_json::json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})),
                Step::done(),
            ])
        })
        .await
        .unwrap();
        let target = crate::backend::openai::OpenAiTarget::new(
            crate::backend::openai::HttpConfig::new(server.base_url(), "m"),
        )
        .unwrap();
        let p = RunPlan {
            runs: 12,
            warmup: 0,
            ..plan()
        };
        let units = prepare(&p, &file, &sc, &target, "m").await.unwrap();
        let server = Mutex::new(Some(server));
        let ok = Mutex::new(0);
        let e = run_unit(
            &p,
            &units[0],
            &target,
            "m",
            &Clock::new(),
            &CancelFlag::default(),
            &|e| {
                if let RunEvent::RequestDone { record, .. } = e {
                    let mut n = ok.lock().unwrap();
                    *n += usize::from(record.ok());
                    if *n == 4 {
                        // The server goes away, open connections and all.
                        server.lock().unwrap().take();
                    }
                }
                Ok(())
            },
            None,
        )
        .await
        .unwrap_err();
        assert!(matches!(e, RunError::TargetGone { .. }), "{e}");
        assert_eq!(
            *ok.lock().unwrap(),
            4,
            "the requests before it went away were measured"
        );
    }

    #[tokio::test]
    async fn runs_warmups_then_measured_and_keeps_failures() {
        let file = ScenarioFile::default_file().unwrap();
        let sc = file.select(&["interactive_assistant".into()]).unwrap();
        let target = MockTarget {
            fail_every: 3,
            ..MockTarget::default()
        };
        let units = prepare(&plan(), &file, &sc, &target, "m").await.unwrap();
        let events = Mutex::new(0);
        let out = run_unit(
            &plan(),
            &units[0],
            &target,
            "m",
            &Clock::new(),
            &CancelFlag::default(),
            &|e| {
                if matches!(e, RunEvent::RequestDone { .. }) {
                    *events.lock().unwrap() += 1;
                }
                Ok(())
            },
            None,
        )
        .await
        .unwrap();
        assert_eq!(out.records.len(), 6);
        assert_eq!(*events.lock().unwrap(), 6);
        assert!(out.records[..2].iter().all(|r| r.warmup));
        assert!(out.records[2..].iter().all(|r| !r.warmup));
        // Indices 0 and 3 fail (every 3rd); index 3 is measured.
        assert!(!out.records[3].ok());
        let s = summarize_unit(
            &out.records,
            &UnitContext {
                model: "m",
                scenario: "interactive_assistant",
                json: false,
                peak_rss_mb: None,
                duration_s: 1.0,
                seed: 1,
            },
        );
        assert_eq!(s.requests, 4);
        assert_eq!(s.successes, 3);
        assert_eq!(s.failures.get("engine"), Some(&1));
        let ttft = s.ttft_ms.unwrap();
        assert!(ttft.summary.mean >= 5.0, "{}", ttft.summary.mean);
    }

    #[tokio::test]
    async fn rejects_zero_runs_and_prompts_beyond_the_context() {
        let file = ScenarioFile::default_file().unwrap();
        let sc = file.select(&["long_form_summarization".into()]).unwrap();
        let small = MockTarget {
            context: 1000,
            ..MockTarget::default()
        };
        let e = prepare(&plan(), &file, &sc, &small, "tiny")
            .await
            .unwrap_err();
        assert!(matches!(e, RunError::PromptTooLong { .. }), "{e}");
        assert!(e.to_string().contains("long_form_summarization"));
        let zero = RunPlan { runs: 0, ..plan() };
        assert!(matches!(
            prepare(&zero, &file, &sc, &small, "m").await.unwrap_err(),
            RunError::ZeroRuns
        ));
    }

    #[tokio::test]
    async fn a_model_that_emits_no_token_stops_the_run() {
        let file = ScenarioFile::default_file().unwrap();
        let sc = file.select(&["interactive_assistant".into()]).unwrap();
        let mute = MockTarget {
            emit_tokens: Some(0),
            ..MockTarget::default()
        };
        let units = prepare(&plan(), &file, &sc, &mute, "mute").await.unwrap();
        let e = run_unit(
            &plan(),
            &units[0],
            &mute,
            "mute",
            &Clock::new(),
            &CancelFlag::default(),
            &|_| Ok(()),
            None,
        )
        .await
        .unwrap_err();
        assert!(matches!(e, RunError::NoOutput { .. }), "{e}");
        assert!(e.to_string().contains("mute") && e.to_string().contains("interactive_assistant"));
    }

    #[tokio::test]
    async fn concurrency_keeps_n_requests_in_flight() {
        let file = ScenarioFile::default_file().unwrap();
        let sc = file.select(&["interactive_assistant".into()]).unwrap();
        let target = MockTarget {
            ttft: Duration::from_millis(20),
            ..MockTarget::default()
        };
        let p = RunPlan {
            runs: 12,
            warmup: 1,
            concurrency: 4,
            // Applies after the warm-up only; measured requests under load do not pause.
            cooldown_s: 0.3,
            ..plan()
        };
        let units = prepare(&p, &file, &sc, &target, "m").await.unwrap();
        let out = run_unit(
            &p,
            &units[0],
            &target,
            "m",
            &Clock::new(),
            &CancelFlag::default(),
            &|_| Ok(()),
            None,
        )
        .await
        .unwrap();
        assert_eq!(out.records.len(), 13);
        assert!(out.records.windows(2).all(|w| w[0].index < w[1].index));
        assert_eq!(target.max_in_flight(), 4);
        // 0.3 s cool-down + 3 waves of ~20 ms; one at a time with cool-downs would take > 3 s.
        assert!(out.duration < Duration::from_secs(2), "{:?}", out.duration);
        assert!(out.duration >= Duration::from_millis(300));
    }

    #[tokio::test]
    async fn duration_sends_requests_until_the_deadline_in_every_load_shape() {
        let file = ScenarioFile::default_file().unwrap();
        let sc = file.select(&["interactive_assistant".into()]).unwrap();
        // Each request takes ~20 ms + 4 x 1 ms.
        let target = MockTarget {
            ttft: Duration::from_millis(20),
            ..MockTarget::default()
        };
        for (concurrency, rate) in [(1, None), (4, None), (1, Some(100.0))] {
            let p = RunPlan {
                duration_s: Some(0.5),
                warmup: 1,
                concurrency,
                rate_per_s: rate,
                ..plan()
            };
            let units = prepare(&p, &file, &sc, &target, "m").await.unwrap();
            assert_eq!(units[0].measured.len(), 256, "the smallest pool");
            let t = Instant::now();
            let out = run_unit(
                &p,
                &units[0],
                &target,
                "m",
                &Clock::new(),
                &CancelFlag::default(),
                &|_| Ok(()),
                None,
            )
            .await
            .unwrap();
            let measured = out.records.iter().filter(|r| !r.warmup).count();
            // ~0.5 s of ~24 ms requests: about 20 one at a time, 80 with 4 streams, 50 at 100/s.
            let (lo, hi) = match (concurrency, rate) {
                (1, None) => (8, 25),
                (4, None) => (35, 100),
                _ => (25, 75),
            };
            assert!(
                (lo..=hi).contains(&measured),
                "concurrency {concurrency}, rate {rate:?}: {measured} requests"
            );
            let took = t.elapsed();
            assert!(
                took >= Duration::from_millis(480) && took < Duration::from_millis(1500),
                "{took:?}"
            );
        }
        assert_eq!(duration_pool(60.0, 8, None), 512);
        assert_eq!(duration_pool(100.0, 1, Some(10.0)), 1516);
        assert_eq!(duration_pool(1e9, 1, Some(10.0)), 20_000);
    }

    #[tokio::test]
    async fn a_target_that_goes_away_ends_the_unit_with_what_was_measured() {
        let file = ScenarioFile::default_file().unwrap();
        let sc = file.select(&["interactive_assistant".into()]).unwrap();
        // A port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let target = crate::backend::openai::OpenAiTarget::new(
            crate::backend::openai::HttpConfig::new(format!("http://127.0.0.1:{port}/v1"), "m"),
        )
        .unwrap();
        for concurrency in [1, 2] {
            let p = RunPlan {
                runs: 10,
                warmup: 0,
                concurrency,
                ..plan()
            };
            let units = prepare(&p, &file, &sc, &target, "m").await.unwrap();
            let seen = Mutex::new(0);
            let e = run_unit(
                &p,
                &units[0],
                &target,
                "m",
                &Clock::new(),
                &CancelFlag::default(),
                &|_| {
                    *seen.lock().unwrap() += 1;
                    Ok(())
                },
                None,
            )
            .await
            .unwrap_err();
            assert!(matches!(e, RunError::TargetGone { .. }), "{e}");
            assert!(e.to_string().contains("--resume"), "{e}");
            // Every finished request was handed on before the unit ended.
            let n = *seen.lock().unwrap() - 1;
            assert!((3..10).contains(&n), "{n} requests recorded");
        }
    }

    #[tokio::test]
    async fn rate_schedules_poisson_arrivals_and_latency_counts_from_them() {
        let p = RunPlan {
            rate_per_s: Some(50.0),
            ..plan()
        };
        let t0 = Instant::now();
        let a = arrival_schedule(&p, "s", 4000, t0).unwrap();
        assert_eq!(a, arrival_schedule(&p, "s", 4000, t0).unwrap(), "seeded");
        assert!(a.windows(2).all(|w| w[0] <= w[1]));
        let mean_gap = a[3999].duration_since(t0).as_secs_f64() / 4000.0;
        assert!((mean_gap - 0.02).abs() < 0.02 * 0.06, "mean gap {mean_gap}");
        assert!(arrival_schedule(&plan(), "s", 3, t0).is_none());

        let file = ScenarioFile::default_file().unwrap();
        let sc = file.select(&["interactive_assistant".into()]).unwrap();
        let target = MockTarget {
            ttft: Duration::from_millis(15),
            ..MockTarget::default()
        };
        let p = RunPlan {
            runs: 10,
            warmup: 0,
            rate_per_s: Some(200.0),
            ..plan()
        };
        let units = prepare(&p, &file, &sc, &target, "m").await.unwrap();
        let out = run_unit(
            &p,
            &units[0],
            &target,
            "m",
            &Clock::new(),
            &CancelFlag::default(),
            &|_| Ok(()),
            None,
        )
        .await
        .unwrap();
        assert_eq!(out.records.len(), 10);
        for r in &out.records {
            assert!(r.t_sent_ns >= r.t_scheduled_ns);
            let m = crate::metrics::derive(r);
            assert!(m.ttft_ms.unwrap() >= 15.0, "{:?}", m.ttft_ms);
        }
        let bad = RunPlan {
            rate_per_s: Some(0.0),
            ..plan()
        };
        assert!(matches!(
            prepare(&bad, &file, &sc, &target, "m").await.unwrap_err(),
            RunError::BadLoad
        ));
    }

    #[tokio::test]
    async fn cancel_stops_between_requests() {
        let file = ScenarioFile::default_file().unwrap();
        let sc = file.select(&["interactive_assistant".into()]).unwrap();
        let target = MockTarget::default();
        let units = prepare(&plan(), &file, &sc, &target, "m").await.unwrap();
        let cancel = CancelFlag::default();
        cancel.cancel();
        let e = run_unit(
            &plan(),
            &units[0],
            &target,
            "m",
            &Clock::new(),
            &cancel,
            &|_| Ok(()),
            None,
        )
        .await
        .unwrap_err();
        assert!(matches!(e, RunError::Interrupted));
    }
}
