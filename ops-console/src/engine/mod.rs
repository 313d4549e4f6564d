//! The engine: the one owner of the live dispatch state.
//!
//! Handlers never touch the state. They send a [`Request`] over a bounded channel and wait
//! for the reply; consoles subscribe to a broadcast of [`Published`] items. For each command
//! the engine task:
//!
//! 1. answers a retried command (same idempotency key) with its original result;
//! 2. asks the pure core to **decide** (no mutation);
//! 3. **persists** the events, plus outbox messages for effects that leave the process, in
//!    one transaction — a failure here leaves the state untouched and is reported;
//! 4. **applies** the events to the state;
//! 5. **publishes** them to subscribers;
//! 6. executes the remaining **effects** (timers, live speeds, call connection, alerts).
//!
//! On start it restores the newest usable snapshot of the state (saved every
//! [`EngineConfig::snapshot_every`] events and when the engine stops) and replays the log
//! after it to rebuild the state, the recent command keys ([`keys::RecentKeys`]; older ones
//! are recognised by the store) and the timers. Timers are kept in the engine and fired
//! against its [`maps::Clock`], so a simulated clock drives them in tests.

pub mod journal;
pub mod keys;
pub mod snapshots;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use dispatch_core::command::Timer;
use dispatch_core::{Command, Dispatch, Effect, Event, Policy, Rejection, TravelTimes};
use maps::{Clock, Timestamp, TravelTime};
use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::clock::Stopwatch;
use crate::store::{Append, EventStore, StoreError, StoredCommand, StoredEvent};

pub use keys::{Fingerprint, InternalKeys};

pub use journal::OutboxKind;

/// Longest accepted idempotency key.
pub const MAX_KEY_LEN: usize = 128;

/// A command's idempotency key: the client picks it (a UUID, or `unit:TAB-1:fix:…`); a
/// command sent twice with the same key is applied once.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct CommandKey(String);

impl CommandKey {
    /// A client's key: 1–128 printable ASCII characters without spaces, not beginning with
    /// [`keys::INTERNAL_PREFIX`] (the engine's own namespace).
    pub fn new(key: impl Into<String>) -> Result<Self, EngineError> {
        let key = key.into();
        if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(EngineError::BadKey(format!(
                "idempotency key must be 1 to {MAX_KEY_LEN} printable ASCII characters without spaces"
            )));
        }
        if key.starts_with(keys::INTERNAL_PREFIX) {
            return Err(EngineError::ReservedKey(format!(
                "idempotency keys beginning with `{}` are reserved for the system's own commands",
                keys::INTERNAL_PREFIX
            )));
        }
        Ok(Self(key))
    }

    /// A key of the engine's own (`#…`); `name` must be printable ASCII.
    pub(crate) fn internal(name: impl AsRef<str>) -> Self {
        let mut key = String::with_capacity(name.as_ref().len() + 1);
        key.push(keys::INTERNAL_PREFIX);
        key.extend(
            name.as_ref()
                .chars()
                .map(|c| if c.is_ascii_graphic() { c } else { '_' }),
        );
        key.truncate(MAX_KEY_LEN);
        Self(key)
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a command did not go through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The core refused it; nothing changed.
    #[error("rejected: {0}")]
    Rejected(Rejection),
    /// The events could not be stored; nothing changed.
    #[error("storage failed: {0}")]
    Storage(String),
    /// The idempotency key is malformed.
    #[error("{0}")]
    BadKey(String),
    /// The idempotency key is in the system's own namespace.
    #[error("{0}")]
    ReservedKey(String),
    /// The key was used before for another command; nothing was done.
    #[error(
        "the idempotency key `{key}` was already used for another command ({original}); a key names one command: use a new key"
    )]
    KeyReused {
        /// The key.
        key: String,
        /// The command it was first used for.
        original: String,
    },
    /// The engine has stopped.
    #[error("the engine is not running")]
    Stopped,
}

/// What a successful command produced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommandReply {
    /// Sequence number of the first event (0 when none).
    pub first_seq: u64,
    /// Sequence number of the last event (0 when none).
    pub last_seq: u64,
    /// The events, in order (empty for a retried command: see `duplicate`).
    pub events: Vec<Event>,
    /// True when the key had been applied before and nothing was done now.
    pub duplicate: bool,
}

/// What subscribers receive.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Published {
    /// A stored event.
    Event {
        /// Its sequence number.
        seq: u64,
        /// When it was recorded.
        at: Timestamp,
        /// The event.
        event: Box<Event>,
    },
    /// City coverage recomputed after the fleet changed (derived, not stored).
    Coverage {
        /// The last event the computation saw.
        after_seq: u64,
        /// The report, with a move-up suggestion when a zone is left uncovered.
        report: Box<dispatch_core::recommend::CoverageReport>,
    },
    /// Advice for the regulators not tied to one incident (a move-up, say).
    Suggestion {
        /// In Spanish.
        message: String,
    },
    /// Something operators must see now (not stored: it follows from stored events).
    Alert {
        /// The incident.
        incident: dispatch_core::ids::IncidentId,
        /// The message, in Spanish.
        message: String,
    },
}

type QueryFn = Box<dyn FnOnce(&Dispatch, &dyn TravelTimes, Timestamp) + Send>;

/// A request to the engine task.
pub enum Request {
    /// Apply a command.
    Command {
        /// Idempotency key.
        key: CommandKey,
        /// The command.
        command: Box<Command>,
        /// Where the result goes.
        reply: oneshot::Sender<Result<CommandReply, EngineError>>,
    },
    /// Read the state (runs on the engine task, between commands).
    Query(QueryFn),
    /// Fire every timer due at the clock's current time; replies how many fired.
    FireDueTimers(oneshot::Sender<usize>),
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Command { key, command, .. } => f
                .debug_struct("Command")
                .field("key", key)
                .field("command", &command_name(command))
                .finish_non_exhaustive(),
            Self::Query(_) => f.write_str("Query"),
            Self::FireDueTimers(_) => f.write_str("FireDueTimers"),
        }
    }
}

/// Whether the engine can store what it is asked to (see [`EngineStatus`]).
#[derive(Debug, Clone, PartialEq, Eq)]
enum StoreHealth {
    /// Writes succeed.
    Healthy,
    /// A write failed: the next command first re-establishes a verified connection.
    Broken(String),
    /// The log cannot be trusted to this engine any more (another writer has it, or it
    /// lost events this engine acknowledged): everything is refused until a restart.
    Failed(String),
}

/// The engine's state as probes see it (`/ready`, `/health`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EngineStatus {
    /// `starting`, `ok`, `recovering` (a write failed; nothing is acknowledged until the
    /// store answers again), `failed` (refusing everything until restarted) or `stopped`.
    pub state: &'static str,
    /// Why, when not `ok`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The last event stored.
    pub last_seq: u64,
}

impl EngineStatus {
    /// Whether commands can be acknowledged now.
    pub fn ready(&self) -> bool {
        self.state == "ok"
    }
}

/// Hooks for effects that reach other parts of the system; all optional.
pub trait EffectSink: Send + Sync {
    /// Connect a taken call to an operator position (telephony gateway).
    fn connect_call(&self, call: &dispatch_core::intake::CallId, position: &str);
    /// A unit drove between two fixes (for live speeds).
    fn observe_travel(
        &self,
        unit: &dispatch_core::ids::UnitId,
        from: &dispatch_core::fleet::GpsFix,
        to: &dispatch_core::fleet::GpsFix,
        emergency: bool,
    );
}

/// How the engine runs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Rules of the regulation centre.
    pub policy: Policy,
    /// Capacity of the request channel (back-pressure beyond it).
    pub channel_capacity: usize,
    /// How often timers are checked against the clock.
    pub timer_tick: Duration,
    /// Capacity of the broadcast to subscribers (slow subscribers lag and resync).
    pub broadcast_capacity: usize,
    /// How long command keys are answered from memory (older ones from the store).
    pub key_memory: TravelTime,
    /// A snapshot of the state is saved every this many events (and when the engine
    /// stops), so that a restart replays only the events after it; 0: never.
    pub snapshot_every: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            policy: Policy::default(),
            channel_capacity: 1024,
            timer_tick: Duration::from_millis(250),
            broadcast_capacity: 4096,
            key_memory: TravelTime::from_minutes(60),
            snapshot_every: 50_000,
        }
    }
}

/// The handle every handler holds.
#[derive(Debug, Clone)]
pub struct EngineHandle {
    requests: mpsc::Sender<Request>,
    published: broadcast::Sender<Published>,
    status: watch::Receiver<EngineStatus>,
    stop: Arc<watch::Sender<bool>>,
}

impl EngineHandle {
    /// Sends a command and waits for its result.
    pub async fn command(
        &self,
        key: CommandKey,
        command: Command,
    ) -> Result<CommandReply, EngineError> {
        let (reply, rx) = oneshot::channel();
        self.requests
            .send(Request::Command {
                key,
                command: Box::new(command),
                reply,
            })
            .await
            .map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)?
    }

    /// Runs a read-only function on the state (with the engine's travel times and clock)
    /// between two commands, and returns its result.
    pub async fn query<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Dispatch, &dyn TravelTimes, Timestamp) -> T + Send + 'static,
    ) -> Result<T, EngineError> {
        let (tx, rx) = oneshot::channel();
        let request = Request::Query(Box::new(move |state, travel, now| {
            let _ = tx.send(f(state, travel, now));
        }));
        self.requests
            .send(request)
            .await
            .map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)
    }

    /// Fires due timers now (tests with a manual clock).
    pub async fn fire_due_timers(&self) -> Result<usize, EngineError> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(Request::FireDueTimers(tx))
            .await
            .map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)
    }

    /// The engine's state now (for readiness and health probes).
    pub fn status(&self) -> EngineStatus {
        let status = self.status.borrow().clone();
        if self.requests.is_closed() {
            return EngineStatus {
                state: "stopped",
                reason: Some("the engine has stopped".into()),
                ..status
            };
        }
        status
    }

    /// Asks the engine task to stop after the request it is working on, whoever still
    /// holds a handle (a connection still open after the server's grace period, say).
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Watches the engine's state.
    pub fn watch_status(&self) -> watch::Receiver<EngineStatus> {
        self.status.clone()
    }

    /// Subscribes to stored events and alerts, from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Published> {
        self.published.subscribe()
    }

    /// Publishes something derived from stored events (coverage, say) to subscribers.
    /// Derived items are never stored: they can be recomputed from the log.
    pub fn announce(&self, item: Published) {
        let _ = self.published.send(item);
    }
}

/// How the engine task ended (for the exit status of the server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineExit {
    /// The last event stored.
    pub last_seq: u64,
    /// Whether the snapshot asked for at stop is stored (a snapshot is a cache: without
    /// it the next start replays more of the log).
    pub snapshot_saved: bool,
    /// The store was failing when the engine stopped (what was refused was never applied).
    pub store_failure: Option<String>,
}

/// Statistics of a replay at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ReplayStats {
    /// The snapshot the state was restored from (its last event), if one was usable.
    pub snapshot: Option<u64>,
    /// Events replayed (after the snapshot).
    pub events: u64,
    /// Last sequence number.
    pub last_seq: u64,
    /// Timers re-armed.
    pub timers: usize,
    /// Wall time taken, in milliseconds.
    pub millis: u64,
}

/// The newest usable snapshot: the state and its last event. A snapshot of another format
/// or one that does not decode is skipped (logged): the log is replayed from the start.
async fn restore(
    store: &EventStore,
    config: &EngineConfig,
) -> Result<(Dispatch, Option<u64>), StartError> {
    let fresh = || Dispatch::new(config.policy.clone());
    let snapshot = match store.latest_snapshot().await {
        Ok(Some(snapshot)) => snapshot,
        Ok(None) => return Ok((fresh(), None)),
        Err(e) => {
            // A snapshot is a cache: without it the log is replayed (and a database that
            // cannot be read fails there, with the event named).
            tracing::warn!(error = %e, "snapshot not read; replaying the whole log");
            return Ok((fresh(), None));
        }
    };
    if snapshot.format != Dispatch::SNAPSHOT_FORMAT {
        tracing::info!(
            format = snapshot.format,
            expected = Dispatch::SNAPSHOT_FORMAT,
            "snapshot of another format; replaying the whole log"
        );
        return Ok((fresh(), None));
    }
    let last_seq = snapshot.last_seq;
    if !store.has_event(last_seq).await? {
        tracing::warn!(
            seq = last_seq,
            "snapshot is ahead of the log; replaying the whole log"
        );
        return Ok((fresh(), None));
    }
    match tokio::task::spawn_blocking(move || serde_json::from_str::<Dispatch>(&snapshot.state))
        .await
    {
        Ok(Ok(mut state)) => {
            state.set_policy(config.policy.clone());
            Ok((state, Some(last_seq)))
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, seq = last_seq, "snapshot does not decode; replaying the whole log");
            Ok((fresh(), None))
        }
        Err(e) => {
            tracing::warn!(error = %e, "snapshot not read; replaying the whole log");
            Ok((fresh(), None))
        }
    }
}

/// The reply to a retried command: its original sequence range, nothing applied.
fn duplicate((first_seq, last_seq): (u64, u64), name: &'static str) -> CommandReply {
    metrics::counter!("regula_engine_commands_total", "command" => name, "result" => "duplicate")
        .increment(1);
    CommandReply {
        first_seq,
        last_seq,
        events: Vec::new(),
        duplicate: true,
    }
}

fn key_reused(key: &CommandKey, original: &str, name: &'static str) -> EngineError {
    metrics::counter!("regula_engine_commands_total", "command" => name, "result" => "key_reused")
        .increment(1);
    EngineError::KeyReused {
        key: key.as_str().to_owned(),
        original: original.to_owned(),
    }
}

/// The engine task's state.
pub struct Engine {
    state: Dispatch,
    store: EventStore,
    clock: Arc<dyn Clock>,
    travel: Arc<dyn TravelTimes + Send + Sync>,
    sink: Option<Arc<dyn EffectSink>>,
    recent_keys: keys::RecentKeys,
    last_seq: u64,
    /// The snapshot follower (absent when snapshots are off).
    snapshots: Option<snapshots::Snapshotter>,
    /// Whether the store can be written; after a failure nothing is acknowledged until a
    /// verified connection shows where the log ends.
    health: StoreHealth,
    status: watch::Sender<EngineStatus>,
    timers: BTreeMap<(Timestamp, String), Timer>,
    /// When each armed timer (by identity) fires, to replace it when re-armed.
    timer_index: std::collections::HashMap<String, Timestamp>,
    published: broadcast::Sender<Published>,
    config: EngineConfig,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("last_seq", &self.last_seq)
            .field("timers", &self.timers.len())
            .finish_non_exhaustive()
    }
}

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Reading the log failed.
    #[error("cannot read the event log: {0}")]
    Store(#[from] StoreError),
    /// A stored event could not be decoded or applied: the log is inconsistent.
    #[error("event {seq} cannot be replayed: {reason}")]
    Replay {
        /// Sequence number.
        seq: u64,
        /// Why.
        reason: String,
    },
}

impl Engine {
    /// Rebuilds the state from the store and returns the engine, ready to run.
    pub async fn start(
        store: EventStore,
        clock: Arc<dyn Clock>,
        travel: Arc<dyn TravelTimes + Send + Sync>,
        sink: Option<Arc<dyn EffectSink>>,
        config: EngineConfig,
    ) -> Result<(Self, ReplayStats), StartError> {
        let watch = Stopwatch::start();
        let (mut state, snapshot) = restore(&store, &config).await?;
        let mut recent_keys = keys::RecentKeys::new(config.key_memory);
        let mut replayed = 0u64;
        let last_seq = store
            .replay_after(snapshot.unwrap_or(0), |stored: StoredEvent| {
                let event = journal::decode(&stored).map_err(|reason| StartError::Replay {
                    seq: stored.seq,
                    reason,
                })?;
                state
                    .apply(stored.recorded_at, &event)
                    .map_err(|e| StartError::Replay {
                        seq: stored.seq,
                        reason: e.to_string(),
                    })?;
                recent_keys.insert(&stored.command_key, None, stored.recorded_at);
                replayed += 1;
                Ok::<(), StartError>(())
            })
            .await?;
        let (published, _) = broadcast::channel(config.broadcast_capacity);
        let (status, _) = watch::channel(EngineStatus {
            state: "ok",
            reason: None,
            last_seq,
        });
        let mut engine = Self {
            state,
            store,
            clock,
            travel,
            sink,
            recent_keys,
            last_seq,
            snapshots: None,
            health: StoreHealth::Healthy,
            status,
            timers: BTreeMap::new(),
            timer_index: std::collections::HashMap::new(),
            published,
            config,
        };
        engine.recent_keys.forget_before(engine.clock.now());
        if engine.config.snapshot_every > 0 {
            // The log was replayed from `snapshot`: if that is far behind, the follower
            // saves a fresh one as soon as the next command comes (or at stop).
            engine.snapshots = Some(
                snapshots::Snapshotter::start(
                    engine.state.clone(),
                    last_seq,
                    snapshot.unwrap_or(0),
                    engine.config.snapshot_every,
                    engine.store.clone(),
                )
                .map_err(|e| StartError::Replay {
                    seq: last_seq,
                    reason: format!("cannot start the snapshot thread: {e}"),
                })?,
            );
        }
        for timer in engine.state.pending_timers() {
            engine.arm(&timer);
        }
        let replay = ReplayStats {
            snapshot,
            events: replayed,
            last_seq,
            timers: engine.timers.len(),
            millis: u64::try_from(watch.elapsed().as_millis()).unwrap_or(u64::MAX),
        };
        Ok((engine, replay))
    }

    /// The state (before the engine is spawned; for benchmarks and checks).
    pub fn state(&self) -> &Dispatch {
        &self.state
    }

    /// Spawns the engine task; it runs until every handle is dropped.
    pub fn spawn(self) -> (EngineHandle, tokio::task::JoinHandle<EngineExit>) {
        let (tx, rx) = mpsc::channel(self.config.channel_capacity);
        let (stop, stopped) = watch::channel(false);
        let handle = EngineHandle {
            requests: tx,
            published: self.published.clone(),
            status: self.status.subscribe(),
            stop: Arc::new(stop),
        };
        let task = tokio::spawn(self.run(rx, stopped));
        (handle, task)
    }

    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Request>,
        mut stop: watch::Receiver<bool>,
    ) -> EngineExit {
        let mut tick = tokio::time::interval(self.config.timer_tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = async {
                    // A dropped sender (every handle gone) also ends the loop.
                    let _ = stop.wait_for(|stop| *stop).await;
                } => break,
                request = rx.recv() => match request {
                    Some(request) => self.handle(request).await,
                    None => break,
                },
                _ = tick.tick() => {
                    self.fire_due_timers().await;
                }
            }
        }
        let snapshot_saved = match self.snapshots.take() {
            Some(snapshots) => snapshots.stop(self.clock.now()).await,
            None => true,
        };
        self.set_status("stopped", Some("the engine has stopped".into()));
        tracing::info!(last_seq = self.last_seq, "engine stopped");
        EngineExit {
            last_seq: self.last_seq,
            snapshot_saved,
            store_failure: match self.health {
                StoreHealth::Healthy => None,
                StoreHealth::Broken(reason) | StoreHealth::Failed(reason) => Some(reason),
            },
        }
    }

    async fn handle(&mut self, request: Request) {
        match request {
            Request::Command {
                key,
                command,
                reply,
            } => {
                let result = self.execute(&key, &command).await;
                let _ = reply.send(result);
            }
            Request::Query(f) => f(&self.state, self.travel.as_ref(), self.clock.now()),
            Request::FireDueTimers(reply) => {
                let n = self.fire_due_timers().await;
                let _ = reply.send(n);
            }
        }
    }

    /// Runs one command through decide → persist → apply → publish → effects.
    pub async fn execute(
        &mut self,
        key: &CommandKey,
        command: &Command,
    ) -> Result<CommandReply, EngineError> {
        let name = command_name(command);
        let fingerprint = Fingerprint::of(command);
        match self.recent_keys.get(key.as_str()) {
            Some(Some(remembered)) => {
                if remembered != fingerprint {
                    return Err(key_reused(key, remembered.command, name));
                }
                let range = self.stored_range(key).await?.map_or((0, 0), |c| c.range());
                return Ok(duplicate(range, name));
            }
            // Remembered from the replay, without what it carried: the store knows.
            Some(None) => {
                if let Some(stored) = self.stored_range(key).await? {
                    return Self::retried(key, &stored, &fingerprint, name);
                }
            }
            None => {}
        }
        self.ensure_writable().await?;
        let now = self.clock.now();
        let watch = Stopwatch::start();
        let decision = match self.state.decide(command, now, self.travel.as_ref()) {
            Ok(d) => d,
            Err(rejection) => {
                // A retry older than the key memory: refused now because it was applied
                // then. The store knows.
                if let Some(stored) = self.stored_range(key).await? {
                    return Self::retried(key, &stored, &fingerprint, name);
                }
                metrics::counter!("regula_engine_commands_total", "command" => name, "result" => "rejected").increment(1);
                return Err(EngineError::Rejected(rejection));
            }
        };
        if decision.events.is_empty() {
            metrics::counter!("regula_engine_commands_total", "command" => name, "result" => "no_change").increment(1);
            self.run_effects(&decision.effects);
            return Ok(CommandReply {
                first_seq: 0,
                last_seq: 0,
                events: Vec::new(),
                duplicate: false,
            });
        }
        self.commit(key, name, fingerprint, decision, now, &watch)
            .await
    }

    /// Persists a decision's events (with the key, its fingerprint and the outbox), then
    /// applies, publishes and runs its effects.
    async fn commit(
        &mut self,
        key: &CommandKey,
        name: &'static str,
        fingerprint: Fingerprint,
        decision: dispatch_core::Decision,
        now: Timestamp,
        watch: &Stopwatch,
    ) -> Result<CommandReply, EngineError> {
        let outbox = journal::outbox_for(&self.state, &decision.events, &decision.effects);
        let encoded = journal::encode(&decision.events)
            .map_err(|e| EngineError::Storage(format!("cannot encode events: {e}")))?;
        let digest = fingerprint.hex();
        let append = Append {
            command_key: key.as_str(),
            first_seq: self.last_seq + 1,
            recorded_at: now,
            events: &encoded,
            outbox: &outbox,
            command: name,
            fingerprint: &digest,
        };
        let (first_seq, last_seq) = match self.store.append(&append).await {
            Ok(range) => range,
            // An old retry whose command still fits the state: the key was stored before.
            Err(StoreError::DuplicateKey(_)) => {
                return match self.stored_range(key).await? {
                    Some(stored) => Self::retried(key, &stored, &fingerprint, name),
                    None => Ok(duplicate((0, 0), name)),
                };
            }
            Err(e) => {
                metrics::counter!("regula_engine_commands_total", "command" => name, "result" => "storage_error").increment(1);
                tracing::error!(error = %e, command = name, "cannot store events; command not applied, nothing more is acknowledged until the store answers again");
                self.store_failed(&e);
                return Err(EngineError::Storage(e.to_string()));
            }
        };
        for event in &decision.events {
            if let Err(e) = self.state.apply(now, event) {
                // Decided events always apply; reaching this is a bug in the core.
                tracing::error!(error = %e, "stored event did not apply");
            }
        }
        self.recent_keys
            .insert(key.as_str(), Some(fingerprint), now);
        self.last_seq = last_seq;
        self.status.send_modify(|status| status.last_seq = last_seq);
        if let Some(snapshots) = &self.snapshots {
            snapshots.follow(last_seq, now, &decision.events);
        }
        if cfg!(debug_assertions) {
            let problems = self.state.check_invariants();
            if !problems.is_empty() {
                tracing::error!(?problems, command = name, "invariant violated");
            }
        }
        for (offset, event) in decision.events.iter().enumerate() {
            let _ = self.published.send(Published::Event {
                seq: first_seq + offset as u64,
                at: now,
                event: Box::new(event.clone()),
            });
        }
        self.run_effects(&decision.effects);
        metrics::counter!("regula_engine_commands_total", "command" => name, "result" => "applied")
            .increment(1);
        metrics::histogram!("regula_engine_command_seconds", "command" => name)
            .record(watch.elapsed().as_secs_f64());
        Ok(CommandReply {
            first_seq,
            last_seq,
            events: decision.events,
            duplicate: false,
        })
    }

    /// A key that is in the store: the same command again is a duplicate; another command
    /// under it is refused. Keys stored before fingerprints were kept match on the key.
    fn retried(
        key: &CommandKey,
        stored: &StoredCommand,
        fingerprint: &Fingerprint,
        name: &'static str,
    ) -> Result<CommandReply, EngineError> {
        if let Some(digest) = &stored.fingerprint
            && !fingerprint.matches_hex(digest)
        {
            let original = stored.command.clone().unwrap_or_else(|| "unknown".into());
            return Err(key_reused(key, &original, name));
        }
        Ok(duplicate(stored.range(), name))
    }

    /// Records a failed write: nothing more is acknowledged until [`Engine::ensure_writable`]
    /// has seen the store answer on a fresh connection.
    fn store_failed(&mut self, error: &StoreError) {
        let reason = error.to_string();
        match error {
            StoreError::Fenced(_) | StoreError::InUse { .. } => self.fail(reason),
            _ => {
                if !matches!(self.health, StoreHealth::Failed(_)) {
                    self.health = StoreHealth::Broken(reason.clone());
                    self.set_status("recovering", Some(reason));
                }
            }
        }
    }

    fn fail(&mut self, reason: String) {
        tracing::error!(%reason, "the event log cannot be written by this server any more; every command is refused until it is restarted");
        self.health = StoreHealth::Failed(reason.clone());
        self.set_status("failed", Some(reason));
    }

    fn set_status(&self, state: &'static str, reason: Option<String>) {
        let last_seq = self.last_seq;
        self.status.send_replace(EngineStatus {
            state,
            reason,
            last_seq,
        });
    }

    /// Before a write after a failure: a verified connection must show where the log
    /// ends. Where it ends where this engine thinks, writing resumes; further on (the
    /// failed write was stored after all: a COMMIT whose answer was lost), the engine
    /// applies and publishes what is there first; before (events this engine acknowledged
    /// are gone), it refuses everything from now on.
    async fn ensure_writable(&mut self) -> Result<(), EngineError> {
        match &self.health {
            StoreHealth::Healthy => return Ok(()),
            StoreHealth::Failed(reason) => return Err(EngineError::Storage(reason.clone())),
            StoreHealth::Broken(_) => {}
        }
        let stored = match self.store.recover().await {
            Ok(stored) => stored,
            Err(e) => {
                self.store_failed(&e);
                return Err(EngineError::Storage(e.to_string()));
            }
        };
        match stored.cmp(&self.last_seq) {
            std::cmp::Ordering::Equal => {}
            std::cmp::Ordering::Greater => {
                if let Err(e) = self.catch_up().await {
                    self.store_failed(&e);
                    return Err(EngineError::Storage(e.to_string()));
                }
            }
            std::cmp::Ordering::Less => {
                self.fail(format!(
                    "the log ends at event {stored} but this server acknowledged events up to {}; acknowledged events are missing from the store",
                    self.last_seq
                ));
                return Err(EngineError::Storage(
                    "the event log lost acknowledged events".into(),
                ));
            }
        }
        tracing::info!(
            last_seq = self.last_seq,
            "the event log answers again; commands are acknowledged again"
        );
        self.health = StoreHealth::Healthy;
        self.set_status("ok", None);
        Ok(())
    }

    /// Applies and publishes the events stored after `last_seq` (a write whose success was
    /// not reported).
    async fn catch_up(&mut self) -> Result<(), StoreError> {
        let mut stored = Vec::new();
        self.store
            .replay_after(self.last_seq, |event| {
                stored.push(event);
                Ok::<(), StoreError>(())
            })
            .await?;
        for event in stored {
            let decoded = journal::decode(&event).map_err(|reason| StoreError::Corrupt {
                seq: event.seq,
                reason,
            })?;
            self.state
                .apply(event.recorded_at, &decoded)
                .map_err(|e| StoreError::Corrupt {
                    seq: event.seq,
                    reason: e.to_string(),
                })?;
            self.recent_keys
                .insert(&event.command_key, None, event.recorded_at);
            self.last_seq = event.seq;
            if let Some(snapshots) = &self.snapshots {
                snapshots.follow(event.seq, event.recorded_at, std::slice::from_ref(&decoded));
            }
            tracing::warn!(
                seq = event.seq,
                "an event whose write was reported failed is in the log; applied now"
            );
            let _ = self.published.send(Published::Event {
                seq: event.seq,
                at: event.recorded_at,
                event: Box::new(decoded),
            });
        }
        // The effects of a decision are not stored: its timers follow from the state, as
        // at start.
        for timer in self.state.pending_timers() {
            self.arm(&timer);
        }
        Ok(())
    }

    /// Where a stored command's events are, if the key was ever applied.
    async fn stored_range(&self, key: &CommandKey) -> Result<Option<StoredCommand>, EngineError> {
        self.store
            .stored_command(key.as_str())
            .await
            .map_err(|e| EngineError::Storage(e.to_string()))
    }

    /// Command keys answered from memory (for tests and monitoring).
    pub fn remembered_keys(&self) -> usize {
        self.recent_keys.len()
    }

    fn run_effects(&mut self, effects: &[Effect]) {
        for effect in effects {
            match effect {
                Effect::Schedule(timer) => self.arm(timer),
                Effect::ConnectCall { call, position } => {
                    if let Some(sink) = &self.sink {
                        sink.connect_call(call, position);
                    }
                }
                Effect::ObserveTravel {
                    unit,
                    from,
                    to,
                    emergency,
                } => {
                    if let Some(sink) = &self.sink {
                        sink.observe_travel(unit, from, to, *emergency);
                    }
                }
                Effect::AlertOperators { incident, message } => {
                    tracing::warn!(%incident, "{message}");
                    let _ = self.published.send(Published::Alert {
                        incident: *incident,
                        message: message.clone(),
                    });
                }
                // Crew notification travels with the published UnitAssigned event; outbox
                // effects were stored with the events, and their receivers read them through
                // the feeds (`api::feeds`).
                Effect::NotifyCrew { .. }
                | Effect::PreAlertFacility { .. }
                | Effect::EmitTransferRecord { .. }
                | Effect::SendReferral { .. } => {}
            }
        }
    }

    /// Keeps a timer; one with the same identity replaces the older.
    fn arm(&mut self, timer: &Timer) {
        let identity = timer.identity();
        if let Some(previous) = self.timer_index.insert(identity.clone(), timer.at()) {
            self.timers.remove(&(previous, identity.clone()));
        }
        self.timers.insert((timer.at(), identity), timer.clone());
    }

    async fn fire_due_timers(&mut self) -> usize {
        let now = self.clock.now();
        let mut fired = 0;
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let ((at, identity), timer) = entry.remove_entry();
            self.timer_index.remove(&identity);
            let key = CommandKey::internal(format!("timer:{identity}:{}", at.as_millis()));
            match self.execute(&key, &timer.command()).await {
                Ok(_) => {}
                Err(EngineError::Storage(e)) => {
                    // Not stored: the timer stays armed and fires again at the next tick
                    // once the store answers.
                    tracing::warn!(error = %e, "timer command not stored; kept for the next tick");
                    self.timers.insert((at, identity.clone()), timer);
                    self.timer_index.insert(identity, at);
                    break;
                }
                Err(e) => tracing::warn!(error = %e, "timer command failed"),
            }
            fired += 1;
        }
        fired
    }
}

/// A stable name for a command (metrics labels, logs).
pub fn command_name(command: &Command) -> &'static str {
    match command {
        Command::RecordCallEvent { .. } => "record_call_event",
        Command::TakeCall { .. } => "take_call",
        Command::CloseCall { .. } => "close_call",
        Command::OpenIncident { .. } => "open_incident",
        Command::RequestSecondaryTransfer { .. } => "request_secondary_transfer",
        Command::ConfirmLocation { .. } => "confirm_location",
        Command::RecordPatient { .. } => "record_patient",
        Command::RecordAssessment { .. } => "record_assessment",
        Command::AssignUnit { .. } => "assign_unit",
        Command::CancelAssignment { .. } => "cancel_assignment",
        Command::ChooseDestination { .. } => "choose_destination",
        Command::CloseIncident { .. } => "close_incident",
        Command::AcceptAssignment { .. } => "accept_assignment",
        Command::DeclineAssignment { .. } => "decline_assignment",
        Command::ReportStatus { .. } => "report_status",
        Command::ReportPosition { .. } => "report_position",
        Command::AssignmentDeadlinePassed { .. } => "assignment_deadline_passed",
        Command::CheckGps { .. } => "check_gps",
        Command::RegisterUnit { .. } => "register_unit",
        Command::SetOutOfService { .. } => "set_out_of_service",
        Command::ReturnToService { .. } => "return_to_service",
        Command::RegisterFacility { .. } => "register_facility",
        Command::ReportOccupancy { .. } => "report_occupancy",
        Command::StartDiversion { .. } => "start_diversion",
        Command::EndDiversion { .. } => "end_diversion",
    }
}

#[cfg(test)]
mod tests;
