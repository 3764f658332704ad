//! Map names and the layout of their keys and values.
//!
//! Every type here is `#[repr(C)]`, `Copy`, and has no implicit padding: explicit `_pad` fields
//! fill every hole, so the kernel and userspace agree byte for byte. Flags are integers, never
//! `bool`.

use crate::VLAN_VID_MASK;

/// Ports: ifindex (`u32`) → [`PortConf`]. Hash map.
pub const MAP_PORTS: &str = "XN_PORTS";
/// Ports by stats slot: slot (`u32`) → [`PortConf`] (the same entries as `XN_PORTS`, with
/// [`PortConf::ifindex`] set; a free slot is zeroed). Array: the egress port of a known
/// unicast frame is found through [`FdbVal::slot`] without a hash lookup.
pub const MAP_SLOTS: &str = "XN_SLOTS";
/// Stats slot by ifindex (`u32` → `u32`, 0 = not a port) for ifindices below
/// [`IFSLOT_ENTRIES`]. Array: with `XN_SLOTS`, the ingress port without a hash lookup;
/// larger ifindices are looked up in `XN_PORTS`.
pub const MAP_IFSLOTS: &str = "XN_IFSLOTS";
/// Entries of `XN_IFSLOTS` (256 KiB).
pub const IFSLOT_ENTRIES: u32 = 1 << 16;
/// FDB: [`FdbKey`] → [`FdbVal`]. Hash map.
pub const MAP_FDB: &str = "XN_FDB";
/// Egress devices for redirects: ifindex → ifindex. Devmap (hash).
pub const MAP_TX: &str = "XN_TX";
/// Counters: stats slot → [`crate::stats::PortStats`]. Per-CPU array.
pub const MAP_STATS: &str = "XN_STATS";
/// Every XDP port, each with the flood egress program: the flood of a {bridge, VLAN} that has
/// no group in `XN_FLOODG` (the egress program drops the copies of other bridges and VLANs).
/// Devmap (hash).
pub const MAP_FLOOD: &str = "XN_FLOOD";
/// Flood groups: {bridge, VLAN} ([`crate::vstats::VlanKey`]) → a devmap (hash, up to
/// [`FLOOD_GROUP_PORTS`] entries) of the bridge's XDP ports that carry the VLAN, each with the
/// flood egress program: a flood is cloned only for the ports it can leave by. Hash of maps.
pub const MAP_FLOODG: &str = "XN_FLOODG";
/// Most flood groups (1024); a {bridge, VLAN} beyond them floods through `XN_FLOOD`. A
/// multiple of [`FLOOD_GROUP_PORTS`] on purpose: the kernel keeps the groups' shape in
/// `XN_FLOODG` itself, where an upgrade's map comparison does not look, so a build that
/// changes the groups' capacity changes `XN_FLOODG`'s too, and the upgrade makes it anew.
pub const FLOOD_GROUPS: u32 = 4 * FLOOD_GROUP_PORTS;
/// Capacity of a flood group's devmap; a {bridge, VLAN} of more XDP ports floods through
/// `XN_FLOOD`. Small on purpose: a devmap-hash broadcast walks every one of the map's
/// buckets (as many as its capacity, rounded up to a power of two) for every frame, so
/// `XN_FLOOD`'s 4096 cost a flood more than its copies. The TC flood's bound, too.
pub const FLOOD_GROUP_PORTS: u32 = MAX_TC_FLOOD;
/// Learned MACs per stats slot (`u32`). Array, mmapable: the agent decrements it atomically
/// when it ages entries out.
pub const MAP_LEARNED: &str = "XN_LEARNED";

/// TC flood lists: [`MemberKey`] → ifindex of each port of a bridge (dense indices
/// `0..count`), and the count under index [`MEMBER_COUNT`]. Hash map.
pub const MAP_MEMBERS: &str = "XN_MEMBERS";
/// Index under which `XN_MEMBERS` holds a bridge's member count.
pub const MEMBER_COUNT: u32 = u32::MAX;
/// Most ports a TC flood visits (the verifier needs a bound); beyond it, copies are not sent
/// and `flood_truncated` counts the frame.
pub const MAX_TC_FLOOD: u32 = 256;

/// Name of the TC ingress program in the object.
pub const PROG_TC: &str = "xennet_tc";
/// Name of the XDP ingress program in the object.
pub const PROG_XDP: &str = "xennet_xdp";
/// Name of the devmap egress program that tags (or drops) each flooded copy.
pub const PROG_FLOOD_OUT: &str = "xennet_flood_out";
/// Name of a program that passes every frame (attached to the dom0 side of a host port, so
/// that it can receive native XDP redirects).
pub const PROG_PASS: &str = "xennet_pass";

/// XDP metadata word the device-bound VLAN prologue (the agent's `datapath/rxvlan`) leaves in
/// front of a frame whose rx VLAN tag it read from the driver's hint and wrote back into the
/// frame: `xennet_xdp` removes it, and takes the tag out again before an `XDP_PASS` (the skb
/// still carries it in `vlan_tci`, where TC reads it).
pub const XDP_META_TAG_RESTORED: u32 = 0x786e_7674;

/// Most ports one datapath serves (also the size of the port and devmap maps).
pub const MAX_PORTS: u32 = 4096;
/// Stats slots: slot 0 counts frames on interfaces that are not configured ports.
pub const STATS_SLOTS: u32 = MAX_PORTS + 1;
const _: () = assert!(STATS_SLOTS <= 1 << 16, "FdbVal::slot is a u16");
/// Default capacity of the FDB.
pub const FDB_MAX_ENTRIES: u32 = 1 << 18;

/// Port mode: one untagged VLAN.
pub const PORT_ACCESS: u8 = 1;
/// Port mode: tagged VLANs, optionally one native (untagged) VLAN.
pub const PORT_TRUNK: u8 = 2;

/// The port cannot take XDP frames (attached in TC or generic mode: e.g. a xen-netback vif
/// has no `ndo_xdp_xmit`): XDP hands frames for it to the TC program (`XDP_PASS`).
pub const PORT_F_TC_ONLY: u8 = 1;
/// The port's bridge has a [`PORT_F_TC_ONLY`] member, so XDP hands floods to TC.
pub const PORT_F_FLOOD_VIA_TC: u8 = 2;
/// An XDP program runs on this port before TC: the TC program there sees only what XDP passed
/// up, and does not count again what XDP already counted.
pub const PORT_F_XDP: u8 = 4;
/// The port has a bandwidth limit (`XN_RATES`): only then does the datapath look its buckets
/// up (a limit-free port pays no lookup). The agent sets it with the port's limit.
pub const PORT_F_RATE: u8 = 8;
/// A frame from this port may take over a MAC that is static (or [`FDB_GUARDED`]) on another
/// port: the port faces the network where a migrated guest reappears (an uplink; the
/// configuration's `mac_move`). Without it, such a frame is dropped (`drop_static_mac`).
pub const PORT_F_MAC_MOVE: u8 = 16;

/// Key of `XN_MEMBERS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(C)]
pub struct MemberKey {
    /// Bridge id.
    pub bridge: u32,
    /// Member index, or [`MEMBER_COUNT`].
    pub idx: u32,
}

/// Bytes of the per-port VLAN bitmap (one bit per VLAN id 0..4095).
pub const VLAN_BITMAP_BYTES: usize = 512;

/// One port: which bridge it belongs to and which VLANs it carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct PortConf {
    /// Bridge id (≥ 1). Ports of different bridges never exchange frames.
    pub bridge: u32,
    /// Index of this port's counters in `XN_STATS` (≥ 1).
    pub slot: u32,
    /// [`PORT_ACCESS`] or [`PORT_TRUNK`].
    pub mode: u8,
    /// `PORT_F_*` bits.
    pub flags: u8,
    /// Access VLAN, or a trunk's native VLAN; 0 = none. Frames of this VLAN egress untagged.
    pub pvid: u16,
    /// TPID of this bridge's tags (0x8100 or 0x88a8).
    pub tpid: u16,
    /// Explicit padding, zero.
    pub pad: u16,
    /// Most MACs the datapath learns on this port; 0 = no limit.
    pub max_learned: u32,
    /// The port's ifindex in `XN_SLOTS` entries (0 in `XN_PORTS` and in a free slot): what an
    /// [`FdbVal`] reached through its `slot` checks, so that a reused slot never misdirects.
    pub ifindex: u32,
    /// Bit `v` set = the port carries VLAN `v` (the pvid included).
    pub vlans: [u8; VLAN_BITMAP_BYTES],
    /// Port security (issue 13): what a guest on this port may send; [`PortSec::OFF`] = off.
    pub sec: PortSec,
}

impl PortConf {
    /// An empty port of `bridge` with counters in `slot`.
    #[must_use]
    pub const fn new(bridge: u32, slot: u32, mode: u8, pvid: u16, tpid: u16) -> Self {
        let mut p = PortConf {
            bridge,
            slot,
            mode,
            flags: 0,
            pvid: 0,
            tpid,
            pad: 0,
            max_learned: 0,
            ifindex: 0,
            vlans: [0; VLAN_BITMAP_BYTES],
            sec: PortSec::OFF,
        };
        if pvid != 0 {
            p.pvid = pvid;
            p.add_vlan(pvid);
        }
        p
    }

    /// Mark VLAN `vid` as carried.
    pub const fn add_vlan(&mut self, vid: u16) {
        let v = (vid & VLAN_VID_MASK) as usize;
        self.vlans[v >> 3] |= 1 << (v & 7);
    }

    /// Whether the port carries VLAN `vid`.
    #[expect(clippy::inline_always, reason = "eBPF: the datapath must be inlined")]
    #[inline(always)]
    #[must_use]
    pub fn carries(&self, vid: u16) -> bool {
        let v = (vid & VLAN_VID_MASK) as usize;
        // `v >> 3` < 512 by the mask; `get` keeps the verifier and the host build honest.
        match self.vlans.get(v >> 3) {
            Some(b) => b & (1 << (v & 7)) != 0,
            None => false,
        }
    }
}

// ---- Port security (issue 13): the `sec` block of `PortConf` -------------------------------

/// Port security is on: `fwd::security` checks every frame from the port (source MAC among the
/// port's static MACs, ethertype allow-list, ARP, IPv4, IPv6 and ND checks, DHCP-server and RA
/// guard).
pub const SEC_ON: u8 = 1;
/// IPv4 sources and ARP sender addresses must be in [`PortSec::v4`] (the port has IPv4
/// addresses configured; without any, IPv4 sources are not checked, as Xen does without `ip=`).
pub const SEC_V4: u8 = 2;
/// IPv6 sources (link-local aside) and ND targets must be in [`PortSec::v6`].
pub const SEC_V6: u8 = 4;
/// DHCP server messages (UDP source port 67, `DHCPv6` 547) from the port are allowed.
pub const SEC_DHCP_SERVER: u8 = 8;
/// Router advertisements and redirects (`ICMPv6` 134, 137) from the port are allowed.
pub const SEC_RA: u8 = 16;

/// Most IPv4 prefixes per port.
pub const SEC_MAX_V4: usize = 8;
/// Most IPv6 prefixes per port.
pub const SEC_MAX_V6: usize = 8;
/// Most allowed ethertypes per port.
pub const SEC_MAX_ETHERTYPES: usize = 8;

/// An IPv4 prefix: `addr & mask == net`, both as the big-endian address read into a `u32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Prefix4 {
    /// The network, masked.
    pub net: u32,
    /// The mask.
    pub mask: u32,
}

/// An IPv6 prefix, as four big-endian `u32` words: `addr[i] & mask[i] == net[i]` for all `i`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Prefix6 {
    /// The network, masked.
    pub net: [u32; 4],
    /// The mask.
    pub mask: [u32; 4],
}

/// What port security enforces on one port (340 bytes, at the end of [`PortConf`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct PortSec {
    /// `SEC_*` bits; 0 = port security off.
    pub flags: u8,
    /// Entries used in `v4`.
    pub n_v4: u8,
    /// Entries used in `v6`.
    pub n_v6: u8,
    /// Entries used in `ethertypes`.
    pub n_eth: u8,
    /// Ethertypes a frame from the port may carry (after its VLAN tags).
    pub ethertypes: [u16; SEC_MAX_ETHERTYPES],
    /// The port's IPv4 addresses and prefixes.
    pub v4: [Prefix4; SEC_MAX_V4],
    /// The port's IPv6 addresses and prefixes.
    pub v6: [Prefix6; SEC_MAX_V6],
}

impl PortSec {
    /// Port security off.
    pub const OFF: PortSec = PortSec {
        flags: 0,
        n_v4: 0,
        n_v6: 0,
        n_eth: 0,
        ethertypes: [0; SEC_MAX_ETHERTYPES],
        v4: [Prefix4 { net: 0, mask: 0 }; SEC_MAX_V4],
        v6: [Prefix6 {
            net: [0; 4],
            mask: [0; 4],
        }; SEC_MAX_V6],
    };

    /// Add the IPv4 prefix `addr/len` (sets [`SEC_V4`]); false when the table is full.
    pub fn add_v4(&mut self, addr: [u8; 4], len: u8) -> bool {
        let Some(e) = self.v4.get_mut(usize::from(self.n_v4)) else {
            return false;
        };
        let mask = if len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(len.min(32)))
        };
        *e = Prefix4 {
            net: u32::from_be_bytes(addr) & mask,
            mask,
        };
        self.n_v4 += 1;
        self.flags |= SEC_V4;
        true
    }

    /// Add the IPv6 prefix `addr/len` (sets [`SEC_V6`]); false when the table is full.
    pub fn add_v6(&mut self, addr: [u8; 16], len: u8) -> bool {
        let Some(e) = self.v6.get_mut(usize::from(self.n_v6)) else {
            return false;
        };
        let mut p = Prefix6 {
            net: [0; 4],
            mask: [0; 4],
        };
        let len = u32::from(len.min(128));
        let mut first_bit = 0;
        for i in 0..4 {
            let bits = len.saturating_sub(first_bit).min(32);
            first_bit += 32;
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            let w = u32::from_be_bytes([
                addr[4 * i],
                addr[4 * i + 1],
                addr[4 * i + 2],
                addr[4 * i + 3],
            ]);
            p.mask[i] = mask;
            p.net[i] = w & mask;
        }
        *e = p;
        self.n_v6 += 1;
        self.flags |= SEC_V6;
        true
    }

    /// Allow ethertype `t`; false when the list is full.
    pub fn add_ethertype(&mut self, t: u16) -> bool {
        let Some(e) = self.ethertypes.get_mut(usize::from(self.n_eth)) else {
            return false;
        };
        *e = t;
        self.n_eth += 1;
        true
    }

    /// Whether `src` (a big-endian IPv4 address read into a `u32`) is in one of the prefixes.
    #[expect(clippy::inline_always, reason = "eBPF: the datapath must be inlined")]
    #[inline(always)]
    #[must_use]
    pub fn owns_v4(&self, src: u32) -> bool {
        any_of(&self.v4, self.n_v4, |p| src & p.mask == p.net)
    }

    /// Whether `a` (four big-endian words) is in one of the IPv6 prefixes.
    #[expect(clippy::inline_always, reason = "eBPF: the datapath must be inlined")]
    #[inline(always)]
    #[must_use]
    pub fn owns_v6(&self, a: &[u32; 4]) -> bool {
        any_of(&self.v6, self.n_v6, |p| {
            a[0] & p.mask[0] == p.net[0]
                && a[1] & p.mask[1] == p.net[1]
                && a[2] & p.mask[2] == p.net[2]
                && a[3] & p.mask[3] == p.net[3]
        })
    }

    /// Whether a frame may carry ethertype `t`.
    #[expect(clippy::inline_always, reason = "eBPF: the datapath must be inlined")]
    #[inline(always)]
    #[must_use]
    pub fn allows_ethertype(&self, t: u16) -> bool {
        any_of(&self.ethertypes, self.n_eth, |e| *e == t)
    }
}

/// Whether `hit` holds for one of the first `n` entries of `items`: the one bounded loop of
/// the [`PortSec`] tables (constant trip count `N` for the verifier, left as soon as `n` is
/// reached).
#[expect(clippy::inline_always, reason = "eBPF: the datapath must be inlined")]
#[inline(always)]
fn any_of<T, const N: usize>(items: &[T; N], n: u8, hit: impl Fn(&T) -> bool) -> bool {
    let mut i = 0;
    while i < N {
        if i >= usize::from(n) {
            return false;
        }
        if let Some(x) = items.get(i) {
            if hit(x) {
                return true;
            }
        }
        i += 1;
    }
    false
}

/// FDB key: a MAC address in one VLAN of one bridge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(C)]
pub struct FdbKey {
    /// The station's MAC address.
    pub mac: [u8; 6],
    /// VLAN id.
    pub vlan: u16,
    /// Bridge id.
    pub bridge: u32,
}

/// Entry configured by the operator; never replaced by learning, never aged.
pub const FDB_STATIC: u16 = 1;
/// A learned entry that took over a static (or guarded) one through a [`PORT_F_MAC_MOVE`]
/// port (a migrated guest): it ages and counts as learned, but like a static entry only
/// another [`PORT_F_MAC_MOVE`] port can take it over; a guest port claiming it is dropped.
pub const FDB_GUARDED: u16 = 2;

/// FDB value: where the station is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct FdbVal {
    /// Egress port ifindex.
    pub ifindex: u32,
    /// `FDB_*` flags.
    pub flags: u16,
    /// Stats slot of the port `ifindex` (its `XN_SLOTS` index), or 0 when unknown: then the
    /// datapath looks the port up by ifindex.
    pub slot: u16,
    /// `bpf_ktime_get_coarse_ns` (`CLOCK_MONOTONIC_COARSE`) of a recent frame from this
    /// station: while it speaks, never more than [`crate::fwd::REFRESH_NS`] old (refreshed
    /// at 750 ms, not on every frame); 0 for static entries.
    pub last_seen_ns: u64,
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY (all three): repr(C), integer fields only, explicit padding, no holes.
    unsafe impl aya::Pod for super::PortConf {}
    unsafe impl aya::Pod for super::FdbKey {}
    unsafe impl aya::Pod for super::FdbVal {}
    unsafe impl aya::Pod for super::MemberKey {}
    unsafe impl aya::Pod for super::PortSec {}
}

impl FdbVal {
    /// A stats slot as [`FdbVal::slot`] holds it (slots are < [`STATS_SLOTS`], which fits).
    #[expect(clippy::inline_always, reason = "eBPF: the datapath must be inlined")]
    #[inline(always)]
    #[must_use]
    pub const fn slot_of(slot: u32) -> u16 {
        #[expect(clippy::cast_possible_truncation, reason = "STATS_SLOTS fits a u16")]
        let s = slot as u16;
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{align_of, size_of};

    #[test]
    fn layouts_have_no_hidden_padding() {
        assert_eq!(size_of::<PortSec>(), 4 + 16 + 64 + 256);
        assert_eq!(
            size_of::<PortConf>(),
            24 + VLAN_BITMAP_BYTES + size_of::<PortSec>()
        );
        assert_eq!(align_of::<PortConf>(), 4);
        assert_eq!(size_of::<FdbKey>(), 12);
        assert_eq!(size_of::<FdbVal>(), 16);
    }

    #[test]
    fn vlan_bitmap() {
        let mut p = PortConf::new(1, 1, PORT_TRUNK, 0, 0x8100);
        assert!(!p.carries(1));
        p.add_vlan(1);
        p.add_vlan(4094);
        assert!(p.carries(1) && p.carries(4094));
        assert!(!p.carries(2) && !p.carries(4093) && !p.carries(0));
        let a = PortConf::new(1, 2, PORT_ACCESS, 4093, 0x8100);
        assert!(a.carries(4093));
        assert_eq!(a.pvid, 4093);
        assert!(!a.carries(4094));
    }
}
