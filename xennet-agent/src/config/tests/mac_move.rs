//! `mac_move` (issue 15): off unless set, the same for the file, rules and `port add`, and
//! the one combination refused.

use super::*;
use crate::config::check_port_add;
use crate::control::PortAdd;

/// An uplink named exactly (eth1, no `macs`), an uplink with a static MAC (eth2), a guest
/// named exactly with `macs` (vif1.0), a rule (`vif*`) and a secured guest (vif9.0).
const FILE: &str = r#"[[bridge]]
name = "b"
[[bridge.port]]
interface = "eth1"
trunk = [10]
[[bridge.port]]
interface = "eth2"
trunk = [10]
macs = ["02:00:00:00:00:01@10"]
[[bridge.port]]
interface = "vif1.0"
access = 10
macs = ["00:16:3e:00:00:01"]
[[bridge.port]]
interface = "vif9.0"
access = 10
ips = ["192.0.2.9"]
macs = ["00:16:3e:00:00:09"]
[[bridge.port]]
interface = "vif*"
access = 10
"#;

fn mac_move_of(cfg: &Config, interface: &str) -> bool {
    cfg.bridges[0]
        .ports
        .iter()
        .find(|p| p.interface == interface)
        .map_or_else(|| panic!("no port {interface}"), |p| p.mac_move)
}

#[test]
fn off_unless_set() {
    let cfg = parse(FILE);
    assert!(!mac_move_of(&cfg, "eth1"), "an uplink, unless it says so");
    assert!(!mac_move_of(&cfg, "eth2"), "a port with macs does not");
    assert!(!mac_move_of(&cfg, "vif1.0"), "a guest with macs does not");
    assert!(!mac_move_of(&cfg, "vif9.0"), "a secured guest does not");
    assert!(!mac_move_of(&cfg, "vif*"), "a rule does not");
}

#[test]
fn explicit_values_are_kept() {
    let text = FILE
        .replace("trunk = [10]\nmacs", "trunk = [10]\nmac_move = true\nmacs")
        .replacen(
            "interface = \"eth1\"\n",
            "interface = \"eth1\"\nmac_move = false\n",
            1,
        )
        .replacen(
            "interface = \"vif*\"\n",
            "interface = \"vif*\"\nmac_move = true\n",
            1,
        );
    let cfg = parse(&text);
    assert!(!mac_move_of(&cfg, "eth1"));
    assert!(
        mac_move_of(&cfg, "eth2"),
        "an uplink with static macs may move too"
    );
    assert!(mac_move_of(&cfg, "vif*"), "a rule passes it on");
    let req = PortAdd {
        interface: "vif7.0".to_owned(),
        bridge: "b".to_owned(),
        ..Default::default()
    };
    let (_, spec) = check_port_add(&cfg, [], &req).expect("valid");
    assert!(spec.mac_move, "port add takes the rule's mac_move");
}

#[test]
fn a_secured_port_cannot_take_macs_over() {
    let text = FILE.replace(
        "ips = [\"192.0.2.9\"]\nmacs = [\"00:16:3e:00:00:09\"]\n",
        "ips = [\"192.0.2.9\"]\nmacs = [\"00:16:3e:00:00:09\"]\nmac_move = true\n",
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("port \"vif9.0\": `mac_move` = true on a port with `security`"),
        "{errs:?}"
    );
    let typed = errors(&FILE.replace(
        "interface = \"vif*\"\n",
        "interface = \"vif*\"\nmac_move = 1\n",
    ));
    assert!(!typed.is_empty(), "mac_move must be a boolean");
}

fn add(mac_move: Option<bool>, security: Option<bool>) -> Result<bool, ConfigError> {
    let cfg = parse(FILE);
    let req = PortAdd {
        interface: "vif7.0".to_owned(),
        bridge: "b".to_owned(),
        macs: vec!["00:16:3e:00:00:07".to_owned()],
        mac_move,
        security: crate::control::SecurityRequest {
            security,
            ..Default::default()
        },
        ..Default::default()
    };
    check_port_add(&cfg, [], &req).map(|(_, spec)| spec.mac_move)
}

#[test]
fn port_add_runs_the_same_rules() {
    assert!(
        !add(None, None).expect("valid"),
        "a vif added at run time: off"
    );
    assert!(add(Some(true), None).expect("valid"), "--mac-move on");
    let Err(ConfigError::PortAdd(problems)) = add(Some(true), Some(true)) else {
        panic!("--mac-move on with --security on must be refused");
    };
    assert!(
        problems
            .iter()
            .any(|p| p.contains("`mac_move` = true on a port with `security`")),
        "{problems:?}"
    );
}
