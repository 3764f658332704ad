//! The link watch: a subscription to link changes, for hot-plug and carrier loss.

use anyhow::Context as _;

/// A subscription to link changes (`ip monitor link`): every message means "links may have
/// changed"; the agent then resolves its ports again. Links reported without carrier
/// (`IFF_LOWER_UP` clear: carrier lost, or set down) are kept for [`LinkWatch::take_down`].
pub struct LinkWatch {
    rx: futures::channel::mpsc::UnboundedReceiver<(
        rtnetlink::packet_core::NetlinkMessage<rtnetlink::packet_route::RouteNetlinkMessage>,
        rtnetlink::sys::SocketAddr,
    )>,
    down: std::collections::BTreeSet<u32>,
}

impl LinkWatch {
    /// Subscribe (needs a tokio runtime).
    pub fn new() -> anyhow::Result<Self> {
        let (conn, _handle, rx) =
            rtnetlink::new_multicast_connection(&[rtnetlink::MulticastGroup::Link])
                .context("subscribing to link changes")?;
        tokio::spawn(conn);
        Ok(LinkWatch {
            rx,
            down: std::collections::BTreeSet::new(),
        })
    }

    /// Wait for the next link added, changed or removed; `false` when the subscription ended.
    pub async fn changed(&mut self) -> bool {
        use futures::StreamExt as _;
        use rtnetlink::{
            packet_core::NetlinkPayload,
            packet_route::{RouteNetlinkMessage, link::LinkFlags},
        };
        while let Some((msg, _)) = self.rx.next().await {
            match msg.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
                    if link.header.flags.contains(LinkFlags::LowerUp) {
                        self.down.remove(&link.header.index);
                    } else {
                        self.down.insert(link.header.index);
                    }
                    return true;
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(_)) => return true,
                _ => {}
            }
        }
        false
    }

    /// The ifindices reported without carrier since the last call (as the Linux bridge
    /// flushes a port's learned entries when its link goes down).
    pub fn take_down(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.down).into_iter().collect()
    }
}
