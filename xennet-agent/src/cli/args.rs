//! The command line: clap types of every command and flag.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use xennet_agent::config::{Config, DEFAULT_PIN_DIR, DEFAULT_SOCKET};

/// eBPF/XDP VLAN-aware L2 forwarding for Xen dom0.
#[derive(Parser)]
#[command(version, about)]
pub struct Cli {
    /// Log line format on stderr: `text` (colours only on a terminal) or `json` (one object
    /// a line, for log collectors).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// `--log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where to find the running agent's control socket.
#[derive(Args)]
pub struct Target {
    /// The configuration file the agent runs with (its `socket`).
    #[arg(short, long, conflicts_with = "socket")]
    config: Option<PathBuf>,
    /// The agent's control socket.
    #[arg(long, default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
}

impl Target {
    /// The pin directory: `pin_dir` if given, else the configuration's, else the default.
    pub fn pin_dir(&self, pin_dir: Option<PathBuf>) -> anyhow::Result<PathBuf> {
        Ok(match (pin_dir, &self.config) {
            (Some(d), _) => d,
            (None, Some(c)) => Config::load(c)?.pin_dir,
            (None, None) => PathBuf::from(DEFAULT_PIN_DIR),
        })
    }

    pub fn socket(&self) -> anyhow::Result<PathBuf> {
        Ok(match &self.config {
            Some(c) => Config::load(c)?.socket,
            None => self.socket.clone(),
        })
    }
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Load the datapath, attach every configured port, and run until SIGINT/SIGTERM
    /// (SIGHUP reloads the configuration).
    Run {
        /// Configuration file (TOML).
        #[arg(short, long)]
        config: PathBuf,
        /// Pin the maps here instead of the config's `pin_dir`.
        #[arg(long)]
        pin_dir: Option<PathBuf>,
        /// Listen on this control socket instead of the config's `socket`.
        #[arg(long)]
        socket: Option<PathBuf>,
    },
    /// Remove the datapath the agent leaves running: detach every port, unpin its maps and
    /// links, delete the host ports it created, remove a stale control socket. Refused while
    /// an agent runs with this pin directory (stop it first).
    Down {
        /// Take the pin directory and socket from this configuration file.
        #[arg(short, long, conflicts_with_all = ["pin_dir", "socket"])]
        config: Option<PathBuf>,
        /// The datapath's pin directory.
        #[arg(long, default_value = DEFAULT_PIN_DIR)]
        pin_dir: PathBuf,
        /// The agent's control socket (removed if no agent listens on it).
        #[arg(long, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Validate a configuration file without touching the kernel.
    Check {
        /// Configuration file (TOML).
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Print the per-port counters of the datapath (from its pinned maps, agent running or not).
    Stats {
        /// Read the pin directory named in this configuration file.
        #[arg(short, long, conflicts_with = "pin_dir")]
        config: Option<PathBuf>,
        /// Pin directory of the running agent.
        #[arg(long, default_value = DEFAULT_PIN_DIR)]
        pin_dir: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The forwarding database of the running agent.
    Fdb {
        #[command(subcommand)]
        cmd: FdbCmd,
    },
    /// The ports of the running agent and how each is attached.
    Ports {
        #[command(flatten)]
        target: Target,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Make the running agent re-read its configuration file and apply the difference.
    Reload {
        #[command(flatten)]
        target: Target,
    },
    /// Attach or detach a port at run time (for the toolstack's hot-plug script).
    Port {
        #[command(subcommand)]
        cmd: PortCmd,
    },
}

#[derive(Subcommand)]
pub enum PortCmd {
    /// Attach IFACE to a bridge; without --access/--trunk, the bridge's port rule matching
    /// IFACE decides.
    Add {
        /// Interface (e.g. vif7.0).
        interface: String,
        /// Bridge name from the configuration.
        #[arg(long)]
        bridge: String,
        /// Access VLAN.
        #[arg(long, conflicts_with = "trunk")]
        access: Option<u16>,
        /// Trunk VLANs, comma separated.
        #[arg(long, value_delimiter = ',')]
        trunk: Option<Vec<u16>>,
        /// Native (untagged) VLAN of the trunk.
        #[arg(long, requires = "trunk")]
        native: Option<u16>,
        /// Static MAC of the guest (`MAC` or `MAC@VLAN`); repeatable.
        #[arg(long = "mac")]
        macs: Vec<String>,
        /// Attach mode: auto, xdp, xdp-generic, tc.
        #[arg(long)]
        attach: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Detach a port added with `port add`.
    Del {
        /// Interface.
        interface: String,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Subcommand)]
pub enum FdbCmd {
    /// List the entries (MAC, VLAN, port, static or learned, age), like `bridge fdb show`.
    /// With the agent down, read from the pinned maps.
    Show {
        #[command(flatten)]
        target: Target,
        /// Pin directory to read when the agent is down (default: the config's, or
        /// /sys/fs/bpf/xennet).
        #[arg(long)]
        pin_dir: Option<PathBuf>,
        /// Only this bridge.
        #[arg(long)]
        bridge: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}
