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
//! - [`state`]: [`Dispatch`], the state machine: `decide(command, now) → events + effects`
//!   without mutation, `apply(event)` to fold, queries, `check_invariants`.
//! - [`command`]: [`Command`], [`Event`], [`Effect`], [`Timer`], [`Rejection`].
//! - [`model`]: calls, incidents, patients, assessments, transfers, referrals.
//! - [`fleet`]: units, TAB/TAM, the unit lifecycle, GPS fixes, crew status taps.
//! - [`facility`]: emergency departments, occupancy and the destination ranking formula.
//! - [`recommend`]: the [`TravelTimes`] port, unit ranking, coverage and move-ups.
//! - [`kpi`]: answer, processing, turnout, travel, response, on-scene, transport and total
//!   times per priority, with NENA/NFPA and other standards beside them.
//! - [`crue`]: CRUE authorisation codes.
//! - [`rips`]: the RIPS (Res. 2275/2023) document of a closed transfer for the patient's EPS.
//! - [`ids`]: identifier types.
//! - [`intake`]: what the telephony door hands to the core (call events, caller identity,
//!   reported location).
//! - [`privacy`]: [`privacy::Sensitive`], the wrapper that keeps personal data out of logs.
//!
//! # Invariants
//! No I/O, no clock, no async runtime: time is a parameter and side effects are values.
//! The state is a pure fold of its events, bounded in time: closed incidents (with their
//! transfers and referral) and finished calls leave it [`Policy::history_retention`] after
//! they finished, as part of the fold, so a replay retires the same things. After every
//! step:
//! a unit serves at most one incident; every unit committed to an incident is listed by it
//! and vice versa; a closed incident holds no unit; authorisation codes are unique; an open
//! transfer is carried by its unit ([`Dispatch::check_invariants`]).

pub mod command;
pub mod crue;
pub mod facility;
pub mod fleet;
pub mod ids;
pub mod intake;
pub mod kpi;
pub mod model;
pub mod privacy;
pub mod recommend;
pub mod rips;
pub mod state;

pub use crate::command::{Command, Effect, Event, Rejection, Timer};
pub use crate::recommend::{StraightLine, TravelTimes};
pub use crate::state::{ApplyError, Decision, Dispatch, Policy};
