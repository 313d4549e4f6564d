//! A transfer from call to handover through the real binary, and its record read by the
//! patient's EPS from its feed — on SQLite and on a real PostgreSQL server.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use regula_tests::postgres::TempPostgres;
use regula_tests::{RunningServer, http_request, http_send_json};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const EPS_TOKEN: &str = "eps037-feed-token-0123456789abcdef";
const PUBLIC_TOKEN: &str = "red-publica-feed-token-0123456789";

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn command(server: &RunningServer, key: &str, command: &Value) -> Value {
    let (status, body) = http_send_json(
        &server.addr,
        "POST",
        "/api/v1/commands",
        &json!({"key": key, "command": command}).to_string(),
    );
    assert_eq!(status, 200, "{key}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn feed(server: &RunningServer, receiver: &str, token: &str, query: &str) -> (u16, Value) {
    let auth = format!("Bearer {token}");
    let (status, body) = http_request(
        &server.addr,
        "GET",
        &format!("/api/v1/feeds/{receiver}/messages{query}"),
        &[("Authorization", &auth)],
        "",
    );
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// Registers a unit and an ED, opens an incident for an EPS037 patient and drives the unit
/// from assignment to handover.
fn drive_a_transfer(server: &RunningServer) {
    command(
        server,
        "reg-unit",
        &json!({"command": "register_unit", "registration": {
            "id": "TAB-0001", "kind": "TAB",
            "provider": {"name": "Ambulancias Andinas SAS", "ownership": "private"},
            "base": {"lon": -74.07, "lat": 4.65}, "crew": ["Conductor", "Auxiliar APH"]
        }}),
    );
    command(
        server,
        "reg-ed",
        &json!({"command": "register_facility", "registration": {
            "id": "ED-001", "name": "Hospital de prueba",
            "location": {"lon": -74.06, "lat": 4.66}, "complexity": "high",
            "capabilities": ["trauma"], "ownership": "public", "subred": null
        }}),
    );
    let opened = command(
        server,
        "open",
        &json!({"command": "open_incident", "call": null, "operator": "ana.rojas",
            "summary": "Caída de moto",
            "location": {"address": "Calle 45 # 13-20", "point": {"lon": -74.068, "lat": 4.632}}}),
    );
    let incident = opened["events"][0]["incident"].as_str().unwrap().to_owned();
    command(
        server,
        "patient",
        &json!({"command": "record_patient", "incident": incident, "patient": {
            "document": {"kind": "CC", "number": "79123456"}, "name": null,
            "age_years": 34.0, "sex": "M",
            "eps": {"status": "affiliated", "eps": "EPS037", "regime": "contributory"}
        }}),
    );
    command(
        server,
        "assign",
        &json!({"command": "assign_unit", "incident": incident, "unit": "TAB-0001",
            "operator": "ana.rojas"}),
    );
    for (i, status) in [
        json!({"status": "en_route"}),
        json!({"status": "on_scene"}),
        json!({"status": "transporting", "destination": "ED-001"}),
        json!({"status": "at_hospital"}),
        json!({"status": "handed_over"}),
    ]
    .into_iter()
    .enumerate()
    {
        command(
            server,
            &format!("status-{i}"),
            &json!({"command": "report_status", "unit": "TAB-0001", "status": status}),
        );
    }
}

fn transfer_reaches_the_eps_feed(database_url: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("regula.toml");
    std::fs::write(
        &config,
        format!(
            "[feeds.EPS037]\ntoken_sha256 = \"{}\"\n\n[feeds.red_publica]\ntoken_sha256 = \"{}\"\n",
            sha256_hex(EPS_TOKEN),
            sha256_hex(PUBLIC_TOKEN)
        ),
    )
    .unwrap();
    let config = config.display().to_string();
    let mut args = vec!["--config", config.as_str()];
    if let Some(url) = database_url {
        args.extend(["--database-url", url]);
    }
    let server = RunningServer::start(&args, &[]);
    drive_a_transfer(&server);

    // The EPS reads its record; the public network has nothing; nobody else gets in.
    let (status, page) = feed(&server, "EPS037", EPS_TOKEN, "?pending=true");
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["pending"], 1, "{page}");
    let message = &page["messages"][0];
    assert_eq!(message["kind"], "transfer_record");
    let record = &message["payload"];
    let code = record["transfer"]["code"].as_str().unwrap();
    assert_eq!(record["transfer"]["completed"], true);
    let service = &record["rips"]["usuarios"][0]["servicios"]["otrosServicios"][0];
    assert_eq!(service["numAutorizacion"], code);
    assert_eq!(service["codTecnologiaSalud"], "601T01");
    assert_eq!(
        record["rips"]["usuarios"][0]["numDocumentoIdentificacion"],
        "79123456"
    );
    let (status, public) = feed(&server, "red_publica", PUBLIC_TOKEN, "");
    assert_eq!(status, 200);
    assert_eq!(public["messages"], json!([]));
    let (status, _) = feed(&server, "EPS037", PUBLIC_TOKEN, "");
    assert_eq!(status, 403);

    // Acknowledged, it leaves the pending list and stays readable.
    let id = message["id"].as_u64().unwrap();
    let auth = format!("Bearer {EPS_TOKEN}");
    let (status, body) = http_request(
        &server.addr,
        "POST",
        &format!("/api/v1/feeds/EPS037/messages/{id}/ack"),
        &[("Authorization", &auth)],
        "",
    );
    assert_eq!(status, 200, "{body}");
    let (_, page) = feed(&server, "EPS037", EPS_TOKEN, "?pending=true");
    assert_eq!(page["pending"], 0);
    let (_, page) = feed(&server, "EPS037", EPS_TOKEN, "");
    assert_eq!(page["messages"][0]["id"], id);
    assert!(page["messages"][0]["delivered_at"].is_string());
}

#[test]
fn a_transfer_record_reaches_its_eps_on_sqlite() {
    transfer_reaches_the_eps_feed(None);
}

#[test]
fn a_transfer_record_reaches_its_eps_on_postgres() {
    let postgres = TempPostgres::start();
    transfer_reaches_the_eps_feed(Some(&postgres.url));
}
