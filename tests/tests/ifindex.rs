//! Ports whose ifindex lies beyond the datapath's ifindex → slot array (`XN_IFSLOTS`, 65 536
//! entries): a dom0 that has created and destroyed vifs for months gets there. Their frames
//! reach their port through its `XN_PORTS` entry instead, in XDP and in TC (where that entry
//! yields only the slot, and the port is read at the slot). Real frames between a vif at
//! ifindex 70 002, one at exactly 65 536 and an ordinary one; what arrives where, and the
//! exact counter deltas.

use std::{fmt::Write as _, path::PathBuf};

use xennet_tests::{
    Netns, RawSocket,
    capture::{Got, arrived, collect_marked, drain, nowhere, only},
    counters::{Deltas, delta, expect},
    frame::{BROADCAST, Mac, find_marker, parse_eth, test_frame, test_frame_len},
    require_root, set_gro, set_mac,
    topo::{Agent, BpfFs},
};

/// The vifs: name, ifindex to create it with (`None`: the kernel's choice), guest MAC.
const VIFS: [(&str, Option<u32>, Mac); 3] = [
    ("vif1", None, [0x02, 0x1f, 0, 0, 0, 1]),
    ("vif2", Some(70_002), [0x02, 0x1f, 0, 0, 0, 2]),
    ("vif3", Some(65_536), [0x02, 0x1f, 0, 0, 0, 3]),
];

/// dom0 and three guests; the agent on an access bridge in VLAN 10 over the vifs.
struct Bed {
    agent: Agent,
    _fs: BpfFs,
    socks: Vec<RawSocket>,
    _guests: Vec<Netns>,
    dom0: Netns,
    cfg: PathBuf,
}

impl Drop for Bed {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.cfg);
    }
}

impl Bed {
    fn new(tag: &str, attach: &str) -> Bed {
        let dom0 = Netns::new(&format!("{tag}-d0")).expect("dom0");
        let mut guests = Vec::new();
        for (i, (vif, index, mac)) in VIFS.iter().enumerate() {
            let g = Netns::new(&format!("{tag}-g{}", i + 1)).expect("guest");
            let index = index.map(|x| x.to_string());
            let mut args = vec!["ip", "link", "add", vif];
            if let Some(x) = &index {
                args.extend(["index", x.as_str()]);
            }
            args.extend(["type", "veth", "peer", "name", "eth0", "netns", g.name()]);
            dom0.exec_ok(&args).expect("creating the vif");
            dom0.exec_ok(&["ip", "link", "set", vif, "up"])
                .expect("vif up");
            g.exec_ok(&["ip", "link", "set", "eth0", "up"])
                .expect("guest up");
            set_mac(&g, "eth0", *mac).expect("guest MAC");
            // Native XDP redirects into a veth need NAPI on the receiving end.
            set_gro(&g, "eth0", true).expect("GRO");
            guests.push(g);
        }
        let fs = BpfFs::new(dom0.name()).expect("mounting a bpffs");
        let cfg = std::env::temp_dir().join(format!("xennet-{}.toml", dom0.name()));
        let mut text = "[[bridge]]\nname = \"br\"\n".to_string();
        for (vif, _, _) in VIFS {
            let _ = write!(
                text,
                "\n[[bridge.port]]\ninterface = \"{vif}\"\naccess = 10\nattach = \"{attach}\"\n"
            );
        }
        std::fs::write(&cfg, text).expect("writing the config");
        let agent = Agent::start(&dom0, &cfg, &fs.pin_dir()).expect("starting the agent");
        let socks = guests
            .iter()
            .map(|g| RawSocket::open(g, "eth0").expect("guest socket"))
            .collect();
        Bed {
            agent,
            _fs: fs,
            socks,
            _guests: guests,
            dom0,
            cfg,
        }
    }

    /// Guest `from` (index into [`VIFS`]) sends `frame`: what the guests received (marked
    /// frames, at "g1".."g3") and the counter deltas.
    fn send(&self, from: usize, frame: &[u8]) -> (Got, Deltas) {
        let points: Vec<(String, &RawSocket)> = self
            .socks
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("g{}", i + 1), s))
            .collect();
        let points: Vec<(&str, &RawSocket)> =
            points.iter().map(|(n, s)| (n.as_str(), *s)).collect();
        drain(&points);
        let before = self.agent.stats(&self.dom0).expect("stats");
        self.socks[from].send(frame).expect("sending");
        let got = collect_marked(&points);
        (
            got,
            delta(&before, &self.agent.stats(&self.dom0).expect("stats")),
        )
    }
}

/// Frames from, to and between ports beyond the array: flooded, learned, forwarded, counted
/// on the right ports.
fn crossing(tag: &str, attach: &str) {
    let bed = Bed::new(tag, attach);
    let ports = bed.agent.ports().expect("ports");
    for (vif, index, _) in VIFS {
        let p = ports
            .iter()
            .find(|p| p["interface"] == vif)
            .unwrap_or_else(|| panic!("{vif} missing from `ports`: {ports:?}"));
        if let Some(x) = index {
            assert_eq!(p["ifindex"], x, "{vif} has the ifindex the test gave it");
        }
    }
    let mac = |i: usize| VIFS[i].2;
    let len = test_frame_len(0);

    // A broadcast from the far vif: the two others, once each; its source learned there.
    let (got, d) = bed.send(1, &test_frame(BROADCAST, mac(1), &[], 1));
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
        bed.agent.log_text()
    );

    // The ordinary vif to the far one, now known: there only.
    let (got, d) = bed.send(0, &test_frame(mac(1), mac(0), &[], 2));
    assert_eq!(find_marker(&only(&got, "g2")), Some(2));
    assert_eq!(
        d,
        expect(&[
            ("vif1", "rx_packets", 1),
            ("vif1", "rx_bytes", len),
            ("vif1", "forward", 1),
            ("vif1", "learn_new", 1),
            ("vif2", "tx_packets", 1),
            ("vif2", "tx_bytes", len),
        ]),
        "vif1 -> vif2"
    );

    // The far vif back, and the boundary vif (65 536) to the far one: forwarded, learned.
    let (got, d) = bed.send(1, &test_frame(mac(0), mac(1), &[], 3));
    assert_eq!(find_marker(&only(&got, "g1")), Some(3));
    assert_eq!(
        d,
        expect(&[
            ("vif2", "rx_packets", 1),
            ("vif2", "rx_bytes", len),
            ("vif2", "forward", 1),
            ("vif1", "tx_packets", 1),
            ("vif1", "tx_bytes", len),
        ]),
        "vif2 -> vif1"
    );
    let (got, d) = bed.send(2, &test_frame(mac(1), mac(2), &[], 4));
    assert_eq!(find_marker(&only(&got, "g2")), Some(4));
    assert_eq!(
        d,
        expect(&[
            ("vif3", "rx_packets", 1),
            ("vif3", "rx_bytes", len),
            ("vif3", "forward", 1),
            ("vif3", "learn_new", 1),
            ("vif2", "tx_packets", 1),
            ("vif2", "tx_bytes", len),
        ]),
        "vif3 -> vif2"
    );

    // A tagged frame on an access port beyond the array: dropped there under its reason.
    let (got, d) = bed.send(1, &test_frame(mac(0), mac(1), &[(0x8100, 10)], 5));
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
