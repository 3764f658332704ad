//! The eBPF objects, embedded at build time (see `build.rs`).

/// The datapath object built from `xennet-ebpf` (binary `xennet`); empty when the build had no
/// eBPF toolchain.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xennet"));

/// The benchmark's object (binary `xennet-bench` of `xennet-ebpf`: generator, sinks, ceiling,
/// ladder), for `cargo xtask bench` only; empty like [`OBJECT`] without a toolchain.
#[cfg(feature = "bench")]
pub static BENCH_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xennet-bench"));

/// Testing aid, not for production: a path in this environment variable makes the agent load
/// the datapath object from that file instead of the embedded one (the upgrade tests start
/// agents with another build of the programs, see `NEXT_OBJECT`).
pub const OBJECT_ENV: &str = "XENNET_TEST_OBJECT";

/// The object named by [`OBJECT_ENV`], read once.
static FROM_FILE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();

/// Another build of the datapath, for the upgrade tests only (feature `test-objects`):
/// binary `xennet-next` of `xennet-ebpf`, whose programs differ and whose map layout differs
/// (counters and ports maps of other capacities, one more map `XN_PROBE` the programs write
/// their build number into).
#[cfg(feature = "test-objects")]
pub static NEXT_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xennet-next"));

/// Another build of the datapath, for the upgrade tests only (feature `test-objects`):
/// binary `xennet-alt` of `xennet-ebpf`, whose programs differ from `xennet`'s but whose map
/// layout is the same.
#[cfg(feature = "test-objects")]
pub static ALT_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xennet-alt"));

/// The datapath object: the embedded one, or the file named by [`OBJECT_ENV`] (tests); an
/// error says how to get one.
pub fn object() -> anyhow::Result<&'static [u8]> {
    if let Some(path) = std::env::var_os(OBJECT_ENV) {
        if let Some(o) = FROM_FILE.get() {
            return Ok(o);
        }
        let bytes = std::fs::read(&path).map_err(|e| {
            anyhow::anyhow!(
                "reading the object {} ({OBJECT_ENV}): {e}",
                path.to_string_lossy()
            )
        })?;
        tracing::warn!(path = %path.to_string_lossy(), "loading the datapath object from a file ({OBJECT_ENV}: a testing aid)");
        return Ok(FROM_FILE.get_or_init(|| bytes));
    }
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
