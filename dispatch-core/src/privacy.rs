//! Personal data and secrets never reach logs or error messages.
//!
//! Health data is sensitive under Ley 1581 de 2012 and clinical records are confidential
//! (Resolución 1995 de 1999). Values wrapped in [`Sensitive`] print as `REDACTED` through
//! `Debug` and `Display`; code that needs the value calls [`Sensitive::expose`], which makes
//! every use visible in review.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A value that must not appear in logs: a phone number, a document id, a name, a secret.
///
/// Serialisation passes the value through (it is stored and shown to authorised users);
/// formatting redacts it.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sensitive<T>(T);

impl<T> Sensitive<T> {
    /// Wraps a value.
    pub const fn new(value: T) -> Self {
        Self(value)
    }

    /// The value itself; every call site is a place where personal data is used.
    pub const fn expose(&self) -> &T {
        &self.0
    }

    /// Unwraps the value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> From<T> for Sensitive<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

impl<T> fmt::Debug for Sensitive<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("REDACTED")
    }
}

impl<T> fmt::Display for Sensitive<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("REDACTED")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_never_shows_the_value() {
        let number = Sensitive::new("+573001234567".to_owned());
        assert_eq!(format!("{number:?}"), "REDACTED");
        assert_eq!(format!("{number}"), "REDACTED");
        assert_eq!(number.expose(), "+573001234567");
    }

    #[test]
    fn serialisation_passes_the_value_through() {
        let number = Sensitive::new("+573001234567".to_owned());
        assert_eq!(
            serde_json::to_string(&number).unwrap(),
            r#""+573001234567""#
        );
    }
}
