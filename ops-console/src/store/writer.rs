//! One writer per log.
//!
//! Two engines appending to one log would each believe their own sequence numbers, and
//! consoles would see the same number twice. So a log has exactly one writer, fenced:
//!
//! - **SQLite**: an exclusive lock (`flock`) on `<log>.lock`, taken before the database is
//!   opened and held for the life of the process; the file names its holder (pid, host,
//!   start time), so a second server fails at start with a message that says who has it.
//! - **PostgreSQL**: a session advisory lock held by the one connection every append goes
//!   through. If that connection breaks, PostgreSQL releases the lock with it, and the
//!   writer must take the lock again on a new connection before it appends anything — a
//!   writer that lost its lock to another server can never append (it is *fenced*).
//!
//! Both backends also check, inside every append's transaction, that the log ends where the
//! writer thinks it does (the expected next sequence), so even a writer that somehow kept
//! going could not interleave its events with another's.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};

use super::StoreError;

/// The two keys of the PostgreSQL advisory lock that marks the writer of a log
/// (`pg_try_advisory_lock(int4, int4)`; "REGU", 1).
pub(super) const PG_LOCK_KEYS: (i32, i32) = (0x5245_4755, 1);

/// Who this process is, as written in lock files and PostgreSQL's `application_name`.
pub(super) fn writer_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_or_else(|_| "unknown-host".into(), |h| h.trim().to_owned());
    format!("regula pid={} host={host}", std::process::id())
}

/// The exclusive lock on a SQLite log, released when the process ends.
#[derive(Debug)]
pub struct FileLock {
    /// Held open: closing it would release the lock.
    _file: File,
    path: PathBuf,
}

impl FileLock {
    /// The lock file of the log at `database`.
    pub fn path_for(database: &Path) -> PathBuf {
        let mut name = database.as_os_str().to_owned();
        name.push(".lock");
        PathBuf::from(name)
    }

    /// Takes the lock of the log at `database`, or says who holds it.
    pub fn acquire(database: &Path) -> Result<Self, StoreError> {
        let path = Self::path_for(database);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| StoreError::Lock {
                log: database.display().to_string(),
                reason: format!("cannot open its lock file {}: {e}", path.display()),
            })?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path)
                    .ok()
                    .map(|text| text.trim().to_owned())
                    .filter(|text| !text.is_empty())
                    .unwrap_or_else(|| "a process that has not written its name yet".into());
                return Err(StoreError::InUse {
                    log: database.display().to_string(),
                    holder,
                });
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(StoreError::Lock {
                    log: database.display().to_string(),
                    reason: format!("cannot lock {}: {e}", path.display()),
                });
            }
        }
        let stamp = format!("{}\n", writer_identity());
        file.set_len(0)
            .and_then(|()| file.write_all(stamp.as_bytes()))
            .and_then(|()| file.sync_all())
            .map_err(|e| StoreError::Lock {
                log: database.display().to_string(),
                reason: format!("cannot write its lock file {}: {e}", path.display()),
            })?;
        Ok(Self { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Opens the writer connection to a PostgreSQL log and takes the log's advisory lock on
/// it; refuses with the holder's name when another session has it.
pub(super) async fn lock_postgres(options: &PgConnectOptions) -> Result<PgConnection, StoreError> {
    let mut connection = options.connect().await.map_err(|source| StoreError::Open {
        location: "postgres".into(),
        source,
    })?;
    let (class, object) = PG_LOCK_KEYS;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, $2)")
        .bind(class)
        .bind(object)
        .fetch_one(&mut connection)
        .await?;
    if locked {
        return Ok(connection);
    }
    let holder: Option<(i32, String, String)> = sqlx::query_as(
        "SELECT a.pid, COALESCE(a.application_name, ''), COALESCE(host(a.client_addr), 'local socket') \
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'advisory' AND l.granted \
           AND l.classid::bigint = $1 AND l.objid::bigint = $2 AND l.objsubid = 2 \
         LIMIT 1",
    )
    .bind(i64::from(class))
    .bind(i64::from(object))
    .fetch_optional(&mut connection)
    .await?;
    let _ = connection.close().await;
    let holder = holder.map_or_else(
        || "another session (it released the lock just now; retry)".into(),
        |(pid, application, client)| {
            format!("`{application}` (PostgreSQL backend pid {pid}, from {client})")
        },
    );
    Err(StoreError::InUse {
        log: "postgres".into(),
        holder,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_log_names_the_holder_and_the_first_keeps_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("regula.db");
        let first = FileLock::acquire(&database).unwrap();
        let error = FileLock::acquire(&database).unwrap_err().to_string();
        assert!(error.contains("in use"), "{error}");
        assert!(
            error.contains(&format!("pid={}", std::process::id())),
            "{error}"
        );
        drop(first);
        // Released with its holder: the next writer takes it.
        FileLock::acquire(&database).unwrap();
        let mode = std::fs::metadata(FileLock::path_for(&database))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
