//! The committed clinical vignettes (`tests/cases/*.json`): every case evaluates, no case a
//! clinician rates level I or II is under-triaged, and the agreement is reported.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::BTreeSet;

use triage::batch::{Agreement, Case, CaseInput, evaluate_input, parse_cases};
use triage::{Disposition, ProtocolSet};

fn load_cases() -> Vec<Case> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cases");
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension()
                .is_some_and(|x| x.eq_ignore_ascii_case("json"))
        })
        .collect();
    paths.sort();
    let mut cases = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap();
        for input in parse_cases(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display())) {
            match input {
                CaseInput::Case(c) => cases.push(*c),
                CaseInput::Malformed { id, error } => {
                    panic!("{}: case {id}: {error}", path.display())
                }
            }
        }
    }
    cases
}

#[test]
fn the_vignettes_cover_every_complaint_and_disposition() {
    let cases = load_cases();
    assert!(cases.len() >= 150, "only {} vignettes", cases.len());
    let ids: BTreeSet<_> = cases.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids.len(),
        cases.len(),
        "vignette ids must be unique across files"
    );
    let set = ProtocolSet::builtin().unwrap();
    let complaints: BTreeSet<_> = cases.iter().map(|c| c.chief_complaint.as_str()).collect();
    for (code, _) in set.vocabulary().complaints() {
        assert!(complaints.contains(code), "no vignette for `{code}`");
    }
    let expected: BTreeSet<_> = cases
        .iter()
        .filter_map(|c| c.expected.map(|e| e.disposition))
        .collect();
    for d in Disposition::ALL {
        assert!(expected.contains(&d), "no vignette expects `{d}`");
    }
    assert!(
        cases.iter().all(|c| c.expected.is_some()),
        "every vignette states its expected outcome"
    );
}

#[test]
fn no_vignette_rated_level_one_or_two_is_under_triaged_and_agreement_is_reported() {
    let set = ProtocolSet::builtin().unwrap();
    let cases = load_cases();
    let mut agreement = Agreement::default();
    let mut reached = BTreeSet::new();
    let mut disagreements = Vec::new();
    for case in &cases {
        let input = CaseInput::Case(Box::new(case.clone()));
        let line =
            evaluate_input(set, &input).unwrap_or_else(|e| panic!("{}: {}", case.id, e.error));
        // The fast batch path gives exactly the line of the full outcome record.
        let full = triage::batch::evaluate_case(set, case).unwrap();
        assert_eq!(
            line,
            triage::batch::OutcomeLine::new(&case.id, &full),
            "{}",
            case.id
        );
        reached.insert(line.disposition);
        let expected = case.expected.unwrap();
        agreement.record(&case.id, &expected, &line);
        if (line.level, line.disposition, line.route)
            != (expected.level, expected.disposition, expected.route)
        {
            disagreements.push(format!(
                "  {}: expected {} {} {:?}, got {} {} {:?} ({})",
                case.id,
                expected.level,
                expected.disposition,
                expected.route.map(triage::Route::code),
                line.level,
                line.disposition,
                line.route.map(triage::Route::code),
                line.trace.last().map_or("", |s| s.effect.as_str()),
            ));
        }
    }
    println!(
        "{} vignettes: exact agreement {:.1} % ({}), same level {:.1} % ({}), under-triage {}, over-triage {}",
        agreement.compared,
        agreement.exact_percent(),
        agreement.exact,
        agreement.level_percent(),
        agreement.same_level,
        agreement.under_triage,
        agreement.over_triage,
    );
    for d in &disagreements {
        println!("{d}");
    }
    assert!(
        agreement.critical_under_triage.is_empty(),
        "under-triage of vignettes rated I or II: {:?}",
        agreement.critical_under_triage
    );
    for d in Disposition::ALL {
        assert!(reached.contains(&d), "no vignette reaches `{d}`");
    }
    // A floor, so that a protocol change that breaks many vignettes is noticed.
    assert!(
        agreement.exact_percent() >= 90.0,
        "exact agreement fell to {:.1} %",
        agreement.exact_percent()
    );
}
