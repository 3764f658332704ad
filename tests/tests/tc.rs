//! The TC datapath as xen-netback needs it: GSO frames cross TC ports whole, and bridges
//! keep their ports' MTUs in agreement (jumbo frames in XDP and TC alike).

use std::time::Duration;

use xennet_tests::{
    capture::QUIET,
    counters,
    output::assert_ok,
    require_root,
    topo::{Agent, BpfFs, Mode, SeedDom0, start_seed},
};

/// Start the seed setup in `mode` with `extra` lines on the bridge.
fn start(tag: &str, mode: Mode, extra: &str) -> (SeedDom0, BpfFs, Agent) {
    start_seed(tag, mode, extra).expect("starting the seed setup")
}

/// One counter of `port`, now.
fn counter(agent: &Agent, port: &str, name: &str) -> u64 {
    counters::get(&agent.counters().expect("stats"), port, name)
}

/// A guest's TCP stream (TSO on, as netfront offers it) crosses two TC ports as GSO skbs:
/// the receiving guest sees frames far larger than the MTU, and the datapath forwarded fewer
/// skbs than the wire would have carried segments.
#[test]
fn gso_frames_cross_tc_ports_whole() {
    if !require_root() {
        return;
    }
    let (sim, _fs, agent) = start("gso", Mode::VifsTc, "");
    let g1 = &sim.guests[0];
    let g2 = &sim.guests[1];
    for g in [g1, g2] {
        g.ns.exec_ok(&[
            "ethtool", "-K", "eth0", "tso", "on", "gso", "on", "gro", "on",
        ])
        .expect("ethtool");
    }
    let rx = sim.guest_socket("vif2.0").expect("socket on g2");
    // A TCP sink on g2 and 8 MiB of data from g1.
    let server = g2
        .ns
        .spawn(&[
            "python3",
            "-c",
            "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
             s.bind(('0.0.0.0',5201))\ns.listen(1)\nc,_=s.accept()\nn=0\n\
             while True:\n d=c.recv(1<<20)\n if not d: break\n n+=len(d)\nprint(n)",
        ])
        .expect("server");
    std::thread::sleep(Duration::from_millis(300));
    let before = agent.counters().expect("stats");
    let out = g1
        .ns
        .exec(&[
            "python3",
            "-c",
            "import socket\nc=socket.create_connection(('10.94.0.2',5201),timeout=10)\n\
             c.sendall(b'x'*(8<<20))\nc.close()",
        ])
        .expect("client");
    assert_ok(&out, "TCP transfer through TC ports", &agent.log_text());
    let mut server = server;
    let _ = server.wait();
    let frames = rx.collect(QUIET).expect("collect");
    let big = frames.iter().filter(|f| f.len() > 1514).count();
    let biggest = frames.iter().map(Vec::len).max().unwrap_or(0);
    let d = counters::delta(&before, &agent.counters().expect("stats"));
    let forwarded = counters::at(&d, "vif1.0", "forward");
    eprintln!(
        "GSO: {} frames seen on g2, {big} larger than 1514 bytes (largest {biggest}); \
         vif1.0 forwarded {forwarded} skbs for 8 MiB",
        frames.len()
    );
    assert!(
        big > 0,
        "no frame above the MTU reached g2: GSO was not preserved"
    );
    // 8 MiB in MTU-sized segments would be > 5700 frames.
    assert!(
        forwarded < 5000,
        "{forwarded} skbs forwarded for 8 MiB: the stream was segmented before TC"
    );
}

/// Ports with different MTUs are refused with a clear message; `mtu` on the bridge sets
/// them all, and jumbo frames then cross in XDP and in TC.
#[test]
fn mtu_mismatch_refused_and_jumbo_frames_cross() {
    if !require_root() {
        return;
    }
    // Mismatch: raise one vif's MTU by hand.
    let sim = SeedDom0::new("mtu").expect("sim");
    let fs = BpfFs::new(sim.dom0.name()).expect("bpffs");
    sim.dom0
        .exec_ok(&["ip", "link", "set", "vif2.0", "mtu", "9000"])
        .expect("mtu");
    let cfg = Mode::Xdp.config(sim.dom0.name(), "").expect("config");
    let err = Agent::start(&sim.dom0, &cfg, &fs.pin_dir()).expect_err("must refuse");
    let _ = std::fs::remove_file(&cfg);
    let msg = format!("{err:#}");
    assert!(
        msg.contains("different MTUs") && msg.contains("vif2.0 has MTU 9000, the bridge 1500"),
        "unclear MTU error: {msg}"
    );
    drop(fs);
    drop(sim);

    for (tag, mode) in [("jumboxdp", Mode::Xdp), ("jumbotc", Mode::VifsTc)] {
        let (sim, _fs, agent) = start(tag, mode, "mtu = 9000");
        for p in ["eth1", "vif1.0", "vif2.0", "vif3.0"] {
            let o = sim
                .dom0
                .exec_ok(&["ip", "link", "show", p])
                .expect("ip link");
            assert!(
                String::from_utf8_lossy(&o.stdout).contains("mtu 9000"),
                "{mode:?}: {p} MTU not set to 9000"
            );
        }
        for g in &sim.guests[..2] {
            g.ns.exec_ok(&["ip", "link", "set", "eth0", "mtu", "9000"])
                .expect("guest mtu");
        }
        let out = sim.guests[0]
            .ns
            .exec(&[
                "ping",
                "-c",
                "2",
                "-i",
                "0.2",
                "-W",
                "1",
                "-M",
                "do",
                "-s",
                "8000",
                "10.94.0.2",
            ])
            .expect("ping");
        assert_ok(
            &out,
            &format!("{mode:?}: 8000-byte ping"),
            &agent.log_text(),
        );
        assert!(
            counter(&agent, "vif1.0", "forward") >= 2,
            "{mode:?}: not forwarded by xennet"
        );
    }
}
