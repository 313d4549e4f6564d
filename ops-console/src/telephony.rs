//! Wiring the telephony door to the engine.
//!
//! - The **pump** takes every [`CallEvent`] from the SIP gateway and the webhook (one
//!   channel) and records it in the engine, with an idempotency key derived from the call
//!   and the kind of event. A storage failure is retried until it succeeds: a call the
//!   gateway accepted is never dropped on its way to the queue.
//! - The **effects** the engine asks of the outside world: `ConnectCall` is handed to the
//!   SIP gateway on its own task (it resolves when the operator's phone answers or fails);
//!   a failure is recorded as [`CallEvent::ConnectFailed`], which puts the call back in the
//!   queue. `ObserveTravel` is passed to the live-speed sink when a road graph is loaded.

use std::sync::Arc;
use std::time::Duration;

use dispatch_core::Command;
use dispatch_core::fleet::GpsFix;
use dispatch_core::ids::UnitId;
use dispatch_core::intake::{CallChannel, CallEvent, CallId};
use maps::Clock;
use sha2::{Digest, Sha256};
use telephony_gateway::{ConnectError, GatewayHandle};
use tokio::sync::mpsc;

use crate::engine::{CommandKey, EffectSink, EngineError, EngineHandle};

/// Capacity of the call-event channel shared by the SIP gateway and the webhook.
pub const CALL_EVENT_CHANNEL: usize = 1024;

/// The idempotency key of a call event: the same event delivered twice (a retried
/// webhook, a pump retry) is recorded once.
pub fn call_event_key(event: &CallEvent) -> CommandKey {
    let kind = match event {
        CallEvent::Offered { .. } => "offered",
        CallEvent::Abandoned { .. } => "abandoned",
        CallEvent::Connected { .. } => "connected",
        CallEvent::ConnectFailed { .. } => "connect_failed",
        CallEvent::Ended { .. } => "ended",
        CallEvent::Overflowed { .. } => "overflowed",
    };
    let digest = Sha256::digest(event.call().as_str().as_bytes());
    let hex = hex::encode(&digest[..16]);
    // A call can fail to connect several times; each failure is its own event.
    let suffix = match event {
        CallEvent::ConnectFailed { at, .. } => format!(":{}", at.as_millis()),
        _ => String::new(),
    };
    CommandKey::new(format!("call:{kind}:{hex}{suffix}"))
        .unwrap_or_else(|e| panic!("a call-event key is always valid: {e}"))
}

/// Records call events in the engine, in order, until every sender is gone or `stop`
/// turns true; then it records what is already in the channel and ends.
pub fn spawn_pump(
    engine: EngineHandle,
    clock: Arc<dyn Clock>,
    mut events: mpsc::Receiver<CallEvent>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let event = tokio::select! {
                event = events.recv() => event,
                _ = stop.wait_for(|stop| *stop), if !stop.borrow().to_owned() => {
                    // No new events; the ones already queued are still recorded.
                    events.close();
                    continue;
                }
            };
            let Some(event) = event else { return };
            let key = call_event_key(&event);
            let offered_at = matches!(event, CallEvent::Offered { .. }).then(|| event.at());
            let mut backoff = Duration::from_millis(50);
            loop {
                let command = Command::RecordCallEvent {
                    event: event.clone(),
                };
                match engine.command(key.clone(), command).await {
                    Ok(_) => {
                        if let Some(at) = offered_at {
                            let latency = clock.now().saturating_duration_since(at);
                            metrics::histogram!("regula_call_offered_to_queued_seconds")
                                .record(latency.as_secs_f64());
                        }
                        break;
                    }
                    Err(EngineError::Rejected(rejection)) => {
                        // Late or repeated signalling (an abandon after a restart, say): the
                        // core's state already says what happened.
                        tracing::warn!(call = %event.call(), %rejection, "call event not recorded");
                        break;
                    }
                    Err(EngineError::Stopped) => return,
                    Err(e) => {
                        tracing::error!(error = %e, call = %event.call(), "cannot record a call event; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        }
    })
}

/// Where live speeds go (the routing engine, when a road graph is loaded).
pub trait TravelObserver: Send + Sync {
    /// A unit drove from one fix to the next; `emergency` when it ran with sirens.
    fn observe(&self, unit: &UnitId, from: &GpsFix, to: &GpsFix, emergency: bool);
}

/// The engine's door to the outside world.
pub struct ShellEffects {
    gateway: Option<Arc<GatewayHandle>>,
    call_events: mpsc::Sender<CallEvent>,
    clock: Arc<dyn Clock>,
    travel: Option<Arc<dyn TravelObserver>>,
}

impl std::fmt::Debug for ShellEffects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShellEffects")
            .field("sip", &self.gateway.is_some())
            .field("live_speeds", &self.travel.is_some())
            .finish_non_exhaustive()
    }
}

impl ShellEffects {
    /// Effects through `gateway` (if SIP is on), reporting connection failures on
    /// `call_events`, and live speeds to `travel` (if a road graph is loaded).
    pub fn new(
        gateway: Option<Arc<GatewayHandle>>,
        call_events: mpsc::Sender<CallEvent>,
        clock: Arc<dyn Clock>,
        travel: Option<Arc<dyn TravelObserver>>,
    ) -> Self {
        Self {
            gateway,
            call_events,
            clock,
            travel,
        }
    }
}

impl EffectSink for ShellEffects {
    fn connect_call(&self, call: &CallId, position: &str) {
        let Some(gateway) = self.gateway.clone() else {
            tracing::debug!(%call, "no SIP gateway: the call is connected by its provider");
            return;
        };
        let (call, position) = (call.clone(), position.to_owned());
        let events = self.call_events.clone();
        let clock = self.clock.clone();
        tokio::spawn(async move {
            let reason = match gateway.connect(&call, &position).await {
                // Connected; or the caller hung up (the gateway reports the abandon); or not
                // a SIP call of ours (a webhook call is connected by its provider).
                Ok(())
                | Err(
                    ConnectError::CallerHungUp
                    | ConnectError::Stopped
                    | ConnectError::UnknownCall(_)
                    | ConnectError::NotQueued(..),
                ) => return,
                Err(e) => e.to_string(),
            };
            tracing::warn!(%call, %reason, "the operator position did not take the call");
            let _ = events
                .send(CallEvent::ConnectFailed {
                    call,
                    position,
                    reason,
                    at: clock.now(),
                })
                .await;
        });
    }

    fn observe_travel(&self, unit: &UnitId, from: &GpsFix, to: &GpsFix, emergency: bool) {
        if let Some(travel) = &self.travel {
            travel.observe(unit, from, to, emergency);
        }
    }
}

/// The SIP calls the core still shows as waiting or being connected; after a restart
/// their signalling is gone (the process that held it died).
pub fn stale_sip_calls(state: &dispatch_core::Dispatch) -> Vec<CallId> {
    use dispatch_core::model::CallStatus;
    state
        .calls()
        .filter(|c| {
            c.channel == CallChannel::Sip
                && matches!(c.status, CallStatus::Queued | CallStatus::Taken)
        })
        .map(|c| c.id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use maps::Timestamp;

    use super::*;

    #[test]
    fn call_event_keys_are_stable_short_and_distinct_per_kind() {
        let call = CallId::new(format!("sip:{}@carrier.co", "a".repeat(180))).unwrap();
        let at = Timestamp::parse_rfc3339("2026-11-23T12:00:00Z").unwrap();
        let abandoned = CallEvent::Abandoned {
            call: call.clone(),
            at,
        };
        let key = call_event_key(&abandoned);
        assert!(key.as_str().len() <= 64, "{}", key.as_str());
        assert_eq!(key, call_event_key(&abandoned));
        let ended = CallEvent::Ended {
            call: call.clone(),
            at,
        };
        assert_ne!(key, call_event_key(&ended));
        let failed = |ms| CallEvent::ConnectFailed {
            call: call.clone(),
            position: "sip:pos@10.0.0.1".into(),
            reason: "busy".into(),
            at: Timestamp::from_millis(ms).unwrap(),
        };
        assert_ne!(call_event_key(&failed(1)), call_event_key(&failed(2)));
    }
}
