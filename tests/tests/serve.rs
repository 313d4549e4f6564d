//! `regula serve` end to end: the real binary on port 0, real HTTP, real signals.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::io::Read;
use std::time::Duration;

use nix::sys::signal::Signal;
use regula_tests::{RunningServer, http_get};

#[test]
fn serve_answers_health_and_metrics_then_exits_cleanly_on_sigterm() {
    let server = RunningServer::start(&[], &[]);

    let (status, _, body) = http_get(&server.addr, "/health");
    assert_eq!(status, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok");

    let (status, head, body) = http_get(&server.addr, "/metrics");
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain"),
        "{head}"
    );
    assert!(body.contains("regula_http_requests_total"), "{body}");
    assert!(body.contains(r#"route="/health""#), "{body}");

    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(15)), Some(0));
}

#[test]
fn sigint_also_stops_the_server_cleanly() {
    let server = RunningServer::start(&[], &[]);
    assert_eq!(http_get(&server.addr, "/health").0, 200);
    server.signal(Signal::SIGINT);
    assert_eq!(server.wait_exit(Duration::from_secs(15)), Some(0));
}

#[test]
fn json_logs_are_one_object_per_line_on_stderr() {
    use std::io::BufRead;
    let data = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(regula_tests::regula_binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url"])
        .arg(data.path().join("regula.db"))
        .env("REGULA_LOG_FORMAT", "json")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the server has bound its port (and so has logged its start).
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.contains("http://"), "{line}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines.len() >= 2,
        "expected start and stop log lines: {stderr}"
    );
    for line in lines {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON: {line}: {e}"));
        assert!(value["level"].is_string(), "{line}");
    }
}

#[test]
fn a_port_already_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = std::process::Command::new(regula_tests::regula_binary())
        .args(["serve", "--listen", &addr])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
}
