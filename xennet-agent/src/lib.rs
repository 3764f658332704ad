//! xennet-agent: the control plane of the xennet datapath.
//!
//! * [`config`]: the TOML configuration, parsed and validated into the desired state.
//! * [`resolve`]: the configuration's ports matched against the interfaces that exist.
//! * [`ebpf`]: the embedded eBPF objects (`xennet`; `xennet-bench` with the `bench` feature),
//!   built by this crate's build script.
//! * [`datapath`]: loads the programs, fills the maps, attaches to ports, pins the maps; what to
//!   write is decided by the pure [`datapath::plan`] (no map I/O, unit-tested on the host).
//! * [`netlink`]: links, MTUs, the link watch and host ports.
//! * [`control`]: the control socket between the CLI and the running agent.
//! * [`fdbgen`]: the FDB generation, bumped after every FDB change the agent makes.
//! * [`learned`]: the per-port learned-MAC counts, mapped into the agent's memory.
//! * [`monitor`]: `xennet-agent monitor`, the live event stream (aya-log) and its switch.
//! * [`metrics`]: the Prometheus `/metrics` endpoint the daemon serves.
//! * [`stats`]: reads the per-port counters of a running datapath from its pinned maps.
//! * [`paths`]: the filesystem paths the agent knows by heart.
//! * [`clock`]: the datapath's coarse clock, as the agent reads it.
//!
//! The binary (`src/main.rs`) adds the command line (`cli`) and the daemon (`daemon`).

pub mod clock;
pub mod config;
pub mod control;
pub mod datapath;
pub mod ebpf;
pub mod fdbgen;
pub mod learned;
pub mod metrics;
pub mod monitor;
pub mod netlink;
pub mod paths;
pub mod resolve;
pub mod stats;
