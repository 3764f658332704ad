//! VLAN tags that reach a native-XDP trunk in metadata (issue 15): dom0's uplink `eth1` has
//! as its peer a port of a kernel bridge (the physical switch, in the upstream namespace), so
//! a tagged frame injected on another port of that bridge arrives with its tag in the skb's
//! `vlan_tci` (the bridge's receive path untags it, veth's tx-vlan offload keeps it there),
//! not in the frame XDP sees. Every test checks what arrives where, with which tags, and the
//! exact counter deltas.
#![allow(
    clippy::cast_possible_truncation,
    clippy::too_many_lines,
    reason = "small indices; one scenario per test"
)]

use std::{collections::BTreeMap, path::Path};

use xennet_tests::{
    Netns, RawSocket,
    capture::{Got, collect_marked, drain, only, tags_at},
    counters::{Counters, Deltas, delta, expect},
    frame::{ETH_P_8021Q, Mac, find_marker, parse_eth, q_tag, tci, test_frame, test_frame_len},
    require_root,
    topo::{Agent, BpfFs, Mode, SeedDom0, UPSTREAM_MAC},
};

/// The knob that overrides what the agent finds about a device's received tags.
const KNOB: &str = "XENNET_TEST_RX_VLAN";

/// Fields drop in order: the agent stops (and `down` runs in dom0) before the bpffs goes and
/// before the namespaces do.
struct World {
    agent: Agent,
    _fs: BpfFs,
    /// The switch port where "the network" sends and receives.
    inj: RawSocket,
    g: Vec<RawSocket>,
    sim: SeedDom0,
}

/// Make the upstream namespace a switch: a kernel bridge over its `eth0` (dom0's uplink
/// peer) and `inj0`, whose veth peer `inj1` is where the tests inject and capture.
fn switch(up: &Netns) {
    for args in [
        // No multicast snooping: a snooping bridge joins 224.0.0.106 and sends two IGMPv3
        // reports out of every port within a second of coming up — untagged frames that
        // would reach the trunk in the middle of a test's exact counter deltas.
        &[
            "ip",
            "link",
            "add",
            "sw",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ][..],
        &["ip", "link", "set", "eth0", "master", "sw"],
        &[
            "ip", "link", "add", "inj0", "type", "veth", "peer", "name", "inj1",
        ],
        &["ip", "link", "set", "inj0", "master", "sw"],
        &["ip", "link", "set", "sw", "up"],
        &["ip", "link", "set", "inj0", "up"],
        &["ip", "link", "set", "inj1", "up"],
    ] {
        up.exec_ok(args).expect("building the switch");
    }
}

impl World {
    fn new(tag: &str, mode: Mode, knob: Option<&str>) -> World {
        let sim = SeedDom0::new(tag).expect("building the simulated dom0");
        switch(&sim.up);
        let fs = BpfFs::new(sim.dom0.name()).expect("bpffs");
        let cfg = mode.config(sim.dom0.name(), "").expect("config");
        let env: Vec<(&str, &Path)> = knob.map(|k| (KNOB, Path::new(k))).into_iter().collect();
        let agent = Agent::start_env(&sim.dom0, &cfg, &fs.pin_dir(), &env).expect("agent");
        let _ = std::fs::remove_file(&cfg);
        let inj = RawSocket::open(&sim.up, "inj1").expect("switch socket");
        let g = ["vif1.0", "vif2.0", "vif3.0"]
            .iter()
            .map(|v| sim.guest_socket(v).expect("guest socket"))
            .collect();
        World {
            sim,
            agent,
            _fs: fs,
            inj,
            g,
        }
    }

    fn stats(&self) -> Counters {
        self.agent.stats(&self.sim.dom0).expect("reading stats")
    }

    fn mac(&self, i: usize) -> Mac {
        self.sim.guests[i].mac
    }

    fn port(&self, name: &str) -> serde_json::Value {
        let ports = self.agent.ports().expect("ports");
        ports
            .into_iter()
            .find(|p| p["interface"] == name)
            .unwrap_or_else(|| panic!("{name} missing from `ports`"))
    }

    /// Send `frame` into the switch, then collect what every endpoint received (marked
    /// frames) and the counter deltas.
    fn inject(&self, frame: &[u8]) -> (Got, Deltas) {
        self.observe(|w| w.inj.send(frame).expect("send"))
    }

    fn observe<F: FnOnce(&World)>(&self, f: F) -> (Got, Deltas) {
        let points = [
            ("g1", &self.g[0]),
            ("g2", &self.g[1]),
            ("g3", &self.g[2]),
            ("sw", &self.inj),
        ];
        drain(&points);
        let before = self.stats();
        f(self);
        let got = collect_marked(&points);
        (got, delta(&before, &self.stats()))
    }
}

/// Tagged frames from the switch reach the right guest untagged, only in their VLAN, a
/// stacked tag cannot hop, guests' replies leave the trunk tagged; exact counters.
fn crossing(w: &World) {
    // Upstream → each guest, tagged (PCP 5) in metadata: exactly one arrival, untagged.
    for (i, vid) in [(0usize, 4094u16), (1, 4094), (2, 4093)] {
        let id = 100 + i as u32;
        let (got, d) = w.inject(&test_frame(
            w.mac(i),
            UPSTREAM_MAC,
            &[(ETH_P_8021Q, tci(5, false, vid))],
            id,
        ));
        let at = ["g1", "g2", "g3"][i];
        let f = only(&got, at);
        let p = parse_eth(&f).expect("parse");
        assert!(
            p.tags.is_empty(),
            "{at} must receive untagged: {:?}",
            p.tags
        );
        assert_eq!(
            (p.dst, p.src, find_marker(&f)),
            (w.mac(i), UPSTREAM_MAC, Some(id))
        );
        let vif = w.sim.guests[i].vif;
        assert_eq!(
            d,
            expect(&[
                ("eth1", "rx_packets", 1),
                ("eth1", "rx_bytes", test_frame_len(1)),
                ("eth1", "forward", 1),
                (vif, "tx_packets", 1),
                (vif, "tx_bytes", test_frame_len(0)),
            ]),
            "counters for upstream → {vif} (the tag counts in the wire length)\n{}",
            w.agent.log_text()
        );
    }

    // VLAN isolation: g3's MAC in VLAN 4094 is unknown there: flooded to 4094 only.
    let (got, d) = w.inject(&test_frame(w.mac(2), UPSTREAM_MAC, &[q_tag(4094)], 110));
    let want: BTreeMap<String, Vec<Vec<(u16, u16)>>> = [("g1", vec![vec![]]), ("g2", vec![vec![]])]
        .into_iter()
        .map(|(n, t)| (n.to_string(), t))
        .collect();
    assert_eq!(tags_at(&got), want, "a 4094 frame floods in 4094 only");
    assert_eq!(d[&("eth1".into(), "flood".into())], 1, "{d:?}");

    // Broadcast in 4093: g3 only.
    let (got, _) = w.inject(&test_frame([0xff; 6], UPSTREAM_MAC, &[q_tag(4093)], 111));
    let f = only(&got, "g3");
    assert!(
        parse_eth(&f).expect("parse").tags.is_empty(),
        "g3 receives untagged"
    );

    // A VLAN the trunk does not carry: dropped on eth1 under its reason, nowhere else.
    let (got, d) = w.inject(&test_frame(w.mac(0), UPSTREAM_MAC, &[q_tag(100)], 112));
    assert!(
        tags_at(&got).is_empty(),
        "VLAN 100 must arrive nowhere: {got:?}"
    );
    assert_eq!(
        d,
        expect(&[
            ("eth1", "rx_packets", 1),
            ("eth1", "rx_bytes", test_frame_len(1)),
            ("eth1", "drop_vlan_not_allowed", 1),
        ]),
        "VLAN 100 counters"
    );

    // Double tag (4094 outside, in metadata; 4093 inside, in the frame): VLAN 4094 with an
    // inner tag as payload — never g3's VLAN 4093 (no hopping through a stripped outer tag).
    let (got, _) = w.inject(&test_frame(
        w.mac(2),
        UPSTREAM_MAC,
        &[q_tag(4094), q_tag(4093)],
        113,
    ));
    let want: BTreeMap<String, Vec<Vec<(u16, u16)>>> = [
        ("g1", vec![vec![q_tag(4093)]]),
        ("g2", vec![vec![q_tag(4093)]]),
    ]
    .into_iter()
    .map(|(n, t)| (n.to_string(), t))
    .collect();
    assert_eq!(
        tags_at(&got),
        want,
        "a stacked frame stays in its outer VLAN"
    );

    // Replies: each guest's frame to the upstream leaves the trunk tagged with its VLAN.
    for (i, vid) in [(0usize, 4094u16), (2, 4093)] {
        let id = 120 + i as u32;
        let (got, d) = w.observe(|w| {
            w.g[i]
                .send(&test_frame(UPSTREAM_MAC, w.mac(i), &[], id))
                .expect("send");
        });
        let f = only(&got, "sw");
        let p = parse_eth(&f).expect("parse");
        assert_eq!(p.tags, vec![q_tag(vid)], "the switch sees one tag {vid}");
        assert_eq!(find_marker(&f), Some(id));
        let vif = w.sim.guests[i].vif;
        assert_eq!(
            d,
            expect(&[
                (vif, "rx_packets", 1),
                (vif, "rx_bytes", test_frame_len(0)),
                (vif, "forward", 1),
                ("eth1", "tx_packets", 1),
                ("eth1", "tx_bytes", test_frame_len(1)),
            ]),
            "counters for {vif} → upstream"
        );
    }
}

/// The problem as filed, kept as a check that this kernel still delivers the tags in
/// metadata here: plain `xennet_xdp` on the trunk (what the agent did before, forced by the
/// knob) sees every such frame untagged and drops it as `drop_untagged_on_trunk`.
#[test]
fn plain_xdp_sees_tags_in_metadata_as_untagged() {
    if !require_root() {
        return;
    }
    let w = World::new("rxv0", Mode::VifsTc, Some("inline"));
    assert_eq!(w.port("eth1")["attached"], "xdp");
    let (got, d) = w.inject(&test_frame(w.mac(0), UPSTREAM_MAC, &[q_tag(4094)], 1));
    assert!(tags_at(&got).is_empty(), "{got:?}");
    assert_eq!(
        d,
        expect(&[
            ("eth1", "rx_packets", 1),
            ("eth1", "rx_bytes", test_frame_len(0)),
            ("eth1", "drop_untagged_on_trunk", 1),
        ])
    );
}

/// The driver's hint (veth has it): XDP on the trunk, behind the VLAN prologue; vifs in TC,
/// so frames to guests go XDP → TC on the same device (the restored tag taken out again).
#[test]
fn hint_xdp_trunk_tc_vifs() {
    if !require_root() {
        return;
    }
    let w = World::new("rxv1", Mode::VifsTc, None);
    let p = w.port("eth1");
    assert_eq!(p["attached"], "xdp", "{}", w.agent.log_text());
    assert!(
        p["rx_vlan"].as_str().is_some_and(|s| s.contains("hint")),
        "ports must say the tags come from the hint: {p}"
    );
    let text =
        String::from_utf8_lossy(&w.agent.ctl(&["ports"]).expect("ports").stdout).into_owned();
    assert!(
        text.contains("eth1: rx VLAN tags from the driver's XDP hint"),
        "{text}"
    );
    crossing(&w);
}

/// The hint with every port in native XDP: frames to guests are redirected by XDP itself.
#[test]
fn hint_all_xdp() {
    if !require_root() {
        return;
    }
    let w = World::new("rxv2", Mode::Xdp, None);
    assert_eq!(w.port("eth1")["attached"], "xdp", "{}", w.agent.log_text());
    crossing(&w);
}

/// A driver that strips tags without a hint (forced by the knob, as no such device exists
/// here): the trunk falls back to TC, says why in the log and in `ports`, and is correct.
#[test]
fn no_hint_falls_back_to_tc() {
    if !require_root() {
        return;
    }
    let w = World::new("rxv3", Mode::VifsTc, Some("stripped"));
    let p = w.port("eth1");
    assert_eq!(p["attached"], "tc", "{p}");
    assert!(
        p["rx_vlan"]
            .as_str()
            .is_some_and(|s| s.starts_with("TC only")),
        "ports must say why: {p}"
    );
    let log = w.agent.log_text();
    assert!(
        log.contains("received VLAN tags are stripped without an XDP hint: TC only")
            && log.contains("eth1"),
        "the warning: {log}"
    );
    crossing(&w);
}
