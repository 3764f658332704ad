//! The example files under `examples/` parse to the expected configurations (or report the
//! expected errors), and `Config::load` reads files.

use std::path::PathBuf;

use super::*;

const SEED: &str = include_str!("../../../../examples/seed-trunk.toml");

const INTERNAL_ONLY: &str = include_str!("../../../../examples/internal-only.toml");
const SEED_FULL: &str = include_str!("../../../../examples/seed-full.toml");
const NIC_BRIDGED: &str = include_str!("../../../../examples/nic-bridged.toml");

#[test]
fn seed_example_parses_to_the_expected_config() {
    let config = Config::parse(SEED, "examples/seed-trunk.toml").unwrap();
    let expected = Config {
        pin_dir: PathBuf::from("/sys/fs/bpf/xennet"),
        socket: PathBuf::from("/run/xennet/xennet.sock"),
        fdb_max_entries: DEFAULT_FDB_MAX_ENTRIES,
        metrics: DEFAULT_METRICS.parse().ok(),
        bridges: vec![BridgeSpec {
            name: "trunk".to_owned(),
            id: 1,
            tpid: 0x8100,
            fdb_aging_secs: 300,
            mtu: None,
            allow_mtu_mismatch: false,
            host: None,
            ports: vec![
                PortSpec {
                    mac_move: false,
                    security: crate::config::PortSecurity::default(),
                    interface: "eth1".to_owned(),
                    mode: PortMode::Trunk {
                        vlans: vlans(&[4093, 4094]),
                        native: None,
                    },
                    attach: AttachMode::Auto,
                    macs: vec![
                        (MacAddr([0x02, 0, 0, 0, 0, 0xfe]), 4094),
                        (MacAddr([0x02, 0, 0, 0, 0, 0xfe]), 4093),
                    ],
                    mac_limit: 16384,
                    rate: None,
                },
                access_port("vif1.0", 4094, &[("00:16:3e:00:00:01", 4094)]),
                access_port("vif2.0", 4094, &[("00:16:3e:00:00:02", 4094)]),
                access_port("vif3.0", 4093, &[("00:16:3e:00:00:03", 4093)]),
            ],
        }],
    };
    assert_eq!(config, expected);
}

#[test]
fn invalid_examples_report_line_and_field() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "examples/invalid/unknown-key.toml",
            include_str!("../../../../examples/invalid/unknown-key.toml"),
            &[
                "examples/invalid/unknown-key.toml:7:1: bridge \"trunk\", port \"vif1.0\": unknown field `vlan`, expected one of \
                   `interface`, `access`, `trunk`, `native_vlan`, `attach`, `macs`, `mac_limit`, `security`, `ips`, `allow_dhcp_server`, \
                   `allow_ra`, `allow_ethertypes`, `rate`, `burst`, `mac_move`",
            ],
        ),
        (
            "examples/invalid/vlan-4095.toml",
            include_str!("../../../../examples/invalid/vlan-4095.toml"),
            &[
                "examples/invalid/vlan-4095.toml:11:10: bridge \"trunk\", port \"vif1.0\": \
                   `access` = 4095 is not a VLAN id (1-4094)",
            ],
        ),
        (
            "examples/invalid/interface-in-two-bridges.toml",
            include_str!("../../../../examples/invalid/interface-in-two-bridges.toml"),
            &[
                "examples/invalid/interface-in-two-bridges.toml:13:13: bridge \"blue\", port \
                   \"vif1.0\": interface \"vif1.0\" is already a port of bridge \"red\" at line \
                   6; each interface may appear only once in the file",
            ],
        ),
        (
            "examples/invalid/duplicate-static-mac.toml",
            include_str!("../../../../examples/invalid/duplicate-static-mac.toml"),
            &[
                "examples/invalid/duplicate-static-mac.toml:13:9: bridge \"trunk\", port \
                   \"vif2.0\": `macs` entry \"00:16:3E:00:00:01\": static MAC 00:16:3e:00:00:01 \
                   in VLAN 4094 is already given at line 8 (port \"vif1.0\"); each MAC may \
                   appear once per VLAN of a bridge",
            ],
        ),
    ];
    for &(origin, text, expected) in cases {
        match Config::parse(text, origin) {
            Err(ConfigError::Invalid(lines)) => assert_eq!(lines, expected, "{origin}"),
            other => panic!("{origin}: expected Invalid, got {other:?}"),
        }
    }
}

#[test]
fn internal_only_example() {
    let config = Config::parse(INTERNAL_ONLY, "examples/internal-only.toml").unwrap();
    assert_eq!(
        config,
        Config {
            pin_dir: PathBuf::from("/sys/fs/bpf/xennet"),
            socket: PathBuf::from("/run/xennet/xennet.sock"),
            fdb_max_entries: DEFAULT_FDB_MAX_ENTRIES,
            metrics: DEFAULT_METRICS.parse().ok(),
            bridges: vec![bridge(
                "internal",
                1,
                vec![
                    access_port("vif1.1", 10, &[]),
                    access_port("vif2.1", 10, &[])
                ],
                None,
            )],
        }
    );
}

#[test]
fn seed_full_example() {
    let config = Config::parse(SEED_FULL, "examples/seed-full.toml").unwrap();
    assert_eq!(
        config,
        Config {
            pin_dir: PathBuf::from("/sys/fs/bpf/xennet"),
            socket: PathBuf::from("/run/xennet/xennet.sock"),
            fdb_max_entries: DEFAULT_FDB_MAX_ENTRIES,
            metrics: DEFAULT_METRICS.parse().ok(),
            bridges: vec![
                bridge(
                    "trunk",
                    1,
                    vec![
                        port("eth1", trunk(&[4093, 4094], None), 16384),
                        access_port("vif1.0", 4094, &[]),
                        access_port("vif2.0", 4094, &[]),
                        access_port("vif3.0", 4093, &[]),
                        port("vif4.0", trunk(&[4093, 4094], None), 16384),
                    ],
                    Some(host("mgmt0", "xnh-trunk", 4094, &["10.94.0.254/16"])),
                ),
                bridge(
                    "internal",
                    2,
                    vec![
                        access_port("vif1.1", 10, &[]),
                        access_port("vif2.1", 10, &[])
                    ],
                    None,
                ),
            ],
        }
    );
    // Learning does it: no static MAC anywhere.
    assert!(
        config
            .bridges
            .iter()
            .all(|b| b.ports.iter().all(|p| p.macs.is_empty()))
    );
}

#[test]
fn nic_bridged_example() {
    let config = Config::parse(NIC_BRIDGED, "examples/nic-bridged.toml").unwrap();
    assert_eq!(
        config,
        Config {
            pin_dir: PathBuf::from("/sys/fs/bpf/xennet"),
            socket: PathBuf::from("/run/xennet/xennet.sock"),
            fdb_max_entries: DEFAULT_FDB_MAX_ENTRIES,
            metrics: DEFAULT_METRICS.parse().ok(),
            bridges: vec![bridge(
                "lan",
                1,
                vec![access_port("eth0", 1, &[]), access_port("vif1.0", 1, &[])],
                Some(host("eth0br", "xnh-lan", 1, &[])),
            )],
        }
    );
}

#[test]
fn load_reads_files_and_reports_read_errors() {
    let dir = std::env::temp_dir().join(format!("xennet-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("seed.toml");
    std::fs::write(&good, SEED).unwrap();
    assert_eq!(
        Config::load(&good).unwrap(),
        Config::parse(SEED, "x").unwrap()
    );

    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[[bridge]]\nname = \"b\"\n").unwrap();
    assert_eq!(
        Config::load(&bad).unwrap_err().to_string(),
        format!(
            "{}:2:8: bridge \"b\" has no ports: add at least one [[bridge.port]] or a [bridge.host]",
            bad.display()
        )
    );

    let missing = dir.join("missing.toml");
    match Config::load(&missing) {
        Err(ConfigError::Read { path, reason }) => {
            assert_eq!(path, missing.display().to_string());
            assert_eq!(reason.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected a read error, got {other:?}"),
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
