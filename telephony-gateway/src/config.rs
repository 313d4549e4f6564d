//! The gateway's settings: the `[sip]` section of `regula.toml`.
//!
//! ```toml
//! [sip]
//! listen = "0.0.0.0:5060"          # UDP and TCP on the same address; port 0 picks one
//! # advertise = "203.0.113.7"      # address put in Via/Contact (default: listen address,
//! #                                # or the local address that routes to each peer)
//! max_queued_calls = 200           # beyond: 503 with Retry-After, counted
//! retry_after_secs = 30            # Retry-After on 503
//! provisional_interval_secs = 60   # 180 Ringing re-sent while queued (RFC 3261 §13.3.1.1)
//! operator_answer_timeout_secs = 30  # operator phone must answer within this
//! max_message_bytes = 65535        # larger messages: 513
//! max_header_bytes = 8192          # larger header fields: 400
//! max_headers = 128                # more header fields: 400
//! t1_ms = 500                      # RFC 3261 T1 (timers G, H, I, J, A, B, E, F derive from it)
//! shutdown_grace_ms = 4000         # how long shutdown waits for transactions to finish
//! ```

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::sip::Limits;

/// Settings of the SIP gateway (`[sip]` in the configuration file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    /// Address to bind UDP and TCP on.
    pub listen: SocketAddr,
    /// Address to advertise in Via and Contact; default: the listen address, or when that
    /// is unspecified (`0.0.0.0`), the local address that routes to each peer.
    pub advertise: Option<IpAddr>,
    /// Calls waiting (queued or being connected) beyond which new INVITEs get 503.
    pub max_queued_calls: usize,
    /// `Retry-After` seconds on 503.
    pub retry_after_secs: u32,
    /// Interval between 180 Ringing re-sends while a call waits.
    pub provisional_interval_secs: u64,
    /// Time an operator position has to answer before the call goes back to the queue.
    pub operator_answer_timeout_secs: u64,
    /// Largest SIP message, bytes.
    pub max_message_bytes: usize,
    /// Largest header field, bytes.
    pub max_header_bytes: usize,
    /// Most header fields per message.
    pub max_headers: usize,
    /// RFC 3261 timer T1 in milliseconds (500 by default; tests shorten it).
    pub t1_ms: u64,
    /// How long a graceful shutdown waits for transactions to complete.
    pub shutdown_grace_ms: u64,
}

impl Default for SipConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 5060)),
            advertise: None,
            max_queued_calls: 200,
            retry_after_secs: 30,
            provisional_interval_secs: 60,
            operator_answer_timeout_secs: 30,
            max_message_bytes: 65_535,
            max_header_bytes: 8_192,
            max_headers: 128,
            t1_ms: 500,
            shutdown_grace_ms: 4_000,
        }
    }
}

/// A setting out of its range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sip.{key} = {value} is out of range: {hint}")]
pub struct ConfigError {
    /// The key.
    pub key: &'static str,
    /// What was given.
    pub value: String,
    /// What is allowed.
    pub hint: &'static str,
}

impl SipConfig {
    /// Checks every setting; returns all problems.
    pub fn validate(&self) -> Result<(), Vec<ConfigError>> {
        let mut problems = Vec::new();
        let mut check = |ok: bool, key, value: String, hint| {
            if !ok {
                problems.push(ConfigError { key, value, hint });
            }
        };
        check(
            (1..=100_000).contains(&self.max_queued_calls),
            "max_queued_calls",
            self.max_queued_calls.to_string(),
            "1 to 100000",
        );
        check(
            (1..=3600).contains(&self.retry_after_secs),
            "retry_after_secs",
            self.retry_after_secs.to_string(),
            "1 to 3600",
        );
        check(
            (1..=170).contains(&self.provisional_interval_secs),
            "provisional_interval_secs",
            self.provisional_interval_secs.to_string(),
            "1 to 170 (proxies cancel an INVITE after 3 minutes without a provisional)",
        );
        check(
            (1..=600).contains(&self.operator_answer_timeout_secs),
            "operator_answer_timeout_secs",
            self.operator_answer_timeout_secs.to_string(),
            "1 to 600",
        );
        check(
            (1_300..=1_048_576).contains(&self.max_message_bytes),
            "max_message_bytes",
            self.max_message_bytes.to_string(),
            "1300 to 1048576",
        );
        check(
            (256..=65_535).contains(&self.max_header_bytes),
            "max_header_bytes",
            self.max_header_bytes.to_string(),
            "256 to 65535",
        );
        check(
            (16..=1024).contains(&self.max_headers),
            "max_headers",
            self.max_headers.to_string(),
            "16 to 1024",
        );
        check(
            (10..=5_000).contains(&self.t1_ms),
            "t1_ms",
            self.t1_ms.to_string(),
            "10 to 5000 (RFC 3261 recommends 500)",
        );
        check(
            self.shutdown_grace_ms <= 60_000,
            "shutdown_grace_ms",
            self.shutdown_grace_ms.to_string(),
            "0 to 60000",
        );
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// Parser limits.
    pub fn limits(&self) -> Limits {
        Limits {
            max_message_bytes: self.max_message_bytes,
            max_header_bytes: self.max_header_bytes,
            max_headers: self.max_headers,
        }
    }

    pub(crate) fn t1(&self) -> Duration {
        Duration::from_millis(self.t1_ms)
    }

    /// T2 = 8 × T1 (4 s for T1 = 500 ms).
    pub(crate) fn t2(&self) -> Duration {
        self.t1() * 8
    }

    /// 64 × T1: timers B, F, H, J.
    pub(crate) fn t64(&self) -> Duration {
        self.t1() * 64
    }

    /// T4 = 10 × T1 (5 s for T1 = 500 ms): timer I.
    pub(crate) fn t4(&self) -> Duration {
        self.t1() * 10
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_every_bad_value_is_reported() {
        assert!(SipConfig::default().validate().is_ok());
        let bad = SipConfig {
            max_queued_calls: 0,
            provisional_interval_secs: 200,
            t1_ms: 1,
            ..SipConfig::default()
        };
        let problems = bad.validate().unwrap_err();
        let keys: Vec<&str> = problems.iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            vec!["max_queued_calls", "provisional_interval_secs", "t1_ms"]
        );
        assert!(problems[1].to_string().contains("3 minutes"));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let parsed: Result<SipConfig, _> =
            serde_json::from_str(r#"{"listen":"127.0.0.1:5070","max_queue":3}"#);
        assert!(parsed.is_err());
        let parsed: SipConfig = serde_json::from_str(r#"{"listen":"127.0.0.1:5070"}"#).unwrap();
        assert_eq!(parsed.listen.port(), 5070);
        assert_eq!(parsed.max_queued_calls, 200);
    }
}
