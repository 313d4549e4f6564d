//! What is wrong with a configuration, where, and how to fix it.

use std::fmt;

/// One thing wrong with a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key (`server.listen`) or environment variable.
    pub key: String,
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: `{}`: {}", self.key, self.message)?,
            None => write!(f, "`{}`: {}", self.key, self.message)?,
        }
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

/// Every problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<Problem>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "{n} problem{} in the configuration:",
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.0 {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

pub(super) fn hint_for(key: &str) -> Option<&'static str> {
    let key = if key.starts_with("feeds.") && key.ends_with(".token_sha256") {
        "feeds.token_sha256"
    } else {
        key
    };
    Some(match key {
        "server" | "log" | "store" | "dispatch" => {
            "a table, e.g. `[server]` on its own line followed by its keys"
        }
        "store.database_url" => {
            "a SQLite file path such as \"regula.db\" or a postgres:// URL, in quotes"
        }
        "store.snapshot_every_events" => {
            "a whole number of events, e.g. 50000 (0: no snapshots, every start replays the whole log)"
        }
        "routing.graph" => "the graph file made by `regula osm import`, in quotes",
        "routing.profile" => "a congestion profile TOML file, in quotes (default: Bogotá's)",
        "region.pack" => "the region pack directory in quotes, e.g. \"../shared/data\"",
        "region.register" => "true or false",
        "sip.listen" => "an IP address and port in quotes, e.g. \"0.0.0.0:5060\"",
        "webhook.secret" => "at least 16 random bytes shared with the provider, in quotes",
        "webhook.replay_window_seconds" => "a whole number of seconds from 10 to 3600, e.g. 300",
        "feeds" => "one table per receiver, e.g. `[feeds.EPS037]` with `token_sha256 = \"…\"`",
        "feeds.token_sha256" => {
            "the SHA-256 of the receiver's token as 64 hex digits, in quotes (`printf %s \"$TOKEN\" | sha256sum`)"
        }
        "dispatch.acceptance_timeout_seconds" => "a whole number of seconds, e.g. 90",
        "dispatch.max_fix_age_seconds" => "a whole number of seconds, e.g. 120",
        "dispatch.recommendation_limit" => "a whole number from 1 to 20, e.g. 5",
        "dispatch.history_days" => "a whole number of days from 1 to 3650, e.g. 7",
        "server.listen" => {
            "an IP address and port in quotes, e.g. \"127.0.0.1:8080\" or \"0.0.0.0:8080\""
        }
        "server.shutdown_grace_seconds" => "a whole number of seconds, e.g. 10",
        "server.header_read_timeout_seconds" => "a whole number of seconds from 1 to 300, e.g. 10",
        "server.max_connections" => "a whole number from 1 to 100000, e.g. 1024",
        "server.max_body_bytes" => "a whole number of bytes from 1024 to 268435456, e.g. 2097152",
        "server.stream_max_clients" => "a whole number from 1 to 10000, e.g. 256",
        "server.stream_max_message_bytes" => {
            "a whole number of bytes from 1024 to 16777216, e.g. 65536"
        }
        "server.stream_ping_interval_seconds" => "a whole number of seconds from 1 to 300, e.g. 20",
        "server.stream_dead_peer_seconds" => {
            "a whole number of seconds from 2 to 900, more than the ping interval, e.g. 60"
        }
        "webhook" => "a table `[webhook]` with `secret = \"…\"` (in quotes)",
        "log.format" => "\"text\" or \"json\"",
        "log.filter" => "a tracing filter in quotes, e.g. \"info\" or \"info,ops_console=debug\"",
        _ => return None,
    })
}

/// Reads serde's "unknown field `x`, expected one of `a`, `b`" message.
pub(super) fn unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (field, rest) = rest.split_once('`')?;
    let expected = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    Some((field.to_owned(), expected))
}

pub(super) fn suggest(field: &str, expected: &[String]) -> String {
    let best = expected
        .iter()
        .map(|e| (strsim::jaro_winkler(field, e), e))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    let known = expected
        .iter()
        .map(|e| format!("`{e}`"))
        .collect::<Vec<_>>()
        .join(", ");
    match best {
        Some((_, e)) => format!("did you mean `{e}`? Known keys here: {known}"),
        None => format!("known keys here: {known}"),
    }
}

pub(super) fn join(path: &str, field: &str) -> String {
    if path.is_empty() || path == "." {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

pub(super) fn key_line(
    document: &toml_edit::Document<String>,
    text: &str,
    key: &str,
) -> Option<usize> {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop()?;
    let mut table: &dyn toml_edit::TableLike = document.as_table();
    for part in parts {
        table = table.get(part)?.as_table_like()?;
    }
    let span = table
        .key(last)
        .and_then(toml_edit::Key::span)
        .or_else(|| table.get(last).and_then(toml_edit::Item::span))?;
    Some(line_of(text, span.start))
}

pub(super) fn line_of(text: &str, byte: usize) -> usize {
    text.as_bytes()
        .iter()
        .take(byte)
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}
