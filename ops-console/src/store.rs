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
use std::time::Duration;

use maps::Timestamp;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Postgres, Sqlite, Transaction};

use dispatch_core::privacy::Sensitive;

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

/// Snapshots kept; older ones are deleted when a new one is saved.
pub const SNAPSHOTS_KEPT: i64 = 2;

/// Size of the parts a snapshot is written in.
pub const SNAPSHOT_PART_BYTES: usize = 1 << 20;

/// Splits text into pieces of at most about `max` bytes, on character boundaries.
fn split_utf8(text: &str, max: usize) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = max.min(rest.len());
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        if end == 0 {
            // A character longer than `max` (max < 4): take it whole.
            end = rest.chars().next().map_or(rest.len(), char::len_utf8);
        }
        let (part, tail) = rest.split_at(end);
        parts.push(part);
        rest = tail;
    }
    parts
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

/// A handle on the event store; cheap to clone.
#[derive(Debug, Clone)]
pub struct EventStore {
    pool: Pool,
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
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
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
        SQLITE_MIGRATIONS.run(&pool).await?;
        Ok(Self {
            pool: Pool::Sqlite(pool),
        })
    }

    async fn open_postgres(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::BadUrl(format!("the PostgreSQL URL cannot be parsed: {e}")))?;
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                location: "postgres".into(),
                source,
            })?;
        POSTGRES_MIGRATIONS.run(&pool).await?;
        Ok(Self {
            pool: Pool::Postgres(pool),
        })
    }

    /// Which engine holds the log.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Writes one command's events, its key and its outbox messages in one transaction.
    /// Returns the sequence numbers of the first and last event.
    pub async fn append(&self, append: &Append<'_>) -> Result<(u64, u64), StoreError> {
        if append.events.is_empty() {
            return Err(StoreError::Corrupt {
                seq: append.first_seq,
                reason: "a command with no events is not stored".into(),
            });
        }
        let last_seq = append.first_seq + append.events.len() as u64 - 1;
        let result = match &self.pool {
            Pool::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                write_sqlite(&mut tx, append, last_seq).await?;
                tx.commit().await
            }
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                write_postgres(&mut tx, append, last_seq).await?;
                tx.commit().await
            }
        };
        result.map_err(StoreError::from)?;
        Ok((append.first_seq, last_seq))
    }

    /// Writes several commands in one transaction (bulk loading, benchmarks); all or none.
    pub async fn append_all(&self, appends: &[Append<'_>]) -> Result<(), StoreError> {
        macro_rules! all {
            ($pool:expr, $write:ident) => {{
                let mut tx = $pool.begin().await?;
                for append in appends {
                    if append.events.is_empty() {
                        continue;
                    }
                    let last_seq = append.first_seq + append.events.len() as u64 - 1;
                    $write(&mut tx, append, last_seq).await?;
                }
                tx.commit().await?;
            }};
        }
        match &self.pool {
            Pool::Sqlite(pool) => all!(pool, write_sqlite),
            Pool::Postgres(pool) => all!(pool, write_postgres),
        }
        Ok(())
    }

    /// Feeds every stored event, in order, to `visit`; stops at the first error. The log is
    /// read in batches of [`REPLAY_BATCH`] events, each fetched as one JSON array built by
    /// the database: a long log never has to fit in memory, and the per-row cost of the
    /// driver is paid once per batch.
    pub async fn replay<E: From<StoreError>>(
        &self,
        visit: impl FnMut(StoredEvent) -> Result<(), E>,
    ) -> Result<u64, E> {
        self.replay_after(0, visit).await
    }

    /// Like [`EventStore::replay`], from the event after `after` (a snapshot's position);
    /// returns the last sequence number (`after` when nothing follows).
    pub async fn replay_after<E: From<StoreError>>(
        &self,
        after: u64,
        mut visit: impl FnMut(StoredEvent) -> Result<(), E>,
    ) -> Result<u64, E> {
        const SQLITE: &str = "SELECT json_group_array(json_array(seq, recorded_at_ms, command_key, kind, version, json(payload))) \
             FROM (SELECT * FROM events WHERE seq > $1 ORDER BY seq LIMIT $2)";
        const POSTGRES: &str = "SELECT COALESCE(json_agg(json_build_array(seq, recorded_at_ms, command_key, kind, version, payload::json) ORDER BY seq), '[]')::text \
             FROM (SELECT * FROM events WHERE seq > $1 ORDER BY seq LIMIT $2) AS batch";
        type Row = (
            i64,
            i64,
            String,
            String,
            i32,
            Box<serde_json::value::RawValue>,
        );
        let mut last = after;
        loop {
            let after = seq_to_i64(last)?;
            let batch = i64::from(REPLAY_BATCH);
            let text: String = match &self.pool {
                Pool::Sqlite(pool) => {
                    sqlx::query_scalar(SQLITE)
                        .bind(after)
                        .bind(batch)
                        .fetch_one(pool)
                        .await
                }
                Pool::Postgres(pool) => {
                    sqlx::query_scalar(POSTGRES)
                        .bind(after)
                        .bind(batch)
                        .fetch_one(pool)
                        .await
                }
            }
            .map_err(StoreError::from)?;
            let rows: Vec<Row> = serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
                seq: last + 1,
                reason: format!("the batch after event {last} does not decode: {e}"),
            })?;
            if rows.is_empty() {
                return Ok(last);
            }
            for (seq, recorded_at_ms, command_key, kind, version, payload) in rows {
                let event = decode_event(
                    seq,
                    recorded_at_ms,
                    command_key,
                    kind,
                    version,
                    payload.get().to_owned(),
                )?;
                if event.seq != last + 1 {
                    return Err(E::from(StoreError::Corrupt {
                        seq: event.seq,
                        reason: format!("the log jumps from {last} to {}", event.seq),
                    }));
                }
                last = event.seq;
                visit(event)?;
            }
        }
    }

    /// The events a stored command produced, if the key is stored.
    pub async fn command_range(&self, key: &str) -> Result<Option<(u64, u64)>, StoreError> {
        let row: Option<(i64, i64)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT first_seq, last_seq FROM commands WHERE key = $1")
                .bind(key)
                .fetch_optional(pool)
                .await?
        });
        row.map(|(first, last)| {
            Ok((
                i64_to_u64(first, 0, "sequence")?,
                i64_to_u64(last, 0, "sequence")?,
            ))
        })
        .transpose()
    }

    /// What the log holds.
    pub async fn summary(&self) -> Result<LogSummary, StoreError> {
        const SQL: &str = "SELECT \
            (SELECT COUNT(*) FROM events), \
            (SELECT COALESCE(MAX(seq), 0) FROM events), \
            (SELECT COUNT(*) FROM commands), \
            (SELECT COUNT(*) FROM outbox WHERE delivered_at_ms IS NULL)";
        let (events, last_seq, commands, pending): (i64, i64, i64, i64) =
            on_pool!(self, pool => sqlx::query_as(SQL).fetch_one(pool).await?);
        Ok(LogSummary {
            events: i64_to_u64(events, 0, "count")?,
            last_seq: i64_to_u64(last_seq, 0, "sequence")?,
            commands: i64_to_u64(commands, 0, "count")?,
            outbox_pending: i64_to_u64(pending, 0, "count")?,
        })
    }

    /// Undelivered outbox messages, oldest first.
    pub async fn pending_outbox(&self, limit: u32) -> Result<Vec<PendingMessage>, StoreError> {
        const SQL: &str = "SELECT id, idempotency_key, kind, destination, payload, seq, attempts \
                           FROM outbox WHERE delivered_at_ms IS NULL ORDER BY id LIMIT $1";
        type Row = (i64, String, String, String, String, i64, i32);
        let rows: Vec<Row> = on_pool!(self, pool => {
            sqlx::query_as(SQL)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter()
            .map(
                |(id, idempotency_key, kind, destination, payload, seq, attempts)| {
                    let id = i64_to_u64(id, 0, "outbox id")?;
                    Ok(PendingMessage {
                        id,
                        idempotency_key,
                        kind,
                        destination,
                        payload,
                        seq: i64_to_u64(seq, id, "sequence")?,
                        attempts: u32::try_from(attempts).unwrap_or(0),
                    })
                },
            )
            .collect()
    }

    /// Saves a snapshot of the state after event `last_seq` and deletes all but the newest
    /// [`SNAPSHOTS_KEPT`]. The state is written in parts of about [`SNAPSHOT_PART_BYTES`],
    /// each in its own short transaction, so that the engine's appends are never held up
    /// behind one long write (SQLite has a single writer); the `snapshots` row comes last,
    /// so a snapshot interrupted half-way is never read. Saving the same position twice
    /// keeps the first.
    pub async fn save_snapshot(
        &self,
        last_seq: u64,
        at: Timestamp,
        format: u32,
        state: &str,
    ) -> Result<(), StoreError> {
        const CLEAR: &str = "DELETE FROM snapshot_parts WHERE last_seq = $1 \
                             AND NOT EXISTS (SELECT 1 FROM snapshots WHERE last_seq = $1)";
        const PART: &str = "INSERT INTO snapshot_parts (last_seq, part, data) VALUES ($1, $2, $3) \
                            ON CONFLICT (last_seq, part) DO NOTHING";
        const INSERT: &str = "INSERT INTO snapshots (last_seq, created_at_ms, format, state, parts) \
                              VALUES ($1, $2, $3, '', $4) ON CONFLICT (last_seq) DO NOTHING";
        const PRUNE: &str = "DELETE FROM snapshots WHERE last_seq NOT IN \
                             (SELECT last_seq FROM snapshots ORDER BY last_seq DESC LIMIT $1)";
        const PRUNE_PARTS: &str = "DELETE FROM snapshot_parts WHERE last_seq NOT IN \
                                   (SELECT last_seq FROM snapshots)";
        let seq = seq_to_i64(last_seq)?;
        let format = i64::from(format);
        let parts = split_utf8(state, SNAPSHOT_PART_BYTES);
        let count = i64::try_from(parts.len()).unwrap_or(i64::MAX);
        on_pool!(self, pool => {
            sqlx::query(CLEAR).bind(seq).execute(pool).await?;
            for (i, part) in (0i64..).zip(&parts) {
                sqlx::query(PART)
                    .bind(seq)
                    .bind(i)
                    .bind(*part)
                    .execute(pool)
                    .await?;
            }
            let mut tx = pool.begin().await?;
            sqlx::query(INSERT)
                .bind(seq)
                .bind(at.as_millis())
                .bind(format)
                .bind(count)
                .execute(&mut *tx)
                .await?;
            sqlx::query(PRUNE)
                .bind(SNAPSHOTS_KEPT)
                .execute(&mut *tx)
                .await?;
            sqlx::query(PRUNE_PARTS).execute(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Whether the log holds event `seq`.
    pub async fn has_event(&self, seq: u64) -> Result<bool, StoreError> {
        const SQL: &str = "SELECT COUNT(*) FROM events WHERE seq = $1";
        let seq = seq_to_i64(seq)?;
        let count: i64 =
            on_pool!(self, pool => sqlx::query_scalar(SQL).bind(seq).fetch_one(pool).await?);
        Ok(count > 0)
    }

    /// The newest snapshot, if any, with its parts put back together.
    pub async fn latest_snapshot(&self) -> Result<Option<StoredSnapshot>, StoreError> {
        const SQL: &str = "SELECT last_seq, created_at_ms, format, parts, state FROM snapshots \
                           ORDER BY last_seq DESC LIMIT 1";
        const PARTS: &str = "SELECT data FROM snapshot_parts WHERE last_seq = $1 ORDER BY part";
        type Row = (i64, i64, i64, i64, String);
        let row: Option<Row> =
            on_pool!(self, pool => sqlx::query_as(SQL).fetch_optional(pool).await?);
        let Some((seq, created_at_ms, format, parts, mut state)) = row else {
            return Ok(None);
        };
        let last_seq = i64_to_u64(seq, 0, "snapshot position")?;
        if parts > 0 {
            let data: Vec<String> =
                on_pool!(self, pool => sqlx::query_scalar(PARTS).bind(seq).fetch_all(pool).await?);
            if i64::try_from(data.len()).ok() != Some(parts) {
                return Err(StoreError::Corrupt {
                    seq: last_seq,
                    reason: format!("snapshot has {} of its {parts} parts", data.len()),
                });
            }
            state = data.concat();
        }
        Ok(Some(StoredSnapshot {
            last_seq,
            created_at: Timestamp::from_millis(created_at_ms).map_err(|e| StoreError::Corrupt {
                seq: last_seq,
                reason: format!("snapshot time: {e}"),
            })?,
            format: u32::try_from(format).unwrap_or(u32::MAX),
            state,
        }))
    }

    /// A receiver's messages with ids after `after`, oldest first, at most `limit`; only
    /// the unacknowledged ones when `pending_only`.
    pub async fn feed(
        &self,
        destination: &str,
        after: u64,
        limit: u32,
        pending_only: bool,
    ) -> Result<Vec<FeedMessage>, StoreError> {
        const ALL: &str = "SELECT id, idempotency_key, kind, payload, created_at_ms, delivered_at_ms \
                           FROM outbox WHERE destination = $1 AND id > $2 ORDER BY id LIMIT $3";
        const PENDING: &str = "SELECT id, idempotency_key, kind, payload, created_at_ms, delivered_at_ms \
                               FROM outbox WHERE destination = $1 AND id > $2 \
                               AND delivered_at_ms IS NULL ORDER BY id LIMIT $3";
        type Row = (i64, String, String, String, i64, Option<i64>);
        let sql = if pending_only { PENDING } else { ALL };
        let after = seq_to_i64(after)?;
        let rows: Vec<Row> = on_pool!(self, pool => {
            sqlx::query_as(sql)
                .bind(destination)
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter()
            .map(
                |(id, idempotency_key, kind, payload, created_at_ms, delivered_at_ms)| {
                    let id = i64_to_u64(id, 0, "outbox id")?;
                    let time = |ms: i64| {
                        Timestamp::from_millis(ms).map_err(|e| StoreError::Corrupt {
                            seq: id,
                            reason: format!("outbox time: {e}"),
                        })
                    };
                    Ok(FeedMessage {
                        id,
                        idempotency_key,
                        kind,
                        payload,
                        created_at: time(created_at_ms)?,
                        delivered_at: delivered_at_ms.map(time).transpose()?,
                    })
                },
            )
            .collect()
    }

    /// How many of a receiver's messages are not acknowledged yet.
    pub async fn feed_pending(&self, destination: &str) -> Result<u64, StoreError> {
        const SQL: &str =
            "SELECT COUNT(*) FROM outbox WHERE destination = $1 AND delivered_at_ms IS NULL";
        let count: i64 = on_pool!(self, pool => {
            sqlx::query_scalar(SQL)
                .bind(destination)
                .fetch_one(pool)
                .await?
        });
        i64_to_u64(count, 0, "count")
    }

    /// Marks one of a receiver's messages delivered; `None` when the receiver has no
    /// message with that id. Acknowledging twice is harmless.
    pub async fn acknowledge(
        &self,
        destination: &str,
        id: u64,
        at: Timestamp,
    ) -> Result<Option<Acknowledged>, StoreError> {
        const UPDATE: &str = "UPDATE outbox SET delivered_at_ms = $1, attempts = attempts + 1 \
                              WHERE id = $2 AND destination = $3 AND delivered_at_ms IS NULL";
        const READ: &str = "SELECT delivered_at_ms FROM outbox WHERE id = $1 AND destination = $2";
        let row = seq_to_i64(id)?;
        let updated = on_pool!(self, pool => sqlx::query(UPDATE)
                .bind(at.as_millis())
                .bind(row)
                .bind(destination)
                .execute(pool)
                .await?
                .rows_affected());
        if updated > 0 {
            return Ok(Some(Acknowledged::Now(at)));
        }
        let before: Option<Option<i64>> = on_pool!(self, pool => {
            sqlx::query_scalar(READ)
                .bind(row)
                .bind(destination)
                .fetch_optional(pool)
                .await?
        });
        match before {
            None => Ok(None),
            Some(None) => Err(StoreError::Corrupt {
                seq: id,
                reason: "outbox row neither updated nor delivered".into(),
            }),
            Some(Some(ms)) => Timestamp::from_millis(ms)
                .map(|t| Some(Acknowledged::Before(t)))
                .map_err(|e| StoreError::Corrupt {
                    seq: id,
                    reason: format!("outbox time: {e}"),
                }),
        }
    }

    /// Closes the connections, flushing SQLite's WAL.
    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await);
    }
}

fn decode_event(
    seq: i64,
    recorded_at_ms: i64,
    command_key: String,
    kind: String,
    version: i32,
    payload: String,
) -> Result<StoredEvent, StoreError> {
    let seq = i64_to_u64(seq, 0, "sequence")?;
    let recorded_at = Timestamp::from_millis(recorded_at_ms).map_err(|e| StoreError::Corrupt {
        seq,
        reason: format!("recorded_at: {e}"),
    })?;
    let version = u32::try_from(version).map_err(|_| StoreError::Corrupt {
        seq,
        reason: format!("negative schema version {version}"),
    })?;
    Ok(StoredEvent {
        seq,
        recorded_at,
        command_key,
        kind,
        version,
        payload,
    })
}

fn map_write_error(e: sqlx::Error, append: &Append<'_>, what: &str) -> StoreError {
    if is_unique_violation(&e) {
        match what {
            "events" => StoreError::Conflict {
                seq: append.first_seq,
            },
            "commands" => StoreError::DuplicateKey(append.command_key.to_owned()),
            _ => StoreError::Database(e),
        }
    } else {
        StoreError::Database(e)
    }
}

macro_rules! write_batch {
    ($name:ident, $db:ty) => {
        async fn $name(
            tx: &mut Transaction<'static, $db>,
            append: &Append<'_>,
            last_seq: u64,
        ) -> Result<(), StoreError> {
            let at = append.recorded_at.as_millis();
            for (offset, event) in append.events.iter().enumerate() {
                let seq = seq_to_i64(append.first_seq + offset as u64)?;
                sqlx::query(
                    "INSERT INTO events (seq, recorded_at_ms, command_key, kind, version, payload) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(seq)
                .bind(at)
                .bind(append.command_key)
                .bind(event.kind)
                .bind(i64::from(event.version))
                .bind(&event.payload)
                .execute(&mut **tx)
                .await
                .map_err(|e| map_write_error(e, append, "events"))?;
            }
            sqlx::query(
                "INSERT INTO commands (key, first_seq, last_seq, recorded_at_ms) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(append.command_key)
            .bind(seq_to_i64(append.first_seq)?)
            .bind(seq_to_i64(last_seq)?)
            .bind(at)
            .execute(&mut **tx)
            .await
            .map_err(|e| map_write_error(e, append, "commands"))?;
            for message in append.outbox {
                sqlx::query(
                    "INSERT INTO outbox (idempotency_key, seq, kind, destination, payload, created_at_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&message.idempotency_key)
                .bind(seq_to_i64(last_seq)?)
                .bind(message.kind)
                .bind(&message.destination)
                .bind(&message.payload)
                .bind(at)
                .execute(&mut **tx)
                .await
                .map_err(|e| map_write_error(e, append, "outbox"))?;
            }
            Ok(())
        }
    };
}

write_batch!(write_sqlite, Sqlite);
write_batch!(write_postgres, Postgres);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_splits_on_character_boundaries_and_joins_back() {
        let text = "ñandú-Bogotá-€".repeat(50);
        for max in [1, 2, 3, 5, 64, 10_000] {
            let parts = split_utf8(&text, max);
            assert_eq!(parts.concat(), text, "max {max}");
            assert!(parts.iter().all(|p| !p.is_empty()));
            if max >= 4 {
                assert!(parts.iter().all(|p| p.len() <= max), "max {max}");
            }
        }
        assert!(split_utf8("", 8).is_empty());
    }

    #[tokio::test]
    async fn a_snapshot_in_many_parts_reads_back_whole_and_old_ones_go() {
        let dir = tempfile::tempdir().unwrap();
        let store = EventStore::open(&StoreLocation::Sqlite(dir.path().join("s.db")))
            .await
            .unwrap();
        let at = Timestamp::parse_rfc3339("2026-11-23T12:00:00Z").unwrap();
        let big = format!("\"{}\"", "Teusaquillo ñ ".repeat(200_000)); // ≈ 3 MB
        for seq in [10, 20, 30] {
            store.save_snapshot(seq, at, 1, &big).await.unwrap();
        }
        let latest = store.latest_snapshot().await.unwrap().unwrap();
        assert_eq!(latest.last_seq, 30);
        assert_eq!(latest.state, big);
        let Pool::Sqlite(pool) = &store.pool else {
            unreachable!()
        };
        let kept: Vec<i64> = sqlx::query_scalar("SELECT last_seq FROM snapshots ORDER BY last_seq")
            .fetch_all(pool)
            .await
            .unwrap();
        assert_eq!(kept, [20, 30]);
        let orphans: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM snapshot_parts WHERE last_seq NOT IN (20, 30)",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(orphans, 0);
        // A snapshot missing a part is an error the engine skips, never a wrong state.
        sqlx::query("DELETE FROM snapshot_parts WHERE last_seq = 30 AND part = 1")
            .execute(pool)
            .await
            .unwrap();
        let error = store.latest_snapshot().await.unwrap_err();
        assert!(error.to_string().contains("parts"), "{error}");
    }

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
