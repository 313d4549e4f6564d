//! Every bad command is refused with a clear reason and changes nothing (`World::refused`
//! checks the state is untouched).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

mod support;

use dispatch_core::facility::Occupancy;
use dispatch_core::fleet::{CrewStatus, GpsFix, OutOfServiceReason, UnitKind};
use dispatch_core::ids::{AssignmentId, IncidentId};
use dispatch_core::intake::{CallChannel, CallEvent, CallId, CallerIdentity, ReportedLocation};
use dispatch_core::model::{ClosureReason, ConfirmedLocation, Disposition, NonIncidentOutcome};
use dispatch_core::{Command, Event, Rejection};
use maps::{GeoPoint, TravelTime};
use support::*;

fn world_with_incident() -> (World, IncidentId) {
    let mut w = World::new();
    w.ok(register_unit("TAB-01", UnitKind::Tab, p(-74.08, 4.60)));
    w.ok(register_unit("TAM-01", UnitKind::Tam, p(-74.09, 4.61)));
    w.ok(register_facility("H-1", p(-74.07, 4.62), &[]));
    let d = w.ok(Command::OpenIncident {
        call: None,
        operator: operator(),
        summary: "Caída de adulto mayor".into(),
        location: Some(ConfirmedLocation {
            address: "Calle 26 # 30-10".into(),
            point: p(-74.081, 4.601),
        }),
    });
    let Event::IncidentOpened { incident, .. } = d.events[0] else {
        panic!()
    };
    (w, incident)
}

fn message(r: &Rejection) -> String {
    r.to_string()
}

#[test]
fn commands_for_unknown_ids_are_refused() {
    let (mut w, incident) = world_with_incident();
    let r = w.refused(Command::AssignUnit {
        incident,
        unit: unit_id("TAB-99"),
        operator: operator(),
    });
    assert_eq!(message(&r), "unknown unit TAB-99");
    let r = w.refused(Command::AssignUnit {
        incident: IncidentId::from_number(999),
        unit: unit_id("TAB-01"),
        operator: operator(),
    });
    assert_eq!(message(&r), "unknown incident INC-000999");
    let r = w.refused(Command::TakeCall {
        call: CallId::new("sip:nobody").unwrap(),
        operator: operator(),
        position: "sip:pos".into(),
    });
    assert_eq!(r.code(), "unknown");
    let r = w.refused(Command::ReportOccupancy {
        facility: facility_id("H-404"),
        occupancy: Occupancy {
            percent: 80.0,
            reported_at: w.now,
        },
    });
    assert_eq!(message(&r), "unknown facility H-404");
    let r = w.refused(Command::AcceptAssignment {
        unit: unit_id("TAB-01"),
        assignment: AssignmentId::from_number(77),
    });
    assert_eq!(message(&r), "unknown assignment ASG-000077");
}

#[test]
fn a_unit_cannot_be_assigned_twice() {
    let (mut w, incident) = world_with_incident();
    w.ok(Command::AssignUnit {
        incident,
        unit: unit_id("TAB-01"),
        operator: operator(),
    });
    let r = w.refused(Command::AssignUnit {
        incident,
        unit: unit_id("TAB-01"),
        operator: operator(),
    });
    assert_eq!(message(&r), "unit TAB-01 is already assigned to INC-000001");
    let d = w.ok(Command::OpenIncident {
        call: None,
        operator: operator(),
        summary: "Otro incidente".into(),
        location: None,
    });
    let Event::IncidentOpened {
        incident: other, ..
    } = d.events[0]
    else {
        panic!()
    };
    let r = w.refused(Command::AssignUnit {
        incident: other,
        unit: unit_id("TAB-01"),
        operator: operator(),
    });
    assert_eq!(message(&r), "unit TAB-01 is busy with INC-000001");
}

#[test]
fn a_tab_cannot_serve_an_incident_that_needs_a_tam() {
    let (mut w, incident) = world_with_incident();
    w.ok(Command::RecordAssessment {
        incident,
        assessment: assessment(1, tam(), None),
    });
    let r = w.refused(Command::AssignUnit {
        incident,
        unit: unit_id("TAB-01"),
        operator: operator(),
    });
    assert!(message(&r).contains("needs a Tam"), "{r}");
}

#[test]
fn crew_statuses_out_of_order_are_refused() {
    let (mut w, incident) = world_with_incident();
    // Not assigned at all.
    let r = w.refused(Command::ReportStatus {
        unit: unit_id("TAB-01"),
        status: CrewStatus::OnScene,
    });
    assert_eq!(
        message(&r),
        "unit TAB-01 cannot report on_scene while available"
    );
    w.ok(Command::AssignUnit {
        incident,
        unit: unit_id("TAB-01"),
        operator: operator(),
    });
    // Skipping en route.
    let r = w.refused(Command::ReportStatus {
        unit: unit_id("TAB-01"),
        status: CrewStatus::OnScene,
    });
    assert_eq!(
        message(&r),
        "unit TAB-01 cannot report on_scene while assigned"
    );
    w.ok(Command::ReportStatus {
        unit: unit_id("TAB-01"),
        status: CrewStatus::EnRoute,
    });
    for bad in [
        CrewStatus::AtHospital,
        CrewStatus::HandedOver,
        CrewStatus::Available,
    ] {
        w.refused(Command::ReportStatus {
            unit: unit_id("TAB-01"),
            status: bad,
        });
    }
    // Transport to an unknown facility.
    w.ok(Command::ReportStatus {
        unit: unit_id("TAB-01"),
        status: CrewStatus::OnScene,
    });
    let r = w.refused(Command::ReportStatus {
        unit: unit_id("TAB-01"),
        status: CrewStatus::Transporting {
            destination: facility_id("H-404"),
        },
    });
    assert_eq!(message(&r), "unknown facility H-404");
}

#[test]
fn gps_fixes_far_outside_the_city_from_the_future_late_or_out_of_order_are_refused() {
    let (mut w, _) = world_with_incident();
    let fix = |point: GeoPoint, at| Command::ReportPosition {
        unit: unit_id("TAB-01"),
        fix: GpsFix {
            point,
            at,
            speed: None,
        },
    };
    let r = w.refused(fix(p(-8.61, 41.15), w.now));
    assert!(
        message(&r).starts_with("GPS fix: (-8.61, 41.15) is outside Bogotá"),
        "{r}"
    );
    let r = w.refused(fix(p(4.60, -74.08), w.now));
    assert!(message(&r).contains("swapped"), "{r}");
    let r = w.refused(fix(p(-74.08, 4.60), w.now + TravelTime::from_minutes(5)));
    assert!(message(&r).contains("in the future"), "{r}");
    let r = w.refused(fix(p(-74.08, 4.60), w.now - TravelTime::from_minutes(30)));
    assert!(message(&r).contains("late"), "{r}");
    w.ok(fix(p(-74.08, 4.60), w.now));
    let r = w.refused(fix(p(-74.08, 4.601), w.now - TravelTime::from_secs(5)));
    assert!(message(&r).contains("out of order"), "{r}");
}

#[test]
fn closed_incidents_and_busy_units_refuse_changes() {
    let (mut w, incident) = world_with_incident();
    w.ok(Command::AssignUnit {
        incident,
        unit: unit_id("TAB-01"),
        operator: operator(),
    });
    let r = w.refused(Command::CloseIncident {
        incident,
        reason: ClosureReason::Completed,
    });
    assert!(message(&r).contains("still holds units TAB-01"), "{r}");
    let r = w.refused(Command::SetOutOfService {
        unit: unit_id("TAB-01"),
        reason: OutOfServiceReason::Mechanical("llanta".into()),
    });
    assert!(message(&r).contains("committed to INC-000001"), "{r}");
    w.ok(Command::CancelAssignment {
        incident,
        unit: unit_id("TAB-01"),
        reason: "Duplicado".into(),
    });
    w.ok(Command::CloseIncident {
        incident,
        reason: ClosureReason::Cancelled {
            reason: "Llamada duplicada".into(),
        },
    });
    let r = w.refused(Command::AssignUnit {
        incident,
        unit: unit_id("TAB-01"),
        operator: operator(),
    });
    assert_eq!(message(&r), "incident INC-000001 is closed");
    let r = w.refused(Command::ReturnToService {
        unit: unit_id("TAB-01"),
    });
    assert!(message(&r).contains("not out of service"), "{r}");
}

#[test]
fn malformed_inputs_are_refused_with_the_reason() {
    let (mut w, incident) = world_with_incident();
    let r = w.refused(Command::OpenIncident {
        call: None,
        operator: operator(),
        summary: "   ".into(),
        location: None,
    });
    assert_eq!(message(&r), "summary must not be empty");
    let r = w.refused(Command::RecordAssessment {
        incident,
        assessment: assessment(7, tam(), None),
    });
    assert!(message(&r).contains("triage level 7"), "{r}");
    let mut mismatched = assessment(1, tam(), None);
    mismatched.priority = dispatch_core::model::Priority::Low;
    let r = w.refused(Command::RecordAssessment {
        incident,
        assessment: mismatched,
    });
    assert!(message(&r).contains("does not match triage level"), "{r}");
    let mut old = patient_with_eps("EPS001");
    old.age_years = Some(-3.0);
    let r = w.refused(Command::RecordPatient {
        incident,
        patient: old,
    });
    assert!(message(&r).contains("age -3"), "{r}");
    let r = w.refused(Command::ReportOccupancy {
        facility: facility_id("H-1"),
        occupancy: Occupancy {
            percent: f64::NAN,
            reported_at: w.now,
        },
    });
    assert!(message(&r).contains("outside"), "{r}");
    let r = w.refused(register_unit("TAB-01", UnitKind::Tab, p(-74.0, 4.6)));
    assert_eq!(message(&r), "unit TAB-01 already exists");
    let r = w.refused(register_unit("TAB-X", UnitKind::Tab, p(-75.5, 6.2)));
    assert!(message(&r).contains("unit base"), "{r}");
    let r = w.refused(Command::RequestSecondaryTransfer {
        operator: operator(),
        from: facility_id("H-1"),
        reason: "Traslado".into(),
        patient: patient_with_eps("EPS001"),
        assessment: assessment(
            4,
            Disposition::Referral {
                modality: dispatch_core::model::ReferralKind::SelfCare,
            },
            None,
        ),
        to: None,
    });
    assert!(message(&r).contains("needs an ambulance"), "{r}");
}

#[test]
fn call_lifecycle_violations_are_refused() {
    let mut w = World::new();
    let call = CallId::new("sip:call-1").unwrap();
    let offered = Command::RecordCallEvent {
        event: CallEvent::Offered {
            call: call.clone(),
            channel: CallChannel::Webhook,
            caller: CallerIdentity {
                anonymous: true,
                ..CallerIdentity::default()
            },
            location: ReportedLocation::Unusable {
                reason: "PIDF-LO: latitude 95 out of range".into(),
            },
            at: w.now,
        },
    };
    w.ok(offered.clone());
    let r = w.refused(offered);
    assert_eq!(message(&r), "call sip:call-1 already exists");
    // Opening an incident from a call nobody answered.
    let r = w.refused(Command::OpenIncident {
        call: Some(call.clone()),
        operator: operator(),
        summary: "x".into(),
        location: None,
    });
    assert!(message(&r).contains("has not been answered"), "{r}");
    w.ok(Command::RecordCallEvent {
        event: CallEvent::Abandoned {
            call: call.clone(),
            at: w.now,
        },
    });
    let r = w.refused(Command::TakeCall {
        call: call.clone(),
        operator: operator(),
        position: "sip:pos".into(),
    });
    assert!(message(&r).contains("not waiting in the queue"), "{r}");
    w.ok(Command::CloseCall {
        call: call.clone(),
        operator: operator(),
        outcome: NonIncidentOutcome::Information,
    });
    let r = w.refused(Command::CloseCall {
        call,
        operator: operator(),
        outcome: NonIncidentOutcome::Prank,
    });
    assert!(message(&r).contains("already closed"), "{r}");
}
