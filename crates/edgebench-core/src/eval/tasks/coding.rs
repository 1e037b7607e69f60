//! HumanEval: the model completes Python functions, which run against their tests in the sandbox; scored by pass@1.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;

use super::{cap, generate_all, GenItem, Scored, Sink, Task, TaskOptions};
use crate::backend::{Backend, GenOptions};
use crate::eval::answer;
use crate::eval::data;
use crate::eval::sandbox::{self, Limits, Outcome, Sandbox};
use crate::eval::score;
use crate::eval::EvalError;
use crate::results::eval::SandboxReport;
use crate::results::eval::{Confusion, ItemResult, Score};

/// HumanEval: Python functions completed by the model and run against their tests.
pub struct Coding;

#[async_trait]
impl Task for Coding {
    fn name(&self) -> &'static str {
        "coding"
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
        let sandbox_report;
        let (method, items_total, items, new_items) = {
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
        };
        Ok(Scored {
            method,
            items_total,
            items,
            new_items,
            labels: Vec::new(),
            sandbox: sandbox_report,
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
            [("pass_at_1".to_string(), score::mean_score(&v, seed))].into(),
            Vec::new(),
        )
    }
}
