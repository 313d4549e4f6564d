//! Webhook intake for cloud telephony providers: `POST /telephony/calls`.
//!
//! # Request
//!
//! Headers: `X-Regula-Timestamp: <unix seconds>` and
//! `X-Regula-Signature: sha256=<hex of HMAC-SHA256(secret, "<timestamp>.<body>")>`.
//! Requests outside the replay window (default ±300 s) or with a bad signature get 401;
//! the signature is compared in constant time.
//!
//! Body (JSON, unknown fields refused):
//!
//! ```json
//! {
//!   "event_id": "evt-0001",              // unique per provider event; repeats are idempotent
//!   "type": "offered",                   // offered | abandoned | connected | ended
//!   "call_id": "CA1234",                 // the provider's call id (printable ASCII)
//!   "caller": {                          // offered only; every field optional
//!     "asserted": "tel:+573001234567", "claimed": "sip:300@carrier.example",
//!     "display_name": "Juana", "anonymous": false
//!   },
//!   "location": {                        // offered only; optional
//!     "pidf_lo": "<presence …>"          // either a PIDF-LO document …
//!     // … or "lat": 4.61, "lon": -74.08, "radius_m": 30, "confidence_percent": 68,
//!     //      "method": "GPS", "civic": { "road": "Calle 45", "house_number": "13-20", … }
//!   },
//!   "position": "sip:pos12@10.0.0.12"    // connected only: who took the call
//! }
//! ```
//!
//! # Responses
//!
//! The webhook answers only once the event is **stored** in the event log (through the
//! [`CallRecorder`] it is given): a `202` is never lost to a restart.
//!
//! `202` accepted and stored (`{"status":"accepted","call":"webhook:CA1234"}`); `200`
//! duplicate event id (`{"status":"duplicate",…}`, nothing recorded again — also after a
//! restart: the event id is the recorded command's key); `400` missing/malformed headers;
//! `401` signature or timestamp; `409` an event that does not fit the call's state as the
//! regulation centre knows it (e.g. `ended` for a call never connected; also after a
//! restart, since the state is rebuilt from the log); `422` malformed body; `503` with
//! `Retry-After: 1` when the event could not be stored (nothing accepted: retry with the
//! same event id). A bad or missing location never refuses an `offered` event: the
//! location becomes `unusable` with the reason.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use dispatch_core::intake::{
    CallChannel, CallEvent, CallId, CallerIdentity, CivicAddress, DeviceLocation, ReportedLocation,
};
use dispatch_core::privacy::Sensitive;
use hmac::{Hmac, KeyInit, Mac};
use maps::{Clock, GeoPoint, Meters};
use serde::Deserialize;
use serde_json::json;

use crate::location::read_pidf_lo;

/// Largest accepted body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest accepted event id.
pub const MAX_EVENT_ID_LEN: usize = 200;

/// What became of a call event handed to a [`CallRecorder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// Stored now.
    Stored,
    /// This event id was recorded before (nothing recorded again).
    Duplicate,
    /// It does not fit the call's state; nothing recorded. The reason, in plain words.
    Refused(String),
    /// It could not be stored now; nothing recorded, the provider should retry.
    Unavailable(String),
}

/// Where the webhook's call events are recorded: the regulation centre's event log. The
/// gateway never sees the dispatch state; the recorder answers whether the event was
/// stored, was a duplicate of one already stored (`event_id` identifies it across
/// restarts), or does not fit the call's state.
pub trait CallRecorder: Send + Sync + std::fmt::Debug {
    /// Records `event`, delivered by the provider as `event_id`; resolves once stored.
    fn record<'a>(
        &'a self,
        event_id: &'a str,
        event: CallEvent,
    ) -> Pin<Box<dyn Future<Output = Recorded> + Send + 'a>>;
}

/// Shared state of the webhook route.
#[derive(Debug)]
pub struct WebhookState {
    secret: Sensitive<Vec<u8>>,
    clock: Arc<dyn Clock>,
    recorder: Arc<dyn CallRecorder>,
    replay_window_secs: u64,
}

impl WebhookState {
    /// `secret`: the shared HMAC key; `recorder`: where call events are stored;
    /// `replay_window_secs`: accepted clock difference.
    pub fn new(
        secret: Sensitive<String>,
        clock: Arc<dyn Clock>,
        recorder: Arc<dyn CallRecorder>,
        replay_window_secs: u32,
    ) -> Self {
        Self {
            secret: Sensitive::new(secret.into_inner().into_bytes()),
            clock,
            recorder,
            replay_window_secs: u64::from(replay_window_secs),
        }
    }
}

/// The route `POST /telephony/calls`.
pub fn router(state: Arc<WebhookState>) -> Router {
    Router::new()
        .route("/telephony/calls", post(receive))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    event_id: String,
    #[serde(rename = "type")]
    kind: Kind,
    call_id: String,
    #[serde(default)]
    caller: Option<Caller>,
    #[serde(default)]
    location: Option<Location>,
    #[serde(default)]
    position: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Offered,
    Abandoned,
    Connected,
    Ended,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Caller {
    asserted: Option<String>,
    claimed: Option<String>,
    display_name: Option<String>,
    #[serde(default)]
    anonymous: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Location {
    pidf_lo: Option<String>,
    lat: Option<f64>,
    lon: Option<f64>,
    radius_m: Option<f64>,
    confidence_percent: Option<u8>,
    method: Option<String>,
    civic: Option<CivicAddress>,
}

fn problem(status: StatusCode, outcome: &'static str, message: &str) -> Response {
    metrics::counter!("regula_webhook_requests_total", "outcome" => outcome).increment(1);
    (status, axum::Json(json!({ "error": message }))).into_response()
}

async fn receive(
    State(state): State<Arc<WebhookState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(ts_text) = headers
        .get("x-regula-timestamp")
        .and_then(|v| v.to_str().ok())
    else {
        return problem(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "missing X-Regula-Timestamp header",
        );
    };
    let Ok(ts) = ts_text.trim().parse::<i64>() else {
        return problem(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "X-Regula-Timestamp must be unix seconds",
        );
    };
    let Some(signature) = headers
        .get("x-regula-signature")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("sha256="))
        .and_then(|h| hex::decode(h).ok())
    else {
        return problem(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "missing or malformed X-Regula-Signature header (expected sha256=<hex>)",
        );
    };
    let now_ms = state.clock.now().as_millis();
    // `abs_diff`: a timestamp near i64::MIN must not overflow the subtraction.
    if (now_ms / 1000).abs_diff(ts) > state.replay_window_secs {
        return problem(
            StatusCode::UNAUTHORIZED,
            "stale",
            "timestamp outside the replay window",
        );
    }
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(state.secret.expose()) else {
        return problem(StatusCode::INTERNAL_SERVER_ERROR, "error", "internal error");
    };
    mac.update(ts_text.trim().as_bytes());
    mac.update(b".");
    mac.update(&body);
    if mac.verify_slice(&signature).is_err() {
        return problem(
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            "signature does not match",
        );
    }
    let payload: Payload = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => {
            return problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                &format!("invalid body: {e}"),
            );
        }
    };
    if payload.event_id.is_empty()
        || payload.event_id.len() > MAX_EVENT_ID_LEN
        || !payload.event_id.bytes().all(|b| b.is_ascii_graphic())
    {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "event_id must be 1 to 200 printable ASCII characters",
        );
    }
    let call = match CallId::new(format!("webhook:{}", payload.call_id)) {
        Ok(c) => c,
        Err(e) => {
            return problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                &format!("call_id: {e}"),
            );
        }
    };
    accept(&state, payload, &call).await
}

async fn accept(state: &WebhookState, payload: Payload, call: &CallId) -> Response {
    let at = state.clock.now();
    let kind = payload.kind;
    let event = match kind {
        Kind::Offered => CallEvent::Offered {
            call: call.clone(),
            channel: CallChannel::Webhook,
            caller: identity(payload.caller.unwrap_or_default()),
            location: location(payload.location),
            at,
        },
        Kind::Abandoned => CallEvent::Abandoned {
            call: call.clone(),
            at,
        },
        Kind::Connected => {
            let Some(position) = payload.position.filter(|p| !p.is_empty() && p.len() <= 200)
            else {
                return problem(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid",
                    "connected needs a position (1 to 200 characters)",
                );
            };
            CallEvent::Connected {
                call: call.clone(),
                position,
                at,
            }
        }
        Kind::Ended => CallEvent::Ended {
            call: call.clone(),
            at,
        },
    };
    match state.recorder.record(&payload.event_id, event).await {
        Recorded::Stored => {}
        Recorded::Duplicate => {
            metrics::counter!("regula_webhook_requests_total", "outcome" => "duplicate")
                .increment(1);
            let body = json!({ "status": "duplicate", "event_id": payload.event_id, "call": call.as_str() });
            return (StatusCode::OK, axum::Json(body)).into_response();
        }
        Recorded::Refused(why) => return problem(StatusCode::CONFLICT, "conflict", &why),
        Recorded::Unavailable(why) => return busy(&why),
    }
    let counter = match kind {
        Kind::Offered => Some("regula_telephony_calls_offered_total"),
        Kind::Connected => Some("regula_telephony_calls_answered_total"),
        Kind::Abandoned => Some("regula_telephony_calls_abandoned_total"),
        Kind::Ended => None,
    };
    if let Some(counter) = counter {
        metrics::counter!(counter, "channel" => "webhook").increment(1);
    }
    metrics::counter!("regula_webhook_requests_total", "outcome" => "accepted").increment(1);
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({ "status": "accepted", "call": call.as_str() })),
    )
        .into_response()
}

fn busy(why: &str) -> Response {
    metrics::counter!("regula_webhook_requests_total", "outcome" => "busy").increment(1);
    metrics::counter!("regula_telephony_calls_rejected_overload_total", "channel" => "webhook", "reason" => "not_stored")
        .increment(1);
    tracing::warn!(reason = %why, "webhook event not stored; the provider is asked to retry");
    let mut response = (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(json!({ "error": "not stored, retry with the same event_id" })),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

fn clean(text: Option<String>) -> Option<Sensitive<String>> {
    text.map(|t| {
        t.chars()
            .filter(|c| !c.is_control())
            .take(256)
            .collect::<String>()
    })
    .filter(|t| !t.is_empty())
    .map(Sensitive::new)
}

fn identity(caller: Caller) -> CallerIdentity {
    CallerIdentity {
        asserted: clean(caller.asserted),
        claimed: clean(caller.claimed),
        display_name: clean(caller.display_name),
        anonymous: caller.anonymous,
    }
}

fn location(location: Option<Location>) -> ReportedLocation {
    let Some(l) = location else {
        return ReportedLocation::Absent;
    };
    if let Some(doc) = l.pidf_lo {
        return match read_pidf_lo(doc.as_bytes()) {
            Ok(loc) => ReportedLocation::Reported(Box::new(loc)),
            Err(e) => ReportedLocation::Unusable {
                reason: e.to_string(),
            },
        };
    }
    let position = match (l.lon, l.lat) {
        (Some(lon), Some(lat)) => match GeoPoint::new(lon, lat) {
            Ok(p) => Some(p),
            Err(e) => {
                return ReportedLocation::Unusable {
                    reason: format!("location: {e}"),
                };
            }
        },
        (None, None) => None,
        _ => {
            return ReportedLocation::Unusable {
                reason: "location: lat and lon must come together".into(),
            };
        }
    };
    let uncertainty = match l.radius_m.map(Meters::try_new).transpose() {
        Ok(r) => r,
        Err(e) => {
            return ReportedLocation::Unusable {
                reason: format!("location radius: {e}"),
            };
        }
    };
    if l.confidence_percent.is_some_and(|c| c > 100) {
        return ReportedLocation::Unusable {
            reason: "location confidence above 100 %".into(),
        };
    }
    if position.is_none() && l.civic.is_none() {
        return ReportedLocation::Unusable {
            reason: "location has neither coordinates nor a civic address".into(),
        };
    }
    ReportedLocation::Reported(Box::new(DeviceLocation {
        position,
        uncertainty,
        confidence_percent: l.confidence_percent.or(uncertainty.map(|_| 95)),
        civic: l.civic,
        method: l.method.map(|m| m.chars().take(40).collect()),
        determined_at: None,
    }))
}
