//! The `edgebench` binary: parses the command line and hands the work to the library.

mod args;
mod cmd;

use clap::{CommandFactory, FromArgMatches};
use std::process::ExitCode;

fn main() -> ExitCode {
    let parsed = args::Cli::command()
        .try_get_matches()
        .and_then(|m| args::Cli::from_arg_matches(&m).map(|cli| (cli, m)));
    let cli = match parsed {
        Ok((cli, m)) => {
            cmd::remember_explicit(&m);
            cli
        }
        Err(e) => return cmd::usage_error(&e),
    };
    match cmd::dispatch(cli) {
        Ok(code) => code,
        Err(e) => cmd::report_error(&e),
    }
}
