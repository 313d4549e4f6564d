//! A metric-independent contraction order of the intersections by nested dissection with
//! inertial flow (Schild & Sommer, "On Balanced Separators in Road Networks", SEA 2015).
//!
//! 1. **Peeling.** Intersections with at most two distinct neighbours (dead ends, and points
//!    where a way changes name without a junction) are contracted first, repeatedly; a
//!    degree-2 node joins its two neighbours. This adds no fill-in beyond those joins and
//!    leaves a much smaller core.
//! 2. **Dissection of the core.** For a part, for each of four directions (east, north and
//!    the two diagonals), take the first quarter of the nodes by projection as sources and
//!    the last quarter as sinks, contract each group into one terminal, and compute a minimum
//!    edge cut with unit capacities (Dinic's max-flow). The smallest cut wins (ties: the
//!    more balanced). Its edges form a small bipartite graph; a minimum vertex cover of it
//!    (König's theorem, from a maximum matching) is the node separator. Both sides are
//!    ordered recursively (in parallel), then the separator, so separators end up at the top
//!    of the hierarchy. Projections are sorted once and inherited by the parts.

use rayon::prelude::*;

use crate::graph::{NONE, index};

/// Parts with at most this many nodes are not cut further.
const LEAF: usize = 4;
/// Parts larger than this are cut with the four directions tried in parallel and their
/// sides ordered in parallel.
const PARALLEL: usize = 2048;
/// Fraction of the nodes at each end used as sources and as sinks.
const TERMINAL_FRACTION: f64 = 0.25;
/// Directions tried: east, north and the two diagonals.
const DIRECTIONS: [(f64, f64); 4] = [(1.0, 0.0), (0.0, 1.0), (1.0, 1.0), (1.0, -1.0)];

/// An induced part of the core graph with local indices.
struct Part {
    /// Global node id of each local node.
    global: Vec<u32>,
    first: Vec<u32>,
    to: Vec<u32>,
    /// The opposite half-edge of each half-edge.
    reverse: Vec<u32>,
    /// Local nodes sorted by projection, one list per direction.
    sorted: [Vec<u32>; 4],
}

impl Part {
    fn len(&self) -> usize {
        self.global.len()
    }

    fn half_edges(&self, v: usize) -> std::ops::Range<usize> {
        self.first[v] as usize..self.first[v + 1] as usize
    }

    /// Builds a part from `(local u, local v)` edges (simple, `u != v`).
    fn new(global: Vec<u32>, edges: &[(u32, u32)], sorted: [Vec<u32>; 4]) -> Self {
        let n = global.len();
        let mut first = vec![0u32; n + 1];
        for &(u, v) in edges {
            first[u as usize + 1] += 1;
            first[v as usize + 1] += 1;
        }
        for i in 0..n {
            first[i + 1] += first[i];
        }
        let mut fill = first.clone();
        let mut to = vec![0u32; edges.len() * 2];
        let mut reverse = vec![0u32; edges.len() * 2];
        for &(u, v) in edges {
            let su = fill[u as usize];
            let sv = fill[v as usize];
            fill[u as usize] += 1;
            fill[v as usize] += 1;
            to[su as usize] = v;
            to[sv as usize] = u;
            reverse[su as usize] = sv;
            reverse[sv as usize] = su;
        }
        Self {
            global,
            first,
            to,
            reverse,
            sorted,
        }
    }

    /// The part induced by the local nodes with `label[v] == which`.
    fn induced(&self, label: &[u32], which: u32) -> Part {
        let mut local = vec![NONE; self.len()];
        let mut global = Vec::new();
        for v in 0..self.len() {
            if label[v] == which {
                local[v] = index(global.len());
                global.push(self.global[v]);
            }
        }
        let mut edges = Vec::new();
        for v in 0..self.len() {
            if label[v] != which {
                continue;
            }
            for slot in self.half_edges(v) {
                let w = self.to[slot] as usize;
                if w > v && label[w] == which {
                    edges.push((local[v], local[w]));
                }
            }
        }
        let sorted = std::array::from_fn(|d| {
            self.sorted[d]
                .iter()
                .filter(|&&v| label[v as usize] == which)
                .map(|&v| local[v as usize])
                .collect()
        });
        Part::new(global, &edges, sorted)
    }
}

/// Returns the nodes in contraction order (`order[rank] = node`). `edges` may contain
/// duplicates and loops; they are ignored.
pub(crate) fn nested_dissection(coords: &[(f64, f64)], edges: &[(u32, u32)]) -> Vec<u32> {
    let n = coords.len();
    let mut adj: Vec<Vec<u32>> = vec![Vec::new(); n];
    for &(u, v) in edges {
        if u != v {
            adj[u as usize].push(v);
            adj[v as usize].push(u);
        }
    }
    for list in &mut adj {
        list.sort_unstable();
        list.dedup();
    }
    let mut order = peel(&mut adj);
    // The core: nodes not peeled.
    let mut local = vec![NONE; n];
    let mut global = Vec::new();
    let mut peeled = vec![false; n];
    for &v in &order {
        peeled[v as usize] = true;
    }
    for v in 0..n {
        if !peeled[v] {
            local[v] = index(global.len());
            global.push(index(v));
        }
    }
    let mut core_edges = Vec::new();
    for (v, list) in adj.iter().enumerate() {
        for &w in list {
            if (w as usize) > v && !peeled[w as usize] && !peeled[v] {
                core_edges.push((local[v], local[w as usize]));
            }
        }
    }
    let sorted = std::array::from_fn(|d| {
        let (dx, dy) = DIRECTIONS[d];
        let mut s: Vec<u32> = (0..index(global.len())).collect();
        let key = |v: u32| {
            let (x, y) = coords[global[v as usize] as usize];
            x * dx + y * dy
        };
        s.sort_unstable_by(|&a, &b| key(a).total_cmp(&key(b)).then(a.cmp(&b)));
        s
    });
    let core = Part::new(global, &core_edges, sorted);
    order.extend(dissect(core));
    debug_assert_eq!(order.len(), n);
    order
}

/// Contracts nodes with at most two neighbours, repeatedly; returns them in order. `adj`
/// is left as the core graph (peeled nodes have empty lists).
fn peel(adj: &mut [Vec<u32>]) -> Vec<u32> {
    let n = adj.len();
    let mut removed = vec![false; n];
    let mut queue: Vec<u32> = (0..n).filter(|&v| adj[v].len() <= 2).map(index).collect();
    let mut order = Vec::new();
    while let Some(v) = queue.pop() {
        let v = v as usize;
        if removed[v] || adj[v].len() > 2 {
            continue;
        }
        removed[v] = true;
        order.push(index(v));
        let neighbours = std::mem::take(&mut adj[v]);
        for &x in &neighbours {
            adj[x as usize].retain(|&w| w as usize != v);
        }
        if let [x, y] = neighbours[..] {
            if let Err(i) = adj[x as usize].binary_search(&y) {
                adj[x as usize].insert(i, y);
            }
            if let Err(i) = adj[y as usize].binary_search(&x) {
                adj[y as usize].insert(i, x);
            }
        }
        for &x in &neighbours {
            if !removed[x as usize] && adj[x as usize].len() <= 2 {
                queue.push(x);
            }
        }
    }
    order
}

fn dissect(part: Part) -> Vec<u32> {
    let k = part.len();
    if k <= LEAF {
        return part.global;
    }
    let (comp, count) = components(&part);
    if count > 1 {
        let parts: Vec<Part> = (0..count).map(|c| part.induced(&comp, index(c))).collect();
        let orders: Vec<Vec<u32>> = if k > PARALLEL {
            parts.into_par_iter().map(dissect).collect()
        } else {
            parts.into_iter().map(dissect).collect()
        };
        return orders.concat();
    }
    let label = best_separator(&part);
    let a = part.induced(&label, 0);
    let b = part.induced(&label, 1);
    let separator: Vec<u32> = (0..k)
        .filter(|&v| label[v] == 2)
        .map(|v| part.global[v])
        .collect();
    let (mut order, order_b) = if k > PARALLEL {
        rayon::join(|| dissect(a), || dissect(b))
    } else {
        (dissect(a), dissect(b))
    };
    order.extend(order_b);
    order.extend(separator);
    order
}

/// Connected components: a component number per node, and the count.
fn components(part: &Part) -> (Vec<u32>, usize) {
    let mut comp = vec![NONE; part.len()];
    let mut count = 0usize;
    let mut stack = Vec::new();
    for s in 0..part.len() {
        if comp[s] != NONE {
            continue;
        }
        comp[s] = index(count);
        stack.push(s);
        while let Some(v) = stack.pop() {
            for slot in part.half_edges(v) {
                let w = part.to[slot] as usize;
                if comp[w] == NONE {
                    comp[w] = index(count);
                    stack.push(w);
                }
            }
        }
        count += 1;
    }
    (comp, count)
}

/// The best node separator over four directions: label 0 (side A), 1 (side B) or 2
/// (separator) per node.
fn best_separator(part: &Part) -> Vec<u32> {
    let try_direction = |d: usize| {
        let side = min_edge_cut(part, &part.sorted[d]);
        separator_from_cut(part, side)
    };
    let candidates: Vec<Vec<u32>> = if part.len() > PARALLEL {
        (0..DIRECTIONS.len())
            .into_par_iter()
            .map(try_direction)
            .collect()
    } else {
        (0..DIRECTIONS.len()).map(try_direction).collect()
    };
    let score = |label: &Vec<u32>| {
        let sep = label.iter().filter(|&&l| l == 2).count();
        let a = label.iter().filter(|&&l| l == 0).count();
        (sep, a.abs_diff(label.len() - sep - a))
    };
    candidates
        .into_iter()
        .min_by_key(score)
        .unwrap_or_else(|| vec![2; part.len()])
}

/// Minimum edge cut between the first and the last quarter of `by_projection`, with the
/// two groups contracted into terminals and unit capacities (Dinic). Returns each node's side
/// (0 = reachable from the sources in the final residual graph, 1 = not).
#[allow(clippy::too_many_lines)] // one algorithm: level search, blocking flow, cut
fn min_edge_cut(part: &Part, by_projection: &[u32]) -> Vec<u32> {
    let k = part.len();
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let terminals = ((k as f64 * TERMINAL_FRACTION).ceil() as usize).clamp(1, k / 2);
    // 0 inner, 1 source, 2 sink.
    let mut role = vec![0u8; k];
    for &v in &by_projection[..terminals] {
        role[v as usize] = 1;
    }
    for &v in &by_projection[k - terminals..] {
        role[v as usize] = 2;
    }
    // Half-edges leaving the source group.
    let boundary: Vec<u32> = by_projection[..terminals]
        .iter()
        .flat_map(|&s| part.half_edges(s as usize))
        .filter(|&slot| role[part.to[slot] as usize] != 1)
        .map(index)
        .collect();
    // Residual capacity per half-edge: 1 - flow in that direction (0, 1 or 2).
    let mut residual = vec![1u8; part.to.len()];
    let mut level = vec![u32::MAX; k];
    let mut cursor = vec![0u32; k];
    let mut queue: Vec<u32> = Vec::with_capacity(k);
    let mut stack: Vec<(u32, u32)> = Vec::new();
    loop {
        // Levels from the source terminal (sources at level 0).
        level.fill(u32::MAX);
        for &s in &by_projection[..terminals] {
            level[s as usize] = 0;
        }
        queue.clear();
        let mut sink_level = u32::MAX;
        for &slot in &boundary {
            let w = part.to[slot as usize] as usize;
            if residual[slot as usize] > 0 && level[w] == u32::MAX {
                level[w] = 1;
                if role[w] == 2 {
                    sink_level = 1;
                } else {
                    queue.push(index(w));
                }
            }
        }
        let mut head = 0;
        while head < queue.len() {
            let v = queue[head] as usize;
            head += 1;
            if level[v] >= sink_level {
                break;
            }
            for slot in part.half_edges(v) {
                let w = part.to[slot] as usize;
                if residual[slot] > 0 && level[w] == u32::MAX {
                    level[w] = level[v] + 1;
                    if role[w] == 2 {
                        sink_level = sink_level.min(level[w]);
                    } else {
                        queue.push(index(w));
                    }
                }
            }
        }
        if sink_level == u32::MAX {
            break;
        }
        // Blocking flow: depth-first along increasing levels, from each boundary half-edge.
        cursor.copy_from_slice(&part.first[..k]);
        for &start in &boundary {
            loop {
                let w0 = part.to[start as usize] as usize;
                if residual[start as usize] == 0 || level[w0] != 1 {
                    break;
                }
                stack.clear();
                stack.push((index(w0), start));
                let mut reached = false;
                while let Some(&(v, _)) = stack.last() {
                    let v = v as usize;
                    if role[v] == 2 {
                        reached = true;
                        break;
                    }
                    let end = part.first[v + 1];
                    let mut advanced = false;
                    while cursor[v] < end {
                        let slot = cursor[v] as usize;
                        let w = part.to[slot] as usize;
                        if residual[slot] > 0 && level[w] == level[v] + 1 && level[w] <= sink_level
                        {
                            stack.push((index(w), index(slot)));
                            advanced = true;
                            break;
                        }
                        cursor[v] += 1;
                    }
                    if !advanced {
                        level[v] = u32::MAX;
                        stack.pop();
                        if let Some(&(u, _)) = stack.last() {
                            cursor[u as usize] += 1;
                        }
                    }
                }
                if !reached {
                    break;
                }
                for &(_, slot) in &stack {
                    residual[slot as usize] -= 1;
                    residual[part.reverse[slot as usize] as usize] += 1;
                }
            }
        }
    }
    level
        .iter()
        .zip(&role)
        .map(|(&l, &r)| u32::from(!(l != u32::MAX && r != 2)))
        .collect()
}

/// Turns an edge cut (sides 0/1) into a node separator: a minimum vertex cover of the cut
/// edges (König: from a maximum matching by augmenting paths). Returns labels 0/1/2.
fn separator_from_cut(part: &Part, mut label: Vec<u32>) -> Vec<u32> {
    // Cut edges as (a in side 0, b in side 1), with compact ids per side.
    let mut left: Vec<u32> = Vec::new();
    let mut right: Vec<u32> = Vec::new();
    let mut left_id = rustc_hash::FxHashMap::default();
    let mut right_id = rustc_hash::FxHashMap::default();
    let mut adj: Vec<Vec<u32>> = Vec::new();
    for v in 0..part.len() {
        if label[v] != 0 {
            continue;
        }
        for slot in part.half_edges(v) {
            let w = part.to[slot];
            if label[w as usize] == 1 {
                let l = *left_id.entry(index(v)).or_insert_with(|| {
                    left.push(index(v));
                    adj.push(Vec::new());
                    index(left.len() - 1)
                });
                let r = *right_id.entry(w).or_insert_with(|| {
                    right.push(w);
                    index(right.len() - 1)
                });
                adj[l as usize].push(r);
            }
        }
    }
    // Kuhn's matching.
    let mut match_right = vec![NONE; right.len()];
    let mut match_left = vec![NONE; left.len()];
    for l in 0..left.len() {
        let mut seen = vec![false; right.len()];
        if augment(l, &adj, &mut match_right, &mut seen) {
            // match_left is filled below from match_right.
        }
    }
    for (r, &l) in match_right.iter().enumerate() {
        if l != NONE {
            match_left[l as usize] = index(r);
        }
    }
    // Z: reachable from unmatched left nodes by alternating paths.
    let mut z_left = vec![false; left.len()];
    let mut z_right = vec![false; right.len()];
    let mut stack: Vec<usize> = (0..left.len()).filter(|&l| match_left[l] == NONE).collect();
    for &l in &stack {
        z_left[l] = true;
    }
    while let Some(l) = stack.pop() {
        for &r in &adj[l] {
            let r = r as usize;
            if !z_right[r] {
                z_right[r] = true;
                let m = match_right[r];
                if m != NONE && !z_left[m as usize] {
                    z_left[m as usize] = true;
                    stack.push(m as usize);
                }
            }
        }
    }
    // Cover = (left \ Z) ∪ (right ∩ Z).
    for (l, &v) in left.iter().enumerate() {
        if !z_left[l] {
            label[v as usize] = 2;
        }
    }
    for (r, &v) in right.iter().enumerate() {
        if z_right[r] {
            label[v as usize] = 2;
        }
    }
    label
}

fn augment(l: usize, adj: &[Vec<u32>], match_right: &mut [u32], seen: &mut [bool]) -> bool {
    for &r in &adj[l] {
        let r = r as usize;
        if seen[r] {
            continue;
        }
        seen[r] = true;
        if match_right[r] == NONE || augment(match_right[r] as usize, adj, match_right, seen) {
            match_right[r] = index(l);
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    type Grid = (Vec<(f64, f64)>, Vec<(u32, u32)>);

    fn find(p: &mut [usize], x: usize) -> usize {
        let mut r = x;
        while p[r] != r {
            r = p[r];
        }
        p[x] = r;
        r
    }

    /// A `w × h` grid: coordinates and edges.
    fn grid(w: usize, h: usize) -> Grid {
        let id = |x: usize, y: usize| index(y * w + x);
        let mut coords = Vec::new();
        let mut edges = Vec::new();
        for y in 0..h {
            for x in 0..w {
                #[allow(clippy::cast_precision_loss)]
                coords.push((x as f64, y as f64));
                if x + 1 < w {
                    edges.push((id(x, y), id(x + 1, y)));
                }
                if y + 1 < h {
                    edges.push((id(x, y), id(x, y + 1)));
                }
            }
        }
        (coords, edges)
    }

    fn components_without(n: usize, edges: &[(u32, u32)], removed: &[u32]) -> Vec<usize> {
        let gone: std::collections::BTreeSet<u32> = removed.iter().copied().collect();
        let mut parent: Vec<usize> = (0..n).collect();
        for &(u, v) in edges {
            if !gone.contains(&u) && !gone.contains(&v) {
                let (a, b) = (find(&mut parent, u as usize), find(&mut parent, v as usize));
                parent[a] = b;
            }
        }
        let mut sizes = std::collections::BTreeMap::new();
        for v in 0..n {
            if !gone.contains(&index(v)) {
                *sizes.entry(find(&mut parent, v)).or_insert(0) += 1;
            }
        }
        sizes.into_values().collect()
    }

    #[test]
    fn a_grid_is_separated_by_a_line_across_its_short_side() {
        let (coords, edges) = grid(30, 10);
        let order = nested_dissection(&coords, &edges);
        // The corners are peeled first (degree 2); the top separator is a column of 10.
        let top = &order[300 - 10..];
        let sizes = components_without(300, &edges, top);
        assert_eq!(sizes.len(), 2, "{sizes:?} {top:?}");
        assert!(sizes.iter().all(|&s| s >= 70), "{sizes:?}");
    }

    #[test]
    fn the_order_is_a_permutation_and_its_top_separator_splits_the_grid_in_balanced_halves() {
        let (coords, edges) = grid(40, 40);
        let order = nested_dissection(&coords, &edges);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1600).collect::<Vec<u32>>());
        let sizes = components_without(1600, &edges, &order[1600 - 40..]);
        assert!(sizes.len() >= 2, "{sizes:?}");
        assert!(
            sizes.iter().filter(|&&s| s >= 400).count() >= 2,
            "{sizes:?}"
        );
    }

    #[test]
    fn dead_ends_and_chains_are_contracted_first() {
        // A triangle 0-1-2 with a tail 2-3-4 and a chain 0-5-6-1.
        let coords = vec![(0.0, 0.0); 7];
        let edges = [
            (0, 1),
            (1, 2),
            (2, 0),
            (2, 3),
            (3, 4),
            (0, 5),
            (5, 6),
            (6, 1),
        ];
        let order = nested_dissection(&coords, &edges);
        // The graph has treewidth 2, so peeling takes all of it: eliminating the nodes in
        // this order never leaves a node with more than two later neighbours.
        let mut adj: Vec<std::collections::BTreeSet<u32>> =
            vec![std::collections::BTreeSet::default(); 7];
        for &(u, v) in &edges {
            adj[u as usize].insert(v);
            adj[v as usize].insert(u);
        }
        for &v in &order {
            let later: Vec<u32> = adj[v as usize].iter().copied().collect();
            assert!(later.len() <= 2, "{v} has {later:?} left when contracted");
            for &x in &later {
                adj[x as usize].remove(&v);
                for &y in &later {
                    if x != y {
                        adj[x as usize].insert(y);
                    }
                }
            }
        }
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..7).collect::<Vec<u32>>());
    }
}
