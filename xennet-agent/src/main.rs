//! `xennet-agent`: run the datapath, check a config, show counters, FDB and ports, reload.

mod cli;
mod daemon;

use std::process::ExitCode;

use clap::Parser as _;

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("XENNET_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    let cli = cli::args::Cli::parse();
    init_logging();
    match cli::execute(cli.cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
