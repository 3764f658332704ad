//! Port flags, the XDP redirect maps, the TC flood lists and the XDP flood groups (and,
//! through `vslots`, the per-VLAN counter slots), recomputed after ports change.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context as _;
use aya::maps::{DevMapHash, HashMap, MapData};
use xennet_common::maps::{
    MAP_FLOOD, MAP_MEMBERS, MAP_TX, MEMBER_COUNT, MemberKey, PORT_F_TC_ONLY,
};

use super::{
    Attached, Datapath,
    plan::{self, MemberWrite},
};

impl Datapath {
    /// Recompute every port's flags (which ports take XDP frames, which bridges flood
    /// through TC), rewrite the port entries that changed, keep the XDP redirect maps to the
    /// ports that can take XDP frames, and rebuild the TC flood lists.
    pub(super) fn refresh(&mut self) -> anyhow::Result<()> {
        let tc_bridges: BTreeSet<u32> = self
            .ports
            .values()
            .filter(|p| p.public.attached != Attached::Xdp)
            .map(|p| p.bridge_id)
            .collect();
        let mut writes = Vec::new();
        for (name, p) in &self.ports {
            let mut conf = p.conf;
            conf.flags = plan::port_flags(p.public.attached, tc_bridges.contains(&p.bridge_id))
                | (p.conf.flags & plan::CONF_FLAGS);
            writes.push((name.clone(), p.public.ifindex, conf, p.conf != conf));
        }
        let prog = self.flood_prog.try_clone().context("flood program fd")?;
        for (name, idx, conf, changed) in writes {
            if changed {
                self.write_port(idx, &conf)
                    .with_context(|| format!("updating {name}"))?;
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
        self.sync_members()?;
        self.sync_vlan_slots()?;
        self.sync_groups()
    }

    /// Bring the TC flood lists in `XN_MEMBERS` to the current ports, carrying out the writes
    /// [`plan::member_writes`] orders.
    fn sync_members(&mut self) -> anyhow::Result<()> {
        let mut want: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
        for p in self.ports.values() {
            want.entry(p.bridge_id)
                .or_default()
                .insert(p.public.ifindex);
        }
        let bridges: BTreeSet<u32> = want.keys().chain(self.members.keys()).copied().collect();
        for bridge in bridges {
            let desired = want.remove(&bridge).unwrap_or_default();
            let mut list = self.members.remove(&bridge).unwrap_or_default();
            let writes = plan::member_writes(&mut list, &desired)?;
            let mut members: HashMap<&mut MapData, MemberKey, u32> = self.map_mut(MAP_MEMBERS)?;
            let key = |idx| MemberKey { bridge, idx };
            for w in writes {
                match w {
                    MemberWrite::Count(n) => members
                        .insert(key(MEMBER_COUNT), n, 0)
                        .context("member count")?,
                    MemberWrite::Entry { idx, ifindex } => members
                        .insert(key(idx), ifindex, 0)
                        .context("member list")?,
                    MemberWrite::Clear(idx) => {
                        let _ = members.remove(&key(idx));
                    }
                    MemberWrite::ClearCount => {
                        let _ = members.remove(&key(MEMBER_COUNT));
                    }
                }
            }
            if !list.is_empty() {
                self.members.insert(bridge, list);
            }
        }
        Ok(())
    }
}
