//! Builds the eBPF objects (every binary of crate `xennet-ebpf`) with aya-build, which leaves
//! each in `OUT_DIR/<binary>`: `xennet`, the datapath that `src/ebpf.rs` embeds, and
//! `xennet-bench`, the benchmark's programs, embedded only with the `bench` feature (xtask);
//! `xennet-next` and `xennet-alt`, other builds of the datapath for the upgrade tests, embedded
//! only with the `test-objects` feature.
//! `cargo xtask build-ebpf` goes through this same script; it is the one producer of both.
//!
//! The eBPF build needs nightly with rust-src and bpf-linker. Without them a plain host build
//! still succeeds (so `cargo build`/`cargo test` of the host code work on stable), but embeds no
//! object and the agent refuses to start the datapath with a clear message. Set
//! `XENNET_REQUIRE_EBPF=1` (xtask does) to make a missing toolchain a build error instead.

use std::{env, fs, path::PathBuf, process::Command};

use anyhow::{Context as _, anyhow};

/// The binaries of `xennet-ebpf`, one object each (its `[[bin]]` names).
const OBJECTS: [&str; 4] = ["xennet", "xennet-bench", "xennet-next", "xennet-alt"];

fn ok(cmd: &mut Command) -> bool {
    cmd.output().is_ok_and(|o| o.status.success())
}

fn toolchain_missing() -> Option<&'static str> {
    if !ok(Command::new("bpf-linker").arg("--version")) {
        return Some("bpf-linker is not on PATH");
    }
    let src = Command::new("rustup")
        .args(["component", "list", "--toolchain", "nightly", "--installed"])
        .output();
    match src {
        Ok(o) if o.status.success() => {
            if !String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.starts_with("rust-src"))
            {
                return Some("the nightly toolchain has no rust-src component");
            }
        }
        _ => return Some("there is no rustup nightly toolchain"),
    }
    None
}

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=XENNET_REQUIRE_EBPF");
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR")?);
    let root = manifest
        .parent()
        .ok_or_else(|| anyhow!("agent crate has no parent dir"))?;
    let ebpf_dir = root.join("xennet-ebpf");
    let common_dir = root.join("xennet-common");
    // aya-build watches the eBPF crate; the shared core lives beside it.
    println!("cargo:rerun-if-changed={}", common_dir.display());
    let out_dir = PathBuf::from(env::var("OUT_DIR").context("OUT_DIR")?);

    if let Some(why) = toolchain_missing() {
        if env::var("XENNET_REQUIRE_EBPF").is_ok_and(|v| v == "1") {
            return Err(anyhow!(
                "cannot build the eBPF object: {why}; run `cargo xtask build-ebpf`, which installs it"
            ));
        }
        println!(
            "cargo:warning=eBPF object not built ({why}): this agent cannot start the datapath; \
             run `cargo xtask build-ebpf` to install the toolchain and build it"
        );
        for obj in OBJECTS {
            let out = out_dir.join(obj);
            fs::write(&out, b"").with_context(|| format!("writing {}", out.display()))?;
        }
        // Try again once the toolchain appears.
        println!("cargo:rerun-if-changed={}", ebpf_dir.display());
        return Ok(());
    }

    let ebpf_dir_str = ebpf_dir
        .to_str()
        .ok_or_else(|| anyhow!("non-UTF-8 path {}", ebpf_dir.display()))?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "xennet-ebpf",
            root_dir: ebpf_dir_str,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
}
