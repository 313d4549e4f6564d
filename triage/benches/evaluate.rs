//! Batch evaluation speed: 10,000 cases (the committed vignettes, repeated) through the
//! built-in protocols, as `regula triage eval` does. Criterion prints the throughput in
//! cases per second (`thrpt … Kelem/s`).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use triage::ProtocolSet;
use triage::batch::{Case, CaseInput, evaluate_input, parse_cases};

const CASE_FILES: [&str; 7] = [
    include_str!("../tests/cases/cardiorrespiratorio.json"),
    include_str!("../tests/cases/digestivo_fiebre.json"),
    include_str!("../tests/cases/materno.json"),
    include_str!("../tests/cases/neurologico.json"),
    include_str!("../tests/cases/salud_mental_violencias.json"),
    include_str!("../tests/cases/toxico_metabolico.json"),
    include_str!("../tests/cases/trauma.json"),
];

const CASES: usize = 10_000;

fn ten_thousand_cases() -> Vec<CaseInput> {
    let vignettes: Vec<Case> = CASE_FILES
        .iter()
        .flat_map(|text| parse_cases(text).unwrap())
        .map(|input| match input {
            CaseInput::Case(c) => *c,
            CaseInput::Malformed { error, .. } => panic!("{error}"),
        })
        .collect();
    (0..CASES)
        .map(|i| {
            let mut case = vignettes[i % vignettes.len()].clone();
            case.id = format!("{}-{i}", case.id);
            CaseInput::Case(Box::new(case))
        })
        .collect()
}

fn evaluate_ten_thousand(c: &mut Criterion) {
    let set = ProtocolSet::builtin().unwrap();
    let cases = ten_thousand_cases();
    let mut group = c.benchmark_group("triage_eval");
    group.throughput(Throughput::Elements(CASES as u64));
    group.sample_size(20);
    group.bench_function("10k_cases_to_json_lines", |b| {
        b.iter(|| {
            let mut bytes = 0usize;
            for input in &cases {
                let line = match evaluate_input(set, input) {
                    Ok(line) => serde_json::to_string(&line),
                    Err(error) => serde_json::to_string(&error),
                };
                bytes += line.unwrap().len();
            }
            black_box(bytes)
        });
    });
    group.bench_function("10k_cases_outcome_only", |b| {
        b.iter(|| {
            let mut urgent = 0usize;
            for input in &cases {
                if let Ok(line) = evaluate_input(set, input) {
                    urgent += usize::from(line.level <= triage::Level::II);
                }
            }
            black_box(urgent)
        });
    });
    group.finish();
}

criterion_group!(benches, evaluate_ten_thousand);
criterion_main!(benches);
