//! Validated WGS84 points and bounding boxes.

use std::fmt;
use std::str::FromStr;

use geo::{Bearing, Distance, Haversine};
use serde::{Deserialize, Deserializer, Serialize};

use crate::units::Meters;

/// Why a coordinate pair was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GeoError {
    /// NaN or infinite.
    #[error("{axis} is not a finite number ({value})")]
    NotFinite {
        /// `"longitude"` or `"latitude"`.
        axis: &'static str,
        /// The value given.
        value: f64,
    },
    /// Longitude outside [−180, 180].
    #[error("longitude {0} is outside [-180, 180]")]
    LongitudeOutOfRange(f64),
    /// Latitude outside [−90, 90].
    #[error("latitude {0} is outside [-90, 90]")]
    LatitudeOutOfRange(f64),
    /// Valid WGS84, but outside the region where it was expected; swapping the two values
    /// puts it inside, so the caller most likely wrote `lat, lon` instead of `lon, lat`.
    #[error(
        "({lon}, {lat}) is outside {region}, but ({lat}, {lon}) is inside: longitude and latitude look swapped (expected lon,lat order)"
    )]
    SwappedLonLat {
        /// Longitude as given.
        lon: f64,
        /// Latitude as given.
        lat: f64,
        /// Name of the region.
        region: &'static str,
    },
    /// Valid WGS84, but outside the region where it was expected.
    #[error("({lon}, {lat}) is outside {region} ({bbox})")]
    OutsideRegion {
        /// Longitude as given.
        lon: f64,
        /// Latitude as given.
        lat: f64,
        /// Name of the region.
        region: &'static str,
        /// The region's box, for the message.
        bbox: String,
    },
    /// Text that is not `lon,lat`.
    #[error(
        "cannot read {0:?} as a point: expected `lon,lat` in decimal degrees, e.g. `-74.0817,4.6097`"
    )]
    Syntax(String),
}

/// A validated WGS84 position: finite longitude in [−180, 180] and latitude in [−90, 90].
///
/// The order is always longitude first, as in GeoJSON. Serialised as
/// `{"lon": …, "lat": …}`.
#[derive(Clone, Copy, PartialEq, Serialize)]
pub struct GeoPoint {
    lon: f64,
    lat: f64,
}

impl GeoPoint {
    /// Validates and builds a point from longitude and latitude in decimal degrees.
    pub fn new(lon: f64, lat: f64) -> Result<Self, GeoError> {
        if !lon.is_finite() {
            return Err(GeoError::NotFinite {
                axis: "longitude",
                value: lon,
            });
        }
        if !lat.is_finite() {
            return Err(GeoError::NotFinite {
                axis: "latitude",
                value: lat,
            });
        }
        if !(-180.0..=180.0).contains(&lon) {
            return Err(GeoError::LongitudeOutOfRange(lon));
        }
        if !(-90.0..=90.0).contains(&lat) {
            return Err(GeoError::LatitudeOutOfRange(lat));
        }
        Ok(Self { lon, lat })
    }

    /// Validates a point that must lie inside `region`; reports swapped coordinates
    /// specifically, since `lat, lon` order is the most common mistake in real data.
    pub fn new_in(lon: f64, lat: f64, region: &BoundingBox) -> Result<Self, GeoError> {
        let point = Self::new(lon, lat);
        if let Ok(p) = point
            && region.contains(p)
        {
            return Ok(p);
        }
        if let Ok(swapped) = Self::new(lat, lon)
            && region.contains(swapped)
        {
            return Err(GeoError::SwappedLonLat {
                lon,
                lat,
                region: region.name,
            });
        }
        let p = point?;
        Err(GeoError::OutsideRegion {
            lon: p.lon,
            lat: p.lat,
            region: region.name,
            bbox: region.to_string(),
        })
    }

    /// Longitude in decimal degrees.
    pub const fn lon(self) -> f64 {
        self.lon
    }

    /// Latitude in decimal degrees.
    pub const fn lat(self) -> f64 {
        self.lat
    }

    /// Great-circle (haversine) distance on the mean Earth radius.
    pub fn distance_to(self, other: Self) -> Meters {
        Meters::new(Haversine.distance(self.to_geo(), other.to_geo()))
    }

    /// Initial bearing from `self` towards `other`, degrees clockwise from north in [0, 360).
    pub fn bearing_to(self, other: Self) -> f64 {
        Haversine
            .bearing(self.to_geo(), other.to_geo())
            .rem_euclid(360.0)
    }

    /// The point as a `geo_types` point (x = longitude, y = latitude).
    pub fn to_geo(self) -> geo_types::Point<f64> {
        geo_types::Point::new(self.lon, self.lat)
    }

    /// Validates a `geo_types` coordinate (x = longitude, y = latitude).
    pub fn from_coord(coord: geo_types::Coord<f64>) -> Result<Self, GeoError> {
        Self::new(coord.x, coord.y)
    }
}

impl fmt::Debug for GeoPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GeoPoint({}, {})", self.lon, self.lat)
    }
}

impl fmt::Display for GeoPoint {
    /// `lon,lat` with 6 decimals (about 0.1 m), the same form [`FromStr`] reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.6},{:.6}", self.lon, self.lat)
    }
}

impl FromStr for GeoPoint {
    type Err = GeoError;

    /// Reads `lon,lat` (spaces allowed around the comma).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (lon, lat) = s
            .split_once(',')
            .ok_or_else(|| GeoError::Syntax(s.to_owned()))?;
        let lon: f64 = lon
            .trim()
            .parse()
            .map_err(|_| GeoError::Syntax(s.to_owned()))?;
        let lat: f64 = lat
            .trim()
            .parse()
            .map_err(|_| GeoError::Syntax(s.to_owned()))?;
        Self::new(lon, lat)
    }
}

impl<'de> Deserialize<'de> for GeoPoint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            lon: f64,
            lat: f64,
        }
        let raw = Raw::deserialize(deserializer)?;
        Self::new(raw.lon, raw.lat).map_err(serde::de::Error::custom)
    }
}

/// An axis-aligned longitude/latitude box with a name, used to check that a point is where
/// it is expected to be.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoundingBox {
    /// Human name used in error messages.
    pub name: &'static str,
    /// Western edge (minimum longitude).
    pub min_lon: f64,
    /// Southern edge (minimum latitude).
    pub min_lat: f64,
    /// Eastern edge (maximum longitude).
    pub max_lon: f64,
    /// Northern edge (maximum latitude).
    pub max_lat: f64,
}

impl BoundingBox {
    /// Bogotá D.C. including rural Sumapaz, with a margin of about 5 km around the 20
    /// localidades (their union spans lon −74.4498 … −73.9865, lat 3.7310 … 4.8368).
    pub const BOGOTA: Self = Self {
        name: "Bogotá D.C.",
        min_lon: -74.50,
        min_lat: 3.68,
        max_lon: -73.94,
        max_lat: 4.89,
    };

    /// Whether the point lies inside the box (edges included).
    pub fn contains(&self, p: GeoPoint) -> bool {
        (self.min_lon..=self.max_lon).contains(&p.lon())
            && (self.min_lat..=self.max_lat).contains(&p.lat())
    }
}

impl fmt::Display for BoundingBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "lon {} … {}, lat {} … {}",
            self.min_lon, self.max_lon, self.min_lat, self.max_lat
        )
    }
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // coordinates are stored unchanged, so exact equality is the claim
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn valid_point_keeps_lon_and_lat() {
        let p = GeoPoint::new(-74.0817, 4.6097).unwrap();
        assert_eq!(p.lon(), -74.0817);
        assert_eq!(p.lat(), 4.6097);
    }

    #[test]
    fn nan_and_infinite_coordinates_are_refused() {
        assert!(matches!(
            GeoPoint::new(f64::NAN, 4.6),
            Err(GeoError::NotFinite {
                axis: "longitude",
                ..
            })
        ));
        assert!(matches!(
            GeoPoint::new(-74.0, f64::INFINITY),
            Err(GeoError::NotFinite {
                axis: "latitude",
                ..
            })
        ));
    }

    #[test]
    fn out_of_range_coordinates_are_refused() {
        assert_eq!(
            GeoPoint::new(-180.5, 4.0),
            Err(GeoError::LongitudeOutOfRange(-180.5))
        );
        assert_eq!(
            GeoPoint::new(-74.0, 90.01),
            Err(GeoError::LatitudeOutOfRange(90.01))
        );
        // -74 is a fine longitude but not a latitude beyond -90 ... it *is* a valid latitude,
        // which is why the regional check exists (next test).
        assert!(GeoPoint::new(4.6, -74.0).is_ok());
    }

    #[test]
    fn swapped_lat_lon_in_bogota_is_reported_as_swapped() {
        let err = GeoPoint::new_in(4.6097, -74.0817, &BoundingBox::BOGOTA).unwrap_err();
        assert!(matches!(err, GeoError::SwappedLonLat { .. }), "{err:?}");
        assert!(err.to_string().contains("swapped"), "{err}");
    }

    #[test]
    fn point_far_from_bogota_is_outside_the_region() {
        let porto = GeoPoint::new_in(-8.61, 41.15, &BoundingBox::BOGOTA).unwrap_err();
        assert!(matches!(porto, GeoError::OutsideRegion { .. }), "{porto:?}");
        assert!(GeoPoint::new_in(-74.0817, 4.6097, &BoundingBox::BOGOTA).is_ok());
        // Sumapaz, the rural south of the district, is still Bogotá.
        assert!(GeoPoint::new_in(-74.30, 3.75, &BoundingBox::BOGOTA).is_ok());
    }

    #[test]
    fn region_check_still_reports_invalid_numbers_first() {
        assert!(matches!(
            GeoPoint::new_in(f64::NAN, 4.6, &BoundingBox::BOGOTA),
            Err(GeoError::NotFinite { .. })
        ));
    }

    #[test]
    fn distance_between_plaza_de_bolivar_and_el_dorado_is_about_13_km() {
        let plaza = GeoPoint::new(-74.0760, 4.5981).unwrap();
        let airport = GeoPoint::new(-74.1469, 4.7016).unwrap();
        let d = plaza.distance_to(airport).get();
        assert!((13_500.0..14_000.0).contains(&d), "{d}");
    }

    #[test]
    fn one_degree_of_latitude_is_about_111_km() {
        let a = GeoPoint::new(-74.0, 4.0).unwrap();
        let b = GeoPoint::new(-74.0, 5.0).unwrap();
        assert!((a.distance_to(b).get() - 111_195.0).abs() < 50.0);
        assert!((a.bearing_to(b) - 0.0).abs() < 1e-6);
        assert!((b.bearing_to(a) - 180.0).abs() < 1e-6);
    }

    #[test]
    fn parses_lon_comma_lat_and_reports_bad_text() {
        let p: GeoPoint = " -74.08 , 4.60 ".parse().unwrap();
        assert_eq!((p.lon(), p.lat()), (-74.08, 4.60));
        assert!(matches!(
            "4.6".parse::<GeoPoint>(),
            Err(GeoError::Syntax(_))
        ));
        assert!(matches!(
            "a,b".parse::<GeoPoint>(),
            Err(GeoError::Syntax(_))
        ));
        assert!(matches!(
            "200,4".parse::<GeoPoint>(),
            Err(GeoError::LongitudeOutOfRange(_))
        ));
    }

    #[test]
    fn serde_round_trip_validates_on_the_way_in() {
        let p = GeoPoint::new(-74.1, 4.7).unwrap();
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, r#"{"lon":-74.1,"lat":4.7}"#);
        assert_eq!(serde_json::from_str::<GeoPoint>(&json).unwrap(), p);
        let err = serde_json::from_str::<GeoPoint>(r#"{"lon":-74.1,"lat":94.7}"#).unwrap_err();
        assert!(err.to_string().contains("latitude 94.7"), "{err}");
        assert!(serde_json::from_str::<GeoPoint>(r#"{"lon":-74.1,"lat":4.7,"x":1}"#).is_err());
    }

    proptest! {
        #[test]
        fn display_then_parse_stays_within_a_decimetre(lon in -180.0f64..=180.0, lat in -90.0f64..=90.0) {
            let p = GeoPoint::new(lon, lat).unwrap();
            let q: GeoPoint = p.to_string().parse().unwrap();
            prop_assert!(p.distance_to(q).get() < 0.2);
        }

        #[test]
        fn distance_is_symmetric_and_non_negative(
            a in (-180.0f64..=180.0, -90.0f64..=90.0),
            b in (-180.0f64..=180.0, -90.0f64..=90.0),
        ) {
            let p = GeoPoint::new(a.0, a.1).unwrap();
            let q = GeoPoint::new(b.0, b.1).unwrap();
            let d1 = p.distance_to(q).get();
            let d2 = q.distance_to(p).get();
            prop_assert!(d1 >= 0.0);
            prop_assert!((d1 - d2).abs() < 1e-6);
        }
    }
}
