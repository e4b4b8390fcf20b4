//! Kernels: source → patches → verified .config → make → bzImage, cached by
//! content. The cache key covers the source identity, every fragment's and
//! patch's bytes, the base and the compiler version: the inputs that decide
//! the final .config and the objects, so a hit is known before any make runs.
//! Variants of one source and config share one O= build directory, so a
//! variant that differs by a patch pays only an incremental rebuild.

pub mod bzimage;
pub(crate) mod config;
pub(crate) mod export;
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
pub(crate) struct KernelSpec {
    pub(crate) variant: String,
    pub(crate) source: Source,
    pub(crate) rev: Option<String>,
    pub(crate) base: Base,
    pub(crate) fragments: Vec<PathBuf>,
    pub(crate) patches: Vec<PathBuf>,
}

impl KernelSpec {
    pub(crate) fn new(v: &Variant) -> KernelSpec {
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
pub(crate) struct KernelArtifact {
    pub(crate) variant: String,
    pub(crate) key: String,
    pub(crate) bzimage: PathBuf,
    pub(crate) vmlinux: PathBuf,
    pub(crate) config: PathBuf,
    pub(crate) log: PathBuf,
    pub(crate) cache_hit: bool,
    /// Wall time of this call (a hit takes well under a second).
    pub(crate) seconds: f64,
    /// Wall time of the build that produced the artifact.
    pub(crate) build_seconds: f64,
    pub(crate) source: String,
    pub(crate) commit: String,
    pub(crate) compiler: String,
}

fn compiler_version() -> Result<String> {
    let mut c = Command::new("gcc");
    c.arg("--version");
    Ok(proc::output(c, proc::deadline::QUICK)?.lines().next().unwrap_or("").to_string())
}

fn have(tool: &str) -> bool {
    std::env::var_os("PATH").map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file())).unwrap_or(false)
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

/// Marks a build directory whose make has not finished. make leaves a target
/// it was writing when it is killed with SIGKILL (or the host dies), with a
/// fresh mtime, and the next incremental make trusts it: a half-written
/// vmlinux.bin.xz became a bzImage that booted nothing.
const MAKE_IN_PROGRESS: &str = ".kregress-make-in-progress";

/// Kconfig's record, kept by [`begin_make`]: `auto.conf` (the values the
/// objects were built with, written whole by rename) and the empty file per
/// symbol it touches when that symbol's value changes. Without `auto.conf`
/// the next make counts every symbol as changed and recompiles the whole
/// kernel (over 1352 steps and 342 s on a loaded 2-core machine, after a
/// kill during the link); without a touched file it forgets that the symbol
/// changed.
const KCONFIG_RECORD: &str = "include/config";

/// Before a make in `build_dir`: if the last one did not finish, removes every
/// file it wrote (those not older than its marker, but Kconfig's record) so
/// make regenerates them; then marks this one. Returns how many files were removed.
fn begin_make(build_dir: &std::path::Path) -> Result<usize> {
    let marker = build_dir.join(MAKE_IN_PROGRESS);
    let mut removed = 0;
    if let Ok(m) = std::fs::symlink_metadata(&marker) {
        let since = m.modified().context(|| format!("reading the mtime of {}", marker.display()))?;
        let keep = build_dir.join(KCONFIG_RECORD);
        let walk = walkdir::WalkDir::new(build_dir).into_iter().filter_entry(|e| e.path() != keep);
        for e in walk.filter_map(|e| e.ok()) {
            let written = e.metadata().ok().and_then(|m| m.modified().ok());
            if e.file_type().is_file() && e.path() != marker && written.is_some_and(|t| t >= since) {
                std::fs::remove_file(e.path()).context(|| format!("removing {}", e.path().display()))?;
                removed += 1;
            }
        }
    }
    // A new file: its mtime comes from the clock the kernel stamps make's
    // outputs with (coarse: SystemTime::now() can be ahead of it).
    let _ = std::fs::remove_file(&marker);
    std::fs::write(&marker, b"").context(|| format!("writing {}", marker.display()))?;
    Ok(removed)
}

/// After a make that finished: the build directory can be trusted again.
fn end_make(build_dir: &std::path::Path) -> Result<()> {
    let marker = build_dir.join(MAKE_IN_PROGRESS);
    std::fs::remove_file(&marker).context(|| format!("removing {}", marker.display()))
}

/// Whether a line of make's output reports an error (`file.c:12:3: error:
/// ...`, `ld: error: ...`): the line a build failure is named by.
fn is_error_line(line: &str) -> bool {
    line.contains("error:")
}

/// `make bzImage` of `tree` in `build_dir`, reproducibly, through ccache when
/// there is one; `step` sees each CC/AS/LD/AR line. A failed make's error
/// carries the first error line of the whole output as
/// [`crate::error::Error::compiler_error`] (the log's tail, which the
/// message quotes, may have scrolled past it).
fn make_bzimage(
    tree: &std::path::Path,
    build_dir: &std::path::Path,
    jobs: usize,
    log: &std::path::Path,
    step: &mut dyn FnMut(&str),
) -> Result<()> {
    let mut c = Command::new("make");
    c.arg("-C").arg(tree).arg(format!("O={}", build_dir.display())).arg(format!("-j{jobs}")).arg("bzImage");
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
    let mut first_error = None;
    proc::run_logged(c, log, None, |l| {
        let t = l.trim_start();
        if t.starts_with("CC ") || t.starts_with("AS ") || t.starts_with("LD ") || t.starts_with("AR ") {
            step(t);
        }
        if first_error.is_none() && is_error_line(t) {
            first_error = Some(t.trim_end().to_string());
        }
    })
    .map_err(|e| e.with_compiler_error(first_error))
}

/// Parallel make jobs when none are asked for: the cores, plus one.
pub(crate) fn default_jobs() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) + 1
}

/// What decides a kernel's cache entry, and the key it adds up to.
pub(crate) struct Keyed {
    /// The prepared source (unpacked, cloned or snapshotted into the cache).
    pub(crate) tree: source::Tree,
    /// `gcc --version`'s first line.
    pub(crate) compiler: String,
    /// The cache entry's name: 64 hex digits.
    pub(crate) key: String,
}

/// The one computation of a kernel's cache key (the build and `--import`
/// both call it): prepares the source (`log` receives its commands) and
/// hashes it with the configuration, the patches, the compiler and the recipe.
pub(crate) fn key(spec: &KernelSpec, log: &std::path::Path) -> Result<Keyed> {
    let tree = source::prepare(&spec.source, spec.rev.as_deref(), log)?;
    let compiler = compiler_version()?;
    let mut key = config_key(spec)?;
    key.part("source", tree.identity.as_bytes()).part("commit", tree.commit.as_bytes());
    for p in &spec.patches {
        key.file("patch", p)?;
    }
    key.part("compiler", compiler.as_bytes()).part("recipe", b"bzImage-v1");
    Ok(Keyed { tree, compiler, key: key.hex() })
}

/// Builds (or finds in the cache) the kernel for `spec`.
pub(crate) fn build(spec: &KernelSpec, jobs: usize) -> Result<KernelArtifact> {
    let started = Instant::now();
    let mut progress = Progress::new(&spec.variant);
    let kernels = cache::dir("kernels")?;
    let scratch = cache::scratch_dir(&kernels)?;
    let log = scratch.path().join("build.log");

    progress.phase("preparing source");
    let Keyed { tree, compiler, key } = key(spec, &log)?;
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
        let whole = match (std::fs::read(&a.bzimage), std::fs::metadata(&a.vmlinux)) {
            (Ok(img), Ok(vm)) => bzimage::check(&img, None, vm.len()),
            _ => Err("no bzImage or vmlinux".into()),
        };
        match whole {
            Ok(()) => {
                a.variant = spec.variant.clone();
                a.cache_hit = true;
                a.seconds = started.elapsed().as_secs_f64();
                progress.finish(&format!("cache hit {}", a.bzimage.display()));
                return Ok(a);
            }
            Err(why) => progress.phase(&format!("cache entry {} is broken ({why}): rebuilding", dir.display())),
        }
        std::fs::remove_dir_all(&dir).context(|| format!("removing the broken cache entry {}", dir.display()))?;
    }

    let build_dir =
        cache::dir("build")?.join(format!("{}-{}", tree.dir.file_name().unwrap().to_string_lossy(), &config_key(spec)?.hex()[..12]));
    std::fs::create_dir_all(&build_dir).context(|| format!("creating {}", build_dir.display()))?;
    // One build at a time per source tree: checkouts move files under make's feet.
    // (Not with_extension: it cuts "linux-source-6.1-<hash>" at its first
    // dot, so the 6.1 and 6.12 trees shared one lock.)
    let _lock = cache::lock(&build_lock(&tree.dir))?;

    let purged = begin_make(&build_dir)?;
    if purged > 0 {
        progress.phase(&format!("the last make in {} did not finish: removed the {purged} file(s) it wrote", build_dir.display()));
    }
    progress.phase("applying patches");
    source::checkout(&tree, &spec.patches, &log)?;
    progress.phase("configuring");
    let cfg = config::make_config(&tree.dir, &build_dir, &spec.base, &spec.fragments, &log)?;

    progress.phase(&format!("make -j{jobs} bzImage (log: {})", dir.join("build.log").display()));
    let failed = |e: crate::error::Error| -> Result<KernelArtifact> {
        let keep = kernels.join(format!("failed-{key}"));
        let _ = std::fs::remove_dir_all(&keep);
        let _ = std::fs::rename(scratch.path(), &keep);
        let msg = format!(
            "kernel build failed for variant {}: {}",
            spec.variant,
            e.msg.replace(&log.display().to_string(), &keep.join("build.log").display().to_string())
        );
        let line = e.compiler_error.clone();
        Err(kernel(msg).with_compiler_error(line).because(e))
    };
    let boot = build_dir.join("arch/x86/boot");
    let mut objects = 0usize;
    for attempt in 1.. {
        if let Err(e) = make_bzimage(&tree.dir, &build_dir, jobs, &log, &mut |t| {
            objects += 1;
            progress.detail(&format!("{objects} steps, {t}"));
        }) {
            return failed(e);
        }
        let bin = boot.join("compressed/vmlinux.bin");
        let bin_len = std::fs::metadata(&bin).context(|| format!("reading {}", bin.display()))?.len();
        let bytes = std::fs::read(boot.join("bzImage")).context(|| format!("reading {}/bzImage", boot.display()))?;
        match bzimage::check(&bytes, Some(bin_len), 0) {
            Ok(()) => break,
            // Not the kernel's fault: an output in the build directory lied
            // (written by some make that never finished). The boot image is
            // cheap to remake from vmlinux; never boot a broken one.
            Err(why) if attempt == 1 => {
                progress.phase(&format!("the bzImage make produced is not whole ({why}): remaking {}", boot.display()));
                std::fs::remove_dir_all(&boot).context(|| format!("removing {}", boot.display()))?;
            }
            Err(why) => {
                return Err(crate::error::infra(format!(
                    "{}/bzImage is not whole after make ({why}); remove {} and build again",
                    boot.display(),
                    build_dir.display()
                )))
            }
        }
    }
    end_make(&build_dir)?;

    for (from, to) in
        [(build_dir.join("arch/x86/boot/bzImage"), "bzImage"), (build_dir.join("vmlinux"), "vmlinux"), (cfg.clone(), "config")]
    {
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
    publish(scratch, &dir)?;
    progress.finish(&format!("built in {:.0} s: {}", art.seconds, art.bzimage.display()));
    Ok(art)
}

/// Publishes a filled scratch directory (meta.json last) as the cache entry `dir`, by rename.
fn publish(scratch: tempfile::TempDir, dir: &std::path::Path) -> Result<()> {
    let tmp = scratch.keep();
    if let Err(e) = std::fs::rename(&tmp, dir) {
        // Another kregress published the same key first: theirs is as good.
        let _ = std::fs::remove_dir_all(&tmp);
        if !dir.join("meta.json").is_file() {
            return Err(crate::error::infra(format!("publishing {}: {e}", dir.display())));
        }
    }
    Ok(())
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

    /// A make that fails names its first error line as typed data, not
    /// only in the message's tail (here 30 lines of make's output follow it,
    /// more than the tail keeps); a make that fails without one gives `None`.
    #[test]
    fn a_failed_make_carries_its_first_error_line() {
        let d = tempfile::tempdir().unwrap();
        let (tree, build) = (d.path().join("tree"), d.path().join("build"));
        std::fs::create_dir_all(&tree).unwrap();
        std::fs::create_dir_all(&build).unwrap();
        let after: String = (0..30).map(|i| format!("\t@echo 'make[3]: note {i}'\n")).collect();
        std::fs::write(
            tree.join("Makefile"),
            format!(
                "bzImage:\n\t@echo '  CC      block/bio.o'\n\t@echo \"block/bio.c:1752:29: error: expected expression before ';' token\"\n\t@echo 'block/bio.c:1800:1: error: a second one'\n{after}\t@exit 2\n"
            ),
        )
        .unwrap();
        let log = d.path().join("build.log");
        let mut steps = vec![];
        let e = make_bzimage(&tree, &build, 1, &log, &mut |t| steps.push(t.to_string())).unwrap_err();
        assert_eq!(e.compiler_error.as_deref(), Some("block/bio.c:1752:29: error: expected expression before ';' token"), "{}", e.msg);
        assert!(!e.msg.contains("1752:29"), "the tail still holds the line: the test does not show the field is needed");
        assert_eq!(steps, vec!["CC      block/bio.o"]);
        std::fs::write(tree.join("Makefile"), "bzImage:\n\t@echo 'ld: cannot find -lfoo'\n\t@exit 2\n").unwrap();
        let e = make_bzimage(&tree, &build, 1, &log, &mut |_| {}).unwrap_err();
        assert_eq!(e.compiler_error, None, "{}", e.msg);
    }

    /// The whole build on a stand-in tree whose bzImage does not compile:
    /// the kernel error kregress returns (exit 1) still carries the line.
    #[test]
    fn a_kernel_that_does_not_compile_names_its_error() {
        let d = tempfile::tempdir().unwrap();
        crate::cache::set_test_root(&d.path().join("cache"));
        let tree = d.path().join("linux");
        std::fs::create_dir_all(&tree).unwrap();
        std::fs::write(
            tree.join("Makefile"),
            "tinyconfig:\n\t@echo CONFIG_X=y > $(O)/.config\nolddefconfig:\n\t@true\nbzImage:\n\t@echo 'mm/gup.c:3:1: error: unknown type name'\n\t@exit 2\n",
        )
        .unwrap();
        let spec = KernelSpec {
            variant: "broken".into(),
            source: crate::scenario::Source::Path(tree),
            rev: None,
            base: Base::Tinyconfig,
            fragments: vec![],
            patches: vec![],
        };
        let e = build(&spec, 1).unwrap_err();
        assert_eq!(e.class, crate::error::Class::Kernel, "{}", e.msg);
        assert_eq!(e.compiler_error.as_deref(), Some("mm/gup.c:3:1: error: unknown type name"), "{}", e.msg);
    }

    /// A make that never finished: what it wrote goes, what an earlier
    /// finished make wrote stays; a finished make leaves no marker.
    #[test]
    fn an_unfinished_make_loses_what_it_wrote() {
        let d = tempfile::tempdir().unwrap();
        let b = d.path();
        std::fs::create_dir_all(b.join("arch/x86/boot/compressed")).unwrap();
        std::fs::write(b.join("vmlinux"), b"old").unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        std::fs::File::options().write(true).open(b.join("vmlinux")).unwrap().set_modified(old).unwrap();
        assert_eq!(begin_make(b).unwrap(), 0);
        std::fs::write(b.join("arch/x86/boot/compressed/vmlinux.bin.xz"), b"half").unwrap();
        std::fs::create_dir_all(b.join("include/config")).unwrap();
        std::fs::write(b.join("include/config/auto.conf"), b"CONFIG_FS_DAX=y\n").unwrap();
        // killed here: no end_make
        assert_eq!(begin_make(b).unwrap(), 1);
        assert!(!b.join("arch/x86/boot/compressed/vmlinux.bin.xz").exists());
        assert!(b.join("vmlinux").exists());
        assert!(b.join("include/config/auto.conf").exists(), "Kconfig's record stays");
        end_make(b).unwrap();
        assert_eq!(begin_make(b).unwrap(), 0);
    }
}
