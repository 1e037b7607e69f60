//! Realistic banking cases (FAQ answers, summaries, sentiment, field extraction), from the
//! built-in task file or `--realistic-file`; scored per kind (fact coverage, accuracy, fields).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use async_trait::async_trait;
use serde::Deserialize;

use super::classify::{label_logliks, sentiment_labels};
use super::{in_batches, GenItem, Scored, Sink, Task, TaskOptions};
use crate::backend::{Backend, GenOptions};
use crate::eval::answer::{self, map_label};
use crate::eval::data;
use crate::eval::method::{best, AnswerMode};
use crate::eval::score;
use crate::eval::EvalError;
use crate::results::eval::{Confusion, ItemResult, Score};

/// The realistic banking cases.
pub struct Realistic;

/// A case scored from its answer `text`, by its kind.
fn score_case(c: &Case, g: &GenItem, text: &str, sentiment: &[String]) -> ItemResult {
    let mut extra = BTreeMap::new();
    let (gold, predicted, score) = match c.kind.as_str() {
        "sentiment" => {
            let m = map_label(text, sentiment);
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
        gold,
        extra,
        ..g.scored(text, predicted, score)
    }
}

#[async_trait]
impl Task for Realistic {
    fn name(&self) -> &'static str {
        "realistic"
    }

    async fn run(
        &self,
        backend: &dyn Backend,
        opts: &TaskOptions,
        done: &HashMap<String, ItemResult>,
        sink: &mut Sink<'_>,
    ) -> Result<Scored, EvalError> {
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
            choices: Vec::new(),
            temperature: 0.0,
            max_tokens: 200,
            stop: Vec::new(),
            seed: opts.seed,
        };
        let sentiment = sentiment_labels();
        let score_one = |g: &GenItem, text: &str| score_case(&by_id[&g.id], g, text, &sentiment);
        // Sentiment cases take `--answer`; the other kinds are always written freely.
        let mut options = BTreeMap::new();
        let special = |g: &GenItem| {
            opts.answer != AnswerMode::Free
                && by_id.get(&g.id).is_some_and(|c| c.kind == "sentiment")
        };
        if opts.answer != AnswerMode::Free {
            options.insert(
                "answer".into(),
                format!("{} (sentiment cases)", opts.answer),
            );
        }
        if opts.answer == AnswerMode::Constrained && gen.iter().any(special) {
            let mechanism = backend.constraint().await.map_err(EvalError::Usage)?;
            options.insert("constraint".into(), mechanism);
        }
        let constrained = GenOptions {
            choices: sentiment.clone(),
            max_tokens: 48,
            ..gen_opts.clone()
        };
        let (gen_opts, constrained, sentiment, score_one, special) =
            (&gen_opts, &constrained, &sentiment, &score_one, &special);
        let scored = in_batches(gen, opts, done, sink, |chunk| async move {
            let (odd, plain): (Vec<&GenItem>, Vec<&GenItem>) =
                chunk.iter().partition(|g| special(g));
            let mut by_item: HashMap<String, ItemResult> = HashMap::new();
            let mut groups = vec![(&plain, gen_opts)];
            if opts.answer == AnswerMode::Constrained {
                groups.push((&odd, constrained));
            }
            for (items, o) in groups {
                if items.is_empty() {
                    continue;
                }
                let users: Vec<String> = items.iter().map(|g| g.user.clone()).collect();
                let answers = backend
                    .generate_batch(system, &users, o)
                    .await
                    .map_err(|e| EvalError::Backend(e.to_string()))?;
                for (g, a) in items.iter().zip(answers) {
                    let r = match a {
                        Ok(text) => score_one(g, &text),
                        Err(e) => g.failed(e),
                    };
                    by_item.insert(g.id.clone(), r);
                }
            }
            if opts.answer == AnswerMode::Loglik {
                for g in &odd {
                    let r = match label_logliks(backend, system, &g.user, sentiment).await? {
                        Ok(lls) => {
                            let label = best(&lls).map_or("", |i| sentiment[i].as_str());
                            score_one(g, label)
                        }
                        Err(e) => g.failed(e),
                    };
                    by_item.insert(g.id.clone(), r);
                }
            }
            Ok(chunk.iter().filter_map(|g| by_item.remove(&g.id)).collect())
        })
        .await?;
        Ok(Scored {
            method: if opts.answer == AnswerMode::Free {
                "generate".into()
            } else {
                format!("generate; sentiment cases {}", opts.answer.method())
            },
            options,
            ..Scored::generated(cases.len(), scored)
        })
    }

    fn scores(
        &self,
        items: &[ItemResult],
        _labels: &[String],
        seed: u64,
    ) -> (BTreeMap<String, Score>, Vec<Confusion>) {
        let values = |f: &dyn Fn(&ItemResult) -> Option<f64>| -> Vec<f64> {
            items.iter().filter_map(f).collect()
        };
        let mut out = BTreeMap::new();
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
        (out, Vec::new())
    }
}

/// The built-in realistic banking cases.
pub const REALISTIC_TOML: &str = include_str!("../../../tasks/realistic.toml");

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

/// The default location of the realistic task file in the source tree (for users to copy).
pub fn realistic_source_path() -> &'static Path {
    Path::new("crates/edgebench-core/tasks/realistic.toml")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::tasks::expand;

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
        assert_eq!(expand("harness").unwrap(), vec!["mmlu", "gsm8k"]);
        assert_eq!(expand("all").unwrap().len(), 6);
        assert!(expand("nope").unwrap_err().to_string().contains("nope"));
        assert!(load_cases(REALISTIC_TOML, "built-in").unwrap().len() >= 20);
    }

    /// Sentiment cases take `--answer`; the other kinds are still written freely.
    #[tokio::test]
    async fn sentiment_cases_follow_the_answer_mode_and_the_rest_stay_free() {
        use crate::eval::tasks::fake::{run, FakeBackend};
        // Free text "I think it is fine" everywhere; "negative" when constrained to labels;
        // by log-likelihood, "neutral".
        let backend = FakeBackend::new(
            |_, o| {
                if o.choices.is_empty() {
                    "I think it is fine".into()
                } else {
                    "negative".into()
                }
            },
            |_, c| {
                Some(
                    c.iter()
                        .map(|l| if l == "neutral" { -1.0 } else { -5.0 })
                        .collect(),
                )
            },
        );
        let opts = |answer| TaskOptions {
            answer,
            ..TaskOptions::default()
        };
        let sentiment_answers = |o: &crate::eval::TaskOutcome| -> Vec<String> {
            o.items
                .iter()
                .filter(|i| i.group == "sentiment")
                .map(|i| i.predicted.clone().unwrap_or_default())
                .collect()
        };
        let free = run("realistic", &backend, &opts(AnswerMode::Free)).await;
        assert_eq!(free.method, "generate");
        let c = run("realistic", &backend, &opts(AnswerMode::Constrained)).await;
        assert!(sentiment_answers(&c).iter().all(|p| p == "negative"));
        assert_eq!(c.options["constraint"], "fake grammar");
        let l = run("realistic", &backend, &opts(AnswerMode::Loglik)).await;
        assert!(!sentiment_answers(&l).is_empty());
        assert!(sentiment_answers(&l).iter().all(|p| p == "neutral"));
        assert_eq!(l.method, "generate; sentiment cases loglikelihood");
        // The other kinds are answered freely in every mode.
        for o in [&free, &c, &l] {
            assert_eq!(o.items.len(), free.items.len());
            assert!(o
                .items
                .iter()
                .filter(|i| i.group != "sentiment")
                .all(|i| i.answer == "I think it is fine"));
        }
    }
}
