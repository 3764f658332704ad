//! One `[[bridge]]`: its name, VLAN protocol, aging, MTU, and its ports and host port.

use xennet_common::{ETH_P_8021AD, ETH_P_8021Q};

use super::{BridgeMacs, SeenBridges, Validator};
use crate::config::raw::RawBridge;
use crate::config::syntax::check_bridge_name;
use crate::config::types::{
    BridgeSpec, DEFAULT_FDB_AGING_SECS, MAX_FDB_AGING_SECS, MAX_MTU, MIN_MTU,
};

impl Validator<'_> {
    /// One bridge; `id` is its 1-based position in the file.
    pub(super) fn bridge(
        &mut self,
        id: u32,
        raw: &RawBridge,
        seen: &mut SeenBridges,
    ) -> BridgeSpec {
        let name = raw.name.get_ref();
        let name_span = raw.name.span();
        if let Err(why) = check_bridge_name(name) {
            self.error(
                &name_span,
                format!("bridge name {name:?} is invalid: {why}"),
            );
        }
        if let Some(&first) = seen.get(name) {
            let line = self.line(first);
            self.error(
                &name_span,
                format!("bridge name {name:?} is already used by the bridge at line {line}"),
            );
        } else {
            seen.insert(name.clone(), name_span.start);
        }

        let ctx = format!("bridge {name:?}");
        let tpid = self.vlan_protocol(&ctx, raw);
        let fdb_aging_secs = raw
            .fdb_aging_secs
            .as_ref()
            .map_or(Some(DEFAULT_FDB_AGING_SECS), |secs| {
                self.bounded_key(&ctx, "fdb_aging_secs", secs, MAX_FDB_AGING_SECS)
            })
            .unwrap_or(DEFAULT_FDB_AGING_SECS);
        let mtu = raw.mtu.as_ref().and_then(|m| {
            let v = u32::try_from(*m.get_ref())
                .ok()
                .filter(|v| (MIN_MTU..=MAX_MTU).contains(v));
            if v.is_none() {
                self.error(
                    &m.span(),
                    format!(
                        "{ctx}: `mtu` = {} is out of range ({MIN_MTU}-{MAX_MTU})",
                        m.get_ref()
                    ),
                );
            }
            v
        });
        let allow_mtu_mismatch = raw.allow_mtu_mismatch.unwrap_or(false);

        if raw.port.is_empty() && raw.host.is_none() {
            self.error(
                &name_span,
                format!("{ctx} has no ports: add at least one [[bridge.port]] or a [bridge.host]"),
            );
        }
        let mut macs = BridgeMacs::new();
        let ports = raw
            .port
            .iter()
            .filter_map(|port| self.port(name, mtu, port, &mut macs))
            .collect();
        let host = raw
            .host
            .as_ref()
            .and_then(|host| self.host(name, host, &macs));
        BridgeSpec {
            name: name.clone(),
            id,
            tpid,
            fdb_aging_secs,
            mtu,
            allow_mtu_mismatch,
            ports,
            host,
        }
    }

    /// The VLAN tag ethertype from `vlan_protocol` (default 802.1Q).
    fn vlan_protocol(&mut self, ctx: &str, raw: &RawBridge) -> u16 {
        match &raw.vlan_protocol {
            None => ETH_P_8021Q,
            Some(protocol) => {
                let text = protocol.get_ref();
                if text.eq_ignore_ascii_case("802.1Q") {
                    ETH_P_8021Q
                } else if text.eq_ignore_ascii_case("802.1ad") {
                    ETH_P_8021AD
                } else {
                    self.error(
                        &protocol.span(),
                        format!(
                            "{ctx}: `vlan_protocol` = {text:?} is not \"802.1Q\" or \"802.1ad\""
                        ),
                    );
                    ETH_P_8021Q
                }
            }
        }
    }
}
