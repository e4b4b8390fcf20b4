//! Naming a report.
//!
//! [`describe`] picks the group's format that matches earliest in the
//! report, fills its template with the captures and the guilty frames, and
//! decides whether the report is corrupted. [`normalize`] then removes what
//! differs between two runs of the same bug: addresses, offsets, line and
//! CPU numbers, executor ids.

use regex::Regex;
use std::sync::LazyLock;

use super::patterns::{Format, Group};
use super::stack;
use super::Kind;

pub(crate) struct Description {
    pub(crate) title: String,
    pub(crate) kind: Kind,
    pub(crate) frame: Option<String>,
    pub(crate) corrupted: bool,
}

/// Names the report whose lines (cleaned, header first) are given.
pub(crate) fn describe(group: &Group, lines: &[&str]) -> Description {
    let Some(header) = lines.first() else {
        return fallback(group, lines, false);
    };
    // The format matching earliest wins; on the header line, by offset.
    // Table order breaks ties, and a format whose follow-up lines are
    // missing gives way to the next one at the same place.
    let matching = |ln: &str| -> Vec<(usize, &Format)> {
        let set = group.titles.matches(ln);
        if !set.matched_any() {
            return Vec::new();
        }
        set.iter().filter_map(|k| group.formats[k].title.find(ln).map(|m| (m.start(), &group.formats[k]))).collect()
    };
    let mut at_line = 0;
    let mut candidates = matching(header);
    if candidates.is_empty() {
        for (i, ln) in lines.iter().enumerate().skip(1) {
            candidates = matching(ln);
            if !candidates.is_empty() {
                at_line = i;
                break;
            }
        }
    }
    let Some(best) = candidates.iter().map(|c| c.0).min() else {
        return fallback(group, lines, false);
    };
    for &(_, format) in candidates.iter().filter(|c| c.0 == best) {
        if let Some(d) = apply(format, lines, at_line, best) {
            return d;
        }
    }
    fallback(group, lines, true)
}

/// Tries one format; None when its follow-up lines are not there.
fn apply(format: &Format, lines: &[&str], at_line: usize, at: usize) -> Option<Description> {
    let mut args: Vec<String> = Vec::new();
    // Where the frame search starts: the title match, or the report match.
    let (mut from_line, mut from) = (at_line, at);
    if format.report.is_empty() {
        let caps = format.title.captures(&lines[at_line][at..])?;
        args.extend(caps.iter().skip(1).map(|m| m.map_or("", |m| m.as_str()).to_string()));
    } else {
        let mut next = 0;
        for (k, re) in format.report.iter().enumerate() {
            let i = next + lines[next..].iter().position(|ln| re.is_match(ln))?;
            let caps = re.captures(lines[i])?;
            if k == 0 {
                (from_line, from) = (i, caps.get(0).map_or(0, |m| m.start()));
            }
            args.extend(caps.iter().skip(1).map(|m| m.map_or("", |m| m.as_str()).to_string()));
            next = i + 1;
        }
    }
    let mut corrupted = format.corrupted;
    let mut frame = None;
    if let Some(st) = &format.stack {
        let mut view: Vec<&str> = lines[from_line..].to_vec();
        view[0] = &view[0][from..];
        let (frames, ok) = stack::key_frames(st, &view);
        corrupted |= !ok;
        frame = frames.first().filter(|f| *f != "corrupted").cloned();
        args.extend(frames);
    }
    let title = fill(format.fmt, &args);
    // A timestamp inside the title means two lines got merged.
    corrupted |= STAMP.is_match(&title);
    if !corrupted && !format.no_stack_trace {
        corrupted = stack::stack_missing(lines);
    }
    Some(Description { title, kind: format.kind, frame, corrupted })
}

/// No format applies: the header line itself is the title.
fn fallback(group: &Group, lines: &[&str], matched_title: bool) -> Description {
    let kind = group.formats.first().map_or(Kind::Other, |f| f.kind);
    let title =
        lines.iter().find_map(|ln| ln.find(group.header).map(|pos| ln[pos..].to_string())).unwrap_or_else(|| group.header.to_string());
    let corrupted = matched_title || STAMP.is_match(&title);
    Description { title, kind, frame: None, corrupted }
}

static STAMP: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\[ *[0-9]+\.[0-9]+\]").expect("stamp"));

/// Fills `{N}` with the N-th argument (1-based).
fn fill(fmt: &str, args: &[String]) -> String {
    let mut out = String::with_capacity(fmt.len() + 32);
    let mut rest = fmt;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}').and_then(|close| after[..close].parse::<usize>().ok().map(|n| (close, n))) {
            Some((close, n)) => {
                out.push_str(args.get(n.wrapping_sub(1)).map_or("", |s| s.as_str()));
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Rewrites applied to every title, each until it no longer changes.
static REWRITES: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    [
        // Executor process names carry their ids.
        (r"syz-executor\.?[0-9]+((/|:)[0-9]+)?", "syz-executor"),
        (r"syzkaller[0-9]+((/|:)[0-9]+)?", "syzkaller"),
        // Anything that looks like an address.
        (r"([^a-zA-Z0-9])(?:0x)?[0-9a-f]{6,}", "${1}ADDR"),
        (r"([0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3})", "IP"),
        (r"(\.[0-9A-Za-z_]+)(:[0-9]+)+", "${1}:LINE"),
        // Offsets and sizes change with every build.
        (r"([a-zA-Z][a-zA-Z0-9_.]+)\+0x[0-9a-z]+/0x[0-9a-z]+", "${1}"),
        (r"CPU#[0-9]+", "CPU"),
        // Remaining numbers, but not those inside identifiers (nl802154).
        (r"([^0-9A-Za-z_])([0-9]+)([^0-9A-Za-z_]|$)", "${1}NUM${3}"),
        (r"([0-9]+){7,}", "NUM"),
    ]
    .into_iter()
    .map(|(re, with)| (Regex::new(re).expect("title rewrite"), with))
    .collect()
});

/// Makes a title stable across runs and printable.
pub(crate) fn normalize(title: &str) -> String {
    let mut t = title.to_string();
    for (re, with) in REWRITES.iter() {
        loop {
            let next = re.replace_all(&t, *with);
            if next == t {
                break;
            }
            t = next.into_owned();
        }
    }
    // Interleaved lines can make a header huge; keep it printable and short.
    let mut out = String::with_capacity(t.len());
    let mut prev = ' ';
    for c in t.bytes().take(120) {
        let c = if c == b'\t' { ' ' } else { c as char };
        if !(' '..='~').contains(&c) || (c == ' ' && prev == ' ') {
            continue;
        }
        out.push(c);
        prev = c;
    }
    out.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_numbers_and_addresses() {
        assert_eq!(
            normalize("INFO: Freed in fasync_free_rcu+0x14/0x20 age=1 cpu=0 pid=3"),
            "INFO: Freed in fasync_free_rcu age=NUM cpu=NUM pid=NUM"
        );
        assert_eq!(normalize("KASAN: slab-out-of-bounds in foo at addr ffff8801c464b568"), "KASAN: slab-out-of-bounds in foo at addr ADDR");
        assert_eq!(
            normalize("kernel panic: VFS: Unable to mount root fs on unknown-block(0,0)"),
            "kernel panic: VFS: Unable to mount root fs on unknown-block(NUM,NUM)"
        );
        assert_eq!(normalize("WARNING in nl802154_add_llsec_key"), "WARNING in nl802154_add_llsec_key");
        assert_eq!(normalize("task syz-executor3:1234 hung at 10.0.0.1 CPU#3"), "task syz-executor hung at IP CPU");
        assert_eq!(normalize("BUG: at mm/gup.c:224\t\tx\x07"), "BUG: at mm/gup.c:LINE x");
    }

    #[test]
    fn fills_templates() {
        let a = vec!["use-after-free".to_string(), "f".to_string(), "Read".to_string(), "g".to_string()];
        assert_eq!(fill("KASAN: {1} {3} in {4}", &a), "KASAN: use-after-free Read in g");
        assert_eq!(fill("BUG: using {1}() in {9}", &a), "BUG: using use-after-free() in ");
    }
}
