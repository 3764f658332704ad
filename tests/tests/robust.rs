//! Robustness of the running agent against its clients and its operator: silent and flooding
//! control clients, a reload that fails half-way, a `port add` that cannot join, and a file in
//! the way of the control socket. Real agent, real namespaces, real frames.
#![allow(clippy::too_many_lines, reason = "scenario tests")]

use std::{
    collections::BTreeSet,
    io::{BufRead as _, BufReader, Read as _, Write as _},
    os::unix::net::{UnixListener, UnixStream},
    path::Path,
    process::Output,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use xennet_tests::{
    Netns,
    bed::Bed,
    fdb::fdb_entry,
    flow::Flow,
    frame::{BROADCAST, Mac, format_mac, test_frame},
    require_root,
    topo::{Agent, BpfFs},
    veth,
    wait::poll,
};

fn mac(last: u8) -> Mac {
    [0x02, 0x52, 0, 0, 0, last]
}

fn assert_ok(out: &Output, what: &str, bed: &Bed) {
    assert!(
        out.status.success(),
        "{what} failed: {}\nagent log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        bed.agent.log_text()
    );
}

fn assert_failed(out: &Output, what: &str, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "{what}: succeeded, must fail; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    for n in needles {
        assert!(
            stderr.contains(n),
            "{what}: stderr does not say {n:?}: {stderr}"
        );
    }
    eprintln!("{what}: {}", stderr.trim());
}

// ---------------------------------------------------------------------------
// 6. Control clients cannot stall the agent
// ---------------------------------------------------------------------------

/// Clients that misbehave on the control socket until stopped, each in a thread that
/// reconnects as soon as the agent closes on it: `silent` that connect and send nothing, one
/// that sends half a request and stalls, one that streams bytes without end.
struct Pests {
    stop: Arc<AtomicBool>,
    connected: Arc<AtomicUsize>,
    threads: Vec<JoinHandle<()>>,
}

impl Pests {
    fn start(socket: &Path, silent: usize) -> Pests {
        let stop = Arc::new(AtomicBool::new(false));
        let connected = Arc::new(AtomicUsize::new(0));
        let mut threads = Vec::new();
        for kind in (0..silent).map(|_| "silent").chain(["half", "endless"]) {
            let (stop, connected, socket) = (
                Arc::clone(&stop),
                Arc::clone(&connected),
                socket.to_path_buf(),
            );
            threads.push(std::thread::spawn(move || {
                let mut first = true;
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut s) = UnixStream::connect(&socket) else {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    };
                    if first {
                        connected.fetch_add(1, Ordering::Relaxed);
                        first = false;
                    }
                    let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
                    let _ = s.set_write_timeout(Some(Duration::from_millis(100)));
                    match kind {
                        "half" => {
                            let _ = s.write_all(b"{\"cmd\":");
                        }
                        "endless" => {
                            let chunk = [b'x'; 4096];
                            while !stop.load(Ordering::Relaxed) {
                                match s.write(&chunk) {
                                    Ok(_) => {}
                                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                                    Err(_) => break,
                                }
                            }
                            continue;
                        }
                        _ => {}
                    }
                    // Hold the connection until the agent closes it.
                    let mut buf = [0u8; 1024];
                    while !stop.load(Ordering::Relaxed) {
                        match s.read(&mut buf) {
                            Ok(0) => break,
                            Ok(_) => {}
                            Err(e)
                                if matches!(
                                    e.kind(),
                                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                                ) => {}
                            Err(_) => break,
                        }
                    }
                }
            }));
        }
        Pests {
            stop,
            connected,
            threads,
        }
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Send `bytes` on a new connection (in a thread, whatever the agent reads of it) and return
/// the agent's answer line.
fn raw_request(socket: &Path, bytes: Vec<u8>) -> String {
    let s = UnixStream::connect(socket).expect("connecting");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut w = s.try_clone().expect("clone");
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&bytes);
    });
    let mut line = String::new();
    let _ = BufReader::new(&s).read_line(&mut line);
    drop(s);
    let _ = writer.join();
    line
}

#[test]
fn silent_and_flooding_clients_stall_nothing() {
    if !require_root() {
        return;
    }
    let (m1, m2, roamer) = (mac(1), mac(2), mac(0x51));
    let bed = Bed::new(
        "rb-cl",
        &[("vif1", m1), ("vif2", m2)],
        &[],
        "[[bridge]]\nname = \"br\"\nfdb_aging_secs = 1\n\n\
         [[bridge.port]]\ninterface = \"vif1\"\naccess = 10\n\n\
         [[bridge.port]]\ninterface = \"vif2\"\naccess = 10\n",
    );
    let pests = Pests::start(bed.agent.socket(), 8);
    let (n, _) = poll(
        Duration::from_secs(5),
        Duration::from_millis(10),
        || pests.connected.load(Ordering::Relaxed),
        |n| *n == 10,
    );
    assert_eq!(n, 10, "every pest connected");
    // Let the agent take them all in (on main, it now serves them one after another).
    std::thread::sleep(Duration::from_millis(100));

    // Reads answer promptly, again and again.
    let mut slowest = Duration::ZERO;
    for _ in 0..3 {
        for args in [&["ports"][..], &["fdb", "show"]] {
            let t = Instant::now();
            let out = bed.ctl(args);
            let took = t.elapsed();
            assert_ok(&out, &format!("{args:?}"), &bed);
            slowest = slowest.max(took);
        }
        let t = Instant::now();
        bed.agent.counters().expect("stats");
        slowest = slowest.max(t.elapsed());
    }
    eprintln!("slowest of ports / fdb show / stats with 10 pests: {slowest:?}");
    assert!(
        slowest < Duration::from_secs(1),
        "a read took {slowest:?} with silent clients connected"
    );

    // The datapath learns and the agent ages, pests or not.
    let g1 = bed.socket("vif1");
    g1.send(&test_frame(BROADCAST, roamer, &[], 1))
        .expect("sending");
    let learned = fdb_entry(roamer, 10, "vif1", false);
    let (fdb, _) = poll(
        Duration::from_secs(2),
        Duration::from_millis(50),
        || bed.fdb(),
        |f| f.contains(&learned),
    );
    assert!(fdb.contains(&learned), "roamer learned: {fdb:?}");
    let (fdb, took) = poll(
        Duration::from_secs(4),
        Duration::from_millis(100),
        || bed.fdb(),
        |f| !f.contains(&learned),
    );
    assert!(!fdb.contains(&learned), "roamer aged out: {fdb:?}");
    eprintln!("aged out after {took:?} (aging 1 s)");

    // An oversized request gets a clear error.
    let answer = raw_request(bed.agent.socket(), vec![b'x'; 1 << 20]);
    assert!(
        answer.contains("\"ok\":false") && answer.contains("request too large"),
        "answer to 1 MiB of request: {answer:?}"
    );
    // Half a request, then silence: a timeout, said so.
    let answer = raw_request(bed.agent.socket(), b"{\"cmd\":".to_vec());
    assert!(
        answer.contains("no complete request within"),
        "answer to half a request: {answer:?}"
    );

    // A state change goes through too, in order with the pests around.
    let out = bed.ctl(&["reload"]);
    assert_ok(&out, "reload", &bed);
    pests.stop();
    assert_eq!(
        bed.port_names(),
        ["vif1", "vif2"].map(String::from).into(),
        "ports after the pests"
    );
}

// ---------------------------------------------------------------------------
// 8. A failed reload changes nothing
// ---------------------------------------------------------------------------

#[test]
fn a_failed_reload_changes_nothing() {
    if !require_root() {
        return;
    }
    let (m1, m2, m3, m4) = (mac(1), mac(2), mac(3), mac(4));
    let (s3, s2) = (format_mac(&mac(0x33)), format_mac(&mac(0x22)));
    let port = |vif: &str, vlan: u16, extra: &str| {
        format!("[[bridge.port]]\ninterface = \"{vif}\"\naccess = {vlan}\n{extra}\n")
    };
    let rule = port("vif9*", 10, "");
    let v1 = format!(
        "[[bridge]]\nname = \"br\"\n\n{}{}{}{}{rule}",
        port("vif1", 10, ""),
        port("vif2", 10, ""),
        port("vif3", 20, &format!("macs = [\"{s3}\"]")),
        port("vif4", 20, ""),
    );
    let bed = Bed::new(
        "rb-rl",
        &[("vif1", m1), ("vif2", m2), ("vif3", m3), ("vif4", m4)],
        &[
            &[
                "ip",
                "link",
                "add",
                "nx0",
                "type",
                "bridge",
                "mcast_snooping",
                "0",
            ],
            &["ip", "link", "set", "nx0", "up"],
            &[
                "ip",
                "link",
                "add",
                "nx1",
                "type",
                "bridge",
                "mcast_snooping",
                "0",
            ],
            &["ip", "link", "set", "nx1", "up"],
        ],
        &v1,
    );
    let ports = bed.ports();
    let statics = bed.statics();
    assert_eq!(statics, [fdb_entry(mac(0x33), 20, "vif3", true)].into());

    let flow = Flow::start(bed.socket("vif1"), bed.socket("vif2"), m2, m1, 1000, 0);
    // A station learned on vif4, which the failed reload was to remove.
    bed.socket("vif4")
        .send(&test_frame(BROADCAST, mac(0x44), &[], 1))
        .expect("sending");
    let want = [
        fdb_entry(m1, 10, "vif1", false),
        fdb_entry(mac(0x44), 20, "vif4", false),
        fdb_entry(mac(0x33), 20, "vif3", true),
    ]
    .into();
    let (fdb, _) = poll(
        Duration::from_secs(2),
        Duration::from_millis(20),
        || bed.fdb(),
        |f| *f == want,
    );
    assert_eq!(fdb, want, "the FDB before the reload");

    // vif3 to VLAN 30, a static MAC on vif2, vif4 gone, nx1 added (attaches), nx0 added
    // in native XDP, which a Linux bridge device does not have: the reload fails.
    let v2 = format!(
        "[[bridge]]\nname = \"br\"\n\n{}{}{}{}{}{rule}",
        port("nx0", 10, "attach = \"xdp\""),
        port("nx1", 10, "attach = \"tc\""),
        port("vif1", 10, ""),
        port("vif2", 10, &format!("macs = [\"{s2}\"]")),
        port("vif3", 30, &format!("macs = [\"{s3}\"]")),
    );
    std::fs::write(&bed.cfg, &v2).expect("writing the config");
    let out = bed.ctl(&["reload"]);
    assert!(
        !out.status.success(),
        "the reload with nx0 in native XDP must fail"
    );
    assert_eq!(bed.ports(), ports, "ports after the failed reload");
    assert_eq!(
        bed.statics(),
        statics,
        "static MACs after the failed reload"
    );
    assert_eq!(bed.fdb(), fdb, "the FDB after the failed reload");
    assert_failed(
        &out,
        "reload with nx0 in native XDP",
        &["nx0", "nothing changed"],
    );

    std::thread::sleep(Duration::from_millis(300));
    let r = flow.finish(Duration::from_millis(200)).expect("flow");
    eprintln!("flow vif1 → vif2 across the failed reload: {r:?}");
    assert!(r.sent > 250, "the flow ran: {r:?}");
    assert!(
        r.missing.is_empty() && r.duplicates == 0,
        "frames lost or duplicated across the failed reload: {r:?}"
    );

    // A link event resolves the same configuration again: only the new vif joins.
    bed.dom0
        .exec_ok(&[
            "ip", "link", "add", "vif9", "type", "veth", "peer", "name", "x9",
        ])
        .expect("vif9");
    bed.dom0
        .exec_ok(&["ip", "link", "set", "vif9", "up"])
        .expect("vif9 up");
    let (names, _) = poll(
        Duration::from_secs(5),
        Duration::from_millis(50),
        || bed.port_names(),
        |n| n.contains("vif9"),
    );
    assert!(names.contains("vif9"), "vif9 joined: {names:?}");
    let without_vif9: BTreeSet<String> = bed
        .ports()
        .into_iter()
        .filter(|p| !p.starts_with("\"vif9\""))
        .collect();
    assert_eq!(without_vif9, ports, "ports after a link event");
    assert_eq!(bed.statics(), statics, "static MACs after a link event");

    // Without the port that cannot attach, the same reload goes through.
    let v3 = v2.replace("attach = \"xdp\"", "attach = \"tc\"");
    std::fs::write(&bed.cfg, &v3).expect("writing the config");
    let out = bed.ctl(&["reload"]);
    assert_ok(&out, "reload", &bed);
    assert_eq!(
        bed.port_names(),
        ["nx0", "nx1", "vif1", "vif2", "vif3", "vif9"]
            .map(String::from)
            .into(),
        "ports after the good reload"
    );
    assert_eq!(
        bed.statics(),
        [
            fdb_entry(mac(0x22), 10, "vif2", true),
            fdb_entry(mac(0x33), 30, "vif3", true)
        ]
        .into()
    );
}

// ---------------------------------------------------------------------------
// 9. `port add` that cannot join fails and changes nothing
// ---------------------------------------------------------------------------

#[test]
fn port_add_with_another_mtu_fails_and_changes_nothing() {
    if !require_root() {
        return;
    }
    let bed = Bed::new(
        "rb-mt",
        &[("vif1", mac(1)), ("vif2", mac(2)), ("vif7", mac(7))],
        &[&["ip", "link", "set", "vif7", "mtu", "9000"]],
        "[[bridge]]\nname = \"br\"\n\n\
         [[bridge.port]]\ninterface = \"vif1\"\naccess = 10\n\n\
         [[bridge.port]]\ninterface = \"vif2\"\naccess = 10\n",
    );
    let ports = bed.ports();
    let out = bed.ctl(&["port", "add", "vif7", "--bridge", "br", "--access", "10"]);
    assert_failed(
        &out,
        "port add vif7 (MTU 9000)",
        &["vif7", "MTU 9000", "nothing changed"],
    );
    assert_eq!(bed.ports(), ports, "ports after the refused port add");
    // Nothing recorded: reloads go on working, and there is nothing to delete.
    let out = bed.ctl(&["reload"]);
    assert_ok(&out, "reload after the refused port add", &bed);
    assert_eq!(bed.ports(), ports, "ports after the reload");
    let out = bed.ctl(&["port", "del", "vif7"]);
    assert_failed(&out, "port del vif7", &["not a port added with `port add`"]);
    // With the MTU of the bridge, the same request joins.
    bed.dom0
        .exec_ok(&["ip", "link", "set", "vif7", "mtu", "1500"])
        .expect("MTU");
    let out = bed.ctl(&["port", "add", "vif7", "--bridge", "br", "--access", "10"]);
    assert_ok(&out, "port add vif7 (MTU 1500)", &bed);
    assert!(bed.port_names().contains("vif7"));
}

// ---------------------------------------------------------------------------
// 10. Only a stale socket is replaced
// ---------------------------------------------------------------------------

#[test]
fn only_a_stale_socket_is_replaced() {
    if !require_root() {
        return;
    }
    let dom0 = Netns::new("rb-so-d0").expect("dom0");
    let g = Netns::new("rb-so-g").expect("guest");
    veth(&dom0, "vif1", &g, "eth0").expect("veth");
    let fs = BpfFs::new(dom0.name()).expect("bpffs");
    let cfg = std::env::temp_dir().join(format!("xennet-{}.toml", dom0.name()));
    std::fs::write(
        &cfg,
        "[[bridge]]\nname = \"br\"\n\n[[bridge.port]]\ninterface = \"vif1\"\naccess = 10\n",
    )
    .expect("config");
    let socket = Agent::socket_for(&dom0);

    // A regular file where the socket goes: refused, and left alone.
    std::fs::write(&socket, "not yours").expect("file");
    let e = format!(
        "{:#}",
        Agent::start(&dom0, &cfg, &fs.pin_dir()).expect_err("a file at the socket path")
    );
    assert!(e.contains("is a regular file, not a socket"), "{e}");
    assert_eq!(
        std::fs::read_to_string(&socket).expect("the file is still there"),
        "not yours"
    );
    std::fs::remove_file(&socket).expect("removing the file");

    // A stale socket (nobody listens): replaced.
    drop(UnixListener::bind(&socket).expect("binding"));
    let agent = Agent::start(&dom0, &cfg, &fs.pin_dir()).expect("starting over a stale socket");
    assert!(agent.ports().expect("ports").len() == 1);
    drop(agent);
    let _ = std::fs::remove_file(&cfg);
}
