//! The query API: [`Router`] answers catchments, ETAs, routes and snapping on a
//! [`RoadGraph`] with a [`Profile`] and live speeds.
//!
//! **Concurrency.** Queries take `&self` and the router is `Send + Sync`: it can be shared
//! (e.g. in an `Arc`) by blocking threads. Customized metrics are cached per (time bucket,
//! vehicle, live or not) in a small LRU behind a mutex that is held only to look up or insert
//! (customization itself runs outside the lock). Live-speed updates take `&mut self`
//! ([`Router::observe`]) and re-customize the cached live metrics in place.
//!
//! **Positions.** A point is snapped to the nearest road piece; a source on a two-way street
//! may leave in either direction, a target may be reached from either direction. A source
//! at fraction `f` of arc `a` starts at the routing node `a` leads to, with `(1 − f) · time(a)`
//! already spent; a target at fraction `g` of arc `b` is reached from every routing node an
//! edge of `b` leaves from, adding `g · time(b)`. A source and a target on the same arc, the
//! target ahead, are also joined directly. All of this is exact in integer milliseconds
//! and shared with the reference Dijkstra ([`crate::reference`]).

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use maps::{Area, Cell, CellError, CellResolution, GeoPoint, Meters, Polyline, TravelTime};
use rayon::prelude::*;

use crate::cch::{self, Direction, INF, LANES, Metric, PACKED_INF, Scratch};
use crate::error::RoutingError;
use crate::graph::{FLAG_REVERSED, NONE, RoadGraph, index};
use crate::live::LiveState;
use crate::profile::{DayType, Departure, Profile, Vehicle, millis};
use crate::snap::{Position, SnapIndex};
use crate::steps::{self, Step};

/// Settings of a [`Router`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RouterOptions {
    /// Points farther than this from every road are refused (default 500 m).
    pub max_snap_distance: Meters,
    /// How many customized metrics to keep (default 6; each costs about 8 bytes per
    /// hierarchy arc plus 4 per road arc).
    pub metric_cache: usize,
    /// Live-speed blending and decay.
    pub live: crate::live::LiveSettings,
}

impl Default for RouterOptions {
    fn default() -> Self {
        Self {
            max_snap_distance: Meters::new(500.0),
            metric_cache: 6,
            live: crate::live::LiveSettings::default(),
        }
    }
}

/// A point snapped to the road network.
#[derive(Debug, Clone, PartialEq)]
pub struct Snap {
    /// The point given.
    pub query: GeoPoint,
    /// The nearest point on a drivable road.
    pub point: GeoPoint,
    /// Distance between the two.
    pub distance: Meters,
    /// Street name (OSM `name`, else `ref`), if any.
    pub street: Option<String>,
    pub(crate) position: Position,
}

/// The graph and what is derived from it once, shared with query results.
pub(crate) struct Shared {
    pub(crate) graph: RoadGraph,
    pub(crate) snap: SnapIndex,
    node_cells: [OnceLock<Vec<Cell>>; 3],
}

impl Shared {
    fn node_cells(&self, resolution: CellResolution) -> &[Cell] {
        let slot = match resolution {
            CellResolution::District => &self.node_cells[0],
            CellResolution::Coverage => &self.node_cells[1],
            CellResolution::Block => &self.node_cells[2],
        };
        slot.get_or_init(|| {
            self.graph
                .node_point
                .par_iter()
                .map(|&p| Cell::containing(p, resolution))
                .collect()
        })
    }
}

/// Which metric: the profile at a bucket for a vehicle, with or without live speeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct MetricKey {
    pub(crate) day: DayType,
    pub(crate) bucket: usize,
    pub(crate) vehicle: Vehicle,
    pub(crate) live: bool,
}

/// A small LRU of customized metrics.
#[derive(Debug, Default)]
pub(crate) struct MetricCache {
    pub(crate) entries: Vec<(MetricKey, Arc<Metric>, u64)>,
    tick: u64,
}

impl MetricCache {
    fn get(&mut self, key: MetricKey) -> Option<Arc<Metric>> {
        self.tick += 1;
        let tick = self.tick;
        self.entries.iter_mut().find(|e| e.0 == key).map(|e| {
            e.2 = tick;
            Arc::clone(&e.1)
        })
    }

    fn insert(&mut self, key: MetricKey, metric: Arc<Metric>, capacity: usize) {
        self.tick += 1;
        if let Some(e) = self.entries.iter_mut().find(|e| e.0 == key) {
            e.1 = metric;
            e.2 = self.tick;
            return;
        }
        while self.entries.len() >= capacity.max(1) {
            let oldest = self
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.2)
                .map_or(0, |(i, _)| i);
            self.entries.swap_remove(oldest);
        }
        self.entries.push((key, metric, self.tick));
    }
}

/// Answers travel-time questions on one road graph. See the [module docs](crate::router).
pub struct Router {
    pub(crate) shared: Arc<Shared>,
    pub(crate) profile: Profile,
    pub(crate) options: RouterOptions,
    pub(crate) cache: Mutex<MetricCache>,
    pub(crate) live: LiveState,
    scratch: Mutex<Vec<Scratch>>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("graph", &self.shared.graph)
            .field("profile", &self.profile.name())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// Road-arc spans of a path: `(arc, from fraction, to fraction)`.
pub(crate) type Spans = Vec<(u32, f64, f64)>;

/// `(node, milliseconds)` pairs of a catchment.
type NodeTimes = Vec<(u32, u32)>;

/// Per point: the index of the nearest source and the time from it.
pub type NearestTimes = Vec<Result<(usize, TravelTime), RoutingError>>;

/// A source or target seed: routing node, initial distance, and the arc and along-arc
/// fraction it stands for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Seed {
    pub(crate) node: u32,
    pub(crate) offset: u32,
    pub(crate) arc: u32,
    pub(crate) fraction: f64,
}

impl Router {
    /// A router with default options.
    pub fn new(graph: RoadGraph, profile: Profile) -> Self {
        Self::with_options(graph, profile, RouterOptions::default())
    }

    /// A router with explicit options.
    pub fn with_options(graph: RoadGraph, profile: Profile, options: RouterOptions) -> Self {
        let snap = SnapIndex::new(&graph);
        Self {
            shared: Arc::new(Shared {
                graph,
                snap,
                node_cells: [OnceLock::new(), OnceLock::new(), OnceLock::new()],
            }),
            profile,
            live: LiveState::new(options.live),
            options,
            cache: Mutex::new(MetricCache::default()),
            scratch: Mutex::new(Vec::new()),
        }
    }

    /// The graph.
    pub fn graph(&self) -> &RoadGraph {
        &self.shared.graph
    }

    /// The profile.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    pub(crate) fn graph_ref(&self) -> &RoadGraph {
        &self.shared.graph
    }

    // ---- snapping -------------------------------------------------------------------

    /// The nearest point on a drivable road, or [`RoutingError::TooFarFromRoad`].
    pub fn snap(&self, point: GeoPoint) -> Result<Snap, RoutingError> {
        self.snap_within(point, self.options.max_snap_distance)
    }

    /// Snaps many points (in parallel when there are many).
    pub fn snap_many(&self, points: &[GeoPoint]) -> Vec<Result<Snap, RoutingError>> {
        if points.len() >= 64 {
            points.par_iter().map(|&p| self.snap(p)).collect()
        } else {
            points.iter().map(|&p| self.snap(p)).collect()
        }
    }

    pub(crate) fn snap_within(&self, point: GeoPoint, max: Meters) -> Result<Snap, RoutingError> {
        let graph = self.graph_ref();
        let position = self
            .shared
            .snap
            .nearest(graph, point, max.get())
            .ok_or(RoutingError::TooFarFromRoad { point, max })?;
        let distance = Meters::new(position.distance_m);
        if distance > max {
            return Err(RoutingError::TooFarFromRoad { point, max });
        }
        let street = graph
            .names
            .get(graph.piece_name[position.piece as usize] as usize)
            .cloned();
        Ok(Snap {
            query: point,
            point: position.point,
            distance,
            street,
            position,
        })
    }

    // ---- metrics --------------------------------------------------------------------

    pub(crate) fn metric_key(&self, departure: Departure) -> MetricKey {
        let (day, bucket) = self.profile.bucket(departure.at);
        MetricKey {
            day,
            bucket,
            vehicle: departure.vehicle,
            live: self.live.applies(&self.profile, departure.at),
        }
    }

    /// Road-arc travel times for a key (live values where the key says so).
    pub(crate) fn arc_times(&self, key: MetricKey) -> Vec<u32> {
        let graph = self.graph_ref();
        let factors: Vec<f64> = crate::class::RoadClass::ALL
            .iter()
            .map(|&c| self.profile.factor(c, key.day, key.bucket))
            .collect();
        (0..graph.arc_count())
            .map(|a| {
                let class = graph.arc_class[a];
                let free = self.profile.free_flow_kmh(class, graph.arc_maxspeed[a]);
                let traffic = match (key.live, self.live.applied_kmh(index(a))) {
                    (true, Some(live)) => live,
                    _ => free * factors[class.index()],
                };
                let kmh = self.profile.for_vehicle(traffic, free, key.vehicle);
                millis(graph.arc_length_cm[a], kmh)
            })
            .collect()
    }

    pub(crate) fn customize(&self, key: MetricKey) -> Metric {
        let graph = self.graph_ref();
        Metric::customize(&graph.cch, self.arc_times(key), &graph.edge_arc)
    }

    /// The customized metric for a departure, from the cache or freshly customized.
    pub(crate) fn metric(&self, departure: Departure) -> Arc<Metric> {
        let key = self.metric_key(departure);
        if let Some(m) = lock(&self.cache).get(key) {
            return m;
        }
        let metric = Arc::new(self.customize(key));
        lock(&self.cache).insert(key, Arc::clone(&metric), self.options.metric_cache);
        metric
    }

    /// Prepares (customizes and caches) the metric for a departure ahead of queries.
    pub fn prepare(&self, departure: impl Into<Departure>) {
        let _ = self.metric(departure.into());
    }

    /// Drops every cached metric (they are rebuilt on demand).
    pub fn clear_cache(&mut self) {
        self.cache
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .entries
            .clear();
    }

    // ---- seeds ----------------------------------------------------------------------

    /// Fraction of arc `a` (in driving direction) of a position on its piece.
    pub(crate) fn along(&self, a: u32, position: &Position) -> f64 {
        if self.graph_ref().arc_flags[a as usize] & FLAG_REVERSED != 0 {
            1.0 - position.fraction
        } else {
            position.fraction
        }
    }

    pub(crate) fn piece_arcs(&self, position: &Position) -> impl Iterator<Item = u32> + '_ {
        self.shared.snap.piece_arcs[position.piece as usize]
            .into_iter()
            .filter(|&a| a != NONE)
    }

    pub(crate) fn source_seeds(&self, metric: &Metric, position: &Position) -> Vec<Seed> {
        self.piece_arcs(position)
            .map(|a| {
                let f = self.along(a, position);
                Seed {
                    node: self.graph_ref().arc_target[a as usize],
                    offset: to_end(metric, a, f),
                    arc: a,
                    fraction: f,
                }
            })
            .collect()
    }

    pub(crate) fn target_seeds(&self, metric: &Metric, position: &Position) -> Vec<Seed> {
        let graph = self.graph_ref();
        let mut seeds = Vec::new();
        for b in self.piece_arcs(position) {
            let g = self.along(b, position);
            let into = from_start(metric, b, g);
            for &e in &graph.arc_edges[graph.edges_of_arc(b)] {
                seeds.push(Seed {
                    node: graph.edge_tail[e as usize],
                    offset: into,
                    arc: b,
                    fraction: g,
                });
            }
        }
        seeds
    }

    /// The time along one arc when source and target lie on it, target ahead.
    pub(crate) fn direct(
        &self,
        metric: &Metric,
        from: &Position,
        to: &Position,
    ) -> Option<(u32, u32, f64, f64)> {
        if from.piece != to.piece {
            return None;
        }
        self.piece_arcs(from)
            .filter_map(|a| {
                let (fs, ft) = (self.along(a, from), self.along(a, to));
                (fs <= ft).then(|| {
                    (
                        from_start(metric, a, ft) - from_start(metric, a, fs),
                        a,
                        fs,
                        ft,
                    )
                })
            })
            .min_by_key(|c| c.0)
    }

    // ---- scratch --------------------------------------------------------------------

    pub(crate) fn with_scratch<R>(&self, f: impl FnOnce(&mut Scratch) -> R) -> R {
        let n = self.graph_ref().routing_count();
        let mut scratch = lock(&self.scratch).pop().unwrap_or_else(|| Scratch::new(n));
        let result = f(&mut scratch);
        scratch.reset();
        lock(&self.scratch).push(scratch);
        result
    }

    // ---- catchments -----------------------------------------------------------------

    /// Every node reachable from `source` within `budget`, with its earliest arrival.
    pub fn catchment(
        &self,
        source: GeoPoint,
        budget: TravelTime,
        departure: impl Into<Departure>,
    ) -> Result<Catchment, RoutingError> {
        let departure = departure.into();
        let snap = self.snap(source)?;
        let metric = self.metric(departure);
        let graph = self.graph_ref();
        let seeds: Vec<(u32, u32)> = self
            .source_seeds(&metric, &snap.position)
            .iter()
            .map(|s| (s.node, s.offset))
            .collect();
        let reached = self.with_scratch(|scratch| {
            let mut full = std::mem::take(&mut scratch.full);
            full.clear();
            full.resize(graph.routing_count(), INF);
            cch::phast(
                &graph.cch,
                &metric,
                Direction::Forward,
                &seeds,
                scratch,
                &mut full,
            );
            let reached = reached_nodes(graph, budget, |a| full[a]);
            scratch.full = full;
            reached
        });
        Ok(Catchment {
            shared: Arc::clone(&self.shared),
            source: snap,
            budget,
            reached,
        })
    }

    /// Catchments of many sources (e.g. every emergency department), eight sources per
    /// sweep, sweeps in parallel across cores. One result per source, in order.
    pub fn catchments(
        &self,
        sources: &[GeoPoint],
        budget: TravelTime,
        departure: impl Into<Departure>,
    ) -> Vec<Result<Catchment, RoutingError>> {
        let departure = departure.into();
        let metric = self.metric(departure);
        let graph = self.graph_ref();
        let snaps: Vec<Result<Snap, RoutingError>> = self.snap_many(sources);
        let ok: Vec<(usize, &Snap)> = snaps
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().ok().map(|s| (i, s)))
            .collect();
        let chunks: Vec<&[(usize, &Snap)]> = ok.chunks(LANES).collect();
        let computed: Vec<Vec<(usize, NodeTimes)>> = chunks
            .par_iter()
            .map(|chunk| {
                let seeds: Vec<Vec<(u32, u32)>> = chunk
                    .iter()
                    .map(|(_, s)| {
                        self.source_seeds(&metric, &s.position)
                            .iter()
                            .map(|s| (s.node, s.offset))
                            .collect()
                    })
                    .collect();
                self.with_scratch(|scratch| {
                    let mut lanes = std::mem::take(&mut scratch.lanes);
                    lanes.clear();
                    lanes.resize(graph.routing_count(), [INF; LANES]);
                    cch::phast_lanes(
                        &graph.cch,
                        &metric,
                        Direction::Forward,
                        &seeds,
                        scratch,
                        &mut lanes,
                    );
                    let out = chunk
                        .iter()
                        .enumerate()
                        .map(|(lane, &(i, _))| {
                            (i, reached_nodes(graph, budget, |a| lanes[a][lane]))
                        })
                        .collect();
                    scratch.lanes = lanes;
                    out
                })
            })
            .collect();
        let mut reached: Vec<Option<Vec<(u32, u32)>>> = vec![None; sources.len()];
        for (i, r) in computed.into_iter().flatten() {
            reached[i] = Some(r);
        }
        snaps
            .into_iter()
            .zip(reached)
            .map(|(snap, r)| {
                let source = snap?;
                Ok(Catchment {
                    shared: Arc::clone(&self.shared),
                    source,
                    budget,
                    reached: r.unwrap_or_default(),
                })
            })
            .collect()
    }

    /// For every node, the nearest source (by travel time from it) and that time: the
    /// coverage layer of a set of facilities. Sources that do not snap are ignored (their
    /// errors are returned alongside).
    pub fn coverage(
        &self,
        sources: &[GeoPoint],
        departure: impl Into<Departure>,
    ) -> Result<Coverage, RoutingError> {
        let departure = departure.into();
        let metric = self.metric(departure);
        let graph = self.graph_ref();
        let mut skipped = Vec::new();
        let mut seeds = Vec::new();
        for (i, &p) in sources.iter().enumerate() {
            match self.snap(p) {
                Ok(s) => seeds.extend(
                    self.source_seeds(&metric, &s.position)
                        .iter()
                        .map(|seed| (seed.node, (u64::from(seed.offset) << 32) | i as u64)),
                ),
                Err(e) => skipped.push((i, e)),
            }
        }
        if seeds.is_empty() {
            return Err(skipped
                .into_iter()
                .next()
                .map_or(RoutingError::NoSources, |e| e.1));
        }
        let dist = self.with_scratch(|scratch| {
            let mut dist = vec![PACKED_INF; graph.routing_count()];
            cch::phast_nearest(&graph.cch, &metric, &seeds, scratch, &mut dist);
            dist
        });
        let mut best = vec![PACKED_INF; graph.node_count()];
        for (r, &d) in dist.iter().enumerate() {
            let v = graph.rnode_base[r] as usize;
            best[v] = best[v].min(d);
        }
        Ok(Coverage {
            shared: Arc::clone(&self.shared),
            nodes: best,
            arcs: dist,
            skipped,
        })
    }

    /// For each point, the shortest time from any source (coverage at given points).
    pub fn times_from_nearest(
        &self,
        sources: &[GeoPoint],
        points: &[GeoPoint],
        departure: impl Into<Departure>,
    ) -> Result<NearestTimes, RoutingError> {
        let departure = departure.into();
        let coverage = self.coverage(sources, departure)?;
        let metric = self.metric(departure);
        let source_positions: Vec<Option<Position>> = sources
            .iter()
            .map(|&p| self.snap(p).ok().map(|s| s.position))
            .collect();
        Ok(points
            .iter()
            .map(|&p| {
                let snap = self.snap(p)?;
                let mut best = PACKED_INF;
                for seed in self.target_seeds(&metric, &snap.position) {
                    best = best
                        .min(coverage.arcs[seed.node as usize] + (u64::from(seed.offset) << 32));
                }
                for (i, s) in source_positions.iter().enumerate() {
                    if let Some(s) = s
                        && let Some(d) = self.direct(&metric, s, &snap.position)
                    {
                        best = best.min((u64::from(d.0) << 32) | i as u64);
                    }
                }
                unpack_packed(best).ok_or(RoutingError::Unreachable {
                    from: sources[0],
                    to: p,
                })
            })
            .collect())
    }

    // ---- ETAs -----------------------------------------------------------------------

    /// Travel times from each origin (e.g. ambulances) to `target` (an incident). The outer
    /// error is about the target; each origin has its own result.
    pub fn etas_to(
        &self,
        target: GeoPoint,
        origins: &[GeoPoint],
        departure: impl Into<Departure>,
    ) -> Result<Vec<Result<TravelTime, RoutingError>>, RoutingError> {
        let departure = departure.into();
        let target_snap = self.snap(target)?;
        let metric = self.metric(departure);
        let origin_snaps: Vec<Result<Snap, RoutingError>> = self.snap_many(origins);
        let targets: Vec<(u32, u32)> = self
            .target_seeds(&metric, &target_snap.position)
            .iter()
            .map(|s| (s.node, s.offset))
            .collect();
        let origin_seeds: Vec<Vec<Seed>> = origin_snaps
            .iter()
            .map(|s| {
                s.as_ref()
                    .map_or_else(|_| Vec::new(), |s| self.source_seeds(&metric, &s.position))
            })
            .collect();
        let times = self.many_to_one(&metric, Direction::Backward, &targets, &origin_seeds);
        Ok(origin_snaps
            .into_iter()
            .zip(times)
            .zip(origins)
            .map(|((snap, t), &origin)| {
                let snap = snap?;
                let direct = self
                    .direct(&metric, &snap.position, &target_snap.position)
                    .map_or(INF, |d| d.0);
                let t = t.min(direct);
                if t >= INF {
                    Err(RoutingError::Unreachable {
                        from: origin,
                        to: target,
                    })
                } else {
                    Ok(TravelTime::from_millis(u64::from(t)))
                }
            })
            .collect())
    }

    /// Travel times from `source` to each target.
    pub fn times_from(
        &self,
        source: GeoPoint,
        targets: &[GeoPoint],
        departure: impl Into<Departure>,
    ) -> Result<Vec<Result<TravelTime, RoutingError>>, RoutingError> {
        let departure = departure.into();
        let source_snap = self.snap(source)?;
        let metric = self.metric(departure);
        let target_snaps: Vec<Result<Snap, RoutingError>> = self.snap_many(targets);
        let sources: Vec<(u32, u32)> = self
            .source_seeds(&metric, &source_snap.position)
            .iter()
            .map(|s| (s.node, s.offset))
            .collect();
        let target_seeds: Vec<Vec<Seed>> = target_snaps
            .iter()
            .map(|s| {
                s.as_ref()
                    .map_or_else(|_| Vec::new(), |s| self.target_seeds(&metric, &s.position))
            })
            .collect();
        let times = self.many_to_one(&metric, Direction::Forward, &sources, &target_seeds);
        Ok(target_snaps
            .into_iter()
            .zip(times)
            .zip(targets)
            .map(|((snap, t), &target)| {
                let snap = snap?;
                let direct = self
                    .direct(&metric, &source_snap.position, &snap.position)
                    .map_or(INF, |d| d.0);
                let t = t.min(direct);
                if t >= INF {
                    Err(RoutingError::Unreachable {
                        from: source,
                        to: target,
                    })
                } else {
                    Ok(TravelTime::from_millis(u64::from(t)))
                }
            })
            .collect())
    }

    /// RPHAST: one climb from `center` seeds in `direction`, a sweep restricted to the
    /// ancestors of every other seed set, and per set the best `offset + distance`.
    fn many_to_one(
        &self,
        metric: &Metric,
        direction: Direction,
        center: &[(u32, u32)],
        others: &[Vec<Seed>],
    ) -> Vec<u32> {
        let graph = self.graph_ref();
        let topo = &graph.cch;
        self.with_scratch(|scratch| {
            let stamp = scratch.next_stamp();
            let mut visited = Vec::new();
            cch::climb(
                topo,
                metric,
                direction,
                center,
                &mut scratch.dist,
                &mut scratch.pred,
                &mut scratch.mark,
                stamp,
                &mut visited,
            );
            scratch.touched.extend_from_slice(&visited);
            let stamp = scratch.next_stamp();
            let nodes: Vec<u32> = others.iter().flatten().map(|s| s.node).collect();
            let mut selection = Vec::new();
            cch::ancestors(topo, &nodes, &mut scratch.mark, stamp, &mut selection);
            // Descending rank: a scan of the marks is cheaper than sorting the selection.
            selection.clear();
            selection.extend(
                (0..index(scratch.mark.len()))
                    .rev()
                    .filter(|&v| scratch.mark[v as usize] == stamp),
            );
            let descend = match direction {
                Direction::Forward => &metric.down,
                Direction::Backward => &metric.up,
            };
            cch::restricted_sweep(topo, descend, &selection, &mut scratch.dist);
            scratch.touched.extend_from_slice(&selection);
            others
                .iter()
                .map(|seeds| {
                    seeds
                        .iter()
                        .map(|s| scratch.dist[s.node as usize] + s.offset)
                        .min()
                        .unwrap_or(INF)
                        .min(INF)
                })
                .collect()
        })
    }

    // ---- routes ---------------------------------------------------------------------

    /// The quickest route with geometry and turn-by-turn steps in Spanish.
    pub fn route(
        &self,
        from: GeoPoint,
        to: GeoPoint,
        departure: impl Into<Departure>,
    ) -> Result<Route, RoutingError> {
        let departure = departure.into();
        let from_snap = self.snap(from)?;
        let to_snap = self.snap(to)?;
        let metric = self.metric(departure);
        let path = self
            .path(&metric, &from_snap.position, &to_snap.position)
            .ok_or(RoutingError::Unreachable { from, to })?;
        Ok(self.assemble(&metric, path, from_snap, to_snap))
    }

    /// The quickest path between two positions as arc spans `(arc, from fraction, to
    /// fraction)` and its time.
    pub(crate) fn path(
        &self,
        metric: &Metric,
        from: &Position,
        to: &Position,
    ) -> Option<(u32, Spans)> {
        let graph = self.graph_ref();
        let topo = &graph.cch;
        let sources = self.source_seeds(metric, from);
        let targets = self.target_seeds(metric, to);
        let direct = self.direct(metric, from, to);
        self.with_scratch(|scratch| {
            let s: Vec<(u32, u32)> = sources.iter().map(|s| (s.node, s.offset)).collect();
            let t: Vec<(u32, u32)> = targets.iter().map(|s| (s.node, s.offset)).collect();
            let stamp = scratch.next_stamp();
            let mut up_visited = Vec::new();
            cch::climb(
                topo,
                metric,
                Direction::Forward,
                &s,
                &mut scratch.dist,
                &mut scratch.pred,
                &mut scratch.mark,
                stamp,
                &mut up_visited,
            );
            scratch.touched.extend_from_slice(&up_visited);
            let stamp = scratch.next_stamp();
            let mut down_visited = Vec::new();
            cch::climb(
                topo,
                metric,
                Direction::Backward,
                &t,
                &mut scratch.dist2,
                &mut scratch.pred2,
                &mut scratch.mark,
                stamp,
                &mut down_visited,
            );
            scratch.touched2.extend_from_slice(&down_visited);
            let mut best = INF;
            let mut meet = NONE;
            for &v in &up_visited {
                let total = scratch.dist[v as usize] + scratch.dist2[v as usize];
                if total < best {
                    best = total;
                    meet = v;
                }
            }
            if let Some((d, a, fs, ft)) = direct
                && d <= best
            {
                return Some((d, vec![(a, fs, ft)]));
            }
            if meet == NONE {
                return None;
            }
            let spans = self.unpack_path(metric, scratch, meet, &sources, &targets)?;
            Some((best, spans))
        })
    }

    /// The arc spans of the path through `meet` found by the two climbs in `scratch`.
    fn unpack_path(
        &self,
        metric: &Metric,
        scratch: &Scratch,
        meet: u32,
        sources: &[Seed],
        targets: &[Seed],
    ) -> Option<Spans> {
        let graph = self.graph_ref();
        let topo = &graph.cch;
        // Forward chain down to a source seed.
        let mut up_arcs = Vec::new();
        let mut v = meet;
        while scratch.pred[v as usize] != NONE {
            let k = scratch.pred[v as usize] as usize;
            up_arcs.push(k);
            v = topo.down_tail_of(k);
        }
        let start = v;
        up_arcs.reverse();
        let mut hops: Vec<u32> = Vec::new();
        for k in up_arcs {
            cch::unpack(topo, metric, &graph.edge_arc, k, true, &mut hops);
        }
        // Backward chain down to a target seed.
        let mut v = meet;
        while scratch.pred2[v as usize] != NONE {
            let k = scratch.pred2[v as usize] as usize;
            cch::unpack(topo, metric, &graph.edge_arc, k, false, &mut hops);
            v = topo.down_tail_of(k);
        }
        let end = v;
        if hops.contains(&NONE) {
            return None;
        }
        let source = sources
            .iter()
            .filter(|s| s.node == start)
            .min_by_key(|s| s.offset)?;
        let end_distance = scratch.dist2[end as usize];
        let target = targets
            .iter()
            .find(|s| s.node == end && s.offset == end_distance)?;
        debug_assert!(
            hops.first()
                .is_none_or(|&e| graph.edge_tail[e as usize] == start)
        );
        debug_assert!(
            hops.windows(2)
                .all(|w| graph.edge_head(w[0] as usize) == graph.edge_tail[w[1] as usize])
        );
        debug_assert!(
            hops.last()
                .is_none_or(|&e| graph.edge_head(e as usize) == end)
        );
        let mut spans = vec![(source.arc, source.fraction, 1.0)];
        spans.extend(hops.iter().map(|&e| (graph.edge_arc[e as usize], 0.0, 1.0)));
        spans.push((target.arc, 0.0, target.fraction));
        Some(spans)
    }

    fn assemble(
        &self,
        metric: &Metric,
        (time, spans): (u32, Spans),
        from: Snap,
        to: Snap,
    ) -> Route {
        let graph = self.graph_ref();
        let mut geometry: Vec<GeoPoint> = Vec::new();
        let mut legs = Vec::with_capacity(spans.len());
        for &(a, f0, f1) in &spans {
            let piece = graph.arc_piece[a as usize];
            let reversed = graph.arc_flags[a as usize] & FLAG_REVERSED != 0;
            let mut pts = if reversed {
                let mut p = self
                    .shared
                    .snap
                    .sub_geometry(graph, piece, 1.0 - f1, 1.0 - f0);
                p.reverse();
                p
            } else {
                self.shared.snap.sub_geometry(graph, piece, f0, f1)
            };
            if geometry.last() == pts.first() {
                pts.remove(0);
            }
            geometry.extend(pts);
            let share = (f1 - f0).max(0.0);
            legs.push(steps::Leg {
                arc: a,
                distance: graph.arc_length(a) * share,
                duration: TravelTime::from_secs_f64_saturating(
                    f64::from(metric.arc_ms[a as usize]) * share / 1000.0,
                ),
            });
        }
        if geometry.len() < 2 {
            geometry = vec![from.point, to.point];
        }
        let distance = legs.iter().map(|l| l.distance).sum();
        let steps = steps::steps(graph, &legs, &geometry);
        Route {
            duration: TravelTime::from_millis(u64::from(time)),
            distance,
            geometry: Polyline::new(geometry)
                .unwrap_or_else(|_| unreachable!("at least two points")),
            steps,
            from,
            to,
        }
    }
}

/// Locks a mutex, recovering from poisoning (the data are caches and scratch space, valid in
/// any state a panic could leave them in).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Milliseconds from the start of arc `a` to fraction `f`.
pub(crate) fn from_start(metric: &Metric, a: u32, f: f64) -> u32 {
    let w = metric.arc_ms[a as usize];
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let ms = (f.clamp(0.0, 1.0) * f64::from(w)).round() as u32;
    ms.min(w)
}

/// Milliseconds from fraction `f` of arc `a` to its end.
pub(crate) fn to_end(metric: &Metric, a: u32, f: f64) -> u32 {
    metric.arc_ms[a as usize] - from_start(metric, a, f)
}

fn unpack_packed(packed: u64) -> Option<(usize, TravelTime)> {
    let d = packed >> 32;
    (d < u64::from(INF)).then(|| ((packed & 0xffff_ffff) as usize, TravelTime::from_millis(d)))
}

/// Nodes whose earliest arrival (over their routing nodes) is within `budget`.
fn reached_nodes(
    graph: &RoadGraph,
    budget: TravelTime,
    time: impl Fn(usize) -> u32,
) -> Vec<(u32, u32)> {
    let limit = u32::try_from(budget.as_millis())
        .unwrap_or(INF)
        .min(INF - 1);
    let mut best = vec![INF; graph.node_count()];
    for r in 0..graph.routing_count() {
        let t = time(r);
        if t <= limit {
            let v = graph.rnode_base[r] as usize;
            best[v] = best[v].min(t);
        }
    }
    best.iter()
        .enumerate()
        .filter(|&(_, &t)| t <= limit)
        .map(|(v, &t)| (index(v), t))
        .collect()
}

/// The area reachable from one source within a budget.
#[derive(Clone)]
pub struct Catchment {
    shared: Arc<Shared>,
    source: Snap,
    budget: TravelTime,
    /// `(node, ms)`.
    reached: Vec<(u32, u32)>,
}

impl std::fmt::Debug for Catchment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catchment")
            .field("source", &self.source.point)
            .field("budget", &self.budget)
            .field("nodes", &self.reached.len())
            .finish_non_exhaustive()
    }
}

/// A node reached, with its earliest arrival.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Reached {
    /// Where.
    pub point: GeoPoint,
    /// Earliest arrival from the source.
    pub time: TravelTime,
}

/// An H3 cell with the earliest arrival among the nodes in it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct CellTime {
    /// The cell.
    pub cell: Cell,
    /// Earliest arrival at any node in the cell.
    pub time: TravelTime,
    /// Nodes reached in the cell.
    pub nodes: usize,
}

impl Catchment {
    /// The snapped source.
    pub fn source(&self) -> &Snap {
        &self.source
    }

    /// The budget.
    pub fn budget(&self) -> TravelTime {
        self.budget
    }

    /// Number of nodes reached.
    pub fn len(&self) -> usize {
        self.reached.len()
    }

    /// Whether nothing was reached.
    pub fn is_empty(&self) -> bool {
        self.reached.is_empty()
    }

    /// The nodes reached with their times.
    pub fn nodes(&self) -> impl Iterator<Item = Reached> + '_ {
        self.reached.iter().map(|&(v, t)| Reached {
            point: self.shared.graph.node_point[v as usize],
            time: TravelTime::from_millis(u64::from(t)),
        })
    }

    /// The time to reach a node at `point` exactly (used by tests and comparisons); `None`
    /// if no node is there or it is not reached.
    pub fn time_at_node(&self, point: GeoPoint) -> Option<TravelTime> {
        self.nodes().find(|r| r.point == point).map(|r| r.time)
    }

    /// The nodes aggregated to H3 cells (earliest arrival per cell), sorted by cell.
    pub fn cells(&self, resolution: CellResolution) -> Vec<CellTime> {
        let cells = self.shared.node_cells(resolution);
        let mut by_cell: std::collections::BTreeMap<Cell, (u32, usize)> =
            std::collections::BTreeMap::new();
        for &(v, t) in &self.reached {
            let e = by_cell.entry(cells[v as usize]).or_insert((t, 0));
            e.0 = e.0.min(t);
            e.1 += 1;
        }
        by_cell
            .into_iter()
            .map(|(cell, (t, nodes))| CellTime {
                cell,
                time: TravelTime::from_millis(u64::from(t)),
                nodes,
            })
            .collect()
    }

    /// The drivable area as the outline of the reached cells.
    pub fn area(&self, resolution: CellResolution) -> Result<Area, CellError> {
        Cell::dissolve(self.cells(resolution).into_iter().map(|c| c.cell))
    }
}

/// The nearest source and its time, for every node.
#[derive(Clone)]
pub struct Coverage {
    shared: Arc<Shared>,
    nodes: Vec<u64>,
    arcs: Vec<u64>,
    skipped: Vec<(usize, RoutingError)>,
}

impl std::fmt::Debug for Coverage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coverage")
            .field("nodes", &self.nodes.len())
            .field("skipped", &self.skipped)
            .finish_non_exhaustive()
    }
}

/// A node's nearest source.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Covered {
    /// Where.
    pub point: GeoPoint,
    /// Index of the nearest source in the list given.
    pub source: usize,
    /// Travel time from it.
    pub time: TravelTime,
}

impl Coverage {
    /// Every reachable node with its nearest source.
    pub fn nodes(&self) -> impl Iterator<Item = Covered> + '_ {
        self.nodes.iter().enumerate().filter_map(|(v, &packed)| {
            unpack_packed(packed).map(|(source, time)| Covered {
                point: self.shared.graph.node_point[v],
                source,
                time,
            })
        })
    }

    /// Sources that could not be snapped, with why.
    pub fn skipped(&self) -> &[(usize, RoutingError)] {
        &self.skipped
    }

    /// Per H3 cell: the nearest source and the earliest arrival, sorted by cell.
    pub fn cells(&self, resolution: CellResolution) -> Vec<(Cell, usize, TravelTime)> {
        let cells = self.shared.node_cells(resolution);
        let mut by_cell: std::collections::BTreeMap<Cell, u64> = std::collections::BTreeMap::new();
        for (v, &packed) in self.nodes.iter().enumerate() {
            if unpack_packed(packed).is_some() {
                let e = by_cell.entry(cells[v]).or_insert(PACKED_INF);
                *e = (*e).min(packed);
            }
        }
        by_cell
            .into_iter()
            .filter_map(|(cell, packed)| unpack_packed(packed).map(|(s, t)| (cell, s, t)))
            .collect()
    }
}

/// A route for the crew tablet.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// Travel time.
    pub duration: TravelTime,
    /// Length.
    pub distance: Meters,
    /// The path on the road, from the snapped start to the snapped destination.
    pub geometry: Polyline,
    /// Turn-by-turn instructions in Spanish, ending with "Llegó a su destino".
    pub steps: Vec<Step>,
    /// Where the start snapped.
    pub from: Snap,
    /// Where the destination snapped.
    pub to: Snap,
}
