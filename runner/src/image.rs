//! Guest initramfs: the static agent as /init, host tools with their shared-library
//! closure, a few device nodes, written as a gzip'd cpio newc archive and cached
//! content-addressed under `<cache>/images/<sha256>/initramfs.cpio.gz`.
//!
//! The agent and the default recipe are built into the kregress binary
//! ([`AGENT`], built by runner/build.rs; [`RECIPE`]): an installed kregress
//! needs no checkout of its sources.
//!
//! ```no_run
//! let img = kregress::image::build(&kregress::image::ImageOptions::default()).unwrap();
//! println!("{} ({} bytes, cached: {})", img.path.display(), img.size, img.cached);
//! ```

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{bad_input, infra, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Bump when the archive layout changes, so old cache entries are not reused.
const FORMAT: &str = "kregress-initramfs-v1";
/// The target [`AGENT`] was built for (set in runner/build.rs).
pub const AGENT_TARGET: &str = env!("KREGRESS_AGENT_TARGET");
/// The flags that made [`AGENT`] a static executable (set in runner/build.rs).
pub const AGENT_RUSTFLAGS: &str = env!("KREGRESS_AGENT_RUSTFLAGS");

/// The guest agent (crate `images/agent`) as a static executable, built for
/// [`AGENT_TARGET`] with [`AGENT_RUSTFLAGS`] when kregress was built
/// (runner/build.rs): what becomes /init.
pub static AGENT: &[u8] = include_bytes!(env!("KREGRESS_AGENT_BIN"));
/// What the archive's manifest names as the source of the built-in agent.
const AGENT_BUILT_IN: &str = "kregress-agent (built into kregress)";

/// The default recipe, `images/initramfs.yaml` as it was when kregress was built.
pub const RECIPE: &str = include_str!("../../images/initramfs.yaml");
/// How errors name the built-in recipe.
const RECIPE_BUILT_IN: &str = "images/initramfs.yaml (built into kregress)";

/// A recipe of the initramfs: `images/initramfs.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Recipe {
    /// Executables copied to the same path in the guest, with their shared libraries.
    pub(crate) tools: Vec<String>,
    /// Plain files copied to the same path.
    #[serde(default)]
    pub(crate) files: Vec<String>,
}

/// The largest recipe [`Recipe::load`] reads (the repository's is under 1 KiB).
pub(crate) const RECIPE_MAX: u64 = 64 << 10;

impl Recipe {
    /// Reads the recipe at `path`: the recipe and its text (part of the
    /// image's key). A recipe that cannot be read or parsed is bad input,
    /// one line naming the file, the line and the field.
    pub(crate) fn load(path: &Path) -> Result<(Recipe, String)> {
        use std::io::Read;
        let shown = path.display();
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(RECIPE_MAX + 1).read_to_end(&mut bytes))
            .map_err(|e| bad_input(format!("{shown}: cannot read the initramfs recipe: {e}")).because(e))?;
        if bytes.len() as u64 > RECIPE_MAX {
            return Err(bad_input(format!("{shown}: an initramfs recipe holds at most {RECIPE_MAX} bytes")));
        }
        let text = String::from_utf8(bytes).map_err(|e| bad_input(format!("{shown}: not UTF-8 text: {e}")).because(e))?;
        Ok((Recipe::parse(path, &text)?, text))
    }

    /// Parses recipe text; `path` names it in errors.
    pub(crate) fn parse(path: &Path, text: &str) -> Result<Recipe> {
        let shown = path.display();
        let r: Recipe = serde_yaml::from_str(text).map_err(|e| {
            // serde_yaml appends " at line L column C"; the prefix says the line.
            let msg = e.to_string();
            let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
            let at = e.location().map_or(String::new(), |l| format!(":{}", l.line()));
            bad_input(format!("{shown}{at}: {msg}")).because(e)
        })?;
        let fields = r.tools.iter().enumerate().map(|(i, p)| (format!("tools[{i}]"), p));
        for (field, p) in fields.chain(r.files.iter().enumerate().map(|(i, p)| (format!("files[{i}]"), p))) {
            if !p.starts_with('/') || p.split('/').any(|c| c == "..") {
                let line = crate::yaml::line_of(text, &field).unwrap_or(1);
                return Err(bad_input(format!("{shown}:{line}: {field}: {p:?} is not an absolute path without `..`")));
            }
        }
        Ok(r)
    }
}

/// Where and how to build the image.
#[derive(Debug, Clone)]
pub struct ImageOptions {
    /// A recipe file instead of the built-in [`RECIPE`].
    pub(crate) recipe: Option<PathBuf>,
    /// Cache root (see [`cache_root`]); images go to `<cache_root>/images/<key>/`.
    pub(crate) cache_root: PathBuf,
    /// A static agent binary instead of the built-in [`AGENT`].
    pub(crate) agent: Option<PathBuf>,
}

impl Default for ImageOptions {
    fn default() -> Self {
        ImageOptions { recipe: None, cache_root: cache_root(), agent: None }
    }
}

/// A built (or cached) initramfs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageArtifact {
    /// `<cache_root>/images/<key>/initramfs.cpio.gz`
    pub path: PathBuf,
    /// sha256 of everything in the archive (agent, tools, libraries, files, layout) and the recipe.
    pub key: String,
    /// Archive path → host source, for every regular file in the archive
    /// (`/init`: the agent's).
    pub files: BTreeMap<String, String>,
    /// Size of the compressed archive in bytes.
    pub size: u64,
    /// The archive already existed in the cache.
    pub cached: bool,
    /// External commands run, in order (full command lines).
    pub commands: Vec<String>,
}

/// The kregress cache root (see [`crate::cache::root`]).
pub(crate) fn cache_root() -> PathBuf {
    crate::cache::root()
}

/// Build the image (or find it in the cache).
pub fn build(opts: &ImageOptions) -> Result<ImageArtifact> {
    let mut commands = Vec::new();
    let (recipe, recipe_text, recipe_name) = match &opts.recipe {
        Some(p) => {
            let (r, text) = Recipe::load(p)?;
            (r, text, p.display().to_string())
        }
        None => (Recipe::parse(Path::new(RECIPE_BUILT_IN), RECIPE)?, RECIPE.to_string(), RECIPE_BUILT_IN.to_string()),
    };
    let (agent_bytes, agent) = match &opts.agent {
        Some(a) => (std::fs::read(a).context(|| format!("reading the agent {}", a.display()))?, a.display().to_string()),
        None => (AGENT.to_vec(), AGENT_BUILT_IN.to_string()),
    };
    if let Some(interp) = elf_interpreter(&agent_bytes).map_err(|e| infra(format!("{agent}: {e}")))? {
        return Err(infra(format!(
            "the agent {agent} is dynamically linked (PT_INTERP {interp}); build it with RUSTFLAGS='{AGENT_RUSTFLAGS}'"
        )));
    }

    let mut tree = Archive::default();
    for d in ["dev", "proc", "sys", "tmp", "mnt", "mnt/pmem", "root", "etc"] {
        tree.dir(d);
    }
    tree.insert("dev/console", Node::CharDev { mode: 0o600, major: 5, minor: 1 });
    tree.insert("dev/null", Node::CharDev { mode: 0o666, major: 1, minor: 3 });
    tree.file("init", 0o755, agent_bytes, &agent);

    for tool in &recipe.tools {
        let path = Path::new(tool);
        let data = std::fs::read(path).context(|| format!("initramfs tool {tool} (from {recipe_name})"))?;
        tree.file(tool, 0o755, data, tool);
        for lib in library_closure(path, &mut commands)? {
            let s = lib.display().to_string();
            if tree.nodes.contains_key(s.trim_start_matches('/')) {
                continue;
            }
            let data = std::fs::read(&lib).context(|| format!("library {s} of {tool}"))?;
            tree.file(&s, 0o755, data, &s);
        }
    }
    for f in &recipe.files {
        let data = std::fs::read(f).context(|| format!("initramfs file {f} (from {recipe_name})"))?;
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(f).map(|m| m.permissions().mode() & 0o7777).unwrap_or(0o644);
        tree.file(f, mode, data, f);
    }

    // Filesystems made on the host, which the agent writes onto pmem0
    // instead of running mkfs (see crate::fsimage).
    for fs in [kregress_agent::Fs::Ext4, kregress_agent::Fs::Xfs] {
        for pmd in [false, true] {
            let dir = kregress_agent::config::premade_dir(fs, pmd);
            for (off, file) in crate::fsimage::make(fs, pmd)? {
                let data = std::fs::read(&file).context(|| format!("reading {}", file.display()))?;
                tree.file(&format!("{dir}/{off:08x}.bin"), 0o644, data, &file.display().to_string());
            }
        }
    }

    let key = tree.key(&recipe_text);
    let dir = opts.cache_root.join("images").join(&key);
    let path = dir.join("initramfs.cpio.gz");
    let files: BTreeMap<String, String> = tree.sources.clone();
    if let Ok(m) = std::fs::metadata(&path) {
        return Ok(ImageArtifact { path, key, files, size: m.len(), cached: true, commands });
    }
    std::fs::create_dir_all(&dir).context(|| format!("creating {}", dir.display()))?;
    let mut tmp = crate::cache::temp_file(&dir)?;
    {
        let gz = flate2::write::GzEncoder::new(std::io::BufWriter::new(tmp.as_file_mut()), flate2::Compression::default());
        let gz = tree.write_cpio(gz).context(|| format!("writing the cpio archive in {}", dir.display()))?;
        let mut w = gz.finish().context(|| format!("compressing into {}", dir.display()))?;
        w.flush().context(|| format!("writing {}", dir.display()))?;
    }
    tmp.as_file().sync_all().context(|| format!("fsync in {}", dir.display()))?;
    let size = tmp.as_file().metadata().map(|m| m.len()).unwrap_or(0);
    let artifact = ImageArtifact { path: path.clone(), key, files, size, cached: false, commands };
    crate::cache::write_atomic(&dir.join("manifest.json"), &serde_json::to_vec_pretty(&artifact).expect("artifact serializes"))?;
    tmp.persist(&path).context(|| format!("renaming into {}", path.display()))?;
    Ok(artifact)
}

/// The shared libraries `tool` needs, dynamic loader included, as the paths the
/// loader resolves on this host (from `ldd`). Empty for a static executable.
pub(crate) fn library_closure(tool: &Path, commands: &mut Vec<String>) -> Result<Vec<PathBuf>> {
    let line = format!("ldd {}", tool.display());
    commands.push(line.clone());
    let mut c = Command::new("ldd");
    c.arg(tool).env("LC_ALL", "C");
    let out = crate::proc::capture(c, crate::proc::deadline::QUICK)?;
    let (stdout, stderr) = (&out.stdout, &out.stderr);
    if stdout.contains("not a dynamic executable") || stderr.contains("not a dynamic executable") {
        return Ok(vec![]);
    }
    if !out.status.success() {
        return Err(infra(format!("{line}: {}: {}", out.status, stderr.trim())));
    }
    let mut libs = parse_ldd(stdout).map_err(|e| infra(format!("{line}: {e}")))?;
    // The loader named in PT_INTERP, even if ldd printed it under another name.
    let bytes = std::fs::read(tool).context(|| format!("reading {}", tool.display()))?;
    if let Some(interp) = elf_interpreter(&bytes).map_err(|e| infra(format!("{}: {e}", tool.display())))? {
        let p = PathBuf::from(interp);
        if !libs.contains(&p) {
            libs.push(p);
        }
    }
    Ok(libs)
}

/// Paths from `ldd` output. `not found` is an error; the vDSO is skipped.
pub(crate) fn parse_ldd(out: &str) -> std::result::Result<Vec<PathBuf>, String> {
    let mut libs = Vec::new();
    for line in out.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let path = if let Some((name, rest)) = line.split_once(" => ") {
            if rest.trim().starts_with("not found") {
                return Err(format!("{name}: not found"));
            }
            rest.split(" (").next().unwrap_or("").trim()
        } else {
            line.split(" (").next().unwrap_or("").trim()
        };
        if path.starts_with('/') {
            let p = PathBuf::from(path);
            if !libs.contains(&p) {
                libs.push(p);
            }
        }
    }
    Ok(libs)
}

/// PT_INTERP of a 64-bit little-endian ELF file: `Some(loader)` for a dynamically
/// linked executable, `None` for a static one.
pub fn elf_interpreter(b: &[u8]) -> std::result::Result<Option<String>, String> {
    if b.len() < 64 || &b[..4] != b"\x7fELF" {
        return Err("not an ELF file".into());
    }
    if b[4] != 2 || b[5] != 1 {
        return Err("not a 64-bit little-endian ELF file".into());
    }
    let u16at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let u32at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let u64at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap()) as usize;
    let (phoff, phentsize, phnum) = (u64at(0x20), u16at(0x36), u16at(0x38));
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        if ph + 56 > b.len() {
            return Err("truncated program header table".into());
        }
        if u32at(ph) == 3 {
            let (off, size) = (u64at(ph + 8), u64at(ph + 32));
            let s = b.get(off..off + size).ok_or("PT_INTERP beyond the end of the file")?;
            return Ok(Some(String::from_utf8_lossy(s).trim_end_matches('\0').to_string()));
        }
    }
    Ok(None)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir,
    File { mode: u32, data: Vec<u8> },
    CharDev { mode: u32, major: u32, minor: u32 },
}

/// The archive's contents, keyed by path without the leading '/'.
#[derive(Debug, Default)]
struct Archive {
    nodes: BTreeMap<String, Node>,
    sources: BTreeMap<String, String>,
}

impl Archive {
    fn dir(&mut self, path: &str) {
        let path = path.trim_matches('/');
        let mut acc = String::new();
        for comp in path.split('/').filter(|c| !c.is_empty()) {
            if !acc.is_empty() {
                acc.push('/');
            }
            acc.push_str(comp);
            self.nodes.entry(acc.clone()).or_insert(Node::Dir);
        }
    }

    fn insert(&mut self, path: &str, node: Node) {
        let path = path.trim_start_matches('/');
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent);
        }
        self.nodes.insert(path.to_string(), node);
    }

    fn file(&mut self, path: &str, mode: u32, data: Vec<u8>, source: &str) {
        self.insert(path, Node::File { mode, data });
        self.sources.insert(format!("/{}", path.trim_start_matches('/')), source.to_string());
    }

    /// sha256 over the format version, the recipe and every node (path, type, mode, bytes).
    fn key(&self, recipe: &str) -> String {
        let mut h = Sha256::new();
        let mut field = |b: &[u8]| {
            h.update((b.len() as u64).to_le_bytes());
            h.update(b);
        };
        field(FORMAT.as_bytes());
        field(recipe.as_bytes());
        for (path, node) in &self.nodes {
            field(path.as_bytes());
            match node {
                Node::Dir => field(b"dir"),
                Node::File { mode, data } => {
                    field(format!("file {mode:o}").as_bytes());
                    field(data);
                }
                Node::CharDev { mode, major, minor } => field(format!("chr {mode:o} {major}:{minor}").as_bytes()),
            }
        }
        hex::encode(h.finalize())
    }

    /// newc archive; BTreeMap order puts every directory before its contents.
    /// Deterministic: mtime 0, uid/gid 0, inode numbers in path order.
    fn write_cpio<W: Write>(&self, mut w: W) -> std::io::Result<W> {
        use cpio::newc::{Builder, ModeFileType};
        for (ino, (path, node)) in self.nodes.iter().enumerate() {
            let b = Builder::new(path).ino(ino as u32 + 1).uid(0).gid(0).mtime(0);
            w = match node {
                Node::Dir => b.mode(0o755).set_mode_file_type(ModeFileType::Directory).nlink(2).write(w, 0).finish()?,
                Node::CharDev { mode, major, minor } => {
                    b.mode(*mode).set_mode_file_type(ModeFileType::Char).rdev_major(*major).rdev_minor(*minor).write(w, 0).finish()?
                }
                Node::File { mode, data } => {
                    let len = u32::try_from(data.len()).map_err(|_| std::io::Error::other(format!("{path}: too large for cpio")))?;
                    let mut fw = b.mode(*mode).set_mode_file_type(ModeFileType::Regular).write(w, len);
                    fw.write_all(data)?;
                    fw.finish()?
                }
            };
        }
        cpio::newc::trailer(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn ldd_output() {
        let out = "\tlinux-vdso.so.1 (0x00007ffb8cc36000)\n\
                   \tlibndctl.so.6 => /lib/x86_64-linux-gnu/libndctl.so.6 (0x00007ffb8cbbf000)\n\
                   \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007ffb8c9a3000)\n\
                   \t/lib64/ld-linux-x86-64.so.2 (0x00007ffb8cc38000)\n";
        assert_eq!(
            parse_ldd(out).unwrap(),
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libndctl.so.6"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
        assert!(parse_ldd("\tlibfoo.so.1 => not found\n").unwrap_err().contains("libfoo"));
    }

    #[test]
    fn closure_of_a_host_binary_has_libc_and_loader() {
        let libs = library_closure(Path::new("/bin/ls"), &mut vec![]).unwrap();
        assert!(libs.iter().any(|l| l.to_string_lossy().contains("libc.so")), "{libs:?}");
        let interp = elf_interpreter(&std::fs::read("/bin/ls").unwrap()).unwrap().unwrap();
        assert!(libs.contains(&PathBuf::from(&interp)), "{libs:?} lacks {interp}");
        assert!(library_closure(Path::new("/nonexistent/tool"), &mut vec![]).is_err());
    }

    #[test]
    fn elf_parser() {
        assert!(elf_interpreter(&std::fs::read("/bin/ls").unwrap()).unwrap().unwrap().contains("ld-linux"));
        assert!(elf_interpreter(b"#!/bin/sh\n").is_err());
    }

    #[test]
    fn cache_root_precedence() {
        let env =
            |pairs: &'static [(&'static str, &'static str)]| move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.into());
        assert_eq!(
            crate::cache::root_from(env(&[("KREGRESS_CACHE", "/c"), ("XDG_CACHE_HOME", "/x"), ("HOME", "/h")])),
            PathBuf::from("/c")
        );
        assert_eq!(crate::cache::root_from(env(&[("XDG_CACHE_HOME", "/x"), ("HOME", "/h")])), PathBuf::from("/x/kregress"));
        assert_eq!(crate::cache::root_from(env(&[("HOME", "/h")])), PathBuf::from("/h/.cache/kregress"));
    }

    #[test]
    fn the_built_in_agent_is_static_and_the_built_in_recipe_parses() {
        assert_eq!(elf_interpreter(AGENT), Ok(None));
        // It is the agent: it writes the protocol's marker.
        assert!(memchr::memmem::find(AGENT, kregress_agent::MARKER.as_bytes()).is_some());
        let r = Recipe::parse(Path::new(RECIPE_BUILT_IN), RECIPE).unwrap();
        assert!(r.tools.iter().any(|t| t == "/usr/bin/ndctl"), "{r:?}");
    }

    #[test]
    fn a_bad_recipe_is_bad_input_naming_its_line_and_field() {
        let f = Path::new("images/initramfs.yaml");
        let r = Recipe::parse(f, "tools: [/sbin/mkfs.ext4]\nfiles: [/etc/mke2fs.conf]\n").unwrap();
        assert_eq!(r.tools, vec!["/sbin/mkfs.ext4"]);
        for (text, want) in [
            (
                "tools:\n  - /sbin/mkfs.ext4\n  - mkfs.xfs\n",
                "images/initramfs.yaml:3: tools[1]: \"mkfs.xfs\" is not an absolute path without `..`",
            ),
            ("tools: []\nfiles: [/a/../b]\n", "images/initramfs.yaml:2: files[0]: \"/a/../b\" is not an absolute path without `..`"),
            ("tools: []\nextra: 1\n", "images/initramfs.yaml:2: unknown field `extra`, expected `tools` or `files`"),
            ("files: []\n", "images/initramfs.yaml:1: missing field `tools`"),
        ] {
            let e = Recipe::parse(f, text).unwrap_err();
            assert_eq!((e.exit_code(), e.msg.as_str()), (2, want));
        }
        // Too large, or not there at all: bad input too, naming the file.
        let d = tempfile::tempdir().unwrap();
        let big = d.path().join("initramfs.yaml");
        std::fs::write(&big, format!("tools: []\n#{}\n", "x".repeat(RECIPE_MAX as usize))).unwrap();
        let e = Recipe::load(&big).unwrap_err();
        assert_eq!((e.exit_code(), e.msg), (2, format!("{}: an initramfs recipe holds at most {RECIPE_MAX} bytes", big.display())));
        let e = Recipe::load(&d.path().join("none.yaml")).unwrap_err();
        assert!(
            e.exit_code() == 2 && e.msg.ends_with("none.yaml: cannot read the initramfs recipe: No such file or directory (os error 2)"),
            "{}",
            e.msg
        );
    }

    fn sample_tree() -> Archive {
        let mut t = Archive::default();
        t.dir("dev");
        t.insert("dev/console", Node::CharDev { mode: 0o600, major: 5, minor: 1 });
        t.file("init", 0o755, b"\x7fELF agent".to_vec(), "agent");
        t.file("/lib/x86_64-linux-gnu/libc.so.6", 0o755, vec![7; 4099], "libc");
        t
    }

    #[test]
    fn cpio_round_trip() {
        let t = sample_tree();
        let bytes = t.write_cpio(Vec::new()).unwrap();
        let mut r = &bytes[..];
        let mut seen = BTreeMap::new();
        loop {
            let mut e = cpio::NewcReader::new(r).unwrap();
            if e.entry().is_trailer() {
                break;
            }
            let (name, mode, rdev) = (e.entry().name().to_string(), e.entry().mode(), (e.entry().rdev_major(), e.entry().rdev_minor()));
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            seen.insert(name, (mode, rdev, data));
            r = e.finish().unwrap();
        }
        let names: Vec<&str> = seen.keys().map(String::as_str).collect();
        assert_eq!(names, ["dev", "dev/console", "init", "lib", "lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu/libc.so.6"]);
        assert_eq!(seen["dev/console"].0, 0o020600);
        assert_eq!(seen["dev/console"].1, (5, 1));
        assert_eq!(seen["init"].0, 0o100755);
        assert_eq!(seen["init"].2, b"\x7fELF agent");
        assert_eq!(seen["lib"].0, 0o040755);
        assert_eq!(seen["lib/x86_64-linux-gnu/libc.so.6"].2.len(), 4099);
        // deterministic
        assert_eq!(t.write_cpio(Vec::new()).unwrap(), bytes);
    }

    #[test]
    fn key_covers_content_and_recipe() {
        let a = sample_tree();
        let k = a.key("tools: []");
        assert_eq!(k, sample_tree().key("tools: []"));
        assert_ne!(k, a.key("tools: [/x]"));
        let mut b = sample_tree();
        b.file("init", 0o755, b"\x7fELF agenT".to_vec(), "agent");
        assert_ne!(k, b.key("tools: []"));
        let mut c = sample_tree();
        c.file("init", 0o700, b"\x7fELF agent".to_vec(), "agent");
        assert_ne!(k, c.key("tools: []"));
    }

    #[test]
    fn build_with_a_prebuilt_agent_is_cached_and_atomic() {
        let dir = tempfile::tempdir().unwrap();
        // Any static ELF will do as the agent for this test; make a fake one.
        let agent = dir.path().join("agent");
        std::fs::write(&agent, fake_static_elf()).unwrap();
        let recipe = dir.path().join("initramfs.yaml");
        std::fs::write(&recipe, "tools: [/bin/true]\n").unwrap();
        let opts = ImageOptions { recipe: Some(recipe.clone()), cache_root: dir.path().join("cache"), agent: Some(agent.clone()) };
        let a = build(&opts).unwrap();
        assert!(!a.cached);
        assert!(a.path.ends_with(format!("images/{}/initramfs.cpio.gz", a.key)));
        assert!(a.files.contains_key("/init") && a.files.contains_key("/bin/true"));
        assert!(a.files.keys().any(|k| k.contains("libc.so")), "{:?}", a.files);
        let b = build(&opts).unwrap();
        assert!(b.cached);
        assert_eq!(a.key, b.key);
        // No temporary files left behind.
        let leftovers: Vec<_> = std::fs::read_dir(a.path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers.len(), 2, "{leftovers:?}");
        // gzip'd newc with /init first-level
        let mut gz = flate2::read::GzDecoder::new(std::fs::File::open(&a.path).unwrap());
        let mut raw = Vec::new();
        gz.read_to_end(&mut raw).unwrap();
        assert!(raw.starts_with(b"070701"));
        // Another recipe → another key.
        std::fs::write(&recipe, "tools: [/bin/true]\nfiles: [/etc/hostname]\n").unwrap();
        assert_ne!(build(&opts).unwrap().key, a.key);
        // A bad recipe is bad input (exit 2), not a host failure.
        std::fs::write(&recipe, "tools: [true]\n").unwrap();
        let e = build(&opts).unwrap_err();
        assert_eq!((e.exit_code(), e.msg), (2, format!("{}:1: tools[0]: \"true\" is not an absolute path without `..`", recipe.display())));
        // A dynamic "agent" is refused: the harness's failure (exit 3).
        std::fs::write(&recipe, "tools: [/bin/true]\n").unwrap();
        std::fs::copy("/bin/true", &agent).unwrap();
        let e = build(&opts).unwrap_err();
        assert!(e.exit_code() == 3 && e.msg.contains("dynamically linked"), "{}", e.msg);
    }

    /// Minimal 64-bit ELF header with no program headers.
    fn fake_static_elf() -> Vec<u8> {
        let mut b = vec![0u8; 64];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b
    }
}
