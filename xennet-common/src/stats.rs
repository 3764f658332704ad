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
    /// Broadcast, multicast or unknown unicast: flooded to the ports of the bridge that carry
    /// the VLAN (each copy is counted as `tx` on its egress port).
    Flood,
    /// Link-local multicast (01:80:c2:00:00:0x: STP, LACP, LLDP…): handed to the host stack of
    /// the ingress interface, never forwarded (as the Linux bridge does).
    PassLinkLocal,
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
    /// A frame from another port claiming a MAC that is static on some port.
    DropStaticMac,
    /// A TC flood stopped at `MAX_TC_FLOOD` ports (the remaining ports got no copy).
    FloodTruncated,
    /// A new MAC learned on this port.
    LearnNew,
    /// A MAC moved to this port from another one (e.g. a migrated guest).
    LearnMove,
    /// Not learned: the port reached its MAC limit (forwarding continues).
    LearnLimit,
    /// Not learned: the FDB is full (forwarding continues).
    LearnTableFull,
}

/// Number of counters per port.
pub const STAT_COUNT: usize = 27;

impl Stat {
    /// Every counter, in index order.
    pub const ALL: [Stat; STAT_COUNT] = [
        Stat::RxPackets,
        Stat::RxBytes,
        Stat::TxPackets,
        Stat::TxBytes,
        Stat::Forward,
        Stat::Flood,
        Stat::PassLinkLocal,
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
        Stat::DropStaticMac,
        Stat::FloodTruncated,
        Stat::LearnNew,
        Stat::LearnMove,
        Stat::LearnLimit,
        Stat::LearnTableFull,
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
            Stat::Flood => "flood",
            Stat::PassLinkLocal => "pass_link_local",
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
            Stat::DropStaticMac => "drop_static_mac",
            Stat::FloodTruncated => "flood_truncated",
            Stat::LearnNew => "learn_new",
            Stat::LearnMove => "learn_move",
            Stat::LearnLimit => "learn_limit",
            Stat::LearnTableFull => "learn_table_full",
        }
    }

    /// Whether this counter records a drop.
    #[must_use]
    pub const fn is_drop(self) -> bool {
        let i = self as u32;
        i >= Stat::DropRunt as u32 && i <= Stat::DropStaticMac as u32
    }

    /// Whether this counter records a learning event (not a frame outcome).
    #[must_use]
    pub const fn is_learning(self) -> bool {
        (self as u32) >= (Stat::LearnNew as u32)
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
        assert!(Stat::DropStaticMac.is_drop());
        assert!(!Stat::LearnNew.is_drop() && Stat::LearnNew.is_learning());
        assert!(!Stat::DropStaticMac.is_learning());
    }
}
