//! The one place in Regula that reads the wall clock.
//!
//! Pure crates receive `now` as a parameter; shell code receives a [`maps::Clock`]. The
//! workspace's `clippy.toml` forbids `SystemTime::now` and `Instant::now` everywhere else.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use maps::{Clock, Timestamp};

/// The real clock: UTC from the operating system.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one sanctioned wall-clock read
    fn now(&self) -> Timestamp {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Timestamp::from_millis(ms).unwrap_or(Timestamp::UNIX_EPOCH)
    }
}

/// A monotonic stopwatch for measuring durations (request latency, benchmarks).
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch(Instant);

impl Stopwatch {
    /// Starts measuring.
    #[allow(clippy::disallowed_methods)] // monotonic time for measurements only
    pub fn start() -> Self {
        Self(Instant::now())
    }

    /// Time since [`Stopwatch::start`].
    pub fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
}

impl telephony_gateway::Monotonic for Stopwatch {
    fn elapsed(&self) -> Duration {
        Stopwatch::elapsed(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_is_after_2026() {
        let now = SystemClock.now();
        assert!(now > Timestamp::parse_rfc3339("2026-01-01T00:00:00Z").unwrap());
    }
}
