//! A simulated dom0 (the seed's trunk setup) and a running `xennet-agent` over it.
//!
//! ```text
//!   [up] eth0 ──── eth1 [dom0] vif1.0 ──── eth0 [g1]  VLAN 4094  10.94.0.1
//!   upstream switch,          vif2.0 ──── eth0 [g2]  VLAN 4094  10.94.0.2
//!   tagged 4093/4094          vif3.0 ──── eth0 [g3]  VLAN 4093  10.93.0.3
//! ```
//!
//! Used by the integration tests and by `cargo xtask demo`.

use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use anyhow::{Context as _, Result, anyhow, bail};

use crate::{
    Netns, RawSocket, add_addr, add_neigh,
    counters::Counters,
    fdb::FdbRow,
    frame::{Mac, parse_mac},
    set_gro, set_mac, veth,
};

/// The seed config the tests and the demo run (with the pin directory overridden).
pub const SEED_CONFIG: &str = "examples/seed-trunk.toml";

/// MAC of the upstream router (static on the trunk for both VLANs in the seed config).
pub const UPSTREAM_MAC: Mac = [0x02, 0, 0, 0, 0, 0xfe];

/// One guest behind a vif.
#[derive(Debug)]
pub struct Guest {
    /// The guest's namespace; its interface is `eth0`.
    pub ns: Netns,
    /// The dom0-side interface (`vifN.0`).
    pub vif: &'static str,
    /// The guest's MAC (static in the seed config).
    pub mac: Mac,
    /// The guest's IPv4 address.
    pub ip: &'static str,
    /// The guest's access VLAN.
    pub vlan: u16,
}

/// The seed's trunk setup in namespaces.
#[derive(Debug)]
pub struct SeedDom0 {
    /// dom0: holds `eth1` and the vifs.
    pub dom0: Netns,
    /// The upstream switch: `eth0`, peer of dom0's `eth1`.
    pub up: Netns,
    /// Guests 1 and 2 (VLAN 4094) and 3 (VLAN 4093).
    pub guests: Vec<Guest>,
}

fn mac(s: &str) -> Result<Mac> {
    parse_mac(s)
}

impl SeedDom0 {
    /// Build the namespaces and links; nothing of xennet runs yet.
    pub fn new(tag: &str) -> Result<SeedDom0> {
        let (dom0, up) = dom0_and_upstream(tag, None)?;
        let specs = [
            ("vif1.0", "00:16:3e:00:00:01", "10.94.0.1", 4094),
            ("vif2.0", "00:16:3e:00:00:02", "10.94.0.2", 4094),
            ("vif3.0", "00:16:3e:00:00:03", "10.93.0.3", 4093),
        ];
        let mut guests = Vec::new();
        for (i, (vif, m, ip, vlan)) in specs.into_iter().enumerate() {
            let ns = Netns::new(&format!("{tag}-g{}", i + 1))?;
            veth(&dom0, vif, &ns, "eth0")?;
            set_mac(&ns, "eth0", mac(m)?)?;
            set_gro(&ns, "eth0", true)?;
            add_addr(&ns, "eth0", &format!("{ip}/16"))?;
            guests.push(Guest {
                ns,
                vif,
                mac: mac(m)?,
                ip,
                vlan,
            });
        }
        // Without flooding, ARP cannot cross: guests know each other's MACs statically.
        for a in &guests {
            for b in &guests {
                if a.vif != b.vif {
                    add_neigh(&a.ns, "eth0", b.ip, b.mac)?;
                }
            }
        }
        Ok(SeedDom0 { dom0, up, guests })
    }

    /// The guest behind `vif`.
    pub fn guest(&self, vif: &str) -> Result<&Guest> {
        self.guests
            .iter()
            .find(|g| g.vif == vif)
            .ok_or_else(|| anyhow!("no guest behind {vif}"))
    }

    /// A raw socket on a guest's `eth0`.
    pub fn guest_socket(&self, vif: &str) -> Result<RawSocket> {
        RawSocket::open(&self.guest(vif)?.ns, "eth0")
    }

    /// A raw socket on the upstream switch's `eth0`.
    pub fn upstream_socket(&self) -> Result<RawSocket> {
        RawSocket::open(&self.up, "eth0")
    }
}

/// How the ports are attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Everything native XDP (the seed config as it is).
    Xdp,
    /// vifs in TC, as xen-netback requires; the uplink in XDP.
    VifsTc,
    /// Everything in TC.
    AllTc,
}

impl Mode {
    /// The seed config with this mode's `attach` lines, written to a temp file.
    /// `bridge_extra` is appended right after the bridge's `name` line (e.g. `mtu = 9000`).
    pub fn config(self, tag: &str, bridge_extra: &str) -> Result<PathBuf> {
        let seed = workspace_root().join(SEED_CONFIG);
        let text = std::fs::read_to_string(&seed)
            .with_context(|| format!("reading {}", seed.display()))?;
        let mut out = String::new();
        for line in text.lines() {
            out.push_str(line);
            out.push('\n');
            if line.starts_with("name = ") && !bridge_extra.is_empty() {
                out.push_str(bridge_extra);
                out.push('\n');
            }
            let vif = line.starts_with("interface = \"vif");
            let eth = line.starts_with("interface = \"eth");
            if matches!(
                (self, vif, eth),
                (Mode::VifsTc | Mode::AllTc, true, _) | (Mode::AllTc, _, true)
            ) {
                out.push_str("attach = \"tc\"\n");
            }
        }
        let path = std::env::temp_dir().join(format!("xennet-{tag}.toml"));
        std::fs::write(&path, out).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }
}

/// A private bpf filesystem for one agent's pins, unmounted and removed on drop.
#[derive(Debug)]
pub struct BpfFs {
    dir: PathBuf,
}

impl BpfFs {
    /// Mount a fresh bpffs on a new directory named after `tag`.
    pub fn new(tag: &str) -> Result<BpfFs> {
        let dir = std::env::temp_dir().join(format!("xennet-bpffs-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let out = Command::new("mount")
            .args(["-t", "bpf", "bpf"])
            .arg(&dir)
            .output()
            .context("running mount")?;
        if !out.status.success() {
            let _ = std::fs::remove_dir(&dir);
            bail!(
                "mounting bpffs on {}: {}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(BpfFs { dir })
    }

    /// The pin directory to hand to the agent.
    #[must_use]
    pub fn pin_dir(&self) -> PathBuf {
        self.dir.join("xennet")
    }
}

impl Drop for BpfFs {
    fn drop(&mut self) {
        match Command::new("umount").arg(&self.dir).output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!(
                "umount {}: {}",
                self.dir.display(),
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => eprintln!("umount {}: {e}", self.dir.display()),
        }
        if let Err(e) = std::fs::remove_dir(&self.dir) {
            eprintln!("removing {}: {e}", self.dir.display());
        }
    }
}

/// The agent binary the tests run: `$XENNET_AGENT` (set by `cargo xtask test`).
pub fn agent_bin() -> Result<PathBuf> {
    std::env::var_os("XENNET_AGENT")
        .map(PathBuf::from)
        .ok_or_else(|| anyhow!("XENNET_AGENT is not set: run the tests with `cargo xtask test`"))
}

/// Workspace root (for example configs).
#[must_use]
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Run the agent binary with `args` in `ns`'s network namespace, keeping this mount
/// namespace (so the agent sees the same bpffs as we do, unlike `ip netns exec`).
#[must_use]
pub fn agent_command(bin: &Path, ns: &Netns, args: &[&str]) -> Command {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net=/run/netns/{}", ns.name()))
        .arg(bin)
        .args(args);
    c
}

/// Whether an XDP program is attached to `ifname` in `ns`.
pub fn xdp_attached(ns: &Netns, ifname: &str) -> Result<bool> {
    let o = ns.exec_ok(&["ip", "-d", "link", "show", "dev", ifname])?;
    Ok(String::from_utf8_lossy(&o.stdout).contains("prog/xdp"))
}

/// The seed's trunk setup with the agent running on the seed config in `mode` (`extra`
/// lines on the bridge, see [`Mode::config`]) and pinning in a private bpffs. Drop the agent
/// first, then the bpffs, then the namespaces.
pub fn start_seed(tag: &str, mode: Mode, extra: &str) -> Result<(SeedDom0, BpfFs, Agent)> {
    let sim = SeedDom0::new(tag).context("building the simulated dom0")?;
    let fs = BpfFs::new(sim.dom0.name()).context("mounting a bpffs")?;
    let cfg = mode
        .config(sim.dom0.name(), extra)
        .context("writing the config")?;
    let agent = Agent::start(&sim.dom0, &cfg, &fs.pin_dir());
    let _ = std::fs::remove_file(&cfg);
    Ok((sim, fs, agent.context("starting the agent")?))
}

/// dom0 and the upstream switch of a simulated setup, named after `tag`, joined by dom0's
/// `eth1` and the upstream's `eth0` (GRO on: receiving native-XDP redirects on a veth needs
/// NAPI on the receiving end), and the upstream's MAC set to `upstream_mac` if given.
pub fn dom0_and_upstream(tag: &str, upstream_mac: Option<Mac>) -> Result<(Netns, Netns)> {
    let dom0 = Netns::new(&format!("{tag}-d0"))?;
    let up = Netns::new(&format!("{tag}-up"))?;
    veth(&dom0, "eth1", &up, "eth0")?;
    if let Some(mac) = upstream_mac {
        set_mac(&up, "eth0", mac)?;
    }
    set_gro(&up, "eth0", true)?;
    Ok((dom0, up))
}

/// A running `xennet-agent run`. On drop it is stopped with SIGTERM and its datapath (which
/// outlives it) removed with `xennet-agent down`, unless [`Agent::leave_running`] or
/// [`Agent::kill9`] handed the datapath on to a next agent.
#[derive(Debug)]
pub struct Agent {
    child: Child,
    /// Run `down` on drop.
    down_on_drop: bool,
    bin: PathBuf,
    pin_dir: PathBuf,
    socket: PathBuf,
    log: PathBuf,
    netns: String,
}

impl Agent {
    /// Start the agent in `dom0` on `config`, pinning under `pin_dir`, and wait until it
    /// reports that every port is attached.
    pub fn start(dom0: &Netns, config: &Path, pin_dir: &Path) -> Result<Agent> {
        Agent::start_on(dom0, config, pin_dir, &Agent::socket_for(dom0))
    }

    /// As [`Agent::start`], with the control socket at `socket`.
    pub fn start_on(dom0: &Netns, config: &Path, pin_dir: &Path, socket: &Path) -> Result<Agent> {
        Agent::start_with(dom0, config, pin_dir, socket, &[])
    }

    /// As [`Agent::start`], with `env` added to the agent's environment (e.g. the testing
    /// aid `XENNET_TEST_OBJECT`, another build of the programs).
    pub fn start_env(
        dom0: &Netns,
        config: &Path,
        pin_dir: &Path,
        env: &[(&str, &Path)],
    ) -> Result<Agent> {
        Agent::start_with(dom0, config, pin_dir, &Agent::socket_for(dom0), env)
    }

    fn start_with(
        dom0: &Netns,
        config: &Path,
        pin_dir: &Path,
        socket: &Path,
        env: &[(&str, &Path)],
    ) -> Result<Agent> {
        let bin = agent_bin()?;
        let sock_name = socket
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let log =
            std::env::temp_dir().join(format!("xennet-agent-{}-{sock_name}.log", dom0.name()));
        let log_file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let cfg = config.to_string_lossy().into_owned();
        let pins = pin_dir.to_string_lossy().into_owned();
        let socket = socket.to_path_buf();
        let sock = socket.to_string_lossy().into_owned();
        let mut child = agent_command(
            &bin,
            dom0,
            &[
                "run",
                "--config",
                &cfg,
                "--pin-dir",
                &pins,
                "--socket",
                &sock,
            ],
        )
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file)
        .spawn()
        .context("starting xennet-agent")?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("agent stdout not captured"))?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("xennet-agent: ready") {
                    let _ = tx.send(line);
                }
            }
        });
        let mut agent = Agent {
            child,
            down_on_drop: true,
            bin,
            pin_dir: pin_dir.to_path_buf(),
            socket,
            log,
            netns: dom0.name().to_string(),
        };
        if rx.recv_timeout(Duration::from_secs(20)).is_ok() {
            return Ok(agent);
        }
        let status = agent.child.try_wait().ok().flatten();
        bail!(
            "agent did not become ready (exit status {status:?}); log:\n{}",
            agent.log_text()
        )
    }

    /// The control socket `start` gives the agent in `dom0` (tests write it into configs).
    #[must_use]
    pub fn socket_for(dom0: &Netns) -> PathBuf {
        std::env::temp_dir().join(format!("xennet-{}.sock", dom0.name()))
    }

    /// The agent's process id (nsenter execs the agent).
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the agent process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The agent's control socket.
    #[must_use]
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The agent's pin directory.
    #[must_use]
    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    /// Run `xennet-agent ARGS` in the agent's namespace, whatever its exit status.
    pub fn cli(&self, args: &[&str]) -> Result<std::process::Output> {
        Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.netns))
            .arg(&self.bin)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running xennet-agent {args:?}"))
    }

    /// Run `xennet-agent ARGS --socket S` (a client command) in the agent's namespace.
    pub fn ctl(&self, args: &[&str]) -> Result<std::process::Output> {
        let sock = self.socket.to_string_lossy().into_owned();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--socket", &sock]);
        self.cli(&all)
    }

    /// Like [`Agent::ctl`] with `--json`, parsed; fails when the command fails.
    pub fn ctl_json(&self, args: &[&str]) -> Result<serde_json::Value> {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.ctl(&all)?;
        if !out.status.success() {
            bail!(
                "xennet-agent {args:?} failed ({}): {}\nagent log:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr),
                self.log_text()
            );
        }
        serde_json::from_slice(&out.stdout).with_context(|| {
            format!(
                "parsing the JSON of xennet-agent {args:?}: {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// `ports --json`, as parsed JSON (an array of {bridge, interface, ifindex, slot,
    /// attached, vlans, host}).
    pub fn ports(&self) -> Result<Vec<serde_json::Value>> {
        let v = self.ctl_json(&["ports"])?;
        v.as_array()
            .cloned()
            .ok_or_else(|| anyhow!("ports JSON is not an array: {v}"))
    }

    /// `fdb show --json`, of one bridge or all.
    pub fn fdb(&self, bridge: Option<&str>) -> Result<Vec<FdbRow>> {
        let v = match bridge {
            Some(b) => self.ctl_json(&["fdb", "show", "--bridge", b])?,
            None => self.ctl_json(&["fdb", "show"])?,
        };
        let rows = v
            .as_array()
            .ok_or_else(|| anyhow!("fdb JSON is not an array: {v}"))?;
        rows.iter().map(FdbRow::from_json).collect()
    }

    /// Send a signal to the agent.
    pub fn signal(&self, sig: libc::c_int) -> Result<()> {
        let pid = libc::pid_t::try_from(self.child.id()).context("pid")?;
        // SAFETY: signalling our own child.
        if unsafe { libc::kill(pid, sig) } != 0 {
            bail!("kill: {}", std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// What the agent logged so far.
    #[must_use]
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `xennet-agent stats --json` in `dom0`, parsed: interface → counter name → value.
    pub fn stats(&self, dom0: &Netns) -> Result<Counters> {
        debug_assert_eq!(dom0.name(), self.netns);
        self.counters()
    }

    /// `xennet-agent stats --json` in the agent's namespace, parsed: interface → counter
    /// name → value.
    pub fn counters(&self) -> Result<Counters> {
        let pins = self.pin_dir.to_string_lossy().into_owned();
        let out = self
            .cli(&["stats", "--json", "--pin-dir", &pins])
            .context("running xennet-agent stats")?;
        if !out.status.success() {
            bail!(
                "xennet-agent stats failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).context("parsing stats JSON")?;
        let mut m = Counters::new();
        for p in v
            .as_array()
            .ok_or_else(|| anyhow!("stats JSON is not an array"))?
        {
            let name = p["interface"]
                .as_str()
                .ok_or_else(|| anyhow!("port without interface"))?
                .to_string();
            let mut c = std::collections::BTreeMap::new();
            for (k, val) in p["counters"]
                .as_object()
                .ok_or_else(|| anyhow!("port without counters"))?
            {
                c.insert(k.clone(), val.as_u64().unwrap_or(0));
            }
            m.insert(name, c);
        }
        Ok(m)
    }

    /// Stop with SIGTERM, wait, and remove the datapath with `down`; returns whether the
    /// agent exited successfully (a failing `down` is an error).
    pub fn stop(mut self) -> Result<bool> {
        let ok = self.terminate()?;
        self.down_on_drop = false;
        self.down()?;
        Ok(ok)
    }

    /// Stop with SIGTERM and wait, leaving the datapath running for a next agent; returns
    /// whether the agent exited successfully.
    pub fn leave_running(mut self) -> Result<bool> {
        self.down_on_drop = false;
        self.terminate()
    }

    /// Kill with SIGKILL (no chance to clean anything) and wait, leaving the datapath.
    pub fn kill9(mut self) -> Result<()> {
        self.down_on_drop = false;
        self.child.kill().context("SIGKILL")?;
        self.child.wait().context("waiting for the killed agent")?;
        Ok(())
    }

    /// `xennet-agent down` on this agent's pin directory and socket (the agent stopped).
    pub fn down(&self) -> Result<String> {
        let pins = self.pin_dir.to_string_lossy().into_owned();
        let sock = self.socket.to_string_lossy().into_owned();
        let out = self.cli(&["down", "--pin-dir", &pins, "--socket", &sock])?;
        if !out.status.success() {
            bail!(
                "xennet-agent down failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Stop with SIGTERM (if still running) and wait; returns whether it exited successfully.
    pub fn terminate(&mut self) -> Result<bool> {
        if let Some(status) = self.child.try_wait().context("polling agent")? {
            return Ok(status.success());
        }
        let pid = libc::pid_t::try_from(self.child.id()).context("pid")?;
        // nsenter execs the agent, so this pid is the agent itself.
        // SAFETY: sending a signal to our own child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        for _ in 0..100 {
            if let Some(status) = self.child.try_wait().context("polling agent")? {
                return Ok(status.success());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        bail!(
            "agent ignored SIGTERM for 5 s; killed. log:\n{}",
            self.log_text()
        )
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Err(e) = self.terminate() {
            eprintln!("stopping agent: {e:#}");
        }
        if self.down_on_drop {
            if let Err(e) = self.down() {
                eprintln!("{e:#}");
            }
        }
        let _ = std::fs::remove_file(&self.log);
    }
}
