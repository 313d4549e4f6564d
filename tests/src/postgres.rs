//! A throw-away PostgreSQL server for tests: `initdb` into a temporary directory, started
//! with `pg_ctl` on a free loopback port, stopped and deleted when dropped.
//!
//! The Debian package `postgresql` provides the programs (`.ci/run` installs it). PostgreSQL
//! refuses to run as root, so under root the server runs as the `postgres` user the
//! package creates.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A running PostgreSQL server owned by the test.
#[derive(Debug)]
pub struct TempPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_postgres_user: bool,
    port: u16,
    options: String,
    /// `postgres://postgres@127.0.0.1:PORT/postgres` (trust authentication on loopback).
    pub url: String,
}

fn find_bin() -> PathBuf {
    let in_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    for dir in in_path {
        if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
            return dir;
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path().join("bin"))
                .filter(|bin| bin.join("initdb").is_file())
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions.pop().unwrap_or_else(|| {
        panic!(
            "PostgreSQL server programs (initdb, pg_ctl) not found: install the Debian package \
             `postgresql` (.ci/run does)"
        )
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_or_else(|e| panic!("no free port: {e}"), |a| a.port())
}

fn wait_ready(port: u16) {
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("PostgreSQL did not start listening on port {port}");
}

impl TempPostgres {
    /// Initialises and starts a fresh server; panics with a clear message if it cannot.
    pub fn start() -> Self {
        let bin = find_bin();
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot make a temp dir: {e}"));
        let as_postgres_user = nix::unistd::geteuid().is_root();
        if as_postgres_user {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap_or_else(|e| panic!("cannot run chown: {e}"));
            assert!(
                status.success(),
                "cannot give the temp dir to the `postgres` user (does it exist? install the \
                 Debian package `postgresql`)"
            );
        }
        let data = dir.path().join("data");
        let socket_dir = dir.path().to_path_buf();
        let run = |program: &str, args: &[&str]| {
            let mut command = if as_postgres_user {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(bin.join(program));
                c
            } else {
                Command::new(bin.join(program))
            };
            let output = command
                .args(args)
                .stdin(Stdio::null())
                .output()
                .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
            assert!(
                output.status.success(),
                "{program} failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        };
        let data_arg = data.display().to_string();
        run(
            "initdb",
            &[
                "-D",
                &data_arg,
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        let port = free_port();
        let options = format!(
            "-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={} -c fsync=on -c max_connections=50",
            socket_dir.display()
        );
        let log = dir.path().join("postgres.log").display().to_string();
        run(
            "pg_ctl",
            &[
                "-D", &data_arg, "-o", &options, "-l", &log, "-w", "-t", "60", "start",
            ],
        );
        let server = Self {
            dir,
            bin,
            as_postgres_user,
            port,
            options,
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        };
        wait_ready(port);
        server
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, program: &str) -> Command {
        if self.as_postgres_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(self.bin.join(program));
            c
        } else {
            Command::new(self.bin.join(program))
        }
    }

    /// Stops the server now (`pg_ctl stop -m fast`: open sessions are ended), as an
    /// outage would.
    pub fn stop_now(&self) {
        let status = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "fast", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("cannot run pg_ctl: {e}"));
        assert!(status.success(), "pg_ctl stop failed");
    }

    /// Starts the server again after [`TempPostgres::stop_now`], on the same port.
    pub fn start_again(&self) {
        let log = self.dir.path().join("postgres.log");
        let status = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-o", &self.options, "-l"])
            .arg(log)
            .args(["-w", "-t", "60", "start"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("cannot run pg_ctl: {e}"));
        assert!(status.success(), "pg_ctl start failed");
        wait_ready(self.port);
    }

    /// Runs one SQL statement with `psql` and returns what it printed (unaligned, no
    /// headers).
    pub fn psql(&self, sql: &str) -> String {
        // psql is a client: it need not run as the server's user, nor live beside it.
        let output = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .args(["-d", "postgres", "-At", "-c", sql])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run psql: {e}"));
        assert!(
            output.status.success(),
            "psql failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    fn stop(&self, data: &Path) {
        let mut command = if self.as_postgres_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"));
            c
        } else {
            Command::new(self.bin.join("pg_ctl"))
        };
        let _ = command
            .args(["-D"])
            .arg(data)
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        self.stop(&self.data_dir());
    }
}
