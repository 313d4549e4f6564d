//! The travel-time model, "velocidad trancón": a free-flow speed per arc times a congestion
//! factor per road class, day type (weekday or weekend) and time-of-day bucket, read from a
//! small TOML profile. The Bogotá default is embedded ([`Profile::bogota`]); its file,
//! `routing/profiles/bogota.toml`, documents every value and its calibration.
//!
//! For an arc of class `c` and departure time `t` (read in Bogotá local time, UTC−5):
//!
//! ```text
//! free_flow  = maxspeed × maxspeed_factor      if the way has a speed limit
//!            = free_flow_kmh[c]                otherwise
//! congested  = free_flow × factor[c][day type of t][bucket of t]
//! emergency  = min(congested × emergency_factor, max(free_flow, congested))
//! ```
//!
//! Colombian public holidays (festivos) are treated as weekdays.

use std::collections::BTreeMap;

use maps::{Speed, Timestamp};
use serde::Deserialize;

use crate::class::RoadClass;
use crate::error::ProfileError;

/// The Bogotá profile file, embedded.
pub const BOGOTA_PROFILE_TOML: &str = include_str!("../profiles/bogota.toml");

/// Weekday or weekend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DayType {
    /// Monday to Friday.
    Weekday,
    /// Saturday and Sunday.
    Weekend,
}

/// Who drives: general traffic, or an emergency vehicle with lights and siren.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Vehicle {
    /// A car in traffic (catchments of emergency departments for patients).
    #[default]
    Car,
    /// An ambulance with lights and siren: faster than congested traffic by the profile's
    /// `emergency_factor`, never faster than free flow.
    Emergency,
}

/// When and who: the input of every query. A bare [`Timestamp`] converts to a car departure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Departure {
    /// Departure time.
    pub at: Timestamp,
    /// Vehicle.
    pub vehicle: Vehicle,
}

impl Departure {
    /// A car leaving at `at`.
    pub const fn car(at: Timestamp) -> Self {
        Self {
            at,
            vehicle: Vehicle::Car,
        }
    }

    /// An emergency vehicle leaving at `at`.
    pub const fn emergency(at: Timestamp) -> Self {
        Self {
            at,
            vehicle: Vehicle::Emergency,
        }
    }
}

impl From<Timestamp> for Departure {
    fn from(at: Timestamp) -> Self {
        Self::car(at)
    }
}

/// A validated congestion profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    name: String,
    bucket_minutes: u16,
    maxspeed_factor: f64,
    emergency_factor: f64,
    free_flow_kmh: [f64; RoadClass::COUNT],
    /// `factors[class][day type][bucket]`.
    factors: Vec<[Vec<f64>; 2]>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    format: u32,
    name: String,
    bucket_minutes: u16,
    maxspeed_factor: f64,
    emergency_factor: f64,
    free_flow_kmh: BTreeMap<String, f64>,
    congestion: Vec<RawCurve>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCurve {
    classes: Vec<String>,
    weekday: Vec<f64>,
    weekend: Vec<f64>,
}

fn in_range(
    what: String,
    value: f64,
    range: std::ops::RangeInclusive<f64>,
    expected: &'static str,
) -> Result<f64, ProfileError> {
    if value.is_finite() && range.contains(&value) && value > 0.0 {
        Ok(value)
    } else {
        Err(ProfileError::OutOfRange {
            what,
            value,
            expected,
        })
    }
}

impl Profile {
    /// The embedded Bogotá profile.
    pub fn bogota() -> Self {
        Self::from_toml(BOGOTA_PROFILE_TOML)
            .unwrap_or_else(|e| unreachable!("the embedded Bogotá profile is valid (tested): {e}"))
    }

    /// Reads and validates a profile.
    pub fn from_toml(text: &str) -> Result<Self, ProfileError> {
        let raw: RawProfile = toml::from_str(text)
            .map_err(|e| ProfileError::Syntax(e.to_string().trim().to_owned()))?;
        if raw.format != 1 {
            return Err(ProfileError::Syntax(format!(
                "`format = {}` is not supported; this build reads `format = 1`",
                raw.format
            )));
        }
        if ![15, 30, 60].contains(&raw.bucket_minutes) {
            return Err(ProfileError::OutOfRange {
                what: "bucket_minutes".to_owned(),
                value: f64::from(raw.bucket_minutes),
                expected: "must be 15, 30 or 60",
            });
        }
        let maxspeed_factor = in_range(
            "maxspeed_factor".to_owned(),
            raw.maxspeed_factor,
            0.0..=1.5,
            "must be greater than 0 and at most 1.5",
        )?;
        let emergency_factor = in_range(
            "emergency_factor".to_owned(),
            raw.emergency_factor,
            1.0..=3.0,
            "must be between 1 and 3",
        )?;
        let mut free_flow_kmh = [0.0; RoadClass::COUNT];
        for (name, &kmh) in &raw.free_flow_kmh {
            let class: RoadClass = name.parse()?;
            free_flow_kmh[class.index()] = in_range(
                format!("free_flow_kmh.{name}"),
                kmh,
                0.0..=200.0,
                "must be greater than 0 and at most 200 km/h",
            )?;
        }
        if let Some(missing) = RoadClass::ALL
            .iter()
            .find(|c| free_flow_kmh[c.index()] == 0.0)
        {
            return Err(ProfileError::Coverage(format!(
                "free_flow_kmh has no speed for `{missing}`; every road class needs one"
            )));
        }
        let buckets = 1440 / usize::from(raw.bucket_minutes);
        let mut factors: Vec<Option<[Vec<f64>; 2]>> = vec![None; RoadClass::COUNT];
        for (i, curve) in raw.congestion.iter().enumerate() {
            for (day, values) in [("weekday", &curve.weekday), ("weekend", &curve.weekend)] {
                if values.len() != buckets {
                    return Err(ProfileError::WrongLength {
                        what: format!("congestion[{i}].{day}"),
                        found: values.len(),
                        expected: buckets,
                    });
                }
                for (b, &f) in values.iter().enumerate() {
                    in_range(
                        format!("congestion[{i}].{day}[{b}]"),
                        f,
                        0.0..=2.0,
                        "congestion factors must be greater than 0 and at most 2",
                    )?;
                }
            }
            if curve.classes.is_empty() {
                return Err(ProfileError::Coverage(format!(
                    "congestion[{i}] lists no classes"
                )));
            }
            for name in &curve.classes {
                let class: RoadClass = name.parse()?;
                if factors[class.index()].is_some() {
                    return Err(ProfileError::Coverage(format!(
                        "`{class}` appears in more than one congestion curve"
                    )));
                }
                factors[class.index()] = Some([curve.weekday.clone(), curve.weekend.clone()]);
            }
        }
        let factors = RoadClass::ALL
            .iter()
            .map(|c| {
                factors[c.index()].clone().ok_or_else(|| {
                    ProfileError::Coverage(format!("no congestion curve lists `{c}`"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            name: raw.name,
            bucket_minutes: raw.bucket_minutes,
            maxspeed_factor,
            emergency_factor,
            free_flow_kmh,
            factors,
        })
    }

    /// The profile's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Length of a time bucket.
    pub fn bucket_minutes(&self) -> u16 {
        self.bucket_minutes
    }

    /// The emergency-vehicle factor.
    pub fn emergency_factor(&self) -> f64 {
        self.emergency_factor
    }

    /// Day type and bucket index of a departure (Bogotá local time).
    pub fn bucket(&self, at: Timestamp) -> (DayType, usize) {
        let local = at.bogota_local();
        let day = if local.weekday.is_weekend() {
            DayType::Weekend
        } else {
            DayType::Weekday
        };
        (
            day,
            usize::from(local.minute_of_day() / self.bucket_minutes),
        )
    }

    /// The bucket counted from the Unix epoch: two timestamps share it when they are in the
    /// same bucket of the same day.
    pub(crate) fn absolute_bucket(&self, at: Timestamp) -> i64 {
        at.as_millis()
            .div_euclid(i64::from(self.bucket_minutes) * 60_000)
    }

    /// The congestion factor for a class at a bucket.
    pub fn factor(&self, class: RoadClass, day: DayType, bucket: usize) -> f64 {
        let curves = &self.factors[class.index()];
        let curve = match day {
            DayType::Weekday => &curves[0],
            DayType::Weekend => &curves[1],
        };
        curve[bucket.min(curve.len() - 1)]
    }

    /// Free-flow speed in km/h for an arc's class and speed limit (0 = none).
    pub(crate) fn free_flow_kmh(&self, class: RoadClass, maxspeed: u8) -> f64 {
        if maxspeed > 0 {
            f64::from(maxspeed) * self.maxspeed_factor
        } else {
            self.free_flow_kmh[class.index()]
        }
    }

    /// The speed of an arc at a departure, in km/h.
    pub(crate) fn speed_kmh(&self, class: RoadClass, maxspeed: u8, departure: Departure) -> f64 {
        let (day, bucket) = self.bucket(departure.at);
        let free = self.free_flow_kmh(class, maxspeed);
        let congested = free * self.factor(class, day, bucket);
        self.for_vehicle(congested, free, departure.vehicle)
    }

    /// Applies the vehicle rule to a traffic speed.
    pub(crate) fn for_vehicle(&self, traffic_kmh: f64, free_kmh: f64, vehicle: Vehicle) -> f64 {
        match vehicle {
            Vehicle::Car => traffic_kmh,
            Vehicle::Emergency => {
                (traffic_kmh * self.emergency_factor).min(free_kmh.max(traffic_kmh))
            }
        }
    }

    /// The speed of an arc as a [`Speed`].
    pub fn speed(&self, class: RoadClass, maxspeed_kmh: Option<u8>, departure: Departure) -> Speed {
        let kmh = self.speed_kmh(class, maxspeed_kmh.unwrap_or(0), departure);
        Speed::from_kmh(kmh).unwrap_or(Speed::COLOMBIA_URBAN_LIMIT)
    }
}

/// Milliseconds to drive `length_cm` at `kmh`: at least 1, below [`crate::cch::INF`].
pub(crate) fn millis(length_cm: u32, kmh: f64) -> u32 {
    // cm / (km/h) = cm / (kmh / 3.6 m/s) = cm * 36 / kmh ms.
    let ms = (f64::from(length_cm) * 36.0 / kmh).round();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let ms = ms.clamp(1.0, f64::from(crate::cch::INF - 1)) as u32;
    ms
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replace(from: &str, to: &str) -> String {
        assert!(BOGOTA_PROFILE_TOML.contains(from), "{from}");
        BOGOTA_PROFILE_TOML.replacen(from, to, 1)
    }

    #[test]
    fn the_embedded_bogota_profile_is_valid() {
        let p = Profile::bogota();
        assert_eq!(p.bucket_minutes(), 60);
        assert!(p.name().contains("Bogotá"));
        let peak = Timestamp::parse_rfc3339("2026-11-23T07:30:00-05:00").unwrap();
        let night = Timestamp::parse_rfc3339("2026-11-23T03:00:00-05:00").unwrap();
        let car_peak = p
            .speed(RoadClass::Primary, None, Departure::car(peak))
            .kmh();
        let car_night = p
            .speed(RoadClass::Primary, None, Departure::car(night))
            .kmh();
        let ambulance_peak = p
            .speed(RoadClass::Primary, None, Departure::emergency(peak))
            .kmh();
        assert!(car_peak < car_night, "{car_peak} {car_night}");
        assert!(ambulance_peak > car_peak);
        assert!(ambulance_peak <= p.free_flow_kmh(RoadClass::Primary, 0) + 1e-9);
    }

    #[test]
    fn departure_buckets_use_bogota_local_time_and_day_type() {
        let p = Profile::bogota();
        let monday_0730 = Timestamp::parse_rfc3339("2026-11-23T12:30:00Z").unwrap();
        assert_eq!(p.bucket(monday_0730), (DayType::Weekday, 7));
        let saturday = Timestamp::parse_rfc3339("2026-11-21T23:59:00-05:00").unwrap();
        assert_eq!(p.bucket(saturday), (DayType::Weekend, 23));
    }

    #[test]
    fn unknown_road_classes_are_refused_with_a_hint() {
        let text = replace("residential = ", "residental = ");
        let err = Profile::from_toml(&text).unwrap_err();
        assert!(
            err.to_string().contains("did you mean \"residential\""),
            "{err}"
        );
        let text = replace("\"residential\"", "\"calle\"");
        let err = Profile::from_toml(&text).unwrap_err();
        assert!(matches!(err, ProfileError::UnknownRoadClass(_)), "{err}");
    }

    #[test]
    fn negative_zero_and_huge_factors_are_refused() {
        for bad in ["-0.5", "0.0", "7.0"] {
            let text =
                BOGOTA_PROFILE_TOML.replacen("weekday = [", &format!("weekday = [{bad}, "), 1);
            // One value too many now; fix the length by dropping the last one of that line.
            let text = drop_last_value_of_first_weekday(&text);
            let err = Profile::from_toml(&text).unwrap_err();
            assert!(
                matches!(err, ProfileError::OutOfRange { .. }),
                "{bad}: {err}"
            );
            assert!(
                err.to_string().contains("congestion[0].weekday[0]"),
                "{err}"
            );
        }
        let err = Profile::from_toml(&replace("emergency_factor = ", "emergency_factor = -"))
            .unwrap_err();
        assert!(err.to_string().contains("emergency_factor"), "{err}");
        let err = Profile::from_toml(&replace("primary = ", "primary = -")).unwrap_err();
        assert!(err.to_string().contains("free_flow_kmh.primary"), "{err}");
    }

    fn drop_last_value_of_first_weekday(text: &str) -> String {
        let start = text.find("weekday = [").unwrap();
        let end = start + text[start..].find(']').unwrap();
        let inner = &text[start..end];
        let cut = inner.rfind(',').unwrap();
        format!("{}{}", &text[..start + cut], &text[end..])
    }

    #[test]
    fn curves_of_the_wrong_length_and_missing_classes_are_refused() {
        let text = BOGOTA_PROFILE_TOML.replacen("weekday = [", "weekday = [0.9, ", 1);
        let err = Profile::from_toml(&text).unwrap_err();
        assert!(
            matches!(
                err,
                ProfileError::WrongLength {
                    found: 25,
                    expected: 24,
                    ..
                }
            ),
            "{err}"
        );
        let err = Profile::from_toml(&replace(", \"service\"", "")).unwrap_err();
        assert!(
            err.to_string()
                .contains("no congestion curve lists `service`"),
            "{err}"
        );
        let err = Profile::from_toml(&replace("\"residential\"", "\"residential\", \"primary\""))
            .unwrap_err();
        assert!(err.to_string().contains("more than one"), "{err}");
        let err =
            Profile::from_toml(&replace("bucket_minutes = 60", "bucket_minutes = 45")).unwrap_err();
        assert!(err.to_string().contains("15, 30 or 60"), "{err}");
        let err = Profile::from_toml("format = 1\nname = 'x'\n").unwrap_err();
        assert!(matches!(err, ProfileError::Syntax(_)), "{err}");
        let err = Profile::from_toml(&format!("{BOGOTA_PROFILE_TOML}\nextra = 1\n")).unwrap_err();
        assert!(err.to_string().contains("extra"), "{err}");
    }

    #[test]
    fn travel_time_of_a_kilometre_at_36_kmh_is_100_seconds() {
        assert_eq!(millis(100_000, 36.0), 100_000);
        assert_eq!(millis(0, 36.0), 1);
    }
}
