//! Idempotency keys: what the engine remembers of them, and the keys of its own commands.
//!
//! Every command key is stored once in the log (`commands` table, unique) with the name and
//! fingerprint of the command it carried, and that is what makes a retry safe — and a key
//! reused for another command recognisable. Memory only keeps the keys of the last
//! [`RecentKeys::window`], so a retry — seconds or minutes after the first try, in
//! practice — is answered without a database round trip, and memory stays bounded: GPS
//! fixes alone are a command every few seconds per ambulance, millions a day for the whole
//! fleet. An older key is recognised by the store: the engine asks it when the core refuses
//! such a command, and the unique key refuses a second append.
//!
//! The engine's own commands (call events from the telephony doors, timers, the region
//! pack's registration) have keys in a namespace of their own — they begin with
//! [`INTERNAL_PREFIX`], which clients may not use — and those derived from public ids (a
//! call's SIP Call-ID) are keyed with the log's secret, so nobody can claim one first.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use dispatch_core::Command;
use hmac::{Hmac, KeyInit, Mac};
use maps::{Timestamp, TravelTime};
use sha2::{Digest, Sha256};

/// Keys of the engine's own commands begin with this; a client's may not.
pub const INTERNAL_PREFIX: char = '#';

/// What a command key carried: enough to tell a retry from another command under the same
/// key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    /// The command's name.
    pub command: &'static str,
    /// SHA-256 of its canonical JSON.
    pub digest: [u8; 32],
}

impl Fingerprint {
    /// The fingerprint of a command: SHA-256 of its JSON with object keys sorted, so it
    /// does not depend on field order.
    pub fn of(command: &Command) -> Self {
        let value = serde_json::to_value(command).unwrap_or(serde_json::Value::Null);
        let mut canonical = Vec::with_capacity(256);
        write_canonical(&value, &mut canonical);
        Self {
            command: super::command_name(command),
            digest: Sha256::digest(&canonical).into(),
        }
    }

    /// The digest as stored (lower-case hex).
    pub fn hex(&self) -> String {
        hex::encode(self.digest)
    }

    /// Whether a stored fingerprint (hex) is this one.
    pub fn matches_hex(&self, stored: &str) -> bool {
        hex::decode(stored).is_ok_and(|d| d == self.digest)
    }
}

fn write_canonical(value: &serde_json::Value, out: &mut Vec<u8>) {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(serde_json::Value::from(key.as_str()).to_string().as_bytes());
                out.push(b':');
                write_canonical(value, out);
            }
            out.push(b'}');
        }
        serde_json::Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        other => out.extend_from_slice(other.to_string().as_bytes()),
    }
}

/// The keys of the commands applied within a window of time, oldest first, with what each
/// carried (unknown for keys restored by replaying the log: the store knows).
#[derive(Debug)]
pub struct RecentKeys {
    window: TravelTime,
    keys: HashMap<Arc<str>, Option<Fingerprint>>,
    order: VecDeque<(Timestamp, Arc<str>)>,
}

impl RecentKeys {
    /// Keys are remembered for `window` after the command was applied.
    pub fn new(window: TravelTime) -> Self {
        Self {
            window,
            keys: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// How long keys are remembered.
    pub fn window(&self) -> TravelTime {
        self.window
    }

    /// Whether a key is remembered: `Some(None)` when remembered without its fingerprint.
    pub fn get(&self, key: &str) -> Option<Option<Fingerprint>> {
        self.keys.get(key).copied()
    }

    /// Whether a key is remembered.
    pub fn contains(&self, key: &str) -> bool {
        self.keys.contains_key(key)
    }

    /// How many keys are remembered.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Remembers a key applied at `at` (times never go backwards in a log) with what it
    /// carried, if known, and forgets those that fell out of the window.
    pub fn insert(&mut self, key: &str, fingerprint: Option<Fingerprint>, at: Timestamp) {
        // The events of one command share its key: replay inserts it once per event.
        if !self.keys.contains_key(key) {
            let key: Arc<str> = Arc::from(key);
            self.keys.insert(key.clone(), fingerprint);
            self.order.push_back((at, key));
        }
        self.forget_before(at);
    }

    /// Forgets the keys applied more than a window before `now`.
    pub fn forget_before(&mut self, now: Timestamp) {
        while let Some((at, _)) = self.order.front() {
            if now.saturating_duration_since(*at) <= self.window {
                break;
            }
            if let Some((_, key)) = self.order.pop_front() {
                self.keys.remove(&key);
            }
        }
    }
}

/// Makes the keys of the engine's own commands: in their own namespace, and keyed with the
/// log's secret where they derive from a public id.
#[derive(Clone)]
pub struct InternalKeys {
    secret: Arc<[u8]>,
}

impl std::fmt::Debug for InternalKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InternalKeys(REDACTED)")
    }
}

impl InternalKeys {
    /// Keys made with `secret` (the store's `log_meta.log_secret`).
    pub fn new(secret: Arc<[u8]>) -> Self {
        Self { secret }
    }

    /// `#<kind>:<tag>`, where the tag is a keyed hash of `id` (128 bits, hex).
    pub fn keyed(&self, kind: &str, id: &str) -> super::CommandKey {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.secret)
            .unwrap_or_else(|e| panic!("HMAC takes keys of any length: {e}"));
        mac.update(kind.as_bytes());
        mac.update(b"\0");
        mac.update(id.as_bytes());
        let tag = mac.finalize().into_bytes();
        super::CommandKey::internal(format!("{kind}:{}", hex::encode(&tag[..16])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_millis(1_800_000_000_000 + secs * 1000).unwrap()
    }

    #[test]
    fn keys_are_forgotten_once_out_of_the_window_and_not_before() {
        let mut keys = RecentKeys::new(TravelTime::from_secs(60));
        keys.insert("a", None, at(0));
        keys.insert("b", None, at(30));
        keys.insert("a", None, at(40)); // a retry does not renew or duplicate
        assert_eq!(keys.len(), 2);
        keys.insert("c", None, at(60));
        assert!(keys.contains("a") && keys.contains("b") && keys.contains("c"));
        keys.insert("d", None, at(61));
        assert!(!keys.contains("a"));
        assert!(keys.contains("b"));
        keys.forget_before(at(1_000));
        assert!(keys.is_empty());
        assert!(keys.order.is_empty());
    }

    #[test]
    fn fingerprints_tell_commands_apart_whatever_the_field_order() {
        let a: Command = serde_json::from_str(
            r#"{"command": "set_out_of_service", "unit": "TAB-001", "reason": {"kind": "mechanical", "detail": "llanta"}}"#,
        )
        .unwrap();
        let b: Command = serde_json::from_str(
            r#"{"reason": {"detail": "llanta", "kind": "mechanical"}, "unit": "TAB-001", "command": "set_out_of_service"}"#,
        )
        .unwrap();
        let c: Command = serde_json::from_str(
            r#"{"command": "set_out_of_service", "unit": "TAB-002", "reason": {"kind": "mechanical", "detail": "llanta"}}"#,
        )
        .unwrap();
        assert_eq!(Fingerprint::of(&a), Fingerprint::of(&b));
        assert_ne!(Fingerprint::of(&a), Fingerprint::of(&c));
        let stored = Fingerprint::of(&a).hex();
        assert!(Fingerprint::of(&b).matches_hex(&stored));
        assert!(!Fingerprint::of(&c).matches_hex(&stored));
    }

    #[test]
    fn internal_keys_are_in_their_own_namespace_and_depend_on_the_secret() {
        let one = InternalKeys::new(Arc::from(&b"first secret"[..]));
        let two = InternalKeys::new(Arc::from(&b"other secret"[..]));
        let key = one.keyed("call:abandoned", "a84b4c76e66710@pc33.example.co");
        assert!(
            key.as_str().starts_with("#call:abandoned:"),
            "{}",
            key.as_str()
        );
        assert_eq!(
            key,
            one.keyed("call:abandoned", "a84b4c76e66710@pc33.example.co")
        );
        assert_ne!(
            key,
            two.keyed("call:abandoned", "a84b4c76e66710@pc33.example.co")
        );
        assert_ne!(
            key,
            one.keyed("call:ended", "a84b4c76e66710@pc33.example.co")
        );
        assert!(crate::engine::CommandKey::new(key.as_str()).is_err());
    }
}
