//! Per-port counters: one per-CPU array slot per port, each slot an array of `u64` indexed by
//! [`Stat`]. The datapath counts every frame once as received on its ingress port and once by its
//! final outcome (forward, pass to host, or drop with a reason); forwarded frames are also counted
//! as transmitted on their egress port.

/// What a counter records (declared with each [`Stat`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StatKind {
    /// Frames or bytes received or sent on the port.
    Traffic,
    /// A frame outcome that sends the frame on (forward, flood).
    Outcome,
    /// A frame outcome: handed to the host stack.
    Pass,
    /// A frame outcome: dropped, with this reason.
    Drop,
    /// Something that happened to a frame beside its outcome.
    Event,
    /// A learning event (not a frame outcome).
    Learning,
}

/// Declares [`Stat`], [`STAT_COUNT`], [`Stat::ALL`], [`Stat::name`] and [`Stat::kind`] from one
/// list: each counter once, with its index, its printed name and its kind.
macro_rules! stats {
    ($( $(#[$doc:meta])* $variant:ident = $value:literal, $name:literal, $kind:ident; )*) => {
        /// Index of a counter inside a port's [`PortStats`].
        ///
        /// The datapath stores raw `u32` indices; userspace turns them back into names with
        /// [`Stat::ALL`] and [`Stat::name`]. Never transmute a raw integer into this enum.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[repr(u32)]
        pub enum Stat {
            $( $(#[$doc])* $variant = $value, )*
        }

        /// Number of counters per port.
        pub const STAT_COUNT: usize = [$(Stat::$variant),*].len();

        impl Stat {
            /// Every counter, in index order.
            pub const ALL: [Stat; STAT_COUNT] = [$(Stat::$variant),*];

            /// Stable snake-case name, used by `xennet-agent stats`.
            #[must_use]
            pub const fn name(self) -> &'static str {
                match self {
                    $( Stat::$variant => $name, )*
                }
            }

            /// What this counter records.
            #[must_use]
            pub const fn kind(self) -> StatKind {
                match self {
                    $( Stat::$variant => StatKind::$kind, )*
                }
            }
        }
    };
}

stats! {
    /// Frames received on the port (ingress).
    RxPackets = 0, "rx_packets", Traffic;
    /// Bytes received on the port (ingress).
    RxBytes = 1, "rx_bytes", Traffic;
    /// Frames forwarded out of the port (egress, counted by the datapath that forwarded them).
    TxPackets = 2, "tx_packets", Traffic;
    /// Bytes forwarded out of the port.
    TxBytes = 3, "tx_bytes", Traffic;
    /// Known unicast forwarded to one port.
    Forward = 4, "forward", Outcome;
    /// Broadcast, multicast or unknown unicast: flooded to the ports of the bridge that carry
    /// the VLAN (each copy is counted as `tx` on its egress port).
    Flood = 5, "flood", Outcome;
    /// Link-local multicast (01:80:c2:00:00:0x: STP, LACP, LLDP…): handed to the host stack of
    /// the ingress interface, never forwarded (as the Linux bridge does).
    PassLinkLocal = 6, "pass_link_local", Pass;
    /// The ingress interface is not (or no longer) a configured port: handed to the host stack.
    PassNotPort = 7, "pass_not_port", Pass;
    /// Shorter than an Ethernet header.
    DropRunt = 8, "drop_runt", Drop;
    /// Ends inside a VLAN tag.
    DropTruncated = 9, "drop_truncated", Drop;
    /// A tagged frame on an access port.
    DropTaggedOnAccess = 10, "drop_tagged_on_access", Drop;
    /// A tag for a VLAN the ingress port does not carry.
    DropVlanNotAllowed = 11, "drop_vlan_not_allowed", Drop;
    /// An untagged frame on a trunk without a native VLAN.
    DropUntaggedOnTrunk = 12, "drop_untagged_on_trunk", Drop;
    /// VLAN id 4095 (reserved).
    DropBadVid = 13, "drop_bad_vid", Drop;
    /// Outer tag with the other TPID than the bridge's VLAN protocol (e.g. 802.1ad on a 802.1Q bridge).
    DropForeignTpid = 14, "drop_foreign_tpid", Drop;
    /// Source MAC is multicast, broadcast or zero.
    DropBadSrcMac = 15, "drop_bad_src_mac", Drop;
    /// Destination is behind the ingress port itself.
    DropHairpin = 16, "drop_hairpin", Drop;
    /// The egress port does not carry the frame's VLAN.
    DropEgressVlan = 17, "drop_egress_vlan", Drop;
    /// The FDB points at a port that is not configured (stale entry) or in another bridge.
    DropStaleFdb = 18, "drop_stale_fdb", Drop;
    /// The tag could not be pushed or popped (no headroom, helper failed).
    DropTagOp = 19, "drop_tag_op", Drop;
    /// The redirect helper refused the egress port.
    DropRedirect = 20, "drop_redirect", Drop;
    /// A frame from another port claiming a MAC that is static on some port.
    DropStaticMac = 21, "drop_static_mac", Drop;
    /// A TC flood stopped at `MAX_TC_FLOOD` ports (the remaining ports got no copy).
    FloodTruncated = 22, "flood_truncated", Event;
    /// A new MAC learned on this port.
    LearnNew = 23, "learn_new", Learning;
    /// A MAC moved to this port from another one (e.g. a migrated guest).
    LearnMove = 24, "learn_move", Learning;
    /// Not learned: the port reached its MAC limit (forwarding continues).
    LearnLimit = 25, "learn_limit", Learning;
    /// Not learned: the FDB is full (forwarding continues).
    LearnTableFull = 26, "learn_table_full", Learning;
    /// A priority-tagged frame (on an access port, or on a trunk's native VLAN) that carries
    /// another tag of the bridge's TPID behind it: VLAN hopping, never forwarded.
    DropNestedTag = 27, "drop_nested_tag", Drop;
    // ---- Port security (issue 13): only on ports with `security` on; docs/security.md.
    /// Source MAC not one of the secured port's static MACs (in the frame's VLAN).
    DropSpoofMac = 28, "drop_spoof_mac", Drop;
    /// IPv4 source not one of the port's addresses (or 0.0.0.0 outside a DHCP client's
    /// UDP 68 → 67).
    DropSpoofIp4 = 29, "drop_spoof_ip4", Drop;
    /// IPv6 source neither one of the port's addresses nor link-local (or :: outside DAD).
    DropSpoofIp6 = 30, "drop_spoof_ip6", Drop;
    /// ARP sender MAC not the frame's source, or sender address not the port's.
    DropSpoofArp = 31, "drop_spoof_arp", Drop;
    /// Neighbour advertisement (or DAD solicitation) for an address that is not the port's.
    DropSpoofNd = 32, "drop_spoof_nd", Drop;
    /// DHCP server message (UDP source port 67, or `DHCPv6` 547) from a port without
    /// `allow_dhcp_server`.
    DropDhcpServer = 33, "drop_dhcp_server", Drop;
    /// Router advertisement or redirect (`ICMPv6` 134, 137) from a port without `allow_ra`.
    DropRouterAdv = 34, "drop_router_adv", Drop;
    /// Ethertype not in the port's `allow_ethertypes`.
    DropEthertype = 35, "drop_ethertype", Drop;
    /// An ARP, IPv4 or IPv6 header the checks need is cut short or invalid, an IPv4 fragment
    /// at offset 8 (RFC 1858), or more IPv6 extension headers than the checks walk.
    DropSecMalformed = 36, "drop_sec_malformed", Drop;
    /// Over the port's bandwidth limit (`rate`): on its ingress, the frame's outcome; on its
    /// egress, counted on the egress port (the frame's outcome on its ingress port stays
    /// `forward` or `flood`, as for a queue that drops it there).
    DropRateLimit = 37, "drop_rate_limit", Drop;
    // ---- Ownership that moves (issue 15): docs/xen.md, "Live migration".
    /// A MAC static (or guarded) on another port taken over by a frame on this port, a port
    /// with `mac_move` (an uplink where a migrated guest reappears): counted on the new port.
    LearnStaticMove = 38, "learn_static_move", Learning;
}

// The indices are the positions in the list: `ALL[i] as usize == i`.
const _: () = {
    let mut i = 0;
    while i < STAT_COUNT {
        assert!(
            Stat::ALL[i] as usize == i,
            "Stat values must be 0, 1, 2… in order"
        );
        i += 1;
    }
};

impl Stat {
    /// Whether this counter records a drop.
    #[must_use]
    pub const fn is_drop(self) -> bool {
        matches!(self.kind(), StatKind::Drop)
    }

    /// Whether this counter records a learning event (not a frame outcome).
    #[must_use]
    pub const fn is_learning(self) -> bool {
        matches!(self.kind(), StatKind::Learning)
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

    /// Add `n` to counter `s`: the one way the datapath counts.
    #[expect(clippy::inline_always, reason = "eBPF: the datapath must be inlined")]
    #[inline(always)]
    pub fn add(&mut self, s: Stat, n: u64) {
        // Always in bounds (every `Stat` is < STAT_COUNT); `get_mut` keeps the verifier and
        // the host build free of a panic path when `s` is not a constant.
        if let Some(c) = self.c.get_mut(s as usize) {
            *c += n;
        }
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

    #[test]
    fn the_list_covers_every_index_and_drops_are_named_drop() {
        assert_eq!(STAT_COUNT, 39);
        let idx: std::vec::Vec<usize> = Stat::ALL.iter().map(|s| *s as usize).collect();
        assert_eq!(idx, (0..STAT_COUNT).collect::<std::vec::Vec<_>>());
        for s in Stat::ALL {
            assert_eq!(
                s.is_drop(),
                s.name().starts_with("drop_"),
                "{s:?} ({}) drop kind and name disagree",
                s.name()
            );
            assert_eq!(
                s.is_learning(),
                s.name().starts_with("learn_"),
                "{s:?} ({})",
                s.name()
            );
        }
        // The printed names, as the CLI, the tests and the docs use them.
        assert_eq!(Stat::RxPackets.name(), "rx_packets");
        assert_eq!(Stat::PassNotPort as u32, 7);
        assert_eq!(Stat::DropRunt as u32, 8);
        assert_eq!(Stat::DropStaticMac as u32, 21);
        assert_eq!(Stat::FloodTruncated.name(), "flood_truncated");
        assert_eq!(Stat::LearnTableFull as u32, 26);
        assert_eq!(Stat::LearnTableFull.name(), "learn_table_full");
        assert_eq!(Stat::DropNestedTag as u32, 27);
        assert_eq!(Stat::DropSecMalformed as u32, 36);
        assert_eq!(Stat::DropRateLimit as u32, 37);
    }

    #[test]
    fn add_counts() {
        let mut p = PortStats::ZERO;
        p.add(Stat::DropTagOp, 1);
        p.add(Stat::RxBytes, 60);
        p.add(Stat::RxBytes, 4);
        assert_eq!(p.get(Stat::DropTagOp), 1);
        assert_eq!(p.get(Stat::RxBytes), 64);
        assert_eq!(p.c.iter().sum::<u64>(), 65);
    }
}
