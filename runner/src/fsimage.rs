//! Filesystems made on the host for memmap pmem: mkfs.ext4 on 6.1's memmap
//! /dev/pmem0 takes ~4.3 s under TCG, the same mkfs on a host file 0.05 s.
//! The image (cached by content of its recipe and mkfs version) is cut into
//! its non-zero runs (a few hundred KiB), which the initramfs carries and the
//! agent writes onto pmem0 (zero everywhere else: a fresh memmap range or
//! NVDIMM backing file), so each guest starts from a pristine filesystem.

use crate::cache;
use crate::error::{Context, Result};
use kregress_agent::config::mkfs_args;
use kregress_agent::Fs;
use std::path::PathBuf;
use std::process::Command;

/// Size of memmap pmem0 (`memmap=512M!1G`).
pub const SIZE: u64 = 512 << 20;

/// A piece of the image: its offset in pmem0 and the file holding its bytes.
pub type Chunk = (u64, PathBuf);

/// The cached image of `fs` (made for PMD mappings when `pmd`) as the chunks
/// to load: its non-zero runs.
pub fn make(fs: Fs, pmd: bool) -> Result<Vec<Chunk>> {
    let (tool, args) = mkfs_args(fs, pmd);
    // mkfs.ext4 prints its version on stderr, mkfs.xfs on stdout.
    let mut c = Command::new(tool);
    c.arg("-V");
    let version = crate::proc::capture(c, crate::proc::deadline::QUICK)
        .map(|o| format!("{}{}", o.stdout, o.stderr))
        .map_err(|e| crate::error::infra(format!("{} (install e2fsprogs/xfsprogs)", e.msg)).because(e))?;
    let key = cache::Key::new("fs-image-v2")
        .part("tool", tool.as_bytes())
        .part("args", args.join(" ").as_bytes())
        .part("version", version.as_bytes())
        .part("size", &SIZE.to_le_bytes())
        .hex();
    let top = cache::dir("fsimg")?;
    let dir = top.join(format!("{}-{}", tool.trim_start_matches("mkfs."), &key[..16]));
    if !dir.join("done").is_file() {
        let tmp = crate::cache::scratch_dir(&top)?;
        let img = tmp.path().join("fs.img");
        std::fs::File::create(&img).and_then(|f| f.set_len(SIZE)).context(|| format!("creating {}", img.display()))?;
        let mut c = Command::new(tool);
        c.args(&args).arg(&img);
        crate::proc::output(c, crate::proc::deadline::QUICK)?;
        let bytes = std::fs::read(&img).context(|| format!("reading {}", img.display()))?;
        std::fs::remove_file(&img).context(|| format!("removing {}", img.display()))?;
        for (off, len) in nonzero_runs(&bytes, 4096, 64 << 10) {
            let f = tmp.path().join(format!("{off:08x}.bin"));
            std::fs::write(&f, &bytes[off..off + len]).context(|| format!("writing {}", f.display()))?;
        }
        std::fs::write(tmp.path().join("done"), b"").context(|| "marking the image done".into())?;
        // A published dir is never changed (readers may be listing it): if
        // another kregress published the same key first, keep theirs.
        let staged = tmp.keep();
        if std::fs::rename(&staged, &dir).is_err() {
            let _ = std::fs::remove_dir_all(&staged);
            if !dir.join("done").is_file() {
                return Err(crate::error::infra(format!("publishing {}", dir.display())));
            }
        }
    }
    let mut chunks: Vec<Chunk> = Vec::new();
    for e in std::fs::read_dir(&dir).context(|| format!("reading {}", dir.display()))? {
        let p = e.context(|| format!("reading {}", dir.display()))?.path();
        let name = p.file_name().unwrap_or_default().to_string_lossy().into_owned();
        if let Some(hex) = name.strip_suffix(".bin") {
            let off = u64::from_str_radix(hex, 16).map_err(|e| crate::error::infra(format!("{}: {e}", p.display())).because(e))?;
            chunks.push((off, p));
        }
    }
    chunks.sort();
    Ok(chunks)
}

/// Runs of `block`-sized pieces holding a non-zero byte, merged across gaps
/// shorter than `gap`: (offset, length).
pub fn nonzero_runs(bytes: &[u8], block: usize, gap: usize) -> Vec<(usize, usize)> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (i, b) in bytes.chunks(block).enumerate() {
        if b.iter().all(|&x| x == 0) {
            continue;
        }
        let off = i * block;
        match runs.last_mut() {
            Some((s, l)) if off - (*s + *l) < gap => *l = off + b.len() - *s,
            _ => runs.push((off, b.len())),
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonzero_runs_merge_small_gaps() {
        let mut b = vec![0u8; 64];
        b[0] = 1;
        b[9] = 1; // block 2, gap of one block from block 0
        b[40] = 1; // block 10, far away
        assert_eq!(nonzero_runs(&b, 4, 8), vec![(0, 12), (40, 4)]);
        assert_eq!(nonzero_runs(&[0u8; 16], 4, 8), vec![]);
    }

    #[test]
    fn images_are_made_once_and_their_chunks_hold_the_superblock() {
        for (fs, magic_at, magic) in [(Fs::Ext4, 1024 + 0x38, &[0x53u8, 0xef][..]), (Fs::Xfs, 0, &b"XFSB"[..])] {
            let chunks = make(fs, false).unwrap();
            let (off, first) = &chunks[0];
            assert_eq!(*off, 0);
            let bytes = std::fs::read(first).unwrap();
            assert_eq!(&bytes[magic_at..magic_at + magic.len()], magic, "{fs:?} superblock magic");
            let total: u64 = chunks.iter().map(|(_, p)| std::fs::metadata(p).unwrap().len()).sum();
            assert!(total < SIZE / 4, "{fs:?}: {total} bytes to load");
            assert!(chunks.iter().all(|(o, p)| o + std::fs::metadata(p).unwrap().len() <= SIZE));
            assert_eq!(make(fs, false).unwrap(), chunks);
            assert_ne!(make(fs, true).unwrap(), chunks, "pmd images differ");
        }
    }
}
