//! The per-port learned-MAC counts (`XN_LEARNED`), mapped into the agent's memory so that it
//! can change them with the same atomic adds the datapath uses.
//!
//! The kernel lays array elements out 8 bytes apart (`round_up(value_size, 8)`), so slot `i`'s
//! `u32` lives at byte `8 * i`.

use std::{
    os::fd::{AsFd as _, AsRawFd as _},
    ptr::NonNull,
    sync::atomic::{AtomicU32, Ordering},
};

use anyhow::{Context as _, bail};
use aya::maps::MapData;
use xennet_common::maps::STATS_SLOTS;

/// Bytes between two elements of a BPF array map of `u32`.
const STRIDE_BYTES: usize = 8;

/// `XN_LEARNED`, mmapped.
pub struct LearnedCounts {
    base: NonNull<AtomicU32>,
    len: usize,
}

// SAFETY: the mapping is shared memory of atomics; every access goes through `AtomicU32`.
unsafe impl Send for LearnedCounts {}
// SAFETY: as above.
unsafe impl Sync for LearnedCounts {}

impl LearnedCounts {
    /// Map the array behind `map` (created with `BPF_F_MMAPABLE`).
    pub fn map(map: &MapData) -> anyhow::Result<Self> {
        let slots = STATS_SLOTS as usize;
        // SAFETY: sysconf has no preconditions.
        let page =
            usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).context("page size")?;
        let bytes = (slots * STRIDE_BYTES).div_ceil(page) * page;
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
            bail!("mmap of XN_LEARNED: {}", std::io::Error::last_os_error());
        }
        let base = NonNull::new(p.cast::<AtomicU32>()).context("mmap returned null")?;
        Ok(LearnedCounts { base, len: slots })
    }

    fn slot(&self, slot: u32) -> Option<&AtomicU32> {
        let i = slot as usize;
        // SAFETY: in bounds of the mapping (element stride 8 bytes = 2 u32), which lives as
        // long as self.
        (i < self.len).then(|| unsafe { &*self.base.as_ptr().add(i * (STRIDE_BYTES / 4)) })
    }

    /// MACs learned on `slot`.
    #[must_use]
    pub fn get(&self, slot: u32) -> u32 {
        self.slot(slot).map_or(0, |a| a.load(Ordering::Relaxed))
    }

    /// One learned MAC of `slot` was removed.
    pub fn dec(&self, slot: u32) {
        if let Some(a) = self.slot(slot) {
            // Never wrap below zero, whatever raced.
            let _ = a.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
        }
    }

    /// Forget every count of `slot` (the port is gone and its entries flushed).
    pub fn reset(&self, slot: u32) {
        if let Some(a) = self.slot(slot) {
            a.store(0, Ordering::Relaxed);
        }
    }
}

impl Drop for LearnedCounts {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `map` mapped.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        let bytes = (self.len * STRIDE_BYTES).div_ceil(page) * page;
        // SAFETY: as above.
        unsafe { libc::munmap(self.base.as_ptr().cast(), bytes) };
    }
}
