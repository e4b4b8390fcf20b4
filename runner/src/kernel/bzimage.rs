//! Is this bzImage whole? Read from the x86 boot protocol header
//! (Documentation/arch/x86/boot.rst): the file is as long as the header says,
//! and the compressed payload ends with the decompressed length that
//! arch/x86/boot/compressed/mkpiggy read from it. A payload cut short (a make
//! killed while compressing, whose half-written vmlinux.bin.xz the next
//! incremental make trusted) ends in compressed bytes instead: a length of
//! gigabytes, and no xz footer. Such an image booted nothing (QEMU exited with
//! an empty console) and bisect called the culprit a skip.

/// Offsets in the setup header.
const SETUP_SECTS: usize = 0x1f1;
const SYSSIZE: usize = 0x1f4;
const MAGIC: usize = 0x202;
const PAYLOAD_OFFSET: usize = 0x248;
const PAYLOAD_LENGTH: usize = 0x24c;
const XZ_MAGIC: &[u8] = b"\xfd7zXZ\0";

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// Checks `image`; `vmlinux_bin` is the decompressed payload's length when
/// known (the build directory's arch/x86/boot/compressed/vmlinux.bin), else
/// `max_len` bounds it (the vmlinux ELF's size: the payload is the ELF's
/// loadable bytes). Returns why the image is not whole.
pub fn check(image: &[u8], vmlinux_bin: Option<u64>, max_len: u64) -> Result<(), String> {
    if image.len() < 0x264 || &image[MAGIC..MAGIC + 4] != b"HdrS" {
        return Err("no x86 boot header (HdrS)".into());
    }
    // "If this field is 0, the real value is 4."
    let sects = match image[SETUP_SECTS] {
        0 => 4,
        n => n as usize,
    };
    let setup = (sects + 1) * 512;
    let expect = setup as u64 + u32_at(image, SYSSIZE) as u64 * 16;
    if image.len() as u64 != expect {
        return Err(format!("{} bytes where the header says {expect}", image.len()));
    }
    let (off, len) = (u32_at(image, PAYLOAD_OFFSET) as usize, u32_at(image, PAYLOAD_LENGTH) as usize);
    let Some(payload) = setup.checked_add(off).and_then(|s| image.get(s..s.checked_add(len)?)) else {
        return Err(format!("payload {off}+{len} lies outside the image"));
    };
    if payload.len() < 16 {
        return Err("empty payload".into());
    }
    let out = u32_at(payload, payload.len() - 4) as u64;
    if payload.starts_with(XZ_MAGIC) && &payload[payload.len() - 6..payload.len() - 4] != b"YZ" {
        return Err("the xz payload has no stream footer (cut short)".into());
    }
    match vmlinux_bin {
        Some(want) if out != want => Err(format!("the payload decompresses to {out} bytes, vmlinux.bin has {want}")),
        None if out < payload.len() as u64 || out > max_len => {
            Err(format!("the payload claims {out} decompressed bytes (compressed {}, vmlinux {max_len})", payload.len()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal image as arch/x86/boot/tools/build lays it out.
    pub(crate) fn image(payload: &[u8]) -> Vec<u8> {
        let setup = 5 * 512;
        let mut b = vec![0u8; setup];
        b[SETUP_SECTS] = 4;
        b[MAGIC..MAGIC + 4].copy_from_slice(b"HdrS");
        b[PAYLOAD_OFFSET..PAYLOAD_OFFSET + 4].copy_from_slice(&0x100u32.to_le_bytes());
        b[PAYLOAD_LENGTH..PAYLOAD_LENGTH + 4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        let mut body = vec![0u8; 0x100];
        body.extend_from_slice(payload);
        body.resize(body.len().div_ceil(16) * 16, 0);
        b[SYSSIZE..SYSSIZE + 4].copy_from_slice(&((body.len() / 16) as u32).to_le_bytes());
        b.extend(body);
        b
    }

    pub(crate) fn xz(out: u32, footer: &[u8]) -> Vec<u8> {
        let mut p = XZ_MAGIC.to_vec();
        p.extend_from_slice(&[7u8; 100]);
        p.extend_from_slice(footer);
        p.extend_from_slice(&out.to_le_bytes());
        p
    }

    #[test]
    fn a_whole_image_passes() {
        let img = image(&xz(5000, b"YZ"));
        assert_eq!(check(&img, Some(5000), 0), Ok(()));
        assert_eq!(check(&img, None, 10_000), Ok(()));
    }

    /// What the killed make left: compressed bytes where the footer and the
    /// length belong (the image cached at 06:12 claimed 3774327628 bytes).
    #[test]
    fn a_payload_cut_short_fails() {
        let img = image(&xz(3_774_327_628, b"\xc6\x0f"));
        assert!(check(&img, None, 19_188_304).unwrap_err().contains("no stream footer"));
        let mut p = xz(3_774_327_628, b"YZ");
        p[0] = 0x1f; // not xz: only the length can tell
        assert!(check(&image(&p), None, 19_188_304).unwrap_err().contains("claims 3774327628"));
        assert!(check(&image(&xz(4000, b"YZ")), Some(5000), 0).unwrap_err().contains("vmlinux.bin has 5000"));
    }

    #[test]
    fn a_truncated_file_or_no_header_fails() {
        let img = image(&xz(5000, b"YZ"));
        assert!(check(&img[..img.len() - 16], Some(5000), 0).unwrap_err().contains("where the header says"));
        assert!(check(&[0u8; 10], None, 0).unwrap_err().contains("HdrS"));
        let mut bad = img.clone();
        bad[PAYLOAD_LENGTH..PAYLOAD_LENGTH + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(check(&bad, None, 10_000).unwrap_err().contains("outside the image"));
    }
}
