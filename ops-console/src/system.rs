//! The running system behind the HTTP server: event log, engine, telephony doors and
//! background tasks, started in dependency order and stopped in reverse. `regula serve`
//! runs it behind its HTTP server; benchmarks and the demo drive it in-process.

use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use dispatch_core::recommend::DemandCell;
use dispatch_core::{StraightLine, TravelTimes};
use maps::Clock;
use telephony_gateway::webhook::WebhookState;
use telephony_gateway::{GatewayHandle, SipGateway};
use tokio::sync::{mpsc, watch};

use crate::api::{self, ApiState};
use crate::clock::Stopwatch;
use crate::config::{Config, RegionConfig};
use crate::coverage;
use crate::engine::{CommandKey, Engine, EngineConfig, EngineHandle};
use crate::region::RegionPack;
use crate::store::EventStore;
use crate::telephony;
use crate::travel::RoadTravelTimes;
use dispatch_core::Command;

/// Everything behind the HTTP server: the event log, the engine, the telephony doors and
/// the background tasks, started in dependency order and stopped in reverse.
#[derive(Debug)]
pub struct System {
    store: EventStore,
    engine: EngineHandle,
    engine_task: tokio::task::JoinHandle<()>,
    gateway: Option<Arc<GatewayHandle>>,
    pump: tokio::task::JoinHandle<()>,
    stop_pump: watch::Sender<bool>,
    coverage: tokio::task::JoinHandle<()>,
}

impl System {
    /// The engine, for in-process drivers (benchmarks, the demo's simulation).
    pub fn engine(&self) -> &EngineHandle {
        &self.engine
    }

    /// Opens the log, starts the SIP gateway (if configured), replays the log into the
    /// engine, and returns the system with its API routes.
    pub async fn start(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<(Self, Router)> {
        let store = EventStore::open(&config.store.database_url.location()).await?;
        let road = load_road(config).await?;
        let travel: Arc<dyn TravelTimes + Send + Sync> = match &road {
            Some(road) => road.clone(),
            None => Arc::new(StraightLine::default()),
        };
        let observer: Option<Arc<dyn telephony::TravelObserver>> = road
            .clone()
            .map(|r| r as Arc<dyn telephony::TravelObserver>);
        let (call_tx, call_rx) = mpsc::channel(telephony::CALL_EVENT_CHANNEL);
        let gateway = start_gateway(config, &clock, &call_tx).await?;
        let effects =
            telephony::ShellEffects::new(gateway.clone(), call_tx.clone(), clock.clone(), observer);
        let (engine, replay) = Engine::start(
            store.clone(),
            clock.clone(),
            travel.clone(),
            Some(Arc::new(effects)),
            EngineConfig {
                policy: config.dispatch.policy(),
                snapshot_every: config.store.snapshot_every_events,
                ..EngineConfig::default()
            },
        )
        .await
        .context("cannot rebuild the dispatch state from the event log")?;
        tracing::info!(
            store = store.backend().name(),
            snapshot = replay.snapshot,
            events = replay.events,
            last_seq = replay.last_seq,
            timers = replay.timers,
            millis = replay.millis,
            "event log replayed"
        );
        let (engine, engine_task) = engine.spawn();
        if gateway.is_some() {
            close_stale_calls(&engine, clock.as_ref()).await;
        }
        let (stop_pump, pump_stop) = watch::channel(false);
        let pump = telephony::spawn_pump(engine.clone(), clock.clone(), call_rx, pump_stop);
        let pack = match &config.region {
            Some(region) => Some(load_pack(region).await?),
            None => None,
        };
        if let (Some(pack), Some(region)) = (&pack, &config.region)
            && region.register
        {
            register_region(&engine, pack, clock.as_ref()).await?;
        }
        let demand: Arc<Vec<DemandCell>> =
            Arc::new(pack.map(|p| p.demand_cells().to_vec()).unwrap_or_default());
        let coverage = coverage::spawn_watch(engine.clone(), travel, demand.clone());
        let protocols = ::triage::ProtocolSet::builtin()
            .map_err(|e| anyhow::anyhow!("the built-in triage protocols are invalid: {e}"))?;
        let mut api = api::router(ApiState::new(
            engine.clone(),
            demand,
            protocols,
            clock.clone(),
        ));
        api = api.merge(api::feeds::router(Arc::new(api::feeds::FeedState::new(
            store.clone(),
            clock.clone(),
            &config.feeds,
        ))));
        if let Some(webhook) = &config.webhook {
            let state = WebhookState::new(
                webhook.secret.clone(),
                clock,
                call_tx,
                webhook.replay_window_seconds,
            );
            api = api.merge(telephony_gateway::webhook::router(Arc::new(state)));
        }
        let system = Self {
            store,
            engine,
            engine_task,
            gateway,
            pump,
            stop_pump,
            coverage,
        };
        Ok((system, api))
    }

    /// The SIP gateway's bound address, when SIP is on.
    pub fn sip_addr(&self) -> Option<std::net::SocketAddr> {
        self.gateway.as_ref().map(|g| g.local_addr())
    }

    /// The doors close first: waiting SIP calls get 503 (carriers re-route them) and their
    /// end is recorded; the pump records what is left; then the engine finishes its current
    /// command and stops, and the log is closed cleanly.
    pub async fn stop(self) {
        if let Some(gateway) = &self.gateway
            && let Err(e) = gateway.shutdown().await
        {
            tracing::error!(error = %e, "the SIP gateway did not stop cleanly");
        }
        let _ = self.stop_pump.send(true);
        let _ = self.pump.await;
        self.coverage.abort();
        let _ = self.coverage.await;
        drop(self.engine);
        if let Err(e) = self.engine_task.await {
            tracing::error!(error = %e, "the engine task failed");
        }
        self.store.close().await;
    }
}

/// After a restart, SIP calls the log still shows as waiting have lost their signalling
/// (it lived in the process that stopped): record them as abandoned so the queue is true.
async fn close_stale_calls(engine: &EngineHandle, clock: &dyn Clock) {
    let stale = engine
        .query(|state, _, _| telephony::stale_sip_calls(state))
        .await
        .unwrap_or_default();
    for call in stale {
        let event = dispatch_core::intake::CallEvent::Abandoned {
            call: call.clone(),
            at: clock.now(),
        };
        let key: CommandKey = telephony::call_event_key(&event);
        if let Err(e) = engine
            .command(key, dispatch_core::Command::RecordCallEvent { event })
            .await
        {
            tracing::warn!(%call, error = %e, "cannot close a call left from before the restart");
        } else {
            tracing::warn!(%call, "a call waiting before the restart was lost with its signalling");
        }
    }
}

/// Loads the road graph (if configured) off the async runtime.
async fn load_road(config: &Config) -> anyhow::Result<Option<Arc<RoadTravelTimes>>> {
    let Some(routing) = &config.routing else {
        return Ok(None);
    };
    let (graph, profile) = (routing.graph.clone(), routing.profile.clone());
    let road =
        tokio::task::spawn_blocking(move || RoadTravelTimes::load(&graph, profile.as_deref()))
            .await
            .context("the road graph loader failed")??;
    let summary = road.with_router(|r| r.graph().summary());
    tracing::info!(
        nodes = summary.nodes,
        edges = summary.edges,
        road_km = summary.road_km,
        "road graph loaded"
    );
    Ok(Some(Arc::new(road)))
}

/// Starts the SIP gateway (if configured) sending call events on `call_tx`.
async fn start_gateway(
    config: &Config,
    clock: &Arc<dyn Clock>,
    call_tx: &mpsc::Sender<dispatch_core::intake::CallEvent>,
) -> anyhow::Result<Option<Arc<GatewayHandle>>> {
    let Some(sip) = config.sip.clone() else {
        return Ok(None);
    };
    let listen = sip.listen;
    let handle = SipGateway::start_instrumented(
        sip,
        clock.clone(),
        call_tx.clone(),
        Some(Arc::new(Stopwatch::start())),
    )
    .await
    .with_context(|| format!("cannot start the SIP gateway on {listen}"))?;
    Ok(Some(Arc::new(handle)))
}

/// Reads the region pack off the async runtime and logs its warnings.
async fn load_pack(region: &RegionConfig) -> anyhow::Result<RegionPack> {
    let dir = region.pack.clone();
    let seed = region.fleet_seed;
    let pack = tokio::task::spawn_blocking(move || RegionPack::load_with_seed(&dir, seed))
        .await
        .context("the region pack loader failed")?
        .with_context(|| format!("cannot load the region pack {}", region.pack.display()))?;
    for warning in pack.warnings() {
        tracing::warn!(%warning, "region pack");
    }
    let summary = pack.summary();
    tracing::info!(
        facilities = summary.facilities,
        units = summary.units,
        demand_cells = summary.demand_cells,
        "region pack loaded"
    );
    Ok(pack)
}

/// Registers the pack's emergency departments (with their occupancy baseline) and fleet
/// when the log has none yet. Every command has a stable key, so a start interrupted half
/// way resumes without duplicates.
async fn register_region(
    engine: &EngineHandle,
    pack: &RegionPack,
    clock: &dyn Clock,
) -> anyhow::Result<()> {
    let (facilities, units) = engine
        .query(|state, _, _| (state.facilities().count(), state.units().count()))
        .await?;
    let mut commands = Vec::new();
    if facilities == 0 {
        for registration in pack.facility_registrations() {
            commands.push((
                format!("region:facility:{}", registration.id),
                Command::RegisterFacility {
                    registration: registration.clone(),
                },
            ));
        }
        let now = clock.now();
        for (facility, initial) in pack.initial_occupancy() {
            commands.push((
                format!(
                    "region:occupancy:{facility}:{}-{:02}",
                    initial.value.month.year, initial.value.month.month
                ),
                Command::ReportOccupancy {
                    facility: facility.clone(),
                    occupancy: initial.report(now),
                },
            ));
        }
    }
    if units == 0 {
        for registration in pack.unit_registrations() {
            commands.push((
                format!("region:unit:{}", registration.id),
                Command::RegisterUnit {
                    registration: registration.clone(),
                },
            ));
        }
    }
    let count = commands.len();
    for (key, command) in commands {
        engine
            .command(CommandKey::new(key)?, command)
            .await
            .context("cannot register the region pack")?;
    }
    if count > 0 {
        tracing::info!(commands = count, "region pack registered in the log");
    }
    Ok(())
}
