//! Upgrading a pinned datapath to this build's map layout (as Cilium does): each pinned map
//! whose definition differs is made anew, its contents carried over where they can be, the new
//! programs swapped into the existing links, and only then the pins replaced.
//!
//! The steps, and who does them:
//! 1. [`survey`] (before loading): every map of the object is *reused* (pinned, same
//!    definition), *created* (not pinned yet: pinned at once, no old program uses it) or
//!    *replaced* (pinned, defined differently: made unpinned, staged as `NAME_staged` (bpffs names take no dot)); pins of
//!    maps this build has not *vanish*.
//! 2. [`Upgrade::start`] (after loading, before any program is swapped): the contents of the
//!    replaced maps are copied byte for byte where key and value kept their sizes (an array by
//!    index, a hash map entry by entry); the counters (`XN_STATS`) wait for step 4; the maps
//!    the agent fills from the configuration and the state file (ports, slots, redirect and
//!    flood maps, member lists: every map not in [`STATEFUL`]) are refilled by the first
//!    reconcile; what is left (a stateful map whose entries changed size) is lost, logged
//!    and counted.
//! 3. Adoption opens the pinned links without swapping ([`Datapath::adopt`]); the agent's first
//!    reconcile fills the new maps.
//! 4. [`Datapath::finish_upgrade`]: the new programs go into every link (`bpf_link_update`,
//!    never detach-then-attach), the FDB entries learned meanwhile by the old programs are
//!    copied once more, the counters are added counter by counter *by name* (the old build's
//!    names come from the state file), the staged maps are renamed over the old pins, the
//!    vanished maps unpinned, and the state file records the new layout.
//!
//! A kill at any point leaves the old datapath forwarding (before step 4) or links running a
//! mix of old and new programs on complete maps (during it); the next start redoes the
//! upgrade from the pins still there, and removes leftover `NAME_staged` stages.

use std::{
    collections::BTreeSet,
    fs,
    os::fd::AsFd as _,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, anyhow};
use aya::maps::{MapData, MapInfo};
use tracing::{info, warn};
use xennet_common::{
    maps::{MAP_FDB, MAP_LEARNED, MAP_STATS},
    stats::Stat,
};

use super::{
    Datapath,
    attach::LinkKind,
    rawmap::{self, RawMap},
};

/// The maps whose contents only the datapath knows (learned stations, counters, learned
/// counts): carried over or counted as lost. Every other map is derived from the
/// configuration and the state file, and refilled.
pub const STATEFUL: [&str; 3] = [MAP_FDB, MAP_STATS, MAP_LEARNED];

/// Suffix of a replacement map staged beside the pin it replaces.
const STAGED: &str = "_staged";

/// `BPF_F_RDONLY_PROG`, which the kernel sets on every devmap.
const BPF_F_RDONLY_PROG: u32 = 1 << 7;

/// A map definition, as the object declares it or the kernel reports a pinned one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Def {
    /// `BPF_MAP_TYPE_*`.
    pub ty: u32,
    /// Key size in bytes.
    pub key: u32,
    /// Value size in bytes.
    pub value: u32,
    /// Capacity.
    pub max: u32,
    /// `BPF_F_*` flags (but the one the kernel adds to devmaps).
    pub flags: u32,
}

impl Def {
    fn of_pin(info: &MapInfo) -> Def {
        Def {
            ty: info.map_type().map_or(u32::MAX, |t| t as u32),
            key: info.key_size(),
            value: info.value_size(),
            max: info.max_entries(),
            flags: info.map_flags() & !BPF_F_RDONLY_PROG,
        }
    }

    fn of_obj(m: &aya_obj::Map) -> Def {
        Def {
            ty: m.map_type(),
            key: m.key_size(),
            value: m.value_size(),
            max: m.max_entries(),
            flags: m.map_flags() & !BPF_F_RDONLY_PROG,
        }
    }

    /// `PERCPU_HASH`, `PERCPU_ARRAY`, `LRU_PERCPU_HASH`.
    fn per_cpu(self) -> bool {
        matches!(self.ty, 5 | 6 | 10)
    }

    /// `ARRAY`, `PERCPU_ARRAY`: every index exists.
    fn array(self) -> bool {
        matches!(self.ty, 2 | 6)
    }

    /// `DEVMAP`, `DEVMAP_HASH`: values hold program descriptors, never copied.
    fn devmap(self) -> bool {
        matches!(self.ty, 14 | 25)
    }

    /// Bytes of one value as the syscalls see it (per-CPU: one 8-byte slot per CPU).
    fn value_len(self, cpus: usize) -> usize {
        if self.per_cpu() {
            (self.value as usize).div_ceil(8) * 8 * cpus
        } else {
            self.value as usize
        }
    }

    fn raw(self, data: &MapData, cpus: usize) -> RawMap<'_> {
        RawMap::new(data.fd().as_fd(), self.key, self.value_len(cpus))
    }
}

/// How a replaced map's contents reach the new map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum How {
    /// Byte for byte (key and value kept their sizes).
    Copy,
    /// Counter by counter, by name (after the swap, added to what the new programs counted).
    Counters,
    /// Refilled from the configuration and the state file by the agent.
    Refill,
    /// Not carried over: the map starts empty; what it held is counted as lost.
    Lost,
}

/// How to carry map `name` from `old` to `new`; `bytes_ok` is false when the layout version
/// changed (same sizes may not mean the same bytes).
#[must_use]
pub fn how(name: &str, old: Def, new: Def, bytes_ok: bool) -> How {
    let counters = |d: Def| d.per_cpu() && d.array() && d.value.is_multiple_of(8);
    if name == MAP_STATS && counters(old) && counters(new) {
        How::Counters
    } else if !STATEFUL.contains(&name) {
        How::Refill
    } else if bytes_ok
        && old.ty == new.ty
        && old.key == new.key
        && old.value == new.value
        && !old.devmap()
    {
        How::Copy
    } else {
        How::Lost
    }
}

/// Whether a pinned map defined `old` serves as this build's `new` as it is. The FDB's
/// capacity is configured, not part of its layout.
#[must_use]
pub fn fits(name: &str, old: Def, new: Def) -> bool {
    old.ty == new.ty
        && old.key == new.key
        && old.value == new.value
        && old.flags == new.flags
        && (old.max == new.max || name == MAP_FDB)
}

/// For each old counter (by index), the index of the counter of the same name in `new`; the
/// old names with no counterpart are returned apart (lost).
#[must_use]
pub fn counter_map(old: &[String], new: &[&str]) -> (Vec<(usize, usize)>, Vec<String>) {
    let mut pairs = Vec::new();
    let mut lost = Vec::new();
    for (i, n) in old.iter().enumerate() {
        match new.iter().position(|m| m == n) {
            Some(j) => pairs.push((i, j)),
            None => lost.push(n.clone()),
        }
    }
    (pairs, lost)
}

/// This build's counter names, in index order.
#[must_use]
pub fn stat_names() -> Vec<String> {
    Stat::ALL.iter().map(|s| s.name().to_string()).collect()
}

/// What [`survey`] found pinned.
#[derive(Debug, Default)]
pub struct Survey {
    /// Maps to open from their pins (or create and pin): reused and created.
    pub pinned: Vec<String>,
    /// Maps pinned with another definition: (name, old definition, how).
    pub replaced: Vec<(String, Def, How)>,
    /// Pins of maps this build does not have.
    pub vanished: Vec<String>,
    /// Maps this build adds.
    pub created: Vec<String>,
    /// The FDB capacity to use (a pinned FDB keeps its own).
    pub fdb_entries: u32,
}

/// Compare the maps pinned under `pin_dir` with `object`'s. `old_stats` are the counter names
/// of the build that pinned them (from the state file); `bytes_ok` as in [`how`].
pub fn survey(
    pin_dir: &Path,
    object: &[u8],
    fdb_max_entries: u32,
    old_stats: Option<&[String]>,
    bytes_ok: bool,
) -> anyhow::Result<Survey> {
    let obj = aya_obj::Object::parse(object).context("parsing the eBPF object")?;
    let mut s = Survey {
        fdb_entries: fdb_max_entries,
        ..Survey::default()
    };
    let mut names = BTreeSet::new();
    for (name, m) in &obj.maps {
        if name.starts_with('.') {
            continue;
        }
        names.insert(name.clone());
        let new = Def::of_obj(m);
        let path = pin_dir.join(name);
        // A stage left by a killed upgrade: its map is not pinned elsewhere.
        let staged = staged_path(pin_dir, name);
        if staged.exists() {
            fs::remove_file(&staged)
                .with_context(|| format!("removing a stale stage {}", staged.display()))?;
        }
        if !path.exists() {
            s.created.push(name.clone());
            s.pinned.push(name.clone());
            continue;
        }
        let info = MapInfo::from_pin(&path)
            .with_context(|| format!("reading the pinned map {}", path.display()))?;
        let old = Def::of_pin(&info);
        let names_ok = name != MAP_STATS || old_stats.is_none_or(|o| *o == stat_names()[..]);
        if fits(name, old, new) && names_ok && (bytes_ok || !STATEFUL.contains(&name.as_str())) {
            if name == MAP_FDB && old.max != fdb_max_entries {
                warn!(
                    pinned = old.max,
                    configured = fdb_max_entries,
                    "the pinned FDB keeps its size; fdb_max_entries takes effect after `xennet-agent down`"
                );
                s.fdb_entries = old.max;
            }
            s.pinned.push(name.clone());
        } else {
            s.replaced
                .push((name.clone(), old, how(name, old, new, bytes_ok)));
        }
    }
    for e in fs::read_dir(pin_dir)
        .with_context(|| format!("reading {}", pin_dir.display()))?
        .filter_map(Result::ok)
    {
        let n = e.file_name().to_string_lossy().into_owned();
        if is_map_pin(&n) && !n.ends_with(STAGED) && !names.contains(&n) {
            s.vanished.push(n);
        } else if n.ends_with(STAGED) && is_map_pin(&n) {
            // A stage of a map this build has not.
            fs::remove_file(e.path()).with_context(|| format!("removing {n}"))?;
        }
    }
    Ok(s)
}

/// Whether a pin name under `pin_dir` is one of a datapath's maps (any build's, stages too).
#[must_use]
pub fn is_map_pin(name: &str) -> bool {
    name.starts_with("XN_")
}

fn staged_path(pin_dir: &Path, name: &str) -> PathBuf {
    pin_dir.join(format!("{name}{STAGED}"))
}

/// One replaced map: the old one (still pinned and used by the old programs) and the stage
/// of the new one.
#[derive(Debug)]
struct Replaced {
    name: String,
    old: MapData,
    old_def: Def,
    how: How,
}

/// What an upgrade carried over, refilled and lost (logged at the end).
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct Report {
    /// Maps made anew with their contents copied (name, entries).
    pub copied: Vec<(String, usize)>,
    /// Maps refilled from the configuration (name, entries the old one held).
    pub refilled: Vec<String>,
    /// Entries lost (name, count), and counters with no counterpart in this build.
    pub lost: Vec<(String, usize)>,
    /// Maps new in this build.
    pub created: Vec<String>,
    /// Pins of maps this build has not, removed.
    pub removed: Vec<String>,
}

/// An upgrade in progress: started when the object is loaded, finished after the first
/// reconcile ([`Datapath::finish_upgrade`]).
#[derive(Debug)]
pub struct Upgrade {
    replaced: Vec<Replaced>,
    vanished: Vec<String>,
    old_stats: Vec<String>,
    /// The layout stamp of the pinned datapath (kept in the state file until the end).
    old_layout: String,
    /// Links adopted without their programs swapped yet.
    pub(super) deferred: BTreeSet<PathBuf>,
    report: Report,
    cpus: usize,
}

fn count(raw: &RawMap<'_>, def: Def) -> anyhow::Result<usize> {
    if def.array() {
        let mut n = 0;
        for i in 0..def.max {
            if raw
                .get(&i.to_ne_bytes())?
                .is_some_and(|v| v.iter().any(|b| *b != 0))
            {
                n += 1;
            }
        }
        Ok(n)
    } else {
        Ok(raw.keys()?.len())
    }
}

/// Copy every entry of `from` into `to` (`flags` as [`RawMap::put`]); returns (copied, that did
/// not fit).
fn copy(
    from: &RawMap<'_>,
    fdef: Def,
    to: &RawMap<'_>,
    tdef: Def,
    flags: u64,
) -> anyhow::Result<(usize, usize)> {
    let (mut done, mut lost) = (0, 0);
    if fdef.array() {
        for i in 0..fdef.max {
            let k = i.to_ne_bytes();
            let Some(v) = from.get(&k)? else { continue };
            if i >= tdef.max {
                lost += usize::from(v.iter().any(|b| *b != 0));
                continue;
            }
            to.put(&k, &v, rawmap::ANY)?;
            done += 1;
        }
    } else {
        for k in from.keys()? {
            let Some(v) = from.get(&k)? else { continue };
            match to.put(&k, &v, flags) {
                Ok(()) => done += 1,
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                Err(e) if e.raw_os_error() == Some(libc::E2BIG) => lost += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok((done, lost))
}

impl Upgrade {
    /// After loading: open the replaced maps' old pins, stage the new maps beside them and
    /// copy what can be copied before the swap. `None` when nothing is replaced or vanished.
    pub(super) fn start(
        dp: &Datapath,
        survey: &Survey,
        old_stats: Option<Vec<String>>,
        old_layout: Option<&str>,
    ) -> anyhow::Result<Option<Upgrade>> {
        if survey.replaced.is_empty() && survey.vanished.is_empty() {
            return Ok(None);
        }
        let cpus = aya::util::nr_cpus().map_err(|(what, e)| anyhow!("{what}: {e}"))?;
        let mut up = Upgrade {
            replaced: Vec::new(),
            vanished: survey.vanished.clone(),
            old_stats: old_stats.unwrap_or_else(|| {
                warn!("no counter names recorded: assuming this build's, in order");
                stat_names()
            }),
            old_layout: old_layout.unwrap_or_default().to_string(),
            deferred: BTreeSet::new(),
            report: Report {
                created: survey.created.clone(),
                ..Report::default()
            },
            cpus,
        };
        for (name, old_def, how) in &survey.replaced {
            let path = dp.pin_dir.join(name);
            let old = MapData::from_pin(&path)
                .with_context(|| format!("opening the pinned map {}", path.display()))?;
            let staged = staged_path(&dp.pin_dir, name);
            dp.map(name)?
                .pin(&staged)
                .with_context(|| format!("staging {name} at {}", staged.display()))?;
            let r = Replaced {
                name: name.clone(),
                old,
                old_def: *old_def,
                how: *how,
            };
            up.before_swap(dp, &r)?;
            up.replaced.push(r);
        }
        Ok(Some(up))
    }

    fn new_map(dp: &Datapath, name: &str) -> anyhow::Result<(MapData, Def)> {
        let staged = staged_path(&dp.pin_dir, name);
        let data = MapData::from_pin(&staged)
            .with_context(|| format!("opening the staged map {}", staged.display()))?;
        let def = Def::of_pin(&data.info().context("staged map info")?);
        Ok((data, def))
    }

    fn before_swap(&mut self, dp: &Datapath, r: &Replaced) -> anyhow::Result<()> {
        let old = r.old_def.raw(&r.old, self.cpus);
        match r.how {
            How::Copy => {
                let (data, def) = Self::new_map(dp, &r.name)?;
                let (done, lost) = copy(
                    &old,
                    r.old_def,
                    &def.raw(&data, self.cpus),
                    def,
                    rawmap::ANY,
                )?;
                info!(map = %r.name, copied = done, lost, "map made anew, contents copied");
                self.report.copied.push((r.name.clone(), done));
                if lost > 0 {
                    self.report.lost.push((r.name.clone(), lost));
                }
            }
            How::Counters => {}
            How::Refill => {
                info!(map = %r.name, "map made anew, refilled from the configuration");
                self.report.refilled.push(r.name.clone());
            }
            How::Lost => {
                let n = count(&old, r.old_def)?;
                warn!(map = %r.name, entries = n, "map layout changed and cannot be converted: rebuilt empty, entries lost");
                self.report.lost.push((r.name.clone(), n));
            }
        }
        Ok(())
    }

    /// Whether map `name` is rebuilt and left to the agent to fill (not carried over).
    #[must_use]
    pub fn refills(&self, name: &str) -> bool {
        self.replaced
            .iter()
            .any(|r| r.name == name && matches!(r.how, How::Refill | How::Lost))
    }

    /// What the state file says until the upgrade is done: the pinned datapath's layout and
    /// counter names (a kill before the end leaves those maps pinned).
    #[must_use]
    pub fn recorded(&self) -> (String, Vec<String>) {
        (self.old_layout.clone(), self.old_stats.clone())
    }

    /// Whether programs must wait for the first reconcile before going into the links.
    #[must_use]
    pub fn defers_swap(&self) -> bool {
        !self.replaced.is_empty()
    }

    /// After the swap: the FDB entries learned meanwhile, and the counters by name.
    fn after_swap(&mut self, dp: &Datapath) -> anyhow::Result<()> {
        let new_names = stat_names();
        let new_names: Vec<&str> = new_names.iter().map(String::as_str).collect();
        for r in &self.replaced {
            let old = r.old_def.raw(&r.old, self.cpus);
            match r.how {
                How::Copy if !r.old_def.array() => {
                    let (data, def) = Self::new_map(dp, &r.name)?;
                    copy(
                        &old,
                        r.old_def,
                        &def.raw(&data, self.cpus),
                        def,
                        rawmap::NOEXIST,
                    )?;
                }
                How::Counters => {
                    let (data, def) = Self::new_map(dp, &r.name)?;
                    let (pairs, lost) = counter_map(&self.old_stats, &new_names);
                    let to = def.raw(&data, self.cpus);
                    let mut carried = 0;
                    for slot in 0..r.old_def.max.min(def.max) {
                        let k = slot.to_ne_bytes();
                        let (Some(o), Some(mut n)) = (old.get(&k)?, to.get(&k)?) else {
                            continue;
                        };
                        add_counters(&o, r.old_def.value, &mut n, def.value, &pairs, self.cpus);
                        to.put(&k, &n, rawmap::ANY)?;
                        carried += 1;
                    }
                    info!(map = %r.name, slots = carried, lost = ?lost, "counters carried over by name");
                    self.report.copied.push((r.name.clone(), carried));
                    for l in lost {
                        self.report.lost.push((format!("{}:{l}", r.name), 1));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Add the per-CPU counters of `old` (values of `old_size` bytes) into `new`, old index `i`
/// into new index `j` for each pair.
pub fn add_counters(
    old: &[u8],
    old_size: u32,
    new: &mut [u8],
    new_size: u32,
    pairs: &[(usize, usize)],
    cpus: usize,
) {
    let (os, ns) = (
        (old_size as usize).div_ceil(8) * 8,
        (new_size as usize).div_ceil(8) * 8,
    );
    let at = |b: &[u8], off: usize| -> u64 {
        b.get(off..off + 8)
            .and_then(|s| s.try_into().ok())
            .map_or(0, u64::from_ne_bytes)
    };
    for cpu in 0..cpus {
        for &(i, j) in pairs {
            if (i + 1) * 8 > old_size as usize || (j + 1) * 8 > new_size as usize {
                continue;
            }
            let (o, n) = (cpu * os + i * 8, cpu * ns + j * 8);
            let v = at(old, o).wrapping_add(at(new, n));
            if let Some(d) = new.get_mut(n..n + 8) {
                d.copy_from_slice(&v.to_ne_bytes());
            }
        }
    }
}

impl Datapath {
    /// Finish an upgrade after the first reconcile filled the new maps: swap this build's
    /// programs into the links adopted meanwhile, carry the counters, replace the pins and
    /// unpin the maps that vanished. Nothing to do without an upgrade.
    pub fn finish_upgrade(&mut self) -> anyhow::Result<Option<Report>> {
        let Some(mut up) = self.upgrade.take() else {
            return Ok(None);
        };
        let deferred = std::mem::take(&mut up.deferred);
        let names: Vec<String> = self.ports.keys().cloned().collect();
        for n in names {
            for kind in [LinkKind::Tc, LinkKind::Xdp] {
                let pin = self.ports.get(&n).and_then(|p| match kind {
                    LinkKind::Tc => p.links.tc.pin().map(Path::to_path_buf),
                    _ => p
                        .links
                        .xdp
                        .as_ref()
                        .and_then(|l| l.pin().map(Path::to_path_buf)),
                });
                let Some(pin) = pin.filter(|p| deferred.contains(p)) else {
                    continue;
                };
                let link = self
                    .replace_in(kind, &pin)
                    .with_context(|| format!("swapping the programs of {n}"))?;
                if let Some(p) = self.ports.get_mut(&n) {
                    match kind {
                        LinkKind::Tc => p.links.tc = link,
                        _ => p.links.xdp = Some(link),
                    }
                }
            }
        }
        let passing: Vec<String> = self.passing.keys().cloned().collect();
        for n in passing {
            let pin = self
                .passing
                .get(&n)
                .and_then(|l| l.pin().map(Path::to_path_buf));
            if let Some(pin) = pin.filter(|p| deferred.contains(p)) {
                let link = self.replace_in(LinkKind::Pass, &pin)?;
                self.passing.insert(n, link);
            }
        }
        up.after_swap(self)?;
        for r in &up.replaced {
            let (staged, path) = (
                staged_path(&self.pin_dir, &r.name),
                self.pin_dir.join(&r.name),
            );
            fs::rename(&staged, &path)
                .with_context(|| format!("replacing the pin {}", path.display()))?;
        }
        for v in &up.vanished {
            let path = self.pin_dir.join(v);
            super::attach::unpin(&path).with_context(|| format!("unpinning {}", path.display()))?;
            up.report.removed.push(v.clone());
        }
        self.save_state();
        let lost: usize = up.report.lost.iter().map(|(_, n)| n).sum();
        if lost > 0 {
            warn!(lost = ?up.report.lost, "upgrade: entries lost");
        }
        info!(
            copied = ?up.report.copied,
            refilled = ?up.report.refilled,
            created = ?up.report.created,
            removed = ?up.report.removed,
            lost,
            "upgraded the pinned datapath to this build's map layout"
        );
        Ok(Some(up.report))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: Def = Def {
        ty: 1,
        key: 12,
        value: 16,
        max: 100,
        flags: 0,
    };
    const STATS: Def = Def {
        ty: 6,
        key: 4,
        value: 8 * 28,
        max: 4097,
        flags: 0,
    };

    #[test]
    fn counters_go_by_name() {
        let old: Vec<String> = ["rx", "tx", "gone", "drop"].map(String::from).to_vec();
        let (pairs, lost) = counter_map(&old, &["tx", "rx", "drop", "new"]);
        assert_eq!(pairs, vec![(0, 1), (1, 0), (3, 2)]);
        assert_eq!(lost, vec!["gone".to_string()]);
        // Two CPUs; old values 3 counters, new 4 (each per-CPU value padded to 8 bytes).
        let old: Vec<u8> = [1u64, 2, 3, 10, 20, 30]
            .iter()
            .flat_map(|v| v.to_ne_bytes())
            .collect();
        let mut new: Vec<u8> = [0u64, 0, 5, 0, 0, 0, 0, 0]
            .iter()
            .flat_map(|v| v.to_ne_bytes())
            .collect();
        add_counters(&old, 24, &mut new, 32, &[(0, 2), (2, 0)], 2);
        let got: Vec<u64> = new
            .chunks(8)
            .map(|c| u64::from_ne_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(got, vec![3, 0, 6, 0, 30, 0, 10, 0]);
    }

    #[test]
    fn what_is_carried_how() {
        let bigger = Def { max: 200, ..HASH };
        assert!(fits(MAP_FDB, HASH, bigger), "the FDB's size is configured");
        assert!(!fits("XN_PORTS", HASH, bigger));
        assert_eq!(how(MAP_FDB, HASH, bigger, true), How::Copy);
        assert_eq!(
            how(MAP_FDB, HASH, Def { value: 24, ..HASH }, true),
            How::Lost
        );
        assert_eq!(
            how(MAP_FDB, HASH, bigger, false),
            How::Lost,
            "layout version bumped"
        );
        assert_eq!(how("XN_PORTS", HASH, bigger, true), How::Refill);
        assert_eq!(
            how("XN_NEWTABLE", HASH, Def { key: 8, ..HASH }, true),
            How::Refill
        );
        assert_eq!(
            how(
                MAP_STATS,
                STATS,
                Def {
                    value: 8 * 30,
                    ..STATS
                },
                false
            ),
            How::Counters
        );
        assert_eq!(
            how(
                MAP_LEARNED,
                Def {
                    ty: 2,
                    key: 4,
                    value: 4,
                    max: 10,
                    flags: 1024
                },
                Def {
                    ty: 2,
                    key: 4,
                    value: 4,
                    max: 20,
                    flags: 1024
                },
                true
            ),
            How::Copy
        );
    }
}
