//! The commands: each parses nothing (clap did, see [`args`]), does its one thing, and prints
//! through [`print`].

pub mod args;
pub mod print;

use std::path::{Path, PathBuf};

use xennet_agent::{
    config::Config,
    control::{self, PortAdd, Request},
    stats,
};

use self::args::{Cmd, FdbCmd, PortCmd, Target};

/// Run one command.
pub fn execute(cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Run {
            config,
            pin_dir,
            socket,
        } => crate::daemon::run(&config, pin_dir, socket),
        Cmd::Check { config } => check(&config),
        Cmd::Stats {
            config,
            pin_dir,
            json,
        } => show_stats(config.as_deref(), pin_dir, json),
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
            .and_then(|v| print::print_fdb(v, json)),
        Cmd::Ports { target, json } => target
            .socket()
            .and_then(|s| control::call(&s, &Request::Ports))
            .and_then(|v| print::print_ports(v, json)),
        Cmd::Port { cmd } => port(cmd),
        Cmd::Reload { target } => target
            .socket()
            .and_then(|s| control::call(&s, &Request::Reload))
            .and_then(|v| print::print_json(&v)),
    }
}

/// `check`: validate a configuration file without touching the kernel.
fn check(config: &Path) -> anyhow::Result<()> {
    let cfg = Config::load(config)?;
    let ports: usize = cfg.bridges.iter().map(|b| b.ports.len()).sum();
    print::print_check(config, cfg.bridges.len(), ports);
    Ok(())
}

/// `stats`: the counters of the running datapath, read from its pinned maps.
fn show_stats(config: Option<&Path>, pin_dir: PathBuf, json: bool) -> anyhow::Result<()> {
    let dir = match config {
        Some(c) => Config::load(c)?.pin_dir,
        None => pin_dir,
    };
    let ports = stats::read(&dir)?;
    print::print_stats(&ports, json)
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
                trunk,
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
