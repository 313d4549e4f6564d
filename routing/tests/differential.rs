//! Every fast query against the plain reference Dijkstra on the same graph, on random points
//! of each real fixture: the times must be identical to the millisecond.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{off_peak, peak, random_points, router};
use maps::{Timestamp, TravelTime};
use routing::{Departure, Router};

const FIXTURES: [&str; 3] = ["sao_paulo_centro", "monaco", "porto_portugal"];

fn times_from_match_reference(r: &Router, seed: u64, departure: Departure) {
    let sources = random_points(r, 4, seed);
    let targets = random_points(r, 60, seed + 1);
    for &s in &sources {
        let fast = r.times_from(s, &targets, departure).unwrap();
        let slow = r.reference_times_from(s, &targets, departure).unwrap();
        assert_eq!(fast, slow, "times from {s}");
    }
}

#[test]
fn one_to_many_times_equal_the_reference_on_every_fixture() {
    for (i, name) in FIXTURES.iter().enumerate() {
        let r = router(name);
        times_from_match_reference(&r, 100 + i as u64, peak().into());
        times_from_match_reference(&r, 200 + i as u64, Departure::emergency(off_peak()));
    }
}

#[test]
fn many_to_one_etas_equal_the_reference_on_every_fixture() {
    for (i, name) in FIXTURES.iter().enumerate() {
        let r = router(name);
        let targets = random_points(&r, 4, 300 + i as u64);
        let origins = random_points(&r, 120, 400 + i as u64);
        for &t in &targets {
            let fast = r.etas_to(t, &origins, peak()).unwrap();
            let slow = r.reference_etas_to(t, &origins, peak()).unwrap();
            assert_eq!(fast, slow, "{name}: ETAs to {t}");
        }
    }
}

#[test]
fn etas_to_a_point_equal_times_from_each_origin() {
    // The backward search (to one target) and forward searches (from each origin) agree.
    let r = router("sao_paulo_centro");
    let target = random_points(&r, 1, 7)[0];
    let origins = random_points(&r, 30, 8);
    let etas = r.etas_to(target, &origins, peak()).unwrap();
    for (o, eta) in origins.iter().zip(etas) {
        let forward = r.times_from(*o, &[target], peak()).unwrap().remove(0);
        assert_eq!(eta, forward, "from {o}");
    }
}

#[test]
fn route_durations_equal_the_reference_and_geometry_is_continuous() {
    for (i, name) in FIXTURES.iter().enumerate() {
        let r = router(name);
        let points = random_points(&r, 40, 500 + i as u64);
        for pair in points.chunks(2) {
            let (a, b) = (pair[0], pair[1]);
            let route = r.route(a, b, peak()).unwrap();
            let reference = r
                .reference_times_from(a, &[b], peak())
                .unwrap()
                .remove(0)
                .unwrap();
            assert_eq!(route.duration, reference, "{name}: {a} → {b}");
            let pts = route.geometry.points();
            assert_eq!(pts[0], route.from.point);
            assert_eq!(*pts.last().unwrap(), route.to.point);
            // Consecutive points are close: the geometry has no jumps.
            for w in pts.windows(2) {
                assert!(w[0].distance_to(w[1]).get() < 3_000.0, "{name}: jump {w:?}");
            }
            let length = route.geometry.length().get();
            assert!(
                (route.distance.get() - length).abs() <= 0.02 * length + 5.0,
                "{name}: distance {} vs geometry {length}",
                route.distance
            );
            assert_eq!(
                route.steps.last().unwrap().instruction,
                "Llegó a su destino"
            );
        }
    }
}

#[test]
fn catchments_equal_the_reference_node_by_node() {
    for (i, name) in FIXTURES.iter().enumerate() {
        let r = router(name);
        for &source in &random_points(&r, 3, 600 + i as u64) {
            for minutes in [5, 30] {
                let budget = TravelTime::from_minutes(minutes);
                let fast = r.catchment(source, budget, peak()).unwrap();
                let mut fast: Vec<_> = fast.nodes().map(|n| (n.point, n.time)).collect();
                fast.sort_by(|a, b| {
                    a.0.lon()
                        .total_cmp(&b.0.lon())
                        .then(a.0.lat().total_cmp(&b.0.lat()))
                });
                let slow = r.reference_catchment(source, budget, peak()).unwrap();
                assert_eq!(fast.len(), slow.len(), "{name}: {source} {minutes} min");
                assert_eq!(fast, slow, "{name}: {source} {minutes} min");
            }
        }
    }
}

#[test]
fn batched_catchments_equal_single_catchments() {
    let r = router("porto_portugal");
    let sources = random_points(&r, 19, 700);
    let budget = TravelTime::from_minutes(30);
    let batch = r.catchments(&sources, budget, peak());
    assert_eq!(batch.len(), sources.len());
    for (s, c) in sources.iter().zip(batch) {
        let c = c.unwrap();
        let single = r.catchment(*s, budget, peak()).unwrap();
        let a: Vec<_> = c.nodes().collect();
        let b: Vec<_> = single.nodes().collect();
        assert_eq!(a, b, "{s}");
    }
}

#[test]
fn nearest_source_times_equal_the_minimum_over_sources() {
    let r = router("monaco");
    let sources = random_points(&r, 5, 800);
    let points = random_points(&r, 50, 801);
    let nearest = r.times_from_nearest(&sources, &points, peak()).unwrap();
    let per_source: Vec<Vec<TravelTime>> = sources
        .iter()
        .map(|&s| {
            r.reference_times_from(s, &points, peak())
                .unwrap()
                .into_iter()
                .map(Result::unwrap)
                .collect()
        })
        .collect();
    for (j, got) in nearest.iter().enumerate() {
        let (source, time) = got.clone().unwrap();
        let best = per_source.iter().map(|t| t[j]).min().unwrap();
        assert_eq!(time, best, "point {j}");
        assert_eq!(
            per_source[source][j], best,
            "point {j}: the nearest source is not {source}"
        );
    }
    // The coverage layer agrees with per-source catchments at the nodes.
    let coverage = r.coverage(&sources, peak()).unwrap();
    assert!(coverage.skipped().is_empty());
    assert!(coverage.nodes().count() > 100);
}

#[test]
fn a_different_departure_gives_different_times_but_the_same_agreement() {
    let r = router("sao_paulo_centro");
    let night = Timestamp::parse_rfc3339("2026-11-22T03:00:00-05:00").unwrap();
    times_from_match_reference(&r, 900, night.into());
    let points = random_points(&r, 2, 901);
    let at_peak = r
        .times_from(points[0], &[points[1]], peak())
        .unwrap()
        .remove(0)
        .unwrap();
    let at_night = r
        .times_from(points[0], &[points[1]], night)
        .unwrap()
        .remove(0)
        .unwrap();
    assert!(at_night < at_peak, "{at_night} vs {at_peak}");
}
