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
use crate::engine::{CommandKey, Engine, EngineConfig, EngineExit, EngineHandle, InternalKeys};
use crate::region::RegionPack;
use crate::status::{SystemStatus, TravelModel};
use crate::store::EventStore;
use crate::telephony;
use crate::travel::RoadTravelTimes;
use dispatch_core::Command;

/// Everything behind the HTTP server: the event log, the engine, the telephony doors and
/// the background tasks, started in dependency order and stopped in reverse.
#[derive(Debug)]
pub struct System {
    status: SystemStatus,
    store: EventStore,
    engine: EngineHandle,
    engine_task: tokio::task::JoinHandle<EngineExit>,
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
        // Everything that can fail on a bad setting is loaded before the log is opened: a
        // failed start creates no database.
        let road = load_road(config).await?;
        let pack = match &config.region {
            Some(region) => Some(load_pack(region).await?),
            None => None,
        };
        let protocols = ::triage::ProtocolSet::builtin()
            .map_err(|e| anyhow::anyhow!("the built-in triage protocols are invalid: {e}"))?;
        let store = EventStore::open(&config.store.database_url.location()).await?;
        let keys = InternalKeys::new(Arc::from(store.secret()));
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
            telephony::ShellEffects::new(gateway.clone(), call_tx.clone(), clock.clone(), observer)
                .with_webhook_callback(webhook_callback(config)?);
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
        close_stale_calls(&engine, &keys, clock.as_ref(), gateway.is_some()).await;
        if let Some(gateway) = &gateway {
            follow_readiness(&engine, gateway.clone());
        }
        let (stop_pump, pump_stop) = watch::channel(false);
        let pump = telephony::spawn_pump(
            engine.clone(),
            keys.clone(),
            clock.clone(),
            call_rx,
            pump_stop,
        );
        if let (Some(pack), Some(region)) = (&pack, &config.region)
            && region.register
        {
            register_region(&engine, pack, clock.as_ref()).await?;
        }
        let demand: Arc<Vec<DemandCell>> =
            Arc::new(pack.map(|p| p.demand_cells().to_vec()).unwrap_or_default());
        let coverage = coverage::spawn_watch(engine.clone(), travel, demand.clone());
        let status = SystemStatus::new(
            engine.clone(),
            store.backend().name(),
            if road.is_some() {
                TravelModel::RoadGraph
            } else {
                TravelModel::StraightLine
            },
        );
        let api = routes(
            config,
            &engine,
            &store,
            &status,
            &keys,
            clock,
            ApiParts { demand, protocols },
        );
        let system = Self {
            status,
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

    /// The state of the parts, for `/health` and `/ready`.
    pub fn status(&self) -> &SystemStatus {
        &self.status
    }

    /// The SIP gateway's bound address, when SIP is on.
    pub fn sip_addr(&self) -> Option<std::net::SocketAddr> {
        self.gateway.as_ref().map(|g| g.local_addr())
    }

    /// The doors close first: waiting SIP calls get 503 (carriers re-route them) and their
    /// end is recorded; the pump records what is left; then the engine finishes its current
    /// command and stops, and the log is closed cleanly. Every stage has a deadline: a stage
    /// that overruns is logged and skipped, and the report says the stop was not clean.
    pub async fn stop(self) -> StopReport {
        let mut report = StopReport::default();
        if let Some(gateway) = &self.gateway {
            match tokio::time::timeout(STAGE_DEADLINE, gateway.shutdown()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => report.problem(format!("the SIP gateway did not stop cleanly: {e}")),
                Err(_) => report.problem("the SIP gateway did not stop in time".into()),
            }
        }
        let _ = self.stop_pump.send(true);
        let mut pump = self.pump;
        if tokio::time::timeout(STAGE_DEADLINE, &mut pump)
            .await
            .is_err()
        {
            pump.abort();
            report.problem(
                "call events still waiting could not be recorded in time (the event log is not answering)"
                    .into(),
            );
        }
        self.coverage.abort();
        let _ = self.coverage.await;
        // The engine stops whoever still holds a handle (a connection left open after the
        // server's grace period, say).
        self.engine.stop();
        drop(self.engine);
        let mut engine_task = self.engine_task;
        match tokio::time::timeout(ENGINE_DEADLINE, &mut engine_task).await {
            Ok(Ok(exit)) => {
                if !exit.snapshot_saved {
                    report.problem(format!(
                        "the snapshot at event {} could not be stored (the next start replays more of the log)",
                        exit.last_seq
                    ));
                }
                if let Some(failure) = exit.store_failure {
                    report.problem(format!("the event log was failing at the stop: {failure}"));
                }
                report.last_seq = exit.last_seq;
            }
            Ok(Err(e)) => report.problem(format!("the engine task failed: {e}")),
            Err(_) => {
                engine_task.abort();
                report.problem("the engine did not stop in time".into());
            }
        }
        if tokio::time::timeout(STAGE_DEADLINE, self.store.close())
            .await
            .is_err()
        {
            report.problem("the event log did not close in time".into());
        }
        report
    }
}

/// How long each stage of a stop may take before it is skipped.
const STAGE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(8);
/// How long the engine may take to stop (it saves a last snapshot of the state).
const ENGINE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(20);

/// What a stop left undone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StopReport {
    /// The last event stored.
    pub last_seq: u64,
    /// Each thing that could not be finished or flushed.
    pub problems: Vec<String>,
}

impl StopReport {
    fn problem(&mut self, problem: String) {
        tracing::error!(%problem, "stop");
        self.problems.push(problem);
    }

    /// Whether everything was finished and flushed.
    pub fn clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The provider's callback for taken webhook calls, when configured.
fn webhook_callback(config: &Config) -> anyhow::Result<Option<telephony::WebhookCallback>> {
    let Some(webhook) = config.webhook.as_ref() else {
        return Ok(None);
    };
    webhook
        .callback_url
        .clone()
        .map(|url| telephony::WebhookCallback::new(url, webhook.secret.clone()))
        .transpose()
}

/// While the engine cannot store (its log is failing), the SIP gateway takes no new calls:
/// they get 503 and the carrier re-routes them, instead of ringing into a queue that is
/// not being recorded.
fn follow_readiness(engine: &EngineHandle, gateway: Arc<GatewayHandle>) {
    let mut status = engine.watch_status();
    tokio::spawn(async move {
        loop {
            let ready = status.borrow_and_update().ready();
            gateway.set_intake(ready);
            if !ready {
                tracing::warn!("SIP intake paused: the event log cannot record calls now");
            }
            if status.changed().await.is_err() {
                return;
            }
        }
    });
}

/// What the API needs besides the running parts.
struct ApiParts {
    demand: Arc<Vec<DemandCell>>,
    protocols: &'static ::triage::ProtocolSet,
}

/// Every route of the running system: the dispatch API, `/ready`, the feeds and the
/// webhook (when configured).
fn routes(
    config: &Config,
    engine: &EngineHandle,
    store: &EventStore,
    status: &SystemStatus,
    keys: &InternalKeys,
    clock: Arc<dyn Clock>,
    parts: ApiParts,
) -> Router {
    let mut api = api::router(ApiState::new(
        engine.clone(),
        parts.demand,
        parts.protocols,
        clock.clone(),
    ));
    api = api.merge(crate::status::router(status.clone()));
    api = api.merge(api::feeds::router(Arc::new(api::feeds::FeedState::new(
        store.clone(),
        clock.clone(),
        &config.feeds,
    ))));
    if let Some(webhook) = &config.webhook {
        let state = WebhookState::new(
            webhook.secret.clone(),
            clock,
            Arc::new(telephony::EngineRecorder::new(engine.clone(), keys.clone())),
            webhook.replay_window_seconds,
        );
        api = api.merge(telephony_gateway::webhook::router(Arc::new(state)));
    }
    api
}

/// How long a webhook call may wait before a restart closes it (its provider would have
/// given up long before).
const STALE_WEBHOOK_CALL: maps::TravelTime = maps::TravelTime::from_minutes(60);

/// After a restart, SIP calls the log still shows as waiting have lost their signalling
/// (it lived in the process that stopped), and webhook calls waiting for over an hour are
/// over: record them as abandoned so the queue is true. Newer webhook calls stay: their
/// provider still holds them and reports their end.
async fn close_stale_calls(
    engine: &EngineHandle,
    keys: &InternalKeys,
    clock: &dyn Clock,
    sip: bool,
) {
    let horizon = clock.now() - STALE_WEBHOOK_CALL;
    let stale = engine
        .query(move |state, _, _| {
            let mut calls = telephony::stale_webhook_calls(state, horizon);
            if sip {
                calls.extend(telephony::stale_sip_calls(state));
            }
            calls
        })
        .await
        .unwrap_or_default();
    for call in stale {
        let event = dispatch_core::intake::CallEvent::Abandoned {
            call: call.clone(),
            at: clock.now(),
        };
        let key: CommandKey = telephony::call_event_key(keys, &event);
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
                CommandKey::internal(format!("region:facility:{}", registration.id)),
                Command::RegisterFacility {
                    registration: registration.clone(),
                },
            ));
        }
        let now = clock.now();
        for (facility, initial) in pack.initial_occupancy() {
            commands.push((
                CommandKey::internal(format!(
                    "region:occupancy:{facility}:{}-{:02}",
                    initial.value.month.year, initial.value.month.month
                )),
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
                CommandKey::internal(format!("region:unit:{}", registration.id)),
                Command::RegisterUnit {
                    registration: registration.clone(),
                },
            ));
        }
    }
    let count = commands.len();
    for (key, command) in commands {
        engine
            .command(key, command)
            .await
            .context("cannot register the region pack")?;
    }
    if count > 0 {
        tracing::info!(commands = count, "region pack registered in the log");
    }
    Ok(())
}
