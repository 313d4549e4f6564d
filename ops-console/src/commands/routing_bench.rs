//! `regula bench routing --graph G [--pbf P] [--json]`: the routing figures of issue 3 on a
//! real graph, with deterministic inputs (seeded random points), timed with the monotonic
//! [`Stopwatch`]. Departure: Monday 23 November 2026, 07:30 in Bogotá unless `--at`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use maps::{CellResolution, Speed, Timestamp, TravelTime};
use routing::{Departure, ImportOptions, RoadGraph, Router, SpeedObservation};
use serde_json::json;

use super::routing::{SplitMix, load_graph, random_points, reference_departure};
use crate::cli::BenchRoutingArgs;
use crate::clock::Stopwatch;

/// Milliseconds since a stopwatch started.
fn ms(watch: Stopwatch) -> f64 {
    watch.elapsed().as_secs_f64() * 1000.0
}

/// The `p`-quantile (0..=1) of samples, nearest rank.
fn quantile(samples: &mut [f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_by(f64::total_cmp);
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((samples.len() - 1) as f64 * p).round() as usize;
    samples[i]
}

/// Resident and peak resident memory of this process, MiB, from `/proc/self/status`.
fn memory_mb() -> (Option<f64>, Option<f64>) {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return (None, None);
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .map(|kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The measured figures.
#[derive(Debug, Default)]
struct Figures {
    import_seconds: Option<f64>,
    load_ms: f64,
    router_ms: f64,
    customize_ms: f64,
    catchment_ms_p50: f64,
    catchment_ms_p90: f64,
    catchment_nodes_p50: f64,
    catchment_cells_ms_p50: f64,
    reweight_100_catchments_ms: f64,
    live_update_100_edges_ms: f64,
    live_update_100_edges_ms_p90: f64,
    live_recomputed_arcs: f64,
    eta_300_ms_p50: f64,
    eta_300_ms_p90: f64,
    route_ms_p50: f64,
    route_ms_p99: f64,
    rss_mb: Option<f64>,
    peak_rss_mb: Option<f64>,
}

#[allow(clippy::too_many_lines)] // one measurement after the other, in order
pub(crate) fn run(args: &BenchRoutingArgs) -> anyhow::Result<ExitCode> {
    let mut f = Figures::default();
    if let Some(pbf) = &args.pbf {
        let bytes = std::fs::read(pbf)
            .with_context(|| format!("cannot read PBF file {}", pbf.display()))?;
        let watch = Stopwatch::start();
        let (graph, _) = RoadGraph::from_pbf(&bytes, &ImportOptions::default(), &|_| {})
            .with_context(|| format!("cannot import {}", pbf.display()))?;
        let encoded = graph.to_bytes();
        f.import_seconds = Some(watch.elapsed().as_secs_f64());
        drop((graph, encoded, bytes));
    }
    let watch = Stopwatch::start();
    let graph = load_graph(&args.graph)?;
    f.load_ms = ms(watch);
    let summary = graph.summary();
    let watch = Stopwatch::start();
    let mut router = Router::new(graph, super::routing::load_profile(None)?);
    f.router_ms = ms(watch);
    let at = args.at.unwrap_or_else(reference_departure);
    let departure = Departure::car(at);
    let points = random_points(&router, 1200, args.seed);
    anyhow::ensure!(
        points.len() == 1200,
        "could not find enough points near roads in {}",
        args.graph.display()
    );
    let budget = TravelTime::from_minutes(30);

    // Customization of the first metric.
    let watch = Stopwatch::start();
    router.prepare(departure);
    f.customize_ms = ms(watch);

    // One 30-minute catchment.
    let mut times = Vec::new();
    let mut sizes = Vec::new();
    for &p in &points[..60] {
        let watch = Stopwatch::start();
        let c = router.catchment(p, budget, departure)?;
        times.push(ms(watch));
        #[allow(clippy::cast_precision_loss)]
        sizes.push(c.len() as f64);
    }
    f.catchment_ms_p50 = quantile(&mut times, 0.5);
    f.catchment_ms_p90 = quantile(&mut times, 0.9);
    f.catchment_nodes_p50 = quantile(&mut sizes, 0.5);

    // The same with H3 cells (after one warm-up that computes the nodes' cells).
    let _ = router
        .catchment(points[0], budget, departure)?
        .cells(CellResolution::Block);
    let mut times = Vec::new();
    for &p in &points[60..90] {
        let watch = Stopwatch::start();
        let cells = router
            .catchment(p, budget, departure)?
            .cells(CellResolution::Block);
        times.push(ms(watch));
        std::hint::black_box(cells);
    }
    f.catchment_cells_ms_p50 = quantile(&mut times, 0.5);

    // A city-wide traffic change (a new time bucket: full customization) and 100 catchments.
    let mut times = Vec::new();
    for hour in [8u64, 9, 10, 11, 12] {
        router.clear_cache();
        let later = Departure::car(at + TravelTime::from_minutes(60 * (hour - 7)));
        let watch = Stopwatch::start();
        let all = router.catchments(&points[100..200], budget, later);
        times.push(ms(watch));
        anyhow::ensure!(all.iter().all(Result::is_ok), "a catchment failed");
    }
    f.reweight_100_catchments_ms = quantile(&mut times, 0.5);
    router.clear_cache();
    router.prepare(departure);

    // Live update of 100 edges (the live metric of the current bucket exists).
    let segments: Vec<_> = router.segments().collect();
    let mut rng = SplitMix(args.seed ^ 0x5eed);
    // GPS batches arrive every five seconds: the live clock moves on, and decay is
    // re-evaluated for every segment with a live speed at each update.
    let batch = |rng: &mut SplitMix, at: Timestamp| -> Vec<SpeedObservation> {
        (0..100)
            .map(|_| {
                #[allow(clippy::cast_possible_truncation)]
                let i = (rng.next_u64() % segments.len() as u64) as usize;
                SpeedObservation {
                    segment: segments[i],
                    speed: Speed::from_kmh(5.0 + 55.0 * rng.unit())
                        .unwrap_or(Speed::COLOMBIA_URBAN_LIMIT),
                    at,
                }
            })
            .collect()
    };
    let first = batch(&mut rng, at);
    router.observe(&first, at);
    router.prepare(departure);
    let mut times = Vec::new();
    let mut recomputed = Vec::new();
    for step in 1..=40 {
        let now = at + TravelTime::from_secs(5 * step);
        let observations = batch(&mut rng, now);
        let watch = Stopwatch::start();
        let update = router.observe(&observations, now);
        times.push(ms(watch));
        #[allow(clippy::cast_precision_loss)]
        recomputed.push(update.recomputed_arcs as f64);
    }
    f.live_update_100_edges_ms = quantile(&mut times, 0.5);
    f.live_update_100_edges_ms_p90 = quantile(&mut times, 0.9);
    f.live_recomputed_arcs = quantile(&mut recomputed, 0.5);

    // ETAs from 300 origins to one target: fresh origins each time (snapping included).
    let mut times = Vec::new();
    for i in 0..60 {
        let target = points[200 + i];
        let start = 300 + (i * 13) % 600;
        let origins = &points[start..start + 300];
        let watch = Stopwatch::start();
        let etas = router.etas_to(target, origins, departure)?;
        times.push(ms(watch));
        std::hint::black_box(etas);
    }
    f.eta_300_ms_p50 = quantile(&mut times, 0.5);
    f.eta_300_ms_p90 = quantile(&mut times, 0.9);

    // Routes with geometry and steps.
    let mut times = Vec::new();
    for i in 0..1000 {
        let (a, b) = (points[i], points[(i * 7 + 101) % points.len()]);
        let watch = Stopwatch::start();
        let route = router.route(a, b, departure)?;
        times.push(ms(watch));
        std::hint::black_box(route);
    }
    f.route_ms_p50 = quantile(&mut times, 0.5);
    f.route_ms_p99 = quantile(&mut times, 0.99);

    (f.rss_mb, f.peak_rss_mb) = memory_mb();
    print(args, &f, &summary, at)?;
    Ok(ExitCode::SUCCESS)
}

fn print(
    args: &BenchRoutingArgs,
    f: &Figures,
    summary: &routing::GraphSummary,
    at: Timestamp,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if args.json {
        return print_json(&mut out, args, f, summary, at);
    }
    print_table(&mut out, args, f, summary, at)
}

fn print_json(
    out: &mut std::io::StdoutLock<'_>,
    args: &BenchRoutingArgs,
    f: &Figures,
    summary: &routing::GraphSummary,
    at: Timestamp,
) -> anyhow::Result<()> {
    {
        let value = json!({
            "graph": args.graph.display().to_string(),
            "departure": at.to_bogota_rfc3339(),
            "nodes": summary.nodes,
            "edges": summary.edges,
            "hierarchy_arcs": summary.hierarchy_arcs,
            "import_seconds": f.import_seconds.map(round3),
            "load_ms": round3(f.load_ms),
            "router_ms": round3(f.router_ms),
            "customize_ms": round3(f.customize_ms),
            "catchment_ms_p50": round3(f.catchment_ms_p50),
            "catchment_ms_p90": round3(f.catchment_ms_p90),
            "catchment_nodes_p50": f.catchment_nodes_p50,
            "catchment_cells_ms_p50": round3(f.catchment_cells_ms_p50),
            "reweight_100_catchments_ms": round3(f.reweight_100_catchments_ms),
            "live_update_100_edges_ms": round3(f.live_update_100_edges_ms),
            "live_update_100_edges_ms_p90": round3(f.live_update_100_edges_ms_p90),
            "live_recomputed_arcs_p50": f.live_recomputed_arcs,
            "eta_300_ms_p50": round3(f.eta_300_ms_p50),
            "eta_300_ms_p90": round3(f.eta_300_ms_p90),
            "route_ms_p50": round3(f.route_ms_p50),
            "route_ms_p99": round3(f.route_ms_p99),
            "rss_mb": f.rss_mb.map(|m| (m * 10.0).round() / 10.0),
            "peak_rss_mb": f.peak_rss_mb.map(|m| (m * 10.0).round() / 10.0),
        });
        writeln!(out, "{value}")?;
        Ok(())
    }
}

fn print_table(
    out: &mut std::io::StdoutLock<'_>,
    args: &BenchRoutingArgs,
    f: &Figures,
    summary: &routing::GraphSummary,
    at: Timestamp,
) -> anyhow::Result<()> {
    writeln!(
        out,
        "regula bench routing — {} ({} nodes, {} edges, {} hierarchy arcs), departure {}",
        args.graph.display(),
        summary.nodes,
        summary.edges,
        summary.hierarchy_arcs,
        at.to_bogota_rfc3339()
    )?;
    let mut rows: Vec<(&str, f64, &str, Option<f64>)> = Vec::new();
    if let Some(s) = f.import_seconds {
        rows.push(("PBF → ready graph (import + encode)", s, "s", Some(1.5)));
    }
    rows.extend([
        ("load graph file", f.load_ms, "ms", None),
        ("build router (snapping index)", f.router_ms, "ms", None),
        ("customize one metric", f.customize_ms, "ms", None),
        ("30-min catchment p50", f.catchment_ms_p50, "ms", Some(3.0)),
        ("30-min catchment p90", f.catchment_ms_p90, "ms", None),
        (
            "30-min catchment + H3 cells p50",
            f.catchment_cells_ms_p50,
            "ms",
            None,
        ),
        (
            "new bucket + 100 catchments",
            f.reweight_100_catchments_ms,
            "ms",
            Some(100.0),
        ),
        (
            "live update of 100 edges p50",
            f.live_update_100_edges_ms,
            "ms",
            Some(3.0),
        ),
        (
            "live update of 100 edges p90",
            f.live_update_100_edges_ms_p90,
            "ms",
            None,
        ),
        (
            "ETA 300 origins → 1 target p50",
            f.eta_300_ms_p50,
            "ms",
            Some(1.0),
        ),
        (
            "ETA 300 origins → 1 target p90",
            f.eta_300_ms_p90,
            "ms",
            None,
        ),
        (
            "route with geometry and steps p50",
            f.route_ms_p50,
            "ms",
            None,
        ),
        (
            "route with geometry and steps p99",
            f.route_ms_p99,
            "ms",
            Some(0.5),
        ),
    ]);
    if let Some(rss) = f.rss_mb {
        rows.push(("resident memory (VmRSS)", rss, "MB", Some(100.0)));
    }
    if let Some(peak) = f.peak_rss_mb {
        rows.push(("peak resident memory (VmHWM)", peak, "MB", None));
    }
    for (name, value, unit, target) in rows {
        let verdict = match target {
            Some(t) if value <= t => format!("≤ {t} {unit}  ok"),
            Some(t) => format!("≤ {t} {unit}  OVER"),
            None => String::new(),
        };
        writeln!(out, "  {name:<44} {value:>10.3} {unit:<3} {verdict}")?;
    }
    Ok(())
}
