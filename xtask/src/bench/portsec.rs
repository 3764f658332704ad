//! The ladder's port-security rows (issue 13): what the checks cost a frame, as `xennet_xdp`
//! and `xennet_tc` on the same IPv4, IPv6 and ARP frames with the ladder's ingress port
//! secured and not, in pairs of runs next to each other.
//!
//! The ingress port (xb0, slot 1) is secured as the agent secures a guest's port: its one
//! IPv4 and one IPv6 address, the default ethertypes (IPv4, ARP, IPv6). The frames come from
//! the generator's first source MAC, static on xb0 (a secured port's source must be), and go
//! to the sink's MAC behind xb1, so that both programs forward every one of them.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result, bail};
use aya::maps::{Array, HashMap, MapData};
use xennet_common::{
    fwd::{
        fixtures::{
            lab::build_eth,
            portsec::{arp, ipv4, ipv6, udp},
        },
        security::{ETH_P_ARP, ETH_P_IP, ETH_P_IPV6},
    },
    maps::{MAP_PORTS, MAP_SLOTS, PROG_TC, PROG_XDP, PortConf, PortSec, SEC_ON},
};

use super::{
    topo::{self, Dut},
    traffic::BenchObj,
};

/// The secured port's IPv4 address, and the peer's.
const ADDR4: [u8; 4] = [192, 0, 2, 10];
const PEER4: [u8; 4] = [192, 0, 2, 1];
/// The secured port's IPv6 address (`2001:db8::10`), and the peer's (`2001:db8::1`).
const ADDR6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];
const PEER6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
];
/// The stats slot of xb0, the ladder's ingress (`traffic::fill_xennet`).
const XB0_SLOT: u32 = 1;
/// Label suffix of a step with the port secured.
const SECURED: &str = ", secured";

/// The rows' frames by label, in the order the rows list them and [`frames`] builds them.
const LABELS: [&str; 3] = ["IPv4 UDP", "IPv6 UDP", "ARP reply"];

/// The frames of [`LABELS`], in that order.
fn frames() -> [Vec<u8>; 3] {
    let (src, dst) = (topo::GEN_SRC, topo::sink_mac(1));
    [
        build_eth(
            dst,
            src,
            &[],
            ETH_P_IP,
            &ipv4(ADDR4, PEER4, 17, 0, false, &udp(5000, 53)),
        ),
        build_eth(
            dst,
            src,
            &[],
            ETH_P_IPV6,
            &ipv6(ADDR6, PEER6, 17, &udp(5000, 53)),
        ),
        build_eth(dst, src, &[], ETH_P_ARP, &arp(2, src, ADDR4, dst, PEER4)),
    ]
}

/// What the agent writes for a guest port with `ips = ["192.0.2.10", "2001:db8::10"]`.
fn secured() -> Result<PortSec> {
    let mut s = PortSec::OFF;
    s.flags = SEC_ON;
    let added = s.add_v4(ADDR4, 32)
        && s.add_v6(ADDR6, 128)
        && [ETH_P_IP, ETH_P_ARP, ETH_P_IPV6]
            .iter()
            .all(|t| s.add_ethertype(*t));
    if !added {
        bail!("the bench's port security settings do not fit PortSec");
    }
    Ok(s)
}

/// Give xb0 port security `sec` in `o`'s maps (its slot entry and its `XN_PORTS` entry).
fn set_sec(o: &mut BenchObj, d: &Dut, sec: &PortSec) -> Result<()> {
    let xb0 = d.idx("xb0")?;
    let ebpf = o.datapath_mut();
    let mut slots: Array<&mut MapData, PortConf> =
        Array::try_from(ebpf.map_mut(MAP_SLOTS).context(MAP_SLOTS)?)?;
    let mut conf = slots.get(&XB0_SLOT, 0).context("reading xb0's slot")?;
    conf.sec = *sec;
    slots.set(XB0_SLOT, conf, 0).context("writing xb0's slot")?;
    let mut ports: HashMap<&mut MapData, u32, PortConf> =
        HashMap::try_from(ebpf.map_mut(MAP_PORTS).context(MAP_PORTS)?)?;
    let mut conf = ports.get(&xb0, 0).context("reading xb0's port")?;
    conf.sec = *sec;
    ports.insert(xb0, conf, 0).context("writing xb0's port")
}

/// Pairs of runs per program and frame in a round: each pair runs the frame secured and not,
/// one after the other (which first alternates), with 1/`PAIRS` of the ladder's repeat each.
/// The checks' cost is the median of every pair's difference: pairs a few milliseconds apart
/// see the same machine, where the ladder's own steps, a second apart, do not (a 7-round
/// median of step differences moved by ±8 ns run to run here).
const PAIRS: u32 = 8;

/// One round: every frame through `xennet_xdp` and `xennet_tc` in [`PAIRS`] pairs, xb0
/// secured and not (`secured_first`: the first pair's order; xb0 is left unsecured), recorded
/// under `<program>, <frame>[, secured]` and the pair's difference under [`paired_name`].
pub fn round(
    o: &mut BenchObj,
    d: &Dut,
    repeat: u32,
    secured_first: bool,
    samples: &mut BTreeMap<String, Vec<f64>>,
) -> Result<()> {
    let sec = secured()?;
    let repeat = (repeat / PAIRS).max(1);
    for (label, frame) in LABELS.iter().zip(&frames()) {
        for prog in [PROG_XDP, PROG_TC] {
            for pair in 0..PAIRS {
                let first = secured_first == (pair % 2 == 0);
                // [unsecured, secured]
                let mut ns = [0.0; 2];
                for on in [first, !first] {
                    set_sec(o, d, if on { &sec } else { &PortSec::OFF })?;
                    ns[usize::from(on)] = if prog == PROG_XDP {
                        o.prog_ns(d, prog, frame, repeat)?
                    } else {
                        o.tc_ns(d, prog, frame, repeat)?
                    };
                }
                let plain = format!("{prog}, {label}");
                let rows = [
                    (format!("{plain}{SECURED}"), ns[1]),
                    (paired_name(prog, label), ns[1] - ns[0]),
                    (plain, ns[0]),
                ];
                for (row, v) in rows {
                    samples.entry(row).or_default().push(v);
                }
            }
        }
    }
    set_sec(o, d, &PortSec::OFF)
}

/// The rows' names in order: each program's steps, secured and not, then the per-pair
/// differences ([`paired_name`]).
pub fn rows() -> Vec<String> {
    let mut names = Vec::new();
    for prog in [PROG_XDP, PROG_TC] {
        for label in LABELS {
            let plain = format!("{prog}, {label}");
            let secured = format!("{plain}{SECURED}");
            names.extend([plain, secured]);
        }
    }
    names.extend(paired_names().into_iter().map(|(name, _, _)| name));
    names
}

/// The ladder row of the checks' cost for `prog` on frame `label`: secured minus not, per
/// pair of runs.
pub fn paired_name(prog: &str, label: &str) -> String {
    format!("port security, {label}, {prog}: secured − unsecured, per pair")
}

/// Whether ladder row `name` is one of this module's per-pair differences.
pub fn is_paired(name: &str) -> bool {
    paired_names().iter().any(|(row, _, _)| row == name)
}

/// Whether ladder row `name` is one of this module's steps (a program on one frame).
pub fn is_step(name: &str) -> bool {
    LABELS.iter().any(|label| {
        [PROG_XDP, PROG_TC].iter().any(|prog| {
            let plain = format!("{prog}, {label}");
            name == plain || name == format!("{plain}{SECURED}")
        })
    })
}

/// For a secured step, the name of the same program on the same frame unsecured.
pub fn unsecured_of(name: &str) -> Option<&str> {
    name.strip_suffix(SECURED).filter(|plain| is_step(plain))
}

/// What a row of this module is, for the report's ladder table.
pub fn describe(name: &str) -> Option<&'static str> {
    if is_paired(name) {
        Some(
            "the port-security checks' cost (issue 13): secured minus unsecured, in pairs of runs a few ms apart",
        )
    } else if unsecured_of(name).is_some() {
        Some("the same frame with the ingress port secured (its addresses, default ethertypes)")
    } else if is_step(name) {
        Some("a guest's frame on the ingress port, unsecured")
    } else {
        None
    }
}

/// The names of every per-pair difference row, with (program, frame).
pub fn paired_names() -> Vec<(String, &'static str, &'static str)> {
    let mut v = Vec::new();
    for prog in [PROG_XDP, PROG_TC] {
        for label in LABELS {
            v.push((paired_name(prog, label), prog, label));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frames_are_what_the_labels_say_and_come_from_a_static_source() {
        let f = frames();
        let types: Vec<u16> = f
            .iter()
            .map(|b| u16::from_be_bytes([b[12], b[13]]))
            .collect();
        assert_eq!(types, [ETH_P_IP, ETH_P_IPV6, ETH_P_ARP]);
        for (label, b) in LABELS.iter().zip(&f) {
            assert_eq!(b[6..12], topo::GEN_SRC, "{label}: source");
            assert_eq!(b[0..6], topo::sink_mac(1), "{label}: destination");
        }
        // The IPv4 source and the ARP sender address are the secured port's own.
        assert_eq!(f[0][26..30], ADDR4);
        assert_eq!(f[2][28..32], ADDR4);
        assert_eq!(f[1][22..38], ADDR6);
    }

    #[test]
    fn the_secured_port_owns_the_frames_addresses() {
        let s = secured().expect("fits");
        assert_eq!(s.flags & SEC_ON, SEC_ON);
        assert!(s.owns_v4(u32::from_be_bytes(ADDR4)));
        assert!(!s.owns_v4(u32::from_be_bytes(PEER4)));
        let w = |a: [u8; 16]| {
            [0, 4, 8, 12].map(|i| u32::from_be_bytes([a[i], a[i + 1], a[i + 2], a[i + 3]]))
        };
        assert!(s.owns_v6(&w(ADDR6)));
        assert!(!s.owns_v6(&w(PEER6)));
        for t in [ETH_P_IP, ETH_P_IPV6, ETH_P_ARP] {
            assert!(s.allows_ethertype(t));
        }
    }

    #[test]
    fn rows_name_each_step_and_difference_once() {
        let names = rows();
        assert_eq!(names.len(), 18);
        assert_eq!(names[0], "xennet_xdp, IPv4 UDP");
        assert_eq!(names[1], "xennet_xdp, IPv4 UDP, secured");
        let unique: std::collections::BTreeSet<&String> = names.iter().collect();
        assert_eq!(unique.len(), 18);
        for (name, _, _) in paired_names() {
            assert!(names.contains(&name));
            assert!(is_paired(&name) && !is_step(&name));
        }
        let steps = names.iter().filter(|n| is_step(n)).count();
        assert_eq!(steps, 12);
        assert!(!is_step(PROG_XDP) && !is_paired(PROG_XDP));
        let secured = format!("{PROG_TC}, IPv6 UDP{SECURED}");
        assert_eq!(unsecured_of(&secured), Some("xennet_tc, IPv6 UDP"));
        assert_eq!(unsecured_of("xennet_tc, IPv6 UDP"), None);
        assert!(names.iter().all(|n| describe(n).is_some()));
        assert_eq!(describe(PROG_XDP), None);
    }
}
