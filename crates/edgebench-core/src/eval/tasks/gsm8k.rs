//! GSM8K: math word problems answered step by step, scored by exact match of the final number.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;

use super::{generate_all, mean_item_score, sample, GenItem, Scored, Sink, Task, TaskOptions};
use crate::backend::{Backend, GenOptions};
use crate::eval::answer;
use crate::eval::data;
use crate::eval::EvalError;
use crate::results::eval::{Confusion, ItemResult, Score};

/// GSM8K: grade-school math word problems, scored on the final number.
pub struct Gsm8k;

#[async_trait]
impl Task for Gsm8k {
    fn name(&self) -> &'static str {
        "gsm8k"
    }

    async fn run(
        &self,
        backend: &dyn Backend,
        opts: &TaskOptions,
        done: &HashMap<String, ItemResult>,
        sink: &mut Sink<'_>,
    ) -> Result<Scored, EvalError> {
        let dir = data::locate("gsm8k", opts.data_dir.as_deref()).await?;
        let items = data::gsm8k(&dir)?;
        let gen: Vec<GenItem> = sample(items.len(), opts)
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
            choices: Vec::new(),
            max_tokens: 320,
            stop: Vec::new(),
            seed: opts.seed,
        };
        let scored = generate_all(
            backend,
            system,
            gen,
            &gen_opts,
            opts,
            done,
            sink,
            |g, text| g.matched(text, answer::final_number(text)),
        )
        .await?;
        Ok(Scored::generated(items.len(), scored))
    }

    fn scores(
        &self,
        items: &[ItemResult],
        _labels: &[String],
        seed: u64,
    ) -> (BTreeMap<String, Score>, Vec<Confusion>) {
        mean_item_score("exact_match", items, seed)
    }
}
