//! Snapshots of the dispatch state: a cache of the log, written in parts.

use maps::Timestamp;
use sqlx::Connection;

use super::{EventStore, Pool, StoreError, StoredSnapshot, i64_to_u64, seq_to_i64};

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

impl EventStore {
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
            let mut connection = pool.acquire().await?;
            let result = async {
                let mut tx = connection.begin().await?;
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
                tx.commit().await
            }
            .await;
            if result.is_err() {
                // As for appends: a connection whose COMMIT failed is never reused (on
                // SQLite it is the log's one writer connection).
                connection.close_on_drop();
            }
            result?;
        });
        Ok(())
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
}

#[cfg(test)]
mod tests {
    use super::super::StoreLocation;
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
}
