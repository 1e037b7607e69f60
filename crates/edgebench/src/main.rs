//! The `edgebench` binary: parses the command line and hands the work to the library.

mod args;
mod cmd;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    match cmd::dispatch(cli) {
        Ok(code) => code,
        Err(e) => cmd::report_error(&e),
    }
}
