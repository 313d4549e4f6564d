//! The queue: accepting an INVITE (after the admission checks), abandonment (CANCEL or
//! early BYE), overflow after `max_queue_secs`, hang-up and the graceful shutdown of
//! waiting and connected calls.

use std::sync::atomic::Ordering;
use std::time::Duration;

use dispatch_core::intake::{CallChannel, CallEvent, CallId, CallerIdentity};
use maps::Timestamp;
use tokio::sync::oneshot;

use super::admission::{Admission, source_ip, trunk_name};
use super::{
    ACCEPT, ALLOW, ClientKind, ConnectError, Core, Timer, TxnKey, random_token, sip_call_id,
};
use crate::SERVER_NAME;
use crate::identity::caller_identity;
use crate::location::reported_location;
use crate::sip::{HeaderLookup, HeaderName, MessageWriter, Method, Request};
use crate::transport::{Peer, refused};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CallState {
    Queued,
    Connecting,
    /// 200 sent to the caller, waiting for the ACK.
    Answering,
    Connected,
}

impl CallState {
    pub(super) fn describe(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Connecting => "being connected",
            Self::Answering | Self::Connected => "connected",
        }
    }
}

#[derive(Debug)]
pub(super) struct Call {
    pub(super) id: CallId,
    pub(super) invite: Request,
    pub(super) peer: Peer,
    pub(super) txn: TxnKey,
    pub(super) local_tag: String,
    pub(super) state: CallState,
    pub(super) offered_at: Timestamp,
    /// The 180 re-sent while waiting.
    pub(super) ringing: Vec<u8>,
    /// The 200 re-sent until ACK.
    pub(super) answer: Option<Vec<u8>>,
    pub(super) answer_interval: Duration,
    pub(super) generation: u64,
    /// Operator leg (its Call-ID).
    pub(super) leg: Option<String>,
    pub(super) position: Option<String>,
    pub(super) connect_reply: Option<oneshot::Sender<Result<(), ConnectError>>>,
    /// The trunk the call came from (its index in the configuration), if any.
    pub(super) trunk: Option<usize>,
    /// Who is calling, as far as the source is trusted (computed once, at the offer).
    pub(super) caller: CallerIdentity,
    /// `max_queue_secs` passed while the call was being connected: if the position
    /// does not answer, the call overflows instead of waiting again.
    pub(super) overdue: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    CallerHungUp,
    OperatorHungUp,
    NoAck,
    GatewayStopped,
}

impl Core {
    #[allow(clippy::too_many_lines)] // the acceptance sequence reads best in one place
    pub(super) async fn on_invite(
        &mut self,
        request: Request,
        peer: Peer,
        received: Option<Duration>,
    ) {
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
        let (trunk, trust_asserted_identity) = match self.admit(&request, &peer) {
            Admission::Admitted {
                trunk,
                trust_asserted_identity,
            } => (trunk, trust_asserted_identity),
            Admission::Challenge { challenges } => {
                let mut w = Self::response(
                    &request,
                    &peer,
                    401,
                    "Unauthorized",
                    Some(&random_token(10)),
                );
                for challenge in &challenges {
                    w = w.header("WWW-Authenticate", challenge);
                }
                return self.reply(&request, &peer, w.finish(), 401).await;
            }
            Admission::Forbidden { reason } => {
                refused(reason);
                tracing::info!(peer = %peer.addr(), reason, "sip: INVITE refused with 403");
                return self.simple_reply(&request, &peer, 403, "Forbidden").await;
            }
        };
        if self.shutting_down {
            return self.overload(&request, &peer, "shutting_down").await;
        }
        if !self.intake_open.load(Ordering::Relaxed) {
            // The regulation centre cannot record calls now (its log is failing): a 503
            // lets the carrier re-route the call instead of ringing into nothing.
            return self.overload(&request, &peer, "intake_paused").await;
        }
        if self.depth.load(Ordering::Relaxed) >= self.config.max_queued_calls {
            return self.overload(&request, &peer, "queue_full").await;
        }
        if trunk.is_none()
            && self.waiting_from(source_ip(&peer)) >= self.config.max_queued_per_source
        {
            // One source outside every trunk cannot fill the queue; 503 tells a real
            // device to retry, and callers from elsewhere still get through.
            refused("source_limit");
            return self.busy(&request, &peer).await;
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
        let caller = caller_identity(&request, trust_asserted_identity);
        permit.send(CallEvent::Offered {
            call: id.clone(),
            channel: CallChannel::Sip,
            caller: caller.clone(),
            location: reported_location(&request),
            at: now,
        });
        if let (Some(m), Some(t0)) = (&self.monotonic, received) {
            let latency = m.elapsed().saturating_sub(t0);
            metrics::histogram!("regula_sip_invite_to_offered_seconds")
                .record(latency.as_secs_f64());
        }
        metrics::counter!("regula_telephony_calls_offered_total", "channel" => "sip").increment(1);
        tracing::info!(
            call = %id,
            trunk = trunk_name(&self.config.trunks, trunk),
            "sip: call offered"
        );

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
                trunk,
                caller,
                overdue: false,
            },
        );
        self.set_depth();
        self.reply(&request, &peer, ringing, 180).await;
        self.schedule(
            Timer::Ringing(serial, 0),
            Duration::from_secs(self.config.provisional_interval_secs),
        );
        self.schedule(
            Timer::QueueDeadline(serial),
            Duration::from_secs(self.config.max_queue_secs),
        );
    }

    /// 503 with `Retry-After` for one source's excess INVITEs (counted by the caller).
    async fn busy(&mut self, request: &Request, peer: &Peer) {
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

    /// Nobody took the call within `max_queue_secs`: hand it back to the carrier — a 302
    /// to `overflow_uri` (a backup centre) or, without one, 480 with `Retry-After` so the
    /// carrier routes it elsewhere — and report it `Overflowed`. The 180s stop with it.
    pub(super) async fn overflow(&mut self, serial: u64) {
        let Some(call) = self.calls.remove(&serial) else {
            return;
        };
        let to = self.config.overflow_uri.clone();
        let (bytes, status, outcome) = match &to {
            Some(uri) => (
                Self::response(
                    &call.invite,
                    &call.peer,
                    302,
                    "Moved Temporarily",
                    Some(&call.local_tag),
                )
                .header("Contact", &format!("<{uri}>"))
                .finish(),
                302,
                "redirected",
            ),
            None => (
                Self::response(
                    &call.invite,
                    &call.peer,
                    480,
                    "Temporarily Unavailable",
                    Some(&call.local_tag),
                )
                .header("Retry-After", &self.config.retry_after_secs.to_string())
                .finish(),
                480,
                "unavailable",
            ),
        };
        self.reply(&call.invite, &call.peer, bytes, status).await;
        self.forget(&call);
        if let Some(leg) = &call.leg {
            self.cancel_leg(leg).await;
        }
        // A call overflows while queued, or after its connection attempt was answered (see
        // `requeue`), so nobody is waiting for a reply; should one be, it was no answer.
        if let Some(reply) = call.connect_reply {
            let _ = reply.send(Err(ConnectError::NoAnswer));
        }
        let now = self.clock.now();
        record_wait(call.offered_at, now, "overflowed");
        metrics::counter!("regula_telephony_calls_overflowed_total", "channel" => "sip", "outcome" => outcome)
            .increment(1);
        tracing::warn!(call = %call.id, status, "sip: call unanswered for max_queue_secs; overflowed");
        self.emit(CallEvent::Overflowed {
            call: call.id,
            to,
            at: now,
        });
        self.set_depth();
    }

    pub(super) async fn overload(&mut self, request: &Request, peer: &Peer, why: &'static str) {
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

    /// The caller gave up before being connected: 487 to the INVITE, `Abandoned`.
    pub(super) async fn abandon(&mut self, serial: u64, how: &'static str) {
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

    pub(super) fn forget(&mut self, call: &Call) {
        if let Some(tag) = call.invite.core.from.tag() {
            self.by_dialog
                .remove(&(call.invite.core.call_id.clone(), tag.to_owned()));
        }
        self.by_call.remove(&call.id);
    }

    pub(super) async fn on_bye(&mut self, request: Request, peer: Peer) {
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

    pub(super) async fn end(&mut self, serial: u64, how: End) {
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

    pub(super) async fn begin_shutdown(&mut self) {
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
}

pub(super) fn record_wait(offered: Timestamp, now: Timestamp, outcome: &'static str) {
    let waited = now.saturating_duration_since(offered);
    metrics::histogram!("regula_telephony_queue_wait_seconds", "outcome" => outcome)
        .record(waited.as_secs_f64());
}
