//! MMLU: multiple-choice questions, in the letter format (scored by the log-likelihood of each
//! answer letter where the backend gives them, else by the generated letter) or the cloze format
//! (each answer's text scored after "Question: ...\nAnswer:", also normalised by its length).

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;

use super::{flag_rate, generate_all, mean_item_score, GenItem, Scored, Sink, Task, TaskOptions};
use crate::backend::{Backend, GenOptions};
use crate::eval::answer;
use crate::eval::data;
use crate::eval::method::{best, length_normalised};
use crate::eval::EvalError;
use crate::results::eval::{Confusion, ItemResult, Score};

/// MMLU: multiple-choice questions over 57 subjects.
pub struct Mmlu;

#[async_trait]
impl Task for Mmlu {
    fn name(&self) -> &'static str {
        "mmlu"
    }

    async fn run(
        &self,
        backend: &dyn Backend,
        opts: &TaskOptions,
        done: &HashMap<String, ItemResult>,
        sink: &mut Sink<'_>,
    ) -> Result<Scored, EvalError> {
        let mut options = BTreeMap::new();
        let dir = data::locate("mmlu", opts.data_dir.as_deref()).await?;
        let test = data::mmlu(&dir, "test")?;
        let dev = if opts.shots > 0 {
            data::mmlu(&dir, "dev")?
        } else {
            BTreeMap::new()
        };
        options.insert("shots".into(), opts.shots.to_string());
        let cloze = opts.format == "cloze";
        options.insert("format".into(), opts.format.clone());
        if cloze {
            if backend.info().kind == "http" {
                return Err(EvalError::Usage(
                    "--format cloze scores each answer's whole text by log-likelihood, which only the embedded engine gives (an OpenAI-compatible server returns top log-probabilities of one token); use --format letter".into(),
                ));
            }
            options.insert(
                "normalisation".into(),
                "accuracy: summed log-likelihood; accuracy_norm: per character".into(),
            );
        }
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
                data::stratified_sample(&strata, opts.size(Some(200)), opts.seed)
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
            let (context, item_conts) = if cloze {
                let conts = q.choices.iter().map(|c| format!(" {}", c.trim())).collect();
                (cloze_prompt(&q.subject, shots, q), conts)
            } else {
                (mmlu_prompt(&q.subject, shots, q), conts.clone())
            };
            let gold = char::from(b'A' + q.answer as u8).to_string();
            if method == "loglikelihood" {
                match backend
                    .loglikelihoods(&context, &item_conts)
                    .await
                    .map_err(|e| EvalError::Backend(e.to_string()))?
                {
                    Some(lps) => {
                        let letter = |k: usize| char::from(b'A' + k as u8).to_string();
                        let pred = best(&lps).filter(|k| lps[*k].is_finite()).map(letter);
                        let lps_text: Vec<String> = lps.iter().map(|l| format!("{l:.4}")).collect();
                        let mut r = GenItem {
                            id: q.id.clone(),
                            group: q.subject.clone(),
                            user: String::new(),
                            gold: gold.clone(),
                        }
                        .matched(&lps_text.join(" "), pred);
                        if cloze {
                            let norm = best(&length_normalised(&lps, &item_conts)).map(letter);
                            r.extra.insert(
                                "correct_norm".into(),
                                f64::from(u8::from(norm.as_deref() == Some(gold.as_str()))),
                            );
                        }
                        (sink.commit)(std::slice::from_ref(&r)).map_err(EvalError::Store)?;
                        results.push(r);
                        new_items += 1;
                        by_loglik += 1;
                        if new_items % 10 == 0 {
                            (sink.progress)(results.len(), total);
                        }
                        continue;
                    }
                    None if cloze => {
                        return Err(EvalError::Usage(
                            "--format cloze: this target gives no log-likelihoods".into(),
                        ))
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
            let system =
                "Answer the multiple choice question with the letter of the correct choice only.";
            let gen_opts = GenOptions {
                choices: Vec::new(),
                temperature: 0.0,
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
                    g.matched(text, p)
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
        Ok(Scored {
            method,
            items_total: all.len(),
            items: results,
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
        let (mut scores, confusions) = mean_item_score("accuracy", items, seed);
        // The cloze format also ranks answers by log-likelihood per character.
        if let Some(s) = flag_rate(items, "correct_norm", seed) {
            scores.insert("accuracy_norm".into(), s);
        }
        (scores, confusions)
    }
}

/// The cloze prompt (lm-evaluation-harness's `mmlu_continuation`): no lettered choices, each
/// answer's text is the continuation after "Answer:".
fn cloze_prompt(subject: &str, shots: &[data::Mcq], q: &data::Mcq) -> String {
    let mut p = format!(
        "The following are questions (with answers) about {}.\n\n",
        subject.replace('_', " ")
    );
    for s in shots {
        let answer = s.choices.get(s.answer).map_or("", |c| c.trim());
        p.push_str(&format!(
            "Question: {}\nAnswer: {answer}\n\n",
            s.question.trim()
        ));
    }
    p.push_str(&format!("Question: {}\nAnswer:", q.question.trim()));
    p
}

fn mmlu_prompt(subject: &str, shots: &[data::Mcq], q: &data::Mcq) -> String {
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
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::tasks::run_task;
    use std::path::Path;

    /// Gives log-likelihoods for its first `until` calls, then none; answers "A" when asked.
    struct StopsGivingLoglik {
        until: usize,
        calls: std::sync::atomic::AtomicUsize,
        mock: crate::backend::mock::MockTarget,
    }

    #[async_trait::async_trait]
    impl crate::backend::Target for StopsGivingLoglik {
        fn info(&self) -> crate::backend::TargetInfo {
            self.mock.info()
        }
        async fn count_prompt_tokens(
            &self,
            m: &[crate::backend::ChatMessage],
        ) -> Result<Option<u64>, crate::backend::TargetError> {
            self.mock.count_prompt_tokens(m).await
        }
        fn context_tokens(&self) -> Option<u32> {
            self.mock.context_tokens()
        }
        async fn generate(
            &self,
            request: crate::backend::GenRequest,
            clock: &crate::clock::Clock,
        ) -> crate::record::RequestRecord {
            self.mock.generate(request, clock).await
        }
    }

    #[async_trait::async_trait]
    impl Backend for StopsGivingLoglik {
        async fn generate_batch(
            &self,
            _system: &str,
            users: &[String],
            _opts: &GenOptions,
        ) -> Result<Vec<Result<String, String>>, crate::backend::BackendError> {
            Ok(users.iter().map(|_| Ok("A".to_string())).collect())
        }
        async fn loglikelihoods(
            &self,
            _context: &str,
            continuations: &[String],
        ) -> Result<Option<Vec<f64>>, crate::backend::BackendError> {
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
                mock: Default::default(),
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
    fn mmlu_prompts_follow_the_harness_format() {
        let q = data::Mcq {
            id: "x".into(),
            subject: "high_school_physics".into(),
            question: "What?".into(),
            choices: vec!["a".into(), "b".into(), "c".into(), "d".into()],
            answer: 2,
        };
        let p = mmlu_prompt(&q.subject, std::slice::from_ref(&q), &q);
        assert_eq!(
            p,
            "The following are multiple choice questions (with answers) about high school physics.\n\nWhat?\nA. a\nB. b\nC. c\nD. d\nAnswer: C\n\nWhat?\nA. a\nB. b\nC. c\nD. d\nAnswer:"
        );
    }

    #[test]
    fn cloze_prompts_follow_the_harness_continuation_format() {
        let q = data::Mcq {
            id: "x".into(),
            subject: "high_school_physics".into(),
            question: " What? ".into(),
            choices: vec!["a".into(), "bee".into(), "c".into(), "d".into()],
            answer: 1,
        };
        assert_eq!(
            cloze_prompt(&q.subject, std::slice::from_ref(&q), &q),
            "The following are questions (with answers) about high school physics.\n\nQuestion: What?\nAnswer: bee\n\nQuestion: What?\nAnswer:"
        );
    }

    /// Cloze items score each answer's text; the summed and the per-character choice can
    /// differ, and both are reported.
    #[tokio::test]
    async fn cloze_scores_answer_texts_with_and_without_length_normalisation() {
        // Log-likelihood -1 per character plus a bonus for the first choice's text: by sum the
        // shortest answer wins, per character the first.
        let backend = crate::eval::tasks::fake::FakeBackend::new(
            |_, _| String::new(),
            |context, conts| {
                assert!(context.ends_with("\nAnswer:"), "{context}");
                assert!(
                    context.starts_with("The following are questions (with answers) about"),
                    "{context}"
                );
                Some(
                    conts
                        .iter()
                        .enumerate()
                        .map(|(i, c)| -(c.len() as f64) + if i == 0 { 0.5 } else { 0.0 })
                        .collect(),
                )
            },
        );
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets");
        let opts = TaskOptions {
            sample_size: Some(40),
            data_dir: Some(data),
            format: "cloze".into(),
            ..TaskOptions::default()
        };
        let out = crate::eval::tasks::fake::run("mmlu", &backend, &opts).await;
        assert_eq!(out.options["format"], "cloze");
        let (scores, _) = Mmlu.scores(&out.items, &[], 1);
        assert!(scores.contains_key("accuracy_norm"), "{scores:?}");
        // Per character every item picks A (the bonus); by sum, the shortest text.
        let a_rate = out.items.iter().filter(|i| i.gold == "A").count() as f64 / 40.0;
        assert!((scores["accuracy_norm"].value - a_rate).abs() < 1e-9);
    }
}
