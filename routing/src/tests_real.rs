//! Tests on the real Porto extract that need the crate's internals: turn restrictions read
//! from OSM hold in the routing graph and in routes, one-way arcs are never driven
//! backwards, and partial re-customization equals a full customization.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::OnceLock;

use maps::Timestamp;

use crate::build::ImportOptions;
use crate::cch::Metric;
use crate::graph::{NONE, RoadGraph, index};
use crate::osm::{RawNetwork, RestrictionKind};
use crate::profile::{Departure, Profile};
use crate::router::{Router, to_end};

fn porto() -> &'static (RawNetwork, Router) {
    static PORTO: OnceLock<(RawNetwork, Router)> = OnceLock::new();
    PORTO.get_or_init(|| {
        let bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/data/roads/fixtures/porto_portugal.osm.pbf"
        ))
        .expect("fixture porto_portugal.osm.pbf is missing from ../shared/data/roads/fixtures");
        let raw = crate::osm::read_network(&bytes, &|_, _| {}).unwrap();
        let (graph, _) = crate::build::build(&raw, &ImportOptions::default(), &|_| {}).unwrap();
        graph.check_invariants().unwrap();
        (raw, Router::new(graph, Profile::bogota()))
    })
}

fn peak() -> Departure {
    Departure::car(Timestamp::parse_rfc3339("2026-11-23T07:30:00-05:00").unwrap())
}

/// Whether a driver arriving by arc `a` may continue on arc `b`.
fn permitted(g: &RoadGraph, a: u32, b: u32) -> bool {
    g.edges_out(g.arc_target[a as usize])
        .any(|e| g.edge_arc[e] == b)
}

fn arcs_into(g: &RoadGraph, via_osm: i64, way: i64) -> Vec<u32> {
    (0..g.arc_count())
        .filter(|&a| {
            g.node_osm[g.arc_head[a] as usize] == via_osm
                && g.piece_way[g.arc_piece[a] as usize] == way
        })
        .map(index)
        .collect()
}

fn arcs_out_of(g: &RoadGraph, via_osm: i64, way: i64) -> Vec<u32> {
    (0..g.arc_count())
        .filter(|&a| {
            g.node_osm[g.arc_tail[a] as usize] == via_osm
                && g.piece_way[g.arc_piece[a] as usize] == way
        })
        .map(index)
        .collect()
}

#[test]
fn every_osm_turn_restriction_holds_in_the_routing_graph() {
    let (raw, router) = porto();
    let g = router.graph_ref();
    let mut checked = 0;
    for rule in &raw.restrictions {
        let from = arcs_into(g, rule.via_node, rule.from_way);
        let to = arcs_out_of(g, rule.via_node, rule.to_way);
        if from.is_empty() || to.is_empty() {
            continue; // outside the kept graph
        }
        for &a in &from {
            match rule.kind {
                RestrictionKind::Prohibitive if rule.from_way == rule.to_way => {
                    let twin = g.arc_twin[a as usize];
                    if twin != NONE {
                        assert!(!permitted(g, a, twin), "U-turn {rule:?} is permitted");
                    }
                }
                RestrictionKind::Prohibitive => {
                    for &b in &to {
                        assert!(!permitted(g, a, b), "{rule:?} is permitted");
                    }
                }
                RestrictionKind::Mandatory => {
                    for e in g.edges_out(g.arc_target[a as usize]) {
                        let b = g.edge_arc[e];
                        assert_eq!(
                            g.piece_way[g.arc_piece[b as usize] as usize], rule.to_way,
                            "{rule:?}: arc {b} permitted"
                        );
                    }
                }
            }
            checked += 1;
        }
    }
    assert!(checked > 250, "only {checked} restricted arcs checked");
}

#[test]
fn routes_take_only_permitted_turns_and_respect_no_turn_rules() {
    let (raw, router) = porto();
    let g = router.graph_ref();
    let metric = router.metric(peak());
    let mut detours = 0;
    for rule in raw
        .restrictions
        .iter()
        .filter(|r| r.kind == RestrictionKind::Prohibitive && r.from_way != r.to_way)
    {
        for &a in &arcs_into(g, rule.via_node, rule.from_way) {
            for &b in &arcs_out_of(g, rule.via_node, rule.to_way) {
                // From near the end of `a` to near the start of `b`: the forbidden turn would
                // be the obvious way.
                let from = position_on(router, a, 0.9);
                let to = position_on(router, b, 0.1);
                let (time, spans) = router.path(&metric, &from, &to).unwrap();
                for w in spans.windows(2) {
                    assert!(
                        permitted(g, w[0].0, w[1].0),
                        "{rule:?}: turn {} → {}",
                        w[0].0,
                        w[1].0
                    );
                }
                assert!(
                    !(spans.len() == 2 && spans[0].0 == a && spans[1].0 == b),
                    "{rule:?}"
                );
                let forbidden_time =
                    to_end(&metric, a, 0.9) + crate::router::from_start(&metric, b, 0.1);
                if time > forbidden_time {
                    detours += 1;
                }
            }
        }
    }
    assert!(detours > 100, "{detours} restricted turns forced a detour");
}

/// The position at fraction `f` of arc `a` (in its driving direction).
fn position_on(router: &Router, a: u32, f: f64) -> crate::snap::Position {
    let g = router.graph_ref();
    let piece = g.arc_piece[a as usize];
    let fraction = if g.arc_flags[a as usize] & crate::graph::FLAG_REVERSED != 0 {
        1.0 - f
    } else {
        f
    };
    let point = router.shared.snap.point_at(g, piece, fraction);
    crate::snap::Position {
        piece,
        fraction,
        point,
        distance_m: 0.0,
    }
}

#[test]
fn one_way_streets_are_never_driven_backwards() {
    let (_, router) = porto();
    let g = router.graph_ref();
    let metric = router.metric(peak());
    let one_way: Vec<u32> = (0..g.arc_count())
        .filter(|&a| g.arc_twin[a] == NONE && g.arc_length_cm[a] > 10_000)
        .map(index)
        .step_by(97)
        .take(60)
        .collect();
    assert!(one_way.len() >= 30);
    for &a in &one_way {
        // From 80% along the arc to 20% along it: the way back is around the block.
        let from = position_on(router, a, 0.8);
        let to = position_on(router, a, 0.2);
        let (time, spans) = router.path(&metric, &from, &to).unwrap();
        assert_eq!(
            spans.first().map(|s| (s.0, s.2)),
            Some((a, 1.0)),
            "leaves by the head"
        );
        assert_eq!(
            spans.last().map(|s| (s.0, s.1)),
            Some((a, 0.0)),
            "comes back from the tail"
        );
        assert!(spans.len() >= 3);
        let at_least = to_end(&metric, a, 0.8) + crate::router::from_start(&metric, a, 0.2);
        assert!(time > at_least);
        for &(arc, f0, f1) in &spans {
            assert!(f0 <= f1, "arc {arc} driven from {f0} back to {f1}");
        }
    }
}

#[test]
fn partial_recustomization_equals_a_full_customization() {
    let (_, router) = porto();
    let g = router.graph_ref();
    let base = router.customize(router.metric_key(peak()));
    let mut state = 12_345u64;
    let mut next = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        state >> 33
    };
    // The same buffers across rounds, as the router keeps them.
    let mut buffers = crate::cch::UpdateBuffers::default();
    for round in 0..4 {
        let mut arc_ms = base.arc_ms.clone();
        let mut changed = Vec::new();
        for _ in 0..100 {
            let a = u32::try_from(next() % g.arc_count() as u64).unwrap();
            let old = arc_ms[a as usize];
            // Slower and faster by up to a factor of 4.
            let new = if next() % 2 == 0 {
                old.saturating_mul(1 + (next() % 4) as u32)
            } else {
                (old / (1 + (next() % 4) as u32)).max(1)
            };
            arc_ms[a as usize] = new;
            changed.push(a);
        }
        changed.sort_unstable();
        changed.dedup();
        let mut partial = base.clone();
        partial.arc_ms.clone_from(&arc_ms);
        let recomputed = partial.update(
            &g.cch,
            &g.edge_arc,
            &g.arc_edge_first,
            &g.arc_edges,
            &changed,
            &mut buffers,
        );
        let full = Metric::customize(&g.cch, arc_ms, &g.edge_arc);
        assert!(recomputed > 0);
        assert!(
            partial == full,
            "round {round}: partial update differs from full customization"
        );
    }
}

#[test]
fn grid_snapping_finds_the_nearest_segment_like_a_brute_force_search() {
    let (_, router) = porto();
    let g = router.graph_ref();
    let s = g.summary();
    let mut state = 99u64;
    let mut unit = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        #[allow(clippy::cast_precision_loss)]
        let u = (state >> 11) as f64 / (1u64 << 53) as f64;
        u
    };
    let mut found = 0;
    for _ in 0..300 {
        // Inside the graph's box and a little around it.
        let lon = s.min.lon() - 0.01 + unit() * (s.max.lon() - s.min.lon() + 0.02);
        let lat = s.min.lat() - 0.01 + unit() * (s.max.lat() - s.min.lat() + 0.02);
        let p = maps::GeoPoint::new(lon, lat).unwrap();
        let brute = (0..g.piece_name.len())
            .flat_map(|piece| g.piece_first[piece] as usize..g.piece_first[piece + 1] as usize - 1)
            .map(|i| router.shared.snap.test_distance(p, i))
            .fold(f64::INFINITY, f64::min);
        match router.shared.snap.nearest(g, p, 500.0) {
            Some(position) => {
                found += 1;
                let d = router.shared.snap.test_distance(p, {
                    // The segment of the position: distance recomputed in the same frame.
                    let start = g.piece_first[position.piece as usize] as usize;
                    let end = g.piece_first[position.piece as usize + 1] as usize - 1;
                    (start..end)
                        .min_by(|&a, &b| {
                            router
                                .shared
                                .snap
                                .test_distance(p, a)
                                .total_cmp(&router.shared.snap.test_distance(p, b))
                        })
                        .unwrap()
                });
                assert!(
                    (d - brute).abs() < 0.05,
                    "{p}: grid {d} m, brute force {brute} m"
                );
                assert!(brute <= 500.0 * 1.01 + 1.0);
            }
            None => assert!(brute > 500.0 * 0.99, "{p}: missed a road {brute} m away"),
        }
    }
    assert!(found > 100, "{found}");
}

#[test]
fn the_reference_dijkstra_agrees_with_petgraph() {
    use petgraph::graph::{DiGraph, NodeIndex};
    let (_, router) = porto();
    let g = router.graph_ref();
    let metric = router.metric(peak());
    let mut pg: DiGraph<(), u64> = DiGraph::with_capacity(g.routing_count(), g.edge_arc.len());
    for _ in 0..g.routing_count() {
        pg.add_node(());
    }
    for e in 0..g.edge_arc.len() {
        pg.add_edge(
            NodeIndex::new(g.edge_tail[e] as usize),
            NodeIndex::new(g.edge_head(e) as usize),
            u64::from(metric.arc_ms[g.edge_arc[e] as usize]),
        );
    }
    for source in [0u32, 1_234, 30_000, index(g.routing_count() - 1)] {
        let ours = crate::reference::dijkstra(g, &metric, &[(source, 0)], true);
        let theirs =
            petgraph::algo::dijkstra(&pg, NodeIndex::new(source as usize), None, |e| *e.weight());
        assert_eq!(theirs.len(), g.routing_count(), "everything is reachable");
        for (node, &d) in &theirs {
            assert_eq!(
                u64::from(ours[node.index()]),
                d,
                "from {source} to {}",
                node.index()
            );
        }
    }
}
