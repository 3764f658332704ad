//! Installs what the build and the tests need when it is missing — idempotently, saying what
//! it does. The recipe: nightly with rust-src for `-Z build-std=core`, and bpf-linker built
//! against Debian's LLVM 22 (the LLVM of the nightly rustc).

use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

use crate::run;

/// bpf-linker version known to work with LLVM 22 here.
const BPF_LINKER_VERSION: &str = "0.13.0";
/// Debian packages bpf-linker's LLVM 22 build links against.
const LLVM_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "zlib1g-dev",
];
/// Commands the tests and the demo call, with the Debian package providing each.
const TEST_TOOLS: &[(&str, &str)] = &[
    ("ip", "iproute2"),
    ("ethtool", "ethtool"),
    ("ping", "iputils-ping"),
    ("nsenter", "util-linux"),
    ("python3", "python3"),
    // The bandwidth-limit tests measure with iperf3.
    ("iperf3", "iperf3"),
    // The observability test scrapes the agent with a real Prometheus and lints a scrape.
    ("prometheus", "prometheus"),
    ("promtool", "prometheus"),
];

/// Commands only `cargo xtask bench` calls.
const BENCH_TOOLS: &[(&str, &str)] = &[
    ("iptables", "iptables"),
    ("bridge", "iproute2"),
    ("sysctl", "procps"),
];

fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let o = cmd.output().with_context(|| format!("starting {cmd:?}"))?;
    if !o.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&o.stderr));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

fn dpkg_installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

/// `apt-get install` the packages that are not installed yet.
fn apt_install(pkgs: &[&str]) -> anyhow::Result<()> {
    let missing: Vec<&str> = pkgs
        .iter()
        .copied()
        .filter(|p| !dpkg_installed(p))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing Debian packages: {}", missing.join(" "));
    run(Command::new("apt-get").args(["update", "-q"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

/// Nightly with rust-src, and bpf-linker.
pub fn ensure_ebpf() -> anyhow::Result<()> {
    if !succeeds(Command::new("rustup").args(["run", "nightly", "rustc", "--version"])) {
        eprintln!("xtask: installing the nightly toolchain (needed for -Z build-std)");
        run(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
        ]))?;
    }
    let comps = output(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]))?;
    if !comps.lines().any(|l| l.starts_with("rust-src")) {
        eprintln!("xtask: adding rust-src to the nightly toolchain");
        run(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            "nightly",
        ]))?;
    }
    if !succeeds(Command::new("bpf-linker").arg("--version")) {
        apt_install(LLVM_PACKAGES)?;
        eprintln!(
            "xtask: building bpf-linker {BPF_LINKER_VERSION} against LLVM 22 (about a minute)"
        );
        run(Command::new("cargo")
            .args([
                "install",
                "bpf-linker",
                "--locked",
                "--version",
                BPF_LINKER_VERSION,
                "--no-default-features",
                "--features",
                "llvm-22",
            ])
            .env("LLVM_PREFIX", "/usr/lib/llvm-22"))?;
        if !succeeds(Command::new("bpf-linker").arg("--version")) {
            bail!("bpf-linker installed but not on PATH: add ~/.cargo/bin to PATH");
        }
    }
    Ok(())
}

/// cargo-fuzz version the fuzz target is run with (`cargo xtask test`).
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// What the short fuzz run of `cargo xtask test` needs: nightly (installed by
/// [`ensure_ebpf`]), a C++ compiler (libfuzzer-sys builds libFuzzer) and cargo-fuzz.
pub fn ensure_fuzz() -> anyhow::Result<()> {
    if !succeeds(Command::new("sh").args(["-c", "command -v c++"])) {
        apt_install(&["g++"])?;
    }
    if !succeeds(Command::new("cargo").args(["fuzz", "--version"])) {
        eprintln!("xtask: installing cargo-fuzz {CARGO_FUZZ_VERSION}");
        run(Command::new("cargo").args([
            "install",
            "cargo-fuzz",
            "--locked",
            "--version",
            CARGO_FUZZ_VERSION,
        ]))?;
    }
    Ok(())
}

/// The commands the namespace tests and the demo run.
pub fn ensure_test_tools() -> anyhow::Result<()> {
    let missing: Vec<&str> = TEST_TOOLS
        .iter()
        .filter(|(cmd, _)| !succeeds(Command::new("sh").args(["-c", &format!("command -v {cmd}")])))
        .map(|(_, pkg)| *pkg)
        .collect();
    apt_install(&missing)
}

/// The commands the benchmark runs besides the test tools.
pub fn ensure_bench_tools() -> anyhow::Result<()> {
    let missing: Vec<&str> = BENCH_TOOLS
        .iter()
        .filter(|(cmd, _)| !succeeds(Command::new("sh").args(["-c", &format!("command -v {cmd}")])))
        .map(|(_, pkg)| *pkg)
        .collect();
    apt_install(&missing)
}
