//! Identifiers. Each is its own type so that a unit id can never be passed where an
//! incident id is expected.
//!
//! Numbered ids ([`IncidentId`], [`TransferId`], [`AssignmentId`], [`ReferralId`]) are
//! assigned by the core from counters in its state, so replaying the event log reproduces
//! them exactly. Named ids ([`UnitId`], [`FacilityId`], [`OperatorId`], [`EpsCode`]) come from
//! registration data and are validated here.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} {value:?}: {rule}")]
pub struct IdError {
    /// Which kind of id.
    pub kind: &'static str,
    /// What was given (ids are not personal data).
    pub value: String,
    /// The rule it broke.
    pub rule: &'static str,
}

macro_rules! numbered_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(u64);

        impl $name {
            /// The id with this number (ids start at 1).
            pub const fn from_number(n: u64) -> Self {
                Self(n)
            }

            /// The number inside the id.
            pub const fn number(self) -> u64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "-{:06}"), self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let err = |rule| IdError { kind: $kind, value: s.to_owned(), rule };
                let digits = s
                    .strip_prefix(concat!($prefix, "-"))
                    .ok_or_else(|| err(concat!("expected the form ", $prefix, "-000123")))?;
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(err("the number must be decimal digits"));
                }
                let n: u64 = digits.parse().map_err(|_| err("number too large"))?;
                if n == 0 {
                    return Err(err("numbers start at 1"));
                }
                Ok(Self(n))
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> Self {
                id.to_string()
            }
        }
    };
}

numbered_id!(
    /// An incident: one emergency, possibly several patients and units (`INC-000123`).
    IncidentId,
    "INC",
    "incident id"
);
numbered_id!(
    /// A patient transfer, primary or secondary (`TRF-000045`).
    TransferId,
    "TRF",
    "transfer id"
);
numbered_id!(
    /// One offer of an incident to a unit; a declined or expired assignment is never
    /// revived, so a late "accept" for it is refused (`ASG-000789`).
    AssignmentId,
    "ASG",
    "assignment id"
);
numbered_id!(
    /// A referral to a non-ambulance modality (teleconsult, consult, home visit) (`REF-000012`).
    ReferralId,
    "REF",
    "referral id"
);

macro_rules! named_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $max:literal, $rule:literal, $valid:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates the id.
            pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
                let value: String = value.into();
                let valid: fn(&str) -> bool = $valid;
                if value.is_empty() || value.len() > $max || !valid(&value) {
                    return Err(IdError { kind: $kind, value, rule: $rule });
                }
                Ok(Self(value))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::new(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> Self {
                id.0
            }
        }
    };
}

fn code_chars(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

named_id!(
    /// An ambulance, by its fleet code (e.g. `TAM-052`, `SUR-TAB-17`): uppercase letters,
    /// digits, `-` and `_`, up to 32 characters.
    UnitId,
    "unit id",
    32,
    "1-32 characters: uppercase letters, digits, '-' or '_'",
    code_chars
);
named_id!(
    /// A health facility (emergency department), e.g. `IPS-0042` or a REPS site code.
    FacilityId,
    "facility id",
    32,
    "1-32 characters: uppercase letters, digits, '-' or '_'",
    code_chars
);
named_id!(
    /// An insurer (EPS) by its code as used in RIPS, e.g. `EPS037`.
    EpsCode,
    "EPS code",
    12,
    "1-12 characters: uppercase letters, digits, '-' or '_'",
    code_chars
);
named_id!(
    /// A CRUE operator or regulator (login name).
    OperatorId,
    "operator id",
    64,
    "1-64 characters: letters, digits, '.', '-', '_' or '@'",
    |s: &str| s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'@'))
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_ids_print_and_parse_with_their_prefix() {
        let id = IncidentId::from_number(123);
        assert_eq!(id.to_string(), "INC-000123");
        assert_eq!("INC-000123".parse::<IncidentId>().unwrap(), id);
        assert_eq!(
            "INC-1234567".parse::<IncidentId>().unwrap().number(),
            1_234_567
        );
        assert_eq!(
            serde_json::to_string(&TransferId::from_number(5)).unwrap(),
            r#""TRF-000005""#
        );
    }

    #[test]
    fn numbered_ids_reject_wrong_prefix_zero_and_garbage() {
        assert!("TRF-000123".parse::<IncidentId>().is_err());
        assert!("INC-0".parse::<IncidentId>().is_err());
        assert!("INC-".parse::<IncidentId>().is_err());
        assert!("INC-12a".parse::<IncidentId>().is_err());
        assert!("INC-99999999999999999999999".parse::<IncidentId>().is_err());
        let err = "123".parse::<IncidentId>().unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"invalid incident id "123": expected the form INC-000123"#
        );
    }

    #[test]
    fn named_ids_are_validated() {
        assert!(UnitId::new("TAM-052").is_ok());
        assert!(UnitId::new("tam-052").is_err());
        assert!(UnitId::new("").is_err());
        assert!(UnitId::new("X".repeat(33)).is_err());
        assert!(OperatorId::new("maria.gomez@crue").is_ok());
        assert!(OperatorId::new("maria gomez").is_err());
        assert!(serde_json::from_str::<EpsCode>(r#""EPS 037""#).is_err());
    }
}
