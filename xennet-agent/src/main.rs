//! `xennet-agent`: run the datapath, check a config, show counters, FDB and ports, reload.

mod cli;
mod daemon;

use std::{io::IsTerminal as _, process::ExitCode};

use clap::Parser as _;

/// Logs go to stderr, filtered by `XENNET_LOG` (default `info`): as text, with colour codes
/// only when stderr is a terminal (not into files or the journal), or as JSON lines.
fn init_logging(format: cli::args::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("XENNET_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        cli::args::LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        cli::args::LogFormat::Json => builder.json().with_ansi(false).init(),
    }
}

fn main() -> ExitCode {
    let cli = cli::args::Cli::parse();
    init_logging(cli.log_format);
    match cli::execute(cli.cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
