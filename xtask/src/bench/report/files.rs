//! The run's files under the output directory: markdown, JSON and SVG, each stamped with the
//! run's start time and copied as `latest.*`.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use super::{Report, svg::plot, text::markdown};

/// Write `bench-<start>.{svg,md,json}` and `latest.{svg,md,json}` into `out_dir`; returns the
/// stamped SVG's path.
pub fn write(rep: &Report, out_dir: &Path) -> Result<PathBuf> {
    let stem = stem(rep);
    let svg = out_dir.join(format!("{stem}.svg"));
    plot(rep, &svg)?;
    copy(&svg, &out_dir.join("latest.svg"))?;
    let md = markdown(rep, Some(&format!("{stem}.svg")));
    write_file(&out_dir.join(format!("{stem}.md")), &md)?;
    write_file(
        &out_dir.join("latest.md"),
        &markdown(rep, Some("latest.svg")),
    )?;
    let json = serde_json::to_string_pretty(rep).context("serialising the report")?;
    write_file(&out_dir.join(format!("{stem}.json")), &json)?;
    write_file(&out_dir.join("latest.json"), &json)?;
    Ok(svg)
}

/// The name of this run's files without extension.
pub fn stem(rep: &Report) -> String {
    format!("bench-{}", rep.started_unix)
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to)
        .map(drop)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))
}
