//! The eval tasks behind one trait: each task's items, prompts and scoring live in its own
//! module; adding a task is its module and one line in [`REGISTRY`]. Items are committed as they
//! are scored, so a resumed eval skips what is done.

mod classify;
mod coding;
mod gsm8k;
mod mmlu;
mod realistic;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Instant;

use async_trait::async_trait;

use crate::backend::{Backend, GenOptions};
use crate::eval::data::DataError;
use crate::eval::method::AnswerMode;
use crate::eval::sandbox;
use crate::eval::score;
use crate::results::eval::{Confusion, ItemResult, SandboxReport, Score};

pub use realistic::{
    fact_coverage, field_accuracy, load_cases, realistic_source_path, Case, REALISTIC_TOML,
};

/// Every task, in the order `--task all` runs them.
pub static REGISTRY: &[&dyn Task] = &[
    &classify::Banking77,
    &classify::PhraseBank,
    &realistic::Realistic,
    &coding::Coding,
    &mmlu::Mmlu,
    &gsm8k::Gsm8k,
];

/// What a task scored, before the common bookkeeping.
#[derive(Debug, Clone)]
pub struct Scored {
    /// generate, loglikelihood or generate-letter.
    pub method: String,
    /// Items in the task's data (all of them, not only the sample).
    pub items_total: usize,
    pub items: Vec<ItemResult>,
    /// Items scored by this invocation (the rest came from the store).
    pub new_items: usize,
    /// Classification labels, in order.
    pub labels: Vec<String>,
    pub sandbox: Option<SandboxReport>,
    /// Task options worth recording (agreement, shots, isolation ...).
    pub options: BTreeMap<String, String>,
}

/// One eval task.
#[async_trait]
pub trait Task: Send + Sync {
    /// The name `--task` takes.
    fn name(&self) -> &'static str;

    /// Scores the task's items on `backend`, skipping those in `done`, committing each batch
    /// through `sink`.
    async fn run(
        &self,
        backend: &dyn Backend,
        opts: &TaskOptions,
        done: &HashMap<String, ItemResult>,
        sink: &mut Sink<'_>,
    ) -> Result<Scored, EvalError>;

    /// The task's scores (with CIs) from its items, and its most frequent confusions.
    fn scores(
        &self,
        items: &[ItemResult],
        labels: &[String],
        seed: u64,
    ) -> (BTreeMap<String, Score>, Vec<Confusion>);
}

/// The task called `name`.
pub fn task(name: &str) -> Option<&'static dyn Task> {
    REGISTRY.iter().copied().find(|t| t.name() == name)
}

/// The names of every task.
pub fn names() -> Vec<&'static str> {
    REGISTRY.iter().map(|t| t.name()).collect()
}

/// Expands `banking_all`, `harness` (MMLU and GSM8K, the academic pair) and `all` into tasks;
/// an unknown name is an error naming it.
pub fn expand(task_name: &str) -> Result<Vec<&'static str>, EvalError> {
    match task_name {
        "all" => Ok(names()),
        "banking_all" => Ok(vec!["banking77", "financial_phrasebank"]),
        "harness" => Ok(vec!["mmlu", "gsm8k"]),
        t => task(t).map(|k| vec![k.name()]).ok_or_else(|| {
            EvalError::Usage(format!(
                "--task {t:?}: unknown (known: {}, banking_all, harness, all)",
                names().join(", ")
            ))
        }),
    }
}

/// Why an eval failed.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Sandbox(#[from] sandbox::SandboxError),
    #[error("{0}")]
    Backend(String),
    #[error("storing results: {0}")]
    Store(String),
    #[error("task file {path}: {reason}")]
    TaskFile { path: String, reason: String },
    #[error("interrupted")]
    Interrupted,
}

/// The Financial PhraseBank agreement level by default: 50, the ~5K sentences the source
/// documents score.
pub const DEFAULT_AGREEMENT: &str = "50";

impl TaskOptions {
    /// Items to score: `--sample-size`, else the task's documented `subset` unless `full`.
    pub fn size(&self, subset: Option<usize>) -> Option<usize> {
        self.sample_size.or(if self.full { None } else { subset })
    }
}

/// Options of a task run.
#[derive(Debug, Clone)]
pub struct TaskOptions {
    /// Items per task; `None`: the task's documented subset, or every item with `full`.
    pub sample_size: Option<usize>,
    /// Every item of each split, instead of the documented subsets (HumanEval 30, MMLU 200,
    /// GSM8K 100).
    pub full: bool,
    /// MMLU: questions per subject (stratified), instead of `sample_size`.
    pub per_subject: Option<usize>,
    pub seed: u64,
    pub data_dir: Option<PathBuf>,
    /// Financial PhraseBank agreement level: all, 75, 66, 50.
    pub agreement: String,
    /// MMLU shots from the dev split (0 or 5).
    pub shots: u32,
    /// Items sent to the backend together.
    pub batch: usize,
    pub unsafe_exec: bool,
    /// A replacement for the built-in realistic task file.
    pub realistic_file: Option<PathBuf>,
    /// How classification tasks get their answer.
    pub answer: AnswerMode,
    /// MMLU: "letter" or "cloze".
    pub format: String,
    /// Coding: answers sampled per problem (pass@k), at `temperature` (0: greedy).
    pub samples: u32,
    pub temperature: f64,
}

impl Default for TaskOptions {
    fn default() -> Self {
        Self {
            sample_size: None,
            full: false,
            per_subject: None,
            seed: 42,
            data_dir: None,
            agreement: DEFAULT_AGREEMENT.into(),
            shots: 0,
            batch: 32,
            unsafe_exec: false,
            realistic_file: None,
            answer: AnswerMode::Free,
            format: "letter".into(),
            samples: 1,
            temperature: 0.0,
        }
    }
}

/// The outcome of a task run.
#[derive(Debug, Clone)]
pub struct TaskOutcome {
    pub task: String,
    /// generate, loglikelihood or generate-letter.
    pub method: String,
    pub items: Vec<ItemResult>,
    pub items_total: usize,
    /// Items scored by this invocation (the rest came from the store).
    pub new_items: usize,
    pub elapsed_s: f64,
    pub labels: Vec<String>,
    pub sandbox: Option<SandboxReport>,
    pub options: BTreeMap<String, String>,
}

/// A generation item before scoring.
pub(crate) struct GenItem {
    pub id: String,
    pub group: String,
    pub user: String,
    pub gold: String,
}

impl GenItem {
    /// The item scored from its answer `text`: the mapped prediction and its score, no extra
    /// figures, no error.
    pub(crate) fn scored(&self, text: &str, predicted: Option<String>, score: f64) -> ItemResult {
        ItemResult {
            id: self.id.clone(),
            group: self.group.clone(),
            gold: self.gold.clone(),
            predicted,
            score,
            answer: cap(text),
            extra: BTreeMap::new(),
            error: None,
        }
    }

    /// The item whose request failed with `error`.
    pub(crate) fn failed(&self, error: String) -> ItemResult {
        ItemResult {
            error: Some(error),
            ..self.scored("", None, 0.0)
        }
    }

    /// The item scored by exact match of `predicted` with its gold answer.
    pub(crate) fn matched(&self, text: &str, predicted: Option<String>) -> ItemResult {
        let score = f64::from(u8::from(predicted.as_deref() == Some(self.gold.as_str())));
        self.scored(text, predicted, score)
    }
}

impl Scored {
    /// A task scored by generation: its items and how many were new, out of `items_total`.
    pub(crate) fn generated(
        items_total: usize,
        (items, new_items): (Vec<ItemResult>, usize),
    ) -> Self {
        Self {
            method: "generate".into(),
            items_total,
            items,
            new_items,
            labels: Vec::new(),
            sandbox: None,
            options: BTreeMap::new(),
        }
    }
}

/// A seeded sample of `n` items, as many as [`TaskOptions::size`] says for the task's
/// documented `subset`, not stratified.
pub(crate) fn sample(n: usize, opts: &TaskOptions, subset: Option<usize>) -> Vec<usize> {
    let strata = vec![String::new(); n];
    crate::eval::data::stratified_sample(&strata, opts.size(subset), opts.seed)
}

/// The one score of a task whose items score in [0, 1]: `name`, their mean with its CI.
pub(crate) fn mean_item_score(
    name: &str,
    items: &[ItemResult],
    seed: u64,
) -> (BTreeMap<String, Score>, Vec<Confusion>) {
    let v: Vec<f64> = items.iter().map(|i| i.score).collect();
    (
        [(name.to_string(), score::mean_score(&v, seed))].into(),
        Vec::new(),
    )
}

/// The share of items whose per-item flag `key` (in `extra`) is 1, with its CI; `None` unless
/// every item carries the flag (a score some items lack would mislead).
pub(crate) fn flag_rate(items: &[ItemResult], key: &str, seed: u64) -> Option<Score> {
    let v: Vec<f64> = items
        .iter()
        .filter_map(|i| i.extra.get(key).copied())
        .collect();
    (!v.is_empty() && v.len() == items.len()).then(|| score::mean_score(&v, seed))
}

/// Where results go and progress is told.
pub struct Sink<'a> {
    /// Commits scored items (to the store).
    pub commit: &'a mut (dyn FnMut(&[ItemResult]) -> Result<(), String> + Send),
    /// (done, total) after every batch.
    pub progress: &'a (dyn Fn(usize, usize) + Sync),
    /// Set to stop between batches.
    pub cancelled: &'a (dyn Fn() -> bool + Sync),
}

/// An answer as stored: at most 2,000 characters.
pub(crate) fn cap(s: &str) -> String {
    s.chars().take(2000).collect()
}

/// Runs one task on a backend. `done` holds items stored by an earlier invocation (skipped).
pub async fn run_task(
    task_name: &str,
    backend: &dyn Backend,
    opts: &TaskOptions,
    done: &HashMap<String, ItemResult>,
    sink: &mut Sink<'_>,
) -> Result<TaskOutcome, EvalError> {
    let started = Instant::now();
    let t = task(task_name).ok_or_else(|| {
        expand(task_name)
            .err()
            .unwrap_or_else(|| EvalError::Usage(format!("--task {task_name:?}")))
    })?;
    let mut s = t.run(backend, opts, done, sink).await?;
    s.items.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(TaskOutcome {
        task: task_name.to_string(),
        method: s.method,
        items: s.items,
        items_total: s.items_total,
        new_items: s.new_items,
        elapsed_s: started.elapsed().as_secs_f64(),
        labels: s.labels,
        sandbox: s.sandbox,
        options: s.options,
    })
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn generate_all(
    backend: &dyn Backend,
    system: &str,
    items: Vec<GenItem>,
    gen_opts: &GenOptions,
    opts: &TaskOptions,
    done: &HashMap<String, ItemResult>,
    sink: &mut Sink<'_>,
    score_one: impl Fn(&GenItem, &str) -> ItemResult,
) -> Result<(Vec<ItemResult>, usize), EvalError> {
    let score_one = &score_one;
    in_batches(items, opts, done, sink, |chunk| async move {
        let users: Vec<String> = chunk.iter().map(|g| g.user.clone()).collect();
        let answers = backend
            .generate_batch(system, &users, gen_opts)
            .await
            .map_err(|e| EvalError::Backend(e.to_string()))?;
        Ok(chunk
            .iter()
            .zip(answers)
            .map(|(g, a)| match a {
                Ok(text) => score_one(g, &text),
                Err(e) => g.failed(e),
            })
            .collect())
    })
    .await
}

/// Scores the items not in `done` a batch at a time with `score`, committing and telling
/// progress after each batch and stopping between batches when cancelled; every item (stored
/// or new) and how many were new.
pub(crate) async fn in_batches<F, Fut>(
    items: Vec<GenItem>,
    opts: &TaskOptions,
    done: &HashMap<String, ItemResult>,
    sink: &mut Sink<'_>,
    mut score: F,
) -> Result<(Vec<ItemResult>, usize), EvalError>
where
    F: FnMut(Vec<GenItem>) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<ItemResult>, EvalError>>,
{
    let total = items.len();
    let mut out: Vec<ItemResult> = Vec::with_capacity(total);
    let mut todo: Vec<GenItem> = Vec::new();
    for g in items {
        match done.get(&g.id) {
            Some(r) => out.push(r.clone()),
            None => todo.push(g),
        }
    }
    (sink.progress)(out.len(), total);
    let mut new_items = 0;
    let batch = opts.batch.max(1);
    let mut todo = todo.into_iter().peekable();
    while todo.peek().is_some() {
        if (sink.cancelled)() {
            return Err(EvalError::Interrupted);
        }
        let chunk: Vec<GenItem> = todo.by_ref().take(batch).collect();
        let scored = score(chunk).await?;
        if (sink.cancelled)() {
            return Err(EvalError::Interrupted);
        }
        (sink.commit)(&scored).map_err(EvalError::Store)?;
        new_items += scored.len();
        out.extend(scored);
        (sink.progress)(out.len(), total);
    }
    Ok((out, new_items))
}

/// The scores of a task from its items (the request error rate first, then the task's own),
/// and the most frequent confusions for classification.
pub fn scores(outcome: &TaskOutcome, seed: u64) -> (BTreeMap<String, Score>, Vec<Confusion>) {
    let mut out = BTreeMap::new();
    let failed: Vec<f64> = outcome
        .items
        .iter()
        .map(|i| f64::from(u8::from(i.error.is_some())))
        .collect();
    if !failed.is_empty() {
        out.insert(
            "request_error_rate".to_string(),
            score::mean_score(&failed, seed),
        );
    }
    let mut confusions = Vec::new();
    if let Some(t) = task(&outcome.task) {
        let (s, c) = t.scores(&outcome.items, &outcome.labels, seed);
        out.extend(s);
        confusions = c;
    }
    (out, confusions)
}

/// A fake eval backend for the tasks' tests: answers and log-likelihoods from functions, a
/// chat context of "system|user", and a constraint named "fake grammar".
#[cfg(test)]
pub(crate) mod fake {
    use super::*;
    use crate::backend::mock::MockTarget;
    use crate::backend::{BackendError, ChatMessage, GenRequest, Target, TargetError, TargetInfo};

    type Answer = fn(&str, &GenOptions) -> String;
    type Loglik = fn(&str, &[String]) -> Option<Vec<f64>>;

    pub(crate) struct FakeBackend {
        pub answer: Answer,
        pub loglik: Loglik,
        pub mock: MockTarget,
    }

    impl FakeBackend {
        pub(crate) fn new(answer: Answer, loglik: Loglik) -> Self {
            Self {
                answer,
                loglik,
                mock: MockTarget::default(),
            }
        }
    }

    #[async_trait]
    impl Target for FakeBackend {
        fn info(&self) -> TargetInfo {
            self.mock.info()
        }
        async fn count_prompt_tokens(&self, m: &[ChatMessage]) -> Result<Option<u64>, TargetError> {
            self.mock.count_prompt_tokens(m).await
        }
        fn context_tokens(&self) -> Option<u32> {
            None
        }
        async fn generate(
            &self,
            r: GenRequest,
            c: &crate::clock::Clock,
        ) -> crate::record::RequestRecord {
            self.mock.generate(r, c).await
        }
    }

    #[async_trait]
    impl Backend for FakeBackend {
        async fn generate_batch(
            &self,
            _system: &str,
            users: &[String],
            opts: &GenOptions,
        ) -> Result<Vec<Result<String, String>>, BackendError> {
            Ok(users.iter().map(|u| Ok((self.answer)(u, opts))).collect())
        }
        async fn constraint(&self) -> Result<String, String> {
            Ok("fake grammar".into())
        }
        async fn chat_context(
            &self,
            system: &str,
            user: &str,
        ) -> Result<Option<String>, BackendError> {
            Ok(Some(format!("{system}|{user}")))
        }
        async fn loglikelihoods(
            &self,
            context: &str,
            continuations: &[String],
        ) -> Result<Option<Vec<f64>>, BackendError> {
            Ok((self.loglik)(context, continuations))
        }
    }

    /// Runs `task` on `backend` with `opts`, nothing stored before.
    pub(crate) async fn run(task: &str, backend: &FakeBackend, opts: &TaskOptions) -> TaskOutcome {
        let mut commit = |_: &[ItemResult]| Ok(());
        let mut sink = Sink {
            commit: &mut commit,
            progress: &|_, _| {},
            cancelled: &|| false,
        };
        run_task(task, backend, opts, &HashMap::new(), &mut sink)
            .await
            .expect("task runs")
    }
}
