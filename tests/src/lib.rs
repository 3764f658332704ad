//! Test harness for xennet: real Ethernet frames through Linux network
//! namespaces.
//!
//! - [`Netns`]: RAII network namespace (processes killed and namespace
//!   deleted on drop), with [`Netns::exec`], [`Netns::spawn`] and
//!   [`Netns::run_in`] to act inside it.
//! - [`veth`] and small `ip`/`ethtool` wrappers ([`set_mac`], [`add_addr`],
//!   [`set_gro`], [`ifindex`], [`add_neigh`]) to wire namespaces together.
//! - [`RawSocket`]: send and receive whole frames on one interface; received
//!   frames carry their VLAN tag in the bytes, as on the wire.
//! - [`frame`]: build and parse (VLAN-tagged) Ethernet frames and tell test
//!   frames apart by a [`frame::marker`] payload; [`arp_icmp`]: ARP and ICMP
//!   echo frames.
//! - [`capture`]: what arrived where (quiet periods, arrival assertions);
//!   [`counters`]: counter snapshots and deltas; [`wait::poll`]: polling;
//!   [`output`]: command output in assertions.
//! - [`topo`], [`seedfull`]: the seed's setups in namespaces and a running
//!   agent; [`seedworld`]: a running seed dom0 seen from its edges;
//!   [`bed`]: dom0, guests and an agent on a test's own configuration;
//!   [`fdb`]: FDB rows; [`responder`]: a test-played upstream router;
//!   [`flow`]: a numbered steady flow; [`liveflows`]: flows that must survive a change; [`rng`]: a deterministic PRNG;
//!   [`kernel`]: what the kernel lists of a pinned datapath (links, programs, maps).
//!
//! Everything needs root; tests start with `if !require_root() { return; }`.
//! Only namespaces created here are touched, never the host's interfaces.

pub mod arp_icmp;
pub mod bed;
pub mod capture;
pub mod counters;
pub mod fdb;
pub mod flow;
pub mod frame;
pub mod kernel;
pub mod liveflows;
mod netns;
pub mod output;
mod raw;
pub mod responder;
pub mod rng;
pub mod seedfull;
pub mod seedworld;
pub mod testrun;
pub mod topo;
pub mod wait;

pub use netns::{Netns, add_addr, add_neigh, ifindex, set_gro, set_mac, veth};
pub use raw::RawSocket;

/// Returns whether the process runs as root; if not, prints
/// "skipping: needs root (run `cargo xtask test`)" so the caller can return
/// early from its test.
#[must_use]
pub fn require_root() -> bool {
    // SAFETY: geteuid cannot fail and has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        true
    } else {
        eprintln!("skipping: needs root (run `cargo xtask test`)");
        false
    }
}
