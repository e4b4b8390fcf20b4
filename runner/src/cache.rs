//! Where kregress keeps what it can reuse: `$KREGRESS_CACHE`, else
//! `$XDG_CACHE_HOME/kregress`, else `~/.cache/kregress`. Entries are
//! content-addressed (sha256 of everything that went in) and published with
//! a rename, so a crash never leaves a half-written entry behind.

use crate::error::{Context, Result};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::path::{Path, PathBuf};

pub(crate) fn root() -> PathBuf {
    if let Some(p) = TEST_ROOT.with(|r| r.borrow().clone()) {
        return p;
    }
    root_from(|k| std::env::var_os(k).filter(|v| !v.is_empty()))
}

thread_local! {
    /// A per-thread cache root for unit tests: setting the environment
    /// would move the cache under every other test running in parallel.
    static TEST_ROOT: std::cell::RefCell<Option<PathBuf>> = const { std::cell::RefCell::new(None) };
}

#[cfg(test)]
pub(crate) fn set_test_root(p: &Path) {
    TEST_ROOT.with(|r| *r.borrow_mut() = Some(p.to_path_buf()));
}

/// [`root`] with the environment passed in (for tests).
pub(crate) fn root_from(env: impl Fn(&str) -> Option<std::ffi::OsString>) -> PathBuf {
    if let Some(c) = env("KREGRESS_CACHE") {
        return PathBuf::from(c);
    }
    if let Some(x) = env("XDG_CACHE_HOME") {
        return PathBuf::from(x).join("kregress");
    }
    let home = env("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/tmp"));
    home.join(".cache/kregress")
}

/// `root()/sub`, created.
pub fn dir(sub: &str) -> Result<PathBuf> {
    let d = root().join(sub);
    std::fs::create_dir_all(&d).context(|| format!("creating cache dir {}", d.display()))?;
    Ok(d)
}

/// How old a scratch directory of a dead kregress must be before another
/// removes it: far longer than any build (a cold kernel build is ~8 min).
pub(crate) const STALE_SCRATCH: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// A scratch directory (`.tmpXXXXXX`) in `parent`, removed when dropped.
/// A kregress that was SIGKILLed never drops its own: those older than
/// [`STALE_SCRATCH`] are removed first, so they do not pile up in the cache.
pub(crate) fn scratch_dir(parent: &Path) -> Result<tempfile::TempDir> {
    remove_stale_scratch(parent, STALE_SCRATCH);
    tempfile::tempdir_in(parent).context(|| format!("temp dir in {}", parent.display()))
}

/// Removes `.tmp*` entries of `parent` last modified more than `age` ago
/// (best effort: another kregress may be removing them too).
fn remove_stale_scratch(parent: &Path, age: std::time::Duration) {
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for e in entries.flatten() {
        if !e.file_name().to_string_lossy().starts_with(".tmp") {
            continue;
        }
        let old = e.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok()).is_some_and(|a| a > age);
        if old {
            let p = e.path();
            let _ = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
        }
    }
}

/// Incremental sha256 over labelled parts, so that moving bytes between parts
/// changes the key.
#[derive(Default)]
pub struct Key(Sha256);

impl Key {
    /// A key for entries of `kind` (e.g. `bisect-fixture-v1`): bump the kind to orphan old entries.
    pub fn new(kind: &str) -> Key {
        let mut k = Key(Sha256::new());
        k.part("kind", kind.as_bytes());
        k
    }
    /// Adds `bytes` under `label`; the order of parts counts.
    pub fn part(&mut self, label: &str, bytes: &[u8]) -> &mut Self {
        self.0.update((label.len() as u64).to_le_bytes());
        self.0.update(label.as_bytes());
        self.0.update((bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
        self
    }
    /// Adds the contents of the file at `path` under `label`.
    pub fn file(&mut self, label: &str, path: &Path) -> Result<&mut Self> {
        let b = std::fs::read(path).context(|| format!("reading {}", path.display()))?;
        Ok(self.part(label, &b))
    }
    /// The key so far as 64 hex digits: the entry's directory name.
    pub fn hex(&self) -> String {
        hex::encode(self.0.clone().finalize())
    }
}

pub(crate) fn sha256_file(path: &Path) -> Result<String> {
    let mut f = File::open(path).context(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).context(|| format!("reading {}", path.display()))?;
    Ok(hex::encode(h.finalize()))
}

/// A new file in `dir` to publish with a rename (`persist`): readable by
/// all, as a file `>` makes (0644 under the usual umask; tempfile's own
/// default, 0600, kept cache entries and results from other users and from
/// a web server serving them).
pub(crate) fn temp_file(dir: &Path) -> Result<tempfile::NamedTempFile> {
    use std::os::unix::fs::PermissionsExt;
    tempfile::Builder::new()
        .permissions(std::fs::Permissions::from_mode(0o644))
        .tempfile_in(dir)
        .context(|| format!("temp file in {}", dir.display()))
}

/// Writes `bytes` to `path` atomically (a [`temp_file`] in the same dir + rename).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).context(|| format!("creating {}", dir.display()))?;
    let mut tmp = temp_file(dir)?;
    std::io::Write::write_all(&mut tmp, bytes).context(|| format!("writing {}", path.display()))?;
    tmp.persist(path).context(|| format!("renaming into {}", path.display()))?;
    Ok(())
}

/// An exclusive lock on `path` (created), held until dropped. Serializes
/// kregress processes that share a source tree or build directory.
pub fn lock(path: &Path) -> Result<File> {
    let f = File::options().create(true).truncate(false).write(true).open(path).context(|| format!("opening lock {}", path.display()))?;
    f.lock().context(|| format!("locking {}", path.display()))?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_file_written_atomically_is_readable_by_all() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("run.json");
        super::write_atomic(&p, b"{}").unwrap();
        // The umask, read without changing it (tests run in parallel).
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let umask = status.lines().find_map(|l| l.strip_prefix("Umask:")).map(|m| u32::from_str_radix(m.trim(), 8).unwrap()).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o644 & !umask);
        assert_eq!(std::fs::read(&p).unwrap(), b"{}");
    }

    #[test]
    fn scratch_of_a_dead_run_is_removed_once_stale() {
        let top = tempfile::tempdir().unwrap();
        let old = top.path().join(".tmpOLD");
        let young = top.path().join(".tmpYNG");
        let entry = top.path().join("0123abcd");
        for d in [&old, &young, &entry] {
            std::fs::create_dir(d).unwrap();
            std::fs::write(d.join("build.log"), "x").unwrap();
        }
        let two_days = std::time::SystemTime::now() - std::time::Duration::from_secs(48 * 3600);
        std::fs::File::open(&old).unwrap().set_modified(two_days).unwrap();
        std::fs::File::open(&entry).unwrap().set_modified(two_days).unwrap();
        let s = super::scratch_dir(top.path()).unwrap();
        assert!(!old.exists(), "a stale scratch dir stays");
        assert!(young.exists() && entry.exists(), "a live scratch dir or a cache entry was removed");
        let p = s.path().to_path_buf();
        drop(s);
        assert!(!p.exists());
    }
}
