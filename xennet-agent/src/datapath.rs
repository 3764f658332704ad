//! The running datapath: programs loaded, maps filled and pinned, ports attached.
//!
//! Maps are filled before any program is attached, so the first frame already sees the whole
//! configuration. Dropping a [`Datapath`] detaches every program and removes the pins.

use std::{
    ffi::CString,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, anyhow, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{DevMapHash, HashMap, MapData, PerCpuArray},
    programs::{Xdp, XdpMode},
};
use tracing::{info, warn};
use xennet_common::{
    maps::{
        FDB_STATIC, FdbKey, FdbVal, MAP_FDB, MAP_PORTS, MAP_STATS, MAP_TX, PORT_ACCESS, PORT_TRUNK,
        PROG_XDP, PortConf,
    },
    stats::PortStats,
};

use crate::config::{AttachMode, Config, PortMode, PortSpec};

/// How a port's program is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attached {
    /// Native (driver) XDP.
    Xdp,
    /// Generic (skb) XDP.
    XdpGeneric,
}

impl std::fmt::Display for Attached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Attached::Xdp => "xdp",
            Attached::XdpGeneric => "xdp-generic",
        })
    }
}

/// One attached port.
#[derive(Clone, Debug)]
pub struct Port {
    /// Bridge name.
    pub bridge: String,
    /// Interface name.
    pub interface: String,
    /// Interface index.
    pub ifindex: u32,
    /// Stats slot.
    pub slot: u32,
    /// Attach mode in effect.
    pub attached: Attached,
}

/// The loaded datapath.
pub struct Datapath {
    ebpf: Ebpf,
    pin_dir: PathBuf,
    ports: Vec<Port>,
    pinned: Vec<PathBuf>,
}

/// Interface index of `name` in the current network namespace.
pub fn ifindex(name: &str) -> anyhow::Result<u32> {
    let c = CString::new(name).with_context(|| format!("interface name {name:?} contains NUL"))?;
    // SAFETY: valid NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        bail!(
            "interface {name:?} not found: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(i)
}

/// The map value describing `spec` as a port of a bridge.
#[must_use]
pub fn port_conf(bridge: u32, tpid: u16, slot: u32, spec: &PortSpec) -> PortConf {
    match &spec.mode {
        PortMode::Access { vlan } => PortConf::new(bridge, slot, PORT_ACCESS, *vlan, tpid),
        PortMode::Trunk { vlans, native } => {
            let mut p = PortConf::new(bridge, slot, PORT_TRUNK, native.unwrap_or(0), tpid);
            for v in vlans {
                p.add_vlan(*v);
            }
            p
        }
    }
}

impl Datapath {
    /// Load the embedded object into the kernel (verifier included); nothing is attached yet.
    pub fn load(pin_dir: &Path) -> anyhow::Result<Self> {
        let object = crate::ebpf::object()?;
        let ebpf = EbpfLoader::new()
            .load(object)
            .context("loading the eBPF object into the kernel")?;
        let mut dp = Datapath {
            ebpf,
            pin_dir: pin_dir.to_path_buf(),
            ports: Vec::new(),
            pinned: Vec::new(),
        };
        dp.xdp_program()?
            .load()
            .with_context(|| format!("verifying program {PROG_XDP}"))?;
        Ok(dp)
    }

    /// The attached ports.
    #[must_use]
    pub fn ports(&self) -> &[Port] {
        &self.ports
    }

    /// The XDP program (for `BPF_PROG_TEST_RUN` in tests and benchmarks).
    pub fn xdp_program(&mut self) -> anyhow::Result<&mut Xdp> {
        self.ebpf
            .program_mut(PROG_XDP)
            .ok_or_else(|| anyhow!("object has no program {PROG_XDP}"))?
            .try_into()
            .context("program type")
    }

    /// Every port's counters, read from the loaded maps (names resolved in the calling
    /// thread's network namespace).
    pub fn counters(&self) -> anyhow::Result<Vec<crate::stats::PortCounters>> {
        let get = |name: &str| {
            self.ebpf
                .map(name)
                .ok_or_else(|| anyhow!("object has no map {name}"))
        };
        let ports: HashMap<&MapData, u32, PortConf> =
            HashMap::try_from(get(MAP_PORTS)?).context("XN_PORTS type")?;
        let stats: PerCpuArray<&MapData, PortStats> =
            PerCpuArray::try_from(get(MAP_STATS)?).context("XN_STATS type")?;
        crate::stats::collect(&ports, &stats)
    }

    /// Fill the maps from `cfg` and attach every port. On error, what was attached is detached
    /// when the `Datapath` is dropped.
    pub fn apply(&mut self, cfg: &Config) -> anyhow::Result<()> {
        let mut planned = Vec::new();
        let mut slot = 0u32;
        for b in &cfg.bridges {
            for p in &b.ports {
                slot += 1;
                let idx = ifindex(&p.interface)
                    .with_context(|| format!("bridge {:?}, port {:?}", b.name, p.interface))?;
                planned.push((b, p, idx, slot));
            }
        }
        {
            let mut ports: HashMap<&mut MapData, u32, PortConf> = self.map_mut(MAP_PORTS)?;
            for (b, p, idx, slot) in &planned {
                ports
                    .insert(idx, port_conf(b.id, b.tpid, *slot, p), 0)
                    .with_context(|| format!("adding port {} to {MAP_PORTS}", p.interface))?;
            }
        }
        {
            let mut tx: DevMapHash<&mut MapData> = self.map_mut(MAP_TX)?;
            for (_, p, idx, _) in &planned {
                tx.insert(*idx, *idx, None, 0)
                    .with_context(|| format!("adding port {} to {MAP_TX}", p.interface))?;
            }
        }
        {
            let mut fdb: HashMap<&mut MapData, FdbKey, FdbVal> = self.map_mut(MAP_FDB)?;
            for (b, p, idx, _) in &planned {
                for (mac, vlan) in &p.macs {
                    let key = FdbKey {
                        mac: mac.0,
                        vlan: *vlan,
                        bridge: b.id,
                    };
                    let val = FdbVal {
                        ifindex: *idx,
                        flags: FDB_STATIC,
                        last_seen_ns: 0,
                    };
                    fdb.insert(key, val, 0).with_context(|| {
                        format!("adding static MAC {mac} VLAN {vlan} of {}", p.interface)
                    })?;
                }
            }
        }
        for (b, p, idx, slot) in planned {
            let attached = self
                .attach(&p.interface, idx, p.attach)
                .with_context(|| format!("bridge {:?}, port {:?}", b.name, p.interface))?;
            info!(bridge = %b.name, port = %p.interface, ifindex = idx, mode = %attached, "port attached");
            self.ports.push(Port {
                bridge: b.name.clone(),
                interface: p.interface.clone(),
                ifindex: idx,
                slot,
                attached,
            });
        }
        Ok(())
    }

    fn map_mut<'a, T>(&'a mut self, name: &str) -> anyhow::Result<T>
    where
        T: TryFrom<&'a mut aya::maps::Map, Error = aya::maps::MapError>,
    {
        let m = self
            .ebpf
            .map_mut(name)
            .ok_or_else(|| anyhow!("object has no map {name}"))?;
        T::try_from(m).with_context(|| format!("map {name} has an unexpected type"))
    }

    fn attach(&mut self, name: &str, idx: u32, mode: AttachMode) -> anyhow::Result<Attached> {
        let prog = self.xdp_program()?;
        match mode {
            AttachMode::Xdp => {
                prog.attach_to_if_index(idx, XdpMode::Driver)
                    .with_context(|| format!("attaching native XDP to {name}"))?;
                Ok(Attached::Xdp)
            }
            AttachMode::XdpGeneric => {
                prog.attach_to_if_index(idx, XdpMode::Skb)
                    .with_context(|| format!("attaching generic XDP to {name}"))?;
                Ok(Attached::XdpGeneric)
            }
            AttachMode::Auto => match prog.attach_to_if_index(idx, XdpMode::Driver) {
                Ok(_) => Ok(Attached::Xdp),
                Err(e) => {
                    warn!(port = %name, error = %e, "native XDP refused, falling back to generic XDP");
                    prog.attach_to_if_index(idx, XdpMode::Skb)
                        .with_context(|| format!("attaching generic XDP to {name}"))?;
                    Ok(Attached::XdpGeneric)
                }
            },
        }
    }

    /// Pin the maps under the pin directory (for `xennet-agent stats`).
    pub fn pin(&mut self) -> anyhow::Result<()> {
        ensure_bpffs(&self.pin_dir)?;
        fs::create_dir_all(&self.pin_dir)
            .with_context(|| format!("creating pin directory {}", self.pin_dir.display()))?;
        for name in [MAP_PORTS, MAP_FDB, MAP_STATS, MAP_TX] {
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

/// The conventional bpffs mount point.
const BPFFS_ROOT: &str = "/sys/fs/bpf";

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
/// `/sys/fs/bpf` when that is where the pins go and nothing is mounted there yet; anywhere else,
/// fail with a clear message.
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
        let target = c"/sys/fs/bpf";
        let opts = c"mode=0700";
        // SAFETY: all strings are NUL-terminated literals.
        let rc = unsafe {
            libc::mount(
                src.as_ptr(),
                target.as_ptr(),
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
         the host's bpffs, so run the agent with `nsenter --net=/run/netns/NAME` instead",
        pin_dir.display(),
        existing.display()
    )
}

impl Drop for Datapath {
    fn drop(&mut self) {
        let pinned = !self.pinned.is_empty();
        for p in self.pinned.drain(..) {
            if let Err(e) = fs::remove_file(&p) {
                warn!(path = %p.display(), error = %e, "could not remove pin");
            }
        }
        // Our pins are gone; the directory goes too unless something else lives in it.
        if pinned && fs::remove_dir(&self.pin_dir).is_err() {
            info!(dir = %self.pin_dir.display(), "pin directory not empty, left in place");
        }
        info!(ports = self.ports.len(), "detaching");
        // The programs' links are dropped with `self.ebpf`, which detaches them.
    }
}
