//! UDP and TCP on one address: receive loops that parse (and answer what cannot be
//! parsed), and a sender the core uses for responses and requests.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch};

use crate::Monotonic;
use crate::sip::{
    Limits, Message, MessageWriter, ParseError, is_keepalive, parse_datagram, parse_stream_message,
    stream_message_len,
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

/// Most TCP connections kept open at once.
const MAX_TCP_CONNECTIONS: usize = 1024;
/// A TCP connection silent for this long is closed.
const TCP_IDLE: Duration = Duration::from_mins(5);

/// Sends bytes to peers.
#[derive(Debug, Clone)]
pub(crate) struct Transport {
    udp: Arc<UdpSocket>,
    tcp: Arc<Mutex<HashMap<u64, mpsc::Sender<Vec<u8>>>>>,
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
    inbound: mpsc::Sender<Inbound>,
    stop: watch::Receiver<bool>,
    monotonic: Option<Arc<dyn Monotonic>>,
) -> io::Result<Bound> {
    let (udp, tcp) = bind_pair(listen).await?;
    let local = udp.local_addr()?;
    let udp = Arc::new(udp);
    let transport = Transport {
        udp: udp.clone(),
        tcp: Arc::new(Mutex::new(HashMap::new())),
    };
    let ctx = Ctx {
        limits,
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
        let open = ctx
            .transport
            .tcp
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        if open >= MAX_TCP_CONNECTIONS {
            tracing::warn!(%addr, "sip: too many TCP connections; refusing one");
            continue;
        }
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(tcp_connection(stream, addr, id, ctx.clone(), stop.clone()));
    }
}

async fn tcp_connection(
    stream: TcpStream,
    addr: SocketAddr,
    id: u64,
    ctx: Ctx,
    mut stop: watch::Receiver<bool>,
) {
    let (mut reader, mut writer) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(256);
    ctx.transport
        .tcp
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(id, tx);
    let write_task = tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                break;
            }
        }
    });
    let peer = Peer::Tcp { conn: id, addr };
    let mut buffer: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    'read: loop {
        let n = tokio::select! {
            r = tokio::time::timeout(TCP_IDLE, reader.read(&mut chunk)) => match r {
                Ok(Ok(0) | Err(_)) | Err(_) => break,
                Ok(Ok(n)) => n,
            },
            _ = stop.changed() => break,
        };
        let received = ctx.now();
        buffer.extend_from_slice(&chunk[..n]);
        if buffer == b"\r\n\r\n" {
            // RFC 5626 keep-alive ping: answer with a pong.
            buffer.clear();
            ctx.transport.send(&peer, b"\r\n".to_vec()).await;
            continue;
        }
        loop {
            match stream_message_len(&buffer, &ctx.limits) {
                Ok(Some(len)) => {
                    let message: Vec<u8> = buffer.drain(..len).collect();
                    match parse_stream_message(&message, &ctx.limits) {
                        Ok(m) => {
                            if !ctx.deliver(m, peer.clone(), received).await {
                                break 'read;
                            }
                        }
                        Err(e) => ctx.reject(&e, &peer).await,
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    // Framing is lost: answer if possible, then close the connection.
                    ctx.reject(&e, &peer).await;
                    break 'read;
                }
            }
        }
    }
    ctx.transport
        .tcp
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&id);
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
