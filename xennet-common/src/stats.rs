//! Per-port counters: one per-CPU array slot per port, each slot an array of `u64` indexed by
//! [`Stat`]. The datapath counts every frame once as received on its ingress port and once by its
//! final outcome (forward, pass to host, or drop with a reason); forwarded frames are also counted
//! as transmitted on their egress port.

/// Index of a counter inside a port's [`PortStats`].
///
/// The datapath stores raw `u32` indices; userspace turns them back into names with
/// [`Stat::ALL`] and [`Stat::name`]. Never transmute a raw integer into this enum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u32)]
pub enum Stat {
    /// Frames received on the port (ingress).
    RxPackets = 0,
    /// Bytes received on the port (ingress).
    RxBytes,
    /// Frames forwarded out of the port (egress, counted by the datapath that forwarded them).
    TxPackets,
    /// Bytes forwarded out of the port.
    TxBytes,
    /// Known unicast forwarded to one port.
    Forward,
    /// Broadcast or multicast: handed to the host stack (no flooding in this version).
    PassFlood,
    /// Unicast to a MAC the FDB does not know: handed to the host stack.
    PassUnknown,
    /// Frame for the host (an FDB entry marked host): handed to the host stack.
    PassHost,
    /// The ingress interface is not (or no longer) a configured port: handed to the host stack.
    PassNotPort,
    /// Shorter than an Ethernet header.
    DropRunt,
    /// Ends inside a VLAN tag.
    DropTruncated,
    /// A tagged frame on an access port.
    DropTaggedOnAccess,
    /// A tag for a VLAN the ingress port does not carry.
    DropVlanNotAllowed,
    /// An untagged frame on a trunk without a native VLAN.
    DropUntaggedOnTrunk,
    /// VLAN id 4095 (reserved).
    DropBadVid,
    /// Outer tag with the other TPID than the bridge's VLAN protocol (e.g. 802.1ad on a 802.1Q bridge).
    DropForeignTpid,
    /// Source MAC is multicast, broadcast or zero.
    DropBadSrcMac,
    /// Destination is behind the ingress port itself.
    DropHairpin,
    /// The egress port does not carry the frame's VLAN.
    DropEgressVlan,
    /// The FDB points at a port that is not configured (stale entry) or in another bridge.
    DropStaleFdb,
    /// The tag could not be pushed or popped (no headroom, helper failed).
    DropTagOp,
    /// The redirect helper refused the egress port.
    DropRedirect,
}

/// Number of counters per port.
pub const STAT_COUNT: usize = 22;

impl Stat {
    /// Every counter, in index order.
    pub const ALL: [Stat; STAT_COUNT] = [
        Stat::RxPackets,
        Stat::RxBytes,
        Stat::TxPackets,
        Stat::TxBytes,
        Stat::Forward,
        Stat::PassFlood,
        Stat::PassUnknown,
        Stat::PassHost,
        Stat::PassNotPort,
        Stat::DropRunt,
        Stat::DropTruncated,
        Stat::DropTaggedOnAccess,
        Stat::DropVlanNotAllowed,
        Stat::DropUntaggedOnTrunk,
        Stat::DropBadVid,
        Stat::DropForeignTpid,
        Stat::DropBadSrcMac,
        Stat::DropHairpin,
        Stat::DropEgressVlan,
        Stat::DropStaleFdb,
        Stat::DropTagOp,
        Stat::DropRedirect,
    ];

    /// Stable snake-case name, used by `xennet-agent stats`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Stat::RxPackets => "rx_packets",
            Stat::RxBytes => "rx_bytes",
            Stat::TxPackets => "tx_packets",
            Stat::TxBytes => "tx_bytes",
            Stat::Forward => "forward",
            Stat::PassFlood => "pass_flood",
            Stat::PassUnknown => "pass_unknown_unicast",
            Stat::PassHost => "pass_host",
            Stat::PassNotPort => "pass_not_port",
            Stat::DropRunt => "drop_runt",
            Stat::DropTruncated => "drop_truncated",
            Stat::DropTaggedOnAccess => "drop_tagged_on_access",
            Stat::DropVlanNotAllowed => "drop_vlan_not_allowed",
            Stat::DropUntaggedOnTrunk => "drop_untagged_on_trunk",
            Stat::DropBadVid => "drop_bad_vid",
            Stat::DropForeignTpid => "drop_foreign_tpid",
            Stat::DropBadSrcMac => "drop_bad_src_mac",
            Stat::DropHairpin => "drop_hairpin",
            Stat::DropEgressVlan => "drop_egress_vlan",
            Stat::DropStaleFdb => "drop_stale_fdb",
            Stat::DropTagOp => "drop_tag_op",
            Stat::DropRedirect => "drop_redirect",
        }
    }

    /// Whether this counter records a drop.
    #[must_use]
    pub const fn is_drop(self) -> bool {
        (self as u32) >= (Stat::DropRunt as u32)
    }

    /// The counter with raw index `i`, if any.
    #[must_use]
    pub fn from_index(i: usize) -> Option<Stat> {
        Stat::ALL.get(i).copied()
    }
}

/// The counters of one port on one CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct PortStats {
    /// Indexed by [`Stat`].
    pub c: [u64; STAT_COUNT],
}

impl PortStats {
    /// All zero.
    pub const ZERO: PortStats = PortStats { c: [0; STAT_COUNT] };

    /// Value of one counter.
    #[must_use]
    pub fn get(&self, s: Stat) -> u64 {
        self.c[s as usize]
    }
}

#[cfg(feature = "user")]
// SAFETY: repr(C), only u64 fields, no padding.
unsafe impl aya::Pod for PortStats {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_index_order_and_names_are_unique() {
        for (i, s) in Stat::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i, "{s:?} out of order");
            assert_eq!(Stat::from_index(i), Some(*s));
        }
        assert_eq!(Stat::from_index(STAT_COUNT), None);
        for a in Stat::ALL {
            for b in Stat::ALL {
                if a != b {
                    assert_ne!(a.name(), b.name());
                }
            }
        }
        assert!(Stat::DropRunt.is_drop());
        assert!(!Stat::PassNotPort.is_drop());
        assert!(Stat::DropRedirect.is_drop());
    }
}
