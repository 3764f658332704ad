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

/// What to say when the kernel refused for lack of privilege: the agent and its commands
/// need root, or the capabilities named.
fn permission_hint(error: &str) -> Option<&'static str> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let refused = error.contains("Operation not permitted") || error.contains("Permission denied");
    (refused && !root).then_some(
        "permission denied: xennet-agent needs root, or CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON \
         (and read/write access to the control socket and pin directory)",
    )
}

/// `e` and its causes as `{e:#}` does, without a cause that repeats the one before it
/// (aya's map errors name the map twice).
fn message(e: &anyhow::Error) -> String {
    let mut kept: Vec<String> = Vec::new();
    for cause in e.chain() {
        let m = cause.to_string();
        if kept
            .last()
            .is_some_and(|last| last == &m || last.ends_with(&m))
        {
            continue;
        }
        if let Some(last) = kept.last_mut()
            && m.starts_with(last.as_str())
        {
            // The cause repeats this message and adds to it: keep the cause only.
            *last = m;
            continue;
        }
        kept.push(m);
    }
    kept.join(": ")
}

fn main() -> ExitCode {
    let cli = cli::args::Cli::parse();
    init_logging(cli.log_format);
    match cli::execute(cli.cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let text = message(&e);
            // Every line says it is an error, not only the first.
            for line in text.lines() {
                eprintln!("error: {line}");
            }
            if let Some(hint) = permission_hint(&text) {
                eprintln!("error: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}
