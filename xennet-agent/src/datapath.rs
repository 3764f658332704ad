//! The running datapath: programs loaded, maps filled and pinned, ports attached.
//!
//! Maps are filled before any program is attached, so the first frame already sees the whole
//! configuration. Dropping a [`Datapath`] detaches every program and removes the pins.

use std::{
    collections::BTreeMap,
    ffi::CString,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, anyhow, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{DevMapHash, HashMap, MapData, PerCpuArray, PerCpuValues},
    programs::{
        ProgramFd, SchedClassifier, TcAttachType, Xdp, XdpMode, tc::SchedClassifierLinkId,
        xdp::XdpLinkId,
    },
};
use tracing::{info, warn};
use xennet_common::{
    maps::{
        FDB_STATIC, FdbKey, FdbVal, MAP_FDB, MAP_FLOOD, MAP_LEARNED, MAP_MEMBERS, MAP_PORTS,
        MAP_STATS, MAP_TX, MAX_PORTS, MEMBER_COUNT, MemberKey, PORT_ACCESS, PORT_F_FLOOD_VIA_TC,
        PORT_F_TC_ONLY, PORT_F_XDP, PORT_TRUNK, PROG_FLOOD_OUT, PROG_PASS, PROG_TC, PROG_XDP,
        PortConf,
    },
    stats::PortStats,
};

use crate::{
    config::{AttachMode, BridgeSpec, Config, HostSpec, MacAddr, PortMode, PortSpec},
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
}

struct PortState {
    public: Port,
    bridge_id: u32,
    spec: PortSpec,
    links: Links,
    /// The port map value last written.
    conf: PortConf,
    /// Whether the port is in the XDP redirect maps (`XN_TX`, `XN_FLOOD`).
    in_xdp_maps: bool,
}

/// A port's program links: TC always, XDP in the XDP modes.
struct Links {
    tc: SchedClassifierLinkId,
    xdp: Option<XdpLinkId>,
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
#[derive(Clone, Debug, Default, serde::Serialize)]
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
    ports: BTreeMap<String, PortState>,
    /// Bridge name → (id, aging in ns; 0 = never).
    bridges: BTreeMap<String, (u32, u64)>,
    learned: LearnedCounts,
    flood_prog: ProgramFd,
    pinned: Vec<PathBuf>,
    /// Bridge id → the TC flood list as written to `XN_MEMBERS` (index order).
    members: BTreeMap<u32, Vec<u32>>,
    /// The static FDB entries this agent wrote, and their port.
    statics: BTreeMap<FdbKey, u32>,
    /// Interfaces running the pass program (dom0 sides of host ports).
    passing: BTreeMap<String, XdpLinkId>,
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

/// Monotonic clock in nanoseconds, the clock of `bpf_ktime_get_coarse_ns` (`CLOCK_MONOTONIC_COARSE`).
#[must_use]
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer; the clock always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &raw mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
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

/// The bridge side of a bridge's host port, as a port of that bridge.
#[must_use]
pub fn host_port_spec(host: &HostSpec) -> PortSpec {
    PortSpec {
        interface: host.peer.clone(),
        mode: host.mode.clone(),
        attach: AttachMode::Auto,
        macs: Vec::new(),
        mac_limit: host.mac_limit,
    }
}

impl Datapath {
    /// Load the embedded object into the kernel (verifier included); nothing is attached yet.
    pub fn load(pin_dir: &Path) -> anyhow::Result<Self> {
        Self::load_sized(pin_dir, xennet_common::maps::FDB_MAX_ENTRIES)
    }

    /// As [`Datapath::load`], with an FDB of `fdb_max_entries` entries.
    pub fn load_sized(pin_dir: &Path, fdb_max_entries: u32) -> anyhow::Result<Self> {
        let object = crate::ebpf::object()?;
        let mut ebpf = EbpfLoader::new()
            .map_max_entries(MAP_FDB, fdb_max_entries)
            .load(object)
            .context("loading the eBPF object into the kernel")?;
        let tc: &mut SchedClassifier = ebpf
            .program_mut(PROG_TC)
            .ok_or_else(|| anyhow!("object has no program {PROG_TC}"))?
            .try_into()
            .context("program type")?;
        tc.load()
            .with_context(|| format!("verifying program {PROG_TC}"))?;
        for name in [PROG_XDP, PROG_FLOOD_OUT, PROG_PASS] {
            let prog: &mut Xdp = ebpf
                .program_mut(name)
                .ok_or_else(|| anyhow!("object has no program {name}"))?
                .try_into()
                .with_context(|| format!("program {name} type"))?;
            prog.load()
                .with_context(|| format!("verifying program {name}"))?;
        }
        let flood_prog = {
            let prog: &Xdp = ebpf
                .program(PROG_FLOOD_OUT)
                .ok_or_else(|| anyhow!("object has no program {PROG_FLOOD_OUT}"))?
                .try_into()
                .context("program type")?;
            prog.fd()
                .context("flood program fd")?
                .try_clone()
                .context("duplicating the flood program fd")?
        };
        let learned = {
            let map = ebpf
                .map(MAP_LEARNED)
                .ok_or_else(|| anyhow!("object has no map {MAP_LEARNED}"))?;
            let aya::maps::Map::Array(data) = map else {
                bail!("map {MAP_LEARNED} is not an array");
            };
            LearnedCounts::map(data)?
        };
        Ok(Datapath {
            ebpf,
            pin_dir: pin_dir.to_path_buf(),
            ports: BTreeMap::new(),
            bridges: BTreeMap::new(),
            learned,
            flood_prog,
            pinned: Vec::new(),
            members: BTreeMap::new(),
            statics: BTreeMap::new(),
            passing: BTreeMap::new(),
        })
    }

    /// The attached ports, by interface name.
    #[must_use]
    pub fn ports(&self) -> Vec<Port> {
        self.ports.values().map(|p| p.public.clone()).collect()
    }

    /// The XDP program (for `BPF_PROG_TEST_RUN` in tests and benchmarks).
    pub fn xdp_program(&mut self) -> anyhow::Result<&mut Xdp> {
        self.program_mut(PROG_XDP)
    }

    fn program_mut(&mut self, name: &str) -> anyhow::Result<&mut Xdp> {
        self.ebpf
            .program_mut(name)
            .ok_or_else(|| anyhow!("object has no program {name}"))?
            .try_into()
            .context("program type")
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

    /// Bring the datapath to `cfg`: attach new ports, detach removed ones, rewrite changed
    /// ones in place, and make the static FDB entries exactly the configured ones. Ports that
    /// did not change are not touched, so their traffic flows on undisturbed.
    pub fn apply(&mut self, cfg: &Config) -> anyhow::Result<Changes> {
        let mut changes = Changes::default();
        // Stable bridge ids: a bridge keeps its id across reloads.
        let mut bridges = BTreeMap::new();
        for b in &cfg.bridges {
            let aging = u64::from(b.fdb_aging_secs) * 1_000_000_000;
            let id = match self.bridges.get(&b.name) {
                Some((id, _)) => *id,
                None => (1..=u32::MAX)
                    .find(|i| {
                        !self.bridges.values().any(|(id, _)| id == i)
                            && !bridges.values().any(|(id, _): &(u32, u64)| id == i)
                    })
                    .ok_or_else(|| anyhow!("out of bridge ids"))?,
            };
            bridges.insert(b.name.clone(), (id, aging));
        }
        // Desired ports: configured ones plus the bridge side of each host port.
        let mut want: BTreeMap<String, (&BridgeSpec, PortSpec)> = BTreeMap::new();
        for b in &cfg.bridges {
            for p in &b.ports {
                want.insert(p.interface.clone(), (b, p.clone()));
            }
            if let Some(h) = &b.host {
                want.insert(h.peer.clone(), (b, host_port_spec(h)));
            }
        }
        // Removed (or moved to another bridge): detach first, so a slot or an FDB entry is
        // never shared between an old and a new port.
        let gone: Vec<String> = self
            .ports
            .iter()
            .filter(|(name, st)| {
                want.get(*name).is_none_or(|(b, _)| {
                    b.name != st.public.bridge
                        || bridges.get(&b.name).map(|x| x.0) != Some(st.bridge_id)
                })
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in gone {
            self.remove_port(&name)?;
            changes.removed.push(name);
        }
        self.bridges = bridges;
        for (name, (b, spec)) in &want {
            let (bid, _) = self.bridges[&b.name];
            let host = b.host.as_ref().is_some_and(|h| &h.peer == name);
            if self.ports.contains_key(name) {
                match self.update_port(name, bid, b.tpid, spec) {
                    Ok(true) => changes.changed.push(name.clone()),
                    Ok(false) => {}
                    Err(e) => changes.failed.push(format!("{name}: {e:#}")),
                }
            } else {
                match self.add_port(&b.name, bid, b.tpid, spec, host) {
                    Ok(()) => changes.added.push(name.clone()),
                    Err(e) => changes
                        .failed
                        .push(format!("bridge {:?}, port {name:?}: {e:#}", b.name)),
                }
            }
        }
        self.refresh()?;
        let (added, removed) = self.sync_statics(cfg)?;
        changes.statics_added = added;
        changes.statics_removed = removed;
        Ok(changes)
    }

    fn alloc_slot(&self) -> anyhow::Result<u32> {
        let used: std::collections::BTreeSet<u32> =
            self.ports.values().map(|p| p.public.slot).collect();
        // The first gap: slots are dense from 1, so this is O(ports) once, not per candidate.
        (1..=MAX_PORTS)
            .find(|s| !used.contains(s))
            .ok_or_else(|| anyhow!("all {MAX_PORTS} port slots in use"))
    }

    fn add_port(
        &mut self,
        bridge: &str,
        bid: u32,
        tpid: u16,
        spec: &PortSpec,
        host: bool,
    ) -> anyhow::Result<()> {
        let idx = ifindex(&spec.interface)?;
        let slot = self.alloc_slot()?;
        self.zero_slot(slot)?;
        self.learned.reset(slot);
        let conf = port_conf(bid, tpid, slot, spec);
        let mut ports: HashMap<&mut MapData, u32, PortConf> = self.map_mut(MAP_PORTS)?;
        ports
            .insert(idx, conf, 0)
            .with_context(|| format!("adding {} to {MAP_PORTS}", spec.interface))?;
        let (attached, links) = match self.attach(&spec.interface, idx, spec.attach) {
            Ok(a) => a,
            Err(e) => {
                // Roll back the map entries of this port.
                let _ = self.unmap_port(idx);
                return Err(e);
            }
        };
        info!(bridge, port = %spec.interface, ifindex = idx, slot, mode = %attached, vlans = %describe_mode(&spec.mode), "port attached");
        self.ports.insert(
            spec.interface.clone(),
            PortState {
                public: Port {
                    bridge: bridge.to_string(),
                    interface: spec.interface.clone(),
                    ifindex: idx,
                    slot,
                    attached,
                    vlans: describe_mode(&spec.mode),
                    host,
                },
                bridge_id: bid,
                spec: spec.clone(),
                links,
                conf,
                in_xdp_maps: false,
            },
        );
        Ok(())
    }

    /// Rewrite a port whose spec changed; true when something changed.
    fn update_port(
        &mut self,
        name: &str,
        bid: u32,
        tpid: u16,
        spec: &PortSpec,
    ) -> anyhow::Result<bool> {
        let Some(st) = self.ports.get(name) else {
            return Ok(false);
        };
        if st.conf.tpid == tpid
            && st.spec.mode == spec.mode
            && st.spec.attach == spec.attach
            && st.spec.mac_limit == spec.mac_limit
        {
            return Ok(false);
        }
        let (idx, slot, reattach) = (
            st.public.ifindex,
            st.public.slot,
            st.spec.attach != spec.attach,
        );
        let mut conf = port_conf(bid, tpid, slot, spec);
        // Keep the flags until `refresh` recomputes them.
        conf.flags = st.conf.flags;
        let mut ports: HashMap<&mut MapData, u32, PortConf> = self.map_mut(MAP_PORTS)?;
        ports
            .insert(idx, conf, 0)
            .with_context(|| format!("updating {name} in {MAP_PORTS}"))?;
        // Learned entries in VLANs the port no longer carries would forward into them.
        let flushed = self.flush_fdb(|k, v| {
            v.ifindex == idx && v.flags & FDB_STATIC == 0 && !conf.carries(k.vlan)
        })?;
        for _ in 0..flushed {
            self.learned.dec(slot);
        }
        let Some(mut st) = self.ports.remove(name) else {
            return Ok(false);
        };
        st.conf = conf;
        if reattach {
            self.detach(name, st.links);
            match self.attach(name, idx, spec.attach) {
                Ok((a, l)) => {
                    st.public.attached = a;
                    st.links = l;
                }
                Err(e) => {
                    // The port is now detached: forget it entirely rather than keep a lie.
                    self.unmap_port(idx)?;
                    return Err(e);
                }
            }
        }
        st.spec = spec.clone();
        st.public.vlans = describe_mode(&spec.mode);
        self.ports.insert(name.to_string(), st);
        info!(port = %name, vlans = %describe_mode(&spec.mode), flushed, "port updated");
        Ok(true)
    }

    fn unmap_port(&mut self, idx: u32) -> anyhow::Result<()> {
        let mut flood: DevMapHash<&mut MapData> = self.map_mut(MAP_FLOOD)?;
        let _ = flood.remove(idx);
        let mut tx: DevMapHash<&mut MapData> = self.map_mut(MAP_TX)?;
        let _ = tx.remove(idx);
        let mut ports: HashMap<&mut MapData, u32, PortConf> = self.map_mut(MAP_PORTS)?;
        let _ = ports.remove(&idx);
        Ok(())
    }

    /// Detach a port and remove every trace of it: map entries, FDB entries (learned and
    /// static), its learned count.
    pub fn remove_port(&mut self, name: &str) -> anyhow::Result<()> {
        let Some(st) = self.ports.remove(name) else {
            bail!("no port {name}");
        };
        let idx = st.public.ifindex;
        self.detach(name, st.links);
        self.unmap_port(idx)?;
        let flushed = self.flush_fdb(|_, v| v.ifindex == idx)?;
        self.statics.retain(|_, i| *i != idx);
        self.learned.reset(st.public.slot);
        info!(port = %name, flushed, "port removed");
        Ok(())
    }

    /// Delete every FDB entry matching `pred`; returns how many learned entries went.
    fn flush_fdb<F: Fn(&FdbKey, &FdbVal) -> bool>(&mut self, pred: F) -> anyhow::Result<usize> {
        let mut fdb: HashMap<&mut MapData, FdbKey, FdbVal> = self.map_mut(MAP_FDB)?;
        let doomed: Vec<(FdbKey, FdbVal)> = fdb
            .iter()
            .filter_map(Result::ok)
            .filter(|(k, v)| pred(k, v))
            .collect();
        let mut learned = 0;
        for (k, v) in doomed {
            if fdb.remove(&k).is_ok() && v.flags & FDB_STATIC == 0 {
                learned += 1;
            }
        }
        Ok(learned)
    }

    /// Make the static FDB entries exactly those of `cfg`; returns (written, removed). Only
    /// the entries that differ from what this agent wrote before are touched.
    fn sync_statics(&mut self, cfg: &Config) -> anyhow::Result<(usize, usize)> {
        let mut want: BTreeMap<FdbKey, u32> = BTreeMap::new();
        for b in &cfg.bridges {
            let (bid, _) = self.bridges[&b.name];
            for p in &b.ports {
                let Some(idx) = self.ports.get(&p.interface).map(|s| s.public.ifindex) else {
                    continue;
                };
                for (mac, vlan) in &p.macs {
                    let key = FdbKey {
                        mac: mac.0,
                        vlan: *vlan,
                        bridge: bid,
                    };
                    want.insert(key, idx);
                }
            }
        }
        let slot_of: BTreeMap<u32, u32> = self
            .ports
            .values()
            .map(|p| (p.public.ifindex, p.public.slot))
            .collect();
        let stale: Vec<FdbKey> = self
            .statics
            .iter()
            .filter(|(k, idx)| want.get(*k) != Some(*idx))
            .map(|(k, _)| *k)
            .collect();
        let fresh: Vec<(FdbKey, u32)> = want
            .iter()
            .filter(|(k, idx)| self.statics.get(*k) != Some(*idx))
            .map(|(k, idx)| (*k, *idx))
            .collect();
        let mut fdb: HashMap<&mut MapData, FdbKey, FdbVal> = self.map_mut(MAP_FDB)?;
        let mut removed = 0;
        for k in &stale {
            if !want.contains_key(k) && fdb.remove(k).is_ok() {
                removed += 1;
            }
        }
        let mut replaced_learned = Vec::new();
        for (k, idx) in &fresh {
            if let Ok(old) = fdb.get(k, 0) {
                if old.flags & FDB_STATIC == 0 {
                    replaced_learned.push(old.ifindex);
                }
            }
            let val = FdbVal {
                ifindex: *idx,
                flags: FDB_STATIC,
                last_seen_ns: 0,
            };
            fdb.insert(k, val, 0)
                .with_context(|| format!("adding static MAC {} VLAN {}", fmt_mac(k.mac), k.vlan))?;
        }
        for idx in replaced_learned {
            if let Some(slot) = slot_of.get(&idx) {
                self.learned.dec(*slot);
            }
        }
        let added = fresh.len();
        self.statics = want;
        Ok((added, removed))
    }

    /// Every FDB entry, sorted by bridge, VLAN and MAC; only `bridge` when given.
    pub fn fdb_entries(&self, bridge: Option<&str>) -> anyhow::Result<Vec<FdbEntry>> {
        let fdb: HashMap<&MapData, FdbKey, FdbVal> =
            HashMap::try_from(self.map(MAP_FDB)?).context("XN_FDB type")?;
        let names: BTreeMap<u32, &str> = self
            .bridges
            .iter()
            .map(|(n, (id, _))| (*id, n.as_str()))
            .collect();
        let ports: BTreeMap<u32, &str> = self
            .ports
            .values()
            .map(|p| (p.public.ifindex, p.public.interface.as_str()))
            .collect();
        let now = monotonic_ns();
        let mut out = Vec::new();
        for item in &fdb {
            let (k, v) = item.context("iterating XN_FDB")?;
            let bname = names
                .get(&k.bridge)
                .map_or_else(|| format!("#{}", k.bridge), |n| (*n).to_string());
            if bridge.is_some_and(|b| b != bname) {
                continue;
            }
            let is_static = v.flags & FDB_STATIC != 0;
            #[expect(clippy::cast_precision_loss, reason = "ages in seconds")]
            let age = (!is_static).then(|| now.saturating_sub(v.last_seen_ns) as f64 / 1e9);
            out.push(FdbEntry {
                bridge: bname,
                mac: fmt_mac(k.mac),
                vlan: k.vlan,
                port: ports
                    .get(&v.ifindex)
                    .map_or_else(|| format!("ifindex {}", v.ifindex), |n| (*n).to_string()),
                is_static,
                age_secs: age,
            });
        }
        out.sort_by(|a, b| (&a.bridge, a.vlan, &a.mac).cmp(&(&b.bridge, b.vlan, &b.mac)));
        Ok(out)
    }

    /// Remove learned entries not seen for longer than their bridge's aging time; returns
    /// how many went.
    pub fn age(&mut self, now_ns: u64) -> anyhow::Result<usize> {
        let aging: BTreeMap<u32, u64> = self.bridges.values().copied().collect();
        let slot_of: BTreeMap<u32, u32> = self
            .ports
            .values()
            .map(|p| (p.public.ifindex, p.public.slot))
            .collect();
        let mut fdb: HashMap<&mut MapData, FdbKey, FdbVal> = self.map_mut(MAP_FDB)?;
        let old: Vec<(FdbKey, FdbVal)> = fdb
            .iter()
            .filter_map(Result::ok)
            .filter(|(k, v)| {
                v.flags & FDB_STATIC == 0
                    && aging
                        .get(&k.bridge)
                        .is_some_and(|a| *a != 0 && now_ns.saturating_sub(v.last_seen_ns) > *a)
            })
            .collect();
        let mut gone = Vec::new();
        for (k, v) in old {
            // Re-check: the station may have been seen (or moved) since the scan.
            let Ok(cur) = fdb.get(&k, 0) else { continue };
            if cur.last_seen_ns != v.last_seen_ns || cur.ifindex != v.ifindex {
                continue;
            }
            if fdb.remove(&k).is_ok() {
                gone.push(v.ifindex);
            }
        }
        for idx in &gone {
            if let Some(slot) = slot_of.get(idx) {
                self.learned.dec(*slot);
            }
        }
        Ok(gone.len())
    }

    /// MACs currently learned on port `name`.
    #[must_use]
    pub fn learned_on(&self, name: &str) -> Option<u32> {
        self.ports
            .get(name)
            .map(|p| self.learned.get(p.public.slot))
    }

    fn zero_slot(&mut self, slot: u32) -> anyhow::Result<()> {
        let n = aya::util::nr_cpus().map_err(|(_, e)| anyhow!("counting CPUs: {e}"))?;
        let mut stats: PerCpuArray<&mut MapData, PortStats> = PerCpuArray::try_from(
            self.ebpf
                .map_mut(MAP_STATS)
                .ok_or_else(|| anyhow!("object has no map {MAP_STATS}"))?,
        )
        .context("XN_STATS type")?;
        let zeros = PerCpuValues::try_from(vec![PortStats::ZERO; n]).context("per-CPU values")?;
        stats.set(slot, zeros, 0).context("zeroing a stats slot")?;
        Ok(())
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

    /// Attach the TC program (always) and the XDP program (XDP modes) to a port.
    fn attach(
        &mut self,
        name: &str,
        idx: u32,
        mode: AttachMode,
    ) -> anyhow::Result<(Attached, Links)> {
        // TC first: it must be in place before XDP starts deferring frames to it.
        let tc = self.attach_tc(name)?;
        let xdp = match mode {
            AttachMode::Tc => Ok(None),
            AttachMode::Xdp => self
                .xdp_program()?
                .attach_to_if_index(idx, XdpMode::Driver)
                .map(|l| Some((Attached::Xdp, l)))
                .with_context(|| format!("attaching native XDP to {name}")),
            AttachMode::XdpGeneric => self
                .xdp_program()?
                .attach_to_if_index(idx, XdpMode::Skb)
                .map(|l| Some((Attached::XdpGeneric, l)))
                .with_context(|| format!("attaching generic XDP to {name}")),
            AttachMode::Auto => {
                match self.xdp_program()?.attach_to_if_index(idx, XdpMode::Driver) {
                    Ok(l) => Ok(Some((Attached::Xdp, l))),
                    Err(e) => {
                        info!(port = %name, reason = %e, "no native XDP: TC only");
                        Ok(None)
                    }
                }
            }
        };
        match xdp {
            Ok(Some((a, l))) => Ok((a, Links { tc, xdp: Some(l) })),
            Ok(None) => Ok((Attached::Tc, Links { tc, xdp: None })),
            Err(e) => {
                if let Ok(p) = self.tc_program() {
                    let _ = p.detach(tc);
                }
                Err(e)
            }
        }
    }

    fn tc_program(&mut self) -> anyhow::Result<&mut SchedClassifier> {
        self.ebpf
            .program_mut(PROG_TC)
            .ok_or_else(|| anyhow!("object has no program {PROG_TC}"))?
            .try_into()
            .context("program type")
    }

    /// tcx on kernels ≥ 6.6 (aya picks it); before that a clsact qdisc and a netlink filter.
    fn attach_tc(&mut self, name: &str) -> anyhow::Result<SchedClassifierLinkId> {
        let prog = self.tc_program()?;
        match prog.attach(name, TcAttachType::Ingress) {
            Ok(l) => Ok(l),
            Err(first) => {
                // Older kernels: the filter needs a clsact qdisc (EEXIST is fine).
                let _ = aya::programs::tc::qdisc_add_clsact(name);
                prog.attach(name, TcAttachType::Ingress)
                    .with_context(|| format!("attaching TC to {name} (first attempt: {first})"))
            }
        }
    }

    /// Detach a port's programs; failures (interface already gone) are logged, not fatal.
    fn detach(&mut self, name: &str, links: Links) {
        if let Some(x) = links.xdp {
            if let Err(e) = self
                .xdp_program()
                .and_then(|p| p.detach(x).map_err(Into::into))
            {
                warn!(port = %name, error = %e, "XDP detach failed (interface gone?)");
            }
        }
        if let Err(e) = self
            .tc_program()
            .and_then(|p| p.detach(links.tc).map_err(Into::into))
        {
            warn!(port = %name, error = %e, "TC detach failed (interface gone?)");
        }
    }

    /// Recompute every port's flags (which ports take XDP frames, which bridges flood
    /// through TC), rewrite the port entries that changed, keep the XDP redirect maps to the
    /// ports that can take XDP frames, and rebuild the TC flood lists.
    fn refresh(&mut self) -> anyhow::Result<()> {
        let tc_bridges: std::collections::BTreeSet<u32> = self
            .ports
            .values()
            .filter(|p| p.public.attached != Attached::Xdp)
            .map(|p| p.bridge_id)
            .collect();
        let mut writes = Vec::new();
        for (name, p) in &self.ports {
            let mut conf = p.conf;
            conf.flags = 0;
            if p.public.attached != Attached::Xdp {
                conf.flags |= PORT_F_TC_ONLY;
            }
            if p.public.attached != Attached::Tc {
                conf.flags |= PORT_F_XDP;
            }
            if tc_bridges.contains(&p.bridge_id) {
                conf.flags |= PORT_F_FLOOD_VIA_TC;
            }
            writes.push((name.clone(), p.public.ifindex, conf, p.conf != conf));
        }
        let prog = self.flood_prog.try_clone().context("flood program fd")?;
        for (name, idx, conf, changed) in writes {
            if changed {
                let mut ports: HashMap<&mut MapData, u32, PortConf> = self.map_mut(MAP_PORTS)?;
                ports
                    .insert(idx, conf, 0)
                    .with_context(|| format!("updating {name} in {MAP_PORTS}"))?;
            }
            let xdp_target = conf.flags & PORT_F_TC_ONLY == 0;
            let in_maps = self.ports.get(&name).is_some_and(|p| p.in_xdp_maps);
            if xdp_target && !in_maps {
                let mut tx: DevMapHash<&mut MapData> = self.map_mut(MAP_TX)?;
                tx.insert(idx, idx, None, 0)
                    .with_context(|| format!("adding {name} to {MAP_TX}"))?;
                let mut flood: DevMapHash<&mut MapData> = self.map_mut(MAP_FLOOD)?;
                flood
                    .insert(idx, idx, Some(&prog), 0)
                    .with_context(|| format!("adding {name} to {MAP_FLOOD}"))?;
            } else if !xdp_target && in_maps {
                let mut tx: DevMapHash<&mut MapData> = self.map_mut(MAP_TX)?;
                let _ = tx.remove(idx);
                let mut flood: DevMapHash<&mut MapData> = self.map_mut(MAP_FLOOD)?;
                let _ = flood.remove(idx);
            }
            if let Some(p) = self.ports.get_mut(&name) {
                p.conf = conf;
                p.in_xdp_maps = xdp_target;
            }
        }
        self.sync_members()
    }

    /// Bring the TC flood lists in `XN_MEMBERS` to the current ports, with O(1) map writes
    /// per joining or leaving port: a leaver's slot takes the list's last entry, a joiner is
    /// appended. The count shrinks before entries go and grows after they are written, so the
    /// datapath never reads past valid entries.
    fn sync_members(&mut self) -> anyhow::Result<()> {
        let mut want: BTreeMap<u32, std::collections::BTreeSet<u32>> = BTreeMap::new();
        for p in self.ports.values() {
            want.entry(p.bridge_id)
                .or_default()
                .insert(p.public.ifindex);
        }
        let bridges: std::collections::BTreeSet<u32> =
            want.keys().chain(self.members.keys()).copied().collect();
        for bridge in bridges {
            let desired = want.remove(&bridge).unwrap_or_default();
            let mut list = self.members.remove(&bridge).unwrap_or_default();
            let mut members: HashMap<&mut MapData, MemberKey, u32> = self.map_mut(MAP_MEMBERS)?;
            let key = |idx| MemberKey { bridge, idx };
            // Leavers.
            let mut i = 0;
            while i < list.len() {
                if desired.contains(&list[i]) {
                    i += 1;
                    continue;
                }
                let tail = list.len() - 1;
                let n = u32::try_from(tail).context("member count")?;
                // Shrink first: the last entry stays readable at its old index meanwhile.
                members
                    .insert(key(MEMBER_COUNT), n, 0)
                    .context("member count")?;
                if i != tail {
                    let moved = list[tail];
                    members
                        .insert(key(u32::try_from(i).context("index")?), moved, 0)
                        .context("member list")?;
                }
                let _ = members.remove(&key(n));
                list.swap_remove(i);
            }
            // Joiners.
            for ifindex in desired {
                if list.contains(&ifindex) {
                    continue;
                }
                let n = u32::try_from(list.len()).context("member count")?;
                members.insert(key(n), ifindex, 0).context("member list")?;
                members
                    .insert(key(MEMBER_COUNT), n + 1, 0)
                    .context("member count")?;
                list.push(ifindex);
            }
            if list.is_empty() {
                let _ = members.remove(&key(MEMBER_COUNT));
            } else {
                self.members.insert(bridge, list);
            }
        }
        Ok(())
    }

    /// Attach the pass-everything program to `name` (the dom0 side of a host port), so that
    /// it can receive native XDP redirects. Idempotent.
    pub fn attach_pass(&mut self, name: &str) -> anyhow::Result<()> {
        if self.passing.contains_key(name) {
            return Ok(());
        }
        let idx = ifindex(name)?;
        let prog = self.program_mut(PROG_PASS)?;
        let link = match prog.attach_to_if_index(idx, XdpMode::Driver) {
            Ok(l) => l,
            Err(e) => {
                warn!(interface = %name, error = %e, "native XDP refused on host interface, using generic");
                prog.attach_to_if_index(idx, XdpMode::Skb)
                    .with_context(|| format!("attaching {PROG_PASS} to {name}"))?
            }
        };
        self.passing.insert(name.to_string(), link);
        Ok(())
    }

    /// Forget (and detach) the pass program of a host interface about to be deleted.
    pub fn forget_pass(&mut self, name: &str) {
        if let Some(link) = self.passing.remove(name) {
            if let Ok(p) = self.program_mut(PROG_PASS) {
                let _ = p.detach(link);
            }
        }
    }

    /// Pin the maps under the pin directory (for `xennet-agent stats`).
    pub fn pin(&mut self) -> anyhow::Result<()> {
        ensure_bpffs(&self.pin_dir)?;
        fs::create_dir_all(&self.pin_dir)
            .with_context(|| format!("creating pin directory {}", self.pin_dir.display()))?;
        for name in [
            MAP_PORTS,
            MAP_FDB,
            MAP_STATS,
            MAP_TX,
            MAP_FLOOD,
            MAP_LEARNED,
            MAP_MEMBERS,
        ] {
            let path = self.pin_dir.join(name);
            if path.exists() {
                warn!(path = %path.display(), "removing stale pin");
                fs::remove_file(&path)
                    .with_context(|| format!("removing stale pin {}", path.display()))?;
            }
            let map = self
                .ebpf
                .map(name)
                .ok_or_else(|| anyhow!("object has no map {name}"))?;
            map.pin(&path)
                .with_context(|| format!("pinning {name} at {}", path.display()))?;
            self.pinned.push(path);
        }
        Ok(())
    }
}

/// The conventional bpffs mount point.
const BPFFS_ROOT: &str = "/sys/fs/bpf";

fn is_bpffs(path: &Path) -> anyhow::Result<bool> {
    const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
    let c = CString::new(path.as_os_str().as_encoded_bytes())
        .with_context(|| format!("path {} contains NUL", path.display()))?;
    // SAFETY: a zeroed statfs is a valid out-parameter; c is NUL-terminated.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &raw mut st) } != 0 {
        bail!(
            "statfs {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
    }
    #[allow(
        clippy::useless_conversion,
        reason = "f_type's width differs between targets"
    )]
    Ok(i64::from(st.f_type) == BPF_FS_MAGIC)
}

/// Make sure `pin_dir` lies on a bpf filesystem. Like systemd at boot, mount one on
/// `/sys/fs/bpf` when that is where the pins go and nothing is mounted there yet; anywhere else,
/// fail with a clear message.
fn ensure_bpffs(pin_dir: &Path) -> anyhow::Result<()> {
    let existing = pin_dir
        .ancestors()
        .find(|p| p.exists())
        .ok_or_else(|| anyhow!("no existing ancestor of {}", pin_dir.display()))?;
    if is_bpffs(existing)? {
        return Ok(());
    }
    let root = Path::new(BPFFS_ROOT);
    if pin_dir.starts_with(root) && root.is_dir() && !is_bpffs(root)? {
        let src = c"bpf";
        let target = c"/sys/fs/bpf";
        let opts = c"mode=0700";
        // SAFETY: all strings are NUL-terminated literals.
        let rc = unsafe {
            libc::mount(
                src.as_ptr(),
                target.as_ptr(),
                src.as_ptr(),
                0,
                opts.as_ptr().cast(),
            )
        };
        if rc != 0 {
            bail!(
                "mounting bpffs on {BPFFS_ROOT}: {}",
                std::io::Error::last_os_error()
            );
        }
        info!("mounted a bpf filesystem on {BPFFS_ROOT}");
        return Ok(());
    }
    bail!(
        "pin_dir {} is not on a bpf filesystem ({} is not bpffs): mount one with \
         `mount -t bpf bpf DIR`; note that `ip netns exec` gives the command a fresh /sys without \
         the host's bpffs, so run the agent with `nsenter --net=/run/netns/NAME` instead",
        pin_dir.display(),
        existing.display()
    )
}

impl Drop for Datapath {
    fn drop(&mut self) {
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
        // The programs' links are dropped with `self.ebpf`, which detaches them.
    }
}
