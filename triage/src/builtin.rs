//! The protocols shipped with Regula, embedded at build time so that the engine and
//! `regula triage validate` work without a protocol directory.

use crate::problem::SourceFile;

/// Every built-in protocol file: `(file name, text)`.
pub const FILES: &[(&str, &str)] = &[
    (
        "amenazas_vitales.toml",
        include_str!("../protocols/amenazas_vitales.toml"),
    ),
    ("caida.toml", include_str!("../protocols/caida.toml")),
    ("cefalea.toml", include_str!("../protocols/cefalea.toml")),
    (
        "consulta_medicamento.toml",
        include_str!("../protocols/consulta_medicamento.toml"),
    ),
    (
        "convulsiones.toml",
        include_str!("../protocols/convulsiones.toml"),
    ),
    (
        "crisis_salud_mental.toml",
        include_str!("../protocols/crisis_salud_mental.toml"),
    ),
    (
        "diabetes_glucosa.toml",
        include_str!("../protocols/diabetes_glucosa.toml"),
    ),
    (
        "dificultad_respiratoria.toml",
        include_str!("../protocols/dificultad_respiratoria.toml"),
    ),
    (
        "dolor_abdominal.toml",
        include_str!("../protocols/dolor_abdominal.toml"),
    ),
    (
        "dolor_espalda.toml",
        include_str!("../protocols/dolor_espalda.toml"),
    ),
    (
        "dolor_toracico.toml",
        include_str!("../protocols/dolor_toracico.toml"),
    ),
    (
        "embarazo_dolor_contracciones.toml",
        include_str!("../protocols/embarazo_dolor_contracciones.toml"),
    ),
    (
        "embarazo_hipertension_sintomas.toml",
        include_str!("../protocols/embarazo_hipertension_sintomas.toml"),
    ),
    (
        "embarazo_sangrado.toml",
        include_str!("../protocols/embarazo_sangrado.toml"),
    ),
    (
        "fiebre_adulto.toml",
        include_str!("../protocols/fiebre_adulto.toml"),
    ),
    (
        "fiebre_nino.toml",
        include_str!("../protocols/fiebre_nino.toml"),
    ),
    (
        "herida_sangrado.toml",
        include_str!("../protocols/herida_sangrado.toml"),
    ),
    (
        "ideacion_suicida.toml",
        include_str!("../protocols/ideacion_suicida.toml"),
    ),
    (
        "inconsciente_no_responde.toml",
        include_str!("../protocols/inconsciente_no_responde.toml"),
    ),
    (
        "intoxicacion_envenenamiento.toml",
        include_str!("../protocols/intoxicacion_envenenamiento.toml"),
    ),
    (
        "mordedura_animal.toml",
        include_str!("../protocols/mordedura_animal.toml"),
    ),
    (
        "paro_cardiorrespiratorio.toml",
        include_str!("../protocols/paro_cardiorrespiratorio.toml"),
    ),
    ("posparto.toml", include_str!("../protocols/posparto.toml")),
    (
        "problema_ojo.toml",
        include_str!("../protocols/problema_ojo.toml"),
    ),
    (
        "quemadura.toml",
        include_str!("../protocols/quemadura.toml"),
    ),
    (
        "reaccion_alergica.toml",
        include_str!("../protocols/reaccion_alergica.toml"),
    ),
    (
        "sintomas_neurologicos.toml",
        include_str!("../protocols/sintomas_neurologicos.toml"),
    ),
    (
        "sintomas_respiratorios_nino.toml",
        include_str!("../protocols/sintomas_respiratorios_nino.toml"),
    ),
    (
        "sintomas_urinarios.toml",
        include_str!("../protocols/sintomas_urinarios.toml"),
    ),
    (
        "trauma_accidente_transito.toml",
        include_str!("../protocols/trauma_accidente_transito.toml"),
    ),
    (
        "violencia_intrafamiliar.toml",
        include_str!("../protocols/violencia_intrafamiliar.toml"),
    ),
    (
        "violencia_sexual.toml",
        include_str!("../protocols/violencia_sexual.toml"),
    ),
    (
        "vocabulario.toml",
        include_str!("../protocols/vocabulario.toml"),
    ),
    (
        "vomito_diarrea.toml",
        include_str!("../protocols/vomito_diarrea.toml"),
    ),
];

/// The built-in files as sources, named `protocols/<file>`.
pub fn sources() -> Vec<SourceFile> {
    FILES
        .iter()
        .map(|(name, text)| SourceFile::new(format!("protocols/{name}"), *text))
        .collect()
}
