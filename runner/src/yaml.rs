//! Positions in a YAML text, from libyaml's event stream (the parser
//! serde_yaml itself runs, so both agree on what each line holds).
//!
//! serde_yaml reports its own errors with a line, but it cannot say where a
//! duplicate key or a second document is, and a check made after
//! deserializing (a missing patch file, a bad name) has only the field's path.
//! This module walks the events once, keeping the path of every node:
//! [`lint`] rejects what must not reach serde_yaml (more than one document, a
//! duplicate key, nesting deeper than a bound: libyaml's scanner takes time
//! quadratic in the depth of flow collections, and serde_yaml loads every
//! event of a document before it looks at depth), and [`line_of`] gives the
//! line of a field by its path, spelled as serde_yaml spells it
//! (`variants[1].patches[0]`).

use std::collections::HashMap;
use std::mem::MaybeUninit;
use unsafe_libyaml as unsafe_ly;

/// One step of a path: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// `run.workloads[2].timing`, as serde_yaml writes paths in its errors.
fn spell(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) if s.is_empty() => s.push_str(k),
            Seg::Key(k) => {
                s.push('.');
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// A libyaml event without its payload, except a scalar's text.
#[derive(Debug)]
enum Ev {
    DocStart,
    MapStart,
    SeqStart,
    Scalar(String),
    Alias,
    /// The end of a mapping or sequence.
    End,
    Other,
}

/// libyaml's parser over one text; yields each event with its 1-based line.
struct Events<'a> {
    parser: Box<MaybeUninit<unsafe_ly::yaml_parser_t>>,
    done: bool,
    _text: std::marker::PhantomData<&'a [u8]>,
}

impl<'a> Events<'a> {
    fn new(text: &'a str) -> Self {
        // Boxed: the parser keeps a pointer to itself (its read handler's data).
        let mut parser = Box::new(MaybeUninit::<unsafe_ly::yaml_parser_t>::uninit());
        // SAFETY: initialize fills the parser (it only fails on allocation
        // failure, which aborts in unsafe-libyaml); the input outlives the
        // parser through the 'a borrow.
        unsafe {
            let p = parser.as_mut_ptr();
            assert!(unsafe_ly::yaml_parser_initialize(p).ok, "libyaml parser initialization");
            unsafe_ly::yaml_parser_set_input_string(p, text.as_ptr(), text.len() as _);
        }
        Events { parser, done: false, _text: std::marker::PhantomData }
    }
}

impl Iterator for Events<'_> {
    /// An event and its line, or libyaml's syntax error (serde_yaml reports those).
    type Item = Result<(Ev, usize), ()>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let mut event = MaybeUninit::<unsafe_ly::yaml_event_t>::uninit();
        // SAFETY: the parser was initialized in new(); a successful parse
        // fills `event`, which is read then deleted once.
        unsafe {
            if unsafe_ly::yaml_parser_parse(self.parser.as_mut_ptr(), event.as_mut_ptr()).fail {
                self.done = true;
                return Some(Err(()));
            }
            let e = &*event.as_ptr();
            let line = e.start_mark.line as usize + 1;
            let ev = match e.type_ {
                unsafe_ly::YAML_STREAM_END_EVENT => {
                    self.done = true;
                    Ev::Other
                }
                unsafe_ly::YAML_DOCUMENT_START_EVENT => Ev::DocStart,
                unsafe_ly::YAML_MAPPING_START_EVENT => Ev::MapStart,
                unsafe_ly::YAML_SEQUENCE_START_EVENT => Ev::SeqStart,
                unsafe_ly::YAML_MAPPING_END_EVENT | unsafe_ly::YAML_SEQUENCE_END_EVENT => Ev::End,
                unsafe_ly::YAML_ALIAS_EVENT => Ev::Alias,
                unsafe_ly::YAML_SCALAR_EVENT => {
                    let s = e.data.scalar;
                    let bytes = std::slice::from_raw_parts(s.value, s.length as usize);
                    Ev::Scalar(String::from_utf8_lossy(bytes).into_owned())
                }
                _ => Ev::Other,
            };
            unsafe_ly::yaml_event_delete(event.as_mut_ptr());
            Some(Ok((ev, line)))
        }
    }
}

impl Drop for Events<'_> {
    fn drop(&mut self) {
        // SAFETY: initialized in new(), deleted once.
        unsafe { unsafe_ly::yaml_parser_delete(self.parser.as_mut_ptr()) }
    }
}

/// A node as the walk meets it.
struct Node<'p> {
    /// The path of the node (a mapping value's path ends with its key).
    path: &'p [Seg],
    /// The line of its key when it is a mapping value, else its own line.
    line: usize,
    /// Containers open around it, itself included when it is one.
    depth: usize,
}

/// What a visitor saw: stop the walk with a result, or go on.
enum Step<T> {
    Go,
    Stop(T),
}

/// An open mapping or sequence.
enum Frame {
    /// `key`: the key whose value comes next (with its line), none while a key is awaited.
    Map {
        key: Option<(String, usize)>,
        seen: HashMap<String, usize>,
        valued: bool,
    },
    Seq {
        next: usize,
        valued: bool,
    },
}

/// A problem [`lint`] found: its line, the field's path and what is wrong.
#[derive(Debug, PartialEq)]
pub struct Problem {
    pub line: usize,
    pub field: String,
    pub msg: String,
}

/// Walks the first document's nodes, calling `visit` on each node and `dup`
/// on each repeated key of a mapping (with the first one's line), and stops
/// with `doc2(line)` where a second document starts. Stops at a syntax error
/// too: serde_yaml reports it.
fn walk<T>(
    text: &str,
    mut visit: impl FnMut(&Node) -> Step<T>,
    mut dup: impl FnMut(&Node, usize) -> Step<T>,
    doc2: impl FnOnce(usize) -> Option<T>,
) -> Option<T> {
    let mut frames: Vec<Frame> = Vec::new();
    let mut path: Vec<Seg> = Vec::new();
    let mut docs = 0;
    for ev in Events::new(text) {
        let Ok((ev, line)) = ev else { return None };
        let container = matches!(ev, Ev::MapStart | Ev::SeqStart);
        match ev {
            Ev::DocStart => {
                docs += 1;
                if docs > 1 {
                    return doc2(line);
                }
                continue;
            }
            Ev::End => {
                if let Some(Frame::Map { valued: true, .. } | Frame::Seq { valued: true, .. }) = frames.pop() {
                    path.pop();
                }
                continue;
            }
            Ev::Other => continue,
            Ev::MapStart | Ev::SeqStart | Ev::Scalar(_) | Ev::Alias => {}
        }
        // Where this node sits: a key, a mapping value, an item or the root.
        let (node_line, valued) = match frames.last_mut() {
            Some(Frame::Map { key: key @ None, seen, .. }) => {
                // A key. Keys that are not plain text (a mapping as key) are spelled `?`.
                let k = match &ev {
                    Ev::Scalar(s) => s.clone(),
                    _ => "?".to_string(),
                };
                let first = seen.get(&k).copied();
                seen.entry(k.clone()).or_insert(line);
                *key = Some((k.clone(), line));
                if let Some(first) = first {
                    path.push(Seg::Key(k));
                    let step = dup(&Node { path: &path, line, depth: frames.len() }, first);
                    path.pop();
                    if let Step::Stop(t) = step {
                        return Some(t);
                    }
                }
                if container {
                    // Walked like a sequence (depth counts), with no field of ours inside.
                    frames.push(Frame::Seq { next: 0, valued: false });
                }
                continue;
            }
            Some(Frame::Map { key: key @ Some(_), .. }) => {
                let (k, key_line) = key.take().unwrap();
                path.push(Seg::Key(k));
                (key_line, true)
            }
            Some(Frame::Seq { next, .. }) => {
                path.push(Seg::Index(*next));
                *next += 1;
                (line, true)
            }
            None => (line, false),
        };
        let depth = frames.len() + container as usize;
        if let Step::Stop(t) = visit(&Node { path: &path, line: node_line, depth }) {
            return Some(t);
        }
        match ev {
            Ev::MapStart => frames.push(Frame::Map { key: None, seen: HashMap::new(), valued }),
            Ev::SeqStart => frames.push(Frame::Seq { next: 0, valued }),
            _ if valued => {
                path.pop();
            }
            _ => {}
        }
    }
    None
}

/// The first problem that must stop a YAML text before serde_yaml reads it:
/// a second document, a duplicate key, or more than `max_depth` nested
/// mappings and sequences. The walk stops there, so a deep text costs time
/// linear in its length.
pub fn lint(text: &str, max_depth: usize) -> Option<Problem> {
    walk(
        text,
        |n| match n.depth > max_depth {
            true => Step::Stop(Problem { line: n.line, field: spell(n.path), msg: format!("nested deeper than {max_depth} levels") }),
            false => Step::Go,
        },
        |n, first| Step::Stop(Problem { line: n.line, field: spell(n.path), msg: format!("duplicate key (first at line {first})") }),
        |line| Some(Problem { line, field: String::new(), msg: "one YAML document per file (a second one starts here)".into() }),
    )
}

/// The line of the field at `path` (e.g. `variants[1].patches[0]`): its
/// key's line for a mapping value, else its own. A path that is not in the
/// text gives its longest prefix that is (a default value's parent).
pub fn line_of(text: &str, path: &str) -> Option<usize> {
    let mut best: Option<(usize, usize)> = None; // (prefix length, line)
    let found = walk(
        text,
        |n| {
            let spelled = spell(n.path);
            if spelled == path {
                return Step::Stop(n.line);
            }
            let prefix = path.strip_prefix(spelled.as_str()).is_some_and(|rest| spelled.is_empty() || rest.starts_with(['.', '[']));
            if prefix && best.is_none_or(|(len, _)| spelled.len() > len) {
                best = Some((spelled.len(), n.line));
            }
            Step::Go
        },
        |_, _| Step::Go,
        |_| None,
    );
    found.or(best.map(|(_, line)| line))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "name: t
description: mentions scenarios/p.patch and - name fixed
kernel:
  source:
    debian: linux-source-6.1
variants:
  - { name: stock }
  - name: fixed
    patches:
      - a.patch
      - scenarios/p.patch
";

    #[test]
    fn fields_are_found_by_path_not_by_text() {
        assert_eq!(line_of(TEXT, "name"), Some(1));
        assert_eq!(line_of(TEXT, "kernel.source"), Some(4), "a mapping value: its key's line");
        assert_eq!(line_of(TEXT, "kernel.source.debian"), Some(5));
        assert_eq!(line_of(TEXT, "variants[0].name"), Some(7));
        assert_eq!(line_of(TEXT, "variants[1].name"), Some(8));
        assert_eq!(line_of(TEXT, "variants[1].patches[1]"), Some(11));
        // Absent: the nearest enclosing field that is there.
        assert_eq!(line_of(TEXT, "variants[1].rev"), Some(8));
        assert_eq!(line_of(TEXT, "run.runs"), Some(1), "the document's");
        assert_eq!(line_of(TEXT, "descriptions"), Some(1), "a prefix of a key is not its parent");
    }

    #[test]
    fn lint_finds_duplicates_documents_and_depth_where_they_are() {
        assert_eq!(lint(TEXT, 8), None);
        let dup = lint(&format!("{TEXT}name: u\n"), 8).unwrap();
        assert_eq!(dup, Problem { line: 12, field: "name".into(), msg: "duplicate key (first at line 1)".into() });
        let dup = lint("a:\n  b: 1\n  c: 2\n  b: 3\n", 8).unwrap();
        assert_eq!((dup.line, dup.field.as_str()), (4, "a.b"));
        let doc = lint(&format!("{TEXT}---\nname: u\n"), 8).unwrap();
        assert_eq!((doc.line, doc.field.as_str()), (12, ""));
        assert!(doc.msg.contains("one YAML document per file"));
        // An explicit first document is one document.
        assert_eq!(lint(&format!("---\n{TEXT}"), 8), None);
        let deep = lint("a:\n  b: [[[[1]]]]\n", 4).unwrap();
        assert_eq!((deep.line, deep.field.as_str()), (2, "a.b[0][0]"));
        assert_eq!(lint("a:\n  b: [[1]]\n", 4), None);
        // A syntax error is serde_yaml's to report.
        assert_eq!(lint("a: [1\nb: 2\n", 4), None);
    }

    #[test]
    fn deep_flow_nesting_is_cut_short() {
        // 1 MiB of `[`: libyaml alone would take minutes on it.
        let text = format!("a: {}", "[".repeat(1 << 20));
        let t = std::time::Instant::now();
        let p = lint(&text, 32).unwrap();
        assert!(p.msg.contains("nested deeper than 32"), "{p:?}");
        assert!(t.elapsed() < std::time::Duration::from_secs(5), "{:?}", t.elapsed());
    }
}
