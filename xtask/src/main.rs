//! Project tasks: `cargo xtask build-ebpf | test | demo | bench`.

mod bench;
mod demo;
mod leftovers;
mod toolchain;

use std::{
    env,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "xennet project tasks")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install the eBPF toolchain if missing, then build the eBPF object and the agent.
    BuildEbpf {
        /// Build in release mode.
        #[arg(long)]
        release: bool,
    },
    /// Install everything the build, the tests and the demo need (idempotent).
    Setup,
    /// Run every test: host unit tests, `BPF_PROG_TEST_RUN` tests and namespace tests (root).
    Test {
        /// Extra arguments for `cargo test` (after `--`), e.g. a test name filter.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Build, start a simulated dom0 in network namespaces, show forwarding, clean up (root).
    Demo,
    /// Compare xennet with the Linux bridge and an XDP ceiling in network namespaces (root).
    Bench(bench::BenchArgs),
}

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn target_dir() -> PathBuf {
    env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from)
}

/// Run a command in the workspace root, failing with its description if it fails.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let desc = format!("{cmd:?}");
    let status = cmd
        .current_dir(root())
        .status()
        .with_context(|| format!("starting {desc}"))?;
    if !status.success() {
        bail!("{desc} failed with {status}");
    }
    Ok(())
}

fn cargo() -> Command {
    Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Build the agent with its embedded eBPF object; returns the agent binary.
pub fn build_agent(release: bool) -> anyhow::Result<PathBuf> {
    toolchain::ensure_ebpf()?;
    let mut c = cargo();
    c.args(["build", "--package", "xennet-agent"])
        .env("XENNET_REQUIRE_EBPF", "1");
    if release {
        c.arg("--release");
    }
    run(&mut c)?;
    let bin = target_dir()
        .join(if release { "release" } else { "debug" })
        .join("xennet-agent");
    if !bin.exists() {
        bail!("build succeeded but {} is missing", bin.display());
    }
    Ok(bin)
}

fn require_root(what: &str) -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "`cargo xtask {what}` needs root: it creates network namespaces and loads eBPF programs"
        );
    }
    Ok(())
}

fn test(args: &[String]) -> anyhow::Result<()> {
    require_root("test")?;
    toolchain::ensure_test_tools()?;
    // The namespace tests run the agent as shipped: optimised (the scale tests measure it).
    let agent = build_agent(true)?;
    // The tests put their files, sockets and bpffs mounts in a directory of this run's own,
    // which must end empty: what a test leaves behind fails the run.
    let watch = leftovers::Watch::start()?;
    let mut c = cargo();
    // Every test binary runs even when one fails, so a run reports everything.
    c.args(["test", "--no-fail-fast"])
        .env("XENNET_REQUIRE_EBPF", "1")
        .env("XENNET_AGENT", &agent)
        .env("TMPDIR", watch.tmp());
    if !args.is_empty() {
        c.arg("--").args(args);
    }
    let tests = run(&mut c);
    let clean = watch.finish();
    // After the whole suite, a short fuzz run (even when a test failed: report all).
    let fuzz = if args.is_empty() {
        fuzz_short()
    } else {
        Ok(())
    };
    tests.and(clean).and(fuzz)
}

/// How long `cargo xtask test` fuzzes the forwarding core (after building the target).
const FUZZ_SECONDS: u32 = 20;

/// A short run of the fuzz target over the forwarding core (`fuzz/`, cargo-fuzz on nightly,
/// no sanitizer: the core is safe Rust, and the invariants are assertions).
fn fuzz_short() -> anyhow::Result<()> {
    toolchain::ensure_ebpf()?;
    toolchain::ensure_fuzz()?;
    let mut c = Command::new("cargo");
    c.current_dir(root())
        .env("RUSTUP_TOOLCHAIN", "nightly")
        .env_remove("RUSTC")
        .env_remove("CARGO")
        .args(["fuzz", "run", "--sanitizer", "none", "fwd", "--"])
        .arg(format!("-max_total_time={FUZZ_SECONDS}"))
        .arg("-print_final_stats=1");
    run(&mut c).context("the fuzz target over the forwarding core (fuzz/, cargo fuzz)")
}

/// Run the benchmark, whose programs come from the eBPF objects embedded in this binary (the
/// bench object and the datapath's). When xtask was built before the eBPF toolchain existed (a
/// fresh clone), they are empty: rebuild and run xtask again, now that `build_agent` installed
/// the toolchain.
fn bench_with_object(args: &bench::BenchArgs, agent: &Path) -> anyhow::Result<()> {
    if !xennet_agent::ebpf::OBJECT.is_empty() && !xennet_agent::ebpf::BENCH_OBJECT.is_empty() {
        return bench::run(args, agent, &root());
    }
    if env::var_os("XENNET_BENCH_REEXEC").is_some() {
        bail!("xtask still has no eBPF objects after a rebuild");
    }
    eprintln!("xtask: rebuilding xtask with the eBPF objects embedded");
    let mut c = cargo();
    c.args(["run", "--quiet", "--package", "xtask", "--"])
        .args(env::args_os().skip(1))
        .env("XENNET_REQUIRE_EBPF", "1")
        .env("XENNET_BENCH_REEXEC", "1");
    run(&mut c)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::BuildEbpf { release } => build_agent(release).map(|bin| {
            println!("built {} with its eBPF object embedded", bin.display());
        }),
        Cmd::Setup => toolchain::ensure_ebpf().and_then(|()| toolchain::ensure_test_tools()),
        Cmd::Test { args } => test(&args),
        Cmd::Demo => require_root("demo")
            .and_then(|()| toolchain::ensure_test_tools())
            .and_then(|()| build_agent(false))
            .and_then(|agent| demo::run(&agent)),
        Cmd::Bench(args) => require_root("bench")
            .and_then(|()| toolchain::ensure_test_tools())
            .and_then(|()| toolchain::ensure_bench_tools())
            .and_then(|()| match &args.agent {
                Some(a) => Ok(a.clone()),
                None => build_agent(false),
            })
            .and_then(|agent| bench_with_object(&args, &agent)),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
