//! The records kept beside a pinned datapath (bpffs holds no regular files, so they live in
//! [`STATE_DIR`], named after `pin_dir`): the single-instance lock and the state file (bridge
//! ids, how each port is attached, run-time ports, host ports the agent created).

use std::{
    collections::{BTreeMap, BTreeSet},
    fs::{self, File, OpenOptions},
    io::{Read as _, Write as _},
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};
use aya::maps::{HashMap, Map, MapData};
use serde::{Deserialize, Serialize};
use xennet_common::maps::{FdbKey, FdbVal, MAP_FDB};

use super::{Attached, FdbEntry};
use crate::{control::PortAdd, stats::ifname};

/// Where the lock and state files live (tmpfs, like bpffs: both go at reboot).
pub const STATE_DIR: &str = "/run/xennet/state";

/// `pin_dir` as one file name: `/` → `%2F` (and `%` → `%25`).
fn stem(pin_dir: &Path) -> String {
    pin_dir
        .to_string_lossy()
        .replace('%', "%25")
        .replace('/', "%2F")
}

/// The lock file of the agent that owns `pin_dir`.
#[must_use]
pub fn lock_path(pin_dir: &Path) -> PathBuf {
    Path::new(STATE_DIR).join(format!("{}.lock", stem(pin_dir)))
}

/// The state file of the datapath pinned under `pin_dir`.
#[must_use]
pub fn state_path(pin_dir: &Path) -> PathBuf {
    Path::new(STATE_DIR).join(format!("{}.json", stem(pin_dir)))
}

/// An exclusive `flock` on `pin_dir`'s lock file, held as long as this value lives (the
/// kernel drops it when the process dies, however it dies). The file holds the owner's pid.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

fn flock(file: &File, op: libc::c_int) -> std::io::Result<()> {
    // SAFETY: a valid open descriptor.
    if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn read_pid(file: &mut File) -> String {
    let mut s = String::new();
    let _ = file.read_to_string(&mut s);
    match s.trim() {
        "" => "unknown".to_owned(),
        p => p.to_owned(),
    }
}

impl Lock {
    /// Take the lock of `pin_dir` for process `pid`, or fail naming the process that holds it.
    pub fn acquire(pin_dir: &Path) -> anyhow::Result<Lock> {
        fs::create_dir_all(STATE_DIR).with_context(|| format!("creating {STATE_DIR}"))?;
        let path = lock_path(pin_dir);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening lock file {}", path.display()))?;
        if let Err(e) = flock(&file, libc::LOCK_EX | libc::LOCK_NB) {
            if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                bail!(
                    "another xennet-agent (pid {}) is running with pin_dir {}: one agent per \
                     pin_dir (lock {})",
                    read_pid(&mut file),
                    pin_dir.display(),
                    path.display()
                );
            }
            return Err(e).with_context(|| format!("locking {}", path.display()));
        }
        file.set_len(0).context("truncating the lock file")?;
        writeln!(file, "{}", std::process::id()).context("writing the lock file")?;
        Ok(Lock { _file: file })
    }
}

/// The pid of the agent holding `pin_dir`'s lock, if one runs.
#[must_use]
pub fn holder(pin_dir: &Path) -> Option<String> {
    let mut file = File::open(lock_path(pin_dir)).ok()?;
    match flock(&file, libc::LOCK_SH | libc::LOCK_NB) {
        Ok(()) => {
            let _ = flock(&file, libc::LOCK_UN);
            None
        }
        Err(_) => Some(read_pid(&mut file)),
    }
}

/// How one attached port was attached (what the maps do not say).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PortRecord {
    /// Bridge name.
    pub bridge: String,
    /// Interface index when attached.
    pub ifindex: u32,
    /// Configured attach mode (`auto`, `xdp`, `xdp-generic`, `tc`).
    pub attach: String,
    /// Attach mode in effect.
    pub attached: Attached,
    /// Bridge side of a host port.
    pub host: bool,
    /// `access N`, `trunk A,B native N`, … as `ports` shows it.
    #[serde(default)]
    pub vlans: String,
    /// Stats slot (what an upgrade that rebuilds the port map keeps); 0 = not recorded.
    #[serde(default)]
    pub slot: u32,
}

/// The state file.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct State {
    /// The map layout stamp of the build that wrote it.
    pub layout: String,
    /// The counter names of that build, in `XN_STATS` order (an upgrade carries counters by
    /// name); absent in files of older builds.
    #[serde(default)]
    pub stats: Option<Vec<String>>,
    /// Bridge name → bridge id in the maps.
    pub bridges: BTreeMap<String, u32>,
    /// Attached ports by interface name.
    pub ports: BTreeMap<String, PortRecord>,
    /// Run-time ports: the `port add` requests, by interface.
    pub runtime: BTreeMap<String, PortAdd>,
    /// dom0 sides of host ports the agent created (deleted by `down`).
    pub host_ports: BTreeSet<String>,
}

impl State {
    /// Read the state file of `pin_dir`; `None` when there is none.
    pub fn load(pin_dir: &Path) -> anyhow::Result<Option<State>> {
        let path = state_path(pin_dir);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        serde_json::from_str(&text)
            .map(Some)
            .with_context(|| format!("parsing {}", path.display()))
    }

    /// Write the state file of `pin_dir` atomically (a temporary file renamed over it).
    pub fn save(&self, pin_dir: &Path) -> anyhow::Result<()> {
        fs::create_dir_all(STATE_DIR).with_context(|| format!("creating {STATE_DIR}"))?;
        let path = state_path(pin_dir);
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self).context("encoding the state")?;
        let mut f = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .with_context(|| format!("writing {}", tmp.display()))?;
        fs::rename(&tmp, &path).with_context(|| format!("renaming to {}", path.display()))
    }

    /// Remove the state and lock files of `pin_dir` (after `down`).
    pub fn remove(pin_dir: &Path) {
        let _ = fs::remove_file(state_path(pin_dir));
        let _ = fs::remove_file(lock_path(pin_dir));
    }
}

/// The FDB of the datapath pinned under `pin_dir`, read without an agent (`fdb show` while
/// it is down): bridge names from the state file, port names from this namespace.
pub fn offline_fdb(pin_dir: &Path, bridge: Option<&str>) -> anyhow::Result<Vec<FdbEntry>> {
    let state = State::load(pin_dir)?.unwrap_or_default();
    let names: BTreeMap<u32, &String> = state.bridges.iter().map(|(n, i)| (*i, n)).collect();
    let path = pin_dir.join(MAP_FDB);
    let data = MapData::from_pin(&path).with_context(|| format!("opening {}", path.display()))?;
    let fdb: HashMap<MapData, FdbKey, FdbVal> =
        HashMap::try_from(Map::from_map_data(data).context("XN_FDB")?).context("XN_FDB type")?;
    super::fdb::list_fdb(
        &fdb,
        bridge,
        |id| {
            names
                .get(&id)
                .map_or_else(|| format!("#{id}"), |n| (*n).clone())
        },
        ifname,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_file_per_pin_dir() {
        let a = state_path(Path::new("/sys/fs/bpf/xennet"));
        assert_eq!(
            a,
            Path::new("/run/xennet/state/%2Fsys%2Ffs%2Fbpf%2Fxennet.json")
        );
        assert_ne!(
            lock_path(Path::new("/a%2Fb")),
            lock_path(Path::new("/a/b")),
            "escaping keeps distinct directories distinct"
        );
    }
}
