//! HumanEval: the model completes Python functions, which run against their tests in the
//! sandbox; scored by pass@1.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;

use super::{generate_all, mean_item_score, sample, GenItem, Scored, Sink, Task, TaskOptions};
use crate::backend::{Backend, GenOptions};
use crate::eval::answer;
use crate::eval::data;
use crate::eval::sandbox::{self, Limits, Outcome, Sandbox};
use crate::eval::EvalError;
use crate::results::eval::{Confusion, ItemResult, SandboxReport, Score};

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
        let dir = data::locate("humaneval", opts.data_dir.as_deref()).await?;
        let items = data::humaneval(&dir)?;
        let sb = Sandbox::new(Limits::default(), opts.unsafe_exec)?;
        let isolation = match sb.isolation() {
            sandbox::Isolation::Namespaces => "namespaces",
            sandbox::Isolation::UnsafeExec => "unsafe-exec",
        };
        let by_id: HashMap<String, data::CodeProblem> = items
            .iter()
            .map(|p| (p.task_id.clone(), p.clone()))
            .collect();
        let gen: Vec<GenItem> = sample(items.len(), opts)
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
            choices: Vec::new(),
            max_tokens: 384,
            stop: Vec::new(),
            seed: opts.seed,
        };
        let mut scored = Scored::generated(
            items.len(),
            generate_all(
                backend,
                system,
                gen,
                &gen_opts,
                opts,
                done,
                sink,
                |g, text| {
                    let p = &by_id[&g.id];
                    let (code, tests) =
                        answer::humaneval_program(&p.prompt, text, &p.test, &p.entry_point);
                    let suspicious = sandbox::suspicious_code(&answer::code_block(text));
                    let (outcome, limit, error) = match sb.run_tests(&code, &tests) {
                        Ok(r) => (r.outcome, r.limit, None),
                        Err(e) => (Outcome::Failed, None, Some(e.to_string())),
                    };
                    let flag = |b: bool| f64::from(u8::from(b));
                    ItemResult {
                        gold: "passed".into(),
                        extra: [
                            ("suspicious_code".to_string(), flag(suspicious)),
                            ("timeout".to_string(), flag(outcome == Outcome::Timeout)),
                            ("killed".to_string(), flag(outcome == Outcome::Killed)),
                        ]
                        .into_iter()
                        .chain(limit.map(|l| (format!("limit_{}", l.as_str()), 1.0)))
                        .collect(),
                        error,
                        ..g.scored(
                            text,
                            Some(format!("{outcome:?}").to_lowercase()),
                            flag(outcome == Outcome::Passed),
                        )
                    }
                },
            )
            .await?,
        );
        let count = |k: &str| {
            scored
                .items
                .iter()
                .filter(|i| i.extra.get(k).copied() == Some(1.0))
                .count()
        };
        scored.sandbox = Some(SandboxReport {
            isolation: isolation.into(),
            memory_cap: sb.memory_cap(),
            programs_run: scored.items.len(),
            timeouts: count("timeout"),
            limit_kills: count("killed"),
            suspicious_code: count("suspicious_code"),
        });
        scored.options.insert("isolation".into(), isolation.into());
        scored.options.insert("memory_cap".into(), sb.memory_cap());
        Ok(scored)
    }

    fn scores(
        &self,
        items: &[ItemResult],
        _labels: &[String],
        seed: u64,
    ) -> (BTreeMap<String, Score>, Vec<Confusion>) {
        mean_item_score("pass_at_1", items, seed)
    }
}
