//! Real storage failures through the real binary: a full disk, an immutable WAL, a second
//! writer, a PostgreSQL server that stops mid-run, and a writer that lost its lock. In
//! each, every command that got a 2xx is in the log after a restart, nothing refused is,
//! and no sequence number is used twice.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::time::Duration;

use nix::sys::signal::Signal;
use regula_tests::postgres::TempPostgres;
use regula_tests::{RunningServer, http_get, http_send_json, regula_binary};
use serde_json::{Value, json};

fn register(key: &str, id: &str) -> String {
    json!({"key": key, "command": {
        "command": "register_unit",
        "registration": {
            "id": id, "kind": "TAB",
            "provider": {"name": "Ambulancias Andinas SAS", "ownership": "private"},
            "base": {"lon": -74.07, "lat": 4.65}, "crew": []
        }
    }})
    .to_string()
}

/// `regula bench faults --scenario NAME --json`: the scenario's figures (it mounts a tmpfs
/// and uses chattr: CI runs as root; without root the scenario reports why and fails).
fn bench_faults(scenario: &str) -> Value {
    let output = std::process::Command::new(regula_binary())
        .args([
            "bench",
            "faults",
            "--json",
            "--commands",
            "150",
            "--scenario",
            scenario,
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let figures = report["scenarios"][0].clone();
    assert!(figures["error"].is_null(), "{figures}");
    assert!(output.status.success(), "{report}");
    figures
}

fn assert_nothing_lost(figures: &Value) {
    for zero in [
        "lost",
        "stored_unacknowledged",
        "duplicated",
        "reused_sequences",
    ] {
        assert_eq!(figures[zero], 0, "{zero}: {figures}");
    }
}

#[test]
fn a_full_disk_is_refused_while_it_lasts_and_nothing_acknowledged_is_lost() {
    let figures = bench_faults("disk_full");
    assert_nothing_lost(&figures);
    assert!(figures["refused"].as_u64().unwrap() > 0, "{figures}");
    assert!(figures["acknowledged"].as_u64().unwrap() >= 20, "{figures}");
    assert_eq!(figures["recovered"], true, "{figures}");
    assert_eq!(figures["exit_code"], 0, "{figures}");
    // A carrier's call while the log failed got 503 (re-routed), and one after was queued.
    assert_eq!(figures["sip_refused_while_failing"], true, "{figures}");
    assert_eq!(figures["sip_queued_after"], true, "{figures}");
}

#[test]
fn an_immutable_wal_is_refused_while_it_lasts_and_nothing_acknowledged_is_lost() {
    let figures = bench_faults("wal_immutable");
    assert_nothing_lost(&figures);
    assert!(figures["refused"].as_u64().unwrap() > 0, "{figures}");
    assert_eq!(figures["recovered"], true, "{figures}");
}

#[test]
fn a_second_server_on_a_sqlite_log_is_refused_and_the_first_goes_on() {
    let figures = bench_faults("second_writer");
    assert_nothing_lost(&figures);
    assert_eq!(figures["second_writer_refused"], true, "{figures}");
    assert_eq!(figures["holder_named"], true, "{figures}");
    assert_eq!(figures["first_keeps_working"], true, "{figures}");
}

#[test]
fn a_read_only_log_is_a_clear_error_at_start_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("regula.db");
    // Make a log, then take the write permission away (root ignores file modes: make the
    // file immutable instead, as a read-only medium would be).
    let server = RunningServer::start(&["--database-url", database.to_str().unwrap()], &[]);
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(15)), Some(0));
    let chattr = |flag: &str| {
        let status = std::process::Command::new("chattr")
            .arg(flag)
            .arg(&database)
            .status()
            .unwrap();
        assert!(status.success(), "chattr {flag} needs root");
    };
    chattr("+i");
    let output = std::process::Command::new(regula_binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url"])
        .arg(&database)
        .output()
        .unwrap();
    chattr("-i");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot be written"), "{stderr}");
    // A start that fails on a bad setting creates no database at all.
    let missing = dir.path().join("other.db");
    let output = std::process::Command::new(regula_binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url"])
        .arg(&missing)
        .arg("--config")
        .arg(write_config(
            dir.path(),
            "[routing]\ngraph = \"/no/such.graph\"\n",
        ))
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        !missing.exists(),
        "a failed start created {}",
        missing.display()
    );
}

fn write_config(dir: &std::path::Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("regula.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_new_log_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let server = RunningServer::start(&[], &[]);
    let dir = server.data_dir().unwrap().to_path_buf();
    for name in ["regula.db", "regula.db-wal", "regula.db.lock"] {
        let mode = std::fs::metadata(dir.join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name}: {mode:o}");
    }
}

#[test]
fn a_postgresql_outage_is_refused_while_it_lasts_and_nothing_acknowledged_is_lost() {
    let postgres = TempPostgres::start();
    let server = RunningServer::start(&["--database-url", &postgres.url], &[]);
    let mut acknowledged = Vec::new();
    let mut refused = Vec::new();
    let mut send = |n: u32, acknowledged: &mut Vec<(String, Value)>| {
        let key = format!("pg-{n}");
        let (status, body) = http_send_json(
            &server.addr,
            "POST",
            "/api/v1/commands",
            &register(&key, &format!("PG-{n:04}")),
        );
        match status {
            200 => acknowledged.push((key, serde_json::from_str::<Value>(&body).unwrap())),
            503 => refused.push(key),
            other => panic!("unexpected {other}: {body}"),
        }
        status
    };
    for n in 0..10 {
        assert_eq!(send(n, &mut acknowledged), 200);
    }
    postgres.stop_now();
    for n in 10..20 {
        assert_eq!(
            send(n, &mut acknowledged),
            503,
            "nothing is acknowledged while down"
        );
    }
    let (status, _, body) = http_get(&server.addr, "/ready");
    assert_eq!(status, 503, "{body}");
    let (status, _, body) = http_get(&server.addr, "/health");
    assert_eq!(status, 200, "liveness stays up: {body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["ready"],
        false
    );
    postgres.start_again();
    let mut back = false;
    for n in 20..40 {
        back |= send(n, &mut acknowledged) == 200;
    }
    assert!(
        back,
        "the server acknowledges again once PostgreSQL is back"
    );
    let (status, _, _) = http_get(&server.addr, "/ready");
    assert_eq!(status, 200);
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(30)), Some(0));
    // Every acknowledged key is in the log at the positions its reply gave; no refused key is.
    for (key, reply) in &acknowledged {
        let stored = postgres.psql(&format!(
            "SELECT first_seq || ',' || last_seq FROM commands WHERE key = '{key}'"
        ));
        assert_eq!(
            stored,
            format!("{},{}", reply["first_seq"], reply["last_seq"]),
            "{key}"
        );
    }
    for key in &refused {
        let stored = postgres.psql(&format!(
            "SELECT COUNT(*) FROM commands WHERE key = '{key}'"
        ));
        assert_eq!(stored, "0", "{key} was refused but stored");
    }
    let events = postgres.psql("SELECT COUNT(*), COUNT(DISTINCT seq), MAX(seq) FROM events");
    let parts: Vec<&str> = events.split('|').collect();
    assert_eq!(parts[0], parts[1], "no sequence number twice: {events}");
    assert_eq!(parts[0], parts[2], "no gap: {events}");
}

#[test]
fn a_second_server_on_a_postgresql_log_is_refused_and_a_fenced_writer_never_appends() {
    let postgres = TempPostgres::start();
    let first = RunningServer::start(&["--database-url", &postgres.url], &[]);
    let (status, body) = http_send_json(
        &first.addr,
        "POST",
        "/api/v1/commands",
        &register("a-1", "PGA-0001"),
    );
    assert_eq!(status, 200, "{body}");
    // A second server is refused at start, naming the first.
    let output = std::process::Command::new(regula_binary())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            &postgres.url,
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("in use by"), "{stderr}");
    assert!(stderr.contains(&format!("pid={}", first.pid())), "{stderr}");
    let (status, body) = http_send_json(
        &first.addr,
        "POST",
        "/api/v1/commands",
        &register("a-2", "PGA-0002"),
    );
    assert_eq!(status, 200, "the first goes on: {body}");
    // The first loses its writer session (a network cut, an administrator) and another
    // server takes the log: the first must never append again.
    let ended = postgres.psql(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = 'regula pid={} host=' || '{}' AND pid IN \
         (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted)",
        first.pid(),
        hostname()
    ));
    assert_eq!(
        ended, "t",
        "the first server's writer session was found and ended"
    );
    let second = RunningServer::start(&["--database-url", &postgres.url], &[]);
    let (status, body) = http_send_json(
        &first.addr,
        "POST",
        "/api/v1/commands",
        &register("a-3", "PGA-0003"),
    );
    assert_eq!(status, 503, "the fenced writer refuses: {body}");
    // Its next command finds the lock taken: it refuses everything from now on.
    let (status, body) = http_send_json(
        &first.addr,
        "POST",
        "/api/v1/commands",
        &register("a-4", "PGA-0004"),
    );
    assert_eq!(status, 503, "{body}");
    let (status, _, body) = http_get(&first.addr, "/ready");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("lost the writer lock"), "{body}");
    let (status, body) = http_send_json(
        &second.addr,
        "POST",
        "/api/v1/commands",
        &register("b-1", "PGB-0001"),
    );
    assert_eq!(status, 200, "the new writer works: {body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["first_seq"],
        3,
        "it continues the log"
    );
    assert_eq!(
        postgres.psql("SELECT COUNT(*) FROM commands WHERE key IN ('a-3', 'a-4')"),
        "0"
    );
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_owned()
}

#[test]
fn a_real_carriers_calls_reach_the_queue_during_and_after_floods_at_every_door() {
    let output = std::process::Command::new(regula_binary())
        .args(["bench", "faults", "--json"])
        .args(["--scenario", "sip_udp_flood"])
        .args(["--scenario", "sip_tcp_flood"])
        .args(["--scenario", "http_flood"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    for figures in report["scenarios"].as_array().unwrap() {
        assert!(figures["error"].is_null(), "{figures}");
        let offered = figures["real_calls_offered"].as_u64().unwrap();
        assert!(offered >= 2, "{figures}");
        assert_eq!(figures["real_calls_queued"], offered, "{figures}");
        assert!(figures["flood_refused"].as_u64().unwrap() > 0, "{figures}");
        println!(
            "{}: RSS {} KiB before, {} KiB after",
            figures["scenario"], figures["rss_before_kib"], figures["rss_after_kib"]
        );
    }
    assert_eq!(report["scenarios"][0]["flood_calls_recorded"], 0);
    assert_eq!(report["scenarios"][2]["operator_command_ok"], true);
    assert!(output.status.success(), "{report}");
}

/// A SIP INVITE / CANCEL pair of one call from `port` on 127.0.0.1.
fn sip_request(method: &str, port: u16, call: &str) -> String {
    let sdp = "v=0\r\no=c 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n";
    let body = if method == "INVITE" { sdp } else { "" };
    let content_type = if method == "INVITE" {
        "Content-Type: application/sdp\r\n"
    } else {
        ""
    };
    format!(
        "{method} urn:service:sos SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{call};rport\r\nMax-Forwards: 70\r\nFrom: <sip:+573001234567@carrier.example>;tag=t-{call}\r\nTo: <urn:service:sos>\r\nCall-ID: {call}\r\nCSeq: 1 {method}\r\nContact: <sip:+573001234567@127.0.0.1:{port}>\r\n{content_type}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn a_client_cannot_claim_a_callers_cancel_and_cannot_forge_call_events() {
    use sha2::Digest;
    let server = RunningServer::start(&["--sip-listen", "127.0.0.1:0"], &[]);
    let sip = server
        .sip_addr()
        .expect("the server printed its SIP address");
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let port = socket.local_addr().unwrap().port();
    let call = "cancel-me-1";
    socket
        .send_to(sip_request("INVITE", port, call).as_bytes(), sip)
        .unwrap();
    let mut buffer = vec![0u8; 65_536];
    loop {
        let (len, _) = socket.recv_from(&mut buffer).unwrap();
        if buffer[..len].starts_with(b"SIP/2.0 180") {
            break;
        }
    }
    // A client claims the keys the gateway used to derive from the public Call-ID, and
    // tries the system's namespace and a forged event.
    let core_id = format!("sip:{call};t-{call}");
    let digest = sha2::Sha256::digest(core_id.as_bytes());
    let old_key = format!("call:abandoned:{}", hex::encode(&digest[..16]));
    let touch = |key: &str, command: Value| {
        http_send_json(
            &server.addr,
            "POST",
            "/api/v1/commands",
            &json!({"key": key, "command": command}).to_string(),
        )
    };
    let (status, _) = touch(
        &old_key,
        json!({"command": "register_unit", "registration": {"id": "TAB-0001", "kind": "TAB",
            "provider": {"name": "Ambulancias Andinas SAS", "ownership": "private"},
            "base": {"lon": -74.07, "lat": 4.65}, "crew": []}}),
    );
    assert_eq!(status, 200, "an ordinary client key");
    let (status, body) = touch(
        &format!("#{old_key}"),
        json!({"command": "register_unit", "registration": {"id": "TAB-0002", "kind": "TAB",
            "provider": {"name": "Ambulancias Andinas SAS", "ownership": "private"},
            "base": {"lon": -74.07, "lat": 4.65}, "crew": []}}),
    );
    assert_eq!(status, 403, "{body}");
    let (status, body) = touch(
        "forge-1",
        json!({"command": "record_call_event", "event": {"kind": "abandoned", "call": core_id,
            "at": "2026-12-03T12:00:00Z"}}),
    );
    assert_eq!(status, 403, "{body}");
    // The caller hangs up: the CANCEL still reaches the engine.
    socket
        .send_to(sip_request("CANCEL", port, call).as_bytes(), sip)
        .unwrap();
    let mut abandoned = false;
    for _ in 0..50 {
        let (_, _, body) = http_get(&server.addr, "/api/v1/calls");
        let calls: Value = serde_json::from_str(&body).unwrap();
        abandoned =
            calls.as_array().unwrap().iter().any(|c| {
                c.to_string().contains(&core_id) && c.to_string().contains("\"abandoned\"")
            });
        if abandoned {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(abandoned, "the caller's CANCEL was recorded");
}

/// An ext4 image loop-mounted in a temporary directory (tmpfs lets open files be written
/// after `chattr +i`; ext4 does not), unmounted when dropped.
struct Ext4 {
    dir: tempfile::TempDir,
    _image: tempfile::NamedTempFile,
}

impl Ext4 {
    fn mount() -> Self {
        let image = tempfile::NamedTempFile::new().unwrap();
        image.as_file().set_len(32 << 20).unwrap();
        let run = |program: &str, args: &[&std::ffi::OsStr]| {
            let status = std::process::Command::new(program)
                .args(args)
                .output()
                .unwrap();
            assert!(
                status.status.success(),
                "{program} failed (needs root and e2fsprogs): {}",
                String::from_utf8_lossy(&status.stderr)
            );
        };
        run(
            "mkfs.ext4",
            &["-q".as_ref(), "-F".as_ref(), image.path().as_os_str()],
        );
        let dir = tempfile::tempdir().unwrap();
        run(
            "mount",
            &[
                "-o".as_ref(),
                "loop".as_ref(),
                image.path().as_os_str(),
                dir.path().as_os_str(),
            ],
        );
        Self { dir, _image: image }
    }
}

impl Drop for Ext4 {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn a_stop_while_the_log_fails_is_bounded_and_exits_non_zero() {
    let disk = Ext4::mount();
    let database = disk.dir.path().join("regula.db");
    let server = RunningServer::start(&["--database-url", database.to_str().unwrap()], &[]);
    let (status, body) = http_send_json(
        &server.addr,
        "POST",
        "/api/v1/commands",
        &register("s-1", "STP-0001"),
    );
    assert_eq!(status, 200, "{body}");
    let wal = disk.dir.path().join("regula.db-wal");
    let chattr = |flag: &str| {
        assert!(
            std::process::Command::new("chattr")
                .arg(flag)
                .arg(&wal)
                .status()
                .unwrap()
                .success()
        );
    };
    chattr("+i");
    let (status, body) = http_send_json(
        &server.addr,
        "POST",
        "/api/v1/commands",
        &register("s-2", "STP-0002"),
    );
    assert_eq!(status, 503, "{body}");
    server.signal(Signal::SIGTERM);
    // Every stage of the stop has a deadline: it ends, and says it could not flush.
    let code = server.wait_exit(Duration::from_mins(1));
    chattr("-i");
    assert_eq!(code, Some(4), "an unclean stop exits 4");
    // Nothing refused was stored; what was acknowledged is there.
    let server = RunningServer::start(&["--database-url", database.to_str().unwrap()], &[]);
    let (_, _, body) = http_get(&server.addr, "/api/v1/units");
    let units: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(units.len(), 1, "{body}");
}
