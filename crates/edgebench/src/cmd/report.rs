//! `edgebench report` and `edgebench compliance`: read a results folder, write report files.

use std::process::ExitCode;

use anyhow::Context;
use edgebench_core::compliance;
use edgebench_core::report::{self, markdown};
use edgebench_core::results::machines;

use crate::args::{ComplianceArgs, ReportArgs};

/// The report's time: `SOURCE_DATE_EPOCH` when set (reproducible outputs), else now.
fn generated() -> anyhow::Result<time::OffsetDateTime> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) => {
            let secs: i64 = s
                .trim()
                .parse()
                .with_context(|| format!("SOURCE_DATE_EPOCH={s:?} is not a number of seconds"))?;
            Ok(time::OffsetDateTime::from_unix_timestamp(secs)?)
        }
        Err(_) => Ok(time::OffsetDateTime::now_utc()),
    }
}

pub fn report(a: ReportArgs) -> anyhow::Result<ExitCode> {
    let formats = report::parse_formats(&a.format)?;
    let store = match &a.store {
        Some(url) => {
            let location = edgebench_core::store::StoreLocation::parse(url);
            Some(
                edgebench_core::results::ResultsFolder::open_store(&location)
                    .with_context(|| format!("--store {}", location.shown()))?,
            )
        }
        None => None,
    };
    let input = match &store {
        Some(folder) => report::load_from(folder)?,
        None => report::load(&a.input)?,
    };
    let mut r = report::build(&input, generated()?);
    let opts = edgebench_core::compare::CompareOptions::default();
    r.machines = if !a.machines.is_empty() {
        let sets = machines::load_specs(&a.machines, store.as_ref())
            .map_err(|e| anyhow::anyhow!("--machines {e}"))?;
        Some(machines::compare(&sets, &opts))
    } else if let Some(folder) = &store {
        machines::store_comparison(folder, &opts)?
    } else {
        None
    };
    if a.compliance {
        r.compliance = Some(compliance::analyse(&input, &r.generated)?);
    }
    for path in report::write(&r, &a.output, &formats)? {
        eprintln!("wrote {}", path.display());
    }
    if a.community {
        print!("{}", markdown::community_table(&r));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn compliance(a: ComplianceArgs) -> anyhow::Result<ExitCode> {
    let input = report::load(&a.input)?;
    let now = generated()?;
    let rfc3339 = now.format(&time::format_description::well_known::Rfc3339)?;
    let c = compliance::analyse(&input, &rfc3339)?;
    for path in compliance::write(&c, &a.output, &edgebench_core::results::file_timestamp(now))? {
        eprintln!("wrote {}", path.display());
    }
    print!("{}", markdown::compliance_section(&c));
    Ok(ExitCode::SUCCESS)
}
