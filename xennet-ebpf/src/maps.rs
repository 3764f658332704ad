//! The datapath's maps (one comment per map) and their `Tables` binding for the forwarding core.

use core::intrinsics::{AtomicOrdering, atomic_xadd};

use aya_ebpf::{
    btf_maps::{DevMapHash as GroupDevMap, HashOfMaps},
    helpers::{bpf_jiffies64, bpf_ktime_get_coarse_ns, bpf_ktime_get_ns},
    macros::{btf_map, map},
    maps::{Array, DevMapHash, HashMap, PerCpuArray},
};
use aya_log_ebpf::info;
use xennet_common::{
    fdbcache::{self, FDB_CACHE_ENTRIES, FdbCacheEntry},
    fwd::{Put, Tables},
    maps::{
        FDB_MAX_ENTRIES, FLOOD_GROUP_PORTS, FLOOD_GROUPS, FdbKey, FdbVal, IFSLOT_ENTRIES,
        MAX_PORTS, MemberKey, PortConf, STATS_SLOTS,
    },
    monitor::{EVENT_BYTES, Event, MonitorConf},
    rate::{Bucket, Dir, PortRate},
    stats::PortStats,
    vstats::{VSLOT_BRIDGES, VSTATS_SLOTS, VlanKey, VlanSlots, VlanStats},
};

/// `BPF_F_MMAPABLE`: the agent maps `XN_LEARNED` into memory to decrement it atomically.
const BPF_F_MMAPABLE: u32 = 1 << 10;

/// `BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS`: a devmap redirect that sends a copy to every
/// port of the map but the ingress.
pub(crate) const FLOOD_FLAGS: u64 = (1 << 3) | (1 << 4);

/// The TC flood walk's state between `bpf_loop` rounds (per CPU, one entry).
#[repr(C)]
pub(crate) struct FloodWalk {
    pub(crate) bridge: u32,
    pub(crate) ingress: u32,
    pub(crate) tpid: u16,
    pub(crate) vlan: u16,
    pub(crate) tci: u16,
    pub(crate) base: u64,
    pub(crate) tx_packets: u64,
    pub(crate) tx_bytes: u64,
}

/// Per-CPU scratch of one entry: the TC flood walk ([`FloodWalk`]); not pinned.
#[map]
pub(crate) static XN_FLOODWALK: PerCpuArray<FloodWalk> = PerCpuArray::with_max_entries(1, 0);

/// Ports by ingress ifindex: bridge, mode, VLAN bitmap, stats slot.
#[map]
static XN_PORTS: HashMap<u32, PortConf> =
    HashMap::with_max_entries(crate::variant::PORT_ENTRIES, 0);

/// Ports by stats slot (each with its ifindex): the egress port of a known unicast frame,
/// through its FDB entry's slot, without a hash lookup.
#[map]
static XN_SLOTS: Array<PortConf> = Array::with_max_entries(STATS_SLOTS, 0);

/// Stats slot by ifindex (below `IFSLOT_ENTRIES`): with `XN_SLOTS`, the ingress port
/// without a hash lookup.
#[map]
static XN_IFSLOTS: Array<u32> = Array::with_max_entries(IFSLOT_ENTRIES, 0);

/// The FDB: {MAC, VLAN, bridge} → egress ifindex, slot and flags.
#[map]
static XN_FDB: HashMap<FdbKey, FdbVal> = HashMap::with_max_entries(FDB_MAX_ENTRIES, 0);

/// Per-CPU cache of FDB entries, direct-mapped by a hash of the key (`fdbcache`): a hit
/// costs two array reads instead of a hash lookup.
#[map]
static XN_FDBCACHE: PerCpuArray<FdbCacheEntry> =
    PerCpuArray::with_max_entries(FDB_CACHE_ENTRIES, 0);

/// The FDB generation (entry 0): a cached entry filled under another one is void. Bumped by
/// the agent (through its mmap) after it removes or rewrites entries, and here when learning
/// moves one.
#[map]
static XN_FDBGEN: Array<u64> = Array::with_max_entries(1, BPF_F_MMAPABLE);

/// Redirect targets: ifindex → ifindex of every port (XDP redirects go through a devmap).
#[map]
pub(crate) static XN_TX: DevMapHash = DevMapHash::with_max_entries(MAX_PORTS, 0);

/// Every XDP port, each entry running `xennet_flood_out` on its copy: the flood of a
/// {bridge, VLAN} without a group in `XN_FLOODG` (the egress program drops what may not go).
#[map]
pub(crate) static XN_FLOOD: DevMapHash = DevMapHash::with_max_entries(MAX_PORTS, 0);

/// A flood group: the XDP ports of one bridge that carry one VLAN, each entry running
/// `xennet_flood_out` on its copy.
pub(crate) type FloodGroup = GroupDevMap<{ FLOOD_GROUP_PORTS as usize }>;

/// Flood groups by {bridge, VLAN}: a flood is cloned only for the ports it can leave by.
#[btf_map]
pub(crate) static XN_FLOODG: HashOfMaps<VlanKey, FloodGroup, { FLOOD_GROUPS as usize }> =
    HashOfMaps::new();

/// Per-bridge member lists for TC floods.
#[map]
pub(crate) static XN_MEMBERS: HashMap<MemberKey, u32> = HashMap::with_max_entries(MAX_PORTS * 2, 0);

/// MACs learned per stats slot, to enforce each port's limit.
#[map]
static XN_LEARNED: Array<u32> = Array::with_max_entries(STATS_SLOTS, BPF_F_MMAPABLE);

/// Per-CPU counters per port; slot 0 is "not a port".
#[map]
static XN_STATS: PerCpuArray<PortStats> =
    PerCpuArray::with_max_entries(crate::variant::STATS_ENTRIES, 0);

/// Bandwidth limits per stats slot: each port's policers (ingress, egress); zero = none.
#[map]
static XN_RATES: Array<PortRate> = Array::with_max_entries(STATS_SLOTS, 0);

/// Per-CPU counters per VLAN slot (the agent gives each {bridge, VLAN} carried its slot).
#[map]
static XN_VSTATS: PerCpuArray<VlanStats> = PerCpuArray::with_max_entries(VSTATS_SLOTS, 0);

/// The `XN_VSTATS` slot of every VLAN of a bridge, by bridge id (written by the agent).
#[map]
static XN_VSLOTS: Array<VlanSlots> = Array::with_max_entries(VSLOT_BRIDGES, 0);

/// Per-CPU scratch of one entry: the event's wire form on its way to aya-log (see `emit`).
#[map]
static XN_EVENT: PerCpuArray<[u8; EVENT_BYTES]> = PerCpuArray::with_max_entries(1, 0);

/// The monitor's switch (entry 0): what to emit, until when. Off (zero) unless
/// `xennet-agent monitor` runs.
#[map]
static XN_MONITOR: Array<MonitorConf> = Array::with_max_entries(1, 0);

/// The maps, as the forwarding core sees them.
pub(crate) struct Maps;

/// `XN_FDB`'s entry for `key`, copied out.
#[inline(always)]
fn fdb_lookup(key: &FdbKey) -> Option<FdbVal> {
    // SAFETY: the value is only read (copied out); the datapath and the agent replace
    // entries whole.
    unsafe { XN_FDB.get(key) }.copied()
}

/// What a read through the FDB cache needs for `key`: the generation (read first, see
/// `fdbcache`), the key's words and this CPU's cache entry for them; `None` when the
/// generation map is missing (no cache).
#[inline(always)]
fn cache_slot(key: &FdbKey) -> Option<(u64, [u32; 3], Option<&'static mut FdbCacheEntry>)> {
    let g = XN_FDBGEN.get_ptr(0)?;
    // SAFETY: a valid, aligned u64 in the map, only ever changed whole (atomic adds).
    let generation = unsafe { core::ptr::read_volatile(g) };
    let words = fdbcache::key_words(key);
    // SAFETY: this CPU's copy of the value, no concurrent writer on this CPU (the program
    // runs to its end without another on this CPU).
    let slot = XN_FDBCACHE
        .get_ptr_mut(fdbcache::slot_of(&words))
        .map(|p| unsafe { &mut *p });
    Some((generation, words, slot))
}

/// The tick counter (`jiffies`, low 32 bits): the verifier inlines `bpf_jiffies64` into one
/// load, where the coarse clock is a helper call (~15 ns on this machine kind).
#[inline(always)]
fn ticks() -> u32 {
    // SAFETY: no preconditions.
    #[expect(
        clippy::cast_possible_truncation,
        reason = "the low 32 bits, compared wrapping"
    )]
    let t = unsafe { bpf_jiffies64() } as u32;
    t
}

impl Tables for Maps {
    #[inline(always)]
    fn port(&self, ifindex: u32) -> Option<&PortConf> {
        // SAFETY: the value is only read; the agent replaces entries whole.
        unsafe { XN_PORTS.get(&ifindex) }
    }

    #[inline(always)]
    fn port_at(&self, slot: u32) -> Option<&PortConf> {
        XN_SLOTS.get(slot)
    }

    #[inline(always)]
    fn slot_of(&self, ifindex: u32) -> Option<u32> {
        XN_IFSLOTS.get(ifindex).copied()
    }

    #[inline(always)]
    fn fdb(&self, key: &FdbKey) -> Option<FdbVal> {
        let Some((generation, words, slot)) = cache_slot(key) else {
            return fdb_lookup(key);
        };
        fdbcache::cached(slot, &words, generation, key, fdb_lookup)
    }

    #[inline(always)]
    fn fdb_src(&self, key: &FdbKey) -> (Option<FdbVal>, bool) {
        let Some((generation, words, slot)) = cache_slot(key) else {
            return (fdb_lookup(key), false);
        };
        fdbcache::cached_src(slot, &words, generation, key, fdb_lookup, ticks)
    }

    #[inline(always)]
    fn fdb_calm(&self, key: &FdbKey) {
        if let Some((generation, words, slot)) = cache_slot(key) {
            fdbcache::calm(slot, &words, generation, ticks());
        }
    }

    #[inline(always)]
    fn fdb_put(&self, key: &FdbKey, val: &FdbVal, put: Put) -> bool {
        if XN_FDB.insert(key, val, put as u64).is_err() {
            return false;
        }
        if let Some(p) = XN_FDBCACHE.get_ptr_mut(fdbcache::slot_of(&fdbcache::key_words(key))) {
            // SAFETY: this CPU's copy of the value, no concurrent writer on this CPU.
            unsafe { (*p).void() };
        }
        true
    }

    #[inline(always)]
    fn fdb_moved(&self) {
        if let Some(p) = XN_FDBGEN.get_ptr_mut(0) {
            // SAFETY: a valid, aligned u64 in the map, only ever updated atomically (here and
            // by the agent through its mmap).
            unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(p, 1) };
        }
    }

    #[inline(always)]
    fn learned(&self, slot: u32) -> u32 {
        XN_LEARNED.get(slot).copied().unwrap_or(0)
    }

    #[inline(always)]
    fn learned_add(&self, slot: u32, delta: i32) {
        if let Some(p) = XN_LEARNED.get_ptr_mut(slot) {
            // SAFETY: a valid, aligned u32 in the map, only ever updated atomically (the bpf
            // target has no atomic types; this is the BPF atomic add instruction).
            unsafe {
                atomic_xadd::<u32, u32, { AtomicOrdering::Relaxed }>(p, delta.cast_unsigned())
            };
        }
    }

    #[inline(always)]
    fn now(&self) -> u64 {
        // SAFETY: no preconditions.
        unsafe { bpf_ktime_get_coarse_ns() }
    }

    #[inline(always)]
    fn with_stats<F: FnOnce(&mut PortStats)>(&self, slot: u32, f: F) {
        if let Some(p) = XN_STATS.get_ptr_mut(slot) {
            // SAFETY: per-CPU value, this CPU's copy, no concurrent writer on this CPU.
            f(unsafe { &mut *p });
        }
    }

    #[inline(always)]
    fn bucket(&self, slot: u32, dir: Dir) -> Option<Bucket> {
        XN_RATES.get(slot).map(|r| *r.bucket(dir))
    }

    #[inline(always)]
    fn rate_charge(&self, slot: u32, dir: Dir, catch_up: Option<u64>, cost: u64) {
        let Some(r) = XN_RATES.get_ptr_mut(slot) else {
            return;
        };
        // SAFETY: a valid, aligned map value; `tat_ns` is only ever stored whole or added to
        // atomically (the BPF atomic add instruction), so a concurrent charge is never torn.
        unsafe {
            let tat = match dir {
                Dir::In => &raw mut (*r).ingress.tat_ns,
                Dir::Out => &raw mut (*r).egress.tat_ns,
            };
            if let Some(t) = catch_up {
                core::ptr::write_volatile(tat, t);
            }
            atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(tat, cost);
        }
    }

    #[inline(always)]
    fn clock_ns(&self) -> u64 {
        // SAFETY: no preconditions.
        unsafe { bpf_ktime_get_ns() }
    }

    #[inline(always)]
    fn with_vlan_stats<F: FnOnce(&mut VlanStats)>(&self, key: VlanKey, f: F) {
        let Some(row) = XN_VSLOTS.get(key.bridge) else {
            return;
        };
        let slot = row.slot[(key.vlan & 0xfff) as usize];
        if slot == 0 {
            return;
        }
        if let Some(p) = XN_VSTATS.get_ptr_mut(u32::from(slot)) {
            // SAFETY: per-CPU value, this CPU's copy, no concurrent writer on this CPU.
            f(unsafe { &mut *p });
        }
    }

    #[inline(always)]
    fn monitor(&self) -> Option<&MonitorConf> {
        XN_MONITOR.get(0)
    }

    #[inline(always)]
    fn emit(&self, e: &Event) {
        // Through map memory: aya-log reads the bytes from there (one argument, no copy on
        // the stack — the programs' stack and aya-log's together must fit in 512 bytes).
        let Some(p) = XN_EVENT.get_ptr_mut(0) else {
            return;
        };
        // SAFETY: this CPU's copy of the value, no concurrent writer on this CPU; the slice
        // is read only by the `info!` call below.
        let bytes: &[u8] = unsafe {
            core::ptr::write_volatile(p, e.encode());
            &*p
        };
        // The text `xennet_common::monitor::parse` reads back (the format is documented there).
        info!(&(), target: "xennet::event", "ev={:x}", bytes);
    }
}
