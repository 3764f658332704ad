//! The running datapath: programs loaded, maps filled and pinned, ports attached.
//!
//! Maps are filled before any program is attached, so the first frame already sees the whole
//! configuration. A persistent datapath ([`Datapath::open`], the agent's) pins its maps and
//! links under `pin_dir` and outlives the process: a later agent adopts it ([`adopt`]) and
//! [`teardown`] removes it. An ephemeral one ([`Datapath::load`], tests) detaches everything
//! and removes its pins when dropped.
//!
//! The decisions (bridge ids, stats slots, flood lists, static FDB entries, what a reload
//! changes) are taken by the pure functions of [`plan`]; the other submodules carry them out:
//! `load` (programs), `attach` (links), `ports` (the port map and reloads), `fdb` (static
//! entries, listing, aging), `members` (flags, redirect maps, TC flood lists), `rates`
//! (bandwidth limits), `security` (what a port enforces), `pins` (bpffs, teardown), `adopt`
//! (taking over a pinned datapath), `migrate` (upgrading a pinned datapath to this build's map
//! layout; `carry` decides what is carried how, `rawmap` reads and writes maps of any layout),
//! `state` (lock and state file).

pub mod adopt;
mod attach;
mod carry;
mod fdb;
mod groups;
mod load;
mod members;
pub mod migrate;
mod pins;
pub mod plan;
mod ports;
pub mod rates;
mod rawmap;
mod rxvlan;
pub mod security;
pub mod state;
pub mod vslots;

pub use self::pins::{Teardown, teardown};

use std::{collections::BTreeMap, ffi::CString, fs, path::PathBuf};

use anyhow::{Context as _, anyhow, bail};
use aya::{
    Ebpf,
    maps::{HashMap, MapData, PerCpuArray},
    programs::ProgramFd,
};
use tracing::{info, warn};
use xennet_common::{
    maps::{FdbKey, MAP_PORTS, MAP_STATS, PORT_ACCESS, PORT_F_RATE, PORT_TRUNK, PortConf},
    stats::PortStats,
};

use crate::{
    config::{AttachMode, HostSpec, MacAddr, PortMode, PortSpec},
    learned::LearnedCounts,
};

/// How a port's program is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Attached {
    /// Native (driver) XDP.
    Xdp,
    /// Generic (skb) XDP.
    XdpGeneric,
    /// TC only.
    Tc,
}

impl std::fmt::Display for Attached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            Attached::Xdp => "xdp",
            Attached::XdpGeneric => "xdp-generic",
            Attached::Tc => "tc",
        })
    }
}

/// One attached port, as `ports` shows it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Port {
    /// Bridge name.
    pub bridge: String,
    /// Interface name.
    pub interface: String,
    /// Interface index.
    pub ifindex: u32,
    /// Stats slot.
    pub slot: u32,
    /// Attach mode in effect.
    pub attached: Attached,
    /// `access N`, `trunk A,B native N`, …
    pub vlans: String,
    /// Whether this is the bridge side of the bridge's host port.
    pub host: bool,
    /// What port security enforces on the port.
    #[serde(default)]
    pub security: security::SecurityView,
    /// The bandwidth limit it enforces in each direction (`100Mbit burst 256KiB`); `None`:
    /// none.
    #[serde(default)]
    pub rate: Option<String>,
    /// How its received VLAN tags reach the datapath, when the driver takes them out of the
    /// frame: from the XDP hint, or TC only (and why); `None`: in the frame.
    #[serde(default)]
    pub rx_vlan: Option<String>,
}

struct PortState {
    public: Port,
    bridge_id: u32,
    /// The configured attach mode (the one part of a port's spec not in `conf`).
    attach: AttachMode,
    links: Links,
    /// The port map value last written.
    conf: PortConf,
    /// Whether the port is in the XDP redirect maps (`XN_TX`, `XN_FLOOD`).
    in_xdp_maps: bool,
}

/// A port's program links: TC always, XDP in the XDP modes.
struct Links {
    tc: attach::OwnedLink,
    xdp: Option<attach::OwnedLink>,
}

/// One FDB entry, as `fdb show` prints it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct FdbEntry {
    /// Bridge name (or `#id` for an entry of no configured bridge).
    pub bridge: String,
    /// Station MAC.
    pub mac: String,
    /// VLAN id.
    pub vlan: u16,
    /// Port interface (or `ifindex N`).
    pub port: String,
    /// Configured (never ages) rather than learned.
    #[serde(rename = "static")]
    pub is_static: bool,
    /// Seconds since the station was last seen (learned entries; refreshed at most every second).
    pub age_secs: Option<f64>,
}

/// What a reconcile changed.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Changes {
    /// Ports attached.
    pub added: Vec<String>,
    /// Ports detached.
    pub removed: Vec<String>,
    /// Ports whose VLANs, limits or attach mode changed.
    pub changed: Vec<String>,
    /// Static FDB entries written and removed.
    pub statics_added: usize,
    /// Static FDB entries removed.
    pub statics_removed: usize,
    /// Ports that could not be attached or updated (`name: error`); the rest was applied.
    pub failed: Vec<String>,
}

/// The loaded datapath.
pub struct Datapath {
    ebpf: Ebpf,
    pin_dir: PathBuf,
    /// Maps and links pinned under `pin_dir`, left running when dropped.
    persistent: bool,
    ports: BTreeMap<String, PortState>,
    /// Bridge name → (id, aging in ns; 0 = never).
    bridges: BTreeMap<String, (u32, u64)>,
    learned: LearnedCounts,
    /// `XN_FDBGEN`: bumped after every FDB entry this agent removes or rewrites.
    fdb_gen: crate::fdbgen::FdbGen,
    flood_prog: ProgramFd,
    pinned: Vec<PathBuf>,
    /// Bridge id → the TC flood list as written to `XN_MEMBERS` (index order).
    members: BTreeMap<u32, Vec<u32>>,
    /// The per-VLAN counter slots as written to `XN_VSLOTS` (`None`: read them from the map).
    vslots: Option<vslots::Assigned>,
    /// The XDP flood groups this agent wrote to `XN_FLOODG`.
    groups: BTreeMap<xennet_common::vstats::VlanKey, groups::Group>,
    /// Whether the agent said that some VLANs have no flood group.
    groups_warned: bool,
    /// The static FDB entries this agent wrote, and their port.
    statics: BTreeMap<FdbKey, u32>,
    /// Interfaces running the pass program (dom0 sides of host ports).
    passing: BTreeMap<String, attach::OwnedLink>,
    /// Run-time ports (`port add` requests), kept in the state file.
    runtime: BTreeMap<String, crate::control::PortAdd>,
    /// dom0 sides of host ports this datapath's agents created.
    host_ports: std::collections::BTreeSet<String>,
    /// The map layout stamp (persistent datapath).
    layout: String,
    /// The state file as last written.
    last_saved: String,
    /// An upgrade to this build's map layout, started by [`Datapath::open`] and finished by
    /// [`Datapath::finish_upgrade`].
    upgrade: Option<migrate::Upgrade>,
}

/// Interface index of `name` in the current network namespace.
pub fn ifindex(name: &str) -> anyhow::Result<u32> {
    let c = CString::new(name).with_context(|| format!("interface name {name:?} contains NUL"))?;
    // SAFETY: valid NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        bail!(
            "interface {name:?} not found: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(i)
}

/// The map value describing `spec` as a port of a bridge.
#[must_use]
pub fn port_conf(bridge: u32, tpid: u16, slot: u32, spec: &PortSpec) -> PortConf {
    let mut p = match &spec.mode {
        PortMode::Access { vlan } => PortConf::new(bridge, slot, PORT_ACCESS, *vlan, tpid),
        PortMode::Trunk { vlans, native } => {
            let mut p = PortConf::new(bridge, slot, PORT_TRUNK, native.unwrap_or(0), tpid);
            for v in vlans {
                p.add_vlan(*v);
            }
            p
        }
    };
    p.max_learned = spec.mac_limit;
    p.sec = security::port_sec(&spec.security);
    if spec.rate.is_some() {
        p.flags |= PORT_F_RATE;
    }
    if spec.mac_move {
        p.flags |= xennet_common::maps::PORT_F_MAC_MOVE;
    }
    p
}

fn describe_mode(m: &PortMode) -> String {
    match m {
        PortMode::Access { vlan } => format!("access {vlan}"),
        PortMode::Trunk { vlans, native } => {
            let list: Vec<String> = vlans.iter().map(u16::to_string).collect();
            match native {
                Some(n) => format!("trunk {} native {n}", list.join(",")),
                None => format!("trunk {}", list.join(",")),
            }
        }
    }
}

fn fmt_mac(m: [u8; 6]) -> String {
    MacAddr(m).to_string()
}

/// The bridge side of a bridge's host port, as a port of that bridge. It is always attached
/// in TC: dom0's frames are skbs whose TCP/UDP checksums may still be `CHECKSUM_PARTIAL`, which
/// an XDP redirect would lose (docs/attach-modes.md, "dom0's checksums").
#[must_use]
pub fn host_port_spec(host: &HostSpec) -> PortSpec {
    PortSpec {
        interface: host.peer.clone(),
        mode: host.mode.clone(),
        attach: AttachMode::Tc,
        macs: Vec::new(),
        mac_limit: host.mac_limit,
        security: crate::config::PortSecurity::default(),
        rate: None,
        // dom0 is a station, not the network a migrated guest reappears in.
        mac_move: false,
    }
}

impl Datapath {
    /// The attached ports, by interface name.
    #[must_use]
    pub fn ports(&self) -> Vec<Port> {
        self.ports
            .values()
            .map(|p| Port {
                security: security::view(&p.conf.sec),
                ..p.public.clone()
            })
            .collect()
    }

    /// Every port's counters, read from the loaded maps (names resolved in the calling
    /// thread's network namespace).
    pub fn counters(&self) -> anyhow::Result<Vec<crate::stats::PortCounters>> {
        let ports: HashMap<&MapData, u32, PortConf> =
            HashMap::try_from(self.map(MAP_PORTS)?).context("XN_PORTS type")?;
        let stats: PerCpuArray<&MapData, PortStats> =
            PerCpuArray::try_from(self.map(MAP_STATS)?).context("XN_STATS type")?;
        crate::stats::collect(&ports, &stats)
    }

    /// MACs currently learned on port `name`.
    #[must_use]
    pub fn learned_on(&self, name: &str) -> Option<u32> {
        self.ports
            .get(name)
            .map(|p| self.learned.get(p.public.slot))
    }

    /// Interface index → stats slot of every attached port.
    fn slots(&self) -> BTreeMap<u32, u32> {
        self.ports
            .values()
            .map(|p| (p.public.ifindex, p.public.slot))
            .collect()
    }

    fn map(&self, name: &str) -> anyhow::Result<&aya::maps::Map> {
        self.ebpf
            .map(name)
            .ok_or_else(|| anyhow!("object has no map {name}"))
    }

    fn map_mut<'a, T>(&'a mut self, name: &str) -> anyhow::Result<T>
    where
        T: TryFrom<&'a mut aya::maps::Map, Error = aya::maps::MapError>,
    {
        let m = self
            .ebpf
            .map_mut(name)
            .ok_or_else(|| anyhow!("object has no map {name}"))?;
        T::try_from(m).with_context(|| format!("map {name} has an unexpected type"))
    }
}

impl Drop for Datapath {
    fn drop(&mut self) {
        if self.persistent {
            // Maps and links stay pinned: the datapath forwards on without us.
            info!(ports = self.ports.len(), dir = %self.pin_dir.display(), "leaving the datapath running");
            return;
        }
        let pinned = !self.pinned.is_empty();
        for p in self.pinned.drain(..) {
            if let Err(e) = fs::remove_file(&p) {
                warn!(path = %p.display(), error = %e, "could not remove pin");
            }
        }
        // Our pins are gone; the directory goes too unless something else lives in it.
        if pinned && fs::remove_dir(&self.pin_dir).is_err() {
            info!(dir = %self.pin_dir.display(), "pin directory not empty, left in place");
        }
        info!(ports = self.ports.len(), "detaching");
        // The links (unpinned) close with the ports and `passing`, which detaches them.
    }
}
