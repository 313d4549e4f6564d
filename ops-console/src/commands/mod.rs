//! What each subcommand does. Output for people goes to stdout, diagnostics to stderr.
//!
//! One module per area; each exposes `run(…) -> anyhow::Result<ExitCode>`.

mod config_check;
mod serve;

use std::io::Write;
use std::process::ExitCode;

use crate::cli::{Cli, Command, ConfigCommand};

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Serve(args) => serve::run(&args),
        Command::Config(ConfigCommand::Check { file, json }) => config_check::run(&file, json),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "regula: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
