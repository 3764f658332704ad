//! Programs for `cargo xtask bench` only; the agent never loads or attaches them.
//!
//! * `xnb_gen`: the traffic generator, run through `BPF_PROG_TEST_RUN` with
//!   `BPF_F_TEST_XDP_LIVE_FRAMES`: it (re)writes the Ethernet header of each frame — the
//!   live-frame pages are recycled, and a forwarder under test may have pushed or popped a tag
//!   in them — and returns `XDP_TX`, which sends the frame out of the generator's veth.
//! * `xnb_sink`: attached behind the device under test; counts frames and bytes, drops them.
//! * `xnb_ceil` / `xnb_ceil_bc`: the ceiling, a bare devmap redirect with no parsing at all
//!   (unicast: by ingress ifindex; flood: broadcast to every other port).
//! * `xnb_l1_lookup`, `xnb_l2_learn`, `xnb_l3_clock`: a ladder between the ceiling and
//!   `xennet_xdp` (which adds the counters on top of `xnb_l3_clock`), to attribute the per-frame
//!   cost; run without live frames, for the program's own run time.
//!
//! They make the object `xennet-bench` (see `bench_main.rs`), which the agent never loads.
//! Map and program names start with `XNB_` / `xnb_` (the names and [`GenConf`] are in
//! `xennet_common::bench`, shared with xtask); the ladder uses this object's own copy of the
//! datapath maps (`XN_*`), which the bench fills like the agent would.

use aya_ebpf::{
    bindings::xdp_action::{XDP_DROP, XDP_PASS, XDP_TX},
    macros::{map, xdp},
    maps::{Array, DevMapHash, PerCpuArray},
    programs::XdpContext,
};
use xennet_common::{
    bench::{GenConf, SINK_BYTES, SINK_FRAMES},
    fwd::{self, Put, Tables, TagOp, Verdict},
    maps::{FdbKey, FdbVal, PortConf},
    stats::PortStats,
};

use crate::{
    maps::{FLOOD_FLAGS, Maps, XN_TX},
    pkt::XdpFrame as Bytes,
};

/// The generator's configuration (one entry).
#[map]
static XNB_GEN: Array<GenConf> = Array::with_max_entries(1, 0);

/// The generator's frame sequence number (per CPU).
#[map]
static XNB_SEQ: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Sink counters: frames and bytes (per CPU; every sink interface adds here).
#[map]
static XNB_SINK: PerCpuArray<u64> = PerCpuArray::with_max_entries(2, 0);

/// Ceiling, unicast: ingress ifindex → egress ifindex.
#[map]
static XNB_TX: DevMapHash = DevMapHash::with_max_entries(64, 0);

/// Ceiling, flood: every port.
#[map]
static XNB_ALL: DevMapHash = DevMapHash::with_max_entries(64, 0);

/// Generator: rewrite the header, send the frame back out of its device.
#[xdp]
pub fn xnb_gen(ctx: XdpContext) -> u32 {
    let Some(conf) = XNB_GEN.get(0) else {
        return XDP_DROP;
    };
    let Some(seq) = XNB_SEQ.get_ptr_mut(0) else {
        return XDP_DROP;
    };
    // SAFETY: this CPU's copy; the generator runs on one CPU at a time.
    let n = unsafe {
        let n = *seq;
        *seq = n.wrapping_add(1);
        n as u32
    };
    let start = ctx.data();
    if start + 18 > ctx.data_end() {
        return XDP_DROP;
    }
    let (dst, src) = conf.macs(n);
    // SAFETY: 18 bytes in bounds (checked above).
    unsafe {
        let p = start as *mut u8;
        core::ptr::write_unaligned(p.cast::<[u8; 6]>(), dst);
        core::ptr::write_unaligned(p.add(6).cast::<[u8; 6]>(), src);
        if conf.tci != 0 {
            let t = (conf.tci as u16).to_be_bytes();
            core::ptr::write_unaligned(p.add(12).cast::<[u8; 4]>(), [0x81, 0x00, t[0], t[1]]);
        }
    }
    XDP_TX
}

/// Sink: count, drop.
#[xdp]
pub fn xnb_sink(ctx: XdpContext) -> u32 {
    let len = (ctx.data_end() - ctx.data()) as u64;
    if let Some(p) = XNB_SINK.get_ptr_mut(SINK_FRAMES) {
        // SAFETY: this CPU's copy, no concurrent writer on this CPU.
        unsafe { *p += 1 };
    }
    if let Some(p) = XNB_SINK.get_ptr_mut(SINK_BYTES) {
        // SAFETY: as above.
        unsafe { *p += len };
    }
    XDP_DROP
}

/// Ceiling, unicast: redirect by ingress ifindex, nothing else.
#[xdp]
pub fn xnb_ceil(ctx: XdpContext) -> u32 {
    #[expect(
        clippy::cast_possible_truncation,
        reason = "ifindex is a u32 in xdp_md"
    )]
    let ingress = ctx.ingress_ifindex() as u32;
    XNB_TX.redirect(ingress, 0).unwrap_or(XDP_DROP)
}

/// Ceiling, flood: a copy to every other port, nothing else.
#[xdp]
pub fn xnb_ceil_bc(_ctx: XdpContext) -> u32 {
    XNB_ALL.redirect(0, FLOOD_FLAGS).unwrap_or(XDP_DROP)
}

/// Ladder step 1: VLAN-aware lookup only — ingress port, parse, classify, FDB lookup of the
/// destination, egress port checks, redirect. No learning, no clock, no counters; frames that
/// would need a tag operation are dropped (the ladder uses untagged access → access frames).
#[xdp]
pub fn xnb_l1_lookup(ctx: XdpContext) -> u32 {
    #[expect(
        clippy::cast_possible_truncation,
        reason = "ifindex is a u32 in xdp_md"
    )]
    let ingress = ctx.ingress_ifindex() as u32;
    let Some(port) = Maps.port(ingress) else {
        return XDP_PASS;
    };
    let Ok(hdr) = fwd::parse(&Bytes(&ctx)) else {
        return XDP_DROP;
    };
    if hdr.src[0] & 1 != 0 || hdr.outer.is_some() || port.pvid == 0 || hdr.dst[0] & 1 != 0 {
        return XDP_PASS;
    }
    let vlan = port.pvid;
    let key = FdbKey {
        mac: hdr.dst,
        vlan,
        bridge: port.bridge,
    };
    let Some(e) = Maps.fdb(&key) else {
        return XDP_PASS;
    };
    let Some(out) = Maps.port(e.ifindex) else {
        return XDP_DROP;
    };
    if e.ifindex == ingress || out.bridge != port.bridge || !out.carries(vlan) || out.pvid != vlan {
        return XDP_DROP;
    }
    XN_TX.redirect(e.ifindex, 0).unwrap_or(XDP_DROP)
}

/// The maps with a frozen clock: `learn()` without reading the clock. Only meaningful for
/// sources whose entries are static (a learned entry would be refreshed on every frame).
struct NoClock;

impl Tables for NoClock {
    #[inline(always)]
    fn port(&self, ifindex: u32) -> Option<&PortConf> {
        Maps.port(ifindex)
    }
    #[inline(always)]
    fn fdb(&self, key: &FdbKey) -> Option<FdbVal> {
        Maps.fdb(key)
    }
    #[inline(always)]
    fn fdb_put(&self, key: &FdbKey, val: &FdbVal, put: Put) -> bool {
        Maps.fdb_put(key, val, put)
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
        0
    }
    #[inline(always)]
    fn with_stats<F: FnOnce(&mut PortStats)>(&self, slot: u32, f: F) {
        Maps.with_stats(slot, f);
    }
}

/// `decide()` and the redirect, no counters; tag operations other than `Keep` are dropped.
#[inline(always)]
fn decide_redirect<T: Tables>(ctx: &XdpContext, t: &T) -> u32 {
    #[expect(
        clippy::cast_possible_truncation,
        reason = "ifindex is a u32 in xdp_md"
    )]
    let ingress = ctx.ingress_ifindex() as u32;
    let d = fwd::decide(&Bytes(ctx), t, ingress);
    match d.verdict {
        Verdict::Forward if d.tag == TagOp::Keep => XN_TX.redirect(d.egress, 0).unwrap_or(XDP_DROP),
        Verdict::Pass => XDP_PASS,
        _ => XDP_DROP,
    }
}

/// Ladder step 2: step 1 + the learning lookup of the source (the real `decide()`), with a
/// frozen clock.
#[xdp]
pub fn xnb_l2_learn(ctx: XdpContext) -> u32 {
    decide_redirect(&ctx, &NoClock)
}

/// Ladder step 3: the real `decide()` (learning with the real clock read), no counters.
/// `xennet_xdp` is this plus `account()`.
#[xdp]
pub fn xnb_l3_clock(ctx: XdpContext) -> u32 {
    decide_redirect(&ctx, &Maps)
}
