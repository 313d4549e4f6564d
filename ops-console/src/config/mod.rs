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
//! - `files`: whether the files and directories a configuration names are there.
//!
//! Relative paths written in a file (`region.pack`, `routing.graph`, `routing.profile`, a
//! SQLite `store.database_url`) are relative to **that file's directory**, not to the
//! directory `regula` was started from ([`parse_at`], [`load`]); paths given on the command
//! line or in the environment stay relative to the current directory.

mod env;
mod files;
mod model;
mod parse;
mod problems;

use std::path::{Path, PathBuf};

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
/// Relative paths are left as written (relative to the current directory).
pub fn parse(text: &str, env: &dyn Environment) -> Result<Config, ConfigErrors> {
    finish(parse_partial(text, env, None))
}

/// Like [`parse`], for the text of a file in `base_dir`: relative paths written in it are
/// resolved against `base_dir`. Still pure: nothing is read from the disk.
pub fn parse_at(
    text: &str,
    env: &dyn Environment,
    base_dir: &Path,
) -> Result<Config, ConfigErrors> {
    finish(parse_partial(text, env, Some(base_dir)))
}

/// Reads a configuration file, parses it with its directory as the base of relative paths,
/// and checks that the files and directories it names are there and readable. Every
/// problem (keys, types, ranges, secrets, environment, files) comes back together; only a
/// file that cannot be read at all is an I/O error.
pub fn load(path: &Path, env: &dyn Environment) -> std::io::Result<Result<Config, ConfigErrors>> {
    let text = std::fs::read_to_string(path)?;
    let base = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let (config, mut problems) = parse_partial(&text, env, Some(&base));
    if let Some(config) = &config {
        problems.extend(files::check(config, &text));
    }
    problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
    Ok(finish((config, problems)))
}

fn parse_partial(
    text: &str,
    env: &dyn Environment,
    base: Option<&Path>,
) -> (Option<Config>, Vec<Problem>) {
    let parse::Partial {
        config,
        mut problems,
    } = parse::parse_file(text, base);
    // The environment is checked even when the file has problems, so one run shows all.
    let parsed = config.is_some();
    let mut target = config.unwrap_or_default();
    problems.extend(env::apply_environment(&mut target, env));
    let config = parsed.then_some(target);
    problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
    (config, problems)
}

fn finish((config, problems): (Option<Config>, Vec<Problem>)) -> Result<Config, ConfigErrors> {
    match config {
        Some(config) if problems.is_empty() => Ok(config),
        _ => Err(ConfigErrors(problems)),
    }
}

#[cfg(test)]
mod tests;
