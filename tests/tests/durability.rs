//! The dispatch engine through the real binary: state survives restarts and SIGKILL on
//! SQLite and on a real PostgreSQL server, and consoles see stored events live.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::time::Duration;

use nix::sys::signal::Signal;
use regula_tests::postgres::TempPostgres;
use regula_tests::{RunningServer, http_get, http_send_json, regula_binary};
use serde_json::{Value, json};

fn register(id: &str) -> String {
    json!({"key": format!("reg-{id}"), "command": {
        "command": "register_unit",
        "registration": {
            "id": id, "kind": "TAM",
            "provider": {"name": "Ambulancias Andinas SAS", "ownership": "private"},
            "base": {"lon": -74.07, "lat": 4.65}, "crew": []
        }
    }})
    .to_string()
}

fn units(server: &RunningServer) -> Vec<Value> {
    let (status, _, body) = http_get(&server.addr, "/api/v1/units");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<Vec<Value>>(&body).unwrap()
}

fn restart_keeps_state(database_url: &str) {
    let server = RunningServer::start(&["--database-url", database_url], &[]);
    let (status, body) = http_send_json(
        &server.addr,
        "POST",
        "/api/v1/commands",
        &register("TAM-0001"),
    );
    assert_eq!(status, 200, "{body}");
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(15)), Some(0));

    let server = RunningServer::start(&["--database-url", database_url], &[]);
    let found = units(&server);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["unit"]["registration"]["id"], "TAM-0001");
    // The same key after the restart is recognised, not applied again.
    let (status, body) = http_send_json(
        &server.addr,
        "POST",
        "/api/v1/commands",
        &register("TAM-0001"),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["duplicate"],
        true
    );
}

#[test]
fn the_state_survives_a_restart_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("regula.db").display().to_string();
    restart_keeps_state(&url);
}

#[test]
fn the_state_survives_a_restart_on_postgres() {
    let postgres = TempPostgres::start();
    restart_keeps_state(&postgres.url);
}

fn crash_test(extra: &[&str]) -> Value {
    let output = std::process::Command::new(regula_binary())
        .args(["bench", "crash", "--kills", "20", "--json"])
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "crash test failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let figures: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(figures["kills"], 20);
    assert_eq!(figures["lost"], 0, "{figures}");
    assert_eq!(figures["duplicated"], 0, "{figures}");
    assert_eq!(figures["refused"], 0, "{figures}");
    assert_eq!(figures["consistent"], true, "{figures}");
    assert!(
        figures["snapshot_seq"].is_u64(),
        "the servers saved snapshots during the run: {figures}"
    );
    assert!(figures["acknowledged"].as_u64().unwrap() > 100, "{figures}");
    assert!(
        figures["retried"].as_u64().unwrap() > 0,
        "kills interrupted commands: {figures}"
    );
    figures
}

#[test]
fn twenty_sigkills_lose_and_duplicate_nothing_on_sqlite() {
    let figures = crash_test(&[]);
    assert_eq!(figures["backend"], "sqlite");
}

#[test]
fn twenty_sigkills_lose_and_duplicate_nothing_on_postgres() {
    let postgres = TempPostgres::start();
    let figures = crash_test(&["--database-url", &postgres.url]);
    assert_eq!(figures["backend"], "postgres");
}

#[test]
fn a_database_that_cannot_be_reached_is_a_clear_error_at_start() {
    let output = std::process::Command::new(regula_binary())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            "postgres://nobody@127.0.0.1:1/regula",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot open the event store at postgres"),
        "{stderr}"
    );
    let output = std::process::Command::new(regula_binary())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            "/no/such/dir/r.db",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("does not exist"), "{stderr}");
}

#[tokio::test]
async fn consoles_receive_stored_events_over_the_websocket() {
    use futures_util::StreamExt;
    let server = RunningServer::start(&[], &[]);
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/api/v1/stream", server.addr))
            .await
            .unwrap();
    let addr = server.addr.clone();
    let (status, body) = tokio::task::spawn_blocking(move || {
        http_send_json(&addr, "POST", "/api/v1/commands", &register("TAM-0042"))
    })
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .expect("an event within 10 s")
        .unwrap()
        .unwrap();
    let item: Value = serde_json::from_str(message.to_text().unwrap()).unwrap();
    assert_eq!(item["type"], "event");
    assert_eq!(item["seq"], 1);
    assert_eq!(item["event"]["event"], "unit_registered");
    assert_eq!(item["event"]["registration"]["id"], "TAM-0042");
}
