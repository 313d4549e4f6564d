//! `regula`: see `regula --help`.

use std::process::ExitCode;

use clap::Parser;
use ops_console::cli::Cli;

fn main() -> ExitCode {
    ops_console::commands::run(Cli::parse())
}
