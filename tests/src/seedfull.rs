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
//! [`Responder`] there. Also here: ARP and ICMP frames, a numbered steady [`Flow`], and
//! [`FullConfig`], which writes the example's configuration and its test variants.
//!
//! [`examples/seed-full.toml`]: ../../examples/seed-full.toml

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    path::{Path, PathBuf},
    process::Output,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail};

use crate::{
    Netns, RawSocket, add_addr,
    frame::{
        ETH_P_8021Q, Mac, Parsed, build_eth, find_marker, parse_eth, parse_mac, tci, test_frame,
    },
    set_gro, set_mac,
    topo::{Agent, UPSTREAM_MAC},
    veth,
};

/// Ethertype of ARP.
pub const ETH_P_ARP: u16 = 0x0806;
/// Ethertype of IPv4.
pub const ETH_P_IP: u16 = 0x0800;

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

/// The address the test's upstream [`Responder`] answers for on VLAN 4094.
pub const UPSTREAM_IP_4094: &str = "10.94.0.100";
/// The address the test's upstream [`Responder`] answers for on VLAN 4093.
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
        let dom0 = Netns::new(&format!("{tag}-d0"))?;
        let up = Netns::new(&format!("{tag}-up"))?;
        veth(&dom0, "eth1", &up, "eth0")?;
        set_mac(&up, "eth0", UPSTREAM_MAC)?;
        // Receiving native-XDP redirects on a veth needs NAPI on the receiving end.
        set_gro(&up, "eth0", true)?;
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
        let o = self
            .dom0
            .exec_ok(&["ip", "-d", "link", "show", "dev", ifname])?;
        Ok(String::from_utf8_lossy(&o.stdout).contains("prog/xdp"))
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

/// Per-port counters from `stats --json`: interface → counter → value.
pub type Counters = BTreeMap<String, BTreeMap<String, u64>>;

/// One row of `fdb show --json`.
#[derive(Clone, Debug, PartialEq)]
pub struct FdbRow {
    /// Bridge name.
    pub bridge: String,
    /// `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// VLAN id.
    pub vlan: u16,
    /// Port interface.
    pub port: String,
    /// Configured rather than learned.
    pub is_static: bool,
    /// Seconds since last seen (learned entries only).
    pub age_secs: Option<f64>,
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

    /// Run a control-socket command (`--socket` appended) and parse its JSON output.
    fn query(&self, args: &[&str]) -> Result<serde_json::Value> {
        let out = self.agent.ctl(args)?;
        if !out.status.success() {
            bail!(
                "xennet-agent {args:?} failed ({}): {}\nagent log:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr),
                self.log_text()
            );
        }
        serde_json::from_slice(&out.stdout).with_context(|| {
            format!(
                "parsing the JSON of xennet-agent {args:?}: {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// `fdb show --json`, of one bridge or all.
    pub fn fdb(&self, bridge: Option<&str>) -> Result<Vec<FdbRow>> {
        let v = match bridge {
            Some(b) => self.query(&["fdb", "show", "--json", "--bridge", b])?,
            None => self.query(&["fdb", "show", "--json"])?,
        };
        let rows = v
            .as_array()
            .ok_or_else(|| anyhow!("fdb JSON is not an array: {v}"))?;
        rows.iter()
            .map(|r| {
                let s = |k: &str| {
                    r[k].as_str()
                        .map(str::to_string)
                        .ok_or_else(|| anyhow!("fdb entry without {k}: {r}"))
                };
                Ok(FdbRow {
                    bridge: s("bridge")?,
                    mac: s("mac")?,
                    vlan: r["vlan"]
                        .as_u64()
                        .and_then(|v| u16::try_from(v).ok())
                        .ok_or_else(|| anyhow!("fdb entry without vlan: {r}"))?,
                    port: s("port")?,
                    is_static: r["static"]
                        .as_bool()
                        .ok_or_else(|| anyhow!("fdb entry without static: {r}"))?,
                    age_secs: r["age_secs"].as_f64(),
                })
            })
            .collect()
    }

    /// `ports --json`, as parsed JSON (an array of {bridge, interface, ifindex, slot,
    /// attached, vlans, host}).
    pub fn ports(&self) -> Result<Vec<serde_json::Value>> {
        let v = self.query(&["ports", "--json"])?;
        v.as_array()
            .cloned()
            .ok_or_else(|| anyhow!("ports JSON is not an array: {v}"))
    }

    /// `reload`, raw: the caller checks exit status, stdout (JSON changes) and stderr.
    pub fn reload(&self) -> Result<Output> {
        self.agent.ctl(&["reload"])
    }

    /// `stats --json`: interface → counter → value.
    pub fn stats(&self) -> Result<Counters> {
        self.agent.counters()
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

// ---------------------------------------------------------------------------
// ARP and ICMP
// ---------------------------------------------------------------------------

/// An IPv4 address in dotted form as bytes.
///
/// # Panics
/// On a malformed address (test constants only).
#[must_use]
pub fn ipv4(s: &str) -> [u8; 4] {
    let a: std::net::Ipv4Addr = s.parse().expect("IPv4 address");
    a.octets()
}

/// The 802.1Q tag list for `vid` (PCP 0), or none for `None`.
#[must_use]
pub fn q_tags(vid: Option<u16>) -> Vec<(u16, u16)> {
    vid.map(|v| vec![(ETH_P_8021Q, tci(0, false, v))])
        .unwrap_or_default()
}

/// An ARP packet (Ethernet/IPv4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arp {
    /// 1 request, 2 reply.
    pub op: u16,
    /// Sender MAC.
    pub sha: Mac,
    /// Sender IPv4.
    pub spa: [u8; 4],
    /// Target MAC.
    pub tha: Mac,
    /// Target IPv4.
    pub tpa: [u8; 4],
}

/// An ARP frame from `arp.sha` to `dst`, with `tags`.
#[must_use]
pub fn arp_frame(dst: Mac, tags: &[(u16, u16)], arp: &Arp) -> Vec<u8> {
    let mut p = Vec::with_capacity(28);
    p.extend_from_slice(&1u16.to_be_bytes());
    p.extend_from_slice(&ETH_P_IP.to_be_bytes());
    p.extend_from_slice(&[6, 4]);
    p.extend_from_slice(&arp.op.to_be_bytes());
    p.extend_from_slice(&arp.sha);
    p.extend_from_slice(&arp.spa);
    p.extend_from_slice(&arp.tha);
    p.extend_from_slice(&arp.tpa);
    build_eth(dst, arp.sha, tags, ETH_P_ARP, &p)
}

/// The Ethernet header and ARP packet of `frame`, if it is ARP.
#[must_use]
pub fn parse_arp(frame: &[u8]) -> Option<(Parsed, Arp)> {
    let h = parse_eth(frame)?;
    if h.ethertype != ETH_P_ARP {
        return None;
    }
    let p = h.payload(frame);
    if p.len() < 28 || p[0..2] != [0, 1] || p[2..4] != ETH_P_IP.to_be_bytes() {
        return None;
    }
    let arp = Arp {
        op: u16::from_be_bytes([p[6], p[7]]),
        sha: p[8..14].try_into().ok()?,
        spa: p[14..18].try_into().ok()?,
        tha: p[18..24].try_into().ok()?,
        tpa: p[24..28].try_into().ok()?,
    };
    Some((h, arp))
}

/// An IPv4 ICMP echo (request or reply) inside a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Echo {
    /// 8 request, 0 reply.
    pub icmp_type: u8,
    /// Source IPv4.
    pub src: [u8; 4],
    /// Destination IPv4.
    pub dst: [u8; 4],
}

/// The Ethernet header and ICMP echo of `frame`, if it is one.
#[must_use]
pub fn parse_echo(frame: &[u8]) -> Option<(Parsed, Echo)> {
    let h = parse_eth(frame)?;
    if h.ethertype != ETH_P_IP {
        return None;
    }
    let ip = h.payload(frame);
    if ip.len() < 20 || ip[0] >> 4 != 4 || ip[9] != 1 {
        return None;
    }
    let ihl = usize::from(ip[0] & 0xf) * 4;
    let icmp = ip.get(ihl..)?;
    let t = *icmp.first()?;
    if t != 0 && t != 8 {
        return None;
    }
    Some((
        h,
        Echo {
            icmp_type: t,
            src: ip[12..16].try_into().ok()?,
            dst: ip[16..20].try_into().ok()?,
        },
    ))
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in data.chunks(2) {
        let w = u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)]);
        sum += u32::from(w);
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    #[expect(clippy::cast_possible_truncation, reason = "folded to 16 bits above")]
    let s = !(sum as u16);
    s
}

/// The echo reply to the echo request `frame`, sent by `mac`, with the request's tags.
#[must_use]
pub fn echo_reply(frame: &[u8], mac: Mac) -> Option<Vec<u8>> {
    let (h, e) = parse_echo(frame)?;
    if e.icmp_type != 8 {
        return None;
    }
    let mut ip = h.payload(frame).to_vec();
    let ihl = usize::from(ip[0] & 0xf) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    ip.truncate(total.max(ihl + 8));
    ip[12..16].copy_from_slice(&e.dst);
    ip[16..20].copy_from_slice(&e.src);
    ip[8] = 64;
    ip[10..12].copy_from_slice(&[0, 0]);
    let c = checksum(&ip[..ihl]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip[ihl] = 0;
    ip[ihl + 2..ihl + 4].copy_from_slice(&[0, 0]);
    let c = checksum(&ip[ihl..]);
    ip[ihl + 2..ihl + 4].copy_from_slice(&c.to_be_bytes());
    Some(build_eth(h.src, mac, &h.tags, ETH_P_IP, &ip))
}

/// What the [`Responder`] saw: the frame's outer VLAN (None: untagged) and what it was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    /// An ARP request for `tpa`; whether it was answered.
    ArpRequest {
        /// VLAN of the frame.
        vlan: Option<u16>,
        /// Target address asked for.
        tpa: [u8; 4],
        /// Answered.
        answered: bool,
    },
    /// An ICMP echo request to `dst`; whether it was answered.
    EchoRequest {
        /// VLAN of the frame.
        vlan: Option<u16>,
        /// Destination address.
        dst: [u8; 4],
        /// Answered.
        answered: bool,
    },
    /// Anything else (ethertype after the tags).
    Other {
        /// VLAN of the frame.
        vlan: Option<u16>,
        /// Ethertype.
        ethertype: u16,
    },
}

/// The upstream router, played by the test: on the upstream switch's `eth0`, answers ARP
/// requests and ICMP echo requests for its addresses, each only on its VLAN (tagged 802.1Q),
/// from [`UPSTREAM_MAC`]. Runs on a thread until [`Responder::finish`] (or drop).
#[derive(Debug)]
pub struct Responder {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Result<Vec<Seen>>>>,
}

impl Responder {
    /// Start answering for `answers`: (VLAN, IPv4 address).
    pub fn start(sim: &SeedFull, answers: &[(u16, &str)]) -> Result<Responder> {
        let sock = sim.socket("up")?;
        let answers: Vec<(u16, [u8; 4])> = answers.iter().map(|(v, a)| (*v, ipv4(a))).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let handle = std::thread::spawn(move || -> Result<Vec<Seen>> {
            let mut seen = Vec::new();
            while !stop2.load(Ordering::Relaxed) {
                let Some(f) = sock.recv_timeout(Duration::from_millis(20))? else {
                    continue;
                };
                let Some(h) = parse_eth(&f) else { continue };
                let vlan = match h.tags.first() {
                    Some((ETH_P_8021Q, t)) => Some(t & 0xfff),
                    Some(_) => continue,
                    None => None,
                };
                let mine = |ip: [u8; 4]| vlan.is_some_and(|v| answers.contains(&(v, ip)));
                if let Some((_, a)) = parse_arp(&f) {
                    if a.op == 1 {
                        let answered = mine(a.tpa);
                        if answered {
                            let reply = Arp {
                                op: 2,
                                sha: UPSTREAM_MAC,
                                spa: a.tpa,
                                tha: a.sha,
                                tpa: a.spa,
                            };
                            sock.send(&arp_frame(a.sha, &q_tags(vlan), &reply))?;
                        }
                        seen.push(Seen::ArpRequest {
                            vlan,
                            tpa: a.tpa,
                            answered,
                        });
                        continue;
                    }
                }
                if let Some((_, e)) = parse_echo(&f) {
                    if e.icmp_type == 8 {
                        let answered = mine(e.dst) && h.dst == UPSTREAM_MAC;
                        if answered {
                            if let Some(r) = echo_reply(&f, UPSTREAM_MAC) {
                                sock.send(&r)?;
                            }
                        }
                        seen.push(Seen::EchoRequest {
                            vlan,
                            dst: e.dst,
                            answered,
                        });
                        continue;
                    }
                }
                seen.push(Seen::Other {
                    vlan,
                    ethertype: h.ethertype,
                });
            }
            Ok(seen)
        });
        Ok(Responder {
            stop,
            handle: Some(handle),
        })
    }

    /// Stop and return what it saw, in order.
    pub fn finish(mut self) -> Result<Vec<Seen>> {
        self.join()
    }

    fn join(&mut self) -> Result<Vec<Seen>> {
        self.stop.store(true, Ordering::Relaxed);
        match self.handle.take() {
            Some(h) => h.join().map_err(|_| anyhow!("responder panicked"))?,
            None => Ok(Vec::new()),
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        let _ = self.join();
    }
}

// ---------------------------------------------------------------------------
// A numbered steady flow
// ---------------------------------------------------------------------------

/// The outcome of a [`Flow`].
#[derive(Clone, Debug)]
pub struct FlowResult {
    /// Frames sent.
    pub sent: u32,
    /// Distinct frames of the flow received.
    pub received: u32,
    /// Ids sent but never received.
    pub missing: Vec<u32>,
    /// Frames received more than once (counting each extra copy).
    pub duplicates: u32,
}

/// Test frames numbered `base`, `base + 1`, … sent from one raw socket at a fixed rate while
/// a collector counts them on another.
#[derive(Debug)]
pub struct Flow {
    stop_send: Arc<AtomicBool>,
    stop_recv: Arc<AtomicBool>,
    sender: Option<JoinHandle<Result<u32>>>,
    receiver: Option<JoinHandle<Result<Vec<u32>>>>,
    base: u32,
}

impl Flow {
    /// Start sending `test_frame(dst, src, [], base + i)` out of `from` every `1/rate_hz`
    /// seconds, and collecting the flow's frames on `to`.
    #[must_use]
    pub fn start(
        from: RawSocket,
        to: RawSocket,
        dst: Mac,
        src: Mac,
        rate_hz: u32,
        base: u32,
    ) -> Flow {
        let stop_send = Arc::new(AtomicBool::new(false));
        let stop_recv = Arc::new(AtomicBool::new(false));
        let (ss, sr) = (Arc::clone(&stop_send), Arc::clone(&stop_recv));
        let receiver = std::thread::spawn(move || -> Result<Vec<u32>> {
            let mut got = Vec::new();
            while !sr.load(Ordering::Relaxed) {
                if let Some(f) = to.recv_timeout(Duration::from_millis(20))? {
                    if let Some(id) = find_marker(&f).filter(|id| *id >= base) {
                        got.push(id);
                    }
                }
            }
            // Whatever is still queued.
            for f in to.collect(Duration::ZERO)? {
                if let Some(id) = find_marker(&f).filter(|id| *id >= base) {
                    got.push(id);
                }
            }
            Ok(got)
        });
        let sender = std::thread::spawn(move || -> Result<u32> {
            let period = Duration::from_secs(1) / rate_hz.max(1);
            let start = Instant::now();
            let mut i: u32 = 0;
            while !ss.load(Ordering::Relaxed) {
                from.send(&test_frame(dst, src, &[], base + i))?;
                i += 1;
                let next = start + period * i;
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                }
            }
            Ok(i)
        });
        Flow {
            stop_send,
            stop_recv,
            sender: Some(sender),
            receiver: Some(receiver),
            base,
        }
    }

    /// Stop sending, give the last frames `grace` to arrive, and count.
    pub fn finish(mut self, grace: Duration) -> Result<FlowResult> {
        self.stop_send.store(true, Ordering::Relaxed);
        let sent = self
            .sender
            .take()
            .ok_or_else(|| anyhow!("flow already finished"))?
            .join()
            .map_err(|_| anyhow!("flow sender panicked"))??;
        std::thread::sleep(grace);
        self.stop_recv.store(true, Ordering::Relaxed);
        let got = self
            .receiver
            .take()
            .ok_or_else(|| anyhow!("flow already finished"))?
            .join()
            .map_err(|_| anyhow!("flow receiver panicked"))??;
        let distinct: BTreeSet<u32> = got.iter().copied().collect();
        let missing = (self.base..self.base + sent)
            .filter(|id| !distinct.contains(id))
            .collect();
        Ok(FlowResult {
            sent,
            received: u32::try_from(distinct.len()).unwrap_or(u32::MAX),
            missing,
            duplicates: u32::try_from(got.len() - distinct.len()).unwrap_or(u32::MAX),
        })
    }
}

impl Drop for Flow {
    fn drop(&mut self) {
        self.stop_send.store(true, Ordering::Relaxed);
        self.stop_recv.store(true, Ordering::Relaxed);
        if let Some(h) = self.sender.take() {
            let _ = h.join();
        }
        if let Some(h) = self.receiver.take() {
            let _ = h.join();
        }
    }
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

    #[test]
    fn echo_reply_swaps_and_checksums() {
        // An echo request 10.94.0.1 → 10.94.0.100, tagged 4094, as ping sends it.
        let mut ip = vec![
            0x45, 0, 0, 28, 0x12, 0x34, 0x40, 0, 64, 1, 0, 0, 10, 94, 0, 1, 10, 94, 0, 100,
        ];
        let c = checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        let mut icmp = vec![8, 0, 0, 0, 0xab, 0xcd, 0, 1];
        let c = checksum(&icmp);
        icmp[2..4].copy_from_slice(&c.to_be_bytes());
        ip.extend(icmp);
        let src = [0x00, 0x16, 0x3e, 0, 0, 1];
        let req = build_eth(UPSTREAM_MAC, src, &q_tags(Some(4094)), ETH_P_IP, &ip);
        let rep = echo_reply(&req, UPSTREAM_MAC).expect("reply");
        let (h, e) = parse_echo(&rep).expect("parse");
        assert_eq!(
            (h.dst, h.src, h.tags.clone()),
            (src, UPSTREAM_MAC, q_tags(Some(4094)))
        );
        assert_eq!(
            e,
            Echo {
                icmp_type: 0,
                src: [10, 94, 0, 100],
                dst: [10, 94, 0, 1]
            }
        );
        let ipr = h.payload(&rep);
        assert_eq!(checksum(&ipr[..20]), 0, "IP header checksum");
        assert_eq!(checksum(&ipr[20..]), 0, "ICMP checksum");
    }

    #[test]
    fn arp_round_trip() {
        let a = Arp {
            op: 1,
            sha: [2, 0, 0, 0, 0, 1],
            spa: [10, 0, 0, 1],
            tha: [0; 6],
            tpa: [10, 0, 0, 2],
        };
        let f = arp_frame([0xff; 6], &q_tags(Some(7)), &a);
        assert_eq!(f.len(), 46);
        let (h, b) = parse_arp(&f).expect("parse");
        assert_eq!(h.tags, q_tags(Some(7)));
        assert_eq!(a, b);
    }
}
