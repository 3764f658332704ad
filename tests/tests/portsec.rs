//! Port security with real frames, in XDP and in TC mode (issue 13): the seed's dom0 with
//! guests 1 and 2 secured (`ips`, so on by default), guest 3 not, and dom0's host port
//! `mgmt0` on VLAN 4094. A legitimate guest's own stack works — ARP, IPv4, IPv6 with its
//! link-local address (DAD, its MLD report, ND), a DHCP client's discover — with no drop
//! counted; every spoof kind from guest 1 arrives nowhere and is counted under its reason;
//! guest 1 cannot get another MAC into the FDB nor another guest's address into dom0's
//! neighbour table.

use std::time::Duration;

use xennet_common::fwd::fixtures::portsec::{
    arp, eui64, icmp6, ipv4, ipv6, mcast6, nd_body, udp, v6,
};
use xennet_tests::{
    capture::nowhere,
    counters::{Deltas, delta},
    frame::{Mac, marker},
    require_root,
    seedworld::SeedWorld,
    topo::{SeedDom0, UPSTREAM_MAC},
    wait::poll,
};

const G1_V6: &str = "fd94::1";
const G2_V6: &str = "fd94::2";

fn config(tc: bool) -> String {
    let attach = if tc { "attach = \"tc\"\n" } else { "" };
    let port = |iface: &str, body: &str| {
        format!("[[bridge.port]]\ninterface = \"{iface}\"\n{body}{attach}\n")
    };
    let mut s = String::from("[[bridge]]\nname = \"sec\"\n\n");
    s += &port(
        "eth1",
        "trunk = [4093, 4094]\nmacs = [\"02:00:00:00:00:fe@4094\", \"02:00:00:00:00:fe@4093\"]\n",
    );
    s += &port(
        "vif1.0",
        &format!(
            "access = 4094\nmacs = [\"00:16:3e:00:00:01\"]\nips = [\"10.94.0.1\", \"{G1_V6}\"]\n"
        ),
    );
    s += &port(
        "vif2.0",
        &format!(
            "access = 4094\nmacs = [\"00:16:3e:00:00:02\"]\nips = [\"10.94.0.2\", \"{G2_V6}\"]\n"
        ),
    );
    s += &port("vif3.0", "access = 4093\nmacs = [\"00:16:3e:00:00:03\"]\n");
    s += "[bridge.host]\ninterface = \"mgmt0\"\naccess = 4094\naddresses = [\"10.94.0.254/16\", \"fd94::fe/64\"]\n";
    s
}

/// The seed dom0 with guests 1 and 2 secured, IPv6 on, its agent in XDP or TC mode.
fn world(tag: &str, tc: bool) -> SeedWorld {
    let sim = SeedDom0::new(tag).expect("building the simulated dom0");
    // The test namespaces start without IPv6; this test needs it in dom0 (mgmt0, created
    // by the agent) and in the guests.
    let enable = |ns: &xennet_tests::Netns, confs: &[&str]| {
        for c in confs {
            ns.exec_ok(&[
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{c}.disable_ipv6=0"),
            ])
            .expect("enabling IPv6");
        }
    };
    enable(&sim.dom0, &["all", "default"]);
    for g in &sim.guests {
        enable(&g.ns, &["all", "default", "eth0"]);
    }
    let w = SeedWorld::start(sim, &config(tc));
    let ports = w.agent.ports().expect("ports");
    let sec = |name: &str| {
        ports
            .iter()
            .find(|p| p["interface"] == name)
            .map(|p| p["security"].clone())
            .expect("port listed")
    };
    assert_eq!(sec("vif1.0")["enabled"], true, "ports --json: {ports:?}");
    assert_eq!(
        sec("vif1.0")["ips"],
        serde_json::json!(["10.94.0.1/32", "fd94::1/128"])
    );
    assert_eq!(sec("vif3.0")["enabled"], false);
    assert_eq!(sec("eth1")["enabled"], false);
    w
}

/// dom0's neighbour entry for `ip` on `mgmt0` (`ip neigh show`), e.g. `… lladdr … REACHABLE`.
fn neigh(w: &SeedWorld, ip: &str) -> String {
    let out = w
        .sim
        .dom0
        .exec(&["ip", "neigh", "show", ip, "dev", "mgmt0"])
        .expect("ip neigh");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The drop counters of `port` in `d`.
fn drops<'a>(d: &'a Deltas, port: &str) -> Vec<(&'a str, u64)> {
    d.iter()
        .filter(|((p, c), _)| p == port && c.starts_with("drop_"))
        .map(|((_, c), v)| (c.as_str(), *v))
        .collect()
}

fn eth(dst: Mac, src: Mac, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    xennet_common::fwd::fixtures::lab::build_eth(dst, src, &[], ethertype, payload)
}

/// A UDP datagram's bytes with a marker as payload.
fn udp_marked(sport: u16, dport: u16, id: u32) -> Vec<u8> {
    let mut u = udp(sport, dport);
    u.truncate(8);
    let m = marker(id);
    let len = u16::try_from(8 + m.len()).expect("short");
    u[4..6].copy_from_slice(&len.to_be_bytes());
    u.extend_from_slice(&m);
    u
}

fn ip4(s: &str) -> [u8; 4] {
    s.parse::<std::net::Ipv4Addr>().expect("IPv4").octets()
}

fn ip6(s: &str) -> [u8; 16] {
    s.parse::<std::net::Ipv6Addr>().expect("IPv6").octets()
}

/// Guest `i`'s stack: an IPv6 address, and wait until DAD is done (no `tentative`).
fn add_v6(w: &SeedWorld, i: usize, addr: &str) {
    let ns = &w.sim.guests[i].ns;
    ns.exec_ok(&[
        "ip",
        "-6",
        "addr",
        "add",
        &format!("{addr}/64"),
        "dev",
        "eth0",
    ])
    .expect("adding an IPv6 address");
    let (out, _) = poll(
        Duration::from_secs(10),
        Duration::from_millis(100),
        || {
            let o = ns
                .exec(&["ip", "-6", "addr", "show", "dev", "eth0"])
                .expect("ip addr");
            String::from_utf8_lossy(&o.stdout).into_owned()
        },
        |s| s.contains(addr) && !s.contains("tentative"),
    );
    assert!(
        !out.contains("tentative") && !out.contains("dadfailed"),
        "DAD of {addr}: {out}"
    );
}

/// Every spoof kind guest 1 may try: (what, frame, the drop reason that counts it).
#[expect(clippy::too_many_lines, reason = "test data: one spoof per entry")]
fn spoofs(w: &SeedWorld) -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let (g1, g2) = (w.mac(0), w.mac(1));
    let me = ip4("10.94.0.1");
    let other = ip4("10.94.0.2");
    let dom0 = ip4("10.94.0.254");
    let ll1 = eui64(g1);
    let all_nodes = v6(0xff02_0000, 0, 0, 1);
    vec![
        (
            "guest 2's MAC",
            eth(
                UPSTREAM_MAC,
                g2,
                0x0800,
                &ipv4(other, dom0, 17, 0, false, &udp_marked(1, 2, 10)),
            ),
            "drop_spoof_mac",
        ),
        (
            "a made-up MAC",
            eth(
                [0xff; 6],
                [0x02, 0, 0, 0, 0x77, 0x77],
                0x0800,
                &ipv4(me, dom0, 17, 0, false, &udp_marked(1, 2, 11)),
            ),
            "drop_spoof_mac",
        ),
        (
            "guest 2's IPv4 address",
            eth(
                [0xff; 6],
                g1,
                0x0800,
                &ipv4(other, dom0, 17, 0, false, &udp_marked(1, 2, 12)),
            ),
            "drop_spoof_ip4",
        ),
        (
            "0.0.0.0, not DHCP",
            eth(
                [0xff; 6],
                g1,
                0x0800,
                &ipv4([0; 4], dom0, 17, 0, false, &udp_marked(1, 2, 13)),
            ),
            "drop_spoof_ip4",
        ),
        (
            "a DHCP server's offer",
            eth(
                [0xff; 6],
                g1,
                0x0800,
                &ipv4(me, [255; 4], 17, 0, false, &udp_marked(67, 68, 14)),
            ),
            "drop_dhcp_server",
        ),
        (
            "ARP: sender MAC not the frame's",
            eth(
                [0xff; 6],
                g1,
                0x0806,
                &[arp(2, g2, me, [0; 6], dom0), marker(15)].concat(),
            ),
            "drop_spoof_arp",
        ),
        (
            "ARP: guest 2's address for guest 1's MAC (poisoning)",
            eth(
                [0xff; 6],
                g1,
                0x0806,
                &[arp(2, g1, other, [0xff; 6], other), marker(16)].concat(),
            ),
            "drop_spoof_arp",
        ),
        (
            "IPv6 from guest 2's address",
            eth(
                [0xff; 6],
                g1,
                0x86dd,
                &ipv6(ip6(G2_V6), ip6("fd94::fe"), 17, &udp_marked(1, 2, 17)),
            ),
            "drop_spoof_ip6",
        ),
        (
            "NA for guest 2's address (override)",
            eth(
                mcast6(all_nodes),
                g1,
                0x86dd,
                &ipv6(
                    ip6(G1_V6),
                    all_nodes,
                    58,
                    &[icmp6(136, &nd_body(ip6(G2_V6))), marker(18)].concat(),
                ),
            ),
            "drop_spoof_nd",
        ),
        (
            "router advertisement",
            eth(
                mcast6(all_nodes),
                g1,
                0x86dd,
                &ipv6(
                    ll1,
                    all_nodes,
                    58,
                    &[icmp6(134, &[0; 12]), marker(19)].concat(),
                ),
            ),
            "drop_router_adv",
        ),
        (
            "DHCPv6 server",
            eth(
                [0x33, 0x33, 0, 1, 0, 2],
                g1,
                0x86dd,
                &ipv6(
                    ll1,
                    v6(0xff02_0000, 0, 0, 0x0001_0002),
                    17,
                    &udp_marked(547, 546, 20),
                ),
            ),
            "drop_dhcp_server",
        ),
        (
            "another ethertype",
            eth([0xff; 6], g1, 0x88b5, &marker(21)),
            "drop_ethertype",
        ),
    ]
}

fn legitimate_then_spoofs(tag: &str, tc: bool) {
    let w = world(tag, tc);
    let (g1, g2) = (w.mac(0), w.mac(1));
    let ping = |i: usize, ip: &str| {
        let o = w.sim.guests[i].ns.ping(ip).expect("ping");
        assert!(o.status.success(), "guest {} ping {ip}: {o:?}", i + 1);
    };

    // Legitimate: the guests' own stacks. ARP and IPv4 to dom0 and to each other, IPv6 with
    // DAD (from ::, with the MLD report), ND and link-local addresses; no drop counted.
    let before = w.stats();
    add_v6(&w, 0, G1_V6);
    add_v6(&w, 1, G2_V6);
    ping(0, "10.94.0.254");
    ping(1, "10.94.0.254");
    ping(0, "10.94.0.2");
    ping(0, "fd94::fe");
    ping(1, "fd94::fe");
    ping(0, G2_V6);
    let ll = |m: Mac| std::net::Ipv6Addr::from(eui64(m)).to_string();
    ping(0, &format!("{}%eth0", ll(g2)));
    let d = delta(&before, &w.stats());
    for p in ["vif1.0", "vif2.0"] {
        assert_eq!(drops(&d, p), [], "{p}: legitimate traffic dropped: {d:?}");
    }
    assert!(
        neigh(&w, "10.94.0.1").contains("00:16:3e:00:00:01"),
        "dom0 learned guest 1 by ARP: {}",
        neigh(&w, "10.94.0.1")
    );
    assert!(neigh(&w, "10.94.0.2").contains("00:16:3e:00:00:02"));
    assert!(
        neigh(&w, G2_V6).contains("00:16:3e:00:00:02"),
        "{}",
        neigh(&w, G2_V6)
    );

    // A DHCP client's discover (0.0.0.0 → 255.255.255.255, UDP 68 → 67) floods the VLAN.
    let discover = eth(
        [0xff; 6],
        g1,
        0x0800,
        &ipv4([0; 4], [255; 4], 17, 0, false, &udp_marked(68, 67, 1)),
    );
    let (got, d) = w.send(&w.g[0], &[discover]);
    let at: Vec<(&str, usize)> = got
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.as_str(), v.len()))
        .collect();
    assert_eq!(at, [("g2", 1), ("up", 1)], "DHCP discover: {got:?}");
    assert_eq!(drops(&d, "vif1.0"), [], "{d:?}");

    // Every spoof kind from guest 1: nowhere, each under its reason.
    for (what, frame, reason) in &spoofs(&w) {
        let (got, d) = w.send(&w.g[0], std::slice::from_ref(frame));
        nowhere(&got);
        assert_eq!(drops(&d, "vif1.0"), [(*reason, 1)], "{what}: {d:?}");
    }

    // Nothing of it reached the FDB nor dom0's neighbour table.
    let fdb = w.agent.fdb(Some("sec")).expect("fdb show");
    let on_vif1: Vec<String> = fdb
        .iter()
        .filter(|r| r.port == "vif1.0")
        .map(|r| format!("{} static={}", r.mac, r.is_static))
        .collect();
    assert_eq!(on_vif1, ["00:16:3e:00:00:01 static=true"], "FDB: {fdb:?}");
    assert!(
        neigh(&w, "10.94.0.2").contains("00:16:3e:00:00:02"),
        "dom0's entry for guest 2 poisoned: {}",
        neigh(&w, "10.94.0.2")
    );
    assert!(
        neigh(&w, G2_V6).contains("00:16:3e:00:00:02"),
        "dom0's IPv6 entry for guest 2 poisoned: {}",
        neigh(&w, G2_V6)
    );
    // And guest 1 still works.
    ping(0, "10.94.0.254");
}

#[test]
fn port_security_with_real_frames_xdp() {
    if require_root() {
        legitimate_then_spoofs("psx", false);
    }
}

#[test]
fn port_security_with_real_frames_tc() {
    if require_root() {
        legitimate_then_spoofs("pst", true);
    }
}
