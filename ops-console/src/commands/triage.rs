//! `regula triage validate` and `regula triage eval`: the triage protocols from the command
//! line. The protocols are the built-in ones unless `--protocols DIR` names a directory of
//! `*.toml` files; the engine itself lives in the `triage` crate (this module only reads
//! files and prints).

use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

use ::triage::batch::{Agreement, CaseInput, evaluate_input, parse_cases};
use ::triage::{Problem, ProtocolSet, SourceFile, ValidationErrors};
use anyhow::Context;

/// The protocol files of a directory (every `*.toml`, in name order).
fn read_protocol_dir(dir: &Path) -> anyhow::Result<Vec<SourceFile>> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read protocol directory {}", dir.display()))?;
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("cannot list protocol directory {}", dir.display()))?
            .path();
        if path.is_file()
            && path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("toml"))
        {
            paths.push(path);
        }
    }
    if paths.is_empty() {
        anyhow::bail!("no *.toml protocol files in {}", dir.display());
    }
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read protocol file {}", path.display()))?;
            Ok(SourceFile::new(path.display().to_string(), text))
        })
        .collect()
}

/// Loads the protocols: I/O failures are errors; protocol problems are returned.
fn load(dir: Option<&Path>) -> anyhow::Result<Result<ProtocolSet, ValidationErrors>> {
    match dir {
        None => Ok(ProtocolSet::builtin().cloned()),
        Some(dir) => Ok(ProtocolSet::from_sources(&read_protocol_dir(dir)?)),
    }
}

fn source_label(dir: Option<&Path>) -> String {
    dir.map_or_else(
        || "protocolos integrados / built-in protocols".to_owned(),
        |d| d.display().to_string(),
    )
}

pub(crate) fn validate(dir: Option<&Path>, json: bool) -> anyhow::Result<ExitCode> {
    let loaded = load(dir)?;
    let problems: Vec<Problem> = match &loaded {
        Ok(set) => set.coverage_problems(),
        Err(errors) => errors.problems().to_vec(),
    };
    let mut out = std::io::stdout().lock();
    if json {
        let protocols: Vec<_> = loaded
            .as_ref()
            .map(|set| {
                set.protocols()
                    .map(|p| {
                        serde_json::json!({
                            "id": p.id(),
                            "version": p.reference().version,
                            "sha256": p.reference().sha256,
                            "questions": p.question_count(),
                            "rules": p.rule_count(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let report = serde_json::json!({
            "source": dir.map(|d| d.display().to_string()),
            "valid": problems.is_empty(),
            "protocols": protocols,
            "problems": problems,
        });
        writeln!(out, "{report}")?;
    } else if problems.is_empty() {
        if let Ok(set) = &loaded {
            let questions: usize = set.protocols().map(|p| p.question_count()).sum();
            let rules: usize = set.protocols().map(|p| p.rule_count()).sum();
            writeln!(
                out,
                "{}: OK — {} protocolos, {questions} preguntas, {rules} reglas; todas las rutas terminan / all paths terminate",
                source_label(dir),
                set.protocols().count(),
            )?;
        }
    } else {
        let n = problems.len();
        writeln!(
            out,
            "{}: {n} problem{}:",
            source_label(dir),
            if n == 1 { "" } else { "s" }
        )?;
        for p in &problems {
            writeln!(out, "  {p}")?;
        }
    }
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub(crate) fn eval(cases_path: &Path, dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(cases_path)
        .with_context(|| format!("cannot read cases file {}", cases_path.display()))?;
    let inputs = parse_cases(&text).with_context(|| format!("{}", cases_path.display()))?;
    let set = match load(dir)? {
        Ok(set) => set,
        Err(errors) => anyhow::bail!("the protocols cannot be used:\n{errors}"),
    };
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut agreement = Agreement::default();
    let mut failed = 0usize;
    for input in &inputs {
        let line = match evaluate_input(&set, input) {
            Ok(line) => {
                if let CaseInput::Case(case) = input
                    && let Some(expected) = &case.expected
                {
                    agreement.record(&case.id, expected, &line);
                }
                serde_json::to_string(&line)?
            }
            Err(error) => {
                failed += 1;
                serde_json::to_string(&error)?
            }
        };
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    let mut err = std::io::stderr().lock();
    writeln!(
        err,
        "{} casos: {} evaluados, {failed} con error / {} cases: {} evaluated, {failed} with errors",
        inputs.len(),
        inputs.len() - failed,
        inputs.len(),
        inputs.len() - failed,
    )?;
    if agreement.compared > 0 {
        writeln!(
            err,
            "acuerdo con lo esperado / agreement with expected: {:.1} % exacto, {:.1} % en nivel ({} casos); sub-triage {}, sobre-triage {}",
            agreement.exact_percent(),
            agreement.level_percent(),
            agreement.compared,
            agreement.under_triage,
            agreement.over_triage,
        )?;
        if !agreement.critical_under_triage.is_empty() {
            writeln!(
                err,
                "sub-triage de casos esperados en nivel I o II / under-triage of level I–II cases: {}",
                agreement.critical_under_triage.join(", ")
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
