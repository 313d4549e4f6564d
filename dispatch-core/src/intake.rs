//! What the telephony door hands to the core.
//!
//! The gateway (SIP or webhook) turns signalling into [`CallEvent`]s. It never decides
//! anything about dispatch; the core never sees SIP. A call is never refused for lack of a
//! location: the location is reported as [`ReportedLocation::Absent`] or
//! [`ReportedLocation::Unusable`] with the reason, and the operator asks the caller.

use std::fmt;

use maps::{GeoPoint, Meters, Timestamp};
use serde::{Deserialize, Serialize};

use crate::privacy::Sensitive;

/// Longest accepted call identifier, in bytes.
pub const MAX_CALL_ID_LEN: usize = 200;

/// Why an intake value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntakeError {
    /// Empty, too long, or with characters outside printable ASCII.
    #[error(
        "call id must be 1 to {MAX_CALL_ID_LEN} printable ASCII characters without spaces (got {len} bytes)"
    )]
    BadCallId {
        /// Length of what was given.
        len: usize,
    },
}

/// A call's identity, unique per call across channels: for SIP the dialog's `Call-ID` and
/// caller tag, for the webhook the provider's call id, each prefixed with its channel.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CallId(String);

impl CallId {
    /// Validates an identifier: 1–200 printable ASCII characters without spaces.
    pub fn new(id: impl Into<String>) -> Result<Self, IntakeError> {
        let id = id.into();
        let ok = !id.is_empty()
            && id.len() <= MAX_CALL_ID_LEN
            && id.bytes().all(|b| b.is_ascii_graphic());
        if ok {
            Ok(Self(id))
        } else {
            Err(IntakeError::BadCallId { len: id.len() })
        }
    }

    /// The identifier as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CallId {
    type Error = IntakeError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<CallId> for String {
    fn from(id: CallId) -> Self {
        id.0
    }
}

impl fmt::Debug for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CallId({})", self.0)
    }
}

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How the call reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum CallChannel {
    /// SIP INVITE to the gateway (NG911/NG112 style).
    Sip,
    /// Signed webhook from a cloud telephony provider.
    Webhook,
}

/// Who is calling. The network-asserted identity (`P-Asserted-Identity`) is preferred over
/// the identity the device claims (`From`); both are kept for the record.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallerIdentity {
    /// Network-asserted URI or number, when the carrier sent one.
    pub asserted: Option<Sensitive<String>>,
    /// URI or number the caller's device claims.
    pub claimed: Option<Sensitive<String>>,
    /// Display name, if any.
    pub display_name: Option<Sensitive<String>>,
    /// The caller withheld their identity (`anonymous@anonymous.invalid`, `Privacy: id`).
    pub anonymous: bool,
}

impl CallerIdentity {
    /// The identity to show and call back: asserted if present, else claimed.
    pub fn best(&self) -> Option<&Sensitive<String>> {
        self.asserted.as_ref().or(self.claimed.as_ref())
    }
}

/// A civic address as carried by PIDF-LO (RFC 5139), the fields Colombian addresses use.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CivicAddress {
    /// Country code (`CO`).
    pub country: Option<String>,
    /// Department (`A1`), e.g. "Cundinamarca" or "Bogotá D.C.".
    pub region: Option<String>,
    /// City or municipality (`A2`).
    pub city: Option<String>,
    /// District or localidad (`A3`).
    pub district: Option<String>,
    /// Road (`RD`, with prefix/suffix folded in), e.g. "Calle 45".
    pub road: Option<String>,
    /// House number (`HNO` + `HNS`), e.g. "13-20".
    pub house_number: Option<String>,
    /// Landmark (`LMK`), unit/floor/room (`LOC`, `FLR`, `UNIT`) and other detail.
    pub detail: Option<String>,
    /// Postal code (`PC`).
    pub postal_code: Option<String>,
}

/// The location the caller's device or network reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceLocation {
    /// Point (RFC 5491 Point) or circle centre (RFC 5491 Circle).
    pub position: Option<GeoPoint>,
    /// Circle radius: the horizontal uncertainty.
    pub uncertainty: Option<Meters>,
    /// Confidence that the caller is inside the shape, in percent (RFC 7459; 95 when the
    /// document does not say for a circle, as RFC 5491 implies 95 % for shapes).
    pub confidence_percent: Option<u8>,
    /// Civic address, when sent.
    pub civic: Option<CivicAddress>,
    /// How it was determined (`GPS`, `Cell`, `Wiremap`, `Manual`, …).
    pub method: Option<String>,
    /// When the location was determined, if the document says.
    pub determined_at: Option<Timestamp>,
}

/// The location that came with a call. A call is accepted whatever this says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, tag = "status", rename_all = "snake_case")]
pub enum ReportedLocation {
    /// No location was sent.
    Absent,
    /// A location was sent but cannot be used; `reason` says why, for the operator.
    Unusable {
        /// Why, in plain words (e.g. "PIDF-LO: latitude 95 out of range").
        reason: String,
    },
    /// A usable location (geodetic position, civic address or both).
    Reported(Box<DeviceLocation>),
}

/// Signalling turned into facts for the core.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "snake_case")]
pub enum CallEvent {
    /// A new call is waiting in the queue.
    Offered {
        /// The call.
        call: CallId,
        /// Door it came through.
        channel: CallChannel,
        /// Who is calling.
        caller: CallerIdentity,
        /// Where the device says it is.
        location: ReportedLocation,
        /// When the gateway received it.
        at: Timestamp,
    },
    /// The caller hung up (or the provider cancelled) before an operator took the call.
    Abandoned {
        /// The call.
        call: CallId,
        /// When.
        at: Timestamp,
    },
    /// The call was connected to the operator position that took it.
    Connected {
        /// The call.
        call: CallId,
        /// The operator position's SIP URI.
        position: String,
        /// When.
        at: Timestamp,
    },
    /// The operator position did not answer (busy, unreachable, no answer in time): the
    /// call is back in the queue, still ringing for the caller.
    ConnectFailed {
        /// The call.
        call: CallId,
        /// The position that was tried.
        position: String,
        /// Why, in plain words.
        reason: String,
        /// When.
        at: Timestamp,
    },
    /// The conversation ended (either side hung up after connection).
    Ended {
        /// The call.
        call: CallId,
        /// When.
        at: Timestamp,
    },
    /// Nobody took the call within the gateway's maximum time in queue: it was handed back
    /// to the carrier, redirected to `to` (a backup centre) or, when no overflow
    /// destination is configured (`to` is `None`), refused as temporarily unavailable so
    /// the carrier can route it elsewhere. The call leaves the queue unanswered.
    Overflowed {
        /// The call.
        call: CallId,
        /// Where the carrier was told to send it.
        to: Option<String>,
        /// When.
        at: Timestamp,
    },
}

impl CallEvent {
    /// The call the event is about.
    pub fn call(&self) -> &CallId {
        match self {
            Self::Offered { call, .. }
            | Self::Abandoned { call, .. }
            | Self::Connected { call, .. }
            | Self::ConnectFailed { call, .. }
            | Self::Ended { call, .. }
            | Self::Overflowed { call, .. } => call,
        }
    }

    /// When it happened.
    pub fn at(&self) -> Timestamp {
        match self {
            Self::Offered { at, .. }
            | Self::Abandoned { at, .. }
            | Self::Connected { at, .. }
            | Self::ConnectFailed { at, .. }
            | Self::Ended { at, .. }
            | Self::Overflowed { at, .. } => *at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_ids_are_validated() {
        assert!(CallId::new("sip:a84b4c76e66710@pc33.example.co;1928301774").is_ok());
        assert_eq!(CallId::new(""), Err(IntakeError::BadCallId { len: 0 }));
        assert!(CallId::new("has space").is_err());
        assert!(CallId::new("ñ").is_err());
        assert!(CallId::new("x".repeat(MAX_CALL_ID_LEN + 1)).is_err());
        assert!(serde_json::from_str::<CallId>(r#""""#).is_err());
    }

    #[test]
    fn asserted_identity_is_preferred_over_claimed() {
        let id = CallerIdentity {
            asserted: Some(Sensitive::new("tel:+5716001234".into())),
            claimed: Some(Sensitive::new("sip:spoof@example.com".into())),
            ..CallerIdentity::default()
        };
        assert_eq!(id.best().unwrap().expose(), "tel:+5716001234");
        let claimed_only = CallerIdentity {
            claimed: Some(Sensitive::new("sip:300@carrier.co".into())),
            ..CallerIdentity::default()
        };
        assert_eq!(claimed_only.best().unwrap().expose(), "sip:300@carrier.co");
        assert!(CallerIdentity::default().best().is_none());
    }

    #[test]
    fn caller_numbers_never_show_in_debug_output() {
        let event = CallEvent::Offered {
            call: CallId::new("sip:1").unwrap(),
            channel: CallChannel::Sip,
            caller: CallerIdentity {
                asserted: Some(Sensitive::new("tel:+573001234567".into())),
                ..CallerIdentity::default()
            },
            location: ReportedLocation::Absent,
            at: Timestamp::UNIX_EPOCH,
        };
        let debug = format!("{event:?}");
        assert!(!debug.contains("3001234567"), "{debug}");
    }

    #[test]
    fn events_serialise_with_their_kind() {
        let event = CallEvent::Abandoned {
            call: CallId::new("sip:1").unwrap(),
            at: Timestamp::parse_rfc3339("2026-11-23T12:00:00Z").unwrap(),
        };
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(
            json,
            r#"{"kind":"abandoned","call":"sip:1","at":"2026-11-23T12:00:00Z"}"#
        );
        assert_eq!(serde_json::from_str::<CallEvent>(&json).unwrap(), event);

        let overflowed = CallEvent::Overflowed {
            call: CallId::new("sip:2").unwrap(),
            to: Some("sip:sos@backup.example".into()),
            at: Timestamp::parse_rfc3339("2026-11-23T12:05:00Z").unwrap(),
        };
        let json = serde_json::to_string(&overflowed).unwrap();
        assert_eq!(
            json,
            r#"{"kind":"overflowed","call":"sip:2","to":"sip:sos@backup.example","at":"2026-11-23T12:05:00Z"}"#
        );
        assert_eq!(overflowed.call().as_str(), "sip:2");
        assert_eq!(
            serde_json::from_str::<CallEvent>(&json).unwrap(),
            overflowed
        );
    }
}
