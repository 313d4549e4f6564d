//! Connecting a taken call to an operator position: the gateway ↔ position leg of the
//! signalling-only B2BUA, its answer, refusal, cancellation and hang-up.

use std::net::SocketAddr;
use std::time::Duration;

use dispatch_core::intake::{CallEvent, CallId};
use tokio::sync::oneshot;

use super::{
    ALLOW, CallState, ClientKind, ConnectError, Core, Timer, client_key, random_token, record_wait,
};
use crate::SERVER_NAME;
use crate::location::sdp_of;
use crate::sip::{HeaderLookup, HeaderName, MessageWriter, Method, NameAddr, Response};
use crate::transport::Peer;

/// The gateway ↔ operator dialog.
#[derive(Debug)]
pub(super) struct Leg {
    pub(super) call: Option<u64>,
    pub(super) call_id: String,
    pub(super) local_tag: String,
    pub(super) remote_tag: Option<String>,
    pub(super) request_uri: String,
    pub(super) target: SocketAddr,
    pub(super) invite_branch: String,
    pub(super) invite_via: String,
    pub(super) from: String,
    pub(super) to: String,
    pub(super) provisional: bool,
    pub(super) answered: bool,
    /// CANCEL wanted before a provisional arrived (RFC 3261 §9.1: wait for one).
    pub(super) cancel_pending: bool,
    pub(super) ack: Option<Vec<u8>>,
    pub(super) remote_target: Option<String>,
    pub(super) routes: Vec<String>,
    pub(super) next_cseq: u32,
}

impl Core {
    #[allow(clippy::too_many_lines)]
    pub(super) async fn on_connect(
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
        let identity = call.caller.clone();
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

    pub(super) async fn on_leg_provisional(&mut self, leg_id: &str) {
        let Some(leg) = self.legs.get_mut(leg_id) else {
            return;
        };
        leg.provisional = true;
        if leg.cancel_pending {
            leg.cancel_pending = false;
            self.send_cancel(leg_id).await;
        }
    }

    pub(super) async fn on_leg_answered(&mut self, leg_id: &str, response: &Response) {
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

    pub(super) async fn on_leg_refused(&mut self, leg_id: &str, response: &Response) {
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
            )
            .await;
        }
    }

    /// The operator leg failed: the call waits again (still ringing for the caller), or
    /// overflows if it already waited `max_queue_secs`.
    pub(super) async fn requeue(&mut self, serial: u64, outcome: Result<(), ConnectError>) {
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
        let overdue = call.overdue;
        self.schedule(Timer::Ringing(serial, g), interval);
        self.set_depth();
        if overdue {
            self.overflow(serial).await;
        }
    }

    pub(super) async fn send_cancel(&mut self, leg_id: &str) {
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
    pub(super) async fn cancel_leg(&mut self, leg_id: &str) {
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

    pub(super) async fn bye_leg(&mut self, leg_id: &str) {
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

    pub(super) async fn resend_ack(&mut self, response: &Response) {
        let ack = self
            .legs
            .get(&response.core.call_id)
            .and_then(|l| l.ack.clone().map(|a| (a, l.target)));
        if let Some((ack, target)) = ack {
            self.transport.send(&Peer::Udp(target), ack).await;
        }
    }
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
