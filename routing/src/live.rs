//! Live speeds from ambulance GPS.
//!
//! 1. **Map matching** ([`Router::match_movement`]): two consecutive fixes of one vehicle are
//!    snapped (within [`LiveSettings::match_snap_distance`]), joined by the quickest path, and
//!    checked for plausibility (interval, distance moved, detour, speed). The average speed
//!    over the path becomes one [`SpeedObservation`] per road segment mostly covered.
//! 2. **Blending** ([`Router::observe`]): each segment keeps an estimate. A new observation
//!    `v` at time `τ` updates it as an exponentially weighted moving average whose prior
//!    decays back to the profile:
//!    `prior = λ · estimate + (1 − λ) · profile(τ)`, `λ = 2^(−age / half_life)`, then
//!    `estimate = (1 − α) · prior + α · v` with `α = smoothing`.
//! 3. **Decay**: at the live clock `now` (the latest `now` given to `observe`), the speed
//!    applied is `λ(now) · estimate + (1 − λ(now)) · profile(now)`; a segment whose weight
//!    `λ` falls below 5% is dropped and returns exactly to the profile. Decay is re-evaluated
//!    for every live segment once per [`LiveSettings::decay_step`] (in between, only for
//!    segments with new observations), and applied speeds are refreshed when they move by
//!    more than [`LiveSettings::min_change`].
//! 4. **Scope**: live speeds apply to departures in the same profile time bucket as the live
//!    clock (e.g. the same hour of the same day). Other departures use the profile alone.
//!    Cached live metrics are re-customized in place, partially (only hierarchy arcs whose
//!    triangles changed), so an update costs milliseconds.
//!
//! Observations describe general traffic. Speeds recorded while running with lights and
//! siren are faster than traffic; callers should divide them by the profile's
//! `emergency_factor` (or not feed them).

use maps::{GeoPoint, Meters, Speed, Timestamp, TravelTime};
use rustc_hash::FxHashMap;

use crate::class::RoadClass;
use crate::error::RoutingError;
use crate::graph::index;
use crate::profile::{Departure, Profile, Vehicle, millis};
use crate::router::{Router, lock};

/// Blending, decay and matching settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LiveSettings {
    /// Time for an observation's weight to halve (default 10 min).
    pub half_life: TravelTime,
    /// Weight of a new observation against the prior, in (0, 1] (default 0.5).
    pub smoothing: f64,
    /// Observations older than this (relative to `now`) are refused (default 30 min).
    pub max_age: TravelTime,
    /// Relative change of a segment's speed that triggers re-customization (default 2%).
    pub min_change: f64,
    /// How often decay is re-evaluated for every live segment (default 1 min); in between,
    /// only segments with new observations are re-evaluated.
    pub decay_step: TravelTime,
    /// GPS fixes farther than this from a road are not matched (default 50 m).
    pub match_snap_distance: Meters,
    /// Longest interval between two fixes that is matched (default 5 min).
    pub max_match_interval: TravelTime,
}

impl Default for LiveSettings {
    fn default() -> Self {
        Self {
            half_life: TravelTime::from_minutes(10),
            smoothing: 0.5,
            max_age: TravelTime::from_minutes(30),
            min_change: 0.02,
            decay_step: TravelTime::from_minutes(1),
            match_snap_distance: Meters::new(50.0),
            max_match_interval: TravelTime::from_minutes(5),
        }
    }
}

/// A road segment (one direction of a street between two intersections). Opaque: valid
/// only with the router that produced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RoadSegment(u32);

/// An observed traffic speed on a segment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpeedObservation {
    /// Where.
    pub segment: RoadSegment,
    /// How fast.
    pub speed: Speed,
    /// When (the middle of the interval it was measured over).
    pub at: Timestamp,
}

/// Why two GPS fixes gave no observation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MatchError {
    /// The second fix is not after the first.
    #[error("the second fix ({next}) is not after the first ({prev})")]
    NotAfter {
        /// First fix time.
        prev: Timestamp,
        /// Second fix time.
        next: Timestamp,
    },
    /// Too long between fixes to know the path.
    #[error("{interval} between fixes is more than {max}")]
    IntervalTooLong {
        /// Between the fixes.
        interval: TravelTime,
        /// The limit.
        max: TravelTime,
    },
    /// A fix is off the road network.
    #[error("a fix does not match a road: {0}")]
    OffRoad(RoutingError),
    /// The vehicle barely moved (waiting is not a traffic speed).
    #[error("the vehicle moved only {0} along the road")]
    Stationary(Meters),
    /// The quickest path is far longer than the straight line: the path is a guess.
    #[error("the matched path ({path}) is implausibly longer than the straight line ({straight})")]
    Detour {
        /// Path length.
        path: Meters,
        /// Straight-line distance.
        straight: Meters,
    },
    /// Faster than 140 km/h or slower than 2 km/h.
    #[error("implausible speed {0}")]
    Speed(Speed),
}

/// What an [`Router::observe`] call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct LiveUpdate {
    /// Observations used.
    pub accepted: usize,
    /// Observations refused (future, too old, or from another graph).
    pub rejected: usize,
    /// Segments whose applied speed changed (including those that decayed back).
    pub changed_segments: usize,
    /// Segments with a live speed now.
    pub live_segments: usize,
    /// Hierarchy arcs recomputed in cached live metrics.
    pub recomputed_arcs: usize,
}

#[derive(Debug, Clone, Copy)]
struct LiveArc {
    estimate_kmh: f64,
    observed_at: Timestamp,
    applied_kmh: f64,
}

/// Live speeds of a router.
#[derive(Debug, Clone)]
pub(crate) struct LiveState {
    settings: LiveSettings,
    clock: Option<Timestamp>,
    /// When decay was last re-evaluated for every live segment.
    decayed_at: Option<Timestamp>,
    arcs: FxHashMap<u32, LiveArc>,
    buffers: crate::cch::UpdateBuffers,
}

fn weight(age: TravelTime, half_life: TravelTime) -> f64 {
    let h = half_life.as_secs_f64().max(1e-3);
    (-age.as_secs_f64() / h).exp2()
}

impl LiveState {
    pub(crate) fn new(settings: LiveSettings) -> Self {
        Self {
            settings,
            clock: None,
            decayed_at: None,
            arcs: FxHashMap::default(),
            buffers: crate::cch::UpdateBuffers::default(),
        }
    }

    /// Whether live speeds apply to a departure.
    pub(crate) fn applies(&self, profile: &Profile, at: Timestamp) -> bool {
        !self.arcs.is_empty()
            && self
                .clock
                .is_some_and(|c| profile.absolute_bucket(c) == profile.absolute_bucket(at))
    }

    pub(crate) fn applied_kmh(&self, arc: u32) -> Option<f64> {
        self.arcs.get(&arc).map(|l| l.applied_kmh)
    }
}

impl Router {
    /// Congestion factors of every class at a time (one local-time conversion).
    fn class_factors(&self, at: Timestamp) -> [f64; RoadClass::COUNT] {
        let (day, bucket) = self.profile.bucket(at);
        RoadClass::ALL.map(|c| self.profile.factor(c, day, bucket))
    }

    /// The profile's traffic speed on an arc, given the factors of the moment.
    fn traffic_kmh(&self, arc: u32, factors: &[f64; RoadClass::COUNT]) -> f64 {
        let graph = self.graph_ref();
        let class = graph.arc_class[arc as usize];
        self.profile
            .free_flow_kmh(class, graph.arc_maxspeed[arc as usize])
            * factors[class.index()]
    }

    /// Turns two consecutive GPS fixes of one vehicle into speed observations on the road
    /// segments it drove (see the [module docs](crate::live)).
    pub fn match_movement(
        &self,
        prev: (GeoPoint, Timestamp),
        next: (GeoPoint, Timestamp),
    ) -> Result<Vec<SpeedObservation>, MatchError> {
        let settings = self.live.settings;
        let interval = next
            .1
            .duration_since(prev.1)
            .filter(|d| *d > TravelTime::ZERO)
            .ok_or(MatchError::NotAfter {
                prev: prev.1,
                next: next.1,
            })?;
        if interval > settings.max_match_interval {
            return Err(MatchError::IntervalTooLong {
                interval,
                max: settings.max_match_interval,
            });
        }
        let from = self
            .snap_within(prev.0, settings.match_snap_distance)
            .map_err(MatchError::OffRoad)?;
        let to = self
            .snap_within(next.0, settings.match_snap_distance)
            .map_err(MatchError::OffRoad)?;
        let metric = self.metric(Departure::car(prev.1));
        let (_, spans) =
            self.path(&metric, &from.position, &to.position)
                .ok_or(MatchError::OffRoad(RoutingError::Unreachable {
                    from: prev.0,
                    to: next.0,
                }))?;
        let graph = self.graph_ref();
        let path: Meters = spans
            .iter()
            .map(|&(a, f0, f1)| graph.arc_length(a) * (f1 - f0).max(0.0))
            .sum();
        if path.get() < 25.0 {
            return Err(MatchError::Stationary(path));
        }
        let straight = from.point.distance_to(to.point);
        if path.get() > 2.5 * straight.get() + 150.0 {
            return Err(MatchError::Detour { path, straight });
        }
        let speed =
            Speed::from_distance_and_time(path, interval).ok_or(MatchError::Stationary(path))?;
        if !(2.0..=140.0).contains(&speed.kmh()) {
            return Err(MatchError::Speed(speed));
        }
        let at = prev.1 + TravelTime::from_millis(interval.as_millis() / 2);
        Ok(spans
            .iter()
            .filter(|&&(a, f0, f1)| {
                let covered = graph.arc_length(a).get() * (f1 - f0);
                f1 - f0 >= 0.5 || covered >= 50.0
            })
            .map(|&(a, _, _)| SpeedObservation {
                segment: RoadSegment(a),
                speed,
                at,
            })
            .collect())
    }

    /// Blends observations into the live speeds at live clock `now` and re-customizes the
    /// cached live metrics (see the [module docs](crate::live)).
    pub fn observe(&mut self, observations: &[SpeedObservation], now: Timestamp) -> LiveUpdate {
        let settings = self.live.settings;
        let now = self.live.clock.map_or(now, |c| c.max(now));
        let bucket_changed = self
            .live
            .clock
            .is_none_or(|c| self.profile.absolute_bucket(c) != self.profile.absolute_bucket(now));
        self.live.clock = Some(now);
        if bucket_changed {
            self.live.decayed_at = None;
            self.cache
                .get_mut()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entries
                .retain(|e| !e.0.live);
        }
        let mut update = LiveUpdate::default();
        let arcs = self.graph_ref().arc_count();
        let mut fresh = Vec::new();
        let mut factors_at: Option<(Timestamp, [f64; RoadClass::COUNT])> = None;
        for obs in observations {
            let RoadSegment(arc) = obs.segment;
            let too_new = obs.at > now + TravelTime::from_minutes(1);
            let too_old = now
                .duration_since(obs.at)
                .is_some_and(|age| age > settings.max_age);
            if arc as usize >= arcs || too_new || too_old {
                update.rejected += 1;
                continue;
            }
            let factors = match factors_at {
                Some((at, f)) if at == obs.at => f,
                _ => {
                    let f = self.class_factors(obs.at);
                    factors_at = Some((obs.at, f));
                    f
                }
            };
            let profile = self.traffic_kmh(arc, &factors);
            let v = obs.speed.kmh();
            let prior = self.live.arcs.get(&arc).map_or(profile, |e| {
                let lambda = weight(
                    obs.at.saturating_duration_since(e.observed_at),
                    settings.half_life,
                );
                lambda * e.estimate_kmh + (1.0 - lambda) * profile
            });
            let estimate = (1.0 - settings.smoothing) * prior + settings.smoothing * v;
            let entry = self.live.arcs.entry(arc).or_insert(LiveArc {
                estimate_kmh: estimate,
                observed_at: obs.at,
                applied_kmh: f64::NAN,
            });
            entry.estimate_kmh = estimate;
            entry.observed_at = entry.observed_at.max(obs.at);
            fresh.push(arc);
            update.accepted += 1;
        }
        let changed = self.decay_live(now, &fresh);
        update.changed_segments = changed.len();
        update.live_segments = self.live.arcs.len();
        if !changed.is_empty() {
            update.recomputed_arcs = self.recustomize_live(&changed);
        }
        update
    }

    /// Decays the live speeds to `now` (every segment once per `decay_step`, otherwise only
    /// the `fresh` ones), drops those that have faded, and returns the segments whose applied
    /// speed changed (sorted).
    fn decay_live(&mut self, now: Timestamp, fresh: &[u32]) -> Vec<u32> {
        let settings = self.live.settings;
        let mut changed: Vec<u32> = Vec::new();
        let mut dropped: Vec<u32> = Vec::new();
        let factors_now = self.class_factors(now);
        let everything = self
            .live
            .decayed_at
            .is_none_or(|t| now.saturating_duration_since(t) >= settings.decay_step);
        let arcs: Vec<u32> = if everything {
            self.live.decayed_at = Some(now);
            self.live.arcs.keys().copied().collect()
        } else {
            fresh.to_vec()
        };
        let profile_now: Vec<(u32, f64)> = arcs
            .iter()
            .map(|&a| (a, self.traffic_kmh(a, &factors_now)))
            .collect();
        for (arc, profile) in profile_now {
            let Some(e) = self.live.arcs.get_mut(&arc) else {
                continue;
            };
            let lambda = weight(
                now.saturating_duration_since(e.observed_at),
                settings.half_life,
            );
            if lambda < 0.05 {
                dropped.push(arc);
                continue;
            }
            let target = lambda * e.estimate_kmh + (1.0 - lambda) * profile;
            let moved = e.applied_kmh.is_nan()
                || (target - e.applied_kmh).abs() > settings.min_change * e.applied_kmh;
            if moved {
                e.applied_kmh = target;
                changed.push(arc);
            }
        }
        for arc in &dropped {
            self.live.arcs.remove(arc);
        }
        changed.extend(dropped);
        changed.sort_unstable();
        changed.dedup();
        changed
    }

    /// Re-customizes the cached live metrics in place for `changed` segments; returns the
    /// number of hierarchy arcs recomputed.
    fn recustomize_live(&mut self, changed: &[u32]) -> usize {
        let mut recomputed = 0;
        let Self {
            shared,
            profile,
            cache,
            live,
            ..
        } = self;
        let graph = &shared.graph;
        let cache = cache
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (key, metric, _) in cache.entries.iter_mut().filter(|e| e.0.live) {
            let metric = std::sync::Arc::make_mut(metric);
            for &a in changed {
                let i = a as usize;
                let class: RoadClass = graph.arc_class[i];
                let free = profile.free_flow_kmh(class, graph.arc_maxspeed[i]);
                let traffic = live
                    .applied_kmh(a)
                    .unwrap_or_else(|| free * profile.factor(class, key.day, key.bucket));
                metric.arc_ms[i] = millis(
                    graph.arc_length_cm[i],
                    profile.for_vehicle(traffic, free, key.vehicle),
                );
            }
            recomputed += metric.update(
                &graph.cch,
                &graph.edge_arc,
                &graph.arc_edge_first,
                &graph.arc_edges,
                changed,
                &mut live.buffers,
            );
        }
        recomputed
    }

    /// Segments with a live speed: `(from, to, applied speed)` by their end points.
    pub fn live_segments(&self) -> Vec<(GeoPoint, GeoPoint, Speed)> {
        let graph = self.graph_ref();
        let mut out: Vec<(u32, f64)> = self
            .live
            .arcs
            .iter()
            .map(|(&a, l)| (a, l.applied_kmh))
            .collect();
        out.sort_unstable_by_key(|x| x.0);
        out.into_iter()
            .filter_map(|(a, kmh)| {
                let speed = Speed::from_kmh(kmh).ok()?;
                Some((
                    graph.node_point[graph.arc_tail[a as usize] as usize],
                    graph.node_point[graph.arc_head[a as usize] as usize],
                    speed,
                ))
            })
            .collect()
    }

    /// A segment by its end points (OSM node ids), e.g. to build observations from another
    /// source of traffic data.
    pub fn segment_between(&self, from_osm: i64, to_osm: i64) -> Option<RoadSegment> {
        let graph = self.graph_ref();
        (0..graph.arc_count())
            .find(|&a| {
                graph.node_osm[graph.arc_tail[a] as usize] == from_osm
                    && graph.node_osm[graph.arc_head[a] as usize] == to_osm
            })
            .map(|a| RoadSegment(index(a)))
    }

    /// Every segment (for synthetic feeds and benchmarks), in a fixed order.
    pub fn segments(&self) -> impl Iterator<Item = RoadSegment> + use<'_> {
        (0..self.graph_ref().arc_count()).map(|a| RoadSegment(index(a)))
    }

    /// The time to drive a whole segment at a departure (profile and live speeds).
    pub fn segment_time(
        &self,
        segment: RoadSegment,
        departure: impl Into<Departure>,
    ) -> Option<TravelTime> {
        let metric = self.metric(departure.into());
        metric
            .arc_ms
            .get(segment.0 as usize)
            .map(|&ms| TravelTime::from_millis(u64::from(ms)))
    }

    /// Whether a departure would use live speeds.
    pub fn uses_live_speeds(&self, at: Timestamp) -> bool {
        self.live.applies(&self.profile, at)
    }

    /// How many metrics are cached (for tests and monitoring).
    pub fn cached_metrics(&self) -> usize {
        lock(&self.cache).entries.len()
    }

    /// The vehicle-independent traffic speed on a segment at a departure.
    pub fn segment_speed(
        &self,
        segment: RoadSegment,
        departure: impl Into<Departure>,
    ) -> Option<Speed> {
        let departure = departure.into();
        let graph = self.graph_ref();
        let a = segment.0 as usize;
        if a >= graph.arc_count() {
            return None;
        }
        let key = self.metric_key(Departure {
            vehicle: Vehicle::Car,
            ..departure
        });
        let free = self
            .profile
            .free_flow_kmh(graph.arc_class[a], graph.arc_maxspeed[a]);
        let traffic = match (key.live, self.live.applied_kmh(segment.0)) {
            (true, Some(kmh)) => kmh,
            _ => free * self.profile.factor(graph.arc_class[a], key.day, key.bucket),
        };
        Speed::from_kmh(self.profile.for_vehicle(traffic, free, departure.vehicle)).ok()
    }
}
