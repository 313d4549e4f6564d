//! `POST /telephony/calls` through `Router::oneshot`: signatures, the replay window,
//! idempotent duplicates, state checks, storage failures and locations. The recorder here
//! applies events to a real dispatch core (the state checks are the core's own); the
//! webhook against the real event log and engine is tested end to end in `tests/`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use dispatch_core::intake::{CallChannel, CallEvent, ReportedLocation};
use dispatch_core::privacy::Sensitive;
use dispatch_core::{Command, Dispatch, Policy, StraightLine};
use hmac::{Hmac, KeyInit, Mac};
use http_body_util::BodyExt;
use maps::{ManualClock, Timestamp};
use telephony_gateway::webhook::{CallRecorder, Recorded, WebhookState, router};
use tower::ServiceExt;

const SECRET: &str = "s3cret-shared-with-the-provider";
const NOW: &str = "2026-11-23T12:00:00Z";

fn now_secs() -> i64 {
    Timestamp::parse_rfc3339(NOW).unwrap().as_millis() / 1000
}

fn sign(secret: &str, ts: i64, body: &str) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{ts}.{body}").as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Records into a real dispatch core; `failing` makes every record fail as a storage
/// failure would.
#[derive(Debug)]
struct CoreRecorder {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    core: Dispatch,
    seen: HashSet<String>,
    stored: VecDeque<CallEvent>,
    failing: bool,
}

impl CoreRecorder {
    fn try_recv(&self) -> Option<CallEvent> {
        self.inner.lock().unwrap().stored.pop_front()
    }

    fn set_failing(&self, failing: bool) {
        self.inner.lock().unwrap().failing = failing;
    }
}

impl CallRecorder for CoreRecorder {
    fn record<'a>(
        &'a self,
        event_id: &'a str,
        event: CallEvent,
    ) -> Pin<Box<dyn Future<Output = Recorded> + Send + 'a>> {
        Box::pin(async move {
            let mut inner = self.inner.lock().unwrap();
            if inner.failing {
                return Recorded::Unavailable("disk full".into());
            }
            if inner.seen.contains(event_id) {
                return Recorded::Duplicate;
            }
            let at = event.at();
            let command = Command::RecordCallEvent {
                event: event.clone(),
            };
            match inner.core.execute(&command, at, &StraightLine::default()) {
                Ok(_) => {
                    inner.seen.insert(event_id.to_owned());
                    inner.stored.push_back(event);
                    Recorded::Stored
                }
                Err(rejection) => Recorded::Refused(rejection.to_string()),
            }
        })
    }
}

fn setup() -> (axum::Router, Arc<CoreRecorder>) {
    let clock = Arc::new(ManualClock::new(Timestamp::parse_rfc3339(NOW).unwrap()));
    let recorder = Arc::new(CoreRecorder {
        inner: Mutex::new(Inner {
            core: Dispatch::new(Policy::default()),
            seen: HashSet::new(),
            stored: VecDeque::new(),
            failing: false,
        }),
    });
    let state = WebhookState::new(Sensitive::new(SECRET.into()), clock, recorder.clone(), 300);
    (router(Arc::new(state)), recorder)
}

async fn post(
    app: &axum::Router,
    body: &str,
    ts: i64,
    signature: Option<String>,
) -> (StatusCode, serde_json::Value) {
    let mut request = Request::post("/telephony/calls")
        .header("content-type", "application/json")
        .header("x-regula-timestamp", ts.to_string());
    if let Some(s) = signature {
        request = request.header("x-regula-signature", s);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

async fn signed(app: &axum::Router, body: &str) -> (StatusCode, serde_json::Value) {
    post(app, body, now_secs(), Some(sign(SECRET, now_secs(), body))).await
}

const OFFERED: &str = r#"{"event_id":"e1","type":"offered","call_id":"CA1","caller":{"asserted":"tel:+573001234567"},"location":{"lat":4.61,"lon":-74.08,"radius_m":30,"method":"GPS"}}"#;

#[tokio::test]
async fn a_signed_offer_becomes_an_offered_event_and_duplicates_are_idempotent() {
    let (app, rx) = setup();
    let (status, body) = signed(&app, OFFERED).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["call"], "webhook:CA1");
    let CallEvent::Offered {
        call,
        channel,
        caller,
        location,
        ..
    } = rx.try_recv().unwrap()
    else {
        panic!()
    };
    assert_eq!(call.as_str(), "webhook:CA1");
    assert_eq!(channel, CallChannel::Webhook);
    assert_eq!(caller.asserted.unwrap().expose(), "tel:+573001234567");
    let ReportedLocation::Reported(loc) = location else {
        panic!()
    };
    assert_eq!(loc.confidence_percent, Some(95));

    let (status, body) = signed(&app, OFFERED).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "duplicate");
    assert!(rx.try_recv().is_none(), "a duplicate emits nothing");
}

#[tokio::test]
async fn bad_signatures_stale_timestamps_and_missing_headers_are_refused() {
    let (app, rx) = setup();
    let ts = now_secs();
    assert_eq!(
        post(&app, OFFERED, ts, Some(sign("wrong", ts, OFFERED)))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let tampered = OFFERED.replace("CA1", "CA2");
    assert_eq!(
        post(&app, &tampered, ts, Some(sign(SECRET, ts, OFFERED)))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let old = ts - 301;
    assert_eq!(
        post(&app, OFFERED, old, Some(sign(SECRET, old, OFFERED)))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post(&app, OFFERED, ts, None).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        post(&app, OFFERED, ts, Some("sha256=zz".into())).await.0,
        StatusCode::BAD_REQUEST
    );
    assert!(rx.try_recv().is_none(), "nothing refused reaches the core");
}

#[tokio::test]
async fn events_must_fit_the_call_state_and_bodies_must_be_valid() {
    let (app, rx) = setup();
    let ended = r#"{"event_id":"e9","type":"ended","call_id":"CA9"}"#;
    assert_eq!(signed(&app, ended).await.0, StatusCode::CONFLICT);
    let unknown_field = r#"{"event_id":"e8","type":"offered","call_id":"CA8","colour":"red"}"#;
    assert_eq!(
        signed(&app, unknown_field).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let bad_id = r#"{"event_id":"e7","type":"offered","call_id":"has space"}"#;
    assert_eq!(
        signed(&app, bad_id).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    assert_eq!(signed(&app, OFFERED).await.0, StatusCode::ACCEPTED);
    let no_position = r#"{"event_id":"e2","type":"connected","call_id":"CA1"}"#;
    assert_eq!(
        signed(&app, no_position).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let connected =
        r#"{"event_id":"e3","type":"connected","call_id":"CA1","position":"sip:pos1@10.0.0.1"}"#;
    assert_eq!(signed(&app, connected).await.0, StatusCode::ACCEPTED);
    let abandoned = r#"{"event_id":"e4","type":"abandoned","call_id":"CA1"}"#;
    assert_eq!(signed(&app, abandoned).await.0, StatusCode::CONFLICT);
    let end = r#"{"event_id":"e5","type":"ended","call_id":"CA1"}"#;
    assert_eq!(signed(&app, end).await.0, StatusCode::ACCEPTED);
    let kinds: Vec<&str> = std::iter::from_fn(|| rx.try_recv())
        .map(|e| match e {
            CallEvent::Offered { .. } => "offered",
            CallEvent::Connected { .. } => "connected",
            CallEvent::Ended { .. } => "ended",
            CallEvent::Abandoned { .. } => "abandoned",
            CallEvent::ConnectFailed { .. } => "connect_failed",
            CallEvent::Overflowed { .. } => "overflowed",
        })
        .collect();
    assert_eq!(kinds, vec!["offered", "connected", "ended"]);
}

#[tokio::test]
async fn a_bad_location_never_refuses_the_call() {
    let (app, rx) = setup();
    let body =
        r#"{"event_id":"l1","type":"offered","call_id":"CL1","location":{"lat":95,"lon":-74.08}}"#;
    assert_eq!(signed(&app, body).await.0, StatusCode::ACCEPTED);
    let CallEvent::Offered { location, .. } = rx.try_recv().unwrap() else {
        panic!()
    };
    assert!(
        matches!(location, ReportedLocation::Unusable { reason } if reason.contains("latitude"))
    );
    let pidf =
        r#"{"event_id":"l2","type":"offered","call_id":"CL2","location":{"pidf_lo":"<not xml"}}"#;
    assert_eq!(signed(&app, pidf).await.0, StatusCode::ACCEPTED);
    let CallEvent::Offered { location, .. } = rx.try_recv().unwrap() else {
        panic!()
    };
    assert!(matches!(location, ReportedLocation::Unusable { .. }));
}

#[tokio::test]
async fn an_event_that_cannot_be_stored_answers_503_and_a_retry_with_the_same_id_works() {
    let (app, rx) = setup();
    rx.set_failing(true);
    let (status, _) = signed(&app, OFFERED).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(rx.try_recv().is_none(), "nothing was accepted");
    rx.set_failing(false);
    assert_eq!(
        signed(&app, OFFERED).await.0,
        StatusCode::ACCEPTED,
        "the retry is not a duplicate"
    );
}

#[tokio::test]
async fn a_timestamp_near_the_smallest_integer_is_stale_not_a_crash() {
    let (app, rx) = setup();
    let ts = i64::MIN + 1;
    let (status, _) = post(&app, OFFERED, ts, Some(sign(SECRET, ts, OFFERED))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(rx.try_recv().is_none());
}
