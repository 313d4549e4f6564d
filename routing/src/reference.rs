//! The reference: a plain Dijkstra with a binary heap on the same routing graph, weights and
//! snapping as the fast queries. Obviously correct and slow (tens of milliseconds per query
//! on a city); the differential tests compare every fast query with it, and it is public so
//! that users can check results on their own graphs.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use maps::{GeoPoint, TravelTime};

use crate::cch::{INF, Metric, edge_weight};
use crate::error::RoutingError;
use crate::graph::RoadGraph;
use crate::profile::Departure;
use crate::router::Router;

/// Distances from seeds over the routing graph; `forward = false` runs on the reversed
/// graph (distances *to* the seeds).
pub(crate) fn dijkstra(
    graph: &RoadGraph,
    metric: &Metric,
    seeds: &[(u32, u32)],
    forward: bool,
) -> Vec<u32> {
    let mut dist = vec![INF; graph.routing_count()];
    let mut heap = BinaryHeap::new();
    for &(s, d) in seeds {
        if d < dist[s as usize] {
            dist[s as usize] = d;
            heap.push(Reverse((d, s)));
        }
    }
    while let Some(Reverse((d, a))) = heap.pop() {
        if d > dist[a as usize] {
            continue;
        }
        if forward {
            for e in graph.edges_out(a) {
                let b = graph.edge_head(e);
                let nd = d + edge_weight(&metric.arc_ms, &graph.edge_arc, e);
                if nd < dist[b as usize] {
                    dist[b as usize] = nd;
                    heap.push(Reverse((nd, b)));
                }
            }
        } else {
            for &e in &graph.in_edge[graph.edges_in(a)] {
                let p = graph.edge_tail[e as usize];
                let nd = d + edge_weight(&metric.arc_ms, &graph.edge_arc, e as usize);
                if nd < dist[p as usize] {
                    dist[p as usize] = nd;
                    heap.push(Reverse((nd, p)));
                }
            }
        }
    }
    dist
}

impl Router {
    /// Reference travel times from `source` to each target (forward Dijkstra).
    pub fn reference_times_from(
        &self,
        source: GeoPoint,
        targets: &[GeoPoint],
        departure: impl Into<Departure>,
    ) -> Result<Vec<Result<TravelTime, RoutingError>>, RoutingError> {
        let departure = departure.into();
        let from = self.snap(source)?;
        let metric = self.metric(departure);
        let seeds: Vec<(u32, u32)> = self
            .source_seeds(&metric, &from.position)
            .iter()
            .map(|s| (s.node, s.offset))
            .collect();
        let dist = dijkstra(self.graph_ref(), &metric, &seeds, true);
        Ok(targets
            .iter()
            .map(|&p| {
                let to = self.snap(p)?;
                let via_turns = self
                    .target_seeds(&metric, &to.position)
                    .iter()
                    .map(|s| dist[s.node as usize] + s.offset)
                    .min()
                    .unwrap_or(INF);
                let direct = self
                    .direct(&metric, &from.position, &to.position)
                    .map_or(INF, |d| d.0);
                let t = via_turns.min(direct);
                if t >= INF {
                    Err(RoutingError::Unreachable {
                        from: source,
                        to: p,
                    })
                } else {
                    Ok(TravelTime::from_millis(u64::from(t)))
                }
            })
            .collect())
    }

    /// Reference travel times from each origin to `target` (one backward Dijkstra).
    pub fn reference_etas_to(
        &self,
        target: GeoPoint,
        origins: &[GeoPoint],
        departure: impl Into<Departure>,
    ) -> Result<Vec<Result<TravelTime, RoutingError>>, RoutingError> {
        let departure = departure.into();
        let to = self.snap(target)?;
        let metric = self.metric(departure);
        let seeds: Vec<(u32, u32)> = self
            .target_seeds(&metric, &to.position)
            .iter()
            .map(|s| (s.node, s.offset))
            .collect();
        let dist = dijkstra(self.graph_ref(), &metric, &seeds, false);
        Ok(origins
            .iter()
            .map(|&p| {
                let from = self.snap(p)?;
                let via_turns = self
                    .source_seeds(&metric, &from.position)
                    .iter()
                    .map(|s| dist[s.node as usize] + s.offset)
                    .min()
                    .unwrap_or(INF);
                let direct = self
                    .direct(&metric, &from.position, &to.position)
                    .map_or(INF, |d| d.0);
                let t = via_turns.min(direct);
                if t >= INF {
                    Err(RoutingError::Unreachable {
                        from: p,
                        to: target,
                    })
                } else {
                    Ok(TravelTime::from_millis(u64::from(t)))
                }
            })
            .collect())
    }

    /// Reference catchment: every node within `budget` and its earliest arrival, sorted by
    /// position (longitude, then latitude) for comparison.
    pub fn reference_catchment(
        &self,
        source: GeoPoint,
        budget: TravelTime,
        departure: impl Into<Departure>,
    ) -> Result<Vec<(GeoPoint, TravelTime)>, RoutingError> {
        let departure = departure.into();
        let from = self.snap(source)?;
        let metric = self.metric(departure);
        let graph = self.graph_ref();
        let seeds: Vec<(u32, u32)> = self
            .source_seeds(&metric, &from.position)
            .iter()
            .map(|s| (s.node, s.offset))
            .collect();
        let dist = dijkstra(graph, &metric, &seeds, true);
        let limit = u32::try_from(budget.as_millis())
            .unwrap_or(INF)
            .min(INF - 1);
        let mut best = vec![INF; graph.node_count()];
        for (r, &d) in dist.iter().enumerate() {
            let v = graph.rnode_base[r] as usize;
            best[v] = best[v].min(d);
        }
        let mut out: Vec<(GeoPoint, TravelTime)> = best
            .iter()
            .enumerate()
            .filter(|&(_, &t)| t <= limit)
            .map(|(v, &t)| (graph.node_point[v], TravelTime::from_millis(u64::from(t))))
            .collect();
        out.sort_by(|a, b| {
            a.0.lon()
                .total_cmp(&b.0.lon())
                .then(a.0.lat().total_cmp(&b.0.lat()))
        });
        Ok(out)
    }
}
