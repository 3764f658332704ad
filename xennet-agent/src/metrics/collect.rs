//! The collector behind `/metrics`: at each scrape, reads the per-CPU counters and the FDB from
//! the pinned maps and the ports (names, bridges, attach modes) from the agent's control socket,
//! and encodes them with prometheus-client.

use std::{
    collections::BTreeMap,
    fmt,
    io::{BufRead as _, BufReader, Write as _},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context as _;
use aya::maps::{HashMap, Map, MapData};
use prometheus_client::{collector::Collector, encoding::DescriptorEncoder};
use tracing::warn;
use xennet_common::{
    maps::{FDB_STATIC, FdbKey, FdbVal, MAP_FDB},
    stats::{STAT_COUNT, Stat},
};

use crate::stats::{self, PortCounters};

/// How long a scrape waits for the agent's list of ports.
const PORTS_TIMEOUT: Duration = Duration::from_secs(2);
/// `port` label of the counters of frames that arrived on no configured port.
const NOT_A_PORT: &str = "not_a_port";

/// One port's counters and labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRow {
    /// Interface name.
    pub port: String,
    /// Bridge name (the bridge id when the agent did not say).
    pub bridge: String,
    /// Attach mode in effect (`xdp`, `xdp-generic`, `tc`); empty when unknown.
    pub attach: String,
    /// Counters, indexed by [`Stat`].
    pub counters: [u64; STAT_COUNT],
}

/// Everything one scrape exports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Whether the datapath's maps could be read.
    pub up: bool,
    /// Per port, sorted by name; the "not a port" row last.
    pub ports: Vec<PortRow>,
    /// (bridge, `static` or `learned`) → FDB entries.
    pub fdb: BTreeMap<(String, &'static str), u64>,
    /// Reloads and failed reloads.
    pub reloads: (u64, u64),
    /// Per {bridge, VLAN} counters.
    pub vlans: Vec<stats::VlanCounters>,
}

/// Reads the datapath pinned under `pin_dir` at each scrape; asks the agent at `socket` for
/// bridge names and attach modes.
#[derive(Debug)]
pub struct DatapathCollector {
    pin_dir: PathBuf,
    socket: PathBuf,
}

impl DatapathCollector {
    #[must_use]
    pub fn new(pin_dir: PathBuf, socket: PathBuf) -> Self {
        DatapathCollector { pin_dir, socket }
    }
}

impl Collector for DatapathCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let snapshot = Snapshot::read(&self.pin_dir, &self.socket);
        snapshot.encode(&mut encoder)
    }
}

/// What the agent says about one port (the `ports` control request).
#[derive(serde::Deserialize)]
struct AgentPort {
    bridge: String,
    ifindex: u32,
    attached: String,
}

/// The agent's ports, asked over its control socket with a short timeout.
fn agent_ports(socket: &Path) -> anyhow::Result<Vec<AgentPort>> {
    let mut s = UnixStream::connect(socket)
        .with_context(|| format!("connecting to {}", socket.display()))?;
    s.set_read_timeout(Some(PORTS_TIMEOUT))
        .context("socket timeout")?;
    s.set_write_timeout(Some(PORTS_TIMEOUT))
        .context("socket timeout")?;
    s.write_all(b"{\"cmd\":\"ports\"}\n")
        .context("asking for the ports")?;
    let mut line = String::new();
    BufReader::new(&s)
        .read_line(&mut line)
        .context("reading the ports")?;
    let r: crate::control::Response =
        serde_json::from_str(line.trim()).context("decoding the answer")?;
    let data = r
        .data
        .with_context(|| r.error.unwrap_or_else(|| "no data".to_owned()))?;
    serde_json::from_value(data).context("decoding the ports")
}

fn fdb_counts(pin_dir: &Path) -> anyhow::Result<BTreeMap<(u32, bool), u64>> {
    let path = pin_dir.join(MAP_FDB);
    let data = MapData::from_pin(&path).with_context(|| format!("opening {}", path.display()))?;
    let map = Map::from_map_data(data).context("XN_FDB")?;
    let fdb: HashMap<MapData, FdbKey, FdbVal> = HashMap::try_from(map).context("XN_FDB type")?;
    let mut counts = BTreeMap::new();
    for item in &fdb {
        // An entry deleted while we iterate ends the walk early; the next scrape counts again.
        let Ok((key, val)) = item else { break };
        *counts
            .entry((key.bridge, val.flags & FDB_STATIC != 0))
            .or_insert(0) += 1;
    }
    Ok(counts)
}

impl Snapshot {
    /// Read everything; a part that cannot be read is logged and left out.
    #[must_use]
    pub fn read(pin_dir: &Path, socket: &Path) -> Snapshot {
        let agent = agent_ports(socket).unwrap_or_else(|e| {
            warn!(error = %format!("{e:#}"), "metrics: no port list from the agent");
            Vec::new()
        });
        let counters = match stats::read(pin_dir) {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %format!("{e:#}"), "metrics: reading the counters");
                return Snapshot {
                    reloads: super::reloads(),
                    ..Snapshot::default()
                };
            }
        };
        let fdb = fdb_counts(pin_dir).unwrap_or_else(|e| {
            warn!(error = %format!("{e:#}"), "metrics: reading the FDB");
            BTreeMap::new()
        });
        let (mut snap, names) = Snapshot::assemble(&counters, &agent, &fdb);
        snap.vlans = stats::read_vlans(pin_dir, &names).unwrap_or_else(|e| {
            warn!(error = %format!("{e:#}"), "metrics: reading the per-VLAN counters");
            Vec::new()
        });
        snap
    }

    fn assemble(
        counters: &[PortCounters],
        agent: &[AgentPort],
        fdb: &BTreeMap<(u32, bool), u64>,
    ) -> (Snapshot, BTreeMap<u32, String>) {
        let mut bridge_names: BTreeMap<u32, String> = BTreeMap::new();
        let mut ports = Vec::with_capacity(counters.len());
        for c in counters {
            let known = agent
                .iter()
                .find(|p| p.ifindex == c.ifindex && c.ifindex != 0);
            // The pinned maps name a bridge by its id; the agent knows its name.
            if let (Some(p), Ok(id)) = (known, c.bridge.parse::<u32>()) {
                bridge_names.insert(id, p.bridge.clone());
            }
            let mut values = [0u64; STAT_COUNT];
            for s in Stat::ALL {
                values[s as usize] = c.get(s);
            }
            ports.push(PortRow {
                port: if c.ifindex == 0 {
                    NOT_A_PORT.to_owned()
                } else {
                    c.interface.clone()
                },
                bridge: if c.ifindex == 0 {
                    String::new()
                } else {
                    known.map_or_else(|| c.bridge.clone(), |p| p.bridge.clone())
                },
                attach: known.map(|p| p.attached.clone()).unwrap_or_default(),
                counters: values,
            });
        }
        let name = |id: u32| {
            bridge_names
                .get(&id)
                .cloned()
                .unwrap_or_else(|| id.to_string())
        };
        let mut fdb_out = BTreeMap::new();
        for id in bridge_names.keys() {
            fdb_out.insert((name(*id), "static"), 0);
            fdb_out.insert((name(*id), "learned"), 0);
        }
        for ((id, is_static), n) in fdb {
            let kind = if *is_static { "static" } else { "learned" };
            *fdb_out.entry((name(*id), kind)).or_insert(0) += n;
        }
        let snap = Snapshot {
            up: true,
            ports,
            fdb: fdb_out,
            reloads: super::reloads(),
            vlans: Vec::new(),
        };
        (snap, bridge_names)
    }
}
