//! Printers: one per kind of output, each a table or, with `--json`, pretty JSON.

use anyhow::Context as _;
use xennet_agent::{
    control::ReloadReport,
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
        "{:<16} {:<12} {:>8} {:>5} {:<12} {:<5} {:<22} {:<24} SECURITY",
        "PORT", "BRIDGE", "IFINDEX", "SLOT", "ATTACH", "HOST", "RATE", "VLANS"
    );
    for p in ports {
        println!(
            "{:<16} {:<12} {:>8} {:>5} {:<12} {:<5} {:<22} {:<24} {}",
            p.interface,
            p.bridge,
            p.ifindex,
            p.slot,
            p.attached,
            if p.host { "yes" } else { "" },
            p.rate.as_deref().unwrap_or("-"),
            p.vlans,
            p.security.summary()
        );
        if let Some(rx) = &p.rx_vlan {
            println!("  └ {}: {rx}", p.interface);
        }
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

/// Per-port rates of `stats --watch`: a table (then a blank line), or one JSON array a line.
pub fn print_rates(ports: &[PortCounters], json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(ports).context("encoding JSON")?);
    } else {
        println!("{}", stats::render_rates(ports));
    }
    Ok(())
}

/// What a reload changed: one line per kind of change, or JSON.
pub fn print_reload(v: serde_json::Value, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(&v);
    }
    let r: ReloadReport = serde_json::from_value(v).context("decoding the reload report")?;
    let p = &r.ports;
    let rows: [(&str, String); 6] = [
        ("added", p.added.join(" ")),
        ("removed", p.removed.join(" ")),
        ("changed", p.changed.join(" ")),
        (
            "static MACs",
            format!("+{} -{}", p.statics_added, p.statics_removed),
        ),
        ("settings", r.settings.join("; ")),
        ("left out", p.failed.join("; ")),
    ];
    println!("{:<12} WHAT", "CHANGE");
    for (what, list) in rows {
        if !list.is_empty() && list != "+0 -0" {
            println!("{what:<12} {list}");
        }
    }
    Ok(())
}

/// `n` and `noun`, plural (`nouns`) when `n` is not 1: `1 bridge`, `2 bridges`.
pub fn count(n: usize, noun: &str, nouns: &str) -> String {
    format!("{n} {}", if n == 1 { noun } else { nouns })
}

/// The one line `check` prints for a valid configuration: the bridges and the port entries
/// (exact names and rules) it holds, which `run` resolves against the interfaces present.
pub fn print_check(path: &std::path::Path, bridges: usize, entries: usize) {
    println!(
        "{}: ok ({}, {} (exact names and rules))",
        path.display(),
        count(bridges, "bridge", "bridges"),
        count(entries, "port entry", "port entries")
    );
}
