//! Loading the embedded object (verifier included) and finding its programs; for a persistent
//! datapath, on the maps already pinned under `pin_dir` once they are checked compatible.

use std::{collections::BTreeMap, fmt::Write as _, fs, path::Path};

use anyhow::{Context as _, anyhow, bail};
use aya::{
    EbpfLoader,
    maps::MapInfo,
    programs::{SchedClassifier, Xdp},
};
use tracing::warn;
use xennet_common::maps::{MAP_FDB, MAP_LEARNED, PROG_FLOOD_OUT, PROG_PASS, PROG_TC, PROG_XDP};

use super::{Datapath, pins::MAPS};
use crate::learned::LearnedCounts;

/// Bumped when a map's key or value changes meaning without changing size (sizes, types and
/// flags are compared directly).
pub const MAP_LAYOUT_VERSION: u32 = 1;

/// `BPF_F_RDONLY_PROG`, which the kernel sets on every devmap.
const BPF_F_RDONLY_PROG: u32 = 1 << 7;

/// The layout stamp of `object`'s maps: version, then each map's type, key and value sizes,
/// flags and (but for the FDB, whose size is configured) capacity.
pub fn layout_stamp(object: &[u8]) -> anyhow::Result<String> {
    let obj = aya_obj::Object::parse(object).context("parsing the eBPF object")?;
    let mut s = format!("v{MAP_LAYOUT_VERSION}");
    for name in MAPS {
        let m = obj
            .maps
            .get(name)
            .ok_or_else(|| anyhow!("object has no map {name}"))?;
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

/// Check every map pinned under `pin_dir` against `object`'s definition (and `stamp` against
/// the state file's); returns the FDB size to use (a pinned FDB keeps its size).
fn check_pinned(
    pin_dir: &Path,
    object: &[u8],
    fdb_max_entries: u32,
    recorded: Option<&str>,
) -> anyhow::Result<u32> {
    let obj = aya_obj::Object::parse(object).context("parsing the eBPF object")?;
    let stamp = layout_stamp(object)?;
    let mut any = false;
    let mut fdb = fdb_max_entries;
    for name in MAPS {
        let path = pin_dir.join(name);
        if !path.exists() {
            continue;
        }
        any = true;
        let info = MapInfo::from_pin(&path)
            .with_context(|| format!("reading the pinned map {}", path.display()))?;
        let def = obj
            .maps
            .get(name)
            .ok_or_else(|| anyhow!("object has no map {name}"))?;
        let ty = info.map_type().map_or(u32::MAX, |t| t as u32);
        let max_ok = name == MAP_FDB || info.max_entries() == def.max_entries();
        // The kernel adds BPF_F_RDONLY_PROG to devmaps itself.
        let flags = |f: u32| f & !BPF_F_RDONLY_PROG;
        if ty != def.map_type()
            || info.key_size() != def.key_size()
            || info.value_size() != def.value_size()
            || flags(info.map_flags()) != flags(def.map_flags())
            || !max_ok
        {
            bail!(
                "the datapath pinned under {} was made by an incompatible build (map {name}: \
                 type {ty}, key {} B, value {} B, {} entries, flags {:#x}; this build: type {}, \
                 key {} B, value {} B, {} entries, flags {:#x}); `xennet-agent down` removes \
                 it (guests lose the network until this agent starts)",
                pin_dir.display(),
                info.key_size(),
                info.value_size(),
                info.max_entries(),
                info.map_flags(),
                def.map_type(),
                def.key_size(),
                def.value_size(),
                def.max_entries(),
                def.map_flags()
            );
        }
        if name == MAP_FDB && info.max_entries() != fdb_max_entries {
            warn!(
                pinned = info.max_entries(),
                configured = fdb_max_entries,
                "the pinned FDB keeps its size; fdb_max_entries takes effect after `xennet-agent down`"
            );
            fdb = info.max_entries();
        }
    }
    if let Some(r) = recorded.filter(|r| any && *r != stamp) {
        bail!(
            "the datapath pinned under {} has map layout {r:?}, this build {stamp:?}; \
             `xennet-agent down` removes it (guests lose the network until this agent starts)",
            pin_dir.display()
        );
    }
    Ok(fdb)
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
    /// pinned now if there are none, after checking they fit this build if there are), and
    /// nothing is attached yet — [`Datapath::adopt`] takes over the links left pinned.
    /// `recorded_layout` is the layout stamp of the state file, if any.
    pub fn open(
        pin_dir: &Path,
        fdb_max_entries: u32,
        recorded_layout: Option<&str>,
    ) -> anyhow::Result<Self> {
        Self::open_object(
            pin_dir,
            fdb_max_entries,
            recorded_layout,
            crate::ebpf::object()?,
        )
    }

    /// As [`Datapath::open`], with another build's object (upgrade tests).
    pub fn open_object(
        pin_dir: &Path,
        fdb_max_entries: u32,
        recorded_layout: Option<&str>,
        object: &[u8],
    ) -> anyhow::Result<Self> {
        super::pins::ensure_bpffs(pin_dir)?;
        fs::create_dir_all(pin_dir)
            .with_context(|| format!("creating pin directory {}", pin_dir.display()))?;
        let fdb = check_pinned(pin_dir, object, fdb_max_entries, recorded_layout)?;
        let mut loader = EbpfLoader::new();
        loader.map_max_entries(MAP_FDB, fdb);
        for name in MAPS {
            loader.map_pin_path(name, pin_dir.join(name));
        }
        let mut dp = Self::load_with(pin_dir, &mut loader, object)?;
        dp.persistent = true;
        dp.layout = layout_stamp(object)?;
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
            flood_prog,
            pinned: Vec::new(),
            members: BTreeMap::new(),
            statics: BTreeMap::new(),
            passing: BTreeMap::new(),
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
