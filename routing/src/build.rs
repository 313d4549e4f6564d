//! From the raw OSM network to the prepared graph: split ways into pieces at intersections,
//! make arcs from one-way rules, turn restrictions into forbidden turns at split via nodes,
//! build the routing graph, keep its largest strongly connected part, order it by nested
//! dissection and contract.

use maps::GeoPoint;
use petgraph::graph::{DiGraph, NodeIndex};
use rustc_hash::FxHashMap;

use crate::cch::CchTopology;
use crate::class::RoadClass;
use crate::error::ImportError;
use crate::graph::{FLAG_REVERSED, FLAG_ROUNDABOUT, ImportFacts, NONE, RoadGraph, index};
use crate::order;
use crate::osm::{Direction, RawNetwork, RestrictionKind};

/// A longitude/latitude box to cut the extract to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImportBox {
    min: GeoPoint,
    max: GeoPoint,
}

impl ImportBox {
    /// A box from its south-west and north-east corners.
    pub fn new(min: GeoPoint, max: GeoPoint) -> Result<Self, ImportError> {
        if min.lon() >= max.lon() || min.lat() >= max.lat() {
            return Err(ImportError::InvalidBoundingBox(format!(
                "{},{},{},{}",
                min.lon(),
                min.lat(),
                max.lon(),
                max.lat()
            )));
        }
        Ok(Self { min, max })
    }

    /// Reads `min_lon,min_lat,max_lon,max_lat`.
    pub fn parse(text: &str) -> Result<Self, ImportError> {
        let bad = || ImportError::InvalidBoundingBox(text.to_owned());
        let values: Vec<f64> = text
            .split(',')
            .map(|v| v.trim().parse::<f64>().map_err(|_| bad()))
            .collect::<Result<_, _>>()?;
        let [a, b, c, d] = values[..] else {
            return Err(bad());
        };
        let min = GeoPoint::new(a, b).map_err(|_| bad())?;
        let max = GeoPoint::new(c, d).map_err(|_| bad())?;
        Self::new(min, max)
    }

    fn contains(&self, p: GeoPoint) -> bool {
        (self.min.lon()..=self.max.lon()).contains(&p.lon())
            && (self.min.lat()..=self.max.lat()).contains(&p.lat())
    }
}

impl std::fmt::Display for ImportBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{},{},{},{}",
            self.min.lon(),
            self.min.lat(),
            self.max.lon(),
            self.max.lat()
        )
    }
}

/// How to import.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ImportOptions {
    /// Keep only roads inside this box.
    pub bbox: Option<ImportBox>,
    /// Keep every strongly connected part instead of only the largest (queries between
    /// parts then report [`RoutingError::Unreachable`](crate::RoutingError::Unreachable)).
    pub keep_all_components: bool,
}

/// Import stages, for progress reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportStage {
    /// Decoding PBF blocks (`done`/`total` blocks).
    Reading,
    /// Building arcs and turns.
    Building,
    /// Computing the nested-dissection order.
    Ordering,
    /// Contracting the hierarchy.
    Contracting,
}

/// What the import did beyond the graph's own summary.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ImportReport {
    /// Drivable ways read.
    pub ways: usize,
    /// Turn restrictions read from the file.
    pub restrictions_read: usize,
    /// Turn restrictions that could not be applied (via ways, unknown kinds, or members
    /// missing from the extract).
    pub restrictions_skipped: usize,
}

/// One piece before arcs are made.
struct Piece {
    way: usize,
    from: u32,
    to: u32,
    points: Vec<GeoPoint>,
}

/// Arrays in the making, before the final order.
#[derive(Default)]
struct Draft {
    node_point: Vec<GeoPoint>,
    node_osm: Vec<i64>,
    piece_first: Vec<u32>,
    points: Vec<GeoPoint>,
    piece_name: Vec<u32>,
    piece_way: Vec<usize>,
    names: Vec<String>,
    arc_tail: Vec<u32>,
    arc_head: Vec<u32>,
    arc_piece: Vec<u32>,
    arc_length_cm: Vec<u32>,
    arc_class: Vec<RoadClass>,
    arc_maxspeed: Vec<u8>,
    arc_flags: Vec<u8>,
    arc_twin: Vec<u32>,
    /// Forbidden turns `(from arc, to arc)`, sorted.
    forbidden: Vec<(u32, u32)>,
    /// Nodes that are the via of at least one forbidden turn.
    split: Vec<bool>,
}

/// The routing graph of a draft.
struct Routing {
    rnode_base: Vec<u32>,
    arc_target: Vec<u32>,
    /// `(tail routing node, arc)`.
    edges: Vec<(u32, u32)>,
}

/// Builds the prepared graph. `stage` is told when each stage starts.
pub(crate) fn build(
    raw: &RawNetwork,
    options: &ImportOptions,
    stage: &(dyn Fn(ImportStage) + Sync),
) -> Result<(RoadGraph, ImportReport), ImportError> {
    stage(ImportStage::Building);
    let no_roads = || ImportError::NoRoads {
        bbox: options.bbox.map(|b| b.to_string()),
    };
    let mut draft = Draft::default();
    let pieces = split_ways(raw, options, &mut draft);
    if pieces.is_empty() {
        return Err(no_roads());
    }
    make_arcs(raw, pieces, &mut draft);
    let restrictions_applied = forbid_turns(raw, &mut draft);
    let dropped = if options.keep_all_components {
        ImportFacts::default()
    } else {
        keep_largest_component(&mut draft)
    };
    if draft.arc_tail.is_empty() {
        return Err(no_roads());
    }
    stage(ImportStage::Ordering);
    let routing = routing_graph(&draft);
    let order = routing_order(&draft, &routing);
    stage(ImportStage::Contracting);
    let way_ids: Vec<i64> = raw.ways.iter().map(|w| w.id).collect();
    let mut graph = finish(draft, &routing, &order, &way_ids);
    graph.import = ImportFacts {
        turn_restrictions: index(restrictions_applied),
        ..dropped
    };
    let report = ImportReport {
        ways: raw.ways.len(),
        restrictions_read: raw.restrictions.len() + raw.restrictions_unsupported,
        restrictions_skipped: raw.restrictions.len() + raw.restrictions_unsupported
            - restrictions_applied,
    };
    debug_assert_eq!(graph.check_invariants(), Ok(()));
    Ok((graph, report))
}

/// Splits ways into pieces between graph nodes. Nodes without coordinates (or outside the
/// box) cut a way in two.
fn split_ways(raw: &RawNetwork, options: &ImportOptions, draft: &mut Draft) -> Vec<Piece> {
    // Runs of consecutive usable nodes, per way.
    let mut runs: Vec<(usize, Vec<(i64, GeoPoint)>)> = Vec::new();
    for (w, way) in raw.ways.iter().enumerate() {
        let mut run: Vec<(i64, GeoPoint)> = Vec::new();
        for &id in &way.nodes {
            let point = raw.node(id).and_then(|(lat, lon)| {
                GeoPoint::new(f64::from(lon) * 1e-7, f64::from(lat) * 1e-7).ok()
            });
            match point {
                Some(p) if options.bbox.is_none_or(|b| b.contains(p)) => {
                    if run.last().is_none_or(|&(last, _)| last != id) {
                        run.push((id, p));
                    }
                }
                _ => {
                    if run.len() >= 2 {
                        runs.push((w, std::mem::take(&mut run)));
                    } else {
                        run.clear();
                    }
                }
            }
        }
        if run.len() >= 2 {
            runs.push((w, run));
        }
    }
    // A node is a graph node if used twice, at the end of a run, or as a restriction's via.
    let mut usage: FxHashMap<i64, u32> = FxHashMap::default();
    for (_, run) in &runs {
        for &(id, _) in run {
            *usage.entry(id).or_default() += 1;
        }
        for end in [run[0].0, run[run.len() - 1].0] {
            *usage.entry(end).or_default() += 2;
        }
    }
    for r in &raw.restrictions {
        if let Some(u) = usage.get_mut(&r.via_node) {
            *u += 2;
        }
    }
    let mut node_index: FxHashMap<i64, u32> = FxHashMap::default();
    let mut graph_node = |id: i64, p: GeoPoint, draft: &mut Draft| -> u32 {
        *node_index.entry(id).or_insert_with(|| {
            draft.node_point.push(p);
            draft.node_osm.push(id);
            index(draft.node_point.len() - 1)
        })
    };
    let mut pieces = Vec::new();
    for (w, run) in runs {
        let mut start = 0;
        for i in 1..run.len() {
            if usage[&run[i].0] >= 2 {
                let from = graph_node(run[start].0, run[start].1, draft);
                let to = graph_node(run[i].0, run[i].1, draft);
                pieces.push(Piece {
                    way: w,
                    from,
                    to,
                    points: run[start..=i].iter().map(|&(_, p)| p).collect(),
                });
                start = i;
            }
        }
    }
    pieces
}

fn length_cm(points: &[GeoPoint]) -> u32 {
    let meters: f64 = points
        .windows(2)
        .map(|w| w[0].distance_to(w[1]).get())
        .sum();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let cm = (meters * 100.0).round().clamp(0.0, f64::from(u32::MAX - 1)) as u32;
    cm
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn maxspeed_byte(kmh: Option<f64>) -> u8 {
    kmh.map_or(0, |v| v.round().clamp(1.0, 255.0) as u8)
}

fn make_arcs(raw: &RawNetwork, pieces: Vec<Piece>, draft: &mut Draft) {
    let mut name_index: FxHashMap<String, u32> = FxHashMap::default();
    draft.piece_first.push(0);
    for piece in pieces {
        let way = &raw.ways[piece.way];
        let p = index(draft.piece_name.len());
        let name = way.name.as_ref().map_or(NONE, |n| {
            *name_index.entry(n.clone()).or_insert_with(|| {
                draft.names.push(n.clone());
                index(draft.names.len() - 1)
            })
        });
        draft.piece_name.push(name);
        draft.piece_way.push(piece.way);
        let length = length_cm(&piece.points);
        draft.points.extend_from_slice(&piece.points);
        draft.piece_first.push(index(draft.points.len()));
        let roundabout = if way.roundabout { FLAG_ROUNDABOUT } else { 0 };
        let mut push = |tail, head, maxspeed, flags| {
            draft.arc_tail.push(tail);
            draft.arc_head.push(head);
            draft.arc_piece.push(p);
            draft.arc_length_cm.push(length);
            draft.arc_class.push(way.class);
            draft.arc_maxspeed.push(maxspeed_byte(maxspeed));
            draft.arc_flags.push(flags | roundabout);
            draft.arc_twin.push(NONE);
            index(draft.arc_tail.len() - 1)
        };
        let forward = matches!(way.direction, Direction::Both | Direction::Forward)
            .then(|| push(piece.from, piece.to, way.maxspeed_forward, 0));
        let backward = matches!(way.direction, Direction::Both | Direction::Backward)
            .then(|| push(piece.to, piece.from, way.maxspeed_backward, FLAG_REVERSED));
        if let (Some(f), Some(b)) = (forward, backward) {
            draft.arc_twin[f as usize] = b;
            draft.arc_twin[b as usize] = f;
        }
    }
}

/// Arcs out of and into each node.
fn node_incidence(draft: &Draft) -> (Vec<Vec<u32>>, Vec<Vec<u32>>) {
    let nodes = draft.node_point.len();
    let mut out = vec![Vec::new(); nodes];
    let mut inc = vec![Vec::new(); nodes];
    for a in 0..draft.arc_tail.len() {
        out[draft.arc_tail[a] as usize].push(index(a));
        inc[draft.arc_head[a] as usize].push(index(a));
    }
    (out, inc)
}

/// Turns restrictions into forbidden turns `(from arc, to arc)` at their via nodes and marks
/// those nodes as split. Returns the number of restrictions that matched at least one turn.
fn forbid_turns(raw: &RawNetwork, draft: &mut Draft) -> usize {
    let (out, inc) = node_incidence(draft);
    let node_of: FxHashMap<i64, u32> = draft
        .node_osm
        .iter()
        .enumerate()
        .map(|(i, &id)| (id, index(i)))
        .collect();
    let way_id = |a: u32| raw.ways[draft.piece_way[draft.arc_piece[a as usize] as usize]].id;
    let mut applied = 0;
    let mut forbidden = Vec::new();
    for rule in &raw.restrictions {
        let Some(&v) = node_of.get(&rule.via_node) else {
            continue;
        };
        let v = v as usize;
        let from: Vec<u32> = inc[v]
            .iter()
            .copied()
            .filter(|&a| way_id(a) == rule.from_way)
            .collect();
        let to_exists = out[v].iter().any(|&b| way_id(b) == rule.to_way);
        if from.is_empty() || !to_exists {
            continue;
        }
        applied += 1;
        for &a in &from {
            let twin = draft.arc_twin[a as usize];
            for &b in &out[v] {
                let to_matches = way_id(b) == rule.to_way;
                let hit = match rule.kind {
                    // `no_u_turn` from a way onto itself forbids the U-turn only, not going
                    // straight on along a way that continues through the node.
                    RestrictionKind::Prohibitive if rule.from_way == rule.to_way => b == twin,
                    RestrictionKind::Prohibitive => to_matches,
                    RestrictionKind::Mandatory => !to_matches,
                };
                if hit {
                    forbidden.push((a, b));
                }
            }
        }
    }
    forbidden.sort_unstable();
    forbidden.dedup();
    draft.split = vec![false; draft.node_point.len()];
    for &(a, _) in &forbidden {
        draft.split[draft.arc_head[a as usize] as usize] = true;
    }
    draft.forbidden = forbidden;
    applied
}

/// Builds the routing graph: one routing node per unsplit node, one per arriving arc at a
/// split node; an edge per arc from its tail's routing node, or from each arrival copy whose
/// turn onto it is not forbidden.
fn routing_graph(draft: &Draft) -> Routing {
    let nodes = draft.node_point.len();
    let arcs = draft.arc_tail.len();
    let mut rnode_base = Vec::new();
    let mut rnode_of = vec![NONE; nodes];
    for (v, &split) in draft.split.iter().enumerate() {
        if !split {
            rnode_of[v] = index(rnode_base.len());
            rnode_base.push(index(v));
        }
    }
    let mut arc_target = vec![NONE; arcs];
    for (target, &head) in arc_target.iter_mut().zip(&draft.arc_head) {
        let head = head as usize;
        *target = if draft.split[head] {
            rnode_base.push(index(head));
            index(rnode_base.len() - 1)
        } else {
            rnode_of[head]
        };
    }
    let (_, inc) = node_incidence(draft);
    let mut edges = Vec::with_capacity(arcs);
    for b in 0..arcs {
        let tail = draft.arc_tail[b] as usize;
        if draft.split[tail] {
            for &a in &inc[tail] {
                if draft.forbidden.binary_search(&(a, index(b))).is_err() {
                    edges.push((arc_target[a as usize], index(b)));
                }
            }
        } else {
            edges.push((rnode_of[tail], index(b)));
        }
    }
    Routing {
        rnode_base,
        arc_target,
        edges,
    }
}

/// Keeps the largest strongly connected part of the routing graph (every kept position
/// can reach every other); returns what was dropped.
fn keep_largest_component(draft: &mut Draft) -> ImportFacts {
    let routing = routing_graph(draft);
    let arcs = draft.arc_tail.len();
    let mut g: DiGraph<(), ()> =
        DiGraph::with_capacity(routing.rnode_base.len(), routing.edges.len());
    for _ in 0..routing.rnode_base.len() {
        g.add_node(());
    }
    for &(tail, arc) in &routing.edges {
        g.add_edge(
            NodeIndex::new(tail as usize),
            NodeIndex::new(routing.arc_target[arc as usize] as usize),
            (),
        );
    }
    let components = petgraph::algo::kosaraju_scc(&g);
    let Some(largest) = components.iter().max_by_key(|c| c.len()) else {
        return ImportFacts::default();
    };
    let mut inside = vec![false; routing.rnode_base.len()];
    for n in largest {
        inside[n.index()] = true;
    }
    let mut keep = vec![false; arcs];
    for &(tail, arc) in &routing.edges {
        if inside[tail as usize] && inside[routing.arc_target[arc as usize] as usize] {
            keep[arc as usize] = true;
        }
    }
    let before_nodes = draft.node_point.len();
    let before_km = piece_km(draft, &vec![true; arcs]);
    let after_km = piece_km(draft, &keep);
    retain_arcs(draft, &keep);
    ImportFacts {
        turn_restrictions: 0,
        dropped_nodes: index(before_nodes - draft.node_point.len()),
        dropped_arcs: index(arcs - draft.arc_tail.len()),
        dropped_km: before_km - after_km,
    }
}

/// Kilometres of the pieces that have at least one kept arc.
fn piece_km(draft: &Draft, keep: &[bool]) -> f64 {
    let mut seen = vec![false; draft.piece_name.len()];
    let mut cm = 0u64;
    for ((&p, &length), &kept) in draft.arc_piece.iter().zip(&draft.arc_length_cm).zip(keep) {
        let p = p as usize;
        if kept && !seen[p] {
            seen[p] = true;
            cm += u64::from(length);
        }
    }
    #[allow(clippy::cast_precision_loss)]
    let km = cm as f64 / 100_000.0;
    km
}

/// Drops arcs not kept, then pieces and nodes no longer used, and renumbers.
fn retain_arcs(draft: &mut Draft, keep: &[bool]) {
    let arcs = draft.arc_tail.len();
    let mut new_arc = vec![NONE; arcs];
    let mut next = 0u32;
    for a in 0..arcs {
        if keep[a] {
            new_arc[a] = next;
            next += 1;
        }
    }
    let mut node_used = vec![false; draft.node_point.len()];
    let mut piece_used = vec![false; draft.piece_name.len()];
    for a in (0..arcs).filter(|&a| keep[a]) {
        node_used[draft.arc_tail[a] as usize] = true;
        node_used[draft.arc_head[a] as usize] = true;
        piece_used[draft.arc_piece[a] as usize] = true;
    }
    let renumber = |used: &[bool]| {
        let mut next = 0u32;
        used.iter()
            .map(|&u| {
                if u {
                    next += 1;
                    next - 1
                } else {
                    NONE
                }
            })
            .collect::<Vec<u32>>()
    };
    let new_node = renumber(&node_used);
    let new_piece = renumber(&piece_used);
    filter(&mut draft.node_point, &node_used);
    filter(&mut draft.node_osm, &node_used);
    filter(&mut draft.split, &node_used);
    // Pieces and their geometry.
    let mut piece_first = vec![0u32];
    let mut points = Vec::new();
    for (p, &used) in piece_used.iter().enumerate() {
        if used {
            points.extend_from_slice(
                &draft.points[draft.piece_first[p] as usize..draft.piece_first[p + 1] as usize],
            );
            piece_first.push(index(points.len()));
        }
    }
    draft.piece_first = piece_first;
    draft.points = points;
    filter(&mut draft.piece_name, &piece_used);
    filter(&mut draft.piece_way, &piece_used);
    // Arcs.
    filter(&mut draft.arc_tail, keep);
    filter(&mut draft.arc_head, keep);
    filter(&mut draft.arc_piece, keep);
    filter(&mut draft.arc_length_cm, keep);
    filter(&mut draft.arc_class, keep);
    filter(&mut draft.arc_maxspeed, keep);
    filter(&mut draft.arc_flags, keep);
    filter(&mut draft.arc_twin, keep);
    for t in &mut draft.arc_tail {
        *t = new_node[*t as usize];
    }
    for h in &mut draft.arc_head {
        *h = new_node[*h as usize];
    }
    for p in &mut draft.arc_piece {
        *p = new_piece[*p as usize];
    }
    for t in &mut draft.arc_twin {
        if *t != NONE {
            *t = new_arc[*t as usize];
        }
    }
    draft
        .forbidden
        .retain(|&(a, b)| keep[a as usize] && keep[b as usize]);
    for t in &mut draft.forbidden {
        t.0 = new_arc[t.0 as usize];
        t.1 = new_arc[t.1 as usize];
    }
    draft.forbidden.sort_unstable();
    // A node keeps its split only while a forbidden turn remains at it.
    draft.split.fill(false);
    for &(a, _) in &draft.forbidden {
        draft.split[draft.arc_head[a as usize] as usize] = true;
    }
}

/// The contraction order of routing nodes: nested dissection of the intersections (in a
/// local equirectangular frame); the arrival copies of a split node take its place together.
fn routing_order(draft: &Draft, routing: &Routing) -> Vec<u32> {
    let cos_lat0 = draft
        .node_point
        .first()
        .map_or(1.0, |p| p.lat().to_radians().cos());
    let coords: Vec<(f64, f64)> = draft
        .node_point
        .iter()
        .map(|p| (p.lon() * cos_lat0, p.lat()))
        .collect();
    let edges: Vec<(u32, u32)> = (0..draft.arc_tail.len())
        .map(|a| (draft.arc_tail[a], draft.arc_head[a]))
        .collect();
    let mut copies: Vec<Vec<u32>> = vec![Vec::new(); draft.node_point.len()];
    for (r, &v) in routing.rnode_base.iter().enumerate() {
        copies[v as usize].push(index(r));
    }
    order::nested_dissection(&coords, &edges)
        .into_iter()
        .flat_map(|v| std::mem::take(&mut copies[v as usize]))
        .collect()
}

/// Keeps the entries whose `used` flag is set.
fn filter<T>(v: &mut Vec<T>, used: &[bool]) {
    let mut i = 0;
    v.retain(|_| {
        i += 1;
        used[i - 1]
    });
}

/// Renumbers routing nodes by rank and contracts.
fn finish(draft: Draft, routing: &Routing, order: &[u32], raw_way_ids: &[i64]) -> RoadGraph {
    let n = routing.rnode_base.len();
    let mut rank = vec![0u32; n];
    for (r, &x) in order.iter().enumerate() {
        rank[x as usize] = index(r);
    }
    let rnode_base: Vec<u32> = order
        .iter()
        .map(|&x| routing.rnode_base[x as usize])
        .collect();
    let arc_target: Vec<u32> = routing
        .arc_target
        .iter()
        .map(|&r| rank[r as usize])
        .collect();
    let mut edges: Vec<(u32, u32)> = routing
        .edges
        .iter()
        .map(|&(tail, arc)| (rank[tail as usize], arc))
        .collect();
    edges.sort_unstable();
    let mut edge_first = vec![0u32; n + 1];
    for &(tail, _) in &edges {
        edge_first[tail as usize + 1] += 1;
    }
    for i in 0..n {
        edge_first[i + 1] += edge_first[i];
    }
    let cch = CchTopology::contract(
        n,
        edges
            .iter()
            .map(|&(tail, arc)| (tail, arc_target[arc as usize])),
    );
    let mut graph = RoadGraph {
        node_point: draft.node_point,
        node_osm: draft.node_osm,
        piece_first: draft.piece_first,
        points: draft.points,
        piece_way: draft.piece_way.iter().map(|&w| raw_way_ids[w]).collect(),
        piece_name: draft.piece_name,
        names: draft.names,
        arc_tail: draft.arc_tail,
        arc_head: draft.arc_head,
        arc_piece: draft.arc_piece,
        arc_length_cm: draft.arc_length_cm,
        arc_class: draft.arc_class,
        arc_maxspeed: draft.arc_maxspeed,
        arc_flags: draft.arc_flags,
        arc_twin: draft.arc_twin,
        arc_target,
        rnode_base,
        edge_first,
        edge_arc: edges.iter().map(|e| e.1).collect(),
        edge_tail: Vec::new(),
        in_first: Vec::new(),
        in_edge: Vec::new(),
        arc_edge_first: Vec::new(),
        arc_edges: Vec::new(),
        cch,
        import: ImportFacts::default(),
    };
    graph.derive();
    graph
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::osm::{RawRestriction, RawWay};

    /// A tiny network on a grid: nodes are `(id, lon, lat)`; ways `(id, nodes, oneway)`.
    pub(crate) fn network(
        nodes: &[(i64, f64, f64)],
        ways: &[(i64, &[i64], Direction)],
        restrictions: &[RawRestriction],
    ) -> RawNetwork {
        #[allow(clippy::cast_possible_truncation)]
        let mut nodes: Vec<(i64, i32, i32)> = nodes
            .iter()
            .map(|&(id, lon, lat)| (id, (lat * 1e7).round() as i32, (lon * 1e7).round() as i32))
            .collect();
        nodes.sort_unstable();
        RawNetwork {
            nodes,
            ways: ways
                .iter()
                .map(|&(id, ns, direction)| RawWay {
                    id,
                    nodes: ns.to_vec(),
                    class: RoadClass::Residential,
                    direction,
                    maxspeed_forward: None,
                    maxspeed_backward: None,
                    name: Some(format!("Calle {id}")),
                    roundabout: false,
                })
                .collect(),
            restrictions: restrictions.to_vec(),
            restrictions_unsupported: 0,
        }
    }

    pub(crate) fn build_plain(raw: &RawNetwork) -> RoadGraph {
        build(raw, &ImportOptions::default(), &|_| {}).unwrap().0
    }

    /// A plus-shaped crossing at node 5 with arms 1 (west), 2 (north), 3 (east), 4 (south),
    /// joined by a ring so that every arm can be reached from every other.
    pub(crate) fn crossing(restrictions: &[RawRestriction]) -> RawNetwork {
        let d = 0.001;
        network(
            &[
                (1, -d, 0.0),
                (2, 0.0, d),
                (3, d, 0.0),
                (4, 0.0, -d),
                (5, 0.0, 0.0),
                (6, -d, d),
                (7, d, d),
                (8, d, -d),
                (9, -d, -d),
            ],
            &[
                (10, &[1, 5], Direction::Both),
                (20, &[2, 5], Direction::Both),
                (30, &[3, 5], Direction::Both),
                (40, &[4, 5], Direction::Both),
                (50, &[1, 6, 2, 7, 3, 8, 4, 9, 1], Direction::Both),
            ],
            restrictions,
        )
    }

    #[test]
    fn ways_split_at_shared_nodes_and_two_way_pieces_get_twin_arcs() {
        let g = build_plain(&crossing(&[]));
        g.check_invariants().unwrap();
        // Nodes 1..=5 are shared; 6..9 are interior points of the ring.
        assert_eq!(g.node_count(), 5);
        // 4 arms + 4 ring pieces, both directions.
        assert_eq!(g.arc_count(), 16);
        assert!(g.arc_twin.iter().all(|&t| t != NONE));
        let s = g.summary();
        assert!((s.road_km - 0.111 * (4.0 + 8.0)).abs() < 0.05, "{s:?}");
    }

    #[test]
    fn u_turns_are_permitted_where_no_restriction_forbids_them() {
        let g = build_plain(&crossing(&[]));
        assert!(has_turn(&g, [1, 5, 1]));
        assert!(has_turn(&g, [2, 5, 2]));
        // Nothing is split without restrictions.
        assert_eq!(g.rnode_base.len(), g.node_count());
    }

    fn arc_between(g: &RoadGraph, from_osm: i64, to_osm: i64) -> Option<u32> {
        (0..g.arc_count())
            .find(|&a| {
                g.node_osm[g.arc_tail[a] as usize] == from_osm
                    && g.node_osm[g.arc_head[a] as usize] == to_osm
            })
            .map(index)
    }

    /// Whether the routing graph lets a driver arriving along the first two nodes continue to
    /// the third.
    pub(crate) fn has_turn(g: &RoadGraph, path: [i64; 3]) -> bool {
        let a = arc_between(g, path[0], path[1]).unwrap();
        let b = arc_between(g, path[1], path[2]).unwrap();
        g.edges_out(g.arc_target[a as usize])
            .any(|e| g.edge_arc[e] == b)
    }

    #[test]
    fn no_left_turn_removes_exactly_that_turn() {
        let rule = RawRestriction {
            from_way: 10,
            via_node: 5,
            to_way: 20,
            kind: RestrictionKind::Prohibitive,
        };
        let g = build_plain(&crossing(&[rule]));
        assert_eq!(g.import.turn_restrictions, 1);
        // The via node is split into one routing node per arriving arc (4 arms).
        assert_eq!(g.rnode_base.len(), g.node_count() - 1 + 4);
        assert!(!has_turn(&g, [1, 5, 2]));
        assert!(has_turn(&g, [1, 5, 3]));
        assert!(has_turn(&g, [1, 5, 4]));
        assert!(has_turn(&g, [3, 5, 2]));
    }

    #[test]
    fn only_straight_on_removes_every_other_turn() {
        let rule = RawRestriction {
            from_way: 10,
            via_node: 5,
            to_way: 30,
            kind: RestrictionKind::Mandatory,
        };
        let g = build_plain(&crossing(&[rule]));
        assert!(has_turn(&g, [1, 5, 3]));
        assert!(!has_turn(&g, [1, 5, 2]));
        assert!(!has_turn(&g, [1, 5, 4]));
        assert!(has_turn(&g, [2, 5, 4]));
    }

    #[test]
    fn one_way_pieces_have_a_single_arc_and_dangling_parts_are_dropped() {
        let d = 0.001;
        // A square loop 1→2→3→4→1 (one-way) plus a one-way spur 3→5 that cannot come back.
        let raw = network(
            &[
                (1, 0.0, 0.0),
                (2, d, 0.0),
                (3, d, d),
                (4, 0.0, d),
                (5, 2.0 * d, d),
            ],
            &[
                (1, &[1, 2, 3, 4, 1], Direction::Forward),
                (2, &[3, 5], Direction::Forward),
            ],
            &[],
        );
        let g = build_plain(&raw);
        g.check_invariants().unwrap();
        assert!(g.arc_twin.iter().all(|&t| t == NONE));
        assert_eq!(g.import.dropped_arcs, 1);
        assert_eq!(g.import.dropped_nodes, 1);
        assert!(g.import.dropped_km > 0.1);
        let kept = build(
            &raw,
            &ImportOptions {
                keep_all_components: true,
                ..ImportOptions::default()
            },
            &|_| {},
        )
        .unwrap()
        .0;
        assert_eq!(kept.arc_count(), g.arc_count() + 1);
    }

    #[test]
    fn a_box_without_roads_is_a_clear_error() {
        let raw = crossing(&[]);
        let far = ImportBox::parse("10,10,11,11").unwrap();
        let err = build(
            &raw,
            &ImportOptions {
                bbox: Some(far),
                ..ImportOptions::default()
            },
            &|_| {},
        )
        .unwrap_err();
        assert!(
            matches!(err, ImportError::NoRoads { bbox: Some(_) }),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("inside the bounding box 10,10,11,11"),
            "{err}"
        );
        assert!(ImportBox::parse("11,10,10,11").is_err());
        assert!(ImportBox::parse("1,2,3").is_err());
        assert!(ImportBox::parse("a,b,c,d").is_err());
        assert!(ImportBox::parse("-200,0,0,1").is_err());
    }
}
