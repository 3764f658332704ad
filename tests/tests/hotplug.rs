//! Hot-plug: vifs that appear and vanish while the agent runs, matched by pattern rules
//! (`interface = "vif7.*"`) or added through the control socket (`port add` / `port del`),
//! and churn at scale. Every step checks real frames (exact tags), `ports`, `fdb show`,
//! `stats`, and the pinned maps themselves: a vanished vif must leave no trace anywhere.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    clippy::too_many_lines,
    reason = "small indices and counts; long scenario tests"
)]

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Output,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant, SystemTime},
};

use aya::maps::{DevMapHash, HashMap, Map, MapData};
use xennet_common::maps::{
    FdbKey, FdbVal, MAP_FDB, MAP_FLOOD, MAP_MEMBERS, MAP_PORTS, MAP_TX, MEMBER_COUNT, MemberKey,
    PortConf,
};
use xennet_tests::{
    Netns, RawSocket,
    capture::{QUIET, collect_marked, drain},
    fdb::{FdbEntry, fdb_entry},
    frame::{BROADCAST, Mac, find_marker, format_mac, parse_eth, q_tag, test_frame},
    ifindex,
    output::assert_ok,
    require_root,
    rng::XorShift,
    set_gro, set_mac,
    topo::{Agent, BpfFs, UPSTREAM_MAC, dom0_and_upstream},
    veth,
    wait::poll,
};

/// The tests of this file measure attach times: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// How long a handful of vifs may take to be attached or detached.
const HOTPLUG_BOUND: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------
// The simulated dom0 and its agent
// ---------------------------------------------------------------------------

/// dom0 with an uplink `eth1` to an upstream switch (`eth0`, MAC [`UPSTREAM_MAC`], GRO on),
/// a private bpffs and a running agent on a config of one bridge `trunk`:
/// `eth1` trunk 4093/4094 (upstream static on both) followed by `rule`.
/// Fields drop in order: agent, bpffs, namespaces.
struct Sim {
    agent: Agent,
    fs: BpfFs,
    up: Netns,
    dom0: Netns,
}

impl Sim {
    fn new(tag: &str, rule: &str) -> Sim {
        let (dom0, up) = dom0_and_upstream(tag, Some(UPSTREAM_MAC)).expect("dom0 and the upstream");
        let fs = BpfFs::new(dom0.name()).expect("mounting a bpffs");
        let up_mac = format_mac(&UPSTREAM_MAC);
        let text = format!(
            "[[bridge]]\nname = \"trunk\"\n\n\
             [[bridge.port]]\ninterface = \"eth1\"\ntrunk = [4093, 4094]\n\
             macs = [\"{up_mac}@4094\", \"{up_mac}@4093\"]\n\n{rule}"
        );
        let cfg = std::env::temp_dir().join(format!("xennet-{}.toml", dom0.name()));
        std::fs::write(&cfg, text).expect("writing the config");
        let agent = Agent::start(&dom0, &cfg, &fs.pin_dir());
        let _ = std::fs::remove_file(&cfg);
        let agent = agent.expect("starting the agent");
        Sim {
            agent,
            fs,
            up,
            dom0,
        }
    }

    fn pin_dir(&self) -> PathBuf {
        self.fs.pin_dir()
    }

    fn log(&self) -> String {
        self.agent.log_text()
    }

    /// `xennet-agent ARGS --socket S`, whatever its exit status.
    fn ctl(&self, args: &[&str]) -> Output {
        self.agent.ctl(args).expect("running xennet-agent")
    }

    fn ports(&self) -> Vec<PortRow> {
        self.agent
            .ports()
            .unwrap_or_else(|e| panic!("ports: {e:#}"))
            .iter()
            .map(|p| PortRow {
                interface: p["interface"].as_str().expect("interface").to_string(),
                bridge: p["bridge"].as_str().expect("bridge").to_string(),
                ifindex: p["ifindex"]
                    .as_u64()
                    .and_then(|i| u32::try_from(i).ok())
                    .expect("ifindex"),
                attached: p["attached"].as_str().expect("attached").to_string(),
                vlans: p["vlans"].as_str().expect("vlans").to_string(),
            })
            .collect()
    }

    fn port_names(&self) -> BTreeSet<String> {
        self.ports().into_iter().map(|p| p.interface).collect()
    }

    /// `fdb show --json` as (MAC, VLAN, port, static) rows.
    fn fdb(&self) -> BTreeSet<FdbEntry> {
        self.agent
            .fdb(None)
            .unwrap_or_else(|e| panic!("fdb show: {e:#}"))
            .iter()
            .map(|r| {
                assert_eq!(r.bridge, "trunk", "entry of an unknown bridge: {r:?}");
                r.entry()
            })
            .collect()
    }

    /// `stats --json` as (interface, ifindex) rows.
    fn stats_ports(&self) -> BTreeSet<(String, u32)> {
        let pins = self.pin_dir().to_string_lossy().into_owned();
        let out = self
            .agent
            .cli(&["stats", "--json", "--pin-dir", &pins])
            .expect("running xennet-agent stats");
        assert!(
            out.status.success(),
            "stats failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stats JSON");
        v.as_array()
            .expect("stats JSON is an array")
            .iter()
            .map(|p| {
                (
                    p["interface"].as_str().expect("interface").to_string(),
                    p["ifindex"]
                        .as_u64()
                        .and_then(|i| u32::try_from(i).ok())
                        .expect("ifindex"),
                )
            })
            .collect()
    }

    /// The agent's pid: the only process in dom0 (nsenter execs the agent).
    fn agent_pid(&self) -> u32 {
        let out = std::process::Command::new("ip")
            .args(["netns", "pids", self.dom0.name()])
            .output()
            .expect("ip netns pids");
        let pids: Vec<u32> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        assert_eq!(pids.len(), 1, "processes in dom0: {pids:?}");
        let comm = std::fs::read_to_string(format!("/proc/{}/comm", pids[0])).unwrap_or_default();
        assert_eq!(comm.trim(), "xennet-agent", "the process in dom0");
        pids[0]
    }

    /// The interfaces of dom0.
    fn links(&self) -> BTreeSet<String> {
        link_names(&self.dom0)
    }

    /// Wait until `ports` lists exactly `eth1` and `want` (names), each attached `attach`
    /// (`want` ports only); returns the time it took.
    fn wait_ports(&self, want: &BTreeSet<String>, attach: &str, bound: Duration) -> Duration {
        let mut expected = want.clone();
        expected.insert("eth1".to_string());
        let names = |ports: &[PortRow]| -> BTreeSet<String> {
            ports.iter().map(|p| p.interface.clone()).collect()
        };
        let as_wanted = |ports: &Vec<PortRow>| {
            names(ports) == expected
                && ports
                    .iter()
                    .filter(|p| want.contains(&p.interface))
                    .all(|p| p.attached == attach)
        };
        let (ports, took) = poll(bound, Duration::from_millis(50), || self.ports(), as_wanted);
        if !as_wanted(&ports) {
            let names = names(&ports);
            let missing: Vec<&String> = expected.difference(&names).take(10).collect();
            let extra: Vec<&String> = names.difference(&expected).take(10).collect();
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            panic!(
                "after {bound:?}: `ports` has {} ports, want {}; missing (first 10) \
                 {missing:?}, extra (first 10) {extra:?}\nagent log (last 40 lines, newest \
                 first):\n{}",
                names.len(),
                expected.len(),
                tail.join("\n")
            );
        }
        took
    }
}

/// One row of `ports --json`.
#[derive(Clone, Debug)]
struct PortRow {
    interface: String,
    bridge: String,
    ifindex: u32,
    attached: String,
    vlans: String,
}

/// The upstream's two static entries, all that may remain when no vif is attached.
fn upstream_statics() -> BTreeSet<FdbEntry> {
    [
        fdb_entry(UPSTREAM_MAC, 4093, "eth1", true),
        fdb_entry(UPSTREAM_MAC, 4094, "eth1", true),
    ]
    .into_iter()
    .collect()
}

/// The interface names in `ns` (`ip -o link show`).
fn link_names(ns: &Netns) -> BTreeSet<String> {
    let out = ns.exec_ok(&["ip", "-o", "link", "show"]).expect("ip link");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect()
}

/// `VmRSS` of `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Run `ip -batch` on `lines` in `ns`.
fn ip_batch(ns: &Netns, lines: &[String]) {
    let path =
        std::env::temp_dir().join(format!("xennet-batch-{}-{}", ns.name(), std::process::id()));
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(&path, text).expect("writing the batch");
    let out = ns.exec(&["ip", "-batch", &path.to_string_lossy()]);
    let _ = std::fs::remove_file(&path);
    let out = out.expect("ip -batch");
    assert!(
        out.status.success(),
        "ip -batch in {} failed: {}",
        ns.name(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn assert_failed(out: &Output, what: &str, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "{what}: succeeded, must fail; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr.contains(needle),
        "{what}: stderr does not say {needle:?}: {stderr}"
    );
    eprintln!(
        "{what}: exit {:?}, stderr: {}",
        out.status.code(),
        stderr.trim()
    );
}

// ---------------------------------------------------------------------------
// The pinned maps
// ---------------------------------------------------------------------------

/// The contents of the agent's pinned maps, read through the pins as any other program
/// would.
#[derive(Debug)]
struct Pinned {
    ports: BTreeMap<u32, PortConf>,
    tx: BTreeMap<u32, u32>,
    flood: BTreeMap<u32, u32>,
    members: BTreeMap<MemberKey, u32>,
    fdb: Vec<(FdbKey, FdbVal)>,
}

fn open_pinned(pin_dir: &Path, name: &str) -> Map {
    let path = pin_dir.join(name);
    let data = MapData::from_pin(&path)
        .unwrap_or_else(|e| panic!("opening the pinned map {}: {e}", path.display()));
    Map::from_map_data(data).unwrap_or_else(|e| panic!("map {name}: {e}"))
}

impl Pinned {
    fn read(pin_dir: &Path) -> Pinned {
        let ports: HashMap<MapData, u32, PortConf> =
            HashMap::try_from(open_pinned(pin_dir, MAP_PORTS)).expect("XN_PORTS type");
        let tx: DevMapHash<MapData> =
            DevMapHash::try_from(open_pinned(pin_dir, MAP_TX)).expect("XN_TX type");
        let flood: DevMapHash<MapData> =
            DevMapHash::try_from(open_pinned(pin_dir, MAP_FLOOD)).expect("XN_FLOOD type");
        let members: HashMap<MapData, MemberKey, u32> =
            HashMap::try_from(open_pinned(pin_dir, MAP_MEMBERS)).expect("XN_MEMBERS type");
        let fdb: HashMap<MapData, FdbKey, FdbVal> =
            HashMap::try_from(open_pinned(pin_dir, MAP_FDB)).expect("XN_FDB type");
        Pinned {
            ports: ports.iter().map(|r| r.expect("XN_PORTS entry")).collect(),
            tx: tx
                .iter()
                .map(|r| r.map(|(k, v)| (k, v.if_index)).expect("XN_TX entry"))
                .collect(),
            flood: flood
                .iter()
                .map(|r| r.map(|(k, v)| (k, v.if_index)).expect("XN_FLOOD entry"))
                .collect(),
            members: members
                .iter()
                .map(|r| r.expect("XN_MEMBERS entry"))
                .collect(),
            fdb: fdb.iter().map(|r| r.expect("XN_FDB entry")).collect(),
        }
    }

    /// The maps describe exactly the ports `remaining` (all of one bridge): `XN_PORTS` holds
    /// them and nothing else, the XDP redirect maps hold exactly the native-XDP ones,
    /// `XN_MEMBERS` lists exactly them (dense, count under `MEMBER_COUNT`), and no key or
    /// value anywhere refers to an ifindex of `removed`.
    fn check(&self, remaining: &[PortRow], removed: &BTreeSet<u32>, what: &str) {
        let want: BTreeSet<u32> = remaining.iter().map(|p| p.ifindex).collect();
        let xdp: BTreeSet<u32> = remaining
            .iter()
            .filter(|p| p.attached == "xdp")
            .map(|p| p.ifindex)
            .collect();
        assert!(
            want.is_disjoint(removed),
            "{what}: a remaining port has a removed ifindex"
        );
        let keys: BTreeSet<u32> = self.ports.keys().copied().collect();
        assert_eq!(keys, want, "{what}: XN_PORTS keys");
        let bridges: BTreeSet<u32> = self.ports.values().map(|c| c.bridge).collect();
        assert_eq!(
            bridges.len(),
            1,
            "{what}: one bridge in XN_PORTS: {bridges:?}"
        );
        let bridge = *bridges.first().expect("a bridge");
        for (name, m) in [("XN_TX", &self.tx), ("XN_FLOOD", &self.flood)] {
            let keys: BTreeSet<u32> = m.keys().copied().collect();
            assert_eq!(keys, xdp, "{what}: {name} keys (the native-XDP ports)");
            for (k, v) in m {
                assert_eq!(k, v, "{what}: {name} entry {k} redirects elsewhere");
            }
        }
        let mut listed = BTreeMap::new();
        let mut count = None;
        for (k, v) in &self.members {
            assert_eq!(
                k.bridge, bridge,
                "{what}: XN_MEMBERS key of another bridge: {k:?}"
            );
            if k.idx == MEMBER_COUNT {
                count = Some(*v);
            } else {
                listed.insert(k.idx, *v);
            }
        }
        let n = want.len() as u32;
        assert_eq!(count, Some(n), "{what}: XN_MEMBERS count");
        assert_eq!(
            listed.keys().copied().collect::<Vec<u32>>(),
            (0..n).collect::<Vec<u32>>(),
            "{what}: XN_MEMBERS indices"
        );
        let values: BTreeSet<u32> = listed.values().copied().collect();
        assert_eq!(values, want, "{what}: XN_MEMBERS members");
        assert_eq!(
            listed.len(),
            want.len(),
            "{what}: duplicate XN_MEMBERS values"
        );
        for (k, v) in &self.fdb {
            assert!(
                !removed.contains(&v.ifindex),
                "{what}: XN_FDB entry {} VLAN {} still points at removed ifindex {}",
                format_mac(&k.mac),
                k.vlan,
                v.ifindex
            );
            assert!(
                want.contains(&v.ifindex),
                "{what}: XN_FDB entry {} VLAN {} points at ifindex {}, not a port",
                format_mac(&k.mac),
                k.vlan,
                v.ifindex
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------

/// (source MAC, tags, marker) of a frame.
fn summary(f: &[u8]) -> (Mac, Vec<(u16, u16)>, u32) {
    let p = parse_eth(f).expect("parse");
    (p.src, p.tags, find_marker(f).expect("marker"))
}

/// Send a test frame from `from` (as `src`) to the upstream and check that exactly it arrives
/// at `up`, tagged `vlan`, and nothing at `others`.
fn to_upstream(
    from: &RawSocket,
    src: Mac,
    id: u32,
    vlan: u16,
    up: &RawSocket,
    others: &[(&str, &RawSocket)],
    what: &str,
) {
    let mut all: Vec<(&str, &RawSocket)> = vec![("up", up)];
    all.extend_from_slice(others);
    drain(&all);
    from.send(&test_frame(UPSTREAM_MAC, src, &[], id))
        .expect("send");
    let got = collect_marked(&all);
    for (name, frames) in &got {
        if name == "up" {
            let s: Vec<_> = frames.iter().map(|f| summary(f)).collect();
            assert_eq!(
                s,
                vec![(src, vec![q_tag(vlan)], id)],
                "{what}: at the upstream"
            );
        } else {
            assert!(frames.is_empty(), "{what}: frames at {name}: {frames:02x?}");
        }
    }
}

/// A guest: its namespace (interface `eth0`) behind `vif` in dom0.
struct Guest {
    vif: String,
    mac: Mac,
    ns: Netns,
}

// ---------------------------------------------------------------------------
// 1. Eight vifs appear, forward, and vanish without a trace
// ---------------------------------------------------------------------------

#[test]
fn eight_vifs_appear_forward_and_vanish() {
    if !require_root() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    // Guests first: they drop after the agent has stopped.
    let guests: Vec<Guest> = (0..8u8)
        .map(|n| Guest {
            vif: format!("vif7.{n}"),
            mac: [0x00, 0x16, 0x3e, 0x07, 0x00, n],
            ns: Netns::new(&format!("hp8-g{n}")).expect("guest namespace"),
        })
        .collect();
    let d = Sim::new(
        "hp8",
        "[[bridge.port]]\ninterface = \"vif7.*\"\naccess = 4094\nattach = \"tc\"\n",
    );
    // Nothing matches the rule yet.
    let before: Vec<PortRow> = d.ports();
    assert_eq!(
        before
            .iter()
            .map(|p| p.interface.as_str())
            .collect::<Vec<_>>(),
        ["eth1"],
        "ports before any vif"
    );
    assert_eq!(before[0].attached, "xdp", "the uplink's attach mode");
    assert!(
        d.links().iter().all(|l| !l.starts_with("vif")),
        "no vif may exist yet"
    );

    // The vifs appear (the agent is not told).
    let t0 = Instant::now();
    for g in &guests {
        veth(&d.dom0, &g.vif, &g.ns, "eth0").expect("vif");
        set_mac(&g.ns, "eth0", g.mac).expect("guest MAC");
        set_gro(&g.ns, "eth0", true).expect("guest GRO");
    }
    let created = t0.elapsed();
    let names: BTreeSet<String> = guests.iter().map(|g| g.vif.clone()).collect();
    let waited = d.wait_ports(&names, "tc", HOTPLUG_BOUND);
    eprintln!(
        "8 vifs created in {created:?}; all attached {waited:?} after the last one ({:?} after \
         the first)",
        t0.elapsed()
    );
    let ports = d.ports();
    for g in &guests {
        let p = ports.iter().find(|p| p.interface == g.vif).expect("listed");
        assert_eq!(
            (p.bridge.as_str(), p.attached.as_str(), p.vlans.as_str()),
            ("trunk", "tc", "access 4094"),
            "{}",
            g.vif
        );
        assert_eq!(
            p.ifindex,
            ifindex(&d.dom0, &g.vif).expect("ifindex"),
            "{} ifindex",
            g.vif
        );
    }
    Pinned::read(&d.pin_dir()).check(&ports, &BTreeSet::new(), "with 8 vifs");

    let up = RawSocket::open(&d.up, "eth0").expect("upstream socket");
    let gs: Vec<RawSocket> = guests
        .iter()
        .map(|g| RawSocket::open(&g.ns, "eth0").expect("guest socket"))
        .collect();
    let names_g: Vec<String> = guests.iter().map(|g| format!("g{}", g.mac[5])).collect();
    let mut all: Vec<(&str, &RawSocket)> = vec![("up", &up)];
    all.extend(names_g.iter().map(String::as_str).zip(gs.iter()));

    // Each guest's frame to the upstream leaves the trunk tagged 4094, and only there.
    for (i, g) in guests.iter().enumerate() {
        let others: Vec<(&str, &RawSocket)> = all[1..]
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, s)| *s)
            .collect();
        to_upstream(
            &gs[i],
            g.mac,
            100 + i as u32,
            4094,
            &up,
            &others,
            &format!("{} → upstream", g.vif),
        );
    }
    // The guests were learned on their vifs.
    let mut want_fdb = upstream_statics();
    for g in &guests {
        want_fdb.insert(fdb_entry(g.mac, 4094, &g.vif, false));
    }
    assert_eq!(d.fdb(), want_fdb, "FDB after each guest spoke");

    // A broadcast from the upstream on 4094 reaches all eight, untagged; on 4093, none.
    drain(&all);
    up.send(&test_frame(BROADCAST, UPSTREAM_MAC, &[q_tag(4094)], 200))
        .expect("send");
    let got = collect_marked(&all);
    for (name, frames) in &got {
        let s: Vec<_> = frames.iter().map(|f| summary(f)).collect();
        if name == "up" {
            assert!(
                s.is_empty(),
                "broadcast came back to the upstream: {s:02x?}"
            );
        } else {
            assert_eq!(
                s,
                vec![(UPSTREAM_MAC, vec![], 200)],
                "upstream broadcast on 4094 at {name}"
            );
        }
    }
    up.send(&test_frame(BROADCAST, UPSTREAM_MAC, &[q_tag(4093)], 201))
        .expect("send");
    for (name, frames) in collect_marked(&all) {
        assert!(
            frames.is_empty(),
            "broadcast on 4093 at {name}: {frames:02x?}"
        );
    }
    let stats = d.stats_ports();
    for p in &ports {
        assert!(
            stats.contains(&(p.interface.clone(), p.ifindex)),
            "{} missing from stats: {stats:?}",
            p.interface
        );
    }

    // The vifs vanish.
    drop(gs);
    let removed: BTreeSet<u32> = ports
        .iter()
        .filter(|p| p.interface != "eth1")
        .map(|p| p.ifindex)
        .collect();
    let t0 = Instant::now();
    for g in &guests {
        d.dom0
            .exec_ok(&["ip", "link", "del", &g.vif])
            .expect("ip link del");
    }
    let deleted = t0.elapsed();
    let waited = d.wait_ports(&BTreeSet::new(), "tc", HOTPLUG_BOUND);
    eprintln!("8 vifs deleted in {deleted:?}; all detached {waited:?} after the last one");
    let remaining = d.ports();
    assert_eq!(remaining.len(), 1, "only eth1 remains: {remaining:?}");
    assert_eq!(d.fdb(), upstream_statics(), "FDB after the vifs vanished");
    let stats = d.stats_ports();
    assert_eq!(
        stats,
        [("eth1".to_string(), remaining[0].ifindex)]
            .into_iter()
            .collect(),
        "stats after the vifs vanished"
    );
    Pinned::read(&d.pin_dir()).check(&remaining, &removed, "after the vifs vanished");
    assert!(
        !d.log().contains("following link changes failed"),
        "agent log:\n{}",
        d.log()
    );
    // The uplink still forwards: the upstream reaches nobody on 4094 now, and nothing breaks.
    drop(up);
    drop(d);
}

// ---------------------------------------------------------------------------
// 2. port add / port del through the control socket
// ---------------------------------------------------------------------------

#[test]
fn port_add_and_del_through_the_socket() {
    const VIF: &str = "vif8.0";
    if !require_root() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let gmac: Mac = [0x00, 0x16, 0x3e, 0x08, 0x00, 0x01];
    let gns = Netns::new("hpadd-g").expect("guest namespace");
    let d = Sim::new(
        "hpadd",
        "[[bridge.port]]\ninterface = \"vif7.*\"\naccess = 4094\nattach = \"tc\"\n",
    );
    let mk_vif = || {
        veth(&d.dom0, VIF, &gns, "eth0").expect("vif");
        set_mac(&gns, "eth0", gmac).expect("guest MAC");
        set_gro(&gns, "eth0", true).expect("guest GRO");
    };
    mk_vif();
    // No rule matches vif8.0: wait for a sentinel vif the rule does match, created after it,
    // to be sure the agent has seen vif8.0 and left it alone.
    let sentinel = Netns::new("hpadd-s").expect("sentinel namespace");
    veth(&d.dom0, "vif7.9", &sentinel, "eth0").expect("sentinel vif");
    let one: BTreeSet<String> = ["vif7.9".to_string()].into_iter().collect();
    d.wait_ports(&one, "tc", HOTPLUG_BOUND);
    d.dom0
        .exec_ok(&["ip", "link", "del", "vif7.9"])
        .expect("ip link del");
    d.wait_ports(&BTreeSet::new(), "tc", HOTPLUG_BOUND);

    let up = RawSocket::open(&d.up, "eth0").expect("upstream socket");
    let g = RawSocket::open(&gns, "eth0").expect("guest socket");
    let vif_idx = ifindex(&d.dom0, VIF).expect("ifindex");

    // Added through the socket.
    let mac_s = format_mac(&gmac);
    let add: [&str; 8] = [
        "port", "add", VIF, "--bridge", "trunk", "--access", "4093", "--mac",
    ];
    let mut add_args = add.to_vec();
    add_args.push(&mac_s);
    let out = d.ctl(&add_args);
    assert_ok(&out, "port add vif8.0", &d.log());
    let ports = d.ports();
    let p = ports
        .iter()
        .find(|p| p.interface == VIF)
        .unwrap_or_else(|| panic!("vif8.0 not listed: {ports:?}"));
    assert_eq!(
        (
            p.bridge.as_str(),
            p.vlans.as_str(),
            p.attached.as_str(),
            p.ifindex
        ),
        ("trunk", "access 4093", "xdp", vif_idx),
        "vif8.0 as listed"
    );
    assert_eq!(ports.len(), 2, "ports: {ports:?}");
    let mut want_fdb = upstream_statics();
    want_fdb.insert(fdb_entry(gmac, 4093, VIF, true));
    assert_eq!(d.fdb(), want_fdb, "FDB after port add");
    Pinned::read(&d.pin_dir()).check(&ports, &BTreeSet::new(), "after port add");
    // Frames from the guest reach the upstream tagged 4093; the upstream reaches the guest.
    to_upstream(&g, gmac, 1, 4093, &up, &[("g", &g)], "vif8.0 → upstream");
    drain(&[("g", &g), ("up", &up)]);
    up.send(&test_frame(gmac, UPSTREAM_MAC, &[q_tag(4093)], 2))
        .expect("send");
    let got = collect_marked(&[("g", &g), ("up", &up)]);
    let at_g: Vec<_> = got["g"].iter().map(|f| summary(f)).collect();
    assert_eq!(at_g, vec![(UPSTREAM_MAC, vec![], 2)], "upstream → guest");
    assert!(got["up"].is_empty(), "upstream → guest came back");
    // The static entry stays static (the guest's frames do not make it learned).
    assert_eq!(d.fdb(), want_fdb, "FDB after traffic");

    // Refused requests change nothing.
    let fdb_before = d.fdb();
    let ports_before = format!("{:?}", d.ports());
    for (args, needle, what) in [
        (
            vec!["port", "add", VIF, "--bridge", "nosuch", "--access", "4093"],
            "no bridge \"nosuch\"",
            "unknown bridge",
        ),
        (
            vec!["port", "add", VIF, "--bridge", "trunk", "--access", "4095"],
            "`access` = 4095 is not a VLAN id (1-4094)",
            "access VLAN 4095",
        ),
        (
            vec![
                "port",
                "add",
                VIF,
                "--bridge",
                "trunk",
                "--trunk",
                "4093,4095",
            ],
            "`trunk` entry 4095 is not a VLAN id (1-4094)",
            "trunk VLAN 4095",
        ),
        (
            vec![
                "port", "add", "vif8.9", "--bridge", "trunk", "--access", "4093",
            ],
            "interface \"vif8.9\" does not exist",
            "non-existent interface",
        ),
        (
            vec![
                "port",
                "add",
                VIF,
                "--bridge",
                "trunk",
                "--access",
                "4093",
                "--trunk",
                "4093,4094",
            ],
            "cannot be used with",
            "--access and --trunk together",
        ),
    ] {
        let out = d.ctl(&args);
        assert_failed(&out, what, needle);
        assert_eq!(d.fdb(), fdb_before, "{what}: the FDB changed");
        assert_eq!(
            format!("{:?}", d.ports()),
            ports_before,
            "{what}: ports changed"
        );
    }
    Pinned::read(&d.pin_dir()).check(&d.ports(), &BTreeSet::new(), "after refused requests");

    // port del: gone from ports, FDB and maps; the guest's frames no longer cross.
    let out = d.ctl(&["port", "del", VIF]);
    assert_ok(&out, "port del vif8.0", &d.log());
    let ports = d.ports();
    assert_eq!(ports.len(), 1, "ports after port del: {ports:?}");
    assert_eq!(d.fdb(), upstream_statics(), "FDB after port del");
    let removed: BTreeSet<u32> = [vif_idx].into_iter().collect();
    Pinned::read(&d.pin_dir()).check(&ports, &removed, "after port del");
    drain(&[("g", &g), ("up", &up)]);
    g.send(&test_frame(UPSTREAM_MAC, gmac, &[], 3))
        .expect("send");
    let got = collect_marked(&[("up", &up)]);
    assert!(got["up"].is_empty(), "vif8.0 still forwards after port del");
    let out = d.ctl(&["port", "del", VIF]);
    assert_failed(
        &out,
        "port del again",
        "vif8.0 is not a port added with `port add`",
    );

    // A run-time port whose interface is deleted disappears by itself, and is forgotten.
    let out = d.ctl(&add_args);
    assert_ok(&out, "port add vif8.0 again", &d.log());
    let named: BTreeSet<String> = [VIF.to_string()].into_iter().collect();
    d.wait_ports(&named, "xdp", Duration::ZERO);
    drop(g);
    d.dom0
        .exec_ok(&["ip", "link", "del", VIF])
        .expect("ip link del");
    d.wait_ports(&BTreeSet::new(), "tc", HOTPLUG_BOUND);
    let ports = d.ports();
    assert_eq!(d.fdb(), upstream_statics(), "FDB after vif8.0 vanished");
    Pinned::read(&d.pin_dir()).check(&ports, &removed, "after vif8.0 vanished");
    assert!(
        d.stats_ports()
            .iter()
            .all(|(n, i)| n == "eth1" && !removed.contains(i)),
        "stats after vif8.0 vanished"
    );
    let out = d.ctl(&["port", "del", VIF]);
    assert_failed(
        &out,
        "port del of a vanished port",
        "not a port added with `port add`",
    );
    // vif8.0 comes back (a new domain reusing the name): not a port unless added again.
    mk_vif();
    veth(&d.dom0, "vif7.9", &sentinel, "eth0").expect("sentinel vif");
    d.wait_ports(&one, "tc", HOTPLUG_BOUND);
    assert!(
        !d.port_names().contains(VIF),
        "the vanished run-time port came back with its interface"
    );
    drop(up);
    drop(d);
}

// ---------------------------------------------------------------------------
// 3. Churn: 1000 add/remove cycles; 1000 vifs at once
// ---------------------------------------------------------------------------

/// Send each `(interface, frame)` out of its interface in `ns`, through one unbound
/// `AF_PACKET` socket (opening a [`RawSocket`] per guest would dominate a 1000-vif round).
fn send_many(ns: &Netns, frames: &[(String, Vec<u8>)]) {
    use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
    ns.run_in(|| {
        // SAFETY: plain syscall.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        assert!(raw >= 0, "socket: {}", std::io::Error::last_os_error());
        // SAFETY: a fresh fd we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        for (name, frame) in frames {
            let c = std::ffi::CString::new(name.as_str()).expect("name");
            // SAFETY: NUL-terminated string.
            let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
            assert!(idx != 0, "no interface {name}");
            // SAFETY: all-zero is a valid sockaddr_ll.
            let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            addr.sll_family = libc::AF_PACKET as u16;
            addr.sll_protocol = u16::from_be_bytes([frame[12], frame[13]]).to_be();
            addr.sll_ifindex = i32::try_from(idx).expect("ifindex");
            addr.sll_halen = 6;
            addr.sll_addr[..6].copy_from_slice(&frame[..6]);
            // SAFETY: valid buffer and address of the stated sizes.
            let n = unsafe {
                libc::sendto(
                    fd.as_raw_fd(),
                    frame.as_ptr().cast(),
                    frame.len(),
                    0,
                    (&raw const addr).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            };
            assert_eq!(
                usize::try_from(n).ok(),
                Some(frame.len()),
                "sendto {name}: {}",
                std::io::Error::last_os_error()
            );
        }
    })
    .expect("sending in the guests' namespace");
}

/// Samples the agent's kernel stack (`/proc/PID/stack`, its main thread, which runs the
/// whole agent) every 2 ms: where does attaching spend its time?
struct StackSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: std::thread::JoinHandle<BTreeMap<String, u32>>,
}

impl StackSampler {
    fn start(pid: u32) -> StackSampler {
        use std::sync::{Arc, atomic::AtomicBool, atomic::Ordering};
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let mut counts: BTreeMap<String, u32> = BTreeMap::new();
            let path = format!("/proc/{pid}/stack");
            while !stop2.load(Ordering::Relaxed) {
                let st = std::fs::read_to_string(&path).unwrap_or_default();
                let what = if st.contains("tcx_link_attach") && st.contains("synchronize_rcu") {
                    "tcx_link_attach → synchronize_rcu"
                } else if st.contains("tcx_link_attach") {
                    "tcx_link_attach, other"
                } else if st.contains("epoll_wait") {
                    "idle (epoll_wait)"
                } else if st.contains("rtnetlink") || st.contains("netlink") {
                    "netlink"
                } else if st.contains("rtnl_lock") || st.contains("mutex_lock") {
                    "waiting for a lock"
                } else if st.trim().is_empty() || st.contains("exit_to_user_mode") {
                    // Running, or preempted on its way back to, user space.
                    "user space"
                } else {
                    ""
                };
                let what = if what.is_empty() {
                    // The innermost kernel function, e.g. `[<0>] __x64_sys_bpf+0x1b/0x30`.
                    let top = st.lines().next().unwrap_or("");
                    let f = top.split_whitespace().nth(1).unwrap_or(top);
                    format!("kernel {}", f.split('+').next().unwrap_or(f))
                } else {
                    what.to_string()
                };
                *counts.entry(what).or_default() += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            counts
        });
        StackSampler { stop, handle }
    }

    fn finish(self) -> String {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let counts = self.handle.join().expect("sampler");
        let total: u32 = counts.values().sum();
        let mut v: Vec<(String, u32)> = counts.into_iter().collect();
        v.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        let parts: Vec<String> = v
            .iter()
            .take(8)
            .map(|(k, n)| {
                format!(
                    "{k} {:.0}%",
                    f64::from(*n) * 100.0 / f64::from(total.max(1))
                )
            })
            .collect();
        format!("agent kernel stack, {total} samples: {}", parts.join(", "))
    }
}

/// `line` without ANSI colour sequences.
fn strip_ansi(line: &str) -> String {
    let mut clean = String::new();
    let mut esc = false;
    for c in line.chars() {
        match (esc, c) {
            (false, '\u{1b}') => esc = true,
            (true, 'm') => esc = false,
            (true, _) => {}
            (false, c) => clean.push(c),
        }
    }
    clean
}

/// Seconds since midnight UTC of a log line's RFC 3339 timestamp.
fn log_secs(line: &str) -> Option<f64> {
    let t = line.split_whitespace().next()?;
    let time = t.split('T').nth(1)?.trim_end_matches('Z');
    let mut parts = time.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

fn secs_of_day(t: SystemTime) -> f64 {
    let d = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock after 1970");
    (d.as_secs() % 86_400) as f64 + f64::from(d.subsec_micros()) / 1e6
}

/// Where the agent spent a round, from its log after `start` (wall clock): its `port
/// attached` lines for `prefix` ports and its relinks (each with how many ports it added).
fn log_breakdown(log: &str, start: SystemTime, prefix: &str) -> String {
    let t0 = secs_of_day(start);
    let mut first_attach = None;
    let mut last_attach = None;
    let mut attached = 0;
    let mut relinks = Vec::new();
    let mut since_relink = 0;
    let mut warnings = Vec::new();
    for line in log.lines() {
        let line = strip_ansi(line);
        let line = line.as_str();
        let Some(t) = log_secs(line) else { continue };
        let rel = t - t0;
        if rel < 0.0 {
            continue;
        }
        if line.contains("port attached") && line.contains(prefix) {
            attached += 1;
            since_relink += 1;
            first_attach.get_or_insert(rel);
            last_attach = Some(rel);
        }
        if line.contains("ports followed link changes") {
            relinks.push(format!("+{rel:.2} s ({since_relink})"));
            since_relink = 0;
        }
        if line.contains("WARN") {
            let msg = line.split("WARN").nth(1).unwrap_or("").trim();
            warnings.push(format!(
                "+{rel:.2} s {}",
                msg.chars().take(80).collect::<String>()
            ));
        }
    }
    format!(
        "agent log: {attached} ports attached, first at +{:.2} s, last at +{:.2} s; relinks \
         that changed ports (ports attached in each): [{}]; WARN lines: {warnings:?}",
        first_attach.unwrap_or(f64::NAN),
        last_attach.unwrap_or(f64::NAN),
        relinks.join(", ")
    )
}

/// dom0 with the rule `vif*` (access 4094, TC), one shared namespace for all the guests'
/// ends, and an upstream socket.
struct Churn {
    up: RawSocket,
    d: Sim,
    guests: Netns,
}

impl Churn {
    fn new(tag: &str) -> Churn {
        let guests = Netns::new(&format!("{tag}-g")).expect("guests namespace");
        let d = Sim::new(
            tag,
            "[[bridge.port]]\ninterface = \"vif*\"\naccess = 4094\nattach = \"tc\"\n",
        );
        let up = RawSocket::open(&d.up, "eth0").expect("upstream socket");
        let ports = d.ports();
        assert_eq!(ports.len(), 1, "ports at start: {ports:?}");
        Churn { up, d, guests }
    }

    fn names(prefix: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i}")).collect()
    }

    /// The MAC the test sends from behind vif `i` of round `r`.
    fn mac(r: u8, i: usize) -> Mac {
        [0x02, 0x00, r, 0x00, (i >> 8) as u8, i as u8]
    }

    /// Create vifs `{prefix}0..n` (peers `g{i}` in the guests' namespace, both ends up) with
    /// two `ip -batch` runs. Returns the time the batches took.
    fn create(&self, prefix: &str, n: usize) -> Duration {
        let names = Self::names(prefix, n);
        let mut add: Vec<String> = names
            .iter()
            .enumerate()
            .map(|(i, v)| {
                format!(
                    "link add {v} type veth peer name g{i} netns {}",
                    self.guests.name()
                )
            })
            .collect();
        add.extend(names.iter().map(|v| format!("link set {v} up")));
        let ups: Vec<String> = (0..n).map(|i| format!("link set g{i} up")).collect();
        let t0 = Instant::now();
        ip_batch(&self.d.dom0, &add);
        ip_batch(&self.guests, &ups);
        t0.elapsed()
    }

    /// A frame from behind each vif `sample` of round `r` reaches the upstream tagged 4094,
    /// exactly once, and nothing else arrives. Sent in chunks of 50 so that the upstream
    /// socket's queue never overflows.
    fn check_forwarding(&self, prefix: &str, r: u8, sample: &[usize], id_base: u32) {
        for chunk in sample.chunks(50) {
            let mut want = BTreeMap::new();
            let mut frames = Vec::new();
            for &i in chunk {
                let id = id_base + i as u32;
                frames.push((
                    format!("g{i}"),
                    test_frame(UPSTREAM_MAC, Self::mac(r, i), &[], id),
                ));
                want.insert(id, (Self::mac(r, i), vec![q_tag(4094)], id));
            }
            send_many(&self.guests, &frames);
            let mut got = BTreeMap::new();
            let deadline = Instant::now() + Duration::from_secs(3);
            while got.len() < want.len() && Instant::now() < deadline {
                if let Some(f) = self
                    .up
                    .recv_timeout(Duration::from_millis(50))
                    .expect("recv")
                {
                    if find_marker(&f).is_some() {
                        let s = summary(&f);
                        assert!(got.insert(s.2, s.clone()).is_none(), "frame {} twice", s.2);
                    }
                }
            }
            if got != want {
                let missing: Vec<String> = want
                    .keys()
                    .filter(|k| !got.contains_key(k))
                    .map(|k| format!("{prefix}{}", k - id_base))
                    .collect();
                let wrong: Vec<_> = got
                    .values()
                    .filter(|v| !want.values().any(|w| w == *v))
                    .collect();
                panic!(
                    "{prefix}: frames at the upstream differ; no frame from behind {missing:?}; \
                     wrong frames {wrong:02x?}\nagent log tail:\n{}",
                    self.d
                        .log()
                        .lines()
                        .rev()
                        .take(20)
                        .collect::<Vec<_>>()
                        .join("\n")
                );
            }
        }
        // No straggler or duplicate.
        let late: Vec<_> = self
            .up
            .collect(QUIET)
            .expect("collect")
            .into_iter()
            .filter(|f| find_marker(f).is_some())
            .map(|f| summary(&f))
            .collect();
        assert!(
            late.is_empty(),
            "{prefix}: extra frames at the upstream: {late:02x?}"
        );
    }

    /// Delete vifs `{prefix}0..n` with one `ip -batch`; wait until only `eth1` is a port.
    /// Returns (batch time, time until all detached), both from the start of the batch.
    fn delete(&self, prefix: &str, n: usize, bound: Duration) -> (Duration, Duration) {
        let del: Vec<String> = Self::names(prefix, n)
            .iter()
            .map(|v| format!("link del {v}"))
            .collect();
        let t0 = Instant::now();
        ip_batch(&self.d.dom0, &del);
        let batch = t0.elapsed();
        self.d.wait_ports(&BTreeSet::new(), "tc", bound);
        (batch, t0.elapsed())
    }

    /// Nothing left of any vif: `ports` is `eth1` alone, the FDB the upstream's statics,
    /// `stats` `eth1` alone, the pinned maps exactly `eth1` and free of `removed`, no links
    /// but `lo` and `eth1` in dom0 and `lo` in the guests' namespace.
    fn check_clean(&self, removed: &BTreeSet<u32>, what: &str) {
        let d = &self.d;
        let ports = d.ports();
        assert_eq!(
            ports
                .iter()
                .map(|p| p.interface.as_str())
                .collect::<Vec<_>>(),
            ["eth1"],
            "{what}: ports"
        );
        assert_eq!(d.fdb(), upstream_statics(), "{what}: FDB");
        assert_eq!(
            d.stats_ports(),
            [("eth1".to_string(), ports[0].ifindex)]
                .into_iter()
                .collect(),
            "{what}: stats"
        );
        Pinned::read(&d.pin_dir()).check(&ports, removed, what);
        assert_eq!(
            d.links(),
            ["eth1".to_string(), "lo".to_string()].into_iter().collect(),
            "{what}: links left in dom0"
        );
        assert_eq!(
            link_names(&self.guests),
            ["lo".to_string()].into_iter().collect(),
            "{what}: links left in the guests' namespace"
        );
    }

    /// The ifindexes of the listed vifs.
    fn vif_indexes(&self) -> BTreeSet<u32> {
        self.d
            .ports()
            .iter()
            .filter(|p| p.interface != "eth1")
            .map(|p| p.ifindex)
            .collect()
    }
}

/// Most memory the agent may hold (`VmRSS`) after any of these rounds.
const RSS_BOUND_KIB: u64 = 256 * 1024;

#[test]
fn churn_1000_vifs() {
    const ROUNDS: u8 = 4;
    const PER_ROUND: usize = 250;
    if !require_root() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let c = Churn::new("hpchurn");
    let pid = c.d.agent_pid();
    let rss_start = rss_kib(pid);
    eprintln!("agent pid {pid}, VmRSS at start {rss_start} KiB");

    let mut removed: BTreeSet<u32> = BTreeSet::new();
    let mut cycles = 0;
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut rss_rounds = Vec::new();
    let mut attach_total = Duration::ZERO;
    for r in 0..ROUNDS {
        let prefix = format!("vif{r}x");
        let t0 = Instant::now();
        let batch = c.create(&prefix, PER_ROUND);
        let want: BTreeSet<String> = Churn::names(&prefix, PER_ROUND).into_iter().collect();
        c.d.wait_ports(&want, "tc", Duration::from_secs(60));
        let attached = t0.elapsed();
        attach_total += attached;
        let idx = c.vif_indexes();
        assert_eq!(idx.len(), PER_ROUND, "round {r}: ports listed");
        assert!(
            idx.is_disjoint(&removed),
            "round {r}: an ifindex was reused"
        );
        let sample: Vec<usize> = (0..5)
            .map(|_| rng.below(PER_ROUND))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        c.check_forwarding(&prefix, r, &sample, u32::from(r) * 10_000);
        // The sampled guests were learned on their vifs.
        let fdb = c.d.fdb();
        for &i in &sample {
            let row = fdb_entry(Churn::mac(r, i), 4094, &format!("{prefix}{i}"), false);
            assert!(
                fdb.contains(&row),
                "round {r}: {row:?} not learned: {fdb:?}"
            );
        }
        assert_eq!(fdb.len(), 2 + sample.len(), "round {r}: FDB {fdb:?}");
        let (del_batch, detached) = c.delete(&prefix, PER_ROUND, Duration::from_secs(60));
        cycles += PER_ROUND;
        removed.extend(&idx);
        assert_eq!(
            c.d.fdb(),
            upstream_statics(),
            "round {r}: FDB after deletion"
        );
        let rss = rss_kib(pid);
        rss_rounds.push(rss);
        eprintln!(
            "round {r}: {PER_ROUND} vifs: ip batch {batch:.2?}, all attached after \
             {attached:.2?} ({:.0} attaches/s); ip batch del {del_batch:.2?}, all detached \
             after {detached:.2?} ({:.0} detaches/s); VmRSS {rss} KiB",
            PER_ROUND as f64 / attached.as_secs_f64(),
            PER_ROUND as f64 / detached.as_secs_f64()
        );
    }
    assert_eq!(cycles, 1000, "add/remove cycles");
    assert_eq!(removed.len(), 1000, "distinct ifindexes attached");
    c.check_clean(&removed, "after 1000 add/remove cycles");
    assert_eq!(c.d.agent_pid(), pid, "the agent is still the same process");
    let rss = rss_kib(pid);
    eprintln!(
        "after {cycles} add/remove cycles: {:.0} attaches/s overall; agent alive, VmRSS {rss} \
         KiB (start {rss_start}, after each round {rss_rounds:?})",
        cycles as f64 / attach_total.as_secs_f64()
    );
    assert!(rss < RSS_BOUND_KIB, "agent VmRSS {rss} KiB after churn");
    let log = c.d.log();
    assert!(
        !log.contains("following link changes failed"),
        "the agent failed to follow link changes:\n{log}"
    );
}

/// 1000 vifs appear at once and all forward; then they all go, leaving nothing. The time it
/// takes is reported, not asserted: it is dominated by the kernel's RCU grace period per tcx
/// attach, which a busy shared machine stretches (measured 2.9 s quiet, 13.6 s while a
/// benchmark ran beside it). The 10 s target is a benchmark figure (docs/xen.md), not a test.
#[test]
fn thousand_vifs_at_once() {
    const N: usize = 1000;
    const TARGET: Duration = Duration::from_secs(10);
    if !require_root() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let c = Churn::new("hpthousand");
    let pid = c.d.agent_pid();
    let rss_start = rss_kib(pid);
    let wall = SystemTime::now();
    let sampler = StackSampler::start(pid);
    let t0 = Instant::now();
    let batch = c.create("vifk", N);
    let want: BTreeSet<String> = Churn::names("vifk", N).into_iter().collect();
    c.d.wait_ports(&want, "tc", Duration::from_secs(120));
    let attached = t0.elapsed();
    let stacks = sampler.finish();
    let all: Vec<usize> = (0..N).collect();
    c.check_forwarding("vifk", 9, &all, 100_000);
    let forwarding = t0.elapsed();
    let breakdown = log_breakdown(&c.d.log(), wall, "vifk");
    let rss_full = rss_kib(pid);
    let report = format!(
        "{N} vifs at once: ip batch {batch:.2?}; all listed as ports after {attached:.2?} \
         ({:.0} attaches/s); all {N} verified forwarding after {forwarding:.2?}; agent VmRSS \
         {rss_start} KiB before, {rss_full} KiB with {N} ports\n{stacks}\n{breakdown}",
        N as f64 / attached.as_secs_f64()
    );
    eprintln!("{report}");
    let idx = c.vif_indexes();
    assert_eq!(idx.len(), N, "ports listed");
    let (del_batch, detached) = c.delete("vifk", N, Duration::from_secs(120));
    eprintln!(
        "{N} vifs deleted at once: ip batch del {del_batch:.2?}, all detached after \
         {detached:.2?} ({:.0} detaches/s)",
        N as f64 / detached.as_secs_f64()
    );
    c.check_clean(&idx, "after 1000 vifs at once");
    assert_eq!(c.d.agent_pid(), pid, "the agent is still the same process");
    let rss_end = rss_kib(pid);
    eprintln!("agent VmRSS at the end: {rss_end} KiB");
    assert!(
        rss_end < RSS_BOUND_KIB,
        "agent VmRSS {rss_end} KiB at the end"
    );
    eprintln!(
        "scale target (all forwarding within {TARGET:?}): {}",
        if forwarding <= TARGET {
            "met"
        } else {
            "missed on this run"
        }
    );
}
