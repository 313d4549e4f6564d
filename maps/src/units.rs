//! Distances, durations and speeds as types, with the arithmetic that makes sense.
//!
//! - `Meters ± Meters = Meters`, `Meters × f64 = Meters`
//! - `TravelTime + TravelTime = TravelTime`; subtraction is explicit
//!   ([`TravelTime::checked_sub`], [`TravelTime::saturating_sub`]) because a travel time is
//!   never negative
//! - `Meters / Speed = TravelTime` ([`Meters::at_speed`]), `Meters / TravelTime = Speed`
//!   ([`Speed::from_distance_and_time`]), `Speed × TravelTime = Meters`
//! - `Speed × f64 = Speed` (congestion factors)

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Mul, Sub};

use serde::{Deserialize, Deserializer, Serialize};

/// Why a quantity was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UnitError {
    /// NaN or infinite.
    #[error("{quantity} is not a finite number ({value})")]
    NotFinite {
        /// What was being built.
        quantity: &'static str,
        /// The value given.
        value: f64,
    },
    /// Negative where only zero or more makes sense.
    #[error("{quantity} cannot be negative ({value})")]
    Negative {
        /// What was being built.
        quantity: &'static str,
        /// The value given.
        value: f64,
    },
    /// A speed of zero would make every travel time infinite.
    #[error("speed must be greater than zero (got {0} km/h)")]
    NotPositiveSpeed(f64),
    /// Larger than the type can hold.
    #[error("{quantity} {value} is too large")]
    TooLarge {
        /// What was being built.
        quantity: &'static str,
        /// The value given.
        value: f64,
    },
}

fn finite(quantity: &'static str, value: f64) -> Result<f64, UnitError> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(UnitError::NotFinite { quantity, value })
    }
}

// ---------------------------------------------------------------------------------------
// Meters

/// A length in metres; always finite (may be negative when it is a difference).
#[derive(Clone, Copy, PartialEq, PartialOrd, Default, Serialize)]
#[serde(transparent)]
#[must_use]
pub struct Meters(f64);

impl Meters {
    /// Zero metres.
    pub const ZERO: Self = Self(0.0);

    /// A length computed by trusted code. Non-finite values are a bug: they panic in debug
    /// builds and become zero in release builds. Use [`Meters::try_new`] for input.
    pub fn new(value: f64) -> Self {
        debug_assert!(value.is_finite(), "Meters::new({value})");
        if value.is_finite() {
            Self(value)
        } else {
            Self(0.0)
        }
    }

    /// A length from untrusted input: finite and not negative.
    pub fn try_new(value: f64) -> Result<Self, UnitError> {
        let value = finite("distance", value)?;
        if value < 0.0 {
            return Err(UnitError::Negative {
                quantity: "distance",
                value,
            });
        }
        Ok(Self(value))
    }

    /// From kilometres (trusted).
    pub fn from_km(km: f64) -> Self {
        Self::new(km * 1000.0)
    }

    /// The length in metres.
    pub const fn get(self) -> f64 {
        self.0
    }

    /// The length in kilometres.
    pub fn km(self) -> f64 {
        self.0 / 1000.0
    }

    /// Time to cover this length at `speed`.
    pub fn at_speed(self, speed: Speed) -> TravelTime {
        TravelTime::from_secs_f64_saturating(self.0.max(0.0) / speed.meters_per_second())
    }

    /// The larger of two lengths.
    pub fn max(self, other: Self) -> Self {
        if other.0 > self.0 { other } else { self }
    }
}

impl fmt::Debug for Meters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}m", self.0)
    }
}

impl fmt::Display for Meters {
    /// `850 m` below a kilometre, `12.3 km` above.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.abs() < 1000.0 {
            write!(f, "{:.0} m", self.0)
        } else {
            write!(f, "{:.1} km", self.0 / 1000.0)
        }
    }
}

impl<'de> Deserialize<'de> for Meters {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::try_new(f64::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

impl Add for Meters {
    type Output = Self;
    fn add(self, rhs: Self) -> Self {
        Self::new(self.0 + rhs.0)
    }
}

impl AddAssign for Meters {
    fn add_assign(&mut self, rhs: Self) {
        *self = *self + rhs;
    }
}

impl Sub for Meters {
    type Output = Self;
    fn sub(self, rhs: Self) -> Self {
        Self::new(self.0 - rhs.0)
    }
}

impl Mul<f64> for Meters {
    type Output = Self;
    fn mul(self, rhs: f64) -> Self {
        Self::new(self.0 * rhs)
    }
}

impl Sum for Meters {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(Self::ZERO, Add::add)
    }
}

// ---------------------------------------------------------------------------------------
// TravelTime

/// `u64::MAX` as the nearest `f64` (2^64), for overflow checks.
const U64_MAX_F64: f64 = 18_446_744_073_709_551_616.0;

/// A non-negative duration in whole milliseconds: travel times, waits, intervals.
///
/// Serialised as an integer number of milliseconds; name the field accordingly at the edge
/// (`eta_ms`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
#[must_use]
pub struct TravelTime(u64);

impl TravelTime {
    /// No time at all.
    pub const ZERO: Self = Self(0);
    /// The largest representable duration; used as "unreachable" by saturating arithmetic.
    pub const MAX: Self = Self(u64::MAX);

    /// From whole milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        Self(ms)
    }

    /// From whole seconds.
    pub const fn from_secs(s: u64) -> Self {
        Self(s.saturating_mul(1000))
    }

    /// From whole minutes.
    pub const fn from_minutes(m: u64) -> Self {
        Self(m.saturating_mul(60_000))
    }

    /// From fractional seconds given as input: finite, not negative, rounded to the
    /// millisecond.
    pub fn try_from_secs_f64(secs: f64) -> Result<Self, UnitError> {
        let secs = finite("duration", secs)?;
        if secs < 0.0 {
            return Err(UnitError::Negative {
                quantity: "duration",
                value: secs,
            });
        }
        let ms = (secs * 1000.0).round();
        if ms >= U64_MAX_F64 {
            return Err(UnitError::TooLarge {
                quantity: "duration",
                value: secs,
            });
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Ok(Self(ms as u64))
    }

    /// From fractional seconds computed by trusted code; NaN and negatives become zero,
    /// overflow becomes [`TravelTime::MAX`].
    pub fn from_secs_f64_saturating(secs: f64) -> Self {
        if secs.is_nan() || secs <= 0.0 {
            return Self::ZERO;
        }
        let ms = (secs * 1000.0).round();
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        if ms >= U64_MAX_F64 {
            Self::MAX
        } else {
            Self(ms as u64)
        }
    }

    /// Whole milliseconds.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Fractional seconds.
    #[allow(clippy::cast_precision_loss)]
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    /// Fractional minutes.
    pub fn as_minutes_f64(self) -> f64 {
        self.as_secs_f64() / 60.0
    }

    /// `self - rhs`, or `None` if `rhs` is longer.
    pub const fn checked_sub(self, rhs: Self) -> Option<Self> {
        match self.0.checked_sub(rhs.0) {
            Some(v) => Some(Self(v)),
            None => None,
        }
    }

    /// `self - rhs`, or zero if `rhs` is longer.
    pub const fn saturating_sub(self, rhs: Self) -> Self {
        Self(self.0.saturating_sub(rhs.0))
    }

    /// Scales by a non-negative factor (e.g. a congestion factor), rounding to the
    /// millisecond; NaN or negative factors give zero.
    pub fn scale(self, factor: f64) -> Self {
        Self::from_secs_f64_saturating(self.as_secs_f64() * factor)
    }

    /// The duration as a standard library `Duration`.
    pub const fn to_std(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.0)
    }
}

impl From<std::time::Duration> for TravelTime {
    fn from(d: std::time::Duration) -> Self {
        Self(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

impl fmt::Debug for TravelTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

impl fmt::Display for TravelTime {
    /// `45 s`, `12 min 30 s`, `1 h 06 min`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total_s = (self.0 + 500) / 1000;
        let (h, m, s) = (total_s / 3600, (total_s / 60) % 60, total_s % 60);
        if h > 0 {
            write!(f, "{h} h {m:02} min")
        } else if m > 0 {
            write!(f, "{m} min {s:02} s")
        } else {
            write!(f, "{s} s")
        }
    }
}

impl Add for TravelTime {
    type Output = Self;
    /// Saturates at [`TravelTime::MAX`].
    fn add(self, rhs: Self) -> Self {
        Self(self.0.saturating_add(rhs.0))
    }
}

impl AddAssign for TravelTime {
    fn add_assign(&mut self, rhs: Self) {
        *self = *self + rhs;
    }
}

impl Sum for TravelTime {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(Self::ZERO, Add::add)
    }
}

// ---------------------------------------------------------------------------------------
// Speed

/// A speed, always finite and greater than zero. Stored in metres per second; shown and
/// configured in km/h.
#[derive(Clone, Copy, PartialEq, PartialOrd, Serialize)]
#[must_use]
pub struct Speed {
    #[serde(rename = "kmh", serialize_with = "serialize_kmh")]
    meters_per_second: f64,
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn serialize_kmh<S: serde::Serializer>(mps: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(mps * 3.6)
}

impl Speed {
    /// Colombia's urban speed limit (Ley 2251 de 2022): 50 km/h.
    pub const COLOMBIA_URBAN_LIMIT: Self = Self {
        meters_per_second: 50.0 / 3.6,
    };

    /// From kilometres per hour; finite and greater than zero.
    pub fn from_kmh(kmh: f64) -> Result<Self, UnitError> {
        let kmh = finite("speed", kmh)?;
        if kmh <= 0.0 {
            return Err(UnitError::NotPositiveSpeed(kmh));
        }
        Ok(Self {
            meters_per_second: kmh / 3.6,
        })
    }

    /// From metres per second; finite and greater than zero.
    pub fn from_mps(mps: f64) -> Result<Self, UnitError> {
        Self::from_kmh(mps * 3.6)
    }

    /// From miles per hour (OSM `maxspeed=30 mph`).
    pub fn from_mph(mph: f64) -> Result<Self, UnitError> {
        Self::from_kmh(mph * 1.609_344)
    }

    /// The speed at which `distance` is covered in `time`; `None` if the time is zero or the
    /// distance not positive.
    pub fn from_distance_and_time(distance: Meters, time: TravelTime) -> Option<Self> {
        if time == TravelTime::ZERO {
            return None;
        }
        Self::from_mps(distance.get() / time.as_secs_f64()).ok()
    }

    /// Kilometres per hour.
    pub fn kmh(self) -> f64 {
        self.meters_per_second * 3.6
    }

    /// Metres per second.
    pub const fn meters_per_second(self) -> f64 {
        self.meters_per_second
    }

    /// Scales by a factor (congestion or emergency-vehicle factors); a non-positive or
    /// non-finite factor is refused.
    pub fn scaled(self, factor: f64) -> Result<Self, UnitError> {
        Self::from_mps(self.meters_per_second * factor)
    }
}

impl fmt::Debug for Speed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}km/h", self.kmh())
    }
}

impl fmt::Display for Speed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.1} km/h", self.kmh())
    }
}

impl<'de> Deserialize<'de> for Speed {
    /// Reads `{"kmh": 34.0}`.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            kmh: f64,
        }
        let raw = Raw::deserialize(deserializer)?;
        Self::from_kmh(raw.kmh).map_err(serde::de::Error::custom)
    }
}

impl Mul<TravelTime> for Speed {
    type Output = Meters;
    fn mul(self, rhs: TravelTime) -> Meters {
        Meters::new(self.meters_per_second * rhs.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn five_km_at_50_kmh_takes_six_minutes() {
        let t = Meters::from_km(5.0).at_speed(Speed::COLOMBIA_URBAN_LIMIT);
        assert_eq!(t, TravelTime::from_minutes(6));
        assert_eq!(t.to_string(), "6 min 00 s");
    }

    #[test]
    fn speed_times_time_is_distance() {
        let d = Speed::from_kmh(36.0).unwrap() * TravelTime::from_secs(100);
        assert!((d.get() - 1000.0).abs() < 1e-9);
        let v =
            Speed::from_distance_and_time(Meters::new(1000.0), TravelTime::from_secs(100)).unwrap();
        assert!((v.kmh() - 36.0).abs() < 1e-9);
        assert!(Speed::from_distance_and_time(Meters::new(1.0), TravelTime::ZERO).is_none());
    }

    #[test]
    fn speeds_must_be_finite_and_positive() {
        assert_eq!(Speed::from_kmh(0.0), Err(UnitError::NotPositiveSpeed(0.0)));
        assert_eq!(
            Speed::from_kmh(-3.0),
            Err(UnitError::NotPositiveSpeed(-3.0))
        );
        assert!(matches!(
            Speed::from_kmh(f64::NAN),
            Err(UnitError::NotFinite { .. })
        ));
        assert!((Speed::from_mph(30.0).unwrap().kmh() - 48.28).abs() < 0.01);
        assert!(Speed::from_kmh(50.0).unwrap().scaled(0.0).is_err());
        assert!((Speed::from_kmh(50.0).unwrap().scaled(0.5).unwrap().kmh() - 25.0).abs() < 1e-9);
    }

    #[test]
    fn durations_from_input_are_validated() {
        assert_eq!(
            TravelTime::try_from_secs_f64(1.2345).unwrap(),
            TravelTime::from_millis(1235)
        );
        assert!(matches!(
            TravelTime::try_from_secs_f64(-1.0),
            Err(UnitError::Negative { .. })
        ));
        assert!(matches!(
            TravelTime::try_from_secs_f64(f64::INFINITY),
            Err(UnitError::NotFinite { .. })
        ));
        assert!(matches!(
            TravelTime::try_from_secs_f64(1e300),
            Err(UnitError::TooLarge { .. })
        ));
    }

    #[test]
    fn travel_time_subtraction_never_goes_negative() {
        let a = TravelTime::from_secs(10);
        let b = TravelTime::from_secs(15);
        assert_eq!(a.checked_sub(b), None);
        assert_eq!(a.saturating_sub(b), TravelTime::ZERO);
        assert_eq!(b.checked_sub(a), Some(TravelTime::from_secs(5)));
        assert_eq!(TravelTime::MAX + a, TravelTime::MAX);
    }

    #[test]
    fn displays_are_for_humans() {
        assert_eq!(TravelTime::from_secs(45).to_string(), "45 s");
        assert_eq!(TravelTime::from_secs(3960).to_string(), "1 h 06 min");
        assert_eq!(Meters::new(850.0).to_string(), "850 m");
        assert_eq!(Meters::new(12_340.0).to_string(), "12.3 km");
        assert_eq!(Speed::from_kmh(22.8).unwrap().to_string(), "22.8 km/h");
    }

    #[test]
    fn distances_from_input_are_validated() {
        assert!(matches!(
            Meters::try_new(-1.0),
            Err(UnitError::Negative { .. })
        ));
        assert!(serde_json::from_str::<Meters>("-5").is_err());
        assert_eq!(
            serde_json::from_str::<Meters>("5.5").unwrap(),
            Meters::new(5.5)
        );
    }

    #[test]
    fn speed_serialises_in_kmh() {
        let v = Speed::from_kmh(34.0).unwrap();
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(json, r#"{"kmh":34.0}"#);
        let back: Speed = serde_json::from_str(&json).unwrap();
        assert!((back.kmh() - 34.0).abs() < 1e-9);
        assert!(serde_json::from_str::<Speed>(r#"{"kmh":0}"#).is_err());
    }

    proptest! {
        #[test]
        fn faster_never_takes_longer(d in 0.0f64..100_000.0, v in 1.0f64..130.0, extra in 0.0f64..50.0) {
            let slow = Speed::from_kmh(v).unwrap();
            let fast = Speed::from_kmh(v + extra).unwrap();
            let dist = Meters::new(d);
            prop_assert!(dist.at_speed(fast) <= dist.at_speed(slow));
        }

        #[test]
        fn scaling_by_one_is_identity(ms in 0u64..10_000_000) {
            let t = TravelTime::from_millis(ms);
            prop_assert_eq!(t.scale(1.0), t);
        }
    }
}
