//! `port add`: a port requested at run time, checked by the same rules as a `[[bridge.port]]` of
//! the file, and against the file's ports and the other run-time ports of its bridge.

use toml::Spanned;

use super::{BridgeMacs, Origin, Validator};
use crate::config::ConfigError;
use crate::config::raw::{RawPort, TrunkItem};
use crate::config::report::cut_values;
use crate::config::syntax::is_pattern;
use crate::config::types::{BridgeSpec, Config, PortMode, PortSpec};
use crate::config::units::{show_rate, show_size};
use crate::control::PortAdd;

/// Check a `port add` request against `cfg` and the run-time ports already added (`others`: the
/// bridge name and spec of each, without an earlier port of the same interface, which the
/// request replaces). Returns the bridge name and the port.
///
/// The request is turned into the `[[bridge.port]]` the file would hold and validated by the
/// same rules, with the same messages (without a location). Without `access`/`trunk`, the first
/// port of the bridge matching the interface (a rule, or an exact name) decides the VLANs; its
/// `attach` applies unless the request gives one, and its `mac_limit` applies; its `rate` and
/// `burst` apply unless the request gives `rate` or `burst` (a request's `rate` without
/// `burst` has the default burst). Otherwise
/// `attach` is `auto` and `mac_limit` the mode's default. Also refused: an interface the file
/// names exactly (a port, a host interface or a host peer), and a static MAC that another port
/// of the bridge (in the file, or added at run time), or the host port's `mac`, already holds in
/// that VLAN; the message names that port.
///
/// # Errors
///
/// [`ConfigError::PortAdd`] with every problem found.
pub fn check_port_add<'a>(
    cfg: &Config,
    others: impl IntoIterator<Item = (&'a str, &'a PortSpec)>,
    req: &PortAdd,
) -> Result<(String, PortSpec), ConfigError> {
    let refuse = |message: String| ConfigError::PortAdd(vec![cut_values(message)]);
    let bridge = cfg
        .bridges
        .iter()
        .find(|b| b.name == req.bridge)
        .ok_or_else(|| refuse(format!("no bridge {:?} in the configuration", req.bridge)))?;
    let interface = &req.interface;
    let ctx = format!("bridge {:?}, port {interface:?}", bridge.name);
    if is_pattern(interface) {
        return Err(refuse(format!(
            "{ctx}: `interface` = {interface:?} is a pattern; `port add` needs an exact \
             interface name"
        )));
    }
    let rule = bridge.ports.iter().find(|p| p.matches(interface));
    let raw = raw_port(req, rule).ok_or_else(|| {
        refuse(format!(
            "bridge {:?} has no port rule matching {interface:?}: give --access or --trunk",
            bridge.name
        ))
    })?;
    let mut validator = Validator::request();
    let mut macs = bridge_macs(bridge, others);
    let spec = validator.port(
        &bridge.name,
        bridge.mtu,
        &Spanned::new(0..0, raw),
        &mut macs,
    );
    validator.named_in_file(cfg, &ctx, interface);
    let problems: Vec<String> = validator
        .into_problems()
        .into_iter()
        .map(|p| p.message)
        .collect();
    match spec {
        Some(spec) if problems.is_empty() => Ok((bridge.name.clone(), spec)),
        // A port that cannot be described always comes with a problem; be safe anyway.
        _ if problems.is_empty() => Err(refuse(format!("{ctx}: the port is invalid"))),
        _ => Err(ConfigError::PortAdd(problems)),
    }
}

/// `value` at no place in a text: a value of a `port add` request.
fn unspanned<T>(value: T) -> Spanned<T> {
    Spanned::new(0..0, value)
}

/// The `[[bridge.port]]` the file would hold for `req`; `None` if neither the request nor a
/// `rule` gives the VLANs.
fn raw_port(req: &PortAdd, rule: Option<&PortSpec>) -> Option<RawPort> {
    let (access, trunk, native) = if req.access.is_none() && req.trunk.is_none() {
        match &rule?.mode {
            PortMode::Access { vlan } => (Some(*vlan), None, None),
            PortMode::Trunk { vlans, native } => {
                (None, Some(vlans.iter().copied().collect()), *native)
            }
        }
    } else {
        (req.access, req.trunk.clone(), req.native)
    };
    let vlan = |v: u16| unspanned(i64::from(v));
    let sec = &req.security;
    // The rule's limit, unless the request sets its own.
    let inherited = if req.rate.is_none() && req.burst.is_none() {
        rule.and_then(|r| r.rate)
    } else {
        None
    };
    Some(RawPort {
        interface: unspanned(req.interface.clone()),
        access: access.map(vlan),
        trunk: trunk.map(|list: Vec<u16>| {
            unspanned(
                list.into_iter()
                    .map(|v| unspanned(TrunkItem::Id(i64::from(v))))
                    .collect(),
            )
        }),
        native_vlan: native.map(vlan),
        attach: req
            .attach
            .clone()
            .or_else(|| rule.map(|r| r.attach.as_str().to_owned()))
            .map(unspanned),
        macs: req.macs.iter().cloned().map(unspanned).collect(),
        mac_limit: rule.map(|r| unspanned(i64::from(r.mac_limit))),
        // Port security: the request's keys, else the rule's (its `security` only when the rule
        // sets it, so that `--ip` turns the default on for an access port).
        security: sec
            .security
            .or_else(|| rule.and_then(|r| r.security.requested))
            .map(unspanned),
        ips: sec.ips.iter().cloned().map(unspanned).collect(),
        allow_dhcp_server: sec
            .allow_dhcp_server
            .or_else(|| rule.map(|r| r.security.allow_dhcp_server)),
        allow_ra: sec.allow_ra.or_else(|| rule.map(|r| r.security.allow_ra)),
        allow_ethertypes: sec
            .allow_ethertypes
            .clone()
            .or_else(|| {
                rule.map(|r| {
                    r.security
                        .ethertypes
                        .iter()
                        .map(|t| format!("0x{t:04x}"))
                        .collect()
                })
            })
            .map(|list| unspanned(list.into_iter().map(unspanned).collect())),
        mac_move: req
            .mac_move
            .or_else(|| rule.map(|r| r.mac_move))
            .map(unspanned),
        rate: req
            .rate
            .clone()
            .or_else(|| inherited.map(|l| show_rate(l.bits_per_sec)))
            .map(unspanned),
        burst: req
            .burst
            .clone()
            .or_else(|| inherited.map(|l| show_size(l.burst_bytes)))
            .map(unspanned),
    })
}

/// The static MACs `bridge` already holds: its ports' in the file, the host port's `mac` in
/// every VLAN the host port carries, and the run-time ports' of this bridge among `others`.
fn bridge_macs<'a>(
    bridge: &BridgeSpec,
    others: impl IntoIterator<Item = (&'a str, &'a PortSpec)>,
) -> BridgeMacs {
    let mut macs = BridgeMacs::new();
    for port in &bridge.ports {
        for &key in &port.macs {
            macs.entry(key)
                .or_insert_with(|| (Origin::File, format!("port {:?}", port.interface)));
        }
    }
    if let Some(host) = &bridge.host
        && let Some(mac) = host.mac
    {
        let vlans: Vec<u16> = match &host.mode {
            PortMode::Access { vlan } => vec![*vlan],
            PortMode::Trunk { vlans, .. } => vlans.iter().copied().collect(),
        };
        for vlan in vlans {
            macs.entry((mac, vlan)).or_insert_with(|| {
                (
                    Origin::File,
                    format!("the `mac` of host port {:?}", host.interface),
                )
            });
        }
    }
    for (name, port) in others {
        if name != bridge.name {
            continue;
        }
        for &key in &port.macs {
            macs.entry(key)
                .or_insert_with(|| (Origin::PortAdd, format!("port {:?}", port.interface)));
        }
    }
    macs
}
