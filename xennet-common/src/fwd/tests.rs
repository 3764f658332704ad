//! Host unit tests of the forwarding core: the shared fixture tables (`fixtures`), and the
//! rules a frame table cannot show (parsing, accounting, learning over time, flood egress).
#![allow(clippy::too_many_lines, reason = "one table row per rule")]

use super::{
    fixtures::host::{Offloaded, Pkt, World, apply},
    *,
};
use crate::{
    ETH_P_8021AD, ETH_P_8021Q,
    fdbcache::CALM_MARGIN_NS,
    maps::{FDB_STATIC, PORT_TRUNK},
};
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
const L1: [u8; 6] = [2, 0, 0, 0, 0, 0x11];
const L2: [u8; 6] = [2, 0, 0, 0, 0, 0x12];
const L3: [u8; 6] = [2, 0, 0, 0, 0, 0x13];
const STALE: [u8; 6] = [2, 0, 0, 0, 0, 0x5e];
const BCAST: [u8; 6] = [0xff; 6];

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
        slot: 0,
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
    // G3 lives on VLAN 4093; an entry claiming it on 4094 behind VIF3 must be refused at egress.
    fdb.insert((1, 4094, G3), st(VIF3));
    World::new(ports, fdb)
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

/// The shared fixture table on the host core, in one world as the kernel runs it: every row's
/// verdict, output bytes and counter deltas, and the FDB untouched afterwards.
#[test]
fn fixture_table_on_the_host() {
    let lab = fixtures::lab::MAIN;
    let w = World::from_lab(&lab);
    let fdb = w.fdb.borrow().clone();
    let rows = fixtures::table::main_table();
    fixtures::run_all("host table", &rows, |r| r.what, |r| w.check(r, &lab));
    assert_eq!(*w.fdb.borrow(), fdb, "the table must not change the FDB");
    assert!(
        w.learned.borrow().iter().all(|n| *n == 0),
        "nothing learned"
    );
}

/// Every outcome and learning counter of the core has a host row in the fixture tables, but
/// those only a program can produce and the full table (a test of its own here).
#[test]
fn fixture_rows_cover_every_core_outcome() {
    let elsewhere = [
        Stat::DropTagOp,      // a program's tag helper failing
        Stat::DropRedirect,   // a program's redirect failing
        Stat::FloodTruncated, // TC's flood loop
        Stat::LearnTableFull, // per_port_limit_and_full_table_stop_learning_not_forwarding
        Stat::DropRateLimit,  // a limit over time: rate::tests::limits_in_the_core
    ];
    let story = fixtures::story::learning_story();
    let rows = fixtures::table::main_table();
    let hostile = fixtures::hostile::hostile_table();
    let portsec = fixtures::portsec::portsec_table();
    let moves = fixtures::moves::move_story();
    let mut covered: Vec<Stat> = Vec::new();
    for r in rows
        .iter()
        .chain(story.iter().map(|s| &s.row))
        .chain(&hostile)
        .chain(&portsec)
        .chain(moves.iter().map(|s| &s.row))
    {
        covered.push(r.stat);
        covered.extend(r.learn);
        if r.moves {
            covered.push(Stat::LearnStaticMove);
        }
    }
    for s in Stat::ALL.iter().skip(Stat::Forward as usize) {
        assert!(
            covered.contains(s) != elsewhere.contains(s),
            "{}: a host row, or a reason it has none",
            s.name()
        );
    }
}

/// The hostile frames on the host core, in their lab: verdict, output bytes, counters, and
/// the FDB untouched.
#[test]
fn fixture_hostile_table_on_the_host() {
    let lab = fixtures::hostile::HOSTILE;
    let w = World::from_lab(&lab);
    let fdb = w.fdb.borrow().clone();
    let rows = fixtures::hostile::hostile_table();
    fixtures::run_all(
        "host hostile table",
        &rows,
        |r| r.what,
        |r| w.check(r, &lab),
    );
    assert_eq!(*w.fdb.borrow(), fdb, "the table must not change the FDB");
}

/// The port security frames on the host core, in their lab: verdict, output bytes, counters,
/// and the FDB untouched (a secured port never learns).
#[test]
fn fixture_portsec_table_on_the_host() {
    let lab = fixtures::portsec::PORTSEC;
    let w = World::from_lab(&lab);
    let fdb = w.fdb.borrow().clone();
    let rows = fixtures::portsec::portsec_table();
    fixtures::run_all(
        "host portsec table",
        &rows,
        |r| r.what,
        |r| w.check(r, &lab),
    );
    assert_eq!(*w.fdb.borrow(), fdb, "the table must not change the FDB");
}

/// The bandwidth limit rows on the host core, in order in their lab: two frames within the
/// burst forwarded, the third refused as `drop_rate_limit`, the other way unaffected.
#[test]
fn fixture_rate_rows_on_the_host() {
    let lab = fixtures::rate::RATED;
    let w = World::from_lab(&lab);
    for r in fixtures::rate::rate_rows() {
        w.check(&r, &lab);
    }
}

/// TC usually sees the outer tag in skb metadata and the next tag in the bytes: every hostile
/// row whose outer tag is in-band is decided the same way with that tag offloaded.
#[test]
fn hostile_rows_decide_the_same_with_the_outer_tag_offloaded() {
    let n = rows_decide_the_same_offloaded(
        &fixtures::hostile::HOSTILE,
        fixtures::hostile::hostile_table(),
    );
    assert!(n >= 20, "only {n} rows had an outer tag");
}

/// The same for the port security rows with an in-band tag (a priority tag in front of the
/// L3 header the checks read: their offset moves by 4 when TC sees the tag offloaded).
#[test]
fn portsec_rows_decide_the_same_with_the_outer_tag_offloaded() {
    let n = rows_decide_the_same_offloaded(
        &fixtures::portsec::PORTSEC,
        fixtures::portsec::portsec_table(),
    );
    assert!(n >= 3, "only {n} rows had an outer tag");
}

/// Decide every row of `rows` with an outer tag in its bytes both ways, inline and
/// offloaded, and check that both give the row's outcome; returns how many rows had one.
fn rows_decide_the_same_offloaded(lab: &fixtures::lab::Lab, rows: Vec<fixtures::Row>) -> usize {
    let w = World::from_lab(lab);
    let mut offloaded = 0;
    for r in rows {
        let f = &r.input;
        // The kernel offloads a whole tag only (the ethertype after it present).
        if f.len() < 18 || !matches!(u16::from_be_bytes([f[12], f[13]]), Q | AD) {
            continue;
        }
        let inline = decide(&Pkt(f.clone()), &w, w.ifindex(r.port));
        let mut rest = f.clone();
        let tag: Vec<u8> = rest.drain(12..16).collect();
        let (tpid, tci) = (
            u16::from_be_bytes([tag[0], tag[1]]),
            u16::from_be_bytes([tag[2], tag[3]]),
        );
        let d = decide(&Offloaded(rest, tpid, tci), &w, w.ifindex(r.port));
        assert_eq!(
            (d.verdict, d.stat, d.egress, d.vlan, d.tag),
            (
                inline.verdict,
                inline.stat,
                inline.egress,
                inline.vlan,
                inline.tag
            ),
            "{}",
            r.what
        );
        assert_eq!(d.stat, r.stat, "{}", r.what);
        offloaded += 1;
    }
    offloaded
}

/// The learning story on the host core: every step, then the learned count of every port.
#[test]
fn fixture_learning_story_on_the_host() {
    let lab = fixtures::lab::MAIN;
    let w = World::from_lab(&lab);
    let statics = w.fdb.borrow().len();
    let story = fixtures::story::learning_story();
    fixtures::run_all(
        "host story",
        &story,
        |s| s.row.what,
        |s| {
            w.check(&s.row, &lab);
            let got = fixtures::story::STORY_PORTS.map(|p| w.learned_on(p));
            assert_eq!(
                got, s.learned,
                "{}: learned counts after the step",
                s.row.what
            );
        },
    );
    let learned: Vec<(u16, [u8; 6], u32)> = w
        .fdb
        .borrow()
        .iter()
        .filter(|(_, v)| v.flags & FDB_STATIC == 0)
        .map(|((_, vlan, mac), v)| (*vlan, *mac, v.ifindex))
        .collect();
    let mut want: Vec<(u16, [u8; 6], u32)> = fixtures::story::learned_after_story()
        .into_iter()
        .map(|(mac, vlan, port)| (vlan, mac, w.ifindex(port)))
        .collect();
    want.sort_unstable();
    assert_eq!(learned, want, "learned FDB entries");
    assert_eq!(
        w.fdb.borrow().len(),
        statics + want.len(),
        "static entries untouched"
    );
}

/// The table of the lab where XDP defers to TC, on the host core: the decision XDP and TC
/// both take, with `defer_to_tc` set exactly where XDP hands the frame over.
#[test]
fn fixture_defer_table_on_the_host() {
    let lab = fixtures::lab::DEFER;
    let w = World::from_lab(&lab);
    let rows = fixtures::extra::defer_table();
    fixtures::run_all("host defer table", &rows, |r| r.what, |r| w.check(r, &lab));
}
#[test]
fn native_vlan_frames() {
    let w = world();
    // Untagged on NATIVE → VLAN 100; N1 is on NATIVE itself, so use a trunk-to-native case:
    // tagged 100 from NATIVE to N1 is a hairpin; tagged 200 from TRUNK is not carried by TRUNK.
    let d = decide(&Pkt(eth(N1, UP, &[(Q, 4094)])), &w, TRUNK);
    assert_eq!(
        (d.verdict, d.egress, d.tag),
        (Verdict::Forward, NATIVE, TagOp::KEEP)
    );
    // From NATIVE, tagged with its native VID → to an access port: pop.
    let d = decide(&Pkt(eth(G1, N1, &[(Q, 4094)])), &w, NATIVE);
    assert_eq!(
        (d.verdict, d.egress, d.tag),
        (Verdict::Forward, VIF1, TagOp::POP)
    );
    // To NATIVE on its native VLAN 100 from an untagged source is untagged: build a port on 100.
    let mut w2 = world();
    w2.ports
        .insert(30, PortConf::new(1, 7, PORT_ACCESS, 100, Q));
    let d = decide(&Pkt(eth(N1, G2, &[])), &w2, 30);
    assert_eq!(
        (d.verdict, d.egress, d.tag, d.vlan),
        (Verdict::Forward, NATIVE, TagOp::KEEP, 100)
    );
    // And from NATIVE, tagged with native VID 100, to the access-100 port: pop.
    w2.fdb.borrow_mut().insert(
        (1, 100, G2),
        FdbVal {
            ifindex: 30,
            flags: FDB_STATIC,
            slot: 0,
            last_seen_ns: 0,
        },
    );
    let d = decide(&Pkt(eth(G2, N1, &[(Q, 100)])), &w2, NATIVE);
    assert_eq!(
        (d.verdict, d.egress, d.tag),
        (Verdict::Forward, 30, TagOp::POP)
    );
}

#[test]
fn offloaded_tag_is_classified_like_an_inline_one() {
    let w = world();
    let d = decide(&Offloaded(eth(G1, UP, &[]), Q, 4094), &w, TRUNK);
    assert_eq!(
        (d.verdict, d.egress, d.tag),
        (Verdict::Forward, VIF1, TagOp::POP)
    );
    let d = decide(&Offloaded(eth(G1, UP, &[]), Q, 10), &w, TRUNK);
    assert_eq!(d.stat, Stat::DropVlanNotAllowed);
    // An in-band tag behind an offloaded one is the inner tag.
    let h = parse(&Offloaded(eth(G1, UP, &[(Q, 7)]), Q, 4094))
        .map_err(|_| ())
        .unwrap();
    assert_eq!(h.outer.get(), Some(Tag { tpid: Q, tci: 4094 }));
    assert_eq!(h.inner.get(), Some(Tag { tpid: Q, tci: 7 }));
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
        h.outer.get(),
        Some(Tag {
            tpid: AD,
            tci: 0x1000 | 0x1e
        })
    );
    assert_eq!(h.outer.map(Tag::vid), Some(30));
    assert_eq!(h.inner.get(), Some(Tag { tpid: Q, tci: 40 }));
    assert_eq!(h.proto, 0x0800);
    let h = parse(&Pkt(eth(G1, UP, &[]))).map_err(|_| ()).unwrap();
    assert_eq!(
        (h.outer.get(), h.inner.get(), h.proto),
        (None, None, 0x0800)
    );
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

/// A program that cannot carry out a decision (a TC flood whose tag helper failed) turns it
/// into a drop with `into_drop`: the learning the core did still counts, once (issue 10,
/// item 13; the helper failure itself cannot be provoked in a test run).
#[test]
fn a_failed_flood_still_counts_its_learning_once() {
    let w = world();
    let f = Pkt(eth(BCAST, L1, &[]));
    let d = decide(&f, &w, VIF1);
    assert_eq!((d.verdict, d.learn), (Verdict::Flood, Some(Stat::LearnNew)));
    let d = d.into_drop(Stat::DropTagOp);
    assert_eq!(
        (d.verdict, d.stat, d.in_slot),
        (Verdict::Drop, Stat::DropTagOp, 2)
    );
    account(&w, &d, f.len() as u64);
    let s = w.stats.borrow();
    assert_eq!(s[2].get(Stat::DropTagOp), 1);
    assert_eq!(s[2].get(Stat::LearnNew), 1);
    assert_eq!(s[2].get(Stat::Flood), 0);
    assert_eq!(w.learned(2), 1, "the learned count matches the counter");
}

#[test]
fn learning_new_refresh_move_and_static() {
    let w = world();
    let t0 = w.now();
    // A new MAC behind VIF1 is learned, counted, and then reachable.
    let d = w.run(VIF1, eth(BCAST, L1, &[]));
    assert_eq!((d.verdict, d.learn), (Verdict::Flood, Some(Stat::LearnNew)));
    assert_eq!(
        w.entry(1, 4094, L1),
        Some(FdbVal {
            ifindex: VIF1,
            flags: 0,
            slot: 2,
            last_seen_ns: t0
        })
    );
    assert_eq!(w.learned(2), 1);
    assert_eq!(w.stat(VIF1, Stat::LearnNew), 1);
    let d = w.run(TRUNK, eth(L1, UP, &[(Q, 4094)]));
    assert_eq!(
        (d.verdict, d.egress, d.tag),
        (Verdict::Forward, VIF1, TagOp::POP)
    );
    // Learned per VLAN: the same MAC in 4093 is still unknown.
    assert_eq!(
        w.run(TRUNK, eth(L1, UP, &[(Q, 4093)])).verdict,
        Verdict::Flood
    );

    // Younger than REFRESH_NS − CALM_MARGIN_NS the entry is not rewritten; a frame before
    // it is REFRESH_NS old moves last_seen (the calm window of the first frame is over).
    w.now.set(t0 + REFRESH_NS - CALM_MARGIN_NS - 1);
    assert_eq!(w.run(VIF1, eth(G2, L1, &[])).learn, None);
    assert_eq!(w.entry(1, 4094, L1).map(|e| e.last_seen_ns), Some(t0));
    w.now.set(t0 + REFRESH_NS - 1);
    assert_eq!(w.run(VIF1, eth(G2, L1, &[])).learn, None);
    assert_eq!(
        w.entry(1, 4094, L1).map(|e| e.last_seen_ns),
        Some(t0 + REFRESH_NS - 1)
    );
    assert_eq!(w.learned(2), 1, "a refresh is not a new MAC");

    // The station moves to VIF2 (a migrated guest): followed at its first frame.
    let d = w.run(VIF2, eth(G1, L1, &[]));
    assert_eq!(
        (d.verdict, d.learn),
        (Verdict::Forward, Some(Stat::LearnMove))
    );
    assert_eq!(w.entry(1, 4094, L1).map(|e| e.ifindex), Some(VIF2));
    assert_eq!((w.learned(2), w.learned(3)), (0, 1));
    assert_eq!(w.stat(VIF2, Stat::LearnMove), 1);
    let d = w.run(TRUNK, eth(L1, UP, &[(Q, 4094)]));
    assert_eq!(d.egress, VIF2);

    // Static entries are never overwritten; a claim from another port is dropped.
    let before = w.entry(1, 4094, G1);
    let d = w.run(VIF2, eth(BCAST, G1, &[]));
    assert_eq!((d.verdict, d.stat), (Verdict::Drop, Stat::DropStaticMac));
    assert_eq!(w.entry(1, 4094, G1), before);
    assert_eq!(w.stat(VIF2, Stat::DropStaticMac), 1);
    // ... while the owner's own frames leave it alone.
    assert_eq!(w.run(VIF1, eth(BCAST, G1, &[])).learn, None);
    assert_eq!(w.entry(1, 4094, G1), before);
}

#[test]
fn per_port_limit_and_full_table_stop_learning_not_forwarding() {
    let mut w = world();
    if let Some(p) = w.ports.get_mut(&VIF1) {
        p.max_learned = 2;
    }
    assert_eq!(w.run(VIF1, eth(BCAST, L1, &[])).learn, Some(Stat::LearnNew));
    assert_eq!(w.run(VIF1, eth(BCAST, L2, &[])).learn, Some(Stat::LearnNew));
    let d = w.run(VIF1, eth(G2, L3, &[]));
    assert_eq!(d.learn, Some(Stat::LearnLimit));
    assert_eq!(
        (d.verdict, d.egress),
        (Verdict::Forward, VIF2),
        "forwarding continues"
    );
    assert_eq!(w.entry(1, 4094, L3), None);
    assert_eq!(w.learned(2), 2);
    assert_eq!(w.stat(VIF1, Stat::LearnLimit), 1);
    // A port at its limit cannot take over a MAC learned elsewhere either.
    if let Some(p) = w.ports.get_mut(&VIF2) {
        p.max_learned = 1;
    }
    assert_eq!(
        w.run(VIF2, eth(BCAST, [2, 0, 0, 9, 9, 9], &[])).learn,
        Some(Stat::LearnNew)
    );
    let d = w.run(VIF2, eth(G1, L1, &[]));
    assert_eq!(d.learn, Some(Stat::LearnLimit));
    assert_eq!(
        w.entry(1, 4094, L1).map(|e| e.ifindex),
        Some(VIF1),
        "not moved"
    );
    assert_eq!((w.learned(2), w.learned(3)), (2, 1));
    if let Some(p) = w.ports.get_mut(&VIF2) {
        p.max_learned = 0;
    }
    // Limits are per port: VIF2 still learns the MAC that VIF1 could not.
    assert_eq!(w.run(VIF2, eth(BCAST, L3, &[])).learn, Some(Stat::LearnNew));
    // Full table.
    let mut w = world();
    w.fdb_capacity = w.fdb.borrow().len();
    let d = w.run(VIF1, eth(BCAST, L1, &[]));
    assert_eq!(
        (d.verdict, d.learn),
        (Verdict::Flood, Some(Stat::LearnTableFull))
    );
    assert_eq!(w.learned(2), 0);
    assert_eq!(w.stat(VIF1, Stat::LearnTableFull), 1);
    assert_eq!(w.stat(VIF1, Stat::Flood), 1);
}

#[test]
fn unlimited_when_max_learned_is_zero() {
    let w = world();
    for i in 0..40u8 {
        let d = w.run(VIF1, eth(BCAST, [2, 0, 0, 1, 0, i], &[]));
        assert_eq!(d.learn, Some(Stat::LearnNew), "MAC {i}");
    }
    assert_eq!(w.learned(2), 40);
}

#[test]
fn flood_egress_tags_per_port_and_filters() {
    let w = world();
    let tagged = |vid| Pkt(eth(BCAST, G1, &[(Q, vid)]));
    // From VIF1 (4094): to VIF2 (access 4094) pop; to TRUNK keep; to VIF3 (4093) nothing;
    // to NATIVE (carries 4094 tagged) keep; to the other bridge nothing.
    assert_eq!(
        flood_egress(&tagged(4094), &w, VIF1, VIF2),
        Some((TagOp::POP, 3))
    );
    assert_eq!(
        flood_egress(&tagged(4094), &w, VIF1, TRUNK),
        Some((TagOp::KEEP, 1))
    );
    assert_eq!(flood_egress(&tagged(4094), &w, VIF1, VIF3), None);
    assert_eq!(
        flood_egress(&tagged(4094), &w, VIF1, NATIVE),
        Some((TagOp::KEEP, 5))
    );
    assert_eq!(flood_egress(&tagged(4094), &w, VIF1, OTHER_BR), None);
    // Native VLAN leaves a trunk untagged.
    assert_eq!(
        flood_egress(&tagged(100), &w, NATIVE, NATIVE),
        Some((TagOp::POP, 5))
    );
    assert_eq!(flood_egress(&tagged(100), &w, NATIVE, TRUNK), None);
    // Untagged, priority-tagged, foreign TPID or unknown ports: nothing (fail closed).
    assert_eq!(
        flood_egress(&Pkt(eth(BCAST, G1, &[])), &w, VIF1, VIF2),
        None
    );
    assert_eq!(flood_egress(&tagged(0), &w, VIF1, VIF2), None);
    assert_eq!(
        flood_egress(&Pkt(eth(BCAST, G1, &[(AD, 4094)])), &w, VIF1, VIF2),
        None
    );
    assert_eq!(flood_egress(&tagged(4094), &w, NOT_PORT, VIF2), None);
    assert_eq!(flood_egress(&tagged(4094), &w, VIF1, NOT_PORT), None);
}

#[test]
fn flood_round_trip_matches_unicast_tagging() {
    // For every ingress/egress pair of bridge 1, flooding (normalise then finish per port)
    // yields the same bytes on the wire as a known-unicast forward would.
    let w = world();
    let frames: [(u32, Vec<u8>); 4] = [
        (VIF1, eth(BCAST, G1, &[])),
        (VIF3, eth(BCAST, G3, &[])),
        (TRUNK, eth(BCAST, UP, &[(Q, 0x2000 | 0x0ffe)])),
        (NATIVE, eth(BCAST, N1, &[])),
    ];
    for (ingress, frame) in frames {
        let d = decide(&Pkt(frame.clone()), &w, ingress);
        assert_eq!(d.verdict, Verdict::Flood);
        let normal = apply(&frame, d.tag);
        for (&egress, out) in &w.ports {
            if egress == ingress || out.bridge != 1 {
                continue;
            }
            let got = flood_egress(&Pkt(normal.clone()), &w, ingress, egress)
                .map(|(op, _)| apply(&normal, op));
            let want = out.carries(d.vlan).then(|| {
                let mut f = frame.clone();
                // What unicast would send: strip any tag, then tag unless untagged egress.
                if f[12..14] == Q.to_be_bytes() {
                    f = apply(&f, TagOp::POP);
                }
                if d.vlan == out.pvid {
                    f
                } else {
                    let pcp = parse(&Pkt(frame.clone()))
                        .ok()
                        .and_then(|h| h.outer.get())
                        .map_or(0, |t| t.tci & 0xf000);
                    apply(&f, TagOp::push(Q, pcp | d.vlan))
                }
            });
            assert_eq!(got, want, "{ingress} → {egress}");
        }
    }
}

#[test]
fn egress_through_the_fdb_slot_is_checked_against_the_ifindex() {
    let w = world();
    let put = |mac, ifindex, slot| {
        w.fdb.borrow_mut().insert(
            (1, 4094, mac),
            FdbVal {
                ifindex,
                flags: FDB_STATIC,
                slot,
                last_seen_ns: 0,
            },
        );
    };
    // The slot holds the entry's port: forwarded there.
    put(L2, VIF2, 3);
    let d = w.run(VIF1, eth(L2, G1, &[]));
    assert_eq!(
        (d.verdict, d.egress, d.out_slot),
        (Verdict::Forward, VIF2, 3)
    );
    // A slot now holding another port (VIF3, VLAN 4093, which would drop the frame): the
    // port is found by ifindex instead.
    put(L3, VIF2, 4);
    let d = w.run(VIF1, eth(L3, G1, &[]));
    assert_eq!(
        (d.verdict, d.egress, d.out_slot),
        (Verdict::Forward, VIF2, 3)
    );
    // A slot that holds no port and an ifindex that is none: stale.
    put(STALE, 77, 7);
    let d = w.run(VIF1, eth(STALE, G1, &[]));
    assert_eq!((d.verdict, d.stat), (Verdict::Drop, Stat::DropStaleFdb));
}

/// A world whose `XN_IFSLOTS` is stale: every ifindex maps to slot 3 (VIF2's).
struct StaleIfslots(World);

impl Tables for StaleIfslots {
    fn port(&self, ifindex: u32) -> Option<&PortConf> {
        self.0.port(ifindex)
    }
    fn port_at(&self, slot: u32) -> Option<&PortConf> {
        self.0.port_at(slot)
    }
    fn slot_of(&self, _ifindex: u32) -> Option<u32> {
        Some(3)
    }
    fn fdb(&self, key: &FdbKey) -> Option<FdbVal> {
        self.0.fdb(key)
    }
    fn fdb_put(&self, key: &FdbKey, val: &FdbVal, put: Put) -> bool {
        self.0.fdb_put(key, val, put)
    }
    fn learned(&self, slot: u32) -> u32 {
        self.0.learned(slot)
    }
    fn learned_add(&self, slot: u32, delta: i32) {
        self.0.learned_add(slot, delta);
    }
    fn now(&self) -> u64 {
        self.0.now()
    }
    fn with_stats<F: FnOnce(&mut PortStats)>(&self, slot: u32, f: F) {
        self.0.with_stats(slot, f);
    }
}

#[test]
fn ingress_through_a_stale_ifindex_slot_falls_back_to_the_port_map() {
    let w = StaleIfslots(world());
    // From VIF1 (slot 2): the stale slot 3 holds VIF2, so VIF1 is found by ifindex.
    let d = decide(&Pkt(eth(G2, G1, &[])), &w, VIF1);
    assert_eq!(
        (d.verdict, d.in_slot, d.egress),
        (Verdict::Forward, 2, VIF2)
    );
    // From VIF2 the slot is right.
    let d = decide(&Pkt(eth(G1, G2, &[])), &w, VIF2);
    assert_eq!(
        (d.verdict, d.in_slot, d.egress),
        (Verdict::Forward, 3, VIF1)
    );
    // An interface that is no port at all stays one.
    let d = decide(&Pkt(eth(G1, G2, &[])), &w, NOT_PORT);
    assert_eq!(d.stat, Stat::PassNotPort);
}
