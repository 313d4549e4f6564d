//! What each timer does when it fires (a stale generation means it is ignored).

use std::time::Duration;

use super::{
    CallState, ClientKind, ClientTxn, ConnectError, Core, End, TxnKey, TxnState, client_key,
};

#[derive(Debug, Clone)]
pub(super) enum Timer {
    ServerRetransmit(TxnKey, u64),
    ServerTimeout(TxnKey, u64),
    ServerExpire(TxnKey, u64),
    Ringing(u64, u64),
    AnswerRetransmit(u64, u64),
    AnswerTimeout(u64, u64),
    ClientRetransmit(String, u64),
    ClientTimeout(String, u64),
    ConnectTimeout(u64, u64),
    /// `max_queue_secs` after the offer (not generation-bound: it holds across
    /// connection attempts).
    QueueDeadline(u64),
    LegExpire(String),
    ShutdownDeadline,
}

impl Core {
    #[allow(clippy::too_many_lines)]
    pub(super) async fn on_timer(&mut self, timer: Timer) {
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
                    self.requeue(serial, Err(ConnectError::NoAnswer)).await;
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
                self.requeue(serial, Err(ConnectError::NoAnswer)).await;
            }
            Timer::LegExpire(leg_id) => {
                let unanswered = self.legs.get(&leg_id).is_some_and(|l| !l.answered);
                if unanswered && let Some(leg) = self.legs.remove(&leg_id) {
                    self.clients
                        .remove(&client_key(&leg.invite_branch, "INVITE"));
                }
            }
            Timer::QueueDeadline(serial) => {
                let Some(call) = self.calls.get_mut(&serial) else {
                    return;
                };
                match call.state {
                    CallState::Queued => self.overflow(serial).await,
                    // The position may still answer; if it does not, the call overflows.
                    CallState::Connecting => call.overdue = true,
                    CallState::Answering | CallState::Connected => {}
                }
            }
            Timer::ShutdownDeadline => {}
        }
    }
}
