//! Error reports: locations, wording, file order, syntax and structural errors.

use super::*;

/// (what, config text, expected error lines) for semantic problems.
const SEMANTIC_CASES: &[(&str, &str, &[&str])] = &[
    (
        "empty file",
        "",
        &["t.toml:1:1: no bridge defined: the file needs at least one [[bridge]] table"],
    ),
    (
        "relative pin_dir",
        "[agent]\npin_dir = \"bpf/xennet\"\n[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\naccess = 1\n",
        &["t.toml:2:11: [agent]: `pin_dir` = \"bpf/xennet\" is not an absolute path"],
    ),
    (
        "bridge without ports",
        "[[bridge]]\nname = \"lonely\"\n",
        &[
            "t.toml:2:8: bridge \"lonely\" has no ports: add at least one [[bridge.port]] or a [bridge.host]",
        ],
    ),
    (
        "bridge name too long",
        "[[bridge]]\nname = \"abcdefghijklmnop\"\n[[bridge.port]]\ninterface = \"eth0\"\naccess = 1\n",
        &[
            "t.toml:2:8: bridge name \"abcdefghijklmnop\" is invalid: use 1-15 characters of A-Z a-z 0-9 '_' '.' '-'",
        ],
    ),
    (
        "bridge name with a slash",
        "[[bridge]]\nname = \"a/b\"\n[[bridge.port]]\ninterface = \"eth0\"\naccess = 1\n",
        &[
            "t.toml:2:8: bridge name \"a/b\" is invalid: use 1-15 characters of A-Z a-z 0-9 '_' '.' '-'",
        ],
    ),
    (
        "duplicate bridge name",
        "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\naccess = 1\n\
                 [[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth1\"\naccess = 1\n",
        &["t.toml:7:8: bridge name \"b\" is already used by the bridge at line 2"],
    ),
    (
        "unknown vlan_protocol",
        "[[bridge]]\nname = \"b\"\nvlan_protocol = \"802.1x\"\n[[bridge.port]]\ninterface = \"eth0\"\naccess = 1\n",
        &[
            "t.toml:3:17: bridge \"b\": `vlan_protocol` = \"802.1x\" is not \"802.1Q\" or \"802.1ad\"",
        ],
    ),
    (
        "unknown attach mode",
        "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\naccess = 1\nattach = \"XDP\"\n",
        &[
            "t.toml:6:10: bridge \"b\", port \"eth0\": `attach` = \"XDP\" is not one of \"auto\", \"xdp\", \"xdp-generic\", \"tc\"",
        ],
    ),
    (
        "interface with a slash",
        "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth/0\"\naccess = 1\n",
        &[
            "t.toml:4:13: bridge \"b\": `interface` = \"eth/0\" is not a valid Linux interface name: it contains '/'",
        ],
    ),
    (
        "interface with a space",
        "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth 0\"\naccess = 1\n",
        &[
            "t.toml:4:13: bridge \"b\": `interface` = \"eth 0\" is not a valid Linux interface name: it contains ' '",
        ],
    ),
    (
        "interface with a colon",
        "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0:1\"\naccess = 1\n",
        &[
            "t.toml:4:13: bridge \"b\": `interface` = \"eth0:1\" is not a valid Linux interface name: it contains ':'",
        ],
    ),
    (
        "interface too long",
        "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"vif12345.6789012\"\naccess = 1\n",
        &[
            "t.toml:4:13: bridge \"b\": `interface` = \"vif12345.6789012\" is not a valid Linux interface name: it is 16 bytes long, at most 15 are allowed",
        ],
    ),
    (
        "interface empty",
        "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"\"\naccess = 1\n",
        &[
            "t.toml:4:13: bridge \"b\": `interface` = \"\" is not a valid Linux interface name: it is empty",
        ],
    ),
    (
        "interface ..",
        "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"..\"\naccess = 1\n",
        &[
            "t.toml:4:13: bridge \"b\": `interface` = \"..\" is not a valid Linux interface name: \".\" and \"..\" are reserved",
        ],
    ),
    (
        "interface twice in one bridge",
        "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\naccess = 1\n[[bridge.port]]\ninterface = \"eth0\"\naccess = 2\n",
        &[
            "t.toml:7:13: bridge \"b\", port \"eth0\": interface \"eth0\" is already a port of bridge \"b\" at line 4; each interface may appear only once in the file",
        ],
    ),
    (
        "neither access nor trunk",
        "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\n",
        &[
            "t.toml:3:1: bridge \"b\", port \"eth0\": give exactly one of `access` (one VLAN id) or `trunk` (a list of VLANs)",
        ],
    ),
    (
        "both access and trunk",
        "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\naccess = 1\ntrunk = [2]\n",
        &[
            "t.toml:6:9: bridge \"b\", port \"eth0\": `access` and `trunk` are mutually exclusive: give exactly one",
        ],
    ),
    (
        "native_vlan on an access port",
        "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\naccess = 1\nnative_vlan = 1\n",
        &[
            "t.toml:6:15: bridge \"b\", port \"eth0\": `native_vlan` is only allowed with `trunk`; an access port is untagged in its `access` VLAN",
        ],
    ),
    (
        "access 0",
        "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\naccess = 0\n",
        &["t.toml:5:10: bridge \"b\", port \"eth0\": `access` = 0 is not a VLAN id (1-4094)"],
    ),
    (
        "access negative",
        "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\naccess = -1\n",
        &["t.toml:5:10: bridge \"b\", port \"eth0\": `access` = -1 is not a VLAN id (1-4094)"],
    ),
    (
        "access beyond u16",
        "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\naccess = 65537\n",
        &["t.toml:5:10: bridge \"b\", port \"eth0\": `access` = 65537 is not a VLAN id (1-4094)"],
    ),
    (
        "native_vlan 4095",
        "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\ntrunk = [1]\nnative_vlan = 4095\n",
        &[
            "t.toml:6:15: bridge \"b\", port \"eth0\": `native_vlan` = 4095 is not a VLAN id (1-4094)",
        ],
    ),
    (
        "empty trunk without native_vlan",
        "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\ntrunk = []\n",
        &[
            "t.toml:5:9: bridge \"b\", port \"eth0\": `trunk` is empty and there is no `native_vlan`: the port would carry no VLAN",
        ],
    ),
    (
        "trunk id out of range",
        "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\ntrunk = [1, 4095]\n",
        &["t.toml:5:13: bridge \"b\", port \"eth0\": `trunk` entry 4095 is not a VLAN id (1-4094)"],
    ),
    (
        "reversed range",
        "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\ntrunk = [\"200-100\"]\n",
        &[
            "t.toml:5:10: bridge \"b\", port \"eth0\": `trunk` entry \"200-100\": range start 200 is greater than its end 100",
        ],
    ),
    (
        "range end out of range",
        "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\ntrunk = [\"4000-4095\"]\n",
        &[
            "t.toml:5:10: bridge \"b\", port \"eth0\": `trunk` entry \"4000-4095\": 4095 is not a VLAN id (1-4094)",
        ],
    ),
    (
        "range start 0",
        "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\ntrunk = [\"0-10\"]\n",
        &[
            "t.toml:5:10: bridge \"b\", port \"eth0\": `trunk` entry \"0-10\": 0 is not a VLAN id (1-4094)",
        ],
    ),
    (
        "single id as a string",
        "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\ntrunk = [\"100\"]\n",
        &[
            "t.toml:5:10: bridge \"b\", port \"eth0\": `trunk` entry \"100\": expected an inclusive range \"A-B\" of VLAN ids, like \"100-199\"",
        ],
    ),
    (
        "malformed ranges",
        "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\ntrunk = [\"1-2-3\", \"-5\", \"a-b\", \"1..5\"]\n",
        &[
            "t.toml:5:10: bridge \"b\", port \"eth0\": `trunk` entry \"1-2-3\": expected an inclusive range \"A-B\" of VLAN ids, like \"100-199\"",
            "t.toml:5:19: bridge \"b\", port \"eth0\": `trunk` entry \"-5\": expected an inclusive range \"A-B\" of VLAN ids, like \"100-199\"",
            "t.toml:5:25: bridge \"b\", port \"eth0\": `trunk` entry \"a-b\": expected an inclusive range \"A-B\" of VLAN ids, like \"100-199\"",
            "t.toml:5:32: bridge \"b\", port \"eth0\": `trunk` entry \"1..5\": expected an inclusive range \"A-B\" of VLAN ids, like \"100-199\"",
        ],
    ),
    (
        "access MAC with another VLAN",
        "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"vif1.0\"\naccess = 10\nmacs = [\"00:16:3e:00:00:01@10\", \"00:16:3e:00:00:02@11\"]\n",
        &[
            "t.toml:6:33: bridge \"b\", port \"vif1.0\": `macs` entry \"00:16:3e:00:00:02@11\": VLAN 11 is not the port's access VLAN 10 (write \"00:16:3e:00:00:02\" or \"00:16:3e:00:00:02@10\")",
        ],
    ),
    (
        "trunk MAC without VLAN and no native",
        "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth1\"\ntrunk = [10, 20]\nmacs = [\"02:00:00:00:00:fe\"]\n",
        &[
            "t.toml:6:9: bridge \"b\", port \"eth1\": `macs` entry \"02:00:00:00:00:fe\": a trunk port without `native_vlan` needs \"MAC@VLAN\"",
        ],
    ),
    (
        "trunk MAC on a VLAN the port does not carry",
        "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth1\"\ntrunk = [\"10-20\"]\nmacs = [\"02:00:00:00:00:fe@21\"]\n",
        &[
            "t.toml:6:9: bridge \"b\", port \"eth1\": `macs` entry \"02:00:00:00:00:fe@21\": VLAN 21 is not carried by this trunk port",
        ],
    ),
    (
        "group and zero MACs",
        "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\naccess = 1\nmacs = [\"01:00:5e:00:00:01\", \"ff:ff:ff:ff:ff:ff\", \"00:00:00:00:00:00\", \"33-33-00-00-00-01\"]\n",
        &[
            "t.toml:6:9: bridge \"b\", port \"eth0\": `macs` entry \"01:00:5e:00:00:01\": 01:00:5e:00:00:01 is a multicast address; static entries must be unicast",
            "t.toml:6:30: bridge \"b\", port \"eth0\": `macs` entry \"ff:ff:ff:ff:ff:ff\": ff:ff:ff:ff:ff:ff is the broadcast address; static entries must be unicast",
            "t.toml:6:51: bridge \"b\", port \"eth0\": `macs` entry \"00:00:00:00:00:00\": 00:00:00:00:00:00 is the all-zero address; static entries must be unicast",
            "t.toml:6:72: bridge \"b\", port \"eth0\": `macs` entry \"33-33-00-00-00-01\": 33:33:00:00:00:01 is a multicast address; static entries must be unicast",
        ],
    ),
    (
        "malformed MAC entries",
        "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\naccess = 1\nmacs = [\"00:16:3e:00:01\", \"00:16:3e:00:00:01@\", \"00:16:3e:00:00:01@x1\", \"00:16:3e:00:00:01@4095\", \"00:16:3e:00:00:01@1@1\"]\n",
        &[
            "t.toml:6:9: bridge \"b\", port \"eth0\": `macs` entry \"00:16:3e:00:01\": \"00:16:3e:00:01\" is not a MAC address (expected six two-digit hex octets separated by ':' or '-', like 00:16:3e:00:00:01)",
            "t.toml:6:27: bridge \"b\", port \"eth0\": `macs` entry \"00:16:3e:00:00:01@\": after '@', \"\" is not a decimal VLAN id",
            "t.toml:6:49: bridge \"b\", port \"eth0\": `macs` entry \"00:16:3e:00:00:01@x1\": after '@', \"x1\" is not a decimal VLAN id",
            "t.toml:6:73: bridge \"b\", port \"eth0\": `macs` entry \"00:16:3e:00:00:01@4095\": after '@', 4095 is not a VLAN id (1-4094)",
            "t.toml:6:99: bridge \"b\", port \"eth0\": `macs` entry \"00:16:3e:00:00:01@1@1\": after '@', \"1@1\" is not a decimal VLAN id",
        ],
    ),
    (
        "same MAC twice on one port",
        "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth1\"\ntrunk = [5]\nnative_vlan = 7\nmacs = [\"02:00:00:00:00:01\", \"02-00-00-00-00-01@7\"]\n",
        &[
            "t.toml:7:30: bridge \"b\", port \"eth1\": `macs` entry \"02-00-00-00-00-01@7\": static MAC 02:00:00:00:00:01 in VLAN 7 is already given at line 7 (port \"eth1\"); each MAC may appear once per VLAN of a bridge",
        ],
    ),
    (
        "columns count characters, not bytes",
        "[[bridge]]\nname = \"b\"\nport = [{ interface = \"é\", access = 0 }]\n",
        &["t.toml:3:37: bridge \"b\", port \"é\": `access` = 0 is not a VLAN id (1-4094)"],
    ),
];

#[test]
fn semantic_errors_name_line_column_and_field() {
    for &(what, text, expected) in SEMANTIC_CASES {
        assert_eq!(errors(text), expected, "case: {what}");
    }
}

#[test]
fn structural_and_syntax_errors_carry_line_and_column() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "unknown top-level key",
            "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\naccess = 1\n\n[agnet]\n",
            &["t.toml:7:2: unknown field `agnet`, expected `agent` or `bridge`"],
        ),
        (
            "unknown [agent] key",
            "[agent]\npin-dir = \"/x\"\n",
            &[
                "t.toml:2:1: [agent]: unknown field `pin-dir`, expected one of `pin_dir`, `socket`, `fdb_max_entries`, `metrics`",
            ],
        ),
        (
            "unknown bridge key",
            "[[bridge]]\nname = \"b\"\ntpid = 0x8100\n",
            &[
                "t.toml:3:1: bridge \"b\": unknown field `tpid`, expected one of `name`, `vlan_protocol`, `fdb_aging_secs`, `mtu`, `allow_mtu_mismatch`, `port`, `host`",
            ],
        ),
        (
            "missing interface",
            "[[bridge]]\nname = \"b\"\n[[bridge.port]]\naccess = 1\n",
            &["t.toml:3:1: missing field `interface`"],
        ),
        (
            "access as a string",
            "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\naccess = \"10\"\n",
            &[
                "t.toml:5:10: bridge \"b\", port \"eth0\": `access`: invalid type: string \"10\", expected an integer",
            ],
        ),
        (
            "trunk item of the wrong type",
            "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\ntrunk = [1, 2.5]\n",
            &[
                "t.toml:5:13: bridge \"b\", port \"eth0\": `trunk`: invalid type: floating point `2.5`, expected a VLAN id (integer) or a range \"A-B\" (string)",
            ],
        ),
        (
            "syntax errors, one per line, in file order",
            "[[bridge]]\nname = \"b\nvlan_protocol = 802.1Q\n",
            &[
                "t.toml:2:10: invalid basic string, expected `\"`",
                "t.toml:3:22: invalid float, expected nothing",
            ],
        ),
        (
            "single brackets instead of an array of tables",
            "[bridge]\nname = \"b\"\n",
            &[
                "t.toml:1:1: invalid type: map, expected an array of tables (write [[bridge]] \
                   and [[bridge.port]] with double brackets)",
            ],
        ),
        (
            "port as a single table",
            "[[bridge]]\nname = \"b\"\n[bridge.port]\ninterface = \"eth0\"\naccess = 1\n",
            &[
                "t.toml:3:1: invalid type: map, expected an array of tables (write [[bridge]] \
                   and [[bridge.port]] with double brackets)",
            ],
        ),
        (
            "duplicate key",
            "[[bridge]]\nname = \"a\"\nname = \"b\"\n",
            &["t.toml:3:1: duplicate key"],
        ),
    ];
    for &(what, text, expected) in cases {
        assert_eq!(errors(text), expected, "case: {what}");
    }
}

#[test]
fn all_problems_are_reported_in_file_order() {
    let text = "\
[agent]
pin_dir = \"relative\"

[[bridge]]
name = \"br 0\"
vlan_protocol = \"qinq\"

[[bridge.port]]
interface = \"eth1\"
trunk = [4095, \"9-3\"]
macs = [\"01:00:00:00:00:01@1\"]

[[bridge.port]]
interface = \"vif1.0\"
access = 10
native_vlan = 10

[[bridge]]
name = \"empty\"
";
    let lines = errors(text);
    assert_eq!(
        lines,
        [
            "t.toml:2:11: [agent]: `pin_dir` = \"relative\" is not an absolute path",
            "t.toml:5:8: bridge name \"br 0\" is invalid: use 1-15 characters of A-Z a-z 0-9 '_' '.' '-'",
            "t.toml:6:17: bridge \"br 0\": `vlan_protocol` = \"qinq\" is not \"802.1Q\" or \"802.1ad\"",
            "t.toml:10:10: bridge \"br 0\", port \"eth1\": `trunk` entry 4095 is not a VLAN id (1-4094)",
            "t.toml:10:16: bridge \"br 0\", port \"eth1\": `trunk` entry \"9-3\": range start 9 is greater than its end 3",
            "t.toml:11:9: bridge \"br 0\", port \"eth1\": `macs` entry \"01:00:00:00:00:01@1\": 01:00:00:00:00:01 is a multicast address; static entries must be unicast",
            "t.toml:16:15: bridge \"br 0\", port \"vif1.0\": `native_vlan` is only allowed with `trunk`; an access port is untagged in its `access` VLAN",
            "t.toml:19:8: bridge \"empty\" has no ports: add at least one [[bridge.port]] or a [bridge.host]",
        ]
    );
    // The Display of the error is the same lines joined by newlines.
    let err = Config::parse(text, "t.toml").unwrap_err();
    assert_eq!(err.to_string(), lines.join("\n"));
}

#[test]
fn new_structural_errors() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "host as an array of tables",
            "[[bridge]]\nname = \"b\"\n[[bridge.host]]\ninterface = \"h\"\naccess = 1\n",
            &[
                "t.toml:3:1: invalid type: sequence, expected a table (write [bridge.host] with \
                   single brackets: a bridge has at most one host port)",
            ],
        ),
        (
            "host as a string",
            "[[bridge]]\nname = \"b\"\nhost = \"mgmt0\"\n",
            &[
                "t.toml:3:8: bridge \"b\": `host`: invalid type: string \"mgmt0\", expected a table (write \
                   [bridge.host] with single brackets: a bridge has at most one host port)",
            ],
        ),
        (
            "unknown host key",
            "[[bridge]]\nname = \"b\"\n[bridge.host]\ninterface = \"h\"\naccess = 1\nattach = \"xdp\"\n",
            &[
                "t.toml:6:1: bridge \"b\", host port: unknown field `attach`, expected one of `interface`, `peer`, \
                   `access`, `trunk`, `native_vlan`, `addresses`, `mac`, `mac_limit`",
            ],
        ),
        (
            "host without interface",
            "[[bridge]]\nname = \"b\"\n[bridge.host]\naccess = 1\n",
            &["t.toml:3:1: missing field `interface`"],
        ),
        (
            "addresses as a string",
            "[[bridge]]\nname = \"b\"\n[bridge.host]\ninterface = \"h\"\naccess = 1\naddresses = \"10.0.0.1/24\"\n",
            &[
                "t.toml:6:13: bridge \"b\", host port: `addresses`: invalid type: string \"10.0.0.1/24\", expected a sequence",
            ],
        ),
        (
            "fdb_aging_secs as a float",
            "[[bridge]]\nname = \"b\"\nfdb_aging_secs = 1.5\n",
            &[
                "t.toml:3:18: bridge \"b\": `fdb_aging_secs`: invalid type: floating point `1.5`, expected an integer",
            ],
        ),
        (
            "mac_limit as a string",
            "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\naccess = 1\nmac_limit = \"1\"\n",
            &[
                "t.toml:6:13: bridge \"b\", port \"eth0\": `mac_limit`: invalid type: string \"1\", expected an integer",
            ],
        ),
        (
            "socket as an integer",
            "[agent]\nsocket = 1\n",
            &["t.toml:2:10: [agent]: `socket`: invalid type: integer `1`, expected a string"],
        ),
    ];
    for &(what, text, expected) in cases {
        assert_eq!(errors(text), expected, "case: {what}");
    }
}

#[test]
fn new_problems_are_all_reported_in_file_order() {
    let text = "\
[agent]
socket = \"run/xennet.sock\"

[[bridge]]
name = \"..\"
fdb_aging_secs = -300

[[bridge.port]]
interface = \"eth1\"
trunk = [1]
mac_limit = 2000000

[bridge.host]
interface = \"eth1\"
peer = \"\"
access = 0
addresses = [\"10.0.0.1/40\"]
mac = \"01:00:00:00:00:01\"
mac_limit = -1

[[bridge]]
name = \"nothing\"
";
    assert_eq!(
        errors(text),
        [
            "t.toml:2:10: [agent]: `socket` = \"run/xennet.sock\" is not an absolute path",
            "t.toml:5:8: bridge name \"..\" is invalid: \".\" and \"..\" are reserved",
            "t.toml:6:18: bridge \"..\": `fdb_aging_secs` = -300 is out of range (0-1000000)",
            "t.toml:11:13: bridge \"..\", port \"eth1\": `mac_limit` = 2000000 is out of range (0-1000000)",
            "t.toml:14:13: bridge \"..\", host port \"eth1\": interface \"eth1\" is already a port of bridge \"..\" at line 9; each interface may appear only once in the file",
            "t.toml:15:8: bridge \"..\", host port \"eth1\": `peer` = \"\" is not a valid Linux interface name: it is empty",
            "t.toml:16:10: bridge \"..\", host port \"eth1\": `access` = 0 is not a VLAN id (1-4094)",
            "t.toml:17:14: bridge \"..\", host port \"eth1\": `addresses` entry \"10.0.0.1/40\": prefix length 40 is out of range for IPv4 (0-32)",
            "t.toml:18:7: bridge \"..\", host port \"eth1\": `mac` = \"01:00:00:00:00:01\": 01:00:00:00:00:01 is a multicast address; dom0's side needs a unicast address",
            "t.toml:19:13: bridge \"..\", host port \"eth1\": `mac_limit` = -1 is out of range (0-1000000)",
            "t.toml:22:8: bridge \"nothing\" has no ports: add at least one [[bridge.port]] or a [bridge.host]",
        ]
    );
}

#[test]
fn line_col_counts_lines_and_characters() {
    let text = "ab\nçd\n\nxyz";
    let cases = [
        (0, (1, 1)),
        (2, (1, 3)),
        (3, (2, 1)),
        (5, (2, 2)),
        (7, (3, 1)),
        (8, (4, 1)),
        (11, (4, 4)),
        (99, (4, 4)),
    ];
    for (offset, expected) in cases {
        assert_eq!(line_col(text, offset), expected, "offset {offset}");
    }
}
