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

/// A fresh directory for one test (removed by the OS's temp cleaning, like `temp_file`).
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("regula-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn paths_in_a_config_file_are_relative_to_the_file_not_the_current_directory() {
    let root = temp_dir("relative");
    let conf = root.join("conf");
    std::fs::create_dir_all(conf.join("pack")).unwrap();
    std::fs::create_dir_all(conf.join("db")).unwrap();
    std::fs::write(conf.join("city.graph"), b"not checked here").unwrap();
    std::fs::write(
        conf.join("regula.toml"),
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[store]\ndatabase_url = \"db/regula.db\"\n\n\
         [region]\npack = \"pack\"\nregister = false\n\n[routing]\ngraph = \"city.graph\"\n",
    )
    .unwrap();
    let elsewhere = temp_dir("relative-cwd");

    let output = regula()
        .args(["config", "check"])
        .arg(conf.join("regula.toml"))
        .current_dir(&elsewhere)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("OK"), "{stdout}");

    // `serve` puts the event log next to the file, not in the current directory.
    std::fs::write(
        conf.join("serve.toml"),
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[store]\ndatabase_url = \"db/regula.db\"\n",
    )
    .unwrap();
    let mut child = regula()
        .args(["serve", "--config"])
        .arg(conf.join("serve.toml"))
        .current_dir(&elsewhere)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(line.contains("http://"), "{line}");
    assert!(
        conf.join("db/regula.db").exists(),
        "the log is beside the file"
    );
    assert!(
        !elsewhere.join("db").exists(),
        "nothing in the current directory"
    );
}

#[test]
fn config_check_reports_every_problem_in_one_pass_with_missing_files() {
    let root = temp_dir("all-problems");
    let path = root.join("regula.toml");
    std::fs::write(
        &path,
        "[server]\nlisne = \"127.0.0.1:8080\"\nshutdown_grace_seconds = true\nmax_connections = 0\n\n\
         [dispatch]\nhistory_days = 0\n\n[webhook]\nsecret = \"short\"\n\n\
         [region]\npack = \"no-such-pack\"\n\n[routing]\ngraph = \"missing.graph\"\n\n\
         [store]\ndatabase_url = \"no-such-dir/regula.db\"\n",
    )
    .unwrap();
    let output = regula()
        .args(["config", "check", "--json"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let problems: Vec<(String, u64)> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert!(p["hint"].is_string(), "{p}");
            (
                p["key"].as_str().unwrap().to_owned(),
                p["line"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(String, u64)> = [
        ("server.lisne", 2),
        ("server.shutdown_grace_seconds", 3),
        ("server.max_connections", 4),
        ("dispatch.history_days", 7),
        ("webhook.secret", 10),
        ("region.pack", 13),
        ("routing.graph", 16),
        ("store.database_url", 19),
    ]
    .iter()
    .map(|(k, l)| ((*k).to_owned(), *l))
    .collect();
    assert_eq!(problems, expected, "{report:#}");
    let text = report.to_string();
    assert!(
        text.contains(&root.join("no-such-pack").display().to_string()),
        "the resolved path is named: {text}"
    );
}

#[test]
fn a_secret_typed_as_a_number_is_never_echoed() {
    let secret = "12345678901234567890";
    let root = temp_dir("secret");
    for (name, text) in [
        ("webhook.toml", format!("[webhook]\nsecret = {secret}\n")),
        (
            "webhook-small.toml",
            format!("[webhook]\nsecret = {}\n", &secret[..19]),
        ),
        (
            "feed.toml",
            format!("[feeds.EPS037]\ntoken_sha256 = {}\n", &secret[..19]),
        ),
    ] {
        let path = root.join(name);
        std::fs::write(&path, text).unwrap();
        for args in [
            vec!["config", "check"],
            vec!["config", "check", "--json"],
            vec!["serve", "--config"],
        ] {
            let output = regula().args(&args).arg(&path).output().unwrap();
            assert_eq!(output.status.code(), Some(1), "{args:?} {name}");
            let all = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            assert!(
                all.contains("webhook.secret") || all.contains("feeds.EPS037.token_sha256"),
                "{args:?} {name}: the key is named: {all}"
            );
            assert!(
                !all.contains(&secret[..10]),
                "{args:?} {name}: the secret leaked: {all}"
            );
        }
    }
}
