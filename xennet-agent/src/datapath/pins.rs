//! Pinning the maps, and making sure the pin directory lies on a bpf filesystem (mounting one
//! on the conventional root when needed).

use std::{ffi::CString, fs, path::Path};

use anyhow::{Context as _, anyhow, bail};
use tracing::{info, warn};
use xennet_common::maps::{
    MAP_FDB, MAP_FLOOD, MAP_IFSLOTS, MAP_LEARNED, MAP_MEMBERS, MAP_PORTS, MAP_SLOTS, MAP_STATS,
    MAP_TX,
};

use super::Datapath;
use crate::paths::{BPFFS_ROOT, BPFFS_ROOT_C, NETNS_DIR};

impl Datapath {
    /// Pin the maps under the pin directory (for `xennet-agent stats`).
    pub fn pin(&mut self) -> anyhow::Result<()> {
        ensure_bpffs(&self.pin_dir)?;
        fs::create_dir_all(&self.pin_dir)
            .with_context(|| format!("creating pin directory {}", self.pin_dir.display()))?;
        for name in [
            MAP_PORTS,
            MAP_SLOTS,
            MAP_IFSLOTS,
            MAP_FDB,
            MAP_STATS,
            MAP_TX,
            MAP_FLOOD,
            MAP_LEARNED,
            MAP_MEMBERS,
        ] {
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
fn ensure_bpffs(pin_dir: &Path) -> anyhow::Result<()> {
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
