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
use sha2::Sha256;
use telephony_gateway::webhook::Recorded;
use telephony_gateway::{ConnectError, GatewayHandle};
use tokio::sync::mpsc;

use crate::engine::{CommandKey, EffectSink, EngineError, EngineHandle, InternalKeys};

/// Capacity of the call-event channel shared by the SIP gateway and the webhook.
pub const CALL_EVENT_CHANNEL: usize = 1024;

/// The idempotency key of a call event: the same event delivered twice (a retried
/// webhook, a pump retry) is recorded once. It lives in the engine's own namespace and is
/// keyed with the log's secret, so no client can claim it first.
pub fn call_event_key(keys: &InternalKeys, event: &CallEvent) -> CommandKey {
    let kind = match event {
        CallEvent::Offered { .. } => "offered",
        CallEvent::Abandoned { .. } => "abandoned",
        CallEvent::Connected { .. } => "connected",
        CallEvent::ConnectFailed { .. } => "connect_failed",
        CallEvent::Ended { .. } => "ended",
        CallEvent::Overflowed { .. } => "overflowed",
    };
    // A call can fail to connect several times; each failure is its own event.
    let id = match event {
        CallEvent::ConnectFailed { at, .. } => format!("{}\n{}", event.call(), at.as_millis()),
        _ => event.call().as_str().to_owned(),
    };
    keys.keyed(&format!("call:{kind}"), &id)
}

/// Records call events in the engine, in order, until every sender is gone or `stop`
/// turns true; then it records what is already in the channel and ends.
pub fn spawn_pump(
    engine: EngineHandle,
    keys: InternalKeys,
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
            let key = call_event_key(&keys, &event);
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

/// Records the webhook's call events in the engine and answers once they are stored, so a
/// provider's `202` is never lost to a restart. The provider's event id, keyed with the
/// log's secret, is the command's key: a replay of the same event — also after a restart —
/// is recognised as a duplicate (its receipt time differs, so the engine reports the key
/// as reused for another command: for a webhook that is the same event delivered again).
#[derive(Debug, Clone)]
pub struct EngineRecorder {
    engine: EngineHandle,
    keys: InternalKeys,
}

impl EngineRecorder {
    /// Records through `engine`, with keys made by `keys`.
    pub fn new(engine: EngineHandle, keys: InternalKeys) -> Self {
        Self { engine, keys }
    }
}

impl telephony_gateway::webhook::CallRecorder for EngineRecorder {
    fn record<'a>(
        &'a self,
        event_id: &'a str,
        event: CallEvent,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Recorded> + Send + 'a>> {
        Box::pin(async move {
            let key = self.keys.keyed("webhook:event", event_id);
            match self
                .engine
                .command(key, Command::RecordCallEvent { event })
                .await
            {
                Ok(reply) if reply.duplicate => Recorded::Duplicate,
                Ok(_) => Recorded::Stored,
                Err(EngineError::KeyReused { .. }) => Recorded::Duplicate,
                Err(EngineError::Rejected(rejection)) => Recorded::Refused(rejection.to_string()),
                Err(e) => Recorded::Unavailable(e.to_string()),
            }
        })
    }
}

/// Where live speeds go (the routing engine, when a road graph is loaded).
pub trait TravelObserver: Send + Sync {
    /// A unit drove from one fix to the next; `emergency` when it ran with sirens.
    fn observe(&self, unit: &UnitId, from: &GpsFix, to: &GpsFix, emergency: bool);
}

/// Where a webhook provider is told that an operator took one of its calls: a signed
/// `POST` (the webhook's own scheme: `X-Regula-Timestamp`, `X-Regula-Signature:
/// sha256=HMAC(secret, "<timestamp>.<body>")`) of
/// `{"event_id", "type": "take", "call_id", "position"}`; the provider bridges the caller to
/// `position` and reports `connected`. A provider that does not answer 2xx (after three
/// tries) puts the call back in the queue.
#[derive(Clone)]
pub struct WebhookCallback {
    url: String,
    secret: dispatch_core::privacy::Sensitive<String>,
    http: reqwest::Client,
}

impl std::fmt::Debug for WebhookCallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookCallback")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl WebhookCallback {
    /// Calls back `url`, signing with `secret`.
    pub fn new(
        url: String,
        secret: dispatch_core::privacy::Sensitive<String>,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?;
        Ok(Self { url, secret, http })
    }

    /// Tells the provider to connect `call` (a `webhook:` call id) to `position`.
    async fn take(&self, call: &CallId, position: &str, clock: &dyn Clock) -> Result<(), String> {
        use hmac::{Hmac, KeyInit, Mac};
        let provider_id = call.as_str().trim_start_matches("webhook:");
        let now = clock.now();
        let body = serde_json::json!({
            "event_id": format!("take:{provider_id}:{}", now.as_millis()),
            "type": "take",
            "call_id": provider_id,
            "position": position,
        })
        .to_string();
        let mut last = String::new();
        for attempt in 0..3u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_secs(1 << (attempt - 1))).await;
            }
            let timestamp = (clock.now().as_millis() / 1000).to_string();
            let mut mac =
                <Hmac<Sha256> as KeyInit>::new_from_slice(self.secret.expose().as_bytes())
                    .map_err(|e| e.to_string())?;
            mac.update(timestamp.as_bytes());
            mac.update(b".");
            mac.update(body.as_bytes());
            let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
            match self
                .http
                .post(&self.url)
                .header("content-type", "application/json")
                .header("x-regula-timestamp", &timestamp)
                .header("x-regula-signature", signature)
                .body(body.clone())
                .send()
                .await
            {
                Ok(response) if response.status().is_success() => return Ok(()),
                Ok(response) => last = format!("the provider answered {}", response.status()),
                Err(e) => last = format!("the provider could not be reached: {e}"),
            }
        }
        Err(last)
    }
}

/// The engine's door to the outside world.
pub struct ShellEffects {
    gateway: Option<Arc<GatewayHandle>>,
    callback: Option<WebhookCallback>,
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
            callback: None,
            call_events,
            clock,
            travel,
        }
    }

    /// Webhook calls taken by an operator are announced to the provider at `callback`.
    #[must_use]
    pub fn with_webhook_callback(mut self, callback: Option<WebhookCallback>) -> Self {
        self.callback = callback;
        self
    }
}

impl EffectSink for ShellEffects {
    fn connect_call(&self, call: &CallId, position: &str) {
        if call.as_str().starts_with("webhook:") {
            let Some(callback) = self.callback.clone() else {
                tracing::debug!(%call, "no webhook callback configured: the provider connects the call");
                return;
            };
            let (call, position) = (call.clone(), position.to_owned());
            let events = self.call_events.clone();
            let clock = self.clock.clone();
            tokio::spawn(async move {
                let Err(reason) = callback.take(&call, &position, clock.as_ref()).await else {
                    return;
                };
                tracing::warn!(%call, %reason, "the webhook provider was not told to connect the call");
                let _ = events
                    .send(CallEvent::ConnectFailed {
                        call,
                        position,
                        reason,
                        at: clock.now(),
                    })
                    .await;
            });
            return;
        }
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

/// Webhook calls still waiting (queued or being connected) that were offered before
/// `before`: after a restart, a call the provider has not moved on for that long is over
/// (the provider's own events for newer ones still arrive and are recorded).
pub fn stale_webhook_calls(
    state: &dispatch_core::Dispatch,
    before: maps::Timestamp,
) -> Vec<CallId> {
    use dispatch_core::model::CallStatus;
    state
        .calls()
        .filter(|c| {
            c.channel == CallChannel::Webhook
                && matches!(c.status, CallStatus::Queued | CallStatus::Taken)
                && c.offered_at < before
        })
        .map(|c| c.id.clone())
        .collect()
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
    fn call_event_keys_are_stable_short_internal_and_distinct_per_kind() {
        let keys = InternalKeys::new(std::sync::Arc::from(&b"log secret"[..]));
        let call = CallId::new(format!("sip:{}@carrier.co", "a".repeat(180))).unwrap();
        let at = Timestamp::parse_rfc3339("2026-11-23T12:00:00Z").unwrap();
        let abandoned = CallEvent::Abandoned {
            call: call.clone(),
            at,
        };
        let key = call_event_key(&keys, &abandoned);
        assert!(key.as_str().len() <= 64, "{}", key.as_str());
        assert!(key.as_str().starts_with('#'), "{}", key.as_str());
        assert_eq!(key, call_event_key(&keys, &abandoned));
        let ended = CallEvent::Ended {
            call: call.clone(),
            at,
        };
        assert_ne!(key, call_event_key(&keys, &ended));
        let failed = |ms| CallEvent::ConnectFailed {
            call: call.clone(),
            position: "sip:pos@10.0.0.1".into(),
            reason: "busy".into(),
            at: Timestamp::from_millis(ms).unwrap(),
        };
        assert_ne!(
            call_event_key(&keys, &failed(1)),
            call_event_key(&keys, &failed(2))
        );
        // Not derivable from the public call id without the log's secret.
        let other = InternalKeys::new(std::sync::Arc::from(&b"another log"[..]));
        assert_ne!(key, call_event_key(&other, &abandoned));
    }
}
