//! Subcommands, and how errors become exit codes (2 for usage and input errors, 130 when interrupted).

mod compare;
mod eval;
mod fleet;
mod hw;
mod infer;
mod models;
mod render;
mod report;
mod results;
mod run;
mod serve;
mod study;
mod sync;

use std::process::ExitCode;

use crate::args::{Cli, Command};

/// Runs a command's async body on the runtime every async command uses (two workers).
fn block_on<F: std::future::Future<Output = anyhow::Result<ExitCode>>>(
    body: F,
) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(body)
}

/// Connects to the store a `--store URL` names; errors name the flag (password hidden).
fn connect_store(url: &str) -> anyhow::Result<edgebench_core::store::Store> {
    use anyhow::Context;
    let location = edgebench_core::store::StoreLocation::parse(url);
    edgebench_core::store::Store::connect(&location)
        .with_context(|| format!("--store {}", location.shown()))
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
        Command::Results {
            results,
            store,
            command,
        } => results::results(&results, store.as_deref(), command),
        Command::Push(a) => sync::push(a),
        Command::Pull(a) => sync::pull(a),
        Command::Import(a) => sync::import(a),
        Command::Serve(a) => serve::serve(a),
        Command::Queue { store, command } => fleet::queue(store.as_deref(), command),
        Command::Agent(a) => fleet::agent(a),
        Command::Study { kind } => study::study(kind),
        Command::BenchInfer(a) => infer::bench_infer(*a),
    }
}

/// The arguments the user typed (not defaults) of the subcommand, by clap id (field name).
static EXPLICIT: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();

/// Remembers which arguments of the (innermost) subcommand were typed on the command line.
pub fn remember_explicit(m: &clap::ArgMatches) {
    let mut sub = m;
    while let Some((_, next)) = sub.subcommand() {
        sub = next;
    }
    let typed = sub
        .ids()
        .filter(|id| sub.value_source(id.as_str()) == Some(clap::parser::ValueSource::CommandLine))
        .map(|id| id.as_str().to_string())
        .collect();
    let _ = EXPLICIT.set(typed);
}

/// Whether the argument with this clap id was typed on the command line.
pub(crate) fn typed(id: &str) -> bool {
    EXPLICIT.get().is_some_and(|t| t.iter().any(|x| x == id))
}

/// Prints a one-line error and returns its exit code.
/// A command line clap refused: one line naming the flag or value, exit 2 (help and version
/// print as usual and exit 0).
pub fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    eprintln!("{}", usage_line(&e.render().to_string()));
    ExitCode::from(2)
}

/// clap's message on one line: its first line (`error: ...`) with the usage and the help hint
/// dropped, and any tip folded in.
fn usage_line(rendered: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for line in rendered.lines().map(str::trim) {
        if line.is_empty() || line.starts_with("For more information") {
            continue;
        }
        if line.starts_with("Usage:") {
            break;
        }
        parts.push(line);
    }
    parts.join(" ")
}

pub fn report_error(e: &anyhow::Error) -> ExitCode {
    if e.downcast_ref::<Interrupted>().is_some() {
        return ExitCode::from(130);
    }
    eprintln!("error: {e:#}");
    ExitCode::from(2)
}

#[cfg(test)]
mod tests {
    use super::usage_line;

    #[test]
    fn clap_errors_fold_to_one_line() {
        let rendered = "error: invalid value '0' for '--runs <RUNS>': 0 is not in 1..=4294967295\n\nFor more information, try '--help'.\n";
        assert_eq!(
            usage_line(rendered),
            "error: invalid value '0' for '--runs <RUNS>': 0 is not in 1..=4294967295"
        );
        let rendered = "error: unexpected argument '--nope' found\n\n  tip: to pass '--nope' as a value, use '-- --nope'\n\nUsage: edgebench run [OPTIONS]\n\nFor more information, try '--help'.\n";
        assert_eq!(
            usage_line(rendered),
            "error: unexpected argument '--nope' found tip: to pass '--nope' as a value, use '-- --nope'"
        );
    }
}
