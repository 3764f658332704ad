//! xennet-agent: the control plane of the xennet datapath.
//!
//! * [`config`]: the TOML configuration, parsed and validated into the desired state.
//! * [`ebpf`]: the embedded eBPF object, built by this crate's build script.
//! * [`datapath`]: loads the programs, fills the maps, attaches to ports, pins the maps.
//! * [`stats`]: reads the per-port counters of a running datapath from its pinned maps.

pub mod config;
pub mod control;
pub mod datapath;
pub mod ebpf;
pub mod hostport;
pub mod learned;
pub mod paths;
pub mod resolve;
pub mod stats;
