//! What each subcommand does. Output for people goes to stdout, diagnostics to stderr.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::{Cli, Command, ConfigCommand, ServeArgs};
use crate::config::{self, Config, ConfigErrors, ProcessEnvironment};
use crate::server::{self, AppState, Stopped};
use crate::telemetry;

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Serve(args) => serve(&args),
        Command::Config(ConfigCommand::Check { file, json }) => config_check(&file, json),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "regula: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn read_config(path: &Path) -> anyhow::Result<Result<Config, ConfigErrors>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read configuration file {}", path.display()))?;
    Ok(config::parse(&text, &ProcessEnvironment))
}

fn config_check(path: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let outcome = read_config(path)?;
    let mut out = std::io::stdout().lock();
    if json {
        let problems: Vec<_> = match &outcome {
            Ok(_) => Vec::new(),
            Err(errors) => errors
                .0
                .iter()
                .map(|p| {
                    serde_json::json!({
                        "key": p.key, "line": p.line, "message": p.message, "hint": p.hint,
                    })
                })
                .collect(),
        };
        let report = serde_json::json!({
            "file": path.display().to_string(),
            "valid": outcome.is_ok(),
            "problems": problems,
        });
        writeln!(out, "{report}")?;
    } else {
        match &outcome {
            Ok(_) => writeln!(
                out,
                "{}: OK (configuración válida / valid configuration)",
                path.display()
            )?,
            Err(errors) => write!(out, "{}: {errors}", path.display())?,
        }
    }
    Ok(if outcome.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn serve(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let mut config = match &args.config {
        Some(path) => match read_config(path)? {
            Ok(config) => config,
            Err(errors) => {
                let _ = write!(std::io::stderr(), "{}: {errors}", path.display());
                return Ok(ExitCode::FAILURE);
            }
        },
        None => match config::parse("", &ProcessEnvironment) {
            Ok(config) => config,
            Err(errors) => {
                let _ = write!(std::io::stderr(), "environment: {errors}");
                return Ok(ExitCode::FAILURE);
            }
        },
    };
    if let Some(listen) = args.listen {
        config.server.listen = listen;
    }
    telemetry::init_logging(&config.log);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("regula")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve_async(config))
}

async fn serve_async(config: Config) -> anyhow::Result<ExitCode> {
    let (listener, addr) = server::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let app = server::router(AppState::new(telemetry::metrics_handle()));
    tracing::info!(%addr, version = env!("CARGO_PKG_VERSION"), "regula serving");
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "Regula escuchando en / listening on http://{addr}")?;
        out.flush()?;
    }
    let stopped = server::serve(
        listener,
        app,
        server::shutdown_signal(),
        config.server.shutdown_grace(),
    )
    .await
    .context("server failed")?;
    tracing::info!(?stopped, "regula stopped");
    Ok(match stopped {
        Stopped::Drained => ExitCode::SUCCESS,
        Stopped::GraceElapsed => ExitCode::from(3),
    })
}
