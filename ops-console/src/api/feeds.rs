//! Message feeds (`/api/v1/feeds/{receiver}/…`): how the outbox leaves Regula.
//!
//! Every message that leaves the regulation centre is stored with the events that caused
//! it (the outbox): closed transfer records with their RIPS document for the patient's EPS
//! (or `red_publica` when the patient is uninsured or the EPS unknown), referrals for the
//! care network, pre-alerts for the destination emergency department. Each receiver pulls
//! its own messages and acknowledges them:
//!
//! - `GET /api/v1/feeds/{receiver}/messages?after=ID&limit=N&pending=true` — the receiver's
//!   messages with ids after `after` (default 0), oldest first, at most `limit` (default
//!   100, at most 1000); `pending=true` leaves out the acknowledged ones. The reply has
//!   `messages` (`id`, `kind`, `key`, `created_at`, `delivered_at`, `payload`), `next_after`
//!   (the id to continue from) and `pending` (how many are not acknowledged).
//! - `POST /api/v1/feeds/{receiver}/messages/{id}/ack` — marks a message delivered;
//!   repeating it is harmless (`"already": true`).
//!
//! Access: `Authorization: Bearer TOKEN`, where the SHA-256 of the token is configured for
//! the receiver (`[feeds.RECEIVER] token_sha256`). A token opens its own receiver's feed
//! only: each EPS sees only its affiliates' records. Without or with an unknown token the
//! answer is `401`; another receiver's token is `403`; another receiver's message id is
//! `404`, as if it did not exist. Every read and acknowledgement is logged (receiver, ids)
//! for the audit of access to personal data, never the contents.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use maps::Clock;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::config::{FeedConfig, valid_receiver};
use crate::store::{Acknowledged, EventStore, FeedMessage};

/// Messages per page when the receiver does not say.
pub const DEFAULT_PAGE: u32 = 100;
/// Most messages per page.
pub const MAX_PAGE: u32 = 1_000;

/// Shared state of the feed routes.
pub struct FeedState {
    store: EventStore,
    clock: Arc<dyn Clock>,
    /// Receiver by the SHA-256 of its token.
    receivers: HashMap<[u8; 32], String>,
}

impl std::fmt::Debug for FeedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedState")
            .field("receivers", &self.receivers.len())
            .finish_non_exhaustive()
    }
}

impl FeedState {
    /// Feeds for the configured receivers (a receiver whose hash does not decode is left
    /// out; `regula config check` reports it).
    pub fn new(
        store: EventStore,
        clock: Arc<dyn Clock>,
        feeds: &std::collections::BTreeMap<String, FeedConfig>,
    ) -> Self {
        let receivers = feeds
            .iter()
            .filter_map(|(name, feed)| Some((feed.token_hash()?, name.clone())))
            .collect();
        Self {
            store,
            clock,
            receivers,
        }
    }
}

/// The feed routes.
pub fn router(state: Arc<FeedState>) -> Router {
    Router::new()
        .route("/api/v1/feeds/{receiver}/messages", get(messages))
        .route(
            "/api/v1/feeds/{receiver}/messages/{id}/ack",
            post(acknowledge),
        )
        .with_state(state)
}

/// Why a feed request failed.
#[derive(Debug)]
enum FeedError {
    Unauthorized(&'static str),
    Forbidden,
    NotFound(String),
    BadRequest(String),
    Unavailable(String),
}

impl IntoResponse for FeedError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            Self::Unauthorized(why) => (StatusCode::UNAUTHORIZED, "unauthorized", why.to_owned()),
            Self::Forbidden => (
                StatusCode::FORBIDDEN,
                "forbidden",
                "this token opens another receiver's feed".to_owned(),
            ),
            Self::NotFound(message) => (StatusCode::NOT_FOUND, "not_found", message),
            Self::BadRequest(message) => (StatusCode::BAD_REQUEST, "bad_request", message),
            Self::Unavailable(detail) => {
                tracing::error!(%detail, "feed request failed");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the message store is not available; retry later".to_owned(),
                )
            }
        };
        let mut response = (
            status,
            Json(json!({"error": {"code": code, "message": message}})),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"regula-feeds\""),
            );
        }
        response
    }
}

/// The receiver a request may read, checked against the one in the path.
fn authorize(state: &FeedState, headers: &HeaderMap, receiver: &str) -> Result<(), FeedError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or(FeedError::Unauthorized(
            "an `Authorization: Bearer TOKEN` header is required",
        ))?;
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(FeedError::Unauthorized(
            "the Authorization header must be `Bearer TOKEN`",
        ))?;
    let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    let owner = state
        .receivers
        .get(&hash)
        .ok_or(FeedError::Unauthorized("the token is not known"))?;
    if owner != receiver {
        tracing::warn!(
            token_of = %owner,
            asked = %receiver,
            "feed: a receiver's token was used for another receiver's feed"
        );
        return Err(FeedError::Forbidden);
    }
    Ok(())
}

fn check_receiver(receiver: &str) -> Result<(), FeedError> {
    if valid_receiver(receiver) {
        Ok(())
    } else {
        Err(FeedError::BadRequest(format!(
            "{:?} is not a receiver name (1–32 letters, digits, '-' or '_')",
            receiver.chars().take(40).collect::<String>()
        )))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    after: Option<String>,
    limit: Option<String>,
    pending: Option<String>,
}

fn number(
    name: &str,
    value: Option<&str>,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, FeedError> {
    let Some(text) = value else {
        return Ok(default);
    };
    text.parse::<u64>()
        .ok()
        .filter(|n| range.contains(n))
        .ok_or_else(|| {
            FeedError::BadRequest(format!(
                "`{name}` must be a whole number from {} to {}, not {:?}",
                range.start(),
                range.end(),
                text.chars().take(40).collect::<String>()
            ))
        })
}

async fn messages(
    State(state): State<Arc<FeedState>>,
    Path(receiver): Path<String>,
    headers: HeaderMap,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, FeedError> {
    check_receiver(&receiver)?;
    authorize(&state, &headers, &receiver)?;
    let Query(query) = query.map_err(|e| {
        FeedError::BadRequest(format!(
            "{} (known parameters: `after`, `limit`, `pending`)",
            e.body_text()
        ))
    })?;
    let after = number("after", query.after.as_deref(), 0, 0..=i64::MAX as u64)?;
    let limit = number(
        "limit",
        query.limit.as_deref(),
        u64::from(DEFAULT_PAGE),
        1..=u64::from(MAX_PAGE),
    )?;
    let pending_only = match query.pending.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(FeedError::BadRequest(format!(
                "`pending` must be `true` or `false`, not {:?}",
                other.chars().take(40).collect::<String>()
            )));
        }
    };
    let page = state
        .store
        .feed(
            &receiver,
            after,
            u32::try_from(limit).unwrap_or(MAX_PAGE),
            pending_only,
        )
        .await
        .map_err(|e| FeedError::Unavailable(e.to_string()))?;
    let pending = state
        .store
        .feed_pending(&receiver)
        .await
        .map_err(|e| FeedError::Unavailable(e.to_string()))?;
    tracing::info!(
        %receiver,
        count = page.len(),
        first = page.first().map(|m| m.id),
        last = page.last().map(|m| m.id),
        "feed: messages read"
    );
    metrics::counter!("regula_feed_messages_read_total", "receiver" => receiver.clone())
        .increment(page.len() as u64);
    let next_after = page.last().map_or(after, |m| m.id);
    let messages: Vec<FeedItem> = page.into_iter().map(FeedItem::from).collect();
    Ok(Json(json!({
        "receiver": receiver,
        "messages": messages,
        "next_after": next_after,
        "pending": pending,
    })))
}

/// A message as a receiver reads it; the stored JSON payload is passed through as it is.
#[derive(Serialize)]
struct FeedItem {
    id: u64,
    kind: String,
    key: String,
    created_at: String,
    delivered_at: Option<String>,
    payload: Box<RawValue>,
}

impl From<FeedMessage> for FeedItem {
    fn from(m: FeedMessage) -> Self {
        // Stored by this program as JSON; a row that is not JSON is sent as a string.
        let payload = serde_json::from_str::<&RawValue>(&m.payload)
            .map(ToOwned::to_owned)
            .or_else(|e| {
                tracing::warn!(id = m.id, error = %e, "feed: stored payload is not JSON");
                serde_json::value::to_raw_value(&m.payload)
            })
            .unwrap_or_else(|_| RawValue::NULL.to_owned());
        Self {
            id: m.id,
            kind: m.kind,
            key: m.idempotency_key,
            created_at: m.created_at.to_rfc3339(),
            delivered_at: m.delivered_at.map(maps::Timestamp::to_rfc3339),
            payload,
        }
    }
}

async fn acknowledge(
    State(state): State<Arc<FeedState>>,
    Path((receiver, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, FeedError> {
    check_receiver(&receiver)?;
    authorize(&state, &headers, &receiver)?;
    let id = number("id", Some(&id), 0, 0..=i64::MAX as u64)?;
    let now = state.clock.now();
    let outcome = state
        .store
        .acknowledge(&receiver, id, now)
        .await
        .map_err(|e| FeedError::Unavailable(e.to_string()))?
        .ok_or_else(|| FeedError::NotFound(format!("{receiver} has no message {id}")))?;
    let (at, already) = match outcome {
        Acknowledged::Now(at) => (at, false),
        Acknowledged::Before(at) => (at, true),
    };
    tracing::info!(%receiver, id, already, "feed: message acknowledged");
    Ok(Json(json!({
        "id": id,
        "delivered_at": at.to_rfc3339(),
        "already": already,
    })))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use axum::body::Body;
    use axum::http::Request;
    use dispatch_core::Event;
    use dispatch_core::ids::UnitId;
    use http_body_util::BodyExt;
    use maps::{ManualClock, Timestamp};
    use tower::ServiceExt;

    use super::*;
    use crate::engine::journal;
    use crate::store::{Append, OutboxMessage, StoreLocation};

    const EPS_TOKEN: &str = "token-of-eps037-0123456789abcdef";
    const OTHER_TOKEN: &str = "token-of-eps002-fedcba9876543210";

    struct Feeds {
        _dir: tempfile::TempDir,
        router: Router,
        store: EventStore,
    }

    async fn feeds() -> Feeds {
        let dir = tempfile::tempdir().unwrap();
        let store = EventStore::open(&StoreLocation::Sqlite(dir.path().join("f.db")))
            .await
            .unwrap();
        // Three messages for EPS037, one for EPS002, in one command.
        let message = |key: &str, destination: &str| OutboxMessage {
            idempotency_key: key.to_owned(),
            kind: "transfer_record",
            destination: destination.to_owned(),
            payload: json!({"kind": "transfer_record", "key": key}).to_string(),
        };
        store
            .append(&Append {
                command_key: "c1",
                first_seq: 1,
                recorded_at: Timestamp::parse_rfc3339("2026-11-23T12:00:00Z").unwrap(),
                events: &journal::encode(&[Event::UnitAvailable {
                    unit: UnitId::new("TAB-0001").unwrap(),
                }])
                .unwrap(),
                outbox: &[
                    message("transfer:TRF-000001", "EPS037"),
                    message("transfer:TRF-000002", "EPS002"),
                    message("transfer:TRF-000003", "EPS037"),
                    message("transfer:TRF-000004", "EPS037"),
                ],
                command: "test",
                fingerprint: "",
            })
            .await
            .unwrap();
        let mut config = BTreeMap::new();
        for (receiver, token) in [("EPS037", EPS_TOKEN), ("EPS002", OTHER_TOKEN)] {
            config.insert(
                receiver.to_owned(),
                FeedConfig {
                    token_sha256: hex::encode(Sha256::digest(token.as_bytes())),
                },
            );
        }
        let clock = Arc::new(ManualClock::new(
            Timestamp::parse_rfc3339("2026-11-23T12:30:00Z").unwrap(),
        ));
        let router = router(Arc::new(FeedState::new(store.clone(), clock, &config)));
        Feeds {
            _dir: dir,
            router,
            store,
        }
    }

    async fn call(
        feeds: &Feeds,
        method: &str,
        uri: &str,
        token: Option<&str>,
    ) -> (StatusCode, Value, HeaderMap) {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = feeds
            .router
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, body, headers)
    }

    #[tokio::test]
    async fn a_receiver_reads_its_own_messages_in_pages_and_acknowledges_them() {
        let feeds = feeds().await;
        let uri = "/api/v1/feeds/EPS037/messages?limit=2";
        let (status, page, _) = call(&feeds, "GET", uri, Some(EPS_TOKEN)).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let keys: Vec<&str> = page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["key"].as_str().unwrap())
            .collect();
        assert_eq!(keys, ["transfer:TRF-000001", "transfer:TRF-000003"]);
        assert_eq!(page["pending"], 3);
        assert_eq!(page["messages"][0]["payload"]["kind"], "transfer_record");
        assert!(page["messages"][0]["delivered_at"].is_null());
        let next = page["next_after"].as_u64().unwrap();
        let (_, rest, _) = call(
            &feeds,
            "GET",
            &format!("/api/v1/feeds/EPS037/messages?after={next}"),
            Some(EPS_TOKEN),
        )
        .await;
        assert_eq!(rest["messages"].as_array().unwrap().len(), 1);
        assert_eq!(rest["messages"][0]["key"], "transfer:TRF-000004");

        let first = page["messages"][0]["id"].as_u64().unwrap();
        let ack = format!("/api/v1/feeds/EPS037/messages/{first}/ack");
        let (status, body, _) = call(&feeds, "POST", &ack, Some(EPS_TOKEN)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["already"], false);
        assert_eq!(body["delivered_at"], "2026-11-23T12:30:00Z");
        let (status, again, _) = call(&feeds, "POST", &ack, Some(EPS_TOKEN)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(again["already"], true);
        assert_eq!(again["delivered_at"], body["delivered_at"]);

        let (_, pending, _) = call(
            &feeds,
            "GET",
            "/api/v1/feeds/EPS037/messages?pending=true",
            Some(EPS_TOKEN),
        )
        .await;
        assert_eq!(pending["pending"], 2);
        assert_eq!(pending["messages"].as_array().unwrap().len(), 2);
        // Acknowledged messages can still be read again (billing disputes), marked.
        let (_, all, _) = call(
            &feeds,
            "GET",
            "/api/v1/feeds/EPS037/messages",
            Some(EPS_TOKEN),
        )
        .await;
        assert_eq!(all["messages"].as_array().unwrap().len(), 3);
        assert_eq!(all["messages"][0]["delivered_at"], "2026-11-23T12:30:00Z");
    }

    #[tokio::test]
    async fn each_receiver_sees_only_its_own_feed() {
        let feeds = feeds().await;
        let (status, body, headers) =
            call(&feeds, "GET", "/api/v1/feeds/EPS037/messages", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(headers.get("www-authenticate").is_some());
        let (status, _, _) = call(
            &feeds,
            "GET",
            "/api/v1/feeds/EPS037/messages",
            Some("a-token-nobody-has"),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        // EPS002's token on EPS037's feed.
        let (status, body, _) = call(
            &feeds,
            "GET",
            "/api/v1/feeds/EPS037/messages",
            Some(OTHER_TOKEN),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        // EPS002 reads one message, and cannot acknowledge EPS037's.
        let (_, own, _) = call(
            &feeds,
            "GET",
            "/api/v1/feeds/EPS002/messages",
            Some(OTHER_TOKEN),
        )
        .await;
        assert_eq!(own["messages"].as_array().unwrap().len(), 1);
        assert_eq!(own["messages"][0]["key"], "transfer:TRF-000002");
        let (status, body, _) = call(
            &feeds,
            "POST",
            "/api/v1/feeds/EPS002/messages/1/ack",
            Some(OTHER_TOKEN),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        // Nothing was acknowledged by the refused requests.
        assert_eq!(feeds.store.feed_pending("EPS037").await.unwrap(), 3);
    }

    #[tokio::test]
    async fn bad_parameters_are_refused_with_the_reason() {
        let feeds = feeds().await;
        for (uri, needle) in [
            ("/api/v1/feeds/EPS037/messages?limit=0", "`limit`"),
            ("/api/v1/feeds/EPS037/messages?limit=5000", "`limit`"),
            ("/api/v1/feeds/EPS037/messages?after=-1", "`after`"),
            ("/api/v1/feeds/EPS037/messages?pending=yes", "`pending`"),
            ("/api/v1/feeds/EPS037/messages?page=2", "known parameters"),
            ("/api/v1/feeds/EPS%20037/messages", "not a receiver name"),
        ] {
            let (status, body, _) = call(&feeds, "GET", uri, Some(EPS_TOKEN)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
            let message = body["error"]["message"].as_str().unwrap();
            assert!(message.contains(needle), "{uri}: {message}");
        }
        let (status, body, _) = call(
            &feeds,
            "POST",
            "/api/v1/feeds/EPS037/messages/abc/ack",
            Some(EPS_TOKEN),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let (status, _, _) = call(
            &feeds,
            "POST",
            "/api/v1/feeds/EPS037/messages/999/ack",
            Some(EPS_TOKEN),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(feeds.store.feed_pending("EPS037").await.unwrap(), 3);
    }
}
