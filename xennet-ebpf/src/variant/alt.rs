//! The upgrade tests' "alt" build (object `xennet-alt`): this build's map layout, programs
//! that differ (another program tag): each ingress program first stores [`BUILD`] on its
//! stack, which changes its instructions and nothing else.

use xennet_common::maps::{MAX_PORTS, STATS_SLOTS};

/// Entries of `XN_PORTS`.
pub(crate) const PORT_ENTRIES: u32 = MAX_PORTS;
/// Entries of `XN_STATS`.
pub(crate) const STATS_ENTRIES: u32 = STATS_SLOTS;
/// This build's number (only in the instructions).
const BUILD: u32 = 3;

/// Store [`BUILD`] on the stack, where the compiler cannot drop it.
#[inline(always)]
pub(crate) fn probe() {
    let mut build = 0u32;
    // SAFETY: a local of the right type.
    unsafe { core::ptr::write_volatile(&raw mut build, BUILD) };
}
