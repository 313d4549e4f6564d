//! SIP load benchmark against the real peer: `SIPp` places emergency calls with PIDF-LO at
//! a fixed rate (default 50 calls/s for 60 s); an operator stand-in takes each call 200 ms
//! after it is offered and connects it to a `SIPp` UAS (the operator phone); the caller
//! hangs up after 1 s of conversation. Prints one JSON object:
//!
//! `calls`, `failed` (`SIPp` failed calls on either side + calls never connected),
//! `cps`, `queue_latency_ms_p50/p99/max` (INVITE received → `CallEvent::Offered`
//! delivered on the core's channel, measured inside the gateway), and counts.
//!
//! Run: `cargo bench -p telephony-gateway --bench sip_load`
//! (`REGULA_SIP_BENCH_CPS`, `REGULA_SIP_BENCH_SECS` change the load). Needs `sipp`.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dispatch_core::intake::CallEvent;
use maps::{ManualClock, Timestamp};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use telephony_gateway::{Monotonic, SipConfig, SipGateway};

#[derive(Debug)]
struct BenchClock(Instant);

impl Monotonic for BenchClock {
    fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let idx = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx]
}

/// The last `SuccessfulCall(C)`/`FailedCall(C)` of a `SIPp` statistics file.
fn sipp_counts(stats: &std::path::Path) -> (u64, u64) {
    let text = std::fs::read_to_string(stats).unwrap_or_default();
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else {
        return (0, u64::MAX);
    };
    let columns: Vec<&str> = header.split(';').collect();
    let Some(last) = lines.next_back() else {
        return (0, u64::MAX);
    };
    let values: Vec<&str> = last.split(';').collect();
    let get = |name: &str| {
        columns
            .iter()
            .position(|c| *c == name)
            .and_then(|i| values.get(i))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(u64::MAX)
    };
    (get("SuccessfulCall(C)"), get("FailedCall(C)"))
}

#[tokio::main]
#[allow(clippy::too_many_lines)] // one linear script: start, load, collect, print
async fn main() {
    let cps = env_number("REGULA_SIP_BENCH_CPS", 50);
    let secs = env_number("REGULA_SIP_BENCH_SECS", 60);
    let calls = cps * secs;
    assert!(
        std::process::Command::new("sipp")
            .arg("-v")
            .output()
            .is_ok(),
        "the benchmark needs SIPp (Debian package sip-tester)"
    );
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().expect("metrics recorder");

    #[allow(clippy::disallowed_methods)] // a benchmark times itself
    let start = Instant::now();
    let monotonic: Arc<dyn Monotonic> = Arc::new(BenchClock(start));
    let clock = Arc::new(ManualClock::new(
        Timestamp::parse_rfc3339("2026-11-23T12:00:00Z").unwrap(),
    ));
    let (tx, mut rx) = tokio::sync::mpsc::channel(4096);
    let config = SipConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        max_queued_calls: 2_000,
        // SIPp places every call from 127.0.0.1: a trunk, so the per-source cap of
        // non-trunk sources does not apply and its asserted identity is believed.
        trunks: vec![telephony_gateway::config::Trunk {
            name: "sipp".into(),
            addresses: vec!["127.0.0.1".parse().unwrap()],
            trust_asserted_identity: true,
            digest: None,
        }],
        ..SipConfig::default()
    };
    let gateway = Arc::new(
        SipGateway::start_instrumented(config, clock, tx, Some(monotonic))
            .await
            .unwrap(),
    );
    let dir = std::env::temp_dir().join(format!("regula-sip-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let scenarios = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sipp"));
    let uas_port = free_port();
    let log = |name: &str| Stdio::from(std::fs::File::create(dir.join(name)).unwrap());

    let mut uas = tokio::process::Command::new("sipp")
        .args([
            "-sf",
            &scenarios.join("uas_operator.xml").display().to_string(),
        ])
        .args(["-i", "127.0.0.1", "-p", &uas_port.to_string()])
        .args([
            "-m",
            &calls.to_string(),
            "-trace_stat",
            "-stf",
            "uas.csv",
            "-fd",
            "1",
            "-nostdin",
        ])
        .args([
            "-timeout",
            &format!("{}s", secs + 60),
            "-max_socket",
            "5000",
        ])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(log("uas.log"))
        .stderr(log("uas.err"))
        .kill_on_drop(true)
        .spawn()
        .expect("sipp UAS");
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Operator stand-in: takes each call 200 ms after it is offered.
    let position = format!("sip:operator@127.0.0.1:{uas_port}");
    let gw = gateway.clone();
    let operator = tokio::spawn(async move {
        let (mut offered, mut connected, mut ended, mut connect_failures) =
            (0u64, 0u64, 0u64, 0u64);
        let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<bool>();
        loop {
            tokio::select! {
                event = rx.recv() => match event {
                    Some(CallEvent::Offered { call, .. }) => {
                        offered += 1;
                        let gw = gw.clone();
                        let position = position.clone();
                        let done = done_tx.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            let _ = done.send(gw.connect(&call, &position).await.is_ok());
                        });
                    }
                    Some(CallEvent::Connected { .. }) => connected += 1,
                    Some(CallEvent::Ended { .. }) => ended += 1,
                    Some(
                        CallEvent::Abandoned { .. }
                        | CallEvent::ConnectFailed { .. }
                        | CallEvent::Overflowed { .. },
                    ) => {}
                    None => break,
                },
                Some(ok) = done_rx.recv() => if !ok { connect_failures += 1 },
            }
            if ended == calls {
                break;
            }
        }
        (offered, connected, ended, connect_failures)
    });

    let uac = tokio::process::Command::new("sipp")
        .arg(gateway.local_addr().to_string())
        .args([
            "-sf",
            &scenarios.join("uac_pidf_connect.xml").display().to_string(),
        ])
        .args(["-i", "127.0.0.1", "-p", &free_port().to_string()])
        .args([
            "-r",
            &cps.to_string(),
            "-m",
            &calls.to_string(),
            "-l",
            "5000",
        ])
        .args(["-trace_stat", "-stf", "uac.csv", "-fd", "1", "-nostdin"])
        .args([
            "-timeout",
            &format!("{}s", secs + 60),
            "-max_socket",
            "5000",
        ])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(log("uac.log"))
        .stderr(log("uac.err"))
        .kill_on_drop(true)
        .status()
        .await
        .expect("sipp UAC");
    let elapsed = start.elapsed();
    let operator = tokio::time::timeout(Duration::from_secs(30), operator).await;
    let uas_status = tokio::time::timeout(Duration::from_secs(30), uas.wait()).await;
    let (offered, connected, ended, connect_failures) = operator
        .ok()
        .and_then(Result::ok)
        .unwrap_or((0, 0, 0, u64::MAX));
    let (caller_ok, caller_failed) = sipp_counts(&dir.join("uac.csv"));
    let (operator_ok, operator_failed) = sipp_counts(&dir.join("uas.csv"));

    let mut latencies: Vec<f64> = Vec::new();
    let mut overload = 0u64;
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        match (key.key().name(), value) {
            ("regula_sip_invite_to_offered_seconds", DebugValue::Histogram(samples)) => {
                latencies.extend(samples.iter().map(|s| s.0 * 1000.0));
            }
            ("regula_telephony_calls_rejected_overload_total", DebugValue::Counter(n)) => {
                overload += n;
            }
            _ => {}
        }
    }
    latencies.sort_by(f64::total_cmp);
    let failed = caller_failed
        .saturating_add(operator_failed)
        .saturating_add(calls.saturating_sub(connected));
    #[allow(clippy::cast_precision_loss)]
    let report = serde_json::json!({
        "calls": calls,
        "failed": failed,
        "cps": cps,
        "duration_s": (elapsed.as_secs_f64() * 10.0).round() / 10.0,
        "queue_latency_ms_p50": (percentile(&latencies, 0.50) * 1000.0).round() / 1000.0,
        "queue_latency_ms_p99": (percentile(&latencies, 0.99) * 1000.0).round() / 1000.0,
        "queue_latency_ms_max": (latencies.last().copied().unwrap_or(f64::NAN) * 1000.0).round() / 1000.0,
        "latency_samples": latencies.len(),
        "offered": offered,
        "connected": connected,
        "ended": ended,
        "connect_failures": connect_failures,
        "rejected_overload": overload,
        "sipp_uac": { "successful": caller_ok, "failed": caller_failed, "exit": uac.code() },
        "sipp_uas": { "successful": operator_ok, "failed": operator_failed, "exit": uas_status.ok().and_then(Result::ok).and_then(|s| s.code()) },
        "operator_takes_call_after_ms": 200,
        "conversation_ms": 1000,
    });
    println!("{report}");
    if let Ok(g) = Arc::try_unwrap(gateway) {
        let _ = g.shutdown().await;
    }
    eprintln!("SIPp logs and statistics: {}", dir.display());
}
