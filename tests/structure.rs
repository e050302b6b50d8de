//! The crate's modules form layers: no module imports one that imports it
//! back, at the top level (`crate::proxy` → `crate::pool` → `crate::wire`...)
//! or among the children of any module (`proxy::conn` → `proxy::session`).
//! A cycle is how seams disappear (DESIGN.md §1); this test names the first
//! one it finds, with a file that makes each edge.
//!
//! It reads the sources: `crate::a::...` and `super::a` paths outside
//! comments and outside each file's `#[cfg(test)]` part.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module's path from the crate root (`["proxy", "conn"]`) and its code.
fn sources() -> Vec<(Vec<String>, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("src is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&root, &mut files);
    files
        .into_iter()
        .map(|path| {
            let rel = path.strip_prefix(&root).expect("under src");
            let mut module: Vec<String> = rel
                .with_extension("")
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            if matches!(
                module.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                module.pop();
            }
            let text = std::fs::read_to_string(&path).expect("a source file");
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            let code: String = code
                .lines()
                .map(|l| l.split("//").next().unwrap_or(""))
                .collect::<Vec<_>>()
                .join("\n");
            (module, code)
        })
        .collect()
}

/// Every path a file names after `prefix` (`crate::` or `super::`), as
/// segments.
fn paths_after(code: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().next_back();
        rest = &rest[i + prefix.len()..];
        // Part of a longer name, or of `super::super::` (left alone).
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let mut path = Vec::new();
        for seg in rest.split("::") {
            let name: String = seg
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if name.is_empty() || name == "super" {
                break;
            }
            let whole = name.len() == seg.len();
            path.push(name);
            if !whole {
                break;
            }
        }
        out.push(path);
    }
    out
}

/// Edges between the children of `parent` (`[]`: the crate's top level),
/// each with a file that makes it.
fn edges(
    sources: &[(Vec<String>, String)],
    parent: &[String],
) -> BTreeMap<(String, String), String> {
    let depth = parent.len();
    let mut edges = BTreeMap::new();
    for (module, code) in sources {
        if module.len() <= depth || module[..depth] != *parent {
            continue;
        }
        let me = &module[depth];
        let mut targets: Vec<Vec<String>> = paths_after(code, "crate::");
        // `super::x`: the parent module's child `x`.
        let base: Vec<String> = module[..module.len() - 1].to_vec();
        for p in paths_after(code, "super::") {
            let mut full = base.clone();
            full.extend(p);
            targets.push(full);
        }
        for t in targets {
            if t.len() > depth && t[..depth] == *parent && t[depth] != *me {
                edges
                    .entry((me.clone(), t[depth].clone()))
                    .or_insert_with(|| module.join("/"));
            }
        }
    }
    edges
}

/// A cycle in `edges`, as the modules along it.
fn find_cycle(edges: &BTreeMap<(String, String), String>) -> Option<Vec<String>> {
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (a, b) in edges.keys() {
        next.entry(a).or_default().push(b);
    }
    fn visit<'a>(
        node: &'a str,
        next: &BTreeMap<&'a str, Vec<&'a str>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|n| *n == node) {
            let mut cycle: Vec<String> = path[i..].iter().map(|s| s.to_string()).collect();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if !done.insert(node) {
            return None;
        }
        path.push(node);
        for n in next.get(node).into_iter().flatten() {
            if let Some(c) = visit(n, next, path, done) {
                return Some(c);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for start in next.keys() {
        if let Some(c) = visit(start, &next, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

#[test]
fn modules_import_one_way_at_every_level() {
    let sources = sources();
    assert!(sources.len() > 50, "the sources were found");
    let parents: BTreeSet<Vec<String>> = sources
        .iter()
        .flat_map(|(m, _)| (0..m.len()).map(move |d| m[..d].to_vec()))
        .collect();
    let mut cycles = Vec::new();
    for parent in &parents {
        let edges = edges(&sources, parent);
        if let Some(cycle) = find_cycle(&edges) {
            let how: Vec<String> = cycle
                .windows(2)
                .map(|w| {
                    let file = &edges[&(w[0].clone(), w[1].clone())];
                    format!("{} -> {} (in {file})", w[0], w[1])
                })
                .collect();
            let level = if parent.is_empty() {
                "the crate".to_string()
            } else {
                format!("crate::{}", parent.join("::"))
            };
            cycles.push(format!("under {level}: {}", how.join(", ")));
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

/// The test sees a cycle when there is one (it is not blind to the
/// sources' shape).
#[test]
fn a_cycle_is_found() {
    let sources = vec![
        (vec!["a".to_string()], "use crate::b::X;".to_string()),
        (
            vec!["b".to_string(), "c".to_string()],
            "fn f() { crate::a::g() }".to_string(),
        ),
        (
            vec!["b".to_string(), "d".to_string()],
            "use super::c::Y;".to_string(),
        ),
    ];
    let top = edges(&sources, &[]);
    assert_eq!(
        find_cycle(&top),
        Some(vec!["a".into(), "b".into(), "a".into()])
    );
    let under_b = edges(&sources, &["b".to_string()]);
    assert!(under_b.contains_key(&("d".to_string(), "c".to_string())));
    assert_eq!(find_cycle(&under_b), None);
}
