//! The terminal table and the markdown report of a run.

use std::fmt::Write as _;

use super::{GENERATOR_BOUND, Report, Scenario, Summary, Unit};
use xennet_common::{
    bench::{PROG_CEIL_MON, PROG_L1_LOOKUP},
    maps::{PROG_TC, PROG_XDP},
};

use crate::bench::{
    portsec,
    profile::{LEARNED, MONITOR_PAIRED},
    scenarios::NO_DUT,
    traffic::{CEIL, LADDER_TC},
};

/// What ladder step `p` adds to the one listed before it (a learned-source step: to the same
/// program on the static source).
fn ladder_adds(p: &str) -> &'static str {
    match p {
        CEIL => "bare devmap redirect (the ceiling)",
        PROG_CEIL_MON => "the drop monitor's switch, off",
        PROG_L1_LOOKUP => "port lookup, parse, classify, FDB lookup of dst, egress port, redirect",
        PROG_XDP => "learning check of the (static) src, counters: the full datapath",
        PROG_TC => "the TC datapath (`xennet_tc`, skb already built)",
        _ if p == LADDER_TC[0] => "bare `bpf_redirect` (the TC ceiling)",
        _ if p.ends_with(LEARNED) => "a learned src instead of a static one (a guest's frames)",
        _ => "",
    }
}

/// A value in the scenario's display unit.
#[must_use]
fn fmt_value(unit: Unit, v: f64) -> String {
    if v.is_nan() {
        return "—".into();
    }
    match unit {
        Unit::Pps => format!("{:.3}", v / 1e6),
        Unit::Bps => format!("{:.2}", v / 1e9),
        Unit::Micros => format!("{v:.1}"),
    }
}

#[must_use]
const fn unit_name(unit: Unit) -> &'static str {
    match unit {
        Unit::Pps => "Mpps",
        Unit::Bps => "Gbit/s",
        Unit::Micros => "µs",
    }
}

fn ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "—".into(), |x| format!("{x:.2}×"))
}

/// What limited a frame-rate row, as a note suffix. With everything on one CPU (`cpu_ns`)
/// the parts take turns: the note says which share of the CPU generating and sinking the
/// frames took (the null path's cost), and calls the row limited by them when that is most
/// of it. Otherwise: frames lost entering the DUT (its ingress queue overflowed: the DUT),
/// lost leaving it (the sinks' queues overflowed: the sinks), or neither while the DUT
/// forwarded most of what was offered or its thread was idle a quarter of the window (the
/// generator).
fn limit(r: &Summary) -> String {
    let get = |k: &str| r.extra.get(k).copied().unwrap_or(0.0);
    let (lost_in, lost_out) = (get("lost_in_mpps"), get("lost_out_mpps"));
    let offered = get("offered_mpps");
    let dut_idle =
        !r.extra.contains_key("cpu_ns") && r.extra.contains_key("dut_ns") && get("dut_busy") < 0.75;
    if let Some(share) = r.extra.get("gen_sink_share") {
        let by = if *share > 0.5 {
            "limited by the generator and sinks: "
        } else {
            ""
        };
        format!(" ({by}they took {:.0}% of the one CPU)", share * 100.0)
    } else if r.path == NO_DUT {
        " (generator and sink alone on one CPU)".into()
    } else if r.extra.contains_key("cpu_ns") {
        " (generator, DUT and sinks on one CPU)".into()
    } else if lost_out > lost_in && lost_out > 0.05 * offered {
        " (limited by the sinks: a lower bound)".into()
    } else if lost_in > 0.05 * offered && !dut_idle {
        " (limited by the DUT)".into()
    } else if get("delivered_share") >= GENERATOR_BOUND || dut_idle {
        " (limited by the generator: a lower bound)".into()
    } else {
        String::new()
    }
}

/// The columns of one summary row: value, range, ×bridge, ×ceiling, notes.
fn row_cells(s: &Scenario, r: &Summary) -> [String; 5] {
    if let Some(why) = &r.na {
        return [
            "n/a".into(),
            String::new(),
            String::new(),
            String::new(),
            why.clone(),
        ];
    }
    let mut notes = Vec::new();
    if let Some(g) = r.extra.get("gbps") {
        notes.push(format!("{g:.2} Gbit/s"));
    }
    if let Some(m) = r.extra.get("min_us") {
        notes.push(format!("min {m:.0} µs"));
    }
    if let Some(x) = r.vs_tc_ceiling {
        notes.push(format!("{x:.2}× tc-ceiling"));
    }
    if let Some(ns) = r.extra.get("dut_ns") {
        if r.extra.contains_key("cpu_ns") {
            notes.push(format!("DUT {ns:.0} ns/frame"));
        } else {
            let busy = r.extra.get("dut_busy").copied().unwrap_or(0.0);
            notes.push(format!(
                "DUT {ns:.0} ns/frame (thread busy {:.0}%)",
                busy * 100.0
            ));
        }
    }
    if let Some(ns) = r.extra.get("cpu_ns") {
        if r.path == NO_DUT {
            notes.push(format!("gen+sink {ns:.0} ns/frame"));
        } else {
            notes.push(format!("gen+DUT+sink {ns:.0} ns/frame"));
        }
    }
    if let Some(n) = r.extra.get("ipi_per_kframe") {
        notes.push(format!("{n:.1} IPIs/kframe"));
    }
    if let Some(o) = r.extra.get("offered_mpps") {
        notes.push(format!("offered {o:.2} Mpps{}", limit(r)));
    }
    let busy: Vec<String> = (0..8)
        .filter_map(|i| r.extra.get(&format!("cpu{i}_busy")).map(|b| (i, b)))
        .map(|(i, b)| format!("cpu{i} {:.0}%", b * 100.0))
        .collect();
    if !busy.is_empty() {
        notes.push(busy.join(" "));
    }
    if let Some(f) = r.extra.get("foreign_cpu") {
        if *f >= 0.05 {
            notes.push(format!("other load {:.0}% of a CPU", f * 100.0));
        }
    }
    [
        fmt_value(s.unit, r.median),
        format!(
            "{} – {}",
            fmt_value(s.unit, r.min),
            fmt_value(s.unit, r.max)
        ),
        ratio(r.vs_bridge),
        ratio(r.vs_ceiling),
        notes.join(", "),
    ]
}

/// The table for the terminal.
#[must_use]
pub fn terminal(rep: &Report) -> String {
    let mut o = String::new();
    for s in &rep.scenarios {
        let _ = writeln!(o, "\n{} [{}]", s.title, unit_name(s.unit));
        let _ = writeln!(
            o,
            "  {:<22} {:>9} {:>19} {:>8} {:>9}  notes",
            "path", "median", "min – max", "×bridge", "×ceiling"
        );
        for r in rep.summary.iter().filter(|r| r.scenario == s.id) {
            let c = row_cells(s, r);
            let _ = writeln!(
                o,
                "  {:<22} {:>9} {:>19} {:>8} {:>9}  {}",
                r.path, c[0], c[1], c[2], c[3], c[4]
            );
        }
    }
    if !rep.ladder.is_empty() {
        let _ = writeln!(
            o,
            "\nProgram run time per frame (BPF_PROG_TEST_RUN, not live), median ns:"
        );
        let mut prev: Option<f64> = None;
        for (p, m, lo, hi) in &rep.ladder {
            if p == LADDER_TC[0] {
                prev = None;
            }
            if portsec::describe(p).is_some() {
                let _ = writeln!(o, "  {p:<36} {m:>7.1}  [{lo:.1} – {hi:.1}]");
                continue;
            }
            let step = !p.ends_with(LEARNED) && p != MONITOR_PAIRED;
            let d = prev
                .filter(|_| step)
                .map_or_else(String::new, |x| format!("  (+{:.1})", m - x));
            let _ = writeln!(o, "  {p:<36} {m:>7.1}  [{lo:.1} – {hi:.1}]{d}");
            if step {
                prev = Some(*m);
            }
        }
    }
    if !rep.profile.is_empty() {
        let _ = writeln!(
            o,
            "\nIn-situ run time per frame (kernel.bpf_stats_enabled, 64 B unicast):"
        );
        for (path, p, ns, n) in &rep.profile {
            let _ = writeln!(o, "  {path:<22} {p:<14} {ns:>7.1} ns  ({n} runs)");
        }
    }
    let _ = writeln!(o, "\nTargets:");
    for t in &rep.targets {
        let m = match t.met {
            Some(true) => "met",
            Some(false) => "NOT met",
            None => "n/a",
        };
        let _ = writeln!(
            o,
            "  [{m:^7}] {}: {} (target {})",
            t.what, t.measured, t.wanted
        );
    }
    o
}

/// The markdown report.
#[must_use]
pub fn markdown(rep: &Report, svg_name: Option<&str>) -> String {
    let mut o = String::new();
    let m = &rep.machine;
    let _ = writeln!(o, "Command: `{}` ({:.0} s)\n", rep.command, rep.duration_s);
    let _ = writeln!(
        o,
        "Machine: {}; {} × {}; {} MiB; hypervisor: {}; clocksource {}; load average before the run: {}\n",
        m.kernel, m.cpus, m.cpu_model, m.memory_mib, m.hypervisor, m.clocksource, m.loadavg_before
    );
    let params: Vec<String> = rep
        .params
        .iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect();
    let _ = writeln!(o, "Parameters: {}\n", params.join(", "));
    let _ = writeln!(
        o,
        "Medians over the rounds with min – max; ratios are medians of this run divided by the \
         Linux bridge's and the XDP ceiling's medians in the same scenario (for RTT lower is \
         better, so a ratio < 1 is an improvement).\n"
    );
    for s in &rep.scenarios {
        let _ = writeln!(o, "#### {} [{}]\n", s.title, unit_name(s.unit));
        let _ = writeln!(
            o,
            "| path | median | min – max | × bridge | × ceiling | notes |"
        );
        let _ = writeln!(o, "|---|---:|---:|---:|---:|---|");
        for r in rep.summary.iter().filter(|r| r.scenario == s.id) {
            let c = row_cells(s, r);
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} |",
                r.path, c[0], c[1], c[2], c[3], c[4]
            );
        }
        o.push('\n');
    }
    ladder_table(&mut o, rep);
    if !rep.profile.is_empty() {
        let _ = writeln!(
            o,
            "#### In-situ program run time (`kernel.bpf_stats_enabled`, one 64 B unicast window)\n"
        );
        let _ = writeln!(o, "| path | program | ns per run | runs |");
        let _ = writeln!(o, "|---|---|---:|---:|");
        for (path, p, ns, n) in &rep.profile {
            let _ = writeln!(o, "| {path} | `{p}` | {ns:.1} | {n} |");
        }
        o.push('\n');
    }
    let _ = writeln!(o, "#### Targets\n");
    let _ = writeln!(o, "| target | wanted | measured | |");
    let _ = writeln!(o, "|---|---|---|---|");
    for t in &rep.targets {
        let m = match t.met {
            Some(true) => "met",
            Some(false) => "**not met**",
            None => "n/a",
        };
        let _ = writeln!(o, "| {} | {} | {} | {m} |", t.what, t.wanted, t.measured);
    }
    o.push('\n');
    if !rep.notes.is_empty() {
        for n in &rep.notes {
            let _ = writeln!(o, "- {n}");
        }
        o.push('\n');
    }
    if let Some(svg) = svg_name {
        let _ = writeln!(o, "![ratios]({svg})\n");
    }
    o
}

/// The markdown table of the ladder (nothing without a ladder).
fn ladder_table(o: &mut String, rep: &Report) {
    if rep.ladder.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "#### Program run time per frame (`BPF_PROG_TEST_RUN`, not live, 60 B frame)\n"
    );
    let _ = writeln!(o, "| program | adds | median ns | min – max | step |");
    let _ = writeln!(o, "|---|---|---:|---:|---:|");
    let mut prev: Option<f64> = None;
    for (p, med, lo, hi) in &rep.ladder {
        if p == LADDER_TC[0] {
            prev = None;
        }
        if p == MONITOR_PAIRED {
            let _ = writeln!(
                o,
                "| {p} | the drop monitor's switch, off (the two programs side by side in each \
                 round) | {med:+.1} | {lo:+.1} – {hi:+.1} | — |"
            );
            continue;
        }
        if let Some(what) = portsec::describe(p) {
            let base = portsec::unsecured_of(p)
                .and_then(|own| rep.ladder.iter().find(|l| l.0 == own).map(|l| l.1));
            let d = base.map_or_else(|| "—".into(), |x| format!("{:+.1}", med - x));
            let _ = writeln!(o, "| `{p}` | {what} | {med:.1} | {lo:.1} – {hi:.1} | {d} |");
            continue;
        }
        // A learned-source step is measured against the same program's static source.
        let base = match p.strip_suffix(LEARNED) {
            Some(own) => rep.ladder.iter().find(|l| l.0 == own).map(|l| l.1),
            None => prev,
        };
        let d = base.map_or_else(|| "—".into(), |x| format!("{:+.1}", med - x));
        let _ = writeln!(
            o,
            "| `{p}` | {} | {med:.1} | {lo:.1} – {hi:.1} | {d} |",
            ladder_adds(p)
        );
        if !p.ends_with(LEARNED) {
            prev = Some(*med);
        }
    }
    o.push('\n');
}
