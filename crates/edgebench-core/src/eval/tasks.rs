//! The eval tasks: items from the datasets, prompts, answers scored item by item (committed as
//! they come, so a resumed eval skips what is done), and the task's scores.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Deserialize;

use crate::eval::answer::{self, map_label};
use crate::eval::backend::{EvalBackend, GenOptions};
use crate::eval::data::{self, DataError};
use crate::eval::sandbox::{self, Limits, Outcome, Sandbox};
use crate::eval::score;
use crate::results::eval::{Confusion, ItemResult, SandboxReport, Score};

/// The tasks `--task` accepts, and what the groups expand to.
pub const TASKS: &[&str] = &[
    "banking77",
    "financial_phrasebank",
    "realistic",
    "coding",
    "mmlu",
    "gsm8k",
];

/// Expands `banking_all` and `all` into tasks; an unknown name is an error naming it.
pub fn expand(task: &str) -> Result<Vec<&'static str>, EvalError> {
    match task {
        "all" => Ok(TASKS.to_vec()),
        "banking_all" => Ok(vec!["banking77", "financial_phrasebank"]),
        t => TASKS
            .iter()
            .find(|k| **k == t)
            .map(|k| vec![*k])
            .ok_or_else(|| {
                EvalError::Usage(format!(
                    "--task {t:?}: unknown (known: {}, banking_all, all)",
                    TASKS.join(", ")
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

/// Options of a task run.
#[derive(Debug, Clone)]
pub struct TaskOptions {
    pub sample_size: Option<usize>,
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
}

impl Default for TaskOptions {
    fn default() -> Self {
        Self {
            sample_size: None,
            per_subject: None,
            seed: 42,
            data_dir: None,
            agreement: "all".into(),
            shots: 0,
            batch: 32,
            unsafe_exec: false,
            realistic_file: None,
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
struct GenItem {
    id: String,
    group: String,
    user: String,
    gold: String,
}

/// Where results go and progress is told.
pub struct Sink<'a> {
    /// Commits scored items (to the store).
    pub commit: &'a mut dyn FnMut(&[ItemResult]) -> Result<(), String>,
    /// (done, total) after every batch.
    pub progress: &'a dyn Fn(usize, usize),
    /// Set to stop between batches.
    pub cancelled: &'a dyn Fn() -> bool,
}

fn cap(s: &str) -> String {
    s.chars().take(2000).collect()
}

/// The built-in realistic banking cases.
pub const REALISTIC_TOML: &str = include_str!("../../tasks/realistic.toml");

/// A realistic banking case.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub id: String,
    pub kind: String,
    pub instruction: String,
    pub input: String,
    #[serde(default)]
    pub key_facts: Vec<String>,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    #[serde(default)]
    pub max_words: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    version: u32,
    cases: Vec<Case>,
}

/// Reads and checks a realistic task file.
pub fn load_cases(text: &str, origin: &str) -> Result<Vec<Case>, EvalError> {
    let err = |reason: String| EvalError::TaskFile {
        path: origin.into(),
        reason,
    };
    let f: CaseFile = toml::from_str(text).map_err(|e| err(e.message().to_string()))?;
    if f.version != 1 {
        return Err(err(format!("unsupported version {}", f.version)));
    }
    for c in &f.cases {
        let ok = match c.kind.as_str() {
            "faq" => !c.key_facts.is_empty(),
            "summary" => !c.key_facts.is_empty() && c.max_words.is_some(),
            "sentiment" => c.label.is_some(),
            "extraction" => !c.fields.is_empty(),
            _ => false,
        };
        if !ok {
            return Err(err(format!(
                "case {}: kind {:?} needs key_facts (faq, summary + max_words), label (sentiment) or fields (extraction)",
                c.id, c.kind
            )));
        }
    }
    Ok(f.cases)
}

/// Fraction of key facts present (case-insensitive; `a|b` accepts either).
pub fn fact_coverage(answer: &str, facts: &[String]) -> f64 {
    if facts.is_empty() {
        return 0.0;
    }
    let a = answer.to_lowercase();
    let hits = facts
        .iter()
        .filter(|f| {
            f.split('|')
                .any(|alt| a.contains(&alt.trim().to_lowercase()))
        })
        .count();
    hits as f64 / facts.len() as f64
}

fn norm_field(v: &serde_json::Value) -> String {
    let s = match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    s.trim().trim_matches('"').to_lowercase()
}

/// Fraction of expected fields with the expected value in the answer's JSON object.
pub fn field_accuracy(answer: &str, fields: &BTreeMap<String, String>) -> (f64, bool) {
    let Some(obj) = answer::json_object(answer) else {
        return (0.0, false);
    };
    let hits = fields
        .iter()
        .filter(|(k, want)| {
            obj.get(k.as_str())
                .is_some_and(|v| norm_field(v) == want.trim().to_lowercase())
        })
        .count();
    (hits as f64 / fields.len().max(1) as f64, true)
}

fn mmlu_prompt(subject: &str, shots: &[data::Mcq], q: &data::Mcq, with_answer: bool) -> String {
    let fmt = |m: &data::Mcq| {
        let mut s = format!("{}\n", m.question.trim());
        for (k, c) in m.choices.iter().enumerate() {
            s.push_str(&format!("{}. {}\n", char::from(b'A' + k as u8), c.trim()));
        }
        s.push_str("Answer:");
        s
    };
    let mut p = format!(
        "The following are multiple choice questions (with answers) about {}.\n\n",
        subject.replace('_', " ")
    );
    for s in shots {
        p.push_str(&fmt(s));
        p.push_str(&format!(" {}\n\n", char::from(b'A' + s.answer as u8)));
    }
    p.push_str(&fmt(q));
    let _ = with_answer;
    p
}

/// Runs one task on a backend. `done` holds items stored by an earlier invocation (skipped).
pub async fn run_task(
    task: &str,
    backend: &dyn EvalBackend,
    opts: &TaskOptions,
    done: &HashMap<String, ItemResult>,
    sink: &mut Sink<'_>,
) -> Result<TaskOutcome, EvalError> {
    let started = Instant::now();
    let data_dir = opts.data_dir.as_deref();
    let mut options = BTreeMap::new();
    let mut labels = Vec::new();
    let mut sandbox_report = None;
    let (method, items_total, mut results, new_items) = match task {
        "banking77" | "financial_phrasebank" => {
            let (items, lbls, system) = if task == "banking77" {
                let dir = data::locate("banking77", data_dir).await?;
                let (items, lbls) = data::banking77(&dir)?;
                let system = format!(
                    "You classify customer messages to a bank by intent. The intent labels are:\n{}\n\nThe user sends one customer message. Reply with the one label from the list that is its intent, written exactly as in the list, and nothing else.",
                    lbls.join("\n")
                );
                (items, lbls, system)
            } else {
                let dir = data::locate("financial_phrasebank", data_dir).await?;
                options.insert("agreement".into(), opts.agreement.clone());
                let items = data::financial_phrasebank(&dir, &opts.agreement)?;
                let lbls = vec!["positive".into(), "negative".into(), "neutral".into()];
                let system = "Classify the sentiment of a sentence from financial news as positive, negative or neutral. Reply with one word.".to_string();
                (items, lbls, system)
            };
            labels = lbls.clone();
            let strata: Vec<String> = items.iter().map(|i| i.label.clone()).collect();
            let picked = data::stratified_sample(&strata, opts.sample_size, opts.seed);
            let gen: Vec<GenItem> = picked
                .iter()
                .map(|&i| GenItem {
                    id: items[i].id.clone(),
                    group: items[i].label.clone(),
                    user: items[i].text.clone(),
                    gold: items[i].label.clone(),
                })
                .collect();
            let gen_opts = GenOptions {
                max_tokens: if task == "banking77" { 10 } else { 8 },
                stop: vec!["\n".into()],
                seed: opts.seed,
            };
            let (r, n) = generate_all(
                backend,
                &system,
                gen,
                &gen_opts,
                opts,
                done,
                sink,
                |g, text| {
                    let m = map_label(text, &lbls);
                    ItemResult {
                        id: g.id.clone(),
                        group: g.group.clone(),
                        gold: g.gold.clone(),
                        score: f64::from(u8::from(m.label.as_deref() == Some(g.gold.as_str()))),
                        predicted: m.label,
                        answer: cap(text),
                        extra: [(format!("match_{:?}", m.how).to_lowercase(), 1.0)].into(),
                        error: None,
                    }
                },
            )
            .await?;
            ("generate".to_string(), items.len(), r, n)
        }
        "gsm8k" => {
            let dir = data::locate("gsm8k", data_dir).await?;
            let items = data::gsm8k(&dir)?;
            let strata = vec![String::new(); items.len()];
            let picked = data::stratified_sample(&strata, opts.sample_size, opts.seed);
            let gen: Vec<GenItem> = picked
                .iter()
                .map(|&i| GenItem {
                    id: items[i].id.clone(),
                    group: String::new(),
                    user: items[i].question.clone(),
                    gold: answer::gsm8k_gold(&items[i].answer).unwrap_or_default(),
                })
                .collect();
            let system = "Solve the math word problem. Think step by step, then write the final answer on the last line as \"#### <number>\".";
            let gen_opts = GenOptions {
                max_tokens: 320,
                stop: Vec::new(),
                seed: opts.seed,
            };
            let (r, n) = generate_all(
                backend,
                system,
                gen,
                &gen_opts,
                opts,
                done,
                sink,
                |g, text| {
                    let p = answer::final_number(text);
                    ItemResult {
                        id: g.id.clone(),
                        group: String::new(),
                        gold: g.gold.clone(),
                        score: f64::from(u8::from(p.as_deref() == Some(g.gold.as_str()))),
                        predicted: p,
                        answer: cap(text),
                        extra: BTreeMap::new(),
                        error: None,
                    }
                },
            )
            .await?;
            ("generate".to_string(), items.len(), r, n)
        }
        "coding" => {
            let dir = data::locate("humaneval", data_dir).await?;
            let items = data::humaneval(&dir)?;
            let sb = Sandbox::new(Limits::default(), opts.unsafe_exec)?;
            let isolation = match sb.isolation() {
                sandbox::Isolation::Namespaces => "namespaces",
                sandbox::Isolation::UnsafeExec => "unsafe-exec",
            };
            options.insert("isolation".into(), isolation.into());
            let strata = vec![String::new(); items.len()];
            let picked = data::stratified_sample(&strata, opts.sample_size, opts.seed);
            let by_id: HashMap<String, data::CodeProblem> = items
                .iter()
                .map(|p| (p.task_id.clone(), p.clone()))
                .collect();
            let gen: Vec<GenItem> = picked
                .iter()
                .map(|&i| GenItem {
                    id: items[i].task_id.clone(),
                    group: String::new(),
                    user: format!(
                        "Complete this Python function. Reply with the whole function in one ```python code block.\n\n```python\n{}```",
                        items[i].prompt
                    ),
                    gold: "pass".into(),
                })
                .collect();
            let system = "You are an expert Python programmer.";
            let gen_opts = GenOptions {
                max_tokens: 384,
                stop: Vec::new(),
                seed: opts.seed,
            };
            let (r, n) = generate_all(
                backend,
                system,
                gen,
                &gen_opts,
                opts,
                done,
                sink,
                |g, text| {
                    let p = &by_id[&g.id];
                    let program =
                        answer::humaneval_program(&p.prompt, text, &p.test, &p.entry_point);
                    let escape = sandbox::escape_attempt(&answer::code_block(text));
                    let (outcome, error) = match sb.run_program(&program) {
                        Ok(r) => (r.outcome, None),
                        Err(e) => (Outcome::Failed, Some(e.to_string())),
                    };
                    ItemResult {
                        id: g.id.clone(),
                        group: String::new(),
                        gold: "passed".into(),
                        predicted: Some(format!("{outcome:?}").to_lowercase()),
                        score: f64::from(u8::from(outcome == Outcome::Passed)),
                        answer: cap(text),
                        extra: [
                            ("escape_attempt".to_string(), f64::from(u8::from(escape))),
                            (
                                "timeout".to_string(),
                                f64::from(u8::from(outcome == Outcome::Timeout)),
                            ),
                            (
                                "killed".to_string(),
                                f64::from(u8::from(outcome == Outcome::Killed)),
                            ),
                        ]
                        .into(),
                        error,
                    }
                },
            )
            .await?;
            let count = |k: &str| {
                r.iter()
                    .filter(|i| i.extra.get(k).copied() == Some(1.0))
                    .count()
            };
            sandbox_report = Some(SandboxReport {
                isolation: isolation.into(),
                programs_run: r.len(),
                timeouts: count("timeout"),
                limit_kills: count("killed"),
                escape_attempts: count("escape_attempt"),
            });
            ("generate".to_string(), items.len(), r, n)
        }
        "mmlu" => {
            let dir = data::locate("mmlu", data_dir).await?;
            let test = data::mmlu(&dir, "test")?;
            let dev = if opts.shots > 0 {
                data::mmlu(&dir, "dev")?
            } else {
                BTreeMap::new()
            };
            options.insert("shots".into(), opts.shots.to_string());
            let all: Vec<&data::Mcq> = test.values().flatten().collect();
            let picked: Vec<usize> = match opts.per_subject {
                Some(k) => {
                    options.insert("per_subject".into(), k.to_string());
                    let mut v = Vec::new();
                    let mut offset = 0;
                    for (i, qs) in test.values().enumerate() {
                        let strata = vec![String::new(); qs.len()];
                        v.extend(
                            data::stratified_sample(&strata, Some(k), opts.seed + i as u64)
                                .into_iter()
                                .map(|j| offset + j),
                        );
                        offset += qs.len();
                    }
                    v
                }
                None => {
                    let strata: Vec<String> = all.iter().map(|q| q.subject.clone()).collect();
                    data::stratified_sample(&strata, opts.sample_size, opts.seed)
                }
            };
            let total = picked.len();
            let mut results: Vec<ItemResult> = Vec::with_capacity(total);
            let mut new_items = 0;
            let conts: Vec<String> = [" A", " B", " C", " D"].map(String::from).to_vec();
            let mut method = "loglikelihood".to_string();
            // Items scored by log-likelihood before the backend stopped giving them, if it did.
            let mut by_loglik = 0usize;
            let mut pending_gen: Vec<GenItem> = Vec::new();
            for &i in &picked {
                let q = all[i];
                if let Some(r) = done.get(&q.id) {
                    results.push(r.clone());
                    continue;
                }
                if (sink.cancelled)() {
                    return Err(EvalError::Interrupted);
                }
                let shots: &[data::Mcq] = dev
                    .get(&q.subject)
                    .map_or(&[], |v| &v[..(opts.shots as usize).min(v.len())]);
                let context = mmlu_prompt(&q.subject, shots, q, false);
                let gold = char::from(b'A' + q.answer as u8).to_string();
                if method == "loglikelihood" {
                    match backend
                        .loglikelihoods(&context, &conts)
                        .await
                        .map_err(|e| EvalError::Backend(e.to_string()))?
                    {
                        Some(lps) => {
                            let best = lps
                                .iter()
                                .enumerate()
                                .max_by(|a, b| a.1.total_cmp(b.1))
                                .map(|(k, _)| k)
                                .filter(|k| lps[*k].is_finite());
                            let pred = best.map(|k| char::from(b'A' + k as u8).to_string());
                            let r = ItemResult {
                                id: q.id.clone(),
                                group: q.subject.clone(),
                                score: f64::from(u8::from(pred.as_deref() == Some(gold.as_str()))),
                                gold,
                                predicted: pred,
                                answer: lps
                                    .iter()
                                    .map(|l| format!("{l:.4}"))
                                    .collect::<Vec<_>>()
                                    .join(" "),
                                extra: BTreeMap::new(),
                                error: None,
                            };
                            (sink.commit)(std::slice::from_ref(&r)).map_err(EvalError::Store)?;
                            results.push(r);
                            new_items += 1;
                            by_loglik += 1;
                            if new_items % 10 == 0 {
                                (sink.progress)(results.len(), total);
                            }
                            continue;
                        }
                        None => method = "generate-letter".into(),
                    }
                }
                pending_gen.push(GenItem {
                    id: q.id.clone(),
                    group: q.subject.clone(),
                    user: context,
                    gold,
                });
            }
            if !pending_gen.is_empty() {
                let system = "Answer the multiple choice question with the letter of the correct choice only.";
                let gen_opts = GenOptions {
                    max_tokens: 4,
                    stop: vec!["\n".into()],
                    seed: opts.seed,
                };
                let (r, n) = generate_all(
                    backend,
                    system,
                    pending_gen,
                    &gen_opts,
                    opts,
                    done,
                    sink,
                    |g, text| {
                        let p = answer::choice_letter(text, 4)
                            .map(|k| char::from(b'A' + k as u8).to_string());
                        ItemResult {
                            id: g.id.clone(),
                            group: g.group.clone(),
                            gold: g.gold.clone(),
                            score: f64::from(u8::from(p.as_deref() == Some(g.gold.as_str()))),
                            predicted: p,
                            answer: cap(text),
                            extra: BTreeMap::new(),
                            error: None,
                        }
                    },
                )
                .await?;
                results.extend(r);
                new_items += n;
            }
            if method != "loglikelihood" && by_loglik > 0 {
                // Say so rather than label every item by the method of the last ones.
                method = format!(
                    "mixed: {by_loglik} by loglikelihood, then generate-letter (the backend stopped giving log-likelihoods)"
                );
            }
            (method, all.len(), results, new_items)
        }
        "realistic" => {
            let cases = match &opts.realistic_file {
                Some(p) => {
                    let text = std::fs::read_to_string(p).map_err(|e| EvalError::TaskFile {
                        path: p.display().to_string(),
                        reason: e.to_string(),
                    })?;
                    load_cases(&text, &p.display().to_string())?
                }
                None => load_cases(REALISTIC_TOML, "<built-in realistic cases>")?,
            };
            let by_id: HashMap<String, Case> =
                cases.iter().map(|c| (c.id.clone(), c.clone())).collect();
            let strata: Vec<String> = cases.iter().map(|c| c.kind.clone()).collect();
            let picked = data::stratified_sample(&strata, opts.sample_size, opts.seed);
            let gen: Vec<GenItem> = picked
                .iter()
                .map(|&i| GenItem {
                    id: cases[i].id.clone(),
                    group: cases[i].kind.clone(),
                    user: format!(
                        "{}\n\n{}",
                        cases[i].instruction.trim(),
                        cases[i].input.trim()
                    ),
                    gold: String::new(),
                })
                .collect();
            let system = "You are a careful assistant for the staff of a retail bank.";
            let gen_opts = GenOptions {
                max_tokens: 200,
                stop: Vec::new(),
                seed: opts.seed,
            };
            let sentiment = [
                "positive".to_string(),
                "negative".to_string(),
                "neutral".to_string(),
            ];
            let (r, n) = generate_all(
                backend,
                system,
                gen,
                &gen_opts,
                opts,
                done,
                sink,
                |g, text| {
                    let c = &by_id[&g.id];
                    let mut extra = BTreeMap::new();
                    let (gold, predicted, score) = match c.kind.as_str() {
                        "sentiment" => {
                            let m = map_label(text, &sentiment);
                            let gold = c.label.clone().unwrap_or_default();
                            let s = f64::from(u8::from(m.label.as_deref() == Some(gold.as_str())));
                            (gold, m.label, s)
                        }
                        "extraction" => {
                            let (acc, valid) = field_accuracy(text, &c.fields);
                            extra.insert("json_valid".into(), f64::from(u8::from(valid)));
                            (format!("{} fields", c.fields.len()), None, acc)
                        }
                        "summary" => {
                            let words = text.split_whitespace().count();
                            let ok = c.max_words.is_some_and(|m| words <= m);
                            extra.insert("length_ok".into(), f64::from(u8::from(ok)));
                            extra.insert("words".into(), words as f64);
                            (
                                c.key_facts.join("; "),
                                None,
                                fact_coverage(text, &c.key_facts),
                            )
                        }
                        _ => (
                            c.key_facts.join("; "),
                            None,
                            fact_coverage(text, &c.key_facts),
                        ),
                    };
                    ItemResult {
                        id: g.id.clone(),
                        group: c.kind.clone(),
                        gold,
                        predicted,
                        score,
                        answer: cap(text),
                        extra,
                        error: None,
                    }
                },
            )
            .await?;
            ("generate".to_string(), cases.len(), r, n)
        }
        other => {
            return Err(expand(other)
                .err()
                .unwrap_or_else(|| EvalError::Usage(format!("--task {other:?}"))))
        }
    };
    results.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(TaskOutcome {
        task: task.to_string(),
        method,
        items: results,
        items_total,
        new_items,
        elapsed_s: started.elapsed().as_secs_f64(),
        labels,
        sandbox: sandbox_report,
        options,
    })
}

#[allow(clippy::too_many_arguments)]
async fn generate_all(
    backend: &dyn EvalBackend,
    system: &str,
    items: Vec<GenItem>,
    gen_opts: &GenOptions,
    opts: &TaskOptions,
    done: &HashMap<String, ItemResult>,
    sink: &mut Sink<'_>,
    score_one: impl Fn(&GenItem, &str) -> ItemResult,
) -> Result<(Vec<ItemResult>, usize), EvalError> {
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
    for chunk in todo.chunks(opts.batch.max(1)) {
        if (sink.cancelled)() {
            return Err(EvalError::Interrupted);
        }
        let users: Vec<String> = chunk.iter().map(|g| g.user.clone()).collect();
        let answers = backend
            .generate(system, &users, gen_opts)
            .await
            .map_err(|e| EvalError::Backend(e.to_string()))?;
        if (sink.cancelled)() {
            return Err(EvalError::Interrupted);
        }
        let scored: Vec<ItemResult> = chunk
            .iter()
            .zip(answers)
            .map(|(g, a)| match a {
                Ok(text) => score_one(g, &text),
                Err(e) => ItemResult {
                    id: g.id.clone(),
                    group: g.group.clone(),
                    gold: g.gold.clone(),
                    predicted: None,
                    score: 0.0,
                    answer: String::new(),
                    extra: BTreeMap::new(),
                    error: Some(e),
                },
            })
            .collect();
        (sink.commit)(&scored).map_err(EvalError::Store)?;
        new_items += scored.len();
        out.extend(scored);
        (sink.progress)(out.len(), total);
    }
    Ok((out, new_items))
}

/// The scores of a task from its items, and the most frequent confusions for classification.
pub fn scores(outcome: &TaskOutcome, seed: u64) -> (BTreeMap<String, Score>, Vec<Confusion>) {
    let items = &outcome.items;
    let values = |f: &dyn Fn(&ItemResult) -> Option<f64>| -> Vec<f64> {
        items.iter().filter_map(f).collect()
    };
    let mut out = BTreeMap::new();
    let mut confusions = Vec::new();
    let failed = values(&|i| Some(f64::from(u8::from(i.error.is_some()))));
    if !failed.is_empty() {
        out.insert(
            "request_error_rate".to_string(),
            score::mean_score(&failed, seed),
        );
    }
    match outcome.task.as_str() {
        "banking77" | "financial_phrasebank" => {
            let index: HashMap<&str, usize> = outcome
                .labels
                .iter()
                .enumerate()
                .map(|(i, l)| (l.as_str(), i))
                .collect();
            let gold: Vec<usize> = items
                .iter()
                .map(|i| index.get(i.gold.as_str()).copied().unwrap_or(0))
                .collect();
            let pred: Vec<Option<usize>> = items
                .iter()
                .map(|i| i.predicted.as_deref().and_then(|p| index.get(p).copied()))
                .collect();
            out.extend(score::classification(&gold, &pred, seed));
            confusions = score::top_confusions(&gold, &pred, &outcome.labels, 10);
        }
        "gsm8k" => {
            out.insert(
                "exact_match".into(),
                score::mean_score(&values(&|i| Some(i.score)), seed),
            );
        }
        "coding" => {
            out.insert(
                "pass_at_1".into(),
                score::mean_score(&values(&|i| Some(i.score)), seed),
            );
        }
        "mmlu" => {
            out.insert(
                "accuracy".into(),
                score::mean_score(&values(&|i| Some(i.score)), seed),
            );
        }
        "realistic" => {
            let of = |kind: &str| values(&|i: &ItemResult| (i.group == kind).then_some(i.score));
            for (name, kind) in [
                ("faq_fact_coverage", "faq"),
                ("sentiment_accuracy", "sentiment"),
                ("field_accuracy", "extraction"),
                ("summary_fact_coverage", "summary"),
            ] {
                let v = of(kind);
                if !v.is_empty() {
                    out.insert(name.into(), score::mean_score(&v, seed));
                }
            }
            let json = values(&|i| i.extra.get("json_valid").copied());
            if !json.is_empty() {
                out.insert("json_valid_rate".into(), score::mean_score(&json, seed));
            }
            let len = values(&|i| i.extra.get("length_ok").copied());
            if !len.is_empty() {
                out.insert(
                    "summary_length_ok_rate".into(),
                    score::mean_score(&len, seed),
                );
            }
            out.insert(
                "overall".into(),
                score::mean_score(&values(&|i| Some(i.score)), seed),
            );
        }
        _ => {}
    }
    (out, confusions)
}

/// The default location of the realistic task file in the source tree (for users to copy).
pub fn realistic_source_path() -> &'static Path {
    Path::new("crates/edgebench-core/tasks/realistic.toml")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gives log-likelihoods for its first `until` calls, then none; answers "A" when asked.
    struct StopsGivingLoglik {
        until: usize,
        calls: std::sync::atomic::AtomicUsize,
    }

    #[async_trait::async_trait]
    impl EvalBackend for StopsGivingLoglik {
        fn info(&self) -> crate::backend::TargetInfo {
            crate::backend::TargetInfo::default()
        }
        async fn generate(
            &self,
            _system: &str,
            users: &[String],
            _opts: &GenOptions,
        ) -> Result<Vec<Result<String, String>>, crate::eval::BackendError> {
            Ok(users.iter().map(|_| Ok("A".to_string())).collect())
        }
        async fn loglikelihoods(
            &self,
            _context: &str,
            continuations: &[String],
        ) -> Result<Option<Vec<f64>>, crate::eval::BackendError> {
            let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok((n < self.until).then(|| vec![-1.0; continuations.len()]))
        }
    }

    #[tokio::test]
    async fn an_mmlu_run_that_loses_log_likelihoods_midway_says_it_mixed_methods() {
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets");
        let opts = TaskOptions {
            per_subject: Some(1),
            data_dir: Some(data),
            ..TaskOptions::default()
        };
        let opts = &opts;
        let run = |until: usize| {
            let backend = StopsGivingLoglik {
                until,
                calls: Default::default(),
            };
            async move {
                let mut commit = |_: &[ItemResult]| Ok(());
                let mut sink = Sink {
                    commit: &mut commit,
                    progress: &|_, _| {},
                    cancelled: &|| false,
                };
                run_task("mmlu", &backend, opts, &HashMap::new(), &mut sink)
                    .await
                    .unwrap()
            }
        };
        let all = run(usize::MAX).await;
        assert_eq!(all.method, "loglikelihood");
        let none = run(0).await;
        assert_eq!(none.method, "generate-letter");
        let mixed = run(3).await;
        assert!(
            mixed.method.starts_with("mixed: 3 by loglikelihood"),
            "{}",
            mixed.method
        );
        assert_eq!(mixed.items.len(), all.items.len());
    }

    #[test]
    fn facts_fields_and_task_names() {
        assert_eq!(
            fact_coverage(
                "It is FREE and takes 5 working days",
                &[
                    "free|no charge".into(),
                    "5 working days".into(),
                    "branch".into()
                ]
            ),
            2.0 / 3.0
        );
        let fields: BTreeMap<String, String> = [
            ("name".to_string(), "Priya".to_string()),
            ("amount".to_string(), "250.00".to_string()),
        ]
        .into();
        assert_eq!(
            field_accuracy("{\"name\": \"priya\", \"amount\": \"250\"}", &fields),
            (0.5, true)
        );
        assert_eq!(field_accuracy("no json", &fields), (0.0, false));
        assert_eq!(
            expand("banking_all").unwrap(),
            vec!["banking77", "financial_phrasebank"]
        );
        assert_eq!(expand("all").unwrap().len(), 6);
        assert!(expand("nope").unwrap_err().to_string().contains("nope"));
        assert!(load_cases(REALISTIC_TOML, "built-in").unwrap().len() >= 20);
    }

    #[test]
    fn mmlu_prompts_follow_the_harness_format() {
        let q = data::Mcq {
            id: "x".into(),
            subject: "high_school_physics".into(),
            question: "What?".into(),
            choices: vec!["a".into(), "b".into(), "c".into(), "d".into()],
            answer: 2,
        };
        let p = mmlu_prompt(&q.subject, std::slice::from_ref(&q), &q, false);
        assert_eq!(
            p,
            "The following are multiple choice questions (with answers) about high school physics.\n\nWhat?\nA. a\nB. b\nC. c\nD. d\nAnswer: C\n\nWhat?\nA. a\nB. b\nC. c\nD. d\nAnswer:"
        );
    }
}
