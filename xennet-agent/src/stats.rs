//! Per-port counters of a running datapath, read from its pinned maps.

use std::{borrow::Borrow, collections::BTreeMap, ffi::CStr, path::Path};

use anyhow::{Context as _, anyhow};
use aya::maps::{HashMap, Map, MapData, PerCpuArray};
use serde::Serialize;
use xennet_common::{
    maps::{MAP_PORTS, MAP_STATS, PortConf},
    stats::{PortStats, STAT_COUNT, Stat},
};

/// Counters of one port, summed over CPUs.
#[derive(Clone, Debug, Serialize)]
pub struct PortCounters {
    /// Interface name in this namespace (or `ifindex N` when it has none here).
    pub interface: String,
    /// Interface index (0 for the "not a port" slot).
    pub ifindex: u32,
    /// Bridge id (0 for the "not a port" slot).
    pub bridge: u32,
    /// Counter name → value, every counter present.
    pub counters: BTreeMap<&'static str, u64>,
}

impl PortCounters {
    /// Value of one counter.
    #[must_use]
    pub fn get(&self, s: Stat) -> u64 {
        self.counters.get(s.name()).copied().unwrap_or(0)
    }
}

/// The name of interface `ifindex` in this namespace, or `ifindex N`.
#[must_use]
pub fn ifname(ifindex: u32) -> String {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: buf has IF_NAMESIZE bytes as required.
    let p = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) };
    if p.is_null() {
        return format!("ifindex {ifindex}");
    }
    // SAFETY: if_indextoname wrote a NUL-terminated name into buf.
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

fn open(pin_dir: &Path, name: &str) -> anyhow::Result<Map> {
    let path = pin_dir.join(name);
    let data = MapData::from_pin(&path).with_context(|| {
        format!(
            "opening {} (is xennet-agent running with this pin_dir?)",
            path.display()
        )
    })?;
    Map::from_map_data(data).with_context(|| format!("map {name}"))
}

fn sum(values: &[PortStats]) -> [u64; STAT_COUNT] {
    let mut total = [0u64; STAT_COUNT];
    for v in values {
        for (t, c) in total.iter_mut().zip(v.c.iter()) {
            *t = t.wrapping_add(*c);
        }
    }
    total
}

/// Read every port's counters from the maps pinned under `pin_dir`.
pub fn read(pin_dir: &Path) -> anyhow::Result<Vec<PortCounters>> {
    let ports: HashMap<MapData, u32, PortConf> =
        HashMap::try_from(open(pin_dir, MAP_PORTS)?).context("XN_PORTS type")?;
    let stats: PerCpuArray<MapData, PortStats> =
        PerCpuArray::try_from(open(pin_dir, MAP_STATS)?).context("XN_STATS type")?;
    collect(&ports, &stats)
}

/// Every port's counters, sorted by interface name; the "not a port" slot comes last and only
/// when it counted something. Interface names are those of the calling thread's namespace.
pub fn collect<P, S>(
    ports: &HashMap<P, u32, PortConf>,
    stats: &PerCpuArray<S, PortStats>,
) -> anyhow::Result<Vec<PortCounters>>
where
    P: Borrow<MapData>,
    S: Borrow<MapData>,
{
    let named = |c: [u64; STAT_COUNT]| -> BTreeMap<&'static str, u64> {
        Stat::ALL
            .iter()
            .map(|s| (s.name(), c[*s as usize]))
            .collect()
    };
    let mut out = Vec::new();
    for item in ports {
        let (ifindex, conf) = item.context("iterating XN_PORTS")?;
        let per_cpu = stats
            .get(&conf.slot, 0)
            .with_context(|| format!("reading stats slot {}", conf.slot))?;
        out.push(PortCounters {
            interface: ifname(ifindex),
            ifindex,
            bridge: conf.bridge,
            counters: named(sum(&per_cpu)),
        });
    }
    out.sort_by(|a, b| a.interface.cmp(&b.interface));
    let none = sum(&stats.get(&0, 0).context("reading stats slot 0")?);
    if none.iter().any(|c| *c != 0) {
        out.push(PortCounters {
            interface: "(not a port)".into(),
            ifindex: 0,
            bridge: 0,
            counters: named(none),
        });
    }
    Ok(out)
}

/// A human table: traffic per port, then every non-zero pass, drop and learning counter.
#[must_use]
pub fn render(ports: &[PortCounters]) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<16} {:>7} {:>12} {:>14} {:>12} {:>14} {:>12} {:>10} {:>10} {:>10}",
        "PORT",
        "BRIDGE",
        "RX_PKTS",
        "RX_BYTES",
        "TX_PKTS",
        "TX_BYTES",
        "FORWARD",
        "FLOOD",
        "PASS",
        "DROP"
    );
    for p in ports {
        let pass: u64 = [Stat::PassLinkLocal, Stat::PassNotPort]
            .iter()
            .map(|x| p.get(*x))
            .sum();
        let drop: u64 = Stat::ALL
            .iter()
            .filter(|x| x.is_drop())
            .map(|x| p.get(*x))
            .sum();
        let _ = writeln!(
            s,
            "{:<16} {:>7} {:>12} {:>14} {:>12} {:>14} {:>12} {:>10} {:>10} {:>10}",
            p.interface,
            p.bridge,
            p.get(Stat::RxPackets),
            p.get(Stat::RxBytes),
            p.get(Stat::TxPackets),
            p.get(Stat::TxBytes),
            p.get(Stat::Forward),
            p.get(Stat::Flood),
            pass,
            drop
        );
    }
    let mut reasons = String::new();
    for p in ports {
        for st in Stat::ALL.iter().skip(Stat::PassLinkLocal as usize) {
            let v = p.get(*st);
            if v != 0 {
                let _ = writeln!(reasons, "  {:<16} {:<24} {v}", p.interface, st.name());
            }
        }
    }
    if !reasons.is_empty() {
        s.push_str("\npass, drop and learning counters:\n");
        s.push_str(&reasons);
    }
    s
}

/// Look a port up by interface name.
pub fn find<'a>(ports: &'a [PortCounters], interface: &str) -> anyhow::Result<&'a PortCounters> {
    ports
        .iter()
        .find(|p| p.interface == interface)
        .ok_or_else(|| anyhow!("no port {interface}"))
}
