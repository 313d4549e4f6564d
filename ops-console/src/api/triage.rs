//! Guided telephone triage for the operator console (`/api/v1/triage/…`).
//!
//! The operator picks the chief complaint and the caller's basic data; the console then
//! reads each question in turn, with its "por qué preguntamos", and sends the answer; when
//! the protocol decides, the outcome (level, disposition, route, instructions for the
//! caller, the trace) is shown; the operator may adjust it (upward freely, downward with a
//! reason) and records it on the incident, which stores the whole triage record with the
//! assessment.
//!
//! - `GET  /api/v1/triage/complaints` — the chief complaints with their Spanish titles.
//! - `POST /api/v1/triage/sessions` — `{complaint, age_years, sex, pregnancy_weeks?}`.
//! - `GET  /api/v1/triage/sessions/{id}` — where the session is.
//! - `POST /api/v1/triage/sessions/{id}/answers` — `{finding, present}`.
//! - `POST /api/v1/triage/sessions/{id}/undo` — takes the last answer back.
//! - `POST /api/v1/triage/sessions/{id}/override` — `{level, disposition, route?, reason?}`.
//! - `POST /api/v1/triage/sessions/{id}/record` — `{key, incident}`: records the assessment
//!   (an ordinary command with its idempotency key) and closes the session.
//!
//! Sessions live in memory: they hold no decision until recorded, and one abandoned for
//! [`SESSION_IDLE_LIMIT`] is dropped. After a restart an operator starts the triage again.
//!
//! Sessions are bounded **per client** — the console's IP address (each operator position
//! has its own on the centre's network) until operators sign in — at
//! [`MAX_SESSIONS_PER_CLIENT`]; a client at its limit gets `429` with the code
//! `triage_sessions_per_client` and is the only one affected. [`MAX_SESSIONS`] bounds the
//! total (memory) and answers `503` `triage_sessions_full`. Idle sessions are evicted
//! before either limit is applied; both refusals count in
//! `regula_http_refused_total{reason}`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::Extension;
use axum::extract::{ConnectInfo, Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use dispatch_core::ids::IncidentId;
use dispatch_core::model::Assessment;
use dispatch_core::{Command, Rejection};
use maps::{Clock, Timestamp, TravelTime};
use serde::{Deserialize, Serialize};
use serde_json::json;
use triage::{Caller, OverrideRequest, ProtocolSet, Session};

use super::ApiError;
use crate::engine::{CommandKey, EngineHandle};

/// A session untouched for this long is dropped.
pub const SESSION_IDLE_LIMIT: TravelTime = TravelTime::from_minutes(60);
/// Sessions open at once from one client (console), at most.
pub const MAX_SESSIONS_PER_CLIENT: usize = 40;
/// Sessions open at once in total, at most.
pub const MAX_SESSIONS: usize = 5_000;

/// Shared state of the triage routes.
pub struct TriageState {
    protocols: &'static ProtocolSet,
    engine: EngineHandle,
    clock: Arc<dyn Clock>,
    sessions: Mutex<Sessions>,
}

impl std::fmt::Debug for TriageState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TriageState").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Sessions {
    next: u64,
    open: HashMap<u64, Open>,
}

struct Open {
    /// The console that started it (`None`: unknown, e.g. a router tested without a socket).
    client: Option<IpAddr>,
    session: Session,
    outcome: Option<triage::Outcome>,
    touched: Timestamp,
}

impl TriageState {
    /// Triage over the built-in protocols, recording through `engine`.
    pub fn new(
        protocols: &'static ProtocolSet,
        engine: EngineHandle,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            protocols,
            engine,
            clock,
            sessions: Mutex::new(Sessions::default()),
        }
    }

    fn sessions(&self) -> Result<std::sync::MutexGuard<'_, Sessions>, ApiError> {
        self.sessions
            .lock()
            .map_err(|_| ApiError::Unavailable("triage sessions lock poisoned".into()))
    }
}

/// The triage routes.
pub fn router(state: Arc<TriageState>) -> Router {
    Router::new()
        .route("/api/v1/triage/complaints", get(complaints))
        .route("/api/v1/triage/sessions", post(start))
        .route("/api/v1/triage/sessions/{id}", get(show))
        .route("/api/v1/triage/sessions/{id}/answers", post(answer))
        .route("/api/v1/triage/sessions/{id}/undo", post(undo))
        .route("/api/v1/triage/sessions/{id}/override", post(adjust))
        .route("/api/v1/triage/sessions/{id}/record", post(record))
        .with_state(state)
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::BadRequest(message.into())
}

fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        bad(if path == "." {
            format!("cuerpo inválido / invalid body: {}", e.inner())
        } else {
            format!("cuerpo inválido / invalid body at `{path}`: {}", e.inner())
        })
    })
}

async fn complaints(State(state): State<Arc<TriageState>>) -> Response {
    let list: Vec<_> = state
        .protocols
        .protocols()
        .map(|p| json!({"complaint": p.reference().id, "title": p.title(), "version": p.reference().version}))
        .collect();
    Json(list).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartRequest {
    complaint: String,
    age_years: f64,
    sex: triage::Sex,
    #[serde(default)]
    pregnancy_weeks: Option<f64>,
}

#[derive(Serialize)]
struct View<'a> {
    session: u64,
    complaint: &'a str,
    title: &'a str,
    answered: usize,
    question: Option<triage::Question<'a>>,
    outcome: Option<&'a triage::Outcome>,
}

fn view(id: u64, open: &Open) -> Response {
    let protocol = open.session.protocol();
    Json(View {
        session: id,
        complaint: &protocol.reference().id,
        title: protocol.title(),
        answered: open.session.answered(),
        question: open.session.next_question(),
        outcome: open.outcome.as_ref(),
    })
    .into_response()
}

fn decide(open: &mut Open) {
    if open.outcome.is_none() && open.session.is_decided() {
        open.outcome = open.session.outcome().ok();
    }
}

async fn start(
    State(state): State<Arc<TriageState>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let client = peer.map(|Extension(ConnectInfo(addr))| addr.ip());
    let request: StartRequest = json_body(&body)?;
    let caller = Caller::new(request.age_years, request.sex, request.pregnancy_weeks)
        .map_err(|e| bad(e.to_string()))?;
    let session = state
        .protocols
        .start(&request.complaint, caller)
        .map_err(|e| bad(e.to_string()))?;
    let now = state.clock.now();
    let mut sessions = state.sessions()?;
    sessions
        .open
        .retain(|_, o| now.saturating_duration_since(o.touched) < SESSION_IDLE_LIMIT);
    let own = sessions
        .open
        .values()
        .filter(|o| o.client == client)
        .count();
    if own >= MAX_SESSIONS_PER_CLIENT {
        crate::server::count_refused("triage_sessions_per_client");
        return Err(ApiError::Limited {
            code: "triage_sessions_per_client",
            message: format!(
                "esta consola ya tiene {own} triages abiertos (límite {MAX_SESSIONS_PER_CLIENT} por consola); registre o abandone uno (se cierran solos tras {} min sin uso) / \
                 this console already has {own} triage sessions open (limit {MAX_SESSIONS_PER_CLIENT} per console); record or abandon one (idle ones close after {} min)",
                SESSION_IDLE_LIMIT.as_millis() / 60_000,
                SESSION_IDLE_LIMIT.as_millis() / 60_000,
            ),
        });
    }
    if sessions.open.len() >= MAX_SESSIONS {
        crate::server::count_refused("triage_sessions_full");
        return Err(ApiError::Busy {
            code: "triage_sessions_full",
            message: format!(
                "hay {MAX_SESSIONS} triages abiertos en el servidor; reintente / {MAX_SESSIONS} triage sessions are open on the server; retry"
            ),
        });
    }
    sessions.next += 1;
    let id = sessions.next;
    let mut open = Open {
        client,
        session,
        outcome: None,
        touched: now,
    };
    decide(&mut open);
    let response = view(id, &open);
    sessions.open.insert(id, open);
    Ok(response)
}

fn with_session<T>(
    state: &TriageState,
    id: &str,
    f: impl FnOnce(u64, &mut Open) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let id: u64 = id
        .parse()
        .map_err(|_| bad(format!("`{id}` is not a triage session number")))?;
    let now = state.clock.now();
    let mut sessions = state.sessions()?;
    let open = sessions
        .open
        .get_mut(&id)
        .filter(|o| now.saturating_duration_since(o.touched) < SESSION_IDLE_LIMIT)
        .ok_or_else(|| {
            ApiError::Rejected(Rejection::Unknown {
                kind: "triage session",
                id: id.to_string(),
            })
        })?;
    open.touched = now;
    f(id, open)
}

async fn show(
    State(state): State<Arc<TriageState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    with_session(&state, &id, |id, open| Ok(view(id, open)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswerRequest {
    finding: String,
    present: bool,
}

async fn answer(
    State(state): State<Arc<TriageState>>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let request: AnswerRequest = json_body(&body)?;
    with_session(&state, &id, |id, open| {
        open.session
            .answer(&request.finding, request.present)
            .map_err(|e| ApiError::Rejected(Rejection::InvalidState(e.to_string())))?;
        decide(open);
        Ok(view(id, open))
    })
}

async fn undo(
    State(state): State<Arc<TriageState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    with_session(&state, &id, |id, open| {
        if open.session.undo().is_none() {
            return Err(ApiError::Rejected(Rejection::InvalidState(
                "no hay respuestas para deshacer / nothing to undo".into(),
            )));
        }
        open.outcome = None;
        decide(open);
        Ok(view(id, open))
    })
}

async fn adjust(
    State(state): State<Arc<TriageState>>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let request: OverrideRequest = json_body(&body)?;
    with_session(&state, &id, |id, open| {
        let outcome = open.outcome.as_mut().ok_or_else(|| {
            ApiError::Rejected(Rejection::InvalidState(
                "el triage aún no tiene resultado / the triage has no outcome yet".into(),
            ))
        })?;
        outcome
            .apply_override(request)
            .map_err(|e| ApiError::Rejected(Rejection::InvalidInput(e.to_string())))?;
        Ok(view(id, open))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordRequest {
    key: String,
    incident: String,
}

async fn record(
    State(state): State<Arc<TriageState>>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let request: RecordRequest = json_body(&body)?;
    let key = CommandKey::new(request.key)?;
    let incident: IncidentId = request
        .incident
        .parse()
        .map_err(|e: dispatch_core::ids::IdError| bad(e.to_string()))?;
    let assessment = with_session(&state, &id, |_, open| {
        open.outcome
            .as_ref()
            .map(Assessment::from_triage)
            .ok_or_else(|| {
                ApiError::Rejected(Rejection::InvalidState(
                    "el triage aún no tiene resultado / the triage has no outcome yet".into(),
                ))
            })
    })?;
    let reply = state
        .engine
        .command(
            key,
            Command::RecordAssessment {
                incident,
                assessment,
            },
        )
        .await?;
    if let Ok(number) = id.parse::<u64>() {
        state.sessions()?.open.remove(&number);
    }
    Ok(Json(reply).into_response())
}
