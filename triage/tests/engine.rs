//! The engine as the operator console drives it: one question at a time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use triage::{
    AnswerError, Caller, Disposition, EvaluateError, Level, OverrideDirection, OverrideError,
    OverrideRequest, Route, Sex, StartError,
};

fn adult() -> Caller {
    Caller::new(58.0, Sex::M, None).unwrap()
}

const VITAL_ORDER: [&str; 12] = [
    "no_responde",
    "no_respira",
    "respiracion_agonica",
    "convulsion_activa",
    "atragantamiento",
    "sangrado_masivo",
    "estridor",
    "piel_azul_cianosis",
    "no_puede_hablar_frases",
    "palidez_sudoracion_fria",
    "somnolencia_extrema",
    "confusion_nueva",
];

#[test]
fn vital_threat_questions_come_first_in_their_written_order() {
    let set = common::small_set();
    let mut s = set.start("dolor_toracico", adult()).unwrap();
    for code in VITAL_ORDER {
        let q = s.next_question().unwrap();
        assert_eq!(q.finding, code);
        assert!(q.text.starts_with('¿') && !q.why.is_empty());
        s.answer(code, false).unwrap();
    }
    assert_eq!(s.next_question().unwrap().finding, "dolor_opresivo");
}

#[test]
fn an_unresponsive_caller_who_does_not_breathe_gets_cpr_after_ruling_out_a_seizure() {
    let set = common::small_set();
    let mut s = set.start("dolor_toracico", adult()).unwrap();
    s.answer("no_responde", true).unwrap();
    s.answer("no_respira", true).unwrap();
    // Paro is already true, but the seizure rule comes first and is still open.
    assert_eq!(s.next_question().unwrap().finding, "convulsion_activa");
    s.answer("convulsion_activa", false).unwrap();
    assert!(s.is_decided());
    let outcome = s.outcome().unwrap();
    assert_eq!(outcome.level(), Level::I);
    assert_eq!(outcome.disposition(), Disposition::AmbulanciaTam);
    assert_eq!(outcome.route(), Some(Route::Sca));
    assert_eq!(outcome.computed.rule.id, "amenazas_vitales.paro_adulto");
    assert!(
        outcome
            .computed
            .instructions
            .iter()
            .any(|i| i.contains("centro del pecho"))
    );
    let findings: Vec<_> = outcome.trace.iter().map(|t| t.finding.as_str()).collect();
    assert_eq!(findings, ["no_responde", "no_respira", "convulsion_activa"]);
    assert!(
        outcome.trace[1]
            .effect
            .contains("Cumple «amenazas_vitales.paro_adulto»"),
        "{:?}",
        outcome.trace
    );
    assert!(
        outcome.trace[2]
            .effect
            .starts_with("Decide «amenazas_vitales.paro_adulto»")
    );
}

#[test]
fn children_get_the_paediatric_route_and_infant_cpr() {
    let set = common::small_set();
    let baby = Caller::new(0.5, Sex::F, None).unwrap();
    let mut s = set.start("dolor_toracico", baby).unwrap();
    s.answer("no_responde", true).unwrap();
    s.answer("no_respira", true).unwrap();
    s.answer("convulsion_activa", false).unwrap();
    let o = s.outcome().unwrap();
    assert_eq!(o.computed.rule.id, "amenazas_vitales.paro_lactante");
    assert_eq!(o.route(), Some(Route::Pediatria));
    assert!(
        o.computed
            .instructions
            .iter()
            .any(|i| i.contains("dos dedos"))
    );
}

#[test]
fn a_typical_coronary_syndrome_is_level_one_with_a_medicalised_ambulance() {
    let set = common::small_set();
    let o = set
        .evaluate("dolor_toracico", adult(), &["dolor_opresivo", "diaforesis"])
        .unwrap();
    assert_eq!(
        (o.level(), o.disposition(), o.route()),
        (Level::I, Disposition::AmbulanciaTam, Some(Route::Sca))
    );
    assert_eq!(o.ambulance().map(triage::AmbulanceType::code), Some("TAM"));
    assert_eq!(o.protocol_label(), "dolor_toracico@1.0.0");
    assert_eq!(o.protocol.sha256.len(), 64);
    assert!(
        o.protocol_record()
            .contains("amenazas_vitales@1.0.0 sha256:")
    );
    // Questions the outcome no longer depends on are not asked.
    assert!(!o.trace.iter().any(|t| t.finding == "dolor_leve"));
}

#[test]
fn mild_pain_without_red_flags_ends_in_a_teleconsult_with_warning_signs() {
    let set = common::small_set();
    let o = set
        .evaluate("dolor_toracico", adult(), &["dolor_leve"])
        .unwrap();
    assert_eq!(o.disposition(), Disposition::TeleconsultaGeneral);
    assert_eq!(o.level(), Level::IV);
    assert!(!o.computed.warning_signs.is_empty());
    assert_eq!(o.trace.last().unwrap().finding, "dolor_leve");
}

#[test]
fn answering_out_of_order_or_an_unknown_code_is_refused_and_changes_nothing() {
    let set = common::small_set();
    let mut s = set.start("dolor_toracico", adult()).unwrap();
    let err = s.answer("dolor_opresivo", true).unwrap_err();
    assert_eq!(
        err,
        AnswerError::OutOfOrder {
            expected: "no_responde".into(),
            given: "dolor_opresivo".into()
        }
    );
    assert!(err.to_string().contains("fuera de orden"));
    let err = s.answer("dolor_de_todo", true).unwrap_err();
    assert_eq!(err, AnswerError::UnknownFinding("dolor_de_todo".into()));
    assert!(s.trace().is_empty());
    assert_eq!(s.next_question().unwrap().finding, "no_responde");
    let err = s.outcome().unwrap_err();
    assert_eq!(err.next, "no_responde");
}

#[test]
fn answering_after_the_decision_is_refused() {
    let set = common::small_set();
    let mut s = set.start("dolor_toracico", adult()).unwrap();
    s.answer("no_responde", false).unwrap();
    s.answer("no_respira", false).unwrap();
    s.answer("respiracion_agonica", false).unwrap();
    s.answer("convulsion_activa", true).unwrap();
    assert!(s.next_question().is_none());
    let err = s.answer("atragantamiento", false).unwrap_err();
    assert!(
        matches!(err, AnswerError::AlreadyDecided { ref rule } if rule == "amenazas_vitales.convulsion_en_curso")
    );
}

#[test]
fn undo_takes_back_the_last_answer() {
    let set = common::small_set();
    let mut s = set.start("dolor_toracico", adult()).unwrap();
    s.answer("no_responde", false).unwrap();
    s.answer("no_respira", true).unwrap();
    s.answer("convulsion_activa", false).unwrap();
    assert!(s.is_decided());
    assert_eq!(s.undo().as_deref(), Some("convulsion_activa"));
    assert!(!s.is_decided());
    assert_eq!(s.undo().as_deref(), Some("no_respira"));
    assert_eq!(s.trace().len(), 1);
    assert_eq!(s.next_question().unwrap().finding, "no_respira");
    s.answer("no_respira", false).unwrap();
    assert_eq!(s.next_question().unwrap().finding, "respiracion_agonica");
}

#[test]
fn unknown_complaints_and_findings_are_errors_naming_them() {
    let set = common::small_set();
    let err = set.start("dolor_toraxico", adult()).unwrap_err();
    assert!(
        matches!(&err, StartError::UnknownComplaint { suggestion: Some(s), .. } if s == "dolor_toracico")
    );
    assert!(err.to_string().contains("`dolor_toraxico`"), "{err}");
    let err = set
        .evaluate("dolor_toracico", adult(), &["diaforesys"])
        .unwrap_err();
    assert!(
        matches!(&err, EvaluateError::UnknownFinding { code, suggestion: Some(s) } if code == "diaforesys" && s == "diaforesis")
    );
}

#[test]
fn derived_findings_must_agree_with_the_caller_data() {
    let set = common::small_set();
    let err = set
        .evaluate("dolor_toracico", adult(), &["lactante_menor_3_meses"])
        .unwrap_err();
    assert!(
        matches!(err, EvaluateError::ContradictsCallerData { .. }),
        "{err}"
    );
    let err = set
        .evaluate("dolor_toracico", adult(), &["embarazada"])
        .unwrap_err();
    assert!(err.to_string().contains("embarazada"), "{err}");
}

#[test]
fn an_upward_override_needs_no_reason_and_keeps_the_computed_outcome() {
    let set = common::small_set();
    let mut o = set
        .evaluate("dolor_toracico", adult(), &["dolor_leve"])
        .unwrap();
    o.apply_override(OverrideRequest {
        level: Level::II,
        disposition: Disposition::AmbulanciaTab,
        route: Some(Route::Sca),
        reason: None,
    })
    .unwrap();
    assert_eq!(o.level(), Level::II);
    assert_eq!(o.disposition(), Disposition::AmbulanciaTab);
    assert_eq!(o.computed.level, Level::IV);
    let ov = o.operator_override.as_ref().unwrap();
    assert_eq!(ov.direction, OverrideDirection::Up);
    assert!(o.summary().contains("Ajustado por el operador"));
    let json = serde_json::to_value(&o).unwrap();
    assert_eq!(json["operator_override"]["direction"], "up");
    assert_eq!(json["computed"]["level"], "IV");
}

#[test]
fn a_downward_override_needs_a_reason() {
    let set = common::small_set();
    let mut o = set
        .evaluate(
            "dolor_toracico",
            adult(),
            &["dolor_opresivo", "dolor_mas_20_min"],
        )
        .unwrap();
    assert_eq!(o.level(), Level::II);
    let down = OverrideRequest {
        level: Level::III,
        disposition: Disposition::UrgenciasPorSusMedios,
        route: Some(Route::Sca),
        reason: Some("   ".into()),
    };
    let err = o.apply_override(down.clone()).unwrap_err();
    assert!(matches!(err, OverrideError::ReasonRequired { .. }));
    assert!(err.to_string().contains("exige un motivo"));
    assert!(o.operator_override.is_none());
    o.apply_override(OverrideRequest {
        reason: Some("Dolor reproducible a la palpación, valorado por médico regulador".into()),
        ..down
    })
    .unwrap();
    assert_eq!(
        o.operator_override.as_ref().unwrap().direction,
        OverrideDirection::Down
    );
}

#[test]
fn overrides_that_change_nothing_or_do_not_fit_are_refused() {
    let set = common::small_set();
    let mut o = set
        .evaluate("dolor_toracico", adult(), &["dolor_leve"])
        .unwrap();
    let same = OverrideRequest {
        level: o.computed.level,
        disposition: o.computed.disposition,
        route: o.computed.route,
        reason: None,
    };
    assert_eq!(o.apply_override(same).unwrap_err(), OverrideError::NoChange);
    let err = o
        .apply_override(OverrideRequest {
            level: Level::I,
            disposition: Disposition::UrgenciasPorSusMedios,
            route: None,
            reason: None,
        })
        .unwrap_err();
    assert!(
        matches!(err, OverrideError::LevelDoesNotFitDisposition { .. }),
        "{err}"
    );
    let err = o
        .apply_override(OverrideRequest {
            level: Level::IV,
            disposition: Disposition::TeleconsultaGeneral,
            route: Some(Route::Sca),
            reason: None,
        })
        .unwrap_err();
    assert!(
        matches!(err, OverrideError::ReasonRequired { .. }),
        "a route-only change needs a reason"
    );
}

#[test]
fn the_outcome_round_trips_through_json() {
    let set = common::small_set();
    let o = set
        .evaluate("dolor_toracico", adult(), &["palpitaciones"])
        .unwrap();
    let text = serde_json::to_string(&o).unwrap();
    let back: triage::Outcome = serde_json::from_str(&text).unwrap();
    assert_eq!(back, o);
}

#[test]
fn the_same_inputs_give_the_same_outcome_and_trace() {
    let set = common::small_set();
    let a = set
        .evaluate("cefalea", adult(), &["fiebre_mas_39"])
        .unwrap();
    let b = common::small_set()
        .evaluate("cefalea", adult(), &["fiebre_mas_39"])
        .unwrap();
    assert_eq!(a, b);
    assert_eq!(a.disposition(), Disposition::UrgenciasPorSusMedios);
}

#[test]
fn a_protocol_refuses_callers_it_is_not_for_and_says_which_to_use() {
    let set = triage::ProtocolSet::builtin().unwrap();
    let err = set.start("fiebre_nino", adult()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StartError::NotApplicable { .. }));
    assert!(
        msg.contains("menores de 14 años") && msg.contains("fiebre_adulto"),
        "{msg}"
    );

    let not_pregnant = Caller::new(25.0, Sex::F, None).unwrap();
    let msg = set
        .start("embarazo_sangrado", not_pregnant)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("semanas de embarazo"), "{msg}");

    let pregnant = Caller::new(25.0, Sex::F, Some(30.0)).unwrap();
    let msg = set.start("posparto", pregnant).unwrap_err().to_string();
    assert!(msg.contains("embarazada"), "{msg}");

    let msg = set
        .start("embarazo_dolor_contracciones", adult())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("sexo \"F\" o \"X\""), "{msg}");
}

#[test]
fn contradictory_caller_data_in_a_batch_case_is_an_error_naming_it() {
    let set = triage::ProtocolSet::builtin().unwrap();
    let case = |age: f64, sex: Sex, weeks: Option<f64>| triage::batch::Case {
        id: "x".into(),
        age_years: age,
        sex,
        pregnancy_weeks: weeks,
        chief_complaint: "dolor_abdominal".into(),
        findings: vec![],
        expected: None,
    };
    let err = triage::batch::evaluate_case(set, &case(5.0, Sex::F, Some(20.0))).unwrap_err();
    assert!(
        err.to_string()
            .contains("embarazo de 20 semanas a los 5 años"),
        "{err}"
    );
    let err = triage::batch::evaluate_case(set, &case(30.0, Sex::M, Some(12.0))).unwrap_err();
    assert!(
        err.to_string().contains("sexo \"M\" con 12 semanas"),
        "{err}"
    );
    let err = triage::batch::evaluate_case(set, &case(-2.0, Sex::F, None)).unwrap_err();
    assert!(err.to_string().contains("negativa"), "{err}");
}

#[test]
fn suicidal_ideation_with_means_is_immediate_and_anxiety_without_risk_goes_to_psychology() {
    let set = triage::ProtocolSet::builtin().unwrap();
    let o = set
        .evaluate("ideacion_suicida", adult(), &["medios_disponibles"])
        .unwrap();
    assert_eq!(
        (o.level(), o.disposition(), o.route()),
        (
            Level::I,
            Disposition::AmbulanciaTam,
            Some(Route::SaludMental)
        )
    );
    let o = set
        .evaluate("crisis_salud_mental", adult(), &["ansiedad_sin_riesgo"])
        .unwrap();
    assert_eq!(o.disposition(), Disposition::TeleconsultaPsicologia);
}

#[test]
fn violence_routes_to_the_emergency_department_or_to_safety_first() {
    let set = triage::ProtocolSet::builtin().unwrap();
    let woman = Caller::new(24.0, Sex::F, None).unwrap();
    let o = set
        .evaluate(
            "violencia_sexual",
            woman,
            &["agresion_sexual_menos_72_horas"],
        )
        .unwrap();
    assert_eq!(o.disposition(), Disposition::UrgenciasPorSusMedios);
    assert_eq!(o.route(), Some(Route::Violencias));
    let o = set
        .evaluate("violencia_intrafamiliar", woman, &["agresor_presente"])
        .unwrap();
    assert!(
        o.computed
            .instructions
            .iter()
            .any(|i| i.contains("No enfrente al agresor"))
    );
}

#[test]
fn sessions_and_outcomes_can_live_in_a_console_connection_task() {
    fn assert_send_sync_static<T: Send + Sync + 'static>() {}
    assert_send_sync_static::<triage::Session>();
    assert_send_sync_static::<triage::Outcome>();
    assert_send_sync_static::<triage::ProtocolSet>();
}
