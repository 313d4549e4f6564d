//! TOML text → [`Config`]: deserialised through `serde_path_to_error`; when a key is wrong
//! the problem is recorded, the key removed and the text tried again.

use std::collections::HashMap;

use super::MIN_WEBHOOK_SECRET_LEN;
use super::model::{Config, valid_receiver};
use super::problems::{
    ConfigErrors, Problem, hint_for, join, key_line, line_of, suggest, unknown_field,
};

/// Upper bound on problems reported in one file (and on retries).
const MAX_PROBLEMS: usize = 64;

pub(super) fn parse_file(text: &str) -> Result<Config, ConfigErrors> {
    let document: toml_edit::Document<String> =
        text.parse().map_err(|e: toml_edit::TomlError| {
            let line = e.span().map(|s| line_of(text, s.start));
            ConfigErrors(vec![Problem {
                key: "(file)".to_owned(),
                line,
                message: format!("not valid TOML: {}", e.message()),
                hint: Some("see ops-console/regula.example.toml for the format".to_owned()),
            }])
        })?;
    let mut table: toml::Table = toml::from_str(text).map_err(|e| {
        ConfigErrors(vec![Problem {
            key: "(file)".to_owned(),
            line: e.span().map(|s| line_of(text, s.start)),
            message: format!("not valid TOML: {}", e.message()),
            hint: None,
        }])
    })?;

    let mut problems = Vec::new();
    while problems.len() < MAX_PROBLEMS {
        let err = match serde_path_to_error::deserialize::<_, Config>(table.clone()) {
            Ok(config) if problems.is_empty() => {
                let range_problems = check_ranges(&config, &document, text);
                if range_problems.is_empty() {
                    return Ok(config);
                }
                problems = range_problems;
                break;
            }
            Ok(_) => break,
            Err(err) => err,
        };
        let path = err.path().to_string();
        // `message()` is the bare reason; `to_string()` would append toml's own location.
        let message = err.into_inner().message().to_owned();
        let (key, problem) = if let Some((field, expected)) = unknown_field(&message) {
            // The path already ends at the unknown key when serde got that far.
            let key = if path.rsplit('.').next() == Some(field.as_str()) {
                path
            } else {
                join(&path, &field)
            };
            let problem = Problem {
                key: key.clone(),
                line: key_line(&document, text, &key),
                message: "unknown key".to_owned(),
                hint: Some(suggest(&field, &expected)),
            };
            (key, problem)
        } else {
            let key = if path == "." { String::new() } else { path };
            let problem = Problem {
                key: key.clone(),
                line: key_line(&document, text, &key),
                message,
                hint: hint_for(&key).map(str::to_owned),
            };
            (key, problem)
        };
        problems.push(problem);
        if key.is_empty() || !remove_key(&mut table, &key) {
            break;
        }
    }
    problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
    Err(ConfigErrors(problems))
}

/// Checks values that have a type but also a range.
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
