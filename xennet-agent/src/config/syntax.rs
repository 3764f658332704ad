//! Parsers and checks of single values: MAC addresses, VLAN ids and ranges, CIDR addresses,
//! interface and bridge names.

use std::net::IpAddr;
use std::str::FromStr;

use xennet_common::VLAN_MAX;

use super::types::{HOST_PEER_PREFIX, MacAddr};

/// Lowest usable 802.1Q VLAN id (0 is reserved; the highest is [`VLAN_MAX`], 4095 is reserved).
pub(super) const VLAN_MIN: u16 = 1;
/// Longest bridge or interface name (Linux `IFNAMSIZ` - 1).
const NAME_MAX: usize = 15;

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

/// `value` as a VLAN id if it is one.
pub(super) fn vlan_id(value: i64) -> Option<u16> {
    u16::try_from(value)
        .ok()
        .filter(|vlan| (VLAN_MIN..=VLAN_MAX).contains(vlan))
}

/// A VLAN id written in a string (range bound, `@VLAN`): decimal digits only.
pub(super) fn parse_vlan_text(text: &str) -> Result<u16, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{text:?} is not a decimal VLAN id"));
    }
    text.parse::<u16>()
        .ok()
        .filter(|vlan| (VLAN_MIN..=VLAN_MAX).contains(vlan))
        .ok_or_else(|| {
            format!(
                "{} is not a VLAN id ({VLAN_MIN}-{VLAN_MAX})",
                super::report::cut(text)
            )
        })
}

/// An inclusive range "A-B" (spaces around A and B allowed).
pub(super) fn parse_range(text: &str) -> Result<std::ops::RangeInclusive<u16>, String> {
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
pub(super) fn check_bridge_name(name: &str) -> Result<(), String> {
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
pub(super) enum DefaultPeer {
    Valid(String),
    /// The name and why it is not a valid interface name.
    Invalid(String, String),
    /// The bridge name is invalid, so the default is meaningless.
    BadBridgeName,
}

/// [`HOST_PEER_PREFIX`] followed by the bridge name, if that is a valid interface name.
pub(super) fn default_peer(bridge: &str) -> DefaultPeer {
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
pub(super) fn non_unicast_kind(mac: MacAddr) -> Option<&'static str> {
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

/// An interface address "ADDRESS/PREFIX" (IPv4 or IPv6): the address and the prefix length.
///
/// # Errors
///
/// Why `text` is not one, as a sentence fragment for messages ("prefix length 40 is out of
/// range for IPv4 (0-32)").
pub fn parse_cidr(text: &str) -> Result<(IpAddr, u8), String> {
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
    let length = u8::try_from(length).map_err(|_| not_a_length())?;
    let kind = match ip {
        IpAddr::V4(v4) if v4.is_broadcast() => Some("the broadcast address"),
        _ if ip.is_unspecified() => Some("the unspecified address"),
        _ if ip.is_multicast() => Some("a multicast address"),
        _ => None,
    };
    match kind {
        Some(kind) => Err(format!("{ip} is {kind}, not an interface address")),
        None => Ok((ip, length)),
    }
}

/// The loopback device's name: never a port (it is not Ethernet).
pub(super) const LOOPBACK: &str = "lo";

/// The first range of a `[…]` set of glob `pattern` that is empty (`z-a`: its start comes after
/// its end), as (start, end). `glob` accepts such a range, and it matches no character.
pub(super) fn empty_glob_range(pattern: &str) -> Option<(char, char)> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '[' {
            i += 1;
            continue;
        }
        // A set: `[!…]` negates; a `]` first in the set is literal.
        let mut j = i + 1;
        if chars.get(j) == Some(&'!') {
            j += 1;
        }
        let first = j;
        while j < chars.len() && (chars[j] != ']' || j == first) {
            j += 1;
        }
        let set = &chars[first..j.min(chars.len())];
        let mut k = 0;
        while k < set.len() {
            if k + 2 < set.len() && set[k + 1] == '-' {
                if set[k] > set[k + 2] {
                    return Some((set[k], set[k + 2]));
                }
                k += 3;
            } else {
                k += 1;
            }
        }
        i = j + 1;
    }
    None
}

/// Whether a port's `interface` is a glob pattern (`*`, `?`, `[…]`) rather than a name.
#[must_use]
pub fn is_pattern(interface: &str) -> bool {
    interface.contains(['*', '?', '['])
}

/// Linux `dev_valid_name`: 1..=15 bytes, not "." or "..", no '/', ':',
/// whitespace or NUL.
pub(super) fn check_ifname(name: &str) -> Result<(), String> {
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
