//! Console line cleaning.
//!
//! A raw console line carries noise that changes from run to run or from
//! kernel config to kernel config: `** N printk messages dropped **`, a
//! `<4>` log level, the `[  12.345678]` timestamp, the `[T123]`/`[C1]`
//! caller id (CONFIG_PRINTK_CALLER), CR and terminal escape sequences.
//! [`clean_line`] removes all of it and tells who printed the line (its
//! [`Context`]), because with caller ids two reports printed at the same time
//! by two tasks can be told apart.
//!
//! It also flags "questionable" stack frames (` ? foo+0x1/0x2` on x86,
//! `(unreliable)` on powerpc): the unwinder found them on the stack but is
//! not sure they are real callers, so they never name a bug. They stay in
//! the text: they are still a stack trace for a human.

use std::borrow::Cow;

/// Who printed a line, as far as the console tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Context {
    /// No timestamp: userspace output, or a console without printk.time.
    Bare,
    /// Timestamp but no caller id.
    Console,
    /// `[T123]`: printed by task 123.
    Task(u32),
    /// `[C1]`: printed by CPU 1 outside task context (irq, NMI).
    Cpu(u32),
}

/// One console line after cleaning.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Cleaned<'a> {
    /// The message without any prefix.
    pub(crate) text: Cow<'a, str>,
    pub(crate) context: Context,
    /// A `?` frame or an `(unreliable)` one: not to be used as a frame.
    pub(crate) questionable: bool,
}

/// Cleans one line (without its trailing newline).
pub(crate) fn clean_line(raw: &str) -> Cleaned<'_> {
    let mut line = raw.trim_end_matches(['\r', '\n']);
    // A bare CR inside a line means the terminal overwrote what came before.
    if let Some(pos) = line.rfind('\r') {
        line = &line[pos + 1..];
    }
    let line: Cow<'_, str> = if line.contains('\x1b') { Cow::Owned(strip_escapes(line)) } else { Cow::Borrowed(line) };
    let (start, context) = match split_prefix(&line) {
        Some((start, context)) => (start, context),
        None => (log_level_len(&line), Context::Bare),
    };
    let text = slice_cow(line, start);
    let questionable = context != Context::Bare && is_questionable(&text);
    Cleaned { text, context, questionable }
}

/// A frame the unwinder is not sure about. (`<EOI>` lines hold a `?` too.)
pub(crate) fn is_questionable(text: &str) -> bool {
    let b = text.as_bytes();
    let qmark = memchr::memchr_iter(b'?', b).any(|i| i > 0 && b[i - 1] == b' ' && b.get(i + 1) == Some(&b' '));
    (qmark || text.ends_with(" (unreliable)")) && !text.contains("<EOI>")
}

fn slice_cow(s: Cow<'_, str>, start: usize) -> Cow<'_, str> {
    match s {
        Cow::Borrowed(b) => Cow::Borrowed(&b[start..]),
        Cow::Owned(o) => Cow::Owned(o[start..].to_string()),
    }
}

/// Removes ANSI escape sequences (CSI `ESC [ ... final`, and two-byte ones).
fn strip_escapes(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        // CSI: parameters and intermediates, then one final byte in @..~;
        // other escapes are two bytes.
        if chars.next() == Some('[') {
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        }
    }
    out
}

/// Length of a leading `<N>` log level, or 0.
fn log_level_len(s: &str) -> usize {
    let b = s.as_bytes();
    if b.first() != Some(&b'<') {
        return 0;
    }
    let digits = b[1..].iter().take_while(|c| c.is_ascii_digit()).count();
    if digits > 0 && b.get(1 + digits) == Some(&b'>') {
        2 + digits
    } else {
        0
    }
}

/// Finds the printk prefix: `[** N printk messages dropped ** ][... login: ][<N>][ts][caller] `.
/// Returns the offset of the message and the context.
fn split_prefix(line: &str) -> Option<(usize, Context)> {
    let mut at = 0;
    if let Some(rest) = line.strip_prefix("** ") {
        if let Some(end) = rest.find(" printk messages dropped ** ") {
            if rest[..end].bytes().all(|c| c.is_ascii_digit()) {
                at = 3 + end + " printk messages dropped ** ".len();
            }
        }
    }
    if let Some(found) = parse_stamp(line, at) {
        return Some(found);
    }
    // A getty prompt can precede the kernel message on the same line.
    let login = line.rfind(" login: ")?;
    parse_stamp(line, login + " login: ".len())
}

fn parse_stamp(line: &str, mut i: usize) -> Option<(usize, Context)> {
    let b = line.as_bytes();
    i += log_level_len(&line[i..]);
    if b.get(i) != Some(&b'[') {
        return None;
    }
    i += 1;
    while b.get(i) == Some(&b' ') {
        i += 1;
    }
    let n = digits(b, i);
    if n == 0 || b.get(i + n) != Some(&b'.') {
        return None;
    }
    i += n + 1;
    let n = digits(b, i);
    if n == 0 || b.get(i + n) != Some(&b']') {
        return None;
    }
    i += n + 1;
    let mut context = Context::Console;
    if b.get(i) == Some(&b'[') {
        let mut j = i + 1;
        while b.get(j) == Some(&b' ') {
            j += 1;
        }
        let kind = b.get(j).copied();
        let n = digits(b, j + 1);
        if matches!(kind, Some(b'T') | Some(b'C')) && n > 0 && b.get(j + 1 + n) == Some(&b']') {
            let id: u32 = line[j + 1..j + 1 + n].parse().unwrap_or(u32::MAX);
            context = if kind == Some(b'T') { Context::Task(id) } else { Context::Cpu(id) };
            i = j + 2 + n;
        }
    }
    if b.get(i) != Some(&b' ') {
        return None;
    }
    Some((i + 1, context))
}

fn digits(b: &[u8], from: usize) -> usize {
    b.get(from..).map_or(0, |s| s.iter().take_while(|c| c.is_ascii_digit()).count())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(raw: &str) -> String {
        clean_line(raw).text.into_owned()
    }

    #[test]
    fn strips_timestamp_and_caller() {
        let c = clean_line("[   12.345678][ T123] WARNING: CPU: 1 PID: 51 at mm/gup.c:224 x+0x1/0x2");
        assert_eq!(c.context, Context::Task(123));
        assert_eq!(c.text, "WARNING: CPU: 1 PID: 51 at mm/gup.c:224 x+0x1/0x2");
        let c = clean_line("[    7.307037][    C1] foo");
        assert_eq!((c.context, c.text.as_ref()), (Context::Cpu(1), "foo"));
        let c = clean_line("[    7.307037] foo");
        assert_eq!((c.context, c.text.as_ref()), (Context::Console, "foo"));
    }

    #[test]
    fn strips_level_dropped_cr_and_escapes() {
        assert_eq!(text("<4>[    1.000000] hello\r"), "hello");
        assert_eq!(text("<4>hello"), "hello");
        assert_eq!(text("** 93 printk messages dropped ** [  322.962139] BUG: x"), "BUG: x");
        assert_eq!(text("\x1b[0;31m[    1.0] red\x1b[0m text"), "red text");
        assert_eq!(text("progress 10%\r[    2.5] BUG: y"), "BUG: y");
        assert_eq!(text("syzkaller login: [   10.1] BUG: z"), "BUG: z");
        let c = clean_line("no stamp at all");
        assert_eq!((c.context, c.text.as_ref()), (Context::Bare, "no stamp at all"));
    }

    #[test]
    fn flags_questionable_frames() {
        let c = clean_line("[    8.1]  ? __warn+0x7e/0xd0");
        assert!(c.questionable);
        assert_eq!(c.text, " ? __warn+0x7e/0xd0");
        assert!(!clean_line("[    8.1]  __warn+0x7e/0xd0").questionable);
        assert!(!clean_line("[    8.1]  ? foo <EOI>").questionable);
        assert!(clean_line("[    8.1] [c0000] foo+0x1/0x2 (unreliable)").questionable);
        // Without a timestamp nothing is trusted to be a kernel frame anyway.
        assert!(!clean_line(" ? __warn+0x7e/0xd0").questionable);
    }
}
