//! What each subcommand does. Output for people goes to stdout, diagnostics to stderr.
//!
//! One module per area; each exposes `run(…) -> anyhow::Result<ExitCode>`.

pub mod bench_crash;
pub mod bench_dispatch;
pub mod bench_load;
mod config_check;
mod serve;
mod triage;

use std::io::Write;
use std::process::ExitCode;

use crate::cli::{BenchCommand, Cli, Command, ConfigCommand, TriageCommand};

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Serve(args) => serve::run(&args),
        Command::Config(ConfigCommand::Check { file, json }) => config_check::run(&file, json),
        Command::Bench(BenchCommand::Dispatch(args)) => bench_dispatch::run(&args),
        Command::Bench(BenchCommand::Crash(args)) => bench_crash::run(&args),
        Command::Bench(BenchCommand::Load(args)) => bench_load::run(&args),
        Command::Triage(TriageCommand::Validate { protocols, json }) => {
            self::triage::validate(protocols.as_deref(), json)
        }
        Command::Triage(TriageCommand::Eval { cases, protocols }) => {
            self::triage::eval(&cases, protocols.as_deref())
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "regula: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
