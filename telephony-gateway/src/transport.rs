//! UDP and TCP on one address: receive loops that parse (and answer what cannot be
//! parsed), and a sender the core uses for responses and requests.
//!
//! TCP is a bounded door: at most `max_connections_per_peer` connections from one IP
//! address and `max_tcp_connections` from addresses outside every trunk (so a flood from
//! elsewhere never locks a carrier out); framing counts every byte since the last
//! complete message, keep-alive CRLFs included, against `max_message_bytes`
//! ([`StreamFramer`]); a connection without a complete SIP message in either direction
//! for `tcp_idle_timeout_secs` is closed, and keep-alives extend that only up to
//! `tcp_keepalive_max_secs` after the last message. Each refusal is counted in
//! `regula_sip_refused_total{reason}`.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch};

use crate::Monotonic;
use crate::config::{AddressRange, SipConfig};
use crate::sip::stream::StreamFramer;
use crate::sip::{
    Limits, Message, MessageWriter, ParseError, ParseErrorKind, is_keepalive, parse_datagram,
    parse_stream_message,
};

/// Where a message came from, and so where its answers go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Peer {
    /// A UDP source address.
    Udp(SocketAddr),
    /// A TCP connection (answers go back on it).
    Tcp {
        /// Connection number.
        conn: u64,
        /// Remote address.
        addr: SocketAddr,
    },
}

impl Peer {
    pub(crate) fn addr(&self) -> SocketAddr {
        match self {
            Self::Udp(a) | Self::Tcp { addr: a, .. } => *a,
        }
    }

    pub(crate) fn is_udp(&self) -> bool {
        matches!(self, Self::Udp(_))
    }

    pub(crate) fn transport_name(&self) -> &'static str {
        if self.is_udp() { "UDP" } else { "TCP" }
    }
}

/// A parsed message handed to the core.
#[derive(Debug)]
pub(crate) struct Inbound {
    pub(crate) message: Message,
    pub(crate) peer: Peer,
    /// Monotonic time of arrival, when the gateway was given a monotonic clock.
    pub(crate) received: Option<Duration>,
}

/// Counts a refusal at the door (`regula_sip_refused_total{reason}`).
pub(crate) fn refused(reason: &'static str) {
    metrics::counter!("regula_sip_refused_total", "reason" => reason).increment(1);
}

/// The TCP limits, from [`SipConfig`].
#[derive(Debug, Clone)]
pub(crate) struct TcpLimits {
    max_untrusted: usize,
    per_peer: usize,
    idle: Duration,
    keepalive_max: Duration,
    trunks: Vec<AddressRange>,
}

impl TcpLimits {
    pub(crate) fn of(config: &SipConfig) -> Self {
        Self {
            max_untrusted: config.max_tcp_connections,
            per_peer: config.max_connections_per_peer,
            idle: Duration::from_secs(config.tcp_idle_timeout_secs),
            keepalive_max: Duration::from_secs(config.tcp_keepalive_max_secs),
            trunks: config
                .trunks
                .iter()
                .flat_map(|t| t.addresses.iter().copied())
                .collect(),
        }
    }

    fn is_trunk(&self, ip: IpAddr) -> bool {
        self.trunks.iter().any(|r| r.contains(ip))
    }
}

/// Open TCP connections: their senders and how many each address holds.
#[derive(Debug, Default)]
struct Connections {
    senders: HashMap<u64, mpsc::Sender<Vec<u8>>>,
    per_peer: HashMap<IpAddr, usize>,
    untrusted: usize,
}

/// Sends bytes to peers.
#[derive(Debug, Clone)]
pub(crate) struct Transport {
    udp: Arc<UdpSocket>,
    tcp: Arc<Mutex<Connections>>,
}

impl Transport {
    pub(crate) async fn send(&self, peer: &Peer, bytes: Vec<u8>) {
        match peer {
            Peer::Udp(addr) => {
                if let Err(e) = self.udp.send_to(&bytes, addr).await {
                    tracing::debug!(error = %e, "sip: UDP send failed");
                }
            }
            Peer::Tcp { conn, .. } => {
                let sender = self
                    .tcp
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .senders
                    .get(conn)
                    .cloned();
                if let Some(tx) = sender {
                    if tx.try_send(bytes).is_err() {
                        tracing::debug!(conn, "sip: TCP connection gone or congested");
                    }
                } else {
                    tracing::debug!(conn, "sip: TCP connection closed before sending");
                }
            }
        }
    }
}

/// The bound sockets and the running receive loops.
#[derive(Debug)]
pub(crate) struct Bound {
    pub(crate) transport: Transport,
    pub(crate) local: SocketAddr,
    pub(crate) tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Binds UDP and TCP on the same address (port 0: the TCP port follows UDP's) and starts
/// the receive loops.
pub(crate) async fn bind(
    listen: SocketAddr,
    limits: Limits,
    tcp_limits: TcpLimits,
    inbound: mpsc::Sender<Inbound>,
    stop: watch::Receiver<bool>,
    monotonic: Option<Arc<dyn Monotonic>>,
) -> io::Result<Bound> {
    let (udp, tcp) = bind_pair(listen).await?;
    let local = udp.local_addr()?;
    let udp = Arc::new(udp);
    let transport = Transport {
        udp: udp.clone(),
        tcp: Arc::new(Mutex::new(Connections::default())),
    };
    let ctx = Ctx {
        limits,
        tcp_limits: Arc::new(tcp_limits),
        inbound,
        monotonic,
        transport: transport.clone(),
    };
    let tasks = vec![
        tokio::spawn(udp_loop(udp, ctx.clone(), stop.clone())),
        tokio::spawn(tcp_accept_loop(tcp, ctx, stop)),
    ];
    Ok(Bound {
        transport,
        local,
        tasks,
    })
}

async fn bind_pair(listen: SocketAddr) -> io::Result<(UdpSocket, TcpListener)> {
    if listen.port() != 0 {
        return Ok((
            UdpSocket::bind(listen).await?,
            TcpListener::bind(listen).await?,
        ));
    }
    // Port 0: take a UDP port, then the same port for TCP; retry on the rare clash.
    let mut last = None;
    for _ in 0..20 {
        let udp = UdpSocket::bind(listen).await?;
        let addr = udp.local_addr()?;
        match TcpListener::bind(addr).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free port for UDP and TCP")))
}

#[derive(Clone)]
struct Ctx {
    limits: Limits,
    tcp_limits: Arc<TcpLimits>,
    inbound: mpsc::Sender<Inbound>,
    monotonic: Option<Arc<dyn Monotonic>>,
    transport: Transport,
}

impl Ctx {
    fn now(&self) -> Option<Duration> {
        self.monotonic.as_ref().map(|m| m.elapsed())
    }

    /// Counts a parse error and answers it when it can be answered.
    async fn reject(&self, error: &ParseError, peer: &Peer) {
        metrics::counter!("regula_sip_parse_errors_total", "kind" => error.kind.label())
            .increment(1);
        tracing::debug!(peer = %peer.addr(), error = %error, "sip: refused message");
        if let Some(salvage) = &error.salvage {
            let mut w = MessageWriter::response(error.kind.status(), &error.kind.reason());
            for (name, value) in &salvage.lines {
                w = w.header(name, value);
            }
            let bytes = w.header("Server", crate::SERVER_NAME).finish();
            self.transport.send(peer, bytes).await;
        }
    }

    async fn deliver(&self, message: Message, peer: Peer, received: Option<Duration>) -> bool {
        self.inbound
            .send(Inbound {
                message,
                peer,
                received,
            })
            .await
            .is_ok()
    }
}

async fn udp_loop(socket: Arc<UdpSocket>, ctx: Ctx, mut stop: watch::Receiver<bool>) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, from) = tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    // ICMP port unreachable surfaces here on some systems; keep going.
                    tracing::debug!(error = %e, "sip: UDP receive error");
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let received = ctx.now();
        let bytes = &buf[..n];
        if is_keepalive(bytes) {
            continue;
        }
        let peer = Peer::Udp(from);
        match parse_datagram(bytes, &ctx.limits) {
            Ok(message) => {
                if !ctx.deliver(message, peer, received).await {
                    return;
                }
            }
            Err(e) => ctx.reject(&e, &peer).await,
        }
    }
}

async fn tcp_accept_loop(listener: TcpListener, ctx: Ctx, mut stop: watch::Receiver<bool>) {
    let next_id = AtomicU64::new(1);
    loop {
        let (stream, addr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!(error = %e, "sip: TCP accept error");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel::<Vec<u8>>(256);
        match Slot::take(&ctx, id, addr.ip(), tx) {
            Ok(slot) => {
                tokio::spawn(tcp_connection(
                    stream,
                    addr,
                    slot,
                    rx,
                    ctx.clone(),
                    stop.clone(),
                ));
            }
            Err(reason) => {
                // Dropping the stream closes it: the peer sees the connection end at once.
                refused(reason);
                tracing::debug!(%addr, reason, "sip: TCP connection refused");
            }
        }
    }
}

/// A TCP connection's place in the limits; released when dropped.
struct Slot {
    id: u64,
    ip: IpAddr,
    trusted: bool,
    tcp: Arc<Mutex<Connections>>,
}

impl Slot {
    fn take(
        ctx: &Ctx,
        id: u64,
        ip: IpAddr,
        sender: mpsc::Sender<Vec<u8>>,
    ) -> Result<Self, &'static str> {
        let ip = ip.to_canonical();
        let trusted = ctx.tcp_limits.is_trunk(ip);
        let mut open = ctx
            .transport
            .tcp
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if open.per_peer.get(&ip).copied().unwrap_or(0) >= ctx.tcp_limits.per_peer {
            return Err("tcp_per_peer_limit");
        }
        if !trusted && open.untrusted >= ctx.tcp_limits.max_untrusted {
            return Err("tcp_connection_limit");
        }
        *open.per_peer.entry(ip).or_insert(0) += 1;
        if !trusted {
            open.untrusted += 1;
        }
        open.senders.insert(id, sender);
        #[allow(clippy::cast_precision_loss)]
        metrics::gauge!("regula_sip_tcp_connections").set(open.senders.len() as f64);
        Ok(Self {
            id,
            ip,
            trusted,
            tcp: ctx.transport.tcp.clone(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.tcp.lock().unwrap_or_else(PoisonError::into_inner);
        open.senders.remove(&self.id);
        if let Some(n) = open.per_peer.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.per_peer.remove(&self.ip);
            }
        }
        if !self.trusted {
            open.untrusted -= 1;
        }
        #[allow(clippy::cast_precision_loss)]
        metrics::gauge!("regula_sip_tcp_connections").set(open.senders.len() as f64);
    }
}

/// Why a connection's reading ended.
enum Closed {
    /// The peer closed it, or the gateway is stopping.
    Normally,
    /// A limit closed it (counted under this reason).
    Refused(&'static str),
}

#[allow(clippy::too_many_lines)] // one read loop with its timers reads best in one place
async fn tcp_connection(
    stream: TcpStream,
    addr: SocketAddr,
    slot: Slot,
    mut rx: mpsc::Receiver<Vec<u8>>,
    ctx: Ctx,
    mut stop: watch::Receiver<bool>,
) {
    let (mut reader, mut writer) = stream.into_split();
    // SIP messages the gateway sent on this connection (not pongs): a connection that
    // carries our responses, e.g. the 180s of a waiting call, is not idle.
    let sent = Arc::new(AtomicUsize::new(0));
    let write_task = {
        let sent = sent.clone();
        tokio::spawn(async move {
            while let Some(bytes) = rx.recv().await {
                if !is_keepalive(&bytes) {
                    sent.fetch_add(1, Ordering::Relaxed);
                }
                if writer.write_all(&bytes).await.is_err() {
                    break;
                }
            }
        })
    };
    let peer = Peer::Tcp {
        conn: slot.id,
        addr,
    };
    let limits = ctx.tcp_limits.clone();
    let mut framer = StreamFramer::new(ctx.limits);
    let mut chunk = vec![0u8; 16 * 1024];
    // Idle: reset by a complete message (either way) or a keep-alive. Keep-alive cap:
    // reset only by a complete message, so keep-alives alone end after it.
    let mut idle = Box::pin(tokio::time::sleep(limits.idle));
    let mut keepalive_cap = Box::pin(tokio::time::sleep(limits.keepalive_max));
    let mut sent_seen_idle = 0;
    let mut sent_seen_cap = 0;
    let closed = 'read: loop {
        let n = tokio::select! {
            r = reader.read(&mut chunk) => match r {
                Ok(0) | Err(_) => break Closed::Normally,
                Ok(n) => n,
            },
            () = &mut idle => {
                let now_sent = sent.load(Ordering::Relaxed);
                if now_sent == sent_seen_idle {
                    break Closed::Refused("tcp_idle");
                }
                sent_seen_idle = now_sent;
                idle.set(tokio::time::sleep(limits.idle));
                continue;
            }
            () = &mut keepalive_cap => {
                let now_sent = sent.load(Ordering::Relaxed);
                if now_sent == sent_seen_cap {
                    break Closed::Refused("tcp_keepalive_limit");
                }
                sent_seen_cap = now_sent;
                keepalive_cap.set(tokio::time::sleep(limits.keepalive_max));
                continue;
            }
            _ = stop.changed() => break Closed::Normally,
        };
        let received = ctx.now();
        let read = match framer.push(&chunk[..n]) {
            Ok(read) => read,
            Err(e) => {
                // Framing is lost or the peer sent too much without completing a message:
                // answer if possible, then close the connection.
                let reason = if e.kind == ParseErrorKind::MessageTooLarge {
                    "stream_too_large"
                } else {
                    "stream_framing"
                };
                ctx.reject(&e, &peer).await;
                break Closed::Refused(reason);
            }
        };
        if read.pings > 0 {
            // RFC 5626 §4.4.1: a CRLFCRLF ping gets a CRLF pong (one per read at most).
            ctx.transport.send(&peer, b"\r\n".to_vec()).await;
        }
        if !read.messages.is_empty() {
            idle.set(tokio::time::sleep(limits.idle));
            keepalive_cap.set(tokio::time::sleep(limits.keepalive_max));
        } else if framer.buffered_bytes() == 0 {
            // Only keep-alive CRLFs: they extend the idle timeout, not the cap.
            idle.set(tokio::time::sleep(limits.idle));
        }
        for bytes in read.messages {
            match parse_stream_message(&bytes, &ctx.limits) {
                Ok(m) => {
                    if !ctx.deliver(m, peer.clone(), received).await {
                        break 'read Closed::Normally;
                    }
                }
                Err(e) => ctx.reject(&e, &peer).await,
            }
        }
    };
    if let Closed::Refused(reason) = closed {
        refused(reason);
        tracing::debug!(peer = %addr, reason, "sip: TCP connection closed by a limit");
    }
    drop(slot);
    // Let queued answers (e.g. the 400 above) go out before the socket closes.
    let _ = tokio::time::timeout(Duration::from_secs(1), write_task).await;
}

/// The local address that routes to `peer` (for Via/Contact when listening on 0.0.0.0).
pub(crate) fn route_source(peer: IpAddr) -> Option<IpAddr> {
    let bind: SocketAddr = if peer.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let socket = std::net::UdpSocket::bind(bind).ok()?;
    socket.connect(SocketAddr::new(peer, 9)).ok()?;
    socket.local_addr().ok().map(|a| a.ip())
}
