//! The Bogotá **region pack**: real public data read from a directory (the layout of
//! `shared/data`, see its `README.md`) into the types the dispatch core and the consoles
//! use.
//!
//! | what | file (relative to the pack) | module |
//! |---|---|---|
//! | 84 emergency departments → [`FacilityRegistration`]s | `health/bogota_ips_urgencias.csv` | [`facilities`] |
//! | 20 localidades (polygons) and the urban footprint (114 UPZ) | `admin/bogota_localidades.geojson`, `admin/bogota_upz.geojson` | [`geography`] |
//! | Línea 123 demand (June 2026): by localidad, by hour, by priority | `emergency/bogota_linea123_demanda_jun2026_agregada.json` | [`demand`] |
//! | H3 resolution-8 [`DemandCell`]s weighted by that demand | (derived) | [`geography`] |
//! | the 952-ambulance fleet by kind and ownership, placed at **synthetic** bases | `emergency/bogota_ambulancias_por_tipo.csv` | [`fleet`] |
//! | public-network ED occupancy, latest month per subred | `health/bogota_ocupacion_urgencias_subred.csv` | [`occupancy`] |
//!
//! # Design
//! - **Files are read in one place** ([`PackSources::read`]); everything else is a pure
//!   function of text ([`RegionPack::from_sources`] and the `parse_*` functions), so every
//!   kind of bad input is tested with a few lines of text.
//! - **Every bad input is a typed [`RegionError`]** naming the file, the line (CSV) or JSON
//!   path, and the field. Nothing is half-loaded: a pack loads completely or not at all.
//! - **Repairs are warnings** ([`RegionWarning`]): the two EDs whose longitude and latitude
//!   are swapped in the source are fixed (detected with [`maps::GeoPoint::new_in`] and
//!   [`maps::BoundingBox::BOGOTA`]) and reported, as are Windows-1252 files, mojibake and
//!   totals that disagree.
//! - **Proxies and synthetic parts are named as such**: ED capabilities come from
//!   `Complejidad` (the file has no service flags), ambulance bases are drawn at random
//!   (there are no real base locations), see [`facilities`] and [`fleet`].
//! - Data is read where it is; nothing is copied into the repository.
//!
//! # Invariants of a loaded [`RegionPack`]
//! - Every facility location lies in [`maps::BoundingBox::BOGOTA`].
//! - Every urban localidad has demand and at least one demand cell; the demand cells' weights
//!   sum to the demand of the urban localidades (9,206 incidents in June 2026).
//! - Every unit's base lies inside its localidad's polygon and inside the urban footprint.
//! - The same files and seed give the same pack, bit for bit.

pub mod demand;
pub mod facilities;
pub mod fleet;
pub mod geography;
pub mod occupancy;
pub mod text;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use dispatch_core::facility::{Complexity, FacilityRegistration};
use dispatch_core::fleet::{Ownership, UnitKind, UnitRegistration};
use dispatch_core::ids::FacilityId;
use dispatch_core::recommend::DemandCell;
use serde::Serialize;

pub use self::demand::{DemandProfile, HourlyDemand, PriorityCounts};
pub use self::facilities::EmergencyDepartment;
pub use self::fleet::{FleetCounts, FleetPlan, PlannedUnit};
pub use self::geography::{Localidad, UrbanFootprint};
pub use self::occupancy::{InitialOccupancy, OccupancyBaseline, OccupancySource, YearMonth};
pub use self::text::name_key;

/// The default pack, relative to the repository root: `shared/data` next to the checkout.
pub const DEFAULT_PACK_DIR: &str = "../shared/data";
/// Emergency departments (REPS, SaluData).
pub const FACILITIES_FILE: &str = "health/bogota_ips_urgencias.csv";
/// Localidad polygons (IDECA).
pub const LOCALIDADES_FILE: &str = "admin/bogota_localidades.geojson";
/// Urban UPZ polygons (IDECA), whose union is the urban footprint.
pub const UPZ_FILE: &str = "admin/bogota_upz.geojson";
/// Línea 123 demand aggregates.
pub const DEMAND_FILE: &str = "emergency/bogota_linea123_demanda_jun2026_agregada.json";
/// Ambulances by kind and ownership (REPS, SaluData).
pub const FLEET_FILE: &str = "emergency/bogota_ambulancias_por_tipo.csv";
/// Monthly public-network ED occupancy (SaluData).
pub const OCCUPANCY_FILE: &str = "health/bogota_ocupacion_urgencias_subred.csv";
/// The seed of the synthetic fleet bases when none is given.
pub const DEFAULT_FLEET_SEED: u64 = 123;

/// Why a region pack could not be loaded. Every variant names the file (relative to the
/// pack) and, where there is one, the line and field.
#[derive(Debug, thiserror::Error)]
pub enum RegionError {
    /// The pack directory does not exist.
    #[error(
        "region pack {path} is not a directory (expected the layout of shared/data: health/, admin/, emergency/)"
    )]
    MissingPack {
        /// The directory given.
        path: PathBuf,
    },
    /// A file of the pack could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// Full path of the file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A CSV record that cannot be read (wrong number of fields, bad quoting).
    #[error("{file}: line {line}: {message}")]
    Csv {
        /// File.
        file: String,
        /// 1-based line (the header is line 1).
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// A required CSV column is missing.
    #[error("{file}: missing column `{column}` (columns found: {found})")]
    MissingColumn {
        /// File.
        file: String,
        /// The column expected.
        column: &'static str,
        /// The header as found.
        found: String,
    },
    /// A required field is empty.
    #[error("{file}: line {line}, field `{field}` is empty")]
    EmptyField {
        /// File.
        file: String,
        /// Line.
        line: u64,
        /// Column.
        field: String,
    },
    /// A field that should be a number is not.
    #[error("{file}: line {line}, field `{field}`: {value:?} is not a number")]
    NotANumber {
        /// File.
        file: String,
        /// Line.
        line: u64,
        /// Column.
        field: String,
        /// The text found.
        value: String,
    },
    /// A field with a closed set of values holds something else.
    #[error("{file}: line {line}, field `{field}`: unknown value {value:?} (expected {expected})")]
    UnknownValue {
        /// File.
        file: String,
        /// Line.
        line: u64,
        /// Column.
        field: &'static str,
        /// The text found.
        value: String,
        /// The accepted values.
        expected: &'static str,
    },
    /// Coordinates that are not a point in Bogotá (even after trying them swapped).
    #[error("{file}: line {line}, fields `Longitud`/`Latitud` of {name:?}: {source}")]
    BadLocation {
        /// File.
        file: String,
        /// Line.
        line: u64,
        /// The site's name.
        name: String,
        /// Why.
        #[source]
        source: maps::GeoError,
    },
    /// JSON (or GeoJSON) that does not have the expected shape.
    #[error("{file}: at `{path}`: {message}")]
    Json {
        /// File.
        file: String,
        /// Path of the offending value (`features[3].properties`, `conteoPorHora`).
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A GeoJSON feature whose geometry is not a valid area.
    #[error("{file}: feature {feature} ({name}): {message}")]
    Geometry {
        /// File.
        file: String,
        /// 0-based index in `features`.
        feature: usize,
        /// The feature's name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// A localidad name that matches none of the localidad polygons.
    #[error(
        "{file}: at `{field}`: localidad {name:?} matches no localidad of {LOCALIDADES_FILE}{}",
        did_you_mean(.suggestion.as_deref())
    )]
    UnknownLocalidad {
        /// File.
        file: String,
        /// Field or JSON key holding the name.
        field: String,
        /// The name found.
        name: String,
        /// The closest known name, if any is close.
        suggestion: Option<String>,
    },
    /// An urban localidad without demand in the Línea 123 file.
    #[error(
        "{file}: `porLocalidad` has no entry for the urban localidad {localidad:?} (code {code}); every urban localidad needs its demand"
    )]
    MissingDemand {
        /// File.
        file: String,
        /// The localidad's name as in the polygons.
        localidad: String,
        /// Its code.
        code: String,
    },
    /// Data that parses but contradicts itself (totals, duplicates, missing categories).
    #[error("{file}: {message}")]
    Inconsistent {
        /// File.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// No random point could be drawn inside a localidad's urban area.
    #[error(
        "localidad {localidad:?} has no urban area to place ambulance bases in (no point of it lies inside a UPZ of {UPZ_FILE})"
    )]
    NoUrbanArea {
        /// The localidad.
        localidad: String,
    },
}

fn did_you_mean(suggestion: Option<&str>) -> String {
    suggestion.map_or_else(String::new, |s| format!(" (did you mean {s:?}?)"))
}

/// Something the loader repaired or noticed without refusing the pack.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RegionWarning {
    /// The file was not UTF-8 and was decoded as Windows-1252.
    DecodedAsWindows1252 {
        /// File.
        file: String,
    },
    /// The file held UTF-8 text mis-decoded once ("Ã±" for "ñ"); it was repaired.
    MojibakeRepaired {
        /// File.
        file: String,
    },
    /// Longitude and latitude were swapped in the source; the point was fixed.
    SwappedCoordinates {
        /// File.
        file: String,
        /// Line.
        line: u64,
        /// The site.
        name: String,
        /// `Longitud` as written.
        longitude_as_given: f64,
        /// `Latitud` as written.
        latitude_as_given: f64,
    },
    /// A row identical to an earlier one was skipped.
    DuplicateRow {
        /// File.
        file: String,
        /// Line of the duplicate.
        line: u64,
        /// Line of the first occurrence.
        first_line: u64,
    },
    /// A facility's point is not inside the localidad its row names.
    FacilityOutsideItsLocalidad {
        /// The facility.
        facility: FacilityId,
        /// Its name.
        name: String,
        /// The localidad its row names.
        localidad: String,
        /// The localidad whose polygon holds the point, if any.
        found_in: Option<String>,
    },
    /// A facility's row names a localidad that matches no polygon.
    FacilityLocalidadUnknown {
        /// The facility.
        facility: FacilityId,
        /// The localidad as written.
        localidad: String,
    },
    /// A facility's subred differs from the subred that serves its localidad.
    SubredDisagrees {
        /// The facility.
        facility: FacilityId,
        /// Its localidad.
        localidad: String,
        /// The subred in the row.
        in_file: String,
        /// The subred serving that localidad (Acuerdo 641 de 2016).
        expected: String,
    },
    /// Two totals in one file disagree.
    TotalsDisagree {
        /// File.
        file: String,
        /// Which totals and how.
        message: String,
    },
    /// Demand recorded in a rural localidad, left out of the urban demand cells.
    RuralDemandLeftOut {
        /// The localidad.
        localidad: String,
        /// Incidents left out.
        incidents: u32,
    },
    /// No resolution-8 cell centre lies in the localidad's urban area; its demand was put
    /// on the cell of a point inside it.
    LocalidadWithoutCellCentre {
        /// The localidad.
        localidad: String,
    },
    /// A column's latest value is older than the file's latest month.
    OccupancyOlderThanLatest {
        /// Column.
        column: String,
        /// Month of its latest value.
        month: YearMonth,
        /// Latest month of the file.
        latest: YearMonth,
    },
    /// A `Sede priorizada` occupancy column matched no public ED, or more than one.
    OccupancySiteUnmatched {
        /// Column.
        column: String,
        /// How many public EDs matched.
        matches: usize,
    },
}

impl fmt::Display for RegionWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DecodedAsWindows1252 { file } => {
                write!(f, "{file}: not UTF-8; decoded as Windows-1252")
            }
            Self::MojibakeRepaired { file } => {
                write!(
                    f,
                    "{file}: UTF-8 text mis-decoded as Windows-1252 was repaired"
                )
            }
            Self::SwappedCoordinates {
                file,
                line,
                name,
                longitude_as_given,
                latitude_as_given,
            } => write!(
                f,
                "{file}: line {line}: {name:?} had Longitud {longitude_as_given} and Latitud {latitude_as_given} swapped; fixed"
            ),
            Self::DuplicateRow {
                file,
                line,
                first_line,
            } => write!(
                f,
                "{file}: line {line} repeats line {first_line}; the repeat was skipped"
            ),
            Self::FacilityOutsideItsLocalidad {
                facility,
                name,
                localidad,
                found_in,
            } => write!(
                f,
                "{facility} {name:?}: its point is not inside {localidad} (found in {})",
                found_in.as_deref().unwrap_or("no localidad")
            ),
            Self::FacilityLocalidadUnknown {
                facility,
                localidad,
            } => write!(
                f,
                "{facility}: localidad {localidad:?} matches no localidad polygon"
            ),
            Self::SubredDisagrees {
                facility,
                localidad,
                in_file,
                expected,
            } => write!(
                f,
                "{facility}: subred {in_file} in the file, but {localidad} is served by subred {expected}"
            ),
            Self::TotalsDisagree { file, message } => write!(f, "{file}: {message}"),
            Self::RuralDemandLeftOut {
                localidad,
                incidents,
            } => write!(
                f,
                "{incidents} incidents of the rural localidad {localidad} are not in the urban demand cells"
            ),
            Self::LocalidadWithoutCellCentre { localidad } => write!(
                f,
                "no H3 cell centre lies in the urban area of {localidad}; its demand sits on one cell"
            ),
            Self::OccupancyOlderThanLatest {
                column,
                month,
                latest,
            } => write!(
                f,
                "{OCCUPANCY_FILE}: `{column}` has no value for {latest}; using {month}"
            ),
            Self::OccupancySiteUnmatched { column, matches } => write!(
                f,
                "{OCCUPANCY_FILE}: `{column}` matches {matches} public EDs (expected 1); not used"
            ),
        }
    }
}

/// A public-network subred (Subred Integrada de Servicios de Salud E.S.E.), Acuerdo 641
/// de 2016.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Subred {
    /// Usaquén, Chapinero, Barrios Unidos, Teusaquillo, Engativá, Suba.
    Norte,
    /// Santa Fe, San Cristóbal, Los Mártires, Antonio Nariño, La Candelaria, Rafael Uribe Uribe.
    CentroOriente,
    /// Usme, Tunjuelito, Ciudad Bolívar, Sumapaz.
    Sur,
    /// Bosa, Kennedy, Fontibón, Puente Aranda.
    SurOccidente,
}

impl Subred {
    /// All four.
    pub const ALL: [Self; 4] = [
        Self::Norte,
        Self::CentroOriente,
        Self::Sur,
        Self::SurOccidente,
    ];

    /// The name as SaluData writes it (`Centro Oriente`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Norte => "Norte",
            Self::CentroOriente => "Centro Oriente",
            Self::Sur => "Sur",
            Self::SurOccidente => "Sur Occidente",
        }
    }

    /// The operator's full name, used as the provider of public ambulances.
    pub fn provider_name(self) -> String {
        format!(
            "Subred Integrada de Servicios de Salud {} E.S.E.",
            self.name()
        )
    }

    /// Reads a subred name (accents, case and spacing ignored: `Sur Occidente`,
    /// `SUROCCIDENTE`, `Suroccidente`).
    pub fn parse(text: &str) -> Option<Self> {
        match name_key(text).replace(' ', "").as_str() {
            "NORTE" => Some(Self::Norte),
            "CENTROORIENTE" => Some(Self::CentroOriente),
            "SUR" => Some(Self::Sur),
            "SUROCCIDENTE" => Some(Self::SurOccidente),
            _ => None,
        }
    }

    /// The subred serving a localidad, by its official code (`01` Usaquén … `20` Sumapaz),
    /// per Acuerdo 641 de 2016.
    pub fn serving_localidad(code: u8) -> Option<Self> {
        Some(match code {
            1 | 2 | 10 | 11 | 12 | 13 => Self::Norte,
            3 | 4 | 14 | 15 | 17 | 18 => Self::CentroOriente,
            5 | 6 | 19 | 20 => Self::Sur,
            7 | 8 | 9 | 16 => Self::SurOccidente,
            _ => return None,
        })
    }
}

impl fmt::Display for Subred {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The text of every file of a pack, decoded, with the warnings decoding raised.
#[derive(Debug, Clone, Default)]
pub struct PackSources {
    /// [`FACILITIES_FILE`].
    pub facilities: String,
    /// [`LOCALIDADES_FILE`].
    pub localidades: String,
    /// [`UPZ_FILE`].
    pub upz: String,
    /// [`DEMAND_FILE`].
    pub demand: String,
    /// [`FLEET_FILE`].
    pub fleet: String,
    /// [`OCCUPANCY_FILE`].
    pub occupancy: String,
    /// Warnings from decoding (Windows-1252, mojibake).
    pub warnings: Vec<RegionWarning>,
}

impl PackSources {
    /// Reads every file of the pack in `dir`: the only file-system access of this module.
    pub fn read(dir: &Path) -> Result<Self, RegionError> {
        if !dir.is_dir() {
            return Err(RegionError::MissingPack {
                path: dir.to_path_buf(),
            });
        }
        let mut warnings = Vec::new();
        let mut read = |file: &str| -> Result<String, RegionError> {
            let path = dir.join(file);
            let bytes = std::fs::read(&path).map_err(|source| RegionError::Read {
                path: path.clone(),
                source,
            })?;
            let (text, w) = text::decode(file, &bytes);
            warnings.extend(w);
            Ok(text)
        };
        Ok(Self {
            facilities: read(FACILITIES_FILE)?,
            localidades: read(LOCALIDADES_FILE)?,
            upz: read(UPZ_FILE)?,
            demand: read(DEMAND_FILE)?,
            fleet: read(FLEET_FILE)?,
            occupancy: read(OCCUPANCY_FILE)?,
            warnings,
        })
    }
}

/// Everything Regula knows about Bogotá from the region pack.
#[derive(Debug, Clone)]
pub struct RegionPack {
    dir: Option<PathBuf>,
    facilities: Vec<EmergencyDepartment>,
    localidades: Vec<Localidad>,
    demand_cells: Vec<DemandCell>,
    demand: DemandProfile,
    fleet_counts: FleetCounts,
    fleet: FleetPlan,
    occupancy: OccupancyBaseline,
    initial_occupancy: BTreeMap<FacilityId, InitialOccupancy>,
    warnings: Vec<RegionWarning>,
}

impl RegionPack {
    /// Loads the pack in `dir` with the default fleet seed ([`DEFAULT_FLEET_SEED`]).
    pub fn load(dir: &Path) -> Result<Self, RegionError> {
        Self::load_with_seed(dir, DEFAULT_FLEET_SEED)
    }

    /// Loads the pack in `dir`; `seed` fixes the synthetic ambulance bases.
    pub fn load_with_seed(dir: &Path, seed: u64) -> Result<Self, RegionError> {
        let sources = PackSources::read(dir)?;
        let mut pack = Self::from_sources(&sources, seed)?;
        pack.dir = Some(dir.to_path_buf());
        Ok(pack)
    }

    /// Builds the pack from the files' text (pure: no file-system access).
    pub fn from_sources(sources: &PackSources, seed: u64) -> Result<Self, RegionError> {
        let mut warnings = sources.warnings.clone();

        let (facilities, w) = facilities::parse_facilities(FACILITIES_FILE, &sources.facilities)?;
        warnings.extend(w);

        let mut localidades = geography::parse_localidades(LOCALIDADES_FILE, &sources.localidades)?;
        let footprint = UrbanFootprint::parse(UPZ_FILE, &sources.upz)?;

        let (demand, w) = demand::parse_demand(DEMAND_FILE, &sources.demand)?;
        warnings.extend(w);
        warnings.extend(geography::attach_demand(
            DEMAND_FILE,
            &mut localidades,
            &demand.by_localidad,
        )?);
        warnings.extend(geography::tile_urban_cells(&mut localidades, &footprint)?);
        let demand_cells = geography::demand_cells(&localidades);

        warnings.extend(facilities::check_against_localidades(
            &facilities,
            &localidades,
        ));

        let fleet_counts = fleet::parse_fleet_counts(FLEET_FILE, &sources.fleet)?;
        let fleet = fleet::plan_fleet(&fleet_counts, &localidades, &footprint, seed)?;

        let (occupancy, w) = occupancy::parse_occupancy(OCCUPANCY_FILE, &sources.occupancy)?;
        warnings.extend(w);
        let (initial_occupancy, w) = occupancy.assign(&facilities);
        warnings.extend(w);

        Ok(Self {
            dir: None,
            facilities,
            localidades,
            demand_cells,
            demand,
            fleet_counts,
            fleet,
            occupancy,
            initial_occupancy,
            warnings,
        })
    }

    /// The directory the pack was read from (`None` when built from text).
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The emergency departments, in file order (`ED-001` first).
    pub fn facilities(&self) -> &[EmergencyDepartment] {
        &self.facilities
    }

    /// The registrations of the emergency departments, for `Command::RegisterFacility`.
    pub fn facility_registrations(&self) -> impl Iterator<Item = &FacilityRegistration> {
        self.facilities.iter().map(|f| &f.registration)
    }

    /// The 20 localidades (urban and rural) ordered by code, with polygons, demand and cells.
    pub fn localidades(&self) -> &[Localidad] {
        &self.localidades
    }

    /// H3 resolution-8 demand cells of the urban area, weighted by Línea 123 incidents.
    pub fn demand_cells(&self) -> &[DemandCell] {
        &self.demand_cells
    }

    /// The Línea 123 demand profile (hourly curve, priorities, by localidad).
    pub fn demand(&self) -> &DemandProfile {
        &self.demand
    }

    /// The fleet's composition as published.
    pub fn fleet_counts(&self) -> &FleetCounts {
        &self.fleet_counts
    }

    /// The fleet with its synthetic bases.
    pub fn fleet(&self) -> &FleetPlan {
        &self.fleet
    }

    /// The registrations of the units, for `Command::RegisterUnit`.
    pub fn unit_registrations(&self) -> impl Iterator<Item = &UnitRegistration> {
        self.fleet.units.iter().map(|u| &u.registration)
    }

    /// The latest public-network ED occupancy per subred and priority site.
    pub fn occupancy(&self) -> &OccupancyBaseline {
        &self.occupancy
    }

    /// The initial occupancy of each public ED (private EDs have no public occupancy data
    /// and are absent).
    pub fn initial_occupancy(&self) -> &BTreeMap<FacilityId, InitialOccupancy> {
        &self.initial_occupancy
    }

    /// Everything repaired or noticed while loading.
    pub fn warnings(&self) -> &[RegionWarning] {
        &self.warnings
    }

    /// Counts, for `regula` to print.
    pub fn summary(&self) -> RegionSummary {
        let count = |c: Complexity| {
            self.facilities
                .iter()
                .filter(|f| f.registration.complexity == c)
                .count()
        };
        let units = |kind: UnitKind, ownership: Ownership| {
            self.fleet
                .units
                .iter()
                .filter(|u| {
                    u.registration.kind == kind && u.registration.provider.ownership == ownership
                })
                .count()
        };
        let urban: Vec<&Localidad> = self.localidades.iter().filter(|l| l.urban).collect();
        RegionSummary {
            facilities: self.facilities.len(),
            facilities_high: count(Complexity::High),
            facilities_medium: count(Complexity::Medium),
            facilities_low: count(Complexity::Low),
            facilities_public: self
                .facilities
                .iter()
                .filter(|f| f.registration.ownership == Ownership::Public)
                .count(),
            localidades: self.localidades.len(),
            urban_localidades: urban.len(),
            demand_cells: self.demand_cells.len(),
            demand_incidents: urban.iter().map(|l| u64::from(l.demand_incidents)).sum(),
            units: self.fleet.units.len(),
            tab_private: units(UnitKind::Tab, Ownership::Private),
            tab_public: units(UnitKind::Tab, Ownership::Public),
            tam_private: units(UnitKind::Tam, Ownership::Private),
            tam_public: units(UnitKind::Tam, Ownership::Public),
            occupancy_month: self.occupancy.total_riss.month,
            total_riss_percent: self.occupancy.total_riss.percent,
            public_eds_with_occupancy: self.initial_occupancy.len(),
            warnings: self.warnings.len(),
        }
    }
}

/// Counts of a loaded pack.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegionSummary {
    /// Emergency departments.
    pub facilities: usize,
    /// Of which high complexity.
    pub facilities_high: usize,
    /// Medium complexity.
    pub facilities_medium: usize,
    /// Low complexity.
    pub facilities_low: usize,
    /// Public (subred or other public) EDs.
    pub facilities_public: usize,
    /// Localidades (urban and rural).
    pub localidades: usize,
    /// Urban localidades (with demand cells).
    pub urban_localidades: usize,
    /// H3 resolution-8 demand cells.
    pub demand_cells: usize,
    /// Línea 123 incidents in the urban localidades (the demand cells' total weight).
    pub demand_incidents: u64,
    /// Ambulances.
    pub units: usize,
    /// Private TAB.
    pub tab_private: usize,
    /// Public TAB.
    pub tab_public: usize,
    /// Private TAM.
    pub tam_private: usize,
    /// Public TAM.
    pub tam_public: usize,
    /// Month of the latest `Total RISS` occupancy.
    pub occupancy_month: YearMonth,
    /// That occupancy, percent.
    pub total_riss_percent: f64,
    /// Public EDs given an initial occupancy.
    pub public_eds_with_occupancy: usize,
    /// Warnings raised while loading.
    pub warnings: usize,
}

impl fmt::Display for RegionSummary {
    /// Spanish, for operators.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Urgencias: {} ({} alta, {} mediana, {} baja complejidad; {} públicas)",
            self.facilities,
            self.facilities_high,
            self.facilities_medium,
            self.facilities_low,
            self.facilities_public
        )?;
        writeln!(
            f,
            "Localidades: {} ({} urbanas), {} celdas H3 de demanda, {} incidentes Línea 123",
            self.localidades, self.urban_localidades, self.demand_cells, self.demand_incidents
        )?;
        writeln!(
            f,
            "Ambulancias: {} (TAB {} privadas + {} públicas, TAM {} privadas + {} públicas; bases sintéticas)",
            self.units, self.tab_private, self.tab_public, self.tam_private, self.tam_public
        )?;
        writeln!(
            f,
            "Ocupación urgencias red pública: {} % ({}), {} urgencias públicas con ocupación inicial",
            format!("{:.2}", self.total_riss_percent).replace('.', ","),
            self.occupancy_month.label_es(),
            self.public_eds_with_occupancy
        )?;
        write!(f, "Avisos de carga: {}", self.warnings)
    }
}

#[cfg(test)]
mod tests {
    use super::geography::tests::{collection, square_feature};
    use super::*;

    /// A tiny but complete pack: Usaquén and La Candelaria as squares (plus a rural
    /// Sumapaz), one UPZ covering both, three EDs, 100 incidents, 11 ambulances.
    fn tiny_sources() -> PackSources {
        let hours: Vec<String> = (0..24)
            .map(|h| format!("\"{h}\": {}", if h == 9 { 8 } else { 4 }))
            .collect();
        PackSources {
            facilities: "sede_nombre;direccion;Longitud;Latitud;Localidad;Subred;telefono;email;Naturaleza jurídica;Complejidad\n\
                Unidad de Servicios de Salud Usaquén;CL 1;-74,045;4,715;Usaquén;Norte;1;subrednorte@saludcapital.gov.co;Pública;ALTA\n\
                Clínica Candelaria;CL 2;4,60;-74,07;La Candelaria;Centro Oriente;2;c@c.co;Privada;BAJA\n\
                Clínica Mal Ubicada;CL 3;-74,065;4,595;Usaquén;Norte;3;m@m.co;Privada;MEDIANA\n"
                .to_owned(),
            localidades: collection(&[
                square_feature("USAQUEN", "01", -74.06, 4.70, 0.03),
                square_feature("CANDELARIA", "17", -74.08, 4.59, 0.02),
                square_feature("SUMAPAZ", "20", -74.20, 4.00, 0.10),
            ]),
            upz: r#"{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"UPlCodigo":"UPZ1"},"geometry":{"type":"Polygon","coordinates":[[[-74.1,4.58],[-74.0,4.58],[-74.0,4.74],[-74.1,4.74],[-74.1,4.58]]]}}]}"#
                .to_owned(),
            demand: format!(
                r#"{{"fuente":"prueba","periodo":{{"desde":"2026-06-01","hasta":"2026-06-11"}},"incidentes":100,
                "conteoPorHora":{{{}}},"porLocalidad":{{"USAQUÉN":60,"LA CANDELARIA":40}},
                "porPrioridad":{{"Critica":25,"Alta":50,"Media":15,"Baja":10}}}}"#,
                hours.join(",")
            ),
            fleet: "Tipo de ambulancia;Naturaleza;Cantidad;%;Tasa\n\
                Básica;Privada;6;;\nMedicalizada;Privada;2;;\nBásica;Pública;2;;\nMedicalizada;Pública;1;;\nTotal;Total;11;;\n"
                .to_owned(),
            occupancy: "Año;Mes;Total RISS;Centro Oriente;Norte;Sur;Sur Occidente\n\
                2025;Septiembre;132,52%;78,91%;110,55%;159,42%;197,42%\n"
                .to_owned(),
            warnings: Vec::new(),
        }
    }

    #[test]
    fn a_tiny_pack_builds_completely_from_text() {
        let pack = RegionPack::from_sources(&tiny_sources(), 9).unwrap();
        let s = pack.summary();
        assert_eq!(
            (
                s.facilities,
                s.facilities_high,
                s.facilities_medium,
                s.facilities_low
            ),
            (3, 1, 1, 1)
        );
        assert_eq!(
            (s.localidades, s.urban_localidades, s.demand_incidents),
            (3, 2, 100)
        );
        assert_eq!(
            (
                s.units,
                s.tab_private,
                s.tab_public,
                s.tam_private,
                s.tam_public
            ),
            (11, 6, 2, 2, 1)
        );
        assert_eq!(s.public_eds_with_occupancy, 1);
        assert_eq!(pack.demand().days, 10);
        let total: f64 = pack.demand_cells().iter().map(|c| c.weight).sum();
        assert!((total - 100.0).abs() < 1e-9, "{total}");
        let kinds: Vec<&str> = pack
            .warnings()
            .iter()
            .map(|w| match w {
                RegionWarning::SwappedCoordinates { .. } => "swapped",
                RegionWarning::FacilityOutsideItsLocalidad { .. } => "outside",
                _ => "other",
            })
            .collect();
        assert_eq!(kinds, ["swapped", "outside"], "{:#?}", pack.warnings());
        assert!(
            pack.warnings()[1]
                .to_string()
                .contains("found in CANDELARIA"),
            "{}",
            pack.warnings()[1]
        );
        assert!(s.to_string().contains("132,52 %"), "{s}");
        assert_eq!(pack.unit_registrations().count(), 11);
        assert_eq!(pack.facility_registrations().count(), 3);
    }

    #[test]
    fn an_error_in_any_file_names_that_file() {
        let mut sources = tiny_sources();
        sources.demand = sources.demand.replace("LA CANDELARIA", "CANDELARIA VIEJA");
        let err = RegionPack::from_sources(&sources, 9).unwrap_err();
        assert!(
            matches!(err, RegionError::UnknownLocalidad { .. }),
            "{err:?}"
        );
        assert!(err.to_string().starts_with(DEMAND_FILE), "{err}");

        let mut sources = tiny_sources();
        sources.fleet = sources.fleet.replace("Total;Total;11", "Total;Total;12");
        let err = RegionPack::from_sources(&sources, 9).unwrap_err();
        assert!(err.to_string().starts_with(FLEET_FILE), "{err}");

        let mut sources = tiny_sources();
        sources.upz = "[]".to_owned();
        let err = RegionPack::from_sources(&sources, 9).unwrap_err();
        assert!(err.to_string().starts_with(UPZ_FILE), "{err}");

        let mut sources = tiny_sources();
        sources.occupancy = sources.occupancy.replace("132,52%", "alto");
        let err = RegionPack::from_sources(&sources, 9).unwrap_err();
        assert!(err.to_string().starts_with(OCCUPANCY_FILE), "{err}");
    }

    #[test]
    fn subred_names_parse_loosely_and_cover_every_localidad_code() {
        assert_eq!(Subred::parse("Sur Occidente"), Some(Subred::SurOccidente));
        assert_eq!(Subred::parse("SUROCCIDENTE"), Some(Subred::SurOccidente));
        assert_eq!(Subred::parse("centro oriente"), Some(Subred::CentroOriente));
        assert_eq!(Subred::parse("Oriente"), None);
        for code in 1..=20 {
            assert!(Subred::serving_localidad(code).is_some(), "{code}");
        }
        assert_eq!(Subred::serving_localidad(17), Some(Subred::CentroOriente));
        assert_eq!(Subred::serving_localidad(21), None);
        assert_eq!(
            Subred::Sur.provider_name(),
            "Subred Integrada de Servicios de Salud Sur E.S.E."
        );
    }

    #[test]
    fn a_missing_pack_directory_is_named_in_the_error() {
        let err = RegionPack::load(Path::new("/nonexistent/region-pack")).unwrap_err();
        assert!(matches!(err, RegionError::MissingPack { .. }), "{err:?}");
        assert!(
            err.to_string().contains("/nonexistent/region-pack"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_file_is_named_with_its_full_path() {
        let dir = tempfile::tempdir().unwrap();
        let err = RegionPack::load(dir.path()).unwrap_err();
        let RegionError::Read { path, .. } = &err else {
            panic!("expected a read error, got {err:?}");
        };
        assert_eq!(path, &dir.path().join(FACILITIES_FILE));
        assert!(
            err.to_string().contains("health/bogota_ips_urgencias.csv"),
            "{err}"
        );
    }
}
