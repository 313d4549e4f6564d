//! Live speeds from ambulance GPS on a real graph: map matching of two fixes, blending,
//! decay back to the profile, and the refusals.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{graph, peak, random_points, router};
use maps::{GeoPoint, Speed, TravelTime};
use routing::{Departure, MatchError, Profile, Router, SpeedObservation};

const CITY: &str = "sao_paulo_centro";

/// Two points on a real route about a kilometre apart, and the car time between them.
fn drive(r: &Router) -> (GeoPoint, GeoPoint, TravelTime) {
    let pts = random_points(r, 40, 31);
    for pair in pts.windows(2) {
        let route = r.route(pair[0], pair[1], peak()).unwrap();
        let geometry = route.geometry.points();
        let mut walked = 0.0;
        for w in geometry.windows(2) {
            walked += w[0].distance_to(w[1]).get();
            if walked > 1000.0 {
                let (a, b) = (geometry[0], w[1]);
                let time = r.times_from(a, &[b], peak()).unwrap().remove(0).unwrap();
                return (a, b, time);
            }
        }
    }
    panic!("no route longer than a kilometre");
}

#[test]
fn two_gps_fixes_become_speed_observations_along_the_driven_path() {
    let r = router(CITY);
    let (a, b, _) = drive(&r);
    let t0 = peak();
    let t1 = t0 + TravelTime::from_secs(180);
    let observations = r.match_movement((a, t0), (b, t1)).unwrap();
    assert!(!observations.is_empty());
    let speed = observations[0].speed.kmh();
    assert!((2.0..=140.0).contains(&speed), "{speed}");
    assert!(
        observations
            .iter()
            .all(|o| o.speed == observations[0].speed)
    );
    // Observed at the middle of the interval.
    assert_eq!(observations[0].at, t0 + TravelTime::from_secs(90));
}

#[test]
fn implausible_or_unusable_fixes_are_refused_with_a_reason() {
    let r = router(CITY);
    let (a, b, _) = drive(&r);
    let t0 = peak();
    assert!(matches!(
        r.match_movement((a, t0), (b, t0)),
        Err(MatchError::NotAfter { .. })
    ));
    assert!(matches!(
        r.match_movement((a, t0), (b, t0 + TravelTime::from_minutes(20))),
        Err(MatchError::IntervalTooLong { .. })
    ));
    let sea = GeoPoint::new(-46.0, -24.5).unwrap();
    assert!(matches!(
        r.match_movement((sea, t0), (b, t0 + TravelTime::from_secs(60))),
        Err(MatchError::OffRoad(_))
    ));
    assert!(matches!(
        r.match_movement((a, t0), (a, t0 + TravelTime::from_secs(60))),
        Err(MatchError::Stationary(_))
    ));
    // A kilometre or more in two seconds.
    let err = r
        .match_movement((a, t0), (b, t0 + TravelTime::from_secs(2)))
        .unwrap_err();
    assert!(matches!(err, MatchError::Speed(_)), "{err}");
    assert!(err.to_string().contains("implausible speed"), "{err}");
}

#[test]
fn observed_slow_traffic_lengthens_times_then_decays_back_to_the_profile() {
    let mut r = Router::new(graph(CITY), Profile::bogota());
    let (a, b, before) = drive(&r);
    let t0 = peak();
    // The crew crawled: the drive took much longer than the profile says.
    let slow = TravelTime::from_millis((before.as_millis() * 17 / 10).min(295_000));
    assert!(slow > before);
    let observations = r.match_movement((a, t0), (b, t0 + slow)).unwrap();
    let now = t0 + slow;
    let update = r.observe(&observations, now);
    assert_eq!(update.accepted, observations.len());
    assert_eq!(update.rejected, 0);
    assert!(update.live_segments > 0);
    assert!(r.uses_live_speeds(now));
    let during = r.times_from(a, &[b], now).unwrap().remove(0).unwrap();
    let profile_only = Router::new(graph(CITY), Profile::bogota())
        .times_from(a, &[b], now)
        .unwrap()
        .remove(0)
        .unwrap();
    assert!(during > profile_only, "{during} vs {profile_only}");
    // Live speeds apply to the live clock's bucket only.
    assert!(!r.uses_live_speeds(now + TravelTime::from_minutes(90)));
    assert_eq!(
        r.times_from(a, &[b], now + TravelTime::from_minutes(90))
            .unwrap(),
        Router::new(graph(CITY), Profile::bogota())
            .times_from(a, &[b], now + TravelTime::from_minutes(90))
            .unwrap()
    );
    // An hour later (six half-lives) the observations have faded away entirely.
    let later = now + TravelTime::from_minutes(60);
    let update = r.observe(&[], later);
    assert_eq!(update.live_segments, 0);
    assert!(!r.uses_live_speeds(later));
}

#[test]
fn future_stale_and_foreign_observations_are_rejected() {
    let mut r = Router::new(graph(CITY), Profile::bogota());
    let now = peak();
    let segment = r.segments().next().unwrap();
    let speed = Speed::from_kmh(20.0).unwrap();
    // A segment of a bigger graph does not exist here.
    let porto = Router::new(graph("porto_portugal"), Profile::bogota());
    let foreign = porto.segments().last().unwrap();
    let update = r.observe(
        &[
            SpeedObservation {
                segment,
                speed,
                at: now + TravelTime::from_minutes(10),
            },
            SpeedObservation {
                segment,
                speed,
                at: now - TravelTime::from_minutes(45),
            },
            SpeedObservation {
                segment: foreign,
                speed,
                at: now,
            },
            SpeedObservation {
                segment,
                speed,
                at: now,
            },
        ],
        now,
    );
    assert_eq!((update.accepted, update.rejected), (1, 3));
    assert_eq!(update.live_segments, 1);
    // The accepted one moved the segment halfway from the profile towards 20 km/h.
    let live = r.segment_speed(segment, now).unwrap().kmh();
    let profile = Router::new(graph(CITY), Profile::bogota())
        .segment_speed(segment, now)
        .unwrap()
        .kmh();
    assert!(
        (live - f64::midpoint(profile, 20.0)).abs() < 0.01,
        "{live} vs {profile}"
    );
    // An emergency vehicle still gets its factor over the live traffic speed.
    let ambulance = r
        .segment_speed(segment, Departure::emergency(now))
        .unwrap()
        .kmh();
    assert!(ambulance >= live);
}

#[test]
fn live_updates_keep_the_fast_queries_equal_to_the_reference() {
    let mut r = Router::new(graph(CITY), Profile::bogota());
    let now = peak();
    let pts = random_points(&r, 10, 5);
    let segments: Vec<_> = r.segments().collect();
    // A first observation makes live speeds apply; the first query customizes the live
    // metric, which later observations update in place.
    let first = SpeedObservation {
        segment: segments[0],
        speed: Speed::from_kmh(10.0).unwrap(),
        at: now,
    };
    r.observe(&[first], now);
    r.prepare(now);
    for round in 0..5usize {
        let observations: Vec<SpeedObservation> = segments
            .iter()
            .skip(round)
            .step_by(37)
            .enumerate()
            .map(|(i, &segment)| SpeedObservation {
                segment,
                speed: Speed::from_kmh(3.0 + f64::from(u32::try_from(i % 60).unwrap())).unwrap(),
                at: now,
            })
            .collect();
        let update = r.observe(&observations, now);
        assert!(update.recomputed_arcs > 0, "round {round}");
        for &p in &pts {
            assert_eq!(
                r.times_from(p, &pts, now).unwrap(),
                r.reference_times_from(p, &pts, now).unwrap(),
                "round {round}"
            );
        }
        let route = r.route(pts[0], pts[1], now).unwrap();
        assert_eq!(
            Ok(route.duration),
            r.reference_times_from(pts[0], &[pts[1]], now)
                .unwrap()
                .remove(0)
        );
    }
}
