//! The commands: each parses nothing (clap did, see [`args`]), does its one thing, and prints
//! through [`print`].

pub mod args;
pub mod print;

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use xennet_agent::{
    config::Config,
    control::{self, PortAdd, Request},
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
        Cmd::Stats {
            target,
            pin_dir,
            watch,
            count,
            out,
        } => match watch {
            None => print::print_stats(&read_stats(&target, &pin_dir)?, out.json),
            Some(secs) => watch_stats(&target, &pin_dir, secs, count, out.json),
        },
        Cmd::Fdb {
            cmd:
                FdbCmd::Show {
                    target,
                    bridge,
                    out,
                },
        } => target
            .socket()
            .and_then(|s| control::call(&s, &Request::Fdb { bridge }))
            .and_then(|v| print::print_fdb(v, out.json)),
        Cmd::Ports { target, out } => target
            .socket()
            .and_then(|s| control::call(&s, &Request::Ports))
            .and_then(|v| print::print_ports(v, out.json)),
        Cmd::Port { cmd } => port(cmd),
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
        return stats::read(&pin_dir).with_context(|| {
            format!(
                "the agent does not answer on {} ({e}); reading its pinned maps instead",
                socket.display()
            )
        });
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
            };
            (target, Request::PortAdd(req))
        }
        PortCmd::Del { interface, target } => (target, Request::PortDel { interface }),
    };
    target
        .socket()
        .and_then(|s| control::call(&s, &req))
        .map(|_| ())
}
