//! The FP8 KV-cache calibration A/B study: the same managed server run twice, as configured
//! (baseline) and with `--calculate-kv-scales` (calibrated), the study's three warnings counted
//! over each server's whole log, compared with the study's criteria, and written under the file
//! names the study's users know (`benchmark_fp8_baseline_*.json`,
//! `benchmark_fp8_calibrated_*.json`, `fp8_comparison_*.json` with its `recommendations`).

use std::path::PathBuf;

use crate::compare::{self, CompareOptions, Comparison, Criteria, FP8_WARNINGS};
use crate::experiment::perf::{self, PerfPlan};
use crate::experiment::request::RunRequest;
use crate::experiment::{Context, Event, ExperimentError};
use crate::results::{atomic_write, file_timestamp, RunSummary};

/// The flag vLLM calibrates FP8 scales with.
pub const CALIBRATE_FLAG: &str = "--calculate-kv-scales";

/// The two sides of the study as run requests: the baseline is `base` with the study's warning
/// patterns added to its `--log-pattern`s; the calibrated side runs `calibrated_serve`, or the
/// baseline's `--serve` command with [`CALIBRATE_FLAG`] appended.
pub fn requests(
    base: &RunRequest,
    calibrated_serve: Option<&str>,
) -> Result<[RunRequest; 2], ExperimentError> {
    let plan = |m: &str| ExperimentError::Plan(m.to_string());
    let Some(serve) = base.serve.as_deref() else {
        return Err(plan(
            "serve: the FP8 study starts the server twice, as configured and with \
             --calculate-kv-scales; give the baseline's command with --serve",
        ));
    };
    if serve.contains(CALIBRATE_FLAG) {
        return Err(plan(&format!(
            "serve: the baseline command already has {CALIBRATE_FLAG}; give the command without it"
        )));
    }
    if base.resume.is_some() {
        return Err(plan(
            "resume: a study runs two new experiments; resume either one with `edgebench run --resume ID`",
        ));
    }
    let mut baseline = base.clone();
    for w in FP8_WARNINGS {
        let p = regex::escape(w);
        if !baseline.log_patterns.contains(&p) {
            baseline.log_patterns.push(p);
        }
    }
    let mut calibrated = baseline.clone();
    calibrated.serve = Some(match calibrated_serve {
        Some(c) => c.to_string(),
        None => format!("{serve} {CALIBRATE_FLAG}"),
    });
    Ok([baseline, calibrated])
}

/// What the study produced.
#[derive(Debug)]
pub struct Fp8Outcome {
    pub baseline: RunSummary,
    pub calibrated: RunSummary,
    pub comparison: Comparison,
    /// Every file written, the two runs' own files included.
    pub written: Vec<PathBuf>,
    /// The three study files: baseline, calibrated, comparison.
    pub study_files: [PathBuf; 3],
}

/// Runs the baseline plan, then the calibrated one, then compares them by `criteria` (the
/// study's, [`Criteria::fp8_kv`], unless given) and writes the study's files.
pub async fn run(
    plans: [PerfPlan; 2],
    criteria: &Criteria,
    ctx: &Context,
) -> Result<Fp8Outcome, ExperimentError> {
    let [b_plan, c_plan] = plans;
    let dir = b_plan.results_dir.clone();
    ctx.events.event(Event::Info(
        "FP8 study: baseline run (the server as configured)".into(),
    ));
    let b = perf::run(b_plan, ctx).await?;
    ctx.events.event(Event::Info(format!(
        "FP8 study: calibrated run (the server with {CALIBRATE_FLAG})"
    )));
    let c = perf::run(c_plan, ctx).await?;
    let load = |id: &str| {
        compare::load(id, &dir).map_err(|e| ExperimentError::Plan(format!("comparison: {e}")))
    };
    let mut bs = load(&b.summary.run_id)?;
    let mut cs = load(&c.summary.run_id)?;
    bs.label = format!("baseline ({})", b.summary.run_id);
    cs.label = format!("calibrated ({})", c.summary.run_id);
    let comparison = compare::compare(&bs, &cs, criteria, &CompareOptions::default())
        .map_err(|e| ExperimentError::Plan(format!("comparison: {e}")))?;
    let ts = file_timestamp(time::OffsetDateTime::now_utc());
    let files = [
        dir.join(format!("benchmark_fp8_baseline_{ts}.json")),
        dir.join(format!("benchmark_fp8_calibrated_{ts}.json")),
        dir.join(format!("fp8_comparison_{ts}.json")),
    ];
    let docs = [
        serde_json::to_vec_pretty(&b.summary),
        serde_json::to_vec_pretty(&c.summary),
        serde_json::to_vec_pretty(&comparison),
    ];
    for (path, bytes) in files.iter().zip(docs) {
        let bytes = bytes.map_err(|e| ExperimentError::io(path, e))?;
        atomic_write(path, &bytes).map_err(|e| ExperimentError::io(path, e))?;
    }
    let mut written = b.written;
    written.extend(c.written);
    written.extend(files.iter().cloned());
    Ok(Fp8Outcome {
        baseline: b.summary,
        calibrated: c.summary,
        comparison,
        written,
        study_files: files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> RunRequest {
        RunRequest {
            serve: Some("exec vllm serve m --kv-cache-dtype fp8".into()),
            ..RunRequest::default()
        }
    }

    #[test]
    fn the_calibrated_side_adds_the_flag_and_both_count_the_warnings() {
        let [b, c] = requests(&base(), None).unwrap();
        assert_eq!(
            c.serve.as_deref(),
            Some("exec vllm serve m --kv-cache-dtype fp8 --calculate-kv-scales")
        );
        assert_eq!(b.serve, base().serve);
        assert_eq!(b.log_patterns.len(), 3);
        assert_eq!(b.log_patterns, c.log_patterns);
        let [_, c] = requests(&base(), Some("docker compose up calibrated")).unwrap();
        assert_eq!(c.serve.as_deref(), Some("docker compose up calibrated"));
    }

    #[test]
    fn no_server_command_or_one_already_calibrated_is_refused_naming_serve() {
        let e = requests(&RunRequest::default(), None).unwrap_err();
        assert!(e.to_string().contains("serve"), "{e}");
        let mut r = base();
        r.serve = Some("vllm serve m --calculate-kv-scales".into());
        assert!(requests(&r, None)
            .unwrap_err()
            .to_string()
            .contains("already"));
    }
}
