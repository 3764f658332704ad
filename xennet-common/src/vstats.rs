//! Per-VLAN counters: frames and bytes received and sent per {bridge, VLAN}, in a per-CPU array
//! indexed by a slot the agent gives every VLAN a bridge carries (`XN_VSLOTS`: bridge id →
//! one slot per VLAN id), so that counting costs the datapath two array reads (inlined by the
//! verifier) rather than a per-CPU hash lookup.
#![expect(clippy::inline_always, reason = "eBPF: the datapath must be inlined")]

use crate::fwd::{Decision, Tables, Verdict};

/// Counters per VLAN slot: slot (`u32`) → [`VlanStats`]. Per-CPU array; slot 0 is never
/// counted (a VLAN without a slot).
pub const MAP_VSTATS: &str = "XN_VSTATS";
/// Entries of `XN_VSTATS`: {bridge, VLAN} pairs carried beyond `VSTATS_SLOTS - 1` get no
/// counters (the agent says so).
pub const VSTATS_SLOTS: u32 = 1 << 14;
/// VLAN slots per bridge: bridge id (`u32`) → [`VlanSlots`]. Array of [`VSLOT_BRIDGES`].
pub const MAP_VSLOTS: &str = "XN_VSLOTS";
/// Highest bridge id: ids are the lowest free among the previous configuration's bridges and
/// the new one's, so at most twice the agent's bridge limit (256).
pub const MAX_BRIDGE_ID: u32 = 512;
/// Entries of `XN_VSLOTS` (ids 0..=[`MAX_BRIDGE_ID`]; 0 is no bridge).
pub const VSLOT_BRIDGES: u32 = MAX_BRIDGE_ID + 1;
const _: () = assert!(VSTATS_SLOTS <= 1 << 16, "VlanSlots holds u16 slots");

/// The `XN_VSTATS` slot of each VLAN id of one bridge (0: not counted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct VlanSlots {
    /// Slot by VLAN id.
    pub slot: [u16; 4096],
}

impl VlanSlots {
    /// No VLAN counted.
    pub const EMPTY: VlanSlots = VlanSlots { slot: [0; 4096] };
}

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

/// Count a frame of `len` bytes under its final decision in its VLAN's counters ({bridge,
/// VLAN} of the decision; nothing for a frame dropped before its VLAN was known).
#[inline(always)]
pub fn account_vlan<T: Tables>(t: &T, d: &Decision, len: u64) {
    if d.vlan == 0 || d.bridge == 0 {
        return;
    }
    let key = VlanKey {
        bridge: d.bridge,
        vlan: u32::from(d.vlan),
    };
    let fwd = d.verdict == Verdict::Forward;
    let tx_len = len.saturating_add_signed(d.tag.len_delta());
    t.with_vlan_stats(key, |v| {
        v.rx_packets += 1;
        v.rx_bytes += len;
        if fwd {
            v.tx_packets += 1;
            v.tx_bytes += tx_len;
        }
    });
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
    // SAFETY (all): repr(C), integer fields only, no holes.
    unsafe impl aya::Pod for super::VlanKey {}
    unsafe impl aya::Pod for super::VlanStats {}
    unsafe impl aya::Pod for super::VlanSlots {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        ETH_P_8021Q,
        fwd::{
            self, Frame as _,
            fixtures::host::{Pkt, World, static_entry},
        },
        maps::{PORT_ACCESS, PORT_TRUNK, PortConf},
    };
    use std::{collections::BTreeMap, vec::Vec};

    const TRUNK: u32 = 10;
    const VIF1: u32 = 11;
    const VIF2: u32 = 12;
    const VIF3: u32 = 13;
    const OTHER: u32 = 20;
    const G1: [u8; 6] = [0, 0x16, 0x3e, 0, 0, 1];
    const G2: [u8; 6] = [0, 0x16, 0x3e, 0, 0, 2];
    const G3: [u8; 6] = [0, 0x16, 0x3e, 0, 0, 3];
    const UP: [u8; 6] = [2, 0, 0, 0, 0, 0xfe];

    fn world() -> World {
        let mut ports = BTreeMap::new();
        let mut trunk = PortConf::new(1, 1, PORT_TRUNK, 0, ETH_P_8021Q);
        trunk.add_vlan(4093);
        trunk.add_vlan(4094);
        ports.insert(TRUNK, trunk);
        ports.insert(VIF1, PortConf::new(1, 2, PORT_ACCESS, 4094, ETH_P_8021Q));
        ports.insert(VIF2, PortConf::new(1, 3, PORT_ACCESS, 4094, ETH_P_8021Q));
        ports.insert(VIF3, PortConf::new(1, 4, PORT_ACCESS, 4093, ETH_P_8021Q));
        ports.insert(OTHER, PortConf::new(2, 5, PORT_ACCESS, 4094, ETH_P_8021Q));
        let mut fdb = BTreeMap::new();
        fdb.insert((1, 4094, G1), static_entry(VIF1));
        fdb.insert((1, 4094, G2), static_entry(VIF2));
        fdb.insert((1, 4093, G3), static_entry(VIF3));
        fdb.insert((1, 4094, UP), static_entry(TRUNK));
        World::new(ports, fdb)
    }

    fn eth(dst: [u8; 6], src: [u8; 6], tag: Option<u16>, payload: usize) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&dst);
        v.extend_from_slice(&src);
        if let Some(t) = tag {
            v.extend_from_slice(&ETH_P_8021Q.to_be_bytes());
            v.extend_from_slice(&t.to_be_bytes());
        }
        v.extend_from_slice(&0x0800u16.to_be_bytes());
        v.extend(core::iter::repeat_n(0x45, payload));
        v
    }

    fn get(w: &World, bridge: u32, vlan: u32) -> VlanStats {
        w.vstats
            .borrow()
            .get(&VlanKey { bridge, vlan })
            .copied()
            .unwrap_or_default()
    }

    /// Frames sent per VLAN land in their {bridge, VLAN}: rx for every classified frame
    /// (drops too), tx for forwards with the egress length (tag pushed or popped); frames
    /// dropped before classification and other bridges stay apart.
    #[test]
    fn counts_per_bridge_and_vlan() {
        let w = world();
        for _ in 0..3 {
            w.run(VIF1, eth(G2, G1, None, 46)); // 60 B, forward untagged
        }
        for _ in 0..2 {
            w.run(VIF1, eth(UP, G1, None, 46)); // 60 B, forward, tag pushed: 64 B out
        }
        w.run(TRUNK, eth(G3, UP, Some(4093), 46)); // 64 B, forward, tag popped: 60 B out
        w.run(VIF2, eth(G2, G1, None, 100)); // static G1 on VIF1: drop, VLAN 4094 known
        w.run(VIF1, eth(G2, G1, Some(4094), 46)); // tag on access: drop before a VLAN
        w.run(OTHER, eth(G2, G3, None, 46)); // bridge 2, unknown: flood
        assert_eq!(
            get(&w, 1, 4094),
            VlanStats {
                rx_packets: 6,
                rx_bytes: 5 * 60 + 114,
                tx_packets: 5,
                tx_bytes: 3 * 60 + 2 * 64,
            }
        );
        assert_eq!(
            get(&w, 1, 4093),
            VlanStats {
                rx_packets: 1,
                rx_bytes: 64,
                tx_packets: 1,
                tx_bytes: 60,
            }
        );
        assert_eq!(get(&w, 2, 4094).rx_packets, 1);
        assert_eq!(
            w.vstats.borrow().len(),
            3,
            "no entry for an unclassified frame"
        );
    }

    /// A flood copy counts as tx in its copy's bridge and VLAN.
    #[test]
    fn flood_copies_count_as_tx() {
        let w = world();
        let copy = Pkt(eth([0xff; 6], G1, Some(4094), 46));
        let c = fwd::flood_copy(&copy, &w, VIF1, VIF2).expect("VIF2 carries 4094");
        assert_eq!(
            c.vlan,
            VlanKey {
                bridge: 1,
                vlan: 4094
            }
        );
        account_vlan_tx(&w, c.vlan, 1, copy.len() as u64 - 4);
        assert_eq!(get(&w, 1, 4094).tx_packets, 1);
        assert_eq!(get(&w, 1, 4094).tx_bytes, 60);
        assert!(fwd::flood_copy(&copy, &w, VIF1, VIF3).is_none());
    }
}
