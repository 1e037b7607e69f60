//! Classification tasks: Banking77 intents and Financial PhraseBank sentiment, answered in free
//! text mapped to a label, in text constrained to the labels, or by the labels' log-likelihood;
//! scored by accuracy and macro-F1 with the most frequent confusions.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;

use super::{flag_rate, generate_all, in_batches, GenItem, Scored, Sink, Task, TaskOptions};
use crate::backend::{Backend, GenOptions};
use crate::eval::answer::map_label;
use crate::eval::data;
use crate::eval::method::{best, length_normalised, AnswerMode};
use crate::eval::score;
use crate::eval::EvalError;
use crate::results::eval::{Confusion, ItemResult, Score};

/// Banking77: 77 intents of customer messages to a bank.
pub struct Banking77;

/// Financial PhraseBank: the sentiment of sentences from financial news.
pub struct PhraseBank;

#[async_trait]
impl Task for Banking77 {
    fn name(&self) -> &'static str {
        "banking77"
    }

    async fn run(
        &self,
        backend: &dyn Backend,
        opts: &TaskOptions,
        done: &HashMap<String, ItemResult>,
        sink: &mut Sink<'_>,
    ) -> Result<Scored, EvalError> {
        classify(self.name(), backend, opts, done, sink).await
    }

    fn scores(&self, items: &[ItemResult], labels: &[String], seed: u64) -> Scores {
        classification_scores(items, labels, seed)
    }
}

#[async_trait]
impl Task for PhraseBank {
    fn name(&self) -> &'static str {
        "financial_phrasebank"
    }

    async fn run(
        &self,
        backend: &dyn Backend,
        opts: &TaskOptions,
        done: &HashMap<String, ItemResult>,
        sink: &mut Sink<'_>,
    ) -> Result<Scored, EvalError> {
        classify(self.name(), backend, opts, done, sink).await
    }

    fn scores(&self, items: &[ItemResult], labels: &[String], seed: u64) -> Scores {
        classification_scores(items, labels, seed)
    }
}

/// The three sentiments, as Financial PhraseBank and the realistic sentiment cases label them.
pub(super) fn sentiment_labels() -> Vec<String> {
    ["positive", "negative", "neutral"]
        .map(String::from)
        .to_vec()
}

/// The scores of a task and its most frequent confusions.
type Scores = (BTreeMap<String, Score>, Vec<Confusion>);

async fn classify(
    task: &str,
    backend: &dyn Backend,
    opts: &TaskOptions,
    done: &HashMap<String, ItemResult>,
    sink: &mut Sink<'_>,
) -> Result<Scored, EvalError> {
    let data_dir = opts.data_dir.as_deref();
    let mut options = BTreeMap::new();
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
        let lbls = sentiment_labels();
        let system = "Classify the sentiment of a sentence from financial news as positive, negative or neutral. Reply with one word.".to_string();
        (items, lbls, system)
    };
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
    options.insert("answer".into(), opts.answer.to_string());
    let scored = match opts.answer {
        AnswerMode::Free => {
            let gen_opts = GenOptions {
                choices: Vec::new(),
                temperature: 0.0,
                max_tokens: if task == "banking77" { 10 } else { 8 },
                stop: vec!["\n".into()],
                seed: opts.seed,
            };
            generate_all(
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
                        extra: [(format!("match_{:?}", m.how).to_lowercase(), 1.0)].into(),
                        ..g.matched(text, m.label)
                    }
                },
            )
            .await?
        }
        AnswerMode::Constrained => {
            let mechanism = backend.constraint().await.map_err(EvalError::Usage)?;
            options.insert("constraint".into(), mechanism);
            let gen_opts = GenOptions {
                choices: lbls.clone(),
                temperature: 0.0,
                // Room for the longest label, or a JSON object around it.
                max_tokens: 48,
                stop: Vec::new(),
                seed: opts.seed,
            };
            generate_all(
                backend,
                &system,
                gen,
                &gen_opts,
                opts,
                done,
                sink,
                |g, text| {
                    let label = lbls.iter().find(|l| l.as_str() == text.trim()).cloned();
                    g.matched(text, label)
                },
            )
            .await?
        }
        AnswerMode::Loglik => {
            options.insert(
                "normalisation".into(),
                "accuracy: summed log-likelihood; accuracy_norm: per character".into(),
            );
            loglik_all(backend, &system, gen, &lbls, opts, done, sink).await?
        }
    };
    Ok(Scored {
        method: opts.answer.method().into(),
        labels: lbls,
        options,
        ..Scored::generated(items.len(), scored)
    })
}

/// Each item's label by log-likelihood after the chat-templated prompt: the label with the
/// highest summed log-likelihood is `predicted`; `extra.correct_norm` says whether the label
/// with the highest per-character log-likelihood is the gold one.
async fn loglik_all(
    backend: &dyn Backend,
    system: &str,
    gen: Vec<GenItem>,
    labels: &[String],
    opts: &TaskOptions,
    done: &HashMap<String, ItemResult>,
    sink: &mut Sink<'_>,
) -> Result<(Vec<ItemResult>, usize), EvalError> {
    in_batches(gen, opts, done, sink, |chunk| async move {
        let mut out = Vec::with_capacity(chunk.len());
        for g in &chunk {
            out.push(
                match label_logliks(backend, system, &g.user, labels).await? {
                    Ok(lls) => loglik_item(g, labels, &lls),
                    Err(e) => g.failed(e),
                },
            );
        }
        Ok(out)
    })
    .await
}

/// The log-likelihood of each label as the answer to a chat of `system` and `user`; `Ok(Err)`
/// when this item's request failed, `Err` when the target cannot score at all.
pub(super) async fn label_logliks(
    backend: &dyn Backend,
    system: &str,
    user: &str,
    labels: &[String],
) -> Result<Result<Vec<f64>, String>, EvalError> {
    let unable = || {
        EvalError::Usage(
            "--answer loglik: this target cannot score log-likelihoods after a chat template (the embedded engine can; over HTTP use --answer constrained)".into(),
        )
    };
    let context = backend
        .chat_context(system, user)
        .await
        .map_err(|e| EvalError::Backend(e.to_string()))?
        .ok_or_else(unable)?;
    match backend.loglikelihoods(&context, labels).await {
        Ok(Some(l)) if l.len() == labels.len() => Ok(Ok(l)),
        Ok(_) => Err(unable()),
        Err(e) => Ok(Err(e.to_string())),
    }
}

/// An item scored from its labels' log-likelihoods.
fn loglik_item(g: &GenItem, labels: &[String], lls: &[f64]) -> ItemResult {
    let by_sum = best(lls).map(|i| labels[i].clone());
    let by_norm = best(&length_normalised(lls, labels)).map(|i| labels[i].clone());
    let gold_ll = labels
        .iter()
        .position(|l| *l == g.gold)
        .map_or(f64::NAN, |i| lls[i]);
    let mut r = g.matched(by_sum.as_deref().unwrap_or(""), by_sum.clone());
    r.extra = [
        (
            "correct_norm".to_string(),
            f64::from(u8::from(by_norm.as_deref() == Some(g.gold.as_str()))),
        ),
        ("gold_loglik".to_string(), gold_ll),
    ]
    .into();
    r
}

/// Accuracy, macro-F1 (with CIs) and the ten most frequent confusions.
fn classification_scores(items: &[ItemResult], labels: &[String], seed: u64) -> Scores {
    let index: HashMap<&str, usize> = labels
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
    let mut scores: BTreeMap<String, Score> = score::classification(&gold, &pred, seed)
        .into_iter()
        .collect();
    // Log-likelihood answers also carry the per-character normalised choice.
    if let Some(s) = flag_rate(items, "correct_norm", seed) {
        scores.insert("accuracy_norm".into(), s);
    }
    (scores, score::top_confusions(&gold, &pred, labels, 10))
}
