//! Emergency departments from `health/bogota_ips_urgencias.csv` (REPS, SaluData): the 84
//! sites of Bogotá with an enabled emergency service.
//!
//! Columns (`;`, comma decimals): `sede_nombre; direccion; Longitud; Latitud; Localidad;
//! Subred; telefono; email; Naturaleza jurídica; Complejidad`.
//!
//! - **Ids** are `ED-` and the 1-based number of the data row, zero-padded to three digits
//!   (`ED-001` is the first row after the header). They are stable as long as the file's row
//!   order is; a skipped duplicate row leaves a gap rather than renumbering the rows after
//!   it. The REPS file has no habilitation code to use instead, and names are too long for
//!   a [`FacilityId`] (32 characters).
//! - **Location**: longitude/latitude must lie in [`BoundingBox::BOGOTA`]; a pair that is
//!   only inside when swapped (two rows of the real file: Hospital de Usme, Centro de Salud
//!   Patio Bonito) is swapped back and reported as a [`RegionWarning::SwappedCoordinates`].
//! - **Subred**: the file's `Subred` column is territorial (private EDs have one too); it
//!   is kept as [`EmergencyDepartment::territorial_subred`]. The registration's `subred` is
//!   set only for EDs **operated by a subred** (the district's public network, RISS): public
//!   rows whose e-mail is a subred address or whose name starts with "Unidad de Servicios de
//!   Salud". Other public EDs (national or departmental: Instituto Nacional de Cancerología,
//!   Hospital Militar Central, Hospital Universitario de La Samaritana) have no subred.
//! - **Capabilities are a proxy.** The file says nothing about services beyond urgencias,
//!   so capabilities are derived from `Complejidad` ([`capabilities_for`]):
//!   ALTA → stroke, coronary, trauma, obstetric, paediatric, toxicology and violence care;
//!   MEDIANA → obstetric, paediatric and trauma; BAJA → none. The name adds: mental health
//!   for "Salud Mental" / "Psiquiátrico/a", paediatric for "Infantil" / "Pediátrico/a",
//!   obstetric for "Mujer" / "Materno". This over-states some sites (a medium-complexity
//!   children's clinic gets obstetric care) and under-states others; replace it with REPS
//!   service flags when a pack carries them. No ED of the real file names mental health.

use std::collections::{BTreeSet, HashMap};

use dispatch_core::facility::{Capability, Complexity, FacilityRegistration};
use dispatch_core::fleet::Ownership;
use dispatch_core::ids::FacilityId;
use geo::Contains;
use maps::{BoundingBox, GeoError, GeoPoint};
use serde::Serialize;

use super::geography::Localidad;
use super::text::{RowReader, Table, name_key};
use super::{RegionError, RegionWarning, Subred};

/// One emergency department: its registration for the core plus what consoles show.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EmergencyDepartment {
    /// What the dispatch core needs.
    pub registration: FacilityRegistration,
    /// Street address as written (`direccion`).
    pub address: String,
    /// Localidad as written (`Localidad`).
    pub localidad: String,
    /// The `Subred` column: the public network whose territory the site is in.
    pub territorial_subred: Subred,
    /// Public institutional phone (`telefono`, REPS contact data).
    pub phone: String,
    /// Line of the row in the file.
    pub line: u64,
}

/// The capabilities assumed for a site (see the module docs: a proxy from complexity and
/// name, not REPS service flags).
pub fn capabilities_for(complexity: Complexity, name: &str) -> BTreeSet<Capability> {
    let mut caps: BTreeSet<Capability> = match complexity {
        Complexity::High => [
            Capability::Stroke,
            Capability::Coronary,
            Capability::Trauma,
            Capability::Obstetric,
            Capability::Paediatric,
            Capability::Toxicology,
            Capability::ViolenceCare,
        ]
        .into(),
        Complexity::Medium => [
            Capability::Obstetric,
            Capability::Paediatric,
            Capability::Trauma,
        ]
        .into(),
        Complexity::Low => BTreeSet::new(),
    };
    let key = name_key(name);
    let has = |words: &[&str]| words.iter().any(|w| key.contains(w));
    if has(&["SALUD MENTAL", "PSIQUIATRIC"]) {
        caps.insert(Capability::MentalHealth);
    }
    if has(&["INFANTIL", "PEDIATRIC"]) {
        caps.insert(Capability::Paediatric);
    }
    if has(&["MUJER", "MATERN"]) {
        caps.insert(Capability::Obstetric);
    }
    caps
}

/// Reads the REPS complexity (`BAJA`, `MEDIANA`, `ALTA`, any case or accents).
pub fn parse_complexity(text: &str) -> Option<Complexity> {
    match name_key(text).as_str() {
        "BAJA" => Some(Complexity::Low),
        "MEDIANA" | "MEDIA" => Some(Complexity::Medium),
        "ALTA" => Some(Complexity::High),
        _ => None,
    }
}

/// Reads `Naturaleza jurídica` (`Privada`, `Pública`).
pub fn parse_ownership(text: &str) -> Option<Ownership> {
    match name_key(text).as_str() {
        "PRIVADA" => Some(Ownership::Private),
        "PUBLICA" => Some(Ownership::Public),
        _ => None,
    }
}

/// The columns of the ED file.
struct Columns {
    name: usize,
    address: usize,
    lon: usize,
    lat: usize,
    localidad: usize,
    subred: usize,
    phone: usize,
    email: usize,
    ownership: usize,
    complexity: usize,
}

const NAME: &str = "sede_nombre";
const LON: &str = "Longitud";
const LAT: &str = "Latitud";
const LOCALIDAD: &str = "Localidad";
const SUBRED: &str = "Subred";
const OWNERSHIP: &str = "Naturaleza jurídica";
const COMPLEXITY: &str = "Complejidad";

impl Columns {
    fn find(table: &Table) -> Result<Self, RegionError> {
        Ok(Self {
            name: table.column(NAME)?,
            address: table.column("direccion")?,
            lon: table.column(LON)?,
            lat: table.column(LAT)?,
            localidad: table.column(LOCALIDAD)?,
            subred: table.column(SUBRED)?,
            phone: table.column("telefono")?,
            email: table.column("email")?,
            ownership: table.column(OWNERSHIP)?,
            complexity: table.column(COMPLEXITY)?,
        })
    }
}

/// Parses the ED file's text (`file` names it in errors and warnings).
pub fn parse_facilities(
    file: &str,
    text: &str,
) -> Result<(Vec<EmergencyDepartment>, Vec<RegionWarning>), RegionError> {
    let table = Table::parse(file, text)?;
    let columns = Columns::find(&table)?;
    let mut warnings = Vec::new();
    let mut facilities = Vec::new();
    let mut seen: HashMap<Vec<&str>, u64> = HashMap::new();
    for (number, row) in (1u32..).zip(table.records()) {
        if let Some(&first_line) = seen.get(&row.row.key()) {
            warnings.push(RegionWarning::DuplicateRow {
                file: file.to_owned(),
                line: row.line(),
                first_line,
            });
            continue;
        }
        seen.insert(row.row.key(), row.line());
        facilities.push(parse_row(row, &columns, number, &mut warnings)?);
    }
    if facilities.is_empty() {
        return Err(RegionError::Inconsistent {
            file: file.to_owned(),
            message: "no emergency department rows".to_owned(),
        });
    }
    Ok((facilities, warnings))
}

fn parse_row(
    row: RowReader<'_>,
    c: &Columns,
    number: u32,
    warnings: &mut Vec<RegionWarning>,
) -> Result<EmergencyDepartment, RegionError> {
    let name = row.required(c.name, NAME)?.to_owned();
    let location = locate(row, &name, c, warnings)?;
    let complexity_text = row.required(c.complexity, COMPLEXITY)?;
    let complexity = parse_complexity(complexity_text)
        .ok_or_else(|| row.unknown(COMPLEXITY, complexity_text, "BAJA, MEDIANA or ALTA"))?;
    let ownership_text = row.required(c.ownership, OWNERSHIP)?;
    let ownership = parse_ownership(ownership_text)
        .ok_or_else(|| row.unknown(OWNERSHIP, ownership_text, "Privada or Pública"))?;
    let subred_text = row.required(c.subred, SUBRED)?;
    let subred = Subred::parse(subred_text).ok_or_else(|| {
        row.unknown(
            SUBRED,
            subred_text,
            "Norte, Centro Oriente, Sur or Sur Occidente",
        )
    })?;
    let operated_by_subred = ownership == Ownership::Public
        && (row.optional(c.email).to_lowercase().contains("subred")
            || name_key(&name).starts_with("UNIDAD DE SERVICIOS DE SALUD"));
    let id = FacilityId::new(format!("ED-{number:03}")).map_err(|e| RegionError::Inconsistent {
        file: row.file.to_owned(),
        message: format!("line {}: {e}", row.line()),
    })?;
    Ok(EmergencyDepartment {
        registration: FacilityRegistration {
            id,
            capabilities: capabilities_for(complexity, &name),
            name,
            location,
            complexity,
            ownership,
            subred: operated_by_subred.then(|| subred.name().to_owned()),
        },
        address: row.optional(c.address).to_owned(),
        localidad: row.required(c.localidad, LOCALIDAD)?.to_owned(),
        territorial_subred: subred,
        phone: row.optional(c.phone).to_owned(),
        line: row.line(),
    })
}

/// The row's point in Bogotá; swapped longitude/latitude are fixed with a warning.
fn locate(
    row: RowReader<'_>,
    name: &str,
    c: &Columns,
    warnings: &mut Vec<RegionWarning>,
) -> Result<GeoPoint, RegionError> {
    let lon = row.decimal(c.lon, LON)?;
    let lat = row.decimal(c.lat, LAT)?;
    let bad = |source| RegionError::BadLocation {
        file: row.file.to_owned(),
        line: row.line(),
        name: name.to_owned(),
        source,
    };
    match GeoPoint::new_in(lon, lat, &BoundingBox::BOGOTA) {
        Ok(p) => Ok(p),
        Err(GeoError::SwappedLonLat { .. }) => {
            let fixed = GeoPoint::new_in(lat, lon, &BoundingBox::BOGOTA).map_err(bad)?;
            warnings.push(RegionWarning::SwappedCoordinates {
                file: row.file.to_owned(),
                line: row.line(),
                name: name.to_owned(),
                longitude_as_given: lon,
                latitude_as_given: lat,
            });
            Ok(fixed)
        }
        Err(source) => Err(bad(source)),
    }
}

/// Cross-checks each ED against the localidad polygons: its point should lie inside the
/// localidad its row names, and its subred should be the one serving that localidad.
pub fn check_against_localidades(
    facilities: &[EmergencyDepartment],
    localidades: &[Localidad],
) -> Vec<RegionWarning> {
    let mut warnings = Vec::new();
    for ed in facilities {
        let id = ed.registration.id.clone();
        let key = name_key(&ed.localidad);
        let Some(localidad) = localidades.iter().find(|l| name_key(&l.name) == key) else {
            warnings.push(RegionWarning::FacilityLocalidadUnknown {
                facility: id,
                localidad: ed.localidad.clone(),
            });
            continue;
        };
        let point = ed.registration.location.to_geo();
        if !localidad.area.as_geo().contains(&point) {
            let found_in = localidades
                .iter()
                .find(|l| l.area.as_geo().contains(&point))
                .map(|l| l.name.clone());
            warnings.push(RegionWarning::FacilityOutsideItsLocalidad {
                facility: id.clone(),
                name: ed.registration.name.clone(),
                localidad: ed.localidad.clone(),
                found_in,
            });
        }
        let in_file = ed.territorial_subred;
        if in_file != localidad.subred {
            warnings.push(RegionWarning::SubredDisagrees {
                facility: id,
                localidad: localidad.name.clone(),
                in_file: in_file.name().to_owned(),
                expected: localidad.subred.name().to_owned(),
            });
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "sede_nombre;direccion;Longitud;Latitud;Localidad;Subred;telefono;email;Naturaleza jurídica;Complejidad\n";

    fn parse(rows: &str) -> Result<(Vec<EmergencyDepartment>, Vec<RegionWarning>), RegionError> {
        parse_facilities("eds.csv", &format!("{HEADER}{rows}"))
    }

    #[test]
    fn rows_become_registrations_with_row_numbered_ids() {
        let (eds, warnings) = parse(
            "Clínica La Inmaculada;KR 7 68 70;-74,05710014;4,651620869;Chapinero;Norte;5870366;x@y.org;Privada;BAJA\n\
             Hospital de Bosa;CL 65 Sur;-74,1904;4,6089;Bosa;Sur Occidente;123;contactenos@subredsuroccidente.gov.co;Pública;ALTA\n\
             Hospital Militar Central;TV 3 49 00;-74,0626;4,6346;Chapinero;Norte;3486868;ayudantia@homil.gov.co;Pública;ALTA\n",
        )
        .unwrap();
        assert!(warnings.is_empty());
        assert_eq!(eds.len(), 3);
        let first = &eds[0].registration;
        assert_eq!(first.id.as_str(), "ED-001");
        assert_eq!(first.name, "Clínica La Inmaculada");
        assert_eq!(
            first.location,
            GeoPoint::new(-74.057_100_14, 4.651_620_869).unwrap()
        );
        assert_eq!(first.complexity, Complexity::Low);
        assert_eq!(first.ownership, Ownership::Private);
        assert_eq!(first.subred, None, "private EDs belong to no subred");
        assert_eq!(eds[0].territorial_subred, Subred::Norte);
        assert!(first.capabilities.is_empty());
        assert_eq!(eds[0].line, 2);
        let bosa = &eds[1].registration;
        assert_eq!(bosa.id.as_str(), "ED-002");
        assert_eq!(bosa.ownership, Ownership::Public);
        assert!(bosa.capabilities.contains(&Capability::Stroke));
        assert_eq!(bosa.subred.as_deref(), Some("Sur Occidente"));
        let militar = &eds[2].registration;
        assert_eq!(militar.ownership, Ownership::Public);
        assert_eq!(
            militar.subred, None,
            "a national hospital is not in a subred"
        );
        assert_eq!(eds[2].territorial_subred, Subred::Norte);
    }

    #[test]
    fn swapped_coordinates_are_fixed_and_reported() {
        let (eds, warnings) = parse(
            "Hospital de Usme;Cl. 137 Sur 3a 44;4,489229593;-74,10977084;Usme;Sur;7300000;s@s.gov.co;Pública;BAJA\n",
        )
        .unwrap();
        assert_eq!(
            eds[0].registration.location,
            GeoPoint::new(-74.109_770_84, 4.489_229_593).unwrap()
        );
        assert_eq!(
            warnings,
            vec![RegionWarning::SwappedCoordinates {
                file: "eds.csv".into(),
                line: 2,
                name: "Hospital de Usme".into(),
                longitude_as_given: 4.489_229_593,
                latitude_as_given: -74.109_770_84,
            }]
        );
        assert!(
            warnings[0].to_string().contains("swapped"),
            "{}",
            warnings[0]
        );
    }

    #[test]
    fn a_non_numeric_coordinate_names_the_file_line_and_field() {
        let err = parse(
            "Clínica A;KR 1;-74,05;4,65;Chapinero;Norte;1;a@b;Privada;BAJA\n\
             Clínica B;KR 2;-74,05;cuatro;Chapinero;Norte;1;a@b;Privada;BAJA\n",
        )
        .unwrap_err();
        assert!(
            matches!(&err, RegionError::NotANumber { line: 3, field, value, .. } if field == "Latitud" && value == "cuatro"),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "eds.csv: line 3, field `Latitud`: \"cuatro\" is not a number"
        );
    }

    #[test]
    fn a_point_outside_bogota_is_refused_even_when_swapped() {
        let err = parse("Clínica Medellín;KR 1;-75,57;6,24;Chapinero;Norte;1;a@b;Privada;BAJA\n")
            .unwrap_err();
        assert!(
            matches!(
                &err,
                RegionError::BadLocation {
                    line: 2,
                    source: GeoError::OutsideRegion { .. },
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("Clínica Medellín"), "{err}");
    }

    #[test]
    fn an_unknown_complexity_is_refused_with_the_accepted_values() {
        let err = parse("Clínica A;KR 1;-74,05;4,65;Chapinero;Norte;1;a@b;Privada;MUY ALTA\n")
            .unwrap_err();
        assert!(
            matches!(
                &err,
                RegionError::UnknownValue {
                    line: 2,
                    field: "Complejidad",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("BAJA, MEDIANA or ALTA"), "{err}");
    }

    #[test]
    fn unknown_ownership_or_subred_and_empty_names_are_refused() {
        let err =
            parse("Clínica A;KR 1;-74,05;4,65;Chapinero;Norte;1;a@b;Mixta;BAJA\n").unwrap_err();
        assert!(
            matches!(
                &err,
                RegionError::UnknownValue {
                    field: "Naturaleza jurídica",
                    ..
                }
            ),
            "{err:?}"
        );
        let err =
            parse("Clínica A;KR 1;-74,05;4,65;Chapinero;Oriente;1;a@b;Privada;BAJA\n").unwrap_err();
        assert!(
            matches!(
                &err,
                RegionError::UnknownValue {
                    field: "Subred",
                    ..
                }
            ),
            "{err:?}"
        );
        let err = parse(" ;KR 1;-74,05;4,65;Chapinero;Norte;1;a@b;Privada;BAJA\n").unwrap_err();
        assert!(
            matches!(
                &err,
                RegionError::EmptyField { line: 2, field, .. } if field == "sede_nombre"
            ),
            "{err:?}"
        );
    }

    #[test]
    fn a_missing_column_is_named() {
        let err = parse_facilities("eds.csv", "sede_nombre;Longitud\nA;-74\n").unwrap_err();
        assert!(
            matches!(
                &err,
                RegionError::MissingColumn {
                    column: "direccion",
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn duplicate_rows_are_skipped_with_a_warning_and_leave_a_gap_in_the_ids() {
        let row = "Clínica A;KR 1;-74,05;4,65;Chapinero;Norte;1;a@b;Privada;BAJA\n";
        let (eds, warnings) = parse(&format!(
            "{row}{row}Clínica B;KR 2;-74,06;4,66;Chapinero;Norte;1;a@b;Privada;MEDIANA\n"
        ))
        .unwrap();
        assert_eq!(eds.len(), 2);
        assert_eq!(eds[1].registration.id.as_str(), "ED-003");
        assert_eq!(
            warnings,
            vec![RegionWarning::DuplicateRow {
                file: "eds.csv".into(),
                line: 3,
                first_line: 2
            }]
        );
    }

    #[test]
    fn a_file_with_only_a_header_is_refused() {
        let err = parse("").unwrap_err();
        assert!(matches!(err, RegionError::Inconsistent { .. }), "{err:?}");
    }

    #[test]
    fn capabilities_follow_the_documented_proxy() {
        let high = capabilities_for(Complexity::High, "Hospital X");
        assert_eq!(high.len(), 7);
        assert!(!high.contains(&Capability::MentalHealth));
        assert_eq!(
            capabilities_for(Complexity::Medium, "Clínica Y"),
            [
                Capability::Trauma,
                Capability::Obstetric,
                Capability::Paediatric
            ]
            .into()
        );
        assert!(capabilities_for(Complexity::Low, "Centro Z").is_empty());
        assert_eq!(
            capabilities_for(Complexity::Low, "Clínica de Salud Mental La Paz"),
            [Capability::MentalHealth].into()
        );
        assert!(
            capabilities_for(Complexity::Low, "Hospital Psiquiátrico")
                .contains(&Capability::MentalHealth)
        );
        assert_eq!(
            capabilities_for(Complexity::Low, "Hospital Pediátrico Tintal"),
            [Capability::Paediatric].into()
        );
    }
}
