//! The VLANs of a port or host port: `access`, `trunk` (ids and ranges) and `native_vlan`.

use std::collections::BTreeSet;
use std::ops::Range;

use toml::Spanned;
use xennet_common::VLAN_MAX;

use super::Validator;
use crate::config::raw::{ModeKeys, TrunkItem};
use crate::config::syntax::{VLAN_MIN, parse_range, vlan_id};
use crate::config::types::PortMode;

impl Validator<'_> {
    /// The mode from `access` / `trunk` / `native_vlan`; `None` after
    /// recording a problem.
    pub(super) fn mode(
        &mut self,
        ctx: &str,
        header: &Range<usize>,
        keys: ModeKeys<'_>,
    ) -> Option<PortMode> {
        let access = keys
            .access
            .map(|access| self.vlan_key(ctx, "access", access));
        let trunk = keys.trunk.map(|trunk| (trunk, self.trunk_list(ctx, trunk)));
        let native = keys
            .native_vlan
            .map(|native| (native, self.vlan_key(ctx, "native_vlan", native)));

        match (access, trunk) {
            (Some(_), Some((trunk, _))) => {
                self.error(
                    &trunk.span(),
                    format!("{ctx}: `access` and `trunk` are mutually exclusive: give exactly one"),
                );
                None
            }
            (None, None) => {
                self.error(
                    header,
                    format!(
                        "{ctx}: give exactly one of `access` (one VLAN id) or `trunk` (a list \
                         of VLANs)"
                    ),
                );
                None
            }
            (Some(vlan), None) => {
                if let Some((native, _)) = native {
                    self.error(
                        &native.span(),
                        format!(
                            "{ctx}: `native_vlan` is only allowed with `trunk`; an access port \
                             is untagged in its `access` VLAN"
                        ),
                    );
                    return None;
                }
                Some(PortMode::Access { vlan: vlan? })
            }
            (None, Some((trunk, vlans))) => {
                if trunk.get_ref().is_empty() && native.is_none() {
                    self.error(
                        &trunk.span(),
                        format!(
                            "{ctx}: `trunk` is empty and there is no `native_vlan`: the port \
                             would carry no VLAN"
                        ),
                    );
                    return None;
                }
                let mut vlans = vlans?;
                let native = match native {
                    None => None,
                    Some((_, vlan)) => Some(vlan?),
                };
                vlans.extend(native);
                Some(PortMode::Trunk { vlans, native })
            }
        }
    }

    /// A VLAN id given as an integer key (`access`, `native_vlan`).
    pub(super) fn vlan_key(&mut self, ctx: &str, key: &str, value: &Spanned<i64>) -> Option<u16> {
        let vlan = vlan_id(*value.get_ref());
        if vlan.is_none() {
            self.error(
                &value.span(),
                format!(
                    "{ctx}: `{key}` = {} is not a VLAN id ({VLAN_MIN}-{VLAN_MAX})",
                    value.get_ref()
                ),
            );
        }
        vlan
    }

    /// The VLANs listed in `trunk`; `None` if any item is invalid.
    pub(super) fn trunk_list(
        &mut self,
        ctx: &str,
        trunk: &Spanned<Vec<Spanned<TrunkItem>>>,
    ) -> Option<BTreeSet<u16>> {
        let mut vlans = BTreeSet::new();
        let mut valid = true;
        for item in trunk.get_ref() {
            match item.get_ref() {
                TrunkItem::Id(value) => {
                    if let Some(vlan) = vlan_id(*value) {
                        vlans.insert(vlan);
                    } else {
                        self.error(
                            &item.span(),
                            format!(
                                "{ctx}: `trunk` entry {value} is not a VLAN id \
                                 ({VLAN_MIN}-{VLAN_MAX})"
                            ),
                        );
                        valid = false;
                    }
                }
                TrunkItem::Range(text) => match parse_range(text) {
                    Ok(range) => vlans.extend(range),
                    Err(why) => {
                        self.error(
                            &item.span(),
                            format!("{ctx}: `trunk` entry {text:?}: {why}"),
                        );
                        valid = false;
                    }
                },
            }
        }
        valid.then_some(vlans)
    }
}
