//! The TOML configuration file of `xennet-agent`.
//!
//! [`Config::parse`] turns the text into a fully validated [`Config`]. Problems
//! are reported as `{file}:{line}:{col}: {message}`, one per line, and every
//! semantic problem in the file is reported at once. The format is documented
//! in `docs/configuration.md`.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::marker::PhantomData;
use std::net::IpAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use toml::Spanned;

/// bpffs directory where the agent pins its maps when `[agent] pin_dir` is not given.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/xennet";
/// The agent's control socket when `[agent] socket` is not given.
pub const DEFAULT_SOCKET: &str = "/run/xennet/xennet.sock";
/// Seconds after which a learned FDB entry ages out when a bridge has no
/// `fdb_aging_secs` (the Linux bridge default).
pub const DEFAULT_FDB_AGING_SECS: u32 = 300;
/// Default `fdb_max_entries` (the datapath's compiled-in size).
pub const DEFAULT_FDB_MAX_ENTRIES: u32 = xennet_common::maps::FDB_MAX_ENTRIES;
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
/// The default `[bridge.host] peer` is this prefix followed by the bridge name.
pub const HOST_PEER_PREFIX: &str = "xnh-";
/// Most ports the whole configuration may have, over all bridges.
pub const MAX_PORTS: usize = 4096;
/// Most bridges the configuration may have.
pub const MAX_BRIDGES: usize = 256;

/// Lowest and highest usable 802.1Q VLAN id (0 and 4095 are reserved).
const VLAN_MIN: u16 = 1;
const VLAN_MAX: u16 = 4094;
/// Ethertypes of the VLAN tag for `vlan_protocol` "802.1Q" and "802.1ad".
const TPID_8021Q: u16 = 0x8100;
const TPID_8021AD: u16 = 0x88a8;
/// Longest bridge or interface name (Linux `IFNAMSIZ` - 1).
const NAME_MAX: usize = 15;
/// Longest Unix socket path (`sizeof sun_path` - 1 for the terminating NUL).
const SOCKET_PATH_MAX: usize = 107;

// ---------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------

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

impl FromStr for MacAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "{s:?} is not a MAC address (expected six two-digit hex octets separated by ':' \
                 or '-', like 00:16:3e:00:00:01)"
            )
        };
        let sep = if s.contains(':') { ':' } else { '-' };
        let mut parts = s.split(sep);
        let mut octets = [0u8; 6];
        for octet in &mut octets {
            let part = parts.next().ok_or_else(bad)?;
            if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            *octet = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Self(octets))
    }
}

/// How the agent attaches its programs to a port. Every port gets the TC ingress program;
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
    /// VLAN tag ethertype: 0x8100 (802.1Q) or 0x88a8 (802.1ad).
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
    /// In file order; at least one.
    pub bridges: Vec<BridgeSpec>,
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// Every problem found, each formatted `{file}:{line}:{col}: {message}`.
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
}

impl Config {
    /// Parse and validate TOML text; `origin` is the file name used in messages.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] listing, in file order, every TOML syntax error
    /// (at most one per line), or else the first structural error (unknown key,
    /// missing key, wrong type), or else every semantic problem.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let (_, syntax) = toml::de::DeTable::parse_recoverable(text);
        if !syntax.is_empty() {
            let mut problems: Vec<Problem> = syntax.iter().map(Problem::from_toml).collect();
            problems.sort_by_key(|p| p.at);
            problems.dedup_by_key(|p| line_col(text, p.at).0);
            return Err(report(text, origin, problems));
        }
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| report(text, origin, vec![Problem::from_toml(&e)]))?;
        let mut validator = Validator {
            text,
            problems: Vec::new(),
        };
        let config = validator.config(&raw);
        if validator.problems.is_empty() {
            Ok(config)
        } else {
            Err(report(text, origin, validator.problems))
        }
    }

    /// Read and [`parse`](Self::parse) a file; messages name it as `path` is spelled.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Read`] if the file cannot be read as UTF-8 text, otherwise
    /// as [`Config::parse`].
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let origin = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, &origin),
            Err(source) => Err(ConfigError::Read {
                path: origin,
                source,
            }),
        }
    }
}

// ---------------------------------------------------------------------------
// Raw (deserialized, not yet validated) form
// ---------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    agent: Option<RawAgent>,
    #[serde(default, deserialize_with = "table_array")]
    bridge: Vec<Spanned<RawBridge>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    pin_dir: Option<Spanned<String>>,
    socket: Option<Spanned<String>>,
    fdb_max_entries: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBridge {
    name: Spanned<String>,
    vlan_protocol: Option<Spanned<String>>,
    fdb_aging_secs: Option<Spanned<i64>>,
    mtu: Option<Spanned<i64>>,
    allow_mtu_mismatch: Option<bool>,
    #[serde(default, deserialize_with = "table_array")]
    port: Vec<Spanned<RawPort>>,
    host: Option<Spanned<HostTable>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPort {
    interface: Spanned<String>,
    access: Option<Spanned<i64>>,
    trunk: Option<Spanned<Vec<Spanned<TrunkItem>>>>,
    native_vlan: Option<Spanned<i64>>,
    attach: Option<Spanned<String>>,
    #[serde(default)]
    macs: Vec<Spanned<String>>,
    mac_limit: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    interface: Spanned<String>,
    peer: Option<Spanned<String>>,
    access: Option<Spanned<i64>>,
    trunk: Option<Spanned<Vec<Spanned<TrunkItem>>>>,
    native_vlan: Option<Spanned<i64>>,
    #[serde(default)]
    addresses: Vec<Spanned<String>>,
    mac: Option<Spanned<String>>,
    mac_limit: Option<Spanned<i64>>,
}

/// A `RawHost` that, given an array, says to write `[bridge.host]`: the
/// likely mistake is `[[bridge.host]]`.
struct HostTable(RawHost);

impl<'de> Deserialize<'de> for HostTable {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TableVisitor;

        impl<'de> Visitor<'de> for TableVisitor {
            type Value = HostTable;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a table (write [bridge.host] with single brackets: a bridge has at most one \
                     host port)",
                )
            }

            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<HostTable, A::Error> {
                RawHost::deserialize(de::value::MapAccessDeserializer::new(map)).map(HostTable)
            }
        }

        deserializer.deserialize_map(TableVisitor)
    }
}

/// The keys that set the mode of a port or host port.
#[derive(Clone, Copy)]
struct ModeKeys<'a> {
    access: Option<&'a Spanned<i64>>,
    trunk: Option<&'a Spanned<Vec<Spanned<TrunkItem>>>>,
    native_vlan: Option<&'a Spanned<i64>>,
}

impl RawPort {
    fn mode_keys(&self) -> ModeKeys<'_> {
        ModeKeys {
            access: self.access.as_ref(),
            trunk: self.trunk.as_ref(),
            native_vlan: self.native_vlan.as_ref(),
        }
    }
}

impl RawHost {
    fn mode_keys(&self) -> ModeKeys<'_> {
        ModeKeys {
            access: self.access.as_ref(),
            trunk: self.trunk.as_ref(),
            native_vlan: self.native_vlan.as_ref(),
        }
    }
}

/// A `Vec` that, given anything but an array, says to write `[[...]]`: the
/// usual mistake is `[bridge]` instead of `[[bridge]]`.
fn table_array<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct ArrayVisitor<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for ArrayVisitor<T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(
                "an array of tables (write [[bridge]] and [[bridge.port]] with double brackets)",
            )
        }

        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
            while let Some(item) = seq.next_element()? {
                items.push(item);
            }
            Ok(items)
        }
    }

    deserializer.deserialize_seq(ArrayVisitor(PhantomData))
}

/// One element of `trunk`: a VLAN id or a range string "A-B".
enum TrunkItem {
    Id(i64),
    Range(String),
}

impl<'de> Deserialize<'de> for TrunkItem {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ItemVisitor;

        impl Visitor<'_> for ItemVisitor {
            type Value = TrunkItem;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a VLAN id (integer) or a range \"A-B\" (string)")
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<TrunkItem, E> {
                Ok(TrunkItem::Id(v))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<TrunkItem, E> {
                i64::try_from(v)
                    .map(TrunkItem::Id)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<TrunkItem, E> {
                Ok(TrunkItem::Range(v.to_owned()))
            }
        }

        deserializer.deserialize_any(ItemVisitor)
    }
}

// ---------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------

/// One problem: byte offset into the text, and the message without location.
struct Problem {
    at: usize,
    message: String,
}

impl Problem {
    fn from_toml(e: &toml::de::Error) -> Self {
        Self {
            at: e.span().map_or(0, |span| span.start),
            message: e.message().trim().to_owned(),
        }
    }
}

/// Sort problems into file order and format them as `file:line:col: message`.
fn report(text: &str, origin: &str, mut problems: Vec<Problem>) -> ConfigError {
    problems.sort_by_key(|p| p.at);
    ConfigError::Invalid(
        problems
            .into_iter()
            .map(|p| {
                let (line, col) = line_col(text, p.at);
                format!("{origin}:{line}:{col}: {}", p.message)
            })
            .collect(),
    )
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |newline| newline + 1);
    let line = before.split(|&b| b == b'\n').count();
    // Count characters, not bytes: skip UTF-8 continuation bytes.
    let col = before[line_start..]
        .iter()
        .filter(|&&b| b & 0xc0 != 0x80)
        .count()
        + 1;
    (line, col)
}

/// Bridge names already seen: name → offset of its first definition.
type SeenBridges = HashMap<String, usize>;

/// Static MAC entries of one bridge: (MAC, VLAN) → (offset, port interface).
type BridgeMacs = HashMap<(MacAddr, u16), (usize, String)>;

/// One use of an interface name, for the "each interface once" rule.
struct Claim {
    name: String,
    /// Where to report a duplicate.
    span: Range<usize>,
    /// Message prefix naming the bridge and port, without the final ": ".
    ctx: String,
    /// How the message names this use, e.g. "`peer` \"xnh-b\"".
    subject: String,
    /// How a later duplicate names this use, e.g. "a port of bridge \"b\"".
    role: String,
}

struct Validator<'a> {
    text: &'a str,
    problems: Vec<Problem>,
}

impl Validator<'_> {
    fn error(&mut self, span: &Range<usize>, message: String) {
        self.problems.push(Problem {
            at: span.start,
            message,
        });
    }

    fn line(&self, offset: usize) -> usize {
        line_col(self.text, offset).0
    }

    /// Validate everything; the result is meaningful only if no problem was recorded.
    fn config(&mut self, raw: &RawConfig) -> Config {
        let pin_dir = self.pin_dir(raw.agent.as_ref());
        let socket = self.socket(raw.agent.as_ref(), &pin_dir);
        let fdb_max_entries = raw
            .agent
            .as_ref()
            .and_then(|a| a.fdb_max_entries.as_ref())
            .map_or(DEFAULT_FDB_MAX_ENTRIES, |n| {
                let v = u32::try_from(*n.get_ref())
                    .ok()
                    .filter(|v| (MIN_FDB_MAX_ENTRIES..=MAX_FDB_MAX_ENTRIES).contains(v));
                if v.is_none() {
                    self.error(
                        &n.span(),
                        format!(
                            "[agent]: `fdb_max_entries` = {} is out of range \
                             ({MIN_FDB_MAX_ENTRIES}-{MAX_FDB_MAX_ENTRIES})",
                            n.get_ref()
                        ),
                    );
                }
                v.unwrap_or(DEFAULT_FDB_MAX_ENTRIES)
            });
        if raw.bridge.is_empty() {
            self.error(
                &(0..0),
                "no bridge defined: the file needs at least one [[bridge]] table".to_owned(),
            );
        }
        if let Some(extra) = raw.bridge.get(MAX_BRIDGES) {
            self.error(
                &extra.span(),
                format!(
                    "too many bridges: {} defined, at most {MAX_BRIDGES} are supported",
                    raw.bridge.len()
                ),
            );
        }
        // Ports and host ports all take a slot of the datapath, in file order.
        let mut slots = Vec::new();
        for bridge in &raw.bridge {
            let bridge = bridge.get_ref();
            let first = slots.len();
            slots.extend(bridge.port.iter().map(Spanned::span));
            slots.extend(bridge.host.as_ref().map(Spanned::span));
            slots[first..].sort_by_key(|span| span.start);
        }
        if let Some(extra) = slots.get(MAX_PORTS) {
            self.error(
                extra,
                format!(
                    "too many ports: {} defined over all bridges (each [bridge.host] counts as \
                     one), at most {MAX_PORTS} are supported",
                    slots.len()
                ),
            );
        }
        let mut seen = SeenBridges::new();
        let mut bridges = Vec::with_capacity(raw.bridge.len());
        for (index, bridge) in raw.bridge.iter().enumerate() {
            let id = u32::try_from(index + 1).unwrap_or(u32::MAX);
            bridges.push(self.bridge(id, bridge.get_ref(), &mut seen));
        }
        self.unique_interfaces(raw);
        Config {
            pin_dir,
            socket,
            fdb_max_entries,
            bridges,
        }
    }

    fn pin_dir(&mut self, agent: Option<&RawAgent>) -> PathBuf {
        let Some(dir) = agent.and_then(|a| a.pin_dir.as_ref()) else {
            return PathBuf::from(DEFAULT_PIN_DIR);
        };
        let path = PathBuf::from(dir.get_ref());
        if !path.is_absolute() {
            self.error(
                &dir.span(),
                format!(
                    "[agent]: `pin_dir` = {:?} is not an absolute path",
                    dir.get_ref()
                ),
            );
        }
        path
    }

    fn socket(&mut self, agent: Option<&RawAgent>, pin_dir: &Path) -> PathBuf {
        let Some(socket) = agent.and_then(|a| a.socket.as_ref()) else {
            let path = PathBuf::from(DEFAULT_SOCKET);
            let explicit_pin_dir = agent.and_then(|a| a.pin_dir.as_ref());
            if let Some(dir) = explicit_pin_dir.filter(|_| path.starts_with(pin_dir)) {
                self.error(
                    &dir.span(),
                    format!(
                        "[agent]: `pin_dir` = {:?} contains the default `socket` \
                         {DEFAULT_SOCKET:?}, but a bpf filesystem cannot hold a socket: set \
                         `socket`",
                        dir.get_ref()
                    ),
                );
            }
            return path;
        };
        let text = socket.get_ref();
        let path = PathBuf::from(text);
        let problem = if !path.is_absolute() {
            Some("is not an absolute path".to_owned())
        } else if text.ends_with('/') {
            Some("ends with '/': it must name the socket file, not a directory".to_owned())
        } else if text.contains('\0') {
            Some("contains a NUL character".to_owned())
        } else if text.len() > SOCKET_PATH_MAX {
            Some(format!(
                "is {} bytes long, a Unix socket path may have at most {SOCKET_PATH_MAX}",
                text.len()
            ))
        } else if pin_dir.is_absolute() && path.starts_with(pin_dir) {
            Some(format!(
                "lies inside `pin_dir` {:?}, a bpf filesystem, which cannot hold a socket",
                pin_dir.display().to_string()
            ))
        } else {
            None
        };
        if let Some(problem) = problem {
            self.error(
                &socket.span(),
                format!("[agent]: `socket` = {text:?} {problem}"),
            );
        }
        path
    }

    fn bridge(&mut self, id: u32, raw: &RawBridge, seen: &mut SeenBridges) -> BridgeSpec {
        let name = raw.name.get_ref();
        let name_span = raw.name.span();
        if let Err(why) = check_bridge_name(name) {
            self.error(
                &name_span,
                format!("bridge name {name:?} is invalid: {why}"),
            );
        }
        if let Some(&first) = seen.get(name) {
            let line = self.line(first);
            self.error(
                &name_span,
                format!("bridge name {name:?} is already used by the bridge at line {line}"),
            );
        } else {
            seen.insert(name.clone(), name_span.start);
        }

        let ctx = format!("bridge {name:?}");
        let tpid = match &raw.vlan_protocol {
            None => TPID_8021Q,
            Some(protocol) => {
                let text = protocol.get_ref();
                if text.eq_ignore_ascii_case("802.1Q") {
                    TPID_8021Q
                } else if text.eq_ignore_ascii_case("802.1ad") {
                    TPID_8021AD
                } else {
                    self.error(
                        &protocol.span(),
                        format!(
                            "{ctx}: `vlan_protocol` = {text:?} is not \"802.1Q\" or \"802.1ad\""
                        ),
                    );
                    TPID_8021Q
                }
            }
        };
        let fdb_aging_secs = raw
            .fdb_aging_secs
            .as_ref()
            .map_or(Some(DEFAULT_FDB_AGING_SECS), |secs| {
                self.bounded_key(&ctx, "fdb_aging_secs", secs, MAX_FDB_AGING_SECS)
            })
            .unwrap_or(DEFAULT_FDB_AGING_SECS);
        let mtu = raw.mtu.as_ref().and_then(|m| {
            let v = u32::try_from(*m.get_ref())
                .ok()
                .filter(|v| (MIN_MTU..=MAX_MTU).contains(v));
            if v.is_none() {
                self.error(
                    &m.span(),
                    format!(
                        "{ctx}: `mtu` = {} is out of range ({MIN_MTU}-{MAX_MTU})",
                        m.get_ref()
                    ),
                );
            }
            v
        });
        let allow_mtu_mismatch = raw.allow_mtu_mismatch.unwrap_or(false);

        if raw.port.is_empty() && raw.host.is_none() {
            self.error(
                &name_span,
                format!("{ctx} has no ports: add at least one [[bridge.port]] or a [bridge.host]"),
            );
        }
        let mut macs = BridgeMacs::new();
        let ports = raw
            .port
            .iter()
            .filter_map(|port| self.port(name, port, &mut macs))
            .collect();
        let host = raw
            .host
            .as_ref()
            .and_then(|host| self.host(name, host, &macs));
        BridgeSpec {
            name: name.clone(),
            id,
            tpid,
            fdb_aging_secs,
            mtu,
            allow_mtu_mismatch,
            ports,
            host,
        }
    }

    /// `None` if the port is too broken to describe (problems are recorded).
    fn port(
        &mut self,
        bridge: &str,
        raw: &Spanned<RawPort>,
        macs: &mut BridgeMacs,
    ) -> Option<PortSpec> {
        let header = raw.span();
        let raw = raw.get_ref();
        let interface = raw.interface.get_ref();
        let ctx = format!("bridge {bridge:?}, port {interface:?}");

        if let Err(why) = check_ifname(interface) {
            self.error(
                &raw.interface.span(),
                format!(
                    "bridge {bridge:?}: `interface` = {interface:?} is not a valid Linux \
                     interface name: {why}"
                ),
            );
        } else if is_pattern(interface) {
            if let Err(e) = glob::Pattern::new(interface) {
                self.error(
                    &raw.interface.span(),
                    format!("{ctx}: `interface` = {interface:?} is not a valid pattern: {e}"),
                );
            }
            if let Some(first) = raw.macs.first() {
                self.error(
                    &first.span(),
                    format!(
                        "{ctx}: static `macs` need an exact interface name, not a pattern \
                         (add them with `xennet-agent port add … --mac` when the vif appears)"
                    ),
                );
            }
        }
        let attach = match &raw.attach {
            None => Some(AttachMode::Auto),
            Some(attach) => match attach.get_ref().parse() {
                Ok(mode) => Some(mode),
                Err(why) => {
                    self.error(&attach.span(), format!("{ctx}: `attach` = {why}"));
                    None
                }
            },
        };
        let mode = self.mode(&ctx, &header, raw.mode_keys());
        let port_macs = self.macs(&ctx, interface, raw, mode.as_ref(), macs);
        let mac_limit = self.mac_limit(&ctx, raw.mac_limit.as_ref(), mode.as_ref());
        Some(PortSpec {
            interface: interface.clone(),
            mode: mode?,
            attach: attach?,
            macs: port_macs,
            mac_limit: mac_limit?,
        })
    }

    /// `None` if the host port is too broken to describe (problems are recorded).
    fn host(
        &mut self,
        bridge: &str,
        raw: &Spanned<HostTable>,
        macs: &BridgeMacs,
    ) -> Option<HostSpec> {
        let header = raw.span();
        let raw = &raw.get_ref().0;
        let interface = raw.interface.get_ref();
        let ctx = format!("bridge {bridge:?}, host port {interface:?}");

        if let Err(why) = check_ifname(interface) {
            self.error(
                &raw.interface.span(),
                format!(
                    "bridge {bridge:?}, host port: `interface` = {interface:?} is not a valid \
                     Linux interface name: {why}"
                ),
            );
        }
        let peer = match &raw.peer {
            Some(peer) => {
                if let Err(why) = check_ifname(peer.get_ref()) {
                    self.error(
                        &peer.span(),
                        format!(
                            "{ctx}: `peer` = {:?} is not a valid Linux interface name: {why}",
                            peer.get_ref()
                        ),
                    );
                }
                Some(peer.get_ref().clone())
            }
            None => match default_peer(bridge) {
                DefaultPeer::Valid(peer) => Some(peer),
                DefaultPeer::Invalid(peer, why) => {
                    self.error(
                        &header,
                        format!(
                            "{ctx}: the default `peer` {peer:?} (\"{HOST_PEER_PREFIX}\" + bridge \
                             name) is not a valid Linux interface name: {why}; set `peer`"
                        ),
                    );
                    None
                }
                // The bridge name is already reported.
                DefaultPeer::BadBridgeName => None,
            },
        };
        let mode = self.mode(&ctx, &header, raw.mode_keys());
        let mac_limit = self.mac_limit(&ctx, raw.mac_limit.as_ref(), mode.as_ref());
        let addresses = self.addresses(&ctx, &raw.addresses);
        let mac = match &raw.mac {
            None => Some(None),
            Some(mac) => self.host_mac(&ctx, mac, mode.as_ref(), macs).map(Some),
        };
        Some(HostSpec {
            interface: interface.clone(),
            peer: peer?,
            mode: mode?,
            addresses,
            mac: mac?,
            mac_limit: mac_limit?,
        })
    }

    /// The host port's `addresses`, as written; problems are recorded.
    fn addresses(&mut self, ctx: &str, raw: &[Spanned<String>]) -> Vec<String> {
        let mut seen: HashMap<IpAddr, &str> = HashMap::new();
        for entry in raw {
            let text = entry.get_ref();
            match parse_cidr(text) {
                Ok(ip) => {
                    if let Some(first) = seen.get(&ip) {
                        self.error(
                            &entry.span(),
                            format!(
                                "{ctx}: `addresses` entry {text:?}: address {ip} is already \
                                 listed as {first:?}"
                            ),
                        );
                    } else {
                        seen.insert(ip, text);
                    }
                }
                Err(why) => {
                    self.error(
                        &entry.span(),
                        format!("{ctx}: `addresses` entry {text:?}: {why}"),
                    );
                }
            }
        }
        raw.iter().map(|entry| entry.get_ref().clone()).collect()
    }

    /// The host port's `mac`: a unicast address that no port of the bridge
    /// holds as a static entry in a VLAN the host port carries.
    fn host_mac(
        &mut self,
        ctx: &str,
        raw: &Spanned<String>,
        mode: Option<&PortMode>,
        macs: &BridgeMacs,
    ) -> Option<MacAddr> {
        let text = raw.get_ref();
        let mac = match text.parse::<MacAddr>() {
            Ok(mac) => mac,
            Err(why) => {
                self.error(&raw.span(), format!("{ctx}: `mac` = {why}"));
                return None;
            }
        };
        if let Some(kind) = non_unicast_kind(mac) {
            self.error(
                &raw.span(),
                format!(
                    "{ctx}: `mac` = {text:?}: {mac} is {kind}; dom0's side needs a unicast address"
                ),
            );
            return None;
        }
        let clash = mode.and_then(|mode| {
            macs.iter()
                .filter(|((m, vlan), _)| *m == mac && mode.carries(*vlan))
                .min_by_key(|(_, (at, _))| *at)
                .map(|((_, vlan), (at, port))| (*vlan, *at, port.clone()))
        });
        if let Some((vlan, at, port)) = clash {
            let line = self.line(at);
            self.error(
                &raw.span(),
                format!(
                    "{ctx}: `mac` = {text:?}: {mac} is a static MAC of port {port:?} in VLAN \
                     {vlan} (line {line}); dom0's side would be unreachable in that VLAN"
                ),
            );
            return None;
        }
        Some(mac)
    }

    /// A port's `mac_limit`, or the default for its mode; `None` after
    /// recording a problem or if the mode is unknown.
    fn mac_limit(
        &mut self,
        ctx: &str,
        raw: Option<&Spanned<i64>>,
        mode: Option<&PortMode>,
    ) -> Option<u32> {
        match raw {
            Some(limit) => self.bounded_key(ctx, "mac_limit", limit, MAX_MAC_LIMIT),
            None => mode.map(PortMode::default_mac_limit),
        }
    }

    /// An integer key in `0..=max`; `None` after recording a problem.
    fn bounded_key(&mut self, ctx: &str, key: &str, value: &Spanned<i64>, max: u32) -> Option<u32> {
        let number = u32::try_from(*value.get_ref()).ok().filter(|n| *n <= max);
        if number.is_none() {
            self.error(
                &value.span(),
                format!(
                    "{ctx}: `{key}` = {} is out of range (0-{max})",
                    value.get_ref()
                ),
            );
        }
        number
    }

    /// Report every interface name used more than once in the file (ports,
    /// host interfaces and host peers), at each later use.
    fn unique_interfaces(&mut self, raw: &RawConfig) {
        let mut claims = Vec::new();
        for bridge in &raw.bridge {
            let bridge = bridge.get_ref();
            let name = bridge.name.get_ref();
            for port in &bridge.port {
                let interface = port.get_ref().interface.get_ref();
                claims.push(Claim {
                    name: interface.clone(),
                    span: port.get_ref().interface.span(),
                    ctx: format!("bridge {name:?}, port {interface:?}"),
                    subject: format!("interface {interface:?}"),
                    role: format!("a port of bridge {name:?}"),
                });
            }
            let Some(host) = &bridge.host else {
                continue;
            };
            let header = host.span();
            let host = &host.get_ref().0;
            let interface = host.interface.get_ref();
            let ctx = format!("bridge {name:?}, host port {interface:?}");
            claims.push(Claim {
                name: interface.clone(),
                span: host.interface.span(),
                ctx: ctx.clone(),
                subject: format!("interface {interface:?}"),
                role: format!("the host interface of bridge {name:?}"),
            });
            if let Some(peer) = &host.peer {
                claims.push(Claim {
                    name: peer.get_ref().clone(),
                    span: peer.span(),
                    ctx,
                    subject: format!("`peer` {:?}", peer.get_ref()),
                    role: format!("the host peer of bridge {name:?}"),
                });
            } else if let DefaultPeer::Valid(peer) = default_peer(name) {
                claims.push(Claim {
                    subject: format!("the default `peer` {peer:?}"),
                    name: peer,
                    span: header,
                    ctx,
                    role: format!("the default host peer of bridge {name:?}"),
                });
            }
        }
        claims.sort_by_key(|claim| claim.span.start);
        let mut first: HashMap<&str, (usize, &str)> = HashMap::new();
        let mut duplicates = Vec::new();
        for claim in &claims {
            if let Some(&(at, role)) = first.get(claim.name.as_str()) {
                duplicates.push((claim, at, role));
            } else {
                first.insert(&claim.name, (claim.span.start, &claim.role));
            }
        }
        for (claim, at, role) in duplicates {
            let line = self.line(at);
            self.error(
                &claim.span,
                format!(
                    "{}: {} is already {role} at line {line}; each interface may appear only \
                     once in the file",
                    claim.ctx, claim.subject
                ),
            );
        }
    }

    /// The mode from `access` / `trunk` / `native_vlan`; `None` after
    /// recording a problem.
    fn mode(&mut self, ctx: &str, header: &Range<usize>, keys: ModeKeys<'_>) -> Option<PortMode> {
        let access = keys
            .access
            .map(|access| self.vlan_key(ctx, "access", access));
        let trunk = keys.trunk.map(|trunk| (trunk, self.trunk_list(ctx, trunk)));
        let native = keys
            .native_vlan
            .map(|native| (native, self.vlan_key(ctx, "native_vlan", native)));

        match (access, trunk) {
            (Some(_), Some((trunk, _))) => {
                self.error(
                    &trunk.span(),
                    format!("{ctx}: `access` and `trunk` are mutually exclusive: give exactly one"),
                );
                None
            }
            (None, None) => {
                self.error(
                    header,
                    format!(
                        "{ctx}: give exactly one of `access` (one VLAN id) or `trunk` (a list \
                         of VLANs)"
                    ),
                );
                None
            }
            (Some(vlan), None) => {
                if let Some((native, _)) = native {
                    self.error(
                        &native.span(),
                        format!(
                            "{ctx}: `native_vlan` is only allowed with `trunk`; an access port \
                             is untagged in its `access` VLAN"
                        ),
                    );
                    return None;
                }
                Some(PortMode::Access { vlan: vlan? })
            }
            (None, Some((trunk, vlans))) => {
                if trunk.get_ref().is_empty() && native.is_none() {
                    self.error(
                        &trunk.span(),
                        format!(
                            "{ctx}: `trunk` is empty and there is no `native_vlan`: the port \
                             would carry no VLAN"
                        ),
                    );
                    return None;
                }
                let mut vlans = vlans?;
                let native = match native {
                    None => None,
                    Some((_, vlan)) => Some(vlan?),
                };
                vlans.extend(native);
                Some(PortMode::Trunk { vlans, native })
            }
        }
    }

    /// A VLAN id given as an integer key (`access`, `native_vlan`).
    fn vlan_key(&mut self, ctx: &str, key: &str, value: &Spanned<i64>) -> Option<u16> {
        let vlan = vlan_id(*value.get_ref());
        if vlan.is_none() {
            self.error(
                &value.span(),
                format!(
                    "{ctx}: `{key}` = {} is not a VLAN id ({VLAN_MIN}-{VLAN_MAX})",
                    value.get_ref()
                ),
            );
        }
        vlan
    }

    /// The VLANs listed in `trunk`; `None` if any item is invalid.
    fn trunk_list(
        &mut self,
        ctx: &str,
        trunk: &Spanned<Vec<Spanned<TrunkItem>>>,
    ) -> Option<BTreeSet<u16>> {
        let mut vlans = BTreeSet::new();
        let mut valid = true;
        for item in trunk.get_ref() {
            match item.get_ref() {
                TrunkItem::Id(value) => {
                    if let Some(vlan) = vlan_id(*value) {
                        vlans.insert(vlan);
                    } else {
                        self.error(
                            &item.span(),
                            format!(
                                "{ctx}: `trunk` entry {value} is not a VLAN id \
                                 ({VLAN_MIN}-{VLAN_MAX})"
                            ),
                        );
                        valid = false;
                    }
                }
                TrunkItem::Range(text) => match parse_range(text) {
                    Ok(range) => vlans.extend(range),
                    Err(why) => {
                        self.error(
                            &item.span(),
                            format!("{ctx}: `trunk` entry {text:?}: {why}"),
                        );
                        valid = false;
                    }
                },
            }
        }
        valid.then_some(vlans)
    }

    /// The port's static MAC entries. Entries with problems are left out; when
    /// `mode` is `None` only their syntax is checked.
    fn macs(
        &mut self,
        ctx: &str,
        interface: &str,
        raw: &RawPort,
        mode: Option<&PortMode>,
        bridge_macs: &mut BridgeMacs,
    ) -> Vec<(MacAddr, u16)> {
        let mut out = Vec::with_capacity(raw.macs.len());
        for entry in &raw.macs {
            let (text, span) = (entry.get_ref(), entry.span());
            let Some((mac, explicit)) = self.mac_syntax(ctx, text, &span) else {
                continue;
            };
            let Some(mode) = mode else {
                continue;
            };
            let Some(vlan) = self.mac_vlan(ctx, text, &span, mode, explicit) else {
                continue;
            };
            if let Some((first, port)) = bridge_macs.get(&(mac, vlan)) {
                let line = self.line(*first);
                self.error(
                    &span,
                    format!(
                        "{ctx}: `macs` entry {text:?}: static MAC {mac} in VLAN {vlan} is already \
                         given at line {line} (port {port:?}); each MAC may appear once per VLAN \
                         of a bridge"
                    ),
                );
                continue;
            }
            bridge_macs.insert((mac, vlan), (span.start, interface.to_owned()));
            out.push((mac, vlan));
        }
        out
    }

    /// Split a `macs` entry "MAC" or "MAC@VLAN" and check both parts on their
    /// own; `None` after recording the problems.
    fn mac_syntax(
        &mut self,
        ctx: &str,
        text: &str,
        span: &Range<usize>,
    ) -> Option<(MacAddr, Option<u16>)> {
        let (mac_text, vlan_text) = match text.split_once('@') {
            Some((mac, vlan)) => (mac, Some(vlan)),
            None => (text, None),
        };
        let mac = match mac_text.parse::<MacAddr>() {
            Ok(mac) => match non_unicast_kind(mac) {
                None => Some(mac),
                Some(kind) => {
                    self.error(
                        span,
                        format!(
                            "{ctx}: `macs` entry {text:?}: {mac} is {kind}; static entries must \
                             be unicast"
                        ),
                    );
                    None
                }
            },
            Err(why) => {
                self.error(span, format!("{ctx}: `macs` entry {text:?}: {why}"));
                None
            }
        };
        let vlan = match vlan_text.map(parse_vlan_text) {
            None => None,
            Some(Ok(vlan)) => Some(vlan),
            Some(Err(why)) => {
                self.error(
                    span,
                    format!("{ctx}: `macs` entry {text:?}: after '@', {why}"),
                );
                return None;
            }
        };
        Some((mac?, vlan))
    }

    /// The VLAN of a static MAC entry on a port of `mode`; `None` after
    /// recording a problem.
    fn mac_vlan(
        &mut self,
        ctx: &str,
        text: &str,
        span: &Range<usize>,
        mode: &PortMode,
        explicit: Option<u16>,
    ) -> Option<u16> {
        let problem = match (mode, explicit) {
            (PortMode::Access { vlan }, None) => return Some(*vlan),
            (PortMode::Access { vlan }, Some(given)) => {
                if given == *vlan {
                    return Some(given);
                }
                let mac = text.split_once('@').map_or(text, |(mac, _)| mac);
                format!(
                    "VLAN {given} is not the port's access VLAN {vlan} (write \"{mac}\" or \
                     \"{mac}@{vlan}\")"
                )
            }
            (PortMode::Trunk { vlans, .. }, Some(given)) => {
                if vlans.contains(&given) {
                    return Some(given);
                }
                format!("VLAN {given} is not carried by this trunk port")
            }
            (
                PortMode::Trunk {
                    native: Some(native),
                    ..
                },
                None,
            ) => return Some(*native),
            (PortMode::Trunk { native: None, .. }, None) => {
                "a trunk port without `native_vlan` needs \"MAC@VLAN\"".to_owned()
            }
        };
        self.error(span, format!("{ctx}: `macs` entry {text:?}: {problem}"));
        None
    }
}

/// `value` as a VLAN id if it is one.
fn vlan_id(value: i64) -> Option<u16> {
    u16::try_from(value)
        .ok()
        .filter(|vlan| (VLAN_MIN..=VLAN_MAX).contains(vlan))
}

/// A VLAN id written in a string (range bound, `@VLAN`): decimal digits only.
fn parse_vlan_text(text: &str) -> Result<u16, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{text:?} is not a decimal VLAN id"));
    }
    text.parse::<u16>()
        .ok()
        .filter(|vlan| (VLAN_MIN..=VLAN_MAX).contains(vlan))
        .ok_or_else(|| format!("{text} is not a VLAN id ({VLAN_MIN}-{VLAN_MAX})"))
}

/// An inclusive range "A-B" (spaces around A and B allowed).
fn parse_range(text: &str) -> Result<std::ops::RangeInclusive<u16>, String> {
    let malformed =
        || "expected an inclusive range \"A-B\" of VLAN ids, like \"100-199\"".to_owned();
    let (start, end) = text.split_once('-').ok_or_else(malformed)?;
    let (start, end) = (start.trim(), end.trim());
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(start) || !digits(end) {
        return Err(malformed());
    }
    let start = parse_vlan_text(start)?;
    let end = parse_vlan_text(end)?;
    if start > end {
        return Err(format!("range start {start} is greater than its end {end}"));
    }
    Ok(start..=end)
}

/// Bridge names: 1..=15 characters of `[A-Za-z0-9_.-]`, not "." or "..".
fn check_bridge_name(name: &str) -> Result<(), String> {
    if !(1..=NAME_MAX).contains(&name.len())
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Err(format!(
            "use 1-{NAME_MAX} characters of A-Z a-z 0-9 '_' '.' '-'"
        ));
    }
    if name == "." || name == ".." {
        return Err("\".\" and \"..\" are reserved".to_owned());
    }
    Ok(())
}

/// The `peer` of a `[bridge.host]` that does not set one.
enum DefaultPeer {
    Valid(String),
    /// The name and why it is not a valid interface name.
    Invalid(String, String),
    /// The bridge name is invalid, so the default is meaningless.
    BadBridgeName,
}

fn default_peer(bridge: &str) -> DefaultPeer {
    if check_bridge_name(bridge).is_err() {
        return DefaultPeer::BadBridgeName;
    }
    let peer = format!("{HOST_PEER_PREFIX}{bridge}");
    match check_ifname(&peer) {
        Ok(()) => DefaultPeer::Valid(peer),
        Err(why) => DefaultPeer::Invalid(peer, why),
    }
}

/// Why `mac` cannot be a unicast station address, if it cannot.
fn non_unicast_kind(mac: MacAddr) -> Option<&'static str> {
    if mac.is_broadcast() {
        Some("the broadcast address")
    } else if mac.is_multicast() {
        Some("a multicast address")
    } else if mac.is_zero() {
        Some("the all-zero address")
    } else {
        None
    }
}

/// An interface address "ADDRESS/PREFIX" (IPv4 or IPv6); returns the address.
fn parse_cidr(text: &str) -> Result<IpAddr, String> {
    let Some((address, prefix)) = text.split_once('/') else {
        return Err(
            "expected ADDRESS/PREFIX, like \"10.0.94.10/24\" or \"fd00::10/64\"".to_owned(),
        );
    };
    let ip: IpAddr = address
        .parse()
        .map_err(|_| format!("{address:?} is not an IPv4 or IPv6 address"))?;
    let (family, max) = if ip.is_ipv4() {
        ("IPv4", 32)
    } else {
        ("IPv6", 128)
    };
    let not_a_length = || format!("{prefix:?} is not a prefix length (0-{max} for {family})");
    if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return Err(not_a_length());
    }
    let length: u16 = prefix.parse().map_err(|_| not_a_length())?;
    if length > max {
        return Err(format!(
            "prefix length {length} is out of range for {family} (0-{max})"
        ));
    }
    let kind = match ip {
        IpAddr::V4(v4) if v4.is_broadcast() => Some("the broadcast address"),
        _ if ip.is_unspecified() => Some("the unspecified address"),
        _ if ip.is_multicast() => Some("a multicast address"),
        _ => None,
    };
    match kind {
        Some(kind) => Err(format!("{ip} is {kind}, not an interface address")),
        None => Ok(ip),
    }
}

/// Whether a port's `interface` is a glob pattern (`*`, `?`, `[…]`) rather than a name.
#[must_use]
pub fn is_pattern(interface: &str) -> bool {
    interface.contains(['*', '?', '['])
}

/// Linux `dev_valid_name`: 1..=15 bytes, not "." or "..", no '/', ':',
/// whitespace or NUL.
fn check_ifname(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("it is empty".to_owned());
    }
    if name.len() > NAME_MAX {
        return Err(format!(
            "it is {} bytes long, at most {NAME_MAX} are allowed",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return Err("\".\" and \"..\" are reserved".to_owned());
    }
    if let Some(c) = name
        .chars()
        .find(|&c| c == '/' || c == ':' || c == '\0' || c.is_whitespace())
    {
        return Err(format!("it contains {c:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = include_str!("../../examples/seed-trunk.toml");

    /// Parse `text` (origin "t.toml") and return the error lines; panics if it parses.
    fn errors(text: &str) -> Vec<String> {
        match Config::parse(text, "t.toml") {
            Ok(config) => panic!("expected errors, parsed {config:#?}"),
            Err(ConfigError::Invalid(lines)) => lines,
            Err(other) => panic!("expected ConfigError::Invalid, got {other:?}"),
        }
    }

    fn parse(text: &str) -> Config {
        match Config::parse(text, "t.toml") {
            Ok(config) => config,
            Err(e) => panic!("expected a valid config, got:\n{e}"),
        }
    }

    fn mac(s: &str) -> MacAddr {
        s.parse().unwrap()
    }

    fn vlans(ids: &[u16]) -> BTreeSet<u16> {
        ids.iter().copied().collect()
    }

    fn access_port(interface: &str, vlan: u16, macs: &[(&str, u16)]) -> PortSpec {
        PortSpec {
            interface: interface.to_owned(),
            mode: PortMode::Access { vlan },
            attach: AttachMode::Auto,
            macs: macs.iter().map(|&(m, v)| (mac(m), v)).collect(),
            mac_limit: 1024,
        }
    }

    #[test]
    fn seed_example_parses_to_the_expected_config() {
        let config = Config::parse(SEED, "examples/seed-trunk.toml").unwrap();
        let expected = Config {
            pin_dir: PathBuf::from("/sys/fs/bpf/xennet"),
            socket: PathBuf::from("/run/xennet/xennet.sock"),
            fdb_max_entries: DEFAULT_FDB_MAX_ENTRIES,
            bridges: vec![BridgeSpec {
                name: "trunk".to_owned(),
                id: 1,
                tpid: 0x8100,
                fdb_aging_secs: 300,
                mtu: None,
                allow_mtu_mismatch: false,
                host: None,
                ports: vec![
                    PortSpec {
                        interface: "eth1".to_owned(),
                        mode: PortMode::Trunk {
                            vlans: vlans(&[4093, 4094]),
                            native: None,
                        },
                        attach: AttachMode::Auto,
                        macs: vec![
                            (MacAddr([0x02, 0, 0, 0, 0, 0xfe]), 4094),
                            (MacAddr([0x02, 0, 0, 0, 0, 0xfe]), 4093),
                        ],
                        mac_limit: 16384,
                    },
                    access_port("vif1.0", 4094, &[("00:16:3e:00:00:01", 4094)]),
                    access_port("vif2.0", 4094, &[("00:16:3e:00:00:02", 4094)]),
                    access_port("vif3.0", 4093, &[("00:16:3e:00:00:03", 4093)]),
                ],
            }],
        };
        assert_eq!(config, expected);
    }

    #[test]
    fn invalid_examples_report_line_and_field() {
        let cases: &[(&str, &str, &[&str])] = &[
            (
                "examples/invalid/unknown-key.toml",
                include_str!("../../examples/invalid/unknown-key.toml"),
                &[
                    "examples/invalid/unknown-key.toml:7:1: unknown field `vlan`, expected one of \
                   `interface`, `access`, `trunk`, `native_vlan`, `attach`, `macs`, `mac_limit`",
                ],
            ),
            (
                "examples/invalid/vlan-4095.toml",
                include_str!("../../examples/invalid/vlan-4095.toml"),
                &[
                    "examples/invalid/vlan-4095.toml:11:10: bridge \"trunk\", port \"vif1.0\": \
                   `access` = 4095 is not a VLAN id (1-4094)",
                ],
            ),
            (
                "examples/invalid/interface-in-two-bridges.toml",
                include_str!("../../examples/invalid/interface-in-two-bridges.toml"),
                &[
                    "examples/invalid/interface-in-two-bridges.toml:13:13: bridge \"blue\", port \
                   \"vif1.0\": interface \"vif1.0\" is already a port of bridge \"red\" at line \
                   6; each interface may appear only once in the file",
                ],
            ),
            (
                "examples/invalid/duplicate-static-mac.toml",
                include_str!("../../examples/invalid/duplicate-static-mac.toml"),
                &[
                    "examples/invalid/duplicate-static-mac.toml:13:9: bridge \"trunk\", port \
                   \"vif2.0\": `macs` entry \"00:16:3E:00:00:01\": static MAC 00:16:3e:00:00:01 \
                   in VLAN 4094 is already given at line 8 (port \"vif1.0\"); each MAC may \
                   appear once per VLAN of a bridge",
                ],
            ),
        ];
        for &(origin, text, expected) in cases {
            match Config::parse(text, origin) {
                Err(ConfigError::Invalid(lines)) => assert_eq!(lines, expected, "{origin}"),
                other => panic!("{origin}: expected Invalid, got {other:?}"),
            }
        }
    }

    /// (what, config text, expected error lines) for semantic problems.
    const SEMANTIC_CASES: &[(&str, &str, &[&str])] = &[
        (
            "empty file",
            "",
            &["t.toml:1:1: no bridge defined: the file needs at least one [[bridge]] table"],
        ),
        (
            "relative pin_dir",
            "[agent]\npin_dir = \"bpf/xennet\"\n[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\naccess = 1\n",
            &["t.toml:2:11: [agent]: `pin_dir` = \"bpf/xennet\" is not an absolute path"],
        ),
        (
            "bridge without ports",
            "[[bridge]]\nname = \"lonely\"\n",
            &[
                "t.toml:2:8: bridge \"lonely\" has no ports: add at least one [[bridge.port]] or a [bridge.host]",
            ],
        ),
        (
            "bridge name too long",
            "[[bridge]]\nname = \"abcdefghijklmnop\"\n[[bridge.port]]\ninterface = \"eth0\"\naccess = 1\n",
            &[
                "t.toml:2:8: bridge name \"abcdefghijklmnop\" is invalid: use 1-15 characters of A-Z a-z 0-9 '_' '.' '-'",
            ],
        ),
        (
            "bridge name with a slash",
            "[[bridge]]\nname = \"a/b\"\n[[bridge.port]]\ninterface = \"eth0\"\naccess = 1\n",
            &[
                "t.toml:2:8: bridge name \"a/b\" is invalid: use 1-15 characters of A-Z a-z 0-9 '_' '.' '-'",
            ],
        ),
        (
            "duplicate bridge name",
            "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\naccess = 1\n\
                 [[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth1\"\naccess = 1\n",
            &["t.toml:7:8: bridge name \"b\" is already used by the bridge at line 2"],
        ),
        (
            "unknown vlan_protocol",
            "[[bridge]]\nname = \"b\"\nvlan_protocol = \"802.1x\"\n[[bridge.port]]\ninterface = \"eth0\"\naccess = 1\n",
            &[
                "t.toml:3:17: bridge \"b\": `vlan_protocol` = \"802.1x\" is not \"802.1Q\" or \"802.1ad\"",
            ],
        ),
        (
            "unknown attach mode",
            "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\naccess = 1\nattach = \"XDP\"\n",
            &[
                "t.toml:6:10: bridge \"b\", port \"eth0\": `attach` = \"XDP\" is not one of \"auto\", \"xdp\", \"xdp-generic\", \"tc\"",
            ],
        ),
        (
            "interface with a slash",
            "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth/0\"\naccess = 1\n",
            &[
                "t.toml:4:13: bridge \"b\": `interface` = \"eth/0\" is not a valid Linux interface name: it contains '/'",
            ],
        ),
        (
            "interface with a space",
            "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth 0\"\naccess = 1\n",
            &[
                "t.toml:4:13: bridge \"b\": `interface` = \"eth 0\" is not a valid Linux interface name: it contains ' '",
            ],
        ),
        (
            "interface with a colon",
            "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0:1\"\naccess = 1\n",
            &[
                "t.toml:4:13: bridge \"b\": `interface` = \"eth0:1\" is not a valid Linux interface name: it contains ':'",
            ],
        ),
        (
            "interface too long",
            "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"vif12345.6789012\"\naccess = 1\n",
            &[
                "t.toml:4:13: bridge \"b\": `interface` = \"vif12345.6789012\" is not a valid Linux interface name: it is 16 bytes long, at most 15 are allowed",
            ],
        ),
        (
            "interface empty",
            "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"\"\naccess = 1\n",
            &[
                "t.toml:4:13: bridge \"b\": `interface` = \"\" is not a valid Linux interface name: it is empty",
            ],
        ),
        (
            "interface ..",
            "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"..\"\naccess = 1\n",
            &[
                "t.toml:4:13: bridge \"b\": `interface` = \"..\" is not a valid Linux interface name: \".\" and \"..\" are reserved",
            ],
        ),
        (
            "interface twice in one bridge",
            "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\naccess = 1\n[[bridge.port]]\ninterface = \"eth0\"\naccess = 2\n",
            &[
                "t.toml:7:13: bridge \"b\", port \"eth0\": interface \"eth0\" is already a port of bridge \"b\" at line 4; each interface may appear only once in the file",
            ],
        ),
        (
            "neither access nor trunk",
            "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\n",
            &[
                "t.toml:3:1: bridge \"b\", port \"eth0\": give exactly one of `access` (one VLAN id) or `trunk` (a list of VLANs)",
            ],
        ),
        (
            "both access and trunk",
            "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\naccess = 1\ntrunk = [2]\n",
            &[
                "t.toml:6:9: bridge \"b\", port \"eth0\": `access` and `trunk` are mutually exclusive: give exactly one",
            ],
        ),
        (
            "native_vlan on an access port",
            "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\naccess = 1\nnative_vlan = 1\n",
            &[
                "t.toml:6:15: bridge \"b\", port \"eth0\": `native_vlan` is only allowed with `trunk`; an access port is untagged in its `access` VLAN",
            ],
        ),
        (
            "access 0",
            "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\naccess = 0\n",
            &["t.toml:5:10: bridge \"b\", port \"eth0\": `access` = 0 is not a VLAN id (1-4094)"],
        ),
        (
            "access negative",
            "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\naccess = -1\n",
            &["t.toml:5:10: bridge \"b\", port \"eth0\": `access` = -1 is not a VLAN id (1-4094)"],
        ),
        (
            "access beyond u16",
            "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\naccess = 65537\n",
            &[
                "t.toml:5:10: bridge \"b\", port \"eth0\": `access` = 65537 is not a VLAN id (1-4094)",
            ],
        ),
        (
            "native_vlan 4095",
            "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\ntrunk = [1]\nnative_vlan = 4095\n",
            &[
                "t.toml:6:15: bridge \"b\", port \"eth0\": `native_vlan` = 4095 is not a VLAN id (1-4094)",
            ],
        ),
        (
            "empty trunk without native_vlan",
            "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\ntrunk = []\n",
            &[
                "t.toml:5:9: bridge \"b\", port \"eth0\": `trunk` is empty and there is no `native_vlan`: the port would carry no VLAN",
            ],
        ),
        (
            "trunk id out of range",
            "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\ntrunk = [1, 4095]\n",
            &[
                "t.toml:5:13: bridge \"b\", port \"eth0\": `trunk` entry 4095 is not a VLAN id (1-4094)",
            ],
        ),
        (
            "reversed range",
            "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\ntrunk = [\"200-100\"]\n",
            &[
                "t.toml:5:10: bridge \"b\", port \"eth0\": `trunk` entry \"200-100\": range start 200 is greater than its end 100",
            ],
        ),
        (
            "range end out of range",
            "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\ntrunk = [\"4000-4095\"]\n",
            &[
                "t.toml:5:10: bridge \"b\", port \"eth0\": `trunk` entry \"4000-4095\": 4095 is not a VLAN id (1-4094)",
            ],
        ),
        (
            "range start 0",
            "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\ntrunk = [\"0-10\"]\n",
            &[
                "t.toml:5:10: bridge \"b\", port \"eth0\": `trunk` entry \"0-10\": 0 is not a VLAN id (1-4094)",
            ],
        ),
        (
            "single id as a string",
            "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\ntrunk = [\"100\"]\n",
            &[
                "t.toml:5:10: bridge \"b\", port \"eth0\": `trunk` entry \"100\": expected an inclusive range \"A-B\" of VLAN ids, like \"100-199\"",
            ],
        ),
        (
            "malformed ranges",
            "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\ntrunk = [\"1-2-3\", \"-5\", \"a-b\", \"1..5\"]\n",
            &[
                "t.toml:5:10: bridge \"b\", port \"eth0\": `trunk` entry \"1-2-3\": expected an inclusive range \"A-B\" of VLAN ids, like \"100-199\"",
                "t.toml:5:19: bridge \"b\", port \"eth0\": `trunk` entry \"-5\": expected an inclusive range \"A-B\" of VLAN ids, like \"100-199\"",
                "t.toml:5:25: bridge \"b\", port \"eth0\": `trunk` entry \"a-b\": expected an inclusive range \"A-B\" of VLAN ids, like \"100-199\"",
                "t.toml:5:32: bridge \"b\", port \"eth0\": `trunk` entry \"1..5\": expected an inclusive range \"A-B\" of VLAN ids, like \"100-199\"",
            ],
        ),
        (
            "access MAC with another VLAN",
            "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"vif1.0\"\naccess = 10\nmacs = [\"00:16:3e:00:00:01@10\", \"00:16:3e:00:00:02@11\"]\n",
            &[
                "t.toml:6:33: bridge \"b\", port \"vif1.0\": `macs` entry \"00:16:3e:00:00:02@11\": VLAN 11 is not the port's access VLAN 10 (write \"00:16:3e:00:00:02\" or \"00:16:3e:00:00:02@10\")",
            ],
        ),
        (
            "trunk MAC without VLAN and no native",
            "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth1\"\ntrunk = [10, 20]\nmacs = [\"02:00:00:00:00:fe\"]\n",
            &[
                "t.toml:6:9: bridge \"b\", port \"eth1\": `macs` entry \"02:00:00:00:00:fe\": a trunk port without `native_vlan` needs \"MAC@VLAN\"",
            ],
        ),
        (
            "trunk MAC on a VLAN the port does not carry",
            "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth1\"\ntrunk = [\"10-20\"]\nmacs = [\"02:00:00:00:00:fe@21\"]\n",
            &[
                "t.toml:6:9: bridge \"b\", port \"eth1\": `macs` entry \"02:00:00:00:00:fe@21\": VLAN 21 is not carried by this trunk port",
            ],
        ),
        (
            "group and zero MACs",
            "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\naccess = 1\nmacs = [\"01:00:5e:00:00:01\", \"ff:ff:ff:ff:ff:ff\", \"00:00:00:00:00:00\", \"33-33-00-00-00-01\"]\n",
            &[
                "t.toml:6:9: bridge \"b\", port \"eth0\": `macs` entry \"01:00:5e:00:00:01\": 01:00:5e:00:00:01 is a multicast address; static entries must be unicast",
                "t.toml:6:30: bridge \"b\", port \"eth0\": `macs` entry \"ff:ff:ff:ff:ff:ff\": ff:ff:ff:ff:ff:ff is the broadcast address; static entries must be unicast",
                "t.toml:6:51: bridge \"b\", port \"eth0\": `macs` entry \"00:00:00:00:00:00\": 00:00:00:00:00:00 is the all-zero address; static entries must be unicast",
                "t.toml:6:72: bridge \"b\", port \"eth0\": `macs` entry \"33-33-00-00-00-01\": 33:33:00:00:00:01 is a multicast address; static entries must be unicast",
            ],
        ),
        (
            "malformed MAC entries",
            "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\naccess = 1\nmacs = [\"00:16:3e:00:01\", \"00:16:3e:00:00:01@\", \"00:16:3e:00:00:01@x1\", \"00:16:3e:00:00:01@4095\", \"00:16:3e:00:00:01@1@1\"]\n",
            &[
                "t.toml:6:9: bridge \"b\", port \"eth0\": `macs` entry \"00:16:3e:00:01\": \"00:16:3e:00:01\" is not a MAC address (expected six two-digit hex octets separated by ':' or '-', like 00:16:3e:00:00:01)",
                "t.toml:6:27: bridge \"b\", port \"eth0\": `macs` entry \"00:16:3e:00:00:01@\": after '@', \"\" is not a decimal VLAN id",
                "t.toml:6:49: bridge \"b\", port \"eth0\": `macs` entry \"00:16:3e:00:00:01@x1\": after '@', \"x1\" is not a decimal VLAN id",
                "t.toml:6:73: bridge \"b\", port \"eth0\": `macs` entry \"00:16:3e:00:00:01@4095\": after '@', 4095 is not a VLAN id (1-4094)",
                "t.toml:6:99: bridge \"b\", port \"eth0\": `macs` entry \"00:16:3e:00:00:01@1@1\": after '@', \"1@1\" is not a decimal VLAN id",
            ],
        ),
        (
            "same MAC twice on one port",
            "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth1\"\ntrunk = [5]\nnative_vlan = 7\nmacs = [\"02:00:00:00:00:01\", \"02-00-00-00-00-01@7\"]\n",
            &[
                "t.toml:7:30: bridge \"b\", port \"eth1\": `macs` entry \"02-00-00-00-00-01@7\": static MAC 02:00:00:00:00:01 in VLAN 7 is already given at line 7 (port \"eth1\"); each MAC may appear once per VLAN of a bridge",
            ],
        ),
        (
            "columns count characters, not bytes",
            "[[bridge]]\nname = \"b\"\nport = [{ interface = \"é\", access = 0 }]\n",
            &["t.toml:3:37: bridge \"b\", port \"é\": `access` = 0 is not a VLAN id (1-4094)"],
        ),
    ];

    #[test]
    fn semantic_errors_name_line_column_and_field() {
        for &(what, text, expected) in SEMANTIC_CASES {
            assert_eq!(errors(text), expected, "case: {what}");
        }
    }

    #[test]
    fn structural_and_syntax_errors_carry_line_and_column() {
        let cases: &[(&str, &str, &[&str])] = &[
            (
                "unknown top-level key",
                "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\naccess = 1\n\n[agnet]\n",
                &["t.toml:7:2: unknown field `agnet`, expected `agent` or `bridge`"],
            ),
            (
                "unknown [agent] key",
                "[agent]\npin-dir = \"/x\"\n",
                &[
                    "t.toml:2:1: unknown field `pin-dir`, expected one of `pin_dir`, `socket`, `fdb_max_entries`",
                ],
            ),
            (
                "unknown bridge key",
                "[[bridge]]\nname = \"b\"\ntpid = 0x8100\n",
                &[
                    "t.toml:3:1: unknown field `tpid`, expected one of `name`, `vlan_protocol`, `fdb_aging_secs`, `mtu`, `allow_mtu_mismatch`, `port`, `host`",
                ],
            ),
            (
                "missing interface",
                "[[bridge]]\nname = \"b\"\n[[bridge.port]]\naccess = 1\n",
                &["t.toml:3:1: missing field `interface`"],
            ),
            (
                "access as a string",
                "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\naccess = \"10\"\n",
                &["t.toml:5:10: invalid type: string \"10\", expected i64"],
            ),
            (
                "trunk item of the wrong type",
                "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\ntrunk = [1, 2.5]\n",
                &[
                    "t.toml:5:13: invalid type: floating point `2.5`, expected a VLAN id (integer) or a range \"A-B\" (string)",
                ],
            ),
            (
                "syntax errors, one per line, in file order",
                "[[bridge]]\nname = \"b\nvlan_protocol = 802.1Q\n",
                &[
                    "t.toml:2:10: invalid basic string, expected `\"`",
                    "t.toml:3:22: invalid float, expected nothing",
                ],
            ),
            (
                "single brackets instead of an array of tables",
                "[bridge]\nname = \"b\"\n",
                &[
                    "t.toml:1:1: invalid type: map, expected an array of tables (write [[bridge]] \
                   and [[bridge.port]] with double brackets)",
                ],
            ),
            (
                "port as a single table",
                "[[bridge]]\nname = \"b\"\n[bridge.port]\ninterface = \"eth0\"\naccess = 1\n",
                &[
                    "t.toml:3:1: invalid type: map, expected an array of tables (write [[bridge]] \
                   and [[bridge.port]] with double brackets)",
                ],
            ),
            (
                "duplicate key",
                "[[bridge]]\nname = \"a\"\nname = \"b\"\n",
                &["t.toml:3:1: duplicate key"],
            ),
        ];
        for &(what, text, expected) in cases {
            assert_eq!(errors(text), expected, "case: {what}");
        }
    }

    #[test]
    fn all_problems_are_reported_in_file_order() {
        let text = "\
[agent]
pin_dir = \"relative\"

[[bridge]]
name = \"br 0\"
vlan_protocol = \"qinq\"

[[bridge.port]]
interface = \"eth1\"
trunk = [4095, \"9-3\"]
macs = [\"01:00:00:00:00:01@1\"]

[[bridge.port]]
interface = \"vif1.0\"
access = 10
native_vlan = 10

[[bridge]]
name = \"empty\"
";
        let lines = errors(text);
        assert_eq!(
            lines,
            [
                "t.toml:2:11: [agent]: `pin_dir` = \"relative\" is not an absolute path",
                "t.toml:5:8: bridge name \"br 0\" is invalid: use 1-15 characters of A-Z a-z 0-9 '_' '.' '-'",
                "t.toml:6:17: bridge \"br 0\": `vlan_protocol` = \"qinq\" is not \"802.1Q\" or \"802.1ad\"",
                "t.toml:10:10: bridge \"br 0\", port \"eth1\": `trunk` entry 4095 is not a VLAN id (1-4094)",
                "t.toml:10:16: bridge \"br 0\", port \"eth1\": `trunk` entry \"9-3\": range start 9 is greater than its end 3",
                "t.toml:11:9: bridge \"br 0\", port \"eth1\": `macs` entry \"01:00:00:00:00:01@1\": 01:00:00:00:00:01 is a multicast address; static entries must be unicast",
                "t.toml:16:15: bridge \"br 0\", port \"vif1.0\": `native_vlan` is only allowed with `trunk`; an access port is untagged in its `access` VLAN",
                "t.toml:19:8: bridge \"empty\" has no ports: add at least one [[bridge.port]] or a [bridge.host]",
            ]
        );
        // The Display of the error is the same lines joined by newlines.
        let err = Config::parse(text, "t.toml").unwrap_err();
        assert_eq!(err.to_string(), lines.join("\n"));
    }

    #[test]
    fn defaults_apply_when_keys_are_omitted() {
        let config =
            parse("[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\naccess = 7\n");
        assert_eq!(
            config,
            Config {
                pin_dir: PathBuf::from(DEFAULT_PIN_DIR),
                socket: PathBuf::from(DEFAULT_SOCKET),
                fdb_max_entries: DEFAULT_FDB_MAX_ENTRIES,
                bridges: vec![BridgeSpec {
                    name: "b".to_owned(),
                    id: 1,
                    tpid: 0x8100,
                    fdb_aging_secs: DEFAULT_FDB_AGING_SECS,
                    mtu: None,
                    allow_mtu_mismatch: false,
                    ports: vec![access_port("eth0", 7, &[])],
                    host: None,
                }],
            }
        );
        assert_eq!(DEFAULT_PIN_DIR, "/sys/fs/bpf/xennet");
        assert_eq!(DEFAULT_SOCKET, "/run/xennet/xennet.sock");
        assert_eq!(DEFAULT_FDB_AGING_SECS, 300);
        assert_eq!(DEFAULT_MAC_LIMIT_ACCESS, 1024);
        assert_eq!(DEFAULT_MAC_LIMIT_TRUNK, 16384);
        // An [agent] table without pin_dir also keeps the default.
        let config = parse(
            "[agent]\n[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\naccess = 7\n",
        );
        assert_eq!(config.pin_dir, PathBuf::from("/sys/fs/bpf/xennet"));
    }

    #[test]
    fn explicit_settings_are_honoured() {
        let config = parse(
            "[agent]\npin_dir = \"/run/xennet/bpf\"\n\
             [[bridge]]\nname = \"a\"\nvlan_protocol = \"802.1Q\"\n[[bridge.port]]\ninterface = \"eth0\"\naccess = 1\nattach = \"xdp\"\n\
             [[bridge]]\nname = \"qinq\"\nvlan_protocol = \"802.1AD\"\n[[bridge.port]]\ninterface = \"eth1\"\naccess = 1\nattach = \"xdp-generic\"\n\
             [[bridge]]\nname = \"c\"\nvlan_protocol = \"802.1q\"\n[[bridge.port]]\ninterface = \"eth2\"\naccess = 1\nattach = \"auto\"\n",
        );
        assert_eq!(config.pin_dir, PathBuf::from("/run/xennet/bpf"));
        let summary: Vec<(&str, u32, u16, &str, AttachMode)> = config
            .bridges
            .iter()
            .map(|b| {
                (
                    b.name.as_str(),
                    b.id,
                    b.tpid,
                    b.ports[0].interface.as_str(),
                    b.ports[0].attach,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("a", 1, 0x8100, "eth0", AttachMode::Xdp),
                ("qinq", 2, 0x88a8, "eth1", AttachMode::XdpGeneric),
                ("c", 3, 0x8100, "eth2", AttachMode::Auto),
            ]
        );
    }

    #[test]
    fn trunk_ranges_and_native_vlan() {
        let config = parse(
            "[[bridge]]\nname = \"b\"\n\
             [[bridge.port]]\ninterface = \"eth0\"\ntrunk = [10, \"20-22\", \" 30 - 31 \", \"5-5\", 21, \"1-1\", \"4094-4094\"]\nnative_vlan = 99\nmacs = [\"02:00:00:00:00:01\", \"02:00:00:00:00:01@21\"]\n\
             [[bridge.port]]\ninterface = \"eth1\"\ntrunk = []\nnative_vlan = 3\n",
        );
        let ports = &config.bridges[0].ports;
        assert_eq!(
            ports[0].mode,
            PortMode::Trunk {
                vlans: vlans(&[1, 5, 10, 20, 21, 22, 30, 31, 99, 4094]),
                native: Some(99),
            }
        );
        assert_eq!(
            ports[0].macs,
            [
                (mac("02:00:00:00:00:01"), 99),
                (mac("02:00:00:00:00:01"), 21)
            ]
        );
        assert_eq!(
            ports[1].mode,
            PortMode::Trunk {
                vlans: vlans(&[3]),
                native: Some(3),
            }
        );
        // A full range is accepted and expanded.
        let config = parse(
            "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\ntrunk = [\"1-4094\"]\n",
        );
        let PortMode::Trunk { vlans, native } = &config.bridges[0].ports[0].mode else {
            panic!("expected a trunk");
        };
        assert_eq!(
            (vlans.len(), vlans.first(), vlans.last(), *native),
            (4094, Some(&1), Some(&4094), None)
        );
    }

    #[test]
    fn same_mac_on_other_vlans_or_bridges_is_fine() {
        let config = parse(
            "[[bridge]]\nname = \"a\"\n\
             [[bridge.port]]\ninterface = \"eth0\"\ntrunk = [1, 2]\nmacs = [\"02:00:00:00:00:01@1\", \"02:00:00:00:00:01@2\"]\n\
             [[bridge]]\nname = \"b\"\n\
             [[bridge.port]]\ninterface = \"eth1\"\naccess = 1\nmacs = [\"02:00:00:00:00:01\"]\n",
        );
        let all: Vec<(u32, MacAddr, u16)> = config
            .bridges
            .iter()
            .flat_map(|b| {
                b.ports
                    .iter()
                    .flat_map(move |p| p.macs.iter().map(move |&(m, v)| (b.id, m, v)))
            })
            .collect();
        let m = mac("02:00:00:00:00:01");
        assert_eq!(all, [(1, m, 1), (1, m, 2), (2, m, 1)]);
    }

    #[test]
    fn mac_parsing_edge_cases() {
        let good: &[(&str, [u8; 6])] = &[
            ("00:16:3e:00:00:01", [0x00, 0x16, 0x3e, 0, 0, 0x01]),
            ("00:16:3E:0A:Bc:fF", [0x00, 0x16, 0x3e, 0x0a, 0xbc, 0xff]),
            ("02-00-00-00-00-fe", [0x02, 0, 0, 0, 0, 0xfe]),
            ("ff:ff:ff:ff:ff:ff", [0xff; 6]),
        ];
        for &(text, octets) in good {
            assert_eq!(text.parse::<MacAddr>(), Ok(MacAddr(octets)), "{text}");
        }
        let bad = [
            "",
            "00:16:3e:00:00",
            "00:16:3e:00:00:01:02",
            "0:16:3e:00:00:01",
            "000:16:3e:00:00:01",
            "00:16-3e:00:00:01",
            "00:16:3e:00:00:0g",
            "+0:16:3e:00:00:01",
            "00:16:3e:00:00:01 ",
            "00.16.3e.00.00.01",
            "0016.3e00.0001",
            "00:16:3e:00:00:",
            "é0:16:3e:00:00:01",
        ];
        for text in bad {
            assert_eq!(
                text.parse::<MacAddr>(),
                Err(format!(
                    "{text:?} is not a MAC address (expected six two-digit hex octets separated \
                     by ':' or '-', like 00:16:3e:00:00:01)"
                )),
                "{text}"
            );
        }
        assert_eq!(
            MacAddr([0x02, 0xab, 0, 0x0c, 0xde, 0xf0]).to_string(),
            "02:ab:00:0c:de:f0"
        );
        assert_eq!(mac("00-16-3E-00-00-01").to_string(), "00:16:3e:00:00:01");
        let flags = |m: MacAddr| (m.is_multicast(), m.is_broadcast(), m.is_zero());
        assert_eq!(flags(mac("ff:ff:ff:ff:ff:ff")), (true, true, false));
        assert_eq!(flags(mac("01:00:5e:00:00:01")), (true, false, false));
        assert_eq!(flags(mac("00:00:00:00:00:00")), (false, false, true));
        assert_eq!(flags(mac("fe:ff:ff:ff:ff:ff")), (false, false, false));
    }

    #[test]
    fn attach_mode_spelling() {
        for (mode, text) in [
            (AttachMode::Auto, "auto"),
            (AttachMode::Xdp, "xdp"),
            (AttachMode::XdpGeneric, "xdp-generic"),
            (AttachMode::Tc, "tc"),
        ] {
            assert_eq!(mode.to_string(), text);
            assert_eq!(text.parse::<AttachMode>(), Ok(mode));
        }
        assert_eq!(
            "generic".parse::<AttachMode>(),
            Err("\"generic\" is not one of \"auto\", \"xdp\", \"xdp-generic\", \"tc\"".to_owned())
        );
    }

    #[test]
    fn port_mode_queries() {
        let access = PortMode::Access { vlan: 10 };
        let trunk = PortMode::Trunk {
            vlans: vlans(&[10, 20, 30]),
            native: Some(30),
        };
        let tagged_only = PortMode::Trunk {
            vlans: vlans(&[10]),
            native: None,
        };
        // (mode, vlan, carries, egress_untagged)
        let cases = [
            (&access, 10, true, true),
            (&access, 20, false, false),
            (&trunk, 10, true, false),
            (&trunk, 30, true, true),
            (&trunk, 40, false, false),
            (&tagged_only, 10, true, false),
            (&tagged_only, 1, false, false),
        ];
        for (mode, vlan, carries, untagged) in cases {
            assert_eq!(mode.carries(vlan), carries, "{mode:?} carries {vlan}");
            assert_eq!(
                mode.egress_untagged(vlan),
                untagged,
                "{mode:?} untagged {vlan}"
            );
        }
    }

    #[test]
    fn limits_on_bridges_and_ports() {
        use std::fmt::Write as _;

        let port = |i: usize| format!("[[bridge.port]]\ninterface = \"p{i}\"\naccess = 1\n");
        // One bridge of one port per index.
        let bridges = |count: usize| {
            let mut text = String::new();
            for i in 0..count {
                write!(text, "[[bridge]]\nname = \"b{i}\"\n{}", port(i)).unwrap();
            }
            text
        };
        // 257 bridges: the 257th bridge header is reported.
        assert_eq!(
            errors(&bridges(MAX_BRIDGES + 1)),
            ["t.toml:1281:1: too many bridges: 257 defined, at most 256 are supported"]
        );
        // Exactly 256 bridges are fine.
        assert_eq!(parse(&bridges(MAX_BRIDGES)).bridges.len(), 256);

        // 4097 ports over two bridges: the 4097th port header is reported.
        let ports = |range: std::ops::Range<usize>| range.map(port).collect::<String>();
        let text = format!(
            "[[bridge]]\nname = \"a\"\n{}[[bridge]]\nname = \"b\"\n{}",
            ports(0..2000),
            ports(2000..MAX_PORTS + 1)
        );
        assert_eq!(
            errors(&text),
            [
                "t.toml:12293:1: too many ports: 4097 defined over all bridges (each [bridge.host] counts as one), at most 4096 are supported"
            ]
        );
        let text = format!(
            "[[bridge]]\nname = \"a\"\n{}[[bridge]]\nname = \"b\"\n{}",
            ports(0..2000),
            ports(2000..MAX_PORTS)
        );
        let config = parse(&text);
        assert_eq!(
            config.bridges.iter().map(|b| b.ports.len()).sum::<usize>(),
            4096
        );
    }

    #[test]
    fn load_reads_files_and_reports_read_errors() {
        let dir = std::env::temp_dir().join(format!("xennet-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("seed.toml");
        std::fs::write(&good, SEED).unwrap();
        assert_eq!(
            Config::load(&good).unwrap(),
            Config::parse(SEED, "x").unwrap()
        );

        let bad = dir.join("bad.toml");
        std::fs::write(&bad, "[[bridge]]\nname = \"b\"\n").unwrap();
        assert_eq!(
            Config::load(&bad).unwrap_err().to_string(),
            format!(
                "{}:2:8: bridge \"b\" has no ports: add at least one [[bridge.port]] or a [bridge.host]",
                bad.display()
            )
        );

        let missing = dir.join("missing.toml");
        match Config::load(&missing) {
            Err(ConfigError::Read { path, source }) => {
                assert_eq!(path, missing.display().to_string());
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            }
            other => panic!("expected a read error, got {other:?}"),
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn line_col_counts_lines_and_characters() {
        let text = "ab\nçd\n\nxyz";
        let cases = [
            (0, (1, 1)),
            (2, (1, 3)),
            (3, (2, 1)),
            (5, (2, 2)),
            (7, (3, 1)),
            (8, (4, 1)),
            (11, (4, 4)),
            (99, (4, 4)),
        ];
        for (offset, expected) in cases {
            assert_eq!(line_col(text, offset), expected, "offset {offset}");
        }
    }

    // -----------------------------------------------------------------------
    // [agent] socket, fdb_aging_secs, mac_limit, [bridge.host]
    // -----------------------------------------------------------------------

    const INTERNAL_ONLY: &str = include_str!("../../examples/internal-only.toml");
    const SEED_FULL: &str = include_str!("../../examples/seed-full.toml");
    const NIC_BRIDGED: &str = include_str!("../../examples/nic-bridged.toml");

    /// `[[bridge]] name = "b"` with one access port eth0 in VLAN 1 (lines 1-5).
    const B_ETH0: &str =
        "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\naccess = 1\n";

    fn port(interface: &str, mode: PortMode, mac_limit: u32) -> PortSpec {
        PortSpec {
            interface: interface.to_owned(),
            mode,
            attach: AttachMode::Auto,
            macs: Vec::new(),
            mac_limit,
        }
    }

    fn trunk(ids: &[u16], native: Option<u16>) -> PortMode {
        PortMode::Trunk {
            vlans: vlans(ids),
            native,
        }
    }

    fn bridge(name: &str, id: u32, ports: Vec<PortSpec>, host: Option<HostSpec>) -> BridgeSpec {
        BridgeSpec {
            name: name.to_owned(),
            id,
            tpid: 0x8100,
            fdb_aging_secs: 300,
            mtu: None,
            allow_mtu_mismatch: false,
            ports,
            host,
        }
    }

    fn host(interface: &str, peer: &str, vlan: u16, addresses: &[&str]) -> HostSpec {
        HostSpec {
            interface: interface.to_owned(),
            peer: peer.to_owned(),
            mode: PortMode::Access { vlan },
            addresses: addresses.iter().map(|&a| a.to_owned()).collect(),
            mac: None,
            mac_limit: 1024,
        }
    }

    #[test]
    fn internal_only_example() {
        let config = Config::parse(INTERNAL_ONLY, "examples/internal-only.toml").unwrap();
        assert_eq!(
            config,
            Config {
                pin_dir: PathBuf::from("/sys/fs/bpf/xennet"),
                socket: PathBuf::from("/run/xennet/xennet.sock"),
                fdb_max_entries: DEFAULT_FDB_MAX_ENTRIES,
                bridges: vec![bridge(
                    "internal",
                    1,
                    vec![
                        access_port("vif1.1", 10, &[]),
                        access_port("vif2.1", 10, &[])
                    ],
                    None,
                )],
            }
        );
    }

    #[test]
    fn seed_full_example() {
        let config = Config::parse(SEED_FULL, "examples/seed-full.toml").unwrap();
        assert_eq!(
            config,
            Config {
                pin_dir: PathBuf::from("/sys/fs/bpf/xennet"),
                socket: PathBuf::from("/run/xennet/xennet.sock"),
                fdb_max_entries: DEFAULT_FDB_MAX_ENTRIES,
                bridges: vec![
                    bridge(
                        "trunk",
                        1,
                        vec![
                            port("eth1", trunk(&[4093, 4094], None), 16384),
                            access_port("vif1.0", 4094, &[]),
                            access_port("vif2.0", 4094, &[]),
                            access_port("vif3.0", 4093, &[]),
                            port("vif4.0", trunk(&[4093, 4094], None), 16384),
                        ],
                        Some(host("mgmt0", "xnh-trunk", 4094, &["10.94.0.254/16"])),
                    ),
                    bridge(
                        "internal",
                        2,
                        vec![
                            access_port("vif1.1", 10, &[]),
                            access_port("vif2.1", 10, &[])
                        ],
                        None,
                    ),
                ],
            }
        );
        // Learning does it: no static MAC anywhere.
        assert!(
            config
                .bridges
                .iter()
                .all(|b| b.ports.iter().all(|p| p.macs.is_empty()))
        );
    }

    #[test]
    fn nic_bridged_example() {
        let config = Config::parse(NIC_BRIDGED, "examples/nic-bridged.toml").unwrap();
        assert_eq!(
            config,
            Config {
                pin_dir: PathBuf::from("/sys/fs/bpf/xennet"),
                socket: PathBuf::from("/run/xennet/xennet.sock"),
                fdb_max_entries: DEFAULT_FDB_MAX_ENTRIES,
                bridges: vec![bridge(
                    "lan",
                    1,
                    vec![access_port("eth0", 1, &[]), access_port("vif1.0", 1, &[])],
                    Some(host("eth0br", "xnh-lan", 1, &[])),
                )],
            }
        );
    }

    #[test]
    fn socket_is_honoured_and_validated() {
        let with_agent = |agent: &str| format!("[agent]\n{agent}\n{B_ETH0}");
        assert_eq!(
            parse(&with_agent("socket = \"/var/run/x.sock\"")).socket,
            PathBuf::from("/var/run/x.sock")
        );
        // 107 bytes is the longest path that fits in sun_path.
        let longest = format!("/{}", "s".repeat(106));
        assert_eq!(
            parse(&with_agent(&format!("socket = \"{longest}\""))).socket,
            PathBuf::from(&longest)
        );
        // Beside pin_dir (not inside it) is fine.
        assert_eq!(
            parse(&with_agent("socket = \"/sys/fs/bpf/xennet.sock\"")).socket,
            PathBuf::from("/sys/fs/bpf/xennet.sock")
        );
        let too_long = format!("/{}", "s".repeat(107));
        let cases: &[(&str, String)] = &[
            (
                "socket = \"xennet.sock\"",
                "t.toml:2:10: [agent]: `socket` = \"xennet.sock\" is not an absolute path"
                    .to_owned(),
            ),
            (
                "socket = \"/run/xennet/\"",
                "t.toml:2:10: [agent]: `socket` = \"/run/xennet/\" ends with '/': it must name the \
                 socket file, not a directory"
                    .to_owned(),
            ),
            (
                "socket = \"/run/x\\u0000y\"",
                "t.toml:2:10: [agent]: `socket` = \"/run/x\\0y\" contains a NUL character".to_owned(),
            ),
            (
                &format!("socket = \"{too_long}\""),
                format!(
                    "t.toml:2:10: [agent]: `socket` = \"{too_long}\" is 108 bytes long, a Unix \
                     socket path may have at most 107"
                ),
            ),
            (
                "socket = \"/sys/fs/bpf/xennet/ctl.sock\"",
                "t.toml:2:10: [agent]: `socket` = \"/sys/fs/bpf/xennet/ctl.sock\" lies inside \
                 `pin_dir` \"/sys/fs/bpf/xennet\", a bpf filesystem, which cannot hold a socket"
                    .to_owned(),
            ),
            (
                "pin_dir = \"/run\"",
                "t.toml:2:11: [agent]: `pin_dir` = \"/run\" contains the default `socket` \
                 \"/run/xennet/xennet.sock\", but a bpf filesystem cannot hold a socket: set \
                 `socket`"
                    .to_owned(),
            ),
            (
                "pin_dir = \"/sys/fs/bpf/x\"\nsocket = \"/sys/fs/bpf/x/s\"",
                "t.toml:3:10: [agent]: `socket` = \"/sys/fs/bpf/x/s\" lies inside `pin_dir` \
                 \"/sys/fs/bpf/x\", a bpf filesystem, which cannot hold a socket"
                    .to_owned(),
            ),
        ];
        for (agent, expected) in cases {
            assert_eq!(errors(&with_agent(agent)), [expected.as_str()], "{agent}");
        }
    }

    #[test]
    fn fdb_max_entries_default_and_bounds() {
        let with = |v: &str| format!("[agent]\nfdb_max_entries = {v}\n{B_ETH0}");
        assert_eq!(parse(B_ETH0).fdb_max_entries, DEFAULT_FDB_MAX_ENTRIES);
        assert_eq!(parse(&with("1048576")).fdb_max_entries, 1_048_576);
        assert_eq!(parse(&with("1024")).fdb_max_entries, 1024);
        for bad in ["1023", "4194305", "-1"] {
            let err = Config::parse(&with(bad), "t.toml")
                .map(|_| ())
                .unwrap_err()
                .to_string();
            assert_eq!(
                err,
                format!(
                    "t.toml:2:19: [agent]: `fdb_max_entries` = {bad} is out of range (1024-4194304)"
                )
            );
        }
    }

    #[test]
    fn fdb_aging_secs_default_bounds_and_errors() {
        let with_aging = |value: &str| {
            format!(
                "[[bridge]]\nname = \"b\"\nfdb_aging_secs = {value}\n[[bridge.port]]\n\
                 interface = \"eth0\"\naccess = 1\n"
            )
        };
        assert_eq!(parse(B_ETH0).bridges[0].fdb_aging_secs, 300);
        for (value, secs) in [("0", 0), ("1", 1), ("300", 300), ("1000000", 1_000_000)] {
            assert_eq!(parse(&with_aging(value)).bridges[0].fdb_aging_secs, secs);
        }
        for value in ["-1", "1000001", "4294967296"] {
            assert_eq!(
                errors(&with_aging(value)),
                [format!(
                    "t.toml:3:18: bridge \"b\": `fdb_aging_secs` = {value} is out of range \
                     (0-1000000)"
                )]
            );
        }
    }

    #[test]
    fn mac_limit_defaults_per_mode_and_bounds() {
        assert_eq!(PortMode::Access { vlan: 1 }.default_mac_limit(), 1024);
        assert_eq!(trunk(&[1], None).default_mac_limit(), 16384);
        let config = parse(
            "[[bridge]]\nname = \"b\"\n\
             [[bridge.port]]\ninterface = \"p1\"\naccess = 1\n\
             [[bridge.port]]\ninterface = \"p2\"\ntrunk = [1]\n\
             [[bridge.port]]\ninterface = \"p3\"\ntrunk = []\nnative_vlan = 1\n\
             [[bridge.port]]\ninterface = \"p4\"\naccess = 1\nmac_limit = 0\n\
             [[bridge.port]]\ninterface = \"p5\"\ntrunk = [1]\nmac_limit = 1000000\n\
             [[bridge.port]]\ninterface = \"p6\"\naccess = 1\nmac_limit = 20000\n",
        );
        let limits: Vec<(&str, u32)> = config.bridges[0]
            .ports
            .iter()
            .map(|p| (p.interface.as_str(), p.mac_limit))
            .collect();
        assert_eq!(
            limits,
            [
                ("p1", 1024),
                ("p2", 16384),
                ("p3", 16384),
                ("p4", 0),
                ("p5", 1_000_000),
                ("p6", 20000)
            ]
        );
        for value in ["-1", "1000001"] {
            assert_eq!(
                errors(&format!("{B_ETH0}mac_limit = {value}\n")),
                [format!(
                    "t.toml:6:13: bridge \"b\", port \"eth0\": `mac_limit` = {value} is out of \
                     range (0-1000000)"
                )]
            );
        }
    }

    #[test]
    fn host_port_all_keys() {
        let config = parse(
            "[[bridge]]\nname = \"trunk\"\n\
             [[bridge.port]]\ninterface = \"eth1\"\ntrunk = [4093, 4094]\n\
             macs = [\"02:00:00:00:00:fe@4094\", \"02:00:00:00:94:10@4093\"]\n\
             [bridge.host]\ninterface = \"mgmt0\"\npeer = \"mgmt0-br\"\naccess = 4094\n\
             addresses = [\"10.0.94.10/24\", \"fd00::10/64\", \"192.0.2.1/32\", \"fe80::1/128\", \"10.1.0.1/0\"]\n\
             mac = \"02-00-00-00-94-10\"\nmac_limit = 8\n",
        );
        assert_eq!(
            config.bridges[0].host,
            Some(HostSpec {
                interface: "mgmt0".to_owned(),
                peer: "mgmt0-br".to_owned(),
                mode: PortMode::Access { vlan: 4094 },
                addresses: vec![
                    "10.0.94.10/24".to_owned(),
                    "fd00::10/64".to_owned(),
                    "192.0.2.1/32".to_owned(),
                    "fe80::1/128".to_owned(),
                    "10.1.0.1/0".to_owned(),
                ],
                // 02:00:00:00:94:10 is static on eth1 in VLAN 4093 only: no clash.
                mac: Some(MacAddr([0x02, 0, 0, 0, 0x94, 0x10])),
                mac_limit: 8,
            })
        );
    }

    #[test]
    fn host_port_defaults_and_trunk_mode() {
        // A bridge with only a host port; the default peer is "xnh-" + name.
        let config = parse(
            "[[bridge]]\nname = \"mgmt\"\n[bridge.host]\ninterface = \"mgmt0\"\naccess = 4094\n",
        );
        assert_eq!(
            config.bridges,
            [bridge(
                "mgmt",
                1,
                vec![],
                Some(host("mgmt0", "xnh-mgmt", 4094, &[]))
            )]
        );
        // A trunk host port: native VLAN joins the set, trunk default mac_limit.
        let config = parse(
            "[[bridge]]\nname = \"b\"\n\
             [bridge.host]\ninterface = \"dom0\"\ntrunk = [\"10-12\"]\nnative_vlan = 1\n",
        );
        let spec = config.bridges[0].host.as_ref().unwrap();
        assert_eq!(
            (&spec.peer, &spec.mode, spec.mac_limit, spec.mac),
            (
                &"xnh-b".to_owned(),
                &trunk(&[1, 10, 11, 12], Some(1)),
                16384,
                None
            )
        );
        // An inline table works too, and the host may come before the ports.
        let config = parse(
            "[[bridge]]\nname = \"b\"\nhost = { interface = \"h\", access = 2 }\n\
             [[bridge.port]]\ninterface = \"eth0\"\naccess = 2\n",
        );
        assert_eq!(config.bridges[0].host, Some(host("h", "xnh-b", 2, &[])));
        assert_eq!(config.bridges[0].ports.len(), 1);
        // The longest bridge name whose default peer fits: 11 characters.
        let config = parse(
            "[[bridge]]\nname = \"abcdefghijk\"\n[bridge.host]\ninterface = \"h\"\naccess = 1\n",
        );
        assert_eq!(
            config.bridges[0].host.as_ref().unwrap().peer,
            "xnh-abcdefghijk"
        );
        // A longer one needs an explicit peer.
        let config = parse(
            "[[bridge]]\nname = \"abcdefghijkl\"\n[bridge.host]\ninterface = \"h\"\npeer = \"p\"\naccess = 1\n",
        );
        assert_eq!(config.bridges[0].host.as_ref().unwrap().peer, "p");
        // A static MAC in a VLAN the host port does not carry is no clash.
        let config = parse(&format!(
            "{B_ETH0}macs = [\"02:00:00:00:00:01\"]\n[bridge.host]\ninterface = \"h\"\naccess = 2\nmac = \"02:00:00:00:00:01\"\n"
        ));
        assert_eq!(
            config.bridges[0].host.as_ref().unwrap().mac,
            Some(mac("02:00:00:00:00:01"))
        );
    }

    #[test]
    fn bridge_names_dot_and_dot_dot_are_rejected() {
        for name in [".", ".."] {
            assert_eq!(
                errors(&format!(
                    "[[bridge]]\nname = \"{name}\"\n[[bridge.port]]\ninterface = \"eth0\"\naccess = 1\n"
                )),
                [format!(
                    "t.toml:2:8: bridge name \"{name}\" is invalid: \".\" and \"..\" are reserved"
                )]
            );
        }
        for name in ["...", ".a", "a..", "_"] {
            let text = format!(
                "[[bridge]]\nname = \"{name}\"\n[[bridge.port]]\ninterface = \"eth0\"\naccess = 1\n"
            );
            assert_eq!(parse(&text).bridges[0].name, name);
        }
    }

    /// (what, config text, expected error lines) for the host port.
    const HOST_CASES: &[(&str, &str, &[&str])] = &[
        (
            "host without access or trunk",
            "[[bridge]]\nname = \"b\"\n[bridge.host]\ninterface = \"mgmt0\"\n",
            &[
                "t.toml:3:1: bridge \"b\", host port \"mgmt0\": give exactly one of `access` (one VLAN id) or `trunk` (a list of VLANs)",
            ],
        ),
        (
            "host with access and trunk",
            "[[bridge]]\nname = \"b\"\n[bridge.host]\ninterface = \"mgmt0\"\naccess = 1\ntrunk = [2]\n",
            &[
                "t.toml:6:9: bridge \"b\", host port \"mgmt0\": `access` and `trunk` are mutually exclusive: give exactly one",
            ],
        ),
        (
            "host access with native_vlan",
            "[[bridge]]\nname = \"b\"\n[bridge.host]\ninterface = \"mgmt0\"\naccess = 1\nnative_vlan = 1\n",
            &[
                "t.toml:6:15: bridge \"b\", host port \"mgmt0\": `native_vlan` is only allowed with `trunk`; an access port is untagged in its `access` VLAN",
            ],
        ),
        (
            "host access 4095",
            "[[bridge]]\nname = \"b\"\n[bridge.host]\ninterface = \"mgmt0\"\naccess = 4095\n",
            &[
                "t.toml:5:10: bridge \"b\", host port \"mgmt0\": `access` = 4095 is not a VLAN id (1-4094)",
            ],
        ),
        (
            "host empty trunk",
            "[[bridge]]\nname = \"b\"\n[bridge.host]\ninterface = \"mgmt0\"\ntrunk = []\n",
            &[
                "t.toml:5:9: bridge \"b\", host port \"mgmt0\": `trunk` is empty and there is no `native_vlan`: the port would carry no VLAN",
            ],
        ),
        (
            "host interface invalid",
            "[[bridge]]\nname = \"b\"\n[bridge.host]\ninterface = \"mgmt/0\"\naccess = 1\n",
            &[
                "t.toml:4:13: bridge \"b\", host port: `interface` = \"mgmt/0\" is not a valid Linux interface name: it contains '/'",
            ],
        ),
        (
            "host peer invalid",
            "[[bridge]]\nname = \"b\"\n[bridge.host]\ninterface = \"mgmt0\"\npeer = \"veth peer\"\naccess = 1\n",
            &[
                "t.toml:5:8: bridge \"b\", host port \"mgmt0\": `peer` = \"veth peer\" is not a valid Linux interface name: it contains ' '",
            ],
        ),
        (
            "host peer too long",
            "[[bridge]]\nname = \"b\"\n[bridge.host]\ninterface = \"mgmt0\"\npeer = \"xnh-0123456789ab\"\naccess = 1\n",
            &[
                "t.toml:5:8: bridge \"b\", host port \"mgmt0\": `peer` = \"xnh-0123456789ab\" is not a valid Linux interface name: it is 16 bytes long, at most 15 are allowed",
            ],
        ),
        (
            "default peer too long",
            "[[bridge]]\nname = \"abcdefghijkl\"\n[bridge.host]\ninterface = \"mgmt0\"\naccess = 1\n",
            &[
                "t.toml:3:1: bridge \"abcdefghijkl\", host port \"mgmt0\": the default `peer` \"xnh-abcdefghijkl\" (\"xnh-\" + bridge name) is not a valid Linux interface name: it is 16 bytes long, at most 15 are allowed; set `peer`",
            ],
        ),
        (
            "default peer of an invalid bridge name is not reported again",
            "[[bridge]]\nname = \"a/b\"\n[bridge.host]\ninterface = \"mgmt0\"\naccess = 1\n",
            &[
                "t.toml:2:8: bridge name \"a/b\" is invalid: use 1-15 characters of A-Z a-z 0-9 '_' '.' '-'",
            ],
        ),
        (
            "host mac_limit out of range",
            "[[bridge]]\nname = \"b\"\n[bridge.host]\ninterface = \"mgmt0\"\naccess = 1\nmac_limit = 1000001\n",
            &[
                "t.toml:6:13: bridge \"b\", host port \"mgmt0\": `mac_limit` = 1000001 is out of range (0-1000000)",
            ],
        ),
        (
            "host addresses",
            "[[bridge]]\nname = \"b\"\n[bridge.host]\ninterface = \"h\"\naccess = 1\naddresses = [\n\
             \"10.0.0.1\",\n\"10.0.0.300/24\",\n\"10.0.0.1/33\",\n\"fd00::1/129\",\n\"10.0.0.1/x\",\n\
             \"10.0.0.1/\",\n\"fd00::1/64/1\",\n\"10.0.0.2/0024\",\n\"fe80::1%eth0/64\",\n\" 10.0.0.3/24\",\n\
             \"224.0.0.1/4\",\n\"ff02::1/16\",\n\"0.0.0.0/0\",\n\"::/0\",\n\"255.255.255.255/32\",\n]\n",
            &[
                "t.toml:7:1: bridge \"b\", host port \"h\": `addresses` entry \"10.0.0.1\": expected ADDRESS/PREFIX, like \"10.0.94.10/24\" or \"fd00::10/64\"",
                "t.toml:8:1: bridge \"b\", host port \"h\": `addresses` entry \"10.0.0.300/24\": \"10.0.0.300\" is not an IPv4 or IPv6 address",
                "t.toml:9:1: bridge \"b\", host port \"h\": `addresses` entry \"10.0.0.1/33\": prefix length 33 is out of range for IPv4 (0-32)",
                "t.toml:10:1: bridge \"b\", host port \"h\": `addresses` entry \"fd00::1/129\": prefix length 129 is out of range for IPv6 (0-128)",
                "t.toml:11:1: bridge \"b\", host port \"h\": `addresses` entry \"10.0.0.1/x\": \"x\" is not a prefix length (0-32 for IPv4)",
                "t.toml:12:1: bridge \"b\", host port \"h\": `addresses` entry \"10.0.0.1/\": \"\" is not a prefix length (0-32 for IPv4)",
                "t.toml:13:1: bridge \"b\", host port \"h\": `addresses` entry \"fd00::1/64/1\": \"64/1\" is not a prefix length (0-128 for IPv6)",
                "t.toml:14:1: bridge \"b\", host port \"h\": `addresses` entry \"10.0.0.2/0024\": \"0024\" is not a prefix length (0-32 for IPv4)",
                "t.toml:15:1: bridge \"b\", host port \"h\": `addresses` entry \"fe80::1%eth0/64\": \"fe80::1%eth0\" is not an IPv4 or IPv6 address",
                "t.toml:16:1: bridge \"b\", host port \"h\": `addresses` entry \" 10.0.0.3/24\": \" 10.0.0.3\" is not an IPv4 or IPv6 address",
                "t.toml:17:1: bridge \"b\", host port \"h\": `addresses` entry \"224.0.0.1/4\": 224.0.0.1 is a multicast address, not an interface address",
                "t.toml:18:1: bridge \"b\", host port \"h\": `addresses` entry \"ff02::1/16\": ff02::1 is a multicast address, not an interface address",
                "t.toml:19:1: bridge \"b\", host port \"h\": `addresses` entry \"0.0.0.0/0\": 0.0.0.0 is the unspecified address, not an interface address",
                "t.toml:20:1: bridge \"b\", host port \"h\": `addresses` entry \"::/0\": :: is the unspecified address, not an interface address",
                "t.toml:21:1: bridge \"b\", host port \"h\": `addresses` entry \"255.255.255.255/32\": 255.255.255.255 is the broadcast address, not an interface address",
            ],
        ),
        (
            "host address listed twice",
            "[[bridge]]\nname = \"b\"\n[bridge.host]\ninterface = \"h\"\naccess = 1\n\
             addresses = [\"10.0.0.1/24\", \"fd00::1/64\", \"10.0.0.1/16\", \"fd00:0::1/48\"]\n",
            &[
                "t.toml:6:43: bridge \"b\", host port \"h\": `addresses` entry \"10.0.0.1/16\": address 10.0.0.1 is already listed as \"10.0.0.1/24\"",
                "t.toml:6:58: bridge \"b\", host port \"h\": `addresses` entry \"fd00:0::1/48\": address fd00::1 is already listed as \"fd00::1/64\"",
            ],
        ),
        (
            "host mac malformed",
            "[[bridge]]\nname = \"b\"\n[bridge.host]\ninterface = \"h\"\naccess = 1\nmac = \"02:00:00:00:00\"\n",
            &[
                "t.toml:6:7: bridge \"b\", host port \"h\": `mac` = \"02:00:00:00:00\" is not a MAC address (expected six two-digit hex octets separated by ':' or '-', like 00:16:3e:00:00:01)",
            ],
        ),
        (
            "host mac multicast",
            "[[bridge]]\nname = \"b\"\n[bridge.host]\ninterface = \"h\"\naccess = 1\nmac = \"01:00:5e:00:00:01\"\n",
            &[
                "t.toml:6:7: bridge \"b\", host port \"h\": `mac` = \"01:00:5e:00:00:01\": 01:00:5e:00:00:01 is a multicast address; dom0's side needs a unicast address",
            ],
        ),
        (
            "host mac broadcast",
            "[[bridge]]\nname = \"b\"\n[bridge.host]\ninterface = \"h\"\naccess = 1\nmac = \"FF:FF:FF:FF:FF:FF\"\n",
            &[
                "t.toml:6:7: bridge \"b\", host port \"h\": `mac` = \"FF:FF:FF:FF:FF:FF\": ff:ff:ff:ff:ff:ff is the broadcast address; dom0's side needs a unicast address",
            ],
        ),
        (
            "host mac zero",
            "[[bridge]]\nname = \"b\"\n[bridge.host]\ninterface = \"h\"\naccess = 1\nmac = \"00:00:00:00:00:00\"\n",
            &[
                "t.toml:6:7: bridge \"b\", host port \"h\": `mac` = \"00:00:00:00:00:00\": 00:00:00:00:00:00 is the all-zero address; dom0's side needs a unicast address",
            ],
        ),
        (
            "host mac is a static MAC of a port in a VLAN the host carries",
            "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth1\"\ntrunk = [1, 2, 3]\n\
             macs = [\"02:00:00:00:00:01@3\", \"02:00:00:00:00:01@2\"]\n\
             [bridge.host]\ninterface = \"h\"\ntrunk = [2, 3]\nmac = \"02:00:00:00:00:01\"\n",
            &[
                "t.toml:10:7: bridge \"b\", host port \"h\": `mac` = \"02:00:00:00:00:01\": 02:00:00:00:00:01 is a static MAC of port \"eth1\" in VLAN 3 (line 6); dom0's side would be unreachable in that VLAN",
            ],
        ),
        (
            "host interface is a port of the same bridge",
            "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\naccess = 1\n\
             [bridge.host]\ninterface = \"eth0\"\naccess = 1\n",
            &[
                "t.toml:7:13: bridge \"b\", host port \"eth0\": interface \"eth0\" is already a port of bridge \"b\" at line 4; each interface may appear only once in the file",
            ],
        ),
        (
            "port after the host uses the host interface",
            "[[bridge]]\nname = \"b\"\n[bridge.host]\ninterface = \"mgmt0\"\naccess = 1\n\
             [[bridge.port]]\ninterface = \"mgmt0\"\naccess = 1\n",
            &[
                "t.toml:7:13: bridge \"b\", port \"mgmt0\": interface \"mgmt0\" is already the host interface of bridge \"b\" at line 4; each interface may appear only once in the file",
            ],
        ),
        (
            "explicit peer is a port of another bridge",
            "[[bridge]]\nname = \"a\"\n[[bridge.port]]\ninterface = \"veth1\"\naccess = 1\n\
             [[bridge]]\nname = \"b\"\n[bridge.host]\ninterface = \"mgmt0\"\npeer = \"veth1\"\naccess = 1\n",
            &[
                "t.toml:10:8: bridge \"b\", host port \"mgmt0\": `peer` \"veth1\" is already a port of bridge \"a\" at line 4; each interface may appear only once in the file",
            ],
        ),
        (
            "default peer is a later port",
            "[[bridge]]\nname = \"b\"\n[bridge.host]\ninterface = \"mgmt0\"\naccess = 1\n\
             [[bridge.port]]\ninterface = \"xnh-b\"\naccess = 1\n",
            &[
                "t.toml:7:13: bridge \"b\", port \"xnh-b\": interface \"xnh-b\" is already the default host peer of bridge \"b\" at line 3; each interface may appear only once in the file",
            ],
        ),
        (
            "default peer is an earlier port",
            "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"xnh-b\"\naccess = 1\n\
             [bridge.host]\ninterface = \"mgmt0\"\naccess = 1\n",
            &[
                "t.toml:6:1: bridge \"b\", host port \"mgmt0\": the default `peer` \"xnh-b\" is already a port of bridge \"b\" at line 4; each interface may appear only once in the file",
            ],
        ),
        (
            "peer equal to the host interface",
            "[[bridge]]\nname = \"b\"\n[bridge.host]\ninterface = \"h\"\npeer = \"h\"\naccess = 1\n",
            &[
                "t.toml:5:8: bridge \"b\", host port \"h\": `peer` \"h\" is already the host interface of bridge \"b\" at line 4; each interface may appear only once in the file",
            ],
        ),
        (
            "one host interface in two bridges, peers clashing too",
            "[[bridge]]\nname = \"a\"\n[bridge.host]\ninterface = \"h\"\npeer = \"p\"\naccess = 1\n\
             [[bridge]]\nname = \"b\"\n[bridge.host]\ninterface = \"h\"\npeer = \"p\"\naccess = 1\n",
            &[
                "t.toml:10:13: bridge \"b\", host port \"h\": interface \"h\" is already the host interface of bridge \"a\" at line 4; each interface may appear only once in the file",
                "t.toml:11:8: bridge \"b\", host port \"h\": `peer` \"p\" is already the host peer of bridge \"a\" at line 5; each interface may appear only once in the file",
            ],
        ),
    ];

    #[test]
    fn host_port_errors_name_line_column_and_field() {
        for &(what, text, expected) in HOST_CASES {
            assert_eq!(errors(text), expected, "case: {what}");
        }
    }

    #[test]
    fn new_structural_errors() {
        let cases: &[(&str, &str, &[&str])] = &[
            (
                "host as an array of tables",
                "[[bridge]]\nname = \"b\"\n[[bridge.host]]\ninterface = \"h\"\naccess = 1\n",
                &[
                    "t.toml:3:1: invalid type: sequence, expected a table (write [bridge.host] with \
                   single brackets: a bridge has at most one host port)",
                ],
            ),
            (
                "host as a string",
                "[[bridge]]\nname = \"b\"\nhost = \"mgmt0\"\n",
                &[
                    "t.toml:3:8: invalid type: string \"mgmt0\", expected a table (write \
                   [bridge.host] with single brackets: a bridge has at most one host port)",
                ],
            ),
            (
                "unknown host key",
                "[[bridge]]\nname = \"b\"\n[bridge.host]\ninterface = \"h\"\naccess = 1\nattach = \"xdp\"\n",
                &[
                    "t.toml:6:1: unknown field `attach`, expected one of `interface`, `peer`, \
                   `access`, `trunk`, `native_vlan`, `addresses`, `mac`, `mac_limit`",
                ],
            ),
            (
                "host without interface",
                "[[bridge]]\nname = \"b\"\n[bridge.host]\naccess = 1\n",
                &["t.toml:3:1: missing field `interface`"],
            ),
            (
                "addresses as a string",
                "[[bridge]]\nname = \"b\"\n[bridge.host]\ninterface = \"h\"\naccess = 1\naddresses = \"10.0.0.1/24\"\n",
                &["t.toml:6:13: invalid type: string \"10.0.0.1/24\", expected a sequence"],
            ),
            (
                "fdb_aging_secs as a float",
                "[[bridge]]\nname = \"b\"\nfdb_aging_secs = 1.5\n",
                &["t.toml:3:18: invalid type: floating point `1.5`, expected i64"],
            ),
            (
                "mac_limit as a string",
                "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\naccess = 1\nmac_limit = \"1\"\n",
                &["t.toml:6:13: invalid type: string \"1\", expected i64"],
            ),
            (
                "socket as an integer",
                "[agent]\nsocket = 1\n",
                &["t.toml:2:10: invalid type: integer `1`, expected a string"],
            ),
        ];
        for &(what, text, expected) in cases {
            assert_eq!(errors(text), expected, "case: {what}");
        }
    }

    #[test]
    fn new_problems_are_all_reported_in_file_order() {
        let text = "\
[agent]
socket = \"run/xennet.sock\"

[[bridge]]
name = \"..\"
fdb_aging_secs = -300

[[bridge.port]]
interface = \"eth1\"
trunk = [1]
mac_limit = 2000000

[bridge.host]
interface = \"eth1\"
peer = \"\"
access = 0
addresses = [\"10.0.0.1/40\"]
mac = \"01:00:00:00:00:01\"
mac_limit = -1

[[bridge]]
name = \"nothing\"
";
        assert_eq!(
            errors(text),
            [
                "t.toml:2:10: [agent]: `socket` = \"run/xennet.sock\" is not an absolute path",
                "t.toml:5:8: bridge name \"..\" is invalid: \".\" and \"..\" are reserved",
                "t.toml:6:18: bridge \"..\": `fdb_aging_secs` = -300 is out of range (0-1000000)",
                "t.toml:11:13: bridge \"..\", port \"eth1\": `mac_limit` = 2000000 is out of range (0-1000000)",
                "t.toml:14:13: bridge \"..\", host port \"eth1\": interface \"eth1\" is already a port of bridge \"..\" at line 9; each interface may appear only once in the file",
                "t.toml:15:8: bridge \"..\", host port \"eth1\": `peer` = \"\" is not a valid Linux interface name: it is empty",
                "t.toml:16:10: bridge \"..\", host port \"eth1\": `access` = 0 is not a VLAN id (1-4094)",
                "t.toml:17:14: bridge \"..\", host port \"eth1\": `addresses` entry \"10.0.0.1/40\": prefix length 40 is out of range for IPv4 (0-32)",
                "t.toml:18:7: bridge \"..\", host port \"eth1\": `mac` = \"01:00:00:00:00:01\": 01:00:00:00:00:01 is a multicast address; dom0's side needs a unicast address",
                "t.toml:19:13: bridge \"..\", host port \"eth1\": `mac_limit` = -1 is out of range (0-1000000)",
                "t.toml:22:8: bridge \"nothing\" has no ports: add at least one [[bridge.port]] or a [bridge.host]",
            ]
        );
    }

    #[test]
    fn host_ports_count_towards_the_port_limit() {
        let port = |i: usize| format!("[[bridge.port]]\ninterface = \"p{i}\"\naccess = 1\n");
        let ports = |range: std::ops::Range<usize>| range.map(port).collect::<String>();
        // Four lines, so that the port after it lands on another line than in
        // the case where the host comes last.
        let host = |name: &str| {
            format!("[bridge.host]\ninterface = \"{name}\"\npeer = \"hp\"\naccess = 1\n")
        };
        // 4095 ports and one host port: exactly at the limit.
        let text = format!(
            "[[bridge]]\nname = \"a\"\n{}[[bridge]]\nname = \"b\"\n{}{}",
            ports(0..2000),
            host("h"),
            ports(2000..MAX_PORTS - 1)
        );
        let config = parse(&text);
        assert_eq!(
            config.bridges.iter().map(|b| b.ports.len()).sum::<usize>(),
            4095
        );
        assert!(config.bridges[1].host.is_some());
        // 4096 ports and a host port after them: the host header is the 4097th.
        let text = format!(
            "[[bridge]]\nname = \"a\"\n{}[[bridge]]\nname = \"b\"\n{}{}",
            ports(0..2000),
            ports(2000..MAX_PORTS),
            host("h")
        );
        assert_eq!(
            errors(&text),
            [
                "t.toml:12293:1: too many ports: 4097 defined over all bridges (each [bridge.host] counts as one), at most 4096 are supported"
            ]
        );
        // A host port before the ports of its bridge takes its slot first.
        let text = format!(
            "[[bridge]]\nname = \"a\"\n{}[[bridge]]\nname = \"b\"\n{}{}",
            ports(0..2000),
            host("h"),
            ports(2000..MAX_PORTS)
        );
        assert_eq!(
            errors(&text),
            [
                "t.toml:12294:1: too many ports: 4097 defined over all bridges (each [bridge.host] counts as one), at most 4096 are supported"
            ]
        );
    }
}
