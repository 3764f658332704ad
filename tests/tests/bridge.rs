//! The seed's full setup end to end (`examples/seed-full.toml` and variants of it): MAC
//! learning and flooding with real ARP, dom0's host port, the internal bridge's isolation, a
//! raw-trunk guest, MAC moves, aging, per-port MAC limits, and reloads that leave unrelated
//! traffic alone. Every step checks what arrived where, with which tag, and, where practical,
//! exactly which counters moved.
#![allow(
    clippy::cast_possible_truncation,
    clippy::too_many_lines,
    clippy::similar_names,
    reason = "small indices; long scenario tests; g1/g2-style names"
)]

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use xennet_tests::{
    RawSocket,
    arp_icmp::{ipv4, parse_arp},
    capture::{Got, QUIET, arrived, collect_quiet, drain},
    counters::{Counters, Deltas, at, delta, expect, only_ports},
    fdb::{FdbEntry, FdbRow, fdb_entry},
    flow::Flow,
    frame::{
        BROADCAST, ETH_P_8021Q, Mac, find_marker, format_mac, parse_eth, parse_mac, q_tag, tci,
        test_frame, test_frame_len, vlan_of,
    },
    output::assert_ok,
    require_root,
    responder::{Responder, Seen},
    rng::XorShift,
    seedfull::{
        FullAgent, FullConfig, G5, MGMT_IP, NodeSpec, SeedFull, UPSTREAM_IP_4093, UPSTREAM_IP_4094,
    },
    topo::{BpfFs, UPSTREAM_MAC},
    wait::poll,
};

/// Test frames with ids at or above this belong to a background flow.
const FLOW_BASE: u32 = 1_000_000;

struct World {
    // Sockets first: fields drop in order (sockets, agent, bpffs, namespaces).
    socks: BTreeMap<&'static str, RawSocket>,
    agent: FullAgent,
    fs: BpfFs,
    sim: SeedFull,
}

impl World {
    fn new(tag: &str, cfg: &FullConfig, extra: &[NodeSpec]) -> World {
        let sim = SeedFull::new(tag, extra).expect("building the simulated dom0");
        let fs = BpfFs::new(sim.dom0.name()).expect("mounting a bpffs");
        let agent = FullAgent::start(&sim.dom0, cfg, &fs.pin_dir()).expect("starting the agent");
        let mut socks = BTreeMap::new();
        for n in &sim.nodes {
            socks.insert(n.spec.name, sim.socket(n.spec.name).expect("node socket"));
        }
        socks.insert("up", sim.socket("up").expect("upstream socket"));
        socks.insert("mgmt0", sim.socket("mgmt0").expect("mgmt0 socket"));
        World {
            socks,
            agent,
            fs,
            sim,
        }
    }

    fn mac(&self, node: &str) -> Mac {
        self.sim.node(node).expect("node").mac
    }

    fn stats(&self) -> Counters {
        self.agent.stats().expect("reading stats")
    }

    fn send(&self, at: &str, frame: &[u8]) {
        self.socks[at].send(frame).expect("send");
    }

    /// Every capture point, by name.
    fn points(&self) -> Vec<(&str, &RawSocket)> {
        self.socks.iter().map(|(n, s)| (*n, s)).collect()
    }

    fn drain(&self) {
        drain(&self.points());
    }

    /// After `f`, wait [`QUIET`], then take every frame that arrived at every capture point
    /// and passes `keep`.
    fn collect_after<F: FnOnce(&World), K: Fn(&[u8]) -> bool>(&self, f: F, keep: K) -> Got {
        self.drain();
        f(self);
        collect_quiet(&self.points(), keep)
    }

    /// Run `f`; return the test frames (with a marker below [`FLOW_BASE`]) that arrived at
    /// every capture point, and the counter deltas.
    fn observe<F: FnOnce(&World)>(&self, f: F) -> (Got, Deltas) {
        let before = self.stats();
        let got = self.collect_after(f, |fr| find_marker(fr).is_some_and(|id| id < FLOW_BASE));
        (got, delta(&before, &self.stats()))
    }

    fn ping_from(&self, node: &str, ip: &str) -> std::process::Output {
        self.sim
            .node(node)
            .expect("node")
            .ns
            .ping(ip)
            .expect("ping")
    }

    fn fdb(&self, bridge: Option<&str>) -> Vec<FdbRow> {
        self.agent.fdb(bridge).expect("fdb show")
    }

    /// The trunk bridge's entries of `rows`, sorted, without dom0's MAC, which must be there
    /// once: static on the host port `xnh-trunk` in VLAN 4094.
    fn trunk_fdb(&self, rows: &[FdbRow]) -> Vec<FdbEntry> {
        let out = self
            .sim
            .dom0
            .exec_ok(&["cat", "/sys/class/net/mgmt0/address"])
            .expect("reading mgmt0's MAC");
        let mac = parse_mac(String::from_utf8_lossy(&out.stdout).trim()).expect("a MAC");
        let dom0 = fdb_entry(mac, 4094, "xnh-trunk", true);
        let mut v = fdb_set(rows, "trunk");
        let all = v.len();
        v.retain(|e| *e != dom0);
        assert_eq!(all - v.len(), 1, "dom0's MAC static on xnh-trunk: {rows:?}");
        v
    }

    fn log(&self) -> String {
        self.agent.log_text()
    }
}

/// The FDB as a set of (MAC, VLAN, port, static) of one bridge.
fn fdb_set(rows: &[FdbRow], bridge: &str) -> Vec<FdbEntry> {
    let mut v: Vec<_> = rows
        .iter()
        .filter(|r| r.bridge == bridge)
        .map(FdbRow::entry)
        .collect();
    v.sort();
    v
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

/// Is `f` an ARP request for `tpa` from `sha`?
fn arp_request(f: &[u8], sha: Mac, tpa: &str) -> bool {
    parse_arp(f).is_some_and(|(_, a)| a.op == 1 && a.sha == sha && a.tpa == ipv4(tpa))
}

/// Counter deltas of a 3-packet ping between two access ports of VLAN 4094 on the trunk
/// bridge (`a` pings `b`, neither learned before): `a`'s ARP request is flooded to the other
/// 4094 ports, `b`'s reply and the echoes are forwarded, both MACs are learned.
fn ping_counters(a: &str, b: &str, others: &[(&str, u64)]) -> Deltas {
    // 42-byte ARP + 3 × 98-byte echo each way.
    let mut rows = vec![
        (a, "rx_packets", 4),
        (a, "rx_bytes", 42 + 3 * 98),
        (a, "flood", 1),
        (a, "forward", 3),
        (a, "learn_new", 1),
        (a, "tx_packets", 4),
        (a, "tx_bytes", 42 + 3 * 98),
        (b, "rx_packets", 4),
        (b, "rx_bytes", 42 + 3 * 98),
        (b, "forward", 4),
        (b, "learn_new", 1),
        (b, "tx_packets", 4),
        (b, "tx_bytes", 42 + 3 * 98),
    ];
    // Every other port of the VLAN got one flooded copy of the ARP request.
    for (p, len) in others {
        rows.push((p, "tx_packets", 1));
        rows.push((p, "tx_bytes", *len));
    }
    expect(&rows)
}

#[test]
fn seed_learning_and_flooding() {
    if require_root() {
        learning_and_flooding("learn", &FullConfig::default());
    }
}

/// The same scenario with every vif in TC (as xen-netback needs) and the uplink in XDP.
#[test]
fn seed_learning_and_flooding_vifs_tc() {
    if require_root() {
        learning_and_flooding("learntc", &in_tc(false));
    }
}

/// The same scenario with every port in TC.
#[test]
fn seed_learning_and_flooding_all_tc() {
    if require_root() {
        learning_and_flooding("learnalltc", &in_tc(true));
    }
}

/// The example configuration with `attach = "tc"` on the vifs (and on the uplink too).
fn in_tc(uplink: bool) -> FullConfig {
    let mut cfg = FullConfig::default();
    for vif in ["vif1.0", "vif2.0", "vif3.0", "vif4.0", "vif1.1", "vif2.1"] {
        cfg.extra_lines.push((vif, "attach = \"tc\""));
    }
    if uplink {
        cfg.extra_lines.push(("eth1", "attach = \"tc\""));
    }
    cfg
}

fn learning_and_flooding(tag: &str, cfg: &FullConfig) {
    let w = World::new(tag, cfg, &[]);
    // Each port runs in the mode its config asks for.
    let ports = w.agent.ports().expect("ports");
    for (iface, line) in &cfg.extra_lines {
        if *line == "attach = \"tc\"" {
            let p = ports
                .iter()
                .find(|p| p["interface"] == *iface)
                .unwrap_or_else(|| panic!("{iface} is not a port: {ports:?}"));
            assert_eq!(p["attached"], "tc", "{iface}");
        }
    }
    let (g1, g2, g3, g4) = (w.mac("g1"), w.mac("g2"), w.mac("g3"), w.mac("g4"));

    // g1 pings g2 with nothing known anywhere: the ARP request is flooded through VLAN 4094
    // (to g2 and mgmt0 untagged, to the trunks tagged), never into 4093 or the internal bridge.
    let before = w.stats();
    let mut out = None;
    let arps = w.collect_after(
        |w| out = Some(w.ping_from("g1", "10.94.0.2")),
        |f| arp_request(f, g1, "10.94.0.2"),
    );
    assert_ok(out.as_ref().expect("ping ran"), "g1 → g2 ping", &w.log());
    let d = delta(&before, &w.stats());
    arrived(
        &arps,
        &[
            ("g2", None),
            ("g4", Some(4094)),
            ("up", Some(4094)),
            ("mgmt0", None),
        ],
        "g1's ARP request (broadcast, VLAN 4094)",
    );
    assert_eq!(
        d,
        ping_counters(
            "vif1.0",
            "vif2.0",
            &[("eth1", 46), ("vif4.0", 46), ("xnh-trunk", 42)]
        ),
        "counters of g1 → g2 ping"
    );
    w.sim.flush_neighbours().expect("flushing neighbours");

    // Both MACs are learned where they live, nothing else is in the FDB.
    let fdb = w.fdb(None);
    assert_eq!(
        w.trunk_fdb(&fdb),
        vec![
            fdb_entry(g1, 4094, "vif1.0", false),
            fdb_entry(g2, 4094, "vif2.0", false)
        ],
        "learned entries after the ping: {fdb:?}"
    );
    assert!(
        fdb.iter().all(|r| r.bridge == "trunk"),
        "nothing learned in the internal bridge: {fdb:?}"
    );
    for r in fdb.iter().filter(|r| !r.is_static) {
        let age = r.age_secs.expect("learned entries have an age");
        assert!((0.0..10.0).contains(&age), "age of {r:?}");
    }

    // A broadcast from upstream on 4093 reaches g3 (untagged) and g4 (tagged 4093) only.
    let (got, d) = w.observe(|w| {
        w.send(
            "up",
            &test_frame(BROADCAST, UPSTREAM_MAC, &[q_tag(4093)], 1),
        );
    });
    arrived(
        &got,
        &[("g3", None), ("g4", Some(4093))],
        "upstream broadcast on 4093",
    );
    assert_eq!(
        d,
        expect(&[
            ("eth1", "rx_packets", 1),
            ("eth1", "rx_bytes", test_frame_len(1)),
            ("eth1", "flood", 1),
            ("eth1", "learn_new", 1),
            ("vif3.0", "tx_packets", 1),
            ("vif3.0", "tx_bytes", test_frame_len(0)),
            ("vif4.0", "tx_packets", 1),
            ("vif4.0", "tx_bytes", test_frame_len(1)),
        ]),
        "counters of the upstream broadcast on 4093"
    );

    // The same on 4094 reaches g1, g2, dom0 (untagged) and g4 (tagged 4094) only.
    let (got, d) = w.observe(|w| {
        w.send(
            "up",
            &test_frame(BROADCAST, UPSTREAM_MAC, &[q_tag(4094)], 2),
        );
    });
    arrived(
        &got,
        &[
            ("g1", None),
            ("g2", None),
            ("mgmt0", None),
            ("g4", Some(4094)),
        ],
        "upstream broadcast on 4094",
    );
    assert_eq!(
        d,
        expect(&[
            ("eth1", "rx_packets", 1),
            ("eth1", "rx_bytes", test_frame_len(1)),
            ("eth1", "flood", 1),
            ("eth1", "learn_new", 1),
            ("vif1.0", "tx_packets", 1),
            ("vif1.0", "tx_bytes", test_frame_len(0)),
            ("vif2.0", "tx_packets", 1),
            ("vif2.0", "tx_bytes", test_frame_len(0)),
            ("xnh-trunk", "tx_packets", 1),
            ("xnh-trunk", "tx_bytes", test_frame_len(0)),
            ("vif4.0", "tx_packets", 1),
            ("vif4.0", "tx_bytes", test_frame_len(1)),
        ]),
        "counters of the upstream broadcast on 4094"
    );

    // Known unicast from upstream to g1: forwarded to g1 alone, untagged.
    let (got, d) = w.observe(|w| w.send("up", &test_frame(g1, UPSTREAM_MAC, &[q_tag(4094)], 3)));
    arrived(&got, &[("g1", None)], "upstream → g1 (learned)");
    assert_eq!(
        d,
        expect(&[
            ("eth1", "rx_packets", 1),
            ("eth1", "rx_bytes", test_frame_len(1)),
            ("eth1", "forward", 1),
            ("vif1.0", "tx_packets", 1),
            ("vif1.0", "tx_bytes", test_frame_len(0)),
        ])
    );

    // And g1 → upstream (learned on eth1 in 4094 by now): to the uplink alone, tagged 4094.
    let (got, d) = w.observe(|w| w.send("g1", &test_frame(UPSTREAM_MAC, g1, &[], 4)));
    arrived(&got, &[("up", Some(4094))], "g1 → upstream (learned)");
    assert_eq!(
        d,
        expect(&[
            ("vif1.0", "rx_packets", 1),
            ("vif1.0", "rx_bytes", test_frame_len(0)),
            ("vif1.0", "forward", 1),
            ("eth1", "tx_packets", 1),
            ("eth1", "tx_bytes", test_frame_len(1)),
        ])
    );

    // Unknown unicast from g1 is flooded like a broadcast, within VLAN 4094.
    let nobody: Mac = [0x02, 0, 0, 0, 0x99, 0x99];
    let (got, d) = w.observe(|w| w.send("g1", &test_frame(nobody, g1, &[], 5)));
    arrived(
        &got,
        &[
            ("g2", None),
            ("mgmt0", None),
            ("g4", Some(4094)),
            ("up", Some(4094)),
        ],
        "g1 → unknown unicast",
    );
    assert_eq!(
        d,
        expect(&[
            ("vif1.0", "rx_packets", 1),
            ("vif1.0", "rx_bytes", test_frame_len(0)),
            ("vif1.0", "flood", 1),
            ("vif2.0", "tx_packets", 1),
            ("vif2.0", "tx_bytes", test_frame_len(0)),
            ("xnh-trunk", "tx_packets", 1),
            ("xnh-trunk", "tx_bytes", test_frame_len(0)),
            ("vif4.0", "tx_packets", 1),
            ("vif4.0", "tx_bytes", test_frame_len(1)),
            ("eth1", "tx_packets", 1),
            ("eth1", "tx_bytes", test_frame_len(1)),
        ])
    );

    // g3 (VLAN 4093) announces itself; its broadcast stays in 4093.
    let (got, d) = w.observe(|w| w.send("g3", &test_frame(BROADCAST, g3, &[], 6)));
    arrived(
        &got,
        &[("g4", Some(4093)), ("up", Some(4093))],
        "g3 broadcast",
    );
    assert_eq!(
        d,
        expect(&[
            ("vif3.0", "rx_packets", 1),
            ("vif3.0", "rx_bytes", test_frame_len(0)),
            ("vif3.0", "flood", 1),
            ("vif3.0", "learn_new", 1),
            ("vif4.0", "tx_packets", 1),
            ("vif4.0", "tx_bytes", test_frame_len(1)),
            ("eth1", "tx_packets", 1),
            ("eth1", "tx_bytes", test_frame_len(1)),
        ])
    );
    // g1 → g3's MAC: learned in 4093 only, so unknown in 4094: flooded in 4094, never to g3.
    let (got, _) = w.observe(|w| w.send("g1", &test_frame(g3, g1, &[], 7)));
    arrived(
        &got,
        &[
            ("g2", None),
            ("mgmt0", None),
            ("g4", Some(4094)),
            ("up", Some(4094)),
        ],
        "g1 → g3's MAC (another VLAN)",
    );
    // Upstream on 4094 to g3's MAC: the same, never to g3.
    let (got, _) = w.observe(|w| w.send("up", &test_frame(g3, UPSTREAM_MAC, &[q_tag(4094)], 8)));
    arrived(
        &got,
        &[
            ("g1", None),
            ("g2", None),
            ("mgmt0", None),
            ("g4", Some(4094)),
        ],
        "upstream on 4094 → g3's MAC",
    );

    // Link-local multicast (LLDP's address) goes to the host stack, never forwarded.
    let lldp: Mac = [0x01, 0x80, 0xc2, 0, 0, 0x0e];
    let (got, d) = w.observe(|w| w.send("g1", &test_frame(lldp, g1, &[], 9)));
    arrived(&got, &[], "link-local from g1");
    assert_eq!(
        d,
        expect(&[
            ("vif1.0", "rx_packets", 1),
            ("vif1.0", "rx_bytes", test_frame_len(0)),
            ("vif1.0", "pass_link_local", 1),
        ])
    );

    // g3 trying to reach VLAN 4094 (an on-link route, so it ARPs): its requests stay in 4093.
    w.sim
        .node("g3")
        .expect("g3")
        .ns
        .exec_ok(&["ip", "route", "add", "10.94.0.0/16", "dev", "eth0"])
        .expect("route");
    let mut out = None;
    let arps = w.collect_after(
        |w| {
            out = Some(
                w.sim
                    .node("g3")
                    .expect("g3")
                    .ns
                    .exec(&["ping", "-c", "2", "-i", "0.2", "-W", "1", "10.94.0.1"])
                    .expect("ping"),
            );
        },
        |f| parse_arp(f).is_some_and(|(_, a)| a.sha == g3),
    );
    assert!(
        !out.expect("ping ran").status.success(),
        "g3 (4093) must not reach g1 (4094)"
    );
    for (name, frames) in &arps {
        match name.as_str() {
            "g4" | "up" => {
                assert!(!frames.is_empty(), "g3's ARP requests must reach {name}");
                for f in frames {
                    assert_eq!(vlan_of(f), Some(4093), "g3's ARP at {name}");
                }
            }
            _ => assert!(
                frames.is_empty(),
                "g3's ARP leaked to {name}: {frames:02x?}"
            ),
        }
    }
    w.sim.flush_neighbours().expect("flushing neighbours");

    // The FDB holds exactly what was learned, per VLAN; nothing in the internal bridge.
    let fdb = w.fdb(None);
    assert_eq!(
        w.trunk_fdb(&fdb),
        {
            let mut v = vec![
                fdb_entry(UPSTREAM_MAC, 4093, "eth1", false),
                fdb_entry(g3, 4093, "vif3.0", false),
                fdb_entry(UPSTREAM_MAC, 4094, "eth1", false),
                fdb_entry(g1, 4094, "vif1.0", false),
                fdb_entry(g2, 4094, "vif2.0", false),
            ];
            v.sort();
            v
        },
        "FDB: {fdb:?}"
    );
    assert!(fdb.iter().all(|r| r.bridge == "trunk"), "FDB: {fdb:?}");
    assert!(
        !fdb.iter().any(|r| r.mac == format_mac(&g4)),
        "g4 sent nothing and must not be learned"
    );
    assert!(
        w.agent.stop().expect("stopping the agent"),
        "agent must exit 0"
    );
}

#[test]
fn host_port() {
    if !require_root() {
        return;
    }
    let w = World::new("host", &FullConfig::default(), &[]);
    let g1 = w.mac("g1");

    // `ports` lists the bridge side of the host port, and only it, as host.
    let ports = w.agent.ports().expect("ports");
    let hosts: Vec<_> = ports.iter().filter(|p| p["host"] == true).collect();
    assert_eq!(hosts.len(), 1, "one host port expected: {ports:#?}");
    assert_eq!(hosts[0]["interface"], "xnh-trunk", "{ports:#?}");
    assert_eq!(hosts[0]["bridge"], "trunk", "{ports:#?}");
    let mut names: Vec<&str> = ports
        .iter()
        .map(|p| p["interface"].as_str().expect("interface"))
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "eth1",
            "vif1.0",
            "vif1.1",
            "vif2.0",
            "vif2.1",
            "vif3.0",
            "vif4.0",
            "xnh-trunk"
        ],
        "{ports:#?}"
    );
    // dom0's side carries the management address.
    let a = w
        .sim
        .dom0
        .exec_ok(&["ip", "-4", "-o", "addr", "show", "dev", "mgmt0"])
        .expect("ip addr");
    assert!(
        String::from_utf8_lossy(&a.stdout).contains(&format!("{MGMT_IP}/16")),
        "mgmt0 must have {MGMT_IP}/16: {}",
        String::from_utf8_lossy(&a.stdout)
    );

    // dom0 pings g1 through its host port.
    let before = w.stats();
    let mut out = None;
    let arps = w.collect_after(
        |w| out = Some(w.sim.dom0.ping("10.94.0.1").expect("ping")),
        |f| parse_arp(f).is_some_and(|(_, a)| a.op == 1 && a.tpa == ipv4("10.94.0.1")),
    );
    assert_ok(out.as_ref().expect("ping ran"), "dom0 → g1 ping", &w.log());
    let d = delta(&before, &w.stats());
    arrived(
        &arps,
        &[
            ("g1", None),
            ("g2", None),
            ("g4", Some(4094)),
            ("up", Some(4094)),
        ],
        "dom0's ARP request",
    );
    // dom0's MAC is static on xnh-trunk: nothing is learned there.
    let mut want = ping_counters(
        "xnh-trunk",
        "vif1.0",
        &[("eth1", 46), ("vif4.0", 46), ("vif2.0", 42)],
    );
    want.remove(&("xnh-trunk".to_string(), "learn_new".to_string()));
    assert_eq!(d, want, "counters of dom0 → g1 ping");
    let fdb = w.fdb(Some("trunk"));
    let mgmt_mac = fdb
        .iter()
        .find(|r| r.port == "xnh-trunk")
        .unwrap_or_else(|| panic!("dom0's MAC must be static on xnh-trunk: {fdb:?}"));
    assert_eq!((mgmt_mac.vlan, mgmt_mac.is_static), (4094, true));
    assert!(
        fdb.iter()
            .any(|r| r.mac == format_mac(&g1) && r.port == "vif1.0"),
        "{fdb:?}"
    );

    // g1 pings dom0 back.
    let out = w.ping_from("g1", MGMT_IP);
    assert_ok(&out, "g1 → dom0 ping", &w.log());

    w.sim.flush_neighbours().expect("flushing neighbours");
    // dom0 reaches the upstream router on 4094 (played by the test, tagged on the uplink).
    let r = Responder::start(
        &w.sim,
        &[(4094, UPSTREAM_IP_4094), (4093, UPSTREAM_IP_4093)],
    )
    .expect("responder");
    let before = w.stats();
    let out = w.sim.dom0.ping(UPSTREAM_IP_4094).expect("ping");
    let seen = r.finish().expect("responder");
    assert_ok(&out, "dom0 → upstream ping", &w.log());
    assert!(
        seen.contains(&Seen::ArpRequest {
            vlan: Some(4094),
            tpa: ipv4(UPSTREAM_IP_4094),
            answered: true
        }),
        "upstream must see dom0's ARP tagged 4094: {seen:?}"
    );
    let echoes: Vec<_> = seen
        .iter()
        .filter(|s| matches!(s, Seen::EchoRequest { .. }))
        .collect();
    assert_eq!(echoes.len(), 3, "{seen:?}");
    for e in echoes {
        assert_eq!(
            *e,
            Seen::EchoRequest {
                vlan: Some(4094),
                dst: ipv4(UPSTREAM_IP_4094),
                answered: true
            }
        );
    }
    assert!(
        !seen.iter().any(|s| matches!(
            s,
            Seen::ArpRequest { vlan, .. } | Seen::EchoRequest { vlan, .. } | Seen::Other { vlan, .. }
                if *vlan != Some(4094)
        )),
        "only VLAN 4094 on the uplink: {seen:?}"
    );
    let d = delta(&before, &w.stats());
    // The echoes: 3 × 98 bytes out of dom0, forwarded to the uplink (102 bytes tagged), and
    // 3 replies back.
    assert_eq!(at(&d, "xnh-trunk", "forward"), 3, "{d:?}");
    assert_eq!(
        at(&d, "eth1", "forward"),
        4,
        "3 echo replies + the ARP reply: {d:?}"
    );
    w.sim.flush_neighbours().expect("flushing neighbours");
    assert!(
        w.agent.stop().expect("stopping the agent"),
        "agent must exit 0"
    );
}

#[test]
fn internal_bridge_isolated() {
    if !require_root() {
        return;
    }
    // The trunk bridge carries VLAN 10 too (on eth1 and vif4.0): the same VLAN id as the
    // internal bridge's, which must stay a separate segment.
    let cfg = FullConfig {
        trunk_vlans: vec![10, 4093, 4094],
        ..FullConfig::default()
    };
    let w = World::new("intern", &cfg, &[]);
    let (i1, i2, g4) = (w.mac("i1"), w.mac("i2"), w.mac("g4"));

    let before = w.stats();
    let mut out = None;
    let seen = w.collect_after(|w| out = Some(w.ping_from("i1", "10.10.0.2")), |_| true);
    assert_ok(out.as_ref().expect("ping ran"), "i1 → i2 ping", &w.log());
    let d = delta(&before, &w.stats());
    // Only the internal bridge's two ports moved, nothing was flooded elsewhere.
    assert_eq!(
        d,
        ping_counters("vif1.1", "vif2.1", &[]),
        "counters of i1 → i2 ping"
    );
    for (name, frames) in &seen {
        if !["i1", "i2"].contains(&name.as_str()) {
            assert!(
                frames.is_empty(),
                "internal traffic leaked to {name}: {frames:02x?}"
            );
        }
    }
    assert!(
        seen["i2"].iter().any(|f| arp_request(f, i1, "10.10.0.2")),
        "i2 must get i1's ARP request"
    );
    w.sim.flush_neighbours().expect("flushing neighbours");

    // A broadcast in the internal bridge stays there.
    let (got, d) = w.observe(|w| w.send("i1", &test_frame(BROADCAST, i1, &[], 1)));
    arrived(&got, &[("i2", None)], "i1 broadcast");
    assert_eq!(
        d,
        expect(&[
            ("vif1.1", "rx_packets", 1),
            ("vif1.1", "rx_bytes", test_frame_len(0)),
            ("vif1.1", "flood", 1),
            ("vif2.1", "tx_packets", 1),
            ("vif2.1", "tx_bytes", test_frame_len(0)),
        ])
    );

    // VLAN 10 of the trunk bridge: upstream's broadcast reaches g4 only, never i1/i2.
    let (got, d) =
        w.observe(|w| w.send("up", &test_frame(BROADCAST, UPSTREAM_MAC, &[q_tag(10)], 2)));
    arrived(
        &got,
        &[("g4", Some(10))],
        "upstream broadcast on the trunk's VLAN 10",
    );
    assert_eq!(
        d,
        expect(&[
            ("eth1", "rx_packets", 1),
            ("eth1", "rx_bytes", test_frame_len(1)),
            ("eth1", "flood", 1),
            ("eth1", "learn_new", 1),
            ("vif4.0", "tx_packets", 1),
            ("vif4.0", "tx_bytes", test_frame_len(1)),
        ])
    );
    // Upstream on VLAN 10 to i1's MAC (learned in the internal bridge): unknown in the trunk
    // bridge, flooded there (to g4), never delivered to i1.
    let (got, d) = w.observe(|w| w.send("up", &test_frame(i1, UPSTREAM_MAC, &[q_tag(10)], 3)));
    arrived(&got, &[("g4", Some(10))], "upstream on VLAN 10 → i1's MAC");
    assert_eq!(at(&d, "eth1", "flood"), 1, "{d:?}");
    assert!(
        !d.keys()
            .any(|(p, _)| p.starts_with("vif1.1") || p.starts_with("vif2.1")),
        "{d:?}"
    );
    // g4 on VLAN 10 to i2's MAC: the same the other way.
    let (got, _) = w.observe(|w| w.send("g4", &test_frame(i2, g4, &[q_tag(10)], 4)));
    arrived(&got, &[("up", Some(10))], "g4 on VLAN 10 → i2's MAC");
    // i1 to the upstream's MAC (learned on the trunk bridge's VLAN 10): stays internal.
    let (got, _) = w.observe(|w| w.send("i1", &test_frame(UPSTREAM_MAC, i1, &[], 5)));
    arrived(&got, &[("i2", None)], "i1 → upstream's MAC");
    // Untagged from upstream on the trunk (no native VLAN): dropped, not leaked anywhere.
    let (got, d) = w.observe(|w| w.send("up", &test_frame(i1, UPSTREAM_MAC, &[], 6)));
    arrived(&got, &[], "untagged from upstream");
    assert_eq!(at(&d, "eth1", "drop_untagged_on_trunk"), 1, "{d:?}");

    // Each bridge's FDB holds its own stations only.
    let internal = w.fdb(Some("internal"));
    assert_eq!(
        fdb_set(&internal, "internal"),
        vec![
            fdb_entry(i1, 10, "vif1.1", false),
            fdb_entry(i2, 10, "vif2.1", false)
        ],
        "{internal:?}"
    );
    assert_eq!(
        internal.len(),
        2,
        "`--bridge internal` lists only that bridge: {internal:?}"
    );
    let trunk = w.fdb(Some("trunk"));
    assert_eq!(
        w.trunk_fdb(&trunk),
        {
            let mut v = vec![
                fdb_entry(g4, 10, "vif4.0", false),
                fdb_entry(UPSTREAM_MAC, 10, "eth1", false),
            ];
            v.sort();
            v
        },
        "{trunk:?}"
    );
    assert!(
        w.agent.stop().expect("stopping the agent"),
        "agent must exit 0"
    );
}

#[test]
fn raw_trunk_guest_sees_tags() {
    if !require_root() {
        return;
    }
    let w = World::new("rawtr", &FullConfig::default(), &[]);
    let (g3, g4) = (w.mac("g3"), w.mac("g4"));
    let prio = |vid| (ETH_P_8021Q, tci(5, false, vid));

    // Upstream broadcasts on both VLANs reach g4 with their tags, PCP untouched.
    for (id, vid, want) in [
        (1u32, 4093u16, vec![("g3", None), ("g4", Some(4093))]),
        (
            2,
            4094,
            vec![
                ("g1", None),
                ("g2", None),
                ("mgmt0", None),
                ("g4", Some(4094)),
            ],
        ),
    ] {
        let (got, _) =
            w.observe(|w| w.send("up", &test_frame(BROADCAST, UPSTREAM_MAC, &[prio(vid)], id)));
        arrived(&got, &want, &format!("upstream broadcast on {vid}"));
        let p = parse_eth(&got["g4"][0]).expect("parse");
        assert_eq!(p.tags, vec![prio(vid)], "g4 must see the tag as sent");
    }

    // g4 speaks tagged on both VLANs (and is learned in both).
    let (got, d) = w.observe(|w| w.send("g4", &test_frame(BROADCAST, g4, &[q_tag(4094)], 3)));
    arrived(
        &got,
        &[
            ("g1", None),
            ("g2", None),
            ("mgmt0", None),
            ("up", Some(4094)),
        ],
        "g4 broadcast on 4094",
    );
    assert_eq!(
        d,
        expect(&[
            ("vif4.0", "rx_packets", 1),
            ("vif4.0", "rx_bytes", test_frame_len(1)),
            ("vif4.0", "flood", 1),
            ("vif4.0", "learn_new", 1),
            ("vif1.0", "tx_packets", 1),
            ("vif1.0", "tx_bytes", test_frame_len(0)),
            ("vif2.0", "tx_packets", 1),
            ("vif2.0", "tx_bytes", test_frame_len(0)),
            ("xnh-trunk", "tx_packets", 1),
            ("xnh-trunk", "tx_bytes", test_frame_len(0)),
            ("eth1", "tx_packets", 1),
            ("eth1", "tx_bytes", test_frame_len(1)),
        ])
    );
    let (got, _) = w.observe(|w| w.send("g4", &test_frame(BROADCAST, g4, &[q_tag(4093)], 4)));
    arrived(
        &got,
        &[("g3", None), ("up", Some(4093))],
        "g4 broadcast on 4093",
    );

    // Unicast from upstream to g4 on each VLAN: to g4 alone, tag kept.
    for (id, vid) in [(5u32, 4094u16), (6, 4093)] {
        let (got, d) = w.observe(|w| w.send("up", &test_frame(g4, UPSTREAM_MAC, &[prio(vid)], id)));
        arrived(
            &got,
            &[("g4", Some(vid))],
            &format!("upstream → g4 on {vid}"),
        );
        assert_eq!(
            parse_eth(&got["g4"][0]).expect("parse").tags,
            vec![prio(vid)]
        );
        assert_eq!(
            d,
            expect(&[
                ("eth1", "rx_packets", 1),
                ("eth1", "rx_bytes", test_frame_len(1)),
                ("eth1", "forward", 1),
                ("vif4.0", "tx_packets", 1),
                ("vif4.0", "tx_bytes", test_frame_len(1)),
            ]),
            "counters of upstream → g4 on {vid}"
        );
    }

    // g3 (access 4093) → g4: arrives tagged 4093 (pushed).
    let (got, d) = w.observe(|w| w.send("g3", &test_frame(g4, g3, &[], 7)));
    arrived(&got, &[("g4", Some(4093))], "g3 → g4");
    assert_eq!(
        d,
        expect(&[
            ("vif3.0", "rx_packets", 1),
            ("vif3.0", "rx_bytes", test_frame_len(0)),
            ("vif3.0", "forward", 1),
            ("vif3.0", "learn_new", 1),
            ("vif4.0", "tx_packets", 1),
            ("vif4.0", "tx_bytes", test_frame_len(1)),
        ])
    );
    // g4 tagged 4093 → g3: arrives untagged (popped).
    let (got, d) = w.observe(|w| w.send("g4", &test_frame(g3, g4, &[q_tag(4093)], 8)));
    arrived(&got, &[("g3", None)], "g4 → g3");
    assert_eq!(
        d,
        expect(&[
            ("vif4.0", "rx_packets", 1),
            ("vif4.0", "rx_bytes", test_frame_len(1)),
            ("vif4.0", "forward", 1),
            ("vif3.0", "tx_packets", 1),
            ("vif3.0", "tx_bytes", test_frame_len(0)),
        ])
    );
    // g4 tagged 4094 → g3's MAC: not in 4094, flooded there; g3 never sees it.
    let (got, _) = w.observe(|w| w.send("g4", &test_frame(g3, g4, &[q_tag(4094)], 9)));
    arrived(
        &got,
        &[
            ("g1", None),
            ("g2", None),
            ("mgmt0", None),
            ("up", Some(4094)),
        ],
        "g4 on 4094 → g3's MAC",
    );

    // What a raw trunk may not send: untagged (no native VLAN), VLANs it does not carry.
    for (id, tags, reason) in [
        (10u32, vec![], "drop_untagged_on_trunk"),
        (11, vec![q_tag(4092)], "drop_vlan_not_allowed"),
        (12, vec![q_tag(10)], "drop_vlan_not_allowed"),
    ] {
        let f = test_frame(BROADCAST, g4, &tags, id);
        let (got, d) = w.observe(|w| w.send("g4", &f));
        arrived(&got, &[], reason);
        assert_eq!(
            d,
            expect(&[
                ("vif4.0", "rx_packets", 1),
                ("vif4.0", "rx_bytes", f.len() as u64),
                ("vif4.0", reason, 1),
            ])
        );
    }

    let fdb = w.fdb(Some("trunk"));
    for vid in [4093, 4094] {
        assert!(
            fdb.iter().any(|r| r.mac == format_mac(&g4)
                && r.vlan == vid
                && r.port == "vif4.0"
                && !r.is_static),
            "g4 learned on vif4.0 in {vid}: {fdb:?}"
        );
    }
    assert!(
        w.agent.stop().expect("stopping the agent"),
        "agent must exit 0"
    );
}

#[test]
fn mac_move_followed() {
    if !require_root() {
        return;
    }
    let w = World::new("move", &FullConfig::default(), &[]);
    let g1 = w.mac("g1");
    let where_is = |w: &World| -> Vec<String> {
        w.fdb(Some("trunk"))
            .into_iter()
            .filter(|r| r.mac == format_mac(&g1) && r.vlan == 4094)
            .map(|r| r.port)
            .collect()
    };

    // g1 speaks from vif1.0: learned there, and upstream's frames to it go there.
    let (_, d) = w.observe(|w| w.send("g1", &test_frame(BROADCAST, g1, &[], 1)));
    assert_eq!(at(&d, "vif1.0", "learn_new"), 1, "{d:?}");
    assert_eq!(where_is(&w), ["vif1.0"]);
    let (got, _) = w.observe(|w| w.send("up", &test_frame(g1, UPSTREAM_MAC, &[q_tag(4094)], 2)));
    arrived(&got, &[("g1", None)], "upstream → g1 before the move");

    // The same MAC now speaks from vif2.0 (a migrated guest): counted as a move on vif2.0.
    let mut moved = (Vec::new(), Duration::ZERO);
    let (got, d) = w.observe(|w| {
        w.send("g2", &test_frame(BROADCAST, g1, &[], 3));
        moved = poll(
            Duration::from_secs(1),
            Duration::from_millis(10),
            || where_is(w),
            |m| m == &["vif2.0"],
        );
    });
    let (moved, after) = moved;
    assert_eq!(moved, ["vif2.0"], "within 1 s the FDB must follow the move");
    assert!(after <= Duration::from_secs(1), "the move took {after:?}");
    eprintln!("fdb show listed the move {after:?} after the frame was sent");
    arrived(
        &got,
        &[
            ("g1", None),
            ("mgmt0", None),
            ("g4", Some(4094)),
            ("up", Some(4094)),
        ],
        "broadcast from g1's MAC on vif2.0",
    );
    assert_eq!(
        d,
        expect(&[
            ("vif2.0", "rx_packets", 1),
            ("vif2.0", "rx_bytes", test_frame_len(0)),
            ("vif2.0", "flood", 1),
            ("vif2.0", "learn_move", 1),
            ("vif1.0", "tx_packets", 1),
            ("vif1.0", "tx_bytes", test_frame_len(0)),
            ("xnh-trunk", "tx_packets", 1),
            ("xnh-trunk", "tx_bytes", test_frame_len(0)),
            ("vif4.0", "tx_packets", 1),
            ("vif4.0", "tx_bytes", test_frame_len(1)),
            ("eth1", "tx_packets", 1),
            ("eth1", "tx_bytes", test_frame_len(1)),
        ]),
        "counters of the move"
    );

    // Upstream's frames to that MAC now reach g2, not g1.
    let (got, d) = w.observe(|w| w.send("up", &test_frame(g1, UPSTREAM_MAC, &[q_tag(4094)], 4)));
    arrived(&got, &[("g2", None)], "upstream → g1's MAC after the move");
    assert_eq!(
        d,
        expect(&[
            ("eth1", "rx_packets", 1),
            ("eth1", "rx_bytes", test_frame_len(1)),
            ("eth1", "forward", 1),
            ("vif2.0", "tx_packets", 1),
            ("vif2.0", "tx_bytes", test_frame_len(0)),
        ])
    );

    // And back: g1 speaks again, the entry moves back to vif1.0.
    let (_, d) = w.observe(|w| w.send("g1", &test_frame(UPSTREAM_MAC, g1, &[], 5)));
    assert_eq!(at(&d, "vif1.0", "learn_move"), 1, "{d:?}");
    assert_eq!(where_is(&w), ["vif1.0"]);
    let (got, _) = w.observe(|w| w.send("up", &test_frame(g1, UPSTREAM_MAC, &[q_tag(4094)], 6)));
    arrived(&got, &[("g1", None)], "upstream → g1 after moving back");
    assert!(
        w.agent.stop().expect("stopping the agent"),
        "agent must exit 0"
    );
}

#[test]
fn aging() {
    if !require_root() {
        return;
    }
    let cfg = FullConfig {
        fdb_aging_secs: 2,
        statics: vec![("vif3.0", "00:16:3e:00:00:03")],
        ..FullConfig::default()
    };
    let w = World::new("aging", &cfg, &[]);
    let (g1, g2, g3, g4) = (w.mac("g1"), w.mac("g2"), w.mac("g3"), w.mac("g4"));

    // Only the static entry at first.
    let fdb = w.fdb(None);
    assert_eq!(
        w.trunk_fdb(&fdb),
        vec![fdb_entry(g3, 4093, "vif3.0", true)],
        "{fdb:?}"
    );
    assert_eq!(fdb[0].age_secs, None, "a static entry has no age: {fdb:?}");

    // g1 and g2 speak once; g2 then keeps speaking every 400 ms, g1 stays silent.
    let t0 = Instant::now();
    w.send("g1", &test_frame(BROADCAST, g1, &[], 1));
    w.send("g2", &test_frame(BROADCAST, g2, &[], 2));
    let has = |rows: &[FdbRow], mac: Mac| rows.iter().any(|r| r.mac == format_mac(&mac));
    let fdb = w.fdb(None);
    assert!(has(&fdb, g1) && has(&fdb, g2), "both learned: {fdb:?}");
    // Frames to g1 while it is known put its entry in the FDB cache of the CPUs that forward
    // them: once g1 ages out, no cached copy may keep sending to it alone (checked below).
    for i in 0..16 {
        w.send("up", &test_frame(g1, UPSTREAM_MAC, &[q_tag(4094)], 200 + i));
    }
    let mut gone_after = None;
    let mut n = 3;
    let mut last_g2 = Instant::now();
    while t0.elapsed() < Duration::from_secs(6) {
        if last_g2.elapsed() >= Duration::from_millis(400) {
            w.send("g2", &test_frame(BROADCAST, g2, &[], n));
            n += 1;
            last_g2 = Instant::now();
        }
        let fdb = w.fdb(None);
        if !has(&fdb, g1) {
            gone_after = Some(t0.elapsed());
            assert!(has(&fdb, g2), "g2 keeps speaking and must stay: {fdb:?}");
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let gone_after = gone_after
        .unwrap_or_else(|| panic!("g1's entry never aged out (aging 2 s); log:\n{}", w.log()));
    eprintln!("g1's learned entry aged out after {gone_after:?} (fdb_aging_secs = 2)");
    assert!(
        gone_after >= Duration::from_secs(2),
        "aged out too early: {gone_after:?}"
    );
    // At most the aging time, the datapath's refresh interval (1 s), one aging pass (500 ms)
    // and slack.
    assert!(
        gone_after <= Duration::from_millis(4500),
        "aged out too late: {gone_after:?}"
    );
    // Keep g2 speaking for a while longer: an active station never ages out.
    while t0.elapsed() < Duration::from_millis(4500) {
        w.send("g2", &test_frame(BROADCAST, g2, &[], n));
        n += 1;
        std::thread::sleep(Duration::from_millis(400));
    }
    let fdb = w.fdb(None);
    assert_eq!(
        w.trunk_fdb(&fdb),
        sorted(vec![
            fdb_entry(g3, 4093, "vif3.0", true),
            fdb_entry(g2, 4094, "vif2.0", false),
        ]),
        "after {:?}: the static entry and the active g2 remain: {fdb:?}",
        t0.elapsed()
    );

    // The datapath forgot g1 too, cached copies included: a frame to it is flooded again
    // (and still reaches g1), every time.
    for i in 0..4 {
        let (got, d) =
            w.observe(|w| w.send("up", &test_frame(g1, UPSTREAM_MAC, &[q_tag(4094)], 100 + i)));
        arrived(
            &got,
            &[
                ("g1", None),
                ("g2", None),
                ("mgmt0", None),
                ("g4", Some(4094)),
            ],
            "upstream → aged-out g1",
        );
        assert_eq!(at(&d, "eth1", "flood"), 1, "{d:?}");
    }
    // The static entry forwards though g3 never spoke.
    let (got, d) = w.observe(|w| w.send("up", &test_frame(g3, UPSTREAM_MAC, &[q_tag(4093)], 101)));
    arrived(&got, &[("g3", None)], "upstream → static g3");
    assert_eq!(at(&d, "eth1", "forward"), 1, "{d:?}");
    // Nobody else may claim the static MAC.
    let (got, d) = w.observe(|w| w.send("g4", &test_frame(BROADCAST, g3, &[q_tag(4093)], 102)));
    arrived(&got, &[], "g4 claiming g3's static MAC");
    assert_eq!(
        d,
        expect(&[
            ("vif4.0", "rx_packets", 1),
            ("vif4.0", "rx_bytes", test_frame_len(1)),
            ("vif4.0", "drop_static_mac", 1),
        ])
    );
    assert!(
        !w.fdb(None).iter().any(|r| r.mac == format_mac(&g4)),
        "g4 never spoke with its own MAC"
    );
    assert!(
        w.agent.stop().expect("stopping the agent"),
        "agent must exit 0"
    );
}

#[test]
fn mac_limit_holds() {
    const LIMIT: u64 = 50;
    const FRAMES: u64 = 2000;
    if !require_root() {
        return;
    }
    let cfg = FullConfig {
        mac_limits: vec![("vif1.0", 50)],
        ..FullConfig::default()
    };
    let w = World::new("limit", &cfg, &[]);
    let (g1, g2) = (w.mac("g1"), w.mac("g2"));

    // g2 is known, so g1's flood of fake sources goes to g2 alone.
    w.send("g2", &test_frame(BROADCAST, g2, &[], 1));
    std::thread::sleep(Duration::from_millis(100));
    let before = w.stats();
    // Random locally administered unicast sources, all distinct.
    let mut rnd = XorShift(
        u64::from(std::process::id())
            ^ Instant::now().elapsed().as_nanos() as u64
            ^ 0x9e37_79b9_7f4a_7c15,
    );
    let prefix = rnd.next_u64().to_be_bytes();
    for i in 0..FRAMES {
        let n = (i as u16).to_be_bytes();
        let src: Mac = [0x02, prefix[0], prefix[1], prefix[2], n[0], n[1]];
        w.send("g1", &test_frame(g2, src, &[], 10_000 + i as u32));
        if i % 64 == 63 {
            // Pace a little: the veth's ring in front of XDP holds a few hundred frames.
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    std::thread::sleep(QUIET);
    let d = delta(&before, &w.stats());
    assert_eq!(
        only_ports(&d, &["vif1.0", "vif2.0"]),
        expect(&[
            ("vif1.0", "rx_packets", FRAMES),
            ("vif1.0", "rx_bytes", FRAMES * test_frame_len(0)),
            ("vif1.0", "forward", FRAMES),
            ("vif1.0", "learn_new", LIMIT),
            ("vif1.0", "learn_limit", FRAMES - LIMIT),
            ("vif2.0", "tx_packets", FRAMES),
            ("vif2.0", "tx_bytes", FRAMES * test_frame_len(0)),
        ]),
        "all {FRAMES} frames forwarded, {LIMIT} sources learned"
    );
    assert_eq!(
        only_ports(&d, &["vif1.0", "vif2.0"]),
        d,
        "no other port moved: {d:?}"
    );
    let fdb = w.fdb(Some("trunk"));
    let on_vif1 = fdb.iter().filter(|r| r.port == "vif1.0").count();
    eprintln!("{on_vif1} entries learned on vif1.0 after {FRAMES} sources (limit {LIMIT})");
    assert!(
        on_vif1 as u64 <= LIMIT,
        "at most {LIMIT} on vif1.0, got {on_vif1}"
    );
    assert_eq!(on_vif1 as u64, LIMIT, "the first {LIMIT} are learned");
    w.drain();

    // Forwarding goes on: g2 reaches the upstream router …
    let r = Responder::start(&w.sim, &[(4094, UPSTREAM_IP_4094)]).expect("responder");
    let out = w.ping_from("g2", UPSTREAM_IP_4094);
    let seen = r.finish().expect("responder");
    assert_ok(
        &out,
        "g2 → upstream ping with vif1.0 at its MAC limit",
        &w.log(),
    );
    assert!(
        seen.iter()
            .any(|s| matches!(s, Seen::EchoRequest { answered: true, .. }))
    );
    // … and g1 (whose own MAC can no longer be learned) still talks to g2: frames to g1 are
    // flooded.
    let before = w.stats();
    let out = w.ping_from("g1", "10.94.0.2");
    assert_ok(&out, "g1 → g2 ping with vif1.0 at its MAC limit", &w.log());
    let d = delta(&before, &w.stats());
    assert_eq!(
        only_ports(&d, &["vif1.0", "vif2.0"]),
        expect(&[
            ("vif1.0", "rx_packets", 4),
            ("vif1.0", "rx_bytes", 42 + 3 * 98),
            ("vif1.0", "flood", 1),
            ("vif1.0", "forward", 3),
            ("vif1.0", "learn_limit", 4),
            ("vif1.0", "tx_packets", 4),
            ("vif1.0", "tx_bytes", 42 + 3 * 98),
            ("vif2.0", "rx_packets", 4),
            ("vif2.0", "rx_bytes", 42 + 3 * 98),
            ("vif2.0", "flood", 4),
            ("vif2.0", "tx_packets", 4),
            ("vif2.0", "tx_bytes", 42 + 3 * 98),
        ]),
        "g1's MAC is not learned, replies to it are flooded: {d:?}"
    );
    assert!(
        !w.fdb(Some("trunk"))
            .iter()
            .any(|r| r.mac == format_mac(&g1)),
        "g1's own MAC must not be learned past the limit"
    );
    w.sim.flush_neighbours().expect("flushing neighbours");
    assert!(
        w.agent.stop().expect("stopping the agent"),
        "agent must exit 0"
    );
}

#[test]
fn reload_adds_and_removes_without_disturbing_others() {
    if !require_root() {
        return;
    }
    let w = World::new("reload", &FullConfig::default(), &[G5]);
    let (g1, g2, g3, g5) = (w.mac("g1"), w.mac("g2"), w.mac("g3"), w.mac("g5"));

    // Everyone relevant is learned: g1 and g2 (the flow), g3 (to be removed).
    for (n, m) in [("g1", g1), ("g2", g2), ("g3", g3)] {
        w.send(n, &test_frame(BROADCAST, m, &[], 1));
    }
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        w.fdb(None)
            .iter()
            .any(|r| r.mac == format_mac(&g3) && r.port == "vif3.0"),
        "g3 learned before the reload"
    );
    let ports_before = w.agent.ports().expect("ports");
    let slot_of = |ports: &[serde_json::Value], name: &str| {
        ports
            .iter()
            .find(|p| p["interface"] == name)
            .map(|p| (p["ifindex"].clone(), p["slot"].clone()))
    };
    assert!(
        slot_of(&ports_before, "vif5.0").is_none(),
        "vif5.0 not a port yet"
    );
    let g5_alone = w.collect_after(
        |w| w.send("g5", &test_frame(BROADCAST, g5, &[], 2)),
        |f| find_marker(f) == Some(2),
    );
    arrived(&g5_alone, &[], "g5 before it is a port");

    // A steady flow g1 → g2 at ~1 kHz through everything that follows.
    let flow = Flow::start(
        w.sim.socket("g1").expect("socket"),
        w.sim.socket("g2").expect("socket"),
        g2,
        g1,
        1000,
        FLOW_BASE,
    );
    std::thread::sleep(Duration::from_millis(300));
    // Frames to g3 put its entry in the FDB cache of the CPUs that forward them.
    for i in 0..16 {
        w.send("up", &test_frame(g3, UPSTREAM_MAC, &[q_tag(4093)], 300 + i));
    }

    // Add vif5.0 (access 4092) and VLAN 4092 on both trunks; remove vif3.0.
    let new = FullConfig {
        trunk_vlans: vec![4092, 4093, 4094],
        access: vec![("vif1.0", 4094), ("vif2.0", 4094), ("vif5.0", 4092)],
        ..FullConfig::default()
    };
    w.agent.write_config(&new).expect("writing the new config");
    let t = Instant::now();
    let out = w.agent.reload().expect("reload");
    eprintln!("reload took {:?}", t.elapsed());
    assert_ok(&out, "reload", &w.log());
    let changes: serde_json::Value = serde_json::from_slice(&out.stdout).expect("reload JSON");
    let names = |k: &str| -> Vec<String> {
        let mut v: Vec<String> = changes[k]
            .as_array()
            .unwrap_or_else(|| panic!("reload JSON without {k}: {changes}"))
            .iter()
            .map(|x| x.as_str().expect("name").to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names("added"), ["vif5.0"], "{changes}");
    assert_eq!(names("removed"), ["vif3.0"], "{changes}");
    assert_eq!(names("changed"), ["eth1", "vif4.0"], "{changes}");
    assert_eq!(changes["statics_added"], 0, "{changes}");
    assert_eq!(changes["statics_removed"], 0, "{changes}");

    // Ports: vif5.0 in, vif3.0 out (and detached), the others untouched.
    let ports = w.agent.ports().expect("ports");
    assert!(slot_of(&ports, "vif5.0").is_some(), "{ports:#?}");
    assert!(slot_of(&ports, "vif3.0").is_none(), "{ports:#?}");
    for p in [
        "vif1.0",
        "vif2.0",
        "eth1",
        "vif4.0",
        "xnh-trunk",
        "vif1.1",
        "vif2.1",
    ] {
        assert_eq!(
            slot_of(&ports, p),
            slot_of(&ports_before, p),
            "{p} kept its ifindex and slot"
        );
    }
    assert!(
        !w.sim.xdp_attached("vif3.0").expect("ip link"),
        "vif3.0 must be detached"
    );
    assert!(
        w.sim.xdp_attached("vif5.0").expect("ip link"),
        "vif5.0 must be attached"
    );
    // The removed port's MACs are gone.
    let fdb = w.fdb(None);
    assert!(
        !fdb.iter()
            .any(|r| r.port == "vif3.0" || r.mac == format_mac(&g3)),
        "nothing of vif3.0 may remain: {fdb:?}"
    );

    // The new guest forwards on the new VLAN: its broadcast reaches the trunks tagged 4092.
    let (got, d) = w.observe(|w| w.send("g5", &test_frame(BROADCAST, g5, &[], 3)));
    arrived(
        &got,
        &[("up", Some(4092)), ("g4", Some(4092))],
        "g5 broadcast on 4092",
    );
    assert_eq!(
        only_ports(&d, &["vif5.0", "eth1", "vif4.0", "vif3.0", "xnh-trunk"]),
        expect(&[
            ("vif5.0", "rx_packets", 1),
            ("vif5.0", "rx_bytes", test_frame_len(0)),
            ("vif5.0", "flood", 1),
            ("vif5.0", "learn_new", 1),
            ("eth1", "tx_packets", 1),
            ("eth1", "tx_bytes", test_frame_len(1)),
            ("vif4.0", "tx_packets", 1),
            ("vif4.0", "tx_bytes", test_frame_len(1)),
        ])
    );
    // … and it reaches an upstream router on 4092 with ARP and ping.
    let r = Responder::start(&w.sim, &[(4092, "10.92.0.100")]).expect("responder");
    let out = w.ping_from("g5", "10.92.0.100");
    let seen = r.finish().expect("responder");
    assert_ok(&out, "g5 → upstream ping on the new VLAN", &w.log());
    assert!(
        seen.contains(&Seen::ArpRequest {
            vlan: Some(4092),
            tpa: ipv4("10.92.0.100"),
            answered: true
        }),
        "{seen:?}"
    );
    // The upstream side: 4092 is carried now, tagged frames reach g5 untagged.
    let (got, _) = w.observe(|w| w.send("up", &test_frame(g5, UPSTREAM_MAC, &[q_tag(4092)], 4)));
    arrived(&got, &[("g5", None)], "upstream → g5 on 4092");
    // The removed guest is cut off: nothing of it is forwarded any more.
    let (got, _) = w.observe(|w| w.send("g3", &test_frame(BROADCAST, g3, &[], 5)));
    arrived(&got, &[], "g3 after its port was removed");
    // Its flushed entry is forgotten by every CPU's cache: frames to it are flooded (a
    // cached copy would point at the removed port: `drop_stale_fdb`).
    for i in 0..4 {
        let (_, d) =
            w.observe(|w| w.send("up", &test_frame(g3, UPSTREAM_MAC, &[q_tag(4093)], 400 + i)));
        assert_eq!(at(&d, "eth1", "flood"), 1, "upstream → removed g3: {d:?}");
    }

    // An invalid file, by SIGHUP: logged, nothing changes.
    let bad = FullConfig {
        extra_lines: vec![("vif5.0", "mac_limit = -1")],
        ..new.clone()
    };
    w.agent.write_config(&bad).expect("writing the bad config");
    let log_before = w.log().len();
    w.agent.sighup().expect("SIGHUP");
    let (logged, _) = poll(
        Duration::from_secs(5),
        Duration::from_millis(20),
        || w.log()[log_before..].to_string(),
        |l| l.contains("reload failed"),
    );
    assert!(
        logged.contains("reload failed") && logged.contains("mac_limit"),
        "the agent must log why the reload failed: {logged:?}"
    );
    assert_eq!(
        w.agent.ports().expect("ports"),
        ports,
        "SIGHUP with an invalid file changed ports"
    );
    // The same file through `reload`: non-zero exit, the error on stderr, nothing changed.
    let out = w.agent.reload().expect("reload");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "reload of an invalid file must fail: {err}"
    );
    assert!(
        err.contains("mac_limit"),
        "the error must say what is wrong: {err}"
    );
    assert_eq!(
        w.agent.ports().expect("ports"),
        ports,
        "a failed reload changed ports"
    );
    let (got, _) = w.observe(|w| w.send("g5", &test_frame(BROADCAST, g5, &[], 6)));
    arrived(
        &got,
        &[("up", Some(4092)), ("g4", Some(4092))],
        "g5 after the failed reloads",
    );

    // Back to the valid file: a reload with nothing to do changes nothing.
    w.agent.write_config(&new).expect("writing the config");
    let out = w.agent.reload().expect("reload");
    assert_ok(&out, "no-op reload", &w.log());
    let changes: serde_json::Value = serde_json::from_slice(&out.stdout).expect("reload JSON");
    for k in ["added", "removed", "changed"] {
        assert_eq!(changes[k], serde_json::json!([]), "no-op reload: {changes}");
    }

    // The flow went on through all of it.
    std::thread::sleep(Duration::from_millis(200));
    let r = flow.finish(Duration::from_millis(300)).expect("flow");
    eprintln!(
        "steady flow g1 → g2 across the reloads: sent {}, received {}, lost {}, duplicated {}",
        r.sent,
        r.received,
        r.missing.len(),
        r.duplicates
    );
    assert!(r.sent > 500, "the flow must have run: {r:?}");
    assert!(r.missing.is_empty(), "frames lost: {:?}", r.missing);
    assert_eq!(r.duplicates, 0, "frames duplicated");
    let mut w = w;
    assert!(w.agent.running(), "the agent must still run");
    assert!(
        w.agent.stop().expect("stopping the agent"),
        "agent must exit 0"
    );
}

/// `XN_FLOODG` read through bpftool: {(bridge, VLAN) → member ifindices}.
fn flood_groups(
    pin_dir: &std::path::Path,
) -> BTreeMap<(u32, u32), std::collections::BTreeSet<u32>> {
    fn dump(args: &[&str]) -> Vec<serde_json::Value> {
        let out = std::process::Command::new("bpftool")
            .args(["-j", "map", "dump"])
            .args(args)
            .output()
            .expect("running bpftool");
        assert!(out.status.success(), "bpftool map dump {args:?}: {out:?}");
        serde_json::from_slice(&out.stdout).expect("bpftool's JSON")
    }
    fn u32_at(v: &serde_json::Value, at: usize) -> u32 {
        let b: Vec<u8> = v.as_array().expect("bytes")[at..at + 4]
            .iter()
            .map(|x| {
                u8::from_str_radix(x.as_str().expect("hex").trim_start_matches("0x"), 16)
                    .expect("a byte")
            })
            .collect();
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }
    let pin = pin_dir.join("XN_FLOODG");
    let mut groups = BTreeMap::new();
    for e in dump(&["pinned", pin.to_str().expect("utf-8 path")]) {
        let key = (u32_at(&e["key"], 0), u32_at(&e["key"], 4));
        let id = u32_at(&e["value"], 0).to_string();
        let members = dump(&["id", &id])
            .iter()
            .map(|m| u32_at(&m["key"], 0))
            .collect();
        groups.insert(key, members);
    }
    groups
}

/// Empty the pinned `XN_FLOOD` (the devmap of every XDP port that floods without a group), so
/// that a flood that still arrives went through its group.
fn empty_xn_flood(pin_dir: &std::path::Path) {
    let pin = pin_dir.join("XN_FLOOD");
    let pin = pin.to_str().expect("utf-8 path");
    let out = std::process::Command::new("bpftool")
        .args(["-j", "map", "dump", "pinned", pin])
        .output()
        .expect("running bpftool");
    assert!(out.status.success(), "bpftool map dump {pin}: {out:?}");
    let entries: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(!entries.is_empty(), "XN_FLOOD holds the XDP ports");
    for e in entries {
        let mut args = vec!["map", "delete", "pinned", pin, "key", "hex"];
        let key: Vec<String> = e["key"]
            .as_array()
            .expect("key bytes")
            .iter()
            .map(|b| b.as_str().expect("hex").trim_start_matches("0x").to_owned())
            .collect();
        args.extend(key.iter().map(String::as_str));
        let out = std::process::Command::new("bpftool")
            .args(&args)
            .output()
            .expect("running bpftool");
        assert!(out.status.success(), "bpftool {args:?}: {out:?}");
    }
}

/// XDP floods go through one devmap per {bridge, VLAN} of the native-XDP ports carrying it
/// (`XN_FLOODG`): the groups follow the configuration (reload), are rebuilt by a new agent,
/// and a broadcast reaches exactly its VLAN's ports, tagged per port — with `XN_FLOOD` (the
/// way of floods without a group) emptied, so through the groups.
#[test]
fn xdp_flood_groups() {
    if !require_root() {
        return;
    }
    let mut w = World::new("groups", &FullConfig::default(), &[]);
    // Without the host port, the trunk bridge floods in XDP too (a host port is TC-only).
    let text = std::fs::read_to_string(w.agent.config_path()).expect("reading the config");
    let no_host = |t: &str| {
        let start = t.find("\n[bridge.host]").expect("a host port");
        let end = start + t[start..].find("\n\n").expect("end of the host port");
        format!("{}{}", &t[..start], &t[end..])
    };
    w.agent
        .write_config_text(&no_host(&text))
        .expect("writing the config");
    assert_ok(&w.agent.reload().expect("reload"), "reload", &w.log());
    let ports = w.agent.ports().expect("ports");
    let idx = |name: &str| -> u32 {
        ports
            .iter()
            .find(|p| p["interface"] == name)
            .and_then(|p| p["ifindex"].as_u64())
            .unwrap_or_else(|| panic!("no port {name}: {ports:?}")) as u32
    };
    let set = |names: &[&str]| {
        names
            .iter()
            .map(|n| idx(n))
            .collect::<std::collections::BTreeSet<u32>>()
    };
    // By VLAN (each VLAN here is in one bridge): the members; the trunk and internal bridges
    // have different ids.
    let by_vlan = |g: &BTreeMap<(u32, u32), std::collections::BTreeSet<u32>>| {
        let bridges: std::collections::BTreeSet<u32> = g.keys().map(|k| k.0).collect();
        assert_eq!(bridges.len(), 2, "groups of two bridges: {g:?}");
        g.iter()
            .map(|(k, m)| (k.1, m.clone()))
            .collect::<BTreeMap<_, _>>()
    };
    let groups = by_vlan(&flood_groups(&w.fs.pin_dir()));
    assert_eq!(
        groups,
        BTreeMap::from([
            (10, set(&["vif1.1", "vif2.1"])),
            (4093, set(&["eth1", "vif3.0", "vif4.0"])),
            (4094, set(&["eth1", "vif1.0", "vif2.0", "vif4.0"])),
        ]),
        "flood groups"
    );

    // From here floods can only go through their groups.
    empty_xn_flood(&w.fs.pin_dir());
    let up = UPSTREAM_MAC;
    let (got, d) = w.observe(|w| w.send("up", &test_frame(BROADCAST, up, &[q_tag(4094)], 1)));
    arrived(
        &got,
        &[("g1", None), ("g2", None), ("g4", Some(4094))],
        "upstream broadcast in VLAN 4094",
    );
    assert_eq!(at(&d, "eth1", "flood"), 1, "{d:?}");
    for p in ["vif1.0", "vif2.0", "vif4.0"] {
        assert_eq!(at(&d, p, "tx_packets"), 1, "{p}: {d:?}");
    }
    for p in ["vif3.0", "vif1.1", "vif2.1"] {
        assert_eq!(at(&d, p, "tx_packets"), 0, "{p}: {d:?}");
    }
    let g3 = w.mac("g3");
    let (got, _) = w.observe(|w| w.send("g3", &test_frame(BROADCAST, g3, &[], 2)));
    arrived(
        &got,
        &[("up", Some(4093)), ("g4", Some(4093))],
        "g3's broadcast in VLAN 4093",
    );

    // vif3.0 moves to VLAN 4094: its group changes, 4093 keeps the trunks.
    let moved = no_host(&text).replace("access = 4093", "access = 4094");
    w.agent
        .write_config_text(&moved)
        .expect("writing the config");
    assert_ok(&w.agent.reload().expect("reload"), "reload", &w.log());
    let want = BTreeMap::from([
        (10, set(&["vif1.1", "vif2.1"])),
        (4093, set(&["eth1", "vif4.0"])),
        (4094, set(&["eth1", "vif1.0", "vif2.0", "vif3.0", "vif4.0"])),
    ]);
    assert_eq!(
        by_vlan(&flood_groups(&w.fs.pin_dir())),
        want,
        "after the move"
    );
    let (got, _) = w.observe(|w| w.send("g3", &test_frame(BROADCAST, g3, &[], 3)));
    arrived(
        &got,
        &[
            ("up", Some(4094)),
            ("g1", None),
            ("g2", None),
            ("g4", Some(4094)),
        ],
        "g3's broadcast in VLAN 4094",
    );

    // A new agent on the same pins builds its own groups, the same ones, and floods alike.
    let pin_dir = w.fs.pin_dir();
    let restarted = w.agent.restart(&w.sim.dom0, &pin_dir);
    assert!(
        restarted.expect("restarting the agent"),
        "agent must exit 0"
    );
    assert_eq!(by_vlan(&flood_groups(&pin_dir)), want, "after the restart");
    empty_xn_flood(&pin_dir);
    let (got, _) = w.observe(|w| w.send("g3", &test_frame(BROADCAST, g3, &[], 4)));
    arrived(
        &got,
        &[
            ("up", Some(4094)),
            ("g1", None),
            ("g2", None),
            ("g4", Some(4094)),
        ],
        "g3's broadcast after the restart",
    );
    assert!(
        w.agent.stop().expect("stopping the agent"),
        "agent must exit 0"
    );
}
