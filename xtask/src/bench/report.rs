//! Medians, ratios, targets; the terminal table, markdown, JSON and the SVG plot.

use std::{collections::BTreeMap, fmt::Write as _, path::Path};

use anyhow::{Context as _, Result};
use plotters::prelude::*;

use super::topo::Machine;

/// Delivered/offered share above which a rate is flagged as limited by the generator.
pub const GENERATOR_BOUND: f64 = 0.75;

/// What a scenario measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Unit {
    /// Frames per second at the sinks (higher is better).
    Pps,
    /// Bits per second (higher is better).
    Bps,
    /// Microseconds (lower is better).
    Micros,
}

/// One scenario.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Scenario {
    pub id: &'static str,
    pub title: String,
    pub unit: Unit,
}

/// One measured value.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Sample {
    pub scenario: &'static str,
    pub path: String,
    pub round: usize,
    /// pps, bit/s or µs, by the scenario's unit.
    pub value: f64,
    /// Secondary values: `gbps`, `offered_mpps`, `cpu<N>_busy`.
    pub extra: BTreeMap<String, f64>,
}

/// Median, min, max of one (scenario, path).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Summary {
    pub scenario: &'static str,
    pub path: String,
    pub rounds: usize,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// Medians of the secondary values.
    pub extra: BTreeMap<String, f64>,
    /// median / median of the Linux bridge (RTT: same, lower is better).
    pub vs_bridge: Option<f64>,
    /// median / median of the XDP ceiling.
    pub vs_ceiling: Option<f64>,
    /// Set when the path could not run this scenario.
    pub na: Option<String>,
}

/// A target of the issue and whether this run met it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Target {
    pub what: String,
    pub wanted: String,
    pub measured: String,
    pub met: Option<bool>,
}

/// Everything a run produced.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Report {
    pub machine: Machine,
    pub command: String,
    pub params: BTreeMap<String, String>,
    pub started_unix: u64,
    pub duration_s: f64,
    pub scenarios: Vec<Scenario>,
    pub paths: Vec<String>,
    pub samples: Vec<Sample>,
    pub summary: Vec<Summary>,
    /// Program run time per frame without live frames: (program, median ns, min, max).
    pub ladder: Vec<(String, f64, f64, f64)>,
    /// In-situ program run time per frame with `kernel.bpf_stats_enabled` during a 64 B
    /// unicast window: (path, program, ns per run, runs).
    pub profile: Vec<(String, String, f64, u64)>,
    pub targets: Vec<Target>,
    pub notes: Vec<String>,
    /// The xennet agents' counters at the end of the run: path → port → counter → value.
    pub agent_counters: BTreeMap<String, BTreeMap<String, BTreeMap<String, u64>>>,
}

pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        f64::midpoint(v[n / 2 - 1], v[n / 2])
    }
}

/// Summaries of every (scenario, path) in `paths` order, with ratios; `na` lists paths that
/// could not run a scenario, with the reason.
pub fn summarize(
    scenarios: &[Scenario],
    paths: &[String],
    samples: &[Sample],
    na: &BTreeMap<(String, String), String>,
) -> Vec<Summary> {
    let mut out = Vec::new();
    for s in scenarios {
        let mut rows = Vec::new();
        for p in paths {
            let mine: Vec<&Sample> = samples
                .iter()
                .filter(|x| x.scenario == s.id && &x.path == p)
                .collect();
            if mine.is_empty() {
                if let Some(why) = na.get(&(s.id.to_string(), p.clone())) {
                    rows.push(Summary {
                        scenario: s.id,
                        path: p.clone(),
                        rounds: 0,
                        median: f64::NAN,
                        min: f64::NAN,
                        max: f64::NAN,
                        extra: BTreeMap::new(),
                        vs_bridge: None,
                        vs_ceiling: None,
                        na: Some(why.clone()),
                    });
                }
                continue;
            }
            let mut v: Vec<f64> = mine.iter().map(|x| x.value).collect();
            let min = v.iter().copied().fold(f64::INFINITY, f64::min);
            let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let med = median(&mut v);
            let mut extra = BTreeMap::new();
            let keys: std::collections::BTreeSet<&String> =
                mine.iter().flat_map(|x| x.extra.keys()).collect();
            for k in keys {
                let mut e: Vec<f64> = mine
                    .iter()
                    .filter_map(|x| x.extra.get(k).copied())
                    .collect();
                extra.insert(k.clone(), median(&mut e));
            }
            rows.push(Summary {
                scenario: s.id,
                path: p.clone(),
                rounds: mine.len(),
                median: med,
                min,
                max,
                extra,
                vs_bridge: None,
                vs_ceiling: None,
                na: None,
            });
        }
        let base = |name: &str| {
            rows.iter()
                .find(|r| r.path == name && r.na.is_none())
                .map(|r| r.median)
        };
        let (b, c) = (base("linux-bridge"), base("xdp-ceiling"));
        for r in &mut rows {
            if r.na.is_none() {
                r.vs_bridge = b.map(|b| r.median / b);
                r.vs_ceiling = c.map(|c| r.median / c);
            }
        }
        out.extend(rows);
    }
    out
}

/// A value in the scenario's display unit.
#[must_use]
pub fn fmt_value(unit: Unit, v: f64) -> String {
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
pub const fn unit_name(unit: Unit) -> &'static str {
    match unit {
        Unit::Pps => "Mpps",
        Unit::Bps => "Gbit/s",
        Unit::Micros => "µs",
    }
}

fn ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "—".into(), |x| format!("{x:.2}×"))
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
    if let Some(o) = r.extra.get("offered_mpps") {
        // A DUT that forwards most of what the generator offers is probably waiting for the
        // generator: its rate is a lower bound.
        let bound = r
            .extra
            .get("delivered_share")
            .is_some_and(|s| *s >= GENERATOR_BOUND);
        notes.push(format!(
            "offered {o:.2} Mpps{}",
            if bound {
                " (near the generator's limit: a lower bound)"
            } else {
                ""
            }
        ));
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
            let d = prev.map_or_else(String::new, |x| format!("  (+{:.1})", m - x));
            let _ = writeln!(o, "  {p:<16} {m:>7.1}  [{lo:.1} – {hi:.1}]{d}");
            prev = Some(*m);
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
    if !rep.ladder.is_empty() {
        let _ = writeln!(
            o,
            "#### Program run time per frame (`BPF_PROG_TEST_RUN`, not live, 60 B frame)\n"
        );
        let _ = writeln!(o, "| program | adds | median ns | min – max | step |");
        let _ = writeln!(o, "|---|---|---:|---:|---:|");
        let adds = [
            "bare devmap redirect (the ceiling)",
            "port lookup, parse, classify, FDB lookup of dst, egress checks",
            "learning lookup of src (`fwd::learn`), clock frozen",
            "`bpf_ktime_get_ns()` (the real `decide()`)",
            "counters (`fwd::account`): the full datapath",
        ];
        let mut prev: Option<f64> = None;
        for (i, (p, med, lo, hi)) in rep.ladder.iter().enumerate() {
            let d = prev.map_or_else(|| "—".into(), |x| format!("+{:.1}", med - x));
            let _ = writeln!(
                o,
                "| `{p}` | {} | {med:.1} | {lo:.1} – {hi:.1} | {d} |",
                adds.get(i).unwrap_or(&"")
            );
            prev = Some(*med);
        }
        o.push('\n');
    }
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

/// Colour of a path in the plot.
fn colour(i: usize) -> RGBColor {
    const C: [RGBColor; 6] = [
        RGBColor(120, 120, 120),
        RGBColor(180, 100, 60),
        RGBColor(60, 60, 160),
        RGBColor(40, 150, 70),
        RGBColor(150, 60, 150),
        RGBColor(200, 170, 40),
    ];
    C[i % C.len()]
}

/// Grouped bars of every path's ratio to the Linux bridge (top) and to the ceiling (bottom),
/// per scenario, with min–max whiskers.
#[expect(clippy::too_many_lines, reason = "two charts")]
pub fn plot(rep: &Report, out: &Path) -> Result<()> {
    let root = SVGBackend::new(out, (1100, 820)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (top, bottom) = root.split_vertically(410);
    let scen: Vec<&Scenario> = rep
        .scenarios
        .iter()
        .filter(|s| {
            rep.summary
                .iter()
                .any(|r| r.scenario == s.id && r.vs_bridge.is_some())
        })
        .collect();
    for (area, which) in [(&top, 0), (&bottom, 1)] {
        let title = if which == 0 {
            "ratio to the Linux bridge (RTT: lower is better)"
        } else {
            "ratio to the XDP ceiling (bare devmap redirect)"
        };
        let val = |r: &Summary| {
            if which == 0 {
                r.vs_bridge
            } else {
                r.vs_ceiling
            }
        };
        let base = |r: &Summary| {
            rep.summary
                .iter()
                .find(|b| {
                    b.scenario == r.scenario
                        && b.path
                            == if which == 0 {
                                "linux-bridge"
                            } else {
                                "xdp-ceiling"
                            }
                })
                .map(|b| b.median)
        };
        let ymax = rep
            .summary
            .iter()
            .filter_map(|r| {
                let b = base(r)?;
                Some(r.max / b)
            })
            .filter(|x| x.is_finite())
            .fold(1.2_f64, f64::max)
            * 1.1;
        #[expect(clippy::cast_precision_loss, reason = "a handful of scenarios")]
        let xmax = scen.len() as f64;
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(0.0..xmax, 0.0..ymax)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let names: Vec<String> = scen.iter().map(|s| s.id.to_string()).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(scen.len() * 2 + 1)
            .x_label_formatter(&|x| {
                let f = x.fract();
                #[expect(clippy::cast_possible_truncation, reason = "small index")]
                #[expect(clippy::cast_sign_loss, reason = "non-negative")]
                let i = x.floor() as usize;
                if (f - 0.5).abs() < 0.01 {
                    names.get(i).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_desc("×")
            .draw()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(0.0, 1.0), (xmax, 1.0)],
                BLACK.stroke_width(1),
            )))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        #[expect(clippy::cast_precision_loss, reason = "a handful of paths")]
        let w = 0.8 / rep.paths.len() as f64;
        for (pi, p) in rep.paths.iter().enumerate() {
            let mut bars = Vec::new();
            let mut whiskers = Vec::new();
            for (si, s) in scen.iter().enumerate() {
                let Some(r) = rep
                    .summary
                    .iter()
                    .find(|r| r.scenario == s.id && &r.path == p)
                else {
                    continue;
                };
                let (Some(v), Some(b)) = (val(r), base(r)) else {
                    continue;
                };
                #[expect(clippy::cast_precision_loss, reason = "small indices")]
                let x0 = si as f64 + 0.1 + pi as f64 * w;
                bars.push(Rectangle::new(
                    [(x0, 0.0), (x0 + w * 0.9, v)],
                    colour(pi).filled(),
                ));
                let xm = x0 + w * 0.45;
                whiskers.push(PathElement::new(
                    vec![(xm, r.min / b), (xm, r.max / b)],
                    BLACK.stroke_width(1),
                ));
            }
            chart
                .draw_series(bars)
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .label(p.clone())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], colour(pi).filled())
                });
            chart
                .draw_series(whiskers)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    root.present()
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(scenario: &'static str, path: &str, value: f64) -> Sample {
        Sample {
            scenario,
            path: path.into(),
            round: 0,
            value,
            extra: BTreeMap::new(),
        }
    }

    #[test]
    fn medians() {
        assert!((median(&mut [3.0, 1.0, 2.0]) - 2.0).abs() < 1e-9);
        assert!((median(&mut [4.0, 1.0, 2.0, 3.0]) - 2.5).abs() < 1e-9);
        assert!(median(&mut []).is_nan());
    }

    #[test]
    fn ratios_are_medians_over_the_bridge_and_the_ceiling() {
        let scn = [Scenario {
            id: "u64",
            title: String::new(),
            unit: Unit::Pps,
        }];
        let paths: Vec<String> = ["linux-bridge", "xdp-ceiling", "xennet-xdp", "xennet-tc"]
            .into_iter()
            .map(String::from)
            .collect();
        let samples = vec![
            sample("u64", "linux-bridge", 1.0),
            sample("u64", "linux-bridge", 3.0),
            sample("u64", "linux-bridge", 2.0),
            sample("u64", "xdp-ceiling", 8.0),
            sample("u64", "xennet-xdp", 6.0),
            sample("u64", "xennet-xdp", 4.0),
        ];
        let mut na = BTreeMap::new();
        na.insert(("u64".into(), "xennet-tc".into()), "not built".into());
        let s = summarize(&scn, &paths, &samples, &na);
        assert_eq!(s.len(), 4);
        let x = &s[2];
        assert_eq!((x.path.as_str(), x.rounds), ("xennet-xdp", 2));
        assert!((x.median - 5.0).abs() < 1e-9);
        assert!((x.vs_bridge.unwrap_or(0.0) - 2.5).abs() < 1e-9);
        assert!((x.vs_ceiling.unwrap_or(0.0) - 0.625).abs() < 1e-9);
        assert_eq!((x.min, x.max), (4.0, 6.0));
        assert_eq!(s[3].na.as_deref(), Some("not built"));
        assert!(s[3].vs_bridge.is_none());
    }
}
