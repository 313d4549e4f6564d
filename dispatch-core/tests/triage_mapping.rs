//! A telephone triage becomes the assessment dispatch works with, carrying its whole
//! record; an assessment that contradicts its own record is refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use dispatch_core::facility::Capability;
use dispatch_core::fleet::UnitKind;
use dispatch_core::model::{Assessment, Disposition, Priority, ReferralKind};
use dispatch_core::{Command, Event, Rejection};
use support::*;
use triage::{Caller, ProtocolSet, Sex};

fn evaluate(complaint: &str, age: f64, sex: Sex, findings: &[&str]) -> triage::Outcome {
    ProtocolSet::builtin()
        .unwrap()
        .evaluate(complaint, Caller::new(age, sex, None).unwrap(), findings)
        .unwrap()
}

#[test]
fn a_stroke_triage_needs_a_tam_and_a_stroke_unit() {
    let outcome = evaluate(
        "sintomas_neurologicos",
        67.0,
        Sex::F,
        &[
            "debilidad_un_lado",
            "cara_desviada",
            "inicio_subito",
            "inicio_menos_4_5_horas",
        ],
    );
    let assessment = Assessment::from_triage(&outcome);
    assert!(assessment.level <= 2, "{assessment:?}");
    assert!(matches!(
        assessment.disposition,
        Disposition::Ambulance { .. }
    ));
    assert_eq!(assessment.capability, Some(Capability::Stroke));
    assert_eq!(assessment.route.as_deref(), Some("acv"));
    assert!(
        assessment.protocol.contains("sintomas_neurologicos@"),
        "{}",
        assessment.protocol
    );
    assert!(assessment.protocol.contains("sha256:"));
    assert_eq!(assessment.triage.as_deref(), Some(&outcome));
}

#[test]
fn every_level_maps_to_its_priority_and_every_disposition_to_a_modality() {
    assert_eq!(Priority::from_level(1), Priority::Critical);
    assert_eq!(Priority::from_level(2), Priority::High);
    assert_eq!(Priority::from_level(3), Priority::Medium);
    assert_eq!(Priority::from_level(4), Priority::Low);
    assert_eq!(Priority::from_level(5), Priority::Low);
    // Anxiety without risk is a psychology teleconsult.
    let outcome = evaluate(
        "crisis_salud_mental",
        30.0,
        Sex::M,
        &["ansiedad_sin_riesgo"],
    );
    let assessment = Assessment::from_triage(&outcome);
    assert_eq!(
        assessment.disposition,
        Disposition::Referral {
            modality: ReferralKind::TeleconsultPsychology
        }
    );
    // No breathing is a TAM whatever the complaint.
    let outcome = evaluate("caida", 80.0, Sex::F, &["no_respira"]);
    let assessment = Assessment::from_triage(&outcome);
    assert_eq!(assessment.level, 1);
    assert_eq!(
        assessment.disposition,
        Disposition::Ambulance {
            unit: UnitKind::Tam
        }
    );
}

#[test]
fn the_triage_record_is_stored_with_the_incident_and_a_contradiction_is_refused() {
    let mut w = World::new();
    let d = w.ok(Command::OpenIncident {
        call: None,
        operator: operator(),
        summary: "Dolor en el pecho".into(),
        location: None,
    });
    let Event::IncidentOpened { incident, .. } = d.events[0] else {
        panic!()
    };
    let outcome = evaluate(
        "dolor_toracico",
        58.0,
        Sex::M,
        &["dolor_opresivo", "diaforesis", "dolor_mas_20_min"],
    );
    let honest = Assessment::from_triage(&outcome);
    let mut forged = honest.clone();
    forged.level = 5;
    forged.priority = Priority::Low;
    let rejection = w.refused(Command::RecordAssessment {
        incident,
        assessment: forged,
    });
    assert!(
        matches!(&rejection, Rejection::InvalidInput(m) if m.contains("disagrees with its own triage record")),
        "{rejection}"
    );
    w.ok(Command::RecordAssessment {
        incident,
        assessment: honest.clone(),
    });
    let stored = w
        .dispatch
        .incident(incident)
        .unwrap()
        .assessment
        .clone()
        .unwrap();
    assert_eq!(stored.triage.unwrap().trace, outcome.trace);
    w.assert_replay_reproduces_state();
}
