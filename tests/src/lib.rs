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
//!   frames apart by a [`frame::marker`] payload.
//!
//! Everything needs root; tests start with `if !require_root() { return; }`.
//! Only namespaces created here are touched, never the host's interfaces.

pub mod frame;
mod netns;
mod raw;
pub mod seedfull;
pub mod testrun;
pub mod topo;

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
