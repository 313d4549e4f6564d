//! TOML text → [`Config`]: deserialised through `serde_path_to_error`; when a key is wrong
//! the problem is recorded, the key removed and the text tried again.

use std::collections::HashMap;
use std::path::Path;

use super::MIN_WEBHOOK_SECRET_LEN;
use super::model::{Config, valid_receiver};
use super::problems::{Problem, hint_for, join, key_line, line_of, suggest, unknown_field};

/// Upper bound on problems reported in one file (and on retries).
const MAX_PROBLEMS: usize = 64;

/// A file parsed as far as it goes: the configuration with every bad key left at its
/// default (`None` only when nothing usable remains), and every problem found on the way —
/// unknown keys, wrong types, bad values, ranges and secrets, all in one pass.
pub(super) struct Partial {
    pub(super) config: Option<Config>,
    pub(super) problems: Vec<Problem>,
}

/// Parses the file's text. A TOML syntax error stops here (one problem, naming the key of
/// the line when it can be read); otherwise every problem is collected. Relative paths
/// written in the file are resolved against `base` when given.
pub(super) fn parse_file(text: &str, base: Option<&Path>) -> Partial {
    let document: toml_edit::Document<String> = match text.parse() {
        Ok(document) => document,
        Err(e) => {
            let e: toml_edit::TomlError = e;
            let line = e.span().map(|s| line_of(text, s.start));
            return Partial {
                config: None,
                problems: vec![syntax_problem(text, line, e.message())],
            };
        }
    };
    let mut table: toml::Table = match toml::from_str(text) {
        Ok(table) => table,
        Err(e) => {
            let line = e.span().map(|s| line_of(text, s.start));
            return Partial {
                config: None,
                problems: vec![syntax_problem(text, line, e.message())],
            };
        }
    };
    let database_url_in_file = table
        .get("store")
        .and_then(toml::Value::as_table)
        .is_some_and(|store| store.contains_key("database_url"));

    let mut problems: Vec<Problem> = Vec::new();
    let mut config = None;
    while problems.len() < MAX_PROBLEMS {
        let err = match serde_path_to_error::deserialize::<_, Config>(table.clone()) {
            Ok(parsed) => {
                config = Some(parsed);
                break;
            }
            Err(err) => err,
        };
        let path = err.path().to_string();
        // `message()` is the bare reason; `to_string()` would append toml's own location.
        let message = err.into_inner().message().to_owned();
        let key = if let Some((field, expected)) = unknown_field(&message) {
            // The path already ends at the unknown key when serde got that far.
            let key = if path.rsplit('.').next() == Some(field.as_str()) {
                path
            } else {
                join(&path, &field)
            };
            problems.push(Problem {
                key: key.clone(),
                line: key_line(&document, text, &key),
                message: "unknown key".to_owned(),
                hint: Some(suggest(&field, &expected)),
            });
            key
        } else {
            let key = if path == "." { String::new() } else { path };
            // A required key already reported (and removed) as wrong is not also "missing".
            let already_reported = missing_field(&message)
                .is_some_and(|field| problems.iter().any(|p| p.key == join(&key, field)));
            if !already_reported {
                let message = if is_secret(&key) {
                    redact(&message)
                } else {
                    message
                };
                problems.push(Problem {
                    key: key.clone(),
                    line: key_line(&document, text, &key),
                    message,
                    hint: hint_for(&key).map(str::to_owned),
                });
            }
            key
        };
        if key.is_empty() || !remove_key(&mut table, &key) {
            break;
        }
    }
    if let Some(config) = &mut config {
        // Ranges and secrets are checked on what did parse (bad keys are at their
        // defaults, which are in range), so they are reported beside the type errors.
        problems.extend(check_ranges(config, &document, text));
        check_callback(config, &document, text, &mut problems);
        if let Some(base) = base {
            resolve_paths(config, base, database_url_in_file);
        }
    }
    Partial { config, problems }
}

/// A syntax error, with the key of its line when the line reads `key = …` (the value is
/// never repeated: it may be a secret).
fn syntax_problem(text: &str, line: Option<usize>, message: &str) -> Problem {
    let key = line
        .and_then(|line| key_at_line(text, line))
        .unwrap_or_else(|| "(file)".to_owned());
    let hint = if is_secret(&key) {
        "a secret is text: write it in quotes, e.g. secret = \"…\"".to_owned()
    } else {
        hint_for(&key).map_or_else(
            || "see ops-console/regula.example.toml for the format".to_owned(),
            str::to_owned,
        )
    };
    Problem {
        key,
        line,
        message: format!("not valid TOML: {message}"),
        hint: Some(hint),
    }
}

/// The dotted key written on a 1-based line (`[table]` headers above it give the prefix).
fn key_at_line(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let own = lines.get(line.checked_sub(1)?)?.trim();
    let (name, _) = own.split_once('=')?;
    let name = name.trim().trim_matches('"');
    if name.is_empty() || name.contains(char::is_whitespace) {
        return None;
    }
    let table = lines[..line - 1]
        .iter()
        .rev()
        .map(|l| l.trim())
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_owned());
    Some(match table {
        Some(table) if !table.is_empty() => format!("{table}.{name}"),
        _ => name.to_owned(),
    })
}

/// Keys whose values are secrets (or stand for one) and are never repeated in a message.
pub(super) fn is_secret(key: &str) -> bool {
    key == "webhook.secret" || (key.starts_with("feeds.") && key.ends_with(".token_sha256"))
}

/// Replaces every value serde quotes in backticks by `(hidden)`.
fn redact(message: &str) -> String {
    let mut out = String::new();
    for (i, part) in message.split('`').enumerate() {
        out.push_str(if i % 2 == 1 { "(hidden)" } else { part });
    }
    out
}

/// Reads serde's "missing field `x`" message.
fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}

/// Makes the relative paths written in a file relative to the file's directory rather than
/// to whatever directory the program was started from.
fn resolve_paths(config: &mut Config, base: &Path, database_url_in_file: bool) {
    if let Some(region) = &mut config.region {
        region.pack = base.join(&region.pack);
    }
    if let Some(routing) = &mut config.routing {
        routing.graph = base.join(&routing.graph);
        if let Some(profile) = &mut routing.profile {
            *profile = base.join(&*profile);
        }
    }
    if database_url_in_file {
        config.store.database_url = config.store.database_url.relative_to(base);
    }
}

/// Checks values that have a type but also a range.
/// `[webhook] callback_url` must be an HTTP(S) URL.
fn check_callback(
    config: &Config,
    document: &toml_edit::Document<String>,
    text: &str,
    problems: &mut Vec<Problem>,
) {
    if let Some(url) = config
        .webhook
        .as_ref()
        .and_then(|w| w.callback_url.as_ref())
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        problems.push(Problem {
            key: "webhook.callback_url".to_owned(),
            line: key_line(document, text, "webhook.callback_url"),
            message: format!("{url:?} is not an http:// or https:// URL"),
            hint: Some(
                "the provider's endpoint, e.g. \"https://pbx.example.co/regula/take\"".to_owned(),
            ),
        });
    }
}

fn check_ranges(
    config: &Config,
    document: &toml_edit::Document<String>,
    text: &str,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut out_of_range = |key: &str, message: String| {
        problems.push(Problem {
            key: key.to_owned(),
            line: key_line(document, text, key),
            message,
            hint: hint_for(key).map(str::to_owned),
        });
    };
    let d = &config.dispatch;
    if !(10..=3600).contains(&d.acceptance_timeout_seconds) {
        out_of_range(
            "dispatch.acceptance_timeout_seconds",
            format!("{} s is outside 10–3600 s", d.acceptance_timeout_seconds),
        );
    }
    if !(10..=3600).contains(&d.max_fix_age_seconds) {
        out_of_range(
            "dispatch.max_fix_age_seconds",
            format!("{} s is outside 10–3600 s", d.max_fix_age_seconds),
        );
    }
    if !(1..=3650).contains(&d.history_days) {
        out_of_range(
            "dispatch.history_days",
            format!("{} days is outside 1–3650", d.history_days),
        );
    }
    if !(1..=20).contains(&d.recommendation_limit) {
        out_of_range(
            "dispatch.recommendation_limit",
            format!("{} is outside 1–20", d.recommendation_limit),
        );
    }
    problems.extend(check_server(config, document, text));
    if let Some(sip) = &config.sip
        && let Err(errors) = sip.validate()
    {
        for e in errors {
            problems.push(Problem {
                key: format!("sip.{}", e.key),
                line: key_line(document, text, &format!("sip.{}", e.key)),
                message: format!("{} is out of range", e.value),
                hint: Some(e.hint.to_owned()),
            });
        }
    }
    if let Some(webhook) = &config.webhook {
        if webhook.secret.expose().len() < MIN_WEBHOOK_SECRET_LEN {
            problems.push(Problem {
                key: "webhook.secret".to_owned(),
                line: key_line(document, text, "webhook.secret"),
                message: format!("the secret is shorter than {MIN_WEBHOOK_SECRET_LEN} bytes"),
                hint: hint_for("webhook.secret").map(str::to_owned),
            });
        }
        if !(10..=3600).contains(&webhook.replay_window_seconds) {
            problems.push(Problem {
                key: "webhook.replay_window_seconds".to_owned(),
                line: key_line(document, text, "webhook.replay_window_seconds"),
                message: format!("{} s is outside 10–3600 s", webhook.replay_window_seconds),
                hint: hint_for("webhook.replay_window_seconds").map(str::to_owned),
            });
        }
    }
    let mut owners: HashMap<[u8; 32], &str> = HashMap::new();
    for (receiver, feed) in &config.feeds {
        let key = format!("feeds.{receiver}");
        if !valid_receiver(receiver) {
            problems.push(Problem {
                key: key.clone(),
                line: key_line(document, text, &key),
                message: format!("{receiver:?} is not a usable receiver name"),
                hint: Some(
                    "an EPS code, `red_publica` or a facility id: 1–32 letters, digits, '-' or '_'"
                        .to_owned(),
                ),
            });
        }
        let token_key = format!("{key}.token_sha256");
        match feed.token_hash() {
            None => problems.push(Problem {
                key: token_key.clone(),
                line: key_line(document, text, &token_key),
                message: "not 64 hex digits".to_owned(),
                hint: hint_for("feeds.token_sha256").map(str::to_owned),
            }),
            Some(hash) => {
                if let Some(other) = owners.insert(hash, receiver) {
                    problems.push(Problem {
                        key: token_key.clone(),
                        line: key_line(document, text, &token_key),
                        message: format!("the same token is already given to `{other}`"),
                        hint: Some("every receiver needs a token of its own".to_owned()),
                    });
                }
            }
        }
    }
    problems
}

/// Checks the `[server]` limits.
fn check_server(
    config: &Config,
    document: &toml_edit::Document<String>,
    text: &str,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut out_of_range = |key: &str, message: String| {
        problems.push(Problem {
            key: key.to_owned(),
            line: key_line(document, text, key),
            message,
            hint: hint_for(key).map(str::to_owned),
        });
    };
    let s = &config.server;
    for (key, value, range) in [
        (
            "server.header_read_timeout_seconds",
            s.header_read_timeout_seconds,
            1..=300,
        ),
        (
            "server.max_connections",
            u64::from(s.max_connections),
            1..=100_000,
        ),
        (
            "server.max_body_bytes",
            u64::from(s.max_body_bytes),
            1024..=268_435_456,
        ),
        (
            "server.stream_max_clients",
            u64::from(s.stream_max_clients),
            1..=10_000,
        ),
        (
            "server.stream_max_message_bytes",
            u64::from(s.stream_max_message_bytes),
            1024..=16_777_216,
        ),
        (
            "server.stream_ping_interval_seconds",
            s.stream_ping_interval_seconds,
            1..=300,
        ),
        (
            "server.stream_dead_peer_seconds",
            s.stream_dead_peer_seconds,
            2..=900,
        ),
    ] {
        if !range.contains(&value) {
            out_of_range(
                key,
                format!("{value} is outside {}–{}", range.start(), range.end()),
            );
        }
    }
    if s.stream_dead_peer_seconds <= s.stream_ping_interval_seconds {
        out_of_range(
            "server.stream_dead_peer_seconds",
            format!(
                "{} s is not more than the ping interval ({} s): every client would be dropped",
                s.stream_dead_peer_seconds, s.stream_ping_interval_seconds
            ),
        );
    }
    problems
}

fn remove_key(table: &mut toml::Table, key: &str) -> bool {
    let mut parts: Vec<&str> = key.split('.').collect();
    let Some(last) = parts.pop() else {
        return false;
    };
    let mut current = table;
    for part in parts {
        match current.get_mut(part) {
            Some(toml::Value::Table(t)) => current = t,
            _ => return false,
        }
    }
    current.remove(last).is_some()
}
