//! The one-model studies (`study context|temperature|language|prompt-type|threads`): each step is
//! a unit of one run experiment (a scenario of its own on one loaded model, or for threads the
//! model loaded again with that many threads), read back through the one results reader into a
//! row per step, each step tested against the one before by `compare`'s tests, and written as
//! `study_{kind}_{ts}.json` and at the head of the report (table and chart).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::catalog::ModelInfo;
use crate::compare::{self, CompareOptions};
use crate::experiment::perf::{self, Models, PerfPlan};
use crate::experiment::{BackendSpec, Context, Event, ExperimentError};
use crate::report::document::{model_label, MetricStats, StudyBar, StudyChart, StudyTable};
use crate::report::layout::{to_markdown, Blocks};
use crate::report::markdown::{num, study_blocks};
use crate::workload::{Scenario, ScenarioFile};

use super::quant::StepTest;

/// The prompts of the language and prompt-type studies (translations side by side).
pub const PROMPTS_TOML: &str = include_str!("../../studies/prompts.toml");

/// Which one-model study.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StudyKind {
    Context,
    Temperature,
    Language,
    PromptType,
    Threads,
}

impl StudyKind {
    /// The command's name (`prompt-type`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Context => "context",
            Self::Temperature => "temperature",
            Self::Language => "language",
            Self::PromptType => "prompt-type",
            Self::Threads => "threads",
        }
    }

    /// The study's name in file and scenario names (`prompt_type`).
    fn slug(self) -> String {
        self.name().replace('-', "_")
    }

    /// The steps when none are given (the seed's, or what the machine and model allow).
    pub fn default_values(self) -> Vec<String> {
        let v: &[&str] = match self {
            Self::Temperature => &["0.25", "0.5", "0.75"],
            Self::Language => &["en", "fr", "zh", "es", "de", "ar"],
            Self::PromptType => &["general", "code", "reasoning", "creative", "math"],
            Self::Context | Self::Threads => &[],
        };
        v.iter().map(|s| s.to_string()).collect()
    }
}

/// One set of prompts of the shipped file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PromptSet {
    code: String,
    name: String,
    system: String,
    prompts: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PromptsFile {
    language: Vec<PromptSet>,
    prompt_type: Vec<PromptSet>,
}

fn prompts_file() -> Result<PromptsFile, ExperimentError> {
    toml::from_str(PROMPTS_TOML)
        .map_err(|e| ExperimentError::Plan(format!("the shipped study prompts: {e}")))
}

/// One step: the unit's scenario and, for threads, the engine's thread count.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// What the step sets, as shown (`2048`, `fr`, `0.5`, `4`).
    pub setting: String,
    pub scenario: Scenario,
    pub threads: Option<u32>,
}

/// What a study is asked for.
#[derive(Debug, Clone)]
pub struct StepsSpec {
    pub kind: StudyKind,
    /// The steps (empty: [`StudyKind::default_values`], or for context the doublings up to the
    /// limit, for threads 1 up to the cores).
    pub values: Vec<String>,
    /// Context: the largest prompt plus output (default: the model's training context, at most
    /// [`DEFAULT_MAX_CTX`]).
    pub max_ctx: Option<u32>,
    /// A fixed engine context (`--ctx-size`): the context study stays under it.
    pub fixed_ctx: Option<u32>,
    /// Output tokens per request where the study fixes them (default 64 for context, 128 for
    /// temperature and language; prompt types answer at their natural length up to 512).
    pub max_tokens: Option<u32>,
    /// Physical cores, for the threads study's default.
    pub cores: u32,
}

/// The context study's largest prompt plus output unless `--max-ctx` asks for more (long prompts
/// take minutes each on a CPU).
pub const DEFAULT_MAX_CTX: u64 = 8192;

/// Room left under the limit for a prompt of `n` tokens: prompts end on a whole sentence, so they
/// can pass their target by one.
fn context_margin(n: u64) -> u64 {
    (n / 16).max(128)
}

fn bad(field: &str, why: String) -> ExperimentError {
    ExperimentError::Plan(format!("{field}: {why}"))
}

/// The study's steps for `model` (its training context bounds the context study), with the
/// built-in scenarios and passages in `file`.
pub fn steps(
    spec: &StepsSpec,
    file: &ScenarioFile,
    model_ctx: Option<u64>,
) -> Result<Vec<Step>, ExperimentError> {
    let values = if spec.values.is_empty() {
        spec.kind.default_values()
    } else {
        spec.values.clone()
    };
    let slug = spec.kind.slug();
    let base = file
        .scenarios
        .iter()
        .find(|s| s.name == "interactive_assistant")
        .cloned()
        .ok_or_else(|| {
            bad(
                "scenarios_file",
                "has no interactive_assistant scenario".into(),
            )
        })?;
    let plain = |name: String, set: &PromptSet, out: [u32; 2], ignore_eos: bool| Scenario {
        name,
        description: set.name.clone(),
        system: set.system.clone(),
        prompt_tokens: [1, 1],
        output_tokens: out,
        ignore_eos,
        json: false,
        instructions: set.prompts.clone(),
        concurrency: None,
        sweep_of: None,
        temperature: None,
        cycle_instructions: true,
    };
    let mut out = Vec::new();
    match spec.kind {
        StudyKind::Context => {
            if let (Some(m), Some(c)) = (spec.max_ctx, model_ctx) {
                if u64::from(m) > c {
                    return Err(bad(
                        "max_ctx",
                        format!("{m} is above the model's context length, {c} tokens"),
                    ));
                }
            }
            let limit = [
                spec.max_ctx.map(u64::from),
                spec.fixed_ctx.map(u64::from),
                model_ctx,
                spec.max_ctx.is_none().then_some(DEFAULT_MAX_CTX),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(4096);
            let gen = spec.max_tokens.unwrap_or(64);
            let fits = |n: u64| n + u64::from(gen) + context_margin(n) <= limit;
            // The largest prompt that fits, in whole 64-token steps.
            let largest = (1..=limit / 64)
                .rev()
                .map(|i| i * 64)
                .find(|&n| fits(n))
                .unwrap_or(0);
            let lengths: Vec<u64> = if values.is_empty() {
                let mut v: Vec<u64> = std::iter::successors(Some(512u64), |n| Some(n * 2))
                    .take_while(|&n| fits(n))
                    .collect();
                if v.last().is_some_and(|&l| largest > l + l / 4) {
                    v.push(largest);
                }
                v
            } else {
                values
                    .iter()
                    .map(|v| {
                        v.parse::<u64>()
                            .ok()
                            .filter(|&n| n >= 16 && fits(n))
                            .ok_or_else(|| {
                                bad(
                                    "values",
                                    format!(
                                        "{v:?}: prompt lengths are whole numbers of tokens from 16 \
                                         to {largest} (room for {gen} output tokens and the \
                                         prompt's last sentence under the context limit {limit})"
                                    ),
                                )
                            })
                    })
                    .collect::<Result<_, _>>()?
            };
            if lengths.is_empty() {
                return Err(bad(
                    "max_ctx",
                    format!(
                        "{limit} leaves no room for a 512-token prompt and {gen} output tokens"
                    ),
                ));
            }
            for n in lengths {
                let n32 = u32::try_from(n).unwrap_or(u32::MAX);
                out.push(Step {
                    setting: n.to_string(),
                    scenario: Scenario {
                        name: format!("{slug}_{n}"),
                        description: format!("a {n}-token prompt, {gen} output tokens"),
                        prompt_tokens: [n32, n32],
                        output_tokens: [gen, gen],
                        ignore_eos: true,
                        instructions: vec![
                            "Summarise the documents above in three sentences.".into()
                        ],
                        ..base.clone()
                    },
                    threads: None,
                });
            }
        }
        StudyKind::Temperature => {
            let gen = spec.max_tokens.unwrap_or(128);
            for v in &values {
                let t = v
                    .parse::<f32>()
                    .ok()
                    .filter(|t| t.is_finite() && (0.0..=2.0).contains(t))
                    .ok_or_else(|| bad("values", format!("{v:?}: temperatures are 0 to 2")))?;
                out.push(Step {
                    setting: v.clone(),
                    scenario: Scenario {
                        name: format!("{slug}_{v}"),
                        description: format!("interactive_assistant at temperature {v}"),
                        output_tokens: [gen, gen],
                        ignore_eos: true,
                        temperature: Some(t),
                        ..base.clone()
                    },
                    threads: None,
                });
            }
        }
        StudyKind::Language | StudyKind::PromptType => {
            let file = prompts_file()?;
            let (sets, fixed) = match spec.kind {
                StudyKind::Language => (file.language, true),
                _ => (file.prompt_type, false),
            };
            for v in &values {
                let set = sets.iter().find(|s| s.code == *v).ok_or_else(|| {
                    let known: Vec<&str> = sets.iter().map(|s| s.code.as_str()).collect();
                    bad(
                        "values",
                        format!("{v:?}: unknown (known: {})", known.join(", ")),
                    )
                })?;
                let (outputs, ignore_eos) = if fixed {
                    let g = spec.max_tokens.unwrap_or(128);
                    ([g, g], true)
                } else {
                    let g = spec.max_tokens.unwrap_or(512);
                    ([g, g], false)
                };
                out.push(Step {
                    setting: v.clone(),
                    scenario: plain(format!("{slug}_{v}"), set, outputs, ignore_eos),
                    threads: None,
                });
            }
        }
        StudyKind::Threads => {
            let counts: Vec<u32> = if values.is_empty() {
                (1..=spec.cores.max(1)).collect()
            } else {
                values
                    .iter()
                    .map(|v| {
                        v.parse::<u32>()
                            .ok()
                            .filter(|n| (1..=1024).contains(n))
                            .ok_or_else(|| {
                                bad("values", format!("{v:?}: thread counts are 1 to 1024"))
                            })
                    })
                    .collect::<Result<_, _>>()?
            };
            let gen = spec.max_tokens.unwrap_or(128);
            for n in counts {
                out.push(Step {
                    setting: n.to_string(),
                    scenario: Scenario {
                        output_tokens: [gen, gen],
                        ignore_eos: true,
                        ..base.clone()
                    },
                    threads: Some(n),
                });
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = out.iter().find(|s| !seen.insert(s.setting.clone())) {
        return Err(bad("values", format!("{} is listed twice", dup.setting)));
    }
    Ok(out)
}

/// The model a threads step runs as: the study's model named with its thread count.
fn threads_model(model: &ModelInfo, n: u32) -> ModelInfo {
    let mut m = model.clone();
    m.name = format!(
        "{} @ {n} thread{}",
        model_label(&model.name, &model.quantization),
        if n == 1 { "" } else { "s" }
    );
    m
}

/// Puts the steps into the run plan: its scenarios, and for threads one model per count.
pub fn apply(plan: &mut PerfPlan, steps: &[Step]) -> Result<(), ExperimentError> {
    let mut scenarios: Vec<Scenario> = Vec::new();
    for s in steps {
        if !scenarios.iter().any(|x| x.name == s.scenario.name) {
            scenarios.push(s.scenario.clone());
        }
    }
    plan.file.scenarios = scenarios.clone();
    plan.scenarios = scenarios;
    plan.full = None;
    // The run's scenarios are the study's: a bare `run --resume` must not take it for a run.
    plan.request = None;
    let threaded: Vec<u32> = steps.iter().filter_map(|s| s.threads).collect();
    if threaded.is_empty() {
        return Ok(());
    }
    let Models::Given(given) = &mut plan.models else {
        return Err(bad(
            "endpoint",
            "the threads study sets the embedded engine's threads; a server sets its own".into(),
        ));
    };
    let Some((model, BackendSpec::Embedded(spec))) = given.first().cloned() else {
        return Err(bad(
            "endpoint",
            "the threads study runs on the embedded engine".into(),
        ));
    };
    *given = threaded
        .iter()
        .map(|&n| {
            let mut spec = spec.clone();
            spec.threads = n;
            (threads_model(&model, n), BackendSpec::Embedded(spec))
        })
        .collect();
    Ok(())
}

/// One step's figures (metrics over its measured requests, with their 95% CIs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRow {
    pub setting: String,
    pub scenario: String,
    pub model: String,
    pub requests: usize,
    pub successes: usize,
    pub prompt_tokens_mean: Option<f64>,
    pub ttft_ms: Option<MetricStats>,
    pub prefill_tokens_per_s: Option<MetricStats>,
    pub decode_tokens_per_s: Option<MetricStats>,
    pub output_tokens: Option<MetricStats>,
    pub peak_rss_mb: Option<f64>,
    /// Language: prompt tokens per character of the prompt's text, as the least-squares slope of
    /// prompt tokens on characters over the language's prompts (template and lead-in drop out;
    /// needs two prompts of different lengths, so `--runs 2` or more).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_per_char: Option<f64>,
}

/// `study_{kind}_{ts}.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepsStudy {
    pub kind: StudyKind,
    pub experiment: String,
    pub rows: Vec<StepRow>,
    /// Each step against the one before it.
    pub steps: Vec<StepTest>,
    /// Threads: the count with the highest decode rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best: Option<String>,
}

/// What the study produced.
#[derive(Debug)]
pub struct StepsOutcome {
    pub study: StepsStudy,
    pub written: Vec<PathBuf>,
}

/// The metric each study's chart and adjacent tests are about.
fn key_metric(kind: StudyKind) -> &'static str {
    match kind {
        StudyKind::Context => "prefill_tokens_per_s",
        StudyKind::PromptType => "output_tokens",
        _ => "decode_tokens_per_s",
    }
}

/// Runs the plan the steps were applied to, reads it back, and writes the study's files.
pub async fn run(
    kind: StudyKind,
    steps: &[Step],
    plan: PerfPlan,
    ctx: &Context,
) -> Result<StepsOutcome, ExperimentError> {
    let dir = plan.results_dir.clone();
    let store = plan.store.clone();
    ctx.events.event(Event::Info(format!(
        "{} study: {} steps, each a unit of one run experiment",
        kind.name(),
        steps.len()
    )));
    let p = perf::run(plan, ctx).await?;
    let id = p.summary.run_id.clone();
    let (_, input, rep) = super::read_back(&dir, store.as_ref(), std::slice::from_ref(&id))?;
    let first = p
        .summary
        .models
        .first()
        .map(|m| m.model.name.clone())
        .ok_or_else(|| super::read_error("the run measured no model"))?;
    let mut rows = Vec::new();
    for s in steps {
        // A threads step is the model the engine loaded with that many threads (see `apply`).
        let model = match s.threads {
            Some(n) => p
                .summary
                .models
                .iter()
                .find(|m| m.target.threads == Some(n))
                .map_or_else(|| first.clone(), |m| m.model.name.clone()),
            None => first.clone(),
        };
        let Some(r) = rep
            .performance
            .iter()
            .find(|r| r.scenario == s.scenario.name && r.model == model)
        else {
            continue;
        };
        let measured: Vec<_> = input
            .lines
            .iter()
            .filter(|l| l.model == model && l.scenario == s.scenario.name && !l.record.warmup)
            .collect();
        let prompt_tokens: Vec<f64> = measured
            .iter()
            .filter_map(|l| l.record.prompt_tokens)
            .map(|t| t as f64)
            .collect();
        let prompt_tokens_mean = (!prompt_tokens.is_empty())
            .then(|| prompt_tokens.iter().sum::<f64>() / prompt_tokens.len() as f64);
        // Language steps cycle through their prompts: measured request k asks prompt k mod n.
        // The slope of prompt tokens on the prompt's characters is the text's own cost: the chat
        // template and the lead-in, the same for every prompt, drop out.
        let prompt_tokens_per_char = (kind == StudyKind::Language)
            .then(|| {
                let ins = &s.scenario.instructions;
                let base = measured.iter().map(|l| l.record.index).min()?;
                let (chars, tokens): (Vec<f64>, Vec<f64>) = measured
                    .iter()
                    .filter_map(|l| {
                        let k = (l.record.index - base) as usize;
                        let t = l.record.prompt_tokens? as f64;
                        Some((ins[k % ins.len()].chars().count() as f64, t))
                    })
                    .unzip();
                crate::stats::ols_slope(&chars, &tokens)
            })
            .flatten();
        let m = |name: &str| r.metrics.get(name).cloned();
        rows.push(StepRow {
            setting: s.setting.clone(),
            scenario: s.scenario.name.clone(),
            model: model.clone(),
            requests: r.requests,
            successes: r.successes,
            prompt_tokens_mean,
            ttft_ms: m("ttft_ms"),
            prefill_tokens_per_s: m("prefill_tokens_per_s"),
            decode_tokens_per_s: m("decode_tokens_per_s"),
            output_tokens: m("output_tokens"),
            peak_rss_mb: r.peak_rss_mb,
            prompt_tokens_per_char,
        });
    }
    let defs: Vec<&compare::MetricDef> = [
        "ttft_ms",
        "prefill_tokens_per_s",
        "decode_tokens_per_s",
        "output_tokens",
    ]
    .iter()
    .filter_map(|n| compare::metric_def(n))
    .collect();
    let opts = CompareOptions::default();
    let mut tests = Vec::new();
    for pair in rows.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let lines = |r: &StepRow| -> Vec<&crate::results::PerfLine> {
            input
                .lines
                .iter()
                .filter(|l| l.model == r.model && l.scenario == r.scenario)
                .collect()
        };
        for m in compare::test_lines(&defs, &lines(a), &lines(b), &opts) {
            tests.push(StepTest::new(&a.setting, &b.setting, kind.name(), &m));
        }
    }
    let best = (kind == StudyKind::Threads)
        .then(|| {
            rows.iter()
                .filter_map(|r| r.decode_tokens_per_s.as_ref().map(|d| (r, d.mean)))
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(r, _)| r.setting.clone())
        })
        .flatten();
    let study = StepsStudy {
        kind,
        experiment: id,
        rows,
        steps: tests,
        best,
    };
    let mut written = p.written;
    written.extend(super::write_out(
        &dir,
        &kind.slug(),
        &study,
        table(&study),
        rep,
    )?);
    Ok(StepsOutcome { study, written })
}

fn stat(m: &Option<MetricStats>) -> String {
    match m {
        Some(m) => match (m.ci_low, m.ci_high) {
            (Some(lo), Some(hi)) => format!("{} [{}, {}]", num(m.mean), num(lo), num(hi)),
            _ => num(m.mean),
        },
        None => "-".into(),
    }
}

/// The study as the report's table and chart.
pub fn table(s: &StepsStudy) -> StudyTable {
    let setting = match s.kind {
        StudyKind::Context => "prompt tokens (target)",
        StudyKind::Temperature => "temperature",
        StudyKind::Language => "language",
        StudyKind::PromptType => "prompt type",
        StudyKind::Threads => "threads",
    };
    let mut head: Vec<String> = [
        setting,
        "n",
        "prompt_tokens (mean)",
        "ttft_ms [95% CI]",
        "prefill_tokens_per_s [95% CI]",
        "decode_tokens_per_s [95% CI]",
        "output_tokens [95% CI]",
        "peak_rss_mb",
    ]
    .iter()
    .map(|h| h.to_string())
    .collect();
    if s.kind == StudyKind::Language {
        head.push("prompt tokens per character".into());
    }
    let rows = s
        .rows
        .iter()
        .map(|r| {
            let mut row = vec![
                r.setting.clone(),
                format!("{}/{}", r.successes, r.requests),
                r.prompt_tokens_mean.map_or("-".into(), num),
                stat(&r.ttft_ms),
                stat(&r.prefill_tokens_per_s),
                stat(&r.decode_tokens_per_s),
                stat(&r.output_tokens),
                r.peak_rss_mb.map_or("-".into(), num),
            ];
            if s.kind == StudyKind::Language {
                row.push(
                    r.prompt_tokens_per_char
                        .map_or("-".into(), |v| format!("{v:.3}")),
                );
            }
            row
        })
        .collect();
    let metric = key_metric(s.kind);
    let mut notes = vec![format!(
        "Each step is a unit of run {}; each step is tested against the one before it on TTFT, \
         prefill and decode rates and output length (paired by prompt when both steps asked the same \
         prompts, else unpaired; the test `compare` chooses, \
         Holm-adjusted over those four): see study_{}_*.json.",
        s.experiment,
        s.kind.slug()
    )];
    for t in s.steps.iter().filter(|t| t.metric == metric) {
        if let (Some(c), Some(p)) = (t.relative_change, t.p_holm) {
            notes.push(format!(
                "{} → {}: {metric} {:+.1}% (p = {p:.3}, {}).",
                t.from,
                t.to,
                c * 100.0,
                t.test
            ));
        }
    }
    if let Some(b) = &s.best {
        notes.push(format!(
            "Best thread count here by decode rate: {b} (pass --threads {b})."
        ));
    }
    let bars = s
        .rows
        .iter()
        .filter_map(|r| {
            let m = match metric {
                "prefill_tokens_per_s" => r.prefill_tokens_per_s.as_ref(),
                "output_tokens" => r.output_tokens.as_ref(),
                _ => r.decode_tokens_per_s.as_ref(),
            }?;
            Some(StudyBar {
                label: r.setting.clone(),
                value: m.mean,
                ci: m.ci_low.zip(m.ci_high).map(|(a, b)| [a, b]),
            })
        })
        .collect();
    StudyTable {
        title: format!("Study: {}", s.kind.name()),
        head,
        rows,
        notes,
        chart: Some(StudyChart {
            title: format!("{metric} per {setting} (95% CI)"),
            unit: metric.to_string(),
            bars,
        }),
    }
}

/// The study as Markdown (the table and notes the report shows).
pub fn render(s: &StepsStudy) -> String {
    let mut b = Blocks::default();
    study_blocks(&mut b, &table(s));
    to_markdown(&b.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: StudyKind, values: &[&str]) -> StepsSpec {
        StepsSpec {
            kind,
            values: values.iter().map(|v| v.to_string()).collect(),
            max_ctx: None,
            fixed_ctx: None,
            max_tokens: None,
            cores: 2,
        }
    }

    fn settings(s: &StepsSpec, model_ctx: Option<u64>) -> Result<Vec<String>, String> {
        let file = ScenarioFile::default_file().unwrap();
        steps(s, &file, model_ctx)
            .map(|v| v.into_iter().map(|s| s.setting).collect())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn context_steps_double_then_reach_the_largest_prompt_that_fits() {
        let s = spec(StudyKind::Context, &[]);
        // 8192: 7616 + 64 output + 7616/16 for the last sentence = 8156 <= 8192 < 7680's 8224.
        assert_eq!(
            settings(&s, Some(8192)).unwrap(),
            ["512", "1024", "2048", "4096", "7616"]
        );
        // A model of 128k tokens is capped at 8192 unless --max-ctx asks for more.
        assert_eq!(settings(&s, Some(131_072)).unwrap().last().unwrap(), "7616");
        let fixed = StepsSpec {
            fixed_ctx: Some(2048),
            ..spec(StudyKind::Context, &[])
        };
        assert_eq!(
            settings(&fixed, Some(8192)).unwrap(),
            ["512", "1024", "1856"]
        );
        let over = StepsSpec {
            max_ctx: Some(16_384),
            ..spec(StudyKind::Context, &[])
        };
        let e = settings(&over, Some(8192)).unwrap_err();
        assert!(e.starts_with("max_ctx: 16384 is above"), "{e}");
        let e = settings(&spec(StudyKind::Context, &["8000"]), Some(8192)).unwrap_err();
        assert!(e.contains("from 16 to 7616"), "{e}");
    }

    #[test]
    fn steps_are_named_by_their_setting_and_refused_twice() {
        let t = settings(&spec(StudyKind::Temperature, &[]), None).unwrap();
        assert_eq!(t, ["0.25", "0.5", "0.75"]);
        let e = settings(&spec(StudyKind::Threads, &["2", "2"]), None).unwrap_err();
        assert_eq!(e, "values: 2 is listed twice");
        let l = settings(&spec(StudyKind::Language, &[]), None).unwrap();
        assert_eq!(l, ["en", "fr", "zh", "es", "de", "ar"]);
        // Every language asks the same number of prompts, in the same order.
        let file = prompts_file().unwrap();
        assert!(file.language.iter().all(|s| s.prompts.len() == 6));
        assert!(file.prompt_type.iter().all(|s| s.prompts.len() == 5));
    }
}
