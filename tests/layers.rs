//! The workspace's modules import one way: no module imports a module that imports it back,
//! directly or around a longer circle. Read from the sources themselves: every `crate::…` and
//! `super::…` path outside comments and test code, resolved to the longest module it names.
//! A module imports what any file below it imports (`model/weights.rs` using `model_dir` makes
//! `model` import it). A module's own submodules and ancestors do not count (a parent declares
//! its children and a child may use its parent's items: that is nesting, not a circle).
//!
//! `KNOWN` lists the circles that are still to be taken apart, exactly: the test fails on a
//! new circle, and on a listed one that is gone (so that the list only ever shrinks).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Circles not yet removed, as "crate: module, module, …" (the members sorted).
const KNOWN: &[&str] = &[];

/// `unet`'s layers, lowest first: a top-level module imports only modules of lower layers (or
/// of its own). The kernels know nothing of networks; the networks and the published model
/// format (`model_dir`: model.json, weights, PyTorch names) know nothing of data or training;
/// inference reads the model format and never training (whose run checkpoint, optimiser and
/// recipe arithmetic stay above it).
const UNET_LAYERS: &[&[&str]] = &[
    &["kernels"],
    &["device"],
    &["model", "model_dir"],
    &["data"],
    &["inference", "training"],
    &["device_check"],
];

/// Every `.rs` file under `dir`, but test files.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if p.is_dir() {
            if name != "tests" {
                sources(&p, out);
            }
        } else if name.ends_with(".rs") && name != "tests.rs" {
            out.push(p);
        }
    }
}

/// A file's module path under `src` ("" for the crate root: `lib.rs`, `main.rs`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = rel.iter().map(|s| s.to_string_lossy().into_owned()).collect();
    let last = parts.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs");
    let root = parts.is_empty() && matches!(stem, "lib" | "main");
    if !root && stem != "mod" {
        parts.push(stem.to_string());
    }
    parts.join("::")
}

/// The code of a file without comments and without its inline `#[cfg(test)]` module.
fn code(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]") && lines.peek().is_some_and(|n| n.trim_start().contains("mod tests")) {
            break; // test modules sit at the end of their files
        }
        if t.starts_with("//") {
            continue;
        }
        out.push_str(line.split(" // ").next().unwrap_or(line));
        out.push('\n');
    }
    out
}

fn ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The paths that follow `prefix` (`crate::` or `super::`) in `code`, braces expanded one level:
/// `crate::{a, b::c}` gives `a` and `b::c`.
fn paths_after(code: &str, prefix: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().next_back();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| ident_char(c) || c == ':') {
            continue; // `foo_crate::` or `x::super::`
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let p: String = item.trim().chars().take_while(|&c| ident_char(c) || c == ':').collect();
                if !p.is_empty() {
                    found.push(p);
                }
            }
        } else {
            let p: String = rest.chars().take_while(|&c| ident_char(c) || c == ':').collect();
            found.push(p.trim_end_matches(':').to_string());
        }
    }
    found
}

fn is_within(a: &str, b: &str) -> bool {
    b.is_empty() || a == b || a.starts_with(&format!("{b}::"))
}

/// Module → the modules it imports (nesting left out), for one crate.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    sources(src, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(src, f)).collect();
    // the longest module a path names: the first of its prefixes, longest first, that is one
    let resolve = |path: &str| ancestry(path).into_iter().find(|m| modules.contains(m));
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let m = module_of(src, f);
        let text = code(&fs::read_to_string(f).expect("readable source"));
        let parent = m.rsplit_once("::").map_or("", |(p, _)| p).to_string();
        let mut targets: Vec<String> = paths_after(&text, "crate::");
        targets.extend(
            paths_after(&text, "super::").into_iter().map(
                |p| {
                    if parent.is_empty() { p } else { format!("{parent}::{p}") }
                },
            ),
        );
        edges.entry(m.clone()).or_default();
        // a module imports what any file below it imports: `model/weights.rs` using
        // `model_dir` makes `model` import it too
        for t in targets.iter().filter_map(|p| resolve(p)) {
            for from in ancestry(&m) {
                for to in ancestry(&t) {
                    if !is_within(&from, &to) && !is_within(&to, &from) {
                        edges.entry(from.clone()).or_default().insert(to);
                    }
                }
            }
        }
    }
    edges
}

/// A module (or any path) and its ancestors, longest first, the crate root left out: `a::b`
/// gives `a::b`, `a`.
fn ancestry(m: &str) -> Vec<String> {
    let segs: Vec<&str> = m.split("::").filter(|s| !s.is_empty()).collect();
    (1..=segs.len()).rev().map(|n| segs[..n].join("::")).collect()
}

/// The graph's circles: its strongly connected components of more than one module.
fn circles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    // reachability by repeated search: the graphs are a few dozen modules
    let reach = |from: &str| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.to_string()];
        while let Some(m) = stack.pop() {
            for t in edges.get(&m).into_iter().flatten() {
                if seen.insert(t.clone()) {
                    stack.push(t.clone());
                }
            }
        }
        seen
    };
    let reached: BTreeMap<&String, BTreeSet<String>> = edges.keys().map(|m| (m, reach(m))).collect();
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for (m, r) in &reached {
        if done.contains(*m) || !r.contains(*m) {
            continue;
        }
        let scc: Vec<String> = r
            .iter()
            .filter(|t| reached.get(t).is_some_and(|rt| rt.contains(*m)))
            .cloned()
            .collect();
        done.extend(scc.iter().cloned());
        out.push(scc);
    }
    out
}

#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut crates: Vec<PathBuf> = fs::read_dir(root.join("crates"))
        .expect("crates/")
        .flatten()
        .map(|e| e.path().join("src"))
        .filter(|p| p.is_dir())
        .collect();
    crates.push(root.join("src"));
    crates.sort();
    let mut found = BTreeSet::new();
    for src in &crates {
        let name = src
            .parent()
            .and_then(Path::file_name)
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let edges = graph(src);
        for scc in circles(&edges) {
            let detail: Vec<String> = scc
                .iter()
                .map(|m| {
                    let into: Vec<&String> = edges[m].iter().filter(|t| scc.contains(t)).collect();
                    format!("{m} → {into:?}")
                })
                .collect();
            eprintln!("{name}: {}", detail.join("; "));
            found.insert(format!("{name}: {}", scc.join(", ")));
        }
    }
    let known: BTreeSet<String> = KNOWN.iter().map(|s| s.to_string()).collect();
    let new: Vec<&String> = found.difference(&known).collect();
    let gone: Vec<&String> = known.difference(&found).collect();
    assert!(
        new.is_empty(),
        "module circles (each module → the members it imports): {new:#?}"
    );
    assert!(
        gone.is_empty(),
        "circles listed in KNOWN are gone: take them off the list: {gone:#?}"
    );
}

#[test]
fn unet_imports_only_downward() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/unet/src");
    let edges = graph(&src);
    let layer = |m: &str| {
        let top = m.split("::").next().unwrap_or(m);
        UNET_LAYERS.iter().position(|l| l.contains(&top))
    };
    let mut upward = Vec::new();
    // the crate root declares every module and re-exports: it is no layer
    for (from, tos) in edges.iter().filter(|(m, _)| !m.is_empty()) {
        let Some(lf) = layer(from) else {
            upward.push(format!("{from}: not in UNET_LAYERS (add it to a layer)"));
            continue;
        };
        for to in tos {
            if let Some(lt) = layer(to)
                && lt > lf
                && from.split("::").next() != to.split("::").next()
            {
                upward.push(format!("{from} (layer {lf}) imports {to} (layer {lt})"));
            }
        }
    }
    upward.sort();
    upward.dedup();
    assert!(upward.is_empty(), "imports against the layers: {upward:#?}");
    assert!(
        !edges["inference"].iter().any(|t| t.starts_with("training")),
        "inference depends on training: {:?}",
        edges["inference"]
    );
}

#[test]
fn the_reader_sees_circles_and_nesting() {
    // a ↔ b is a circle; c::d using its parent c is nesting; neither a doc comment nor a
    // test module is an import
    let dir = std::env::temp_dir().join(format!("facepipe-layers-{}", std::process::id()));
    let src = dir.join("src");
    fs::create_dir_all(src.join("c")).unwrap();
    fs::write(src.join("lib.rs"), "mod a;\nmod b;\nmod c;\nmod e;\n").unwrap();
    fs::write(src.join("a.rs"), "use crate::{b::X, c};\n").unwrap();
    fs::write(src.join("b.rs"), "pub struct X;\nfn f() { crate::a::g() }\n").unwrap();
    fs::write(src.join("c/mod.rs"), "mod d;\n/// see [`crate::a`]\npub fn h() {}\n").unwrap();
    fs::write(src.join("e.rs"), "use crate::c::d::Y;\n").unwrap();
    // c::d imports e, which imports c::d back: a circle, seen from c too
    fs::write(
        src.join("c/d.rs"),
        "use super::h;\npub struct Y;\nfn k() { crate::e::z() }\n#[cfg(test)]\nmod tests {\n use crate::a;\n}\n",
    )
    .unwrap();
    let edges = graph(&src);
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(circles(&edges), vec![names(&["a", "b"]), names(&["c", "c::d", "e"])]);
    assert_eq!(
        edges["c"],
        ["e".to_string()].into(),
        "c imports e through c::d; the doc link is not an import"
    );
    assert!(
        !edges["c::d"].contains("a"),
        "the test module's import does not count: {edges:?}"
    );
    fs::remove_dir_all(dir).unwrap();
}
