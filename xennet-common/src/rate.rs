//! Bandwidth limits: one policer (a token bucket kept as a theoretical arrival time, GCRA) per
//! port and direction, in the map `XN_RATES`, checked by the datapath on every frame of a
//! limited port.
//!
//! A bucket holds the limit the agent wrote (`byte_ns`: nanoseconds of the limit per byte, in
//! 1/65536 ns; `tau_ns`: the burst as time) and the state the datapath moves (`tat_ns`, the time
//! at which the bucket would be full again). A frame conforms when `tat_ns` lies at most
//! `tau_ns` ahead of now; it then moves `tat_ns` on by its cost. A frame is charged whole even
//! when it is bigger than what is left of the burst (a GSO skb of 64 KiB under a small burst
//! passes when the bucket is full), so the long-term rate is exact and no frame size is ever
//! refused outright. Several CPUs may charge one bucket at once: the charge is an atomic add;
//! only the catch-up of an idle bucket (`tat_ns` behind now) is a plain store, whose race can
//! lose one frame's charge at the moment a bucket leaves idleness.

use crate::fwd::Tables;

/// Limits: stats slot (`u32`) → [`PortRate`]. Array of `STATS_SLOTS` entries; a zeroed
/// entry limits nothing.
pub const MAP_RATES: &str = "XN_RATES";

/// `byte_ns` fixed point: 16 fractional bits.
pub const BYTE_NS_SHIFT: u32 = 16;

/// Frame lengths a bucket charges are capped here (no frame is this big: 1 MiB).
const MAX_FRAME: u64 = 1 << 20;

/// One direction's limit and state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Bucket {
    /// Time one byte takes at the limit, in 1/65536 ns; 0 = no limit.
    pub byte_ns: u64,
    /// The burst: how far (ns) the bucket may run ahead of now and still accept a frame.
    pub tau_ns: u64,
    /// Theoretical arrival time (monotonic ns): when the bucket is full again. Written by the
    /// datapath only (the agent writes 0: full).
    pub tat_ns: u64,
}

/// Direction of a limit, seen from the bridge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Frames the port receives (from a guest: guest → bridge).
    In,
    /// Frames sent out of the port (to a guest: bridge → guest).
    Out,
}

/// Both directions of one port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct PortRate {
    /// Frames received on the port.
    pub ingress: Bucket,
    /// Frames sent out of the port.
    pub egress: Bucket,
}

impl PortRate {
    /// No limit either way.
    pub const NONE: PortRate = PortRate {
        ingress: Bucket::NONE,
        egress: Bucket::NONE,
    };

    /// The bucket of direction `dir`.
    #[expect(clippy::inline_always, reason = "eBPF: the datapath must be inlined")]
    #[inline(always)]
    #[must_use]
    pub const fn bucket(&self, dir: Dir) -> &Bucket {
        match dir {
            Dir::In => &self.ingress,
            Dir::Out => &self.egress,
        }
    }

    /// The same limits with full buckets (what the agent writes).
    #[must_use]
    pub const fn limits(&self) -> PortRate {
        let mut r = *self;
        r.ingress.tat_ns = 0;
        r.egress.tat_ns = 0;
        r
    }
}

/// What a bucket says about one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Over the limit: drop.
    Refuse,
    /// Within the limit: first set `tat_ns` to `catch_up` if given (the bucket was idle), then
    /// add `cost` to it.
    Pass {
        /// The new start of an idle bucket (now).
        catch_up: Option<u64>,
        /// The frame's cost in ns.
        cost: u64,
    },
}

impl Bucket {
    /// No limit.
    pub const NONE: Bucket = Bucket {
        byte_ns: 0,
        tau_ns: 0,
        tat_ns: 0,
    };

    /// The bucket for `bits_per_sec` with a burst of `burst_bytes`, full (the agent's side:
    /// a rate of 0 is taken as 1 bit/s; the configuration refuses both).
    #[must_use]
    pub fn new(bits_per_sec: u64, burst_bytes: u64) -> Bucket {
        let bps = u128::from(bits_per_sec.max(1));
        // ns per byte = 8e9 / bps, in 1/65536 ns; u128 so that nothing overflows.
        let byte_ns = (8_000_000_000u128 << BYTE_NS_SHIFT) / bps;
        let tau_ns = u128::from(burst_bytes) * 8_000_000_000 / bps;
        Bucket {
            byte_ns: u64::try_from(byte_ns).unwrap_or(u64::MAX).max(1),
            tau_ns: u64::try_from(tau_ns).unwrap_or(u64::MAX),
            tat_ns: 0,
        }
    }

    /// Whether the bucket limits anything.
    #[expect(clippy::inline_always, reason = "eBPF: the datapath must be inlined")]
    #[inline(always)]
    #[must_use]
    pub const fn is_limited(&self) -> bool {
        self.byte_ns != 0
    }

    /// Whether a frame of `len` bytes arriving at `now` conforms, and how to charge it.
    #[expect(clippy::inline_always, reason = "eBPF: the datapath must be inlined")]
    #[inline(always)]
    #[must_use]
    pub const fn admit(&self, now: u64, len: u64) -> Admit {
        if self.tat_ns > now.saturating_add(self.tau_ns) {
            return Admit::Refuse;
        }
        Admit::Pass {
            catch_up: if self.tat_ns < now { Some(now) } else { None },
            // No overflow: a frame is below 2^20 bytes and `byte_ns` below 2^36 (the slowest
            // limit, 8 kbit/s, is 1 ms a byte); no 128-bit multiply, which BPF lacks.
            cost: ((if len < MAX_FRAME { len } else { MAX_FRAME }) * self.byte_ns) >> BYTE_NS_SHIFT,
        }
    }
}

/// Whether `len()` bytes may pass the `dir` limit of stats slot `slot` now (always, without
/// a limit), charging them if so. `len` is called only for a limited port.
#[expect(clippy::inline_always, reason = "eBPF: the datapath must be inlined")]
#[inline(always)]
pub fn police<T: Tables, L: FnOnce() -> u64>(t: &T, slot: u32, dir: Dir, len: L) -> bool {
    let Some(b) = t.bucket(slot, dir) else {
        return true;
    };
    if !b.is_limited() {
        return true;
    }
    match b.admit(t.clock_ns(), len()) {
        Admit::Refuse => false,
        Admit::Pass { catch_up, cost } => {
            t.rate_charge(slot, dir, catch_up, cost);
            true
        }
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY (both): repr(C), u64 fields only, no padding.
    unsafe impl aya::Pod for super::PortRate {}
    unsafe impl aya::Pod for super::Bucket {}
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run `frames` frames of `len` bytes, one every `gap_ns`, through `b`; bytes passed.
    fn run(mut b: Bucket, frames: u64, len: u64, gap_ns: u64) -> u64 {
        let mut passed = 0;
        for i in 0..frames {
            let now = 1_000_000_000 + i * gap_ns;
            if let Admit::Pass { catch_up, cost } = b.admit(now, len) {
                if let Some(t) = catch_up {
                    b.tat_ns = t;
                }
                b.tat_ns += cost;
                passed += len;
            }
        }
        passed
    }

    /// The core with limits: a port's ingress limit drops its frames as `drop_rate_limit`
    /// once the burst is spent and lets them through again as time passes; an egress limit
    /// refuses through [`police`] and is counted on the egress port by `account_refused`.
    #[test]
    fn limits_in_the_core() {
        use crate::{
            fwd::{
                Verdict, account, account_refused, decide,
                fixtures::host::{Pkt, World},
            },
            maps::{FDB_STATIC, FdbVal, PORT_ACCESS, PORT_F_RATE, PortConf},
            stats::Stat,
        };
        use std::{collections::BTreeMap, vec, vec::Vec};

        let (vif1, vif2) = (11, 12);
        let g2 = [0, 0x16, 0x3e, 0, 0, 2];
        let mut ports = BTreeMap::new();
        // Both ports have a limit (PORT_F_RATE); a third, vif3, has a bucket but not the flag.
        let limited = |slot| {
            let mut p = PortConf::new(1, slot, PORT_ACCESS, 10, 0x8100);
            p.flags |= PORT_F_RATE;
            p
        };
        let vif3 = 13;
        ports.insert(vif1, limited(2));
        ports.insert(vif2, limited(3));
        ports.insert(vif3, PortConf::new(1, 4, PORT_ACCESS, 10, 0x8100));
        let mut fdb = BTreeMap::new();
        let entry = FdbVal {
            ifindex: vif2,
            flags: FDB_STATIC,
            slot: 3,
            last_seen_ns: 0,
        };
        fdb.insert((1, 10, g2), entry);
        let mut w = World::new(ports, fdb);
        // 10 Mbit/s (800 ns a byte) with a 2000-byte burst: 1.6 ms ahead at most.
        let b = Bucket::new(10_000_000, 2000);
        *w.rates.borrow_mut() = vec![PortRate::NONE; 8];
        w.rates.borrow_mut()[2].ingress = b;
        w.now.set(1_000_000_000);
        let mut frame: Vec<u8> = Vec::new();
        frame.extend_from_slice(&g2);
        frame.extend_from_slice(&[2, 0, 0, 0, 0, 1]);
        frame.extend_from_slice(&[0x08, 0x00]);
        frame.extend_from_slice(&[0; 86]); // 100 bytes: 80 µs each
        let send = |n: usize| {
            (0..n)
                .filter(|_| {
                    let d = decide(&Pkt(frame.clone()), &w, vif1);
                    account(&w, &d, 100);
                    d.verdict == Verdict::Forward
                })
                .count()
        };
        // 1.6 ms of burst at 80 µs a frame: 21 frames (the 21st brings it to 1.68 ms).
        assert_eq!(send(40), 21);
        let st = |slot: usize, s: Stat| w.stats.borrow()[slot].get(s);
        assert_eq!(st(2, Stat::DropRateLimit), 19);
        assert_eq!(st(2, Stat::RxPackets), 40);
        assert_eq!(st(3, Stat::TxPackets), 21);
        // 800 µs later, 10 frames' worth has drained.
        w.now.set(1_000_800_000);
        assert_eq!(send(40), 10);
        // The other direction of vif1 and every direction of vif2 are not limited.
        assert!(police(&w, 2, Dir::Out, || 100));
        assert!(police(&w, 3, Dir::In, || 100));
        // An egress limit on vif2: refused copies count there, the frame's outcome on vif1.
        w.rates.borrow_mut()[3].egress = Bucket::new(10_000_000, 2000);
        let mut refused = 0;
        for _ in 0..40 {
            w.now.set(w.now.get() + 1_000_000); // vif1's ingress always has room again
            let d = decide(&Pkt(frame.clone()), &w, vif1);
            assert_eq!(d.verdict, Verdict::Forward);
            if police(&w, d.out_slot, Dir::Out, || 1_000) {
                account(&w, &d, 100);
            } else {
                account_refused(&w, &d, 100);
                refused += 1;
            }
        }
        // 1000-byte frames, 0.8 ms each, one every 1 ms: all pass.
        assert_eq!(refused, 0);
        for _ in 0..40 {
            let d = decide(&Pkt(frame.clone()), &w, vif1);
            if d.verdict == Verdict::Forward && !police(&w, d.out_slot, Dir::Out, || 1_000) {
                account_refused(&w, &d, 100);
                refused += 1;
            }
        }
        assert!(refused > 0, "an egress limit refused nothing");
        assert_eq!(st(3, Stat::DropRateLimit), refused);
        // Egress to vif2 (PORT_F_RATE) is to be policed by the program.
        w.now.set(w.now.get() + 1_000_000_000);
        let d = decide(&Pkt(frame.clone()), &w, vif1);
        assert_eq!((d.verdict, d.police_out), (Verdict::Forward, true));
        // A port without PORT_F_RATE is not policed, even with a bucket in XN_RATES (the
        // agent writes both together; the datapath reads the bucket only with the flag).
        w.rates.borrow_mut()[4].ingress = Bucket::new(8_000, 1);
        for _ in 0..10 {
            let d = decide(&Pkt(frame.clone()), &w, vif3);
            assert_eq!(d.verdict, Verdict::Forward, "vif3 has no PORT_F_RATE");
        }
        // With the flag, the same bucket (8 kbit/s, 1 byte of burst) lets one frame through.
        if let Some(p) = w.ports.get_mut(&vif3) {
            p.flags |= PORT_F_RATE;
        }
        let verdicts: Vec<Verdict> = (0..3)
            .map(|_| decide(&Pkt(frame.clone()), &w, vif3).verdict)
            .collect();
        assert_eq!(verdicts, [Verdict::Forward, Verdict::Drop, Verdict::Drop]);
    }

    #[test]
    fn layout() {
        assert_eq!(core::mem::size_of::<PortRate>(), 48);
    }

    #[test]
    fn costs() {
        // 1 Gbit/s: 8 ns per byte; a 1500-byte frame costs 12 µs.
        let b = Bucket::new(1_000_000_000, 65536);
        assert_eq!(b.byte_ns, 8 << 16);
        assert_eq!(b.tau_ns, 65536 * 8);
        assert_eq!(
            b.admit(0, 1500),
            Admit::Pass {
                catch_up: None,
                cost: 12_000
            }
        );
        // 10 Mbit/s: 800 ns per byte.
        assert_eq!(Bucket::new(10_000_000, 1).byte_ns, 800 << 16);
        // 400 Gbit/s: 0.02 ns per byte, still nonzero.
        assert!(Bucket::new(400_000_000_000, 1).byte_ns > 0);
    }

    #[test]
    fn long_term_rate_is_the_limit() {
        // 100 Mbit/s offered 1 Gbit/s for one second in 1500-byte frames: 12.5 MB pass (plus
        // the burst and one frame).
        let b = Bucket::new(100_000_000, 128 * 1024);
        let passed = run(b, 1_000_000_000 / 12_000, 1500, 12_000);
        let want = 12_500_000 + 128 * 1024;
        assert!(passed.abs_diff(want) <= 1500, "{passed} vs {want}");
    }

    #[test]
    fn under_the_limit_everything_passes() {
        let b = Bucket::new(100_000_000, 16 * 1024);
        // 50 Mbit/s offered.
        assert_eq!(run(b, 1000, 1500, 240_000), 1000 * 1500);
    }

    #[test]
    fn a_frame_bigger_than_the_burst_passes_a_full_bucket() {
        let b = Bucket::new(10_000_000, 2000);
        assert!(matches!(b.admit(5, 65_536), Admit::Pass { .. }));
        // …and then the bucket owes its time: the next one waits.
        let mut b2 = b;
        if let Admit::Pass { catch_up, cost } = b.admit(5, 65_536) {
            b2.tat_ns = catch_up.unwrap_or(0) + cost;
        }
        assert_eq!(b2.admit(6, 60), Admit::Refuse);
    }

    #[test]
    fn idle_buckets_refill_only_to_the_burst() {
        // After an hour idle, no more than the burst (plus one frame) passes at once.
        let mut b = Bucket::new(10_000_000, 10_000);
        b.tat_ns = 1;
        let passed = run(b, 100, 1000, 0);
        assert_eq!(passed, 11 * 1000);
    }
}
