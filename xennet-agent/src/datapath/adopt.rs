//! Taking over a datapath pinned by an earlier agent: its ports, links, flood lists and static
//! entries are read back from the pinned maps, links and the state file, and this build's
//! programs are swapped into the links in place — nothing is detached, learned entries and
//! counters stay. Also keeps the state file up to date.

use std::{collections::BTreeMap, fs};

use anyhow::Context as _;
use aya::maps::{HashMap, MapData};
use tracing::{info, warn};
use xennet_common::maps::{
    FDB_STATIC, FdbKey, FdbVal, MAP_MEMBERS, MAP_PORTS, MEMBER_COUNT, MemberKey, PortConf,
};

use super::{
    Attached, Datapath, Links, Port, PortState,
    attach::LinkKind,
    state::{PortRecord, State},
};
use crate::{config::AttachMode, control::PortAdd, stats::ifname};

/// What adoption found.
#[derive(Debug, Default)]
pub struct Adopted {
    /// Ports taken over, links and all.
    pub ports: Vec<String>,
    /// Ports whose interface or link is gone: removed.
    pub stale: Vec<String>,
    /// Host interfaces whose pass link was taken over.
    pub passing: Vec<String>,
    /// Learned FDB entries found.
    pub learned: usize,
}

fn parse_attach(s: &str) -> Option<AttachMode> {
    [
        AttachMode::Auto,
        AttachMode::Xdp,
        AttachMode::XdpGeneric,
        AttachMode::Tc,
    ]
    .into_iter()
    .find(|m| m.as_str() == s)
}

impl Datapath {
    /// Take over what an earlier agent left pinned (nothing on a first start). `state` is the
    /// state file it wrote.
    pub fn adopt(&mut self, state: Option<&State>) -> anyhow::Result<Adopted> {
        let mut found = Adopted::default();
        let empty = State::default();
        let state = state.unwrap_or(&empty);
        self.runtime.clone_from(&state.runtime);
        self.host_ports.clone_from(&state.host_ports);
        let names: BTreeMap<u32, &String> = state.bridges.iter().map(|(n, i)| (*i, n)).collect();
        self.bridges = state
            .bridges
            .iter()
            .map(|(n, id)| (n.clone(), (*id, 0)))
            .collect();
        let mut links: BTreeMap<(LinkKind, u32), std::path::PathBuf> = BTreeMap::new();
        for e in fs::read_dir(&self.pin_dir)
            .with_context(|| format!("reading {}", self.pin_dir.display()))?
            .filter_map(Result::ok)
        {
            if let Some(k) = LinkKind::parse_pin_name(&e.file_name().to_string_lossy()) {
                links.insert(k, e.path());
            }
        }
        let entries = self.pinned_ports(state)?;
        for (idx, conf) in entries {
            let name = ifname(idx);
            let tc = links.remove(&(LinkKind::Tc, idx));
            let xdp = links.remove(&(LinkKind::Xdp, idx));
            match self.adopt_port(&name, idx, &conf, tc, xdp, state, &names) {
                Ok(()) => found.ports.push(name),
                Err(e) => {
                    warn!(port = %name, ifindex = idx, error = %format!("{e:#}"), "pinned port not adoptable: removed");
                    self.unmap_port(idx)?;
                    self.flush_fdb(|_, v| v.ifindex == idx)?;
                    self.learned.reset(conf.slot);
                    found.stale.push(name);
                }
            }
        }
        for ((kind, idx), path) in links {
            let name = ifname(idx);
            if kind == LinkKind::Pass {
                match self.replace_in(kind, &path) {
                    Ok(l) => {
                        self.passing.insert(name.clone(), l);
                        found.passing.push(name);
                        continue;
                    }
                    Err(e) => {
                        warn!(interface = %name, error = %format!("{e:#}"), "pinned pass link dropped");
                    }
                }
            }
            // A link whose port entry is gone (a crash while removing it): finish the job.
            info!(path = %path.display(), "removing a leftover link");
            super::attach::unpin(&path).with_context(|| format!("unpinning {}", path.display()))?;
        }
        self.adopt_members()?;
        self.adopt_statics(&mut found)?;
        Ok(found)
    }

    /// The ports of the pinned datapath: from `XN_PORTS`, or from the state file when an
    /// upgrade rebuilds that map (the first reconcile then rewrites each port's entry).
    fn pinned_ports(&self, state: &State) -> anyhow::Result<Vec<(u32, PortConf)>> {
        if self.upgrade.as_ref().is_some_and(|u| u.refills(MAP_PORTS)) {
            let out = state
                .ports
                .values()
                .filter(|r| r.slot != 0)
                .filter_map(|r| {
                    let bridge = *state.bridges.get(&r.bridge)?;
                    Some((r.ifindex, PortConf::new(bridge, r.slot, 0, 0, 0)))
                })
                .collect();
            return Ok(out);
        }
        let ports: HashMap<&MapData, u32, PortConf> =
            HashMap::try_from(self.map(MAP_PORTS)?).context("XN_PORTS type")?;
        Ok(ports.iter().filter_map(Result::ok).collect())
    }

    #[expect(clippy::too_many_arguments, reason = "one port's scattered records")]
    fn adopt_port(
        &mut self,
        name: &str,
        idx: u32,
        conf: &PortConf,
        tc: Option<std::path::PathBuf>,
        xdp: Option<std::path::PathBuf>,
        state: &State,
        names: &BTreeMap<u32, &String>,
    ) -> anyhow::Result<()> {
        let tc_path = tc.context("no pinned TC link")?;
        if super::ifindex(name).ok() != Some(idx) {
            anyhow::bail!("interface gone");
        }
        let record = state.ports.get(name).filter(|r| r.ifindex == idx);
        // TC first: XDP defers to it.
        let tc = self.replace_in(LinkKind::Tc, &tc_path)?;
        let xdp = match xdp {
            Some(p) => Some(self.replace_in(LinkKind::Xdp, &p)?),
            None => None,
        };
        let attached = match (&xdp, record) {
            (None, _) => Attached::Tc,
            (Some(_), Some(r)) if r.attached != Attached::Tc => r.attached,
            (Some(_), _) => Attached::Xdp,
        };
        // An XDP link recorded but not pinned (killed between the TC and the XDP attach):
        // say "tc", so that the reconcile attaches XDP again as configured.
        let half = xdp.is_none() && record.is_some_and(|r| r.attached != Attached::Tc);
        let attach = record
            .filter(|_| !half)
            .and_then(|r| parse_attach(&r.attach))
            .unwrap_or(match attached {
                Attached::Xdp => AttachMode::Xdp,
                Attached::XdpGeneric => AttachMode::XdpGeneric,
                Attached::Tc => AttachMode::Tc,
            });
        let bridge = names
            .get(&conf.bridge)
            .map_or_else(|| format!("#{}", conf.bridge), |n| (*n).clone());
        let vlans = record.map(|r| r.vlans.clone()).unwrap_or_default();
        info!(port = %name, ifindex = idx, slot = conf.slot, mode = %attached, bridge = %bridge, "port adopted");
        self.ports.insert(
            name.to_string(),
            PortState {
                public: Port {
                    bridge,
                    interface: name.to_string(),
                    ifindex: idx,
                    slot: conf.slot,
                    attached,
                    vlans,
                    host: record.is_some_and(|r| r.host),
                    security: super::security::SecurityView::default(),
                    rate: None,
                    rx_vlan: super::attach::rx_note(
                        attached,
                        &crate::netlink::rxvlan::probe(name, idx),
                    ),
                },
                bridge_id: conf.bridge,
                attach,
                links: Links { tc, xdp },
                conf: *conf,
                // Rewritten by the next refresh, with this build's flood program.
                in_xdp_maps: false,
            },
        );
        Ok(())
    }

    /// Read the TC flood lists back from `XN_MEMBERS`.
    fn adopt_members(&mut self) -> anyhow::Result<()> {
        let members: HashMap<&MapData, MemberKey, u32> =
            HashMap::try_from(self.map(MAP_MEMBERS)?).context("XN_MEMBERS type")?;
        let all: BTreeMap<(u32, u32), u32> = members
            .iter()
            .filter_map(Result::ok)
            .map(|(k, v)| ((k.bridge, k.idx), v))
            .collect();
        let mut lists = BTreeMap::new();
        for ((bridge, idx), count) in &all {
            if *idx != MEMBER_COUNT {
                continue;
            }
            let list: Vec<u32> = (0..*count)
                .filter_map(|i| all.get(&(*bridge, i)).copied())
                .collect();
            lists.insert(*bridge, list);
        }
        self.members = lists;
        Ok(())
    }

    /// Read the static entries back from the FDB, and count the learned ones.
    fn adopt_statics(&mut self, found: &mut Adopted) -> anyhow::Result<()> {
        let fdb: HashMap<&MapData, FdbKey, FdbVal> =
            HashMap::try_from(self.map(xennet_common::maps::MAP_FDB)?).context("XN_FDB type")?;
        let all: Vec<(FdbKey, FdbVal)> = fdb.iter().filter_map(Result::ok).collect();
        for (k, v) in all {
            if v.flags & FDB_STATIC != 0 {
                self.statics.insert(k, v.ifindex);
            } else {
                found.learned += 1;
            }
        }
        Ok(())
    }

    /// Record a run-time port (`port add`), kept across restarts.
    pub fn remember_port_add(&mut self, req: &PortAdd) {
        self.runtime.insert(req.interface.clone(), req.clone());
        self.save_state();
    }

    /// Forget a run-time port.
    pub fn forget_port_add(&mut self, interface: &str) {
        self.runtime.remove(interface);
        self.save_state();
    }

    /// The run-time ports recorded (by an earlier agent, after adoption).
    #[must_use]
    pub fn port_adds(&self) -> Vec<PortAdd> {
        self.runtime.values().cloned().collect()
    }

    /// Record that the agent created host port `interface` (dom0's side).
    pub fn host_created(&mut self, interface: &str) {
        self.host_ports.insert(interface.to_string());
        self.save_state();
    }

    /// Write the state file if anything in it changed (persistent datapath only); a failure
    /// is logged: forwarding goes on, a restart would forget what it could not read.
    pub(super) fn save_state(&mut self) {
        if !self.persistent {
            return;
        }
        let ports: BTreeMap<String, PortRecord> = self
            .ports
            .iter()
            .map(|(n, p)| {
                let r = PortRecord {
                    bridge: p.public.bridge.clone(),
                    ifindex: p.public.ifindex,
                    attach: p.attach.as_str().to_string(),
                    attached: p.public.attached,
                    host: p.public.host,
                    vlans: p.public.vlans.clone(),
                    slot: p.public.slot,
                };
                (n.clone(), r)
            })
            .collect();
        // A run-time port whose interface went away is forgotten, as the agent does.
        self.runtime
            .retain(|n, _| self.ports.contains_key(n) || super::ifindex(n).is_ok());
        let (layout, counters) = self.upgrade.as_ref().map_or_else(
            || (self.layout.clone(), super::migrate::stat_names()),
            super::migrate::Upgrade::recorded,
        );
        let state = State {
            layout,
            stats: Some(counters),
            bridges: self
                .bridges
                .iter()
                .map(|(n, (id, _))| (n.clone(), *id))
                .collect(),
            ports,
            runtime: self.runtime.clone(),
            host_ports: self.host_ports.clone(),
        };
        let Ok(text) = serde_json::to_string(&state) else {
            return;
        };
        if text == self.last_saved {
            return;
        }
        match state.save(&self.pin_dir) {
            Ok(()) => self.last_saved = text,
            Err(e) => warn!(error = %format!("{e:#}"), "writing the state file"),
        }
    }
}

impl Datapath {
    /// The agent's start: open the persistent datapath of `pin_dir` (its pinned maps, after
    /// the compatibility check) and adopt what an earlier agent left there.
    pub fn open_adopting(pin_dir: &std::path::Path, fdb_max_entries: u32) -> anyhow::Result<Self> {
        let state = State::load(pin_dir).unwrap_or_else(|e| {
            warn!(error = %format!("{e:#}"), "state file unreadable: adopting from the pins alone");
            None
        });
        let mut dp = Self::open(pin_dir, fdb_max_entries, state.as_ref())?;
        let found = dp.adopt(state.as_ref())?;
        if !found.ports.is_empty() || !found.stale.is_empty() {
            info!(
                ports = found.ports.len(),
                stale = ?found.stale,
                passing = found.passing.len(),
                learned = found.learned,
                runtime = dp.runtime.len(),
                "adopted the pinned datapath"
            );
        }
        Ok(dp)
    }
}
