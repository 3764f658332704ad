//! Program cost: the run-time ladder (`BPF_PROG_TEST_RUN`, not live) and the in-situ run time
//! with `kernel.bpf_stats_enabled` during a live window.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use aya::programs::{tc::SchedClassifierLinkId, xdp::XdpLinkId};
use xennet_common::{
    bench,
    maps::{PROG_TC, PROG_XDP},
};

use super::{
    Setting, interrupted, log, portsec,
    report::median,
    scenarios::Traffic,
    topo::{Dut, Topo},
    traffic::{BenchObj, CEIL, GEN, LADDER, LADDER_TC, SINK},
};

/// Program run time per frame of every ladder step on `d`'s maps: (program, median ns, min,
/// max) over the ladder rounds; then `xennet_xdp` and `xennet_tc` on a frame whose source is
/// learned rather than static ([`LEARNED`]: the clock-reading path a guest's frames take).
/// With `other` (`--compare`), its `xennet_xdp` and `xennet_tc` run in every round too, on
/// both frames, alternately before and after this build's, listed as `… (compared)`, and
/// the per-round differences after them.
pub fn ladder(
    cfg: &Setting,
    obj: &mut BenchObj,
    d: &Dut,
    small: &Traffic,
    mut other: Option<&mut BenchObj>,
) -> Result<Vec<(String, f64, f64, f64)>> {
    log("program run-time ladder");
    let mut samples: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let repeat = cfg.p.ladder_repeat;
    let learned = learned_frame(&small.frame);
    let frames = [("", small.frame.as_slice()), (LEARNED, learned.as_slice())];
    for round in 0..cfg.p.ladder_rounds {
        let other_first = round % 2 == 1;
        if other_first {
            if let Some(o) = other.as_deref_mut() {
                datapath(o, d, &frames, COMPARED, repeat, &mut samples)?;
            }
        }
        for prog in LADDER {
            if prog == CEIL {
                let (xb0, xb1) = (d.idx("xb0")?, d.idx("xb1")?);
                obj.set_ceiling(&d.ns, &[(xb0, xb1)], &[])?;
            }
            if prog != PROG_XDP {
                let ns = obj.prog_ns(d, prog, &small.frame, repeat)?;
                samples.entry(prog.to_string()).or_default().push(ns);
            }
        }
        let ns = obj.tc_ns(d, LADDER_TC[0], &small.frame, repeat)?;
        samples
            .entry(LADDER_TC[0].to_string())
            .or_default()
            .push(ns);
        datapath(obj, d, &frames, "", repeat, &mut samples)?;
        portsec::round(obj, d, repeat, round % 2 == 0, &mut samples)?;
        if !other_first {
            if let Some(o) = other.as_deref_mut() {
                datapath(o, d, &frames, COMPARED, repeat, &mut samples)?;
            }
        }
    }
    let mut names: Vec<String> = LADDER
        .iter()
        .chain(&LADDER_TC)
        .map(|p| (*p).to_string())
        .collect();
    let steps = [PROG_XDP, PROG_TC].map(|p| format!("{p}{LEARNED}"));
    names.extend(steps.iter().cloned());
    // The drop monitor's cost when off, as the difference of the two programs measured next
    // to each other in each round (a difference of two medians moved with the machine).
    let monitor = paired(&samples, bench::PROG_CEIL_MON, CEIL);
    samples.insert(MONITOR_PAIRED.to_string(), monitor);
    names.push(MONITOR_PAIRED.to_string());
    names.extend(portsec::rows());
    if other.is_some() {
        let all: Vec<String> = [PROG_XDP, PROG_TC]
            .into_iter()
            .map(String::from)
            .chain(steps)
            .collect();
        // The per-round difference, this build minus the compared one (measured next to
        // each other, so a slow drift of the machine cancels).
        for step in &all {
            let diffs = paired(&samples, step, &format!("{step}{COMPARED}"));
            samples.insert(format!("{step}{PAIRED}"), diffs);
        }
        names.extend(all.iter().map(|s| format!("{s}{COMPARED}")));
        names.extend(all.iter().map(|s| format!("{s}{PAIRED}")));
    }
    Ok(names
        .into_iter()
        .map(|prog| {
            let mut v = samples.remove(&prog).unwrap_or_default();
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let m = median(&mut v);
            (prog, m, lo, hi)
        })
        .collect())
}

/// Round by round, `a`'s sample minus `b`'s.
fn paired(samples: &BTreeMap<String, Vec<f64>>, a: &str, b: &str) -> Vec<f64> {
    samples
        .get(a)
        .into_iter()
        .flatten()
        .zip(samples.get(b).into_iter().flatten())
        .map(|(x, y)| x - y)
        .collect()
}

/// The ladder row of the drop monitor's cost when off: `xnb_ceil_mon` minus `xnb_ceil`,
/// round by round (see [`crate::bench::targets::monitor_off`]).
pub const MONITOR_PAIRED: &str = "xnb_ceil_mon − xnb_ceil, per round";

/// Label suffix of the ladder steps on the learned-source frame.
pub const LEARNED: &str = ", learned src";
/// Label suffix of the compared build's steps.
const COMPARED: &str = " (compared)";
/// Label suffix of the per-round differences, this build minus the compared one.
const PAIRED: &str = ": this − compared, per round";

/// `frame` with a source MAC that no static entry holds: the first run learns it, every
/// other run is the steady state of a guest's traffic (found on its port, the refresh
/// check). Locally administered, outside the generator's flows.
fn learned_frame(frame: &[u8]) -> Vec<u8> {
    let mut f = frame.to_vec();
    if let Some(src) = f.get_mut(6..12) {
        src.copy_from_slice(&[0x02, 0x4c, 0x45, 0x41, 0x52, 0x4e]);
    }
    f
}

/// One round of `o`'s `xennet_xdp` and `xennet_tc` on each of `frames` (label suffix, frame),
/// recorded under `<program><frame suffix><suffix>`.
fn datapath(
    o: &mut BenchObj,
    d: &Dut,
    frames: &[(&str, &[u8])],
    suffix: &str,
    repeat: u32,
    samples: &mut BTreeMap<String, Vec<f64>>,
) -> Result<()> {
    for (label, frame) in frames {
        let ns = o.prog_ns(d, PROG_XDP, frame, repeat)?;
        samples
            .entry(format!("{PROG_XDP}{label}{suffix}"))
            .or_default()
            .push(ns);
        let ns = o.tc_ns(d, PROG_TC, frame, repeat)?;
        samples
            .entry(format!("{PROG_TC}{label}{suffix}"))
            .or_default()
            .push(ns);
    }
    Ok(())
}

/// In-situ program cost: one 64 B unicast window each for the XDP ceiling, the bench-loaded
/// `xennet_xdp`, the floor (`xnb_l1_lookup`: what any VLAN-aware forwarder does, without
/// learning and counters), the TC ceiling and the bench-loaded `xennet_tc` on `d` with `bpf_stats` on:
/// (label, program, ns per run, runs) of the forwarding program, the generator and the sink;
/// and one line per window with its rate and the DUT's CPU time per frame.
pub fn in_situ(
    cfg: &Setting,
    t: &Topo,
    obj: &mut BenchObj,
    d: &Dut,
    small: &Traffic,
) -> Result<InSitu> {
    log("in-situ program run time (kernel.bpf_stats_enabled)");
    let (xb0, xb1) = (d.idx("xb0")?, d.idx("xb1")?);
    obj.set_ceiling(&d.ns, &[(xb0, xb1)], &[])?;
    obj.set_tc_ceiling(&d.ns, &[(xb0, xb1)])?;
    let _stats = BpfStats::enable()?;
    let mut prof = Vec::new();
    let mut lines = Vec::new();
    for (label, prog, tc) in [
        ("xdp-ceiling", CEIL, false),
        ("xennet-xdp (bench-loaded)", PROG_XDP, false),
        ("xdp-floor (bench-loaded)", LADDER[2], false),
        ("tc-ceiling", LADDER_TC[0], true),
        ("xennet-tc (bench-loaded)", LADDER_TC[1], true),
    ] {
        interrupted()?;
        // XDP natively, or TC on tcx ingress (the frame then arrives as an skb): one window
        // with the program alone on xb0.
        let link = if tc {
            Link::Tc(obj.attach_tc(&d.ns, prog, "xb0")?)
        } else {
            Link::Xdp(obj.attach(&d.ns, prog, "xb0")?)
        };
        cfg.place_napi(t)?;
        let progs = [prog, GEN, SINK];
        let before: Vec<(u64, u64)> = progs
            .iter()
            .map(|q| obj.prog_stats(q))
            .collect::<Result<_>>()?;
        let w = cfg.window(t, obj, d.gen_if, small);
        let after: Vec<(u64, u64)> = progs
            .iter()
            .map(|q| obj.prog_stats(q))
            .collect::<Result<_>>()?;
        match link {
            Link::Xdp(l) => obj.detach(l)?,
            Link::Tc(l) => obj.detach_tc(l)?,
        }
        let w = w?;
        let cpu = if w.dut_busy > 0.0 {
            format!(
                "DUT thread {:.0} % busy = {:.0} ns/frame",
                w.dut_busy * 100.0,
                w.dut_busy * 1e9 / w.pps
            )
        } else {
            format!(
                "generator thread (generator, DUT and sinks) {:.0} ns/frame",
                w.gen_busy * 1e9 / w.pps
            )
        };
        lines.push(format!(
            "in-situ window, {label}: {:.2} Mpps of {:.2} offered, {cpu}, lost entering the DUT \
             {:.2} Mpps, toward the sinks {:.2} Mpps",
            w.pps / 1e6,
            w.offered_pps / 1e6,
            w.lost_in_pps / 1e6,
            w.lost_out_pps / 1e6,
        ));
        for (i, q) in progs.iter().enumerate() {
            let n = after[i].0 - before[i].0;
            let ns = after[i].1 - before[i].1;
            #[expect(clippy::cast_precision_loss, reason = "ns")]
            let per = if n == 0 {
                f64::NAN
            } else {
                ns as f64 / n as f64
            };
            prof.push((label.to_string(), (*q).to_string(), per, n));
        }
    }
    Ok((prof, lines))
}

/// A program attached for an in-situ window.
enum Link {
    Xdp((String, XdpLinkId)),
    Tc((String, SchedClassifierLinkId)),
}

/// The ladder and the in-situ results as text (`--ladder-only`).
pub fn render(ladder: &[(String, f64, f64, f64)], situ: &InSitu) -> String {
    use std::fmt::Write as _;
    let mut o =
        String::from("Program run time per frame (BPF_PROG_TEST_RUN, not live), median ns:\n");
    let mut prev: Option<f64> = None;
    for (p, m, lo, hi) in ladder {
        if p == LADDER_TC[0] {
            prev = None;
        }
        if portsec::is_paired(p) {
            let _ = writeln!(o, "  {p:<72} {m:>+7.1}  [{lo:+.1} – {hi:+.1}]");
            continue;
        }
        if portsec::is_step(p) {
            let _ = writeln!(o, "  {p:<36} {m:>7.1}  [{lo:.1} – {hi:.1}]");
            continue;
        }
        if p.ends_with(PAIRED) || p == MONITOR_PAIRED {
            let _ = writeln!(o, "  {p:<52} {m:>+7.1}  [{lo:+.1} – {hi:+.1}]");
            continue;
        }
        if let Some(own) = p.strip_suffix(COMPARED) {
            let base = ladder.iter().find(|l| l.0 == own).map(|l| l.1);
            let d = base.map_or_else(String::new, |b| format!("  (this build {:+.1})", b - m));
            let _ = writeln!(o, "  {p:<36} {m:>7.1}  [{lo:.1} – {hi:.1}]{d}");
            continue;
        }
        if p.ends_with(LEARNED) {
            let own = p.trim_end_matches(LEARNED);
            let base = ladder.iter().find(|l| l.0 == own).map(|l| l.1);
            let d = base.map_or_else(String::new, |b| {
                format!("  ({:+.1} on the static source)", m - b)
            });
            let _ = writeln!(o, "  {p:<26} {m:>7.1}  [{lo:.1} – {hi:.1}]{d}");
            continue;
        }
        let d = prev.map_or_else(String::new, |x| format!("  (+{:.1})", m - x));
        let _ = writeln!(o, "  {p:<16} {m:>7.1}  [{lo:.1} – {hi:.1}]{d}");
        prev = Some(*m);
    }
    let _ = writeln!(
        o,
        "In-situ run time per frame (kernel.bpf_stats_enabled, 64 B unicast):"
    );
    for (path, p, ns, n) in &situ.0 {
        let _ = writeln!(o, "  {path:<26} {p:<14} {ns:>7.1} ns  ({n} runs)");
    }
    for l in &situ.1 {
        let _ = writeln!(o, "  {l}");
    }
    o
}

/// In-situ results: (label, program, ns per run, runs), and one line per window.
pub type InSitu = (Vec<(String, String, f64, u64)>, Vec<String>);

/// `kernel.bpf_stats_enabled = 1` while alive; restores the previous value on drop.
struct BpfStats {
    old: String,
}

const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

impl BpfStats {
    fn enable() -> Result<BpfStats> {
        let old = std::fs::read_to_string(BPF_STATS)
            .context("reading kernel.bpf_stats_enabled")?
            .trim()
            .to_string();
        std::fs::write(BPF_STATS, "1").context("enabling kernel.bpf_stats_enabled")?;
        Ok(BpfStats { old })
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        if let Err(e) = std::fs::write(BPF_STATS, &self.old) {
            eprintln!("bench: restoring kernel.bpf_stats_enabled: {e}");
        }
    }
}
