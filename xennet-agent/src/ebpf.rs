//! The eBPF objects, embedded at build time (see `build.rs`).

/// The datapath object built from `xennet-ebpf` (binary `xennet`); empty when the build had no
/// eBPF toolchain.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xennet"));

/// The benchmark's object (binary `xennet-bench` of `xennet-ebpf`: generator, sinks, ceiling,
/// ladder), for `cargo xtask bench` only; empty like [`OBJECT`] without a toolchain.
#[cfg(feature = "bench")]
pub static BENCH_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xennet-bench"));

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

/// The embedded benchmark object, or an error saying how to get one.
#[cfg(feature = "bench")]
pub fn bench_object() -> anyhow::Result<&'static [u8]> {
    if BENCH_OBJECT.is_empty() {
        anyhow::bail!(
            "built without the benchmark's eBPF object (no nightly rust-src or bpf-linker at \
             build time); rebuild with `cargo xtask build-ebpf`"
        );
    }
    Ok(BENCH_OBJECT)
}
