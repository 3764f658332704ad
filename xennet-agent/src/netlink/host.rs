//! Host ports: dom0's own interface on a bridge, the role the Linux bridge device plays.
//!
//! For each `[bridge.host]` the agent creates a veth pair: `interface` is dom0's side (its
//! addresses and optional MAC are set here), `peer` is the bridge side, attached like any other
//! port. An existing pair is adopted, so an agent restart does not take dom0's management
//! address down.

use anyhow::{Context as _, anyhow, bail};
use rtnetlink::{LinkUnspec, LinkVeth};
use tracing::info;

use super::Netlink;
use crate::config::HostSpec;

impl Netlink {
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
