//! Properties over random callers and answers on the built-in protocols.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use triage::{Caller, FindingKind, PregnancyRequirement, Protocol, ProtocolSet, Sex};

fn set() -> &'static ProtocolSet {
    ProtocolSet::builtin().unwrap()
}

fn protocols() -> Vec<&'static Protocol> {
    set().protocols().map(AsRef::as_ref).collect()
}

/// A caller the protocol accepts, built from random seeds.
fn caller_for(p: &Protocol, age: f64, sex: usize, weeks: f64, pregnant: bool) -> Caller {
    let a = p.applicability();
    let low = a.age_min.unwrap_or(0.0);
    let high = a.age_below.map_or(120.0, |b| b - 0.01);
    let mut age = low + (high - low) * age;
    let mut sex = Sex::ALL[sex % 3];
    if let Some(allowed) = a.sexes.as_ref().filter(|s| !s.contains(&sex)) {
        sex = allowed[0];
    }
    let pregnant = match a.pregnancy {
        PregnancyRequirement::Required => true,
        PregnancyRequirement::Excluded => false,
        PregnancyRequirement::Any => pregnant && sex != Sex::M && (14.0..=45.0).contains(&age),
    };
    let weeks = if pregnant {
        if !(10.0..=60.0).contains(&age) {
            age = 14.0 + 31.0 * (age / 120.0);
        }
        Some(1.0 + 43.0 * weeks)
    } else {
        None
    };
    Caller::new(age, sex, weeks).unwrap()
}

fn findings_of(p: &Protocol, mask: &[bool]) -> Vec<String> {
    p.asked_findings()
        .zip(mask.iter().cycle())
        .filter(|(_, on)| **on)
        .map(|(f, _)| f.to_owned())
        .collect()
}

prop_compose! {
    fn scenario()(
        protocol in 0..32usize,
        age in 0.0..1.0f64,
        sex in 0..3usize,
        weeks in 0.0..1.0f64,
        pregnant in any::<bool>(),
        // Sparse answers: most calls have few positive findings.
        mask in proptest::collection::vec(proptest::bool::weighted(0.12), 64),
        extra in 0..64usize,
    ) -> (usize, f64, usize, f64, bool, Vec<bool>, usize) {
        (protocol, age, sex, weeks, pregnant, mask, extra)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn adding_a_red_flag_never_lowers_urgency(s in scenario()) {
        let (pi, age, sex, weeks, pregnant, mask, extra) = s;
        let all = protocols();
        let p = all[pi];
        let caller = caller_for(p, age, sex, weeks, pregnant);
        let findings = findings_of(p, &mask);
        let flags: Vec<_> = p.red_flags().filter(|f| !findings.iter().any(|x| x == f)).collect();
        prop_assume!(!flags.is_empty());
        let flag = flags[extra % flags.len()];
        let before = set().evaluate(p.id(), caller, &findings).unwrap();
        let mut with_flag = findings.clone();
        with_flag.push(flag.to_owned());
        let after = set().evaluate(p.id(), caller, &with_flag).unwrap();
        prop_assert!(
            after.level() <= before.level(),
            "{}: adding `{flag}` to {findings:?} lowered urgency from {} ({}) to {} ({})",
            p.id(), before.level(), before.computed.rule.id, after.level(), after.computed.rule.id
        );
    }

    #[test]
    fn adding_any_finding_that_is_not_reassuring_never_lowers_the_level(s in scenario()) {
        let (pi, age, sex, weeks, pregnant, mask, extra) = s;
        let all = protocols();
        let p = all[pi];
        let vocabulary = set().vocabulary();
        let caller = caller_for(p, age, sex, weeks, pregnant);
        let findings = findings_of(p, &mask);
        let candidates: Vec<_> = p
            .asked_findings()
            .filter(|f| vocabulary.finding(f).unwrap().kind != FindingKind::Reassuring)
            .filter(|f| !findings.iter().any(|x| x == f))
            .collect();
        prop_assume!(!candidates.is_empty());
        let added = candidates[extra % candidates.len()];
        let before = set().evaluate(p.id(), caller, &findings).unwrap();
        let mut more = findings.clone();
        more.push(added.to_owned());
        let after = set().evaluate(p.id(), caller, &more).unwrap();
        prop_assert!(after.level() <= before.level(), "{}: `{added}` lowered the level", p.id());
    }

    #[test]
    fn every_caller_and_answer_set_ends_in_a_complete_outcome(s in scenario()) {
        let (pi, age, sex, weeks, pregnant, mask, _) = s;
        let all = protocols();
        let p = all[pi];
        let caller = caller_for(p, age, sex, weeks, pregnant);
        let outcome = set().evaluate(p.id(), caller, &findings_of(p, &mask)).unwrap();
        prop_assert!(!outcome.computed.instructions.is_empty());
        prop_assert!(!outcome.trace.is_empty());
        prop_assert!(outcome.disposition().allowed_levels().contains(&outcome.level()));
        prop_assert_eq!(outcome.ambulance(), outcome.disposition().ambulance());
        if outcome.disposition().needs_warning_signs() {
            prop_assert!(!outcome.computed.warning_signs.is_empty());
        }
    }

    #[test]
    fn the_outcome_and_trace_are_a_pure_function_of_the_inputs(s in scenario()) {
        let (pi, age, sex, weeks, pregnant, mask, _) = s;
        let all = protocols();
        let p = all[pi];
        let caller = caller_for(p, age, sex, weeks, pregnant);
        let findings = findings_of(p, &mask);
        let first = set().evaluate(p.id(), caller, &findings).unwrap();
        let second = set().evaluate(p.id(), caller, &findings).unwrap();
        prop_assert_eq!(&first, &second);
        // Driving the session question by question gives the same record.
        let mut session = set().start(p.id(), caller).unwrap();
        while let Some(q) = session.next_question() {
            let finding = q.finding.to_owned();
            let present = findings.contains(&finding);
            session.answer(&finding, present).unwrap();
        }
        prop_assert_eq!(&session.outcome().unwrap(), &first);
        prop_assert_eq!(
            serde_json::to_string(&first).unwrap(),
            serde_json::to_string(&second).unwrap()
        );
    }
}
