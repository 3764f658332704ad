//! Pure planning: what the datapath must write and remove, decided from plain data with no map
//! I/O, so that every decision is unit-tested on the host.
//!
//! [`super::Datapath`] gathers its state, asks these functions what to do, and carries the
//! answer out on the maps.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context as _;
use xennet_common::maps::{
    FdbKey, PORT_F_FLOOD_VIA_TC, PORT_F_MAC_MOVE, PORT_F_RATE, PORT_F_TC_ONLY, PORT_F_XDP, PortConf,
};

use super::{Attached, host_port_spec, port_conf};
use crate::config::{AttachMode, BridgeSpec, Config, HostSpec, PortMode, PortSpec};

/// Stable bridge ids: a bridge of `names` keeps its id from `old`; a new one takes the lowest
/// id held neither by a bridge of `old` nor by one already placed. `None` when out of ids.
#[must_use]
pub fn bridge_ids<'a>(
    old: &BTreeMap<String, u32>,
    names: impl IntoIterator<Item = &'a str>,
) -> Option<BTreeMap<String, u32>> {
    let mut ids: BTreeMap<String, u32> = BTreeMap::new();
    for name in names {
        let id = match old.get(name) {
            Some(id) => *id,
            None => (1..=u32::MAX)
                .find(|i| !old.values().any(|id| id == i) && !ids.values().any(|id| id == i))?,
        };
        ids.insert(name.to_string(), id);
    }
    Some(ids)
}

/// The first free stats slot in `1..=max` (slot 0 counts frames of no port). `None` when all
/// are in use.
#[must_use]
pub fn alloc_slot(used: &BTreeSet<u32>, max: u32) -> Option<u32> {
    // The first gap: slots are dense from 1, so this is O(ports) once, not per candidate.
    (1..=max).find(|s| !used.contains(s))
}

/// The `PORT_F_*` flags of a port attached as `attached`, in a bridge that floods through TC
/// (`flood_via_tc`: some port of the bridge takes no XDP frames).
#[must_use]
pub fn port_flags(attached: Attached, flood_via_tc: bool) -> u8 {
    let mut flags = 0;
    if attached != Attached::Xdp {
        flags |= PORT_F_TC_ONLY;
    }
    if attached != Attached::Tc {
        flags |= PORT_F_XDP;
    }
    if flood_via_tc {
        flags |= PORT_F_FLOOD_VIA_TC;
    }
    flags
}

/// One write to a bridge's TC flood list in `XN_MEMBERS`, in the order they must happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberWrite {
    /// Set the list length (key `MEMBER_COUNT`).
    Count(u32),
    /// Set entry `idx` to `ifindex`.
    Entry {
        /// Index in the list.
        idx: u32,
        /// The member.
        ifindex: u32,
    },
    /// Delete entry `idx` (may already be gone).
    Clear(u32),
    /// Delete the length: the list is empty.
    ClearCount,
}

/// Bring the dense flood list `list` to the members `desired`, with O(1) writes per joining
/// or leaving port: a leaver's index takes the list's last entry, a joiner is appended. The
/// count shrinks before entries go and grows after they are written, so a reader never reads
/// past valid entries. Updates `list` and returns the writes in order.
pub fn member_writes(
    list: &mut Vec<u32>,
    desired: &BTreeSet<u32>,
) -> anyhow::Result<Vec<MemberWrite>> {
    let mut out = Vec::new();
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
        out.push(MemberWrite::Count(n));
        if i != tail {
            out.push(MemberWrite::Entry {
                idx: u32::try_from(i).context("index")?,
                ifindex: list[tail],
            });
        }
        out.push(MemberWrite::Clear(n));
        list.swap_remove(i);
    }
    // Joiners.
    for ifindex in desired {
        if list.contains(ifindex) {
            continue;
        }
        let n = u32::try_from(list.len()).context("member count")?;
        out.push(MemberWrite::Entry {
            idx: n,
            ifindex: *ifindex,
        });
        out.push(MemberWrite::Count(n + 1));
        list.push(*ifindex);
    }
    if list.is_empty() {
        out.push(MemberWrite::ClearCount);
    }
    Ok(out)
}

/// The static FDB entries `cfg` asks for (key → ifindex), for the ports `ifindex_of` knows
/// (the attached ones) in the bridges `ids` numbers: each port's `macs`, and dom0's MAC on
/// every VLAN of its bridge's host port, pointing at the host port's bridge side. `host_mac`
/// gives dom0's MAC (the configured `mac`, or the one the kernel chose, read back); a host
/// port whose MAC is unknown has no entry. dom0's entry wins over a port's claim of the same
/// MAC and VLAN, so a guest can never take dom0's traffic.
#[must_use]
pub fn wanted_statics(
    cfg: &Config,
    ids: &BTreeMap<String, u32>,
    ifindex_of: impl Fn(&str) -> Option<u32>,
    host_mac: impl Fn(&HostSpec) -> Option<[u8; 6]>,
) -> BTreeMap<FdbKey, u32> {
    let mut want = BTreeMap::new();
    for b in &cfg.bridges {
        let Some(bid) = ids.get(&b.name) else {
            continue;
        };
        let key = |mac: [u8; 6], vlan: u16| FdbKey {
            mac,
            vlan,
            bridge: *bid,
        };
        for p in &b.ports {
            let Some(idx) = ifindex_of(&p.interface) else {
                continue;
            };
            for (mac, vlan) in &p.macs {
                want.insert(key(mac.0, *vlan), idx);
            }
        }
        let Some(h) = &b.host else { continue };
        let (Some(idx), Some(mac)) = (ifindex_of(&h.peer), host_mac(h)) else {
            continue;
        };
        for vlan in carried(&h.mode) {
            want.insert(key(mac, vlan), idx);
        }
    }
    want
}

/// Every VLAN a port of `mode` carries.
fn carried(mode: &PortMode) -> Vec<u16> {
    match mode {
        PortMode::Access { vlan } => vec![*vlan],
        PortMode::Trunk { vlans, .. } => vlans.iter().copied().collect(),
    }
}

/// What to do to the static FDB entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StaticsPlan {
    /// Entries written before and no longer wanted.
    pub remove: Vec<FdbKey>,
    /// Entries to write (new, or now on another port).
    pub write: Vec<(FdbKey, u32)>,
}

/// Take the static entries from `wrote` (what the agent wrote last time) to `want`; entries
/// already as wanted are not touched.
#[must_use]
pub fn statics_plan(wrote: &BTreeMap<FdbKey, u32>, want: &BTreeMap<FdbKey, u32>) -> StaticsPlan {
    StaticsPlan {
        remove: wrote
            .keys()
            .filter(|k| !want.contains_key(*k))
            .copied()
            .collect(),
        write: want
            .iter()
            .filter(|(k, idx)| wrote.get(*k) != Some(*idx))
            .map(|(k, idx)| (*k, *idx))
            .collect(),
    }
}

/// A port the configuration asks for.
#[derive(Clone, Debug)]
pub struct Wanted<'a> {
    /// Its bridge.
    pub bridge: &'a BridgeSpec,
    /// Its spec (for the bridge side of a host port, derived from the host port).
    pub spec: PortSpec,
    /// Whether it is the bridge side of the bridge's host port.
    pub host: bool,
}

/// The ports `cfg` asks for, by interface: configured ones plus the bridge side of each host
/// port.
#[must_use]
pub fn wanted_ports(cfg: &Config) -> BTreeMap<String, Wanted<'_>> {
    let mut want = BTreeMap::new();
    for b in &cfg.bridges {
        for p in &b.ports {
            want.insert(p.interface.clone(), (b, p.clone()));
        }
        if let Some(h) = &b.host {
            want.insert(h.peer.clone(), (b, host_port_spec(h)));
        }
    }
    want.into_iter()
        .map(|(name, (bridge, spec))| {
            let host = bridge.host.as_ref().is_some_and(|h| h.peer == name);
            (name, Wanted { bridge, spec, host })
        })
        .collect()
}

/// An attached port, as the plan sees it.
#[derive(Clone, Debug)]
pub struct Current {
    /// Bridge name.
    pub bridge: String,
    /// Bridge id.
    pub bridge_id: u32,
    /// The port map value last written (its `slot` is the port's stats slot).
    pub conf: PortConf,
    /// The configured attach mode.
    pub attach: AttachMode,
}

/// How an attached port must change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Update {
    /// The new port map value (flags kept until they are recomputed).
    pub conf: PortConf,
    /// Whether the programs must be attached again (the attach mode changed).
    pub reattach: bool,
}

/// The port flags that come from the configuration (a bandwidth limit, `mac_move`); the
/// others follow from the attach modes ([`port_flags`]).
pub const CONF_FLAGS: u8 = PORT_F_RATE | PORT_F_MAC_MOVE;

/// How an attached port with value `cur` and attach mode `cur_attach` must change to have
/// value `new` (computed for the same slot) and attach mode `new_attach`; `None` when it need
/// not. The decision compares whole map values, flags aside, so any field of [`PortConf`]
/// counts; the attach mode is the one thing not in the map value.
#[must_use]
pub fn port_update(
    cur: &PortConf,
    cur_attach: AttachMode,
    mut new: PortConf,
    new_attach: AttachMode,
) -> Option<Update> {
    // The attachment flags stay until they are recomputed; the configured ones (a limit,
    // `mac_move`) come with the new value.
    new.flags = (cur.flags & !CONF_FLAGS) | (new.flags & CONF_FLAGS);
    let reattach = new_attach != cur_attach;
    (new != *cur || reattach).then_some(Update {
        conf: new,
        reattach,
    })
}

/// One step of a reload, for a wanted port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Attach a new port.
    Add {
        /// Its bridge's id.
        bridge_id: u32,
    },
    /// Rewrite an attached port.
    Update(Box<Update>),
}

/// A reload: ports to detach first, then the steps in interface order (ports that need no
/// change have none).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortPlan {
    /// Ports to detach: no longer wanted, or moved to another bridge.
    pub remove: Vec<String>,
    /// Ports to attach or rewrite.
    pub steps: Vec<(String, Step)>,
}

/// Plan the way from the attached ports `current` to `wanted`, with bridge ids `ids` (a
/// wanted port of a bridge without an id is left out).
#[must_use]
pub fn plan_ports(
    current: &BTreeMap<String, Current>,
    wanted: &BTreeMap<String, Wanted<'_>>,
    ids: &BTreeMap<String, u32>,
) -> PortPlan {
    // Removed (or moved to another bridge): detached first, so a slot or an FDB entry is
    // never shared between an old and a new port.
    let remove: Vec<String> = current
        .iter()
        .filter(|(name, cur)| {
            wanted.get(*name).is_none_or(|w| {
                w.bridge.name != cur.bridge || ids.get(&w.bridge.name) != Some(&cur.bridge_id)
            })
        })
        .map(|(name, _)| name.clone())
        .collect();
    let removed: BTreeSet<&String> = remove.iter().collect();
    let mut steps = Vec::new();
    for (name, w) in wanted {
        let Some(bid) = ids.get(&w.bridge.name) else {
            continue;
        };
        let cur = current.get(name).filter(|_| !removed.contains(name));
        let Some(cur) = cur else {
            steps.push((name.clone(), Step::Add { bridge_id: *bid }));
            continue;
        };
        let new = port_conf(*bid, w.bridge.tpid, cur.conf.slot, &w.spec);
        if let Some(u) = port_update(&cur.conf, cur.attach, new, w.spec.attach) {
            steps.push((name.clone(), Step::Update(Box::new(u))));
        }
    }
    PortPlan { remove, steps }
}

#[cfg(test)]
mod tests;
