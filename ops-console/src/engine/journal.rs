//! Between the engine and the store: encoding events, decoding them on replay, and
//! deriving the outbox messages that leave the process with the events that caused them.

use dispatch_core::model::{CareNetwork, EpsAffiliation};
use dispatch_core::{Dispatch, Effect, Event};

use crate::store::{EncodedEvent, OutboxMessage, StoredEvent};

/// Schema version written with every event. Bump it when an event's JSON changes in a way
/// old code cannot read, and teach [`decode`] the old versions.
pub const EVENT_SCHEMA_VERSION: u32 = 1;

/// Where a message for an uninsured patient, or one whose EPS is unknown, goes.
pub const PUBLIC_NETWORK: &str = "red_publica";

/// Kinds of outbox messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxKind {
    /// A closed transfer record for the patient's EPS (RIPS).
    TransferRecord,
    /// A referral for its care network.
    Referral,
    /// A pre-alert for the destination emergency department.
    PreAlert,
}

impl OutboxKind {
    /// The stored name.
    pub fn name(self) -> &'static str {
        match self {
            Self::TransferRecord => "transfer_record",
            Self::Referral => "referral",
            Self::PreAlert => "pre_alert",
        }
    }
}

/// Encodes events for the store.
pub fn encode(events: &[Event]) -> Result<Vec<EncodedEvent>, serde_json::Error> {
    events
        .iter()
        .map(|event| {
            Ok(EncodedEvent {
                kind: event.name(),
                version: EVENT_SCHEMA_VERSION,
                payload: serde_json::to_string(event)?,
            })
        })
        .collect()
}

/// Decodes a stored event; refuses versions this build does not know.
pub fn decode(stored: &StoredEvent) -> Result<Event, String> {
    if stored.version != EVENT_SCHEMA_VERSION {
        return Err(format!(
            "schema version {} is not readable by this build (it reads version {EVENT_SCHEMA_VERSION}); \
             upgrade Regula before replaying this log",
            stored.version
        ));
    }
    let event: Event = serde_json::from_str(&stored.payload)
        .map_err(|e| format!("payload does not decode: {e}"))?;
    if event.name() != stored.kind {
        return Err(format!(
            "row says `{}` but the payload is `{}`",
            stored.kind,
            event.name()
        ));
    }
    Ok(event)
}

/// The outbox messages for a decision's effects, computed against the state **before** its
/// events are applied (the events themselves are passed for what they create).
pub fn outbox_for(state: &Dispatch, events: &[Event], effects: &[Effect]) -> Vec<OutboxMessage> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::EmitTransferRecord { transfer } => {
                let destination = state
                    .transfer(*transfer)
                    .and_then(|t| t.patient.as_ref())
                    .map_or_else(
                        || PUBLIC_NETWORK.to_owned(),
                        |p| match &p.eps {
                            EpsAffiliation::Affiliated { eps, .. } => eps.to_string(),
                            EpsAffiliation::Unknown | EpsAffiliation::Uninsured => {
                                PUBLIC_NETWORK.to_owned()
                            }
                        },
                    );
                Some(message(
                    OutboxKind::TransferRecord,
                    format!("transfer:{transfer}"),
                    destination,
                    effect,
                ))
            }
            Effect::SendReferral { referral } => {
                let destination = events
                    .iter()
                    .find_map(|e| match e {
                        Event::ReferralCreated { referral: r } if r.id == *referral => {
                            Some(&r.network)
                        }
                        _ => None,
                    })
                    .or_else(|| state.referral(*referral).map(|r| &r.network))
                    .map_or_else(
                        || PUBLIC_NETWORK.to_owned(),
                        |network| match network {
                            CareNetwork::Eps { eps } => eps.to_string(),
                            CareNetwork::Public => PUBLIC_NETWORK.to_owned(),
                        },
                    );
                Some(message(
                    OutboxKind::Referral,
                    format!("referral:{referral}"),
                    destination,
                    effect,
                ))
            }
            Effect::PreAlertFacility { facility, incident } => Some(message(
                OutboxKind::PreAlert,
                format!("pre_alert:{incident}:{facility}"),
                facility.to_string(),
                effect,
            )),
            Effect::ConnectCall { .. }
            | Effect::NotifyCrew { .. }
            | Effect::Schedule(_)
            | Effect::ObserveTravel { .. }
            | Effect::AlertOperators { .. } => None,
        })
        .collect()
}

fn message(
    kind: OutboxKind,
    idempotency_key: String,
    destination: String,
    effect: &Effect,
) -> OutboxMessage {
    OutboxMessage {
        idempotency_key,
        kind: kind.name(),
        destination,
        // An `Effect` is plain data; its JSON cannot fail to encode.
        payload: serde_json::to_string(effect).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use dispatch_core::ids::UnitId;
    use maps::Timestamp;

    use super::*;

    fn stored(event: &Event, version: u32) -> StoredEvent {
        StoredEvent {
            seq: 1,
            recorded_at: Timestamp::UNIX_EPOCH,
            command_key: "k".into(),
            kind: event.name().into(),
            version,
            payload: serde_json::to_string(event).unwrap(),
        }
    }

    #[test]
    fn events_round_trip_through_the_stored_form() {
        let event = Event::UnitAvailable {
            unit: UnitId::new("TAB-001").unwrap(),
        };
        let encoded = encode(std::slice::from_ref(&event)).unwrap();
        assert_eq!(encoded[0].kind, "unit_available");
        assert_eq!(
            decode(&stored(&event, EVENT_SCHEMA_VERSION)).unwrap(),
            event
        );
    }

    #[test]
    fn an_unknown_schema_version_or_a_mislabelled_row_is_refused() {
        let event = Event::UnitAvailable {
            unit: UnitId::new("TAB-001").unwrap(),
        };
        let error = decode(&stored(&event, 99)).unwrap_err();
        assert!(error.contains("schema version 99"), "{error}");
        let mut row = stored(&event, EVENT_SCHEMA_VERSION);
        row.kind = "unit_on_scene".into();
        assert!(
            decode(&row)
                .unwrap_err()
                .contains("row says `unit_on_scene`")
        );
        row.payload = "{".into();
        assert!(decode(&row).unwrap_err().contains("does not decode"));
    }
}
