//! The XDP flood groups: one devmap per {bridge, VLAN} of the XDP ports that carry the VLAN,
//! kept in `XN_FLOODG` so that a flood is cloned only for the ports it can leave by.
//!
//! A group exists for every {bridge, VLAN} carried by two to [`FLOOD_GROUP_PORTS`] XDP ports
//! of the bridge (bridges that flood through TC have none), up to [`FLOOD_GROUPS`]; a flood
//! without a group goes through `XN_FLOOD` (every XDP port, the egress program dropping the
//! copies that may not go), as all floods did before groups.
//! The groups' devmaps are not pinned: `XN_FLOODG` holds them. A new agent builds its own
//! (with its flood program), swaps each into `XN_FLOODG` in one update, and removes the keys
//! it does not want, so no flood is lost while the groups change hands.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context as _;
use aya::maps::{DevMapHash, HashOfMaps, Map, MapData, MapError};
use tracing::warn;
use xennet_common::{
    maps::{FLOOD_GROUP_PORTS, FLOOD_GROUPS, MAP_FLOODG, PORT_F_FLOOD_VIA_TC},
    vstats::VlanKey,
};

use super::Datapath;

/// `BPF_MAP_TYPE_DEVMAP_HASH`.
const DEVMAP_HASH: u32 = 25;
/// Size of `struct bpf_devmap_val` (ifindex, program fd/id).
const DEVMAP_VAL: u32 = 8;

/// One flood group as written: its devmap and members (ifindices).
pub(super) struct Group {
    map: DevMapHash<MapData>,
    members: BTreeSet<u32>,
}

/// The groups the ports call for: for each {bridge, VLAN} carried by at least two and at most
/// [`FLOOD_GROUP_PORTS`] XDP ports of the bridge, those ports; at most `limit`, in key order.
/// Also how many {bridge, VLAN} of two or more ports are left without a group (they flood
/// through `XN_FLOOD`). `ports`: (bridge, ifindex, whether it takes XDP frames, VLANs carried).
#[must_use]
pub fn wanted<I>(ports: I, limit: usize) -> (BTreeMap<VlanKey, BTreeSet<u32>>, usize)
where
    I: IntoIterator<Item = (u32, u32, bool, Vec<u16>)>,
{
    let mut all: BTreeMap<VlanKey, BTreeSet<u32>> = BTreeMap::new();
    for (bridge, ifindex, xdp, vlans) in ports {
        if !xdp {
            continue;
        }
        for vid in vlans {
            let key = VlanKey {
                bridge,
                vlan: u32::from(vid),
            };
            all.entry(key).or_default().insert(ifindex);
        }
    }
    let before = all.len();
    all.retain(|_, m| m.len() >= 2);
    let alone = before - all.len();
    all.retain(|_, m| m.len() <= FLOOD_GROUP_PORTS as usize);
    let over = (before - alone - all.len()) + all.len().saturating_sub(limit);
    (all.into_iter().take(limit).collect(), over)
}

/// The VLANs (1..=4094) a port carries: the bits set in its bitmap, read a byte at a time
/// (an access port has one bit in 512 bytes).
fn vlans_of(conf: &xennet_common::maps::PortConf) -> Vec<u16> {
    let mut v = Vec::new();
    for (i, byte) in (0u16..).zip(conf.vlans) {
        if byte == 0 {
            continue;
        }
        for bit in 0..8 {
            let vid = i * 8 + bit;
            if byte & (1 << bit) != 0 && (1..4095).contains(&vid) {
                v.push(vid);
            }
        }
    }
    v
}

impl Datapath {
    /// Bring `XN_FLOODG` to the groups the current ports call for: new groups are built
    /// whole before they are put in, members are added to and removed from a group's devmap
    /// in place, and groups no longer wanted (also those a previous agent left) are removed.
    pub(super) fn sync_groups(&mut self) -> anyhow::Result<()> {
        let ports = self.ports.values().map(|p| {
            (
                p.bridge_id,
                p.public.ifindex,
                // A bridge with a TC-only port floods through TC: no XDP group.
                p.in_xdp_maps && p.conf.flags & PORT_F_FLOOD_VIA_TC == 0,
                vlans_of(&p.conf),
            )
        });
        let (want, over) = wanted(ports, FLOOD_GROUPS as usize);
        if over > 0 && !self.groups_warned {
            warn!(
                "{over} VLANs of bridges have no XDP flood group (at most {FLOOD_GROUPS} groups of {FLOOD_GROUP_PORTS} ports): their floods are cloned for every XDP port"
            );
            self.groups_warned = true;
        }
        let prog = self.flood_prog.try_clone().context("flood program fd")?;
        let mut groups = std::mem::take(&mut self.groups);
        groups.retain(|k, _| want.contains_key(k));
        let mut outer: HashOfMaps<&mut MapData, VlanKey, DevMapHash<MapData>> =
            self.map_mut(MAP_FLOODG)?;
        // Keys in the map that are not wanted: this agent's old groups, a previous agent's.
        let stale: Vec<VlanKey> = outer
            .keys()
            .filter_map(Result::ok)
            .filter(|k| !want.contains_key(k))
            .collect();
        for key in &stale {
            let _ = outer.remove(key);
        }
        let mut kept = BTreeMap::new();
        for (key, members) in want {
            let (mut g, new) = if let Some(g) = groups.remove(&key) {
                (g, false)
            } else {
                let map = new_group_map().context("creating a flood group")?;
                let members = BTreeSet::new();
                (Group { map, members }, true)
            };
            for idx in g.members.difference(&members).copied().collect::<Vec<_>>() {
                let _ = g.map.remove(idx);
            }
            for &idx in members.difference(&g.members) {
                g.map
                    .insert(idx, idx, Some(&prog), 0)
                    .with_context(|| flood_ctx(key, idx))?;
            }
            g.members = members;
            if new {
                // Whole, in one update: a group a previous agent left under this key is
                // replaced, and no flood sees it half-built.
                outer.insert(key, &g.map, 0).with_context(|| {
                    format!(
                        "adding the flood group of bridge {} VLAN {} to {MAP_FLOODG}",
                        key.bridge, key.vlan
                    )
                })?;
            }
            kept.insert(key, g);
        }
        self.groups = kept;
        Ok(())
    }
}

fn flood_ctx(key: VlanKey, idx: u32) -> String {
    format!(
        "adding ifindex {idx} to the flood group of bridge {} VLAN {}",
        key.bridge, key.vlan
    )
}

/// An empty devmap of the flood groups' shape (`XN_FLOODG`'s inner map).
fn new_group_map() -> Result<DevMapHash<MapData>, MapError> {
    let obj = aya_obj::Map::new_from_params(DEVMAP_HASH, 4, DEVMAP_VAL, FLOOD_GROUP_PORTS, 0);
    let data = MapData::create(obj, "xn_floodgrp", None)?;
    DevMapHash::try_from(Map::DevMapHash(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(bridge: u32, vlan: u32) -> VlanKey {
        VlanKey { bridge, vlan }
    }

    #[test]
    fn groups_per_bridge_and_vlan_of_xdp_ports() {
        let ports = vec![
            (1, 10, true, vec![1, 100]),
            (1, 11, true, vec![1]),
            (1, 12, true, vec![100]),
            (1, 13, false, vec![1, 100]),
            (1, 14, true, vec![200]),
            (2, 20, true, vec![1]),
            (2, 21, true, vec![1]),
        ];
        let (g, over) = wanted(ports, 16);
        assert_eq!(over, 0);
        let set = |v: &[u32]| v.iter().copied().collect::<BTreeSet<u32>>();
        assert_eq!(g.get(&key(1, 1)), Some(&set(&[10, 11])));
        assert_eq!(g.get(&key(1, 100)), Some(&set(&[10, 12])));
        // One port only: no group. TC-only ports are in none.
        assert_eq!(g.get(&key(1, 200)), None);
        assert_eq!(g.get(&key(2, 1)), Some(&set(&[20, 21])));
        assert_eq!(g.len(), 3);
    }

    #[test]
    fn vlans_of_reads_the_bitmap() {
        let mut conf = xennet_common::maps::PortConf::new(1, 1, 0, 0, 0x8100);
        conf.vlans = [0; xennet_common::maps::VLAN_BITMAP_BYTES];
        for vid in [0u16, 1, 7, 8, 100, 4094, 4095] {
            conf.vlans[usize::from(vid / 8)] |= 1 << (vid % 8);
        }
        assert_eq!(vlans_of(&conf), vec![1, 7, 8, 100, 4094]);
        for vid in 1..4095 {
            assert_eq!(
                vlans_of(&conf).contains(&vid),
                conf.carries(vid),
                "VLAN {vid}"
            );
        }
    }

    #[test]
    fn a_vlan_of_more_ports_than_a_group_holds_has_none() {
        let n = FLOOD_GROUP_PORTS;
        let mut ports: Vec<_> = (0..=n).map(|i| (1, 100 + i, true, vec![1])).collect();
        ports.push((1, 10, true, vec![2]));
        ports.push((1, 11, true, vec![2]));
        let (g, over) = wanted(ports, 16);
        assert_eq!(over, 1);
        assert_eq!(g.keys().copied().collect::<Vec<_>>(), vec![key(1, 2)]);
    }

    #[test]
    fn groups_beyond_the_limit_are_left_out_and_counted() {
        let ports = vec![(1, 10, true, vec![1, 2, 3]), (1, 11, true, vec![1, 2, 3])];
        let (g, over) = wanted(ports, 2);
        assert_eq!(over, 1);
        assert_eq!(
            g.keys().copied().collect::<Vec<_>>(),
            vec![key(1, 1), key(1, 2)]
        );
    }
}
