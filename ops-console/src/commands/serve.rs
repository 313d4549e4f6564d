//! `regula serve`.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use maps::Clock;

use super::config_check::read_config;
use crate::cli::ServeArgs;
use crate::clock::SystemClock;
use crate::config::{self, Config, ProcessEnvironment};
use crate::server::{self, AppState, Stopped};
use crate::system::System;
use crate::telemetry;

pub(crate) fn run(args: &ServeArgs) -> anyhow::Result<ExitCode> {
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
    if let Some(sip) = args.sip_listen {
        let mut section = config.sip.take().unwrap_or_default();
        section.listen = sip;
        config.sip = Some(section);
    }
    if let Some(url) = &args.database_url {
        config.store.database_url = config::DatabaseUrl::try_from(url.clone())
            .map_err(|e| anyhow::anyhow!("--database-url: {e}"))?;
    }
    telemetry::init_logging(&config.log);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("regula")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve_async(config))
}

/// Exit status when the stop could not finish or flush everything (see the log).
pub(crate) const EXIT_UNCLEAN_STOP: u8 = 4;

async fn serve_async(config: Config) -> anyhow::Result<ExitCode> {
    let (listener, addr) = server::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let (system, api) = System::start(&config, clock).await?;
    let limits = config.server.http_limits();
    let app = server::router(
        AppState::new(telemetry::metrics_handle())
            .with_limits(&limits, config.server.stream_limits())
            .with_status(system.status().clone()),
        api,
    );
    let shutdown = server::shutdown_signal().context("cannot install signal handlers")?;
    tracing::info!(%addr, version = env!("CARGO_PKG_VERSION"), "regula serving");
    {
        let mut out = std::io::stdout().lock();
        if let Some(sip) = system.sip_addr() {
            writeln!(out, "SIP (UDP y TCP / UDP and TCP) en / on {sip}")?;
        }
        writeln!(out, "Regula escuchando en / listening on http://{addr}")?;
        out.flush()?;
    }
    let stopped = server::serve(
        listener,
        app,
        shutdown,
        config.server.shutdown_grace(),
        limits,
    )
    .await
    .context("server failed")?;
    let report = system.stop().await;
    tracing::info!(
        ?stopped,
        last_seq = report.last_seq,
        clean = report.clean(),
        "regula stopped"
    );
    if !report.clean() {
        // Something could not be finished or flushed (each problem was logged).
        return Ok(ExitCode::from(EXIT_UNCLEAN_STOP));
    }
    Ok(match stopped {
        Stopped::Drained => ExitCode::SUCCESS,
        Stopped::GraceElapsed => ExitCode::from(3),
    })
}
