//! Fuzzes the forwarding core with arbitrary frames, ports and FDB entries, and checks the
//! isolation and counting invariants on every decision (docs/security.md).
//!
//! * A forward goes to a port of the ingress port's bridge that carries the classified VLAN,
//!   never back to the ingress port; a flood copy goes only to such ports, and
//!   `flood_egress` (XDP's devmap side) agrees with `member_egress` (TC's clone loop).
//! * Frames come out with the tagging of their egress: tagged egress → an outer tag of the
//!   bridge's TPID with the classified VID; untagged egress (access port, native VLAN) of a
//!   frame that arrived untagged or priority-tagged → no tag of the bridge's TPID left in
//!   the bytes (the reference `apply` of the fixtures plays the tag operations on the wire
//!   bytes).
//! * Every frame moves exactly one outcome counter (forward, flood, a pass or a drop), and
//!   `rx_packets` once, on its ingress slot; at most one learning counter.
#![no_main]

use std::collections::BTreeMap;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use xennet_common::{
    ETH_P_8021AD, ETH_P_8021Q, VLAN_MAX, VLAN_VID_MASK,
    fwd::{
        self, Decision, Frame, Verdict,
        fixtures::host::{Fdb, Offloaded, Pkt, World, apply},
    },
    maps::{
        FDB_STATIC, FdbVal, PORT_ACCESS, PORT_F_FLOOD_VIA_TC, PORT_F_TC_ONLY, PORT_TRUNK, PortConf,
        SEC_ON,
    },
    stats::{PortStats, Stat, StatKind},
};

/// Most ports and FDB entries a case builds.
const MAX_PORTS: u8 = 8;
const MAX_ENTRIES: usize = 16;

/// A small pool of unicast MACs, so that FDB entries and frames meet.
const fn pool(i: u8) -> [u8; 6] {
    [0x00, 0x16, 0x3e, 0, 0, i & 3]
}

/// A MAC: from the pool, broadcast, multicast, link-local, zero, or any.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum MacIn {
    Pool(u8),
    Broadcast,
    Multicast,
    LinkLocal,
    Zero,
    Any([u8; 6]),
}

impl MacIn {
    fn mac(self) -> [u8; 6] {
        match self {
            MacIn::Pool(i) => pool(i),
            MacIn::Broadcast => [0xff; 6],
            MacIn::Multicast => [0x01, 0x00, 0x5e, 0, 0, 1],
            MacIn::LinkLocal => [0x01, 0x80, 0xc2, 0, 0, 0],
            MacIn::Zero => [0; 6],
            MacIn::Any(m) => m,
        }
    }
}

#[derive(Arbitrary, Debug)]
struct PortIn {
    /// Bridge 1..=3; bridge 2 is 802.1ad, the others 802.1Q (one TPID per bridge).
    bridge: u8,
    access: bool,
    pvid: u16,
    vlans: Vec<u16>,
    max_learned: u8,
    tc_only: bool,
    /// Port security: `SEC_*` bits beyond `SEC_ON`, one IPv4 and one IPv6 prefix.
    security: Option<(u8, [u8; 4], u8, [u8; 16], u8)>,
}

#[derive(Arbitrary, Debug)]
struct EntryIn {
    bridge: u8,
    vlan: u16,
    mac: MacIn,
    /// Ifindex `0..=MAX_PORTS + 1`: ports, and interfaces that are not (stale entries).
    ifindex: u8,
    /// The port slot the entry claims (`XN_SLOTS` index): right, wrong or 0 (unknown); the
    /// datapath must check it against the ifindex.
    slot: u8,
    is_static: bool,
    last_seen_ns: u64,
}

/// A tag (outermost first): which TPID, and the TCI.
#[derive(Arbitrary, Debug, Clone, Copy)]
struct TagIn {
    tpid: u8,
    tci: u16,
}

impl TagIn {
    fn tpid(self) -> u16 {
        match self.tpid % 4 {
            0 | 1 => ETH_P_8021Q,
            2 => ETH_P_8021AD,
            _ => 0x9100,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum FrameIn {
    /// Any bytes.
    Raw(Vec<u8>),
    /// MACs, up to a few tags, an ethertype, a payload, maybe cut short.
    Built {
        dst: MacIn,
        src: MacIn,
        tags: Vec<TagIn>,
        ethertype: u16,
        payload: u8,
        cut: Option<u8>,
    },
}

impl FrameIn {
    fn bytes(&self) -> Vec<u8> {
        match self {
            FrameIn::Raw(b) => b.clone(),
            FrameIn::Built {
                dst,
                src,
                tags,
                ethertype,
                payload,
                cut,
            } => {
                let mut f = Vec::new();
                f.extend_from_slice(&dst.mac());
                f.extend_from_slice(&src.mac());
                for t in tags.iter().take(4) {
                    f.extend_from_slice(&t.tpid().to_be_bytes());
                    f.extend_from_slice(&t.tci.to_be_bytes());
                }
                f.extend_from_slice(&ethertype.to_be_bytes());
                f.extend(0..*payload);
                if let Some(n) = cut {
                    f.truncate(usize::from(*n));
                }
                f
            }
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    ports: Vec<PortIn>,
    entries: Vec<EntryIn>,
    fdb_capacity: u8,
    ingress: u8,
    /// TC: the outer tag (if any) sits in skb metadata.
    offload: bool,
    frame: FrameIn,
}

const fn bridge_tpid(bridge: u32) -> u16 {
    if bridge == 2 {
        ETH_P_8021AD
    } else {
        ETH_P_8021Q
    }
}

/// A valid VLAN id (1..=4094) from any number.
fn vid(v: u16) -> u16 {
    (v % VLAN_MAX) + 1
}

/// The world the agent could build: ports as its validator allows them (one TPID per bridge,
/// the pvid carried, VLANs 1..=4094), ifindex `i + 1`, stats slot `i + 1`.
fn world(inp: &Input) -> World {
    let mut ports = BTreeMap::new();
    let n = inp.ports.len().min(usize::from(MAX_PORTS));
    let mut tc_bridges = Vec::new();
    for (i, p) in (1u32..).zip(inp.ports.iter().take(n)) {
        let (ifindex, slot) = (i, i);
        let bridge = u32::from(p.bridge % 3) + 1;
        let tpid = bridge_tpid(bridge);
        let mut c = if p.access {
            PortConf::new(bridge, slot, PORT_ACCESS, vid(p.pvid), tpid)
        } else {
            let pvid = if p.pvid % 3 == 0 { 0 } else { vid(p.pvid) };
            let mut c = PortConf::new(bridge, slot, PORT_TRUNK, pvid, tpid);
            for v in p.vlans.iter().take(8) {
                c.add_vlan(vid(*v));
            }
            c
        };
        c.max_learned = u32::from(p.max_learned % 4);
        if let Some((flags, a4, l4, a6, l6)) = p.security {
            c.sec.flags = SEC_ON | (flags & !SEC_ON & 0x1f);
            if flags & 0x80 != 0 {
                c.sec.add_v4(a4, l4 % 33);
            }
            if flags & 0x40 != 0 {
                c.sec.add_v6(a6, l6 % 129);
            }
            for t in [0x0800, 0x0806, 0x86dd] {
                c.sec.add_ethertype(t);
            }
        }
        if p.tc_only {
            c.flags |= PORT_F_TC_ONLY;
            tc_bridges.push(bridge);
        }
        ports.insert(ifindex, c);
    }
    for c in ports.values_mut() {
        if tc_bridges.contains(&c.bridge) {
            c.flags |= PORT_F_FLOOD_VIA_TC;
        }
    }
    let mut fdb = Fdb::new();
    for e in inp.entries.iter().take(MAX_ENTRIES) {
        let val = FdbVal {
            ifindex: u32::from(e.ifindex) % (u32::from(MAX_PORTS) + 2),
            flags: if e.is_static { FDB_STATIC } else { 0 },
            slot: u16::from(e.slot) % (u16::from(MAX_PORTS) + 2),
            last_seen_ns: e.last_seen_ns,
        };
        fdb.insert((u32::from(e.bridge % 3) + 1, vid(e.vlan), e.mac.mac()), val);
    }
    let mut w = World::new(ports, fdb);
    w.fdb_capacity = usize::from(inp.fdb_capacity % 32);
    w.learned = vec![0; usize::from(MAX_PORTS) + 1].into();
    w.stats = vec![PortStats::ZERO; usize::from(MAX_PORTS) + 1].into();
    w
}

/// The outer in-band tag of `f`, if its TPID is `tpid`: its VID.
fn tag_of(f: &[u8], tpid: u16) -> Option<u16> {
    let t = u16::from_be_bytes([*f.get(12)?, *f.get(13)?]);
    let tci = u16::from_be_bytes([*f.get(14)?, *f.get(15)?]);
    (t == tpid).then_some(tci & VLAN_VID_MASK)
}

/// Check a frame leaving through `out` in `vlan`: tagged with the VID where the VLAN is
/// tagged; where it is untagged, no tag of the bridge's TPID when `clean` (the frame arrived
/// untagged or priority-tagged).
fn check_egress(wire: &[u8], out: &PortConf, vlan: u16, clean: bool, what: &str) {
    if vlan == out.pvid {
        assert!(
            !clean || tag_of(wire, out.tpid).is_none(),
            "{what}: a tag of the bridge's TPID left on an untagged egress: {wire:02x?}"
        );
    } else {
        assert_eq!(
            tag_of(wire, out.tpid),
            Some(vlan),
            "{what}: tagged egress without its VLAN tag: {wire:02x?}"
        );
    }
}

fn counters(w: &World) -> Vec<PortStats> {
    w.stats.borrow().clone()
}

/// Every counter kind's total change over all slots, and `rx_packets` on `slot`.
fn check_counts(before: &[PortStats], after: &[PortStats], d: &Decision) {
    let mut outcomes = 0;
    let mut learning = 0;
    for (b, a) in before.iter().zip(after) {
        for s in Stat::ALL {
            let delta = a.get(s) - b.get(s);
            match s.kind() {
                StatKind::Outcome | StatKind::Pass | StatKind::Drop => outcomes += delta,
                StatKind::Learning => learning += delta,
                _ => {}
            }
        }
    }
    assert_eq!(outcomes, 1, "exactly one outcome counter: {d:?}");
    assert!(learning <= 1, "at most one learning event: {d:?}");
    let slot = d.in_slot as usize;
    assert_eq!(
        after[slot].get(Stat::RxPackets) - before[slot].get(Stat::RxPackets),
        1,
        "rx_packets on the ingress slot: {d:?}"
    );
    assert_eq!(
        after[slot].get(d.stat) - before[slot].get(d.stat),
        1,
        "the outcome on the ingress slot: {d:?}"
    );
}

fn check(inp: &Input) {
    let w = world(inp);
    let ingress = u32::from(inp.ingress) % (u32::from(MAX_PORTS) + 2);
    let bytes = inp.frame.bytes();
    // TC may see the outer tag in metadata: the same wire frame, decided the same way.
    let offloaded = inp.offload
        && bytes.len() >= 16
        && matches!(
            u16::from_be_bytes([bytes[12], bytes[13]]),
            ETH_P_8021Q | ETH_P_8021AD
        );
    let before = counters(&w);
    let d = if offloaded {
        let mut rest = bytes.clone();
        let tag: Vec<u8> = rest.drain(12..16).collect();
        let f = Offloaded(
            rest,
            u16::from_be_bytes([tag[0], tag[1]]),
            u16::from_be_bytes([tag[2], tag[3]]),
        );
        let d = fwd::decide(&f, &w, ingress);
        fwd::account(&w, &d, f.len() as u64 + 4);
        d
    } else {
        let d = fwd::decide(&Pkt(bytes.clone()), &w, ingress);
        fwd::account(&w, &d, bytes.len() as u64);
        d
    };
    check_counts(&before, &counters(&w), &d);
    if w.ports.get(&ingress).is_some_and(|p| p.sec.flags & SEC_ON != 0) {
        // A secured port never learns: its sources are its static MACs.
        assert_eq!(d.learn, None, "a secured port learned: {d:?}");
    }
    if !matches!(d.verdict, Verdict::Forward | Verdict::Flood) {
        return;
    }
    let inp_port = w
        .ports
        .get(&ingress)
        .expect("only a port forwards or floods");
    let tpid = inp_port.tpid;
    assert!(d.vlan >= 1 && d.vlan <= VLAN_MAX, "classified VLAN {d:?}");
    assert!(
        inp_port.carries(d.vlan),
        "the ingress port carries the VLAN: {d:?}"
    );
    // Arrived untagged or priority-tagged, i.e. classified into the port's untagged VLAN.
    let clean = match tag_of(&bytes, tpid) {
        None => true,
        Some(v) => v == 0,
    };
    let out_bytes = apply(&bytes, d.tag);
    match d.verdict {
        Verdict::Forward => {
            assert_ne!(d.egress, ingress, "forward back to the ingress port: {d:?}");
            let out = w.ports.get(&d.egress).expect("forward to a port");
            assert_eq!(
                out.bridge, inp_port.bridge,
                "forward into another bridge: {d:?}"
            );
            assert!(
                out.carries(d.vlan),
                "forward to a port without the VLAN: {d:?}"
            );
            assert_eq!(out.slot, d.out_slot, "egress slot: {d:?}");
            check_egress(&out_bytes, out, d.vlan, clean, "forward");
        }
        Verdict::Flood => {
            // The flood's normal form: tagged with its VLAN, the bridge's TPID.
            assert_eq!(
                tag_of(&out_bytes, tpid),
                Some(d.vlan),
                "flood normal form {d:?}"
            );
            for (&ifindex, out) in &w.ports {
                if ifindex == ingress {
                    continue;
                }
                let member = fwd::member_egress(inp_port.bridge, out, d.vlan);
                let copy = fwd::flood_egress(&Pkt(out_bytes.clone()), &w, ingress, ifindex);
                assert_eq!(
                    member.is_some(),
                    copy.is_some(),
                    "XDP's and TC's flood members disagree: {d:?}"
                );
                let Some((op, slot)) = copy else { continue };
                assert_eq!(
                    out.bridge, inp_port.bridge,
                    "flood into another bridge: {d:?}"
                );
                assert!(
                    out.carries(d.vlan),
                    "flood to a port without the VLAN: {d:?}"
                );
                assert_eq!(slot, out.slot);
                check_egress(&apply(&out_bytes, op), out, d.vlan, clean, "flood copy");
            }
        }
        Verdict::Pass | Verdict::Drop => {}
    }
}

fuzz_target!(|inp: Input| check(&inp));
