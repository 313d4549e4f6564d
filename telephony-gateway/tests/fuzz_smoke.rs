//! Runs each cargo-fuzz target briefly (15 s by default, `REGULA_FUZZ_SECONDS` to change)
//! so that CI exercises the fuzzers. Needs `cargo-fuzz` (`.ci/run` installs it) and uses
//! `RUSTC_BOOTSTRAP=1` because libFuzzer's flags are nightly-only. Built without a
//! sanitizer: the crate forbids `unsafe`, and that keeps the build short.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

fn run_target(target: &str, seeds: &str) {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let found = Command::new("cargo").args(["fuzz", "--version"]).output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "cargo-fuzz is not installed: run `cargo install cargo-fuzz --locked` (`.ci/run` does)"
    );
    let seconds = std::env::var("REGULA_FUZZ_SECONDS").unwrap_or_else(|_| "15".into());
    let work = std::env::temp_dir().join(format!("regula-fuzz-{target}-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let output = Command::new("cargo")
        .current_dir(crate_dir)
        .env("RUSTC_BOOTSTRAP", "1")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .args(["fuzz", "run", "--sanitizer", "none", target])
        .arg(&work)
        .arg(crate_dir.join(seeds))
        .args([
            "--",
            &format!("-max_total_time={seconds}"),
            "-max_len=16384",
        ])
        .output()
        .expect("cargo fuzz runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail: String = stderr
        .chars()
        .rev()
        .take(4000)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    assert!(
        output.status.success(),
        "fuzz target {target} failed:\n{tail}"
    );
    assert!(
        stderr.contains("Done "),
        "fuzz target {target} did not run to its time limit:\n{tail}"
    );
}

#[test]
fn the_sip_parser_survives_a_short_fuzzing_run() {
    run_target("sip_parser", "tests/corpus");
}

#[test]
fn the_pidf_lo_reader_survives_a_short_fuzzing_run() {
    run_target("pidf_lo", "fuzz/seeds/pidf_lo");
}
