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
    fn wire_len(&self) -> u64 {
        // Every buffer of a multi-buffer (jumbo) frame.
        // SAFETY: helper on the program's own context.
        unsafe { aya_ebpf::helpers::bpf_xdp_get_buff_len(self.0.ctx) }
    }
}
