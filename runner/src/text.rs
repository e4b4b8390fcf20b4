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

/// An enum of names, each spelled once: `as_str` is the name people read
/// (`Display`) and files hold (`Serialize`, `Deserialize`; an unknown name
/// is serde's "unknown variant `X`, expected one of ..." error). `ALL`
/// lists the values in order.
macro_rules! named {
    ($t:ident { $($v:ident => $s:literal),+ $(,)? }) => {
        impl $t {
            /// Every value, in the order the enum declares them.
            #[allow(dead_code)] // not every named enum lists its values (bisect's StepVerdict does not)
            pub const ALL: &'static [$t] = &[$($t::$v),+];
            /// The name people read and files hold (run.json, verdicts.json).
            pub fn as_str(self) -> &'static str {
                match self {
                    $($t::$v => $s),+
                }
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                // A visitor: its error is raised inside the deserializer,
                // which then names the field and its line.
                struct Name;
                impl serde::de::Visitor<'_> for Name {
                    type Value = $t;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str(concat!("one of", $(" `", $s, "`"),+))
                    }
                    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<$t, E> {
                        match s {
                            $($s => Ok($t::$v),)+
                            _ => Err(E::unknown_variant(s, &[$($s),+])),
                        }
                    }
                }
                d.deserialize_str(Name)
            }
        }
    };
}
pub(crate) use named;
