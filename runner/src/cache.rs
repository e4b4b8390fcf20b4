//! Where kregress keeps what it can reuse: `$KREGRESS_CACHE`, else
//! `$XDG_CACHE_HOME/kregress`, else `~/.cache/kregress`. Entries are
//! content-addressed (sha256 of everything that went in) and published with
//! a rename, so a crash never leaves a half-written entry behind.

use crate::error::{Context, Result};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::path::{Path, PathBuf};

pub fn root() -> PathBuf {
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
pub fn set_test_root(p: &Path) {
    TEST_ROOT.with(|r| *r.borrow_mut() = Some(p.to_path_buf()));
}

/// [`root`] with the environment passed in (for tests).
pub fn root_from(env: impl Fn(&str) -> Option<std::ffi::OsString>) -> PathBuf {
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

/// Incremental sha256 over labelled parts, so that moving bytes between parts
/// changes the key.
#[derive(Default)]
pub struct Key(Sha256);

impl Key {
    pub fn new(kind: &str) -> Key {
        let mut k = Key(Sha256::new());
        k.part("kind", kind.as_bytes());
        k
    }
    pub fn part(&mut self, label: &str, bytes: &[u8]) -> &mut Self {
        self.0.update((label.len() as u64).to_le_bytes());
        self.0.update(label.as_bytes());
        self.0.update((bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
        self
    }
    pub fn file(&mut self, label: &str, path: &Path) -> Result<&mut Self> {
        let b = std::fs::read(path).context(|| format!("reading {}", path.display()))?;
        Ok(self.part(label, &b))
    }
    pub fn hex(&self) -> String {
        hex::encode(self.0.clone().finalize())
    }
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = File::open(path).context(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).context(|| format!("reading {}", path.display()))?;
    Ok(hex::encode(h.finalize()))
}

/// Writes `bytes` to `path` atomically (temp file in the same dir + rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).context(|| format!("creating {}", dir.display()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).context(|| format!("temp file in {}", dir.display()))?;
    std::io::Write::write_all(&mut tmp, bytes).context(|| format!("writing {}", path.display()))?;
    tmp.persist(path).map_err(|e| crate::error::infra(format!("renaming into {}: {e}", path.display())))?;
    Ok(())
}

/// An exclusive lock on `path` (created), held until dropped. Serializes
/// kregress processes that share a source tree or build directory.
pub fn lock(path: &Path) -> Result<File> {
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .context(|| format!("opening lock {}", path.display()))?;
    f.lock().context(|| format!("locking {}", path.display()))?;
    Ok(f)
}
