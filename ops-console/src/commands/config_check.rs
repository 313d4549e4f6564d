//! `regula config check FILE`.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::config::{self, Config, ConfigErrors, ProcessEnvironment};

/// Reads, parses and checks a configuration file (relative paths in it are relative to its
/// directory; the files it names must be there); I/O errors on the file itself are
/// failures, configuration problems are returned for reporting.
pub(crate) fn read_config(path: &Path) -> anyhow::Result<Result<Config, ConfigErrors>> {
    config::load(path, &ProcessEnvironment)
        .with_context(|| format!("cannot read configuration file {}", path.display()))
}

pub(crate) fn run(path: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let outcome = read_config(path)?;
    let mut out = std::io::stdout().lock();
    if json {
        let problems: Vec<_> = match &outcome {
            Ok(_) => Vec::new(),
            Err(errors) => errors
                .0
                .iter()
                .map(|p| {
                    serde_json::json!({
                        "key": p.key, "line": p.line, "message": p.message, "hint": p.hint,
                    })
                })
                .collect(),
        };
        let report = serde_json::json!({
            "file": path.display().to_string(),
            "valid": outcome.is_ok(),
            "problems": problems,
        });
        writeln!(out, "{report}")?;
    } else {
        match &outcome {
            Ok(_) => writeln!(
                out,
                "{}: OK (configuración válida / valid configuration)",
                path.display()
            )?,
            Err(errors) => write!(out, "{}: {errors}", path.display())?,
        }
    }
    Ok(if outcome.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
