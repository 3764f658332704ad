//! What a test run left behind: its private temporary directory must end empty and no network
//! namespace of a finished test process may remain; whatever did remain is listed, then removed
//! (and what killed runs left is removed before the next run starts).

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

/// A test run's private `TMPDIR` (every test names its files, sockets and bpffs mounts under
/// `std::env::temp_dir()`), and the namespaces there were before the run.
pub struct Watch {
    tmp: PathBuf,
    netns_before: BTreeSet<String>,
}

impl Watch {
    /// A fresh, empty temporary directory for the run of this xtask process, after removing
    /// what earlier runs that were killed (their test processes gone) left: their namespaces
    /// and their temporary directories, bpffs mounts included.
    pub fn start() -> Result<Watch> {
        sweep_killed_runs()?;
        let tmp = std::env::temp_dir().join(format!("{RUN_DIR}{}", std::process::id()));
        if tmp.exists() {
            clean(&tmp)?;
        }
        fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        Ok(Watch {
            tmp,
            netns_before: netns()?,
        })
    }

    /// The directory to give the tests as `TMPDIR`.
    pub fn tmp(&self) -> &Path {
        &self.tmp
    }

    /// Removes what the run left and fails listing it: entries of the temporary directory, and
    /// namespaces named by the tests' pattern (`xn-{tag}-{pid}-{n}`) that did not exist before
    /// and whose test process has ended (a live one belongs to another run).
    pub fn finish(self) -> Result<()> {
        let mut left: Vec<String> = fs::read_dir(&self.tmp)
            .with_context(|| format!("listing {}", self.tmp.display()))?
            .filter_map(Result::ok)
            .map(|e| e.path().display().to_string())
            .collect();
        left.sort();
        let stale: Vec<String> = netns()?
            .difference(&self.netns_before)
            .filter(|n| test_ns(n).is_some_and(|(_, pid)| !alive(pid)))
            .cloned()
            .collect();
        for n in &stale {
            delete_netns(n);
        }
        clean(&self.tmp)?;
        if left.is_empty() && stale.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = left
            .into_iter()
            .chain(stale.into_iter().map(|n| format!("network namespace {n}")))
            .collect();
        bail!(
            "the tests left these behind (now removed); a test must remove what it creates:\n  {}",
            names.join("\n  ")
        )
    }
}

/// The prefix of a run's temporary directory, followed by the xtask process id.
const RUN_DIR: &str = "xennet-test-run-";

/// Whether process `pid` (a number, as names carry it) is alive.
pub fn alive(pid: impl std::fmt::Display) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Delete network namespace `name`, killing what still runs in it first (an agent that a killed
/// test left running keeps the namespace, and its datapath, alive otherwise).
fn delete_netns(name: &str) {
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ip netns pids {name} | xargs -r kill -9; ip netns del {name}"
        ))
        .status();
}

/// Remove the namespaces `xn-{tag}-{pid}-{n}` whose process is gone and whose tag `wanted`
/// accepts (a run killed before its end leaves them), saying so as `who`.
pub fn remove_dead_netns(who: &str, wanted: impl Fn(&str) -> bool) -> Result<()> {
    for n in netns()? {
        if test_ns(&n).is_some_and(|(tag, pid)| wanted(tag) && !alive(pid)) {
            eprintln!("{who}: removing network namespace {n}, left by a killed run");
            delete_netns(&n);
        }
    }
    Ok(())
}

/// Remove the namespaces of test processes that are gone and the temporary directories of
/// xtask runs that are gone (a run killed before its end leaves both), saying what went.
fn sweep_killed_runs() -> Result<()> {
    remove_dead_netns("xtask", |_| true)?;
    let tmp = std::env::temp_dir();
    for e in fs::read_dir(&tmp)
        .with_context(|| format!("listing {}", tmp.display()))?
        .filter_map(Result::ok)
    {
        let name = e.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix(RUN_DIR)
            .and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|pid| !alive(pid)) {
            eprintln!(
                "xtask: removing {}, left by a killed test run",
                e.path().display()
            );
            clean(&e.path())?;
        }
    }
    Ok(())
}

/// The network namespaces by name (`ip netns list`).
fn netns() -> Result<BTreeSet<String>> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .context("running ip netns list")?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}

/// The tag and the process id in a namespace name `xn-{tag}-{pid}-{n}` (the tests' and the
/// bench's pattern; a tag may hold dashes).
fn test_ns(name: &str) -> Option<(&str, u32)> {
    let mut parts = name.strip_prefix("xn-")?.rsplitn(3, '-');
    let _n = parts.next()?;
    let pid = parts.next()?.parse().ok()?;
    Some((parts.next()?, pid))
}

/// Unmount any bpffs left mounted inside `dir`, then remove it.
fn clean(dir: &Path) -> Result<()> {
    let mounts = fs::read_to_string("/proc/self/mounts").context("reading /proc/self/mounts")?;
    let prefix = format!("{}/", dir.display());
    for m in mounts.lines().filter_map(|l| l.split_whitespace().nth(1)) {
        if m.starts_with(&prefix) {
            let _ = Command::new("umount").arg(m).status();
        }
    }
    fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tag_and_pid_come_from_the_namespace_name() {
        assert_eq!(test_ns("xn-rxv0-d0-14974-13"), Some(("rxv0-d0", 14974)));
        assert_eq!(test_ns("xn-hostx-d0-24537-0"), Some(("hostx-d0", 24537)));
        assert_eq!(test_ns("xn-bgen-7-0"), Some(("bgen", 7)));
        assert_eq!(test_ns("other-ns-1-2"), None);
        assert_eq!(test_ns("xn-bad"), None);
        assert_eq!(test_ns("xn-12-0"), None);
    }
}
