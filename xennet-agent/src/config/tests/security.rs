//! Port security keys: defaults, what the validator refuses, and the same messages for the file
//! and for `port add` (one validation path).

use super::*;
use crate::control::{PortAdd, SecurityRequest};

/// Bridge "b" with a trunk and a rule `vif*` (access 10, security on, DHCP server allowed).
const BASE: &str = r#"[[bridge]]
name = "b"
[[bridge.port]]
interface = "eth1"
trunk = [10, 20]
[[bridge.port]]
interface = "vif*"
access = 10
security = true
allow_dhcp_server = true
"#;

const MAC: &str = "00:16:3e:00:00:01";

/// The only port of the file `BASE` + a port `x0` with `keys`.
fn port_with(keys: &str) -> PortSpec {
    let cfg = parse(&format!(
        "{BASE}[[bridge.port]]\ninterface = \"x0\"\n{keys}\n"
    ));
    cfg.bridges[0]
        .ports
        .iter()
        .find(|p| p.interface == "x0")
        .cloned()
        .expect("x0")
}

#[test]
fn defaults_follow_xen_on_for_an_access_port_with_ips_only() {
    let plain = port_with(&format!("access = 10\nmacs = [\"{MAC}\"]"));
    assert!(
        !plain.security.enabled,
        "no ips: off (Xen filters only with ip=)"
    );
    assert_eq!(plain.security.ethertypes, vec![0x0800, 0x0806, 0x86dd]);
    let with_ips = port_with(&format!(
        "access = 10\nmacs = [\"{MAC}\"]\nips = [\"192.0.2.10\", \"2001:db8::/64\", \"198.51.100.7/24\"]"
    ));
    assert!(with_ips.security.enabled);
    assert_eq!(with_ips.security.requested, None);
    let ips: Vec<String> = with_ips
        .security
        .ips
        .iter()
        .map(|(ip, len)| format!("{ip}/{len}"))
        .collect();
    assert_eq!(ips, ["192.0.2.10/32", "2001:db8::/64", "198.51.100.7/24"]);
    let trunk = port_with(&format!(
        "trunk = [10]\nmacs = [\"{MAC}@10\"]\nips = [\"192.0.2.10\"]"
    ));
    assert!(!trunk.security.enabled, "trunks: off unless asked");
    let asked = port_with(&format!(
        "trunk = [10]\nmacs = [\"{MAC}@10\"]\nsecurity = true\nallow_ra = true\nallow_ethertypes = [\"ipv4\", \"arp\", \"0x88b5\"]"
    ));
    assert!(asked.security.enabled && asked.security.allow_ra);
    assert!(!asked.security.allow_dhcp_server);
    assert_eq!(asked.security.ethertypes, vec![0x0800, 0x0806, 0x88b5]);
    let off = port_with(&format!(
        "access = 10\nmacs = [\"{MAC}\"]\nips = [\"192.0.2.10\"]\nsecurity = false"
    ));
    assert!(!off.security.enabled, "security = false wins");
}

/// (what, the port's keys in the file, the same as a `port add` request, the message).
fn refused() -> Vec<(&'static str, String, SecurityRequest, &'static str)> {
    let req = |ips: &[&str]| SecurityRequest {
        ips: ips.iter().map(|s| (*s).to_owned()).collect(),
        ..SecurityRequest::default()
    };
    let nine: Vec<String> = (1..=9).map(|i| format!("192.0.2.{i}")).collect();
    let nine_refs: Vec<&str> = nine.iter().map(String::as_str).collect();
    vec![
        (
            "not an address",
            "ips = [\"192.0.2\"]".to_owned(),
            req(&["192.0.2"]),
            "bridge \"b\", port \"x0\": `ips` entry \"192.0.2\": \"192.0.2\" is not an IPv4 or IPv6 address or prefix",
        ),
        (
            "prefix too long",
            "ips = [\"192.0.2.0/33\"]".to_owned(),
            req(&["192.0.2.0/33"]),
            "bridge \"b\", port \"x0\": `ips` entry \"192.0.2.0/33\": prefix length 33 is out of range for IPv4 (0-32)",
        ),
        (
            "multicast",
            "ips = [\"224.0.0.1\"]".to_owned(),
            req(&["224.0.0.1"]),
            "bridge \"b\", port \"x0\": `ips` entry \"224.0.0.1\": 224.0.0.1 is a multicast address, not an interface address",
        ),
        (
            "twice",
            "ips = [\"192.0.2.1\", \"192.0.2.1/32\"]".to_owned(),
            req(&["192.0.2.1", "192.0.2.1/32"]),
            "bridge \"b\", port \"x0\": `ips` entry \"192.0.2.1/32\" is already listed as \"192.0.2.1\"",
        ),
        (
            "nine IPv4 entries",
            format!("ips = {nine:?}"),
            req(&nine_refs),
            "bridge \"b\", port \"x0\": `ips` entry \"192.0.2.9\": a port has at most 8 IPv4 entries",
        ),
        (
            "an unknown ethertype name",
            "allow_ethertypes = [\"ipx\"]".to_owned(),
            SecurityRequest {
                allow_ethertypes: Some(vec!["ipx".to_owned()]),
                ..SecurityRequest::default()
            },
            "bridge \"b\", port \"x0\": `allow_ethertypes` entry \"ipx\": not one of ipv4, arp, ipv6, lldp, eapol nor a hexadecimal 0xNNNN",
        ),
        (
            "an 802.3 length",
            "allow_ethertypes = [\"0x05dc\"]".to_owned(),
            SecurityRequest {
                allow_ethertypes: Some(vec!["0x05dc".to_owned()]),
                ..SecurityRequest::default()
            },
            "bridge \"b\", port \"x0\": `allow_ethertypes` entry \"0x05dc\": 0x05dc is an 802.3 length, not an ethertype (≥ 0x0600)",
        ),
        (
            "a VLAN TPID",
            "allow_ethertypes = [\"0x8100\"]".to_owned(),
            SecurityRequest {
                allow_ethertypes: Some(vec!["0x8100".to_owned()]),
                ..SecurityRequest::default()
            },
            "bridge \"b\", port \"x0\": `allow_ethertypes` entry \"0x8100\": 0x8100 is a VLAN tag protocol; tags are classified before port security",
        ),
    ]
}

/// Every refused value gives the same message in the file and through `port add`.
#[test]
fn bad_values_give_the_same_message_in_the_file_and_through_port_add() {
    let cfg = parse(BASE);
    for (what, keys, sec, message) in refused() {
        let file = errors(&format!(
            "{BASE}[[bridge.port]]\ninterface = \"x0\"\naccess = 10\nmacs = [\"{MAC}\"]\n{keys}\n"
        ));
        let file: Vec<&str> = file
            .iter()
            .map(|l| l.split_once(": ").map_or(l.as_str(), |(_, m)| m))
            .collect();
        assert_eq!(file, [message], "{what} (file)");
        let req = PortAdd {
            mac_move: None,
            interface: "x0".to_owned(),
            bridge: "b".to_owned(),
            access: Some(10),
            trunk: None,
            native: None,
            macs: vec![MAC.to_owned()],
            attach: None,
            rate: None,
            burst: None,
            security: sec,
        };
        match check_port_add(&cfg, [], &req) {
            Err(ConfigError::PortAdd(lines)) => assert_eq!(lines, [message], "{what} (port add)"),
            other => panic!("{what}: expected a refusal, got {other:?}"),
        }
    }
}

#[test]
fn security_needs_the_guests_mac_and_ips_need_an_exact_name() {
    let no_mac = errors(&format!(
        "{BASE}[[bridge.port]]\ninterface = \"x0\"\naccess = 10\nips = [\"192.0.2.10\"]\n"
    ));
    assert_eq!(
        no_mac,
        [
            "t.toml:12:13: bridge \"b\", port \"x0\": port security (on by default for an access \
          port with `ips`) needs the guest's MAC in `macs` (only frames from the port's static \
          MACs pass); add it, or set `security = false`"
        ]
    );
    let rule = errors(&format!(
        "{BASE}[[bridge.port]]\ninterface = \"y*\"\naccess = 10\nips = [\"192.0.2.10\"]\n"
    ));
    assert_eq!(
        rule,
        [
            "t.toml:14:8: bridge \"b\", port \"y*\": `ips` need an exact interface name, not a \
          pattern (add them with `xennet-agent port add … --ip` when the vif appears)"
        ]
    );
    // Through `port add` under the rule `vif*` (security = true): no --mac is refused.
    let cfg = parse(BASE);
    let req = PortAdd {
        mac_move: None,
        interface: "vif3.0".to_owned(),
        bridge: "b".to_owned(),
        access: None,
        trunk: None,
        native: None,
        macs: Vec::new(),
        attach: None,
        rate: None,
        burst: None,
        security: SecurityRequest::default(),
    };
    match check_port_add(&cfg, [], &req) {
        Err(ConfigError::PortAdd(lines)) => assert_eq!(
            lines,
            [
                "bridge \"b\", port \"vif3.0\": `security = true` needs the guest's MAC in `macs` \
              (only frames from the port's static MACs pass); add it, or set `security = false`"
            ]
        ),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn port_add_inherits_the_rules_security_and_ip_turns_the_default_on() {
    let cfg = parse(BASE);
    let mut req = PortAdd {
        mac_move: None,
        interface: "vif3.0".to_owned(),
        bridge: "b".to_owned(),
        access: None,
        trunk: None,
        native: None,
        macs: vec![MAC.to_owned()],
        attach: None,
        rate: None,
        burst: None,
        security: SecurityRequest {
            ips: vec!["192.0.2.10".to_owned()],
            ..SecurityRequest::default()
        },
    };
    let (_, spec) = check_port_add(&cfg, [], &req).expect("valid");
    assert!(
        spec.security.enabled && spec.security.allow_dhcp_server,
        "the rule's keys"
    );
    assert_eq!(spec.security.ips.len(), 1);
    req.security.allow_dhcp_server = Some(false);
    req.security.security = Some(false);
    let (_, spec) = check_port_add(&cfg, [], &req).expect("valid");
    assert!(
        !spec.security.enabled && !spec.security.allow_dhcp_server,
        "the request wins"
    );
    // On the trunk's bridge without a rule's `security`: --ip alone turns it on for access.
    let plain =
        parse("[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"vif*\"\naccess = 10\n");
    req.security = SecurityRequest {
        ips: vec!["192.0.2.10".to_owned()],
        ..SecurityRequest::default()
    };
    let (_, spec) = check_port_add(&plain, [], &req).expect("valid");
    assert!(spec.security.enabled);
    req.security.ips.clear();
    let (_, spec) = check_port_add(&plain, [], &req).expect("valid");
    assert!(!spec.security.enabled, "no --ip, no rule key: off");
}
