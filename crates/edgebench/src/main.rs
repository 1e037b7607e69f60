//! The `edgebench` binary: parses the command line and hands the work to the library.

mod args;
mod cmd;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match args::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return cmd::usage_error(&e),
    };
    match cmd::dispatch(cli) {
        Ok(code) => code,
        Err(e) => cmd::report_error(&e),
    }
}
