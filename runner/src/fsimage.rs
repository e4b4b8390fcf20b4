//! Filesystems made on the host for memmap pmem: mkfs.ext4 on 6.1's memmap
//! /dev/pmem0 takes ~4.3 s under TCG, the same mkfs on a host file 0.05 s.
//! The image (cached by content of its recipe and mkfs version) is loaded
//! into the pmem range by QEMU (`-device loader`) before the kernel starts,
//! so each guest starts from a pristine filesystem.

use crate::cache;
use crate::error::{Context, Result};
use kregress_agent::config::mkfs_args;
use kregress_agent::Fs;
use std::path::PathBuf;
use std::process::Command;

/// Size of memmap pmem0 (`memmap=512M!1G`).
pub const SIZE: u64 = 512 << 20;

/// The cached image of `fs` (made for PMD mappings when `pmd`).
pub fn make(fs: Fs, pmd: bool) -> Result<PathBuf> {
    let (tool, args) = mkfs_args(fs, pmd);
    // mkfs.ext4 prints its version on stderr and exits 0; mkfs.xfs on stdout.
    let version = std::process::Command::new(tool).arg("-V").output().map(|o| {
        format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
    });
    let version = version.context(|| format!("running {tool} -V (install e2fsprogs/xfsprogs)"))?;
    let key = cache::Key::new("fs-image-v1")
        .part("tool", tool.as_bytes())
        .part("args", args.join(" ").as_bytes())
        .part("version", version.as_bytes())
        .part("size", &SIZE.to_le_bytes())
        .hex();
    let dir = cache::dir("fsimg")?;
    let path = dir.join(format!("{}-{}.img", tool.trim_start_matches("mkfs."), &key[..16]));
    if path.is_file() {
        return Ok(path);
    }
    let tmp = tempfile::NamedTempFile::new_in(&dir).context(|| format!("temp file in {}", dir.display()))?;
    tmp.as_file().set_len(SIZE).context(|| "sizing the image".into())?;
    let mut c = Command::new(tool);
    c.args(&args).arg(tmp.path());
    crate::proc::output(c)?;
    tmp.persist(&path).map_err(|e| crate::error::infra(format!("publishing {}: {e}", path.display())))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_made_once_and_hold_the_filesystem() {
        for (fs, magic_at, magic) in [(Fs::Ext4, 1024 + 0x38, &[0x53u8, 0xef][..]), (Fs::Xfs, 0, &b"XFSB"[..])] {
            let p = make(fs, false).unwrap();
            let bytes = std::fs::read(&p).unwrap();
            assert_eq!(bytes.len() as u64, SIZE);
            assert_eq!(&bytes[magic_at..magic_at + magic.len()], magic, "{fs:?} superblock magic");
            let again = make(fs, false).unwrap();
            assert_eq!(p, again);
            assert_ne!(make(fs, true).unwrap(), p, "pmd images differ");
        }
    }
}
