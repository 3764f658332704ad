//! Learning: where a source MAC lives, and who may move a guest's MAC (issue 15).
#![expect(clippy::inline_always, reason = "eBPF: the datapath must be inlined")]

use super::{Put, REFRESH_NS, Tables};
use crate::{
    fdbcache::CALM_MARGIN_NS,
    maps::{FDB_GUARDED, FDB_STATIC, FdbKey, FdbVal, PORT_F_MAC_MOVE, PortConf},
    stats::Stat,
};

/// Learn (or refresh) `src` in `vlan` on port `port` (ifindex `ingress`).
///
/// `Ok(Some(stat))` names a learning event to count; `Err(reason)` drops the frame (a MAC that
/// is static, or guarded, on another port, claimed from a port without
/// [`PORT_F_MAC_MOVE`]).
///
/// Ownership that moves (a migrated guest): a claim arriving on a [`PORT_F_MAC_MOVE`] port
/// (an uplink) takes a static or guarded entry over at once. The entry becomes a learned
/// one on that port with [`FDB_GUARDED`]: it ages like any learned entry, but only another
/// [`PORT_F_MAC_MOVE`] port can take it over, so a guest port still cannot claim the MAC.
#[inline(always)]
pub fn learn<T: Tables>(
    t: &T,
    port: &PortConf,
    ingress: u32,
    src: &[u8; 6],
    vlan: u16,
) -> Result<Option<Stat>, Stat> {
    let key = FdbKey {
        mac: *src,
        vlan,
        bridge: port.bridge,
    };
    // The clock is read only when an entry is written or may need a refresh (a static
    // source, or a calm one, costs no clock read at all).
    let fresh = |now, flags| FdbVal {
        ifindex: ingress,
        flags,
        slot: FdbVal::slot_of(port.slot),
        last_seen_ns: now,
    };
    let (found, calm) = t.fdb_src(&key);
    match found {
        Some(e)
            if e.flags & FDB_STATIC != 0
                || (e.flags & FDB_GUARDED != 0 && e.ifindex != ingress) =>
        {
            if e.ifindex == ingress {
                Ok(None)
            } else {
                take_over(t, port, ingress, &key, &e)
            }
        }
        Some(e) if e.ifindex == ingress => {
            // A calm station cannot be due for a refresh yet (`crate::fdbcache`).
            if calm {
                return Ok(None);
            }
            // Refreshed a margin before it is `REFRESH_NS` old, so that any calm it is given
            // ends before then; until that, calm for the next few ticks.
            let now = t.now();
            if now.wrapping_sub(e.last_seen_ns) >= REFRESH_NS - CALM_MARGIN_NS {
                // Best effort: a lost refresh only makes the entry age a little sooner. A
                // guarded entry stays guarded.
                let _ = t.fdb_put(&key, &fresh(now, e.flags & FDB_GUARDED), Put::Existing);
            } else {
                t.fdb_calm(&key);
            }
            Ok(None)
        }
        Some(e) => {
            // A move: the station is now behind this port — unless this port is at its limit
            // (a guest must not take over more MACs than it may learn).
            if port.max_learned != 0 && t.learned(port.slot) >= port.max_learned {
                return Ok(Some(Stat::LearnLimit));
            }
            if !t.fdb_put(&key, &fresh(t.now(), 0), Put::Existing) {
                return Ok(Some(Stat::LearnTableFull));
            }
            t.fdb_moved();
            if let Some(old) = t.port(e.ifindex) {
                t.learned_add(old.slot, -1);
            }
            t.learned_add(port.slot, 1);
            Ok(Some(Stat::LearnMove))
        }
        None => {
            if port.max_learned != 0 && t.learned(port.slot) >= port.max_learned {
                return Ok(Some(Stat::LearnLimit));
            }
            if !t.fdb_put(&key, &fresh(t.now(), 0), Put::New) {
                // Full, or another CPU learned it first (then it is there: nothing lost).
                return Ok(if t.fdb(&key).is_some() {
                    None
                } else {
                    Some(Stat::LearnTableFull)
                });
            }
            t.learned_add(port.slot, 1);
            Ok(Some(Stat::LearnNew))
        }
    }
}

/// A claim on port `port` for the MAC of `key`, whose entry `e` is static or guarded on
/// another port: taken over (guarded, counted as `learn_static_move` here, so that the
/// caller's outcomes stay those of plain learning) when the port accepts moves and is under
/// its limit; else `drop_static_mac`.
#[inline(always)]
fn take_over<T: Tables>(
    t: &T,
    port: &PortConf,
    ingress: u32,
    key: &FdbKey,
    e: &FdbVal,
) -> Result<Option<Stat>, Stat> {
    if port.flags & PORT_F_MAC_MOVE == 0
        || (port.max_learned != 0 && t.learned(port.slot) >= port.max_learned)
    {
        return Err(Stat::DropStaticMac);
    }
    let val = FdbVal {
        ifindex: ingress,
        flags: FDB_GUARDED,
        slot: FdbVal::slot_of(port.slot),
        last_seen_ns: t.now(),
    };
    if t.fdb_put(key, &val, Put::Existing) {
        t.fdb_moved();
        if e.flags & FDB_STATIC == 0 {
            if let Some(old) = t.port(e.ifindex) {
                t.learned_add(old.slot, -1);
            }
        }
        t.learned_add(port.slot, 1);
        t.with_stats(port.slot, |s| s.add(Stat::LearnStaticMove, 1));
    }
    Ok(None)
}
