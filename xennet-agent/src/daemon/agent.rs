//! The running agent's state and what each event does to it: apply a configuration, follow
//! link changes, add and remove run-time ports, reload, answer the control socket.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use tracing::{info, warn};
use xennet_agent::{
    config::Config,
    control::{self, PortAdd, Request, Response},
    datapath::{Changes, Datapath, Port},
    netlink::Netlink,
    resolve::{RuntimePorts, resolve, runtime_port},
};

/// The running agent: its datapath, config, run-time ports and netlink handle.
pub(super) struct Agent {
    config_path: PathBuf,
    /// The configuration in effect.
    pub(super) cfg: Config,
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
            cfg: Config {
                pin_dir: cfg.pin_dir.clone(),
                socket: cfg.socket.clone(),
                fdb_max_entries: cfg.fdb_max_entries,
                bridges: Vec::new(),
            },
        })
    }

    /// Create/adopt host ports for `cfg`, then converge on it.
    pub(super) async fn apply(&mut self, cfg: Config) -> anyhow::Result<Changes> {
        for h in cfg.bridges.iter().filter_map(|b| b.host.as_ref()) {
            if self.nl.ensure_host(h).await? {
                self.dp.host_created(&h.interface);
            }
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
        if self.nl.index(&req.interface).await?.is_none() {
            anyhow::bail!("interface {:?} does not exist", req.interface);
        }
        let previous = self.runtime.insert(req.interface.clone(), (bridge, spec));
        match self.relink().await {
            Ok(c) => {
                self.dp.remember_port_add(req);
                Ok(c)
            }
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
        self.dp.forget_port_add(interface);
        self.relink().await
    }

    pub(super) async fn reload(&mut self) -> anyhow::Result<Changes> {
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

    pub(super) async fn serve(&mut self, mut conn: tokio::net::UnixStream) {
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
