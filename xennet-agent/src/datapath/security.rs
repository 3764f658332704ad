//! Port security between the configuration and the map: a port's validated settings into the
//! `sec` block of its `PortConf`, and that block back into words for `ports`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};
use xennet_common::maps::{PortSec, SEC_DHCP_SERVER, SEC_ON, SEC_RA};

use crate::config::PortSecurity;

/// The `sec` block the datapath enforces for `spec` ([`PortSec::OFF`] when it is off). The
/// validator keeps every list within the block's capacity.
#[must_use]
pub fn port_sec(spec: &PortSecurity) -> PortSec {
    let mut p = PortSec::OFF;
    if !spec.enabled {
        return p;
    }
    p.flags = SEC_ON;
    for (ip, len) in &spec.ips {
        // `false` (full) cannot happen after validation; the entry is then left out.
        let _ = match ip {
            IpAddr::V4(a) => p.add_v4(a.octets(), *len),
            IpAddr::V6(a) => p.add_v6(a.octets(), *len),
        };
    }
    for t in &spec.ethertypes {
        let _ = p.add_ethertype(*t);
    }
    if spec.allow_dhcp_server {
        p.flags |= SEC_DHCP_SERVER;
    }
    if spec.allow_ra {
        p.flags |= SEC_RA;
    }
    p
}

/// What a port enforces, as `ports` shows it (read back from the map).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityView {
    /// Port security on.
    pub enabled: bool,
    /// The addresses and prefixes sources must be in (empty: sources not checked).
    pub ips: Vec<String>,
    /// DHCP server messages allowed.
    pub allow_dhcp_server: bool,
    /// Router advertisements allowed.
    pub allow_ra: bool,
    /// Ethertypes allowed (`0xNNNN`).
    pub allow_ethertypes: Vec<String>,
}

/// `sec` in words.
#[must_use]
pub fn view(sec: &PortSec) -> SecurityView {
    if sec.flags & SEC_ON == 0 {
        return SecurityView::default();
    }
    let mut ips: Vec<String> = sec
        .v4
        .iter()
        .take(usize::from(sec.n_v4))
        .map(|p| format!("{}/{}", Ipv4Addr::from(p.net), p.mask.count_ones()))
        .collect();
    ips.extend(sec.v6.iter().take(usize::from(sec.n_v6)).map(|p| {
        let mut bytes = [0u8; 16];
        for (i, w) in p.net.iter().enumerate() {
            bytes[4 * i..4 * i + 4].copy_from_slice(&w.to_be_bytes());
        }
        let len: u32 = p.mask.iter().map(|m| m.count_ones()).sum();
        format!("{}/{len}", Ipv6Addr::from(bytes))
    }));
    SecurityView {
        enabled: true,
        ips,
        allow_dhcp_server: sec.flags & SEC_DHCP_SERVER != 0,
        allow_ra: sec.flags & SEC_RA != 0,
        allow_ethertypes: sec
            .ethertypes
            .iter()
            .take(usize::from(sec.n_eth))
            .map(|t| format!("0x{t:04x}"))
            .collect(),
    }
}

impl SecurityView {
    /// One column of the `ports` table: `off`, or `mac ip=…|any eth=… [dhcp-server] [ra]`.
    #[must_use]
    pub fn summary(&self) -> String {
        if !self.enabled {
            return "off".to_owned();
        }
        let ips = if self.ips.is_empty() {
            "any".to_owned()
        } else {
            self.ips.join(",")
        };
        let mut s = format!("mac ip={ips} eth={}", self.allow_ethertypes.join(","));
        if self.allow_dhcp_server {
            s.push_str(" +dhcp-server");
        }
        if self.allow_ra {
            s.push_str(" +ra");
        }
        s
    }
}
