//! `regula osm import`, `regula route`, `regula catchment`, `regula eta` and
//! `regula routing export-edges`: the road graph from the command line. The `routing` crate
//! does the work; this module reads and writes files and prints.

use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use maps::{CellResolution, Clock, GeoPoint, Timestamp, TravelTime};
use routing::{Departure, ImportBox, ImportOptions, ImportStage, Profile, RoadGraph, Router};
use serde_json::json;

use crate::cli::{
    CatchmentArgs, EtaArgs, ExportEdgesArgs, OsmImportArgs, RouteArgs, RoutingQueryArgs,
};
use crate::clock::{Stopwatch, SystemClock};

/// "© OpenStreetMap contributors", printed with every map result.
const ATTRIBUTION: &str = maps::geojson::OSM_ATTRIBUTION;

/// Reads and validates a graph file.
pub(crate) fn load_graph(path: &Path) -> anyhow::Result<RoadGraph> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read routing graph {}", path.display()))?;
    RoadGraph::from_bytes(&bytes).with_context(|| format!("cannot load {}", path.display()))
}

/// The profile given with `--profile`, or the built-in Bogotá profile.
pub(crate) fn load_profile(path: Option<&Path>) -> anyhow::Result<Profile> {
    let Some(path) = path else {
        return Ok(Profile::bogota());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read profile {}", path.display()))?;
    Profile::from_toml(&text).with_context(|| format!("in {}", path.display()))
}

/// The graph, profile and departure of a query.
fn prepare(query: &RoutingQueryArgs) -> anyhow::Result<(Router, Departure)> {
    let profile = load_profile(query.profile.as_deref())?;
    let graph = load_graph(&query.graph)?;
    let at = query.at.unwrap_or_else(|| SystemClock.now());
    let departure = if query.emergency {
        Departure::emergency(at)
    } else {
        Departure::car(at)
    };
    Ok((Router::new(graph, profile), departure))
}

fn vehicle_label(departure: Departure) -> &'static str {
    match departure.vehicle {
        routing::Vehicle::Car => "car",
        routing::Vehicle::Emergency => "emergency",
    }
}

fn snap_json(snap: &routing::Snap) -> serde_json::Value {
    json!({
        "query": snap.query,
        "point": snap.point,
        "snap_distance_m": (snap.distance.get() * 10.0).round() / 10.0,
        "street": snap.street,
    })
}

/// Writes `bytes` next to `path` and renames it into place, so that a failed write never
/// leaves a half-written graph behind.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

// ---- regula osm import ------------------------------------------------------------------

pub(crate) fn import(args: &OsmImportArgs) -> anyhow::Result<ExitCode> {
    let watch = Stopwatch::start();
    let bbox = args
        .bbox
        .as_deref()
        .map(ImportBox::parse)
        .transpose()
        .context("--bbox")?;
    let bytes = std::fs::read(&args.pbf)
        .with_context(|| format!("cannot read PBF file {}", args.pbf.display()))?;
    let bar = indicatif::ProgressBar::new(1);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg:32} [{bar:30}] {pos}/{len}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message("leyendo / reading PBF");
    let progress_bar = bar.clone();
    let options = ImportOptions {
        bbox,
        keep_all_components: args.keep_all_components,
    };
    let (graph, report) = RoadGraph::from_pbf(&bytes, &options, &move |p| match p.stage {
        ImportStage::Reading => {
            progress_bar.set_length(p.total as u64);
            progress_bar.set_position(p.done as u64);
        }
        stage => {
            progress_bar.set_message(match stage {
                ImportStage::Building => "construyendo / building arcs",
                ImportStage::Ordering => "ordenando / ordering (dissection)",
                _ => "contrayendo / contracting",
            });
        }
    })
    .with_context(|| format!("cannot import {}", args.pbf.display()))?;
    drop(bytes);
    bar.set_message("escribiendo / writing graph");
    let encoded = graph.to_bytes();
    write_atomically(&args.out, &encoded)?;
    bar.finish_and_clear();
    let seconds = watch.elapsed().as_secs_f64();
    let s = graph.summary();
    let mut out = std::io::stdout().lock();
    if args.json {
        let summary = json!({
            "pbf": args.pbf.display().to_string(),
            "out": args.out.display().to_string(),
            "seconds": (seconds * 1000.0).round() / 1000.0,
            "nodes": s.nodes,
            "edges": s.edges,
            "routing_nodes": s.routing_nodes,
            "hierarchy_arcs": s.hierarchy_arcs,
            "road_km": (s.road_km * 10.0).round() / 10.0,
            "ways": report.ways,
            "turn_restrictions": s.turn_restrictions,
            "restrictions_skipped": report.restrictions_skipped,
            "dropped": {
                "nodes": s.dropped_nodes,
                "edges": s.dropped_edges,
                "km": (s.dropped_km * 10.0).round() / 10.0,
            },
            "file_bytes": encoded.len(),
        });
        writeln!(out, "{summary}")?;
    } else {
        writeln!(
            out,
            "{}: {} intersecciones / nodes, {} arcos / directed edges, {:.1} km de vías / of road, {} restricciones de giro / turn restrictions ({} omitidas / skipped)",
            args.out.display(),
            s.nodes,
            s.edges,
            s.road_km,
            s.turn_restrictions,
            report.restrictions_skipped
        )?;
        writeln!(
            out,
            "descartado (fuera de la mayor parte fuertemente conexa) / dropped (outside the largest strongly connected part): {} nodes, {} edges, {:.1} km",
            s.dropped_nodes, s.dropped_edges, s.dropped_km
        )?;
        writeln!(
            out,
            "{seconds:.2} s, {} bytes. {ATTRIBUTION}",
            encoded.len()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

// ---- regula route ------------------------------------------------------------------------

pub(crate) fn route(args: &RouteArgs) -> anyhow::Result<ExitCode> {
    let (router, departure) = prepare(&args.query)?;
    let route = router.route(args.from, args.to, departure)?;
    let mut out = std::io::stdout().lock();
    let steps: Vec<serde_json::Value> = route
        .steps
        .iter()
        .map(|s| {
            json!({
                "instruction": s.instruction,
                "maneuver": s.maneuver,
                "street": s.street,
                "location": s.location,
                "distance_m": s.distance.get().round(),
                "duration_ms": s.duration.as_millis(),
            })
        })
        .collect();
    if args.geojson {
        let mut properties = serde_json::Map::new();
        properties.insert("duration_ms".into(), json!(route.duration.as_millis()));
        properties.insert("distance_m".into(), json!(route.distance.get().round()));
        properties.insert("departure".into(), json!(departure.at.to_bogota_rfc3339()));
        properties.insert("steps".into(), json!(steps));
        properties.insert("attribution".into(), json!(ATTRIBUTION));
        let feature = maps::geojson::feature(route.geometry.to_geometry(), properties);
        writeln!(out, "{}", serde_json::to_string(&feature)?)?;
    } else if args.json {
        let value = json!({
            "duration_ms": route.duration.as_millis(),
            "distance_m": route.distance.get().round(),
            "departure": departure.at.to_bogota_rfc3339(),
            "vehicle": vehicle_label(departure),
            "from": snap_json(&route.from),
            "to": snap_json(&route.to),
            "steps": steps,
            "geometry": serde_json::to_value(route.geometry.to_geometry())?,
            "attribution": ATTRIBUTION,
        });
        writeln!(out, "{value}")?;
    } else {
        writeln!(
            out,
            "Ruta / Route: {}, {} (salida / departure {}, {})",
            route.duration,
            route.distance,
            departure.at.to_bogota_rfc3339(),
            vehicle_label(departure)
        )?;
        for (i, step) in route.steps.iter().enumerate() {
            let mut line = format!("{:>3}. {}", i + 1, step.instruction);
            if step.distance.get() > 0.0 {
                let _ = write!(line, " — {}, {}", step.distance, step.duration);
            }
            writeln!(out, "{line}")?;
        }
        writeln!(out, "{ATTRIBUTION}")?;
    }
    Ok(ExitCode::SUCCESS)
}

// ---- regula catchment --------------------------------------------------------------------

fn resolution(number: u8) -> anyhow::Result<CellResolution> {
    match number {
        7 => Ok(CellResolution::District),
        8 => Ok(CellResolution::Coverage),
        9 => Ok(CellResolution::Block),
        other => anyhow::bail!("--resolution {other} is not supported: use 7, 8 or 9"),
    }
}

pub(crate) fn catchment(args: &CatchmentArgs) -> anyhow::Result<ExitCode> {
    let resolution = resolution(args.resolution)?;
    if args.minutes == 0 || args.minutes > 24 * 60 {
        anyhow::bail!("--minutes {} is out of range: use 1 to 1440", args.minutes);
    }
    let (router, departure) = prepare(&args.query)?;
    let budget = TravelTime::from_minutes(u64::from(args.minutes));
    let catchment = router.catchment(args.from, budget, departure)?;
    let cells = catchment.cells(resolution);
    let area = catchment
        .area(resolution)
        .context("cannot outline the catchment")?;
    let mut out = std::io::stdout().lock();
    if args.geojson {
        let mut properties = serde_json::Map::new();
        properties.insert("minutes".into(), json!(args.minutes));
        properties.insert("departure".into(), json!(departure.at.to_bogota_rfc3339()));
        properties.insert("vehicle".into(), json!(vehicle_label(departure)));
        properties.insert("source".into(), json!(catchment.source().point));
        properties.insert("nodes".into(), json!(catchment.len()));
        properties.insert("area_km2".into(), json!(area.area_m2() / 1e6));
        properties.insert("h3_resolution".into(), json!(resolution.number()));
        properties.insert("attribution".into(), json!(ATTRIBUTION));
        let feature = maps::geojson::feature(area.to_geometry(), properties);
        writeln!(out, "{}", serde_json::to_string(&feature)?)?;
    } else if args.json {
        let value = json!({
            "source": snap_json(catchment.source()),
            "budget_ms": budget.as_millis(),
            "departure": departure.at.to_bogota_rfc3339(),
            "vehicle": vehicle_label(departure),
            "nodes": catchment.len(),
            "h3_resolution": resolution.number(),
            "area_km2": area.area_m2() / 1e6,
            "cells": cells.iter().map(|c| json!({
                "cell": c.cell.to_string(),
                "time_ms": c.time.as_millis(),
                "nodes": c.nodes,
            })).collect::<Vec<_>>(),
            "attribution": ATTRIBUTION,
        });
        writeln!(out, "{value}")?;
    } else {
        writeln!(
            out,
            "Área alcanzable en {} min / reachable in {} min desde / from {} ({} {}): {} intersecciones / nodes, {} celdas H3 res {} / cells, {:.2} km²",
            args.minutes,
            args.minutes,
            catchment.source().point,
            departure.at.to_bogota_rfc3339(),
            vehicle_label(departure),
            catchment.len(),
            cells.len(),
            resolution.number(),
            area.area_m2() / 1e6
        )?;
        writeln!(out, "{ATTRIBUTION}")?;
    }
    Ok(ExitCode::SUCCESS)
}

// ---- regula eta --------------------------------------------------------------------------

pub(crate) fn eta(args: &EtaArgs) -> anyhow::Result<ExitCode> {
    let (router, departure) = prepare(&args.query)?;
    let etas = router.etas_to(args.to, &args.from, departure)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let rows: Vec<serde_json::Value> = args
            .from
            .iter()
            .zip(&etas)
            .map(|(from, eta)| match eta {
                Ok(t) => json!({"from": from, "eta_ms": t.as_millis()}),
                Err(e) => json!({"from": from, "error": e.to_string()}),
            })
            .collect();
        let value = json!({
            "to": args.to,
            "departure": departure.at.to_bogota_rfc3339(),
            "vehicle": vehicle_label(departure),
            "etas": rows,
        });
        writeln!(out, "{value}")?;
    } else {
        writeln!(
            out,
            "Tiempos de llegada a / ETAs to {} (salida / departure {}, {}):",
            args.to,
            departure.at.to_bogota_rfc3339(),
            vehicle_label(departure)
        )?;
        for (from, eta) in args.from.iter().zip(&etas) {
            match eta {
                Ok(t) => writeln!(out, "  {from}: {t}")?,
                Err(e) => writeln!(out, "  {from}: sin ruta / no route ({e})")?,
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

// ---- regula routing export-edges ---------------------------------------------------------

pub(crate) fn export_edges(args: &ExportEdgesArgs) -> anyhow::Result<ExitCode> {
    let profile = load_profile(args.profile.as_deref())?;
    let graph = load_graph(&args.graph)?;
    let router = Router::new(graph, profile);
    let departure = if args.emergency {
        Departure::emergency(args.at)
    } else {
        Departure::car(args.at)
    };
    let edges = router.edge_times(departure);
    let file = std::fs::File::create(&args.csv)
        .with_context(|| format!("cannot create {}", args.csv.display()))?;
    let mut w = BufWriter::new(file);
    writeln!(
        w,
        "from_node,to_node,from_lon,from_lat,to_lon,to_lat,seconds"
    )?;
    for e in &edges {
        writeln!(
            w,
            "{},{},{:.7},{:.7},{:.7},{:.7},{:.3}",
            e.from_node,
            e.to_node,
            e.from.lon(),
            e.from.lat(),
            e.to.lon(),
            e.to.lat(),
            e.time.as_secs_f64()
        )?;
    }
    w.flush()
        .with_context(|| format!("cannot write {}", args.csv.display()))?;
    writeln!(
        std::io::stdout().lock(),
        "{}: {} arcos / directed edges at {}. {ATTRIBUTION}",
        args.csv.display(),
        edges.len(),
        args.at.to_bogota_rfc3339()
    )?;
    Ok(ExitCode::SUCCESS)
}

/// A departure used when none is given in benchmarks: Monday 23 November 2026, 07:30 in
/// Bogotá (the morning peak).
pub(crate) fn reference_departure() -> Timestamp {
    Timestamp::parse_rfc3339("2026-11-23T07:30:00-05:00").unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Deterministic random points inside the graph's box that snap to a road.
pub(crate) fn random_points(router: &Router, n: usize, seed: u64) -> Vec<GeoPoint> {
    let s = router.graph().summary();
    let mut rng = SplitMix(seed);
    let mut out = Vec::with_capacity(n);
    let mut attempts = 0usize;
    while out.len() < n && attempts < n * 1000 {
        attempts += 1;
        let lon = s.min.lon() + rng.unit() * (s.max.lon() - s.min.lon());
        let lat = s.min.lat() + rng.unit() * (s.max.lat() - s.min.lat());
        if let Ok(p) = GeoPoint::new(lon, lat)
            && router.snap(p).is_ok()
        {
            out.push(p);
        }
    }
    out
}

/// `SplitMix64`, for reproducible benchmark inputs.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix(pub(crate) u64);

impl SplitMix {
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
