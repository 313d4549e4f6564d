//! Whole stories, call to transfer record, with the invariants checked after every step and
//! the event stream snapshotted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

mod support;

use dispatch_core::command::Timer;
use dispatch_core::crue::AuthorizationCode;
use dispatch_core::facility::Capability;
use dispatch_core::fleet::{CrewStatus, GpsFix, UnitKind, UnitStatus};
use dispatch_core::ids::IncidentId;
use dispatch_core::intake::{
    CallChannel, CallEvent, CallId, CallerIdentity, DeviceLocation, ReportedLocation,
};
use dispatch_core::model::{
    AssignedBy, CareNetwork, ClosureReason, ConfirmedLocation, Disposition, IncidentStatus,
    ReferralKind, TransferKind,
};
use dispatch_core::privacy::Sensitive;
use dispatch_core::{Command, Effect, Event};
use maps::{Meters, TravelTime};
use support::*;

fn teusaquillo() -> maps::GeoPoint {
    p(-74.0700, 4.6350)
}

/// Three units, two emergency departments (one with a stroke unit).
fn city() -> World {
    let mut w = World::new();
    w.ok(register_unit("TAM-01", UnitKind::Tam, p(-74.0720, 4.6370)));
    w.ok(register_unit("TAM-02", UnitKind::Tam, p(-74.0900, 4.6500)));
    w.ok(register_unit("TAB-01", UnitKind::Tab, p(-74.0710, 4.6360)));
    w.ok(register_facility(
        "H-STROKE",
        p(-74.0900, 4.6600),
        &[Capability::Stroke],
    ));
    w.ok(register_facility("H-NEAR", p(-74.0650, 4.6300), &[]));
    w
}

fn call_id() -> CallId {
    CallId::new("sip:a84b4c76e66710@carrier.co;tag=1928301774").unwrap()
}

fn offer_call(w: &mut World) {
    w.ok(Command::RecordCallEvent {
        event: CallEvent::Offered {
            call: call_id(),
            channel: CallChannel::Sip,
            caller: CallerIdentity {
                asserted: Some(Sensitive::new("tel:+573001234567".into())),
                ..CallerIdentity::default()
            },
            location: ReportedLocation::Reported(Box::new(DeviceLocation {
                position: Some(p(-74.0702, 4.6352)),
                uncertainty: Some(Meters::new(35.0)),
                confidence_percent: Some(95),
                civic: None,
                method: Some("GPS".into()),
                determined_at: Some(w.now),
            })),
            at: w.now,
        },
    });
}

/// Call → incident with confirmed location, patient and a level-I stroke assessment.
fn stroke_incident(w: &mut World) -> IncidentId {
    offer_call(w);
    w.advance(TravelTime::from_secs(8));
    let d = w.ok(Command::TakeCall {
        call: call_id(),
        operator: operator(),
        position: "sip:pos-07@crue.bogota.gov.co".into(),
    });
    assert!(matches!(&d.effects[..], [Effect::ConnectCall { .. }]));
    w.ok(Command::RecordCallEvent {
        event: CallEvent::Connected {
            call: call_id(),
            position: "sip:pos-07@crue.bogota.gov.co".into(),
            at: w.now,
        },
    });
    w.advance(TravelTime::from_secs(40));
    let d = w.ok(Command::OpenIncident {
        call: Some(call_id()),
        operator: operator(),
        summary: "Mujer de 67 años, habla enredada y boca desviada desde hace 30 min".into(),
        location: Some(ConfirmedLocation {
            address: "Calle 45 # 19-20".into(),
            point: teusaquillo(),
        }),
    });
    let Event::IncidentOpened { incident, .. } = d.events[0] else {
        panic!("{d:?}")
    };
    w.ok(Command::RecordPatient {
        incident,
        patient: patient_with_eps("EPS037"),
    });
    w.advance(TravelTime::from_secs(30));
    w.ok(Command::RecordAssessment {
        incident,
        assessment: assessment(1, tam(), Some(Capability::Stroke)),
    });
    incident
}

#[test]
fn call_triage_dispatch_decline_escalation_transport_handover_and_transfer_record() {
    let mut w = city();
    let incident = stroke_incident(&mut w);
    assert_eq!(
        w.dispatch.incident(incident).unwrap().status,
        IncidentStatus::AwaitingUnit
    );

    // Recommendation: only TAMs, closest first.
    let rec = w
        .dispatch
        .recommend_units(incident, &w.travel, w.now)
        .unwrap();
    let ids: Vec<&str> = rec.candidates.iter().map(|c| c.unit.as_str()).collect();
    assert_eq!(ids, ["TAM-01", "TAM-02"]);

    let d = w.ok(Command::AssignUnit {
        incident,
        unit: unit_id("TAM-01"),
        operator: operator(),
    });
    let Event::UnitAssigned { assignment, .. } = d.events[0] else {
        panic!()
    };
    assert!(
        d.effects
            .iter()
            .any(|e| matches!(e, Effect::NotifyCrew { .. }))
    );
    assert!(
        d.effects
            .iter()
            .any(|e| matches!(e, Effect::Schedule(Timer::AssignmentDeadline { .. })))
    );

    // The crew declines: the incident escalates to the next TAM at once.
    w.advance(TravelTime::from_secs(15));
    let d = w.ok(Command::DeclineAssignment {
        unit: unit_id("TAM-01"),
        assignment,
        reason: "Vehículo sin oxígeno".into(),
    });
    let Event::UnitAssigned {
        unit: ref next,
        assignment: next_assignment,
        by: AssignedBy::Escalation,
        ..
    } = d.events[1]
    else {
        panic!("{d:#?}")
    };
    assert_eq!(next.as_str(), "TAM-02");
    // A late accept of the declined offer is refused.
    let r = w.refused(Command::AcceptAssignment {
        unit: unit_id("TAM-01"),
        assignment,
    });
    assert!(r.to_string().contains("declined"), "{r}");

    w.advance(TravelTime::from_secs(20));
    w.ok(Command::AcceptAssignment {
        unit: unit_id("TAM-02"),
        assignment: next_assignment,
    });
    w.advance(TravelTime::from_secs(40));
    w.ok(Command::ReportStatus {
        unit: unit_id("TAM-02"),
        status: CrewStatus::EnRoute,
    });
    // Driving towards the scene.
    for (lon, lat) in [(-74.0850, 4.6460), (-74.0780, 4.6410), (-74.0710, 4.6355)] {
        w.advance(TravelTime::from_secs(60));
        w.ok(Command::ReportPosition {
            unit: unit_id("TAM-02"),
            fix: GpsFix {
                point: p(lon, lat),
                at: w.now,
                speed: None,
            },
        });
    }
    w.ok(Command::ReportStatus {
        unit: unit_id("TAM-02"),
        status: CrewStatus::OnScene,
    });

    // Destination: the stroke unit, not the nearer general ED.
    let ranking = w
        .dispatch
        .recommend_destinations(incident, &w.travel, w.now)
        .unwrap();
    assert_eq!(ranking.options[0].facility.as_str(), "H-STROKE");
    w.ok(Command::ChooseDestination {
        incident,
        facility: facility_id("H-STROKE"),
    });
    // The crew cannot drive to a different hospital than the regulated one.
    w.refused(Command::ReportStatus {
        unit: unit_id("TAM-02"),
        status: CrewStatus::Transporting {
            destination: facility_id("H-NEAR"),
        },
    });
    w.advance(TravelTime::from_minutes(12));
    let d = w.ok(Command::ReportStatus {
        unit: unit_id("TAM-02"),
        status: CrewStatus::Transporting {
            destination: facility_id("H-STROKE"),
        },
    });
    assert!(
        d.effects
            .iter()
            .any(|e| matches!(e, Effect::PreAlertFacility { .. }))
    );
    let Event::TransferStarted { ref transfer } = d.events[0] else {
        panic!()
    };
    let transfer_id = transfer.id;
    for (lon, lat) in [(-74.0780, 4.6450), (-74.0860, 4.6560), (-74.0899, 4.6599)] {
        w.advance(TravelTime::from_secs(90));
        w.ok(Command::ReportPosition {
            unit: unit_id("TAM-02"),
            fix: GpsFix {
                point: p(lon, lat),
                at: w.now,
                speed: None,
            },
        });
    }
    w.ok(Command::ReportStatus {
        unit: unit_id("TAM-02"),
        status: CrewStatus::AtHospital,
    });
    w.advance(TravelTime::from_minutes(9));
    let d = w.ok(Command::ReportStatus {
        unit: unit_id("TAM-02"),
        status: CrewStatus::HandedOver,
    });
    let emitted = d
        .effects
        .iter()
        .find_map(|e| match e {
            Effect::EmitTransferRecord { transfer } => Some(transfer.clone()),
            _ => None,
        })
        .expect("the handover emits the transfer record");
    assert!(d.events.contains(&Event::IncidentClosed {
        incident,
        reason: ClosureReason::Completed
    }));

    // The transfer record is complete, and the emitted record is the stored one.
    let t = w.dispatch.transfer(transfer_id).unwrap();
    assert_eq!(*emitted, *t);
    assert!(t.completed);
    assert_eq!(t.kind, TransferKind::Primary);
    assert_eq!(AuthorizationCode::parse(t.code.as_str()).unwrap(), t.code);
    assert!(t.times.assigned.is_some() && t.times.en_route.is_some() && t.times.on_scene.is_some());
    assert!(t.times.arrived.is_some() && t.times.handed_over.is_some());
    assert!(
        t.distance_to_scene.get() > 1_500.0,
        "{:?}",
        t.distance_to_scene
    );
    assert!(
        t.distance_with_patient.get() > 2_000.0,
        "{:?}",
        t.distance_with_patient
    );
    assert_eq!(t.patient.as_ref().unwrap().age_years, Some(67.0));

    // The unit returns, then is free again.
    assert!(matches!(
        w.dispatch.unit(&unit_id("TAM-02")).unwrap().status,
        UnitStatus::Returning { .. }
    ));
    w.ok(Command::ReportStatus {
        unit: unit_id("TAM-02"),
        status: CrewStatus::Available,
    });
    assert!(w.dispatch.open_incidents().next().is_none());
    w.assert_replay_reproduces_state();

    // KPIs from the story: answered in 8 s, one critical incident fully timed.
    let kpi = dispatch_core::kpi::report(&w.dispatch);
    let answer = &kpi.intervals[0];
    assert_eq!(answer.median, Some(TravelTime::from_secs(8)));
    let critical_total = kpi
        .intervals
        .iter()
        .find(|s| {
            s.interval == dispatch_core::kpi::Interval::Total
                && s.priority == Some(dispatch_core::model::Priority::Critical)
        })
        .unwrap();
    assert_eq!(critical_total.count, 1);
    assert!(critical_total.median.unwrap() > TravelTime::from_minutes(20));

    let log: Vec<serde_json::Value> = w
        .log
        .iter()
        .map(|(at, e)| serde_json::json!({"at": at, "event": e}))
        .collect();
    insta::assert_json_snapshot!("full_story_events", log);

    // The serialised state is a stored format (snapshots): a change to it must bump
    // `Dispatch::SNAPSHOT_FORMAT` and accept this snapshot under the new number.
    let state = serde_json::to_value(&w.dispatch).unwrap();
    insta::assert_json_snapshot!(
        format!("state_format_{}", dispatch_core::Dispatch::SNAPSHOT_FORMAT),
        state
    );
    let restored: dispatch_core::Dispatch = serde_json::from_value(state).unwrap();
    assert_eq!(restored, w.dispatch);

    // A week after both the incident closed and the call ended, the incident, its transfer
    // and its call leave the live state (the log keeps them); units and facilities stay.
    let call = call_id();
    w.advance(TravelTime::from_minutes(8 * 24 * 60));
    w.ok(occupancy_report("H-NEAR", 70.0, w.now));
    assert!(
        w.dispatch.incident(incident).is_some(),
        "kept while its call is still connected"
    );
    w.ok(Command::RecordCallEvent {
        event: CallEvent::Ended {
            call: call.clone(),
            at: w.now,
        },
    });
    w.advance(TravelTime::from_minutes(7 * 24 * 60 - 60));
    w.ok(occupancy_report("H-NEAR", 71.0, w.now));
    assert!(
        w.dispatch.incident(incident).is_some(),
        "not yet: within the week"
    );
    w.advance(TravelTime::from_minutes(120));
    w.ok(occupancy_report("H-NEAR", 72.0, w.now));
    assert!(w.dispatch.incident(incident).is_none());
    assert!(w.dispatch.transfer(transfer_id).is_none());
    assert!(w.dispatch.call(&call).is_none());
    assert_eq!(w.dispatch.units().count(), 2 + 1);
    assert!(w.dispatch.facility(&facility_id("H-NEAR")).is_some());
    w.assert_replay_reproduces_state();
}

fn occupancy_report(facility: &str, percent: f64, at: maps::Timestamp) -> Command {
    Command::ReportOccupancy {
        facility: facility_id(facility),
        occupancy: dispatch_core::facility::Occupancy {
            percent,
            reported_at: at,
        },
    }
}

#[test]
fn an_offer_not_accepted_in_time_escalates_and_a_stale_timer_is_ignored() {
    let mut w = city();
    let incident = stroke_incident(&mut w);
    let d = w.ok(Command::AssignUnit {
        incident,
        unit: unit_id("TAM-01"),
        operator: operator(),
    });
    let Some(Effect::Schedule(Timer::AssignmentDeadline {
        unit,
        assignment,
        at,
    })) = d
        .effects
        .iter()
        .find(|e| matches!(e, Effect::Schedule(_)))
        .cloned()
    else {
        panic!()
    };
    // The acceptance deadline, and the GPS watch of the committed unit.
    let pending = w.dispatch.pending_timers();
    assert_eq!(pending.len(), 2, "{pending:?}");
    assert!(pending.iter().any(|t| matches!(t, Timer::GpsWatch { .. })));
    // Firing early does nothing.
    let early = w.ok(Command::AssignmentDeadlinePassed {
        unit: unit.clone(),
        assignment,
    });
    assert!(early.events.is_empty());
    w.now = at;
    let d = w.ok(Command::AssignmentDeadlinePassed {
        unit: unit.clone(),
        assignment,
    });
    assert!(matches!(d.events[0], Event::AssignmentExpired { .. }));
    let Event::UnitAssigned {
        unit: ref next,
        assignment: second,
        ..
    } = d.events[1]
    else {
        panic!("{d:#?}")
    };
    assert_eq!(next.as_str(), "TAM-02");
    // TAM-02 also lets it expire: nobody is left, operators are alerted.
    w.advance(TravelTime::from_secs(90));
    let d = w.ok(Command::AssignmentDeadlinePassed {
        unit: next.clone(),
        assignment: second,
    });
    assert!(d.events.contains(&Event::EscalationExhausted { incident }));
    assert!(
        d.effects
            .iter()
            .any(|e| matches!(e, Effect::AlertOperators { .. }))
    );
    assert_eq!(
        w.dispatch.incident(incident).unwrap().status,
        IncidentStatus::AwaitingUnit
    );
    // The same timer again is stale and changes nothing.
    let again = w.ok(Command::AssignmentDeadlinePassed { unit, assignment });
    assert!(again.events.is_empty());
    w.assert_replay_reproduces_state();
}

#[test]
fn a_non_ambulance_disposition_creates_a_referral_in_the_patients_eps_network() {
    let mut w = city();
    offer_call(&mut w);
    w.ok(Command::TakeCall {
        call: call_id(),
        operator: operator(),
        position: "sip:pos-01@crue".into(),
    });
    let d = w.ok(Command::OpenIncident {
        call: Some(call_id()),
        operator: operator(),
        summary: "Ansiedad sin ideas de muerte".into(),
        location: None,
    });
    let Event::IncidentOpened { incident, .. } = d.events[0] else {
        panic!()
    };
    w.ok(Command::RecordPatient {
        incident,
        patient: patient_with_eps("EPS010"),
    });
    let d = w.ok(Command::RecordAssessment {
        incident,
        assessment: assessment(
            5,
            Disposition::Referral {
                modality: ReferralKind::TeleconsultPsychology,
            },
            None,
        ),
    });
    let Event::ReferralCreated { ref referral } = d.events[1] else {
        panic!("{d:#?}")
    };
    assert_eq!(referral.kind, ReferralKind::TeleconsultPsychology);
    assert_eq!(
        referral.network,
        CareNetwork::Eps {
            eps: dispatch_core::ids::EpsCode::new("EPS010").unwrap()
        }
    );
    assert!(
        d.effects
            .iter()
            .any(|e| matches!(e, Effect::SendReferral { .. }))
    );
    assert_eq!(
        w.dispatch.incident(incident).unwrap().status,
        IncidentStatus::Referred
    );
    // A referred incident cannot get an ambulance without a new assessment.
    w.refused(Command::AssignUnit {
        incident,
        unit: unit_id("TAB-01"),
        operator: operator(),
    });
    w.ok(Command::CloseIncident {
        incident,
        reason: ClosureReason::Referred,
    });
    w.assert_replay_reproduces_state();
}

#[test]
fn going_to_the_ed_by_own_means_names_the_recommended_facility() {
    let mut w = city();
    let d = w.ok(Command::OpenIncident {
        call: None,
        operator: operator(),
        summary: "Herida en mano que sangra poco".into(),
        location: Some(ConfirmedLocation {
            address: "Carrera 24 # 40-10".into(),
            point: teusaquillo(),
        }),
    });
    let Event::IncidentOpened { incident, .. } = d.events[0] else {
        panic!()
    };
    let d = w.ok(Command::RecordAssessment {
        incident,
        assessment: assessment(
            4,
            Disposition::Referral {
                modality: ReferralKind::EmergencyDepartmentOwnMeans,
            },
            None,
        ),
    });
    let Event::ReferralCreated { ref referral } = d.events[1] else {
        panic!()
    };
    assert_eq!(referral.network, CareNetwork::Public);
    assert_eq!(referral.facility.as_ref().unwrap().as_str(), "H-NEAR");
}

#[test]
fn a_secondary_transfer_carries_the_patient_between_facilities_under_a_code() {
    let mut w = city();
    let d = w.ok(Command::RequestSecondaryTransfer {
        operator: operator(),
        from: facility_id("H-NEAR"),
        reason: "ACV isquémico, requiere trombectomía".into(),
        patient: patient_with_eps("EPS037"),
        assessment: assessment(2, tam(), Some(Capability::Stroke)),
        to: Some(facility_id("H-STROKE")),
    });
    let Event::IncidentOpened { incident, .. } = d.events[0] else {
        panic!()
    };
    let rec = w
        .dispatch
        .recommend_units(incident, &w.travel, w.now)
        .unwrap();
    let best = rec.candidates[0].unit.clone();
    let d = w.ok(Command::AssignUnit {
        incident,
        unit: best.clone(),
        operator: operator(),
    });
    let Event::UnitAssigned { assignment, .. } = d.events[0] else {
        panic!()
    };
    w.ok(Command::ReportStatus {
        unit: best.clone(),
        status: CrewStatus::EnRoute,
    });
    let _ = assignment;
    w.ok(Command::ReportStatus {
        unit: best.clone(),
        status: CrewStatus::OnScene,
    });
    let d = w.ok(Command::ReportStatus {
        unit: best.clone(),
        status: CrewStatus::Transporting {
            destination: facility_id("H-STROKE"),
        },
    });
    let Event::TransferStarted { ref transfer } = d.events[0] else {
        panic!("{d:#?}")
    };
    assert_eq!(transfer.kind, TransferKind::Secondary);
    assert_eq!(
        transfer.origin_facility.as_ref().unwrap().as_str(),
        "H-NEAR"
    );
    w.ok(Command::ReportStatus {
        unit: best.clone(),
        status: CrewStatus::AtHospital,
    });
    w.ok(Command::ReportStatus {
        unit: best,
        status: CrewStatus::HandedOver,
    });
    assert!(w.dispatch.incident(incident).unwrap().is_closed());
    w.assert_replay_reproduces_state();
}

#[test]
fn cleared_without_transport_releases_the_unit_and_closes_the_incident() {
    let mut w = city();
    let incident = stroke_incident(&mut w);
    w.ok(Command::AssignUnit {
        incident,
        unit: unit_id("TAM-01"),
        operator: operator(),
    });
    w.ok(Command::ReportStatus {
        unit: unit_id("TAM-01"),
        status: CrewStatus::EnRoute,
    });
    w.ok(Command::ReportStatus {
        unit: unit_id("TAM-01"),
        status: CrewStatus::OnScene,
    });
    let d = w.ok(Command::ReportStatus {
        unit: unit_id("TAM-01"),
        status: CrewStatus::ClearedWithoutTransport {
            reason: "Paciente rechaza traslado, firma desistimiento".into(),
        },
    });
    assert!(
        d.events
            .iter()
            .any(|e| matches!(e, Event::IncidentClosed { .. }))
    );
    assert!(w.dispatch.transfers().next().is_none());
}

#[test]
fn a_position_that_does_not_answer_puts_the_call_back_in_the_queue() {
    let mut w = city();
    offer_call(&mut w);
    w.ok(Command::TakeCall {
        call: call_id(),
        operator: operator(),
        position: "sip:pos-07@crue.bogota.gov.co".into(),
    });
    let now = w.now;
    let failed = |position: &str| Command::RecordCallEvent {
        event: CallEvent::ConnectFailed {
            call: call_id(),
            position: position.into(),
            reason: "486 Busy Here".into(),
            at: now,
        },
    };
    let wrong = failed("sip:pos-99@crue.bogota.gov.co");
    let rejection = w.refused(wrong);
    assert!(
        rejection.to_string().contains("not being connected to"),
        "{rejection}"
    );
    let d = w.ok(failed("sip:pos-07@crue.bogota.gov.co"));
    assert_eq!(d.events[0].name(), "call_returned_to_queue");
    let call = w.dispatch.call(&call_id()).unwrap();
    assert_eq!(call.status, dispatch_core::model::CallStatus::Queued);
    assert!(call.taken.is_none() && call.position.is_none());
    // Another operator can take it now.
    w.ok(Command::TakeCall {
        call: call_id(),
        operator: dispatch_core::ids::OperatorId::new("luis.perez").unwrap(),
        position: "sip:pos-03@crue.bogota.gov.co".into(),
    });
    w.assert_replay_reproduces_state();
}

#[test]
fn a_committed_unit_that_stops_reporting_gps_raises_an_alert_until_it_reports_again() {
    let mut w = city();
    let incident = stroke_incident(&mut w);
    let d = w.ok(Command::AssignUnit {
        incident,
        unit: unit_id("TAM-01"),
        operator: operator(),
    });
    let Some(Effect::Schedule(Timer::GpsWatch { at, .. })) = d
        .effects
        .iter()
        .find(|e| matches!(e, Effect::Schedule(Timer::GpsWatch { .. })))
        .cloned()
    else {
        panic!("{d:?}")
    };
    w.ok(Command::ReportStatus {
        unit: unit_id("TAM-01"),
        status: CrewStatus::EnRoute,
    });
    // Three minutes without a fix: the check alerts and watches again.
    w.now = at;
    let d = w.ok(Command::CheckGps {
        unit: unit_id("TAM-01"),
    });
    assert!(d.events.is_empty(), "an alert is not stored");
    assert!(
        d.effects.iter().any(|e| matches!(e, Effect::AlertOperators { message, .. } if message.contains("no ha reportado GPS"))),
        "{d:?}"
    );
    assert!(
        d.effects
            .iter()
            .any(|e| matches!(e, Effect::Schedule(Timer::GpsWatch { at: next, .. }) if *next > at))
    );
    // A fresh fix: the next check is quiet and moves the watch to when that fix ages.
    w.ok(Command::ReportPosition {
        unit: unit_id("TAM-01"),
        fix: GpsFix {
            point: p(-74.0715, 4.6365),
            at: w.now,
            speed: None,
        },
    });
    w.advance(TravelTime::from_secs(60));
    let d = w.ok(Command::CheckGps {
        unit: unit_id("TAM-01"),
    });
    assert!(
        !d.effects
            .iter()
            .any(|e| matches!(e, Effect::AlertOperators { .. }))
    );
    // Driving to the scene under sirens: the movement is marked as an emergency one, so
    // the shell scales it back before it becomes a traffic speed.
    let d = w.ok(Command::ReportPosition {
        unit: unit_id("TAM-01"),
        fix: GpsFix {
            point: p(-74.0705, 4.6358),
            at: w.now,
            speed: None,
        },
    });
    assert!(
        d.effects.iter().any(|e| matches!(
            e,
            Effect::ObserveTravel {
                emergency: true,
                ..
            }
        )),
        "{d:?}"
    );
    // A unit that serves no incident needs no watch.
    let d = w.ok(Command::CheckGps {
        unit: unit_id("TAB-01"),
    });
    assert!(d.effects.is_empty());
    let refused = w.refused(Command::CheckGps {
        unit: unit_id("TAB-99"),
    });
    assert_eq!(refused.code(), "unknown");
}
