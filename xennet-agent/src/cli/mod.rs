//! The commands: each parses nothing (clap did, see [`args`]), does its one thing, and prints
//! through [`print`].

pub mod args;
pub mod print;

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use xennet_agent::{
    config::Config,
    control::{self, PortAdd, Request},
    datapath::{
        self,
        state::{self as dpstate, Lock, State},
    },
    monitor,
    netlink::Netlink,
    stats::{self, PortCounters},
};

use self::args::{Cmd, FdbCmd, PortCmd, Target};

/// Run one command.
pub fn execute(cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Run {
            config,
            pin_dir,
            socket,
        } => crate::daemon::run(&config.path(), pin_dir, socket),
        Cmd::Check { config } => check(&config.path()),
        Cmd::Down {
            config,
            pin_dir,
            socket,
        } => down(config.as_deref(), pin_dir, socket),
        Cmd::Stats {
            target,
            pin_dir,
            vlans: true,
            out,
            ..
        } => vlan_stats(&target, &pin_dir, out.json),
        Cmd::Stats {
            target,
            pin_dir,
            watch,
            count,
            out,
            ..
        } => match watch {
            None => print::print_stats(&read_stats(&target, &pin_dir)?, out.json),
            Some(secs) => watch_stats(&target, &pin_dir, secs, count, out.json),
        },
        Cmd::Fdb {
            cmd:
                FdbCmd::Show {
                    target,
                    pin_dir,
                    bridge,
                    out,
                },
        } => fdb_show(&target, pin_dir, bridge, out.json),
        Cmd::Ports { target, out } => target
            .socket()
            .and_then(|s| control::call(&s, &Request::Ports))
            .and_then(|v| print::print_ports(v, out.json)),
        Cmd::Port { cmd } => port(cmd),
        Cmd::Monitor {
            config,
            pin_dir,
            kind,
            ports,
            reasons,
            vlans,
            count,
            out,
        } => {
            let dir = match (pin_dir, config) {
                (Some(d), _) => d,
                (None, Some(c)) => Config::load(&c)?.pin_dir,
                (None, None) => PathBuf::from(xennet_agent::paths::DEFAULT_PIN_DIR),
            };
            let opts = monitor::Options {
                all: kind == args::EventType::All,
                filter: monitor::Filter {
                    ports,
                    reasons,
                    vlans,
                },
                json: out.json,
                count,
            };
            monitor::run(&dir, &opts, &mut std::io::stdout().lock())
        }
        Cmd::Reload { target, out } => {
            let config = match &target.config {
                Some(c) => Some(
                    std::fs::canonicalize(c)
                        .with_context(|| format!("{}; the agent was not asked", c.display()))?,
                ),
                None => None,
            };
            target
                .socket()
                .and_then(|s| control::call(&s, &Request::Reload { config }))
                .and_then(|v| print::print_reload(v, out.json))
        }
    }
}

/// `check`: validate a configuration file without touching the kernel.
fn check(config: &Path) -> anyhow::Result<()> {
    let cfg = Config::load(config)?;
    let ports: usize = cfg.bridges.iter().map(|b| b.ports.len()).sum();
    print::print_check(config, cfg.bridges.len(), ports);
    Ok(())
}

/// The counters: from the agent (its names), else — the agent not answering — from the maps
/// pinned under `pin_dir`, or the `pin_dir` of `-c FILE` (this namespace's interface names,
/// bridge ids).
fn read_stats(target: &Target, pin_dir: &Path) -> anyhow::Result<Vec<PortCounters>> {
    let socket = target.socket()?;
    if let Err(e) = std::os::unix::net::UnixStream::connect(&socket) {
        // With -c FILE, that file's pin_dir.
        let pin_dir = match &target.config {
            Some(c) => Config::load(c)?.pin_dir,
            None => pin_dir.to_path_buf(),
        };
        let ports = stats::read(&pin_dir).with_context(|| {
            format!(
                "the agent does not answer on {} ({e}); reading its pinned maps instead",
                socket.display()
            )
        })?;
        say_if_down(&pin_dir);
        return Ok(ports);
    }
    let v = control::call(&socket, &Request::Stats)?;
    serde_json::from_value(v).context("decoding the counters")
}

/// `stats --watch SECS`: per-second rates every `secs` seconds, `count` times or forever.
fn watch_stats(
    target: &Target,
    pin_dir: &Path,
    secs: u32,
    count: Option<u32>,
    json: bool,
) -> anyhow::Result<()> {
    anyhow::ensure!(secs > 0, "--watch needs at least 1 second");
    let period = Duration::from_secs(u64::from(secs));
    let mut before = read_stats(target, pin_dir)?;
    let mut at = Instant::now();
    let mut shown = 0u32;
    while count.is_none_or(|c| shown < c) {
        std::thread::sleep(period.saturating_sub(at.elapsed()));
        let after = read_stats(target, pin_dir)?;
        let now = Instant::now();
        let rates = stats::rates(&before, &after, now.duration_since(at).as_secs_f64());
        print::print_rates(&rates, json)?;
        (before, at) = (after, now);
        shown += 1;
    }
    Ok(())
}

/// `stats --vlans`: the per-VLAN counters from the pinned maps (of `-c FILE`'s `pin_dir`, or
/// `pin_dir`), bridges named as the agent's state file names them.
fn vlan_stats(target: &Target, pin_dir: &Path, json: bool) -> anyhow::Result<()> {
    let dir = match &target.config {
        Some(c) => Config::load(c)?.pin_dir,
        None => pin_dir.to_path_buf(),
    };
    let names = State::load(&dir)?
        .map(|s| s.bridges.into_iter().map(|(n, id)| (id, n)).collect())
        .unwrap_or_default();
    let vlans = stats::read_vlans(&dir, &names)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&vlans).context("encoding the counters")?
        );
    } else {
        print!("{}", stats::render_vlans(&vlans));
    }
    Ok(())
}

/// With no agent holding `pin_dir`, say so on stderr (the output itself stays parseable).
fn say_if_down(pin_dir: &Path) {
    if dpstate::holder(pin_dir).is_none() {
        eprintln!(
            "xennet-agent: the agent is down; read from the datapath pinned under {}, which \
             forwards on without it",
            pin_dir.display()
        );
    }
}

/// `fdb show`: from the agent, or from the pinned maps when it is down.
fn fdb_show(
    target: &Target,
    pin_dir: Option<PathBuf>,
    bridge: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    let dir = target.pin_dir(pin_dir)?;
    let v = if dpstate::holder(&dir).is_none() && dir.exists() {
        let entries = dpstate::offline_fdb(&dir, bridge.as_deref())?;
        say_if_down(&dir);
        serde_json::to_value(entries).context("encoding the FDB")?
    } else {
        control::call(&target.socket()?, &Request::Fdb { bridge })?
    };
    print::print_fdb(v, json)
}

/// `down`: remove the datapath pinned under the pin directory, once no agent runs with it.
fn down(config: Option<&Path>, pin_dir: PathBuf, socket: PathBuf) -> anyhow::Result<()> {
    let (dir, socket) = match config {
        Some(c) => {
            let cfg = Config::load(c)?;
            (cfg.pin_dir, cfg.socket)
        }
        None => (pin_dir, socket),
    };
    let lock = Lock::acquire(&dir).context(
        "stop the agent first (SIGTERM, or `systemctl stop xennet-agent`): it leaves the \
         datapath running, `down` then removes it",
    )?;
    let state = State::load(&dir)?.unwrap_or_default();
    let done = datapath::teardown(&dir)?;
    let mut deleted = Vec::new();
    if !state.host_ports.is_empty() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the tokio runtime")?;
        rt.block_on(async {
            let nl = Netlink::new()?;
            for h in &state.host_ports {
                if nl.index(h).await?.is_some() {
                    nl.delete(h).await?;
                    deleted.push(h.as_str());
                }
            }
            anyhow::Ok(())
        })?;
    }
    let socket_gone = remove_stale_socket(&socket);
    State::remove(&dir);
    drop(lock);
    println!(
        "xennet-agent: down ({} links detached, {} maps unpinned, host ports deleted: [{}]{})",
        done.links,
        done.maps,
        deleted.join(", "),
        if socket_gone { ", socket removed" } else { "" }
    );
    Ok(())
}

/// `port add` and `port del`: run-time ports, through the control socket.
fn port(cmd: PortCmd) -> anyhow::Result<()> {
    let (target, req): (Target, Request) = match cmd {
        PortCmd::Add {
            interface,
            bridge,
            access,
            trunk,
            native,
            macs,
            attach,
            security,
            rate,
            burst,
            mac_move,
            target,
        } => {
            let req = PortAdd {
                interface,
                bridge,
                access,
                trunk: trunk.map(|t| t.into_iter().flatten().collect()),
                native,
                macs,
                attach,
                security,
                rate,
                burst,
                mac_move,
            };
            (target, Request::PortAdd(Box::new(req)))
        }
        PortCmd::Del { interface, target } => (target, Request::PortDel { interface }),
    };
    target
        .socket()
        .and_then(|s| control::call(&s, &req))
        .map(|_| ())
}

/// Remove `path` if it is a socket nobody listens on; whether it did.
fn remove_stale_socket(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt as _;
    let is_socket = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket());
    is_socket
        && std::os::unix::net::UnixStream::connect(path).is_err()
        && std::fs::remove_file(path).is_ok()
}
