//! The records the dispatch core keeps: calls, incidents, patients, transfers, referrals.

use std::collections::BTreeSet;

use maps::{GeoPoint, Meters, Timestamp, TravelTime};
use serde::{Deserialize, Serialize};

use crate::crue::AuthorizationCode;
use crate::facility::Capability;
use crate::fleet::UnitKind;
use crate::ids::{
    AssignmentId, EpsCode, FacilityId, IncidentId, OperatorId, ReferralId, TransferId, UnitId,
};
use crate::intake::{CallChannel, CallId, CallerIdentity, ReportedLocation};
use crate::privacy::Sensitive;

// ---------------------------------------------------------------------------------------
// Calls

/// What became of a call that did not open an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "snake_case")]
pub enum NonIncidentOutcome {
    /// Information or orientation only.
    Information,
    /// Prank or abusive call.
    Prank,
    /// About an incident already open.
    Duplicate {
        /// The incident it duplicates.
        incident: IncidentId,
    },
    /// Anything else, described.
    Other {
        /// Description.
        detail: String,
    },
}

/// Where a call is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum CallStatus {
    /// Waiting for an operator.
    Queued,
    /// An operator took it; the gateway is connecting it.
    Taken,
    /// Caller and operator are talking.
    Connected,
    /// The caller hung up before being answered.
    Abandoned,
    /// Unanswered within the gateway's maximum time in queue: handed back to the carrier
    /// (redirected to the overflow destination, or refused as temporarily unavailable).
    Overflowed,
    /// Conversation over; awaiting the operator's closing of the call record if it has no
    /// incident yet.
    Ended,
    /// Closed: linked to an incident or with a non-incident outcome.
    Closed,
}

/// A call as the core records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Call {
    /// Id.
    pub id: CallId,
    /// SIP or webhook.
    pub channel: CallChannel,
    /// Who called.
    pub caller: CallerIdentity,
    /// Where the device said it was.
    pub location: ReportedLocation,
    /// Status.
    pub status: CallStatus,
    /// Queued at.
    pub offered_at: Timestamp,
    /// Taken by and when.
    pub taken: Option<(OperatorId, Timestamp)>,
    /// Operator position (SIP URI) the call was forwarded to.
    pub position: Option<String>,
    /// Connected at.
    pub connected_at: Option<Timestamp>,
    /// Abandoned, overflowed or ended at.
    pub ended_at: Option<Timestamp>,
    /// Incident opened from this call.
    pub incident: Option<IncidentId>,
    /// Outcome when it opened no incident.
    pub non_incident: Option<NonIncidentOutcome>,
}

// ---------------------------------------------------------------------------------------
// Patients

/// Colombian identity document types as coded in RIPS (`tipoDocumentoIdentificacion`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum DocumentKind {
    /// Cédula de ciudadanía.
    CC,
    /// Cédula de extranjería.
    CE,
    /// Carné diplomático.
    CD,
    /// Pasaporte.
    PA,
    /// Salvoconducto de permanencia.
    SC,
    /// Permiso especial de permanencia.
    PE,
    /// Registro civil.
    RC,
    /// Tarjeta de identidad.
    TI,
    /// Certificado de nacido vivo.
    CN,
    /// Adulto sin identificación.
    AS,
    /// Menor sin identificación.
    MS,
    /// Documento extranjero.
    DE,
    /// Permiso por protección temporal.
    PT,
    /// Sin identificación.
    SI,
}

impl DocumentKind {
    /// The RIPS code (`CC`, `TI`, …).
    pub fn code(self) -> &'static str {
        match self {
            Self::CC => "CC",
            Self::CE => "CE",
            Self::CD => "CD",
            Self::PA => "PA",
            Self::SC => "SC",
            Self::PE => "PE",
            Self::RC => "RC",
            Self::TI => "TI",
            Self::CN => "CN",
            Self::AS => "AS",
            Self::MS => "MS",
            Self::DE => "DE",
            Self::PT => "PT",
            Self::SI => "SI",
        }
    }
}

/// An identity document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatientDocument {
    /// Type.
    pub kind: DocumentKind,
    /// Number, as written.
    pub number: String,
}

/// Health-insurance regime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum Regime {
    /// Contributivo (76.0 % of Bogotá residents).
    Contributory,
    /// Subsidiado (22.1 %).
    Subsidised,
    /// Special or exception regimes (armed forces, teachers, …).
    Special,
}

/// The patient's insurer, which pays for the transfer. Dispatch never waits for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, tag = "status", rename_all = "snake_case")]
pub enum EpsAffiliation {
    /// Not yet known.
    Unknown,
    /// Affiliated to an EPS.
    Affiliated {
        /// The EPS.
        eps: EpsCode,
        /// Regime.
        regime: Regime,
    },
    /// Not insured: the public network (and the district) pays.
    Uninsured,
}

/// Sex as recorded for triage and RIPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Sex {
    /// Female.
    F,
    /// Male.
    M,
    /// Indeterminate / not stated.
    X,
}

/// A patient of an incident. Identifying fields are [`Sensitive`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Patient {
    /// Identity document, when given.
    pub document: Option<Sensitive<PatientDocument>>,
    /// Name, when given.
    pub name: Option<Sensitive<String>>,
    /// Age in years (fractional for infants), when known.
    pub age_years: Option<f64>,
    /// Sex, when known.
    pub sex: Option<Sex>,
    /// Insurer.
    pub eps: EpsAffiliation,
}

// ---------------------------------------------------------------------------------------
// Assessment (the result of triage, as dispatch needs it)

/// Dispatch priority, as Línea 123 records it (Crítica, Alta, Media, Baja), derived from the
/// Resolución 5596 triage level: I → critical, II → high, III → medium, IV–V → low.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum Priority {
    /// Crítica.
    Critical,
    /// Alta.
    High,
    /// Media.
    Medium,
    /// Baja.
    Low,
}

impl Priority {
    /// The priority of a Resolución 5596 level: I → critical, II → high, III → medium,
    /// IV–V (and anything else) → low.
    pub fn from_level(level: u8) -> Self {
        match level {
            1 => Self::Critical,
            2 => Self::High,
            3 => Self::Medium,
            _ => Self::Low,
        }
    }

    /// All priorities, most urgent first.
    pub const ALL: [Self; 4] = [Self::Critical, Self::High, Self::Medium, Self::Low];

    /// Spanish label.
    pub fn label_es(self) -> &'static str {
        match self {
            Self::Critical => "Crítica",
            Self::High => "Alta",
            Self::Medium => "Media",
            Self::Low => "Baja",
        }
    }
}

/// A non-ambulance modality the caller is oriented to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum ReferralKind {
    /// Go to the recommended emergency department by own means.
    EmergencyDepartmentOwnMeans,
    /// Priority consult the same day.
    PriorityConsult,
    /// Home visit.
    HomeVisit,
    /// Paediatric teleconsult.
    TeleconsultPaediatrics,
    /// Obstetric teleconsult.
    TeleconsultObstetrics,
    /// Psychology / mental-health teleconsult.
    TeleconsultPsychology,
    /// General-medicine teleconsult.
    TeleconsultGeneral,
    /// Scheduled consult in the patient's network.
    ScheduledConsult,
    /// Self-care advice with warning signs to call back.
    SelfCare,
}

/// Where the caller is oriented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "snake_case")]
pub enum Disposition {
    /// An ambulance of this kind, now.
    Ambulance {
        /// TAB or TAM.
        unit: UnitKind,
    },
    /// Another modality.
    Referral {
        /// Which.
        modality: ReferralKind,
    },
}

/// What dispatch needs to know from triage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assessment {
    /// Resolución 5596 level, 1 (I) to 5 (V).
    pub level: u8,
    /// Dispatch priority derived from the level.
    pub priority: Priority,
    /// Where the caller goes.
    pub disposition: Disposition,
    /// Capability the destination needs (from the specialty route), if any.
    pub capability: Option<Capability>,
    /// Specialty route code (`acv`, `sca`, …), if any.
    pub route: Option<String>,
    /// The protocol (`id@version`) and its content hash, for the record.
    pub protocol: String,
    /// Short summary for consoles (Spanish).
    pub summary: String,
    /// The full triage record (caller data, protocol hashes, trace, operator override)
    /// when the assessment came from a telephone triage; kept with the incident for audit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triage: Option<Box<triage::Outcome>>,
}

impl Assessment {
    /// The assessment a telephone triage produced, with its whole record.
    pub fn from_triage(outcome: &triage::Outcome) -> Self {
        let level = outcome.level().number();
        let referral = |modality| Disposition::Referral { modality };
        let disposition = match outcome.disposition() {
            triage::Disposition::AmbulanciaTam => Disposition::Ambulance {
                unit: crate::fleet::UnitKind::Tam,
            },
            triage::Disposition::AmbulanciaTab => Disposition::Ambulance {
                unit: crate::fleet::UnitKind::Tab,
            },
            triage::Disposition::UrgenciasPorSusMedios => {
                referral(ReferralKind::EmergencyDepartmentOwnMeans)
            }
            triage::Disposition::ConsultaPrioritaria => referral(ReferralKind::PriorityConsult),
            triage::Disposition::ConsultaDomiciliaria => referral(ReferralKind::HomeVisit),
            triage::Disposition::TeleconsultaPediatria => {
                referral(ReferralKind::TeleconsultPaediatrics)
            }
            triage::Disposition::TeleconsultaObstetricia => {
                referral(ReferralKind::TeleconsultObstetrics)
            }
            triage::Disposition::TeleconsultaPsicologia => {
                referral(ReferralKind::TeleconsultPsychology)
            }
            triage::Disposition::TeleconsultaGeneral => referral(ReferralKind::TeleconsultGeneral),
            triage::Disposition::ConsultaProgramada => referral(ReferralKind::ScheduledConsult),
            triage::Disposition::OrientacionAutocuidado => referral(ReferralKind::SelfCare),
        };
        let route = outcome.route();
        Self {
            level,
            priority: Priority::from_level(level),
            disposition,
            capability: route.map(capability_for_route),
            route: route.map(|r| r.code().to_owned()),
            protocol: outcome.protocol_record(),
            summary: outcome.summary(),
            triage: Some(Box::new(outcome.clone())),
        }
    }
}

/// The destination capability a specialty route needs.
pub fn capability_for_route(route: triage::Route) -> Capability {
    match route {
        triage::Route::Acv => Capability::Stroke,
        triage::Route::Sca => Capability::Coronary,
        triage::Route::Trauma => Capability::Trauma,
        triage::Route::MaternoPerinatal => Capability::Obstetric,
        triage::Route::Pediatria => Capability::Paediatric,
        triage::Route::SaludMental => Capability::MentalHealth,
        triage::Route::Intoxicacion => Capability::Toxicology,
        triage::Route::Violencias => Capability::ViolenceCare,
    }
}

// ---------------------------------------------------------------------------------------
// Incidents

/// The location dispatch works with: the address the operator confirmed with the caller,
/// geocoded. The device location from the call is kept beside it, never overwritten.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmedLocation {
    /// Address in Bogotá nomenclature, as confirmed (e.g. "Calle 45 # 13-20").
    pub address: String,
    /// Geocoded point.
    pub point: GeoPoint,
}

/// Primary (from a scene) or secondary (between facilities).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "snake_case")]
pub enum IncidentKind {
    /// Scene → emergency department.
    Primary,
    /// Facility → facility.
    Secondary {
        /// Sending facility.
        from: FacilityId,
        /// Clinical reason for the transfer.
        reason: String,
    },
}

/// Why an incident was closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "snake_case")]
pub enum ClosureReason {
    /// Every committed unit cleared (patient handed over or no transport needed).
    Completed,
    /// Oriented to a non-ambulance modality (referral created).
    Referred,
    /// Duplicate of another incident.
    Duplicate {
        /// The other incident.
        of: IncidentId,
    },
    /// Cancelled, with the operator's reason.
    Cancelled {
        /// Why.
        reason: String,
    },
}

/// Where an incident is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, tag = "status", rename_all = "snake_case")]
pub enum IncidentStatus {
    /// Received; being triaged.
    Open,
    /// Needs an ambulance; none committed.
    AwaitingUnit,
    /// At least one unit committed.
    UnitsCommitted,
    /// Oriented to another modality.
    Referred,
    /// Closed.
    Closed {
        /// Why.
        reason: ClosureReason,
    },
}

/// One offer of the incident to a unit, kept for the record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignmentRecord {
    /// Id.
    pub id: AssignmentId,
    /// Unit offered.
    pub unit: UnitId,
    /// Offered at.
    pub at: Timestamp,
    /// Who decided: an operator, or automatic escalation.
    pub by: AssignedBy,
    /// ETA when offered, if computed.
    pub eta: Option<TravelTime>,
    /// What happened to the offer.
    pub outcome: AssignmentOutcome,
    /// When the unit left for the scene under this offer.
    pub en_route_at: Option<Timestamp>,
    /// When it arrived at the scene.
    pub on_scene_at: Option<Timestamp>,
}

/// Who made an assignment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "snake_case")]
pub enum AssignedBy {
    /// An operator confirmed it.
    Operator {
        /// Who.
        operator: OperatorId,
    },
    /// Automatic escalation after a decline or an expired offer.
    Escalation,
}

/// The fate of an offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "snake_case")]
pub enum AssignmentOutcome {
    /// Waiting for the crew.
    Pending,
    /// Accepted at.
    Accepted {
        /// When.
        at: Timestamp,
    },
    /// Declined.
    Declined {
        /// When.
        at: Timestamp,
        /// Crew's reason.
        reason: String,
    },
    /// Not accepted in time.
    Expired {
        /// When.
        at: Timestamp,
    },
    /// Stood down by an operator.
    Cancelled {
        /// When.
        at: Timestamp,
        /// Why.
        reason: String,
    },
}

/// Timestamps of an incident's milestones (first occurrence), for KPIs and records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeline {
    /// The call entered the queue.
    pub call_offered: Option<Timestamp>,
    /// An operator took the call.
    pub call_answered: Option<Timestamp>,
    /// Incident opened.
    pub opened: Option<Timestamp>,
    /// First unit assigned.
    pub first_assigned: Option<Timestamp>,
    /// First unit en route.
    pub first_en_route: Option<Timestamp>,
    /// First unit on scene.
    pub first_on_scene: Option<Timestamp>,
    /// First transport started.
    pub transport_started: Option<Timestamp>,
    /// First arrival at hospital.
    pub at_hospital: Option<Timestamp>,
    /// First handover.
    pub handed_over: Option<Timestamp>,
    /// Closed.
    pub closed: Option<Timestamp>,
}

/// An incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Incident {
    /// Id.
    pub id: IncidentId,
    /// Primary or secondary.
    pub kind: IncidentKind,
    /// Call it came from, if any.
    pub call: Option<CallId>,
    /// Who opened it.
    pub opened_by: OperatorId,
    /// What the caller reported, in the operator's words.
    pub summary: String,
    /// Device location from the call (kept as reported).
    pub reported_location: ReportedLocation,
    /// Location confirmed with the caller.
    pub confirmed_location: Option<ConfirmedLocation>,
    /// Patients.
    pub patients: Vec<Patient>,
    /// Triage result, when complete.
    pub assessment: Option<Assessment>,
    /// Status.
    pub status: IncidentStatus,
    /// Units committed now.
    pub units: BTreeSet<UnitId>,
    /// Every offer made.
    pub assignments: Vec<AssignmentRecord>,
    /// Units that declined or let an offer expire; escalation skips them.
    pub declined: BTreeSet<UnitId>,
    /// Regulated destination, when chosen.
    pub destination: Option<FacilityId>,
    /// Transfers carried out.
    pub transfers: Vec<TransferId>,
    /// Referral, when oriented elsewhere.
    pub referral: Option<ReferralId>,
    /// Milestones.
    pub timeline: Timeline,
}

impl Incident {
    /// The point dispatch works with: the confirmed location, else the device position.
    pub fn dispatch_point(&self) -> Option<GeoPoint> {
        if let Some(c) = &self.confirmed_location {
            return Some(c.point);
        }
        match &self.reported_location {
            ReportedLocation::Reported(d) => d.position,
            ReportedLocation::Absent | ReportedLocation::Unusable { .. } => None,
        }
    }

    /// The ambulance kind the assessment asks for, if it asks for one.
    pub fn required_unit(&self) -> Option<UnitKind> {
        match self.assessment.as_ref()?.disposition {
            Disposition::Ambulance { unit } => Some(unit),
            Disposition::Referral { .. } => None,
        }
    }

    /// Dispatch priority, when assessed.
    pub fn priority(&self) -> Option<Priority> {
        self.assessment.as_ref().map(|a| a.priority)
    }

    /// Whether the incident is closed.
    pub fn is_closed(&self) -> bool {
        matches!(self.status, IncidentStatus::Closed { .. })
    }
}

// ---------------------------------------------------------------------------------------
// Transfers

/// Primary or secondary transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum TransferKind {
    /// Scene → emergency department.
    Primary,
    /// Facility → facility.
    Secondary,
}

/// Times of each interval of a transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferTimes {
    /// The call entered the queue (primary) or the request was made (secondary).
    pub requested: Option<Timestamp>,
    /// Unit assigned.
    pub assigned: Option<Timestamp>,
    /// Unit en route.
    pub en_route: Option<Timestamp>,
    /// Unit at the scene / sending facility.
    pub on_scene: Option<Timestamp>,
    /// Left with the patient.
    pub departed: Timestamp,
    /// Arrived at the destination.
    pub arrived: Option<Timestamp>,
    /// Patient handed over.
    pub handed_over: Option<Timestamp>,
}

/// A patient transfer under a CRUE authorisation code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transfer {
    /// Id.
    pub id: TransferId,
    /// CRUE authorisation code.
    pub code: AuthorizationCode,
    /// Primary or secondary.
    pub kind: TransferKind,
    /// Incident.
    pub incident: IncidentId,
    /// Unit.
    pub unit: UnitId,
    /// Its kind (billing differs for TAB and TAM).
    pub unit_kind: UnitKind,
    /// Its provider.
    pub provider: String,
    /// Crew on board.
    pub crew: Vec<Sensitive<String>>,
    /// Where the patient was picked up.
    pub origin: Option<GeoPoint>,
    /// Sending facility (secondary transfers).
    pub origin_facility: Option<FacilityId>,
    /// Destination.
    pub destination: FacilityId,
    /// The patient carried (first patient of the incident when several).
    pub patient: Option<Patient>,
    /// Interval times.
    pub times: TransferTimes,
    /// Distance driven to the scene, from GPS fixes.
    pub distance_to_scene: Meters,
    /// Distance driven with the patient, from GPS fixes.
    pub distance_with_patient: Meters,
    /// Handed over?
    pub completed: bool,
}

impl Transfer {
    /// Closes the record: the patient was handed over at `at`, after `driven_with_patient`.
    pub(crate) fn close(&mut self, at: Timestamp, driven_with_patient: Meters) {
        self.completed = true;
        self.times.handed_over = Some(at);
        self.distance_with_patient = driven_with_patient;
    }
}

// ---------------------------------------------------------------------------------------
// Referrals

/// Which network receives a referral.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "snake_case")]
pub enum CareNetwork {
    /// The patient's EPS network.
    Eps {
        /// The EPS.
        eps: EpsCode,
    },
    /// The public network (affiliation unknown or uninsured).
    Public,
}

impl CareNetwork {
    /// The network that serves (and pays for) a patient: their EPS when known, else the
    /// public network.
    pub fn for_patient(patient: Option<&Patient>) -> Self {
        match patient.map(|p| &p.eps) {
            Some(EpsAffiliation::Affiliated { eps, .. }) => Self::Eps { eps: eps.clone() },
            Some(EpsAffiliation::Unknown | EpsAffiliation::Uninsured) | None => Self::Public,
        }
    }
}

/// A referral to a non-ambulance modality.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Referral {
    /// Id.
    pub id: ReferralId,
    /// Incident.
    pub incident: IncidentId,
    /// Modality.
    pub kind: ReferralKind,
    /// Network.
    pub network: CareNetwork,
    /// Recommended emergency department when going by own means.
    pub facility: Option<FacilityId>,
    /// Created at.
    pub created_at: Timestamp,
}
