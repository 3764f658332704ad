//! Upgrading a pinned datapath to this build's map layout (as Cilium does): each pinned map
//! whose definition differs is made anew, its contents carried over where they can be, the new
//! programs swapped into the existing links, and only then the pins replaced.
//!
//! The steps, and who does them:
//! 1. [`survey`] (before loading): every map of the object is *reused* (pinned, same
//!    definition), *created* (not pinned yet: pinned at once, no old program uses it) or
//!    *replaced* (pinned, defined differently: made unpinned, staged as `NAME_staged`, bpffs names take no dot); pins
//!    of maps this build has not *vanish*.
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
//! upgrade from the pins still there, and removes leftover `NAME_staged` stages. What is
//! carried how is decided in `carry`.

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, anyhow};
use aya::maps::{MapData, MapInfo};
use tracing::{info, warn};
use xennet_common::maps::{MAP_FDB, MAP_STATS};

pub use super::carry::{Def, How, STATEFUL, stat_names};
use super::{
    Datapath,
    attach::LinkKind,
    carry::{add_counters, counter_map, fits, how},
    rawmap::{self, RawMap},
};

/// Suffix of a replacement map staged beside the pin it replaces.
const STAGED: &str = "_staged";

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

/// Whether a pin name under `pin_dir` is one of a datapath's maps (any build's, stages too):
/// ours start with `XN_`; aya-log's ring keeps aya-log's own name.
#[must_use]
pub fn is_map_pin(name: &str) -> bool {
    let base = name.strip_suffix(STAGED).unwrap_or(name);
    base.starts_with("XN_") || base == xennet_common::monitor::MAP_LOGS
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
        // Entries carried into the new FDB after the swap: no cached copy may predate them.
        self.fdb_gen.bump();
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
    use super::is_map_pin;

    #[test]
    fn map_pins_are_ours_and_aya_logs_ring() {
        for n in [
            "XN_FDB",
            "XN_FDB_staged",
            "XN_PROBE",
            "AYA_LOGS",
            "AYA_LOGS_staged",
        ] {
            assert!(is_map_pin(n), "{n}");
        }
        for n in ["link_xdp_3", "link_tc_3", "AYA_LOGSX", "state", "other"] {
            assert!(!is_map_pin(n), "{n}");
        }
    }
}
