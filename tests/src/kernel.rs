//! What the kernel itself lists about a pinned datapath: its links and the programs in them
//! (ids and tags), its map pins and their definitions, and every program and link that uses
//! its maps — for the lifecycle, upgrade and kill tests' "nothing leaked" and "the program
//! really changed" checks.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

use anyhow::{Context as _, Result};
use aya::{
    maps::{Array, Map, MapData, MapInfo},
    programs::{
        links::{FdLink, PinnedLink},
        loaded_links, loaded_programs,
    },
};

/// One pinned link: its id, the id of the program it runs and that program's tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkRow {
    /// Link id.
    pub link: u32,
    /// Program id.
    pub prog: u32,
    /// Program tag (a hash of its instructions: the same build gives the same tag).
    pub tag: u64,
}

/// Every `link_*` pin under `pin_dir`, by pin name.
pub fn links(pin_dir: &Path) -> Result<BTreeMap<String, LinkRow>> {
    let tags: BTreeMap<u32, u64> = loaded_programs()
        .filter_map(Result::ok)
        .map(|p| (p.id(), p.tag()))
        .collect();
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(pin_dir)
        .context("reading the pins")?
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("link_") {
            continue;
        }
        let link = FdLink::from(PinnedLink::from_pin(e.path()).context("opening a pinned link")?);
        let info = link.info().context("link info")?;
        // A link running a port's VLAN prologue: the program it hands frames to is the one
        // that changes with the build.
        let prog = match name.strip_prefix("link_xdp_") {
            Some(idx) => chained(&pin_dir.join(format!("chain_xdp_{idx}")))?,
            None => None,
        }
        .unwrap_or(info.program_id());
        let tag = tags.get(&prog).copied().unwrap_or(0);
        out.insert(
            name,
            LinkRow {
                link: info.id(),
                prog,
                tag,
            },
        );
    }
    Ok(out)
}

/// The id of the program in slot 0 of the program array pinned at `path`, if there is one.
fn chained(path: &Path) -> Result<Option<u32>> {
    use std::os::fd::{AsFd as _, AsRawFd as _};
    if !path.exists() {
        return Ok(None);
    }
    let data = MapData::from_pin(path).with_context(|| format!("opening {}", path.display()))?;
    let (key, mut id) = (0u32, 0u32);
    // BPF_MAP_LOOKUP_ELEM: map_fd, pad, key, value.
    let mut attr = [0u64; 4];
    attr[0] = u64::try_from(data.fd().as_fd().as_raw_fd()).context("fd")?;
    attr[1] = std::ptr::from_ref(&key) as u64;
    attr[2] = std::ptr::from_mut(&mut id) as u64;
    // SAFETY: a bpf_attr for BPF_MAP_LOOKUP_ELEM whose pointers are live 4-byte values.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, 1, attr.as_mut_ptr(), 32) };
    Ok((rc == 0).then_some(id))
}

/// The names of every pin under `pin_dir`.
pub fn pins(pin_dir: &Path) -> Result<BTreeSet<String>> {
    Ok(std::fs::read_dir(pin_dir)
        .context("reading the pins")?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect())
}

/// The capacity of the map pinned as `name` under `pin_dir`.
pub fn map_entries(pin_dir: &Path, name: &str) -> Result<u32> {
    Ok(MapInfo::from_pin(pin_dir.join(name))
        .with_context(|| format!("map {name}"))?
        .max_entries())
}

/// Entry 0 of the `u32` array pinned as `name`, or `None` when there is no such pin.
pub fn array_u32(pin_dir: &Path, name: &str) -> Result<Option<u32>> {
    let path = pin_dir.join(name);
    if !path.exists() {
        return Ok(None);
    }
    let data = MapData::from_pin(&path).with_context(|| format!("opening {name}"))?;
    let arr: Array<MapData, u32> =
        Array::try_from(Map::Array(data)).with_context(|| format!("{name} type"))?;
    Ok(Some(arr.get(&0, 0).with_context(|| format!("{name}[0]"))?))
}

/// The programs that use any map pinned under `pin_dir` (by name, sorted; one name per
/// program), and the links that run one of them: what a datapath holds in the kernel.
pub fn users(pin_dir: &Path) -> Result<(Vec<String>, usize)> {
    let mut maps = BTreeSet::new();
    for name in pins(pin_dir)? {
        if name.starts_with("XN_") {
            maps.insert(
                MapInfo::from_pin(pin_dir.join(&name))
                    .with_context(|| format!("map {name}"))?
                    .id(),
            );
        }
    }
    let mut progs = Vec::new();
    let mut ids = BTreeSet::new();
    for p in loaded_programs().filter_map(Result::ok) {
        let uses = p
            .map_ids()
            .ok()
            .flatten()
            .is_some_and(|m| m.iter().any(|id| maps.contains(id)));
        if uses {
            progs.push(p.name_as_str().unwrap_or("?").to_string());
            ids.insert(p.id());
        }
    }
    progs.sort();
    let links = loaded_links()
        .filter_map(Result::ok)
        .filter(|l| ids.contains(&l.program_id()))
        .count();
    Ok((progs, links))
}
