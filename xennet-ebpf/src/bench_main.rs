//! The benchmark's programs (the object `xennet-bench`, for `cargo xtask bench` only): the
//! generator, the sinks, the ceiling and the ladder, see `bench.rs`. The ladder binds the
//! forwarding core to this object's own copy of the datapath maps (`maps.rs`); the datapath
//! programs themselves are only in the object `xennet`.
//!
//! Like `main.rs`, only meaningful for the bpf target; a host build is an empty binary.
#![cfg_attr(target_arch = "bpf", no_std, no_main)]
#![cfg_attr(target_arch = "bpf", feature(core_intrinsics, asm_experimental_arch))]
#![cfg_attr(target_arch = "bpf", allow(internal_features))]

#[cfg(target_arch = "bpf")]
mod bench;
#[cfg(target_arch = "bpf")]
mod maps;
#[cfg(target_arch = "bpf")]
mod pkt;
#[cfg(target_arch = "bpf")]
mod rt;
#[cfg(target_arch = "bpf")]
#[path = "variant/base.rs"]
mod variant;

#[cfg(not(target_arch = "bpf"))]
fn main() {}
