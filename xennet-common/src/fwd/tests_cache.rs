//! Host tests of the per-CPU FDB cache (`crate::fdbcache`) under the forwarding core: what a
//! frame reaches after a MAC moves, after the agent removes entries, and across aging.

use super::{fixtures::host::World, *};
use crate::{
    ETH_P_8021Q,
    maps::{FDB_STATIC, PORT_TRUNK},
};
use std::{collections::BTreeMap, vec::Vec};

const TRUNK: u32 = 10; // trunk 4094
const VIF1: u32 = 11; // access 4094
const VIF2: u32 = 12; // access 4094
const UP: [u8; 6] = [2, 0, 0, 0, 0, 0xfe];
const G1: [u8; 6] = [0, 0x16, 0x3e, 0, 0, 1];
const L1: [u8; 6] = [2, 0, 0, 0, 0, 0x11];
const L2: [u8; 6] = [2, 0, 0, 0, 0, 0x12];
const BCAST: [u8; 6] = [0xff; 6];
const Q: u16 = ETH_P_8021Q;
const VLAN: u16 = 4094;

fn world() -> World {
    let mut ports = BTreeMap::new();
    let mut trunk = PortConf::new(1, 1, PORT_TRUNK, 0, Q);
    trunk.add_vlan(VLAN);
    ports.insert(TRUNK, trunk);
    ports.insert(VIF1, PortConf::new(1, 2, PORT_ACCESS, VLAN, Q));
    ports.insert(VIF2, PortConf::new(1, 3, PORT_ACCESS, VLAN, Q));
    let mut fdb = BTreeMap::new();
    let st = |ifindex| FdbVal {
        ifindex,
        flags: FDB_STATIC,
        slot: 0,
        last_seen_ns: 0,
    };
    fdb.insert((1, VLAN, UP), st(TRUNK));
    fdb.insert((1, VLAN, G1), st(VIF1));
    World::new(ports, fdb)
}

fn eth(dst: [u8; 6], src: [u8; 6], tagged: bool) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&dst);
    v.extend_from_slice(&src);
    if tagged {
        v.extend_from_slice(&Q.to_be_bytes());
        v.extend_from_slice(&VLAN.to_be_bytes());
    }
    v.extend_from_slice(&0x0800u16.to_be_bytes());
    v.extend_from_slice(&[0x45; 46]);
    v
}

/// A frame from the uplink to `dst`, on CPU `cpu`: (verdict, egress).
fn to(w: &World, cpu: usize, dst: [u8; 6]) -> (Verdict, u32) {
    w.cpu.set(cpu);
    let d = w.run(TRUNK, eth(dst, UP, true));
    (d.verdict, d.egress)
}

/// A frame from `src` on guest port `port`, on CPU `cpu`: its learning outcome.
fn from(w: &World, cpu: usize, port: u32, src: [u8; 6]) -> Option<Stat> {
    w.cpu.set(cpu);
    w.run(port, eth(BCAST, src, false)).learn
}

const FWD: Verdict = Verdict::Forward;

#[test]
fn a_moved_mac_is_followed_at_once_on_every_cpu() {
    let w = world();
    assert_eq!(from(&w, 0, VIF1, L1), Some(Stat::LearnNew));
    // Both CPUs send to it (the second frame of each is a cache hit).
    for cpu in [0, 1, 0, 1] {
        assert_eq!(to(&w, cpu, L1), (FWD, VIF1));
    }
    // It moves, seen on CPU 0: CPU 1's cached copy must not be used any more.
    assert_eq!(from(&w, 0, VIF2, L1), Some(Stat::LearnMove));
    assert_eq!(to(&w, 1, L1), (FWD, VIF2), "CPU 1 after the move");
    assert_eq!(to(&w, 0, L1), (FWD, VIF2), "CPU 0 after the move");
    // And back, seen on CPU 1 this time.
    assert_eq!(from(&w, 1, VIF1, L1), Some(Stat::LearnMove));
    assert_eq!(to(&w, 0, L1), (FWD, VIF1), "CPU 0 after the move back");
    assert_eq!(to(&w, 1, L1), (FWD, VIF1), "CPU 1 after the move back");
    // A cached source is still checked against the ingress: a move is never missed.
    assert_eq!(from(&w, 0, VIF1, L1), None);
    assert_eq!(from(&w, 0, VIF2, L1), Some(Stat::LearnMove));
    assert_eq!((w.learned(2), w.learned(3)), (0, 1));
}

#[test]
fn entries_the_agent_removes_are_flooded_not_sent_to_the_stale_port() {
    let w = world();
    assert_eq!(from(&w, 1, VIF1, L1), Some(Stat::LearnNew));
    for cpu in [0, 1, 0, 1] {
        assert_eq!(to(&w, cpu, G1), (FWD, VIF1));
        assert_eq!(to(&w, cpu, L1), (FWD, VIF1));
    }
    // A static entry removed from the configuration.
    assert!(w.agent_remove(1, VLAN, G1).is_some());
    // A flush (the port's link went down, or the port was removed).
    assert!(w.agent_remove(1, VLAN, L1).is_some());
    for cpu in [0, 1] {
        assert_eq!(
            to(&w, cpu, G1).0,
            Verdict::Flood,
            "static removed, CPU {cpu}"
        );
        assert_eq!(to(&w, cpu, L1).0, Verdict::Flood, "flushed, CPU {cpu}");
    }
    // A static entry rewritten to another port.
    w.fdb.borrow_mut().insert(
        (1, VLAN, G1),
        FdbVal {
            ifindex: VIF1,
            flags: FDB_STATIC,
            slot: 0,
            last_seen_ns: 0,
        },
    );
    w.agent_changed();
    assert_eq!(to(&w, 1, G1), (FWD, VIF1));
    w.fdb.borrow_mut().insert(
        (1, VLAN, G1),
        FdbVal {
            ifindex: VIF2,
            flags: FDB_STATIC,
            slot: 0,
            last_seen_ns: 0,
        },
    );
    w.agent_changed();
    assert_eq!(to(&w, 1, G1), (FWD, VIF2), "static moved by the agent");
    // A miss is not cached: a station learned after a flood is reached at once.
    assert_eq!(from(&w, 0, VIF2, L1), Some(Stat::LearnNew));
    assert_eq!(to(&w, 1, L1), (FWD, VIF2));
}

#[test]
fn aging_keeps_a_station_seen_through_the_cache_and_removes_an_idle_one() {
    let w = world();
    let aging = 3 * REFRESH_NS;
    let t0 = w.now();
    assert_eq!(from(&w, 0, VIF1, L1), Some(Stat::LearnNew));
    assert_eq!(from(&w, 1, VIF2, L2), Some(Stat::LearnNew));
    // L1 keeps sending, on both CPUs in turn (its entry cached on each); L2 is only sent to.
    let mut t = t0;
    for i in 0..20 {
        t += REFRESH_NS / 2;
        w.now.set(t);
        assert_eq!(from(&w, i % 2, VIF1, L1), None);
        if t - t0 <= aging {
            assert_eq!(to(&w, i % 2, L2), (FWD, VIF2));
        }
        w.agent_age(aging);
        let seen = w.entry(1, VLAN, L1).map(|e| e.last_seen_ns);
        assert!(
            seen.is_some_and(|s| t - s <= REFRESH_NS),
            "L1 refreshed at most a second late: {seen:?} at {t}"
        );
    }
    assert_eq!(w.entry(1, VLAN, L2), None, "L2 aged out");
    for cpu in [0, 1] {
        assert_eq!(to(&w, cpu, L2).0, Verdict::Flood, "aged out, CPU {cpu}");
        assert_eq!(to(&w, cpu, L1), (FWD, VIF1));
    }
}

#[test]
fn a_calm_station_skips_the_clock_but_is_never_refreshed_late() {
    for hz in [100, 250, 1000] {
        let w = world();
        w.hz.set(hz);
        let t0 = w.now();
        assert_eq!(from(&w, 0, VIF1, L1), Some(Stat::LearnNew));
        let reads0 = w.clock_reads.get();
        // A frame every millisecond for three seconds, on one CPU.
        let frames = 3000;
        for i in 1..=frames {
            let t = t0 + i * 1_000_000;
            w.now.set(t);
            assert_eq!(from(&w, 0, VIF1, L1), None);
            let seen = w.entry(1, VLAN, L1).map_or(0, |e| e.last_seen_ns);
            assert!(
                t - seen < REFRESH_NS,
                "HZ {hz}: at +{} ms the entry is {} ms old",
                i,
                (t - seen) / 1_000_000
            );
        }
        let reads = w.clock_reads.get() - reads0;
        // Per second: a calm window of 16 ticks each, plus the reads near each refresh.
        assert!(
            u64::from(reads) < frames / 10,
            "HZ {hz}: {reads} clock reads for {frames} frames"
        );
        assert!(reads > 0, "HZ {hz}: the clock is still read");
    }
}

#[test]
fn calm_ends_with_a_move_and_with_the_agent_s_changes() {
    let w = world();
    assert_eq!(from(&w, 0, VIF1, L1), Some(Stat::LearnNew));
    assert_eq!(from(&w, 0, VIF1, L1), None, "made calm");
    // Calm on VIF1 says nothing about a frame from VIF2: a move is seen at once.
    assert_eq!(from(&w, 0, VIF2, L1), Some(Stat::LearnMove));
    assert_eq!(from(&w, 0, VIF2, L1), None);
    // The agent removes it (aging, a flush): learned anew, not taken for calm.
    assert!(w.agent_remove(1, VLAN, L1).is_some());
    assert_eq!(from(&w, 0, VIF2, L1), Some(Stat::LearnNew));
}
