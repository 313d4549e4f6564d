//! `regula bench load`: emergency calls over SIP through the whole system.
//!
//! The real system runs in-process (SIP gateway, engine, event log on a temporary SQLite
//! file or `--database-url`). `SIPp` places calls with a PIDF-LO location at `--cps` for
//! `--seconds`; an operator stand-in takes each call `--answer-after-ms` after it appears
//! in the queue, through the engine (`TakeCall`), and the gateway connects it to a second
//! `SIPp` acting as the operator's phone; the caller hangs up after one second of
//! conversation. Printed figures:
//! - `calls`, `failed` (calls `SIPp` counts as failed, plus calls not recorded as ended);
//! - `queue_latency_ms_p50/p99/max`: from the INVITE's arrival to the call stored in the
//!   core's queue and published to the consoles (wall clock, 1 ms resolution);
//! - `connected`, `ended`, `connect_failures`, `rejected_overload`.
//!
//! Needs `sipp` (Debian package `sip-tester`).

use std::io::Write;
use std::path::Path;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use dispatch_core::ids::OperatorId;
use dispatch_core::{Command, Event};
use maps::Clock;
use serde::Serialize;
use tokio::sync::broadcast;

use crate::clock::{Stopwatch, SystemClock};
use crate::config::{Config, DatabaseUrl};
use crate::engine::{CommandKey, EngineHandle, Published};
use crate::system::System;

const UAC: &str = include_str!("../../../telephony-gateway/tests/sipp/uac_pidf_connect.xml");
const UAS: &str = include_str!("../../../telephony-gateway/tests/sipp/uas_operator.xml");

/// `regula bench load`
#[derive(Debug, Args)]
pub struct BenchLoadArgs {
    /// New calls per second.
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub cps: u32,
    /// How long calls keep arriving.
    #[arg(long, default_value_t = 60, value_name = "S")]
    pub seconds: u32,
    /// Delay between a call appearing in the queue and the operator taking it.
    #[arg(long, default_value_t = 200, value_name = "MS")]
    pub answer_after_ms: u64,
    /// Event log (SQLite path or postgres:// URL); default a temporary SQLite file.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Default, Serialize)]
struct Figures {
    calls: u64,
    cps: u32,
    seconds: u32,
    duration_s: f64,
    failed: u64,
    sipp_caller_exit: i32,
    sipp_phone_exit: i32,
    offered: u64,
    connected: u64,
    ended: u64,
    connect_failures: u64,
    take_errors: u64,
    queue_latency_ms_p50: f64,
    queue_latency_ms_p99: f64,
    queue_latency_ms_max: f64,
    store: &'static str,
}

pub(crate) fn run(args: &BenchLoadArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!((1..=500).contains(&args.cps), "--cps must be 1–500");
    anyhow::ensure!(
        (1..=3600).contains(&args.seconds),
        "--seconds must be 1–3600"
    );
    which_sipp()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let figures = runtime.block_on(load(args))?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&figures)?)?;
    } else {
        writeln!(
            out,
            "{} calls at {}/s over {:.1} s on {}: {} failed; INVITE → queue p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {} connected, {} ended, {} connection failures",
            figures.calls,
            figures.cps,
            figures.duration_s,
            figures.store,
            figures.failed,
            figures.queue_latency_ms_p50,
            figures.queue_latency_ms_p99,
            figures.queue_latency_ms_max,
            figures.connected,
            figures.ended,
            figures.connect_failures
        )?;
    }
    Ok(if figures.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn which_sipp() -> anyhow::Result<()> {
    std::process::Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|_| ())
        .context("`sipp` is not installed: install the Debian package `sip-tester`")
}

fn free_udp_port() -> anyhow::Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

#[derive(Debug, Default)]
struct Tally {
    offered: u64,
    connected: u64,
    ended: u64,
    connect_failures: u64,
    take_errors: u64,
    latency_ms: Vec<f64>,
}

fn load_config(args: &BenchLoadArgs, dir: &Path) -> anyhow::Result<Config> {
    let mut config = Config::default();
    config.store.database_url = DatabaseUrl::try_from(
        args.database_url
            .clone()
            .unwrap_or_else(|| dir.join("load.db").display().to_string()),
    )
    .map_err(|e| anyhow::anyhow!("--database-url: {e}"))?;
    // SIPp plays the carrier: a trunk, so the per-source cap for unknown sources does not
    // apply to it (as for a real carrier's trunk).
    let mut sip = telephony_gateway::SipConfig {
        listen: "127.0.0.1:0".parse()?,
        trunks: vec![telephony_gateway::config::Trunk {
            name: "sipp".into(),
            addresses: vec![
                "127.0.0.1"
                    .parse()
                    .map_err(|e: String| anyhow::anyhow!(e))?,
            ],
            trust_asserted_identity: true,
            digest: None,
        }],
        ..telephony_gateway::SipConfig::default()
    };
    sip.max_queued_calls = sip.max_queued_calls.max(args.cps as usize * 4);
    config.sip = Some(sip);
    Ok(config)
}

/// `SIPp` arguments common to both sides.
fn sipp_args(scenario: &str, port: u16, calls: u64, seconds: u32) -> Vec<String> {
    vec![
        "-sf".into(),
        scenario.into(),
        "-i".into(),
        "127.0.0.1".into(),
        "-p".into(),
        port.to_string(),
        "-m".into(),
        calls.to_string(),
        "-timeout".into(),
        format!("{}s", seconds + 60),
        "-max_socket".into(),
        "5000".into(),
    ]
}

async fn load(args: &BenchLoadArgs) -> anyhow::Result<Figures> {
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let config = load_config(args, dir.path())?;
    let store = match config.store.database_url.location() {
        crate::store::StoreLocation::Sqlite(_) => "sqlite",
        crate::store::StoreLocation::Postgres(_) => "postgres",
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // The HTTP routes are not served here; dropping them releases their engine handle so
    // the engine can stop at the end.
    let (system, routes) = System::start(&config, clock.clone()).await?;
    drop(routes);
    let gateway = system.sip_addr().context("the SIP gateway did not start")?;
    let calls = u64::from(args.cps) * u64::from(args.seconds);

    std::fs::write(dir.path().join("uac.xml"), UAC)?;
    std::fs::write(dir.path().join("uas.xml"), UAS)?;
    let phone_port = free_udp_port()?;
    let mut phone = sipp(
        dir.path(),
        "phone",
        &sipp_args("uas.xml", phone_port, calls, args.seconds),
    )?;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let tally = Arc::new(std::sync::Mutex::new(Tally::default()));
    let operator = spawn_operator(
        system.engine().clone(),
        clock.clone(),
        format!("sip:operator@127.0.0.1:{phone_port}"),
        Duration::from_millis(args.answer_after_ms),
        tally.clone(),
    );
    let watch = Stopwatch::start();
    let mut caller_args = vec![gateway.to_string()];
    caller_args.extend(sipp_args("uac.xml", free_udp_port()?, calls, args.seconds));
    caller_args.extend(["-r".into(), args.cps.to_string()]);
    let mut caller = sipp(dir.path(), "caller", &caller_args)?;
    let caller_exit = caller.wait().await?.code().unwrap_or(-1);
    let duration_s = watch.elapsed().as_secs_f64();
    let phone_exit =
        if let Ok(status) = tokio::time::timeout(Duration::from_secs(30), phone.wait()).await {
            status?.code().unwrap_or(-1)
        } else {
            let _ = phone.kill().await;
            -1
        };
    // Let the last hang-ups reach the log.
    for _ in 0..100 {
        if lock(&tally)?.ended >= calls {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    operator.abort();
    let _ = system.stop().await;
    let mut tally = std::mem::take(&mut *lock(&tally)?);
    tally.latency_ms.sort_by(f64::total_cmp);
    Ok(Figures {
        calls,
        cps: args.cps,
        seconds: args.seconds,
        duration_s,
        failed: calls.saturating_sub(tally.ended) + u64::from(caller_exit != 0 || phone_exit != 0),
        sipp_caller_exit: caller_exit,
        sipp_phone_exit: phone_exit,
        offered: tally.offered,
        connected: tally.connected,
        ended: tally.ended,
        connect_failures: tally.connect_failures,
        take_errors: tally.take_errors,
        queue_latency_ms_p50: percentile(&tally.latency_ms, 0.50),
        queue_latency_ms_p99: percentile(&tally.latency_ms, 0.99),
        queue_latency_ms_max: percentile(&tally.latency_ms, 1.0),
        store,
    })
}

fn lock(tally: &std::sync::Mutex<Tally>) -> anyhow::Result<std::sync::MutexGuard<'_, Tally>> {
    tally
        .lock()
        .map_err(|_| anyhow::anyhow!("tally lock poisoned"))
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn sipp(dir: &Path, name: &str, args: &[String]) -> anyhow::Result<tokio::process::Child> {
    let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
    tokio::process::Command::new("sipp")
        .args(args)
        .arg("-nostdin")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start sipp ({name})"))
}

/// Takes every offered call after `delay`, through the engine; counts what happens.
fn spawn_operator(
    engine: EngineHandle,
    clock: Arc<dyn Clock>,
    position: String,
    delay: Duration,
    tally: Arc<std::sync::Mutex<Tally>>,
) -> tokio::task::JoinHandle<()> {
    let mut events = engine.subscribe();
    tokio::spawn(async move {
        let operator = OperatorId::new("bench.operator").unwrap_or_else(|e| panic!("{e}"));
        let mut taken = 0u64;
        loop {
            let event = match events.recv().await {
                Ok(Published::Event { event, .. }) => event,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            };
            let Ok(mut t) = tally.lock() else { return };
            match *event {
                Event::CallOffered { call } => {
                    t.offered += 1;
                    let latency = clock.now().saturating_duration_since(call.offered_at);
                    t.latency_ms.push(latency.as_secs_f64() * 1e3);
                    taken += 1;
                    let key = CommandKey::new(format!("bench-take-{taken}"))
                        .unwrap_or_else(|e| panic!("{e}"));
                    let command = Command::TakeCall {
                        call: call.id,
                        operator: operator.clone(),
                        position: position.clone(),
                    };
                    let engine = engine.clone();
                    let tally = tally.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        if engine.command(key, command).await.is_err()
                            && let Ok(mut t) = tally.lock()
                        {
                            t.take_errors += 1;
                        }
                    });
                }
                Event::CallConnected { .. } => t.connected += 1,
                Event::CallEnded { .. } => t.ended += 1,
                Event::CallReturnedToQueue { .. } => t.connect_failures += 1,
                _ => {}
            }
        }
    })
}
