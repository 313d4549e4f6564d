//! Typed errors. Every message says what was wrong and, where it helps, what to do.

use maps::{GeoPoint, Meters};

/// Why a PBF import failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ImportError {
    /// Zero bytes.
    #[error("the file is empty (expected an OpenStreetMap PBF extract, e.g. bogota.osm.pbf)")]
    EmptyFile,
    /// The bytes do not start like an OpenStreetMap PBF file.
    #[error(
        "not an OpenStreetMap PBF file: {0} (XML .osm files and other formats are not supported; convert with `osmium cat in.osm -o out.osm.pbf`)"
    )]
    NotPbf(String),
    /// The file ends in the middle of a block.
    #[error(
        "the PBF file is truncated: the block starting at byte {offset} is incomplete (was the download interrupted?)"
    )]
    Truncated {
        /// Byte offset of the incomplete block.
        offset: usize,
    },
    /// A block could not be decoded.
    #[error("the PBF file is corrupt: {0}")]
    Corrupt(String),
    /// Nothing drivable (in the bounding box, if one was given).
    #[error("no drivable roads{}; check the extract (and the bounding box: min_lon,min_lat,max_lon,max_lat)", bbox.as_ref().map_or_else(|| " in the file".to_owned(), |b| format!(" inside the bounding box {b}")))]
    NoRoads {
        /// The bounding box given, if any.
        bbox: Option<String>,
    },
    /// A bounding box whose minimum is not below its maximum.
    #[error("invalid bounding box {0}: expected min_lon,min_lat,max_lon,max_lat with min < max")]
    InvalidBoundingBox(String),
}

/// Why a graph file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphFileError {
    /// Does not start with the magic number.
    #[error(
        "not a Regula routing graph (wrong magic number); build one with `regula osm import --pbf FILE --out GRAPH`"
    )]
    NotAGraphFile,
    /// Written by another version of the format.
    #[error(
        "routing graph format version {found} is not supported (this build reads version {supported}); rebuild it with `regula osm import`"
    )]
    UnsupportedVersion {
        /// The file's version.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// Shorter than its header says.
    #[error("the routing graph file is truncated: {found} bytes, expected {expected}")]
    Truncated {
        /// Bytes expected.
        expected: u64,
        /// Bytes present.
        found: u64,
    },
    /// The checksum does not match the content.
    #[error(
        "the routing graph file is corrupt: checksum mismatch (stored {stored:08x}, computed {computed:08x})"
    )]
    ChecksumMismatch {
        /// Stored CRC-32.
        stored: u32,
        /// CRC-32 of the content.
        computed: u32,
    },
    /// The checksum matches but the content is inconsistent.
    #[error("the routing graph file is corrupt: {0}")]
    Corrupt(String),
}

/// Why a query could not be answered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RoutingError {
    /// No drivable road within the snapping limit.
    #[error(
        "{point} is more than {max} from any drivable road (check lon,lat order and that the point is inside the graph's area)"
    )]
    TooFarFromRoad {
        /// The point given.
        point: GeoPoint,
        /// The snapping limit.
        max: Meters,
    },
    /// No path exists (cannot happen between snapped points of one strongly connected graph,
    /// but the type says it).
    #[error("no drivable path from {from} to {to}")]
    Unreachable {
        /// Start.
        from: GeoPoint,
        /// Destination.
        to: GeoPoint,
    },
    /// A query without any source.
    #[error("at least one source point is needed")]
    NoSources,
}

/// Why a profile file was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProfileError {
    /// TOML syntax or shape.
    #[error("invalid profile: {0}")]
    Syntax(String),
    /// A road class name that does not exist.
    #[error("invalid profile: {0}")]
    UnknownRoadClass(#[from] crate::class::UnknownRoadClass),
    /// A class given twice, or not at all.
    #[error("invalid profile: {0}")]
    Coverage(String),
    /// A factor or speed that is negative, zero, not finite or implausible.
    #[error("invalid profile: {what} is {value}; {expected}")]
    OutOfRange {
        /// Where.
        what: String,
        /// The value given.
        value: f64,
        /// What is allowed.
        expected: &'static str,
    },
    /// A curve with the wrong number of buckets.
    #[error(
        "invalid profile: {what} has {found} values, expected {expected} (24 h / bucket_minutes)"
    )]
    WrongLength {
        /// Which curve.
        what: String,
        /// Values given.
        found: usize,
        /// Values expected.
        expected: usize,
    },
}
