//! The graph file: a compact, versioned little-endian binary format.
//!
//! ```text
//! offset  size  content
//! 0       8     magic "RGLROUTE"
//! 8       4     format version (u32, currently 1)
//! 12      4     reserved, 0
//! 16      8     payload length in bytes (u64)
//! 24      4     CRC-32 (IEEE) of the payload
//! 28      4     reserved, 0
//! 32      …     payload: arrays in a fixed order, each as a u64 element count then the
//!               elements (coordinates as i32 in 10⁻⁷ degrees, lengths in centimetres)
//! ```
//!
//! Loading checks the magic number, the version, the length and the checksum, then decodes
//! every array with bounds checks and finally runs [`RoadGraph::check_invariants`], so a
//! foreign, truncated or corrupt file is an error, never a panic. Derived indexes (edge
//! tails, hierarchy down-lists) are rebuilt on load rather than stored.

use maps::GeoPoint;

use crate::class::RoadClass;
use crate::error::GraphFileError;
use crate::graph::{ImportFacts, RoadGraph};

const MAGIC: &[u8; 8] = b"RGLROUTE";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
const HEADER: usize = 32;

/// Converts degrees to the stored fixed point.
#[allow(clippy::cast_possible_truncation)]
fn fixed(degrees: f64) -> i32 {
    (degrees * 1e7).round() as i32
}

/// Converts the stored fixed point to degrees (the same expression as at import, so a
/// loaded graph equals the graph that was saved).
pub(crate) fn degrees(fixed: i32) -> f64 {
    f64::from(fixed) * 1e-7
}

struct Writer(Vec<u8>);

impl Writer {
    fn count(&mut self, n: usize) {
        self.0.extend_from_slice(&(n as u64).to_le_bytes());
    }
    fn u32s(&mut self, v: &[u32]) {
        self.count(v.len());
        for x in v {
            self.0.extend_from_slice(&x.to_le_bytes());
        }
    }
    fn i32s(&mut self, v: impl ExactSizeIterator<Item = i32>) {
        self.count(v.len());
        for x in v {
            self.0.extend_from_slice(&x.to_le_bytes());
        }
    }
    fn i64s(&mut self, v: &[i64]) {
        self.count(v.len());
        for x in v {
            self.0.extend_from_slice(&x.to_le_bytes());
        }
    }
    fn u8s(&mut self, v: impl ExactSizeIterator<Item = u8>) {
        self.count(v.len());
        self.0.extend(v);
    }
    fn points(&mut self, v: &[GeoPoint]) {
        self.i32s(v.iter().map(|p| fixed(p.lat())));
        self.i32s(v.iter().map(|p| fixed(p.lon())));
    }
    fn strings(&mut self, v: &[String]) {
        self.count(v.len());
        for s in v {
            self.count(s.len());
            self.0.extend_from_slice(s.as_bytes());
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

fn corrupt(what: &str) -> GraphFileError {
    GraphFileError::Corrupt(what.to_owned())
}

impl Reader<'_> {
    fn take(&mut self, n: usize, what: &str) -> Result<&[u8], GraphFileError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| corrupt(&format!("{what} runs past the end of the payload")))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }
    fn count(&mut self, element: usize, what: &str) -> Result<usize, GraphFileError> {
        let raw = self.take(8, what)?;
        let n = u64::from_le_bytes(raw.try_into().map_err(|_| corrupt(what))?);
        let n = usize::try_from(n).map_err(|_| corrupt(what))?;
        if n.saturating_mul(element) > self.bytes.len() - self.at {
            return Err(corrupt(&format!(
                "{what} claims {n} entries, more than the file holds"
            )));
        }
        Ok(n)
    }
    fn u32s(&mut self, what: &str) -> Result<Vec<u32>, GraphFileError> {
        let n = self.count(4, what)?;
        let raw = self.take(n * 4, what)?;
        Ok(raw
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
    fn i32s(&mut self, what: &str) -> Result<Vec<i32>, GraphFileError> {
        let n = self.count(4, what)?;
        let raw = self.take(n * 4, what)?;
        Ok(raw
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
    fn i64s(&mut self, what: &str) -> Result<Vec<i64>, GraphFileError> {
        let n = self.count(8, what)?;
        let raw = self.take(n * 8, what)?;
        Ok(raw
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect())
    }
    fn u8s(&mut self, what: &str) -> Result<Vec<u8>, GraphFileError> {
        let n = self.count(1, what)?;
        Ok(self.take(n, what)?.to_vec())
    }
    fn points(&mut self, what: &str) -> Result<Vec<GeoPoint>, GraphFileError> {
        let lat = self.i32s(what)?;
        let lon = self.i32s(what)?;
        if lat.len() != lon.len() {
            return Err(corrupt(&format!(
                "{what}: latitude and longitude counts differ"
            )));
        }
        lat.iter()
            .zip(&lon)
            .map(|(&la, &lo)| {
                GeoPoint::new(degrees(lo), degrees(la))
                    .map_err(|e| corrupt(&format!("{what}: {e}")))
            })
            .collect()
    }
    fn strings(&mut self, what: &str) -> Result<Vec<String>, GraphFileError> {
        let n = self.count(8, what)?;
        (0..n)
            .map(|_| {
                let len = self.count(1, what)?;
                let raw = self.take(len, what)?;
                String::from_utf8(raw.to_vec())
                    .map_err(|_| corrupt(&format!("{what}: a name is not UTF-8")))
            })
            .collect()
    }
}

impl RoadGraph {
    /// Serialises the graph (see the [module docs](crate::format) for the layout).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer(Vec::new());
        w.points(&self.node_point);
        w.i64s(&self.node_osm);
        w.u32s(&self.piece_first);
        w.points(&self.points);
        w.u32s(&self.piece_name);
        w.i64s(&self.piece_way);
        w.strings(&self.names);
        w.u32s(&self.arc_tail);
        w.u32s(&self.arc_head);
        w.u32s(&self.arc_piece);
        w.u32s(&self.arc_length_cm);
        #[allow(clippy::cast_possible_truncation)]
        w.u8s(self.arc_class.iter().map(|c| c.index() as u8));
        w.u8s(self.arc_maxspeed.iter().copied());
        w.u8s(self.arc_flags.iter().copied());
        w.u32s(&self.arc_twin);
        w.u32s(&self.arc_target);
        w.u32s(&self.rnode_base);
        w.u32s(&self.edge_first);
        w.u32s(&self.edge_arc);
        w.u32s(&self.cch.up_first);
        w.u32s(&self.cch.up_head);
        w.u32s(&[
            self.import.turn_restrictions,
            self.import.dropped_nodes,
            self.import.dropped_arcs,
        ]);
        w.0.extend_from_slice(&self.import.dropped_km.to_le_bytes());
        let payload = w.0;
        let mut out = Vec::with_capacity(HEADER + payload.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&payload);
        out
    }

    /// Loads a graph written by [`RoadGraph::to_bytes`].
    #[allow(clippy::too_many_lines)] // one straight list of sections
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, GraphFileError> {
        if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
            return Err(GraphFileError::NotAGraphFile);
        }
        let header = bytes.get(..HEADER).ok_or(GraphFileError::Truncated {
            expected: HEADER as u64,
            found: bytes.len() as u64,
        })?;
        let word = |at: usize| {
            u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
        };
        let version = word(8);
        if version != FORMAT_VERSION {
            return Err(GraphFileError::UnsupportedVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let length = u64::from(word(16)) | (u64::from(word(20)) << 32);
        let expected = (HEADER as u64).saturating_add(length);
        if (bytes.len() as u64) < expected {
            return Err(GraphFileError::Truncated {
                expected,
                found: bytes.len() as u64,
            });
        }
        if (bytes.len() as u64) > expected {
            return Err(GraphFileError::Corrupt(format!(
                "{} bytes after the end of the graph",
                bytes.len() as u64 - expected
            )));
        }
        let payload = &bytes[HEADER..];
        let stored = word(24);
        let computed = crc32fast::hash(payload);
        if stored != computed {
            return Err(GraphFileError::ChecksumMismatch { stored, computed });
        }
        let mut r = Reader {
            bytes: payload,
            at: 0,
        };
        let node_point = r.points("nodes")?;
        let node_osm = r.i64s("node ids")?;
        let piece_first = r.u32s("piece offsets")?;
        let points = r.points("geometry")?;
        let piece_name = r.u32s("piece names")?;
        let piece_way = r.i64s("piece ways")?;
        let names = r.strings("street names")?;
        let arc_tail = r.u32s("arc tails")?;
        let arc_head = r.u32s("arc heads")?;
        let arc_piece = r.u32s("arc pieces")?;
        let arc_length_cm = r.u32s("arc lengths")?;
        let arc_class = r
            .u8s("arc classes")?
            .into_iter()
            .map(|c| {
                RoadClass::from_index(usize::from(c)).ok_or_else(|| corrupt("unknown road class"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let arc_maxspeed = r.u8s("arc speed limits")?;
        let arc_flags = r.u8s("arc flags")?;
        let arc_twin = r.u32s("arc twins")?;
        let arc_target = r.u32s("arc targets")?;
        let rnode_base = r.u32s("routing nodes")?;
        let edge_first = r.u32s("edge offsets")?;
        let edge_arc = r.u32s("edges")?;
        let up_first = r.u32s("hierarchy offsets")?;
        let up_head = r.u32s("hierarchy arcs")?;
        let facts = r.u32s("import facts")?;
        let [turn_restrictions, dropped_nodes, dropped_arcs] = facts[..] else {
            return Err(corrupt("import facts"));
        };
        let dropped_km = f64::from_le_bytes(
            r.take(8, "import facts")?
                .try_into()
                .map_err(|_| corrupt("import facts"))?,
        );
        if r.at != payload.len() {
            return Err(corrupt("unexpected data after the last section"));
        }
        let mut graph = RoadGraph {
            node_point,
            node_osm,
            piece_first,
            points,
            piece_name,
            piece_way,
            names,
            arc_tail,
            arc_head,
            arc_piece,
            arc_length_cm,
            arc_class,
            arc_maxspeed,
            arc_flags,
            arc_twin,
            arc_target,
            rnode_base,
            edge_first,
            edge_arc,
            edge_tail: Vec::new(),
            in_first: Vec::new(),
            in_edge: Vec::new(),
            arc_edge_first: Vec::new(),
            arc_edges: Vec::new(),
            cch: crate::cch::CchTopology {
                up_first,
                up_head,
                ..Default::default()
            },
            import: ImportFacts {
                turn_restrictions,
                dropped_nodes,
                dropped_arcs,
                dropped_km,
            },
        };
        // Everything the derived indexes index with must be in range first.
        graph.check_invariants().map_err(GraphFileError::Corrupt)?;
        graph.derive();
        let covered = graph
            .cch
            .edges_covered(|e| graph.edge_tail[e] == graph.edge_head(e));
        if !covered {
            return Err(corrupt("an edge is missing from the hierarchy"));
        }
        Ok(graph)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::tests::{build_plain, crossing};

    fn sample() -> Vec<u8> {
        build_plain(&crossing(&[])).to_bytes()
    }

    #[test]
    fn a_saved_graph_loads_back_identically() {
        let graph = build_plain(&crossing(&[]));
        let bytes = graph.to_bytes();
        let back = RoadGraph::from_bytes(&bytes).unwrap();
        assert_eq!(back.to_bytes(), bytes);
        assert_eq!(back.node_point, graph.node_point);
        assert_eq!(back.points, graph.points);
        assert_eq!(back.cch.edge_cch, graph.cch.edge_cch);
        assert_eq!(back.summary(), graph.summary());
    }

    #[test]
    fn foreign_bytes_are_not_a_graph_file() {
        assert_eq!(
            RoadGraph::from_bytes(b"").unwrap_err(),
            GraphFileError::NotAGraphFile
        );
        assert_eq!(
            RoadGraph::from_bytes(b"PK\x03\x04 a zip file").unwrap_err(),
            GraphFileError::NotAGraphFile
        );
        let pbf_start = [0u8, 0, 0, 13, 10, 9, b'O', b'S', b'M'];
        assert_eq!(
            RoadGraph::from_bytes(&pbf_start).unwrap_err(),
            GraphFileError::NotAGraphFile
        );
    }

    #[test]
    fn every_truncation_is_reported_as_truncated() {
        let bytes = sample();
        for cut in [8, 20, 31, 32, 33, bytes.len() / 2, bytes.len() - 1] {
            let err = RoadGraph::from_bytes(&bytes[..cut]).unwrap_err();
            assert!(
                matches!(err, GraphFileError::Truncated { .. }),
                "cut at {cut}: {err}"
            );
        }
    }

    #[test]
    fn a_flipped_bit_fails_the_checksum() {
        let mut bytes = sample();
        let at = bytes.len() - 40;
        bytes[at] ^= 0x10;
        assert!(matches!(
            RoadGraph::from_bytes(&bytes),
            Err(GraphFileError::ChecksumMismatch { .. })
        ));
    }

    #[test]
    fn another_version_is_refused_with_a_hint() {
        let mut bytes = sample();
        bytes[8] = 99;
        let err = RoadGraph::from_bytes(&bytes).unwrap_err();
        assert_eq!(
            err,
            GraphFileError::UnsupportedVersion {
                found: 99,
                supported: FORMAT_VERSION
            }
        );
        assert!(err.to_string().contains("regula osm import"), "{err}");
    }

    #[test]
    fn consistent_checksum_with_inconsistent_content_is_corrupt() {
        // Point an arc at a node that does not exist, then fix the checksum.
        let graph = build_plain(&crossing(&[]));
        let mut broken = graph.clone();
        broken.arc_head[0] = 1_000_000;
        let bytes = broken.to_bytes();
        let err = RoadGraph::from_bytes(&bytes).unwrap_err();
        assert!(matches!(err, GraphFileError::Corrupt(_)), "{err}");
        // A hierarchy that is not chordal.
        let mut broken = graph;
        let last = broken.cch.up_head.len() - 1;
        broken.cch.up_head.truncate(last);
        let n = broken.cch.up_first.len();
        broken.cch.up_first[n - 1] -= 1;
        let err = RoadGraph::from_bytes(&broken.to_bytes()).unwrap_err();
        assert!(matches!(err, GraphFileError::Corrupt(_)), "{err}");
        // Trailing garbage.
        let mut bytes = sample();
        bytes.push(0);
        assert!(matches!(
            RoadGraph::from_bytes(&bytes),
            Err(GraphFileError::Corrupt(_))
        ));
    }
}
