//! The eBPF object, embedded at build time (see `build.rs`).

/// The object file built from `xennet-ebpf`; empty when the build had no eBPF toolchain.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xennet"));

/// The embedded object, or an error saying how to get one.
pub fn object() -> anyhow::Result<&'static [u8]> {
    if OBJECT.is_empty() {
        anyhow::bail!(
            "this xennet-agent was built without its eBPF object (no nightly rust-src or \
             bpf-linker at build time); rebuild with `cargo xtask build-ebpf`"
        );
    }
    Ok(OBJECT)
}
