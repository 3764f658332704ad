//! Loading the embedded object (verifier included) and finding its programs; for a persistent
//! datapath, on the maps already pinned under `pin_dir` once they are checked compatible.

use std::{collections::BTreeMap, fmt::Write as _, fs, path::Path};

use anyhow::{Context as _, anyhow, bail};
use aya::{
    EbpfLoader,
    programs::{SchedClassifier, Xdp},
};
use tracing::warn;
use xennet_common::{
    fdbcache::MAP_FDBGEN,
    maps::{MAP_FDB, MAP_LEARNED, PROG_FLOOD_OUT, PROG_PASS, PROG_TC, PROG_XDP},
};

use super::{Datapath, migrate, state::State};
use crate::{fdbgen::FdbGen, learned::LearnedCounts};

/// Bumped when a map's key or value changes meaning without changing size (sizes, types and
/// flags are compared directly): an upgrade across a bump carries no map over byte for byte
/// (counters still go by name), see [`super::migrate`].
pub const MAP_LAYOUT_VERSION: u32 = 1;

/// The layout stamp of `object`'s maps: version, then each map's type, key and value sizes,
/// flags and (but for the FDB, whose size is configured) capacity.
pub fn layout_stamp(object: &[u8]) -> anyhow::Result<String> {
    let obj = aya_obj::Object::parse(object).context("parsing the eBPF object")?;
    let mut s = format!("v{MAP_LAYOUT_VERSION}");
    let maps: std::collections::BTreeMap<&String, &aya_obj::Map> = obj
        .maps
        .iter()
        .filter(|(n, _)| !n.starts_with('.'))
        .collect();
    for (name, m) in maps {
        let max = if name == MAP_FDB { 0 } else { m.max_entries() };
        let _ = write!(
            s,
            ";{name}:{}/{}/{}/{:#x}/{max}",
            m.map_type(),
            m.key_size(),
            m.value_size(),
            m.map_flags()
        );
    }
    Ok(s)
}

/// Whether a recorded layout stamp has this build's layout version (then maps whose sizes
/// did not change keep their bytes' meaning).
fn same_version(recorded: Option<&str>) -> bool {
    recorded.is_none_or(|r| r.split(';').next() == Some(&format!("v{MAP_LAYOUT_VERSION}")))
}

impl Datapath {
    /// Load the embedded object into the kernel (verifier included); nothing is attached yet.
    /// The datapath is ephemeral: dropping it detaches everything.
    pub fn load(pin_dir: &Path) -> anyhow::Result<Self> {
        Self::load_sized(pin_dir, xennet_common::maps::FDB_MAX_ENTRIES)
    }

    /// As [`Datapath::load`], with an FDB of `fdb_max_entries` entries.
    pub fn load_sized(pin_dir: &Path, fdb_max_entries: u32) -> anyhow::Result<Self> {
        let mut loader = EbpfLoader::new();
        loader.map_max_entries(MAP_FDB, fdb_max_entries);
        Self::load_with(pin_dir, &mut loader, crate::ebpf::object()?)
    }

    /// Load the persistent datapath of `pin_dir`: its maps are those pinned there (made and
    /// pinned now if there are none); a pinned map this build defines differently is made
    /// anew and an upgrade started ([`super::migrate`]); nothing is attached yet —
    /// [`Datapath::adopt`] takes over the links left pinned. `recorded` is the state file.
    pub fn open(
        pin_dir: &Path,
        fdb_max_entries: u32,
        recorded: Option<&State>,
    ) -> anyhow::Result<Self> {
        let object = crate::ebpf::object()?;
        Self::open_object(pin_dir, fdb_max_entries, recorded, object)
    }

    /// As [`Datapath::open`], with the object `object`.
    pub fn open_object(
        pin_dir: &Path,
        fdb_max_entries: u32,
        recorded: Option<&State>,
        object: &[u8],
    ) -> anyhow::Result<Self> {
        super::pins::ensure_bpffs(pin_dir)?;
        fs::create_dir_all(pin_dir)
            .with_context(|| format!("creating pin directory {}", pin_dir.display()))?;
        let old_stats = recorded.and_then(|r| r.stats.clone());
        let bytes_ok = same_version(recorded.map(|r| r.layout.as_str()));
        if !bytes_ok {
            warn!(
                "the pinned datapath has another map layout version: no map is carried over byte for byte"
            );
        }
        let survey = migrate::survey(
            pin_dir,
            object,
            fdb_max_entries,
            old_stats.as_deref(),
            bytes_ok,
        )?;
        let mut loader = EbpfLoader::new();
        loader.map_max_entries(MAP_FDB, survey.fdb_entries);
        for name in &survey.pinned {
            loader.map_pin_path(name, pin_dir.join(name));
        }
        let mut dp = Self::load_with(pin_dir, &mut loader, object)?;
        dp.persistent = true;
        dp.layout = layout_stamp(object)?;
        dp.upgrade =
            migrate::Upgrade::start(&dp, &survey, old_stats, recorded.map(|r| r.layout.as_str()))?;
        Ok(dp)
    }

    fn load_with(
        pin_dir: &Path,
        loader: &mut EbpfLoader<'_>,
        object: &[u8],
    ) -> anyhow::Result<Self> {
        let mut ebpf = loader
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
        let fdb_gen = {
            let map = ebpf
                .map(MAP_FDBGEN)
                .ok_or_else(|| anyhow!("object has no map {MAP_FDBGEN}"))?;
            let aya::maps::Map::Array(data) = map else {
                bail!("map {MAP_FDBGEN} is not an array");
            };
            FdbGen::map(data)?
        };
        Ok(Datapath {
            ebpf,
            pin_dir: pin_dir.to_path_buf(),
            persistent: false,
            layout: String::new(),
            runtime: BTreeMap::new(),
            host_ports: std::collections::BTreeSet::new(),
            last_saved: String::new(),
            ports: BTreeMap::new(),
            bridges: BTreeMap::new(),
            learned,
            fdb_gen,
            flood_prog,
            pinned: Vec::new(),
            members: BTreeMap::new(),
            vslots: None,
            groups: BTreeMap::new(),
            groups_warned: false,
            statics: BTreeMap::new(),
            passing: BTreeMap::new(),
            upgrade: None,
        })
    }

    /// The XDP program (for `BPF_PROG_TEST_RUN` in tests and benchmarks).
    pub fn xdp_program(&mut self) -> anyhow::Result<&mut Xdp> {
        self.program_mut(PROG_XDP)
    }

    /// The XDP program `name`.
    pub(super) fn program_mut(&mut self, name: &str) -> anyhow::Result<&mut Xdp> {
        self.ebpf
            .program_mut(name)
            .ok_or_else(|| anyhow!("object has no program {name}"))?
            .try_into()
            .context("program type")
    }

    /// The TC program.
    pub(super) fn tc_program(&mut self) -> anyhow::Result<&mut SchedClassifier> {
        self.ebpf
            .program_mut(PROG_TC)
            .ok_or_else(|| anyhow!("object has no program {PROG_TC}"))?
            .try_into()
            .context("program type")
    }
}
