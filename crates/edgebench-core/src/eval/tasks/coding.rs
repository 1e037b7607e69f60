//! HumanEval: the model completes Python functions, which run against their tests in the
//! sandbox; scored by pass@1 (greedy), or by the unbiased pass@k over `--samples N` answers
//! sampled at `--temperature T`.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;

use super::{generate_all, mean_item_score, sample, GenItem, Scored, Sink, Task, TaskOptions};
use crate::backend::{Backend, GenOptions};
use crate::eval::answer;
use crate::eval::data;
use crate::eval::sandbox::{self, Limits, Outcome, Sandbox};
use crate::eval::score;
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
        let samples = opts.samples.max(1) as usize;
        let gen: Vec<GenItem> = sample(items.len(), opts, Some(30))
            .iter()
            .flat_map(|&i| (0..samples).map(move |s| (i, s)))
            .map(|(i, s)| GenItem {
                // One item per sample; the group is the problem.
                id: if samples == 1 {
                    items[i].task_id.clone()
                } else {
                    format!("{}#{s}", items[i].task_id)
                },
                group: items[i].task_id.clone(),
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
            temperature: opts.temperature,
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
                    let p = &by_id[&g.group];
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
        scored.options.insert("samples".into(), samples.to_string());
        scored
            .options
            .insert("temperature".into(), opts.temperature.to_string());
        scored.options.insert("memory_cap".into(), sb.memory_cap());
        Ok(scored)
    }

    fn scores(
        &self,
        items: &[ItemResult],
        _labels: &[String],
        seed: u64,
    ) -> (BTreeMap<String, Score>, Vec<Confusion>) {
        pass_at_k_scores(items, seed)
    }
}

/// pass@1, and pass@10 where every problem has at least ten samples: the unbiased estimate per
/// problem, averaged over problems with a bootstrap CI.
fn pass_at_k_scores(items: &[ItemResult], seed: u64) -> (BTreeMap<String, Score>, Vec<Confusion>) {
    // Problems by group (results from before samples had an empty group: one item, one problem).
    let mut by_problem: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for i in items {
        let key = if i.group.is_empty() { &i.id } else { &i.group };
        let e = by_problem.entry(key.as_str()).or_default();
        e.0 += 1;
        e.1 += usize::from(i.score > 0.0);
    }
    let mut out = BTreeMap::new();
    for k in [1usize, 10] {
        let v: Option<Vec<f64>> = by_problem
            .values()
            .map(|&(n, c)| score::pass_at_k(n, c, k))
            .collect();
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            out.insert(format!("pass_at_{k}"), score::mean_score(&v, seed));
        }
    }
    if out.is_empty() {
        return mean_item_score("pass_at_1", items, seed);
    }
    (out, Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(group: &str, id: &str, passed: bool) -> ItemResult {
        ItemResult {
            id: id.into(),
            group: group.into(),
            gold: "passed".into(),
            predicted: None,
            score: f64::from(u8::from(passed)),
            answer: String::new(),
            extra: BTreeMap::new(),
            error: None,
        }
    }

    #[test]
    fn pass_at_k_averages_problems_not_samples() {
        // Problem a: 10 samples, 1 passes; problem b: 10 samples, none.
        let mut items: Vec<ItemResult> = (0..10)
            .map(|s| item("a", &format!("a#{s}"), s == 0))
            .collect();
        items.extend((0..10).map(|s| item("b", &format!("b#{s}"), false)));
        let (s, _) = pass_at_k_scores(&items, 1);
        assert!((s["pass_at_1"].value - 0.05).abs() < 1e-12);
        assert!((s["pass_at_10"].value - 0.5).abs() < 1e-12);
        // Greedy results (one sample each, older ones without a group): pass@1 only.
        let greedy = vec![item("", "x", true), item("", "y", false)];
        let (s, _) = pass_at_k_scores(&greedy, 1);
        assert_eq!(s["pass_at_1"].value, 0.5);
        assert!(!s.contains_key("pass_at_10"));
    }
}
