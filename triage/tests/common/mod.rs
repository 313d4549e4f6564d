//! Helpers shared by the integration tests: small protocol sets built on the real
//! vocabulary and vital-threat screen.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use triage::{ProtocolSet, SourceFile, ValidationErrors};

pub(crate) const VOCABULARY: &str = include_str!("../../protocols/vocabulario.toml");
pub(crate) const UNIVERSAL: &str = include_str!("../../protocols/amenazas_vitales.toml");
pub(crate) const CHEST_PAIN: &str = include_str!("../../protocols/dolor_toracico.toml");

/// A small, valid headache protocol used as the base of the broken-file tests.
pub(crate) const MINI: &str = r#"id = "cefalea"
version = "0.1.0"
titulo = "Dolor de cabeza (prueba)"

[amenaza_vital]
ruta = "ninguna"

[[pregunta]]
hallazgo = "cefalea_peor_de_la_vida"
texto = "¿Es el peor dolor de cabeza de su vida?"
por_que = "Puede ser una hemorragia."

[[pregunta]]
hallazgo = "fiebre_mas_39"
texto = "¿Tiene fiebre de 39 o más?"
por_que = "Puede ser una meningitis."

[[pregunta]]
hallazgo = "dolor_leve"
texto = "¿Es un dolor leve?"
por_que = "El dolor leve puede esperar."

[[regla]]
id = "peor"
cuando = { todos = ["cefalea_peor_de_la_vida"] }
resultado = "grave"
motivo = "Peor dolor de su vida."

[[regla]]
id = "fiebre"
cuando = { todos = ["fiebre_mas_39"] }
resultado = "urgencias"
motivo = "Fiebre alta con dolor de cabeza."

[[regla]]
id = "no_leve"
cuando = { ninguno = ["dolor_leve"] }
resultado = "prioritaria"
motivo = "Dolor no leve."

[[regla]]
id = "resto"
resultado = "leve"
motivo = "Dolor leve sin alarmas."

[resultado.grave]
nivel = "II"
disposicion = "ambulancia_tam"
ruta = "acv"
resumen = "Grave."
instrucciones = ["Acuéstelo."]

[resultado.urgencias]
nivel = "III"
disposicion = "urgencias_por_sus_medios"
resumen = "Urgencias."
instrucciones = ["Vaya a urgencias."]

[resultado.prioritaria]
nivel = "IV"
disposicion = "consulta_prioritaria"
resumen = "Consulta hoy."
instrucciones = ["Le damos cita."]
signos_alarma = ["Empeora."]

[resultado.leve]
nivel = "V"
disposicion = "orientacion_autocuidado"
resumen = "Autocuidado."
instrucciones = ["Descanse."]
signos_alarma = ["Empeora."]
"#;

/// Vocabulary, vital-threat screen, the real chest-pain protocol and `mini` as
/// `cefalea.toml`.
pub(crate) fn sources_with(mini: &str) -> Vec<SourceFile> {
    vec![
        SourceFile::new("protocols/vocabulario.toml", VOCABULARY),
        SourceFile::new("protocols/amenazas_vitales.toml", UNIVERSAL),
        SourceFile::new("protocols/dolor_toracico.toml", CHEST_PAIN),
        SourceFile::new("protocols/cefalea.toml", mini),
    ]
}

pub(crate) fn load(mini: &str) -> Result<ProtocolSet, ValidationErrors> {
    ProtocolSet::from_sources(&sources_with(mini))
}

pub(crate) fn small_set() -> ProtocolSet {
    load(MINI).unwrap()
}

/// The problems of a broken `mini`, as `file:line: message` strings.
pub(crate) fn problems(mini: &str) -> Vec<String> {
    match load(mini) {
        Ok(_) => panic!("the broken protocol was accepted"),
        Err(e) => e.problems().iter().map(ToString::to_string).collect(),
    }
}

/// Asserts that exactly one problem contains every fragment.
pub(crate) fn assert_problem(problems: &[String], fragments: &[&str]) {
    let hits: Vec<_> = problems
        .iter()
        .filter(|p| fragments.iter().all(|f| p.contains(f)))
        .collect();
    assert_eq!(
        hits.len(),
        1,
        "expected one problem with {fragments:?}, got {problems:#?}"
    );
}
