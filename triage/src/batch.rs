//! Batch evaluation of structured cases, in exactly the formats of
//! `shared/triage/vocabulary.md`: a JSON array of cases in, one JSON object per case out
//! (`{"id", "level", "disposition", "route", "protocol", "trace"}` or `{"id", "error"}`).
//!
//! A case may also carry `"expected": {"level", "disposition", "route"}` (the project's
//! vignettes do); evaluation ignores it and [`Agreement`] compares it with the outcome.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::caller::Caller;
use crate::codes::{Disposition, Level, Route, Sex};
use crate::outcome::Outcome;
use crate::set::{EvaluateError, ProtocolSet};

/// One case of the input file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Case id, echoed in the output.
    pub id: String,
    /// Age in years (fractional for infants).
    pub age_years: f64,
    /// `"F"`, `"M"` or `"X"`.
    pub sex: Sex,
    /// Pregnancy weeks, or null.
    #[serde(default)]
    pub pregnancy_weeks: Option<f64>,
    /// Chief complaint code.
    pub chief_complaint: String,
    /// Findings present; every other finding asked is answered "no".
    pub findings: Vec<String>,
    /// What a clinician expects (optional; not used to evaluate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<Expected>,
}

/// A clinician's expected outcome for a vignette.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expected {
    /// Expected level.
    pub level: Level,
    /// Expected disposition.
    pub disposition: Disposition,
    /// Expected route (null for none).
    #[serde(default)]
    pub route: Option<Route>,
}

/// An element of the input array: a well-formed case, or why it is not one.
#[derive(Debug, Clone, PartialEq)]
pub enum CaseInput {
    /// A case to evaluate.
    Case(Box<Case>),
    /// A malformed case: its `id` as given (or null) and the reason (Spanish).
    Malformed {
        /// The `id` field as found, or null.
        id: serde_json::Value,
        /// What is wrong.
        error: String,
    },
}

/// The cases file as a whole is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CasesFileError {
    /// Not JSON.
    #[error("the cases file is not valid JSON (line {line}, column {column}): {message}")]
    NotJson {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// JSON, but not an array of cases.
    #[error("the cases file must be a JSON array of cases, found {found}")]
    NotAnArray {
        /// What was found (`an object`, `a string`, …).
        found: &'static str,
    },
}

/// Parses a cases file. A file that is not a JSON array is an error; each element that is
/// not a well-formed case (or repeats an earlier id) becomes [`CaseInput::Malformed`], so the
/// other cases can still be evaluated.
pub fn parse_cases(text: &str) -> Result<Vec<CaseInput>, CasesFileError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| CasesFileError::NotJson {
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
    let serde_json::Value::Array(items) = value else {
        let found = match value {
            serde_json::Value::Object(_) => "an object",
            serde_json::Value::String(_) => "a string",
            serde_json::Value::Number(_) => "a number",
            serde_json::Value::Bool(_) => "a boolean",
            _ => "null",
        };
        return Err(CasesFileError::NotAnArray { found });
    };
    let mut seen: HashMap<String, usize> = HashMap::new();
    Ok(items
        .into_iter()
        .enumerate()
        .map(|(position, item)| {
            let id = item.get("id").cloned().unwrap_or(serde_json::Value::Null);
            match serde_json::from_value::<Case>(item) {
                Ok(case) => {
                    if let Some(first) = seen.insert(case.id.clone(), position + 1) {
                        return CaseInput::Malformed {
                            id,
                            error: format!(
                                "caso mal formado: id repetido (ya usado en el caso n.º {first})"
                            ),
                        };
                    }
                    CaseInput::Case(Box::new(case))
                }
                Err(e) => CaseInput::Malformed {
                    id,
                    error: format!("caso mal formado (n.º {}): {e}", position + 1),
                },
            }
        })
        .collect())
}

/// Evaluates one case.
pub fn evaluate_case(set: &ProtocolSet, case: &Case) -> Result<Outcome, EvaluateError> {
    let caller = Caller::new(case.age_years, case.sex, case.pregnancy_weeks)?;
    set.evaluate(&case.chief_complaint, caller, &case.findings)
}

/// One trace entry of an output line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineStep {
    /// Finding asked.
    pub finding: String,
    /// Answer.
    pub answer: bool,
    /// What it did.
    pub effect: String,
}

/// An output line for an evaluated case (the vocabulary's outcome format).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutcomeLine {
    /// Case id.
    pub id: String,
    /// Level.
    pub level: Level,
    /// Disposition.
    pub disposition: Disposition,
    /// Route or null.
    pub route: Option<Route>,
    /// `complaint@version`.
    pub protocol: String,
    /// Questions asked, answers, effects.
    pub trace: Vec<LineStep>,
}

impl OutcomeLine {
    /// The line for an outcome.
    pub fn new(id: &str, outcome: &Outcome) -> Self {
        Self {
            id: id.to_owned(),
            level: outcome.level(),
            disposition: outcome.disposition(),
            route: outcome.route(),
            protocol: outcome.protocol_label(),
            trace: outcome
                .trace
                .iter()
                .map(|s| LineStep {
                    finding: s.finding.clone(),
                    answer: s.answer,
                    effect: s.effect.clone(),
                })
                .collect(),
        }
    }
}

/// An output line for a case that could not be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorLine {
    /// The case id as given (null when missing).
    pub id: serde_json::Value,
    /// Why (Spanish).
    pub error: String,
}

/// The output line of one input element, as a JSON value (`{"id", …}`).
pub fn evaluate_input(set: &ProtocolSet, input: &CaseInput) -> Result<OutcomeLine, ErrorLine> {
    match input {
        CaseInput::Malformed { id, error } => Err(ErrorLine {
            id: id.clone(),
            error: error.clone(),
        }),
        CaseInput::Case(case) => line_for(set, case).map_err(|e| ErrorLine {
            id: serde_json::Value::String(case.id.clone()),
            error: e.to_string(),
        }),
    }
}

/// The output line of a case, straight from the finished session (the same values as
/// [`OutcomeLine::new`] on the full [`Outcome`], without building the full record).
fn line_for(set: &ProtocolSet, case: &Case) -> Result<OutcomeLine, EvaluateError> {
    let caller = Caller::new(case.age_years, case.sex, case.pregnancy_weeks)?;
    let session = set.run(&case.chief_complaint, caller, &case.findings)?;
    let Some((level, disposition, route)) = session.decision() else {
        let next = session
            .next_question()
            .map(|q| q.finding.to_owned())
            .unwrap_or_default();
        return Err(EvaluateError::NotDecided(crate::session::NotDecided {
            next,
        }));
    };
    Ok(OutcomeLine {
        id: case.id.clone(),
        level,
        disposition,
        route,
        protocol: session.protocol().reference().label(),
        trace: session.line_steps(),
    })
}

/// How outcomes compare with the vignettes' expectations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Agreement {
    /// Cases with an expectation that were evaluated.
    pub compared: usize,
    /// Same level, disposition and route.
    pub exact: usize,
    /// Same level.
    pub same_level: usize,
    /// Outcome less urgent than expected (higher level number).
    pub under_triage: usize,
    /// Outcome more urgent than expected.
    pub over_triage: usize,
    /// Ids of under-triaged cases whose expected level is I or II.
    pub critical_under_triage: Vec<String>,
}

impl Agreement {
    /// Adds one comparison.
    pub fn record(&mut self, id: &str, expected: &Expected, line: &OutcomeLine) {
        self.compared += 1;
        if line.level == expected.level
            && line.disposition == expected.disposition
            && line.route == expected.route
        {
            self.exact += 1;
        }
        if line.level == expected.level {
            self.same_level += 1;
        } else if expected.level.is_more_urgent_than(line.level) {
            self.under_triage += 1;
            if expected.level <= Level::II {
                self.critical_under_triage.push(id.to_owned());
            }
        } else {
            self.over_triage += 1;
        }
    }

    /// Exact agreement, 0–100 %.
    pub fn exact_percent(&self) -> f64 {
        percent(self.exact, self.compared)
    }

    /// Level agreement, 0–100 %.
    pub fn level_percent(&self) -> f64 {
        percent(self.same_level, self.compared)
    }
}

#[allow(clippy::cast_precision_loss)] // counts of cases are far below 2^52
fn percent(n: usize, of: usize) -> f64 {
    if of == 0 {
        0.0
    } else {
        100.0 * n as f64 / of as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_not_json_is_an_error_with_its_position() {
        let err = parse_cases("[{\"id\": \"a\",]").unwrap_err();
        assert!(
            matches!(err, CasesFileError::NotJson { line: 1, .. }),
            "{err}"
        );
    }

    #[test]
    fn a_file_that_is_not_an_array_is_an_error() {
        let err = parse_cases("{\"id\": \"a\"}").unwrap_err();
        assert_eq!(err, CasesFileError::NotAnArray { found: "an object" });
        assert!(err.to_string().contains("JSON array"));
    }

    #[test]
    fn a_malformed_case_keeps_its_id_and_the_others_go_on() {
        let text = r#"[
            {"id": "ok", "age_years": 30, "sex": "F", "pregnancy_weeks": null,
             "chief_complaint": "cefalea", "findings": []},
            {"id": "bad", "age_years": "treinta", "sex": "F", "chief_complaint": "cefalea", "findings": []},
            {"age_years": 30, "sex": "Q", "chief_complaint": "cefalea", "findings": []},
            {"id": "ok", "age_years": 30, "sex": "F", "chief_complaint": "cefalea", "findings": [], "extra": 1}
        ]"#;
        let inputs = parse_cases(text).unwrap();
        assert_eq!(inputs.len(), 4);
        assert!(
            matches!(&inputs[0], CaseInput::Case(c) if c.id == "ok" && c.pregnancy_weeks.is_none())
        );
        match &inputs[1] {
            CaseInput::Malformed { id, error } => {
                assert_eq!(id, "bad");
                assert!(
                    error.contains("age_years") || error.contains("invalid type"),
                    "{error}"
                );
            }
            CaseInput::Case(c) => panic!("{c:?}"),
        }
        assert!(matches!(
            &inputs[2],
            CaseInput::Malformed {
                id: serde_json::Value::Null,
                ..
            }
        ));
        match &inputs[3] {
            CaseInput::Malformed { error, .. } => assert!(error.contains("extra"), "{error}"),
            CaseInput::Case(c) => panic!("{c:?}"),
        }
    }
}
