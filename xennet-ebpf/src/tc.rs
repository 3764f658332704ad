//! The TC ingress program: the same forwarding core as XDP, with skb actions —
//! `bpf_redirect` for unicast, a `bpf_clone_redirect` loop for floods, and
//! `bpf_skb_vlan_push/pop` for tags (the kernel usually holds the tag in `skb->vlan_tci`).
//! It serves ports that cannot run native XDP or take XDP frames (xen-netback vifs), and
//! the frames an XDP program deferred to it. GSO skbs stay whole: nothing here linearises.

use core::ffi::c_void;

use aya_ebpf::{
    bindings::{__sk_buff, TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_SHOT},
    helpers::{
        bpf_clone_redirect, bpf_loop, bpf_redirect, bpf_skb_pull_data, bpf_skb_vlan_pop,
        bpf_skb_vlan_push,
    },
    macros::classifier,
    programs::TcContext,
};
use xennet_common::{
    ETH_HLEN, VLAN_HLEN,
    fwd::{self, Frame, Put, Tables, TagKind, TagOp, Verdict},
    maps::{
        FdbKey, FdbVal, MAX_TC_FLOOD, MEMBER_COUNT, MemberKey, PORT_F_RATE, PORT_F_XDP, PortConf,
    },
    monitor::{self, Event, MonitorConf},
    rate::{Bucket, Dir, police},
    stats::{PortStats, Stat},
    vstats::{self, VlanKey, VlanStats},
};

use crate::maps::{FloodWalk, Maps, XN_FLOODWALK, XN_MEMBERS};

/// The maps as TC's decision reads them: every port, ingress or egress, is an `XN_SLOTS`
/// entry. A port found two ways (a hash value or an array value) is two kinds of pointer to
/// the verifier, which then walks the flood loop once per kind, beyond its budget; so the
/// ifindex only ever yields a slot number — through `XN_IFSLOTS` (an array read), or, for
/// an ifindex beyond it, through the port's `XN_PORTS` entry — and the port is read at
/// that slot, checked against the ifindex.
struct TcMaps;

impl Tables for TcMaps {
    #[inline(always)]
    fn port(&self, ifindex: u32) -> Option<&PortConf> {
        let slot = match Maps.slot_of(ifindex) {
            Some(s) if s != 0 => s,
            _ => Maps.port(ifindex)?.slot,
        };
        Maps.port_at(slot)
            .filter(|p| p.ifindex == ifindex && ifindex != 0)
    }
    #[inline(always)]
    fn port_at(&self, slot: u32) -> Option<&PortConf> {
        Maps.port_at(slot)
    }
    #[inline(always)]
    fn fdb(&self, key: &FdbKey) -> Option<FdbVal> {
        Maps.fdb(key)
    }
    #[inline(always)]
    fn fdb_src(&self, key: &FdbKey) -> (Option<FdbVal>, bool) {
        Maps.fdb_src(key)
    }
    #[inline(always)]
    fn fdb_calm(&self, key: &FdbKey) {
        Maps.fdb_calm(key);
    }
    #[inline(always)]
    fn fdb_put(&self, key: &FdbKey, val: &FdbVal, put: Put) -> bool {
        Maps.fdb_put(key, val, put)
    }
    #[inline(always)]
    fn fdb_moved(&self) {
        Maps.fdb_moved();
    }
    #[inline(always)]
    fn learned(&self, slot: u32) -> u32 {
        Maps.learned(slot)
    }
    #[inline(always)]
    fn learned_add(&self, slot: u32, delta: i32) {
        Maps.learned_add(slot, delta);
    }
    #[inline(always)]
    fn now(&self) -> u64 {
        Maps.now()
    }
    #[inline(always)]
    fn with_stats<F: FnOnce(&mut PortStats)>(&self, slot: u32, f: F) {
        Maps.with_stats(slot, f);
    }
    #[inline(always)]
    fn bucket(&self, slot: u32, dir: Dir) -> Option<Bucket> {
        Maps.bucket(slot, dir)
    }
    #[inline(always)]
    fn rate_charge(&self, slot: u32, dir: Dir, catch_up: Option<u64>, cost: u64) {
        Maps.rate_charge(slot, dir, catch_up, cost);
    }
    #[inline(always)]
    fn clock_ns(&self) -> u64 {
        Maps.clock_ns()
    }

    #[inline(always)]
    fn with_vlan_stats<F: FnOnce(&mut VlanStats)>(&self, key: VlanKey, f: F) {
        Maps.with_vlan_stats(key, f);
    }
    #[inline(always)]
    fn monitor(&self) -> Option<&MonitorConf> {
        Maps.monitor()
    }
    #[inline(always)]
    fn emit(&self, e: &Event) {
        Maps.emit(e);
    }
}

/// Bytes the parser may read: Ethernet header and two tags.
const HDR_MAX: u32 = (ETH_HLEN + 2 * VLAN_HLEN) as u32;

/// Bounds-checked access to the linear part of an skb, plus its offloaded tag.
struct TcFrame<'a>(&'a TcContext);

impl TcFrame<'_> {
    fn skb(&self) -> *mut __sk_buff {
        self.0.skb.skb
    }
}

impl Frame for TcFrame<'_> {
    #[inline(always)]
    fn len(&self) -> usize {
        self.0.len() as usize
    }

    #[inline(always)]
    fn load<const N: usize>(&self, off: usize) -> Option<[u8; N]> {
        crate::pkt::load(self.0.data(), self.0.data_end(), off)
    }

    #[inline(always)]
    fn be32(&self, off: usize) -> Option<u32> {
        crate::pkt::load_be32s::<1>(self.0.data(), self.0.data_end(), off).map(|[w]| w)
    }

    #[inline(always)]
    fn be32s<const N: usize>(&self, off: usize) -> Option<[u32; N]> {
        crate::pkt::load_be32s(self.0.data(), self.0.data_end(), off)
    }

    #[inline(always)]
    fn pull(&self, n: usize) {
        // Port security reads past the Ethernet header: make up to `n` bytes linear when the
        // skb has them and its linear part is shorter (a GSO skb's headers, usually).
        let linear = self.0.data_end().saturating_sub(self.0.data());
        let total = self.0.len() as usize;
        if linear < n && total > linear {
            #[expect(
                clippy::cast_possible_truncation,
                reason = "n is a small header length"
            )]
            let want = total.min(n) as u32;
            // SAFETY: helper on the program's own skb; `load` re-reads data/data_end.
            unsafe { bpf_skb_pull_data(self.skb(), want) };
        }
    }

    #[inline(always)]
    fn offloaded_tag(&self) -> Option<(u16, u16)> {
        let skb = self.skb();
        // All three fields are read whether a tag is present or not, and volatile: else the
        // compiler may leave the `None` payload in whatever register was free (once the skb
        // pointer) and do arithmetic on it, which the verifier refuses.
        // SAFETY: reading fields of the program's own context.
        let (present, tci, proto) = unsafe {
            (
                core::ptr::read_volatile(&raw const (*skb).vlan_present),
                core::ptr::read_volatile(&raw const (*skb).vlan_tci),
                core::ptr::read_volatile(&raw const (*skb).vlan_proto),
            )
        };
        #[expect(
            clippy::cast_possible_truncation,
            reason = "16-bit fields in u32 slots"
        )]
        (present != 0).then(|| (u16::from_be(proto as u16), tci as u16))
    }
}

#[inline(always)]
fn push(skb: *mut __sk_buff, tpid: u16, tci: u16) -> bool {
    // SAFETY: helper on the program's own skb.
    unsafe { bpf_skb_vlan_push(skb, tpid.to_be(), tci) == 0 }
}

#[inline(always)]
fn pop(skb: *mut __sk_buff) -> bool {
    // SAFETY: helper on the program's own skb.
    unsafe { bpf_skb_vlan_pop(skb) == 0 }
}

/// Apply a tag operation; `tpid` is the bridge's (for a rewrite).
#[inline(always)]
fn apply_tag(skb: *mut __sk_buff, op: TagOp, tpid: u16) -> bool {
    match op.kind {
        TagKind::Keep => true,
        TagKind::Pop => pop(skb),
        TagKind::Push => push(skb, op.tpid, op.tci),
        TagKind::Rewrite => pop(skb) && push(skb, tpid, op.tci),
    }
}

/// Ingress of TC-attached ports (and of XDP ports, for what XDP passed up).
#[classifier]
pub fn xennet_tc(ctx: TcContext) -> i32 {
    crate::variant::probe();
    let skb = ctx.skb.skb;
    // Make the headers linear so the parser can read them directly (no-op when they are).
    let linear = ctx.data_end().saturating_sub(ctx.data());
    let total = ctx.len();
    if (linear as u32) < HDR_MAX && total > linear as u32 {
        // SAFETY: helper on the program's own skb.
        unsafe { bpf_skb_pull_data(skb, total.min(HDR_MAX)) };
    }
    let frame = TcFrame(&ctx);
    // Count wire bytes, as XDP does: an offloaded tag is not in skb->len.
    let tag_len = if frame.offloaded_tag().is_some() {
        VLAN_HLEN as u64
    } else {
        0
    };
    let len = u64::from(total) + tag_len;
    // SAFETY: reading a field of the program's own context.
    let ingress = unsafe { (*skb).ifindex };
    // The one lookup of the ingress port: the decision's, handed back for the actions.
    let (mut d, port) = fwd::decide_with_port(&frame, &TcMaps, ingress);
    // Not a port: handed to the host, counted and observed at the one exit below (one copy
    // of the monitor's long aya-log code for the verifier to walk, not two).
    let action = match port {
        None => TC_ACT_OK as i32,
        Some(port) => match act(&ctx, &mut d, port, ingress, len) {
            Ok(action) => action,
            Err(counted) => return counted,
        },
    };
    fwd::account(&Maps, &d, len);
    vstats::account_vlan(&Maps, &d, len);
    monitor::observe(&frame, &Maps, &d, ingress, len);
    action
}

/// Carry out decision `d` for a frame of `len` bytes from port `port` (ifindex `ingress`):
/// the TC action, to be counted at the exit; `d` becomes a drop when the action fails.
/// `Err(action)`: the frame is counted already (XDP passed it up, or the egress port's limit
/// refused it).
#[inline(always)]
fn act(
    ctx: &TcContext,
    d: &mut fwd::Decision,
    port: &PortConf,
    ingress: u32,
    len: u64,
) -> Result<i32, i32> {
    let skb = ctx.skb.skb;
    let (tpid, xdp_port) = (port.tpid, port.flags & PORT_F_XDP != 0);
    if xdp_port {
        // XDP ran first on this frame and counted what its learning did.
        d.learn = None;
    }
    let action = match d.verdict {
        // On an XDP port, XDP already counted what it passed up.
        Verdict::Pass if xdp_port => return Err(TC_ACT_OK as i32),
        Verdict::Pass => TC_ACT_OK as i32,
        Verdict::Drop => TC_ACT_SHOT as i32,
        Verdict::Forward => {
            if d.police_out && !police(&Maps, d.out_slot, Dir::Out, || out_len(len, d.tag)) {
                // The egress port's limit: counted there; the frame's outcome stays.
                fwd::account_refused(&Maps, d, len);
                return Err(TC_ACT_SHOT as i32);
            }
            if !apply_tag(skb, d.tag, tpid) {
                *d = d.into_drop(Stat::DropTagOp);
                TC_ACT_SHOT as i32
            } else {
                // SAFETY: no preconditions.
                let r = unsafe { bpf_redirect(d.egress, 0) };
                if r == i64::from(TC_ACT_REDIRECT) {
                    TC_ACT_REDIRECT as i32
                } else {
                    *d = d.into_drop(Stat::DropRedirect);
                    TC_ACT_SHOT as i32
                }
            }
        }
        Verdict::Flood => {
            if !flood(ctx, d, port, ingress) {
                // The learning happened all the same: `into_drop` keeps it, counted once.
                *d = d.into_drop(Stat::DropTagOp);
            }
            // The copies are tagged: what is left to count reads no tag operation. (Written
            // after the loop, it leaves the loop's states free of the many tag constants.)
            d.tag = TagOp::KEEP;
            // Every copy has been sent; the original is consumed.
            TC_ACT_SHOT as i32
        }
    };
    Ok(action)
}

/// Send a copy to every member of the bridge that carries the VLAN, tagged per member.
/// `inp` is the ingress port (ifindex `ingress`), whose TPID is the bridge's.
///
/// The members are walked by `bpf_loop`: the verifier checks [`flood_member`] once, where an
/// inline loop of [`MAX_TC_FLOOD`] rounds was walked round by round, beyond its budget once
/// port security, limits and per-VLAN counters joined the program.
#[inline(always)]
fn flood(ctx: &TcContext, d: &fwd::Decision, inp: &PortConf, ingress: u32) -> bool {
    let skb = ctx.skb.skb;
    let (bridge, tpid) = (inp.bridge, inp.tpid);
    // Start untagged; push per tagged member, pop again after its copy.
    if (TcFrame(ctx).offloaded_tag().is_some() || has_inline_tag(ctx, tpid)) && !pop(skb) {
        return false;
    }
    let count = Maps
        .member(MemberKey {
            bridge,
            idx: MEMBER_COUNT,
        })
        .unwrap_or(0);
    let Some(w) = XN_FLOODWALK.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: this CPU's copy; nothing else on this CPU runs until the program ends.
    unsafe {
        *w = FloodWalk {
            bridge,
            ingress,
            tpid,
            vlan: d.vlan,
            tci: d.tci,
            base: u64::from(ctx.len()),
            tx_packets: 0,
            tx_bytes: 0,
        };
    }
    let rounds = count.min(MAX_TC_FLOOD);
    // Only the skb pointer goes on the stack (the kernel wants the callback's context there, and
    // the TC program's stack plus port security's is close to 512 bytes); the rest of the walk
    // lives in the per-CPU `XN_FLOODWALK`.
    let mut skb_arg = skb;
    // SAFETY: `flood_member` has the callback signature; `skb_arg` outlives the call.
    let done = unsafe {
        bpf_loop(
            rounds,
            flood_member as *mut c_void,
            core::ptr::from_mut(&mut skb_arg).cast(),
            0,
        )
    };
    // A round that returns 1 (a tag operation failed) ends the walk early.
    if done != i64::from(rounds) {
        return false;
    }
    if count > MAX_TC_FLOOD {
        fwd::count(&Maps, d.in_slot, Stat::FloodTruncated);
    }
    // SAFETY: as above.
    let (tx_packets, tx_bytes) = unsafe { ((*w).tx_packets, (*w).tx_bytes) };
    if tx_packets != 0 {
        let key = VlanKey {
            bridge,
            vlan: u32::from(d.vlan),
        };
        vstats::account_vlan_tx(&Maps, key, tx_packets, tx_bytes);
    }
    true
}

/// One round of the flood walk: the copy for member `i` of the bridge in [`XN_FLOODWALK`], if it
/// carries the VLAN. `arg` points at the skb pointer. Returns 0 to go on, 1 to stop (a tag
/// operation failed: the frame is a drop).
extern "C" fn flood_member(i: u64, arg: *mut c_void) -> i64 {
    // SAFETY: `bpf_loop` hands back the pointer to the skb pointer that `flood` passed.
    let skb = unsafe { *arg.cast::<*mut __sk_buff>() };
    let Some(w) = XN_FLOODWALK.get_ptr_mut(0) else {
        return 1;
    };
    // SAFETY: this CPU's copy, filled by `flood` before the walk.
    let w = unsafe { &mut *w };
    #[expect(clippy::cast_possible_truncation, reason = "i < MAX_TC_FLOOD")]
    let idx = i as u32;
    let Some(m) = Maps.member(MemberKey {
        bridge: w.bridge,
        idx,
    }) else {
        return 0;
    };
    if m == w.ingress {
        return 0;
    }
    let Some(out) = Maps.port(m) else { return 0 };
    let Some(tagged) = fwd::member_egress(w.bridge, out, w.vlan) else {
        return 0;
    };
    let slot = out.slot;
    let copy_len = w.base + if tagged { VLAN_HLEN as u64 } else { 0 };
    if out.flags & PORT_F_RATE != 0 && !police(&Maps, slot, Dir::Out, || copy_len) {
        fwd::count(&Maps, slot, Stat::DropRateLimit);
        return 0;
    }
    if tagged && !push(skb, w.tpid, w.tci) {
        return 1;
    }
    // SAFETY: helper on the program's own skb.
    let ok = unsafe { bpf_clone_redirect(skb, m, 0) } == 0;
    if tagged && !pop(skb) {
        return 1;
    }
    if ok {
        fwd::account_tx(&Maps, slot, copy_len);
        w.tx_packets += 1;
        w.tx_bytes += copy_len;
    } else {
        fwd::count(&Maps, slot, Stat::DropRedirect);
    }
    0
}

/// Length of a frame of `len` bytes after the tag operation `op`.
#[inline(always)]
fn out_len(len: u64, op: TagOp) -> u64 {
    len.saturating_add_signed(op.len_delta())
}

/// Whether the frame carries its outer tag in the bytes (not offloaded).
#[inline(always)]
fn has_inline_tag(ctx: &TcContext, tpid: u16) -> bool {
    TcFrame(ctx)
        .load::<2>(12)
        .is_some_and(|t| u16::from_be_bytes(t) == tpid)
}

// The member list lives in `maps.rs`; keep the accessor next to the other map bindings.
impl Maps {
    #[inline(always)]
    fn member(&self, key: MemberKey) -> Option<u32> {
        // SAFETY: read-only copy of a map value.
        unsafe { XN_MEMBERS.get(&key) }.copied()
    }
}
