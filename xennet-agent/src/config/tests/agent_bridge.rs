//! `[agent]` and `[[bridge]]` settings: defaults, explicit values, bounds and limits.

use std::path::PathBuf;

use super::*;

#[test]
fn defaults_apply_when_keys_are_omitted() {
    let config =
        parse("[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\naccess = 7\n");
    assert_eq!(
        config,
        Config {
            pin_dir: PathBuf::from(DEFAULT_PIN_DIR),
            socket: PathBuf::from(DEFAULT_SOCKET),
            fdb_max_entries: DEFAULT_FDB_MAX_ENTRIES,
            metrics: DEFAULT_METRICS.parse().ok(),
            bridges: vec![BridgeSpec {
                name: "b".to_owned(),
                id: 1,
                tpid: 0x8100,
                fdb_aging_secs: DEFAULT_FDB_AGING_SECS,
                mtu: None,
                allow_mtu_mismatch: false,
                ports: vec![access_port("eth0", 7, &[])],
                host: None,
            }],
        }
    );
    assert_eq!(DEFAULT_PIN_DIR, "/sys/fs/bpf/xennet");
    assert_eq!(DEFAULT_SOCKET, "/run/xennet/xennet.sock");
    assert_eq!(DEFAULT_FDB_AGING_SECS, 300);
    assert_eq!(DEFAULT_MAC_LIMIT_ACCESS, 1024);
    assert_eq!(DEFAULT_MAC_LIMIT_TRUNK, 16384);
    // An [agent] table without pin_dir also keeps the default.
    let config = parse(
        "[agent]\n[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\naccess = 7\n",
    );
    assert_eq!(config.pin_dir, PathBuf::from("/sys/fs/bpf/xennet"));
}

#[test]
fn explicit_settings_are_honoured() {
    let config = parse(
        "[agent]\npin_dir = \"/run/xennet/bpf\"\n\
             [[bridge]]\nname = \"a\"\nvlan_protocol = \"802.1Q\"\n[[bridge.port]]\ninterface = \"eth0\"\naccess = 1\nattach = \"xdp\"\n\
             [[bridge]]\nname = \"qinq\"\nvlan_protocol = \"802.1AD\"\n[[bridge.port]]\ninterface = \"eth1\"\naccess = 1\nattach = \"xdp-generic\"\n\
             [[bridge]]\nname = \"c\"\nvlan_protocol = \"802.1q\"\n[[bridge.port]]\ninterface = \"eth2\"\naccess = 1\nattach = \"auto\"\n",
    );
    assert_eq!(config.pin_dir, PathBuf::from("/run/xennet/bpf"));
    let summary: Vec<(&str, u32, u16, &str, AttachMode)> = config
        .bridges
        .iter()
        .map(|b| {
            (
                b.name.as_str(),
                b.id,
                b.tpid,
                b.ports[0].interface.as_str(),
                b.ports[0].attach,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("a", 1, 0x8100, "eth0", AttachMode::Xdp),
            ("qinq", 2, 0x88a8, "eth1", AttachMode::XdpGeneric),
            ("c", 3, 0x8100, "eth2", AttachMode::Auto),
        ]
    );
}

#[test]
fn limits_on_bridges_and_ports() {
    use std::fmt::Write as _;

    let port = |i: usize| format!("[[bridge.port]]\ninterface = \"p{i}\"\naccess = 1\n");
    // One bridge of one port per index.
    let bridges = |count: usize| {
        let mut text = String::new();
        for i in 0..count {
            write!(text, "[[bridge]]\nname = \"b{i}\"\n{}", port(i)).unwrap();
        }
        text
    };
    // 257 bridges: the 257th bridge header is reported.
    assert_eq!(
        errors(&bridges(MAX_BRIDGES + 1)),
        ["t.toml:1281:1: too many bridges: 257 defined, at most 256 are supported"]
    );
    // Exactly 256 bridges are fine.
    assert_eq!(parse(&bridges(MAX_BRIDGES)).bridges.len(), 256);

    // 4097 ports over two bridges: the 4097th port header is reported.
    let ports = |range: std::ops::Range<usize>| range.map(port).collect::<String>();
    let text = format!(
        "[[bridge]]\nname = \"a\"\n{}[[bridge]]\nname = \"b\"\n{}",
        ports(0..2000),
        ports(2000..MAX_PORTS + 1)
    );
    assert_eq!(
        errors(&text),
        [
            "t.toml:12293:1: too many ports: 4097 defined over all bridges (each [bridge.host] counts as one), at most 4096 are supported"
        ]
    );
    let text = format!(
        "[[bridge]]\nname = \"a\"\n{}[[bridge]]\nname = \"b\"\n{}",
        ports(0..2000),
        ports(2000..MAX_PORTS)
    );
    let config = parse(&text);
    assert_eq!(
        config.bridges.iter().map(|b| b.ports.len()).sum::<usize>(),
        4096
    );
}

#[test]
fn socket_is_honoured_and_validated() {
    let with_agent = |agent: &str| format!("[agent]\n{agent}\n{B_ETH0}");
    assert_eq!(
        parse(&with_agent("socket = \"/var/run/x.sock\"")).socket,
        PathBuf::from("/var/run/x.sock")
    );
    // 107 bytes is the longest path that fits in sun_path.
    let longest = format!("/{}", "s".repeat(106));
    assert_eq!(
        parse(&with_agent(&format!("socket = \"{longest}\""))).socket,
        PathBuf::from(&longest)
    );
    // Beside pin_dir (not inside it) is fine.
    assert_eq!(
        parse(&with_agent("socket = \"/sys/fs/bpf/xennet.sock\"")).socket,
        PathBuf::from("/sys/fs/bpf/xennet.sock")
    );
    let too_long = format!("/{}", "s".repeat(107));
    let cases: &[(&str, String)] = &[
        (
            "socket = \"xennet.sock\"",
            "t.toml:2:10: [agent]: `socket` = \"xennet.sock\" is not an absolute path".to_owned(),
        ),
        (
            "socket = \"/run/xennet/\"",
            "t.toml:2:10: [agent]: `socket` = \"/run/xennet/\" ends with '/': it must name the \
                 socket file, not a directory"
                .to_owned(),
        ),
        (
            "socket = \"/run/x\\u0000y\"",
            "t.toml:2:10: [agent]: `socket` = \"/run/x\\0y\" contains a NUL character".to_owned(),
        ),
        (
            &format!("socket = \"{too_long}\""),
            format!(
                "t.toml:2:10: [agent]: `socket` = \"{too_long}\" is 108 bytes long, a Unix \
                     socket path may have at most 107"
            ),
        ),
        (
            "socket = \"/sys/fs/bpf/xennet/ctl.sock\"",
            "t.toml:2:10: [agent]: `socket` = \"/sys/fs/bpf/xennet/ctl.sock\" lies inside \
                 `pin_dir` \"/sys/fs/bpf/xennet\", a bpf filesystem, which cannot hold a socket"
                .to_owned(),
        ),
        (
            "pin_dir = \"/run\"",
            "t.toml:2:11: [agent]: `pin_dir` = \"/run\" contains the default `socket` \
                 \"/run/xennet/xennet.sock\", but a bpf filesystem cannot hold a socket: set \
                 `socket`"
                .to_owned(),
        ),
        (
            "pin_dir = \"/sys/fs/bpf/x\"\nsocket = \"/sys/fs/bpf/x/s\"",
            "t.toml:3:10: [agent]: `socket` = \"/sys/fs/bpf/x/s\" lies inside `pin_dir` \
                 \"/sys/fs/bpf/x\", a bpf filesystem, which cannot hold a socket"
                .to_owned(),
        ),
    ];
    for (agent, expected) in cases {
        assert_eq!(errors(&with_agent(agent)), [expected.as_str()], "{agent}");
    }
}

#[test]
fn fdb_max_entries_default_and_bounds() {
    let with = |v: &str| format!("[agent]\nfdb_max_entries = {v}\n{B_ETH0}");
    assert_eq!(parse(B_ETH0).fdb_max_entries, DEFAULT_FDB_MAX_ENTRIES);
    assert_eq!(parse(&with("1048576")).fdb_max_entries, 1_048_576);
    assert_eq!(parse(&with("1024")).fdb_max_entries, 1024);
    for bad in ["1023", "4194305", "-1"] {
        let err = Config::parse(&with(bad), "t.toml")
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "t.toml:2:19: [agent]: `fdb_max_entries` = {bad} is out of range (1024-4194304)"
            )
        );
    }
}

#[test]
fn fdb_aging_secs_default_bounds_and_errors() {
    let with_aging = |value: &str| {
        format!(
            "[[bridge]]\nname = \"b\"\nfdb_aging_secs = {value}\n[[bridge.port]]\n\
                 interface = \"eth0\"\naccess = 1\n"
        )
    };
    assert_eq!(parse(B_ETH0).bridges[0].fdb_aging_secs, 300);
    for (value, secs) in [("0", 0), ("1", 1), ("300", 300), ("1000000", 1_000_000)] {
        assert_eq!(parse(&with_aging(value)).bridges[0].fdb_aging_secs, secs);
    }
    for value in ["-1", "1000001", "4294967296"] {
        assert_eq!(
            errors(&with_aging(value)),
            [format!(
                "t.toml:3:18: bridge \"b\": `fdb_aging_secs` = {value} is out of range \
                     (0-1000000)"
            )]
        );
    }
}

#[test]
fn bridge_names_dot_and_dot_dot_are_rejected() {
    for name in [".", ".."] {
        assert_eq!(
            errors(&format!(
                "[[bridge]]\nname = \"{name}\"\n[[bridge.port]]\ninterface = \"eth0\"\naccess = 1\n"
            )),
            [format!(
                "t.toml:2:8: bridge name \"{name}\" is invalid: \".\" and \"..\" are reserved"
            )]
        );
    }
    for name in ["...", ".a", "a..", "_"] {
        let text = format!(
            "[[bridge]]\nname = \"{name}\"\n[[bridge.port]]\ninterface = \"eth0\"\naccess = 1\n"
        );
        assert_eq!(parse(&text).bridges[0].name, name);
    }
}

#[test]
fn metrics_defaults_to_loopback_and_can_be_switched_off_or_moved() {
    let tail = "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\naccess = 7\n";
    let with = |line: &str| parse(&format!("[agent]\n{line}\n{tail}")).metrics;
    assert_eq!(DEFAULT_METRICS, "127.0.0.1:9417");
    assert_eq!(parse(tail).metrics, Some("127.0.0.1:9417".parse().unwrap()));
    assert_eq!(with(""), Some("127.0.0.1:9417".parse().unwrap()));
    assert_eq!(with("metrics = \"off\""), None);
    assert_eq!(with("metrics = \"\""), None);
    assert_eq!(
        with("metrics = \"0.0.0.0:9100\""),
        Some("0.0.0.0:9100".parse().unwrap())
    );
    assert_eq!(
        with("metrics = \"[::1]:9417\""),
        Some("[::1]:9417".parse().unwrap())
    );
}

#[test]
fn a_bad_metrics_address_is_refused_with_its_line() {
    let tail = "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\naccess = 7\n";
    for bad in [
        "localhost:9417",
        "127.0.0.1",
        "127.0.0.1:0",
        "yes",
        "127.0.0.1:70000",
    ] {
        let lines = errors(&format!("[agent]\nmetrics = \"{bad}\"\n{tail}"));
        assert_eq!(lines.len(), 1, "{bad}: {lines:?}");
        assert!(
            lines[0].contains("t.toml:2:")
                && lines[0].contains("`metrics`")
                && lines[0].contains(bad),
            "{bad}: {lines:?}"
        );
    }
    let lines = errors(&format!("[agent]\nmetrics = 9417\n{tail}"));
    assert_eq!(lines.len(), 1, "{lines:?}");
}
