//! Per-port counters of a running datapath, read from its pinned maps, and their rates.

use std::{borrow::Borrow, collections::BTreeMap, ffi::CStr, path::Path};

use anyhow::{Context as _, anyhow};
use aya::maps::{Array, HashMap, Map, MapData, PerCpuArray};
use serde::{Deserialize, Serialize};
use xennet_common::{
    maps::{MAP_PORTS, MAP_STATS, PortConf},
    stats::{PortStats, STAT_COUNT, Stat},
    vstats::{MAP_VSLOTS, MAP_VSTATS, VlanSlots, VlanStats},
};

/// Counters of one port, summed over CPUs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PortCounters {
    /// Interface name in the reader's namespace (or `ifindex N` when it has none there).
    pub interface: String,
    /// Interface index (0 for the "not a port" slot).
    pub ifindex: u32,
    /// Bridge name (the agent knows it), else its id; empty for the "not a port" slot.
    pub bridge: String,
    /// Counter name → value, every counter present.
    pub counters: BTreeMap<String, u64>,
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
    let named = |c: [u64; STAT_COUNT]| -> BTreeMap<String, u64> {
        Stat::ALL
            .iter()
            .map(|s| (s.name().to_owned(), c[*s as usize]))
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
            bridge: conf.bridge.to_string(),
            counters: named(sum(&per_cpu)),
        });
    }
    out.sort_by(|a, b| a.interface.cmp(&b.interface));
    let none = sum(&stats.get(&0, 0).context("reading stats slot 0")?);
    if none.iter().any(|c| *c != 0) {
        out.push(PortCounters {
            interface: "(not a port)".into(),
            ifindex: 0,
            bridge: String::new(),
            counters: named(none),
        });
    }
    Ok(out)
}

/// A human table: traffic per port, then every non-zero pass, drop and learning counter.
#[must_use]
pub fn render(ports: &[PortCounters]) -> String {
    table(ports, "")
}

/// [`render`] of [`rates`]: every column a per-second rate (headers end in `/s`).
#[must_use]
pub fn render_rates(ports: &[PortCounters]) -> String {
    table(ports, "/s")
}

/// The table of [`render`], each column header followed by `unit`.
fn table(ports: &[PortCounters], unit: &str) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let h = |name: &str| format!("{name}{unit}");
    let _ = writeln!(
        s,
        "{:<16} {:<12} {:>12} {:>14} {:>12} {:>14} {:>12} {:>10} {:>10} {:>10}",
        "PORT",
        "BRIDGE",
        h("RX_PKTS"),
        h("RX_BYTES"),
        h("TX_PKTS"),
        h("TX_BYTES"),
        h("FORWARD"),
        h("FLOOD"),
        h("PASS"),
        h("DROP")
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
            "{:<16} {:<12} {:>12} {:>14} {:>12} {:>14} {:>12} {:>10} {:>10} {:>10}",
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
        let _ = writeln!(s, "\npass, drop and learning counters{unit}:");
        s.push_str(&reasons);
    }
    s
}

/// Per-second rates between two readings `secs` apart: every counter of every port present in
/// both, as `(after - before) / secs` (a counter that went back — the agent restarted — as 0).
#[must_use]
pub fn rates(before: &[PortCounters], after: &[PortCounters], secs: f64) -> Vec<PortCounters> {
    after
        .iter()
        .map(|a| {
            let b = before
                .iter()
                .find(|b| b.ifindex == a.ifindex && b.interface == a.interface);
            let counters = a
                .counters
                .iter()
                .map(|(k, v)| {
                    let was = b.and_then(|b| b.counters.get(k)).copied().unwrap_or(*v);
                    #[expect(
                        clippy::cast_precision_loss,
                        clippy::cast_possible_truncation,
                        clippy::cast_sign_loss,
                        reason = "a per-second rate, rounded"
                    )]
                    let rate = (v.saturating_sub(was) as f64 / secs).round() as u64;
                    (k.clone(), rate)
                })
                .collect();
            PortCounters {
                counters,
                ..a.clone()
            }
        })
        .collect()
}

/// Look a port up by interface name.
pub fn find<'a>(ports: &'a [PortCounters], interface: &str) -> anyhow::Result<&'a PortCounters> {
    ports
        .iter()
        .find(|p| p.interface == interface)
        .ok_or_else(|| anyhow!("no port {interface}"))
}

/// Counters of one VLAN of one bridge, summed over CPUs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VlanCounters {
    /// Bridge name (its id when the name is not known).
    pub bridge: String,
    /// VLAN id.
    pub vlan: u16,
    /// Frames received in this VLAN (whatever became of them).
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames sent out of ports in this VLAN (forwards and flood copies).
    pub tx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
}

/// Every {bridge, VLAN}'s counters from the maps pinned under `pin_dir` (the VLANs that carried
/// traffic: a slot whose counters are all zero is left out, so that the labels stay few),
/// sorted by bridge name and VLAN; `names` gives bridge names by id (an id without one is
/// printed as is).
pub fn read_vlans(
    pin_dir: &Path,
    names: &BTreeMap<u32, String>,
) -> anyhow::Result<Vec<VlanCounters>> {
    let rows: Array<MapData, VlanSlots> =
        Array::try_from(open(pin_dir, MAP_VSLOTS)?).context("XN_VSLOTS type")?;
    let slots = crate::datapath::vslots::read(&rows)?;
    let map: PerCpuArray<MapData, VlanStats> =
        PerCpuArray::try_from(open(pin_dir, MAP_VSTATS)?).context("XN_VSTATS type")?;
    let mut out = Vec::new();
    for ((bridge, vlan), slot) in slots {
        let per_cpu = map
            .get(&u32::from(slot), 0)
            .with_context(|| format!("reading {MAP_VSTATS}[{slot}]"))?;
        let total = per_cpu.iter().fold(VlanStats::default(), |a, b| a.plus(*b));
        if total == VlanStats::default() {
            continue;
        }
        out.push(VlanCounters {
            bridge: names
                .get(&bridge)
                .cloned()
                .unwrap_or_else(|| bridge.to_string()),
            vlan,
            rx_packets: total.rx_packets,
            rx_bytes: total.rx_bytes,
            tx_packets: total.tx_packets,
            tx_bytes: total.tx_bytes,
        });
    }
    out.sort_by(|a, b| (&a.bridge, a.vlan).cmp(&(&b.bridge, b.vlan)));
    Ok(out)
}

/// A human table of [`read_vlans`].
#[must_use]
pub fn render_vlans(vlans: &[VlanCounters]) -> String {
    use std::fmt::Write as _;
    let mut s = format!(
        "{:<12} {:>5} {:>12} {:>14} {:>12} {:>14}\n",
        "BRIDGE", "VLAN", "RX_PKTS", "RX_BYTES", "TX_PKTS", "TX_BYTES"
    );
    for v in vlans {
        let _ = writeln!(
            s,
            "{:<12} {:>5} {:>12} {:>14} {:>12} {:>14}",
            v.bridge, v.vlan, v.rx_packets, v.rx_bytes, v.tx_packets, v.tx_bytes
        );
    }
    s
}
