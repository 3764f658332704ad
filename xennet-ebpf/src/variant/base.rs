//! The production build's variant constants: the map capacities of `maps.rs` and no probe.
//! The other variants (`next.rs`, `alt.rs`) exist only for the upgrade tests.

use xennet_common::maps::{MAX_PORTS, STATS_SLOTS};

/// Entries of `XN_PORTS`.
pub(crate) const PORT_ENTRIES: u32 = MAX_PORTS;
/// Entries of `XN_STATS`.
pub(crate) const STATS_ENTRIES: u32 = STATS_SLOTS;

/// Called at the top of every ingress program; nothing in this build.
#[allow(
    dead_code,
    reason = "the bench object, which shares this variant, has no ingress program"
)]
#[inline(always)]
pub(crate) fn probe() {}
