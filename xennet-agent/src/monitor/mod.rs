//! `xennet-agent monitor`: a live stream of datapath events (drops with their reason, or every
//! decision), read through aya-log from the running programs' ring buffer while the switch in
//! `XN_MONITOR` is on.
//!
//! The monitor is its own process: it finds the programs that use the maps pinned under
//! `pin_dir` (the kernel lists each program's maps), attaches aya-log's reader to their ring
//! (`EbpfLogger::init_from_id`), holds the switch's lease ([`lease`]) and prints each event
//! that passes the filters ([`event`]). Every second it renews the lease and looks again at
//! the programs: when an agent restart or upgrade swapped new programs into the pinned links,
//! it says so on stderr and follows the new ones (the ring is pinned, so nothing is lost).

pub mod event;
pub mod lease;

use std::{
    io::Write,
    os::fd::AsRawFd as _,
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, anyhow};
use aya::maps::MapInfo;
use aya_log::EbpfLogger;
use xennet_common::{
    maps::{PROG_TC, PROG_XDP},
    monitor::{EVENT_TARGET, MAP_MONITOR, MONITOR_ALL, MONITOR_DROPS, parse},
};

pub use self::event::{Filter, Shown};
use self::lease::Switch;

/// What to show and how.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Every decision, not only drops.
    pub all: bool,
    /// Which events.
    pub filter: Filter,
    /// One JSON object a line instead of text.
    pub json: bool,
    /// Stop after this many events.
    pub count: Option<u64>,
}

/// aya-log's logger for the monitor: keeps the text of the datapath's event records.
#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<String>>>);

impl log::Log for Collect {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        if record.target() == EVENT_TARGET {
            if let Ok(mut v) = self.0.lock() {
                v.push(record.args().to_string());
            }
        }
    }
    fn flush(&self) {}
}

/// The datapath's programs that emit events: (id, name) of every loaded `xennet_xdp` and
/// `xennet_tc` that uses the switch pinned under `pin_dir`.
fn programs(pin_dir: &Path) -> anyhow::Result<Vec<(u32, String)>> {
    let path = pin_dir.join(MAP_MONITOR);
    let switch = MapInfo::from_pin(&path)
        .with_context(|| format!("reading the pinned map {}", path.display()))?
        .id();
    let mut out = Vec::new();
    for p in aya::programs::loaded_programs().filter_map(Result::ok) {
        let name = p.name_as_str().unwrap_or_default().to_owned();
        if name != PROG_TC && name != PROG_XDP {
            continue;
        }
        if p.map_ids()
            .ok()
            .flatten()
            .is_some_and(|m| m.contains(&switch))
        {
            out.push((p.id(), name));
        }
    }
    out.sort();
    Ok(out)
}

fn describe(progs: &[(u32, String)]) -> String {
    progs
        .iter()
        .map(|(id, n)| format!("{n} #{id}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// aya-log's reader on the ring of the programs `progs`.
fn attach(progs: &[(u32, String)], sink: &Collect) -> anyhow::Result<EbpfLogger<Collect>> {
    let (id, name) = progs.first().ok_or_else(|| anyhow!("no program"))?;
    EbpfLogger::init_from_id_with_logger(*id, sink.clone())
        .with_context(|| format!("attaching aya-log to {name} #{id}"))
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

fn install_signals() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic.
        unsafe { libc::signal(sig, handler) };
    }
}

/// Wait up to `ms` for the ring to have data.
fn wait_readable(fd: i32, ms: i32) {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd. EINTR (a signal) just returns early.
    unsafe { libc::poll(&raw mut p, 1, ms) };
}

/// Run the monitor on the datapath pinned under `pin_dir` until SIGINT/SIGTERM, `count`
/// events, or a write error on `out` (a closed pipe). The switch is cleared on the way out.
pub fn run(pin_dir: &Path, opts: &Options, out: &mut dyn Write) -> anyhow::Result<()> {
    opts.filter.check()?;
    install_signals();
    let mut progs = programs(pin_dir)?;
    anyhow::ensure!(
        !progs.is_empty(),
        "no xennet program uses the datapath pinned under {}: is the agent running?",
        pin_dir.display()
    );
    let sink = Collect::default();
    let mut logger = attach(&progs, &sink)?;
    let mode = if opts.all { MONITOR_ALL } else { MONITOR_DROPS };
    let mut switch = Switch::take(pin_dir, mode)?;
    eprintln!(
        "xennet-agent monitor: {} of the datapath under {} ({}); Ctrl-C to stop",
        if opts.all { "every decision" } else { "drops" },
        pin_dir.display(),
        describe(&progs)
    );
    let mut shown = 0u64;
    let mut last = Instant::now();
    while !STOP.load(Ordering::Relaxed) {
        wait_readable(logger.as_raw_fd(), 200);
        logger.flush();
        let texts = std::mem::take(&mut *sink.0.lock().map_err(|_| anyhow!("poisoned"))?);
        for t in texts {
            let Some(e) = parse(&t) else {
                eprintln!("xennet-agent monitor: not an event: {t}");
                continue;
            };
            let s = Shown::new(&e, event::timestamp());
            if !opts.filter.passes(&s) {
                continue;
            }
            let line = if opts.json {
                serde_json::to_string(&s).context("encoding an event")?
            } else {
                s.text()
            };
            if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                return Ok(());
            }
            shown += 1;
            if opts.count.is_some_and(|c| shown >= c) {
                return Ok(());
            }
        }
        if last.elapsed() >= Duration::from_secs(1) {
            last = Instant::now();
            switch.renew()?;
            let now = programs(pin_dir)?;
            if now != progs {
                if now.is_empty() {
                    eprintln!(
                        "xennet-agent monitor: no program uses the datapath any more (removed \
                         with `xennet-agent down`?); waiting"
                    );
                } else {
                    eprintln!(
                        "xennet-agent monitor: the datapath's programs changed ({} → {}): the \
                         agent restarted or reloaded them; following the new ones",
                        describe(&progs),
                        describe(&now)
                    );
                    logger.flush();
                    logger = attach(&now, &sink)?;
                }
                progs = now;
            }
        }
    }
    drop(switch);
    Ok(())
}
