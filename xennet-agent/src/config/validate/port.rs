//! One `[[bridge.port]]` (or `port add` request): interface name, attach mode, `mac_limit`, and
//! the integer keys with bounds shared with the other tables.

use toml::Spanned;

use super::{BridgeMacs, Validator};
use crate::config::raw::RawPort;
use crate::config::syntax::{LOOPBACK, check_ifname, empty_glob_range, is_pattern};
use crate::config::types::{AttachMode, MAX_MAC_LIMIT, PortMode, PortSpec};

impl Validator<'_> {
    /// `None` if the port is too broken to describe (problems are recorded).
    pub(super) fn port(
        &mut self,
        bridge: &str,
        mtu: Option<u32>,
        raw: &Spanned<RawPort>,
        macs: &mut BridgeMacs,
    ) -> Option<PortSpec> {
        let header = raw.span();
        let raw = raw.get_ref();
        let interface = raw.interface.get_ref();
        let ctx = format!("bridge {bridge:?}, port {interface:?}");

        if let Err(why) = check_ifname(interface) {
            self.error(
                &raw.interface.span(),
                format!(
                    "bridge {bridge:?}: `interface` = {interface:?} is not a valid Linux \
                     interface name: {why}"
                ),
            );
        } else if interface == LOOPBACK {
            self.error(
                &raw.interface.span(),
                format!("{ctx}: {}", loopback_refused("interface")),
            );
        } else if is_pattern(interface) {
            if let Err(e) = glob::Pattern::new(interface) {
                self.error(
                    &raw.interface.span(),
                    format!("{ctx}: `interface` = {interface:?} is not a valid pattern: {e}"),
                );
            } else if let Some((start, end)) = empty_glob_range(interface) {
                self.error(
                    &raw.interface.span(),
                    format!(
                        "{ctx}: `interface` = {interface:?} has the empty range `{start}-{end}` \
                         ({start} comes after {end}), which matches no character; write \
                         `{end}-{start}`"
                    ),
                );
            }
            if let Some(first) = raw.macs.first() {
                self.error(
                    &first.span(),
                    format!(
                        "{ctx}: static `macs` need an exact interface name, not a pattern \
                         (add them with `xennet-agent port add … --mac` when the vif appears)"
                    ),
                );
            }
        }
        let attach = match &raw.attach {
            None => Some(AttachMode::Auto),
            Some(attach) => match attach.get_ref().parse() {
                Ok(mode) => Some(mode),
                Err(why) => {
                    self.error(&attach.span(), format!("{ctx}: `attach` = {why}"));
                    None
                }
            },
        };
        let mode = self.mode(&ctx, &header, raw.mode_keys());
        let port_macs = self.macs(&ctx, interface, raw, mode.as_ref(), macs);
        let mac_limit = self.mac_limit(&ctx, raw.mac_limit.as_ref(), mode.as_ref());
        let security = self.security(&ctx, raw, mode.as_ref());
        let rate = self.rate_limit(&ctx, raw.rate.as_ref(), raw.burst.as_ref(), mtu);
        let mac_move = self.mac_move(&ctx, raw, security.as_ref());
        Some(PortSpec {
            interface: interface.clone(),
            mode: mode?,
            attach: attach?,
            macs: port_macs,
            mac_limit: mac_limit?,
            security: security?,
            rate: rate.ok()?,
            mac_move,
        })
    }

    /// A port's `mac_move` (default off: no default can tell an uplink from a guest's port
    /// named in the file, and a port that may take guests' MACs must be chosen). `true` with
    /// security on is refused: a secured port never learns, so it can take no MAC over.
    fn mac_move(
        &mut self,
        ctx: &str,
        raw: &RawPort,
        security: Option<&crate::config::types::PortSecurity>,
    ) -> bool {
        let Some(v) = &raw.mac_move else {
            return false;
        };
        if *v.get_ref() && security.is_some_and(|s| s.enabled) {
            self.error(
                &v.span(),
                format!(
                    "{ctx}: `mac_move` = true on a port with `security`: a secured port \
                     sends only its own MACs and never learns, so it can take no MAC over"
                ),
            );
            return false;
        }
        *v.get_ref()
    }

    /// A port's `mac_limit`, or the default for its mode; `None` after
    /// recording a problem or if the mode is unknown.
    pub(super) fn mac_limit(
        &mut self,
        ctx: &str,
        raw: Option<&Spanned<i64>>,
        mode: Option<&PortMode>,
    ) -> Option<u32> {
        match raw {
            Some(limit) => self.bounded_key(ctx, "mac_limit", limit, MAX_MAC_LIMIT),
            None => mode.map(PortMode::default_mac_limit),
        }
    }

    /// An integer key in `0..=max`; `None` after recording a problem.
    pub(super) fn bounded_key(
        &mut self,
        ctx: &str,
        key: &str,
        value: &Spanned<i64>,
        max: u32,
    ) -> Option<u32> {
        let number = u32::try_from(*value.get_ref()).ok().filter(|n| *n <= max);
        if number.is_none() {
            self.error(
                &value.span(),
                format!(
                    "{ctx}: `{key}` = {} is out of range (0-{max})",
                    value.get_ref()
                ),
            );
        }
        number
    }
}

/// Why `key` = "lo" is refused: the same words for a port, a host port and `port add`.
pub(super) fn loopback_refused(key: &str) -> String {
    format!(
        "`{key}` = \"{LOOPBACK}\" is the loopback device, not an Ethernet interface; a port \
         must be an Ethernet interface"
    )
}
