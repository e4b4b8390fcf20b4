//! One error type for the whole runner, and the one exit-code policy
//! ([`exit_code`]): an error's class, or what a command that ran to its end
//! found ([`Findings`]), decides the exit code, so a user (or CI) can tell
//! bad input from a broken kernel from a broken host.

use std::fmt;

/// Why kregress stopped; maps 1:1 to the documented exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The kernel under test failed (did not build/boot) or a regression: exit 1.
    Kernel,
    /// The scenario, a file it names, or a command-line argument is wrong: exit 2.
    BadInput,
    /// The harness or host failed (missing tool, I/O error, QEMU missing): exit 3.
    Infra,
    /// Interrupted by the user (Ctrl-C / SIGTERM): exit 130.
    Interrupted,
}

/// Why a command stopped: its [`Class`] (the exit code) and one line for
/// the user. An error made from another (an I/O error, a failed command's)
/// keeps it as its [`std::error::Error::source`], for code that asks what
/// it was (`downcast_ref::<std::io::Error>()`); the message already quotes
/// it, as kregress prints one line, never a chain.
#[derive(Debug)]
pub struct Error {
    /// What failed, and so the exit code: bad input 2, kernel 1, host 3.
    pub class: Class,
    /// The whole message, the source's text included.
    pub msg: String,
    /// A kernel build that failed to compile: the first line of make's
    /// output that says `error:` (the compiler's, the assembler's or the
    /// linker's), as `crate::kernel::build` saw it go by. `None` for every
    /// other failure, and for a build that failed without such a line.
    pub compiler_error: Option<String>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// kregress's result: [`Error`] unless said otherwise.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn new(class: Class, msg: impl Into<String>) -> Self {
        Error { class, msg: msg.into(), compiler_error: None, source: None }
    }
    /// The same error, made from `source` (whose text the message quotes).
    pub(crate) fn because(self, source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        Error { source: Some(source.into()), ..self }
    }
    /// The same error, carrying `line` as its [`Error::compiler_error`].
    pub(crate) fn with_compiler_error(self, line: Option<String>) -> Self {
        Error { compiler_error: line, ..self }
    }
    /// The exit code of a command that stopped with this error ([`exit_code`]).
    pub fn exit_code(&self) -> i32 {
        code(Some(self.class))
    }
}

/// What a command that ran to its end found, for its exit code. Each
/// command says what counts: `run` a cell not as the scenario expects,
/// `nightly` and `report` a regression against the baseline, `build` a
/// kernel that did not build.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Findings {
    /// A kernel failed (exit 1).
    pub kernel_failed: bool,
    /// The harness failed in some cell (MISS): its outcome is unknown (exit 3).
    pub harness_failed: bool,
}

/// The exit code of a command: an error's class, else what the command
/// found. A kernel failure outranks a harness failure: a failure that was
/// seen stands whatever other cells could not be watched. The table
/// README's "Exit codes" documents:
///
/// | code | meaning |
/// |---|---|
/// | 0 | as expected |
/// | 1 | a kernel failed ([`Class::Kernel`], [`Findings::kernel_failed`]) |
/// | 2 | bad input ([`Class::BadInput`]) |
/// | 3 | the host or the harness failed ([`Class::Infra`], [`Findings::harness_failed`]) |
/// | 130 | interrupted ([`Class::Interrupted`]) |
pub fn exit_code(r: &Result<Findings>) -> i32 {
    code(match r {
        Err(e) => Some(e.class),
        Ok(f) if f.kernel_failed => Some(Class::Kernel),
        Ok(f) if f.harness_failed => Some(Class::Infra),
        Ok(_) => None,
    })
}

/// The code of each class; `None` is success.
fn code(class: Option<Class>) -> i32 {
    match class {
        None => 0,
        Some(Class::Kernel) => 1,
        Some(Class::BadInput) => 2,
        Some(Class::Infra) => 3,
        Some(Class::Interrupted) => 130,
    }
}

/// Bad input: exit 2 and one line. The message quotes the user's text (a
/// key, a name, a path) as it came: a newline in it is written `\n`, and
/// every other character a terminal would act on as [`crate::text::visible`]
/// writes it, so that every error about an input is one line, whatever it quotes.
pub(crate) fn bad_input(msg: impl Into<String>) -> Error {
    let msg: String = msg.into();
    Error::new(Class::BadInput, crate::text::visible(&msg.replace('\n', "\\n")).into_owned())
}
pub(crate) fn infra(msg: impl Into<String>) -> Error {
    Error::new(Class::Infra, msg)
}
pub(crate) fn kernel(msg: impl Into<String>) -> Error {
    Error::new(Class::Kernel, msg)
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Adds what was being done to a low-level error, kept as the source:
/// `what: the error`. A failure of the host's I/O is the host's (Infra).
pub(crate) trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

/// The errors [`Context`] wraps: the host's and its libraries' (never a
/// kregress [`Error`], whose class it would overwrite).
pub(crate) trait Foreign: std::error::Error + Send + Sync + 'static {}
impl Foreign for std::io::Error {}
impl Foreign for serde_json::Error {}
impl Foreign for tempfile::PersistError {}

impl<T, E: Foreign> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| infra(format!("{}: {e}", what())).because(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_input_is_one_line_whatever_it_quotes() {
        let e = bad_input("t.yaml:7: unknown field `x\ny\r\u{1b}[31m`, expected one of `name`");
        assert_eq!(e.msg, "t.yaml:7: unknown field `x\\ny\\r\\u{1b}[31m`, expected one of `name`");
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn an_error_made_from_another_keeps_it_as_its_source() {
        use std::error::Error as _;
        let e = std::fs::read("/nonexistent/kregress").context(|| "reading /nonexistent/kregress".into()).unwrap_err();
        assert_eq!(e.exit_code(), 3);
        assert_eq!(e.msg, "reading /nonexistent/kregress: No such file or directory (os error 2)");
        let io = e.source().and_then(|s| s.downcast_ref::<std::io::Error>()).expect("the io::Error");
        assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
        assert!(bad_input("x").source().is_none());
    }

    #[test]
    fn one_exit_code_table() {
        let found = |kernel_failed, harness_failed| exit_code(&Ok(Findings { kernel_failed, harness_failed }));
        assert_eq!(found(false, false), 0);
        assert_eq!(found(true, false), 1);
        assert_eq!(found(false, true), 3);
        // A failure seen outranks cells the harness could not watch (run
        // gave 3 here, nightly 1; docs/ci.md documents nightly's order).
        assert_eq!(found(true, true), 1);
        for (class, want) in [(Class::Kernel, 1), (Class::BadInput, 2), (Class::Infra, 3), (Class::Interrupted, 130)] {
            let e = Error::new(class, "x");
            assert_eq!(e.exit_code(), want, "{class:?}");
            assert_eq!(exit_code(&Err(e)), want, "{class:?}");
        }
    }
}
