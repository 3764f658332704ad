//! `xennet-agent`: run the datapath, check a config, show counters.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tracing::info;
use xennet_agent::{config::Config, datapath::Datapath, stats};

/// eBPF/XDP VLAN-aware L2 forwarding for Xen dom0.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Load the datapath, attach every configured port, and run until SIGINT/SIGTERM.
    Run {
        /// Configuration file (TOML).
        #[arg(short, long)]
        config: PathBuf,
        /// Pin the maps here instead of the config's `pin_dir`.
        #[arg(long)]
        pin_dir: Option<PathBuf>,
    },
    /// Validate a configuration file without touching the kernel.
    Check {
        /// Configuration file (TOML).
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Print the per-port counters of the running datapath.
    Stats {
        /// Read the pin directory named in this configuration file.
        #[arg(short, long, conflicts_with = "pin_dir")]
        config: Option<PathBuf>,
        /// Pin directory of the running agent.
        #[arg(long, default_value = xennet_agent::config::DEFAULT_PIN_DIR)]
        pin_dir: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("XENNET_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

async fn wait_for_stop() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

fn run(config: &std::path::Path, pin_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let mut cfg = Config::load(config)?;
    if let Some(dir) = pin_dir {
        cfg.pin_dir = dir;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    rt.block_on(async {
        let mut dp = Datapath::load(&cfg.pin_dir)?;
        dp.apply(&cfg)?;
        dp.pin()?;
        let ports = dp.ports().len();
        info!(bridges = cfg.bridges.len(), ports, pin_dir = %cfg.pin_dir.display(), "running");
        // A line on stdout that scripts and tests wait for.
        println!(
            "xennet-agent: ready ({} bridges, {ports} ports)",
            cfg.bridges.len()
        );
        let sig = wait_for_stop().await?;
        info!(signal = sig, "stopping");
        drop(dp);
        Ok(())
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.cmd {
        Cmd::Run { config, pin_dir } => run(&config, pin_dir),
        Cmd::Check { config } => Config::load(&config)
            .map(|cfg| {
                let ports: usize = cfg.bridges.iter().map(|b| b.ports.len()).sum();
                println!(
                    "{}: ok ({} bridges, {ports} ports)",
                    config.display(),
                    cfg.bridges.len()
                );
            })
            .map_err(anyhow::Error::from),
        Cmd::Stats {
            config,
            pin_dir,
            json,
        } => (|| {
            let dir = match config {
                Some(c) => Config::load(&c)?.pin_dir,
                None => pin_dir,
            };
            let ports = stats::read(&dir)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&ports).context("encoding JSON")?
                );
            } else {
                print!("{}", stats::render(&ports));
            }
            Ok(())
        })(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
