//! Replaying what a cell booted. A run records in each boot's boot.json
//! ([`crate::results::BootRecord`]) QEMU's arguments and the sha256 of the
//! bzImage, initramfs and .config it used. `kregress replay` boots exactly
//! that again — from the recorded (cache) paths, or from a bundle — after
//! checking each file against its hash, whatever the scenario says now,
//! and judges the boot as a run does ([`crate::run::observe`],
//! [`crate::run::judge`]). `kregress bundle` packs a cell into one tar.gz
//! that a kernel developer boots by hand or replays ([`bundle`]).

pub mod bundle;

use crate::error::{bad_input, Context, Findings, Result};
use crate::outcome::Outcome;
use crate::results::{self, BootRecord, CellResult, FileRecord};
use std::path::{Path, PathBuf};

/// The files of a cell that a bundle holds, with the most bytes each may
/// have (a bundle is untrusted input: 430 MiB in all at most). The same
/// caps bound what `replay` hashes and `bundle` packs.
pub const FILES: [(&str, u64); 9] = [
    ("README", 1 << 20),
    ("boot.json", results::CELL_JSON_MAX),
    ("result.json", results::CELL_JSON_MAX),
    ("bzImage", 64 << 20),
    ("config", 4 << 20),
    ("initramfs.cpio.gz", 256 << 20),
    ("qemu.cmdline", 1 << 20),
    ("console.log", 32 << 20),
    ("agent.jsonl", 32 << 20),
];

/// The most bytes the file `name` of a bundle may have.
pub fn cap(name: &str) -> u64 {
    FILES.iter().find(|(n, _)| *n == name).map_or(0, |(_, c)| *c)
}

/// A cell as recorded, to replay or bundle: its directory, its records and
/// where the files its boot used are. (Not [`crate::scenario::Source`],
/// where a kernel's source comes from.)
pub struct Recorded {
    /// The cell's directory (a results cell, or an unpacked bundle).
    pub dir: PathBuf,
    pub boot: BootRecord,
    pub cell: CellResult,
    pub bzimage: PathBuf,
    pub initramfs: PathBuf,
    pub config: PathBuf,
}

impl Recorded {
    /// A results cell directory: the files are where boot.json says.
    pub fn cell(dir: &Path) -> Result<Recorded> {
        let boot = results::load_boot(dir)?;
        let cell = results::load_cell(dir)?;
        Ok(Recorded {
            dir: dir.to_path_buf(),
            bzimage: boot.bzimage.path.clone(),
            initramfs: boot.initramfs.path.clone(),
            config: boot.config.path.clone(),
            boot,
            cell,
        })
    }

    /// An unpacked bundle (see [`bundle::unpack`]): the files are beside boot.json.
    pub fn unpacked(dir: &Path) -> Result<Recorded> {
        let mut s = Recorded::cell(dir)?;
        (s.bzimage, s.initramfs, s.config) = (dir.join("bzImage"), dir.join("initramfs.cpio.gz"), dir.join("config"));
        Ok(s)
    }

    fn boot_json(&self) -> PathBuf {
        self.dir.join("boot.json")
    }

    /// Checks the files QEMU boots (bzImage, initramfs) against boot.json.
    pub fn verify_booted(&self) -> Result<()> {
        verify(&self.bzimage, &self.boot.bzimage, cap("bzImage"), &self.boot_json())?;
        verify(&self.initramfs, &self.boot.initramfs, cap("initramfs.cpio.gz"), &self.boot_json())
    }

    /// Everything a replay checks before it boots: the files against their
    /// hashes, the cell's workload among the boot's (its index), and QEMU's
    /// arguments (rebased into `pmem` with `nonce`).
    pub fn check(&self, pmem: &Path, nonce: &str) -> Result<(usize, crate::vm::Rebased)> {
        self.verify_booted()?;
        let index = self.boot.workloads.iter().position(|w| *w == self.cell.workload).ok_or_else(|| {
            bad_input(format!(
                "{}: workload {} is not one of the boot's ({})",
                self.dir.join("result.json").display(),
                self.cell.workload,
                self.boot_json().display()
            ))
        })?;
        let rebased = crate::vm::rebase_args(&self.boot.qemu_args, &self.bzimage, &self.initramfs, pmem, Some(nonce))
            .map_err(|e| bad_input(format!("{}: {e}", self.boot_json().display())))?;
        Ok((index, rebased))
    }
}

/// Checks that `path` holds what `rec` records; a file that is missing, is
/// not a regular file, is over `max` bytes or has another sha256 is bad
/// input naming it (and both hashes).
pub fn verify(path: &Path, rec: &FileRecord, max: u64, boot_json: &Path) -> Result<()> {
    let (f, _) = results::open_stored(path, max).map_err(|e| match std::fs::symlink_metadata(path) {
        Err(_) => bad_input(format!("{}: missing (recorded in {}): the cache no longer holds it", path.display(), boot_json.display())),
        Ok(_) => e,
    })?;
    let got = sha256(f).context(|| format!("reading {}", path.display()))?;
    if got != rec.sha256 {
        return Err(bad_input(format!("{}: sha256 {got}, but {} records {}", path.display(), boot_json.display(), rec.sha256)));
    }
    Ok(())
}

fn sha256(mut r: impl std::io::Read) -> std::io::Result<String> {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    std::io::copy(&mut r, &mut h)?;
    Ok(hex::encode(h.finalize()))
}

/// `OUTCOME KIND: title` of a cell, as the run printed it.
fn verdict(c: &CellResult) -> String {
    let mut s = c.outcome.to_string();
    if let Some(k) = c.kind {
        s += &format!(" {k}");
    }
    if let Some(t) = &c.title {
        s += &format!(": {t}");
    }
    let m = crate::report::metrics_text(c);
    if !m.is_empty() {
        s += &format!(" ({m})");
    }
    crate::text::visible(&s).into_owned()
}

/// `kregress replay TARGET [--out DIR]`: boots again what the cell in
/// TARGET (a results cell directory or a bundle) booted, in a new
/// directory (`--out`, else `replay-<time>` in the cell's directory, or
/// `<bundle>-replay-<time>` here for a bundle), and prints its verdict
/// beside the original's. Exit 0 when they agree (outcome, kind, title),
/// 1 when the kernel did something else (a kernel failure), 3 when the
/// replay is a MISS (the harness's), through [`crate::error::exit_code`].
pub fn replay_cmd(target: &Path, out: Option<&Path>) -> Result<Findings> {
    let meta = std::fs::metadata(target).map_err(|e| bad_input(format!("{}: {e}", target.display())).because(e))?;
    // A results cell is checked before anything is written beside it.
    let cell = match meta.is_dir() {
        true => {
            let src = Recorded::cell(target)?;
            // A dry run: the replay rebases again, into its own directory.
            src.check(Path::new("pmem"), "0123456789abcdef")?;
            Some(src)
        }
        false => None,
    };
    let out = match out {
        Some(o) => {
            std::fs::create_dir(o)
                .map_err(|e| bad_input(format!("{}: {e}: replay writes into a new directory", o.display())).because(e))?;
            o.to_path_buf()
        }
        None if cell.is_some() => results::new_dir(target, &format!("replay-{}", results::stamp()))?.1,
        None => {
            let name = target.file_name().map(|n| n.to_string_lossy().trim_end_matches(".tar.gz").to_string()).unwrap_or_default();
            results::new_dir(Path::new("."), &format!("{name}-replay-{}", results::stamp()))?.1
        }
    };
    let run = || -> Result<_> {
        let src = match cell {
            Some(src) => src,
            None => {
                // Unpacked into the replay's directory: its boot.json keeps pointing at them.
                let dir = out.join("bundle");
                std::fs::create_dir(&dir).context(|| format!("creating {}", dir.display()))?;
                bundle::unpack(target, &dir)?;
                Recorded::unpacked(&dir)?
            }
        };
        let (original, replayed) = replay(&src, &out)?;
        Ok((src, original, replayed))
    };
    let (src, original, replayed) = match run() {
        Ok(r) => r,
        Err(e) => {
            // A bundle refused before anything booted: the new directory holds nothing of value.
            if e.class == crate::error::Class::BadInput {
                let _ = std::fs::remove_dir_all(&out);
            }
            return Err(e);
        }
    };
    println!("replay of {} in {}", src.cell.key().id(), out.display());
    println!("  bzImage sha256 {} and initramfs sha256 {}: as boot.json records", src.boot.bzimage.sha256, src.boot.initramfs.sha256);
    println!("  original: {}", verdict(&original));
    match &replayed {
        Ok(r) => println!("  replay:   {}", verdict(r)),
        Err(stop) => println!("  replay:   not reached: the boot stopped after {}: {}", stop.workload, verdict(stop)),
    }
    Ok(findings(&original, &replayed))
}

/// What a replay found, for [`crate::error::exit_code`]: nothing when it
/// agrees with the original (outcome, kind, title), a MISS the harness's
/// failure (3), anything else, a boot stopped before the cell included,
/// the kernel's (1).
fn findings(original: &CellResult, replayed: &std::result::Result<CellResult, CellResult>) -> Findings {
    let (same, miss) = match replayed {
        Ok(r) => ((r.outcome, r.kind, &r.title) == (original.outcome, original.kind, &original.title), r.outcome == Outcome::Miss),
        Err(_) => (false, false),
    };
    Findings { kernel_failed: !same && !miss, harness_failed: !same && miss }
}

/// Boots `src`'s recorded boot again in `out` (which must be new) and
/// judges its cell: (the original result, the replay's). The replay's
/// result is Err(the cell the boot stopped at) when an earlier workload of
/// the boot failed and stopped it before the cell's. The boot gets a fresh
/// nonce, of the same length (see `vm::rebase_args`).
pub fn replay(src: &Recorded, out: &Path) -> Result<(CellResult, std::result::Result<CellResult, CellResult>)> {
    let nonce = crate::run::boot_nonce()?;
    let pmem = out.join("pmem");
    let (index, rebased) = src.check(&pmem, &nonce)?;
    let mut args = rebased.args;
    args.extend(crate::vm::sandbox_args().iter().cloned());
    // The replay's own record: a replay directory replays too.
    let boot = BootRecord {
        qemu_args: args.clone(),
        bzimage: FileRecord { path: src.bzimage.clone(), ..src.boot.bzimage.clone() },
        initramfs: FileRecord { path: src.initramfs.clone(), ..src.boot.initramfs.clone() },
        config: FileRecord { path: src.config.clone(), ..src.boot.config.clone() },
        ..src.boot.clone()
    };
    let mut seen = crate::run::observe(&boot, &args, rebased.nvdimm.then_some(pmem.as_path()), &nonce, out)?;
    let base = |i: usize| CellResult { workload: src.boot.workloads[i].clone(), console: out.join("console.log"), ..src.cell.clone() };
    if index > seen.last {
        let last = seen.last;
        return Ok((src.cell.clone(), Err(seen.judged(last, base(last)))));
    }
    let r = seen.judged(index, base(index));
    results::save_cell(out, &r)?;
    Ok((src.cell.clone(), Ok(r)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cell directory as a run leaves it, with small stand-ins for the
    /// kernel, initramfs and config in `files`.
    pub(crate) fn fake_cell(top: &Path) -> PathBuf {
        let files = top.join("cache");
        let cell = top.join("results/20261127-061749-t/stock/memmap-ext4-pte-dio-read/run1");
        std::fs::create_dir_all(&files).unwrap();
        std::fs::create_dir_all(&cell).unwrap();
        for (name, body) in [("bzImage", "kernel"), ("initramfs.cpio.gz", "initramfs"), ("config", "CONFIG_FS_DAX=y\n")] {
            std::fs::write(files.join(name), body).unwrap();
        }
        let spec = crate::vm::VmSpec {
            bzimage: files.join("bzImage"),
            initrd: files.join("initramfs.cpio.gz"),
            backend: crate::vm::Backend::Nvdimm,
            smp: 2,
            icount: false,
            append: "kregress.workloads=dio-read kregress.nonce=5f0c8a2e9b1d7c43".into(),
            panic_on_warn: false,
            workdir: cell.join("pmem"),
        };
        let boot = BootRecord {
            qemu_args: crate::vm::qemu_args(&spec, crate::vm::Accel::Tcg),
            bzimage: FileRecord::of(&files.join("bzImage")).unwrap(),
            initramfs: FileRecord::of(&files.join("initramfs.cpio.gz")).unwrap(),
            config: FileRecord::of(&files.join("config")).unwrap(),
            boot_deadline_s: 180,
            run_deadline_s: 300,
            workloads: vec!["dio-read".into()],
        };
        results::save_boot(&cell, &boot).unwrap();
        let stored = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/runs/20261126-162904-bio-release-devmap-wakeup/run.json");
        let mut rec: serde_json::Value = serde_json::from_slice(&std::fs::read(stored).unwrap()).unwrap();
        let mut c = rec["cells"][0].take();
        for (k, v) in [("variant", "stock"), ("backend", "memmap"), ("fs", "ext4"), ("mapping", "pte"), ("workload", "dio-read")] {
            c[k] = v.into();
        }
        (c["outcome"], c["kind"], c["title"]) = ("FAIL".into(), "WARN".into(), "WARNING in free_zone_device_page".into());
        c["metrics"] = serde_json::json!({});
        std::fs::write(cell.join("result.json"), serde_json::to_vec_pretty(&c).unwrap()).unwrap();
        for (name, body) in
            [("console.log", "[    0.000000] Linux version 6.1\n"), ("agent.jsonl", "{}\n"), ("qemu.cmdline", "qemu-system-x86_64 ...\n")]
        {
            std::fs::write(cell.join(name), body).unwrap();
        }
        cell
    }

    #[test]
    fn the_recorded_files_are_checked_by_hash() {
        let top = tempfile::tempdir().unwrap();
        let cell = fake_cell(top.path());
        let src = Recorded::cell(&cell).unwrap();
        src.verify_booted().unwrap();
        assert_eq!(src.cell.key().id(), "stock/memmap-ext4-pte-dio-read/run1");
        // The kernel in the cache changed: exit 2 naming the file and both hashes.
        std::fs::write(&src.bzimage, "another kernel").unwrap();
        let e = src.verify_booted().unwrap_err();
        let now = sha256(std::fs::File::open(&src.bzimage).unwrap()).unwrap();
        assert_eq!(e.exit_code(), 2);
        assert_eq!(
            e.msg,
            format!(
                "{}: sha256 {now}, but {} records {}",
                src.bzimage.display(),
                cell.join("boot.json").display(),
                src.boot.bzimage.sha256
            )
        );
        // Gone from the cache: exit 2, saying so.
        std::fs::remove_file(&src.bzimage).unwrap();
        let e = src.verify_booted().unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.msg.starts_with(&format!("{}: missing (recorded in ", src.bzimage.display())), "{}", e.msg);
        // A link where the initramfs was: not followed.
        std::fs::write(&src.bzimage, "kernel").unwrap();
        std::fs::remove_file(&src.initramfs).unwrap();
        std::fs::write(top.path().join("secret"), "secret").unwrap();
        std::os::unix::fs::symlink(top.path().join("secret"), &src.initramfs).unwrap();
        let e = src.verify_booted().unwrap_err();
        assert!(e.exit_code() == 2 && e.msg.contains("a symbolic link"), "{}", e.msg);
    }

    #[test]
    fn a_replay_that_agrees_exits_0_another_failure_1_a_miss_3() {
        use crate::error::exit_code;
        let top = tempfile::tempdir().unwrap();
        let original = Recorded::cell(&fake_cell(top.path())).unwrap().cell;
        let code = |r: &std::result::Result<CellResult, CellResult>| exit_code(&Ok(findings(&original, r)));
        assert_eq!(code(&Ok(original.clone())), 0);
        let other = CellResult { title: Some("BUG: unable to handle page fault".into()), ..original.clone() };
        assert_eq!(code(&Ok(other)), 1);
        let passed = CellResult { outcome: Outcome::Pass, kind: None, title: None, ..original.clone() };
        assert_eq!(code(&Ok(passed)), 1);
        let miss = CellResult { outcome: Outcome::Miss, kind: None, title: None, ..original.clone() };
        assert_eq!(code(&Ok(miss)), 3);
        // The boot stopped at an earlier workload: the kernel did something else.
        assert_eq!(code(&Err(original.clone())), 1);
    }

    #[test]
    fn a_cell_without_a_boot_record_or_with_a_forged_one_is_bad_input() {
        let top = tempfile::tempdir().unwrap();
        let cell = fake_cell(top.path());
        let boot_json = cell.join("boot.json");
        let text = std::fs::read_to_string(&boot_json).unwrap();
        for (from, to, why) in [
            ("\"boot_deadline_s\": 180", "\"boot_deadline_s\": 99999999", "boot_deadline_s: 99999999 is not from 1 to 3600 seconds"),
            ("\"dio-read\"", "\"../../x\"", "workloads: workload \"../../x\" is not a name"),
            ("\"sha256\": \"", "\"sha256\": \"zz", "sha256: \"zz"),
        ] {
            std::fs::write(&boot_json, text.replacen(from, to, 1)).unwrap();
            let e = Recorded::cell(&cell).err().unwrap();
            assert_eq!(e.exit_code(), 2);
            assert!(e.msg.starts_with(&format!("{}:", boot_json.display())) && e.msg.contains(why), "{}", e.msg);
        }
        // An argument kregress does not give QEMU is refused before anything boots.
        std::fs::write(&boot_json, text.replacen("\"stdio\"", "\"tcp::4444,server\"", 1)).unwrap();
        let src = Recorded::cell(&cell).unwrap();
        let out = top.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let e = replay(&src, &out).err().unwrap();
        assert_eq!(e.exit_code(), 2);
        assert!(
            e.msg.contains("boot.json: qemu_args[") && e.msg.contains("`-serial tcp::4444,server` is not an argument kregress gives QEMU"),
            "{}",
            e.msg
        );
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0, "nothing booted, nothing written");
        // Nor beside the cell.
        let before = std::fs::read_dir(&cell).unwrap().count();
        assert_eq!(replay_cmd(&cell, None).unwrap_err().exit_code(), 2);
        assert_eq!(std::fs::read_dir(&cell).unwrap().count(), before);
        // A cell of a kernel that did not build has no boot.json.
        std::fs::remove_file(&boot_json).unwrap();
        let e = Recorded::cell(&cell).err().unwrap();
        assert!(e.exit_code() == 2 && e.msg.contains("boot.json: missing: the cell did not boot"), "{}", e.msg);
    }
}
