//! Findings and chief complaints, as declared in `vocabulario.toml`, and the compact
//! finding sets the engine works with.

use std::collections::HashMap;

use serde::Serialize;

/// The most findings one vocabulary may declare (answers are kept in fixed-size bit sets).
pub const MAX_FINDINGS: usize = 256;

/// Index of a finding in its [`Vocabulary`].
pub(crate) type FindingId = u16;

/// A set of findings (a fixed-size bit set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub(crate) struct FindingSet([u64; MAX_FINDINGS / 64]);

impl FindingSet {
    pub(crate) const EMPTY: Self = Self([0; MAX_FINDINGS / 64]);

    pub(crate) fn insert(&mut self, id: FindingId) {
        let i = usize::from(id);
        self.0[i / 64] |= 1 << (i % 64);
    }

    pub(crate) fn remove(&mut self, id: FindingId) {
        let i = usize::from(id);
        self.0[i / 64] &= !(1 << (i % 64));
    }

    pub(crate) fn contains(&self, id: FindingId) -> bool {
        let i = usize::from(id);
        self.0[i / 64] & (1 << (i % 64)) != 0
    }

    pub(crate) fn union(&self, other: &Self) -> Self {
        let mut out = *self;
        for (a, b) in out.0.iter_mut().zip(other.0) {
            *a |= b;
        }
        out
    }

    pub(crate) fn intersection(&self, other: &Self) -> Self {
        let mut out = *self;
        for (a, b) in out.0.iter_mut().zip(other.0) {
            *a &= b;
        }
        out
    }

    pub(crate) fn difference(&self, other: &Self) -> Self {
        let mut out = *self;
        for (a, b) in out.0.iter_mut().zip(other.0) {
            *a &= !b;
        }
        out
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }

    pub(crate) fn is_subset(&self, other: &Self) -> bool {
        self.difference(other).is_empty()
    }

    pub(crate) fn len(&self) -> u32 {
        self.0.iter().map(|w| w.count_ones()).sum()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = FindingId> + '_ {
        self.0.iter().enumerate().flat_map(|(w, bits)| {
            (0..64).filter_map(move |b| {
                if bits & (1 << b) == 0 {
                    None
                } else {
                    FindingId::try_from(w * 64 + b).ok()
                }
            })
        })
    }
}

/// What a finding means for urgency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A red flag (`alarma`): answering yes may only raise urgency.
    RedFlag,
    /// A symptom or sign that is not a red flag (`sintoma`); like every non-reassuring
    /// finding, its presence may only raise urgency.
    Symptom,
    /// Reassuring (`tranquilizador`): its presence may lower urgency; the only kind a rule
    /// may require to be absent.
    Reassuring,
    /// Circumstances (`contexto`): living alone, far away, …
    Context,
    /// Answered from the caller's data, never asked (`derivado`).
    Derived(Derivation),
}

/// How a derived finding is answered from the caller's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Derivation {
    /// Present when the caller is younger than three months (0.25 years).
    AgeUnder3Months,
    /// Present when the caller is pregnant (pregnancy weeks given).
    Pregnancy,
}

impl Derivation {
    pub(crate) fn from_code(code: &str) -> Option<Self> {
        match code {
            "edad_menor_3_meses" => Some(Self::AgeUnder3Months),
            "embarazo" => Some(Self::Pregnancy),
            _ => None,
        }
    }
}

/// One finding of the vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FindingInfo {
    /// The stable code.
    pub code: String,
    /// Short Spanish label.
    pub label: String,
    /// What it means for urgency.
    pub kind: FindingKind,
}

/// The chief complaints and findings a protocol set may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vocabulary {
    pub(crate) version: String,
    pub(crate) complaints: Vec<(String, String)>,
    pub(crate) findings: Vec<FindingInfo>,
    pub(crate) index: HashMap<String, FindingId>,
    /// The derived findings and how each is derived.
    pub(crate) derived: Vec<(FindingId, Derivation)>,
}

impl Vocabulary {
    /// The vocabulary file's version.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Chief complaints as `(code, Spanish label)`, in code order.
    pub fn complaints(&self) -> impl Iterator<Item = (&str, &str)> {
        self.complaints
            .iter()
            .map(|(c, l)| (c.as_str(), l.as_str()))
    }

    /// Every finding.
    pub fn findings(&self) -> &[FindingInfo] {
        &self.findings
    }

    /// The finding with this code.
    pub fn finding(&self, code: &str) -> Option<&FindingInfo> {
        self.index
            .get(code)
            .map(|id| &self.findings[usize::from(*id)])
    }

    pub(crate) fn derived(&self) -> &[(FindingId, Derivation)] {
        &self.derived
    }

    pub(crate) fn id(&self, code: &str) -> Option<FindingId> {
        self.index.get(code).copied()
    }

    pub(crate) fn info(&self, id: FindingId) -> &FindingInfo {
        &self.findings[usize::from(id)]
    }

    pub(crate) fn code(&self, id: FindingId) -> &str {
        &self.findings[usize::from(id)].code
    }
}

/// True for `snake_case` ASCII codes (`dolor_toracico`).
pub(crate) fn is_valid_code(code: &str) -> bool {
    let mut chars = code.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finding_sets_behave_like_sets() {
        let mut a = FindingSet::EMPTY;
        a.insert(3);
        a.insert(200);
        let mut b = FindingSet::EMPTY;
        b.insert(3);
        assert!(a.contains(200));
        assert!(!a.contains(4));
        assert_eq!(a.len(), 2);
        assert!(b.is_subset(&a));
        assert!(!a.is_subset(&b));
        assert_eq!(a.difference(&b).iter().collect::<Vec<_>>(), vec![200]);
        assert_eq!(a.intersection(&b), b);
        assert_eq!(b.union(&a), a);
        a.remove(200);
        assert_eq!(a, b);
    }

    #[test]
    fn codes_are_lowercase_snake_case() {
        assert!(is_valid_code("dolor_toracico"));
        assert!(is_valid_code("edad_65"));
        assert!(!is_valid_code("Dolor"));
        assert!(!is_valid_code("dolor torácico"));
        assert!(!is_valid_code("_x"));
        assert!(!is_valid_code(""));
    }
}
