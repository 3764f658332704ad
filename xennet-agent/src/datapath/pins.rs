//! Pinning the maps, making sure the pin directory lies on a bpf filesystem (mounting one on
//! the conventional root when needed), and removing a pinned datapath ([`teardown`]).

use std::{ffi::CString, fs, path::Path};

use anyhow::{Context as _, anyhow, bail};
use tracing::{info, warn};
use xennet_common::maps::{
    MAP_FDB, MAP_FLOOD, MAP_FLOODG, MAP_IFSLOTS, MAP_LEARNED, MAP_MEMBERS, MAP_PORTS, MAP_SLOTS,
    MAP_STATS, MAP_TX,
};
use xennet_common::rate::MAP_RATES;
use xennet_common::{
    fdbcache::{MAP_FDBCACHE, MAP_FDBGEN},
    monitor::{MAP_LOGS, MAP_MONITOR},
    vstats::{MAP_VSLOTS, MAP_VSTATS},
};

use super::Datapath;
use crate::paths::{BPFFS_ROOT, BPFFS_ROOT_C, NETNS_DIR};

use super::attach::LinkKind;

/// Every map of the datapath, each pinned under its own name. aya-log's ring buffer is one
/// of them: a restarted agent's programs then write into the ring a running monitor reads.
pub const MAPS: [&str; 17] = [
    MAP_PORTS,
    MAP_SLOTS,
    MAP_IFSLOTS,
    MAP_FDB,
    MAP_FDBCACHE,
    MAP_FDBGEN,
    MAP_STATS,
    MAP_TX,
    MAP_FLOOD,
    MAP_FLOODG,
    MAP_LEARNED,
    MAP_MEMBERS,
    MAP_RATES,
    MAP_VSTATS,
    MAP_VSLOTS,
    MAP_MONITOR,
    MAP_LOGS,
];

/// What [`teardown`] removed.
#[derive(Debug, Default)]
pub struct Teardown {
    /// Links unpinned (each detached a program from an interface).
    pub links: usize,
    /// Map pins removed.
    pub maps: usize,
}

/// Remove the datapath pinned under `pin_dir`: unpin every link (which detaches its program)
/// and every map, then the directory. Anything else found in the directory is left, and said.
pub fn teardown(pin_dir: &Path) -> anyhow::Result<Teardown> {
    let mut done = Teardown::default();
    let entries = match fs::read_dir(pin_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(done),
        Err(e) => return Err(e).with_context(|| format!("reading {}", pin_dir.display())),
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    // Links first (XDP before TC, as the XDP program defers to TC), then maps.
    names.sort_by_key(|n| match LinkKind::parse_pin_name(n) {
        Some((LinkKind::Xdp | LinkKind::Pass, _)) => 0,
        Some((LinkKind::Tc, _)) => 1,
        None => 2,
    });
    for n in names {
        let path = pin_dir.join(&n);
        if LinkKind::parse_pin_name(&n).is_some() {
            // Hold the link across the unpin: our close is then the last reference, which
            // detaches it before `down` returns (the pin's own release is deferred).
            let held = aya::programs::links::PinnedLink::from_pin(&path).ok();
            fs::remove_file(&path).with_context(|| format!("unpinning {}", path.display()))?;
            drop(held);
            done.links += 1;
        } else if super::migrate::is_map_pin(&n) || super::attach::is_chain_pin(&n) {
            fs::remove_file(&path).with_context(|| format!("unpinning {}", path.display()))?;
            done.maps += 1;
        } else {
            warn!(path = %path.display(), "not xennet's: left in place");
        }
    }
    if let Err(e) = fs::remove_dir(pin_dir) {
        warn!(dir = %pin_dir.display(), error = %e, "pin directory left in place");
    }
    Ok(done)
}

impl Datapath {
    /// Pin the maps of an ephemeral datapath under the pin directory (for `stats`); they are
    /// removed when it is dropped. A persistent datapath pins them when it loads.
    pub fn pin(&mut self) -> anyhow::Result<()> {
        if self.persistent {
            return Ok(());
        }
        ensure_bpffs(&self.pin_dir)?;
        fs::create_dir_all(&self.pin_dir)
            .with_context(|| format!("creating pin directory {}", self.pin_dir.display()))?;
        for name in MAPS {
            let path = self.pin_dir.join(name);
            if path.exists() {
                warn!(path = %path.display(), "removing stale pin");
                fs::remove_file(&path)
                    .with_context(|| format!("removing stale pin {}", path.display()))?;
            }
            let map = self
                .ebpf
                .map(name)
                .ok_or_else(|| anyhow!("object has no map {name}"))?;
            map.pin(&path)
                .with_context(|| format!("pinning {name} at {}", path.display()))?;
            self.pinned.push(path);
        }
        Ok(())
    }
}

fn is_bpffs(path: &Path) -> anyhow::Result<bool> {
    const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
    let c = CString::new(path.as_os_str().as_encoded_bytes())
        .with_context(|| format!("path {} contains NUL", path.display()))?;
    // SAFETY: a zeroed statfs is a valid out-parameter; c is NUL-terminated.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &raw mut st) } != 0 {
        bail!(
            "statfs {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
    }
    #[allow(
        clippy::useless_conversion,
        reason = "f_type's width differs between targets"
    )]
    Ok(i64::from(st.f_type) == BPF_FS_MAGIC)
}

/// Make sure `pin_dir` lies on a bpf filesystem. Like systemd at boot, mount one on
/// [`BPFFS_ROOT`] when that is where the pins go and nothing is mounted there yet; anywhere
/// else, fail with a clear message.
pub(super) fn ensure_bpffs(pin_dir: &Path) -> anyhow::Result<()> {
    let existing = pin_dir
        .ancestors()
        .find(|p| p.exists())
        .ok_or_else(|| anyhow!("no existing ancestor of {}", pin_dir.display()))?;
    if is_bpffs(existing)? {
        return Ok(());
    }
    let root = Path::new(BPFFS_ROOT);
    if pin_dir.starts_with(root) && root.is_dir() && !is_bpffs(root)? {
        let src = c"bpf";
        let opts = c"mode=0700";
        // SAFETY: all strings are NUL-terminated literals.
        let rc = unsafe {
            libc::mount(
                src.as_ptr(),
                BPFFS_ROOT_C.as_ptr(),
                src.as_ptr(),
                0,
                opts.as_ptr().cast(),
            )
        };
        if rc != 0 {
            bail!(
                "mounting bpffs on {BPFFS_ROOT}: {}",
                std::io::Error::last_os_error()
            );
        }
        info!("mounted a bpf filesystem on {BPFFS_ROOT}");
        return Ok(());
    }
    bail!(
        "pin_dir {} is not on a bpf filesystem ({} is not bpffs): mount one with \
         `mount -t bpf bpf DIR`; note that `ip netns exec` gives the command a fresh /sys without \
         the host's bpffs, so run the agent with `nsenter --net={NETNS_DIR}/NAME` instead",
        pin_dir.display(),
        existing.display()
    )
}
