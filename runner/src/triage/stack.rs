//! Finding the guilty frame in a report's stack traces.
//!
//! A [`Stack`] is a list of [`Part`]s walked over the report lines: fixed
//! lines (the `RIP:` line, `Call Trace:`) whose captures count as frames,
//! and stack traces. Helper frames (locking, allocation, WARN plumbing...,
//! see [`SKIP_FRAMES`](super::patterns::SKIP_FRAMES)) are dropped; the first
//! frame left names the bug, unless an [`Extractor`] knows better.
//!
//! Inlined frames (`foo mm/gup.c:12 [inline]`) and questionable ones
//! (`? foo+0x..`) are not frames: only a symbol followed by `+0x`/`.` is.

use regex::Regex;
use std::borrow::Cow;
use std::sync::LazyLock;

use super::clean::is_questionable;
use super::patterns::{literals, re, Extractor, Part, Stack, GLOBAL_SKIP, HANG_SKIP, STALL_ANCHOR_RE, STRIP_PREFIXES};

/// Lines that start a stack trace (and end the previous one).
static STACK_START: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"Call (?:T|t)race|Allocated:|Allocated by task [0-9]+:|Freed:|Freed by task [0-9]+:",
        // "backtrace:" of kmemleak, but not lockdep's "stack backtrace:".
        r"|[^k] backtrace(?: \(crc [[:xdigit:]]*\))?:|Backtrace:|Uninit was stored to memory at",
        // riscv prints no header before the trace of show_regs().
        r"|status: [0-9a-f]{16} badaddr: [0-9a-f]{16} cause: [0-9a-f]{16}"
    ))
});

/// The riscv alternative: a trace may follow it or not.
static RISCV_STACK_START: LazyLock<Regex> = LazyLock::new(|| re("status: [0-9a-f]{16} badaddr: [0-9a-f]{16} cause: [0-9a-f]{16}"));

/// arm's `[<pc>] (foo) from [<pc>] (bar+0x..)`.
static ARM_FRAME: LazyLock<Regex> = LazyLock::new(|| re(r"^ *{{PC}} \(([a-zA-Z0-9_.]+)\) from {{PC}} \({{FUNC}}"));

/// Fault injection prints its own stack into the middle of reports.
static FAULT_INJECTION: LazyLock<Regex> = LazyLock::new(|| re(r"^( \[<?(?:0x)?[0-9a-f]+>?\])? should_fail(slab)?(\.[a-z0-9.]+)?\+0x"));

fn is_fault_injection(line: &str) -> bool {
    static HINT: LazyLock<memchr::memmem::Finder<'static>> = LazyLock::new(|| memchr::memmem::Finder::new("should_fail"));
    HINT.find(line.as_bytes()).is_some() && FAULT_INJECTION.is_match(line)
}

/// Literals of [`STACK_START`]: a SIMD search rules out most lines.
static STACK_START_HINT: LazyLock<aho_corasick::AhoCorasick> =
    LazyLock::new(|| literals(["Call Trace", "Call trace", "Allocated", "Freed", "acktrace", "Uninit was stored", "badaddr: "]));

pub(crate) fn is_stack_start(line: &str) -> bool {
    STACK_START_HINT.is_match(line) && STACK_START.is_match(line)
}

/// Function names a frame line holds (arm lines hold two): up to two
/// `[<pc>] ` then a symbol followed by `+0x..` or `.suffix`.
pub(crate) fn frame_names(line: &str) -> impl Iterator<Item = &str> {
    let (a, b) = match plain_frame(line) {
        Some(name) => (Some(name), None),
        None if line.contains(") from [") => match ARM_FRAME.captures(line) {
            Some(c) => (c.get(1).map(|m| m.as_str()), c.get(2).map(|m| m.as_str())),
            None => (None, None),
        },
        None => (None, None),
    };
    a.into_iter().chain(b)
}

/// The x86/arm64 frame format, by hand: this runs on every report line.
fn plain_frame(line: &str) -> Option<&str> {
    let b = line.as_bytes();
    let mut i = b.iter().take_while(|&&c| c == b' ').count();
    for _ in 0..2 {
        if b.get(i) != Some(&b'[') {
            break;
        }
        let mut j = i + 1;
        j += usize::from(b.get(j) == Some(&b'<'));
        if b.get(j..j + 2) == Some(b"0x") {
            j += 2;
        }
        let hex = b[j.min(b.len())..].iter().take_while(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')).count();
        if hex == 0 {
            return None;
        }
        j += hex;
        j += usize::from(b.get(j) == Some(&b'>'));
        if b.get(j..j + 2) != Some(b"] ") {
            return None;
        }
        i = j + 2;
    }
    let len = b[i.min(b.len())..].iter().take_while(|c| c.is_ascii_alphanumeric() || **c == b'_').count();
    (len > 0 && matches!(b.get(i + len), Some(b'.') | Some(b'+'))).then(|| &line[i..i + len])
}

/// A frame line for the "has a stack trace" check. Unlike syzkaller we
/// count questionable frames: a kernel whose unwinder marks every frame `?`
/// still printed its whole report.
pub(crate) fn is_frame_line(line: &str) -> bool {
    if line.contains("(stack is not available)") {
        return true;
    }
    let line = line.strip_suffix(" (unreliable)").unwrap_or(line);
    let line = match line.find(" ? ") {
        Some(pos) if !line.contains("<EOI>") => &line[pos + 2..],
        _ => line,
    };
    frame_names(line).next().is_some()
}

/// Rust (`_R...`) and C++ (`_Z...`) symbols, as the source spells them.
pub(crate) fn demangle(name: &str) -> Cow<'_, str> {
    if !name.starts_with('_') {
        return Cow::Borrowed(name);
    }
    if name.starts_with("_R") {
        if let Ok(d) = rustc_demangle::try_demangle(name) {
            return Cow::Owned(format!("{d:#}"));
        }
    }
    if let Some(rest) = name.strip_prefix("_Z") {
        // Only plain functions, `_Z<len><name><params>`: params are dropped.
        let len_digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if let Ok(len) = rest[..len_digits].parse::<usize>() {
            if let Some(ident) = rest.get(len_digits..len_digits + len) {
                return Cow::Borrowed(ident);
            }
        }
    }
    Cow::Borrowed(name)
}

/// `__x64_sys_read` and `ksys_read` both mean `read`.
pub(crate) fn canonical(frame: &str) -> &str {
    STRIP_PREFIXES.iter().filter_map(|p| frame.strip_prefix(p)).min_by_key(|s| s.len()).unwrap_or(frame)
}

fn skipped(stack: &Stack, frame: &str) -> bool {
    GLOBAL_SKIP.is_match(frame) || stack.skip.as_ref().is_some_and(|s| s.is_match(frame))
}

/// Walks the parts over `lines` (the first one starting where the report
/// matched). Returns one key frame per stack trace part (`"corrupted"` when
/// none was found) and whether all were found; `parts2` are tried when
/// `parts` fail.
pub(crate) fn key_frames(stack: &Stack, lines: &[&str]) -> (Vec<String>, bool) {
    let first = walk(stack, &stack.parts, lines);
    if first.1 || stack.parts2.is_empty() {
        return first;
    }
    walk(stack, &stack.parts2, lines)
}

fn walk(stack: &Stack, parts: &[Part], lines: &[&str]) -> (Vec<String>, bool) {
    let mut raw: Vec<String> = Vec::new();
    let mut keys = Vec::new();
    let mut ok = true;
    let mut traces = 0;
    let mut next = 0; // next line to look at
    let mut p = 0;
    let push = |raw: &mut Vec<String>, names: &mut dyn Iterator<Item = &str>| {
        for name in names {
            let name = demangle(name);
            if !skipped(stack, &name) {
                raw.push(name.into_owned());
            }
        }
    };
    let caps = |c: regex::Captures<'_>| -> Vec<String> { c.iter().skip(1).flatten().map(|m| m.as_str().to_string()).collect() };
    loop {
        // A key frame is due at the end, and before each further trace.
        if p == parts.len() || (matches!(parts[p], Part::Trace) && traces > 0) {
            match pick(stack.extractor, &raw) {
                Some(frame) => keys.push(frame),
                None => {
                    keys.push("corrupted".to_string());
                    ok = false;
                }
            }
            raw.clear();
        }
        if p == parts.len() {
            return (keys, ok);
        }
        match &parts[p] {
            Part::Line(part) => {
                while next < lines.len() {
                    let ln = lines[next];
                    next += 1;
                    if is_questionable(ln) {
                        continue;
                    }
                    if is_fault_injection(ln) {
                        ok = false;
                        break;
                    }
                    if part.is_match(ln) {
                        if let Some(c) = part.captures(ln) {
                            push(&mut raw, &mut caps(c).iter().map(String::as_str));
                        }
                        break;
                    }
                }
            }
            Part::Trace => {
                traces += 1;
                while next < lines.len() {
                    let ln = lines[next];
                    next += 1;
                    if is_questionable(ln) {
                        continue;
                    }
                    if is_fault_injection(ln) {
                        ok = false;
                        break;
                    }
                    if is_stack_start(ln) {
                        break;
                    }
                    // The line after the trace may be the next part.
                    if let Some(Part::Line(after)) = parts.get(p + 1) {
                        if after.is_match(ln) {
                            if let Some(c) = after.captures(ln) {
                                push(&mut raw, &mut caps(c).iter().map(String::as_str));
                            }
                            p += 1;
                            break;
                        }
                    }
                    // The first frame is all the default extractor needs.
                    if stack.extractor != Extractor::First || raw.is_empty() {
                        push(&mut raw, &mut frame_names(ln));
                    }
                }
            }
        }
        p += 1;
    }
}

fn pick(extractor: Extractor, raw: &[String]) -> Option<String> {
    if raw.is_empty() {
        return None;
    }
    let frames: Vec<&str> = raw.iter().map(|f| canonical(f)).collect();
    let frame = match extractor {
        Extractor::First => Some(frames[0]),
        Extractor::Stall => stall_frame(&frames),
        Extractor::Hang => hang_frame(&frames),
    };
    frame.map(str::to_string)
}

/// A stalled CPU loops through several functions, and where the timer
/// interrupt catches it is random. The stable name is the frame just above
/// the dispatch point (syscall entry, work item, timer...): the syscall, or
/// for read/write/ioctl the callback that tells which file it was.
fn stall_frame<'a>(frames: &[&'a str]) -> Option<&'a str> {
    let mut prev = frames[0];
    for &frame in frames {
        if STALL_ANCHOR_RE.is_match(frame) {
            // Many callees differ below it: the IPI itself is the name.
            if frame.contains("smp_call_function") {
                return Some("smp_call_function");
            }
            return Some(prev);
        }
        prev = frame;
    }
    None
}

/// A hung task is a victim: waits on RCU and on RTNL are grouped whatever
/// the caller, otherwise the first frame that is not about waiting.
fn hang_frame<'a>(frames: &[&'a str]) -> Option<&'a str> {
    for &frame in frames {
        if frame.contains("rtnl_lock") {
            return Some(frame);
        }
        if ["synchronize_rcu", "synchronize_srcu", "synchronize_net", "synchronize_sched"].iter().any(|a| frame.contains(a)) {
            return Some("synchronize_rcu");
        }
    }
    frames.iter().copied().find(|f| !HANG_SKIP.iter().any(|s| f.contains(s)))
}

/// Does every stack trace in the report have frames? A report cut short or
/// overwritten by another one often keeps the header and loses the trace.
pub(crate) fn stack_missing(lines: &[&str]) -> bool {
    let mut seen_any = false;
    let mut i = 0;
    while i < lines.len() {
        if !is_stack_start(lines[i]) {
            i += 1;
            continue;
        }
        let riscv = RISCV_STACK_START.is_match(lines[i]);
        if lines.len() - i < 4 {
            return true;
        }
        let mut found = false;
        for ln in lines[i + 1..].iter().take(15) {
            if is_stack_start(ln) {
                break;
            }
            if is_frame_line(ln) {
                found = true;
                break;
            }
        }
        if !found && !riscv {
            return true;
        }
        seen_any |= found;
        i += 1;
    }
    !seen_any
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames() {
        let frame_names = |l| super::frame_names(l).collect::<Vec<_>>();
        assert_eq!(frame_names(" try_grab_page+0x1f/0x84"), vec!["try_grab_page"]);
        assert_eq!(frame_names(" [<ffffffff81234567>] foo.isra.3+0x1/0x2"), vec!["foo"]);
        assert_eq!(frame_names(" [<ffffffff81>] [<ffffffff82>] bar+0x1/0x2"), vec!["bar"]);
        assert_eq!(frame_names("[<c0101010>] (a_b) from [<c0101020>] (c_d+0x10/0x20)"), vec!["a_b", "c_d"]);
        assert!(frame_names(" __dump_stack lib/dump_stack.c:77 [inline]").is_empty());
        assert!(frame_names(" [<ffffffff81234567>] ? foo+0x1/0x2").is_empty());
        assert_eq!(frame_names("  [<0x1234>] x_y.cold+0x1/0x2"), vec!["x_y"]);
        assert!(frame_names("RIP: 0010:foo+0x1/0x2").is_empty());
        assert!(frame_names("Hardware name: QEMU Standard PC (i440FX + PIIX, 1996)").is_empty());
    }

    #[test]
    fn canonical_names() {
        assert_eq!(canonical("__x64_sys_ioctl"), "sys_ioctl");
        assert_eq!(canonical("__do_sys_memfd_secret"), "memfd_secret");
        assert_eq!(canonical("__se_sys_read"), "read");
        assert_eq!(canonical("ext4_writepages"), "ext4_writepages");
        assert_eq!(demangle("_Z8fakeNameiii"), "fakeName");
        assert_eq!(demangle("_RNvCscSpY9Juk0HT_7___rustc17rust_begin_unwind"), "__rustc::rust_begin_unwind");
        assert_eq!(demangle("plain"), "plain");
    }

    #[test]
    fn questionable_frames_count_as_a_stack_but_never_name_it() {
        let lines = ["Call Trace:", " <TASK>", " ? foo+0x1/0x2", " ? bar+0x1/0x2", " </TASK>"];
        assert!(!stack_missing(&lines));
        assert!(stack_missing(&["Call Trace:", " <TASK>", " </TASK>", "---[ end trace ]---"]));
    }

    #[test]
    fn hang_and_stall() {
        assert_eq!(hang_frame(&["__schedule", "schedule", "rwsem_down_write_slowpath", "ext4_break_layouts"]), Some("ext4_break_layouts"));
        assert_eq!(hang_frame(&["schedule", "synchronize_rcu_expedited", "foo"]), Some("synchronize_rcu"));
        assert_eq!(stall_frame(&["foo", "kvm_vcpu_ioctl", "vfs_ioctl", "x"]), Some("kvm_vcpu_ioctl"));
        assert_eq!(stall_frame(&["foo", "bar"]), None);
    }
}
