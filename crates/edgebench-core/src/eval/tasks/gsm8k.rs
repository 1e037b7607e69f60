//! GSM8K: math word problems answered step by step, scored by exact match of the final number.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;

use super::{cap, generate_all, GenItem, Scored, Sink, Task, TaskOptions};
use crate::backend::{Backend, GenOptions};
use crate::eval::answer;
use crate::eval::data;
use crate::eval::score;
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
        let data_dir = opts.data_dir.as_deref();
        #[allow(unused_mut)]
        let mut options = BTreeMap::new();
        let (method, items_total, items, new_items) = {
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
        };
        Ok(Scored {
            method,
            items_total,
            items,
            new_items,
            labels: Vec::new(),
            sandbox: None,
            options,
        })
    }

    fn scores(
        &self,
        items: &[ItemResult],
        _labels: &[String],
        seed: u64,
    ) -> (BTreeMap<String, Score>, Vec<Confusion>) {
        let v: Vec<f64> = items.iter().map(|i| i.score).collect();
        (
            [("exact_match".to_string(), score::mean_score(&v, seed))].into(),
            Vec::new(),
        )
    }
}
