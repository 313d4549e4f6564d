//! Configuration: one typed struct, parsed strictly from TOML text and an injected
//! environment, with every problem reported at once (key, line and a hint).
//!
//! The serde structs below are the single source of truth (`deny_unknown_fields`, every
//! field defaulted). [`parse`] deserialises them through `serde_path_to_error`; when a key
//! is wrong it records the problem, removes the key and tries again, so one run reports
//! every unknown key, wrong type and bad value in the file rather than only the first.
//!
//! # Layout
//! - `model`: the serde structs of every section, with their defaults.
//! - `parse`: TOML text → [`Config`], retrying past each bad key; range checks.
//! - `env`: the injected [`Environment`] and its overrides.
//! - `problems`: [`Problem`], [`ConfigErrors`] and the hints for each key.

mod env;
mod model;
mod parse;
mod problems;

pub use env::{Environment, ProcessEnvironment};
pub use model::*;
pub use problems::{ConfigErrors, Problem};

/// Environment variable that overrides `log.format`.
pub const ENV_LOG_FORMAT: &str = "REGULA_LOG_FORMAT";
/// Environment variable that overrides `log.filter`.
pub const ENV_LOG_FILTER: &str = "REGULA_LOG";
/// Environment variable that overrides `store.database_url`.
pub const ENV_DATABASE_URL: &str = "DATABASE_URL";
/// Environment variable that sets `webhook.secret` (and turns the webhook on).
pub const ENV_WEBHOOK_SECRET: &str = "REGULA_WEBHOOK_SECRET";
/// Shortest accepted webhook secret, in bytes.
pub const MIN_WEBHOOK_SECRET_LEN: usize = 16;

/// Parses configuration text, then applies environment overrides. Reports every problem.
pub fn parse(text: &str, env: &dyn Environment) -> Result<Config, ConfigErrors> {
    let mut config = parse::parse_file(text)?;
    env::apply_environment(&mut config, env)?;
    Ok(config)
}

#[cfg(test)]
mod tests;
