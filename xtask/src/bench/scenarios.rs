//! The scenarios: their ids, titles and traffic, and the alternating rounds of the frame-rate
//! scenarios (64 B unicast, tagged uplink, large frames, flood).

use std::collections::BTreeMap;

use anyhow::Result;
use xennet_tests::frame::BROADCAST;

use super::{
    Setting,
    args::BenchArgs,
    cpu::Placement,
    interrupted, log,
    paths::{Active, PathKind},
    report::{Sample, Scenario, Unit},
    topo::{self, Topo},
    traffic::{BenchObj, CEIL, CEIL_BC, GenConf},
    udp,
    window::Window,
};

pub const SCN_U64: &str = "u64";
pub const SCN_TAG: &str = "u64-tagged";
pub const SCN_LARGE: &str = "large";
pub const SCN_FLOOD: &str = "flood";
pub const SCN_FDB_SMALL: &str = "fdb-1k";
pub const SCN_FDB_BIG: &str = "fdb-big";
pub const SCN_TCP: &str = "tcp";
pub const SCN_TCP_NOCSUM: &str = "tcp-nocsum";
pub const SCN_RTT: &str = "rtt";

/// Every scenario, in the order of the report.
pub fn scenarios(args: &BenchArgs) -> Vec<Scenario> {
    vec![
        Scenario {
            id: SCN_U64,
            title: "64 B known unicast (60 B + FCS, untagged access → access)".into(),
            unit: Unit::Pps,
        },
        Scenario {
            id: SCN_TAG,
            title: format!(
                "64 B tagged uplink → access port (VLAN {}, tag popped)",
                topo::TAG_VLAN
            ),
            unit: Unit::Pps,
        },
        Scenario {
            id: SCN_LARGE,
            title: format!("{} B known unicast (1500 B IP MTU)", args.large),
            unit: Unit::Pps,
        },
        Scenario {
            id: SCN_FLOOD,
            title: format!(
                "64 B broadcast flooded to {} ports (copies delivered)",
                args.flood_ports
            ),
            unit: Unit::Pps,
        },
        Scenario {
            id: SCN_FDB_SMALL,
            title: format!(
                "64 B unicast to {} destinations, FDB of {} entries (bench-loaded xennet_xdp)",
                args.fdb_hot, args.fdb_hot
            ),
            unit: Unit::Pps,
        },
        Scenario {
            id: SCN_FDB_BIG,
            title: format!(
                "64 B unicast to {} destinations, FDB of {} entries (bench-loaded xennet_xdp)",
                args.fdb_hot, args.fdb_entries
            ),
            unit: Unit::Pps,
        },
        Scenario {
            id: SCN_TCP,
            title: "TCP bulk guest → guest, default offloads (iperf3, 1 stream)".into(),
            unit: Unit::Bps,
        },
        Scenario {
            id: SCN_TCP_NOCSUM,
            title: "TCP bulk guest → guest, guests' tx checksum offload off (iperf3, 1 stream)"
                .into(),
            unit: Unit::Bps,
        },
        Scenario {
            id: SCN_RTT,
            title: "ping RTT guest → guest (median, idle)".into(),
            unit: Unit::Micros,
        },
    ]
}

/// Frames and generator settings of one scenario.
pub struct Traffic {
    pub frame: Vec<u8>,
    pub conf: GenConf,
}

/// The traffic of every generated scenario.
pub struct Traffics {
    /// 64 B known unicast (also the ladder's and the in-situ profile's frame).
    pub small: Traffic,
    pub tagged: Traffic,
    pub large: Traffic,
    pub flood: Traffic,
    /// 64 B unicast cycling through `--fdb-hot` destinations.
    pub fdb: Traffic,
}

impl Traffics {
    pub fn new(args: &BenchArgs) -> Traffics {
        let src = topo::GEN_SRC;
        Traffics {
            small: Traffic {
                frame: udp::udp_frame(60, topo::sink_mac(1), src, None),
                conf: conf(topo::sink_mac(1), 1, args.flows, None),
            },
            tagged: Traffic {
                frame: udp::udp_frame(64, topo::sink_mac(0), src, Some(topo::TAG_VLAN)),
                conf: conf(topo::sink_mac(0), 1, args.flows, Some(topo::TAG_VLAN)),
            },
            large: Traffic {
                frame: udp::udp_frame(args.large, topo::sink_mac(1), src, None),
                conf: conf(topo::sink_mac(1), 1, args.flows, None),
            },
            flood: Traffic {
                frame: udp::udp_frame(60, BROADCAST, src, None),
                conf: conf(BROADCAST, 1, args.flows, None),
            },
            fdb: Traffic {
                frame: udp::udp_frame(60, topo::FDB_DST, src, None),
                conf: conf(topo::FDB_DST, args.fdb_hot, args.flows, None),
            },
        }
    }
}

fn conf(dst: [u8; 6], dst_n: u32, flows: u16, vlan: Option<u16>) -> GenConf {
    GenConf {
        dst,
        src: topo::GEN_SRC,
        dst_mask: dst_n.saturating_sub(1),
        src_mask: u32::from(flows.saturating_sub(1)),
        tci: vlan.map_or(0, u32::from),
        flags: 0,
    }
}

/// The null path's name in the report: no DUT in between (frame rates: the generator
/// straight into a sink; RTT: the guests joined by one veth pair).
pub const NO_DUT: &str = "no-dut";

/// CPU time per generated frame of a null-path window (`--placement one-cpu`: generating,
/// receiving and dropping a frame, all in the generator thread).
#[must_use]
pub fn null_ns(w: &Window) -> Option<f64> {
    (w.offered_pps > 0.0).then(|| w.gen_busy * 1e9 / w.offered_pps)
}

/// Measure one null-path window of `tr` when everything runs on one CPU (the DUT's CPU time
/// per frame is then the rest of the frame's cost); its sample goes to `samples`.
pub fn null_window(
    cfg: &Setting,
    t: &Topo,
    obj: &mut BenchObj,
    scn: &'static str,
    round: usize,
    tr: &Traffic,
    samples: &mut Vec<Sample>,
) -> Result<Option<f64>> {
    if cfg.args.placement != Placement::OneCpu {
        return Ok(None);
    }
    let w = cfg.window(t, obj, t.null_if, tr)?;
    samples.push(sample(scn, NO_DUT, round, &w, Unit::Pps, cfg, None));
    Ok(null_ns(&w))
}

/// Per-frame costs of a window with everything on one CPU.
#[derive(Debug, PartialEq)]
pub struct OneCpuCosts {
    /// Generator thread run time per delivered frame: generator, DUT and sinks.
    pub all_ns: f64,
    /// The DUT's part: `all_ns` less what generating and sinking the offered frames cost in
    /// the null path (`null` ns per generated frame).
    pub dut_ns: Option<f64>,
    /// The generator's and sinks' share of the CPU time.
    pub gen_sink_share: Option<f64>,
}

/// Split a one-CPU window's run time into the generator's and sinks' part (the null path's
/// cost per generated frame, `null`) and the DUT's, per delivered frame (flood: per copy).
#[must_use]
pub fn one_cpu_costs(w: &Window, null: Option<f64>) -> OneCpuCosts {
    let all = w.gen_busy * 1e9;
    let gen_sink = null.map(|n| n * w.offered_pps);
    OneCpuCosts {
        all_ns: all / w.pps,
        dut_ns: gen_sink.map(|g| (all - g).max(0.0) / w.pps),
        gen_sink_share: gen_sink.filter(|_| all > 0.0).map(|g| (g / all).min(1.0)),
    }
}

/// One window as a sample of `scenario` on `path`, with its secondary values; `null` is the
/// null path's CPU time per frame in the same round (`--placement one-cpu`).
pub fn sample(
    scenario: &'static str,
    path: &str,
    round: usize,
    w: &Window,
    unit: Unit,
    cfg: &Setting,
    null: Option<f64>,
) -> Sample {
    let mut extra = BTreeMap::new();
    extra.insert("offered_mpps".into(), w.offered_pps / 1e6);
    if w.offered_pps > 0.0 {
        extra.insert("delivered_share".into(), w.pps / w.offered_pps);
    }
    if w.pps > 0.0 {
        if cfg.args.placement == Placement::OneCpu {
            // Generator, DUT and sinks all ran in the generator thread: its run time per
            // frame is what a frame costs the one CPU; the DUT's part is what generating and
            // sinking the frames (the null path) did not cost.
            let c = one_cpu_costs(w, null);
            extra.insert("cpu_ns".into(), c.all_ns);
            if let Some((dut, share)) = c.dut_ns.zip(c.gen_sink_share) {
                extra.insert("dut_ns".into(), dut);
                extra.insert("gen_sink_share".into(), share);
            }
        } else {
            // DUT CPU time per forwarded frame (flood: per delivered copy): the DUT's NAPI
            // thread's run time when known, else the busy share of its CPU.
            let busy = if w.dut_busy > 0.0 {
                Some(w.dut_busy)
            } else {
                w.cpu_busy.get(cfg.dut_cpu).copied()
            };
            if let Some(b) = busy {
                extra.insert("dut_ns".into(), b * 1e9 / w.pps);
            }
        }
        extra.insert("ipi_per_kframe".into(), w.ipi_ps * 1e3 / w.pps);
    }
    extra.insert("gen_busy".into(), w.gen_busy);
    extra.insert("dut_busy".into(), w.dut_busy);
    extra.insert("lost_in_mpps".into(), w.lost_in_pps / 1e6);
    extra.insert("lost_out_mpps".into(), w.lost_out_pps / 1e6);
    if scenario == SCN_LARGE {
        extra.insert("gbps".into(), w.bps / 1e9);
    }
    extra.insert("foreign_cpu".into(), w.foreign_cpu);
    for (i, b) in w.cpu_busy.iter().enumerate() {
        extra.insert(format!("cpu{i}_busy"), *b);
    }
    Sample {
        scenario,
        path: path.to_string(),
        round,
        value: match unit {
            Unit::Bps => w.bps,
            _ => w.pps,
        },
        extra,
    }
}

/// The ceiling's maps: unicast pairs by ingress (`tagged`: to the tagged-uplink egress), flood
/// group. Nothing without a ceiling path (`ceil_k`).
pub fn ceiling_maps(
    obj: &mut BenchObj,
    t: &Topo,
    ceil_k: Option<usize>,
    tagged: bool,
) -> Result<()> {
    let Some(k) = ceil_k else { return Ok(()) };
    let d = &t.duts[k];
    let (xb0, xv1, xv2) = (d.idx("xb0")?, d.idx("xv1")?, d.idx("xv2")?);
    let out = d.idx(if tagged { "xbt" } else { "xb1" })?;
    let mut all = vec![xb0];
    for i in 1..=d.ports {
        all.push(d.idx(&format!("xb{i}"))?);
    }
    obj.set_ceiling(&d.ns, &[(xb0, out), (xv1, xv2), (xv2, xv1)], &all)
}

/// The TC ceiling's egress for xb0 (`tagged`: the tagged-uplink egress), where it runs.
fn tc_ceiling_egress(
    obj: &mut BenchObj,
    t: &Topo,
    actives: &[Option<Active>],
    tagged: bool,
) -> Result<()> {
    for (k, a) in actives.iter().enumerate() {
        if let Some(Active::TcCeiling { .. }) = a {
            let d = &t.duts[k];
            let out = d.idx(if tagged { "xbt" } else { "xb1" })?;
            obj.set_tc_ceiling(&d.ns, &[(d.idx("xb0")?, out)])?;
        }
    }
    Ok(())
}

/// Attach `prog` as the ceiling's program on xb0 in place of the one there.
fn ceiling_prog(
    obj: &mut BenchObj,
    t: &Topo,
    ceil_k: Option<usize>,
    actives: &mut [Option<Active>],
    prog: &str,
) -> Result<()> {
    if let Some(k) = ceil_k {
        if let Some(Active::Ceiling { links }) = &mut actives[k] {
            obj.detach(links.remove(0))?;
            links.insert(0, obj.attach(&t.duts[k].ns, prog, "xb0")?);
        }
    }
    Ok(())
}

/// The frame-rate scenarios: per scenario, rounds of every path (`paths`: DUT index and kind)
/// in rotating order, so that the paths compared in a scenario are measured minutes apart at
/// most.
pub fn rate_rounds(
    cfg: &Setting,
    t: &Topo,
    tr: &Traffics,
    paths: &[(usize, PathKind)],
    ceil_k: Option<usize>,
    obj: &mut BenchObj,
    actives: &mut [Option<Active>],
) -> Result<Vec<Sample>> {
    let mut samples = Vec::new();
    let pps: [(&'static str, &Traffic); 4] = [
        (SCN_U64, &tr.small),
        (SCN_TAG, &tr.tagged),
        (SCN_LARGE, &tr.large),
        (SCN_FLOOD, &tr.flood),
    ];
    for (scn, tr) in pps {
        if !cfg.args.wants(scn) {
            continue;
        }
        let scn_paths: Vec<(usize, PathKind)> = paths
            .iter()
            .copied()
            .filter(|(_, k)| scn != SCN_TAG || k.vlan_aware())
            .filter(|(_, k)| scn != SCN_FLOOD || *k != PathKind::TcCeiling)
            .collect();
        if scn_paths.is_empty() {
            continue;
        }
        // Per-scenario state of the ceiling: the tagged scenario's egress, the flood program.
        if scn == SCN_TAG {
            ceiling_maps(obj, t, ceil_k, true)?;
            tc_ceiling_egress(obj, t, actives, true)?;
        }
        if scn == SCN_FLOOD {
            ceiling_prog(obj, t, ceil_k, actives, CEIL_BC)?;
            cfg.place_napi(t)?;
        }
        for round in 0..cfg.p.rounds {
            let mut order = scn_paths.clone();
            let n = order.len();
            order.rotate_left(round % n);
            log(&format!(
                "{scn}: round {}/{} ({})",
                round + 1,
                cfg.p.rounds,
                order
                    .iter()
                    .map(|(_, k)| k.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            let null = null_window(cfg, t, obj, scn, round, tr, &mut samples)?;
            for (k, kind) in order {
                interrupted()?;
                let w = cfg.window(t, obj, t.duts[k].gen_if, tr)?;
                samples.push(sample(scn, kind.name(), round, &w, Unit::Pps, cfg, null));
            }
        }
        if scn == SCN_TAG {
            ceiling_maps(obj, t, ceil_k, false)?;
            tc_ceiling_egress(obj, t, actives, false)?;
        }
        if scn == SCN_FLOOD {
            ceiling_prog(obj, t, ceil_k, actives, CEIL)?;
            cfg.place_napi(t)?;
        }
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(pps: f64, offered_pps: f64, gen_busy: f64) -> Window {
        Window {
            pps,
            bps: 0.0,
            offered_pps,
            cpu_busy: vec![1.0, 1.0],
            foreign_cpu: 0.0,
            dut_busy: 0.0,
            lost_in_pps: 0.0,
            lost_out_pps: 0.0,
            gen_busy,
            ipi_ps: 0.0,
        }
    }

    /// The DUT's part of a one-CPU window is what the null path does not explain, per frame
    /// delivered; a flood's copies share the generated frames' null cost.
    #[test]
    fn one_cpu_costs_subtract_the_null_path() {
        // 4 Mpps on a full CPU: 250 ns per frame, of which the null path explains 150.
        let null = window(6_666_666.0, 6_666_666.0, 1.0);
        let n = null_ns(&null).unwrap_or(0.0);
        assert!((n - 150.0).abs() < 0.01, "{n}");
        let c = one_cpu_costs(&window(4e6, 4e6, 1.0), Some(n));
        assert!((c.all_ns - 250.0).abs() < 0.01);
        assert!((c.dut_ns.unwrap_or(0.0) - 100.0).abs() < 0.01);
        assert!((c.gen_sink_share.unwrap_or(0.0) - 0.6).abs() < 1e-6);
        // Flood: 1 M frames generated, 4 M copies delivered in 0.9 s of CPU per s.
        let c = one_cpu_costs(&window(4e6, 1e6, 0.9), Some(n));
        assert!((c.dut_ns.unwrap_or(0.0) - 187.5).abs() < 0.01);
        // Without a null measurement only the whole is known.
        let c = one_cpu_costs(&window(4e6, 4e6, 1.0), None);
        assert_eq!((c.dut_ns, c.gen_sink_share), (None, None));
    }
}
