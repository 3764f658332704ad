//! A hostile guest with real frames, in XDP and in TC mode: VLAN hopping through a priority
//! tag (issue 10, item 1). The seed's dom0 with the uplink carrying the guests' VLAN 4094 as
//! its native VLAN and 4093 tagged; guest 1 (access 4094) sends `[8100 VID 0][8100 VID 4093]…`
//! (two and three tags, unicast and broadcast), the upstream sends the same into the native
//! VLAN. Nothing may arrive anywhere (least of all tagged 4093), and `drop_nested_tag` counts
//! every frame on its ingress port. A single priority tag still goes through, so the path is
//! live and the test can fail.

use xennet_tests::{
    capture::{arrived, nowhere},
    counters::expect,
    frame::{q_tag, test_frame, test_frame_len},
    require_root,
    seedworld::SeedWorld,
    topo::{SeedDom0, UPSTREAM_MAC},
};

/// The uplink carries VLAN 4094 untagged (native) and 4093 tagged.
fn config(tc: bool) -> String {
    let attach = if tc { "attach = \"tc\"\n" } else { "" };
    let port = |iface: &str, body: &str| {
        format!("[[bridge.port]]\ninterface = \"{iface}\"\n{body}{attach}\n")
    };
    let mut s = String::from("[[bridge]]\nname = \"hostile\"\n\n");
    s += &port(
        "eth1",
        "trunk = [4093]\nnative_vlan = 4094\nmacs = [\"02:00:00:00:00:fe\", \"02:00:00:00:00:fe@4093\"]\n",
    );
    s += &port("vif1.0", "access = 4094\nmacs = [\"00:16:3e:00:00:01\"]\n");
    s += &port("vif2.0", "access = 4094\nmacs = [\"00:16:3e:00:00:02\"]\n");
    s += &port("vif3.0", "access = 4093\nmacs = [\"00:16:3e:00:00:03\"]\n");
    s
}

/// The seed dom0 with the hostile configuration, its agent in XDP or TC mode.
fn world(tag: &str, tc: bool) -> SeedWorld {
    let sim = SeedDom0::new(tag).expect("building the simulated dom0");
    let w = SeedWorld::start(sim, &config(tc));
    let want = if tc { "tc" } else { "xdp" };
    for p in w.agent.ports().expect("ports") {
        assert_eq!(p["attached"], want, "attach mode of {}", p["interface"]);
    }
    w
}

fn hopping(tag: &str, tc: bool) {
    let w = world(tag, tc);
    let (g1, g2, g3) = (w.mac(0), w.mac(1), w.mac(2));
    let prio = q_tag(0);
    let into = q_tag(4093);

    // Control: one priority tag on guest 1's broadcast is VLAN 4094, untagged on the uplink
    // (native) and at guest 2, not at guest 3.
    let (got, d) = w.send(&w.g[0], &[test_frame([0xff; 6], g1, &[prio], 1)]);
    arrived(
        &got,
        &[("up", None), ("g2", None)],
        "priority-tagged broadcast",
    );
    assert_eq!(d.get(&("vif1.0".into(), "flood".into())), Some(&1), "{d:?}");

    // The hopping frames from guest 1: to the router, to guest 3 (VLAN 4093), broadcast; two
    // and three stacked tags.
    let frames = vec![
        test_frame(UPSTREAM_MAC, g1, &[prio, into], 2),
        test_frame(g3, g1, &[prio, into], 3),
        test_frame([0xff; 6], g1, &[prio, into], 4),
        test_frame(UPSTREAM_MAC, g1, &[prio, prio, into], 5),
        test_frame([0xff; 6], g1, &[prio, prio, into], 6),
        test_frame(g2, g1, &[prio, into], 7),
    ];
    let (got, d) = w.send(&w.g[0], &frames);
    nowhere(&got);
    let bytes = 4 * test_frame_len(2) + 2 * test_frame_len(3);
    assert_eq!(
        d,
        expect(&[
            ("vif1.0", "rx_packets", 6),
            ("vif1.0", "rx_bytes", bytes),
            ("vif1.0", "drop_nested_tag", 6),
        ]),
        "guest 1's hopping frames: dropped and counted, nothing learned"
    );

    // The same from the uplink into its native VLAN: nothing reaches the guests.
    let frames = vec![
        test_frame(g1, UPSTREAM_MAC, &[prio, into], 8),
        test_frame([0xff; 6], UPSTREAM_MAC, &[prio, prio, into], 9),
    ];
    let (got, d) = w.send(&w.up, &frames);
    nowhere(&got);
    assert_eq!(
        d,
        expect(&[
            ("eth1", "rx_packets", 2),
            ("eth1", "rx_bytes", test_frame_len(2) + test_frame_len(3)),
            ("eth1", "drop_nested_tag", 2),
        ]),
        "the uplink's hopping frames"
    );
}

#[test]
fn priority_tag_hopping_is_dropped_xdp() {
    if require_root() {
        hopping("hostx", false);
    }
}

#[test]
fn priority_tag_hopping_is_dropped_tc() {
    if require_root() {
        hopping("hostt", true);
    }
}
