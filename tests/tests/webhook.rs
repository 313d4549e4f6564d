//! Webhook telephony through the real binary: an event is answered only once stored, its
//! id stays a duplicate after a restart, a call offered before a restart can still be
//! abandoned or ended after it, and a call an operator takes is announced to the provider
//! with a signed callback.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use nix::sys::signal::Signal;
use regula_tests::{RunningServer, http_request, http_send_json};
use serde_json::{Value, json};

const SECRET: &str = "a-provider-secret-of-32-bytes!!!";

fn sign(ts: i64, body: &str) -> String {
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{ts}.{body}").as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn now_secs() -> i64 {
    i64::try_from(
        std::time::SystemTime::UNIX_EPOCH
            .elapsed()
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

fn webhook(server: &RunningServer, body: &Value) -> (u16, Value) {
    let body = body.to_string();
    let ts = now_secs();
    let (status, reply) = http_request(
        &server.addr,
        "POST",
        "/telephony/calls",
        &[
            ("Content-Type", "application/json"),
            ("X-Regula-Timestamp", &ts.to_string()),
            ("X-Regula-Signature", &sign(ts, &body)),
        ],
        &body,
    );
    (status, serde_json::from_str(&reply).unwrap_or(Value::Null))
}

/// A provider's callback endpoint: answers 200 to every request and hands over each
/// request's headers and body.
fn provider() -> (String, mpsc::Receiver<(String, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/regula/take", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(8) {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap();
                }
                head.push_str(&line);
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .unwrap();
            let _ = tx.send((head, String::from_utf8(body).unwrap()));
        }
    });
    (url, rx)
}

#[test]
fn webhook_calls_survive_a_restart_and_a_taken_call_is_announced_to_the_provider() {
    let dir = tempfile::tempdir().unwrap();
    let (callback, received) = provider();
    let config = dir.path().join("regula.toml");
    std::fs::write(
        &config,
        format!("[webhook]\nsecret = \"{SECRET}\"\ncallback_url = \"{callback}\"\n"),
    )
    .unwrap();
    let database = dir.path().join("regula.db");
    let args = [
        "--config",
        config.to_str().unwrap(),
        "--database-url",
        database.to_str().unwrap(),
    ];
    let offered = |event: &str, call: &str| {
        json!({"event_id": event, "type": "offered", "call_id": call,
               "caller": {"asserted": "tel:+573001234567"}})
    };
    let server = RunningServer::start(&args, &[]);
    assert_eq!(webhook(&server, &offered("e1", "CA1")).0, 202);
    assert_eq!(webhook(&server, &offered("e2", "CA2")).0, 202);
    let (status, body) = webhook(&server, &offered("e1", "CA1"));
    assert_eq!((status, &body["status"]), (200, &json!("duplicate")));
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(15)), Some(0));

    // After a restart: the same event id is still a duplicate (nothing recorded twice) …
    let server = RunningServer::start(&args, &[]);
    let (status, body) = webhook(&server, &offered("e1", "CA1"));
    assert_eq!(
        (status, &body["status"]),
        (200, &json!("duplicate")),
        "{body}"
    );
    // … a call offered before the restart can still be abandoned …
    let abandoned = json!({"event_id": "e3", "type": "abandoned", "call_id": "CA2"});
    assert_eq!(webhook(&server, &abandoned).0, 202);
    // … and one that does not fit the call's state is still refused.
    let ended = json!({"event_id": "e4", "type": "ended", "call_id": "CA2"});
    assert_eq!(webhook(&server, &ended).0, 409);

    // An operator takes CA1: the provider is told where to connect it, signed.
    let (status, body) = http_send_json(
        &server.addr,
        "POST",
        "/api/v1/commands",
        &json!({"key": "take-1", "command": {"command": "take_call",
            "call": "webhook:CA1", "operator": "ana.rojas", "position": "sip:pos7@10.0.0.7"}})
        .to_string(),
    );
    assert_eq!(status, 200, "{body}");
    let (head, callback_body) = received.recv_timeout(Duration::from_secs(15)).unwrap();
    let announced: Value = serde_json::from_str(&callback_body).unwrap();
    assert_eq!(announced["type"], "take");
    assert_eq!(announced["call_id"], "CA1");
    assert_eq!(announced["position"], "sip:pos7@10.0.0.7");
    let header = |name: &str| {
        head.lines()
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
            })
            .unwrap()
    };
    let ts: i64 = header("x-regula-timestamp").parse().unwrap();
    assert_eq!(header("x-regula-signature"), sign(ts, &callback_body));
    // The provider bridges it and reports it.
    let connected = json!({"event_id": "e5", "type": "connected", "call_id": "CA1",
                           "position": "sip:pos7@10.0.0.7"});
    assert_eq!(webhook(&server, &connected).0, 202);
    let ended = json!({"event_id": "e6", "type": "ended", "call_id": "CA1"});
    assert_eq!(webhook(&server, &ended).0, 202);
}
