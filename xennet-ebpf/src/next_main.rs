//! The upgrade tests' `next` build of the datapath (object `xennet-next`): `main.rs`'s modules
//! with the variant `variant/next.rs` (another map layout and a build number in map
//! `XN_PROBE`). Embedded only by the agent's `test-objects` feature.
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
#[path = "variant/next.rs"]
mod variant;
#[cfg(target_arch = "bpf")]
mod xdp;

#[cfg(not(target_arch = "bpf"))]
fn main() {}
