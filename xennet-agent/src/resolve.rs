//! From configuration to concrete ports: exact names, pattern rules (`interface = "vif*"`)
//! matched against the interfaces that exist now, and ports added at run time by the
//! toolstack (`xennet-agent port add`). The result is a [`Config`] whose ports all name
//! existing Ethernet interfaces, which [`crate::datapath::Datapath::apply`] brings the datapath
//! to.

use std::collections::{BTreeMap, BTreeSet};

use tracing::debug;

use crate::config::{Config, PortSpec, check_port_add};

/// `ARPHRD_ETHER`: the link-layer type of every interface that can be a port.
pub const ARPHRD_ETHER: u16 = 1;

/// An interface's link-layer type (`ARPHRD_*`, from its rtnetlink header).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkType {
    /// The `ARPHRD_*` number.
    pub code: u16,
    /// Its name for messages (`ETHER`, `LOOPBACK`, `NONE`…).
    pub name: String,
}

impl LinkType {
    /// Ethernet (`ARPHRD_ETHER`).
    #[must_use]
    pub fn ethernet() -> Self {
        LinkType {
            code: ARPHRD_ETHER,
            name: "ETHER".to_owned(),
        }
    }
}

/// The interfaces of the namespace and their link-layer types.
pub type Links = BTreeMap<String, LinkType>;

/// Whether `interface`, of link-layer type `link`, may be a port: the rule for the file's
/// exact ports and for `port add` (a rule's matches are skipped instead).
///
/// # Errors
///
/// Why not, naming the interface and its type.
pub fn ethernet_only(interface: &str, link: &LinkType) -> Result<(), String> {
    if link.code == ARPHRD_ETHER {
        return Ok(());
    }
    Err(format!(
        "interface {interface:?} is not an Ethernet device (link type {} = {}); a port must be \
         an Ethernet interface",
        link.name, link.code
    ))
}

/// A port added at run time: its bridge and spec.
pub type RuntimePorts = BTreeMap<String, (String, PortSpec)>;

/// The concrete configuration, and the exact interfaces it is still waiting for.
#[derive(Debug)]
pub struct Resolved {
    /// Every port names an existing interface.
    pub config: Config,
    /// Configured (exact) or run-time ports whose interface does not exist (yet).
    pub waiting: Vec<String>,
    /// Configured (exact) or run-time ports whose interface is not Ethernet: left out, with
    /// the reason ([`ethernet_only`]).
    pub refused: Vec<String>,
}

/// Resolve `cfg` and `runtime` against the interfaces in `links`.
///
/// Precedence for an interface: a run-time port, then an exact name in the file, then the
/// first pattern rule (file order) that matches it. Host-port interfaces are never matched
/// by rules, nor is `lo`, nor any interface that is not Ethernet (skipped, logged at debug
/// level). An exact or run-time port whose interface is not Ethernet is left out and listed
/// in [`Resolved::refused`].
#[must_use]
pub fn resolve(cfg: &Config, links: &Links, runtime: &RuntimePorts) -> Resolved {
    let mut claimed: BTreeSet<&str> = BTreeSet::new();
    claimed.insert("lo");
    for b in &cfg.bridges {
        if let Some(h) = &b.host {
            claimed.insert(&h.interface);
            claimed.insert(&h.peer);
        }
        for p in b.ports.iter().filter(|p| !p.is_rule()) {
            claimed.insert(&p.interface);
        }
    }
    for name in runtime.keys() {
        claimed.insert(name);
    }
    let mut out = cfg.clone();
    let mut waiting = Vec::new();
    let mut refused = Vec::new();
    // An exact or run-time port: attached if its interface exists and is Ethernet.
    let mut exact = |spec: &PortSpec, ports: &mut Vec<PortSpec>| match links.get(&spec.interface) {
        None => waiting.push(spec.interface.clone()),
        Some(link) => match ethernet_only(&spec.interface, link) {
            Ok(()) => ports.push(spec.clone()),
            Err(why) => refused.push(why),
        },
    };
    for (b, orig) in out.bridges.iter_mut().zip(&cfg.bridges) {
        let mut ports = Vec::new();
        for p in &orig.ports {
            if p.is_rule() {
                for (link, kind) in links {
                    if claimed.contains(link.as_str()) || !p.matches(link) {
                        continue;
                    }
                    if let Err(why) = ethernet_only(link, kind) {
                        debug!(rule = %p.interface, "{why}: not matched");
                        continue;
                    }
                    let mut concrete = p.clone();
                    concrete.interface.clone_from(link);
                    ports.push(concrete);
                }
                // Later rules must not take what this one took.
                for q in &ports {
                    claimed.insert(
                        links
                            .get_key_value(&q.interface)
                            .map_or("", |(k, _)| k.as_str()),
                    );
                }
            } else if runtime.contains_key(&p.interface) {
                // The toolstack's explicit spec wins.
            } else {
                exact(p, &mut ports);
            }
        }
        for (bridge, spec) in runtime.values() {
            if *bridge == b.name {
                exact(spec, &mut ports);
            }
        }
        b.ports = ports;
    }
    Resolved {
        config: out,
        waiting,
        refused,
    }
}

/// Turn a `port add` request into a run-time port of `cfg`'s bridge, validated by the
/// configuration's own port rules ([`crate::config::check_port_add`]) against the file and the
/// other ports in `runtime` (a port of the same interface is replaced, so it does not count).
/// Without `access`/`trunk`, the first rule (or exact port) of that bridge matching the
/// interface decides the VLANs and attach mode.
///
/// # Errors
///
/// Every problem of the request, one per line, worded as the file's.
pub fn runtime_port(
    cfg: &Config,
    runtime: &RuntimePorts,
    req: &crate::control::PortAdd,
) -> anyhow::Result<(String, PortSpec)> {
    let others = runtime
        .iter()
        .filter(|(name, _)| **name != req.interface)
        .map(|(_, (bridge, spec))| (bridge.as_str(), spec));
    Ok(check_port_add(cfg, others, req)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AttachMode, PortMode};
    use crate::control::PortAdd;

    const CFG: &str = r#"
[[bridge]]
name = "trunk"
[[bridge.port]]
interface = "eth1"
trunk = [4093, 4094]
[[bridge.port]]
interface = "vif1.0"
access = 4093
[[bridge.port]]
interface = "vif*"
access = 4094
attach = "tc"
[bridge.host]
interface = "vifmgmt"
access = 4094

[[bridge]]
name = "internal"
[[bridge.port]]
interface = "vif*.1"
access = 10
"#;

    /// Ethernet interfaces of these names (`lo` is a loopback).
    fn links(names: &[&str]) -> Links {
        names
            .iter()
            .map(|n| {
                let kind = if *n == "lo" {
                    LinkType {
                        code: 772,
                        name: "LOOPBACK".into(),
                    }
                } else {
                    LinkType::ethernet()
                };
                ((*n).to_string(), kind)
            })
            .collect()
    }

    fn names(c: &Config, bridge: usize) -> Vec<&str> {
        c.bridges[bridge]
            .ports
            .iter()
            .map(|p| p.interface.as_str())
            .collect()
    }

    #[test]
    fn exact_names_rules_runtime_and_waiting() {
        let cfg = Config::parse(CFG, "t.toml").unwrap();
        let links = links(&[
            "lo",
            "eth1",
            "vif1.0",
            "vif2.0",
            "vif2.1",
            "vif3.0",
            "vifmgmt",
            "xnh-trunk",
        ]);
        let mut runtime = RuntimePorts::new();
        runtime.insert(
            "vif3.0".into(),
            (
                "trunk".into(),
                PortSpec {
                    mac_move: false,
                    security: crate::config::PortSecurity::default(),
                    interface: "vif3.0".into(),
                    mode: PortMode::Access { vlan: 4093 },
                    attach: AttachMode::Tc,
                    macs: vec![],
                    mac_limit: 5,
                    rate: None,
                },
            ),
        );
        runtime.insert(
            "vif9.0".into(),
            (
                "internal".into(),
                PortSpec {
                    mac_move: false,
                    security: crate::config::PortSecurity::default(),
                    interface: "vif9.0".into(),
                    mode: PortMode::Access { vlan: 10 },
                    attach: AttachMode::Tc,
                    macs: vec![],
                    mac_limit: 5,
                    rate: None,
                },
            ),
        );
        let r = resolve(&cfg, &links, &runtime);
        // vif1.0 exact (4093), vif2.0 and vif2.1 by the first rule "vif*" (file order),
        // vif3.0 from run time, host interfaces never matched.
        assert_eq!(
            names(&r.config, 0),
            ["eth1", "vif1.0", "vif2.0", "vif2.1", "vif3.0"]
        );
        let find = |n: &str| {
            r.config.bridges[0]
                .ports
                .iter()
                .find(|p| p.interface == n)
                .unwrap()
        };
        assert_eq!(find("vif1.0").mode, PortMode::Access { vlan: 4093 });
        assert_eq!(find("vif2.0").mode, PortMode::Access { vlan: 4094 });
        assert_eq!(find("vif2.0").attach, AttachMode::Tc);
        assert_eq!(find("vif3.0").mac_limit, 5);
        // "vif*.1" comes second: vif2.1 was taken by "vif*" already.
        assert!(names(&r.config, 1).is_empty());
        assert_eq!(r.waiting, ["vif9.0"]);
    }

    #[test]
    fn missing_exact_ports_wait() {
        let cfg = Config::parse(CFG, "t.toml").unwrap();
        let links = links(&["vif5.1"]);
        let r = resolve(&cfg, &links, &RuntimePorts::new());
        assert_eq!(r.waiting, ["eth1", "vif1.0"]);
        assert_eq!(names(&r.config, 0), ["vif5.1"]);
    }

    #[test]
    fn interfaces_that_are_not_ethernet_never_become_ports() {
        let cfg = Config::parse(CFG, "t.toml").unwrap();
        let mut links = links(&["eth1", "vif2.0", "vif7.0"]);
        let tun = LinkType {
            code: 65534,
            name: "NONE".into(),
        };
        // The exact port eth1 and a run-time port are tun devices; so is vif7.0, which the
        // rule "vif*" matches.
        links.insert("eth1".into(), tun.clone());
        links.insert("vif7.0".into(), tun.clone());
        links.insert("vif8.0".into(), tun);
        let mut runtime = RuntimePorts::new();
        runtime.insert(
            "vif8.0".into(),
            (
                "trunk".into(),
                PortSpec {
                    mac_move: false,
                    security: crate::config::PortSecurity::default(),
                    interface: "vif8.0".into(),
                    mode: PortMode::Access { vlan: 4093 },
                    attach: AttachMode::Tc,
                    macs: vec![],
                    mac_limit: 5,
                    rate: None,
                },
            ),
        );
        let r = resolve(&cfg, &links, &runtime);
        assert_eq!(names(&r.config, 0), ["vif2.0"], "only the Ethernet match");
        assert_eq!(r.waiting, ["vif1.0"]);
        assert_eq!(
            r.refused,
            [
                "interface \"eth1\" is not an Ethernet device (link type NONE = 65534); a port \
                 must be an Ethernet interface",
                "interface \"vif8.0\" is not an Ethernet device (link type NONE = 65534); a \
                 port must be an Ethernet interface",
            ]
        );
        assert_eq!(ethernet_only("x", &LinkType::ethernet()), Ok(()));
    }

    fn request(interface: &str, bridge: &str, macs: &[&str]) -> PortAdd {
        PortAdd {
            security: crate::control::SecurityRequest::default(),
            interface: interface.into(),
            bridge: bridge.into(),
            access: None,
            trunk: None,
            native: None,
            macs: macs.iter().map(ToString::to_string).collect(),
            attach: None,
            ..PortAdd::default()
        }
    }

    #[test]
    fn runtime_ports_own_their_static_macs() {
        let cfg = Config::parse(CFG, "t.toml").unwrap();
        let mut runtime = RuntimePorts::new();
        let first = request("vif3.0", "trunk", &["00:16:3e:00:00:03"]);
        let (bridge, spec) = runtime_port(&cfg, &runtime, &first).unwrap();
        assert_eq!(bridge, "trunk");
        assert_eq!(spec.mode, PortMode::Access { vlan: 4094 });
        assert_eq!(spec.attach, AttachMode::Tc);
        runtime.insert("vif3.0".into(), (bridge, spec));
        // The same interface again replaces its port: its own MAC is no conflict.
        assert!(runtime_port(&cfg, &runtime, &first).is_ok());
        // Another interface of the bridge with that MAC and VLAN is refused, naming the owner.
        let err = runtime_port(
            &cfg,
            &runtime,
            &request("vif4.0", "trunk", &["00:16:3e:00:00:03"]),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "bridge \"trunk\", port \"vif4.0\": `macs` entry \"00:16:3e:00:00:03\": static MAC \
             00:16:3e:00:00:03 in VLAN 4094 is already given by `port add` (port \"vif3.0\"); \
             each MAC may appear once per VLAN of a bridge"
        );
        // Another bridge is another FDB: the same MAC is fine there.
        assert!(
            runtime_port(
                &cfg,
                &runtime,
                &request("vif4.1", "internal", &["00:16:3e:00:00:03"])
            )
            .is_ok()
        );
        // Names the file gives exactly are refused, whatever the bridge.
        for name in ["eth1", "vifmgmt", "xnh-trunk"] {
            let mut req = request(name, "internal", &[]);
            req.access = Some(10);
            let err = runtime_port(&cfg, &runtime, &req).unwrap_err().to_string();
            assert!(err.contains("in the configuration file"), "{name}: {err}");
        }
    }
}
