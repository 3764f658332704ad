//! `cargo xtask demo`: the seed's trunk setup in namespaces, with xennet forwarding it.
//!
//! Shows guests on one VLAN reaching each other, a guest's frame leaving the trunk tagged, a
//! tagged frame from upstream reaching its guest untagged, frames refused across VLANs, and
//! the counters; then stops the agent and removes everything.

use std::{path::Path, time::Duration};

use anyhow::{Context as _, bail};
use xennet_tests::{
    frame::{ETH_P_8021Q, Mac, find_marker, format_mac, parse_eth, tci, test_frame},
    topo::{
        Agent, BpfFs, Mode, SEED_CONFIG, SeedDom0, UPSTREAM_MAC, agent_command, workspace_root,
    },
};

const WAIT: Duration = Duration::from_millis(400);

fn describe(f: &[u8]) -> String {
    match parse_eth(f) {
        Some(p) => {
            let tags = if p.tags.is_empty() {
                "untagged".to_string()
            } else {
                p.tags
                    .iter()
                    .map(|(tpid, t)| format!("tag {tpid:#06x} VLAN {}", t & 0x0fff))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!("{} → {}, {tags}", format_mac(&p.src), format_mac(&p.dst))
        }
        None => format!("unparsable frame of {} bytes", f.len()),
    }
}

fn section(title: &str) {
    println!("\n── {title}");
}

/// Send `frame` from `tx`, report where it arrived among `rx` (name, socket).
fn send_and_report(
    tx: &xennet_tests::RawSocket,
    frame: &[u8],
    rx: &[(&str, &xennet_tests::RawSocket)],
) -> anyhow::Result<Vec<String>> {
    for (_, s) in rx {
        s.collect(Duration::ZERO)?;
    }
    let id = find_marker(frame);
    tx.send(frame)?;
    let mut arrived = Vec::new();
    for (name, s) in rx {
        for f in s.collect(WAIT)? {
            if find_marker(&f) == id {
                println!("   arrived at {name:<9} {}", describe(&f));
                arrived.push((*name).to_string());
            }
        }
    }
    if arrived.is_empty() {
        println!("   arrived nowhere (refused)");
    }
    Ok(arrived)
}

/// Run the demo with the agent binary `agent`.
pub fn run(agent_bin: &Path) -> anyhow::Result<()> {
    // SAFETY: the demo is single-threaded here; tests read the same variable.
    unsafe { std::env::set_var("XENNET_AGENT", agent_bin) };
    println!("xennet demo: the seed's trunk setup in network namespaces");
    println!(
        "  upstream ── eth1 (trunk 4093,4094) [dom0] vif1.0, vif2.0 (VLAN 4094), vif3.0 (VLAN 4093)"
    );
    let sim = SeedDom0::new("demo").context("building the simulated dom0")?;
    let fs = BpfFs::new(sim.dom0.name())?;
    // The seed config, with the vifs in TC as xen-netback needs (no native XDP there).
    let cfg = Mode::VifsTc.config(sim.dom0.name(), "")?;
    println!(
        "  config: {} with attach = \"tc\" on the vifs",
        workspace_root().join(SEED_CONFIG).display()
    );
    let agent = Agent::start(&sim.dom0, &cfg, &fs.pin_dir());
    let _ = std::fs::remove_file(&cfg);
    let agent = agent?;
    println!("  xennet-agent running in {}", sim.dom0.name());

    let mut failures = forwarding(&sim)?;
    listings(agent_bin, &sim, &fs, &agent)?;

    // The datapath outlives the agent; `stop` sends SIGTERM, then `xennet-agent down`.
    section("stopping the agent, removing the datapath (`xennet-agent down`) and the namespaces");
    if !agent.stop()? {
        failures.push("the agent did not exit cleanly");
    }
    drop(sim);
    drop(fs);
    if failures.is_empty() {
        println!("demo ok");
        Ok(())
    } else {
        bail!("demo saw problems: {}", failures.join("; "))
    }
}

/// The forwarding steps between the guests and upstream; what went wrong, if anything.
fn forwarding(sim: &SeedDom0) -> anyhow::Result<Vec<&'static str>> {
    let g: Vec<_> = ["vif1.0", "vif2.0", "vif3.0"]
        .iter()
        .map(|v| sim.guest_socket(v))
        .collect::<anyhow::Result<_>>()?;
    let up = sim.upstream_socket()?;
    let mac = |i: usize| -> Mac { sim.guests[i].mac };
    let everyone = [
        ("guest1", &g[0]),
        ("guest2", &g[1]),
        ("guest3", &g[2]),
        ("upstream", &up),
    ];
    let mut failures = Vec::new();

    section("ping guest1 → guest2 (both VLAN 4094)");
    let out = sim.guests[0]
        .ns
        .exec(&["ping", "-c", "3", "-i", "0.2", "-W", "1", "10.94.0.2"])?;
    for l in String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("bytes from") || l.contains("packet loss"))
    {
        println!("   {l}");
    }
    if !out.status.success() {
        failures.push("guest1 could not ping guest2");
    }

    section("guest1 → upstream router: leaves the trunk tagged 4094");
    let a = send_and_report(&g[0], &test_frame(UPSTREAM_MAC, mac(0), &[], 1), &everyone)?;
    if a != ["upstream"] {
        failures.push("guest1's frame did not reach upstream alone");
    }

    section("upstream, tagged 4093 → guest3: arrives untagged");
    let f = test_frame(
        mac(2),
        UPSTREAM_MAC,
        &[(ETH_P_8021Q, tci(0, false, 4093))],
        2,
    );
    let a = send_and_report(&up, &f, &everyone)?;
    if a != ["guest3"] {
        failures.push("upstream's VLAN 4093 frame did not reach guest3 alone");
    }

    section("upstream, tagged 4094 → guest3's MAC (guest3 is on 4093): flooded in 4094 only");
    let f = test_frame(
        mac(2),
        UPSTREAM_MAC,
        &[(ETH_P_8021Q, tci(0, false, 4094))],
        3,
    );
    let a = send_and_report(&up, &f, &everyone)?;
    if a != ["guest1", "guest2"] {
        failures.push("a VLAN 4094 frame was not kept inside VLAN 4094");
    }

    section("guest1 → guest3's MAC (other VLAN): unknown in 4094, never reaches guest3");
    let a = send_and_report(&g[0], &test_frame(mac(2), mac(0), &[], 4), &everyone)?;
    if a != ["guest2", "upstream"] {
        failures.push("guest1's frame was not kept inside VLAN 4094");
    }

    section("guest1 sends a tagged frame on its access port: dropped");
    let f = test_frame(mac(1), mac(0), &[(ETH_P_8021Q, tci(0, false, 4094))], 5);
    if !send_and_report(&g[0], &f, &everyone)?.is_empty() {
        failures.push("a tagged frame from an access port was forwarded");
    }
    Ok(failures)
}

/// The agent's counters, ports and FDB, as its CLI shows them.
fn listings(agent_bin: &Path, sim: &SeedDom0, fs: &BpfFs, agent: &Agent) -> anyhow::Result<()> {
    section("xennet-agent stats");
    let pins = fs.pin_dir().to_string_lossy().into_owned();
    let out = agent_command(agent_bin, &sim.dom0, &["stats", "--pin-dir", &pins])
        .output()
        .context("running xennet-agent stats")?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    if !out.status.success() {
        bail!("stats failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    for (title, args) in [
        ("xennet-agent ports", &["ports"][..]),
        ("xennet-agent fdb show", &["fdb", "show"][..]),
    ] {
        section(title);
        let out = agent.ctl(args).context("running xennet-agent")?;
        print!("{}", String::from_utf8_lossy(&out.stdout));
        if !out.status.success() {
            bail!("{title} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    Ok(())
}
