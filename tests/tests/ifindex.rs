//! Ports whose ifindex lies beyond the datapath's ifindex → slot array (`XN_IFSLOTS`, 65 536
//! entries): a dom0 that has created and destroyed vifs for months gets there. Their frames
//! reach their port through its `XN_PORTS` entry instead, in XDP and in TC (where that entry
//! yields only the slot, and the port is read at the slot). Real frames between a vif at
//! ifindex 70 002, one at exactly 65 536 and an ordinary one; what arrives where, and the
//! exact counter deltas.

use std::fmt::Write as _;

use xennet_tests::{
    RawSocket,
    bed::{Bed, Guest},
    capture::{Got, arrived, collect_marked, drain, nowhere, only},
    counters::{Deltas, delta, expect},
    frame::{BROADCAST, find_marker, parse_eth, test_frame, test_frame_len},
    require_root,
};

/// The guests, "g1".."g3" in captures: the first vif at the kernel's ifindex, the others
/// beyond the array.
const GUESTS: [Guest; 3] = [
    Guest {
        vif: "vif1",
        index: None,
        mac: [0x02, 0x1f, 0, 0, 0, 1],
    },
    Guest {
        vif: "vif2",
        index: Some(70_002),
        mac: [0x02, 0x1f, 0, 0, 0, 2],
    },
    Guest {
        vif: "vif3",
        index: Some(65_536),
        mac: [0x02, 0x1f, 0, 0, 0, 3],
    },
];

/// The capture name of guest `i`.
const AT: [&str; 3] = ["g1", "g2", "g3"];

/// The bed with its guests' sockets.
struct World {
    bed: Bed,
    socks: Vec<RawSocket>,
}

impl World {
    /// dom0 and the guests; the agent on an access bridge in VLAN 10 over the vifs, attached
    /// as `attach`.
    fn new(tag: &str, attach: &str) -> World {
        let mut cfg = "[[bridge]]\nname = \"br\"\n".to_string();
        for g in GUESTS {
            let _ = write!(
                cfg,
                "\n[[bridge.port]]\ninterface = \"{}\"\naccess = 10\nattach = \"{attach}\"\n",
                g.vif
            );
        }
        let bed = Bed::with(tag, &GUESTS, &[], &cfg);
        let socks = GUESTS.iter().map(|g| bed.socket(g.vif)).collect();
        World { bed, socks }
    }

    /// Guest `from` sends `frame`: what the guests received (marked frames) and the counter
    /// deltas.
    fn send(&self, from: usize, frame: &[u8]) -> (Got, Deltas) {
        let points: Vec<(&str, &RawSocket)> = AT.iter().copied().zip(&self.socks).collect();
        drain(&points);
        let stats = || self.bed.agent.stats(&self.bed.dom0).expect("stats");
        let before = stats();
        self.socks[from].send(frame).expect("sending");
        let got = collect_marked(&points);
        (got, delta(&before, &stats()))
    }

    /// Guest `from` sends frame `id` to guest `to`, whose MAC is known: it arrives there only,
    /// counted as a forward (and `learn_new` on `from` when its MAC is new).
    fn unicast(&self, from: usize, to: usize, id: u32, learns: bool) {
        let (src, dst) = (GUESTS[from], GUESTS[to]);
        let (got, d) = self.send(from, &test_frame(dst.mac, src.mac, &[], id));
        assert_eq!(find_marker(&only(&got, AT[to])), Some(id));
        let len = test_frame_len(0);
        let mut want = vec![
            (src.vif, "rx_packets", 1),
            (src.vif, "rx_bytes", len),
            (src.vif, "forward", 1),
            (dst.vif, "tx_packets", 1),
            (dst.vif, "tx_bytes", len),
        ];
        if learns {
            want.push((src.vif, "learn_new", 1));
        }
        assert_eq!(d, expect(&want), "{} -> {}", src.vif, dst.vif);
    }
}

/// Frames from, to and between ports beyond the array: flooded, learned, forwarded, counted
/// on the right ports.
fn crossing(tag: &str, attach: &str) {
    let w = World::new(tag, attach);
    let ports = w.bed.agent.ports().expect("ports");
    for g in GUESTS {
        let p = ports
            .iter()
            .find(|p| p["interface"] == g.vif)
            .unwrap_or_else(|| panic!("{} missing from `ports`: {ports:?}", g.vif));
        if let Some(x) = g.index {
            assert_eq!(
                p["ifindex"], x,
                "{} has the ifindex the test gave it",
                g.vif
            );
        }
    }
    let mac = |i: usize| GUESTS[i].mac;
    let len = test_frame_len(0);

    // A broadcast from the far vif: the two others, once each; its source learned there.
    let (got, d) = w.send(1, &test_frame(BROADCAST, mac(1), &[], 1));
    arrived(&got, &[("g1", None), ("g3", None)], "broadcast from vif2");
    for at in ["g1", "g3"] {
        let f = &got[at][0];
        assert_eq!(
            (parse_eth(f).expect("parse").src, find_marker(f)),
            (mac(1), Some(1)),
            "at {at}"
        );
    }
    assert_eq!(
        d,
        expect(&[
            ("vif2", "rx_packets", 1),
            ("vif2", "rx_bytes", len),
            ("vif2", "flood", 1),
            ("vif2", "learn_new", 1),
            ("vif1", "tx_packets", 1),
            ("vif1", "tx_bytes", len),
            ("vif3", "tx_packets", 1),
            ("vif3", "tx_bytes", len),
        ]),
        "broadcast from vif2\n{}",
        w.bed.agent.log_text()
    );

    // The ordinary vif to the far one, now known; the far one back; the boundary vif
    // (65 536) to the far one.
    w.unicast(0, 1, 2, true);
    w.unicast(1, 0, 3, false);
    w.unicast(2, 1, 4, true);

    // A tagged frame on an access port beyond the array: dropped there under its reason.
    let (got, d) = w.send(1, &test_frame(mac(0), mac(1), &[(0x8100, 10)], 5));
    nowhere(&got);
    assert_eq!(
        d,
        expect(&[
            ("vif2", "rx_packets", 1),
            ("vif2", "rx_bytes", test_frame_len(1)),
            ("vif2", "drop_tagged_on_access", 1),
        ]),
        "tagged on vif2"
    );
}

#[test]
fn ports_beyond_the_ifindex_array_in_xdp() {
    if !require_root() {
        return;
    }
    crossing("ixx", "xdp");
}

#[test]
fn ports_beyond_the_ifindex_array_in_tc() {
    if !require_root() {
        return;
    }
    crossing("ixt", "tc");
}
