//! Whether the files and directories a configuration names exist and can be read. The one
//! part of the configuration that looks at the disk; `regula config check` and
//! `regula serve --config` run it, so a missing region pack is reported with its key and
//! line before anything starts.

use std::path::Path;

use super::model::Config;
use super::problems::{Problem, key_line};
use crate::store::StoreLocation;

/// Every referenced file or directory that is missing or unreadable.
pub(super) fn check(config: &Config, text: &str) -> Vec<Problem> {
    let document: Option<toml_edit::Document<String>> = text.parse().ok();
    let line = |key: &str| document.as_ref().and_then(|d| key_line(d, text, key));
    let mut problems = Vec::new();
    let mut report = |key: &str, message: String, hint: &str| {
        problems.push(Problem {
            key: key.to_owned(),
            line: line(key),
            message,
            hint: Some(hint.to_owned()),
        });
    };
    if let Some(region) = &config.region
        && let Err(message) = readable_dir(&region.pack)
    {
        report(
            "region.pack",
            message,
            "a directory with the layout of shared/data; a relative path is relative to this file's directory",
        );
    }
    if let Some(routing) = &config.routing {
        if let Err(message) = readable_file(&routing.graph) {
            report(
                "routing.graph",
                message,
                "the file made by `regula osm import`; a relative path is relative to this file's directory",
            );
        }
        if let Some(profile) = &routing.profile
            && let Err(message) = readable_file(profile)
        {
            report(
                "routing.profile",
                message,
                "a congestion profile TOML file; a relative path is relative to this file's directory",
            );
        }
    }
    if let StoreLocation::Sqlite(path) = config.store.database_url.location() {
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        if let Err(message) = readable_dir(&dir) {
            report(
                "store.database_url",
                format!("the event log's directory: {message}"),
                "the SQLite file is created when missing, but its directory must exist",
            );
        } else if path.exists()
            && let Err(message) = readable_file(&path)
        {
            report(
                "store.database_url",
                message,
                "the event log must be a readable file",
            );
        }
    }
    problems
}

fn readable_dir(path: &Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Err(e) => Err(format!(
            "{} cannot be opened: {}",
            path.display(),
            reason(&e)
        )),
        Ok(meta) if !meta.is_dir() => Err(format!("{} is not a directory", path.display())),
        Ok(_) => std::fs::read_dir(path)
            .map(drop)
            .map_err(|e| format!("{} cannot be read: {}", path.display(), reason(&e))),
    }
}

fn readable_file(path: &Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Err(e) => Err(format!(
            "{} cannot be opened: {}",
            path.display(),
            reason(&e)
        )),
        Ok(meta) if meta.is_dir() => Err(format!("{} is a directory, not a file", path.display())),
        Ok(_) => std::fs::File::open(path)
            .map(drop)
            .map_err(|e| format!("{} cannot be read: {}", path.display(), reason(&e))),
    }
}

fn reason(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::NotFound => "it does not exist",
        std::io::ErrorKind::PermissionDenied => "permission denied",
        _ => "input/output error",
    }
}
