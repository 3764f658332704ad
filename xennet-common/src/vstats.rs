//! Per-VLAN counters: frames and bytes received and sent per {bridge, VLAN}, in a per-CPU hash
//! map the datapath fills as VLANs carry traffic (their number is bounded by the VLANs the
//! bridges carry, so the labels stay few).
#![expect(clippy::inline_always, reason = "eBPF: the datapath must be inlined")]

use crate::fwd::Tables;

/// Counters per {bridge, VLAN}: [`VlanKey`] → [`VlanStats`]. Per-CPU hash map.
pub const MAP_VSTATS: &str = "XN_VSTATS";
/// Most {bridge, VLAN} pairs counted; beyond, a new pair is not counted.
pub const VSTATS_MAX_ENTRIES: u32 = 4096;

/// A VLAN of a bridge.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(C)]
pub struct VlanKey {
    /// Bridge id.
    pub bridge: u32,
    /// VLAN id.
    pub vlan: u32,
}

/// Counters of one VLAN of one bridge (for one CPU).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct VlanStats {
    /// Frames received by the bridge in this VLAN (every frame classified into it, whatever
    /// its outcome).
    pub rx_packets: u64,
    /// Bytes of those frames.
    pub rx_bytes: u64,
    /// Frames sent out of a port in this VLAN (a forward, or each copy of a flood).
    pub tx_packets: u64,
    /// Bytes of those frames, as sent (with or without a tag).
    pub tx_bytes: u64,
}

impl VlanStats {
    /// Add another CPU's counters.
    #[must_use]
    pub const fn plus(self, o: VlanStats) -> VlanStats {
        VlanStats {
            rx_packets: self.rx_packets.wrapping_add(o.rx_packets),
            rx_bytes: self.rx_bytes.wrapping_add(o.rx_bytes),
            tx_packets: self.tx_packets.wrapping_add(o.tx_packets),
            tx_bytes: self.tx_bytes.wrapping_add(o.tx_bytes),
        }
    }
}

/// Count `n` frames of `bytes` bytes in all sent in VLAN `key` outside [`crate::fwd::account`] (flood
/// copies).
#[inline(always)]
pub fn account_vlan_tx<T: Tables>(t: &T, key: VlanKey, n: u64, bytes: u64) {
    t.with_vlan_stats(key, |v| {
        v.tx_packets += n;
        v.tx_bytes += bytes;
    });
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY (both): repr(C), integer fields only, no holes.
    unsafe impl aya::Pod for super::VlanKey {}
    unsafe impl aya::Pod for super::VlanStats {}
}
