//! The generator, the sinks, the ceiling, the ladder, and the bench-loaded copies of
//! `xennet_xdp`.
//!
//! Two objects, both built with the agent: the benchmark's own (`xennet_agent::ebpf::
//! BENCH_OBJECT`, from `xennet-ebpf/src/bench.rs`: every `xnb_` program and `XNB_` map), and
//! the agent's datapath (`xennet_agent::ebpf::OBJECT`), loaded here a second time for
//! `xennet_xdp`. Each load has its own maps: the ladder's programs use the bench object's copy
//! of the datapath maps, which [`BenchObj::fill_xennet`] fills like the datapath's.

use std::{
    fs::File,
    os::fd::AsRawFd as _,
    sync::atomic::{AtomicBool, AtomicI32, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, DevMapHash, HashMap, MapData, PerCpuArray},
    programs::{
        Program, SchedClassifier, TcAttachType, Xdp, XdpMode,
        tc::SchedClassifierLinkId,
        xdp::XdpLinkId,
        {TestRun as _, TestRunAttrs, TestRunOptions},
    },
};
pub use xennet_common::bench::GenConf;
use xennet_common::{
    bench::{self, add16},
    maps::{
        FDB_STATIC, FdbKey, FdbVal, MAP_FDB, MAP_IFSLOTS, MAP_PORTS, MAP_SLOTS, MAP_TX,
        PORT_ACCESS, PORT_TRUNK, PROG_TC, PROG_XDP, PortConf,
    },
    vstats::{MAP_VSLOTS, VlanSlots},
};
use xennet_tests::{Netns, frame::Mac};

use super::{
    cpu,
    topo::{self, Dut, Topo},
    window::{Mark, Window},
};

/// Programs of the bench object.
pub const GEN: &str = bench::PROG_GEN;
pub const SINK: &str = bench::PROG_SINK;
pub const CEIL: &str = bench::PROG_CEIL;
pub const CEIL_BC: &str = bench::PROG_CEIL_BC;
pub const TC_CEIL: &str = bench::PROG_TC_CEIL;
/// The ladder from the ceiling to `xennet_xdp`, in order.
pub const LADDER: [&str; 4] = [CEIL, bench::PROG_CEIL_MON, bench::PROG_L1_LOOKUP, PROG_XDP];
/// The TC part of the ladder: the TC ceiling, then `xennet_tc`.
pub const LADDER_TC: [&str; 2] = [bench::PROG_TC_CEIL, PROG_TC];

/// `TC_ACT_REDIRECT`.
const TC_ACT_REDIRECT: u32 = 7;

/// `XDP_REDIRECT`.
const XDP_REDIRECT: u32 = 4;

/// Frames per `BPF_PROG_TEST_RUN` call of the generator: more than any window needs, the call
/// is ended by a signal.
const GEN_CHUNK: u32 = 1 << 31;

extern "C" fn on_sigusr1(_: libc::c_int) {}

/// A no-op SIGUSR1 handler (without `SA_RESTART`): the signal makes the generator's
/// `BPF_PROG_TEST_RUN` return `EINTR`.
fn catch_sigusr1() {
    // SAFETY: a zeroed sigaction with a valid handler; the handler does nothing.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigusr1 as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::sigemptyset(&raw mut sa.sa_mask);
        libc::sigaction(libc::SIGUSR1, &raw const sa, std::ptr::null_mut());
    }
}

/// `struct xdp_md` for `ctx_in`.
fn xdp_md(len: usize, ingress: u32) -> [u8; 24] {
    let mut b = [0u8; 24];
    #[expect(clippy::cast_possible_truncation, reason = "frames are < 4 KiB")]
    b[4..8].copy_from_slice(&(len as u32).to_ne_bytes());
    b[12..16].copy_from_slice(&ingress.to_ne_bytes());
    b
}

/// Loaded copies of the objects: the bench object (its own maps) and the datapath object
/// (its own maps). Programs are found by name: `xnb_*` in the first, the rest in the second.
pub struct BenchObj {
    /// The bench object; `None` for a copy that holds only `xennet_xdp`.
    bench: Option<Ebpf>,
    /// The agent's datapath object.
    xennet: Ebpf,
}

fn xdp<'a>(ebpf: &'a Ebpf, name: &str) -> Result<&'a Xdp> {
    ebpf.program(name)
        .ok_or_else(|| anyhow!("object has no program {name} (rebuild the agent)"))?
        .try_into()
        .with_context(|| format!("{name} type"))
}

fn xdp_mut<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut Xdp> {
    ebpf.program_mut(name)
        .ok_or_else(|| anyhow!("object has no program {name} (rebuild the agent)"))?
        .try_into()
        .with_context(|| format!("{name} type"))
}

fn sum(v: &aya::maps::PerCpuValues<u64>) -> u64 {
    v.iter().sum()
}

/// Load `object` (maps created, `programs` verified); `fdb_max` resizes its `XN_FDB`.
fn load_object(what: &str, object: &[u8], programs: &[&str], fdb_max: Option<u32>) -> Result<Ebpf> {
    let mut loader = EbpfLoader::new();
    if let Some(n) = fdb_max {
        loader.map_max_entries(MAP_FDB, n);
    }
    let mut ebpf = loader
        .load(object)
        .with_context(|| format!("loading the {what} eBPF object"))?;
    for p in programs {
        match ebpf.program_mut(p) {
            Some(Program::SchedClassifier(c)) => c.load(),
            _ => xdp_mut(&mut ebpf, p)?.load(),
        }
        .with_context(|| format!("verifying {p}"))?;
    }
    Ok(ebpf)
}

/// Whether `prog` belongs to the bench object.
fn is_bench(prog: &str) -> bool {
    prog.starts_with(bench::PROG_PREFIX)
}

impl BenchObj {
    /// Load the objects (maps created, `programs` verified); `fdb_max` resizes `XN_FDB` in
    /// both. The bench object is loaded only when one of `programs` is its own.
    pub fn load(programs: &[&str], fdb_max: Option<u32>) -> Result<BenchObj> {
        let (own, xennet): (Vec<&str>, Vec<&str>) = programs.iter().partition(|p| is_bench(p));
        let bench = if own.is_empty() {
            None
        } else {
            let object = xennet_agent::ebpf::bench_object()?;
            Some(load_object("bench", object, &own, fdb_max)?)
        };
        let object = xennet_agent::ebpf::object()?;
        let xennet = load_object("datapath", object, &xennet, fdb_max)?;
        Ok(BenchObj { bench, xennet })
    }

    /// Load another build of the datapath object (`--compare`), without a bench object:
    /// maps created, `programs` verified; `fdb_max` resizes its `XN_FDB`.
    pub fn load_other(object: &[u8], programs: &[&str], fdb_max: Option<u32>) -> Result<BenchObj> {
        let xennet = load_object("compared datapath", object, programs, fdb_max)?;
        Ok(BenchObj {
            bench: None,
            xennet,
        })
    }

    /// The bench object.
    fn bench(&self) -> Result<&Ebpf> {
        self.bench
            .as_ref()
            .ok_or_else(|| anyhow!("this copy has no bench object"))
    }

    /// The bench object, mutably.
    fn bench_mut(&mut self) -> Result<&mut Ebpf> {
        self.bench
            .as_mut()
            .ok_or_else(|| anyhow!("this copy has no bench object"))
    }

    /// The loaded object that holds `prog`.
    fn holder(&self, prog: &str) -> Result<&Ebpf> {
        if is_bench(prog) {
            self.bench()
        } else {
            Ok(&self.xennet)
        }
    }

    /// The datapath object (its maps), mutably.
    pub fn datapath_mut(&mut self) -> &mut Ebpf {
        &mut self.xennet
    }

    /// The loaded object that holds `prog`, mutably.
    fn holder_mut(&mut self, prog: &str) -> Result<&mut Ebpf> {
        if is_bench(prog) {
            self.bench_mut()
        } else {
            Ok(&mut self.xennet)
        }
    }

    /// Attach `prog` natively to `ifname` in `ns`.
    pub fn attach(&mut self, ns: &Netns, prog: &str, ifname: &str) -> Result<(String, XdpLinkId)> {
        let p = xdp_mut(self.holder_mut(prog)?, prog)?;
        let name = ifname.to_string();
        let link = ns.run_in(move || -> Result<XdpLinkId> {
            let idx = xennet_agent::datapath::ifindex(&name)?;
            p.attach_to_if_index(idx, XdpMode::Driver)
                .with_context(|| format!("attaching {prog} to {name}"))
        })??;
        Ok((prog.to_string(), link))
    }

    /// Detach what [`BenchObj::attach`] attached.
    pub fn detach(&mut self, link: (String, XdpLinkId)) -> Result<()> {
        xdp_mut(self.holder_mut(&link.0)?, &link.0)?
            .detach(link.1)
            .with_context(|| format!("detaching {}", link.0))
    }

    /// Replace the ceiling's maps: unicast `from → to` pairs, flood group `all` (ifindices in
    /// the DUT namespace).
    pub fn set_ceiling(&mut self, dut: &Netns, pairs: &[(u32, u32)], all: &[u32]) -> Result<()> {
        let ebpf = self.bench_mut()?;
        dut.run_in(|| -> Result<()> {
            let (tx_name, all_name) = (bench::MAP_CEIL_TX, bench::MAP_CEIL_ALL);
            let mut tx: DevMapHash<&mut MapData> =
                DevMapHash::try_from(ebpf.map_mut(tx_name).context(tx_name)?)?;
            let old: Vec<u32> = tx.keys().filter_map(Result::ok).collect();
            for k in old {
                let _ = tx.remove(k);
            }
            for (a, b) in pairs {
                tx.insert(*a, *b, None, 0)
                    .with_context(|| format!("{tx_name} insert"))?;
            }
            let mut bc: DevMapHash<&mut MapData> =
                DevMapHash::try_from(ebpf.map_mut(all_name).context(all_name)?)?;
            let old: Vec<u32> = bc.keys().filter_map(Result::ok).collect();
            for k in old {
                let _ = bc.remove(k);
            }
            for a in all {
                bc.insert(*a, *a, None, 0)
                    .with_context(|| format!("{all_name} insert"))?;
            }
            Ok(())
        })?
    }

    /// Set the TC ceiling's `ingress → egress` pairs (ifindices in the DUT namespace; every
    /// DUT namespace is built alike, so that they agree between DUTs, as the XDP ceiling's).
    pub fn set_tc_ceiling(&mut self, dut: &Netns, pairs: &[(u32, u32)]) -> Result<()> {
        let ebpf = self.bench_mut()?;
        dut.run_in(|| -> Result<()> {
            let name = bench::MAP_TC_TX;
            let mut to: HashMap<&mut MapData, u32, u32> =
                HashMap::try_from(ebpf.map_mut(name).context(name)?)?;
            for (a, b) in pairs {
                to.insert(a, b, 0)
                    .with_context(|| format!("{name} insert"))?;
            }
            Ok(())
        })?
    }

    /// Attach the TC program `prog` (tcx ingress) to `ifname` in `ns`.
    pub fn attach_tc(
        &mut self,
        ns: &Netns,
        prog: &str,
        ifname: &str,
    ) -> Result<(String, SchedClassifierLinkId)> {
        let p: &mut SchedClassifier = self
            .holder_mut(prog)?
            .program_mut(prog)
            .ok_or_else(|| anyhow!("object has no program {prog}"))?
            .try_into()
            .with_context(|| format!("{prog} type"))?;
        let name = ifname.to_string();
        let link = ns.run_in(move || {
            p.attach(&name, TcAttachType::Ingress)
                .with_context(|| format!("attaching {prog} to {name} (tcx ingress)"))
        })??;
        Ok((prog.to_string(), link))
    }

    /// Detach what [`BenchObj::attach_tc`] attached.
    pub fn detach_tc(&mut self, link: (String, SchedClassifierLinkId)) -> Result<()> {
        let p: &mut SchedClassifier = self
            .holder_mut(&link.0)?
            .program_mut(&link.0)
            .ok_or_else(|| anyhow!("object has no program {}", link.0))?
            .try_into()
            .with_context(|| format!("{} type", link.0))?;
        p.detach(link.1)
            .with_context(|| format!("detaching {}", link.0))
    }

    /// Fill the xennet maps of every loaded object like the agent would for: xb0 trunk [100]
    /// native 1, xb1 access 1 (the sink's MAC static there), and `fdb_entries` static entries
    /// in VLAN 1 behind xb1 — the first `hot` of them are the FDB scenario's destinations, the
    /// rest filler; the generator's `flows` source MACs are static on xb0 (so that the
    /// ladder's frozen clock is valid).
    pub fn fill_xennet(&mut self, t: &Dut, flows: u16, hot: u32, fdb_entries: u32) -> Result<()> {
        if let Some(b) = &mut self.bench {
            fill_xennet(b, t, flows, hot, fdb_entries)?;
        }
        fill_xennet(&mut self.xennet, t, flows, hot, fdb_entries)
    }

    /// Run the generator on `cpu` with `frame` and `conf` and count at the sinks: `warmup`,
    /// then one `window`.
    #[expect(clippy::too_many_arguments, reason = "one window's settings")]
    pub fn measure(
        &mut self,
        t: &Topo,
        gen_if: u32,
        frame: &[u8],
        conf: GenConf,
        cpu: usize,
        warmup: Duration,
        window: Duration,
        batch: u32,
    ) -> Result<Window> {
        {
            let mut cfg: Array<&mut MapData, GenConf> = Array::try_from(
                self.bench_mut()?
                    .map_mut(bench::MAP_GEN)
                    .context(bench::MAP_GEN)?,
            )?;
            cfg.set(0, conf, 0)
                .with_context(|| format!("writing {}", bench::MAP_GEN))?;
        }
        let ebpf = self.bench()?;
        let sink: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(ebpf.map(bench::MAP_SINK).context(bench::MAP_SINK)?)?;
        let seq: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(ebpf.map(bench::MAP_SEQ).context(bench::MAP_SEQ)?)?;
        let gen_prog = xdp(ebpf, GEN)?;
        let netns = File::open(format!("/run/netns/{}", t.genns.name())).context("gen netns")?;
        let ctx = xdp_md(frame.len(), gen_if);
        let stop = AtomicBool::new(false);
        let gen_tid = AtomicI32::new(0);
        catch_sigusr1();
        let read = || -> Result<(u64, u64, u64)> {
            Ok((
                sum(&sink.get(&bench::SINK_FRAMES, 0)?),
                sum(&sink.get(&bench::SINK_BYTES, 0)?),
                sum(&seq.get(&0, 0)?),
            ))
        };
        std::thread::scope(|s| -> Result<Window> {
            let h = s.spawn(|| -> Result<()> {
                // SAFETY: setns on this thread only; the fd is valid.
                if unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(std::io::Error::last_os_error()).context("setns gen");
                }
                cpu::set_affinity(0, cpu)?;
                // Below the sinks' NAPI threads (50), above everything else: other load on
                // the machine must not throttle the generator.
                cpu::set_fifo(0, 40)?;
                // SAFETY: gettid has no preconditions.
                gen_tid.store(unsafe { libc::gettid() }, Ordering::SeqCst);
                let r = (|| -> Result<()> {
                    while !stop.load(Ordering::SeqCst) {
                        let opts = TestRunOptions {
                            data_in: Some(frame),
                            ctx_in: Some(&ctx),
                            repeat: GEN_CHUNK,
                            attrs: TestRunAttrs::new().xdp_live_frames(batch),
                            ..TestRunOptions::new()
                        };
                        if let Err(e) = gen_prog.test_run(opts) {
                            // EINTR: stopped by `stop_gen`.
                            if stop.load(Ordering::SeqCst) {
                                break;
                            }
                            return Err(e).context("generator test_run");
                        }
                    }
                    Ok(())
                })();
                stop.store(true, Ordering::SeqCst);
                r
            });
            let result = (|| -> Result<Window> {
                let deadline = Instant::now() + warmup;
                while Instant::now() < deadline && !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(10));
                }
                let threads = (gen_tid.load(Ordering::SeqCst), cpu::ksoftirqd(cpu));
                let m0 = Mark::take(t, threads, &read)?;
                std::thread::sleep(window);
                Ok(Mark::take(t, threads, &read)?.window_since(&m0))
            })();
            stop.store(true, Ordering::SeqCst);
            // One test_run call runs for the whole window (its setup and teardown wait for
            // RCU grace periods, which must not fall inside the window); a signal ends it.
            while !h.is_finished() {
                let tid = gen_tid.load(Ordering::SeqCst);
                if tid != 0 {
                    // SAFETY: signalling a thread of this process; SIGUSR1 has a no-op handler.
                    unsafe {
                        libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, libc::SIGUSR1);
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            let g = h.join().map_err(|_| anyhow!("generator thread panicked"))?;
            let w = result?;
            g?;
            Ok(w)
        })
    }

    /// Run `prog` `repeat` times on `frame` (not live: the program's own run time) with
    /// ingress xb0; returns ns per run. Fails unless the program returns `XDP_REDIRECT`.
    pub fn prog_ns(&self, t: &Dut, prog: &str, frame: &[u8], repeat: u32) -> Result<f64> {
        let p = xdp(self.holder(prog)?, prog)?;
        let ctx = xdp_md(frame.len(), t.idx("xb0")?);
        let r = t.ns.run_in(|| {
            p.test_run(TestRunOptions {
                data_in: Some(frame),
                ctx_in: Some(&ctx),
                repeat,
                ..TestRunOptions::new()
            })
        })??;
        if r.return_value != XDP_REDIRECT {
            bail!(
                "{prog} returned {} instead of XDP_REDIRECT on the ladder frame",
                r.return_value
            );
        }
        #[expect(clippy::cast_precision_loss, reason = "nanoseconds")]
        Ok(r.duration.as_nanos() as f64)
    }

    /// Run the TC program `prog` `repeat` times on `frame` (not live) with ingress xb0, the TC
    /// ceiling redirecting to xb1; returns ns per run. Fails unless it returns
    /// `TC_ACT_REDIRECT`.
    pub fn tc_ns(&mut self, t: &Dut, prog: &str, frame: &[u8], repeat: u32) -> Result<f64> {
        let (xb0, xb1) = (t.idx("xb0")?, t.idx("xb1")?);
        if is_bench(prog) {
            self.set_tc_ceiling(&t.ns, &[(xb0, xb1)])?;
        }
        let p: &SchedClassifier = self
            .holder(prog)?
            .program(prog)
            .ok_or_else(|| anyhow!("object has no program {prog}"))?
            .try_into()
            .with_context(|| format!("{prog} type"))?;
        // `struct __sk_buff` with only `ifindex` (offset 40) set: the skb arrives on xb0.
        let mut ctx = [0u8; 192];
        ctx[40..44].copy_from_slice(&xb0.to_ne_bytes());
        let r = t.ns.run_in(|| {
            p.test_run(TestRunOptions {
                data_in: Some(frame),
                ctx_in: Some(&ctx),
                repeat,
                ..TestRunOptions::new()
            })
        })??;
        if r.return_value != TC_ACT_REDIRECT {
            bail!(
                "{prog} returned {} instead of TC_ACT_REDIRECT on the ladder frame",
                r.return_value
            );
        }
        #[expect(clippy::cast_precision_loss, reason = "nanoseconds")]
        Ok(r.duration.as_nanos() as f64)
    }

    /// (run count, run time ns) of `prog` (`kernel.bpf_stats_enabled` must be on).
    pub fn prog_stats(&self, prog: &str) -> Result<(u64, u64)> {
        let info = self
            .holder(prog)?
            .program(prog)
            .ok_or_else(|| anyhow!("object has no program {prog}"))?
            .info()
            .with_context(|| format!("reading {prog}'s run statistics"))?;
        #[expect(clippy::cast_possible_truncation, reason = "ns fit u64")]
        Ok((info.run_count(), info.run_time().as_nanos() as u64))
    }
}

/// Fill the xennet maps of one loaded object (see [`BenchObj::fill_xennet`]).
fn fill_xennet(ebpf: &mut Ebpf, t: &Dut, flows: u16, hot: u32, fdb_entries: u32) -> Result<()> {
    let xb0 = t.idx("xb0")?;
    let xb1 = t.idx("xb1")?;
    t.ns.run_in(|| -> Result<()> {
        let mut ports: HashMap<&mut MapData, u32, PortConf> =
            HashMap::try_from(ebpf.map_mut(MAP_PORTS).context("XN_PORTS")?)?;
        let mut trunk = PortConf::new(1, 1, PORT_TRUNK, 1, 0x8100);
        trunk.add_vlan(topo::TAG_VLAN);
        let access = PortConf::new(1, 2, PORT_ACCESS, 1, 0x8100);
        ports.insert(xb0, trunk, 0).context("XN_PORTS insert")?;
        ports.insert(xb1, access, 0).context("XN_PORTS insert")?;
        // As the agent writes them: by slot, with the ifindex.
        let mut slots: Array<&mut MapData, PortConf> =
            Array::try_from(ebpf.map_mut(MAP_SLOTS).context("XN_SLOTS")?)?;
        for (idx, mut conf) in [(xb0, trunk), (xb1, access)] {
            conf.ifindex = idx;
            slots.set(conf.slot, conf, 0).context("XN_SLOTS set")?;
        }
        let mut ifslots: Array<&mut MapData, u32> =
            Array::try_from(ebpf.map_mut(MAP_IFSLOTS).context("XN_IFSLOTS")?)?;
        for (idx, conf) in [(xb0, trunk), (xb1, access)] {
            ifslots.set(idx, conf.slot, 0).context("XN_IFSLOTS set")?;
        }
        // Per-VLAN counters for both VLANs of the bridge, as the agent gives them slots.
        let mut vslots: Array<&mut MapData, VlanSlots> =
            Array::try_from(ebpf.map_mut(MAP_VSLOTS).context("XN_VSLOTS")?)?;
        let mut row = VlanSlots::EMPTY;
        row.slot[1] = 1;
        row.slot[usize::from(topo::TAG_VLAN)] = 2;
        vslots.set(1, row, 0).context("XN_VSLOTS set")?;
        let mut tx: DevMapHash<&mut MapData> =
            DevMapHash::try_from(ebpf.map_mut(MAP_TX).context("XN_TX")?)?;
        tx.insert(xb1, xb1, None, 0).context("XN_TX insert")?;
        let mut fdb: HashMap<&mut MapData, FdbKey, FdbVal> =
            HashMap::try_from(ebpf.map_mut(MAP_FDB).context("XN_FDB")?)?;
        let slot = |port| if port == xb0 { 1 } else { 2 };
        let put = |fdb: &mut HashMap<&mut MapData, FdbKey, FdbVal>, mac: Mac, port| {
            fdb.insert(
                FdbKey {
                    mac,
                    vlan: 1,
                    bridge: 1,
                },
                FdbVal {
                    ifindex: port,
                    flags: FDB_STATIC,
                    slot: slot(port),
                    last_seen_ns: 0,
                },
                0,
            )
            .context("XN_FDB insert")
        };
        put(&mut fdb, topo::sink_mac(1), xb1)?;
        for i in 0..flows {
            put(&mut fdb, add16(topo::GEN_SRC, u32::from(i)), xb0)?;
        }
        for i in 0..fdb_entries {
            let b = i.to_be_bytes();
            let mac = if i < hot {
                let mut m = topo::FDB_DST;
                m[2..6].copy_from_slice(&b);
                m
            } else {
                [0x02, 0xb2, b[0], b[1], b[2], b[3]]
            };
            put(&mut fdb, mac, xb1)?;
        }
        Ok(())
    })?
}
