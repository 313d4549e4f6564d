//! Localidades, the urban footprint and the H3 demand cells.
//!
//! - `admin/bogota_localidades.geojson`: the 20 localidades as (Multi)Polygons with
//!   `Nombre de la localidad` and `Identificador unico de la localidad` (`01`–`20`). SUMAPAZ
//!   (20) is rural; the other 19 are the **urban localidades**.
//! - `admin/bogota_upz.geojson`: the 114 urban UPZ. Their union is the **urban footprint**.
//!   Several urban localidades are mostly rural land (Usme: 215 km², of which about a tenth
//!   is city; Ciudad Bolívar, Suba, Santa Fe and Chapinero reach into the hills and the
//!   páramo), so demand cells and ambulance bases are kept inside the footprint: spreading
//!   Usme's calls evenly over its whole polygon would put most of them in the páramo.
//!
//! **Demand cells**: the urban footprint is covered with the H3 resolution-8 cells whose
//! centre lies inside it, and each cell goes to the urban localidad whose polygon holds its
//! centre (so neighbouring localidades never share a cell). The localidad's Línea 123 incidents are divided
//! evenly among its cells. A localidad none of whose cell centres qualifies gets the single
//! cell of a point inside it (with a warning), so no demand is ever dropped.

use std::collections::BTreeMap;

use dispatch_core::recommend::DemandCell;
use geo::{BoundingRect, Contains, InteriorPoint, Intersects, MultiPolygon, Polygon, Rect};
use maps::{Area, Cell, CellResolution, GeoPoint};
use serde::Deserialize;

use super::text::name_key;
use super::{RegionError, RegionWarning, Subred};

/// Localidades that are rural and get no demand cells.
pub const RURAL_LOCALIDADES: [&str; 1] = ["SUMAPAZ"];

/// One localidad of Bogotá.
#[derive(Debug, Clone, PartialEq)]
pub struct Localidad {
    /// Official code, `01` … `20`.
    pub code: String,
    /// Name as in the polygons file (`USAQUEN`, `ANTONIO NARIÑO`).
    pub name: String,
    /// The whole polygon (urban and rural parts).
    pub area: Area,
    /// The subred serving it (Acuerdo 641 de 2016).
    pub subred: Subred,
    /// False for Sumapaz.
    pub urban: bool,
    /// Línea 123 incidents of the demand file (0 for a rural localidad without entry).
    pub demand_incidents: u32,
    /// Its resolution-8 demand cells (empty for rural localidades), sorted.
    pub cells: Vec<Cell>,
}

#[derive(Deserialize)]
struct RawCollection<P> {
    #[serde(rename = "type")]
    kind: String,
    features: Vec<RawFeature<P>>,
}

#[derive(Deserialize)]
struct RawFeature<P> {
    properties: P,
    geometry: Option<RawGeometry>,
}

#[derive(Deserialize)]
#[serde(tag = "type")]
enum RawGeometry {
    Polygon {
        coordinates: Vec<Vec<Vec<f64>>>,
    },
    MultiPolygon {
        coordinates: Vec<Vec<Vec<Vec<f64>>>>,
    },
}

#[derive(Deserialize)]
struct LocalidadProperties {
    #[serde(rename = "Nombre de la localidad")]
    name: String,
    #[serde(rename = "Identificador unico de la localidad")]
    code: String,
}

#[derive(Deserialize)]
struct UpzProperties {
    #[serde(rename = "UPlCodigo")]
    code: String,
}

/// Reads a GeoJSON `FeatureCollection` with properties `P`, naming the JSON path of any
/// mismatch.
fn parse_collection<P: for<'de> Deserialize<'de>>(
    file: &str,
    text: &str,
) -> Result<Vec<RawFeature<P>>, RegionError> {
    let de = &mut serde_json::Deserializer::from_str(text);
    let collection: RawCollection<P> =
        serde_path_to_error::deserialize(de).map_err(|e| RegionError::Json {
            file: file.to_owned(),
            path: e.path().to_string(),
            message: e.inner().to_string(),
        })?;
    if collection.kind != "FeatureCollection" {
        return Err(RegionError::Json {
            file: file.to_owned(),
            path: "type".to_owned(),
            message: format!(
                "expected \"FeatureCollection\", found {:?}",
                collection.kind
            ),
        });
    }
    if collection.features.is_empty() {
        return Err(RegionError::Json {
            file: file.to_owned(),
            path: "features".to_owned(),
            message: "no features".to_owned(),
        });
    }
    Ok(collection.features)
}

/// Turns a GeoJSON (Multi)Polygon into a validated [`Area`]: rings closed, at least four
/// positions, every position a valid WGS84 `[lon, lat]` (an altitude is ignored).
fn to_area(geometry: Option<RawGeometry>) -> Result<Area, String> {
    let polygons = match geometry {
        None => return Err("the feature has no geometry".to_owned()),
        Some(RawGeometry::Polygon { coordinates }) => vec![coordinates],
        Some(RawGeometry::MultiPolygon { coordinates }) => coordinates,
    };
    if polygons.is_empty() {
        return Err("the geometry has no polygon".to_owned());
    }
    let mut out = Vec::with_capacity(polygons.len());
    for (p, rings) in polygons.into_iter().enumerate() {
        let mut line_strings = Vec::with_capacity(rings.len());
        for (r, ring) in rings.into_iter().enumerate() {
            let at = format!("polygon {p}, ring {r}");
            if ring.len() < 4 {
                return Err(format!(
                    "{at}: {} positions, a ring needs at least 4",
                    ring.len()
                ));
            }
            if ring.first() != ring.last() {
                return Err(format!(
                    "{at}: not closed (first and last positions differ)"
                ));
            }
            let mut coords = Vec::with_capacity(ring.len());
            for (i, position) in ring.iter().enumerate() {
                let (Some(&lon), Some(&lat), 2..=3) =
                    (position.first(), position.get(1), position.len())
                else {
                    return Err(format!(
                        "{at}, position {i}: {} numbers, expected [longitude, latitude]",
                        position.len()
                    ));
                };
                GeoPoint::new(lon, lat).map_err(|e| format!("{at}, position {i}: {e}"))?;
                coords.push(geo::Coord { x: lon, y: lat });
            }
            line_strings.push(geo::LineString(coords));
        }
        let mut rings = line_strings.into_iter();
        let exterior = rings
            .next()
            .ok_or_else(|| format!("polygon {p} has no ring"))?;
        out.push(Polygon::new(exterior, rings.collect()));
    }
    Area::new(MultiPolygon(out)).map_err(|e| e.to_string())
}

/// Parses the localidades file: one [`Localidad`] per feature, ordered by code, without
/// demand or cells yet.
pub fn parse_localidades(file: &str, text: &str) -> Result<Vec<Localidad>, RegionError> {
    let features = parse_collection::<LocalidadProperties>(file, text)?;
    let mut localidades: Vec<Localidad> = Vec::with_capacity(features.len());
    for (index, feature) in features.into_iter().enumerate() {
        let name = feature.properties.name.trim().to_owned();
        let code = feature.properties.code.trim().to_owned();
        let json_error = |field: &str, message: String| RegionError::Json {
            file: file.to_owned(),
            path: format!("features[{index}].properties.{field}"),
            message,
        };
        if name.is_empty() {
            return Err(json_error(
                "Nombre de la localidad",
                "empty name".to_owned(),
            ));
        }
        let number: u8 = code.parse().map_err(|_| {
            json_error(
                "Identificador unico de la localidad",
                format!("{code:?} is not a localidad code (01–20)"),
            )
        })?;
        let subred = Subred::serving_localidad(number).ok_or_else(|| {
            json_error(
                "Identificador unico de la localidad",
                format!("{code:?} is not a localidad code of Bogotá (01–20)"),
            )
        })?;
        let area = to_area(feature.geometry).map_err(|message| RegionError::Geometry {
            file: file.to_owned(),
            feature: index,
            name: name.clone(),
            message,
        })?;
        if let Some(other) = localidades
            .iter()
            .find(|l| l.code == code || name_key(&l.name) == name_key(&name))
        {
            return Err(RegionError::Inconsistent {
                file: file.to_owned(),
                message: format!(
                    "feature {index} ({name}, {code}) repeats the localidad {} ({})",
                    other.name, other.code
                ),
            });
        }
        let urban = !RURAL_LOCALIDADES.contains(&name_key(&name).as_str());
        localidades.push(Localidad {
            code,
            name,
            area,
            subred,
            urban,
            demand_incidents: 0,
            cells: Vec::new(),
        });
    }
    localidades.sort_by(|a, b| a.code.cmp(&b.code));
    Ok(localidades)
}

/// The urban area of Bogotá: the union of the urban UPZ polygons.
#[derive(Debug, Clone)]
pub struct UrbanFootprint {
    polygons: Vec<(Rect<f64>, Polygon<f64>)>,
}

impl UrbanFootprint {
    /// Parses the UPZ file.
    pub fn parse(file: &str, text: &str) -> Result<Self, RegionError> {
        let features = parse_collection::<UpzProperties>(file, text)?;
        let mut polygons = Vec::new();
        for (index, feature) in features.into_iter().enumerate() {
            let name = feature.properties.code;
            let area = to_area(feature.geometry).map_err(|message| RegionError::Geometry {
                file: file.to_owned(),
                feature: index,
                name,
                message,
            })?;
            for polygon in area.polygons() {
                if let Some(rect) = polygon.bounding_rect() {
                    polygons.push((rect, polygon.clone()));
                }
            }
        }
        Ok(Self { polygons })
    }

    /// A footprint made of the given areas (for tests and other cities).
    pub fn from_areas<'a>(areas: impl IntoIterator<Item = &'a Area>) -> Self {
        let polygons = areas
            .into_iter()
            .flat_map(|a| a.polygons().iter())
            .filter_map(|p| p.bounding_rect().map(|r| (r, p.clone())))
            .collect();
        Self { polygons }
    }

    /// Whether `point` is inside the urban area.
    pub fn contains(&self, point: GeoPoint) -> bool {
        let p = point.to_geo();
        self.polygons
            .iter()
            .any(|(rect, polygon)| rect.intersects(&p) && polygon.contains(&p))
    }

    /// The resolution-8 cells whose centre lies inside the footprint, sorted.
    ///
    /// A flood fill over the H3 grid from the middle of the footprint's bounding box, kept
    /// within that box plus a margin of two cells (the cells with a centre inside a box form
    /// a connected set); each centre is tested against the UPZ polygons whose box holds it.
    /// (h3o's polygon tiler was tried first: on the real localidades, whose outlines have up
    /// to 16,000 vertices, it took seconds per localidad.)
    pub fn cells(&self) -> Vec<Cell> {
        let Some(first) = self.polygons.first() else {
            return Vec::new();
        };
        let bounds = self.polygons.iter().fold(first.0, |acc, (r, _)| {
            Rect::new(
                geo::coord! { x: acc.min().x.min(r.min().x), y: acc.min().y.min(r.min().y) },
                geo::coord! { x: acc.max().x.max(r.max().x), y: acc.max().y.max(r.max().y) },
            )
        });
        // Two resolution-8 cells (edge ≈ 0.53 km) in degrees, generously.
        let margin = 0.02;
        let (min, max) = (bounds.min(), bounds.max());
        let inside_box = |p: GeoPoint| {
            (min.x - margin..=max.x + margin).contains(&p.lon())
                && (min.y - margin..=max.y + margin).contains(&p.lat())
        };
        let Ok(middle) = GeoPoint::new(f64::midpoint(min.x, max.x), f64::midpoint(min.y, max.y))
        else {
            return Vec::new();
        };
        let start = Cell::containing(middle, CellResolution::Coverage);
        let mut seen: std::collections::HashSet<Cell> = std::collections::HashSet::from([start]);
        let mut queue = vec![start];
        let mut out = Vec::new();
        while let Some(cell) = queue.pop() {
            let centre = cell.center();
            if !inside_box(centre) {
                continue;
            }
            if self.contains(centre) {
                out.push(cell);
            }
            for next in cell.disk(1) {
                if seen.insert(next) {
                    queue.push(next);
                }
            }
        }
        out.sort_unstable();
        out
    }

    /// The part of the footprint that may overlap `rect` (a cheaper footprint for sampling
    /// inside one localidad).
    pub(crate) fn within(&self, rect: &Rect<f64>) -> Self {
        Self {
            polygons: self
                .polygons
                .iter()
                .filter(|(r, _)| r.intersects(rect))
                .cloned()
                .collect(),
        }
    }
}

/// Gives each localidad its Línea 123 incidents from `porLocalidad` (`by_localidad`, names
/// as written there), matching names with [`name_key`] (accents and a leading article
/// ignored: `USAQUÉN` = `USAQUEN`, `LA CANDELARIA` = `CANDELARIA`).
///
/// Fails when a name matches no localidad (with the closest name as a hint) or when an urban
/// localidad has no entry; demand of a rural localidad is kept on the localidad but left out
/// of the cells, with a warning.
pub fn attach_demand(
    file: &str,
    localidades: &mut [Localidad],
    by_localidad: &[(String, u32)],
) -> Result<Vec<RegionWarning>, RegionError> {
    let mut warnings = Vec::new();
    let mut assigned = vec![false; localidades.len()];
    for (name, incidents) in by_localidad {
        let key = name_key(name);
        let Some(index) = localidades.iter().position(|l| name_key(&l.name) == key) else {
            let suggestion = localidades
                .iter()
                .map(|l| (strsim::jaro_winkler(&name_key(&l.name), &key), &l.name))
                .filter(|(score, _)| *score > 0.85)
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, n)| n.clone());
            return Err(RegionError::UnknownLocalidad {
                file: file.to_owned(),
                field: format!("porLocalidad.{name}"),
                name: name.clone(),
                suggestion,
            });
        };
        if assigned[index] {
            return Err(RegionError::Inconsistent {
                file: file.to_owned(),
                message: format!(
                    "`porLocalidad` names the localidad {} twice (as {name:?} among others)",
                    localidades[index].name
                ),
            });
        }
        assigned[index] = true;
        let localidad = &mut localidades[index];
        localidad.demand_incidents = *incidents;
        if !localidad.urban && *incidents > 0 {
            warnings.push(RegionWarning::RuralDemandLeftOut {
                localidad: localidad.name.clone(),
                incidents: *incidents,
            });
        }
    }
    if let Some(missing) = localidades
        .iter()
        .zip(&assigned)
        .find(|(l, done)| l.urban && !**done)
        .map(|(l, _)| l)
    {
        return Err(RegionError::MissingDemand {
            file: file.to_owned(),
            localidad: missing.name.clone(),
            code: missing.code.clone(),
        });
    }
    Ok(warnings)
}

/// Gives every urban localidad its resolution-8 cells: the cells whose centre lies inside
/// the urban footprint ([`UrbanFootprint::cells`]) and inside the localidad's polygon. A
/// localidad left without a cell gets the cell of a point inside it, with a warning.
pub fn tile_urban_cells(
    localidades: &mut [Localidad],
    footprint: &UrbanFootprint,
) -> Result<Vec<RegionWarning>, RegionError> {
    let bounds: Vec<Option<Rect<f64>>> = localidades
        .iter()
        .map(|l| l.area.as_geo().bounding_rect())
        .collect();
    let mut cells: Vec<Vec<Cell>> = vec![Vec::new(); localidades.len()];
    for cell in footprint.cells() {
        let centre = cell.center().to_geo();
        let owner = localidades.iter().zip(&bounds).position(|(l, rect)| {
            l.urban
                && rect.is_some_and(|r| r.intersects(&centre))
                && l.area.as_geo().contains(&centre)
        });
        if let Some(owner) = owner {
            cells[owner].push(cell);
        }
    }
    let mut warnings = Vec::new();
    for (localidad, mut cells) in localidades.iter_mut().zip(cells) {
        if !localidad.urban {
            continue;
        }
        if cells.is_empty() {
            let geometry_error = |message: &str| RegionError::Inconsistent {
                file: super::LOCALIDADES_FILE.to_owned(),
                message: format!("localidad {}: {message}", localidad.name),
            };
            let inside = localidad
                .area
                .as_geo()
                .interior_point()
                .ok_or_else(|| geometry_error("the polygon has no interior point"))?;
            let point = GeoPoint::from_coord(inside.0)
                .map_err(|_| geometry_error("the polygon's interior point is not valid WGS84"))?;
            cells.push(Cell::containing(point, CellResolution::Coverage));
            warnings.push(RegionWarning::LocalidadWithoutCellCentre {
                localidad: localidad.name.clone(),
            });
        }
        cells.sort_unstable();
        cells.dedup();
        localidad.cells = cells;
    }
    Ok(warnings)
}

/// The demand cells of the urban localidades: each localidad's incidents divided evenly
/// among its cells (a cell shared by two localidades, which only the fallback can produce,
/// sums both shares). Sorted by cell.
pub fn demand_cells(localidades: &[Localidad]) -> Vec<DemandCell> {
    let mut weights: BTreeMap<Cell, f64> = BTreeMap::new();
    for localidad in localidades
        .iter()
        .filter(|l| l.urban && !l.cells.is_empty())
    {
        #[allow(clippy::cast_precision_loss)] // a few hundred cells
        let share = f64::from(localidad.demand_incidents) / localidad.cells.len() as f64;
        for &cell in &localidad.cells {
            *weights.entry(cell).or_insert(0.0) += share;
        }
    }
    weights
        .into_iter()
        .map(|(cell, weight)| DemandCell { cell, weight })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A square localidad feature of `side` degrees with its south-west corner at (lon, lat).
    pub(crate) fn square_feature(name: &str, code: &str, lon: f64, lat: f64, side: f64) -> String {
        format!(
            r#"{{"type":"Feature","properties":{{"Nombre de la localidad":"{name}","Identificador unico de la localidad":"{code}"}},"geometry":{{"type":"MultiPolygon","coordinates":[[[[{lon},{lat}],[{e},{lat}],[{e},{n}],[{lon},{n}],[{lon},{lat}]]]]}}}}"#,
            e = lon + side,
            n = lat + side
        )
    }

    pub(crate) fn collection(features: &[String]) -> String {
        format!(
            r#"{{"type":"FeatureCollection","features":[{}]}}"#,
            features.join(",")
        )
    }

    pub(crate) fn two_localidades() -> Vec<Localidad> {
        parse_localidades(
            "loc.geojson",
            &collection(&[
                square_feature("USAQUEN", "01", -74.06, 4.70, 0.03),
                square_feature("CANDELARIA", "17", -74.08, 4.59, 0.02),
                square_feature("SUMAPAZ", "20", -74.20, 4.00, 0.10),
            ]),
        )
        .unwrap()
    }

    #[test]
    fn localidades_are_read_in_code_order_with_their_subred() {
        let l = two_localidades();
        let names: Vec<&str> = l.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["USAQUEN", "CANDELARIA", "SUMAPAZ"]);
        assert_eq!(l[1].subred, Subred::CentroOriente);
        assert!(l[0].urban && l[1].urban && !l[2].urban);
        assert!(
            (l[0].area.area_m2() - 3.3e3 * 3.3e3).abs() < 0.2e6,
            "{}",
            l[0].area.area_m2()
        );
    }

    #[test]
    fn malformed_geojson_is_refused_with_the_json_path() {
        let err = parse_localidades("loc.geojson", "{\"type\":\"FeatureCollection\",").unwrap_err();
        assert!(matches!(err, RegionError::Json { .. }), "{err:?}");
        assert!(err.to_string().starts_with("loc.geojson: "), "{err}");

        let no_name = r#"{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"Identificador unico de la localidad":"01"},"geometry":null}]}"#;
        let err = parse_localidades("loc.geojson", no_name).unwrap_err();
        assert!(
            matches!(&err, RegionError::Json { path, message, .. } if path == "features[0].properties" && message.contains("Nombre de la localidad")),
            "{err:?}"
        );

        let point = r#"{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"Nombre de la localidad":"SUBA","Identificador unico de la localidad":"11"},"geometry":{"type":"Point","coordinates":[-74.1,4.7]}}]}"#;
        let err = parse_localidades("loc.geojson", point).unwrap_err();
        assert!(err.to_string().contains("Point"), "{err}");

        let not_a_collection = r#"{"type":"Feature","features":[]}"#;
        let err = parse_localidades("loc.geojson", not_a_collection).unwrap_err();
        assert!(err.to_string().contains("FeatureCollection"), "{err}");
    }

    #[test]
    fn open_rings_bad_positions_and_missing_geometry_name_the_feature() {
        let open = r#"{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"Nombre de la localidad":"SUBA","Identificador unico de la localidad":"11"},"geometry":{"type":"Polygon","coordinates":[[[-74.1,4.7],[-74.0,4.7],[-74.0,4.8],[-74.1,4.8]]]}}]}"#;
        let err = parse_localidades("loc.geojson", open).unwrap_err();
        assert_eq!(
            err.to_string(),
            "loc.geojson: feature 0 (SUBA): polygon 0, ring 0: not closed (first and last positions differ)"
        );
        let out_of_range = r#"{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"Nombre de la localidad":"SUBA","Identificador unico de la localidad":"11"},"geometry":{"type":"Polygon","coordinates":[[[-74.1,4.7],[-74.0,94.7],[-74.0,4.8],[-74.1,4.7]]]}}]}"#;
        let err = parse_localidades("loc.geojson", out_of_range).unwrap_err();
        assert!(err.to_string().contains("position 1"), "{err}");
        let null = r#"{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"Nombre de la localidad":"SUBA","Identificador unico de la localidad":"11"},"geometry":null}]}"#;
        let err = parse_localidades("loc.geojson", null).unwrap_err();
        assert!(err.to_string().contains("no geometry"), "{err}");
    }

    #[test]
    fn unknown_codes_and_repeated_localidades_are_refused() {
        let err = parse_localidades(
            "loc.geojson",
            &collection(&[square_feature("SUBA", "33", -74.1, 4.7, 0.01)]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("\"33\""), "{err}");
        let err = parse_localidades(
            "loc.geojson",
            &collection(&[
                square_feature("SUBA", "11", -74.1, 4.7, 0.01),
                square_feature("Suba", "12", -74.1, 4.7, 0.01),
            ]),
        )
        .unwrap_err();
        assert!(matches!(err, RegionError::Inconsistent { .. }), "{err:?}");
    }

    #[test]
    fn demand_names_match_despite_accents_and_articles() {
        let mut l = two_localidades();
        let warnings = attach_demand(
            "d.json",
            &mut l,
            &[("USAQUÉN".into(), 372), ("LA CANDELARIA".into(), 77)],
        )
        .unwrap();
        assert!(warnings.is_empty());
        assert_eq!(l[0].demand_incidents, 372);
        assert_eq!(l[1].demand_incidents, 77);
    }

    #[test]
    fn a_demand_name_matching_no_localidad_is_refused_with_a_suggestion() {
        let mut l = two_localidades();
        let err = attach_demand(
            "d.json",
            &mut l,
            &[("USAQUEM".into(), 372), ("CANDELARIA".into(), 77)],
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "d.json: at `porLocalidad.USAQUEM`: localidad \"USAQUEM\" matches no localidad of admin/bogota_localidades.geojson (did you mean \"USAQUEN\"?)"
        );
    }

    #[test]
    fn an_urban_localidad_missing_from_the_demand_is_refused() {
        let mut l = two_localidades();
        let err = attach_demand("d.json", &mut l, &[("USAQUEN".into(), 372)]).unwrap_err();
        assert!(
            matches!(&err, RegionError::MissingDemand { localidad, code, .. } if localidad == "CANDELARIA" && code == "17"),
            "{err:?}"
        );
    }

    #[test]
    fn rural_demand_is_kept_out_of_the_cells_with_a_warning() {
        let mut l = two_localidades();
        let warnings = attach_demand(
            "d.json",
            &mut l,
            &[
                ("USAQUEN".into(), 10),
                ("CANDELARIA".into(), 5),
                ("SUMAPAZ".into(), 3),
            ],
        )
        .unwrap();
        assert_eq!(
            warnings,
            vec![RegionWarning::RuralDemandLeftOut {
                localidad: "SUMAPAZ".into(),
                incidents: 3
            }]
        );
        let footprint = UrbanFootprint::from_areas(l.iter().map(|l| &l.area));
        tile_urban_cells(&mut l, &footprint).unwrap();
        assert!(l[2].cells.is_empty());
        let cells = demand_cells(&l);
        let total: f64 = cells.iter().map(|c| c.weight).sum();
        assert!((total - 15.0).abs() < 1e-9, "{total}");
    }

    #[test]
    fn cells_are_split_evenly_and_stay_inside_the_footprint() {
        let mut l = two_localidades();
        attach_demand(
            "d.json",
            &mut l,
            &[("USAQUEN".into(), 300), ("CANDELARIA".into(), 77)],
        )
        .unwrap();
        // The footprint covers only the southern half of Usaquén's square.
        let half = parse_localidades(
            "u.geojson",
            &collection(&[
                square_feature("A", "01", -74.06, 4.70, 0.015),
                square_feature("B", "02", -74.045, 4.70, 0.015),
                square_feature("C", "17", -74.08, 4.59, 0.02),
            ]),
        )
        .unwrap();
        let footprint = UrbanFootprint::from_areas(half.iter().map(|l| &l.area));
        let warnings = tile_urban_cells(&mut l, &footprint).unwrap();
        assert!(warnings.is_empty());
        let usaquen = &l[0];
        // A 3.3 km × 1.65 km strip holds about 7 resolution-8 cells (0.74 km² each).
        assert!(
            (4..=12).contains(&usaquen.cells.len()),
            "{}",
            usaquen.cells.len()
        );
        for c in &usaquen.cells {
            assert!(c.center().lat() <= 4.715 + 1e-9, "{c:?}");
        }
        let cells = demand_cells(&l);
        assert_eq!(cells.len(), usaquen.cells.len() + l[1].cells.len());
        #[allow(clippy::cast_precision_loss)]
        let expected = 300.0 / usaquen.cells.len() as f64;
        let w = cells
            .iter()
            .find(|c| c.cell == usaquen.cells[0])
            .unwrap()
            .weight;
        assert!((w - expected).abs() < 1e-9);
    }

    #[test]
    fn a_localidad_smaller_than_a_cell_gets_one_cell_and_a_warning() {
        let mut l = parse_localidades(
            "loc.geojson",
            &collection(&[square_feature("CANDELARIA", "17", -74.0751, 4.5951, 0.001)]),
        )
        .unwrap();
        attach_demand("d.json", &mut l, &[("CANDELARIA".into(), 77)]).unwrap();
        let footprint = UrbanFootprint::from_areas(l.iter().map(|l| &l.area));
        let warnings = tile_urban_cells(&mut l, &footprint).unwrap();
        assert_eq!(l[0].cells.len(), 1);
        assert!(matches!(
            warnings[..],
            [RegionWarning::LocalidadWithoutCellCentre { .. }]
        ));
        let cells = demand_cells(&l);
        assert_eq!(cells.len(), 1);
        assert!((cells[0].weight - 77.0).abs() < 1e-9);
    }
}
