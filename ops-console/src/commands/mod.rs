//! What each subcommand does. Output for people goes to stdout, diagnostics to stderr.
//!
//! One module per area; each exposes `run(…) -> anyhow::Result<ExitCode>`.

pub mod bench_crash;
pub mod bench_dispatch;
pub mod bench_faults;
pub mod bench_load;
mod config_check;
mod routing;
mod routing_bench;
mod serve;
mod triage;

use std::io::Write;
use std::process::ExitCode;

use crate::cli::{
    BenchCommand, Cli, Command, ConfigCommand, OsmCommand, RoutingCommand, TriageCommand,
};

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Serve(args) => serve::run(&args),
        Command::Config(ConfigCommand::Check { file, json }) => config_check::run(&file, json),
        Command::Bench(BenchCommand::Dispatch(args)) => bench_dispatch::run(&args),
        Command::Bench(BenchCommand::Crash(args)) => bench_crash::run(&args),
        Command::Bench(BenchCommand::Load(args)) => bench_load::run(&args),
        Command::Bench(BenchCommand::Faults(args)) => bench_faults::run(&args),
        Command::Triage(TriageCommand::Validate { protocols, json }) => {
            self::triage::validate(protocols.as_deref(), json)
        }
        Command::Triage(TriageCommand::Eval { cases, protocols }) => {
            self::triage::eval(&cases, protocols.as_deref())
        }
        Command::Osm(OsmCommand::Import(args)) => self::routing::import(&args),
        Command::Route(args) => self::routing::route(&args),
        Command::Catchment(args) => self::routing::catchment(&args),
        Command::Eta(args) => self::routing::eta(&args),
        Command::Routing(RoutingCommand::ExportEdges(args)) => self::routing::export_edges(&args),
        Command::Bench(BenchCommand::Routing(args)) => routing_bench::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "regula: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
