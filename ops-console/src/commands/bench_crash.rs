//! `regula bench crash`: kill the real server with SIGKILL under load, again and again, and
//! prove that every acknowledged command survived exactly once.
//!
//! The benchmark starts `regula serve` (this very binary) on a fresh event log, lets
//! several clients send commands over HTTP (unit registrations, GPS fixes,
//! new incidents, each with its own idempotency key), kills the server with `SIGKILL` at a
//! random moment, restarts it, and lets the clients retry whatever got no reply — with the
//! same key — before going on. After the last kill it reads the log back and checks each
//! command:
//! - **lost**: a command that got a success reply but whose effect is not in the log;
//! - **duplicated**: a command whose effect is in the log more than once;
//! - and that the log replays into a consistent state.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use dispatch_core::{Dispatch, Event, Policy};
use maps::Clock;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{Value, json};

use crate::clock::{Stopwatch, SystemClock};
use crate::engine::journal;
use crate::store::{EventStore, StoreLocation};

/// `regula bench crash`
#[derive(Debug, Args)]
pub struct BenchCrashArgs {
    /// How many times the server is killed with SIGKILL.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub kills: u32,
    /// Concurrent clients sending commands.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub clients: usize,
    /// A PostgreSQL server to run on (`postgres://…`); a fresh database is created in it
    /// and dropped afterwards. Without it, a temporary SQLite file.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// Seed for the kill timing and the command mix.
    #[arg(long, default_value_t = 793)]
    pub seed: u64,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Figures {
    backend: &'static str,
    kills: u32,
    clients: usize,
    sent: u64,
    acknowledged: u64,
    /// Commands resent (same key) after the server died before replying.
    retried: u64,
    lost: u64,
    duplicated: u64,
    refused: u64,
    events: u64,
    consistent: bool,
    /// The newest snapshot the servers saved (its last event), if any; restoring it and
    /// replaying what follows must give the state of the whole log (`consistent`).
    snapshot_seq: Option<u64>,
    seconds: f64,
}

pub(crate) fn run(args: &BenchCrashArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.kills >= 1, "--kills must be at least 1");
    anyhow::ensure!(
        (1..=64).contains(&args.clients),
        "--clients must be between 1 and 64"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let watch = Stopwatch::start();
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let (url, location, cleanup) = match &args.database_url {
        None => {
            let path = dir.path().join("crash.db");
            (
                path.display().to_string(),
                StoreLocation::Sqlite(path),
                None,
            )
        }
        Some(url) => {
            let (fresh, name) = runtime.block_on(fresh_postgres_database(url, args.seed))?;
            let location = StoreLocation::parse(&fresh)?;
            (fresh, location, Some((url.clone(), name)))
        }
    };
    let outcome = crash_loop(args, &url, dir.path());
    let result =
        outcome.and_then(|ledger| runtime.block_on(verify(args, &location, &ledger, watch)));
    if let Some((admin_url, name)) = cleanup {
        runtime.block_on(drop_postgres_database(&admin_url, &name));
    }
    let figures = result?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&figures)?)?;
    } else {
        writeln!(
            out,
            "{} kills on {}: {} commands acknowledged ({} retried after a kill), {} lost, {} duplicated, {} refused; {} events, log consistent: {} ({:.1} s)",
            figures.kills,
            figures.backend,
            figures.acknowledged,
            figures.retried,
            figures.lost,
            figures.duplicated,
            figures.refused,
            figures.events,
            figures.consistent,
            figures.seconds
        )?;
    }
    Ok(
        if figures.lost == 0
            && figures.duplicated == 0
            && figures.refused == 0
            && figures.consistent
        {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        },
    )
}

/// One client operation: its key, its command, and the signature of the event it must
/// leave in the log.
#[derive(Debug, Clone)]
struct Operation {
    key: String,
    command: Value,
    signature: String,
}

/// What the clients learnt.
#[derive(Debug, Default)]
struct Ledger {
    /// Every operation sent, by key.
    sent: HashMap<String, String>,
    /// Keys that got a success reply, with the sequence range replied.
    acknowledged: HashMap<String, (u64, u64)>,
    retried: u64,
    refused: Vec<String>,
}

/// The server's address while it is up; the generation counts restarts.
#[derive(Debug, Default)]
struct Door {
    addr: Mutex<Option<SocketAddr>>,
    generation: AtomicU64,
}

fn crash_loop(args: &BenchCrashArgs, url: &str, dir: &std::path::Path) -> anyhow::Result<Ledger> {
    let binary = std::env::current_exe().context("cannot find the regula binary")?;
    let door = Arc::new(Door::default());
    let stop = Arc::new(AtomicBool::new(false));
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut rng = StdRng::seed_from_u64(args.seed);
    let log_path = dir.join("server.log");
    // Frequent snapshots, so that restarts restore them under the kill storm too.
    let config = dir.join("crash.toml");
    std::fs::write(&config, "[store]\nsnapshot_every_events = 200\n")
        .context("cannot write the server's configuration")?;
    let start_server = |binary: &std::path::Path, url: &str, log: &std::path::Path| {
        start_server(binary, url, &config, log)
    };

    let mut server = start_server(&binary, url, &log_path)?;
    publish(&door, Some(server.1));
    let clients: Vec<_> = (0..args.clients)
        .map(|i| {
            let door = door.clone();
            let stop = stop.clone();
            let ledger = ledger.clone();
            let seed = args.seed.wrapping_add(i as u64 + 1);
            std::thread::spawn(move || client(i, seed, &door, &stop, &ledger))
        })
        .collect();

    for _ in 0..args.kills {
        std::thread::sleep(Duration::from_millis(rng.random_range(150..600)));
        publish(&door, None);
        server.0.kill().context("cannot kill the server")?;
        let _ = server.0.wait();
        server = start_server(&binary, url, &log_path)?;
        publish(&door, Some(server.1));
    }
    // Let the clients retry what the last kill interrupted and send a little more.
    std::thread::sleep(Duration::from_millis(400));
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client
            .join()
            .map_err(|_| anyhow::anyhow!("a client thread panicked"))??;
    }
    server.0.kill().context("cannot stop the server")?;
    let _ = server.0.wait();
    let ledger = std::mem::take(&mut *ledger.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    Ok(ledger)
}

fn publish(door: &Door, addr: Option<SocketAddr>) {
    if let Ok(mut slot) = door.addr.lock() {
        *slot = addr;
    }
    if addr.is_some() {
        door.generation.fetch_add(1, Ordering::SeqCst);
    }
}

fn start_server(
    binary: &std::path::Path,
    url: &str,
    config: &std::path::Path,
    log: &std::path::Path,
) -> anyhow::Result<(Child, SocketAddr)> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .context("cannot open the server log")?;
    let mut child = std::process::Command::new(binary)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            url,
            "--config",
        ])
        .arg(config)
        .env("REGULA_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .context("cannot start regula serve")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = BufReader::new(stdout);
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line)? == 0 {
            let status = child.wait()?;
            anyhow::bail!("regula serve exited before listening ({status}); see its log");
        }
        if let Some(pos) = line.find("http://") {
            let addr = line[pos + 7..].trim().parse().context("bad address line")?;
            return Ok((child, addr));
        }
    }
}

/// One client's stream of operations: its unit's registration first, then GPS fixes (50 %),
/// more unit registrations (30 %) and new incidents (20 %), each with a unique key and signature.
struct Workload {
    index: usize,
    number: u64,
    unit: String,
    last_fix_ms: i64,
}

impl Workload {
    fn new(index: usize) -> Self {
        Self {
            index,
            number: 0,
            unit: format!("CRASH-{index:02}"),
            last_fix_ms: 0,
        }
    }

    fn next(&mut self, rng: &mut StdRng) -> Operation {
        self.number += 1;
        let (index, number, unit) = (self.index, self.number, &self.unit);
        let key = format!("crash-{index}-{number}");
        if number == 1 {
            return Operation {
                command: json!({"command": "register_unit", "registration": {
                    "id": unit, "kind": "TAB",
                    "provider": {"name": "Ambulancias de prueba", "ownership": "private"},
                    "base": {"lon": -74.07, "lat": 4.65}, "crew": []}}),
                signature: format!("unit:{unit}"),
                key,
            };
        }
        match rng.random_range(0..10) {
            0..5 => {
                let now = SystemClock.now().as_millis().max(self.last_fix_ms + 1);
                self.last_fix_ms = now;
                let at = maps::Timestamp::from_millis(now).unwrap_or(maps::Timestamp::UNIX_EPOCH);
                Operation {
                    command: json!({"command": "report_position", "unit": unit, "fix": {
                        "point": {"lon": -74.07 + rng.random_range(-0.02..0.02), "lat": 4.65 + rng.random_range(-0.02..0.02)},
                        "at": at.to_rfc3339(), "speed": null}}),
                    signature: format!("fix:{unit}:{now}"),
                    key,
                }
            }
            5..8 => {
                // Call events are the telephony doors' own (403 on the API): the third
                // kind of operation registers another unit.
                let extra = format!("CRASH-{index:02}-{number}");
                Operation {
                    command: json!({"command": "register_unit", "registration": {
                        "id": extra, "kind": "TAM",
                        "provider": {"name": "Ambulancias de prueba", "ownership": "private"},
                        "base": {"lon": -74.08, "lat": 4.66}, "crew": []}}),
                    signature: format!("unit:{extra}"),
                    key,
                }
            }
            _ => {
                let summary = format!("Incidente de prueba {index}-{number}");
                Operation {
                    command: json!({"command": "open_incident", "call": null, "operator": "bench.crash",
                        "summary": summary, "location": null}),
                    signature: format!("incident:{summary}"),
                    key,
                }
            }
        }
    }
}

/// A client: sends its operations in order; an operation without a reply is retried with
/// the same key once the server is back.
fn client(
    index: usize,
    seed: u64,
    door: &Door,
    stop: &AtomicBool,
    ledger: &Mutex<Ledger>,
) -> anyhow::Result<()> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut workload = Workload::new(index);
    let mut pending: Option<Operation> = None;
    loop {
        let operation = match pending.take() {
            Some(op) => op,
            None if stop.load(Ordering::SeqCst) => return Ok(()),
            None => {
                let op = workload.next(&mut rng);
                lock(ledger)?
                    .sent
                    .insert(op.key.clone(), op.signature.clone());
                op
            }
        };
        let generation = door.generation.load(Ordering::SeqCst);
        let addr = door.addr.lock().ok().and_then(|a| *a);
        let reply = addr.map(|addr| {
            post_command(
                addr,
                &json!({"key": operation.key, "command": operation.command}),
            )
        });
        match reply {
            Some(Ok((200, body))) => {
                let first = body["first_seq"].as_u64().unwrap_or(0);
                let last = body["last_seq"].as_u64().unwrap_or(0);
                lock(ledger)?
                    .acknowledged
                    .insert(operation.key.clone(), (first, last));
            }
            Some(Ok((503, _))) => {
                std::thread::sleep(Duration::from_millis(20));
                pending = Some(operation);
            }
            Some(Ok((status, body))) => {
                lock(ledger)?
                    .refused
                    .push(format!("{}: {status} {body}", operation.key));
            }
            // No server, or it died mid-request: wait for the next one, then retry.
            None | Some(Err(_)) => {
                while door.generation.load(Ordering::SeqCst) == generation
                    && door.addr.lock().ok().and_then(|a| *a).is_some()
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
                while door.addr.lock().ok().and_then(|a| *a).is_none() {
                    std::thread::sleep(Duration::from_millis(5));
                }
                lock(ledger)?.retried += 1;
                pending = Some(operation);
            }
        }
    }
}

fn lock(ledger: &Mutex<Ledger>) -> anyhow::Result<std::sync::MutexGuard<'_, Ledger>> {
    ledger
        .lock()
        .map_err(|_| anyhow::anyhow!("ledger lock poisoned"))
}

/// `POST /api/v1/commands` over a fresh connection: (status, JSON body).
fn post_command(addr: SocketAddr, body: &Value) -> std::io::Result<(u16, Value)> {
    let body = body.to_string();
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "POST /api/v1/commands HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let raw = String::from_utf8_lossy(&raw);
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "no reply"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "no status"))?;
    let value = serde_json::from_str(body)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    Ok((status, value))
}

/// The signature of the client operation an event records, if any.
fn signature(event: &Event) -> Option<String> {
    match event {
        Event::UnitRegistered { registration } => Some(format!("unit:{}", registration.id)),
        Event::PositionRecorded { unit, fix } => Some(format!("fix:{unit}:{}", fix.at.as_millis())),
        Event::IncidentOpened { summary, .. } => Some(format!("incident:{summary}")),
        _ => None,
    }
}

async fn verify(
    args: &BenchCrashArgs,
    location: &StoreLocation,
    ledger: &Ledger,
    watch: Stopwatch,
) -> anyhow::Result<Figures> {
    let store = EventStore::inspect(location).await?;
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut state = Dispatch::new(Policy::default());
    let mut replay_error = None;
    let events = store
        .replay(|stored| {
            let event =
                journal::decode(&stored).map_err(|reason| crate::store::StoreError::Corrupt {
                    seq: stored.seq,
                    reason,
                })?;
            if let Some(signature) = signature(&event) {
                *seen.entry(signature).or_default() += 1;
            }
            if replay_error.is_none()
                && let Err(e) = state.apply(stored.recorded_at, &event)
            {
                replay_error = Some(e.to_string());
            }
            Ok::<(), crate::store::StoreError>(())
        })
        .await?;
    let snapshot = store.latest_snapshot().await?;
    let snapshot_matches = match &snapshot {
        None => true,
        Some(snapshot) => {
            let mut restored: Dispatch = serde_json::from_str(&snapshot.state)
                .context("the servers' latest snapshot does not decode")?;
            restored.set_policy(state.policy().clone());
            let mut error = None;
            store
                .replay_after(snapshot.last_seq, |stored| {
                    let event = journal::decode(&stored).map_err(|reason| {
                        crate::store::StoreError::Corrupt {
                            seq: stored.seq,
                            reason,
                        }
                    })?;
                    if error.is_none()
                        && let Err(e) = restored.apply(stored.recorded_at, &event)
                    {
                        error = Some(e);
                    }
                    Ok::<(), crate::store::StoreError>(())
                })
                .await?;
            error.is_none() && restored == state
        }
    };
    let mut lost = 0;
    for (key, range) in &ledger.acknowledged {
        let signature = &ledger.sent[key];
        let stored_range = store.stored_command(key).await?.map(|c| c.range());
        if seen.get(signature).copied().unwrap_or(0) == 0 || stored_range != Some(*range) {
            lost += 1;
        }
    }
    let duplicated = ledger
        .sent
        .values()
        .filter(|s| seen.get(*s).copied().unwrap_or(0) > 1)
        .count() as u64;
    store.close().await;
    for refusal in ledger.refused.iter().take(5) {
        tracing::error!(%refusal, "a command was refused during the crash test");
    }
    Ok(Figures {
        backend: match location {
            StoreLocation::Sqlite(_) => "sqlite",
            StoreLocation::Postgres(_) => "postgres",
        },
        kills: args.kills,
        clients: args.clients,
        sent: ledger.sent.len() as u64,
        acknowledged: ledger.acknowledged.len() as u64,
        retried: ledger.retried,
        lost,
        duplicated,
        refused: ledger.refused.len() as u64,
        events,
        consistent: replay_error.is_none()
            && state.check_invariants().is_empty()
            && snapshot_matches,
        snapshot_seq: snapshot.map(|s| s.last_seq),
        seconds: watch.elapsed().as_secs_f64(),
    })
}

/// Creates `regula_crash_<n>` on the server of `url` and returns its URL and name.
async fn fresh_postgres_database(url: &str, seed: u64) -> anyhow::Result<(String, String)> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .context("cannot connect to the PostgreSQL server given by --database-url")?;
    let name = format!("regula_crash_{}_{}", std::process::id(), seed);
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name}"
    )))
    .execute(&mut conn)
    .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .context("cannot create a database for the crash test (the user needs CREATEDB)")?;
    conn.close().await?;
    Ok((with_database(url, &name)?, name))
}

async fn drop_postgres_database(url: &str, name: &str) {
    use sqlx::Connection;
    if let Ok(mut conn) = sqlx::PgConnection::connect(url).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await;
        let _ = conn.close().await;
    }
}

/// `url` with its database name replaced.
fn with_database(url: &str, name: &str) -> anyhow::Result<String> {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").context("not a URL")? + 3;
    let authority_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{name}", &base[..authority_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use dispatch_core::fleet::GpsFix;
    use dispatch_core::ids::UnitId;

    use super::*;
    use crate::store::Append;

    fn fix_event(unit: &str, at_ms: i64) -> Event {
        Event::PositionRecorded {
            unit: UnitId::new(unit).unwrap(),
            fix: GpsFix {
                point: maps::GeoPoint::new(-74.07, 4.65).unwrap(),
                at: maps::Timestamp::from_millis(at_ms).unwrap(),
                speed: None,
            },
        }
    }

    #[tokio::test]
    async fn the_verification_counts_lost_and_duplicated_commands() {
        let dir = tempfile::tempdir().unwrap();
        let location = StoreLocation::Sqlite(dir.path().join("v.db"));
        let store = EventStore::open(&location).await.unwrap();
        // The log holds op-1 once and op-2 twice (under two keys); op-3 is missing.
        for (seq, key, at) in [
            (1, "op-1", 1_000),
            (2, "op-2", 2_000),
            (3, "op-2-again", 2_000),
        ] {
            store
                .append(&Append {
                    command_key: key,
                    first_seq: seq,
                    recorded_at: maps::Timestamp::from_millis(at).unwrap(),
                    events: &journal::encode(&[fix_event("CRASH-00", at)]).unwrap(),
                    outbox: &[],
                    command: "test",
                    fingerprint: "",
                })
                .await
                .unwrap();
        }
        store.close().await;
        drop(store);
        let mut ledger = Ledger::default();
        for (key, at) in [("op-1", 1_000), ("op-2", 2_000), ("op-3", 3_000)] {
            ledger.sent.insert(key.into(), format!("fix:CRASH-00:{at}"));
        }
        ledger.acknowledged.insert("op-1".into(), (1, 1));
        ledger.acknowledged.insert("op-3".into(), (4, 4));
        let args = BenchCrashArgs {
            kills: 1,
            clients: 1,
            database_url: None,
            seed: 1,
            json: true,
        };
        let figures = verify(&args, &location, &ledger, Stopwatch::start())
            .await
            .unwrap();
        assert_eq!(
            figures.lost, 1,
            "op-3 was acknowledged but is not in the log"
        );
        assert_eq!(figures.duplicated, 1, "op-2 is in the log twice");
        assert_eq!(figures.events, 3);
        // The positions belong to a unit never registered: the log does not replay cleanly.
        assert!(!figures.consistent);
    }

    #[test]
    fn the_database_name_is_replaced_in_a_postgres_url() {
        assert_eq!(
            with_database("postgres://u:p@localhost:5432/regula", "x").unwrap(),
            "postgres://u:p@localhost:5432/x"
        );
        assert_eq!(
            with_database("postgres://localhost?host=/tmp&port=5433", "x").unwrap(),
            "postgres://localhost/x?host=/tmp&port=5433"
        );
        assert!(with_database("nonsense", "x").is_err());
    }
}
