//! The way out of a flooded copy: which ports of the bridge get it and with which tag
//! operation — the one rule the XDP devmap egress and the TC flood walk both apply.

use super::{Frame, Tables, TagOp, parse};
use crate::{maps::PortConf, vstats::VlanKey};

/// For one flooded copy (tagged with its VLAN by the ingress side) about to leave through
/// `egress`: the tag operation for that port, or `None` to drop the copy (another bridge, or
/// a VLAN the port does not carry). Also returns the egress stats slot.
#[inline(always)]
pub fn flood_egress<F: Frame, T: Tables>(
    f: &F,
    t: &T,
    ingress: u32,
    egress: u32,
) -> Option<(TagOp, u32)> {
    flood_copy(f, t, ingress, egress).map(|c| (c.op, c.slot))
}

/// One flooded copy's way out: what [`flood_copy`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FloodCopy {
    /// Tag operation for the egress port.
    pub op: TagOp,
    /// Stats slot of the egress port.
    pub slot: u32,
    /// The copy's bridge and VLAN (for the per-VLAN counters).
    pub vlan: VlanKey,
}

/// [`flood_egress`], with the copy's bridge and VLAN.
#[inline(always)]
pub fn flood_copy<F: Frame, T: Tables>(
    f: &F,
    t: &T,
    ingress: u32,
    egress: u32,
) -> Option<FloodCopy> {
    let out = t.port_fast(egress)?;
    let inp = t.port_fast(ingress)?;
    let tag = match parse(f).map(|h| h.outer.get()) {
        Ok(Some(tag)) if tag.tpid == out.tpid => tag,
        _ => return None,
    };
    let tagged = member_egress(inp.bridge, out, tag.vid())?;
    let op = if tagged { TagOp::KEEP } else { TagOp::POP };
    Some(FloodCopy {
        op,
        slot: out.slot,
        vlan: VlanKey {
            bridge: out.bridge,
            vlan: u32::from(tag.vid()),
        },
    })
}

/// Whether a flood of VLAN `vid` from a port of `bridge` goes out of port `out`, and if so
/// whether tagged (`Some(true)`) or untagged (`Some(false)`). The one rule both flood paths
/// (XDP devmap egress, TC clone loop) apply.
#[inline(always)]
#[must_use]
pub fn member_egress(bridge: u32, out: &PortConf, vid: u16) -> Option<bool> {
    if out.bridge != bridge || vid == 0 || !out.carries(vid) {
        return None;
    }
    Some(vid != out.pvid)
}
