//! Appending to the log and reading it back.

use std::time::Duration;

use maps::Timestamp;
use sqlx::{Connection, Postgres, Sqlite, Transaction};

use super::{
    Append, EventStore, LogSummary, Pool, REPLAY_BATCH, StoreError, StoredCommand, StoredEvent,
    Writer, i64_to_u64, is_unique_violation, seq_to_i64,
};

/// How long closing a broken connection may take before it is simply dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Whether the connection is known to be in a clean state after this error: only a
/// refused key (the transaction was rolled back by the constraint, nothing else happened).
fn keeps_connection(error: &StoreError) -> bool {
    matches!(error, StoreError::DuplicateKey(_))
}

impl EventStore {
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
        match (&self.pool, self.writer.as_ref()) {
            (_, Writer::ReadOnly) => {
                return Err(StoreError::Lock {
                    log: self.backend().name().into(),
                    reason: "this handle was opened to read the log only".into(),
                });
            }
            (Pool::Sqlite(pool), _) => {
                let mut connection = pool.acquire().await?;
                let result = async {
                    let mut tx = connection.begin().await?;
                    write_sqlite(&mut tx, append, last_seq).await?;
                    tx.commit().await.map_err(StoreError::from)
                }
                .await;
                if let Err(e) = &result
                    && !keeps_connection(e)
                {
                    // After a failed write (a failed COMMIT above all) the driver's idea
                    // of the connection's transaction can be out of step with SQLite's:
                    // later "transactions" would be savepoints inside one that never
                    // commits. Never reuse it: the pool opens a fresh one.
                    connection.close_on_drop();
                }
                result?;
            }
            (Pool::Postgres(_), Writer::Postgres(writer)) => {
                let mut slot = writer.connection.lock().await;
                let Some(writer) = slot.as_mut() else {
                    return Err(StoreError::WriterLost);
                };
                let result = async {
                    let mut tx = writer.begin().await?;
                    write_postgres(&mut tx, append, last_seq).await?;
                    tx.commit().await.map_err(StoreError::from)
                }
                .await;
                if let Err(e) = &result
                    && !keeps_connection(e)
                    && let Some(broken) = slot.take()
                {
                    // The writer lock goes with the connection: `recover` takes it again
                    // on a new one (or finds that another server has it).
                    let _ = tokio::time::timeout(CLOSE_TIMEOUT, broken.close()).await;
                }
                result?;
            }
            (Pool::Postgres(_), Writer::Sqlite(_)) => {
                return Err(StoreError::Lock {
                    log: "postgres".into(),
                    reason: "the store has no PostgreSQL writer connection".into(),
                });
            }
        }
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

    /// The stored command with this key, if any: its events and what it was.
    pub async fn stored_command(&self, key: &str) -> Result<Option<StoredCommand>, StoreError> {
        type Row = (i64, i64, Option<String>, Option<String>);
        let row: Option<Row> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT first_seq, last_seq, command, fingerprint FROM commands WHERE key = $1",
            )
            .bind(key)
            .fetch_optional(pool)
            .await?
        });
        row.map(|(first, last, command, fingerprint)| {
            Ok(StoredCommand {
                first_seq: i64_to_u64(first, 0, "sequence")?,
                last_seq: i64_to_u64(last, 0, "sequence")?,
                command,
                fingerprint,
            })
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

    /// Whether the log holds event `seq`.
    pub async fn has_event(&self, seq: u64) -> Result<bool, StoreError> {
        const SQL: &str = "SELECT COUNT(*) FROM events WHERE seq = $1";
        let seq = seq_to_i64(seq)?;
        let count: i64 =
            on_pool!(self, pool => sqlx::query_scalar(SQL).bind(seq).fetch_one(pool).await?);
        Ok(count > 0)
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
            tx: &mut Transaction<'_, $db>,
            append: &Append<'_>,
            last_seq: u64,
        ) -> Result<(), StoreError> {
            let at = append.recorded_at.as_millis();
            // Fenced append: the log must end where this writer thinks it does.
            let end: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM events")
                .fetch_one(&mut **tx)
                .await?;
            let expected = append.first_seq - 1;
            if u64::try_from(end).ok() != Some(expected) {
                return Err(StoreError::NotAtEnd {
                    expected,
                    found: u64::try_from(end).unwrap_or(0),
                });
            }
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
                "INSERT INTO commands (key, first_seq, last_seq, recorded_at_ms, command, fingerprint) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(append.command_key)
            .bind(seq_to_i64(append.first_seq)?)
            .bind(seq_to_i64(last_seq)?)
            .bind(at)
            .bind(append.command)
            .bind(append.fingerprint)
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
