//! Bounds-checked reads of packet bytes, shared by the XDP and TC bindings of the core.

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
