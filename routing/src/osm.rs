//! Reading OpenStreetMap PBF bytes into the drivable network: ways an emergency vehicle may
//! use, their one-way rules, speed limits and names, turn restrictions, and the coordinates
//! of the nodes they use.
//!
//! The bytes are handed in by the caller (this crate does no file I/O). The PBF framing is
//! checked here before `osmpbfreader` sees it, so that an empty, truncated or foreign file is
//! a clear [`ImportError`] instead of a panic inside the reader.

use std::panic::{AssertUnwindSafe, catch_unwind};

use osmpbfreader::{OsmId, OsmObj, OsmPbfReader};
use rayon::prelude::*;

use crate::class::RoadClass;
use crate::error::ImportError;

/// Which way(s) traffic may travel along a way, relative to its node order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Both directions.
    Both,
    /// Only in node order.
    Forward,
    /// Only against node order (`oneway=-1`).
    Backward,
}

/// A drivable way, already interpreted.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawWay {
    pub(crate) id: i64,
    pub(crate) nodes: Vec<i64>,
    pub(crate) class: RoadClass,
    pub(crate) direction: Direction,
    /// Speed limit in node order, km/h (`maxspeed` or `maxspeed:forward`).
    pub(crate) maxspeed_forward: Option<f64>,
    /// Speed limit against node order, km/h (`maxspeed` or `maxspeed:backward`).
    pub(crate) maxspeed_backward: Option<f64>,
    /// `name`, else `ref`.
    pub(crate) name: Option<String>,
    /// `junction=roundabout` or `circular`.
    pub(crate) roundabout: bool,
}

/// Whether a restriction forbids one turn or mandates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RestrictionKind {
    /// `no_*`: the turn from → to is forbidden.
    Prohibitive,
    /// `only_*`: from `from`, the only allowed turn at `via` is onto `to`.
    Mandatory,
}

/// A turn restriction on a via node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawRestriction {
    pub(crate) from_way: i64,
    pub(crate) via_node: i64,
    pub(crate) to_way: i64,
    pub(crate) kind: RestrictionKind,
}

/// What was read from the file, before the graph is built.
#[derive(Debug, Clone, Default)]
pub(crate) struct RawNetwork {
    /// `(osm id, latitude, longitude)` in 10⁻⁷ degrees, sorted by id, without duplicates.
    pub(crate) nodes: Vec<(i64, i32, i32)>,
    pub(crate) ways: Vec<RawWay>,
    pub(crate) restrictions: Vec<RawRestriction>,
    /// Turn restrictions that were skipped (via ways, conditional or for other vehicles).
    pub(crate) restrictions_unsupported: usize,
}

impl RawNetwork {
    /// The coordinates of an OSM node, `(lat, lon)` in 10⁻⁷ degrees.
    pub(crate) fn node(&self, id: i64) -> Option<(i32, i32)> {
        self.nodes
            .binary_search_by_key(&id, |&(n, _, _)| n)
            .ok()
            .map(|i| (self.nodes[i].1, self.nodes[i].2))
    }
}

/// Largest protobuf header the PBF specification allows (64 KiB).
const MAX_HEADER: usize = 64 * 1024;
/// Largest blob the PBF specification allows (32 MiB).
const MAX_BLOB: usize = 32 * 1024 * 1024;

/// Checks the PBF framing (`[u32 length][BlobHeader][Blob]…`) over the whole input and
/// returns the number of data blocks. The first block must be an `OSMHeader`.
fn check_framing(bytes: &[u8]) -> Result<usize, ImportError> {
    if bytes.is_empty() {
        return Err(ImportError::EmptyFile);
    }
    let mut at = 0usize;
    let mut blocks = 0usize;
    while at < bytes.len() {
        let Some(len_bytes) = bytes.get(at..at + 4) else {
            return Err(ImportError::Truncated { offset: at });
        };
        let header_len =
            u32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]) as usize;
        if header_len == 0 || header_len > MAX_HEADER {
            return Err(not_pbf_or_corrupt(
                blocks,
                at,
                "block header length out of range",
            ));
        }
        let header_start = at + 4;
        let Some(header) = bytes.get(header_start..header_start + header_len) else {
            return Err(ImportError::Truncated { offset: at });
        };
        let (kind, data_size) = parse_blob_header(header)
            .ok_or_else(|| not_pbf_or_corrupt(blocks, at, "unreadable block header"))?;
        if blocks == 0 && kind != "OSMHeader" {
            return Err(ImportError::NotPbf(format!(
                "the first block is {kind:?}, not \"OSMHeader\""
            )));
        }
        if data_size > MAX_BLOB {
            return Err(not_pbf_or_corrupt(blocks, at, "block larger than 32 MiB"));
        }
        let data_start = header_start + header_len;
        if bytes.len() < data_start + data_size {
            return Err(ImportError::Truncated { offset: at });
        }
        at = data_start + data_size;
        blocks += 1;
    }
    Ok(blocks)
}

fn not_pbf_or_corrupt(blocks_before: usize, offset: usize, what: &str) -> ImportError {
    if blocks_before == 0 {
        ImportError::NotPbf(format!("{what} at the start of the file"))
    } else {
        ImportError::Corrupt(format!("{what} at byte {offset}"))
    }
}

/// Reads a varint; returns the value and the bytes used.
fn varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Minimal reading of a `BlobHeader` message: field 1 (`type`, string) and field 3
/// (`datasize`, int32). Other fields are skipped by wire type.
fn parse_blob_header(mut bytes: &[u8]) -> Option<(String, usize)> {
    let mut kind = None;
    let mut size = None;
    while !bytes.is_empty() {
        let (key, used) = varint(bytes)?;
        bytes = &bytes[used..];
        let (field, wire) = (key >> 3, key & 7);
        match wire {
            0 => {
                let (value, used) = varint(bytes)?;
                bytes = &bytes[used..];
                if field == 3 {
                    size = Some(usize::try_from(value).ok()?);
                }
            }
            2 => {
                let (len, used) = varint(bytes)?;
                let len = usize::try_from(len).ok()?;
                let end = used.checked_add(len)?;
                let value = bytes.get(used..end)?;
                if field == 1 {
                    kind = Some(String::from_utf8(value.to_vec()).ok()?);
                }
                bytes = &bytes[end..];
            }
            1 => bytes = bytes.get(8..)?,
            5 => bytes = bytes.get(4..)?,
            _ => return None,
        }
    }
    Some((kind?, size?))
}

/// What one data block contributes.
#[derive(Default)]
struct BlockContent {
    nodes: Vec<(i64, i32, i32)>,
    ways: Vec<RawWay>,
    restrictions: Vec<RawRestriction>,
    restrictions_unsupported: usize,
}

/// Reads the drivable network from PBF bytes. `progress` is called with `(blocks done,
/// blocks in all)` from worker threads.
pub(crate) fn read_network(
    bytes: &[u8],
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<RawNetwork, ImportError> {
    let total = check_framing(bytes)?;
    let mut reader = OsmPbfReader::new(std::io::Cursor::new(bytes));
    let blobs: Vec<_> = reader
        .blobs()
        .collect::<Result<_, _>>()
        .map_err(|e| ImportError::Corrupt(format!("cannot read a block: {e}")))?;
    let done = std::sync::atomic::AtomicUsize::new(1);
    let contents: Vec<BlockContent> = blobs
        .par_iter()
        .map(|blob| {
            let block = osmpbfreader::primitive_block_from_blob(blob)
                .map_err(|e| ImportError::Corrupt(format!("cannot decode a block: {e}")))?;
            // osmpbfreader indexes the block's string table without checking; a block whose
            // compressed data is intact but whose content is inconsistent would panic there.
            let content = catch_unwind(AssertUnwindSafe(|| block_content(&block)))
                .map_err(|_| ImportError::Corrupt("inconsistent data block".to_owned()))?;
            let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            progress(n, total);
            Ok(content)
        })
        .collect::<Result<_, ImportError>>()?;
    let mut network = RawNetwork::default();
    for c in contents {
        network.nodes.extend(c.nodes);
        network.ways.extend(c.ways);
        network.restrictions.extend(c.restrictions);
        network.restrictions_unsupported += c.restrictions_unsupported;
    }
    network.nodes.par_sort_unstable_by_key(|&(id, _, _)| id);
    network.nodes.dedup_by_key(|&mut (id, _, _)| id);
    network.ways.par_sort_unstable_by_key(|w| w.id);
    Ok(network)
}

fn block_content(block: &osmpbfreader::osmformat::PrimitiveBlock) -> BlockContent {
    let mut content = BlockContent::default();
    for obj in osmpbfreader::blocks::iter(block) {
        match obj {
            OsmObj::Node(n) => content
                .nodes
                .push((n.id.0, n.decimicro_lat, n.decimicro_lon)),
            OsmObj::Way(w) => {
                let tags = |k: &str| w.tags.get(k).map(AsRef::as_ref);
                if let Some(attrs) = way_attributes(&tags) {
                    content.ways.push(RawWay {
                        id: w.id.0,
                        nodes: w.nodes.iter().map(|n| n.0).collect(),
                        class: attrs.class,
                        direction: attrs.direction,
                        maxspeed_forward: attrs.maxspeed_forward,
                        maxspeed_backward: attrs.maxspeed_backward,
                        name: attrs.name,
                        roundabout: attrs.roundabout,
                    });
                }
            }
            OsmObj::Relation(r) => {
                let tags = |k: &str| r.tags.get(k).map(AsRef::as_ref);
                if tags("type") != Some("restriction") {
                    continue;
                }
                let members: Vec<(&str, OsmId)> =
                    r.refs.iter().map(|m| (m.role.as_str(), m.member)).collect();
                match restriction(&tags, &members) {
                    Some(Ok(rr)) => content.restrictions.push(rr),
                    Some(Err(())) => content.restrictions_unsupported += 1,
                    None => {}
                }
            }
        }
    }
    content
}

/// The interpretation of a way's tags.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WayAttributes {
    pub(crate) class: RoadClass,
    pub(crate) direction: Direction,
    pub(crate) maxspeed_forward: Option<f64>,
    pub(crate) maxspeed_backward: Option<f64>,
    pub(crate) name: Option<String>,
    pub(crate) roundabout: bool,
}

/// Whether an emergency vehicle may drive this way, and how. `None` for ways that are not
/// drivable roads (footways, cycleways, tracks, areas, private or closed roads, parking
/// aisles, reversible lanes).
pub(crate) fn way_attributes<'a>(tag: &dyn Fn(&str) -> Option<&'a str>) -> Option<WayAttributes> {
    let class = RoadClass::from_highway(tag("highway")?)?;
    if tag("area") == Some("yes") || tag("impassable") == Some("yes") {
        return None;
    }
    if class == RoadClass::Service
        && matches!(tag("service"), Some("parking_aisle" | "drive-through"))
    {
        return None;
    }
    if !access_allows(tag) {
        return None;
    }
    let roundabout = matches!(tag("junction"), Some("roundabout" | "circular"));
    let direction = match tag("oneway") {
        Some("yes" | "true" | "1") => Direction::Forward,
        Some("-1" | "reverse") => Direction::Backward,
        Some("no" | "false" | "0") => Direction::Both,
        Some("reversible" | "alternating") => return None,
        _ if roundabout || class.implies_oneway() => Direction::Forward,
        _ => Direction::Both,
    };
    let both = tag("maxspeed")
        .and_then(parse_maxspeed)
        .or_else(|| tag("maxspeed:type").and_then(parse_maxspeed))
        .or_else(|| tag("source:maxspeed").and_then(parse_maxspeed));
    let maxspeed_forward = tag("maxspeed:forward").and_then(parse_maxspeed).or(both);
    let maxspeed_backward = tag("maxspeed:backward").and_then(parse_maxspeed).or(both);
    let name = tag("name")
        .or_else(|| tag("ref"))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    Some(WayAttributes {
        class,
        direction,
        maxspeed_forward,
        maxspeed_backward,
        name,
        roundabout,
    })
}

/// Access for an emergency vehicle: an explicit `emergency=yes|designated` wins; otherwise
/// the most specific of `motorcar`, `motor_vehicle`, `vehicle`, `access` decides.
fn access_allows<'a>(tag: &dyn Fn(&str) -> Option<&'a str>) -> bool {
    if matches!(
        tag("emergency"),
        Some("yes" | "designated" | "permissive" | "destination")
    ) {
        return true;
    }
    let value = ["motorcar", "motor_vehicle", "vehicle", "access"]
        .into_iter()
        .find_map(tag);
    !matches!(
        value,
        Some("no" | "private" | "agricultural" | "forestry" | "agricultural;forestry" | "delivery")
    )
}

/// Speed limits of zones, `XX:zone` → km/h, for the countries of our fixtures and Colombia.
/// Unknown zones give `None` and the class default applies.
const ZONE_SPEEDS: [(&str, f64); 8] = [
    // Colombia: Ley 2251 de 2022 sets 50 km/h in urban areas.
    ("CO:urban", 50.0),
    ("PT:urban", 50.0),
    ("PT:rural", 90.0),
    ("PT:motorway", 120.0),
    ("PT:trunk", 100.0),
    ("FR:urban", 50.0),
    ("MC:urban", 50.0),
    ("BR:urban", 60.0),
];

/// Parses an OSM `maxspeed` value to km/h: `50`, `50 km/h`, `30 mph`, `CO:urban`,
/// `XX:zone30`, `XX:living_street`; the first of several `;`-separated values. `None`,
/// `signals`, `walk`, `variable` and anything unreadable give `None`.
pub(crate) fn parse_maxspeed(value: &str) -> Option<f64> {
    let value = value.split(';').next()?.trim();
    if let Some(&(_, kmh)) = ZONE_SPEEDS.iter().find(|(zone, _)| *zone == value) {
        return Some(kmh);
    }
    if let Some((_, zone)) = value.split_once(':') {
        let zone = zone.trim();
        if zone == "living_street" {
            return Some(20.0);
        }
        let digits = zone.strip_prefix("zone").map(|z| z.trim_start_matches(':'));
        return digits
            .and_then(|d| d.parse::<f64>().ok())
            .filter(|v| (5.0..=150.0).contains(v));
    }
    let (number, factor) = if let Some(n) = value.strip_suffix("mph") {
        (n, 1.609_344)
    } else if let Some(n) = value
        .strip_suffix("km/h")
        .or_else(|| value.strip_suffix("kmh"))
        .or_else(|| value.strip_suffix("kph"))
    {
        (n, 1.0)
    } else {
        (value, 1.0)
    };
    let kmh = number.trim().parse::<f64>().ok()? * factor;
    (kmh.is_finite() && (5.0..=200.0).contains(&kmh)).then_some(kmh)
}

/// Interprets a `type=restriction` relation: `None` if it does not concern cars at all,
/// `Some(Err(()))` if it does but cannot be represented (via ways, missing members, unknown
/// kind), `Some(Ok(_))` otherwise.
pub(crate) fn restriction<'a>(
    tag: &dyn Fn(&str) -> Option<&'a str>,
    members: &[(&str, OsmId)],
) -> Option<Result<RawRestriction, ()>> {
    let value = tag("restriction:motorcar").or_else(|| tag("restriction"))?;
    if let Some(except) = tag("except")
        && except
            .split(';')
            .any(|e| matches!(e.trim(), "motorcar" | "motor_vehicle" | "emergency"))
    {
        return None;
    }
    let kind = if value.starts_with("no_") {
        RestrictionKind::Prohibitive
    } else if value.starts_with("only_") {
        RestrictionKind::Mandatory
    } else {
        return Some(Err(()));
    };
    let mut from = None;
    let mut via = None;
    let mut to = None;
    for &(role, member) in members {
        let slot = match role {
            "from" => &mut from,
            "via" => &mut via,
            "to" => &mut to,
            _ => continue,
        };
        if slot.is_some() {
            return Some(Err(()));
        }
        *slot = Some(member);
    }
    match (from, via, to) {
        (Some(OsmId::Way(f)), Some(OsmId::Node(v)), Some(OsmId::Way(t))) => {
            Some(Ok(RawRestriction {
                from_way: f.0,
                via_node: v.0,
                to_way: t.0,
                kind,
            }))
        }
        _ => Some(Err(())),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> Option<WayAttributes> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|&(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        way_attributes(&|k| map.get(k).map(String::as_str))
    }

    #[test]
    fn maxspeed_values_in_the_wild_are_read() {
        assert_eq!(parse_maxspeed("50"), Some(50.0));
        assert_eq!(parse_maxspeed("50 km/h"), Some(50.0));
        assert_eq!(parse_maxspeed("60kmh"), Some(60.0));
        assert!((parse_maxspeed("30 mph").unwrap() - 48.28).abs() < 0.01);
        assert_eq!(parse_maxspeed("CO:urban"), Some(50.0));
        assert_eq!(parse_maxspeed("PT:rural"), Some(90.0));
        assert_eq!(parse_maxspeed("DE:zone30"), Some(30.0));
        assert_eq!(parse_maxspeed("DE:zone:30"), Some(30.0));
        assert_eq!(parse_maxspeed("CO:living_street"), Some(20.0));
        assert_eq!(parse_maxspeed("40;30"), Some(40.0));
        for bad in [
            "none", "signals", "walk", "", "fast", "XX:rural", "0", "-30", "NaN", "1e9",
        ] {
            assert_eq!(parse_maxspeed(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn oneway_tags_and_roundabouts_set_the_direction() {
        let d = |pairs: &[(&str, &str)]| attrs(pairs).unwrap().direction;
        assert_eq!(d(&[("highway", "residential")]), Direction::Both);
        assert_eq!(
            d(&[("highway", "residential"), ("oneway", "yes")]),
            Direction::Forward
        );
        assert_eq!(
            d(&[("highway", "primary"), ("oneway", "-1")]),
            Direction::Backward
        );
        assert_eq!(
            d(&[("highway", "primary"), ("junction", "roundabout")]),
            Direction::Forward
        );
        assert_eq!(d(&[("highway", "motorway")]), Direction::Forward);
        assert_eq!(
            d(&[("highway", "motorway"), ("oneway", "no")]),
            Direction::Both
        );
        assert!(attrs(&[("highway", "residential"), ("oneway", "reversible")]).is_none());
    }

    #[test]
    fn private_roads_are_excluded_unless_emergency_access_is_granted() {
        assert!(attrs(&[("highway", "service"), ("access", "private")]).is_none());
        assert!(attrs(&[("highway", "residential"), ("access", "no")]).is_none());
        assert!(
            attrs(&[
                ("highway", "service"),
                ("access", "no"),
                ("emergency", "yes")
            ])
            .is_some()
        );
        assert!(
            attrs(&[
                ("highway", "residential"),
                ("access", "no"),
                ("motor_vehicle", "yes")
            ])
            .is_some()
        );
        assert!(attrs(&[("highway", "residential"), ("access", "destination")]).is_some());
        assert!(attrs(&[("highway", "service"), ("service", "parking_aisle")]).is_none());
        assert!(attrs(&[("highway", "footway")]).is_none());
        assert!(attrs(&[("highway", "cycleway")]).is_none());
        assert!(attrs(&[("highway", "pedestrian"), ("area", "yes")]).is_none());
        assert!(attrs(&[("building", "yes")]).is_none());
    }

    #[test]
    fn names_fall_back_to_refs_and_directional_limits_override() {
        let a = attrs(&[
            ("highway", "trunk"),
            ("ref", "AK 45"),
            ("maxspeed", "60"),
            ("maxspeed:backward", "50"),
        ])
        .unwrap();
        assert_eq!(a.name.as_deref(), Some("AK 45"));
        assert_eq!(a.maxspeed_forward, Some(60.0));
        assert_eq!(a.maxspeed_backward, Some(50.0));
        let b = attrs(&[
            ("highway", "primary"),
            ("name", "Avenida Caracas"),
            ("ref", "AK 14"),
            ("source:maxspeed", "CO:urban"),
        ])
        .unwrap();
        assert_eq!(b.name.as_deref(), Some("Avenida Caracas"));
        assert_eq!(b.maxspeed_forward, Some(50.0));
    }

    #[test]
    fn restrictions_on_via_nodes_are_read_and_others_counted_as_unsupported() {
        use osmpbfreader::{NodeId, WayId};
        let tags = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(key, _)| *key == k).map(|&(_, v)| v)
        };
        let members = [
            ("from", OsmId::Way(WayId(1))),
            ("via", OsmId::Node(NodeId(2))),
            ("to", OsmId::Way(WayId(3))),
        ];
        let no_left = tags(&[("type", "restriction"), ("restriction", "no_left_turn")]);
        assert_eq!(
            restriction(&no_left, &members),
            Some(Ok(RawRestriction {
                from_way: 1,
                via_node: 2,
                to_way: 3,
                kind: RestrictionKind::Prohibitive
            }))
        );
        let only = tags(&[("type", "restriction"), ("restriction", "only_straight_on")]);
        assert_eq!(
            restriction(&only, &members).unwrap().unwrap().kind,
            RestrictionKind::Mandatory
        );
        let via_way = [
            ("from", OsmId::Way(WayId(1))),
            ("via", OsmId::Way(WayId(2))),
            ("to", OsmId::Way(WayId(3))),
        ];
        assert_eq!(restriction(&no_left, &via_way), Some(Err(())));
        let for_buses = tags(&[("type", "restriction"), ("restriction:hgv", "no_left_turn")]);
        assert_eq!(restriction(&for_buses, &members), None);
        let except = tags(&[
            ("type", "restriction"),
            ("restriction", "no_left_turn"),
            ("except", "psv;emergency"),
        ]);
        assert_eq!(restriction(&except, &members), None);
    }

    #[test]
    fn empty_truncated_and_foreign_bytes_are_clear_errors() {
        let noop = |_: usize, _: usize| {};
        assert!(matches!(
            read_network(&[], &noop),
            Err(ImportError::EmptyFile)
        ));
        assert!(matches!(
            read_network(b"<?xml version='1.0'?><osm></osm>", &noop),
            Err(ImportError::NotPbf(_))
        ));
        let real = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/data/roads/fixtures/sao_paulo_centro.osm.pbf"
        ))
        .expect("fixture sao_paulo_centro.osm.pbf is missing from ../shared/data/roads/fixtures");
        let cut = &real[..real.len() / 2];
        assert!(matches!(
            read_network(cut, &noop),
            Err(ImportError::Truncated { .. })
        ));
        assert!(matches!(
            read_network(&real[..3], &noop),
            Err(ImportError::Truncated { offset: 0 })
        ));
        // A header whose string field claims an absurd length.
        let mut absurd = vec![0u8, 0, 0, 12, 0x0a];
        absurd.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        absurd.push(0);
        assert!(matches!(
            read_network(&absurd, &noop),
            Err(ImportError::NotPbf(_))
        ));
        // Flip bytes inside the compressed data of the second block: zlib notices.
        let mut corrupt = real.clone();
        let middle = corrupt.len() / 2;
        for b in &mut corrupt[middle..middle + 64] {
            *b ^= 0x5a;
        }
        assert!(read_network(&corrupt, &noop).is_err());
    }
}
