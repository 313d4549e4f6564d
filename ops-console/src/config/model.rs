//! The serde structs of every section: the single source of truth of the keys, their
//! types and their defaults.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

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
    /// Where the provider is told that an operator took one of its calls (a signed `POST`
    /// naming the position to connect); without it the provider must watch the API.
    #[serde(default)]
    pub callback_url: Option<String>,
}

pub(super) fn default_replay_window() -> u32 {
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

impl DatabaseUrl {
    /// The same URL with a relative SQLite path made relative to `base` (a PostgreSQL URL
    /// or an absolute path is unchanged).
    #[must_use]
    pub fn relative_to(&self, base: &std::path::Path) -> Self {
        match self.location() {
            crate::store::StoreLocation::Sqlite(path) if path.is_relative() => {
                Self(format!("sqlite:{}", base.join(path).display()))
            }
            _ => self.clone(),
        }
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

/// `[server]`: the HTTP door and its limits. Every limit has a default sized for one
/// regulation centre and a metric when it is hit (`regula_http_refused_total{reason}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address the HTTP server binds (`127.0.0.1:8080`; port 0 picks a free port).
    pub listen: SocketAddr,
    /// Seconds to let requests in progress finish after SIGINT/SIGTERM.
    pub shutdown_grace_seconds: u64,
    /// Seconds a client has to send a complete request head, counted from when the server
    /// starts waiting for it: on a new connection (slowloris) and between requests on a
    /// kept-alive one, so it is also the idle keep-alive limit. Then the connection is
    /// closed (`reason="header_timeout"`).
    pub header_read_timeout_seconds: u64,
    /// HTTP connections open at once; a connection beyond it gets an immediate `503` with a
    /// JSON body and is closed (`reason="connection_limit"`). WebSocket streams, once
    /// upgraded, count against `stream_max_clients` instead.
    pub max_connections: u32,
    /// Largest request body in bytes; a larger one gets `413` with a JSON body
    /// (`reason="body_too_large"`).
    pub max_body_bytes: u32,
    /// WebSocket stream clients at once; beyond, `503` JSON before upgrading
    /// (`reason="stream_limit"`).
    pub stream_max_clients: u32,
    /// Largest WebSocket message (and frame) a stream client may send, in bytes; a larger
    /// one closes the socket (`reason="stream_message_too_large"`).
    pub stream_max_message_bytes: u32,
    /// Seconds between the server's pings on a stream.
    pub stream_ping_interval_seconds: u64,
    /// A stream client from which nothing (pong or any message) arrives for this many
    /// seconds is dropped (`reason="stream_dead_peer"`); more than the ping interval.
    pub stream_dead_peer_seconds: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            shutdown_grace_seconds: 10,
            header_read_timeout_seconds: 10,
            max_connections: 1024,
            max_body_bytes: 2 * 1024 * 1024,
            stream_max_clients: 256,
            stream_max_message_bytes: 64 * 1024,
            stream_ping_interval_seconds: 20,
            stream_dead_peer_seconds: 60,
        }
    }
}

impl ServerConfig {
    /// The grace period as a duration.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_seconds)
    }

    /// The limits of the HTTP door.
    pub fn http_limits(&self) -> crate::server::HttpLimits {
        crate::server::HttpLimits {
            header_read_timeout: Duration::from_secs(self.header_read_timeout_seconds),
            max_connections: usize::try_from(self.max_connections).unwrap_or(usize::MAX),
            max_body_bytes: usize::try_from(self.max_body_bytes).unwrap_or(usize::MAX),
        }
    }

    /// The limits of the WebSocket stream.
    pub fn stream_limits(&self) -> crate::api::StreamLimits {
        crate::api::StreamLimits {
            max_clients: usize::try_from(self.stream_max_clients).unwrap_or(usize::MAX),
            max_message_bytes: usize::try_from(self.stream_max_message_bytes).unwrap_or(usize::MAX),
            ping_interval: Duration::from_secs(self.stream_ping_interval_seconds),
            dead_peer_after: Duration::from_secs(self.stream_dead_peer_seconds),
        }
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
