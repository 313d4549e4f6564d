//! The real Bogotá region pack (`shared/data`) loads completely, with the published counts,
//! the two swapped coordinates repaired, and a reproducible synthetic fleet.
//!
//! These tests need the shared data directory next to the repository; they fail (not skip)
//! when it is missing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
#![allow(clippy::print_stdout)] // the load time and summary are printed for the record

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::OnceLock;

use dispatch_core::facility::{Capability, Complexity};
use dispatch_core::fleet::{Ownership, UnitKind};
use dispatch_core::model::Priority;
use geo::Contains;
use maps::BoundingBox;
use ops_console::clock::Stopwatch;
use ops_console::region::{
    DEFAULT_FLEET_SEED, OccupancySource, PackSources, RegionPack, RegionWarning, Subred, UPZ_FILE,
    UrbanFootprint, YearMonth,
};

const PACK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data");

fn pack_dir() -> &'static Path {
    let dir = Path::new(PACK);
    assert!(
        dir.join("README.md").is_file(),
        "the shared data directory is missing: expected {PACK} (see shared/data/README.md)"
    );
    dir
}

fn pack() -> &'static RegionPack {
    static PACK_LOADED: OnceLock<RegionPack> = OnceLock::new();
    PACK_LOADED.get_or_init(|| {
        let watch = Stopwatch::start();
        let pack = RegionPack::load(pack_dir()).unwrap_or_else(|e| panic!("{e}"));
        println!("region pack loaded in {:?}", watch.elapsed());
        pack
    })
}

/// Prints how long reading and building the pack take (median of 3), for the record:
/// `cargo test --release -p ops-console --test region_pack -- --nocapture load_time`.
/// Nothing is asserted about the time (measured, not asserted).
#[test]
fn load_time_is_measured_on_the_real_pack() {
    let mut read = Vec::new();
    let mut parse = Vec::new();
    let mut last_pack = None;
    for _ in 0..3 {
        let watch = Stopwatch::start();
        let sources = PackSources::read(pack_dir()).unwrap();
        read.push(watch.elapsed());
        let watch = Stopwatch::start();
        last_pack = Some(RegionPack::from_sources(&sources, DEFAULT_FLEET_SEED).unwrap());
        parse.push(watch.elapsed());
    }
    read.sort();
    parse.sort();
    println!(
        "region pack: read files {:?}, parse and build {:?} (median of 3; min {:?} + {:?})",
        read[1], parse[1], read[0], parse[0]
    );
    assert_eq!(last_pack.unwrap().fleet(), pack().fleet());
}

#[test]
fn the_real_pack_has_84_emergency_departments_by_complexity() {
    let s = pack().summary();
    println!("{s}");
    assert_eq!(s.facilities, 84);
    assert_eq!(
        (s.facilities_high, s.facilities_medium, s.facilities_low),
        (25, 22, 37)
    );
    let eds = pack().facilities();
    assert_eq!(eds[0].registration.id.as_str(), "ED-001");
    assert_eq!(eds[0].registration.name, "Clínica La Inmaculada");
    assert_eq!(eds[83].registration.id.as_str(), "ED-084");
    let ids: BTreeSet<_> = eds.iter().map(|e| &e.registration.id).collect();
    assert_eq!(ids.len(), 84);
    for ed in eds {
        assert!(
            BoundingBox::BOGOTA.contains(ed.registration.location),
            "{ed:?}"
        );
    }
    let high = eds
        .iter()
        .find(|e| e.registration.name == "Hospital Occidente de Kennedy")
        .unwrap();
    assert_eq!(high.registration.complexity, Complexity::High);
    assert_eq!(high.registration.ownership, Ownership::Public);
    assert!(high.registration.capabilities.contains(&Capability::Stroke));
    assert_eq!(high.registration.subred.as_deref(), Some("Sur Occidente"));
}

#[test]
fn the_two_swapped_coordinates_are_fixed_and_reported() {
    let swapped: Vec<(&str, u64)> = pack()
        .warnings()
        .iter()
        .filter_map(|w| match w {
            RegionWarning::SwappedCoordinates { name, line, .. } => Some((name.as_str(), *line)),
            _ => None,
        })
        .collect();
    assert_eq!(
        swapped,
        [
            ("Hospital de Usme", 71),
            ("Centro de Salud Patio Bonito", 74)
        ]
    );
    let usme = pack()
        .facilities()
        .iter()
        .find(|e| e.registration.name == "Hospital de Usme")
        .unwrap();
    assert!((usme.registration.location.lon() - -74.109_770_84).abs() < 1e-9);
    assert!((usme.registration.location.lat() - 4.489_229_593).abs() < 1e-9);
}

#[test]
fn every_warning_of_the_real_pack_is_expected() {
    let unexpected: Vec<String> = pack()
        .warnings()
        .iter()
        .filter(|w| !matches!(w, RegionWarning::SwappedCoordinates { .. }))
        .map(ToString::to_string)
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:#?}");
}

#[test]
fn nineteen_urban_localidades_carry_all_the_demand() {
    let pack = pack();
    let urban: Vec<_> = pack.localidades().iter().filter(|l| l.urban).collect();
    assert_eq!(pack.localidades().len(), 20);
    assert_eq!(urban.len(), 19);
    assert!(
        urban
            .iter()
            .all(|l| l.demand_incidents > 0 && !l.cells.is_empty())
    );
    let sumapaz = pack.localidades().iter().find(|l| !l.urban).unwrap();
    assert_eq!(sumapaz.name, "SUMAPAZ");
    assert!(sumapaz.cells.is_empty());

    let file_total: u64 = pack
        .demand()
        .by_localidad
        .iter()
        .map(|(_, n)| u64::from(*n))
        .sum();
    assert_eq!(file_total, 9206);
    let weights: f64 = pack.demand_cells().iter().map(|c| c.weight).sum();
    #[allow(clippy::cast_precision_loss)]
    let expected = file_total as f64;
    assert!((weights - expected).abs() < 1e-6, "{weights}");

    let candelaria = urban.iter().find(|l| l.code == "17").unwrap();
    assert_eq!(candelaria.demand_incidents, 77);
    let usaquen = urban.iter().find(|l| l.code == "01").unwrap();
    assert_eq!(usaquen.demand_incidents, 372);
    // Cells are unique and at resolution 8; the urban area is roughly 380 km², ~520 cells.
    let cells: BTreeSet<_> = pack.demand_cells().iter().map(|c| c.cell).collect();
    assert_eq!(cells.len(), pack.demand_cells().len());
    assert!(
        (400..=700).contains(&cells.len()),
        "{} demand cells",
        cells.len()
    );
}

#[test]
fn the_hourly_curve_and_priorities_come_from_the_demand_file() {
    let d = pack().demand();
    assert_eq!(d.incidents, 9206);
    assert_eq!(d.days, 30);
    assert_eq!(d.hourly.total(), 9206);
    assert_eq!(d.hourly.counts[9], 683);
    assert_eq!(d.hourly.peak_hour(), 9);
    assert_eq!(d.hourly.anomalous_hours, [17, 18]);
    assert_eq!(d.priorities.count(Priority::Critical), 2457);
    assert_eq!(d.priorities.count(Priority::High), 5155);
    assert_eq!(d.priorities.count(Priority::Medium), 1074);
    assert_eq!(d.priorities.count(Priority::Low), 520);
}

#[test]
fn the_fleet_has_952_units_with_the_published_composition() {
    let pack = pack();
    let s = pack.summary();
    assert_eq!(s.units, 952);
    assert_eq!(
        (s.tab_private, s.tab_public, s.tam_private, s.tam_public),
        (608, 108, 184, 52)
    );
    let units = &pack.fleet().units;
    assert_eq!(units[0].registration.id.as_str(), "TAB-0001");
    let last_tab = units
        .iter()
        .rfind(|u| u.registration.kind == UnitKind::Tab)
        .unwrap();
    assert_eq!(last_tab.registration.id.as_str(), "TAB-0716");
    assert_eq!(units.last().unwrap().registration.id.as_str(), "TAM-0236");
    let ids: BTreeSet<_> = units.iter().map(|u| &u.registration.id).collect();
    assert_eq!(ids.len(), 952);
    // Kennedy has the most demand (1,378 of 9,206), hence the most units.
    let in_kennedy = units.iter().filter(|u| u.localidad_code == "08").count();
    assert!((135..=150).contains(&in_kennedy), "{in_kennedy}");
}

#[test]
fn every_base_is_inside_bogota_its_localidad_and_the_urban_area() {
    let pack = pack();
    let upz = std::fs::read_to_string(pack_dir().join(UPZ_FILE)).unwrap();
    let footprint = UrbanFootprint::parse(UPZ_FILE, &upz).unwrap();
    for unit in &pack.fleet().units {
        let base = unit.registration.base;
        assert!(BoundingBox::BOGOTA.contains(base), "{unit:?}");
        let localidad = pack
            .localidades()
            .iter()
            .find(|l| l.code == unit.localidad_code)
            .unwrap();
        assert!(localidad.urban);
        assert!(localidad.area.as_geo().contains(&base.to_geo()), "{unit:?}");
        assert!(footprint.contains(base), "{unit:?}");
        let public = unit.registration.provider.ownership == Ownership::Public;
        assert_eq!(
            public,
            unit.registration.provider.name == localidad.subred.provider_name(),
            "{unit:?}"
        );
    }
}

#[test]
fn a_fixed_seed_gives_the_same_fleet_and_another_seed_another() {
    let again = RegionPack::load_with_seed(pack_dir(), pack().fleet().seed).unwrap();
    assert_eq!(again.fleet(), pack().fleet());
    let other = RegionPack::load_with_seed(pack_dir(), pack().fleet().seed + 1).unwrap();
    assert_ne!(other.fleet(), pack().fleet());
    assert_eq!(other.fleet().units.len(), 952);
}

#[test]
fn public_eds_start_from_the_latest_public_occupancy() {
    let pack = pack();
    let o = pack.occupancy();
    let sept_2025 = YearMonth {
        year: 2025,
        month: 9,
    };
    assert_eq!(o.latest_month, sept_2025);
    assert!((o.total_riss.percent - 132.52).abs() < 1e-9);
    assert!((o.subredes[&Subred::SurOccidente].percent - 197.42).abs() < 1e-9);
    assert_eq!(o.sites.len(), 6);

    // 34 public EDs, of which 31 are run by a subred; the Instituto Nacional de
    // Cancerología, the Hospital Militar Central and La Samaritana are not.
    let public: Vec<_> = pack
        .facilities()
        .iter()
        .filter(|e| e.registration.ownership == Ownership::Public)
        .collect();
    assert_eq!(public.len(), 34);
    assert_eq!(pack.initial_occupancy().len(), 31);
    for ed in &public {
        assert_eq!(
            pack.initial_occupancy().contains_key(&ed.registration.id),
            ed.registration.subred.is_some(),
            "{}",
            ed.registration.name
        );
    }
    let militar = public
        .iter()
        .find(|e| e.registration.name == "Hospital Militar Central")
        .unwrap();
    assert_eq!(militar.registration.subred, None);
    let sites = pack
        .initial_occupancy()
        .values()
        .filter(|i| matches!(i.source, OccupancySource::Site(_)))
        .count();
    assert_eq!(sites, 6, "each priority hospital matches its ED");
    let tunal = pack
        .facilities()
        .iter()
        .find(|e| e.registration.name == "Unidad de Servicios de Salud El Tunal")
        .unwrap();
    let initial = &pack.initial_occupancy()[&tunal.registration.id];
    assert!((initial.value.percent - 281.30).abs() < 1e-9);
    assert!(
        pack.facilities()
            .iter()
            .filter(|e| e.registration.ownership == Ownership::Private)
            .all(|e| !pack.initial_occupancy().contains_key(&e.registration.id))
    );
}
