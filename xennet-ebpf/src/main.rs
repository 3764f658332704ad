//! xennet's datapath programs. The forwarding decision comes from `xennet_common::fwd`; this
//! crate only binds it to the kernel (maps, packet access) and performs the actions.
#![no_std]
#![no_main]

mod maps;
mod xdp;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // Unreachable in a verified program: the verifier rejects code that could get here.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
