//! Host tests of the datapath's planning: no kernel, plain data in, decisions out.

use std::collections::{BTreeMap, BTreeSet};

use xennet_common::maps::{
    FdbKey, PORT_F_FLOOD_VIA_TC, PORT_F_MAC_MOVE, PORT_F_RATE, PORT_F_TC_ONLY, PORT_F_XDP, PortConf,
};

use super::*;
use crate::{
    config::{AttachMode, BridgeSpec, Config, HostSpec, MacAddr, PortMode, PortSpec, RateLimit},
    datapath::{Attached, port_conf},
};

fn ids(pairs: &[(&str, u32)]) -> BTreeMap<String, u32> {
    pairs.iter().map(|(n, i)| ((*n).to_string(), *i)).collect()
}

fn access(name: &str, vlan: u16) -> PortSpec {
    PortSpec {
        mac_move: false,
        security: crate::config::PortSecurity::default(),
        interface: name.into(),
        mode: PortMode::Access { vlan },
        attach: AttachMode::Auto,
        macs: Vec::new(),
        mac_limit: 0,
        rate: None,
    }
}

fn trunk(name: &str, vlans: &[u16], native: Option<u16>) -> PortSpec {
    PortSpec {
        mac_move: false,
        security: crate::config::PortSecurity::default(),
        interface: name.into(),
        mode: PortMode::Trunk {
            vlans: vlans.iter().copied().collect(),
            native,
        },
        attach: AttachMode::Auto,
        macs: Vec::new(),
        mac_limit: 0,
        rate: None,
    }
}

fn bridge(name: &str, tpid: u16, ports: Vec<PortSpec>) -> BridgeSpec {
    BridgeSpec {
        name: name.into(),
        id: 1,
        tpid,
        fdb_aging_secs: 300,
        mtu: None,
        allow_mtu_mismatch: false,
        ports,
        host: None,
    }
}

fn config(bridges: Vec<BridgeSpec>) -> Config {
    Config {
        pin_dir: "/unused".into(),
        socket: "/unused.sock".into(),
        fdb_max_entries: 1024,
        metrics: None,
        bridges,
    }
}

fn key(mac: u8, vlan: u16, bridge: u32) -> FdbKey {
    FdbKey {
        mac: [2, 0, 0, 0, 0, mac],
        vlan,
        bridge,
    }
}

// ---- bridge ids -------------------------------------------------------------------------

#[test]
fn bridge_ids_start_at_one_in_order() {
    let got = bridge_ids(&BTreeMap::new(), ["b", "a", "c"]).expect("ids");
    assert_eq!(got, ids(&[("b", 1), ("a", 2), ("c", 3)]));
}

#[test]
fn bridge_ids_are_stable_across_reloads() {
    let old = ids(&[("a", 1), ("b", 2), ("c", 3)]);
    // Reordered, one removed, one added.
    let got = bridge_ids(&old, ["c", "new", "a"]).expect("ids");
    assert_eq!(got["c"], 3);
    assert_eq!(got["a"], 1);
    // "b"'s id 2 is not reused in the same reload: a removed bridge's leftovers never
    // meet a new bridge under the same id.
    assert_eq!(got["new"], 4);
    // At the next reload, 2 is free again.
    let next = bridge_ids(&got, ["c", "new", "a", "newer"]).expect("ids");
    assert_eq!(next["newer"], 2);
    assert_eq!(next["new"], 4);
}

#[test]
fn new_bridges_do_not_share_ids() {
    let old = ids(&[("a", 2)]);
    let got = bridge_ids(&old, ["x", "a", "y", "z"]).expect("ids");
    assert_eq!(got, ids(&[("x", 1), ("a", 2), ("y", 3), ("z", 4)]));
}

// ---- stats slots --------------------------------------------------------------------------

#[test]
fn slots_fill_the_first_gap_from_one() {
    assert_eq!(alloc_slot(&BTreeSet::new(), 4), Some(1));
    assert_eq!(alloc_slot(&[1, 2, 4].into(), 4), Some(3));
    assert_eq!(alloc_slot(&[2, 3].into(), 4), Some(1));
    assert_eq!(alloc_slot(&[1, 2, 3].into(), 4), Some(4));
    assert_eq!(alloc_slot(&[1, 2, 3, 4].into(), 4), None);
    // Slot 0 is never handed out (it counts frames of no port).
    assert_eq!(alloc_slot(&[0].into(), 1), Some(1));
}

// ---- flags --------------------------------------------------------------------------------

#[test]
fn port_flags_follow_the_attach_mode_and_the_bridge() {
    assert_eq!(port_flags(Attached::Xdp, false), PORT_F_XDP);
    assert_eq!(
        port_flags(Attached::Xdp, true),
        PORT_F_XDP | PORT_F_FLOOD_VIA_TC
    );
    assert_eq!(
        port_flags(Attached::XdpGeneric, true),
        PORT_F_TC_ONLY | PORT_F_XDP | PORT_F_FLOOD_VIA_TC
    );
    assert_eq!(
        port_flags(Attached::Tc, true),
        PORT_F_TC_ONLY | PORT_F_FLOOD_VIA_TC
    );
}

// ---- TC member lists ----------------------------------------------------------------------

/// `XN_MEMBERS` of one bridge, as a reader sees it: `None` is the count key.
type Members = BTreeMap<Option<u32>, u32>;

/// Apply `writes` to `map` one by one; after each, every index below the count must hold a
/// member of `old` or `new` (a reader never reads past valid entries).
fn apply_members(map: &mut Members, writes: &[MemberWrite], old: &[u32], new: &BTreeSet<u32>) {
    for w in writes {
        match *w {
            MemberWrite::Count(n) => {
                map.insert(None, n);
            }
            MemberWrite::Entry { idx, ifindex } => {
                map.insert(Some(idx), ifindex);
            }
            MemberWrite::Clear(idx) => {
                map.remove(&Some(idx));
            }
            MemberWrite::ClearCount => {
                map.remove(&None);
            }
        }
        let count = map.get(&None).copied().unwrap_or(0);
        for i in 0..count {
            let m = map.get(&Some(i)).copied();
            assert!(
                m.is_some_and(|m| old.contains(&m) || new.contains(&m)),
                "after {w:?}: index {i} < count {count} holds {m:?}"
            );
        }
    }
}

/// Run one change of the flood list and check the result is dense, complete and exact.
fn change_members(map: &mut Members, list: &mut Vec<u32>, new: &[u32]) -> Vec<MemberWrite> {
    let old = list.clone();
    let desired: BTreeSet<u32> = new.iter().copied().collect();
    let writes = member_writes(list, &desired).expect("writes");
    apply_members(map, &writes, &old, &desired);
    let got: BTreeSet<u32> = list.iter().copied().collect();
    assert_eq!(got, desired, "list members");
    assert_eq!(list.len(), desired.len(), "no duplicates");
    let count = map.get(&None).copied().unwrap_or(0);
    assert_eq!(count as usize, list.len(), "count");
    let entries: Vec<u32> = (0..count)
        .filter_map(|i| map.get(&Some(i)).copied())
        .collect();
    assert_eq!(&entries, list, "map entries in list order");
    assert_eq!(
        map.len(),
        list.len() + usize::from(!list.is_empty()),
        "no stale entries past the count"
    );
    writes
}

#[test]
fn members_join_by_appending() {
    let (mut map, mut list) = (Members::new(), Vec::new());
    let w = change_members(&mut map, &mut list, &[10, 20]);
    assert_eq!(
        w,
        vec![
            MemberWrite::Entry {
                idx: 0,
                ifindex: 10
            },
            MemberWrite::Count(1),
            MemberWrite::Entry {
                idx: 1,
                ifindex: 20
            },
            MemberWrite::Count(2),
        ]
    );
}

#[test]
fn a_leaver_takes_the_tail_with_o1_writes() {
    let (mut map, mut list) = (Members::new(), Vec::new());
    change_members(&mut map, &mut list, &[10, 20, 30, 40]);
    let w = change_members(&mut map, &mut list, &[10, 30, 40]);
    // Shrink, move the last entry into the hole, clear the old tail.
    assert_eq!(
        w,
        vec![
            MemberWrite::Count(3),
            MemberWrite::Entry {
                idx: 1,
                ifindex: 40
            },
            MemberWrite::Clear(3),
        ]
    );
    assert_eq!(list, vec![10, 40, 30]);
    // The tail itself leaving needs no move.
    let w = change_members(&mut map, &mut list, &[10, 40]);
    assert_eq!(w, vec![MemberWrite::Count(2), MemberWrite::Clear(2)]);
}

#[test]
fn an_emptied_list_loses_its_count() {
    let (mut map, mut list) = (Members::new(), Vec::new());
    change_members(&mut map, &mut list, &[5, 6]);
    let w = change_members(&mut map, &mut list, &[]);
    assert_eq!(w.last(), Some(&MemberWrite::ClearCount));
    assert!(map.is_empty());
    assert!(list.is_empty());
}

#[test]
fn unchanged_members_write_nothing() {
    let (mut map, mut list) = (Members::new(), Vec::new());
    change_members(&mut map, &mut list, &[1, 2, 3]);
    assert!(change_members(&mut map, &mut list, &[3, 2, 1]).is_empty());
}

#[test]
fn member_lists_stay_dense_through_many_changes() {
    let (mut map, mut list) = (Members::new(), Vec::new());
    // A small deterministic generator: joins and leaves in every mix.
    let mut state: u32 = 0x1234_5678;
    for _ in 0..300 {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let new: Vec<u32> = (1..=12).filter(|i| state & (1 << i) != 0).collect();
        change_members(&mut map, &mut list, &new);
    }
}

// ---- static FDB -------------------------------------------------------------------------

#[test]
fn statics_touch_only_what_differs() {
    let wrote: BTreeMap<FdbKey, u32> =
        [(key(1, 10, 1), 5), (key(2, 10, 1), 5), (key(3, 10, 1), 6)].into();
    let want: BTreeMap<FdbKey, u32> = [
        (key(1, 10, 1), 5), // unchanged
        (key(2, 10, 1), 7), // moved to another port
        (key(4, 20, 1), 6), // new
    ]
    .into();
    let plan = statics_plan(&wrote, &want);
    assert_eq!(plan.remove, vec![key(3, 10, 1)]);
    assert_eq!(plan.write, vec![(key(2, 10, 1), 7), (key(4, 20, 1), 6)]);
}

#[test]
fn statics_from_nothing_and_to_nothing() {
    let want: BTreeMap<FdbKey, u32> = [(key(1, 10, 1), 5)].into();
    let plan = statics_plan(&BTreeMap::new(), &want);
    assert!(plan.remove.is_empty());
    assert_eq!(plan.write, vec![(key(1, 10, 1), 5)]);
    let plan = statics_plan(&want, &BTreeMap::new());
    assert_eq!(plan.remove, vec![key(1, 10, 1)]);
    assert!(plan.write.is_empty());
    assert_eq!(statics_plan(&want, &want), StaticsPlan::default());
}

#[test]
fn wanted_statics_cover_attached_ports_only() {
    let mut p1 = access("p1", 10);
    p1.macs = vec![(MacAddr([2, 0, 0, 0, 0, 1]), 10)];
    let mut p2 = trunk("p2", &[10, 20], None);
    p2.macs = vec![
        (MacAddr([2, 0, 0, 0, 0, 2]), 10),
        (MacAddr([2, 0, 0, 0, 0, 3]), 20),
    ];
    let mut absent = access("absent", 10);
    absent.macs = vec![(MacAddr([2, 0, 0, 0, 0, 9]), 10)];
    let cfg = config(vec![
        bridge("a", 0x8100, vec![p1, absent]),
        bridge("b", 0x8100, vec![p2]),
    ]);
    let idx = |n: &str| match n {
        "p1" => Some(11),
        "p2" => Some(12),
        _ => None,
    };
    let want = wanted_statics(&cfg, &ids(&[("a", 1), ("b", 7)]), idx, |_| None);
    let expect: BTreeMap<FdbKey, u32> = [
        (key(1, 10, 1), 11),
        (key(2, 10, 7), 12),
        (key(3, 20, 7), 12),
    ]
    .into();
    assert_eq!(want, expect);
}

#[test]
fn dom0s_mac_is_static_on_every_vlan_of_the_host_port() {
    let dom0 = [2, 0, 0, 0, 0, 0xd0];
    let host = |mode: PortMode| HostSpec {
        interface: "mgmt0".into(),
        peer: "xnh-a".into(),
        mode,
        addresses: Vec::new(),
        mac: None,
        mac_limit: 0,
    };
    let mut guest = access("vif1", 10);
    // A port claiming dom0's MAC loses to dom0.
    guest.macs = vec![(MacAddr(dom0), 10)];
    let mut b = bridge("a", 0x8100, vec![guest]);
    b.host = Some(host(PortMode::Trunk {
        vlans: [10, 20, 30].into(),
        native: Some(30),
    }));
    let cfg = config(vec![b.clone()]);
    let idx = |n: &str| match n {
        "vif1" => Some(5),
        "xnh-a" => Some(9),
        _ => None,
    };
    let mac_of = |h: &HostSpec| (h.interface == "mgmt0").then_some(dom0);
    let want = wanted_statics(&cfg, &ids(&[("a", 3)]), idx, mac_of);
    let dom0_key = |vlan| FdbKey {
        mac: dom0,
        vlan,
        bridge: 3,
    };
    let expect: BTreeMap<FdbKey, u32> =
        [(dom0_key(10), 9), (dom0_key(20), 9), (dom0_key(30), 9)].into();
    assert_eq!(want, expect);

    // The host port's VLANs change on reload: the entries follow.
    b.host = Some(host(PortMode::Access { vlan: 20 }));
    b.ports.clear();
    let now = wanted_statics(&config(vec![b.clone()]), &ids(&[("a", 3)]), idx, mac_of);
    assert_eq!(now, [(dom0_key(20), 9)].into());
    let plan = statics_plan(&want, &now);
    assert_eq!(plan.remove, [dom0_key(10), dom0_key(30)]);
    assert!(plan.write.is_empty(), "VLAN 20 is already right");

    // The host port goes (or its bridge side is not attached, or dom0's MAC is unknown): no
    // entry, and the old ones are removed.
    b.host = None;
    assert!(wanted_statics(&config(vec![b.clone()]), &ids(&[("a", 3)]), idx, mac_of).is_empty());
    b.host = Some(host(PortMode::Access { vlan: 20 }));
    let cfg = config(vec![b]);
    assert!(wanted_statics(&cfg, &ids(&[("a", 3)]), |_| None, mac_of).is_empty());
    assert!(wanted_statics(&cfg, &ids(&[("a", 3)]), idx, |_| None).is_empty());
}

// ---- reload diff ------------------------------------------------------------------------

fn current(bridge: &str, bid: u32, tpid: u16, slot: u32, spec: &PortSpec) -> Current {
    let mut conf = port_conf(bid, tpid, slot, spec);
    // Flags as `refresh` would have set them; they never count as a change.
    conf.flags = PORT_F_TC_ONLY | PORT_F_FLOOD_VIA_TC;
    Current {
        bridge: bridge.into(),
        bridge_id: bid,
        conf,
        attach: spec.attach,
    }
}

/// The plan for one attached port `old` (in bridge "a", tpid 0x8100) becoming `new`.
fn plan_one(old: &PortSpec, new_tpid: u16, new: &PortSpec) -> PortPlan {
    let cur: BTreeMap<String, Current> =
        [("p".to_string(), current("a", 1, 0x8100, 3, old))].into();
    let mut new = new.clone();
    new.interface = "p".into();
    let cfg = config(vec![bridge("a", new_tpid, vec![new])]);
    plan_ports(&cur, &wanted_ports(&cfg), &ids(&[("a", 1)]))
}

fn is_changed(plan: &PortPlan) -> bool {
    plan.remove.is_empty() && matches!(plan.steps.as_slice(), [(n, Step::Update(_))] if n == "p")
}

#[test]
fn every_field_that_reaches_the_port_value_counts_as_a_change() {
    let base = trunk("p", &[10, 20], Some(10));
    let mut variants: Vec<(&str, PortSpec, u16)> = Vec::new();
    let mut limit = base.clone();
    limit.mac_limit = 99;
    variants.push(("mac_limit", limit, 0x8100));
    variants.push(("tpid", base.clone(), 0x88a8));
    variants.push(("vlans", trunk("p", &[10, 20, 30], Some(10)), 0x8100));
    variants.push(("native", trunk("p", &[10, 20], Some(20)), 0x8100));
    variants.push(("no native", trunk("p", &[10, 20], None), 0x8100));
    variants.push(("access", access("p", 10), 0x8100));
    let mut rate = base.clone();
    rate.rate = Some(RateLimit {
        bits_per_sec: 10_000_000,
        burst_bytes: 262_144,
    });
    variants.push(("rate (PORT_F_RATE)", rate, 0x8100));
    let mut moves = base.clone();
    moves.mac_move = true;
    variants.push(("mac_move (PORT_F_MAC_MOVE)", moves, 0x8100));
    for (what, new, tpid) in &variants {
        let plan = plan_one(&base, *tpid, new);
        assert!(is_changed(&plan), "{what}: {plan:?}");
        let Some((_, Step::Update(u))) = plan.steps.first() else {
            unreachable!()
        };
        assert!(!u.reattach, "{what}: no reattach for a map-value change");
        // The new value is the one `port_conf` computes, attachment flags kept until
        // `refresh`; PORT_F_RATE and PORT_F_MAC_MOVE come with the value.
        let mut want = port_conf(1, *tpid, 3, new);
        assert_eq!(want.flags & PORT_F_RATE != 0, new.rate.is_some(), "{what}");
        assert_eq!(want.flags & PORT_F_MAC_MOVE != 0, new.mac_move, "{what}");
        want.flags = PORT_F_TC_ONLY | PORT_F_FLOOD_VIA_TC | (want.flags & CONF_FLAGS);
        assert_eq!(u.conf, want, "{what}");
    }
    let access_base = access("p", 10);
    let plan = plan_one(&access_base, 0x8100, &access("p", 11));
    assert!(is_changed(&plan), "access VLAN: {plan:?}");
}

#[test]
fn an_attach_mode_change_means_reattach() {
    let base = access("p", 10);
    for mode in [AttachMode::Xdp, AttachMode::XdpGeneric, AttachMode::Tc] {
        let mut new = base.clone();
        new.attach = mode;
        let plan = plan_one(&base, 0x8100, &new);
        assert!(
            matches!(
                plan.steps.as_slice(),
                [(_, Step::Update(u))] if u.reattach
            ),
            "{mode}: {plan:?}"
        );
    }
}

#[test]
fn static_macs_alone_change_no_port() {
    let base = access("p", 10);
    let mut new = base.clone();
    new.macs = vec![(MacAddr([2, 0, 0, 0, 0, 1]), 10)];
    assert_eq!(plan_one(&base, 0x8100, &new), PortPlan::default());
    assert_eq!(plan_one(&base, 0x8100, &base), PortPlan::default());
}

/// The decision compares whole port values: any byte of [`PortConf`] but the flags counts,
/// so a field added to `PortConf` later is picked up by reload without touching the plan.
#[test]
fn any_byte_of_the_port_value_but_the_flags_counts() {
    let cur = port_conf(1, 0x8100, 3, &trunk("p", &[10, 20], Some(10)));
    let size = std::mem::size_of::<PortConf>();
    let flags = std::mem::offset_of!(PortConf, flags);
    for i in 0..size {
        let mut new = cur;
        // SAFETY: PortConf is `repr(C)` plain integers and arrays with no implicit padding,
        // so every byte pattern is a valid value.
        unsafe {
            let p = (&raw mut new).cast::<u8>().add(i);
            *p ^= 0x01;
        }
        let got = port_update(&cur, AttachMode::Auto, new, AttachMode::Auto);
        if i == flags {
            assert_eq!(got, None, "flags byte {i}");
        } else {
            assert!(got.is_some(), "byte {i} of {size} changed yet no update");
        }
    }
}

#[test]
fn ports_are_added_removed_and_moved() {
    let cfg_old = config(vec![
        bridge(
            "a",
            0x8100,
            vec![access("keep", 10), access("gone", 10), access("moves", 10)],
        ),
        bridge("b", 0x8100, vec![]),
    ]);
    let old_ids = ids(&[("a", 1), ("b", 2)]);
    let cur: BTreeMap<String, Current> = wanted_ports(&cfg_old)
        .into_iter()
        .enumerate()
        .map(|(i, (name, w))| {
            let slot = u32::try_from(i).expect("small") + 1;
            let c = current(
                &w.bridge.name,
                old_ids[&w.bridge.name],
                w.bridge.tpid,
                slot,
                &w.spec,
            );
            (name, c)
        })
        .collect();
    let cfg_new = config(vec![
        bridge("a", 0x8100, vec![access("keep", 10), access("new", 20)]),
        bridge("b", 0x8100, vec![access("moves", 10)]),
    ]);
    let plan = plan_ports(&cur, &wanted_ports(&cfg_new), &old_ids);
    assert_eq!(plan.remove, vec!["gone".to_string(), "moves".to_string()]);
    assert_eq!(
        plan.steps,
        vec![
            ("moves".to_string(), Step::Add { bridge_id: 2 }),
            ("new".to_string(), Step::Add { bridge_id: 1 }),
        ]
    );
}

#[test]
fn the_host_port_bridge_side_is_a_wanted_port() {
    let mut b = bridge("a", 0x8100, vec![access("vif1", 10)]);
    b.host = Some(HostSpec {
        interface: "xn-a".into(),
        peer: "xnp-a".into(),
        mode: PortMode::Access { vlan: 10 },
        addresses: Vec::new(),
        mac: None,
        mac_limit: 7,
    });
    let cfg = config(vec![b]);
    let want = wanted_ports(&cfg);
    assert_eq!(want.len(), 2);
    assert!(!want["vif1"].host);
    let peer = &want["xnp-a"];
    assert!(peer.host);
    assert_eq!(peer.spec.mac_limit, 7);
    assert_eq!(
        peer.spec.attach,
        AttachMode::Tc,
        "dom0's frames keep their checksum state"
    );
    assert!(!want.contains_key("xn-a"), "dom0's side is not a port");
}
