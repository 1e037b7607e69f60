//! `edgebench compare`: two result sets side by side, with significance and a decision.

use std::process::ExitCode;

use edgebench_core::compare::{self, CompareOptions, Criteria, Verdict};
use edgebench_core::report::compare_md;

use crate::args::CompareArgs;

/// Exit code 0 when the decision is to apply (with or without monitoring), 1 when the baseline is
/// kept (a gate failed); `--all` exits 0 once every pair is compared.
pub fn compare(a: CompareArgs) -> anyhow::Result<ExitCode> {
    let criteria = match &a.criteria {
        Some(p) => Criteria::load(p)?,
        None => Criteria::default(),
    };
    let opts = CompareOptions {
        seed: a.seed,
        ..CompareOptions::default()
    };
    let baseline = compare::load(&a.baseline, &a.results)?;
    let Some(candidate) = &a.candidate else {
        let all = compare::compare_all(&baseline, &criteria, &opts)?;
        if a.json {
            println!("{}", serde_json::to_string_pretty(&all)?);
        } else {
            print!("{}", compare_md::render_all(&all));
        }
        return Ok(ExitCode::SUCCESS);
    };
    let candidate = compare::load(candidate, &a.results)?;
    let cmp = compare::compare(&baseline, &candidate, &criteria, &opts)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&cmp)?);
    } else {
        print!("{}", compare_md::render(&cmp));
    }
    Ok(match cmp.decision.verdict {
        Verdict::KeepBaseline => ExitCode::from(1),
        Verdict::Apply | Verdict::ApplyWithMonitoring => ExitCode::SUCCESS,
    })
}
