//! The quantization study: one source GGUF written as each requested type through the engine's
//! own quantization (cached by the source's SHA-256 and the type), every type measured for speed
//! in one run experiment and scored in one eval experiment, then read back through the one
//! results reader: per type size, load time, memory, prefill and decode rates and accuracy, the
//! types on the accuracy-vs-speed frontier, and a test between each pair of adjacent types
//! (`study_quant_{ts}.json`, and the report with its frontier chart).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::catalog::{self, gguf, ModelInfo};
use crate::compare::{self, CompareOptions, Criteria, MetricComparison, ResultSet};
use crate::eval::Score;
use crate::experiment::eval::{self, EvalModels, EvalPlan};
use crate::experiment::perf::{self, Models, PerfPlan};
use crate::experiment::{Context, Event, ExperimentError, QuantizeJob};
use crate::report;
use crate::report::document::{model_label, StudyTable};
use crate::report::layout::{to_markdown, Blocks};
use crate::report::markdown::{num, score_ci, study_blocks};

/// The types a study writes unless told otherwise, largest first.
pub const DEFAULT_TYPES: &[&str] = &["Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "Q3_K_M", "Q2_K"];

/// Sources a real study starts from: quantizing them loses only what the target type loses.
pub const SOURCE_TYPES: &[&str] = &["F32", "F16", "BF16", "Q8_0"];

/// Types the study writes: the legacy, k-quant and 4-bit non-linear types and the 16-bit floats.
/// The others (IQ1/IQ2/IQ3, Q2_K_S) need an importance matrix the study does not compute.
pub const WRITABLE_TYPES: &[&str] = &[
    "F16", "BF16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q5_1", "Q5_0", "Q4_K_M", "Q4_K_S", "Q4_1",
    "Q4_0", "IQ4_NL", "IQ4_XS", "Q3_K_L", "Q3_K_M", "Q3_K_S", "Q2_K",
];

/// What to quantize, and where the files are kept.
#[derive(Debug, Clone)]
pub struct QuantSpec {
    pub source: PathBuf,
    /// Quantization names (`Q4_K_M`); empty: [`DEFAULT_TYPES`].
    pub types: Vec<String>,
    /// Quantize a source that is already quantized below [`SOURCE_TYPES`].
    pub allow_requantize: bool,
    pub threads: u32,
    /// `{cache}/{sha256 prefix of the source}/{name}.{TYPE}.gguf`.
    pub cache_dir: PathBuf,
}

/// The quantized-file cache: `$EDGEBENCH_HOME/quant`, default `~/.cache/edgebench/quant`.
pub fn default_cache_dir() -> PathBuf {
    catalog::home_dir().join("quant")
}

fn bad(field: &str, why: String) -> ExperimentError {
    ExperimentError::Plan(format!("{field}: {why}"))
}

/// Checks the source and the types before anything runs: the source's facts and each type with
/// its llama.cpp file type, in the order given.
pub fn check(spec: &QuantSpec) -> Result<(ModelInfo, Vec<(String, u64)>), ExperimentError> {
    let source = catalog::model_info(&spec.source, None)
        .map_err(|e| bad("models", format!("{}: {e}", spec.source.display())))?;
    let names: Vec<String> = if spec.types.is_empty() {
        DEFAULT_TYPES.iter().map(|t| t.to_string()).collect()
    } else {
        spec.types.clone()
    };
    let mut types: Vec<(String, u64)> = Vec::new();
    for n in &names {
        let upper = n.trim().to_ascii_uppercase();
        let code = gguf::file_type_code(&upper)
            .filter(|_| WRITABLE_TYPES.contains(&upper.as_str()))
            .ok_or_else(|| {
                bad(
                    "types",
                    format!(
                        "{n:?} is not a type the study writes (one of {}; IQ1-IQ3 and Q2_K_S need \
                         an importance matrix)",
                        WRITABLE_TYPES.join(", ")
                    ),
                )
            })?;
        if types.iter().any(|(t, _)| *t == upper) {
            return Err(bad("types", format!("{upper} is listed twice")));
        }
        types.push((upper, code));
    }
    if !spec.allow_requantize && !SOURCE_TYPES.contains(&source.quantization.as_str()) {
        return Err(bad(
            "allow_requantize",
            format!(
                "{} is already {}: quantizing it again compounds the loss; start from {} \
                 (or pass --allow-requantize for a quick look)",
                spec.source.display(),
                source.quantization,
                SOURCE_TYPES.join(", ")
            ),
        ));
    }
    Ok((source, types))
}

/// The source's file name without its extension and its own quantization suffix.
fn base_stem(source: &ModelInfo) -> String {
    let stem = source
        .path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let q = source.quantization.to_ascii_lowercase();
    let lower = stem.to_ascii_lowercase();
    for sep in ['.', '-', '_'] {
        if let Some(cut) = lower.strip_suffix(&format!("{sep}{q}")) {
            return stem[..cut.len()].to_string();
        }
    }
    stem
}

/// The quantized models, written where the cache lacks them, each named by the source's name and
/// its type (so results tell them apart everywhere).
pub async fn prepare(spec: &QuantSpec, ctx: &Context) -> Result<Vec<ModelInfo>, ExperimentError> {
    let (source, types) = check(spec)?;
    let path = spec.source.clone();
    let sha = tokio::task::spawn_blocking(move || catalog::sha256_file(&path))
        .await
        .map_err(|e| ExperimentError::Engine(e.to_string()))?
        .map_err(|e| ExperimentError::io(&spec.source, e))?;
    let folder = spec.cache_dir.join(&sha[..16]);
    std::fs::create_dir_all(&folder)
        .map_err(|e| bad("cache_dir", format!("{}: {e}", folder.display())))?;
    let stem = base_stem(&source);
    let mut out = Vec::with_capacity(types.len());
    for (name, code) in types {
        if ctx.cancel.is_cancelled() {
            return Err(ExperimentError::Interrupted);
        }
        let file = folder.join(format!("{stem}.{name}.gguf"));
        if file.is_file() {
            ctx.events.event(Event::Info(format!(
                "quant: {name} from the cache ({})",
                file.display()
            )));
        } else {
            ctx.events.event(Event::Info(format!(
                "quant: writing {name} from {} ...",
                spec.source.display()
            )));
            let started = std::time::Instant::now();
            // `check` has decided what may be quantized (a Q8_0 source always, a lower one with
            // --allow-requantize); llama.cpp itself refuses any quantized source without this.
            let job = QuantizeJob {
                source: spec.source.clone(),
                output: file.clone(),
                file_type: code,
                allow_requantize: true,
                threads: spec.threads,
            };
            ctx.engine
                .quantize(&job)
                .await
                .map_err(ExperimentError::Engine)?;
            ctx.events.event(Event::Info(format!(
                "quant: {name} written in {:.1} s ({})",
                started.elapsed().as_secs_f64(),
                file.display()
            )));
        }
        let mut info = catalog::model_info(&file, None).map_err(|e| {
            bad(
                "cache_dir",
                format!("{}: {e} (delete it to quantize again)", file.display()),
            )
        })?;
        if info.quantization != name {
            return Err(bad(
                "cache_dir",
                format!(
                    "{} is {}, not {name} (delete it to quantize again)",
                    file.display(),
                    info.quantization
                ),
            ));
        }
        info.name = model_label(&source.name, &info.quantization);
        info.license = info.license.or_else(|| source.license.clone());
        out.push(info);
    }
    Ok(out)
}

/// Pre-quantized files compared as they are: each named by its name and type, which must tell
/// them apart.
pub fn as_given(models: Vec<ModelInfo>) -> Result<Vec<ModelInfo>, ExperimentError> {
    let mut out: Vec<ModelInfo> = Vec::with_capacity(models.len());
    for mut m in models {
        m.name = model_label(&m.name, &m.quantization);
        if out.iter().any(|o| o.name == m.name) {
            return Err(bad(
                "models",
                format!("{} is given twice (same name and type)", m.name),
            ));
        }
        out.push(m);
    }
    Ok(out)
}

/// Puts the study's models into the two plans: the run measures each type, the eval scores it.
pub fn set_models(perf: &mut PerfPlan, eval: &mut EvalPlan, models: &[ModelInfo]) {
    if let Models::Given(given) = &mut perf.models {
        if let Some((_, spec)) = given.first().cloned() {
            *given = models.iter().map(|m| (m.clone(), spec.clone())).collect();
        }
    }
    if let EvalModels::Embedded(list, _) = &mut eval.models {
        *list = models.to_vec();
    }
}

/// One type's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantRow {
    pub quantization: String,
    /// The model's label in the results (source name and type).
    pub model: String,
    pub file: String,
    pub file_size_bytes: u64,
    pub model_load_ms: Option<f64>,
    pub rss_after_load_mb: Option<f64>,
    /// Pooled means over the run's scenarios (requests behind them in `decode_n`).
    pub prefill_tokens_per_s: Option<f64>,
    pub decode_tokens_per_s: Option<f64>,
    pub decode_n: usize,
    /// Accuracy per eval task, with its 95% CI.
    pub accuracy: BTreeMap<String, Score>,
    /// The tasks on whose accuracy-vs-decode frontier this type lies.
    pub frontier: Vec<String>,
}

/// A type against the one before it in the study's order, on one metric, by `compare`'s tests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepTest {
    pub from: String,
    pub to: String,
    /// A scenario, or `eval:TASK`.
    pub scenario: String,
    pub metric: String,
    pub baseline: f64,
    pub candidate: f64,
    pub relative_change: Option<f64>,
    pub change_ci: Option<[f64; 2]>,
    pub test: String,
    /// Holm-adjusted within the pair.
    pub p_holm: Option<f64>,
}

impl StepTest {
    /// `to` against `from` on `scenario`, as a comparison's metric row has it.
    pub fn new(from: &str, to: &str, scenario: &str, m: &MetricComparison) -> Self {
        Self {
            from: from.to_string(),
            to: to.to_string(),
            scenario: scenario.to_string(),
            metric: m.metric.clone(),
            baseline: m.baseline,
            candidate: m.candidate,
            relative_change: m.relative_change,
            change_ci: m.change_ci,
            test: m.test.clone(),
            p_holm: m.p_holm,
        }
    }
}

/// `study_quant_{ts}.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantStudy {
    pub source: String,
    pub source_quantization: String,
    pub perf_experiment: String,
    pub eval_experiment: String,
    pub rows: Vec<QuantRow>,
    pub steps: Vec<StepTest>,
}

/// What the study produced.
#[derive(Debug)]
pub struct QuantOutcome {
    pub study: QuantStudy,
    pub written: Vec<PathBuf>,
}

/// Runs the speed experiment, then the accuracy one, then reads both back and writes the study's
/// file and report (Markdown and HTML, the frontier chart in the HTML).
pub async fn run(
    source: &ModelInfo,
    perf_plan: PerfPlan,
    eval_plan: EvalPlan,
    ctx: &Context,
) -> Result<QuantOutcome, ExperimentError> {
    let dir = perf_plan.results_dir.clone();
    let store = perf_plan.store.clone();
    ctx.events.event(Event::Info(
        "quant study: the speed of each type (one run experiment)".into(),
    ));
    let p = perf::run(perf_plan, ctx).await?;
    ctx.events.event(Event::Info(
        "quant study: the accuracy of each type (one eval experiment)".into(),
    ));
    let e = eval::run(eval_plan, ctx).await?;
    let eval_id = e
        .summaries
        .first()
        .map(|s| s.experiment_id.clone())
        .ok_or_else(|| ExperimentError::Plan("the eval scored nothing".into()))?;
    let ids = [p.summary.run_id.clone(), eval_id.clone()];
    let (folder, _, rep) = super::read_back(&dir, store.as_ref(), &ids)?;
    let rows = rows(&p.summary.models, &rep);
    let mut set = compare::load_stored(&ids[0], &folder).map_err(super::read_error)?;
    let evals = compare::load_stored(&ids[1], &folder).map_err(super::read_error)?;
    set.evals = evals.evals;
    let steps = steps(&set, &rows, ctx);
    let study = QuantStudy {
        source: source.path.display().to_string(),
        source_quantization: source.quantization.clone(),
        perf_experiment: ids[0].clone(),
        eval_experiment: ids[1].clone(),
        rows,
        steps,
    };
    let mut written = p.written;
    written.extend(e.written);
    written.extend(super::write_out(&dir, "quant", &study, table(&study), rep)?);
    Ok(QuantOutcome { study, written })
}

/// The per-type rows, in the run's model order.
fn rows(models: &[crate::results::ModelReport], rep: &report::Report) -> Vec<QuantRow> {
    models
        .iter()
        .map(|m| {
            let mine =
                |model: &str, quant: &str| model == m.model.name && quant == m.model.quantization;
            let perf: Vec<_> = rep
                .performance
                .iter()
                .filter(|r| mine(&r.model, &r.quantization))
                .collect();
            let pooled = |metric: &str| {
                let (sum, n) = perf
                    .iter()
                    .filter_map(|r| r.metrics.get(metric))
                    .fold((0.0, 0usize), |(s, n), x| {
                        (s + x.mean * x.n as f64, n + x.n)
                    });
                ((n > 0).then(|| sum / n as f64), n)
            };
            let (decode, decode_n) = pooled("decode_tokens_per_s");
            let points: Vec<_> = rep
                .tradeoff
                .iter()
                .filter(|t| mine(&t.model, &t.quantization))
                .collect();
            QuantRow {
                quantization: m.model.quantization.clone(),
                model: m.model.name.clone(),
                file: m.model.path.display().to_string(),
                file_size_bytes: m.model.file_size_bytes,
                model_load_ms: m.target.model_load_ms,
                rss_after_load_mb: m.target.rss_after_load_mb,
                prefill_tokens_per_s: pooled("prefill_tokens_per_s").0,
                decode_tokens_per_s: decode,
                decode_n,
                accuracy: points
                    .iter()
                    .map(|t| (t.task.clone(), t.accuracy.clone()))
                    .collect(),
                frontier: points
                    .iter()
                    .filter(|t| t.frontier)
                    .map(|t| t.task.clone())
                    .collect(),
            }
        })
        .collect()
}

/// Each type against the previous one: decode rate per scenario and accuracy per task, with the
/// test `compare` chooses and Holm's correction over all of the pair's metrics (the rows kept
/// are a part of that family, so the adjustment is conservative). A pair that cannot be compared
/// is a warning, not the end of the study.
fn steps(set: &ResultSet, rows: &[QuantRow], ctx: &Context) -> Vec<StepTest> {
    let mut out = Vec::new();
    for pair in rows.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let c = match compare::compare(
            &set.only_model(&a.model),
            &set.only_model(&b.model),
            &Criteria::default(),
            &CompareOptions::default(),
        ) {
            Ok(c) => c,
            Err(e) => {
                ctx.events.event(Event::Warning(format!(
                    "{} vs {}: not tested ({e})",
                    a.quantization, b.quantization
                )));
                continue;
            }
        };
        for s in &c.scenarios {
            for m in &s.metrics {
                if m.metric != "decode_tokens_per_s" && m.metric != "accuracy" {
                    continue;
                }
                out.push(StepTest::new(
                    &a.quantization,
                    &b.quantization,
                    &s.scenario,
                    m,
                ));
            }
        }
    }
    out
}

/// The per-type table as the report shows it (the frontier chart is the report's trade-off chart).
pub fn table(s: &QuantStudy) -> StudyTable {
    let opt = |v: Option<f64>| v.map_or("-".to_string(), num);
    let rows = s
        .rows
        .iter()
        .map(|r| {
            let acc: Vec<String> = r
                .accuracy
                .iter()
                .map(|(task, a)| format!("{task} {}", score_ci(a.value, a.ci_low, a.ci_high)))
                .collect();
            vec![
                r.quantization.clone(),
                num(r.file_size_bytes as f64 / 1e6),
                opt(r.model_load_ms),
                opt(r.rss_after_load_mb),
                opt(r.prefill_tokens_per_s),
                opt(r.decode_tokens_per_s),
                acc.join("; "),
                if r.frontier.is_empty() {
                    "-".to_string()
                } else {
                    format!("yes ({})", r.frontier.join(", "))
                },
            ]
        })
        .collect();
    StudyTable {
        title: format!("Study: quantization of {}", s.source),
        head: [
            "type",
            "size_mb",
            "model_load_ms",
            "rss_after_load_mb",
            "prefill_tokens_per_s",
            "decode_tokens_per_s",
            "accuracy [95% CI]",
            "frontier",
        ]
        .iter()
        .map(|h| h.to_string())
        .collect(),
        rows,
        notes: vec![format!(
            "Speed: run {}; accuracy: eval {}. Frontier: no other type at least as accurate and \
             as fast on that task and better on one (point estimates). Adjacent-type tests \
             (Holm over all of each pair's metrics): study_quant_*.json.",
            s.perf_experiment, s.eval_experiment
        )],
        chart: None,
    }
}

/// The study as Markdown: the per-type table, then the adjacent-type tests.
pub fn render(s: &QuantStudy) -> String {
    let mut b = Blocks::default();
    study_blocks(&mut b, &table(s));
    b.heading(2, "Each type against the previous one");
    let t = b.table(
        &[
            "from",
            "to",
            "scenario",
            "metric",
            "change [95% CI]",
            "test",
            "p (Holm)",
        ],
        "llllrll",
    );
    for x in &s.steps {
        let change = match (x.relative_change, x.change_ci) {
            (Some(c), Some([lo, hi])) => format!(
                "{:+.1}% [{:+.1}%, {:+.1}%]",
                c * 100.0,
                lo * 100.0,
                hi * 100.0
            ),
            (Some(c), None) => format!("{:+.1}%", c * 100.0),
            _ => "-".into(),
        };
        t.row(vec![
            x.from.clone().into(),
            x.to.clone().into(),
            x.scenario.clone().into(),
            x.metric.clone().into(),
            change.into(),
            x.test.clone().into(),
            crate::report::markdown::p(x.p_holm).into(),
        ]);
    }
    to_markdown(&b.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(path: &str, quant: &str) -> ModelInfo {
        ModelInfo {
            path: path.into(),
            key: None,
            name: "M".into(),
            publisher: String::new(),
            format: "GGUF".into(),
            quantization: quant.into(),
            architecture: "llama".into(),
            parameters: 1,
            context_length: None,
            license: None,
            has_chat_template: true,
            file_size_bytes: 1,
        }
    }

    #[test]
    fn the_source_suffix_is_dropped_from_the_cached_names() {
        assert_eq!(
            base_stem(&info("/m/SmolLM2-135M.Q4_1.gguf", "Q4_1")),
            "SmolLM2-135M"
        );
        assert_eq!(base_stem(&info("/m/model-f16.gguf", "F16")), "model");
        assert_eq!(base_stem(&info("/m/plain.gguf", "BF16")), "plain");
    }

    #[test]
    fn a_missing_source_is_named_and_type_names_map_to_llama_ftypes() {
        let spec = |types: &[&str], allow: bool| QuantSpec {
            source: PathBuf::from("/nonexistent/model.gguf"),
            types: types.iter().map(|t| t.to_string()).collect(),
            allow_requantize: allow,
            threads: 1,
            cache_dir: PathBuf::from("/tmp"),
        };
        let e = check(&spec(&["Q4_K_M"], false)).unwrap_err().to_string();
        assert!(e.starts_with("models: "), "{e}");
        assert_eq!(gguf::file_type_code("q4_k_m"), Some(15));
        assert_eq!(gguf::file_type_code("Q9_9"), None);
    }
}
