//! The per-CPU FDB cache: a direct-mapped copy of recently used FDB entries, void as a whole
//! whenever any entry is removed or moves (a global generation changes).
//!
//! `XN_FDBCACHE` is a per-CPU array of [`FDB_CACHE_ENTRIES`] [`FdbCacheEntry`]s, indexed by
//! [`slot_of`] the key. `XN_FDBGEN` holds one `u64`, the generation. An entry is a hit only
//! when it holds the key and was filled under the current generation
//! ([`FdbCacheEntry::stamp`] is the generation plus one, so that a zeroed entry never hits).
//!
//! Who bumps the generation, always *after* the change is in `XN_FDB`:
//! * the agent, after any entry it removes or rewrites (static entries, flushes, aging, ports
//!   removed, adoption and upgrade);
//! * the datapath, when learning moves an entry to another port
//!   ([`crate::fwd::Tables::fdb_moved`]).
//!
//! A reader reads the generation *before* its `XN_FDB` lookup and stamps what it fills with
//! that value: a change that lands between the two leaves an entry that never hits. A refresh
//! of `last_seen_ns` (same port) changes nothing a cached copy is used for and bumps nothing;
//! the CPU that writes it voids its own copy ([`FdbCacheEntry::void`]) so that its next frame
//! reads the refreshed time. Misses are not cached.
//!
//! The reader's order (generation, then the hash lookup) is kept by the compiler (a volatile
//! load before a helper call) and by x86's memory model (loads are not reordered with older
//! loads). A weakly ordered CPU (arm64) would need the generation read with acquire semantics.
#![expect(clippy::inline_always, reason = "eBPF: the datapath must be inlined")]

use crate::maps::{FdbKey, FdbVal};

/// Per-CPU FDB cache: slot ([`slot_of`]) → [`FdbCacheEntry`]. Per-CPU array; not stateful
/// (an upgrade starts it empty).
pub const MAP_FDBCACHE: &str = "XN_FDBCACHE";
/// The FDB generation: one `u64` (entry 0), bumped atomically by the agent (the array is
/// `BPF_F_MMAPABLE`) and the datapath. Array; not stateful.
pub const MAP_FDBGEN: &str = "XN_FDBGEN";
/// log2 of [`FDB_CACHE_ENTRIES`].
pub const FDB_CACHE_BITS: u32 = 10;
/// Entries of `XN_FDBCACHE` per CPU (40 KiB per CPU).
pub const FDB_CACHE_ENTRIES: u32 = 1 << FDB_CACHE_BITS;

/// Ticks (`jiffies`) a calm station's learning check goes without reading the clock.
pub const CALM_TICKS: u32 = 16;
/// How long before it is [`crate::fwd::REFRESH_NS`] old a station's entry is refreshed; any
/// younger entry makes its station calm. [`CALM_TICKS`] + 1 ticks last at most 170 ms (`HZ`
/// ≥ 100), and the tick counter and the coarse clock advance together (both at the tick), so
/// a calm window ends before the station is due for a refresh.
pub const CALM_MARGIN_NS: u64 = 250_000_000;

/// One cached FDB entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct FdbCacheEntry {
    /// The key, as three words ([`key_words`]).
    pub key: [u32; 3],
    /// Until which tick (`jiffies`, low 32 bits, always odd) the station of this entry is
    /// *calm*: found on its own port and far enough from a refresh that the learning check
    /// skips the clock (a helper call, ~15 ns here); 0 (even): not calm. See [`cached_src`].
    pub calm_until: u32,
    /// The generation this entry was filled under, plus one; 0: empty.
    pub stamp: u64,
    /// The FDB entry as it was read.
    pub val: FdbVal,
}

/// `key` as three 32-bit words (MAC bytes 0–3; MAC bytes 4–5 and the VLAN; the bridge): one
/// comparison each instead of twelve byte compares.
#[inline(always)]
#[must_use]
pub fn key_words(key: &FdbKey) -> [u32; 3] {
    let m = key.mac;
    [
        u32::from_ne_bytes([m[0], m[1], m[2], m[3]]),
        u32::from_ne_bytes([m[4], m[5], 0, 0]) | (u32::from(key.vlan) << 16),
        key.bridge,
    ]
}

/// The cache slot of `key` (below [`FDB_CACHE_ENTRIES`]): multiplicative hash of its words.
#[inline(always)]
#[must_use]
pub fn slot_of(words: &[u32; 3]) -> u32 {
    let h = words[0] ^ words[1].rotate_left(11) ^ words[2].rotate_left(22);
    h.wrapping_mul(0x9e37_79b1) >> (32 - FDB_CACHE_BITS)
}

impl FdbCacheEntry {
    /// An entry that holds nothing (what a new map holds).
    pub const EMPTY: FdbCacheEntry = FdbCacheEntry {
        key: [0; 3],
        calm_until: 0,
        stamp: 0,
        val: FdbVal {
            ifindex: 0,
            flags: 0,
            slot: 0,
            last_seen_ns: 0,
        },
    };

    /// The cached value of the key `words` if this entry holds it under generation `generation`.
    #[inline(always)]
    #[must_use]
    pub fn hit(&self, words: &[u32; 3], generation: u64) -> Option<&FdbVal> {
        (self.stamp == generation.wrapping_add(1) && self.key == *words).then_some(&self.val)
    }

    /// Hold `val` for the key `words`, read after generation `generation` was read.
    #[inline(always)]
    pub fn fill(&mut self, words: &[u32; 3], val: &FdbVal, generation: u64) {
        self.key = *words;
        self.calm_until = 0;
        self.val = *val;
        self.stamp = generation.wrapping_add(1);
    }

    /// Whether the station is calm at tick `ticks` (see [`FdbCacheEntry::calm_until`]): the
    /// tick is at most [`CALM_TICKS`] + 1 before the entry's end of calm, wrapping.
    #[inline(always)]
    #[must_use]
    pub const fn calm(&self, ticks: u32) -> bool {
        let left = self.calm_until.wrapping_sub(ticks);
        self.calm_until & 1 == 1 && left != 0 && left <= CALM_TICKS + 1
    }

    /// Make the station calm from tick `ticks` on, for [`CALM_TICKS`] (+ 1) ticks.
    #[inline(always)]
    pub const fn make_calm(&mut self, ticks: u32) {
        self.calm_until = ticks.wrapping_add(CALM_TICKS) | 1;
    }

    /// Hold nothing.
    #[inline(always)]
    pub fn void(&mut self) {
        self.stamp = 0;
    }
}

/// `key`'s FDB entry through the cache entry `slot` (of this CPU, `None` when the cache map is
/// missing): the cached copy on a hit, else `lookup(key)`, filled into `slot` when found.
/// `generation` must have been read before this call.
#[inline(always)]
pub fn cached<L: FnOnce(&FdbKey) -> Option<FdbVal>>(
    slot: Option<&mut FdbCacheEntry>,
    words: &[u32; 3],
    generation: u64,
    key: &FdbKey,
    lookup: L,
) -> Option<FdbVal> {
    let Some(e) = slot else {
        return lookup(key);
    };
    if let Some(v) = e.hit(words, generation) {
        return Some(*v);
    }
    let v = lookup(key)?;
    e.fill(words, &v, generation);
    Some(v)
}

/// [`cached`] for the learning check of a frame's source: also whether the station is calm
/// (a hit whose entry [`FdbCacheEntry::calm`] at tick `ticks()`, read only on a hit).
#[inline(always)]
pub fn cached_src<L: FnOnce(&FdbKey) -> Option<FdbVal>, K: FnOnce() -> u32>(
    slot: Option<&mut FdbCacheEntry>,
    words: &[u32; 3],
    generation: u64,
    key: &FdbKey,
    lookup: L,
    ticks: K,
) -> (Option<FdbVal>, bool) {
    let Some(e) = slot else {
        return (lookup(key), false);
    };
    if let Some(v) = e.hit(words, generation) {
        return (Some(*v), e.calm(ticks()));
    }
    let Some(v) = lookup(key) else {
        return (None, false);
    };
    e.fill(words, &v, generation);
    (Some(v), false)
}

/// Make the station of `key` (its words `words`) calm in cache entry `slot` from tick `ticks`
/// on, if the entry still holds it under `generation`.
#[inline(always)]
pub fn calm(slot: Option<&mut FdbCacheEntry>, words: &[u32; 3], generation: u64, ticks: u32) {
    if let Some(e) = slot {
        if e.hit(words, generation).is_some() {
            e.make_calm(ticks);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(last: u8, vlan: u16, bridge: u32) -> FdbKey {
        FdbKey {
            mac: [2, 0, 0, 0, 0, last],
            vlan,
            bridge,
        }
    }

    const V: FdbVal = FdbVal {
        ifindex: 7,
        flags: 0,
        slot: 1,
        last_seen_ns: 9,
    };

    #[test]
    fn the_layout_has_no_holes() {
        assert_eq!(core::mem::size_of::<FdbCacheEntry>(), 40);
    }

    #[test]
    fn every_key_part_tells_keys_apart() {
        let a = key_words(&key(1, 10, 1));
        assert_ne!(a, key_words(&key(2, 10, 1)));
        assert_ne!(a, key_words(&key(1, 11, 1)));
        assert_ne!(a, key_words(&key(1, 10, 2)));
        let mut m = key(1, 10, 1);
        m.mac[0] = 4;
        assert_ne!(a, key_words(&m));
    }

    #[test]
    fn slots_stay_in_range_and_spread() {
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..=255u8 {
            let s = slot_of(&key_words(&key(i, 1, 1)));
            assert!(s < FDB_CACHE_ENTRIES);
            seen.insert(s);
        }
        assert!(seen.len() > 200, "256 MACs in {} slots", seen.len());
    }

    #[test]
    fn a_hit_needs_the_key_and_the_generation() {
        let k = key(1, 10, 1);
        let w = key_words(&k);
        let mut e = FdbCacheEntry::EMPTY;
        assert_eq!(e.hit(&w, 0), None, "a zeroed entry never hits");
        e.fill(&w, &V, 3);
        assert_eq!(e.hit(&w, 3), Some(&V));
        assert_eq!(e.hit(&w, 4), None, "a later generation voids it");
        assert_eq!(e.hit(&key_words(&key(2, 10, 1)), 3), None);
        e.void();
        assert_eq!(e.hit(&w, 3), None);
    }

    #[test]
    fn calm_lasts_its_ticks_across_the_wrap_and_ends_with_a_refill() {
        let k = key(1, 10, 1);
        let w = key_words(&k);
        for start in [5u32, u32::MAX - 3] {
            let mut e = FdbCacheEntry::EMPTY;
            e.fill(&w, &V, 0);
            assert!(!e.calm(start), "a filled entry is not calm");
            e.make_calm(start);
            // 16 ticks, 17 from an even tick (the end of calm is always odd).
            for t in 0..CALM_TICKS {
                assert!(e.calm(start.wrapping_add(t)), "tick +{t} from {start}");
            }
            assert!(!e.calm(start.wrapping_add(CALM_TICKS + 1)), "over by +17");
            assert!(!e.calm(start.wrapping_add(1000)));
            assert!(!e.calm(start.wrapping_sub(1000)));
            e.fill(&w, &V, 1);
            assert!(!e.calm(start), "a refill ends it");
        }
        // Never calm from a zeroed field, whatever the tick.
        let e = FdbCacheEntry::EMPTY;
        assert!((0..64).chain(u32::MAX - 64..=u32::MAX).all(|t| !e.calm(t)));
    }

    #[test]
    fn a_source_is_calm_only_on_a_hit_made_calm_under_this_generation() {
        let k = key(1, 10, 1);
        let w = key_words(&k);
        let mut e = FdbCacheEntry::EMPTY;
        assert_eq!(
            cached_src(Some(&mut e), &w, 0, &k, |_| Some(V), || 7),
            (Some(V), false)
        );
        calm(Some(&mut e), &w, 0, 7);
        assert_eq!(
            cached_src(Some(&mut e), &w, 0, &k, |_| None, || 8),
            (Some(V), true)
        );
        // Another generation: a miss, looked up and filled again, not calm.
        assert_eq!(
            cached_src(Some(&mut e), &w, 1, &k, |_| Some(V), || 8),
            (Some(V), false)
        );
        // Making calm under a stale generation does nothing.
        calm(Some(&mut e), &w, 0, 8);
        assert_eq!(
            cached_src(Some(&mut e), &w, 1, &k, |_| None, || 8),
            (Some(V), false)
        );
        assert_eq!(
            cached_src(None, &w, 1, &k, |_| Some(V), || 8),
            (Some(V), false)
        );
    }

    #[test]
    fn misses_are_looked_up_and_only_found_entries_filled() {
        let k = key(1, 10, 1);
        let w = key_words(&k);
        let mut e = FdbCacheEntry::EMPTY;
        assert_eq!(cached(Some(&mut e), &w, 0, &k, |_| None), None);
        assert_eq!(e.stamp, 0, "a miss is not cached");
        assert_eq!(cached(Some(&mut e), &w, 0, &k, |_| Some(V)), Some(V));
        let other = FdbVal { ifindex: 8, ..V };
        assert_eq!(
            cached(Some(&mut e), &w, 0, &k, |_| Some(other)),
            Some(V),
            "a hit"
        );
        assert_eq!(
            cached(Some(&mut e), &w, 1, &k, |_| Some(other)),
            Some(other)
        );
        assert_eq!(cached(None, &w, 1, &k, |_| None), None);
    }
}
