//! The layout keeps the architecture: modules import each other along the layer map of
//! `src/lib.rs`, never in a circle. Read from the sources, so a new import that closes a
//! circle fails here before review.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// Every module of the library (`xmpp::stream`, `http`, …) and the source it is made of,
/// without its test module.
fn modules() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    collect(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &[],
        &mut out,
    );
    out
}

fn collect(dir: &Path, prefix: &[String], out: &mut BTreeMap<String, String>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .expect("src/ is readable")
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("UTF-8 file names")
            .to_owned();
        if path.is_dir() {
            if name == "testdata" {
                continue;
            }
            let mut p = prefix.to_vec();
            p.push(name);
            collect(&path, &p, out);
            continue;
        }
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let mut p = prefix.to_vec();
        match name.as_str() {
            "lib" | "main" if prefix.is_empty() => continue,
            // `foo/tests.rs` is the test module of `foo.rs`.
            "tests" if !prefix.is_empty() => continue,
            "mod" => {}
            _ => p.push(name),
        }
        let text = fs::read_to_string(&path).expect("a readable source file");
        let production = text
            .split("#[cfg(test)]\nmod tests")
            .next()
            .unwrap_or_default()
            .to_owned();
        out.insert(p.join("::"), production);
    }
}

/// The longest known module that `path` (`a::b::Item`) names.
fn resolve<'a>(mods: &'a BTreeMap<String, String>, path: &str) -> Option<&'a str> {
    let segs: Vec<&str> = path.split("::").collect();
    (1..=segs.len())
        .rev()
        .map(|n| segs[..n].join("::"))
        .find_map(|c| mods.get_key_value(&c).map(|(k, _)| k.as_str()))
}

/// The paths after `marker` in `text` (`crate::` or `super::`), as written.
fn paths_after<'t>(text: &'t str, marker: &str) -> Vec<&'t str> {
    text.match_indices(marker)
        .filter(|(i, _)| {
            // A whole word: `crate::`, not `xcrate::`.
            !text[..*i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
        })
        .map(|(i, _)| {
            let rest = &text[i + marker.len()..];
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(rest.len());
            rest[..end].trim_end_matches(':')
        })
        .collect()
}

/// Who imports whom, between modules (`level` 0) or between top-level modules (`level` 1:
/// `xmpp`, `net`, `http`, …).
fn imports(level: usize) -> BTreeMap<String, BTreeSet<String>> {
    let mods = modules();
    let top = |m: &str| -> String {
        if level == 1 {
            m.split("::").next().unwrap_or(m).to_owned()
        } else {
            m.to_owned()
        }
    };
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, text) in &mods {
        let parent = m.rsplit_once("::").map(|(p, _)| p);
        let mut targets: Vec<&str> = paths_after(text, "crate::")
            .into_iter()
            .filter_map(|p| resolve(&mods, p))
            .collect();
        for p in paths_after(text, "super::") {
            let full = match parent {
                Some(parent) => format!("{parent}::{p}"),
                None => p.to_owned(),
            };
            targets.extend(resolve(&mods, &full));
        }
        for t in targets {
            // A module may use its own children and parents: they are one unit.
            if t == m || m.starts_with(&format!("{t}::")) || t.starts_with(&format!("{m}::")) {
                continue;
            }
            let (from, to) = (top(m), top(t));
            if from != to {
                edges.entry(from).or_default().insert(to);
            }
        }
    }
    edges
}

/// A circle in `edges`, if there is one, as the modules along it.
fn circle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut c = path[at..].to_vec();
            c.push(node.to_owned());
            return Some(c);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|n| visit(n, edges, &mut Vec::new(), &mut done))
}

#[test]
fn no_top_level_modules_import_each_other_in_a_circle() {
    let edges = imports(1);
    assert!(edges.contains_key("daemon"), "the import graph was read");
    assert_eq!(circle(&edges), None);
}

#[test]
fn no_modules_import_each_other_in_a_circle() {
    assert_eq!(circle(&imports(0)), None);
}

#[test]
fn the_protocol_core_imports_nothing_from_the_layers_above_it() {
    let edges = imports(1);
    assert_eq!(
        edges.get("xmpp"),
        None,
        "xmpp imports {:?}",
        edges.get("xmpp")
    );
}

#[test]
fn every_entry_of_src_is_on_the_layer_map_in_lib_rs() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = fs::read_to_string(src.join("lib.rs")).unwrap();
    let map: String = lib
        .lines()
        .take_while(|l| l.starts_with("//!"))
        .collect::<Vec<_>>()
        .join("\n");
    let words: BTreeSet<&str> = map
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
        .map(|w| w.trim_end_matches('.'))
        .collect();
    for entry in fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap();
        let module = name.strip_suffix(".rs").unwrap_or(name);
        if module == "lib" {
            continue;
        }
        assert!(
            words.contains(module) || words.contains(name),
            "src/{name} is not on the layer map at the top of src/lib.rs"
        );
    }
}

#[test]
fn a_circle_is_found_when_there_is_one() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (a, b) in [("app", "http"), ("http", "webhook"), ("webhook", "app")] {
        edges.entry(a.into()).or_default().insert(b.into());
    }
    let c = circle(&edges).expect("a circle");
    assert_eq!(c.first(), c.last());
    assert_eq!(c.len(), 4);
}
