//! An emergency call end to end through the real binary: SIPp calls `regula serve` over SIP
//! with a PIDF-LO location, the call appears in the operators' queue with who is calling
//! and from where, an operator takes it through the API, the gateway connects it to the
//! operator's phone (a second SIPp), and the hang-up is recorded.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use regula_tests::{RunningServer, http_get, http_send_json};
use serde_json::{Value, json};

fn scenario(name: &str) -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../telephony-gateway/tests/sipp"
    ))
    .join(name)
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn sipp(args: &[String], log: &std::path::Path) -> Child {
    let out = std::fs::File::create(log).unwrap();
    Command::new("sipp")
        .args(args)
        .arg("-nostdin")
        .current_dir(log.parent().unwrap())
        .stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start sipp ({e}): install the Debian package `sip-tester` (.ci/run does)"
            )
        })
}

fn wait_success(mut child: Child, log: &std::path::Path, what: &str) {
    for _ in 0..400 {
        if let Some(status) = child.try_wait().unwrap() {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            assert!(status.success(), "{what} failed ({status}):\n{text}");
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    panic!("{what} did not finish");
}

fn calls(server: &RunningServer) -> Vec<Value> {
    let (status, _, body) = http_get(&server.addr, "/api/v1/calls");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn wait_for_call(server: &RunningServer, status: &str) -> Value {
    for _ in 0..200 {
        if let Some(call) = calls(server).into_iter().find(|c| c["status"] == status) {
            return call;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no call became {status}: {:?}", calls(server));
}

#[test]
fn a_sip_call_with_location_is_queued_taken_connected_and_ended() {
    let dir = tempfile::tempdir().unwrap();
    let sip_port = free_udp_port();
    // The carrier (SIPp on 127.0.0.1) is a trunk trusted with P-Asserted-Identity: without
    // trunks the gateway believes nobody's network-asserted identity.
    let config = dir.path().join("regula.toml");
    std::fs::write(
        &config,
        "[[sip.trunks]]\nname = \"carrier\"\naddresses = [\"127.0.0.1/32\"]\ntrust_asserted_identity = true\n",
    )
    .unwrap();
    let server = RunningServer::start(
        &[
            "--sip-listen",
            &format!("127.0.0.1:{sip_port}"),
            "--config",
            config.to_str().unwrap(),
        ],
        &[],
    );
    let phone_port = free_udp_port();
    let phone_log = dir.path().join("operator.log");
    let phone = sipp(
        &[
            "-sf".into(),
            scenario("uas_operator.xml").display().to_string(),
            "-i".into(),
            "127.0.0.1".into(),
            "-p".into(),
            phone_port.to_string(),
            "-m".into(),
            "1".into(),
            "-timeout".into(),
            "40s".into(),
            "-timeout_error".into(),
        ],
        &phone_log,
    );
    let caller_log = dir.path().join("caller.log");
    let caller = sipp(
        &[
            format!("127.0.0.1:{sip_port}"),
            "-sf".into(),
            scenario("uac_pidf_connect.xml").display().to_string(),
            "-i".into(),
            "127.0.0.1".into(),
            "-p".into(),
            free_udp_port().to_string(),
            "-m".into(),
            "1".into(),
            "-timeout".into(),
            "40s".into(),
            "-timeout_error".into(),
        ],
        &caller_log,
    );

    let queued = wait_for_call(&server, "queued");
    assert_eq!(queued["channel"], "sip");
    assert_eq!(queued["caller"]["asserted"], "tel:+573001234567");
    assert_eq!(queued["location"]["status"], "reported");
    assert!((queued["location"]["position"]["lat"].as_f64().unwrap() - 4.6097).abs() < 1e-9);
    assert_eq!(queued["location"]["uncertainty"], 25.0);
    assert!(queued["wait_seconds"].as_f64().unwrap() >= 0.0);

    let take = json!({"key": "take-1", "command": {
        "command": "take_call", "call": queued["id"], "operator": "ana.rojas",
        "position": format!("sip:operator@127.0.0.1:{phone_port}")
    }});
    let (status, body) =
        http_send_json(&server.addr, "POST", "/api/v1/commands", &take.to_string());
    assert_eq!(status, 200, "{body}");

    wait_success(caller, &caller_log, "the caller (SIPp UAC)");
    wait_success(phone, &phone_log, "the operator phone (SIPp UAS)");
    let ended = wait_for_call(&server, "ended");
    assert_eq!(ended["id"], queued["id"]);
    assert!(ended["connected_at"].is_string(), "{ended}");
    assert_eq!(
        ended["position"],
        format!("sip:operator@127.0.0.1:{phone_port}")
    );

    let (_, _, metrics) = http_get(&server.addr, "/metrics");
    assert!(
        metrics.contains("regula_call_offered_to_queued_seconds"),
        "{metrics}"
    );
    assert!(
        metrics.contains("regula_telephony_calls_offered_total"),
        "{metrics}"
    );
}

#[test]
fn the_sip_load_benchmark_runs_calls_through_the_whole_system() {
    let output = Command::new(regula_tests::regula_binary())
        .args(["bench", "load", "--cps", "10", "--seconds", "2", "--json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let figures: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(figures["calls"], 20);
    assert_eq!(figures["failed"], 0, "{figures}");
    assert_eq!(figures["ended"], 20, "{figures}");
    assert!(figures["queue_latency_ms_p99"].as_f64().unwrap() >= 0.0);
}
