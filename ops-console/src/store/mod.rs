//! The event store: the durable, append-only log of the regulation centre.
//!
//! Three tables (see `ops-console/migrations/`):
//! - `events`: every event in order (`seq` 1, 2, 3 …), with the time it was recorded, the
//!   idempotency key of the command that produced it, its name, schema version and JSON.
//!   Triggers refuse `UPDATE` and `DELETE`: the log is append-only.
//! - `commands`: one row per applied command key; its primary key guarantees a command is
//!   stored at most once, even if two engines raced.
//! - `outbox`: messages that leave the process (EPS transfer records, referrals, hospital
//!   pre-alerts), written in the **same transaction** as the events that caused them, so a
//!   crash can neither lose one nor send one for an event that was never stored.
//!
//! **SQLite** (a file, the default) or **PostgreSQL** (`postgres://…`), chosen by the URL.
//! SQLite runs in WAL mode with `synchronous = FULL`: a command is acknowledged only after
//! its transaction is on disk.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use maps::Timestamp;
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use dispatch_core::privacy::Sensitive;

pub use snapshots::{SNAPSHOT_PART_BYTES, SNAPSHOTS_KEPT};

/// Which database engine holds the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl Backend {
    /// Lower-case name, for logs and benchmark output.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// Where the log lives, parsed from a database URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A SQLite file (created when missing).
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL (kept out of logs: it may carry a password).
    Postgres(Sensitive<String>),
}

impl StoreLocation {
    /// Parses `sqlite:PATH`, `sqlite://PATH`, `postgres://…`, `postgresql://…`, or a bare
    /// file path (SQLite).
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        let url = url.trim();
        if url.is_empty() {
            return Err(StoreError::BadUrl(
                "the database URL is empty; give a SQLite file path or a postgres:// URL".into(),
            ));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(Sensitive::new(url.to_owned())));
        }
        let path = if let Some(rest) = url.strip_prefix("sqlite://") {
            rest
        } else if let Some(rest) = url.strip_prefix("sqlite:") {
            rest
        } else if let Some((scheme, _)) = url.split_once("://") {
            return Err(StoreError::BadUrl(format!(
                "unsupported database scheme `{scheme}://`; use a SQLite file path (sqlite:PATH) or postgres://"
            )));
        } else {
            url
        };
        let path = path.split('?').next().unwrap_or_default();
        if path.is_empty() || path == ":memory:" {
            return Err(StoreError::BadUrl(
                "the event log must be a file (an in-memory database would lose every event on exit)".into(),
            ));
        }
        Ok(Self::Sqlite(PathBuf::from(path)))
    }
}

/// Why the store failed. Nothing was written when an operation fails.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL cannot be used.
    #[error("{0}")]
    BadUrl(String),
    /// The database could not be opened or reached.
    #[error("cannot open the event store at {location}: {source}")]
    Open {
        /// File path or `postgres` (never the URL: it may carry a password).
        location: String,
        /// Why.
        source: sqlx::Error,
    },
    /// A migration failed.
    #[error("cannot prepare the event store schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Another writer appended at the same position: two engines share one log.
    #[error("event {seq} was already written by another writer; only one engine may own a log")]
    Conflict {
        /// The position both tried to write.
        seq: u64,
    },
    /// The command key is already stored.
    #[error("command key `{0}` is already in the log")]
    DuplicateKey(String),
    /// A stored row does not decode.
    #[error("stored row {seq} is corrupt: {reason}")]
    Corrupt {
        /// Sequence number or outbox id.
        seq: u64,
        /// Why.
        reason: String,
    },
    /// Another process writes this log.
    #[error(
        "the event log {log} is in use by {holder}; only one server may write a log: stop that one first, or give this one another database"
    )]
    InUse {
        /// The log (file path, or `postgres`).
        log: String,
        /// Who holds it.
        holder: String,
    },
    /// The writer lock could not be taken or checked.
    #[error("cannot lock the event log {log}: {reason}")]
    Lock {
        /// The log.
        log: String,
        /// Why.
        reason: String,
    },
    /// The log cannot be written (read-only file, file system or database).
    #[error("the event log {log} cannot be written ({reason}); Regula needs to write its log")]
    ReadOnly {
        /// The log.
        log: String,
        /// What the system or the database said.
        reason: String,
    },
    /// The writer lost its lock and another writer holds the log now: this one must never
    /// append again.
    #[error("this server lost the writer lock of the event log: {0}")]
    Fenced(String),
    /// The log ends elsewhere than the writer expected: another writer appended.
    #[error(
        "the log ends at event {found}, not {expected} as this writer expected; another writer appended to it"
    )]
    NotAtEnd {
        /// Where this writer thought the log ended.
        expected: u64,
        /// Where it ends.
        found: u64,
    },
    /// The writer connection was closed after a failure; [`EventStore::recover`] must
    /// re-establish it before anything else is written.
    #[error("the writer connection is being re-established after a failure")]
    WriterLost,
    /// Any other database error.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// An event ready to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedEvent {
    /// Its name (`unit_assigned`, …).
    pub kind: &'static str,
    /// Schema version of the payload.
    pub version: u32,
    /// The event as JSON.
    pub payload: String,
}

/// A message for the outbox, written with the events that caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    /// Unique per message: delivering it twice is recognisable downstream.
    pub idempotency_key: String,
    /// What it is (`transfer_record`, `referral`, `pre_alert`).
    pub kind: &'static str,
    /// Who receives it (an EPS code, `red_publica`, a facility id).
    pub destination: String,
    /// The message as JSON.
    pub payload: String,
}

/// One command's worth of writes.
#[derive(Debug, Clone, Copy)]
pub struct Append<'a> {
    /// The command's idempotency key.
    pub command_key: &'a str,
    /// Sequence number of the first event (the log's last + 1).
    pub first_seq: u64,
    /// When the events were recorded.
    pub recorded_at: Timestamp,
    /// The events, in order (at least one).
    pub events: &'a [EncodedEvent],
    /// Messages to send once stored.
    pub outbox: &'a [OutboxMessage],
    /// The command's name (`assign_unit`, …), stored with its key.
    pub command: &'a str,
    /// SHA-256 of the command's canonical JSON, stored with its key: the same key with
    /// another command is recognised.
    pub fingerprint: &'a str,
}

/// A command key as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCommand {
    /// Its first event.
    pub first_seq: u64,
    /// Its last event.
    pub last_seq: u64,
    /// The command's name (absent for keys stored before names were kept).
    pub command: Option<String>,
    /// The command's fingerprint (absent for keys stored before fingerprints were kept).
    pub fingerprint: Option<String>,
}

impl StoredCommand {
    /// Its first and last event.
    pub fn range(&self) -> (u64, u64) {
        (self.first_seq, self.last_seq)
    }
}

/// An event read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Position in the log.
    pub seq: u64,
    /// When it was recorded.
    pub recorded_at: Timestamp,
    /// Key of the command that produced it.
    pub command_key: String,
    /// Its name.
    pub kind: String,
    /// Schema version.
    pub version: u32,
    /// JSON.
    pub payload: String,
}

/// An undelivered outbox message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingMessage {
    /// Outbox row id.
    pub id: u64,
    /// Idempotency key.
    pub idempotency_key: String,
    /// Kind.
    pub kind: String,
    /// Receiver.
    pub destination: String,
    /// JSON.
    pub payload: String,
    /// The event that caused it.
    pub seq: u64,
    /// Delivery attempts so far.
    pub attempts: u32,
}

/// An outbox message as its receiver reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedMessage {
    /// Outbox row id (increasing: receivers page with it).
    pub id: u64,
    /// Idempotency key (stable across re-reads).
    pub idempotency_key: String,
    /// Kind.
    pub kind: String,
    /// JSON.
    pub payload: String,
    /// When it was stored.
    pub created_at: Timestamp,
    /// When the receiver acknowledged it.
    pub delivered_at: Option<Timestamp>,
}

/// What acknowledging a message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acknowledged {
    /// Marked delivered now.
    Now(Timestamp),
    /// It had been acknowledged before, at this time.
    Before(Timestamp),
}

/// A stored snapshot of the dispatch state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSnapshot {
    /// The last event it includes.
    pub last_seq: u64,
    /// When it was taken.
    pub created_at: Timestamp,
    /// Format of `state`.
    pub format: u32,
    /// The state as JSON.
    pub state: String,
}

/// Counts of what the log holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct LogSummary {
    /// Events stored.
    pub events: u64,
    /// Last sequence number (0 when empty).
    pub last_seq: u64,
    /// Commands stored.
    pub commands: u64,
    /// Outbox messages not yet delivered.
    pub outbox_pending: u64,
}

#[derive(Debug, Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same code on whichever backend the store has: `$pool` is the concrete pool in
/// each arm, so the queries are checked against each driver while written once.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pool {
            Pool::Sqlite($pool) => $body,
            Pool::Postgres($pool) => $body,
        }
    };
}

mod feeds;
mod log;
mod snapshots;

mod writer;

pub use writer::FileLock;

/// A handle on the event store; cheap to clone.
#[derive(Debug, Clone)]
pub struct EventStore {
    pool: Pool,
    /// The writer: the SQLite lock file, or the PostgreSQL connection holding the log's
    /// advisory lock (every append goes through it).
    writer: Arc<Writer>,
    /// Keys the engine's own commands (`log_meta.log_secret`): their idempotency keys
    /// cannot be derived from public ids.
    secret: Arc<[u8]>,
}

#[derive(Debug)]
enum Writer {
    /// Opened to read only ([`EventStore::inspect`]).
    ReadOnly,
    /// Held for the life of the store: dropping it releases the lock.
    Sqlite(#[allow(dead_code)] FileLock),
    Postgres(Box<PgWriter>),
}

/// The PostgreSQL writer: the connection that holds the log's advisory lock, and how to
/// open another.
#[derive(Debug)]
struct PgWriter {
    options: PgConnectOptions,
    connection: tokio::sync::Mutex<Option<PgConnection>>,
}

/// Events read per round trip when replaying the log.
pub const REPLAY_BATCH: u32 = 5_000;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

fn seq_to_i64(seq: u64) -> Result<i64, StoreError> {
    i64::try_from(seq).map_err(|_| StoreError::Corrupt {
        seq,
        reason: "sequence number out of range".into(),
    })
}

fn i64_to_u64(value: i64, seq: u64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt {
        seq,
        reason: format!("negative {what} {value}"),
    })
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Creates the database file readable and writable by its owner only (SQLite gives its WAL
/// and shared-memory files the same permissions); an existing file must be writable (SQLite
/// would otherwise open it read-only without a word, and refuse every command later).
fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::OpenOptions::new().write(true).open(path).map(drop)
        }
        Err(e) => Err(e),
    }
}

fn is_read_only(e: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = e else {
        return false;
    };
    // SQLite: SQLITE_READONLY (8) and its extended codes; PostgreSQL:
    // read_only_sql_transaction (25006) and insufficient_privilege (42501).
    let code = db.code().unwrap_or_default();
    code == "8"
        || code.parse::<u32>().is_ok_and(|c| c & 0xff == 8)
        || code == "25006"
        || code == "42501"
        || db.message().contains("readonly")
}

fn read_only_migration(e: sqlx::migrate::MigrateError, log: &str) -> StoreError {
    match e {
        sqlx::migrate::MigrateError::Execute(source) if is_read_only(&source) => {
            StoreError::ReadOnly {
                log: log.to_owned(),
                reason: source.to_string(),
            }
        }
        e => StoreError::Migrate(e),
    }
}

/// Makes sure the log can be written (a read-only store is a start-up error, not a server
/// that refuses every command): records this writer in `log_meta`, and reads (creating it
/// on first use) the secret that keys internal commands.
async fn prepare(pool: &Pool, log: &str) -> Result<Arc<[u8]>, StoreError> {
    const WRITER: &str = "INSERT INTO log_meta (key, value) VALUES ('writer', $1) \
                          ON CONFLICT (key) DO UPDATE SET value = excluded.value";
    const SECRET: &str = "INSERT INTO log_meta (key, value) VALUES ('log_secret', $1) \
                          ON CONFLICT (key) DO NOTHING";
    const READ: &str = "SELECT value FROM log_meta WHERE key = 'log_secret'";
    let fresh = hex::encode(rand::random::<[u8; 32]>());
    let writer = writer::writer_identity();
    let store = PoolRef { pool };
    let read_only = |source: sqlx::Error| {
        if is_read_only(&source) {
            StoreError::ReadOnly {
                log: log.to_owned(),
                reason: source.to_string(),
            }
        } else {
            StoreError::Database(source)
        }
    };
    let secret: String = on_pool!(store, pool => {
        sqlx::query(WRITER).bind(&writer).execute(pool).await.map_err(read_only)?;
        sqlx::query(SECRET).bind(&fresh).execute(pool).await.map_err(read_only)?;
        sqlx::query_scalar(READ).fetch_one(pool).await?
    });
    let secret = hex::decode(secret.trim()).map_err(|e| StoreError::Corrupt {
        seq: 0,
        reason: format!("log_meta.log_secret is not hex: {e}"),
    })?;
    Ok(Arc::from(secret))
}

/// Lets `on_pool!` run on a bare pool.
struct PoolRef<'a> {
    pool: &'a Pool,
}

impl EventStore {
    /// Opens (creating when needed) the log at `location` and brings its schema up to date.
    pub async fn open(location: &StoreLocation) -> Result<Self, StoreError> {
        match location {
            StoreLocation::Sqlite(path) => Self::open_sqlite(path).await,
            StoreLocation::Postgres(url) => Self::open_postgres(url.expose()).await,
        }
    }

    async fn open_sqlite(path: &Path) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
            && !parent.is_dir()
        {
            return Err(StoreError::BadUrl(format!(
                "the directory of the event log {} does not exist",
                path.display()
            )));
        }
        // The lock first: a second server must fail before it touches the database.
        let lock = FileLock::acquire(path)?;
        create_private(path).map_err(|e| StoreError::ReadOnly {
            log: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(false)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        // One connection: the engine is the only writer, and a single connection keeps
        // SQLite from ever returning SQLITE_BUSY to ourselves.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                location: path.display().to_string(),
                source,
            })?;
        let log = path.display().to_string();
        SQLITE_MIGRATIONS
            .run(&pool)
            .await
            .map_err(|e| read_only_migration(e, &log))?;
        let pool = Pool::Sqlite(pool);
        let secret = prepare(&pool, &log).await?;
        Ok(Self {
            pool,
            writer: Arc::new(Writer::Sqlite(lock)),
            secret,
        })
    }

    async fn open_postgres(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::BadUrl(format!("the PostgreSQL URL cannot be parsed: {e}")))?
            .application_name(&writer::writer_identity());
        let connection = writer::lock_postgres(&options).await?;
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await
            .map_err(|source| StoreError::Open {
                location: "postgres".into(),
                source,
            })?;
        POSTGRES_MIGRATIONS
            .run(&pool)
            .await
            .map_err(|e| read_only_migration(e, "postgres"))?;
        let pool = Pool::Postgres(pool);
        let secret = prepare(&pool, "postgres").await?;
        Ok(Self {
            pool,
            writer: Arc::new(Writer::Postgres(Box::new(PgWriter {
                options,
                connection: tokio::sync::Mutex::new(Some(connection)),
            }))),
            secret,
        })
    }

    /// Opens an existing log to read it (checks, benchmarks, tests) without taking the
    /// writer lock: it can read while a server writes, and can never append.
    pub async fn inspect(location: &StoreLocation) -> Result<Self, StoreError> {
        let pool = match location {
            StoreLocation::Sqlite(path) => {
                let options = SqliteConnectOptions::new()
                    .filename(path)
                    .read_only(true)
                    .create_if_missing(false)
                    .busy_timeout(Duration::from_secs(5));
                Pool::Sqlite(
                    SqlitePoolOptions::new()
                        .max_connections(1)
                        .connect_with(options)
                        .await
                        .map_err(|source| StoreError::Open {
                            location: path.display().to_string(),
                            source,
                        })?,
                )
            }
            StoreLocation::Postgres(url) => {
                let options = PgConnectOptions::from_str(url.expose()).map_err(|e| {
                    StoreError::BadUrl(format!("the PostgreSQL URL cannot be parsed: {e}"))
                })?;
                Pool::Postgres(
                    PgPoolOptions::new()
                        .max_connections(2)
                        .connect_with(options)
                        .await
                        .map_err(|source| StoreError::Open {
                            location: "postgres".into(),
                            source,
                        })?,
                )
            }
        };
        Ok(Self {
            pool,
            writer: Arc::new(Writer::ReadOnly),
            secret: Arc::from(Vec::new()),
        })
    }

    /// The secret that keys the engine's own commands (stable for the life of the log).
    pub fn secret(&self) -> &[u8] {
        &self.secret
    }

    /// The last sequence number in the log (0 when empty), read now.
    pub async fn last_seq(&self) -> Result<u64, StoreError> {
        const SQL: &str = "SELECT COALESCE(MAX(seq), 0) FROM events";
        let last: i64 = on_pool!(self, pool => sqlx::query_scalar(SQL).fetch_one(pool).await?);
        i64_to_u64(last, 0, "sequence")
    }

    /// After a failed write: re-establishes a verified writer connection (on PostgreSQL,
    /// with the writer lock taken again, or [`StoreError::Fenced`] when another server has
    /// it now) and returns the log's last sequence number as stored. The failed write's
    /// connection was closed when it failed, so nothing of its state is reused.
    pub async fn recover(&self) -> Result<u64, StoreError> {
        if let Writer::Postgres(writer) = self.writer.as_ref() {
            let (options, connection) = (&writer.options, &writer.connection);
            let mut slot = connection.lock().await;
            let usable = match slot.as_mut() {
                Some(connection) => connection.ping().await.is_ok(),
                None => false,
            };
            if !usable {
                if let Some(old) = slot.take() {
                    let _ = old.close().await;
                }
                *slot = Some(match writer::lock_postgres(options).await {
                    Ok(connection) => connection,
                    Err(StoreError::InUse { holder, .. }) => {
                        return Err(StoreError::Fenced(format!(
                            "the log is now held by {holder}"
                        )));
                    }
                    Err(e) => return Err(e),
                });
            }
        }
        self.last_seq().await
    }

    /// Which engine holds the log.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Closes the connections, flushing SQLite's WAL (and releasing PostgreSQL's writer
    /// lock).
    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await);
        if let Writer::Postgres(writer) = self.writer.as_ref()
            && let Some(connection) = writer.connection.lock().await.take()
        {
            let _ = connection.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn database_urls_choose_the_backend() {
        assert_eq!(
            StoreLocation::parse("regula.db").unwrap(),
            StoreLocation::Sqlite("regula.db".into())
        );
        assert_eq!(
            StoreLocation::parse("sqlite:///var/lib/regula/log.db?mode=rwc").unwrap(),
            StoreLocation::Sqlite("/var/lib/regula/log.db".into())
        );
        assert_eq!(
            StoreLocation::parse("sqlite:log.db").unwrap(),
            StoreLocation::Sqlite("log.db".into())
        );
        assert!(matches!(
            StoreLocation::parse("postgres://regula:secret@db/regula").unwrap(),
            StoreLocation::Postgres(_)
        ));
        assert!(matches!(
            StoreLocation::parse("postgresql://db/regula").unwrap(),
            StoreLocation::Postgres(_)
        ));
    }

    #[test]
    fn unusable_database_urls_are_clear_errors() {
        for (url, expected) in [
            ("", "empty"),
            (
                "mysql://db/regula",
                "unsupported database scheme `mysql://`",
            ),
            ("sqlite::memory:", "in-memory"),
            ("sqlite://", "in-memory"),
        ] {
            let error = StoreLocation::parse(url).unwrap_err().to_string();
            assert!(error.contains(expected), "{url}: {error}");
        }
    }

    #[test]
    fn a_postgres_password_never_shows_in_debug_output() {
        let location = StoreLocation::parse("postgres://regula:hunter2@db/regula").unwrap();
        assert!(!format!("{location:?}").contains("hunter2"));
    }
}
