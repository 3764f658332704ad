//! The switch in `XN_MONITOR`: taken (on, with a lease) while a monitor runs, renewed every
//! second, cleared when the monitor ends — also on SIGINT/SIGTERM (the loop returns) and on a
//! panic (drop). A monitor killed with `-9` leaves a lease that runs out after
//! [`LEASE_NS`]: the datapath checks the time, so it stops emitting by itself.

use std::path::Path;

use anyhow::{Context as _, bail};
use aya::maps::{Array, Map, MapData};
use xennet_common::monitor::{LEASE_NS, MAP_MONITOR, MONITOR_OFF, MonitorConf};

use crate::clock;

/// Open the pinned switch of the datapath under `pin_dir`.
pub fn open(pin_dir: &Path) -> anyhow::Result<Array<MapData, MonitorConf>> {
    let path = pin_dir.join(MAP_MONITOR);
    let data = MapData::from_pin(&path).with_context(|| {
        format!(
            "opening {} (is a datapath of this build pinned there? `xennet-agent run` makes it)",
            path.display()
        )
    })?;
    Array::try_from(Map::from_map_data(data).context("XN_MONITOR")?).context("XN_MONITOR type")
}

/// Read the switch.
pub fn read(pin_dir: &Path) -> anyhow::Result<MonitorConf> {
    open(pin_dir)?.get(&0, 0).context("reading XN_MONITOR")
}

/// The switch, held by this process while it lives.
pub struct Switch {
    map: Array<MapData, MonitorConf>,
    mode: u32,
    pid: u32,
}

fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    pid > 0 && unsafe { libc::kill(pid, 0) } == 0
}

impl Switch {
    /// Turn the switch on in `mode` with a fresh lease; refused while another live monitor
    /// holds a lease (one reader per ring).
    pub fn take(pin_dir: &Path, mode: u32) -> anyhow::Result<Switch> {
        let map = open(pin_dir)?;
        let cur = map.get(&0, 0).context("reading XN_MONITOR")?;
        let pid = std::process::id();
        if cur.mode != MONITOR_OFF
            && cur.until_ns > clock::now_ns()
            && cur.pid != pid
            && alive(cur.pid)
        {
            bail!(
                "another monitor (pid {}) is running on the datapath pinned under {}; one at a \
                 time",
                cur.pid,
                pin_dir.display()
            );
        }
        let mut s = Switch { map, mode, pid };
        s.renew()?;
        Ok(s)
    }

    /// Extend the lease by [`LEASE_NS`] from now.
    pub fn renew(&mut self) -> anyhow::Result<()> {
        let conf = MonitorConf {
            mode: self.mode,
            pid: self.pid,
            until_ns: clock::now_ns() + LEASE_NS,
        };
        self.map.set(0, conf, 0).context("writing XN_MONITOR")
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        let _ = self.map.set(0, MonitorConf::default(), 0);
    }
}
