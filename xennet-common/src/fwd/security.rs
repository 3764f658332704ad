//! Port security: what a guest may send — its own MACs and addresses, no DHCP server or router
//! messages, only allowed ethertypes (issue 13; docs/security.md).
//!
//! Runs after classification and before learning, only on ports with [`SEC_ON`]. Every refusal
//! has its own drop reason. A secured port never learns: its source MAC must already be one of
//! its static MACs, so a guest cannot take another station's MAC into the FDB.
//!
//! Headers are read at bounded offsets: the L3 header right after the VLAN tags (14, 18 or 22),
//! IPv4 options through the IHL (≤ 60 bytes), and at most [`MAX_EXT`] IPv6 extension headers.

#![expect(clippy::inline_always, reason = "eBPF: the datapath must be inlined")]

use super::{EthHdr, Frame, Tables};
use crate::{
    maps::{FDB_STATIC, FdbKey, PortConf, PortSec, SEC_DHCP_SERVER, SEC_RA, SEC_V4, SEC_V6},
    stats::Stat,
};

/// IPv4.
pub const ETH_P_IP: u16 = 0x0800;
/// ARP.
pub const ETH_P_ARP: u16 = 0x0806;
/// IPv6.
pub const ETH_P_IPV6: u16 = 0x86dd;

/// IPv6 extension headers walked before giving up (`drop_sec_malformed`).
pub const MAX_EXT: usize = 3;
/// Bytes a TC program makes linear before the checks (headers of a GSO skb may be short).
pub const SEC_PULL: usize = 128;

const IPPROTO_UDP: u8 = 17;
const IPPROTO_ICMPV6: u8 = 58;
const ICMPV6_NS: u32 = 135;
const ICMPV6_NA: u32 = 136;
const ICMPV6_RA: u32 = 134;
const ICMPV6_REDIRECT: u32 = 137;
const ICMPV6_MLD2_REPORT: u32 = 143;
/// Not an `ICMPv6` message (or not its first fragment).
const NOT_ICMP: u32 = 0x100;

/// What the checks need of the Ethernet header (plain values: the verifier wants no pointer
/// into a copied header).
#[derive(Clone, Copy, Debug)]
pub struct L2 {
    /// Source MAC.
    pub src: [u8; 6],
    /// Ethertype after the tags.
    pub proto: u16,
    /// Offset of the L3 header ([`EthHdr::l3_off`]).
    pub l3: usize,
    /// Classified VLAN.
    pub vlan: u16,
}

impl L2 {
    /// From a parsed header classified into `vlan`.
    #[inline(always)]
    #[must_use]
    pub const fn of(hdr: &EthHdr, vlan: u16) -> L2 {
        L2 {
            src: hdr.src,
            proto: hdr.proto,
            l3: hdr.l3_off(),
            vlan,
        }
    }
}

/// Check frame `f` (its header `l2`) from secured port `port` (ifindex `ingress`):
/// `Err(reason)` drops it.
///
/// Inlined into the programs: as a BPF-to-BPF call of its own it cost ~10–15 ns more per frame
/// on this machine kind (the call's return goes through the kernel's return thunk, an SRSO
/// mitigation). Inlined, the checks share the program's 512-byte stack with the rest of it
/// and the drop monitor's aya-log call, which is why the monitor hands aya-log one argument
/// ([`crate::monitor::Event::encode`]).
#[inline(always)]
pub fn check<F: Frame, T: Tables>(
    f: &F,
    t: &T,
    port: &PortConf,
    ingress: u32,
    l2: &L2,
) -> Result<(), Stat> {
    let L2 {
        src,
        proto,
        l3,
        vlan,
    } = *l2;
    // The source MAC: a static MAC of this very port in this VLAN.
    let key = FdbKey {
        mac: src,
        vlan,
        bridge: port.bridge,
    };
    match t.fdb(&key) {
        Some(e) if e.flags & FDB_STATIC != 0 && e.ifindex == ingress => {}
        _ => return Err(Stat::DropSpoofMac),
    }
    let sec = &port.sec;
    if !sec.allows_ethertype(proto) {
        return Err(Stat::DropEthertype);
    }
    f.pull(l3 + SEC_PULL);
    match proto {
        ETH_P_IP => ipv4(f, sec, l3),
        ETH_P_ARP => arp(f, sec, l3, &src),
        ETH_P_IPV6 => ipv6(f, sec, l3, &src),
        _ => Ok(()),
    }
}

/// The big-endian `u32` at `off` (a word at a time: a 16-byte load spills byte by byte on
/// the BPF stack; [`Frame::be32`] is one 32-bit load in the programs).
#[inline(always)]
fn word<F: Frame>(f: &F, off: usize) -> Option<u32> {
    f.be32(off)
}

/// The 16-byte address at `off`, as four big-endian words.
#[inline(always)]
fn addr6<F: Frame>(f: &F, off: usize) -> Option<[u32; 4]> {
    f.be32s::<4>(off)
}

/// IPv4: the source is owned (0.0.0.0 only for a DHCP client's UDP 68 → 67); no DHCP server
/// replies; no fragment at offset 8 (overlapping a UDP header, RFC 1858).
#[inline(always)]
fn ipv4<F: Frame>(f: &F, sec: &PortSec, l3: usize) -> Result<(), Stat> {
    // Version/IHL…, fragment word, TTL/protocol…, source: one bounds check for the four.
    let Some([w0, w1, w2, src]) = f.be32s::<4>(l3) else {
        return Err(Stat::DropSecMalformed);
    };
    let ihl = ((w0 >> 24) & 0x0f) as usize * 4;
    if w0 >> 28 != 4 || ihl < 20 {
        return Err(Stat::DropSecMalformed);
    }
    let frag_off = w1 & 0x1fff;
    if frag_off == 1 {
        return Err(Stat::DropSecMalformed);
    }
    // UDP ports (source << 16 | destination), in the first fragment only (the others carry no
    // UDP header); 0 when there are none (a plain integer: an `Option` may leave a register
    // undefined on a path, which the verifier refuses).
    let udp = if (w2 >> 16) & 0xff == u32::from(IPPROTO_UDP) && frag_off == 0 {
        match word(f, l3 + ihl) {
            Some(u) => u,
            None => return Err(Stat::DropSecMalformed),
        }
    } else {
        0
    };
    if src == 0 {
        // Client port 68 to server port 67.
        return if udp == 0x0044_0043 {
            Ok(())
        } else {
            Err(Stat::DropSpoofIp4)
        };
    }
    if sec.flags & SEC_V4 != 0 && !sec.owns_v4(src) {
        return Err(Stat::DropSpoofIp4);
    }
    if sec.flags & SEC_DHCP_SERVER == 0 && udp >> 16 == 67 {
        return Err(Stat::DropDhcpServer);
    }
    Ok(())
}

/// ARP over Ethernet/IPv4: the sender MAC is the frame's source, the sender address owned (or
/// 0.0.0.0: a probe). The target fields are not read.
#[inline(always)]
fn arp<F: Frame>(f: &F, sec: &PortSec, l3: usize, src: &[u8; 6]) -> Result<(), Stat> {
    // htype 1, ptype IPv4; hlen 6, plen 4, the operation; the sender MAC (bytes 8–13) and
    // address (14–17): one bounds check for the five words.
    let Some([w0, w1, sha_hi, sha_lo, after]) = f.be32s::<5>(l3) else {
        return Err(Stat::DropSecMalformed);
    };
    if w0 != 0x0001_0800 || w1 >> 16 != 0x0604 {
        return Err(Stat::DropSecMalformed);
    }
    let mac_hi = u32::from_be_bytes([src[0], src[1], src[2], src[3]]);
    let mac_lo = u32::from(u16::from_be_bytes([src[4], src[5]]));
    if sha_hi != mac_hi || sha_lo >> 16 != mac_lo {
        return Err(Stat::DropSpoofArp);
    }
    let spa = (sha_lo << 16) | (after >> 16);
    if spa != 0 && sec.flags & SEC_V4 != 0 && !sec.owns_v4(spa) {
        return Err(Stat::DropSpoofArp);
    }
    Ok(())
}

/// The EUI-64 link-local address of `mac` (`fe80::/64`, interface id from the MAC).
#[inline(always)]
fn eui64_link_local(mac: &[u8; 6]) -> [u32; 4] {
    [
        0xfe80_0000,
        0,
        u32::from_be_bytes([mac[0] ^ 2, mac[1], mac[2], 0xff]),
        u32::from_be_bytes([0xfe, mac[3], mac[4], mac[5]]),
    ]
}

/// The ND target at `off` (NA, or a DAD NS): owned, or the EUI-64 link-local of the frame's
/// source MAC; `Err` when it is cut short.
#[inline(always)]
fn target_ok<F: Frame>(f: &F, off: usize, sec: &PortSec, mac: &[u8; 6]) -> Result<bool, Stat> {
    let Some(target) = addr6(f, off) else {
        return Err(Stat::DropSecMalformed);
    };
    Ok(sec.flags & SEC_V6 == 0 || sec.owns_v6(&target) || target == eui64_link_local(mac))
}

/// IPv6: the source is owned or link-local (:: only for DAD and its MLD report); NA and DAD NS
/// targets owned; no RA, redirect or `DHCPv6` server message. Up to [`MAX_EXT`] extension
/// headers are walked; a longer chain is refused.
#[inline(always)]
fn ipv6<F: Frame>(f: &F, sec: &PortSec, l3: usize, mac: &[u8; 6]) -> Result<(), Stat> {
    // The fixed header's first two words, source and destination: one bounds check.
    let Some(h) = f.be32s::<10>(l3) else {
        return Err(Stat::DropSecMalformed);
    };
    let [w0, w1, s0, s1, s2, s3, d0, d1, d2, d3] = h;
    if w0 >> 28 != 6 {
        return Err(Stat::DropSecMalformed);
    }
    // The source, reduced at once to what the checks need (few registers live at a time).
    let src = [s0, s1, s2, s3];
    let unspecified = src == [0; 4];
    let src_ok =
        src[0] & 0xffc0_0000 == 0xfe80_0000 || sec.flags & SEC_V6 == 0 || sec.owns_v6(&src);
    let dst = [d0, d1, d2, d3];
    // ff02::1:ffXX:XXXX, and ff02::16 (MLDv2 reports).
    let to_solicited = dst[0] == 0xff02_0000 && dst[1] == 0 && dst[2] == 1 && dst[3] >> 24 == 0xff;
    let to_mld = dst == [0xff02_0000, 0, 0, 0x16];
    // Walk hop-by-hop, routing, destination options and fragment headers.
    let mut nh = (w1 >> 8) & 0xff;
    let mut off = l3 + 40;
    let mut first = true;
    let mut i = 0;
    while i < MAX_EXT {
        match nh {
            0 | 43 | 60 => {
                let Some(e) = f.load::<2>(off) else {
                    return Err(Stat::DropSecMalformed);
                };
                nh = u32::from(e[0]);
                off += (usize::from(e[1]) + 1) * 8;
            }
            44 => {
                let Some(e) = word(f, off) else {
                    return Err(Stat::DropSecMalformed);
                };
                nh = e >> 24;
                if e & 0xfff8 != 0 {
                    first = false;
                }
                off += 8;
            }
            _ => break,
        }
        i += 1;
    }
    if matches!(nh, 0 | 43 | 44 | 60) {
        return Err(Stat::DropSecMalformed);
    }
    // The first fragment's upper layer: its first word (ICMPv6 type…, UDP ports).
    let upper = if first && (nh == u32::from(IPPROTO_ICMPV6) || nh == u32::from(IPPROTO_UDP)) {
        match word(f, off) {
            Some(w) => w,
            None => return Err(Stat::DropSecMalformed),
        }
    } else {
        0
    };
    // The ICMPv6 type, or [`NOT_ICMP`] (a plain integer, as `udp` in [`ipv4`]).
    let icmp = if first && nh == u32::from(IPPROTO_ICMPV6) {
        upper >> 24
    } else {
        NOT_ICMP
    };
    if unspecified {
        // Only DAD: an NS to a solicited-node group for an owned target, and the MLD report
        // joining that group.
        return match icmp {
            ICMPV6_NS if to_solicited => {
                if target_ok(f, off + 8, sec, mac)? {
                    Ok(())
                } else {
                    Err(Stat::DropSpoofNd)
                }
            }
            ICMPV6_MLD2_REPORT if to_mld => Ok(()),
            _ => Err(Stat::DropSpoofIp6),
        };
    }
    if !src_ok {
        return Err(Stat::DropSpoofIp6);
    }
    match icmp {
        ICMPV6_RA | ICMPV6_REDIRECT if sec.flags & SEC_RA == 0 => {
            return Err(Stat::DropRouterAdv);
        }
        ICMPV6_NA if !target_ok(f, off + 8, sec, mac)? => {
            return Err(Stat::DropSpoofNd);
        }
        _ => {}
    }
    if first
        && nh == u32::from(IPPROTO_UDP)
        && upper >> 16 == 547
        && sec.flags & SEC_DHCP_SERVER == 0
    {
        return Err(Stat::DropDhcpServer);
    }
    Ok(())
}
