//! A port's security keys (issue 13): `security`, `ips`, `allow_dhcp_server`, `allow_ra` and
//! `allow_ethertypes` — the same rules for the file, a rule and `port add`.

use std::collections::HashMap;
use std::net::IpAddr;

use toml::Spanned;

use super::Validator;
use crate::config::raw::RawPort;
use crate::config::syntax::{is_pattern, parse_cidr};
use crate::config::types::{DEFAULT_ETHERTYPES, PortMode, PortSecurity};
use xennet_common::maps::{SEC_MAX_ETHERTYPES, SEC_MAX_V4, SEC_MAX_V6};

impl Validator<'_> {
    /// The port's security settings; `None` after recording a problem.
    pub(super) fn security(
        &mut self,
        ctx: &str,
        raw: &RawPort,
        mode: Option<&PortMode>,
    ) -> Option<PortSecurity> {
        let before = self.problem_count();
        let pattern = is_pattern(raw.interface.get_ref());
        let ips = self.ips(ctx, &raw.ips);
        if pattern && let Some(first) = raw.ips.first() {
            self.error(
                &first.span(),
                format!(
                    "{ctx}: `ips` need an exact interface name, not a pattern (add them with \
                     `xennet-agent port add … --ip` when the vif appears)"
                ),
            );
        }
        let ethertypes = match &raw.allow_ethertypes {
            None => DEFAULT_ETHERTYPES.to_vec(),
            Some(list) => self.ethertypes(ctx, list),
        };
        let requested = raw.security.as_ref().map(|s| *s.get_ref());
        let enabled =
            requested.unwrap_or(matches!(mode, Some(PortMode::Access { .. })) && !ips.is_empty());
        if enabled && !pattern && raw.macs.is_empty() {
            let why = if requested.is_some() {
                "`security = true`"
            } else {
                "port security (on by default for an access port with `ips`)"
            };
            let span = raw
                .security
                .as_ref()
                .map_or_else(|| raw.interface.span(), Spanned::span);
            self.error(
                &span,
                format!(
                    "{ctx}: {why} needs the guest's MAC in `macs` (only frames from the port's \
                     static MACs pass); add it, or set `security = false`"
                ),
            );
        }
        (self.problem_count() == before).then(|| PortSecurity {
            enabled,
            requested,
            ips,
            allow_dhcp_server: raw.allow_dhcp_server.unwrap_or(false),
            allow_ra: raw.allow_ra.unwrap_or(false),
            ethertypes,
        })
    }

    /// `ips`: addresses (`192.0.2.10`) or prefixes (`198.51.100.0/24`), each once, at most
    /// [`SEC_MAX_V4`] IPv4 and [`SEC_MAX_V6`] IPv6 entries.
    fn ips(&mut self, ctx: &str, raw: &[Spanned<String>]) -> Vec<(IpAddr, u8)> {
        let mut out: Vec<(IpAddr, u8)> = Vec::new();
        let mut seen: HashMap<(IpAddr, u8), &str> = HashMap::new();
        let (mut v4, mut v6) = (0, 0);
        for entry in raw {
            let text = entry.get_ref();
            let parsed = if text.contains('/') {
                parse_cidr(text)
            } else {
                match text.parse::<IpAddr>() {
                    Ok(ip) => {
                        parse_cidr(&format!("{text}/{}", if ip.is_ipv4() { 32 } else { 128 }))
                    }
                    Err(_) => Err(format!("{text:?} is not an IPv4 or IPv6 address or prefix")),
                }
            };
            let (ip, len) = match parsed {
                Ok(p) => p,
                Err(why) => {
                    self.error(&entry.span(), format!("{ctx}: `ips` entry {text:?}: {why}"));
                    continue;
                }
            };
            if let Some(first) = seen.get(&(ip, len)) {
                self.error(
                    &entry.span(),
                    format!("{ctx}: `ips` entry {text:?} is already listed as {first:?}"),
                );
                continue;
            }
            let (count, max, family) = if ip.is_ipv4() {
                (&mut v4, SEC_MAX_V4, "IPv4")
            } else {
                (&mut v6, SEC_MAX_V6, "IPv6")
            };
            *count += 1;
            if *count > max {
                self.error(
                    &entry.span(),
                    format!(
                        "{ctx}: `ips` entry {text:?}: a port has at most {max} {family} entries"
                    ),
                );
                continue;
            }
            seen.insert((ip, len), text);
            out.push((ip, len));
        }
        out
    }

    /// `allow_ethertypes`: names or `0xNNNN` values (≥ 0x0600, not a VLAN TPID), each once.
    fn ethertypes(&mut self, ctx: &str, list: &Spanned<Vec<Spanned<String>>>) -> Vec<u16> {
        let mut out = Vec::new();
        for entry in list.get_ref() {
            let text = entry.get_ref();
            match parse_ethertype(text) {
                Ok(t) if out.contains(&t) => self.error(
                    &entry.span(),
                    format!("{ctx}: `allow_ethertypes` entry {text:?} is listed twice"),
                ),
                Ok(_) if out.len() == SEC_MAX_ETHERTYPES => self.error(
                    &entry.span(),
                    format!(
                        "{ctx}: `allow_ethertypes` entry {text:?}: at most {SEC_MAX_ETHERTYPES} \
                         ethertypes per port"
                    ),
                ),
                Ok(t) => out.push(t),
                Err(why) => self.error(
                    &entry.span(),
                    format!("{ctx}: `allow_ethertypes` entry {text:?}: {why}"),
                ),
            }
        }
        out
    }
}

/// Names `allow_ethertypes` accepts besides `0xNNNN`.
pub const ETHERTYPE_NAMES: [(&str, u16); 5] = [
    ("ipv4", 0x0800),
    ("arp", 0x0806),
    ("ipv6", 0x86dd),
    ("lldp", 0x88cc),
    ("eapol", 0x888e),
];

/// An `allow_ethertypes` entry.
fn parse_ethertype(text: &str) -> Result<u16, String> {
    if let Some((_, t)) = ETHERTYPE_NAMES.iter().find(|(n, _)| *n == text) {
        return Ok(*t);
    }
    let names: Vec<&str> = ETHERTYPE_NAMES.iter().map(|(n, _)| *n).collect();
    let hex = text
        .strip_prefix("0x")
        .filter(|h| !h.is_empty() && h.len() <= 4)
        .and_then(|h| u16::from_str_radix(h, 16).ok())
        .ok_or_else(|| format!("not one of {} nor a hexadecimal 0xNNNN", names.join(", ")))?;
    if hex < 0x0600 {
        return Err(format!(
            "0x{hex:04x} is an 802.3 length, not an ethertype (≥ 0x0600)"
        ));
    }
    if matches!(hex, 0x8100 | 0x88a8 | 0x9100) {
        return Err(format!(
            "0x{hex:04x} is a VLAN tag protocol; tags are classified before port security"
        ));
    }
    Ok(hex)
}
