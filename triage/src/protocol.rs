//! Compiled protocols: questions, rules and outcomes ready for the engine.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::caller::Caller;
use crate::codes::{Disposition, Level, PAEDIATRIC_AGE_LIMIT_YEARS, Route, Sex};
use crate::vocabulary::{FindingId, FindingSet, Vocabulary};

/// Which protocol file (and which exact text of it) produced an outcome.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtocolRef {
    /// Protocol id (the chief complaint, or `amenazas_vitales`).
    pub id: String,
    /// The version written in the file.
    pub version: String,
    /// SHA-256 of the file's text, lowercase hex.
    pub sha256: String,
}

impl ProtocolRef {
    /// `id@version`, as batch outcomes print it.
    pub fn label(&self) -> String {
        format!("{}@{}", self.id, self.version)
    }
}

/// SHA-256 of a text, lowercase hex.
pub(crate) fn sha256_hex(text: &str) -> String {
    use sha2::{Digest, Sha256};
    use std::fmt::Write;
    let digest = Sha256::digest(text.as_bytes());
    let mut out = String::with_capacity(64);
    for byte in &digest {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// Three-valued truth of a rule under partial answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tri {
    False,
    Unknown,
    True,
}

/// Conditions on findings: all of `all`, at least `min` of `any`, none of `none`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub(crate) struct FindingCond {
    pub(crate) all: FindingSet,
    pub(crate) any: FindingSet,
    pub(crate) min: u32,
    pub(crate) none: FindingSet,
}

impl FindingCond {
    /// Truth under answers: `known` are the answered findings, `yes` those present.
    pub(crate) fn eval(&self, known: &FindingSet, yes: &FindingSet) -> Tri {
        let no = known.difference(yes);
        if !self.all.intersection(&no).is_empty() || !self.none.intersection(yes).is_empty() {
            return Tri::False;
        }
        let any_yes = self.any.intersection(yes).len();
        if self.min > 0 {
            let any_unknown = self.any.difference(known).len();
            if any_yes + any_unknown < self.min {
                return Tri::False;
            }
        }
        let undecided = !self.all.difference(yes).is_empty()
            || !self.none.difference(known).is_empty()
            || any_yes < self.min;
        if undecided { Tri::Unknown } else { Tri::True }
    }

    /// Every finding the condition mentions.
    pub(crate) fn findings(&self) -> FindingSet {
        self.all.union(&self.any).union(&self.none)
    }
}

/// Conditions on the caller's data (all known when triage starts).
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct PatientCond {
    pub(crate) age_min: Option<f64>,
    pub(crate) age_below: Option<f64>,
    pub(crate) sexes: Option<Vec<Sex>>,
    pub(crate) pregnant: Option<bool>,
    pub(crate) weeks_min: Option<f64>,
    pub(crate) weeks_below: Option<f64>,
}

impl PatientCond {
    pub(crate) fn holds(&self, caller: &Caller) -> bool {
        let age = caller.age_years();
        if self.age_min.is_some_and(|m| age < m) || self.age_below.is_some_and(|b| age >= b) {
            return false;
        }
        if let Some(sexes) = &self.sexes
            && !sexes.contains(&caller.sex())
        {
            return false;
        }
        if let Some(pregnant) = self.pregnant
            && pregnant != caller.is_pregnant()
        {
            return false;
        }
        if self.weeks_min.is_some() || self.weeks_below.is_some() {
            let Some(weeks) = caller.pregnancy_weeks() else {
                return false;
            };
            if self.weeks_min.is_some_and(|m| weeks < m)
                || self.weeks_below.is_some_and(|b| weeks >= b)
            {
                return false;
            }
        }
        true
    }

    pub(crate) fn thresholds(&self) -> (Vec<f64>, Vec<f64>) {
        (
            [self.age_min, self.age_below]
                .into_iter()
                .flatten()
                .collect(),
            [self.weeks_min, self.weeks_below]
                .into_iter()
                .flatten()
                .collect(),
        )
    }

    /// A short English description, for validation messages.
    pub(crate) fn describe(&self) -> String {
        let mut parts = Vec::new();
        match (self.age_min, self.age_below) {
            (Some(a), Some(b)) => parts.push(format!("age {a}–<{b}")),
            (Some(a), None) => parts.push(format!("age ≥ {a}")),
            (None, Some(b)) => parts.push(format!("age < {b}")),
            (None, None) => {}
        }
        if let Some(s) = &self.sexes {
            let codes: Vec<_> = s.iter().map(|s| s.code()).collect();
            parts.push(format!("sex {}", codes.join("/")));
        }
        match self.pregnant {
            Some(true) => parts.push("pregnant".into()),
            Some(false) => parts.push("not pregnant".into()),
            None => {}
        }
        parts.join(", ")
    }
}

/// The route of an outcome: vital-threat outcomes take the complaint's route, possibly a
/// different one for children.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RouteChoice {
    pub(crate) adult: Option<Route>,
    pub(crate) child: Option<Route>,
}

impl RouteChoice {
    pub(crate) fn fixed(route: Option<Route>) -> Self {
        Self {
            adult: route,
            child: route,
        }
    }

    pub(crate) fn for_caller(self, caller: &Caller) -> Option<Route> {
        if caller.age_years() < PAEDIATRIC_AGE_LIMIT_YEARS {
            self.child
        } else {
            self.adult
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct QuestionSpec {
    pub(crate) finding: FindingId,
    pub(crate) code: String,
    pub(crate) text: String,
    pub(crate) why: String,
    pub(crate) source: Arc<str>,
    pub(crate) line: usize,
}

#[derive(Debug, Clone)]
pub(crate) struct RuleSpec {
    /// `protocol.rule`.
    pub(crate) id: String,
    pub(crate) file: Arc<str>,
    pub(crate) line: usize,
    pub(crate) patient: PatientCond,
    pub(crate) cond: FindingCond,
    /// Every finding the condition mentions (`cond.findings()`, cached).
    pub(crate) mentions: FindingSet,
    pub(crate) outcome: usize,
    pub(crate) reason: String,
    /// Index in the universal file, for vital-threat rules.
    pub(crate) universal_index: Option<usize>,
    /// The condition can never hold (already reported).
    pub(crate) contradictory: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct OutcomeSpec {
    pub(crate) name: String,
    pub(crate) line: usize,
    pub(crate) level: Level,
    pub(crate) disposition: Disposition,
    pub(crate) route: RouteChoice,
    pub(crate) summary: String,
    pub(crate) instructions: Vec<String>,
    pub(crate) warning_signs: Vec<String>,
    pub(crate) universal_index: Option<usize>,
}

/// Whether a protocol needs, accepts or refuses a pregnancy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PregnancyRequirement {
    /// Either.
    Any,
    /// Pregnancy weeks must be given.
    Required,
    /// Must not be pregnant.
    Excluded,
}

/// Who a protocol is for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Applicability {
    /// Minimum age (inclusive), years.
    pub age_min: Option<f64>,
    /// Age limit (exclusive), years.
    pub age_below: Option<f64>,
    /// Accepted sexes (all when `None`).
    pub sexes: Option<Vec<Sex>>,
    /// Pregnancy requirement.
    pub pregnancy: PregnancyRequirement,
    /// What to tell the operator when the caller is outside (Spanish).
    pub suggestion: Option<String>,
}

impl Applicability {
    pub(crate) const ANY: Self = Self {
        age_min: None,
        age_below: None,
        sexes: None,
        pregnancy: PregnancyRequirement::Any,
        suggestion: None,
    };

    /// Why this caller is outside the protocol (Spanish), if it is.
    pub(crate) fn refusal(&self, caller: &Caller) -> Option<String> {
        let age = caller.age_years();
        if let Some(min) = self.age_min
            && age < min
        {
            return Some(format!(
                "es para personas de {min} años o más (edad dada: {age})"
            ));
        }
        if let Some(below) = self.age_below
            && age >= below
        {
            return Some(format!(
                "es para menores de {below} años (edad dada: {age})"
            ));
        }
        if let Some(sexes) = &self.sexes
            && !sexes.contains(&caller.sex())
        {
            let codes: Vec<_> = sexes.iter().map(|s| format!("\"{s}\"")).collect();
            return Some(format!(
                "es para sexo {} (sexo dado: \"{}\")",
                codes.join(" o "),
                caller.sex()
            ));
        }
        match (self.pregnancy, caller.is_pregnant()) {
            (PregnancyRequirement::Required, false) => Some(
                "requiere las semanas de embarazo (pregnancy_weeks); si no las sabe, use un estimado".into(),
            ),
            (PregnancyRequirement::Excluded, true) => {
                Some("no aplica a una persona embarazada".into())
            }
            _ => None,
        }
    }
}

/// A compiled protocol for one chief complaint: the universal vital-threat questions and
/// rules first, then the complaint's own.
#[derive(Debug)]
pub struct Protocol {
    pub(crate) reference: ProtocolRef,
    pub(crate) vital_screen: ProtocolRef,
    pub(crate) title: String,
    pub(crate) description: Option<String>,
    pub(crate) applicability: Applicability,
    pub(crate) questions: Vec<QuestionSpec>,
    pub(crate) rules: Vec<RuleSpec>,
    /// Per rule: some caller and answers reach it (from the analysis at load time).
    pub(crate) reachable: Vec<bool>,
    pub(crate) outcomes: Vec<OutcomeSpec>,
    pub(crate) vocabulary: Arc<Vocabulary>,
    pub(crate) file: Arc<str>,
}

impl Protocol {
    /// The chief complaint code (= protocol id).
    pub fn id(&self) -> &str {
        &self.reference.id
    }

    /// Id, version and content hash of the complaint's file.
    pub fn reference(&self) -> &ProtocolRef {
        &self.reference
    }

    /// Id, version and content hash of the universal vital-threat file.
    pub fn vital_screen(&self) -> &ProtocolRef {
        &self.vital_screen
    }

    /// Spanish title.
    pub fn title(&self) -> &str {
        &self.title
    }

    /// Spanish description, if any.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// Who the protocol is for.
    pub fn applicability(&self) -> &Applicability {
        &self.applicability
    }

    /// The file it was loaded from.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Number of questions (universal ones included).
    pub fn question_count(&self) -> usize {
        self.questions.len()
    }

    /// Number of rules (universal ones included).
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// Number of outcomes (universal ones included).
    pub fn outcome_count(&self) -> usize {
        self.outcomes.len()
    }

    /// The findings this protocol can ask about, in question order.
    pub fn asked_findings(&self) -> impl Iterator<Item = &str> {
        self.questions.iter().map(|q| q.code.as_str())
    }

    /// The findings asked by this protocol that the vocabulary marks as red flags.
    pub fn red_flags(&self) -> impl Iterator<Item = &str> {
        self.questions.iter().filter_map(|q| {
            (self.vocabulary.info(q.finding).kind == crate::vocabulary::FindingKind::RedFlag)
                .then_some(q.code.as_str())
        })
    }

    /// Indices of the rules that can apply to this caller, in order.
    pub(crate) fn rules_for(&self, caller: &Caller) -> Vec<usize> {
        self.rules
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.contradictory && r.patient.holds(caller))
            .map(|(i, _)| i)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[FindingId]) -> FindingSet {
        let mut s = FindingSet::EMPTY;
        for id in ids {
            s.insert(*id);
        }
        s
    }

    #[test]
    fn conditions_use_three_valued_logic_under_partial_answers() {
        let cond = FindingCond {
            all: set(&[1]),
            any: set(&[2, 3]),
            min: 1,
            none: set(&[4]),
        };
        let nothing = FindingSet::EMPTY;
        assert_eq!(cond.eval(&nothing, &nothing), Tri::Unknown);
        // 1 yes, 2 yes, 4 unknown → still unknown.
        assert_eq!(cond.eval(&set(&[1, 2]), &set(&[1, 2])), Tri::Unknown);
        // 4 no → true.
        assert_eq!(cond.eval(&set(&[1, 2, 4]), &set(&[1, 2])), Tri::True);
        // 1 no → false.
        assert_eq!(cond.eval(&set(&[1]), &nothing), Tri::False);
        // 2 and 3 no → false.
        assert_eq!(cond.eval(&set(&[2, 3]), &nothing), Tri::False);
        // 4 yes → false.
        assert_eq!(cond.eval(&set(&[4]), &set(&[4])), Tri::False);
        let always = FindingCond::default();
        assert_eq!(always.eval(&nothing, &nothing), Tri::True);
    }

    #[test]
    fn at_least_n_of_any_counts_present_and_unanswered_findings() {
        let cond = FindingCond {
            any: set(&[1, 2, 3]),
            min: 2,
            ..FindingCond::default()
        };
        assert_eq!(cond.eval(&set(&[1]), &set(&[1])), Tri::Unknown);
        assert_eq!(cond.eval(&set(&[1, 2]), &set(&[1])), Tri::Unknown);
        assert_eq!(cond.eval(&set(&[1, 2, 3]), &set(&[1])), Tri::False);
        assert_eq!(cond.eval(&set(&[1, 3]), &set(&[1, 3])), Tri::True);
    }

    #[test]
    fn patient_conditions_check_age_sex_and_pregnancy() {
        let cond = PatientCond {
            age_min: Some(14.0),
            age_below: Some(50.0),
            sexes: Some(vec![Sex::F, Sex::X]),
            pregnant: Some(true),
            weeks_min: Some(20.0),
            weeks_below: None,
        };
        assert!(cond.holds(&Caller::new(25.0, Sex::F, Some(30.0)).unwrap()));
        assert!(!cond.holds(&Caller::new(25.0, Sex::F, Some(10.0)).unwrap()));
        assert!(!cond.holds(&Caller::new(25.0, Sex::F, None).unwrap()));
        assert!(!cond.holds(&Caller::new(50.0, Sex::F, Some(30.0)).unwrap()));
        assert!(!cond.holds(&Caller::new(13.9, Sex::F, Some(30.0)).unwrap()));
        assert!(!cond.holds(&Caller::new(30.0, Sex::M, None).unwrap()));
    }

    #[test]
    fn content_hash_is_sha256_hex() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
