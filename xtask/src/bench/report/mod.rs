//! What a run produced (samples, summaries, targets) and its medians and ratios; the
//! renderings live in `text` (terminal, markdown), `svg` (the plot) and `files` (what is
//! written where, JSON included).

mod files;
mod svg;
mod text;

use std::collections::BTreeMap;

use super::{paths::PathKind, scenarios::NO_DUT, topo::Machine};

pub use self::{
    files::{stem, write},
    text::{markdown, terminal},
};

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
    /// TC paths: median / median of the TC ceiling (a bare tcx `bpf_redirect`).
    pub vs_tc_ceiling: Option<f64>,
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
                        vs_tc_ceiling: None,
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
                vs_tc_ceiling: None,
                na: None,
            });
        }
        let base = |name: &str| {
            rows.iter()
                .find(|r| r.path == name && r.na.is_none())
                .map(|r| r.median)
        };
        let (b, c) = (base("linux-bridge"), base("xdp-ceiling"));
        let tc = base(PathKind::TcCeiling.name());
        for r in &mut rows {
            // The null path forwards nothing: no ratio.
            if r.na.is_none() && r.path != NO_DUT {
                r.vs_bridge = b.map(|b| r.median / b);
                r.vs_ceiling = c.map(|c| r.median / c);
                let is_tc = PathKind::ALL
                    .iter()
                    .any(|k| k.name() == r.path && k.is_tc());
                if is_tc {
                    r.vs_tc_ceiling = tc.map(|c| r.median / c);
                }
            }
        }
        out.extend(rows);
    }
    out
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

    #[test]
    fn tc_paths_are_compared_with_the_tc_ceiling_and_the_null_path_with_nothing() {
        let scn = [Scenario {
            id: "u64",
            title: String::new(),
            unit: Unit::Pps,
        }];
        let paths: Vec<String> = [
            NO_DUT,
            "linux-bridge",
            "xdp-ceiling",
            "xennet-xdp",
            "tc-ceiling",
            "xennet-tc",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        let samples = vec![
            sample("u64", NO_DUT, 6.0),
            sample("u64", "linux-bridge", 1.0),
            sample("u64", "xdp-ceiling", 4.0),
            sample("u64", "xennet-xdp", 2.0),
            sample("u64", "tc-ceiling", 1.25),
            sample("u64", "xennet-tc", 1.0),
        ];
        let s = summarize(&scn, &paths, &samples, &BTreeMap::new());
        let row = |p: &str| s.iter().find(|r| r.path == p).expect("row");
        let null = row(NO_DUT);
        assert!(null.vs_bridge.is_none() && null.vs_ceiling.is_none());
        assert!(null.vs_tc_ceiling.is_none());
        assert!((row("xennet-tc").vs_tc_ceiling.unwrap_or(0.0) - 0.8).abs() < 1e-9);
        assert!((row("xennet-tc").vs_ceiling.unwrap_or(0.0) - 0.25).abs() < 1e-9);
        assert!((row("tc-ceiling").vs_tc_ceiling.unwrap_or(0.0) - 1.0).abs() < 1e-9);
        // XDP paths and bridges are not TC paths.
        assert!(row("xennet-xdp").vs_tc_ceiling.is_none());
        assert!(row("linux-bridge").vs_tc_ceiling.is_none());
    }
}
