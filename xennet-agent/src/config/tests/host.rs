//! `[bridge.host]`: keys, defaults, errors, and its slot in the port limit.

use super::*;

#[test]
fn host_port_all_keys() {
    let config = parse(
        "[[bridge]]\nname = \"trunk\"\n\
             [[bridge.port]]\ninterface = \"eth1\"\ntrunk = [4093, 4094]\n\
             macs = [\"02:00:00:00:00:fe@4094\", \"02:00:00:00:94:10@4093\"]\n\
             [bridge.host]\ninterface = \"mgmt0\"\npeer = \"mgmt0-br\"\naccess = 4094\n\
             addresses = [\"10.0.94.10/24\", \"fd00::10/64\", \"192.0.2.1/32\", \"fe80::1/128\", \"10.1.0.1/0\"]\n\
             mac = \"02-00-00-00-94-10\"\nmac_limit = 8\n",
    );
    assert_eq!(
        config.bridges[0].host,
        Some(HostSpec {
            interface: "mgmt0".to_owned(),
            peer: "mgmt0-br".to_owned(),
            mode: PortMode::Access { vlan: 4094 },
            addresses: vec![
                "10.0.94.10/24".to_owned(),
                "fd00::10/64".to_owned(),
                "192.0.2.1/32".to_owned(),
                "fe80::1/128".to_owned(),
                "10.1.0.1/0".to_owned(),
            ],
            // 02:00:00:00:94:10 is static on eth1 in VLAN 4093 only: no clash.
            mac: Some(MacAddr([0x02, 0, 0, 0, 0x94, 0x10])),
            mac_limit: 8,
        })
    );
}

#[test]
fn host_port_defaults_and_trunk_mode() {
    // A bridge with only a host port; the default peer is "xnh-" + name.
    let config =
        parse("[[bridge]]\nname = \"mgmt\"\n[bridge.host]\ninterface = \"mgmt0\"\naccess = 4094\n");
    assert_eq!(
        config.bridges,
        [bridge(
            "mgmt",
            1,
            vec![],
            Some(host("mgmt0", "xnh-mgmt", 4094, &[]))
        )]
    );
    // A trunk host port: native VLAN joins the set, trunk default mac_limit.
    let config = parse(
        "[[bridge]]\nname = \"b\"\n\
             [bridge.host]\ninterface = \"dom0\"\ntrunk = [\"10-12\"]\nnative_vlan = 1\n",
    );
    let spec = config.bridges[0].host.as_ref().unwrap();
    assert_eq!(
        (&spec.peer, &spec.mode, spec.mac_limit, spec.mac),
        (
            &"xnh-b".to_owned(),
            &trunk(&[1, 10, 11, 12], Some(1)),
            16384,
            None
        )
    );
    // An inline table works too, and the host may come before the ports.
    let config = parse(
        "[[bridge]]\nname = \"b\"\nhost = { interface = \"h\", access = 2 }\n\
             [[bridge.port]]\ninterface = \"eth0\"\naccess = 2\n",
    );
    assert_eq!(config.bridges[0].host, Some(host("h", "xnh-b", 2, &[])));
    assert_eq!(config.bridges[0].ports.len(), 1);
    // The longest bridge name whose default peer fits: 11 characters.
    let config =
        parse("[[bridge]]\nname = \"abcdefghijk\"\n[bridge.host]\ninterface = \"h\"\naccess = 1\n");
    assert_eq!(
        config.bridges[0].host.as_ref().unwrap().peer,
        "xnh-abcdefghijk"
    );
    // A longer one needs an explicit peer.
    let config = parse(
        "[[bridge]]\nname = \"abcdefghijkl\"\n[bridge.host]\ninterface = \"h\"\npeer = \"p\"\naccess = 1\n",
    );
    assert_eq!(config.bridges[0].host.as_ref().unwrap().peer, "p");
    // A static MAC in a VLAN the host port does not carry is no clash.
    let config = parse(&format!(
        "{B_ETH0}macs = [\"02:00:00:00:00:01\"]\n[bridge.host]\ninterface = \"h\"\naccess = 2\nmac = \"02:00:00:00:00:01\"\n"
    ));
    assert_eq!(
        config.bridges[0].host.as_ref().unwrap().mac,
        Some(mac("02:00:00:00:00:01"))
    );
}

/// (what, config text, expected error lines) for the host port.
const HOST_CASES: &[(&str, &str, &[&str])] = &[
    (
        "host without access or trunk",
        "[[bridge]]\nname = \"b\"\n[bridge.host]\ninterface = \"mgmt0\"\n",
        &[
            "t.toml:3:1: bridge \"b\", host port \"mgmt0\": give exactly one of `access` (one VLAN id) or `trunk` (a list of VLANs)",
        ],
    ),
    (
        "host with access and trunk",
        "[[bridge]]\nname = \"b\"\n[bridge.host]\ninterface = \"mgmt0\"\naccess = 1\ntrunk = [2]\n",
        &[
            "t.toml:6:9: bridge \"b\", host port \"mgmt0\": `access` and `trunk` are mutually exclusive: give exactly one",
        ],
    ),
    (
        "host access with native_vlan",
        "[[bridge]]\nname = \"b\"\n[bridge.host]\ninterface = \"mgmt0\"\naccess = 1\nnative_vlan = 1\n",
        &[
            "t.toml:6:15: bridge \"b\", host port \"mgmt0\": `native_vlan` is only allowed with `trunk`; an access port is untagged in its `access` VLAN",
        ],
    ),
    (
        "host access 4095",
        "[[bridge]]\nname = \"b\"\n[bridge.host]\ninterface = \"mgmt0\"\naccess = 4095\n",
        &[
            "t.toml:5:10: bridge \"b\", host port \"mgmt0\": `access` = 4095 is not a VLAN id (1-4094)",
        ],
    ),
    (
        "host empty trunk",
        "[[bridge]]\nname = \"b\"\n[bridge.host]\ninterface = \"mgmt0\"\ntrunk = []\n",
        &[
            "t.toml:5:9: bridge \"b\", host port \"mgmt0\": `trunk` is empty and there is no `native_vlan`: the port would carry no VLAN",
        ],
    ),
    (
        "host interface invalid",
        "[[bridge]]\nname = \"b\"\n[bridge.host]\ninterface = \"mgmt/0\"\naccess = 1\n",
        &[
            "t.toml:4:13: bridge \"b\", host port: `interface` = \"mgmt/0\" is not a valid Linux interface name: it contains '/'",
        ],
    ),
    (
        "host peer invalid",
        "[[bridge]]\nname = \"b\"\n[bridge.host]\ninterface = \"mgmt0\"\npeer = \"veth peer\"\naccess = 1\n",
        &[
            "t.toml:5:8: bridge \"b\", host port \"mgmt0\": `peer` = \"veth peer\" is not a valid Linux interface name: it contains ' '",
        ],
    ),
    (
        "host peer too long",
        "[[bridge]]\nname = \"b\"\n[bridge.host]\ninterface = \"mgmt0\"\npeer = \"xnh-0123456789ab\"\naccess = 1\n",
        &[
            "t.toml:5:8: bridge \"b\", host port \"mgmt0\": `peer` = \"xnh-0123456789ab\" is not a valid Linux interface name: it is 16 bytes long, at most 15 are allowed",
        ],
    ),
    (
        "default peer too long",
        "[[bridge]]\nname = \"abcdefghijkl\"\n[bridge.host]\ninterface = \"mgmt0\"\naccess = 1\n",
        &[
            "t.toml:3:1: bridge \"abcdefghijkl\", host port \"mgmt0\": the default `peer` \"xnh-abcdefghijkl\" (\"xnh-\" + bridge name) is not a valid Linux interface name: it is 16 bytes long, at most 15 are allowed; set `peer`",
        ],
    ),
    (
        "default peer of an invalid bridge name is not reported again",
        "[[bridge]]\nname = \"a/b\"\n[bridge.host]\ninterface = \"mgmt0\"\naccess = 1\n",
        &[
            "t.toml:2:8: bridge name \"a/b\" is invalid: use 1-15 characters of A-Z a-z 0-9 '_' '.' '-'",
        ],
    ),
    (
        "host mac_limit out of range",
        "[[bridge]]\nname = \"b\"\n[bridge.host]\ninterface = \"mgmt0\"\naccess = 1\nmac_limit = 1000001\n",
        &[
            "t.toml:6:13: bridge \"b\", host port \"mgmt0\": `mac_limit` = 1000001 is out of range (0-1000000)",
        ],
    ),
    (
        "host addresses",
        "[[bridge]]\nname = \"b\"\n[bridge.host]\ninterface = \"h\"\naccess = 1\naddresses = [\n\
             \"10.0.0.1\",\n\"10.0.0.300/24\",\n\"10.0.0.1/33\",\n\"fd00::1/129\",\n\"10.0.0.1/x\",\n\
             \"10.0.0.1/\",\n\"fd00::1/64/1\",\n\"10.0.0.2/0024\",\n\"fe80::1%eth0/64\",\n\" 10.0.0.3/24\",\n\
             \"224.0.0.1/4\",\n\"ff02::1/16\",\n\"0.0.0.0/0\",\n\"::/0\",\n\"255.255.255.255/32\",\n]\n",
        &[
            "t.toml:7:1: bridge \"b\", host port \"h\": `addresses` entry \"10.0.0.1\": expected ADDRESS/PREFIX, like \"10.0.94.10/24\" or \"fd00::10/64\"",
            "t.toml:8:1: bridge \"b\", host port \"h\": `addresses` entry \"10.0.0.300/24\": \"10.0.0.300\" is not an IPv4 or IPv6 address",
            "t.toml:9:1: bridge \"b\", host port \"h\": `addresses` entry \"10.0.0.1/33\": prefix length 33 is out of range for IPv4 (0-32)",
            "t.toml:10:1: bridge \"b\", host port \"h\": `addresses` entry \"fd00::1/129\": prefix length 129 is out of range for IPv6 (0-128)",
            "t.toml:11:1: bridge \"b\", host port \"h\": `addresses` entry \"10.0.0.1/x\": \"x\" is not a prefix length (0-32 for IPv4)",
            "t.toml:12:1: bridge \"b\", host port \"h\": `addresses` entry \"10.0.0.1/\": \"\" is not a prefix length (0-32 for IPv4)",
            "t.toml:13:1: bridge \"b\", host port \"h\": `addresses` entry \"fd00::1/64/1\": \"64/1\" is not a prefix length (0-128 for IPv6)",
            "t.toml:14:1: bridge \"b\", host port \"h\": `addresses` entry \"10.0.0.2/0024\": \"0024\" is not a prefix length (0-32 for IPv4)",
            "t.toml:15:1: bridge \"b\", host port \"h\": `addresses` entry \"fe80::1%eth0/64\": \"fe80::1%eth0\" is not an IPv4 or IPv6 address",
            "t.toml:16:1: bridge \"b\", host port \"h\": `addresses` entry \" 10.0.0.3/24\": \" 10.0.0.3\" is not an IPv4 or IPv6 address",
            "t.toml:17:1: bridge \"b\", host port \"h\": `addresses` entry \"224.0.0.1/4\": 224.0.0.1 is a multicast address, not an interface address",
            "t.toml:18:1: bridge \"b\", host port \"h\": `addresses` entry \"ff02::1/16\": ff02::1 is a multicast address, not an interface address",
            "t.toml:19:1: bridge \"b\", host port \"h\": `addresses` entry \"0.0.0.0/0\": 0.0.0.0 is the unspecified address, not an interface address",
            "t.toml:20:1: bridge \"b\", host port \"h\": `addresses` entry \"::/0\": :: is the unspecified address, not an interface address",
            "t.toml:21:1: bridge \"b\", host port \"h\": `addresses` entry \"255.255.255.255/32\": 255.255.255.255 is the broadcast address, not an interface address",
        ],
    ),
    (
        "host address listed twice",
        "[[bridge]]\nname = \"b\"\n[bridge.host]\ninterface = \"h\"\naccess = 1\n\
             addresses = [\"10.0.0.1/24\", \"fd00::1/64\", \"10.0.0.1/16\", \"fd00:0::1/48\"]\n",
        &[
            "t.toml:6:43: bridge \"b\", host port \"h\": `addresses` entry \"10.0.0.1/16\": address 10.0.0.1 is already listed as \"10.0.0.1/24\"",
            "t.toml:6:58: bridge \"b\", host port \"h\": `addresses` entry \"fd00:0::1/48\": address fd00::1 is already listed as \"fd00::1/64\"",
        ],
    ),
    (
        "host mac malformed",
        "[[bridge]]\nname = \"b\"\n[bridge.host]\ninterface = \"h\"\naccess = 1\nmac = \"02:00:00:00:00\"\n",
        &[
            "t.toml:6:7: bridge \"b\", host port \"h\": `mac` = \"02:00:00:00:00\" is not a MAC address (expected six two-digit hex octets separated by ':' or '-', like 00:16:3e:00:00:01)",
        ],
    ),
    (
        "host mac multicast",
        "[[bridge]]\nname = \"b\"\n[bridge.host]\ninterface = \"h\"\naccess = 1\nmac = \"01:00:5e:00:00:01\"\n",
        &[
            "t.toml:6:7: bridge \"b\", host port \"h\": `mac` = \"01:00:5e:00:00:01\": 01:00:5e:00:00:01 is a multicast address; dom0's side needs a unicast address",
        ],
    ),
    (
        "host mac broadcast",
        "[[bridge]]\nname = \"b\"\n[bridge.host]\ninterface = \"h\"\naccess = 1\nmac = \"FF:FF:FF:FF:FF:FF\"\n",
        &[
            "t.toml:6:7: bridge \"b\", host port \"h\": `mac` = \"FF:FF:FF:FF:FF:FF\": ff:ff:ff:ff:ff:ff is the broadcast address; dom0's side needs a unicast address",
        ],
    ),
    (
        "host mac zero",
        "[[bridge]]\nname = \"b\"\n[bridge.host]\ninterface = \"h\"\naccess = 1\nmac = \"00:00:00:00:00:00\"\n",
        &[
            "t.toml:6:7: bridge \"b\", host port \"h\": `mac` = \"00:00:00:00:00:00\": 00:00:00:00:00:00 is the all-zero address; dom0's side needs a unicast address",
        ],
    ),
    (
        "host mac is a static MAC of a port in a VLAN the host carries",
        "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth1\"\ntrunk = [1, 2, 3]\n\
             macs = [\"02:00:00:00:00:01@3\", \"02:00:00:00:00:01@2\"]\n\
             [bridge.host]\ninterface = \"h\"\ntrunk = [2, 3]\nmac = \"02:00:00:00:00:01\"\n",
        &[
            "t.toml:10:7: bridge \"b\", host port \"h\": `mac` = \"02:00:00:00:00:01\": 02:00:00:00:00:01 is a static MAC of port \"eth1\" in VLAN 3 (line 6); dom0's side would be unreachable in that VLAN",
        ],
    ),
    (
        "host interface is a port of the same bridge",
        "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\naccess = 1\n\
             [bridge.host]\ninterface = \"eth0\"\naccess = 1\n",
        &[
            "t.toml:7:13: bridge \"b\", host port \"eth0\": interface \"eth0\" is already a port of bridge \"b\" at line 4; each interface may appear only once in the file",
        ],
    ),
    (
        "port after the host uses the host interface",
        "[[bridge]]\nname = \"b\"\n[bridge.host]\ninterface = \"mgmt0\"\naccess = 1\n\
             [[bridge.port]]\ninterface = \"mgmt0\"\naccess = 1\n",
        &[
            "t.toml:7:13: bridge \"b\", port \"mgmt0\": interface \"mgmt0\" is already the host interface of bridge \"b\" at line 4; each interface may appear only once in the file",
        ],
    ),
    (
        "explicit peer is a port of another bridge",
        "[[bridge]]\nname = \"a\"\n[[bridge.port]]\ninterface = \"veth1\"\naccess = 1\n\
             [[bridge]]\nname = \"b\"\n[bridge.host]\ninterface = \"mgmt0\"\npeer = \"veth1\"\naccess = 1\n",
        &[
            "t.toml:10:8: bridge \"b\", host port \"mgmt0\": `peer` \"veth1\" is already a port of bridge \"a\" at line 4; each interface may appear only once in the file",
        ],
    ),
    (
        "default peer is a later port",
        "[[bridge]]\nname = \"b\"\n[bridge.host]\ninterface = \"mgmt0\"\naccess = 1\n\
             [[bridge.port]]\ninterface = \"xnh-b\"\naccess = 1\n",
        &[
            "t.toml:7:13: bridge \"b\", port \"xnh-b\": interface \"xnh-b\" is already the default host peer of bridge \"b\" at line 3; each interface may appear only once in the file",
        ],
    ),
    (
        "default peer is an earlier port",
        "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"xnh-b\"\naccess = 1\n\
             [bridge.host]\ninterface = \"mgmt0\"\naccess = 1\n",
        &[
            "t.toml:6:1: bridge \"b\", host port \"mgmt0\": the default `peer` \"xnh-b\" is already a port of bridge \"b\" at line 4; each interface may appear only once in the file",
        ],
    ),
    (
        "peer equal to the host interface",
        "[[bridge]]\nname = \"b\"\n[bridge.host]\ninterface = \"h\"\npeer = \"h\"\naccess = 1\n",
        &[
            "t.toml:5:8: bridge \"b\", host port \"h\": `peer` \"h\" is already the host interface of bridge \"b\" at line 4; each interface may appear only once in the file",
        ],
    ),
    (
        "one host interface in two bridges, peers clashing too",
        "[[bridge]]\nname = \"a\"\n[bridge.host]\ninterface = \"h\"\npeer = \"p\"\naccess = 1\n\
             [[bridge]]\nname = \"b\"\n[bridge.host]\ninterface = \"h\"\npeer = \"p\"\naccess = 1\n",
        &[
            "t.toml:10:13: bridge \"b\", host port \"h\": interface \"h\" is already the host interface of bridge \"a\" at line 4; each interface may appear only once in the file",
            "t.toml:11:8: bridge \"b\", host port \"h\": `peer` \"p\" is already the host peer of bridge \"a\" at line 5; each interface may appear only once in the file",
        ],
    ),
];

#[test]
fn host_port_errors_name_line_column_and_field() {
    for &(what, text, expected) in HOST_CASES {
        assert_eq!(errors(text), expected, "case: {what}");
    }
}

#[test]
fn host_ports_count_towards_the_port_limit() {
    let port = |i: usize| format!("[[bridge.port]]\ninterface = \"p{i}\"\naccess = 1\n");
    let ports = |range: std::ops::Range<usize>| range.map(port).collect::<String>();
    // Four lines, so that the port after it lands on another line than in
    // the case where the host comes last.
    let host =
        |name: &str| format!("[bridge.host]\ninterface = \"{name}\"\npeer = \"hp\"\naccess = 1\n");
    // 4095 ports and one host port: exactly at the limit.
    let text = format!(
        "[[bridge]]\nname = \"a\"\n{}[[bridge]]\nname = \"b\"\n{}{}",
        ports(0..2000),
        host("h"),
        ports(2000..MAX_PORTS - 1)
    );
    let config = parse(&text);
    assert_eq!(
        config.bridges.iter().map(|b| b.ports.len()).sum::<usize>(),
        4095
    );
    assert!(config.bridges[1].host.is_some());
    // 4096 ports and a host port after them: the host header is the 4097th.
    let text = format!(
        "[[bridge]]\nname = \"a\"\n{}[[bridge]]\nname = \"b\"\n{}{}",
        ports(0..2000),
        ports(2000..MAX_PORTS),
        host("h")
    );
    assert_eq!(
        errors(&text),
        [
            "t.toml:12293:1: too many ports: 4097 defined over all bridges (each [bridge.host] counts as one), at most 4096 are supported"
        ]
    );
    // A host port before the ports of its bridge takes its slot first.
    let text = format!(
        "[[bridge]]\nname = \"a\"\n{}[[bridge]]\nname = \"b\"\n{}{}",
        ports(0..2000),
        host("h"),
        ports(2000..MAX_PORTS)
    );
    assert_eq!(
        errors(&text),
        [
            "t.toml:12294:1: too many ports: 4097 defined over all bridges (each [bridge.host] counts as one), at most 4096 are supported"
        ]
    );
}
