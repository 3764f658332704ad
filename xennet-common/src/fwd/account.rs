//! Counting a frame under its decision: received and its outcome on the ingress port, sent on
//! the egress port (per-CPU counters of `crate::stats`).
#![expect(clippy::inline_always, reason = "eBPF: the datapath must be inlined")]

use super::{Decision, Tables, Verdict};
use crate::stats::Stat;

/// Count a frame of `len` bytes under its final decision.
#[inline(always)]
pub fn account<T: Tables>(t: &T, d: &Decision, len: u64) {
    account_rx(t, d, len);
    if d.verdict == Verdict::Forward {
        account_tx(t, d.out_slot, len.saturating_add_signed(d.tag.len_delta()));
    }
}

/// Count a forwarded frame of `len` bytes that the egress port's limit refused: the frame's
/// outcome on its ingress port as decided, `drop_rate_limit` on the egress port, no `tx`.
#[inline(always)]
pub fn account_refused<T: Tables>(t: &T, d: &Decision, len: u64) {
    account_rx(t, d, len);
    count(t, d.out_slot, Stat::DropRateLimit);
}

/// The ingress side of [`account`]: received, the outcome, the learning event.
#[inline(always)]
fn account_rx<T: Tables>(t: &T, d: &Decision, len: u64) {
    t.with_stats(d.in_slot, |s| {
        s.add(Stat::RxPackets, 1);
        s.add(Stat::RxBytes, len);
        s.add(d.stat, 1);
        if let Some(l) = d.learn {
            s.add(l, 1);
        }
    });
}

/// Count one frame of `len` bytes sent out of the port with stats slot `slot`.
#[inline(always)]
pub fn account_tx<T: Tables>(t: &T, slot: u32, len: u64) {
    t.with_stats(slot, |s| {
        s.add(Stat::TxPackets, 1);
        s.add(Stat::TxBytes, len);
    });
}

/// Count one event `stat` on stats slot `slot` (a learning event, a dropped flood copy…)
/// outside [`account`].
#[inline(always)]
pub fn count<T: Tables>(t: &T, slot: u32, stat: Stat) {
    t.with_stats(slot, |s| s.add(stat, 1));
}
