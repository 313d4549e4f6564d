//! The outcome of a triage: what to do, why (the trace), and the operator's override.

use serde::{Deserialize, Serialize};

use crate::caller::Caller;
use crate::codes::{AmbulanceType, Disposition, Level, Route};
use crate::protocol::ProtocolRef;

/// The rule that decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecidingRule {
    /// `protocol.rule` (e.g. `dolor_toracico.sca_probable`).
    pub id: String,
    /// Why this rule leads to its outcome (Spanish).
    pub reason: String,
    /// The protocol file and line where the rule is written.
    pub file: String,
    /// 1-based line.
    pub line: usize,
}

/// One question asked, its answer and what it did to the rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceStep {
    /// The finding asked about.
    pub finding: String,
    /// The question as read to the caller (Spanish).
    pub question: String,
    /// `true` = sí (the finding is present).
    pub answer: bool,
    /// What the answer did (Spanish): the rule it decided, the rules it satisfied or ruled out.
    pub effect: String,
}

/// What the protocol decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Determination {
    /// Resolución 5596 level.
    pub level: Level,
    /// Disposition.
    pub disposition: Disposition,
    /// Specialty route, if any.
    pub route: Option<Route>,
    /// Ambulance type, when the disposition is an ambulance.
    pub ambulance: Option<AmbulanceType>,
    /// Short summary for consoles (Spanish).
    pub summary: String,
    /// Instructions to read to the caller now (Spanish): pre-arrival or self-care.
    pub instructions: Vec<String>,
    /// When to call back (Spanish); empty for ambulance and emergency-department outcomes.
    pub warning_signs: Vec<String>,
    /// The rule that decided.
    pub rule: DecidingRule,
}

/// Up (more urgent), down (less urgent) or sideways (same urgency, other route).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum OverrideDirection {
    /// More urgent in level or disposition, less urgent in neither.
    Up,
    /// Less urgent in level or disposition.
    Down,
    /// Same level and disposition, different route.
    Sideways,
}

/// What the operator asks to change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideRequest {
    /// New level.
    pub level: Level,
    /// New disposition.
    pub disposition: Disposition,
    /// New route (or none).
    pub route: Option<Route>,
    /// Why; mandatory unless the change is upward.
    pub reason: Option<String>,
}

/// The operator's override, kept beside the computed determination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorOverride {
    /// Level chosen by the operator.
    pub level: Level,
    /// Disposition chosen by the operator.
    pub disposition: Disposition,
    /// Route chosen by the operator.
    pub route: Option<Route>,
    /// Ambulance type, when the disposition is an ambulance.
    pub ambulance: Option<AmbulanceType>,
    /// Relative to the computed determination.
    pub direction: OverrideDirection,
    /// The operator's reason (always present for `down` and `sideways`).
    pub reason: Option<String>,
}

/// Why an override was refused (Spanish: the operator reads it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverrideError {
    /// Same level, disposition and route as computed.
    #[error("el ajuste no cambia nada: nivel, disposición y ruta son los calculados")]
    NoChange,
    /// Downward or sideways without a reason.
    #[error(
        "bajar la urgencia (de nivel {from_level} / {from_disposition} a nivel {to_level} / {to_disposition}) o cambiar la ruta exige un motivo"
    )]
    ReasonRequired {
        /// Computed level.
        from_level: Level,
        /// Computed disposition.
        from_disposition: Disposition,
        /// Requested level.
        to_level: Level,
        /// Requested disposition.
        to_disposition: Disposition,
    },
    /// A level that does not fit the disposition.
    #[error(
        "el nivel {level} no corresponde a la disposición {disposition} (permitidos: {allowed})"
    )]
    LevelDoesNotFitDisposition {
        /// Requested level.
        level: Level,
        /// Requested disposition.
        disposition: Disposition,
        /// Allowed levels, e.g. `"I, II"`.
        allowed: String,
    },
}

/// The outcome record of one triage: caller, protocol (id, version, content hash), the
/// computed determination, the full trace and the operator's override if any. The
/// accessors (`level()`, `disposition()`, …) give the effective values (the override when
/// there is one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    /// Chief complaint code.
    pub complaint: String,
    /// The complaint's protocol file.
    pub protocol: ProtocolRef,
    /// The universal vital-threat file.
    pub vital_screen: ProtocolRef,
    /// The caller's data.
    pub caller: Caller,
    /// What the protocol decided.
    pub computed: Determination,
    /// Questions, answers and effects, in order.
    pub trace: Vec<TraceStep>,
    /// The operator's override.
    pub operator_override: Option<OperatorOverride>,
}

impl Outcome {
    /// Effective level.
    pub fn level(&self) -> Level {
        self.operator_override
            .as_ref()
            .map_or(self.computed.level, |o| o.level)
    }

    /// Effective disposition.
    pub fn disposition(&self) -> Disposition {
        self.operator_override
            .as_ref()
            .map_or(self.computed.disposition, |o| o.disposition)
    }

    /// Effective route.
    pub fn route(&self) -> Option<Route> {
        self.operator_override
            .as_ref()
            .map_or(self.computed.route, |o| o.route)
    }

    /// Effective ambulance type.
    pub fn ambulance(&self) -> Option<AmbulanceType> {
        self.disposition().ambulance()
    }

    /// `id@version` of the complaint's protocol.
    pub fn protocol_label(&self) -> String {
        self.protocol.label()
    }

    /// Protocols with their content hashes, for the record:
    /// `dolor_toracico@1.0.0 sha256:… + amenazas_vitales@1.0.0 sha256:…`.
    pub fn protocol_record(&self) -> String {
        format!(
            "{} sha256:{} + {} sha256:{}",
            self.protocol.label(),
            self.protocol.sha256,
            self.vital_screen.label(),
            self.vital_screen.sha256
        )
    }

    /// Short Spanish summary of the effective outcome.
    pub fn summary(&self) -> String {
        match &self.operator_override {
            None => self.computed.summary.clone(),
            Some(o) => format!(
                "Ajustado por el operador a nivel {} – {}{} (protocolo: nivel {} – {}). {}",
                o.level,
                o.disposition.label_es(),
                o.reason
                    .as_ref()
                    .map(|r| format!(", motivo: {r}"))
                    .unwrap_or_default(),
                self.computed.level,
                self.computed.disposition.label_es(),
                self.computed.summary
            ),
        }
    }

    /// Records an operator override. Upward changes (more urgent level or disposition, less
    /// urgent in neither) need no reason; anything else needs one. The computed
    /// determination is kept; a new override replaces the previous one and is always judged
    /// against the computed determination.
    pub fn apply_override(&mut self, request: OverrideRequest) -> Result<(), OverrideError> {
        let OverrideRequest {
            level,
            disposition,
            route,
            reason,
        } = request;
        if !disposition.allowed_levels().contains(&level) {
            let allowed: Vec<_> = disposition
                .allowed_levels()
                .iter()
                .map(|l| l.code())
                .collect();
            return Err(OverrideError::LevelDoesNotFitDisposition {
                level,
                disposition,
                allowed: allowed.join(", "),
            });
        }
        let from = &self.computed;
        let level_up = level.is_more_urgent_than(from.level);
        let level_down = from.level.is_more_urgent_than(level);
        let disp_up = disposition.rank() < from.disposition.rank();
        let disp_down = disposition.rank() > from.disposition.rank();
        let direction = if level_down || disp_down {
            OverrideDirection::Down
        } else if level_up || disp_up {
            OverrideDirection::Up
        } else if route != from.route {
            OverrideDirection::Sideways
        } else {
            return Err(OverrideError::NoChange);
        };
        let reason = reason
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty());
        if direction != OverrideDirection::Up && reason.is_none() {
            return Err(OverrideError::ReasonRequired {
                from_level: from.level,
                from_disposition: from.disposition,
                to_level: level,
                to_disposition: disposition,
            });
        }
        self.operator_override = Some(OperatorOverride {
            level,
            disposition,
            route,
            ambulance: disposition.ambulance(),
            direction,
            reason,
        });
        Ok(())
    }
}
