//! Telephone triage for Regula: chief complaint → key questions → outcome (Resolución 5596
//! level I–V, disposition, specialty route, ambulance type, instructions), explained by a
//! trace of the answers that led to it.
//!
//! # Terms
//! * **Level** ([`Level`]): the five triage levels of Resolución 5596 de 2015, `I`
//!   (immediate) to `V` (not urgent), read the same way by emergency departments and EPS.
//! * **Disposition** ([`Disposition`]): where the caller is oriented, from a medicalised
//!   ambulance (**TAM**, *transporte asistencial medicalizado*) or a basic one (**TAB**) to
//!   the emergency department by own means, a priority, home or scheduled consult, a
//!   teleconsult (paediatrics, obstetrics, psychology, general) or self-care advice with
//!   warning signs to call back.
//! * **Route** ([`Route`]): the specialty the destination needs (stroke, coronary, trauma,
//!   maternal-perinatal, mental health, violence, poisoning, paediatrics).
//! * **Finding**: a yes/no fact about the patient (`dolor_opresivo`); every question asks
//!   about exactly one.
//!
//! # How it works
//! Protocols are TOML files written in Spanish by the project ([`format`] documents
//! them); the binary reads them from a directory, or the built-in ones embedded in this
//! crate are used ([`ProtocolSet::builtin`]). Loading checks everything
//! ([`ProtocolSet::from_sources`] returns every [`Problem`] with file and line): codes,
//! complete outcomes, unreachable rules and questions, conflicting rules, rules out of
//! urgency order, and paths that end in no rule.
//!
//! A [`Session`] asks the universal vital-threat questions first, then the complaint's
//! questions in their written order, skipping any whose answer can no longer change the
//! outcome; rules are tried in order and the first that holds decides. The [`Outcome`]
//! records the caller, the protocol id, version and SHA-256 of its text, the deciding rule,
//! the trace, and an operator override (upward freely, downward only with a reason).
//!
//! # Invariants
//! * Pure: no I/O except parsing the text handed in, no clock, no randomness. The outcome
//!   and the trace are a function of the protocol texts, the caller data and the answers.
//! * A red flag (`alarma` finding) answered "sí" never makes the outcome less urgent: rules
//!   that can apply to the same caller go from the most to the least urgent level, and only
//!   reassuring findings may be required to be absent (checked when loading).
//! * Every path ends in an outcome; every outcome has instructions, and those that leave the
//!   caller at home have warning signs.

mod analysis;
pub mod batch;
pub mod builtin;
mod caller;
mod codes;
pub mod format;
mod load;
mod outcome;
mod problem;
mod protocol;
mod session;
mod set;
mod vocabulary;

pub use caller::{
    Caller, CallerData, CallerError, MAX_AGE_YEARS, MAX_PREGNANCY_AGE_YEARS, MAX_PREGNANCY_WEEKS,
    MIN_PREGNANCY_AGE_YEARS,
};
pub use codes::{AmbulanceType, Disposition, Level, PAEDIATRIC_AGE_LIMIT_YEARS, Route, Sex};
pub use load::{UNIVERSAL_FILE, VOCABULARY_FILE};
pub use outcome::{
    DecidingRule, Determination, OperatorOverride, Outcome, OverrideDirection, OverrideError,
    OverrideRequest, TraceStep,
};
pub use problem::{Problem, ProblemKind, SourceFile, ValidationErrors};
pub use protocol::{Applicability, PregnancyRequirement, Protocol, ProtocolRef};
pub use session::{AnswerError, NotDecided, Question, Session};
pub use set::{EvaluateError, ProtocolSet, StartError};
pub use vocabulary::{Derivation, FindingInfo, FindingKind, MAX_FINDINGS, Vocabulary};
