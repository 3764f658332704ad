//! The command line of `cargo xtask bench`, its checks, and the run parameters derived from it.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use anyhow::{Result, bail};

use super::cpu::Placement;

/// Options of `cargo xtask bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// A short run (about a minute and a half): 2 rounds, short windows.
    #[arg(long)]
    pub quick: bool,
    /// Rounds (every path, every scenario, alternating); default 7 (quick: 2); TCP and ping
    /// run at most 5.
    #[arg(long)]
    pub rounds: Option<usize>,
    /// Seconds per measurement window; default 1 (quick: 0.5).
    #[arg(long)]
    pub window: Option<f64>,
    /// Output directory; default `target/bench`.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Source MACs of the generated traffic (a power of two ≤ 4096).
    #[arg(long, default_value_t = 16)]
    pub flows: u16,
    /// Egress ports of the broadcast flood scenario.
    #[arg(long, default_value_t = 4)]
    pub flood_ports: usize,
    /// Size of the large FDB in the FDB scenario.
    #[arg(long, default_value_t = 1_000_000)]
    pub fdb_entries: u32,
    /// Destinations the FDB scenario's traffic cycles through (a power of two ≤ 4096).
    #[arg(long, default_value_t = 1024)]
    pub fdb_hot: u32,
    /// Frame size of the large-frame scenario, without FCS (1514 = a 1500-byte IP MTU).
    #[arg(long, default_value_t = 1514)]
    pub large: usize,
    /// CPU of the generator (and of everything with `--placement one-cpu`, of the sinks with
    /// `split`).
    #[arg(long, default_value_t = 0)]
    pub gen_cpu: usize,
    /// CPU of the device under test (its ingress NAPI thread; with `dut-sink` the sinks too).
    #[arg(long, default_value_t = 1)]
    pub dut_cpu: usize,
    /// Where generator, DUT and sinks run: `dut-sink` (generator alone on its CPU, DUT and
    /// sinks on the DUT's), `one-cpu` (all on the generator's CPU, a plain veth setup) or
    /// `split` (sinks with the generator, the layout before `dut-sink`).
    #[arg(long, value_enum, default_value_t = Placement::OneCpu)]
    pub placement: Placement,
    /// Replace the generated section of docs/benchmarks.md with this run's markdown.
    #[arg(long)]
    pub update_docs: bool,
    /// Only these scenarios (comma-separated ids: u64, u64-tagged, large, flood, fdb-1k,
    /// fdb-big, tcp, tcp-nocsum, rtt); default all.
    #[arg(long, value_delimiter = ',')]
    pub scenarios: Vec<String>,
    /// Only these paths (comma-separated: `linux-bridge`, `bridge+br_netfilter`,
    /// `xdp-ceiling`, `xennet-xdp`, `tc-ceiling`, `xennet-tc`, `bridge+xen-antispoof`,
    /// `xennet-tc-portsec`); default all.
    #[arg(long, value_delimiter = ',')]
    pub paths: Vec<String>,
    /// Frames per live-frame batch of the generator (1..=256).
    #[arg(long, default_value_t = 256)]
    pub gen_batch: u32,
    /// Only the program-cost measurements (the `BPF_PROG_TEST_RUN` ladder and the in-situ
    /// `bpf_stats` windows) on one DUT, printed; seconds instead of minutes, no report files.
    #[arg(long)]
    pub ladder_only: bool,
    /// With `--ladder-only`: another build of the datapath object (for example main's, saved
    /// before a change); its `xennet_xdp` and `xennet_tc` run in every ladder round next to
    /// this build's, on maps filled the same way, for an A/B side by side in one run.
    /// `--rounds` sets the ladder's rounds in this mode (default 5).
    #[arg(long, requires = "ladder_only")]
    pub compare: Option<PathBuf>,
    /// Use this xennet-agent binary instead of building one.
    #[arg(long)]
    pub agent: Option<PathBuf>,
}

impl BenchArgs {
    /// Whether scenario `scn` runs (no `--scenarios`: every one).
    pub fn wants(&self, scn: &str) -> bool {
        self.scenarios.is_empty() || self.scenarios.iter().any(|x| x == scn)
    }

    /// Refuse values the run cannot use.
    pub fn check(&self) -> Result<()> {
        if !self.flows.is_power_of_two() || self.flows > 4096 {
            bail!("--flows must be a power of two ≤ 4096");
        }
        if !self.fdb_hot.is_power_of_two() || self.fdb_hot > 4096 || self.fdb_hot > self.fdb_entries
        {
            bail!("--fdb-hot must be a power of two ≤ 4096 and ≤ --fdb-entries");
        }
        if !(60..=3000).contains(&self.large) {
            bail!("--large must be 60..=3000 bytes");
        }
        if !(1..=9).contains(&self.flood_ports) {
            bail!("--flood-ports must be 1..=9");
        }
        Ok(())
    }
}

/// The run's rounds, windows and repetitions, from the options (`--quick` or not).
pub struct Params {
    pub rounds: usize,
    pub warmup: Duration,
    pub window: Duration,
    pub iperf_secs: f64,
    pub pings: u32,
    pub ladder_rounds: usize,
    pub ladder_repeat: u32,
    pub gen_batch: u32,
}

impl Params {
    pub fn new(args: &BenchArgs) -> Params {
        Params {
            rounds: args.rounds.unwrap_or(if args.quick { 2 } else { 7 }).max(1),
            warmup: Duration::from_secs_f64(if args.quick { 0.2 } else { 0.3 }),
            window: Duration::from_secs_f64(args.window.unwrap_or(if args.quick {
                0.5
            } else {
                1.0
            })),
            iperf_secs: if args.quick { 1.0 } else { 2.0 },
            pings: if args.quick { 50 } else { 200 },
            ladder_rounds: match (args.ladder_only, args.rounds) {
                (true, Some(r)) => r.max(1),
                _ => {
                    if args.quick {
                        2
                    } else {
                        5
                    }
                }
            },
            ladder_repeat: if args.quick { 1 << 18 } else { 1 << 20 },
            gen_batch: args.gen_batch.clamp(1, 256),
        }
    }

    /// The parameters as the report lists them.
    pub fn listed(
        &self,
        args: &BenchArgs,
        gen_cpu: usize,
        dut_cpu: usize,
    ) -> BTreeMap<String, String> {
        let mut params = BTreeMap::new();
        params.insert("rounds".into(), self.rounds.to_string());
        params.insert(
            "window_s".into(),
            format!("{:.2}", self.window.as_secs_f64()),
        );
        params.insert(
            "warmup_s".into(),
            format!("{:.2}", self.warmup.as_secs_f64()),
        );
        params.insert("flows (source MACs)".into(), args.flows.to_string());
        params.insert("flood_ports".into(), args.flood_ports.to_string());
        params.insert("fdb_entries".into(), args.fdb_entries.to_string());
        params.insert("fdb_hot".into(), args.fdb_hot.to_string());
        params.insert("iperf_s".into(), format!("{}", self.iperf_secs));
        params.insert("pings".into(), self.pings.to_string());
        params.insert("gen_batch".into(), self.gen_batch.to_string());
        params.insert("gen_cpu".into(), gen_cpu.to_string());
        params.insert("dut_cpu".into(), dut_cpu.to_string());
        params.insert("placement".into(), args.placement.name().to_string());
        params
    }
}

/// This run's command line as the report shows it: `cargo xtask bench` and its options.
pub fn command_line() -> String {
    let mut command = String::from("cargo xtask bench");
    for a in std::env::args().skip_while(|a| a != "bench").skip(1) {
        command.push(' ');
        command.push_str(&a);
    }
    command
}
