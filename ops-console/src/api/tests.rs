//! The dispatch API through `Router::oneshot`, on a real engine and SQLite file.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use dispatch_core::StraightLine;
use http_body_util::BodyExt;
use maps::{ManualClock, Timestamp};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::*;
use crate::engine::{Engine, EngineConfig};
use crate::simulation::{BOGOTA_URBAN, SyntheticCity};
use crate::store::{EventStore, StoreLocation};

struct Api {
    _dir: tempfile::TempDir,
    router: Router,
}

async fn api() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open(&StoreLocation::Sqlite(dir.path().join("r.db")))
        .await
        .unwrap();
    let clock = Arc::new(ManualClock::new(
        Timestamp::parse_rfc3339("2026-11-23T12:30:00Z").unwrap(),
    ));
    let (engine, _) = Engine::start(
        store,
        clock,
        Arc::new(StraightLine::default()),
        None,
        EngineConfig::default(),
    )
    .await
    .unwrap();
    let (handle, _task) = engine.spawn();
    let demand = SyntheticCity::new(BOGOTA_URBAN, 5)
        .demand_cells(50)
        .into_iter()
        .collect();
    Api {
        _dir: dir,
        router: router(ApiState::new(handle, Arc::new(demand))),
    }
}

async fn send(api: &Api, request: Request<Body>) -> (StatusCode, Value) {
    let response = api.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, body)
}

async fn post(api: &Api, body: &Value) -> (StatusCode, Value) {
    send(
        api,
        Request::post("/api/v1/commands")
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap(),
    )
    .await
}

async fn get(api: &Api, uri: &str) -> (StatusCode, Value) {
    send(api, Request::get(uri).body(Body::empty()).unwrap()).await
}

fn register(id: &str) -> Value {
    json!({
        "command": "register_unit",
        "registration": {
            "id": id,
            "kind": "TAM",
            "provider": {"name": "Ambulancias Andinas SAS", "ownership": "private"},
            "base": {"lon": -74.07, "lat": 4.65},
            "crew": ["Conductor 1"]
        }
    })
}

#[tokio::test]
async fn a_command_with_a_key_is_stored_and_answered_with_its_events() {
    let api = api().await;
    let (status, body) = post(
        &api,
        &json!({"key": "reg-1", "command": register("TAM-0001")}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["first_seq"], 1);
    assert_eq!(body["events"][0]["event"], "unit_registered");
    let (status, again) = post(
        &api,
        &json!({"key": "reg-1", "command": register("TAM-0001")}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["duplicate"], true);
    let (status, units) = get(&api, "/api/v1/units").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(units.as_array().unwrap().len(), 1);
    assert_eq!(units[0]["unit"]["status"]["status"], "available");
}

#[tokio::test]
async fn the_key_may_come_in_the_idempotency_header() {
    let api = api().await;
    let (status, body) = send(
        &api,
        Request::post("/api/v1/commands")
            .header("idempotency-key", "reg-h")
            .body(Body::from(
                json!({"command": register("TAM-0002")}).to_string(),
            ))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = send(
        &api,
        Request::post("/api/v1/commands")
            .header("idempotency-key", "other")
            .body(Body::from(
                json!({"key": "reg-h", "command": register("TAM-0002")}).to_string(),
            ))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("differ")
    );
}

#[tokio::test]
async fn bad_requests_get_specific_errors_and_change_nothing() {
    let api = api().await;
    let cases: Vec<(Value, StatusCode, &str)> = vec![
        (
            json!({"command": register("TAM-0001")}),
            StatusCode::BAD_REQUEST,
            "needs an idempotency key",
        ),
        (
            json!({"key": "k", "command": {"command": "launch_rocket"}}),
            StatusCode::BAD_REQUEST,
            "unknown variant `launch_rocket`",
        ),
        (
            json!({"key": "k", "command": {"command": "register_unit", "registration": {"id": "TAM-1", "kind": "helicopter"}}}),
            StatusCode::BAD_REQUEST,
            "unknown variant `helicopter`, expected `TAB` or `TAM`",
        ),
        (
            json!({"key": "has space", "command": register("TAM-0001")}),
            StatusCode::BAD_REQUEST,
            "printable ASCII",
        ),
        (
            json!({"key": "k", "command": {"command": "return_to_service", "unit": "TAB-0404"}}),
            StatusCode::NOT_FOUND,
            "unknown unit TAB-0404",
        ),
        (
            json!({"key": "k", "command": {"command": "register_unit", "registration": {
                "id": "TAM-0009", "kind": "TAM",
                "provider": {"name": "X", "ownership": "private"},
                "base": {"lon": -8.61, "lat": 41.15}, "crew": []}}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unit base",
        ),
        (
            json!({"key": "k", "extra": 1, "command": register("TAM-0001")}),
            StatusCode::BAD_REQUEST,
            "unknown field `extra`",
        ),
    ];
    for (body, expected_status, expected_text) in cases {
        let (status, reply) = post(&api, &body).await;
        assert_eq!(status, expected_status, "{body} → {reply}");
        let message = reply["error"]["message"].as_str().unwrap();
        assert!(message.contains(expected_text), "{body} → {message}");
    }
    let (status, reply) = send(
        &api,
        Request::post("/api/v1/commands")
            .body(Body::from("{not json"))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    let (_, units) = get(&api, "/api/v1/units").await;
    assert_eq!(units, json!([]), "nothing was stored");
    // The key "k" was never consumed by the refusals.
    let (status, _) = post(&api, &json!({"key": "k", "command": register("TAM-0001")})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, reply) = post(&api, &json!({"key": "k2", "command": register("TAM-0001")})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(reply["error"]["code"], "duplicate");
}

#[tokio::test]
async fn views_answer_with_the_live_state_and_refuse_malformed_ids() {
    let api = api().await;
    post(
        &api,
        &json!({"key": "reg", "command": register("TAM-0001")}),
    )
    .await;
    let (status, body) = post(
        &api,
        &json!({"key": "open", "command": {
            "command": "open_incident", "call": null, "operator": "ana.rojas",
            "summary": "Dolor torácico",
            "location": {"address": "Calle 45 # 13-20", "point": {"lon": -74.068, "lat": 4.632}}
        }}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, incident) = get(&api, "/api/v1/incidents/INC-000001").await;
    assert_eq!(status, StatusCode::OK, "{incident}");
    assert_eq!(incident["summary"], "Dolor torácico");
    let (status, rec) = get(&api, "/api/v1/incidents/INC-000001/recommendation").await;
    assert_eq!(status, StatusCode::OK, "{rec}");
    assert_eq!(rec["units"]["candidates"][0]["unit"], "TAM-0001");
    let (status, _) = get(&api, "/api/v1/incidents/INC-000002").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = get(&api, "/api/v1/incidents/42").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("INC-000123"),
        "{body}"
    );
    let (status, body) = get(&api, "/api/v1/units/ta%20b").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, coverage) = get(&api, "/api/v1/coverage").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(coverage["cells"], 50);
    assert_eq!(coverage["units"], 1);
    let (status, kpis) = get(&api, "/api/v1/kpis").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(kpis["incidents"], 1);
    let (status, calls) = get(&api, "/api/v1/calls?status=queued").await;
    assert_eq!(status, StatusCode::OK, "{calls}");
    assert_eq!(calls, json!([]));
    let (status, _) = get(&api, "/api/v1/calls?status=lost").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn queued_calls_show_how_long_they_have_waited() {
    let api = api().await;
    let (status, body) = post(
        &api,
        &json!({"key": "call-1", "command": {"command": "record_call_event", "event": {
            "kind": "offered", "call": "sip:abc@carrier.co", "channel": "sip",
            "caller": {"asserted": "tel:+573001234567", "claimed": null, "display_name": null, "anonymous": false},
            "location": {"status": "absent"},
            "at": "2026-11-23T12:29:30Z"
        }}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, calls) = get(&api, "/api/v1/calls?status=queued").await;
    assert_eq!(status, StatusCode::OK, "{calls}");
    assert_eq!(calls.as_array().unwrap().len(), 1, "{calls}");
    assert_eq!(calls[0]["wait_seconds"], 30.0);
}
