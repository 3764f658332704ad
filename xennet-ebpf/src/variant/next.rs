//! The upgrade tests' "next" build (object `xennet-next`): another map layout — `XN_PORTS` and
//! `XN_STATS` of other capacities, and one more map, `XN_PROBE`, into which every ingress
//! program writes [`BUILD`], so a test sees which build's programs run.

use aya_ebpf::{macros::map, maps::Array};
use xennet_common::maps::{MAX_PORTS, STATS_SLOTS};

/// Entries of `XN_PORTS`.
pub(crate) const PORT_ENTRIES: u32 = MAX_PORTS + 64;
/// Entries of `XN_STATS`.
pub(crate) const STATS_ENTRIES: u32 = STATS_SLOTS + 64;
/// This build's number, as `XN_PROBE` shows it.
const BUILD: u32 = 2;

/// `XN_PROBE[0]`: the build number of the programs that last ran.
#[map]
static XN_PROBE: Array<u32> = Array::with_max_entries(1, 0);

/// Write [`BUILD`] into `XN_PROBE`.
#[inline(always)]
pub(crate) fn probe() {
    if let Some(p) = XN_PROBE.get_ptr_mut(0) {
        // SAFETY: a valid array slot; a plain store.
        unsafe { *p = BUILD };
    }
}
