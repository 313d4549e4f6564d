//! The dispatch state machine.
//!
//! [`Dispatch::decide`] turns a command into events and effects **without changing
//! anything**; the shell stores the events, then calls [`Dispatch::apply`] for each, then
//! publishes them and executes the effects. Replaying stored events through `apply`
//! rebuilds the state exactly. [`Dispatch::execute`] does both steps at once for tests and
//! simulations.

use std::collections::{BTreeMap, BTreeSet};

use maps::{BoundingBox, GeoPoint, Meters, Speed, Timestamp, TravelTime};
use serde::{Deserialize, Serialize};

use crate::command::{Command, Effect, Event, Rejection, Timer};
use crate::crue::AuthorizationCode;
use crate::facility::{DestinationRanking, Facility, MAX_OCCUPANCY_PERCENT, rank_destinations};
use crate::fleet::{CrewStatus, GpsFix, Unit, UnitKind, UnitStatus};
use crate::ids::{AssignmentId, FacilityId, IncidentId, ReferralId, TransferId, UnitId};
use crate::intake::{CallEvent, CallId, ReportedLocation};
use crate::model::{
    AssignedBy, AssignmentOutcome, AssignmentRecord, Call, CallStatus, CareNetwork, ClosureReason,
    Disposition, Incident, IncidentKind, IncidentStatus, Priority, Referral, ReferralKind,
    Timeline, Transfer, TransferKind, TransferTimes,
};
use crate::recommend::{
    self, CoverageReport, DemandCell, TravelTimes, UnitQuery, UnitRecommendation,
};

/// Longest free text accepted in summaries, reasons and addresses.
pub const MAX_TEXT_LEN: usize = 2000;

/// Tunable rules of the regulation centre.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// How long a crew has to accept an offer before it escalates.
    pub acceptance_timeout: TravelTime,
    /// A GPS fix younger than this is the unit's position; older, its base.
    pub max_fix_age_for_position: TravelTime,
    /// Fixes stamped later than `now` + this are refused as "from the future".
    pub gps_future_tolerance: TravelTime,
    /// Fixes older than this on arrival are refused.
    pub gps_max_delay: TravelTime,
    /// Fixes implying a faster movement are kept as positions but not counted as distance
    /// driven (GPS jumps).
    pub max_plausible_speed: Speed,
    /// Where fixes, incidents and bases must lie.
    #[serde(skip)]
    pub region: BoundingBox,
    /// How many units and destinations a recommendation shows.
    pub recommendation_limit: usize,
    /// A unit serving an incident whose last fix is older than this raises an alert.
    pub gps_silence_alert: TravelTime,
    /// Closed incidents (with their transfers and referral) and finished calls leave the
    /// live state this long after they closed: the log keeps them for good, their outbox
    /// messages stay in the store for the feeds, and the live state — snapshots, KPIs,
    /// views — stays bounded.
    pub history_retention: TravelTime,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            acceptance_timeout: TravelTime::from_secs(90),
            max_fix_age_for_position: TravelTime::from_minutes(2),
            gps_future_tolerance: TravelTime::from_secs(30),
            gps_max_delay: TravelTime::from_minutes(10),
            max_plausible_speed: Speed::from_kmh(200.0).unwrap_or(Speed::COLOMBIA_URBAN_LIMIT),
            region: BoundingBox::BOGOTA,
            recommendation_limit: 5,
            gps_silence_alert: TravelTime::from_minutes(3),
            history_retention: TravelTime::from_minutes(7 * 24 * 60),
        }
    }
}

/// What a command decided: events to store, then effects to run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decision {
    /// Events, in order.
    pub events: Vec<Event>,
    /// Effects, in order.
    pub effects: Vec<Effect>,
}

/// A stored event that does not fit the state: the log is inconsistent or from another
/// system. Replay stops with this error rather than guessing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot apply event {event}: {reason}")]
pub struct ApplyError {
    /// The event's name.
    pub event: &'static str,
    /// What did not fit.
    pub reason: String,
}

/// The whole live state of the regulation centre. It serialises (serde) so that the shell
/// can keep snapshots and replay only the events after the latest one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dispatch {
    policy: Policy,
    calls: BTreeMap<CallId, Call>,
    incidents: BTreeMap<IncidentId, Incident>,
    units: BTreeMap<UnitId, Unit>,
    facilities: BTreeMap<FacilityId, Facility>,
    transfers: BTreeMap<TransferId, Transfer>,
    referrals: BTreeMap<ReferralId, Referral>,
    open_incidents: BTreeSet<IncidentId>,
    next_incident: u64,
    next_assignment: u64,
    next_transfer: u64,
    next_referral: u64,
    next_code: u64,
    /// Closed incidents and finished calls, by when they finished, oldest first: what leaves
    /// the live state once older than [`Policy::history_retention`].
    retiring: BTreeSet<(Timestamp, Retiring)>,
}

/// Something that leaves the live state after the retention time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
enum Retiring {
    Incident(IncidentId),
    Call(CallId),
}

type Decided = Result<Decision, Rejection>;

/// Whether a call is over: abandoned, ended with an incident, or closed after it ended
/// (an ended call without incident waits for the operator to close its record).
fn call_over(call: &Call) -> bool {
    match call.status {
        CallStatus::Abandoned | CallStatus::Overflowed => true,
        CallStatus::Closed => call.ended_at.is_some(),
        CallStatus::Ended => call.incident.is_some(),
        CallStatus::Queued | CallStatus::Taken | CallStatus::Connected => false,
    }
}

fn unknown(kind: &'static str, id: impl std::fmt::Display) -> Rejection {
    Rejection::Unknown {
        kind,
        id: id.to_string(),
    }
}

fn state(message: impl Into<String>) -> Rejection {
    Rejection::InvalidState(message.into())
}

fn input(message: impl Into<String>) -> Rejection {
    Rejection::InvalidInput(message.into())
}

fn text(field: &str, value: &str) -> Result<(), Rejection> {
    if value.trim().is_empty() {
        return Err(input(format!("{field} must not be empty")));
    }
    if value.len() > MAX_TEXT_LEN {
        return Err(input(format!(
            "{field} is {} bytes; at most {MAX_TEXT_LEN} are accepted",
            value.len()
        )));
    }
    Ok(())
}

impl Dispatch {
    /// An empty centre with the given rules.
    pub fn new(policy: Policy) -> Self {
        Self {
            policy,
            calls: BTreeMap::new(),
            incidents: BTreeMap::new(),
            units: BTreeMap::new(),
            facilities: BTreeMap::new(),
            transfers: BTreeMap::new(),
            referrals: BTreeMap::new(),
            open_incidents: BTreeSet::new(),
            next_incident: 1,
            next_assignment: 1,
            next_transfer: 1,
            next_referral: 1,
            next_code: 1,
            retiring: BTreeSet::new(),
        }
    }

    // -----------------------------------------------------------------------------------
    // Queries

    /// The rules in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Format of the serialised state. Bump it whenever the JSON of `Dispatch` (or of
    /// anything it holds) changes: a snapshot of another format is not loaded, the log is
    /// replayed instead. The `state_format` snapshot test fails on any such change.
    pub const SNAPSHOT_FORMAT: u32 = 1;

    /// Whether an incident existed but has left the live state (closed longer ago than
    /// [`Policy::history_retention`]); the log still has it.
    pub fn incident_retired(&self, id: IncidentId) -> bool {
        id.number() < self.next_incident && !self.incidents.contains_key(&id)
    }

    /// Whether a transfer existed but has left the live state with its incident.
    pub fn transfer_retired(&self, id: TransferId) -> bool {
        id.number() < self.next_transfer && !self.transfers.contains_key(&id)
    }

    /// Replaces the rules (a restored snapshot takes the configured ones).
    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
    }

    /// A call.
    pub fn call(&self, id: &CallId) -> Option<&Call> {
        self.calls.get(id)
    }

    /// Every call recorded.
    pub fn calls(&self) -> impl Iterator<Item = &Call> {
        self.calls.values()
    }

    /// An incident.
    pub fn incident(&self, id: IncidentId) -> Option<&Incident> {
        self.incidents.get(&id)
    }

    /// Every incident recorded.
    pub fn incidents(&self) -> impl Iterator<Item = &Incident> {
        self.incidents.values()
    }

    /// Incidents not closed.
    pub fn open_incidents(&self) -> impl Iterator<Item = &Incident> {
        self.open_incidents
            .iter()
            .filter_map(|id| self.incidents.get(id))
    }

    /// A unit.
    pub fn unit(&self, id: &UnitId) -> Option<&Unit> {
        self.units.get(id)
    }

    /// The whole fleet.
    pub fn units(&self) -> impl Iterator<Item = &Unit> {
        self.units.values()
    }

    /// A facility.
    pub fn facility(&self, id: &FacilityId) -> Option<&Facility> {
        self.facilities.get(id)
    }

    /// Every facility.
    pub fn facilities(&self) -> impl Iterator<Item = &Facility> {
        self.facilities.values()
    }

    /// A transfer.
    pub fn transfer(&self, id: TransferId) -> Option<&Transfer> {
        self.transfers.get(&id)
    }

    /// Every transfer.
    pub fn transfers(&self) -> impl Iterator<Item = &Transfer> {
        self.transfers.values()
    }

    /// A referral.
    pub fn referral(&self, id: ReferralId) -> Option<&Referral> {
        self.referrals.get(&id)
    }

    /// Timers the shell must keep (re-derived after a restart): acceptance deadlines of
    /// open offers, and a GPS watch for every unit serving an incident.
    pub fn pending_timers(&self) -> Vec<Timer> {
        let mut timers = Vec::new();
        for u in self.units.values() {
            if let UnitStatus::Assigned {
                assignment,
                accept_by,
                ..
            } = &u.status
            {
                timers.push(Timer::AssignmentDeadline {
                    unit: u.registration.id.clone(),
                    assignment: *assignment,
                    at: *accept_by,
                });
            }
            if u.status.incident().is_some() {
                let heard = u
                    .last_fix
                    .map_or(u.status.since(), |f| f.at.max(u.status.since()));
                timers.push(Timer::GpsWatch {
                    unit: u.registration.id.clone(),
                    at: heard + self.policy.gps_silence_alert,
                });
            }
        }
        timers
    }

    /// Ranks units for an incident (requires a dispatch point; uses the assessed kind, or
    /// TAB when not yet assessed).
    pub fn recommend_units(
        &self,
        incident: IncidentId,
        travel: &dyn TravelTimes,
        now: Timestamp,
    ) -> Result<UnitRecommendation, Rejection> {
        let inc = self.open_incident(incident)?;
        let target = inc.dispatch_point().ok_or_else(|| {
            state(format!(
                "incident {incident} has no usable location yet; confirm the address first"
            ))
        })?;
        let required = inc.required_unit().unwrap_or(UnitKind::Tab);
        Ok(recommend::recommend_units(
            self.units.values(),
            &UnitQuery {
                required,
                excluded: &|u| inc.declined.contains(u),
                target,
                now,
                max_fix_age: self.policy.max_fix_age_for_position,
                limit: self.policy.recommendation_limit,
            },
            travel,
        ))
    }

    /// Ranks destinations for an incident by capability, ETA and crowding.
    pub fn recommend_destinations(
        &self,
        incident: IncidentId,
        travel: &dyn TravelTimes,
        now: Timestamp,
    ) -> Result<DestinationRanking, Rejection> {
        let inc = self.open_incident(incident)?;
        let origin = inc.dispatch_point().ok_or_else(|| {
            state(format!(
                "incident {incident} has no usable location yet; confirm the address first"
            ))
        })?;
        let required = inc.assessment.as_ref().and_then(|a| a.capability);
        let facilities: Vec<&Facility> = self
            .facilities
            .values()
            .filter(|f| match &inc.kind {
                IncidentKind::Secondary { from, .. } => &f.registration.id != from,
                IncidentKind::Primary => true,
            })
            .collect();
        let points: Vec<GeoPoint> = facilities.iter().map(|f| f.registration.location).collect();
        let etas = travel.times_from_source(origin, &points, now);
        Ok(rank_destinations(
            &facilities,
            &etas,
            required,
            now,
            self.policy.recommendation_limit,
        ))
    }

    /// City coverage by assignable units over the given demand cells.
    pub fn coverage(
        &self,
        demand: &[DemandCell],
        travel: &dyn TravelTimes,
        now: Timestamp,
    ) -> CoverageReport {
        recommend::coverage(
            self.units.values(),
            demand,
            travel,
            now,
            self.policy.max_fix_age_for_position,
        )
    }

    // -----------------------------------------------------------------------------------
    // Commands

    /// Decides and applies in one step (tests, simulations, benchmarks).
    pub fn execute(
        &mut self,
        command: &Command,
        now: Timestamp,
        travel: &dyn TravelTimes,
    ) -> Decided {
        let decision = self.decide(command, now, travel)?;
        for event in &decision.events {
            self.apply(now, event).map_err(|e| {
                state(format!(
                    "internal error: decided an event that does not apply: {e}"
                ))
            })?;
        }
        Ok(decision)
    }

    /// Decides what a command means at `now`, without changing anything.
    #[allow(clippy::too_many_lines)] // one arm per command reads best as one match
    pub fn decide(&self, command: &Command, now: Timestamp, travel: &dyn TravelTimes) -> Decided {
        match command {
            Command::RecordCallEvent { event } => self.decide_call_event(event),
            Command::TakeCall {
                call,
                operator,
                position,
            } => {
                let c = self.known_call(call)?;
                if c.status != CallStatus::Queued {
                    return Err(match &c.taken {
                        Some((by, _)) => state(format!("call {call} was already taken by {by}")),
                        None => state(format!(
                            "call {call} is not waiting in the queue ({:?})",
                            c.status
                        )),
                    });
                }
                text("operator position", position)?;
                Ok(Decision {
                    events: vec![Event::CallTaken {
                        call: call.clone(),
                        operator: operator.clone(),
                        position: position.clone(),
                    }],
                    effects: vec![Effect::ConnectCall {
                        call: call.clone(),
                        position: position.clone(),
                    }],
                })
            }
            Command::CloseCall { call, outcome, .. } => {
                let c = self.known_call(call)?;
                if c.status == CallStatus::Closed {
                    return Err(state(format!("call {call} is already closed")));
                }
                if let Some(incident) = c.incident {
                    return Err(state(format!(
                        "call {call} opened incident {incident}; close the incident instead"
                    )));
                }
                if let crate::model::NonIncidentOutcome::Duplicate { incident } = outcome {
                    self.known_incident(*incident)?;
                }
                if let crate::model::NonIncidentOutcome::Other { detail } = outcome {
                    text("detail", detail)?;
                }
                Ok(events(vec![Event::CallClosed {
                    call: call.clone(),
                    outcome: outcome.clone(),
                }]))
            }
            Command::OpenIncident {
                call,
                operator,
                summary,
                location,
            } => self.decide_open_incident(call.as_ref(), operator, summary, location.as_ref()),
            Command::RequestSecondaryTransfer {
                operator,
                from,
                reason,
                patient,
                assessment,
                to,
            } => {
                text("reason", reason)?;
                let origin = self.known_facility(from)?;
                if let Some(to) = to {
                    let dest = self.known_facility(to)?;
                    if to == from {
                        return Err(input("a secondary transfer must go to another facility"));
                    }
                    if let Some(d) = &dest.diversion {
                        return Err(state(format!(
                            "facility {to} is on diversion: {}",
                            d.reason
                        )));
                    }
                }
                check_patient(patient)?;
                check_assessment(assessment)?;
                if !matches!(assessment.disposition, Disposition::Ambulance { .. }) {
                    return Err(input("a secondary transfer needs an ambulance disposition"));
                }
                let incident = IncidentId::from_number(self.next_incident);
                let mut evs = vec![
                    Event::IncidentOpened {
                        incident,
                        kind: IncidentKind::Secondary {
                            from: from.clone(),
                            reason: reason.clone(),
                        },
                        call: None,
                        operator: operator.clone(),
                        summary: format!("Traslado secundario desde {}", origin.registration.name),
                        reported_location: ReportedLocation::Absent,
                    },
                    Event::LocationConfirmed {
                        incident,
                        location: crate::model::ConfirmedLocation {
                            address: origin.registration.name.clone(),
                            point: origin.registration.location,
                        },
                    },
                    Event::PatientRecorded {
                        incident,
                        patient: patient.clone(),
                    },
                    Event::Assessed {
                        incident,
                        assessment: assessment.clone(),
                    },
                ];
                if let Some(to) = to {
                    evs.push(Event::DestinationChosen {
                        incident,
                        facility: to.clone(),
                    });
                }
                Ok(events(evs))
            }
            Command::ConfirmLocation { incident, location } => {
                self.open_incident(*incident)?;
                text("address", &location.address)?;
                self.check_in_region("incident location", location.point)?;
                Ok(events(vec![Event::LocationConfirmed {
                    incident: *incident,
                    location: location.clone(),
                }]))
            }
            Command::RecordPatient { incident, patient } => {
                self.open_incident(*incident)?;
                check_patient(patient)?;
                Ok(events(vec![Event::PatientRecorded {
                    incident: *incident,
                    patient: patient.clone(),
                }]))
            }
            Command::RecordAssessment {
                incident,
                assessment,
            } => self.decide_assessment(*incident, assessment, now, travel),
            Command::AssignUnit {
                incident,
                unit,
                operator,
            } => {
                let inc = self.open_incident(*incident)?;
                let u = self.known_unit(unit)?;
                Self::check_assignable(inc, u)?;
                let eta = inc.dispatch_point().and_then(|target| {
                    let origin = u.position(now, self.policy.max_fix_age_for_position);
                    travel
                        .times_to_target(target, &[origin], now)
                        .first()
                        .copied()
                        .flatten()
                });
                Ok(self.assignment(
                    *incident,
                    unit,
                    AssignedBy::Operator {
                        operator: operator.clone(),
                    },
                    eta,
                    self.next_assignment,
                    now,
                ))
            }
            Command::CancelAssignment {
                incident,
                unit,
                reason,
            } => {
                text("reason", reason)?;
                let inc = self.open_incident(*incident)?;
                let u = self.known_unit(unit)?;
                if u.status.incident() != Some(*incident) {
                    return Err(state(format!("unit {unit} is not committed to {incident}")));
                }
                if matches!(
                    u.status,
                    UnitStatus::Transporting { .. } | UnitStatus::AtHospital { .. }
                ) {
                    return Err(state(format!(
                        "unit {unit} has the patient on board; it must hand over first"
                    )));
                }
                let _ = inc;
                Ok(events(vec![Event::AssignmentCancelled {
                    unit: unit.clone(),
                    incident: *incident,
                    reason: reason.clone(),
                }]))
            }
            Command::ChooseDestination { incident, facility } => {
                let inc = self.open_incident(*incident)?;
                let f = self.known_facility(facility)?;
                if let Some(d) = &f.diversion {
                    return Err(state(format!(
                        "facility {facility} is on diversion: {}",
                        d.reason
                    )));
                }
                if let IncidentKind::Secondary { from, .. } = &inc.kind
                    && from == facility
                {
                    return Err(input(
                        "the destination must differ from the sending facility",
                    ));
                }
                for unit in &inc.units {
                    if let Some(UnitStatus::Transporting { destination, .. }) =
                        self.units.get(unit).map(|u| &u.status)
                        && destination != facility
                    {
                        return Err(state(format!(
                            "unit {unit} is already transporting to {destination}"
                        )));
                    }
                }
                Ok(events(vec![Event::DestinationChosen {
                    incident: *incident,
                    facility: facility.clone(),
                }]))
            }
            Command::CloseIncident { incident, reason } => {
                let inc = self.open_incident(*incident)?;
                if !inc.units.is_empty() {
                    return Err(state(format!(
                        "incident {incident} still holds units {}; stand them down or let them clear first",
                        join(&inc.units)
                    )));
                }
                match reason {
                    ClosureReason::Duplicate { of } => {
                        self.known_incident(*of)?;
                        if of == incident {
                            return Err(input("an incident cannot duplicate itself"));
                        }
                    }
                    ClosureReason::Cancelled { reason } => text("reason", reason)?,
                    ClosureReason::Completed | ClosureReason::Referred => {}
                }
                Ok(events(vec![Event::IncidentClosed {
                    incident: *incident,
                    reason: reason.clone(),
                }]))
            }
            Command::AcceptAssignment { unit, assignment } => {
                let u = self.known_unit(unit)?;
                match &u.status {
                    UnitStatus::Assigned { assignment: a, .. } if a == assignment => {
                        Ok(events(vec![Event::AssignmentAccepted {
                            unit: unit.clone(),
                            assignment: *assignment,
                        }]))
                    }
                    _ => Err(self.stale_assignment(u, *assignment)),
                }
            }
            Command::DeclineAssignment {
                unit,
                assignment,
                reason,
            } => {
                text("reason", reason)?;
                let u = self.known_unit(unit)?;
                match &u.status {
                    UnitStatus::Assigned {
                        assignment: a,
                        incident,
                        ..
                    } if a == assignment => {
                        let mut decision = events(vec![Event::AssignmentDeclined {
                            unit: unit.clone(),
                            assignment: *assignment,
                            reason: reason.clone(),
                        }]);
                        self.escalate(*incident, unit, now, travel, &mut decision);
                        Ok(decision)
                    }
                    _ => Err(self.stale_assignment(u, *assignment)),
                }
            }
            Command::AssignmentDeadlinePassed { unit, assignment } => {
                let u = self.known_unit(unit)?;
                match &u.status {
                    UnitStatus::Assigned {
                        assignment: a,
                        incident,
                        accept_by,
                        ..
                    } if a == assignment && now >= *accept_by => {
                        let mut decision = events(vec![Event::AssignmentExpired {
                            unit: unit.clone(),
                            assignment: *assignment,
                        }]);
                        self.escalate(*incident, unit, now, travel, &mut decision);
                        Ok(decision)
                    }
                    // Accepted, declined or rescheduled meanwhile: the timer is stale.
                    _ => Ok(Decision::default()),
                }
            }
            Command::CheckGps { unit } => self.decide_gps_check(unit, now),
            Command::ReportStatus { unit, status } => self.decide_status(unit, status, now),
            Command::ReportPosition { unit, fix } => self.decide_position(unit, fix, now),
            Command::RegisterUnit { registration } => {
                if self.units.contains_key(&registration.id) {
                    return Err(Rejection::Duplicate {
                        kind: "unit",
                        id: registration.id.to_string(),
                    });
                }
                text("provider name", &registration.provider.name)?;
                self.check_in_region("unit base", registration.base)?;
                Ok(events(vec![Event::UnitRegistered {
                    registration: registration.clone(),
                }]))
            }
            Command::SetOutOfService { unit, reason } => {
                let u = self.known_unit(unit)?;
                if let Some(incident) = u.status.incident() {
                    return Err(state(format!(
                        "unit {unit} is committed to {incident}; stand it down first"
                    )));
                }
                if matches!(u.status, UnitStatus::OutOfService { .. }) {
                    return Err(state(format!("unit {unit} is already out of service")));
                }
                Ok(events(vec![Event::UnitOutOfService {
                    unit: unit.clone(),
                    reason: reason.clone(),
                }]))
            }
            Command::ReturnToService { unit } => {
                let u = self.known_unit(unit)?;
                if !matches!(u.status, UnitStatus::OutOfService { .. }) {
                    return Err(state(format!(
                        "unit {unit} is not out of service ({})",
                        u.status.name()
                    )));
                }
                Ok(events(vec![Event::UnitReturnedToService {
                    unit: unit.clone(),
                }]))
            }
            Command::RegisterFacility { registration } => {
                if self.facilities.contains_key(&registration.id) {
                    return Err(Rejection::Duplicate {
                        kind: "facility",
                        id: registration.id.to_string(),
                    });
                }
                text("facility name", &registration.name)?;
                self.check_in_region("facility location", registration.location)?;
                Ok(events(vec![Event::FacilityRegistered {
                    registration: registration.clone(),
                }]))
            }
            Command::ReportOccupancy {
                facility,
                occupancy,
            } => {
                let f = self.known_facility(facility)?;
                if !occupancy.percent.is_finite()
                    || !(0.0..=MAX_OCCUPANCY_PERCENT).contains(&occupancy.percent)
                {
                    return Err(input(format!(
                        "occupancy {} % is outside 0–{MAX_OCCUPANCY_PERCENT} %",
                        occupancy.percent
                    )));
                }
                if occupancy.reported_at > now + self.policy.gps_future_tolerance {
                    return Err(input(format!(
                        "occupancy report is dated {} — in the future",
                        occupancy.reported_at
                    )));
                }
                if let Some(last) = f.occupancy
                    && occupancy.reported_at < last.reported_at
                {
                    return Err(state(format!(
                        "an occupancy report of {} is newer than this one ({})",
                        last.reported_at, occupancy.reported_at
                    )));
                }
                Ok(events(vec![Event::OccupancyReported {
                    facility: facility.clone(),
                    occupancy: *occupancy,
                }]))
            }
            Command::StartDiversion { facility, reason } => {
                text("reason", reason)?;
                let f = self.known_facility(facility)?;
                if f.diversion.is_some() {
                    return Err(state(format!(
                        "facility {facility} is already on diversion"
                    )));
                }
                Ok(events(vec![Event::DiversionStarted {
                    facility: facility.clone(),
                    reason: reason.clone(),
                }]))
            }
            Command::EndDiversion { facility } => {
                let f = self.known_facility(facility)?;
                if f.diversion.is_none() {
                    return Err(state(format!("facility {facility} is not on diversion")));
                }
                Ok(events(vec![Event::DiversionEnded {
                    facility: facility.clone(),
                }]))
            }
        }
    }

    fn decide_call_event(&self, event: &CallEvent) -> Decided {
        match event {
            CallEvent::Offered {
                call,
                channel,
                caller,
                location,
                at,
            } => {
                if self.calls.contains_key(call) {
                    return Err(Rejection::Duplicate {
                        kind: "call",
                        id: call.to_string(),
                    });
                }
                Ok(events(vec![Event::CallOffered {
                    call: Call {
                        id: call.clone(),
                        channel: *channel,
                        caller: caller.clone(),
                        location: location.clone(),
                        status: CallStatus::Queued,
                        offered_at: *at,
                        taken: None,
                        position: None,
                        connected_at: None,
                        ended_at: None,
                        incident: None,
                        non_incident: None,
                    },
                }]))
            }
            CallEvent::Abandoned { call, .. } => {
                let c = self.known_call(call)?;
                if !matches!(c.status, CallStatus::Queued | CallStatus::Taken) {
                    return Err(state(format!(
                        "call {call} cannot be abandoned: it is {:?}",
                        c.status
                    )));
                }
                Ok(events(vec![Event::CallAbandoned { call: call.clone() }]))
            }
            CallEvent::Overflowed { call, to, .. } => {
                let c = self.known_call(call)?;
                if !matches!(c.status, CallStatus::Queued | CallStatus::Taken) {
                    return Err(state(format!(
                        "call {call} cannot overflow: it is {:?}",
                        c.status
                    )));
                }
                if let Some(to) = to {
                    text("overflow destination", to)?;
                }
                Ok(events(vec![Event::CallOverflowed {
                    call: call.clone(),
                    to: to.clone(),
                }]))
            }
            CallEvent::Connected { call, .. } => {
                let c = self.known_call(call)?;
                if !matches!(c.status, CallStatus::Queued | CallStatus::Taken) {
                    return Err(state(format!(
                        "call {call} cannot connect: it is {:?}",
                        c.status
                    )));
                }
                Ok(events(vec![Event::CallConnected { call: call.clone() }]))
            }
            CallEvent::ConnectFailed {
                call,
                position,
                reason,
                ..
            } => {
                let c = self.known_call(call)?;
                if c.status != CallStatus::Taken || c.position.as_deref() != Some(position) {
                    return Err(state(format!(
                        "call {call} is not being connected to {position} (it is {:?})",
                        c.status
                    )));
                }
                text("reason", reason)?;
                Ok(events(vec![Event::CallReturnedToQueue {
                    call: call.clone(),
                    reason: reason.clone(),
                }]))
            }
            CallEvent::Ended { call, .. } => {
                let c = self.known_call(call)?;
                if c.status != CallStatus::Connected {
                    return Err(state(format!(
                        "call {call} cannot end: it is {:?}",
                        c.status
                    )));
                }
                Ok(events(vec![Event::CallEnded { call: call.clone() }]))
            }
        }
    }

    fn decide_open_incident(
        &self,
        call: Option<&CallId>,
        operator: &crate::ids::OperatorId,
        summary: &str,
        location: Option<&crate::model::ConfirmedLocation>,
    ) -> Decided {
        text("summary", summary)?;
        let mut reported = ReportedLocation::Absent;
        if let Some(call) = call {
            let c = self.known_call(call)?;
            if let Some(incident) = c.incident {
                return Err(state(format!(
                    "call {call} already opened incident {incident}"
                )));
            }
            if !matches!(
                c.status,
                CallStatus::Taken | CallStatus::Connected | CallStatus::Ended
            ) {
                return Err(state(format!(
                    "call {call} has not been answered ({:?}); take it first",
                    c.status
                )));
            }
            reported = c.location.clone();
        }
        let incident = IncidentId::from_number(self.next_incident);
        let mut evs = vec![Event::IncidentOpened {
            incident,
            kind: IncidentKind::Primary,
            call: call.cloned(),
            operator: operator.clone(),
            summary: summary.to_owned(),
            reported_location: reported,
        }];
        if let Some(location) = location {
            text("address", &location.address)?;
            self.check_in_region("incident location", location.point)?;
            evs.push(Event::LocationConfirmed {
                incident,
                location: location.clone(),
            });
        }
        Ok(events(evs))
    }

    fn decide_assessment(
        &self,
        incident: IncidentId,
        assessment: &crate::model::Assessment,
        now: Timestamp,
        travel: &dyn TravelTimes,
    ) -> Decided {
        let inc = self.open_incident(incident)?;
        check_assessment(assessment)?;
        let mut decision = events(vec![Event::Assessed {
            incident,
            assessment: assessment.clone(),
        }]);
        match assessment.disposition {
            Disposition::Referral { modality } => {
                if !inc.units.is_empty() {
                    return Err(state(format!(
                        "incident {incident} has units committed ({}); stand them down before referring",
                        join(&inc.units)
                    )));
                }
                let network = CareNetwork::for_patient(inc.patients.first());
                let facility = if modality == ReferralKind::EmergencyDepartmentOwnMeans {
                    let mut scratch = inc.clone();
                    scratch.assessment = Some(assessment.clone());
                    self.rank_for(&scratch, travel, now)
                        .and_then(|r| r.options.first().map(|o| o.facility.clone()))
                } else {
                    None
                };
                let referral = Referral {
                    id: ReferralId::from_number(self.next_referral),
                    incident,
                    kind: modality,
                    network,
                    facility,
                    created_at: now,
                };
                decision.effects.push(Effect::SendReferral {
                    referral: Box::new(referral.clone()),
                });
                decision.events.push(Event::ReferralCreated { referral });
            }
            Disposition::Ambulance { unit: kind } => {
                let unsuitable: Vec<&UnitId> = inc
                    .units
                    .iter()
                    .filter(|u| {
                        self.units
                            .get(*u)
                            .is_some_and(|u| !u.registration.kind.satisfies(kind))
                    })
                    .collect();
                if !unsuitable.is_empty() {
                    decision.effects.push(Effect::AlertOperators {
                        incident,
                        message: format!(
                            "La valoración exige {kind:?}; unidades asignadas no aptas: {}",
                            unsuitable
                                .iter()
                                .map(ToString::to_string)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    });
                }
            }
        }
        Ok(decision)
    }

    fn rank_for(
        &self,
        inc: &Incident,
        travel: &dyn TravelTimes,
        now: Timestamp,
    ) -> Option<DestinationRanking> {
        let origin = inc.dispatch_point()?;
        let facilities: Vec<&Facility> = self.facilities.values().collect();
        let points: Vec<GeoPoint> = facilities.iter().map(|f| f.registration.location).collect();
        let etas = travel.times_from_source(origin, &points, now);
        let required = inc.assessment.as_ref().and_then(|a| a.capability);
        Some(rank_destinations(&facilities, &etas, required, now, 1))
    }

    fn decide_status(&self, unit: &UnitId, status: &CrewStatus, now: Timestamp) -> Decided {
        let u = self.known_unit(unit)?;
        let refuse = || {
            state(format!(
                "unit {unit} cannot report {} while {}",
                crew_status_name(status),
                u.status.name()
            ))
        };
        match (status, &u.status) {
            (CrewStatus::EnRoute, UnitStatus::Assigned { assignment, .. }) => Ok(events(vec![
                // Leaving for the scene accepts the offer.
                Event::AssignmentAccepted {
                    unit: unit.clone(),
                    assignment: *assignment,
                },
                Event::UnitEnRoute { unit: unit.clone() },
            ])),
            (CrewStatus::EnRoute, UnitStatus::Accepted { .. }) => {
                Ok(events(vec![Event::UnitEnRoute { unit: unit.clone() }]))
            }
            (CrewStatus::OnScene, UnitStatus::EnRoute { .. }) => {
                Ok(events(vec![Event::UnitOnScene { unit: unit.clone() }]))
            }
            (CrewStatus::Transporting { destination }, UnitStatus::OnScene { incident, .. }) => {
                self.decide_transport(u, *incident, destination, now)
            }
            (CrewStatus::AtHospital, UnitStatus::Transporting { .. }) => {
                Ok(events(vec![Event::UnitAtHospital { unit: unit.clone() }]))
            }
            (
                CrewStatus::HandedOver,
                UnitStatus::AtHospital {
                    incident, transfer, ..
                },
            ) => {
                let mut record = self
                    .transfers
                    .get(transfer)
                    .cloned()
                    .ok_or_else(|| unknown("transfer", transfer))?;
                record.close(now, u.odometer_on_assignment);
                let mut decision = events(vec![Event::TransferCompleted {
                    transfer: *transfer,
                }]);
                decision.effects.push(Effect::EmitTransferRecord {
                    transfer: Box::new(record),
                });
                self.close_if_last(*incident, unit, &mut decision);
                Ok(decision)
            }
            (
                CrewStatus::ClearedWithoutTransport { reason },
                UnitStatus::Accepted { incident, .. }
                | UnitStatus::EnRoute { incident, .. }
                | UnitStatus::OnScene { incident, .. },
            ) => {
                text("reason", reason)?;
                let mut decision = events(vec![Event::UnitCleared {
                    unit: unit.clone(),
                    reason: reason.clone(),
                }]);
                self.close_if_last(*incident, unit, &mut decision);
                Ok(decision)
            }
            (CrewStatus::Available, UnitStatus::Returning { .. }) => {
                Ok(events(vec![Event::UnitAvailable { unit: unit.clone() }]))
            }
            _ => Err(refuse()),
        }
    }

    fn decide_transport(
        &self,
        u: &Unit,
        incident: IncidentId,
        destination: &FacilityId,
        now: Timestamp,
    ) -> Decided {
        let unit = &u.registration.id;
        let f = self.known_facility(destination)?;
        if let Some(d) = &f.diversion {
            return Err(state(format!(
                "facility {destination} is on diversion ({}); ask the regulator for another destination",
                d.reason
            )));
        }
        let inc = self.known_incident(incident)?;
        if let Some(regulated) = &inc.destination
            && regulated != destination
        {
            return Err(state(format!(
                "the regulated destination of {incident} is {regulated}, not {destination}"
            )));
        }
        let (kind, origin_facility) = match &inc.kind {
            IncidentKind::Primary => (TransferKind::Primary, None),
            IncidentKind::Secondary { from, .. } => (TransferKind::Secondary, Some(from.clone())),
        };
        let record = u
            .status
            .assignment()
            .and_then(|a| inc.assignments.iter().find(|r| r.id == a));
        let code = AuthorizationCode::issue_from(self.next_code, now.bogota_local().year)
            .map_err(|e| state(e.to_string()))?;
        let transfer = Transfer {
            id: TransferId::from_number(self.next_transfer),
            code,
            kind,
            incident,
            unit: unit.clone(),
            unit_kind: u.registration.kind,
            provider: u.registration.provider.name.clone(),
            crew: u.registration.crew.clone(),
            origin: inc.dispatch_point(),
            origin_facility,
            destination: destination.clone(),
            patient: inc.patients.first().cloned(),
            times: TransferTimes {
                requested: inc.timeline.call_offered.or(inc.timeline.opened),
                assigned: record.map(|r| r.at),
                en_route: record.and_then(|r| r.en_route_at),
                on_scene: record.and_then(|r| r.on_scene_at),
                departed: now,
                arrived: None,
                handed_over: None,
            },
            distance_to_scene: u.odometer_on_assignment,
            distance_with_patient: Meters::ZERO,
            completed: false,
        };
        let mut evs = Vec::new();
        if inc.destination.is_none() {
            evs.push(Event::DestinationChosen {
                incident,
                facility: destination.clone(),
            });
        }
        evs.push(Event::TransferStarted {
            transfer: Box::new(transfer),
        });
        Ok(Decision {
            events: evs,
            effects: vec![Effect::PreAlertFacility {
                facility: destination.clone(),
                incident,
            }],
        })
    }

    /// A GPS watch fell due. A unit that serves no incident needs no watch; one whose last
    /// fix (or commitment) is older than the policy's limit raises an alert and is watched
    /// again; otherwise the watch moves to when the last fix will be too old.
    fn decide_gps_check(&self, unit: &UnitId, now: Timestamp) -> Decided {
        let u = self.known_unit(unit)?;
        let Some(incident) = u.status.incident() else {
            return Ok(Decision::default());
        };
        let limit = self.policy.gps_silence_alert;
        let heard = u
            .last_fix
            .map_or(u.status.since(), |f| f.at.max(u.status.since()));
        let silent = now.saturating_duration_since(heard);
        let mut decision = Decision::default();
        if silent >= limit {
            let minutes = silent.as_millis() / 60_000;
            decision.effects.push(Effect::AlertOperators {
                incident,
                message: match u.last_fix {
                    Some(_) => format!(
                        "{unit} ({}) no reporta GPS desde hace {minutes} min; confirme su posición por radio",
                        u.status.name()
                    ),
                    None => format!(
                        "{unit} ({}) no ha reportado GPS desde que fue asignada ({minutes} min); confirme su posición por radio",
                        u.status.name()
                    ),
                },
            });
            decision.effects.push(Effect::Schedule(Timer::GpsWatch {
                unit: unit.clone(),
                at: now + limit,
            }));
        } else {
            decision.effects.push(Effect::Schedule(Timer::GpsWatch {
                unit: unit.clone(),
                at: heard + limit,
            }));
        }
        Ok(decision)
    }

    fn decide_position(&self, unit: &UnitId, fix: &GpsFix, now: Timestamp) -> Decided {
        let u = self.known_unit(unit)?;
        self.check_in_region("GPS fix", fix.point)?;
        if fix.at > now + self.policy.gps_future_tolerance {
            return Err(input(format!(
                "GPS fix is dated {} — {} in the future; check the device clock",
                fix.at,
                fix.at.saturating_duration_since(now)
            )));
        }
        if now.saturating_duration_since(fix.at) > self.policy.gps_max_delay {
            return Err(input(format!(
                "GPS fix from {} arrived {} late (more than {})",
                fix.at,
                now.saturating_duration_since(fix.at),
                self.policy.gps_max_delay
            )));
        }
        let mut effects = Vec::new();
        if let Some(last) = u.last_fix {
            if fix.at <= last.at {
                return Err(state(format!(
                    "GPS fix from {} is not newer than the last one ({}); out of order",
                    fix.at, last.at
                )));
            }
            if fix.at.saturating_duration_since(last.at) <= TravelTime::from_minutes(2)
                && last.point != fix.point
            {
                effects.push(Effect::ObserveTravel {
                    unit: unit.clone(),
                    from: last,
                    to: *fix,
                    emergency: matches!(
                        u.status,
                        UnitStatus::EnRoute { .. } | UnitStatus::Transporting { .. }
                    ),
                });
            }
        }
        Ok(Decision {
            events: vec![Event::PositionRecorded {
                unit: unit.clone(),
                fix: *fix,
            }],
            effects,
        })
    }

    /// Offers an incident to a unit.
    fn assignment(
        &self,
        incident: IncidentId,
        unit: &UnitId,
        by: AssignedBy,
        eta: Option<TravelTime>,
        number: u64,
        now: Timestamp,
    ) -> Decision {
        let assignment = AssignmentId::from_number(number);
        let accept_by = now + self.policy.acceptance_timeout;
        Decision {
            events: vec![Event::UnitAssigned {
                incident,
                unit: unit.clone(),
                assignment,
                by,
                eta,
                accept_by,
            }],
            effects: vec![
                Effect::NotifyCrew {
                    unit: unit.clone(),
                    incident,
                    assignment,
                },
                Effect::Schedule(Timer::AssignmentDeadline {
                    unit: unit.clone(),
                    assignment,
                    at: accept_by,
                }),
                Effect::Schedule(Timer::GpsWatch {
                    unit: unit.clone(),
                    at: now + self.policy.gps_silence_alert,
                }),
            ],
        }
    }

    /// After `leaving` declines or lets its offer expire: offer the incident to the best
    /// remaining unit, unless other units still serve it.
    fn escalate(
        &self,
        incident: IncidentId,
        leaving: &UnitId,
        now: Timestamp,
        travel: &dyn TravelTimes,
        decision: &mut Decision,
    ) {
        let Some(inc) = self.incidents.get(&incident) else {
            return;
        };
        if inc.units.iter().any(|u| u != leaving) || inc.is_closed() {
            return;
        }
        let Some(target) = inc.dispatch_point() else {
            decision
                .events
                .push(Event::EscalationExhausted { incident });
            decision.effects.push(Effect::AlertOperators {
                incident,
                message: format!(
                    "{incident}: la unidad {leaving} no aceptó y el incidente no tiene ubicación confirmada para reasignar"
                ),
            });
            return;
        };
        let required = inc.required_unit().unwrap_or(UnitKind::Tab);
        let ranking = recommend::recommend_units(
            self.units.values(),
            &UnitQuery {
                required,
                excluded: &|u| u == leaving || inc.declined.contains(u),
                target,
                now,
                max_fix_age: self.policy.max_fix_age_for_position,
                limit: 1,
            },
            travel,
        );
        if let Some(best) = ranking.candidates.first() {
            let next = self.assignment(
                incident,
                &best.unit,
                AssignedBy::Escalation,
                Some(best.eta),
                self.next_assignment,
                now,
            );
            decision.events.extend(next.events);
            decision.effects.extend(next.effects);
        } else {
            decision
                .events
                .push(Event::EscalationExhausted { incident });
            decision.effects.push(Effect::AlertOperators {
                incident,
                message: format!(
                    "{incident}: la unidad {leaving} no aceptó y no queda ninguna unidad {required:?} disponible"
                ),
            });
        }
    }

    /// Closes the incident when `leaving` was its last unit.
    fn close_if_last(&self, incident: IncidentId, leaving: &UnitId, decision: &mut Decision) {
        if let Some(inc) = self.incidents.get(&incident)
            && inc.units.iter().all(|u| u == leaving)
        {
            decision.events.push(Event::IncidentClosed {
                incident,
                reason: ClosureReason::Completed,
            });
        }
    }

    fn stale_assignment(&self, u: &Unit, assignment: AssignmentId) -> Rejection {
        let unit = &u.registration.id;
        let record = self
            .incidents
            .values()
            .flat_map(|i| i.assignments.iter())
            .find(|a| a.id == assignment && &a.unit == unit);
        match record.map(|r| &r.outcome) {
            None => unknown("assignment", assignment),
            Some(AssignmentOutcome::Pending) => state(format!(
                "assignment {assignment} is not open for unit {unit}"
            )),
            Some(AssignmentOutcome::Accepted { .. }) => {
                state(format!("assignment {assignment} was already accepted"))
            }
            Some(AssignmentOutcome::Declined { .. }) => state(format!(
                "assignment {assignment} was declined; it cannot be revived"
            )),
            Some(AssignmentOutcome::Expired { .. }) => state(format!(
                "assignment {assignment} expired and the incident was offered to another unit"
            )),
            Some(AssignmentOutcome::Cancelled { .. }) => state(format!(
                "assignment {assignment} was cancelled by the regulator"
            )),
        }
    }

    fn check_assignable(inc: &Incident, u: &Unit) -> Result<(), Rejection> {
        let unit = &u.registration.id;
        if let Some(other) = u.status.incident() {
            return Err(state(if other == inc.id {
                format!("unit {unit} is already assigned to {other}")
            } else {
                format!("unit {unit} is busy with {other}")
            }));
        }
        if !u.status.is_assignable() {
            return Err(state(format!("unit {unit} is {}", u.status.name())));
        }
        if let Some(required) = inc.required_unit()
            && !u.registration.kind.satisfies(required)
        {
            return Err(state(format!(
                "incident {} needs a {required:?}; unit {unit} is a {:?}",
                inc.id, u.registration.kind
            )));
        }
        if matches!(inc.status, IncidentStatus::Referred) {
            return Err(state(format!(
                "incident {} was referred to another modality; record a new assessment first",
                inc.id
            )));
        }
        Ok(())
    }

    fn check_in_region(&self, what: &str, p: GeoPoint) -> Result<(), Rejection> {
        GeoPoint::new_in(p.lon(), p.lat(), &self.policy.region)
            .map(|_| ())
            .map_err(|e| input(format!("{what}: {e}")))
    }

    fn known_call(&self, id: &CallId) -> Result<&Call, Rejection> {
        self.calls.get(id).ok_or_else(|| unknown("call", id))
    }

    fn known_incident(&self, id: IncidentId) -> Result<&Incident, Rejection> {
        self.incidents
            .get(&id)
            .ok_or_else(|| unknown("incident", id))
    }

    fn open_incident(&self, id: IncidentId) -> Result<&Incident, Rejection> {
        let inc = self.known_incident(id)?;
        if inc.is_closed() {
            return Err(state(format!("incident {id} is closed")));
        }
        Ok(inc)
    }

    fn known_unit(&self, id: &UnitId) -> Result<&Unit, Rejection> {
        self.units.get(id).ok_or_else(|| unknown("unit", id))
    }

    fn known_facility(&self, id: &FacilityId) -> Result<&Facility, Rejection> {
        self.facilities
            .get(id)
            .ok_or_else(|| unknown("facility", id))
    }

    // -----------------------------------------------------------------------------------
    // Events

    /// Applies one stored event recorded at `at`.
    #[allow(clippy::too_many_lines)] // one arm per event reads best as one match
    pub fn apply(&mut self, at: Timestamp, event: &Event) -> Result<(), ApplyError> {
        let name = event.name();
        let fail = |reason: String| ApplyError {
            event: name,
            reason,
        };
        match event {
            Event::CallOffered { call } => {
                self.calls.insert(call.id.clone(), call.clone());
            }
            Event::CallTaken {
                call,
                operator,
                position,
            } => {
                let c = self
                    .calls
                    .get_mut(call)
                    .ok_or_else(|| fail(format!("unknown call {call}")))?;
                c.status = CallStatus::Taken;
                c.taken = Some((operator.clone(), at));
                c.position = Some(position.clone());
            }
            Event::CallConnected { call } => {
                let c = self
                    .calls
                    .get_mut(call)
                    .ok_or_else(|| fail(format!("unknown call {call}")))?;
                c.status = CallStatus::Connected;
                c.connected_at = Some(at);
            }
            Event::CallReturnedToQueue { call, .. } => {
                let c = self
                    .calls
                    .get_mut(call)
                    .ok_or_else(|| fail(format!("unknown call {call}")))?;
                c.status = CallStatus::Queued;
                c.taken = None;
                c.position = None;
            }
            Event::CallAbandoned { call } => {
                let c = self
                    .calls
                    .get_mut(call)
                    .ok_or_else(|| fail(format!("unknown call {call}")))?;
                c.status = CallStatus::Abandoned;
                c.ended_at = Some(at);
                self.retiring.insert((at, Retiring::Call(call.clone())));
            }
            Event::CallOverflowed { call, .. } => {
                let c = self
                    .calls
                    .get_mut(call)
                    .ok_or_else(|| fail(format!("unknown call {call}")))?;
                c.status = CallStatus::Overflowed;
                c.ended_at = Some(at);
                self.retiring.insert((at, Retiring::Call(call.clone())));
            }
            Event::CallEnded { call } => {
                let c = self
                    .calls
                    .get_mut(call)
                    .ok_or_else(|| fail(format!("unknown call {call}")))?;
                c.status = CallStatus::Ended;
                c.ended_at = Some(at);
                self.retiring.insert((at, Retiring::Call(call.clone())));
            }
            Event::CallClosed { call, outcome } => {
                let c = self
                    .calls
                    .get_mut(call)
                    .ok_or_else(|| fail(format!("unknown call {call}")))?;
                c.status = CallStatus::Closed;
                c.non_incident = Some(outcome.clone());
                self.retiring.insert((at, Retiring::Call(call.clone())));
            }
            Event::IncidentOpened {
                incident,
                kind,
                call,
                operator,
                summary,
                reported_location,
            } => {
                if self.incidents.contains_key(incident) {
                    return Err(fail(format!("incident {incident} exists")));
                }
                let mut timeline = Timeline {
                    opened: Some(at),
                    ..Timeline::default()
                };
                if let Some(call) = call {
                    let c = self
                        .calls
                        .get_mut(call)
                        .ok_or_else(|| fail(format!("unknown call {call}")))?;
                    c.incident = Some(*incident);
                    timeline.call_offered = Some(c.offered_at);
                    timeline.call_answered = c.taken.as_ref().map(|(_, t)| *t);
                }
                self.incidents.insert(
                    *incident,
                    Incident {
                        id: *incident,
                        kind: kind.clone(),
                        call: call.clone(),
                        opened_by: operator.clone(),
                        summary: summary.clone(),
                        reported_location: reported_location.clone(),
                        confirmed_location: None,
                        patients: Vec::new(),
                        assessment: None,
                        status: IncidentStatus::Open,
                        units: BTreeSet::new(),
                        assignments: Vec::new(),
                        declined: BTreeSet::new(),
                        destination: None,
                        transfers: Vec::new(),
                        referral: None,
                        timeline,
                    },
                );
                self.open_incidents.insert(*incident);
                self.next_incident = self.next_incident.max(incident.number() + 1);
            }
            Event::LocationConfirmed { incident, location } => {
                self.incident_mut(*incident, &fail)?.confirmed_location = Some(location.clone());
            }
            Event::PatientRecorded { incident, patient } => {
                self.incident_mut(*incident, &fail)?
                    .patients
                    .push(patient.clone());
            }
            Event::Assessed {
                incident,
                assessment,
            } => {
                let inc = self.incident_mut(*incident, &fail)?;
                inc.assessment = Some(assessment.clone());
                refresh_status(inc);
            }
            Event::ReferralCreated { referral } => {
                let inc = self.incident_mut(referral.incident, &fail)?;
                inc.referral = Some(referral.id);
                inc.status = IncidentStatus::Referred;
                self.next_referral = self.next_referral.max(referral.id.number() + 1);
                self.referrals.insert(referral.id, referral.clone());
            }
            Event::UnitAssigned {
                incident,
                unit,
                assignment,
                by,
                eta,
                accept_by,
            } => {
                let u = self
                    .units
                    .get_mut(unit)
                    .ok_or_else(|| fail(format!("unknown unit {unit}")))?;
                u.status = UnitStatus::Assigned {
                    incident: *incident,
                    assignment: *assignment,
                    since: at,
                    accept_by: *accept_by,
                };
                u.odometer_on_assignment = Meters::ZERO;
                let inc = self.incident_mut(*incident, &fail)?;
                inc.units.insert(unit.clone());
                inc.assignments.push(AssignmentRecord {
                    id: *assignment,
                    unit: unit.clone(),
                    at,
                    by: by.clone(),
                    eta: *eta,
                    outcome: AssignmentOutcome::Pending,
                    en_route_at: None,
                    on_scene_at: None,
                });
                inc.timeline.first_assigned.get_or_insert(at);
                refresh_status(inc);
                self.next_assignment = self.next_assignment.max(assignment.number() + 1);
            }
            Event::AssignmentAccepted { unit, assignment } => {
                let incident = self.unit_incident(unit, &fail)?;
                let u = self.unit_mut(unit, &fail)?;
                u.status = UnitStatus::Accepted {
                    incident,
                    assignment: *assignment,
                    since: at,
                };
                self.set_outcome(
                    incident,
                    *assignment,
                    AssignmentOutcome::Accepted { at },
                    &fail,
                )?;
            }
            Event::AssignmentDeclined {
                unit,
                assignment,
                reason,
            } => {
                let incident = self.unit_incident(unit, &fail)?;
                self.release(unit, incident, UnitStatus::Available { since: at }, &fail)?;
                self.incident_mut(incident, &fail)?
                    .declined
                    .insert(unit.clone());
                self.set_outcome(
                    incident,
                    *assignment,
                    AssignmentOutcome::Declined {
                        at,
                        reason: reason.clone(),
                    },
                    &fail,
                )?;
            }
            Event::AssignmentExpired { unit, assignment } => {
                let incident = self.unit_incident(unit, &fail)?;
                self.release(unit, incident, UnitStatus::Available { since: at }, &fail)?;
                self.incident_mut(incident, &fail)?
                    .declined
                    .insert(unit.clone());
                self.set_outcome(
                    incident,
                    *assignment,
                    AssignmentOutcome::Expired { at },
                    &fail,
                )?;
            }
            Event::AssignmentCancelled {
                unit,
                incident,
                reason,
            } => {
                let u = self.unit_mut(unit, &fail)?;
                let assignment = u.status.assignment();
                let next = if matches!(
                    u.status,
                    UnitStatus::Assigned { .. } | UnitStatus::Accepted { .. }
                ) {
                    UnitStatus::Available { since: at }
                } else {
                    UnitStatus::Returning { since: at }
                };
                self.release(unit, *incident, next, &fail)?;
                if let Some(assignment) = assignment {
                    self.set_outcome(
                        *incident,
                        assignment,
                        AssignmentOutcome::Cancelled {
                            at,
                            reason: reason.clone(),
                        },
                        &fail,
                    )?;
                }
            }
            Event::EscalationExhausted { incident } => {
                refresh_status(self.incident_mut(*incident, &fail)?);
            }
            Event::UnitEnRoute { unit } => {
                let incident = self.unit_incident(unit, &fail)?;
                let u = self.unit_mut(unit, &fail)?;
                let assignment = u
                    .status
                    .assignment()
                    .ok_or_else(|| fail(format!("{unit} has no assignment")))?;
                u.status = UnitStatus::EnRoute {
                    incident,
                    assignment,
                    since: at,
                };
                let inc = self.incident_mut(incident, &fail)?;
                inc.timeline.first_en_route.get_or_insert(at);
                if let Some(r) = inc.assignments.iter_mut().find(|r| r.id == assignment) {
                    r.en_route_at = Some(at);
                }
            }
            Event::UnitOnScene { unit } => {
                let incident = self.unit_incident(unit, &fail)?;
                let u = self.unit_mut(unit, &fail)?;
                let assignment = u
                    .status
                    .assignment()
                    .ok_or_else(|| fail(format!("{unit} has no assignment")))?;
                u.status = UnitStatus::OnScene {
                    incident,
                    assignment,
                    since: at,
                };
                let inc = self.incident_mut(incident, &fail)?;
                inc.timeline.first_on_scene.get_or_insert(at);
                if let Some(r) = inc.assignments.iter_mut().find(|r| r.id == assignment) {
                    r.on_scene_at = Some(at);
                }
            }
            Event::TransferStarted { transfer } => {
                let unit = &transfer.unit;
                let u = self.unit_mut(unit, &fail)?;
                let assignment = u
                    .status
                    .assignment()
                    .ok_or_else(|| fail(format!("{unit} has no assignment")))?;
                u.status = UnitStatus::Transporting {
                    incident: transfer.incident,
                    assignment,
                    transfer: transfer.id,
                    destination: transfer.destination.clone(),
                    since: at,
                };
                u.odometer_on_assignment = Meters::ZERO;
                let inc = self.incident_mut(transfer.incident, &fail)?;
                inc.transfers.push(transfer.id);
                inc.timeline.transport_started.get_or_insert(at);
                self.next_transfer = self.next_transfer.max(transfer.id.number() + 1);
                self.next_code = self.next_code.max(transfer.code.sequence() + 1);
                self.transfers.insert(transfer.id, (**transfer).clone());
            }
            Event::UnitAtHospital { unit } => {
                let u = self.unit_mut(unit, &fail)?;
                let UnitStatus::Transporting {
                    incident,
                    assignment,
                    transfer,
                    destination,
                    ..
                } = u.status.clone()
                else {
                    return Err(fail(format!("{unit} is not transporting")));
                };
                u.status = UnitStatus::AtHospital {
                    incident,
                    assignment,
                    transfer,
                    facility: destination,
                    since: at,
                };
                if let Some(t) = self.transfers.get_mut(&transfer) {
                    t.times.arrived = Some(at);
                }
                self.incident_mut(incident, &fail)?
                    .timeline
                    .at_hospital
                    .get_or_insert(at);
            }
            Event::TransferCompleted { transfer } => {
                let t = self
                    .transfers
                    .get(transfer)
                    .ok_or_else(|| fail(format!("unknown transfer {transfer}")))?;
                let (unit, incident) = (t.unit.clone(), t.incident);
                let driven = self.unit_mut(&unit, &fail)?.odometer_on_assignment;
                if let Some(t) = self.transfers.get_mut(transfer) {
                    t.close(at, driven);
                }
                self.release(&unit, incident, UnitStatus::Returning { since: at }, &fail)?;
                self.incident_mut(incident, &fail)?
                    .timeline
                    .handed_over
                    .get_or_insert(at);
            }
            Event::UnitCleared { unit, .. } => {
                let incident = self.unit_incident(unit, &fail)?;
                self.release(unit, incident, UnitStatus::Returning { since: at }, &fail)?;
            }
            Event::UnitAvailable { unit } | Event::UnitReturnedToService { unit } => {
                self.unit_mut(unit, &fail)?.status = UnitStatus::Available { since: at };
            }
            Event::PositionRecorded { unit, fix } => {
                let max_speed = self.policy.max_plausible_speed;
                let u = self.unit_mut(unit, &fail)?;
                let committed_moving = matches!(
                    u.status,
                    UnitStatus::Accepted { .. }
                        | UnitStatus::EnRoute { .. }
                        | UnitStatus::OnScene { .. }
                        | UnitStatus::Transporting { .. }
                        | UnitStatus::AtHospital { .. }
                );
                if let Some(last) = u.last_fix
                    && committed_moving
                {
                    let d = last.point.distance_to(fix.point);
                    let dt = fix.at.saturating_duration_since(last.at);
                    let plausible =
                        Speed::from_distance_and_time(d, dt).is_none_or(|v| v <= max_speed);
                    if plausible {
                        u.odometer_on_assignment += d;
                    }
                }
                u.record_fix(*fix);
            }
            Event::DestinationChosen { incident, facility } => {
                self.incident_mut(*incident, &fail)?.destination = Some(facility.clone());
            }
            Event::IncidentClosed { incident, reason } => {
                let inc = self.incident_mut(*incident, &fail)?;
                inc.status = IncidentStatus::Closed {
                    reason: reason.clone(),
                };
                inc.timeline.closed = Some(at);
                self.open_incidents.remove(incident);
                self.retiring.insert((at, Retiring::Incident(*incident)));
            }
            Event::UnitRegistered { registration } => {
                self.units
                    .insert(registration.id.clone(), Unit::new(registration.clone(), at));
            }
            Event::UnitOutOfService { unit, reason } => {
                self.unit_mut(unit, &fail)?.status = UnitStatus::OutOfService {
                    reason: reason.clone(),
                    since: at,
                };
            }
            Event::FacilityRegistered { registration } => {
                self.facilities.insert(
                    registration.id.clone(),
                    Facility {
                        registration: registration.clone(),
                        occupancy: None,
                        diversion: None,
                    },
                );
            }
            Event::OccupancyReported {
                facility,
                occupancy,
            } => {
                self.facility_mut(facility, &fail)?.occupancy = Some(*occupancy);
            }
            Event::DiversionStarted { facility, reason } => {
                self.facility_mut(facility, &fail)?.diversion = Some(crate::facility::Diversion {
                    reason: reason.clone(),
                    since: at,
                });
            }
            Event::DiversionEnded { facility } => {
                self.facility_mut(facility, &fail)?.diversion = None;
            }
        }
        self.retire_before(at);
        Ok(())
    }

    /// Removes what finished more than [`Policy::history_retention`] before `at`: a closed
    /// incident with its transfers, referral and call (once that call is over too), and a
    /// call without incident that is over. Part of the fold, so a replay of the same events
    /// retires the same things.
    fn retire_before(&mut self, at: Timestamp) {
        let cutoff = at - self.policy.history_retention;
        while let Some((finished, _)) = self.retiring.first() {
            if *finished >= cutoff {
                break;
            }
            let Some((_, item)) = self.retiring.pop_first() else {
                break;
            };
            match item {
                Retiring::Incident(id) => self.retire_incident(id),
                Retiring::Call(id) => {
                    match self.calls.get(&id).map(|c| (call_over(c), c.incident)) {
                        Some((true, Some(incident))) => self.retire_incident(incident),
                        Some((true, None)) => {
                            self.calls.remove(&id);
                        }
                        // Not over: indexed again when it ends or closes.
                        Some((false, _)) | None => {}
                    }
                }
            }
        }
    }

    /// Removes a closed incident with its transfers, referral and call, unless its call is
    /// still going (then both leave once the call is over and the retention has passed).
    fn retire_incident(&mut self, id: IncidentId) {
        let Some(incident) = self.incidents.get(&id) else {
            return;
        };
        if !incident.is_closed() {
            return;
        }
        let call = incident.call.clone();
        if call
            .as_ref()
            .and_then(|c| self.calls.get(c))
            .is_some_and(|c| !call_over(c))
        {
            return;
        }
        let Some(incident) = self.incidents.remove(&id) else {
            return;
        };
        for transfer in &incident.transfers {
            self.transfers.remove(transfer);
        }
        if let Some(referral) = incident.referral {
            self.referrals.remove(&referral);
        }
        if let Some(call) = call {
            self.calls.remove(&call);
        }
    }

    fn incident_mut(
        &mut self,
        id: IncidentId,
        fail: &dyn Fn(String) -> ApplyError,
    ) -> Result<&mut Incident, ApplyError> {
        self.incidents
            .get_mut(&id)
            .ok_or_else(|| fail(format!("unknown incident {id}")))
    }

    fn unit_mut(
        &mut self,
        id: &UnitId,
        fail: &dyn Fn(String) -> ApplyError,
    ) -> Result<&mut Unit, ApplyError> {
        self.units
            .get_mut(id)
            .ok_or_else(|| fail(format!("unknown unit {id}")))
    }

    fn facility_mut(
        &mut self,
        id: &FacilityId,
        fail: &dyn Fn(String) -> ApplyError,
    ) -> Result<&mut Facility, ApplyError> {
        self.facilities
            .get_mut(id)
            .ok_or_else(|| fail(format!("unknown facility {id}")))
    }

    fn unit_incident(
        &self,
        id: &UnitId,
        fail: &dyn Fn(String) -> ApplyError,
    ) -> Result<IncidentId, ApplyError> {
        self.units
            .get(id)
            .ok_or_else(|| fail(format!("unknown unit {id}")))?
            .status
            .incident()
            .ok_or_else(|| fail(format!("unit {id} serves no incident")))
    }

    /// Frees a unit from an incident.
    fn release(
        &mut self,
        unit: &UnitId,
        incident: IncidentId,
        next: UnitStatus,
        fail: &dyn Fn(String) -> ApplyError,
    ) -> Result<(), ApplyError> {
        self.unit_mut(unit, fail)?.status = next;
        let inc = self.incident_mut(incident, fail)?;
        inc.units.remove(unit);
        refresh_status(inc);
        Ok(())
    }

    fn set_outcome(
        &mut self,
        incident: IncidentId,
        assignment: AssignmentId,
        outcome: AssignmentOutcome,
        fail: &dyn Fn(String) -> ApplyError,
    ) -> Result<(), ApplyError> {
        let inc = self.incident_mut(incident, fail)?;
        let record = inc
            .assignments
            .iter_mut()
            .find(|a| a.id == assignment)
            .ok_or_else(|| fail(format!("unknown assignment {assignment} on {incident}")))?;
        record.outcome = outcome;
        Ok(())
    }

    // -----------------------------------------------------------------------------------
    // Invariants

    /// Checks every invariant of the state; returns each violation found. Run after every
    /// step in tests and in debug builds of the engine.
    pub fn check_invariants(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for u in self.units.values() {
            let id = &u.registration.id;
            if let Some(incident) = u.status.incident() {
                match self.incidents.get(&incident) {
                    None => problems.push(format!("unit {id} serves unknown incident {incident}")),
                    Some(inc) => {
                        if inc.is_closed() {
                            problems.push(format!("unit {id} serves closed incident {incident}"));
                        }
                        if !inc.units.contains(id) {
                            problems.push(format!(
                                "unit {id} serves {incident}, which does not list it"
                            ));
                        }
                    }
                }
            }
            if let UnitStatus::Transporting { transfer, .. }
            | UnitStatus::AtHospital { transfer, .. } = &u.status
            {
                match self.transfers.get(transfer) {
                    Some(t) if &t.unit == id && !t.completed => {}
                    _ => problems.push(format!(
                        "unit {id} carries {transfer}, which is not its open transfer"
                    )),
                }
            }
        }
        let mut served: BTreeMap<&UnitId, IncidentId> = BTreeMap::new();
        for inc in self.incidents.values() {
            if inc.is_closed() && !inc.units.is_empty() {
                problems.push(format!(
                    "closed incident {} holds units {}",
                    inc.id,
                    join(&inc.units)
                ));
            }
            if inc.is_closed() == self.open_incidents.contains(&inc.id) {
                problems.push(format!("open-incident index disagrees about {}", inc.id));
            }
            for unit in &inc.units {
                if let Some(other) = served.insert(unit, inc.id) {
                    problems.push(format!("unit {unit} serves both {other} and {}", inc.id));
                }
                match self.units.get(unit) {
                    Some(u) if u.status.incident() == Some(inc.id) => {}
                    _ => problems.push(format!(
                        "incident {} lists unit {unit}, which is not committed to it",
                        inc.id
                    )),
                }
            }
            if inc.id.number() >= self.next_incident {
                problems.push(format!(
                    "incident counter {} is not past {}",
                    self.next_incident, inc.id
                ));
            }
        }
        let mut codes = BTreeSet::new();
        for t in self.transfers.values() {
            if !codes.insert(t.code.as_str()) {
                problems.push(format!("authorisation code {} issued twice", t.code));
            }
            if t.code.sequence() >= self.next_code {
                problems.push(format!(
                    "code counter {} is not past code {}",
                    self.next_code, t.code
                ));
            }
            let open = !t.completed;
            let carried = self.units.get(&t.unit).is_some_and(|u| {
                matches!(&u.status,
                    UnitStatus::Transporting { transfer, .. } | UnitStatus::AtHospital { transfer, .. }
                    if *transfer == t.id)
            });
            if open != carried {
                problems.push(format!(
                    "transfer {} open={open} but carried={carried}",
                    t.id
                ));
            }
        }
        for c in self.calls.values() {
            if let Some(incident) = c.incident
                && !self.incidents.contains_key(&incident)
            {
                problems.push(format!("call {} links unknown incident {incident}", c.id));
            }
        }
        problems
    }
}

fn events(events: Vec<Event>) -> Decision {
    Decision {
        events,
        effects: Vec::new(),
    }
}

fn join(units: &BTreeSet<UnitId>) -> String {
    units
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn crew_status_name(status: &CrewStatus) -> &'static str {
    match status {
        CrewStatus::EnRoute => "en_route",
        CrewStatus::OnScene => "on_scene",
        CrewStatus::Transporting { .. } => "transporting",
        CrewStatus::AtHospital => "at_hospital",
        CrewStatus::HandedOver => "handed_over",
        CrewStatus::ClearedWithoutTransport { .. } => "cleared_without_transport",
        CrewStatus::Available => "available",
    }
}

fn refresh_status(inc: &mut Incident) {
    if inc.is_closed() {
        return;
    }
    if !inc.units.is_empty() {
        inc.status = IncidentStatus::UnitsCommitted;
    } else if inc.referral.is_some() {
        inc.status = IncidentStatus::Referred;
    } else if inc.required_unit().is_some() {
        inc.status = IncidentStatus::AwaitingUnit;
    } else {
        inc.status = IncidentStatus::Open;
    }
}

fn check_patient(patient: &crate::model::Patient) -> Result<(), Rejection> {
    if let Some(age) = patient.age_years
        && (!age.is_finite() || !(0.0..=130.0).contains(&age))
    {
        return Err(input(format!(
            "patient age {age} is not between 0 and 130 years"
        )));
    }
    if let Some(doc) = &patient.document {
        let number = &doc.expose().number;
        if number.is_empty()
            || number.len() > 20
            || !number.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(input("document number must be 1–20 letters or digits"));
        }
    }
    Ok(())
}

fn check_assessment(a: &crate::model::Assessment) -> Result<(), Rejection> {
    if !(1..=5).contains(&a.level) {
        return Err(input(format!(
            "triage level {} is not between 1 (I) and 5 (V)",
            a.level
        )));
    }
    let expected = Priority::from_level(a.level);
    if a.priority != expected {
        return Err(input(format!(
            "priority {:?} does not match triage level {} (expected {expected:?})",
            a.priority, a.level
        )));
    }
    text("protocol", &a.protocol)?;
    if let Some(record) = &a.triage {
        let derived = crate::model::Assessment::from_triage(record);
        if derived.level != a.level
            || derived.disposition != a.disposition
            || derived.capability != a.capability
            || derived.route != a.route
        {
            return Err(input(
                "the assessment disagrees with its own triage record (level, disposition or route)",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::OperatorId;
    use crate::intake::{CallChannel, CallerIdentity};
    use crate::kpi;
    use crate::recommend::StraightLine;

    fn at(rfc3339: &str) -> Timestamp {
        Timestamp::parse_rfc3339(rfc3339).unwrap()
    }

    fn record(dispatch: &mut Dispatch, event: CallEvent) -> Decided {
        let now = event.at();
        dispatch.execute(
            &Command::RecordCallEvent { event },
            now,
            &StraightLine::default(),
        )
    }

    fn offer(dispatch: &mut Dispatch, id: &str) -> CallId {
        let call = CallId::new(id).unwrap();
        record(
            dispatch,
            CallEvent::Offered {
                call: call.clone(),
                channel: CallChannel::Sip,
                caller: CallerIdentity::default(),
                location: ReportedLocation::Absent,
                at: at("2026-11-23T12:00:00Z"),
            },
        )
        .unwrap();
        call
    }

    #[test]
    fn an_overflowed_call_leaves_the_queue_unanswered_with_its_own_status() {
        let mut dispatch = Dispatch::new(Policy::default());
        let overflowed = offer(&mut dispatch, "sip:overflow-1");
        let abandoned = offer(&mut dispatch, "sip:abandon-1");
        let decision = record(
            &mut dispatch,
            CallEvent::Overflowed {
                call: overflowed.clone(),
                to: Some("sip:sos@backup.example".into()),
                at: at("2026-11-23T12:05:00Z"),
            },
        )
        .unwrap();
        assert_eq!(
            decision.events,
            vec![Event::CallOverflowed {
                call: overflowed.clone(),
                to: Some("sip:sos@backup.example".into()),
            }]
        );
        record(
            &mut dispatch,
            CallEvent::Abandoned {
                call: abandoned.clone(),
                at: at("2026-11-23T12:01:00Z"),
            },
        )
        .unwrap();

        let call = dispatch.call(&overflowed).unwrap();
        assert_eq!(call.status, CallStatus::Overflowed);
        assert_eq!(call.ended_at, Some(at("2026-11-23T12:05:00Z")));
        assert!(call_over(call));

        // It is no longer waiting: nobody can take it, and it cannot overflow twice.
        let take = dispatch.decide(
            &Command::TakeCall {
                call: overflowed.clone(),
                operator: OperatorId::new("maria.gomez@crue").unwrap(),
                position: "sip:pos1@10.0.0.1".into(),
            },
            at("2026-11-23T12:06:00Z"),
            &StraightLine::default(),
        );
        assert!(matches!(take, Err(Rejection::InvalidState(_))), "{take:?}");
        let again = record(
            &mut dispatch,
            CallEvent::Overflowed {
                call: overflowed,
                to: None,
                at: at("2026-11-23T12:06:00Z"),
            },
        );
        assert!(
            matches!(again, Err(Rejection::InvalidState(_))),
            "{again:?}"
        );

        // KPIs: unanswered, counted apart from the abandoned call.
        let report = kpi::report(&dispatch);
        assert_eq!(report.calls, 2);
        assert_eq!(report.abandoned, 1);
        assert_eq!(report.overflowed, 1);
        let answer = report
            .intervals
            .iter()
            .find(|s| s.interval == kpi::Interval::Answer && s.priority.is_none())
            .unwrap();
        assert_eq!(answer.count, 0, "an overflowed call was never answered");
    }
}
