//! The FDB: flushing a port's entries, keeping the static entries to the configuration (the
//! ports' `macs` and dom0's MAC on its host port), listing the entries, aging learned ones out.

use std::collections::BTreeMap;

use anyhow::{Context as _, bail};
use aya::maps::{HashMap, MapData};
use tracing::{info, warn};
use xennet_common::{
    fwd::REFRESH_NS,
    maps::{FDB_STATIC, FdbKey, FdbVal, MAP_FDB},
};

use super::{Datapath, FdbEntry, fmt_mac, plan};
use crate::{
    clock,
    config::{Config, HostSpec},
};

impl Datapath {
    /// Delete every FDB entry matching `pred`; returns how many learned entries went.
    pub(super) fn flush_fdb<F: Fn(&FdbKey, &FdbVal) -> bool>(
        &mut self,
        pred: F,
    ) -> anyhow::Result<usize> {
        let mut fdb: HashMap<&mut MapData, FdbKey, FdbVal> = self.map_mut(MAP_FDB)?;
        let doomed: Vec<(FdbKey, FdbVal)> = fdb
            .iter()
            .filter_map(Result::ok)
            .filter(|(k, v)| pred(k, v))
            .collect();
        let mut learned = 0;
        let any = !doomed.is_empty();
        for (k, v) in doomed {
            if fdb.remove(&k).is_ok() && v.flags & FDB_STATIC == 0 {
                learned += 1;
            }
        }
        if any {
            self.fdb_gen.bump();
        }
        Ok(learned)
    }

    /// A port's link went down (carrier lost, or set down): forget what was learned on it, as
    /// the Linux bridge does, so that no traffic stays pointed at it; its static entries
    /// stay. Nothing when `ifindex` is not a port. Returns how many entries went.
    pub fn flush_learned_on(&mut self, ifindex: u32) -> anyhow::Result<usize> {
        let Some((name, slot)) = self
            .ports
            .iter()
            .find(|(_, p)| p.public.ifindex == ifindex)
            .map(|(n, p)| (n.clone(), p.public.slot))
        else {
            return Ok(0);
        };
        let flushed = self.flush_fdb(|_, v| v.ifindex == ifindex && v.flags & FDB_STATIC == 0)?;
        for _ in 0..flushed {
            self.learned.dec(slot);
        }
        if flushed > 0 {
            info!(port = %name, flushed, "link down: learned entries flushed");
        }
        Ok(flushed)
    }

    /// Make the static FDB entries exactly those of `cfg`; returns (written, removed). Only
    /// the entries that differ from what this agent wrote before are touched.
    pub(super) fn sync_statics(&mut self, cfg: &Config) -> anyhow::Result<(usize, usize)> {
        let ids: BTreeMap<String, u32> = self
            .bridges
            .iter()
            .map(|(name, (id, _))| (name.clone(), *id))
            .collect();
        let want = plan::wanted_statics(
            cfg,
            &ids,
            |name| self.ports.get(name).map(|s| s.public.ifindex),
            dom0_mac,
        );
        let todo = plan::statics_plan(&self.statics, &want);
        let slot_of = self.slots();
        let mut fdb: HashMap<&mut MapData, FdbKey, FdbVal> = self.map_mut(MAP_FDB)?;
        let mut removed = 0;
        for k in &todo.remove {
            // A static entry a migrated guest's claim moved to an uplink is a learned one
            // now: it stays (it ages there, or the guest's new vif takes it).
            if fdb.get(k, 0).is_ok_and(|v| v.flags & FDB_STATIC == 0) {
                continue;
            }
            if fdb.remove(k).is_ok() {
                removed += 1;
            }
        }
        let mut replaced_learned = Vec::new();
        for (k, idx) in &todo.write {
            if let Ok(old) = fdb.get(k, 0) {
                if old.flags & FDB_STATIC == 0 {
                    replaced_learned.push(old.ifindex);
                }
            }
            let val = FdbVal {
                ifindex: *idx,
                flags: FDB_STATIC,
                slot: slot_of.get(idx).map_or(0, |s| FdbVal::slot_of(*s)),
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
        let added = todo.write.len();
        if removed > 0 || added > 0 {
            self.fdb_gen.bump();
        }
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
        list_fdb(
            &fdb,
            bridge,
            |id| {
                names
                    .get(&id)
                    .map_or_else(|| format!("#{id}"), |n| (*n).to_string())
            },
            |idx| {
                ports
                    .get(&idx)
                    .map_or_else(|| format!("ifindex {idx}"), |n| (*n).to_string())
            },
        )
    }

    /// Remove learned entries not seen for longer than their bridge's aging time; returns
    /// how many went.
    ///
    /// Only entries certainly silent that long: the datapath does not refresh an entry's
    /// time on every frame, so a station that spoke since may show a time up to
    /// [`REFRESH_NS`] older, and both clocks are coarse (one tick more).
    pub fn age(&mut self, now_ns: u64) -> anyhow::Result<usize> {
        let slack = REFRESH_NS + clock::tick_ns();
        let aging: BTreeMap<u32, u64> = self.bridges.values().copied().collect();
        let slot_of = self.slots();
        let mut fdb: HashMap<&mut MapData, FdbKey, FdbVal> = self.map_mut(MAP_FDB)?;
        let old: Vec<(FdbKey, FdbVal)> = fdb
            .iter()
            .filter_map(Result::ok)
            .filter(|(k, v)| {
                v.flags & FDB_STATIC == 0
                    && aging.get(&k.bridge).is_some_and(|a| {
                        *a != 0 && now_ns.saturating_sub(v.last_seen_ns) > *a + slack
                    })
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
        if !gone.is_empty() {
            self.fdb_gen.bump();
        }
        for idx in &gone {
            if let Some(slot) = slot_of.get(idx) {
                self.learned.dec(*slot);
            }
        }
        Ok(gone.len())
    }
}

/// dom0's MAC on host port `host`: what its interface actually has (the kernel's choice, or the
/// configured `mac` the agent set); the configured `mac` if the interface cannot be read.
fn dom0_mac(host: &HostSpec) -> Option<[u8; 6]> {
    match link_mac(&host.interface) {
        Ok(mac) => Some(mac),
        Err(e) => {
            warn!(interface = %host.interface, error = %format!("{e:#}"), "reading dom0's MAC");
            host.mac.map(|m| m.0)
        }
    }
}

/// The MAC address of interface `name` in the calling thread's network namespace
/// (`SIOCGIFHWADDR`).
fn link_mac(name: &str) -> anyhow::Result<[u8; 6]> {
    // SAFETY: an all-zero `ifreq` is valid (a name of NULs and a zeroed union).
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= req.ifr_name.len() || bytes.contains(&0) {
        bail!("{name:?} is not an interface name");
    }
    for (dst, src) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = libc::c_char::from_ne_bytes([*src]);
    }
    // SAFETY: plain socket call; the descriptor is owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("opening a socket for SIOCGIFHWADDR");
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    let sock = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    // SAFETY: `req` is a valid `ifreq` for the duration of the call; the kernel writes only
    // into it.
    let rc = unsafe {
        libc::ioctl(
            std::os::fd::AsRawFd::as_raw_fd(&sock),
            libc::SIOCGIFHWADDR,
            &raw mut req,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("reading the MAC of {name}"));
    }
    // SAFETY: SIOCGIFHWADDR filled the `ifru_hwaddr` member of the union.
    let data = unsafe { req.ifr_ifru.ifru_hwaddr.sa_data };
    let mut mac = [0u8; 6];
    for (dst, src) in mac.iter_mut().zip(data) {
        *dst = src.to_ne_bytes()[0];
    }
    Ok(mac)
}

/// The entries of an `XN_FDB` map as `fdb show` lists them, sorted by bridge, VLAN and MAC; only
/// bridge `only` when given. Bridge and port names come from the caller (the agent's own, or
/// those a reader without the agent can find).
pub(super) fn list_fdb<M: std::borrow::Borrow<MapData>>(
    fdb: &HashMap<M, FdbKey, FdbVal>,
    only: Option<&str>,
    bridge_name: impl Fn(u32) -> String,
    port_name: impl Fn(u32) -> String,
) -> anyhow::Result<Vec<FdbEntry>> {
    let now = clock::now_ns();
    let mut out = Vec::new();
    for item in fdb {
        let (k, v) = item.context("iterating XN_FDB")?;
        let bname = bridge_name(k.bridge);
        if only.is_some_and(|b| b != bname) {
            continue;
        }
        let is_static = v.flags & FDB_STATIC != 0;
        #[expect(clippy::cast_precision_loss, reason = "ages in seconds")]
        let age = (!is_static).then(|| now.saturating_sub(v.last_seen_ns) as f64 / 1e9);
        out.push(FdbEntry {
            bridge: bname,
            mac: fmt_mac(k.mac),
            vlan: k.vlan,
            port: port_name(v.ifindex),
            is_static,
            age_secs: age,
        });
    }
    out.sort_by(|a, b| (&a.bridge, a.vlan, &a.mac).cmp(&(&b.bridge, b.vlan, &b.mac)));
    Ok(out)
}
