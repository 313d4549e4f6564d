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
    engine: EngineHandle,
    clock: Arc<ManualClock>,
}

async fn api() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open(&StoreLocation::Sqlite(dir.path().join("r.db")))
        .await
        .unwrap();
    let clock = Arc::new(ManualClock::new(
        Timestamp::parse_rfc3339("2026-11-23T12:30:00Z").unwrap(),
    ));
    let clock_handle: Arc<dyn maps::Clock> = clock.clone();
    let clock_for_tests = clock.clone();
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
    let clock_for_api = clock_handle.clone();
    let demand = SyntheticCity::new(BOGOTA_URBAN, 5)
        .demand_cells(50)
        .into_iter()
        .collect();
    Api {
        _dir: dir,
        clock: clock_for_tests,
        engine: handle.clone(),
        router: router(ApiState::new(
            handle,
            Arc::new(demand),
            ::triage::ProtocolSet::builtin().unwrap(),
            clock_for_api,
        )),
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
async fn an_incident_closed_more_than_the_history_ago_is_archived_not_unknown() {
    let api = api().await;
    let (status, body) = post(
        &api,
        &json!({"key": "open", "command": {
            "command": "open_incident", "call": null, "operator": "ana.rojas",
            "summary": "Llamada cancelada",
            "location": {"address": "Calle 45 # 13-20", "point": {"lon": -74.068, "lat": 4.632}}
        }}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = post(
        &api,
        &json!({"key": "close", "command": {
            "command": "close_incident", "incident": "INC-000001",
            "reason": {"kind": "cancelled", "reason": "El paciente ya no lo necesita"}
        }}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = get(&api, "/api/v1/incidents/INC-000001").await;
    assert_eq!(status, StatusCode::OK, "still in the live views");

    // Eight days later, with any event recorded since, it has left the live state.
    api.clock
        .advance(maps::TravelTime::from_minutes(8 * 24 * 60));
    let (status, body) = post(
        &api,
        &json!({"key": "reg", "command": register("TAM-0001")}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = get(&api, "/api/v1/incidents/INC-000001").await;
    assert_eq!(status, StatusCode::GONE, "{body}");
    assert_eq!(body["error"]["code"], "archived");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("more than 7 days ago"),
        "{body}"
    );
    // One that never existed is still unknown.
    let (status, _) = get(&api, "/api/v1/incidents/INC-000002").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = get(&api, "/api/v1/transfers/TRF-000001").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn queued_calls_show_how_long_they_have_waited() {
    let api = api().await;
    let offered = json!({
        "kind": "offered", "call": "sip:abc@carrier.co", "channel": "sip",
        "caller": {"asserted": "tel:+573001234567", "claimed": null, "display_name": null, "anonymous": false},
        "location": {"status": "absent"},
        "at": "2026-11-23T12:29:30Z"
    });
    // Only the telephony doors record call events: a client cannot forge a call.
    let (status, body) = post(
        &api,
        &json!({"key": "call-1", "command": {"command": "record_call_event", "event": offered}}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "reserved_command");
    let (_, calls) = get(&api, "/api/v1/calls?status=queued").await;
    assert_eq!(calls.as_array().unwrap().len(), 0, "{calls}");
    let keys = crate::engine::InternalKeys::new(Arc::from(&b"test log"[..]));
    let event: dispatch_core::intake::CallEvent = serde_json::from_value(offered).unwrap();
    api.engine
        .command(
            crate::telephony::call_event_key(&keys, &event),
            Command::RecordCallEvent { event },
        )
        .await
        .unwrap();
    let (status, calls) = get(&api, "/api/v1/calls?status=queued").await;
    assert_eq!(status, StatusCode::OK, "{calls}");
    assert_eq!(calls.as_array().unwrap().len(), 1, "{calls}");
    assert_eq!(calls[0]["wait_seconds"], 30.0);
}

#[tokio::test]
async fn timer_commands_and_the_system_key_namespace_are_refused_to_clients() {
    let api = api().await;
    let (status, body) = post(
        &api,
        &json!({"key": "k-1", "command": {"command": "check_gps", "unit": "TAB-0001"}}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "reserved_command");
    let (status, body) = post(&api, &register_unit("#call:abandoned:0011", "TAB-0001")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "reserved_key");
    let (_, units) = get(&api, "/api/v1/units").await;
    assert_eq!(
        units.as_array().unwrap().len(),
        0,
        "nothing was applied: {units}"
    );
}

fn register_unit(key: &str, id: &str) -> Value {
    json!({"key": key, "command": {
        "command": "register_unit",
        "registration": {
            "id": id, "kind": "TAB",
            "provider": {"name": "Ambulancias Andinas SAS", "ownership": "private"},
            "base": {"lon": -74.07, "lat": 4.65}, "crew": []
        }
    }})
}

#[tokio::test]
async fn a_key_names_one_command_and_reusing_it_for_another_is_a_conflict() {
    let api = api().await;
    let (status, first) = post(&api, &register_unit("reg-1", "TAB-0001")).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    // The same command again: the duplicate, with its original events' positions.
    let (status, again) = post(&api, &register_unit("reg-1", "TAB-0001")).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["first_seq"], first["first_seq"]);
    // Another command under the same key is refused, naming the original command.
    let (status, body) = post(&api, &register_unit("reg-1", "TAB-0002")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "idempotency_key_reused");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("register_unit"),
        "{body}"
    );
    let (_, units) = get(&api, "/api/v1/units").await;
    assert_eq!(units.as_array().unwrap().len(), 1, "{units}");
}

#[tokio::test]
async fn unknown_fields_anywhere_in_a_command_are_refused_with_their_path() {
    let api = api().await;
    let (status, body) = post(&api, &register_unit("reg-1", "TAB-0001")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, before) = get(&api, "/api/v1/units/TAB-0001").await;
    let (status, body) = post(
        &api,
        &json!({"key": "fix-1", "command": {"command": "report_position", "unit": "TAB-0001",
            "fix": {"point": {"lon": -74.07, "lat": 4.65}, "at": "2026-11-23T12:30:00Z",
                    "speed": null, "speed_kmh": 40}}}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("speed_kmh"), "{message}");
    assert!(message.contains("command.fix"), "{message}");
    // Nothing was recorded.
    let (_, after) = get(&api, "/api/v1/units/TAB-0001").await;
    assert_eq!(before, after);
}

async fn post_to(api: &Api, uri: &str, body: &Value) -> (StatusCode, Value) {
    send(
        api,
        Request::post(uri)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn an_operator_triages_a_chest_pain_call_question_by_question_and_records_it() {
    let api = api().await;
    let (status, complaints) = get(&api, "/api/v1/triage/complaints").await;
    assert_eq!(status, StatusCode::OK);
    assert!(complaints.as_array().unwrap().len() >= 32);
    assert!(
        complaints
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["complaint"] == "dolor_toracico")
    );
    let (status, mut view) = post_to(
        &api,
        "/api/v1/triage/sessions",
        &json!({"complaint": "dolor_toracico", "age_years": 58, "sex": "M"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    let session = view["session"].as_u64().unwrap();
    // Vital threats first, then the chest-pain questions; say yes to pressing pain and
    // sweating, no to the rest.
    assert_eq!(
        view["question"]["file"], "protocols/amenazas_vitales.toml",
        "vital threats come first: {view}"
    );
    let mut asked = 0;
    while view["outcome"].is_null() {
        let finding = view["question"]["finding"].as_str().unwrap().to_owned();
        assert!(!view["question"]["why"].as_str().unwrap().is_empty());
        let present = matches!(finding.as_str(), "dolor_opresivo" | "diaforesis");
        let (status, next) = post_to(
            &api,
            &format!("/api/v1/triage/sessions/{session}/answers"),
            &json!({"finding": finding, "present": present}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{next}");
        view = next;
        asked += 1;
        assert!(asked < 80, "the triage must end");
    }
    let outcome = view["outcome"].clone();
    assert_eq!(outcome["computed"]["route"], "sca", "{outcome}");
    assert!(
        outcome["computed"]["level"] == "I" || outcome["computed"]["level"] == "II",
        "{outcome}"
    );
    // Lowering urgency needs a reason.
    let (status, body) = post_to(
        &api,
        &format!("/api/v1/triage/sessions/{session}/override"),
        &json!({"level": "V", "disposition": "orientacion_autocuidado", "route": null, "reason": null}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("exige un motivo"),
        "{body}"
    );

    let (status, body) = post(
        &api,
        &json!({"key": "open", "command": {
            "command": "open_incident", "call": null, "operator": "ana.rojas",
            "summary": "Dolor torácico", "location": null}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = post_to(
        &api,
        &format!("/api/v1/triage/sessions/{session}/record"),
        &json!({"key": "triage-1", "incident": "INC-000001"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["events"][0]["event"], "assessed");
    let (_, incident) = get(&api, "/api/v1/incidents/INC-000001").await;
    assert_eq!(incident["assessment"]["route"], "sca");
    assert_eq!(
        incident["assessment"]["triage"]["complaint"],
        "dolor_toracico"
    );
    assert!(
        incident["assessment"]["triage"]["trace"]
            .as_array()
            .unwrap()
            .len()
            >= 3
    );
    assert_eq!(incident["status"]["status"], "awaiting_unit", "{incident}");
    // The session is closed once recorded.
    let (status, _) = get(&api, &format!("/api/v1/triage/sessions/{session}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_triage_requests_are_refused_with_the_reason() {
    let api = api().await;
    let cases = [
        (
            json!({"complaint": "dolor_toracic", "age_years": 40, "sex": "F"}),
            StatusCode::BAD_REQUEST,
            "dolor_toracico",
        ),
        (
            json!({"complaint": "embarazo_sangrado", "age_years": 30, "sex": "M", "pregnancy_weeks": 20}),
            StatusCode::BAD_REQUEST,
            "",
        ),
        (
            json!({"complaint": "cefalea", "age_years": -3, "sex": "F"}),
            StatusCode::BAD_REQUEST,
            "",
        ),
        (
            json!({"complaint": "cefalea", "age_years": 30, "sex": "W"}),
            StatusCode::BAD_REQUEST,
            "unknown variant `W`",
        ),
    ];
    for (body, expected, text) in cases {
        let (status, reply) = post_to(&api, "/api/v1/triage/sessions", &body).await;
        assert_eq!(status, expected, "{body} → {reply}");
        assert!(
            reply["error"]["message"].as_str().unwrap().contains(text),
            "{body} → {reply}"
        );
    }
    let (_, view) = post_to(
        &api,
        "/api/v1/triage/sessions",
        &json!({"complaint": "cefalea", "age_years": 30, "sex": "F"}),
    )
    .await;
    let session = view["session"].as_u64().unwrap();
    let (status, reply) = post_to(
        &api,
        &format!("/api/v1/triage/sessions/{session}/answers"),
        &json!({"finding": "dolor_opresivo_inventado", "present": true}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{reply}");
    let (status, _) = post_to(
        &api,
        &format!("/api/v1/triage/sessions/{session}/record"),
        &json!({"key": "r", "incident": "INC-000001"}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "no outcome yet");
    let (status, _) = get(&api, "/api/v1/triage/sessions/999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = get(&api, "/api/v1/triage/sessions/abc").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// The API behind the real server (limits, peer addresses) on loopback.
async fn serve_api(
    api: &Api,
    stream: StreamLimits,
) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let http = crate::server::HttpLimits::default();
    let app = crate::server::router(
        crate::server::AppState::new(crate::telemetry::metrics_handle()).with_limits(&http, stream),
        api.router.clone(),
    );
    let (listener, addr) = crate::server::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(crate::server::serve(
        listener,
        app,
        async {
            let _ = rx.await;
        },
        std::time::Duration::from_secs(5),
        http,
    ));
    (addr, tx)
}

const UPGRADE: &str = "GET /api/v1/stream HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

/// Reads everything until the server closes (bounded).
async fn read_until_closed(stream: &mut tokio::net::TcpStream) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut seen = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_mins(1),
        stream.read_to_end(&mut seen),
    )
    .await
    .expect("the server must close the connection");
    seen
}

#[tokio::test]
async fn a_stream_frame_above_the_limit_closes_the_socket() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message as WsMessage;
    let api = api().await;
    let (addr, _stop) = serve_api(&api, StreamLimits::default()).await;
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/api/v1/stream"))
        .await
        .unwrap();
    socket
        .send(WsMessage::text("x".repeat(100 * 1024)))
        .await
        .unwrap();
    let mut closed = false;
    for _ in 0..100 {
        match tokio::time::timeout(std::time::Duration::from_mins(1), socket.next())
            .await
            .expect("the server must close the socket")
        {
            Some(Ok(WsMessage::Close(_)) | Err(_)) | None => {
                closed = true;
                break;
            }
            Some(Ok(_)) => {}
        }
    }
    assert!(closed);
    let metrics = crate::telemetry::metrics_handle().render();
    assert!(
        metrics.contains(r#"regula_http_refused_total{reason="stream_message_too_large"}"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_stream_client_that_never_answers_pings_is_dropped() {
    use tokio::io::AsyncWriteExt;
    let api = api().await;
    let limits = StreamLimits {
        ping_interval: std::time::Duration::from_secs(1),
        dead_peer_after: std::time::Duration::from_secs(2),
        ..StreamLimits::default()
    };
    let (addr, _stop) = serve_api(&api, limits).await;
    // A raw socket that upgrades and then reads without ever answering.
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(UPGRADE.as_bytes()).await.unwrap();
    let seen = read_until_closed(&mut stream).await;
    let text = String::from_utf8_lossy(&seen);
    assert!(text.starts_with("HTTP/1.1 101"), "{text}");
    let head_end = seen.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    // 0x89: a final ping frame from the server.
    assert!(
        seen[head_end..].contains(&0x89),
        "the server pinged before dropping the client"
    );
    let metrics = crate::telemetry::metrics_handle().render();
    assert!(
        metrics.contains(r#"regula_http_refused_total{reason="stream_dead_peer"}"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn stream_clients_beyond_the_cap_get_503_json_before_upgrading() {
    use tokio::io::AsyncWriteExt;
    let api = api().await;
    let limits = StreamLimits {
        max_clients: 1,
        ..StreamLimits::default()
    };
    let (addr, _stop) = serve_api(&api, limits).await;
    let (first, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/api/v1/stream"))
        .await
        .unwrap();
    let mut second = tokio::net::TcpStream::connect(addr).await.unwrap();
    second
        .write_all(
            UPGRADE
                .replace("\r\n\r\n", "\r\nconnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let reply = String::from_utf8_lossy(&read_until_closed(&mut second).await).into_owned();
    assert!(reply.starts_with("HTTP/1.1 503"), "{reply}");
    let body: Value = serde_json::from_str(reply.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(body["error"]["code"], "too_many_streams", "{reply}");

    // The place frees when the first client leaves.
    drop(first);
    let mut upgraded = false;
    for _ in 0..200 {
        if tokio_tungstenite::connect_async(format!("ws://{addr}/api/v1/stream"))
            .await
            .is_ok()
        {
            upgraded = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(upgraded);
}

/// One HTTP/1.1 request on a kept-alive connection; returns the status and the JSON body.
async fn keep_alive_post(
    stream: &mut tokio::net::TcpStream,
    path: &str,
    body: &str,
) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let status: u16 = head[9..12].parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap();
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.unwrap();
    (status, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn a_triage_flood_from_one_console_does_not_lock_out_another() {
    let api = api().await;
    let (addr, _stop) = serve_api(&api, StreamLimits::default()).await;
    let start = r#"{"complaint": "dolor_toracico", "age_years": 58, "sex": "M"}"#;
    let before = crate::server::tests::rss_kib();
    let mut flooder = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut started, mut limited) = (0, 0);
    for _ in 0..5_000 {
        let (status, body) = keep_alive_post(&mut flooder, "/api/v1/triage/sessions", start).await;
        match status {
            200 => started += 1,
            429 => {
                assert_eq!(
                    body["error"]["code"], "triage_sessions_per_client",
                    "{body}"
                );
                let message = body["error"]["message"].as_str().unwrap();
                assert!(
                    message.contains(&format!("limit {}", triage::MAX_SESSIONS_PER_CLIENT)),
                    "{message}"
                );
                limited += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    let after = crate::server::tests::rss_kib();
    println!(
        "RSS triage flood (5000 POSTs from one console): before {before} KiB, after {after} KiB"
    );
    assert_eq!(started, triage::MAX_SESSIONS_PER_CLIENT);
    assert_eq!(limited, 5_000 - triage::MAX_SESSIONS_PER_CLIENT);

    // Another console (another loopback address) still starts its triage.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut other = socket.connect(addr).await.unwrap();
    let (status, body) = keep_alive_post(&mut other, "/api/v1/triage/sessions", start).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["question"].is_object(), "{body}");

    // Idle sessions are evicted: an hour later the flooding console may start again.
    api.clock.advance(triage::SESSION_IDLE_LIMIT);
    let (status, body) = keep_alive_post(&mut flooder, "/api/v1/triage/sessions", start).await;
    assert_eq!(status, 200, "{body}");
}
