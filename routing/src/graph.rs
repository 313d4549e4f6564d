//! The prepared road graph: intersections, directed road arcs with their geometry, the
//! routing graph the hierarchy is built on, and the metric-independent contraction
//! hierarchy over it.
//!
//! Terms used in this crate:
//! - **node**: an intersection, dead end or point where a way ends (an OSM node);
//! - **piece**: a stretch of one OSM way between two nodes, with its geometry;
//! - **arc**: a piece driven in one direction (a two-way piece gives two arcs, *twins*);
//! - **routing node**: what the hierarchy works on. A node without turn restrictions is one
//!   routing node; a node that is the *via* of a restriction is split into one routing node
//!   per arc entering it ("arrived at v by arc a"), so that restrictions hold exactly;
//! - **edge**: driving an arc from a routing node: from the routing node of its tail (or, at
//!   a split node, from each arrival copy whose turn onto the arc is permitted) to the arc's
//!   *target* routing node. Elsewhere every turn is permitted, U-turns included;
//! - **rank**: routing nodes are numbered in contraction order, so an index *is* a rank in the
//!   hierarchy (the private `cch` module).
//!
//! Indices are `u32` and never leave the crate.

use maps::{GeoPoint, Meters};

use crate::cch::CchTopology;
use crate::class::RoadClass;

/// "No such index".
pub(crate) const NONE: u32 = u32::MAX;

/// Arc flag: the arc is part of a roundabout.
pub(crate) const FLAG_ROUNDABOUT: u8 = 1;
/// Arc flag: the arc runs against the piece's geometry order.
pub(crate) const FLAG_REVERSED: u8 = 2;

/// The prepared road graph. Build it with [`RoadGraph::from_pbf`](crate::RoadGraph::from_pbf)
/// or load it with [`RoadGraph::from_bytes`](crate::RoadGraph::from_bytes).
#[derive(Clone)]
pub struct RoadGraph {
    // Nodes.
    pub(crate) node_point: Vec<GeoPoint>,
    pub(crate) node_osm: Vec<i64>,
    // Pieces: geometry in `points[piece_first[p]..piece_first[p + 1]]`, first and last points
    // are the piece's end nodes.
    pub(crate) piece_first: Vec<u32>,
    pub(crate) points: Vec<GeoPoint>,
    pub(crate) piece_name: Vec<u32>,
    /// The OSM way each piece belongs to.
    pub(crate) piece_way: Vec<i64>,
    pub(crate) names: Vec<String>,
    // Arcs, in rank order.
    pub(crate) arc_tail: Vec<u32>,
    pub(crate) arc_head: Vec<u32>,
    pub(crate) arc_piece: Vec<u32>,
    /// Length in centimetres.
    pub(crate) arc_length_cm: Vec<u32>,
    pub(crate) arc_class: Vec<RoadClass>,
    /// Speed limit in km/h, 0 when not tagged.
    pub(crate) arc_maxspeed: Vec<u8>,
    pub(crate) arc_flags: Vec<u8>,
    pub(crate) arc_twin: Vec<u32>,
    /// The routing node reached by driving each arc.
    pub(crate) arc_target: Vec<u32>,
    // Routing nodes, in rank order.
    /// The node each routing node stands for.
    pub(crate) rnode_base: Vec<u32>,
    /// Edges out of each routing node: `edge_arc[edge_first[r]..edge_first[r + 1]]` are the
    /// arcs driven; an edge's head is `arc_target[edge_arc[e]]`.
    pub(crate) edge_first: Vec<u32>,
    pub(crate) edge_arc: Vec<u32>,
    // Derived at build/load time (not stored in the file).
    pub(crate) edge_tail: Vec<u32>,
    /// Edges into each routing node: `in_edge[in_first[r]..in_first[r + 1]]`.
    pub(crate) in_first: Vec<u32>,
    pub(crate) in_edge: Vec<u32>,
    /// Edges of each arc: `arc_edges[arc_edge_first[a]..arc_edge_first[a + 1]]`.
    pub(crate) arc_edge_first: Vec<u32>,
    pub(crate) arc_edges: Vec<u32>,
    pub(crate) cch: CchTopology,
    pub(crate) import: ImportFacts,
}

/// Facts about the import kept with the graph.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct ImportFacts {
    pub(crate) turn_restrictions: u32,
    pub(crate) dropped_nodes: u32,
    pub(crate) dropped_arcs: u32,
    pub(crate) dropped_km: f64,
}

impl std::fmt::Debug for RoadGraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoadGraph")
            .field("nodes", &self.node_count())
            .field("arcs", &self.arc_count())
            .field("routing_nodes", &self.rnode_base.len())
            .field("routing_edges", &self.edge_arc.len())
            .field("shortcuts", &self.cch.arc_count())
            .finish_non_exhaustive()
    }
}

/// Size and content of a graph, for summaries.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct GraphSummary {
    /// Intersections, dead ends and way ends.
    pub nodes: usize,
    /// Directed road arcs (a two-way street between two intersections counts twice).
    pub edges: usize,
    /// Routing nodes (nodes, with via nodes of turn restrictions split per arriving arc).
    pub routing_nodes: usize,
    /// Routing edges (arcs, repeated per permitted arrival at split nodes).
    pub routing_edges: usize,
    /// Arcs of the contraction hierarchy (edges plus shortcuts, undirected).
    pub hierarchy_arcs: usize,
    /// Kilometres of road (each two-way street counted once).
    pub road_km: f64,
    /// Turn restrictions applied at import.
    pub turn_restrictions: usize,
    /// Nodes dropped at import because they were outside the largest strongly connected part.
    pub dropped_nodes: usize,
    /// Directed arcs dropped at import for the same reason.
    pub dropped_edges: usize,
    /// Kilometres of road dropped at import.
    pub dropped_km: f64,
    /// South-west corner of the graph.
    pub min: GeoPoint,
    /// North-east corner of the graph.
    pub max: GeoPoint,
}

impl RoadGraph {
    /// Number of nodes (intersections, dead ends, way ends).
    pub fn node_count(&self) -> usize {
        self.node_point.len()
    }

    /// Number of directed arcs.
    pub fn arc_count(&self) -> usize {
        self.arc_tail.len()
    }

    /// Number of routing nodes (hierarchy nodes).
    pub(crate) fn routing_count(&self) -> usize {
        self.rnode_base.len()
    }

    /// Size and content.
    pub fn summary(&self) -> GraphSummary {
        let road_km = self.road_km();
        let (mut min_lon, mut min_lat, mut max_lon, mut max_lat) = (180.0, 90.0, -180.0, -90.0);
        for p in &self.node_point {
            min_lon = p.lon().min(min_lon);
            min_lat = p.lat().min(min_lat);
            max_lon = p.lon().max(max_lon);
            max_lat = p.lat().max(max_lat);
        }
        let corner = |lon, lat| GeoPoint::new(lon, lat).unwrap_or_else(|_| self.node_point[0]);
        GraphSummary {
            nodes: self.node_count(),
            edges: self.arc_count(),
            routing_nodes: self.rnode_base.len(),
            routing_edges: self.edge_arc.len(),
            hierarchy_arcs: self.cch.arc_count(),
            road_km,
            turn_restrictions: self.import.turn_restrictions as usize,
            dropped_nodes: self.import.dropped_nodes as usize,
            dropped_edges: self.import.dropped_arcs as usize,
            dropped_km: self.import.dropped_km,
            min: corner(min_lon, min_lat),
            max: corner(max_lon, max_lat),
        }
    }

    /// Kilometres of road, each piece once.
    fn road_km(&self) -> f64 {
        let mut seen = vec![false; self.piece_name.len()];
        let mut total_cm = 0u64;
        for a in 0..self.arc_count() {
            let p = self.arc_piece[a] as usize;
            if !seen[p] {
                seen[p] = true;
                total_cm += u64::from(self.arc_length_cm[a]);
            }
        }
        #[allow(clippy::cast_precision_loss)]
        let km = total_cm as f64 / 100_000.0;
        km
    }

    pub(crate) fn arc_length(&self, a: u32) -> Meters {
        Meters::new(f64::from(self.arc_length_cm[a as usize]) / 100.0)
    }

    /// Edges out of routing node `r`.
    pub(crate) fn edges_out(&self, r: u32) -> std::ops::Range<usize> {
        self.edge_first[r as usize] as usize..self.edge_first[r as usize + 1] as usize
    }

    /// Edges into routing node `r`, as positions in `in_edge`.
    pub(crate) fn edges_in(&self, r: u32) -> std::ops::Range<usize> {
        self.in_first[r as usize] as usize..self.in_first[r as usize + 1] as usize
    }

    /// Edges of arc `a`, as positions in `arc_edges`.
    pub(crate) fn edges_of_arc(&self, a: u32) -> std::ops::Range<usize> {
        self.arc_edge_first[a as usize] as usize..self.arc_edge_first[a as usize + 1] as usize
    }

    /// Head routing node of edge `e`.
    pub(crate) fn edge_head(&self, e: usize) -> u32 {
        self.arc_target[self.edge_arc[e] as usize]
    }

    /// Number of arcs a driver may take after arriving by arc `a` (U-turn excluded).
    pub(crate) fn exits_after(&self, a: u32) -> usize {
        let twin = self.arc_twin[a as usize];
        self.edges_out(self.arc_target[a as usize])
            .filter(|&e| self.edge_arc[e] != twin)
            .count()
    }

    /// The geometry of arc `a` in driving order.
    pub(crate) fn arc_points(&self, a: u32) -> impl DoubleEndedIterator<Item = GeoPoint> + '_ {
        let p = self.arc_piece[a as usize] as usize;
        let slice = &self.points[self.piece_first[p] as usize..self.piece_first[p + 1] as usize];
        let reversed = self.arc_flags[a as usize] & FLAG_REVERSED != 0;
        let (fwd, bwd) = if reversed {
            (None, Some(slice.iter().rev().copied()))
        } else {
            (Some(slice.iter().copied()), None)
        };
        fwd.into_iter().flatten().chain(bwd.into_iter().flatten())
    }

    /// Street name of arc `a`, if the way has one.
    pub(crate) fn arc_name(&self, a: u32) -> Option<&str> {
        let n = self.piece_name[self.arc_piece[a as usize] as usize];
        self.names.get(n as usize).map(String::as_str)
    }

    /// Rebuilds every derived array: the edge indexes and the hierarchy's.
    pub(crate) fn derive(&mut self) {
        self.derive_edge_index();
        let pairs: Vec<(u32, u32)> = (0..self.edge_arc.len())
            .map(|e| (self.edge_tail[e], self.edge_head(e)))
            .collect();
        self.cch.derive(&pairs);
    }

    /// Rebuilds the derived arrays (edge tails, edges into each routing node, edges of each
    /// arc). Called after building or loading.
    pub(crate) fn derive_edge_index(&mut self) {
        let routing = self.rnode_base.len();
        let edges = self.edge_arc.len();
        let mut edge_tail = vec![0u32; edges];
        for r in 0..routing {
            for e in self.edges_out(index(r)) {
                edge_tail[e] = index(r);
            }
        }
        let group = |key: &dyn Fn(usize) -> usize, groups: usize| {
            let mut first = vec![0u32; groups + 1];
            for e in 0..edges {
                first[key(e) + 1] += 1;
            }
            for i in 0..groups {
                first[i + 1] += first[i];
            }
            let mut fill = first.clone();
            let mut items = vec![0u32; edges];
            for e in 0..edges {
                let g = key(e);
                items[fill[g] as usize] = index(e);
                fill[g] += 1;
            }
            (first, items)
        };
        let (in_first, in_edge) = group(&|e| self.edge_head(e) as usize, routing);
        let (arc_edge_first, arc_edges) = group(&|e| self.edge_arc[e] as usize, self.arc_count());
        self.edge_tail = edge_tail;
        self.in_first = in_first;
        self.in_edge = in_edge;
        self.arc_edge_first = arc_edge_first;
        self.arc_edges = arc_edges;
    }

    /// Checks every structural invariant; used after import, after loading a file, and in
    /// tests. Returns the first problem found.
    pub fn check_invariants(&self) -> Result<(), String> {
        let nodes = self.node_count();
        let arcs = self.arc_count();
        let pieces = self.piece_name.len();
        if self.piece_way.len() != pieces {
            return Err("piece arrays differ in length".to_owned());
        }
        if nodes == 0 || arcs == 0 {
            return Err("the graph has no nodes or no arcs".to_owned());
        }
        if self.node_osm.len() != nodes {
            return Err("node arrays differ in length".to_owned());
        }
        for (name, len) in [
            ("arc_head", self.arc_head.len()),
            ("arc_piece", self.arc_piece.len()),
            ("arc_length", self.arc_length_cm.len()),
            ("arc_class", self.arc_class.len()),
            ("arc_maxspeed", self.arc_maxspeed.len()),
            ("arc_flags", self.arc_flags.len()),
            ("arc_twin", self.arc_twin.len()),
        ] {
            if len != arcs {
                return Err(format!("{name} has {len} entries for {arcs} arcs"));
            }
        }
        check_csr(
            "piece geometry",
            &self.piece_first,
            pieces,
            self.points.len(),
        )?;
        for p in 0..pieces {
            if self.piece_first[p + 1] - self.piece_first[p] < 2 {
                return Err(format!("piece {p} has fewer than two points"));
            }
            let name = self.piece_name[p];
            if name != NONE && name as usize >= self.names.len() {
                return Err(format!("piece {p} names string {name}, out of range"));
            }
        }
        for a in 0..arcs {
            let (tail, head, piece) = (self.arc_tail[a], self.arc_head[a], self.arc_piece[a]);
            if tail as usize >= nodes || head as usize >= nodes {
                return Err(format!("arc {a} joins node {tail} to {head}, out of range"));
            }
            if piece as usize >= pieces {
                return Err(format!("arc {a} uses piece {piece}, out of range"));
            }
            let twin = self.arc_twin[a];
            if twin != NONE
                && (twin as usize >= arcs
                    || self.arc_twin[twin as usize] != index(a)
                    || self.arc_piece[twin as usize] != piece
                    || twin as usize == a)
            {
                return Err(format!("arc {a} has an inconsistent twin {twin}"));
            }
            let mut geometry = self.arc_points(index(a));
            let first = geometry.next();
            let last = geometry.next_back();
            if first != Some(self.node_point[tail as usize])
                || last != Some(self.node_point[head as usize])
            {
                return Err(format!("arc {a}'s geometry does not join its end nodes"));
            }
        }
        let routing = self.rnode_base.len();
        if self.arc_target.len() != arcs {
            return Err(format!(
                "arc_target has {} entries for {arcs} arcs",
                self.arc_target.len()
            ));
        }
        if self.rnode_base.iter().any(|&v| v as usize >= nodes) {
            return Err("a routing node stands for a node out of range".to_owned());
        }
        for a in 0..arcs {
            let r = self.arc_target[a];
            if r as usize >= routing || self.rnode_base[r as usize] != self.arc_head[a] {
                return Err(format!(
                    "arc {a} leads to routing node {r}, which is not at its head"
                ));
            }
        }
        check_csr("edges", &self.edge_first, routing, self.edge_arc.len())?;
        for r in 0..routing {
            for e in self.edges_out(index(r)) {
                let a = self.edge_arc[e];
                if a as usize >= arcs {
                    return Err(format!("edge {e} drives arc {a}, out of range"));
                }
                if self.arc_tail[a as usize] != self.rnode_base[r] {
                    return Err(format!(
                        "edge {e} leaves routing node {r}, which is not at its arc's tail"
                    ));
                }
            }
        }
        self.cch.check(routing)
    }
}

/// Checks a CSR offsets array: `len + 1` entries, starting at 0, non-decreasing, ending at
/// `total`.
pub(crate) fn check_csr(what: &str, first: &[u32], len: usize, total: usize) -> Result<(), String> {
    if first.len() != len + 1 {
        return Err(format!("{what}: {} offsets for {len} entries", first.len()));
    }
    if first[0] != 0 || first[len] as usize != total {
        return Err(format!("{what}: offsets do not span the data"));
    }
    if first.windows(2).any(|w| w[0] > w[1]) {
        return Err(format!("{what}: offsets decrease"));
    }
    Ok(())
}

/// A `usize` index as `u32` (graphs are limited to `u32::MAX - 1` elements at build time).
#[allow(clippy::cast_possible_truncation)]
pub(crate) const fn index(i: usize) -> u32 {
    i as u32
}
