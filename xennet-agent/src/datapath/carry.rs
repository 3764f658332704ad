//! How a map's contents cross from one build's layout to another's: map definitions, what is
//! carried how (byte for byte, counters by name, refilled, lost), and the arithmetic of
//! carrying counters. Touches no kernel (`Def::raw` only wraps a descriptor); the decisions
//! are unit-tested here.

use std::os::fd::AsFd as _;

use aya::maps::{MapData, MapInfo};
use xennet_common::{
    maps::{MAP_FDB, MAP_LEARNED, MAP_STATS},
    stats::Stat,
    vstats::{MAP_VSLOTS, MAP_VSTATS},
};

use super::rawmap::RawMap;

/// The maps whose contents only the datapath knows (learned stations, counters, learned
/// counts, and the per-VLAN counters with the slots that say whose they are): carried over or
/// counted as lost. Every other map is derived from the configuration and the state file,
/// and refilled.
pub const STATEFUL: [&str; 5] = [MAP_FDB, MAP_STATS, MAP_LEARNED, MAP_VSTATS, MAP_VSLOTS];

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
    pub(super) fn of_pin(info: &MapInfo) -> Def {
        Def {
            ty: info.map_type().map_or(u32::MAX, |t| t as u32),
            key: info.key_size(),
            value: info.value_size(),
            max: info.max_entries(),
            flags: info.map_flags() & !BPF_F_RDONLY_PROG,
        }
    }

    pub(super) fn of_obj(m: &aya_obj::Map) -> Def {
        Def {
            ty: m.map_type(),
            key: m.key_size(),
            value: m.value_size(),
            max: m.max_entries(),
            flags: m.map_flags() & !BPF_F_RDONLY_PROG,
        }
    }

    /// `PERCPU_HASH`, `PERCPU_ARRAY`, `LRU_PERCPU_HASH`.
    pub(super) fn per_cpu(self) -> bool {
        matches!(self.ty, 5 | 6 | 10)
    }

    /// `ARRAY`, `PERCPU_ARRAY`: every index exists.
    pub(super) fn array(self) -> bool {
        matches!(self.ty, 2 | 6)
    }

    /// `DEVMAP`, `DEVMAP_HASH`: values hold program descriptors, never copied.
    pub(super) fn devmap(self) -> bool {
        matches!(self.ty, 14 | 25)
    }

    /// Bytes of one value as the syscalls see it (per-CPU: one 8-byte slot per CPU).
    pub(super) fn value_len(self, cpus: usize) -> usize {
        if self.per_cpu() {
            (self.value as usize).div_ceil(8) * 8 * cpus
        } else {
            self.value as usize
        }
    }

    pub(super) fn raw(self, data: &MapData, cpus: usize) -> RawMap<'_> {
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
