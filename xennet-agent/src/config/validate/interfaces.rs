//! Each interface once: ports, host interfaces and host peers of all bridges.

use std::collections::HashMap;
use std::ops::Range;

use super::Validator;
use crate::config::raw::RawConfig;
use crate::config::syntax::{DefaultPeer, default_peer};
use crate::config::types::{Config, HOST_PEER_PREFIX};

/// One use of an interface name, for the "each interface once" rule.
struct Claim {
    name: String,
    /// Where to report a duplicate.
    span: Range<usize>,
    /// Message prefix naming the bridge and port, without the final ": ".
    ctx: String,
    /// How the message names this use, e.g. "`peer` \"xnh-b\"".
    subject: String,
    /// How a later duplicate names this use, e.g. "a port of bridge \"b\"".
    role: String,
}

impl Validator<'_> {
    /// Report every interface name used more than once in the file (ports,
    /// host interfaces and host peers), at each later use.
    pub(super) fn unique_interfaces(&mut self, raw: &RawConfig) {
        let mut claims = Vec::new();
        for bridge in &raw.bridge {
            let bridge = bridge.get_ref();
            let name = bridge.name.get_ref();
            for port in &bridge.port {
                let interface = port.get_ref().interface.get_ref();
                claims.push(Claim {
                    name: interface.clone(),
                    span: port.get_ref().interface.span(),
                    ctx: format!("bridge {name:?}, port {interface:?}"),
                    subject: format!("interface {interface:?}"),
                    role: format!("a port of bridge {name:?}"),
                });
            }
            let Some(host) = &bridge.host else {
                continue;
            };
            let header = host.span();
            let host = &host.get_ref().0;
            let interface = host.interface.get_ref();
            let ctx = format!("bridge {name:?}, host port {interface:?}");
            claims.push(Claim {
                name: interface.clone(),
                span: host.interface.span(),
                ctx: ctx.clone(),
                subject: format!("interface {interface:?}"),
                role: format!("the host interface of bridge {name:?}"),
            });
            if let Some(peer) = &host.peer {
                claims.push(Claim {
                    name: peer.get_ref().clone(),
                    span: peer.span(),
                    ctx,
                    subject: format!("`peer` {:?}", peer.get_ref()),
                    role: format!("the host peer of bridge {name:?}"),
                });
            } else if let DefaultPeer::Valid(peer) = default_peer(name) {
                claims.push(Claim {
                    subject: format!("the default `peer` {peer:?}"),
                    name: peer,
                    span: header,
                    ctx,
                    role: format!("the default host peer of bridge {name:?}"),
                });
            }
        }
        claims.sort_by_key(|claim| claim.span.start);
        let mut first: HashMap<&str, (usize, &str)> = HashMap::new();
        let mut duplicates = Vec::new();
        for claim in &claims {
            if let Some(&(at, role)) = first.get(claim.name.as_str()) {
                duplicates.push((claim, at, role));
            } else {
                first.insert(&claim.name, (claim.span.start, &claim.role));
            }
        }
        for (claim, at, role) in duplicates {
            let line = self.line(at);
            self.error(
                &claim.span,
                format!(
                    "{}: {} is already {role} at line {line}; each interface may appear only \
                     once in the file",
                    claim.ctx, claim.subject
                ),
            );
        }
    }

    /// A `port add` request for `interface`: refuse a name the file gives exactly (a port, a
    /// host interface or a host peer), as the file refuses a second use of a name.
    pub(super) fn named_in_file(&mut self, cfg: &Config, ctx: &str, interface: &str) {
        for bridge in &cfg.bridges {
            let name = &bridge.name;
            let mut roles = Vec::new();
            if bridge
                .ports
                .iter()
                .any(|p| !p.is_rule() && p.interface == interface)
            {
                roles.push(format!("a port of bridge {name:?}"));
            }
            if let Some(host) = &bridge.host {
                if host.interface == interface {
                    roles.push(format!("the host interface of bridge {name:?}"));
                }
                if host.peer == interface {
                    let default = host.peer == format!("{HOST_PEER_PREFIX}{name}");
                    let kind = if default {
                        "default host peer"
                    } else {
                        "host peer"
                    };
                    roles.push(format!("the {kind} of bridge {name:?}"));
                }
            }
            for role in roles {
                self.error(
                    &(0..0),
                    format!(
                        "{ctx}: interface {interface:?} is already {role} in the configuration \
                         file; each interface may appear only once"
                    ),
                );
            }
        }
    }
}
