//! `regula serve`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;

use super::config_check::read_config;
use std::sync::Arc;

use dispatch_core::{StraightLine, TravelTimes};
use maps::Clock;

use dispatch_core::recommend::DemandCell;

use crate::api::{self, ApiState};
use crate::cli::ServeArgs;
use crate::clock::SystemClock;
use crate::config::{self, Config, ProcessEnvironment};
use crate::coverage;
use crate::engine::{Engine, EngineConfig};
use crate::server::{self, AppState, Stopped};
use crate::store::EventStore;
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

async fn serve_async(config: Config) -> anyhow::Result<ExitCode> {
    let (listener, addr) = server::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let location = config.store.database_url.location();
    let store = EventStore::open(&location).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let travel: Arc<dyn TravelTimes + Send + Sync> = Arc::new(StraightLine::default());
    let engine_config = EngineConfig {
        policy: config.dispatch.policy(),
        ..EngineConfig::default()
    };
    let (engine, replay) = Engine::start(store.clone(), clock, travel.clone(), None, engine_config)
        .await
        .context("cannot rebuild the dispatch state from the event log")?;
    tracing::info!(
        store = store.backend().name(),
        events = replay.events,
        last_seq = replay.last_seq,
        timers = replay.timers,
        millis = replay.millis,
        "event log replayed"
    );
    let (handle, engine_task) = engine.spawn();
    let demand: Arc<Vec<DemandCell>> = Arc::new(Vec::new());
    let coverage_task = coverage::spawn_watch(handle.clone(), travel, demand.clone());
    let api = api::router(ApiState::new(handle.clone(), demand));
    let app = server::router(AppState::new(telemetry::metrics_handle()), api);
    let shutdown = server::shutdown_signal().context("cannot install signal handlers")?;
    tracing::info!(%addr, version = env!("CARGO_PKG_VERSION"), "regula serving");
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "Regula escuchando en / listening on http://{addr}")?;
        out.flush()?;
    }
    let stopped = server::serve(listener, app, shutdown, config.server.shutdown_grace())
        .await
        .context("server failed")?;
    // Every handler is gone: dropping the last handle lets the engine finish its current
    // command and stop; then the log is closed cleanly.
    coverage_task.abort();
    let _ = coverage_task.await;
    drop(handle);
    if let Err(e) = engine_task.await {
        tracing::error!(error = %e, "the engine task failed");
    }
    store.close().await;
    tracing::info!(?stopped, "regula stopped");
    Ok(match stopped {
        Stopped::Drained => ExitCode::SUCCESS,
        Stopped::GraceElapsed => ExitCode::from(3),
    })
}
