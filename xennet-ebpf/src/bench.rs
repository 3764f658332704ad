//! Programs for `cargo xtask bench` only; the agent never loads or attaches them.
//!
//! * `xnb_gen`: the traffic generator, run through `BPF_PROG_TEST_RUN` with
//!   `BPF_F_TEST_XDP_LIVE_FRAMES`: it (re)writes the Ethernet header of each frame — the
//!   live-frame pages are recycled, and a forwarder under test may have pushed or popped a tag
//!   in them — and returns `XDP_TX`, which sends the frame out of the generator's veth.
//! * `xnb_sink`: attached behind the device under test; counts frames and bytes, drops them.
//! * `xnb_ceil` / `xnb_ceil_bc`: the ceiling, a bare devmap redirect with no parsing at all
//!   (unicast: by ingress ifindex; flood: broadcast to every other port).
//! * `xnb_ceil_mon`: the ceiling plus the drop monitor's switch, off (its cost when off).
//! * `xnb_tc_ceil`: the TC ceiling, a bare `bpf_redirect` by ingress ifindex (the ladder's
//!   TC part and the bench's `tc-ceiling` path).
//! * `xnb_l1_lookup`: a ladder step between the ceiling and `xennet_xdp` (which adds the
//!   learning lookup, the clock and the counters), to attribute the per-frame cost; run
//!   without live frames, for the program's own run time. (The steps that ran `decide()`
//!   without `account()` are gone: compiled alone, `decide()` came out with a speculated read
//!   of an absent tag's undefined bytes that the verifier refused.)
//!
//! They make the object `xennet-bench` (see `bench_main.rs`), which the agent never loads.
//! Map and program names start with `XNB_` / `xnb_` (the names and [`GenConf`] are in
//! `xennet_common::bench`, shared with xtask); the ladder uses this object's own copy of the
//! datapath maps (`XN_*`), which the bench fills like the agent would.

use aya_ebpf::{
    bindings::{
        TC_ACT_SHOT,
        xdp_action::{XDP_DROP, XDP_PASS, XDP_TX},
    },
    helpers::bpf_redirect,
    macros::{classifier, map, xdp},
    maps::{Array, DevMapHash, HashMap, PerCpuArray},
    programs::{TcContext, XdpContext},
};
use xennet_common::{
    bench::{GenConf, SINK_BYTES, SINK_FRAMES},
    fwd::{self, Tables, TagOp, Verdict},
    maps::FdbKey,
    monitor,
    stats::Stat,
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

/// TC ceiling: ingress ifindex → egress ifindex.
#[map]
static XNB_TC_TX: HashMap<u32, u32> = HashMap::with_max_entries(64, 0);

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

/// Ladder step: the unicast ceiling plus the drop monitor's check, exactly as the datapath's
/// exit runs it (`monitor::observe`). With the switch off (the bench never turns it on) the
/// difference to `xnb_ceil` is what the monitor costs every frame while nobody watches.
#[xdp]
pub fn xnb_ceil_mon(ctx: XdpContext) -> u32 {
    #[expect(
        clippy::cast_possible_truncation,
        reason = "ifindex is a u32 in xdp_md"
    )]
    let ingress = ctx.ingress_ifindex() as u32;
    let len = (ctx.data_end() - ctx.data()) as u64;
    let d = fwd::Decision {
        verdict: Verdict::Forward,
        stat: Stat::Forward,
        in_slot: 0,
        egress: ingress,
        out_slot: 0,
        tag: TagOp::KEEP,
        vlan: 0,
        bridge: 0,
        learn: None,
        tci: 0,
        defer_to_tc: false,
        police_out: false,
    };
    monitor::observe(&Bytes(&ctx), &Maps, &d, ingress, len);
    XNB_TX.redirect(ingress, 0).unwrap_or(XDP_DROP)
}

/// TC ceiling: `bpf_redirect` by ingress ifindex, nothing else (the bare tcx redirect
/// xennet's TC program is measured against, like `xnb_ceil` in XDP).
#[classifier]
pub fn xnb_tc_ceil(ctx: TcContext) -> i32 {
    // SAFETY: reading a field of the program's own context.
    let ingress = unsafe { (*ctx.skb.skb).ifindex };
    // SAFETY: the value is a plain u32, copied out at once.
    match unsafe { XNB_TC_TX.get(&ingress) } {
        // SAFETY: no preconditions.
        #[expect(clippy::cast_possible_truncation, reason = "TC_ACT_REDIRECT is 7")]
        Some(to) => unsafe { bpf_redirect(*to, 0) as i32 },
        None => TC_ACT_SHOT as i32,
    }
}

/// Ceiling, flood: a copy to every other port, nothing else.
#[xdp]
pub fn xnb_ceil_bc(_ctx: XdpContext) -> u32 {
    XNB_ALL.redirect(0, FLOOD_FLAGS).unwrap_or(XDP_DROP)
}

/// Ladder step 1: VLAN-aware lookup only — ingress port, parse, classify, FDB lookup of the
/// destination, egress port checks, redirect, each found as the datapath finds it (ports
/// through the slot arrays, not the port hash). No learning, no clock, no counters; frames
/// that would need a tag operation are dropped (the ladder uses untagged access → access
/// frames).
#[xdp]
pub fn xnb_l1_lookup(ctx: XdpContext) -> u32 {
    #[expect(
        clippy::cast_possible_truncation,
        reason = "ifindex is a u32 in xdp_md"
    )]
    let ingress = ctx.ingress_ifindex() as u32;
    let Some(port) = Maps.port_fast(ingress) else {
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
    let Some(out) = Maps.port_at(u32::from(e.slot)) else {
        return XDP_DROP;
    };
    if e.ifindex == ingress
        || out.ifindex != e.ifindex
        || out.bridge != port.bridge
        || !out.carries(vlan)
        || out.pvid != vlan
    {
        return XDP_DROP;
    }
    XN_TX.redirect(e.ifindex, 0).unwrap_or(XDP_DROP)
}
