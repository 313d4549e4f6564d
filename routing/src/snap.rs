//! Snapping points to roads: an R-tree (`rstar`) over every geometry segment of every
//! piece, in a local equirectangular frame in metres centred on the graph (accurate to well
//! under 1% over a city; `f32` coordinates keep millimetre precision within ±100 km and
//! halve the index's memory).

use maps::GeoPoint;
use rstar::RTree;
use rstar::primitives::{GeomWithData, Line};

use crate::graph::{FLAG_REVERSED, NONE, RoadGraph, index};

const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// One segment: the piece and the segment's first point within it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Segment {
    piece: u32,
    first: u32,
}

/// Where on the network a point snapped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Position {
    pub(crate) piece: u32,
    /// Fraction of the piece's length, along its geometry order, in [0, 1].
    pub(crate) fraction: f64,
    /// The point on the road.
    pub(crate) point: GeoPoint,
    /// Great-circle distance from the query point, metres.
    pub(crate) distance_m: f64,
}

/// The spatial index and the arcs of each piece.
#[derive(Debug)]
pub(crate) struct SnapIndex {
    tree: RTree<GeomWithData<Line<[f32; 2]>, Segment>>,
    frame: Frame,
    /// `[forward arc, backward arc]` of each piece ([`NONE`] where one-way).
    pub(crate) piece_arcs: Vec<[u32; 2]>,
}

impl SnapIndex {
    pub(crate) fn new(graph: &RoadGraph) -> Self {
        #[allow(clippy::cast_precision_loss)] // a node count is far below 2^52
        let count = graph.node_point.len().max(1) as f64;
        let lat0 = graph.node_point.iter().map(|p| p.lat()).sum::<f64>() / count;
        let lon0 = graph.node_point.iter().map(|p| p.lon()).sum::<f64>() / count;
        let frame = Frame {
            lon0,
            lat0,
            cos_lat0: lat0.to_radians().cos(),
        };
        let pieces = graph.piece_name.len();
        let mut piece_arcs = vec![[NONE, NONE]; pieces];
        for a in 0..graph.arc_count() {
            let slot = usize::from(graph.arc_flags[a] & FLAG_REVERSED != 0);
            piece_arcs[graph.arc_piece[a] as usize][slot] = index(a);
        }
        let project = |p: GeoPoint| frame.local(p);
        let mut segments = Vec::with_capacity(graph.points.len());
        for piece in 0..pieces {
            let (start, end) = (
                graph.piece_first[piece] as usize,
                graph.piece_first[piece + 1] as usize,
            );
            for i in start..end - 1 {
                segments.push(GeomWithData::new(
                    Line::new(project(graph.points[i]), project(graph.points[i + 1])),
                    Segment {
                        piece: index(piece),
                        first: index(i),
                    },
                ));
            }
        }
        Self {
            tree: RTree::bulk_load(segments),
            frame,
            piece_arcs,
        }
    }

    /// The nearest position on any road.
    #[allow(clippy::many_single_char_names)] // q, a, b, t: the usual projection names
    pub(crate) fn nearest(&self, graph: &RoadGraph, point: GeoPoint) -> Option<Position> {
        let q = self.frame.local(point);
        let hit = self.tree.nearest_neighbor(q)?;
        let seg = hit.data;
        let (pa, pb) = (
            graph.points[seg.first as usize],
            graph.points[seg.first as usize + 1],
        );
        // The projection again in f64 on the segment found.
        let (a, b, q) = (
            self.frame.metres(pa),
            self.frame.metres(pb),
            self.frame.metres(point),
        );
        let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
        let len2 = dx * dx + dy * dy;
        let t = if len2 > 0.0 {
            (((q[0] - a[0]) * dx + (q[1] - a[1]) * dy) / len2).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let on_road = GeoPoint::new(
            pa.lon() + (pb.lon() - pa.lon()) * t,
            pa.lat() + (pb.lat() - pa.lat()) * t,
        )
        .unwrap_or(pa);
        // Fraction along the piece by projected length.
        let piece = seg.piece as usize;
        let (start, end) = (
            graph.piece_first[piece] as usize,
            graph.piece_first[piece + 1] as usize,
        );
        let mut before = 0.0;
        let mut total = 0.0;
        for i in start..end - 1 {
            let l = project_len(graph.points[i], graph.points[i + 1], self.frame);
            if i < seg.first as usize {
                before += l;
            }
            if i == seg.first as usize {
                before += l * t;
            }
            total += l;
        }
        let fraction = if total > 0.0 {
            (before / total).clamp(0.0, 1.0)
        } else {
            0.0
        };
        Some(Position {
            piece: seg.piece,
            fraction,
            point: on_road,
            distance_m: point.distance_to(on_road).get(),
        })
    }

    /// The point at `fraction` of a piece's length (geometry order).
    #[cfg(test)]
    pub(crate) fn point_at(&self, graph: &RoadGraph, piece: u32, fraction: f64) -> GeoPoint {
        let piece = piece as usize;
        let pts =
            &graph.points[graph.piece_first[piece] as usize..graph.piece_first[piece + 1] as usize];
        let lens: Vec<f64> = pts
            .windows(2)
            .map(|w| project_len(w[0], w[1], self.frame))
            .collect();
        let total: f64 = lens.iter().sum();
        let mut remaining = fraction.clamp(0.0, 1.0) * total;
        for (i, &l) in lens.iter().enumerate() {
            if remaining <= l && l > 0.0 {
                let t = remaining / l;
                let (a, b) = (pts[i], pts[i + 1]);
                return GeoPoint::new(
                    a.lon() + (b.lon() - a.lon()) * t,
                    a.lat() + (b.lat() - a.lat()) * t,
                )
                .unwrap_or(a);
            }
            remaining -= l;
        }
        pts[pts.len() - 1]
    }

    /// The geometry of a piece between two fractions (`from <= to`), geometry order.
    pub(crate) fn sub_geometry(
        &self,
        graph: &RoadGraph,
        piece: u32,
        from: f64,
        to: f64,
    ) -> Vec<GeoPoint> {
        let p = piece as usize;
        let pts = &graph.points[graph.piece_first[p] as usize..graph.piece_first[p + 1] as usize];
        if from <= 0.0 && to >= 1.0 {
            return pts.to_vec();
        }
        let lens: Vec<f64> = pts
            .windows(2)
            .map(|w| project_len(w[0], w[1], self.frame))
            .collect();
        let total: f64 = lens.iter().sum();
        let at_fraction = |fraction: f64| {
            let mut remaining = fraction.clamp(0.0, 1.0) * total;
            for (i, &l) in lens.iter().enumerate() {
                if remaining <= l && l > 0.0 {
                    let t = remaining / l;
                    let (a, b) = (pts[i], pts[i + 1]);
                    return GeoPoint::new(
                        a.lon() + (b.lon() - a.lon()) * t,
                        a.lat() + (b.lat() - a.lat()) * t,
                    )
                    .unwrap_or(a);
                }
                remaining -= l;
            }
            pts[pts.len() - 1]
        };
        let mut out = vec![at_fraction(from)];
        let mut at = 0.0;
        for (i, &l) in lens.iter().enumerate() {
            at += l;
            let f = if total > 0.0 { at / total } else { 1.0 };
            if f > from && f < to && i + 1 < pts.len() - 1 {
                out.push(pts[i + 1]);
            }
        }
        out.push(at_fraction(to));
        out
    }
}

/// The local equirectangular frame: metres east and north of the graph's centre.
#[derive(Debug, Clone, Copy)]
struct Frame {
    lon0: f64,
    lat0: f64,
    cos_lat0: f64,
}

impl Frame {
    fn metres(self, p: GeoPoint) -> [f64; 2] {
        let k = EARTH_RADIUS_M * std::f64::consts::PI / 180.0;
        [
            (p.lon() - self.lon0) * k * self.cos_lat0,
            (p.lat() - self.lat0) * k,
        ]
    }

    #[allow(clippy::cast_possible_truncation)] // metres within a city fit f32 to the mm
    fn local(self, p: GeoPoint) -> [f32; 2] {
        let [x, y] = self.metres(p);
        [x as f32, y as f32]
    }
}

fn project_len(a: GeoPoint, b: GeoPoint, frame: Frame) -> f64 {
    let (pa, pb) = (frame.metres(a), frame.metres(b));
    ((pb[0] - pa[0]).powi(2) + (pb[1] - pa[1]).powi(2)).sqrt()
}
