//! ARP and ICMP echo frames (Ethernet/IPv4): build them, parse them, and answer an echo
//! request, for tests that play a host on the wire.

use crate::frame::{Mac, Parsed, build_eth, parse_eth};

/// Ethertype of ARP.
pub const ETH_P_ARP: u16 = 0x0806;
/// Ethertype of IPv4.
pub const ETH_P_IP: u16 = 0x0800;

/// An IPv4 address in dotted form as bytes.
///
/// # Panics
/// On a malformed address (test constants only).
#[must_use]
pub fn ipv4(s: &str) -> [u8; 4] {
    let a: std::net::Ipv4Addr = s.parse().expect("IPv4 address");
    a.octets()
}

/// An ARP packet (Ethernet/IPv4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arp {
    /// 1 request, 2 reply.
    pub op: u16,
    /// Sender MAC.
    pub sha: Mac,
    /// Sender IPv4.
    pub spa: [u8; 4],
    /// Target MAC.
    pub tha: Mac,
    /// Target IPv4.
    pub tpa: [u8; 4],
}

/// An ARP frame from `arp.sha` to `dst`, with `tags`.
#[must_use]
pub fn arp_frame(dst: Mac, tags: &[(u16, u16)], arp: &Arp) -> Vec<u8> {
    let mut p = Vec::with_capacity(28);
    p.extend_from_slice(&1u16.to_be_bytes());
    p.extend_from_slice(&ETH_P_IP.to_be_bytes());
    p.extend_from_slice(&[6, 4]);
    p.extend_from_slice(&arp.op.to_be_bytes());
    p.extend_from_slice(&arp.sha);
    p.extend_from_slice(&arp.spa);
    p.extend_from_slice(&arp.tha);
    p.extend_from_slice(&arp.tpa);
    build_eth(dst, arp.sha, tags, ETH_P_ARP, &p)
}

/// The Ethernet header and ARP packet of `frame`, if it is ARP.
#[must_use]
pub fn parse_arp(frame: &[u8]) -> Option<(Parsed, Arp)> {
    let h = parse_eth(frame)?;
    if h.ethertype != ETH_P_ARP {
        return None;
    }
    let p = h.payload(frame);
    if p.len() < 28 || p[0..2] != [0, 1] || p[2..4] != ETH_P_IP.to_be_bytes() {
        return None;
    }
    let arp = Arp {
        op: u16::from_be_bytes([p[6], p[7]]),
        sha: p[8..14].try_into().ok()?,
        spa: p[14..18].try_into().ok()?,
        tha: p[18..24].try_into().ok()?,
        tpa: p[24..28].try_into().ok()?,
    };
    Some((h, arp))
}

/// An IPv4 ICMP echo (request or reply) inside a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Echo {
    /// 8 request, 0 reply.
    pub icmp_type: u8,
    /// Source IPv4.
    pub src: [u8; 4],
    /// Destination IPv4.
    pub dst: [u8; 4],
}

/// The Ethernet header and ICMP echo of `frame`, if it is one.
#[must_use]
pub fn parse_echo(frame: &[u8]) -> Option<(Parsed, Echo)> {
    let h = parse_eth(frame)?;
    if h.ethertype != ETH_P_IP {
        return None;
    }
    let ip = h.payload(frame);
    if ip.len() < 20 || ip[0] >> 4 != 4 || ip[9] != 1 {
        return None;
    }
    let ihl = usize::from(ip[0] & 0xf) * 4;
    let icmp = ip.get(ihl..)?;
    let t = *icmp.first()?;
    if t != 0 && t != 8 {
        return None;
    }
    Some((
        h,
        Echo {
            icmp_type: t,
            src: ip[12..16].try_into().ok()?,
            dst: ip[16..20].try_into().ok()?,
        },
    ))
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in data.chunks(2) {
        let w = u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)]);
        sum += u32::from(w);
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    #[expect(clippy::cast_possible_truncation, reason = "folded to 16 bits above")]
    let s = !(sum as u16);
    s
}

/// The echo reply to the echo request `frame`, sent by `mac`, with the request's tags.
#[must_use]
pub fn echo_reply(frame: &[u8], mac: Mac) -> Option<Vec<u8>> {
    let (h, e) = parse_echo(frame)?;
    if e.icmp_type != 8 {
        return None;
    }
    let mut ip = h.payload(frame).to_vec();
    let ihl = usize::from(ip[0] & 0xf) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    ip.truncate(total.max(ihl + 8));
    ip[12..16].copy_from_slice(&e.dst);
    ip[16..20].copy_from_slice(&e.src);
    ip[8] = 64;
    ip[10..12].copy_from_slice(&[0, 0]);
    let c = checksum(&ip[..ihl]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip[ihl] = 0;
    ip[ihl + 2..ihl + 4].copy_from_slice(&[0, 0]);
    let c = checksum(&ip[ihl..]);
    ip[ihl + 2..ihl + 4].copy_from_slice(&c.to_be_bytes());
    Some(build_eth(h.src, mac, &h.tags, ETH_P_IP, &ip))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{frame::q_tags, topo::UPSTREAM_MAC};

    #[test]
    fn echo_reply_swaps_and_checksums() {
        // An echo request 10.94.0.1 → 10.94.0.100, tagged 4094, as ping sends it.
        let mut ip = vec![
            0x45, 0, 0, 28, 0x12, 0x34, 0x40, 0, 64, 1, 0, 0, 10, 94, 0, 1, 10, 94, 0, 100,
        ];
        let c = checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        let mut icmp = vec![8, 0, 0, 0, 0xab, 0xcd, 0, 1];
        let c = checksum(&icmp);
        icmp[2..4].copy_from_slice(&c.to_be_bytes());
        ip.extend(icmp);
        let src = [0x00, 0x16, 0x3e, 0, 0, 1];
        let req = build_eth(UPSTREAM_MAC, src, &q_tags(Some(4094)), ETH_P_IP, &ip);
        let rep = echo_reply(&req, UPSTREAM_MAC).expect("reply");
        let (h, e) = parse_echo(&rep).expect("parse");
        assert_eq!(
            (h.dst, h.src, h.tags.clone()),
            (src, UPSTREAM_MAC, q_tags(Some(4094)))
        );
        assert_eq!(
            e,
            Echo {
                icmp_type: 0,
                src: [10, 94, 0, 100],
                dst: [10, 94, 0, 1]
            }
        );
        let ipr = h.payload(&rep);
        assert_eq!(checksum(&ipr[..20]), 0, "IP header checksum");
        assert_eq!(checksum(&ipr[20..]), 0, "ICMP checksum");
    }

    #[test]
    fn arp_round_trip() {
        let a = Arp {
            op: 1,
            sha: [2, 0, 0, 0, 0, 1],
            spa: [10, 0, 0, 1],
            tha: [0; 6],
            tpa: [10, 0, 0, 2],
        };
        let f = arp_frame([0xff; 6], &q_tags(Some(7)), &a);
        assert_eq!(f.len(), 46);
        let (h, b) = parse_arp(&f).expect("parse");
        assert_eq!(h.tags, q_tags(Some(7)));
        assert_eq!(a, b);
    }
}
