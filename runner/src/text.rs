//! Text kregress writes for people, made safe to show: titles and console
//! lines come from the guest, names from a run.json that may come from
//! another machine. It imports no other module of kregress.

use std::borrow::Cow;

/// `s` with every character a terminal, a Markdown or an XML reader would
/// take for something else written as a Rust escape (`\u{1b}`, `\r`):
/// control characters but newline and tab, and U+FFFE/U+FFFF (not XML
/// characters). Titles and console lines come from the guest: every text
/// kregress writes for people goes through here (summary.md, the terminal,
/// junit.xml, report.html through [`crate::report::html::esc`], repro.sh).
pub fn visible(s: &str) -> Cow<'_, str> {
    let hidden = |c: char| (c.is_control() && c != '\n' && c != '\t') || matches!(c, '\u{fffe}' | '\u{ffff}');
    if !s.contains(hidden) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.chars().map(|c| if hidden(c) { c.escape_default().to_string() } else { c.to_string() }).collect())
}
