//! The FDB generation (`XN_FDBGEN`), mapped into the agent's memory so that it can bump it with
//! the same atomic add the datapath uses: every FDB entry the agent removes or rewrites voids
//! the datapath's per-CPU cached copies (`xennet_common::fdbcache`).

use std::{
    os::fd::{AsFd as _, AsRawFd as _},
    ptr::NonNull,
    sync::atomic::{AtomicU64, Ordering},
};

use anyhow::{Context as _, bail};
use aya::maps::MapData;

/// `XN_FDBGEN`, mmapped (its one `u64` at byte 0).
pub struct FdbGen {
    gen_ptr: NonNull<AtomicU64>,
    bytes: usize,
}

// SAFETY: the mapping is shared memory holding one atomic; every access goes through it.
unsafe impl Send for FdbGen {}
// SAFETY: as above.
unsafe impl Sync for FdbGen {}

impl FdbGen {
    /// Map the array behind `map` (created with `BPF_F_MMAPABLE`).
    pub fn map(map: &MapData) -> anyhow::Result<Self> {
        // SAFETY: sysconf has no preconditions.
        let bytes =
            usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).context("page size")?;
        // SAFETY: mapping a BPF array map fd as the kernel documents for BPF_F_MMAPABLE maps.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                map.fd().as_fd().as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            bail!("mmap of XN_FDBGEN: {}", std::io::Error::last_os_error());
        }
        let gen_ptr = NonNull::new(p.cast::<AtomicU64>()).context("mmap returned null")?;
        Ok(FdbGen { gen_ptr, bytes })
    }

    fn cell(&self) -> &AtomicU64 {
        // SAFETY: the mapping is page-aligned, at least 8 bytes, and lives as long as self.
        unsafe { self.gen_ptr.as_ref() }
    }

    /// The current generation.
    #[must_use]
    pub fn get(&self) -> u64 {
        self.cell().load(Ordering::SeqCst)
    }

    /// FDB entries were removed or rewritten (call after the change): cached copies are void.
    pub fn bump(&self) {
        self.cell().fetch_add(1, Ordering::SeqCst);
    }
}

impl Drop for FdbGen {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `map` mapped.
        unsafe { libc::munmap(self.gen_ptr.as_ptr().cast(), self.bytes) };
    }
}
