//! Instants in UTC, Bogotá local time, and the clock abstraction.
//!
//! Pure code never reads the clock: it receives a [`Timestamp`] (`now`) or a [`Clock`]
//! handle. The only implementation that reads the wall clock lives in `ops-console`.

use std::fmt;
use std::ops::{Add, Sub};
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, Ordering};

use jiff::tz::{Offset, TimeZone};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::units::TravelTime;

/// Bogotá's offset from UTC in hours. Colombia keeps UTC−5 all year (no daylight saving
/// since 1993), so local time needs no time-zone database.
pub const BOGOTA_UTC_OFFSET_HOURS: i8 = -5;

/// Why a time could not be read or built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// Not RFC 3339.
    #[error(
        "cannot read {text:?} as a date-time: {reason}; expected RFC 3339 with an offset, e.g. `2026-11-23T07:30:00-05:00` or `2026-11-23T12:30:00Z`"
    )]
    Syntax {
        /// The text given.
        text: String,
        /// What the parser said.
        reason: String,
    },
    /// Outside the years −9999 … 9999.
    #[error("{0} ms since 1970 is outside the supported range (years -9999 to 9999)")]
    OutOfRange(i64),
}

/// An instant in UTC with millisecond precision, stored as milliseconds since the Unix epoch.
///
/// Read and written as RFC 3339 at the edges (JSON, command line, files); stored as an
/// integer inside.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[must_use]
pub struct Timestamp(i64);

impl Timestamp {
    /// 1970-01-01T00:00:00Z.
    pub const UNIX_EPOCH: Self = Self(0);

    /// From milliseconds since the Unix epoch.
    pub fn from_millis(ms: i64) -> Result<Self, TimeError> {
        jiff::Timestamp::from_millisecond(ms)
            .map(|_| Self(ms))
            .map_err(|_| TimeError::OutOfRange(ms))
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// Reads RFC 3339 text with an explicit offset (`Z`, `-05:00`, …).
    pub fn parse_rfc3339(text: &str) -> Result<Self, TimeError> {
        let ts: jiff::Timestamp =
            text.trim()
                .parse()
                .map_err(|e: jiff::Error| TimeError::Syntax {
                    text: text.to_owned(),
                    reason: e.to_string(),
                })?;
        Ok(Self(ts.as_millisecond()))
    }

    /// RFC 3339 in UTC (`2026-11-23T12:30:00Z`, with fractional seconds only when needed).
    pub fn to_rfc3339(self) -> String {
        self.to_jiff().to_string()
    }

    /// RFC 3339 in Bogotá local time (`2026-11-23T07:30:00-05:00`), for people.
    pub fn to_bogota_rfc3339(self) -> String {
        self.to_jiff()
            .to_zoned(bogota_zone())
            .strftime("%Y-%m-%dT%H:%M:%S%:z")
            .to_string()
    }

    /// The local date and time in Bogotá.
    pub fn bogota_local(self) -> LocalTime {
        let civil = self.to_jiff().to_zoned(bogota_zone()).datetime();
        #[allow(clippy::cast_sign_loss)]
        LocalTime {
            year: civil.year(),
            weekday: Weekday::from_jiff(civil.weekday()),
            hour: civil.hour() as u8,
            minute: civil.minute() as u8,
        }
    }

    /// The time elapsed from `earlier` to `self`, or `None` if `earlier` is later.
    pub fn duration_since(self, earlier: Self) -> Option<TravelTime> {
        let diff = self.0.checked_sub(earlier.0)?;
        u64::try_from(diff).ok().map(TravelTime::from_millis)
    }

    /// Like [`Timestamp::duration_since`], zero when `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Self) -> TravelTime {
        self.duration_since(earlier).unwrap_or(TravelTime::ZERO)
    }

    fn to_jiff(self) -> jiff::Timestamp {
        // Every constructor checks the range, and arithmetic clamps to it.
        jiff::Timestamp::from_millisecond(self.0).unwrap_or(jiff::Timestamp::MAX)
    }

    fn clamped(ms: i64) -> Self {
        let min = jiff::Timestamp::MIN.as_millisecond();
        let max = jiff::Timestamp::MAX.as_millisecond();
        Self(ms.clamp(min, max))
    }
}

fn bogota_zone() -> TimeZone {
    TimeZone::fixed(Offset::constant(BOGOTA_UTC_OFFSET_HOURS))
}

impl Add<TravelTime> for Timestamp {
    type Output = Self;
    /// Saturates at the end of the supported range.
    fn add(self, rhs: TravelTime) -> Self {
        let ms = i64::try_from(rhs.as_millis()).unwrap_or(i64::MAX);
        Self::clamped(self.0.saturating_add(ms))
    }
}

impl Sub<TravelTime> for Timestamp {
    type Output = Self;
    /// Saturates at the start of the supported range.
    fn sub(self, rhs: TravelTime) -> Self {
        let ms = i64::try_from(rhs.as_millis()).unwrap_or(i64::MAX);
        Self::clamped(self.0.saturating_sub(ms))
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({})", self.to_rfc3339())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl FromStr for Timestamp {
    type Err = TimeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_rfc3339(s)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse_rfc3339(&text).map_err(serde::de::Error::custom)
    }
}

/// Day of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum Weekday {
    /// Lunes.
    Monday,
    /// Martes.
    Tuesday,
    /// Miércoles.
    Wednesday,
    /// Jueves.
    Thursday,
    /// Viernes.
    Friday,
    /// Sábado.
    Saturday,
    /// Domingo.
    Sunday,
}

impl Weekday {
    /// Saturday or Sunday. (Colombian public holidays are not known here; callers that care
    /// pass a holiday calendar of their own.)
    pub const fn is_weekend(self) -> bool {
        matches!(self, Self::Saturday | Self::Sunday)
    }

    fn from_jiff(w: jiff::civil::Weekday) -> Self {
        use jiff::civil::Weekday as J;
        match w {
            J::Monday => Self::Monday,
            J::Tuesday => Self::Tuesday,
            J::Wednesday => Self::Wednesday,
            J::Thursday => Self::Thursday,
            J::Friday => Self::Friday,
            J::Saturday => Self::Saturday,
            J::Sunday => Self::Sunday,
        }
    }
}

/// A local wall-clock reading in Bogotá, as traffic profiles need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LocalTime {
    /// Year (e.g. 2026).
    pub year: i16,
    /// Day of the week.
    pub weekday: Weekday,
    /// Hour, 0–23.
    pub hour: u8,
    /// Minute, 0–59.
    pub minute: u8,
}

impl LocalTime {
    /// Minutes since local midnight, 0–1439.
    pub fn minute_of_day(self) -> u16 {
        u16::from(self.hour) * 60 + u16::from(self.minute)
    }
}

/// A source of the current time, handed to code that needs "now" repeatedly (timers,
/// gateways). Pure functions take a [`Timestamp`] instead.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// A clock that only moves when told to: for tests and simulations.
#[derive(Debug)]
pub struct ManualClock {
    now_ms: AtomicI64,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: Timestamp) -> Self {
        Self {
            now_ms: AtomicI64::new(start.as_millis()),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: TravelTime) {
        let next = self.now() + by;
        self.now_ms.store(next.as_millis(), Ordering::SeqCst);
    }

    /// Sets the clock to an instant (possibly earlier, to test clock skew).
    pub fn set(&self, to: Timestamp) {
        self.now_ms.store(to.as_millis(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.now_ms.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc3339_round_trip_in_utc() {
        let t = Timestamp::parse_rfc3339("2026-11-23T07:30:00-05:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-23T12:30:00Z");
        assert_eq!(t.to_bogota_rfc3339(), "2026-11-23T07:30:00-05:00");
        let with_ms = Timestamp::from_millis(t.as_millis() + 250).unwrap();
        assert_eq!(with_ms.to_rfc3339(), "2026-11-23T12:30:00.25Z");
        assert_eq!(
            Timestamp::parse_rfc3339(&with_ms.to_rfc3339()).unwrap(),
            with_ms
        );
    }

    #[test]
    fn text_without_offset_or_garbage_is_refused_with_a_hint() {
        let err = Timestamp::parse_rfc3339("2026-11-23T07:30:00").unwrap_err();
        assert!(
            err.to_string().contains("expected RFC 3339 with an offset"),
            "{err}"
        );
        assert!(Timestamp::parse_rfc3339("mañana a las 7").is_err());
        assert!(Timestamp::parse_rfc3339("2026-13-01T00:00:00Z").is_err());
    }

    #[test]
    fn out_of_range_millis_are_refused() {
        assert_eq!(
            Timestamp::from_millis(i64::MAX),
            Err(TimeError::OutOfRange(i64::MAX))
        );
    }

    #[test]
    fn bogota_local_time_is_utc_minus_five() {
        // Monday 2026-11-23 12:30 UTC is 07:30 in Bogotá.
        let t = Timestamp::parse_rfc3339("2026-11-23T12:30:00Z").unwrap();
        let local = t.bogota_local();
        assert_eq!(local.weekday, Weekday::Monday);
        assert_eq!(local.year, 2026);
        assert_eq!((local.hour, local.minute), (7, 30));
        // New Year's Eve, 23:30 in Bogotá, is already next year in UTC.
        let nye = Timestamp::parse_rfc3339("2027-01-01T04:30:00Z").unwrap();
        assert_eq!(nye.bogota_local().year, 2026);
        assert_eq!(local.minute_of_day(), 450);
        // 02:00 UTC on Sunday is still Saturday evening in Bogotá.
        let late = Timestamp::parse_rfc3339("2026-11-22T02:00:00Z").unwrap();
        assert_eq!(late.bogota_local().weekday, Weekday::Saturday);
        assert!(late.bogota_local().weekday.is_weekend());
    }

    #[test]
    fn arithmetic_with_travel_times() {
        let t = Timestamp::parse_rfc3339("2026-11-23T12:30:00Z").unwrap();
        let later = t + TravelTime::from_minutes(31);
        assert_eq!(later.to_rfc3339(), "2026-11-23T13:01:00Z");
        assert_eq!(later.duration_since(t), Some(TravelTime::from_minutes(31)));
        assert_eq!(t.duration_since(later), None);
        assert_eq!(t.saturating_duration_since(later), TravelTime::ZERO);
        assert_eq!(later - TravelTime::from_minutes(31), t);
    }

    #[test]
    fn serde_uses_rfc3339_text() {
        let t = Timestamp::parse_rfc3339("2026-11-23T12:30:00Z").unwrap();
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            r#""2026-11-23T12:30:00Z""#
        );
        assert_eq!(
            serde_json::from_str::<Timestamp>(r#""2026-11-23T07:30:00-05:00""#).unwrap(),
            t
        );
        assert!(serde_json::from_str::<Timestamp>("1700000000000").is_err());
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start = Timestamp::parse_rfc3339("2026-11-23T12:30:00Z").unwrap();
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), start);
        clock.advance(TravelTime::from_secs(90));
        assert_eq!(
            clock.now().duration_since(start),
            Some(TravelTime::from_secs(90))
        );
        clock.set(start);
        assert_eq!(clock.now(), start);
    }

    proptest! {
        #[test]
        fn any_representable_millisecond_round_trips_through_text(ms in -10_000_000_000_000i64..10_000_000_000_000) {
            let t = Timestamp::from_millis(ms).unwrap();
            prop_assert_eq!(Timestamp::parse_rfc3339(&t.to_rfc3339()).unwrap(), t);
        }
    }
}
