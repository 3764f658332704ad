//! 50 kill -9's of the agent at random points of a start, a reload, a `port add`/`port del` or
//! an upgrade (a start of another build, `xennet-next`, whose map layout differs), each followed
//! by a normal start (of the embedded build: after a finished upgrade, a downgrade): every port forwards real frames both ways, and nothing is
//! leaked or half done — checked with the kernel's own listings (the programs and links that
//! use the datapath's maps, the pins, `ip link`, tcx) and the state file.
//!
//! The delays come from a seeded generator; the seed is printed (`XENNET_KILL_SEED=N` replays
//! a run). One topology serves every round: the seed's dom0 in the realistic modes (uplink in
//! native XDP, vifs in TC), a host port, and a run-time port `vif9.0` added and removed.

use std::{
    collections::BTreeSet,
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use aya::programs::{SchedClassifier, TcAttachType};
use xennet_agent::ebpf::{NEXT_OBJECT, OBJECT_ENV};
use xennet_tests::{
    Netns, RawSocket,
    capture::wait_marker,
    frame::{Mac, q_tags, test_frame},
    kernel::{pins, users},
    require_root,
    rng::XorShift,
    set_gro, set_mac,
    topo::{Agent, BpfFs, Mode, SeedDom0, agent_bin, agent_command, xdp_attached},
    veth,
    wait::poll,
};

/// Rounds of kill and start.
const ROUNDS: usize = 50;
/// The run-time port's guest.
const G9: Mac = [0x00, 0x16, 0x3e, 0x00, 0x00, 0x09];
/// The upstream router (static on the uplink in the seed configuration).
const UP: Mac = [0x02, 0x00, 0x00, 0x00, 0x00, 0xfe];
/// The host port appended to the seed configuration.
const HOST: &str = "[bridge.host]\ninterface = \"mgmt0\"\npeer = \"xnh-trunk\"\naccess = 4094\n";

/// The configuration: the seed's with a host port; `moved` puts guest 3 on VLAN 4094 (what
/// the reloads toggle).
fn write_config(path: &Path, base: &str, moved: bool) {
    let mut text = base.to_string();
    if moved {
        text = text.replace(
            "access = 4093\nmacs = [\"00:16:3e:00:00:03\"]",
            "access = 4094\nmacs = [\"00:16:3e:00:00:03\"]",
        );
        assert_ne!(
            text, base,
            "the seed configuration changed: vif3.0 not found"
        );
    }
    text.push_str(HOST);
    std::fs::write(path, text).expect("writing the config");
}

/// Whether an xennet TC program runs on `ifname` in `ns`.
fn tc_attached(ns: &Netns, ifname: &str) -> bool {
    let name = ifname.to_string();
    ns.run_in(move || {
        SchedClassifier::query_tcx(&name, TcAttachType::Ingress)
            .is_ok_and(|(_, progs)| progs.iter().any(|p| p.name_as_str() == Some("xennet_tc")))
    })
    .expect("querying tcx")
}

/// dom0's interfaces.
fn links_of(ns: &Netns) -> BTreeSet<String> {
    let o = ns.exec_ok(&["ip", "-o", "link", "show"]).expect("ip link");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect()
}

/// The sockets frames are sent from and expected on.
struct Ends {
    g1: RawSocket,
    g2: RawSocket,
    g3: RawSocket,
    g9: RawSocket,
    up: RawSocket,
}

/// Send one numbered frame from `from` and say whether it reached `to`.
fn crosses(
    from: &RawSocket,
    to: &RawSocket,
    dst: Mac,
    src: Mac,
    vlan: Option<u16>,
    id: u32,
) -> bool {
    from.send(&test_frame(dst, src, &q_tags(vlan), id))
        .expect("send");
    wait_marker(to, id).is_some()
}

/// One frame to send: what, from, to, destination and source MAC, VLAN tag.
type Pair<'a> = (&'a str, &'a RawSocket, &'a RawSocket, Mac, Mac, Option<u16>);

/// Every port forwards, both ways: guests 1 ↔ 2, guest 1 ↔ upstream (tagged 4094), guest 3 ↔
/// upstream on its VLAN, and guest 9 ↔ guest 1 when `vif9.0` is a port. Returns the pairs
/// that failed.
fn forwarding(sim: &SeedDom0, e: &Ends, g3_vlan: u16, g9: bool, id: &mut u32) -> Vec<String> {
    let g1 = sim.guests[0].mac;
    let g2 = sim.guests[1].mac;
    let g3 = sim.guests[2].mac;
    let mut pairs: Vec<Pair<'_>> = vec![
        ("g1 → g2", &e.g1, &e.g2, g2, g1, None),
        ("g2 → g1", &e.g2, &e.g1, g1, g2, None),
        ("g1 → up", &e.g1, &e.up, UP, g1, None),
        ("up → g1", &e.up, &e.g1, g1, UP, Some(4094)),
        ("g3 → up", &e.g3, &e.up, UP, g3, None),
        ("up → g3", &e.up, &e.g3, g3, UP, Some(g3_vlan)),
    ];
    if g9 {
        pairs.push(("g9 → g1", &e.g9, &e.g1, g1, G9, None));
        pairs.push(("g1 → g9", &e.g1, &e.g9, G9, g1, None));
    }
    let mut failed = Vec::new();
    for (what, from, to, dst, src, vlan) in pairs {
        *id += 1;
        if !crosses(from, to, dst, src, vlan, *id) {
            failed.push(what.to_string());
        }
    }
    failed
}

/// What one clean datapath holds, recorded after the first start.
struct Baseline {
    pins: BTreeSet<String>,
    progs: Vec<String>,
    links: usize,
    ifaces: BTreeSet<String>,
}

/// The run-time ports the state file of `pin_dir` records.
fn recorded_runtime(pin_dir: &Path) -> Vec<String> {
    let stem = pin_dir
        .to_string_lossy()
        .replace('%', "%25")
        .replace('/', "%2F");
    let text =
        std::fs::read_to_string(format!("/run/xennet/state/{stem}.json")).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    v["runtime"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// After a normal start: the ports, their forwarding, and nothing leaked or half done.
#[expect(clippy::too_many_arguments, reason = "one round's whole context")]
fn check_round(
    round: usize,
    what: &str,
    sim: &SeedDom0,
    agent: &Agent,
    ends: &Ends,
    base: &Baseline,
    moved: bool,
    id: &mut u32,
) -> bool {
    let pin_dir = agent.pin_dir();
    let ports: Vec<String> = agent
        .ports()
        .expect("ports")
        .iter()
        .filter_map(|p| p["interface"].as_str().map(str::to_string))
        .collect();
    let g9 = ports.iter().any(|p| p == "vif9.0");
    for p in ["eth1", "vif1.0", "vif2.0", "vif3.0", "xnh-trunk"] {
        assert!(
            ports.iter().any(|q| q == p),
            "round {round} ({what}): {p} not a port: {ports:?}"
        );
    }
    let failed = forwarding(sim, ends, if moved { 4094 } else { 4093 }, g9, id);
    if !failed.is_empty() {
        // What the datapath counted, and what the agent said: enough to tell why.
        let counters = agent.counters().unwrap_or_default();
        let nonzero: Vec<String> = counters
            .iter()
            .flat_map(|(port, c)| {
                c.iter()
                    .filter(|(_, v)| **v != 0)
                    .map(move |(k, v)| format!("{port} {k}={v}"))
            })
            .collect();
        // A second try tells a lost frame from a port that does not forward.
        let again = forwarding(sim, ends, if moved { 4094 } else { 4093 }, g9, id);
        panic!(
            "round {round} ({what}): no forwarding {failed:?} (a second try: {again:?} \
             failed)\ncounters: {nonzero:?}\nagent log:\n{}",
            agent.log_text()
        );
    }
    // Pins: the clean datapath's, plus vif9.0's TC link when it is a port.
    let idx9 = xennet_tests::ifindex(&sim.dom0, "vif9.0").expect("ifindex");
    let mut want = base.pins.clone();
    if g9 {
        want.insert(format!("link_tc_{idx9}"));
    }
    let have = pins(pin_dir).expect("pins");
    assert_eq!(have, want, "round {round} ({what}): pins");
    // Programs a devmap entry or link held are freed after an RCU grace period: wait a little.
    let want_users = (base.progs.clone(), base.links + usize::from(g9));
    let ((progs, links), _) = poll(
        Duration::from_secs(3),
        Duration::from_millis(50),
        || users(pin_dir).expect("kernel listing"),
        |u| *u == want_users,
    );
    assert_eq!(
        progs, base.progs,
        "round {round} ({what}): programs using the maps"
    );
    assert_eq!(
        links,
        base.links + usize::from(g9),
        "round {round} ({what}): links"
    );
    assert_eq!(
        links_of(&sim.dom0),
        base.ifaces,
        "round {round} ({what}): dom0's interfaces"
    );
    // vif9.0: a port in full (TC link, state file) or not at all.
    assert_eq!(
        tc_attached(&sim.dom0, "vif9.0"),
        g9,
        "round {round} ({what}): vif9.0 half attached"
    );
    assert!(
        !xdp_attached(&sim.dom0, "vif9.0").expect("ip link"),
        "round {round}: XDP on vif9.0"
    );
    assert_eq!(
        recorded_runtime(pin_dir).contains(&"vif9.0".to_string()),
        g9,
        "round {round} ({what}): the state file and the ports disagree on vif9.0"
    );
    g9
}

#[test]
#[expect(clippy::too_many_lines, reason = "one story, start to finish")]
fn fifty_kills_leave_a_datapath_that_forwards_and_leaks_nothing() {
    if !require_root() {
        return;
    }
    let seed: u64 = std::env::var("XENNET_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_secs() ^ u64::from(d.subsec_nanos()) << 20 | 1)
        });
    println!("kill test seed {seed} (replay: XENNET_KILL_SEED={seed})");
    let mut rng = XorShift(seed);
    let sim = SeedDom0::new("klr").expect("building the simulated dom0");
    let fs = BpfFs::new(sim.dom0.name()).expect("mounting a bpffs");
    let cfg = Mode::VifsTc.config(sim.dom0.name(), "").expect("config");
    let base_text = std::fs::read_to_string(&cfg).expect("config");
    let mut moved = false;
    write_config(&cfg, &base_text, moved);
    let pin_dir = fs.pin_dir();
    let g9ns = Netns::new("klr-g9").expect("guest 9");
    veth(&sim.dom0, "vif9.0", &g9ns, "eth0").expect("vif9.0");
    set_mac(&g9ns, "eth0", G9).expect("mac");
    set_gro(&g9ns, "eth0", true).expect("gro");
    let ends = Ends {
        g1: sim.guest_socket("vif1.0").expect("socket"),
        g2: sim.guest_socket("vif2.0").expect("socket"),
        g3: sim.guest_socket("vif3.0").expect("socket"),
        g9: RawSocket::open(&g9ns, "eth0").expect("socket"),
        up: sim.upstream_socket().expect("socket"),
    };
    let mut id = 0x4b00_0000u32;
    let t0 = Instant::now();
    let mut agent = Agent::start(&sim.dom0, &cfg, &pin_dir).expect("first start");
    let start_time = t0.elapsed();
    let (progs, links) = users(&pin_dir).expect("kernel listing");
    let base = Baseline {
        pins: pins(&pin_dir).expect("pins"),
        progs,
        links,
        ifaces: links_of(&sim.dom0),
    };
    check_round(0, "first start", &sim, &agent, &ends, &base, moved, &mut id);
    let bin = agent_bin().expect("agent binary");
    let (cfg_s, pins_s) = (
        cfg.to_string_lossy().into_owned(),
        pin_dir.to_string_lossy().into_owned(),
    );
    let sock_s = Agent::socket_for(&sim.dom0).to_string_lossy().into_owned();
    let window = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(1000).max(1);
    let start_ms = window(start_time) * 5 / 4;
    let mut g9 = false;
    let mut kinds = [0usize; 4];
    let next = std::env::temp_dir().join("xennet-klr-next.o");
    std::fs::write(&next, NEXT_OBJECT).expect("writing the next build's object");
    for round in 1..=ROUNDS {
        let kind = rng.below(4);
        kinds[kind] += 1;
        let what = match kind {
            0 | 3 => {
                // Kill a start (kind 3: of the next build, an upgrade) at a random point; the
                // running agent first, killed while idle.
                agent.kill9().expect("kill -9");
                let delay = rng.next_u64() % (start_ms * if kind == 3 { 2 } else { 1 });
                let mut cmd = agent_command(
                    &bin,
                    &sim.dom0,
                    &[
                        "run",
                        "--config",
                        &cfg_s,
                        "--pin-dir",
                        &pins_s,
                        "--socket",
                        &sock_s,
                    ],
                );
                if kind == 3 {
                    cmd.env(OBJECT_ENV, &next);
                }
                let mut child = cmd
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("starting the agent");
                std::thread::sleep(Duration::from_millis(delay));
                let _ = child.kill();
                let _ = child.wait();
                if kind == 3 {
                    format!("upgrade killed after {delay} ms")
                } else {
                    format!("start killed after {delay} ms")
                }
            }
            1 => {
                moved = !moved;
                write_config(&cfg, &base_text, moved);
                let delay = rng.next_u64() % 400;
                agent.signal(libc::SIGHUP).expect("SIGHUP");
                std::thread::sleep(Duration::from_millis(delay));
                agent.kill9().expect("kill -9");
                format!("reload killed after {delay} ms")
            }
            _ => {
                let delay = rng.next_u64() % 400;
                let args: Vec<&str> = if g9 {
                    vec!["port", "del", "vif9.0", "--socket", &sock_s]
                } else {
                    vec![
                        "port", "add", "vif9.0", "--bridge", "trunk", "--access", "4094",
                        "--attach", "tc", "--socket", &sock_s,
                    ]
                };
                let mut cli = agent_command(&bin, &sim.dom0, &args)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("port add/del");
                std::thread::sleep(Duration::from_millis(delay));
                agent.kill9().expect("kill -9");
                let _ = cli.wait();
                format!(
                    "port {} killed after {delay} ms",
                    if g9 { "del" } else { "add" }
                )
            }
        };
        agent = Agent::start(&sim.dom0, &cfg, &pin_dir)
            .unwrap_or_else(|e| panic!("round {round} ({what}), seed {seed}: restart: {e:#}"));
        g9 = check_round(round, &what, &sim, &agent, &ends, &base, moved, &mut id);
    }
    println!(
        "{ROUNDS} kills (starts {}, reloads {}, port add/del {}, upgrades {}) in {:.1} s",
        kinds[0],
        kinds[1],
        kinds[2],
        kinds[3],
        t0.elapsed().as_secs_f64()
    );
    // `down` leaves nothing: no program on any port, no pins, no host port.
    assert!(agent.stop().expect("stop"), "agent exits 0");
    for p in ["eth1", "vif1.0", "vif2.0", "vif3.0", "vif9.0"] {
        assert!(
            !tc_attached(&sim.dom0, p),
            "{p}: TC program left after down"
        );
        assert!(
            !xdp_attached(&sim.dom0, p).expect("ip link"),
            "{p}: XDP left after down"
        );
    }
    assert!(!pin_dir.exists(), "pin directory left after down");
    let left = links_of(&sim.dom0);
    assert!(
        !left.contains("mgmt0") && !left.contains("xnh-trunk"),
        "host port left after down: {left:?}"
    );
    let _ = std::fs::remove_file(&cfg);
    let _ = std::fs::remove_file(&next);
}
