//! The benchmark's namespaces and links, CPU placement, and machine facts.
//!
//! One device-under-test namespace per path, all built up front, so that the paths can be
//! alternated window by window without setting anything up in between:
//!
//! ```text
//!  [gen] genK ──── xb0 [dut K] xb1 ──── sK.1 [sink]   unicast egress, VLAN 1
//!                              xb2..N ─ sK.2..N        flood egress, VLAN 1
//!                              xbt ──── sK.t           tagged-uplink egress, VLAN 100
//!                              xv1 ──── eth0 [g1 K] 10.99.0.1
//!                              xv2 ──── eth0 [g2 K] 10.99.0.2
//! ```
//!
//! The generator runs `xnb_gen` through live-frame `BPF_PROG_TEST_RUN` with genK as the
//! ingress device: `XDP_TX` sends every frame to xb0 of DUT K. Every sink interface runs
//! `xnb_sink`. Everything lives in namespaces created here and removed on drop; the host's own
//! interfaces are never touched.

use std::{collections::BTreeMap, fs, process::Command};

use anyhow::{Context as _, Result};
use xennet_tests::{Netns, add_addr, add_neigh, frame::Mac, ifindex, set_gro, set_mac, veth};

use super::cpu::{Placement, pin_napi, proc_ticks, schedstat_ns, set_threaded, set_unthreaded};

/// Source MACs of the generator: `GEN_SRC` + 0..flows (last two bytes).
pub const GEN_SRC: Mac = [0x02, 0xa0, 0, 0, 0, 0];
/// Destinations of the FDB scenario: `FDB_DST` + 0..hot (last two bytes), all behind xb1.
pub const FDB_DST: Mac = [0x02, 0xb1, 0, 0, 0, 0];
/// Guest MACs.
pub const G1_MAC: Mac = [0x02, 0xc0, 0, 0, 0, 0x01];
/// Guest MACs.
pub const G2_MAC: Mac = [0x02, 0xc0, 0, 0, 0, 0x02];
/// Guest addresses.
pub const G1_IP: &str = "10.99.0.1";
/// Guest addresses.
pub const G2_IP: &str = "10.99.0.2";
/// The VLAN of the tagged uplink scenario (xbt is an access port of it).
pub const TAG_VLAN: u16 = 100;

/// The sink of the null path (generator → sink, no DUT).
pub const NULL_SINK: &str = "snull";

/// MAC of sink interface `i` (1-based; 0 = the tagged scenario's).
#[must_use]
pub fn sink_mac(i: usize) -> Mac {
    #[expect(clippy::cast_possible_truncation, reason = "at most 64 sinks")]
    [0x02, 0xb0, 0, 0, 0x01, i as u8]
}

/// One device under test: its namespace, guests, generator veth and interfaces.
pub struct Dut {
    /// Namespace holding xb0, xb1..xbN, xbt, xv1, xv2.
    pub ns: Netns,
    /// Guests behind xv1 and xv2 (TCP and ping).
    pub guests: Option<(Netns, Netns)>,
    /// ifindex of this DUT's generator veth in the generator namespace.
    pub gen_if: u32,
    /// ifindex of every DUT interface by name.
    pub ifs: BTreeMap<String, u32>,
    /// Number of VLAN 1 egress ports (xb1..xbN).
    pub ports: usize,
}

impl Dut {
    /// ifindex of DUT interface `name`.
    pub fn idx(&self, name: &str) -> Result<u32> {
        self.ifs
            .get(name)
            .copied()
            .with_context(|| format!("no DUT interface {name}"))
    }

    /// The guests, for TCP and ping.
    pub fn guests(&self) -> Result<(&Netns, &Netns)> {
        self.guests
            .as_ref()
            .map(|(a, b)| (a, b))
            .context("this DUT has no guests")
    }
}

/// The namespaces: one generator, one sink, and the DUTs.
pub struct Topo {
    /// Generator namespace (gen0, gen1, …).
    pub genns: Netns,
    /// Sinks of every DUT (sK.1..sK.N, sK.t).
    pub sink: Netns,
    /// The DUTs, in the order they were asked for.
    pub duts: Vec<Dut>,
    /// Number of VLAN 1 egress ports per DUT.
    pub ports: usize,
    /// The pinned NAPI threads.
    pub napi: std::sync::Mutex<Vec<i32>>,
    /// The DUTs' ingress NAPI threads (a subset of `napi`): where the DUT's work runs.
    pub dut_napi: std::sync::Mutex<Vec<i32>>,
    /// Two guests joined by one veth pair, nothing in between: the null path of the ping
    /// RTT (what the machine adds to any path's round trip).
    pub rtt_null: (Netns, Netns),
    /// ifindex of `gnull` in the generator namespace: its peer is a sink (`snull`), no DUT in
    /// between — what generating and sinking a frame costs without forwarding it.
    pub null_if: u32,
}

impl Topo {
    /// Build `duts` DUTs (those flagged `true` get guests), each with `ports` VLAN-1 egress
    /// ports (≥ 1).
    pub fn new(duts: &[bool], ports: usize) -> Result<Topo> {
        let genns = Netns::new("bgen")?;
        let sink = Netns::new("bsink")?;
        veth(&genns, "gnull", &sink, NULL_SINK)?;
        let null_if = ifindex(&genns, "gnull")?;
        let rtt_null = (Netns::new("bg1")?, Netns::new("bg2")?);
        veth(&rtt_null.0, "eth0", &rtt_null.1, "eth0")?;
        for (g, mac, ip) in [(&rtt_null.0, G1_MAC, G1_IP), (&rtt_null.1, G2_MAC, G2_IP)] {
            set_mac(g, "eth0", mac)?;
            // As the guests of the paths.
            set_gro(g, "eth0", true)?;
            add_addr(g, "eth0", &format!("{ip}/24"))?;
        }
        let mut v = Vec::new();
        for (k, with_guests) in duts.iter().enumerate() {
            let ns = Netns::new("bdut")?;
            let gen_name = format!("gen{k}");
            veth(&genns, &gen_name, &ns, "xb0")?;
            // xb0 must run NAPI to take XDP_TX frames from the generator even when no XDP
            // program is attached to it (bridge and TC paths): GRO on.
            set_gro(&ns, "xb0", true)?;
            let mut names: Vec<(String, String, Mac)> = (1..=ports)
                .map(|i| (format!("xb{i}"), format!("s{k}.{i}"), sink_mac(i)))
                .collect();
            names.push(("xbt".into(), format!("s{k}.t"), sink_mac(0)));
            for (n, sk, m) in &names {
                veth(&ns, n, &sink, sk)?;
                set_mac(&sink, sk, *m)?;
            }
            let guests = if *with_guests {
                let g1 = Netns::new("bg1")?;
                let g2 = Netns::new("bg2")?;
                for (g, vif, mac, ip, peer_ip, peer_mac) in [
                    (&g1, "xv1", G1_MAC, G1_IP, G2_IP, G2_MAC),
                    (&g2, "xv2", G2_MAC, G2_IP, G1_IP, G1_MAC),
                ] {
                    veth(&ns, vif, g, "eth0")?;
                    set_mac(g, "eth0", mac)?;
                    // Receiving native XDP redirects needs NAPI on the receiving veth.
                    set_gro(g, "eth0", true)?;
                    add_addr(g, "eth0", &format!("{ip}/24"))?;
                    // Independent of flooding (a path may not flood ARP yet).
                    add_neigh(g, "eth0", peer_ip, peer_mac)?;
                }
                Some((g1, g2))
            } else {
                None
            };
            let gen_if = ifindex(&genns, &gen_name)?;
            let mut ifs = BTreeMap::new();
            let mut all: Vec<String> = vec!["xb0".into(), "xbt".into()];
            all.extend((1..=ports).map(|i| format!("xb{i}")));
            if guests.is_some() {
                all.extend(["xv1".into(), "xv2".into()]);
            }
            for n in all {
                let idx = ifindex(&ns, &n)?;
                ifs.insert(n, idx);
            }
            v.push(Dut {
                ns,
                guests,
                gen_if,
                ifs,
                ports,
            });
        }
        Ok(Topo {
            genns,
            sink,
            duts: v,
            ports,
            napi: std::sync::Mutex::new(Vec::new()),
            dut_napi: std::sync::Mutex::new(Vec::new()),
            rtt_null,
            null_if,
        })
    }

    /// The sink interface names of every DUT, and the null path's.
    #[must_use]
    pub fn sinks(&self) -> Vec<String> {
        let mut v = vec![NULL_SINK.to_string()];
        for k in 0..self.duts.len() {
            v.extend((1..=self.ports).map(|i| format!("s{k}.{i}")));
            v.push(format!("s{k}.t"));
        }
        v
    }

    /// Place the NAPI work by `placement` (see [`Placement`]). Called after every change of
    /// attached programs (which may recreate NAPI instances).
    ///
    /// Threaded NAPI runs `SCHED_FIFO` (like softirq work, which preempts tasks): other load
    /// on the machine must not steal the DUT's CPU, and (split) the sinks must never be
    /// starved by the generator thread sharing their CPU.
    pub fn place_napi(&self, placement: Placement, dut_cpu: usize, gen_cpu: usize) -> Result<()> {
        let mut pids = Vec::new();
        let dut = if placement == Placement::OneCpu {
            for d in &self.duts {
                set_unthreaded(&d.ns, "xb0")?;
            }
            Vec::new()
        } else {
            for d in &self.duts {
                set_threaded(&d.ns, "xb0", true)?;
            }
            pin_napi("xb0", dut_cpu, self.duts.len())?
        };
        pids.extend(&dut);
        *self
            .dut_napi
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = dut;
        for s in self.sinks() {
            if placement == Placement::Split {
                set_threaded(&self.sink, &s, false)?;
                pids.extend(pin_napi(&s, gen_cpu, 1)?);
            } else {
                set_unthreaded(&self.sink, &s)?;
            }
        }
        *self
            .napi
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = pids;
        Ok(())
    }

    /// CPU ticks used so far by this process and by the NAPI threads of [`Topo::place_napi`].
    pub fn own_ticks(&self) -> u64 {
        let napi = self
            .napi
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        proc_ticks("self") + napi.iter().map(|p| proc_ticks(&p.to_string())).sum::<u64>()
    }
}

impl Topo {
    /// Nanoseconds the DUTs' ingress NAPI threads have run so far (`/proc/PID/schedstat`):
    /// the device under test's own CPU time, whatever else runs on its CPU.
    pub fn dut_runtime_ns(&self) -> u64 {
        let pids = self
            .dut_napi
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        pids.iter().map(|p| schedstat_ns(*p)).sum()
    }

    /// Frames dropped so far on the way into the DUTs (the generator veths' `tx_dropped`)
    /// and on the way out of them into the sinks (the DUT ports' `tx_dropped`).
    pub fn drops(&self) -> (u64, u64) {
        let into = self.genns.run_in(|| tx_dropped("gen")).unwrap_or(0);
        let out = self
            .duts
            .iter()
            .map(|d| d.ns.run_in(|| tx_dropped("xb")).unwrap_or(0))
            .sum();
        (into, out)
    }
}

/// Sum of `tx_dropped` of the interfaces whose name starts with `prefix`, in this thread's
/// network namespace.
fn tx_dropped(prefix: &str) -> u64 {
    let Ok(s) = fs::read_to_string("/proc/thread-self/net/dev") else {
        return 0;
    };
    s.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(name, _)| name.trim().starts_with(prefix))
        // rx: bytes packets errs drop fifo frame compressed multicast; tx: bytes packets errs drop
        .filter_map(|(_, v)| {
            v.split_whitespace()
                .nth(11)
                .and_then(|x| x.parse::<u64>().ok())
        })
        .sum()
}

/// Remove what an interrupted earlier run left behind: its namespaces (`xn-b{gen,dut,sink,
/// g1,g2}-PID-N`) and bpffs mounts (`/tmp/xennet-bpffs-bench-*-PID`) whose PID is gone.
pub fn remove_stale() {
    let dead = |pid: &str| !crate::leftovers::alive(pid);
    let ours = |tag: &str| ["bgen", "bdut", "bsink", "bg1", "bg2"].contains(&tag);
    if let Err(e) = crate::leftovers::remove_dead_netns("bench", ours) {
        eprintln!("bench: looking for stale namespaces: {e:#}");
    }
    let tmp = std::env::temp_dir();
    if let Ok(dir) = fs::read_dir(&tmp) {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(rest) = name.strip_prefix("xennet-bpffs-bench-") {
                if rest.rsplit('-').next().is_some_and(dead) {
                    let _ = Command::new("umount").arg(e.path()).status();
                    let _ = fs::remove_dir(e.path());
                }
            }
        }
    }
}

/// Kernel, CPU model, CPU count, clocksource, load.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Machine {
    pub kernel: String,
    pub cpu_model: String,
    pub cpus: usize,
    pub clocksource: String,
    pub memory_mib: u64,
    pub loadavg_before: String,
    pub hypervisor: String,
}

impl Machine {
    pub fn probe() -> Machine {
        let read = |p: &str| fs::read_to_string(p).unwrap_or_default().trim().to_string();
        let cpuinfo = read("/proc/cpuinfo");
        let field = |k: &str| {
            cpuinfo
                .lines()
                .find(|l| l.starts_with(k))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
                .unwrap_or_default()
        };
        let cpus = cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count();
        let hypervisor = if cpuinfo.contains(" hypervisor") {
            "yes (virtual machine)".to_string()
        } else {
            "no".to_string()
        };
        let mem = read("/proc/meminfo")
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
            })
            .unwrap_or(0)
            / 1024;
        Machine {
            kernel: format!(
                "{} {}",
                read("/proc/sys/kernel/ostype"),
                read("/proc/sys/kernel/osrelease")
            ),
            cpu_model: field("model name"),
            cpus,
            clocksource: read("/sys/devices/system/clocksource/clocksource0/current_clocksource"),
            memory_mib: mem,
            loadavg_before: read("/proc/loadavg"),
            hypervisor,
        }
    }
}
