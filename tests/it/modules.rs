//! The module graph (issue 13): no cycle between src/'s top-level modules.
//!
//! An edge A -> B is any `crate::B` path in a file of module A, outside comments (a `use`
//! line, a `use crate::{B, C}` group or a path in code). The command layer (`commands`)
//! sits above the library and may name every module; only it may name `cli`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The command layer: above the library, left out of the graph.
const COMMAND_LAYER: &[&str] = &["commands", "main", "lib"];

/// `text` without `//` comments (doc comments included) and string literals' contents.
fn code_of(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut in_str = false;
        let mut prev = '\0';
        let mut kept = String::new();
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if !in_str && c == '/' && chars.get(i + 1) == Some(&'/') {
                break;
            }
            if c == '"' && prev != '\\' {
                in_str = !in_str;
            } else if !in_str {
                kept.push(c);
            }
            prev = c;
            i += 1;
        }
        out.push_str(&kept);
        out.push('\n');
    }
    out
}

/// The top-level modules each `crate::X` in `code` names.
fn named_modules(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().last();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `foo_crate::x`
        }
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a, b::c}`: the first word of each item (nested groups stop at `}`).
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let word: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !word.is_empty() {
                    found.insert(word);
                }
            }
            continue;
        }
        let word: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !word.is_empty() {
            found.insert(word);
        }
    }
    found
}

fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in walkdir::WalkDir::new(src) {
        let e = e.unwrap();
        if e.path().extension() != Some(std::ffi::OsStr::new("rs")) {
            continue;
        }
        let rel = e.path().strip_prefix(src).unwrap();
        let first = rel.components().next().unwrap().as_os_str();
        let top = first.to_string_lossy().trim_end_matches(".rs").to_string();
        if COMMAND_LAYER.contains(&top.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(e.path()).unwrap();
        let node = edges.entry(top.clone()).or_default();
        for m in named_modules(&code_of(&text)) {
            if m != top && m != "commands" {
                node.insert(m);
            }
        }
    }
    edges
}

/// A cycle through the graph, as a path `a -> b -> a`, if there is one.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(n) {
            Some(2) => return None,
            Some(1) => {
                let start = path.iter().position(|p| p == n).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(n.to_string());
                return Some(cycle);
            }
            _ => {}
        }
        state.insert(n.to_string(), 1);
        path.push(n.to_string());
        for m in edges.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, edges, state, path) {
                return Some(c);
            }
        }
        path.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in edges.keys() {
        if let Some(c) = visit(n, edges, &mut state, &mut Vec::new()) {
            return Some(c);
        }
    }
    None
}

#[test]
fn issue13_no_cycle_between_top_level_modules() {
    let edges = graph(&super::util::repo().join("src"));
    // The graph is real: the known edges are seen.
    assert!(edges["build"].contains("package"), "{edges:?}");
    assert!(edges["recipe"].contains("package"), "{edges:?}");
    for (module, names) in &edges {
        assert!(
            !names.contains("cli") || module == "cli",
            "{module} names crate::cli: only the command layer may"
        );
    }
    if let Some(cycle) = find_cycle(&edges) {
        panic!("module cycle: {}\n{edges:#?}", cycle.join(" -> "));
    }
}

#[test]
fn the_cycle_finder_finds_cycles_and_the_parser_reads_use_groups() {
    let code = code_of(
        "use crate::{archive::Format, error};\n// crate::docs\nlet x = crate::fsutil::f(\"crate::sys\");\n",
    );
    let names: Vec<String> = named_modules(&code).into_iter().collect();
    assert_eq!(names, ["archive", "error", "fsutil"]);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    edges.entry("a".into()).or_default().insert("b".into());
    edges.entry("b".into()).or_default().insert("c".into());
    assert_eq!(find_cycle(&edges), None);
    edges.entry("c".into()).or_default().insert("a".into());
    assert_eq!(
        find_cycle(&edges).unwrap(),
        ["a", "b", "c", "a"].map(String::from)
    );
}
