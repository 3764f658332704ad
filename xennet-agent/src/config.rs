//! The TOML configuration file of `xennet-agent`.
//!
//! [`Config::parse`] turns the text into a fully validated [`Config`]. Problems
//! are reported as `{file}:{line}:{col}: {message}`, one per line, and every
//! semantic problem in the file is reported at once. The format is documented
//! in `docs/configuration.md`.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::marker::PhantomData;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use toml::Spanned;

/// bpffs directory where the agent pins its maps when `[agent] pin_dir` is not given.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/xennet";
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

/// How the agent attaches its XDP program to a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachMode {
    /// Native (driver) XDP when the driver supports it, generic XDP otherwise.
    Auto,
    /// Native (driver) XDP only.
    Xdp,
    /// Generic (skb) XDP only.
    XdpGeneric,
}

impl AttachMode {
    /// The configuration spelling: `"auto"`, `"xdp"` or `"xdp-generic"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Xdp => "xdp",
            Self::XdpGeneric => "xdp-generic",
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
        [Self::Auto, Self::Xdp, Self::XdpGeneric]
            .into_iter()
            .find(|mode| mode.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not one of \"auto\", \"xdp\", \"xdp-generic\""))
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
}

/// One validated `[[bridge.port]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    pub interface: String,
    pub mode: PortMode,
    pub attach: AttachMode,
    /// Static FDB entries `(MAC, VLAN)` in file order; every VLAN is carried by the port.
    pub macs: Vec<(MacAddr, u16)>,
}

/// One validated `[[bridge]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeSpec {
    pub name: String,
    /// 1-based position of the bridge in the file.
    pub id: u32,
    /// VLAN tag ethertype: 0x8100 (802.1Q) or 0x88a8 (802.1ad).
    pub tpid: u16,
    /// In file order; at least one.
    pub ports: Vec<PortSpec>,
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub pin_dir: PathBuf,
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
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBridge {
    name: Spanned<String>,
    vlan_protocol: Option<Spanned<String>>,
    #[serde(default, deserialize_with = "table_array")]
    port: Vec<Spanned<RawPort>>,
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

/// What was already seen across the whole file, for uniqueness checks.
#[derive(Default)]
struct Seen {
    /// Bridge name → offset of its first definition.
    bridges: HashMap<String, usize>,
    /// Interface → (offset of its first use, bridge name).
    interfaces: HashMap<String, (usize, String)>,
}

/// Static MAC entries of one bridge: (MAC, VLAN) → (offset, port interface).
type BridgeMacs = HashMap<(MacAddr, u16), (usize, String)>;

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
        let mut all_ports = raw.bridge.iter().flat_map(|b| b.get_ref().port.iter());
        if let Some(extra) = all_ports.nth(MAX_PORTS) {
            let total: usize = raw.bridge.iter().map(|b| b.get_ref().port.len()).sum();
            self.error(
                &extra.span(),
                format!(
                    "too many ports: {total} defined over all bridges, at most {MAX_PORTS} are \
                     supported"
                ),
            );
        }
        let mut seen = Seen::default();
        let mut bridges = Vec::with_capacity(raw.bridge.len());
        for (index, bridge) in raw.bridge.iter().enumerate() {
            let id = u32::try_from(index + 1).unwrap_or(u32::MAX);
            bridges.push(self.bridge(id, bridge.get_ref(), &mut seen));
        }
        Config { pin_dir, bridges }
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

    fn bridge(&mut self, id: u32, raw: &RawBridge, seen: &mut Seen) -> BridgeSpec {
        let name = raw.name.get_ref();
        let name_span = raw.name.span();
        if !valid_bridge_name(name) {
            self.error(
                &name_span,
                format!(
                    "bridge name {name:?} is invalid: use 1-{NAME_MAX} characters of A-Z a-z 0-9 \
                     '_' '.' '-'"
                ),
            );
        }
        if let Some(&first) = seen.bridges.get(name) {
            let line = self.line(first);
            self.error(
                &name_span,
                format!("bridge name {name:?} is already used by the bridge at line {line}"),
            );
        } else {
            seen.bridges.insert(name.clone(), name_span.start);
        }

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
                            "bridge {name:?}: `vlan_protocol` = {text:?} is not \"802.1Q\" or \
                             \"802.1ad\""
                        ),
                    );
                    TPID_8021Q
                }
            }
        };

        if raw.port.is_empty() {
            self.error(
                &name_span,
                format!("bridge {name:?} has no ports: add at least one [[bridge.port]]"),
            );
        }
        let mut macs = BridgeMacs::new();
        let ports = raw
            .port
            .iter()
            .filter_map(|port| self.port(name, port, seen, &mut macs))
            .collect();
        BridgeSpec {
            name: name.clone(),
            id,
            tpid,
            ports,
        }
    }

    /// `None` if the port is too broken to describe (problems are recorded).
    fn port(
        &mut self,
        bridge: &str,
        raw: &Spanned<RawPort>,
        seen: &mut Seen,
        macs: &mut BridgeMacs,
    ) -> Option<PortSpec> {
        let header = raw.span();
        let raw = raw.get_ref();
        let interface = raw.interface.get_ref();
        let interface_span = raw.interface.span();
        let ctx = format!("bridge {bridge:?}, port {interface:?}");

        if let Err(why) = check_ifname(interface) {
            self.error(
                &interface_span,
                format!(
                    "bridge {bridge:?}: `interface` = {interface:?} is not a valid Linux \
                     interface name: {why}"
                ),
            );
        }
        if let Some((first, other)) = seen.interfaces.get(interface) {
            let line = self.line(*first);
            self.error(
                &interface_span,
                format!(
                    "{ctx}: interface {interface:?} is already a port of bridge {other:?} at line \
                     {line}; an interface may belong to only one port"
                ),
            );
        } else {
            seen.interfaces
                .insert(interface.clone(), (interface_span.start, bridge.to_owned()));
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
        let mode = self.mode(&ctx, &header, raw);
        let port_macs = self.macs(&ctx, interface, raw, mode.as_ref(), macs);
        Some(PortSpec {
            interface: interface.clone(),
            mode: mode?,
            attach: attach?,
            macs: port_macs,
        })
    }

    /// The port's mode from `access` / `trunk` / `native_vlan`; `None` after
    /// recording a problem.
    fn mode(&mut self, ctx: &str, header: &Range<usize>, raw: &RawPort) -> Option<PortMode> {
        let access = raw
            .access
            .as_ref()
            .map(|access| self.vlan_key(ctx, "access", access));
        let trunk = raw
            .trunk
            .as_ref()
            .map(|trunk| (trunk, self.trunk_list(ctx, trunk)));
        let native = raw
            .native_vlan
            .as_ref()
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
            Ok(mac) if mac.is_multicast() || mac.is_zero() => {
                let kind = if mac.is_broadcast() {
                    "the broadcast address"
                } else if mac.is_multicast() {
                    "a multicast address"
                } else {
                    "the all-zero address"
                };
                self.error(
                    span,
                    format!(
                        "{ctx}: `macs` entry {text:?}: {mac} is {kind}; static entries must be \
                         unicast"
                    ),
                );
                None
            }
            Ok(mac) => Some(mac),
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

/// Bridge names: 1..=15 characters of `[A-Za-z0-9_.-]`.
fn valid_bridge_name(name: &str) -> bool {
    (1..=NAME_MAX).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
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
        }
    }

    #[test]
    fn seed_example_parses_to_the_expected_config() {
        let config = Config::parse(SEED, "examples/seed-trunk.toml").unwrap();
        let expected = Config {
            pin_dir: PathBuf::from("/sys/fs/bpf/xennet"),
            bridges: vec![BridgeSpec {
                name: "trunk".to_owned(),
                id: 1,
                tpid: 0x8100,
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
                   `interface`, `access`, `trunk`, `native_vlan`, `attach`, `macs`",
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
                   6; an interface may belong to only one port",
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
            &["t.toml:2:8: bridge \"lonely\" has no ports: add at least one [[bridge.port]]"],
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
                "t.toml:6:10: bridge \"b\", port \"eth0\": `attach` = \"XDP\" is not one of \"auto\", \"xdp\", \"xdp-generic\"",
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
                "t.toml:7:13: bridge \"b\", port \"eth0\": interface \"eth0\" is already a port of bridge \"b\" at line 4; an interface may belong to only one port",
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
                &["t.toml:2:1: unknown field `pin-dir`, expected `pin_dir`"],
            ),
            (
                "unknown bridge key",
                "[[bridge]]\nname = \"b\"\ntpid = 0x8100\n",
                &[
                    "t.toml:3:1: unknown field `tpid`, expected one of `name`, `vlan_protocol`, `port`",
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
                "t.toml:19:8: bridge \"empty\" has no ports: add at least one [[bridge.port]]",
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
                bridges: vec![BridgeSpec {
                    name: "b".to_owned(),
                    id: 1,
                    tpid: 0x8100,
                    ports: vec![access_port("eth0", 7, &[])],
                }],
            }
        );
        assert_eq!(DEFAULT_PIN_DIR, "/sys/fs/bpf/xennet");
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
        ] {
            assert_eq!(mode.to_string(), text);
            assert_eq!(text.parse::<AttachMode>(), Ok(mode));
        }
        assert_eq!(
            "generic".parse::<AttachMode>(),
            Err("\"generic\" is not one of \"auto\", \"xdp\", \"xdp-generic\"".to_owned())
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
                "t.toml:12293:1: too many ports: 4097 defined over all bridges, at most 4096 are supported"
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
                "{}:2:8: bridge \"b\" has no ports: add at least one [[bridge.port]]",
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
}
