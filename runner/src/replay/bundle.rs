//! Bundles: one cell's boot in one tar.gz (the `tar` and `flate2` crates)
//! that a kernel developer boots on their own machine: bzImage, its
//! .config, the initramfs, QEMU's command (boot.json, qemu.cmdline), what
//! the run saw (console.log, agent.jsonl, result.json) and a README with the
//! one-line QEMU command. Every file sits under one directory named after
//! the cell. `kregress replay BUNDLE` unpacks one ([`unpack`]): a bundle is
//! untrusted input, so only the files of [`super::FILES`], each regular and
//! under its cap, are taken, and they are written by name, never by the path
//! the archive gives.

use super::{cap, Recorded, FILES};
use crate::error::{bad_input, infra, Context, Result};
use crate::report::shell_quote;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

/// The name of a cell's bundle (and of the directory in it):
/// `kregress-<run id>-<variant>-<backend>-<fs>-<mapping>-<workload>-run<N>`,
/// without the run id when the cell is not in a run's directory.
fn name(src: &Recorded) -> String {
    let c = &src.cell;
    let cell = format!("{}-{}-{}-{}-{}-run{}", c.variant, c.backend, c.fs, c.mapping, c.workload, c.run);
    // results/<run id>/<variant>/<axes>/run<N>
    let run_id = src.dir.ancestors().nth(3).and_then(|d| d.file_name()).map(|n| n.to_string_lossy().into_owned());
    match run_id {
        Some(id) if crate::results::check_run_id(&id).is_ok() => format!("kregress-{id}-{cell}"),
        _ => format!("kregress-{cell}"),
    }
}

/// The README of a bundle: what the cell showed, the one-line QEMU command
/// that boots it from the unpacked directory, and the replay command.
fn readme(src: &Recorded, file_name: &str) -> Result<String> {
    let hand = crate::vm::rebase_args(&src.boot.qemu_args, Path::new("bzImage"), Path::new("initramfs.cpio.gz"), Path::new("."), None)
        .map_err(|e| bad_input(format!("{}: {e}", src.dir.join("boot.json").display())))?;
    let mut line = String::new();
    if hand.nvdimm {
        line += "fallocate -l 1G nvdimm0.img nvdimm1.img && ";
    }
    line += "qemu-system-x86_64";
    for a in &hand.args {
        line += " ";
        line += &shell_quote(a);
    }
    Ok(crate::text::visible(&format!(
        "kregress bundle of cell {} ({}).\n\n\
         Boot it by hand in this directory (the console is the terminal; QEMU exits when the guest powers off or panics):\n\n\
           {line}\n\n\
         Or replay it with kregress, which checks each file against boot.json's sha256, boots the same command\n\
         with fresh NVDIMM files and judges the boot as the run did:\n\n\
           kregress replay {}\n\n\
         bzImage            the kernel (sha256 {})\n\
         config             its .config\n\
         initramfs.cpio.gz  the kregress agent as /init: it runs the workloads the kernel command line names (sha256 {})\n\
         boot.json          what kregress booted: QEMU's arguments and each file's sha256\n\
         qemu.cmdline       the command as run\n\
         console.log        the serial console of the run\n\
         agent.jsonl        the agent's messages\n\
         result.json        the run's verdict\n",
        src.cell.key().id(),
        super::verdict(&src.cell),
        shell_quote(file_name),
        src.boot.bzimage.sha256,
        src.boot.initramfs.sha256,
    ))
    .into_owned())
}

/// Reads through to a sha256 of what was read.
struct Hashing<R> {
    inner: R,
    hash: sha2::Sha256,
    read: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        sha2::Digest::update(&mut self.hash, &buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

/// `kregress bundle CELL [-o FILE]`: packs the results cell in `cell_dir`
/// into `out` (default: `<name>.tar.gz` here, see [`name`]), checking
/// bzImage, the initramfs and .config against boot.json as it reads them.
/// Returns the bundle's path.
pub fn pack(cell_dir: &Path, out: Option<&Path>) -> Result<PathBuf> {
    if !cell_dir.is_dir() {
        return Err(bad_input(format!("{}: not a cell's directory (results/<run>/<variant>/<axes>/run<N>)", cell_dir.display())));
    }
    let src = Recorded::cell(cell_dir)?;
    let name = name(&src);
    let out = out.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(format!("{name}.tar.gz")));
    let file_name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if out.symlink_metadata().is_ok() {
        return Err(bad_input(format!("{}: exists; a bundle never replaces a file (remove it or give another -o)", out.display())));
    }
    let readme = readme(&src, &file_name)?;
    let mut tmp = crate::cache::temp_file(parent)?;
    let gz = flate2::write::GzEncoder::new(std::io::BufWriter::new(tmp.as_file_mut()), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let header = |size: u64| {
        let mut h = tar::Header::new_ustar();
        h.set_size(size);
        h.set_mode(0o644);
        h.set_mtime(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()));
        h
    };
    let boot_json = src.dir.join("boot.json");
    for (file, _) in FILES {
        let entry = format!("{name}/{file}");
        if file == "README" {
            tar.append_data(&mut header(readme.len() as u64), &entry, readme.as_bytes())
                .context(|| format!("writing {}", out.display()))?;
            continue;
        }
        let (path, recorded) = match file {
            "bzImage" => (src.bzimage.clone(), Some(&src.boot.bzimage)),
            "initramfs.cpio.gz" => (src.initramfs.clone(), Some(&src.boot.initramfs)),
            "config" => (src.config.clone(), Some(&src.boot.config)),
            _ => (src.dir.join(file), None),
        };
        let (f, size) = crate::results::open_stored(&path, cap(file))?;
        let mut r = Hashing { inner: f.take(size), hash: Default::default(), read: 0 };
        tar.append_data(&mut header(size), &entry, &mut r).context(|| format!("writing {}", out.display()))?;
        if r.read != size {
            return Err(infra(format!("{}: changed while it was packed", path.display())));
        }
        let got = hex::encode(sha2::Digest::finalize(r.hash));
        if let Some(rec) = recorded.filter(|rec| rec.sha256 != got) {
            return Err(bad_input(format!("{}: sha256 {got}, but {} records {}", path.display(), boot_json.display(), rec.sha256)));
        }
    }
    let gz = tar.into_inner().context(|| format!("writing {}", out.display()))?;
    gz.finish().and_then(|mut w| w.flush()).context(|| format!("writing {}", out.display()))?;
    // No clobbering at the last step either: a file made meanwhile stays.
    tmp.persist_noclobber(&out).map_err(|e| {
        let class = if e.error.kind() == std::io::ErrorKind::AlreadyExists { bad_input } else { infra };
        class(format!("{}: cannot publish the bundle: {}", out.display(), e.error)).because(e.error)
    })?;
    Ok(out)
}

/// Unpacks the bundle `bundle` into the (empty) directory `into`, flat:
/// `into/bzImage`, `into/boot.json`... Refused, as bad input naming the
/// entry: an entry that is not `DIR/NAME` (an absolute path, `..`, deeper),
/// not a regular file (a link, a device), a NAME not in [`FILES`] or given
/// twice, one over its cap, or a bundle without boot.json, result.json,
/// bzImage or initramfs.cpio.gz. A bundle is read only as far as it is taken.
pub fn unpack(bundle: &Path, into: &Path) -> Result<()> {
    let shown = bundle.display();
    let (f, _) = crate::results::open_stored(bundle, FILES.iter().map(|(_, c)| c).sum())?;
    let bad = |what: String| bad_input(format!("{shown}: {what}"));
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(std::io::BufReader::new(f)));
    // Raw: GNU long names and pax headers are entries of their own (and refused), never read into memory.
    let entries = archive.entries().map_err(|e| bad(format!("not a kregress bundle: {e}")))?.raw(true);
    let mut top: Option<PathBuf> = None;
    let mut got: Vec<&str> = Vec::new();
    for (n, entry) in entries.enumerate() {
        let mut entry = entry.map_err(|e| bad(format!("not a kregress bundle: {e}")))?;
        if n > FILES.len() {
            return Err(bad(format!("more than {} entries: not a kregress bundle", FILES.len() + 1)));
        }
        let path = entry.path().map_err(|e| bad(format!("entry {n}: {e}")))?.into_owned();
        let at = format!("entry {:?}", path.display().to_string().chars().take(200).collect::<String>());
        let parts: Vec<Component> = path.components().filter(|c| *c != Component::CurDir).collect();
        if parts.is_empty() || parts.iter().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(bad(format!("{at}: an absolute path or `..`: a bundle holds DIR/NAME files only")));
        }
        let kind = entry.header().entry_type();
        let dir = PathBuf::from(parts[0].as_os_str());
        if top.get_or_insert_with(|| dir.clone()) != &dir {
            return Err(bad(format!("{at}: outside {}: a bundle holds one directory", top.unwrap_or_default().display())));
        }
        match (parts.len(), kind.is_dir(), kind.is_file()) {
            (1, true, _) => continue,
            (2, _, true) => {}
            _ => return Err(bad(format!("{at}: not a file of a bundle (regular files DIR/NAME only)"))),
        }
        let file = parts[1].as_os_str().to_string_lossy();
        let Some((name, max)) = FILES.iter().find(|(n, _)| **n == *file) else {
            return Err(bad(format!("{at}: {file:?} is not a file of a bundle ({})", FILES.map(|(n, _)| n).join(", "))));
        };
        if got.contains(name) {
            return Err(bad(format!("{at}: {name} twice")));
        }
        got.push(name);
        let size = entry.header().size().map_err(|e| bad(format!("{at}: {e}")))?;
        if size > *max {
            return Err(bad(format!("{at}: {size} bytes, more than the {} MiB a {name} may have", max >> 20)));
        }
        let dest = into.join(name);
        let mut w = std::fs::File::options().write(true).create_new(true).open(&dest).context(|| format!("creating {}", dest.display()))?;
        std::io::copy(&mut (&mut entry).take(*max), &mut w).map_err(|e| bad(format!("{at}: {e}: not a complete kregress bundle")))?;
    }
    for need in ["boot.json", "result.json", "bzImage", "initramfs.cpio.gz"] {
        if !got.contains(&need) {
            return Err(bad(format!("no {need}: not a kregress bundle")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry of a crafted bundle: path, type, bytes.
    type Crafted<'a> = (&'a str, tar::EntryType, &'a [u8]);

    /// A bundle holding `entries`, written as tar writes them.
    fn crafted(dir: &Path, entries: &[Crafted]) -> PathBuf {
        let p = dir.join("crafted.tar.gz");
        let gz = flate2::write::GzEncoder::new(std::fs::File::create(&p).unwrap(), flate2::Compression::fast());
        let mut t = tar::Builder::new(gz);
        for (path, kind, bytes) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_size(bytes.len() as u64);
            h.set_mode(0o644);
            // set_path refuses `..` and absolute paths: write the name field as an attacker would.
            h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
            h.set_cksum();
            t.append(&h, *bytes).unwrap();
        }
        t.into_inner().unwrap().finish().unwrap();
        p
    }

    #[test]
    fn a_bundle_packs_what_the_cell_booted_and_unpacks_to_the_same_files() {
        let top = tempfile::tempdir().unwrap();
        let cell = super::super::tests::fake_cell(top.path());
        let out = top.path().join("b.tar.gz");
        assert_eq!(pack(&cell, Some(&out)).unwrap(), out);
        let into = top.path().join("unpacked");
        std::fs::create_dir(&into).unwrap();
        unpack(&out, &into).unwrap();
        let src = Recorded::unpacked(&into).unwrap();
        src.verify_booted().unwrap();
        assert_eq!(std::fs::read(&src.config).unwrap(), b"CONFIG_FS_DAX=y\n");
        for f in ["console.log", "agent.jsonl", "qemu.cmdline", "result.json", "boot.json"] {
            assert_eq!(std::fs::read(into.join(f)).unwrap(), std::fs::read(cell.join(f)).unwrap(), "{f}");
        }
        // The README boots it by hand from the unpacked directory.
        let readme = std::fs::read_to_string(into.join("README")).unwrap();
        assert!(
            readme
                .starts_with("kregress bundle of cell stock/memmap-ext4-pte-dio-read/run1 (FAIL WARN: WARNING in free_zone_device_page)."),
            "{readme}"
        );
        let line = readme.lines().find(|l| l.contains("qemu-system-x86_64")).unwrap().trim_start();
        assert!(line.starts_with("fallocate -l 1G nvdimm0.img nvdimm1.img && qemu-system-x86_64 -machine pc,nvdimm=on "), "{line}");
        assert!(
            line.contains(",mem-path=./nvdimm0.img,") && line.contains(" -kernel bzImage -initrd initramfs.cpio.gz -append "),
            "{line}"
        );
        assert!(line.ends_with(" kregress.nonce=5f0c8a2e9b1d7c43'"), "{line}");
        assert!(readme.contains("kregress replay b.tar.gz"));
        // Named after the run and the cell; every entry under that one directory.
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(std::fs::File::open(&out).unwrap()));
        let names: Vec<String> = ar.entries().unwrap().map(|e| e.unwrap().path().unwrap().display().to_string()).collect();
        assert_eq!(names[0], "kregress-20261127-061749-t-stock-memmap-ext4-pte-dio-read-run1/README");
        assert_eq!(names.len(), FILES.len());
        // A second pack to the same place (or onto any existing file) is refused, the file untouched.
        let before = std::fs::read(&out).unwrap();
        let e = pack(&cell, Some(&out)).unwrap_err();
        assert_eq!(
            (e.exit_code(), e.msg.clone()),
            (2, format!("{}: exists; a bundle never replaces a file (remove it or give another -o)", out.display()))
        );
        assert_eq!(std::fs::read(&out).unwrap(), before);
        let precious = cell.join("result.json");
        let e = pack(&cell, Some(&precious)).unwrap_err();
        assert!(e.exit_code() == 2 && e.msg.contains("exists"), "{}", e.msg);
        assert!(serde_json::from_slice::<serde_json::Value>(&std::fs::read(&precious).unwrap()).is_ok(), "result.json untouched");
    }

    #[test]
    fn a_cell_whose_kernel_changed_is_not_bundled() {
        let top = tempfile::tempdir().unwrap();
        let cell = super::super::tests::fake_cell(top.path());
        std::fs::write(top.path().join("cache/config"), "CONFIG_FS_DAX=n\n").unwrap();
        let e = pack(&cell, Some(&top.path().join("b.tar.gz"))).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.msg.starts_with(&format!("{}: sha256 ", top.path().join("cache/config").display())), "{}", e.msg);
        assert!(!top.path().join("b.tar.gz").exists());
        // A console.log that is a link to a secret is not packed.
        std::fs::write(top.path().join("cache/config"), "CONFIG_FS_DAX=y\n").unwrap();
        std::fs::remove_file(cell.join("console.log")).unwrap();
        std::fs::write(top.path().join("secret"), "secret").unwrap();
        std::os::unix::fs::symlink(top.path().join("secret"), cell.join("console.log")).unwrap();
        let e = pack(&cell, Some(&top.path().join("b.tar.gz"))).unwrap_err();
        assert!(e.exit_code() == 2 && e.msg.contains("console.log: a symbolic link"), "{}", e.msg);
    }

    #[test]
    fn a_bundle_cannot_write_outside_or_past_its_caps() {
        use tar::EntryType::{Directory, Regular, Symlink};
        let top = tempfile::tempdir().unwrap();
        let big = vec![0u8; (cap("qemu.cmdline") + 1) as usize];
        let cases: Vec<(Vec<Crafted>, &str)> = vec![
            (vec![("../../evil", Regular, b"x")], "entry \"../../evil\": an absolute path or `..`"),
            (vec![("/tmp/evil", Regular, b"x")], "entry \"/tmp/evil\": an absolute path or `..`"),
            (vec![("b/../../evil", Regular, b"x")], "an absolute path or `..`"),
            (vec![("b/bzImage", Symlink, b"")], "entry \"b/bzImage\": not a file of a bundle"),
            (vec![("b/x/bzImage", Regular, b"x")], "not a file of a bundle"),
            (vec![("b/.bashrc", Regular, b"x")], "\".bashrc\" is not a file of a bundle"),
            (vec![("b", Directory, b""), ("b/bzImage", Regular, b"x"), ("c/config", Regular, b"x")], "entry \"c/config\": outside b"),
            (vec![("b/bzImage", Regular, b"x"), ("b/bzImage", Regular, b"y")], "bzImage twice"),
            (vec![("b/qemu.cmdline", Regular, &big)], "more than the 1 MiB a qemu.cmdline may have"),
            (vec![("b/bzImage", Regular, b"x")], "no boot.json: not a kregress bundle"),
        ];
        for (i, (entries, why)) in cases.into_iter().enumerate() {
            let into = top.path().join(format!("into{i}"));
            std::fs::create_dir(&into).unwrap();
            let e = unpack(&crafted(top.path(), &entries), &into).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{why}: {}", e.msg);
            assert!(e.msg.contains(why), "{why}: {}", e.msg);
            for leaked in ["evil", "tmp/evil"] {
                assert!(!top.path().join(leaked).exists() && !Path::new("/tmp/evil").exists(), "{leaked}");
            }
        }
        // Not a tar.gz at all.
        let junk = top.path().join("junk.tar.gz");
        std::fs::write(&junk, b"not gzip").unwrap();
        let e = unpack(&junk, top.path()).unwrap_err();
        assert!(e.exit_code() == 2 && e.msg.contains("not a kregress bundle"), "{}", e.msg);
    }
}
