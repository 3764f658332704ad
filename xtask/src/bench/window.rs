//! One measurement window: the counters it is taken between ([`Mark`]) and what it measured
//! ([`Window`]).

use std::time::Instant;

use anyhow::Result;

use super::{cpu, topo::Topo};

/// One measurement window.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Window {
    /// Frames counted by the sinks per second.
    pub pps: f64,
    /// Bits per second of those frames (Ethernet frame bytes, no FCS).
    pub bps: f64,
    /// Frames generated per second (offered load, before any drop).
    pub offered_pps: f64,
    /// Busy fraction of each CPU.
    pub cpu_busy: Vec<f64>,
    /// CPUs' worth of time used by everything but the benchmark (other processes on the
    /// machine) during the window.
    pub foreign_cpu: f64,
    /// Run time of the DUT's ingress NAPI thread during the window, seconds per second: the
    /// device under test's own CPU time (all of its work runs there), unlike `cpu_busy`, which
    /// also counts whatever else shares the CPU.
    pub dut_busy: f64,
    /// Frames per second dropped on the way into the DUT (its ingress queue full: the DUT is
    /// the bottleneck).
    pub lost_in_pps: f64,
    /// Frames per second dropped on the way out of the DUT into the sinks (their queues full:
    /// the sinks are the bottleneck).
    pub lost_out_pps: f64,
    /// Run time of the generator thread and of its CPU's `ksoftirqd` during the window,
    /// seconds per second (with `--placement one-cpu` it includes the DUT's and the sinks'
    /// softirq work).
    pub gen_busy: f64,
    /// Inter-processor interrupts (rescheduling and function-call) per second, all CPUs: the
    /// cross-CPU wake-ups a placement costs (in a VM each one is an exit).
    pub ipi_ps: f64,
}

/// The counters a window is measured between.
pub struct Mark {
    at: Instant,
    /// Sink frames, sink bytes, generated frames.
    counts: (u64, u64, u64),
    /// Drops entering the DUT and toward the sinks.
    drops: (u64, u64),
    dut_ns: u64,
    gen_ns: u64,
    ipis: u64,
    cpu: Vec<(u64, u64)>,
    own_ticks: u64,
}

impl Mark {
    /// `gen_threads`: the generator thread and its CPU's `ksoftirqd` (where softirq work the
    /// generator raised goes when the kernel defers it).
    pub fn take(
        t: &Topo,
        gen_threads: (i32, Option<i32>),
        read: &dyn Fn() -> Result<(u64, u64, u64)>,
    ) -> Result<Mark> {
        Ok(Mark {
            counts: read()?,
            drops: t.drops(),
            dut_ns: t.dut_runtime_ns(),
            gen_ns: cpu::schedstat_ns(gen_threads.0) + gen_threads.1.map_or(0, cpu::schedstat_ns),
            ipis: cpu::ipis(),
            cpu: cpu::cpu_times()?,
            own_ticks: t.own_ticks(),
            at: Instant::now(),
        })
    }

    /// The window from `a` to this mark.
    #[expect(clippy::cast_precision_loss, reason = "counters")]
    pub fn window_since(&self, a: &Mark) -> Window {
        let dt = self.at.duration_since(a.at).as_secs_f64();
        let per_s = |x: u64, y: u64| y.saturating_sub(x) as f64 / dt;
        Window {
            pps: per_s(a.counts.0, self.counts.0),
            bps: per_s(a.counts.1, self.counts.1) * 8.0,
            offered_pps: per_s(a.counts.2, self.counts.2),
            cpu_busy: cpu::cpu_busy(&a.cpu, &self.cpu),
            foreign_cpu: cpu::foreign(&a.cpu, &self.cpu, self.own_ticks - a.own_ticks),
            dut_busy: per_s(a.dut_ns, self.dut_ns) / 1e9,
            lost_in_pps: per_s(a.drops.0, self.drops.0),
            lost_out_pps: per_s(a.drops.1, self.drops.1),
            gen_busy: per_s(a.gen_ns, self.gen_ns) / 1e9,
            ipi_ps: per_s(a.ipis, self.ipis),
        }
    }
}
