//! Between the engine and the store: encoding events, decoding them on replay, and
//! deriving the outbox messages that leave the process with the events that caused them.

use dispatch_core::ids::IncidentId;
use dispatch_core::model::{Assessment, CareNetwork};
use dispatch_core::rips::TransferRips;
use dispatch_core::{Dispatch, Effect, Event};
use serde_json::json;

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
///
/// Each payload is self-contained — its receiver has no other way into Regula:
/// - `transfer_record` (to the patient's EPS, or [`PUBLIC_NETWORK`]): the closed transfer
///   record, the RIPS document the CRUE can vouch for ([`TransferRips`]) and the RIPS fields
///   the provider must still supply;
/// - `referral` (to the care network): the referral, the assessment, the patients, the
///   number to call back and the confirmed location;
/// - `pre_alert` (to the destination facility): the transfer as it starts, the assessment
///   and the summary.
pub fn outbox_for(state: &Dispatch, events: &[Event], effects: &[Effect]) -> Vec<OutboxMessage> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::EmitTransferRecord { transfer } => {
                let destination = receiver(&CareNetwork::for_patient(transfer.patient.as_ref()));
                let rips = TransferRips::for_transfer(transfer);
                let payload = json!({
                    "kind": OutboxKind::TransferRecord.name(),
                    "transfer": transfer,
                    "rips": rips.rips,
                    "rips_to_complete": rips.to_complete,
                });
                Some(message(
                    OutboxKind::TransferRecord,
                    format!("transfer:{}", transfer.id),
                    destination,
                    &payload,
                ))
            }
            Effect::SendReferral { referral: record } => {
                let destination = receiver(&record.network);
                let incident = state.incident(record.incident);
                let assessment = assessment_of(state, events, record.incident);
                let callback = incident
                    .and_then(|i| i.call.as_ref())
                    .and_then(|c| state.call(c))
                    .and_then(|c| c.caller.best());
                let payload = json!({
                    "kind": OutboxKind::Referral.name(),
                    "referral": record,
                    "summary": incident.map(|i| &i.summary),
                    "assessment": assessment,
                    "patients": incident.map(|i| &i.patients),
                    "callback": callback,
                    "location": incident.and_then(|i| i.confirmed_location.as_ref()),
                });
                Some(message(
                    OutboxKind::Referral,
                    format!("referral:{}", record.id),
                    destination,
                    &payload,
                ))
            }
            Effect::PreAlertFacility { facility, incident } => {
                let transfer = events.iter().find_map(|e| match e {
                    Event::TransferStarted { transfer } if transfer.incident == *incident => {
                        Some(transfer)
                    }
                    _ => None,
                });
                let payload = json!({
                    "kind": OutboxKind::PreAlert.name(),
                    "facility": facility,
                    "incident": incident,
                    "summary": state.incident(*incident).map(|i| &i.summary),
                    "assessment": assessment_of(state, events, *incident),
                    "transfer": transfer,
                });
                Some(message(
                    OutboxKind::PreAlert,
                    format!("pre_alert:{incident}:{facility}"),
                    facility.to_string(),
                    &payload,
                ))
            }
            Effect::ConnectCall { .. }
            | Effect::NotifyCrew { .. }
            | Effect::Schedule(_)
            | Effect::ObserveTravel { .. }
            | Effect::AlertOperators { .. } => None,
        })
        .collect()
}

/// The feed that receives a network's messages: the EPS code, or [`PUBLIC_NETWORK`].
fn receiver(network: &CareNetwork) -> String {
    match network {
        CareNetwork::Eps { eps } => eps.to_string(),
        CareNetwork::Public => PUBLIC_NETWORK.to_owned(),
    }
}

/// An incident's assessment as it stands after `events` (the newest one wins).
fn assessment_of<'a>(
    state: &'a Dispatch,
    events: &'a [Event],
    incident: IncidentId,
) -> Option<&'a Assessment> {
    events
        .iter()
        .rev()
        .find_map(|e| match e {
            Event::Assessed {
                incident: i,
                assessment,
            } if *i == incident => Some(assessment),
            _ => None,
        })
        .or_else(|| state.incident(incident).and_then(|i| i.assessment.as_ref()))
}

fn message(
    kind: OutboxKind,
    idempotency_key: String,
    destination: String,
    payload: &serde_json::Value,
) -> OutboxMessage {
    OutboxMessage {
        idempotency_key,
        kind: kind.name(),
        destination,
        payload: payload.to_string(),
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
