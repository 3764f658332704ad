//! From configuration to concrete ports: exact names, pattern rules (`interface = "vif*"`)
//! matched against the interfaces that exist now, and ports added at run time by the
//! toolstack (`xennet-agent port add`). The result is a [`Config`] whose ports all name
//! existing interfaces, which [`crate::datapath::Datapath::apply`] brings the datapath to.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::{Config, PortSpec, check_port_add};

/// A port added at run time: its bridge and spec.
pub type RuntimePorts = BTreeMap<String, (String, PortSpec)>;

/// The concrete configuration, and the exact interfaces it is still waiting for.
#[derive(Debug)]
pub struct Resolved {
    /// Every port names an existing interface.
    pub config: Config,
    /// Configured (exact) or run-time ports whose interface does not exist (yet).
    pub waiting: Vec<String>,
}

/// Resolve `cfg` and `runtime` against the interfaces in `links`.
///
/// Precedence for an interface: a run-time port, then an exact name in the file, then the
/// first pattern rule (file order) that matches it. Host-port interfaces are never matched
/// by rules, nor is `lo`.
#[must_use]
pub fn resolve(cfg: &Config, links: &BTreeSet<String>, runtime: &RuntimePorts) -> Resolved {
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
    for (b, orig) in out.bridges.iter_mut().zip(&cfg.bridges) {
        let mut ports = Vec::new();
        for p in &orig.ports {
            if p.is_rule() {
                for link in links {
                    if !claimed.contains(link.as_str()) && p.matches(link) {
                        let mut concrete = p.clone();
                        concrete.interface.clone_from(link);
                        ports.push(concrete);
                    }
                }
                // Later rules must not take what this one took.
                for q in &ports {
                    claimed.insert(links.get(&q.interface).map_or("", String::as_str));
                }
            } else if runtime.contains_key(&p.interface) {
                // The toolstack's explicit spec wins.
            } else if links.contains(&p.interface) {
                ports.push(p.clone());
            } else {
                waiting.push(p.interface.clone());
            }
        }
        for (name, (bridge, spec)) in runtime {
            if *bridge == b.name {
                if links.contains(name) {
                    ports.push(spec.clone());
                } else {
                    waiting.push(name.clone());
                }
            }
        }
        b.ports = ports;
    }
    Resolved {
        config: out,
        waiting,
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
        let links: BTreeSet<String> = [
            "lo",
            "eth1",
            "vif1.0",
            "vif2.0",
            "vif2.1",
            "vif3.0",
            "vifmgmt",
            "xnh-trunk",
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        let mut runtime = RuntimePorts::new();
        runtime.insert(
            "vif3.0".into(),
            (
                "trunk".into(),
                PortSpec {
                    interface: "vif3.0".into(),
                    mode: PortMode::Access { vlan: 4093 },
                    attach: AttachMode::Tc,
                    macs: vec![],
                    mac_limit: 5,
                },
            ),
        );
        runtime.insert(
            "vif9.0".into(),
            (
                "internal".into(),
                PortSpec {
                    interface: "vif9.0".into(),
                    mode: PortMode::Access { vlan: 10 },
                    attach: AttachMode::Tc,
                    macs: vec![],
                    mac_limit: 5,
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
        let links: BTreeSet<String> = ["vif5.1"].iter().map(ToString::to_string).collect();
        let r = resolve(&cfg, &links, &RuntimePorts::new());
        assert_eq!(r.waiting, ["eth1", "vif1.0"]);
        assert_eq!(names(&r.config, 0), ["vif5.1"]);
    }

    fn request(interface: &str, bridge: &str, macs: &[&str]) -> PortAdd {
        PortAdd {
            interface: interface.into(),
            bridge: bridge.into(),
            access: None,
            trunk: None,
            native: None,
            macs: macs.iter().map(ToString::to_string).collect(),
            attach: None,
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
