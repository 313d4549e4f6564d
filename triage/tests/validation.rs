//! Broken protocol files are refused with problems naming the file, the line and the code.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{MINI, assert_problem, problems};
use triage::{ProblemKind, ProtocolSet, SourceFile};

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn the_mini_protocol_used_by_these_tests_is_valid() {
    let set = common::small_set();
    assert!(set.protocol("cefalea").is_some());
}

#[test]
fn invalid_toml_is_reported_with_its_line() {
    let broken = MINI.replace(
        "titulo = \"Dolor de cabeza (prueba)\"",
        "titulo = \"sin cerrar",
    );
    let p = problems(&broken);
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(p[0].starts_with("protocols/cefalea.toml:3:"), "{p:#?}");
}

#[test]
fn an_unknown_key_is_reported_with_its_line() {
    let broken = MINI.replace(
        "por_que = \"Puede ser una hemorragia.\"",
        "porque = \"Puede ser una hemorragia.\"",
    );
    let p = problems(&broken);
    assert_problem(&p, &["protocols/cefalea.toml:", "porque"]);
}

#[test]
fn an_unknown_finding_is_named_with_a_suggestion() {
    let broken = MINI.replace(
        "hallazgo = \"fiebre_mas_39\"",
        "hallazgo = \"fiebre_mas_40\"",
    );
    let line = line_of(&broken, "fiebre_mas_40");
    let p = problems(&broken);
    assert_problem(
        &p,
        &[
            &format!("cefalea.toml:{line}:"),
            "unknown finding `fiebre_mas_40`",
            "did you mean `fiebre_mas_39`",
        ],
    );
}

#[test]
fn unknown_levels_dispositions_routes_and_outcomes_are_named() {
    let broken = MINI
        .replace("nivel = \"III\"", "nivel = \"3\"")
        .replace(
            "disposicion = \"consulta_prioritaria\"",
            "disposicion = \"consulta_urgente\"",
        )
        .replace("ruta = \"acv\"", "ruta = \"ictus\"")
        .replace("resultado = \"leve\"", "resultado = \"levee\"");
    let p = problems(&broken);
    assert_problem(&p, &["unknown level `3`"]);
    assert_problem(&p, &["unknown disposition `consulta_urgente`"]);
    assert_problem(&p, &["unknown route `ictus`"]);
    assert_problem(
        &p,
        &["outcome `levee` is not defined", "did you mean `leve`"],
    );
}

#[test]
fn a_shadowed_rule_is_unreachable_and_names_the_rule_that_hides_it() {
    let broken = MINI.replace(
        "[[regla]]\nid = \"resto\"",
        "[[regla]]\nid = \"fiebre_y_peor\"\ncuando = { todos = [\"fiebre_mas_39\", \"cefalea_peor_de_la_vida\"] }\nresultado = \"leve\"\nmotivo = \"Nunca.\"\n\n[[regla]]\nid = \"resto\"",
    );
    let line = line_of(&broken, "id = \"fiebre_y_peor\"");
    let p = problems(&broken);
    assert_problem(
        &p,
        &[
            &format!("cefalea.toml:{line}:"),
            "rule `fiebre_y_peor` never applies",
            "`cefalea.peor`",
        ],
    );
}

#[test]
fn rules_with_the_same_conditions_and_different_outcomes_are_a_conflict() {
    let broken = MINI.replace(
        "[[regla]]\nid = \"no_leve\"",
        "[[regla]]\nid = \"fiebre_otra_vez\"\ncuando = { todos = [\"fiebre_mas_39\"] }\nresultado = \"prioritaria\"\nmotivo = \"Otra vez.\"\n\n[[regla]]\nid = \"no_leve\"",
    );
    let line = line_of(&broken, "id = \"fiebre_otra_vez\"");
    let first = line_of(&broken, "id = \"fiebre\"");
    let p = problems(&broken);
    assert_problem(
        &p,
        &[
            &format!("cefalea.toml:{line}:"),
            "same conditions but different outcomes",
            &format!("cefalea.toml:{first}"),
        ],
    );
    let set_err = common::load(&broken).unwrap_err();
    assert!(
        set_err
            .problems()
            .iter()
            .any(|p| p.kind == ProblemKind::ConflictingRules)
    );
}

#[test]
fn a_protocol_without_a_fallback_has_a_path_that_does_not_terminate() {
    let broken = MINI.replace(
        "[[regla]]\nid = \"resto\"\nresultado = \"leve\"\nmotivo = \"Dolor leve sin alarmas.\"\n",
        "",
    );
    let p = problems(&broken);
    assert_problem(
        &p,
        &[
            "cefalea.toml: for a caller",
            "answering yes to `dolor_leve` and no to the rest, no rule applies",
            "fallback",
        ],
    );
}

#[test]
fn a_more_urgent_rule_after_a_less_urgent_one_is_refused() {
    let broken = MINI
        .replace("[[regla]]\nid = \"peor\"", "[[regla]]\nid = \"peor_tarde\"")
        .replace(
            "[[regla]]\nid = \"resto\"",
            "[[regla]]\nid = \"peor\"\ncuando = { todos = [\"cefalea_peor_de_la_vida\"] }\nresultado = \"grave\"\nmotivo = \"x\"\n\n[[regla]]\nid = \"resto\"",
        );
    // Move the first rule (level II) after the level IV rule: the simplest way is to
    // make the first one less urgent instead.
    let broken = broken.replacen("resultado = \"grave\"", "resultado = \"prioritaria\"", 1);
    let line = line_of(&broken, "id = \"fiebre\"");
    let p = problems(&broken);
    assert_problem(
        &p,
        &[
            &format!("cefalea.toml:{line}:"),
            "rule `fiebre` (level III) comes after rule `cefalea.peor_tarde` (level IV",
        ],
    );
}

#[test]
fn a_red_flag_may_not_be_required_absent() {
    let broken = MINI.replace(
        "cuando = { ninguno = [\"dolor_leve\"] }",
        "cuando = { ninguno = [\"fiebre_mas_39\"] }",
    );
    let p = problems(&broken);
    assert_problem(
        &p,
        &[
            "`ninguno` lists `fiebre_mas_39`",
            "not a reassuring finding",
        ],
    );
}

#[test]
fn incomplete_outcomes_are_refused() {
    let broken = MINI
        .replace("instrucciones = [\"Descanse.\"]\n", "")
        .replace("nivel = \"II\"\ndisposicion = \"ambulancia_tam\"", "nivel = \"IV\"\ndisposicion = \"ambulancia_tam\"")
        .replace("resumen = \"Consulta hoy.\"\ninstrucciones = [\"Le damos cita.\"]\nsignos_alarma = [\"Empeora.\"]", "resumen = \"Consulta hoy.\"\ninstrucciones = [\"Le damos cita.\"]");
    let p = problems(&broken);
    assert_problem(&p, &["outcome `leve` has no `instrucciones`"]);
    assert_problem(
        &p,
        &["outcome `grave`: level IV does not fit disposition `ambulancia_tam` (allowed: I, II)"],
    );
    assert_problem(
        &p,
        &[
            "outcome `prioritaria` (consulta_prioritaria) leaves the caller at home and needs `signos_alarma`",
        ],
    );
}

#[test]
fn a_question_no_rule_uses_is_unreachable() {
    let broken = MINI.replace(
        "[[regla]]\nid = \"peor\"",
        "[[pregunta]]\nhallazgo = \"vomitos_persistentes\"\ntexto = \"¿Vomita?\"\npor_que = \"x\"\n\n[[regla]]\nid = \"peor\"",
    );
    let p = problems(&broken);
    assert_problem(
        &p,
        &["question about `vomitos_persistentes` is never asked"],
    );
}

#[test]
fn an_unused_outcome_is_reported() {
    let broken = format!(
        "{MINI}\n[resultado.sobrante]\nnivel = \"V\"\ndisposicion = \"orientacion_autocuidado\"\nresumen = \"x\"\ninstrucciones = [\"x\"]\nsignos_alarma = [\"x\"]\n"
    );
    let p = problems(&broken);
    assert_problem(&p, &["outcome `sobrante` is used by no reachable rule"]);
}

#[test]
fn contradictory_rules_are_reported() {
    let broken = MINI
        .replace("cuando = { todos = [\"fiebre_mas_39\"] }", "cuando = { todos = [\"fiebre_mas_39\", \"dolor_leve\"], ninguno = [\"dolor_leve\"] }")
        .replace("cuando = { todos = [\"cefalea_peor_de_la_vida\"] }", "cuando = { todos = [\"cefalea_peor_de_la_vida\"], edad_min = 60, edad_menor_que = 18 }");
    let p = problems(&broken);
    assert_problem(&p, &["rule `fiebre` requires and excludes `dolor_leve`"]);
    assert_problem(
        &p,
        &["rule `peor`: `edad_min` 60 is not below `edad_menor_que` 18"],
    );
}

#[test]
fn derived_and_duplicate_questions_are_refused() {
    let broken = MINI.replace(
        "[[regla]]\nid = \"peor\"",
        "[[pregunta]]\nhallazgo = \"embarazada\"\ntexto = \"¿Está embarazada?\"\npor_que = \"x\"\n\n[[pregunta]]\nhallazgo = \"no_respira\"\ntexto = \"¿Respira?\"\npor_que = \"x\"\n\n[[regla]]\nid = \"peor\"",
    );
    let p = problems(&broken);
    assert_problem(
        &p,
        &["`embarazada` is derived from the caller's data and cannot be asked"],
    );
    assert_problem(
        &p,
        &["`no_respira` is already asked at protocols/amenazas_vitales.toml:"],
    );
}

#[test]
fn a_rule_using_a_finding_no_question_asks_is_refused() {
    let broken = MINI.replace(
        "cuando = { todos = [\"fiebre_mas_39\"] }",
        "cuando = { todos = [\"rigidez_nuca\"] }",
    );
    let p = problems(&broken);
    assert_problem(
        &p,
        &["rule `fiebre` uses `rigidez_nuca`, which no question asks"],
    );
}

#[test]
fn questions_must_be_questions() {
    let broken = MINI.replace(
        "texto = \"¿Tiene fiebre de 39 o más?\"",
        "texto = \"Tiene fiebre\"",
    );
    let p = problems(&broken);
    assert_problem(
        &p,
        &["question text for `fiebre_mas_39` must be a question"],
    );
}

#[test]
fn a_protocol_whose_id_is_not_a_complaint_is_refused() {
    let broken = MINI.replace("id = \"cefalea\"", "id = \"cefalia\"");
    let p = problems(&broken);
    assert_problem(
        &p,
        &[
            "`cefalia` is not a chief complaint",
            "did you mean `cefalea`",
        ],
    );
    assert_problem(&p, &["id `cefalia` must match the file name `cefalea`"]);
}

#[test]
fn missing_required_files_are_named() {
    let only_protocol = [SourceFile::new("cefalea.toml", MINI)];
    let err = ProtocolSet::from_sources(&only_protocol).unwrap_err();
    assert!(
        err.to_string()
            .contains("vocabulario.toml: the vocabulary file is missing"),
        "{err}"
    );
    let no_universal = [
        SourceFile::new("vocabulario.toml", common::VOCABULARY),
        SourceFile::new("cefalea.toml", MINI),
    ];
    let err = ProtocolSet::from_sources(&no_universal).unwrap_err();
    assert!(
        err.to_string()
            .contains("amenazas_vitales.toml: the universal vital-threat file is missing"),
        "{err}"
    );
}

#[test]
fn a_small_correct_set_is_incomplete_and_says_what_is_missing() {
    let set = common::small_set();
    let coverage: Vec<_> = set
        .coverage_problems()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        coverage
            .iter()
            .any(|p| p.contains("chief complaint `posparto` has no protocol")),
        "{coverage:#?}"
    );
    assert!(
        coverage
            .iter()
            .any(|p| p.contains("disposition `teleconsulta_pediatria`")),
        "{coverage:#?}"
    );
    assert!(
        coverage
            .iter()
            .any(|p| p.contains("rule `inconsciente_trauma` is reached in no protocol")),
        "{coverage:#?}"
    );
}
