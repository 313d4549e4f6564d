//! The SIP gateway: a user agent server that queues emergency calls and, when an operator
//! takes one, connects it to the operator position's phone as a signalling-only
//! back-to-back user agent (B2BUA).
//!
//! # Why a B2BUA and not a 302 redirect or a plain proxy
//!
//! While a call waits, the gateway is the caller's user agent server: it has answered
//! 100 Trying and 180 Ringing with its own To tag and re-sends 180 every
//! `provisional_interval_secs` (RFC 3261 §13.3.1.1) so that the carrier's proxies keep the
//! INVITE alive. A 302 would hand the call back to the carrier (who may not follow it, and
//! after which the gateway sees neither the answer nor the hang-up, so it could not report
//! `Connected`/`Ended`). A proxy would have the operator's phone answer inside an early
//! dialog the gateway itself created. As a B2BUA, each leg is one clean dialog: caller ↔
//! gateway (the tag the caller already knows) and gateway ↔ operator position. The SDP
//! passes through unchanged, so media flows directly between the caller and the operator
//! phone; every in-dialog request (ACK, BYE) comes through the gateway; operator positions'
//! addresses are never shown to carriers.
//!
//! # One owner
//!
//! One task (the core) owns every transaction, call and timer. The receive loops parse and
//! hand it messages; the [`GatewayHandle`] sends it commands. Timers are a `DelayQueue`
//! whose entries carry a generation number: a state change bumps the generation, so stale
//! timers are ignored rather than cancelled.
//!
//! # Never losing a call
//!
//! An INVITE is accepted only after a slot on the `CallEvent` channel has been reserved;
//! when the channel is full, or the queue holds `max_queued_calls`, the INVITE gets
//! `503 Service Unavailable` with `Retry-After` (counted) instead, so a call is never
//! accepted and then dropped. Later events of accepted calls wait in an ordered backlog
//! when the channel is full.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dispatch_core::intake::{CallChannel, CallEvent, CallId};
use maps::{Clock, Timestamp};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::time::DelayQueue;

use crate::config::{ConfigError, SipConfig};
use crate::identity::caller_identity;
use crate::location::{reported_location, sdp_of};
use crate::sip::{
    HeaderLookup, HeaderName, Message, MessageWriter, Method, NameAddr, Request, Response, Scheme,
    Uri,
};
use crate::transport::{self, Inbound, Peer, Transport};
use crate::{Monotonic, SERVER_NAME};

const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS";
const ACCEPT: &str = "application/sdp, multipart/mixed, application/pidf+xml";

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A setting is out of range.
    #[error("invalid [sip] settings: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Config(Vec<ConfigError>),
    /// UDP or TCP could not be bound.
    #[error("cannot listen for SIP on {addr} (UDP and TCP): {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The core task ended abnormally.
    #[error("the SIP gateway task failed: {0}")]
    Task(String),
}

/// Why a call could not be connected to an operator position. Unless it says otherwise,
/// the call is still waiting in the queue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// No such call (never offered, or already over).
    #[error("call {0} is not known to the SIP gateway")]
    UnknownCall(CallId),
    /// The call is being connected or already connected.
    #[error("call {0} is not waiting in the queue (already {1})")]
    NotQueued(CallId, &'static str),
    /// The position URI is not a usable `sip:` URI.
    #[error("operator position URI {uri:?} is not usable: {reason}")]
    BadPositionUri {
        /// What was given.
        uri: String,
        /// Why.
        reason: String,
    },
    /// The position's host name does not resolve.
    #[error("operator position host {0:?} does not resolve")]
    Unresolvable(String),
    /// The operator phone refused (busy, not found, …).
    #[error("operator position answered {status} {reason}; the call is back in the queue")]
    PositionRefused {
        /// Status code.
        status: u16,
        /// Reason phrase.
        reason: String,
    },
    /// The operator phone did not answer in time.
    #[error("operator position did not answer in time; the call is back in the queue")]
    NoAnswer,
    /// The caller hung up while the call was being connected.
    #[error("the caller hung up while the call was being connected")]
    CallerHungUp,
    /// The gateway is shutting down or stopped.
    #[error("the SIP gateway is stopped")]
    Stopped,
}

/// Starts the SIP gateway.
#[derive(Debug)]
pub struct SipGateway;

impl SipGateway {
    /// Binds UDP and TCP on `config.listen` and starts serving. `events` receives a
    /// [`CallEvent`] for every offered, abandoned, connected and ended call.
    pub async fn start(
        config: SipConfig,
        clock: Arc<dyn Clock>,
        events: mpsc::Sender<CallEvent>,
    ) -> Result<GatewayHandle, GatewayError> {
        Self::start_instrumented(config, clock, events, None).await
    }

    /// Like [`SipGateway::start`], with a monotonic clock used only for telemetry: the
    /// `regula_sip_invite_to_offered_seconds` histogram (INVITE received → `Offered`
    /// delivered on the channel).
    pub async fn start_instrumented(
        config: SipConfig,
        clock: Arc<dyn Clock>,
        events: mpsc::Sender<CallEvent>,
        monotonic: Option<Arc<dyn Monotonic>>,
    ) -> Result<GatewayHandle, GatewayError> {
        config.validate().map_err(GatewayError::Config)?;
        crate::metrics::describe();
        let (inbound_tx, inbound_rx) = mpsc::channel(1024);
        let (stop_tx, stop_rx) = watch::channel(false);
        let bound = transport::bind(
            config.listen,
            config.limits(),
            inbound_tx,
            stop_rx,
            monotonic.clone(),
        )
        .await
        .map_err(|source| GatewayError::Bind {
            addr: config.listen,
            source,
        })?;
        let (commands_tx, commands_rx) = mpsc::channel(256);
        let depth = Arc::new(AtomicUsize::new(0));
        let core = Core {
            advertise: config.advertise.or_else(|| {
                let ip = bound.local.ip();
                (!ip.is_unspecified()).then_some(ip)
            }),
            port: bound.local.port(),
            config,
            clock,
            monotonic,
            transport: bound.transport,
            events,
            backlog: VecDeque::new(),
            timers: DelayQueue::new(),
            server: HashMap::new(),
            calls: HashMap::new(),
            by_dialog: HashMap::new(),
            by_call: HashMap::new(),
            legs: HashMap::new(),
            clients: HashMap::new(),
            depth: depth.clone(),
            next_serial: 1,
            shutting_down: false,
            route_cache: HashMap::new(),
        };
        let task = tokio::spawn(core.run(inbound_rx, commands_rx, stop_tx, bound.tasks));
        Ok(GatewayHandle {
            local: bound.local,
            commands: commands_tx,
            depth,
            task: std::sync::Mutex::new(Some(task)),
        })
    }
}

/// Controls a running gateway.
#[derive(Debug)]
pub struct GatewayHandle {
    local: SocketAddr,
    commands: mpsc::Sender<Command>,
    depth: Arc<AtomicUsize>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl GatewayHandle {
    /// The bound address (UDP and TCP), with the actual port when 0 was asked.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Calls waiting in the queue (including those being connected).
    pub fn queue_depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }

    /// The operator took `call`: forward it to the operator position's SIP URI
    /// (`sip:pos12@10.0.0.12:5060`). Resolves when the position answered (the call is
    /// connected and [`CallEvent::Connected`] was emitted) or failed (the call is back in
    /// the queue, still ringing for the caller). Run it on its own task: it may take up
    /// to `operator_answer_timeout_secs`.
    pub async fn connect(&self, call: &CallId, position_uri: &str) -> Result<(), ConnectError> {
        let bad = |reason: &str| ConnectError::BadPositionUri {
            uri: position_uri.chars().take(200).collect(),
            reason: reason.to_owned(),
        };
        let uri = Uri::parse(position_uri).map_err(|e| bad(&e.to_string()))?;
        let (Scheme::Sip, Some(sip)) = (uri.scheme(), uri.sip()) else {
            return Err(bad("only sip: URIs are supported (no TLS, no tel:)"));
        };
        if let Some(Some(t)) = sip.param("transport")
            && !t.eq_ignore_ascii_case("udp")
        {
            return Err(bad("operator positions are reached over UDP"));
        }
        let host = sip.host.to_string();
        let port = sip.port.unwrap_or(5060);
        let target = match &sip.host {
            crate::sip::Host::Ip(ip) => SocketAddr::new(*ip, port),
            crate::sip::Host::Name(name) => tokio::net::lookup_host((name.as_str(), port))
                .await
                .ok()
                .and_then(|mut addrs| addrs.next())
                .ok_or_else(|| ConnectError::Unresolvable(host.clone()))?,
        };
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Connect {
                call: call.clone(),
                uri: position_uri.to_owned(),
                target,
                reply,
            })
            .await
            .map_err(|_| ConnectError::Stopped)?;
        answer.await.map_err(|_| ConnectError::Stopped)?
    }

    /// Stops gracefully: new INVITEs get 503; waiting calls get 503 (so carriers can
    /// re-route them) and are reported abandoned; connected calls are hung up on both legs
    /// and reported ended; then the gateway waits up to `shutdown_grace_ms` for those
    /// transactions to complete and closes its sockets. Takes `&self` so that a handle
    /// shared with effect executors can still be shut down; a second call returns at once.
    pub async fn shutdown(&self) -> Result<(), GatewayError> {
        let (reply, done) = oneshot::channel();
        if self
            .commands
            .send(Command::Shutdown { reply })
            .await
            .is_ok()
        {
            let _ = done.await;
        }
        let task = self
            .task
            .lock()
            .map_err(|_| GatewayError::Task("task lock poisoned".into()))?
            .take();
        match task {
            Some(task) => task.await.map_err(|e| GatewayError::Task(e.to_string())),
            None => Ok(()),
        }
    }
}

#[derive(Debug)]
enum Command {
    Connect {
        call: CallId,
        uri: String,
        target: SocketAddr,
        reply: oneshot::Sender<Result<(), ConnectError>>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

// ------------------------------------------------------------------------------------
// Core state

/// Server transaction key (RFC 3261 §17.2.3): branch, sent-by, method (ACK → INVITE).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TxnKey {
    branch: String,
    sent_by: String,
    method: String,
}

impl TxnKey {
    fn of(request: &Request) -> Self {
        let via = &request.core.via[0];
        let method = match request.method {
            Method::Ack => "INVITE".to_owned(),
            ref m => m.as_str().to_owned(),
        };
        Self {
            branch: via.branch().unwrap_or_default().to_owned(),
            sent_by: via.sent_by(),
            method,
        }
    }

    fn with_method(&self, method: &str) -> Self {
        Self {
            method: method.to_owned(),
            ..self.clone()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxnState {
    /// No final response yet.
    Proceeding,
    /// Final non-2xx sent; waiting for ACK (INVITE) or absorbing retransmissions.
    Completed,
    /// 2xx sent (INVITE): absorbing retransmitted INVITEs (RFC 6026 "Accepted").
    Accepted,
    /// ACK received for a non-2xx final.
    Confirmed,
}

#[derive(Debug)]
struct ServerTxn {
    peer: Peer,
    is_invite: bool,
    state: TxnState,
    last_response: Option<Vec<u8>>,
    interval: Duration,
    generation: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallState {
    Queued,
    Connecting,
    /// 200 sent to the caller, waiting for the ACK.
    Answering,
    Connected,
}

impl CallState {
    fn describe(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Connecting => "being connected",
            Self::Answering | Self::Connected => "connected",
        }
    }
}

#[derive(Debug)]
struct Call {
    id: CallId,
    invite: Request,
    peer: Peer,
    txn: TxnKey,
    local_tag: String,
    state: CallState,
    offered_at: Timestamp,
    /// The 180 re-sent while waiting.
    ringing: Vec<u8>,
    /// The 200 re-sent until ACK.
    answer: Option<Vec<u8>>,
    answer_interval: Duration,
    generation: u64,
    /// Operator leg (its Call-ID).
    leg: Option<String>,
    position: Option<String>,
    connect_reply: Option<oneshot::Sender<Result<(), ConnectError>>>,
}

/// The gateway ↔ operator dialog.
#[derive(Debug)]
struct Leg {
    call: Option<u64>,
    call_id: String,
    local_tag: String,
    remote_tag: Option<String>,
    request_uri: String,
    target: SocketAddr,
    invite_branch: String,
    invite_via: String,
    from: String,
    to: String,
    provisional: bool,
    answered: bool,
    /// CANCEL wanted before a provisional arrived (RFC 3261 §9.1: wait for one).
    cancel_pending: bool,
    ack: Option<Vec<u8>>,
    remote_target: Option<String>,
    routes: Vec<String>,
    next_cseq: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientKind {
    Invite,
    Bye,
    Cancel,
}

#[derive(Debug)]
struct ClientTxn {
    kind: ClientKind,
    leg: Option<String>,
    peer: Peer,
    bytes: Vec<u8>,
    interval: Duration,
    generation: u64,
    /// A response (provisional for INVITE, any for others) stops retransmissions.
    quiet: bool,
}

#[derive(Debug, Clone)]
enum Timer {
    ServerRetransmit(TxnKey, u64),
    ServerTimeout(TxnKey, u64),
    ServerExpire(TxnKey, u64),
    Ringing(u64, u64),
    AnswerRetransmit(u64, u64),
    AnswerTimeout(u64, u64),
    ClientRetransmit(String, u64),
    ClientTimeout(String, u64),
    ConnectTimeout(u64, u64),
    LegExpire(String),
    ShutdownDeadline,
}

fn client_key(branch: &str, method: &str) -> String {
    format!("{branch} {method}")
}

struct Core {
    config: SipConfig,
    advertise: Option<IpAddr>,
    port: u16,
    clock: Arc<dyn Clock>,
    monotonic: Option<Arc<dyn Monotonic>>,
    transport: Transport,
    events: mpsc::Sender<CallEvent>,
    backlog: VecDeque<CallEvent>,
    timers: DelayQueue<Timer>,
    server: HashMap<TxnKey, ServerTxn>,
    calls: HashMap<u64, Call>,
    /// (Call-ID, caller's From tag) → call.
    by_dialog: HashMap<(String, String), u64>,
    by_call: HashMap<CallId, u64>,
    /// Operator-leg Call-ID → leg.
    legs: HashMap<String, Leg>,
    /// Client transaction branch → transaction.
    clients: HashMap<String, ClientTxn>,
    depth: Arc<AtomicUsize>,
    next_serial: u64,
    shutting_down: bool,
    route_cache: HashMap<IpAddr, IpAddr>,
}

fn random_token(len: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// The core's identifier for a SIP call: channel, Call-ID and the caller's tag (hashed
/// when too long for [`CallId`]).
fn sip_call_id(call_id: &str, from_tag: &str) -> CallId {
    use sha2::Digest;
    let plain = format!("sip:{call_id};{from_tag}");
    if let Ok(id) = CallId::new(plain.clone()) {
        return id;
    }
    let digest = sha2::Sha256::digest(plain.as_bytes());
    match CallId::new(format!("sip:h:{}", hex::encode(digest))) {
        Ok(id) => id,
        Err(_) => unreachable!("a hex digest is a valid call id"),
    }
}

impl Core {
    async fn run(
        mut self,
        mut inbound: mpsc::Receiver<Inbound>,
        mut commands: mpsc::Receiver<Command>,
        stop: watch::Sender<bool>,
        io_tasks: Vec<tokio::task::JoinHandle<()>>,
    ) {
        let mut shutdown_reply: Option<oneshot::Sender<()>> = None;
        let mut commands_open = true;
        loop {
            if self.shutting_down && self.drained() {
                break;
            }
            let events = self.events.clone();
            let has_backlog = !self.backlog.is_empty();
            let has_timers = !self.timers.is_empty();
            tokio::select! {
                Some(msg) = inbound.recv() => self.on_inbound(msg).await,
                cmd = commands.recv(), if commands_open => match cmd {
                    Some(Command::Connect { call, uri, target, reply }) => {
                        self.on_connect(call, uri, target, reply).await;
                    }
                    Some(Command::Shutdown { reply }) => {
                        shutdown_reply = Some(reply);
                        self.begin_shutdown().await;
                    }
                    // The handle was dropped without a shutdown: shut down all the same.
                    None => {
                        commands_open = false;
                        self.begin_shutdown().await;
                    }
                },
                Some(expired) = std::future::poll_fn(|cx| self.timers.poll_expired(cx)), if has_timers => {
                    if matches!(expired.get_ref(), Timer::ShutdownDeadline) {
                        break;
                    }
                    self.on_timer(expired.into_inner()).await;
                }
                permit = events.reserve(), if has_backlog => {
                    if let (Ok(permit), Some(event)) = (permit, self.backlog.pop_front()) {
                        permit.send(event);
                    }
                }
                else => break,
            }
        }
        let _ = stop.send(true);
        for task in io_tasks {
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        }
        // Whatever is still in the backlog goes out now (the receiver may be gone).
        for event in self.backlog.drain(..) {
            if self.events.send(event).await.is_err() {
                break;
            }
        }
        if let Some(reply) = shutdown_reply {
            let _ = reply.send(());
        }
    }

    fn drained(&self) -> bool {
        self.calls.is_empty()
            && self.clients.is_empty()
            && self
                .server
                .values()
                .all(|t| !t.is_invite || t.state != TxnState::Completed)
    }

    // --------------------------------------------------------------------------------
    // Small helpers

    fn schedule(&mut self, timer: Timer, after: Duration) {
        self.timers.insert(timer, after);
    }

    fn set_depth(&self) {
        let waiting = self
            .calls
            .values()
            .filter(|c| matches!(c.state, CallState::Queued | CallState::Connecting))
            .count();
        self.depth.store(waiting, Ordering::Relaxed);
        #[allow(clippy::cast_precision_loss)]
        metrics::gauge!("regula_telephony_queue_depth").set(waiting as f64);
    }

    fn local_ip(&mut self, peer: IpAddr) -> IpAddr {
        if let Some(ip) = self.advertise {
            return ip;
        }
        if let Some(ip) = self.route_cache.get(&peer) {
            return *ip;
        }
        let ip = transport::route_source(peer).unwrap_or(peer);
        if self.route_cache.len() > 10_000 {
            self.route_cache.clear();
        }
        self.route_cache.insert(peer, ip);
        ip
    }

    fn local_hostport(&mut self, peer: IpAddr) -> String {
        let ip = self.local_ip(peer);
        match ip {
            IpAddr::V4(v4) => format!("{v4}:{}", self.port),
            IpAddr::V6(v6) => format!("[{v6}]:{}", self.port),
        }
    }

    fn contact(&mut self, peer: &Peer) -> String {
        let hostport = self.local_hostport(peer.addr().ip());
        let transport = if peer.is_udp() { "" } else { ";transport=tcp" };
        format!("<sip:regula@{hostport}{transport}>")
    }

    /// Queues a call event; never drops it.
    fn emit(&mut self, event: CallEvent) {
        if self.backlog.is_empty() {
            match self.events.try_send(event) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(e) | mpsc::error::TrySendError::Closed(e)) => {
                    self.backlog.push_back(e);
                }
            }
        } else {
            self.backlog.push_back(event);
        }
    }

    /// Builds a response to `request` (RFC 3261 §8.2.6).
    fn response(
        request: &Request,
        peer: &Peer,
        status: u16,
        reason: &str,
        to_tag: Option<&str>,
    ) -> MessageWriter {
        let mut w = MessageWriter::response(status, reason);
        let mut first = true;
        for via in request.header_values(&HeaderName::Via) {
            if first {
                w = w.header("Via", &received_via(via, peer));
                first = false;
            } else {
                w = w.header("Via", via);
            }
        }
        if let Some(from) = request.header(&HeaderName::From) {
            w = w.header("From", from);
        }
        if let Some(to) = request.header(&HeaderName::To) {
            match to_tag {
                Some(tag) if request.core.to.tag().is_none() && status != 100 => {
                    w = w.header("To", &format!("{to};tag={tag}"));
                }
                _ => w = w.header("To", to),
            }
        }
        w = w.header("Call-ID", &request.core.call_id).header(
            "CSeq",
            &format!("{} {}", request.core.cseq.number, request.core.cseq.method),
        );
        w.header("Server", SERVER_NAME)
    }

    /// Sends a response through the server transaction of `request` and advances it.
    async fn reply(&mut self, request: &Request, peer: &Peer, bytes: Vec<u8>, status: u16) {
        let key = TxnKey::of(request);
        let is_invite = request.method == Method::Invite;
        let t1 = self.config.t1();
        let entry = self.server.entry(key.clone()).or_insert(ServerTxn {
            peer: peer.clone(),
            is_invite,
            state: TxnState::Proceeding,
            last_response: None,
            interval: t1,
            generation: 0,
        });
        entry.last_response = Some(bytes.clone());
        let mut to_schedule = Vec::new();
        if status >= 200 {
            entry.generation += 1;
            let g = entry.generation;
            let udp = entry.peer.is_udp();
            if is_invite && status < 300 {
                entry.state = TxnState::Accepted;
                to_schedule.push((Timer::ServerExpire(key.clone(), g), self.config.t64()));
            } else if is_invite {
                entry.state = TxnState::Completed;
                if udp {
                    to_schedule.push((Timer::ServerRetransmit(key.clone(), g), t1));
                }
                to_schedule.push((Timer::ServerTimeout(key.clone(), g), self.config.t64()));
            } else {
                entry.state = TxnState::Completed;
                let linger = if udp {
                    self.config.t64()
                } else {
                    Duration::ZERO
                };
                to_schedule.push((Timer::ServerExpire(key.clone(), g), linger));
            }
        }
        for (timer, after) in to_schedule {
            self.schedule(timer, after);
        }
        self.transport.send(peer, bytes).await;
    }

    async fn simple_reply(&mut self, request: &Request, peer: &Peer, status: u16, reason: &str) {
        let bytes = Self::response(request, peer, status, reason, Some(&random_token(10))).finish();
        self.reply(request, peer, bytes, status).await;
    }

    // --------------------------------------------------------------------------------
    // Inbound

    async fn on_inbound(&mut self, inbound: Inbound) {
        match inbound.message {
            Message::Request(r) => self.on_request(r, inbound.peer, inbound.received).await,
            Message::Response(r) => self.on_response(r).await,
        }
    }

    async fn on_request(&mut self, request: Request, peer: Peer, received: Option<Duration>) {
        let key = TxnKey::of(&request);
        match request.method {
            Method::Ack => return self.on_ack(&request, &key),
            Method::Cancel => return self.on_cancel(&request, &peer, &key).await,
            _ => {}
        }
        // A retransmission: answer with the last response, if any.
        if let Some(txn) = self.server.get(&key) {
            if let Some(bytes) = txn.last_response.clone() {
                let to = txn.peer.clone();
                self.transport.send(&to, bytes).await;
            }
            return;
        }
        if !matches!(
            request.uri.scheme(),
            Scheme::Sip | Scheme::Sips | Scheme::Tel | Scheme::Urn
        ) {
            return self
                .simple_reply(&request, &peer, 416, "Unsupported URI Scheme")
                .await;
        }
        let required: Vec<String> = request
            .header_values(&HeaderName::Require)
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect();
        if !required.is_empty() && request.method != Method::Ack {
            let bytes = Self::response(&request, &peer, 420, "Bad Extension", None)
                .header("Unsupported", &required.join(", "))
                .finish();
            return self.reply(&request, &peer, bytes, 420).await;
        }
        match &request.method {
            Method::Invite => self.on_invite(request, peer, received).await,
            Method::Bye => self.on_bye(request, peer).await,
            Method::Options => {
                let status = if self.shutting_down { 503 } else { 200 };
                let reason = if self.shutting_down {
                    "Service Unavailable"
                } else {
                    "OK"
                };
                let contact = self.contact(&peer);
                let mut w =
                    Self::response(&request, &peer, status, reason, Some(&random_token(10)))
                        .header("Allow", ALLOW)
                        .header("Accept", ACCEPT)
                        .header("Contact", &contact);
                if self.shutting_down {
                    w = w.header("Retry-After", &self.config.retry_after_secs.to_string());
                }
                self.reply(&request, &peer, w.finish(), status).await;
            }
            _ => {
                let bytes = Self::response(&request, &peer, 501, "Not Implemented", None)
                    .header("Allow", ALLOW)
                    .finish();
                self.reply(&request, &peer, bytes, 501).await;
            }
        }
    }

    #[allow(clippy::too_many_lines)] // the acceptance sequence reads best in one place
    async fn on_invite(&mut self, request: Request, peer: Peer, received: Option<Duration>) {
        if request.core.to.tag().is_some() {
            // A re-INVITE: mid-call changes are not relayed; the session stays as it is.
            let known = request.core.from.tag().is_some_and(|tag| {
                self.by_dialog
                    .contains_key(&(request.core.call_id.clone(), tag.to_owned()))
            }) || self.legs.contains_key(&request.core.call_id);
            let (status, reason) = if known {
                (488, "Not Acceptable Here")
            } else {
                (481, "Call/Transaction Does Not Exist")
            };
            return self.simple_reply(&request, &peer, status, reason).await;
        }
        let Some(from_tag) = request.core.from.tag().map(str::to_owned) else {
            return self
                .simple_reply(&request, &peer, 400, "Missing From Tag")
                .await;
        };
        if let Some(ct) = &request.core.content_type
            && !request.body.is_empty()
            && !matches!(
                ct.essence.as_str(),
                "application/sdp"
                    | "multipart/mixed"
                    | "multipart/related"
                    | "multipart/alternative"
            )
        {
            let bytes = Self::response(&request, &peer, 415, "Unsupported Media Type", None)
                .header("Accept", ACCEPT)
                .finish();
            return self.reply(&request, &peer, bytes, 415).await;
        }
        let dialog = (request.core.call_id.clone(), from_tag.clone());
        if self.by_dialog.contains_key(&dialog) {
            // Same call arriving by another path (RFC 3261 §8.2.2.2).
            return self
                .simple_reply(&request, &peer, 482, "Loop Detected")
                .await;
        }
        if self.shutting_down {
            return self.overload(&request, &peer, "shutting_down").await;
        }
        if self.depth.load(Ordering::Relaxed) >= self.config.max_queued_calls {
            return self.overload(&request, &peer, "queue_full").await;
        }
        // Reserve room for the Offered event before accepting anything.
        let permit = if self.backlog.is_empty() {
            self.events.clone().try_reserve_owned().ok()
        } else {
            None
        };
        let Some(permit) = permit else {
            return self.overload(&request, &peer, "core_busy").await;
        };

        let local_tag = random_token(12);
        let trying = Self::response(&request, &peer, 100, "Trying", None).finish();
        self.reply(&request, &peer, trying, 100).await;

        let id = sip_call_id(&request.core.call_id, &from_tag);
        let now = self.clock.now();
        permit.send(CallEvent::Offered {
            call: id.clone(),
            channel: CallChannel::Sip,
            caller: caller_identity(&request),
            location: reported_location(&request),
            at: now,
        });
        if let (Some(m), Some(t0)) = (&self.monotonic, received) {
            let latency = m.elapsed().saturating_sub(t0);
            metrics::histogram!("regula_sip_invite_to_offered_seconds")
                .record(latency.as_secs_f64());
        }
        metrics::counter!("regula_telephony_calls_offered_total", "channel" => "sip").increment(1);
        tracing::info!(call = %id, "sip: call offered");

        let contact = self.contact(&peer);
        let ringing = Self::response(&request, &peer, 180, "Ringing", Some(&local_tag))
            .header("Contact", &contact)
            .header("Allow", ALLOW)
            .finish();
        let serial = self.next_serial;
        self.next_serial += 1;
        let key = TxnKey::of(&request);
        self.by_dialog.insert(dialog, serial);
        self.by_call.insert(id.clone(), serial);
        self.calls.insert(
            serial,
            Call {
                id,
                invite: request.clone(),
                peer: peer.clone(),
                txn: key,
                local_tag,
                state: CallState::Queued,
                offered_at: now,
                ringing: ringing.clone(),
                answer: None,
                answer_interval: self.config.t1(),
                generation: 0,
                leg: None,
                position: None,
                connect_reply: None,
            },
        );
        self.set_depth();
        self.reply(&request, &peer, ringing, 180).await;
        self.schedule(
            Timer::Ringing(serial, 0),
            Duration::from_secs(self.config.provisional_interval_secs),
        );
    }

    async fn overload(&mut self, request: &Request, peer: &Peer, why: &'static str) {
        metrics::counter!("regula_telephony_calls_rejected_overload_total", "channel" => "sip", "reason" => why)
            .increment(1);
        tracing::warn!(reason = why, "sip: INVITE refused with 503");
        let bytes = Self::response(
            request,
            peer,
            503,
            "Service Unavailable",
            Some(&random_token(10)),
        )
        .header("Retry-After", &self.config.retry_after_secs.to_string())
        .finish();
        self.reply(request, peer, bytes, 503).await;
    }

    fn on_ack(&mut self, request: &Request, key: &TxnKey) {
        // ACK for a non-2xx final: same branch as the INVITE.
        if let Some(txn) = self.server.get_mut(key)
            && txn.state == TxnState::Completed
        {
            txn.state = TxnState::Confirmed;
            txn.generation += 1;
            let g = txn.generation;
            let linger = if txn.peer.is_udp() {
                self.config.t4()
            } else {
                Duration::ZERO
            };
            self.schedule(Timer::ServerExpire(key.clone(), g), linger);
            return;
        }
        // ACK for our 2xx: matched by dialog.
        let serial = request
            .core
            .from
            .tag()
            .and_then(|tag| {
                self.by_dialog
                    .get(&(request.core.call_id.clone(), tag.to_owned()))
            })
            .copied();
        if let Some(serial) = serial
            && let Some(call) = self.calls.get_mut(&serial)
            && call.state == CallState::Answering
            && request.core.to.tag() == Some(call.local_tag.as_str())
        {
            call.state = CallState::Connected;
            call.generation += 1;
            tracing::info!(call = %call.id, "sip: caller acknowledged; call connected");
        }
    }

    async fn on_cancel(&mut self, request: &Request, peer: &Peer, key: &TxnKey) {
        if let Some(txn) = self.server.get(key) {
            // A retransmitted CANCEL.
            if let Some(bytes) = txn.last_response.clone() {
                let to = txn.peer.clone();
                self.transport.send(&to, bytes).await;
            }
            return;
        }
        let invite_key = key.with_method("INVITE");
        let Some(invite_txn) = self.server.get(&invite_key) else {
            return self
                .simple_reply(request, peer, 481, "Call/Transaction Does Not Exist")
                .await;
        };
        let pending = invite_txn.state == TxnState::Proceeding;
        let ok = Self::response(request, peer, 200, "OK", None).finish();
        self.reply(request, peer, ok, 200).await;
        if !pending {
            return;
        }
        let serial = self
            .calls
            .iter()
            .find(|(_, c)| c.txn == invite_key)
            .map(|(s, _)| *s);
        if let Some(serial) = serial {
            self.abandon(serial, "cancel").await;
        }
    }

    /// The caller gave up before being connected: 487 to the INVITE, `Abandoned`.
    async fn abandon(&mut self, serial: u64, how: &'static str) {
        let Some(call) = self.calls.remove(&serial) else {
            return;
        };
        let bytes = Self::response(
            &call.invite,
            &call.peer,
            487,
            "Request Terminated",
            Some(&call.local_tag),
        )
        .finish();
        self.reply(&call.invite, &call.peer, bytes, 487).await;
        self.forget(&call);
        if let Some(leg) = &call.leg {
            self.cancel_leg(leg).await;
        }
        if let Some(reply) = call.connect_reply {
            let _ = reply.send(Err(ConnectError::CallerHungUp));
        }
        let now = self.clock.now();
        record_wait(call.offered_at, now, "abandoned");
        metrics::counter!("regula_telephony_calls_abandoned_total", "channel" => "sip")
            .increment(1);
        tracing::info!(call = %call.id, how, "sip: call abandoned while waiting");
        self.emit(CallEvent::Abandoned {
            call: call.id,
            at: now,
        });
        self.set_depth();
    }

    fn forget(&mut self, call: &Call) {
        if let Some(tag) = call.invite.core.from.tag() {
            self.by_dialog
                .remove(&(call.invite.core.call_id.clone(), tag.to_owned()));
        }
        self.by_call.remove(&call.id);
    }

    async fn on_bye(&mut self, request: Request, peer: Peer) {
        // From the caller?
        let serial = request
            .core
            .from
            .tag()
            .and_then(|tag| {
                self.by_dialog
                    .get(&(request.core.call_id.clone(), tag.to_owned()))
            })
            .copied()
            .filter(|s| {
                self.calls
                    .get(s)
                    .is_some_and(|c| request.core.to.tag() == Some(c.local_tag.as_str()))
            });
        if let Some(serial) = serial {
            let ok = Self::response(&request, &peer, 200, "OK", None).finish();
            self.reply(&request, &peer, ok, 200).await;
            let state = self.calls.get(&serial).map(|c| c.state);
            match state {
                Some(CallState::Queued | CallState::Connecting) => {
                    self.abandon(serial, "bye").await;
                }
                Some(_) => self.end(serial, End::CallerHungUp).await,
                None => {}
            }
            return;
        }
        // From an operator position?
        let leg_call = self
            .legs
            .get(&request.core.call_id)
            .filter(|l| request.core.to.tag() == Some(l.local_tag.as_str()))
            .map(|l| l.call);
        if let Some(call) = leg_call {
            let ok = Self::response(&request, &peer, 200, "OK", None).finish();
            self.reply(&request, &peer, ok, 200).await;
            self.legs.remove(&request.core.call_id);
            if let Some(serial) = call {
                self.end(serial, End::OperatorHungUp).await;
            }
            return;
        }
        self.simple_reply(&request, &peer, 481, "Call/Transaction Does Not Exist")
            .await;
    }

    // --------------------------------------------------------------------------------
    // Connecting to an operator position

    #[allow(clippy::too_many_lines)]
    async fn on_connect(
        &mut self,
        id: CallId,
        uri: String,
        target: SocketAddr,
        reply: oneshot::Sender<Result<(), ConnectError>>,
    ) {
        if self.shutting_down {
            let _ = reply.send(Err(ConnectError::Stopped));
            return;
        }
        let Some(&serial) = self.by_call.get(&id) else {
            let _ = reply.send(Err(ConnectError::UnknownCall(id)));
            return;
        };
        let Some(call) = self.calls.get(&serial) else {
            let _ = reply.send(Err(ConnectError::UnknownCall(id)));
            return;
        };
        if call.state != CallState::Queued {
            let _ = reply.send(Err(ConnectError::NotQueued(id, call.state.describe())));
            return;
        }
        let peer = Peer::Udp(target);
        let hostport = self.local_hostport(target.ip());
        let Some(call) = self.calls.get_mut(&serial) else {
            return;
        };
        let identity = caller_identity(&call.invite);
        let from_uri = identity.best().map_or_else(
            || "sip:anonymous@anonymous.invalid".to_owned(),
            |b| b.expose().clone(),
        );
        let display = identity
            .display_name
            .as_ref()
            .map(|d| format!("\"{}\" ", d.expose().replace(['"', '\\'], "")))
            .unwrap_or_default();
        let leg_call_id = format!("{}@regula", random_token(20));
        let local_tag = random_token(12);
        let branch = format!("z9hG4bK{}", random_token(16));
        let via = format!("SIP/2.0/UDP {hostport};branch={branch};rport");
        let from = format!("{display}<{from_uri}>;tag={local_tag}");
        let to = format!("<{uri}>");
        let mut w = MessageWriter::request(&Method::Invite, &uri)
            .header("Via", &via)
            .header("Max-Forwards", "70")
            .header("From", &from)
            .header("To", &to)
            .header("Call-ID", &leg_call_id)
            .header("CSeq", "1 INVITE")
            .header("Contact", &format!("<sip:regula@{hostport}>"))
            .header("Allow", ALLOW)
            .header("X-Regula-Call", call.id.as_str())
            .header("User-Agent", SERVER_NAME);
        if let Some(asserted) = &identity.asserted {
            w = w.header("P-Asserted-Identity", &format!("<{}>", asserted.expose()));
        }
        if identity.anonymous {
            w = w.header("Privacy", "id");
        }
        let bytes = match sdp_of(&call.invite) {
            Some(sdp) => w.body("application/sdp", &sdp).finish(),
            None => w.finish(),
        };
        call.state = CallState::Connecting;
        call.generation += 1;
        call.leg = Some(leg_call_id.clone());
        call.position = Some(uri.clone());
        call.connect_reply = Some(reply);
        let call_generation = call.generation;
        tracing::info!(call = %call.id, "sip: connecting call to operator position");
        self.legs.insert(
            leg_call_id.clone(),
            Leg {
                call: Some(serial),
                call_id: leg_call_id.clone(),
                local_tag,
                remote_tag: None,
                request_uri: uri,
                target,
                invite_branch: branch.clone(),
                invite_via: via,
                from,
                to,
                provisional: false,
                answered: false,
                cancel_pending: false,
                ack: None,
                remote_target: None,
                routes: Vec::new(),
                next_cseq: 2,
            },
        );
        self.start_client(&branch, ClientKind::Invite, Some(leg_call_id), peer, bytes)
            .await;
        self.schedule(
            Timer::ConnectTimeout(serial, call_generation),
            Duration::from_secs(self.config.operator_answer_timeout_secs),
        );
        self.set_depth();
    }

    async fn start_client(
        &mut self,
        branch: &str,
        kind: ClientKind,
        leg: Option<String>,
        peer: Peer,
        bytes: Vec<u8>,
    ) {
        let t1 = self.config.t1();
        let udp = peer.is_udp();
        let method = match kind {
            ClientKind::Invite => "INVITE",
            ClientKind::Bye => "BYE",
            ClientKind::Cancel => "CANCEL",
        };
        let branch = client_key(branch, method);
        self.clients.insert(
            branch.clone(),
            ClientTxn {
                kind,
                leg,
                peer: peer.clone(),
                bytes: bytes.clone(),
                interval: t1,
                generation: 0,
                quiet: false,
            },
        );
        if udp {
            self.schedule(Timer::ClientRetransmit(branch.clone(), 0), t1);
        }
        self.schedule(Timer::ClientTimeout(branch, 0), self.config.t64());
        self.transport.send(&peer, bytes).await;
    }

    async fn on_response(&mut self, response: Response) {
        let Some(branch) = response.core.via[0]
            .branch()
            .map(|b| client_key(b, &response.core.cseq.method))
        else {
            return;
        };
        let Some(txn) = self.clients.get_mut(&branch) else {
            // Not ours, or a 2xx retransmission after the INVITE transaction ended.
            if response.status < 300 && response.core.cseq.method == "INVITE" {
                self.resend_ack(&response).await;
            }
            return;
        };
        let kind = txn.kind;
        let leg_id = txn.leg.clone();
        if response.status < 200 {
            txn.quiet = true;
            if kind == ClientKind::Invite
                && let Some(leg_id) = &leg_id
            {
                self.on_leg_provisional(leg_id).await;
            }
            return;
        }
        self.clients.remove(&branch);
        if kind != ClientKind::Invite {
            return;
        }
        let Some(leg_id) = leg_id else { return };
        if response.status < 300 {
            self.on_leg_answered(&leg_id, &response).await;
        } else {
            self.on_leg_refused(&leg_id, &response).await;
        }
    }

    async fn on_leg_provisional(&mut self, leg_id: &str) {
        let Some(leg) = self.legs.get_mut(leg_id) else {
            return;
        };
        leg.provisional = true;
        if leg.cancel_pending {
            leg.cancel_pending = false;
            self.send_cancel(leg_id).await;
        }
    }

    async fn on_leg_answered(&mut self, leg_id: &str, response: &Response) {
        let Some(leg) = self.legs.get_mut(leg_id) else {
            return;
        };
        leg.answered = true;
        leg.remote_tag = response.core.to.tag().map(str::to_owned);
        leg.remote_target = response
            .core
            .contact
            .first()
            .map(|c| c.uri.as_str().to_owned());
        let mut routes: Vec<String> = response
            .header_values(&HeaderName::RecordRoute)
            .filter_map(|v| NameAddr::parse_list(v).ok())
            .flatten()
            .map(|n| format!("<{}>", n.uri.as_str()))
            .collect();
        routes.reverse();
        leg.routes = routes;
        let ack = leg_request(
            leg,
            &Method::Ack,
            1,
            &format!("z9hG4bK{}", random_token(16)),
        )
        .finish();
        leg.ack = Some(ack.clone());
        let peer = Peer::Udp(leg.target);
        let call = leg.call;
        self.transport.send(&peer, ack).await;
        let live = call.and_then(|serial| {
            self.calls
                .get(&serial)
                .filter(|c| c.state == CallState::Connecting)
                .map(|_| serial)
        });
        let Some(serial) = live else {
            // The caller left (or the attempt timed out) meanwhile: hang up this leg.
            self.bye_leg(leg_id).await;
            return;
        };
        let Some(call) = self.calls.get_mut(&serial) else {
            return;
        };
        let peer = call.peer.clone();
        let invite = call.invite.clone();
        let tag = call.local_tag.clone();
        let contact = self.contact(&peer);
        let mut w = Self::response(&invite, &peer, 200, "OK", Some(&tag))
            .header("Contact", &contact)
            .header("Allow", ALLOW);
        w = match (&response.core.content_type, response.body.is_empty()) {
            (Some(ct), false) => w.body(&ct.essence, &response.body),
            _ => w,
        };
        let answer = w.finish();
        let now = self.clock.now();
        let Some(call) = self.calls.get_mut(&serial) else {
            return;
        };
        call.state = CallState::Answering;
        call.generation += 1;
        call.answer = Some(answer.clone());
        let g = call.generation;
        let position = call.position.clone().unwrap_or_default();
        let id = call.id.clone();
        let offered_at = call.offered_at;
        if let Some(reply) = call.connect_reply.take() {
            let _ = reply.send(Ok(()));
        }
        self.reply(&invite, &peer, answer, 200).await;
        if peer.is_udp() {
            self.schedule(Timer::AnswerRetransmit(serial, g), self.config.t1());
        }
        self.schedule(Timer::AnswerTimeout(serial, g), self.config.t64());
        record_wait(offered_at, now, "answered");
        metrics::counter!("regula_telephony_calls_answered_total", "channel" => "sip").increment(1);
        tracing::info!(call = %id, "sip: operator answered; call connected");
        self.emit(CallEvent::Connected {
            call: id,
            position,
            at: now,
        });
        self.set_depth();
    }

    async fn on_leg_refused(&mut self, leg_id: &str, response: &Response) {
        let Some(leg) = self.legs.remove(leg_id) else {
            return;
        };
        // ACK the non-2xx final: same branch and Via as the INVITE.
        let mut ack = MessageWriter::request(&Method::Ack, &leg.request_uri)
            .header("Via", &leg.invite_via)
            .header("Max-Forwards", "70")
            .header("From", &leg.from);
        let to = match response.core.to.tag() {
            Some(tag) => format!("{};tag={tag}", leg.to),
            None => leg.to.clone(),
        };
        ack = ack
            .header("To", &to)
            .header("Call-ID", &leg.call_id)
            .header("CSeq", "1 ACK");
        self.transport
            .send(&Peer::Udp(leg.target), ack.finish())
            .await;
        if let Some(serial) = leg.call {
            self.requeue(
                serial,
                Err(ConnectError::PositionRefused {
                    status: response.status,
                    reason: response.reason.chars().take(100).collect(),
                }),
            );
        }
    }

    /// The operator leg failed: the call waits again (still ringing for the caller).
    fn requeue(&mut self, serial: u64, outcome: Result<(), ConnectError>) {
        let interval = Duration::from_secs(self.config.provisional_interval_secs);
        let Some(call) = self.calls.get_mut(&serial) else {
            return;
        };
        if call.state != CallState::Connecting {
            return;
        }
        call.state = CallState::Queued;
        call.generation += 1;
        call.leg = None;
        call.position = None;
        let g = call.generation;
        tracing::info!(call = %call.id, "sip: call back in the queue");
        if let Some(reply) = call.connect_reply.take() {
            let _ = reply.send(outcome);
        }
        self.schedule(Timer::Ringing(serial, g), interval);
        self.set_depth();
    }

    async fn send_cancel(&mut self, leg_id: &str) {
        let Some(leg) = self.legs.get(leg_id) else {
            return;
        };
        let bytes = MessageWriter::request(&Method::Cancel, &leg.request_uri)
            .header("Via", &leg.invite_via)
            .header("Max-Forwards", "70")
            .header("From", &leg.from)
            .header("To", &leg.to)
            .header("Call-ID", &leg.call_id)
            .header("CSeq", "1 CANCEL")
            .finish();
        let peer = Peer::Udp(leg.target);
        let branch = leg.invite_branch.clone();
        let expire = self.config.t64();
        self.start_client(&branch, ClientKind::Cancel, None, peer, bytes)
            .await;
        // If the INVITE never gets its final response, forget the leg after 64·T1.
        self.schedule(Timer::LegExpire(leg_id.to_owned()), expire);
    }

    /// Stops trying the operator leg (the caller left or the attempt timed out).
    async fn cancel_leg(&mut self, leg_id: &str) {
        let Some(leg) = self.legs.get_mut(leg_id) else {
            return;
        };
        leg.call = None;
        if leg.answered {
            self.bye_leg(leg_id).await;
        } else if leg.provisional {
            self.send_cancel(leg_id).await;
        } else {
            leg.cancel_pending = true;
        }
    }

    async fn bye_leg(&mut self, leg_id: &str) {
        let Some(mut leg) = self.legs.remove(leg_id) else {
            return;
        };
        let branch = format!("z9hG4bK{}", random_token(16));
        let cseq = leg.next_cseq;
        leg.next_cseq += 1;
        let bytes = leg_request(&leg, &Method::Bye, cseq, &branch).finish();
        self.clients
            .remove(&client_key(&leg.invite_branch, "INVITE"));
        self.start_client(&branch, ClientKind::Bye, None, Peer::Udp(leg.target), bytes)
            .await;
    }

    async fn resend_ack(&mut self, response: &Response) {
        let ack = self
            .legs
            .get(&response.core.call_id)
            .and_then(|l| l.ack.clone().map(|a| (a, l.target)));
        if let Some((ack, target)) = ack {
            self.transport.send(&Peer::Udp(target), ack).await;
        }
    }

    // --------------------------------------------------------------------------------
    // Ending

    async fn end(&mut self, serial: u64, how: End) {
        let Some(call) = self.calls.remove(&serial) else {
            return;
        };
        self.forget(&call);
        if how != End::OperatorHungUp
            && let Some(leg) = &call.leg
        {
            self.bye_leg(leg).await;
        }
        if how != End::CallerHungUp {
            // BYE to the caller, in the caller's dialog, on the INVITE's connection.
            let invite = &call.invite;
            let target = invite.core.contact.first().map_or_else(
                || invite.core.from.uri.as_str().to_owned(),
                |c| c.uri.as_str().to_owned(),
            );
            let hostport = self.local_hostport(call.peer.addr().ip());
            let branch = format!("z9hG4bK{}", random_token(16));
            let to_value = invite.header(&HeaderName::To).unwrap_or_default();
            let mut w = MessageWriter::request(&Method::Bye, &target)
                .header(
                    "Via",
                    &format!(
                        "SIP/2.0/{} {hostport};branch={branch};rport",
                        call.peer.transport_name()
                    ),
                )
                .header("Max-Forwards", "70")
                .header("From", &format!("{to_value};tag={}", call.local_tag))
                .header("To", invite.header(&HeaderName::From).unwrap_or_default())
                .header("Call-ID", &invite.core.call_id)
                .header("CSeq", "1 BYE");
            for route in invite.header_values(&HeaderName::RecordRoute) {
                w = w.header("Route", route);
            }
            let bytes = w.header("User-Agent", SERVER_NAME).finish();
            self.start_client(&branch, ClientKind::Bye, None, call.peer.clone(), bytes)
                .await;
        }
        let now = self.clock.now();
        tracing::info!(call = %call.id, ?how, "sip: call ended");
        self.emit(CallEvent::Ended {
            call: call.id,
            at: now,
        });
        self.set_depth();
    }

    async fn begin_shutdown(&mut self) {
        if self.shutting_down {
            return;
        }
        self.shutting_down = true;
        tracing::info!(calls = self.calls.len(), "sip: shutting down");
        let serials: Vec<u64> = self.calls.keys().copied().collect();
        for serial in serials {
            let Some(state) = self.calls.get(&serial).map(|c| c.state) else {
                continue;
            };
            match state {
                CallState::Queued | CallState::Connecting => {
                    let Some(call) = self.calls.remove(&serial) else {
                        continue;
                    };
                    let bytes = Self::response(
                        &call.invite,
                        &call.peer,
                        503,
                        "Service Unavailable",
                        Some(&call.local_tag),
                    )
                    .header("Retry-After", &self.config.retry_after_secs.to_string())
                    .finish();
                    self.reply(&call.invite, &call.peer, bytes, 503).await;
                    self.forget(&call);
                    if let Some(leg) = &call.leg {
                        self.cancel_leg(leg).await;
                    }
                    if let Some(reply) = call.connect_reply {
                        let _ = reply.send(Err(ConnectError::Stopped));
                    }
                    self.emit(CallEvent::Abandoned {
                        call: call.id,
                        at: self.clock.now(),
                    });
                }
                CallState::Answering | CallState::Connected => {
                    self.end(serial, End::GatewayStopped).await;
                }
            }
        }
        self.set_depth();
        self.schedule(
            Timer::ShutdownDeadline,
            Duration::from_millis(self.config.shutdown_grace_ms),
        );
    }

    // --------------------------------------------------------------------------------
    // Timers

    #[allow(clippy::too_many_lines)]
    async fn on_timer(&mut self, timer: Timer) {
        match timer {
            Timer::ServerRetransmit(key, g) => {
                let t2 = self.config.t2();
                let Some(txn) = self.server.get_mut(&key) else {
                    return;
                };
                if txn.generation != g || txn.state != TxnState::Completed {
                    return;
                }
                txn.interval = (txn.interval * 2).min(t2);
                let next = txn.interval;
                let (peer, bytes) = (txn.peer.clone(), txn.last_response.clone());
                self.schedule(Timer::ServerRetransmit(key, g), next);
                if let Some(bytes) = bytes {
                    self.transport.send(&peer, bytes).await;
                }
            }
            Timer::ServerTimeout(key, g) => {
                if self.server.get(&key).is_some_and(|t| t.generation == g) {
                    tracing::debug!("sip: no ACK for a final response (timer H)");
                    self.server.remove(&key);
                }
            }
            Timer::ServerExpire(key, g) => {
                if self.server.get(&key).is_some_and(|t| t.generation == g) {
                    self.server.remove(&key);
                }
            }
            Timer::Ringing(serial, g) => {
                let interval = Duration::from_secs(self.config.provisional_interval_secs);
                let Some(call) = self.calls.get(&serial) else {
                    return;
                };
                if call.generation != g || call.state != CallState::Queued {
                    return;
                }
                let (peer, ringing, key) =
                    (call.peer.clone(), call.ringing.clone(), call.txn.clone());
                if let Some(txn) = self.server.get_mut(&key) {
                    txn.last_response = Some(ringing.clone());
                }
                self.schedule(Timer::Ringing(serial, g), interval);
                self.transport.send(&peer, ringing).await;
            }
            Timer::AnswerRetransmit(serial, g) => {
                let t2 = self.config.t2();
                let Some(call) = self.calls.get_mut(&serial) else {
                    return;
                };
                if call.generation != g || call.state != CallState::Answering {
                    return;
                }
                call.answer_interval = (call.answer_interval * 2).min(t2);
                let next = call.answer_interval;
                let (peer, bytes) = (call.peer.clone(), call.answer.clone());
                self.schedule(Timer::AnswerRetransmit(serial, g), next);
                if let Some(bytes) = bytes {
                    self.transport.send(&peer, bytes).await;
                }
            }
            Timer::AnswerTimeout(serial, g) => {
                let stale = self
                    .calls
                    .get(&serial)
                    .is_none_or(|c| c.generation != g || c.state != CallState::Answering);
                if !stale {
                    tracing::warn!("sip: caller never acknowledged the answer; hanging up");
                    self.end(serial, End::NoAck).await;
                }
            }
            Timer::ClientRetransmit(branch, g) => {
                let t2 = self.config.t2();
                let Some(txn) = self.clients.get_mut(&branch) else {
                    return;
                };
                if txn.generation != g || txn.quiet {
                    return;
                }
                txn.interval = if txn.kind == ClientKind::Invite {
                    txn.interval * 2
                } else {
                    (txn.interval * 2).min(t2)
                };
                let (peer, bytes, next) = (txn.peer.clone(), txn.bytes.clone(), txn.interval);
                self.schedule(Timer::ClientRetransmit(branch, g), next);
                self.transport.send(&peer, bytes).await;
            }
            Timer::ClientTimeout(branch, g) => {
                let Some(txn) = self.clients.get(&branch) else {
                    return;
                };
                if txn.generation != g {
                    return;
                }
                // An INVITE that got a provisional waits for ConnectTimeout instead.
                if txn.kind == ClientKind::Invite && txn.quiet {
                    return;
                }
                let txn = self.clients.remove(&branch);
                if let Some(ClientTxn {
                    kind: ClientKind::Invite,
                    leg: Some(leg_id),
                    ..
                }) = txn
                    && let Some(leg) = self.legs.remove(&leg_id)
                    && let Some(serial) = leg.call
                {
                    self.requeue(serial, Err(ConnectError::NoAnswer));
                }
            }
            Timer::ConnectTimeout(serial, g) => {
                let Some(call) = self.calls.get(&serial) else {
                    return;
                };
                if call.generation != g || call.state != CallState::Connecting {
                    return;
                }
                if let Some(leg_id) = call.leg.clone() {
                    let silent = self.legs.get(&leg_id).is_some_and(|l| !l.provisional);
                    if silent {
                        // Not even a 100 Trying: the position is gone; forget the leg.
                        if let Some(leg) = self.legs.remove(&leg_id) {
                            self.clients
                                .remove(&client_key(&leg.invite_branch, "INVITE"));
                        }
                    } else {
                        self.cancel_leg(&leg_id).await;
                    }
                }
                self.requeue(serial, Err(ConnectError::NoAnswer));
            }
            Timer::LegExpire(leg_id) => {
                let unanswered = self.legs.get(&leg_id).is_some_and(|l| !l.answered);
                if unanswered && let Some(leg) = self.legs.remove(&leg_id) {
                    self.clients
                        .remove(&client_key(&leg.invite_branch, "INVITE"));
                }
            }
            Timer::ShutdownDeadline => {}
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    CallerHungUp,
    OperatorHungUp,
    NoAck,
    GatewayStopped,
}

/// An in-dialog request on the operator leg.
fn leg_request(leg: &Leg, method: &Method, cseq: u32, branch: &str) -> MessageWriter {
    let uri = leg.remote_target.as_deref().unwrap_or(&leg.request_uri);
    let via_host = leg
        .invite_via
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.split(';').next())
        .unwrap_or_default()
        .to_owned();
    let to = match &leg.remote_tag {
        Some(tag) => format!("{};tag={tag}", leg.to),
        None => leg.to.clone(),
    };
    let mut w = MessageWriter::request(method, uri)
        .header(
            "Via",
            &format!("SIP/2.0/UDP {via_host};branch={branch};rport"),
        )
        .header("Max-Forwards", "70")
        .header("From", &leg.from)
        .header("To", &to)
        .header("Call-ID", &leg.call_id)
        .header("CSeq", &format!("{cseq} {method}"));
    for route in &leg.routes {
        w = w.header("Route", route);
    }
    w
}

/// Adds `received`/`rport` (RFC 3581) to the top Via of a response.
fn received_via(via: &str, peer: &Peer) -> String {
    let addr = peer.addr();
    // Only the first via-parm of the field gets the parameters.
    let (first, rest) = crate::sip::split_first_element(via);
    let mut pieces: Vec<String> = Vec::new();
    for (i, piece) in first.split(';').enumerate() {
        let name = piece
            .split('=')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if i > 0 && name == "received" {
            continue;
        }
        if i > 0 && name == "rport" {
            pieces.push(format!("rport={}", addr.port()));
        } else {
            pieces.push(piece.to_owned());
        }
    }
    format!("{};received={}{rest}", pieces.join(";"), addr.ip())
}

fn record_wait(offered: Timestamp, now: Timestamp, outcome: &'static str) {
    let waited = now.saturating_duration_since(offered);
    metrics::histogram!("regula_telephony_queue_wait_seconds", "outcome" => outcome)
        .record(waited.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_sip_identifiers_are_hashed_into_valid_call_ids() {
        let short = sip_call_id("abc@host", "tag1");
        assert_eq!(short.as_str(), "sip:abc@host;tag1");
        let long = sip_call_id(&"x".repeat(300), "tag");
        assert!(long.as_str().starts_with("sip:h:"));
        assert_eq!(long, sip_call_id(&"x".repeat(300), "tag"));
    }

    #[test]
    fn received_and_rport_are_added_to_the_top_via_only() {
        let peer = Peer::Udp("192.0.2.9:5999".parse().unwrap());
        let via = received_via(
            "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;rport, SIP/2.0/UDP p;branch=z9hG4bK2",
            &peer,
        );
        assert_eq!(
            via,
            "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;rport=5999;received=192.0.2.9, SIP/2.0/UDP p;branch=z9hG4bK2"
        );
    }
}
