//! From protocol file texts to a checked [`ProtocolSet`]: parsing (TOML with spans, so every
//! problem has a line), code resolution and the static checks of [`crate::analysis`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use toml::Spanned;

use crate::analysis;
use crate::codes::{Disposition, Level, Route, Sex};
use crate::format::{
    ApplicabilityDef, ConditionDef, OutcomeDef, ProtocolFile, QuestionDef, RuleDef, UniversalFile,
    VocabularyFile,
};
use crate::problem::{LineIndex, ProblemKind, Problems, SourceFile, ValidationErrors};
use crate::protocol::{
    Applicability, FindingCond, OutcomeSpec, PatientCond, PregnancyRequirement, Protocol,
    ProtocolRef, QuestionSpec, RouteChoice, RuleSpec, sha256_hex,
};
use crate::set::ProtocolSet;
use crate::vocabulary::{
    Derivation, FindingInfo, FindingKind, FindingSet, MAX_FINDINGS, Vocabulary, is_valid_code,
};

/// File name (without `.toml`) of the vocabulary.
pub const VOCABULARY_FILE: &str = "vocabulario";
/// File name (without `.toml`) of the universal vital-threat screen.
pub const UNIVERSAL_FILE: &str = "amenazas_vitales";
/// Outcome route in `amenazas_vitales.toml` meaning "the complaint's vital route".
const ROUTE_FROM_PROTOCOL: &str = "del_protocolo";
/// `[amenaza_vital] ruta` meaning "no specialty route".
const NO_ROUTE: &str = "ninguna";

struct Cx<'p> {
    file: Arc<str>,
    lines: LineIndex,
    problems: &'p mut Problems,
}

impl Cx<'_> {
    fn line<T>(&self, s: &Spanned<T>) -> usize {
        self.lines.line(s.span().start)
    }

    fn at<T>(&mut self, s: &Spanned<T>, kind: ProblemKind, message: impl Into<String>) {
        let line = self.line(s);
        self.problems.push(&self.file, Some(line), kind, message);
    }

    fn whole_file(&mut self, kind: ProblemKind, message: impl Into<String>) {
        self.problems.push(&self.file, None, kind, message);
    }

    fn non_empty(&mut self, s: &Spanned<String>, what: &str) -> bool {
        if s.get_ref().trim().is_empty() {
            self.at(s, ProblemKind::InvalidValue, format!("{what} is empty"));
            false
        } else {
            true
        }
    }
}

fn parse<T: DeserializeOwned>(source: &SourceFile, cx: &mut Cx<'_>) -> Option<T> {
    match toml::from_str::<T>(&source.text) {
        Ok(v) => Some(v),
        Err(e) => {
            let line = e.span().map(|s| cx.lines.line(s.start));
            cx.problems.push(
                &cx.file,
                line,
                ProblemKind::Syntax,
                e.message().trim().to_owned(),
            );
            None
        }
    }
}

fn suggestion<'a>(code: &str, candidates: impl Iterator<Item = &'a str>) -> String {
    let best = candidates
        .map(|c| (strsim::jaro_winkler(code, c), c))
        .filter(|(score, _)| *score > 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match best {
        Some((_, c)) => format!(" (did you mean `{c}`?)"),
        None => String::new(),
    }
}

/// Loads and checks a whole protocol directory's files.
pub(crate) fn load(sources: &[SourceFile]) -> Result<ProtocolSet, ValidationErrors> {
    let mut problems = Problems::default();
    let mut by_stem: BTreeMap<&str, &SourceFile> = BTreeMap::new();
    for source in sources {
        if let Some(previous) = by_stem.insert(source.stem(), source) {
            problems.push(
                &source.name,
                None,
                ProblemKind::MissingFile,
                format!("duplicates {} (same file name)", previous.name),
            );
        }
    }

    let vocabulary = if let Some(src) = by_stem.get(VOCABULARY_FILE) {
        compile_vocabulary(src, &mut problems)
    } else {
        problems.push(
            &format!("{VOCABULARY_FILE}.toml"),
            None,
            ProblemKind::MissingFile,
            "the vocabulary file is missing: every finding and chief complaint is declared there",
        );
        None
    };
    let Some(vocabulary) = vocabulary else {
        return Err(ValidationErrors(problems.into_sorted()));
    };
    let vocabulary = Arc::new(vocabulary);

    let universal = if let Some(src) = by_stem.get(UNIVERSAL_FILE) {
        compile_universal(src, &vocabulary, &mut problems)
    } else {
        problems.push(
            &format!("{UNIVERSAL_FILE}.toml"),
            None,
            ProblemKind::MissingFile,
            "the universal vital-threat file is missing: its questions are asked first for every complaint",
        );
        None
    };
    let Some(universal) = universal else {
        return Err(ValidationErrors(problems.into_sorted()));
    };

    let mut protocols = BTreeMap::new();
    for (stem, src) in &by_stem {
        if *stem == VOCABULARY_FILE || *stem == UNIVERSAL_FILE {
            continue;
        }
        let Some(mut protocol) = compile_protocol(src, &vocabulary, &universal, &mut problems)
        else {
            continue;
        };
        let reach = analysis::analyze(&protocol, &mut problems);
        report_unused(&protocol, &reach, &mut problems);
        protocol.reachable = reach.rules;
        protocols.insert(protocol.reference.id.clone(), Arc::new(protocol));
    }

    if problems.is_empty() {
        let screen = UniversalSummary {
            file: universal.file.to_string(),
            rules: universal
                .rules
                .iter()
                .map(|r| (r.local_id.clone(), r.spec.line, r.spec.contradictory))
                .collect(),
            outcomes: universal
                .outcomes
                .iter()
                .map(|o| (o.spec.name.clone(), o.spec.line))
                .collect(),
        };
        Ok(ProtocolSet::new(
            vocabulary,
            universal.reference,
            screen,
            protocols,
        ))
    } else {
        Err(ValidationErrors(problems.into_sorted()))
    }
}

/// What the completeness checks need to know about the universal file.
#[derive(Debug, Clone)]
pub(crate) struct UniversalSummary {
    pub(crate) file: String,
    /// `(id, line, contradictory)` per rule, in order.
    pub(crate) rules: Vec<(String, usize, bool)>,
    /// `(name, line)` per outcome, in order.
    pub(crate) outcomes: Vec<(String, usize)>,
}

/// Completeness of a correct set: a protocol for every chief complaint, every disposition
/// and route reachable, every universal rule and outcome used by some complaint.
pub(crate) fn coverage(set: &ProtocolSet) -> Vec<crate::problem::Problem> {
    let mut problems = Problems::default();
    let screen = set.universal_summary();
    let mut rule_reached = vec![false; screen.rules.len()];
    let mut outcome_used = vec![false; screen.outcomes.len()];
    let mut dispositions = BTreeSet::new();
    let mut routes = BTreeSet::new();
    for protocol in set.protocols() {
        for (rule, reached) in protocol.rules.iter().zip(&protocol.reachable) {
            if !reached {
                continue;
            }
            if let Some(u) = rule.universal_index {
                rule_reached[u] = true;
            }
            let outcome = &protocol.outcomes[rule.outcome];
            if let Some(u) = outcome.universal_index {
                outcome_used[u] = true;
            }
            dispositions.insert(outcome.disposition);
            routes.extend(outcome.route.adult);
            routes.extend(outcome.route.child);
        }
    }
    for (i, (id, line, contradictory)) in screen.rules.iter().enumerate() {
        if !rule_reached[i] && !contradictory {
            problems.push(
                &screen.file,
                Some(*line),
                ProblemKind::Coverage,
                format!(
                    "rule `{id}` is reached in no protocol (earlier rules always decide first, or no complaint declares its context)"
                ),
            );
        }
    }
    for (i, (name, line)) in screen.outcomes.iter().enumerate() {
        if !outcome_used[i] {
            problems.push(
                &screen.file,
                Some(*line),
                ProblemKind::Coverage,
                format!("outcome `{name}` is used by no reachable rule of any protocol"),
            );
        }
    }
    let vocabulary_file = format!("{VOCABULARY_FILE}.toml");
    for (code, _) in set.vocabulary().complaints() {
        if set.protocol(code).is_none() {
            problems.push(
                &vocabulary_file,
                None,
                ProblemKind::Coverage,
                format!("chief complaint `{code}` has no protocol (expected {code}.toml)"),
            );
        }
    }
    for d in Disposition::ALL {
        if !dispositions.contains(&d) {
            problems.push(
                &vocabulary_file,
                None,
                ProblemKind::Coverage,
                format!("no reachable rule of any protocol leads to disposition `{d}`"),
            );
        }
    }
    for r in Route::ALL {
        if !routes.contains(&r) {
            problems.push(
                &vocabulary_file,
                None,
                ProblemKind::Coverage,
                format!("no reachable rule of any protocol leads to route `{r}`"),
            );
        }
    }
    problems.into_sorted()
}

fn report_unused(protocol: &Protocol, reach: &analysis::Reach, problems: &mut Problems) {
    let mut used = FindingSet::EMPTY;
    let mut used_outcomes = BTreeSet::new();
    for (rule, reached) in protocol.rules.iter().zip(&reach.rules) {
        if *reached {
            used = used.union(&rule.cond.findings());
            used_outcomes.insert(rule.outcome);
        }
    }
    for q in &protocol.questions {
        if *q.source == *protocol.file && !used.contains(q.finding) {
            problems.push(
                &protocol.file,
                Some(q.line),
                ProblemKind::UnreachableQuestion,
                format!(
                    "question about `{}` is never asked: no reachable rule uses that finding",
                    q.code
                ),
            );
        }
    }
    for (i, o) in protocol.outcomes.iter().enumerate() {
        if o.universal_index.is_none() && !used_outcomes.contains(&i) {
            problems.push(
                &protocol.file,
                Some(o.line),
                ProblemKind::UnusedOutcome,
                format!("outcome `{}` is used by no reachable rule", o.name),
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Vocabulary

#[allow(clippy::too_many_lines)] // one check after another, each with its own message
fn compile_vocabulary(source: &SourceFile, problems: &mut Problems) -> Option<Vocabulary> {
    let mut cx = Cx {
        file: Arc::from(source.name.as_str()),
        lines: LineIndex::new(&source.text),
        problems,
    };
    let file: VocabularyFile = parse(source, &mut cx)?;
    let before = cx.problems.list.len();
    cx.non_empty(&file.version, "`version`");
    let mut complaints = Vec::new();
    for (code, label) in &file.motivos {
        if !is_valid_code(code) {
            cx.at(
                label,
                ProblemKind::InvalidValue,
                format!("complaint code `{code}` must be lowercase snake_case"),
            );
        }
        cx.non_empty(label, &format!("label of complaint `{code}`"));
        complaints.push((code.clone(), label.get_ref().clone()));
    }
    if file.hallazgos.len() > MAX_FINDINGS {
        cx.whole_file(
            ProblemKind::InvalidValue,
            format!(
                "{} findings declared; at most {MAX_FINDINGS} are supported",
                file.hallazgos.len()
            ),
        );
        return None;
    }
    let mut findings = Vec::new();
    let mut index = HashMap::new();
    for (code, def) in &file.hallazgos {
        let d = def.get_ref();
        if !is_valid_code(code) {
            cx.at(
                def,
                ProblemKind::InvalidValue,
                format!("finding code `{code}` must be lowercase snake_case"),
            );
        }
        cx.non_empty(&d.etiqueta, &format!("label of finding `{code}`"));
        let kind = match (d.tipo.get_ref().as_str(), &d.de) {
            ("alarma", None) => FindingKind::RedFlag,
            ("sintoma", None) => FindingKind::Symptom,
            ("tranquilizador", None) => FindingKind::Reassuring,
            ("contexto", None) => FindingKind::Context,
            ("derivado", Some(de)) => {
                if let Some(derivation) = Derivation::from_code(de.get_ref()) {
                    FindingKind::Derived(derivation)
                } else {
                    cx.at(
                    de,
                    ProblemKind::UnknownCode,
                    format!(
                        "finding `{code}`: unknown derivation `{}` (known: `edad_menor_3_meses`, `embarazo`)",
                        de.get_ref()
                    ),
                );
                    continue;
                }
            }
            ("derivado", None) => {
                cx.at(
                    &d.tipo,
                    ProblemKind::InvalidValue,
                    format!("derived finding `{code}` needs `de` (how it is derived)"),
                );
                continue;
            }
            ("alarma" | "sintoma" | "tranquilizador" | "contexto", Some(de)) => {
                cx.at(
                    de,
                    ProblemKind::InvalidValue,
                    format!("finding `{code}`: only `derivado` findings take `de`"),
                );
                continue;
            }
            (other, _) => {
                cx.at(
                    &d.tipo,
                    ProblemKind::UnknownCode,
                    format!(
                        "finding `{code}`: unknown tipo `{other}` (alarma, sintoma, tranquilizador, contexto or derivado)"
                    ),
                );
                continue;
            }
        };
        let Ok(id) = u16::try_from(findings.len()) else {
            continue;
        };
        index.insert(code.clone(), id);
        findings.push(FindingInfo {
            code: code.clone(),
            label: d.etiqueta.get_ref().clone(),
            kind,
        });
    }
    if cx.problems.list.len() > before {
        return None;
    }
    let derived = findings
        .iter()
        .enumerate()
        .filter_map(|(i, f)| match f.kind {
            FindingKind::Derived(d) => u16::try_from(i).ok().map(|id| (id, d)),
            _ => None,
        })
        .collect();
    Some(Vocabulary {
        version: file.version.into_inner(),
        complaints,
        findings,
        index,
        derived,
    })
}

// ---------------------------------------------------------------------------------------
// Universal vital-threat screen

pub(crate) struct UniversalRule {
    pub(crate) spec: RuleSpec,
    pub(crate) local_id: String,
    pub(crate) context: Option<String>,
}

pub(crate) struct UniversalOutcome {
    pub(crate) spec: OutcomeSpec,
    pub(crate) from_protocol: bool,
}

pub(crate) struct Universal {
    pub(crate) reference: ProtocolRef,
    pub(crate) file: Arc<str>,
    pub(crate) contexts: Vec<String>,
    pub(crate) questions: Vec<QuestionSpec>,
    pub(crate) rules: Vec<UniversalRule>,
    pub(crate) outcomes: Vec<UniversalOutcome>,
}

#[allow(clippy::too_many_lines)] // one check after another, each with its own message
fn compile_universal(
    source: &SourceFile,
    vocab: &Vocabulary,
    problems: &mut Problems,
) -> Option<Universal> {
    let mut cx = Cx {
        file: Arc::from(source.name.as_str()),
        lines: LineIndex::new(&source.text),
        problems,
    };
    let file: UniversalFile = parse(source, &mut cx)?;
    let before = cx.problems.list.len();
    if file.id.get_ref() != UNIVERSAL_FILE {
        cx.at(
            &file.id,
            ProblemKind::InvalidValue,
            format!(
                "id `{}` must be `{UNIVERSAL_FILE}` (the file name)",
                file.id.get_ref()
            ),
        );
    }
    cx.non_empty(&file.version, "`version`");
    cx.non_empty(&file.titulo, "`titulo`");
    let mut contexts = Vec::new();
    for c in &file.contextos {
        if !is_valid_code(c.get_ref()) {
            cx.at(
                c,
                ProblemKind::InvalidValue,
                format!("context `{}` must be snake_case", c.get_ref()),
            );
        }
        contexts.push(c.get_ref().clone());
    }
    let questions = compile_questions(&file.pregunta, vocab, &mut cx, &[]);
    let (outcomes, names) = compile_outcomes(&file.resultado, &mut cx, true, 0);
    let rules = compile_rules(
        &file.regla,
        vocab,
        &mut cx,
        &names,
        UNIVERSAL_FILE,
        Some(&contexts),
    );
    let asked: FindingSet = questions.iter().fold(FindingSet::EMPTY, |mut s, q| {
        s.insert(q.finding);
        s
    });
    check_rules_use_asked_findings(rules.iter().map(|r| &r.0), &asked, vocab, &mut cx);
    let mut used = FindingSet::EMPTY;
    for (rule, _) in &rules {
        used = used.union(&rule.cond.findings());
    }
    for q in &questions {
        if !used.contains(q.finding) {
            cx.problems.push(
                &cx.file,
                Some(q.line),
                ProblemKind::UnreachableQuestion,
                format!(
                    "question about `{}` is never asked: no rule uses that finding",
                    q.code
                ),
            );
        }
    }
    if cx.problems.list.len() > before {
        return None;
    }
    let rules = rules
        .into_iter()
        .zip(&file.regla)
        .enumerate()
        .map(|(i, ((mut spec, context), def))| {
            spec.universal_index = Some(i);
            UniversalRule {
                spec,
                local_id: def.id.get_ref().clone(),
                context,
            }
        })
        .collect();
    let outcomes = outcomes
        .into_iter()
        .enumerate()
        .map(|(i, (mut spec, from_protocol))| {
            spec.universal_index = Some(i);
            UniversalOutcome {
                spec,
                from_protocol,
            }
        })
        .collect();
    Some(Universal {
        reference: ProtocolRef {
            id: file.id.into_inner(),
            version: file.version.into_inner(),
            sha256: sha256_hex(&source.text),
        },
        file: cx.file.clone(),
        contexts,
        questions,
        rules,
        outcomes,
    })
}

// ---------------------------------------------------------------------------------------
// Complaint protocols

#[allow(clippy::too_many_lines)] // one check after another, each with its own message
fn compile_protocol(
    source: &SourceFile,
    vocab: &Arc<Vocabulary>,
    universal: &Universal,
    problems: &mut Problems,
) -> Option<Protocol> {
    let mut cx = Cx {
        file: Arc::from(source.name.as_str()),
        lines: LineIndex::new(&source.text),
        problems,
    };
    let file: ProtocolFile = parse(source, &mut cx)?;
    let before = cx.problems.list.len();
    let id = file.id.get_ref().clone();
    if id != source.stem() {
        cx.at(
            &file.id,
            ProblemKind::InvalidValue,
            format!("id `{id}` must match the file name `{}`", source.stem()),
        );
    }
    if !vocab.complaints.iter().any(|(c, _)| *c == id) {
        let hint = suggestion(&id, vocab.complaints.iter().map(|(c, _)| c.as_str()));
        cx.at(
            &file.id,
            ProblemKind::UnknownCode,
            format!("`{id}` is not a chief complaint of {VOCABULARY_FILE}.toml{hint}"),
        );
    }
    cx.non_empty(&file.version, "`version`");
    cx.non_empty(&file.titulo, "`titulo`");
    let applicability = match &file.aplica {
        Some(a) => compile_applicability(a, &mut cx),
        None => Applicability::ANY,
    };

    // How this complaint fills the vital-threat outcomes.
    let vital = file.amenaza_vital.get_ref();
    let adult = parse_route_or_none(&vital.ruta, &mut cx);
    let child = match &vital.ruta_pediatrica {
        Some(r) => parse_route_or_none(r, &mut cx),
        None => adult,
    };
    let mut contexts = Vec::new();
    for c in &vital.contextos {
        if universal.contexts.contains(c.get_ref()) {
            contexts.push(c.get_ref().clone());
        } else {
            let hint = suggestion(c.get_ref(), universal.contexts.iter().map(String::as_str));
            cx.at(
                c,
                ProblemKind::UnknownCode,
                format!(
                    "context `{}` is not declared in {UNIVERSAL_FILE}.toml{hint}",
                    c.get_ref()
                ),
            );
        }
    }

    let own_questions = compile_questions(&file.pregunta, vocab, &mut cx, &universal.questions);
    let offset = universal.outcomes.len();
    let (own_outcomes, names) = compile_outcomes(&file.resultado, &mut cx, false, offset);
    let own_rules = compile_rules(&file.regla, vocab, &mut cx, &names, &id, None);

    let mut questions = universal.questions.clone();
    questions.extend(own_questions);
    let asked = questions.iter().fold(FindingSet::EMPTY, |mut s, q| {
        s.insert(q.finding);
        s
    });
    check_rules_use_asked_findings(own_rules.iter().map(|r| &r.0), &asked, vocab, &mut cx);
    if file.regla.is_empty() {
        cx.whole_file(ProblemKind::NonTerminating, "the protocol has no rules");
    }
    if cx.problems.list.len() > before {
        return None;
    }

    let mut outcomes: Vec<OutcomeSpec> = universal
        .outcomes
        .iter()
        .map(|u| {
            let mut spec = u.spec.clone();
            if u.from_protocol {
                spec.route = RouteChoice { adult, child };
            }
            spec
        })
        .collect();
    outcomes.extend(own_outcomes.into_iter().map(|(spec, _)| spec));
    let mut rules: Vec<RuleSpec> = universal
        .rules
        .iter()
        .filter(|r| r.context.as_ref().is_none_or(|c| contexts.contains(c)))
        .map(|r| r.spec.clone())
        .collect();
    rules.extend(own_rules.into_iter().map(|(spec, _)| spec));

    Some(Protocol {
        reachable: Vec::new(),
        reference: ProtocolRef {
            id,
            version: file.version.into_inner(),
            sha256: sha256_hex(&source.text),
        },
        vital_screen: universal.reference.clone(),
        title: file.titulo.into_inner(),
        description: file.descripcion.map(Spanned::into_inner),
        applicability,
        questions,
        rules,
        outcomes,
        vocabulary: Arc::clone(vocab),
        file: cx.file.clone(),
    })
}

fn parse_route_or_none(s: &Spanned<String>, cx: &mut Cx<'_>) -> Option<Route> {
    let code = s.get_ref();
    if code == NO_ROUTE {
        return None;
    }
    let route = Route::from_code(code);
    if route.is_none() {
        let hint = suggestion(code, Route::ALL.iter().map(|r| r.code()));
        cx.at(
            s,
            ProblemKind::UnknownCode,
            format!("unknown route `{code}` (use a route code or `{NO_ROUTE}`){hint}"),
        );
    }
    route
}

fn compile_sexes(list: &[Spanned<String>], cx: &mut Cx<'_>) -> Vec<Sex> {
    let mut sexes = Vec::new();
    for s in list {
        match Sex::from_code(s.get_ref()) {
            Some(sex) => sexes.push(sex),
            None => cx.at(
                s,
                ProblemKind::UnknownCode,
                format!("unknown sex `{}` (F, M or X)", s.get_ref()),
            ),
        }
    }
    if list.is_empty() {
        cx.whole_file(
            ProblemKind::InvalidValue,
            "`sexo` must list at least one of F, M, X",
        );
    }
    sexes
}

fn check_age(value: &Spanned<f64>, what: &str, cx: &mut Cx<'_>) {
    let v = *value.get_ref();
    if !(0.0..=crate::caller::MAX_AGE_YEARS).contains(&v) {
        cx.at(
            value,
            ProblemKind::InvalidValue,
            format!("`{what}` = {v} is not an age between 0 and 120"),
        );
    }
}

fn compile_applicability(a: &Spanned<ApplicabilityDef>, cx: &mut Cx<'_>) -> Applicability {
    let d = a.get_ref();
    for (v, what) in [
        (&d.edad_min, "edad_min"),
        (&d.edad_menor_que, "edad_menor_que"),
    ] {
        if let Some(v) = v {
            check_age(v, what, cx);
        }
    }
    if let (Some(min), Some(below)) = (&d.edad_min, &d.edad_menor_que)
        && min.get_ref() >= below.get_ref()
    {
        cx.at(
            a,
            ProblemKind::InvalidValue,
            "`[aplica]`: `edad_min` must be below `edad_menor_que`",
        );
    }
    let pregnancy = match d.embarazo.as_ref().map(|e| e.get_ref().as_str()) {
        None => PregnancyRequirement::Any,
        Some("requerido") => PregnancyRequirement::Required,
        Some("excluido") => PregnancyRequirement::Excluded,
        Some(other) => {
            if let Some(e) = &d.embarazo {
                cx.at(
                    e,
                    ProblemKind::UnknownCode,
                    format!("`embarazo` = `{other}`: use `requerido` or `excluido`"),
                );
            }
            PregnancyRequirement::Any
        }
    };
    Applicability {
        age_min: d.edad_min.as_ref().map(|v| *v.get_ref()),
        age_below: d.edad_menor_que.as_ref().map(|v| *v.get_ref()),
        sexes: d.sexo.as_ref().map(|s| compile_sexes(s, cx)),
        pregnancy,
        suggestion: d.sugerencia.as_ref().map(|s| s.get_ref().clone()),
    }
}

// ---------------------------------------------------------------------------------------
// Shared parts: questions, outcomes, rules

fn compile_questions(
    defs: &[QuestionDef],
    vocab: &Vocabulary,
    cx: &mut Cx<'_>,
    earlier: &[QuestionSpec],
) -> Vec<QuestionSpec> {
    let mut out: Vec<QuestionSpec> = Vec::new();
    for def in defs {
        let code = def.hallazgo.get_ref();
        let Some(id) = vocab.id(code) else {
            let hint = suggestion(code, vocab.findings.iter().map(|f| f.code.as_str()));
            cx.at(
                &def.hallazgo,
                ProblemKind::UnknownCode,
                format!("unknown finding `{code}`{hint}"),
            );
            continue;
        };
        if let FindingKind::Derived(_) = vocab.info(id).kind {
            cx.at(
                &def.hallazgo,
                ProblemKind::QuestionProblem,
                format!("`{code}` is derived from the caller's data and cannot be asked"),
            );
            continue;
        }
        if let Some(prev) = earlier.iter().chain(out.iter()).find(|q| q.finding == id) {
            cx.at(
                &def.hallazgo,
                ProblemKind::QuestionProblem,
                format!(
                    "`{code}` is already asked at {}:{}; each finding is asked once",
                    prev.source, prev.line
                ),
            );
            continue;
        }
        let text_ok = cx.non_empty(&def.texto, &format!("question text for `{code}`"));
        if text_ok {
            let t = def.texto.get_ref().trim();
            if !(t.contains('¿') && t.ends_with('?')) {
                cx.at(
                    &def.texto,
                    ProblemKind::InvalidValue,
                    format!("question text for `{code}` must be a question (¿…?) answered sí/no"),
                );
            }
        }
        cx.non_empty(&def.por_que, &format!("`por_que` for `{code}`"));
        out.push(QuestionSpec {
            finding: id,
            code: code.clone(),
            text: def.texto.get_ref().trim().to_owned(),
            why: def.por_que.get_ref().trim().to_owned(),
            source: cx.file.clone(),
            line: cx.line(&def.hallazgo),
        });
    }
    out
}

/// Outcome name → index in the protocol's outcome list (`None` for an outcome already
/// reported as broken, so that rules naming it are not reported again).
type OutcomeNames = HashMap<String, Option<usize>>;

/// Outcomes of a file, with a flag for `ruta = "del_protocolo"`; names map to the index in
/// the protocol's outcome list (`offset` + position).
#[allow(clippy::too_many_lines)] // one check after another, each with its own message
fn compile_outcomes(
    defs: &BTreeMap<String, Spanned<OutcomeDef>>,
    cx: &mut Cx<'_>,
    universal: bool,
    offset: usize,
) -> (Vec<(OutcomeSpec, bool)>, OutcomeNames) {
    let mut out = Vec::new();
    let mut names = HashMap::new();
    for (name, def) in defs {
        let d = def.get_ref();
        if !is_valid_code(name) {
            cx.at(
                def,
                ProblemKind::InvalidValue,
                format!("outcome name `{name}` must be snake_case"),
            );
        }
        let level = Level::from_code(d.nivel.get_ref());
        if level.is_none() {
            cx.at(
                &d.nivel,
                ProblemKind::UnknownCode,
                format!(
                    "outcome `{name}`: unknown level `{}` (I, II, III, IV or V)",
                    d.nivel.get_ref()
                ),
            );
        }
        let disposition = Disposition::from_code(d.disposicion.get_ref());
        if disposition.is_none() {
            let hint = suggestion(
                d.disposicion.get_ref(),
                Disposition::ALL.iter().map(|d| d.code()),
            );
            cx.at(
                &d.disposicion,
                ProblemKind::UnknownCode,
                format!(
                    "outcome `{name}`: unknown disposition `{}`{hint}",
                    d.disposicion.get_ref()
                ),
            );
        }
        let mut from_protocol = false;
        let route = match &d.ruta {
            None => None,
            Some(r) if universal && r.get_ref() == ROUTE_FROM_PROTOCOL => {
                from_protocol = true;
                None
            }
            Some(r) => {
                let route = Route::from_code(r.get_ref());
                if route.is_none() {
                    let hint = suggestion(r.get_ref(), Route::ALL.iter().map(|r| r.code()));
                    cx.at(
                        r,
                        ProblemKind::UnknownCode,
                        format!("outcome `{name}`: unknown route `{}`{hint}", r.get_ref()),
                    );
                }
                route
            }
        };
        cx.non_empty(&d.resumen, &format!("outcome `{name}`: `resumen`"));
        if d.instrucciones.is_empty() {
            cx.at(
                def,
                ProblemKind::IncompleteOutcome,
                format!("outcome `{name}` has no `instrucciones` to read to the caller"),
            );
        }
        for i in &d.instrucciones {
            cx.non_empty(i, &format!("outcome `{name}`: an instruction"));
        }
        for s in &d.signos_alarma {
            cx.non_empty(s, &format!("outcome `{name}`: a warning sign"));
        }
        let (Some(level), Some(disposition)) = (level, disposition) else {
            // Already reported; rules naming it are not reported again.
            names.insert(name.clone(), None);
            continue;
        };
        {
            if !disposition.allowed_levels().contains(&level) {
                let allowed: Vec<_> = disposition
                    .allowed_levels()
                    .iter()
                    .map(|l| l.code())
                    .collect();
                cx.at(
                    &d.nivel,
                    ProblemKind::IncompleteOutcome,
                    format!(
                        "outcome `{name}`: level {level} does not fit disposition `{disposition}` (allowed: {})",
                        allowed.join(", ")
                    ),
                );
            }
            if disposition.needs_warning_signs() && d.signos_alarma.is_empty() {
                cx.at(
                    def,
                    ProblemKind::IncompleteOutcome,
                    format!(
                        "outcome `{name}` ({disposition}) leaves the caller at home and needs `signos_alarma` (when to call back)"
                    ),
                );
            }
            names.insert(name.clone(), Some(offset + out.len()));
            out.push((
                OutcomeSpec {
                    name: name.clone(),
                    line: cx.line(def),
                    level,
                    disposition,
                    route: RouteChoice::fixed(route),
                    summary: d.resumen.get_ref().trim().to_owned(),
                    instructions: d
                        .instrucciones
                        .iter()
                        .map(|i| i.get_ref().trim().to_owned())
                        .collect(),
                    warning_signs: d
                        .signos_alarma
                        .iter()
                        .map(|i| i.get_ref().trim().to_owned())
                        .collect(),
                    universal_index: None,
                },
                from_protocol,
            ));
        }
    }
    (out, names)
}

fn resolve_findings(
    list: &[Spanned<String>],
    vocab: &Vocabulary,
    cx: &mut Cx<'_>,
    rule: &str,
) -> (FindingSet, Vec<(crate::vocabulary::FindingId, usize)>) {
    let mut set = FindingSet::EMPTY;
    let mut with_lines = Vec::new();
    for s in list {
        if let Some(id) = vocab.id(s.get_ref()) {
            set.insert(id);
            with_lines.push((id, cx.line(s)));
        } else {
            let hint = suggestion(s.get_ref(), vocab.findings.iter().map(|f| f.code.as_str()));
            cx.at(
                s,
                ProblemKind::UnknownCode,
                format!("rule `{rule}`: unknown finding `{}`{hint}", s.get_ref()),
            );
        }
    }
    (set, with_lines)
}

fn compile_rules(
    defs: &[RuleDef],
    vocab: &Vocabulary,
    cx: &mut Cx<'_>,
    outcomes: &OutcomeNames,
    protocol_id: &str,
    universal_contexts: Option<&[String]>,
) -> Vec<(RuleSpec, Option<String>)> {
    let mut out = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for def in defs {
        let rule = def.id.get_ref().clone();
        let line = cx.line(&def.id);
        if !is_valid_code(&rule) {
            cx.at(
                &def.id,
                ProblemKind::InvalidValue,
                format!("rule id `{rule}` must be snake_case"),
            );
        }
        if let Some(prev) = seen.insert(rule.clone(), line) {
            cx.at(
                &def.id,
                ProblemKind::InvalidValue,
                format!("rule id `{rule}` is already used at line {prev}"),
            );
        }
        cx.non_empty(&def.motivo, &format!("rule `{rule}`: `motivo`"));
        let outcome = outcomes.get(def.resultado.get_ref()).copied();
        if outcome.is_none() {
            let hint = suggestion(def.resultado.get_ref(), outcomes.keys().map(String::as_str));
            cx.at(
                &def.resultado,
                ProblemKind::UnknownCode,
                format!(
                    "rule `{rule}`: outcome `{}` is not defined in this file{hint}",
                    def.resultado.get_ref()
                ),
            );
        }
        let (patient, cond, contradictory, context) =
            compile_condition(&def.cuando, vocab, cx, &rule, line, universal_contexts);
        if let Some(Some(outcome)) = outcome {
            out.push((
                RuleSpec {
                    id: format!("{protocol_id}.{rule}"),
                    file: cx.file.clone(),
                    line,
                    patient,
                    mentions: cond.findings(),
                    cond,
                    outcome,
                    reason: def.motivo.get_ref().trim().to_owned(),
                    universal_index: None,
                    contradictory,
                },
                context,
            ));
        }
    }
    out
}

#[allow(clippy::too_many_lines)] // one check after another, each with its own message
fn compile_condition(
    c: &ConditionDef,
    vocab: &Vocabulary,
    cx: &mut Cx<'_>,
    rule: &str,
    line: usize,
    universal_contexts: Option<&[String]>,
) -> (PatientCond, FindingCond, bool, Option<String>) {
    let mut contradictory = false;
    let contradiction = |cx: &mut Cx<'_>, message: String| {
        cx.problems.push(
            &cx.file,
            Some(line),
            ProblemKind::ContradictoryRule,
            message,
        );
    };
    let (all, _) = resolve_findings(&c.todos, vocab, cx, rule);
    let (any, _) = resolve_findings(&c.alguno, vocab, cx, rule);
    let (none, none_lines) = resolve_findings(&c.ninguno, vocab, cx, rule);
    for (id, l) in &none_lines {
        let info = vocab.info(*id);
        if info.kind != FindingKind::Reassuring {
            cx.problems.push(
                &cx.file,
                Some(*l),
                ProblemKind::UrgencyOrder,
                format!(
                    "rule `{rule}`: `ninguno` lists `{}`, which is not a reassuring finding (tipo `tranquilizador`); requiring a red flag or context to be absent would let a yes answer lower urgency",
                    info.code
                ),
            );
        }
    }
    let min = match (&c.minimo, any.is_empty()) {
        (None, true) => 0,
        (None, false) => 1,
        (Some(m), true) => {
            cx.at(
                m,
                ProblemKind::InvalidValue,
                format!("rule `{rule}`: `minimo` without `alguno`"),
            );
            0
        }
        (Some(m), false) => {
            let v = *m.get_ref();
            if v < 1 || v > i64::from(any.len()) {
                cx.at(
                    m,
                    ProblemKind::ContradictoryRule,
                    format!(
                        "rule `{rule}`: `minimo` = {v} but `alguno` lists {} findings",
                        any.len()
                    ),
                );
                contradictory = true;
            }
            u32::try_from(v.max(0)).unwrap_or(0)
        }
    };
    if !all.intersection(&none).is_empty() {
        let codes: Vec<_> = all
            .intersection(&none)
            .iter()
            .map(|f| vocab.code(f).to_owned())
            .collect();
        contradiction(
            cx,
            format!(
                "rule `{rule}` requires and excludes `{}`: it can never apply",
                codes.join("`, `")
            ),
        );
        contradictory = true;
    }
    if min > 0 && any.difference(&none).len() < min {
        contradiction(
            cx,
            format!("rule `{rule}`: `alguno` cannot be met because its findings are in `ninguno`"),
        );
        contradictory = true;
    }
    for (v, what) in [
        (&c.edad_min, "edad_min"),
        (&c.edad_menor_que, "edad_menor_que"),
    ] {
        if let Some(v) = v {
            check_age(v, what, cx);
        }
    }
    if let (Some(a), Some(b)) = (&c.edad_min, &c.edad_menor_que)
        && a.get_ref() >= b.get_ref()
    {
        contradiction(
            cx,
            format!(
                "rule `{rule}`: `edad_min` {} is not below `edad_menor_que` {}: no age fits",
                a.get_ref(),
                b.get_ref()
            ),
        );
        contradictory = true;
    }
    if let (Some(a), Some(b)) = (&c.semanas_min, &c.semanas_menor_que)
        && a.get_ref() >= b.get_ref()
    {
        contradiction(
            cx,
            format!("rule `{rule}`: `semanas_min` is not below `semanas_menor_que`"),
        );
        contradictory = true;
    }
    let sexes = c.sexo.as_ref().map(|s| compile_sexes(s, cx));
    let weeks_given = c.semanas_min.is_some() || c.semanas_menor_que.is_some();
    let mut pregnant = c.embarazo.as_ref().map(|e| *e.get_ref());
    if weeks_given {
        if pregnant == Some(false) {
            contradiction(
                cx,
                format!("rule `{rule}`: pregnancy weeks with `embarazo = false`"),
            );
            contradictory = true;
        }
        pregnant = Some(true);
    }
    if pregnant == Some(true)
        && sexes
            .as_ref()
            .is_some_and(|s| !s.is_empty() && s.iter().all(|s| *s == Sex::M))
    {
        contradiction(cx, format!("rule `{rule}`: pregnancy with sex M only"));
        contradictory = true;
    }
    let context = match (&c.contexto, universal_contexts) {
        (None, _) => None,
        (Some(ctx), None) => {
            cx.at(
                ctx,
                ProblemKind::InvalidValue,
                format!("rule `{rule}`: `contexto` is only for rules of {UNIVERSAL_FILE}.toml"),
            );
            None
        }
        (Some(ctx), Some(declared)) => {
            if !declared.contains(ctx.get_ref()) {
                cx.at(
                    ctx,
                    ProblemKind::UnknownCode,
                    format!(
                        "rule `{rule}`: context `{}` is not declared in `contextos`",
                        ctx.get_ref()
                    ),
                );
            }
            Some(ctx.get_ref().clone())
        }
    };
    (
        PatientCond {
            age_min: c.edad_min.as_ref().map(|v| *v.get_ref()),
            age_below: c.edad_menor_que.as_ref().map(|v| *v.get_ref()),
            sexes,
            pregnant,
            weeks_min: c.semanas_min.as_ref().map(|v| *v.get_ref()),
            weeks_below: c.semanas_menor_que.as_ref().map(|v| *v.get_ref()),
        },
        FindingCond {
            all,
            any,
            min,
            none,
        },
        contradictory,
        context,
    )
}

fn check_rules_use_asked_findings<'r>(
    rules: impl Iterator<Item = &'r RuleSpec>,
    asked: &FindingSet,
    vocab: &Vocabulary,
    cx: &mut Cx<'_>,
) {
    for rule in rules {
        for f in rule.cond.findings().difference(asked).iter() {
            if matches!(vocab.info(f).kind, FindingKind::Derived(_)) {
                continue;
            }
            cx.problems.push(
                &cx.file,
                Some(rule.line),
                ProblemKind::QuestionProblem,
                format!(
                    "rule `{}` uses `{}`, which no question asks",
                    rule.id.rsplit('.').next().unwrap_or(&rule.id),
                    vocab.code(f)
                ),
            );
        }
    }
}
