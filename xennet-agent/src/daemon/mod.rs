//! The daemon (`xennet-agent run`): start-up (lock, adoption, attach, `READY=1`), the event
//! loop (signals, aging tick, systemd watchdog, control socket, link changes) and shut-down,
//! which leaves the datapath running. What each event does is [`agent::Agent`]'s; control
//! clients are read and written in tasks of their own ([`clients`]), so the loop never waits
//! on one.

mod agent;
mod clients;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context as _;
use sd_notify::NotifyState;
use tokio::{
    net::UnixListener,
    signal::unix::{Signal, SignalKind, signal},
    time::{Interval, MissedTickBehavior},
};
use tracing::{info, warn};
use xennet_agent::{clock, config::Config, control, datapath::state::Lock, netlink::LinkWatch};

use self::{agent::Agent, clients::Clients};

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

/// An interval of `period` that delays missed ticks rather than bursting them.
fn ticker(period: Duration) -> Interval {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tick
}

/// Run the agent with the configuration file `config` (pin directory and socket overridable)
/// until SIGINT or SIGTERM.
pub fn run(config: &Path, pin_dir: Option<PathBuf>, socket: Option<PathBuf>) -> anyhow::Result<()> {
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
    rt.block_on(serve(config, cfg))
}

/// Take the pin directory's lock, bind the socket, load (adopting what is pinned) and
/// attach, say "ready", then run the event loop. The datapath outlives the process.
async fn serve(config: &Path, cfg: Config) -> anyhow::Result<()> {
    // One agent per pin_dir, for the whole life of the process (first: a second agent must
    // not touch the first one's socket).
    let _lock = Lock::acquire(&cfg.pin_dir)?;
    let listener = control::bind(&cfg.socket)?;
    // Removed however `run` ends, start-up failures included.
    let _socket_file = SocketFile(cfg.socket.clone());
    let socket = cfg.socket.clone();
    // Subscribe before the first resolve, so no link appearing in between is missed.
    let mut watch = LinkWatch::new()?;
    let mut agent = Agent::new(config, &cfg)?;
    let bridges = cfg.bridges.len();
    agent.apply(cfg).await?;
    // An upgrade to this build's map layout: the maps are filled now, the programs go in.
    agent.dp.finish_upgrade()?;
    xennet_agent::metrics::start(&agent.cfg);
    let ports = agent.dp.ports().len();
    info!(bridges, ports, socket = %socket.display(), "running");
    // Handlers in place before anyone is told we are ready: a SIGTERM right after "ready" must
    // stop the agent as any other does, not kill it with the socket file left behind.
    let signals = Signals::new()?;
    // A line on stdout that scripts and tests wait for, and READY=1 for systemd.
    println!(
        "xennet-agent: ready ({}, {} attached)",
        crate::cli::print::count(bridges, "bridge", "bridges"),
        crate::cli::print::count(ports, "port", "ports")
    );
    notify(&[
        NotifyState::Ready,
        NotifyState::Status(&format!("forwarding: {bridges} bridges, {ports} ports")),
    ]);
    event_loop(&mut agent, &listener, &mut watch, signals).await?;
    drop(agent);
    Ok(())
}

/// Tell systemd (`NOTIFY_SOCKET`, when set) how the agent is; a failure is only logged.
fn notify(state: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(state) {
        warn!(error = %e, "sd_notify");
    }
}

/// The watchdog ticker: every half of systemd's `WatchdogSec` when it asks for one (never
/// fires otherwise).
fn watchdog_ticker() -> (bool, Interval) {
    match sd_notify::watchdog_enabled() {
        Some(d) => (true, ticker((d / 2).max(Duration::from_millis(10)))),
        None => (false, ticker(Duration::from_secs(86_400))),
    }
}

/// The signals the event loop serves.
struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    /// Install the handlers (from now on these signals are queued, not fatal).
    fn new() -> anyhow::Result<Self> {
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("SIGINT handler")?,
            hup: signal(SignalKind::hangup()).context("SIGHUP handler")?,
        })
    }
}

/// Serve events until SIGINT or SIGTERM; an error only when the link watch ends.
async fn event_loop(
    agent: &mut Agent,
    listener: &UnixListener,
    watch: &mut LinkWatch,
    signals: Signals,
) -> anyhow::Result<()> {
    let Signals {
        mut term,
        mut int,
        mut hup,
    } = signals;
    let mut period = aging_tick(&agent.cfg);
    let mut tick = ticker(period);
    let (clients, mut jobs) = Clients::new();
    let (watchdog, mut wd_tick) = watchdog_ticker();
    loop {
        // A reload (signal or socket) may have changed the aging times.
        if aging_tick(&agent.cfg) != period {
            period = aging_tick(&agent.cfg);
            tick = ticker(period);
        }
        tokio::select! {
            _ = term.recv() => {
                info!("SIGTERM: stopping (the datapath forwards on)");
                notify(&[NotifyState::Stopping]);
                return Ok(());
            }
            _ = int.recv() => {
                info!("SIGINT: stopping (the datapath forwards on)");
                notify(&[NotifyState::Stopping]);
                return Ok(());
            }
            _ = wd_tick.tick() => if watchdog {
                notify(&[NotifyState::Watchdog]);
            },
            _ = hup.recv() => {
                if let Err(e) = agent.reload().await {
                    warn!(error = %format!("{e:#}"), "reload failed");
                }
            }
            _ = tick.tick() => match agent.dp.age(clock::now_ns()) {
                Ok(0) => {}
                Ok(n) => info!(entries = n, "aged out"),
                Err(e) => warn!(error = %format!("{e:#}"), "aging failed"),
            },
            conn = listener.accept() => match conn {
                Ok((c, _)) => clients.spawn(c),
                Err(e) => warn!(error = %e, "control socket accept"),
            },
            // Requests that change state are applied here, one at a time, in order.
            Some((req, reply)) = jobs.recv() => {
                // The client may have gone; its request was applied all the same.
                let _ = reply.send(agent.answer(req).await);
            }
            alive = watch.changed() => {
                if !alive {
                    anyhow::bail!("the link watch ended");
                }
                settle(watch).await;
                if let Err(e) = agent.relink().await {
                    warn!(error = %format!("{e:#}"), "following link changes failed");
                }
                for idx in watch.take_down() {
                    if let Err(e) = agent.dp.flush_learned_on(idx) {
                        warn!(ifindex = idx, error = %format!("{e:#}"), "flushing a port that went down");
                    }
                }
            }
        }
    }
}

/// Gather a burst of link changes (a guest brings up many vifs at once): wait 20 ms, taking
/// whatever else arrives meanwhile.
async fn settle(watch: &mut LinkWatch) {
    let burst = tokio::time::sleep(Duration::from_millis(20));
    tokio::pin!(burst);
    loop {
        tokio::select! {
            () = &mut burst => break,
            more = watch.changed() => if !more { break },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_aging(secs: &[u32]) -> Config {
        Config {
            pin_dir: PathBuf::new(),
            socket: PathBuf::new(),
            fdb_max_entries: 1,
            metrics: None,
            bridges: secs
                .iter()
                .map(|s| xennet_agent::config::BridgeSpec {
                    name: format!("b{s}"),
                    id: 1,
                    tpid: 0x8100,
                    fdb_aging_secs: *s,
                    mtu: None,
                    allow_mtu_mismatch: false,
                    ports: Vec::new(),
                    host: None,
                })
                .collect(),
        }
    }

    #[test]
    fn aging_tick_is_a_quarter_of_the_shortest_aging_clamped() {
        assert_eq!(aging_tick(&with_aging(&[])), Duration::from_secs(10));
        assert_eq!(aging_tick(&with_aging(&[0])), Duration::from_secs(10));
        assert_eq!(aging_tick(&with_aging(&[300, 8])), Duration::from_secs(2));
        assert_eq!(aging_tick(&with_aging(&[1])), Duration::from_millis(250));
        assert_eq!(aging_tick(&with_aging(&[0, 20])), Duration::from_secs(5));
    }
}
