//! The VLANs of a port or host port: `access`, `trunk` (ids and ranges) and `native_vlan`.

use std::collections::BTreeSet;
use std::ops::{Range, RangeInclusive};

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

    /// The VLANs listed in `trunk`; `None` if any item is invalid. Linear in the items: each
    /// sets its bits of a 4096-bit map, a range a whole word at a time.
    pub(super) fn trunk_list(
        &mut self,
        ctx: &str,
        trunk: &Spanned<Vec<Spanned<TrunkItem>>>,
    ) -> Option<BTreeSet<u16>> {
        let mut vlans = VlanBits::default();
        let mut valid = true;
        for item in trunk.get_ref() {
            match item.get_ref() {
                TrunkItem::Id(value) => {
                    if let Some(vlan) = vlan_id(*value) {
                        vlans.set(vlan..=vlan);
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
                    Ok(range) => vlans.set(range),
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
        valid.then(|| vlans.ids())
    }
}

/// A set of VLAN ids as a 4096-bit map.
struct VlanBits([u64; 64]);

impl Default for VlanBits {
    fn default() -> Self {
        Self([0; 64])
    }
}

impl VlanBits {
    /// Add every id of `range` (ids are below 4096): O(words touched).
    fn set(&mut self, range: RangeInclusive<u16>) {
        let (start, end) = (usize::from(*range.start()), usize::from(*range.end()));
        if start > end {
            return;
        }
        for word in start / 64..=end / 64 {
            let lo = if word == start / 64 { start % 64 } else { 0 };
            let hi = if word == end / 64 { end % 64 } else { 63 };
            // Bits lo..=hi of the word.
            let mask = (u64::MAX >> (63 - hi)) & (u64::MAX << lo);
            self.0[word] |= mask;
        }
    }

    /// The ids, in order.
    fn ids(&self) -> BTreeSet<u16> {
        (0..4096u16)
            .filter(|id| self.0[usize::from(*id) / 64] & (1 << (id % 64)) != 0)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::VlanBits;

    #[test]
    fn vlan_bits_set_exactly_the_ranges() {
        let mut b = VlanBits::default();
        b.set(1..=1);
        b.set(63..=65);
        b.set(100..=300);
        b.set(4094..=4094);
        b.set(std::ops::RangeInclusive::new(5, 4));
        let mut want: Vec<u16> = vec![1, 63, 64, 65];
        want.extend(100..=300);
        want.push(4094);
        assert_eq!(b.ids().into_iter().collect::<Vec<_>>(), want);
        let mut all = VlanBits::default();
        all.set(0..=4095);
        assert_eq!(all.ids().len(), 4096);
    }
}
