//! Guards against a hostile guest and a mistaken operator, with real frames and real
//! processes: dom0's MAC cannot be taken by a guest (a static FDB entry on its host port),
//! dom0's own TCP crosses the datapath in every attach mode (its checksums survive), and
//! `port add` refuses interfaces that are not Ethernet.
#![allow(clippy::too_many_lines, reason = "scenario tests")]

use std::{
    collections::BTreeMap,
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    time::{Duration, Instant},
};

use xennet_tests::{
    Netns, RawSocket,
    capture::{arrived, collect_marked, drain},
    counters::{at, delta},
    frame::{BROADCAST, Mac, format_mac, parse_mac, q_tag, test_frame},
    output::assert_ok,
    require_root,
    seedfull::{FullAgent, FullConfig, MGMT_IP, SeedFull},
    topo::{BpfFs, UPSTREAM_MAC},
};

struct World {
    // Sockets first: fields drop in order (sockets, agent, bpffs, namespaces).
    socks: BTreeMap<&'static str, RawSocket>,
    agent: FullAgent,
    _fs: BpfFs,
    sim: SeedFull,
}

impl World {
    fn new(tag: &str, cfg: &FullConfig) -> World {
        let sim = SeedFull::new(tag, &[]).expect("building the simulated dom0");
        let fs = BpfFs::new(sim.dom0.name()).expect("mounting a bpffs");
        let agent = FullAgent::start(&sim.dom0, cfg, &fs.pin_dir()).expect("starting the agent");
        let mut socks = BTreeMap::new();
        for name in ["g1", "g2", "g3", "g4", "up", "mgmt0"] {
            socks.insert(name, sim.socket(name).expect("socket"));
        }
        World {
            socks,
            agent,
            _fs: fs,
            sim,
        }
    }

    /// Send `frame` at capture point `from`; return the marked frames that arrived anywhere.
    fn send_and_collect(&self, from: &str, frame: &[u8]) -> xennet_tests::capture::Got {
        let points: Vec<(&str, &RawSocket)> = self.socks.iter().map(|(n, s)| (*n, s)).collect();
        drain(&points);
        self.socks[from].send(frame).expect("send");
        collect_marked(&points)
    }

    /// dom0's MAC on its host port `mgmt0`, as the kernel has it.
    fn dom0_mac(&self) -> Mac {
        let out = self
            .sim
            .dom0
            .exec_ok(&["cat", "/sys/class/net/mgmt0/address"])
            .expect("reading mgmt0's MAC");
        parse_mac(String::from_utf8_lossy(&out.stdout).trim()).expect("a MAC")
    }

    /// The FDB entries of `mac`, as (VLAN, port, static).
    fn fdb_of(&self, mac: Mac) -> Vec<(u16, String, bool)> {
        let mut v: Vec<_> = self
            .agent
            .fdb(Some("trunk"))
            .expect("fdb show")
            .into_iter()
            .filter(|r| r.mac == format_mac(&mac))
            .map(|r| (r.vlan, r.port, r.is_static))
            .collect();
        v.sort();
        v
    }

    /// Write `text` as the configuration and reload; the reload must succeed.
    fn reload_with(&self, text: &str) {
        self.agent.write_config_text(text).expect("writing config");
        let out = self.agent.reload().expect("reload");
        assert_ok(&out, "reload", &self.agent.log_text());
    }
}

/// A guest spoofing dom0's MAC is dropped (`drop_static_mac`) and takes none of dom0's
/// traffic; the static entry follows the host port's VLANs on reload and goes with it.
#[test]
fn a_guest_cannot_take_dom0s_mac() {
    if !require_root() {
        return;
    }
    let w = World::new("grd-mac", &FullConfig::default());
    let dom0 = w.dom0_mac();

    // g1 (access 4094) claims dom0's MAC: dropped at vif1.0, counted, nothing learned.
    let before = w.agent.stats().expect("stats");
    let got = w.send_and_collect("g1", &test_frame(BROADCAST, dom0, &[], 1));
    arrived(&got, &[], "a frame from g1 with dom0's MAC");
    let d = delta(&before, &w.agent.stats().expect("stats"));
    assert_eq!(at(&d, "vif1.0", "drop_static_mac"), 1, "{d:#?}");
    assert_eq!(
        at(&d, "vif1.0", "learn_new") + at(&d, "vif1.0", "learn_move"),
        0,
        "{d:#?}"
    );

    // Frames for dom0 still reach dom0 only: from the uplink and from another guest.
    let got = w.send_and_collect("up", &test_frame(dom0, UPSTREAM_MAC, &[q_tag(4094)], 2));
    arrived(&got, &[("mgmt0", None)], "upstream → dom0 after the spoof");
    let g2 = parse_mac("00:16:3e:00:00:02").expect("mac");
    let got = w.send_and_collect("g2", &test_frame(dom0, g2, &[], 3));
    arrived(&got, &[("mgmt0", None)], "g2 → dom0 after the spoof");
    // And dom0 reaches the guests.
    let out = w.sim.dom0.ping("10.94.0.2").expect("ping");
    assert_ok(&out, "dom0 → g2 ping after the spoof", &w.agent.log_text());
    assert_eq!(
        w.fdb_of(dom0),
        [(4094, "xnh-trunk".to_string(), true)],
        "dom0's kernel-chosen MAC is static on its host port's VLAN"
    );

    // The host port's VLANs change on reload: the static entries follow.
    let text = FullConfig::default().text(&xennet_tests::topo::Agent::socket_for(&w.sim.dom0));
    let host = "[bridge.host]\ninterface = \"mgmt0\"\naccess = 4094\n";
    assert!(text.contains(host), "{text}");
    let trunked = text.replace(
        host,
        "[bridge.host]\ninterface = \"mgmt0\"\ntrunk = [4093]\nnative_vlan = 4094\n",
    );
    w.reload_with(&trunked);
    assert_eq!(
        w.fdb_of(dom0),
        [
            (4093, "xnh-trunk".to_string(), true),
            (4094, "xnh-trunk".to_string(), true)
        ]
    );
    let before = w.agent.stats().expect("stats");
    let got = w.send_and_collect("g3", &test_frame(BROADCAST, dom0, &[], 4));
    arrived(&got, &[], "a frame from g3 (VLAN 4093) with dom0's MAC");
    let d = delta(&before, &w.agent.stats().expect("stats"));
    assert_eq!(at(&d, "vif3.0", "drop_static_mac"), 1, "{d:#?}");

    // The host port goes: so do its entries.
    let start = trunked.find("[bridge.host]").expect("host table");
    let end = trunked[start..]
        .find("\n\n")
        .map_or(trunked.len(), |i| start + i);
    let without = format!("{}{}", &trunked[..start], &trunked[end..]);
    w.reload_with(&without);
    assert_eq!(w.fdb_of(dom0), [], "no entry of a removed host port");
}

/// Bytes `client` sent to `server_ip:port` over TCP, as the server counted them; an error
/// when the exchange does not complete within a few seconds.
fn tcp_exchange(
    server: &Netns,
    server_ip: &str,
    client: &Netns,
    bytes: usize,
) -> anyhow::Result<usize> {
    let addr: SocketAddr = format!("{server_ip}:5201").parse()?;
    let listener = server.run_in(move || TcpListener::bind(addr))??;
    listener.set_nonblocking(true)?;
    let receiver = std::thread::spawn(move || -> anyhow::Result<usize> {
        let deadline = Instant::now() + Duration::from_secs(8);
        let mut conn = loop {
            match listener.accept() {
                Ok((c, _)) => break c,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    anyhow::ensure!(Instant::now() < deadline, "no connection arrived");
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(e.into()),
            }
        };
        conn.set_nonblocking(false)?;
        conn.set_read_timeout(Some(Duration::from_secs(3)))?;
        let mut got = Vec::new();
        conn.read_to_end(&mut got)?;
        Ok(got.len())
    });
    let sent = client.run_in(move || -> anyhow::Result<()> {
        let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
        c.set_write_timeout(Some(Duration::from_secs(3)))?;
        c.write_all(&vec![0x5a; bytes])?;
        c.shutdown(std::net::Shutdown::Write)?;
        Ok(())
    })?;
    let counted = receiver
        .join()
        .map_err(|_| anyhow::anyhow!("receiver panicked"))?;
    sent?;
    counted
}

/// dom0's TCP (checksums left to offload) reaches a guest and the upstream, with the uplink
/// in XDP and with every port in TC.
fn dom0_tcp(tag: &str, mut cfg: FullConfig) {
    cfg.extra_lines.push(("eth1", "native_vlan = 4094"));
    let w = World::new(tag, &cfg);
    // A real upstream host on VLAN 4094: untagged, as the uplink's native VLAN (the test
    // kernel may have no 802.1Q devices).
    let up = &w.sim.up;
    up.exec_ok(&["ip", "addr", "add", "10.94.0.100/16", "dev", "eth0"])
        .expect("address");
    let offload = w
        .sim
        .dom0
        .exec_ok(&["ethtool", "-k", "mgmt0"])
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    assert!(
        offload.contains("tx-checksumming: on"),
        "the test needs dom0's tx checksum offload on: {offload}"
    );
    let bytes = 4 << 20;
    let g1 = &w.sim.node("g1").expect("g1").ns;
    for (name, ns, ip) in [("g1", g1, "10.94.0.1"), ("upstream", up, "10.94.0.100")] {
        let got = tcp_exchange(ns, ip, &w.sim.dom0, bytes)
            .unwrap_or_else(|e| panic!("dom0 ({MGMT_IP}) → {name} over TCP: {e:#}"));
        assert_eq!(got, bytes, "dom0 → {name}: every byte arrives");
    }
    // And back: a guest's TCP to dom0.
    let got = tcp_exchange(&w.sim.dom0, MGMT_IP, g1, bytes)
        .unwrap_or_else(|e| panic!("g1 → dom0 over TCP: {e:#}"));
    assert_eq!(got, bytes, "g1 → dom0: every byte arrives");
    let ports = w.agent.ports().expect("ports");
    let host = ports
        .iter()
        .find(|p| p["interface"] == "xnh-trunk")
        .expect("host port listed");
    assert_eq!(host["attached"], "tc", "{ports:#?}");
}

#[test]
fn dom0_tcp_crosses_with_the_uplink_in_xdp() {
    if !require_root() {
        return;
    }
    dom0_tcp("grd-tcpx", FullConfig::default());
}

#[test]
fn dom0_tcp_crosses_with_every_port_in_tc() {
    if !require_root() {
        return;
    }
    let mut cfg = FullConfig::default();
    for port in [
        "eth1", "vif1.0", "vif2.0", "vif3.0", "vif4.0", "vif1.1", "vif2.1",
    ] {
        cfg.extra_lines.push((port, "attach = \"tc\""));
    }
    dom0_tcp("grd-tcpt", cfg);
}

/// `port add` of `lo` or of a device that is not Ethernet (a tun) is refused and changes
/// nothing; an exact port of the file naming one fails the reload; a rule never matches one.
#[test]
fn interfaces_that_are_not_ethernet_are_refused() {
    if !require_root() {
        return;
    }
    let w = World::new("grd-eth", &FullConfig::default());
    w.sim
        .dom0
        .exec_ok(&["ip", "tuntap", "add", "dev", "tun0", "mode", "tun"])
        .expect("a tun device");
    w.sim
        .dom0
        .exec_ok(&["ip", "link", "set", "tun0", "up"])
        .expect("tun0 up");
    let socket = xennet_tests::topo::Agent::socket_for(&w.sim.dom0);
    let socket = socket.to_string_lossy();
    let ports = |w: &World| {
        let mut v: Vec<String> = w
            .agent
            .ports()
            .expect("ports")
            .iter()
            .map(|p| p["interface"].as_str().expect("interface").to_owned())
            .collect();
        v.sort();
        v
    };
    let before = ports(&w);
    for (dev, why) in [
        (
            "tun0",
            "interface \"tun0\" is not an Ethernet device (link type NONE = 65534); a port must \
             be an Ethernet interface",
        ),
        (
            "lo",
            "bridge \"trunk\", port \"lo\": `interface` = \"lo\" is the loopback device, not an \
             Ethernet interface; a port must be an Ethernet interface",
        ),
    ] {
        let out = w
            .agent
            .cli(&[
                "port", "add", dev, "--bridge", "trunk", "--access", "4094", "--socket", &socket,
            ])
            .expect("port add");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "port add {dev} must fail: {err}");
        assert!(err.contains(why), "port add {dev}: {err}");
        assert_eq!(ports(&w), before, "port add {dev} changed nothing");
    }

    // A rule matching tun0 skips it; the reload succeeds.
    let text = FullConfig::default().text(&xennet_tests::topo::Agent::socket_for(&w.sim.dom0));
    let internal = "\n[[bridge]]\nname = \"internal\"\n";
    assert!(text.contains(internal), "{text}");
    let rule = text.replace(
        internal,
        &format!("\n[[bridge.port]]\ninterface = \"tun*\"\naccess = 4094\n{internal}"),
    );
    w.reload_with(&rule);
    assert_eq!(ports(&w), before, "the rule took nothing");
    // An exact port naming it fails the reload, naming it, and changes nothing.
    let exact = rule.replace("interface = \"tun*\"", "interface = \"tun0\"");
    w.agent.write_config_text(&exact).expect("writing config");
    let out = w.agent.reload().expect("reload");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("interface \"tun0\" is not an Ethernet device"),
        "{err}"
    );
    assert_eq!(ports(&w), before, "the failed reload changed nothing");
    // dom0 still reaches a guest.
    let out = w.sim.dom0.ping("10.94.0.2").expect("ping");
    assert_ok(&out, "dom0 → g2 ping", &w.agent.log_text());
}
