//! Attaching and detaching programs: a port's TC and XDP links, the pass program of host
//! interfaces. Every attachment is a `bpf_link` this datapath owns; a persistent datapath pins
//! each one under `pin_dir` (`link_<kind>_<ifindex>`), so it keeps forwarding after the
//! process exits, and a later agent swaps its own programs into the same links.

use std::{
    fs, io,
    os::fd::{AsFd as _, OwnedFd},
    path::{Path, PathBuf},
};

use anyhow::{Context as _, anyhow, bail};
use aya::programs::{
    SchedClassifier, TcAttachType, XdpMode,
    links::{FdLink, PinnedLink},
    tc::SchedClassifierLink,
    xdp::XdpLink,
};
use tracing::{info, warn};
use xennet_common::maps::{PROG_PASS, PROG_TC, PROG_XDP};

use super::{
    Attached, Datapath, Links, ifindex,
    rxvlan::{self, Prologue},
};
use crate::{config::AttachMode, netlink::rxvlan::RxTags};

/// The pin of a hinted port's program array (see [`rxvlan`]): `chain_xdp_<ifindex>`.
#[must_use]
pub fn chain_pin_name(ifindex: u32) -> String {
    format!("chain_xdp_{ifindex}")
}

/// Whether a pin name under `pin_dir` is a hinted port's program array.
#[must_use]
pub fn is_chain_pin(name: &str) -> bool {
    name.starts_with("chain_xdp_")
}

/// What `ports` says about the received VLAN tags of a port attached as `attached` on a
/// device that delivers them as `rx`.
#[must_use]
pub fn rx_note(attached: Attached, rx: &RxTags) -> Option<String> {
    match (attached, rx) {
        (Attached::Xdp, RxTags::Hint) => Some("rx VLAN tags from the driver's XDP hint".into()),
        (Attached::Tc, RxTags::Stripped(why)) => Some(format!("TC only: {why}")),
        _ => None,
    }
}

/// What a link attaches: the port's TC program, its XDP program, or the pass program of a
/// host interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LinkKind {
    /// `xennet_tc` on tcx ingress.
    Tc,
    /// `xennet_xdp`.
    Xdp,
    /// `xennet_pass` (dom0's side of a host port).
    Pass,
}

impl LinkKind {
    const ALL: [LinkKind; 3] = [LinkKind::Tc, LinkKind::Xdp, LinkKind::Pass];

    fn as_str(self) -> &'static str {
        match self {
            LinkKind::Tc => "tc",
            LinkKind::Xdp => "xdp",
            LinkKind::Pass => "pass",
        }
    }

    /// The pin file name of this kind of link on interface `ifindex`.
    #[must_use]
    pub fn pin_name(self, ifindex: u32) -> String {
        format!("link_{}_{ifindex}", self.as_str())
    }

    /// Parse a pin file name made by [`LinkKind::pin_name`].
    #[must_use]
    pub fn parse_pin_name(name: &str) -> Option<(LinkKind, u32)> {
        let rest = name.strip_prefix("link_")?;
        let (kind, idx) = rest.split_once('_')?;
        let kind = LinkKind::ALL.into_iter().find(|k| k.as_str() == kind)?;
        Some((kind, idx.parse().ok()?))
    }
}

/// A `bpf_link` this datapath owns; pinned when the datapath is persistent. Dropping it only
/// closes the descriptor: a pinned link stays attached until [`OwnedLink::release`].
#[derive(Debug)]
pub struct OwnedLink {
    fd: FdLink,
    pin: Option<PathBuf>,
    /// The pinned program array of the VLAN prologue in this link, if it runs one.
    chain: Option<PathBuf>,
    /// An ephemeral datapath's prologue program array: held open instead of pinned (the
    /// kernel empties a program array that nothing holds).
    _chain_fd: Option<OwnedFd>,
}

impl OwnedLink {
    /// Where the link is pinned (persistent datapath).
    #[must_use]
    pub fn pin(&self) -> Option<&Path> {
        self.pin.as_deref()
    }

    /// Detach: remove the pin (if any) and close the link.
    pub fn release(self) -> io::Result<()> {
        if let Some(p) = &self.pin {
            match fs::remove_file(p) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        drop(self.fd);
        if let Some(c) = &self.chain {
            unpin(c)?;
        }
        Ok(())
    }
}

/// Remove the pin at `path`, which detaches its link (unless a process holds it open).
pub fn unpin(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

impl Datapath {
    /// Take ownership of a freshly made link: pin it (persistent datapath) as `kind` of `idx`.
    fn own(&self, fd: FdLink, kind: LinkKind, idx: u32) -> anyhow::Result<OwnedLink> {
        if !self.persistent {
            return Ok(OwnedLink {
                fd,
                pin: None,
                chain: None,
                _chain_fd: None,
            });
        }
        let path = self.pin_dir.join(kind.pin_name(idx));
        // A pin left by a crash between a detach and its unpin: its link is already dead.
        unpin(&path).with_context(|| format!("removing stale pin {}", path.display()))?;
        let pinned = fd
            .pin(&path)
            .with_context(|| format!("pinning link {}", path.display()))?;
        Ok(OwnedLink {
            fd: FdLink::from(pinned),
            pin: Some(path),
            chain: None,
            _chain_fd: None,
        })
    }

    /// Attach the TC program (always) and the XDP program (XDP modes) to a port; with what
    /// `ports` says about its received VLAN tags. Native XDP on a device that takes the tags
    /// out of the frame runs behind the VLAN prologue ([`rxvlan`]) where the driver reports
    /// them, and is not attached where it does not (TC only, with a warning): XDP would see
    /// those frames untagged.
    pub(super) fn attach(
        &mut self,
        name: &str,
        idx: u32,
        mode: AttachMode,
    ) -> anyhow::Result<(Attached, Links, Option<String>)> {
        Self::refuse_foreign(name)?;
        // TC first: it must be in place before XDP starts deferring frames to it.
        let tc = self.attach_tc(name, idx)?;
        let rx = if matches!(mode, AttachMode::Auto | AttachMode::Xdp) {
            crate::netlink::rxvlan::probe(name, idx)
        } else {
            RxTags::Inline
        };
        if let RxTags::Stripped(why) = &rx {
            warn!(port = %name, reason = %why, "received VLAN tags are stripped without an XDP hint: TC only");
            let note = rx_note(Attached::Tc, &rx);
            return Ok((Attached::Tc, Links { tc, xdp: None }, note));
        }
        let hinted = rx == RxTags::Hint;
        let xdp = match mode {
            AttachMode::Tc => Ok(None),
            AttachMode::Xdp => self
                .attach_native(idx, hinted)
                .map(|l| Some((Attached::Xdp, l)))
                .with_context(|| format!("attaching native XDP to {name}")),
            AttachMode::XdpGeneric => self
                .attach_xdp(PROG_XDP, LinkKind::Xdp, idx, XdpMode::Skb)
                .map(|l| Some((Attached::XdpGeneric, l)))
                .with_context(|| format!("attaching generic XDP to {name}")),
            AttachMode::Auto => match self.attach_native(idx, hinted) {
                Ok(l) => Ok(Some((Attached::Xdp, l))),
                Err(e) => {
                    info!(port = %name, reason = %format!("{e:#}"), "no native XDP: TC only");
                    Ok(None)
                }
            },
        };
        match xdp {
            Ok(Some((a, l))) => Ok((a, Links { tc, xdp: Some(l) }, rx_note(a, &rx))),
            Ok(None) => Ok((Attached::Tc, Links { tc, xdp: None }, None)),
            Err(e) => {
                let _ = tc.release();
                Err(e)
            }
        }
    }

    /// Refuse an interface on which another xennet datapath's TC program already runs (a
    /// second agent with another `pin_dir`): its frames would never reach ours.
    fn refuse_foreign(name: &str) -> anyhow::Result<()> {
        let Ok((_, progs)) = SchedClassifier::query_tcx(name, TcAttachType::Ingress) else {
            // No tcx on this kernel or no such interface: the attach says why.
            return Ok(());
        };
        if let Some(p) = progs.iter().find(|p| p.name_as_str() == Some(PROG_TC)) {
            bail!(
                "interface {name} is already attached to another xennet datapath (program \
                 {PROG_TC}, id {}): another agent (another pin_dir) owns it; stop that one \
                 with `xennet-agent down` first",
                p.id()
            );
        }
        Ok(())
    }

    /// The TC program on tcx ingress (kernels ≥ 6.6: a `bpf_link` that can be pinned).
    fn attach_tc(&mut self, name: &str, idx: u32) -> anyhow::Result<OwnedLink> {
        let prog = self.tc_program()?;
        let id = prog
            .attach(name, TcAttachType::Ingress)
            .with_context(|| format!("attaching TC (tcx, Linux ≥ 6.6) to {name}"))?;
        let link = prog.take_link(id).context("taking the TC link")?;
        let fd = FdLink::try_from(link)
            .context("the TC attachment is a netlink filter, not a tcx bpf_link (Linux < 6.6)")?;
        self.own(fd, LinkKind::Tc, idx)
    }

    /// Native XDP on `idx`: `xennet_xdp`, behind the VLAN prologue when `hinted`.
    fn attach_native(&mut self, idx: u32, hinted: bool) -> anyhow::Result<OwnedLink> {
        if hinted {
            self.attach_prologue(idx)
        } else {
            self.attach_xdp(PROG_XDP, LinkKind::Xdp, idx, XdpMode::Driver)
        }
    }

    /// A VLAN prologue for `idx` handing frames to this datapath's `xennet_xdp`, and where
    /// its program array is pinned: a persistent datapath pins it (the link outlives this
    /// process, and the kernel empties a program array that nothing holds); an ephemeral one
    /// keeps the array's descriptor in the link instead (`None`).
    fn prologue(&mut self, idx: u32) -> anyhow::Result<(Prologue, Option<PathBuf>)> {
        let next = self.program_mut(PROG_XDP)?.fd().context("xennet_xdp fd")?;
        let pro = Prologue::load(idx, next.as_fd())?;
        if !self.persistent {
            return Ok((pro, None));
        }
        let chain = self.pin_dir.join(chain_pin_name(idx));
        unpin(&chain).with_context(|| format!("removing stale pin {}", chain.display()))?;
        rxvlan::pin(pro.chain.as_fd(), &chain)?;
        Ok((pro, Some(chain)))
    }

    /// The VLAN prologue as the XDP program of `idx`, in a new link (pinned when the
    /// datapath is persistent).
    fn attach_prologue(&mut self, idx: u32) -> anyhow::Result<OwnedLink> {
        let (pro, chain) = self.prologue(idx)?;
        let drop_chain = |chain: &Option<PathBuf>| {
            if let Some(c) = chain {
                let _ = unpin(c);
            }
        };
        let link = match pro.link(idx) {
            Ok(l) => l,
            Err(e) => {
                drop_chain(&chain);
                return Err(e);
            }
        };
        // aya makes an `FdLink` only from a pin: pin the link, open the pin, and for an
        // ephemeral datapath remove the pin again (the open descriptor keeps the link).
        let path = self.pin_dir.join(LinkKind::Xdp.pin_name(idx));
        unpin(&path).with_context(|| format!("removing stale pin {}", path.display()))?;
        if let Err(e) = rxvlan::pin(link.as_fd(), &path) {
            drop_chain(&chain);
            return Err(e);
        }
        let pinned = PinnedLink::from_pin(&path)
            .with_context(|| format!("opening pinned link {}", path.display()))?;
        let (pin, held) = if self.persistent {
            (Some(path), None)
        } else {
            unpin(&path).with_context(|| format!("removing {}", path.display()))?;
            (None, Some(pro.chain))
        };
        Ok(OwnedLink {
            fd: FdLink::from(pinned),
            pin,
            chain,
            _chain_fd: held,
        })
    }

    /// XDP program `prog` on `idx` in `mode`, as a `bpf_link`.
    fn attach_xdp(
        &mut self,
        prog: &str,
        kind: LinkKind,
        idx: u32,
        mode: XdpMode,
    ) -> anyhow::Result<OwnedLink> {
        let p = self.program_mut(prog)?;
        let id = p.attach_to_if_index(idx, mode)?;
        let link = p.take_link(id).context("taking the XDP link")?;
        let fd = FdLink::try_from(link)
            .map_err(|e| anyhow!("XDP attached through netlink, not a bpf_link: {e}"))?;
        self.own(fd, kind, idx)
    }

    /// Put this datapath's program of `kind` into the pinned link at `path` (one atomic
    /// `bpf_link_update`: no frame sees a detached interface), and own the link.
    /// During an upgrade whose maps are not filled yet, the link is only opened, and the swap
    /// left to [`Datapath::finish_upgrade`].
    pub(super) fn replace_in(&mut self, kind: LinkKind, path: &Path) -> anyhow::Result<OwnedLink> {
        let pinned = PinnedLink::from_pin(path)
            .with_context(|| format!("opening pinned link {}", path.display()))?;
        let fd = FdLink::from(pinned);
        if let Some(up) = self.upgrade.as_mut().filter(|u| u.defers_swap()) {
            up.deferred.insert(path.to_path_buf());
            return Ok(OwnedLink {
                fd,
                pin: Some(path.to_path_buf()),
                chain: None,
                _chain_fd: None,
            });
        }
        let idx = path
            .file_name()
            .and_then(|n| LinkKind::parse_pin_name(&n.to_string_lossy()))
            .map_or(0, |(_, i)| i);
        let chain = self.pin_dir.join(chain_pin_name(idx));
        if kind == LinkKind::Xdp
            && self.persistent
            && crate::netlink::rxvlan::probe(&crate::stats::ifname(idx), idx) == RxTags::Hint
        {
            let (pro, chain) = self.prologue(idx)?;
            let raw = rxvlan::open_pin(path)?;
            pro.update(raw.as_fd())?;
            return Ok(OwnedLink {
                fd,
                pin: Some(path.to_path_buf()),
                chain,
                _chain_fd: None,
            });
        }
        if kind == LinkKind::Xdp {
            // A prologue this link ran before, if any, is gone with the swap below.
            unpin(&chain).with_context(|| format!("removing {}", chain.display()))?;
        }
        let fd = match kind {
            LinkKind::Tc => {
                let link = SchedClassifierLink::try_from(fd).context("not a tcx link")?;
                let prog = self.tc_program()?;
                let id = prog.attach_to_link(link).context("bpf_link_update")?;
                FdLink::try_from(prog.take_link(id).context("taking the TC link")?)
                    .context("the TC link is not a bpf_link")?
            }
            LinkKind::Xdp | LinkKind::Pass => {
                let link = XdpLink::try_from(fd).context("not an XDP link")?;
                let prog = self.program_mut(if kind == LinkKind::Xdp {
                    PROG_XDP
                } else {
                    PROG_PASS
                })?;
                let id = prog.attach_to_link(link).context("bpf_link_update")?;
                FdLink::try_from(prog.take_link(id).context("taking the XDP link")?)
                    .map_err(|e| anyhow!("the XDP link is not a bpf_link: {e}"))?
            }
        };
        Ok(OwnedLink {
            fd,
            pin: Some(path.to_path_buf()),
            chain: None,
            _chain_fd: None,
        })
    }

    /// Detach a port's programs; failures (interface already gone) are logged, not fatal.
    pub(super) fn detach(name: &str, links: Links) {
        if let Some(x) = links.xdp {
            if let Err(e) = x.release() {
                warn!(port = %name, error = %e, "XDP detach failed");
            }
        }
        if let Err(e) = links.tc.release() {
            warn!(port = %name, error = %e, "TC detach failed");
        }
    }

    /// Attach the pass-everything program to `name` (the dom0 side of a host port), so that
    /// it can receive native XDP redirects. Idempotent.
    pub fn attach_pass(&mut self, name: &str) -> anyhow::Result<()> {
        if self.passing.contains_key(name) {
            return Ok(());
        }
        let idx = ifindex(name)?;
        let link = match self.attach_xdp(PROG_PASS, LinkKind::Pass, idx, XdpMode::Driver) {
            Ok(l) => l,
            Err(e) => {
                warn!(interface = %name, error = %format!("{e:#}"), "native XDP refused on host interface, using generic");
                self.attach_xdp(PROG_PASS, LinkKind::Pass, idx, XdpMode::Skb)
                    .with_context(|| format!("attaching {PROG_PASS} to {name}"))?
            }
        };
        self.passing.insert(name.to_string(), link);
        Ok(())
    }

    /// Forget (and detach) the pass program of a host interface about to be deleted.
    pub fn forget_pass(&mut self, name: &str) {
        if let Some(link) = self.passing.remove(name) {
            let _ = link.release();
        }
        if self.host_ports.remove(name) {
            self.save_state();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_names_round_trip() {
        for k in LinkKind::ALL {
            assert_eq!(LinkKind::parse_pin_name(&k.pin_name(42)), Some((k, 42)));
        }
        assert_eq!(LinkKind::parse_pin_name("XN_FDB"), None);
        assert_eq!(LinkKind::parse_pin_name("link_tc_x"), None);
        assert_eq!(LinkKind::parse_pin_name("link_foo_3"), None);
    }
}
