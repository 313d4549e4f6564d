//! GeoJSON (RFC 7946) for points, polylines and areas, through the `geojson` crate.
//!
//! Everything read is validated: every position must be a valid WGS84 [`GeoPoint`], lines
//! need two positions, polygon rings must be closed with at least four positions. Maps built
//! from these types carry OpenStreetMap data and must credit "© OpenStreetMap
//! contributors" ([`OSM_ATTRIBUTION`]).

use geo::GeodesicArea;
use geojson::{Feature, GeoJson, Geometry, GeometryValue, JsonObject, Position};

use crate::point::{GeoError, GeoPoint};

/// The attribution every map or export built on OpenStreetMap data must show (ODbL).
pub const OSM_ATTRIBUTION: &str = "© OpenStreetMap contributors";

/// Why GeoJSON could not be read into our types.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GeoJsonError {
    /// Not GeoJSON at all.
    #[error("not valid GeoJSON: {0}")]
    Syntax(String),
    /// GeoJSON, but another geometry type than expected.
    #[error("expected a GeoJSON {expected} geometry, found {found}")]
    WrongType {
        /// What was expected.
        expected: &'static str,
        /// What was found.
        found: String,
    },
    /// A position that is not `[lon, lat]` or `[lon, lat, alt]`.
    #[error("position {index} has {len} numbers; expected [longitude, latitude]")]
    BadPosition {
        /// Index of the position in its list.
        index: usize,
        /// How many numbers it had.
        len: usize,
    },
    /// A position that is not a valid WGS84 point.
    #[error("position {index}: {source}")]
    InvalidPoint {
        /// Index of the position in its list.
        index: usize,
        /// Why.
        source: GeoError,
    },
    /// A line with fewer than two positions.
    #[error("a line needs at least 2 positions, found {0}")]
    LineTooShort(usize),
    /// A polygon ring that is not closed or has fewer than four positions.
    #[error("polygon ring {ring} is invalid: {reason}")]
    BadRing {
        /// Ring index (0 = exterior of the first polygon, counting on through holes).
        ring: usize,
        /// Why.
        reason: &'static str,
    },
    /// An area without any polygon.
    #[error("an area needs at least one polygon")]
    EmptyArea,
}

/// GeoJSON geometry of a single point.
pub fn point_geometry(p: GeoPoint) -> Geometry {
    Geometry::new_point([p.lon(), p.lat()])
}

/// Reads a GeoJSON `Point` geometry (text).
pub fn point_from_geojson(text: &str) -> Result<GeoPoint, GeoJsonError> {
    match parse_geometry(text)?.value {
        GeometryValue::Point { coordinates } => position_to_point(0, &coordinates),
        other => Err(wrong_type("Point", &other)),
    }
}

/// A validated path of at least two points (a route's geometry, a GPS trace).
#[derive(Debug, Clone, PartialEq)]
pub struct Polyline(Vec<GeoPoint>);

impl Polyline {
    /// At least two points.
    pub fn new(points: Vec<GeoPoint>) -> Result<Self, GeoJsonError> {
        if points.len() < 2 {
            return Err(GeoJsonError::LineTooShort(points.len()));
        }
        Ok(Self(points))
    }

    /// The points in order.
    pub fn points(&self) -> &[GeoPoint] {
        &self.0
    }

    /// Sum of great-circle distances between consecutive points.
    pub fn length(&self) -> crate::Meters {
        self.0.windows(2).map(|w| w[0].distance_to(w[1])).sum()
    }

    /// As a GeoJSON `LineString` geometry.
    pub fn to_geometry(&self) -> Geometry {
        Geometry::new_line_string(self.0.iter().map(|p| [p.lon(), p.lat()]))
    }

    /// Reads a GeoJSON `LineString` geometry (text).
    pub fn from_geojson(text: &str) -> Result<Self, GeoJsonError> {
        match parse_geometry(text)?.value {
            GeometryValue::LineString { coordinates } => Self::new(positions(&coordinates)?),
            other => Err(wrong_type("LineString", &other)),
        }
    }
}

/// A validated area: one or more polygons with closed rings of valid WGS84 positions (a
/// catchment, a localidad, a coverage gap).
#[derive(Debug, Clone, PartialEq)]
pub struct Area(geo_types::MultiPolygon<f64>);

impl Area {
    /// Validates every position and ring (`geo_types` polygons are closed by construction;
    /// rings still need four positions and valid coordinates).
    pub fn new(multi: geo_types::MultiPolygon<f64>) -> Result<Self, GeoJsonError> {
        let mut ring_index = 0;
        for polygon in &multi.0 {
            for ring in std::iter::once(polygon.exterior()).chain(polygon.interiors()) {
                check_ring(ring_index, ring)?;
                ring_index += 1;
            }
        }
        Ok(Self(multi))
    }

    /// The polygons.
    pub fn polygons(&self) -> &[geo_types::Polygon<f64>] {
        &self.0.0
    }

    /// The underlying `geo` multipolygon, for geometric algorithms.
    pub fn as_geo(&self) -> &geo_types::MultiPolygon<f64> {
        &self.0
    }

    /// Geodesic area in square metres.
    pub fn area_m2(&self) -> f64 {
        self.0.geodesic_area_unsigned()
    }

    /// Whether the area has no polygon.
    pub fn is_empty(&self) -> bool {
        self.0.0.is_empty()
    }

    /// As a GeoJSON `MultiPolygon` geometry.
    pub fn to_geometry(&self) -> Geometry {
        Geometry::new(GeometryValue::from(&self.0))
    }

    /// Reads a GeoJSON `Polygon` or `MultiPolygon` geometry (text).
    pub fn from_geojson(text: &str) -> Result<Self, GeoJsonError> {
        let geometry = parse_geometry(text)?;
        let polygons: Vec<&Vec<Vec<Position>>> = match &geometry.value {
            GeometryValue::Polygon { coordinates } => vec![coordinates],
            GeometryValue::MultiPolygon { coordinates } => coordinates.iter().collect(),
            other => return Err(wrong_type("Polygon or MultiPolygon", other)),
        };
        if polygons.is_empty() {
            return Err(GeoJsonError::EmptyArea);
        }
        let mut out = Vec::with_capacity(polygons.len());
        let mut ring_index = 0;
        for rings in polygons {
            let mut line_strings = Vec::with_capacity(rings.len());
            for ring in rings {
                let points = positions(ring)?;
                // Checked here, on the positions as written: `geo_types::Polygon::new`
                // would silently close an open ring.
                if points.len() < 4 {
                    return Err(GeoJsonError::BadRing {
                        ring: ring_index,
                        reason: "fewer than 4 positions",
                    });
                }
                if points.first() != points.last() {
                    return Err(GeoJsonError::BadRing {
                        ring: ring_index,
                        reason: "not closed (first and last positions differ)",
                    });
                }
                ring_index += 1;
                line_strings.push(geo_types::LineString::from(
                    points
                        .iter()
                        .map(|p| (p.lon(), p.lat()))
                        .collect::<Vec<_>>(),
                ));
            }
            let mut iter = line_strings.into_iter();
            let exterior = iter.next().ok_or(GeoJsonError::EmptyArea)?;
            out.push(geo_types::Polygon::new(exterior, iter.collect()));
        }
        Self::new(geo_types::MultiPolygon(out))
    }
}

/// A GeoJSON `Feature` with properties (a JSON object).
pub fn feature(geometry: Geometry, properties: JsonObject) -> Feature {
    Feature {
        geometry: Some(geometry),
        properties: Some(properties),
        ..Feature::default()
    }
}

fn check_ring(index: usize, ring: &geo_types::LineString<f64>) -> Result<(), GeoJsonError> {
    if ring.0.len() < 4 {
        return Err(GeoJsonError::BadRing {
            ring: index,
            reason: "fewer than 4 positions",
        });
    }
    if ring.0.first() != ring.0.last() {
        return Err(GeoJsonError::BadRing {
            ring: index,
            reason: "not closed (first and last positions differ)",
        });
    }
    for (i, c) in ring.0.iter().enumerate() {
        GeoPoint::from_coord(*c)
            .map_err(|source| GeoJsonError::InvalidPoint { index: i, source })?;
    }
    Ok(())
}

fn parse_geometry(text: &str) -> Result<Geometry, GeoJsonError> {
    match text.parse::<GeoJson>() {
        Ok(
            GeoJson::Geometry(g)
            | GeoJson::Feature(Feature {
                geometry: Some(g), ..
            }),
        ) => Ok(g),
        Ok(GeoJson::Feature(_)) => Err(GeoJsonError::WrongType {
            expected: "geometry",
            found: "a Feature without geometry".to_owned(),
        }),
        Ok(GeoJson::FeatureCollection(_)) => Err(GeoJsonError::WrongType {
            expected: "single",
            found: "FeatureCollection".to_owned(),
        }),
        Err(e) => Err(GeoJsonError::Syntax(e.to_string())),
    }
}

fn wrong_type(expected: &'static str, found: &GeometryValue) -> GeoJsonError {
    GeoJsonError::WrongType {
        expected,
        found: found.type_name().to_owned(),
    }
}

fn position_to_point(index: usize, p: &Position) -> Result<GeoPoint, GeoJsonError> {
    let s = p.as_slice();
    if !(2..=3).contains(&s.len()) {
        return Err(GeoJsonError::BadPosition {
            index,
            len: s.len(),
        });
    }
    GeoPoint::new(s[0], s[1]).map_err(|source| GeoJsonError::InvalidPoint { index, source })
}

fn positions(list: &[Position]) -> Result<Vec<GeoPoint>, GeoJsonError> {
    list.iter()
        .enumerate()
        .map(|(i, p)| position_to_point(i, p))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(lon: f64, lat: f64) -> GeoPoint {
        GeoPoint::new(lon, lat).unwrap()
    }

    #[test]
    fn point_round_trip() {
        let point = p(-74.08, 4.6);
        let text = point_geometry(point).to_string();
        assert!(text.contains(r#""type":"Point""#), "{text}");
        assert_eq!(point_from_geojson(&text).unwrap(), point);
    }

    #[test]
    fn point_errors_are_specific() {
        assert!(matches!(
            point_from_geojson("{"),
            Err(GeoJsonError::Syntax(_))
        ));
        assert!(matches!(
            point_from_geojson(r#"{"type":"Point","coordinates":[-74.0,95.0]}"#),
            Err(GeoJsonError::InvalidPoint { .. })
        ));
        let one_number = point_from_geojson(r#"{"type":"Point","coordinates":[-74.0]}"#);
        assert!(
            matches!(&one_number, Err(GeoJsonError::Syntax(m)) if m.contains("two or more")),
            "{one_number:?}"
        );
        assert!(matches!(
            point_from_geojson(r#"{"type":"Point","coordinates":[-74.0,4.0,2600.0,1.0]}"#),
            Err(GeoJsonError::BadPosition { len: 4, .. })
        ));
        let err =
            point_from_geojson(r#"{"type":"LineString","coordinates":[[0,0],[1,1]]}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "expected a GeoJSON Point geometry, found LineString"
        );
    }

    #[test]
    fn polyline_round_trip_and_length() {
        let line = Polyline::new(vec![p(-74.0, 4.0), p(-74.0, 4.01), p(-74.01, 4.01)]).unwrap();
        let back = Polyline::from_geojson(&line.to_geometry().to_string()).unwrap();
        assert_eq!(back, line);
        assert!((line.length().get() - 2_220.0).abs() < 10.0);
        assert!(matches!(
            Polyline::new(vec![p(0.0, 0.0)]),
            Err(GeoJsonError::LineTooShort(1))
        ));
    }

    #[test]
    fn polygon_round_trip_and_area() {
        let text = r#"{"type":"Polygon","coordinates":[[[-74.1,4.6],[-74.09,4.6],[-74.09,4.61],[-74.1,4.61],[-74.1,4.6]]]}"#;
        let area = Area::from_geojson(text).unwrap();
        assert_eq!(area.polygons().len(), 1);
        // ~1.11 km × 1.11 km
        assert!(
            (area.area_m2() - 1.23e6).abs() < 0.02e6,
            "{}",
            area.area_m2()
        );
        let again = Area::from_geojson(&area.to_geometry().to_string()).unwrap();
        assert_eq!(again, area);
    }

    #[test]
    fn open_or_short_rings_are_refused() {
        let open = r#"{"type":"Polygon","coordinates":[[[-74.1,4.6],[-74.09,4.6],[-74.09,4.61],[-74.1,4.61]]]}"#;
        assert!(matches!(
            Area::from_geojson(open),
            Err(GeoJsonError::BadRing {
                reason: "not closed (first and last positions differ)",
                ..
            })
        ));
        let short = r#"{"type":"Polygon","coordinates":[[[-74.1,4.6],[-74.09,4.6],[-74.1,4.6]]]}"#;
        assert!(matches!(
            Area::from_geojson(short),
            Err(GeoJsonError::BadRing { .. })
        ));
        let empty = r#"{"type":"MultiPolygon","coordinates":[]}"#;
        assert_eq!(Area::from_geojson(empty), Err(GeoJsonError::EmptyArea));
    }

    #[test]
    fn features_carry_properties() {
        let mut props = JsonObject::new();
        props.insert("minutes".into(), 30.into());
        let f = feature(point_geometry(p(-74.0, 4.6)), props);
        let text = f.to_string();
        assert!(text.contains(r#""minutes":30"#), "{text}");
        assert_eq!(point_from_geojson(&text).unwrap(), p(-74.0, 4.6));
    }
}
