//! The datapath's maps (one comment per map) and their `Tables` binding for the forwarding core.

use aya_ebpf::{
    macros::map,
    maps::{DevMapHash, HashMap, PerCpuArray},
};
use xennet_common::{
    fwd::Tables,
    maps::{FDB_MAX_ENTRIES, FdbKey, FdbVal, MAX_PORTS, PortConf, STATS_SLOTS},
    stats::PortStats,
};

/// Ports by ingress ifindex: bridge, mode, VLAN bitmap, stats slot.
#[map]
static XN_PORTS: HashMap<u32, PortConf> = HashMap::with_max_entries(MAX_PORTS, 0);

/// The FDB: {MAC, VLAN, bridge} → egress ifindex and flags.
#[map]
static XN_FDB: HashMap<FdbKey, FdbVal> = HashMap::with_max_entries(FDB_MAX_ENTRIES, 0);

/// Redirect targets: ifindex → ifindex of every port (XDP redirects go through a devmap).
#[map]
pub(crate) static XN_TX: DevMapHash = DevMapHash::with_max_entries(MAX_PORTS, 0);

/// Per-CPU counters per port; slot 0 is "not a port".
#[map]
static XN_STATS: PerCpuArray<PortStats> = PerCpuArray::with_max_entries(STATS_SLOTS, 0);

/// The maps, as the forwarding core sees them.
pub(crate) struct Maps;

impl Tables for Maps {
    #[inline(always)]
    fn port(&self, ifindex: u32) -> Option<&PortConf> {
        // SAFETY: the value is only read; the agent replaces entries whole.
        unsafe { XN_PORTS.get(&ifindex) }
    }

    #[inline(always)]
    fn fdb(&self, key: &FdbKey) -> Option<&FdbVal> {
        // SAFETY: as above.
        unsafe { XN_FDB.get(key) }
    }

    #[inline(always)]
    fn with_stats<F: FnOnce(&mut PortStats)>(&self, slot: u32, f: F) {
        if let Some(p) = XN_STATS.get_ptr_mut(slot) {
            // SAFETY: per-CPU value, this CPU's copy, no concurrent writer on this CPU.
            f(unsafe { &mut *p });
        }
    }
}
