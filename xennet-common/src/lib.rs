//! Everything the xennet datapath and its agent share.
//!
//! * [`maps`]: the layout of every BPF map value and key (`#[repr(C)]`, no implicit padding),
//!   and the map names (all prefixed `XN_`, at most 15 characters).
//! * [`stats`]: the counter slots of the per-CPU statistics, one enum for actions and drop reasons.
//! * [`fwd`]: the forwarding core — parse, classify, look up, decide — written once over two small
//!   traits ([`fwd::Frame`], [`fwd::Tables`]) and compiled into the XDP program, the TC program and
//!   the host build that unit tests exercise.
//! * [`rate`]: bandwidth limits, a policer per port and direction (the map `XN_RATES`).
//! * [`monitor`]: the switch, event and text of `xennet-agent monitor` (aya-log).
//! * [`vstats`]: per-VLAN counters.
//! * [`fdbcache`]: the per-CPU cache of FDB entries in front of `XN_FDB`.
//! * [`bench`]: what the benchmark's own eBPF object and `cargo xtask bench` share.
#![no_std]

#[cfg(any(test, feature = "fixtures"))]
extern crate std;

pub mod bench;
pub mod fdbcache;
pub mod fwd;
pub mod maps;
pub mod monitor;
pub mod rate;
pub mod stats;
pub mod vstats;

/// Ethernet header length without tags.
pub const ETH_HLEN: usize = 14;
/// Length of one VLAN tag (TPID + TCI).
pub const VLAN_HLEN: usize = 4;
/// IEEE 802.1Q customer tag.
pub const ETH_P_8021Q: u16 = 0x8100;
/// IEEE 802.1ad service tag.
pub const ETH_P_8021AD: u16 = 0x88a8;
/// Largest usable VLAN id (4095 is reserved).
pub const VLAN_MAX: u16 = 4094;
/// VLAN id bits of a TCI.
pub const VLAN_VID_MASK: u16 = 0x0fff;
