//! Ports: bringing the datapath to a configuration (reload), and attaching, rewriting and
//! removing one port's map entries and programs.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context as _, anyhow, bail};
use aya::maps::{Array, DevMapHash, HashMap, MapData, PerCpuArray, PerCpuValues};
use tracing::info;
use xennet_common::{
    maps::{
        FDB_STATIC, IFSLOT_ENTRIES, MAP_FLOOD, MAP_IFSLOTS, MAP_PORTS, MAP_SLOTS, MAP_STATS,
        MAP_TX, MAX_PORTS, PortConf,
    },
    stats::PortStats,
};

use super::{
    Changes, Datapath, Port, PortState, describe_mode, ifindex,
    plan::{self, Current, Step, Update},
    port_conf,
};
use crate::config::{Config, PortSpec};

impl Datapath {
    /// Bring the datapath to `cfg`: attach new ports, detach removed ones, rewrite changed
    /// ones in place, and make the static FDB entries exactly the configured ones. Ports that
    /// did not change are not touched, so their traffic flows on undisturbed. A port that
    /// fails is listed in [`Changes::failed`] and the rest is applied.
    pub fn apply(&mut self, cfg: &Config) -> anyhow::Result<Changes> {
        self.apply_with(cfg, false)
    }

    /// Like [`Datapath::apply`], but stop at the first port that fails: before the ports `cfg`
    /// no longer has are detached and before the static entries change. Applying the previous
    /// configuration then undoes what was done, and the ports that were to go keep their
    /// counters and learned entries (all-or-nothing reloads).
    pub fn apply_or_stop(&mut self, cfg: &Config) -> anyhow::Result<Changes> {
        self.apply_with(cfg, true)
    }

    fn apply_with(&mut self, cfg: &Config, stop: bool) -> anyhow::Result<Changes> {
        let mut changes = Changes::default();
        // Stable bridge ids: a bridge keeps its id across reloads.
        let old_ids: BTreeMap<String, u32> = self
            .bridges
            .iter()
            .map(|(name, (id, _))| (name.clone(), *id))
            .collect();
        let ids = plan::bridge_ids(&old_ids, cfg.bridges.iter().map(|b| b.name.as_str()))
            .ok_or_else(|| anyhow!("out of bridge ids"))?;
        let bridges: BTreeMap<String, (u32, u64)> = cfg
            .bridges
            .iter()
            .filter_map(|b| {
                let aging = u64::from(b.fdb_aging_secs) * 1_000_000_000;
                ids.get(&b.name).map(|id| (b.name.clone(), (*id, aging)))
            })
            .collect();
        let wanted = plan::wanted_ports(cfg);
        let current: BTreeMap<String, Current> = self
            .ports
            .iter()
            .map(|(name, st)| {
                let cur = Current {
                    bridge: st.public.bridge.clone(),
                    bridge_id: st.bridge_id,
                    conf: st.conf,
                    attach: st.attach,
                };
                (name.clone(), cur)
            })
            .collect();
        let todo = plan::plan_ports(&current, &wanted, &ids);
        // Ports moving to another bridge are detached first; ports leaving for good after the
        // others are in place (so that a failure can stop before them), unless their slots
        // are needed first.
        let (mut first, mut last): (Vec<String>, Vec<String>) = todo
            .remove
            .into_iter()
            .partition(|name| wanted.contains_key(name));
        let adds = todo
            .steps
            .iter()
            .filter(|(_, step)| matches!(step, Step::Add { .. }))
            .count();
        let max = usize::try_from(MAX_PORTS).unwrap_or(usize::MAX);
        if self.ports.len().saturating_sub(first.len()) + adds > max {
            first.append(&mut last);
        }
        for name in first {
            self.remove_port(&name)?;
            changes.removed.push(name);
        }
        self.bridges = bridges;
        for (name, step) in todo.steps {
            let Some(w) = wanted.get(&name) else {
                continue;
            };
            match step {
                Step::Update(u) => match self.update_port(&name, &w.spec, &u) {
                    Ok(()) => changes.changed.push(name),
                    Err(e) => changes.failed.push(format!("{name}: {e:#}")),
                },
                Step::Add { bridge_id: bid } => {
                    match self.add_port(&w.bridge.name, bid, w.bridge.tpid, &w.spec, w.host) {
                        Ok(()) => changes.added.push(name),
                        Err(e) => changes
                            .failed
                            .push(format!("bridge {:?}, port {name:?}: {e:#}", w.bridge.name)),
                    }
                }
            }
            if stop && !changes.failed.is_empty() {
                self.refresh()?;
                self.sync_rates_into(cfg, &mut changes)?;
                return Ok(changes);
            }
        }
        for name in last {
            self.remove_port(&name)?;
            changes.removed.push(name);
        }
        self.refresh()?;
        self.sync_rates_into(cfg, &mut changes)?;
        let (added, removed) = self.sync_statics(cfg)?;
        changes.statics_added = added;
        changes.statics_removed = removed;
        self.save_state();
        Ok(changes)
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
        let used: BTreeSet<u32> = self.ports.values().map(|p| p.public.slot).collect();
        let slot = plan::alloc_slot(&used, MAX_PORTS)
            .ok_or_else(|| anyhow!("all {MAX_PORTS} port slots in use"))?;
        self.zero_slot(slot)?;
        self.learned.reset(slot);
        // No limit until `sync_rates` sets the configured one.
        self.write_rate(slot, &xennet_common::rate::PortRate::NONE)?;
        let conf = port_conf(bid, tpid, slot, spec);
        if let Err(e) = self.write_port(idx, &conf) {
            let _ = self.unmap_port(idx);
            return Err(e.context(format!("adding {}", spec.interface)));
        }
        let (attached, links, rx_vlan) = match self.attach(&spec.interface, idx, spec.attach) {
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
                    security: super::security::SecurityView::default(),
                    rate: None,
                    rx_vlan,
                },
                bridge_id: bid,
                attach: spec.attach,
                links,
                conf,
                in_xdp_maps: false,
            },
        );
        Ok(())
    }

    /// Rewrite port `name` to `spec` as planned by `update`.
    fn update_port(&mut self, name: &str, spec: &PortSpec, update: &Update) -> anyhow::Result<()> {
        let Some(st) = self.ports.get(name) else {
            bail!("no port {name}");
        };
        let (idx, slot) = (st.public.ifindex, st.public.slot);
        let Update { conf, reattach } = *update;
        self.write_port(idx, &conf)
            .with_context(|| format!("updating {name}"))?;
        // Learned entries in VLANs the port no longer carries would forward into them.
        let flushed = self.flush_fdb(|k, v| {
            v.ifindex == idx && v.flags & FDB_STATIC == 0 && !conf.carries(k.vlan)
        })?;
        for _ in 0..flushed {
            self.learned.dec(slot);
        }
        let Some(mut st) = self.ports.remove(name) else {
            bail!("no port {name}");
        };
        st.conf = conf;
        if reattach {
            Self::detach(name, st.links);
            match self.attach(name, idx, spec.attach) {
                Ok((a, l, rx)) => {
                    st.public.attached = a;
                    st.links = l;
                    st.public.rx_vlan = rx;
                }
                Err(e) => {
                    // The port is now detached: forget it entirely rather than keep a lie.
                    self.unmap_port(idx)?;
                    return Err(e);
                }
            }
        }
        st.attach = spec.attach;
        st.public.vlans = describe_mode(&spec.mode);
        self.ports.insert(name.to_string(), st);
        info!(port = %name, vlans = %describe_mode(&spec.mode), flushed, "port updated");
        Ok(())
    }

    /// Write port `idx`'s entry: in `XN_PORTS` by ifindex, in `XN_SLOTS` by its slot with its
    /// ifindex (what FDB entries reach through their slot), and its slot in `XN_IFSLOTS`.
    pub(super) fn write_port(&mut self, idx: u32, conf: &PortConf) -> anyhow::Result<()> {
        let mut ports: HashMap<&mut MapData, u32, PortConf> = self.map_mut(MAP_PORTS)?;
        ports
            .insert(idx, conf, 0)
            .with_context(|| format!("writing ifindex {idx} to {MAP_PORTS}"))?;
        let mut slots: Array<&mut MapData, PortConf> = self.map_mut(MAP_SLOTS)?;
        let mut at = *conf;
        at.ifindex = idx;
        slots
            .set(conf.slot, at, 0)
            .with_context(|| format!("writing slot {} to {MAP_SLOTS}", conf.slot))?;
        if idx < IFSLOT_ENTRIES {
            let mut ifslots: Array<&mut MapData, u32> = self.map_mut(MAP_IFSLOTS)?;
            ifslots
                .set(idx, conf.slot, 0)
                .with_context(|| format!("writing ifindex {idx} to {MAP_IFSLOTS}"))?;
        }
        Ok(())
    }

    /// Remove a port's entries from the port, slot, ifindex-slot and redirect maps.
    pub(super) fn unmap_port(&mut self, idx: u32) -> anyhow::Result<()> {
        let mut flood: DevMapHash<&mut MapData> = self.map_mut(MAP_FLOOD)?;
        let _ = flood.remove(idx);
        let mut tx: DevMapHash<&mut MapData> = self.map_mut(MAP_TX)?;
        let _ = tx.remove(idx);
        let mut ports: HashMap<&mut MapData, u32, PortConf> = self.map_mut(MAP_PORTS)?;
        let slot = ports.get(&idx, 0).ok().map(|c| c.slot);
        let _ = ports.remove(&idx);
        if idx < IFSLOT_ENTRIES {
            let mut ifslots: Array<&mut MapData, u32> = self.map_mut(MAP_IFSLOTS)?;
            ifslots
                .set(idx, 0, 0)
                .with_context(|| format!("clearing ifindex {idx} of {MAP_IFSLOTS}"))?;
        }
        if let Some(slot) = slot {
            let mut slots: Array<&mut MapData, PortConf> = self.map_mut(MAP_SLOTS)?;
            // Only if it still holds this port (a zeroed slot holds none).
            if slots.get(&slot, 0).is_ok_and(|c| c.ifindex == idx) {
                slots
                    .set(slot, PortConf::new(0, 0, 0, 0, 0), 0)
                    .with_context(|| format!("clearing slot {slot} of {MAP_SLOTS}"))?;
            }
        }
        Ok(())
    }

    /// Detach a port and remove every trace of it: map entries, FDB entries (learned and
    /// static), its learned count.
    pub fn remove_port(&mut self, name: &str) -> anyhow::Result<()> {
        let Some(st) = self.ports.remove(name) else {
            bail!("no port {name}");
        };
        let idx = st.public.ifindex;
        Self::detach(name, st.links);
        self.unmap_port(idx)?;
        // Its limit goes with it (the slot may serve another port next).
        self.write_rate(st.public.slot, &xennet_common::rate::PortRate::NONE)?;
        let flushed = self.flush_fdb(|_, v| v.ifindex == idx)?;
        self.statics.retain(|_, i| *i != idx);
        self.learned.reset(st.public.slot);
        info!(port = %name, flushed, "port removed");
        Ok(())
    }

    /// Zero a stats slot on every CPU (before a new port counts in it).
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
}
