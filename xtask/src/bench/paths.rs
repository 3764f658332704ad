//! The forwarding paths compared, set up in the DUT namespace and torn down again.

use std::{fmt::Write as _, path::Path, process::Stdio, time::Duration};

use anyhow::{Context as _, Result, bail};
use xennet_tests::{
    Netns,
    frame::format_mac,
    topo::{Agent, BpfFs},
};

use super::{
    topo::{self, Dut},
    traffic::{BenchObj, CEIL, TC_CEIL},
};

/// A forwarding path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PathKind {
    /// Linux bridge, learning off on the generator's port, static FDB entry.
    Bridge,
    /// The same with `br_netfilter` (`bridge-nf-call-iptables`) and iptables physdev rules.
    BridgeNf,
    /// Bare devmap redirect, no parsing.
    Ceiling,
    /// xennet-agent, ports attached with native XDP.
    XennetXdp,
    /// xennet-agent, ports attached with TC.
    XennetTc,
    /// The bridge with `br_netfilter` and the rules Xen's `vif-common.sh` creates for 32 guests
    /// with `ip=` (issue 13's baseline), FORWARD policy DROP.
    BridgeXenAntispoof,
    /// xennet-agent in TC with port security on the generator's and the guests' ports.
    XennetTcSec,
    /// Bare tcx `bpf_redirect` by ingress ifindex, no parsing: the TC ceiling.
    TcCeiling,
}

impl PathKind {
    pub const ALL: [PathKind; 8] = [
        PathKind::Bridge,
        PathKind::BridgeNf,
        PathKind::Ceiling,
        PathKind::XennetXdp,
        PathKind::TcCeiling,
        PathKind::XennetTc,
        PathKind::BridgeXenAntispoof,
        PathKind::XennetTcSec,
    ];

    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            PathKind::Bridge => "linux-bridge",
            PathKind::BridgeNf => "bridge+br_netfilter",
            PathKind::Ceiling => "xdp-ceiling",
            PathKind::XennetXdp => "xennet-xdp",
            PathKind::XennetTc => "xennet-tc",
            PathKind::BridgeXenAntispoof => "bridge+xen-antispoof",
            PathKind::XennetTcSec => "xennet-tc-portsec",
            PathKind::TcCeiling => "tc-ceiling",
        }
    }

    /// The config's `attach` for an xennet path.
    const fn attach(self) -> Option<&'static str> {
        match self {
            PathKind::XennetXdp => Some("xdp"),
            PathKind::XennetTc | PathKind::XennetTcSec => Some("tc"),
            _ => None,
        }
    }

    /// Whether the path can forward a tagged uplink to an access port (pop the tag).
    #[must_use]
    pub const fn vlan_aware(self) -> bool {
        matches!(
            self,
            PathKind::Ceiling
                | PathKind::TcCeiling
                | PathKind::XennetXdp
                | PathKind::XennetTc
                | PathKind::XennetTcSec
        )
    }

    /// Whether the path forwards in TC (its ceiling is the TC ceiling).
    #[must_use]
    pub const fn is_tc(self) -> bool {
        matches!(
            self,
            PathKind::TcCeiling | PathKind::XennetTc | PathKind::XennetTcSec
        )
    }
}

/// The agent configuration of the xennet paths.
#[must_use]
pub fn xennet_config(t: &Dut, attach: &str) -> String {
    xennet_config_text(t.ports, attach)
}

/// The agent configuration of the port-security path: [`xennet_config_text`] in TC, with
/// security on the generator's port (its source MAC in VLAN 1 and the tagged VLAN, its source
/// address) and on the two guests (their MACs and addresses).
#[must_use]
pub fn xennet_sec_config(t: &Dut, flows: u16) -> String {
    xennet_sec_config_text(t.ports, flows)
}

/// [`xennet_sec_config`] for a DUT with `ports` VLAN 1 egress ports and a generator cycling
/// through `flows` source MACs (each a static MAC of `xb0`, in VLAN 1 and the tagged VLAN).
#[must_use]
pub fn xennet_sec_config_text(ports: usize, flows: u16) -> String {
    let macs: Vec<String> = (0..flows)
        .flat_map(|i| {
            let m = format_mac(&xennet_common::bench::add16(topo::GEN_SRC, u32::from(i)));
            [format!("\"{m}\""), format!("\"{m}@{}\"", topo::TAG_VLAN)]
        })
        .collect();
    let mut s = String::new();
    for line in xennet_config_text(ports, "tc").lines() {
        s.push_str(line);
        s.push('\n');
        match line {
            "interface = \"xb0\"" => {
                let _ = write!(
                    s,
                    "security = true\nips = [\"{GEN_IP}\"]\nmacs = [{}]\n",
                    macs.join(", ")
                );
            }
            "interface = \"xv1\"" => {
                let _ = writeln!(s, "ips = [\"{}\"]", topo::G1_IP);
            }
            "interface = \"xv2\"" => {
                let _ = writeln!(s, "ips = [\"{}\"]", topo::G2_IP);
            }
            _ => {}
        }
    }
    s
}

/// The generator's source address (`udp::udp_frame`).
const GEN_IP: &str = "10.77.0.1";

/// How many guests the Xen antispoofing baseline has rules for.
pub const XEN_GUESTS: usize = 32;

/// The FORWARD rules Xen's `vif-common.sh` (`handle_iptable`, `frob_iptable`) inserts for
/// [`XEN_GUESTS`] guests with one `ip=` address each, in insertion order (`-I`: the last
/// guest's rules end up first). Guest 16 is the generator's port `xb0`, guests 1 and 2 the
/// TCP guests `xv1`/`xv2`; the others are `vifN.0` devices that do not exist here (their
/// rules are walked and never match, as other guests' rules are on a real dom0).
#[must_use]
pub fn xen_antispoof_rules() -> Vec<String> {
    let mut v = Vec::new();
    for k in 1..=XEN_GUESTS {
        let (dev, ip) = match k {
            1 => ("xv1".to_owned(), topo::G1_IP.to_owned()),
            2 => ("xv2".to_owned(), topo::G2_IP.to_owned()),
            16 => ("xb0".to_owned(), GEN_IP.to_owned()),
            _ => (format!("vif{k}.0"), format!("10.78.{k}.1")),
        };
        for m in [
            format!("-s {ip}"),
            "-p udp --sport 68 --dport 67".to_owned(),
        ] {
            v.push(format!(
                "-I FORWARD -m physdev --physdev-in {dev} {m} -j ACCEPT"
            ));
            v.push(format!(
                "-I FORWARD -m state --state RELATED,ESTABLISHED -m physdev --physdev-out {dev} -j ACCEPT"
            ));
        }
    }
    v
}

/// The agent configuration of the xennet paths, for a DUT with `ports` VLAN 1 egress ports.
#[must_use]
pub fn xennet_config_text(ports: usize, attach: &str) -> String {
    let mut s = String::from("# generated by cargo xtask bench\n[[bridge]]\nname = \"bench\"\n");
    let _ = write!(
        s,
        "\n[[bridge.port]]\ninterface = \"xb0\"\ntrunk = [{}]\nnative_vlan = 1\nattach = \"{attach}\"\n",
        topo::TAG_VLAN
    );
    for i in 1..=ports {
        let _ = write!(
            s,
            "\n[[bridge.port]]\ninterface = \"xb{i}\"\naccess = 1\nattach = \"{attach}\"\nmacs = [\"{}\"]\n",
            format_mac(&topo::sink_mac(i))
        );
    }
    let _ = write!(
        s,
        "\n[[bridge.port]]\ninterface = \"xbt\"\naccess = {}\nattach = \"{attach}\"\nmacs = [\"{}\"]\n",
        topo::TAG_VLAN,
        format_mac(&topo::sink_mac(0))
    );
    s.push_str("\n[[bridge]]\nname = \"guests\"\n");
    for (v, m) in [("xv1", topo::G1_MAC), ("xv2", topo::G2_MAC)] {
        let _ = write!(
            s,
            "\n[[bridge.port]]\ninterface = \"{v}\"\naccess = 1\nattach = \"{attach}\"\nmacs = [\"{}\"]\n",
            format_mac(&m)
        );
    }
    s
}

/// Whether the agent accepts `attach = "tc"` (checks the config `cfg`); `Err(reason)` when
/// it does not.
pub fn tc_available(agent: &Path, cfg: &Path) -> Result<std::result::Result<(), String>> {
    let out = std::process::Command::new(agent)
        .arg("check")
        .arg("--config")
        .arg(cfg)
        .output()
        .context("running xennet-agent check")?;
    if out.status.success() {
        return Ok(Ok(()));
    }
    let err = String::from_utf8_lossy(&out.stderr);
    Ok(Err(format!(
        "TC datapath not built: {}",
        err.lines().next().unwrap_or("check failed").trim()
    )))
}

/// A path set up in the DUT namespace; [`Active::teardown`] removes it.
pub enum Active {
    Bridge {
        nf: bool,
    },
    Ceiling {
        links: Vec<(String, aya::programs::xdp::XdpLinkId)>,
    },
    TcCeiling {
        links: Vec<(String, aya::programs::tc::SchedClassifierLinkId)>,
    },
    Xennet {
        agent: Option<Agent>,
        fs: Option<BpfFs>,
    },
}

fn sh(ns: &Netns, cmd: &str) -> Result<()> {
    ns.exec_ok(&["sh", "-c", cmd])
        .with_context(|| format!("in {}: {cmd}", ns.name()))?;
    Ok(())
}

/// iptables rules of a typical dom0 (Xen's vif-bridge antispoofing style): per-vif physdev
/// accepts; four that do not match the benchmark traffic, then the ones that do.
const NF_RULES: &[&str] = &[
    "-A FORWARD -m physdev --physdev-is-bridged --physdev-in vif91.0 -s 10.91.0.1 -j ACCEPT",
    "-A FORWARD -m physdev --physdev-is-bridged --physdev-in vif92.0 -s 10.92.0.1 -j ACCEPT",
    "-A FORWARD -m physdev --physdev-is-bridged --physdev-in vif93.0 -s 10.93.0.1 -j ACCEPT",
    "-A FORWARD -m physdev --physdev-is-bridged --physdev-in vif94.0 -s 10.94.0.1 -j ACCEPT",
    "-A FORWARD -m physdev --physdev-is-bridged --physdev-in xb0 -j ACCEPT",
    "-A FORWARD -m physdev --physdev-is-bridged --physdev-in xv1 -j ACCEPT",
    "-A FORWARD -m physdev --physdev-is-bridged --physdev-in xv2 -j ACCEPT",
];

/// Set `path` up. `tmp` holds generated files.
pub fn setup(
    path: PathKind,
    t: &Dut,
    obj: &mut BenchObj,
    tmp: &Path,
    flows: u16,
) -> Result<Active> {
    match path {
        PathKind::Bridge | PathKind::BridgeNf | PathKind::BridgeXenAntispoof => {
            let xen = path == PathKind::BridgeXenAntispoof;
            let nf = path == PathKind::BridgeNf || xen;
            let v = u8::from(nf);
            let d = &t.ns;
            for k in ["iptables", "ip6tables", "arptables"] {
                sh(d, &format!("sysctl -qw net.bridge.bridge-nf-call-{k}={v}"))?;
            }
            let mut ports: Vec<String> = (1..=t.ports).map(|i| format!("xb{i}")).collect();
            ports.insert(0, "xb0".into());
            let mut cmd = String::from(
                "ip link add xbr0 type bridge stp_state 0 mcast_snooping 0 && \
                 ip link add xbr1 type bridge stp_state 0 mcast_snooping 0",
            );
            for p in &ports {
                let _ = write!(cmd, " && ip link set {p} master xbr0");
            }
            cmd.push_str(" && ip link set xv1 master xbr1 && ip link set xv2 master xbr1");
            // Learning off on the generator's port: recycled live frames must not move
            // entries; the measured destination is static.
            cmd.push_str(" && bridge link set dev xb0 learning off");
            let _ = write!(
                cmd,
                " && bridge fdb replace {} dev xb1 master static",
                format_mac(&topo::sink_mac(1))
            );
            cmd.push_str(" && ip link set xbr0 up && ip link set xbr1 up");
            sh(d, &cmd)?;
            if xen {
                // Xen's antispoofing: only what the rules accept is forwarded.
                sh(d, "iptables -P FORWARD DROP")?;
                for r in xen_antispoof_rules() {
                    sh(d, &format!("iptables {r}"))?;
                }
            } else if nf {
                for r in NF_RULES {
                    sh(d, &format!("iptables {r}"))?;
                }
            }
            Ok(Active::Bridge { nf })
        }
        PathKind::Ceiling => {
            let (xb0, xb1, xv1, xv2) = (t.idx("xb0")?, t.idx("xb1")?, t.idx("xv1")?, t.idx("xv2")?);
            let mut all = vec![xb0];
            for i in 1..=t.ports {
                all.push(t.idx(&format!("xb{i}"))?);
            }
            obj.set_ceiling(&t.ns, &[(xb0, xb1), (xv1, xv2), (xv2, xv1)], &all)?;
            let mut links = Vec::new();
            for i in ["xb0", "xv1", "xv2"] {
                links.push(obj.attach(&t.ns, CEIL, i)?);
            }
            Ok(Active::Ceiling { links })
        }
        PathKind::TcCeiling => {
            let (xb0, xb1, xv1, xv2) = (t.idx("xb0")?, t.idx("xb1")?, t.idx("xv1")?, t.idx("xv2")?);
            obj.set_tc_ceiling(&t.ns, &[(xb0, xb1), (xv1, xv2), (xv2, xv1)])?;
            let mut links = Vec::new();
            for i in ["xb0", "xv1", "xv2"] {
                links.push(obj.attach_tc(&t.ns, TC_CEIL, i)?);
            }
            Ok(Active::TcCeiling { links })
        }
        PathKind::XennetXdp | PathKind::XennetTc | PathKind::XennetTcSec => {
            let attach = path.attach().unwrap_or("xdp");
            let cfg = tmp.join(format!("{}.toml", path.name()));
            let text = if path == PathKind::XennetTcSec {
                xennet_sec_config(t, flows)
            } else {
                xennet_config(t, attach)
            };
            std::fs::write(&cfg, text).with_context(|| format!("writing {}", cfg.display()))?;
            let fs = BpfFs::new(&format!("bench-{}", path.name()))?;
            let agent = Agent::start(&t.ns, &cfg, &fs.pin_dir())?;
            Ok(Active::Xennet {
                agent: Some(agent),
                fs: Some(fs),
            })
        }
    }
}

impl Active {
    /// Remove the path from the DUT namespace.
    pub fn teardown(self, t: &Dut, obj: &mut BenchObj) -> Result<()> {
        match self {
            Active::Bridge { nf } => {
                if nf {
                    sh(&t.ns, "iptables -F FORWARD && iptables -P FORWARD ACCEPT")?;
                }
                sh(&t.ns, "ip link del xbr0 && ip link del xbr1")?;
                // Released ports stay up.
                Ok(())
            }
            Active::Ceiling { links } => {
                for l in links {
                    obj.detach(l)?;
                }
                Ok(())
            }
            Active::TcCeiling { links } => {
                for l in links {
                    obj.detach_tc(l)?;
                }
                Ok(())
            }
            Active::Xennet { mut agent, mut fs } => {
                let ok = agent.take().map(Agent::stop).transpose()?;
                drop(fs.take());
                if ok == Some(false) {
                    bail!("xennet-agent did not exit cleanly");
                }
                Ok(())
            }
        }
    }
}

/// TCP bulk throughput g1 → g2 with iperf3 for `secs`; bits per second received.
pub fn iperf(t: &Dut, secs: f64) -> Result<f64> {
    let (g1, g2) = t.guests()?;
    let mut server = g2
        .command(&["iperf3", "-s", "-1", "-B", topo::G2_IP, "-p", "5299"])?
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting iperf3 -s")?;
    let dur = format!("{secs}");
    let mut last = String::new();
    let mut result = None;
    let limit = format!("{}", secs.ceil() + 5.0);
    for _ in 0..20 {
        let out = g1.exec(&[
            "timeout",
            &limit,
            "iperf3",
            "-c",
            topo::G2_IP,
            "-p",
            "5299",
            "-t",
            &dur,
            "-J",
            "--connect-timeout",
            "1500",
        ])?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if let Some(bps) = v["end"]["sum_received"]["bits_per_second"].as_f64() {
            result = Some(bps);
            break;
        }
        last = v["error"].as_str().unwrap_or("").to_string();
        if !last.contains("refused") {
            break;
        }
        // The server is not listening yet.
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = server.kill();
    let _ = server.wait();
    if let Some(r) = result {
        Ok(r)
    } else {
        {
            let errs = g2.exec(&["nstat", "-az", "TcpInCsumErrors"])?;
            let n = String::from_utf8_lossy(&errs.stdout)
                .lines()
                .find(|l| l.starts_with("TcpInCsumErrors"))
                .and_then(|l| l.split_whitespace().nth(1).map(String::from))
                .unwrap_or_else(|| "?".into());
            bail!("iperf3: {last} (receiving guest: TcpInCsumErrors {n})")
        }
    }
}

/// Turn the guests' tx checksum offload on or off.
pub fn guest_tx_csum(t: &Dut, on: bool) -> Result<()> {
    let (g1, g2) = t.guests()?;
    for g in [g1, g2] {
        g.exec_ok(&["ethtool", "-K", "eth0", "tx", if on { "on" } else { "off" }])?;
    }
    Ok(())
}

/// Median and minimum ping RTT from guest `g1` to g2 in microseconds, from `count` pings
/// `interval` apart. The ping runs `SCHED_FIFO` pinned to `cpu`: the whole round trip (both guests and
/// the DUT in softirq work of the sending CPU, the reply included) then runs there without
/// waiting for other load on the machine, so that the RTT is the paths' cost rather than the
/// machine's scheduling latency.
pub fn ping_rtt(g1: &Netns, count: u32, interval: f64, cpu: usize) -> Result<(f64, f64)> {
    let out = g1.exec(&[
        "chrt",
        "-f",
        "30",
        "taskset",
        "-c",
        &cpu.to_string(),
        "ping",
        "-n",
        "-c",
        &count.to_string(),
        "-i",
        &format!("{interval}"),
        "-W",
        "1",
        topo::G2_IP,
    ])?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut v: Vec<f64> = text
        .lines()
        .filter_map(|l| l.split("time=").nth(1))
        .filter_map(|r| r.split_whitespace().next())
        .filter_map(|x| x.parse::<f64>().ok())
        .map(|ms| ms * 1000.0)
        .collect();
    if v.is_empty() {
        bail!(
            "ping g1 → g2 got no replies:\n{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    v.sort_by(f64::total_cmp);
    Ok((v[v.len() / 2], v[0]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The port-security path's configuration is valid and secures the generator's port and
    /// the guests; the Xen baseline has `vif-common.sh`'s four rules per guest.
    #[test]
    fn the_portsec_path_and_the_xen_baseline() {
        let cfg = xennet_agent::config::Config::parse(&xennet_sec_config_text(4, 16), "bench.toml")
            .unwrap_or_else(|e| panic!("{e}"));
        let sec: Vec<(&str, bool)> = cfg
            .bridges
            .iter()
            .flat_map(|b| &b.ports)
            .map(|p| (p.interface.as_str(), p.security.enabled))
            .filter(|(_, on)| *on)
            .collect();
        assert_eq!(sec, [("xb0", true), ("xv1", true), ("xv2", true)]);
        let rules = xen_antispoof_rules();
        assert_eq!(rules.len(), 4 * XEN_GUESTS);
        assert!(
            rules.contains(
                &"-I FORWARD -m physdev --physdev-in xb0 -s 10.77.0.1 -j ACCEPT".to_owned()
            )
        );
    }
}
