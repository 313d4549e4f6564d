//! Shared helpers for the integration tests: real OSM fixtures, a router per fixture, and a
//! deterministic random number generator.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use maps::{GeoPoint, Timestamp};
use routing::{ImportOptions, Profile, RoadGraph, Router};

/// Reads a fixture from `../shared/data/roads/fixtures/`, failing loudly if it is missing.
pub(crate) fn fixture_bytes(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../shared/data/roads/fixtures/{name}.osm.pbf",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!("fixture {path} is missing ({e}); the tests need the shared OSM fixtures")
    })
}

/// The imported graph of a fixture (imported once per test binary).
pub(crate) fn graph(name: &str) -> RoadGraph {
    static GRAPHS: OnceLock<Mutex<HashMap<String, RoadGraph>>> = OnceLock::new();
    let cache = GRAPHS.get_or_init(|| Mutex::new(HashMap::new()));
    let mut cache = cache.lock().unwrap();
    cache
        .entry(name.to_owned())
        .or_insert_with(|| {
            RoadGraph::from_pbf(&fixture_bytes(name), &ImportOptions::default(), &|_| {})
                .unwrap()
                .0
        })
        .clone()
}

/// A router with the Bogotá profile on a fixture, shared by the tests of one binary.
pub(crate) fn router(name: &str) -> Arc<Router> {
    static ROUTERS: OnceLock<Mutex<HashMap<String, Arc<Router>>>> = OnceLock::new();
    let cache = ROUTERS.get_or_init(|| Mutex::new(HashMap::new()));
    let existing = cache.lock().unwrap().get(name).cloned();
    if let Some(r) = existing {
        return r;
    }
    let r = Arc::new(Router::new(graph(name), Profile::bogota()));
    cache
        .lock()
        .unwrap()
        .insert(name.to_owned(), Arc::clone(&r));
    r
}

/// Monday 23 November 2026, 07:30 in Bogotá: the morning peak.
pub(crate) fn peak() -> Timestamp {
    Timestamp::parse_rfc3339("2026-11-23T07:30:00-05:00").unwrap()
}

/// The same Monday at 10:30: off-peak.
pub(crate) fn off_peak() -> Timestamp {
    Timestamp::parse_rfc3339("2026-11-23T10:30:00-05:00").unwrap()
}

/// `SplitMix64`: small, deterministic, good enough to pick test points.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    #[allow(clippy::cast_precision_loss)]
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `n` random points inside the graph's box that snap to a road.
pub(crate) fn random_points(router: &Router, n: usize, seed: u64) -> Vec<GeoPoint> {
    let s = router.graph().summary();
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let p = GeoPoint::new(
            s.min.lon() + rng.unit() * (s.max.lon() - s.min.lon()),
            s.min.lat() + rng.unit() * (s.max.lat() - s.min.lat()),
        )
        .unwrap();
        if router.snap(p).is_ok() {
            out.push(p);
        }
    }
    out
}
