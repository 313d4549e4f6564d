//! The outbox as its receivers read it: pages of a receiver's messages, acknowledgements.

use maps::Timestamp;

use super::{
    Acknowledged, EventStore, FeedMessage, PendingMessage, Pool, StoreError, i64_to_u64, seq_to_i64,
};

impl EventStore {
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
}
