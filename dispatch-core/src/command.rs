//! Commands (imperative: what someone asks for), events (past tense: what happened) and
//! effects (what the shell must do in the world).
//!
//! Events are the durable record: the state is a pure fold of them, and replaying the log
//! rebuilds it exactly. Effects are not persisted; the shell executes them after the
//! events are stored. Timers that must survive a restart are re-derived from the state
//! ([`crate::Dispatch::pending_timers`]).

use maps::{Timestamp, TravelTime};
use serde::{Deserialize, Serialize};

use crate::facility::{FacilityRegistration, Occupancy};
use crate::fleet::{CrewStatus, GpsFix, OutOfServiceReason, UnitRegistration};
use crate::ids::{AssignmentId, FacilityId, IncidentId, OperatorId, TransferId, UnitId};
use crate::intake::{CallEvent, CallId, ReportedLocation};
use crate::model::{
    Assessment, AssignedBy, ClosureReason, ConfirmedLocation, IncidentKind, NonIncidentOutcome,
    Patient, Referral, Transfer,
};

/// Everything that can be asked of the dispatch core.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, tag = "command", rename_all = "snake_case")]
pub enum Command {
    // --- calls (from the telephony gateway and operators)
    /// A fact from the telephony gateway.
    RecordCallEvent {
        /// The event.
        event: CallEvent,
    },
    /// An operator takes a queued call; the gateway connects it to their position.
    TakeCall {
        /// The call.
        call: CallId,
        /// Who.
        operator: OperatorId,
        /// The operator position's SIP URI.
        position: String,
    },
    /// Closes a call that needs no incident.
    CloseCall {
        /// The call.
        call: CallId,
        /// Who.
        operator: OperatorId,
        /// What it was.
        outcome: NonIncidentOutcome,
    },

    // --- incidents
    /// Opens an incident, from a call or directly.
    OpenIncident {
        /// The call it comes from, if any.
        call: Option<CallId>,
        /// Who.
        operator: OperatorId,
        /// What happened, in the operator's words.
        summary: String,
        /// Address confirmed with the caller, if already known.
        location: Option<ConfirmedLocation>,
    },
    /// Opens a secondary transfer (facility → facility).
    RequestSecondaryTransfer {
        /// Who.
        operator: OperatorId,
        /// Sending facility.
        from: FacilityId,
        /// Clinical reason.
        reason: String,
        /// The patient.
        patient: Patient,
        /// What the patient needs.
        assessment: Assessment,
        /// Receiving facility, when already agreed.
        to: Option<FacilityId>,
    },
    /// Sets the confirmed address and point (the device location stays beside it).
    ConfirmLocation {
        /// The incident.
        incident: IncidentId,
        /// The location.
        location: ConfirmedLocation,
    },
    /// Adds a patient.
    RecordPatient {
        /// The incident.
        incident: IncidentId,
        /// The patient.
        patient: Patient,
    },
    /// Records the triage assessment; a non-ambulance disposition creates a referral.
    RecordAssessment {
        /// The incident.
        incident: IncidentId,
        /// The assessment.
        assessment: Assessment,
    },
    /// Offers the incident to a unit.
    AssignUnit {
        /// The incident.
        incident: IncidentId,
        /// The unit.
        unit: UnitId,
        /// Who.
        operator: OperatorId,
    },
    /// Stands a committed unit down.
    CancelAssignment {
        /// The incident.
        incident: IncidentId,
        /// The unit.
        unit: UnitId,
        /// Why.
        reason: String,
    },
    /// Sets the regulated destination.
    ChooseDestination {
        /// The incident.
        incident: IncidentId,
        /// The facility.
        facility: FacilityId,
    },
    /// Closes an incident that holds no unit.
    CloseIncident {
        /// The incident.
        incident: IncidentId,
        /// Why.
        reason: ClosureReason,
    },

    // --- crews
    /// The crew accepts an offer.
    AcceptAssignment {
        /// The unit.
        unit: UnitId,
        /// The offer.
        assignment: AssignmentId,
    },
    /// The crew declines an offer.
    DeclineAssignment {
        /// The unit.
        unit: UnitId,
        /// The offer.
        assignment: AssignmentId,
        /// Why.
        reason: String,
    },
    /// A status tap.
    ReportStatus {
        /// The unit.
        unit: UnitId,
        /// The new status.
        status: CrewStatus,
    },
    /// A GPS fix.
    ReportPosition {
        /// The unit.
        unit: UnitId,
        /// The fix.
        fix: GpsFix,
    },

    // --- timers (scheduled by the shell on the engine's clock)
    /// An offer's acceptance deadline passed.
    AssignmentDeadlinePassed {
        /// The unit.
        unit: UnitId,
        /// The offer.
        assignment: AssignmentId,
    },

    /// A unit's GPS watch fell due: alert if a committed unit stopped reporting.
    CheckGps {
        /// The unit.
        unit: UnitId,
    },

    // --- fleet and facilities (administration)
    /// Registers a unit.
    RegisterUnit {
        /// Registration.
        registration: UnitRegistration,
    },
    /// Takes a free unit out of service.
    SetOutOfService {
        /// The unit.
        unit: UnitId,
        /// Why.
        reason: OutOfServiceReason,
    },
    /// Returns an out-of-service unit to service.
    ReturnToService {
        /// The unit.
        unit: UnitId,
    },
    /// Registers an emergency department.
    RegisterFacility {
        /// Registration.
        registration: FacilityRegistration,
    },
    /// An occupancy report from a facility.
    ReportOccupancy {
        /// The facility.
        facility: FacilityId,
        /// The report.
        occupancy: Occupancy,
    },
    /// Puts a facility on diversion.
    StartDiversion {
        /// The facility.
        facility: FacilityId,
        /// Why.
        reason: String,
    },
    /// Ends a diversion.
    EndDiversion {
        /// The facility.
        facility: FacilityId,
    },
}

/// Everything that can happen. Applying an event never fails on a consistent log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A call entered the queue.
    CallOffered {
        /// The gateway's event (an `Offered`).
        call: crate::model::Call,
    },
    /// An operator took a call.
    CallTaken {
        /// The call.
        call: CallId,
        /// Who.
        operator: OperatorId,
        /// Their position.
        position: String,
    },
    /// Caller and operator connected.
    CallConnected {
        /// The call.
        call: CallId,
    },
    /// The operator position did not answer; the call waits in the queue again.
    CallReturnedToQueue {
        /// The call.
        call: CallId,
        /// Why.
        reason: String,
    },
    /// The caller hung up while queued.
    CallAbandoned {
        /// The call.
        call: CallId,
    },
    /// Nobody took the call within the gateway's maximum time in queue; the carrier was
    /// told to route it to `to` (or elsewhere, when `None`).
    CallOverflowed {
        /// The call.
        call: CallId,
        /// The overflow destination given to the carrier.
        to: Option<String>,
    },
    /// The conversation ended.
    CallEnded {
        /// The call.
        call: CallId,
    },
    /// A call closed without incident.
    CallClosed {
        /// The call.
        call: CallId,
        /// What it was.
        outcome: NonIncidentOutcome,
    },
    /// An incident was opened.
    IncidentOpened {
        /// The new incident's id.
        incident: IncidentId,
        /// Primary or secondary.
        kind: IncidentKind,
        /// The call, if any.
        call: Option<CallId>,
        /// Who.
        operator: OperatorId,
        /// Summary.
        summary: String,
        /// Device location copied from the call.
        reported_location: ReportedLocation,
    },
    /// The location was confirmed.
    LocationConfirmed {
        /// The incident.
        incident: IncidentId,
        /// The location.
        location: ConfirmedLocation,
    },
    /// A patient was added.
    PatientRecorded {
        /// The incident.
        incident: IncidentId,
        /// The patient.
        patient: Patient,
    },
    /// Triage assessed the incident.
    Assessed {
        /// The incident.
        incident: IncidentId,
        /// The assessment.
        assessment: Assessment,
    },
    /// A referral was created.
    ReferralCreated {
        /// The referral.
        referral: Referral,
    },
    /// A unit was offered the incident.
    UnitAssigned {
        /// The incident.
        incident: IncidentId,
        /// The unit.
        unit: UnitId,
        /// The offer.
        assignment: AssignmentId,
        /// Who decided.
        by: AssignedBy,
        /// ETA at the time, if computed.
        eta: Option<TravelTime>,
        /// Acceptance deadline.
        accept_by: Timestamp,
    },
    /// The crew accepted.
    AssignmentAccepted {
        /// The unit.
        unit: UnitId,
        /// The offer.
        assignment: AssignmentId,
    },
    /// The crew declined.
    AssignmentDeclined {
        /// The unit.
        unit: UnitId,
        /// The offer.
        assignment: AssignmentId,
        /// Why.
        reason: String,
    },
    /// The crew did not accept in time.
    AssignmentExpired {
        /// The unit.
        unit: UnitId,
        /// The offer.
        assignment: AssignmentId,
    },
    /// An operator stood a unit down.
    AssignmentCancelled {
        /// The unit.
        unit: UnitId,
        /// The incident.
        incident: IncidentId,
        /// Why.
        reason: String,
    },
    /// No assignable unit was left to escalate to.
    EscalationExhausted {
        /// The incident.
        incident: IncidentId,
    },
    /// The crew left for the scene.
    UnitEnRoute {
        /// The unit.
        unit: UnitId,
    },
    /// The crew arrived at the scene.
    UnitOnScene {
        /// The unit.
        unit: UnitId,
    },
    /// A transfer started under a CRUE code.
    TransferStarted {
        /// The transfer (complete record so far).
        transfer: Box<Transfer>,
    },
    /// Arrived at the destination.
    UnitAtHospital {
        /// The unit.
        unit: UnitId,
    },
    /// Patient handed over; the transfer record is closed.
    TransferCompleted {
        /// The transfer.
        transfer: TransferId,
    },
    /// The unit left the incident without transport.
    UnitCleared {
        /// The unit.
        unit: UnitId,
        /// Why.
        reason: String,
    },
    /// The unit is free again.
    UnitAvailable {
        /// The unit.
        unit: UnitId,
    },
    /// A GPS fix was accepted.
    PositionRecorded {
        /// The unit.
        unit: UnitId,
        /// The fix.
        fix: GpsFix,
    },
    /// The regulated destination was chosen.
    DestinationChosen {
        /// The incident.
        incident: IncidentId,
        /// The facility.
        facility: FacilityId,
    },
    /// The incident was closed.
    IncidentClosed {
        /// The incident.
        incident: IncidentId,
        /// Why.
        reason: ClosureReason,
    },
    /// A unit was registered.
    UnitRegistered {
        /// Registration.
        registration: UnitRegistration,
    },
    /// A unit went out of service.
    UnitOutOfService {
        /// The unit.
        unit: UnitId,
        /// Why.
        reason: OutOfServiceReason,
    },
    /// A unit returned to service.
    UnitReturnedToService {
        /// The unit.
        unit: UnitId,
    },
    /// A facility was registered.
    FacilityRegistered {
        /// Registration.
        registration: FacilityRegistration,
    },
    /// A facility reported occupancy.
    OccupancyReported {
        /// The facility.
        facility: FacilityId,
        /// The report.
        occupancy: Occupancy,
    },
    /// A facility went on diversion.
    DiversionStarted {
        /// The facility.
        facility: FacilityId,
        /// Why.
        reason: String,
    },
    /// A diversion ended.
    DiversionEnded {
        /// The facility.
        facility: FacilityId,
    },
}

impl Event {
    /// The stable snake-case name of the event (as serialised in the `event` tag).
    pub fn name(&self) -> &'static str {
        match self {
            Self::CallOffered { .. } => "call_offered",
            Self::CallTaken { .. } => "call_taken",
            Self::CallConnected { .. } => "call_connected",
            Self::CallReturnedToQueue { .. } => "call_returned_to_queue",
            Self::CallAbandoned { .. } => "call_abandoned",
            Self::CallOverflowed { .. } => "call_overflowed",
            Self::CallEnded { .. } => "call_ended",
            Self::CallClosed { .. } => "call_closed",
            Self::IncidentOpened { .. } => "incident_opened",
            Self::LocationConfirmed { .. } => "location_confirmed",
            Self::PatientRecorded { .. } => "patient_recorded",
            Self::Assessed { .. } => "assessed",
            Self::ReferralCreated { .. } => "referral_created",
            Self::UnitAssigned { .. } => "unit_assigned",
            Self::AssignmentAccepted { .. } => "assignment_accepted",
            Self::AssignmentDeclined { .. } => "assignment_declined",
            Self::AssignmentExpired { .. } => "assignment_expired",
            Self::AssignmentCancelled { .. } => "assignment_cancelled",
            Self::EscalationExhausted { .. } => "escalation_exhausted",
            Self::UnitEnRoute { .. } => "unit_en_route",
            Self::UnitOnScene { .. } => "unit_on_scene",
            Self::TransferStarted { .. } => "transfer_started",
            Self::UnitAtHospital { .. } => "unit_at_hospital",
            Self::TransferCompleted { .. } => "transfer_completed",
            Self::UnitCleared { .. } => "unit_cleared",
            Self::UnitAvailable { .. } => "unit_available",
            Self::PositionRecorded { .. } => "position_recorded",
            Self::DestinationChosen { .. } => "destination_chosen",
            Self::IncidentClosed { .. } => "incident_closed",
            Self::UnitRegistered { .. } => "unit_registered",
            Self::UnitOutOfService { .. } => "unit_out_of_service",
            Self::UnitReturnedToService { .. } => "unit_returned_to_service",
            Self::FacilityRegistered { .. } => "facility_registered",
            Self::OccupancyReported { .. } => "occupancy_reported",
            Self::DiversionStarted { .. } => "diversion_started",
            Self::DiversionEnded { .. } => "diversion_ended",
        }
    }
}

/// A timer the shell must keep; it fires by sending the matching command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, tag = "timer", rename_all = "snake_case")]
pub enum Timer {
    /// Sends [`Command::AssignmentDeadlinePassed`] at `at`.
    AssignmentDeadline {
        /// The unit.
        unit: UnitId,
        /// The offer.
        assignment: AssignmentId,
        /// When it fires.
        at: Timestamp,
    },
    /// Sends [`Command::CheckGps`] at `at`: a unit serving an incident must keep reporting
    /// its position. One watch per unit; a newer one replaces the older.
    GpsWatch {
        /// The unit.
        unit: UnitId,
        /// When it fires.
        at: Timestamp,
    },
}

impl Timer {
    /// When the timer fires.
    pub fn at(&self) -> Timestamp {
        match self {
            Self::AssignmentDeadline { at, .. } | Self::GpsWatch { at, .. } => *at,
        }
    }

    /// A stable identity: a timer armed again with the same identity replaces the older.
    pub fn identity(&self) -> String {
        match self {
            Self::AssignmentDeadline {
                unit, assignment, ..
            } => format!("deadline:{unit}:{assignment}"),
            Self::GpsWatch { unit, .. } => format!("gps:{unit}"),
        }
    }

    /// The command the timer sends when it fires.
    pub fn command(&self) -> Command {
        match self {
            Self::AssignmentDeadline {
                unit, assignment, ..
            } => Command::AssignmentDeadlinePassed {
                unit: unit.clone(),
                assignment: *assignment,
            },
            Self::GpsWatch { unit, .. } => Command::CheckGps { unit: unit.clone() },
        }
    }
}

/// Work the shell does in the world after the events are stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, tag = "effect", rename_all = "snake_case")]
pub enum Effect {
    /// Connect a taken call to the operator's position (telephony gateway).
    ConnectCall {
        /// The call.
        call: CallId,
        /// SIP URI of the position.
        position: String,
    },
    /// Push an offer to the crew's tablet.
    NotifyCrew {
        /// The unit.
        unit: UnitId,
        /// The incident.
        incident: IncidentId,
        /// The offer.
        assignment: AssignmentId,
    },
    /// Keep a timer.
    Schedule(Timer),
    /// Pre-alert the destination that a patient is coming.
    PreAlertFacility {
        /// The facility.
        facility: FacilityId,
        /// The incident.
        incident: IncidentId,
    },
    /// Feed live speeds: the unit drove from one fix to the next (map-match and observe).
    ObserveTravel {
        /// The unit.
        unit: UnitId,
        /// Previous fix.
        from: GpsFix,
        /// New fix.
        to: GpsFix,
        /// The unit was driving to an incident or carrying a patient (sirens on): faster
        /// than the traffic, so its speed is scaled back before it becomes a live speed.
        emergency: bool,
    },
    /// Send the closed transfer record to the patient's EPS (through the outbox).
    EmitTransferRecord {
        /// The record as it stands once the patient is handed over (the shell stores it
        /// with the events, before they are applied).
        transfer: Box<Transfer>,
    },
    /// Send a referral to its network (through the outbox).
    SendReferral {
        /// The referral, as created with the effect.
        referral: Box<Referral>,
    },
    /// Tell operators something needs their attention now.
    AlertOperators {
        /// The incident.
        incident: IncidentId,
        /// What, in Spanish.
        message: String,
    },
}

/// Why a command was refused. Refusals change nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    tag = "code",
    content = "detail",
    rename_all = "snake_case"
)]
pub enum Rejection {
    /// An id that does not exist.
    #[error("unknown {kind} {id}")]
    Unknown {
        /// `"call"`, `"incident"`, `"unit"`, `"facility"`.
        kind: &'static str,
        /// The id given.
        id: String,
    },
    /// An id that already exists.
    #[error("{kind} {id} already exists")]
    Duplicate {
        /// What.
        kind: &'static str,
        /// The id given.
        id: String,
    },
    /// The command does not fit the current state.
    #[error("{0}")]
    InvalidState(String),
    /// The input is malformed or implausible.
    #[error("{0}")]
    InvalidInput(String),
}

impl Rejection {
    /// A stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unknown { .. } => "unknown",
            Self::Duplicate { .. } => "duplicate",
            Self::InvalidState(_) => "invalid_state",
            Self::InvalidInput(_) => "invalid_input",
        }
    }
}
