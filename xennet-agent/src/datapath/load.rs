//! Loading the embedded object (verifier included) and finding its programs.

use std::{collections::BTreeMap, path::Path};

use anyhow::{Context as _, anyhow, bail};
use aya::{
    EbpfLoader,
    programs::{SchedClassifier, Xdp},
};
use xennet_common::maps::{MAP_FDB, MAP_LEARNED, PROG_FLOOD_OUT, PROG_PASS, PROG_TC, PROG_XDP};

use super::Datapath;
use crate::learned::LearnedCounts;

impl Datapath {
    /// Load the embedded object into the kernel (verifier included); nothing is attached yet.
    pub fn load(pin_dir: &Path) -> anyhow::Result<Self> {
        Self::load_sized(pin_dir, xennet_common::maps::FDB_MAX_ENTRIES)
    }

    /// As [`Datapath::load`], with an FDB of `fdb_max_entries` entries.
    pub fn load_sized(pin_dir: &Path, fdb_max_entries: u32) -> anyhow::Result<Self> {
        let object = crate::ebpf::object()?;
        let mut ebpf = EbpfLoader::new()
            .map_max_entries(MAP_FDB, fdb_max_entries)
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
