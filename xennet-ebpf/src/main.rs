//! xennet's datapath programs (the object `xennet` that the agent embeds). The forwarding
//! decision comes from `xennet_common::fwd`; this crate only binds it to the kernel (maps,
//! packet access) and performs the actions.
//!
//! It is only meaningful for the bpf target (`cargo xtask build-ebpf`); a host build of the
//! workspace compiles it to an empty binary. The benchmark's programs are another binary of
//! this crate (`bench_main.rs`, object `xennet-bench`), never part of this one; so are two other
//! builds of these programs for the upgrade tests (`next_main.rs`, `alt_main.rs`: the same
//! modules with another `variant`).
#![cfg_attr(target_arch = "bpf", no_std, no_main)]
#![cfg_attr(target_arch = "bpf", feature(core_intrinsics, asm_experimental_arch))]
#![cfg_attr(target_arch = "bpf", allow(internal_features))]

#[cfg(target_arch = "bpf")]
mod maps;
#[cfg(target_arch = "bpf")]
mod pkt;
#[cfg(target_arch = "bpf")]
mod rt;
#[cfg(target_arch = "bpf")]
mod tc;
#[cfg(target_arch = "bpf")]
#[path = "variant/base.rs"]
mod variant;
#[cfg(target_arch = "bpf")]
mod xdp;

#[cfg(not(target_arch = "bpf"))]
fn main() {}
