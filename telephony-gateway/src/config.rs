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
//!
//! # Bounded doors: every limit below is counted in `regula_sip_refused_total{reason}`
//! max_tcp_connections = 1024       # TCP connections from non-trunk addresses, all together
//! max_connections_per_peer = 32    # TCP connections from one IP address (trunks included)
//! tcp_idle_timeout_secs = 300      # closed after this long without a complete SIP message
//! tcp_keepalive_max_secs = 3600    # keep-alives extend the idle timeout up to this long
//!                                  # after the last complete SIP message, never further
//! max_queued_per_source = 10       # waiting calls from one non-trunk IP address; beyond: 503
//! max_queue_secs = 300             # unanswered this long: 302 to overflow_uri, else 480
//! # overflow_uri = "sip:sos@backup.example"  # the backup centre (Contact of the 302)
//! digest_nonce_secs = 300          # a digest nonce is valid this long, and used once
//! max_digest_nonces = 1024         # outstanding nonces kept; the oldest is forgotten first
//!
//! [[sip.trunks]]                   # the carriers; none: development mode (see below)
//! name = "carrier-a"
//! addresses = ["198.51.100.0/24", "2001:db8:5060::/48", "203.0.113.7"]
//! trust_asserted_identity = true   # take P-Asserted-Identity from this trunk (RFC 3325)
//! # digest = { username = "regula", realm = "sos.regula.example", password = "…" }
//! ```
//!
//! # Trunks
//!
//! With trunks listed, an INVITE from an address outside every trunk gets `403 Forbidden`
//! and is never offered; a trunk with `digest` credentials must also authenticate each
//! INVITE (RFC 3261 §22, RFC 7616 with SHA-256 or MD5: `401` with a challenge, then a
//! correct `Authorization`; a wrong one gets `403`). `P-Asserted-Identity` is a network
//! assertion (RFC 3325): it is believed only from a trunk with
//! `trust_asserted_identity = true`, and ignored from anyone else (the caller is then who
//! `From` claims). With no trunks (the development default), every INVITE is accepted as
//! before, but `P-Asserted-Identity` is trusted from nobody, and each source address may
//! hold at most `max_queued_per_source` waiting calls.
//!
//! # TCP idle and keep-alive connections
//!
//! A connection is closed when no complete SIP message has arrived for
//! `tcp_idle_timeout_secs`. RFC 5626 keep-alives (CRLF, answered pings) extend that
//! deadline, but never beyond `tcp_keepalive_max_secs` after the last complete message
//! (or the connection's opening), so keep-alives alone cannot hold a connection forever,
//! while a carrier keeping the connection of a long call alive with them is served for an
//! hour by default. Every byte received since the last complete message, CRLFs included,
//! counts toward `max_message_bytes`; beyond it the connection is closed.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use dispatch_core::privacy::Sensitive;
use serde::{Deserialize, Serialize};

use crate::sip::{Limits, Scheme, Uri};

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
    /// Most TCP connections open at once from addresses outside every trunk.
    pub max_tcp_connections: usize,
    /// Most TCP connections open at once from one IP address (trunks included).
    pub max_connections_per_peer: usize,
    /// A TCP connection without a complete SIP message for this long is closed.
    pub tcp_idle_timeout_secs: u64,
    /// Keep-alives extend the idle timeout up to this long after the last complete SIP
    /// message (or the connection's opening), never further.
    pub tcp_keepalive_max_secs: u64,
    /// The carriers allowed to place calls; empty: every source (development).
    pub trunks: Vec<Trunk>,
    /// Most calls waiting at once from one IP address outside every trunk.
    pub max_queued_per_source: usize,
    /// Longest wait in the queue; then the call overflows (302 or 480).
    pub max_queue_secs: u64,
    /// Where overflowing calls are redirected (302 Contact); none: 480 with Retry-After.
    pub overflow_uri: Option<String>,
    /// How long a digest nonce is valid.
    pub digest_nonce_secs: u64,
    /// Most digest nonces outstanding; the oldest is forgotten first.
    pub max_digest_nonces: usize,
}

/// A carrier's interconnection: where its INVITEs come from and how far to trust them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trunk {
    /// A name for logs and metrics (not personal data).
    pub name: String,
    /// Source addresses: single IPv4/IPv6 addresses or CIDR ranges.
    pub addresses: Vec<AddressRange>,
    /// Whether `P-Asserted-Identity` from this trunk is believed (RFC 3325 trust domain).
    #[serde(default)]
    pub trust_asserted_identity: bool,
    /// Digest credentials every INVITE from this trunk must present; none: address only.
    #[serde(default)]
    pub digest: Option<DigestCredentials>,
}

impl Trunk {
    /// Whether `ip` is one of this trunk's addresses.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.addresses.iter().any(|a| a.contains(ip))
    }
}

/// Digest credentials of a trunk (RFC 7616). The password never shows in `Debug`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DigestCredentials {
    /// The username the carrier presents.
    pub username: String,
    /// The protection realm (put in the challenge).
    pub realm: String,
    /// The shared password.
    pub password: Sensitive<String>,
}

/// An IPv4 or IPv6 address, or a CIDR range (`198.51.100.0/24`, `2001:db8::/32`).
///
/// Hand-rolled rather than taken from `ipnet`: matching is one masked comparison, and
/// refusing host bits set in a range (`198.51.100.7/24`, a likely typo) is our rule.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddressRange {
    network: IpAddr,
    prefix: u8,
}

impl AddressRange {
    /// Whether `ip` is in the range. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, as a
    /// dual-stack socket reports IPv4 peers) match as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(ip) & mask == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(ip) & mask == u128::from(net)
            }
            _ => false,
        }
    }
}

impl FromStr for AddressRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let network: IpAddr = addr
            .parse()
            .map_err(|_| format!("{text:?} is not an IPv4 or IPv6 address or CIDR range"))?;
        let bits: u8 = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= bits)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {bits}"))?,
        };
        let range = Self { network, prefix };
        if !range.contains(network) {
            return Err(format!(
                "{text:?} has host bits set after /{prefix}; write the network address"
            ));
        }
        Ok(range)
    }
}

impl fmt::Display for AddressRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bits = if self.network.is_ipv4() { 32 } else { 128 };
        if self.prefix == bits {
            write!(f, "{}", self.network)
        } else {
            write!(f, "{}/{}", self.network, self.prefix)
        }
    }
}

impl fmt::Debug for AddressRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for AddressRange {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AddressRange {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
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
            max_tcp_connections: 1_024,
            max_connections_per_peer: 32,
            tcp_idle_timeout_secs: 300,
            tcp_keepalive_max_secs: 3_600,
            trunks: Vec::new(),
            max_queued_per_source: 10,
            max_queue_secs: 300,
            overflow_uri: None,
            digest_nonce_secs: 300,
            max_digest_nonces: 1_024,
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
    #[allow(clippy::too_many_lines)] // one check per key, in the order of the table above
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
        check(
            (1..=65_536).contains(&self.max_tcp_connections),
            "max_tcp_connections",
            self.max_tcp_connections.to_string(),
            "1 to 65536 (each connection holds up to max_message_bytes of buffer)",
        );
        check(
            (1..=4_096).contains(&self.max_connections_per_peer),
            "max_connections_per_peer",
            self.max_connections_per_peer.to_string(),
            "1 to 4096",
        );
        check(
            (1..=3_600).contains(&self.tcp_idle_timeout_secs),
            "tcp_idle_timeout_secs",
            self.tcp_idle_timeout_secs.to_string(),
            "1 to 3600",
        );
        check(
            (self.tcp_idle_timeout_secs..=86_400).contains(&self.tcp_keepalive_max_secs),
            "tcp_keepalive_max_secs",
            self.tcp_keepalive_max_secs.to_string(),
            "tcp_idle_timeout_secs to 86400",
        );
        check(
            (1..=100_000).contains(&self.max_queued_per_source),
            "max_queued_per_source",
            self.max_queued_per_source.to_string(),
            "1 to 100000 (above max_queued_calls it has no effect)",
        );
        check(
            (1..=3_600).contains(&self.max_queue_secs),
            "max_queue_secs",
            self.max_queue_secs.to_string(),
            "1 to 3600 (no caller should ring for more than an hour)",
        );
        if let Some(uri) = &self.overflow_uri {
            let usable = Uri::parse(uri)
                .is_ok_and(|u| matches!(u.scheme(), Scheme::Sip | Scheme::Sips | Scheme::Tel));
            check(
                usable && uri.len() <= 256,
                "overflow_uri",
                format!("{uri:?}"),
                "a sip:, sips: or tel: URI of at most 256 characters, e.g. \"sip:sos@backup.example\"",
            );
        }
        check(
            (10..=3_600).contains(&self.digest_nonce_secs),
            "digest_nonce_secs",
            self.digest_nonce_secs.to_string(),
            "10 to 3600",
        );
        check(
            (16..=65_536).contains(&self.max_digest_nonces),
            "max_digest_nonces",
            self.max_digest_nonces.to_string(),
            "16 to 65536",
        );
        for (i, trunk) in self.trunks.iter().enumerate() {
            let named = |what: &str| format!("trunk {} ({:?}): {what}", i + 1, trunk.name);
            let plain = |t: &str| {
                !t.is_empty()
                    && t.len() <= 128
                    && t.chars()
                        .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\')
            };
            check(
                plain(&trunk.name)
                    && self.trunks[..i]
                        .iter()
                        .all(|other| other.name != trunk.name),
                "trunks.name",
                named("name"),
                "a unique name of 1 to 128 printable ASCII characters without spaces or quotes",
            );
            check(
                !trunk.addresses.is_empty(),
                "trunks.addresses",
                named("no addresses"),
                "at least one address or CIDR range, e.g. [\"198.51.100.0/24\"]",
            );
            if let Some(digest) = &trunk.digest {
                check(
                    plain(&digest.username) && plain(&digest.realm),
                    "trunks.digest",
                    named("username or realm"),
                    "username and realm of 1 to 128 printable ASCII characters without spaces or quotes",
                );
                check(
                    !digest.password.expose().is_empty(),
                    "trunks.digest.password",
                    named("empty password"),
                    "a non-empty password",
                );
            }
        }
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

    /// The first trunk `ip` belongs to (by its position in `trunks`).
    pub fn trunk_of(&self, ip: IpAddr) -> Option<(usize, &Trunk)> {
        self.trunks.iter().enumerate().find(|(_, t)| t.contains(ip))
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

    #[test]
    fn address_ranges_match_ipv4_ipv6_and_mapped_addresses() {
        let range: AddressRange = "198.51.100.0/24".parse().unwrap();
        assert!(range.contains("198.51.100.200".parse().unwrap()));
        assert!(!range.contains("198.51.101.1".parse().unwrap()));
        assert!(range.contains("::ffff:198.51.100.9".parse().unwrap()));
        let single: AddressRange = "127.0.0.2".parse().unwrap();
        assert!(single.contains("127.0.0.2".parse().unwrap()));
        assert!(!single.contains("127.0.0.1".parse().unwrap()));
        let v6: AddressRange = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:1::5".parse().unwrap()));
        assert!(!v6.contains("2001:db9::5".parse().unwrap()));
        assert!(!v6.contains("198.51.100.1".parse().unwrap()));
        let all: AddressRange = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("203.0.113.1".parse().unwrap()));
        assert_eq!(v6.to_string(), "2001:db8::/32");
        assert_eq!(single.to_string(), "127.0.0.2");

        for bad in [
            "198.51.100.7/24",
            "10.0.0.0/33",
            "::/129",
            "carrier.example",
            "1.2.3.4/x",
        ] {
            assert!(bad.parse::<AddressRange>().is_err(), "{bad}");
        }
    }

    #[test]
    fn trunks_parse_and_their_password_stays_out_of_debug() {
        let text = r#"{"listen":"127.0.0.1:5070","trunks":[{"name":"carrier-a","addresses":["198.51.100.0/24","2001:db8::1"],"trust_asserted_identity":true,"digest":{"username":"regula","realm":"sos.example","password":"s3cret-pass"}}]}"#;
        let parsed: SipConfig = serde_json::from_str(text).unwrap();
        assert!(parsed.validate().is_ok());
        let (index, trunk) = parsed.trunk_of("198.51.100.4".parse().unwrap()).unwrap();
        assert_eq!((index, trunk.name.as_str()), (0, "carrier-a"));
        assert!(parsed.trunk_of("192.0.2.1".parse().unwrap()).is_none());
        let debug = format!("{parsed:?}");
        assert!(!debug.contains("s3cret-pass"), "{debug}");
        assert!(debug.contains("198.51.100.0/24"), "{debug}");
        let bad_range = text.replace("198.51.100.0/24", "198.51.100.9/24");
        assert!(serde_json::from_str::<SipConfig>(&bad_range).is_err());
    }

    #[test]
    fn the_documented_trunk_table_parses_in_toml() {
        let text = r#"
listen = "127.0.0.1:5070"
max_queue_secs = 120
overflow_uri = "sip:sos@backup.example"

[[trunks]]
name = "carrier-a"
addresses = ["198.51.100.0/24", "2001:db8:5060::/48", "203.0.113.7"]
trust_asserted_identity = true
digest = { username = "regula", realm = "sos.regula.example", password = "pw" }

[[trunks]]
name = "carrier-b"
addresses = ["192.0.2.10"]
"#;
        let parsed: SipConfig = toml::from_str(text).unwrap();
        assert!(parsed.validate().is_ok());
        assert_eq!(parsed.trunks.len(), 2);
        assert!(parsed.trunks[0].trust_asserted_identity);
        assert!(!parsed.trunks[1].trust_asserted_identity && parsed.trunks[1].digest.is_none());
        let ip = "2001:db8:5060::1".parse().unwrap();
        assert_eq!(parsed.trunk_of(ip).unwrap().1.name, "carrier-a");
    }

    #[test]
    fn door_limits_are_validated_with_a_hint() {
        let bad = SipConfig {
            max_connections_per_peer: 0,
            tcp_idle_timeout_secs: 600,
            tcp_keepalive_max_secs: 60,
            max_queued_per_source: 0,
            max_queue_secs: 0,
            overflow_uri: Some("mailto:x@y".into()),
            trunks: vec![Trunk {
                name: "a b".into(),
                addresses: Vec::new(),
                trust_asserted_identity: false,
                digest: Some(DigestCredentials {
                    username: "u".into(),
                    realm: "r".into(),
                    password: Sensitive::new(String::new()),
                }),
            }],
            ..SipConfig::default()
        };
        let keys: Vec<&str> = bad.validate().unwrap_err().iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            vec![
                "max_connections_per_peer",
                "tcp_keepalive_max_secs",
                "max_queued_per_source",
                "max_queue_secs",
                "overflow_uri",
                "trunks.name",
                "trunks.addresses",
                "trunks.digest.password",
            ]
        );
        let good = SipConfig {
            overflow_uri: Some("sip:sos@backup.example".into()),
            ..SipConfig::default()
        };
        assert!(good.validate().is_ok());
    }
}
