//! CPU placement and accounting: NAPI threading, pinning and scheduling of the bench's
//! threads ([`Placement`]), and the CPU time, IPIs and busy shares read from `/proc`.

use std::{fs, time::Duration};

use anyhow::{Context as _, Result, bail};
use xennet_tests::Netns;

/// NAPI of `ifname` in `ns`: threaded, and coalesced like a NIC's interrupts: after a poll
/// the NAPI instance stays scheduled and is polled again by a timer after
/// [`COALESCE_NS`] (up to [`COALESCE_POLLS`] empty polls), instead of sleeping until the
/// next frame wakes it up. Without that a fast DUT sleeps and wakes for every burst, and the
/// wake-up latency, not the DUT, limits the throughput.
pub fn set_threaded(ns: &Netns, ifname: &str, coalesce: bool) -> Result<()> {
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
pub fn set_unthreaded(ns: &Netns, ifname: &str) -> Result<()> {
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
pub fn pin_napi(ifname: &str, cpu: usize, want: usize) -> Result<Vec<i32>> {
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
pub fn proc_ticks(pid: &str) -> u64 {
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
