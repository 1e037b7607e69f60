//! GSM8K: math word problems answered step by step (zero-shot with an instruction, or with the
//! harness's few-shot prompt), scored by exact match of the final number under three filters.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;

use super::{
    flag_rate, generate_all, mean_item_score, sample, GenItem, Scored, Sink, Task, TaskOptions,
};
use crate::backend::{Backend, GenOptions};
use crate::eval::answer::{self, Gsm8kFilter};
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
        let shots = if opts.shots > 0 {
            data::gsm8k_split(&dir, "train")?
                .into_iter()
                .take(opts.shots as usize)
                .collect()
        } else {
            Vec::new()
        };
        let mut options = BTreeMap::new();
        options.insert("shots".into(), opts.shots.to_string());
        options.insert("filter".into(), FILTERS.into());
        let references: HashMap<String, String> = items
            .iter()
            .map(|p| (p.id.clone(), p.answer.clone()))
            .collect();
        let gen: Vec<GenItem> = sample(items.len(), opts, Some(100))
            .iter()
            .map(|&i| GenItem {
                id: items[i].id.clone(),
                group: String::new(),
                user: if shots.is_empty() {
                    items[i].question.clone()
                } else {
                    harness_prompt(&shots, &items[i].question)
                },
                gold: answer::gsm8k_gold(&items[i].answer).unwrap_or_default(),
            })
            .collect();
        // Zero-shot: an instruction; few-shot: the harness's prompt alone as the user turn,
        // generation cut where the model starts the next question.
        let (system, gen_opts) = if shots.is_empty() {
            options.insert("prompt".into(), "zero-shot instruction".into());
            (
                "Solve the math word problem. Think step by step, then write the final answer on the last line as \"#### <number>\".",
                GenOptions {
                    choices: Vec::new(),
                    temperature: 0.0,
                    max_tokens: 320,
                    stop: Vec::new(),
                    seed: opts.seed,
                },
            )
        } else {
            options.insert(
                "prompt".into(),
                "lm-evaluation-harness gsm8k (Question/Answer, first train examples)".into(),
            );
            (
                "",
                GenOptions {
                    choices: Vec::new(),
                    temperature: 0.0,
                    max_tokens: 256,
                    stop: vec!["Question:".into()],
                    seed: opts.seed,
                },
            )
        };
        let scored = generate_all(
            backend,
            system,
            gen,
            &gen_opts,
            opts,
            done,
            sink,
            |g, text| {
                let mut r = g.matched(text, answer::final_number(text));
                let reference = references.get(&g.id).map_or("", String::as_str);
                for (name, f) in [
                    ("strict", Gsm8kFilter::Strict),
                    ("flexible", Gsm8kFilter::Flexible),
                ] {
                    let ok = answer::gsm8k_harness_match(text, reference, f);
                    r.extra
                        .insert(format!("correct_{name}"), f64::from(u8::from(ok)));
                }
                r
            },
        )
        .await?;
        Ok(Scored {
            options,
            ..Scored::generated(items.len(), scored)
        })
    }

    fn scores(
        &self,
        items: &[ItemResult],
        _labels: &[String],
        seed: u64,
    ) -> (BTreeMap<String, Score>, Vec<Confusion>) {
        let (mut scores, confusions) = mean_item_score("exact_match", items, seed);
        for name in ["strict", "flexible"] {
            if let Some(s) = flag_rate(items, &format!("correct_{name}"), seed) {
                scores.insert(format!("exact_match_{name}"), s);
            }
        }
        (scores, confusions)
    }
}

/// What each GSM8K score's filter is, as recorded with the summary.
const FILTERS: &str = "exact_match: the number after ####, else after \"answer is\", else the last number; exact_match_strict: the harness's strict-match (#### N); exact_match_flexible: the harness's flexible-extract (the last number)";

/// lm-evaluation-harness's GSM8K prompt: `shots` worked examples, then the question.
fn harness_prompt(shots: &[data::MathProblem], question: &str) -> String {
    let mut p = String::new();
    for s in shots {
        p.push_str(&format!(
            "Question: {}\nAnswer: {}\n\n",
            s.question, s.answer
        ));
    }
    p.push_str(&format!("Question: {question}\nAnswer:"));
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_harness_prompt_ends_where_the_answer_starts() {
        let shot = data::MathProblem {
            id: "t".into(),
            question: "1+1?".into(),
            answer: "1+1=2\n#### 2".into(),
        };
        assert_eq!(
            harness_prompt(&[shot], "2+2?"),
            "Question: 1+1?\nAnswer: 1+1=2\n#### 2\n\nQuestion: 2+2?\nAnswer:"
        );
    }

    /// The documented subset by default (100 problems), every problem with `full`, and the
    /// harness's filters on each answer.
    #[tokio::test]
    async fn defaults_to_the_documented_subset_and_scores_all_three_filters() {
        use crate::eval::tasks::fake::{run, FakeBackend};
        let data =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets");
        let backend = FakeBackend::new(|_, _| "So the answer is 18.\n#### 18".into(), |_, _| None);
        let opts = TaskOptions {
            data_dir: Some(data),
            ..TaskOptions::default()
        };
        let out = run("gsm8k", &backend, &opts).await;
        assert_eq!(out.items.len(), 100);
        assert_eq!(out.items_total, 1319);
        let (scores, _) = Gsm8k.scores(&out.items, &[], 1);
        // Test item 0 (Janet's ducks) is 18; the three filters agree on these answers.
        let e = scores["exact_match"].value;
        assert_eq!(scores["exact_match_strict"].value, e);
        assert_eq!(scores["exact_match_flexible"].value, e);
        let full = run(
            "gsm8k",
            &backend,
            &TaskOptions {
                full: true,
                ..opts.clone()
            },
        )
        .await;
        assert_eq!(full.items.len(), 1319);
        assert!(full.items.iter().any(|i| i.score == 1.0));
    }
}
