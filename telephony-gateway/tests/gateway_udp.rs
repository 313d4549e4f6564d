//! The gateway over real UDP and TCP sockets: the RFC 4475-style corpus, transactions,
//! queueing, overload, connecting to an operator position and shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Client, cancel_or_ack, invite, next_event, start, test_config};
use dispatch_core::intake::{CallEvent, ReportedLocation};
use serde::Deserialize;
use telephony_gateway::ConnectError;
use telephony_gateway::sip::{HeaderLookup, HeaderName, Message, MessageWriter};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Deserialize)]
struct Cases {
    case: Vec<Case>,
}

#[derive(Debug, Deserialize)]
struct Case {
    file: String,
    status: Option<u16>,
    reason: Option<String>,
    #[serde(default)]
    drop: bool,
}

#[tokio::test]
async fn every_corpus_case_gets_its_answer_and_options_still_work_afterwards() {
    let (gw, _events) = start(test_config(), 256).await;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus");
    let cases: Cases =
        toml::from_str(&std::fs::read_to_string(format!("{dir}/cases.toml")).unwrap()).unwrap();
    for case in cases.case {
        let bytes = std::fs::read(format!("{dir}/{}", case.file)).unwrap();
        let client = Client::new(gw.local_addr()).await;
        client.send(&bytes).await;
        if case.drop {
            let got = client.recv(Duration::from_millis(300)).await;
            assert!(
                got.is_none(),
                "{}: expected silence, got {got:?}",
                case.file
            );
        } else {
            let (status, phrase) = client
                .status_line(Duration::from_secs(2))
                .await
                .unwrap_or_else(|| panic!("{}: no answer", case.file));
            assert_eq!(
                Some(status),
                case.status,
                "{}: {status} {phrase}",
                case.file
            );
            if let Some(reason) = &case.reason {
                assert_eq!(&phrase, reason, "{}", case.file);
            }
        }
        Client::new(gw.local_addr()).await.options_ok().await;
    }
}

#[tokio::test]
async fn a_queued_call_absorbs_retransmissions_and_is_abandoned_by_cancel_with_487() {
    let (gw, mut events) = start(test_config(), 16).await;
    let c = Client::new(gw.local_addr()).await;
    let inv = invite(
        c.port(),
        "q1",
        "q1",
        "P-Asserted-Identity: <tel:+5716001234>\r\n",
    );
    c.send(inv.as_bytes()).await;
    assert_eq!(c.expect_status(100).await.status, 100);
    let ringing = c.expect_status(180).await;
    let tag = ringing
        .core
        .to
        .tag()
        .expect("180 carries our To tag")
        .to_owned();
    assert!(ringing.header(&HeaderName::Contact).is_some());
    let CallEvent::Offered {
        call,
        caller,
        location,
        ..
    } = next_event(&mut events).await
    else {
        panic!("first event is Offered")
    };
    // No trunks configured: P-Asserted-Identity is believed from nobody; From is used.
    assert!(caller.asserted.is_none());
    assert_eq!(
        caller.best().unwrap().expose(),
        "sip:+573001234567@carrier.example"
    );
    assert_eq!(location, ReportedLocation::Absent);
    assert_eq!(gw.queue_depth(), 1);

    // A retransmitted INVITE is absorbed: the last response again, no second offer.
    c.send(inv.as_bytes()).await;
    assert_eq!(c.expect_status(180).await.core.to.tag(), Some(tag.as_str()));
    assert!(events.try_recv().is_err());

    c.send(cancel_or_ack("CANCEL", c.port(), "q1", "q1", None).as_bytes())
        .await;
    let mut got = vec![];
    for _ in 0..2 {
        let r = c.response(Duration::from_secs(2)).await.unwrap();
        got.push((r.status, r.core.cseq.method.clone()));
    }
    got.sort();
    assert_eq!(
        got,
        vec![(200, "CANCEL".to_owned()), (487, "INVITE".to_owned())]
    );
    assert_eq!(
        next_event(&mut events).await,
        CallEvent::Abandoned {
            call,
            at: maps::Timestamp::parse_rfc3339("2026-11-23T12:00:00Z").unwrap()
        }
    );
    assert_eq!(gw.queue_depth(), 0);

    // Without an ACK the 487 is retransmitted (timer G); after the ACK it stops.
    assert_eq!(c.expect_status(487).await.status, 487);
    c.send(cancel_or_ack("ACK", c.port(), "q1", "q1", Some(&tag)).as_bytes())
        .await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    while c.recv(Duration::from_millis(10)).await.is_some() {}
    assert!(
        c.recv(Duration::from_millis(600)).await.is_none(),
        "487 still retransmitted after ACK"
    );
    gw.shutdown().await.unwrap();
}

#[tokio::test]
async fn ringing_is_repeated_while_the_call_waits() {
    let config = telephony_gateway::SipConfig {
        provisional_interval_secs: 1,
        ..test_config()
    };
    let (gw, _events) = start(config, 16).await;
    let c = Client::new(gw.local_addr()).await;
    c.send(invite(c.port(), "ring", "ring", "").as_bytes())
        .await;
    c.expect_status(100).await;
    c.expect_status(180).await;
    let again = c
        .response(Duration::from_millis(1600))
        .await
        .expect("a second 180");
    assert_eq!(again.status, 180);
    gw.shutdown().await.unwrap();
}

#[tokio::test]
async fn beyond_the_queue_limit_invites_get_503_with_retry_after() {
    let config = telephony_gateway::SipConfig {
        max_queued_calls: 1,
        retry_after_secs: 17,
        ..test_config()
    };
    let (gw, mut events) = start(config, 16).await;
    let c = Client::new(gw.local_addr()).await;
    c.send(invite(c.port(), "o1", "o1", "").as_bytes()).await;
    c.expect_status(180).await;
    next_event(&mut events).await;
    c.send(invite(c.port(), "o2", "o2", "").as_bytes()).await;
    let r = c.expect_status(503).await;
    assert_eq!(
        r.header(&HeaderName::Other("Retry-After".into())),
        Some("17")
    );
    assert!(
        events.try_recv().is_err(),
        "a refused call is never offered"
    );
}

#[tokio::test]
async fn a_full_event_channel_means_503_before_accepting_never_a_lost_call() {
    let (gw, mut events) = start(test_config(), 1).await;
    let c = Client::new(gw.local_addr()).await;
    c.send(invite(c.port(), "f1", "f1", "").as_bytes()).await;
    c.expect_status(180).await;
    // Nobody reads the channel: it is full now.
    c.send(invite(c.port(), "f2", "f2", "").as_bytes()).await;
    c.expect_status(503).await;
    assert!(matches!(
        next_event(&mut events).await,
        CallEvent::Offered { .. }
    ));
    assert!(events.try_recv().is_err());
}

/// A fake operator phone on a UDP socket.
async fn operator_answers(op: &Client, status: u16) -> telephony_gateway::sip::Request {
    let invite = op
        .request(Duration::from_secs(3))
        .await
        .expect("INVITE to the operator");
    assert_eq!(invite.method.as_str(), "INVITE");
    assert!(invite.body.starts_with(b"v=0"), "SDP passed through");
    let reason = if status == 200 { "OK" } else { "Busy Here" };
    let mut w = MessageWriter::response(status, reason);
    for v in invite.header_values(&HeaderName::Via) {
        w = w.header("Via", v);
    }
    w = w
        .header("From", invite.header(&HeaderName::From).unwrap())
        .header(
            "To",
            &format!("{};tag=op1", invite.header(&HeaderName::To).unwrap()),
        )
        .header("Call-ID", &invite.core.call_id)
        .header("CSeq", "1 INVITE")
        .header("Contact", &format!("<sip:op@127.0.0.1:{}>", op.port()));
    let bytes = if status == 200 {
        w.body("application/sdp", b"v=0\r\nanswer\r\n").finish()
    } else {
        w.finish()
    };
    op.socket.send_to(&bytes, op.gateway).await.unwrap();
    invite
}

#[tokio::test]
async fn a_busy_position_puts_the_call_back_and_a_second_position_connects_it() {
    let (gw, mut events) = start(test_config(), 16).await;
    let caller = Client::new(gw.local_addr()).await;
    let op = Client::new(gw.local_addr()).await;
    caller
        .send(invite(caller.port(), "c1", "c1", "").as_bytes())
        .await;
    let tag = caller
        .expect_status(180)
        .await
        .core
        .to
        .tag()
        .unwrap()
        .to_owned();
    let CallEvent::Offered { call, .. } = next_event(&mut events).await else {
        panic!()
    };
    let position = format!("sip:pos1@127.0.0.1:{}", op.port());

    let attempt = {
        let call = call.clone();
        let position = position.clone();
        let gw = &gw;
        async move { gw.connect(&call, &position).await }
    };
    let (result, _) = tokio::join!(attempt, operator_answers(&op, 486));
    assert!(
        matches!(
            result,
            Err(ConnectError::PositionRefused { status: 486, .. })
        ),
        "{result:?}"
    );
    let ack = op.request(Duration::from_secs(2)).await.unwrap();
    assert_eq!(ack.method.as_str(), "ACK");
    assert_eq!(gw.queue_depth(), 1, "back in the queue");

    assert!(matches!(
        gw.connect(&call, "tel:123").await,
        Err(ConnectError::BadPositionUri { .. })
    ));
    let unknown = dispatch_core::intake::CallId::new("sip:nope").unwrap();
    assert!(matches!(
        gw.connect(&unknown, &position).await,
        Err(ConnectError::UnknownCall(_))
    ));

    let (result, _) = tokio::join!(gw.connect(&call, &position), operator_answers(&op, 200));
    result.unwrap();
    assert!(
        matches!(next_event(&mut events).await, CallEvent::Connected { position: p, .. } if p == position)
    );
    let ok = caller.expect_status(200).await;
    assert_eq!(
        ok.core.to.tag(),
        Some(tag.as_str()),
        "same dialog the caller knows"
    );
    assert_eq!(ok.body, b"v=0\r\nanswer\r\n", "operator's SDP relayed");
    let ack = op.request(Duration::from_secs(2)).await.unwrap();
    assert_eq!(ack.method.as_str(), "ACK");
    caller
        .send(cancel_or_ack("ACK", caller.port(), "c1", "c1ack", Some(&tag)).as_bytes())
        .await;

    // The operator hangs up: the caller gets a BYE; the call ended.
    let bye = format!(
        "BYE sip:regula@{gw} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{p};branch=z9hG4bKopbye\r\nMax-Forwards: 70\r\nFrom: {to};tag=op1\r\nTo: {from}\r\nCall-ID: {cid}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        gw = gw.local_addr(),
        p = op.port(),
        to = ack
            .header(&HeaderName::To)
            .unwrap()
            .split(";tag=")
            .next()
            .unwrap(),
        from = ack.header(&HeaderName::From).unwrap(),
        cid = ack.core.call_id,
    );
    op.socket.send_to(bye.as_bytes(), op.gateway).await.unwrap();
    assert_eq!(op.expect_status(200).await.core.cseq.method, "BYE");
    let bye_to_caller = caller.request(Duration::from_secs(2)).await.unwrap();
    assert_eq!(bye_to_caller.method.as_str(), "BYE");
    assert_eq!(bye_to_caller.core.from.tag(), Some(tag.as_str()));
    assert!(matches!(next_event(&mut events).await, CallEvent::Ended { call: c, .. } if c == call));
    gw.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_answers_waiting_calls_503_and_reports_them() {
    let (gw, mut events) = start(test_config(), 16).await;
    let c = Client::new(gw.local_addr()).await;
    c.send(invite(c.port(), "s1", "s1", "").as_bytes()).await;
    c.expect_status(180).await;
    next_event(&mut events).await;
    gw.shutdown().await.unwrap();
    assert_eq!(c.expect_status(503).await.status, 503);
    assert!(matches!(
        next_event(&mut events).await,
        CallEvent::Abandoned { .. }
    ));
}

#[tokio::test]
async fn tcp_carries_calls_and_a_message_without_content_length_closes_the_connection() {
    let (gw, mut events) = start(test_config(), 16).await;
    let mut tcp = tokio::net::TcpStream::connect(gw.local_addr())
        .await
        .unwrap();
    let port = tcp.local_addr().unwrap().port();
    let inv = invite(port, "tcp1", "tcp1", "").replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    // Split across writes: framing must not depend on segment boundaries.
    let (a, b) = inv.as_bytes().split_at(70);
    tcp.write_all(a).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    tcp.write_all(b).await.unwrap();
    let mut buf = vec![0u8; 8192];
    let mut got = String::new();
    while !got.contains("180 Ringing") {
        let n = tokio::time::timeout(Duration::from_secs(2), tcp.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0);
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(got.starts_with("SIP/2.0 100 Trying"));
    assert!(matches!(
        next_event(&mut events).await,
        CallEvent::Offered { .. }
    ));

    let mut tcp2 = tokio::net::TcpStream::connect(gw.local_addr())
        .await
        .unwrap();
    let no_length = "OPTIONS sip:gw SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bKnolen\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:gw@b>\r\nCall-ID: nolen@b\r\nCSeq: 1 OPTIONS\r\n\r\n";
    tcp2.write_all(no_length.as_bytes()).await.unwrap();
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(3), tcp2.read_to_end(&mut all))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&all);
    assert!(
        text.starts_with("SIP/2.0 400 Missing Content-Length Header"),
        "{text}"
    );
    let _ = Message::Request; // the parser types are shared with the tests
}
