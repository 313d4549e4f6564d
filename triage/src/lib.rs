//! Telephone triage for Regula: chief complaint → key questions → outcome (Resolución 5596
//! level I–V, disposition, specialty route, ambulance type, instructions), explained by a
//! trace of the answers that led to it.
//!
//! Protocols are data files written in Spanish by the project; this crate never reads the
//! clock or the network.
