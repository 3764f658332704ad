//! `xennet-agent`: run the datapath, check a config, show counters, FDB and ports, reload.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use tracing::{info, warn};
use xennet_agent::{
    config::{Config, DEFAULT_PIN_DIR, DEFAULT_SOCKET},
    control::{self, PortAdd, Request, Response},
    datapath::{Changes, Datapath, FdbEntry, Port, monotonic_ns},
    hostport::{LinkWatch, Netlink},
    resolve::{RuntimePorts, resolve, runtime_port},
    stats,
};

/// eBPF/XDP VLAN-aware L2 forwarding for Xen dom0.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// Where to find the running agent's control socket.
#[derive(Args)]
struct Target {
    /// The configuration file the agent runs with (its `socket`).
    #[arg(short, long, conflicts_with = "socket")]
    config: Option<PathBuf>,
    /// The agent's control socket.
    #[arg(long, default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
}

impl Target {
    fn socket(&self) -> anyhow::Result<PathBuf> {
        Ok(match &self.config {
            Some(c) => Config::load(c)?.socket,
            None => self.socket.clone(),
        })
    }
}

#[derive(Subcommand)]
enum Cmd {
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
    /// Validate a configuration file without touching the kernel.
    Check {
        /// Configuration file (TOML).
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Print the per-port counters of the running datapath (from its pinned maps).
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
enum PortCmd {
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
enum FdbCmd {
    /// List the entries (MAC, VLAN, port, static or learned, age), like `bridge fdb show`.
    Show {
        #[command(flatten)]
        target: Target,
        /// Only this bridge.
        #[arg(long)]
        bridge: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("XENNET_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// The running agent: its datapath, config, run-time ports and netlink handle.
struct Agent {
    config_path: PathBuf,
    cfg: Config,
    runtime: RuntimePorts,
    dp: Datapath,
    nl: Netlink,
    /// Interfaces the last resolve was waiting for (logged once).
    waiting: Vec<String>,
}

impl Agent {
    /// Create/adopt host ports for `cfg`, then converge on it.
    async fn apply(&mut self, cfg: Config) -> anyhow::Result<Changes> {
        for h in cfg.bridges.iter().filter_map(|b| b.host.as_ref()) {
            self.nl.ensure_host(h).await?;
            self.dp.attach_pass(&h.interface)?;
        }
        let changes = self.converge(&cfg, true).await?;
        // Host ports whose bridge no longer has one: the bridge side is detached by now.
        for old in self.cfg.bridges.iter().filter_map(|b| b.host.as_ref()) {
            let kept = cfg
                .bridges
                .iter()
                .filter_map(|b| b.host.as_ref())
                .any(|h| h.interface == old.interface);
            if !kept {
                self.dp.forget_pass(&old.interface);
                self.nl.delete(&old.interface).await?;
            }
        }
        self.cfg = cfg;
        Ok(changes)
    }

    /// Resolve `cfg`'s ports against the interfaces that exist now, keep each bridge's MTUs
    /// in agreement, and bring the datapath to the result. `strict` (start-up, reload): any
    /// problem fails the whole operation. Otherwise (hot-plug): a port that cannot join —
    /// MTU mismatch, attach failure — is left out and logged, and the others go on.
    async fn converge(&mut self, cfg: &Config, strict: bool) -> anyhow::Result<Changes> {
        let links = self.nl.link_names().await?;
        // A run-time port whose interface is gone (guest stopped) is forgotten.
        self.runtime.retain(|name, _| links.contains(name));
        let mut resolved = resolve(cfg, &links, &self.runtime);
        if resolved.waiting != self.waiting {
            if !resolved.waiting.is_empty() {
                info!(interfaces = ?resolved.waiting, "waiting for interfaces to appear");
            }
            self.waiting.clone_from(&resolved.waiting);
        }
        let attached: Vec<Port> = self.dp.ports();
        for b in &mut resolved.config.bridges {
            let mut names: Vec<&str> = b.ports.iter().map(|p| p.interface.as_str()).collect();
            if let Some(h) = &b.host {
                names.extend([h.interface.as_str(), h.peer.as_str()]);
            }
            let reference = attached
                .iter()
                .find(|p| p.bridge == b.name && names.contains(&p.interface.as_str()))
                .map(|p| p.interface.as_str());
            let offenders = self
                .nl
                .check_mtu(&b.name, &names, reference, b.mtu, b.allow_mtu_mismatch)
                .await?;
            if offenders.is_empty() {
                continue;
            }
            let list: Vec<String> = offenders
                .iter()
                .map(|(n, m, w)| format!("{n} has MTU {m}, the bridge {w}"))
                .collect();
            if strict {
                anyhow::bail!(
                    "bridge {:?}: ports have different MTUs ({}); frames too big for an \
                     egress port would be lost: set `mtu` on the bridge (the agent then sets \
                     it on every port; guests must match) or `allow_mtu_mismatch = true`",
                    b.name,
                    list.join(", ")
                );
            }
            // Only joining ports are left out; attached ones stay (an operator changed an MTU).
            let joining = |n: &str| !attached.iter().any(|p| p.interface == n);
            warn!(bridge = %b.name, problems = ?list, "MTU differs from the bridge's: joining ports left out");
            b.ports.retain(|p| {
                !offenders
                    .iter()
                    .any(|(n, _, _)| *n == p.interface && joining(n))
            });
        }
        let changes = self.dp.apply(&resolved.config)?;
        if !changes.failed.is_empty() {
            if strict {
                anyhow::bail!("ports could not be attached: {}", changes.failed.join("; "));
            }
            warn!(failed = ?changes.failed, "ports left out");
        }
        Ok(changes)
    }

    /// Links changed: resolve again against the same configuration.
    async fn relink(&mut self) -> anyhow::Result<Changes> {
        let cfg = self.cfg.clone();
        let changes = self.converge(&cfg, false).await?;
        if !changes.added.is_empty() || !changes.removed.is_empty() {
            info!(added = ?changes.added, removed = ?changes.removed, "ports followed link changes");
        }
        Ok(changes)
    }

    async fn port_add(&mut self, req: &PortAdd) -> anyhow::Result<Changes> {
        let (bridge, spec) = runtime_port(&self.cfg, &self.runtime, req)?;
        if self
            .cfg
            .bridges
            .iter()
            .flat_map(|b| &b.ports)
            .any(|p| !p.is_rule() && p.interface == req.interface)
        {
            anyhow::bail!(
                "{} is configured by name in {}; change it there",
                req.interface,
                self.config_path.display()
            );
        }
        if self.nl.index(&req.interface).await?.is_none() {
            anyhow::bail!("interface {:?} does not exist", req.interface);
        }
        let previous = self.runtime.insert(req.interface.clone(), (bridge, spec));
        match self.relink().await {
            Ok(c) => Ok(c),
            Err(e) => {
                // Leave the run-time ports as they were.
                match previous {
                    Some(p) => self.runtime.insert(req.interface.clone(), p),
                    None => self.runtime.remove(&req.interface),
                };
                let _ = self.relink().await;
                Err(e)
            }
        }
    }

    async fn port_del(&mut self, interface: &str) -> anyhow::Result<Changes> {
        if self.runtime.remove(interface).is_none() {
            anyhow::bail!("{interface} is not a port added with `port add`");
        }
        self.relink().await
    }

    async fn reload(&mut self) -> anyhow::Result<Changes> {
        let mut cfg = Config::load(&self.config_path).with_context(|| {
            format!("{} is invalid; nothing changed", self.config_path.display())
        })?;
        // Pin directory, socket and FDB size are fixed for the life of the process.
        if cfg.fdb_max_entries != self.cfg.fdb_max_entries {
            warn!("fdb_max_entries changes take effect at the next start");
        }
        cfg.pin_dir.clone_from(&self.cfg.pin_dir);
        cfg.socket.clone_from(&self.cfg.socket);
        cfg.fdb_max_entries = self.cfg.fdb_max_entries;
        let changes = self.apply(cfg).await?;
        info!(?changes, "configuration reloaded");
        Ok(changes)
    }

    async fn serve(&mut self, mut conn: tokio::net::UnixStream) {
        let resp = match control::read_request(&mut conn).await {
            Err(e) => Response::err(&e),
            Ok(Request::Fdb { bridge }) => match self.dp.fdb_entries(bridge.as_deref()) {
                Ok(v) => Response::ok(&v),
                Err(e) => Response::err(&e),
            },
            Ok(Request::Ports) => Response::ok(&self.dp.ports()),
            Ok(Request::Reload) => match self.reload().await {
                Ok(c) => Response::ok(&c),
                Err(e) => Response::err(&e),
            },
            Ok(Request::PortAdd(req)) => match self.port_add(&req).await {
                Ok(c) => Response::ok(&c),
                Err(e) => Response::err(&e),
            },
            Ok(Request::PortDel { interface }) => match self.port_del(&interface).await {
                Ok(c) => Response::ok(&c),
                Err(e) => Response::err(&e),
            },
        };
        if let Err(e) = control::write_response(&mut conn, &resp).await {
            warn!(error = %format!("{e:#}"), "control client");
        }
    }
}

/// The control socket's file, removed on drop.
struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.0) {
            warn!(path = %self.0.display(), error = %e, "removing the control socket");
        }
    }
}

/// How often learned entries are checked for age: a quarter of the shortest aging time,
/// between 250 ms and 10 s.
fn aging_tick(cfg: &Config) -> Duration {
    let shortest = cfg
        .bridges
        .iter()
        .map(|b| b.fdb_aging_secs)
        .filter(|s| *s > 0)
        .min()
        .unwrap_or(300);
    Duration::from_millis((u64::from(shortest) * 250).clamp(250, 10_000))
}

fn run(config: &Path, pin_dir: Option<PathBuf>, socket: Option<PathBuf>) -> anyhow::Result<()> {
    let mut cfg = Config::load(config)?;
    if let Some(dir) = pin_dir {
        cfg.pin_dir = dir;
    }
    if let Some(s) = socket {
        cfg.socket = s;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    rt.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let listener = control::bind(&cfg.socket)?;
        // Removed however `run` ends, start-up failures included.
        let _socket_file = SocketFile(cfg.socket.clone());
        let socket = cfg.socket.clone();
        // Subscribe before the first resolve, so no link appearing in between is missed.
        let mut watch = LinkWatch::new()?;
        let mut agent = Agent {
            config_path: config.to_path_buf(),
            dp: Datapath::load_sized(&cfg.pin_dir, cfg.fdb_max_entries)?,
            nl: Netlink::new()?,
            runtime: RuntimePorts::new(),
            waiting: Vec::new(),
            cfg: Config {
                pin_dir: cfg.pin_dir.clone(),
                socket: cfg.socket.clone(),
                fdb_max_entries: cfg.fdb_max_entries,
                bridges: Vec::new(),
            },
        };
        let bridges = cfg.bridges.len();
        agent.apply(cfg).await?;
        agent.dp.pin()?;
        let ports = agent.dp.ports().len();
        info!(bridges, ports, socket = %socket.display(), "running");
        // A line on stdout that scripts and tests wait for.
        println!("xennet-agent: ready ({bridges} bridges, {ports} ports)");
        let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
        let mut hup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
        let mut period = aging_tick(&agent.cfg);
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // A reload (signal or socket) may have changed the aging times.
            if aging_tick(&agent.cfg) != period {
                period = aging_tick(&agent.cfg);
                tick = tokio::time::interval(period);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            }
            tokio::select! {
                _ = term.recv() => { info!("SIGTERM: stopping"); break; }
                _ = int.recv() => { info!("SIGINT: stopping"); break; }
                _ = hup.recv() => {
                    if let Err(e) = agent.reload().await {
                        warn!(error = %format!("{e:#}"), "reload failed");
                    }
                }
                _ = tick.tick() => match agent.dp.age(monotonic_ns()) {
                    Ok(0) => {}
                    Ok(n) => info!(entries = n, "aged out"),
                    Err(e) => warn!(error = %format!("{e:#}"), "aging failed"),
                },
                conn = listener.accept() => match conn {
                    Ok((c, _)) => agent.serve(c).await,
                    Err(e) => warn!(error = %e, "control socket accept"),
                },
                alive = watch.changed() => {
                    if !alive {
                        anyhow::bail!("the link watch ended");
                    }
                    // Gather a burst of link changes (a guest brings up many vifs at once).
                    let burst = tokio::time::sleep(Duration::from_millis(20));
                    tokio::pin!(burst);
                    loop {
                        tokio::select! {
                            () = &mut burst => break,
                            more = watch.changed() => if !more { break },
                        }
                    }
                    if let Err(e) = agent.relink().await {
                        warn!(error = %format!("{e:#}"), "following link changes failed");
                    }
                }
            }
        }
        drop(agent);
        Ok(())
    })
}

/// Print `v` as pretty JSON on stdout (the `--json` of every listing command).
fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    println!(
        "{}",
        serde_json::to_string_pretty(v).context("encoding JSON")?
    );
    Ok(())
}

fn print_ports(v: serde_json::Value, json: bool) -> anyhow::Result<()> {
    if json {
        print_json(&v)?;
        return Ok(());
    }
    let ports: Vec<Port> = serde_json::from_value(v).context("decoding ports")?;
    println!(
        "{:<16} {:<12} {:>8} {:>5} {:<12} {:<5} VLANS",
        "PORT", "BRIDGE", "IFINDEX", "SLOT", "ATTACH", "HOST"
    );
    for p in ports {
        println!(
            "{:<16} {:<12} {:>8} {:>5} {:<12} {:<5} {}",
            p.interface,
            p.bridge,
            p.ifindex,
            p.slot,
            p.attached,
            if p.host { "yes" } else { "" },
            p.vlans
        );
    }
    Ok(())
}

fn print_fdb(v: serde_json::Value, json: bool) -> anyhow::Result<()> {
    if json {
        print_json(&v)?;
        return Ok(());
    }
    let entries: Vec<FdbEntry> = serde_json::from_value(v).context("decoding the FDB")?;
    println!(
        "{:<12} {:<17} {:>5} {:<16} {:<8} AGE",
        "BRIDGE", "MAC", "VLAN", "PORT", "TYPE"
    );
    for e in entries {
        let age = e.age_secs.map_or_else(String::new, |a| format!("{a:.1}s"));
        println!(
            "{:<12} {:<17} {:>5} {:<16} {:<8} {age}",
            e.bridge,
            e.mac,
            e.vlan,
            e.port,
            if e.is_static { "static" } else { "learned" }
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.cmd {
        Cmd::Run {
            config,
            pin_dir,
            socket,
        } => run(&config, pin_dir, socket),
        Cmd::Check { config } => Config::load(&config)
            .map(|cfg| {
                let ports: usize = cfg.bridges.iter().map(|b| b.ports.len()).sum();
                println!(
                    "{}: ok ({} bridges, {ports} ports)",
                    config.display(),
                    cfg.bridges.len()
                );
            })
            .map_err(anyhow::Error::from),
        Cmd::Stats {
            config,
            pin_dir,
            json,
        } => (|| {
            let dir = match config {
                Some(c) => Config::load(&c)?.pin_dir,
                None => pin_dir,
            };
            let ports = stats::read(&dir)?;
            if json {
                print_json(&ports)?;
            } else {
                print!("{}", stats::render(&ports));
            }
            Ok(())
        })(),
        Cmd::Fdb {
            cmd:
                FdbCmd::Show {
                    target,
                    bridge,
                    json,
                },
        } => target
            .socket()
            .and_then(|s| control::call(&s, &Request::Fdb { bridge }))
            .and_then(|v| print_fdb(v, json)),
        Cmd::Ports { target, json } => target
            .socket()
            .and_then(|s| control::call(&s, &Request::Ports))
            .and_then(|v| print_ports(v, json)),
        Cmd::Port {
            cmd:
                PortCmd::Add {
                    interface,
                    bridge,
                    access,
                    trunk,
                    native,
                    macs,
                    attach,
                    target,
                },
        } => target
            .socket()
            .and_then(|s| {
                let req = PortAdd {
                    interface,
                    bridge,
                    access,
                    trunk,
                    native,
                    macs,
                    attach,
                };
                control::call(&s, &Request::PortAdd(req))
            })
            .map(|_| ()),
        Cmd::Port {
            cmd: PortCmd::Del { interface, target },
        } => target
            .socket()
            .and_then(|s| control::call(&s, &Request::PortDel { interface }))
            .map(|_| ()),
        Cmd::Reload { target } => target
            .socket()
            .and_then(|s| control::call(&s, &Request::Reload))
            .and_then(|v| {
                print_json(&v)?;
                Ok(())
            }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
