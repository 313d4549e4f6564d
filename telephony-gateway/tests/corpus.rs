//! The RFC 4475-style corpus in `tests/corpus/`, checked at the parser: every case the
//! parser must refuse is refused with the status and reason phrase `cases.toml` gives,
//! every unanswerable one is marked unanswerable, and the valid oddities parse. (The same
//! corpus is replayed against a running gateway in `gateway_udp.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde::Deserialize;
use telephony_gateway::sip::{Limits, Message, is_keepalive, parse_datagram};

#[derive(Debug, Deserialize)]
struct Cases {
    case: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    file: String,
    section: String,
    about: String,
    status: Option<u16>,
    reason: Option<String>,
    #[serde(default)]
    drop: bool,
}

fn corpus() -> Vec<(Case, Vec<u8>)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus");
    let text =
        std::fs::read_to_string(format!("{dir}/cases.toml")).expect("tests/corpus/cases.toml");
    let cases: Cases = toml::from_str(&text).expect("cases.toml is valid");
    cases
        .case
        .into_iter()
        .map(|c| {
            let bytes = std::fs::read(format!("{dir}/{}", c.file))
                .unwrap_or_else(|e| panic!("corpus file {} missing: {e}", c.file));
            (c, bytes)
        })
        .collect()
}

#[test]
fn the_corpus_has_cases_of_every_kind() {
    let cases = corpus();
    assert!(cases.len() >= 50, "{} cases", cases.len());
    assert!(cases.iter().any(|(c, _)| c.drop));
    for status in [100, 200, 400, 415, 416, 420, 501, 505] {
        assert!(
            cases.iter().any(|(c, _)| c.status == Some(status)),
            "no case answered {status}"
        );
    }
    for (case, _) in &cases {
        assert!(
            case.drop != case.status.is_some(),
            "{}: drop xor status",
            case.file
        );
        assert!(!case.section.is_empty() && !case.about.is_empty());
    }
}

#[test]
fn parser_refuses_invalid_cases_with_the_expected_reason_and_accepts_valid_ones() {
    let limits = Limits::default();
    for (case, bytes) in corpus() {
        let result = parse_datagram(&bytes, &limits);
        match (case.drop, case.status) {
            (true, _) => match result {
                Err(e) => assert!(
                    e.salvage.is_none(),
                    "{}: should be unanswerable, got {e}",
                    case.file
                ),
                Ok(_) => assert!(is_keepalive(&bytes), "{}: should be dropped", case.file),
            },
            (false, Some(status @ (400 | 505 | 513))) => {
                let e = result.expect_err(&case.file);
                assert_eq!(e.kind.status(), status, "{}: {e}", case.file);
                assert_eq!(
                    Some(e.kind.reason().as_str()),
                    case.reason.as_deref(),
                    "{}",
                    case.file
                );
                assert!(e.salvage.is_some(), "{}: must be answerable", case.file);
            }
            (false, Some(_)) => {
                let message = result.unwrap_or_else(|e| panic!("{}: refused: {e}", case.file));
                assert!(matches!(message, Message::Request(_)), "{}", case.file);
            }
            (false, None) => unreachable!("checked above"),
        }
    }
}
