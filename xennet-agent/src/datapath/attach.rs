//! Attaching and detaching programs: a port's TC and XDP links, the pass program of host
//! interfaces.

use anyhow::Context as _;
use aya::programs::{TcAttachType, XdpMode, tc::SchedClassifierLinkId};
use tracing::{info, warn};
use xennet_common::maps::PROG_PASS;

use super::{Attached, Datapath, Links, ifindex};
use crate::config::AttachMode;

impl Datapath {
    /// Attach the TC program (always) and the XDP program (XDP modes) to a port.
    pub(super) fn attach(
        &mut self,
        name: &str,
        idx: u32,
        mode: AttachMode,
    ) -> anyhow::Result<(Attached, Links)> {
        // TC first: it must be in place before XDP starts deferring frames to it.
        let tc = self.attach_tc(name)?;
        let xdp = match mode {
            AttachMode::Tc => Ok(None),
            AttachMode::Xdp => self
                .xdp_program()?
                .attach_to_if_index(idx, XdpMode::Driver)
                .map(|l| Some((Attached::Xdp, l)))
                .with_context(|| format!("attaching native XDP to {name}")),
            AttachMode::XdpGeneric => self
                .xdp_program()?
                .attach_to_if_index(idx, XdpMode::Skb)
                .map(|l| Some((Attached::XdpGeneric, l)))
                .with_context(|| format!("attaching generic XDP to {name}")),
            AttachMode::Auto => {
                match self.xdp_program()?.attach_to_if_index(idx, XdpMode::Driver) {
                    Ok(l) => Ok(Some((Attached::Xdp, l))),
                    Err(e) => {
                        info!(port = %name, reason = %e, "no native XDP: TC only");
                        Ok(None)
                    }
                }
            }
        };
        match xdp {
            Ok(Some((a, l))) => Ok((a, Links { tc, xdp: Some(l) })),
            Ok(None) => Ok((Attached::Tc, Links { tc, xdp: None })),
            Err(e) => {
                if let Ok(p) = self.tc_program() {
                    let _ = p.detach(tc);
                }
                Err(e)
            }
        }
    }

    /// tcx on kernels ≥ 6.6 (aya picks it); before that a clsact qdisc and a netlink filter.
    fn attach_tc(&mut self, name: &str) -> anyhow::Result<SchedClassifierLinkId> {
        let prog = self.tc_program()?;
        match prog.attach(name, TcAttachType::Ingress) {
            Ok(l) => Ok(l),
            Err(first) => {
                // Older kernels: the filter needs a clsact qdisc (EEXIST is fine).
                let _ = aya::programs::tc::qdisc_add_clsact(name);
                prog.attach(name, TcAttachType::Ingress)
                    .with_context(|| format!("attaching TC to {name} (first attempt: {first})"))
            }
        }
    }

    /// Detach a port's programs; failures (interface already gone) are logged, not fatal.
    pub(super) fn detach(&mut self, name: &str, links: Links) {
        if let Some(x) = links.xdp {
            if let Err(e) = self
                .xdp_program()
                .and_then(|p| p.detach(x).map_err(Into::into))
            {
                warn!(port = %name, error = %e, "XDP detach failed (interface gone?)");
            }
        }
        if let Err(e) = self
            .tc_program()
            .and_then(|p| p.detach(links.tc).map_err(Into::into))
        {
            warn!(port = %name, error = %e, "TC detach failed (interface gone?)");
        }
    }

    /// Attach the pass-everything program to `name` (the dom0 side of a host port), so that
    /// it can receive native XDP redirects. Idempotent.
    pub fn attach_pass(&mut self, name: &str) -> anyhow::Result<()> {
        if self.passing.contains_key(name) {
            return Ok(());
        }
        let idx = ifindex(name)?;
        let prog = self.program_mut(PROG_PASS)?;
        let link = match prog.attach_to_if_index(idx, XdpMode::Driver) {
            Ok(l) => l,
            Err(e) => {
                warn!(interface = %name, error = %e, "native XDP refused on host interface, using generic");
                prog.attach_to_if_index(idx, XdpMode::Skb)
                    .with_context(|| format!("attaching {PROG_PASS} to {name}"))?
            }
        };
        self.passing.insert(name.to_string(), link);
        Ok(())
    }

    /// Forget (and detach) the pass program of a host interface about to be deleted.
    pub fn forget_pass(&mut self, name: &str) {
        if let Some(link) = self.passing.remove(name) {
            if let Ok(p) = self.program_mut(PROG_PASS) {
                let _ = p.detach(link);
            }
        }
    }
}
