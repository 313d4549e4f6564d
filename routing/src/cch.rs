//! Customizable contraction hierarchy (Dibbelt, Strasser & Wagner, "Customizable Contraction
//! Hierarchies", JEA 2016) over the routing graph.
//!
//! - **Topology** (metric-independent, computed once at import): routing nodes numbered by
//!   rank; contracting them in rank order yields the
//!   chordal supergraph, stored as sorted "up" lists (`v → higher neighbours`). Every upper
//!   neighbour of `v` is an ancestor of `v` in the *elimination tree* (parent = lowest upper
//!   neighbour), which is what makes the searches below exact.
//! - **Metric** (per time bucket and vehicle): a weight per hierarchy arc in each direction,
//!   from the edge weights by the lower-triangle customization in rank order. Partial
//!   re-customization after live changes recomputes only the arcs whose triangles changed.
//! - **Queries**: elimination-tree searches (walk up the ancestors and relax their up arcs),
//!   PHAST one-to-all downward sweeps (all nodes in descending rank, pulling from higher
//!   neighbours) for catchments, several sources per sweep, and restricted sweeps (RPHAST)
//!   for many-to-one ETAs; shortcut unpacking by finding the lower triangle that explains a
//!   weight.
//!
//! Weights are integer milliseconds; [`INF`] is "unreachable" and survives one addition
//! without overflow.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::graph::{NONE, check_csr, index};

/// Unreachable. `INF + INF` still fits in a `u32`.
pub(crate) const INF: u32 = u32::MAX / 2;
/// Set in an edge's hierarchy-arc reference when the edge runs from the higher node down.
pub(crate) const DOWN: u32 = 1 << 31;

/// The metric-independent part.
#[derive(Debug, Clone, Default)]
pub(crate) struct CchTopology {
    /// Upper neighbours of `v`: `up_head[up_first[v]..up_first[v + 1]]`, strictly increasing.
    pub(crate) up_first: Vec<u32>,
    pub(crate) up_head: Vec<u32>,
    // Derived (not stored):
    /// Elimination-tree parent (lowest upper neighbour), [`NONE`] for roots.
    pub(crate) parent: Vec<u32>,
    /// Lower neighbours of `v` with the arc id: `down_tail/down_arc[down_first[v]..]`, by
    /// increasing tail.
    pub(crate) down_first: Vec<u32>,
    pub(crate) down_tail: Vec<u32>,
    pub(crate) down_arc: Vec<u32>,
    /// For each routing edge, its hierarchy arc (with [`DOWN`] when it runs from the higher
    /// node).
    pub(crate) edge_cch: Vec<u32>,
    /// For each hierarchy arc, the routing edges that map to it (with the [`DOWN`] flag).
    pub(crate) cch_edge_first: Vec<u32>,
    pub(crate) cch_edges: Vec<u32>,
}

impl CchTopology {
    /// Number of hierarchy nodes.
    pub(crate) fn node_count(&self) -> usize {
        self.up_first.len().saturating_sub(1)
    }

    /// Number of hierarchy arcs (input arcs and shortcuts, undirected).
    pub(crate) fn arc_count(&self) -> usize {
        self.up_head.len()
    }

    pub(crate) fn up(&self, v: u32) -> std::ops::Range<usize> {
        self.up_first[v as usize] as usize..self.up_first[v as usize + 1] as usize
    }

    fn down(&self, v: u32) -> std::ops::Range<usize> {
        self.down_first[v as usize] as usize..self.down_first[v as usize + 1] as usize
    }

    /// Contracts nodes `0..n` in index order over the undirected version of `arcs`.
    pub(crate) fn contract(n: usize, arcs: impl Iterator<Item = (u32, u32)>) -> Self {
        let mut upper: Vec<Vec<u32>> = vec![Vec::new(); n];
        for (a, b) in arcs {
            if a != b {
                upper[a.min(b) as usize].push(a.max(b));
            }
        }
        for v in 0..n {
            let mut list = std::mem::take(&mut upper[v]);
            list.sort_unstable();
            list.dedup();
            if let Some((&p, rest)) = list.split_first() {
                upper[p as usize].extend_from_slice(rest);
            }
            upper[v] = list;
        }
        let mut up_first = Vec::with_capacity(n + 1);
        up_first.push(0);
        let mut up_head = Vec::with_capacity(upper.iter().map(Vec::len).sum());
        for list in upper {
            up_head.extend_from_slice(&list);
            up_first.push(index(up_head.len()));
        }
        Self {
            up_first,
            up_head,
            ..Self::default()
        }
    }

    /// Checks the stored part: offsets, ranges, strictly increasing upper lists, and the
    /// elimination-tree property (each upper neighbour lies on the parent chain).
    pub(crate) fn check(&self, n: usize) -> Result<(), String> {
        check_csr("hierarchy", &self.up_first, n, self.up_head.len())?;
        for v in 0..n {
            let list = &self.up_head[self.up(index(v))];
            if list.iter().any(|&x| x as usize >= n || x as usize <= v) {
                return Err(format!(
                    "hierarchy node {v} has an upper neighbour out of range"
                ));
            }
            if list.windows(2).any(|w| w[0] >= w[1]) {
                return Err(format!(
                    "hierarchy node {v}: upper neighbours are not sorted"
                ));
            }
        }
        // Chordality: N+(v) \ {parent} ⊆ N+(parent). This is what the customization and the
        // elimination-tree searches rely on.
        for v in 0..n {
            let list = &self.up_head[self.up(index(v))];
            if let Some((&p, rest)) = list.split_first() {
                let parent_list = &self.up_head[self.up(p)];
                if rest.iter().any(|x| parent_list.binary_search(x).is_err()) {
                    return Err(format!("hierarchy node {v} is not chordal"));
                }
            }
        }
        Ok(())
    }

    /// Position of the arc between `low < high`, if any.
    pub(crate) fn find_arc(&self, low: u32, high: u32) -> Option<usize> {
        let range = self.up(low);
        let start = range.start;
        self.up_head[range]
            .binary_search(&high)
            .ok()
            .map(|i| start + i)
    }

    /// Computes the derived arrays from the routing edges `(tail, head)`. An edge without a
    /// hierarchy arc (only in a corrupt file) maps to [`NONE`]; see [`Self::edges_covered`].
    pub(crate) fn derive(&mut self, edges: &[(u32, u32)]) {
        let n = self.node_count();
        let m = self.arc_count();
        self.parent = (0..n)
            .map(|v| {
                let r = self.up(index(v));
                if r.is_empty() {
                    NONE
                } else {
                    self.up_head[r.start]
                }
            })
            .collect();
        let mut count = vec![0u32; n + 1];
        for &h in &self.up_head {
            count[h as usize + 1] += 1;
        }
        for i in 0..n {
            count[i + 1] += count[i];
        }
        let mut fill = count.clone();
        let mut down_tail = vec![0u32; m];
        let mut down_arc = vec![0u32; m];
        for v in 0..n {
            for i in self.up(index(v)) {
                let h = self.up_head[i] as usize;
                let slot = fill[h] as usize;
                down_tail[slot] = index(v);
                down_arc[slot] = index(i);
                fill[h] += 1;
            }
        }
        self.down_first = count;
        self.down_tail = down_tail;
        self.down_arc = down_arc;
        let edge_cch: Vec<u32> = edges
            .iter()
            .map(|&(a, b)| {
                let (low, high, flag) = if a < b { (a, b, 0) } else { (b, a, DOWN) };
                if a == b {
                    return NONE;
                }
                self.find_arc(low, high).map_or(NONE, |i| index(i) | flag)
            })
            .collect();
        let mut count = vec![0u32; m + 1];
        for &ea in &edge_cch {
            if ea != NONE {
                count[(ea & !DOWN) as usize + 1] += 1;
            }
        }
        for i in 0..m {
            count[i + 1] += count[i];
        }
        let mut fill = count.clone();
        let mut cch_edges = vec![0u32; edge_cch.len()];
        for (e, &ea) in edge_cch.iter().enumerate() {
            if ea != NONE {
                let arc = (ea & !DOWN) as usize;
                cch_edges[fill[arc] as usize] = index(e) | (ea & DOWN);
                fill[arc] += 1;
            }
        }
        cch_edges.truncate(count[m] as usize);
        self.edge_cch = edge_cch;
        self.cch_edge_first = count;
        self.cch_edges = cch_edges;
    }

    /// Whether every routing edge that is not a loop has a hierarchy arc (checked after
    /// loading a file). `loops[e]` tells which edges are loops.
    pub(crate) fn edges_covered(&self, is_loop: impl Fn(usize) -> bool) -> bool {
        self.edge_cch
            .iter()
            .enumerate()
            .all(|(e, &a)| a != NONE || is_loop(e))
    }
}

/// Weights of one metric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Metric {
    /// Travel time of each road arc, ms, at least 1.
    pub(crate) arc_ms: Vec<u32>,
    /// Per hierarchy arc `(low, high)`: weight of `low → high`.
    pub(crate) up: Vec<u32>,
    /// Per hierarchy arc `(low, high)`: weight of `high → low`.
    pub(crate) down: Vec<u32>,
}

/// The weight of a routing edge: the travel time of the arc it drives.
pub(crate) fn edge_weight(arc_ms: &[u32], edge_arc: &[u32], e: usize) -> u32 {
    arc_ms[edge_arc[e] as usize].min(INF)
}

impl Metric {
    /// Full customization.
    pub(crate) fn customize(topo: &CchTopology, arc_ms: Vec<u32>, edge_arc: &[u32]) -> Self {
        let m = topo.arc_count();
        let mut up = vec![INF; m];
        let mut down = vec![INF; m];
        for (e, &ta) in topo.edge_cch.iter().enumerate() {
            if ta == NONE {
                continue;
            }
            let w = edge_weight(&arc_ms, edge_arc, e);
            let slot = if ta & DOWN == 0 {
                &mut up[ta as usize]
            } else {
                &mut down[(ta & !DOWN) as usize]
            };
            *slot = (*slot).min(w);
        }
        for v in 0..topo.node_count() {
            let range = topo.up(index(v));
            for i in range.clone() {
                let x = topo.up_head[i];
                let (x_to_v, v_to_x) = (down[i], up[i]);
                if x_to_v >= INF && v_to_x >= INF {
                    continue;
                }
                let mut k = topo.up_first[x as usize] as usize;
                for j in i + 1..range.end {
                    let y = topo.up_head[j];
                    while topo.up_head[k] < y {
                        k += 1;
                    }
                    // (x, y) exists by chordality; k points at it.
                    let via_up = x_to_v + up[j];
                    if via_up < up[k] {
                        up[k] = via_up;
                    }
                    let via_down = down[j] + v_to_x;
                    if via_down < down[k] {
                        down[k] = via_down;
                    }
                }
            }
        }
        Self { arc_ms, up, down }
    }

    /// Weights of arc `k = (x, y)`, `x < y`, from its edges and lower triangles only.
    #[allow(clippy::many_single_char_names)] // x, y, k as in the papers
    fn recompute(&self, topo: &CchTopology, edge_arc: &[u32], x: u32, k: usize) -> (u32, u32) {
        let mut up = INF;
        let mut down = INF;
        for &tt in
            &topo.cch_edges[topo.cch_edge_first[k] as usize..topo.cch_edge_first[k + 1] as usize]
        {
            let w = edge_weight(&self.arc_ms, edge_arc, (tt & !DOWN) as usize);
            if tt & DOWN == 0 {
                up = up.min(w);
            } else {
                down = down.min(w);
            }
        }
        let y = topo.up_head[k];
        // Lower triangles: common lower neighbours v of x and y. When y has many more lower
        // neighbours than x (y is near the top), look each v of x up in v's upper list.
        let (rx, ry) = (topo.down(x), topo.down(y));
        if rx.len() * 8 < ry.len() {
            for i in rx {
                let v = topo.down_tail[i];
                if let Some(leg_y) = topo.find_arc(v, y) {
                    let leg_x = topo.down_arc[i] as usize;
                    up = up.min(self.down[leg_x] + self.up[leg_y]);
                    down = down.min(self.down[leg_y] + self.up[leg_x]);
                }
            }
            return (up.min(INF), down.min(INF));
        }
        let (mut i, mut j) = (rx.start, ry.start);
        while i < rx.end && j < ry.end {
            match topo.down_tail[i].cmp(&topo.down_tail[j]) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    let (leg_x, leg_y) = (topo.down_arc[i] as usize, topo.down_arc[j] as usize);
                    up = up.min(self.down[leg_x] + self.up[leg_y]);
                    down = down.min(self.down[leg_y] + self.up[leg_x]);
                    i += 1;
                    j += 1;
                }
            }
        }
        (up.min(INF), down.min(INF))
    }

    /// Partial re-customization after the travel times of `changed` arcs were set in
    /// `self.arc_ms`. Returns the number of hierarchy arcs recomputed from scratch.
    ///
    /// Hierarchy arcs are processed in batches by their lower end `x` (an arc depends only
    /// on arcs with lower ends below its own). For each arc of the batch whose weight
    /// changed, every triangle `(x, y, z)` it is a leg of is examined: if the path through
    /// `x` got shorter than the arc between `y` and `z`, that arc is lowered at once (its legs
    /// are final); if the arc was exactly the old path through `x` and the path got longer,
    /// it is marked for a full recomputation when its own batch comes.
    pub(crate) fn update(
        &mut self,
        topo: &CchTopology,
        edge_arc: &[u32],
        arc_edge_first: &[u32],
        arc_edges: &[u32],
        changed: &[u32],
        buffers: &mut UpdateBuffers,
    ) -> usize {
        let mut state = UpdateState::new(topo.arc_count(), buffers);
        for &b in changed {
            let range =
                arc_edge_first[b as usize] as usize..arc_edge_first[b as usize + 1] as usize;
            for &e in &arc_edges[range] {
                let reference = topo.edge_cch[e as usize];
                if reference != NONE {
                    let arc = (reference & !DOWN) as usize;
                    let original = (self.up[arc], self.down[arc]);
                    state.mark(arc, original, true);
                }
            }
        }
        let mut recomputed = 0;
        let mut batch: Vec<(usize, Pending)> = Vec::new();
        while let Some(&Reverse(first)) = state.heap.peek() {
            let lower = topo.down_tail_of(first as usize);
            let end = topo.up_first[lower as usize + 1];
            batch.clear();
            while let Some(&Reverse(arc)) = state.heap.peek() {
                if arc >= end {
                    break;
                }
                state.heap.pop();
                let Some(original) = state.take(arc as usize) else {
                    continue;
                };
                let arc = arc as usize;
                if original.full {
                    let (up, down) = self.recompute(topo, edge_arc, lower, arc);
                    self.up[arc] = up;
                    self.down[arc] = down;
                    recomputed += 1;
                }
                if (self.up[arc], self.down[arc]) != (original.up, original.down) {
                    batch.push((arc, original));
                }
            }
            self.propagate(topo, lower, &batch, &mut state);
        }
        state.release(buffers);
        recomputed
    }

    /// Examines the triangles of a batch of changed arcs with lower end `lower` (see
    /// [`Metric::update`]).
    fn propagate(
        &mut self,
        topo: &CchTopology,
        lower: u32,
        batch: &[(usize, Pending)],
        state: &mut UpdateState,
    ) {
        // Original weights of the batch's arcs by position in up(lower).
        let first_arc = topo.up_first[lower as usize] as usize;
        let mut old_of = std::mem::take(&mut state.old_of);
        old_of.clear();
        old_of.resize(topo.up(lower).len(), None);
        for &(arc, original) in batch {
            old_of[arc - first_arc] = Some(original);
        }
        for &(leg, old_leg) in batch {
            let y = topo.up_head[leg];
            // Targets above y are in up(y) in the same order as up(lower): walk both.
            let up_y = topo.up(y);
            let mut above = up_y.start;
            // Targets between lower and y are in down(y), ordered by their lower end.
            let down_y = topo.down(y);
            let mut below =
                down_y.start + topo.down_tail[down_y.clone()].partition_point(|&t| t <= lower);
            for other in topo.up(lower) {
                if other == leg {
                    continue;
                }
                // A pair of changed legs is examined once, from the first of the two.
                if other < leg && old_of[other - first_arc].is_some() {
                    continue;
                }
                let z = topo.up_head[other];
                let target = if z > y {
                    while above < up_y.end && topo.up_head[above] < z {
                        above += 1;
                    }
                    if above < up_y.end && topo.up_head[above] == z {
                        above
                    } else {
                        continue;
                    }
                } else {
                    while below < down_y.end && topo.down_tail[below] < z {
                        below += 1;
                    }
                    if below < down_y.end && topo.down_tail[below] == z {
                        topo.down_arc[below] as usize
                    } else {
                        continue;
                    }
                };
                let old_other = old_of[other - first_arc]
                    .map_or((self.up[other], self.down[other]), |o| (o.up, o.down));
                // y → lower → z and z → lower → y, before and after.
                let yz = (old_leg.down + old_other.0, self.down[leg] + self.up[other]);
                let zy = (old_other.1 + old_leg.up, self.down[other] + self.up[leg]);
                // Oriented as the target's up weight (low → high) and down weight.
                let (up_path, down_path) = if y < z { (yz, zy) } else { (zy, yz) };
                // Compared with the target's current weight rather than its original one: if
                // the target was already lowered in this update, it is below the old path
                // (which was at least the original), so `old == current` cannot hold and an
                // increase of that path does not matter; otherwise current is original.
                let current = (self.up[target], self.down[target]);
                let mut touched = false;
                let mut full = false;
                for ((old, new), weight) in [(up_path, current.0), (down_path, current.1)] {
                    if new < weight {
                        touched = true;
                    } else if old == weight && new > old {
                        full = true;
                    }
                }
                if touched || full {
                    let original = state.original(target, current);
                    self.up[target] = self.up[target].min(up_path.1);
                    self.down[target] = self.down[target].min(down_path.1);
                    state.mark(target, original, full);
                }
            }
        }
        state.old_of = old_of;
    }
}

/// An arc waiting in a partial update: its weights before the update, and whether it needs a
/// full recomputation.
#[derive(Debug, Clone, Copy)]
struct Pending {
    up: u32,
    down: u32,
    full: bool,
}

/// Memory kept between partial updates (a few megabytes on a city; allocating it afresh
/// each time costs more than the update of a handful of edges).
#[derive(Debug, Clone, Default)]
pub(crate) struct UpdateBuffers {
    slot: Vec<u32>,
    pending: Vec<Pending>,
    old_of: Vec<Option<Pending>>,
}

/// The arcs waiting in a partial update, smallest arc (lowest lower end) first.
struct UpdateState {
    heap: BinaryHeap<Reverse<u32>>,
    /// `slot[arc]` indexes `pending` ([`NONE`] when not pending); all [`NONE`] between
    /// updates.
    slot: Vec<u32>,
    pending: Vec<Pending>,
    old_of: Vec<Option<Pending>>,
}

impl UpdateState {
    fn new(arcs: usize, buffers: &mut UpdateBuffers) -> Self {
        let mut slot = std::mem::take(&mut buffers.slot);
        if slot.len() != arcs {
            slot.clear();
            slot.resize(arcs, NONE);
        }
        let mut pending = std::mem::take(&mut buffers.pending);
        pending.clear();
        Self {
            heap: BinaryHeap::new(),
            slot,
            pending,
            old_of: std::mem::take(&mut buffers.old_of),
        }
    }

    /// Gives the memory back (every slot is [`NONE`] again: each pending arc was taken).
    fn release(self, buffers: &mut UpdateBuffers) {
        debug_assert!(self.heap.is_empty());
        buffers.slot = self.slot;
        buffers.pending = self.pending;
        buffers.old_of = self.old_of;
    }

    /// The weights an arc had before the update.
    fn original(&self, arc: usize, current: (u32, u32)) -> (u32, u32) {
        match self.slot[arc] {
            NONE => current,
            p => (self.pending[p as usize].up, self.pending[p as usize].down),
        }
    }

    /// Queues an arc (once), remembering its original weights.
    fn mark(&mut self, arc: usize, original: (u32, u32), full: bool) {
        if self.slot[arc] == NONE {
            self.slot[arc] = index(self.pending.len());
            self.pending.push(Pending {
                up: original.0,
                down: original.1,
                full: false,
            });
            self.heap.push(Reverse(index(arc)));
        }
        self.pending[self.slot[arc] as usize].full |= full;
    }

    /// Removes an arc from the pending set.
    fn take(&mut self, arc: usize) -> Option<Pending> {
        let position = std::mem::replace(&mut self.slot[arc], NONE);
        (position != NONE).then(|| self.pending[position as usize])
    }
}

impl CchTopology {
    /// The lower end of hierarchy arc `k`.
    pub(crate) fn down_tail_of(&self, k: usize) -> u32 {
        // up_first is non-decreasing: the node whose range contains k.
        let v = self.up_first.partition_point(|&f| f as usize <= k) - 1;
        index(v)
    }
}

/// Reusable per-query memory, sized for one graph. Distances are kept at [`INF`] between
/// queries (entries touched are reset).
#[derive(Debug, Clone)]
pub(crate) struct Scratch {
    pub(crate) dist: Vec<u32>,
    /// Predecessor state per node: the hierarchy arc used to reach it ([`NONE`] for seeds).
    pub(crate) pred: Vec<u32>,
    pub(crate) dist2: Vec<u32>,
    pub(crate) pred2: Vec<u32>,
    pub(crate) mark: Vec<u32>,
    pub(crate) stamp: u32,
    pub(crate) touched: Vec<u32>,
    pub(crate) touched2: Vec<u32>,
    /// Temporary list for PHAST's climb.
    pub(crate) tmp: Vec<u32>,
    /// Full distance array for PHAST (written entirely by each sweep).
    pub(crate) full: Vec<u32>,
    /// Multi-lane distances for batched PHAST.
    pub(crate) lanes: Vec<[u32; LANES]>,
}

impl Scratch {
    pub(crate) fn new(n: usize) -> Self {
        Self {
            dist: vec![INF; n],
            pred: vec![NONE; n],
            dist2: vec![INF; n],
            pred2: vec![NONE; n],
            mark: vec![0; n],
            stamp: 0,
            touched: Vec::new(),
            touched2: Vec::new(),
            tmp: Vec::new(),
            full: Vec::new(),
            lanes: Vec::new(),
        }
    }

    /// Puts every touched entry back to INF.
    pub(crate) fn reset(&mut self) {
        for &v in &self.touched {
            self.dist[v as usize] = INF;
            self.pred[v as usize] = NONE;
        }
        for &v in &self.touched2 {
            self.dist2[v as usize] = INF;
            self.pred2[v as usize] = NONE;
        }
        self.touched.clear();
        self.touched2.clear();
    }

    pub(crate) fn next_stamp(&mut self) -> u32 {
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            self.mark.fill(0);
            self.stamp = 1;
        }
        self.stamp
    }
}

/// The union of the elimination-tree ancestors of `seeds` (seeds included), ascending.
pub(crate) fn ancestors(
    topo: &CchTopology,
    seeds: &[u32],
    mark: &mut [u32],
    stamp: u32,
    out: &mut Vec<u32>,
) {
    out.clear();
    for &s in seeds {
        let mut v = s;
        while v != NONE && mark[v as usize] != stamp {
            mark[v as usize] = stamp;
            out.push(v);
            v = topo.parent[v as usize];
        }
    }
    if seeds.len() > 1 {
        out.sort_unstable();
    }
}

/// Which of the two weight arrays a search climbs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// From sources: climb with `up`, descend with `down`.
    Forward,
    /// Towards targets (reverse graph): climb with `down`, descend with `up`.
    Backward,
}

impl Direction {
    fn climb(self, metric: &Metric) -> &[u32] {
        match self {
            Self::Forward => &metric.up,
            Self::Backward => &metric.down,
        }
    }

    fn descend(self, metric: &Metric) -> &[u32] {
        match self {
            Self::Forward => &metric.down,
            Self::Backward => &metric.up,
        }
    }
}

/// Elimination-tree search from `seeds` (node, initial distance) into `dist`/`pred`; the
/// ancestors visited are left in `visited` (ascending) and must be reset by the caller.
#[allow(clippy::too_many_arguments)] // separate buffers so that callers can split borrows
pub(crate) fn climb(
    topo: &CchTopology,
    metric: &Metric,
    direction: Direction,
    seeds: &[(u32, u32)],
    dist: &mut [u32],
    pred: &mut [u32],
    mark: &mut [u32],
    stamp: u32,
    visited: &mut Vec<u32>,
) {
    let nodes: Vec<u32> = seeds.iter().map(|s| s.0).collect();
    ancestors(topo, &nodes, mark, stamp, visited);
    for &(s, d) in seeds {
        if d < dist[s as usize] {
            dist[s as usize] = d;
            pred[s as usize] = NONE;
        }
    }
    let w = direction.climb(metric);
    for &v in visited.iter() {
        let dv = dist[v as usize];
        if dv >= INF {
            continue;
        }
        for i in topo.up(v) {
            let x = topo.up_head[i] as usize;
            let candidate = dv + w[i];
            if candidate < dist[x] {
                dist[x] = candidate;
                pred[x] = index(i);
            }
        }
    }
}

/// One-to-all distances (PHAST): climb from the seeds, then sweep every node downwards.
/// `dist` must be all [`INF`] on entry and is fully written.
pub(crate) fn phast(
    topo: &CchTopology,
    metric: &Metric,
    direction: Direction,
    seeds: &[(u32, u32)],
    scratch: &mut Scratch,
    dist: &mut [u32],
) {
    let stamp = scratch.next_stamp();
    let nodes: Vec<u32> = seeds.iter().map(|s| s.0).collect();
    let mut visited = std::mem::take(&mut scratch.tmp);
    ancestors(topo, &nodes, &mut scratch.mark, stamp, &mut visited);
    for &(s, d) in seeds {
        dist[s as usize] = dist[s as usize].min(d);
    }
    let w = direction.climb(metric);
    for &v in &visited {
        let dv = dist[v as usize];
        if dv >= INF {
            continue;
        }
        for i in topo.up(v) {
            let x = topo.up_head[i] as usize;
            dist[x] = dist[x].min(dv + w[i]);
        }
    }
    visited.clear();
    scratch.tmp = visited;
    sweep(topo, direction.descend(metric), dist);
}

/// The downward pass of PHAST: for every node in descending rank, pull from its upper
/// neighbours.
fn sweep(topo: &CchTopology, w: &[u32], dist: &mut [u32]) {
    let n = topo.node_count();
    for v in (0..n).rev() {
        let (start, end) = (topo.up_first[v] as usize, topo.up_first[v + 1] as usize);
        let mut dv = dist[v];
        for (&x, &wi) in topo.up_head[start..end].iter().zip(&w[start..end]) {
            let candidate = dist[x as usize] + wi;
            if candidate < dv {
                dv = candidate;
            }
        }
        dist[v] = dv;
    }
}

/// Lanes per multi-source sweep.
pub(crate) const LANES: usize = 8;

/// PHAST for up to [`LANES`] seed sets at once; `dist[v][lane]`. `dist` must be all INF.
pub(crate) fn phast_lanes(
    topo: &CchTopology,
    metric: &Metric,
    direction: Direction,
    seeds: &[Vec<(u32, u32)>],
    scratch: &mut Scratch,
    dist: &mut [[u32; LANES]],
) {
    debug_assert!(seeds.len() <= LANES);
    let w_up = direction.climb(metric);
    let mut visited = std::mem::take(&mut scratch.tmp);
    for (lane, lane_seeds) in seeds.iter().enumerate() {
        let stamp = scratch.next_stamp();
        let nodes: Vec<u32> = lane_seeds.iter().map(|s| s.0).collect();
        ancestors(topo, &nodes, &mut scratch.mark, stamp, &mut visited);
        for &(s, d) in lane_seeds {
            let slot = &mut dist[s as usize][lane];
            *slot = (*slot).min(d);
        }
        for &v in &visited {
            let dv = dist[v as usize][lane];
            if dv >= INF {
                continue;
            }
            for i in topo.up(v) {
                let x = topo.up_head[i] as usize;
                let candidate = dv + w_up[i];
                if candidate < dist[x][lane] {
                    dist[x][lane] = candidate;
                }
            }
        }
    }
    visited.clear();
    scratch.tmp = visited;
    let w = direction.descend(metric);
    let n = topo.node_count();
    for v in (0..n).rev() {
        let (start, end) = (topo.up_first[v] as usize, topo.up_first[v + 1] as usize);
        let mut dv = dist[v];
        for (&x, &wi) in topo.up_head[start..end].iter().zip(&w[start..end]) {
            let dx = &dist[x as usize];
            for lane in 0..LANES {
                dv[lane] = dv[lane].min(dx[lane] + wi);
            }
        }
        dist[v] = dv;
    }
}

/// PHAST over packed `(distance << 32) | source` values: the minimum carries the nearest
/// source (ties to the lower source number). `dist` must be all [`PACKED_INF`] on entry.
pub(crate) fn phast_nearest(
    topo: &CchTopology,
    metric: &Metric,
    seeds: &[(u32, u64)],
    scratch: &mut Scratch,
    dist: &mut [u64],
) {
    let stamp = scratch.next_stamp();
    let nodes: Vec<u32> = seeds.iter().map(|s| s.0).collect();
    let mut visited = std::mem::take(&mut scratch.tmp);
    ancestors(topo, &nodes, &mut scratch.mark, stamp, &mut visited);
    for &(s, packed) in seeds {
        dist[s as usize] = dist[s as usize].min(packed);
    }
    for &v in &visited {
        let dv = dist[v as usize];
        if dv >= PACKED_INF {
            continue;
        }
        for i in topo.up(v) {
            let x = topo.up_head[i] as usize;
            dist[x] = dist[x].min(dv + (u64::from(metric.up[i]) << 32));
        }
    }
    visited.clear();
    scratch.tmp = visited;
    let n = topo.node_count();
    for v in (0..n).rev() {
        let (start, end) = (topo.up_first[v] as usize, topo.up_first[v + 1] as usize);
        let mut dv = dist[v];
        for (&x, &wi) in topo.up_head[start..end]
            .iter()
            .zip(&metric.down[start..end])
        {
            let candidate = dist[x as usize] + (u64::from(wi) << 32);
            if candidate < dv {
                dv = candidate;
            }
        }
        dist[v] = dv;
    }
}

/// "Unreachable" for packed distances: `INF` with the largest source number.
pub(crate) const PACKED_INF: u64 = ((INF as u64) << 32) | 0xffff_ffff;

/// Restricted PHAST: distances for the nodes in `selection` (descending rank, closed under
/// ancestors) after a climb has filled `dist` for the seeds' ancestors.
pub(crate) fn restricted_sweep(topo: &CchTopology, w: &[u32], selection: &[u32], dist: &mut [u32]) {
    for &v in selection {
        let v = v as usize;
        let (start, end) = (topo.up_first[v] as usize, topo.up_first[v + 1] as usize);
        let mut dv = dist[v];
        for (&x, &wi) in topo.up_head[start..end].iter().zip(&w[start..end]) {
            let candidate = dist[x as usize] + wi;
            if candidate < dv {
                dv = candidate;
            }
        }
        dist[v] = dv;
    }
}

/// Unpacks hierarchy arc `k` in the given orientation (`upward`: low → high) into routing
/// edges, appended to `out` in travel order.
pub(crate) fn unpack(
    topo: &CchTopology,
    metric: &Metric,
    edge_arc: &[u32],
    k: usize,
    upward: bool,
    out: &mut Vec<u32>,
) {
    // Explicit stack of (arc, upward) in reverse travel order.
    let mut stack = vec![(k, upward)];
    while let Some((k, upward)) = stack.pop() {
        let low = topo.down_tail_of(k);
        let high = topo.up_head[k];
        let weight = if upward { metric.up[k] } else { metric.down[k] };
        // An input edge with exactly this weight?
        let edges =
            &topo.cch_edges[topo.cch_edge_first[k] as usize..topo.cch_edge_first[k + 1] as usize];
        let direct = edges.iter().find(|&&tt| {
            let is_down = tt & DOWN != 0;
            is_down != upward
                && edge_weight(&metric.arc_ms, edge_arc, (tt & !DOWN) as usize) == weight
        });
        if let Some(&tt) = direct {
            out.push(tt & !DOWN);
            continue;
        }
        // Otherwise a lower triangle v with the same total: walk the shorter of the two
        // lower-neighbour lists and look the other leg up in v's upper list.
        let (rl, rh) = (topo.down(low), topo.down(high));
        let walk_low = rl.len() <= rh.len();
        let (walk, other) = if walk_low { (rl, high) } else { (rh, low) };
        let mut found = false;
        for slot in walk {
            let v = topo.down_tail[slot];
            let Some(other_arc) = topo.find_arc(v, other) else {
                continue;
            };
            let walked_arc = topo.down_arc[slot] as usize;
            let (low_arc, high_arc) = if walk_low {
                (walked_arc, other_arc)
            } else {
                (other_arc, walked_arc)
            };
            if upward && metric.down[low_arc] + metric.up[high_arc] == weight {
                // low → v (down along (v, low)), then v → high (up along (v, high)).
                stack.push((high_arc, true));
                stack.push((low_arc, false));
                found = true;
                break;
            }
            if !upward && metric.down[high_arc] + metric.up[low_arc] == weight {
                // high → v, then v → low.
                stack.push((low_arc, true));
                stack.push((high_arc, false));
                found = true;
                break;
            }
        }
        debug_assert!(found, "hierarchy arc {k} has no explanation for its weight");
        if !found {
            // Cannot happen for a metric produced by `customize`/`update` (every finite
            // weight comes from an edge or a triangle); the path is then incomplete.
            out.push(NONE);
        }
    }
}
