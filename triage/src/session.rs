//! One triage conversation: the operator asks the next question, records the answer, and
//! reads the outcome when a rule decides.

use std::sync::Arc;

use serde::Serialize;

use crate::caller::Caller;
use crate::outcome::{DecidingRule, Determination, Outcome, TraceStep};
use crate::protocol::{Protocol, Tri};
use crate::vocabulary::{Derivation, FindingId, FindingSet};

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

/// One answered question, kept compact; its Spanish effect is written when the trace is
/// read.
#[derive(Debug, Clone)]
struct Step {
    /// Index in the protocol's questions.
    question: usize,
    answer: bool,
    /// The rule that decided with this answer.
    decided: Option<usize>,
    /// Rules this answer made true (without deciding) or false.
    satisfied: Vec<usize>,
    ruled_out: Vec<usize>,
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
    steps: Vec<Step>,
    state: State,
}

impl Session {
    pub(crate) fn new(protocol: Arc<Protocol>, caller: Caller) -> Self {
        let rules = protocol.rules_for(&caller);
        let mut derived_known = FindingSet::EMPTY;
        let mut derived_yes = FindingSet::EMPTY;
        for &(id, derivation) in protocol.vocabulary.derived() {
            derived_known.insert(id);
            let present = match derivation {
                Derivation::AgeUnder3Months => caller.age_years() < 0.25,
                Derivation::Pregnancy => caller.is_pregnant(),
            };
            if present {
                derived_yes.insert(id);
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
            steps: Vec::new(),
            state: State::Asking(0),
        };
        session.reevaluate_all();
        session
    }

    /// Recomputes every rule's truth and the state (after undo, or at the start).
    fn reevaluate_all(&mut self) {
        for (slot, &ri) in self.status.iter_mut().zip(&self.rules) {
            *slot = self.protocol.rules[ri].cond.eval(&self.known, &self.yes);
        }
        self.update_state();
    }

    /// The state from the rules' truth: the first rule not false decides if it is true;
    /// otherwise the next question is the first, in written order, about a finding that an
    /// undecided rule before the first true one still needs.
    fn update_state(&mut self) {
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
                    let open = self.protocol.rules[ri].mentions.difference(&self.known);
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
        self.known.insert(id);
        if present {
            self.yes.insert(id);
        }
        // Only rules that mention the finding can change.
        let mut step = Step {
            question: current,
            answer: present,
            decided: None,
            satisfied: Vec::new(),
            ruled_out: Vec::new(),
        };
        for (k, &ri) in self.rules.iter().enumerate() {
            let rule = &self.protocol.rules[ri];
            if !rule.mentions.contains(id) {
                continue;
            }
            let now = rule.cond.eval(&self.known, &self.yes);
            if now != self.status[k] {
                self.status[k] = now;
                match now {
                    Tri::True => step.satisfied.push(ri),
                    Tri::False => step.ruled_out.push(ri),
                    Tri::Unknown => {}
                }
            }
        }
        self.update_state();
        if let State::Decided(ri) = self.state {
            step.decided = Some(ri);
        }
        self.steps.push(step);
        Ok(())
    }

    fn effect(&self, step: &Step) -> String {
        let rules = &self.protocol.rules;
        if let Some(ri) = step.decided {
            let rule = &rules[ri];
            let outcome = &self.protocol.outcomes[rule.outcome];
            return format!(
                "Decide «{}» (nivel {}, {}): {}",
                rule.id, outcome.level, outcome.disposition, rule.reason
            );
        }
        let mut parts = Vec::new();
        if !step.satisfied.is_empty() {
            let names: Vec<_> = step
                .satisfied
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
        if !step.ruled_out.is_empty() {
            let names: Vec<_> = step
                .ruled_out
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
        let step = self.steps.pop()?;
        self.known = self.derived_known;
        self.yes = self.derived_yes;
        for s in &self.steps {
            let finding = self.protocol.questions[s.question].finding;
            self.known.insert(finding);
            if s.answer {
                self.yes.insert(finding);
            }
        }
        self.reevaluate_all();
        Some(self.protocol.questions[step.question].code.clone())
    }

    /// Number of questions answered so far.
    pub fn answered(&self) -> usize {
        self.steps.len()
    }

    /// The questions asked so far, their answers and effects.
    pub fn trace(&self) -> Vec<TraceStep> {
        self.steps
            .iter()
            .map(|step| {
                let q = &self.protocol.questions[step.question];
                TraceStep {
                    finding: q.code.clone(),
                    question: q.text.clone(),
                    answer: step.answer,
                    effect: self.effect(step),
                }
            })
            .collect()
    }

    /// The trace as batch output needs it (finding, answer, effect).
    pub(crate) fn line_steps(&self) -> Vec<crate::batch::LineStep> {
        self.steps
            .iter()
            .map(|step| crate::batch::LineStep {
                finding: self.protocol.questions[step.question].code.clone(),
                answer: step.answer,
                effect: self.effect(step),
            })
            .collect()
    }

    /// The deciding rule's level, disposition and route, without building the full record.
    pub(crate) fn decision(
        &self,
    ) -> Option<(
        crate::codes::Level,
        crate::codes::Disposition,
        Option<crate::codes::Route>,
    )> {
        let State::Decided(ri) = self.state else {
            return None;
        };
        let o = &self.protocol.outcomes[self.protocol.rules[ri].outcome];
        Some((o.level, o.disposition, o.route.for_caller(&self.caller)))
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
            trace: self.trace(),
            operator_override: None,
        })
    }
}
