//! Netlink: link lookups, MTUs, the link watch for hot-plug, and host ports.
//!
//! Host ports: dom0's own interface on a bridge, the role the Linux bridge device plays.
//!
//! For each `[bridge.host]` the agent creates a veth pair: `interface` is dom0's side (its
//! addresses and optional MAC are set here), `peer` is the bridge side, attached like any other
//! port. An existing pair is adopted, so an agent restart does not take dom0's management
//! address down.

use anyhow::{Context as _, anyhow, bail};
use futures::TryStreamExt as _;
use rtnetlink::{Handle, LinkUnspec, LinkVeth};
use tracing::info;

use crate::config::HostSpec;

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

    /// Create (or adopt) the veth pair of `host`, set dom0's side's MAC and addresses, and
    /// bring both ends up. Returns whether the pair was created now.
    pub async fn ensure_host(&self, host: &HostSpec) -> anyhow::Result<bool> {
        let created = match (
            self.index(&host.interface).await?,
            self.index(&host.peer).await?,
        ) {
            (Some(_), Some(_)) => false,
            (None, None) => {
                self.handle
                    .link()
                    .add(LinkVeth::new(&host.interface, &host.peer).build())
                    .execute()
                    .await
                    .with_context(|| {
                        format!("creating veth pair {} / {}", host.interface, host.peer)
                    })?;
                true
            }
            _ => bail!(
                "host port {} / {}: one of the two interfaces exists without the other; remove it",
                host.interface,
                host.peer
            ),
        };
        let dom0 = self
            .index(&host.interface)
            .await?
            .ok_or_else(|| anyhow!("{} vanished", host.interface))?;
        let peer = self
            .index(&host.peer)
            .await?
            .ok_or_else(|| anyhow!("{} vanished", host.peer))?;
        if let Some(mac) = host.mac {
            self.handle
                .link()
                .set(
                    LinkUnspec::new_with_index(dom0)
                        .address(mac.0.to_vec())
                        .build(),
                )
                .execute()
                .await
                .with_context(|| format!("setting the MAC of {}", host.interface))?;
        }
        for a in &host.addresses {
            let (ip, len) = crate::config::parse_cidr(a)
                .map_err(|why| anyhow!("address {a:?} of {}: {why}", host.interface))?;
            self.handle
                .address()
                .add(dom0, ip, len)
                .replace()
                .execute()
                .await
                .with_context(|| format!("adding {a} to {}", host.interface))?;
        }
        for (idx, name) in [(peer, &host.peer), (dom0, &host.interface)] {
            self.handle
                .link()
                .set(LinkUnspec::new_with_index(idx).up().build())
                .execute()
                .await
                .with_context(|| format!("setting {name} up"))?;
        }
        if created {
            info!(interface = %host.interface, peer = %host.peer, "host port created");
        }
        Ok(created)
    }

    /// Delete a host port's pair (deleting one end removes both).
    pub async fn delete(&self, name: &str) -> anyhow::Result<()> {
        if let Some(idx) = self.index(name).await? {
            self.handle
                .link()
                .del(idx)
                .execute()
                .await
                .with_context(|| format!("deleting {name}"))?;
            info!(interface = %name, "host port deleted");
        }
        Ok(())
    }
}

/// A subscription to link changes (`ip monitor link`): every message means "links may have
/// changed"; the agent then resolves its ports again.
pub struct LinkWatch {
    rx: futures::channel::mpsc::UnboundedReceiver<(
        rtnetlink::packet_core::NetlinkMessage<rtnetlink::packet_route::RouteNetlinkMessage>,
        rtnetlink::sys::SocketAddr,
    )>,
}

impl LinkWatch {
    /// Subscribe (needs a tokio runtime).
    pub fn new() -> anyhow::Result<Self> {
        let (conn, _handle, rx) =
            rtnetlink::new_multicast_connection(&[rtnetlink::MulticastGroup::Link])
                .context("subscribing to link changes")?;
        tokio::spawn(conn);
        Ok(LinkWatch { rx })
    }

    /// Wait for the next link added or removed; `false` when the subscription ended.
    pub async fn changed(&mut self) -> bool {
        use futures::StreamExt as _;
        use rtnetlink::{packet_core::NetlinkPayload, packet_route::RouteNetlinkMessage};
        while let Some((msg, _)) = self.rx.next().await {
            if let NetlinkPayload::InnerMessage(
                RouteNetlinkMessage::NewLink(_) | RouteNetlinkMessage::DelLink(_),
            ) = msg.payload
            {
                return true;
            }
        }
        false
    }
}
