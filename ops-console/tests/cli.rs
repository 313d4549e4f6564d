//! The `regula` command line as operators use it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::path::PathBuf;
use std::process::Command;

fn regula() -> Command {
    Command::new(env!("CARGO_BIN_EXE_regula"))
}

fn temp_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("regula-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn config_check_accepts_the_example_config() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/regula.example.toml");
    let output = regula()
        .args(["config", "check", example])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("OK"), "{stdout}");
}

#[test]
fn config_check_reports_unknown_key_wrong_type_and_bad_address() {
    let path = temp_file(
        "three-problems.toml",
        "[server]\nlisten = \"127.0.0.1\"\nshutdown_grace_seconds = true\n\n[log]\nformt = \"json\"\n",
    );
    let output = regula()
        .arg("config")
        .arg("check")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("3 problems"), "{stdout}");
    assert!(
        stdout.contains("line 2: `server.listen`: invalid socket address syntax"),
        "{stdout}"
    );
    assert!(
        stdout.contains("line 3: `server.shutdown_grace_seconds`: invalid type: boolean `true`"),
        "{stdout}"
    );
    assert!(
        stdout.contains("line 6: `log.formt`: unknown key (hint: did you mean `format`?"),
        "{stdout}"
    );
}

#[test]
fn config_check_json_lists_the_problems() {
    let path = temp_file("json.toml", "[server]\nport = 80\n");
    let output = regula()
        .arg("config")
        .arg("check")
        .arg(&path)
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["valid"], false);
    assert_eq!(report["problems"][0]["key"], "server.port");
    assert_eq!(report["problems"][0]["line"], 2);
}

#[test]
fn config_check_on_a_missing_file_says_so() {
    let output = regula()
        .args(["config", "check", "/nonexistent/regula.toml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot read configuration file /nonexistent/regula.toml"),
        "{stderr}"
    );
}

#[test]
fn serve_refuses_an_invalid_config_before_binding() {
    let path = temp_file("bad-serve.toml", "[server]\nlisten = 1\n");
    let output = regula()
        .arg("serve")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("`server.listen`"), "{stderr}");
}

#[test]
fn help_is_bilingual_and_lists_only_working_commands() {
    let output = regula().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    assert!(help.contains("Inicia el servidor"), "{help}");
    assert!(help.contains("Start the production server"), "{help}");
    for command in ["serve", "config"] {
        assert!(help.contains(command), "{help}");
    }
}

#[test]
fn bench_dispatch_prints_its_figures_and_checks_replay_and_snapshot_restore() {
    let output = regula()
        .args([
            "bench",
            "dispatch",
            "--events",
            "3000",
            "--commands",
            "300",
            "--recommendations",
            "10",
            "--json",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let figures: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    for key in [
        "apply_us_p99",
        "recommend_ms_p99",
        "replay_events_per_s",
        "snapshot_bytes",
        "restart_from_snapshot_ms",
    ] {
        assert!(figures[key].is_number(), "{key} missing: {figures}");
    }
    assert!(figures["replay_events"].as_u64().unwrap() >= 3000);
    assert!(figures["snapshot_bytes"].as_u64().unwrap() > 0);
}
