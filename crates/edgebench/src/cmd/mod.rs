//! Subcommands, and how errors become exit codes (2 for usage and input errors, 130 when interrupted).

mod compare;
mod eval;
mod hw;
mod models;
mod report;
mod results;
mod run;

use std::process::ExitCode;

use crate::args::{Cli, Command};

/// Stores the machine as this invocation found it (each resume adds one).
pub(crate) fn snapshot_hardware(
    store: &edgebench_core::store::Store,
    experiment: &str,
    environment: &edgebench_core::repro::Environment,
) -> anyhow::Result<()> {
    let taken = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let json = serde_json::to_string(&environment.hardware)?;
    store.add_hardware_snapshot(experiment, &taken, &json)?;
    Ok(())
}

/// The run was interrupted (Ctrl-C): exit 130.
#[derive(Debug)]
pub struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}

pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(a) => run::run(*a),
        Command::Eval(a) => eval::eval(*a),
        Command::Compare(a) => compare::compare(a),
        Command::Report(a) => report::report(a),
        Command::Hw { command } => hw::hw(command),
        Command::Compliance(a) => report::compliance(a),
        Command::Models { command } => models::models(command),
        Command::Results { results, command } => results::results(&results, command),
    }
}

/// Prints a one-line error and returns its exit code.
pub fn report_error(e: &anyhow::Error) -> ExitCode {
    if e.downcast_ref::<Interrupted>().is_some() {
        return ExitCode::from(130);
    }
    eprintln!("error: {e:#}");
    ExitCode::from(2)
}
