//! The upgrade tests' `alt` build of the datapath (object `xennet-alt`): `main.rs`'s modules
//! with the variant `variant/alt.rs` (the same map layout, programs that differ). Embedded
//! only by the agent's `test-objects` feature.
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
#[path = "variant/alt.rs"]
mod variant;
#[cfg(target_arch = "bpf")]
mod xdp;

#[cfg(not(target_arch = "bpf"))]
fn main() {}
