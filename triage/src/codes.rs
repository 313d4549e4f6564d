//! The fixed codes of the triage vocabulary (`shared/triage/vocabulary.md`): levels,
//! dispositions, specialty routes, ambulance types and the caller's sex.
//!
//! Each enum has `code()` (the stable string used in protocol files, batch cases and
//! outcomes) and `from_code()`. Findings and chief complaints are data (declared in
//! `protocols/vocabulario.toml`), so they are strings checked against the loaded vocabulary.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Resolución 5596 de 2015 triage level. `I` is the most urgent; the derived order sorts the
/// most urgent first (`Level::I < Level::V`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Level {
    /// Immediate attention.
    I,
    /// Within 30 minutes.
    II,
    /// Urgent, not life-threatening.
    III,
    /// Less urgent.
    IV,
    /// Not urgent; may be redirected to a consult.
    V,
}

impl Level {
    /// All levels, most urgent first.
    pub const ALL: [Self; 5] = [Self::I, Self::II, Self::III, Self::IV, Self::V];

    /// 1 (I) to 5 (V).
    pub fn number(self) -> u8 {
        match self {
            Self::I => 1,
            Self::II => 2,
            Self::III => 3,
            Self::IV => 4,
            Self::V => 5,
        }
    }

    /// The level with this number (1..=5).
    pub fn from_number(number: u8) -> Option<Self> {
        Self::ALL.get(usize::from(number).checked_sub(1)?).copied()
    }

    /// `"I"` … `"V"`.
    pub fn code(self) -> &'static str {
        match self {
            Self::I => "I",
            Self::II => "II",
            Self::III => "III",
            Self::IV => "IV",
            Self::V => "V",
        }
    }

    /// Parses `"I"` … `"V"`.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.code() == code)
    }

    /// True when `self` calls for faster attention than `other`.
    pub fn is_more_urgent_than(self, other: Self) -> bool {
        self < other
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Medicalised (TAM) or basic (TAB) ambulance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum AmbulanceType {
    /// Transporte asistencial básico.
    #[serde(rename = "TAB")]
    Tab,
    /// Transporte asistencial medicalizado.
    #[serde(rename = "TAM")]
    Tam,
}

impl AmbulanceType {
    /// `"TAB"` or `"TAM"`.
    pub fn code(self) -> &'static str {
        match self {
            Self::Tab => "TAB",
            Self::Tam => "TAM",
        }
    }
}

impl fmt::Display for AmbulanceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Where the caller is oriented, from the most to the least urgent (the declaration order is
/// the urgency order, see [`Disposition::rank`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum Disposition {
    /// Medicalised ambulance now.
    AmbulanciaTam,
    /// Basic ambulance now.
    AmbulanciaTab,
    /// Go to the recommended emergency department by own means.
    UrgenciasPorSusMedios,
    /// Priority consult the same day.
    ConsultaPrioritaria,
    /// Home visit.
    ConsultaDomiciliaria,
    /// Paediatric teleconsult.
    TeleconsultaPediatria,
    /// Obstetric teleconsult.
    TeleconsultaObstetricia,
    /// Psychology / mental-health teleconsult.
    TeleconsultaPsicologia,
    /// General-medicine teleconsult.
    TeleconsultaGeneral,
    /// Scheduled consult in the patient's network.
    ConsultaProgramada,
    /// Self-care advice with warning signs to call back.
    OrientacionAutocuidado,
}

impl Disposition {
    /// All dispositions, most urgent first.
    pub const ALL: [Self; 11] = [
        Self::AmbulanciaTam,
        Self::AmbulanciaTab,
        Self::UrgenciasPorSusMedios,
        Self::ConsultaPrioritaria,
        Self::ConsultaDomiciliaria,
        Self::TeleconsultaPediatria,
        Self::TeleconsultaObstetricia,
        Self::TeleconsultaPsicologia,
        Self::TeleconsultaGeneral,
        Self::ConsultaProgramada,
        Self::OrientacionAutocuidado,
    ];

    /// The vocabulary code (`"ambulancia_tam"`, …).
    pub fn code(self) -> &'static str {
        match self {
            Self::AmbulanciaTam => "ambulancia_tam",
            Self::AmbulanciaTab => "ambulancia_tab",
            Self::UrgenciasPorSusMedios => "urgencias_por_sus_medios",
            Self::ConsultaPrioritaria => "consulta_prioritaria",
            Self::ConsultaDomiciliaria => "consulta_domiciliaria",
            Self::TeleconsultaPediatria => "teleconsulta_pediatria",
            Self::TeleconsultaObstetricia => "teleconsulta_obstetricia",
            Self::TeleconsultaPsicologia => "teleconsulta_psicologia",
            Self::TeleconsultaGeneral => "teleconsulta_general",
            Self::ConsultaProgramada => "consulta_programada",
            Self::OrientacionAutocuidado => "orientacion_autocuidado",
        }
    }

    /// Parses a vocabulary code.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.code() == code)
    }

    /// 0 for the most urgent (`ambulancia_tam`) to 10 (`orientacion_autocuidado`).
    pub fn rank(self) -> usize {
        Self::ALL
            .iter()
            .position(|d| *d == self)
            .unwrap_or(Self::ALL.len())
    }

    /// The ambulance this disposition sends, if it is an ambulance.
    pub fn ambulance(self) -> Option<AmbulanceType> {
        match self {
            Self::AmbulanciaTam => Some(AmbulanceType::Tam),
            Self::AmbulanciaTab => Some(AmbulanceType::Tab),
            _ => None,
        }
    }

    /// The Resolución 5596 levels this disposition may carry. Anything else is an incomplete
    /// or contradictory outcome (level I always needs a medicalised ambulance; self-care is
    /// never more urgent than IV).
    pub fn allowed_levels(self) -> &'static [Level] {
        use Level::{I, II, III, IV, V};
        match self {
            Self::AmbulanciaTam => &[I, II],
            Self::AmbulanciaTab => &[II, III],
            Self::UrgenciasPorSusMedios => &[II, III, IV],
            Self::ConsultaPrioritaria => &[III, IV],
            Self::ConsultaDomiciliaria
            | Self::TeleconsultaPediatria
            | Self::TeleconsultaObstetricia
            | Self::TeleconsultaPsicologia
            | Self::TeleconsultaGeneral => &[III, IV, V],
            Self::ConsultaProgramada | Self::OrientacionAutocuidado => &[IV, V],
        }
    }

    /// True for the modalities that leave the caller at home for now (consults,
    /// teleconsults, self-care): their outcomes must carry warning signs to call back.
    pub fn needs_warning_signs(self) -> bool {
        self.rank() >= Self::ConsultaPrioritaria.rank()
    }

    /// Short Spanish label for consoles.
    pub fn label_es(self) -> &'static str {
        match self {
            Self::AmbulanciaTam => "Ambulancia medicalizada (TAM)",
            Self::AmbulanciaTab => "Ambulancia básica (TAB)",
            Self::UrgenciasPorSusMedios => "Urgencias por sus propios medios",
            Self::ConsultaPrioritaria => "Consulta prioritaria (mismo día)",
            Self::ConsultaDomiciliaria => "Consulta domiciliaria",
            Self::TeleconsultaPediatria => "Teleconsulta de pediatría",
            Self::TeleconsultaObstetricia => "Teleconsulta de obstetricia",
            Self::TeleconsultaPsicologia => "Teleconsulta de psicología",
            Self::TeleconsultaGeneral => "Teleconsulta de medicina general",
            Self::ConsultaProgramada => "Consulta programada en su red",
            Self::OrientacionAutocuidado => "Orientación y autocuidado",
        }
    }
}

impl fmt::Display for Disposition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Specialty route: which kind of emergency department the patient needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum Route {
    /// Stroke.
    Acv,
    /// Acute coronary syndrome.
    Sca,
    /// Trauma.
    Trauma,
    /// Maternal and perinatal emergencies.
    MaternoPerinatal,
    /// Mental health.
    SaludMental,
    /// Sexual or domestic violence.
    Violencias,
    /// Poisoning.
    Intoxicacion,
    /// Paediatrics.
    Pediatria,
}

impl Route {
    /// All routes.
    pub const ALL: [Self; 8] = [
        Self::Acv,
        Self::Sca,
        Self::Trauma,
        Self::MaternoPerinatal,
        Self::SaludMental,
        Self::Violencias,
        Self::Intoxicacion,
        Self::Pediatria,
    ];

    /// The vocabulary code (`"acv"`, …).
    pub fn code(self) -> &'static str {
        match self {
            Self::Acv => "acv",
            Self::Sca => "sca",
            Self::Trauma => "trauma",
            Self::MaternoPerinatal => "materno_perinatal",
            Self::SaludMental => "salud_mental",
            Self::Violencias => "violencias",
            Self::Intoxicacion => "intoxicacion",
            Self::Pediatria => "pediatria",
        }
    }

    /// Parses a vocabulary code.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// The caller's sex as given to the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Sex {
    /// Female.
    F,
    /// Male.
    M,
    /// Not stated / other.
    X,
}

impl Sex {
    /// All values.
    pub const ALL: [Self; 3] = [Self::F, Self::M, Self::X];

    /// `"F"`, `"M"` or `"X"`.
    pub fn code(self) -> &'static str {
        match self {
            Self::F => "F",
            Self::M => "M",
            Self::X => "X",
        }
    }

    /// Parses `"F"`, `"M"` or `"X"`.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.code() == code)
    }
}

impl fmt::Display for Sex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Age below which a caller is a child for route purposes (`ruta_pediatrica`), in years.
pub const PAEDIATRIC_AGE_LIMIT_YEARS: f64 = 14.0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_from_code() {
        for l in Level::ALL {
            assert_eq!(Level::from_code(l.code()), Some(l));
            assert_eq!(Level::from_number(l.number()), Some(l));
        }
        for d in Disposition::ALL {
            assert_eq!(Disposition::from_code(d.code()), Some(d));
        }
        for r in Route::ALL {
            assert_eq!(Route::from_code(r.code()), Some(r));
        }
        for s in Sex::ALL {
            assert_eq!(Sex::from_code(s.code()), Some(s));
        }
        assert_eq!(Level::from_number(0), None);
        assert_eq!(Level::from_number(6), None);
        assert_eq!(Disposition::from_code("ambulancia"), None);
    }

    #[test]
    fn serde_uses_the_vocabulary_codes() {
        assert_eq!(
            serde_json::to_string(&Disposition::UrgenciasPorSusMedios).unwrap(),
            "\"urgencias_por_sus_medios\""
        );
        assert_eq!(
            serde_json::to_string(&Route::MaternoPerinatal).unwrap(),
            "\"materno_perinatal\""
        );
        assert_eq!(serde_json::to_string(&Level::III).unwrap(), "\"III\"");
        assert_eq!(
            serde_json::to_string(&AmbulanceType::Tam).unwrap(),
            "\"TAM\""
        );
    }

    #[test]
    fn dispositions_are_ranked_from_most_to_least_urgent() {
        assert_eq!(Disposition::AmbulanciaTam.rank(), 0);
        assert_eq!(Disposition::OrientacionAutocuidado.rank(), 10);
        assert!(Level::I.is_more_urgent_than(Level::II));
        assert!(!Level::V.is_more_urgent_than(Level::IV));
        assert_eq!(
            Disposition::AmbulanciaTab.ambulance(),
            Some(AmbulanceType::Tab)
        );
        assert_eq!(Disposition::TeleconsultaGeneral.ambulance(), None);
        assert!(Disposition::OrientacionAutocuidado.needs_warning_signs());
        assert!(!Disposition::UrgenciasPorSusMedios.needs_warning_signs());
    }
}
