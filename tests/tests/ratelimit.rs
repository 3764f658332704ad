//! Bandwidth limits with real traffic: iperf3 TCP and UDP through a limited vif land within
//! ±10 % of the limit (10 Mbit/s, 100 Mbit/s, 1 Gbit/s), both directions, with the uplink in
//! native XDP, with everything in XDP and with everything in TC; TCP holds a steady rate; a
//! second guest is not slowed; refused frames are counted; reloads change and remove a limit;
//! the limit holds while the agent is away and survives its adoption.
//!
//! ```text
//!   [up] eth0 10.50.0.254 ──── eth1 [dom0] vif1.0 ──── eth0 [g1] 10.50.0.1  (limited)
//!                                          vif2.0 ──── eth0 [g2] 10.50.0.2  (not limited)
//! ```
//! All three ports are access ports of VLAN 10 (untagged frames: iperf3 needs no VLAN device).
//!
//! Throughput depends on the machine's load: the phases that measure it take one lock, so
//! the tests of this file never measure at the same time, and a case out of its band is
//! measured again (up to [`ATTEMPTS`] times) before it fails; every measurement is printed.

use std::{path::PathBuf, process::Child, sync::Mutex, time::Duration};

use serde_json::Value;
use xennet_tests::{
    Netns, add_addr, counters, require_root, set_gro,
    topo::{Agent, BpfFs, dom0_and_upstream},
    veth,
};

/// Serialises the throughput measurements of this file's tests.
static MEASURING: Mutex<()> = Mutex::new(());

/// Tries per case before a rate out of its band fails the test.
const ATTEMPTS: usize = 3;

/// Every second of a TCP run within these fractions of the limit: steady, never near zero. A
/// policer lets TCP through in bursts (a refused GSO frame loses 44 segments at once, and
/// the bucket refills while TCP recovers), so single seconds vary more than the mean.
const STEADY_LOW: f64 = 0.5;
const STEADY_HIGH: f64 = 1.6;

/// Seconds measured per iperf3 run (after one omitted second of warm-up).
const SECONDS: &str = "3";

const UP_IP: &str = "10.50.0.254";

/// UDP datagram payload the tests send, and the Ethernet frame it makes (IPv4, UDP, Ethernet
/// headers).
const UDP_PAYLOAD: f64 = 1400.0;
const UDP_FRAME: f64 = 1400.0 + 8.0 + 20.0 + 14.0;

/// How the ports are attached.
#[derive(Clone, Copy, Debug)]
enum Modes {
    /// Uplink native XDP, vifs TC (xen-netback's vifs have no native XDP).
    XdpUplink,
    /// Everything TC.
    Tc,
    /// Everything native XDP (veth vifs can take XDP redirects; xen-netback's cannot).
    Xdp,
}

impl Modes {
    fn attach(self) -> (&'static str, &'static str) {
        match self {
            Modes::XdpUplink => ("xdp", "tc"),
            Modes::Tc => ("tc", "tc"),
            Modes::Xdp => ("xdp", "xdp"),
        }
    }
}

/// The topology with a running agent. Fields drop in order: agent, bpffs, namespaces.
struct Bed {
    /// `None` only while an agent is being replaced.
    agent: Option<Agent>,
    fs: BpfFs,
    cfg: PathBuf,
    mode: Modes,
    _servers: Vec<Child>,
    g1: Netns,
    g2: Netns,
    _up: Netns,
    dom0: Netns,
}

impl Drop for Bed {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.cfg);
    }
}

/// The configuration with `vif1.0` limited by `limit` (`rate = …` and `burst = …` lines).
fn config(mode: Modes, limit: &str) -> String {
    let (uplink, vif) = mode.attach();
    format!(
        "[agent]\nmetrics = \"off\"\n\n[[bridge]]\nname = \"lan\"\n\n\
         [[bridge.port]]\ninterface = \"eth1\"\naccess = 10\nattach = \"{uplink}\"\n\n\
         [[bridge.port]]\ninterface = \"vif1.0\"\naccess = 10\nattach = \"{vif}\"\n{limit}\n\n\
         [[bridge.port]]\ninterface = \"vif2.0\"\naccess = 10\nattach = \"{vif}\"\n"
    )
}

fn rate_lines(rate: &str) -> String {
    format!("rate = \"{rate}\"")
}

impl Bed {
    fn agent(&self) -> &Agent {
        self.agent.as_ref().expect("an agent")
    }

    fn new(tag: &str, mode: Modes, limit: &str) -> Bed {
        let (dom0, up) = dom0_and_upstream(tag, None).expect("dom0 and upstream");
        add_addr(&up, "eth0", &format!("{UP_IP}/24")).expect("upstream address");
        let g1 = Netns::new(&format!("{tag}-g1")).expect("g1");
        let g2 = Netns::new(&format!("{tag}-g2")).expect("g2");
        for (g, vif, ip) in [(&g1, "vif1.0", "10.50.0.1"), (&g2, "vif2.0", "10.50.0.2")] {
            veth(&dom0, vif, g, "eth0").expect("vif");
            set_gro(g, "eth0", true).expect("gro");
            add_addr(g, "eth0", &format!("{ip}/24")).expect("guest address");
        }
        if matches!(mode, Modes::Xdp) {
            // An XDP redirect loses CHECKSUM_PARTIAL (docs/attach-modes.md, "dom0's
            // checksums"): the senders fill their checksums in themselves.
            for ns in [&g1, &g2, &up] {
                ns.exec_ok(&["ethtool", "-K", "eth0", "tx", "off"])
                    .expect("tx checksum offload off");
            }
        }
        let fs = BpfFs::new(dom0.name()).expect("bpffs");
        let cfg = std::env::temp_dir().join(format!("xennet-{}.toml", dom0.name()));
        std::fs::write(&cfg, config(mode, limit)).expect("config");
        let agent = Agent::start(&dom0, &cfg, &fs.pin_dir()).expect("agent");
        // One iperf3 server per guest, on the upstream switch.
        let servers = ["5201", "5202"]
            .iter()
            .map(|p| {
                up.spawn(&["iperf3", "-s", "-p", p, "--logfile", "/dev/null"])
                    .expect("iperf3 server")
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        for g in [&g1, &g2] {
            let out = g.ping(UP_IP).expect("ping");
            assert!(
                out.status.success(),
                "guest cannot reach the upstream: {out:?}"
            );
        }
        Bed {
            agent: Some(agent),
            fs,
            cfg,
            mode,
            _servers: servers,
            g1,
            g2,
            _up: up,
            dom0,
        }
    }

    /// Rewrite the configuration with `limit` on `vif1.0` and reload.
    fn set_limit(&self, limit: &str) {
        std::fs::write(&self.cfg, config(self.mode, limit)).expect("config");
        let out = self.agent().ctl(&["reload"]).expect("reload");
        assert!(
            out.status.success(),
            "reload failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.agent().log_text()
        );
    }

    /// What `ports --json` says `vif1.0` enforces.
    fn shown_rate(&self) -> Value {
        self.agent()
            .ports()
            .expect("ports")
            .into_iter()
            .find(|p| p["interface"] == "vif1.0")
            .expect("vif1.0 in ports")["rate"]
            .clone()
    }

    fn drops(&self, port: &str) -> u64 {
        counters::get(
            &self.agent().counters().expect("stats"),
            port,
            "drop_rate_limit",
        )
    }
}

/// One iperf3 run's result.
#[derive(Debug)]
struct Run {
    /// Received bits per second over the measured seconds.
    bps: f64,
    /// Per-second rates (TCP), omitted warm-up excluded.
    intervals: Vec<f64>,
    /// UDP: datagrams sent and lost.
    packets: u64,
    lost: u64,
}

/// iperf3 from `ns` to the upstream's server on `port`; `reverse`: the server sends;
/// `udp_bps`: UDP at that offered rate instead of TCP.
fn iperf(ns: &Netns, port: &str, reverse: bool, udp_bps: Option<u64>) -> Run {
    let offered = udp_bps.map(|b| b.to_string());
    let mut args = vec![
        "iperf3", "-c", UP_IP, "-p", port, "-t", SECONDS, "-O", "1", "-i", "1", "-J",
    ];
    if reverse {
        args.push("-R");
    }
    if let Some(b) = &offered {
        args.extend(["-u", "-b", b, "-l", "1400"]);
    }
    let out = ns.exec(&args).expect("iperf3");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "iperf3 output is not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(v.get("error").is_none(), "iperf3 failed: {}", v["error"]);
    let recv = &v["end"]["sum_received"];
    let f = |x: &Value| x.as_f64().unwrap_or(0.0);
    let u = |x: &Value| x.as_u64().unwrap_or(0);
    let intervals = v["intervals"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|i| i["sum"]["omitted"] != true)
                .map(|i| f(&i["sum"]["bits_per_second"]))
                .collect()
        })
        .unwrap_or_default();
    if udp_bps.is_some() {
        // The limit counts Ethernet frames: a 1400-byte datagram is a 1442-byte frame.
        Run {
            bps: f(&recv["bits_per_second"]) * UDP_FRAME / UDP_PAYLOAD,
            intervals,
            packets: u(&recv["packets"]),
            lost: u(&recv["lost_packets"]),
        }
    } else {
        Run {
            bps: f(&recv["bits_per_second"]),
            intervals,
            packets: 0,
            lost: 0,
        }
    }
}

/// Measure with `run` until its rate lands within ±10 % of `limit` (and, for TCP, every
/// second within [`STEADY_LOW`]..[`STEADY_HIGH`] of it — no collapse), at most [`ATTEMPTS`] times; the last run.
fn within(what: &str, limit: f64, tcp: bool, mut run: impl FnMut() -> Run) -> Run {
    let mut last = None;
    for attempt in 1..=ATTEMPTS {
        let r = run();
        let ratio = r.bps / limit;
        let steady = !tcp
            || r.intervals
                .iter()
                .all(|i| (STEADY_LOW..=STEADY_HIGH).contains(&(i / limit)));
        eprintln!(
            "{what}: {:.1} Mbit/s = {ratio:.3} of the limit, per second {:?}{} (attempt \
             {attempt})",
            r.bps / 1e6,
            r.intervals
                .iter()
                .map(|i| (i / 1e6).round())
                .collect::<Vec<_>>(),
            if tcp { "" } else { " (UDP)" }
        );
        if (0.9..=1.1).contains(&ratio) && steady {
            return r;
        }
        last = Some(r);
    }
    let r = last.expect("at least one attempt");
    panic!(
        "{what}: {:.1} Mbit/s against a limit of {:.1} Mbit/s (per second: {:?}) in \
         {ATTEMPTS} attempts",
        r.bps / 1e6,
        limit / 1e6,
        r.intervals
    );
}

/// The unlimited TCP rate from `ns` (best of two runs).
fn unlimited(ns: &Netns, port: &str) -> f64 {
    (0..2)
        .map(|_| iperf(ns, port, false, None).bps)
        .fold(0.0, f64::max)
}

/// Every limit, both directions, TCP and UDP, through `bed`; then a second guest alongside.
fn limits_hold(bed: &Bed, name: &str) {
    let _lock = MEASURING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let base = unlimited(&bed.g1, "5201");
    eprintln!(
        "{name}: unlimited TCP g1 -> upstream {:.0} Mbit/s",
        base / 1e6
    );
    // What one iperf3 UDP sender carries here without a limit, each way (offered 2 Gbit/s).
    let udp_base =
        [false, true].map(|reverse| iperf(&bed.g1, "5201", reverse, Some(2_000_000_000)).bps);
    eprintln!(
        "{name}: unlimited UDP g1 -> upstream {:.0} Mbit/s, upstream -> g1 {:.0} Mbit/s",
        udp_base[0] / 1e6,
        udp_base[1] / 1e6
    );
    for (rate, bps) in [("10Mbit", 10e6), ("100Mbit", 100e6), ("1Gbit", 1e9)] {
        if base < bps * 1.3 {
            eprintln!(
                "{name}: {rate} not measured: this machine carries only {:.0} Mbit/s \
                 through the datapath without a limit",
                base / 1e6
            );
            continue;
        }
        bed.set_limit(&rate_lines(rate));
        let shown = bed.shown_rate();
        assert!(
            shown.as_str().is_some_and(|s| s.starts_with(rate)),
            "ports shows {shown} for a limit of {rate}"
        );
        for reverse in [false, true] {
            let dir = if reverse {
                "upstream -> g1"
            } else {
                "g1 -> upstream"
            };
            within(&format!("{name} {rate} TCP {dir}"), bps, true, || {
                iperf(&bed.g1, "5201", reverse, None)
            });
            if udp_base[usize::from(reverse)] < bps * 1.3 {
                eprintln!(
                    "{name}: {rate} UDP {dir} not measured: one iperf3 UDP sender carries only \
                     {:.0} Mbit/s here without a limit",
                    udp_base[usize::from(reverse)] / 1e6
                );
                continue;
            }
            let before = bed.drops("vif1.0");
            #[expect(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "rates"
            )]
            let offered = (bps * 1.5) as u64;
            let r = within(&format!("{name} {rate} UDP {dir}"), bps, false, || {
                iperf(&bed.g1, "5201", reverse, Some(offered))
            });
            let dropped = bed.drops("vif1.0") - before;
            assert!(
                dropped > 0 && r.lost > 0,
                "{name} {rate} UDP {dir}: 1.5x the limit offered, {} of {} lost, \
                 drop_rate_limit +{dropped}",
                r.lost,
                r.packets
            );
        }
    }
    others_unaffected_and_removal(bed, name);
}

/// A second guest runs at its own pace while g1 is held at 10 Mbit/s; a reload without the
/// limit frees g1.
fn others_unaffected_and_removal(bed: &Bed, name: &str) {
    // Another guest is not limited: g2 at its own pace while g1 is held at 10 Mbit/s.
    bed.set_limit(&rate_lines("10Mbit"));
    let alone = unlimited(&bed.g2, "5202");
    let g1 = std::thread::scope(|s| {
        let g1 = s.spawn(|| iperf(&bed.g1, "5201", false, None));
        std::thread::sleep(Duration::from_millis(200));
        let g2 = iperf(&bed.g2, "5202", false, None);
        let g1 = g1.join().expect("g1's iperf3");
        eprintln!(
            "{name}: g2 alone {:.0} Mbit/s, beside limited g1 {:.0} Mbit/s (g1 {:.1} Mbit/s)",
            alone / 1e6,
            g2.bps / 1e6,
            g1.bps / 1e6
        );
        assert!(
            g2.bps > alone * 0.5 && g2.bps > 100e6,
            "{name}: g2 slowed down beside a limited g1: {:.0} of {:.0} Mbit/s",
            g2.bps / 1e6,
            alone / 1e6
        );
        g1
    });
    assert!(
        (0.85..=1.15).contains(&(g1.bps / 10e6)),
        "{name}: g1 beside g2 at {:.1} Mbit/s, limit 10",
        g1.bps / 1e6
    );
    // Removing the limit by a reload frees g1 again.
    bed.set_limit("");
    assert_eq!(bed.shown_rate(), Value::Null, "ports still shows a limit");
    let free = iperf(&bed.g1, "5201", false, None).bps;
    eprintln!("{name}: without the limit again {:.0} Mbit/s", free / 1e6);
    assert!(
        free > 50e6,
        "{name}: still limited after the limit was removed"
    );
}

#[test]
fn limits_hold_with_an_xdp_uplink() {
    if !require_root() {
        return;
    }
    let bed = Bed::new("rlx", Modes::XdpUplink, "");
    limits_hold(&bed, "xdp uplink");
}

/// Every port in native XDP: the egress limit is checked on the XDP redirect path
/// (`xennet_xdp`'s forward, `xennet_flood_out`'s copies) and the ingress limit by XDP alone.
#[test]
fn limits_hold_in_xdp() {
    if !require_root() {
        return;
    }
    let bed = Bed::new("rlz", Modes::Xdp, "");
    limits_hold(&bed, "xdp");
}

#[test]
fn limits_hold_in_tc() {
    if !require_root() {
        return;
    }
    let bed = Bed::new("rlt", Modes::Tc, "");
    limits_hold(&bed, "tc");
}

/// The limit lives in the datapath: it holds while no agent runs, and a new agent adopts it
/// without writing it again (the buckets keep their state) nor adding a second one.
#[test]
fn a_limit_outlives_the_agent() {
    if !require_root() {
        return;
    }
    let mut bed = Bed::new("rla", Modes::Tc, &rate_lines("10Mbit"));
    let _lock = MEASURING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    assert_eq!(bed.shown_rate(), "10Mbit burst 256KiB");
    let first = bed.agent.take().expect("the first agent");
    assert!(
        first.log_text().contains("bandwidth limit set"),
        "the first agent did not log the limit it set:\n{}",
        first.log_text()
    );
    first
        .leave_running()
        .expect("stopping the agent, datapath left running");
    within("no agent: TCP g1 -> upstream", 10e6, true, || {
        iperf(&bed.g1, "5201", false, None)
    });
    within("no agent: UDP upstream -> g1", 10e6, false, || {
        iperf(&bed.g1, "5201", true, Some(15_000_000))
    });
    let second = Agent::start(&bed.dom0, &bed.cfg, &bed.fs.pin_dir()).expect("second agent");
    bed.agent = Some(second);
    assert_eq!(bed.shown_rate(), "10Mbit burst 256KiB", "after adoption");
    assert!(
        !bed.agent().log_text().contains("bandwidth limit set"),
        "the adopting agent wrote the unchanged limit again (its buckets reset):\n{}",
        bed.agent().log_text()
    );
    let before = bed.drops("vif1.0");
    within("adopted: TCP upstream -> g1", 10e6, true, || {
        iperf(&bed.g1, "5201", true, None)
    });
    assert!(
        bed.drops("vif1.0") > before,
        "the adopted limit refused nothing"
    );
    // A reload without the limit frees the port (the adopting agent manages it as its own).
    bed.set_limit("");
    assert!(bed.agent().log_text().contains("bandwidth limit set"));
    let free = iperf(&bed.g1, "5201", false, None).bps;
    assert!(
        free > 50e6,
        "still limited after the limit was removed: {free}"
    );
}
