//! ED occupancy baseline from `health/bogota_ocupacion_urgencias_subred.csv` (SaluData):
//! monthly occupancy (%) of the observation area of the public network's EDs, January 2021 to
//! September 2025, for `Total RISS`, the four subredes and six `Sede priorizada` hospitals.
//!
//! For every column the **latest month with a value** is kept. The engine uses it as the
//! initial occupancy of each ED **operated by a subred** ([`OccupancyBaseline::assign`]):
//! the hospital's own column when it is one of the six priority sites, otherwise its
//! subred's. **Private EDs have no public occupancy data** and get none, nor do the public
//! EDs outside the district network (national or departmental hospitals); the dispatch core
//! then assumes its documented default. The values are monthly means; daily peaks are
//! higher.

use std::collections::BTreeMap;
use std::fmt;

use dispatch_core::facility::Occupancy;
use dispatch_core::fleet::Ownership;
use dispatch_core::ids::FacilityId;
use maps::Timestamp;
use serde::Serialize;

use super::facilities::EmergencyDepartment;
use super::text::{Table, name_key, parse_decimal};
use super::{RegionError, RegionWarning, Subred};

/// Spanish month names, January first.
const MONTHS: [&str; 12] = [
    "enero",
    "febrero",
    "marzo",
    "abril",
    "mayo",
    "junio",
    "julio",
    "agosto",
    "septiembre",
    "octubre",
    "noviembre",
    "diciembre",
];

/// Prefix of the columns of single hospitals.
const SITE_PREFIX: &str = "Sede priorizada";

/// A calendar month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct YearMonth {
    /// Year.
    pub year: i32,
    /// Month, 1–12.
    pub month: u8,
}

impl YearMonth {
    /// Spanish label, `septiembre de 2025`.
    pub fn label_es(self) -> String {
        let name = MONTHS
            .get(usize::from(self.month.saturating_sub(1)))
            .copied()
            .unwrap_or("?");
        format!("{name} de {}", self.year)
    }

    /// Reads a Spanish month name (`Septiembre`, `setiembre`, any case or accents).
    pub fn parse_month(text: &str) -> Option<u8> {
        let key = name_key(text).to_lowercase();
        let key = if key == "setiembre" {
            "septiembre"
        } else {
            key.as_str()
        };
        MONTHS
            .iter()
            .position(|m| *m == key)
            .and_then(|i| u8::try_from(i + 1).ok())
    }
}

impl fmt::Display for YearMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{:02}", self.year, self.month)
    }
}

/// One occupancy value with its month.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct OccupancyValue {
    /// Patients in the observation area per lying place × 100 (above 100 = overcrowded).
    pub percent: f64,
    /// The month it describes.
    pub month: YearMonth,
}

/// The latest occupancy of one priority hospital (`Sede priorizada …` column).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SiteOccupancy {
    /// The column header.
    pub column: String,
    /// The site's name (the header without `Sede priorizada`), e.g. `El Tunal`.
    pub site: String,
    /// Its latest value.
    pub value: OccupancyValue,
}

/// Where an ED's initial occupancy comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum OccupancySource {
    /// The hospital's own `Sede priorizada` column.
    Site(String),
    /// Its subred's column.
    Subred(Subred),
}

/// The initial occupancy of one public ED.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InitialOccupancy {
    /// The value and its month.
    pub value: OccupancyValue,
    /// Which column it comes from.
    pub source: OccupancySource,
}

impl InitialOccupancy {
    /// As an occupancy report dated `reported_at` (the engine chooses the date: the data is
    /// a monthly mean, not a live report).
    pub fn report(&self, reported_at: Timestamp) -> Occupancy {
        Occupancy {
            percent: self.value.percent,
            reported_at,
        }
    }
}

/// The latest public-network occupancy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OccupancyBaseline {
    /// The latest month in the file.
    pub latest_month: YearMonth,
    /// `Total RISS` (pooled over the public network).
    pub total_riss: OccupancyValue,
    /// Per subred.
    pub subredes: BTreeMap<Subred, OccupancyValue>,
    /// Per priority hospital.
    pub sites: Vec<SiteOccupancy>,
}

impl OccupancyBaseline {
    /// The initial occupancy of every ED operated by a subred (its registration's `subred`
    /// is set): its own priority-site column when exactly one such ED's name contains the
    /// site's name, else its subred's. Other EDs are left out. Site columns matching no ED or
    /// several are reported.
    pub fn assign(
        &self,
        facilities: &[EmergencyDepartment],
    ) -> (BTreeMap<FacilityId, InitialOccupancy>, Vec<RegionWarning>) {
        let public: Vec<&EmergencyDepartment> = facilities
            .iter()
            .filter(|f| {
                f.registration.ownership == Ownership::Public && f.registration.subred.is_some()
            })
            .collect();
        let mut warnings = Vec::new();
        let mut by_site: BTreeMap<FacilityId, &SiteOccupancy> = BTreeMap::new();
        for site in &self.sites {
            let key = name_key(&site.site);
            let matches: Vec<&&EmergencyDepartment> = public
                .iter()
                .filter(|f| !key.is_empty() && name_key(&f.registration.name).contains(&key))
                .collect();
            if let [only] = matches[..] {
                by_site.insert(only.registration.id.clone(), site);
            } else {
                warnings.push(RegionWarning::OccupancySiteUnmatched {
                    column: site.column.clone(),
                    matches: matches.len(),
                });
            }
        }
        let mut out = BTreeMap::new();
        for ed in public {
            let id = ed.registration.id.clone();
            let initial = if let Some(site) = by_site.get(&id) {
                InitialOccupancy {
                    value: site.value,
                    source: OccupancySource::Site(site.site.clone()),
                }
            } else {
                let Some(subred) = ed.registration.subred.as_deref().and_then(Subred::parse) else {
                    continue;
                };
                let Some(value) = self.subredes.get(&subred) else {
                    continue;
                };
                InitialOccupancy {
                    value: *value,
                    source: OccupancySource::Subred(subred),
                }
            };
            out.insert(id, initial);
        }
        (out, warnings)
    }
}

const YEAR: &str = "Año";
const MONTH: &str = "Mes";
const TOTAL: &str = "Total RISS";

/// The columns of the occupancy file.
struct Columns {
    year: usize,
    month: usize,
    total: usize,
    subredes: Vec<(Subred, usize)>,
    /// Column and site name (the header without `Sede priorizada`).
    sites: Vec<(usize, String)>,
}

impl Columns {
    fn find(file: &str, table: &Table) -> Result<Self, RegionError> {
        let subredes = Subred::ALL
            .iter()
            .map(|&s| {
                let index = table
                    .headers()
                    .iter()
                    .position(|h| Subred::parse(h) == Some(s))
                    .ok_or_else(|| RegionError::MissingColumn {
                        file: file.to_owned(),
                        column: s.name(),
                        found: table.headers().join(", "),
                    })?;
                Ok((s, index))
            })
            .collect::<Result<_, RegionError>>()?;
        let site_key = name_key(SITE_PREFIX);
        let sites = table
            .headers()
            .iter()
            .enumerate()
            .filter(|(_, h)| name_key(h).starts_with(&site_key))
            .map(|(i, h)| {
                (
                    i,
                    h.split_whitespace().skip(2).collect::<Vec<_>>().join(" "),
                )
            })
            .collect();
        Ok(Self {
            year: table.column(YEAR)?,
            month: table.column(MONTH)?,
            total: table.column(TOTAL)?,
            subredes,
            sites,
        })
    }

    /// Every column holding percentages.
    fn values(&self) -> impl Iterator<Item = usize> + '_ {
        std::iter::once(self.total)
            .chain(self.subredes.iter().map(|(_, i)| *i))
            .chain(self.sites.iter().map(|(i, _)| *i))
    }
}

/// The latest value of every percentage column, and the latest month of the file.
fn latest_values(
    file: &str,
    table: &Table,
    c: &Columns,
) -> Result<(BTreeMap<usize, OccupancyValue>, YearMonth), RegionError> {
    let mut latest: BTreeMap<usize, OccupancyValue> = BTreeMap::new();
    let mut months: BTreeMap<YearMonth, u64> = BTreeMap::new();
    for row in table.records() {
        let line = row.line();
        let year_text = row.optional(c.year);
        let year: i32 = year_text
            .parse()
            .ok()
            .filter(|y| (1900..=2200).contains(y))
            .ok_or_else(|| row.not_a_number(YEAR, year_text))?;
        let month_text = row.optional(c.month);
        let month = YearMonth::parse_month(month_text).ok_or_else(|| {
            row.unknown(MONTH, month_text, "a Spanish month name, Enero … Diciembre")
        })?;
        let month = YearMonth { year, month };
        if let Some(first) = months.insert(month, line) {
            return Err(RegionError::Inconsistent {
                file: file.to_owned(),
                message: format!("line {line} repeats {month} (first on line {first})"),
            });
        }
        for column in c.values() {
            let text = row.optional(column);
            if text.is_empty() {
                continue;
            }
            let percent = parse_decimal(text)
                .filter(|p| *p >= 0.0)
                .ok_or_else(|| row.not_a_number(&table.headers()[column], text))?;
            if latest.get(&column).is_none_or(|v| v.month < month) {
                latest.insert(column, OccupancyValue { percent, month });
            }
        }
    }
    let Some((&latest_month, _)) = months.last_key_value() else {
        return Err(RegionError::Inconsistent {
            file: file.to_owned(),
            message: "no monthly rows".to_owned(),
        });
    };
    Ok((latest, latest_month))
}

/// Parses the occupancy file's text (`file` names it in errors and warnings).
pub fn parse_occupancy(
    file: &str,
    text: &str,
) -> Result<(OccupancyBaseline, Vec<RegionWarning>), RegionError> {
    let table = Table::parse(file, text)?;
    let c = Columns::find(file, &table)?;
    let (latest, latest_month) = latest_values(file, &table, &c)?;
    let mut warnings = Vec::new();
    let mut take = |column: usize| -> Option<OccupancyValue> {
        let value = latest.get(&column).copied()?;
        if value.month < latest_month {
            warnings.push(RegionWarning::OccupancyOlderThanLatest {
                column: table.headers()[column].clone(),
                month: value.month,
                latest: latest_month,
            });
        }
        Some(value)
    };
    let total_riss = take(c.total).ok_or_else(|| RegionError::Inconsistent {
        file: file.to_owned(),
        message: format!("`{TOTAL}` has no value in any month"),
    })?;
    let mut subredes = BTreeMap::new();
    for &(subred, column) in &c.subredes {
        if let Some(v) = take(column) {
            subredes.insert(subred, v);
        }
    }
    let mut sites = Vec::new();
    for (column, site) in &c.sites {
        if let Some(value) = take(*column) {
            sites.push(SiteOccupancy {
                column: table.headers()[*column].clone(),
                site: site.clone(),
                value,
            });
        }
    }
    Ok((
        OccupancyBaseline {
            latest_month,
            total_riss,
            subredes,
            sites,
        },
        warnings,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::facilities::parse_facilities;

    const HEADER: &str = "Año;Mes;Total RISS;Centro Oriente;Norte;Sur;Sur Occidente;Sede priorizada El Tunal;Sede priorizada Hospital de Bosa\n";

    fn parse(rows: &str) -> Result<(OccupancyBaseline, Vec<RegionWarning>), RegionError> {
        parse_occupancy("o.csv", &format!("{HEADER}{rows}"))
    }

    #[test]
    fn the_latest_month_of_each_column_is_kept() {
        let (b, warnings) = parse(
            "2025;Agosto;126,13%;75,82%;111,13%;152,40%;192,10%;278,58%;179,98%\n\
             2025;Septiembre;132,52%;78,91%;110,55%;159,42%;197,42%;281,30%;137,83%\n\
             ;;;;;;;;\n;;;;;;;;\n",
        )
        .unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        let sept = YearMonth {
            year: 2025,
            month: 9,
        };
        assert_eq!(b.latest_month, sept);
        assert_eq!(
            b.total_riss,
            OccupancyValue {
                percent: 132.52,
                month: sept
            }
        );
        assert!((b.subredes[&Subred::SurOccidente].percent - 197.42).abs() < 1e-9);
        assert_eq!(b.sites.len(), 2);
        assert_eq!(b.sites[0].site, "El Tunal");
        assert_eq!(sept.label_es(), "septiembre de 2025");
    }

    #[test]
    fn a_column_without_a_latest_value_falls_back_with_a_warning() {
        let (b, warnings) = parse(
            "2025;Septiembre;132,52%;78,91%;;159,42%;197,42%;281,30%;137,83%\n\
             2025;Agosto;126,13%;75,82%;111,13%;152,40%;192,10%;278,58%;179,98%\n",
        )
        .unwrap();
        assert_eq!(
            b.subredes[&Subred::Norte].month,
            YearMonth {
                year: 2025,
                month: 8
            }
        );
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0]
                .to_string()
                .contains("`Norte` has no value for 2025-09"),
            "{}",
            warnings[0]
        );
    }

    #[test]
    fn bad_values_months_years_and_repeats_are_refused() {
        let err = parse("2025;Agosto;mucho;75,82%;111,13%;152,40%;192,10%;278,58%;179,98%\n")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "o.csv: line 2, field `Total RISS`: \"mucho\" is not a number"
        );
        let err = parse("2025;Agost;1%;1%;1%;1%;1%;1%;1%\n").unwrap_err();
        assert!(
            matches!(err, RegionError::UnknownValue { field: "Mes", .. }),
            "{err:?}"
        );
        let err = parse("dos mil;Agosto;1%;1%;1%;1%;1%;1%;1%\n").unwrap_err();
        assert!(
            matches!(&err, RegionError::NotANumber { field, .. } if field == "Año"),
            "{err:?}"
        );
        let err = parse("2025;Agosto;1%;1%;1%;1%;1%;1%;1%\n2025;agosto;1%;1%;1%;1%;1%;1%;1%\n")
            .unwrap_err();
        assert!(err.to_string().contains("repeats 2025-08"), "{err}");
        let err = parse(";;;;;;;;\n").unwrap_err();
        assert!(err.to_string().contains("no monthly rows"), "{err}");
        let err =
            parse_occupancy("o.csv", "Año;Mes;Total RISS;Norte\n2025;Agosto;1%;1%\n").unwrap_err();
        assert!(
            matches!(
                err,
                RegionError::MissingColumn {
                    column: "Centro Oriente",
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn public_eds_get_their_site_or_subred_value_and_private_eds_none() {
        let (b, _) =
            parse("2025;Septiembre;132,52%;78,91%;110,55%;159,42%;197,42%;281,30%;137,83%\n")
                .unwrap();
        let (eds, _) = parse_facilities(
            "e.csv",
            "sede_nombre;direccion;Longitud;Latitud;Localidad;Subred;telefono;email;Naturaleza jurídica;Complejidad\n\
             Unidad de Servicios de Salud El Tunal;x;-74,13;4,57;Tunjuelito;Sur;1;a;Pública;ALTA\n\
             Unidad de Servicios de Salud Meissen;x;-74,14;4,56;Ciudad Bolívar;Sur;1;a;Pública;MEDIANA\n\
             Clínica Privada;x;-74,05;4,65;Chapinero;Norte;1;a;Privada;ALTA\n\
             Hospital Militar Central;x;-74,06;4,63;Chapinero;Norte;1;a@homil.gov.co;Pública;ALTA\n",
        )
        .unwrap();
        let (initial, warnings) = b.assign(&eds);
        assert_eq!(initial.len(), 2);
        let tunal = &initial[&eds[0].registration.id];
        assert_eq!(tunal.source, OccupancySource::Site("El Tunal".into()));
        assert!((tunal.value.percent - 281.30).abs() < 1e-9);
        let meissen = &initial[&eds[1].registration.id];
        assert_eq!(meissen.source, OccupancySource::Subred(Subred::Sur));
        assert!((meissen.report(Timestamp::UNIX_EPOCH).percent - 159.42).abs() < 1e-9);
        assert!(!initial.contains_key(&eds[2].registration.id));
        assert!(!initial.contains_key(&eds[3].registration.id));
        // "Hospital de Bosa" matches no ED here.
        assert_eq!(
            warnings,
            vec![RegionWarning::OccupancySiteUnmatched {
                column: "Sede priorizada Hospital de Bosa".into(),
                matches: 0
            }]
        );
    }
}
