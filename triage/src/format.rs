//! The shape of the protocol files (TOML, keys in Spanish for the clinicians who write
//! them). Three kinds of file live in a protocol directory:
//!
//! * `vocabulario.toml` — the chief complaints (`[motivos]`) and the findings
//!   (`[hallazgos]`), each finding with its `tipo`:
//!   `alarma` (a red flag), `sintoma` (a symptom that is not a red flag; like red flags and
//!   context, its presence may only raise urgency), `tranquilizador` (a
//!   reassuring finding: the only kind a rule may require to be absent with `ninguno`),
//!   `contexto` (circumstances such as living alone) or `derivado` (answered from the caller's
//!   data, never asked: `de = "edad_menor_3_meses"` or `de = "embarazo"`).
//! * `amenazas_vitales.toml` — the universal vital-threat questions asked first for every
//!   complaint, their rules and outcomes. An outcome's `ruta = "del_protocolo"` takes the
//!   complaint's `[amenaza_vital] ruta`. A rule may require a `contexto` that complaints
//!   declare (e.g. `trauma`).
//! * one `<complaint>.toml` per chief complaint: `id` (= the complaint code and the file
//!   name), `version`, `titulo`, optional `[aplica]` (who the protocol is for),
//!   `[amenaza_vital]`, ordered `[[pregunta]]`s, ordered `[[regla]]`s and `[resultado.NAME]`
//!   outcomes.
//!
//! Rules are tried in order and the first whose `cuando` holds decides; they must go from
//! the most to the least urgent level. A `cuando` holds when every finding in `todos` is
//! present, at least `minimo` (default 1) of `alguno` are present, none of `ninguno` is,
//! and the caller matches `edad_min` (inclusive, years), `edad_menor_que` (exclusive),
//! `sexo`, `embarazo`, `semanas_min`, `semanas_menor_que` and `contexto`.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

pub(crate) type Text = Spanned<String>;

/// `vocabulario.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VocabularyFile {
    pub(crate) version: Text,
    pub(crate) motivos: BTreeMap<String, Spanned<String>>,
    pub(crate) hallazgos: BTreeMap<String, Spanned<FindingDef>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FindingDef {
    pub(crate) tipo: Text,
    pub(crate) etiqueta: Text,
    pub(crate) de: Option<Text>,
}

/// `amenazas_vitales.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UniversalFile {
    pub(crate) id: Text,
    pub(crate) version: Text,
    pub(crate) titulo: Text,
    #[serde(default)]
    pub(crate) contextos: Vec<Text>,
    #[serde(default)]
    pub(crate) pregunta: Vec<QuestionDef>,
    #[serde(default)]
    pub(crate) regla: Vec<RuleDef>,
    #[serde(default)]
    pub(crate) resultado: BTreeMap<String, Spanned<OutcomeDef>>,
}

/// `<complaint>.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProtocolFile {
    pub(crate) id: Text,
    pub(crate) version: Text,
    pub(crate) titulo: Text,
    pub(crate) descripcion: Option<Text>,
    pub(crate) aplica: Option<Spanned<ApplicabilityDef>>,
    pub(crate) amenaza_vital: Spanned<VitalDef>,
    #[serde(default)]
    pub(crate) pregunta: Vec<QuestionDef>,
    #[serde(default)]
    pub(crate) regla: Vec<RuleDef>,
    #[serde(default)]
    pub(crate) resultado: BTreeMap<String, Spanned<OutcomeDef>>,
}

/// `[aplica]`: who the protocol is for. Calls outside it are refused with the hint.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApplicabilityDef {
    pub(crate) edad_min: Option<Spanned<f64>>,
    pub(crate) edad_menor_que: Option<Spanned<f64>>,
    pub(crate) sexo: Option<Vec<Text>>,
    /// `"requerido"` or `"excluido"`.
    pub(crate) embarazo: Option<Text>,
    /// What to tell the operator when the caller is outside (e.g. which protocol to use).
    pub(crate) sugerencia: Option<Text>,
}

/// `[amenaza_vital]`: how this complaint fills the universal vital-threat outcomes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VitalDef {
    /// Route of vital-threat outcomes (`"ninguna"` for none).
    pub(crate) ruta: Text,
    /// Route instead for children (< 14 years), if different.
    pub(crate) ruta_pediatrica: Option<Text>,
    /// Contexts this complaint belongs to (declared in `amenazas_vitales.toml`).
    #[serde(default)]
    pub(crate) contextos: Vec<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct QuestionDef {
    pub(crate) hallazgo: Text,
    pub(crate) texto: Text,
    pub(crate) por_que: Text,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuleDef {
    pub(crate) id: Text,
    #[serde(default)]
    pub(crate) cuando: ConditionDef,
    pub(crate) resultado: Text,
    pub(crate) motivo: Text,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConditionDef {
    #[serde(default)]
    pub(crate) todos: Vec<Text>,
    #[serde(default)]
    pub(crate) alguno: Vec<Text>,
    pub(crate) minimo: Option<Spanned<i64>>,
    #[serde(default)]
    pub(crate) ninguno: Vec<Text>,
    pub(crate) edad_min: Option<Spanned<f64>>,
    pub(crate) edad_menor_que: Option<Spanned<f64>>,
    pub(crate) sexo: Option<Vec<Text>>,
    pub(crate) embarazo: Option<Spanned<bool>>,
    pub(crate) semanas_min: Option<Spanned<f64>>,
    pub(crate) semanas_menor_que: Option<Spanned<f64>>,
    pub(crate) contexto: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OutcomeDef {
    pub(crate) nivel: Text,
    pub(crate) disposicion: Text,
    pub(crate) ruta: Option<Text>,
    pub(crate) resumen: Text,
    #[serde(default)]
    pub(crate) instrucciones: Vec<Text>,
    #[serde(default)]
    pub(crate) signos_alarma: Vec<Text>,
}
