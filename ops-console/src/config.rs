//! Configuration: one typed struct, parsed strictly from TOML text and an injected
//! environment, with every problem reported at once (key, line and a hint).
//!
//! The serde structs below are the single source of truth (`deny_unknown_fields`, every
//! field defaulted). [`parse`] deserialises them through `serde_path_to_error`; when a key
//! is wrong it records the problem, removes the key and tries again, so one run reports
//! every unknown key, wrong type and bad value in the file rather than only the first.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

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

/// The whole configuration of `regula serve`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// HTTP server.
    pub server: ServerConfig,
    /// Logging.
    pub log: LogConfig,
    /// The event log.
    pub store: StoreConfig,
    /// Rules of the regulation centre.
    pub dispatch: DispatchConfig,
    /// The SIP gateway; absent: no SIP door (`--sip-listen` turns it on).
    pub sip: Option<telephony_gateway::SipConfig>,
    /// The signed webhook for cloud telephony providers; absent: no webhook.
    pub webhook: Option<WebhookConfig>,
    /// The region pack (emergency departments, fleet, demand); absent: none.
    pub region: Option<RegionConfig>,
    /// The road graph; absent: travel times are the straight-line estimate.
    pub routing: Option<RoutingConfig>,
    /// Message feeds by receiver (an EPS code, `red_publica`, a facility id); absent:
    /// nobody can read the outbox over HTTP.
    pub feeds: std::collections::BTreeMap<String, FeedConfig>,
}

/// `[feeds.RECEIVER]`: who may read a receiver's messages (`/api/v1/feeds/RECEIVER/…`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedConfig {
    /// SHA-256 of the receiver's bearer token, 64 hex digits (the token itself is never
    /// written in the file: `openssl rand -hex 32` makes one, `sha256sum` its hash).
    pub token_sha256: String,
}

impl fmt::Debug for FeedConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FeedConfig").finish_non_exhaustive()
    }
}

impl FeedConfig {
    /// The hash as bytes (validated by [`parse`]).
    pub fn token_hash(&self) -> Option<[u8; 32]> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(self.token_sha256.trim(), &mut out).ok()?;
        Some(out)
    }
}

/// Whether a receiver name is usable in a feed's URL: 1–32 characters, letters, digits,
/// `-` or `_` (EPS codes, `red_publica`, facility ids).
pub fn valid_receiver(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `[routing]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    /// The prepared road graph (`regula osm import --pbf … --out GRAPH`).
    pub graph: std::path::PathBuf,
    /// A congestion profile (TOML); default the embedded Bogotá profile.
    #[serde(default)]
    pub profile: Option<std::path::PathBuf>,
}

/// `[region]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionConfig {
    /// The pack directory (the layout of `shared/data`; see its README).
    pub pack: std::path::PathBuf,
    /// When the log holds no facilities (or no units), register the pack's emergency
    /// departments with their occupancy baseline (and its fleet) at start-up.
    #[serde(default = "yes")]
    pub register: bool,
    /// Seed of the synthetic ambulance bases.
    #[serde(default = "default_fleet_seed")]
    pub fleet_seed: u64,
}

fn yes() -> bool {
    true
}

fn default_fleet_seed() -> u64 {
    crate::region::DEFAULT_FLEET_SEED
}

/// `[webhook]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Shared HMAC-SHA256 key with the provider (at least 16 bytes). Better given through
    /// `REGULA_WEBHOOK_SECRET` than written in the file.
    pub secret: dispatch_core::privacy::Sensitive<String>,
    /// Accepted difference between the provider's timestamp and ours, in seconds.
    #[serde(default = "default_replay_window")]
    pub replay_window_seconds: u32,
}

fn default_replay_window() -> u32 {
    300
}

/// `[store]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// A SQLite file path (`regula.db`, `sqlite:/var/lib/regula/regula.db`) or a
    /// `postgres://` URL. `DATABASE_URL` overrides it.
    pub database_url: DatabaseUrl,
    /// A snapshot of the dispatch state is saved every this many events (and at shutdown)
    /// by a follower thread with its own copy of the state, so that a restart replays only
    /// what follows it; 0: never (and no copy).
    pub snapshot_every_events: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            database_url: DatabaseUrl(String::from("regula.db")),
            snapshot_every_events: 50_000,
        }
    }
}

/// A validated database URL (see [`crate::store::StoreLocation::parse`]). Its `Debug`
/// hides the text: a PostgreSQL URL may carry a password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// Where the log lives.
    pub fn location(&self) -> crate::store::StoreLocation {
        // Validated on construction.
        crate::store::StoreLocation::parse(&self.0)
            .unwrap_or_else(|_| crate::store::StoreLocation::Sqlite("regula.db".into()))
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location() {
            crate::store::StoreLocation::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            crate::store::StoreLocation::Postgres(_) => f.write_str("postgres://REDACTED"),
        }
    }
}

impl TryFrom<String> for DatabaseUrl {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        crate::store::StoreLocation::parse(&value)
            .map(|_| Self(value))
            .map_err(|e| e.to_string())
    }
}

impl From<DatabaseUrl> for String {
    fn from(url: DatabaseUrl) -> Self {
        url.0
    }
}

/// `[dispatch]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DispatchConfig {
    /// Seconds a crew has to accept an offer before it escalates to the next unit.
    pub acceptance_timeout_seconds: u32,
    /// A GPS fix younger than this is the unit's position; older, its base.
    pub max_fix_age_seconds: u32,
    /// How many units and destinations a recommendation shows.
    pub recommendation_limit: u8,
    /// Days closed incidents (with transfers and referral) and finished calls stay in the
    /// live state — views and KPIs — after they finished; the log keeps them for good.
    pub history_days: u16,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        let policy = dispatch_core::Policy::default();
        Self {
            acceptance_timeout_seconds: u32::try_from(policy.acceptance_timeout.as_millis() / 1000)
                .unwrap_or(90),
            max_fix_age_seconds: u32::try_from(policy.max_fix_age_for_position.as_millis() / 1000)
                .unwrap_or(120),
            recommendation_limit: u8::try_from(policy.recommendation_limit).unwrap_or(5),
            history_days: u16::try_from(policy.history_retention.as_millis() / 86_400_000)
                .unwrap_or(7),
        }
    }
}

impl DispatchConfig {
    /// The core's policy with these values.
    pub fn policy(&self) -> dispatch_core::Policy {
        dispatch_core::Policy {
            acceptance_timeout: maps::TravelTime::from_secs(u64::from(
                self.acceptance_timeout_seconds,
            )),
            max_fix_age_for_position: maps::TravelTime::from_secs(u64::from(
                self.max_fix_age_seconds,
            )),
            recommendation_limit: usize::from(self.recommendation_limit),
            history_retention: maps::TravelTime::from_minutes(
                u64::from(self.history_days) * 24 * 60,
            ),
            ..dispatch_core::Policy::default()
        }
    }
}

/// `[server]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address the HTTP server binds (`127.0.0.1:8080`; port 0 picks a free port).
    pub listen: SocketAddr,
    /// Seconds to let requests in progress finish after SIGINT/SIGTERM.
    pub shutdown_grace_seconds: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            shutdown_grace_seconds: 10,
        }
    }
}

impl ServerConfig {
    /// The grace period as a duration.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_seconds)
    }
}

/// `[log]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Text for people or JSON for collectors.
    pub format: LogFormat,
    /// A `tracing` filter directive.
    pub filter: LogFilter,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            filter: LogFilter("info,sqlx=warn".to_owned()),
        }
    }
}

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// A validated `tracing` filter such as `info` or `info,ops_console=debug`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LogFilter(String);

impl LogFilter {
    /// The directive text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for LogFilter {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        tracing_subscriber::EnvFilter::builder()
            .parse(&value)
            .map(|_| Self(value.clone()))
            .map_err(|e| format!("invalid log filter {value:?}: {e}"))
    }
}

impl From<LogFilter> for String {
    fn from(f: LogFilter) -> Self {
        f.0
    }
}

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

/// Parses configuration text, then applies environment overrides. Reports every problem.
pub fn parse(text: &str, env: &dyn Environment) -> Result<Config, ConfigErrors> {
    let mut config = parse_file(text)?;
    apply_environment(&mut config, env)?;
    Ok(config)
}

fn hint_for(key: &str) -> Option<&'static str> {
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
        "log.format" => "\"text\" or \"json\"",
        "log.filter" => "a tracing filter in quotes, e.g. \"info\" or \"info,ops_console=debug\"",
        _ => return None,
    })
}

/// Upper bound on problems reported in one file (and on retries).
const MAX_PROBLEMS: usize = 64;

fn parse_file(text: &str) -> Result<Config, ConfigErrors> {
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

fn apply_environment(config: &mut Config, env: &dyn Environment) -> Result<(), ConfigErrors> {
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
            config.webhook = Some(WebhookConfig {
                secret: dispatch_core::privacy::Sensitive::new(value),
                replay_window_seconds,
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
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors(problems))
    }
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

/// Reads serde's "unknown field `x`, expected one of `a`, `b`" message.
fn unknown_field(message: &str) -> Option<(String, Vec<String>)> {
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

fn suggest(field: &str, expected: &[String]) -> String {
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

fn join(path: &str, field: &str) -> String {
    if path.is_empty() || path == "." {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
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

fn key_line(document: &toml_edit::Document<String>, text: &str, key: &str) -> Option<usize> {
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

fn line_of(text: &str, byte: usize) -> usize {
    text.as_bytes()
        .iter()
        .take(byte)
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env() -> HashMap<String, String> {
        HashMap::new()
    }

    #[test]
    fn the_example_config_is_valid_and_equals_the_defaults() {
        let text = include_str!("../regula.example.toml");
        assert_eq!(parse(text, &no_env()).unwrap(), Config::default());
    }

    #[test]
    fn an_empty_file_gives_the_defaults() {
        assert_eq!(parse("", &no_env()).unwrap(), Config::default());
    }

    #[test]
    fn unknown_key_wrong_type_and_bad_address_are_all_reported_with_lines() {
        let text = "\
[server]
listne = \"127.0.0.1:9000\"
listen = \"localhost-8080\"
shutdown_grace_seconds = \"ten\"
";
        let errors = parse(text, &no_env()).unwrap_err().0;
        assert_eq!(errors.len(), 3, "{errors:#?}");
        assert_eq!(errors[0].key, "server.listne");
        assert_eq!(errors[0].line, Some(2));
        assert!(
            errors[0]
                .hint
                .as_deref()
                .unwrap()
                .contains("did you mean `listen`?")
        );
        assert_eq!(errors[1].key, "server.listen");
        assert_eq!(errors[1].line, Some(3));
        assert!(
            errors[1].message.contains("socket address"),
            "{}",
            errors[1].message
        );
        assert_eq!(errors[2].key, "server.shutdown_grace_seconds");
        assert_eq!(errors[2].line, Some(4));
        assert!(
            errors[2].message.contains("invalid type"),
            "{}",
            errors[2].message
        );
    }

    #[test]
    fn unknown_sections_and_values_are_reported() {
        let text = "[sever]\nlisten = \"1.2.3.4:80\"\n[log]\nformat = \"xml\"\n";
        let errors = parse(text, &no_env()).unwrap_err().0;
        assert_eq!(errors.len(), 2, "{errors:#?}");
        assert_eq!(errors[0].key, "sever");
        assert_eq!(errors[0].line, Some(1));
        assert!(
            errors[0]
                .hint
                .as_deref()
                .unwrap()
                .contains("did you mean `server`?")
        );
        assert_eq!(errors[1].key, "log.format");
        assert!(
            errors[1].message.contains("unknown variant `xml`"),
            "{}",
            errors[1].message
        );
        assert_eq!(errors[1].hint.as_deref(), Some("\"text\" or \"json\""));
    }

    #[test]
    fn a_section_of_the_wrong_type_is_reported_once() {
        let errors = parse("server = 5\n", &no_env()).unwrap_err().0;
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert_eq!(errors[0].key, "server");
        assert_eq!(errors[0].line, Some(1));
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let errors = parse("[server]\nlisten = \n", &no_env()).unwrap_err().0;
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].line, Some(2));
        assert!(
            errors[0].message.starts_with("not valid TOML"),
            "{}",
            errors[0].message
        );
    }

    #[test]
    fn bad_log_filter_is_refused() {
        let errors = parse("[log]\nfilter = \"info,[[\"\n", &no_env())
            .unwrap_err()
            .0;
        assert_eq!(errors[0].key, "log.filter");
        assert!(
            errors[0].message.contains("invalid log filter"),
            "{}",
            errors[0].message
        );
    }

    #[test]
    fn environment_overrides_the_file_and_is_validated() {
        let mut env = no_env();
        env.insert(ENV_LOG_FORMAT.into(), "JSON".into());
        env.insert(ENV_LOG_FILTER.into(), "debug".into());
        let config = parse("[log]\nformat = \"text\"\n", &env).unwrap();
        assert_eq!(config.log.format, LogFormat::Json);
        assert_eq!(config.log.filter.as_str(), "debug");

        env.insert(ENV_LOG_FORMAT.into(), "yaml".into());
        let errors = parse("", &env).unwrap_err().0;
        assert_eq!(errors[0].key, ENV_LOG_FORMAT);
    }

    #[test]
    fn problems_print_key_line_and_hint() {
        let errors = parse("[server]\nlisten = 8080\n", &no_env()).unwrap_err();
        let text = errors.to_string();
        assert!(
            text.starts_with("1 problem in the configuration:"),
            "{text}"
        );
        assert!(text.contains("line 2: `server.listen`"), "{text}");
        assert!(text.contains("hint: an IP address and port"), "{text}");
    }

    #[test]
    fn database_url_comes_from_the_file_then_the_environment_and_is_validated() {
        let config = parse("[store]\ndatabase_url = \"sqlite:/tmp/r.db\"\n", &no_env()).unwrap();
        assert_eq!(
            config.store.database_url.location(),
            crate::store::StoreLocation::Sqlite("/tmp/r.db".into())
        );
        let mut env = no_env();
        env.insert(ENV_DATABASE_URL.into(), "postgres://u:pw@db/regula".into());
        let config = parse("", &env).unwrap();
        assert!(matches!(
            config.store.database_url.location(),
            crate::store::StoreLocation::Postgres(_)
        ));
        assert!(
            !format!("{config:?}").contains("pw@"),
            "passwords stay out of Debug"
        );

        let errors = parse("[store]\ndatabase_url = \"mysql://db\"\n", &no_env())
            .unwrap_err()
            .0;
        assert_eq!(errors[0].key, "store.database_url");
        assert_eq!(errors[0].line, Some(2));
        assert!(
            errors[0].message.contains("unsupported database scheme"),
            "{errors:?}"
        );

        env.insert(ENV_DATABASE_URL.into(), String::new());
        let errors = parse("", &env).unwrap_err().0;
        assert_eq!(errors[0].key, ENV_DATABASE_URL);
    }

    #[test]
    fn dispatch_rules_out_of_range_are_reported_with_their_lines() {
        let text = "[dispatch]\nacceptance_timeout_seconds = 2\nrecommendation_limit = 0\n";
        let errors = parse(&format!("{text}history_days = 0\n"), &no_env())
            .unwrap_err()
            .0;
        assert_eq!(errors.len(), 3, "{errors:#?}");
        assert!(errors.iter().any(|e| e.key == "dispatch.history_days"));
        let errors = parse(text, &no_env()).unwrap_err().0;
        assert_eq!(errors.len(), 2, "{errors:#?}");
        assert_eq!(errors[0].key, "dispatch.acceptance_timeout_seconds");
        assert_eq!(errors[0].line, Some(2));
        assert_eq!(errors[1].key, "dispatch.recommendation_limit");
        let policy = parse("[dispatch]\nacceptance_timeout_seconds = 45\n", &no_env())
            .unwrap()
            .dispatch
            .policy();
        assert_eq!(policy.acceptance_timeout, maps::TravelTime::from_secs(45));
        assert_eq!(
            policy.history_retention,
            maps::TravelTime::from_minutes(7 * 24 * 60)
        );
    }

    #[test]
    fn feeds_need_a_usable_receiver_name_and_a_token_hash_of_their_own() {
        let hash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        let text = format!(
            "[feeds.EPS037]\ntoken_sha256 = \"{hash}\"\n\n[feeds.red_publica]\ntoken_sha256 = \"{}\"\n",
            hash.to_uppercase().replace('9', "8")
        );
        let config = parse(&text, &no_env()).unwrap();
        assert_eq!(config.feeds.len(), 2);
        assert_eq!(config.feeds["EPS037"].token_hash().unwrap()[0], 0x9f);
        assert!(
            !format!("{config:?}").contains("9f86d0"),
            "hashes stay out of Debug"
        );

        let text = format!(
            "[feeds.EPS037]\ntoken_sha256 = \"{hash}\"\n\n[feeds.EPS002]\ntoken_sha256 = \"{hash}\"\n\n\
             [feeds.\"EPS 9\"]\ntoken_sha256 = \"abc\"\n\n[feeds.ED-001]\ntoken = \"x\"\n"
        );
        let errors = parse(&text, &no_env()).unwrap_err().0;
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert!(keys.contains(&"feeds.ED-001.token"), "{errors:#?}");
        let errors = parse(
            &text.replace("[feeds.ED-001]\ntoken = \"x\"\n", ""),
            &no_env(),
        )
        .unwrap_err()
        .0;
        let messages: Vec<(&str, &str)> = errors
            .iter()
            .map(|e| (e.key.as_str(), e.message.as_str()))
            .collect();
        assert!(
            messages.contains(&(
                "feeds.EPS037.token_sha256",
                "the same token is already given to `EPS002`"
            )),
            "{errors:#?}"
        );
        assert!(
            messages
                .iter()
                .any(|(k, m)| *k == "feeds.EPS 9" && m.contains("not a usable receiver name")),
            "{errors:#?}"
        );
        assert!(
            messages.contains(&("feeds.EPS 9.token_sha256", "not 64 hex digits")),
            "{errors:#?}"
        );
    }

    #[test]
    fn sip_and_webhook_sections_are_optional_validated_and_secret() {
        let config = parse("", &no_env()).unwrap();
        assert!(config.sip.is_none() && config.webhook.is_none());
        let text = "[sip]\nlisten = \"127.0.0.1:5070\"\nmax_queued_calls = 0\n\n[webhook]\nsecret = \"short\"\n";
        let errors = parse(text, &no_env()).unwrap_err().0;
        assert_eq!(errors.len(), 2, "{errors:#?}");
        assert_eq!(errors[0].key, "sip.max_queued_calls");
        assert_eq!(errors[0].line, Some(3));
        assert_eq!(errors[1].key, "webhook.secret");
        let errors = parse("[sip]\nlisen = \"1.2.3.4:5060\"\n", &no_env())
            .unwrap_err()
            .0;
        assert!(
            errors[0]
                .hint
                .as_deref()
                .unwrap()
                .contains("did you mean `listen`?")
        );

        let mut env = no_env();
        env.insert(ENV_WEBHOOK_SECRET.into(), "0123456789abcdef-secret".into());
        let config = parse(
            "[webhook]\nsecret = \"placeholder-placeholder\"\nreplay_window_seconds = 60\n",
            &env,
        )
        .unwrap();
        let webhook = config.webhook.unwrap();
        assert_eq!(webhook.secret.expose(), "0123456789abcdef-secret");
        assert_eq!(webhook.replay_window_seconds, 60);
        assert!(
            !format!("{webhook:?}").contains("0123456789"),
            "the secret stays out of Debug"
        );
    }
}
