//! Per-VLAN counter slots: every VLAN a bridge carries gets a slot of `XN_VSTATS`, written into
//! its bridge's `XN_VSLOTS` row, and keeps it (and its counters) while some port of the bridge
//! carries the VLAN; a freed slot is zeroed before another VLAN gets it.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context as _, anyhow};
use aya::maps::{Array, MapData, PerCpuArray, PerCpuValues};
use tracing::warn;
use xennet_common::{
    VLAN_MAX,
    vstats::{
        MAP_VSLOTS, MAP_VSTATS, MAX_BRIDGE_ID, VSLOT_BRIDGES, VSTATS_SLOTS, VlanSlots, VlanStats,
    },
};

use super::Datapath;

/// {bridge id, VLAN} → its `XN_VSTATS` slot.
pub type Assigned = BTreeMap<(u32, u16), u16>;

/// What [`plan`] decided.
#[derive(Debug, PartialEq, Eq)]
pub struct Plan {
    /// Every pair's slot after the change.
    pub next: Assigned,
    /// Slots newly given to a pair: to be zeroed before they appear in a row.
    pub fresh: Vec<u16>,
    /// Pairs left without a slot (all `slots - 1` in use).
    pub short: usize,
}

/// Slots for `wanted` given `current`: a pair still wanted keeps its slot, a new pair takes
/// the lowest free slot in `1..slots` (slot 0 is never counted), a pair no longer wanted frees
/// its slot.
#[must_use]
pub fn plan(current: &Assigned, wanted: &BTreeSet<(u32, u16)>, slots: u32) -> Plan {
    let mut next: Assigned = current
        .iter()
        .filter(|(k, _)| wanted.contains(k))
        .map(|(k, s)| (*k, *s))
        .collect();
    let used: BTreeSet<u16> = next.values().copied().collect();
    let mut free = (1..slots)
        .filter_map(|s| u16::try_from(s).ok())
        .filter(|s| !used.contains(s));
    let (mut fresh, mut short) = (Vec::new(), 0);
    for k in wanted {
        if next.contains_key(k) {
            continue;
        }
        match free.next() {
            Some(s) => {
                next.insert(*k, s);
                fresh.push(s);
            }
            None => short += 1,
        }
    }
    Plan { next, fresh, short }
}

/// The row of bridge `bridge` in `a`.
fn row(a: &Assigned, bridge: u32) -> VlanSlots {
    let mut r = VlanSlots::EMPTY;
    for ((_, vlan), slot) in a.range((bridge, 0)..=(bridge, u16::MAX)) {
        if let Some(s) = r.slot.get_mut(usize::from(*vlan)) {
            *s = *slot;
        }
    }
    r
}

/// Every assigned pair in the `XN_VSLOTS` map `m`.
pub fn read<T: std::borrow::Borrow<MapData>>(m: &Array<T, VlanSlots>) -> anyhow::Result<Assigned> {
    let mut a = Assigned::new();
    for bridge in 1..VSLOT_BRIDGES {
        let r = m
            .get(&bridge, 0)
            .with_context(|| format!("reading {MAP_VSLOTS}[{bridge}]"))?;
        for (vlan, slot) in r.slot.iter().enumerate() {
            if let (Ok(v), true) = (u16::try_from(vlan), *slot != 0) {
                a.insert((bridge, v), *slot);
            }
        }
    }
    Ok(a)
}

impl Datapath {
    /// Give every VLAN each bridge carries its per-VLAN counters (after ports changed): rows
    /// lose the VLANs gone first, then the slots given anew are zeroed, then the rows gain
    /// them, so that no frame counts into a slot between two owners.
    pub(super) fn sync_vlan_slots(&mut self) -> anyhow::Result<()> {
        let current = match self.vslots.take() {
            Some(c) => c,
            None => read(&Array::try_from(self.map(MAP_VSLOTS)?).context("XN_VSLOTS type")?)?,
        };
        let mut wanted = BTreeSet::new();
        for p in self.ports.values() {
            if p.bridge_id > MAX_BRIDGE_ID {
                warn!(
                    bridge = p.bridge_id,
                    "bridge id above {MAX_BRIDGE_ID}: its VLANs are not counted"
                );
                continue;
            }
            wanted.extend(
                (1..=VLAN_MAX)
                    .filter(|v| p.conf.carries(*v))
                    .map(|v| (p.bridge_id, v)),
            );
        }
        let plan = plan(&current, &wanted, VSTATS_SLOTS);
        if plan.short > 0 {
            warn!(
                pairs = plan.short,
                "more VLANs carried than {} per-VLAN counter slots: these are not counted",
                VSTATS_SLOTS - 1
            );
        }
        let kept: Assigned = current
            .iter()
            .filter(|(k, _)| plan.next.contains_key(k))
            .map(|(k, s)| (*k, *s))
            .collect();
        let bridges: BTreeSet<u32> = current
            .keys()
            .chain(plan.next.keys())
            .map(|(b, _)| *b)
            .collect();
        let result = self.write_vslots(&current, &kept, &plan, &bridges);
        // On failure, what the map holds is unknown: read it again next time.
        self.vslots = result.is_ok().then_some(plan.next);
        result
    }

    fn write_vslots(
        &mut self,
        current: &Assigned,
        kept: &Assigned,
        plan: &Plan,
        bridges: &BTreeSet<u32>,
    ) -> anyhow::Result<()> {
        let mut rows: Array<&mut MapData, VlanSlots> = self.map_mut(MAP_VSLOTS)?;
        for b in bridges {
            let (was, mid) = (row(current, *b), row(kept, *b));
            if was != mid {
                rows.set(*b, mid, 0)
                    .with_context(|| format!("writing {MAP_VSLOTS}[{b}]"))?;
            }
        }
        if !plan.fresh.is_empty() {
            let n = aya::util::nr_cpus().map_err(|(_, e)| anyhow!("counting CPUs: {e}"))?;
            let mut stats: PerCpuArray<&mut MapData, VlanStats> = self.map_mut(MAP_VSTATS)?;
            for s in &plan.fresh {
                let zeros = PerCpuValues::try_from(vec![VlanStats::default(); n])
                    .context("per-CPU values")?;
                stats
                    .set(u32::from(*s), zeros, 0)
                    .with_context(|| format!("zeroing {MAP_VSTATS}[{s}]"))?;
            }
        }
        let mut rows: Array<&mut MapData, VlanSlots> = self.map_mut(MAP_VSLOTS)?;
        for b in bridges {
            let (mid, next) = (row(kept, *b), row(&plan.next, *b));
            if mid != next {
                rows.set(*b, next, 0)
                    .with_context(|| format!("writing {MAP_VSLOTS}[{b}]"))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(pairs: &[(u32, u16)]) -> BTreeSet<(u32, u16)> {
        pairs.iter().copied().collect()
    }

    /// Kept pairs keep their slots (and so their counters); new ones take the lowest free
    /// slot, freed ones included, and are listed for zeroing; slot 0 is never given.
    #[test]
    fn slots_are_kept_freed_and_reused() {
        let p = plan(&Assigned::new(), &set(&[(1, 10), (1, 20), (2, 10)]), 16);
        assert_eq!(
            p.next,
            Assigned::from([((1, 10), 1), ((1, 20), 2), ((2, 10), 3)])
        );
        assert_eq!(p.fresh, vec![1, 2, 3]);
        let q = plan(&p.next, &set(&[(1, 20), (2, 10), (3, 5)]), 16);
        assert_eq!(
            q.next,
            Assigned::from([((1, 20), 2), ((2, 10), 3), ((3, 5), 1)])
        );
        assert_eq!(q.fresh, vec![1], "the freed slot, zeroed before its reuse");
        assert_eq!(q.short, 0);
    }

    /// Beyond the slots, pairs go uncounted (and are said to).
    #[test]
    fn short_of_slots() {
        let p = plan(&Assigned::new(), &set(&[(1, 1), (1, 2), (1, 3)]), 3);
        assert_eq!(p.next.len(), 2);
        assert_eq!(p.short, 1);
    }

    #[test]
    fn rows_hold_their_bridge_only() {
        let a = Assigned::from([((1, 10), 1), ((2, 10), 2), ((2, 4094), 3)]);
        let r = row(&a, 2);
        assert_eq!((r.slot[10], r.slot[4094], r.slot[11]), (2, 3, 0));
        assert_eq!(row(&a, 1).slot[10], 1);
        assert_eq!(row(&a, 3), VlanSlots::EMPTY);
    }
}
