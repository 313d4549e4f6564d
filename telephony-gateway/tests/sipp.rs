//! The gateway against a real SIP peer: `SIPp` (Debian package `sip-tester`) as the caller
//! and as the operator position's phone, with the scenarios in `tests/sipp/`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{next_event, start, test_config, trunk};
use dispatch_core::intake::{CallEvent, ReportedLocation};

/// `SIPp` runs on 127.0.0.1, listed as a carrier trunk whose `P-Asserted-Identity` is
/// believed (the scenarios assert it).
fn trusted_loopback() -> telephony_gateway::SipConfig {
    telephony_gateway::SipConfig {
        trunks: vec![trunk("sipp", "127.0.0.1", true)],
        ..test_config()
    }
}

fn sipp_path() -> &'static str {
    let found = Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    assert!(
        found.is_ok(),
        "SIPp is not installed: these tests need the `sipp` program (Debian package \
         `sip-tester`; `.ci/run` installs it, or run `apt-get install sip-tester`)"
    );
    "sipp"
}

fn free_port() -> u16 {
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.local_addr().unwrap().port()
}

fn scenario(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sipp")).join(name)
}

/// A `SIPp` process running one call of a scenario; its screen goes to a log file.
struct Sipp {
    child: tokio::process::Child,
    log: PathBuf,
    name: String,
}

impl Sipp {
    fn spawn(name: &str, args: &[String]) -> Self {
        let dir = std::env::temp_dir().join(format!("regula-sipp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join(format!("{name}-{}.log", common::rand_suffix()));
        let out = std::fs::File::create(&log).unwrap();
        let child = tokio::process::Command::new(sipp_path())
            .args(args)
            .arg("-nostdin")
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .kill_on_drop(true)
            .spawn()
            .expect("sipp starts");
        Self {
            child,
            log,
            name: name.to_owned(),
        }
    }

    fn uac(file: &str, gateway: std::net::SocketAddr, transport: &str) -> Self {
        let args = vec![
            gateway.to_string(),
            "-sf".into(),
            scenario(file).display().to_string(),
            "-i".into(),
            "127.0.0.1".into(),
            "-p".into(),
            free_port().to_string(),
            "-t".into(),
            transport.into(),
            "-m".into(),
            "1".into(),
            "-timeout".into(),
            "30s".into(),
            "-timeout_error".into(),
            "-trace_err".into(),
        ];
        Self::spawn(file, &args)
    }

    fn uas(port: u16) -> Self {
        let args = vec![
            "-sf".into(),
            scenario("uas_operator.xml").display().to_string(),
            "-i".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
            "-m".into(),
            "1".into(),
            "-timeout".into(),
            "30s".into(),
            "-timeout_error".into(),
            "-trace_err".into(),
        ];
        Self::spawn("uas_operator", &args)
    }

    async fn succeeded(mut self) {
        let status = tokio::time::timeout(Duration::from_secs(40), self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} did not finish", self.name))
            .unwrap();
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: String = log
            .chars()
            .rev()
            .take(3000)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        assert!(
            status.success(),
            "SIPp {} failed ({status}):\n{tail}",
            self.name
        );
    }
}

#[tokio::test]
async fn a_call_with_pidf_lo_is_queued_taken_connected_to_an_operator_and_ended() {
    let (gw, mut events) = start(trusted_loopback(), 16).await;
    let uas_port = free_port();
    let operator = Sipp::uas(uas_port);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let caller = Sipp::uac("uac_pidf_connect.xml", gw.local_addr(), "u1");

    let CallEvent::Offered {
        call,
        caller: who,
        location,
        ..
    } = next_event(&mut events).await
    else {
        panic!("Offered first")
    };
    assert_eq!(who.asserted.unwrap().expose(), "tel:+573001234567");
    let ReportedLocation::Reported(loc) = location else {
        panic!("{location:?}")
    };
    let p = loc.position.unwrap();
    assert!((p.lat() - 4.6097).abs() < 1e-9 && (p.lon() + 74.0817).abs() < 1e-9);
    assert!((loc.uncertainty.unwrap().get() - 25.0).abs() < 1e-9);
    assert_eq!(loc.civic.unwrap().road.as_deref(), Some("Calle 45"));
    assert_eq!(gw.queue_depth(), 1);

    // The operator takes the call after it waited a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let position = format!("sip:operator@127.0.0.1:{uas_port}");
    gw.connect(&call, &position)
        .await
        .expect("operator answers");
    assert!(
        matches!(next_event(&mut events).await, CallEvent::Connected { call: c, position: p, .. } if c == call && p == position)
    );
    assert!(matches!(next_event(&mut events).await, CallEvent::Ended { call: c, .. } if c == call));
    caller.succeeded().await;
    operator.succeeded().await;
    gw.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_caller_who_cancels_while_queued_gets_200_and_487_and_is_recorded_abandoned() {
    let (gw, mut events) = start(trusted_loopback(), 16).await;
    let caller = Sipp::uac("uac_cancel.xml", gw.local_addr(), "u1");
    let CallEvent::Offered { call, .. } = next_event(&mut events).await else {
        panic!()
    };
    assert!(
        matches!(next_event(&mut events).await, CallEvent::Abandoned { call: c, .. } if c == call)
    );
    caller.succeeded().await;
    assert_eq!(gw.queue_depth(), 0);
    gw.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_anonymous_caller_over_tcp_is_queued_with_the_network_identity_kept() {
    let (gw, mut events) = start(trusted_loopback(), 16).await;
    let caller = Sipp::uac("uac_anonymous.xml", gw.local_addr(), "t1");
    let CallEvent::Offered { caller: who, .. } = next_event(&mut events).await else {
        panic!()
    };
    assert!(who.anonymous);
    assert!(who.claimed.is_none());
    assert_eq!(who.asserted.unwrap().expose(), "tel:+573001234567");
    assert!(matches!(
        next_event(&mut events).await,
        CallEvent::Abandoned { .. }
    ));
    caller.succeeded().await;
    gw.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_call_with_a_corrupt_pidf_lo_is_accepted_and_its_location_flagged() {
    let (gw, mut events) = start(trusted_loopback(), 16).await;
    let caller = Sipp::uac("uac_corrupt_pidf.xml", gw.local_addr(), "u1");
    let CallEvent::Offered { location, .. } = next_event(&mut events).await else {
        panic!()
    };
    let ReportedLocation::Unusable { reason } = location else {
        panic!("{location:?}")
    };
    assert!(reason.contains("latitude 95"), "{reason}");
    assert!(matches!(
        next_event(&mut events).await,
        CallEvent::Abandoned { .. }
    ));
    caller.succeeded().await;
    gw.shutdown().await.unwrap();
}
