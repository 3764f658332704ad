//! The running agent's state and what each event does to it: apply a configuration, follow
//! link changes, add and remove run-time ports, reload, answer the control socket.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use tracing::{info, warn};
use xennet_agent::{
    config::Config,
    control::{PortAdd, ReloadReport, Request, Response},
    datapath::{Changes, Datapath, Port},
    netlink::Netlink,
    resolve::{RuntimePorts, ethernet_only, resolve, runtime_port},
    stats::{self, PortCounters},
};

/// The running agent: its datapath, config, run-time ports and netlink handle.
pub(super) struct Agent {
    config_path: PathBuf,
    /// The configuration in effect.
    pub(super) cfg: Config,
    /// The resolved configuration the datapath was last brought to, less the ports left out:
    /// what a failed start-up or reload rolls back to.
    applied: Config,
    runtime: RuntimePorts,
    /// The datapath.
    pub(super) dp: Datapath,
    nl: Netlink,
    /// Interfaces the last resolve was waiting for (logged once).
    waiting: Vec<String>,
}

impl Agent {
    /// Load the datapath and open netlink for the configuration file `config_path`; nothing
    /// is attached until [`Agent::apply`]. Pin directory, socket and FDB size come from `cfg`.
    pub(super) fn new(config_path: &Path, cfg: &Config) -> anyhow::Result<Self> {
        let dp = Datapath::open_adopting(&cfg.pin_dir, cfg.fdb_max_entries)?;
        // Run-time ports an earlier agent recorded, checked against this configuration.
        let mut runtime = RuntimePorts::new();
        for req in dp.port_adds() {
            match runtime_port(cfg, &runtime, &req) {
                Ok(p) => {
                    runtime.insert(req.interface.clone(), p);
                }
                Err(e) => {
                    warn!(port = %req.interface, error = %format!("{e:#}"), "recorded run-time port dropped");
                }
            }
        }
        Ok(Agent {
            config_path: config_path.to_path_buf(),
            dp,
            nl: Netlink::new()?,
            runtime,
            waiting: Vec::new(),
            cfg: empty(cfg),
            applied: empty(cfg),
        })
    }

    /// Create/adopt host ports for `cfg`, then converge on it: all of it, or nothing (the
    /// datapath rolled back, host ports this call created deleted again).
    pub(super) async fn apply(&mut self, cfg: Config) -> anyhow::Result<Changes> {
        let mut created = Vec::new();
        let result = match self.prepare_hosts(&cfg, &mut created).await {
            Ok(()) => self.converge(&cfg, true).await,
            Err(e) => Err(e),
        };
        let changes = match result {
            Ok(c) => c,
            Err(e) => {
                let old: Vec<&str> = host_interfaces(&self.cfg);
                let new: Vec<String> = host_interfaces(&cfg)
                    .into_iter()
                    .filter(|h| !old.contains(h))
                    .map(str::to_string)
                    .collect();
                for h in new {
                    self.dp.forget_pass(&h);
                    if created.contains(&h) {
                        if let Err(d) = self.nl.delete(&h).await {
                            warn!(interface = %h, error = %format!("{d:#}"), "deleting a host port created for a failed apply");
                        }
                    }
                }
                return Err(e);
            }
        };
        let old = std::mem::replace(&mut self.cfg, cfg);
        // Host ports whose bridge no longer has one: the bridge side is detached by now.
        for gone in host_interfaces(&old) {
            if !host_interfaces(&self.cfg).contains(&gone) {
                self.dp.forget_pass(gone);
                if let Err(e) = self.nl.delete(gone).await {
                    warn!(interface = %gone, error = %format!("{e:#}"), "deleting a host port no longer configured");
                }
            }
        }
        Ok(changes)
    }

    /// Create (or adopt) `cfg`'s host ports and attach the pass program to their dom0 sides;
    /// the dom0 sides created are pushed on `created`.
    async fn prepare_hosts(
        &mut self,
        cfg: &Config,
        created: &mut Vec<String>,
    ) -> anyhow::Result<()> {
        for h in cfg.bridges.iter().filter_map(|b| b.host.as_ref()) {
            if self.nl.ensure_host(h).await? {
                self.dp.host_created(&h.interface);
                created.push(h.interface.clone());
            }
            self.dp.attach_pass(&h.interface)?;
        }
        Ok(())
    }

    /// Resolve `cfg`'s ports against the interfaces that exist now, keep each bridge's MTUs
    /// in agreement, and bring the datapath to the result. `strict` (start-up, reload): any
    /// problem fails the whole operation. Otherwise (hot-plug): a port that cannot join —
    /// MTU mismatch, attach failure — is left out and logged, and the others go on.
    async fn converge(&mut self, cfg: &Config, strict: bool) -> anyhow::Result<Changes> {
        let links = self.nl.links().await?;
        // A run-time port whose interface is gone (guest stopped) is forgotten.
        self.runtime.retain(|name, _| links.contains_key(name));
        let mut resolved = resolve(cfg, &links, &self.runtime);
        if !resolved.refused.is_empty() {
            if strict {
                anyhow::bail!("{}", resolved.refused.join("; "));
            }
            warn!(problems = ?resolved.refused, "ports left out");
        }
        if resolved.waiting != self.waiting {
            if !resolved.waiting.is_empty() {
                info!(interfaces = ?resolved.waiting, "waiting for interfaces to appear");
            }
            self.waiting.clone_from(&resolved.waiting);
        }
        let attached: Vec<Port> = self.dp.ports();
        // Joining ports left out for their MTU (reported in `failed`).
        let mut left_out = Vec::new();
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
                     it on every port; guests must match) or `allow_mtu_mismatch = true`; \
                     nothing changed",
                    b.name,
                    list.join(", ")
                );
            }
            // Only joining ports are left out; attached ones stay (an operator changed an MTU).
            let joining = |n: &str| !attached.iter().any(|p| p.interface == n);
            warn!(bridge = %b.name, problems = ?list, "MTU differs from the bridge's: joining ports left out");
            for (n, m, w) in offenders.iter().filter(|(n, _, _)| joining(n)) {
                left_out.push(format!(
                    "bridge {:?}, port {n:?}: MTU {m} differs from the bridge's {w} (set `mtu` \
                     on the bridge, or `allow_mtu_mismatch = true`)",
                    b.name
                ));
            }
            b.ports.retain(|p| {
                !offenders
                    .iter()
                    .any(|(n, _, _)| *n == p.interface && joining(n))
            });
        }
        let applied = if strict {
            self.dp.apply_or_stop(&resolved.config)
        } else {
            self.dp.apply(&resolved.config)
        };
        let mut changes = match applied {
            Ok(c) if !strict || c.failed.is_empty() => c,
            Ok(c) => {
                let why = anyhow::anyhow!("ports could not be attached: {}", c.failed.join("; "));
                return Err(self.roll_back(&why));
            }
            Err(e) if strict => return Err(self.roll_back(&e)),
            Err(e) => return Err(e),
        };
        self.applied = attached_part(&resolved.config, &self.dp.ports());
        changes.failed.extend(left_out);
        if !changes.failed.is_empty() {
            warn!(failed = ?changes.failed, "ports left out");
        }
        Ok(changes)
    }

    /// Bring the datapath back to the configuration it had before a failed strict apply;
    /// the error to report: `why`, and whether the datapath is as it was.
    fn roll_back(&mut self, why: &anyhow::Error) -> anyhow::Error {
        let before = self.applied.clone();
        match self.dp.apply(&before) {
            Ok(c) if c.failed.is_empty() => {
                anyhow::anyhow!("{why:#}; rolled back: nothing changed")
            }
            Ok(c) => anyhow::anyhow!(
                "{why:#}; rolled back, but these ports could not be attached again: {}",
                c.failed.join("; ")
            ),
            Err(e) => anyhow::anyhow!("{why:#}; rolling back failed too: {e:#}"),
        }
    }

    /// Links changed: resolve again against the same configuration.
    pub(super) async fn relink(&mut self) -> anyhow::Result<Changes> {
        let cfg = self.cfg.clone();
        let changes = self.converge(&cfg, false).await?;
        if !changes.added.is_empty() || !changes.removed.is_empty() {
            info!(added = ?changes.added, removed = ?changes.removed, "ports followed link changes");
        }
        Ok(changes)
    }

    async fn port_add(&mut self, req: &PortAdd) -> anyhow::Result<Changes> {
        let (bridge, spec) = runtime_port(&self.cfg, &self.runtime, req)?;
        match self.nl.link_type(&req.interface).await? {
            None => anyhow::bail!("interface {:?} does not exist", req.interface),
            Some(link) => ethernet_only(&req.interface, &link).map_err(anyhow::Error::msg)?,
        }
        let previous = self
            .runtime
            .insert(req.interface.clone(), (bridge.clone(), spec));
        let result = self.relink().await.and_then(|c| {
            // Left out (MTU, attach failure): an error, with the reason.
            let joined = self
                .dp
                .ports()
                .iter()
                .any(|p| p.interface == req.interface && p.bridge == bridge);
            if joined {
                return Ok(c);
            }
            let quoted = format!("port {:?}", req.interface);
            let plain = format!("{}:", req.interface);
            let why: Vec<&str> = c
                .failed
                .iter()
                .filter(|f| f.contains(&quoted) || f.starts_with(&plain))
                .map(String::as_str)
                .collect();
            if why.is_empty() {
                anyhow::bail!("{} could not be attached", req.interface);
            }
            anyhow::bail!("{}", why.join("; "))
        });
        match result {
            Ok(c) => {
                self.dp.remember_port_add(req);
                Ok(c)
            }
            Err(e) => {
                // Leave the run-time ports, and so the datapath, as they were.
                match previous {
                    Some(p) => self.runtime.insert(req.interface.clone(), p),
                    None => self.runtime.remove(&req.interface),
                };
                if let Err(r) = self.relink().await {
                    anyhow::bail!("{e:#}; restoring the ports as they were failed: {r:#}");
                }
                anyhow::bail!("{e:#}; nothing changed")
            }
        }
    }

    async fn port_del(&mut self, interface: &str) -> anyhow::Result<Changes> {
        if self.runtime.remove(interface).is_none() {
            anyhow::bail!("{interface} is not a port added with `port add`");
        }
        self.dp.forget_port_add(interface);
        self.relink().await
    }

    /// Reload, counted for `/metrics`.
    pub(super) async fn reload(&mut self) -> anyhow::Result<ReloadReport> {
        let result = self.reload_config().await;
        xennet_agent::metrics::note_reload(result.is_ok());
        result
    }

    async fn reload_config(&mut self) -> anyhow::Result<ReloadReport> {
        let mut cfg = Config::load(&self.config_path).with_context(|| {
            format!("{} is invalid; nothing changed", self.config_path.display())
        })?;
        let mut settings = settings_changed(&self.cfg, &cfg);
        // Pin directory, socket and FDB size are fixed for the life of the process.
        if cfg.fdb_max_entries != self.cfg.fdb_max_entries {
            warn!("fdb_max_entries changes take effect at the next start");
            settings.push(format!(
                "fdb_max_entries: {} -> {} (at the next start)",
                self.cfg.fdb_max_entries, cfg.fdb_max_entries
            ));
        }
        for (key, old, new) in [
            ("pin_dir", &self.cfg.pin_dir, &cfg.pin_dir),
            ("socket", &self.cfg.socket, &cfg.socket),
        ] {
            if old != new {
                settings.push(format!(
                    "{key}: {} -> {} (at the next start)",
                    old.display(),
                    new.display()
                ));
            }
        }
        cfg.pin_dir.clone_from(&self.cfg.pin_dir);
        cfg.socket.clone_from(&self.cfg.socket);
        cfg.fdb_max_entries = self.cfg.fdb_max_entries;
        let ports = self.apply(cfg).await?;
        info!(changes = ?ports, ?settings, "configuration reloaded");
        Ok(ReloadReport { ports, settings })
    }

    /// `reload` asked for `-c FILE`: refused unless FILE is the file this agent runs with.
    fn same_file(&self, asked: Option<&Path>) -> anyhow::Result<()> {
        let Some(asked) = asked else { return Ok(()) };
        let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        if canon(asked) != canon(&self.config_path) {
            anyhow::bail!(
                "the agent runs with {}, not {}: it re-reads its own file (start it with the                  other one to use that); nothing changed",
                self.config_path.display(),
                asked.display()
            );
        }
        Ok(())
    }

    /// The counters of every port, with this namespace's interface names and the bridges'.
    fn stats(&self) -> anyhow::Result<Vec<PortCounters>> {
        let mut all = stats::read(&self.cfg.pin_dir)?;
        let ports = self.dp.ports();
        for c in &mut all {
            if let Some(p) = ports.iter().find(|p| p.ifindex == c.ifindex) {
                c.bridge.clone_from(&p.bridge);
            }
        }
        Ok(all)
    }

    /// Carry out a control request.
    pub(super) async fn answer(&mut self, req: Request) -> Response {
        match req {
            Request::Fdb { bridge } => {
                if let Some(b) = &bridge
                    && !self.cfg.bridges.iter().any(|x| &x.name == b)
                {
                    let names: Vec<&str> =
                        self.cfg.bridges.iter().map(|x| x.name.as_str()).collect();
                    let e = anyhow::anyhow!("no bridge {b:?} (bridges: {})", names.join(", "));
                    return Response::err(&e);
                }
                match self.dp.fdb_entries(bridge.as_deref()) {
                    Ok(v) => Response::ok(&v),
                    Err(e) => Response::err(&e),
                }
            }
            Request::Ports => Response::ok(&self.dp.ports()),
            Request::Stats => match self.stats() {
                Ok(v) => Response::ok(&v),
                Err(e) => Response::err(&e),
            },
            Request::Reload { config } => match self.same_file(config.as_deref()) {
                Err(e) => Response::err(&e),
                Ok(()) => match self.reload().await {
                    Ok(c) => Response::ok(&c),
                    Err(e) => Response::err(&e),
                },
            },
            Request::PortAdd(req) => match self.port_add(&req).await {
                Ok(c) => Response::ok(&c),
                Err(e) => Response::err(&e),
            },
            Request::PortDel { interface } => match self.port_del(&interface).await {
                Ok(c) => Response::ok(&c),
                Err(e) => Response::err(&e),
            },
        }
    }
}

/// The bridge settings that differ between `old` and `new`, as `bridge B: key: old -> new`.
fn settings_changed(old: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for n in &new.bridges {
        let Some(o) = old.bridges.iter().find(|o| o.name == n.name) else {
            continue;
        };
        let mtu = |m: Option<u32>| m.map_or_else(|| "unset".to_owned(), |m| m.to_string());
        for (key, was, is) in [
            (
                "fdb_aging_secs",
                o.fdb_aging_secs.to_string(),
                n.fdb_aging_secs.to_string(),
            ),
            (
                "tpid",
                format!("{:#06x}", o.tpid),
                format!("{:#06x}", n.tpid),
            ),
            ("mtu", mtu(o.mtu), mtu(n.mtu)),
            (
                "allow_mtu_mismatch",
                o.allow_mtu_mismatch.to_string(),
                n.allow_mtu_mismatch.to_string(),
            ),
        ] {
            if was != is {
                out.push(format!("bridge {:?}: {key}: {was} -> {is}", n.name));
            }
        }
    }
    out
}

/// A configuration of no bridges, with `cfg`'s agent settings.
fn empty(cfg: &Config) -> Config {
    Config {
        pin_dir: cfg.pin_dir.clone(),
        socket: cfg.socket.clone(),
        fdb_max_entries: cfg.fdb_max_entries,
        metrics: cfg.metrics,
        bridges: Vec::new(),
    }
}

/// The dom0 sides of `cfg`'s host ports.
fn host_interfaces(cfg: &Config) -> Vec<&str> {
    cfg.bridges
        .iter()
        .filter_map(|b| b.host.as_ref())
        .map(|h| h.interface.as_str())
        .collect()
}

/// `resolved`, keeping only the ports attached (`ports`) in their bridge.
fn attached_part(resolved: &Config, ports: &[Port]) -> Config {
    let mut out = resolved.clone();
    for b in &mut out.bridges {
        b.ports.retain(|p| {
            ports
                .iter()
                .any(|a| a.interface == p.interface && a.bridge == b.name)
        });
    }
    out
}
