//! The seed's full setup ([`examples/seed-full.toml`]) in namespaces: a VLAN-aware trunk
//! bridge with an uplink, access guests, a raw-trunk guest and dom0's host port, plus an
//! internal-only bridge; and a running agent with its control socket.
//!
//! ```text
//!   [up] eth0 ──── eth1 [dom0]  vif1.0 ──── eth0 [g1]  access 4094  10.94.0.1/16
//!   upstream,                   vif2.0 ──── eth0 [g2]  access 4094  10.94.0.2/16
//!   tagged 4093/4094            vif3.0 ──── eth0 [g3]  access 4093  10.93.0.3/16
//!   (the test answers           vif4.0 ──── eth0 [g4]  trunk 4093,4094 (sees tags)
//!    ARP/ICMP itself:           mgmt0 (host port, created by the agent) 10.94.0.254/16
//!    [`Responder`])             vif1.1 ──── eth0 [i1]  internal bridge, access 10  10.10.0.1/24
//!                               vif2.1 ──── eth0 [i2]  internal bridge, access 10  10.10.0.2/24
//! ```
//!
//! No static MACs and no static neighbours: ARP works through flooding. Every guest-side veth
//! end has GRO on (it must receive native XDP redirects). The upstream namespace has no VLAN
//! devices and no addresses; a test that needs an upstream host answering on a VLAN runs a
//! [`Responder`] there. Also here: [`FullConfig`], which writes the example's configuration
//! and its test variants.
//!
//! [`examples/seed-full.toml`]: ../../examples/seed-full.toml
//! [`Responder`]: crate::responder::Responder

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::Output,
};

use anyhow::{Context as _, Result, anyhow};

use crate::{
    Netns, RawSocket, add_addr,
    counters::Counters,
    fdb::FdbRow,
    frame::{Mac, parse_mac},
    set_gro, set_mac,
    topo::{Agent, UPSTREAM_MAC, dom0_and_upstream, xdp_attached},
    veth,
};

/// One endpoint behind a vif: a namespace whose `eth0` is the peer of `vif` in dom0.
#[derive(Clone, Copy, Debug)]
pub struct NodeSpec {
    /// Short name, also the capture name in tests (`g1`, `i2`, …).
    pub name: &'static str,
    /// The dom0-side interface.
    pub vif: &'static str,
    /// MAC of the node's `eth0`.
    pub mac: &'static str,
    /// Address with prefix, if the node has one.
    pub cidr: Option<&'static str>,
}

/// The nodes of the seed's full setup.
pub const NODES: [NodeSpec; 6] = [
    NodeSpec {
        name: "g1",
        vif: "vif1.0",
        mac: "00:16:3e:00:00:01",
        cidr: Some("10.94.0.1/16"),
    },
    NodeSpec {
        name: "g2",
        vif: "vif2.0",
        mac: "00:16:3e:00:00:02",
        cidr: Some("10.94.0.2/16"),
    },
    NodeSpec {
        name: "g3",
        vif: "vif3.0",
        mac: "00:16:3e:00:00:03",
        cidr: Some("10.93.0.3/16"),
    },
    NodeSpec {
        name: "g4",
        vif: "vif4.0",
        mac: "00:16:3e:00:00:04",
        cidr: None,
    },
    NodeSpec {
        name: "i1",
        vif: "vif1.1",
        mac: "00:16:3e:00:01:01",
        cidr: Some("10.10.0.1/24"),
    },
    NodeSpec {
        name: "i2",
        vif: "vif2.1",
        mac: "00:16:3e:00:01:02",
        cidr: Some("10.10.0.2/24"),
    },
];

/// A fifth guest, not in the example: used to add a port on reload (VLAN 4092).
pub const G5: NodeSpec = NodeSpec {
    name: "g5",
    vif: "vif5.0",
    mac: "00:16:3e:00:00:05",
    cidr: Some("10.92.0.5/16"),
};

/// dom0's address on the management VLAN (the host port `mgmt0`).
pub const MGMT_IP: &str = "10.94.0.254";

/// The address the test's upstream [`Responder`](crate::responder::Responder) answers for on VLAN 4094.
pub const UPSTREAM_IP_4094: &str = "10.94.0.100";
/// The address the test's upstream [`Responder`](crate::responder::Responder) answers for on VLAN 4093.
pub const UPSTREAM_IP_4093: &str = "10.93.0.100";

/// One built node.
#[derive(Debug)]
pub struct Node {
    /// Its namespace (interface `eth0`).
    pub ns: Netns,
    /// Name, vif, MAC and address as specified.
    pub spec: NodeSpec,
    /// `spec.mac`, parsed.
    pub mac: Mac,
}

impl Node {
    /// The node's address without prefix, if any.
    #[must_use]
    pub fn ip(&self) -> Option<&'static str> {
        self.spec.cidr.and_then(|c| c.split('/').next())
    }
}

/// The full seed setup in namespaces; nothing of xennet runs yet.
#[derive(Debug)]
pub struct SeedFull {
    /// Nodes first: fields drop in order, and dom0 (holding the vifs) goes last.
    pub nodes: Vec<Node>,
    /// The upstream switch: `eth0` (MAC [`UPSTREAM_MAC`]), peer of dom0's `eth1`.
    pub up: Netns,
    /// dom0: `eth1`, the vifs, and (once the agent runs) `mgmt0` / `xnh-trunk`.
    pub dom0: Netns,
}

impl SeedFull {
    /// Build dom0, the upstream switch and [`NODES`] plus `extra`.
    pub fn new(tag: &str, extra: &[NodeSpec]) -> Result<SeedFull> {
        let (dom0, up) = dom0_and_upstream(tag, Some(UPSTREAM_MAC))?;
        let mut nodes = Vec::new();
        for spec in NODES.iter().chain(extra) {
            let ns = Netns::new(&format!("{tag}-{}", spec.name))?;
            veth(&dom0, spec.vif, &ns, "eth0")?;
            let mac = parse_mac(spec.mac)?;
            set_mac(&ns, "eth0", mac)?;
            set_gro(&ns, "eth0", true)?;
            if let Some(cidr) = spec.cidr {
                add_addr(&ns, "eth0", cidr)?;
            }
            nodes.push(Node {
                ns,
                spec: *spec,
                mac,
            });
        }
        Ok(SeedFull { nodes, up, dom0 })
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Result<&Node> {
        self.nodes
            .iter()
            .find(|n| n.spec.name == name)
            .ok_or_else(|| anyhow!("no node {name}"))
    }

    /// A raw socket on a capture point: a node's `eth0`, `up` (upstream `eth0`) or `mgmt0`
    /// (dom0's host port, once the agent created it).
    pub fn socket(&self, name: &str) -> Result<RawSocket> {
        match name {
            "up" => RawSocket::open(&self.up, "eth0"),
            "mgmt0" => RawSocket::open(&self.dom0, "mgmt0"),
            _ => RawSocket::open(&self.node(name)?.ns, "eth0"),
        }
    }

    /// Forget every neighbour entry of every node and of dom0, so that no kernel sends a
    /// late ARP probe into a later step of a test.
    pub fn flush_neighbours(&self) -> Result<()> {
        for ns in self.nodes.iter().map(|n| &n.ns).chain([&self.dom0]) {
            ns.exec_ok(&["ip", "neigh", "flush", "all"])?;
        }
        Ok(())
    }

    /// Whether an XDP program is attached to `ifname` in dom0.
    pub fn xdp_attached(&self, ifname: &str) -> Result<bool> {
        xdp_attached(&self.dom0, ifname)
    }
}

/// The seed-full configuration, or a test variant of it. [`FullConfig::default`] writes
/// exactly `examples/seed-full.toml` (checked by a unit test), with the control socket of
/// the test.
#[derive(Clone, Debug)]
pub struct FullConfig {
    /// `fdb_aging_secs` of the trunk bridge (the example: 300).
    pub fdb_aging_secs: u32,
    /// VLANs of the trunks `eth1` and `vif4.0` (the example: 4093, 4094).
    pub trunk_vlans: Vec<u16>,
    /// Access ports of the trunk bridge, between `eth1` and `vif4.0`.
    pub access: Vec<(&'static str, u16)>,
    /// `mac_limit` per port interface (unset: the default).
    pub mac_limits: Vec<(&'static str, u32)>,
    /// Static MACs per port interface (`"MAC"` or `"MAC@VLAN"`).
    pub statics: Vec<(&'static str, &'static str)>,
    /// Extra raw lines appended to the `[[bridge.port]]` of an interface (to make a file
    /// invalid, for instance).
    pub extra_lines: Vec<(&'static str, &'static str)>,
}

impl Default for FullConfig {
    fn default() -> Self {
        FullConfig {
            fdb_aging_secs: 300,
            trunk_vlans: vec![4093, 4094],
            access: vec![("vif1.0", 4094), ("vif2.0", 4094), ("vif3.0", 4093)],
            mac_limits: Vec::new(),
            statics: Vec::new(),
            extra_lines: Vec::new(),
        }
    }
}

impl FullConfig {
    fn port(&self, out: &mut String, interface: &str, mode: &str) {
        let _ = write!(
            out,
            "\n[[bridge.port]]\ninterface = \"{interface}\"\n{mode}\n"
        );
        for (i, limit) in &self.mac_limits {
            if *i == interface {
                let _ = writeln!(out, "mac_limit = {limit}");
            }
        }
        let macs: Vec<String> = self
            .statics
            .iter()
            .filter(|(i, _)| *i == interface)
            .map(|(_, m)| format!("{m:?}"))
            .collect();
        if !macs.is_empty() {
            let _ = writeln!(out, "macs = [{}]", macs.join(", "));
        }
        for (i, line) in &self.extra_lines {
            if *i == interface {
                let _ = writeln!(out, "{line}");
            }
        }
    }

    /// The TOML text, with `[agent] socket` set to `socket`.
    #[must_use]
    pub fn text(&self, socket: &Path) -> String {
        let vlans: Vec<String> = self.trunk_vlans.iter().map(u16::to_string).collect();
        let trunk = format!("trunk = [{}]", vlans.join(", "));
        let mut s = format!(
            "[agent]\nsocket = {:?}\n\n[[bridge]]\nname = \"trunk\"\nfdb_aging_secs = {}\n",
            socket.display().to_string(),
            self.fdb_aging_secs
        );
        self.port(&mut s, "eth1", &trunk);
        for (vif, vlan) in &self.access {
            self.port(&mut s, vif, &format!("access = {vlan}"));
        }
        self.port(&mut s, "vif4.0", &trunk);
        let _ = write!(
            s,
            "\n[bridge.host]\ninterface = \"mgmt0\"\naccess = 4094\naddresses = [\"{MGMT_IP}/16\"]\n"
        );
        s.push_str("\n[[bridge]]\nname = \"internal\"\n");
        self.port(&mut s, "vif1.1", "access = 10");
        self.port(&mut s, "vif2.1", "access = 10");
        s
    }
}

/// A running `xennet-agent run` with a control socket, in dom0, stopped with SIGTERM on drop.
/// Its configuration file, control socket and log live in a private directory, removed on
/// drop.
#[derive(Debug)]
pub struct FullAgent {
    agent: Agent,
    dir: PathBuf,
    config: PathBuf,
}

impl FullAgent {
    /// Write `config` (see [`FullAgent::write_config`]) and start the agent on it in `dom0`,
    /// pinning under `pin_dir`; wait until it reports ready.
    pub fn start(dom0: &Netns, config: &FullConfig, pin_dir: &Path) -> Result<FullAgent> {
        let dir = std::env::temp_dir().join(format!("xennet-full-{}", dom0.name()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let guard = DirGuard(Some(dir.clone()));
        let cfg_path = dir.join("xennet.toml");
        write_atomic(&cfg_path, &config.text(&Agent::socket_for(dom0)))?;
        let agent = Agent::start(dom0, &cfg_path, pin_dir)?;
        let mut guard = guard;
        guard.0 = None;
        Ok(FullAgent {
            agent,
            dir,
            config: cfg_path,
        })
    }

    /// The configuration file the agent was started with.
    #[must_use]
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// Replace the configuration file (atomically) with `config`, keeping the socket.
    pub fn write_config(&self, config: &FullConfig) -> Result<()> {
        write_atomic(&self.config, &config.text(self.agent.socket()))
    }

    /// Replace the configuration file (atomically) with raw `text`.
    pub fn write_config_text(&self, text: &str) -> Result<()> {
        write_atomic(&self.config, text)
    }

    /// The agent's process id (nsenter execs the agent).
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.agent.pid()
    }

    /// Whether the agent process is still running.
    pub fn running(&mut self) -> bool {
        self.agent.running()
    }

    /// Send SIGHUP (reload).
    pub fn sighup(&self) -> Result<()> {
        self.agent.signal(libc::SIGHUP)
    }

    /// What the agent logged so far.
    #[must_use]
    pub fn log_text(&self) -> String {
        self.agent.log_text()
    }

    /// Run `xennet-agent ARGS` in dom0 (the CLI), whatever its exit status.
    pub fn cli(&self, args: &[&str]) -> Result<Output> {
        self.agent.cli(args)
    }

    /// `fdb show --json`, of one bridge or all.
    pub fn fdb(&self, bridge: Option<&str>) -> Result<Vec<FdbRow>> {
        self.agent.fdb(bridge)
    }

    /// `ports --json`, as parsed JSON (an array of {bridge, interface, ifindex, slot,
    /// attached, vlans, host}).
    pub fn ports(&self) -> Result<Vec<serde_json::Value>> {
        self.agent.ports()
    }

    /// `reload`, raw: the caller checks exit status, stdout (JSON changes) and stderr.
    pub fn reload(&self) -> Result<Output> {
        self.agent.ctl(&["reload", "--json"])
    }

    /// `stats --json`: interface → counter → value.
    pub fn stats(&self) -> Result<Counters> {
        self.agent.counters()
    }

    /// Stop with SIGTERM and start a new agent in `dom0` on the same configuration and
    /// `pin_dir` (it adopts the pinned datapath); returns whether the old one exited 0.
    pub fn restart(&mut self, dom0: &Netns, pin_dir: &Path) -> Result<bool> {
        let ok = self.agent.terminate()?;
        self.agent = Agent::start(dom0, &self.config, pin_dir)?;
        Ok(ok)
    }

    /// Stop with SIGTERM and wait; returns whether it exited successfully.
    pub fn stop(mut self) -> Result<bool> {
        self.agent.terminate()
    }
}

impl Drop for FullAgent {
    fn drop(&mut self) {
        // The agent (a field) stops itself on drop, before or after this makes no difference.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Removes a directory on drop unless disarmed (`.0 = None`).
struct DirGuard(Option<PathBuf>);

impl Drop for DirGuard {
    fn drop(&mut self) {
        if let Some(d) = self.0.take() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// Write `text` to `path` through a temporary file and a rename, so that a reader never sees
/// a half-written file.
fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use xennet_agent::config::Config;

    /// The default [`FullConfig`] is `examples/seed-full.toml`, but for the socket.
    #[test]
    fn default_config_is_the_example() {
        let root = crate::topo::workspace_root();
        let example = Config::load(&root.join("examples/seed-full.toml")).expect("example");
        let sock = Path::new("/tmp/xennet-test/xennet.sock");
        let mut ours =
            Config::parse(&FullConfig::default().text(sock), "generated").expect("generated");
        assert_eq!(ours.socket, sock);
        ours.socket.clone_from(&example.socket);
        assert_eq!(ours, example);
    }
}
