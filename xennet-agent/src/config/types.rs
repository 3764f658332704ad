//! The validated configuration: the types the agent works with, the defaults and limits.

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use super::syntax::is_pattern;

pub use crate::paths::{DEFAULT_PIN_DIR, DEFAULT_SOCKET};
/// Seconds after which a learned FDB entry ages out when a bridge has no
/// `fdb_aging_secs` (the Linux bridge default).
pub const DEFAULT_FDB_AGING_SECS: u32 = 300;
/// Default `fdb_max_entries` (the datapath's compiled-in size).
pub const DEFAULT_FDB_MAX_ENTRIES: u32 = xennet_common::maps::FDB_MAX_ENTRIES;
/// Default `metrics` address: Prometheus's `/metrics` on loopback, port 9417.
pub const DEFAULT_METRICS: &str = "127.0.0.1:9417";
/// Smallest `fdb_max_entries`.
pub const MIN_FDB_MAX_ENTRIES: u32 = 1024;
/// Largest `fdb_max_entries` (preallocated: about 100 bytes of kernel memory per entry).
pub const MAX_FDB_MAX_ENTRIES: u32 = 1 << 22;
/// Smallest `mtu` (the IPv4 minimum).
pub const MIN_MTU: u32 = 68;
/// Largest `mtu`.
pub const MAX_MTU: u32 = 65535;
/// Largest `fdb_aging_secs`.
pub const MAX_FDB_AGING_SECS: u32 = 1_000_000;
/// `mac_limit` of an access port (or access host port) that does not set it.
pub const DEFAULT_MAC_LIMIT_ACCESS: u32 = 1024;
/// `mac_limit` of a trunk port (or trunk host port) that does not set it:
/// uplinks face whole networks.
pub const DEFAULT_MAC_LIMIT_TRUNK: u32 = 16384;
/// Largest `mac_limit`.
pub const MAX_MAC_LIMIT: u32 = 1_000_000;
/// Slowest `rate` (8 kbit/s: one byte a millisecond).
pub const MIN_RATE_BITS: u64 = 8_000;
/// Fastest `rate` (400 Gbit/s).
pub const MAX_RATE_BITS: u64 = 400_000_000_000;
/// Largest `burst` (1 GiB).
pub const MAX_BURST_BYTES: u64 = 1 << 30;
/// Smallest default `burst` (256 KiB): four whole GSO frames.
pub const MIN_DEFAULT_BURST: u64 = 256 << 10;
/// The default `burst` lasts this long at the `rate` (200 ms, TCP's shortest retransmission
/// timeout): a policer with less makes TCP fall well below the rate (measured: 55 % of
/// 10 Mbit/s with 128 KiB, 46 % of 100 Mbit/s with 1 MiB; docs/configuration.md).
pub const DEFAULT_BURST_MS: u64 = 200;

/// The largest frame a port of a bridge with MTU `mtu` (1500 when not set) carries: the MTU,
/// the Ethernet header and two tags.
#[must_use]
pub fn largest_frame(mtu: Option<u32>) -> u64 {
    u64::from(mtu.unwrap_or(1500)) + (xennet_common::ETH_HLEN + 2 * xennet_common::VLAN_HLEN) as u64
}

/// The `burst` of a `rate` of `bits` per second that sets none: [`DEFAULT_BURST_MS`] of it,
/// at least [`MIN_DEFAULT_BURST`] and one full-size frame.
#[must_use]
pub fn default_burst(bits: u64, mtu: Option<u32>) -> u64 {
    (bits / 8 * DEFAULT_BURST_MS / 1000)
        .max(MIN_DEFAULT_BURST)
        .max(largest_frame(mtu))
}

/// A port's bandwidth limit, the same in both directions (frames from the port and to it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// The limit, in bits per second of whole frames (Ethernet header and tags included).
    pub bits_per_sec: u64,
    /// How many bytes may pass at once above the rate after a quiet period.
    pub burst_bytes: u64,
}

/// The default `[bridge.host] peer` is this prefix followed by the bridge name.
pub const HOST_PEER_PREFIX: &str = "xnh-";
/// Most ports the whole configuration may have, over all bridges: the datapath's port slots
/// ([`xennet_common::maps::MAX_PORTS`]).
pub const MAX_PORTS: usize = xennet_common::maps::MAX_PORTS as usize;
/// Most bridges the configuration may have.
pub const MAX_BRIDGES: usize = 256;
/// Largest configuration file the agent reads, in bytes (1 MiB): far above any real dom0's
/// (4096 ports take about 200 KiB), and small enough that parsing it stays quick.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// An Ethernet MAC address.
///
/// Parses from six two-digit hex octets separated by `:` or `-` (either case);
/// displays as lowercase colon-separated hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// Group (multicast or broadcast) address: bit 0 of the first octet is set.
    #[must_use]
    pub const fn is_multicast(self) -> bool {
        self.0[0] & 1 == 1
    }

    /// `ff:ff:ff:ff:ff:ff`.
    #[must_use]
    pub const fn is_broadcast(self) -> bool {
        matches!(self.0, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
    }

    /// `00:00:00:00:00:00`.
    #[must_use]
    pub const fn is_zero(self) -> bool {
        matches!(self.0, [0, 0, 0, 0, 0, 0])
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, octet) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{octet:02x}")?;
        }
        Ok(())
    }
}

/// the XDP modes add the XDP program in front of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachMode {
    /// Native (driver) XDP when the driver supports it, TC otherwise (xen-netback vifs).
    Auto,
    /// Native (driver) XDP only.
    Xdp,
    /// Generic (skb) XDP only.
    XdpGeneric,
    /// TC only (tcx on kernels ≥ 6.6, clsact before).
    Tc,
}

impl AttachMode {
    /// The configuration spelling: `"auto"`, `"xdp"`, `"xdp-generic"` or `"tc"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Xdp => "xdp",
            Self::XdpGeneric => "xdp-generic",
            Self::Tc => "tc",
        }
    }
}

impl fmt::Display for AttachMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AttachMode {
    type Err = String;

    /// Exact (case-sensitive) configuration spelling.
    fn from_str(s: &str) -> Result<Self, String> {
        [Self::Auto, Self::Xdp, Self::XdpGeneric, Self::Tc]
            .into_iter()
            .find(|mode| mode.as_str() == s)
            .ok_or_else(|| {
                format!("{s:?} is not one of \"auto\", \"xdp\", \"xdp-generic\", \"tc\"")
            })
    }
}

impl PortSpec {
    /// Whether this port is a rule matching interfaces by pattern (e.g. `vif*`).
    #[must_use]
    pub fn is_rule(&self) -> bool {
        is_pattern(&self.interface)
    }

    /// Whether this port (name or pattern) covers interface `name`.
    #[must_use]
    pub fn matches(&self, name: &str) -> bool {
        if self.is_rule() {
            glob::Pattern::new(&self.interface).is_ok_and(|p| p.matches(name))
        } else {
            self.interface == name
        }
    }
}

/// Which VLANs a port carries and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortMode {
    /// Untagged port in one VLAN.
    Access { vlan: u16 },
    /// Tagged port; `vlans` includes `native`, whose frames are untagged.
    Trunk {
        vlans: BTreeSet<u16>,
        native: Option<u16>,
    },
}

impl PortMode {
    /// Whether frames of `vlan` may enter or leave through this port.
    #[must_use]
    pub fn carries(&self, vlan: u16) -> bool {
        match self {
            Self::Access { vlan: access } => *access == vlan,
            Self::Trunk { vlans, .. } => vlans.contains(&vlan),
        }
    }

    /// Whether frames of `vlan` leave this port without a VLAN tag: the access
    /// VLAN of an access port, the native VLAN of a trunk. False for VLANs the
    /// port does not carry.
    #[must_use]
    pub fn egress_untagged(&self, vlan: u16) -> bool {
        match self {
            Self::Access { vlan: access } => *access == vlan,
            Self::Trunk { native, .. } => *native == Some(vlan),
        }
    }

    /// The `mac_limit` of a port of this mode that does not set one:
    /// [`DEFAULT_MAC_LIMIT_ACCESS`] or [`DEFAULT_MAC_LIMIT_TRUNK`].
    #[must_use]
    pub const fn default_mac_limit(&self) -> u32 {
        match self {
            Self::Access { .. } => DEFAULT_MAC_LIMIT_ACCESS,
            Self::Trunk { .. } => DEFAULT_MAC_LIMIT_TRUNK,
        }
    }
}

/// One validated `[[bridge.port]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    pub interface: String,
    pub mode: PortMode,
    pub attach: AttachMode,
    /// Static FDB entries `(MAC, VLAN)` in file order; every VLAN is carried by the port.
    pub macs: Vec<(MacAddr, u16)>,
    /// Most MACs the datapath learns on this port; 0 means no limit. Defaults
    /// per mode ([`PortMode::default_mac_limit`]).
    pub mac_limit: u32,
    /// Port security (issue 13): what a guest on this port may send.
    pub security: PortSecurity,
    /// Bandwidth limit (`rate`, `burst`); `None`: none.
    pub rate: Option<RateLimit>,
    /// `mac_move`: a frame arriving here may take over a MAC that is static on another port
    /// (an uplink, where a migrated guest reappears). Default off (opt-in, on the uplinks).
    pub mac_move: bool,
}

/// The ethertypes a secured port allows unless `allow_ethertypes` says otherwise: IPv4, ARP,
/// IPv6.
pub const DEFAULT_ETHERTYPES: [u16; 3] = [0x0800, 0x0806, 0x86dd];

/// A port's security settings, validated (`security`, `ips`, `allow_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSecurity {
    /// Whether the datapath checks the port's frames: `security` if given, else on for an
    /// access port with `ips` (as Xen's `vif-bridge` filters only when `ip=` is given).
    pub enabled: bool,
    /// `security` as written (`None`: the default); what a rule passes on to `port add`.
    pub requested: Option<bool>,
    /// The port's addresses and prefixes, `(address, prefix length)`, in file order.
    pub ips: Vec<(std::net::IpAddr, u8)>,
    /// DHCP server messages (UDP source port 67, `DHCPv6` 547) allowed from the port.
    pub allow_dhcp_server: bool,
    /// Router advertisements and redirects allowed from the port.
    pub allow_ra: bool,
    /// Ethertypes allowed from the port (after its VLAN tags).
    pub ethertypes: Vec<u16>,
}

impl Default for PortSecurity {
    /// Off, nothing configured.
    fn default() -> Self {
        Self {
            enabled: false,
            requested: None,
            ips: Vec::new(),
            allow_dhcp_server: false,
            allow_ra: false,
            ethertypes: DEFAULT_ETHERTYPES.to_vec(),
        }
    }
}

/// One validated `[bridge.host]`: dom0's own interface on the bridge, a veth
/// pair the agent creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    /// dom0's side of the veth pair; carries `addresses`.
    pub interface: String,
    /// The bridge's side of the veth pair, a port of the bridge. Defaults to
    /// [`HOST_PEER_PREFIX`] followed by the bridge name.
    pub peer: String,
    /// VLANs of the bridge side, as for a port.
    pub mode: PortMode,
    /// `ADDRESS/PREFIX` (IPv4 or IPv6) as written, in file order.
    pub addresses: Vec<String>,
    /// MAC of dom0's side; `None` lets the kernel choose.
    pub mac: Option<MacAddr>,
    /// Most MACs the datapath learns on the bridge side; 0 means no limit.
    /// Defaults per mode ([`PortMode::default_mac_limit`]).
    pub mac_limit: u32,
}

/// One validated `[[bridge]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeSpec {
    pub name: String,
    /// 1-based position of the bridge in the file.
    pub id: u32,
    /// VLAN tag ethertype: [`xennet_common::ETH_P_8021Q`] (0x8100, 802.1Q) or
    /// [`xennet_common::ETH_P_8021AD`] (0x88a8, 802.1ad).
    pub tpid: u16,
    /// Seconds after which learned FDB entries age out; 0 means never.
    pub fdb_aging_secs: u32,
    /// MTU the agent sets on every port of the bridge (and its host port); `None`: leave the
    /// MTUs alone, but refuse ports whose MTUs differ unless `allow_mtu_mismatch`.
    pub mtu: Option<u32>,
    /// Accept ports with different MTUs (frames too big for an egress port are lost there).
    pub allow_mtu_mismatch: bool,
    /// In file order; at least one unless there is a `host`.
    pub ports: Vec<PortSpec>,
    /// dom0's own interface on this bridge, if any.
    pub host: Option<HostSpec>,
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub pin_dir: PathBuf,
    /// Absolute path of the agent's control socket.
    pub socket: PathBuf,
    /// Capacity of the FDB (all bridges together); fixed for the life of the process.
    pub fdb_max_entries: u32,
    /// Address of the Prometheus `/metrics` endpoint; `None`: switched off (`metrics = "off"`).
    pub metrics: Option<SocketAddr>,
    /// In file order; at least one.
    pub bridges: Vec<BridgeSpec>,
}
