//! `port add` requests go through the same port rules as the file, with the same messages.

use std::fmt::Write as _;

use super::*;
use crate::control::PortAdd;

/// Bridge "b": a trunk uplink with a static MAC, a rule `vif*`, and a host port with a MAC
/// (the host port's header is line 12, its interface line 13). Ports appended to it start at
/// line 17.
const BASE: &str = r#"[[bridge]]
name = "b"
[[bridge.port]]
interface = "eth1"
trunk = [10, 20]
macs = ["02:00:00:00:00:01@10"]
[[bridge.port]]
interface = "vif*"
access = 10
attach = "tc"
mac_limit = 7
[bridge.host]
interface = "mgmt0"
trunk = [10, 30]
native_vlan = 30
mac = "02:00:00:00:00:aa"
"#;

/// A request on bridge "b", in a form that fits in a `const` table.
#[derive(Clone, Copy)]
struct Req {
    interface: &'static str,
    access: Option<u16>,
    trunk: Option<&'static [u16]>,
    native: Option<u16>,
    macs: &'static [&'static str],
    attach: Option<&'static str>,
}

/// A request for vif1.0 with nothing given.
const VIF: Req = Req {
    interface: "vif1.0",
    access: None,
    trunk: None,
    native: None,
    macs: &[],
    attach: None,
};

/// A request for `interface` on bridge "b" with nothing else given.
fn add(interface: &str) -> PortAdd {
    PortAdd {
        security: crate::control::SecurityRequest::default(),
        interface: interface.to_owned(),
        bridge: "b".to_owned(),
        access: None,
        trunk: None,
        native: None,
        macs: Vec::new(),
        attach: None,
        ..PortAdd::default()
    }
}

fn macs(list: &[&str]) -> Vec<String> {
    list.iter().map(|&m| m.to_owned()).collect()
}

impl Req {
    fn port_add(self) -> PortAdd {
        PortAdd {
            access: self.access,
            trunk: self.trunk.map(<[u16]>::to_vec),
            native: self.native,
            macs: macs(self.macs),
            attach: self.attach.map(str::to_owned),
            ..add(self.interface)
        }
    }
}

/// The `[[bridge.port]]` table the file would hold for `req`.
fn as_toml(req: &PortAdd) -> String {
    let mut text = format!("[[bridge.port]]\ninterface = {:?}\n", req.interface);
    if let Some(vlan) = req.access {
        writeln!(text, "access = {vlan}").unwrap();
    }
    if let Some(list) = &req.trunk {
        writeln!(text, "trunk = {list:?}").unwrap();
    }
    if let Some(vlan) = req.native {
        writeln!(text, "native_vlan = {vlan}").unwrap();
    }
    if !req.macs.is_empty() {
        writeln!(text, "macs = {:?}", req.macs).unwrap();
    }
    if let Some(attach) = &req.attach {
        writeln!(text, "attach = {attach:?}").unwrap();
    }
    text
}

/// The error lines of the file `BASE` + `extra` + the port of `req`.
fn file_errors(extra: &str, req: &PortAdd) -> Vec<String> {
    errors(&format!("{BASE}{extra}{}", as_toml(req)))
}

/// The error lines of `req` as a `port add` on `BASE`, with `others` added at run time.
fn port_add_errors(others: &[PortSpec], req: &PortAdd) -> Vec<String> {
    let cfg = parse(BASE);
    match check_port_add(&cfg, others.iter().map(|p| ("b", p)), req) {
        Ok(port) => panic!("expected errors, got {port:#?}"),
        Err(ConfigError::PortAdd(lines)) => lines,
        Err(other) => panic!("expected ConfigError::PortAdd, got {other:?}"),
    }
}

fn port_add_ok(others: &[PortSpec], req: &PortAdd) -> (String, PortSpec) {
    let cfg = parse(BASE);
    match check_port_add(&cfg, others.iter().map(|p| ("b", p)), req) {
        Ok(port) => port,
        Err(e) => panic!("expected a valid port, got:\n{e}"),
    }
}

/// A message without its `t.toml:LINE:COL: ` prefix.
fn without_location(line: &str) -> &str {
    line.split_once(": ").map_or(line, |(_, message)| message)
}

/// (what, request, message) of requests refused with the same message as the same port in
/// the file.
const SAME_MESSAGE: &[(&str, Req, &str)] = &[
    (
        "access VLAN 0",
        Req {
            access: Some(0),
            ..VIF
        },
        "bridge \"b\", port \"vif1.0\": `access` = 0 is not a VLAN id (1-4094)",
    ),
    (
        "access VLAN 4095",
        Req {
            access: Some(4095),
            ..VIF
        },
        "bridge \"b\", port \"vif1.0\": `access` = 4095 is not a VLAN id (1-4094)",
    ),
    (
        "access VLAN 5000",
        Req {
            access: Some(5000),
            ..VIF
        },
        "bridge \"b\", port \"vif1.0\": `access` = 5000 is not a VLAN id (1-4094)",
    ),
    (
        "trunk VLAN 4095",
        Req {
            trunk: Some(&[10, 4095]),
            ..VIF
        },
        "bridge \"b\", port \"vif1.0\": `trunk` entry 4095 is not a VLAN id (1-4094)",
    ),
    (
        "trunk VLAN 0",
        Req {
            trunk: Some(&[0]),
            ..VIF
        },
        "bridge \"b\", port \"vif1.0\": `trunk` entry 0 is not a VLAN id (1-4094)",
    ),
    (
        "native VLAN 5000",
        Req {
            trunk: Some(&[10]),
            native: Some(5000),
            ..VIF
        },
        "bridge \"b\", port \"vif1.0\": `native_vlan` = 5000 is not a VLAN id (1-4094)",
    ),
    (
        "native VLAN on an access port",
        Req {
            access: Some(10),
            native: Some(10),
            ..VIF
        },
        "bridge \"b\", port \"vif1.0\": `native_vlan` is only allowed with `trunk`; an \
             access port is untagged in its `access` VLAN",
    ),
    (
        "access and trunk",
        Req {
            access: Some(10),
            trunk: Some(&[10]),
            ..VIF
        },
        "bridge \"b\", port \"vif1.0\": `access` and `trunk` are mutually exclusive: give \
             exactly one",
    ),
    (
        "empty trunk",
        Req {
            trunk: Some(&[]),
            ..VIF
        },
        "bridge \"b\", port \"vif1.0\": `trunk` is empty and there is no `native_vlan`: the \
             port would carry no VLAN",
    ),
    (
        "bad interface name",
        Req {
            interface: "vif/1",
            access: Some(10),
            ..VIF
        },
        "bridge \"b\": `interface` = \"vif/1\" is not a valid Linux interface name: it \
             contains '/'",
    ),
    (
        "interface name with a space",
        Req {
            interface: "vif 1",
            access: Some(10),
            ..VIF
        },
        "bridge \"b\": `interface` = \"vif 1\" is not a valid Linux interface name: it \
             contains ' '",
    ),
    (
        "interface name too long",
        Req {
            interface: "vif1234567890.12",
            access: Some(10),
            ..VIF
        },
        "bridge \"b\": `interface` = \"vif1234567890.12\" is not a valid Linux interface \
             name: it is 16 bytes long, at most 15 are allowed",
    ),
    (
        "multicast MAC",
        Req {
            access: Some(10),
            macs: &["01:00:5e:00:00:01"],
            ..VIF
        },
        "bridge \"b\", port \"vif1.0\": `macs` entry \"01:00:5e:00:00:01\": \
             01:00:5e:00:00:01 is a multicast address; static entries must be unicast",
    ),
    (
        "all-zero MAC",
        Req {
            access: Some(10),
            macs: &["00:00:00:00:00:00"],
            ..VIF
        },
        "bridge \"b\", port \"vif1.0\": `macs` entry \"00:00:00:00:00:00\": \
             00:00:00:00:00:00 is the all-zero address; static entries must be unicast",
    ),
    (
        "malformed MAC",
        Req {
            access: Some(10),
            macs: &["02:00:00:00:00"],
            ..VIF
        },
        "bridge \"b\", port \"vif1.0\": `macs` entry \"02:00:00:00:00\": \"02:00:00:00:00\" \
             is not a MAC address (expected six two-digit hex octets separated by ':' or '-', \
             like 00:16:3e:00:00:01)",
    ),
    (
        "malformed VLAN after @",
        Req {
            access: Some(10),
            macs: &["02:00:00:00:00:05@x"],
            ..VIF
        },
        "bridge \"b\", port \"vif1.0\": `macs` entry \"02:00:00:00:00:05@x\": after '@', \
             \"x\" is not a decimal VLAN id",
    ),
    (
        "MAC in a VLAN that is not the access VLAN",
        Req {
            access: Some(10),
            macs: &["02:00:00:00:00:05@20"],
            ..VIF
        },
        "bridge \"b\", port \"vif1.0\": `macs` entry \"02:00:00:00:00:05@20\": VLAN 20 is \
             not the port's access VLAN 10 (write \"02:00:00:00:00:05\" or \
             \"02:00:00:00:00:05@10\")",
    ),
    (
        "MAC in a VLAN the trunk does not carry",
        Req {
            trunk: Some(&[10]),
            macs: &["02:00:00:00:00:05@20"],
            ..VIF
        },
        "bridge \"b\", port \"vif1.0\": `macs` entry \"02:00:00:00:00:05@20\": VLAN 20 is \
             not carried by this trunk port",
    ),
    (
        "MAC without VLAN on a trunk without native VLAN",
        Req {
            trunk: Some(&[10]),
            macs: &["02:00:00:00:00:05"],
            ..VIF
        },
        "bridge \"b\", port \"vif1.0\": `macs` entry \"02:00:00:00:00:05\": a trunk port \
             without `native_vlan` needs \"MAC@VLAN\"",
    ),
    (
        "unknown attach mode",
        Req {
            access: Some(10),
            attach: Some("fast"),
            ..VIF
        },
        "bridge \"b\", port \"vif1.0\": `attach` = \"fast\" is not one of \"auto\", \"xdp\", \
             \"xdp-generic\", \"tc\"",
    ),
];

#[test]
fn bad_ports_give_the_same_message_through_the_file_and_port_add() {
    for &(what, req, expected) in SAME_MESSAGE {
        let req = req.port_add();
        let file = file_errors("", &req);
        let file: Vec<&str> = file.iter().map(|l| without_location(l)).collect();
        assert_eq!(file, [expected], "file: {what}");
        assert_eq!(port_add_errors(&[], &req), [expected], "port add: {what}");
    }
}

/// One case of [`CONFLICTS`].
type Conflict = (
    &'static str,
    Option<Req>,
    Req,
    &'static [&'static str],
    &'static [&'static str],
);

/// (what, a port added before (in the file / at run time), request, file errors, port add
/// errors) of requests that conflict with another port, whose messages name it.
const CONFLICTS: &[Conflict] = &[
    (
        "static MAC owned by a port of the file",
        None,
        Req {
            access: Some(10),
            macs: &["02:00:00:00:00:01"],
            ..VIF
        },
        &[
            "t.toml:20:9: bridge \"b\", port \"vif1.0\": `macs` entry \"02:00:00:00:00:01\": \
                 static MAC 02:00:00:00:00:01 in VLAN 10 is already given at line 6 (port \
                 \"eth1\"); each MAC may appear once per VLAN of a bridge",
        ],
        &[
            "bridge \"b\", port \"vif1.0\": `macs` entry \"02:00:00:00:00:01\": static MAC \
                 02:00:00:00:00:01 in VLAN 10 is already given in the configuration file (port \
                 \"eth1\"); each MAC may appear once per VLAN of a bridge",
        ],
    ),
    (
        "static MAC owned by another run-time port",
        Some(VIF3),
        Req {
            access: Some(10),
            macs: &["02:00:00:00:00:05@10"],
            ..VIF
        },
        &["t.toml:24:9: bridge \"b\", port \"vif1.0\": `macs` entry \
                 \"02:00:00:00:00:05@10\": static MAC 02:00:00:00:00:05 in VLAN 10 is already \
                 given at line 20 (port \"vif3.0\"); each MAC may appear once per VLAN of a \
                 bridge"],
        &[
            "bridge \"b\", port \"vif1.0\": `macs` entry \"02:00:00:00:00:05@10\": static MAC \
                 02:00:00:00:00:05 in VLAN 10 is already given by `port add` (port \"vif3.0\"); \
                 each MAC may appear once per VLAN of a bridge",
        ],
    ),
    (
        "the same static MAC twice in one port",
        None,
        Req {
            access: Some(10),
            macs: &["02:00:00:00:00:05", "02:00:00:00:00:05@10"],
            ..VIF
        },
        &["t.toml:20:30: bridge \"b\", port \"vif1.0\": `macs` entry \
                 \"02:00:00:00:00:05@10\": static MAC 02:00:00:00:00:05 in VLAN 10 is already \
                 given at line 20 (port \"vif1.0\"); each MAC may appear once per VLAN of a \
                 bridge"],
        &[
            "bridge \"b\", port \"vif1.0\": `macs` entry \"02:00:00:00:00:05@10\": static MAC \
                 02:00:00:00:00:05 in VLAN 10 is already given earlier in this request (port \
                 \"vif1.0\"); each MAC may appear once per VLAN of a bridge",
        ],
    ),
    (
        "static MAC that is the host port's MAC in a VLAN it carries",
        None,
        Req {
            access: Some(10),
            macs: &["02:00:00:00:00:aa"],
            ..VIF
        },
        &[
            "t.toml:16:7: bridge \"b\", host port \"mgmt0\": `mac` = \"02:00:00:00:00:aa\": \
                 02:00:00:00:00:aa is a static MAC of port \"vif1.0\" in VLAN 10 (line 20); \
                 dom0's side would be unreachable in that VLAN",
        ],
        &[
            "bridge \"b\", port \"vif1.0\": `macs` entry \"02:00:00:00:00:aa\": static MAC \
                 02:00:00:00:00:aa in VLAN 10 is already given in the configuration file (the \
                 `mac` of host port \"mgmt0\"); each MAC may appear once per VLAN of a bridge",
        ],
    ),
    (
        "interface named by a port of the file",
        None,
        Req {
            interface: "eth1",
            access: Some(10),
            ..VIF
        },
        &[
            "t.toml:18:13: bridge \"b\", port \"eth1\": interface \"eth1\" is already a port \
                 of bridge \"b\" at line 4; each interface may appear only once in the file",
        ],
        &[
            "bridge \"b\", port \"eth1\": interface \"eth1\" is already a port of bridge \
                 \"b\" in the configuration file; each interface may appear only once",
        ],
    ),
    (
        "the host port's interface",
        None,
        Req {
            interface: "mgmt0",
            access: Some(10),
            ..VIF
        },
        &[
            "t.toml:18:13: bridge \"b\", port \"mgmt0\": interface \"mgmt0\" is already the \
                 host interface of bridge \"b\" at line 13; each interface may appear only once \
                 in the file",
        ],
        &[
            "bridge \"b\", port \"mgmt0\": interface \"mgmt0\" is already the host interface \
                 of bridge \"b\" in the configuration file; each interface may appear only once",
        ],
    ),
    (
        "the host port's bridge-side peer",
        None,
        Req {
            interface: "xnh-b",
            access: Some(10),
            ..VIF
        },
        &[
            "t.toml:18:13: bridge \"b\", port \"xnh-b\": interface \"xnh-b\" is already the \
                 default host peer of bridge \"b\" at line 12; each interface may appear only \
                 once in the file",
        ],
        &[
            "bridge \"b\", port \"xnh-b\": interface \"xnh-b\" is already the default host \
                 peer of bridge \"b\" in the configuration file; each interface may appear only \
                 once",
        ],
    ),
];
/// vif3.0 in VLAN 10 with a static MAC.
const VIF3: Req = Req {
    interface: "vif3.0",
    access: Some(10),
    macs: &["02:00:00:00:00:05"],
    ..VIF
};

#[test]
fn conflicts_with_other_ports_name_the_owner_through_the_file_and_port_add() {
    let vif3 = port_add_ok(&[], &VIF3.port_add()).1;
    for &(what, other, req, file, port_add) in CONFLICTS {
        let req = req.port_add();
        let extra = other.map(|o| as_toml(&o.port_add())).unwrap_or_default();
        assert_eq!(file_errors(&extra, &req), file, "file: {what}");
        let others: Vec<PortSpec> = other.map(|_| vif3.clone()).into_iter().collect();
        assert_eq!(port_add_errors(&others, &req), port_add, "port add: {what}");
    }
}

#[test]
fn requests_the_file_cannot_express() {
    let cases: Vec<(&str, PortAdd, &str)> = vec![
        (
            "unknown bridge",
            PortAdd {
                bridge: "nosuch".to_owned(),
                access: Some(10),
                ..add("vif1.0")
            },
            "no bridge \"nosuch\" in the configuration",
        ),
        (
            "no VLANs and no matching rule",
            add("eth9"),
            "bridge \"b\" has no port rule matching \"eth9\": give --access or --trunk",
        ),
        (
            "a pattern",
            PortAdd {
                access: Some(10),
                ..add("vif*")
            },
            "bridge \"b\", port \"vif*\": `interface` = \"vif*\" is a pattern; `port add` needs \
             an exact interface name",
        ),
    ];
    for (what, req, expected) in cases {
        assert_eq!(port_add_errors(&[], &req), [expected], "{what}");
    }
}

#[test]
fn an_access_vlan_out_of_range_is_not_blamed_on_native() {
    let req = PortAdd {
        access: Some(5000),
        ..add("vif1.0")
    };
    let lines = port_add_errors(&[], &req);
    assert_eq!(
        lines,
        ["bridge \"b\", port \"vif1.0\": `access` = 5000 is not a VLAN id (1-4094)"]
    );
    assert!(!lines[0].contains("native"), "{lines:?}");
}

#[test]
fn every_problem_of_a_request_is_reported() {
    let req = PortAdd {
        access: Some(4095),
        macs: macs(&["01:00:00:00:00:01", "02:00:00:00:00:01@7"]),
        attach: Some("fast".to_owned()),
        ..add("mgmt0")
    };
    assert_eq!(
        port_add_errors(&[], &req),
        [
            "bridge \"b\", port \"mgmt0\": `attach` = \"fast\" is not one of \"auto\", \"xdp\", \
             \"xdp-generic\", \"tc\"",
            "bridge \"b\", port \"mgmt0\": `access` = 4095 is not a VLAN id (1-4094)",
            "bridge \"b\", port \"mgmt0\": `macs` entry \"01:00:00:00:00:01\": \
             01:00:00:00:00:01 is a multicast address; static entries must be unicast",
            "bridge \"b\", port \"mgmt0\": interface \"mgmt0\" is already the host interface of \
             bridge \"b\" in the configuration file; each interface may appear only once",
        ]
    );
}

#[test]
fn good_requests() {
    // No VLANs given: the rule `vif*` decides the mode, attach mode and mac_limit.
    assert_eq!(
        port_add_ok(&[], &add("vif5.0")),
        (
            "b".to_owned(),
            PortSpec {
                mac_move: false,
                security: crate::config::PortSecurity::default(),
                interface: "vif5.0".to_owned(),
                mode: PortMode::Access { vlan: 10 },
                attach: AttachMode::Tc,
                macs: vec![],
                mac_limit: 7,
                rate: None,
            }
        )
    );
    // A MAC without VLAN goes in the rule's access VLAN.
    let req = PortAdd {
        macs: macs(&["02:00:00:00:00:09"]),
        ..add("vif5.0")
    };
    assert_eq!(
        port_add_ok(&[], &req).1.macs,
        [(mac("02:00:00:00:00:09"), 10)]
    );
    // VLANs given: they win over the rule, whose attach mode and mac_limit still apply.
    let req = PortAdd {
        access: Some(20),
        ..add("vif5.0")
    };
    let (_, spec) = port_add_ok(&[], &req);
    assert_eq!(
        (spec.mode, spec.attach, spec.mac_limit),
        (PortMode::Access { vlan: 20 }, AttachMode::Tc, 7)
    );
    // The attach mode given wins over the rule's.
    let req = PortAdd {
        attach: Some("xdp-generic".to_owned()),
        ..add("vif5.0")
    };
    assert_eq!(port_add_ok(&[], &req).1.attach, AttachMode::XdpGeneric);
    // The same MAC as a port of the file, in another VLAN; the host port's MAC in a VLAN the
    // host port does not carry.
    let req = PortAdd {
        trunk: Some(vec![10, 20]),
        macs: macs(&["02:00:00:00:00:01@20", "02:00:00:00:00:aa@20"]),
        ..add("vif5.0")
    };
    assert_eq!(
        port_add_ok(&[], &req).1.macs,
        [
            (mac("02:00:00:00:00:01"), 20),
            (mac("02:00:00:00:00:aa"), 20)
        ]
    );
    // No rule matches: the request says everything, and gets what the file would give.
    let req = PortAdd {
        trunk: Some(vec![10, 20]),
        native: Some(30),
        macs: macs(&["02:00:00:00:00:09", "02:00:00:00:00:09@10"]),
        ..add("eth9")
    };
    let (bridge, spec) = port_add_ok(&[], &req);
    assert_eq!(bridge, "b");
    assert_eq!(
        spec,
        PortSpec {
            mac_move: false,
            security: crate::config::PortSecurity::default(),
            interface: "eth9".to_owned(),
            mode: trunk(&[10, 20, 30], Some(30)),
            attach: AttachMode::Auto,
            macs: vec![
                (mac("02:00:00:00:00:09"), 30),
                (mac("02:00:00:00:00:09"), 10)
            ],
            mac_limit: DEFAULT_MAC_LIMIT_TRUNK,
            rate: None,
        }
    );
    let file = parse(&format!("{BASE}{}", as_toml(&req)));
    assert_eq!(file.bridges[0].ports.last(), Some(&spec));
}
