//! Host unit tests of the forwarding core: table-driven, one row per rule.
#![allow(clippy::too_many_lines, reason = "one table row per rule")]

use super::*;
use crate::maps::{FDB_STATIC, PORT_TRUNK};
use core::cell::RefCell;
use std::{collections::BTreeMap, vec, vec::Vec};

const TRUNK: u32 = 10;
const VIF1: u32 = 11; // access 4094
const VIF2: u32 = 12; // access 4094
const VIF3: u32 = 13; // access 4093
const NATIVE: u32 = 14; // trunk 100,200 native 100
const OTHER_BR: u32 = 20; // bridge 2, access 4094
const NOT_PORT: u32 = 99;

const UP: [u8; 6] = [2, 0, 0, 0, 0, 0xfe];
const G1: [u8; 6] = [0, 0x16, 0x3e, 0, 0, 1];
const G2: [u8; 6] = [0, 0x16, 0x3e, 0, 0, 2];
const G3: [u8; 6] = [0, 0x16, 0x3e, 0, 0, 3];
const N1: [u8; 6] = [0, 0x16, 0x3e, 0, 0, 4];
const O1: [u8; 6] = [0, 0x16, 0x3e, 0, 0, 5];
const HOST: [u8; 6] = [2, 0, 0, 0, 0, 0x01];
const STALE: [u8; 6] = [2, 0, 0, 0, 0, 0x5e];
const BCAST: [u8; 6] = [0xff; 6];

struct Pkt(Vec<u8>);

impl Frame for Pkt {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn load<const N: usize>(&self, off: usize) -> Option<[u8; N]> {
        self.0.get(off..off + N)?.try_into().ok()
    }
}

/// A frame whose outer tag sits in metadata (as TC sees it).
struct Offloaded(Vec<u8>, u16, u16);

impl Frame for Offloaded {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn load<const N: usize>(&self, off: usize) -> Option<[u8; N]> {
        self.0.get(off..off + N)?.try_into().ok()
    }
    fn offloaded_tag(&self) -> Option<(u16, u16)> {
        Some((self.1, self.2))
    }
}

struct World {
    ports: BTreeMap<u32, PortConf>,
    fdb: BTreeMap<(u32, u16, [u8; 6]), FdbVal>,
    stats: RefCell<Vec<PortStats>>,
}

impl Tables for World {
    fn port(&self, ifindex: u32) -> Option<&PortConf> {
        self.ports.get(&ifindex)
    }
    fn fdb(&self, k: &FdbKey) -> Option<&FdbVal> {
        self.fdb.get(&(k.bridge, k.vlan, k.mac))
    }
    fn with_stats<F: FnOnce(&mut PortStats)>(&self, slot: u32, f: F) {
        if let Some(s) = self.stats.borrow_mut().get_mut(slot as usize) {
            f(s);
        }
    }
}

fn world() -> World {
    let mut ports = BTreeMap::new();
    let mut trunk = PortConf::new(1, 1, PORT_TRUNK, 0, ETH_P_8021Q);
    trunk.add_vlan(4093);
    trunk.add_vlan(4094);
    ports.insert(TRUNK, trunk);
    ports.insert(VIF1, PortConf::new(1, 2, PORT_ACCESS, 4094, ETH_P_8021Q));
    ports.insert(VIF2, PortConf::new(1, 3, PORT_ACCESS, 4094, ETH_P_8021Q));
    ports.insert(VIF3, PortConf::new(1, 4, PORT_ACCESS, 4093, ETH_P_8021Q));
    let mut native = PortConf::new(1, 5, PORT_TRUNK, 100, ETH_P_8021Q);
    native.add_vlan(200);
    native.add_vlan(4094);
    ports.insert(NATIVE, native);
    ports.insert(
        OTHER_BR,
        PortConf::new(2, 6, PORT_ACCESS, 4094, ETH_P_8021Q),
    );

    let mut fdb = BTreeMap::new();
    let st = |ifindex| FdbVal {
        ifindex,
        flags: FDB_STATIC,
        last_seen_ns: 0,
    };
    fdb.insert((1, 4094, UP), st(TRUNK));
    fdb.insert((1, 4093, UP), st(TRUNK));
    fdb.insert((1, 4094, G1), st(VIF1));
    fdb.insert((1, 4094, G2), st(VIF2));
    fdb.insert((1, 4093, G3), st(VIF3));
    fdb.insert((1, 100, N1), st(NATIVE));
    fdb.insert((1, 200, N1), st(NATIVE));
    fdb.insert((1, 4094, N1), st(NATIVE));
    fdb.insert((2, 4094, O1), st(OTHER_BR));
    // Points into bridge 2 although keyed in bridge 1: must never be followed.
    fdb.insert((1, 4094, O1), st(OTHER_BR));
    fdb.insert((1, 4094, STALE), st(NOT_PORT));
    fdb.insert(
        (1, 4094, HOST),
        FdbVal {
            ifindex: 0,
            flags: FDB_STATIC | FDB_HOST,
            last_seen_ns: 0,
        },
    );
    // G3 lives on VLAN 4093; an entry claiming it on 4094 behind VIF3 must be refused at egress.
    fdb.insert((1, 4094, G3), st(VIF3));
    World {
        ports,
        fdb,
        stats: RefCell::new(vec![PortStats::ZERO; 8]),
    }
}

fn eth(dst: [u8; 6], src: [u8; 6], tags: &[(u16, u16)]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&dst);
    v.extend_from_slice(&src);
    for (tpid, tci) in tags {
        v.extend_from_slice(&tpid.to_be_bytes());
        v.extend_from_slice(&tci.to_be_bytes());
    }
    v.extend_from_slice(&0x0800u16.to_be_bytes());
    v.extend_from_slice(&[0x45; 46]);
    v
}

const Q: u16 = ETH_P_8021Q;
const AD: u16 = ETH_P_8021AD;

#[derive(Debug)]
struct Case {
    what: &'static str,
    ingress: u32,
    frame: Vec<u8>,
    verdict: Verdict,
    stat: Stat,
    egress: u32,
    tag: TagOp,
    vlan: u16,
}

fn fwd(
    what: &'static str,
    ingress: u32,
    frame: Vec<u8>,
    egress: u32,
    tag: TagOp,
    vlan: u16,
) -> Case {
    Case {
        what,
        ingress,
        frame,
        verdict: Verdict::Forward,
        stat: Stat::Forward,
        egress,
        tag,
        vlan,
    }
}

fn other(what: &'static str, ingress: u32, frame: Vec<u8>, verdict: Verdict, stat: Stat) -> Case {
    Case {
        what,
        ingress,
        frame,
        verdict,
        stat,
        egress: 0,
        tag: TagOp::Keep,
        vlan: u16::MAX, // not checked
    }
}

fn cases() -> Vec<Case> {
    use Verdict::{Drop, Pass};
    let push = |tci| TagOp::Push { tpid: Q, tci };
    vec![
        fwd(
            "access to access, same VLAN",
            VIF1,
            eth(G2, G1, &[]),
            VIF2,
            TagOp::Keep,
            4094,
        ),
        fwd(
            "access to trunk pushes the access VLAN",
            VIF1,
            eth(UP, G1, &[]),
            TRUNK,
            push(4094),
            4094,
        ),
        fwd(
            "access 4093 to trunk pushes 4093",
            VIF3,
            eth(UP, G3, &[]),
            TRUNK,
            push(4093),
            4093,
        ),
        fwd(
            "trunk to access pops",
            TRUNK,
            eth(G1, UP, &[(Q, 4094)]),
            VIF1,
            TagOp::Pop,
            4094,
        ),
        fwd(
            "trunk to access keeps PCP irrelevant",
            TRUNK,
            eth(G3, UP, &[(Q, 0xa000 | 0x0ffd)]),
            VIF3,
            TagOp::Pop,
            4093,
        ),
        fwd(
            "trunk to trunk keeps the tag",
            TRUNK,
            eth(N1, UP, &[(Q, 4094)]),
            NATIVE,
            TagOp::Keep,
            4094,
        ),
        other(
            "destination behind the ingress trunk",
            NATIVE,
            eth(N1, G1, &[]),
            Drop,
            Stat::DropHairpin,
        ),
        other(
            "untagged on a trunk is its native VLAN (100), where G1 is unknown",
            NATIVE,
            eth(G1, N1, &[]),
            Pass,
            Stat::PassUnknown,
        )
        .in_vlan(100),
        fwd(
            "priority tag on access is untagged",
            VIF1,
            eth(G2, G1, &[(Q, 0x6000)]),
            VIF2,
            TagOp::Pop,
            4094,
        ),
        fwd(
            "priority tag to trunk is rewritten keeping PCP",
            VIF1,
            eth(UP, G1, &[(Q, 0x6000)]),
            TRUNK,
            TagOp::Rewrite {
                tci: 0x6000 | 0x0ffe,
            },
            4094,
        ),
        fwd(
            "QinQ inner tag is payload",
            TRUNK,
            eth(G1, UP, &[(Q, 4094), (Q, 7)]),
            VIF1,
            TagOp::Pop,
            4094,
        ),
        other(
            "tag on access port",
            VIF1,
            eth(G2, G1, &[(Q, 4094)]),
            Drop,
            Stat::DropTaggedOnAccess,
        ),
        other(
            "trunk VLAN not carried",
            TRUNK,
            eth(G1, UP, &[(Q, 10)]),
            Drop,
            Stat::DropVlanNotAllowed,
        ),
        other(
            "untagged on trunk without native",
            TRUNK,
            eth(G1, UP, &[]),
            Drop,
            Stat::DropUntaggedOnTrunk,
        ),
        other(
            "priority tag on trunk without native",
            TRUNK,
            eth(G1, UP, &[(Q, 0x2000)]),
            Drop,
            Stat::DropUntaggedOnTrunk,
        ),
        other(
            "VID 4095",
            TRUNK,
            eth(G1, UP, &[(Q, 4095)]),
            Drop,
            Stat::DropBadVid,
        ),
        other(
            "802.1ad tag on a 802.1Q bridge",
            TRUNK,
            eth(G1, UP, &[(AD, 4094)]),
            Drop,
            Stat::DropForeignTpid,
        ),
        other(
            "broadcast goes to host",
            VIF1,
            eth(BCAST, G1, &[]),
            Pass,
            Stat::PassFlood,
        ),
        other(
            "multicast goes to host",
            TRUNK,
            eth([1, 0, 0x5e, 0, 0, 1], UP, &[(Q, 4093)]),
            Pass,
            Stat::PassFlood,
        ),
        other(
            "unknown unicast goes to host",
            VIF1,
            eth([2, 9, 9, 9, 9, 9], G1, &[]),
            Pass,
            Stat::PassUnknown,
        ),
        other(
            "MAC known only in another VLAN is unknown",
            VIF3,
            eth(G1, G3, &[]),
            Pass,
            Stat::PassUnknown,
        ),
        other("host entry", VIF2, eth(HOST, G2, &[]), Pass, Stat::PassHost),
        other(
            "destination on the ingress port",
            VIF1,
            eth(G1, G2, &[]),
            Drop,
            Stat::DropHairpin,
        ),
        other(
            "entry pointing at a port that is gone",
            VIF1,
            eth(STALE, G1, &[]),
            Drop,
            Stat::DropStaleFdb,
        ),
        other(
            "entry pointing into another bridge",
            VIF1,
            eth(O1, G1, &[]),
            Drop,
            Stat::DropStaleFdb,
        ),
        other(
            "egress port does not carry the VLAN",
            VIF1,
            eth(G3, G1, &[]),
            Drop,
            Stat::DropEgressVlan,
        ),
        other(
            "multicast source",
            VIF1,
            eth(G2, [1, 2, 3, 4, 5, 6], &[]),
            Drop,
            Stat::DropBadSrcMac,
        ),
        other(
            "zero source",
            VIF1,
            eth(G2, [0; 6], &[]),
            Drop,
            Stat::DropBadSrcMac,
        ),
        other("runt", VIF1, vec![0xff; 13], Drop, Stat::DropRunt),
        other("empty", VIF1, vec![], Drop, Stat::DropRunt),
        other(
            "truncated outer tag",
            TRUNK,
            {
                let mut v = eth(G1, UP, &[(Q, 4094)]);
                v.truncate(16);
                v
            },
            Drop,
            Stat::DropTruncated,
        ),
        other(
            "truncated inner tag",
            TRUNK,
            {
                let mut v = eth(G1, UP, &[(Q, 4094), (Q, 5)]);
                v.truncate(20);
                v
            },
            Drop,
            Stat::DropTruncated,
        ),
        other(
            "not a port",
            NOT_PORT,
            eth(G2, G1, &[]),
            Pass,
            Stat::PassNotPort,
        ),
        other(
            "other bridge, same VLAN id, MAC of bridge 1",
            OTHER_BR,
            eth(G1, O1, &[]),
            Pass,
            Stat::PassUnknown,
        ),
    ]
}

impl Case {
    /// Also check the classified VLAN of a non-forwarded frame.
    fn in_vlan(mut self, vlan: u16) -> Self {
        self.vlan = vlan;
        self
    }
}

#[test]
fn decision_table() {
    let w = world();
    for c in cases() {
        let d = decide(&Pkt(c.frame.clone()), &w, c.ingress);
        assert_eq!(d.verdict, c.verdict, "{}: {d:?}", c.what);
        assert_eq!(d.stat, c.stat, "{}: {d:?}", c.what);
        if c.verdict == Verdict::Forward {
            assert_eq!(d.egress, c.egress, "{}", c.what);
            assert_eq!(d.tag, c.tag, "{}", c.what);
            assert_eq!(d.vlan, c.vlan, "{}", c.what);
            assert_eq!(d.out_slot, w.ports[&c.egress].slot, "{}", c.what);
        } else if c.vlan != u16::MAX {
            assert_eq!(d.vlan, c.vlan, "{}", c.what);
        }
        let want_slot = w.ports.get(&c.ingress).map_or(0, |p| p.slot);
        assert_eq!(d.in_slot, want_slot, "{}", c.what);
    }
}

#[test]
fn native_vlan_frames() {
    let w = world();
    // Untagged on NATIVE → VLAN 100; N1 is on NATIVE itself, so use a trunk-to-native case:
    // tagged 100 from NATIVE to N1 is a hairpin; tagged 200 from TRUNK is not carried by TRUNK.
    let d = decide(&Pkt(eth(N1, UP, &[(Q, 4094)])), &w, TRUNK);
    assert_eq!(
        (d.verdict, d.egress, d.tag),
        (Verdict::Forward, NATIVE, TagOp::Keep)
    );
    // From NATIVE, tagged with its native VID → to an access port: pop.
    let d = decide(&Pkt(eth(G1, N1, &[(Q, 4094)])), &w, NATIVE);
    assert_eq!(
        (d.verdict, d.egress, d.tag),
        (Verdict::Forward, VIF1, TagOp::Pop)
    );
    // To NATIVE on its native VLAN 100 from an untagged source is untagged: build a port on 100.
    let mut w2 = world();
    w2.ports
        .insert(30, PortConf::new(1, 7, PORT_ACCESS, 100, Q));
    let d = decide(&Pkt(eth(N1, G2, &[])), &w2, 30);
    assert_eq!(
        (d.verdict, d.egress, d.tag, d.vlan),
        (Verdict::Forward, NATIVE, TagOp::Keep, 100)
    );
    // And from NATIVE, tagged with native VID 100, to the access-100 port: pop.
    w2.fdb.insert(
        (1, 100, G2),
        FdbVal {
            ifindex: 30,
            flags: FDB_STATIC,
            last_seen_ns: 0,
        },
    );
    let d = decide(&Pkt(eth(G2, N1, &[(Q, 100)])), &w2, NATIVE);
    assert_eq!(
        (d.verdict, d.egress, d.tag),
        (Verdict::Forward, 30, TagOp::Pop)
    );
}

#[test]
fn offloaded_tag_is_classified_like_an_inline_one() {
    let w = world();
    let d = decide(&Offloaded(eth(G1, UP, &[]), Q, 4094), &w, TRUNK);
    assert_eq!(
        (d.verdict, d.egress, d.tag),
        (Verdict::Forward, VIF1, TagOp::Pop)
    );
    let d = decide(&Offloaded(eth(G1, UP, &[]), Q, 10), &w, TRUNK);
    assert_eq!(d.stat, Stat::DropVlanNotAllowed);
    // An in-band tag behind an offloaded one is the inner tag.
    let h = parse(&Offloaded(eth(G1, UP, &[(Q, 7)]), Q, 4094))
        .map_err(|_| ())
        .unwrap();
    assert_eq!(h.outer, Some(Tag { tpid: Q, tci: 4094 }));
    assert_eq!(h.inner, Some(Tag { tpid: Q, tci: 7 }));
    assert!(h.outer_offloaded);
    assert_eq!(h.proto, 0x0800);
}

#[test]
fn parse_reads_both_tags_and_ethertype() {
    let h = parse(&Pkt(eth(G1, UP, &[(AD, 0x1000 | 0x1e), (Q, 40)])))
        .map_err(|_| ())
        .unwrap();
    assert_eq!(h.dst, G1);
    assert_eq!(h.src, UP);
    assert_eq!(
        h.outer,
        Some(Tag {
            tpid: AD,
            tci: 0x1000 | 0x1e
        })
    );
    assert_eq!(h.outer.map(Tag::vid), Some(30));
    assert_eq!(h.inner, Some(Tag { tpid: Q, tci: 40 }));
    assert_eq!(h.proto, 0x0800);
    let h = parse(&Pkt(eth(G1, UP, &[]))).map_err(|_| ()).unwrap();
    assert_eq!((h.outer, h.inner, h.proto), (None, None, 0x0800));
    // Exactly 14 bytes is a valid untagged header; 14 bytes announcing a tag is truncated.
    assert!(parse(&Pkt(eth(G1, UP, &[])[..14].to_vec())).is_ok());
    assert_eq!(
        parse(&Pkt(eth(G1, UP, &[(Q, 1)])[..14].to_vec())),
        Err(ParseError::Truncated)
    );
    assert_eq!(parse(&Pkt(vec![0; 5])), Err(ParseError::Runt));
}

#[test]
fn accounting_counts_rx_outcome_and_tx() {
    let w = world();
    let f = Pkt(eth(UP, G1, &[]));
    let len = f.len() as u64;
    let d = decide(&f, &w, VIF1);
    account(&w, &d, len);
    let f2 = Pkt(eth(G2, G1, &[(Q, 4094)]));
    let d2 = decide(&f2, &w, VIF1);
    account(&w, &d2, f2.len() as u64);
    let s = w.stats.borrow();
    let vif1 = &s[2];
    assert_eq!(vif1.get(Stat::RxPackets), 2);
    assert_eq!(vif1.get(Stat::RxBytes), len + f2.len() as u64);
    assert_eq!(vif1.get(Stat::Forward), 1);
    assert_eq!(vif1.get(Stat::DropTaggedOnAccess), 1);
    assert_eq!(vif1.get(Stat::TxPackets), 0);
    let trunk = &s[1];
    assert_eq!(trunk.get(Stat::TxPackets), 1);
    assert_eq!(trunk.get(Stat::TxBytes), len + 4, "pushed tag adds 4 bytes");
    assert_eq!(trunk.get(Stat::RxPackets), 0);
    // Nothing else moved.
    let total: u64 = s.iter().flat_map(|p| p.c.iter()).sum();
    assert_eq!(total, 2 + 2 * len + 4 + f2.len() as u64 + 2 + 1);
}
