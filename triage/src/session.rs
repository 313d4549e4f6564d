//! One triage conversation: the operator asks the next question, records the answer, and
//! reads the outcome when a rule decides.

use std::sync::Arc;

use serde::Serialize;

use crate::caller::Caller;
use crate::outcome::{DecidingRule, Determination, Outcome, TraceStep};
use crate::protocol::{Protocol, Tri};
use crate::vocabulary::{Derivation, FindingId, FindingKind, FindingSet};

/// A question to read to the caller; "sí" means the finding is present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Question<'a> {
    /// The finding code to answer with [`Session::answer`].
    pub finding: &'a str,
    /// The question (Spanish).
    pub text: &'a str,
    /// Why we ask (Spanish), for the operator.
    pub why: &'a str,
    /// The protocol file that asks it.
    pub file: &'a str,
    /// Its line there.
    pub line: usize,
}

/// Why an answer was refused; nothing changes (messages in Spanish).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// Not a finding of the vocabulary.
    #[error("hallazgo desconocido: `{0}`")]
    UnknownFinding(String),
    /// Not the question being asked.
    #[error(
        "respuesta fuera de orden: se respondió `{given}` pero la pregunta actual es sobre `{expected}`"
    )]
    OutOfOrder {
        /// The finding of the current question.
        expected: String,
        /// The finding answered.
        given: String,
    },
    /// The triage already has an outcome.
    #[error("el triage ya terminó (decidió la regla `{rule}`); no hay más preguntas")]
    AlreadyDecided {
        /// The deciding rule.
        rule: String,
    },
}

/// Asked for the outcome before a rule decided.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("el triage no ha terminado: falta responder sobre `{next}`")]
pub struct NotDecided {
    /// The finding of the next question.
    pub next: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the answer to this question (index in the protocol's questions).
    Asking(usize),
    /// This rule (index in the protocol's rules) decided.
    Decided(usize),
}

/// A triage in progress for one caller and chief complaint. Cheap to clone; owns an `Arc`
/// of its protocol, so it can live in a console connection.
#[derive(Debug, Clone)]
pub struct Session {
    protocol: Arc<Protocol>,
    caller: Caller,
    /// Indices of the rules that apply to this caller, in order.
    rules: Vec<usize>,
    /// Truth of each applicable rule under the current answers.
    status: Vec<Tri>,
    known: FindingSet,
    yes: FindingSet,
    derived_known: FindingSet,
    derived_yes: FindingSet,
    answers: Vec<(FindingId, bool)>,
    trace: Vec<TraceStep>,
    state: State,
}

impl Session {
    pub(crate) fn new(protocol: Arc<Protocol>, caller: Caller) -> Self {
        let rules = protocol.rules_for(&caller);
        let mut derived_known = FindingSet::EMPTY;
        let mut derived_yes = FindingSet::EMPTY;
        for (i, info) in protocol.vocabulary.findings().iter().enumerate() {
            let Ok(id) = FindingId::try_from(i) else {
                continue;
            };
            if let FindingKind::Derived(d) = info.kind {
                derived_known.insert(id);
                let present = match d {
                    Derivation::AgeUnder3Months => caller.age_years() < 0.25,
                    Derivation::Pregnancy => caller.is_pregnant(),
                };
                if present {
                    derived_yes.insert(id);
                }
            }
        }
        let mut session = Self {
            protocol,
            caller,
            status: vec![Tri::Unknown; rules.len()],
            rules,
            known: derived_known,
            yes: derived_yes,
            derived_known,
            derived_yes,
            answers: Vec::new(),
            trace: Vec::new(),
            state: State::Asking(0),
        };
        session.refresh();
        session
    }

    /// Recomputes every rule's truth and the state.
    fn refresh(&mut self) {
        for (slot, &ri) in self.status.iter_mut().zip(&self.rules) {
            *slot = self.protocol.rules[ri].cond.eval(&self.known, &self.yes);
        }
        let mut relevant = FindingSet::EMPTY;
        for (k, &ri) in self.rules.iter().enumerate() {
            match self.status[k] {
                Tri::False => {}
                Tri::True => {
                    if relevant.is_empty() {
                        self.state = State::Decided(ri);
                        return;
                    }
                    break;
                }
                Tri::Unknown => {
                    let open = self.protocol.rules[ri]
                        .cond
                        .findings()
                        .difference(&self.known);
                    relevant = relevant.union(&open);
                }
            }
        }
        // Validation guarantees that an undecided protocol always has an open question: every
        // finding a rule uses is asked or derived, and every path ends in a rule.
        let next = self
            .protocol
            .questions
            .iter()
            .position(|q| relevant.contains(q.finding))
            .unwrap_or(0);
        self.state = State::Asking(next);
    }

    /// The protocol being followed.
    pub fn protocol(&self) -> &Protocol {
        &self.protocol
    }

    /// The caller's data.
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// The next question, or `None` when a rule has decided.
    pub fn next_question(&self) -> Option<Question<'_>> {
        match self.state {
            State::Decided(_) => None,
            State::Asking(i) => {
                let q = &self.protocol.questions[i];
                Some(Question {
                    finding: &q.code,
                    text: &q.text,
                    why: &q.why,
                    file: &q.source,
                    line: q.line,
                })
            }
        }
    }

    pub(crate) fn current_finding(&self) -> Option<FindingId> {
        match self.state {
            State::Decided(_) => None,
            State::Asking(i) => Some(self.protocol.questions[i].finding),
        }
    }

    /// True when a rule has decided.
    pub fn is_decided(&self) -> bool {
        matches!(self.state, State::Decided(_))
    }

    /// Answers the current question: `present` is true when the caller says "sí".
    /// Answering another finding than the current question's, an unknown finding, or after
    /// the decision is an error and changes nothing.
    pub fn answer(&mut self, finding: &str, present: bool) -> Result<(), AnswerError> {
        let Some(id) = self.protocol.vocabulary.id(finding) else {
            return Err(AnswerError::UnknownFinding(finding.to_owned()));
        };
        self.answer_id(id, present)
    }

    pub(crate) fn answer_id(&mut self, id: FindingId, present: bool) -> Result<(), AnswerError> {
        let current = match self.state {
            State::Decided(rule) => {
                return Err(AnswerError::AlreadyDecided {
                    rule: self.protocol.rules[rule].id.clone(),
                });
            }
            State::Asking(i) => i,
        };
        let question = &self.protocol.questions[current];
        if question.finding != id {
            return Err(AnswerError::OutOfOrder {
                expected: question.code.clone(),
                given: self.protocol.vocabulary.code(id).to_owned(),
            });
        }
        let before = self.status.clone();
        self.known.insert(id);
        if present {
            self.yes.insert(id);
        }
        self.answers.push((id, present));
        self.refresh();
        let effect = self.describe_effect(&before);
        let question = &self.protocol.questions[current];
        self.trace.push(TraceStep {
            finding: question.code.clone(),
            question: question.text.clone(),
            answer: present,
            effect,
        });
        Ok(())
    }

    fn describe_effect(&self, before: &[Tri]) -> String {
        let rules = &self.protocol.rules;
        if let State::Decided(ri) = self.state {
            let rule = &rules[ri];
            let outcome = &self.protocol.outcomes[rule.outcome];
            return format!(
                "Decide «{}» (nivel {}, {}): {}",
                rule.id, outcome.level, outcome.disposition, rule.reason
            );
        }
        let mut satisfied = Vec::new();
        let mut ruled_out = Vec::new();
        for (k, &ri) in self.rules.iter().enumerate() {
            if before[k] == self.status[k] {
                continue;
            }
            match self.status[k] {
                Tri::True => satisfied.push(ri),
                Tri::False => ruled_out.push(ri),
                Tri::Unknown => {}
            }
        }
        let mut parts = Vec::new();
        if !satisfied.is_empty() {
            let names: Vec<_> = satisfied
                .iter()
                .map(|&ri| {
                    let level = self.protocol.outcomes[rules[ri].outcome].level;
                    format!("«{}» (nivel {level})", rules[ri].id)
                })
                .collect();
            parts.push(format!(
                "Cumple {}; faltan preguntas para descartar reglas más urgentes",
                names.join(", ")
            ));
        }
        if !ruled_out.is_empty() {
            let names: Vec<_> = ruled_out
                .iter()
                .map(|&ri| format!("«{}»", rules[ri].id))
                .collect();
            parts.push(format!("Descarta {}", names.join(", ")));
        }
        if parts.is_empty() {
            "Sin efecto todavía: otras preguntas deciden".to_owned()
        } else {
            parts.join("; ")
        }
    }

    /// Takes back the last answer (the operator misheard); returns its finding.
    pub fn undo(&mut self) -> Option<String> {
        let (id, _) = self.answers.pop()?;
        self.trace.pop();
        self.known = self.derived_known;
        self.yes = self.derived_yes;
        for &(f, present) in &self.answers {
            self.known.insert(f);
            if present {
                self.yes.insert(f);
            }
        }
        self.refresh();
        Some(self.protocol.vocabulary.code(id).to_owned())
    }

    /// The questions asked so far, their answers and effects.
    pub fn trace(&self) -> &[TraceStep] {
        &self.trace
    }

    /// The outcome, once a rule has decided.
    pub fn outcome(&self) -> Result<Outcome, NotDecided> {
        let ri = match self.state {
            State::Decided(ri) => ri,
            State::Asking(qi) => {
                return Err(NotDecided {
                    next: self.protocol.questions[qi].code.clone(),
                });
            }
        };
        let rule = &self.protocol.rules[ri];
        let o = &self.protocol.outcomes[rule.outcome];
        Ok(Outcome {
            complaint: self.protocol.reference.id.clone(),
            protocol: self.protocol.reference.clone(),
            vital_screen: self.protocol.vital_screen.clone(),
            caller: self.caller,
            computed: Determination {
                level: o.level,
                disposition: o.disposition,
                route: o.route.for_caller(&self.caller),
                ambulance: o.disposition.ambulance(),
                summary: o.summary.clone(),
                instructions: o.instructions.clone(),
                warning_signs: o.warning_signs.clone(),
                rule: DecidingRule {
                    id: rule.id.clone(),
                    reason: rule.reason.clone(),
                    file: rule.file.to_string(),
                    line: rule.line,
                },
            },
            trace: self.trace.clone(),
            operator_override: None,
        })
    }
}
