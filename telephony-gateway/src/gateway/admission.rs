//! Who may place a call: the trunk allow-list, digest authentication per trunk
//! (RFC 3261 §22.4 with RFC 7616: SHA-256 or MD5, `qop=auth`), and the per-source cap on
//! waiting calls from addresses outside every trunk.
//!
//! Nonces are random, valid for `digest_nonce_secs`, bound to the trunk they were issued
//! for and used once: a correct answer consumes its nonce, so a captured `Authorization`
//! cannot place a second call; a wrong one consumes it too, so each guess costs a
//! challenge. At most `max_digest_nonces` are kept; the oldest is forgotten first (its
//! holder gets a fresh challenge).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use maps::{Timestamp, TravelTime};

use super::{CallState, Core, random_token};
use crate::config::{DigestCredentials, Trunk};
use crate::sip::{HeaderLookup, HeaderName, Request};
use crate::transport::Peer;

/// Whether an INVITE may go on to the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Admission {
    /// Accepted: from `trunk` (its index) or, outside every trunk, from anywhere
    /// (no trunks configured).
    Admitted {
        /// The trunk, if any.
        trunk: Option<usize>,
        /// Whether `P-Asserted-Identity` is believed.
        trust_asserted_identity: bool,
    },
    /// Digest credentials needed (or the nonce was stale): 401 with this challenge.
    Challenge {
        /// `WWW-Authenticate` values, preferred algorithm first.
        challenges: Vec<String>,
    },
    /// 403 Forbidden, counted under `reason`.
    Forbidden {
        /// Metric label.
        reason: &'static str,
    },
}

/// Digest algorithms offered and accepted (RFC 7616 §3.2; RFC 8760 for SIP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Algorithm {
    Sha256,
    Md5,
}

impl Algorithm {
    fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "SHA-256",
            Self::Md5 => "MD5",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        if name.eq_ignore_ascii_case("SHA-256") {
            Some(Self::Sha256)
        } else if name.eq_ignore_ascii_case("MD5") {
            Some(Self::Md5)
        } else {
            None
        }
    }

    fn hash(self, text: &str) -> String {
        use sha2::Digest;
        match self {
            Self::Sha256 => hex::encode(sha2::Sha256::digest(text.as_bytes())),
            Self::Md5 => hex::encode(md5::Md5::digest(text.as_bytes())),
        }
    }
}

/// The fields of an `Authorization: Digest …` header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct DigestAnswer {
    pub(super) username: String,
    pub(super) realm: String,
    pub(super) nonce: String,
    pub(super) uri: String,
    pub(super) response: String,
    pub(super) algorithm: Option<String>,
    pub(super) qop: Option<String>,
    pub(super) nc: Option<String>,
    pub(super) cnonce: Option<String>,
}

/// Reads `Digest k=v, k="v", …`; `None` when it is not a digest answer or a required
/// field is missing.
pub(super) fn parse_authorization(value: &str) -> Option<DigestAnswer> {
    let value = value.trim_start();
    let (scheme, mut rest) = value.split_at(value.find([' ', '\t'])?);
    if !scheme.eq_ignore_ascii_case("Digest") {
        return None;
    }
    let mut answer = DigestAnswer::default();
    let mut seen = (false, false, false, false, false);
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            break;
        }
        let eq = rest.find('=')?;
        let key = rest[..eq].trim().to_ascii_lowercase();
        rest = rest[eq + 1..].trim_start();
        let field = if let Some(quoted) = rest.strip_prefix('"') {
            let mut text = String::new();
            let mut chars = quoted.char_indices();
            let end = loop {
                match chars.next()? {
                    (i, '"') => break i,
                    (_, '\\') => text.push(chars.next()?.1),
                    (_, c) => text.push(c),
                }
            };
            rest = &quoted[end + 1..];
            text
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            let text = rest[..end].trim().to_owned();
            rest = &rest[end..];
            text
        };
        match key.as_str() {
            "username" => (answer.username, seen.0) = (field, true),
            "realm" => (answer.realm, seen.1) = (field, true),
            "nonce" => (answer.nonce, seen.2) = (field, true),
            "uri" => (answer.uri, seen.3) = (field, true),
            "response" => (answer.response, seen.4) = (field, true),
            "algorithm" => answer.algorithm = Some(field),
            "qop" => answer.qop = Some(field),
            "nc" => answer.nc = Some(field),
            "cnonce" => answer.cnonce = Some(field),
            _ => {}
        }
    }
    (seen == (true, true, true, true, true)).then_some(answer)
}

/// The expected `response` (RFC 7616 §3.4.1, `qop=auth`, or RFC 2069 without qop).
pub(super) fn expected_response(
    algorithm: Algorithm,
    credentials: &DigestCredentials,
    method: &str,
    answer: &DigestAnswer,
) -> Option<String> {
    let ha1 = algorithm.hash(&format!(
        "{}:{}:{}",
        credentials.username,
        credentials.realm,
        credentials.password.expose()
    ));
    let ha2 = algorithm.hash(&format!("{method}:{}", answer.uri));
    match answer.qop.as_deref() {
        None => Some(algorithm.hash(&format!("{ha1}:{}:{ha2}", answer.nonce))),
        Some(qop) if qop.eq_ignore_ascii_case("auth") => {
            let nc = answer.nc.as_deref()?;
            let cnonce = answer.cnonce.as_deref()?;
            Some(algorithm.hash(&format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", answer.nonce)))
        }
        Some(_) => None,
    }
}

/// Compares without an early exit, so timing does not reveal how much of a guess
/// was right.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Outstanding nonces: bounded, oldest forgotten first, each used once.
#[derive(Debug)]
pub(super) struct Nonces {
    by_nonce: HashMap<String, (u64, usize, Timestamp)>,
    by_age: BTreeMap<u64, String>,
    next: u64,
    capacity: usize,
    lifetime: TravelTime,
}

/// What a presented nonce turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NonceCheck {
    /// Issued to this trunk and still valid (now consumed).
    Valid,
    /// Expired, forgotten or never issued: challenge again (`stale=true`).
    Stale,
}

impl Nonces {
    pub(super) fn new(capacity: usize, lifetime: TravelTime) -> Self {
        Self {
            by_nonce: HashMap::new(),
            by_age: BTreeMap::new(),
            next: 0,
            capacity,
            lifetime,
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.by_nonce.len()
    }

    pub(super) fn issue(&mut self, trunk: usize, now: Timestamp) -> String {
        while self.by_nonce.len() >= self.capacity {
            let Some((_, oldest)) = self.by_age.pop_first() else {
                break;
            };
            self.by_nonce.remove(&oldest);
        }
        let nonce = random_token(32);
        self.next += 1;
        self.by_nonce.insert(nonce.clone(), (self.next, trunk, now));
        self.by_age.insert(self.next, nonce.clone());
        nonce
    }

    /// Consumes `nonce` if it was issued for `trunk`.
    pub(super) fn take(&mut self, nonce: &str, trunk: usize, now: Timestamp) -> NonceCheck {
        let Some(&(seq, issued_for, issued_at)) = self.by_nonce.get(nonce) else {
            return NonceCheck::Stale;
        };
        if issued_for != trunk {
            return NonceCheck::Stale;
        }
        self.by_nonce.remove(nonce);
        self.by_age.remove(&seq);
        if now.saturating_duration_since(issued_at) > self.lifetime {
            NonceCheck::Stale
        } else {
            NonceCheck::Valid
        }
    }
}

/// The source address of a peer as trunks see it (IPv4-mapped IPv6 as IPv4).
pub(super) fn source_ip(peer: &Peer) -> IpAddr {
    peer.addr().ip().to_canonical()
}

impl Core {
    /// Decides whether `request` (a new INVITE from `peer`) may be queued.
    pub(super) fn admit(&mut self, request: &Request, peer: &Peer) -> Admission {
        let ip = source_ip(peer);
        if self.config.trunks.is_empty() {
            return Admission::Admitted {
                trunk: None,
                trust_asserted_identity: false,
            };
        }
        let Some((index, trunk)) = self.config.trunk_of(ip) else {
            return Admission::Forbidden {
                reason: "not_a_trunk",
            };
        };
        let admitted = Admission::Admitted {
            trunk: Some(index),
            trust_asserted_identity: trunk.trust_asserted_identity,
        };
        let Some(credentials) = trunk.digest.clone() else {
            return admitted;
        };
        let now = self.clock.now();
        let answer = request
            .header_values(&HeaderName::Other("Authorization".into()))
            .find_map(parse_authorization);
        let Some(answer) = answer else {
            return self.challenge(index, &credentials, false, now);
        };
        if answer.username != credentials.username || answer.realm != credentials.realm {
            return Admission::Forbidden {
                reason: "digest_failed",
            };
        }
        if self.nonces.take(&answer.nonce, index, now) == NonceCheck::Stale {
            return self.challenge(index, &credentials, true, now);
        }
        let algorithm = match answer.algorithm.as_deref() {
            None => Some(Algorithm::Md5),
            Some(name) => Algorithm::parse(name),
        };
        let expected = algorithm
            .filter(|_| answer.uri == request.uri.as_str())
            .and_then(|a| expected_response(a, &credentials, request.method.as_str(), &answer));
        match expected {
            Some(expected) if same(&expected, &answer.response.to_ascii_lowercase()) => admitted,
            _ => Admission::Forbidden {
                reason: "digest_failed",
            },
        }
    }

    fn challenge(
        &mut self,
        trunk: usize,
        credentials: &DigestCredentials,
        stale: bool,
        now: Timestamp,
    ) -> Admission {
        metrics::counter!("regula_sip_digest_challenges_total").increment(1);
        let challenges = [Algorithm::Sha256, Algorithm::Md5]
            .into_iter()
            .map(|algorithm| {
                let nonce = self.nonces.issue(trunk, now);
                format!(
                    "Digest realm=\"{}\", nonce=\"{nonce}\", algorithm={}, qop=\"auth\"{}",
                    credentials.realm,
                    algorithm.name(),
                    if stale { ", stale=true" } else { "" }
                )
            })
            .collect();
        Admission::Challenge { challenges }
    }

    /// Calls waiting (queued or being connected) from `ip` outside every trunk.
    pub(super) fn waiting_from(&self, ip: IpAddr) -> usize {
        self.calls
            .values()
            .filter(|c| {
                c.trunk.is_none()
                    && matches!(c.state, CallState::Queued | CallState::Connecting)
                    && source_ip(&c.peer) == ip
            })
            .count()
    }
}

/// The trunk name for logs (never personal data).
pub(super) fn trunk_name(trunks: &[Trunk], index: Option<usize>) -> &str {
    index
        .and_then(|i| trunks.get(i))
        .map_or("-", |t| t.name.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use dispatch_core::privacy::Sensitive;

    fn credentials() -> DigestCredentials {
        DigestCredentials {
            username: "Mufasa".into(),
            realm: "http-auth@example.org".into(),
            password: Sensitive::new("Circle of Life".into()),
        }
    }

    /// RFC 7616 §3.9.1: the worked example, for both algorithms.
    #[test]
    fn responses_match_the_rfc_7616_examples() {
        let header = r#"Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", algorithm=MD5, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc=00000001, cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop=auth, response="8ca523f5e9506fed4657c9700eebdbec", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;
        let answer = parse_authorization(header).unwrap();
        assert_eq!(answer.uri, "/dir/index.html");
        assert_eq!(
            expected_response(Algorithm::Md5, &credentials(), "GET", &answer).unwrap(),
            "8ca523f5e9506fed4657c9700eebdbec"
        );
        let sha = DigestAnswer {
            algorithm: Some("SHA-256".into()),
            ..answer
        };
        assert_eq!(
            expected_response(Algorithm::Sha256, &credentials(), "GET", &sha).unwrap(),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn malformed_or_incomplete_answers_are_not_read() {
        assert!(parse_authorization("Basic dXNlcjpwYXNz").is_none());
        assert!(parse_authorization(r#"Digest username="a", realm="b""#).is_none());
        assert!(parse_authorization(r#"Digest username="unterminated"#).is_none());
        let escaped = parse_authorization(
            r#"Digest username="a\"b", realm="r, with comma", nonce=n, uri="sip:x", response="00""#,
        )
        .unwrap();
        assert_eq!(escaped.username, "a\"b");
        assert_eq!(escaped.realm, "r, with comma");
        assert_eq!(escaped.nonce, "n");
    }

    #[test]
    fn nonces_are_single_use_expire_belong_to_one_trunk_and_stay_bounded() {
        let t0 = Timestamp::from_millis(1_000_000).unwrap();
        let later = Timestamp::from_millis(1_000_000 + 301_000).unwrap();
        let mut nonces = Nonces::new(16, TravelTime::from_secs(300));
        let n = nonces.issue(0, t0);
        assert_eq!(nonces.take(&n, 1, t0), NonceCheck::Stale, "other trunk");
        assert_eq!(nonces.take(&n, 0, t0), NonceCheck::Valid);
        assert_eq!(nonces.take(&n, 0, t0), NonceCheck::Stale, "used once");
        let old = nonces.issue(0, t0);
        assert_eq!(nonces.take(&old, 0, later), NonceCheck::Stale, "expired");

        let first = nonces.issue(0, t0);
        for _ in 0..100 {
            nonces.issue(0, t0);
        }
        assert_eq!(nonces.len(), 16);
        assert_eq!(nonces.take(&first, 0, t0), NonceCheck::Stale, "forgotten");
    }

    #[test]
    fn comparison_needs_every_byte() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
    }
}
