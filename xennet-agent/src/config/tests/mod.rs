//! Unit tests of the configuration: one file per topic, with the shared helpers here.

mod agent_bridge;
mod bounds;
mod errors;
mod examples;
mod host;
mod mac_move;
mod port_add;
mod ports;
mod rate;
mod security;

use std::collections::BTreeSet;

use super::*;

/// Parse `text` (origin "t.toml") and return the error lines; panics if it parses.
fn errors(text: &str) -> Vec<String> {
    match Config::parse(text, "t.toml") {
        Ok(config) => panic!("expected errors, parsed {config:#?}"),
        Err(ConfigError::Invalid(lines)) => lines,
        Err(other) => panic!("expected ConfigError::Invalid, got {other:?}"),
    }
}

fn parse(text: &str) -> Config {
    match Config::parse(text, "t.toml") {
        Ok(config) => config,
        Err(e) => panic!("expected a valid config, got:\n{e}"),
    }
}

fn mac(s: &str) -> MacAddr {
    s.parse().unwrap()
}

fn vlans(ids: &[u16]) -> BTreeSet<u16> {
    ids.iter().copied().collect()
}

fn access_port(interface: &str, vlan: u16, macs: &[(&str, u16)]) -> PortSpec {
    PortSpec {
        mac_move: false,
        security: crate::config::PortSecurity::default(),
        interface: interface.to_owned(),
        mode: PortMode::Access { vlan },
        attach: AttachMode::Auto,
        macs: macs.iter().map(|&(m, v)| (mac(m), v)).collect(),
        mac_limit: 1024,
        rate: None,
    }
}

/// `[[bridge]] name = "b"` with one access port eth0 in VLAN 1 (lines 1-5).
const B_ETH0: &str =
    "[[bridge]]\nname = \"b\"\n[[bridge.port]]\ninterface = \"eth0\"\naccess = 1\n";

fn port(interface: &str, mode: PortMode, mac_limit: u32) -> PortSpec {
    PortSpec {
        mac_move: false,
        security: crate::config::PortSecurity::default(),
        interface: interface.to_owned(),
        mode,
        attach: AttachMode::Auto,
        macs: Vec::new(),
        mac_limit,
        rate: None,
    }
}

fn trunk(ids: &[u16], native: Option<u16>) -> PortMode {
    PortMode::Trunk {
        vlans: vlans(ids),
        native,
    }
}

fn bridge(name: &str, id: u32, ports: Vec<PortSpec>, host: Option<HostSpec>) -> BridgeSpec {
    BridgeSpec {
        name: name.to_owned(),
        id,
        tpid: 0x8100,
        fdb_aging_secs: 300,
        mtu: None,
        allow_mtu_mismatch: false,
        ports,
        host,
    }
}

fn host(interface: &str, peer: &str, vlan: u16, addresses: &[&str]) -> HostSpec {
    HostSpec {
        interface: interface.to_owned(),
        peer: peer.to_owned(),
        mode: PortMode::Access { vlan },
        addresses: addresses.iter().map(|&a| a.to_owned()).collect(),
        mac: None,
        mac_limit: 1024,
    }
}
