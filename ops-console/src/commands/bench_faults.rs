//! `regula bench faults`: the real failures the event log must survive, against the real
//! binary, each checked for what matters — nothing acknowledged is lost, nothing refused is
//! stored, no sequence number is used twice.
//!
//! Scenarios (each on a fresh log):
//! - `disk_full`: the log on a small tmpfs that fills up while commands arrive, then frees.
//! - `wal_immutable`: the log (on an ext4 image on a loop device) has its write-ahead file
//!   made immutable (`chattr +i`) while running, then writable again.
//! - `second_writer`: a second `regula serve` on the same log must be refused at start with
//!   the first's pid named, and the first must go on.
//! - `sip_udp_flood`, `sip_tcp_flood`, `http_flood`: floods at the doors while a real
//!   carrier calls (see `floods`): `real_calls_offered`, `real_calls_queued`,
//!   `flood_refused`, `rss_before_kib`, `rss_after_kib`.
//!
//! For the storage scenarios a client sends unit registrations, each with its own key,
//! before, during and after the fault, and records every reply. Then the server is stopped
//! (SIGTERM), the log is read back and the server restarted on it:
//! - `acknowledged`: commands that got 200;
//! - `refused`: commands that got 503 (the store was failing);
//! - `lost`: acknowledged, but not in the log at the sequence numbers the reply gave (or not
//!   recognised as a duplicate after the restart);
//! - `stored_unacknowledged`: refused, yet in the log (or recognised after the restart);
//! - `duplicated`: a key whose events are in the log more than once;
//! - `reused_sequences`: a sequence number given to two acknowledged commands;
//! - `recovered`: after the fault ended the server acknowledged commands again.
//!
//! Mounting a tmpfs and `chattr` need root (CI runs as root); a scenario that cannot set up
//! its fault reports the reason and the benchmark exits 1 — it never passes silently. Exit
//! 1 also when anything acknowledged was lost, stored twice or numbered twice.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitCode, Stdio};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use serde_json::{Value, json};

use crate::store::{EventStore, StoreLocation};

/// `regula bench faults`
#[derive(Debug, Args)]
pub struct BenchFaultsArgs {
    /// Escenario / Scenario to run (repeatable): `disk_full`, `wal_immutable`,
    /// `second_writer`, `sip_udp_flood`, `sip_tcp_flood`, `http_flood`. Default: all.
    #[arg(long = "scenario", value_name = "NAME")]
    pub scenarios: Vec<String>,
    /// Commands sent while the fault lasts.
    #[arg(long, default_value_t = 300, value_name = "N")]
    pub commands: u32,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

mod floods;

const SCENARIOS: [&str; 6] = [
    "disk_full",
    "wal_immutable",
    "second_writer",
    "sip_udp_flood",
    "sip_tcp_flood",
    "http_flood",
];

/// What one scenario measured.
#[derive(Debug, Default, Serialize)]
struct Figures {
    scenario: &'static str,
    sent: u64,
    acknowledged: u64,
    refused: u64,
    lost: u64,
    stored_unacknowledged: u64,
    duplicated: u64,
    reused_sequences: u64,
    /// After the fault ended, the server acknowledged commands again.
    #[serde(skip_serializing_if = "Option::is_none")]
    recovered: Option<bool>,
    /// `regula serve`'s exit status at the SIGTERM after the fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_code: Option<i32>,
    /// Storage faults: a carrier's SIP call during the fault got 503 (re-routed, not lost).
    #[serde(skip_serializing_if = "Option::is_none")]
    sip_refused_while_failing: Option<bool>,
    /// Storage faults: a carrier's SIP call after the fault rang and was queued.
    #[serde(skip_serializing_if = "Option::is_none")]
    sip_queued_after: Option<bool>,
    /// `second_writer`: the second server was refused at start.
    #[serde(skip_serializing_if = "Option::is_none")]
    second_writer_refused: Option<bool>,
    /// `second_writer`: its message named the first server's pid.
    #[serde(skip_serializing_if = "Option::is_none")]
    holder_named: Option<bool>,
    /// `second_writer`: the first server still acknowledged commands afterwards.
    #[serde(skip_serializing_if = "Option::is_none")]
    first_keeps_working: Option<bool>,
    /// Floods: the real carrier's calls sent during and after the flood …
    #[serde(skip_serializing_if = "Option::is_none")]
    real_calls_offered: Option<u64>,
    /// … and how many of them reached the queue.
    #[serde(skip_serializing_if = "Option::is_none")]
    real_calls_queued: Option<u64>,
    /// Floods: the flood's requests or connections the door refused or closed.
    #[serde(skip_serializing_if = "Option::is_none")]
    flood_refused: Option<u64>,
    /// `sip_udp_flood`: spoofed calls that reached the regulation centre (must be 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    flood_calls_recorded: Option<u64>,
    /// Floods: the server's resident memory before the flood, KiB …
    #[serde(skip_serializing_if = "Option::is_none")]
    rss_before_kib: Option<u64>,
    /// … and after it.
    #[serde(skip_serializing_if = "Option::is_none")]
    rss_after_kib: Option<u64>,
    /// `http_flood`: an operator's command was acknowledged during the flood.
    #[serde(skip_serializing_if = "Option::is_none")]
    operator_command_ok: Option<bool>,
    /// Why the scenario could not run, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    seconds: f64,
}

impl Figures {
    fn passed(&self) -> bool {
        self.error.is_none()
            && self.lost == 0
            && self.stored_unacknowledged == 0
            && self.duplicated == 0
            && self.reused_sequences == 0
            && self.recovered != Some(false)
            && self.sip_refused_while_failing != Some(false)
            && self.sip_queued_after != Some(false)
            && self.second_writer_refused != Some(false)
            && self.holder_named != Some(false)
            && self.first_keeps_working != Some(false)
            && self.operator_command_ok != Some(false)
            && self.real_calls_queued == self.real_calls_offered
            && self.flood_calls_recorded.unwrap_or(0) == 0
    }
}

pub(crate) fn run(args: &BenchFaultsArgs) -> anyhow::Result<ExitCode> {
    let chosen: Vec<&'static str> = if args.scenarios.is_empty() {
        SCENARIOS.to_vec()
    } else {
        args.scenarios
            .iter()
            .map(|name| {
                SCENARIOS
                    .iter()
                    .find(|s| **s == name.as_str())
                    .copied()
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "unknown scenario `{name}`; choose from {}",
                            SCENARIOS.join(", ")
                        )
                    })
            })
            .collect::<anyhow::Result<_>>()?
    };
    anyhow::ensure!(
        (10..=100_000).contains(&args.commands),
        "--commands must be between 10 and 100000"
    );
    let binary = std::env::current_exe().context("cannot find this program's path")?;
    let mut results = Vec::new();
    for scenario in chosen {
        let watch = crate::clock::Stopwatch::start();
        let mut figures = match scenario {
            "disk_full" => storage_scenario(&binary, Fault::DiskFull, args.commands),
            "wal_immutable" => storage_scenario(&binary, Fault::WalImmutable, args.commands),
            "second_writer" => second_writer(&binary),
            "sip_udp_flood" => floods::sip_udp_flood(&binary),
            "sip_tcp_flood" => floods::sip_tcp_flood(&binary),
            _ => floods::http_flood(&binary),
        }
        .unwrap_or_else(|e| Figures {
            scenario,
            error: Some(format!("{e:#}")),
            ..Figures::default()
        });
        figures.scenario = scenario;
        figures.seconds = watch.elapsed().as_secs_f64();
        results.push(figures);
    }
    let passed = results.iter().all(Figures::passed);
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", json!({"scenarios": results, "passed": passed}))?;
    } else {
        for f in &results {
            match &f.error {
                Some(e) => writeln!(out, "{}: could not run: {e}", f.scenario)?,
                None if f.real_calls_offered.is_some() => writeln!(
                    out,
                    "{}: {} of {} real calls queued; {} flood requests refused or closed; RSS {} → {} KiB ({:.1} s)",
                    f.scenario,
                    f.real_calls_queued.unwrap_or(0),
                    f.real_calls_offered.unwrap_or(0),
                    f.flood_refused.unwrap_or(0),
                    f.rss_before_kib.unwrap_or(0),
                    f.rss_after_kib.unwrap_or(0),
                    f.seconds
                )?,
                None => writeln!(
                    out,
                    "{}: {} sent, {} acknowledged, {} refused; {} lost, {} stored unacknowledged, {} duplicated, {} sequence numbers reused ({:.1} s)",
                    f.scenario,
                    f.sent,
                    f.acknowledged,
                    f.refused,
                    f.lost,
                    f.stored_unacknowledged,
                    f.duplicated,
                    f.reused_sequences,
                    f.seconds
                )?,
            }
        }
    }
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    DiskFull,
    WalImmutable,
}

/// A small file system mounted for one scenario, unmounted when dropped: a tmpfs, or an
/// ext4 image on a loop device (tmpfs lets a process that already has a file open write to
/// it after `chattr +i`; ext4 refuses, as a real disk does).
struct Mounted {
    dir: tempfile::TempDir,
    /// The ext4 image, if this is one.
    _image: Option<tempfile::NamedTempFile>,
}

impl Mounted {
    fn tmpfs(size: &str) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
        let output = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output()
            .context("cannot run mount")?;
        anyhow::ensure!(
            output.status.success(),
            "cannot mount a {size} tmpfs (this scenario needs root): {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
        Ok(Self { dir, _image: None })
    }

    fn ext4(megabytes: u64) -> anyhow::Result<Self> {
        let image = tempfile::NamedTempFile::new().context("cannot create the image file")?;
        image
            .as_file()
            .set_len(megabytes << 20)
            .context("cannot size the image file")?;
        let output = std::process::Command::new("mkfs.ext4")
            .args(["-q", "-F"])
            .arg(image.path())
            .output()
            .context("cannot run mkfs.ext4 (Debian package e2fsprogs)")?;
        anyhow::ensure!(
            output.status.success(),
            "mkfs.ext4 failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
        let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
        let output = std::process::Command::new("mount")
            .args(["-o", "loop"])
            .arg(image.path())
            .arg(dir.path())
            .output()
            .context("cannot run mount")?;
        anyhow::ensure!(
            output.status.success(),
            "cannot loop-mount an ext4 image (this scenario needs root and loop devices): {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
        Ok(Self {
            dir,
            _image: Some(image),
        })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// A running `regula serve`.
struct Server {
    child: Child,
    addr: String,
    /// The SIP door, when the configuration opens one.
    sip: Option<std::net::SocketAddr>,
}

impl Server {
    fn start(binary: &Path, database: &Path, log: &Path) -> anyhow::Result<Self> {
        Self::start_with(binary, database, log, None)
    }

    fn start_with(
        binary: &Path,
        database: &Path,
        log: &Path,
        config: Option<&Path>,
    ) -> anyhow::Result<Self> {
        match Self::try_start(binary, database, log, config)? {
            Ok(server) => Ok(server),
            Err((code, _)) => anyhow::bail!(
                "regula serve exited before listening (status {code:?}); see {}",
                log.display()
            ),
        }
    }

    /// Starts a server; `Err((exit code, its log))` when it exits before listening.
    fn try_start(
        binary: &Path,
        database: &Path,
        log: &Path,
        config: Option<&Path>,
    ) -> anyhow::Result<Result<Self, (Option<i32>, String)>> {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .context("cannot open the server log")?;
        let mut command = std::process::Command::new(binary);
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--database-url"])
            .arg(database);
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        let mut child = command
            .env("REGULA_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .context("cannot start regula serve")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout);
        let mut line = String::new();
        let mut sip = None;
        loop {
            line.clear();
            if lines.read_line(&mut line)? == 0 {
                let status = child.wait()?;
                let text = std::fs::read_to_string(log).unwrap_or_default();
                return Ok(Err((status.code(), text)));
            }
            if line.starts_with("SIP")
                && let Some(addr) = line.split_whitespace().last()
            {
                sip = addr.parse().ok();
            }
            if let Some(pos) = line.find("http://") {
                let addr = line[pos + 7..].trim().to_owned();
                return Ok(Ok(Self { child, addr, sip }));
            }
        }
    }

    /// SIGTERM, then the exit code (killed after 60 s).
    fn stop(mut self) -> anyhow::Result<Option<i32>> {
        let pid = self.child.id().to_string();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .context("cannot run kill")?;
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status.code());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        anyhow::bail!("regula serve did not stop within 60 s of SIGTERM")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP client for a scenario.
struct Client {
    http: reqwest::blocking::Client,
}

impl Client {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_mins(1))
                .build()
                .context("cannot build the HTTP client")?,
        })
    }

    fn command(&self, server: &Server, key: &str, command: &Value) -> anyhow::Result<Reply> {
        let response = self
            .http
            .post(format!("http://{}/api/v1/commands", server.addr))
            .json(&json!({"key": key, "command": command}))
            .send()
            .context("the command got no reply")?;
        let status = response.status().as_u16();
        let body: Value = response.json().unwrap_or(Value::Null);
        Ok(Reply {
            status,
            range: (
                body["first_seq"].as_u64().unwrap_or(0),
                body["last_seq"].as_u64().unwrap_or(0),
            ),
            duplicate: body["duplicate"] == true,
        })
    }
}

struct Reply {
    status: u16,
    range: (u64, u64),
    duplicate: bool,
}

fn registration(number: u64) -> Value {
    json!({"command": "register_unit", "registration": {
        "id": format!("FAULT-{number:06}"), "kind": "TAB",
        "provider": {"name": "Ambulancias de prueba de fallas", "ownership": "private"},
        "base": {"lon": -74.07, "lat": 4.65}, "crew": []}})
}

/// The client's record of what the server answered.
#[derive(Default)]
struct Ledger {
    /// Key → (command number, acknowledged range).
    acknowledged: BTreeMap<String, (u64, (u64, u64))>,
    /// Key → command number, refused with 503.
    refused: BTreeMap<String, u64>,
    other: u64,
    sent: u64,
}

impl Ledger {
    fn send(&mut self, client: &Client, server: &Server, number: u64) -> anyhow::Result<u16> {
        let key = format!("fault-{number}");
        let reply = client.command(server, &key, &registration(number))?;
        self.sent += 1;
        match reply.status {
            200 => {
                self.acknowledged.insert(key, (number, reply.range));
            }
            503 => {
                self.refused.insert(key, number);
            }
            _ => self.other += 1,
        }
        Ok(reply.status)
    }
}

fn storage_scenario(binary: &Path, fault: Fault, commands: u32) -> anyhow::Result<Figures> {
    let tmpfs = match fault {
        Fault::DiskFull => Mounted::tmpfs("12m")?,
        Fault::WalImmutable => Mounted::ext4(64)?,
    };
    let database = tmpfs.path().join("regula.db");
    let log_dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let log = log_dir.path().join("server.log");
    let client = Client::new()?;
    let mut ledger = Ledger::default();
    let mut number = 0u64;
    let config = floods::config(log_dir.path(), "")?;
    let server = Server::start_with(binary, &database, &log, Some(&config))?;
    let sip = server.sip.context("the server did not open its SIP door")?;
    let mut carrier = floods::Carrier::new()?;
    for _ in 0..20 {
        number += 1;
        let status = ledger.send(&client, &server, number)?;
        anyhow::ensure!(status == 200, "a healthy server answered {status}");
    }
    // The fault.
    let filler = tmpfs.path().join("filler");
    let wal = PathBuf::from(format!("{}-wal", database.display()));
    match fault {
        Fault::DiskFull => fill(&filler)?,
        Fault::WalImmutable => chattr(&wal, "+i")?,
    }
    let mut refused_during = 0;
    for _ in 0..commands {
        number += 1;
        if ledger.send(&client, &server, number)? == 503 {
            refused_during += 1;
        }
    }
    // While the log fails, a carrier's call gets 503 (it re-routes it) instead of ringing
    // into a queue nobody records.
    let sip_while_failing = carrier.call_udp_answer(sip, "failing")?;
    carrier.forget_calls();
    // The fault ends.
    match fault {
        Fault::DiskFull => std::fs::remove_file(&filler).context("cannot remove the filler")?,
        Fault::WalImmutable => chattr(&wal, "-i")?,
    }
    let mut recovered = false;
    for _ in 0..20 {
        number += 1;
        if ledger.send(&client, &server, number)? == 200 {
            recovered = true;
        }
    }
    let sip_after = carrier.call_udp_answer(sip, "after")?;
    let sip_queued_after = sip_after == Some(180) && carrier.queued(&client, &server) == 1;
    anyhow::ensure!(
        refused_during > 0,
        "the fault never made the server refuse a command ({commands} acknowledged while it lasted)"
    );
    let exit_code = server.stop()?;
    let mut figures = verify(&database, &ledger)?;
    // After a restart on the same log: an acknowledged key is a duplicate with its
    // original events; a refused key was never applied, so it is applied now.
    let server = Server::start_with(binary, &database, &log, Some(&config))?;
    if let Some((key, (number, range))) = ledger.acknowledged.iter().last() {
        let reply = client.command(&server, key, &registration(*number))?;
        if !(reply.status == 200 && reply.duplicate && reply.range == *range) {
            figures.lost += 1;
        }
    }
    if let Some((key, number)) = ledger.refused.iter().next() {
        let reply = client.command(&server, key, &registration(*number))?;
        if reply.status != 200 || reply.duplicate {
            figures.stored_unacknowledged += 1;
        }
        // Numbered after everything acknowledged before.
        let highest = ledger
            .acknowledged
            .values()
            .map(|(_, (_, last))| *last)
            .max()
            .unwrap_or(0);
        if reply.range.0 <= highest {
            figures.reused_sequences += 1;
        }
    }
    let _ = server.stop()?;
    figures.recovered = Some(recovered);
    figures.sip_refused_while_failing = Some(sip_while_failing == Some(503));
    figures.sip_queued_after = Some(sip_queued_after);
    figures.exit_code = exit_code;
    Ok(figures)
}

/// Fills the file system holding `filler` until it is full.
fn fill(filler: &Path) -> anyhow::Result<()> {
    let mut file = std::fs::File::create(filler).context("cannot create the filler")?;
    let block = vec![0u8; 64 * 1024];
    loop {
        match file.write_all(&block) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
            Err(e) => return Err(e).context("cannot write the filler"),
        }
    }
    // Whatever fits in the last partial block.
    for size in [4096, 512, 1] {
        while file.write_all(&block[..size]).is_ok() {}
    }
    Ok(())
}

fn chattr(path: &Path, flag: &str) -> anyhow::Result<()> {
    let output = std::process::Command::new("chattr")
        .arg(flag)
        .arg(path)
        .output()
        .context("cannot run chattr")?;
    anyhow::ensure!(
        output.status.success(),
        "chattr {flag} {} failed (this scenario needs root): {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

/// Reads the log back and checks it against the client's ledger.
fn verify(database: &Path, ledger: &Ledger) -> anyhow::Result<Figures> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let store = EventStore::inspect(&StoreLocation::Sqlite(database.to_path_buf())).await?;
        let mut per_key: HashMap<String, Vec<u64>> = HashMap::new();
        store
            .replay(|event| {
                per_key
                    .entry(event.command_key)
                    .or_default()
                    .push(event.seq);
                Ok::<(), crate::store::StoreError>(())
            })
            .await?;
        let mut figures = Figures {
            sent: ledger.sent,
            acknowledged: ledger.acknowledged.len() as u64,
            refused: ledger.refused.len() as u64,
            ..Figures::default()
        };
        let mut owner: HashMap<u64, &str> = HashMap::new();
        for (key, (_, (first, last))) in &ledger.acknowledged {
            let expected: Vec<u64> = (*first..=*last).collect();
            match per_key.get(key) {
                Some(stored) if *stored == expected => {}
                Some(stored) if stored.len() > expected.len() => figures.duplicated += 1,
                _ => figures.lost += 1,
            }
            for seq in *first..=*last {
                if owner.insert(seq, key).is_some() || seq == 0 {
                    figures.reused_sequences += 1;
                }
            }
        }
        for key in ledger.refused.keys() {
            if per_key.contains_key(key) {
                figures.stored_unacknowledged += 1;
            }
        }
        store.close().await;
        Ok(figures)
    })
}

fn second_writer(binary: &Path) -> anyhow::Result<Figures> {
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let database = dir.path().join("regula.db");
    let client = Client::new()?;
    let first = Server::start(binary, &database, &dir.path().join("first.log"))?;
    let mut ledger = Ledger::default();
    ledger.send(&client, &first, 1)?;
    let (refused, named) =
        match Server::try_start(binary, &database, &dir.path().join("second.log"), None)? {
            Ok(second) => {
                let _ = second.stop();
                (false, false)
            }
            Err((code, log)) => (
                code == Some(1),
                log.contains("in use by") && log.contains(&format!("pid={}", first.child.id())),
            ),
        };
    let keeps_working = ledger.send(&client, &first, 2)? == 200;
    let _ = first.stop()?;
    let mut figures = verify(&database, &ledger)?;
    figures.second_writer_refused = Some(refused);
    figures.holder_named = Some(named);
    figures.first_keeps_working = Some(keeps_working);
    Ok(figures)
}
