//! The dispatch API over HTTP and WebSocket (`/api/v1/…`), used by the consoles and by
//! integrations.
//!
//! - `POST /api/v1/commands` — body `{"key": "…", "command": {…}}` (or the key in an
//!   `Idempotency-Key` header). The key makes retries safe: a command is applied at most
//!   once; a key names one command (the same key with another command is `409`
//!   `idempotency_key_reused`). Replies `200` with the stored events and their sequence
//!   numbers; a refusal is `400` (a body that is not a command: the message names the
//!   field, and unknown fields anywhere are refused), `403` (`reserved_command`: call
//!   events and timer expiries come only from the system's own doors and timers;
//!   `reserved_key`: keys beginning with `#` are the system's), `404` (unknown id), `409`
//!   (does not fit the current state, or already exists) or `422` (malformed or implausible
//!   input), with `{"error": {"code", "message"}}`; a storage failure is `503` and nothing
//!   changed (nothing is acknowledged until the store answers again; `/ready` says so). A
//!   view of an incident or transfer that has left the live state answers `410`
//!   (`archived`).
//! - `GET` views of the live state: `calls` (the queue, with waiting times), `units`,
//!   `units/{id}`, `incidents` (open), `incidents/{id}`, `incidents/{id}/recommendation`
//!   (top units by ETA and destinations with reasons), `facilities`, `transfers/{id}`,
//!   `kpis`, `coverage`. Closed incidents, their transfers and finished calls stay in these
//!   views for `[dispatch] history_days` after they finished (the log keeps them; their
//!   records stay readable in the EPS feeds).
//! - `GET /api/v1/stream` — a WebSocket of stored events and alerts as they happen, each a
//!   JSON text message `{"type": "event", "seq", "at", "event"}` or
//!   `{"type": "alert", …}`; a subscriber that falls behind gets `{"type": "lagged",
//!   "missed": n}` and should reload the views. Limits ([`StreamLimits`], `[server]`): at
//!   most `stream_max_clients` at once (beyond: `503` JSON before upgrading); a message or
//!   frame from the client above `stream_max_message_bytes` (64 KiB) closes the socket; the
//!   server pings every `stream_ping_interval_seconds` (20) and drops a client it has heard
//!   nothing from — no pong, no message — for `stream_dead_peer_seconds` (60).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use dispatch_core::ids::{IncidentId, TransferId, UnitId};
use dispatch_core::model::CallStatus;
use dispatch_core::recommend::DemandCell;
use dispatch_core::{Command, Rejection};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast};

use crate::engine::{CommandKey, EngineError, EngineHandle};

pub mod feeds;
pub mod triage;

/// What the API handlers share.
#[derive(Debug, Clone)]
pub struct ApiState {
    engine: EngineHandle,
    demand: Arc<Vec<DemandCell>>,
    triage: Arc<triage::TriageState>,
}

impl ApiState {
    /// The API over a running engine; `demand` weights the coverage view (empty: coverage
    /// is computed over no cells and says so); `protocols` drive the guided triage.
    pub fn new(
        engine: EngineHandle,
        demand: Arc<Vec<DemandCell>>,
        protocols: &'static ::triage::ProtocolSet,
        clock: Arc<dyn maps::Clock>,
    ) -> Self {
        let triage = Arc::new(triage::TriageState::new(protocols, engine.clone(), clock));
        Self {
            engine,
            demand,
            triage,
        }
    }
}

/// The `/api/v1` routes.
pub fn router(state: ApiState) -> Router {
    let triage = triage::router(state.triage.clone());
    Router::new()
        .route("/api/v1/commands", post(post_command))
        .route("/api/v1/calls", get(calls))
        .route("/api/v1/units", get(units))
        .route("/api/v1/units/{id}", get(unit))
        .route("/api/v1/incidents", get(incidents))
        .route("/api/v1/incidents/{id}", get(incident))
        .route("/api/v1/incidents/{id}/recommendation", get(recommendation))
        .route("/api/v1/facilities", get(facilities))
        .route("/api/v1/transfers/{id}", get(transfer))
        .route("/api/v1/kpis", get(kpis))
        .route("/api/v1/coverage", get(coverage))
        .route("/api/v1/stream", get(stream))
        .with_state(state)
        .merge(triage)
}

/// An API failure, answered once with a JSON body and a status.
#[derive(Debug)]
pub enum ApiError {
    /// The request itself is malformed.
    BadRequest(String),
    /// The core refused the command or query.
    Rejected(Rejection),
    /// Storage or engine failure: nothing changed. The detail is logged, not sent.
    Unavailable(String),
    /// It existed but has left the live state (the event log keeps it).
    Archived(String),
    /// Not for this caller (a command or key reserved to the system itself).
    Forbidden {
        /// Machine-readable code.
        code: &'static str,
        /// What and why.
        message: String,
    },
    /// The idempotency key was used before for another command.
    KeyReused(String),
    /// A per-client limit was reached (`429`): the code names the limit, the message says
    /// what to do. Others are not affected.
    Limited {
        /// Machine-readable name of the limit.
        code: &'static str,
        /// What happened and what to do, for the operator.
        message: String,
    },
    /// The server is at a capacity limit right now (`503`); retry later. Nothing is wrong
    /// with storage.
    Busy {
        /// Machine-readable name of the limit.
        code: &'static str,
        /// What happened, for the operator.
        message: String,
    },
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Rejected(r) => Self::Rejected(r),
            EngineError::BadKey(m) => Self::BadRequest(m),
            EngineError::ReservedKey(message) => Self::Forbidden {
                code: "reserved_key",
                message,
            },
            e @ EngineError::KeyReused { .. } => Self::KeyReused(e.to_string()),
            EngineError::Storage(m) => Self::Unavailable(m),
            EngineError::Stopped => Self::Unavailable("the engine is not running".into()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            Self::BadRequest(message) => (StatusCode::BAD_REQUEST, "bad_request", message),
            Self::Archived(message) => (StatusCode::GONE, "archived", message),
            Self::Forbidden { code, message } => (StatusCode::FORBIDDEN, code, message),
            Self::KeyReused(message) => (StatusCode::CONFLICT, "idempotency_key_reused", message),
            Self::Limited { code, message } => (StatusCode::TOO_MANY_REQUESTS, code, message),
            Self::Busy { code, message } => (StatusCode::SERVICE_UNAVAILABLE, code, message),
            Self::Rejected(rejection) => {
                let status = match rejection {
                    Rejection::Unknown { .. } => StatusCode::NOT_FOUND,
                    Rejection::Duplicate { .. } | Rejection::InvalidState(_) => {
                        StatusCode::CONFLICT
                    }
                    Rejection::InvalidInput(_) => StatusCode::UNPROCESSABLE_ENTITY,
                };
                (status, rejection.code(), rejection.to_string())
            }
            Self::Unavailable(detail) => {
                tracing::error!(%detail, "request failed; nothing was changed");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "el sistema no pudo guardar la orden; no se cambió nada, reintente con la misma clave / \
                     the command could not be stored; nothing changed, retry with the same key"
                        .to_owned(),
                )
            }
        };
        (
            status,
            Json(json!({"error": {"code": code, "message": message}})),
        )
            .into_response()
    }
}

/// The field named by serde's "unknown field `x`, expected …" message.
fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split_once('`').map(|(field, _)| field.to_owned())
}

/// The path (`command.fix.speed_kmh`) of the first object key `field` under the value at
/// `prefix` (the deserializer's own path, `.` for the root), depth first.
fn path_of_key(root: &serde_json::Value, field: &str, prefix: &str) -> Option<String> {
    fn walk(value: &serde_json::Value, field: &str, path: &mut Vec<String>) -> bool {
        match value {
            serde_json::Value::Object(map) => {
                if map.contains_key(field) {
                    path.push(field.to_owned());
                    return true;
                }
                for (key, child) in map {
                    path.push(key.clone());
                    if walk(child, field, path) {
                        return true;
                    }
                    path.pop();
                }
                false
            }
            serde_json::Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    path.push(i.to_string());
                    if walk(child, field, path) {
                        return true;
                    }
                    path.pop();
                }
                false
            }
            _ => false,
        }
    }
    let mut start = root;
    let mut path: Vec<String> = Vec::new();
    if prefix != "." {
        for part in prefix.split('.') {
            start = match start {
                serde_json::Value::Object(map) => map.get(part)?,
                serde_json::Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
                _ => return None,
            };
            path.push(part.to_owned());
        }
    }
    walk(start, field, &mut path).then(|| path.join("."))
}

/// Commands only the system's own doors and timers issue: call events come from the
/// telephony gateway and webhook (a client could otherwise forge a call or make a ringing
/// caller vanish from the queue); deadlines and GPS checks from the engine's timers.
fn reserved_to_the_system(command: &Command) -> Option<&'static str> {
    match command {
        Command::RecordCallEvent { .. } => Some("the telephony doors (SIP gateway, webhook)"),
        Command::AssignmentDeadlinePassed { .. } | Command::CheckGps { .. } => {
            Some("the engine's timers")
        }
        _ => None,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandRequest {
    key: Option<String>,
    command: Command,
}

async fn post_command(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: CommandRequest = {
        let mut de = serde_json::Deserializer::from_slice(&body);
        serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let mut path = e.path().to_string();
            // Tagged enums buffer their content, so the deserializer's path stops at the
            // enum: an unknown field is found in the body itself to name its full path.
            if let Some(field) = unknown_field(&e.inner().to_string())
                && let Ok(value) = serde_json::from_slice::<serde_json::Value>(&body)
                && let Some(found) = path_of_key(&value, &field, &path)
            {
                path = found;
            }
            ApiError::BadRequest(if path == "." {
                format!("the body is not a valid command: {}", e.inner())
            } else {
                format!(
                    "the body is not a valid command: at `{path}`: {}",
                    e.inner()
                )
            })
        })?
    };
    let header_key = headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str()
                .map(str::to_owned)
                .map_err(|_| ApiError::BadRequest("Idempotency-Key is not ASCII".into()))
        })
        .transpose()?;
    let key = match (request.key, header_key) {
        (Some(a), Some(b)) if a != b => {
            return Err(ApiError::BadRequest(
                "the body's `key` and the Idempotency-Key header differ".into(),
            ));
        }
        (Some(k), _) | (None, Some(k)) => k,
        (None, None) => {
            return Err(ApiError::BadRequest(
                "every command needs an idempotency key (`key` in the body or an Idempotency-Key header) so that a retry is never applied twice".into(),
            ));
        }
    };
    let key = CommandKey::new(key)?;
    if let Some(door) = reserved_to_the_system(&request.command) {
        return Err(ApiError::Forbidden {
            code: "reserved_command",
            message: format!(
                "`{}` is issued only by {door}, never through the API",
                crate::engine::command_name(&request.command)
            ),
        });
    }
    let reply = state.engine.command(key, request.command).await?;
    Ok(Json(reply).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallsQuery {
    /// Only calls with this status (`queued`, `taken`, `connected`, …).
    status: Option<CallStatus>,
}

#[derive(Serialize)]
struct CallView {
    #[serde(flatten)]
    call: dispatch_core::model::Call,
    /// Seconds waiting in the queue (until taken, abandoned, or now).
    wait_seconds: f64,
}

async fn calls(
    State(state): State<ApiState>,
    Query(query): Query<CallsQuery>,
) -> Result<Response, ApiError> {
    let views = state
        .engine
        .query(move |d, _, now| {
            let mut views: Vec<CallView> = d
                .calls()
                .filter(|c| query.status.as_ref().is_none_or(|s| &c.status == s))
                .map(|c| {
                    let until = c
                        .taken
                        .as_ref()
                        .map(|(_, t)| *t)
                        .or(c.ended_at.filter(|_| c.status == CallStatus::Abandoned))
                        .unwrap_or(now);
                    CallView {
                        wait_seconds: until.saturating_duration_since(c.offered_at).as_secs_f64(),
                        call: c.clone(),
                    }
                })
                .collect();
            views.sort_by_key(|v| v.call.offered_at);
            views
        })
        .await?;
    Ok(Json(views).into_response())
}

async fn units(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let units = state
        .engine
        .query(|d, _, now| {
            d.units()
                .map(|u| {
                    json!({
                        "unit": u,
                        "position": u.position(now, d.policy().max_fix_age_for_position),
                        "fix_age_seconds": u.fix_age(now).map(maps::TravelTime::as_secs_f64),
                    })
                })
                .collect::<Vec<_>>()
        })
        .await?;
    Ok(Json(units).into_response())
}

fn parse_id<T: std::str::FromStr>(text: &str) -> Result<T, ApiError>
where
    T::Err: std::fmt::Display,
{
    text.parse()
        .map_err(|e: T::Err| ApiError::BadRequest(e.to_string()))
}

async fn unit(State(state): State<ApiState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id: UnitId = UnitId::new(id).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let found = state
        .engine
        .query(move |d, _, _| d.unit(&id).cloned().ok_or_else(|| unknown("unit", &id)))
        .await??;
    Ok(Json(found).into_response())
}

/// Why a view cannot show something that left the live state.
fn archived(kind: &str, id: &impl std::fmt::Display, d: &dispatch_core::Dispatch) -> ApiError {
    let days = d.policy().history_retention.as_millis() / 86_400_000;
    ApiError::Archived(format!(
        "{kind} {id} finished more than {days} days ago and left the live views; the event log keeps it"
    ))
}

fn unknown(kind: &'static str, id: &impl std::fmt::Display) -> ApiError {
    ApiError::Rejected(Rejection::Unknown {
        kind,
        id: id.to_string(),
    })
}

async fn incidents(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let open = state
        .engine
        .query(|d, _, _| d.open_incidents().cloned().collect::<Vec<_>>())
        .await?;
    Ok(Json(open).into_response())
}

async fn incident(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id: IncidentId = parse_id(&id)?;
    let found = state
        .engine
        .query(move |d, _, _| {
            d.incident(id).cloned().ok_or_else(|| {
                if d.incident_retired(id) {
                    archived("incident", &id, d)
                } else {
                    unknown("incident", &id)
                }
            })
        })
        .await??;
    Ok(Json(found).into_response())
}

async fn recommendation(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id: IncidentId = parse_id(&id)?;
    let body = state
        .engine
        .query(move |d, travel, now| {
            let units = d.recommend_units(id, travel, now)?;
            let destinations = d.recommend_destinations(id, travel, now)?;
            Ok::<_, Rejection>(json!({"units": units, "destinations": destinations}))
        })
        .await?
        .map_err(ApiError::Rejected)?;
    Ok(Json(body).into_response())
}

async fn facilities(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let all = state
        .engine
        .query(|d, _, now| {
            d.facilities()
                .map(|f| {
                    let (occupancy, is_stale) = f.effective_occupancy(now);
                    json!({
                        "facility": f,
                        "effective_occupancy_percent": occupancy,
                        "occupancy_stale": is_stale,
                    })
                })
                .collect::<Vec<_>>()
        })
        .await?;
    Ok(Json(all).into_response())
}

async fn transfer(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id: TransferId = parse_id(&id)?;
    let found = state
        .engine
        .query(move |d, _, _| {
            d.transfer(id).cloned().ok_or_else(|| {
                if d.transfer_retired(id) {
                    archived("transfer", &id, d)
                } else {
                    unknown("transfer", &id)
                }
            })
        })
        .await??;
    Ok(Json(found).into_response())
}

async fn kpis(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let report = state
        .engine
        .query(|d, _, _| dispatch_core::kpi::report(d))
        .await?;
    Ok(Json(report).into_response())
}

async fn coverage(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let demand = state.demand.clone();
    let report = state
        .engine
        .query(move |d, travel, now| d.coverage(&demand, travel, now))
        .await?;
    Ok(Json(report).into_response())
}

/// The limits of the WebSocket stream (`[server]` `stream_*` keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    /// Stream clients at once; beyond, `503` before upgrading.
    pub max_clients: usize,
    /// Largest message or frame a client may send; a larger one closes the socket. Clients
    /// send nothing but control frames, so 64 KiB is ample.
    pub max_message_bytes: usize,
    /// The server pings this often.
    pub ping_interval: Duration,
    /// A client silent this long (no pong, no message) is dropped.
    pub dead_peer_after: Duration,
}

impl Default for StreamLimits {
    fn default() -> Self {
        crate::config::ServerConfig::default().stream_limits()
    }
}

/// The stream's limits with the count of clients connected, shared by every request
/// (installed by [`crate::server::router`]).
#[derive(Debug, Clone)]
pub struct StreamGate {
    limits: StreamLimits,
    clients: Arc<Semaphore>,
}

impl StreamGate {
    /// A gate with no client yet.
    pub fn new(limits: StreamLimits) -> Self {
        Self {
            limits,
            clients: Arc::new(Semaphore::new(limits.max_clients)),
        }
    }
}

async fn stream(
    State(state): State<ApiState>,
    gate: Option<Extension<StreamGate>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    // Without the server's gate (a router tested on its own), one default gate is shared.
    static DEFAULT_GATE: std::sync::OnceLock<StreamGate> = std::sync::OnceLock::new();
    let gate = gate.map_or_else(
        || {
            DEFAULT_GATE
                .get_or_init(|| StreamGate::new(StreamLimits::default()))
                .clone()
        },
        |Extension(gate)| gate,
    );
    let Ok(client) = gate.clients.clone().try_acquire_owned() else {
        crate::server::count_refused("stream_limit");
        return ApiError::Busy {
            code: "too_many_streams",
            message: format!(
                "ya hay {} clientes del flujo conectados; reintente / {} stream clients are connected already; retry",
                gate.limits.max_clients, gate.limits.max_clients
            ),
        }
        .into_response();
    };
    let events = state.engine.subscribe();
    let limits = gate.limits;
    upgrade
        .max_message_size(limits.max_message_bytes)
        .max_frame_size(limits.max_message_bytes)
        .on_upgrade(move |socket| forward(socket, events, limits, client))
}

async fn forward(
    mut socket: WebSocket,
    mut events: broadcast::Receiver<crate::engine::Published>,
    limits: StreamLimits,
    client: OwnedSemaphorePermit,
) {
    let mut ping = tokio::time::interval(limits.ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await; // the first tick is immediate
    // Silence is measured in ping intervals, so no clock is read here.
    let mut silent = Duration::ZERO;
    let mut heard = false;
    loop {
        tokio::select! {
            received = events.recv() => {
                let text = match received {
                    Ok(item) => match serde_json::to_string(&item) {
                        Ok(text) => text,
                        Err(e) => {
                            tracing::error!(error = %e, "cannot encode a published item");
                            continue;
                        }
                    },
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        json!({"type": "lagged", "missed": missed}).to_string()
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                if socket.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
            _ = ping.tick() => {
                if heard {
                    silent = Duration::ZERO;
                } else {
                    silent += limits.ping_interval;
                }
                heard = false;
                if silent >= limits.dead_peer_after {
                    crate::server::count_refused("stream_dead_peer");
                    tracing::info!(silent_s = silent.as_secs(), "stream client stopped answering; dropped");
                    break;
                }
                if socket.send(Message::Ping(Bytes::new())).await.is_err() {
                    break;
                }
            }
            incoming = socket.recv() => match incoming {
                // The stream is one-way: pongs and anything else only show the peer is alive
                // (pings are answered by axum).
                Some(Ok(Message::Close(_))) | None => break,
                Some(Err(e)) => {
                    if e.to_string().starts_with("Space limit exceeded") {
                        crate::server::count_refused("stream_message_too_large");
                        tracing::info!("stream client sent a message above the limit; closed");
                    }
                    break;
                }
                Some(Ok(_)) => heard = true,
            },
        }
    }
    drop(client);
}

#[cfg(test)]
mod tests;
