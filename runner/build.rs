//! Builds the guest agent (crate `images/agent`, binary kregress-agent) as a
//! static executable at kregress's build time, so that the kregress binary
//! carries it (`include_bytes!` in src/image.rs) and needs no checkout at run
//! time: `cargo install --path runner` gives a self-contained kregress.
//!
//! The agent is built by a nested `cargo build --release --target
//! x86_64-unknown-linux-gnu` with `RUSTFLAGS=-C target-feature=+crt-static`,
//! into a target directory of its own under OUT_DIR: the outer build holds
//! the lock of its own target directory, never this one, and the agent's
//! static flags never reach the runner's artifacts. The nested cargo takes
//! part in the outer one's jobserver, so `-j` bounds both.

use std::path::{Path, PathBuf};
use std::process::Command;

/// How the agent is built: the target (the host's default; crt-static works
/// with glibc's libc.a) and the flags that make it static. Passed on to the
/// crate as `image::AGENT_TARGET` and `image::AGENT_RUSTFLAGS`.
const AGENT_TARGET: &str = "x86_64-unknown-linux-gnu";
const AGENT_RUSTFLAGS: &str = "-C target-feature=+crt-static";

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir.parent().expect("runner/ lies in the workspace").to_path_buf();
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));

    // What the agent is built from: its sources and manifest, the workspace's
    // manifest and lock file (dependency versions, profiles).
    let agent = workspace.join("images/agent");
    for p in [agent.join("src"), agent.join("Cargo.toml"), workspace.join("Cargo.toml"), workspace.join("Cargo.lock")] {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    // The default initramfs recipe, embedded with include_str!.
    println!("cargo:rerun-if-changed={}", workspace.join("images/initramfs.yaml").display());

    let bin = build_agent(&workspace, &out.join("agent-target"));
    println!("cargo:rustc-env=KREGRESS_AGENT_BIN={}", bin.display());
    println!("cargo:rustc-env=KREGRESS_AGENT_TARGET={AGENT_TARGET}");
    println!("cargo:rustc-env=KREGRESS_AGENT_RUSTFLAGS={AGENT_RUSTFLAGS}");
}

/// `cargo build --release -p kregress-agent` for [`AGENT_TARGET`], static;
/// returns the binary's path. Panics (failing the build with cargo's output
/// shown) when cargo fails.
fn build_agent(workspace: &Path, target_dir: &Path) -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.args(["build", "--release", "-p", "kregress-agent", "--target", AGENT_TARGET, "--manifest-path"])
        .arg(workspace.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", target_dir)
        // With an explicit --target, RUSTFLAGS reaches only target code: proc
        // macros (serde_derive) stay dynamic, as they must.
        .env("RUSTFLAGS", AGENT_RUSTFLAGS)
        // A build script's stdout is read by cargo as instructions: the
        // nested cargo's goes to stderr, shown when the build fails.
        .stdout(std::io::stderr());
    // What the outer cargo tells its build script about its own compilation
    // (flags, clippy-driver as the workspace's wrapper, profile settings) is not the
    // agent's business: the agent is the same static release build whatever
    // builds kregress.
    for (k, _) in std::env::vars_os() {
        let Some(k) = k.to_str() else { continue };
        let outer = k.starts_with("CARGO_ENCODED_RUSTFLAGS")
            || k == "CARGO_BUILD_RUSTFLAGS"
            || k == "CARGO_BUILD_TARGET"
            || k == "CARGO_BUILD_TARGET_DIR"
            || (k.starts_with("CARGO_TARGET_") && k.ends_with("_RUSTFLAGS"))
            || k.starts_with("CARGO_PROFILE_")
            || k == "RUSTC_WORKSPACE_WRAPPER"
            || k == "RUSTDOCFLAGS"
            || k == "CARGO_ENCODED_RUSTDOCFLAGS";
        if outer {
            cmd.env_remove(k);
        }
    }
    let status = cmd.status().unwrap_or_else(|e| panic!("running {}: {e}", Path::new(&cargo).display()));
    assert!(status.success(), "building the guest agent (cargo build --release -p kregress-agent --target {AGENT_TARGET}, RUSTFLAGS='{AGENT_RUSTFLAGS}', CARGO_TARGET_DIR={}) failed: {status}", target_dir.display());
    let bin = target_dir.join(AGENT_TARGET).join("release/kregress-agent");
    assert!(bin.is_file(), "cargo built the agent but {} is missing", bin.display());
    bin
}
