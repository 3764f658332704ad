//! One `[bridge.host]`: dom0's interface and its peer, VLANs, addresses and MAC.

use std::collections::HashMap;
use std::net::IpAddr;

use toml::Spanned;

use super::port::loopback_refused;
use super::{BridgeMacs, Origin, Validator};
use crate::config::raw::HostTable;
use crate::config::syntax::{
    DefaultPeer, LOOPBACK, check_ifname, default_peer, non_unicast_kind, parse_cidr,
};
use crate::config::types::{HOST_PEER_PREFIX, HostSpec, MacAddr, PortMode};

impl Validator<'_> {
    /// `None` if the host port is too broken to describe (problems are recorded).
    pub(super) fn host(
        &mut self,
        bridge: &str,
        raw: &Spanned<HostTable>,
        macs: &BridgeMacs,
    ) -> Option<HostSpec> {
        let header = raw.span();
        let raw = &raw.get_ref().0;
        let interface = raw.interface.get_ref();
        let ctx = format!("bridge {bridge:?}, host port {interface:?}");

        if let Err(why) = check_ifname(interface) {
            self.error(
                &raw.interface.span(),
                format!(
                    "bridge {bridge:?}, host port: `interface` = {interface:?} is not a valid \
                     Linux interface name: {why}"
                ),
            );
        } else if interface == LOOPBACK {
            self.error(
                &raw.interface.span(),
                format!("{ctx}: {}", loopback_refused("interface")),
            );
        }
        let peer = match &raw.peer {
            Some(peer) => {
                if let Err(why) = check_ifname(peer.get_ref()) {
                    self.error(
                        &peer.span(),
                        format!(
                            "{ctx}: `peer` = {:?} is not a valid Linux interface name: {why}",
                            peer.get_ref()
                        ),
                    );
                } else if peer.get_ref() == LOOPBACK {
                    self.error(&peer.span(), format!("{ctx}: {}", loopback_refused("peer")));
                }
                Some(peer.get_ref().clone())
            }
            None => match default_peer(bridge) {
                DefaultPeer::Valid(peer) => Some(peer),
                DefaultPeer::Invalid(peer, why) => {
                    self.error(
                        &header,
                        format!(
                            "{ctx}: the default `peer` {peer:?} (\"{HOST_PEER_PREFIX}\" + bridge \
                             name) is not a valid Linux interface name: {why}; set `peer`"
                        ),
                    );
                    None
                }
                // The bridge name is already reported.
                DefaultPeer::BadBridgeName => None,
            },
        };
        let mode = self.mode(&ctx, &header, raw.mode_keys());
        let mac_limit = self.mac_limit(&ctx, raw.mac_limit.as_ref(), mode.as_ref());
        let addresses = self.addresses(&ctx, &raw.addresses);
        let mac = match &raw.mac {
            None => Some(None),
            Some(mac) => self.host_mac(&ctx, mac, mode.as_ref(), macs).map(Some),
        };
        Some(HostSpec {
            interface: interface.clone(),
            peer: peer?,
            mode: mode?,
            addresses,
            mac: mac?,
            mac_limit: mac_limit?,
        })
    }

    /// The host port's `addresses`, as written; problems are recorded.
    pub(super) fn addresses(&mut self, ctx: &str, raw: &[Spanned<String>]) -> Vec<String> {
        let mut seen: HashMap<IpAddr, &str> = HashMap::new();
        for entry in raw {
            let text = entry.get_ref();
            match parse_cidr(text) {
                Ok((ip, _)) => {
                    if let Some(first) = seen.get(&ip) {
                        self.error(
                            &entry.span(),
                            format!(
                                "{ctx}: `addresses` entry {text:?}: address {ip} is already \
                                 listed as {first:?}"
                            ),
                        );
                    } else {
                        seen.insert(ip, text);
                    }
                }
                Err(why) => {
                    self.error(
                        &entry.span(),
                        format!("{ctx}: `addresses` entry {text:?}: {why}"),
                    );
                }
            }
        }
        raw.iter().map(|entry| entry.get_ref().clone()).collect()
    }

    /// The host port's `mac`: a unicast address that no port of the bridge
    /// holds as a static entry in a VLAN the host port carries.
    pub(super) fn host_mac(
        &mut self,
        ctx: &str,
        raw: &Spanned<String>,
        mode: Option<&PortMode>,
        macs: &BridgeMacs,
    ) -> Option<MacAddr> {
        let text = raw.get_ref();
        let mac = match text.parse::<MacAddr>() {
            Ok(mac) => mac,
            Err(why) => {
                self.error(&raw.span(), format!("{ctx}: `mac` = {why}"));
                return None;
            }
        };
        if let Some(kind) = non_unicast_kind(mac) {
            self.error(
                &raw.span(),
                format!(
                    "{ctx}: `mac` = {text:?}: {mac} is {kind}; dom0's side needs a unicast address"
                ),
            );
            return None;
        }
        let clash = mode.and_then(|mode| {
            macs.iter()
                .filter(|((m, vlan), _)| *m == mac && mode.carries(*vlan))
                .min_by_key(|(_, (origin, _))| *origin)
                .map(|((_, vlan), (origin, owner))| (*vlan, *origin, owner.clone()))
        });
        if let Some((vlan, origin, owner)) = clash {
            let line = match origin {
                Origin::At(at) => format!("line {}", self.line(at)),
                other => self.given(other),
            };
            self.error(
                &raw.span(),
                format!(
                    "{ctx}: `mac` = {text:?}: {mac} is a static MAC of {owner} in VLAN \
                     {vlan} ({line}); dom0's side would be unreachable in that VLAN"
                ),
            );
            return None;
        }
        Some(mac)
    }
}
