//! The caller's basic data, checked for contradictions before triage starts.

use serde::{Deserialize, Serialize};

use crate::codes::Sex;

/// The oldest age accepted, in years.
pub const MAX_AGE_YEARS: f64 = 120.0;
/// The youngest age at which a pregnancy is accepted, in years.
pub const MIN_PREGNANCY_AGE_YEARS: f64 = 10.0;
/// The oldest age at which a pregnancy is accepted, in years.
pub const MAX_PREGNANCY_AGE_YEARS: f64 = 60.0;
/// The longest pregnancy accepted, in weeks.
pub const MAX_PREGNANCY_WEEKS: f64 = 45.0;

/// Why the caller's data cannot be used (messages in Spanish: the operator reads them).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallerError {
    /// Age is NaN or infinite.
    #[error("la edad no es un número válido")]
    AgeNotANumber,
    /// Negative age.
    #[error("la edad no puede ser negativa ({0} años)")]
    NegativeAge(f64),
    /// Age above the maximum.
    #[error("la edad {0} años supera el máximo de 120 años")]
    AgeTooHigh(f64),
    /// Pregnancy weeks with sex M.
    #[error("datos contradictorios: sexo \"M\" con {0} semanas de embarazo")]
    PregnancyWithSexM(f64),
    /// Pregnancy at an impossible age.
    #[error(
        "datos contradictorios: embarazo de {weeks} semanas a los {age} años (se acepta entre 10 y 60 años)"
    )]
    PregnancyAtImpossibleAge {
        /// Age in years.
        age: f64,
        /// Pregnancy weeks.
        weeks: f64,
    },
    /// Pregnancy weeks out of range.
    #[error("semanas de embarazo fuera de rango: {0} (deben ser mayores que 0 y hasta 45)")]
    PregnancyWeeksOutOfRange(f64),
}

/// The caller's data as given to the operator: age (years, fractional for infants: 0.25 =
/// three months), sex and, for a pregnant caller, the pregnancy weeks.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "CallerData", into = "CallerData")]
pub struct Caller {
    age_years: f64,
    sex: Sex,
    pregnancy_weeks: Option<f64>,
}

/// The unchecked form of [`Caller`] (its serde representation).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallerData {
    /// Age in years.
    pub age_years: f64,
    /// Sex.
    pub sex: Sex,
    /// Pregnancy weeks, if pregnant.
    pub pregnancy_weeks: Option<f64>,
}

impl TryFrom<CallerData> for Caller {
    type Error = CallerError;
    fn try_from(d: CallerData) -> Result<Self, CallerError> {
        Self::new(d.age_years, d.sex, d.pregnancy_weeks)
    }
}

impl From<Caller> for CallerData {
    fn from(c: Caller) -> Self {
        Self {
            age_years: c.age_years,
            sex: c.sex,
            pregnancy_weeks: c.pregnancy_weeks,
        }
    }
}

impl Caller {
    /// Checks the data: age finite, 0–120; pregnancy weeks in (0, 45], never with sex M and
    /// only between 10 and 60 years of age.
    pub fn new(
        age_years: f64,
        sex: Sex,
        pregnancy_weeks: Option<f64>,
    ) -> Result<Self, CallerError> {
        if !age_years.is_finite() {
            return Err(CallerError::AgeNotANumber);
        }
        if age_years < 0.0 {
            return Err(CallerError::NegativeAge(age_years));
        }
        if age_years > MAX_AGE_YEARS {
            return Err(CallerError::AgeTooHigh(age_years));
        }
        if let Some(weeks) = pregnancy_weeks {
            if !weeks.is_finite() || weeks <= 0.0 || weeks > MAX_PREGNANCY_WEEKS {
                return Err(CallerError::PregnancyWeeksOutOfRange(weeks));
            }
            if sex == Sex::M {
                return Err(CallerError::PregnancyWithSexM(weeks));
            }
            if !(MIN_PREGNANCY_AGE_YEARS..=MAX_PREGNANCY_AGE_YEARS).contains(&age_years) {
                return Err(CallerError::PregnancyAtImpossibleAge {
                    age: age_years,
                    weeks,
                });
            }
        }
        Ok(Self {
            age_years,
            sex,
            pregnancy_weeks,
        })
    }

    /// Age in years.
    pub fn age_years(&self) -> f64 {
        self.age_years
    }

    /// Sex.
    pub fn sex(&self) -> Sex {
        self.sex
    }

    /// Pregnancy weeks, if pregnant.
    pub fn pregnancy_weeks(&self) -> Option<f64> {
        self.pregnancy_weeks
    }

    /// True when pregnancy weeks were given.
    pub fn is_pregnant(&self) -> bool {
        self.pregnancy_weeks.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contradictory_or_impossible_caller_data_is_refused_with_a_clear_error() {
        assert_eq!(
            Caller::new(5.0, Sex::F, Some(20.0)),
            Err(CallerError::PregnancyAtImpossibleAge {
                age: 5.0,
                weeks: 20.0
            })
        );
        assert_eq!(
            Caller::new(30.0, Sex::M, Some(20.0)),
            Err(CallerError::PregnancyWithSexM(20.0))
        );
        assert_eq!(
            Caller::new(-1.0, Sex::F, None),
            Err(CallerError::NegativeAge(-1.0))
        );
        assert_eq!(
            Caller::new(121.0, Sex::F, None),
            Err(CallerError::AgeTooHigh(121.0))
        );
        assert_eq!(
            Caller::new(f64::NAN, Sex::F, None),
            Err(CallerError::AgeNotANumber)
        );
        assert_eq!(
            Caller::new(30.0, Sex::F, Some(0.0)),
            Err(CallerError::PregnancyWeeksOutOfRange(0.0))
        );
        assert_eq!(
            Caller::new(30.0, Sex::F, Some(50.0)),
            Err(CallerError::PregnancyWeeksOutOfRange(50.0))
        );
        let msg = Caller::new(30.0, Sex::M, Some(12.0))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("sexo \"M\"") && msg.contains("12 semanas"),
            "{msg}"
        );
    }

    #[test]
    fn plausible_callers_are_accepted() {
        let c = Caller::new(0.1, Sex::X, None).unwrap();
        assert!(!c.is_pregnant());
        let c = Caller::new(24.0, Sex::F, Some(32.0)).unwrap();
        assert_eq!(c.pregnancy_weeks(), Some(32.0));
        assert!(Caller::new(120.0, Sex::M, None).is_ok());
        assert!(Caller::new(0.0, Sex::M, None).is_ok());
    }

    #[test]
    fn deserializing_a_caller_runs_the_same_checks() {
        let err = serde_json::from_str::<Caller>(
            r#"{"age_years": 5, "sex": "F", "pregnancy_weeks": 10}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("embarazo"), "{err}");
    }
}
