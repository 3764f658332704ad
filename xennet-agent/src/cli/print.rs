//! Printers: one per kind of output, each a table or, with `--json`, pretty JSON.

use anyhow::Context as _;
use xennet_agent::{
    datapath::{FdbEntry, Port},
    stats::{self, PortCounters},
};

/// Print `v` as pretty JSON on stdout (the `--json` of every listing command).
pub fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    println!(
        "{}",
        serde_json::to_string_pretty(v).context("encoding JSON")?
    );
    Ok(())
}

/// The attached ports: the `ports` table, or JSON.
pub fn print_ports(v: serde_json::Value, json: bool) -> anyhow::Result<()> {
    if json {
        print_json(&v)?;
        return Ok(());
    }
    let ports: Vec<Port> = serde_json::from_value(v).context("decoding ports")?;
    println!(
        "{:<16} {:<12} {:>8} {:>5} {:<12} {:<5} VLANS",
        "PORT", "BRIDGE", "IFINDEX", "SLOT", "ATTACH", "HOST"
    );
    for p in ports {
        println!(
            "{:<16} {:<12} {:>8} {:>5} {:<12} {:<5} {}",
            p.interface,
            p.bridge,
            p.ifindex,
            p.slot,
            p.attached,
            if p.host { "yes" } else { "" },
            p.vlans
        );
    }
    Ok(())
}

/// FDB entries: the `fdb show` table, or JSON.
pub fn print_fdb(v: serde_json::Value, json: bool) -> anyhow::Result<()> {
    if json {
        print_json(&v)?;
        return Ok(());
    }
    let entries: Vec<FdbEntry> = serde_json::from_value(v).context("decoding the FDB")?;
    println!(
        "{:<12} {:<17} {:>5} {:<16} {:<8} AGE",
        "BRIDGE", "MAC", "VLAN", "PORT", "TYPE"
    );
    for e in entries {
        let age = e.age_secs.map_or_else(String::new, |a| format!("{a:.1}s"));
        println!(
            "{:<12} {:<17} {:>5} {:<16} {:<8} {age}",
            e.bridge,
            e.mac,
            e.vlan,
            e.port,
            if e.is_static { "static" } else { "learned" }
        );
    }
    Ok(())
}

/// Per-port counters: the `stats` table, or JSON.
pub fn print_stats(ports: &[PortCounters], json: bool) -> anyhow::Result<()> {
    if json {
        print_json(&ports)?;
    } else {
        print!("{}", stats::render(ports));
    }
    Ok(())
}

/// The one line `check` prints for a valid configuration.
pub fn print_check(path: &std::path::Path, bridges: usize, ports: usize) {
    println!("{}: ok ({bridges} bridges, {ports} ports)", path.display());
}
