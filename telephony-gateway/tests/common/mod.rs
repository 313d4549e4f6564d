//! Helpers for tests that talk to a running gateway over real sockets.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use dispatch_core::intake::CallEvent;
use maps::{ManualClock, Timestamp};
use telephony_gateway::config::Trunk;
use telephony_gateway::sip::{Limits, Message, Request, Response, parse_datagram};
use telephony_gateway::{GatewayHandle, SipConfig, SipGateway};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// A trunk of one address.
pub(crate) fn trunk(name: &str, address: &str, trust_asserted_identity: bool) -> Trunk {
    Trunk {
        name: name.into(),
        addresses: vec![address.parse().unwrap()],
        trust_asserted_identity,
        digest: None,
    }
}

/// A loopback address other than 127.0.0.1 (Linux routes all of 127/8 to `lo`); fails
/// with a clear message rather than letting a test pass without it.
pub(crate) fn loopback(last: u8) -> IpAddr {
    let ip = IpAddr::from([127, 0, 0, last]);
    if let Err(e) = std::net::UdpSocket::bind((ip, 0)) {
        panic!(
            "cannot bind {ip}: this test needs a second loopback address as a distinct \
             source (Linux accepts all of 127.0.0.0/8 on lo): {e}"
        );
    }
    ip
}

pub(crate) fn test_config() -> SipConfig {
    SipConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        t1_ms: 50,
        shutdown_grace_ms: 500,
        ..SipConfig::default()
    }
}

pub(crate) async fn start(
    config: SipConfig,
    capacity: usize,
) -> (GatewayHandle, mpsc::Receiver<CallEvent>) {
    let clock = Arc::new(ManualClock::new(
        Timestamp::parse_rfc3339("2026-11-23T12:00:00Z").unwrap(),
    ));
    let (tx, rx) = mpsc::channel(capacity);
    let handle = SipGateway::start(config, clock, tx)
        .await
        .expect("gateway starts");
    (handle, rx)
}

pub(crate) struct Client {
    pub(crate) socket: UdpSocket,
    pub(crate) gateway: SocketAddr,
}

impl Client {
    pub(crate) async fn new(gateway: SocketAddr) -> Self {
        Self {
            socket: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            gateway,
        }
    }

    /// A client whose datagrams come from `ip` (see [`loopback`]).
    pub(crate) async fn from(ip: IpAddr, gateway: SocketAddr) -> Self {
        Self {
            socket: UdpSocket::bind((ip, 0))
                .await
                .unwrap_or_else(|e| panic!("cannot bind {ip} as a source: {e}")),
            gateway,
        }
    }

    pub(crate) fn port(&self) -> u16 {
        self.socket.local_addr().unwrap().port()
    }

    pub(crate) async fn send(&self, bytes: &[u8]) {
        self.socket.send_to(bytes, self.gateway).await.unwrap();
    }

    /// The next message, or `None` after `wait`.
    pub(crate) async fn recv(&self, wait: Duration) -> Option<Message> {
        let mut buf = vec![0u8; 65_536];
        let (n, _) = tokio::time::timeout(wait, self.socket.recv_from(&mut buf))
            .await
            .ok()?
            .unwrap();
        Some(parse_datagram(&buf[..n], &Limits::default()).expect("gateway sends valid SIP"))
    }

    /// The status line of the next datagram (responses to broken requests echo the
    /// broken header fields, which the strict parser would refuse).
    pub(crate) async fn status_line(&self, wait: Duration) -> Option<(u16, String)> {
        let mut buf = vec![0u8; 65_536];
        let (n, _) = tokio::time::timeout(wait, self.socket.recv_from(&mut buf))
            .await
            .ok()?
            .unwrap();
        let text = String::from_utf8_lossy(&buf[..n]);
        let line = text.lines().next().unwrap_or_default();
        let rest = line.strip_prefix("SIP/2.0 ").expect("a response");
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        Some((code.parse().unwrap(), reason.to_owned()))
    }

    pub(crate) async fn response(&self, wait: Duration) -> Option<Response> {
        match self.recv(wait).await? {
            Message::Response(r) => Some(r),
            Message::Request(r) => panic!("expected a response, got {}", r.method),
        }
    }

    pub(crate) async fn request(&self, wait: Duration) -> Option<Request> {
        match self.recv(wait).await? {
            Message::Request(r) => Some(r),
            Message::Response(r) => panic!("expected a request, got {}", r.status),
        }
    }

    /// Waits for a response with this status, skipping others (e.g. repeated 180s).
    pub(crate) async fn expect_status(&self, status: u16) -> Response {
        loop {
            let r = self
                .response(Duration::from_secs(3))
                .await
                .unwrap_or_else(|| panic!("no {status} response"));
            if r.status == status {
                return r;
            }
        }
    }

    pub(crate) async fn options_ok(&self) {
        let text = format!(
            "OPTIONS sip:gw@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{p};branch=z9hG4bK-ping{n}\r\nMax-Forwards: 70\r\nFrom: <sip:mon@127.0.0.1>;tag=m{n}\r\nTo: <sip:gw@127.0.0.1>\r\nCall-ID: ping{n}@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
            p = self.port(),
            n = rand_suffix()
        );
        self.send(text.as_bytes()).await;
        loop {
            let r = self
                .response(Duration::from_secs(2))
                .await
                .expect("OPTIONS answered");
            if r.core.cseq.method == "OPTIONS" {
                assert_eq!(r.status, 200, "OPTIONS after bad input");
                return;
            }
        }
    }
}

pub(crate) fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    N.fetch_add(1, Ordering::Relaxed)
}

pub(crate) const SDP: &str = "v=0\r\no=carrier 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n";

/// An emergency INVITE with SDP (and extra headers), as a carrier would send it.
pub(crate) fn invite(port: u16, call: &str, branch: &str, extra: &str) -> String {
    format!(
        "INVITE urn:service:sos SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{branch};rport\r\nMax-Forwards: 70\r\nFrom: \"Juana\" <sip:+573001234567@carrier.example>;tag=t-{call}\r\nTo: <urn:service:sos>\r\nCall-ID: {call}@127.0.0.1\r\nCSeq: 1 INVITE\r\nContact: <sip:+573001234567@127.0.0.1:{port}>\r\n{extra}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    )
}

/// The CANCEL (or ACK for a non-2xx) matching an INVITE from [`invite`].
pub(crate) fn cancel_or_ack(
    method: &str,
    port: u16,
    call: &str,
    branch: &str,
    to_tag: Option<&str>,
) -> String {
    let to = match to_tag {
        Some(t) => format!("<urn:service:sos>;tag={t}"),
        None => "<urn:service:sos>".to_owned(),
    };
    format!(
        "{method} urn:service:sos SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{branch};rport\r\nMax-Forwards: 70\r\nFrom: \"Juana\" <sip:+573001234567@carrier.example>;tag=t-{call}\r\nTo: {to}\r\nCall-ID: {call}@127.0.0.1\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
    )
}

pub(crate) async fn next_event(rx: &mut mpsc::Receiver<CallEvent>) -> CallEvent {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("an event within 5 s")
        .expect("channel open")
}
