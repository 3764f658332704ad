//! The live event stream (`xennet-agent monitor`): the switch in `XN_MONITOR` that turns it on,
//! the event the datapath emits through aya-log at its single exit, and the text form of that
//! event, written by the datapath and parsed back by the monitor.
//!
//! Off, the datapath pays one array read and a branch per frame. On, the monitor holds a
//! *lease*: `XN_MONITOR[0]` says what to emit until `until_ns` (`CLOCK_MONOTONIC_COARSE`, the
//! clock of `bpf_ktime_get_coarse_ns`), and the monitor renews it every second. A monitor
//! that exits clears it; one killed with `-9` stops renewing, and the datapath stops emitting
//! [`LEASE_NS`] later by itself, with no agent involved.
#![expect(clippy::inline_always, reason = "eBPF: the datapath must be inlined")]

use crate::fwd::{Decision, Frame, Tables, Verdict};
use crate::{ETH_P_8021AD, ETH_P_8021Q};

/// The switch: `u32` index 0 → [`MonitorConf`]. Array of one entry.
pub const MAP_MONITOR: &str = "XN_MONITOR";
/// aya-log's ring buffer (`aya_log_ebpf`'s own map; the name is aya-log's). Pinned with the
/// other maps, so that a restarted agent's programs write into the ring the monitor reads.
pub const MAP_LOGS: &str = "AYA_LOGS";
/// aya-log target of the events, so that a reader can tell them from any other log record.
pub const EVENT_TARGET: &str = "xennet::event";

/// Emit nothing (the switch is off).
pub const MONITOR_OFF: u32 = 0;
/// Emit every dropped frame.
pub const MONITOR_DROPS: u32 = 1;
/// Emit every frame's decision.
pub const MONITOR_ALL: u32 = 2;

/// How long a lease lasts after its last renewal (3 s; the monitor renews every second).
pub const LEASE_NS: u64 = 3_000_000_000;

/// The value of `XN_MONITOR[0]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct MonitorConf {
    /// [`MONITOR_OFF`], [`MONITOR_DROPS`] or [`MONITOR_ALL`].
    pub mode: u32,
    /// Process id of the monitor holding the lease (for userspace: one monitor at a time).
    pub pid: u32,
    /// The lease ends at this `CLOCK_MONOTONIC_COARSE` time (ns).
    pub until_ns: u64,
}

#[cfg(feature = "user")]
// SAFETY: repr(C), integer fields only, no holes.
unsafe impl aya::Pod for MonitorConf {}

/// One datapath event: a frame and what became of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Event {
    /// Final verdict (0 forward, 1 flood, 2 pass, 3 drop: [`verdict_code`]).
    pub verdict: u8,
    /// The outcome counter ([`crate::stats::Stat`] as `u32`): an action or a drop reason.
    pub stat: u32,
    /// Ingress ifindex.
    pub ifindex: u32,
    /// Classified VLAN (0: not classified, e.g. dropped before).
    pub vlan: u16,
    /// Source MAC.
    pub src: [u8; 6],
    /// Destination MAC.
    pub dst: [u8; 6],
    /// Ethertype behind up to two tags (0 when the frame is shorter than a header).
    pub ethertype: u16,
    /// Egress ifindex (forward only, else 0).
    pub egress: u32,
    /// Frame length in bytes (wire length, as counted).
    pub len: u32,
}

/// The number the event gives a verdict (also its text form's `v=`).
#[inline(always)]
#[must_use]
pub const fn verdict_code(v: Verdict) -> u8 {
    match v {
        Verdict::Forward => 0,
        Verdict::Flood => 1,
        Verdict::Pass => 2,
        Verdict::Drop => 3,
    }
}

/// The name of a verdict code (`forward`, `flood`, `pass`, `drop`; `?` for another number).
#[must_use]
pub const fn verdict_name(code: u8) -> &'static str {
    match code {
        0 => "forward",
        1 => "flood",
        2 => "pass",
        3 => "drop",
        _ => "?",
    }
}

impl Event {
    /// The event for frame `f` that arrived on `ingress`, decided `d`, `len` bytes long.
    /// MACs and ethertype are read from the frame as it is now (a tag the program pushed or
    /// popped moves the ethertype, which is read behind up to two tags).
    #[inline(always)]
    pub fn of<F: Frame>(f: &F, d: &Decision, ingress: u32, len: u64) -> Event {
        let src = f.load::<6>(6).unwrap_or([0; 6]);
        let dst = f.load::<6>(0).unwrap_or([0; 6]);
        let mut ethertype = f.load::<2>(12).map_or(0, u16::from_be_bytes);
        if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
            ethertype = f.load::<2>(16).map_or(0, u16::from_be_bytes);
            if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
                ethertype = f.load::<2>(20).map_or(0, u16::from_be_bytes);
            }
        }
        #[expect(clippy::cast_possible_truncation, reason = "frames are < 4 GiB")]
        let len = len as u32;
        Event {
            verdict: verdict_code(d.verdict),
            stat: d.stat as u32,
            ifindex: ingress,
            vlan: d.vlan,
            src,
            dst,
            ethertype,
            egress: if d.verdict == Verdict::Forward {
                d.egress
            } else {
                0
            },
            len,
        }
    }
}

/// Whether the switch `conf` asks for the event of decision `d` at time `now`.
#[inline(always)]
#[must_use]
pub fn wanted(conf: &MonitorConf, d: &Decision, now: u64) -> bool {
    let want = match conf.mode {
        MONITOR_DROPS => d.verdict == Verdict::Drop,
        MONITOR_ALL => true,
        _ => false,
    };
    want && now < conf.until_ns
}

/// Hand the decision `d` for frame `f` (from `ingress`, `len` bytes) to the monitor if it is
/// on and wants it. Off, this is one array read and a branch. Called by every program at its
/// single exit, after [`crate::fwd::account`] (nothing reads the decision after it, which
/// keeps the verifier's walk short), and never changes the decision.
#[inline(always)]
pub fn observe<F: Frame, T: Tables>(f: &F, t: &T, d: &Decision, ingress: u32, len: u64) {
    let Some(conf) = t.monitor() else { return };
    if conf.mode == MONITOR_OFF {
        return;
    }
    if wanted(conf, d, t.now()) {
        t.emit(&Event::of(f, d, ingress, len));
    }
}

/// Bytes of an event's wire form ([`Event::encode`]).
pub const EVENT_BYTES: usize = 33;

impl Event {
    /// The event's wire form: the fields in declaration order, each little-endian, no
    /// padding. The datapath hands aya-log these bytes as one argument (`ev=` and the bytes
    /// in lower-case hex, see [`parse`]): one argument keeps aya-log's stack frame small
    /// enough to sit beside the inlined port security checks in 512 bytes.
    #[inline(always)]
    #[must_use]
    pub fn encode(&self) -> [u8; EVENT_BYTES] {
        let mut b = [0u8; EVENT_BYTES];
        b[0] = self.verdict;
        b[1..5].copy_from_slice(&self.stat.to_le_bytes());
        b[5..9].copy_from_slice(&self.ifindex.to_le_bytes());
        b[9..11].copy_from_slice(&self.vlan.to_le_bytes());
        b[11..17].copy_from_slice(&self.src);
        b[17..23].copy_from_slice(&self.dst);
        b[23..25].copy_from_slice(&self.ethertype.to_le_bytes());
        b[25..29].copy_from_slice(&self.egress.to_le_bytes());
        b[29..33].copy_from_slice(&self.len.to_le_bytes());
        b
    }

    /// The event of wire form `b` ([`Event::encode`]).
    #[must_use]
    pub fn decode(b: &[u8; EVENT_BYTES]) -> Event {
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        let mac_at = |i: usize| [b[i], b[i + 1], b[i + 2], b[i + 3], b[i + 4], b[i + 5]];
        Event {
            verdict: b[0],
            stat: u32_at(1),
            ifindex: u32_at(5),
            vlan: u16_at(9),
            src: mac_at(11),
            dst: mac_at(17),
            ethertype: u16_at(23),
            egress: u32_at(25),
            len: u32_at(29),
        }
    }
}

// The text of an event, as the datapath's `aya_log_ebpf::info!` call formats it (in
// `xennet-ebpf`'s `maps.rs`): `ev=` and the [`Event::encode`] bytes in lower-case hex, e.g.
//
// `ev=030a00000007000000fe0f0200000000abffffffffffff06080000000040000000`

/// Read an event back from its text (above); `None` when `s` is not one.
#[must_use]
pub fn parse(s: &str) -> Option<Event> {
    let hex = s.trim().strip_prefix("ev=")?;
    if hex.len() != 2 * EVENT_BYTES || !hex.is_ascii() {
        return None;
    }
    let mut b = [0u8; EVENT_BYTES];
    for (i, byte) in b.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(Event::decode(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        ETH_P_8021Q,
        fwd::fixtures::host::{World, static_entry},
        maps::{PORT_ACCESS, PORT_TRUNK, PortConf},
        stats::Stat,
    };
    use std::{collections::BTreeMap, format, vec::Vec};

    const TRUNK: u32 = 10;
    const VIF1: u32 = 11;
    const VIF2: u32 = 12;
    const G1: [u8; 6] = [0, 0x16, 0x3e, 0, 0, 1];
    const G2: [u8; 6] = [0, 0x16, 0x3e, 0, 0, 2];
    const UP: [u8; 6] = [2, 0, 0, 0, 0, 0xfe];

    /// A trunk (4093, 4094) and two access ports of VLAN 4094; G1 static on VIF1, G2 on VIF2.
    fn world() -> World {
        let mut ports = BTreeMap::new();
        let mut trunk = PortConf::new(1, 1, PORT_TRUNK, 0, ETH_P_8021Q);
        trunk.add_vlan(4093);
        trunk.add_vlan(4094);
        ports.insert(TRUNK, trunk);
        ports.insert(VIF1, PortConf::new(1, 2, PORT_ACCESS, 4094, ETH_P_8021Q));
        ports.insert(VIF2, PortConf::new(1, 3, PORT_ACCESS, 4094, ETH_P_8021Q));
        let mut fdb = BTreeMap::new();
        fdb.insert((1, 4094, G1), static_entry(VIF1));
        fdb.insert((1, 4094, G2), static_entry(VIF2));
        World::new(ports, fdb)
    }

    /// An IPv4-typed frame with `tags` 802.1Q VLAN ids.
    fn eth(dst: [u8; 6], src: [u8; 6], tags: &[u16]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&dst);
        v.extend_from_slice(&src);
        for t in tags {
            v.extend_from_slice(&ETH_P_8021Q.to_be_bytes());
            v.extend_from_slice(&t.to_be_bytes());
        }
        v.extend_from_slice(&0x0800u16.to_be_bytes());
        v.extend_from_slice(&[0x45; 46]);
        v
    }

    fn on(w: &mut World, mode: u32) {
        w.monitor = Some(MonitorConf {
            mode,
            pid: 1,
            until_ns: w.now.get() + LEASE_NS,
        });
    }

    /// The three drops the namespace test drives, each with its reason, port, VLAN, MACs and
    /// ethertype; a forward is not a drop.
    #[test]
    fn drops_are_emitted_with_their_details() {
        let mut w = world();
        on(&mut w, MONITOR_DROPS);
        w.run(VIF1, eth(G2, G1, &[4094]));
        w.run(TRUNK, eth(G1, UP, &[100]));
        w.run(VIF2, eth(UP, G1, &[]));
        w.run(VIF1, eth(G2, G1, &[]));
        let ev = w.events.borrow().clone();
        let want = [
            (Stat::DropTaggedOnAccess, VIF1, 0, G1, G2, 64),
            (Stat::DropVlanNotAllowed, TRUNK, 0, UP, G1, 64),
            (Stat::DropStaticMac, VIF2, 4094, G1, UP, 60),
        ];
        assert_eq!(ev.len(), want.len(), "{ev:?}");
        for (e, (stat, port, vlan, src, dst, len)) in ev.iter().zip(want) {
            assert_eq!(
                *e,
                Event {
                    verdict: 3,
                    stat: stat as u32,
                    ifindex: port,
                    vlan,
                    src,
                    dst,
                    ethertype: 0x0800,
                    egress: 0,
                    len,
                }
            );
        }
    }

    #[test]
    fn all_mode_emits_forwards_with_their_egress() {
        let mut w = world();
        on(&mut w, MONITOR_ALL);
        w.run(VIF1, eth(G2, G1, &[]));
        let ev = w.events.borrow().clone();
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].verdict, verdict_code(Verdict::Forward));
        assert_eq!(ev[0].stat, Stat::Forward as u32);
        assert_eq!((ev[0].egress, ev[0].vlan), (VIF2, 4094));
    }

    /// Off, or with the lease run out (a monitor killed with -9), nothing is emitted and the
    /// decision is the same.
    #[test]
    fn off_or_expired_emits_nothing() {
        let mut w = world();
        let frame = || eth(G2, G1, &[4094]);
        let d_on = {
            on(&mut w, MONITOR_DROPS);
            w.run(VIF1, frame())
        };
        assert_eq!(w.events.borrow().len(), 1);
        w.events.borrow_mut().clear();
        w.monitor = Some(MonitorConf::default());
        assert_eq!(
            w.run(VIF1, frame()),
            d_on,
            "the monitor never changes a decision"
        );
        w.monitor = None;
        w.run(VIF1, frame());
        on(&mut w, MONITOR_DROPS);
        w.now.set(w.now.get() + LEASE_NS);
        w.run(VIF1, frame());
        assert!(w.events.borrow().is_empty(), "{:?}", w.events.borrow());
    }

    #[test]
    fn text_round_trip() {
        let e = Event {
            verdict: 3,
            stat: 10,
            ifindex: 7,
            vlan: 4094,
            src: [2, 0, 0, 0, 0, 0xab],
            dst: [0xff; 6],
            ethertype: 0x0806,
            egress: 0,
            len: 64,
        };
        let t = "ev=030a00000007000000fe0f0200000000abffffffffffff06080000000040000000";
        assert_eq!(parse(t), Some(e));
        assert_eq!(Event::decode(&e.encode()), e);
        assert_eq!(parse(&t[..t.len() - 2]), None, "every byte is required");
        assert_eq!(parse(&format!("{t}00")), None, "no byte more");
        assert_eq!(
            parse("ev=zz0a00000007000000fe0f0200000000abffffffffffff06080000000040000000"),
            None
        );
        assert_eq!(parse("hello world"), None);
    }
}
