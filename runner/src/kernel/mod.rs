//! Kernels: source → patches → verified .config → make → bzImage, cached by
//! content. The cache key covers the source identity, every fragment's and
//! patch's bytes, the base and the compiler version: the inputs that decide
//! the final .config and the objects, so a hit is known before any make runs.
//! Variants of one source and config share one O= build directory, so a
//! variant that differs by a patch pays only an incremental rebuild.

pub mod config;
pub mod source;

use crate::cache;
use crate::error::{kernel, Context, Result};
use crate::proc;
use crate::scenario::{Base, Source, Variant};
use crate::ui::Progress;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

/// Everything that decides one kernel build.
#[derive(Debug, Clone)]
pub struct KernelSpec {
    pub variant: String,
    pub source: Source,
    pub rev: Option<String>,
    pub base: Base,
    pub fragments: Vec<PathBuf>,
    pub patches: Vec<PathBuf>,
}

impl KernelSpec {
    pub fn new(v: &Variant) -> KernelSpec {
        KernelSpec {
            variant: v.name.clone(),
            source: v.kernel.source.clone(),
            rev: v.rev.clone(),
            base: v.kernel.base.clone(),
            fragments: v.kernel.fragments.clone(),
            patches: v.patches.clone(),
        }
    }
}

/// A built kernel in the cache.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KernelArtifact {
    pub variant: String,
    pub key: String,
    pub bzimage: PathBuf,
    pub vmlinux: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
    pub cache_hit: bool,
    /// Wall time of this call (a hit takes well under a second).
    pub seconds: f64,
    /// Wall time of the build that produced the artifact.
    pub build_seconds: f64,
    pub source: String,
    pub commit: String,
    pub compiler: String,
}

fn compiler_version() -> Result<String> {
    let mut c = Command::new("gcc");
    c.arg("--version");
    Ok(proc::output(c)?.lines().next().unwrap_or("").to_string())
}

fn have(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}

/// Hashes the configuration inputs (base + fragments): the build directory key.
fn config_key(spec: &KernelSpec) -> Result<cache::Key> {
    let mut k = cache::Key::new("kernel-config-v1");
    match &spec.base {
        Base::Tinyconfig => k.part("base", b"tinyconfig"),
        Base::Defconfig => k.part("base", b"defconfig"),
        Base::File(f) => k.file("base", f)?,
    };
    for f in &spec.fragments {
        k.file("fragment", f)?;
    }
    Ok(k)
}

/// The lock one source tree's builds take: `<tree>.build.lock` beside it.
fn build_lock(tree: &std::path::Path) -> PathBuf {
    let mut name = tree.file_name().unwrap_or_default().to_os_string();
    name.push(".build.lock");
    tree.with_file_name(name)
}

/// Builds (or finds in the cache) the kernel for `spec`.
pub fn build(spec: &KernelSpec, jobs: usize) -> Result<KernelArtifact> {
    let started = Instant::now();
    let mut progress = Progress::new(&spec.variant);
    let kernels = cache::dir("kernels")?;
    let scratch = tempfile::tempdir_in(&kernels).context(|| "temp dir in the kernel cache".into())?;
    let log = scratch.path().join("build.log");

    progress.phase("preparing source");
    let tree = source::prepare(&spec.source, spec.rev.as_deref(), &log)?;
    let compiler = compiler_version()?;
    let mut key = config_key(spec)?;
    key.part("source", tree.identity.as_bytes()).part("commit", tree.commit.as_bytes());
    for p in &spec.patches {
        key.file("patch", p)?;
    }
    key.part("compiler", compiler.as_bytes()).part("recipe", b"bzImage-v1");
    let key = key.hex();
    let dir = kernels.join(&key);

    if let Ok(meta) = std::fs::read(dir.join("meta.json")) {
        let mut a: KernelArtifact = serde_json::from_slice(&meta).context(|| format!("reading {}/meta.json", dir.display()))?;
        // The files are the entry's own, wherever the cache was when it was
        // written (a cache reached through another root, or moved, recorded
        // paths that no longer exist: a hit on them booted nothing).
        a.bzimage = dir.join("bzImage");
        a.vmlinux = dir.join("vmlinux");
        a.config = dir.join("config");
        a.log = dir.join("build.log");
        if a.bzimage.is_file() {
            a.variant = spec.variant.clone();
            a.cache_hit = true;
            a.seconds = started.elapsed().as_secs_f64();
            progress.finish(&format!("cache hit {}", a.bzimage.display()));
            return Ok(a);
        }
        progress.phase(&format!("cache entry {} has no bzImage: rebuilding", dir.display()));
        std::fs::remove_dir_all(&dir).context(|| format!("removing the broken cache entry {}", dir.display()))?;
    }

    let build_dir = cache::dir("build")?.join(format!(
        "{}-{}",
        tree.dir.file_name().unwrap().to_string_lossy(),
        &config_key(spec)?.hex()[..12]
    ));
    std::fs::create_dir_all(&build_dir).context(|| format!("creating {}", build_dir.display()))?;
    // One build at a time per source tree: checkouts move files under make's feet.
    // (Not with_extension: it cuts "linux-source-6.1-<hash>" at its first
    // dot, so the 6.1 and 6.12 trees shared one lock.)
    let _lock = cache::lock(&build_lock(&tree.dir))?;

    progress.phase("applying patches");
    source::checkout(&tree, &spec.patches, &log)?;
    progress.phase("configuring");
    let cfg = config::make_config(&tree.dir, &build_dir, &spec.base, &spec.fragments, &log)?;

    progress.phase(&format!("make -j{jobs} bzImage (log: {})", dir.join("build.log").display()));
    let mut c = Command::new("make");
    c.arg("-C").arg(&tree.dir).arg(format!("O={}", build_dir.display())).arg(format!("-j{jobs}")).arg("bzImage");
    if have("ccache") {
        c.arg("CC=ccache gcc")
            .env("CCACHE_DIR", cache::root().join("ccache"))
            .env("CCACHE_BASEDIR", cache::root())
            .env("CCACHE_NOHASHDIR", "1");
    }
    // Identical inputs give identical images (lets bisect spot no-op changes).
    c.env("KBUILD_BUILD_TIMESTAMP", "1970-01-01 00:00:00 UTC")
        .env("KBUILD_BUILD_USER", "kregress")
        .env("KBUILD_BUILD_HOST", "kregress")
        .env("KBUILD_BUILD_VERSION", "1");
    let mut objects = 0usize;
    let made = proc::run_logged(c, &log, |l| {
        let t = l.trim_start();
        if t.starts_with("CC ") || t.starts_with("AS ") || t.starts_with("LD ") || t.starts_with("AR ") {
            objects += 1;
            progress.detail(&format!("{objects} steps, {t}"));
        }
    });
    let failed = |e: crate::error::Error| -> Result<KernelArtifact> {
        let keep = kernels.join(format!("failed-{key}"));
        let _ = std::fs::remove_dir_all(&keep);
        let _ = std::fs::rename(scratch.path(), &keep);
        Err(kernel(format!(
            "kernel build failed for variant {}: {}",
            spec.variant,
            e.msg.replace(&log.display().to_string(), &keep.join("build.log").display().to_string())
        )))
    };
    if let Err(e) = made {
        return failed(e);
    }

    for (from, to) in [
        (build_dir.join("arch/x86/boot/bzImage"), "bzImage"),
        (build_dir.join("vmlinux"), "vmlinux"),
        (cfg.clone(), "config"),
    ] {
        std::fs::copy(&from, scratch.path().join(to)).context(|| format!("copying {}", from.display()))?;
    }
    let art = KernelArtifact {
        variant: spec.variant.clone(),
        key: key.clone(),
        bzimage: dir.join("bzImage"),
        vmlinux: dir.join("vmlinux"),
        config: dir.join("config"),
        log: dir.join("build.log"),
        cache_hit: false,
        seconds: started.elapsed().as_secs_f64(),
        build_seconds: started.elapsed().as_secs_f64(),
        source: tree.identity.clone(),
        commit: tree.commit.clone(),
        compiler,
    };
    cache::write_atomic(&scratch.path().join("meta.json"), &serde_json::to_vec_pretty(&art).unwrap())?;
    let tmp = scratch.keep();
    if let Err(e) = std::fs::rename(&tmp, &dir) {
        // Another kregress published the same key first: theirs is as good.
        let _ = std::fs::remove_dir_all(&tmp);
        if !dir.join("meta.json").is_file() {
            return Err(crate::error::infra(format!("publishing {}: {e}", dir.display())));
        }
    }
    progress.finish(&format!("built in {:.0} s: {}", art.seconds, art.bzimage.display()));
    Ok(art)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_tree_has_its_own_build_lock() {
        let a = build_lock(std::path::Path::new("/c/sources/linux-source-6.1-4d415b3d3648"));
        let b = build_lock(std::path::Path::new("/c/sources/linux-source-6.12-585a4a074597"));
        assert_eq!(a, PathBuf::from("/c/sources/linux-source-6.1-4d415b3d3648.build.lock"));
        assert_ne!(a, b);
    }
}
