//! Properties of the queries on a real graph (São Paulo centre), with proptest choosing the
//! points and budgets.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::OnceLock;

use common::{graph, off_peak, peak, random_points, router};
use maps::{CellResolution, GeoPoint, Meters, Speed, TravelTime};
use proptest::prelude::*;
use routing::{Departure, Profile, Router, RoutingError};

const CITY: &str = "sao_paulo_centro";

fn points() -> &'static [GeoPoint] {
    static POINTS: OnceLock<Vec<GeoPoint>> = OnceLock::new();
    POINTS.get_or_init(|| random_points(&router(CITY), 64, 4242))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn a_larger_budget_reaches_a_superset_with_the_same_times(
        source in 0usize..64, small in 1u64..20, extra in 0u64..20,
    ) {
        let r = router(CITY);
        let p = points()[source];
        let a = r.catchment(p, TravelTime::from_minutes(small), peak()).unwrap();
        let b = r.catchment(p, TravelTime::from_minutes(small + extra), peak()).unwrap();
        prop_assert!(a.len() <= b.len());
        let larger: std::collections::HashMap<(u64, u64), TravelTime> = b
            .nodes()
            .map(|n| ((n.point.lon().to_bits(), n.point.lat().to_bits()), n.time))
            .collect();
        for n in a.nodes() {
            prop_assert!(n.time <= TravelTime::from_minutes(small));
            prop_assert_eq!(larger.get(&(n.point.lon().to_bits(), n.point.lat().to_bits())), Some(&n.time));
        }
        // Cells and the area grow too.
        prop_assert!(a.cells(CellResolution::Block).len() <= b.cells(CellResolution::Block).len());
    }

    #[test]
    fn the_eta_equals_the_route_duration(from in 0usize..64, to in 0usize..64, emergency in any::<bool>()) {
        let r = router(CITY);
        let (a, b) = (points()[from], points()[to]);
        let departure = if emergency { Departure::emergency(off_peak()) } else { Departure::car(peak()) };
        let eta = r.etas_to(b, &[a], departure).unwrap().remove(0).unwrap();
        let route = r.route(a, b, departure).unwrap();
        prop_assert_eq!(eta, route.duration);
        let step_time: u64 = route.steps.iter().map(|s| s.duration.as_millis()).sum();
        // Step durations are the legs' shares, rounded per leg.
        prop_assert!(step_time.abs_diff(route.duration.as_millis()) <= 2 * route.steps.len() as u64 + 2);
    }

    #[test]
    fn an_emergency_vehicle_is_never_slower_than_a_car(from in 0usize..64, to in 0usize..64) {
        let r = router(CITY);
        let (a, b) = (points()[from], points()[to]);
        let car = r.times_from(a, &[b], peak()).unwrap().remove(0).unwrap();
        let ambulance = r.times_from(a, &[b], Departure::emergency(peak())).unwrap().remove(0).unwrap();
        prop_assert!(ambulance <= car);
    }
}

#[test]
fn raising_speeds_never_increases_a_time() {
    // A router of its own: live speeds change it.
    let mut r = Router::new(graph(CITY), Profile::bogota());
    let now = peak();
    let pts = random_points(&r, 12, 77);
    let before: Vec<Vec<TravelTime>> = pts
        .iter()
        .map(|&p| {
            r.times_from(p, &pts, now)
                .unwrap()
                .into_iter()
                .map(Result::unwrap)
                .collect()
        })
        .collect();
    // Fast observations on every tenth segment.
    let observations: Vec<_> = r
        .segments()
        .step_by(10)
        .map(|segment| routing::SpeedObservation {
            segment,
            speed: Speed::from_kmh(70.0).unwrap(),
            at: now,
        })
        .collect();
    let update = r.observe(&observations, now);
    assert_eq!(update.accepted, observations.len());
    assert!(r.uses_live_speeds(now));
    let mut faster = 0;
    for (i, &p) in pts.iter().enumerate() {
        let after: Vec<TravelTime> = r
            .times_from(p, &pts, now)
            .unwrap()
            .into_iter()
            .map(Result::unwrap)
            .collect();
        for (j, t) in after.iter().enumerate() {
            assert!(*t <= before[i][j], "{i}→{j}: {t} > {}", before[i][j]);
            faster += usize::from(*t < before[i][j]);
        }
        // And the live metric agrees with the reference on it.
        assert_eq!(
            r.times_from(p, &pts, now).unwrap(),
            r.reference_times_from(p, &pts, now).unwrap()
        );
    }
    assert!(faster > 0, "no time improved");
}

#[test]
fn points_far_from_roads_and_empty_source_lists_are_clear_errors() {
    let r = router(CITY);
    let ocean = GeoPoint::new(-30.0, -20.0).unwrap();
    let err = r.snap(ocean).unwrap_err();
    assert!(matches!(err, RoutingError::TooFarFromRoad { .. }), "{err}");
    assert!(err.to_string().contains("from any drivable road"), "{err}");
    let p = points()[0];
    assert!(r.route(p, ocean, peak()).is_err());
    assert!(
        r.catchment(ocean, TravelTime::from_minutes(30), peak())
            .is_err()
    );
    // A far target fails the whole ETA query; a far origin fails only its own slot.
    assert!(r.etas_to(ocean, &[p], peak()).is_err());
    let etas = r.etas_to(p, &[ocean, points()[1]], peak()).unwrap();
    assert!(etas[0].is_err() && etas[1].is_ok());
    assert!(matches!(
        r.coverage(&[], peak()),
        Err(RoutingError::NoSources)
    ));
    // Snapping reports the distance.
    let near = r.snap(p).unwrap();
    assert!(near.distance <= Meters::new(500.0));
    assert!((near.point.distance_to(p).get() - near.distance.get()).abs() < 1e-6);
}

#[test]
fn a_catchment_has_cells_and_an_outline() {
    let r = router(CITY);
    let c = r
        .catchment(points()[3], TravelTime::from_minutes(10), peak())
        .unwrap();
    assert!(c.len() > 50, "{}", c.len());
    let cells = c.cells(CellResolution::Block);
    assert!(!cells.is_empty());
    assert!(
        cells
            .iter()
            .all(|cell| cell.time <= TravelTime::from_minutes(10))
    );
    let area = c.area(CellResolution::Block).unwrap();
    assert!(area.area_m2() > 100_000.0, "{}", area.area_m2());
    // The source's own cell is in it with a short time.
    let first = cells.iter().map(|c| c.time).min().unwrap();
    assert!(first < TravelTime::from_minutes(2));
}

#[test]
fn routes_have_spanish_steps_with_streets() {
    let r = router(CITY);
    let route = r.route(points()[5], points()[6], peak()).unwrap();
    assert!(route.steps.len() >= 2);
    assert!(
        route.steps[0].instruction.starts_with("Diríjase al "),
        "{:?}",
        route.steps[0]
    );
    let named = route.steps.iter().filter(|s| s.street.is_some()).count();
    assert!(named > 0);
    for s in &route.steps[1..route.steps.len() - 1] {
        assert!(
            ["Gire ", "Continúe ", "Haga un giro en U", "En la glorieta"]
                .iter()
                .any(|p| s.instruction.starts_with(p)),
            "{}",
            s.instruction
        );
    }
    assert_eq!(
        route.steps.last().unwrap().instruction,
        "Llegó a su destino"
    );
    let total: f64 = route.steps.iter().map(|s| s.distance.get()).sum();
    assert!(
        (total - route.distance.get()).abs() < 1.0,
        "{total} vs {}",
        route.distance
    );
}

#[test]
fn the_router_can_be_shared_between_threads() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<Router>();
    shareable::<routing::Catchment>();
    // Two threads query one router at once and agree with each other.
    let r = router(CITY);
    let p = points().to_vec();
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let r = std::sync::Arc::clone(&r);
            let p = p.clone();
            std::thread::spawn(move || r.times_from(p[0], &p, peak()).unwrap())
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(results[0], results[1]);
}
