//! The seed's trunk setup, end to end with real frames: two guests on VLAN 4094, one on 4093,
//! a tagged uplink to an upstream switch. Every step checks what arrived where, with which
//! tag, and exactly which counters moved.
#![allow(
    clippy::many_single_char_names,
    clippy::cast_possible_truncation,
    clippy::too_many_lines,
    clippy::type_complexity,
    reason = "short test names; small indices"
)]

use std::collections::BTreeMap;

use xennet_tests::{
    capture::{nowhere, only, tags_at},
    counters::{delta, expect},
    frame::{
        ETH_P_8021AD, ETH_P_8021Q, find_marker, parse_eth, q_tag, tci, test_frame, test_frame_len,
    },
    output::assert_ok,
    require_root,
    seedworld::SeedWorld,
    topo::{
        Agent, BpfFs, Mode, SEED_CONFIG, SeedDom0, UPSTREAM_MAC, start_seed, workspace_root,
        xdp_attached,
    },
};

/// The seed's trunk setup in `mode`, each port attached as the mode says.
fn world(tag: &str, mode: Mode) -> SeedWorld {
    let (sim, fs, agent) = start_seed(tag, mode, "").expect("starting the seed setup");
    let want = match mode {
        Mode::Xdp => ["xdp"; 4],
        Mode::VifsTc => ["xdp", "tc", "tc", "tc"],
        Mode::AllTc => ["tc"; 4],
    };
    let ports = agent.ports().expect("ports");
    for (name, attached) in ["eth1", "vif1.0", "vif2.0", "vif3.0"].iter().zip(want) {
        let p = ports
            .iter()
            .find(|p| p["interface"] == *name)
            .unwrap_or_else(|| panic!("{name} missing from `ports`: {ports:?}"));
        assert_eq!(p["attached"], attached, "{name} attach mode");
    }
    SeedWorld::with(sim, fs, agent)
}

/// Expected arrivals: one frame at each named endpoint, with these tags.
fn arrivals(rows: &[(&str, &[(u16, u16)])]) -> BTreeMap<String, Vec<Vec<(u16, u16)>>> {
    rows.iter()
        .map(|(n, t)| ((*n).to_string(), vec![t.to_vec()]))
        .collect()
}

#[test]
fn seed_trunk_end_to_end() {
    if require_root() {
        scenario("seed", Mode::Xdp);
    }
}

#[test]
fn seed_trunk_vifs_in_tc() {
    if require_root() {
        scenario("seedtc", Mode::VifsTc);
    }
}

#[test]
fn seed_trunk_all_tc() {
    if require_root() {
        scenario("seedalltc", Mode::AllTc);
    }
}

/// The whole seed scenario; the same deliveries, tags and counters whatever the mode.
fn scenario(tag: &str, mode: Mode) {
    let w = world(tag, mode);
    let (g1, g2, g3) = (w.mac(0), w.mac(1), w.mac(2));

    // Guests on the same VLAN reach each other: ping with static MACs.
    let before = w.stats();
    let out = w.sim.guests[0].ns.ping("10.94.0.2").expect("ping");
    assert_ok(&out, "g1 → g2 ping", &w.agent.log_text());
    let d = delta(&before, &w.stats());
    // 3 echo requests + 3 replies, 98 bytes each, all forwarded in XDP.
    assert_eq!(
        d,
        expect(&[
            ("vif1.0", "rx_packets", 3),
            ("vif1.0", "rx_bytes", 294),
            ("vif1.0", "forward", 3),
            ("vif1.0", "tx_packets", 3),
            ("vif1.0", "tx_bytes", 294),
            ("vif2.0", "rx_packets", 3),
            ("vif2.0", "rx_bytes", 294),
            ("vif2.0", "forward", 3),
            ("vif2.0", "tx_packets", 3),
            ("vif2.0", "tx_bytes", 294),
        ]),
        "ping counters"
    );

    // A guest's frame to the upstream leaves the trunk tagged with the guest's VLAN.
    for (i, vid) in [(0usize, 4094u16), (2, 4093)] {
        let (got, d) = w.observe(|w| {
            w.g[i]
                .send(&test_frame(UPSTREAM_MAC, w.mac(i), &[], 10 + i as u32))
                .expect("send");
        });
        let f = only(&got, "up");
        let p = parse_eth(&f).expect("parse");
        assert_eq!(
            p.tags,
            vec![q_tag(vid)],
            "upstream must see exactly one 802.1Q tag {vid}"
        );
        assert_eq!((p.dst, p.src), (UPSTREAM_MAC, w.mac(i)));
        assert_eq!(find_marker(&f), Some(10 + i as u32));
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

    // A tagged frame from upstream reaches the right guest, untagged; PCP does not leak.
    for (i, vid, g) in [(0usize, 4094u16, g1), (1, 4094, g2), (2, 4093, g3)] {
        let (got, d) = w.observe(|w| {
            w.up.send(&test_frame(
                g,
                UPSTREAM_MAC,
                &[(ETH_P_8021Q, tci(5, false, vid))],
                20 + i as u32,
            ))
            .expect("send");
        });
        let at = ["g1", "g2", "g3"][i];
        let f = only(&got, at);
        let p = parse_eth(&f).expect("parse");
        assert!(
            p.tags.is_empty(),
            "{at} must receive untagged, got tags {:?}",
            p.tags
        );
        assert_eq!((p.dst, p.src), (g, UPSTREAM_MAC));
        assert_eq!(find_marker(&f), Some(20 + i as u32));
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
            "counters for upstream → {vif}"
        );
    }

    // Nothing crosses between VLAN 4093 and 4094, whichever way it is addressed: a MAC of
    // the other VLAN is unknown here, so the frame is flooded within its own VLAN only.
    // 4094 guest → 4093 guest's MAC: reaches g2 (untagged) and upstream (tagged 4094).
    let (got, d) = w.observe(|w| w.g[0].send(&test_frame(g3, g1, &[], 30)).expect("send"));
    assert_eq!(
        tags_at(&got),
        arrivals(&[("g2", &[]), ("up", &[q_tag(4094)])])
    );
    assert_eq!(
        d,
        expect(&[
            ("vif1.0", "rx_packets", 1),
            ("vif1.0", "rx_bytes", test_frame_len(0)),
            ("vif1.0", "flood", 1),
            ("vif2.0", "tx_packets", 1),
            ("vif2.0", "tx_bytes", test_frame_len(0)),
            ("eth1", "tx_packets", 1),
            ("eth1", "tx_bytes", test_frame_len(1)),
        ])
    );
    // 4093 guest → 4094 guest's MAC: upstream only, tagged 4093.
    let (got, d) = w.observe(|w| w.g[2].send(&test_frame(g1, g3, &[], 31)).expect("send"));
    assert_eq!(tags_at(&got), arrivals(&[("up", &[q_tag(4093)])]));
    assert_eq!(
        d,
        expect(&[
            ("vif3.0", "rx_packets", 1),
            ("vif3.0", "rx_bytes", test_frame_len(0)),
            ("vif3.0", "flood", 1),
            ("eth1", "tx_packets", 1),
            ("eth1", "tx_bytes", test_frame_len(1)),
        ])
    );
    // Upstream, tagged 4094, to the 4093 guest: g1 and g2 get it, g3 does not.
    let (got, d) = w.observe(|w| {
        w.up.send(&test_frame(g3, UPSTREAM_MAC, &[q_tag(4094)], 32))
            .expect("send");
    });
    assert_eq!(tags_at(&got), arrivals(&[("g1", &[]), ("g2", &[])]));
    assert_eq!(
        d,
        expect(&[
            ("eth1", "rx_packets", 1),
            ("eth1", "rx_bytes", test_frame_len(1)),
            ("eth1", "flood", 1),
            ("vif1.0", "tx_packets", 1),
            ("vif1.0", "tx_bytes", test_frame_len(0)),
            ("vif2.0", "tx_packets", 1),
            ("vif2.0", "tx_bytes", test_frame_len(0)),
        ])
    );
    // Upstream, tagged 4093, to a 4094 guest: only g3.
    let (got, d) = w.observe(|w| {
        w.up.send(&test_frame(g1, UPSTREAM_MAC, &[q_tag(4093)], 33))
            .expect("send");
    });
    assert_eq!(tags_at(&got), arrivals(&[("g3", &[])]));
    assert_eq!(
        d,
        expect(&[
            ("eth1", "rx_packets", 1),
            ("eth1", "rx_bytes", test_frame_len(1)),
            ("eth1", "flood", 1),
            ("vif3.0", "tx_packets", 1),
            ("vif3.0", "tx_bytes", test_frame_len(0)),
        ])
    );
    // And ping across VLANs gets no answer (the MAC is static in the guest, so only the
    // datapath stands in the way).
    let out = w.sim.guests[0]
        .ns
        .exec(&["ping", "-c", "2", "-i", "0.2", "-W", "1", "10.93.0.3"])
        .expect("ping");
    assert!(
        !out.status.success(),
        "ping from VLAN 4094 to VLAN 4093 must fail"
    );

    // Refused frames are dropped and counted by reason.
    let cases: [(&str, usize, Vec<u8>, &str, &str); 5] = [
        (
            "tag on an access port",
            0,
            test_frame(g2, g1, &[q_tag(4094)], 40),
            "vif1.0",
            "drop_tagged_on_access",
        ),
        (
            "VLAN the trunk does not carry",
            9,
            test_frame(g1, UPSTREAM_MAC, &[q_tag(100)], 41),
            "eth1",
            "drop_vlan_not_allowed",
        ),
        (
            "untagged on a trunk without native VLAN",
            9,
            test_frame(g1, UPSTREAM_MAC, &[], 42),
            "eth1",
            "drop_untagged_on_trunk",
        ),
        (
            "802.1ad tag on an 802.1Q bridge",
            9,
            test_frame(g1, UPSTREAM_MAC, &[(ETH_P_8021AD, 4094)], 43),
            "eth1",
            "drop_foreign_tpid",
        ),
        (
            "VLAN 4095",
            9,
            test_frame(g1, UPSTREAM_MAC, &[q_tag(4095)], 44),
            "eth1",
            "drop_bad_vid",
        ),
    ];
    for (what, from, frame, port, reason) in cases {
        let len = frame.len() as u64;
        let (got, d) = w.observe(|w| {
            let s = if from == 9 { &w.up } else { &w.g[from] };
            s.send(&frame).expect("send");
        });
        nowhere(&got);
        assert_eq!(
            d,
            expect(&[
                (port, "rx_packets", 1),
                (port, "rx_bytes", len),
                (port, reason, 1)
            ]),
            "{what}"
        );
    }

    assert!(
        w.agent.stop().expect("stopping the agent"),
        "agent must exit 0 on SIGTERM"
    );
}

#[test]
fn sigterm_leaves_the_datapath_forwarding_and_down_removes_it() {
    if !require_root() {
        return;
    }
    let sim = SeedDom0::new("stop").expect("building the simulated dom0");
    let fs = BpfFs::new(sim.dom0.name()).expect("mounting a bpffs");
    let cfg = workspace_root().join(SEED_CONFIG);
    let agent = Agent::start(&sim.dom0, &cfg, &fs.pin_dir()).expect("starting the agent");
    let xdp_on = |ifname: &str| xdp_attached(&sim.dom0, ifname).expect("ip link");
    let ports = ["eth1", "vif1.0", "vif2.0", "vif3.0"];
    for p in ports {
        assert!(
            xdp_on(p),
            "{p} must have the XDP program attached while the agent runs"
        );
    }
    assert!(
        fs.pin_dir().join("XN_STATS").exists(),
        "stats map must be pinned"
    );
    let ping = || {
        sim.guests[0]
            .ns
            .exec(&["ping", "-c", "1", "-W", "1", "10.94.0.2"])
            .expect("ping")
            .status
            .success()
    };
    // SIGTERM: the agent goes, the datapath stays (pinned links and maps).
    let pin_dir = fs.pin_dir();
    let second = Agent::start(&sim.dom0, &cfg, &pin_dir);
    assert!(
        second
            .as_ref()
            .err()
            .is_some_and(|e| format!("{e:#}").contains("one agent per pin_dir")),
        "a second agent on the same pin_dir must be refused: {second:?}"
    );
    drop(second);
    let bin = xennet_tests::topo::agent_bin().expect("agent binary");
    assert!(
        agent.leave_running().expect("stopping"),
        "agent must exit 0"
    );
    for p in ports {
        assert!(xdp_on(p), "{p} must stay attached after SIGTERM");
    }
    assert!(
        pin_dir.join("XN_STATS").exists(),
        "pins must stay after SIGTERM"
    );
    assert!(ping(), "the datapath must forward with the agent gone");
    // `down` removes it all.
    let out = xennet_tests::topo::agent_command(
        &bin,
        &sim.dom0,
        &[
            "down",
            "--pin-dir",
            &pin_dir.to_string_lossy(),
            "--socket",
            "/nonexistent/x.sock",
        ],
    )
    .output()
    .expect("running down");
    assert!(
        out.status.success(),
        "down: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for p in ports {
        assert!(!xdp_on(p), "{p} must be detached after down");
    }
    assert!(!pin_dir.exists(), "pins must be removed by down");
    assert!(!ping(), "after down nothing forwards");
}
