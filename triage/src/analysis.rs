//! Static checks of one compiled protocol, exact over every caller and every combination of
//! answers:
//!
//! * callers are split into classes by every age, sex and pregnancy threshold the rules use;
//!   within a class the caller's data decide the same rules;
//! * a rule is **reachable** when some answers make it true and every earlier rule false
//!   (a small backtracking search over the ways to falsify each earlier rule);
//! * the protocol **terminates** when no answers make every rule false (the same search with
//!   an always-true rule appended);
//! * rules that can apply to the same caller go from the most to the least urgent level.
//!   With `ninguno` limited to reassuring findings, a rule's truth can only grow when a red
//!   flag is answered yes, so the first true rule can only move up the list: a red flag never
//!   lowers urgency.

use std::collections::{BTreeMap, BTreeSet};

use crate::caller::{
    Caller, MAX_AGE_YEARS, MAX_PREGNANCY_AGE_YEARS, MAX_PREGNANCY_WEEKS, MIN_PREGNANCY_AGE_YEARS,
};
use crate::codes::{Level, PAEDIATRIC_AGE_LIMIT_YEARS, Sex};
use crate::problem::{ProblemKind, Problems};
use crate::protocol::{FindingCond, Protocol, Tri};
use crate::vocabulary::FindingSet;

/// Search steps allowed per question before giving up (never reached by real protocols).
const SEARCH_BUDGET: u64 = 2_000_000;

/// Which rules of a protocol some caller and answers reach.
#[derive(Debug)]
pub(crate) struct Reach {
    pub(crate) rules: Vec<bool>,
}

pub(crate) fn analyze(p: &Protocol, problems: &mut Problems) -> Reach {
    let groups = rule_groups(p);
    let mut reach = vec![false; p.rules.len()];
    let mut order_reported = BTreeSet::new();
    let mut termination_reported = false;
    for (rules, caller) in &groups {
        check_order(p, rules, caller, &mut order_reported, problems);
        for (k, &ri) in rules.iter().enumerate() {
            if reach[ri] {
                continue;
            }
            let before: Vec<&FindingCond> = rules[..k].iter().map(|&i| &p.rules[i].cond).collect();
            match search(&before, &p.rules[ri].cond) {
                Search::Found(_) | Search::GaveUp => reach[ri] = true,
                Search::Impossible => {}
            }
        }
        if !termination_reported {
            let all: Vec<&FindingCond> = rules.iter().map(|&i| &p.rules[i].cond).collect();
            let fallback = FindingCond::default();
            match search(&all, &fallback) {
                Search::Impossible => {}
                Search::Found(yes) => {
                    let listed: Vec<_> = yes
                        .iter()
                        .map(|f| format!("`{}`", p.vocabulary.code(f)))
                        .collect();
                    let answers = if listed.is_empty() {
                        "answering no to every question".to_owned()
                    } else {
                        format!("answering yes to {} and no to the rest", listed.join(", "))
                    };
                    problems.push(
                        &p.file,
                        None,
                        ProblemKind::NonTerminating,
                        format!(
                            "for a caller {}, {answers}, no rule applies: add a last rule without conditions (a fallback)",
                            describe_caller(caller)
                        ),
                    );
                    termination_reported = true;
                }
                Search::GaveUp => {
                    problems.push(
                        &p.file,
                        None,
                        ProblemKind::NonTerminating,
                        "the rules are too intricate to prove that every path ends; simplify them",
                    );
                    termination_reported = true;
                }
            }
        }
    }
    for (i, rule) in p.rules.iter().enumerate() {
        if reach[i] || rule.contradictory || rule.universal_index.is_some() {
            continue;
        }
        let (kind, message) = explain_unreachable(p, &groups, i);
        problems.push(&rule.file, Some(rule.line), kind, message);
    }
    Reach { rules: reach }
}

fn check_order(
    p: &Protocol,
    rules: &[usize],
    caller: &Caller,
    reported: &mut BTreeSet<usize>,
    problems: &mut Problems,
) {
    let mut least_urgent: Option<(usize, Level)> = None;
    for &ri in rules {
        let level = p.outcomes[p.rules[ri].outcome].level;
        if let Some((prev, prev_level)) = least_urgent
            && level.is_more_urgent_than(prev_level)
            && reported.insert(ri)
        {
            let r = &p.rules[ri];
            let q = &p.rules[prev];
            problems.push(
                    &r.file,
                    Some(r.line),
                    ProblemKind::UrgencyOrder,
                    format!(
                        "rule `{}` (level {level}) comes after rule `{}` (level {prev_level}, {}:{}) and both can apply to a caller {}: order rules from the most to the least urgent so that a red flag never lowers urgency",
                        local(&r.id),
                        q.id,
                        q.file,
                        q.line,
                        describe_caller(caller)
                    ),
                );
        }
        if least_urgent.is_none_or(|(_, l)| l < level) {
            least_urgent = Some((ri, level));
        }
    }
}

fn explain_unreachable(
    p: &Protocol,
    groups: &[(Vec<usize>, Caller)],
    j: usize,
) -> (ProblemKind, String) {
    let rule = &p.rules[j];
    let name = local(&rule.id);
    if !groups.iter().any(|(rules, _)| rules.contains(&j)) {
        return (
            ProblemKind::UnreachableRule,
            format!(
                "rule `{name}` applies to no caller this protocol accepts ({})",
                rule.patient.describe()
            ),
        );
    }
    for i in 0..j {
        let earlier = &p.rules[i];
        if earlier.contradictory {
            continue;
        }
        let covers = groups
            .iter()
            .all(|(rules, _)| !rules.contains(&j) || rules.contains(&i));
        if !covers || !implies(&rule.cond, &earlier.cond) {
            continue;
        }
        let same = rule.cond == earlier.cond && rule.patient == earlier.patient;
        let at = format!("{}:{}", earlier.file, earlier.line);
        if same && rule.outcome != earlier.outcome {
            return (
                ProblemKind::ConflictingRules,
                format!(
                    "rules `{}` ({at}) and `{name}` have the same conditions but different outcomes (`{}` and `{}`): `{name}` never applies",
                    earlier.id, p.outcomes[earlier.outcome].name, p.outcomes[rule.outcome].name
                ),
            );
        }
        if same {
            return (
                ProblemKind::UnreachableRule,
                format!(
                    "rule `{name}` repeats rule `{}` ({at}) and never applies",
                    earlier.id
                ),
            );
        }
        return (
            ProblemKind::UnreachableRule,
            format!(
                "rule `{name}` never applies: whenever it holds, the earlier rule `{}` ({at}) holds too and decides first",
                earlier.id
            ),
        );
    }
    (
        ProblemKind::UnreachableRule,
        format!(
            "rule `{name}` never applies: no combination of answers gets past the earlier rules to it"
        ),
    )
}

/// True when every answer set satisfying `j` satisfies `i` (a sufficient test).
fn implies(j: &FindingCond, i: &FindingCond) -> bool {
    if !i.all.is_subset(&j.all) || !i.none.is_subset(&j.none) {
        return false;
    }
    if i.min == 0 {
        return true;
    }
    let from_all = i.any.intersection(&j.all).len();
    from_all >= i.min
        || (j.min > 0
            && j.any.is_subset(&i.any)
            && j.any.intersection(&j.all).is_empty()
            && from_all + j.min >= i.min)
}

fn local(id: &str) -> &str {
    id.rsplit('.').next().unwrap_or(id)
}

fn describe_caller(c: &Caller) -> String {
    let pregnancy = match c.pregnancy_weeks() {
        Some(w) => format!("pregnant {w} weeks"),
        None => "not pregnant".to_owned(),
    };
    format!("aged {}, sex {}, {pregnancy}", c.age_years(), c.sex())
}

/// Callers that differ in every way the rules can tell apart, grouped by the rules that
/// apply to them (in order), with one representative caller per group.
fn rule_groups(p: &Protocol) -> Vec<(Vec<usize>, Caller)> {
    let mut ages = vec![
        0.0,
        0.25,
        MIN_PREGNANCY_AGE_YEARS,
        PAEDIATRIC_AGE_LIMIT_YEARS,
        MAX_PREGNANCY_AGE_YEARS,
        MAX_AGE_YEARS,
    ];
    let mut weeks = vec![MAX_PREGNANCY_WEEKS];
    ages.extend(p.applicability.age_min);
    ages.extend(p.applicability.age_below);
    for r in &p.rules {
        let (a, w) = r.patient.thresholds();
        ages.extend(a);
        weeks.extend(w);
    }
    let ages = representatives(ages, 0.0, MAX_AGE_YEARS, true);
    let weeks = representatives(weeks, 0.0, MAX_PREGNANCY_WEEKS, false);
    let mut groups: BTreeMap<Vec<usize>, Caller> = BTreeMap::new();
    for &age in &ages {
        for sex in Sex::ALL {
            let pregnancies = std::iter::once(None).chain(weeks.iter().map(|w| Some(*w)));
            for pregnancy in pregnancies {
                let Ok(caller) = Caller::new(age, sex, pregnancy) else {
                    continue;
                };
                if p.applicability.refusal(&caller).is_some() {
                    continue;
                }
                groups.entry(p.rules_for(&caller)).or_insert(caller);
            }
        }
    }
    groups.into_iter().collect()
}

/// Every threshold in the domain and the midpoints between them (so that both sides of an
/// inclusive or exclusive bound are represented).
fn representatives(mut points: Vec<f64>, low: f64, high: f64, low_inclusive: bool) -> Vec<f64> {
    points.retain(|v| v.is_finite() && *v <= high && (*v > low || (low_inclusive && *v >= low)));
    if !low_inclusive {
        let first = points.iter().copied().fold(high, f64::min);
        points.push(f64::midpoint(low, first));
    }
    points.sort_by(f64::total_cmp);
    points.dedup();
    let mids: Vec<f64> = points
        .windows(2)
        .map(|w| f64::midpoint(w[0], w[1]))
        .collect();
    points.extend(mids);
    points.sort_by(f64::total_cmp);
    points
}

#[derive(Debug)]
enum Search {
    /// Answers (the findings present; the rest absent) that make the target the first true
    /// rule.
    Found(FindingSet),
    Impossible,
    GaveUp,
}

/// Is there an answer set making `target` true and every rule of `earlier` false?
fn search(earlier: &[&FindingCond], target: &FindingCond) -> Search {
    if !target.all.intersection(&target.none).is_empty() {
        return Search::Impossible;
    }
    let mut s = Searcher {
        earlier,
        target,
        known: target.all.union(&target.none),
        yes: target.all,
        steps: 0,
    };
    if !s.target_feasible() {
        return Search::Impossible;
    }
    match s.falsify_from(0) {
        Some(true) => {
            let mut yes = s.yes;
            let mut needed = target
                .min
                .saturating_sub(target.any.intersection(&yes).len());
            for f in target.any.difference(&s.known).iter() {
                if needed == 0 {
                    break;
                }
                yes.insert(f);
                needed -= 1;
            }
            Search::Found(yes)
        }
        Some(false) => Search::Impossible,
        None => Search::GaveUp,
    }
}

struct Searcher<'a> {
    earlier: &'a [&'a FindingCond],
    target: &'a FindingCond,
    known: FindingSet,
    yes: FindingSet,
    steps: u64,
}

impl Searcher<'_> {
    fn target_feasible(&self) -> bool {
        let t = self.target;
        t.min == 0
            || t.any.intersection(&self.yes).len() + t.any.difference(&self.known).len() >= t.min
    }

    /// `Some(true)` when rules `i..` can all be made false, `None` when out of budget.
    fn falsify_from(&mut self, i: usize) -> Option<bool> {
        self.steps += 1;
        if self.steps > SEARCH_BUDGET {
            return None;
        }
        let Some(rule) = self.earlier.get(i) else {
            return Some(true);
        };
        match rule.eval(&self.known, &self.yes) {
            Tri::False => return self.falsify_from(i + 1),
            Tri::True => return Some(false),
            Tri::Unknown => {}
        }
        // A required finding answered no.
        for f in rule.all.difference(&self.known).iter() {
            self.known.insert(f);
            if self.target_feasible() && self.falsify_from(i + 1)? {
                return Some(true);
            }
            self.known.remove(f);
        }
        // An excluded (reassuring) finding answered yes.
        for f in rule.none.difference(&self.known).iter() {
            self.known.insert(f);
            self.yes.insert(f);
            if self.target_feasible() && self.falsify_from(i + 1)? {
                return Some(true);
            }
            self.known.remove(f);
            self.yes.remove(f);
        }
        // Too few of `any` present: answer no to enough of the unanswered ones.
        if rule.min > 0 {
            let present = rule.any.intersection(&self.yes).len();
            let open: Vec<_> = rule.any.difference(&self.known).iter().collect();
            let allowed_yes = (rule.min - 1).saturating_sub(present);
            let open_len = u32::try_from(open.len()).unwrap_or(u32::MAX);
            if present < rule.min && open_len > allowed_yes {
                let to_deny = usize::try_from(open_len - allowed_yes).unwrap_or(usize::MAX);
                for combo in combinations(open.len(), to_deny) {
                    for &k in &combo {
                        self.known.insert(open[k]);
                    }
                    if self.target_feasible() && self.falsify_from(i + 1)? {
                        return Some(true);
                    }
                    for &k in &combo {
                        self.known.remove(open[k]);
                    }
                }
            }
        }
        Some(false)
    }
}

/// All `k`-element subsets of `0..n` (small n).
fn combinations(n: usize, k: usize) -> Vec<Vec<usize>> {
    fn go(start: usize, n: usize, k: usize, cur: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        if cur.len() == k {
            out.push(cur.clone());
            return;
        }
        for i in start..n {
            cur.push(i);
            go(i + 1, n, k, cur, out);
            cur.pop();
        }
    }
    let mut out = Vec::new();
    if k <= n {
        go(0, n, k, &mut Vec::new(), &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[u16]) -> FindingSet {
        let mut s = FindingSet::EMPTY;
        for id in ids {
            s.insert(*id);
        }
        s
    }

    fn all(ids: &[u16]) -> FindingCond {
        FindingCond {
            all: set(ids),
            ..FindingCond::default()
        }
    }

    #[test]
    fn a_rule_behind_a_weaker_earlier_rule_is_unreachable() {
        let a = all(&[1]);
        let b = all(&[1, 2]);
        assert!(matches!(search(&[&a], &b), Search::Impossible));
        assert!(matches!(search(&[&b], &a), Search::Found(_)));
    }

    #[test]
    fn a_fallback_is_unreachable_only_when_the_rules_cover_every_answer() {
        let yes1 = all(&[1]);
        let no1 = FindingCond {
            none: set(&[1]),
            ..FindingCond::default()
        };
        let fallback = FindingCond::default();
        assert!(matches!(
            search(&[&yes1, &no1], &fallback),
            Search::Impossible
        ));
        match search(&[&yes1], &fallback) {
            Search::Found(yes) => assert!(yes.is_empty()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn at_least_two_of_three_needs_two_denials_to_falsify() {
        let two_of_three = FindingCond {
            any: set(&[1, 2, 3]),
            min: 2,
            ..FindingCond::default()
        };
        let target = all(&[1]);
        match search(&[&two_of_three], &target) {
            Search::Found(yes) => assert_eq!(yes, set(&[1])),
            other => panic!("{other:?}"),
        }
        let target = all(&[1, 2]);
        assert!(matches!(
            search(&[&two_of_three], &target),
            Search::Impossible
        ));
    }

    #[test]
    fn structural_implication_spots_the_shadowing_rule() {
        assert!(implies(&all(&[1, 2]), &all(&[1])));
        assert!(!implies(&all(&[1]), &all(&[1, 2])));
        let any12 = FindingCond {
            any: set(&[1, 2]),
            min: 1,
            ..FindingCond::default()
        };
        assert!(implies(&all(&[2]), &any12));
        let any1 = FindingCond {
            any: set(&[1]),
            min: 1,
            ..FindingCond::default()
        };
        assert!(implies(&any1, &any12));
    }

    #[test]
    fn representatives_cover_both_sides_of_each_threshold() {
        let r = representatives(vec![0.0, 14.0, 65.0, 120.0], 0.0, 120.0, true);
        assert!(r.contains(&0.0) && r.contains(&7.0) && r.contains(&14.0) && r.contains(&92.5));
        let w = representatives(vec![20.0, 45.0], 0.0, 45.0, false);
        assert!(w.contains(&10.0) && w.contains(&20.0) && w.contains(&32.5) && w.contains(&45.0));
        assert_eq!(combinations(3, 2).len(), 3);
    }
}
