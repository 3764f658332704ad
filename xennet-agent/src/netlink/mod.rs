//! Netlink: link lookups (names, link-layer types) and MTUs; the link watch for hot-plug (`watch`) and host ports
//! (`host`) in their own files.

mod host;
pub mod rxvlan;
mod watch;

use anyhow::{Context as _, anyhow};
use futures::TryStreamExt as _;
use rtnetlink::{Handle, LinkUnspec};
use tracing::info;

pub use self::watch::LinkWatch;

/// The link-layer type in a link message's header.
fn link_type(msg: &rtnetlink::packet_route::link::LinkMessage) -> crate::resolve::LinkType {
    let kind = msg.header.link_layer_type;
    crate::resolve::LinkType {
        code: u16::from(kind),
        name: kind.to_string(),
    }
}

/// A netlink connection for link and address changes.
pub struct Netlink {
    handle: Handle,
}

impl Netlink {
    /// Open a route netlink socket in the current network namespace (needs a tokio runtime).
    pub fn new() -> anyhow::Result<Self> {
        let (conn, handle, _) = rtnetlink::new_connection().context("opening a netlink socket")?;
        tokio::spawn(conn);
        Ok(Netlink { handle })
    }

    /// The names of every interface in this network namespace.
    pub async fn link_names(&self) -> anyhow::Result<std::collections::BTreeSet<String>> {
        use rtnetlink::packet_route::link::LinkAttribute;
        let mut links = self.handle.link().get().execute();
        let mut names = std::collections::BTreeSet::new();
        while let Some(msg) = links.try_next().await.context("listing interfaces")? {
            for a in msg.attributes {
                if let LinkAttribute::IfName(n) = a {
                    names.insert(n);
                }
            }
        }
        Ok(names)
    }

    /// Every interface of this network namespace, with its link-layer type.
    pub async fn links(&self) -> anyhow::Result<crate::resolve::Links> {
        use rtnetlink::packet_route::link::LinkAttribute;
        let mut links = self.handle.link().get().execute();
        let mut out = crate::resolve::Links::new();
        while let Some(msg) = links.try_next().await.context("listing interfaces")? {
            let kind = link_type(&msg);
            for a in msg.attributes {
                if let LinkAttribute::IfName(n) = a {
                    out.insert(n, kind.clone());
                }
            }
        }
        Ok(out)
    }

    /// The link-layer type of `name`, if the interface exists.
    pub async fn link_type(&self, name: &str) -> anyhow::Result<Option<crate::resolve::LinkType>> {
        Ok(self.link(name).await?.as_ref().map(link_type))
    }

    /// The link message of `name`, if the interface exists.
    async fn link(
        &self,
        name: &str,
    ) -> anyhow::Result<Option<rtnetlink::packet_route::link::LinkMessage>> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match links.try_next().await {
            Ok(found) => Ok(found),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(None),
            Err(e) => Err(anyhow!(e)).with_context(|| format!("looking up {name}")),
        }
    }

    /// The ifindex of `name`, if it exists.
    pub async fn index(&self, name: &str) -> anyhow::Result<Option<u32>> {
        Ok(self.link(name).await?.map(|msg| msg.header.index))
    }

    /// The MTU of `name`, if it exists.
    pub async fn mtu(&self, name: &str) -> anyhow::Result<Option<u32>> {
        use rtnetlink::packet_route::link::LinkAttribute;
        Ok(self.link(name).await?.and_then(|msg| {
            msg.attributes.iter().find_map(|a| match a {
                LinkAttribute::Mtu(m) => Some(*m),
                _ => None,
            })
        }))
    }

    /// Set the MTU of `name`.
    pub async fn set_mtu(&self, name: &str, mtu: u32) -> anyhow::Result<()> {
        let idx = self
            .index(name)
            .await?
            .ok_or_else(|| anyhow!("interface {name:?} not found"))?;
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(idx).mtu(mtu).build())
            .execute()
            .await
            .with_context(|| format!("setting the MTU of {name} to {mtu}"))
    }

    /// Make the MTUs of a bridge's interfaces agree: set them to `mtu` when given; else
    /// (unless `allow_mismatch`) return the interfaces whose MTU differs from `reference`'s
    /// (an interface already attached to the bridge), or from the first one's.
    pub async fn check_mtu(
        &self,
        bridge: &str,
        interfaces: &[&str],
        reference: Option<&str>,
        mtu: Option<u32>,
        allow_mismatch: bool,
    ) -> anyhow::Result<Vec<(String, u32, u32)>> {
        if let Some(m) = mtu {
            for name in interfaces {
                if self.mtu(name).await?.is_some_and(|cur| cur != m) {
                    self.set_mtu(name, m).await?;
                    info!(bridge, interface = %name, mtu = m, "MTU set");
                }
            }
            return Ok(Vec::new());
        }
        if allow_mismatch {
            return Ok(Vec::new());
        }
        let mut seen = Vec::new();
        for name in interfaces {
            if let Some(m) = self.mtu(name).await? {
                seen.push((*name, m));
            }
        }
        let want = reference
            .and_then(|r| seen.iter().find(|(n, _)| *n == r))
            .or(seen.first())
            .map(|(_, m)| *m);
        Ok(want.map_or_else(Vec::new, |w| {
            seen.iter()
                .filter(|(_, m)| *m != w)
                .map(|(n, m)| ((*n).to_string(), *m, w))
                .collect()
        }))
    }
}
