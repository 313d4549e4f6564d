//! Travel times for the dispatch core from the road graph.
//!
//! [`RoadTravelTimes`] implements the core's [`TravelTimes`] port with the `routing`
//! crate (congestion-aware, turn-aware, on the real OpenStreetMap graph) and feeds live
//! speeds from ambulance GPS to it. Queries take a shared lock; live-speed updates take the
//! exclusive lock for the few milliseconds a partial re-customization lasts.
//!
//! Every question the core asks is about an ambulance, so travel times are the profile's
//! **emergency vehicle** times (congested speed × the profile's `emergency_factor`, never
//! above free flow). GPS movement of a unit driving to an incident or with a patient is
//! scaled back by the same factor before it becomes a live (traffic) speed.
//!
//! A point the router cannot use (farther than its snapping limit from any road, or
//! outside the graph) gives `None` for that point, which the core reports as unreachable;
//! when the incident itself cannot be placed on the graph the whole query falls back to
//! the straight-line estimate, logged, so the operator still gets a ranking.

use std::path::Path;
use std::sync::RwLock;

use anyhow::Context;
use dispatch_core::fleet::GpsFix;
use dispatch_core::ids::UnitId;
use dispatch_core::{StraightLine, TravelTimes};
use maps::{GeoPoint, Timestamp, TravelTime};
use routing::{Departure, Profile, RoadGraph, Router, RoutingError};

use crate::telephony::TravelObserver;

/// The road graph behind the core's travel-time port.
#[derive(Debug)]
pub struct RoadTravelTimes {
    router: RwLock<Router>,
    fallback: StraightLine,
}

impl RoadTravelTimes {
    /// Over a prepared router.
    pub fn new(router: Router) -> Self {
        Self {
            router: RwLock::new(router),
            fallback: StraightLine::default(),
        }
    }

    /// Loads a graph file (`regula osm import`) with a profile (the embedded Bogotá
    /// profile when `profile` is `None`).
    pub fn load(graph: &Path, profile: Option<&Path>) -> anyhow::Result<Self> {
        let bytes = std::fs::read(graph)
            .with_context(|| format!("cannot read the road graph {}", graph.display()))?;
        let graph_file = RoadGraph::from_bytes(&bytes)
            .with_context(|| format!("{} is not a usable road graph", graph.display()))?;
        let profile = match profile {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the profile {}", path.display()))?;
                Profile::from_toml(&text)
                    .with_context(|| format!("the profile {} is not valid", path.display()))?
            }
            None => Profile::bogota(),
        };
        Ok(Self::new(Router::new(graph_file, profile)))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Router> {
        // A panic while holding the lock cannot leave the router inconsistent for readers
        // (live updates replace whole metrics), so a poisoned lock is still used.
        self.router
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `f` with the router (benchmarks, routes for crews).
    pub fn with_router<T>(&self, f: impl FnOnce(&Router) -> T) -> T {
        f(&self.read())
    }
}

fn times(
    result: Result<Vec<Result<TravelTime, RoutingError>>, RoutingError>,
) -> Option<Vec<Option<TravelTime>>> {
    match result {
        Ok(times) => Some(times.into_iter().map(Result::ok).collect()),
        Err(e) => {
            tracing::warn!(error = %e, "road graph query failed; using the straight-line estimate");
            None
        }
    }
}

impl TravelTimes for RoadTravelTimes {
    fn times_to_target(
        &self,
        target: GeoPoint,
        origins: &[GeoPoint],
        at: Timestamp,
    ) -> Vec<Option<TravelTime>> {
        times(
            self.read()
                .etas_to(target, origins, Departure::emergency(at)),
        )
        .unwrap_or_else(|| self.fallback.times_to_target(target, origins, at))
    }

    fn times_from_source(
        &self,
        source: GeoPoint,
        targets: &[GeoPoint],
        at: Timestamp,
    ) -> Vec<Option<TravelTime>> {
        times(
            self.read()
                .times_from(source, targets, Departure::emergency(at)),
        )
        .unwrap_or_else(|| self.fallback.times_from_source(source, targets, at))
    }

    fn times_from_nearest(
        &self,
        sources: &[GeoPoint],
        points: &[GeoPoint],
        at: Timestamp,
    ) -> Vec<Option<TravelTime>> {
        match self
            .read()
            .times_from_nearest(sources, points, Departure::emergency(at))
        {
            Ok(nearest) => nearest
                .into_iter()
                .map(|r| r.ok().map(|(_, t)| t))
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "coverage on the road graph failed; using the straight-line estimate");
                self.fallback.times_from_nearest(sources, points, at)
            }
        }
    }
}

impl TravelObserver for RoadTravelTimes {
    fn observe(&self, unit: &UnitId, from: &GpsFix, to: &GpsFix, emergency: bool) {
        let (observations, factor) = {
            let router = self.read();
            (
                router.match_movement((from.point, from.at), (to.point, to.at)),
                router.profile().emergency_factor(),
            )
        };
        let mut observations = match observations {
            Ok(observations) => observations,
            Err(e) => {
                tracing::debug!(%unit, reason = %e, "GPS movement not used for live speeds");
                return;
            }
        };
        if observations.is_empty() {
            return;
        }
        if emergency {
            // A unit under sirens drives faster than the traffic by the profile's
            // emergency factor; the live speed is the traffic's.
            for observation in &mut observations {
                if let Ok(speed) = observation.speed.scaled(1.0 / factor) {
                    observation.speed = speed;
                }
            }
        }
        let mut router = self
            .router
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let update = router.observe(&observations, to.at);
        tracing::debug!(%unit, ?update, "live speeds updated");
    }
}
