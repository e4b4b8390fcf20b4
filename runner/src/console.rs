//! A guest's serial console, read in bulk and kept in bounded memory,
//! however much the kernel prints (a WARN storm is when it matters).
//!
//! - [`Reader`]: waits for the pipe QEMU writes the console to with poll(2)
//!   and reads up to [`CHUNK`] bytes at a time.
//! - [`Lines`]: cuts bytes into lines with memchr, without copying the lines
//!   that lie whole in a chunk; a line longer than [`MAX_LINE`] is cut.
//! - [`Log`]: console.log, written as the bytes come up to [`LOG_HEAD`],
//!   then only the last [`LOG_TAIL`] bytes are kept, behind a marker line
//!   saying how much was dropped between them.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;

/// Bytes read from the pipe at once.
pub const CHUNK: usize = 64 << 10;
/// A longer line is cut in pieces of this size (kernel lines hold at most
/// 1 KiB; the agent's longest, a hang with every thread's stack, ~20 KiB).
pub const MAX_LINE: usize = 256 << 10;
/// console.log keeps the first this many bytes (up to the end of a line)...
pub const LOG_HEAD: u64 = 8 << 20;
/// ...and the last this many (from the start of a line).
pub const LOG_TAIL: usize = 8 << 20;

/// What [`Reader::next`] got.
pub enum Got<'a> {
    /// Bytes read, at most [`CHUNK`]; a line may continue in the next chunk.
    Data(&'a [u8]),
    /// Nothing within the wait.
    Quiet,
    /// Every writer closed the pipe (QEMU exited).
    Eof,
}

/// The read end of the console pipe.
pub struct Reader<R> {
    pipe: R,
    buf: Vec<u8>,
}

impl<R: Read + AsRawFd> Reader<R> {
    /// Reads the console from `pipe`, the read end of QEMU's serial pipe, [`CHUNK`] bytes at a time.
    pub fn new(pipe: R) -> Self {
        Reader { pipe, buf: vec![0; CHUNK] }
    }

    /// The next bytes, waiting at most `wait` for them.
    pub fn next(&mut self, wait: Duration) -> std::io::Result<Got<'_>> {
        let mut pfd = libc::pollfd { fd: self.pipe.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let ms = wait.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd, which poll only writes.
        match unsafe { libc::poll(&mut pfd, 1, ms) } {
            0 => return Ok(Got::Quiet),
            n if n < 0 => {
                let e = std::io::Error::last_os_error();
                return if e.kind() == std::io::ErrorKind::Interrupted { Ok(Got::Quiet) } else { Err(e) };
            }
            _ => {}
        }
        match self.pipe.read(&mut self.buf) {
            Ok(0) => Ok(Got::Eof),
            Ok(n) => Ok(Got::Data(&self.buf[..n])),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Ok(Got::Quiet),
            Err(e) => Err(e),
        }
    }
}

/// Cuts a byte stream into lines (see the module doc).
#[derive(Default)]
pub struct Lines {
    /// The line begun in an earlier chunk.
    partial: Vec<u8>,
}

impl Lines {
    /// Feeds `bytes`: calls `each` with every line they complete (without
    /// its '\n'; invalid UTF-8 replaced) until `each` returns false. Returns
    /// false when it did; the rest of `bytes` is then dropped.
    pub fn push(&mut self, bytes: &[u8], mut each: impl FnMut(&str) -> bool) -> bool {
        let mut rest = bytes;
        while !rest.is_empty() {
            let nl = memchr::memchr(b'\n', rest);
            let room = MAX_LINE - self.partial.len();
            if nl.unwrap_or(rest.len()) > room {
                // Too long: what fits goes out as a line of its own.
                self.partial.extend_from_slice(&rest[..room]);
                rest = &rest[room..];
                if !self.emit(&mut each) {
                    return false;
                }
                continue;
            }
            let Some(i) = nl else {
                self.partial.extend_from_slice(rest);
                break;
            };
            let go_on = if self.partial.is_empty() {
                each(&String::from_utf8_lossy(&rest[..i]))
            } else {
                self.partial.extend_from_slice(&rest[..i]);
                self.emit(&mut each)
            };
            rest = &rest[i + 1..];
            if !go_on {
                return false;
            }
        }
        true
    }

    /// End of the stream: a last line without '\n' goes out too.
    pub fn finish(&mut self, each: impl FnMut(&str) -> bool) {
        if !self.partial.is_empty() {
            self.emit(each);
        }
    }

    fn emit(&mut self, mut each: impl FnMut(&str) -> bool) -> bool {
        let go_on = each(&String::from_utf8_lossy(&self.partial));
        self.partial.clear();
        go_on
    }
}

/// console.log, capped (see the module doc). Every method returns the
/// first write error, so that a full disk is not a silent gap: the caller
/// stops the boot (a console with a hole is no evidence).
pub struct Log {
    out: BufWriter<File>,
    head: u64,
    /// The last byte written to the head ended a line.
    head_at_nl: bool,
    /// The head is complete: bytes go to `tail`.
    tail_only: bool,
    tail: Vec<u8>,
    /// The bytes dropped from the tail's front ended with a whole line.
    tail_at_nl: bool,
    dropped_bytes: u64,
    dropped_lines: u64,
    caps: (u64, usize),
}

impl Log {
    /// Creates console.log at `path` with the standard caps ([`LOG_HEAD`], [`LOG_TAIL`]).
    pub fn create(path: &Path) -> std::io::Result<Log> {
        Self::with_caps(path, LOG_HEAD, LOG_TAIL)
    }

    /// A log keeping `head` and `tail` bytes (tests use small ones).
    pub(crate) fn with_caps(path: &Path, head: u64, tail: usize) -> std::io::Result<Log> {
        Ok(Log {
            out: BufWriter::with_capacity(CHUNK, File::create(path)?),
            head: 0,
            head_at_nl: true,
            tail_only: false,
            tail: Vec::new(),
            tail_at_nl: true,
            dropped_bytes: 0,
            dropped_lines: 0,
            caps: (head, tail),
        })
    }

    /// Appends console bytes: written through up to the head cap, then only the last [`LOG_TAIL`] bytes are kept.
    pub fn write(&mut self, mut bytes: &[u8]) -> std::io::Result<()> {
        let (head_cap, tail_cap) = self.caps;
        if !self.tail_only {
            // Up to the cap, then on to the end of that line (a line is at most MAX_LINE).
            let mut n = bytes.len();
            if self.head + n as u64 > head_cap {
                let under = head_cap.saturating_sub(self.head) as usize;
                let limit = (head_cap + MAX_LINE as u64).saturating_sub(self.head) as usize;
                // The line that crosses the cap ends at its first '\n' from byte under-1 on.
                let end = if under == 0 && self.head_at_nl {
                    0
                } else {
                    let from = under.saturating_sub(1);
                    memchr::memchr(b'\n', &bytes[from..]).map_or(n, |i| from + i + 1)
                };
                n = end.min(limit);
                self.tail_only = n < bytes.len() || n == limit;
            }
            self.out.write_all(&bytes[..n])?;
            if n > 0 {
                self.head += n as u64;
                self.head_at_nl = bytes[n - 1] == b'\n';
            }
            bytes = &bytes[n..];
        }
        if bytes.is_empty() {
            return Ok(());
        }
        self.tail.extend_from_slice(bytes);
        // Cut the front in big steps: each byte is moved about once.
        if self.tail.len() > 2 * tail_cap {
            self.drop_front(self.tail.len() - tail_cap);
        }
        Ok(())
    }

    /// Pushes what is buffered to the file (when the console goes quiet).
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    /// Writes the tail (after the marker, if anything was dropped).
    pub fn finish(mut self) -> std::io::Result<()> {
        let tail_cap = self.caps.1;
        if self.tail.len() > tail_cap {
            self.drop_front(self.tail.len() - tail_cap);
        }
        if self.dropped_bytes > 0 {
            // The tail starts with a whole line.
            if !self.tail_at_nl {
                let i = memchr::memchr(b'\n', &self.tail).map_or(self.tail.len(), |i| i + 1);
                self.drop_front(i);
            }
            let marker = format!(
                "[kregress: {} bytes ({} lines) of console dropped here: console.log keeps the first {} and the last {} bytes]\n",
                self.dropped_bytes, self.dropped_lines, self.caps.0, self.caps.1
            );
            self.out.write_all(marker.as_bytes())?;
        }
        self.out.write_all(&self.tail)?;
        self.out.flush()
    }

    fn drop_front(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        self.tail_at_nl = self.tail[n - 1] == b'\n';
        self.dropped_bytes += n as u64;
        self.dropped_lines += memchr::memchr_iter(b'\n', &self.tail[..n]).count() as u64;
        self.tail.drain(..n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(chunks: &[&[u8]]) -> Vec<String> {
        let mut l = Lines::default();
        let mut out = Vec::new();
        for c in chunks {
            l.push(c, |s| {
                out.push(s.to_string());
                true
            });
        }
        l.finish(|s| {
            out.push(s.to_string());
            true
        });
        out
    }

    #[test]
    fn lines_across_chunks() {
        assert_eq!(lines_of(&[b"a\nb", b"c\r\n\nd", b"\xffe"]), ["a", "bc\r", "", "d\u{fffd}e"]);
        assert_eq!(lines_of(&[b"x\n"]), ["x"]);
        assert!(lines_of(&[]).is_empty());
    }

    #[test]
    fn long_lines_are_cut() {
        let long = vec![b'x'; 2 * MAX_LINE + 5];
        let mut input = long.clone();
        input.extend_from_slice(b"\nend\n");
        // Whole, and in pieces that do not line up with the cut.
        for piece in [input.len(), 1000, 7] {
            let chunks: Vec<&[u8]> = input.chunks(piece).collect();
            let got = lines_of(&chunks);
            let lens: Vec<usize> = got.iter().map(|l| l.len()).collect();
            assert_eq!(lens, [MAX_LINE, MAX_LINE, 5, 3], "pieces of {piece}");
        }
    }

    #[test]
    fn each_can_stop() {
        let mut l = Lines::default();
        let mut seen = Vec::new();
        let go_on = l.push(b"a\nstop\nb\n", |s| {
            seen.push(s.to_string());
            s != "stop"
        });
        assert!(!go_on);
        assert_eq!(seen, ["a", "stop"]);
    }

    #[test]
    fn the_log_keeps_head_and_tail_with_a_marker() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.log");
        let mut log = Log::with_caps(&path, 100, 100).unwrap();
        let text: String = (0..1000).map(|i| format!("line {i:04}\n")).collect(); // 10 bytes a line
        for c in text.as_bytes().chunks(33) {
            log.write(c).unwrap();
        }
        log.finish().unwrap();
        let got = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = got.lines().collect();
        // The head up to the end of the line at byte 100, the tail from a line start.
        assert_eq!(lines[0], "line 0000");
        assert_eq!(lines[9], "line 0009");
        assert!(lines[10].starts_with("[kregress: 9800 bytes (980 lines) of console dropped here"), "{}", lines[10]);
        assert_eq!(&lines[11..], (990..1000).map(|i| format!("line {i:04}")).collect::<Vec<_>>());
        // Small enough: kept whole, no marker.
        let mut log = Log::with_caps(&path, 100, 100).unwrap();
        log.write(&text.as_bytes()[..200]).unwrap();
        log.finish().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text[..200]);
    }

    #[test]
    fn the_log_is_bounded_by_its_caps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.log");
        let mut log = Log::with_caps(&path, 1 << 10, 1 << 10).unwrap();
        let chunk = vec![b'y'; 4096];
        for _ in 0..1000 {
            log.write(&chunk).unwrap();
            assert!(log.tail.len() <= (2 << 10) + 4096);
        }
        log.finish().unwrap();
        // No newline at all: the head goes on for at most MAX_LINE, the tail is dropped
        // whole (it has no line start) and the marker counts every byte.
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size <= (1 << 10) + MAX_LINE as u64 + 200, "{size}");
    }

    #[test]
    fn write_errors_are_returned() {
        let Ok(full) = File::options().write(true).open("/dev/full") else { return };
        let mut log = Log::with_caps(Path::new("/dev/null"), 100, 100).unwrap();
        log.out = BufWriter::new(full);
        // The first write that reaches the file says so (BufWriter holds 8 KiB).
        let e = log.write(&vec![b'z'; 3 * CHUNK]).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC));
        let mut log = Log::with_caps(Path::new("/dev/null"), 100, 100).unwrap();
        log.out = BufWriter::new(File::options().write(true).open("/dev/full").unwrap());
        log.write(b"short\n").unwrap();
        assert_eq!(log.flush().unwrap_err().raw_os_error(), Some(libc::ENOSPC));
    }

    #[test]
    fn the_reader_reads_bulk_and_sees_the_end() {
        let (r, mut w) = std::io::pipe().unwrap();
        let mut reader = Reader::new(r);
        assert!(matches!(reader.next(Duration::from_millis(10)).unwrap(), Got::Quiet));
        let writer = std::thread::spawn(move || w.write_all(&vec![b'q'; 3 * CHUNK]).unwrap());
        let mut got = 0;
        loop {
            match reader.next(Duration::from_secs(5)).unwrap() {
                Got::Data(d) => {
                    assert!(d.len() <= CHUNK);
                    got += d.len();
                }
                Got::Quiet => panic!("stalled after {got} bytes"),
                Got::Eof => break,
            }
        }
        writer.join().unwrap();
        assert_eq!(got, 3 * CHUNK);
    }
}
