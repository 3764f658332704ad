//! A [`Snapshot`] as Prometheus metric families: names, help, units and labels.
//!
//! Every counter of [`Stat`] is exported: traffic as `xennet_port_{rx,tx}_{packets,bytes}_total`,
//! outcomes as `xennet_port_{forwarded,flooded}_packets_total`, passes and drops with a
//! `reason` label, learning and other events with an `event` label — a new `Stat` appears in
//! the scrape without a change here.

use std::fmt;

use prometheus_client::{
    encoding::{DescriptorEncoder, EncodeMetric as _},
    metrics::{counter::ConstCounter, gauge::ConstGauge},
    registry::Unit,
};
use xennet_common::stats::{Stat, StatKind};

use super::collect::Snapshot;

type Labels = Vec<(&'static str, String)>;

/// One metric family fed by one or more [`Stat`]s.
struct Family {
    name: &'static str,
    help: &'static str,
    unit: Option<Unit>,
    /// The label telling the stats of the family apart (`reason`, `event`), if any.
    label: Option<&'static str>,
}

/// The family of a counter, and its value of the family's label.
fn family_of(s: Stat) -> (Family, Option<&'static str>) {
    let f = |name, help, unit, label| Family {
        name,
        help,
        unit,
        label,
    };
    let name = s.name();
    match (s, s.kind()) {
        (Stat::RxPackets, _) => (
            f(
                "xennet_port_rx_packets",
                "Frames received on the port.",
                None,
                None,
            ),
            None,
        ),
        (Stat::RxBytes, _) => (
            f(
                "xennet_port_rx",
                "Bytes received on the port.",
                Some(Unit::Bytes),
                None,
            ),
            None,
        ),
        (Stat::TxPackets, _) => (
            f(
                "xennet_port_tx_packets",
                "Frames sent out of the port by the datapath.",
                None,
                None,
            ),
            None,
        ),
        (Stat::TxBytes, _) => (
            f(
                "xennet_port_tx",
                "Bytes sent out of the port by the datapath.",
                Some(Unit::Bytes),
                None,
            ),
            None,
        ),
        (Stat::Forward, _) => (
            f(
                "xennet_port_forwarded_packets",
                "Known unicast frames received on the port and forwarded to one port.",
                None,
                None,
            ),
            None,
        ),
        (Stat::Flood, _) => (
            f(
                "xennet_port_flooded_packets",
                "Broadcast, multicast and unknown unicast frames received on the port and flooded.",
                None,
                None,
            ),
            None,
        ),
        (_, StatKind::Pass) => (
            f(
                "xennet_port_passed_packets",
                "Frames received on the port and handed to the host stack, by reason.",
                None,
                Some("reason"),
            ),
            Some(name.trim_start_matches("pass_")),
        ),
        (_, StatKind::Drop) => (
            f(
                "xennet_port_dropped_packets",
                "Frames received on the port and dropped, by reason.",
                None,
                Some("reason"),
            ),
            Some(name.trim_start_matches("drop_")),
        ),
        (_, StatKind::Learning) => (
            f(
                "xennet_port_learning_events",
                "Learning events of source MACs seen on the port.",
                None,
                Some("event"),
            ),
            Some(name.trim_start_matches("learn_")),
        ),
        (_, StatKind::Traffic | StatKind::Outcome | StatKind::Event) => (
            f(
                "xennet_port_events",
                "Other datapath events on the port.",
                None,
                Some("event"),
            ),
            Some(name),
        ),
    }
}

impl Snapshot {
    /// Encode every family of this snapshot.
    pub(super) fn encode(&self, encoder: &mut DescriptorEncoder) -> Result<(), fmt::Error> {
        self.encode_agent(encoder)?;
        self.encode_ports(encoder)?;
        self.encode_vlans(encoder)?;
        self.encode_fdb(encoder)
    }

    /// `xennet_vlan_{rx,tx}_{packets,bytes}_total{bridge, vlan}`.
    fn encode_vlans(&self, encoder: &mut DescriptorEncoder) -> Result<(), fmt::Error> {
        type Pick = fn(&crate::stats::VlanCounters) -> u64;
        let families: [(&str, &str, Option<Unit>, Pick); 4] = [
            (
                "xennet_vlan_rx_packets",
                "Frames the bridge received in the VLAN (whatever became of them).",
                None,
                |v| v.rx_packets,
            ),
            (
                "xennet_vlan_rx",
                "Bytes the bridge received in the VLAN.",
                Some(Unit::Bytes),
                |v| v.rx_bytes,
            ),
            (
                "xennet_vlan_tx_packets",
                "Frames the datapath sent out of ports in the VLAN (forwards and flood copies).",
                None,
                |v| v.tx_packets,
            ),
            (
                "xennet_vlan_tx",
                "Bytes the datapath sent out of ports in the VLAN.",
                Some(Unit::Bytes),
                |v| v.tx_bytes,
            ),
        ];
        let proto = ConstCounter::new(0u64);
        for (name, help, unit, pick) in families {
            let mut m =
                encoder.encode_descriptor(name, help, unit.as_ref(), proto.metric_type())?;
            for v in &self.vlans {
                let labels: Labels =
                    vec![("bridge", v.bridge.clone()), ("vlan", v.vlan.to_string())];
                ConstCounter::new(pick(v)).encode(m.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }

    fn encode_agent(&self, encoder: &mut DescriptorEncoder) -> Result<(), fmt::Error> {
        let info = ConstGauge::new(1i64);
        let mut m = encoder.encode_descriptor(
            "xennet_agent_info",
            "The running agent: its version.",
            None,
            info.metric_type(),
        )?;
        let labels: Labels = vec![("version", env!("CARGO_PKG_VERSION").to_owned())];
        info.encode(m.encode_family(&labels)?)?;
        let up = ConstGauge::new(i64::from(self.up));
        up.encode(encoder.encode_descriptor(
            "xennet_datapath_up",
            "1 when the datapath's pinned maps could be read at this scrape, else 0.",
            None,
            up.metric_type(),
        )?)?;
        let reloads = ConstCounter::new(self.reloads.0);
        reloads.encode(encoder.encode_descriptor(
            "xennet_reloads",
            "Configuration reloads attempted (SIGHUP or `reload`).",
            None,
            reloads.metric_type(),
        )?)?;
        let failed = ConstCounter::new(self.reloads.1);
        failed.encode(encoder.encode_descriptor(
            "xennet_reload_failures",
            "Configuration reloads that failed (nothing changed or rolled back).",
            None,
            failed.metric_type(),
        )?)?;
        let mut m = encoder.encode_descriptor(
            "xennet_port_info",
            "A port of the datapath: its bridge and the attach mode in effect.",
            None,
            info.metric_type(),
        )?;
        for p in self.ports.iter().filter(|p| !p.attach.is_empty()) {
            let labels: Labels = vec![
                ("port", p.port.clone()),
                ("bridge", p.bridge.clone()),
                ("attach", p.attach.clone()),
            ];
            info.encode(m.encode_family(&labels)?)?;
        }
        Ok(())
    }

    fn encode_ports(&self, encoder: &mut DescriptorEncoder) -> Result<(), fmt::Error> {
        // Families in the order of their first stat, each with all of its stats.
        let mut done: Vec<&'static str> = Vec::new();
        for first in Stat::ALL {
            let (family, _) = family_of(first);
            if done.contains(&family.name) {
                continue;
            }
            done.push(family.name);
            let members: Vec<(Stat, Option<&'static str>)> = Stat::ALL
                .iter()
                .map(|s| (*s, family_of(*s)))
                .filter(|(_, (f, _))| f.name == family.name)
                .map(|(s, (_, value))| (s, value))
                .collect();
            let proto = ConstCounter::new(0u64);
            let mut m = encoder.encode_descriptor(
                family.name,
                family.help,
                family.unit.as_ref(),
                proto.metric_type(),
            )?;
            for p in &self.ports {
                for (s, value) in &members {
                    let mut labels: Labels =
                        vec![("port", p.port.clone()), ("bridge", p.bridge.clone())];
                    if let (Some(key), Some(v)) = (family.label, value) {
                        labels.push((key, (*v).to_owned()));
                    }
                    ConstCounter::new(p.counters[*s as usize]).encode(m.encode_family(&labels)?)?;
                }
            }
        }
        Ok(())
    }

    fn encode_fdb(&self, encoder: &mut DescriptorEncoder) -> Result<(), fmt::Error> {
        let proto = ConstGauge::new(0i64);
        let mut m = encoder.encode_descriptor(
            "xennet_fdb_entries",
            "FDB entries, by bridge and type (static: from the configuration; learned).",
            None,
            proto.metric_type(),
        )?;
        for ((bridge, kind), n) in &self.fdb {
            let labels: Labels = vec![("bridge", bridge.clone()), ("type", (*kind).to_owned())];
            ConstGauge::new(i64::try_from(*n).unwrap_or(i64::MAX))
                .encode(m.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::{collector::Collector, encoding::text::encode, registry::Registry};
    use xennet_common::stats::STAT_COUNT;

    use super::*;
    use crate::metrics::PortRow;

    #[derive(Debug)]
    struct Fixed(Snapshot);

    impl Collector for Fixed {
        fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
            self.0.encode(&mut encoder)
        }
    }

    fn scrape(s: Snapshot) -> String {
        let mut r = Registry::default();
        r.register_collector(Box::new(Fixed(s)));
        let mut out = String::new();
        encode(&mut out, &r).unwrap();
        out
    }

    #[test]
    fn every_counter_of_every_port_is_exported_with_its_labels() {
        let mut counters = [0u64; STAT_COUNT];
        for (i, c) in counters.iter_mut().enumerate() {
            *c = 100 + i as u64;
        }
        let text = scrape(Snapshot {
            up: true,
            ports: vec![PortRow {
                port: "vif1.0".into(),
                bridge: "xenbr0".into(),
                attach: "xdp-generic".into(),
                counters,
            }],
            fdb: [
                (("xenbr0".to_owned(), "learned"), 3),
                (("xenbr0".to_owned(), "static"), 1),
            ]
            .into_iter()
            .collect(),
            reloads: (2, 1),
            vlans: vec![crate::stats::VlanCounters {
                bridge: "xenbr0".into(),
                vlan: 4094,
                rx_packets: 7,
                rx_bytes: 448,
                tx_packets: 5,
                tx_bytes: 300,
            }],
        });
        let has = |line: &str| assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        let l = "port=\"vif1.0\",bridge=\"xenbr0\"";
        has(&format!("xennet_port_rx_packets_total{{{l}}} 100"));
        has(&format!("xennet_port_rx_bytes_total{{{l}}} 101"));
        has(&format!("xennet_port_tx_packets_total{{{l}}} 102"));
        has(&format!("xennet_port_tx_bytes_total{{{l}}} 103"));
        has(&format!("xennet_port_forwarded_packets_total{{{l}}} 104"));
        has(&format!("xennet_port_flooded_packets_total{{{l}}} 105"));
        for s in Stat::ALL {
            let v = 100 + s as u64;
            let line = match s.kind() {
                StatKind::Drop => format!(
                    "xennet_port_dropped_packets_total{{{l},reason=\"{}\"}} {v}",
                    &s.name()[5..]
                ),
                StatKind::Pass => format!(
                    "xennet_port_passed_packets_total{{{l},reason=\"{}\"}} {v}",
                    &s.name()[5..]
                ),
                StatKind::Learning => format!(
                    "xennet_port_learning_events_total{{{l},event=\"{}\"}} {v}",
                    &s.name()[6..]
                ),
                StatKind::Event => {
                    format!("xennet_port_events_total{{{l},event=\"{}\"}} {v}", s.name())
                }
                StatKind::Traffic | StatKind::Outcome => continue,
            };
            has(&line);
        }
        has("xennet_port_info{port=\"vif1.0\",bridge=\"xenbr0\",attach=\"xdp-generic\"} 1");
        has("xennet_fdb_entries{bridge=\"xenbr0\",type=\"learned\"} 3");
        has("xennet_fdb_entries{bridge=\"xenbr0\",type=\"static\"} 1");
        let v = "bridge=\"xenbr0\",vlan=\"4094\"";
        has(&format!("xennet_vlan_rx_packets_total{{{v}}} 7"));
        has(&format!("xennet_vlan_rx_bytes_total{{{v}}} 448"));
        has(&format!("xennet_vlan_tx_packets_total{{{v}}} 5"));
        has(&format!("xennet_vlan_tx_bytes_total{{{v}}} 300"));
        has("# UNIT xennet_vlan_tx_bytes bytes");
        has("xennet_reloads_total 2");
        has("xennet_reload_failures_total 1");
        has("xennet_datapath_up 1");
        has(&format!(
            "xennet_agent_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        ));
        has("# TYPE xennet_port_rx_bytes counter");
        has("# UNIT xennet_port_rx_bytes bytes");
    }
}
