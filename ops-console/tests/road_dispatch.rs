//! The dispatch engine on a real road graph (São Paulo centre, a real OSM extract): the
//! recommendation ranks units by congestion-aware road ETA, and GPS movement of a unit
//! feeds live speeds back into the router.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)] // one story per test

use std::sync::Arc;

use dispatch_core::fleet::{GpsFix, Ownership, Provider, UnitKind, UnitRegistration};
use dispatch_core::ids::{OperatorId, UnitId};
use dispatch_core::model::ConfirmedLocation;
use dispatch_core::{Command, Event, Policy, TravelTimes};
use maps::{BoundingBox, GeoPoint, ManualClock, Timestamp, TravelTime};
use ops_console::engine::{CommandKey, Engine, EngineConfig};
use ops_console::store::{EventStore, StoreLocation};
use ops_console::telephony::{ShellEffects, TravelObserver};
use ops_console::travel::RoadTravelTimes;
use routing::{ImportOptions, Profile, RoadGraph, Router};

fn sao_paulo() -> RoadTravelTimes {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/data/roads/fixtures/sao_paulo_centro.osm.pbf"
    );
    let bytes =
        std::fs::read(path).unwrap_or_else(|e| panic!("the OSM fixture {path} is missing ({e})"));
    let (graph, _) = RoadGraph::from_pbf(&bytes, &ImportOptions::default(), &|_| {}).unwrap();
    RoadTravelTimes::new(Router::new(graph, Profile::bogota()))
}

fn region(road: &RoadTravelTimes) -> BoundingBox {
    let summary = road.with_router(|r| r.graph().summary());
    BoundingBox {
        name: "São Paulo centro",
        min_lon: summary.min.lon(),
        min_lat: summary.min.lat(),
        max_lon: summary.max.lon(),
        max_lat: summary.max.lat(),
    }
}

fn on_road(road: &RoadTravelTimes, lon: f64, lat: f64) -> GeoPoint {
    road.with_router(|r| r.snap(GeoPoint::new(lon, lat).unwrap()).unwrap().point)
}

fn register(id: &str, base: GeoPoint) -> Command {
    Command::RegisterUnit {
        registration: UnitRegistration {
            id: UnitId::new(id).unwrap(),
            kind: UnitKind::Tab,
            provider: Provider {
                name: "Ambulâncias de teste".into(),
                ownership: Ownership::Private,
            },
            base,
            crew: vec![],
        },
    }
}

#[tokio::test]
async fn units_are_ranked_by_road_eta_and_gps_movement_feeds_live_speeds() {
    let road = Arc::new(sao_paulo());
    let region = region(&road);
    let centre = on_road(&road, -46.6388, -23.5489);
    let bases = [
        ("TAB-0001", on_road(&road, -46.6300, -23.5400)),
        ("TAB-0002", on_road(&road, -46.6500, -23.5550)),
        ("TAB-0003", on_road(&road, -46.6390, -23.5470)),
    ];
    let start = Timestamp::parse_rfc3339("2026-11-23T12:30:00Z").unwrap();
    let clock = Arc::new(ManualClock::new(start));
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open(&StoreLocation::Sqlite(dir.path().join("r.db")))
        .await
        .unwrap();
    let (call_tx, _call_rx) = tokio::sync::mpsc::channel(8);
    let effects = ShellEffects::new(
        None,
        call_tx,
        clock.clone(),
        Some(road.clone() as Arc<dyn TravelObserver>),
    );
    let (engine, _) = Engine::start(
        store,
        clock.clone(),
        road.clone(),
        Some(Arc::new(effects)),
        EngineConfig {
            policy: Policy {
                region,
                ..Policy::default()
            },
            ..EngineConfig::default()
        },
    )
    .await
    .unwrap();
    let (engine, _task) = engine.spawn();
    for (id, base) in bases {
        engine
            .command(
                CommandKey::new(format!("reg-{id}")).unwrap(),
                register(id, base),
            )
            .await
            .unwrap();
    }
    let reply = engine
        .command(
            CommandKey::new("open").unwrap(),
            Command::OpenIncident {
                call: None,
                operator: OperatorId::new("ana").unwrap(),
                summary: "Queda na rua".into(),
                location: Some(ConfirmedLocation {
                    address: "Praça da Sé".into(),
                    point: centre,
                }),
            },
        )
        .await
        .unwrap();
    let Event::IncidentOpened { incident, .. } = reply.events[0] else {
        panic!()
    };
    let recommendation = engine
        .query(move |d, travel, now| d.recommend_units(incident, travel, now).unwrap())
        .await
        .unwrap();
    let expected: Vec<Option<TravelTime>> =
        road.times_to_target(centre, &bases.map(|(_, p)| p), start);
    assert_eq!(recommendation.candidates.len(), 3);
    for candidate in &recommendation.candidates {
        let index = bases
            .iter()
            .position(|(id, _)| *id == candidate.unit.as_str())
            .unwrap();
        assert_eq!(Some(candidate.eta), expected[index], "{candidate:?}");
    }
    // The first is the fastest, up to the tie window inside which fleet balance decides.
    let fastest = recommendation
        .candidates
        .iter()
        .map(|c| c.eta)
        .min()
        .unwrap();
    assert!(recommendation.candidates[0].eta <= fastest + dispatch_core::recommend::ETA_TIE_WINDOW);

    // A unit drives along a street: two fixes 30 s apart feed a live speed.
    let before = road.with_router(|r| r.uses_live_speeds(start));
    assert!(!before);
    // Two points about 250 m apart along a route the router itself drives.
    let route = road.with_router(|r| r.route(bases[0].1, centre, start).unwrap());
    let points = route.geometry.points();
    let from = points[0];
    let to = *points
        .iter()
        .find(|p| from.distance_to(**p).get() > 250.0)
        .expect("the route is longer than 250 m");
    for (i, (point, at)) in [(from, start), (to, start + TravelTime::from_secs(30))]
        .into_iter()
        .enumerate()
    {
        clock.set(at);
        engine
            .command(
                CommandKey::new(format!("fix-{i}")).unwrap(),
                Command::ReportPosition {
                    unit: UnitId::new("TAB-0001").unwrap(),
                    fix: GpsFix {
                        point,
                        at,
                        speed: None,
                    },
                },
            )
            .await
            .unwrap();
    }
    let after = road.with_router(|r| r.uses_live_speeds(start + TravelTime::from_secs(30)));
    assert!(after, "the GPS movement became a live speed");
}
