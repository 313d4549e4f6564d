//! `regula triage validate` and `regula triage eval` through the real binary.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::path::PathBuf;
use std::process::{Command, Output};

const PROTOCOLS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../triage/protocols");
const VIGNETTES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../triage/tests/cases/materno.json"
);

fn regula(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_regula"))
        .args(args)
        .output()
        .unwrap()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("regula-triage-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn temp_file(name: &str, text: &str) -> PathBuf {
    let path = temp_dir(name).join("cases.json");
    std::fs::write(&path, text).unwrap();
    path
}

/// A copy of the built-in protocol directory.
fn protocol_copy(name: &str) -> PathBuf {
    let dir = temp_dir(name);
    for entry in std::fs::read_dir(PROTOCOLS).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    dir
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn validate_accepts_the_built_in_protocols() {
    let o = regula(&["triage", "validate"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("OK — 32 protocolos"), "{out}");
}

#[test]
fn validate_json_lists_every_protocol_with_its_hash() {
    let o = regula(&["triage", "validate", "--json"]);
    assert!(o.status.success());
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["valid"], true);
    let protocols = report["protocols"].as_array().unwrap();
    assert_eq!(protocols.len(), 32);
    assert!(
        protocols
            .iter()
            .all(|p| p["sha256"].as_str().unwrap().len() == 64)
    );
}

#[test]
fn validate_accepts_a_directory_copy_of_the_built_in_protocols() {
    let dir = protocol_copy("copy");
    let o = regula(&["triage", "validate", "--protocols", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
}

#[test]
fn validate_reports_a_broken_protocol_with_file_and_line() {
    let dir = protocol_copy("broken");
    let file = dir.join("cefalea.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    let broken = text.replacen(
        "hallazgo = \"rigidez_nuca\"",
        "hallazgo = \"rigidez_de_nuca\"",
        1,
    );
    std::fs::write(&file, &broken).unwrap();
    let line = broken
        .lines()
        .position(|l| l.contains("rigidez_de_nuca"))
        .unwrap()
        + 1;
    let o = regula(&["triage", "validate", "--protocols", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    let expected = format!(
        "cefalea.toml:{line}: unknown finding `rigidez_de_nuca` (did you mean `rigidez_nuca`?)"
    );
    assert!(out.contains(&expected), "{out}");

    let o = regula(&[
        "triage",
        "validate",
        "--protocols",
        dir.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["valid"], false);
    let problem = &report["problems"][0];
    assert_eq!(problem["kind"], "unknown_code");
    assert_eq!(problem["line"], line);
}

#[test]
fn validate_reports_a_missing_complaint_as_incomplete() {
    let dir = protocol_copy("incomplete");
    std::fs::remove_file(dir.join("problema_ojo.toml")).unwrap();
    let o = regula(&["triage", "validate", "--protocols", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("chief complaint `problema_ojo` has no protocol"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn validate_on_a_missing_directory_says_so() {
    let o = regula(&[
        "triage",
        "validate",
        "--protocols",
        "/nonexistent/protocols",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("cannot read protocol directory /nonexistent/protocols"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn eval_prints_one_line_per_case_in_the_vocabulary_format_and_goes_on_after_bad_cases() {
    let cases = temp_file(
        "mixed",
        r#"[
          {"id": "c1", "age_years": 67, "sex": "M", "pregnancy_weeks": null,
           "chief_complaint": "dolor_toracico", "findings": ["dolor_opresivo", "diaforesis"]},
          {"id": "c2", "age_years": 30, "sex": "F", "pregnancy_weeks": null,
           "chief_complaint": "cefalea", "findings": ["dolor_de_cabeza_raro"]},
          {"id": "c3", "age_years": 5, "sex": "F", "pregnancy_weeks": 20,
           "chief_complaint": "dolor_abdominal", "findings": []},
          {"id": 4, "age_years": "treinta", "sex": "F", "chief_complaint": "cefalea", "findings": []},
          {"id": "c5", "age_years": 0.1, "sex": "X", "pregnancy_weeks": null,
           "chief_complaint": "fiebre_nino", "findings": []}
        ]"#,
    );
    let o = regula(&["triage", "eval", "--cases", cases.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);

    // Keys in the vocabulary's order, and nothing else.
    let raw = stdout(&o);
    let first = raw.lines().next().unwrap();
    assert!(
        first.starts_with(r#"{"id":"c1","level":"I","disposition":"ambulancia_tam","route":"sca","protocol":"dolor_toracico@1.0.0","trace":[{"finding":"no_responde","answer":false,"effect":"#),
        "{first}"
    );
    let c1 = lines[0].as_object().unwrap();
    assert_eq!(c1.len(), 6);
    assert_eq!(c1["id"], "c1");
    assert_eq!(c1["level"], "I");
    assert_eq!(c1["disposition"], "ambulancia_tam");
    assert_eq!(c1["route"], "sca");
    assert_eq!(c1["protocol"], "dolor_toracico@1.0.0");
    assert!(
        c1["trace"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s.as_object().unwrap().len() == 3)
    );
    assert!(
        c1["trace"].as_array().unwrap().last().unwrap()["effect"]
            .as_str()
            .unwrap()
            .starts_with("Decide «dolor_toracico.sca_inestable»")
    );

    assert_eq!(lines[1]["id"], "c2");
    assert!(
        lines[1]["error"]
            .as_str()
            .unwrap()
            .contains("hallazgo desconocido: `dolor_de_cabeza_raro`")
    );
    assert!(
        lines[2]["error"]
            .as_str()
            .unwrap()
            .contains("embarazo de 20 semanas a los 5 años")
    );
    assert_eq!(lines[3]["id"], 4);
    assert!(
        lines[3]["error"]
            .as_str()
            .unwrap()
            .contains("caso mal formado")
    );
    assert_eq!(lines[4]["level"], "II");
    assert_eq!(lines[4]["route"], "pediatria");
    assert!(
        stderr(&o).contains("5 casos: 2 evaluados, 3 con error"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn eval_of_the_committed_vignettes_reports_agreement() {
    let o = regula(&["triage", "eval", "--cases", VIGNETTES]);
    assert!(o.status.success());
    let n = serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(VIGNETTES).unwrap())
        .unwrap()
        .as_array()
        .unwrap()
        .len();
    assert_eq!(stdout(&o).lines().count(), n);
    let err = stderr(&o);
    assert!(
        err.contains("acuerdo con lo esperado") && err.contains("sub-triage 0"),
        "{err}"
    );
}

#[test]
fn eval_refuses_a_malformed_file_with_a_clear_error() {
    let cases = temp_file("malformed", "[{\"id\": \"c1\",\n  \"age_years\": }]");
    let o = regula(&["triage", "eval", "--cases", cases.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    let err = stderr(&o);
    assert!(
        err.contains("cases.json") && err.contains("not valid JSON (line 2"),
        "{err}"
    );

    let cases = temp_file("object", "{\"id\": \"c1\"}");
    let o = regula(&["triage", "eval", "--cases", cases.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("must be a JSON array of cases, found an object"),
        "{}",
        stderr(&o)
    );

    let o = regula(&["triage", "eval", "--cases", "/nonexistent/cases.json"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("cannot read cases file /nonexistent/cases.json"));
}

#[test]
fn eval_with_broken_protocols_refuses_to_evaluate() {
    let dir = protocol_copy("eval-broken");
    std::fs::write(dir.join("cefalea.toml"), "id = \"cefalea\"\n").unwrap();
    let o = regula(&[
        "triage",
        "eval",
        "--cases",
        VIGNETTES,
        "--protocols",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    let err = stderr(&o);
    assert!(
        err.contains("the protocols cannot be used") && err.contains("cefalea.toml"),
        "{err}"
    );
}

#[test]
fn help_lists_the_triage_commands_in_both_languages() {
    let o = regula(&["triage", "--help"]);
    let help = stdout(&o);
    assert!(help.contains("validate") && help.contains("eval"), "{help}");
    assert!(
        help.contains("Valida los protocolos") && help.contains("Evaluate structured cases"),
        "{help}"
    );
}
