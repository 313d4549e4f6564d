//! The built-in protocols: valid, complete, and faithful to the shared vocabulary.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::BTreeSet;

use triage::{Disposition, FindingKind, ProtocolSet, Route};

const SHARED_VOCABULARY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/triage/vocabulary.md"
);

#[test]
fn the_built_in_protocols_are_valid_and_complete() {
    let set = match ProtocolSet::builtin() {
        Ok(set) => set,
        Err(e) => panic!("{e}"),
    };
    let coverage = set.coverage_problems();
    assert!(coverage.is_empty(), "{coverage:#?}");
    assert_eq!(set.protocols().count(), 32);
    for p in set.protocols() {
        assert_eq!(p.reference().sha256.len(), 64);
        assert!(
            p.question_count() > 12,
            "{} asks only the vital questions",
            p.id()
        );
    }
}

#[test]
fn the_built_in_protocols_load_the_same_from_the_directory() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/protocols");
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension()
                .is_some_and(|x| x.eq_ignore_ascii_case("toml"))
        })
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let embedded: Vec<_> = triage::builtin::FILES
        .iter()
        .map(|(n, _)| (*n).to_owned())
        .collect();
    assert_eq!(
        names, embedded,
        "every protocol file must be embedded in src/builtin.rs"
    );
}

/// Backquoted codes of one section of `vocabulary.md` (from its heading to the next).
fn codes_in_section(text: &str, heading: &str) -> BTreeSet<String> {
    let start = text
        .find(heading)
        .unwrap_or_else(|| panic!("no section {heading}"));
    let rest = &text[start + heading.len()..];
    let end = rest.find("\n## ").unwrap_or(rest.len());
    rest[..end]
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|c| {
            c.chars()
                .all(|ch| ch.is_ascii_lowercase() || ch == '_' || ch.is_ascii_digit())
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_code_of_the_shared_vocabulary_exists_with_the_same_meaning() {
    let text = std::fs::read_to_string(SHARED_VOCABULARY)
        .unwrap_or_else(|e| panic!("{SHARED_VOCABULARY} is needed by this test: {e}"));
    let set = ProtocolSet::builtin().unwrap();
    let vocabulary = set.vocabulary();

    let complaints = codes_in_section(&text, "## Chief complaints");
    let ours: BTreeSet<String> = vocabulary.complaints().map(|(c, _)| c.to_owned()).collect();
    assert_eq!(complaints, ours);

    let findings = codes_in_section(&text, "## Findings");
    assert!(findings.len() > 100, "{findings:?}");
    for code in &findings {
        assert!(
            vocabulary.finding(code).is_some(),
            "finding `{code}` of vocabulary.md is not declared"
        );
    }
    // The two findings that describe the caller are derived from the caller data.
    for code in ["lactante_menor_3_meses", "embarazada"] {
        assert!(matches!(
            vocabulary.finding(code).unwrap().kind,
            FindingKind::Derived(_)
        ));
    }

    let dispositions = codes_in_section(&text, "## Dispositions");
    let ours: BTreeSet<String> = Disposition::ALL
        .iter()
        .map(|d| d.code().to_owned())
        .collect();
    assert!(
        ours.is_subset(&dispositions),
        "{ours:?} vs {dispositions:?}"
    );
    let routes = codes_in_section(&text, "## Specialty routes");
    let ours: BTreeSet<String> = Route::ALL.iter().map(|r| r.code().to_owned()).collect();
    assert_eq!(ours, routes);
}

#[test]
fn every_vital_threat_is_asked_first_in_every_protocol() {
    let set = ProtocolSet::builtin().unwrap();
    let vital = [
        "no_responde",
        "no_respira",
        "respiracion_agonica",
        "convulsion_activa",
        "atragantamiento",
        "sangrado_masivo",
        "estridor",
        "piel_azul_cianosis",
        "no_puede_hablar_frases",
        "palidez_sudoracion_fria",
        "somnolencia_extrema",
        "confusion_nueva",
    ];
    for p in set.protocols() {
        let first: Vec<_> = p.asked_findings().take(vital.len()).collect();
        assert_eq!(first, vital, "{}", p.id());
    }
}
