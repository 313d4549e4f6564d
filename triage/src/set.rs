//! A checked set of protocols: one per chief complaint, sharing the vocabulary and the
//! universal vital-threat screen.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use crate::caller::{Caller, CallerError};
use crate::load::UniversalSummary;
use crate::outcome::Outcome;
use crate::problem::{Problem, SourceFile, ValidationErrors};
use crate::protocol::{Protocol, ProtocolRef};
use crate::session::{AnswerError, NotDecided, Session};
use crate::vocabulary::{Derivation, FindingKind, FindingSet, Vocabulary};

/// Why a triage could not start (Spanish: the operator reads it).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StartError {
    /// Not a chief complaint of the loaded protocols.
    #[error("motivo de consulta desconocido: `{complaint}`{}", hint(.suggestion.as_deref()))]
    UnknownComplaint {
        /// What was given.
        complaint: String,
        /// The closest known complaint.
        suggestion: Option<String>,
    },
    /// The caller is outside the protocol (e.g. `fiebre_nino` for an adult).
    #[error("el protocolo `{complaint}` {reason}{}", .suggestion.as_ref().map(|s| format!(". {s}")).unwrap_or_default())]
    NotApplicable {
        /// The complaint.
        complaint: String,
        /// Why (Spanish).
        reason: String,
        /// What to use instead (Spanish), from the protocol.
        suggestion: Option<String>,
    },
}

fn hint(suggestion: Option<&str>) -> String {
    suggestion
        .map(|s| format!(" (¿quiso decir `{s}`?)"))
        .unwrap_or_default()
}

/// Why a structured case could not be evaluated (Spanish).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvaluateError {
    /// Contradictory or impossible caller data.
    #[error(transparent)]
    Caller(#[from] CallerError),
    /// The triage could not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// A finding code that does not exist.
    #[error("hallazgo desconocido: `{code}`{}", hint(.suggestion.as_deref()))]
    UnknownFinding {
        /// The code given.
        code: String,
        /// The closest known code.
        suggestion: Option<String>,
    },
    /// A finding derived from the caller's data, listed against that data.
    #[error("datos contradictorios: el hallazgo `{code}` no concuerda con {data}")]
    ContradictsCallerData {
        /// The finding.
        code: String,
        /// The caller data it contradicts (Spanish).
        data: String,
    },
    /// An answer was refused (cannot happen with a validated set; reported, not hidden).
    #[error(transparent)]
    Answer(#[from] AnswerError),
    /// No rule decided (cannot happen with a validated set; reported, not hidden).
    #[error(transparent)]
    NotDecided(#[from] NotDecided),
}

/// Every protocol, checked. Build it with [`ProtocolSet::from_sources`] or use
/// [`ProtocolSet::builtin`].
#[derive(Debug, Clone)]
pub struct ProtocolSet {
    vocabulary: Arc<Vocabulary>,
    vital_screen: ProtocolRef,
    universal: UniversalSummary,
    protocols: BTreeMap<String, Arc<Protocol>>,
}

static BUILTIN: LazyLock<Result<ProtocolSet, ValidationErrors>> =
    LazyLock::new(|| ProtocolSet::from_sources(&crate::builtin::sources()));

impl ProtocolSet {
    /// The protocols shipped with Regula (embedded in the crate), loaded and checked once.
    /// They are valid and complete (tested); the error can only come from a broken build.
    pub fn builtin() -> Result<&'static Self, ValidationErrors> {
        BUILTIN.as_ref().map_err(Clone::clone)
    }

    pub(crate) fn new(
        vocabulary: Arc<Vocabulary>,
        vital_screen: ProtocolRef,
        universal: UniversalSummary,
        protocols: BTreeMap<String, Arc<Protocol>>,
    ) -> Self {
        Self {
            vocabulary,
            vital_screen,
            universal,
            protocols,
        }
    }

    /// Parses and checks protocol files (`vocabulario.toml`, `amenazas_vitales.toml` and
    /// one file per chief complaint). Every problem is reported with its file and line.
    /// A set that loads is correct; [`ProtocolSet::coverage_problems`] says whether it is
    /// complete.
    pub fn from_sources(sources: &[SourceFile]) -> Result<Self, ValidationErrors> {
        crate::load::load(sources)
    }

    /// Completeness problems of a correct set: chief complaints without a protocol,
    /// dispositions or routes that no protocol reaches, universal rules or outcomes that
    /// serve no complaint. `regula triage validate` reports them; the built-in set has none.
    pub fn coverage_problems(&self) -> Vec<Problem> {
        crate::load::coverage(self)
    }

    pub(crate) fn universal_summary(&self) -> &UniversalSummary {
        &self.universal
    }

    /// The vocabulary.
    pub fn vocabulary(&self) -> &Vocabulary {
        &self.vocabulary
    }

    /// The universal vital-threat screen's id, version and hash.
    pub fn vital_screen(&self) -> &ProtocolRef {
        &self.vital_screen
    }

    /// The protocol of a chief complaint.
    pub fn protocol(&self, complaint: &str) -> Option<&Arc<Protocol>> {
        self.protocols.get(complaint)
    }

    /// Every protocol, by complaint code.
    pub fn protocols(&self) -> impl Iterator<Item = &Arc<Protocol>> {
        self.protocols.values()
    }

    /// Starts a triage for a chief complaint and a caller.
    pub fn start(&self, complaint: &str, caller: Caller) -> Result<Session, StartError> {
        let Some(protocol) = self.protocols.get(complaint) else {
            let suggestion = self
                .protocols
                .keys()
                .map(|c| (strsim::jaro_winkler(complaint, c), c))
                .filter(|(s, _)| *s > 0.8)
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, c)| c.clone());
            return Err(StartError::UnknownComplaint {
                complaint: complaint.to_owned(),
                suggestion,
            });
        };
        if let Some(reason) = protocol.applicability.refusal(&caller) {
            return Err(StartError::NotApplicable {
                complaint: complaint.to_owned(),
                reason,
                suggestion: protocol.applicability.suggestion.clone(),
            });
        }
        Ok(Session::new(Arc::clone(protocol), caller))
    }

    /// Runs a whole triage from a list of findings present (every finding asked and not
    /// listed is answered "no"), as `regula triage eval` does. Unknown codes and derived
    /// findings that contradict the caller's data are errors.
    pub fn evaluate<S: AsRef<str>>(
        &self,
        complaint: &str,
        caller: Caller,
        findings: &[S],
    ) -> Result<Outcome, EvaluateError> {
        Ok(self.run(complaint, caller, findings)?.outcome()?)
    }

    /// Runs a whole triage and returns the finished session.
    pub(crate) fn run<S: AsRef<str>>(
        &self,
        complaint: &str,
        caller: Caller,
        findings: &[S],
    ) -> Result<Session, EvaluateError> {
        let mut present = FindingSet::EMPTY;
        for code in findings {
            let code = code.as_ref();
            let Some(id) = self.vocabulary.id(code) else {
                let suggestion = self
                    .vocabulary
                    .findings()
                    .iter()
                    .map(|f| (strsim::jaro_winkler(code, &f.code), &f.code))
                    .filter(|(s, _)| *s > 0.85)
                    .max_by(|a, b| a.0.total_cmp(&b.0))
                    .map(|(_, c)| c.clone());
                return Err(EvaluateError::UnknownFinding {
                    code: code.to_owned(),
                    suggestion,
                });
            };
            if let FindingKind::Derived(d) = self.vocabulary.info(id).kind {
                let (agrees, data) = match d {
                    Derivation::AgeUnder3Months => (
                        caller.age_years() < 0.25,
                        format!("la edad ({} años)", caller.age_years()),
                    ),
                    Derivation::Pregnancy => (
                        caller.is_pregnant(),
                        "pregnancy_weeks = null (sin embarazo)".to_owned(),
                    ),
                };
                if !agrees {
                    return Err(EvaluateError::ContradictsCallerData {
                        code: code.to_owned(),
                        data,
                    });
                }
            }
            present.insert(id);
        }
        let mut session = self.start(complaint, caller)?;
        while let Some(id) = session.current_finding() {
            session.answer_id(id, present.contains(id))?;
        }
        if let Some(next) = session.next_question() {
            return Err(EvaluateError::NotDecided(NotDecided {
                next: next.finding.to_owned(),
            }));
        }
        Ok(session)
    }
}
