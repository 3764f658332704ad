//! What the benchmark's eBPF object (`xennet-bench`) and `cargo xtask bench` share: the
//! generator's configuration, the counters of the sinks, and the program and map names.
//!
//! The agent never loads this object; its names start with `xnb_` / `XNB_`, so that they can
//! never be confused with the datapath's.

/// The generator's configuration map: one [`GenConf`]. Array.
pub const MAP_GEN: &str = "XNB_GEN";
/// The generator's frame sequence number (`u64`, per CPU). Per-CPU array of one.
pub const MAP_SEQ: &str = "XNB_SEQ";
/// The sinks' counters (`u64`, per CPU) at [`SINK_FRAMES`] and [`SINK_BYTES`]. Per-CPU array.
pub const MAP_SINK: &str = "XNB_SINK";
/// The ceiling's unicast targets: ingress ifindex → egress ifindex. Devmap (hash).
pub const MAP_CEIL_TX: &str = "XNB_TX";
/// The ceiling's flood group: every port. Devmap (hash).
pub const MAP_CEIL_ALL: &str = "XNB_ALL";

/// Index of the frame count in `XNB_SINK`.
pub const SINK_FRAMES: u32 = 0;
/// Index of the byte count in `XNB_SINK`.
pub const SINK_BYTES: u32 = 1;

/// The generator (live-frame `BPF_PROG_TEST_RUN`).
pub const PROG_GEN: &str = "xnb_gen";
/// The sink behind the device under test: counts and drops.
pub const PROG_SINK: &str = "xnb_sink";
/// The ceiling, unicast: a bare devmap redirect by ingress ifindex.
pub const PROG_CEIL: &str = "xnb_ceil";
/// The ceiling, flood: a devmap broadcast to every other port.
pub const PROG_CEIL_BC: &str = "xnb_ceil_bc";
/// The TC ceiling: a bare `bpf_redirect` to the port [`MAP_TC_TX`] gives for the ingress.
pub const PROG_TC_CEIL: &str = "xnb_tc_ceil";
/// Ladder step: the ceiling plus the monitor's switch, off (what the monitor costs when off).
pub const PROG_CEIL_MON: &str = "xnb_ceil_mon";
/// The TC ceiling's egress ifindex by ingress ifindex (`u32` → `u32`). Hash.
pub const MAP_TC_TX: &str = "XNB_TC_TX";
/// Ladder step 1: VLAN-aware lookup only.
pub const PROG_L1_LOOKUP: &str = "xnb_l1_lookup";

/// Prefix of every program of the bench object.
pub const PROG_PREFIX: &str = "xnb_";
/// Prefix of every map that only the bench object has.
pub const MAP_PREFIX: &str = "XNB_";

/// What the generator writes into each frame (the one entry of `XNB_GEN`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct GenConf {
    /// Destination MAC; its last two bytes get `seq & dst_mask` added (big-endian).
    pub dst: [u8; 6],
    /// Source MAC; its last two bytes get `(seq >> 4) & src_mask` added.
    pub src: [u8; 6],
    /// Number of destinations − 1 (a power of two − 1).
    pub dst_mask: u32,
    /// Number of sources − 1 (a power of two − 1).
    pub src_mask: u32,
    /// 802.1Q TCI to write at bytes 14..16 after a 0x8100 TPID; 0 = untagged frame.
    pub tci: u32,
    /// Reserved, zero.
    pub flags: u32,
}

impl GenConf {
    /// Destination and source MAC of frame number `seq`. Sources change more slowly than
    /// destinations, so that the pairs cover both sets.
    #[expect(clippy::inline_always, reason = "eBPF: the generator must be inlined")]
    #[inline(always)]
    #[must_use]
    pub fn macs(&self, seq: u32) -> ([u8; 6], [u8; 6]) {
        (
            add16(self.dst, seq & self.dst_mask),
            add16(self.src, (seq >> 4) & self.src_mask),
        )
    }
}

/// `mac` with `n` added to its last two bytes (big-endian, wrapping; `n` is taken mod 2¹⁶).
#[expect(clippy::inline_always, reason = "eBPF: the generator must be inlined")]
#[inline(always)]
#[must_use]
pub fn add16(mac: [u8; 6], n: u32) -> [u8; 6] {
    #[expect(clippy::cast_possible_truncation, reason = "mod 2^16 by definition")]
    let lo = u16::from_be_bytes([mac[4], mac[5]]).wrapping_add(n as u16);
    let b = lo.to_be_bytes();
    [mac[0], mac[1], mac[2], mac[3], b[0], b[1]]
}

#[cfg(feature = "user")]
// SAFETY: repr(C), integer fields only, no padding (12 + 4 × 4 bytes).
unsafe impl aya::Pod for GenConf {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gen_conf_matches_the_kernel_layout() {
        assert_eq!(core::mem::size_of::<GenConf>(), 28);
        assert_eq!(core::mem::align_of::<GenConf>(), 4);
    }

    #[test]
    fn mac_offsets() {
        assert_eq!(add16([2, 0, 0, 0, 0x00, 0xff], 1), [2, 0, 0, 0, 0x01, 0x00]);
        assert_eq!(add16([2, 0, 0, 0, 0xff, 0xff], 1), [2, 0, 0, 0, 0, 0]);
        assert_eq!(add16([2, 0, 0, 0, 0, 0], 0x1_0001), [2, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn generated_macs() {
        let c = GenConf {
            dst: [2, 0, 0, 0, 0, 0],
            src: [2, 1, 0, 0, 0, 0],
            dst_mask: 3,
            src_mask: 1,
            tci: 0,
            flags: 0,
        };
        assert_eq!(c.macs(0), ([2, 0, 0, 0, 0, 0], [2, 1, 0, 0, 0, 0]));
        assert_eq!(c.macs(5), ([2, 0, 0, 0, 0, 1], [2, 1, 0, 0, 0, 0]));
        assert_eq!(c.macs(16 + 7), ([2, 0, 0, 0, 0, 3], [2, 1, 0, 0, 0, 1]));
    }
}
