//! Classification tasks: Banking77 intents and Financial PhraseBank sentiment, answered in free
//! text and mapped to a label; scored by accuracy and macro-F1 with the most frequent confusions.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;

use super::{generate_all, GenItem, Scored, Sink, Task, TaskOptions};
use crate::backend::{Backend, GenOptions};
use crate::eval::answer::map_label;
use crate::eval::data;
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
        let lbls = vec!["positive".into(), "negative".into(), "neutral".into()];
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
    let gen_opts = GenOptions {
        max_tokens: if task == "banking77" { 10 } else { 8 },
        stop: vec!["\n".into()],
        seed: opts.seed,
    };
    let scored = generate_all(
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
    .await?;
    Ok(Scored {
        labels: lbls,
        options,
        ..Scored::generated(items.len(), scored)
    })
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
    (
        score::classification(&gold, &pred, seed)
            .into_iter()
            .collect(),
        score::top_confusions(&gold, &pred, labels, 10),
    )
}
