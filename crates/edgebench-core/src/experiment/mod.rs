//! An experiment from plan to files, for runs and evals alike: create or resume (config hash
//! and resume rules), units and their statuses, the warm-up/measured phase hooks, server
//! snapshots, cold start, result files. It reports through one event stream and stops on one
//! cancellation token; the CLI and the web UI only build plans and render events.

pub mod agent;
pub mod eval;
pub mod eval_request;
pub mod fit;
mod lifecycle;
pub mod perf;
pub mod profile;
pub mod progress;
pub mod request;
mod snapshots;
pub mod targets;
mod unit;

use async_trait::async_trait;
use std::path::PathBuf;
use std::sync::Arc;

use crate::backend::openai::HttpConfig;
use crate::backend::{Backend, TargetError};
use crate::catalog::ModelInfo;
use crate::eval::EvalError;
use crate::results::{PerfLine, UnitKey};
use crate::runner::RunError;
use crate::store::StoreError;

pub use crate::runner::CancelFlag;
pub use lifecycle::{Experiment, ExperimentStart, Resume};

/// What an experiment tells its observers, in order.
#[derive(Debug, Clone)]
pub enum Event {
    /// The experiment exists in the store (new, or resumed); `kind` is "perf" or "eval".
    Started {
        experiment_id: String,
        kind: String,
        resumed: bool,
    },
    /// Something worth telling (a model loading, a server's version).
    Info(String),
    /// Something that may make figures less trustworthy.
    Warning(String),
    /// A unit is about to run; `work` is its number of requests (warm-ups included) or items.
    UnitStarted { key: UnitKey, work: u64 },
    /// A request of a perf unit finished (warm-ups included), and where the whole experiment
    /// stands.
    RequestDone {
        key: UnitKey,
        line: Box<PerfLine>,
        progress: progress::Progress,
    },
    /// Eval items scored so far in a unit, out of its total.
    ItemsScored { key: UnitKey, done: u64, total: u64 },
    /// A unit was skipped (a sweep stopped before it).
    UnitSkipped { key: UnitKey, reason: String },
    /// A unit finished; its result file, when it has one.
    UnitDone {
        key: UnitKey,
        file: Option<PathBuf>,
        /// A one-line summary (eval scores).
        line: Option<String>,
    },
    /// A unit failed; the experiment may go on with the next one.
    UnitFailed { key: UnitKey, error: String },
    /// The experiment stopped: "done", "failed", "interrupted", or "discarded" (it failed
    /// before measuring anything and was removed), with the checkpoint summary (progress,
    /// failures, how to resume) as text.
    Finished {
        experiment_id: String,
        status: String,
        checkpoint: String,
    },
}

/// A request field that is out of range: a one-line error naming it (`field: why`; the CLI
/// names the field as its flag).
pub(super) fn field_error(field: &str, why: &str) -> ExperimentError {
    ExperimentError::Plan(format!("{field}: {why}"))
}

/// Receives an experiment's events. Closures are sinks; so is a channel sender.
pub trait EventSink: Send + Sync {
    fn event(&self, e: Event);
}

impl<F: Fn(Event) + Send + Sync> EventSink for F {
    fn event(&self, e: Event) {
        self(e)
    }
}

impl EventSink for tokio::sync::mpsc::UnboundedSender<Event> {
    fn event(&self, e: Event) {
        let _ = self.send(e);
    }
}

impl EventSink for tokio::sync::broadcast::Sender<Event> {
    fn event(&self, e: Event) {
        let _ = self.send(e);
    }
}

/// Why an experiment stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    /// Ctrl-C or a cancel from the web UI; what was measured is kept (resumable).
    #[error("interrupted")]
    Interrupted,
    /// A plan that cannot run (bad resume id, another configuration ...).
    #[error("{0}")]
    Plan(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Run(RunError),
    #[error(transparent)]
    Eval(EvalError),
    #[error(transparent)]
    Backend(#[from] TargetError),
    #[error("{0}")]
    Engine(String),
    #[error("writing {path}: {reason}")]
    Io { path: String, reason: String },
}

impl From<RunError> for ExperimentError {
    fn from(e: RunError) -> Self {
        match e {
            RunError::Interrupted => Self::Interrupted,
            e => Self::Run(e),
        }
    }
}

impl From<EvalError> for ExperimentError {
    fn from(e: EvalError) -> Self {
        match e {
            EvalError::Interrupted => Self::Interrupted,
            e => Self::Eval(e),
        }
    }
}

impl ExperimentError {
    pub(crate) fn io(path: &std::path::Path, e: impl std::fmt::Display) -> Self {
        Self::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        }
    }
}

/// Where a model runs.
#[derive(Debug, Clone)]
pub enum BackendSpec {
    /// The embedded llama.cpp engine, loaded through the [`EngineLoader`].
    Embedded(EngineSpec),
    /// An OpenAI-compatible server.
    Http(Box<HttpConfig>),
    /// The in-process mock (known delays, no model).
    Mock,
}

/// Settings of the embedded engine.
#[derive(Debug, Clone, Default)]
pub struct EngineSpec {
    pub threads: u32,
    /// A fixed context window (default: sized per request).
    pub ctx_size: Option<u32>,
    /// llama.cpp's own log on stderr.
    pub verbose: bool,
    /// Eval: sequences decoded together per batch.
    pub parallel: usize,
}

/// Loads models into the embedded engine. The engine crate implements it (the library has no
/// FFI); tests use fakes.
#[async_trait]
pub trait EngineLoader: Send + Sync {
    /// Loads `model` for runs and evals; `cancel` interrupts a running generation.
    async fn load(
        &self,
        model: &ModelInfo,
        spec: &EngineSpec,
        cancel: &CancelFlag,
    ) -> Result<Box<dyn Backend>, String>;

    /// The engine's name, for the results ("llama.cpp").
    fn engine_name(&self) -> String;

    /// Writes `job.output` as `job.source` quantized to `job.file_type` through the engine's own
    /// quantization (`study quant`); engines without one refuse.
    async fn quantize(&self, job: &QuantizeJob) -> Result<(), String> {
        Err(format!(
            "{}: this build cannot quantize models",
            job.source.display()
        ))
    }
}

/// One quantization: a source GGUF written again as another type.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizeJob {
    pub source: PathBuf,
    /// Written whole or not at all.
    pub output: PathBuf,
    /// llama.cpp's `llama_ftype` (see [`crate::catalog::gguf::file_type_code`]).
    pub file_type: u64,
    /// Quantize an already quantized source (lossy twice over: for tests and quick looks).
    pub allow_requantize: bool,
    pub threads: u32,
}

/// A loader for builds without the embedded engine: every load is refused.
pub struct NoEngine;

#[async_trait]
impl EngineLoader for NoEngine {
    async fn load(
        &self,
        _: &ModelInfo,
        _: &EngineSpec,
        _: &CancelFlag,
    ) -> Result<Box<dyn Backend>, String> {
        Err("this build has no embedded engine; use --endpoint".into())
    }

    fn engine_name(&self) -> String {
        "none".into()
    }
}

/// Shared handles an experiment runs with.
#[derive(Clone)]
pub struct Context {
    pub events: Arc<dyn EventSink>,
    pub cancel: CancelFlag,
    pub engine: Arc<dyn EngineLoader>,
}
