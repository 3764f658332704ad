//! Bandwidth limits (`rate`, `burst`): units, bounds, defaults, a burst of at least one frame,
//! and the same rules and messages through `port add`, whose rule's limit applies unless the
//! request sets one.

use std::fmt::Write as _;

use super::*;
use crate::control::PortAdd;

/// Bridge "b" (MTU `mtu`, 1500 when empty): an uplink and a rule `vif*` limited to 10 Mbit/s.
fn base(mtu: &str) -> String {
    format!(
        "[[bridge]]\nname = \"b\"\n{mtu}\n[[bridge.port]]\ninterface = \"eth1\"\naccess = 10\n\
         [[bridge.port]]\ninterface = \"vif*\"\naccess = 10\nrate = \"10Mbit\"\n"
    )
}

/// The port `vif1.0` with `keys` in the file on `base(mtu)`.
fn file(mtu: &str, keys: &str) -> String {
    format!(
        "{}[[bridge.port]]\ninterface = \"vif1.0\"\naccess = 10\n{keys}\n",
        base(mtu)
    )
}

/// `port add vif1.0 --access 10` with `rate` and `burst` on `base(mtu)`.
fn request(mtu: &str, rate: Option<&str>, burst: Option<&str>) -> Result<PortSpec, Vec<String>> {
    let req = PortAdd {
        interface: "vif1.0".to_owned(),
        bridge: "b".to_owned(),
        access: Some(10),
        rate: rate.map(str::to_owned),
        burst: burst.map(str::to_owned),
        ..PortAdd::default()
    };
    match check_port_add(&parse(&base(mtu)), [], &req) {
        Ok((_, spec)) => Ok(spec),
        Err(ConfigError::PortAdd(lines)) => Err(lines),
        Err(other) => panic!("expected ConfigError::PortAdd, got {other:?}"),
    }
}

#[expect(clippy::unnecessary_wraps, reason = "compared with `PortSpec::rate`")]
fn limit(bits_per_sec: u64, burst_bytes: u64) -> Option<RateLimit> {
    Some(RateLimit {
        bits_per_sec,
        burst_bytes,
    })
}

/// The limit of `vif1.0` in the file with `keys`.
fn file_limit(mtu: &str, keys: &str) -> Option<RateLimit> {
    let cfg = parse(&file(mtu, keys));
    cfg.bridges[0]
        .ports
        .iter()
        .find(|p| p.interface == "vif1.0")
        .expect("vif1.0")
        .rate
}

#[test]
fn units_defaults_and_bursts() {
    // 200 ms of the rate, at least 256 KiB.
    assert_eq!(
        file_limit("", "rate = \"100Mbit\""),
        limit(100_000_000, 2_500_000)
    );
    assert_eq!(
        file_limit("", "rate = \"10Mbit\""),
        limit(10_000_000, 256 << 10)
    );
    assert_eq!(
        file_limit("", "rate = \"1Gbit\"\nburst = \"4MiB\""),
        limit(1_000_000_000, 4 << 20)
    );
    assert_eq!(
        file_limit("", "rate = \"2.5gbit\"\nburst = \"1522\""),
        limit(2_500_000_000, 1522)
    );
    assert_eq!(file_limit("", ""), None);
    // The same through `port add`.
    assert_eq!(
        request("", Some("100Mbit"), None).map(|p| p.rate),
        Ok(limit(100_000_000, 2_500_000))
    );
    assert_eq!(
        request("mtu = 9000", Some("1Gbit"), Some("9022B")).map(|p| p.rate),
        Ok(limit(1_000_000_000, 9022))
    );
}

/// What, the bridge's mtu line, `rate`, `burst`, and the message after `bridge "b", port
/// "vif1.0": `.
type Refused = (
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    &'static str,
);

const REFUSED: &[Refused] = &[
    (
        "bytes per second are not a rate",
        "",
        Some("100MB"),
        None,
        "`rate` = \"100MB\" is not a rate (a number and a unit: bit, kbit, Mbit, Gbit or Tbit \
         per second, like \"100Mbit\")",
    ),
    (
        "no unit",
        "",
        Some("100"),
        None,
        "`rate` = \"100\" is not a rate (a number and a unit: bit, kbit, Mbit, Gbit or Tbit \
         per second, like \"100Mbit\")",
    ),
    (
        "zero",
        "",
        Some("0Mbit"),
        None,
        "`rate` = \"0Mbit\" is zero, which would drop everything; leave `rate` out for no limit",
    ),
    (
        "absurdly slow",
        "",
        Some("100bit"),
        None,
        "`rate` = \"100bit\" is out of range (8kbit-400Gbit)",
    ),
    (
        "absurdly fast",
        "",
        Some("1Tbit"),
        None,
        "`rate` = \"1Tbit\" is out of range (8kbit-400Gbit)",
    ),
    (
        "a burst in bits",
        "",
        Some("10Mbit"),
        Some("64Kbit"),
        "`burst` = \"64Kbit\" is not a size in bytes (a number, optionally with a unit: B, KiB, \
         MiB, GiB, kB, MB, GB, like \"64KiB\")",
    ),
    (
        "a burst smaller than a frame",
        "",
        Some("10Mbit"),
        Some("1KiB"),
        "`burst` = \"1KiB\" (1024 bytes) is smaller than one full-size frame (1522 bytes at MTU \
         1500): at least 1522B",
    ),
    (
        "a burst smaller than a jumbo frame",
        "mtu = 9000",
        Some("1Gbit"),
        Some("8KiB"),
        "`burst` = \"8KiB\" (8192 bytes) is smaller than one full-size frame (9022 bytes at MTU \
         9000): at least 9022B",
    ),
    (
        "an absurd burst",
        "",
        Some("10Mbit"),
        Some("2GiB"),
        "`burst` = \"2GiB\" is out of range (1522B-1GiB)",
    ),
    (
        "a burst without a rate",
        "",
        None,
        Some("64KiB"),
        "`burst` needs a `rate` (the burst of which limit?)",
    ),
];

/// Every refused limit gives the same message in the file (at its line) and through `port
/// add` (without a location).
#[test]
fn bad_limits_are_refused_alike_in_the_file_and_by_port_add() {
    for &(what, mtu, rate, burst, message) in REFUSED {
        let mut keys = String::new();
        if let Some(r) = rate {
            writeln!(keys, "rate = {r:?}").unwrap();
        }
        if let Some(b) = burst {
            writeln!(keys, "burst = {b:?}").unwrap();
        }
        let want = format!("bridge \"b\", port \"vif1.0\": {message}");
        let in_file = errors(&file(mtu, &keys));
        assert_eq!(in_file.len(), 1, "{what}: {in_file:?}");
        let (location, got) = in_file[0].split_once(": ").expect("a location");
        assert!(location.starts_with("t.toml:"), "{what}: {location}");
        assert_eq!(got, want, "{what} (file)");
        assert_eq!(
            request(mtu, rate, burst),
            Err(vec![want.clone()]),
            "{what} (port add)"
        );
    }
}

#[test]
fn a_rate_must_be_a_string() {
    let lines = errors(&file("", "rate = 100"));
    assert!(
        lines.len() == 1 && lines[0].contains("invalid type: integer `100`, expected a string"),
        "{lines:?}"
    );
}

/// `port add` without a limit takes its rule's; with `--rate` its own (default burst); a
/// `--burst` alone is refused (no rule's rate is half-inherited).
#[test]
fn port_add_inherits_the_rules_limit_unless_it_sets_one() {
    let cfg = parse(&base(""));
    let req = |rate: Option<&str>, burst: Option<&str>| PortAdd {
        interface: "vif7.0".to_owned(),
        bridge: "b".to_owned(),
        rate: rate.map(str::to_owned),
        burst: burst.map(str::to_owned),
        ..PortAdd::default()
    };
    let spec = |r: &PortAdd| check_port_add(&cfg, [], r).map(|(_, s)| s.rate);
    assert_eq!(
        spec(&req(None, None)).ok(),
        Some(limit(10_000_000, 256 << 10))
    );
    assert_eq!(
        spec(&req(Some("1Gbit"), None)).ok(),
        Some(limit(1_000_000_000, 25_000_000))
    );
    assert_eq!(
        spec(&req(Some("1Gbit"), Some("8MiB"))).ok(),
        Some(limit(1_000_000_000, 8 << 20))
    );
    match spec(&req(None, Some("8MiB"))) {
        Err(ConfigError::PortAdd(lines)) => assert_eq!(
            lines,
            ["bridge \"b\", port \"vif7.0\": `burst` needs a `rate` (the burst of which limit?)"]
        ),
        other => panic!("expected a refusal, got {other:?}"),
    }
}
