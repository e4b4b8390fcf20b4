//! Thin wrappers around the syscalls the agent needs (libc), with errors that name the call.

use std::ffi::CString;
use std::fmt;
use std::os::unix::io::RawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use kregress_agent::Mapping;

/// STATX_ATTR_DAX from include/uapi/linux/stat.h.
pub const STATX_ATTR_DAX: u64 = 0x0020_0000;
pub const MIB: usize = 1 << 20;
pub const PMD_SIZE: usize = 2 << 20;

/// A failed syscall: which call, on what, and errno.
#[derive(Debug, Clone)]
pub struct SysError {
    pub what: String,
    pub errno: i32,
}

impl fmt::Display for SysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ({})", self.what, errno_name(self.errno), std::io::Error::from_raw_os_error(self.errno))
    }
}

pub type SysResult<T> = Result<T, SysError>;

pub fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Build a SysError from the current errno.
pub fn last(what: impl Into<String>) -> SysError {
    SysError { what: what.into(), errno: errno() }
}

pub use kregress_agent::errno_name;

fn cstr(p: &str) -> CString {
    CString::new(p).expect("path without NUL")
}

pub fn mount(src: &str, target: &str, fstype: &str, flags: libc::c_ulong, data: &str) -> SysResult<()> {
    let (s, t, f, d) = (cstr(src), cstr(target), cstr(fstype), cstr(data));
    let dp = if data.is_empty() { std::ptr::null() } else { d.as_ptr() as *const libc::c_void };
    let r = unsafe { libc::mount(s.as_ptr(), t.as_ptr(), f.as_ptr(), flags, dp) };
    if r != 0 {
        return Err(last(format!("mount -t {fstype} -o {data:?} {src} {target}")));
    }
    Ok(())
}

pub fn umount(target: &str, flags: libc::c_int) -> SysResult<()> {
    let t = cstr(target);
    if unsafe { libc::umount2(t.as_ptr(), flags) } != 0 {
        return Err(last(format!("umount {target}")));
    }
    Ok(())
}

/// statx(2) of a path; returns (attributes, attributes_mask).
pub fn statx_attributes(path: &str) -> SysResult<(u64, u64)> {
    let p = cstr(path);
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::statx(libc::AT_FDCWD, p.as_ptr(), 0, libc::STATX_BASIC_STATS, &mut st) };
    if r != 0 {
        return Err(last(format!("statx {path}")));
    }
    Ok((st.stx_attributes, st.stx_attributes_mask))
}

/// An owned file descriptor.
pub struct Fd(pub RawFd);

impl Fd {
    pub fn open(path: &str, flags: libc::c_int) -> SysResult<Fd> {
        let p = cstr(path);
        let fd = unsafe { libc::open(p.as_ptr(), flags | libc::O_CLOEXEC, 0o644) };
        if fd < 0 {
            return Err(last(format!("open {path}")));
        }
        Ok(Fd(fd))
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        unsafe { libc::close(self.0) };
    }
}

pub fn ftruncate(fd: &Fd, len: u64) -> SysResult<()> {
    if unsafe { libc::ftruncate(fd.0, len as libc::off_t) } != 0 {
        return Err(last(format!("ftruncate({len})")));
    }
    Ok(())
}

pub fn fsync(fd: &Fd) -> SysResult<()> {
    if unsafe { libc::fsync(fd.0) } != 0 {
        return Err(last("fsync"));
    }
    Ok(())
}

pub fn punch_hole(fd: &Fd, off: u64, len: u64) -> SysResult<()> {
    let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
    if unsafe { libc::fallocate(fd.0, mode, off as libc::off_t, len as libc::off_t) } != 0 {
        return Err(last(format!("fallocate(PUNCH_HOLE, {off}, {len})")));
    }
    Ok(())
}

/// pread(2) of exactly `len` bytes into raw memory (e.g. a DAX mapping): a short read is EIO.
pub fn pread_exact(fd: &Fd, buf: *mut u8, len: usize, off: u64) -> SysResult<()> {
    let n = unsafe { libc::pread(fd.0, buf as *mut libc::c_void, len, off as libc::off_t) };
    if n < 0 {
        return Err(last(format!("pread({len} bytes at {off})")));
    }
    if n as usize != len {
        return Err(SysError { what: format!("pread({len} bytes at {off}) returned {n}"), errno: libc::EIO });
    }
    Ok(())
}

pub fn pwrite_exact(fd: &Fd, buf: *const u8, len: usize, off: u64) -> SysResult<()> {
    let n = unsafe { libc::pwrite(fd.0, buf as *const libc::c_void, len, off as libc::off_t) };
    if n < 0 {
        return Err(last(format!("pwrite({len} bytes at {off})")));
    }
    if n as usize != len {
        return Err(SysError { what: format!("pwrite({len} bytes at {off}) returned {n}"), errno: libc::EIO });
    }
    Ok(())
}

/// A memory mapping, unmapped on drop. `Send` so workload threads can share one.
pub struct Map {
    pub ptr: *mut u8,
    pub len: usize,
}
unsafe impl Send for Map {}
unsafe impl Sync for Map {}

impl Map {
    /// Anonymous, page-aligned, private memory (O_DIRECT buffers).
    pub fn anon(len: usize) -> SysResult<Map> {
        let p = unsafe {
            libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0)
        };
        if p == libc::MAP_FAILED {
            return Err(last(format!("mmap(anonymous, {len})")));
        }
        Ok(Map { ptr: p as *mut u8, len })
    }

    /// MAP_SHARED mapping of a file. `pte`: MADV_NOHUGEPAGE; `pmd`: address aligned to
    /// 2 MiB and MADV_HUGEPAGE. The pages are not touched.
    pub fn shared(fd: &Fd, len: usize, mapping: Mapping) -> SysResult<Map> {
        Map::file(fd, len, mapping, libc::MAP_SHARED)
    }

    /// Like [`Map::shared`] with `MAP_PRIVATE` (copy-on-write of the file's pages).
    pub fn private(fd: &Fd, len: usize, mapping: Mapping) -> SysResult<Map> {
        Map::file(fd, len, mapping, libc::MAP_PRIVATE)
    }

    /// A file mapping with `share` (`MAP_SHARED` or `MAP_PRIVATE`), see [`Map::shared`].
    pub fn file(fd: &Fd, len: usize, mapping: Mapping, share: libc::c_int) -> SysResult<Map> {
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        let map = match mapping {
            Mapping::Pte => {
                let p = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, share, fd.0, 0) };
                if p == libc::MAP_FAILED {
                    return Err(last(format!("mmap({}, {len})", share_name(share))));
                }
                Map { ptr: p as *mut u8, len }
            }
            Mapping::Pmd => {
                // Reserve len + 2 MiB, place the file mapping on a 2 MiB boundary inside it,
                // and give back the slack on both sides.
                let resv = len + PMD_SIZE;
                let r = unsafe {
                    libc::mmap(
                        std::ptr::null_mut(),
                        resv,
                        libc::PROT_NONE,
                        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                        -1,
                        0,
                    )
                };
                if r == libc::MAP_FAILED {
                    return Err(last(format!("mmap(reserve {resv})")));
                }
                let base = r as usize;
                let aligned = (base + PMD_SIZE - 1) & !(PMD_SIZE - 1);
                let p = unsafe { libc::mmap(aligned as *mut libc::c_void, len, prot, share | libc::MAP_FIXED, fd.0, 0) };
                if p == libc::MAP_FAILED {
                    let e = last(format!("mmap({}|MAP_FIXED, {len}, 2M aligned)", share_name(share)));
                    unsafe { libc::munmap(r, resv) };
                    return Err(e);
                }
                unsafe {
                    if aligned > base {
                        libc::munmap(base as *mut libc::c_void, aligned - base);
                    }
                    let end = aligned + len;
                    if base + resv > end {
                        libc::munmap(end as *mut libc::c_void, base + resv - end);
                    }
                }
                Map { ptr: aligned as *mut u8, len }
            }
        };
        let advice = match mapping {
            Mapping::Pte => libc::MADV_NOHUGEPAGE,
            Mapping::Pmd => libc::MADV_HUGEPAGE,
        };
        if unsafe { libc::madvise(map.ptr as *mut libc::c_void, len, advice) } != 0 {
            return Err(last(format!("madvise({})", if advice == libc::MADV_HUGEPAGE { "MADV_HUGEPAGE" } else { "MADV_NOHUGEPAGE" })));
        }
        Ok(map)
    }

    pub fn words(&self) -> &[u64] {
        unsafe { std::slice::from_raw_parts(self.ptr as *const u64, self.len / 8) }
    }

    pub fn words_mut(&mut self) -> &mut [u64] {
        unsafe { std::slice::from_raw_parts_mut(self.ptr as *mut u64, self.len / 8) }
    }
}

fn share_name(share: libc::c_int) -> &'static str {
    if share == libc::MAP_PRIVATE {
        "MAP_PRIVATE"
    } else {
        "MAP_SHARED"
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, self.len) };
    }
}

/// The agent's one PRNG: xorshift64 (13, 7, 17), small and deterministic.
/// The same seed gives the same stream on every machine; a zero seed is
/// replaced by a fixed one (xorshift never leaves zero).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(if seed == 0 { 0x2545_f491_4f6c_dd1d } else { seed })
    }
    /// The next value of the stream.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Deterministic test data: word `i` of a region with seed `seed`.
#[inline]
pub fn pattern_word(seed: u64, i: u64) -> u64 {
    // splitmix64
    let mut z = seed.wrapping_add(i.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fill `words` with the pattern, `first` being the index of words[0] in the region.
pub fn fill_pattern(words: &mut [u64], seed: u64, first: u64) {
    for (k, w) in words.iter_mut().enumerate() {
        *w = pattern_word(seed, first + k as u64);
    }
}

/// Mismatches between `words` and the pattern.
pub struct Mismatch {
    pub bad_words: u64,
    pub first_word: u64,
    pub got: u64,
    pub want: u64,
}

pub fn check_pattern(words: &[u64], seed: u64, first: u64) -> Option<Mismatch> {
    let mut m: Option<Mismatch> = None;
    for (k, &w) in words.iter().enumerate() {
        let want = pattern_word(seed, first + k as u64);
        if w != want {
            match &mut m {
                Some(m) => m.bad_words += 1,
                None => m = Some(Mismatch { bad_words: 1, first_word: first + k as u64, got: w, want }),
            }
        }
    }
    m
}

/// Minor page faults of the calling thread so far (getrusage RUSAGE_THREAD). A PMD
/// mapping faults once per 2 MiB, a PTE mapping once per 4 KiB page: the difference
/// tells which one a DAX mapping got (smaps' FilePmdMapped does not count DAX pages).
pub fn minor_faults() -> u64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    ru.ru_minflt as u64
}

/// struct fsxattr from include/uapi/linux/fs.h.
#[repr(C)]
#[derive(Default)]
struct FsXattr {
    xflags: u32,
    extsize: u32,
    nextents: u32,
    projid: u32,
    cowextsize: u32,
    pad: [u8; 8],
}
const FS_IOC_FSGETXATTR: libc::c_ulong = 0x801c_581f;
const FS_IOC_FSSETXATTR: libc::c_ulong = 0x401c_5820;
const FS_XFLAG_EXTSIZE: u32 = 0x800;

/// Extent size hint on an empty file (FS_IOC_FSSETXATTR, FS_XFLAG_EXTSIZE).
pub fn set_extsize_hint(fd: &Fd, bytes: u32) -> SysResult<()> {
    let mut x = FsXattr::default();
    if unsafe { libc::ioctl(fd.0, FS_IOC_FSGETXATTR, &mut x) } != 0 {
        return Err(last("FS_IOC_FSGETXATTR"));
    }
    x.xflags |= FS_XFLAG_EXTSIZE;
    x.extsize = bytes;
    if unsafe { libc::ioctl(fd.0, FS_IOC_FSSETXATTR, &x) } != 0 {
        return Err(last("FS_IOC_FSSETXATTR(extsize)"));
    }
    Ok(())
}

pub fn fallocate(fd: &Fd, len: u64) -> SysResult<()> {
    if unsafe { libc::fallocate(fd.0, 0, 0, len as libc::off_t) } != 0 {
        return Err(last(format!("fallocate(0, {len})")));
    }
    Ok(())
}

pub fn exists(p: &str) -> bool {
    Path::new(p).exists()
}

/// Poll until `p` exists or `timeout` passed.
pub fn wait_for_path(p: &str, timeout: Duration) -> bool {
    let t = Instant::now();
    while t.elapsed() < timeout {
        if exists(p) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    exists(p)
}

pub fn uname_release() -> String {
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return String::new();
    }
    let b: Vec<u8> = u.release.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
    String::from_utf8_lossy(&b).into_owned()
}

pub fn uptime_s() -> f64 {
    std::fs::read_to_string("/proc/uptime").ok().and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok())).unwrap_or(0.0)
}

pub fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_the_xorshift_stream_and_never_zero() {
        let mut r = Rng::new(0x2545_f491_4f6c_dd1d);
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..100 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            assert_eq!(r.next(), x);
        }
        assert_ne!(Rng::new(0).next(), 0);
    }

    #[test]
    fn pattern_detects_changes() {
        let mut w = vec![0u64; 4096];
        fill_pattern(&mut w, 7, 100);
        assert!(check_pattern(&w, 7, 100).is_none());
        assert!(check_pattern(&w, 8, 100).is_some());
        w[10] ^= 1;
        let m = check_pattern(&w, 7, 100).unwrap();
        assert_eq!((m.bad_words, m.first_word), (1, 110));
    }

    #[test]
    fn pmd_mapping_is_aligned() {
        let f = tempfile_path();
        let fd = Fd::open(&f, libc::O_RDWR | libc::O_CREAT).unwrap();
        ftruncate(&fd, 4 << 20).unwrap();
        let mut m = Map::shared(&fd, 4 << 20, Mapping::Pmd).unwrap();
        assert_eq!(m.ptr as usize % PMD_SIZE, 0);
        m.words_mut()[512] = 5;
        assert_eq!(m.words()[512], 5);
        let f0 = minor_faults();
        m.words_mut()[1024] = 6;
        assert!(minor_faults() >= f0);
        drop(m);
        let _ = std::fs::remove_file(f);
    }

    fn tempfile_path() -> String {
        format!("{}/kregress-agent-test-{}", std::env::temp_dir().display(), std::process::id())
    }
}
