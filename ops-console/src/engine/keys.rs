//! The idempotency keys the engine answers from memory.
//!
//! Every command key is stored once in the log (`commands` table, unique), and that is what
//! makes a retry safe. Memory only keeps the keys of the last [`RecentKeys::window`], so a
//! retry — seconds or minutes after the first try, in practice — is answered without a
//! database round trip, and memory stays bounded: GPS fixes alone are a command every few
//! seconds per ambulance, millions a day for the whole fleet. An older key is recognised by
//! the store: the engine asks it when the core refuses such a command, and the unique key
//! refuses a second append.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use maps::{Timestamp, TravelTime};

/// The keys of the commands applied within a window of time, oldest first.
#[derive(Debug)]
pub struct RecentKeys {
    window: TravelTime,
    keys: HashSet<Arc<str>>,
    order: VecDeque<(Timestamp, Arc<str>)>,
}

impl RecentKeys {
    /// Keys are remembered for `window` after the command was applied.
    pub fn new(window: TravelTime) -> Self {
        Self {
            window,
            keys: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    /// How long keys are remembered.
    pub fn window(&self) -> TravelTime {
        self.window
    }

    /// Whether a key is remembered.
    pub fn contains(&self, key: &str) -> bool {
        self.keys.contains(key)
    }

    /// How many keys are remembered.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Remembers a key applied at `at` (times never go backwards in a log) and forgets
    /// those that fell out of the window.
    pub fn insert(&mut self, key: &str, at: Timestamp) {
        // The events of one command share its key: replay inserts it once per event.
        if !self.keys.contains(key) {
            let key: Arc<str> = Arc::from(key);
            self.keys.insert(key.clone());
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

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_millis(1_800_000_000_000 + secs * 1000).unwrap()
    }

    #[test]
    fn keys_are_forgotten_once_out_of_the_window_and_not_before() {
        let mut keys = RecentKeys::new(TravelTime::from_secs(60));
        keys.insert("a", at(0));
        keys.insert("b", at(30));
        keys.insert("a", at(40)); // a retry does not renew or duplicate
        assert_eq!(keys.len(), 2);
        keys.insert("c", at(60));
        assert!(keys.contains("a") && keys.contains("b") && keys.contains("c"));
        keys.insert("d", at(61));
        assert!(!keys.contains("a"));
        assert!(keys.contains("b"));
        keys.forget_before(at(1_000));
        assert!(keys.is_empty());
        assert!(keys.order.is_empty());
    }
}
