//! The routing commands as operators use them, on the real São Paulo centre extract:
//! `regula osm import`, `route`, `catchment`, `eta`, `routing export-edges` and
//! `bench routing`, with their bad inputs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;

const PEAK: &str = "2026-11-23T07:30:00-05:00";
const CENTRE: &str = "-46.6350,-23.5450";
const SOUTH_WEST: &str = "-46.6450,-23.5550";

fn regula() -> Command {
    Command::new(env!("CARGO_BIN_EXE_regula"))
}

fn fixture(name: &str) -> PathBuf {
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/data/roads/fixtures"
    ))
    .join(name);
    assert!(path.exists(), "fixture {} is missing", path.display());
    path
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("regula-routing-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(args: &[&str]) -> Output {
    regula().args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The São Paulo graph, imported once, and the import's JSON summary.
fn graph() -> &'static (PathBuf, Value) {
    static GRAPH: OnceLock<(PathBuf, Value)> = OnceLock::new();
    GRAPH.get_or_init(|| {
        let out = temp_dir().join("sao-paulo.graph");
        let pbf = fixture("sao_paulo_centro.osm.pbf");
        let o = run(&[
            "osm",
            "import",
            "--pbf",
            pbf.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--json",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let summary: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        (out, summary)
    })
}

fn graph_path() -> &'static str {
    graph().0.to_str().unwrap()
}

#[test]
fn osm_import_prints_a_json_summary_and_writes_a_loadable_graph() {
    let (path, summary) = graph();
    for key in [
        "seconds",
        "nodes",
        "edges",
        "road_km",
        "routing_nodes",
        "hierarchy_arcs",
    ] {
        assert!(
            summary[key].as_f64().is_some(),
            "{key} missing in {summary}"
        );
    }
    assert!(summary["nodes"].as_u64().unwrap() > 4000);
    assert!(summary["edges"].as_u64().unwrap() > 8000);
    assert!(summary["road_km"].as_f64().unwrap() > 500.0);
    for key in ["nodes", "edges", "km"] {
        assert!(
            summary["dropped"][key].as_f64().is_some(),
            "dropped.{key} in {summary}"
        );
    }
    assert_eq!(
        summary["file_bytes"].as_u64().unwrap(),
        std::fs::metadata(path).unwrap().len()
    );
}

#[test]
fn osm_import_refuses_missing_empty_truncated_and_foreign_files() {
    let dir = temp_dir();
    let out = dir.join("never.graph");
    let empty = dir.join("empty.osm.pbf");
    std::fs::write(&empty, b"").unwrap();
    let xml = dir.join("map.osm");
    std::fs::write(&xml, "<?xml version='1.0'?><osm version='0.6'></osm>").unwrap();
    let truncated = dir.join("truncated.osm.pbf");
    let real = std::fs::read(fixture("monaco.osm.pbf")).unwrap();
    std::fs::write(&truncated, &real[..real.len() / 3]).unwrap();
    let missing = dir.join("missing.osm.pbf");
    for (input, expected) in [
        (&missing, "cannot read PBF file"),
        (&empty, "the file is empty"),
        (&xml, "not an OpenStreetMap PBF file"),
        (&truncated, "truncated"),
    ] {
        let o = run(&[
            "osm",
            "import",
            "--pbf",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(1), "{}", input.display());
        assert!(
            stderr(&o).contains(expected),
            "{}: {}",
            input.display(),
            stderr(&o)
        );
        assert!(!out.exists(), "a failed import wrote {}", out.display());
    }
}

#[test]
fn osm_import_with_a_box_without_roads_or_a_bad_box_fails_clearly() {
    let out = temp_dir().join("nothing.graph");
    let pbf = fixture("monaco.osm.pbf");
    let o = run(&[
        "osm",
        "import",
        "--pbf",
        pbf.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--bbox",
        "-74.1,4.6,-74.0,4.7",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("no drivable roads inside the bounding box"),
        "{}",
        stderr(&o)
    );
    let o = run(&[
        "osm",
        "import",
        "--pbf",
        pbf.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--bbox",
        "7.5,43.7,7.4",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("invalid bounding box"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn route_prints_spanish_steps_and_json_with_geometry() {
    let g = graph_path();
    let o = run(&[
        "route", "--graph", g, "--from", CENTRE, "--to", SOUTH_WEST, "--at", PEAK,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("Diríjase al "), "{text}");
    assert!(text.contains("Llegó a su destino"), "{text}");
    assert!(text.contains("© OpenStreetMap contributors"), "{text}");
    let o = run(&[
        "route", "--graph", g, "--from", CENTRE, "--to", SOUTH_WEST, "--at", PEAK, "--json",
    ]);
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert!(v["duration_ms"].as_u64().unwrap() > 60_000);
    assert!(v["distance_m"].as_f64().unwrap() > 500.0);
    assert_eq!(v["geometry"]["type"], "LineString");
    assert!(v["steps"].as_array().unwrap().len() >= 2);
    assert!(v["from"]["snap_distance_m"].as_f64().unwrap() < 500.0);
    // An ambulance is faster at peak.
    let o = run(&[
        "route",
        "--graph",
        g,
        "--from",
        CENTRE,
        "--to",
        SOUTH_WEST,
        "--at",
        PEAK,
        "--json",
        "--emergency",
    ]);
    let e: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert!(e["duration_ms"].as_u64() < v["duration_ms"].as_u64());
}

#[test]
fn catchment_prints_geojson_and_json() {
    let g = graph_path();
    let o = run(&[
        "catchment",
        "--graph",
        g,
        "--from",
        CENTRE,
        "--minutes",
        "10",
        "--at",
        PEAK,
        "--geojson",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["type"], "Feature");
    assert_eq!(v["geometry"]["type"], "MultiPolygon");
    assert_eq!(v["properties"]["minutes"], 10);
    assert!(v["properties"]["area_km2"].as_f64().unwrap() > 1.0);
    let o = run(&[
        "catchment",
        "--graph",
        g,
        "--from",
        CENTRE,
        "--minutes",
        "10",
        "--at",
        PEAK,
        "--json",
        "--resolution",
        "8",
    ]);
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["budget_ms"], 600_000);
    assert_eq!(v["h3_resolution"], 8);
    let cells = v["cells"].as_array().unwrap();
    assert!(!cells.is_empty());
    assert!(
        cells
            .iter()
            .all(|c| c["time_ms"].as_u64().unwrap() <= 600_000)
    );
    let o = run(&[
        "catchment",
        "--graph",
        g,
        "--from",
        CENTRE,
        "--resolution",
        "12",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("use 7, 8 or 9"), "{}", stderr(&o));
    let o = run(&[
        "catchment",
        "--graph",
        g,
        "--from",
        CENTRE,
        "--minutes",
        "0",
    ]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn eta_reports_each_origin_and_far_ones_as_errors() {
    let g = graph_path();
    let o = run(&[
        "eta",
        "--graph",
        g,
        "--to",
        CENTRE,
        "--from",
        SOUTH_WEST,
        "--from",
        "-46.62,-23.53",
        "--from",
        "0,0",
        "--at",
        PEAK,
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let etas = v["etas"].as_array().unwrap();
    assert_eq!(etas.len(), 3);
    assert!(etas[0]["eta_ms"].as_u64().unwrap() > 0);
    assert!(etas[1]["eta_ms"].as_u64().unwrap() > 0);
    assert!(
        etas[2]["error"]
            .as_str()
            .unwrap()
            .contains("from any drivable road"),
        "{v}"
    );
    // A target far from roads fails the command.
    let o = run(&["eta", "--graph", g, "--to", "0,0", "--from", CENTRE]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn export_edges_writes_one_row_per_directed_edge() {
    let (_, summary) = graph();
    let csv = temp_dir().join("edges.csv");
    let o = run(&[
        "routing",
        "export-edges",
        "--graph",
        graph_path(),
        "--at",
        PEAK,
        "--csv",
        csv.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("from_node,to_node,from_lon,from_lat,to_lon,to_lat,seconds")
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len() as u64, summary["edges"].as_u64().unwrap());
    for row in rows.iter().take(50) {
        let fields: Vec<&str> = row.split(',').collect();
        assert_eq!(fields.len(), 7, "{row}");
        assert!(fields[6].parse::<f64>().unwrap() > 0.0, "{row}");
        assert!(fields[0].parse::<i64>().is_ok() && fields[1].parse::<i64>().is_ok());
    }
    // The departure time is required.
    let o = run(&[
        "routing",
        "export-edges",
        "--graph",
        graph_path(),
        "--csv",
        "x.csv",
    ]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn bad_departure_times_and_coordinates_are_refused() {
    let g = graph_path();
    let o = run(&[
        "route", "--graph", g, "--from", CENTRE, "--to", SOUTH_WEST, "--at", "mañana",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("expected RFC 3339"), "{}", stderr(&o));
    let o = run(&[
        "route",
        "--graph",
        g,
        "--from",
        CENTRE,
        "--to",
        SOUTH_WEST,
        "--at",
        "2026-11-23T07:30",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let o = run(&[
        "route",
        "--graph",
        g,
        "--from",
        "-46.6,-123.5",
        "--to",
        SOUTH_WEST,
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("latitude -123.5 is outside"),
        "{}",
        stderr(&o)
    );
    let o = run(&["route", "--graph", g, "--from", "lejos", "--to", SOUTH_WEST]);
    assert_eq!(o.status.code(), Some(2));
    let o = run(&["route", "--graph", g, "--from", "10,10", "--to", SOUTH_WEST]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("from any drivable road"),
        "{}",
        stderr(&o)
    );
}

fn corrupt_copy(dir: &Path) -> PathBuf {
    let mut bytes = std::fs::read(graph_path()).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    let path = dir.join("corrupt.graph");
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn corrupt_truncated_and_foreign_graph_files_are_refused() {
    let dir = temp_dir();
    let corrupt = corrupt_copy(&dir);
    let truncated = dir.join("truncated.graph");
    let bytes = std::fs::read(graph_path()).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() - 10]).unwrap();
    let foreign = fixture("monaco.osm.pbf");
    for (path, expected) in [
        (corrupt.as_path(), "checksum mismatch"),
        (truncated.as_path(), "truncated"),
        (foreign.as_path(), "not a Regula routing graph"),
    ] {
        let o = run(&[
            "route",
            "--graph",
            path.to_str().unwrap(),
            "--from",
            CENTRE,
            "--to",
            SOUTH_WEST,
        ]);
        assert_eq!(o.status.code(), Some(1));
        assert!(
            stderr(&o).contains(expected),
            "{}: {}",
            path.display(),
            stderr(&o)
        );
    }
}

#[test]
fn bench_routing_prints_every_figure_as_json() {
    let o = run(&["bench", "routing", "--graph", graph_path(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    for key in [
        "catchment_ms_p50",
        "reweight_100_catchments_ms",
        "live_update_100_edges_ms",
        "eta_300_ms_p50",
        "route_ms_p99",
        "rss_mb",
    ] {
        let value = v[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} missing in {v}"));
        assert!(value > 0.0, "{key} = {value}");
    }
    assert_eq!(v["edges"], graph().1["edges"]);
}
