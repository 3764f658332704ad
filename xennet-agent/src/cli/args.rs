//! The command line: clap types of every command and flag, each with an example and its defaults.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use xennet_agent::{
    config::{Config, DEFAULT_PIN_DIR, DEFAULT_SOCKET},
    paths::DEFAULT_CONFIG,
};

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

/// `monitor --type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EventType {
    /// Dropped frames.
    Drop,
    /// Every frame's decision.
    All,
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
    /// Read the agent's `socket` from this configuration file.
    #[arg(short, long, conflicts_with = "socket", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The agent's control socket.
    #[arg(long, default_value = DEFAULT_SOCKET, value_name = "PATH")]
    pub socket: PathBuf,
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

    /// The socket to ask: `--socket`, or the `socket` of `-c FILE`.
    pub fn socket(&self) -> anyhow::Result<PathBuf> {
        Ok(match &self.config {
            Some(c) => {
                Config::load(c)
                    .map_err(|e| anyhow::anyhow!("{e:#}\nthe agent was not asked"))?
                    .socket
            }
            None => self.socket.clone(),
        })
    }
}

/// The `--json` switch of every command that prints a table.
#[derive(Args, Clone, Copy)]
pub struct Output {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// A configuration file given as `-c FILE` or as `FILE`.
#[derive(Args)]
pub struct ConfigFile {
    /// Configuration file (TOML).
    #[arg(
        short = 'c',
        long = "config",
        value_name = "FILE",
        conflicts_with = "file"
    )]
    flag: Option<PathBuf>,
    /// Configuration file (TOML), as `-c FILE`.
    #[arg(value_name = "FILE", default_value = DEFAULT_CONFIG)]
    file: PathBuf,
}

impl ConfigFile {
    /// The file given, or the default.
    pub fn path(&self) -> PathBuf {
        self.flag.clone().unwrap_or_else(|| self.file.clone())
    }
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Load the datapath, attach every configured port, and run until SIGINT/SIGTERM
    /// (SIGHUP reloads the configuration).
    #[command(
        after_help = "Example:\n  xennet-agent run -c /etc/xennet/xennet.toml\n  \
                            xennet-agent run --pin-dir /sys/fs/bpf/test --socket /tmp/x.sock \
                            my.toml"
    )]
    Run {
        #[command(flatten)]
        config: ConfigFile,
        /// Pin the maps here instead of the config's `pin_dir` [default: the config's
        /// `pin_dir`, else /sys/fs/bpf/xennet].
        #[arg(long, value_name = "DIR")]
        pin_dir: Option<PathBuf>,
        /// Listen on this control socket instead of the config's `socket` [default: the
        /// config's `socket`, else /run/xennet/xennet.sock].
        #[arg(long, value_name = "PATH")]
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
    #[command(after_help = "Example:\n  xennet-agent check /etc/xennet/xennet.toml")]
    Check {
        #[command(flatten)]
        config: ConfigFile,
    },
    /// Per-port counters of the running datapath, with the agent's interface and bridge names.
    #[command(
        after_help = "The agent is asked over its socket; when it does not answer, the \
                            pinned maps under --pin-dir are read (interface names then those \
                            of this network namespace, bridges by id).\n\n\
                            Example:\n  xennet-agent stats\n  xennet-agent stats --watch 1"
    )]
    Stats {
        #[command(flatten)]
        target: Target,
        /// Pin directory read when the agent does not answer (with -c FILE: its `pin_dir`).
        #[arg(long, default_value = DEFAULT_PIN_DIR, value_name = "DIR")]
        pin_dir: PathBuf,
        /// Print per-second rates every SECS seconds instead of totals once.
        #[arg(long, value_name = "SECS")]
        watch: Option<u32>,
        /// With --watch: stop after N reports [default: never].
        #[arg(long, value_name = "N", requires = "watch")]
        count: Option<u32>,
        /// Per-VLAN counters ({bridge, VLAN}: rx/tx packets and bytes) instead of per port.
        #[arg(long, conflicts_with = "watch")]
        vlans: bool,
        #[command(flatten)]
        out: Output,
    },
    /// A live stream of datapath events: every drop with its reason, port, VLAN, MACs and
    /// ethertype (or every decision, with --type all), until Ctrl-C.
    #[command(
        after_help = "The monitor switches the datapath's events on while it runs \
                            (a lease it renews every second; killed with -9, the datapath \
                            stops by itself within 3 s) and reads them through aya-log from \
                            the running programs. One monitor at a time per datapath.\n\n\
                            Examples:\n  xennet-agent monitor\n  \
                            xennet-agent monitor --port vif1.0 --json\n  \
                            xennet-agent monitor --type all --vlan 4094"
    )]
    Monitor {
        /// Take the pin directory from this configuration file.
        #[arg(short, long, conflicts_with = "pin_dir")]
        config: Option<PathBuf>,
        /// The datapath's pin directory [default: /sys/fs/bpf/xennet].
        #[arg(long, value_name = "DIR")]
        pin_dir: Option<PathBuf>,
        /// Which decisions: `drop` (every dropped frame) or `all` (every frame).
        #[arg(long = "type", value_enum, default_value_t = EventType::Drop)]
        kind: EventType,
        /// Only frames that arrived on this interface; repeatable.
        #[arg(long = "port", value_name = "IFACE")]
        ports: Vec<String>,
        /// Only this outcome (`drop_static_mac`, `forward`…, as `stats` names them);
        /// repeatable.
        #[arg(long = "reason", value_name = "REASON")]
        reasons: Vec<String>,
        /// Only frames of this VLAN (0: dropped before a VLAN was known); repeatable.
        #[arg(long = "vlan", value_name = "VLAN")]
        vlans: Vec<u16>,
        /// Stop after N events [default: never].
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        #[command(flatten)]
        out: Output,
    },
    /// The forwarding database of the running agent.
    Fdb {
        #[command(subcommand)]
        cmd: FdbCmd,
    },
    /// The ports of the running agent and how each is attached.
    #[command(after_help = "Example:\n  xennet-agent ports\n  xennet-agent ports --json")]
    Ports {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        out: Output,
    },
    /// Make the running agent re-read the configuration file it was started with and apply
    /// the difference.
    #[command(
        after_help = "-c FILE only finds the socket; FILE must be the file the agent \
                            runs with.\n\nExample:\n  xennet-agent reload"
    )]
    Reload {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        out: Output,
    },
    /// Attach or detach a port at run time (for the toolstack's hot-plug script).
    Port {
        #[command(subcommand)]
        cmd: PortCmd,
    },
}

#[derive(Subcommand)]
#[expect(clippy::large_enum_variant, reason = "parsed once per command line")]
pub enum PortCmd {
    /// Attach IFACE to a bridge; without --access/--trunk, the bridge's port rule matching
    /// IFACE decides.
    #[command(
        after_help = "Example:\n  xennet-agent port add vif7.0 --bridge trunk --access 10 \
                            --mac 00:16:3e:07:00:01\n  xennet-agent port add vif8.0 --bridge \
                            trunk --trunk 10-20,30 --native 10\n  xennet-agent port add vif9.0 --bridge \
                            trunk --access 10 --mac 00:16:3e:09:00:01 --ip 192.0.2.9 \
                            --ip 2001:db8::9\n  xennet-agent port add vif10.0 --bridge trunk \
                            --access 10 --rate 100Mbit"
    )]
    Add {
        /// Interface (e.g. vif7.0).
        interface: String,
        /// Bridge name from the configuration.
        #[arg(long)]
        bridge: String,
        /// Access VLAN [default: the matching rule's].
        #[arg(long, conflicts_with = "trunk", value_name = "VLAN")]
        access: Option<u16>,
        /// Trunk VLANs: ids and ranges, comma separated (10,20-30) [default: the matching
        /// rule's].
        #[arg(long, value_delimiter = ',', value_parser = trunk_item, value_name = "VLANS")]
        trunk: Option<Vec<Vec<u16>>>,
        /// Native (untagged) VLAN of the trunk [default: none].
        #[arg(long, requires = "trunk", value_name = "VLAN")]
        native: Option<u16>,
        /// Static MAC of the guest (`MAC` or `MAC@VLAN`); repeatable [default: none].
        #[arg(long = "mac", value_name = "MAC[@VLAN]")]
        macs: Vec<String>,
        /// Attach mode: auto, xdp, xdp-generic, tc [default: the matching rule's, else auto].
        #[arg(long, value_name = "MODE")]
        attach: Option<String>,
        /// Bandwidth limit, each direction (100Mbit, 1Gbit) [default: the matching rule's,
        /// else none].
        #[arg(long, value_name = "RATE")]
        rate: Option<String>,
        /// Burst of the limit in bytes (4MiB) [default: 200 ms of the rate, at least
        /// 256KiB].
        #[arg(long, value_name = "SIZE")]
        burst: Option<String>,
        /// A frame arriving on this port may take over a MAC static on another port (an
        /// uplink) [default: the matching rule's, else off].
        #[arg(long, value_name = "on|off", value_parser = clap::builder::BoolishValueParser::new())]
        mac_move: Option<bool>,
        #[command(flatten)]
        security: xennet_agent::control::SecurityRequest,
        #[command(flatten)]
        target: Target,
    },
    /// Detach a port added with `port add`.
    #[command(after_help = "Example:\n  xennet-agent port del vif7.0")]
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
    #[command(after_help = "Example:\n  xennet-agent fdb show --bridge trunk")]
    Show {
        #[command(flatten)]
        target: Target,
        /// Pin directory to read when the agent is down (default: the config's, or
        /// /sys/fs/bpf/xennet).
        #[arg(long)]
        pin_dir: Option<PathBuf>,
        /// Only this bridge (it must exist) [default: every bridge].
        #[arg(long)]
        bridge: Option<String>,
        #[command(flatten)]
        out: Output,
    },
}

/// One item of `--trunk`: a VLAN id or a range `A-B`, as the ids it stands for (the agent
/// checks each id as the file's `trunk` is checked).
fn trunk_item(s: &str) -> Result<Vec<u16>, String> {
    let id = |t: &str| {
        t.trim()
            .parse::<u16>()
            .map_err(|e| format!("{t:?} is not a VLAN id: {e}"))
    };
    match s.split_once('-') {
        None => Ok(vec![id(s)?]),
        Some((a, b)) => {
            let (a, b) = (id(a)?, id(b)?);
            if a > b {
                return Err(format!("range {s:?} ends before it starts"));
            }
            Ok((a..=b).collect())
        }
    }
}
