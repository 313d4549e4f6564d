//! The composition root of Regula and the `regula` binary's library.
//!
//! # Layout
//! - [`cli`]: the command line.
//! - [`api`]: the dispatch API (`/api/v1`: commands, views, WebSocket stream).
//! - [`config`]: the typed, strict configuration and its checker.
//! - [`clock`]: the only code that reads the wall clock.
//! - [`telemetry`]: logs and Prometheus metrics.
//! - [`telephony`]: the SIP gateway and webhook wired to the engine (call-event pump, call
//!   connection effects).
//! - [`travel`]: the road graph behind the core's travel-time port, and live speeds from
//!   GPS.
//! - [`engine`]: the one owner of the live dispatch state (decide → persist → apply →
//!   publish → effects) and its replay at start-up.
//! - [`coverage`]: city coverage recomputed after every dispatch, with move-up suggestions.
//! - [`store`]: the append-only event log, command keys and outbox (SQLite or PostgreSQL).
//! - [`system`]: the running system (log, engine, telephony doors, background tasks),
//!   started and stopped as one.
//! - [`server`]: HTTP routes, middleware and graceful shutdown.
//! - [`region`]: the Bogotá region pack (real EDs, localidades, Línea 123 demand, fleet
//!   with synthetic bases, ED occupancy) read from a data directory.
//! - [`simulation`]: a seeded synthetic city (fleet, facilities, incidents) for benchmarks
//!   and tests.
//! - [`commands`]: what each subcommand does.
//!
//! Domain rules do not live here: they belong in `dispatch-core`, `triage` and `routing`.

pub mod api;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod coverage;
pub mod engine;
pub mod region;
pub mod server;
pub mod simulation;
pub mod status;
pub mod store;
pub mod system;
pub mod telemetry;
pub mod telephony;
pub mod travel;
