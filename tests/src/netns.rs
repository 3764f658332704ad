//! Network namespaces as RAII guards, and helpers to wire them with veth
//! pairs.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};

use crate::frame::{Mac, format_mac};
use crate::output::show;

/// Per-process counter making namespace names unique within the process.
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Serialises `ip netns add` within the process: the first one creates the
/// `/run/netns` mount point, and concurrent first calls can race there.
static ADD_LOCK: Mutex<()> = Mutex::new(());

/// How long [`Drop`] waits for killed processes to leave the namespace.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// A network namespace created for a test, deleted (with every process still
/// inside it killed) on drop.
///
/// The namespace is named `xn-{tag}-{pid}-{counter}` and lives at
/// `/run/netns/NAME`, so `ip netns exec NAME ...` works on it. Only `lo`
/// exists (and is up) at first. IPv6 is disabled for all interfaces of the
/// namespace (`net.ipv6.conf.{all,default}.disable_ipv6 = 1`) so that fresh
/// interfaces do not emit router solicitations, MLD reports and the like:
/// every frame a test sees is one it caused.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a uniquely named namespace `xn-{tag}-{pid}-{counter}` with
    /// `lo` up and IPv6 disabled. `tag` must be non-empty ASCII letters,
    /// digits, `_` or `-` (keep it short).
    pub fn new(tag: &str) -> Result<Netns> {
        ensure!(
            !tag.is_empty()
                && tag.len() <= 32
                && tag
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "bad namespace tag {tag:?}: want 1..=32 chars of [A-Za-z0-9_-]"
        );
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("xn-{tag}-{}-{n}", std::process::id());
        {
            let _guard = ADD_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
            run_ok(Command::new("ip").args(["netns", "add", &name]))
                .with_context(|| format!("creating network namespace {name}"))?;
        }
        // From here on, dropping `ns` deletes the namespace again.
        let ns = Netns { name };
        ns.setup()
            .with_context(|| format!("setting up network namespace {}", ns.name))?;
        Ok(ns)
    }

    fn setup(&self) -> Result<()> {
        self.run_in(|| -> Result<()> {
            for conf in ["all", "default"] {
                let path = format!("/proc/sys/net/ipv6/conf/{conf}/disable_ipv6");
                match std::fs::write(&path, "1") {
                    // Kernel without IPv6: nothing to silence.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    r => r.with_context(|| format!("writing 1 to {path}"))?,
                }
            }
            Ok(())
        })??;
        self.exec_ok(&["ip", "link", "set", "dev", "lo", "up"])?;
        Ok(())
    }

    /// The namespace's name, as `ip netns` knows it.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A [`Command`] that runs `args` inside the namespace (through
    /// `ip netns exec NAME`), for callers that want to set up stdio
    /// themselves. `args` must not be empty.
    pub fn command(&self, args: &[&str]) -> Result<Command> {
        ensure!(!args.is_empty(), "no command given to run in {}", self.name);
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).args(args);
        Ok(cmd)
    }

    /// Runs `args` inside the namespace, waits for it and returns its output
    /// (whatever the exit status).
    pub fn exec(&self, args: &[&str]) -> Result<Output> {
        let mut cmd = self.command(args)?;
        cmd.stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {args:?} in {}", self.name))
    }

    /// Like [`Netns::exec`], but fails (with stdout and stderr in the error)
    /// unless the command exits successfully.
    pub fn exec_ok(&self, args: &[&str]) -> Result<Output> {
        let mut cmd = self.command(args)?;
        run_ok(cmd.stdin(Stdio::null())).with_context(|| format!("in namespace {}", self.name))
    }

    /// Three pings to `ip`, 200 ms apart (one second to answer each), from
    /// inside the namespace; the output whatever the exit status.
    pub fn ping(&self, ip: &str) -> Result<Output> {
        self.exec(&["ping", "-c", "3", "-i", "0.2", "-W", "1", ip])
    }

    /// Starts `args` inside the namespace and returns without waiting.
    /// stdin is null; stdout and stderr are inherited. Whatever still runs
    /// in the namespace is killed when it is dropped (the caller should
    /// still `wait` on the child to reap it).
    pub fn spawn(&self, args: &[&str]) -> Result<Child> {
        let mut cmd = self.command(args)?;
        cmd.stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {args:?} in {}", self.name))
    }

    /// Runs `f` on a fresh thread that has joined this namespace
    /// (`setns(CLONE_NEWNET)`), and returns its result. Sockets created in
    /// `f` belong to the namespace and stay there after `f` returns. A panic
    /// in `f` is returned as an error.
    pub fn run_in<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        let path = format!("/run/netns/{}", self.name);
        let file = File::open(&path).with_context(|| format!("opening {path}"))?;
        std::thread::scope(|s| {
            let handle = s.spawn(move || -> Result<R> {
                // SAFETY: setns only changes this thread's network namespace;
                // the fd is valid for the duration of the call.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                if rc != 0 {
                    return Err(std::io::Error::last_os_error())
                        .with_context(|| format!("setns into {path}"));
                }
                drop(file);
                Ok(f())
            });
            match handle.join() {
                Ok(r) => r,
                Err(panic) => {
                    let msg = panic
                        .downcast_ref::<&str>()
                        .map(ToString::to_string)
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "non-string panic payload".to_owned());
                    Err(anyhow!(
                        "closure panicked in namespace {}: {msg}",
                        self.name
                    ))
                }
            }
        })
    }

    /// Pids of the processes in the namespace (`ip netns pids`), except this
    /// process.
    fn pids(&self) -> Result<Vec<i32>> {
        let out = run_ok(Command::new("ip").args(["netns", "pids", &self.name]))?;
        let me = std::process::id();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(|p| p.parse::<i32>().with_context(|| format!("bad pid {p:?}")))
            .filter(|p| !matches!(p, Ok(p) if p.unsigned_abs() == me))
            .collect()
    }

    /// Kills everything in the namespace and waits until it is empty.
    fn kill_all(&self) -> Result<()> {
        let deadline = Instant::now() + KILL_WAIT;
        loop {
            let pids = self.pids()?;
            if pids.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("processes {pids:?} still in the namespace after SIGKILL");
            }
            for pid in pids {
                // SAFETY: plain syscall; a stale pid only yields ESRCH.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = self.kill_all() {
            eprintln!("xennet-tests: netns {}: {e:#}", self.name);
        }
        if let Err(e) = run_ok(Command::new("ip").args(["netns", "del", &self.name])) {
            eprintln!("xennet-tests: deleting netns {}: {e:#}", self.name);
        }
    }
}

/// Runs `cmd` and fails, with its stdout and stderr, unless it succeeds.
fn run_ok(cmd: &mut Command) -> Result<Output> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed:\n{}", show(&out));
    }
    Ok(out)
}

/// Checks an interface name fits `IFNAMSIZ` (15 bytes).
fn check_ifname(ifname: &str) -> Result<()> {
    ensure!(
        !ifname.is_empty() && ifname.len() < libc::IFNAMSIZ,
        "bad interface name {ifname:?}: want 1..=15 bytes"
    );
    Ok(())
}

/// Creates a veth pair: `a_name` in `a`, `b_name` in `b` (which may be the
/// same namespace), both up.
pub fn veth(a: &Netns, a_name: &str, b: &Netns, b_name: &str) -> Result<()> {
    check_ifname(a_name)?;
    check_ifname(b_name)?;
    let context = || format!("creating veth {}:{a_name} <-> {}:{b_name}", a.name, b.name);
    a.exec_ok(&[
        "ip", "link", "add", a_name, "type", "veth", "peer", "name", b_name, "netns", &b.name,
    ])
    .with_context(context)?;
    a.exec_ok(&["ip", "link", "set", "dev", a_name, "up"])
        .with_context(context)?;
    b.exec_ok(&["ip", "link", "set", "dev", b_name, "up"])
        .with_context(context)?;
    Ok(())
}

/// Sets the MAC address of `ifname` in `ns`.
pub fn set_mac(ns: &Netns, ifname: &str, mac: Mac) -> Result<()> {
    ns.exec_ok(&[
        "ip",
        "link",
        "set",
        "dev",
        ifname,
        "address",
        &format_mac(&mac),
    ])?;
    Ok(())
}

/// Adds an IP address in CIDR notation (e.g. `10.0.0.1/24`) to `ifname`.
pub fn add_addr(ns: &Netns, ifname: &str, cidr: &str) -> Result<()> {
    ns.exec_ok(&["ip", "addr", "add", cidr, "dev", ifname])?;
    Ok(())
}

/// Turns GRO on or off on `ifname` (`ethtool -K IF gro on|off`).
///
/// Turn it on for a veth end that must receive frames an XDP program
/// redirects (`XDP_REDIRECT`) into its peer: `veth_xdp_xmit` needs NAPI on
/// the receiving end, which a veth only runs with GRO on or an XDP program
/// of its own attached; otherwise such frames are dropped.
pub fn set_gro(ns: &Netns, ifname: &str, on: bool) -> Result<()> {
    let state = if on { "on" } else { "off" };
    ns.exec_ok(&["ethtool", "-K", ifname, "gro", state])?;
    Ok(())
}

/// The interface index of `ifname` inside `ns`.
pub fn ifindex(ns: &Netns, ifname: &str) -> Result<u32> {
    check_ifname(ifname)?;
    let c = CString::new(ifname).context("interface name contains NUL")?;
    // SAFETY: `c` is a valid NUL-terminated string.
    let idx = ns.run_in(|| unsafe { libc::if_nametoindex(c.as_ptr()) })?;
    ensure!(
        idx != 0,
        "no interface {ifname:?} in namespace {}",
        ns.name()
    );
    Ok(idx)
}

/// Adds (or replaces) a permanent neighbour (static ARP) entry mapping `ip`
/// to `mac` on `ifname`.
pub fn add_neigh(ns: &Netns, ifname: &str, ip: &str, mac: Mac) -> Result<()> {
    ns.exec_ok(&[
        "ip",
        "neigh",
        "replace",
        ip,
        "lladdr",
        &format_mac(&mac),
        "dev",
        ifname,
        "nud",
        "permanent",
    ])?;
    Ok(())
}
