//! The Bogotá profile against the Secretaría Distrital de Movilidad's figures: 22.8–25 km/h
//! average at peak (2017–2023) and about 34 km/h off-peak.
//!
//! The check runs on Bogotá's own street mix: the real Teusaquillo/Chapinero network in
//! `shared/data/roads/bogota_teusaquillo_sumo_2018.net.xml` (built from OpenStreetMap by
//! SUMO's netconvert; each edge keeps its OSM `highway` class and its length). The average
//! is length-weighted over its directed edges with the profile's class speeds. The OSM
//! fixtures of other cities are imported through the whole pipeline and their averages are
//! printed and checked for consistency only: their mix of streets is not Bogotá's.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod common;

use common::{off_peak, peak, router};
use maps::Timestamp;
use routing::{Departure, Profile, RoadClass};

/// `(class, length in metres)` of every directed edge of the Teusaquillo network with an
/// OSM class (edges drawn by hand in the SUMO editor have none and are left out).
fn teusaquillo_edges() -> Vec<(RoadClass, f64)> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/data/roads/bogota_teusaquillo_sumo_2018.net.xml"
    );
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path} is missing ({e}); the calibration test needs it"));
    let doc = roxmltree::Document::parse(&text).unwrap();
    let mut edges = Vec::new();
    for edge in doc.descendants().filter(|n| n.has_tag_name("edge")) {
        if edge.attribute("function") == Some("internal") {
            continue;
        }
        let Some(class) = edge
            .attribute("type")
            .and_then(|t| t.strip_prefix("highway."))
            .and_then(RoadClass::from_highway)
        else {
            continue;
        };
        let lane = edge.children().find(|n| n.has_tag_name("lane")).unwrap();
        let length: f64 = lane.attribute("length").unwrap().parse().unwrap();
        edges.push((class, length));
    }
    edges
}

fn length_weighted_kmh(profile: &Profile, edges: &[(RoadClass, f64)], at: Timestamp) -> f64 {
    let total: f64 = edges.iter().map(|e| e.1).sum();
    let weighted: f64 = edges
        .iter()
        .map(|&(class, length)| length * profile.speed(class, None, Departure::car(at)).kmh())
        .sum();
    weighted / total
}

#[test]
fn bogota_peak_average_is_within_the_secretaria_de_movilidad_range() {
    let edges = teusaquillo_edges();
    assert!(edges.len() > 100, "{} edges", edges.len());
    let km: f64 = edges.iter().map(|e| e.1).sum::<f64>() / 1000.0;
    assert!((10.0..14.0).contains(&km), "{km} km");
    let profile = Profile::bogota();
    let peak_kmh = length_weighted_kmh(&profile, &edges, peak());
    println!("Teusaquillo ({km:.1} km): 07:30 weekday {peak_kmh:.1} km/h");
    assert!(
        (22.8..=25.0).contains(&peak_kmh),
        "peak average {peak_kmh:.2} km/h"
    );
}

#[test]
fn bogota_off_peak_average_is_near_34_kmh() {
    let edges = teusaquillo_edges();
    let profile = Profile::bogota();
    let off_peak_kmh = length_weighted_kmh(&profile, &edges, off_peak());
    println!("Teusaquillo: 10:30 weekday {off_peak_kmh:.1} km/h");
    assert!(
        (32.0..=36.0).contains(&off_peak_kmh),
        "off-peak average {off_peak_kmh:.2} km/h"
    );
    // Weekend mornings are lighter than weekday peaks.
    let saturday = Timestamp::parse_rfc3339("2026-11-21T07:30:00-05:00").unwrap();
    assert!(
        length_weighted_kmh(&profile, &edges, saturday)
            > length_weighted_kmh(&profile, &edges, peak())
    );
}

#[test]
fn averages_on_imported_osm_graphs_are_consistent_with_the_profile() {
    for name in ["sao_paulo_centro", "porto_portugal"] {
        let r = router(name);
        let at_peak = r.average_speed(peak());
        let at_off_peak = r.average_speed(off_peak());
        let at_night =
            r.average_speed(Timestamp::parse_rfc3339("2026-11-23T03:00:00-05:00").unwrap());
        println!(
            "{name}: peak {:.1} km/h, off-peak {:.1} km/h, night {:.1} km/h (length-weighted)",
            at_peak.length_weighted_kmh,
            at_off_peak.length_weighted_kmh,
            at_night.length_weighted_kmh
        );
        // Peak is slower than off-peak, which is slower than the night; the space-mean
        // speed (total length / total time) is never above the length-weighted mean.
        assert!(at_peak.length_weighted_kmh < at_off_peak.length_weighted_kmh);
        assert!(at_off_peak.length_weighted_kmh < at_night.length_weighted_kmh);
        assert!(at_peak.space_mean_kmh <= at_peak.length_weighted_kmh + 1e-9);
        // Residential-heavy mixes land a little below Bogotá's figures, not far off.
        assert!(
            (18.0..=27.0).contains(&at_peak.length_weighted_kmh),
            "{name}"
        );
        assert!(
            (26.0..=38.0).contains(&at_off_peak.length_weighted_kmh),
            "{name}"
        );
        let ambulance = r.average_speed(Departure::emergency(peak()));
        assert!(ambulance.length_weighted_kmh > at_peak.length_weighted_kmh);
    }
}
