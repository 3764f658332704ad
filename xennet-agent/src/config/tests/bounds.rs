//! Bounds on what the configuration reads and says: regular files of at most 1 MiB, trunks of
//! any number of items in linear time, long values cut in messages, at most 100 problems; and
//! the values `check` refuses that it once let through (`lo`, an empty glob range, NUL in
//! `pin_dir`).

use std::fmt::Write as _;

use super::*;
use crate::control::PortAdd;

/// A directory of its own for one test, removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("xennet-config-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn load_refuses_what_is_not_a_regular_file() {
    for (path, kind) in [
        ("/dev/zero", "a character device"),
        ("/dev/null", "a character device"),
        ("/", "a directory"),
    ] {
        let err = Config::load(std::path::Path::new(path)).unwrap_err();
        assert!(
            matches!(&err, ConfigError::NotRegular { kind: k, .. } if *k == kind),
            "{path}: {err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!("cannot read config {path}: it is {kind}, not a regular file")
        );
    }
    let dir = TempDir::new("fifo");
    let fifo = dir.0.join("fifo");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    // Refused without waiting for a writer.
    assert!(matches!(
        Config::load(&fifo),
        Err(ConfigError::NotRegular { kind: "a FIFO", .. })
    ));
    // A symbolic link to a regular file is read.
    let file = dir.0.join("x.toml");
    std::fs::write(&file, B_ETH0).unwrap();
    let link = dir.0.join("link.toml");
    std::os::unix::fs::symlink(&file, &link).unwrap();
    assert_eq!(Config::load(&link).unwrap(), parse(B_ETH0));
}

#[test]
fn load_refuses_files_over_one_mib() {
    let dir = TempDir::new("size");
    // Exactly the limit: a valid file padded with a comment.
    let limit = usize::try_from(MAX_CONFIG_BYTES).unwrap();
    assert_eq!(limit, 1 << 20, "the documented limit");
    let mut text = B_ETH0.to_owned();
    text.push('#');
    text.push_str(&"x".repeat(limit - text.len() - 1));
    text.push('\n');
    assert_eq!(text.len(), limit);
    let at_limit = dir.0.join("at-limit.toml");
    std::fs::write(&at_limit, &text).unwrap();
    assert_eq!(Config::load(&at_limit).unwrap(), parse(B_ETH0));
    // One byte more is refused, before anything is parsed.
    text.push('\n');
    let over = dir.0.join("over.toml");
    std::fs::write(&over, &text).unwrap();
    let err = Config::load(&over).unwrap_err();
    assert!(matches!(err, ConfigError::TooLarge { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "cannot read config {}: it is larger than 1048576 bytes (1 MiB), the most a \
             configuration file may have",
            over.display()
        )
    );
}

#[test]
fn a_trunk_of_300k_ranges_parses_to_the_right_vlans() {
    // 300,000 overlapping ranges and ids over the whole VLAN space; before, each range was
    // inserted id by id (1.2 billion insertions for this list).
    let mut items = String::new();
    for i in 0..300_000u32 {
        match i % 3 {
            0 => items.push_str("\"1-4094\","),
            1 => {
                let a = 1 + (i * 7) % 4000;
                let _ = write!(items, "\"{a}-{}\",", a + 94);
            }
            _ => {
                let _ = write!(items, "{},", 1 + (i * 13) % 4094);
            }
        }
    }
    let text = format!(
        "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth1\"\ntrunk = [{items}]\n"
    );
    let started = std::time::Instant::now();
    let cfg = parse(&text);
    eprintln!("300k-item trunk parsed in {:?}", started.elapsed());
    let all: Vec<u16> = (1..=4094).collect();
    assert_eq!(cfg.bridges[0].ports[0].mode, trunk(&all, None));

    // Ranges that leave gaps: exactly their union.
    let mut items = String::new();
    for _ in 0..100_000 {
        items.push_str("\"10-20\",\"4000 - 4094\",7,");
    }
    let text = format!(
        "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth1\"\ntrunk = [{items}]\n"
    );
    let mut want: Vec<u16> = vec![7];
    want.extend(10..=20);
    want.extend(4000..=4094);
    assert_eq!(parse(&text).bridges[0].ports[0].mode, trunk(&want, None));
}

#[test]
fn long_values_are_cut_in_messages() {
    let name = "v".repeat(1 << 20);
    let lines = errors(&format!(
        "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"{name}\"\naccess = 1\n"
    ));
    assert_eq!(lines.len(), 1, "{lines:?}");
    let shown = format!("\"{}…\"", "v".repeat(128));
    assert_eq!(
        lines[0],
        format!(
            "t.toml:4:13: bridge \"b\": `interface` = {shown} is not a valid Linux interface \
             name: it is 1048576 bytes long, at most 15 are allowed"
        )
    );
    // A key toml itself reports, and a VLAN id of a million digits.
    let key = "k".repeat(100_000);
    let lines = errors(&format!("{B_ETH0}{key} = 1\n"));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].len() < 400, "{}", &lines[0][..400]);
    assert!(
        lines[0].contains(&format!("`{}…`", "k".repeat(128))),
        "{}",
        lines[0]
    );
    let digits = "9".repeat(1_000_000);
    let lines = errors(&format!(
        "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth1\"\ntrunk = [\"1-{digits}\"]\n"
    ));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].len() < 600, "{}", &lines[0][..600]);
    // `port add` cuts the same way.
    let req = PortAdd {
        security: crate::control::SecurityRequest::default(),
        interface: "vif1.0".into(),
        bridge: "x".repeat(1 << 20),
        access: Some(1),
        trunk: None,
        native: None,
        macs: Vec::new(),
        attach: None,
        ..PortAdd::default()
    };
    let err = check_port_add(&parse(B_ETH0), [], &req)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!("no bridge \"{}…\" in the configuration", "x".repeat(128))
    );
}

#[test]
fn at_most_100_problems_are_reported() {
    let mut text =
        String::from("[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth1\"\ntrunk = [");
    for _ in 0..50_000 {
        text.push_str("0,");
    }
    text.push_str("]\n");
    let lines = errors(&text);
    assert_eq!(lines.len(), 101);
    assert_eq!(
        lines[0],
        "t.toml:5:10: bridge \"b\", port \"eth1\": `trunk` entry 0 is not a VLAN id (1-4094)"
    );
    assert_eq!(
        lines[100],
        "t.toml: … and 49900 more problems (only the first 100 are shown)"
    );
}

#[test]
fn lo_is_never_a_port() {
    let msg = "`interface` = \"lo\" is the loopback device, not an Ethernet interface; a port \
               must be an Ethernet interface";
    assert_eq!(
        errors("[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"lo\"\naccess = 1\n"),
        [format!("t.toml:4:13: bridge \"b\", port \"lo\": {msg}")]
    );
    assert_eq!(
        errors("[[bridge]]\nname = \"b\"\n[bridge.host]\ninterface = \"lo\"\naccess = 1\n"),
        [format!(
            "t.toml:4:13: bridge \"b\", host port \"lo\": {msg}"
        )]
    );
    assert_eq!(
        errors(
            "[[bridge]]\nname = \"b\"\n[bridge.host]\ninterface = \"m0\"\npeer = \"lo\"\naccess = 1\n"
        ),
        [
            "t.toml:5:8: bridge \"b\", host port \"m0\": `peer` = \"lo\" is the loopback \
             device, not an Ethernet interface; a port must be an Ethernet interface"
        ]
    );
    // `port add lo`, with the same words.
    let mut req = PortAdd {
        security: crate::control::SecurityRequest::default(),
        interface: "lo".into(),
        bridge: "b".into(),
        access: Some(1),
        trunk: None,
        native: None,
        macs: Vec::new(),
        attach: None,
        ..PortAdd::default()
    };
    let err = check_port_add(&parse(B_ETH0), [], &req)
        .unwrap_err()
        .to_string();
    assert_eq!(err, format!("bridge \"b\", port \"lo\": {msg}"));
    req.interface = "lo0".into();
    assert!(
        check_port_add(&parse(B_ETH0), [], &req).is_ok(),
        "only `lo` itself"
    );
}

#[test]
fn an_empty_glob_range_is_refused() {
    let port = |pattern: &str| {
        format!(
            "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"{pattern}\"\naccess = 1\n"
        )
    };
    assert_eq!(
        errors(&port("vif[z-a]")),
        [
            "t.toml:4:13: bridge \"b\", port \"vif[z-a]\": `interface` = \"vif[z-a]\" has the \
             empty range `z-a` (z comes after a), which matches no character; write `a-z`"
        ]
    );
    assert_eq!(
        errors(&port("vif[!9-0]*")).len(),
        1,
        "negated sets are checked too"
    );
    assert_eq!(
        errors(&port("v[0-9]i[5-1]")).len(),
        1,
        "every set is checked"
    );
    for ok in [
        "vif[a-z]*",
        "vif[-z]",
        "vif[a-]",
        "vif[]-a]*",
        "vif[!a-a]",
        "vif[z]",
    ] {
        parse(&port(ok));
    }
}

#[test]
fn a_pin_dir_with_nul_is_refused() {
    assert_eq!(
        errors(&format!(
            "[agent]\npin_dir = \"/sys/fs/bpf/x\\u0000y\"\n{B_ETH0}"
        )),
        ["t.toml:2:11: [agent]: `pin_dir` = \"/sys/fs/bpf/x\\0y\" contains a NUL character"]
    );
}
