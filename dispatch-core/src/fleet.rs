//! The regulated fleet: every ambulance of the city, public and private.
//!
//! Bogotá has 952 ambulances: 716 **TAB** (transporte asistencial básico) and 236 **TAM**
//! (transporte asistencial medicalizado), about 80 % private. Decreto 793 de 2018 makes the
//! CRUE the only way to request one and obliges every unit to report GPS.

use maps::{Cell, CellResolution, GeoPoint, Meters, Speed, Timestamp, TravelTime};
use serde::{Deserialize, Serialize};

use crate::ids::{AssignmentId, FacilityId, IncidentId, TransferId, UnitId};

/// Basic or medicalised ambulance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "UPPERCASE")]
pub enum UnitKind {
    /// Transporte asistencial básico.
    Tab,
    /// Transporte asistencial medicalizado (physician on board, advanced life support).
    Tam,
}

impl UnitKind {
    /// Whether a unit of this kind can serve a need for `required`: a TAM can always do a
    /// TAB's job, never the reverse.
    pub fn satisfies(self, required: Self) -> bool {
        match required {
            Self::Tab => true,
            Self::Tam => self == Self::Tam,
        }
    }
}

/// Public (one of the four subredes) or private operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum Ownership {
    /// Subred Integrada de Servicios de Salud (public network).
    Public,
    /// Private provider.
    Private,
}

/// Who operates the unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    /// Provider name as in REPS.
    pub name: String,
    /// Public or private.
    pub ownership: Ownership,
}

/// Static registration data of a unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitRegistration {
    /// Fleet code.
    pub id: UnitId,
    /// TAB or TAM.
    pub kind: UnitKind,
    /// Operator.
    pub provider: Provider,
    /// Where the unit is based (and returns to).
    pub base: GeoPoint,
    /// Crew on shift (names or roles; shown to operators, not logged).
    pub crew: Vec<crate::privacy::Sensitive<String>>,
}

/// Why a unit is out of service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    tag = "kind",
    content = "detail",
    rename_all = "snake_case"
)]
pub enum OutOfServiceReason {
    /// Mechanical failure or maintenance.
    Mechanical(String),
    /// Cleaning / decontamination after a patient.
    Decontamination,
    /// No crew on shift.
    NoCrew,
    /// Refuelling.
    Refuelling,
    /// Anything else, described.
    Other(String),
}

/// Where a unit is in its work cycle. Each variant carries what that stage needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, tag = "status", rename_all = "snake_case")]
pub enum UnitStatus {
    /// Free to be assigned.
    Available {
        /// Since when.
        since: Timestamp,
    },
    /// Offered an incident; the crew must accept before `accept_by`.
    Assigned {
        /// The incident.
        incident: IncidentId,
        /// This offer.
        assignment: AssignmentId,
        /// When it was offered.
        since: Timestamp,
        /// Deadline for the crew's acceptance; afterwards the assignment expires and the
        /// incident escalates to the next unit.
        accept_by: Timestamp,
    },
    /// The crew accepted; preparing to leave.
    Accepted {
        /// The incident.
        incident: IncidentId,
        /// The accepted offer.
        assignment: AssignmentId,
        /// When the crew accepted.
        since: Timestamp,
    },
    /// Driving to the scene.
    EnRoute {
        /// The incident.
        incident: IncidentId,
        /// The accepted offer.
        assignment: AssignmentId,
        /// Wheels rolling since.
        since: Timestamp,
    },
    /// With the patient at the scene.
    OnScene {
        /// The incident.
        incident: IncidentId,
        /// The accepted offer.
        assignment: AssignmentId,
        /// Arrived at.
        since: Timestamp,
    },
    /// Carrying the patient to a facility.
    Transporting {
        /// The incident.
        incident: IncidentId,
        /// The accepted offer.
        assignment: AssignmentId,
        /// The transfer being carried out.
        transfer: TransferId,
        /// Destination.
        destination: FacilityId,
        /// Left the scene at.
        since: Timestamp,
    },
    /// At the destination, handing the patient over.
    AtHospital {
        /// The incident.
        incident: IncidentId,
        /// The accepted offer.
        assignment: AssignmentId,
        /// The transfer.
        transfer: TransferId,
        /// Where.
        facility: FacilityId,
        /// Arrived at.
        since: Timestamp,
    },
    /// Released from the incident, driving back to base (assignable again).
    Returning {
        /// Since when.
        since: Timestamp,
    },
    /// Not assignable.
    OutOfService {
        /// Why.
        reason: OutOfServiceReason,
        /// Since when.
        since: Timestamp,
    },
}

impl UnitStatus {
    /// The incident this unit is committed to, if any.
    pub fn incident(&self) -> Option<IncidentId> {
        match self {
            Self::Assigned { incident, .. }
            | Self::Accepted { incident, .. }
            | Self::EnRoute { incident, .. }
            | Self::OnScene { incident, .. }
            | Self::Transporting { incident, .. }
            | Self::AtHospital { incident, .. } => Some(*incident),
            Self::Available { .. } | Self::Returning { .. } | Self::OutOfService { .. } => None,
        }
    }

    /// The current assignment, if any.
    pub fn assignment(&self) -> Option<AssignmentId> {
        match self {
            Self::Assigned { assignment, .. }
            | Self::Accepted { assignment, .. }
            | Self::EnRoute { assignment, .. }
            | Self::OnScene { assignment, .. }
            | Self::Transporting { assignment, .. }
            | Self::AtHospital { assignment, .. } => Some(*assignment),
            Self::Available { .. } | Self::Returning { .. } | Self::OutOfService { .. } => None,
        }
    }

    /// Whether the unit can take a new incident (available, or returning to base).
    pub fn is_assignable(&self) -> bool {
        matches!(self, Self::Available { .. } | Self::Returning { .. })
    }

    /// Since when the unit has been in this status.
    pub fn since(&self) -> Timestamp {
        match self {
            Self::Available { since }
            | Self::Assigned { since, .. }
            | Self::Accepted { since, .. }
            | Self::EnRoute { since, .. }
            | Self::OnScene { since, .. }
            | Self::Transporting { since, .. }
            | Self::AtHospital { since, .. }
            | Self::Returning { since }
            | Self::OutOfService { since, .. } => *since,
        }
    }

    /// Short stable name for consoles and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Available { .. } => "available",
            Self::Assigned { .. } => "assigned",
            Self::Accepted { .. } => "accepted",
            Self::EnRoute { .. } => "en_route",
            Self::OnScene { .. } => "on_scene",
            Self::Transporting { .. } => "transporting",
            Self::AtHospital { .. } => "at_hospital",
            Self::Returning { .. } => "returning",
            Self::OutOfService { .. } => "out_of_service",
        }
    }
}

/// One GPS fix as reported by a unit's device.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpsFix {
    /// Position.
    pub point: GeoPoint,
    /// When the device measured it.
    pub at: Timestamp,
    /// Ground speed reported by the device, if any.
    pub speed: Option<Speed>,
}

/// A unit as the core knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unit {
    /// Registration data.
    pub registration: UnitRegistration,
    /// Current status.
    pub status: UnitStatus,
    /// Last accepted GPS fix.
    pub last_fix: Option<GpsFix>,
    /// Distance driven (from accepted GPS fixes) since the current assignment began; feeds
    /// the transfer record.
    pub odometer_on_assignment: Meters,
    /// The district (H3 resolution 7) of the base, for fleet balance.
    pub base_district: Cell,
    /// The district of the last fix, kept with it (derived once per fix, not per query).
    pub fix_district: Option<Cell>,
}

impl Unit {
    /// A newly registered unit: available at its base.
    pub fn new(registration: UnitRegistration, now: Timestamp) -> Self {
        let base_district = Cell::containing(registration.base, CellResolution::District);
        Self {
            base_district,
            fix_district: None,
            registration,
            status: UnitStatus::Available { since: now },
            last_fix: None,
            odometer_on_assignment: Meters::ZERO,
        }
    }

    /// Where the unit is believed to be: the last fix if it is recent enough, else its
    /// base.
    pub fn position(&self, now: Timestamp, max_fix_age: TravelTime) -> GeoPoint {
        match self.last_fix {
            Some(fix) if now.saturating_duration_since(fix.at) <= max_fix_age => fix.point,
            _ => self.registration.base,
        }
    }

    /// The district (H3 resolution 7) of [`Unit::position`].
    pub fn district(&self, now: Timestamp, max_fix_age: TravelTime) -> Cell {
        match (self.last_fix, self.fix_district) {
            (Some(fix), Some(district)) if now.saturating_duration_since(fix.at) <= max_fix_age => {
                district
            }
            _ => self.base_district,
        }
    }

    /// Records a new fix with its district.
    pub fn record_fix(&mut self, fix: GpsFix) {
        self.fix_district = Some(Cell::containing(fix.point, CellResolution::District));
        self.last_fix = Some(fix);
    }

    /// Age of the last fix, if any.
    pub fn fix_age(&self, now: Timestamp) -> Option<TravelTime> {
        self.last_fix.map(|f| now.saturating_duration_since(f.at))
    }
}

/// Status taps a crew can send from the tablet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, tag = "status", rename_all = "snake_case")]
pub enum CrewStatus {
    /// Leaving for the scene.
    EnRoute,
    /// Arrived at the scene.
    OnScene,
    /// Leaving the scene with the patient towards `destination`.
    Transporting {
        /// The facility the crew is driving to (normally the regulated destination).
        destination: FacilityId,
    },
    /// Arrived at the destination facility.
    AtHospital,
    /// Patient handed over to the facility's staff; closes the transfer.
    HandedOver,
    /// No transport needed or possible (treated on scene, refused, deceased, not found);
    /// releases the unit from the incident.
    ClearedWithoutTransport {
        /// Why, for the record.
        reason: String,
    },
    /// Back at base or free again.
    Available,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tam_can_do_a_tab_job_but_not_the_reverse() {
        assert!(UnitKind::Tam.satisfies(UnitKind::Tab));
        assert!(UnitKind::Tam.satisfies(UnitKind::Tam));
        assert!(UnitKind::Tab.satisfies(UnitKind::Tab));
        assert!(!UnitKind::Tab.satisfies(UnitKind::Tam));
    }

    #[test]
    fn stale_fixes_fall_back_to_the_base() {
        let base = GeoPoint::new(-74.08, 4.60).unwrap();
        let t0 = Timestamp::parse_rfc3339("2026-11-23T12:00:00Z").unwrap();
        let mut unit = Unit::new(
            UnitRegistration {
                id: UnitId::new("TAB-1").unwrap(),
                kind: UnitKind::Tab,
                provider: Provider {
                    name: "Subred Sur".into(),
                    ownership: Ownership::Public,
                },
                base,
                crew: vec![],
            },
            t0,
        );
        let elsewhere = GeoPoint::new(-74.10, 4.65).unwrap();
        unit.last_fix = Some(GpsFix {
            point: elsewhere,
            at: t0,
            speed: None,
        });
        let max_age = TravelTime::from_minutes(2);
        assert_eq!(
            unit.position(t0 + TravelTime::from_secs(60), max_age),
            elsewhere
        );
        assert_eq!(
            unit.position(t0 + TravelTime::from_minutes(5), max_age),
            base
        );
    }

    #[test]
    fn statuses_serialise_with_a_tag() {
        let t = Timestamp::parse_rfc3339("2026-11-23T12:00:00Z").unwrap();
        let json = serde_json::to_string(&UnitStatus::Available { since: t }).unwrap();
        assert_eq!(
            json,
            r#"{"status":"available","since":"2026-11-23T12:00:00Z"}"#
        );
    }
}
