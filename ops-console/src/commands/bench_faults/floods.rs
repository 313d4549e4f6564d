//! The flood scenarios of `regula bench faults`: floods at the doors on loopback, bounded
//! in count and time, while a real carrier (a trunk at 127.0.0.2) keeps calling. Each
//! reports how many of the carrier's calls were offered and how many reached the queue,
//! and the server's resident memory before and after.
//!
//! - `sip_udp_flood`: 198 spoofed INVITEs from one port outside the trunks.
//! - `sip_tcp_flood`: 1,000 idle TCP connections from one address and 4 MiB of CRLF on
//!   another connection; the carrier calls over TCP.
//! - `http_flood`: 1,000 half-open HTTP connections (a request head never finished); the
//!   carrier's calls and an operator's command still go through, and the half-open
//!   connections are closed by the header-read timeout.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use super::{Client, Figures, Server, registration};

/// The real carrier's address (a trunk in the scenarios' configuration).
const CARRIER: &str = "127.0.0.2";

const SDP: &str = "v=0\r\no=carrier 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n";

/// An emergency INVITE as a carrier sends it.
fn invite(transport: &str, from: SocketAddr, call_id: &str) -> String {
    format!(
        "INVITE urn:service:sos SIP/2.0\r\nVia: SIP/2.0/{transport} {from};branch=z9hG4bK-{call_id};rport\r\nMax-Forwards: 70\r\nFrom: <sip:+573001234567@carrier.example>;tag=t-{call_id}\r\nTo: <urn:service:sos>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:+573001234567@{from}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    )
}

pub(super) fn config(dir: &Path, extra: &str) -> anyhow::Result<std::path::PathBuf> {
    let path = dir.join("regula.toml");
    std::fs::write(
        &path,
        format!(
            "[sip]\nlisten = \"127.0.0.1:0\"\n\n[[sip.trunks]]\nname = \"carrier\"\naddresses = [\"{CARRIER}/32\"]\ntrust_asserted_identity = true\n\n{extra}"
        ),
    )
    .context("cannot write the scenario's configuration")?;
    Ok(path)
}

/// Whether the peer let go of `stream`: end of stream, or an answer followed by one, or a
/// reset; a read that times out means the connection is still open.
fn closed_by_peer(mut stream: &TcpStream) -> bool {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(20)));
    let mut buffer = [0u8; 512];
    !matches!(stream.read(&mut buffer),
        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut))
}

/// The server's resident memory, KiB.
fn rss_kib(server: &Server) -> u64 {
    std::fs::read_to_string(format!("/proc/{}/status", server.child.id()))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The real carrier: places calls and later checks how many reached the queue.
pub(super) struct Carrier {
    udp: UdpSocket,
    tcp: Vec<TcpStream>,
    calls: Vec<String>,
}

impl Carrier {
    pub(super) fn new() -> anyhow::Result<Self> {
        let udp = UdpSocket::bind((CARRIER, 0)).with_context(|| {
            format!("cannot bind {CARRIER} (Linux routes all of 127/8 to loopback)")
        })?;
        Ok(Self {
            udp,
            tcp: Vec::new(),
            calls: Vec::new(),
        })
    }

    fn call_udp(&mut self, sip: SocketAddr, label: &str) -> anyhow::Result<()> {
        let call_id = format!("carrier-{label}-{}", self.calls.len());
        let message = invite("UDP", self.udp.local_addr()?, &call_id);
        self.udp.send_to(message.as_bytes(), sip)?;
        self.calls.push(call_id);
        Ok(())
    }

    /// A call over a TCP connection from the carrier's address (kept open: the call lives
    /// on it).
    fn call_tcp(
        &mut self,
        runtime: &tokio::runtime::Runtime,
        sip: SocketAddr,
        label: &str,
    ) -> anyhow::Result<()> {
        let stream = runtime.block_on(async {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(SocketAddr::new(
                CARRIER.parse().unwrap_or([127, 0, 0, 2].into()),
                0,
            ))?;
            let stream = tokio::time::timeout(Duration::from_secs(5), socket.connect(sip))
                .await
                .map_err(|_| std::io::Error::other("connect timed out"))??;
            stream.into_std()
        })?;
        stream.set_nonblocking(false)?;
        let call_id = format!("carrier-{label}-{}", self.calls.len());
        let message = invite("TCP", stream.local_addr()?, &call_id);
        (&stream).write_all(message.as_bytes())?;
        self.tcp.push(stream);
        self.calls.push(call_id);
        Ok(())
    }

    /// Places a call over UDP and returns the first answer above 100 Trying (waits up to
    /// 3 s; `None` without one).
    pub(super) fn call_udp_answer(
        &mut self,
        sip: SocketAddr,
        label: &str,
    ) -> anyhow::Result<Option<u16>> {
        self.udp
            .set_read_timeout(Some(Duration::from_millis(200)))?;
        let mut buffer = vec![0u8; 65_536];
        while self.udp.recv_from(&mut buffer).is_ok() {} // earlier calls' answers
        self.call_udp(sip, label)?;
        let call_id = self.calls.last().cloned().unwrap_or_default();
        for _ in 0..15 {
            let Ok((len, _)) = self.udp.recv_from(&mut buffer) else {
                continue;
            };
            let text = String::from_utf8_lossy(&buffer[..len]);
            let status = text
                .strip_prefix("SIP/2.0 ")
                .and_then(|rest| rest.get(..3))
                .and_then(|code| code.parse::<u16>().ok());
            if let Some(status) = status
                && status > 100
                && text.contains(&call_id)
            {
                return Ok(Some(status));
            }
        }
        Ok(None)
    }

    /// Forgets the calls placed so far (those refused on purpose).
    pub(super) fn forget_calls(&mut self) {
        self.calls.clear();
    }

    /// How many of the calls are in the regulation centre's queue (waits up to 10 s).
    pub(super) fn queued(&self, client: &Client, server: &Server) -> u64 {
        let mut found = 0;
        for _ in 0..100 {
            let body = client
                .http
                .get(format!("http://{}/api/v1/calls", server.addr))
                .send()
                .and_then(reqwest::blocking::Response::text)
                .unwrap_or_default();
            found = self
                .calls
                .iter()
                .filter(|id| body.contains(&format!("sip:{id};")))
                .count() as u64;
            if found == self.calls.len() as u64 {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        found
    }
}

fn start(
    binary: &Path,
    extra_config: &str,
) -> anyhow::Result<(tempfile::TempDir, Server, SocketAddr)> {
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let config = config(dir.path(), extra_config)?;
    let server = Server::start_with(
        binary,
        &dir.path().join("regula.db"),
        &dir.path().join("server.log"),
        Some(&config),
    )?;
    let sip = server.sip.context("the server did not open its SIP door")?;
    Ok((dir, server, sip))
}

pub(super) fn sip_udp_flood(binary: &Path) -> anyhow::Result<Figures> {
    let (_dir, server, sip) = start(binary, "")?;
    let client = Client::new()?;
    let mut carrier = Carrier::new()?;
    let rss_before = rss_kib(&server);
    let spoofer = UdpSocket::bind("127.0.0.1:0")?;
    spoofer.set_nonblocking(true)?;
    let from = spoofer.local_addr()?;
    // The spoofed calls answered 403 (by Call-ID: final answers are re-sent until an ACK
    // that a spoofer never sends).
    let mut forbidden = std::collections::HashSet::new();
    let mut buffer = vec![0u8; 65_536];
    let mut drain = |forbidden: &mut std::collections::HashSet<String>| {
        while let Ok((len, _)) = spoofer.recv_from(&mut buffer) {
            let text = String::from_utf8_lossy(&buffer[..len]);
            if text.starts_with("SIP/2.0 403")
                && let Some(id) = text.lines().find_map(|l| l.strip_prefix("Call-ID: "))
            {
                forbidden.insert(id.trim().to_owned());
            }
        }
    };
    for n in 0..198 {
        spoofer.send_to(invite("UDP", from, &format!("spoof-{n}")).as_bytes(), sip)?;
        drain(&mut forbidden);
        if n % 40 == 0 {
            carrier.call_udp(sip, "during")?;
        }
    }
    // The last answers: up to a second more.
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(50));
        drain(&mut forbidden);
    }
    let forbidden = forbidden.len() as u64;
    for _ in 0..2 {
        carrier.call_udp(sip, "after")?;
    }
    let queued = carrier.queued(&client, &server);
    let calls = client
        .http
        .get(format!("http://{}/api/v1/calls", server.addr))
        .send()
        .and_then(reqwest::blocking::Response::text)
        .unwrap_or_default();
    let figures = Figures {
        real_calls_offered: Some(carrier.calls.len() as u64),
        real_calls_queued: Some(queued),
        flood_refused: Some(forbidden),
        flood_calls_recorded: Some(calls.matches("sip:spoof-").count() as u64),
        rss_before_kib: Some(rss_before),
        rss_after_kib: Some(rss_kib(&server)),
        ..Figures::default()
    };
    let _ = server.stop()?;
    Ok(figures)
}

pub(super) fn sip_tcp_flood(binary: &Path) -> anyhow::Result<Figures> {
    let (_dir, server, sip) = start(binary, "")?;
    let client = Client::new()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut carrier = Carrier::new()?;
    let rss_before = rss_kib(&server);
    // 4 MiB of CRLF on one connection: closed once past the message limit.
    let mut crlf = TcpStream::connect(sip)?;
    crlf.set_write_timeout(Some(Duration::from_secs(5)))?;
    let chunk = b"\r\n".repeat(32 * 1024);
    let mut sent = 0usize;
    while sent < 4 << 20 {
        if crlf.write_all(&chunk).is_err() {
            break;
        }
        sent += chunk.len();
    }
    let mut idle = Vec::new();
    for n in 0..1_000 {
        match TcpStream::connect_timeout(&sip, Duration::from_secs(2)) {
            Ok(stream) => idle.push(stream),
            Err(_) => break,
        }
        if n % 250 == 0 {
            carrier.call_tcp(&runtime, sip, "during")?;
        }
    }
    // The door closes what it refused: count the idle connections it ended.
    let closed = idle.iter().filter(|s| closed_by_peer(s)).count() as u64;
    let crlf_closed = {
        crlf.set_read_timeout(Some(Duration::from_millis(500)))?;
        let mut byte = [0u8; 64];
        matches!(crlf.read(&mut byte), Ok(0)) || crlf.write_all(b"\r\n\r\n").is_err()
    };
    carrier.call_tcp(&runtime, sip, "after")?;
    let queued = carrier.queued(&client, &server);
    let figures = Figures {
        real_calls_offered: Some(carrier.calls.len() as u64),
        real_calls_queued: Some(queued),
        flood_refused: Some(closed + u64::from(crlf_closed)),
        rss_before_kib: Some(rss_before),
        rss_after_kib: Some(rss_kib(&server)),
        ..Figures::default()
    };
    drop(idle);
    let _ = server.stop()?;
    Ok(figures)
}

pub(super) fn http_flood(binary: &Path) -> anyhow::Result<Figures> {
    let (_dir, server, sip) = start(binary, "[server]\nheader_read_timeout_seconds = 2\n")?;
    let client = Client::new()?;
    let mut carrier = Carrier::new()?;
    let rss_before = rss_kib(&server);
    let addr: SocketAddr = server.addr.parse().context("bad server address")?;
    let mut half_open = Vec::new();
    for _ in 0..1_000 {
        let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
            break;
        };
        let _ = stream.write_all(b"GET /api/v1/units HTTP/1.1\r\nHost: regula\r\n");
        half_open.push(stream);
    }
    carrier.call_udp(sip, "during")?;
    // An operator's command goes through while they hang.
    let reply = client.command(&server, "http-flood-1", &registration(1))?;
    let command_ok = reply.status == 200;
    // The header-read timeout closes them.
    std::thread::sleep(Duration::from_secs(3));
    let closed = half_open.iter().filter(|s| closed_by_peer(s)).count() as u64;
    carrier.call_udp(sip, "after")?;
    let queued = carrier.queued(&client, &server);
    let figures = Figures {
        operator_command_ok: Some(command_ok),
        real_calls_offered: Some(carrier.calls.len() as u64),
        real_calls_queued: Some(queued),
        flood_refused: Some(closed),
        rss_before_kib: Some(rss_before),
        rss_after_kib: Some(rss_kib(&server)),
        ..Figures::default()
    };
    drop(half_open);
    let _ = server.stop()?;
    Ok(figures)
}
