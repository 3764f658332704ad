//! The datapath outlives the agent: kill -9, restart and `down`, with numbered frames flowing
//! (XDP and TC), and one agent per pin directory and per interface.

use std::{
    collections::BTreeMap,
    os::unix::net::UnixDatagram,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use aya::programs::{
    SchedClassifier, TcAttachType,
    links::{FdLink, PinnedLink},
};
use xennet_tests::{
    Netns,
    counters::get,
    frame::format_mac,
    liveflows::{G9, LiveFlows, assert_no_loss, g9_learned},
    require_root,
    topo::{Agent, BpfFs, Mode, SeedDom0, agent_bin, agent_command, workspace_root, xdp_attached},
};

/// Whether an xennet TC program is on `ifname`'s tcx ingress in `ns`.
fn tc_attached(ns: &Netns, ifname: &str) -> bool {
    let name = ifname.to_string();
    ns.run_in(move || {
        SchedClassifier::query_tcx(&name, TcAttachType::Ingress)
            .is_ok_and(|(_, progs)| progs.iter().any(|p| p.name_as_str() == Some("xennet_tc")))
    })
    .expect("querying tcx")
}

/// Every pinned link under `pin_dir`: pin name → (link id, program id).
fn links(pin_dir: &Path) -> BTreeMap<String, (u32, u32)> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(pin_dir)
        .expect("reading the pins")
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("link_") {
            continue;
        }
        let link = FdLink::from(PinnedLink::from_pin(e.path()).expect("opening a pinned link"));
        let info = link.info().expect("link info");
        out.insert(name, (info.id(), info.program_id()));
    }
    out
}

fn state_files(pin_dir: &Path) -> Vec<String> {
    let stem = pin_dir
        .to_string_lossy()
        .replace('%', "%25")
        .replace('/', "%2F");
    ["json", "lock"]
        .iter()
        .map(|e| format!("/run/xennet/state/{stem}.{e}"))
        .filter(|p| Path::new(p).exists())
        .collect()
}

/// kill -9 and a restart under a 1 kHz and a 10 kHz flow: no frame lost, the learned entry,
/// the run-time port and the counters kept; `down` then leaves nothing attached or pinned.
#[expect(clippy::too_many_lines, reason = "one story, start to finish")]
fn restart_loses_nothing(tag: &str, mode: Mode) {
    if !require_root() {
        return;
    }
    let sim = SeedDom0::new(tag).expect("building the simulated dom0");
    let fs = BpfFs::new(sim.dom0.name()).expect("mounting a bpffs");
    let cfg = mode.config(sim.dom0.name(), "").expect("config");
    let pins = fs.pin_dir();
    let agent = Agent::start(&sim.dom0, &cfg, &pins).expect("starting the agent");
    // A run-time port with a guest whose MAC is learned, not configured, and two flows.
    let LiveFlows {
        g9: _g9,
        slow,
        fast,
    } = LiveFlows::start(tag, &sim, &agent, mode);
    let before = agent.counters().expect("counters");
    let links_before = links(&pins);
    assert_eq!(
        links_before.len(),
        if mode == Mode::Xdp { 10 } else { 5 },
        "{links_before:?}"
    );

    agent.kill9().expect("kill -9");
    std::thread::sleep(Duration::from_millis(300));
    let probe = Agent::start(&sim.dom0, &cfg, &pins).expect("restart after kill -9");
    assert!(
        g9_learned(&probe),
        "the learned entry survives kill -9 and restart"
    );
    let ports = probe.ports().expect("ports");
    assert!(
        ports.iter().any(|p| p["interface"] == "vif9.0"),
        "the run-time port survives: {ports:?}"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(probe.leave_running().expect("SIGTERM"), "agent exits 0");
    // While it is down, stats and fdb show read the pinned maps and say so.
    let pins_s = pins.to_string_lossy().into_owned();
    let out = agent_command(
        &agent_bin().expect("bin"),
        &sim.dom0,
        &["stats", "--pin-dir", &pins_s],
    )
    .output()
    .expect("stats");
    assert!(out.status.success(), "stats while down: {out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the agent is down"),
        "stats says the agent is down: {out:?}"
    );
    let out = agent_command(
        &agent_bin().expect("bin"),
        &sim.dom0,
        &["fdb", "show", "--json", "--pin-dir", &pins_s],
    )
    .output()
    .expect("fdb show");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains(&format_mac(&G9)),
        "fdb show while down reads the pinned FDB: {out:?}"
    );

    let agent = Agent::start(&sim.dom0, &cfg, &pins).expect("second restart");
    std::thread::sleep(Duration::from_millis(200));
    let r_slow = slow.finish(Duration::from_millis(200)).expect("flow");
    let r_fast = fast.finish(Duration::from_millis(200)).expect("flow");
    assert_no_loss("1 kHz flow g1 → g2", &r_slow, 500);
    assert_no_loss("10 kHz flow g1 → g9", &r_fast, 2000);
    let after = agent.counters().expect("counters");
    // The same links, each now running the restarted agent's programs (swapped in place).
    let links_after = links(&pins);
    assert_eq!(links_after.len(), links_before.len(), "{links_after:?}");
    for (name, (link, prog)) in &links_before {
        let (link2, prog2) = links_after[name];
        assert_eq!(link2, *link, "{name}: the link itself is kept");
        assert_ne!(prog2, *prog, "{name}: the program is replaced");
    }
    for (port, counter) in [("vif1.0", "rx_packets"), ("vif9.0", "tx_packets")] {
        assert!(
            get(&after, port, counter) > get(&before, port, counter),
            "{port} {counter} continues: {} then {}",
            get(&before, port, counter),
            get(&after, port, counter)
        );
    }

    // `down` leaves nothing behind: no program on any port, no pins, no state.
    assert!(agent.stop().expect("stop"), "agent exits 0");
    for p in ["eth1", "vif1.0", "vif2.0", "vif3.0", "vif9.0"] {
        assert!(
            !tc_attached(&sim.dom0, p),
            "{p}: TC program left after down"
        );
        assert!(
            !xdp_attached(&sim.dom0, p).expect("ip link"),
            "{p}: XDP program left after down"
        );
    }
    assert!(
        !pins.exists(),
        "pin directory left after down: {:?}",
        std::fs::read_dir(&pins).map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
    );
    assert_eq!(
        state_files(&pins),
        Vec::<String>::new(),
        "state left after down"
    );
    let _ = std::fs::remove_file(&cfg);
}

#[test]
fn restart_loses_nothing_xdp() {
    restart_loses_nothing("lcx", Mode::Xdp);
}

#[test]
fn restart_loses_nothing_tc() {
    restart_loses_nothing("lct", Mode::AllTc);
}

/// A second agent: refused on the same pin directory (naming the first's pid), and on
/// another pin directory refused the interfaces the first one's datapath owns.
#[test]
fn one_agent_per_pin_dir_and_per_interface() {
    if !require_root() {
        return;
    }
    let sim = SeedDom0::new("lc1").expect("building the simulated dom0");
    let fs = BpfFs::new(sim.dom0.name()).expect("mounting a bpffs");
    let cfg = Mode::AllTc.config(sim.dom0.name(), "").expect("config");
    let first = Agent::start(&sim.dom0, &cfg, &fs.pin_dir()).expect("first agent");
    let other_sock = std::env::temp_dir().join("xennet-lc1-second.sock");
    let err = Agent::start_on(&sim.dom0, &cfg, &fs.pin_dir(), &other_sock)
        .expect_err("same pin_dir must be refused");
    let msg = format!("{err:#}");
    assert!(
        msg.contains(&format!("pid {}", first.pid())) && msg.contains("one agent per pin_dir"),
        "the refusal names the holder: {msg}"
    );
    let fs2 = BpfFs::new(&format!("{}-2", sim.dom0.name())).expect("second bpffs");
    let err = Agent::start_on(&sim.dom0, &cfg, &fs2.pin_dir(), &other_sock)
        .expect_err("another pin_dir on the same interfaces must be refused");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("already attached to another xennet datapath"),
        "the refusal says why: {msg}"
    );
    assert!(
        tc_attached(&sim.dom0, "vif1.0"),
        "the first agent's ports stay"
    );
    drop(first);
    let _ = std::fs::remove_file(&cfg);
}

/// The shipped unit file passes `systemd-analyze verify` without a warning (its `ExecStart`
/// pointed at the agent under test, so that the binary exists).
#[test]
fn systemd_unit_verifies() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: no systemd-analyze on this machine");
        return;
    }
    let bin = agent_bin().expect("agent binary");
    let unit = workspace_root().join("dist/systemd/xennet-agent.service");
    let text = std::fs::read_to_string(&unit).expect("reading the unit");
    assert!(
        text.contains("Type=notify")
            && text.contains("WatchdogSec=")
            && text.contains("Restart=always"),
        "the unit is a notify service with a watchdog, always restarted"
    );
    assert!(
        !text.contains("ExecStop="),
        "stopping must leave the datapath running"
    );
    let dir = std::env::temp_dir().join(format!("xennet-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("xennet-agent.service");
    let text = text.replace("/usr/local/sbin/xennet-agent", &bin.to_string_lossy());
    std::fs::write(&path, text).expect("writing the unit");
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("systemd-analyze");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success() && out.stderr.is_empty() && out.stdout.is_empty(),
        "systemd-analyze verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Under a `NOTIFY_SOCKET` (as systemd runs it) the agent sends `READY=1` once every port
/// is attached, `WATCHDOG=1` every half `WATCHDOG_USEC`, and `STOPPING=1` on SIGTERM.
#[test]
fn ready_and_watchdog_reach_the_notify_socket() {
    if !require_root() {
        return;
    }
    let sim = SeedDom0::new("lcn").expect("building the simulated dom0");
    let fs = BpfFs::new(sim.dom0.name()).expect("mounting a bpffs");
    let cfg = Mode::AllTc.config(sim.dom0.name(), "").expect("config");
    let dir = std::env::temp_dir().join(format!("xennet-notify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let notify = dir.join("notify");
    let rx = UnixDatagram::bind(&notify).expect("binding the notify socket");
    rx.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let (pins, ctl) = (fs.pin_dir(), dir.join("ctl.sock"));
    let bin = agent_bin().expect("agent binary");
    let args = [
        "run",
        "--config",
        &cfg.to_string_lossy(),
        "--pin-dir",
        &pins.to_string_lossy(),
        "--socket",
        &ctl.to_string_lossy(),
    ]
    .map(std::string::ToString::to_string);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut child = agent_command(&bin, &sim.dom0, &args)
        .env("NOTIFY_SOCKET", &notify)
        .env("WATCHDOG_USEC", "200000")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting the agent");
    let mut got: Vec<String> = Vec::new();
    let mut buf = [0u8; 512];
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        let Ok(n) = rx.recv(&mut buf) else { break };
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        let ready = got.iter().position(|m| m.lines().any(|l| l == "READY=1"));
        if ready.is_some_and(|i| got[i..].iter().any(|m| m.trim_end() == "WATCHDOG=1")) {
            break;
        }
    }
    let ports_ok = agent_command(
        &bin,
        &sim.dom0,
        &["ports", "--socket", &ctl.to_string_lossy()],
    )
    .output()
    .is_ok_and(|o| o.status.success());
    // SAFETY: signalling our own child (nsenter execs the agent).
    unsafe {
        libc::kill(
            libc::pid_t::try_from(child.id()).expect("pid"),
            libc::SIGTERM,
        )
    };
    let status = child.wait().expect("waiting for the agent");
    rx.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    while let Ok(n) = rx.recv(&mut buf) {
        let m = String::from_utf8_lossy(&buf[..n]).into_owned();
        let stop = m.lines().any(|l| l == "STOPPING=1");
        got.push(m);
        if stop {
            break;
        }
    }
    let down = agent_command(
        &bin,
        &sim.dom0,
        &[
            "down",
            "--pin-dir",
            &pins.to_string_lossy(),
            "--socket",
            &ctl.to_string_lossy(),
        ],
    )
    .output()
    .expect("down");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&cfg);
    assert!(status.success(), "agent exit status {status}");
    assert!(down.status.success(), "down: {down:?}");
    let ready = got
        .iter()
        .position(|m| m.lines().any(|l| l == "READY=1"))
        .unwrap_or_else(|| panic!("no READY=1 among {got:?}"));
    assert!(ports_ok, "the control socket answers once READY=1 came");
    assert!(
        got[ready..].iter().any(|m| m.trim_end() == "WATCHDOG=1"),
        "WATCHDOG=1 after READY=1: {got:?}"
    );
    assert!(
        got.iter().any(|m| m.lines().any(|l| l == "STOPPING=1")),
        "STOPPING=1 on SIGTERM: {got:?}"
    );
}
