//! The Prometheus `/metrics` endpoint of the daemon: started once at start-up, served by tasks
//! of its own; every scrape reads the datapath's maps afresh ([`collect`]).
//!
//! The event loop never waits on a scrape: connections are handled in their own tasks, and
//! the map reads (blocking system calls) run on tokio's blocking pool.

mod collect;
mod encode;
mod format;
mod http;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use anyhow::Context as _;
use prometheus_client::registry::Registry;
use tracing::{info, warn};

pub use self::collect::{DatapathCollector, PortRow, Snapshot};
use crate::config::Config;

/// Reloads attempted (signal or control socket) since start-up.
static RELOADS: AtomicU64 = AtomicU64::new(0);
/// Reloads that failed (and were rolled back or changed nothing).
static RELOAD_FAILURES: AtomicU64 = AtomicU64::new(0);

/// Count a reload and whether it failed (the daemon calls this after each one).
pub fn note_reload(ok: bool) {
    RELOADS.fetch_add(1, Ordering::Relaxed);
    if !ok {
        RELOAD_FAILURES.fetch_add(1, Ordering::Relaxed);
    }
}

/// Reloads and failed reloads so far.
#[must_use]
pub fn reloads() -> (u64, u64) {
    (
        RELOADS.load(Ordering::Relaxed),
        RELOAD_FAILURES.load(Ordering::Relaxed),
    )
}

/// The registry of one agent: its datapath collector, nothing else.
#[must_use]
pub fn registry(cfg: &Config) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(DatapathCollector::new(
        cfg.pin_dir.clone(),
        cfg.socket.clone(),
    )));
    registry
}

/// Serve `/metrics` on `cfg.metrics` (nothing when it is off), from a task of its own. Must be
/// called inside the daemon's tokio runtime. An address that cannot be bound is logged and
/// the agent runs on without metrics: the datapath matters more than its observation.
pub fn start(cfg: &Config) {
    let Some(addr) = cfg.metrics else {
        info!("metrics endpoint off");
        return;
    };
    match bind(addr) {
        Ok(listener) => {
            info!(address = %addr, "serving Prometheus metrics on /metrics");
            tokio::spawn(http::serve(listener, Arc::new(registry(cfg))));
        }
        Err(e) => warn!(error = %format!("{e:#}"), "metrics endpoint not started"),
    }
}

fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    let std = std::net::TcpListener::bind(addr)
        .with_context(|| format!("binding the metrics address {addr}"))?;
    std.set_nonblocking(true)
        .context("metrics listener: non-blocking")?;
    tokio::net::TcpListener::from_std(std).context("metrics listener: registering with tokio")
}
