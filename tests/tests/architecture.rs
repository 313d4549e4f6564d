//! The crate graph is part of the architecture: the pure crates must never gain an async
//! runtime, a database, a message bus or a web framework as a normal dependency, and
//! nothing may depend on the composition root.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::collections::{BTreeSet, HashMap};

use cargo_metadata::{DependencyKind, MetadataCommand, Package, PackageId};

const PURE: [&str; 4] = ["maps", "routing", "triage", "dispatch-core"];
const FORBIDDEN: [&str; 4] = ["tokio", "sqlx", "redis", "axum"];

fn metadata() -> cargo_metadata::Metadata {
    MetadataCommand::new()
        .manifest_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml"))
        .exec()
        .expect("cargo metadata")
}

/// Every package reachable from `root` through normal (non-dev, non-build) dependencies.
fn normal_closure(meta: &cargo_metadata::Metadata, root: &PackageId) -> BTreeSet<String> {
    let resolve = meta.resolve.as_ref().expect("resolved graph");
    let nodes: HashMap<&PackageId, &cargo_metadata::Node> =
        resolve.nodes.iter().map(|n| (&n.id, n)).collect();
    let packages: HashMap<&PackageId, &Package> =
        meta.packages.iter().map(|p| (&p.id, p)).collect();
    let mut seen = BTreeSet::new();
    let mut stack = vec![root];
    let mut names = BTreeSet::new();
    while let Some(id) = stack.pop() {
        if !seen.insert(id.clone()) {
            continue;
        }
        names.insert(packages[id].name.to_string());
        for dep in &nodes[id].deps {
            let normal = dep
                .dep_kinds
                .iter()
                .any(|k| k.kind == DependencyKind::Normal);
            if normal {
                stack.push(&dep.pkg);
            }
        }
    }
    names
}

#[test]
fn pure_crates_do_not_depend_on_tokio_sqlx_redis_or_axum() {
    let meta = metadata();
    let mut violations = Vec::new();
    for name in PURE {
        let package = meta
            .workspace_packages()
            .into_iter()
            .find(|p| p.name.as_str() == name)
            .unwrap_or_else(|| panic!("workspace has no crate {name}"));
        let closure = normal_closure(&meta, &package.id);
        for forbidden in FORBIDDEN {
            if closure.contains(forbidden) {
                violations.push(format!("{name} depends (transitively) on {forbidden}"));
            }
        }
    }
    assert!(violations.is_empty(), "{violations:#?}");
}

#[test]
fn nothing_depends_on_the_composition_root() {
    let meta = metadata();
    for package in meta.workspace_packages() {
        if package.name.as_str() == "regula-tests" {
            continue;
        }
        for dep in &package.dependencies {
            assert_ne!(
                dep.name, "ops-console",
                "{} depends on ops-console; dependencies must point inward",
                package.name
            );
        }
    }
}

#[test]
fn workspace_has_the_agreed_crates() {
    let meta = metadata();
    let names: BTreeSet<String> = meta
        .workspace_packages()
        .iter()
        .map(|p| p.name.to_string())
        .collect();
    for expected in [
        "maps",
        "routing",
        "triage",
        "dispatch-core",
        "telephony-gateway",
        "ops-console",
        "regula-tests",
    ] {
        assert!(
            names.contains(expected),
            "missing crate {expected}: {names:?}"
        );
    }
}

#[test]
fn the_forbidden_list_would_catch_a_real_violation() {
    // Guard against a test that cannot fail: ops-console does depend on tokio and axum.
    let meta = metadata();
    let console = meta
        .workspace_packages()
        .into_iter()
        .find(|p| p.name.as_str() == "ops-console")
        .expect("ops-console");
    let closure = normal_closure(&meta, &console.id);
    assert!(closure.contains("tokio") && closure.contains("axum"));
}
