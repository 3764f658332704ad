//! The SVG plot of a run: every path's ratio to the Linux bridge and to the XDP ceiling.

use std::path::Path;

use anyhow::{Context as _, Result};
use plotters::{coord::Shift, prelude::*};

use super::{Report, Scenario, Summary};

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
        chart(rep, &scen, area, which)?;
    }
    root.present()
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

/// The ratio a chart shows: `which` 0 to the Linux bridge, 1 to the ceiling.
fn val(r: &Summary, which: usize) -> Option<f64> {
    if which == 0 {
        r.vs_bridge
    } else {
        r.vs_ceiling
    }
}

/// The median a chart divides by, in `r`'s scenario.
fn base(rep: &Report, r: &Summary, which: usize) -> Option<f64> {
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
}

/// A point of a chart: (scenario position, ratio).
type Point = (f64, f64);

/// The bars and min–max whiskers of path number `pi` (of width `width`) over the scenarios.
fn bars(
    rep: &Report,
    scen: &[&Scenario],
    which: usize,
    pi: usize,
    width: f64,
) -> (Vec<Rectangle<Point>>, Vec<PathElement<Point>>) {
    let path = &rep.paths[pi];
    let mut bars = Vec::new();
    let mut whiskers = Vec::new();
    for (si, s) in scen.iter().enumerate() {
        let Some(r) = rep
            .summary
            .iter()
            .find(|r| r.scenario == s.id && &r.path == path)
        else {
            continue;
        };
        let (Some(v), Some(b)) = (val(r, which), base(rep, r, which)) else {
            continue;
        };
        #[expect(clippy::cast_precision_loss, reason = "small indices")]
        let x0 = si as f64 + 0.1 + pi as f64 * width;
        bars.push(Rectangle::new(
            [(x0, 0.0), (x0 + width * 0.9, v)],
            colour(pi).filled(),
        ));
        let xm = x0 + width * 0.45;
        whiskers.push(PathElement::new(
            vec![(xm, r.min / b), (xm, r.max / b)],
            BLACK.stroke_width(1),
        ));
    }
    (bars, whiskers)
}

/// One of the two charts: `which` 0 is the ratio to the Linux bridge, 1 to the ceiling.
fn chart(
    rep: &Report,
    scen: &[&Scenario],
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    which: usize,
) -> Result<()> {
    let title = if which == 0 {
        "ratio to the Linux bridge (RTT: lower is better)"
    } else {
        "ratio to the XDP ceiling (bare devmap redirect)"
    };
    let ymax = rep
        .summary
        .iter()
        .filter_map(|r| {
            let b = base(rep, r, which)?;
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
        let (bars, whiskers) = bars(rep, scen, which, pi, w);
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
    Ok(())
}
