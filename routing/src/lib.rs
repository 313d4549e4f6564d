//! Routing for Regula: an OpenStreetMap road graph with congestion-aware ("velocidad
//! trancón") travel times, 30-minute catchments, ETAs from many ambulances to one incident,
//! routes with turn-by-turn steps in Spanish, snapping of points to roads, and live speeds
//! from ambulance GPS.
//!
//! Pure and CPU-bound: no tokio, no clock, no file I/O. The caller hands in bytes (a PBF
//! extract, a graph file, a profile's text) and departure times; the shell runs queries off
//! the async runtime.
//!
//! # Layout
//! - `osm` (private): PBF bytes → drivable ways, one-way rules, speed limits, names, via-node
//!   turn restrictions. [`build`]: ways → pieces → arcs; forbidden turns at split via nodes;
//!   the routing graph; its largest strongly connected part; nested-dissection order;
//!   contraction.
//! - [`graph`]: [`RoadGraph`], its terms (node, piece, arc, routing node, edge, rank) and
//!   invariants; [`mod@format`]: the versioned, checksummed graph file.
//! - `order` (private): peeling and inertial-flow nested dissection. `cch` (private): the
//!   customizable contraction hierarchy — topology, customization, partial
//!   re-customization, elimination-tree searches, PHAST sweeps, shortcut unpacking.
//! - [`profile`]: the travel-time model and the embedded Bogotá profile
//!   (`profiles/bogota.toml`, calibrated to the Secretaría de Movilidad's 22.8–25 km/h peak
//!   and ~34 km/h off-peak averages; Colombia's 50 km/h urban limit).
//! - [`router`]: [`Router`] — [`Router::snap`], [`Router::catchment`],
//!   [`Router::catchments`], [`Router::coverage`], [`Router::etas_to`],
//!   [`Router::times_from`], [`Router::route`]; [`live`]: map matching of GPS fixes and
//!   blending of live speeds; [`steps`]: Spanish instructions; [`mod@reference`]: plain
//!   Dijkstra.
//!
//! # Model
//! Routing runs on a node-based graph of intersections in which only the *via* nodes of turn
//! restrictions are split, one routing node per arriving arc with edges for the permitted
//! turns only, so `no_*` and `only_*` restrictions hold exactly; elsewhere every turn is
//! permitted, U-turns included, at no cost. Travel times are integer milliseconds. Queries
//! snap arbitrary points to the nearest road (error beyond
//! [`RouterOptions::max_snap_distance`]); a point on a two-way street may leave and be
//! reached in either direction.
//!
//! # Invariants
//! - [`RoadGraph::check_invariants`] holds after import and after loading a file: indices
//!   in range, geometry joins arc ends, every arc leads to a routing node at its head and
//!   its edges leave from routing nodes at its tail, the hierarchy is chordal and covers
//!   every edge.
//! - Every kept position can reach every other (largest strongly connected part), unless
//!   [`ImportOptions::keep_all_components`] was asked for.
//! - Fast queries return exactly the reference Dijkstra's times (differential tests).
//! - Graph indices never leave the crate; [`live::RoadSegment`] is opaque.
//!
//! Map data © OpenStreetMap contributors, ODbL ([`maps::geojson::OSM_ATTRIBUTION`]).

pub mod build;
mod cch;
pub mod class;
pub mod error;
pub mod format;
pub mod graph;
pub mod live;
mod order;
mod osm;
pub mod profile;
pub mod reference;
pub mod router;
mod snap;
pub mod steps;
#[cfg(test)]
mod tests_real;

pub use crate::build::{ImportBox, ImportOptions, ImportReport, ImportStage};
pub use crate::class::RoadClass;
pub use crate::error::{GraphFileError, ImportError, ProfileError, RoutingError};
pub use crate::graph::{GraphSummary, RoadGraph};
pub use crate::live::{LiveSettings, LiveUpdate, MatchError, RoadSegment, SpeedObservation};
pub use crate::profile::{Departure, Profile, Vehicle};
pub use crate::router::{
    Catchment, CellTime, Coverage, Covered, Reached, Route, Router, RouterOptions, Snap,
};
pub use crate::steps::{Maneuver, Step};

use maps::{GeoPoint, Meters, TravelTime};

/// Progress of an import, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportProgress {
    /// The stage.
    pub stage: ImportStage,
    /// Units done in this stage (blocks while reading; 0 or 1 otherwise).
    pub done: usize,
    /// Units in this stage.
    pub total: usize,
}

impl RoadGraph {
    /// Imports an OpenStreetMap PBF extract (bytes read by the caller) into a prepared graph.
    pub fn from_pbf(
        bytes: &[u8],
        options: &ImportOptions,
        progress: &(dyn Fn(ImportProgress) + Sync),
    ) -> Result<(Self, ImportReport), ImportError> {
        let raw = osm::read_network(bytes, &|done, total| {
            progress(ImportProgress {
                stage: ImportStage::Reading,
                done,
                total,
            });
        })?;
        if raw.ways.is_empty() {
            return Err(ImportError::NoRoads {
                bbox: options.bbox.map(|b| b.to_string()),
            });
        }
        build::build(&raw, options, &|stage| {
            progress(ImportProgress {
                stage,
                done: 0,
                total: 1,
            });
        })
    }
}

/// One directed arc with its travel time, for exports and comparisons with other engines.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct EdgeTime {
    /// OSM id of the start node.
    pub from_node: i64,
    /// OSM id of the end node.
    pub to_node: i64,
    /// Start.
    pub from: GeoPoint,
    /// End.
    pub to: GeoPoint,
    /// Length.
    pub length: Meters,
    /// Road class.
    pub class: RoadClass,
    /// Travel time along it.
    pub time: TravelTime,
}

/// City-wide averages implied by the profile at a departure.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct AverageSpeed {
    /// Σ length × speed / Σ length over all arcs, km/h.
    pub length_weighted_kmh: f64,
    /// Σ length / Σ time over all arcs (space-mean), km/h.
    pub space_mean_kmh: f64,
}

impl Router {
    /// Every directed arc with its travel time at a departure.
    pub fn edge_times(&self, departure: impl Into<Departure>) -> Vec<EdgeTime> {
        let metric = self.metric(departure.into());
        let graph = self.graph_ref();
        (0..graph.arc_count())
            .map(|a| {
                let (t, h) = (graph.arc_tail[a] as usize, graph.arc_head[a] as usize);
                EdgeTime {
                    from_node: graph.node_osm[t],
                    to_node: graph.node_osm[h],
                    from: graph.node_point[t],
                    to: graph.node_point[h],
                    length: graph.arc_length(graph::index(a)),
                    class: graph.arc_class[a],
                    time: TravelTime::from_millis(u64::from(metric.arc_ms[a])),
                }
            })
            .collect()
    }

    /// The average speeds the profile (and live speeds) imply over the whole graph.
    pub fn average_speed(&self, departure: impl Into<Departure>) -> AverageSpeed {
        let metric = self.metric(departure.into());
        let graph = self.graph_ref();
        let (mut length, mut weighted, mut time) = (0.0, 0.0, 0.0);
        for a in 0..graph.arc_count() {
            let meters = f64::from(graph.arc_length_cm[a]) / 100.0;
            let seconds = f64::from(metric.arc_ms[a]) / 1000.0;
            if meters <= 0.0 {
                continue;
            }
            length += meters;
            weighted += meters * (meters / seconds * 3.6);
            time += seconds;
        }
        AverageSpeed {
            length_weighted_kmh: weighted / length,
            space_mean_kmh: length / time * 3.6,
        }
    }
}
