//! Where configuration values may come from besides the file.

use std::collections::HashMap;

use super::model::{DatabaseUrl, LogFilter, LogFormat, WebhookConfig, default_replay_window};
use super::problems::{Problem, hint_for};
use super::{
    Config, ENV_DATABASE_URL, ENV_LOG_FILTER, ENV_LOG_FORMAT, ENV_WEBHOOK_SECRET,
    MIN_WEBHOOK_SECRET_LEN,
};

/// Where configuration values may come from besides the file; injected so that parsing
/// is a pure function in tests.
pub trait Environment {
    /// The value of a variable, if set.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl<S: std::hash::BuildHasher> Environment for HashMap<String, String, S> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// Applies the overrides to `config` and returns the problems with them.
pub(super) fn apply_environment(config: &mut Config, env: &dyn Environment) -> Vec<Problem> {
    let mut problems = Vec::new();
    if let Some(value) = env.var(ENV_LOG_FORMAT) {
        match value.trim().to_ascii_lowercase().as_str() {
            "text" => config.log.format = LogFormat::Text,
            "json" => config.log.format = LogFormat::Json,
            _ => problems.push(Problem {
                key: ENV_LOG_FORMAT.to_owned(),
                line: None,
                message: format!("unknown log format {value:?}"),
                hint: Some("set it to \"text\" or \"json\", or unset it".to_owned()),
            }),
        }
    }
    if let Some(value) = env.var(ENV_LOG_FILTER) {
        match LogFilter::try_from(value) {
            Ok(filter) => config.log.filter = filter,
            Err(message) => problems.push(Problem {
                key: ENV_LOG_FILTER.to_owned(),
                line: None,
                message,
                hint: hint_for("log.filter").map(str::to_owned),
            }),
        }
    }
    if let Some(value) = env.var(ENV_WEBHOOK_SECRET) {
        if value.len() < MIN_WEBHOOK_SECRET_LEN {
            problems.push(Problem {
                key: ENV_WEBHOOK_SECRET.to_owned(),
                line: None,
                message: format!("the secret is shorter than {MIN_WEBHOOK_SECRET_LEN} bytes"),
                hint: hint_for("webhook.secret").map(str::to_owned),
            });
        } else {
            let replay_window_seconds = config
                .webhook
                .as_ref()
                .map_or_else(default_replay_window, |w| w.replay_window_seconds);
            let callback_url = config.webhook.as_ref().and_then(|w| w.callback_url.clone());
            config.webhook = Some(WebhookConfig {
                secret: dispatch_core::privacy::Sensitive::new(value),
                replay_window_seconds,
                callback_url,
            });
        }
    }
    if let Some(value) = env.var(ENV_DATABASE_URL) {
        match DatabaseUrl::try_from(value) {
            Ok(url) => config.store.database_url = url,
            Err(message) => problems.push(Problem {
                key: ENV_DATABASE_URL.to_owned(),
                line: None,
                message,
                hint: hint_for("store.database_url").map(str::to_owned),
            }),
        }
    }
    problems
}
