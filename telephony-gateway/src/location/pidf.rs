//! PIDF-LO reader (RFC 4119, with RFC 5491 shapes, RFC 5139 civic addresses and RFC 7459
//! confidence).
//!
//! The XML parser is `roxmltree` with DTDs refused (so no entity can be declared, internal
//! or external) and a node limit; the document size is checked before parsing. Only what
//! the console needs is read: a Point or Circle (or Sphere, read as a circle), a civic
//! address, the method, the time and the confidence.

use dispatch_core::intake::{CivicAddress, DeviceLocation};
use maps::{GeoPoint, Meters, Timestamp};
use roxmltree::{Document, Node, ParsingOptions};

const PIDF: &str = "urn:ietf:params:xml:ns:pidf";
const GEOPRIV: &str = "urn:ietf:params:xml:ns:pidf:geopriv10";
const GML: &str = "http://www.opengis.net/gml";
const GS: &str = "http://www.opengis.net/pidflo/1.0";
const CIVIC: &str = "urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr";
const CONF: &str = "urn:ietf:params:xml:ns:geopriv:conf";
const DATA_MODEL: &str = "urn:ietf:params:xml:ns:pidf:data-model";

/// Largest PIDF-LO document read, in bytes (real ones are 1–3 KB).
pub const MAX_PIDF_BYTES: usize = 32 * 1024;
/// Most XML nodes read.
const MAX_NODES: u32 = 2_000;
/// Longest civic field kept, in characters.
const MAX_FIELD_CHARS: usize = 200;

/// Why a PIDF-LO document gives no usable location. The message is shown to operators
/// (it says what is wrong, never the caller's data).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PidfError {
    /// Over [`MAX_PIDF_BYTES`].
    #[error("PIDF-LO of {0} bytes exceeds the {MAX_PIDF_BYTES}-byte limit")]
    TooLarge(usize),
    /// Not UTF-8.
    #[error("PIDF-LO is not UTF-8")]
    NotUtf8,
    /// Has a DOCTYPE (DTDs and entities are refused).
    #[error("PIDF-LO declares a DTD, which is refused")]
    Dtd,
    /// Not well-formed XML (or too many nodes).
    #[error("PIDF-LO is not well-formed XML: {0}")]
    Xml(String),
    /// Root is not a PIDF `presence`.
    #[error("document is not PIDF (root element is {0})")]
    NotPidf(String),
    /// No `geopriv` with `location-info`.
    #[error("PIDF-LO has no location-info")]
    NoLocationInfo,
    /// A shape that is neither Point, Circle nor Sphere, and no civic address.
    #[error("PIDF-LO shape {0} is not supported (Point, Circle and Sphere are)")]
    UnsupportedShape(String),
    /// A coordinate reference system other than WGS84 (EPSG 4326/4979).
    #[error("PIDF-LO uses coordinate system {0:?}; only WGS84 (EPSG::4326, EPSG::4979) is read")]
    UnsupportedCrs(String),
    /// `gml:pos` is not two or three numbers.
    #[error("PIDF-LO position {0:?} is not `latitude longitude [altitude]`")]
    BadPosition(String),
    /// Coordinates out of range.
    #[error("PIDF-LO position out of range: {0}")]
    OutOfRange(String),
    /// Circle radius missing, negative, not a number, or not in metres.
    #[error("PIDF-LO circle radius is unusable: {0}")]
    BadRadius(String),
    /// Confidence not a percentage.
    #[error("PIDF-LO confidence {0:?} is not a percentage 0-100")]
    BadConfidence(String),
    /// Neither a shape nor a civic address.
    #[error("PIDF-LO location-info has neither a geodetic shape nor a civic address")]
    Empty,
}

/// Reads a PIDF-LO document into a location.
pub fn read_pidf_lo(bytes: &[u8]) -> Result<DeviceLocation, PidfError> {
    if bytes.len() > MAX_PIDF_BYTES {
        return Err(PidfError::TooLarge(bytes.len()));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| PidfError::NotUtf8)?;
    let options = ParsingOptions {
        allow_dtd: false,
        nodes_limit: MAX_NODES,
        ..ParsingOptions::default()
    };
    let doc = Document::parse_with_options(text, options).map_err(|e| match e {
        roxmltree::Error::DtdDetected => PidfError::Dtd,
        other => PidfError::Xml(other.to_string()),
    })?;
    let root = doc.root_element();
    if !(root.tag_name().name() == "presence" && root.tag_name().namespace() == Some(PIDF)) {
        return Err(PidfError::NotPidf(root.tag_name().name().to_owned()));
    }
    let geoprivs: Vec<Node<'_, '_>> = root
        .descendants()
        .filter(|n| is(n, GEOPRIV, "geopriv"))
        .collect();
    let infos: Vec<(Node<'_, '_>, Node<'_, '_>)> = geoprivs
        .iter()
        .filter_map(|g| child(*g, GEOPRIV, "location-info").map(|i| (*g, i)))
        .collect();
    if infos.is_empty() {
        return Err(PidfError::NoLocationInfo);
    }

    let mut location = DeviceLocation {
        position: None,
        uncertainty: None,
        confidence_percent: None,
        civic: None,
        method: None,
        determined_at: None,
    };
    let mut shape_error = None;
    for (geopriv, info) in &infos {
        if location.position.is_none() {
            match read_shape(*info) {
                Ok(Some((point, radius, confidence))) => {
                    location.position = Some(point);
                    location.uncertainty = radius;
                    location.confidence_percent = confidence;
                    location.method = location.method.take().or_else(|| method(*geopriv));
                    location.determined_at = location.determined_at.or_else(|| timestamp(*geopriv));
                }
                Ok(None) => {}
                Err(e) => {
                    shape_error.get_or_insert(e);
                }
            }
        }
        if location.civic.is_none()
            && let Some(civic) = child(*info, CIVIC, "civicAddress").map(read_civic)
        {
            location.civic = Some(civic);
            location.method = location.method.take().or_else(|| method(*geopriv));
            location.determined_at = location.determined_at.or_else(|| timestamp(*geopriv));
        }
    }
    match (
        location.position.is_some() || location.civic.is_some(),
        shape_error,
    ) {
        (true, _) => Ok(location),
        (false, Some(e)) => Err(e),
        (false, None) => Err(PidfError::Empty),
    }
}

fn is(node: &Node<'_, '_>, ns: &str, name: &str) -> bool {
    node.is_element() && node.tag_name().name() == name && node.tag_name().namespace() == Some(ns)
}

fn child<'a, 'i>(node: Node<'a, 'i>, ns: &str, name: &str) -> Option<Node<'a, 'i>> {
    node.children().find(|c| is(c, ns, name))
}

fn text_of(node: Node<'_, '_>) -> String {
    let text: String = node
        .descendants()
        .filter(Node::is_text)
        .filter_map(|n| n.text())
        .collect();
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `(point, radius, confidence)` of the first Point/Circle/Sphere; `Ok(None)` if the
/// location-info has no geodetic shape.
type Shape = (GeoPoint, Option<Meters>, Option<u8>);

fn read_shape(info: Node<'_, '_>) -> Result<Option<Shape>, PidfError> {
    let Some(shape) = info
        .children()
        .find(|c| c.is_element() && matches!(c.tag_name().namespace(), Some(GML | GS)))
    else {
        return Ok(None);
    };
    let name = shape.tag_name().name();
    let is_circle = match (shape.tag_name().namespace(), name) {
        (Some(GML), "Point") => false,
        (Some(GS), "Circle" | "Sphere") => true,
        _ => return Err(PidfError::UnsupportedShape(name.to_owned())),
    };
    if let Some(srs) = shape.attribute("srsName") {
        let wgs84 = ["urn:ogc:def:crs:EPSG::4326", "urn:ogc:def:crs:EPSG::4979"];
        if !wgs84.contains(&srs) {
            return Err(PidfError::UnsupportedCrs(truncate(srs)));
        }
    }
    let pos = child(shape, GML, "pos").ok_or_else(|| PidfError::BadPosition(String::new()))?;
    let pos_text = text_of(pos);
    let numbers: Vec<f64> = pos_text
        .split_whitespace()
        .map(str::parse::<f64>)
        .collect::<Result<_, _>>()
        .map_err(|_| PidfError::BadPosition(truncate(&pos_text)))?;
    if !(2..=3).contains(&numbers.len()) {
        return Err(PidfError::BadPosition(truncate(&pos_text)));
    }
    // EPSG 4326/4979 axis order is latitude, longitude.
    let point =
        GeoPoint::new(numbers[1], numbers[0]).map_err(|e| PidfError::OutOfRange(e.to_string()))?;
    let radius = if is_circle {
        let r = child(shape, GS, "radius").ok_or_else(|| PidfError::BadRadius("missing".into()))?;
        if let Some(uom) = r.attribute("uom")
            && uom != "urn:ogc:def:uom:EPSG::9001"
        {
            return Err(PidfError::BadRadius(format!(
                "unit {} is not metres",
                truncate(uom)
            )));
        }
        let value: f64 = text_of(r)
            .parse()
            .map_err(|_| PidfError::BadRadius("not a number".into()))?;
        Some(Meters::try_new(value).map_err(|e| PidfError::BadRadius(e.to_string()))?)
    } else {
        None
    };
    let confidence = match child(info, CONF, "confidence") {
        Some(c) => {
            let t = text_of(c);
            let v: f64 = t
                .parse()
                .map_err(|_| PidfError::BadConfidence(truncate(&t)))?;
            if !(0.0..=100.0).contains(&v) {
                return Err(PidfError::BadConfidence(truncate(&t)));
            }
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Some(v.round() as u8)
        }
        // RFC 5491 §3: shapes with uncertainty imply 95 % confidence.
        None if is_circle => Some(95),
        None => None,
    };
    Ok(Some((point, radius, confidence)))
}

fn truncate(text: &str) -> String {
    text.chars().take(60).collect()
}

fn field(node: Node<'_, '_>, name: &str) -> Option<String> {
    let t = child(node, CIVIC, name).map(text_of)?;
    let t: String = t
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_FIELD_CHARS)
        .collect();
    (!t.is_empty()).then_some(t)
}

fn join(parts: &[Option<String>], sep: &str) -> Option<String> {
    let v: Vec<&str> = parts.iter().flatten().map(String::as_str).collect();
    (!v.is_empty()).then(|| v.join(sep))
}

fn read_civic(ca: Node<'_, '_>) -> CivicAddress {
    let labelled = |name: &str, label: &str| field(ca, name).map(|v| format!("{label} {v}"));
    CivicAddress {
        country: field(ca, "country"),
        region: field(ca, "A1"),
        city: field(ca, "A2"),
        district: field(ca, "A3"),
        road: join(
            &[
                field(ca, "PRD"),
                field(ca, "RD"),
                field(ca, "STS"),
                field(ca, "POD"),
            ],
            " ",
        ),
        house_number: join(&[field(ca, "HNO"), field(ca, "HNS")], ""),
        detail: join(
            &[
                field(ca, "LMK"),
                field(ca, "LOC"),
                labelled("BLD", "edificio"),
                labelled("FLR", "piso"),
                labelled("UNIT", "unidad"),
                labelled("ROOM", "sala"),
            ],
            "; ",
        ),
        postal_code: field(ca, "PC"),
    }
}

fn method(geopriv: Node<'_, '_>) -> Option<String> {
    let m = child(geopriv, GEOPRIV, "method").map(text_of)?;
    let m: String = m.chars().filter(|c| !c.is_control()).take(40).collect();
    (!m.is_empty()).then_some(m)
}

/// The `timestamp` of the tuple, device or person holding this geopriv.
fn timestamp(geopriv: Node<'_, '_>) -> Option<Timestamp> {
    geopriv.ancestors().find_map(|a| {
        let ts = child(a, PIDF, "timestamp").or_else(|| child(a, DATA_MODEL, "timestamp"))?;
        Timestamp::parse_rfc3339(&text_of(ts)).ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const CIRCLE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf"
    xmlns:gp="urn:ietf:params:xml:ns:pidf:geopriv10"
    xmlns:gml="http://www.opengis.net/gml"
    xmlns:gs="http://www.opengis.net/pidflo/1.0"
    xmlns:ca="urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr"
    xmlns:con="urn:ietf:params:xml:ns:geopriv:conf"
    entity="pres:caller@carrier.example">
  <tuple id="loc1">
    <status>
      <gp:geopriv>
        <gp:location-info>
          <gs:Circle srsName="urn:ogc:def:crs:EPSG::4326">
            <gml:pos>4.6097 -74.0817</gml:pos>
            <gs:radius uom="urn:ogc:def:uom:EPSG::9001">35.5</gs:radius>
          </gs:Circle>
          <con:confidence pdf="normal">68</con:confidence>
          <ca:civicAddress xml:lang="es-CO">
            <ca:country>CO</ca:country>
            <ca:A1>Bogotá D.C.</ca:A1>
            <ca:A2>Bogotá</ca:A2>
            <ca:A3>Chapinero</ca:A3>
            <ca:RD>Calle 45</ca:RD>
            <ca:HNO>13</ca:HNO>
            <ca:HNS>-20</ca:HNS>
            <ca:LMK>Frente al parque</ca:LMK>
            <ca:FLR>3</ca:FLR>
            <ca:PC>110231</ca:PC>
          </ca:civicAddress>
        </gp:location-info>
        <gp:usage-rules/>
        <gp:method>GPS</gp:method>
      </gp:geopriv>
    </status>
    <timestamp>2026-11-23T07:30:00-05:00</timestamp>
  </tuple>
</presence>"#;

    #[test]
    fn a_circle_with_civic_address_is_read_completely() {
        let loc = read_pidf_lo(CIRCLE.as_bytes()).unwrap();
        let p = loc.position.unwrap();
        assert!((p.lat() - 4.6097).abs() < 1e-9 && (p.lon() + 74.0817).abs() < 1e-9);
        assert!((loc.uncertainty.unwrap().get() - 35.5).abs() < 1e-9);
        assert_eq!(loc.confidence_percent, Some(68));
        assert_eq!(loc.method.as_deref(), Some("GPS"));
        assert_eq!(
            loc.determined_at,
            Some(Timestamp::parse_rfc3339("2026-11-23T12:30:00Z").unwrap())
        );
        let civic = loc.civic.unwrap();
        assert_eq!(civic.road.as_deref(), Some("Calle 45"));
        assert_eq!(civic.house_number.as_deref(), Some("13-20"));
        assert_eq!(civic.district.as_deref(), Some("Chapinero"));
        assert_eq!(civic.detail.as_deref(), Some("Frente al parque; piso 3"));
        assert_eq!(civic.postal_code.as_deref(), Some("110231"));
    }

    #[test]
    fn a_point_has_no_uncertainty_and_a_circle_defaults_to_95_percent() {
        let point = CIRCLE
            .replace(
                r#"<gs:Circle srsName="urn:ogc:def:crs:EPSG::4326">"#,
                r#"<gml:Point srsName="urn:ogc:def:crs:EPSG::4326">"#,
            )
            .replace(
                r#"<gs:radius uom="urn:ogc:def:uom:EPSG::9001">35.5</gs:radius>"#,
                "",
            )
            .replace("</gs:Circle>", "</gml:Point>")
            .replace(r#"<con:confidence pdf="normal">68</con:confidence>"#, "");
        let loc = read_pidf_lo(point.as_bytes()).unwrap();
        assert!(loc.uncertainty.is_none());
        assert_eq!(loc.confidence_percent, None);
        let circle = CIRCLE.replace(r#"<con:confidence pdf="normal">68</con:confidence>"#, "");
        assert_eq!(
            read_pidf_lo(circle.as_bytes()).unwrap().confidence_percent,
            Some(95)
        );
    }

    #[test]
    fn bad_documents_say_what_is_wrong() {
        let start = CIRCLE.find("<ca:civicAddress").unwrap();
        let end = CIRCLE.find("</ca:civicAddress>").unwrap() + "</ca:civicAddress>".len();
        let geodetic_only = format!("{}{}", &CIRCLE[..start], &CIRCLE[end..]);
        let g = geodetic_only.as_str();
        let cases: Vec<(String, PidfError)> = vec![
            (
                g.replace("4.6097 -74.0817", "95.2 -74.0817"),
                PidfError::OutOfRange(String::new()),
            ),
            (
                g.replace("4.6097 -74.0817", "4.6097"),
                PidfError::BadPosition(String::new()),
            ),
            (
                g.replace("4.6097 -74.0817", "norte sur"),
                PidfError::BadPosition(String::new()),
            ),
            (
                g.replace(">35.5<", ">-3<"),
                PidfError::BadRadius(String::new()),
            ),
            (
                g.replace("EPSG::9001", "EPSG::9093"),
                PidfError::BadRadius(String::new()),
            ),
            (
                g.replace("EPSG::4326", "EPSG::3116"),
                PidfError::UnsupportedCrs(String::new()),
            ),
            (
                g.replace(">68<", ">250<"),
                PidfError::BadConfidence(String::new()),
            ),
            (g.replace("</presence>", ""), PidfError::Xml(String::new())),
            (
                g.replace("urn:ietf:params:xml:ns:pidf\"", "urn:example:other\""),
                PidfError::NotPidf(String::new()),
            ),
            (
                g.replace("gp:location-info", "gp:elsewhere"),
                PidfError::NoLocationInfo,
            ),
        ];
        for (doc, expected) in cases {
            let got = read_pidf_lo(doc.as_bytes()).unwrap_err();
            assert_eq!(
                std::mem::discriminant(&got),
                std::mem::discriminant(&expected),
                "{got}"
            );
        }
    }

    #[test]
    fn a_bad_shape_beside_a_good_civic_address_keeps_the_address() {
        // The shape is wrong but the civic address is usable: report the address.
        let doc = CIRCLE.replace("4.6097 -74.0817", "95.2 -74.0817");
        let loc = read_pidf_lo(doc.as_bytes()).unwrap();
        assert!(loc.position.is_none());
        assert_eq!(loc.civic.unwrap().road.as_deref(), Some("Calle 45"));
        let civic_only = CIRCLE.split("<gs:Circle").next().unwrap().to_owned()
            + &CIRCLE[CIRCLE.find("<con:confidence").unwrap()..];
        let loc = read_pidf_lo(civic_only.as_bytes()).unwrap();
        assert!(loc.position.is_none());
        assert_eq!(loc.civic.unwrap().city.as_deref(), Some("Bogotá"));
    }

    #[test]
    fn dtds_and_entities_are_refused() {
        let billion_laughs = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>
<presence xmlns="urn:ietf:params:xml:ns:pidf">&lol2;</presence>"#;
        assert_eq!(
            read_pidf_lo(billion_laughs.as_bytes()).unwrap_err(),
            PidfError::Dtd
        );
        let external = r#"<?xml version="1.0"?>
<!DOCTYPE presence [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<presence xmlns="urn:ietf:params:xml:ns:pidf">&xxe;</presence>"#;
        assert_eq!(
            read_pidf_lo(external.as_bytes()).unwrap_err(),
            PidfError::Dtd
        );
    }

    #[test]
    fn oversized_and_non_utf8_documents_are_refused() {
        let big = format!("{CIRCLE}{}", " ".repeat(MAX_PIDF_BYTES));
        assert!(matches!(
            read_pidf_lo(big.as_bytes()),
            Err(PidfError::TooLarge(_))
        ));
        assert_eq!(
            read_pidf_lo(b"<presence \xff/>").unwrap_err(),
            PidfError::NotUtf8
        );
        let deep = format!(
            r#"<presence xmlns="urn:ietf:params:xml:ns:pidf">{}</presence>"#,
            "<a/>".repeat(5000)
        );
        assert!(matches!(
            read_pidf_lo(deep.as_bytes()),
            Err(PidfError::Xml(_))
        ));
    }

    #[test]
    fn unsupported_shapes_are_named() {
        let polygon = CIRCLE
            .replace("<gs:Circle", "<gml:Polygon")
            .replace("</gs:Circle>", "</gml:Polygon>");
        let no_civic = polygon.split("<ca:civicAddress").next().unwrap().to_owned()
            + "</gp:location-info></gp:geopriv></status></tuple></presence>";
        assert_eq!(
            read_pidf_lo(no_civic.as_bytes()).unwrap_err(),
            PidfError::UnsupportedShape("Polygon".into())
        );
    }
}
