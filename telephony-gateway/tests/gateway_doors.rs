//! The gateway's bounded doors over real loopback sockets: TCP connection caps and
//! keep-alive limits, the trunk allow-list, digest authentication, trusted identities,
//! the per-source cap on waiting calls and the maximum time in queue.
//!
//! Distinct sources are distinct loopback addresses (127.0.0.2, 127.0.0.3, …): Linux
//! routes all of 127.0.0.0/8 to `lo`. A test that cannot bind one fails and says so.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::{Client, cancel_or_ack, invite, loopback, next_event, start, test_config, trunk};
use dispatch_core::intake::CallEvent;
use dispatch_core::privacy::Sensitive;
use telephony_gateway::SipConfig;
use telephony_gateway::config::DigestCredentials;
use telephony_gateway::sip::{HeaderLookup, HeaderName, Message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;

async fn tcp_from(ip: IpAddr, gateway: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(ip, 0))
        .unwrap_or_else(|e| panic!("cannot bind {ip} as a TCP source: {e}"));
    socket.connect(gateway).await.unwrap()
}

fn tcp_options(n: u64) -> String {
    format!(
        "OPTIONS sip:gw@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bK-topt{n}\r\nMax-Forwards: 70\r\nFrom: <sip:mon@127.0.0.1>;tag=t{n}\r\nTo: <sip:gw@127.0.0.1>\r\nCall-ID: topt{n}@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Whether a connection is served (an OPTIONS gets 200) or was closed by the gateway.
async fn served(mut stream: TcpStream, n: u64) -> (bool, TcpStream) {
    if stream.write_all(tcp_options(n).as_bytes()).await.is_err() {
        return (false, stream);
    }
    let mut buf = vec![0u8; 4096];
    let mut got = String::new();
    loop {
        let read = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("connection {n}: neither answered nor closed within 3 s"));
        match read {
            Ok(0) | Err(_) => return (false, stream),
            Ok(k) => {
                got.push_str(&String::from_utf8_lossy(&buf[..k]));
                if got.contains("SIP/2.0 200 OK") {
                    return (true, stream);
                }
            }
        }
    }
}

/// Opens `count` connections from `ip`, and returns the ones the gateway serves.
async fn open_many(ip: IpAddr, gateway: SocketAddr, count: usize) -> Vec<TcpStream> {
    let mut streams = Vec::new();
    for _ in 0..count {
        streams.push(tcp_from(ip, gateway).await);
    }
    let mut checks = JoinSet::new();
    for stream in streams {
        checks.spawn(served(stream, common::rand_suffix()));
    }
    let mut open = Vec::new();
    while let Some(result) = checks.join_next().await {
        let (ok, stream) = result.unwrap();
        if ok {
            open.push(stream);
        }
    }
    open
}

/// An INVITE over TCP: reads until 180 Ringing.
async fn tcp_invite(stream: &mut TcpStream, call: &str) {
    let port = stream.local_addr().unwrap().port();
    let text = invite(port, call, call, "").replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    stream.write_all(text.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 8192];
    let mut got = String::new();
    while !got.contains("180 Ringing") {
        let n = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buf))
            .await
            .expect("an answer to the INVITE")
            .unwrap();
        assert!(n > 0, "the trunk's connection was closed: {got}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

async fn expect_offered(events: &mut tokio::sync::mpsc::Receiver<CallEvent>, call: &str) {
    match next_event(events).await {
        CallEvent::Offered { call: id, .. } => {
            assert!(id.as_str().contains(call), "{id} is not {call}");
        }
        other => panic!("expected {call} offered, got {other:?}"),
    }
}

#[tokio::test]
async fn tcp_caps_refuse_the_excess_while_a_trunk_still_reaches_the_queue() {
    let carrier = loopback(2);
    let flood_b = loopback(3);
    let config = SipConfig {
        max_connections_per_peer: 8,
        max_tcp_connections: 12,
        trunks: vec![trunk("carrier", "127.0.0.2", true)],
        ..test_config()
    };
    let (gw, mut events) = start(config, 64).await;
    let addr = gw.local_addr();

    // One address: 40 connections, only the per-peer cap's 8 are served.
    let from_one = open_many(IpAddr::from([127, 0, 0, 1]), addr, 40).await;
    assert_eq!(from_one.len(), 8, "per-peer cap");
    // Another address fills the global cap of non-trunk connections: 4 of 6 served.
    let from_other = open_many(flood_b, addr, 6).await;
    assert_eq!(from_other.len(), 4, "global cap of non-trunk connections");

    // During the flood, the carrier connects and its INVITE reaches the queue, over TCP
    // and over UDP.
    let mut trunk_tcp = tcp_from(carrier, addr).await;
    tcp_invite(&mut trunk_tcp, "during-tcp").await;
    expect_offered(&mut events, "during-tcp").await;
    let trunk_udp = Client::from(carrier, addr).await;
    trunk_udp
        .send(invite(trunk_udp.port(), "during-udp", "during-udp", "").as_bytes())
        .await;
    trunk_udp.expect_status(180).await;
    expect_offered(&mut events, "during-udp").await;

    // After the flood, the slots are free again.
    drop(from_one);
    drop(from_other);
    let mut after = None;
    for _ in 0..50 {
        let again = open_many(IpAddr::from([127, 0, 0, 1]), addr, 1).await;
        if !again.is_empty() {
            after = Some(again);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(after.is_some(), "slots released when connections close");
    let mut trunk_after = tcp_from(carrier, addr).await;
    tcp_invite(&mut trunk_after, "after-tcp").await;
    expect_offered(&mut events, "after-tcp").await;
    gw.shutdown().await.unwrap();
}

#[tokio::test]
async fn keepalives_get_pongs_but_cannot_hold_a_connection_past_the_keepalive_limit() {
    let config = SipConfig {
        tcp_idle_timeout_secs: 1,
        tcp_keepalive_max_secs: 2,
        ..test_config()
    };
    let (gw, _events) = start(config, 16).await;
    let mut pinging = TcpStream::connect(gw.local_addr()).await.unwrap();
    let mut pongs = 0;
    let mut closed = false;
    let mut buf = [0u8; 64];
    // Pings every 250 ms, for at most 10 s: the idle timeout alone would never fire.
    for _ in 0..40 {
        if pinging.write_all(b"\r\n\r\n").await.is_err() {
            closed = true;
            break;
        }
        match tokio::time::timeout(Duration::from_millis(250), pinging.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(n)) => {
                assert!(buf[..n].iter().all(|b| *b == b'\r' || *b == b'\n'));
                pongs += buf[..n].windows(2).filter(|w| w == b"\r\n").count();
            }
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(pongs >= 1, "a CRLFCRLF ping is answered with a CRLF pong");
    assert!(closed, "keep-alives alone kept the connection open");

    // A silent connection is closed by the idle timeout.
    let mut silent = TcpStream::connect(gw.local_addr()).await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(10), silent.read(&mut buf))
        .await
        .expect("closed by the idle timeout")
        .unwrap_or(0);
    assert_eq!(n, 0);
    gw.shutdown().await.unwrap();
}

/// Sends `count` INVITEs from one client and returns each call's highest status.
async fn flood(client: &Client, prefix: &str, count: usize) -> HashMap<String, u16> {
    for i in 0..count {
        let call = format!("{prefix}{i}");
        client
            .send(invite(client.port(), &call, &call, "").as_bytes())
            .await;
        if i % 20 == 19 {
            // Paced a little so that the answers fit the client's receive buffer.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let mut status: HashMap<String, u16> = HashMap::new();
    while let Some(message) = client.recv(Duration::from_millis(700)).await {
        if let Message::Response(r) = message {
            let call = r.core.call_id.trim_end_matches("@127.0.0.1").to_owned();
            let best = status.entry(call).or_insert(0);
            *best = (*best).max(r.status);
        }
    }
    status
}

#[tokio::test]
async fn invites_from_outside_every_trunk_get_403_and_never_reach_the_queue() {
    let carrier = loopback(2);
    let config = SipConfig {
        trunks: vec![trunk("carrier", "127.0.0.2", false)],
        ..test_config()
    };
    let (gw, mut events) = start(config, 256).await;
    let spoofer = Client::new(gw.local_addr()).await;
    let answered = flood(&spoofer, "spoof", 198).await;
    assert_eq!(answered.len(), 198, "every INVITE answered");
    assert!(answered.values().all(|s| *s == 403), "{answered:?}");
    assert!(
        events.try_recv().is_err(),
        "a refused call is never offered"
    );
    assert_eq!(gw.queue_depth(), 0);

    let real = Client::from(carrier, gw.local_addr()).await;
    real.send(invite(real.port(), "real", "real", "").as_bytes())
        .await;
    real.expect_status(180).await;
    expect_offered(&mut events, "real").await;
    gw.shutdown().await.unwrap();
}

#[tokio::test]
async fn without_trunks_one_source_cannot_fill_the_queue() {
    let other = loopback(2);
    let config = SipConfig {
        max_queued_per_source: 5,
        ..test_config()
    };
    let (gw, mut events) = start(config, 256).await;
    let spoofer = Client::new(gw.local_addr()).await;
    let answered = flood(&spoofer, "flood", 198).await;
    assert_eq!(answered.len(), 198);
    let ringing = answered.values().filter(|s| **s == 180).count();
    let busy = answered.values().filter(|s| **s == 503).count();
    assert_eq!((ringing, busy), (5, 193), "{answered:?}");
    for _ in 0..5 {
        assert!(matches!(
            next_event(&mut events).await,
            CallEvent::Offered { .. }
        ));
    }
    assert!(events.try_recv().is_err());

    // A real caller from another address still gets in while the flood's calls wait, and
    // so does the next one.
    let real = Client::from(other, gw.local_addr()).await;
    for call in ["real-1", "real-2"] {
        real.send(invite(real.port(), call, call, "").as_bytes())
            .await;
        real.expect_status(180).await;
        expect_offered(&mut events, call).await;
    }
    assert_eq!(gw.queue_depth(), 7);
    gw.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_call_unanswered_for_max_queue_secs_is_redirected_to_the_overflow_uri() {
    let config = SipConfig {
        max_queue_secs: 1,
        provisional_interval_secs: 1,
        overflow_uri: Some("sip:sos@backup.example".into()),
        ..test_config()
    };
    let (gw, mut events) = start(config, 16).await;
    let c = Client::new(gw.local_addr()).await;
    c.send(invite(c.port(), "ov1", "ov1", "").as_bytes()).await;
    let tag = c.expect_status(180).await.core.to.tag().unwrap().to_owned();
    expect_offered(&mut events, "ov1").await;
    let moved = c.expect_status(302).await;
    assert_eq!(
        moved.header(&HeaderName::Contact),
        Some("<sip:sos@backup.example>")
    );
    match next_event(&mut events).await {
        CallEvent::Overflowed { call, to, .. } => {
            assert!(call.as_str().contains("ov1"));
            assert_eq!(to.as_deref(), Some("sip:sos@backup.example"));
        }
        other => panic!("expected Overflowed, got {other:?}"),
    }
    assert_eq!(gw.queue_depth(), 0);
    c.send(cancel_or_ack("ACK", c.port(), "ov1", "ov1", Some(&tag)).as_bytes())
        .await;
    // The 180 re-sends stopped with the overflow (1 s interval; watch for 2.5 s).
    while let Some(message) = c.recv(Duration::from_millis(2_500)).await {
        if let Message::Response(r) = message {
            assert_ne!(r.status, 180, "ringing re-sent after the overflow");
        }
    }
    gw.shutdown().await.unwrap();
}

#[tokio::test]
async fn without_an_overflow_uri_a_call_unanswered_too_long_gets_480_with_retry_after() {
    let config = SipConfig {
        max_queue_secs: 1,
        retry_after_secs: 21,
        ..test_config()
    };
    let (gw, mut events) = start(config, 16).await;
    let c = Client::new(gw.local_addr()).await;
    c.send(invite(c.port(), "ov2", "ov2", "").as_bytes()).await;
    c.expect_status(180).await;
    expect_offered(&mut events, "ov2").await;
    let unavailable = c.expect_status(480).await;
    assert_eq!(
        unavailable.header(&HeaderName::Other("Retry-After".into())),
        Some("21")
    );
    assert!(matches!(
        next_event(&mut events).await,
        CallEvent::Overflowed { to: None, .. }
    ));
    gw.shutdown().await.unwrap();
}

#[tokio::test]
async fn asserted_identity_is_believed_only_from_a_trunk_that_is_trusted_with_it() {
    let trusted = loopback(2);
    let untrusted = loopback(3);
    let config = SipConfig {
        trunks: vec![
            trunk("trusted", "127.0.0.2", true),
            trunk("untrusted", "127.0.0.3", false),
        ],
        ..test_config()
    };
    let (gw, mut events) = start(config, 16).await;
    let pai = "P-Asserted-Identity: <tel:+5716001234>\r\n";
    for (ip, call, believed) in [(trusted, "pai-yes", true), (untrusted, "pai-no", false)] {
        let c = Client::from(ip, gw.local_addr()).await;
        c.send(invite(c.port(), call, call, pai).as_bytes()).await;
        c.expect_status(180).await;
        let CallEvent::Offered { caller, .. } = next_event(&mut events).await else {
            panic!("{call}: expected Offered");
        };
        if believed {
            assert_eq!(caller.best().unwrap().expose(), "tel:+5716001234");
        } else {
            assert!(caller.asserted.is_none(), "{call}: PAI believed");
            assert_eq!(
                caller.best().unwrap().expose(),
                "sip:+573001234567@carrier.example"
            );
        }
    }
    gw.shutdown().await.unwrap();
}

fn hash(algorithm: &str, text: &str) -> String {
    use sha2::Digest;
    if algorithm == "MD5" {
        hex::encode(md5::Md5::digest(text.as_bytes()))
    } else {
        hex::encode(sha2::Sha256::digest(text.as_bytes()))
    }
}

/// The nonce of the challenge for `algorithm` in a 401.
fn nonce(response: &telephony_gateway::sip::Response, algorithm: &str) -> String {
    let challenge = response
        .header_values(&HeaderName::Other("WWW-Authenticate".into()))
        .find(|v| v.contains(&format!("algorithm={algorithm}")))
        .unwrap_or_else(|| panic!("no {algorithm} challenge"));
    assert!(challenge.contains("realm=\"sos.regula.test\""));
    assert!(challenge.contains("qop=\"auth\""));
    let start = challenge.find("nonce=\"").unwrap() + 7;
    challenge[start..].split('"').next().unwrap().to_owned()
}

fn authorization(algorithm: &str, nonce: &str, password: &str) -> String {
    let ha1 = hash(algorithm, &format!("regula:sos.regula.test:{password}"));
    let ha2 = hash(algorithm, "INVITE:urn:service:sos");
    let response = hash(
        algorithm,
        &format!("{ha1}:{nonce}:00000001:c0ffee:auth:{ha2}"),
    );
    format!(
        "Authorization: Digest username=\"regula\", realm=\"sos.regula.test\", nonce=\"{nonce}\", uri=\"urn:service:sos\", algorithm={algorithm}, qop=auth, nc=00000001, cnonce=\"c0ffee\", response=\"{response}\"\r\n"
    )
}

/// Sends an INVITE without credentials, ACKs the 401 and returns it.
async fn challenged(c: &Client, call: &str) -> telephony_gateway::sip::Response {
    c.send(invite(c.port(), call, &format!("{call}-a"), "").as_bytes())
        .await;
    let challenge = loop {
        let r = c.expect_status(401).await;
        if r.core.call_id.starts_with(call) {
            break r;
        }
    };
    let tag = challenge.core.to.tag().unwrap().to_owned();
    c.send(cancel_or_ack("ACK", c.port(), call, &format!("{call}-a"), Some(&tag)).as_bytes())
        .await;
    challenge
}

#[tokio::test]
async fn digest_authentication_admits_the_right_password_and_refuses_a_wrong_one() {
    let carrier = loopback(2);
    let mut with_digest = trunk("carrier", "127.0.0.2", false);
    with_digest.digest = Some(DigestCredentials {
        username: "regula".into(),
        realm: "sos.regula.test".into(),
        password: Sensitive::new("correct horse".into()),
    });
    let config = SipConfig {
        trunks: vec![with_digest],
        ..test_config()
    };
    let (gw, mut events) = start(config, 16).await;
    let c = Client::from(carrier, gw.local_addr()).await;

    // SHA-256: challenged, then admitted.
    let first = challenged(&c, "dg1").await;
    let sha_auth = authorization("SHA-256", &nonce(&first, "SHA-256"), "correct horse");
    c.send(invite(c.port(), "dg1", "dg1-b", &sha_auth).as_bytes())
        .await;
    c.expect_status(180).await;
    expect_offered(&mut events, "dg1").await;

    // The same answer again (a replay): its nonce was used; a fresh, stale challenge.
    c.send(invite(c.port(), "dg2", "dg2-r", &sha_auth).as_bytes())
        .await;
    let stale = c.expect_status(401).await;
    let stale_tag = stale.core.to.tag().unwrap().to_owned();
    c.send(cancel_or_ack("ACK", c.port(), "dg2", "dg2-r", Some(&stale_tag)).as_bytes())
        .await;
    assert!(
        stale
            .header_values(&HeaderName::Other("WWW-Authenticate".into()))
            .all(|v| v.contains("stale=true"))
    );

    // A wrong password: 403, never offered.
    let second = challenged(&c, "dg3").await;
    let wrong = authorization("MD5", &nonce(&second, "MD5"), "wrong horse");
    c.send(invite(c.port(), "dg3", "dg3-b", &wrong).as_bytes())
        .await;
    c.expect_status(403).await;

    // MD5 with the right password: admitted.
    let third = challenged(&c, "dg4").await;
    let md5_auth = authorization("MD5", &nonce(&third, "MD5"), "correct horse");
    c.send(invite(c.port(), "dg4", "dg4-b", &md5_auth).as_bytes())
        .await;
    c.expect_status(180).await;
    expect_offered(&mut events, "dg4").await;
    assert!(events.try_recv().is_err(), "refused calls never offered");
    gw.shutdown().await.unwrap();
}
