//! A synthetic but realistically proportioned city for benchmarks, the crash test and
//! tests: Bogotá's regulated fleet (952 ambulances: 608 private + 108 public TAB, 184
//! private + 52 public TAM, SaluData/REPS) spread over a region, emergency departments,
//! and whole incident stories. Everything is drawn from a seeded RNG, so a seed always
//! gives the same city.

use std::collections::BTreeSet;

use dispatch_core::Command;
use dispatch_core::facility::{Capability, Complexity, FacilityRegistration};
use dispatch_core::fleet::{Ownership, Provider, UnitKind, UnitRegistration};
use dispatch_core::ids::{EpsCode, FacilityId, OperatorId, UnitId};
use dispatch_core::intake::{CallChannel, CallEvent, CallId, CallerIdentity, ReportedLocation};
use dispatch_core::model::{
    Assessment, ConfirmedLocation, Disposition, EpsAffiliation, Patient, Priority, Regime, Sex,
};
use dispatch_core::privacy::Sensitive;
use dispatch_core::recommend::DemandCell;
use maps::{BoundingBox, Cell, CellResolution, GeoPoint, Timestamp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Bogotá's fleet by kind and ownership (SaluData / REPS: 952 ambulances).
pub const BOGOTA_FLEET: [(UnitKind, Ownership, usize); 4] = [
    (UnitKind::Tab, Ownership::Private, 608),
    (UnitKind::Tab, Ownership::Public, 108),
    (UnitKind::Tam, Ownership::Private, 184),
    (UnitKind::Tam, Ownership::Public, 52),
];

/// Bogotá's urban area (the 114 urban UPZ span lon −74.2236 … −74.0098, lat 4.4579 …
/// 4.8307), where synthetic units, incidents and facilities are placed; rural Sumapaz is
/// left out.
pub const BOGOTA_URBAN: BoundingBox = BoundingBox {
    name: "Bogotá urbana",
    min_lon: -74.2236,
    min_lat: 4.4579,
    max_lon: -74.0098,
    max_lat: 4.8307,
};

/// Moves a drawn point somewhere usable (onto a road, say), or refuses it.
pub type Placer = Box<dyn Fn(GeoPoint) -> Option<GeoPoint> + Send + Sync>;

/// A seeded source of synthetic city data inside a region.
pub struct SyntheticCity {
    region: BoundingBox,
    rng: StdRng,
    placer: Option<Placer>,
}

impl std::fmt::Debug for SyntheticCity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyntheticCity")
            .field("region", &self.region)
            .field("placer", &self.placer.is_some())
            .finish_non_exhaustive()
    }
}

/// Draws before giving up on the placer and using the raw point.
const PLACER_ATTEMPTS: usize = 10_000;

impl SyntheticCity {
    /// A city inside `region`, reproducible from `seed`.
    pub fn new(region: BoundingBox, seed: u64) -> Self {
        Self {
            region,
            rng: StdRng::seed_from_u64(seed),
            placer: None,
        }
    }

    /// Every point drawn goes through `placer` (e.g. snapping to the road graph); points it
    /// refuses are drawn again.
    #[must_use]
    pub fn with_placer(mut self, placer: Placer) -> Self {
        self.placer = Some(placer);
        self
    }

    /// A uniformly random point of the region (placed, when a placer is set).
    pub fn point(&mut self) -> GeoPoint {
        let mut refused = None;
        for _ in 0..PLACER_ATTEMPTS {
            let lon = self
                .rng
                .random_range(self.region.min_lon..=self.region.max_lon);
            let lat = self
                .rng
                .random_range(self.region.min_lat..=self.region.max_lat);
            // Always valid for a box within WGS84 bounds; a malformed box draws again.
            let Ok(p) = GeoPoint::new(lon, lat) else {
                continue;
            };
            match &self.placer {
                None => return p,
                Some(place) => match place(p) {
                    Some(placed) => return placed,
                    None => refused = Some(p),
                },
            }
        }
        refused.unwrap_or_else(|| {
            GeoPoint::new(self.region.min_lon, self.region.min_lat)
                .unwrap_or_else(|e| panic!("the region's corner is not a point: {e}"))
        })
    }

    /// Registration commands for a fleet with Bogotá's composition scaled to `total` units
    /// (952 gives the real fleet). Ids are `TAB-0001`, `TAM-0001`, …
    pub fn fleet(&mut self, total: usize) -> Vec<Command> {
        let real: usize = BOGOTA_FLEET.iter().map(|(_, _, n)| n).sum();
        let mut numbers = [0usize; 2];
        let mut commands = Vec::with_capacity(total);
        for (i, &(kind, ownership, count)) in BOGOTA_FLEET.iter().enumerate() {
            let share = if i + 1 == BOGOTA_FLEET.len() {
                total.saturating_sub(commands.len())
            } else {
                (count * total).div_ceil(real).min(total - commands.len())
            };
            for _ in 0..share {
                let slot = usize::from(kind == UnitKind::Tam);
                numbers[slot] += 1;
                let prefix = if kind == UnitKind::Tam { "TAM" } else { "TAB" };
                let id = format!("{prefix}-{:04}", numbers[slot]);
                let provider = match ownership {
                    Ownership::Public => "Subred Integrada de Servicios de Salud",
                    Ownership::Private => "Ambulancias Privadas SAS",
                };
                commands.push(Command::RegisterUnit {
                    registration: UnitRegistration {
                        id: unit_id(&id),
                        kind,
                        provider: Provider {
                            name: provider.into(),
                            ownership,
                        },
                        base: self.point(),
                        crew: vec![Sensitive::new(format!("Tripulación {id}"))],
                    },
                });
            }
        }
        commands
    }

    /// Registration commands for `count` emergency departments, a quarter of them with each
    /// specialty capability (stroke, coronary, trauma, obstetric, paediatric, mental health).
    pub fn facilities(&mut self, count: usize) -> Vec<Command> {
        (0..count)
            .map(|i| {
                let capabilities: BTreeSet<Capability> = Capability::ALL
                    .iter()
                    .copied()
                    .filter(|_| self.rng.random_bool(0.25))
                    .collect();
                let complexity = match i % 3 {
                    0 => Complexity::High,
                    1 => Complexity::Medium,
                    _ => Complexity::Low,
                };
                Command::RegisterFacility {
                    registration: FacilityRegistration {
                        id: facility_id(&format!("ED-{:03}", i + 1)),
                        name: format!("Servicio de urgencias {}", i + 1),
                        location: self.point(),
                        complexity,
                        capabilities,
                        ownership: if i % 2 == 0 {
                            Ownership::Public
                        } else {
                            Ownership::Private
                        },
                        subred: None,
                    },
                }
            })
            .collect()
    }

    /// A call offered at `at` with a device location inside the region.
    pub fn offered_call(&mut self, call: &str, at: Timestamp) -> Command {
        let number = self.rng.random_range(3_000_000_000u64..3_299_999_999);
        Command::RecordCallEvent {
            event: CallEvent::Offered {
                call: call_id(call),
                channel: CallChannel::Sip,
                caller: CallerIdentity {
                    asserted: Some(Sensitive::new(format!("tel:+57{number}"))),
                    ..CallerIdentity::default()
                },
                location: ReportedLocation::Absent,
                at,
            },
        }
    }

    /// Opens an incident (not linked to a call) at a random confirmed location.
    pub fn open_incident(&mut self, operator: &OperatorId) -> Command {
        Command::OpenIncident {
            call: None,
            operator: operator.clone(),
            summary: "Paciente con dolor torácico opresivo".into(),
            location: Some(ConfirmedLocation {
                address: format!(
                    "Calle {} # {}-{}",
                    self.rng.random_range(1..200),
                    self.rng.random_range(1..120),
                    self.rng.random_range(1..99)
                ),
                point: self.point(),
            }),
        }
    }

    /// A patient with a random EPS affiliation (or unknown).
    pub fn patient(&mut self) -> Patient {
        let eps = if self.rng.random_bool(0.8) {
            EpsAffiliation::Affiliated {
                eps: eps_code(
                    ["EPS037", "EPS002", "EPSS41", "EPS010"][self.rng.random_range(0..4)],
                ),
                regime: if self.rng.random_bool(0.76) {
                    Regime::Contributory
                } else {
                    Regime::Subsidised
                },
            }
        } else {
            EpsAffiliation::Unknown
        };
        Patient {
            document: None,
            name: None,
            age_years: Some(f64::from(self.rng.random_range(1u8..95))),
            sex: Some(if self.rng.random_bool(0.5) {
                Sex::F
            } else {
                Sex::M
            }),
            eps,
        }
    }

    /// `count` distinct H3 resolution-8 demand cells at random points, weight 1 each.
    pub fn demand_cells(&mut self, count: usize) -> Vec<DemandCell> {
        let mut cells = BTreeSet::new();
        let mut attempts = 0;
        while cells.len() < count && attempts < count * 100 {
            cells.insert(Cell::containing(self.point(), CellResolution::Coverage));
            attempts += 1;
        }
        cells
            .into_iter()
            .map(|cell| DemandCell { cell, weight: 1.0 })
            .collect()
    }

    /// A number in `range` (for workload mixes).
    pub fn below(&mut self, n: usize) -> usize {
        self.rng.random_range(0..n.max(1))
    }
}

/// A level-I/II assessment needing an ambulance of `kind`.
pub fn ambulance_assessment(kind: UnitKind, capability: Option<Capability>) -> Assessment {
    Assessment {
        level: if kind == UnitKind::Tam { 1 } else { 2 },
        priority: if kind == UnitKind::Tam {
            Priority::Critical
        } else {
            Priority::High
        },
        disposition: Disposition::Ambulance { unit: kind },
        capability,
        route: None,
        protocol: "simulacion@1".into(),
        summary: "Valoración simulada".into(),
        triage: None,
    }
}

fn unit_id(s: &str) -> UnitId {
    UnitId::new(s).unwrap_or_else(|e| panic!("synthetic unit id {s}: {e}"))
}

fn facility_id(s: &str) -> FacilityId {
    FacilityId::new(s).unwrap_or_else(|e| panic!("synthetic facility id {s}: {e}"))
}

fn eps_code(s: &str) -> EpsCode {
    EpsCode::new(s).unwrap_or_else(|e| panic!("synthetic EPS code {s}: {e}"))
}

fn call_id(s: &str) -> CallId {
    CallId::new(s).unwrap_or_else(|e| panic!("synthetic call id {s}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_full_fleet_has_bogotas_composition() {
        let mut city = SyntheticCity::new(BoundingBox::BOGOTA, 7);
        let fleet = city.fleet(952);
        assert_eq!(fleet.len(), 952);
        let tam = fleet
            .iter()
            .filter(|c| matches!(c, Command::RegisterUnit { registration } if registration.kind == UnitKind::Tam))
            .count();
        assert_eq!(tam, 236);
        let public = fleet
            .iter()
            .filter(|c| matches!(c, Command::RegisterUnit { registration } if registration.provider.ownership == Ownership::Public))
            .count();
        assert_eq!(public, 160);
    }

    #[test]
    fn a_seed_always_gives_the_same_city() {
        let a = SyntheticCity::new(BoundingBox::BOGOTA, 42).fleet(20);
        let b = SyntheticCity::new(BoundingBox::BOGOTA, 42).fleet(20);
        let c = SyntheticCity::new(BoundingBox::BOGOTA, 43).fleet(20);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn every_point_is_inside_the_region() {
        let mut city = SyntheticCity::new(BoundingBox::BOGOTA, 1);
        for _ in 0..1000 {
            assert!(BoundingBox::BOGOTA.contains(city.point()));
        }
    }
}
