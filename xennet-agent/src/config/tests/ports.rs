//! Ports: VLAN modes, trunk ranges, static MACs, MAC syntax, attach modes, `mac_limit`.

use super::*;

#[test]
fn trunk_ranges_and_native_vlan() {
    let config = parse(
        "[[bridge]]\nname = \"b\"\n\
             [[bridge.port]]\ninterface = \"eth0\"\ntrunk = [10, \"20-22\", \" 30 - 31 \", \"5-5\", 21, \"1-1\", \"4094-4094\"]\nnative_vlan = 99\nmacs = [\"02:00:00:00:00:01\", \"02:00:00:00:00:01@21\"]\n\
             [[bridge.port]]\ninterface = \"eth1\"\ntrunk = []\nnative_vlan = 3\n",
    );
    let ports = &config.bridges[0].ports;
    assert_eq!(
        ports[0].mode,
        PortMode::Trunk {
            vlans: vlans(&[1, 5, 10, 20, 21, 22, 30, 31, 99, 4094]),
            native: Some(99),
        }
    );
    assert_eq!(
        ports[0].macs,
        [
            (mac("02:00:00:00:00:01"), 99),
            (mac("02:00:00:00:00:01"), 21)
        ]
    );
    assert_eq!(
        ports[1].mode,
        PortMode::Trunk {
            vlans: vlans(&[3]),
            native: Some(3),
        }
    );
    // A full range is accepted and expanded.
    let config = parse(
        "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\ntrunk = [\"1-4094\"]\n",
    );
    let PortMode::Trunk { vlans, native } = &config.bridges[0].ports[0].mode else {
        panic!("expected a trunk");
    };
    assert_eq!(
        (vlans.len(), vlans.first(), vlans.last(), *native),
        (4094, Some(&1), Some(&4094), None)
    );
}

#[test]
fn same_mac_on_other_vlans_or_bridges_is_fine() {
    let config = parse(
        "[[bridge]]\nname = \"a\"\n\
             [[bridge.port]]\ninterface = \"eth0\"\ntrunk = [1, 2]\nmacs = [\"02:00:00:00:00:01@1\", \"02:00:00:00:00:01@2\"]\n\
             [[bridge]]\nname = \"b\"\n\
             [[bridge.port]]\ninterface = \"eth1\"\naccess = 1\nmacs = [\"02:00:00:00:00:01\"]\n",
    );
    let all: Vec<(u32, MacAddr, u16)> = config
        .bridges
        .iter()
        .flat_map(|b| {
            b.ports
                .iter()
                .flat_map(move |p| p.macs.iter().map(move |&(m, v)| (b.id, m, v)))
        })
        .collect();
    let m = mac("02:00:00:00:00:01");
    assert_eq!(all, [(1, m, 1), (1, m, 2), (2, m, 1)]);
}

#[test]
fn mac_parsing_edge_cases() {
    let good: &[(&str, [u8; 6])] = &[
        ("00:16:3e:00:00:01", [0x00, 0x16, 0x3e, 0, 0, 0x01]),
        ("00:16:3E:0A:Bc:fF", [0x00, 0x16, 0x3e, 0x0a, 0xbc, 0xff]),
        ("02-00-00-00-00-fe", [0x02, 0, 0, 0, 0, 0xfe]),
        ("ff:ff:ff:ff:ff:ff", [0xff; 6]),
    ];
    for &(text, octets) in good {
        assert_eq!(text.parse::<MacAddr>(), Ok(MacAddr(octets)), "{text}");
    }
    let bad = [
        "",
        "00:16:3e:00:00",
        "00:16:3e:00:00:01:02",
        "0:16:3e:00:00:01",
        "000:16:3e:00:00:01",
        "00:16-3e:00:00:01",
        "00:16:3e:00:00:0g",
        "+0:16:3e:00:00:01",
        "00:16:3e:00:00:01 ",
        "00.16.3e.00.00.01",
        "0016.3e00.0001",
        "00:16:3e:00:00:",
        "é0:16:3e:00:00:01",
    ];
    for text in bad {
        assert_eq!(
            text.parse::<MacAddr>(),
            Err(format!(
                "{text:?} is not a MAC address (expected six two-digit hex octets separated \
                     by ':' or '-', like 00:16:3e:00:00:01)"
            )),
            "{text}"
        );
    }
    assert_eq!(
        MacAddr([0x02, 0xab, 0, 0x0c, 0xde, 0xf0]).to_string(),
        "02:ab:00:0c:de:f0"
    );
    assert_eq!(mac("00-16-3E-00-00-01").to_string(), "00:16:3e:00:00:01");
    let flags = |m: MacAddr| (m.is_multicast(), m.is_broadcast(), m.is_zero());
    assert_eq!(flags(mac("ff:ff:ff:ff:ff:ff")), (true, true, false));
    assert_eq!(flags(mac("01:00:5e:00:00:01")), (true, false, false));
    assert_eq!(flags(mac("00:00:00:00:00:00")), (false, false, true));
    assert_eq!(flags(mac("fe:ff:ff:ff:ff:ff")), (false, false, false));
}

#[test]
fn attach_mode_spelling() {
    for (mode, text) in [
        (AttachMode::Auto, "auto"),
        (AttachMode::Xdp, "xdp"),
        (AttachMode::XdpGeneric, "xdp-generic"),
        (AttachMode::Tc, "tc"),
    ] {
        assert_eq!(mode.to_string(), text);
        assert_eq!(text.parse::<AttachMode>(), Ok(mode));
    }
    assert_eq!(
        "generic".parse::<AttachMode>(),
        Err("\"generic\" is not one of \"auto\", \"xdp\", \"xdp-generic\", \"tc\"".to_owned())
    );
}

#[test]
fn port_mode_queries() {
    let access = PortMode::Access { vlan: 10 };
    let trunk = PortMode::Trunk {
        vlans: vlans(&[10, 20, 30]),
        native: Some(30),
    };
    let tagged_only = PortMode::Trunk {
        vlans: vlans(&[10]),
        native: None,
    };
    // (mode, vlan, carries, egress_untagged)
    let cases = [
        (&access, 10, true, true),
        (&access, 20, false, false),
        (&trunk, 10, true, false),
        (&trunk, 30, true, true),
        (&trunk, 40, false, false),
        (&tagged_only, 10, true, false),
        (&tagged_only, 1, false, false),
    ];
    for (mode, vlan, carries, untagged) in cases {
        assert_eq!(mode.carries(vlan), carries, "{mode:?} carries {vlan}");
        assert_eq!(
            mode.egress_untagged(vlan),
            untagged,
            "{mode:?} untagged {vlan}"
        );
    }
}

#[test]
fn mac_limit_defaults_per_mode_and_bounds() {
    assert_eq!(PortMode::Access { vlan: 1 }.default_mac_limit(), 1024);
    assert_eq!(trunk(&[1], None).default_mac_limit(), 16384);
    let config = parse(
        "[[bridge]]\nname = \"b\"\n\
             [[bridge.port]]\ninterface = \"p1\"\naccess = 1\n\
             [[bridge.port]]\ninterface = \"p2\"\ntrunk = [1]\n\
             [[bridge.port]]\ninterface = \"p3\"\ntrunk = []\nnative_vlan = 1\n\
             [[bridge.port]]\ninterface = \"p4\"\naccess = 1\nmac_limit = 0\n\
             [[bridge.port]]\ninterface = \"p5\"\ntrunk = [1]\nmac_limit = 1000000\n\
             [[bridge.port]]\ninterface = \"p6\"\naccess = 1\nmac_limit = 20000\n",
    );
    let limits: Vec<(&str, u32)> = config.bridges[0]
        .ports
        .iter()
        .map(|p| (p.interface.as_str(), p.mac_limit))
        .collect();
    assert_eq!(
        limits,
        [
            ("p1", 1024),
            ("p2", 16384),
            ("p3", 16384),
            ("p4", 0),
            ("p5", 1_000_000),
            ("p6", 20000)
        ]
    );
    for value in ["-1", "1000001"] {
        assert_eq!(
            errors(&format!("{B_ETH0}mac_limit = {value}\n")),
            [format!(
                "t.toml:6:13: bridge \"b\", port \"eth0\": `mac_limit` = {value} is out of \
                     range (0-1000000)"
            )]
        );
    }
}
