//! Harness for Regula's end-to-end tests: builds and starts the real `regula` binary.
//!
//! The binary is built once per test process with `cargo build -p ops-console --bin regula`
//! (a no-op when it is fresh), so `cargo test -p regula-tests` never runs a stale binary.

pub mod postgres;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// Path of the freshly built `regula` binary.
pub fn regula_binary() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let output = Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "-p",
                "ops-console",
                "--bin",
                "regula",
                "--message-format=json",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("cannot run cargo to build regula: {e}"));
        assert!(output.status.success(), "cargo build of regula failed");
        let stdout = String::from_utf8_lossy(&output.stdout);
        stdout
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|msg| msg["reason"] == "compiler-artifact" && msg["target"]["name"] == "regula")
            .find_map(|msg| msg["executable"].as_str().map(PathBuf::from))
            .unwrap_or_else(|| panic!("cargo did not report the regula executable"))
    })
    .clone()
}

/// A running `regula serve`, killed when dropped.
#[derive(Debug)]
pub struct RunningServer {
    child: Option<Child>,
    /// The base URL, `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// `host:port`.
    pub addr: String,
    /// The SIP door, when the server opened one.
    sip: Option<std::net::SocketAddr>,
    stdout: BufReader<ChildStdout>,
    /// Holds the event log of this server (unless the caller gave `--database-url`).
    data_dir: Option<tempfile::TempDir>,
}

impl RunningServer {
    /// Starts `regula serve --listen 127.0.0.1:0 <extra…>` and waits for its address. Unless
    /// `extra_args` name a `--database-url`, the event log goes to a fresh temporary
    /// directory removed when the server is dropped.
    pub fn start(extra_args: &[&str], envs: &[(&str, &str)]) -> Self {
        let mut command = Command::new(regula_binary());
        command.args(["serve", "--listen", "127.0.0.1:0"]);
        let data_dir = if extra_args.contains(&"--database-url") {
            None
        } else {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot make a temp dir: {e}"));
            command
                .arg("--database-url")
                .arg(dir.path().join("regula.db"));
            Some(dir)
        };
        command
            .args(extra_args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in envs {
            command.env(k, v);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start regula: {e}"));
        let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
        let mut stdout = BufReader::new(stdout);
        if let Some((url, sip)) = read_url(&mut stdout) {
            let addr = url.trim_start_matches("http://").to_owned();
            return Self {
                child: Some(child),
                base_url: url,
                addr,
                sip,
                stdout,
                data_dir,
            };
        }
        let status = child.wait();
        panic!("regula exited before printing its address: {status:?}");
    }

    /// The SIP door's address, when the server opened one.
    pub fn sip_addr(&self) -> Option<std::net::SocketAddr> {
        self.sip
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Sends a signal to the server.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.pid()).unwrap_or(0));
        nix::sys::signal::kill(pid, signal).unwrap_or_else(|e| panic!("kill failed: {e}"));
    }

    /// Waits up to `timeout` for the process to exit; returns its exit code, or `None`
    /// if it is still running (then it is killed).
    pub fn wait_exit(mut self, timeout: Duration) -> Option<i32> {
        let mut child = self.child.take()?;
        let step = Duration::from_millis(20);
        let mut waited = Duration::ZERO;
        while waited < timeout {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            std::thread::sleep(step);
            waited += step;
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// The temporary directory holding this server's event log, if the harness made one.
    pub fn data_dir(&self) -> Option<&std::path::Path> {
        self.data_dir.as_ref().map(tempfile::TempDir::path)
    }

    /// The rest of stdout after the address line (call after the process exited).
    pub fn stdout(&mut self) -> &mut BufReader<ChildStdout> {
        &mut self.stdout
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Reads lines until one carries `http://…` (and the SIP address printed before it, if
/// any); `None` at end of output.
fn read_url(stdout: &mut impl BufRead) -> Option<(String, Option<std::net::SocketAddr>)> {
    let mut line = String::new();
    let mut sip = None;
    loop {
        line.clear();
        if stdout.read_line(&mut line).unwrap_or(0) == 0 {
            return None;
        }
        if line.starts_with("SIP") {
            sip = line.split_whitespace().last().and_then(|a| a.parse().ok());
        }
        if let Some(pos) = line.find("http://") {
            let url = line[pos..].split_whitespace().next()?.to_owned();
            return Some((url, sip));
        }
    }
}

/// The tests' HTTP client (one per process: connections are reused).
fn client() -> &'static reqwest::blocking::Client {
    static CLIENT: OnceLock<reqwest::blocking::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_else(|e| panic!("cannot build the HTTP client: {e}"))
    })
}

/// A GET: (status, headers as `name: value` lines, body).
pub fn http_get(addr: &str, path: &str) -> (u16, String, String) {
    let response = client()
        .get(format!("http://{addr}{path}"))
        .send()
        .unwrap_or_else(|e| panic!("GET {path} on {addr} failed: {e}"));
    let status = response.status().as_u16();
    let head = response
        .headers()
        .iter()
        .fold(String::new(), |mut head, (name, value)| {
            use std::fmt::Write as _;
            let _ = write!(head, "{name}: {}\r\n", value.to_str().unwrap_or(""));
            head
        });
    let body = response
        .text()
        .unwrap_or_else(|e| panic!("GET {path}: unreadable body: {e}"));
    (status, head, body)
}

/// A request with a JSON body: (status, body).
pub fn http_send_json(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    http_request(
        addr,
        method,
        path,
        &[("Content-Type", "application/json")],
        body,
    )
}

/// A request with extra headers: (status, body).
pub fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .unwrap_or_else(|e| panic!("bad method {method}: {e}"));
    let mut request = client()
        .request(method.clone(), format!("http://{addr}{path}"))
        .body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request
        .send()
        .unwrap_or_else(|e| panic!("{method} {path} on {addr} failed: {e}"));
    let status = response.status().as_u16();
    let body = response
        .text()
        .unwrap_or_else(|e| panic!("{method} {path}: unreadable body: {e}"));
    (status, body)
}
