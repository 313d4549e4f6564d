//! Server and client transactions (RFC 3261 §17): building and sending responses,
//! absorbing retransmissions, dispatching requests and matching responses.

use std::time::Duration;

use super::{ACCEPT, ALLOW, CallState, Core, Timer, random_token};
use crate::SERVER_NAME;
use crate::sip::{
    HeaderLookup, HeaderName, Message, MessageWriter, Method, Request, Response, Scheme,
};
use crate::transport::{Inbound, Peer};

/// Server transaction key (RFC 3261 §17.2.3): branch, sent-by, method (ACK → INVITE).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct TxnKey {
    pub(super) branch: String,
    pub(super) sent_by: String,
    pub(super) method: String,
}

impl TxnKey {
    pub(super) fn of(request: &Request) -> Self {
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

    pub(super) fn with_method(&self, method: &str) -> Self {
        Self {
            method: method.to_owned(),
            ..self.clone()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TxnState {
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
pub(super) struct ServerTxn {
    pub(super) peer: Peer,
    pub(super) is_invite: bool,
    pub(super) state: TxnState,
    pub(super) last_response: Option<Vec<u8>>,
    pub(super) interval: Duration,
    pub(super) generation: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ClientKind {
    Invite,
    Bye,
    Cancel,
}

#[derive(Debug)]
pub(super) struct ClientTxn {
    pub(super) kind: ClientKind,
    pub(super) leg: Option<String>,
    pub(super) peer: Peer,
    pub(super) bytes: Vec<u8>,
    pub(super) interval: Duration,
    pub(super) generation: u64,
    /// A response (provisional for INVITE, any for others) stops retransmissions.
    pub(super) quiet: bool,
}

pub(super) fn client_key(branch: &str, method: &str) -> String {
    format!("{branch} {method}")
}

impl Core {
    /// Builds a response to `request` (RFC 3261 §8.2.6).
    pub(super) fn response(
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
    pub(super) async fn reply(
        &mut self,
        request: &Request,
        peer: &Peer,
        bytes: Vec<u8>,
        status: u16,
    ) {
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

    pub(super) async fn simple_reply(
        &mut self,
        request: &Request,
        peer: &Peer,
        status: u16,
        reason: &str,
    ) {
        let bytes = Self::response(request, peer, status, reason, Some(&random_token(10))).finish();
        self.reply(request, peer, bytes, status).await;
    }

    pub(super) async fn on_inbound(&mut self, inbound: Inbound) {
        match inbound.message {
            Message::Request(r) => self.on_request(r, inbound.peer, inbound.received).await,
            Message::Response(r) => self.on_response(r).await,
        }
    }

    pub(super) async fn on_request(
        &mut self,
        request: Request,
        peer: Peer,
        received: Option<Duration>,
    ) {
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

    pub(super) fn on_ack(&mut self, request: &Request, key: &TxnKey) {
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

    pub(super) async fn on_cancel(&mut self, request: &Request, peer: &Peer, key: &TxnKey) {
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

    pub(super) async fn start_client(
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

    pub(super) async fn on_response(&mut self, response: Response) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
