//! The engine's top-level modules form an acyclic graph (issue 18): each module names only
//! modules below it (`crate::x` paths and `use crate::x`), so that, for example, `accept`
//! uses `core` and never the other way round. Read from the sources at test time.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Every `.rs` file under `dir`.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

/// Top-level module name → the top-level modules its files name.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut add = |module: &str, text: &str| {
        let deps = g.entry(module.to_owned()).or_default();
        for part in text.split("crate::").skip(1) {
            let name: String = part
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name != module {
                deps.insert(name);
            }
        }
    };
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            for f in files(&path) {
                add(&name, &std::fs::read_to_string(&f).unwrap());
            }
        } else if name != "lib" && !name.ends_with("_tests") {
            add(&name, &std::fs::read_to_string(&path).unwrap());
        }
    }
    g
}

/// A cycle through `node`, if one is reachable from it.
fn cycle(
    g: &BTreeMap<String, BTreeSet<String>>,
    node: &str,
    path: &mut Vec<String>,
    done: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    if let Some(i) = path.iter().position(|n| n == node) {
        let mut c = path[i..].to_vec();
        c.push(node.to_owned());
        return Some(c);
    }
    if done.contains(node) {
        return None;
    }
    path.push(node.to_owned());
    for next in g.get(node).into_iter().flatten() {
        if let Some(c) = cycle(g, next, path, done) {
            return Some(c);
        }
    }
    path.pop();
    done.insert(node.to_owned());
    None
}

#[test]
fn the_module_graph_has_no_cycle() {
    let g = graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(
        g.contains_key("core") && g["accept"].contains("core"),
        "{g:?}"
    );
    let mut done = BTreeSet::new();
    for node in g.keys() {
        if let Some(c) = cycle(&g, node, &mut Vec::new(), &mut done) {
            panic!("module cycle: {}", c.join(" → "));
        }
    }
}

#[test]
fn a_cycle_is_found() {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (a, b) in [
        ("handle", "runtime"),
        ("runtime", "worker"),
        ("worker", "accept"),
    ] {
        g.entry(a.into()).or_default().insert(b.into());
    }
    let mut done = BTreeSet::new();
    assert_eq!(cycle(&g, "handle", &mut Vec::new(), &mut done), None);
    g.entry("accept".into())
        .or_default()
        .insert("worker".into());
    let c = cycle(&g, "handle", &mut Vec::new(), &mut BTreeSet::new()).unwrap();
    assert_eq!(c, ["worker", "accept", "worker"]);
}
