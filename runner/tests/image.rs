//! The initramfs: the agent built into kregress as /init plus the recipe's tools.

use kregress::image::{self, ImageOptions};

#[test]
fn agent_is_static_and_the_image_holds_the_tools() {
    assert_eq!(image::elf_interpreter(image::AGENT).unwrap(), None, "the built-in agent has an ELF interpreter");
    let img = image::build(&ImageOptions::default()).unwrap_or_else(|e| panic!("building the initramfs: {e}"));
    assert_eq!(img.files["/init"], "kregress-agent (built into kregress)");
    for f in ["/init", "/sbin/mkfs.ext4", "/sbin/mkfs.xfs", "/usr/bin/ndctl", "/fsimg/ext4-pte/00000000.bin", "/fsimg/xfs-pmd/00000000.bin"]
    {
        assert!(img.files.contains_key(f), "{f} missing from the image");
    }
    // Same inputs, same archive: the second build is a cache hit.
    let again = image::build(&ImageOptions::default()).unwrap();
    assert!(again.cached);
    assert_eq!(again.key, img.key);
}
