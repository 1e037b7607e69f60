//! The fleet agent: takes the next queued plan its label allows from a store's queue, runs it
//! as `run` or `eval` would (results written to that store), renews its lease while it runs, and
//! takes the next; a plan whose agent died is resumed from the store by the agent that claims it
//! after the lease ran out.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::eval_request::EvalRequest;
use super::request::RunRequest;
use super::{eval, perf, CancelFlag, Context, Event, EventSink, ExperimentError};
use crate::backend::TokenCounter;
use crate::repro::Environment;
use crate::store::{QueueItem, QueueStatus, Store, StoreLocation};

/// A plan as queued: what `edgebench run` or `edgebench eval` would be asked.
#[derive(Debug, Clone, PartialEq)]
pub enum QueuedPlan {
    Run(Box<RunRequest>),
    Eval(Box<EvalRequest>),
}

impl QueuedPlan {
    /// "run" or "eval".
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Run(_) => "run",
            Self::Eval(_) => "eval",
        }
    }

    /// The request as stored in the queue.
    pub fn to_json(&self) -> Result<String, ExperimentError> {
        match self {
            Self::Run(r) => serde_json::to_string(r),
            Self::Eval(r) => serde_json::to_string(r),
        }
        .map_err(|e| ExperimentError::Plan(e.to_string()))
    }

    /// A queued plan read back.
    pub fn from_item(item: &QueueItem) -> Result<Self, ExperimentError> {
        let bad =
            |e: serde_json::Error| ExperimentError::Plan(format!("queued plan {}: {e}", item.id));
        match item.kind.as_str() {
            "run" => Ok(Self::Run(Box::new(
                serde_json::from_str(&item.plan_json).map_err(bad)?,
            ))),
            "eval" => Ok(Self::Eval(Box::new(
                serde_json::from_str(&item.plan_json).map_err(bad)?,
            ))),
            other => Err(ExperimentError::Plan(format!(
                "queued plan {}: unknown kind {other:?}",
                item.id
            ))),
        }
    }

    /// Checks the request as `run` or `eval` would before anything runs.
    pub fn check(&self) -> Result<(), ExperimentError> {
        match self {
            Self::Run(r) => r.check(),
            Self::Eval(r) => r.check().map(|_| ()),
        }
    }
}

/// Puts `copies` copies of a checked plan on a store's queue, for agents with `label` ("" for
/// any agent); their ids.
pub fn enqueue(
    store: &Store,
    plan: &QueuedPlan,
    label: &str,
    copies: u32,
) -> Result<Vec<i64>, ExperimentError> {
    plan.check()?;
    let json = plan.to_json()?;
    (0..copies)
        .map(|_| Ok(store.queue_add(plan.kind(), &json, label)?))
        .collect()
}

/// Opens a tokenizer file named by a queued run.
pub type OpenTokenizer =
    dyn Fn(&std::path::Path) -> Result<Arc<dyn TokenCounter>, String> + Send + Sync;

/// How an agent works.
pub struct AgentOptions {
    /// The store whose queue it drains, and where results go.
    pub store: StoreLocation,
    /// It takes plans for this label and plans for any machine.
    pub label: String,
    /// Its name in the queue (the holder of a lease).
    pub name: String,
    /// Where the result files go (the rows go to `store`).
    pub results_dir: PathBuf,
    /// How long a claim holds without renewal; renewed every third of it.
    pub lease: Duration,
    /// How long to wait before looking again when nothing can be taken.
    pub poll: Duration,
    /// Stop once no plan for this label is queued or running anywhere.
    pub drain: bool,
    pub environment: Environment,
    /// For queued runs that name a tokenizer file.
    pub open_tokenizer: Option<Arc<OpenTokenizer>>,
}

/// What an agent did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentOutcome {
    pub done: usize,
    pub failed: usize,
    /// Plans taken over by another agent (this agent's lease ran out).
    pub lost: usize,
}

/// The queue, shared by the agent's loop, its lease renewal and its event watcher.
type Queue = Arc<Mutex<Store>>;

fn with_queue<T>(
    q: &Queue,
    f: impl FnOnce(&Store) -> Result<T, crate::store::StoreError>,
) -> Result<T, ExperimentError> {
    let store = q
        .lock()
        .map_err(|_| ExperimentError::Plan("the queue's connection was poisoned".into()))?;
    Ok(f(&store)?)
}

/// Passes events on, and records in the queue the experiment a plan started so that a later
/// claim resumes it.
struct Watch {
    inner: Arc<dyn EventSink>,
    queue: Queue,
    item: i64,
    agent: String,
}

impl EventSink for Watch {
    fn event(&self, e: Event) {
        if let Event::Started { experiment_id, .. } = &e {
            let r = with_queue(&self.queue, |s| {
                s.queue_set_experiment(self.item, &self.agent, experiment_id)
            });
            if let Err(err) = r {
                self.inner.event(Event::Warning(format!(
                    "queue: could not record experiment {experiment_id} for plan {}: {err}",
                    self.item
                )));
            }
        }
        self.inner.event(e);
    }
}

/// Runs queued plans until cancelled (Ctrl-C gives the plan going back to the queue, resumable)
/// or, with `drain`, until none is left for this label.
pub async fn run(opts: &AgentOptions, ctx: &Context) -> Result<AgentOutcome, ExperimentError> {
    let queue: Queue = Arc::new(Mutex::new(Store::connect(&opts.store)?));
    let lease_ms = i64::try_from(opts.lease.as_millis())
        .unwrap_or(i64::MAX)
        .max(1);
    let events = ctx.events.as_ref();
    events.event(Event::Info(format!(
        "agent {} on {} (label {:?}, lease {:.0} s)",
        opts.name,
        opts.store.shown(),
        opts.label,
        opts.lease.as_secs_f64()
    )));
    let mut out = AgentOutcome::default();
    loop {
        if ctx.cancel.is_cancelled() {
            return Err(ExperimentError::Interrupted);
        }
        let claimed = with_queue(&queue, |s| s.queue_claim(&opts.name, &opts.label, lease_ms))?;
        let Some(item) = claimed else {
            if opts.drain {
                let open = with_queue(&queue, |s| s.queue())?
                    .into_iter()
                    .filter(|i| i.label.is_empty() || i.label == opts.label)
                    .any(|i| matches!(i.status, QueueStatus::Queued | QueueStatus::Running));
                if !open {
                    events.event(Event::Info(format!(
                        "agent {}: the queue is drained ({} done, {} failed)",
                        opts.name, out.done, out.failed
                    )));
                    return Ok(out);
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(opts.poll) => {}
                _ = ctx.cancel.cancelled() => return Err(ExperimentError::Interrupted),
            }
            continue;
        };
        events.event(Event::Info(format!(
            "agent {}: plan {} ({}, attempt {}{})",
            opts.name,
            item.id,
            item.kind,
            item.attempts,
            item.experiment_id
                .as_deref()
                .map_or_else(String::new, |e| format!(", resuming {e}"))
        )));
        match run_item(&item, opts, ctx, &queue, lease_ms).await {
            Ended::Done => out.done += 1,
            Ended::Failed => out.failed += 1,
            Ended::Lost => out.lost += 1,
            Ended::Interrupted => return Err(ExperimentError::Interrupted),
        }
    }
}

/// How one plan ended for this agent.
enum Ended {
    Done,
    Failed,
    Lost,
    Interrupted,
}

async fn run_item(
    item: &QueueItem,
    opts: &AgentOptions,
    ctx: &Context,
    queue: &Queue,
    lease_ms: i64,
) -> Ended {
    let events = ctx.events.clone();
    let plan_cancel = CancelFlag::default();
    let plan_ctx = Context {
        events: Arc::new(Watch {
            inner: ctx.events.clone(),
            queue: queue.clone(),
            item: item.id,
            agent: opts.name.clone(),
        }),
        cancel: plan_cancel.clone(),
        engine: ctx.engine.clone(),
    };
    let lost = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Renews the lease every third of it, and passes the agent's own cancellation on.
    let renew = {
        let (queue, lost, plan_cancel, events) = (
            queue.clone(),
            lost.clone(),
            plan_cancel.clone(),
            events.clone(),
        );
        let (id, name, every) = (item.id, opts.name.clone(), opts.lease / 3);
        let agent_cancel = ctx.cancel.clone();
        async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = agent_cancel.cancelled() => {
                        plan_cancel.cancel();
                        std::future::pending::<()>().await;
                    }
                }
                match with_queue(&queue, |s| s.queue_renew(id, &name, lease_ms)) {
                    Ok(true) => {}
                    Ok(false) => {
                        lost.store(true, std::sync::atomic::Ordering::SeqCst);
                        plan_cancel.cancel();
                        std::future::pending::<()>().await;
                    }
                    Err(e) => events.event(Event::Warning(format!(
                        "queue: could not renew the lease on plan {id}: {e}"
                    ))),
                }
            }
        }
    };
    let work = run_plan(item, opts, &plan_ctx);
    let result = tokio::select! {
        biased;
        r = work => r,
        _ = renew => unreachable_renew(),
    };
    let name = &opts.name;
    let finish = |status: QueueStatus, error: Option<&str>| {
        with_queue(queue, |s| s.queue_finish(item.id, name, status, error))
    };
    let note = |r: Result<bool, ExperimentError>| match r {
        Ok(true) => {}
        Ok(false) => events.event(Event::Warning(format!(
            "queue: plan {} is held by another agent now",
            item.id
        ))),
        Err(e) => events.event(Event::Warning(format!(
            "queue: could not record the end of plan {}: {e}",
            item.id
        ))),
    };
    match result {
        _ if lost.load(std::sync::atomic::Ordering::SeqCst) => {
            events.event(Event::Warning(format!(
                "agent {name}: the lease on plan {} ran out and another agent took it",
                item.id
            )));
            Ended::Lost
        }
        Ok(None) => {
            note(finish(QueueStatus::Done, None));
            Ended::Done
        }
        Ok(Some(why)) => {
            note(finish(QueueStatus::Failed, Some(&why)));
            Ended::Failed
        }
        Err(ExperimentError::Interrupted) if ctx.cancel.is_cancelled() => {
            if let Err(e) = with_queue(queue, |s| s.queue_release(item.id, name)) {
                events.event(Event::Warning(format!(
                    "queue: could not give plan {} back: {e}",
                    item.id
                )));
            }
            Ended::Interrupted
        }
        Err(e) => {
            events.event(Event::Warning(format!(
                "agent {name}: plan {} failed: {e}",
                item.id
            )));
            note(finish(QueueStatus::Failed, Some(&e.to_string())));
            Ended::Failed
        }
    }
}

/// The renewal loop never ends on its own (it waits forever once the plan is cancelled).
fn unreachable_renew() -> Result<Option<String>, ExperimentError> {
    Err(ExperimentError::Interrupted)
}

/// Runs one queued plan to its end: `None` when it finished, `Some(why)` when it ran but
/// something in it failed (an eval task on a model).
async fn run_plan(
    item: &QueueItem,
    opts: &AgentOptions,
    ctx: &Context,
) -> Result<Option<String>, ExperimentError> {
    let command = format!(
        "edgebench agent --store {}{}",
        opts.store.shown(),
        if opts.label.is_empty() {
            String::new()
        } else {
            format!(" --label {}", opts.label)
        }
    );
    let events = ctx.events.clone();
    let log = move |m: &str| events.event(Event::Info(m.to_string()));
    match QueuedPlan::from_item(item)? {
        QueuedPlan::Run(mut r) => {
            r.results = opts.results_dir.clone();
            r.no_checkpoint = false;
            r.resume = item.experiment_id.clone();
            let tokenizer = match (&r.tokenizer, &opts.open_tokenizer) {
                (Some(p), Some(open)) => Some(open(p).map_err(|e| {
                    ExperimentError::Plan(format!("tokenizer {}: {e}", p.display()))
                })?),
                (Some(p), None) => {
                    return Err(ExperimentError::Plan(format!(
                        "tokenizer {}: this agent cannot open tokenizer files",
                        p.display()
                    )))
                }
                (None, _) => None,
            };
            let mut plan = r.into_plan(opts.environment.clone(), command, tokenizer, &log)?;
            plan.store = Some(opts.store.clone());
            perf::run(plan, ctx).await.map(|_| None)
        }
        QueuedPlan::Eval(mut r) => {
            r.results = opts.results_dir.clone();
            r.resume = item.experiment_id.clone();
            let mut plan = r.into_plan(opts.environment.clone(), command, &log)?;
            plan.store = Some(opts.store.clone());
            let out = eval::run(plan, ctx).await?;
            Ok((out.failures > 0).then(|| format!("{} task(s) failed", out.failures)))
        }
    }
}
