//! Problems found while loading protocol files, each with its file and line.

use std::fmt;

use serde::Serialize;

/// One protocol file's text, as handed to the loader (the binary reads the files; the
/// built-in set is embedded in the crate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// The file's name as it should appear in messages (e.g. `protocols/cefalea.toml`).
    pub name: String,
    /// Its text.
    pub text: String,
}

impl SourceFile {
    /// A source file from its name and text.
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            text: text.into(),
        }
    }

    /// The file name without directories and without the `.toml` extension.
    pub fn stem(&self) -> &str {
        let base = self.name.rsplit(['/', '\\']).next().unwrap_or(&self.name);
        base.strip_suffix(".toml").unwrap_or(base)
    }
}

/// What kind of problem (stable codes for `--json` and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The file is not valid TOML or does not have the expected shape (unknown key, wrong
    /// type, missing field).
    Syntax,
    /// A required file (`vocabulario.toml`, `amenazas_vitales.toml`) or protocol is missing,
    /// or a file is duplicated.
    MissingFile,
    /// A code (finding, complaint, level, disposition, route, outcome, context) does not exist.
    UnknownCode,
    /// A malformed value: empty text, bad code syntax, impossible range.
    InvalidValue,
    /// An outcome lacks something (instructions, warning signs) or its level does not fit
    /// its disposition.
    IncompleteOutcome,
    /// The same finding is asked twice, or a rule uses a finding no question asks.
    QuestionProblem,
    /// A question whose answer no reachable rule uses: it would never be asked.
    UnreachableQuestion,
    /// A rule that no combination of answers can reach.
    UnreachableRule,
    /// Two rules with the same conditions but different outcomes: the second never applies.
    ConflictingRules,
    /// A rule that can never be true by itself (a finding required and excluded, …).
    ContradictoryRule,
    /// Rules out of urgency order, or a red flag used to lower urgency.
    UrgencyOrder,
    /// Some combination of answers reaches no rule: a path that does not terminate.
    NonTerminating,
    /// An outcome defined but used by no reachable rule.
    UnusedOutcome,
    /// A chief complaint, disposition or route that no protocol reaches.
    Coverage,
}

/// A problem in a protocol file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The file (as named in its [`SourceFile`]).
    pub file: String,
    /// 1-based line, when the problem has a place.
    pub line: Option<usize>,
    /// What kind of problem.
    pub kind: ProblemKind,
    /// What is wrong, naming the codes involved.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file, line, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Every problem found in a set of protocol files (never empty).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors(pub Vec<Problem>);

impl ValidationErrors {
    /// The problems, in file and line order.
    pub fn problems(&self) -> &[Problem] {
        &self.0
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "{n} problem{} in the triage protocols:",
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.0 {
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}

/// Maps byte offsets of one file to 1-based line numbers.
#[derive(Debug, Clone)]
pub(crate) struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub(crate) fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self { starts }
    }

    pub(crate) fn line(&self, offset: usize) -> usize {
        match self.starts.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }
}

/// Collects problems for one run of the loader.
#[derive(Debug, Default)]
pub(crate) struct Problems {
    pub(crate) list: Vec<Problem>,
}

impl Problems {
    pub(crate) fn push(
        &mut self,
        file: &str,
        line: Option<usize>,
        kind: ProblemKind,
        message: impl Into<String>,
    ) {
        let problem = Problem {
            file: file.to_owned(),
            line,
            kind,
            message: message.into(),
        };
        if !self.list.contains(&problem) {
            self.list.push(problem);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub(crate) fn into_sorted(mut self) -> Vec<Problem> {
        self.list.sort_by(|a, b| {
            (a.file.as_str(), a.line.unwrap_or(0)).cmp(&(b.file.as_str(), b.line.unwrap_or(0)))
        });
        self.list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_index_maps_offsets_to_one_based_lines() {
        let idx = LineIndex::new("a\nbc\n\nd");
        assert_eq!(idx.line(0), 1);
        assert_eq!(idx.line(1), 1);
        assert_eq!(idx.line(2), 2);
        assert_eq!(idx.line(5), 3);
        assert_eq!(idx.line(6), 4);
    }

    #[test]
    fn stem_drops_directories_and_extension() {
        assert_eq!(SourceFile::new("a/b/cefalea.toml", "").stem(), "cefalea");
        assert_eq!(SourceFile::new("cefalea.toml", "").stem(), "cefalea");
    }
}
