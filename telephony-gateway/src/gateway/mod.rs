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
//!
//! # Layout
//!
//! - this module: the public API ([`SipGateway`], [`GatewayHandle`], errors) and the core
//!   task's loop and small helpers;
//! - `transactions`: server and client transactions (RFC 3261 §17), responses, request
//!   dispatch;
//! - `calls`: the queue: accepting an INVITE, abandonment, hang-up, shutdown;
//! - `b2bua`: connecting a taken call to an operator position (the second leg);
//! - `timers`: what each timer does when it fires.

mod admission;
mod b2bua;
mod calls;
mod timers;
mod transactions;

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use dispatch_core::intake::{CallEvent, CallId};
use maps::{Clock, TravelTime};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::time::DelayQueue;

use crate::Monotonic;
use crate::config::{ConfigError, SipConfig};
use crate::sip::{Scheme, Uri};
use crate::transport::{self, Inbound, Peer, Transport};

use admission::Nonces;
use b2bua::Leg;
use calls::{Call, CallState, End, record_wait};
use timers::Timer;
use transactions::{ClientKind, ClientTxn, ServerTxn, TxnKey, TxnState, client_key};

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
            transport::TcpLimits::of(&config),
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
        let intake_open = Arc::new(AtomicBool::new(true));
        let core = Core {
            advertise: config.advertise.or_else(|| {
                let ip = bound.local.ip();
                (!ip.is_unspecified()).then_some(ip)
            }),
            port: bound.local.port(),
            nonces: Nonces::new(
                config.max_digest_nonces,
                TravelTime::from_secs(config.digest_nonce_secs),
            ),
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
            intake_open: intake_open.clone(),
            next_serial: 1,
            shutting_down: false,
            route_cache: HashMap::new(),
        };
        let task = tokio::spawn(core.run(inbound_rx, commands_rx, stop_tx, bound.tasks));
        Ok(GatewayHandle {
            local: bound.local,
            commands: commands_tx,
            depth,
            intake_open,
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
    intake_open: Arc<AtomicBool>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl GatewayHandle {
    /// The bound address (UDP and TCP), with the actual port when 0 was asked.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Opens or pauses the intake of new calls. While paused, new INVITEs get `503` with
    /// `Retry-After` (counted as `intake_paused`) so carriers re-route them; calls already
    /// waiting are unaffected. The regulation centre pauses it while its event log cannot
    /// record calls.
    pub fn set_intake(&self, open: bool) {
        self.intake_open.store(open, Ordering::Relaxed);
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
    /// Whether new calls are taken (see [`GatewayHandle::set_intake`]).
    intake_open: Arc<AtomicBool>,
    next_serial: u64,
    shutting_down: bool,
    route_cache: HashMap<IpAddr, IpAddr>,
    /// Outstanding digest nonces.
    nonces: Nonces,
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
}
