//! The XDP program: decide with the shared core, then redirect with the egress port's tagging.

use aya_ebpf::{
    bindings::xdp_action::{XDP_DROP, XDP_PASS},
    helpers::{bpf_xdp_adjust_head, bpf_xdp_adjust_meta, bpf_xdp_get_buff_len},
    macros::xdp,
    programs::XdpContext,
};
use xennet_common::{
    VLAN_HLEN,
    fwd::{self, TagKind, TagOp, Verdict},
    maps::XDP_META_TAG_RESTORED,
    monitor,
    rate::{Dir, police},
    stats::Stat,
    vstats::{self, VlanKey},
};

use crate::{
    maps::{FLOOD_FLAGS, Maps, XN_FLOOD, XN_FLOODG, XN_TX},
    pkt::XdpFrame,
};

/// A pointer to the first `N` bytes of the frame, bounds-checked.
#[inline(always)]
fn head<const N: usize>(ctx: &XdpContext) -> Option<*mut [u8; N]> {
    let start = ctx.data();
    if start + N > ctx.data_end() {
        return None;
    }
    Some(start as *mut [u8; N])
}

/// Apply the egress tag operation to the frame in place.
#[inline(always)]
fn apply_tag(ctx: &XdpContext, op: TagOp) -> Result<(), ()> {
    let (tpid, tci) = (op.tpid, op.tci);
    match op.kind {
        TagKind::Keep => Ok(()),
        TagKind::Rewrite => {
            let p = head::<16>(ctx).ok_or(())?;
            // SAFETY: 16 bytes in bounds; TCI sits at 14..16.
            unsafe {
                core::ptr::write_unaligned(
                    p.cast::<u8>().add(14).cast::<[u8; 2]>(),
                    tci.to_be_bytes(),
                )
            };
            Ok(())
        }
        TagKind::Pop => {
            let p = head::<16>(ctx).ok_or(())?;
            // SAFETY: 16 bytes in bounds. Copy the MACs over the tag, then drop 4 bytes of head.
            unsafe {
                let macs = core::ptr::read_unaligned(p.cast::<[u8; 12]>());
                core::ptr::write_unaligned(p.cast::<u8>().add(VLAN_HLEN).cast::<[u8; 12]>(), macs);
            }
            // SAFETY: ctx is the program's own context.
            if unsafe { bpf_xdp_adjust_head(ctx.ctx, VLAN_HLEN as i32) } != 0 {
                return Err(());
            }
            Ok(())
        }
        TagKind::Push => {
            // SAFETY: ctx is the program's own context.
            if unsafe { bpf_xdp_adjust_head(ctx.ctx, -(VLAN_HLEN as i32)) } != 0 {
                return Err(());
            }
            let p = head::<16>(ctx).ok_or(())?;
            // SAFETY: 16 bytes in bounds after growing the head by 4.
            unsafe {
                let macs =
                    core::ptr::read_unaligned(p.cast::<u8>().add(VLAN_HLEN).cast::<[u8; 12]>());
                core::ptr::write_unaligned(p.cast::<[u8; 12]>(), macs);
                let t = tpid.to_be_bytes();
                let c = tci.to_be_bytes();
                core::ptr::write_unaligned(
                    p.cast::<u8>().add(12).cast::<[u8; 4]>(),
                    [t[0], t[1], c[0], c[1]],
                );
            }
            Ok(())
        }
    }
}

/// Whether the device-bound VLAN prologue put this frame's tag back from the driver's hint
/// (its mark in the XDP metadata); the mark is removed, so that no redirected copy carries it.
#[inline(always)]
fn take_restored_mark(ctx: &XdpContext) -> bool {
    let (meta, data) = (ctx.metadata(), ctx.data());
    if meta + 4 > data {
        return false;
    }
    // SAFETY: 4 bytes of metadata, checked against the start of the frame just above.
    let mark = unsafe { core::ptr::read_unaligned(meta as *const u32) };
    if mark != XDP_META_TAG_RESTORED {
        return false;
    }
    // SAFETY: helper on the program's own context; shrinks the metadata by the 4 bytes read.
    unsafe { bpf_xdp_adjust_meta(ctx.ctx, 4) };
    true
}

/// Before an `XDP_PASS`: take a restored tag out of the frame again (the skb the kernel
/// builds still carries it in `vlan_tci`, where TC reads it); `false` if that failed.
/// Functions of their own (BPF-to-BPF calls), called where the frame leaves: a flag kept
/// alive across the program changed its register allocation into one the verifier rejects.
#[inline(never)]
fn untag_restored(ctx: &XdpContext) -> bool {
    !take_restored_mark(ctx) || apply_tag(ctx, TagOp::POP).is_ok()
}

/// Before a redirect: drop the prologue's mark, if any (the tag stays in the frame).
#[inline(never)]
fn unmark(ctx: &XdpContext) {
    take_restored_mark(ctx);
}

/// Send a copy of the frame to every port of the flood group of {`bridge`, `vlan`} but the
/// ingress; to every XDP port (`XN_FLOOD`, whose egress program drops what may not go) when
/// the agent has no group for it.
#[inline(always)]
fn flood(bridge: u32, vlan: u16) -> Result<u32, u32> {
    let key = VlanKey {
        bridge,
        vlan: u32::from(vlan),
    };
    // SAFETY: the inner map is only used as a redirect target (its address), never read.
    match unsafe { XN_FLOODG.get(&key) } {
        Some(group) => group.redirect(0, FLOOD_FLAGS),
        None => XN_FLOOD.redirect(0, FLOOD_FLAGS),
    }
}

/// Ingress of every XDP-attached port. Multi-buffer aware (`xdp.frags`), so jumbo-MTU ports
/// can run it: only the headers, always in the first buffer, are read or moved.
#[xdp(frags)]
pub fn xennet_xdp(ctx: XdpContext) -> u32 {
    crate::variant::probe();
    let frame = XdpFrame(&ctx);
    // Every buffer of a multi-buffer (jumbo) frame, not just the first.
    // SAFETY: helper on the program's own context.
    let len = unsafe { bpf_xdp_get_buff_len(ctx.ctx) };
    // The kernel gives a u32 ifindex; the accessor widens it.
    #[expect(
        clippy::cast_possible_truncation,
        reason = "ifindex is a u32 in xdp_md"
    )]
    let ingress = ctx.ingress_ifindex() as u32;
    let mut d = fwd::decide(&frame, &Maps, ingress);
    if d.defer_to_tc && matches!(d.verdict, Verdict::Forward | Verdict::Flood) {
        // Unchanged, to the TC program of this device, which decides again and counts the
        // frame. The learning already happened here, so count it here (TC will only refresh).
        if let Some(l) = d.learn {
            fwd::count(&Maps, d.in_slot, l);
        }
        if !untag_restored(&ctx) {
            return XDP_DROP;
        }
        return XDP_PASS;
    }
    if d.verdict == Verdict::Forward
        && d.police_out
        && !police(&Maps, d.out_slot, Dir::Out, || {
            len.saturating_add_signed(d.tag.len_delta())
        })
    {
        // The egress port's limit: counted there; the frame's outcome stays.
        fwd::account_refused(&Maps, &d, len);
        return XDP_DROP;
    }
    let action = match d.verdict {
        Verdict::Pass => {
            if !untag_restored(&ctx) {
                d = d.into_drop(Stat::DropTagOp);
                XDP_DROP
            } else {
                XDP_PASS
            }
        }
        Verdict::Drop => XDP_DROP,
        Verdict::Forward | Verdict::Flood => {
            // Only the device-bound prologue leaves metadata: skip the call without it.
            if ctx.metadata() < ctx.data() {
                unmark(&ctx);
            }
            let redirect = if d.verdict == Verdict::Forward {
                apply_tag(&ctx, d.tag).map(|()| XN_TX.redirect(d.egress, 0))
            } else {
                apply_tag(&ctx, d.tag).map(|()| flood(d.bridge, d.vlan))
            };
            match redirect {
                Err(()) => {
                    d = d.into_drop(Stat::DropTagOp);
                    XDP_DROP
                }
                Ok(Ok(a)) => a,
                Ok(Err(_)) => {
                    d = d.into_drop(Stat::DropRedirect);
                    XDP_DROP
                }
            }
        }
    };
    fwd::account(&Maps, &d, len);
    vstats::account_vlan(&Maps, &d, len);
    monitor::observe(&frame, &Maps, &d, ingress, len);
    action
}

/// Devmap egress program of the flood groups and of `XN_FLOOD`: finishes one flooded copy for
/// its port (pop the tag for an untagged VLAN, keep it on a trunk) or drops it (other bridge,
/// VLAN not carried: only copies through `XN_FLOOD`, or of a group being rewritten).
#[xdp(frags, map = "devmap")]
pub fn xennet_flood_out(ctx: XdpContext) -> u32 {
    let frame = XdpFrame(&ctx);
    // SAFETY: helper on the program's own context.
    let len = unsafe { bpf_xdp_get_buff_len(ctx.ctx) };
    // SAFETY: reading fields of the program's own context.
    let (ingress, egress) = unsafe { ((*ctx.ctx).ingress_ifindex, (*ctx.ctx).egress_ifindex) };
    let Some(copy) = fwd::flood_copy(&frame, &Maps, ingress, egress) else {
        return XDP_DROP;
    };
    if !police(&Maps, copy.slot, Dir::Out, || {
        len.saturating_add_signed(copy.op.len_delta())
    }) {
        fwd::count(&Maps, copy.slot, Stat::DropRateLimit);
        return XDP_DROP;
    }
    if apply_tag(&ctx, copy.op).is_err() {
        fwd::count(&Maps, copy.slot, Stat::DropTagOp);
        return XDP_DROP;
    }
    let sent = len.saturating_add_signed(copy.op.len_delta());
    fwd::account_tx(&Maps, copy.slot, sent);
    vstats::account_vlan_tx(&Maps, copy.vlan, 1, sent);
    XDP_PASS
}

/// Passes everything: attached to the dom0 side of a host port so that it can receive native
/// XDP redirects (a veth needs an XDP program or GRO on the receiving end).
#[xdp(frags)]
pub fn xennet_pass(_ctx: XdpContext) -> u32 {
    XDP_PASS
}
