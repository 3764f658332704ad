//! The link watch: a subscription to link changes, for hot-plug.

use anyhow::Context as _;

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
