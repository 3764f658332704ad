//! The report's verdicts and notes: the targets checked against a run, and the notes
//! on how the run measured.

use super::{
    args::BenchArgs,
    paths::PathKind,
    report::{Summary, Target},
    scenarios::{SCN_FDB_BIG, SCN_FDB_SMALL, SCN_RTT, SCN_TCP, SCN_U64},
    topo,
};

fn find<'a>(s: &'a [Summary], scn: &str, path: &str) -> Option<&'a Summary> {
    s.iter()
        .find(|r| r.scenario == scn && r.path == path && r.na.is_none())
}

/// The drop monitor's cost while off (issue 14: one array read and a branch, ≤ 2 ns): the
/// ladder's `xnb_ceil_mon` minus `xnb_ceil`, medians of the same rounds.
pub fn monitor_off(ladder: &[(String, f64, f64, f64)]) -> Option<Target> {
    let ns = |p: &str| ladder.iter().find(|l| l.0 == p).map(|l| l.1);
    let cost = ns(xennet_common::bench::PROG_CEIL_MON)? - ns(xennet_common::bench::PROG_CEIL)?;
    Some(Target {
        what: "drop monitor off: cost per frame (ladder, xnb_ceil_mon − xnb_ceil)".into(),
        wanted: "≤ 2.0 ns".into(),
        measured: format!("{cost:.1} ns"),
        met: Some(cost <= 2.0),
    })
}

/// The targets, checked against this run.
pub fn targets(s: &[Summary], args: &BenchArgs) -> Vec<Target> {
    let mut v = Vec::new();
    let x = PathKind::XennetXdp.name();
    let tc = PathKind::XennetTc.name();
    let ratio_target = |v: &mut Vec<Target>, what: &str, r: Option<f64>, want: f64| {
        v.push(Target {
            what: what.into(),
            wanted: format!("≥ {want:.2}×"),
            measured: r.map_or_else(|| "n/a".into(), |r| format!("{r:.2}×")),
            met: r.map(|r| r >= want),
        });
    };
    let xu = find(s, SCN_U64, x);
    ratio_target(
        &mut v,
        "xennet XDP, 64 B unicast, vs the XDP ceiling",
        xu.and_then(|r| r.vs_ceiling),
        0.90,
    );
    ratio_target(
        &mut v,
        "xennet XDP, 64 B unicast, vs the Linux bridge",
        xu.and_then(|r| r.vs_bridge),
        4.5,
    );
    let nf = find(s, SCN_U64, PathKind::BridgeNf.name()).map(|r| r.median);
    ratio_target(
        &mut v,
        "xennet XDP, 64 B unicast, vs bridge+br_netfilter",
        xu.zip(nf).map(|(a, b)| a.median / b),
        7.5,
    );
    let sec = find(s, SCN_U64, PathKind::XennetTcSec.name()).map(|r| r.median);
    let xen = find(s, SCN_U64, PathKind::BridgeXenAntispoof.name()).map(|r| r.median);
    ratio_target(
        &mut v,
        "xennet TC with port security, 64 B unicast, vs bridge+br_netfilter+Xen antispoof (32 guests)",
        sec.zip(xen).map(|(a, b)| a / b),
        2.5,
    );
    let tu = find(s, SCN_U64, tc);
    ratio_target(
        &mut v,
        "xennet TC, 64 B unicast, vs the Linux bridge",
        tu.and_then(|r| r.vs_bridge),
        1.5,
    );
    let tt = find(s, SCN_TCP, tc);
    ratio_target(
        &mut v,
        "xennet TC, TCP bulk, vs the Linux bridge",
        tt.and_then(|r| r.vs_bridge),
        1.0,
    );
    let tr = find(s, SCN_RTT, tc).and_then(|r| r.vs_bridge);
    v.push(Target {
        what: "xennet TC, ping RTT, vs the Linux bridge".into(),
        wanted: "≤ 1.00×".into(),
        measured: tr.map_or_else(|| "n/a".into(), |r| format!("{r:.2}×")),
        met: tr.map(|r| r <= 1.0),
    });
    // For information: the XDP path on the same TCP and RTT targets.
    let xt = find(s, SCN_TCP, x).and_then(|r| r.vs_bridge);
    ratio_target(
        &mut v,
        "(xennet XDP, TCP bulk, vs the Linux bridge)",
        xt,
        1.0,
    );
    let xr = find(s, SCN_RTT, x).and_then(|r| r.vs_bridge);
    v.push(Target {
        what: "(xennet XDP, ping RTT, vs the Linux bridge)".into(),
        wanted: "≤ 1.00×".into(),
        measured: xr.map_or_else(|| "n/a".into(), |r| format!("{r:.2}×")),
        met: xr.map(|r| r <= 1.0),
    });
    let small = find(s, SCN_FDB_SMALL, x).map(|r| r.median);
    let big = find(s, SCN_FDB_BIG, x).map(|r| r.median);
    let cost = small.zip(big).map(|(a, b)| 1.0 - b / a);
    v.push(Target {
        what: format!(
            "FDB of {} entries vs {} (xennet XDP, 64 B)",
            args.fdb_entries, args.fdb_hot
        ),
        wanted: "costs ≤ 10 %".into(),
        measured: cost.map_or_else(|| "n/a".into(), |c| format!("{:.1} %", c * 100.0)),
        met: cost.map(|c| c <= 0.10),
    });
    v
}

/// How the run measured, for the report.
pub fn run_notes(
    args: &BenchArgs,
    gen_cpu: usize,
    dut_cpu: usize,
    m: &topo::Machine,
) -> Vec<String> {
    let mut n = vec![
        format!(
            "Traffic: `xnb_gen` through `BPF_PROG_TEST_RUN` with `BPF_F_TEST_XDP_LIVE_FRAMES` \
             (batch 64) on a veth in a generator namespace, pinned to CPU {gen_cpu}; frames are \
             IPv4/UDP from {} source MACs; the sinks (`xnb_sink`, XDP, count and drop) run \
             their threaded NAPI on CPU {gen_cpu} too; the DUT's ingress veth runs threaded \
             NAPI pinned to CPU {dut_cpu}. `offered` is what the generator produced, `cpuN` the \
             busy share of each CPU during the window.",
            args.flows
        ),
        "Linux bridge: STP off, learning off on the generator's port, a static FDB entry for \
         the measured destination; `bridge-nf-call-*` = 0. bridge+br_netfilter: the same with \
         `bridge-nf-call-iptables` = 1 and 7 iptables FORWARD physdev rules (4 that do not \
         match, then the one that does), as a dom0 with per-vif antispoofing rules has."
            .into(),
        "xdp-ceiling: `xnb_ceil`, one `bpf_redirect_map` by ingress ifindex, no parsing \
         (flood: `xnb_ceil_bc`, a devmap broadcast to the N ports). xennet-xdp: the real agent \
         (`xennet-agent run`, native XDP on every port, learning and counters on); the \
         generator's source MACs are learned on the uplink, the destinations are static \
         `macs`."
            .into(),
        "Tagged uplink: only xennet can pop a tag here (no 802.1Q devices and no bridge VLAN \
         filtering in this kernel), the ceiling forwards the tagged frame unchanged."
            .into(),
        format!(
            "FDB scenario: `xennet_xdp` loaded by the bench (same object as the agent's) with \
             `XN_FDB` sized to {} entries in both cases, because the agent's FDB has a fixed \
             capacity of {} entries; the traffic cycles through {} static destinations.",
            args.fdb_entries.next_power_of_two().max(1 << 18),
            xennet_common::maps::FDB_MAX_ENTRIES,
            args.fdb_hot
        ),
    ];
    if m.cpus < 2 {
        n.push("Only one CPU: generator and DUT share it.".into());
    }
    n
}
