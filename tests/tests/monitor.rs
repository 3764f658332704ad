//! `xennet-agent monitor` and the per-VLAN counters with real frames, in XDP and TC: known
//! drops (a tag on an access port, a VLAN the trunk does not carry, a spoofed static MAC)
//! reach `monitor --json` with their reason, port, VLAN and MACs; nothing is emitted with the
//! monitor off, after it exits, nor after it is killed with -9 and its lease ran out; a
//! `--port` filter hides the other port's drops. Frames sent per VLAN show up, exactly, in
//! `stats --vlans` and in `/metrics`.
#![allow(clippy::too_many_lines, reason = "one scenario per attach mode")]

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::TcpStream,
    path::Path,
    process::{Child, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use aya::maps::{Map, MapData, RingBuf};
use serde_json::Value;
use xennet_agent::monitor::lease;
use xennet_common::{
    fwd::fixtures::lab::ETH_P_TEST,
    monitor::{LEASE_NS, MAP_LOGS},
};
use xennet_tests::{
    RawSocket,
    frame::{Mac, q_tag, test_frame},
    require_root,
    topo::{Agent, BpfFs, Mode, SeedDom0, UPSTREAM_MAC, agent_bin, agent_command, start_seed},
};

/// A running `xennet-agent monitor`, its stdout and stderr lines on channels.
struct Monitor {
    child: Child,
    lines: mpsc::Receiver<String>,
    errs: mpsc::Receiver<String>,
}

/// Lines of `r` on a channel (a thread reads them).
fn lines_of(r: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl Monitor {
    /// Start `monitor --pin-dir DIR ARGS` in dom0 and wait until its switch is on.
    fn start(sim: &SeedDom0, pin_dir: &Path, args: &[&str]) -> Monitor {
        let bin = agent_bin().expect("agent binary");
        let pin = pin_dir.to_string_lossy().into_owned();
        let mut all = vec!["monitor", "--pin-dir", &pin];
        all.extend_from_slice(args);
        let mut child = agent_command(&bin, &sim.dom0, &all)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the monitor");
        let lines = lines_of(child.stdout.take().expect("stdout"));
        let errs = lines_of(child.stderr.take().expect("stderr"));
        let t0 = Instant::now();
        while switch(pin_dir).mode == 0 {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "the monitor never switched the events on"
            );
            if let Ok(Some(st)) = child.try_wait() {
                panic!("the monitor exited at start: {st}");
            }
            thread::sleep(Duration::from_millis(50));
        }
        Monitor { child, lines, errs }
    }

    /// Wait up to 10 s for a stderr line containing `what`; every line read until then.
    fn said(&self, what: &str) -> Vec<String> {
        let t0 = Instant::now();
        let mut seen = Vec::new();
        while let Some(left) = Duration::from_secs(10).checked_sub(t0.elapsed()) {
            match self.errs.recv_timeout(left) {
                Ok(l) if l.contains(what) => {
                    seen.push(l);
                    return seen;
                }
                Ok(l) => seen.push(l),
                Err(_) => break,
            }
        }
        panic!("the monitor never said {what:?}; it said {seen:?}");
    }

    /// The next event, parsed, within 10 s.
    fn next(&self) -> Value {
        let line = self
            .lines
            .recv_timeout(Duration::from_secs(10))
            .expect("an event from the monitor within 10 s");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {line}: {e}"))
    }

    /// Every line printed within `d`.
    fn rest(&self, d: Duration) -> Vec<String> {
        let t0 = Instant::now();
        let mut v = Vec::new();
        while let Some(left) = d.checked_sub(t0.elapsed()) {
            match self.lines.recv_timeout(left) {
                Ok(l) => v.push(l),
                Err(_) => break,
            }
        }
        v
    }

    fn signal(&self, sig: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid");
        // SAFETY: signalling our own child.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill");
    }

    /// SIGTERM; whether it exited 0.
    fn stop(mut self) -> bool {
        self.signal(libc::SIGTERM);
        self.child
            .wait()
            .expect("waiting for the monitor")
            .success()
    }

    /// SIGKILL, reaped.
    fn kill9(mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn switch(pin_dir: &Path) -> xennet_common::monitor::MonitorConf {
    lease::read(pin_dir).expect("reading XN_MONITOR")
}

/// aya-log's ring, pinned with the datapath (read here only while no monitor runs).
fn ring(pin_dir: &Path) -> RingBuf<MapData> {
    let data = MapData::from_pin(pin_dir.join(MAP_LOGS)).expect("the pinned AYA_LOGS");
    RingBuf::try_from(Map::from_map_data(data).expect("map")).expect("a ring buffer")
}

/// Records waiting in the ring (read and so removed).
fn records(r: &mut RingBuf<MapData>) -> usize {
    let mut n = 0;
    while r.next().is_some() {
        n += 1;
    }
    n
}

/// Fields drop in order: the agent stops (and `down` runs in dom0) before the bpffs goes and
/// before the namespaces do.
struct World {
    agent: Option<Agent>,
    mode: Mode,
    fs: BpfFs,
    up: RawSocket,
    g: Vec<RawSocket>,
    sim: SeedDom0,
}

/// One known drop: who sends it, the frame, and what the monitor must say.
struct Drop1 {
    from: usize,
    frame: Vec<u8>,
    port: &'static str,
    reason: &'static str,
    vlan: u64,
    src: Mac,
    dst: Mac,
}

fn mac(m: Mac) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl World {
    fn new(tag: &str, mode: Mode) -> World {
        let (sim, fs, agent) = start_seed(tag, mode, "").expect("starting the seed setup");
        let up = sim.upstream_socket().expect("upstream socket");
        let g = ["vif1.0", "vif2.0", "vif3.0"]
            .iter()
            .map(|v| sim.guest_socket(v).expect("guest socket"))
            .collect();
        World {
            sim,
            agent: Some(agent),
            mode,
            fs,
            up,
            g,
        }
    }

    fn agent(&self) -> &Agent {
        self.agent.as_ref().expect("an agent")
    }

    /// Stop the agent leaving the datapath running, and start a new one on it (adoption:
    /// new programs swapped into the pinned links).
    fn restart_agent(&mut self) {
        let old = self.agent.take().expect("an agent");
        assert!(old.leave_running().expect("stopping the agent"));
        let cfg = self
            .mode
            .config(self.sim.dom0.name(), "")
            .expect("writing the config");
        let agent = Agent::start(&self.sim.dom0, &cfg, &self.fs.pin_dir());
        let _ = std::fs::remove_file(&cfg);
        self.agent = Some(agent.expect("restarting the agent"));
    }

    fn sock(&self, from: usize) -> &RawSocket {
        if from == 9 { &self.up } else { &self.g[from] }
    }

    /// The three drops of the issue, `id` makes the frames unique.
    fn drops(&self, id: u32) -> [Drop1; 3] {
        let (g1, g2) = (self.sim.guests[0].mac, self.sim.guests[1].mac);
        [
            Drop1 {
                from: 0,
                frame: test_frame(g2, g1, &[q_tag(4094)], id),
                port: "vif1.0",
                reason: "drop_tagged_on_access",
                vlan: 0,
                src: g1,
                dst: g2,
            },
            Drop1 {
                from: 9,
                frame: test_frame(g1, UPSTREAM_MAC, &[q_tag(100)], id + 1),
                port: "eth1",
                reason: "drop_vlan_not_allowed",
                vlan: 0,
                src: UPSTREAM_MAC,
                dst: g1,
            },
            Drop1 {
                // Guest 2 claims guest 1's MAC, static on vif1.0.
                from: 1,
                frame: test_frame(UPSTREAM_MAC, g1, &[], id + 2),
                port: "vif2.0",
                reason: "drop_static_mac",
                vlan: 4094,
                src: g1,
                dst: UPSTREAM_MAC,
            },
        ]
    }

    fn send_drops(&self, id: u32) -> [Drop1; 3] {
        let d = self.drops(id);
        for x in &d {
            self.sock(x.from).send(&x.frame).expect("send");
        }
        d
    }

    fn dropped(&self) -> u64 {
        let c = self.agent().counters().expect("stats");
        [
            ("vif1.0", "drop_tagged_on_access"),
            ("eth1", "drop_vlan_not_allowed"),
            ("vif2.0", "drop_static_mac"),
        ]
        .iter()
        .map(|(p, r)| xennet_tests::counters::get(&c, p, r))
        .sum()
    }

    /// Send the drops with no monitor reading; they are counted but nothing enters the ring.
    fn drops_emit_nothing(&self, id: u32, what: &str) {
        let mut r = ring(&self.fs.pin_dir());
        assert_eq!(records(&mut r), 0, "{what}: the ring must start empty");
        let before = self.dropped();
        self.send_drops(id);
        let t0 = Instant::now();
        while self.dropped() < before + 3 {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "{what}: drops not counted"
            );
            thread::sleep(Duration::from_millis(50));
        }
        thread::sleep(Duration::from_millis(200));
        assert_eq!(records(&mut r), 0, "{what}: events were emitted");
    }

    fn vlans(&self) -> Vec<Value> {
        let pin = self.fs.pin_dir().to_string_lossy().into_owned();
        let out = self
            .agent()
            .cli(&["stats", "--vlans", "--json", "--pin-dir", &pin])
            .expect("stats --vlans");
        assert!(
            out.status.success(),
            "stats --vlans: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        v.as_array().cloned().expect("an array")
    }
}

fn vlan_row(rows: &[Value], vlan: u64) -> [u64; 4] {
    rows.iter()
        .find(|r| r["bridge"] == "trunk" && r["vlan"] == vlan)
        .map_or([0; 4], |r| {
            ["rx_packets", "rx_bytes", "tx_packets", "tx_bytes"]
                .map(|k| r[k].as_u64().expect("a number"))
        })
}

/// `GET /metrics` from the agent inside dom0.
fn scrape(sim: &SeedDom0) -> String {
    sim.dom0
        .run_in(|| {
            let mut s = TcpStream::connect("127.0.0.1:9417").expect("connecting to /metrics");
            s.set_read_timeout(Some(Duration::from_secs(10))).ok();
            s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
                .expect("request");
            let mut out = String::new();
            s.read_to_string(&mut out).expect("answer");
            out
        })
        .expect("in dom0")
}

fn metric(text: &str, name: &str, vlan: u64) -> u64 {
    let head = format!("{name}{{bridge=\"trunk\",vlan=\"{vlan}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&head))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {head} in the scrape:\n{text}"))
}

/// Frames per VLAN, exactly, in `stats --vlans` and `/metrics`.
fn per_vlan(w: &World) {
    let (g1, g2, g3) = (
        w.sim.guests[0].mac,
        w.sim.guests[1].mac,
        w.sim.guests[2].mac,
    );
    let before = w.vlans();
    // 5 frames guest 1 → guest 2 (VLAN 4094, untagged in and out), 3 frames upstream →
    // guest 3 (VLAN 4093, tagged in, popped out).
    let f94 = test_frame(g2, g1, &[], 100);
    let f93 = test_frame(g3, UPSTREAM_MAC, &[q_tag(4093)], 200);
    for _ in 0..5 {
        w.g[0].send(&f94).expect("send");
    }
    for _ in 0..3 {
        w.up.send(&f93).expect("send");
    }
    let (l94, l93) = (f94.len() as u64, f93.len() as u64);
    let want =
        |b: [u64; 4], add: [u64; 4]| [b[0] + add[0], b[1] + add[1], b[2] + add[2], b[3] + add[3]];
    let want94 = want(vlan_row(&before, 4094), [5, 5 * l94, 5, 5 * l94]);
    let want93 = want(vlan_row(&before, 4093), [3, 3 * l93, 3, 3 * (l93 - 4)]);
    let t0 = Instant::now();
    let after = loop {
        let a = w.vlans();
        if vlan_row(&a, 4094) == want94 && vlan_row(&a, 4093) == want93 {
            break a;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "per-VLAN counters: want 4094 {want94:?} and 4093 {want93:?}, have {a:?}"
        );
        thread::sleep(Duration::from_millis(100));
    };
    let text = scrape(&w.sim);
    for (vlan, row) in [
        (4094, vlan_row(&after, 4094)),
        (4093, vlan_row(&after, 4093)),
    ] {
        assert_eq!(metric(&text, "xennet_vlan_rx_packets_total", vlan), row[0]);
        assert_eq!(metric(&text, "xennet_vlan_rx_bytes_total", vlan), row[1]);
        assert_eq!(metric(&text, "xennet_vlan_tx_packets_total", vlan), row[2]);
        assert_eq!(metric(&text, "xennet_vlan_tx_bytes_total", vlan), row[3]);
    }
}

fn scenario(tag: &str, mode: Mode) {
    let mut w = World::new(tag, mode);
    let pin = w.fs.pin_dir();
    per_vlan(&w);

    // Off: the drops are counted, nothing is emitted.
    assert_eq!(switch(&pin).mode, 0, "the switch is off without a monitor");
    w.drops_emit_nothing(10, "monitor never started");

    // On: each drop with its reason, port, VLAN, MACs and ethertype; a forward is no drop.
    let m = Monitor::start(&w.sim, &pin, &["--json"]);
    let sent = w.send_drops(20);
    let g = (w.sim.guests[0].mac, w.sim.guests[1].mac);
    w.g[0].send(&test_frame(g.1, g.0, &[], 30)).expect("send");
    for x in &sent {
        let e = m.next();
        assert_eq!(e["verdict"], "drop", "{e}");
        assert_eq!(e["reason"], x.reason, "{e}");
        assert_eq!(e["port"], x.port, "{e}");
        assert_eq!(e["vlan"], x.vlan, "{e}");
        assert_eq!(e["src"], mac(x.src), "{e}");
        assert_eq!(e["dst"], mac(x.dst), "{e}");
        assert_eq!(e["ethertype"], format!("{ETH_P_TEST:#06x}"), "{e}");
        assert_eq!(e["len"], x.frame.len() as u64, "{e}");
    }
    let extra = m.rest(Duration::from_millis(500));
    assert!(extra.is_empty(), "only the drops: {extra:?}");
    assert!(m.stop(), "the monitor exits 0 on SIGTERM");
    assert_eq!(
        switch(&pin).mode,
        0,
        "the monitor clears the switch on exit"
    );
    w.drops_emit_nothing(40, "after the monitor exited");

    // A --port filter hides the other port's drops.
    let m = Monitor::start(&w.sim, &pin, &["--json", "--port", "vif2.0"]);
    w.send_drops(50);
    let e = m.next();
    assert_eq!(
        (e["port"].as_str(), e["reason"].as_str()),
        (Some("vif2.0"), Some("drop_static_mac")),
        "{e}"
    );
    let extra = m.rest(Duration::from_millis(500));
    assert!(
        extra.is_empty(),
        "--port vif2.0 shows nothing else: {extra:?}"
    );
    assert!(m.stop());

    // Killed with -9: the lease stays behind, runs out, and the datapath stops by itself.
    let m = Monitor::start(&w.sim, &pin, &["--json"]);
    m.kill9();
    assert_ne!(
        switch(&pin).mode,
        0,
        "a killed monitor cannot clear the switch"
    );
    thread::sleep(Duration::from_nanos(LEASE_NS) + Duration::from_millis(300));
    w.drops_emit_nothing(60, "after the lease of a monitor killed with -9 ran out");

    // The agent restarts under a running monitor: said on stderr, and the new programs'
    // drops still arrive (the ring is pinned).
    let m = Monitor::start(&w.sim, &pin, &["--json"]);
    w.restart_agent();
    m.said("the datapath's programs changed");
    let sent = w.send_drops(70);
    for x in &sent {
        let e = m.next();
        assert_eq!(
            (e["port"].as_str(), e["reason"].as_str()),
            (Some(x.port), Some(x.reason)),
            "{e}"
        );
    }
    assert!(m.stop());
}

#[test]
fn monitor_and_vlan_counters_xdp() {
    if !require_root() {
        return;
    }
    scenario("mon-x", Mode::Xdp);
}

#[test]
fn monitor_and_vlan_counters_tc() {
    if !require_root() {
        return;
    }
    scenario("mon-t", Mode::AllTc);
}
