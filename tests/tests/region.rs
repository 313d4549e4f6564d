//! `regula serve` with Bogotá's region pack: the 84 emergency departments, the 952
//! ambulances and the Línea 123 demand cells are registered once and drive coverage.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::time::Duration;

use nix::sys::signal::Signal;
use regula_tests::{RunningServer, http_get};
use serde_json::Value;

fn count(server: &RunningServer, path: &str) -> usize {
    let (status, _, body) = http_get(&server.addr, path);
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<Vec<Value>>(&body).unwrap().len()
}

#[test]
fn the_region_pack_is_registered_once_and_feeds_coverage() {
    let pack = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data");
    assert!(
        std::path::Path::new(pack).join("README.md").is_file(),
        "the region pack is missing at {pack}: see README.md for where to get it"
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("regula.toml");
    std::fs::write(&config, format!("[region]\npack = {pack:?}\n")).unwrap();
    let db = dir.path().join("regula.db").display().to_string();
    let config = config.display().to_string();
    let args = ["--config", config.as_str(), "--database-url", db.as_str()];

    let server = RunningServer::start(&args, &[]);
    assert_eq!(count(&server, "/api/v1/facilities"), 84);
    assert_eq!(count(&server, "/api/v1/units"), 952);
    let (_, _, body) = http_get(&server.addr, "/api/v1/coverage");
    let coverage: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(coverage["cells"], 540);
    assert_eq!(coverage["units"], 952);
    let (_, _, body) = http_get(&server.addr, "/api/v1/facilities");
    let facilities: Vec<Value> = serde_json::from_str(&body).unwrap();
    let tunal = facilities
        .iter()
        .find(|f| {
            f["facility"]["registration"]["name"]
                .as_str()
                .unwrap()
                .contains("Tunal")
        })
        .expect("El Tunal is a public ED");
    assert!(
        tunal["effective_occupancy_percent"].as_f64().unwrap() > 100.0,
        "{tunal}"
    );
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(20)), Some(0));

    // A restart finds them in the log and registers nothing again.
    let server = RunningServer::start(&args, &[]);
    assert_eq!(count(&server, "/api/v1/facilities"), 84);
    assert_eq!(count(&server, "/api/v1/units"), 952);
}

#[test]
fn a_missing_region_pack_is_a_clear_error_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("regula.toml");
    std::fs::write(&config, "[region]\npack = \"/no/such/pack\"\n").unwrap();
    let output = std::process::Command::new(regula_tests::regula_binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--database-url")
        .arg(dir.path().join("r.db"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The configuration is checked before anything starts: the pack is named with its
    // line, and no database is created.
    assert!(
        stderr.contains("/no/such/pack") && stderr.contains("does not exist"),
        "{stderr}"
    );
    assert!(!dir.path().join("r.db").exists());
}
