//! Bounds-checked reads of packet bytes, shared by the XDP and TC bindings of the core and by
//! the bench programs.

use aya_ebpf::programs::XdpContext;
use xennet_common::fwd::Frame;

/// `N` bytes at `off` of the packet `[start, end)`, or `None` when they are not all inside.
/// Inlined with constant `off` and `N`, it is the comparison the verifier wants to see.
#[inline(always)]
pub(crate) fn load<const N: usize>(start: usize, end: usize, off: usize) -> Option<[u8; N]> {
    if start + off + N > end {
        return None;
    }
    // SAFETY: bounds checked just above, against the packet's own end.
    Some(unsafe { core::ptr::read_unaligned((start + off) as *const [u8; N]) })
}

/// `N` big-endian `u32`s from `off` on of the packet `[start, end)`, one 32-bit load each
/// after one bounds check, or `None` when they are not all inside.
///
/// `read_unaligned` of 4 bytes becomes four byte loads and shifts on the bpf target (LLVM may
/// not assume the target loads unaligned words), and a `u32` read through `ptr::read` would
/// claim an alignment the packet does not have (an IPv4 header sits at offset 14). The loads
/// are written in BPF assembly instead: the verifier allows unaligned packet loads where the
/// architecture does (`CONFIG_HAVE_EFFICIENT_UNALIGNED_ACCESS`: x86-64, arm64), as it does
/// for every C program that reads `iph->saddr`.
#[inline(always)]
pub(crate) fn load_be32s<const N: usize>(start: usize, end: usize, off: usize) -> Option<[u32; N]> {
    let p = start + off;
    if p + 4 * N > end {
        return None;
    }
    let mut w = [0; N];
    let mut i = 0;
    while i < N {
        let v: u64;
        // SAFETY: the 4 * N bytes from `p` on are inside the packet (checked above).
        unsafe {
            core::arch::asm!(
                "{v} = *(u32 *)({p} + 0)",
                v = lateout(reg) v,
                p = in(reg) p + 4 * i,
                options(pure, readonly, nostack, preserves_flags),
            );
        }
        #[expect(
            clippy::cast_possible_truncation,
            reason = "a 32-bit load, zero-extended"
        )]
        let v = v as u32;
        w[i] = u32::from_be(v);
        i += 1;
    }
    Some(w)
}

/// Bounds-checked byte access to an XDP frame.
pub(crate) struct XdpFrame<'a>(pub(crate) &'a XdpContext);

impl Frame for XdpFrame<'_> {
    #[inline(always)]
    fn len(&self) -> usize {
        self.0.data_end() - self.0.data()
    }

    #[inline(always)]
    fn load<const N: usize>(&self, off: usize) -> Option<[u8; N]> {
        load(self.0.data(), self.0.data_end(), off)
    }

    #[inline(always)]
    fn be32(&self, off: usize) -> Option<u32> {
        load_be32s::<1>(self.0.data(), self.0.data_end(), off).map(|[w]| w)
    }

    #[inline(always)]
    fn be32s<const N: usize>(&self, off: usize) -> Option<[u32; N]> {
        load_be32s(self.0.data(), self.0.data_end(), off)
    }

    #[inline(always)]
    fn wire_len(&self) -> u64 {
        // Every buffer of a multi-buffer (jumbo) frame.
        // SAFETY: helper on the program's own context.
        unsafe { aya_ebpf::helpers::bpf_xdp_get_buff_len(self.0.ctx) }
    }
}
