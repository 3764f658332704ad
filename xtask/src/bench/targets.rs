//! The report's verdicts and notes: the targets checked against a run, and the notes
//! on how the run measured.

use super::{
    args::BenchArgs,
    cpu::Placement,
    paths::PathKind,
    report::{Summary, Target},
    scenarios::{NO_DUT, SCN_FDB_BIG, SCN_FDB_SMALL, SCN_RTT, SCN_TCP, SCN_U64},
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
    // The per-round difference's median where the ladder has it.
    let cost = ns(super::profile::MONITOR_PAIRED).or_else(|| {
        Some(ns(xennet_common::bench::PROG_CEIL_MON)? - ns(xennet_common::bench::PROG_CEIL)?)
    })?;
    Some(Target {
        what: "drop monitor off: cost per frame (ladder, xnb_ceil_mon − xnb_ceil, per round)"
            .into(),
        wanted: "≤ 2.0 ns".into(),
        measured: format!("{cost:.1} ns"),
        met: Some(cost <= 2.0),
    })
}

/// The port-security checks' cost per frame (issue 13: ≤ 10 ns), from the ladder's
/// per-pair differences of each program on each frame, secured minus not
/// (`super::portsec`).
pub fn port_security(ladder: &[(String, f64, f64, f64)]) -> Vec<Target> {
    super::portsec::paired_names()
        .into_iter()
        .filter_map(|(row, prog, frame)| {
            let cost = ladder.iter().find(|l| l.0 == row && l.1.is_finite())?.1;
            Some(Target {
                what: format!(
                    "port security checks, {frame}, {prog}: cost per frame (ladder, secured − \
                     unsecured, per pair of runs)"
                ),
                wanted: "≤ 10.0 ns".into(),
                measured: format!("{cost:.1} ns"),
                met: Some(cost <= 10.0),
            })
        })
        .collect()
}

/// The in-situ program time targets (`kernel.bpf_stats_enabled`, one window each): the
/// bench-loaded `xennet_xdp` at most 1.5× the ceiling's `xnb_ceil`, and beside it, for
/// reference, the floor `xnb_l1_lookup` (port, parse, classify, FDB lookup, redirect: what any
/// VLAN-aware forwarder does, without learning and counters) over the same ceiling.
pub fn in_situ(profile: &[(String, String, f64, u64)]) -> Vec<Target> {
    use xennet_common::{bench, maps::PROG_XDP};
    let ns = |p: &str| {
        profile
            .iter()
            .find(|r| r.1 == p && r.3 > 0 && r.2.is_finite())
            .map(|r| r.2)
    };
    let Some(ceil) = ns(bench::PROG_CEIL) else {
        return Vec::new();
    };
    let mut v = Vec::new();
    for (what, prog, want) in [
        (
            "xennet_xdp in-situ program time over xnb_ceil's",
            PROG_XDP,
            Some(1.5),
        ),
        (
            "(the floor, xnb_l1_lookup, in-situ program time over xnb_ceil's)",
            bench::PROG_L1_LOOKUP,
            None,
        ),
    ] {
        let r = ns(prog).map(|x| x / ceil);
        v.push(Target {
            what: what.into(),
            wanted: want.map_or_else(|| "—".into(), |w| format!("≤ {w:.2}×")),
            measured: r.map_or_else(|| "n/a".into(), |r| format!("{r:.2}×")),
            met: want.and_then(|w| r.map(|r| r <= w)),
        });
    }
    v
}

/// A "≥ want×" target measured as `r`.
fn ratio_target(v: &mut Vec<Target>, what: &str, r: Option<f64>, want: f64) {
    v.push(Target {
        what: what.into(),
        wanted: format!("≥ {want:.2}×"),
        measured: r.map_or_else(|| "n/a".into(), |r| format!("{r:.2}×")),
        met: r.map(|r| r >= want),
    });
}

/// The DUT-CPU-per-frame comparisons and the TC ceiling's targets (64 B unicast); `nf` is
/// `bridge+br_netfilter`'s rate.
fn per_frame_targets(v: &mut Vec<Target>, s: &[Summary], nf: Option<f64>) {
    let x = PathKind::XennetXdp.name();
    let tc = PathKind::XennetTc.name();
    // Per frame on the DUT's CPU: the ceiling's CPU time over xennet's, comparable with the
    // rate ratio, but not flattered by a ceiling that ran below its capacity.
    let dut_ns = |p: &str| find(s, SCN_U64, p).and_then(|r| r.extra.get("dut_ns").copied());
    ratio_target(
        v,
        "(xennet XDP, 64 B unicast, DUT CPU per frame: the XDP ceiling's over xennet's)",
        dut_ns(PathKind::Ceiling.name())
            .zip(dut_ns(x))
            .map(|(c, x)| c / x),
        0.90,
    );
    let tu = find(s, SCN_U64, tc);
    ratio_target(
        v,
        "xennet TC, 64 B unicast, vs the TC ceiling (bare tcx bpf_redirect)",
        tu.and_then(|r| r.vs_tc_ceiling),
        0.95,
    );
    ratio_target(
        v,
        "xennet TC, 64 B unicast, vs bridge+br_netfilter",
        tu.zip(nf).map(|(a, b)| a.median / b),
        2.0,
    );
    ratio_target(
        v,
        "(xennet TC, 64 B unicast, DUT CPU per frame: the TC ceiling's over xennet's)",
        dut_ns(PathKind::TcCeiling.name())
            .zip(dut_ns(tc))
            .map(|(c, x)| c / x),
        0.95,
    );
}

/// The targets, checked against this run.
pub fn targets(s: &[Summary], args: &BenchArgs) -> Vec<Target> {
    let mut v = Vec::new();
    let x = PathKind::XennetXdp.name();
    let tc = PathKind::XennetTc.name();
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
    per_frame_targets(&mut v, s, nf);
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

/// Where generator, DUT and sinks ran, and how the DUT's CPU time per frame is measured.
fn placement_note(p: Placement, gen_cpu: usize, dut_cpu: usize) -> String {
    match p {
        Placement::OneCpu => format!(
            "Placement `one-cpu`: generator, DUT and sinks all run on CPU {gen_cpu} as softirq \
             work of the generator thread (a plain veth setup: no cross-CPU hand-off). `gen+DUT+\
             sink` is the generator thread's run time per frame; each round also measures the \
             null path `{NO_DUT}` (the generator's veth straight into a sink), and `DUT N \
             ns/frame` is the rest: the path's CPU time per frame minus what generating and \
             sinking its frames cost in the null path. The parts take turns on the one CPU, so \
             a row's rate is that of the whole chain; the note says which share of the CPU the \
             generator and the sinks took."
        ),
        Placement::DutSink => format!(
            "Placement `dut-sink`: the generator alone on CPU {gen_cpu}; the DUT's ingress veth \
             runs threaded NAPI pinned to CPU {dut_cpu}, the sinks' NAPI runs as softirq work \
             of that thread. `DUT N ns/frame` is that thread's run time per frame, the sinks' \
             receive-and-drop included."
        ),
        Placement::Split => format!(
            "Placement `split`: the generator and the sinks' threaded NAPI on CPU {gen_cpu}, the \
             DUT's ingress veth's threaded NAPI on CPU {dut_cpu}; `DUT N ns/frame` is the latter's \
             run time per frame."
        ),
    }
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
             (batch {}) on a veth in a generator namespace, pinned to CPU {gen_cpu}; frames are \
             IPv4/UDP from {} source MACs; the sinks are `xnb_sink` (XDP, count and drop). {} \
             `offered` is what the generator produced, `cpuN` the busy share of each CPU during \
             the window, IPIs/kframe the rescheduling and function-call interrupts per 1000 \
             frames.",
            args.gen_batch,
            args.flows,
            placement_note(args.placement, gen_cpu, dut_cpu)
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
        "tc-ceiling: `xnb_tc_ceil` on tcx ingress, one hash lookup of the ingress ifindex and \
         `bpf_redirect`, no parsing; xennet's TC rows give their ratio to it (`× tc-ceiling`). \
         no-dut: the null path, no DUT (frame rates: the generator's veth straight into a \
         sink; RTT: the guests joined by one veth pair)."
            .into(),
        "Tagged uplink: only xennet can pop a tag here (no 802.1Q devices and no bridge VLAN \
         filtering in this kernel), the ceiling forwards the tagged frame unchanged."
            .into(),
        format!(
            "FDB scenario: `xennet_xdp` loaded by the bench (same object as the agent's) with \
             `XN_FDB` sized to {} entries in both cases (the agent's default is {}, \
             `[agent] fdb_max_entries`), so that the two differ only in the fill; the traffic \
             cycles through {} static destinations.",
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(path: &str, prog: &str, ns: f64) -> (String, String, f64, u64) {
        (path.into(), prog.into(), ns, 1000)
    }

    /// The in-situ ratios divide by the ceiling's own program (not its window's generator or
    /// sink); the floor is for reference only; no ceiling, no targets.
    #[test]
    fn in_situ_ratios_are_over_the_ceiling_program() {
        let p = vec![
            row("xdp-ceiling", "xnb_gen", 10.0),
            row("xdp-ceiling", "xnb_ceil", 50.0),
            row("xennet-xdp (bench-loaded)", "xennet_xdp", 80.0),
            row("xdp-floor (bench-loaded)", "xnb_l1_lookup", 60.0),
        ];
        let t = in_situ(&p);
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].measured.as_str(), t[0].met), ("1.60×", Some(false)));
        assert_eq!((t[1].measured.as_str(), t[1].met), ("1.20×", None));
        let mut fast = p.clone();
        fast[2].2 = 75.0;
        assert_eq!(in_situ(&fast)[0].met, Some(true));
        assert!(in_situ(&p[2..]).is_empty());
    }
}
