//! Build once, boot on many machines: `kregress build --export DIR` writes
//! the built kernels into DIR (per variant a directory with bzImage,
//! vmlinux, config and meta.json, and the index DIR/kernels.json: variant →
//! key, sha256 and size of each file), and `kregress run --import DIR`
//! installs into the kernel cache the entry whose key is the key this host
//! computes for a variant ([`super::key`], the build's own), so the build
//! that follows is an ordinary cache hit. A CI build job feeds its run jobs
//! this way. The directory is untrusted input (an artifact of another job):
//! the index is bounded and checked field by field, every file is checked
//! against its sha256 and the bzImage against its header before anything is
//! published into the cache, and a key that differs means "not this kernel".

use super::{bzimage, KernelArtifact, KernelSpec};
use crate::cache;
use crate::error::{bad_input, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The index's file name in an export directory.
pub(crate) const INDEX: &str = "kernels.json";
/// The index's `format`: bump it when the layout changes.
const FORMAT: &str = "kregress-kernels-v1";
/// The largest index read.
const INDEX_MAX: u64 = 1 << 20;
/// The largest file of an entry (a vmlinux with debug info is some hundred MB).
const FILE_MAX: u64 = 4 << 30;
/// The longest source, commit or compiler string an index may hold.
const TEXT_MAX: usize = 512;

/// DIR/kernels.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Index {
    #[serde(deserialize_with = "checked::format")]
    format: String,
    kernels: BTreeMap<Name, Entry>,
}

/// A variant name as the index holds it: [`crate::scenario::check_name`]'s rule (it becomes a directory).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub(crate) struct Name(String);

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Name, D::Error> {
        let s = String::deserialize(d)?;
        crate::scenario::check_name("variant", &s).map_err(serde::de::Error::custom)?;
        Ok(Name(s))
    }
}

/// One exported kernel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Entry {
    /// Its kernel cache key (what `--import` matches).
    #[serde(deserialize_with = "checked::key")]
    key: String,
    #[serde(deserialize_with = "checked::source")]
    source: String,
    #[serde(deserialize_with = "checked::commit")]
    commit: String,
    #[serde(deserialize_with = "checked::compiler")]
    compiler: String,
    files: Files,
}

/// The files of an entry, each in the variant's directory under the name serde renames it to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Files {
    #[serde(rename = "bzImage")]
    bzimage: Sum,
    vmlinux: Sum,
    config: Sum,
    #[serde(rename = "meta.json")]
    meta: Sum,
}

impl Files {
    fn each(&self) -> [(&'static str, &Sum); 4] {
        [("bzImage", &self.bzimage), ("vmlinux", &self.vmlinux), ("config", &self.config), ("meta.json", &self.meta)]
    }
}

/// A file's sha256 and size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sum {
    #[serde(deserialize_with = "checked::sha256")]
    sha256: String,
    #[serde(deserialize_with = "checked::bytes")]
    bytes: u64,
}

/// The index's fields, checked as they are read (serde_json then names the line and column).
mod checked {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer};

    fn hex64<'de, D: Deserializer<'de>>(d: D, field: &str) -> Result<String, D::Error> {
        let s = String::deserialize(d)?;
        match s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            true => Ok(s),
            false => {
                Err(D::Error::custom(format!("{field}: {:?} is not 64 lowercase hex digits", crate::text::visible(&s[..s.len().min(80)]))))
            }
        }
    }

    fn text<'de, D: Deserializer<'de>>(d: D, field: &str) -> Result<String, D::Error> {
        let s = String::deserialize(d)?;
        match s.len() <= super::TEXT_MAX && !s.chars().any(char::is_control) {
            true => Ok(s),
            false => Err(D::Error::custom(format!("{field}: more than {} bytes or a control character", super::TEXT_MAX))),
        }
    }

    pub fn format<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        let s = text(d, "format")?;
        match s == super::FORMAT {
            true => Ok(s),
            false => Err(D::Error::custom(format!("format: {s:?} is not {:?} (written by another kregress?)", super::FORMAT))),
        }
    }

    pub fn key<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        hex64(d, "key")
    }

    pub fn sha256<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        hex64(d, "sha256")
    }

    pub fn source<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        text(d, "source")
    }

    pub fn commit<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        text(d, "commit")
    }

    pub fn compiler<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        text(d, "compiler")
    }

    pub fn bytes<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let n = u64::deserialize(d)?;
        match n <= super::FILE_MAX {
            true => Ok(n),
            false => Err(D::Error::custom(format!("bytes: {n} is more than {} GiB", super::FILE_MAX >> 30))),
        }
    }
}

/// Reads DIR/kernels.json (bad input naming the file, line, column and field).
pub(crate) fn load_index(dir: &Path) -> Result<Index> {
    crate::results::read_json(&dir.join(INDEX), INDEX_MAX, "an index of exported kernels")
}

/// Whether `dir` is missing or an empty directory.
fn is_new(dir: &Path) -> Result<bool> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(bad_input(format!("--export {}: {e}", dir.display()))),
    }
}

/// The index of the export `dir` (empty when `dir` is new or empty); a
/// non-empty `dir` without a valid index is bad input. `build --export`
/// asks before it builds, so a wrong directory costs no build.
pub(crate) fn existing(dir: &Path) -> Result<Index> {
    if is_new(dir)? {
        return Ok(Index { format: FORMAT.into(), kernels: BTreeMap::new() });
    }
    if !dir.join(INDEX).exists() {
        return Err(bad_input(format!("--export {}: not empty and holds no {INDEX}: give a new or empty directory", dir.display())));
    }
    load_index(dir)
}

/// Copies `from` to `to`, returning the copy's sha256 and size.
fn copy_summed(from: &mut impl std::io::Read, to: &Path) -> Result<Sum> {
    use sha2::Digest;
    struct Tee<'a>(std::fs::File, &'a mut sha2::Sha256);
    impl Write for Tee<'_> {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let n = self.0.write(b)?;
            self.1.update(&b[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.0.flush()
        }
    }
    let mut h = sha2::Sha256::new();
    let f = std::fs::File::create(to).context(|| format!("creating {}", to.display()))?;
    let bytes = std::io::copy(from, &mut Tee(f, &mut h)).context(|| format!("writing {}", to.display()))?;
    Ok(Sum { sha256: hex::encode(h.finalize()), bytes })
}

/// Writes the kernels `built` into the export directory `dir`. A new or
/// empty `dir` is written whole in a scratch directory beside it and renamed
/// into place; an existing export gains the variants it lacks (each renamed
/// in, then the index), keeps those it holds with the same key, and is
/// refused (bad input, nothing written) when it holds a variant as another
/// kernel or is not an export.
pub(crate) fn export(built: &[KernelArtifact], dir: &Path) -> Result<()> {
    let shown = dir.display();
    let fresh = is_new(dir)?;
    let mut index = existing(dir)?;
    let mut new = Vec::new();
    for a in built {
        if a.variant == INDEX {
            return Err(bad_input(format!("--export: variant {INDEX} would be the index's own name")));
        }
        match index.kernels.get(&Name(a.variant.clone())) {
            Some(e) if e.key == a.key => continue,
            Some(e) => {
                return Err(bad_input(format!(
                    "{shown}/{INDEX}: variant {} holds kernel {}, this build is {}: an export's entries are never replaced (export into a new directory)",
                    a.variant,
                    &e.key[..12],
                    &a.key[..12]
                )))
            }
            None if dir.join(&a.variant).exists() => {
                return Err(bad_input(format!("{shown}/{}: exists but {INDEX} does not list it: not this export's", a.variant)))
            }
            None if new.iter().any(|n: &&KernelArtifact| n.variant == a.variant) => continue,
            None => new.push(a),
        }
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).context(|| format!("creating {}", parent.display()))?;
    let scratch = cache::scratch_dir(&parent)?;
    for a in new {
        let d = scratch.path().join(&a.variant);
        std::fs::create_dir(&d).context(|| format!("creating {}", d.display()))?;
        let copy = |from: &Path, name: &str| -> Result<Sum> {
            let mut f = std::fs::File::open(from).context(|| format!("opening {}", from.display()))?;
            copy_summed(&mut f, &d.join(name))
        };
        let (bzimage, vmlinux, config) = (copy(&a.bzimage, "bzImage")?, copy(&a.vmlinux, "vmlinux")?, copy(&a.config, "config")?);
        // The meta as the cache holds it, with the entry's own file names for paths.
        let meta = KernelArtifact {
            bzimage: "bzImage".into(),
            vmlinux: "vmlinux".into(),
            config: "config".into(),
            log: PathBuf::new(),
            cache_hit: false,
            seconds: a.build_seconds,
            ..a.clone()
        };
        let meta = copy_summed(&mut serde_json::to_vec_pretty(&meta).unwrap().as_slice(), &d.join("meta.json"))?;
        let files = Files { bzimage, vmlinux, config, meta };
        let e = Entry { key: a.key.clone(), source: a.source.clone(), commit: a.commit.clone(), compiler: a.compiler.clone(), files };
        index.kernels.insert(Name(a.variant.clone()), e);
    }
    cache::write_atomic(&scratch.path().join(INDEX), &serde_json::to_vec_pretty(&index).unwrap())?;
    if fresh {
        // rename(2) replaces an empty directory.
        let tmp = scratch.keep();
        return std::fs::rename(&tmp, dir).map_err(|e| {
            let _ = std::fs::remove_dir_all(&tmp);
            crate::error::infra(format!("publishing {shown}: {e}"))
        });
    }
    for e in std::fs::read_dir(scratch.path()).context(|| format!("reading {}", scratch.path().display()))?.flatten() {
        if e.file_name() != INDEX {
            std::fs::rename(e.path(), dir.join(e.file_name())).context(|| format!("renaming into {shown}"))?;
        }
    }
    std::fs::rename(scratch.path().join(INDEX), dir.join(INDEX)).context(|| format!("renaming {shown}/{INDEX}"))
}

/// What [`import`] did for a variant.
#[derive(Debug, PartialEq)]
pub(crate) enum Imported {
    /// The cache already held the kernel (the export was not read further).
    Cached,
    /// The entry `from` was checked and installed into the cache.
    Installed { from: PathBuf },
    /// The export holds no kernel of this key: why, in a sentence (the build goes on as usual).
    Absent(String),
}

/// Before `spec` is built: computes its key ([`super::key`]); when the
/// cache lacks that kernel and `dir` holds it, checks every file (size,
/// sha256, the bzImage's header, meta.json's key) and publishes it into the
/// cache by rename. A file that fails a check is bad input naming it:
/// such a kernel is never booted. Returns what it did and the key.
pub(crate) fn import(spec: &KernelSpec, dir: &Path) -> Result<(Imported, String)> {
    let index = load_index(dir)?;
    let kernels = cache::dir("kernels")?;
    let scratch = cache::scratch_dir(&kernels)?;
    let log = scratch.path().join("build.log");
    let k = super::key(spec, &log)?;
    let entry_dir = kernels.join(&k.key);
    if entry_dir.join("meta.json").is_file() {
        return Ok((Imported::Cached, k.key));
    }
    let own = Name(spec.variant.clone());
    // The variant's own entry first; any entry of the same key is the same kernel.
    let found =
        index.kernels.get_key_value(&own).filter(|(_, e)| e.key == k.key).or_else(|| index.kernels.iter().find(|(_, e)| e.key == k.key));
    let Some((name, entry)) = found else {
        let why = match index.kernels.get(&own) {
            None => format!("it holds no variant {}", spec.variant),
            Some(e) if e.compiler != k.compiler => {
                format!("its {} was built by `{}`, this host has `{}`", spec.variant, e.compiler, k.compiler)
            }
            Some(e) if e.source != k.tree.identity => {
                format!("its {} was built from {}, this host has {}", spec.variant, e.source, k.tree.identity)
            }
            Some(e) => format!("its {} is kernel {} (other patches, fragments or base config)", spec.variant, &e.key[..12]),
        };
        return Ok((Imported::Absent(why), k.key));
    };
    let from = dir.join(&name.0);
    for (file, sum) in entry.files.each() {
        let path = from.join(file);
        let (mut f, len) = crate::results::open_stored(&path, FILE_MAX)?;
        if len != sum.bytes {
            return Err(bad_input(format!(
                "{}: {len} bytes, {}/{INDEX} says {}: cut short or changed",
                path.display(),
                dir.display(),
                sum.bytes
            )));
        }
        // The copy is what is checked and published: the export may change under us.
        let got = copy_summed(&mut f, &scratch.path().join(file))?;
        if got.sha256 != sum.sha256 || got.bytes != sum.bytes {
            return Err(bad_input(format!(
                "{}: sha256 {}, {}/{INDEX} says {}: the file is corrupt or was changed",
                path.display(),
                &got.sha256[..16],
                dir.display(),
                &sum.sha256[..16]
            )));
        }
    }
    let image = std::fs::read(scratch.path().join("bzImage")).context(|| "reading the imported bzImage".to_string())?;
    bzimage::check(&image, None, entry.files.vmlinux.bytes)
        .map_err(|why| bad_input(format!("{}/bzImage: not a whole bzImage: {why}", from.display())))?;
    let meta_path = from.join("meta.json");
    let meta: KernelArtifact = crate::results::read_json(&scratch.path().join("meta.json"), INDEX_MAX, "a kernel's meta.json")
        .map_err(|e| bad_input(e.msg.replace(&scratch.path().join("meta.json").display().to_string(), &meta_path.display().to_string())))?;
    if meta.key != entry.key {
        return Err(bad_input(format!("{}: key {}, {}/{INDEX} says {}", meta_path.display(), &meta.key, dir.display(), entry.key)));
    }
    let art = KernelArtifact {
        variant: spec.variant.clone(),
        key: k.key.clone(),
        bzimage: entry_dir.join("bzImage"),
        vmlinux: entry_dir.join("vmlinux"),
        config: entry_dir.join("config"),
        log: entry_dir.join("build.log"),
        cache_hit: false,
        seconds: 0.0,
        build_seconds: meta.build_seconds,
        source: k.tree.identity,
        commit: k.tree.commit,
        compiler: k.compiler,
    };
    cache::write_atomic(&scratch.path().join("meta.json"), &serde_json::to_vec_pretty(&art).unwrap())?;
    let mut l = std::fs::File::options().create(true).append(true).open(&log).context(|| format!("opening {}", log.display()))?;
    writeln!(l, "kregress: imported from {} (checked: sizes, sha256, bzImage header, key)", from.display())
        .context(|| format!("writing {}", log.display()))?;
    super::publish(scratch, &entry_dir)?;
    Ok((Imported::Installed { from }, k.key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(c: char) -> String {
        format!(r#"{{"sha256": "{}", "bytes": 10}}"#, c.to_string().repeat(64))
    }

    fn index_text(variant: &str, key: &str) -> String {
        format!(
            r#"{{"format": "kregress-kernels-v1", "kernels": {{"{variant}": {{"key": "{key}", "source": "debian:linux-source-6.1:ab", "commit": "c0", "compiler": "gcc 12",
  "files": {{"bzImage": {b}, "vmlinux": {b}, "config": {b}, "meta.json": {b}}}}}}}}}"#,
            b = sum('a')
        )
    }

    fn load_text(text: &str) -> Result<Index> {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(INDEX), text).unwrap();
        load_index(d.path()).map_err(|mut e| {
            e.msg = e.msg.replace(&d.path().display().to_string(), "DIR");
            e
        })
    }

    #[test]
    fn an_index_round_trips() {
        let i = load_text(&index_text("stock", &"0".repeat(64))).unwrap();
        assert_eq!(i.kernels[&Name("stock".into())].files.vmlinux.bytes, 10);
        let again: Index = serde_json::from_slice(&serde_json::to_vec(&i).unwrap()).unwrap();
        assert_eq!(again, i);
    }

    /// Untrusted input: each bad field is one line of bad input naming the file, the line and the field.
    #[test]
    fn a_bad_index_names_the_file_line_and_field() {
        let good = index_text("stock", &"0".repeat(64));
        let cases = [
            (good.replace("\"stock\"", "\"../etc\""), "variant \"../etc\" is not a name"),
            (good.replace(&"0".repeat(64), "0123"), "key: \"0123\" is not 64 lowercase hex digits"),
            (good.replacen(&"a".repeat(64), &"A".repeat(64), 1), "sha256: "),
            (good.replace("\"bytes\": 10", "\"bytes\": 99999999999999"), "bytes: 99999999999999 is more than 4 GiB"),
            (good.replace("kregress-kernels-v1", "kregress-kernels-v9"), "format: \"kregress-kernels-v9\" is not"),
            (good.replace("\"gcc 12\"", "\"gcc\\n12\""), "compiler: more than 512 bytes or a control character"),
            (good.replace("\"vmlinux\":", "\"System.map\":"), "unknown field `System.map`"),
            (good.replace("\"config\": ", "\"x\": 1, \"config\": "), "unknown field `x`"),
            (good.replace(", \"meta.json\": ".to_string().as_str(), ", \"meta\": "), "unknown field `meta`"),
            ("{\"format\": \"kregress-kernels-v1\"}".to_string(), "missing field `kernels`"),
            ("{\"format\": ".to_string(), "EOF while parsing"),
        ];
        for (text, want) in cases {
            let e = load_text(&text).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{}", e.msg);
            assert!(e.msg.starts_with("DIR/kernels.json:") && e.msg.contains(want), "{want:?} not in {:?}", e.msg);
            assert!(e.msg.split(':').nth(1).is_some_and(|l| l.parse::<u32>().is_ok()), "no line in {:?}", e.msg);
            assert!(!e.msg.contains('\n'), "{:?}", e.msg);
        }
        let d = tempfile::tempdir().unwrap();
        std::fs::File::create(d.path().join(INDEX)).unwrap().set_len(INDEX_MAX + 1).unwrap();
        assert!(load_index(d.path()).unwrap_err().msg.contains("larger than 1 MiB"));
        assert!(load_index(&d.path().join("none")).unwrap_err().msg.contains("kernels.json"));
    }

    /// A stand-in kernel: a tree (its key is real) and a cache entry with a whole fake bzImage.
    struct Fake {
        top: tempfile::TempDir,
        spec: KernelSpec,
    }

    impl Fake {
        fn new() -> Fake {
            let top = tempfile::tempdir().unwrap();
            let tree = top.path().join("linux");
            std::fs::create_dir_all(&tree).unwrap();
            std::fs::write(tree.join("Makefile"), "bzImage:\n").unwrap();
            let spec = KernelSpec {
                variant: "stock".into(),
                source: crate::scenario::Source::Path(tree),
                rev: None,
                base: crate::scenario::Base::Tinyconfig,
                fragments: vec![],
                patches: vec![],
            };
            Fake { top, spec }
        }
        /// Switches this thread to the cache `name` (an empty one the first time).
        fn cache(&self, name: &str) -> PathBuf {
            let c = self.top.path().join(name);
            cache::set_test_root(&c);
            c
        }
        /// What a build of `spec` would have put into the current cache.
        fn built(&self, spec: &KernelSpec) -> KernelArtifact {
            let k = super::super::key(spec, &self.top.path().join("log")).unwrap();
            let d = cache::dir("kernels").unwrap().join(&k.key);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("bzImage"), bzimage::tests::image(&bzimage::tests::xz(5000, b"YZ"))).unwrap();
            std::fs::write(d.join("vmlinux"), vec![1u8; 10_000]).unwrap();
            std::fs::write(d.join("config"), "CONFIG_FS_DAX=y\n").unwrap();
            let a = KernelArtifact {
                variant: spec.variant.clone(),
                key: k.key,
                bzimage: d.join("bzImage"),
                vmlinux: d.join("vmlinux"),
                config: d.join("config"),
                log: d.join("build.log"),
                cache_hit: false,
                seconds: 400.0,
                build_seconds: 400.0,
                source: k.tree.identity,
                commit: k.tree.commit,
                compiler: k.compiler,
            };
            std::fs::write(d.join("meta.json"), serde_json::to_vec(&a).unwrap()).unwrap();
            a
        }
        fn export_dir(&self) -> PathBuf {
            self.top.path().join("out/kernels")
        }
    }

    fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut v: Vec<_> = walkdir::WalkDir::new(dir)
            .into_iter()
            .flatten()
            .filter(|e| e.file_type().is_file())
            .map(|e| (e.path().to_path_buf(), std::fs::read(e.path()).unwrap()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn an_export_is_written_whole_and_never_clobbered() {
        let f = Fake::new();
        f.cache("warm");
        let a = f.built(&f.spec);
        let out = f.export_dir();
        export(std::slice::from_ref(&a), &out).unwrap();
        let i = load_index(&out).unwrap();
        let e = &i.kernels[&Name("stock".into())];
        assert_eq!(e.key, a.key);
        for (file, sum) in e.files.each() {
            assert_eq!(cache::sha256_file(&out.join("stock").join(file)).unwrap(), sum.sha256, "{file}");
        }
        assert_eq!(e.files.vmlinux.bytes, 10_000);
        let leftovers: Vec<_> = std::fs::read_dir(out.parent().unwrap()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("kernels")], "the scratch dir stayed");
        let before = files(&out);
        // The same kernel again: nothing changes.
        export(std::slice::from_ref(&a), &out).unwrap();
        assert_eq!(files(&out), before);
        // Another kernel under the same variant name: refused, nothing written.
        let other = KernelArtifact { key: "f".repeat(64), ..a.clone() };
        let e = export(&[other], &out).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.msg.contains("variant stock holds kernel") && e.msg.contains("never replaced"), "{}", e.msg);
        assert_eq!(files(&out), before);
        // A new variant joins the export; the old entry stays as it was.
        let fixed = KernelArtifact { variant: "fixed".into(), ..a.clone() };
        export(&[fixed], &out).unwrap();
        assert_eq!(load_index(&out).unwrap().kernels.len(), 2);
        assert!(before.iter().filter(|(p, _)| !p.ends_with(INDEX)).all(|(p, b)| std::fs::read(p).unwrap() == *b));
        // A directory that is not an export is refused.
        let stranger = f.top.path().join("stranger");
        std::fs::create_dir_all(&stranger).unwrap();
        std::fs::write(stranger.join("notes"), "x").unwrap();
        assert!(export(std::slice::from_ref(&a), &stranger).unwrap_err().msg.contains("holds no kernels.json"));
    }

    #[test]
    fn an_import_becomes_a_cache_hit() {
        let f = Fake::new();
        f.cache("warm");
        let a = f.built(&f.spec);
        export(std::slice::from_ref(&a), &f.export_dir()).unwrap();
        let cold = f.cache("cold");
        let (what, key) = import(&f.spec, &f.export_dir()).unwrap();
        assert_eq!(what, Imported::Installed { from: f.export_dir().join("stock") });
        assert_eq!(key, a.key);
        let hit = super::super::build(&f.spec, 1).unwrap();
        assert!(hit.cache_hit, "the build after an import built");
        assert_eq!(std::fs::read(&hit.bzimage).unwrap(), std::fs::read(&a.bzimage).unwrap());
        assert!(hit.bzimage.starts_with(&cold));
        assert_eq!(import(&f.spec, &f.export_dir()).unwrap().0, Imported::Cached);
        // A second variant of the same kernel finds it under the first one's name.
        f.cache("cold2");
        let twin = KernelSpec { variant: "stock-again".into(), ..f.spec.clone() };
        assert!(matches!(import(&twin, &f.export_dir()).unwrap().0, Imported::Installed { .. }));
    }

    /// Another kernel (an extra patch, another compiler) is not imported: the line says why.
    #[test]
    fn a_key_that_differs_is_not_this_kernel() {
        let f = Fake::new();
        f.cache("warm");
        let a = f.built(&f.spec);
        export(&[a], &f.export_dir()).unwrap();
        f.cache("cold");
        let patch = f.top.path().join("extra.patch");
        std::fs::write(&patch, "--- a/x\n+++ b/x\n").unwrap();
        let patched = KernelSpec { patches: vec![patch], ..f.spec.clone() };
        let (what, _) = import(&patched, &f.export_dir()).unwrap();
        assert!(matches!(&what, Imported::Absent(w) if w.contains("other patches")), "{what:?}");
        let index = f.export_dir().join(INDEX);
        let text = std::fs::read_to_string(&index).unwrap().replace("\"compiler\": \"", "\"compiler\": \"clang 99 / ");
        std::fs::write(&index, text).unwrap();
        let (what, _) = import(&patched, &f.export_dir()).unwrap();
        assert!(matches!(&what, Imported::Absent(w) if w.contains("built by `clang 99 /")), "{what:?}");
        assert!(!cache::root().join("kernels").read_dir().unwrap().flatten().any(|e| e.path().join("meta.json").exists()));
    }

    /// A corrupt export is bad input naming the file; nothing reaches the cache.
    #[test]
    fn a_corrupt_export_is_refused_by_file() {
        let f = Fake::new();
        f.cache("warm");
        let a = f.built(&f.spec);
        let out = f.export_dir();
        export(&[a], &out).unwrap();
        let original = files(&out);
        let restore = || original.iter().for_each(|(p, b)| std::fs::write(p, b).unwrap());
        let refused = |why: &str, file: &str| {
            let e = import(&f.spec, &out).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{}", e.msg);
            assert!(e.msg.starts_with(&format!("{}: ", out.join("stock").join(file).display())) && e.msg.contains(why), "{}", e.msg);
            let published = cache::root().join("kernels").read_dir().unwrap().flatten().any(|e| e.path().join("meta.json").exists());
            assert!(!published, "a corrupt kernel reached the cache");
            restore();
        };
        f.cache("cold");
        let img = out.join("stock/bzImage");
        let mut b = std::fs::read(&img).unwrap();
        b[600] ^= 1;
        std::fs::write(&img, &b).unwrap();
        refused("the file is corrupt or was changed", "bzImage");
        let len = std::fs::metadata(out.join("stock/vmlinux")).unwrap().len();
        std::fs::File::options().write(true).open(out.join("stock/vmlinux")).unwrap().set_len(len - 1).unwrap();
        refused("9999 bytes", "vmlinux");
        // Truncated, with the index rewritten to match: the header check still says no.
        b = std::fs::read(&img).unwrap();
        b.truncate(b.len() - 16);
        std::fs::write(&img, &b).unwrap();
        let index = out.join(INDEX);
        let mut i = load_index(&out).unwrap();
        let e = i.kernels.get_mut(&Name("stock".into())).unwrap();
        e.files.bzimage = Sum { sha256: cache::sha256_file(&img).unwrap(), bytes: b.len() as u64 };
        std::fs::write(&index, serde_json::to_vec(&i).unwrap()).unwrap();
        refused("not a whole bzImage", "bzImage");
        std::fs::remove_file(out.join("stock/config")).unwrap();
        // A link to a file of the test's own (never a system file: restore()
        // writes through links, and the tests run as root).
        let target = f.top.path().join("outside");
        std::fs::write(&target, b"outside").unwrap();
        std::os::unix::fs::symlink(&target, out.join("stock/config")).unwrap();
        refused("symbolic link", "config");
    }
}
