//! Host tests of ownership that moves (issue 15): a guest's static MAC taken over by a claim
//! on an uplink (`PORT_F_MAC_MOVE`), never by a guest port, before or after the move.

use super::{fixtures::host::World, *};
use crate::{
    ETH_P_8021Q,
    maps::{FDB_GUARDED, FDB_STATIC, PORT_F_MAC_MOVE, PORT_TRUNK},
};
use std::{collections::BTreeMap, vec::Vec};

const UPLINK: u32 = 10; // trunk 4094, accepts moves
const UPLINK2: u32 = 15; // trunk 4094, accepts moves (a second uplink)
const VIF1: u32 = 11; // access 4094, G's vif (static)
const VIF2: u32 = 12; // access 4094, another guest
const G: [u8; 6] = [0, 0x16, 0x3e, 0, 0, 1];
const P: [u8; 6] = [0, 0x16, 0x3e, 0, 0, 9];
const BCAST: [u8; 6] = [0xff; 6];
const Q: u16 = ETH_P_8021Q;

fn world(uplink_moves: bool) -> World {
    let mut ports = BTreeMap::new();
    let mut up = PortConf::new(1, 1, PORT_TRUNK, 0, Q);
    up.add_vlan(4094);
    if uplink_moves {
        up.flags |= PORT_F_MAC_MOVE;
    }
    let mut up2 = up;
    up2.slot = 4;
    ports.insert(UPLINK, up);
    ports.insert(UPLINK2, up2);
    ports.insert(VIF1, PortConf::new(1, 2, PORT_ACCESS, 4094, Q));
    ports.insert(VIF2, PortConf::new(1, 3, PORT_ACCESS, 4094, Q));
    let mut fdb = BTreeMap::new();
    fdb.insert(
        (1, 4094, G),
        FdbVal {
            ifindex: VIF1,
            flags: FDB_STATIC,
            slot: 0,
            last_seen_ns: 0,
        },
    );
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
    v.extend_from_slice(&0x0806u16.to_be_bytes());
    v.extend_from_slice(&[0; 46]);
    v
}

#[test]
fn a_claim_on_an_uplink_moves_a_static_mac_and_guards_it() {
    let w = world(true);
    // Before the move: another guest cannot claim G.
    let d = w.run(VIF2, eth(BCAST, G, &[]));
    assert_eq!(d.stat, Stat::DropStaticMac);
    // The migrated guest's gratuitous ARP arrives on the uplink: moved at once, flooded on.
    let t0 = w.now();
    let d = w.run(UPLINK, eth(BCAST, G, &[(Q, 4094)]));
    assert_eq!((d.verdict, d.learn), (Verdict::Flood, None));
    assert_eq!(
        w.entry(1, 4094, G),
        Some(FdbVal {
            ifindex: UPLINK,
            flags: FDB_GUARDED,
            slot: 1,
            last_seen_ns: t0
        })
    );
    assert_eq!(w.stat(UPLINK, Stat::LearnStaticMove), 1);
    assert_eq!(
        w.learned(1),
        1,
        "a moved entry is a learned one of the uplink"
    );
    assert_eq!(
        w.learned(2),
        0,
        "a static entry was never counted on the vif"
    );
    // Traffic for G follows it out of the uplink.
    let d = w.run(VIF2, eth(G, P, &[]));
    assert_eq!((d.verdict, d.egress), (Verdict::Forward, UPLINK));
    // Still guarded: neither another guest nor G's old vif can claim it from a guest port.
    for vif in [VIF2, VIF1] {
        let d = w.run(vif, eth(BCAST, G, &[]));
        assert_eq!(d.stat, Stat::DropStaticMac, "claim from {vif}");
    }
    assert_eq!(w.entry(1, 4094, G).map(|e| e.ifindex), Some(UPLINK));
    // A refresh keeps it guarded.
    w.now.set(t0 + REFRESH_NS);
    w.run(UPLINK, eth(P, G, &[(Q, 4094)]));
    assert_eq!(
        w.entry(1, 4094, G).map(|e| (e.flags, e.last_seen_ns)),
        Some((FDB_GUARDED, t0 + REFRESH_NS))
    );
    // Another uplink may take it over (the guest moved on), once, counted there.
    let d = w.run(UPLINK2, eth(BCAST, G, &[(Q, 4094)]));
    assert_eq!(d.verdict, Verdict::Flood);
    assert_eq!(
        w.entry(1, 4094, G).map(|e| (e.ifindex, e.flags)),
        Some((UPLINK2, FDB_GUARDED))
    );
    assert_eq!((w.learned(1), w.learned(4)), (0, 1));
    assert_eq!(w.stat(UPLINK2, Stat::LearnStaticMove), 1);
}

#[test]
fn without_mac_move_the_uplink_claim_is_dropped() {
    let w = world(false);
    let d = w.run(UPLINK, eth(BCAST, G, &[(Q, 4094)]));
    assert_eq!(d.stat, Stat::DropStaticMac);
    assert_eq!(
        w.entry(1, 4094, G).map(|e| (e.ifindex, e.flags)),
        Some((VIF1, FDB_STATIC))
    );
    assert_eq!(w.stat(UPLINK, Stat::LearnStaticMove), 0);
}

#[test]
fn an_uplink_at_its_limit_does_not_take_the_mac() {
    let mut w = world(true);
    if let Some(p) = w.ports.get_mut(&UPLINK) {
        p.max_learned = 1;
    }
    w.run(UPLINK, eth(BCAST, P, &[(Q, 4094)]));
    assert_eq!(w.learned(1), 1);
    let d = w.run(UPLINK, eth(BCAST, G, &[(Q, 4094)]));
    assert_eq!(d.stat, Stat::DropStaticMac);
    assert_eq!(w.entry(1, 4094, G).map(|e| e.ifindex), Some(VIF1));
}

/// The move story on the host core, with the learned counts after every step.
#[test]
fn move_story_on_the_host() {
    use super::fixtures::moves::{MOVE, MOVE_PORTS, learned_after_moves, move_story};
    let w = World::from_lab(&MOVE);
    super::fixtures::run_all(
        "host move story",
        &move_story(),
        |s| s.row.what,
        |s| {
            w.check(&s.row, &MOVE);
            let got: Vec<u32> = MOVE_PORTS.iter().map(|p| w.learned_on(p)).collect();
            assert_eq!(got, s.learned, "{}: learned counts", s.row.what);
        },
    );
    for (mac, vlan, port) in learned_after_moves() {
        let e = w.entry(1, vlan, mac).expect("entry");
        assert_eq!(e.ifindex, w.ifindex(port), "{mac:?} on {port}");
        assert_eq!(e.flags & FDB_STATIC, 0, "{mac:?} learned");
    }
}
