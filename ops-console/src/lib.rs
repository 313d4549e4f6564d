//! The composition root of Regula and the `regula` binary's library.
//!
//! # Layout
//! - [`cli`]: the command line.
//! - [`config`]: the typed, strict configuration and its checker.
//! - [`clock`]: the only code that reads the wall clock.
//! - [`telemetry`]: logs and Prometheus metrics.
//! - [`server`]: HTTP routes, middleware and graceful shutdown.
//! - [`commands`]: what each subcommand does.
//!
//! Domain rules do not live here: they belong in `dispatch-core`, `triage` and `routing`.

pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod server;
pub mod telemetry;
