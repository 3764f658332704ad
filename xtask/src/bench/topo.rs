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

use std::{collections::BTreeMap, fs, path::Path, process::Command, time::Duration};

use anyhow::{Context as _, Result, bail};
use xennet_tests::{Netns, add_addr, add_neigh, frame::Mac, ifindex, set_gro, set_mac, veth};

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
        for (g, mac, ip) in [
            (&rtt_null.0, G1_MAC, G1_IP),
            (&rtt_null.1, G2_MAC, G2_IP),
        ] {
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

/// The pid of `ksoftirqd/CPU`, where softirq work raised on `cpu` goes when it is deferred.
#[must_use]
pub fn ksoftirqd(cpu: usize) -> Option<i32> {
    let want = format!("ksoftirqd/{cpu}");
    fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid = e.file_name().to_str()?.parse::<i32>().ok()?;
        let comm = fs::read_to_string(e.path().join("comm")).ok()?;
        (comm.trim_end() == want).then_some(pid)
    })
}

/// Rescheduling and function-call IPIs so far, summed over the CPUs (`/proc/interrupts`).
pub fn ipis() -> u64 {
    let Ok(s) = fs::read_to_string("/proc/interrupts") else {
        return 0;
    };
    s.lines()
        .filter_map(|l| l.trim_start().split_once(':'))
        .filter(|(k, _)| *k == "RES" || *k == "CAL")
        .map(|(_, v)| {
            v.split_whitespace()
                .map_while(|x| x.parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum()
}

/// Run time of thread `pid` in ns (first field of `/proc/PID/schedstat`), 0 when gone.
pub fn schedstat_ns(pid: i32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|x| x.parse().ok()))
        .unwrap_or(0)
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
    let dead = |pid: &str| !Path::new(&format!("/proc/{pid}")).exists();
    if let Ok(dir) = fs::read_dir("/run/netns") {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let parts: Vec<&str> = name.split('-').collect();
            if let ["xn", tag, pid, _n] = parts.as_slice() {
                if ["bgen", "bdut", "bsink", "bg1", "bg2"].contains(tag) && dead(pid) {
                    eprintln!("bench: removing stale namespace {name}");
                    let _ = Command::new("sh")
                        .arg("-c")
                        .arg(format!(
                            "ip netns pids {name} | xargs -r kill -9; ip netns del {name}"
                        ))
                        .status();
                }
            }
        }
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

/// NAPI of `ifname` in `ns`: threaded, and coalesced like a NIC's interrupts: after a poll
/// the NAPI instance stays scheduled and is polled again by a timer after
/// [`COALESCE_NS`] (up to [`COALESCE_POLLS`] empty polls), instead of sleeping until the
/// next frame wakes it up. Without that a fast DUT sleeps and wakes for every burst, and the
/// wake-up latency, not the DUT, limits the throughput.
fn set_threaded(ns: &Netns, ifname: &str, coalesce: bool) -> Result<()> {
    let d = format!("/sys/class/net/{ifname}");
    let (polls, timeout) = if coalesce {
        (COALESCE_POLLS, COALESCE_NS)
    } else {
        (0, 0)
    };
    ns.exec_ok(&[
        "sh",
        "-c",
        &format!(
            "echo {polls} > {d}/napi_defer_hard_irqs && \
             echo {timeout} > {d}/gro_flush_timeout && echo 1 > {d}/threaded"
        ),
    ])?;
    Ok(())
}

/// NAPI of `ifname` in `ns` as softirq work (not threaded, not coalesced): it runs on the CPU
/// that scheduled it — the one that sent it frames — in whatever context that CPU was in.
fn set_unthreaded(ns: &Netns, ifname: &str) -> Result<()> {
    let d = format!("/sys/class/net/{ifname}");
    ns.exec_ok(&[
        "sh",
        "-c",
        &format!(
            "echo 0 > {d}/threaded && echo 0 > {d}/napi_defer_hard_irqs && \
             echo 0 > {d}/gro_flush_timeout"
        ),
    ])?;
    Ok(())
}

/// Where the generator, the device under test and the sinks run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Placement {
    /// The generator alone on its CPU; the DUT's ingress NAPI thread on the DUT CPU, and the
    /// sinks' NAPI as softirq work of that thread (they are scheduled from it): one cross-CPU
    /// hop per frame (generator → DUT, like a NIC's DMA) and no wake-up of another CPU. The
    /// DUT's CPU time includes the sinks' receive-and-drop.
    DutSink,
    /// Everything as softirq work of the generator thread on one CPU: a plain veth setup.
    /// No cross-CPU traffic at all; the rate is that of generator + DUT + sinks together.
    OneCpu,
    /// The generator and the sinks' NAPI threads on the generator's CPU, the DUT's on its
    /// own: every burst crosses CPUs twice and wakes the sinks' thread on the other CPU.
    Split,
}

impl Placement {
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Placement::DutSink => "dut-sink",
            Placement::OneCpu => "one-cpu",
            Placement::Split => "split",
        }
    }
}

/// Poll interval of an idle NAPI instance (`gro_flush_timeout`, ns).
pub const COALESCE_NS: u32 = 5000;
/// Empty polls before an idle NAPI instance sleeps (`napi_defer_hard_irqs`).
pub const COALESCE_POLLS: u32 = 100;

/// Pin every `napi/IF-*` kernel thread to `cpu`.
fn pin_napi(ifname: &str, cpu: usize, want: usize) -> Result<Vec<i32>> {
    let prefix = format!("napi/{ifname}-");
    // The threads appear shortly after `threaded` is set.
    for _ in 0..50 {
        let mut found = Vec::new();
        for e in fs::read_dir("/proc").context("reading /proc")?.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            let Ok(comm) = fs::read_to_string(e.path().join("comm")) else {
                continue;
            };
            if comm.trim_end().starts_with(&prefix) {
                set_affinity(pid, cpu)
                    .with_context(|| format!("pinning {} to CPU {cpu}", comm.trim_end()))?;
                set_fifo(pid, 50)
                    .with_context(|| format!("making {} SCHED_FIFO", comm.trim_end()))?;
                found.push(pid);
            }
        }
        if found.len() >= want {
            return Ok(found);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("no NAPI thread for {ifname} (threaded NAPI not supported?)")
}

/// `SCHED_FIFO` at `prio` (50 is the priority of threaded IRQ handlers); pid 0 = the calling
/// thread.
pub fn set_fifo(pid: i32, prio: i32) -> Result<()> {
    let param = libc::sched_param {
        sched_priority: prio,
    };
    // SAFETY: plain syscall with a valid parameter.
    if unsafe { libc::sched_setscheduler(pid, libc::SCHED_FIFO, &raw const param) } != 0 {
        return Err(std::io::Error::last_os_error()).context("sched_setscheduler");
    }
    Ok(())
}

/// utime + stime of `/proc/PID/stat` (clock ticks), 0 when gone.
fn proc_ticks(pid: &str) -> u64 {
    let Ok(s) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // Fields after the command (which may contain spaces), from field 3 on.
    let Some((_, rest)) = s.rsplit_once(')') else {
        return 0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15, i.e. 11 and 12 after the command.
    f.get(11).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0)
}

/// `sched_setaffinity(pid, {cpu})`; pid 0 = the calling thread.
pub fn set_affinity(pid: i32, cpu: usize) -> Result<()> {
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET stays in bounds for cpu < 1024.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(pid, std::mem::size_of::<libc::cpu_set_t>(), &raw const set) != 0
        {
            return Err(std::io::Error::last_os_error()).context("sched_setaffinity");
        }
    }
    Ok(())
}

/// Busy and total jiffies per CPU from `/proc/stat`.
pub fn cpu_times() -> Result<Vec<(u64, u64)>> {
    let s = fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    Ok(s.lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .map(|l| {
            let v: Vec<u64> = l
                .split_whitespace()
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect();
            let total: u64 = v.iter().take(8).sum();
            // idle + iowait
            let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
            (total - idle, total)
        })
        .collect())
}

/// Busy fraction of each CPU between two [`cpu_times`] samples.
#[must_use]
pub fn cpu_busy(a: &[(u64, u64)], b: &[(u64, u64)]) -> Vec<f64> {
    a.iter()
        .zip(b)
        .map(|((b0, t0), (b1, t1))| {
            let t = t1.saturating_sub(*t0);
            if t == 0 {
                0.0
            } else {
                #[expect(clippy::cast_precision_loss, reason = "jiffies")]
                let f = b1.saturating_sub(*b0) as f64 / t as f64;
                f
            }
        })
        .collect()
}

/// CPUs' worth of busy time between two [`cpu_times`] samples not explained by `own` ticks.
#[must_use]
pub fn foreign(a: &[(u64, u64)], b: &[(u64, u64)], own: u64) -> f64 {
    let busy: u64 = a
        .iter()
        .zip(b)
        .map(|((b0, _), (b1, _))| b1.saturating_sub(*b0))
        .sum();
    let total: u64 = a
        .iter()
        .zip(b)
        .map(|((_, t0), (_, t1))| t1.saturating_sub(*t0))
        .sum();
    if total == 0 {
        return 0.0;
    }
    #[expect(clippy::cast_precision_loss, reason = "ticks")]
    let f = busy.saturating_sub(own) as f64 / total as f64 * a.len() as f64;
    f
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
