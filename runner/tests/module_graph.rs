//! The layout of the runner: no import cycle between its top-level modules
//! (`crate::a` named in a file of module `b` is an edge b -> a; unit tests
//! left out), and the report renderers read and write no file. Prints the
//! graph: `cargo test -p kregress --test module_graph -- --nocapture`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every .rs file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code of a file without its comments and its unit tests (a
/// `#[cfg(test)] mod tests` block closes a file here).
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests").or_else(|| text.find("#[cfg(test)]\npub(crate) mod tests")) {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines().map(|l| l.split("//").next().unwrap()).collect::<Vec<_>>().join("\n")
}

/// The modules `code` names: `crate::x` and `crate::{x, y::z}`.
fn named(code: &str) -> BTreeSet<String> {
    let ident = |s: &str| s.trim_start().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>();
    let mut out = BTreeSet::new();
    for part in code.split("crate::").skip(1) {
        if let Some(group) = part.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            out.extend(group.split(',').map(ident).filter(|m| !m.is_empty()));
        } else {
            out.insert(ident(part));
        }
    }
    out
}

/// Top-level module -> the top-level modules it names.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    sources(src, &mut files);
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let rel = f.strip_prefix(src).unwrap();
        let top = rel.components().next().unwrap().as_os_str().to_str().unwrap().trim_end_matches(".rs").to_string();
        if top == "lib" || top == "main" || rel.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let deps = named(&code(&std::fs::read_to_string(f).unwrap()));
        g.entry(top.clone()).or_default().extend(deps.into_iter().filter(|d| *d != top));
    }
    let modules: BTreeSet<String> = g.keys().cloned().collect();
    for deps in g.values_mut() {
        deps.retain(|d| modules.contains(d));
    }
    g
}

/// A cycle of `g` as a path a -> ... -> a, if there is one.
fn cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(m: &str, g: &BTreeMap<String, BTreeSet<String>>, done: &mut BTreeSet<String>, path: &mut Vec<String>) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == m) {
            let mut c = path[i..].to_vec();
            c.push(m.to_string());
            return Some(c);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_string());
        for d in &g[m] {
            if let Some(c) = visit(d, g, done, path) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_string());
        None
    }
    let mut done = BTreeSet::new();
    g.keys().find_map(|m| visit(m, g, &mut done, &mut Vec::new()))
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn no_import_cycle_between_top_level_modules() {
    let g = graph(&src());
    for (m, deps) in &g {
        println!("{m} -> {}", deps.iter().cloned().collect::<Vec<_>>().join(", "));
    }
    assert!(g.len() > 20 && g["run"].contains("vm"), "the graph was not read: {g:?}");
    if let Some(c) = cycle(&g) {
        panic!("import cycle: {}", c.join(" -> "));
    }
}

#[test]
fn report_renderers_read_and_write_no_file() {
    let mut files = Vec::new();
    sources(&src().join("report"), &mut files);
    assert!(files.len() >= 4, "{files:?}");
    for f in files {
        let c = code(&std::fs::read_to_string(&f).unwrap());
        for bad in ["std::fs", "File::", "crate::cache", "crate::post", "crate::results::load", "println!"] {
            assert!(!c.contains(bad), "{}: a renderer names {bad}", f.display());
        }
    }
}

#[test]
fn a_cycle_is_found() {
    let g: BTreeMap<String, BTreeSet<String>> = [("a", &["b"][..]), ("b", &["c"]), ("c", &["a"]), ("d", &["a"])]
        .iter()
        .map(|(m, ds)| (m.to_string(), ds.iter().map(|d| d.to_string()).collect()))
        .collect();
    assert_eq!(cycle(&g), Some(vec!["a".to_string(), "b".into(), "c".into(), "a".into()]));
    let dag: BTreeMap<String, BTreeSet<String>> = [("a", &["b", "c"][..]), ("b", &["c"]), ("c", &[])]
        .iter()
        .map(|(m, ds)| (m.to_string(), ds.iter().map(|d| d.to_string()).collect()))
        .collect();
    assert_eq!(cycle(&dag), None);
    assert_eq!(named("use crate::{a, b::c};\nlet x = crate::d::e();"), ["a", "b", "d"].iter().map(|s| s.to_string()).collect());
}
