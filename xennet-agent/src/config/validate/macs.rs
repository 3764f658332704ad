//! A port's static `macs` entries ("MAC" or "MAC@VLAN"), unique per (MAC, VLAN) in a bridge.

use std::ops::Range;

use super::{BridgeMacs, Validator};
use crate::config::raw::RawPort;
use crate::config::syntax::{non_unicast_kind, parse_vlan_text};
use crate::config::types::{MacAddr, PortMode};

impl Validator<'_> {
    /// The port's static MAC entries. Entries with problems are left out; when
    /// `mode` is `None` only their syntax is checked.
    pub(super) fn macs(
        &mut self,
        ctx: &str,
        interface: &str,
        raw: &RawPort,
        mode: Option<&PortMode>,
        bridge_macs: &mut BridgeMacs,
    ) -> Vec<(MacAddr, u16)> {
        let mut out = Vec::with_capacity(raw.macs.len());
        for entry in &raw.macs {
            let (text, span) = (entry.get_ref(), entry.span());
            let Some((mac, explicit)) = self.mac_syntax(ctx, text, &span) else {
                continue;
            };
            let Some(mode) = mode else {
                continue;
            };
            let Some(vlan) = self.mac_vlan(ctx, text, &span, mode, explicit) else {
                continue;
            };
            if let Some((origin, owner)) = bridge_macs.get(&(mac, vlan)) {
                let given = self.given(*origin);
                self.error(
                    &span,
                    format!(
                        "{ctx}: `macs` entry {text:?}: static MAC {mac} in VLAN {vlan} is already \
                         given {given} ({owner}); each MAC may appear once per VLAN of a \
                         bridge"
                    ),
                );
                continue;
            }
            let origin = self.here(&span);
            bridge_macs.insert((mac, vlan), (origin, format!("port {interface:?}")));
            out.push((mac, vlan));
        }
        out
    }

    /// Split a `macs` entry "MAC" or "MAC@VLAN" and check both parts on their
    /// own; `None` after recording the problems.
    pub(super) fn mac_syntax(
        &mut self,
        ctx: &str,
        text: &str,
        span: &Range<usize>,
    ) -> Option<(MacAddr, Option<u16>)> {
        let (mac_text, vlan_text) = match text.split_once('@') {
            Some((mac, vlan)) => (mac, Some(vlan)),
            None => (text, None),
        };
        let mac = match mac_text.parse::<MacAddr>() {
            Ok(mac) => match non_unicast_kind(mac) {
                None => Some(mac),
                Some(kind) => {
                    self.error(
                        span,
                        format!(
                            "{ctx}: `macs` entry {text:?}: {mac} is {kind}; static entries must \
                             be unicast"
                        ),
                    );
                    None
                }
            },
            Err(why) => {
                self.error(span, format!("{ctx}: `macs` entry {text:?}: {why}"));
                None
            }
        };
        let vlan = match vlan_text.map(parse_vlan_text) {
            None => None,
            Some(Ok(vlan)) => Some(vlan),
            Some(Err(why)) => {
                self.error(
                    span,
                    format!("{ctx}: `macs` entry {text:?}: after '@', {why}"),
                );
                return None;
            }
        };
        Some((mac?, vlan))
    }

    /// The VLAN of a static MAC entry on a port of `mode`; `None` after
    /// recording a problem.
    pub(super) fn mac_vlan(
        &mut self,
        ctx: &str,
        text: &str,
        span: &Range<usize>,
        mode: &PortMode,
        explicit: Option<u16>,
    ) -> Option<u16> {
        let problem = match (mode, explicit) {
            (PortMode::Access { vlan }, None) => return Some(*vlan),
            (PortMode::Access { vlan }, Some(given)) => {
                if given == *vlan {
                    return Some(given);
                }
                let mac = text.split_once('@').map_or(text, |(mac, _)| mac);
                format!(
                    "VLAN {given} is not the port's access VLAN {vlan} (write \"{mac}\" or \
                     \"{mac}@{vlan}\")"
                )
            }
            (PortMode::Trunk { vlans, .. }, Some(given)) => {
                if vlans.contains(&given) {
                    return Some(given);
                }
                format!("VLAN {given} is not carried by this trunk port")
            }
            (
                PortMode::Trunk {
                    native: Some(native),
                    ..
                },
                None,
            ) => return Some(*native),
            (PortMode::Trunk { native: None, .. }, None) => {
                "a trunk port without `native_vlan` needs \"MAC@VLAN\"".to_owned()
            }
        };
        self.error(span, format!("{ctx}: `macs` entry {text:?}: {problem}"));
        None
    }
}
