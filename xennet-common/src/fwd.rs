//! The forwarding core: parse → classify → look up → decide.
//!
//! Written once over two traits and compiled into every program type and into the host build:
//! [`Frame`] reads packet bytes with bounds checks, [`Tables`] reads the port and FDB maps and
//! the counters. Only the actions (redirect, tag push/pop) live in the programs.
//!
//! All header offsets are constants: the outer tag, if any, is always at byte 12 and the inner
//! one at byte 16, which keeps the verifier's job trivial.
//!
//! Functions here are `#[inline(always)]`: the eBPF programs need them inlined (no BPF-to-BPF
//! calls with these signatures) and the verifier then sees constant offsets.
#![expect(clippy::inline_always, reason = "eBPF: the datapath must be inlined")]

use crate::{
    VLAN_MAX, VLAN_VID_MASK,
    maps::{
        FdbKey, FdbVal, PORT_ACCESS, PORT_F_FLOOD_VIA_TC, PORT_F_RATE, PORT_F_TC_ONLY, PORT_F_XDP,
        PortConf, SEC_ON,
    },
    monitor::{Event, MonitorConf},
    rate::{Bucket, Dir, police},
    stats::{PortStats, Stat},
    vstats::{VlanKey, VlanStats},
};

/// Read access to one frame.
pub trait Frame {
    /// Length of the frame in bytes.
    fn len(&self) -> usize;

    /// Whether the frame has no bytes at all.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `N` bytes at `off`, or `None` when the frame ends before `off + N`.
    fn load<const N: usize>(&self, off: usize) -> Option<[u8; N]>;

    /// The big-endian `u32` at `off` (what port security reads its headers with). The
    /// programs override it with one 32-bit load: [`Frame::load`] of 4 unaligned bytes is
    /// four byte loads and shifts on the bpf target.
    #[inline(always)]
    fn be32(&self, off: usize) -> Option<u32> {
        self.load::<4>(off).map(u32::from_be_bytes)
    }

    /// `N` big-endian `u32`s from `off` on, with one bounds check for all of them; `None`
    /// when the frame ends before `off + 4 * N`.
    #[inline(always)]
    fn be32s<const N: usize>(&self, off: usize) -> Option<[u32; N]> {
        if off + 4 * N > self.len() {
            return None;
        }
        let mut w = [0; N];
        let mut i = 0;
        while i < N {
            w[i] = self.be32(off + 4 * i)?;
            i += 1;
        }
        Some(w)
    }

    /// A tag the kernel already moved out of the bytes into metadata, as `(tpid, tci)`
    /// (TC programs: `skb->vlan_present`). XDP sees every tag in the bytes.
    fn offloaded_tag(&self) -> Option<(u16, u16)> {
        None
    }

    /// Make the first `n` bytes readable by [`Frame::load`] if the frame has them (TC: the
    /// linear part of an skb may hold only its first headers). XDP and the host see every
    /// header already.
    fn pull(&self, n: usize) {
        let _ = n;
    }

    /// Length of the whole frame on the wire (every buffer of a multi-buffer XDP frame), as
    /// a bandwidth limit charges it; read only for ports with a limit.
    fn wire_len(&self) -> u64 {
        self.len() as u64
    }
}

/// How [`Tables::fdb_put`] treats an existing entry (the kernel's `BPF_ANY`/`NOEXIST`/`EXIST`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Put {
    /// Create or replace.
    Any = 0,
    /// Create only.
    New = 1,
    /// Replace only.
    Existing = 2,
}

/// Access to the datapath's maps.
pub trait Tables {
    /// The port whose ifindex is `ifindex`.
    fn port(&self, ifindex: u32) -> Option<&PortConf>;
    /// The `XN_SLOTS` entry of stats slot `slot` (an array read; the caller checks its
    /// `ifindex`). Tables without a slot array return `None` and every port is found by
    /// ifindex.
    fn port_at(&self, slot: u32) -> Option<&PortConf> {
        let _ = slot;
        None
    }
    /// The stats slot `XN_IFSLOTS` holds for `ifindex` (an array read; 0 or `None`: unknown).
    fn slot_of(&self, ifindex: u32) -> Option<u32> {
        let _ = ifindex;
        None
    }
    /// The port whose ifindex is `ifindex`: through its slot when [`Tables::slot_of`] knows
    /// it (two array reads, checked against the ifindex), else [`Tables::port`].
    #[inline(always)]
    fn port_fast(&self, ifindex: u32) -> Option<&PortConf> {
        if let Some(p) = self.slot_of(ifindex).and_then(|s| self.port_at(s)) {
            if p.ifindex == ifindex {
                return Some(p);
            }
        }
        self.port(ifindex)
    }
    /// The FDB entry for `key` (a copy; through the per-CPU cache where there is one).
    fn fdb(&self, key: &FdbKey) -> Option<FdbVal>;
    /// [`Tables::fdb`] for the learning check of a frame's source, and whether its station
    /// is calm (`crate::fdbcache`: found on its own port, far from a refresh, within the
    /// last few ticks), so that the check reads no clock. Tables without the cache never
    /// say calm.
    fn fdb_src(&self, key: &FdbKey) -> (Option<FdbVal>, bool) {
        (self.fdb(key), false)
    }
    /// Make the station of `key` calm in this CPU's cache: its entry was just found at least
    /// `fdbcache::CALM_MARGIN_NS` short of a refresh.
    fn fdb_calm(&self, key: &FdbKey) {
        let _ = key;
    }
    /// Write an FDB entry; false when the map refused (full, or `put` not satisfied). A
    /// cache in front of the FDB forgets its own copy of `key`.
    fn fdb_put(&self, key: &FdbKey, val: &FdbVal, put: Put) -> bool;
    /// An existing FDB entry was rewritten to another port (learning moved it): every cached
    /// copy of an FDB entry, on every CPU, is void from now on (`crate::fdbcache`: the
    /// generation is bumped). Called after the write.
    fn fdb_moved(&self) {}
    /// MACs currently learned on stats slot `slot`.
    fn learned(&self, slot: u32) -> u32;
    /// Atomically add `delta` to the learned count of `slot`.
    fn learned_add(&self, slot: u32, delta: i32);
    /// Monotonic time in nanoseconds, coarse is fine (`bpf_ktime_get_coarse_ns`: a tick's
    /// resolution, far cheaper than reading the clock source in a VM).
    fn now(&self) -> u64;
    /// Run `f` on the counters of stats slot `slot` (for this CPU).
    fn with_stats<F: FnOnce(&mut PortStats)>(&self, slot: u32, f: F);
    /// The `dir` bandwidth limit of stats slot `slot` (a copy of its `XN_RATES` bucket);
    /// `None`: no limit.
    fn bucket(&self, slot: u32, dir: Dir) -> Option<Bucket> {
        let _ = (slot, dir);
        None
    }
    /// Charge `cost` ns to the `dir` bucket of slot `slot`: first set its `tat_ns` to
    /// `catch_up` if given, then add `cost` atomically.
    fn rate_charge(&self, slot: u32, dir: Dir, catch_up: Option<u64>, cost: u64) {
        let _ = (slot, dir, catch_up, cost);
    }
    /// Monotonic time in nanoseconds at full resolution (`bpf_ktime_get_ns`), for limits: a
    /// coarse tick would let a bucket run a tick ahead.
    fn clock_ns(&self) -> u64 {
        self.now()
    }

    /// Run `f` on the counters of VLAN `key` (for this CPU); nothing when the VLAN has no
    /// counters (no slot in `XN_VSLOTS`) or the tables have none.
    fn with_vlan_stats<F: FnOnce(&mut VlanStats)>(&self, key: VlanKey, f: F) {
        let _ = (key, f);
    }
    /// The monitor's switch (`XN_MONITOR[0]`); `None` when the tables have none.
    fn monitor(&self) -> Option<&MonitorConf> {
        None
    }
    /// Emit `event` to the monitor (the eBPF programs: an aya-log record).
    fn emit(&self, event: &Event) {
        let _ = event;
    }
}

/// The oldest a busy station's `last_seen_ns` gets (1 s): its entry is refreshed once it is
/// `REFRESH_NS − fdbcache::CALM_MARGIN_NS` (750 ms) old, not on every frame.
pub const REFRESH_NS: u64 = 1_000_000_000;

mod parse;
pub use parse::{EthHdr, MaybeTag, ParseError, Tag, parse};
mod account;
mod flood;
mod learn;
pub use account::{account, account_refused, account_tx, count};
pub use flood::{FloodCopy, flood_copy, flood_egress, member_egress};
pub mod security;
pub use learn::learn;

/// What happens to the outer tag on the way out: its kind and, for a push or a rewrite, the
/// new tag. A struct whose fields are always written rather than an enum with payloads: LLVM
/// leaves the payload of a payload-less variant undefined, and once it spilled such a register
/// the verifier refused the program (`R5 !read_ok`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TagOp {
    /// What to do with the outer tag.
    pub kind: TagKind,
    /// TPID of the new tag ([`TagKind::Push`]; 0 otherwise).
    pub tpid: u16,
    /// TCI of the new tag ([`TagKind::Push`], [`TagKind::Rewrite`]; 0 otherwise).
    pub tci: u16,
}

/// The kinds of [`TagOp`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TagKind {
    /// Leave the frame's tagging as it is.
    Keep,
    /// Remove the outer tag.
    Pop,
    /// Add an outer tag.
    Push,
    /// Replace the TCI of the outer tag (a priority tag becoming a VLAN tag).
    Rewrite,
}

impl TagOp {
    /// Leave the frame's tagging as it is.
    pub const KEEP: TagOp = TagOp {
        kind: TagKind::Keep,
        tpid: 0,
        tci: 0,
    };
    /// Remove the outer tag.
    pub const POP: TagOp = TagOp {
        kind: TagKind::Pop,
        tpid: 0,
        tci: 0,
    };

    /// Add an outer tag `tpid`/`tci`.
    #[must_use]
    pub const fn push(tpid: u16, tci: u16) -> TagOp {
        TagOp {
            kind: TagKind::Push,
            tpid,
            tci,
        }
    }

    /// Replace the outer tag's TCI by `tci`.
    #[must_use]
    pub const fn rewrite(tci: u16) -> TagOp {
        TagOp {
            kind: TagKind::Rewrite,
            tpid: 0,
            tci,
        }
    }

    /// Change in frame length (one tag is [`crate::VLAN_HLEN`] bytes).
    #[must_use]
    pub const fn len_delta(self) -> i64 {
        match self.kind {
            TagKind::Keep | TagKind::Rewrite => 0,
            TagKind::Pop => -4,
            TagKind::Push => 4,
        }
    }
}

/// The fate of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send out of `Decision::egress` after applying `Decision::tag`.
    Forward,
    /// Apply `Decision::tag` (which leaves the frame tagged with its VLAN), then send a copy to
    /// every other port of the flood group; [`flood_egress`] finishes each copy.
    Flood,
    /// Hand to the host stack unchanged.
    Pass,
    /// Drop.
    Drop,
}

/// The decision for one frame, with what the counters need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// What to do.
    pub verdict: Verdict,
    /// The outcome counter (an action or a drop reason).
    pub stat: Stat,
    /// Stats slot of the ingress port (0 when the interface is not a port).
    pub in_slot: u32,
    /// Egress ifindex (forward only).
    pub egress: u32,
    /// Stats slot of the egress port (forward only).
    pub out_slot: u32,
    /// Tag operation for the egress port (forward only).
    pub tag: TagOp,
    /// Classified VLAN (0 before classification).
    pub vlan: u16,
    /// Bridge of the ingress port once the frame is classified into `vlan` (0 before): with
    /// `vlan`, a flood's group key and the per-VLAN counters' key.
    pub bridge: u32,
    /// What learning the source MAC did, if anything worth counting.
    pub learn: Option<Stat>,
    /// TCI of the frame's VLAN on a tagged egress (PCP/DEI kept, VID = `vlan`).
    pub tci: u16,
    /// XDP cannot carry this out (the egress port takes no XDP frames, or the flood has
    /// such members): the XDP program passes the frame to the TC program of the same device.
    pub defer_to_tc: bool,
    /// The egress port has a bandwidth limit ([`PORT_F_RATE`]; forward only): the program
    /// polices the frame against it.
    pub police_out: bool,
}

impl Decision {
    const fn new(verdict: Verdict, stat: Stat, in_slot: u32, vlan: u16) -> Self {
        Decision {
            verdict,
            stat,
            in_slot,
            egress: 0,
            out_slot: 0,
            tag: TagOp::KEEP,
            vlan,
            bridge: 0,
            learn: None,
            tci: vlan,
            defer_to_tc: false,
            police_out: false,
        }
    }

    /// Drop with `reason`, keeping the ingress attribution.
    #[must_use]
    pub const fn into_drop(self, reason: Stat) -> Self {
        let mut d = Decision::new(Verdict::Drop, reason, self.in_slot, self.vlan);
        d.learn = self.learn;
        d.bridge = self.bridge;
        d
    }
}

/// Decide the fate of frame `f` that arrived on interface `ingress` (the first program to see
/// it: XDP, or the host build).
#[inline(always)]
pub fn decide<F: Frame, T: Tables>(f: &F, t: &T, ingress: u32) -> Decision {
    let Some(port) = t.port_fast(ingress) else {
        return Decision::new(Verdict::Pass, Stat::PassNotPort, 0, 0);
    };
    decide_on(f, t, port, ingress, true)
}

/// [`decide`] for the TC program, also returning the ingress port it looked up (`None`: not a
/// port, and the decision is [`Stat::PassNotPort`]), so that a program that needs more of the
/// port (TC: its flags, TPID and bridge) does not look it up again. On a port where XDP runs
/// first ([`PORT_F_XDP`]) the ingress limit is not charged again: XDP charged it.
#[inline(always)]
pub fn decide_with_port<'t, F: Frame, T: Tables>(
    f: &F,
    t: &'t T,
    ingress: u32,
) -> (Decision, Option<&'t PortConf>) {
    let Some(port) = t.port_fast(ingress) else {
        return (Decision::new(Verdict::Pass, Stat::PassNotPort, 0, 0), None);
    };
    let police_in = port.flags & PORT_F_XDP == 0;
    (decide_on(f, t, port, ingress, police_in), Some(port))
}

/// The decision for frame `f` on port `port` (ifindex `ingress`); `police_in`: charge the
/// port's ingress limit.
#[inline(always)]
fn decide_on<F: Frame, T: Tables>(
    f: &F,
    t: &T,
    port: &PortConf,
    ingress: u32,
    police_in: bool,
) -> Decision {
    use Verdict::Drop;

    let slot = port.slot;
    // The port's ingress limit comes first, as a policer in front of a bridge port would; a
    // port without a limit does not look its buckets up.
    if police_in && port.flags & PORT_F_RATE != 0 && !police(t, slot, Dir::In, || f.wire_len()) {
        return Decision::new(Drop, Stat::DropRateLimit, slot, 0);
    }
    let hdr = match parse(f) {
        Ok(h) => h,
        Err(ParseError::Runt) => return Decision::new(Drop, Stat::DropRunt, slot, 0),
        Err(ParseError::Truncated) => return Decision::new(Drop, Stat::DropTruncated, slot, 0),
    };
    if hdr.src[0] & 1 != 0 || hdr.src == [0; 6] {
        return Decision::new(Drop, Stat::DropBadSrcMac, slot, 0);
    }

    // Classify: which VLAN, and did the frame carry a tag of ours (possibly a priority tag)?
    let (vlan, pcp_dei, tagged) = match hdr.outer.get() {
        None => {
            if port.pvid == 0 {
                return Decision::new(Drop, Stat::DropUntaggedOnTrunk, slot, 0);
            }
            (port.pvid, 0, false)
        }
        Some(tag) => {
            if tag.tpid != port.tpid {
                return Decision::new(Drop, Stat::DropForeignTpid, slot, 0);
            }
            let vid = tag.vid();
            let prio = tag.tci & !VLAN_VID_MASK;
            if vid == 0 {
                // Priority tag: the frame belongs to the port's untagged VLAN.
                if port.pvid == 0 {
                    return Decision::new(Drop, Stat::DropUntaggedOnTrunk, slot, 0);
                }
                (port.pvid, prio, true)
            } else if vid > VLAN_MAX {
                return Decision::new(Drop, Stat::DropBadVid, slot, 0);
            } else if port.mode == PORT_ACCESS {
                return Decision::new(Drop, Stat::DropTaggedOnAccess, slot, 0);
            } else if !port.carries(vid) {
                return Decision::new(Drop, Stat::DropVlanNotAllowed, slot, 0);
            } else {
                (vid, prio, true)
            }
        }
    };

    let mut d = classified(f, t, port, ingress, &hdr, vlan, pcp_dei, tagged);
    d.bridge = port.bridge;
    d
}

/// The decision for a frame that `decide_on` classified into `vlan` (`pcp_dei`: its tag's
/// priority bits; `tagged`: it carried a tag of ours).
#[inline(always)]
#[expect(
    clippy::too_many_arguments,
    reason = "the classification's results, inlined"
)]
fn classified<F: Frame, T: Tables>(
    f: &F,
    t: &T,
    port: &PortConf,
    ingress: u32,
    hdr: &EthHdr,
    vlan: u16,
    pcp_dei: u16,
    tagged: bool,
) -> Decision {
    use Verdict::Drop;

    let slot = port.slot;
    // VLAN hopping: behind a priority tag, another tag of the bridge's TPID would lead the
    // frame out of an untagged egress of this VLAN, read there as its VLAN. (Another TPID
    // behind it is payload, e.g. a customer tag on an 802.1ad bridge.)
    if hdr.outer.is_some_and(|o| o.vid() == 0) && hdr.inner.is_some_and(|i| i.tpid == port.tpid) {
        return Decision::new(Drop, Stat::DropNestedTag, slot, vlan);
    }

    // Port security first: a secured port's source is one of its static MACs, so there is
    // nothing to learn. Otherwise learn where the source lives (Linux bridge order: learn,
    // then forward).
    let learn = if port.sec.flags & SEC_ON != 0 {
        if let Err(reason) = security::check(f, t, port, ingress, &security::L2::of(hdr, vlan)) {
            return Decision::new(Drop, reason, slot, vlan);
        }
        None
    } else {
        match learn(t, port, ingress, &hdr.src, vlan) {
            Ok(l) => l,
            Err(reason) => return Decision::new(Drop, reason, slot, vlan),
        }
    };
    let mut d = forward(t, port, ingress, hdr, vlan, pcp_dei, tagged);
    d.learn = learn;
    d
}

/// Whether `mac` is IEEE 802.1D link-local (01:80:c2:00:00:00–0f), never forwarded by a bridge.
#[inline(always)]
#[must_use]
pub fn is_link_local(mac: &[u8; 6]) -> bool {
    mac[0] == 0x01
        && mac[1] == 0x80
        && mac[2] == 0xc2
        && mac[3] == 0
        && mac[4] == 0
        && mac[5] & 0xf0 == 0
}

/// The tag operation that leaves a frame tagged with `vlan` (the flood path's normal form).
#[inline(always)]
fn tag_for_flood(hdr: &EthHdr, port: &PortConf, vlan: u16, pcp_dei: u16, tagged: bool) -> TagOp {
    if !tagged {
        TagOp::push(port.tpid, vlan)
    } else if hdr.outer.map(Tag::vid) == Some(vlan) {
        TagOp::KEEP
    } else {
        TagOp::rewrite(pcp_dei | vlan)
    }
}

/// Decide the destination of a classified frame.
#[inline(always)]
fn forward<T: Tables>(
    t: &T,
    port: &PortConf,
    ingress: u32,
    hdr: &EthHdr,
    vlan: u16,
    pcp_dei: u16,
    tagged: bool,
) -> Decision {
    use Verdict::{Drop, Pass};
    let slot = port.slot;
    let flood = |slot| {
        let mut d = Decision::new(Verdict::Flood, Stat::Flood, slot, vlan);
        d.tag = tag_for_flood(hdr, port, vlan, pcp_dei, tagged);
        d.tci = pcp_dei | vlan;
        d.bridge = port.bridge;
        d.defer_to_tc = port.flags & PORT_F_FLOOD_VIA_TC != 0;
        d
    };
    if hdr.dst[0] & 1 != 0 {
        if is_link_local(&hdr.dst) {
            return Decision::new(Pass, Stat::PassLinkLocal, slot, vlan);
        }
        return flood(slot);
    }
    let key = FdbKey {
        mac: hdr.dst,
        vlan,
        bridge: port.bridge,
    };
    let Some(entry) = t.fdb(&key) else {
        return flood(slot);
    };
    let egress = entry.ifindex;
    if egress == ingress {
        return Decision::new(Drop, Stat::DropHairpin, slot, vlan);
    }
    // The egress port through the entry's slot (an array read), checked against the
    // entry's ifindex; by ifindex (a hash lookup) when the slot does not hold it.
    let out = match t.port_at(u32::from(entry.slot)) {
        Some(p) if p.ifindex == egress => p,
        _ => match t.port(egress) {
            Some(p) => p,
            None => return Decision::new(Drop, Stat::DropStaleFdb, slot, vlan),
        },
    };
    if out.bridge != port.bridge {
        return Decision::new(Drop, Stat::DropStaleFdb, slot, vlan);
    }
    if !out.carries(vlan) {
        return Decision::new(Drop, Stat::DropEgressVlan, slot, vlan);
    }
    let untagged_out = vlan == out.pvid;
    let tag = match (tagged, untagged_out) {
        (true, true) => TagOp::POP,
        (false, true) => TagOp::KEEP,
        (false, false) => TagOp::push(out.tpid, vlan),
        (true, false) => {
            if hdr.outer.map(Tag::vid) == Some(vlan) {
                TagOp::KEEP
            } else {
                TagOp::rewrite(pcp_dei | vlan)
            }
        }
    };
    Decision {
        verdict: Verdict::Forward,
        stat: Stat::Forward,
        in_slot: slot,
        egress,
        out_slot: out.slot,
        tag,
        vlan,
        bridge: port.bridge,
        learn: None,
        tci: pcp_dei | vlan,
        defer_to_tc: out.flags & PORT_F_TC_ONLY != 0,
        police_out: out.flags & PORT_F_RATE != 0,
    }
}

#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_cache;
#[cfg(test)]
mod tests_move;
