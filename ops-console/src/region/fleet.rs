//! The ambulance fleet: its composition from `emergency/bogota_ambulancias_por_tipo.csv`
//! (REPS, SaluData: 952 = 608 private + 108 public TAB, 184 private + 52 public TAM) and a
//! **synthetic** placement of every unit.
//!
//! There are no real base locations, so bases are drawn, deterministically from a seed:
//! 1. each (kind, ownership) group is apportioned among the urban localidades in proportion
//!    to their Línea 123 demand (largest remainder, ties to the lower localidad code);
//! 2. each unit gets a uniformly random point inside its localidad's polygon **and** inside
//!    the urban footprint (rejection sampling with a seeded [`StdRng`]);
//! 3. public units are operated by the subred serving their localidad ("Subred Integrada de
//!    Servicios de Salud Sur E.S.E."); private units by a generic "Prestador privado" (the
//!    file gives no provider per vehicle);
//! 4. ids are `TAB-0001`… and `TAM-0001`…, private units first, then public, each in
//!    localidad-code order; crews are the roles the kind requires (no names).
//!
//! The same counts, localidades and seed always give the same fleet.

use dispatch_core::fleet::{Ownership, Provider, UnitKind, UnitRegistration};
use dispatch_core::ids::UnitId;
use dispatch_core::privacy::Sensitive;
use geo::{BoundingRect, Contains, Rect};
use maps::GeoPoint;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::RegionError;
use super::geography::{Localidad, UrbanFootprint};
use super::text::{Table, name_key};

/// Draws allowed per base before a localidad is declared to have no urban area.
const MAX_DRAWS_PER_BASE: usize = 100_000;

/// Private provider name used for every private unit.
pub const PRIVATE_PROVIDER: &str = "Prestador privado";

/// The fleet as published, by kind and ownership.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FleetCounts {
    /// Básica, privada.
    pub tab_private: u32,
    /// Básica, pública.
    pub tab_public: u32,
    /// Medicalizada, privada.
    pub tam_private: u32,
    /// Medicalizada, pública.
    pub tam_public: u32,
    /// `Población proyectada`, when the file gives it.
    pub population: Option<u64>,
}

impl FleetCounts {
    /// Units of one kind and ownership.
    pub fn get(&self, kind: UnitKind, ownership: Ownership) -> u32 {
        match (kind, ownership) {
            (UnitKind::Tab, Ownership::Private) => self.tab_private,
            (UnitKind::Tab, Ownership::Public) => self.tab_public,
            (UnitKind::Tam, Ownership::Private) => self.tam_private,
            (UnitKind::Tam, Ownership::Public) => self.tam_public,
        }
    }

    /// All units.
    pub fn total(&self) -> u32 {
        self.tab_private + self.tab_public + self.tam_private + self.tam_public
    }
}

/// Parses the fleet file: `Tipo de ambulancia; Naturaleza; Cantidad; %; Tasa`, one row per
/// (Básica|Medicalizada, Privada|Pública), a `Total` row that must equal their sum, blank
/// rows, and an optional `Población proyectada; 7.937.898` row.
pub fn parse_fleet_counts(file: &str, text: &str) -> Result<FleetCounts, RegionError> {
    const KIND: &str = "Tipo de ambulancia";
    const OWNERSHIP: &str = "Naturaleza";
    const COUNT: &str = "Cantidad";
    let table = Table::parse(file, text)?;
    let (c_kind, c_ownership, c_count) = (
        table.column(KIND)?,
        table.column(OWNERSHIP)?,
        table.column(COUNT)?,
    );
    let inconsistent = |message: String| RegionError::Inconsistent {
        file: file.to_owned(),
        message,
    };
    let mut cells: [Option<(u32, u64)>; 4] = [None; 4];
    let mut total: Option<(u64, u64)> = None;
    let mut population = None;
    for row in table.records() {
        let line = row.line();
        let kind_text = row.optional(c_kind);
        let kind = match name_key(kind_text).as_str() {
            "BASICA" => UnitKind::Tab,
            "MEDICALIZADA" => UnitKind::Tam,
            "TOTAL" => {
                total = Some((row.count(c_count, COUNT)?, line));
                continue;
            }
            "POBLACION PROYECTADA" => {
                population = Some(row.count(c_ownership, OWNERSHIP)?);
                continue;
            }
            _ => return Err(row.unknown(KIND, kind_text, "Básica, Medicalizada or Total")),
        };
        let ownership_text = row.optional(c_ownership);
        let ownership = super::facilities::parse_ownership(ownership_text)
            .ok_or_else(|| row.unknown(OWNERSHIP, ownership_text, "Privada or Pública"))?;
        let count = u32::try_from(row.count(c_count, COUNT)?)
            .map_err(|_| inconsistent(format!("line {line}: the count is implausibly large")))?;
        let slot = slot(kind, ownership);
        if let Some((_, first)) = cells[slot] {
            return Err(inconsistent(format!(
                "line {line} repeats {kind_text} {ownership_text} (first on line {first})"
            )));
        }
        cells[slot] = Some((count, line));
    }
    let get = |kind: UnitKind, ownership: Ownership, label: &str| {
        cells[slot(kind, ownership)]
            .map(|(c, _)| c)
            .ok_or_else(|| inconsistent(format!("no row for {label}")))
    };
    let counts = FleetCounts {
        tab_private: get(UnitKind::Tab, Ownership::Private, "Básica Privada")?,
        tab_public: get(UnitKind::Tab, Ownership::Public, "Básica Pública")?,
        tam_private: get(UnitKind::Tam, Ownership::Private, "Medicalizada Privada")?,
        tam_public: get(UnitKind::Tam, Ownership::Public, "Medicalizada Pública")?,
        population,
    };
    if let Some((stated, line)) = total
        && stated != u64::from(counts.total())
    {
        return Err(inconsistent(format!(
            "line {line}: the Total row says {stated} but the rows sum to {}",
            counts.total()
        )));
    }
    Ok(counts)
}

fn slot(kind: UnitKind, ownership: Ownership) -> usize {
    usize::from(kind == UnitKind::Tam) * 2 + usize::from(ownership == Ownership::Public)
}

/// One unit with the localidad its synthetic base was drawn in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedUnit {
    /// For `Command::RegisterUnit`.
    pub registration: UnitRegistration,
    /// Code of the localidad holding the base.
    pub localidad_code: String,
}

/// The fleet with synthetic bases.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetPlan {
    /// The seed the bases were drawn with.
    pub seed: u64,
    /// Every unit, TAB first then TAM, private before public.
    pub units: Vec<PlannedUnit>,
}

/// Splits `total` in proportion to `weights` (largest remainder; ties to the lower index).
pub fn apportion(total: u32, weights: &[u32]) -> Vec<u32> {
    let sum: u64 = weights.iter().map(|&w| u64::from(w)).sum();
    if sum == 0 {
        return vec![0; weights.len()];
    }
    let mut shares: Vec<u32> = Vec::with_capacity(weights.len());
    let mut remainders: Vec<(u64, usize)> = Vec::with_capacity(weights.len());
    for (i, &w) in weights.iter().enumerate() {
        let exact = u64::from(total) * u64::from(w);
        shares.push(u32::try_from(exact / sum).unwrap_or(u32::MAX));
        remainders.push((exact % sum, i));
    }
    let given: u32 = shares.iter().sum();
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for &(_, i) in remainders
        .iter()
        .take(usize::try_from(total - given).unwrap_or(0))
    {
        shares[i] += 1;
    }
    shares
}

/// Draws points uniformly inside one localidad's urban area.
struct BaseSampler<'a> {
    localidad: &'a Localidad,
    rect: Rect<f64>,
    footprint: UrbanFootprint,
}

impl<'a> BaseSampler<'a> {
    fn new(localidad: &'a Localidad, footprint: &UrbanFootprint) -> Result<Self, RegionError> {
        let rect =
            localidad
                .area
                .as_geo()
                .bounding_rect()
                .ok_or_else(|| RegionError::NoUrbanArea {
                    localidad: localidad.name.clone(),
                })?;
        Ok(Self {
            localidad,
            rect,
            footprint: footprint.within(&rect),
        })
    }

    fn draw(&self, rng: &mut StdRng) -> Result<GeoPoint, RegionError> {
        let (min, max) = (self.rect.min(), self.rect.max());
        for _ in 0..MAX_DRAWS_PER_BASE {
            let lon = rng.random_range(min.x..=max.x);
            let lat = rng.random_range(min.y..=max.y);
            let Ok(point) = GeoPoint::new(lon, lat) else {
                continue;
            };
            if self.localidad.area.as_geo().contains(&point.to_geo())
                && self.footprint.contains(point)
            {
                return Ok(point);
            }
        }
        Err(RegionError::NoUrbanArea {
            localidad: self.localidad.name.clone(),
        })
    }
}

/// Places the fleet over the urban localidades (see the module docs).
pub fn plan_fleet(
    counts: &FleetCounts,
    localidades: &[Localidad],
    footprint: &UrbanFootprint,
    seed: u64,
) -> Result<FleetPlan, RegionError> {
    let urban: Vec<&Localidad> = localidades.iter().filter(|l| l.urban).collect();
    let weights: Vec<u32> = urban.iter().map(|l| l.demand_incidents).collect();
    let samplers = urban
        .iter()
        .map(|l| BaseSampler::new(l, footprint))
        .collect::<Result<Vec<_>, _>>()?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut units = Vec::with_capacity(usize::try_from(counts.total()).unwrap_or(0));
    for kind in [UnitKind::Tab, UnitKind::Tam] {
        let prefix = match kind {
            UnitKind::Tab => "TAB",
            UnitKind::Tam => "TAM",
        };
        let mut number = 0u32;
        for ownership in [Ownership::Private, Ownership::Public] {
            let shares = apportion(counts.get(kind, ownership), &weights);
            for (sampler, share) in samplers.iter().zip(shares) {
                let localidad = sampler.localidad;
                for _ in 0..share {
                    number += 1;
                    let id = UnitId::new(format!("{prefix}-{number:04}")).map_err(|e| {
                        RegionError::Inconsistent {
                            file: super::FLEET_FILE.to_owned(),
                            message: format!("cannot number the fleet: {e}"),
                        }
                    })?;
                    let name = match ownership {
                        Ownership::Public => localidad.subred.provider_name(),
                        Ownership::Private => PRIVATE_PROVIDER.to_owned(),
                    };
                    units.push(PlannedUnit {
                        registration: UnitRegistration {
                            id,
                            kind,
                            provider: Provider { name, ownership },
                            base: sampler.draw(&mut rng)?,
                            crew: crew_roles(kind),
                        },
                        localidad_code: localidad.code.clone(),
                    });
                }
            }
        }
    }
    Ok(FleetPlan { seed, units })
}

/// The roles on board: a TAB carries a driver and an emergency-care assistant, a TAM adds
/// a physician.
fn crew_roles(kind: UnitKind) -> Vec<Sensitive<String>> {
    let roles: &[&str] = match kind {
        UnitKind::Tab => &["Conductor", "Auxiliar o tecnólogo en APH"],
        UnitKind::Tam => &["Conductor", "Médico", "Auxiliar o tecnólogo en APH"],
    };
    roles
        .iter()
        .map(|r| Sensitive::new((*r).to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::geography::tests::two_localidades;
    use crate::region::geography::{attach_demand, tile_urban_cells};

    const REAL_LIKE: &str = "Tipo de ambulancia;Naturaleza;Cantidad;%;Tasa\n\
        Básica;Privada;608;63,87%;0,76\n\
        Medicalizada;Privada;184;19,33%;0,23\n\
        Básica;Pública;108;11,34%;0,14\n\
        Medicalizada;Pública;52;5,46%;0,06\n\
        Total;Total ;952;;1,20\n\
        ;;;;\n\
        Población proyectada;7.937.898;;;\n";

    #[test]
    fn the_fleet_file_is_parsed_with_its_total_and_population() {
        let c = parse_fleet_counts("f.csv", REAL_LIKE).unwrap();
        assert_eq!(
            (c.tab_private, c.tab_public, c.tam_private, c.tam_public),
            (608, 108, 184, 52)
        );
        assert_eq!(c.total(), 952);
        assert_eq!(c.population, Some(7_937_898));
    }

    #[test]
    fn a_total_that_disagrees_is_refused() {
        let text = REAL_LIKE.replace("Total;Total ;952", "Total;Total ;950");
        let err = parse_fleet_counts("f.csv", &text).unwrap_err();
        assert_eq!(
            err.to_string(),
            "f.csv: line 6: the Total row says 950 but the rows sum to 952"
        );
    }

    #[test]
    fn bad_counts_unknown_kinds_repeats_and_gaps_are_refused() {
        let err =
            parse_fleet_counts("f.csv", &REAL_LIKE.replace(";608;", ";seiscientas;")).unwrap_err();
        assert!(
            matches!(&err, RegionError::NotANumber { line: 2, field, .. } if field == "Cantidad"),
            "{err:?}"
        );
        let err = parse_fleet_counts(
            "f.csv",
            &REAL_LIKE.replace("Básica;Privada", "Aérea;Privada"),
        )
        .unwrap_err();
        assert!(
            matches!(
                &err,
                RegionError::UnknownValue {
                    field: "Tipo de ambulancia",
                    ..
                }
            ),
            "{err:?}"
        );
        let err = parse_fleet_counts(
            "f.csv",
            &REAL_LIKE.replace("Básica;Pública", "Básica;Privada"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("repeats"), "{err}");
        let err = parse_fleet_counts(
            "f.csv",
            &REAL_LIKE
                .replace("Medicalizada;Pública;52;5,46%;0,06\n", "")
                .replace(";952;", ";900;"),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("no row for Medicalizada Pública"),
            "{err}"
        );
    }

    #[test]
    fn apportionment_is_proportional_and_exact() {
        assert_eq!(apportion(10, &[1, 1, 1]), [4, 3, 3]);
        assert_eq!(apportion(0, &[5, 5]), [0, 0]);
        assert_eq!(apportion(7, &[0, 0]), [0, 0]);
        let shares = apportion(608, &[1378, 932, 77]);
        assert_eq!(shares.iter().sum::<u32>(), 608);
        assert_eq!(shares, [351, 237, 20]);
    }

    fn small_world() -> (Vec<Localidad>, UrbanFootprint) {
        let mut l = two_localidades();
        attach_demand(
            "d.json",
            &mut l,
            &[("USAQUEN".into(), 300), ("CANDELARIA".into(), 100)],
        )
        .unwrap();
        let footprint = UrbanFootprint::from_areas(l.iter().filter(|l| l.urban).map(|l| &l.area));
        tile_urban_cells(&mut l, &footprint).unwrap();
        (l, footprint)
    }

    #[test]
    fn units_are_placed_in_proportion_to_demand_inside_their_localidad() {
        let (l, footprint) = small_world();
        let counts = parse_fleet_counts("f.csv", REAL_LIKE).unwrap();
        let plan = plan_fleet(&counts, &l, &footprint, 7).unwrap();
        assert_eq!(plan.units.len(), 952);
        let in_usaquen = plan
            .units
            .iter()
            .filter(|u| u.localidad_code == "01")
            .count();
        assert_eq!(in_usaquen, 456 + 81 + 138 + 39);
        for unit in &plan.units {
            let localidad = l.iter().find(|l| l.code == unit.localidad_code).unwrap();
            assert!(
                localidad
                    .area
                    .as_geo()
                    .contains(&unit.registration.base.to_geo())
            );
        }
        let first = &plan.units[0].registration;
        assert_eq!(first.id.as_str(), "TAB-0001");
        assert_eq!(first.provider.name, PRIVATE_PROVIDER);
        let public_tam = plan
            .units
            .iter()
            .find(|u| {
                u.registration.kind == UnitKind::Tam
                    && u.registration.provider.ownership == Ownership::Public
                    && u.localidad_code == "17"
            })
            .unwrap();
        assert_eq!(
            public_tam.registration.provider.name,
            "Subred Integrada de Servicios de Salud Centro Oriente E.S.E."
        );
        assert_eq!(public_tam.registration.crew.len(), 3);
        assert_eq!(
            plan.units.last().unwrap().registration.id.as_str(),
            "TAM-0236"
        );
    }

    #[test]
    fn the_same_seed_gives_the_same_fleet_and_another_seed_moves_the_bases() {
        let (l, footprint) = small_world();
        let counts = parse_fleet_counts("f.csv", REAL_LIKE).unwrap();
        let a = plan_fleet(&counts, &l, &footprint, 7).unwrap();
        let b = plan_fleet(&counts, &l, &footprint, 7).unwrap();
        let c = plan_fleet(&counts, &l, &footprint, 8).unwrap();
        assert_eq!(a, b);
        assert_ne!(a.units[0].registration.base, c.units[0].registration.base);
        assert_eq!(a.units[0].registration.id, c.units[0].registration.id);
    }

    #[test]
    fn a_localidad_outside_the_footprint_cannot_host_bases() {
        let (l, _) = small_world();
        let only_candelaria =
            UrbanFootprint::from_areas(l.iter().filter(|l| l.code == "17").map(|l| &l.area));
        let counts = FleetCounts {
            tab_private: 4,
            tab_public: 0,
            tam_private: 0,
            tam_public: 0,
            population: None,
        };
        let err = plan_fleet(&counts, &l, &only_candelaria, 1).unwrap_err();
        assert!(
            matches!(&err, RegionError::NoUrbanArea { localidad } if localidad == "USAQUEN"),
            "{err:?}"
        );
    }
}
