//! The dispatch domain of Regula as a pure state machine.
//!
//! Terms: a **call** reaches the CRUE (Centro Regulador de Urgencias y Emergencias) through
//! Línea 123; an operator triages it and may open an **incident**; the CRUE regulates every
//! ambulance of the city, basic (**TAB**, transporte asistencial básico) or medicalised
//! (**TAM**, transporte asistencial medicalizado), public or private; a **transfer** moves a
//! patient from the scene (primary) or from one emergency department to another
//! (secondary), carries a CRUE authorisation code and is billed to the patient's **EPS**
//! (insurer).
//!
//! # Layout
//! - [`intake`]: what the telephony door hands to the core (call events, caller identity,
//!   reported location).
//! - [`privacy`]: [`privacy::Sensitive`], the wrapper that keeps personal data out of logs.
//!
//! # Invariants
//! No I/O, no clock, no async runtime: time is a parameter and side effects are values.

pub mod intake;
pub mod privacy;
