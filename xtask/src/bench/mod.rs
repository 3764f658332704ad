//! `cargo xtask bench`: the Linux bridge, the bridge with `br_netfilter`, a bare XDP redirect
//! (the ceiling) and xennet (XDP, TC) forwarding the same traffic, alternating, in one run.
//!
//! Traffic comes from `xnb_gen` run through live-frame `BPF_PROG_TEST_RUN` on a veth in a
//! generator namespace, and is counted by `xnb_sink` behind the device under test (see
//! `topo.rs` for the picture). The generator thread is pinned to one CPU, the DUT ingress NAPI
//! thread to the other. Results: a table on the terminal, markdown + JSON + SVG under
//! `target/bench/` (or `--out`), and optionally the markdown in `docs/benchmarks.md`.
//!
//! This file runs the steps in order (set up, measure, tear down, report); each step has its
//! own file: `args` (options), `scenarios` (ids, traffic, frame-rate rounds), `fdb` (the FDB
//! scenario), `tcp` (TCP and RTT), `profile` (ladder, in-situ run time), `targets`, `report/`,
//! `docs` (`--update-docs`), and `paths`, `topo`, `traffic` (what is measured, where, how).

mod args;
mod cpu;
mod docs;
mod fdb;
mod ladder_only;
#[cfg(test)]
mod objects;
mod paths;
mod portsec;
mod profile;
mod report;
mod scenarios;
mod targets;
mod tcp;
mod topo;
mod traffic;
mod udp;
mod window;

use std::{
    collections::BTreeMap,
    path::Path,
    time::{Instant, SystemTime},
};

use anyhow::{Context as _, Result, bail};

pub use self::args::BenchArgs;
use self::{
    args::Params,
    paths::{Active, PathKind},
    report::{Report, Sample},
    scenarios::{
        SCN_FDB_BIG, SCN_FDB_SMALL, SCN_FLOOD, SCN_LARGE, SCN_RTT, SCN_TAG, SCN_TCP,
        SCN_TCP_NOCSUM, SCN_U64, Traffic, Traffics,
    },
    topo::Topo,
    traffic::{BenchObj, SINK},
    window::Window,
};

fn log(msg: &str) {
    eprintln!("bench: {msg}");
}

/// What every measuring step reads: the options, the parameters and the CPUs.
struct Setting<'a> {
    args: &'a BenchArgs,
    p: Params,
    gen_cpu: usize,
    dut_cpu: usize,
}

impl Setting<'_> {
    /// Place the NAPI work by `--placement` (see [`cpu::Placement`]).
    fn place_napi(&self, t: &Topo) -> Result<()> {
        t.place_napi(self.args.placement, self.dut_cpu, self.gen_cpu)
    }

    /// One measurement window of `tr` from the generator veth `gen_if`.
    fn window(&self, t: &Topo, obj: &mut BenchObj, gen_if: u32, tr: &Traffic) -> Result<Window> {
        obj.measure(
            t,
            gen_if,
            &tr.frame,
            tr.conf,
            self.gen_cpu,
            self.p.warmup,
            self.p.window,
            self.p.gen_batch,
        )
    }
}

/// What runs on each DUT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Path(PathKind),
    /// The FDB scenario: the bench-loaded `xennet_xdp` copies, swapped per window.
    Fdb,
}

/// (scenario, path) → why that path cannot run that scenario.
type NotAvailable = BTreeMap<(String, String), String>;

/// The agents' counters: path → port → counter → value.
type AgentCounters = BTreeMap<String, BTreeMap<String, BTreeMap<String, u64>>>;

/// Run the benchmark with the agent binary `agent`.
pub fn run(args: &BenchArgs, agent: &Path, root: &Path) -> Result<()> {
    let started = Instant::now();
    let started_unix = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let p = Params::new(args);
    args.check()?;
    catch_signals();
    if args.ladder_only {
        return ladder_only::run(args);
    }
    topo::remove_stale();
    let machine = topo::Machine::probe();
    let (gen_cpu, dut_cpu) = if machine.cpus < 2 {
        (0, 0)
    } else {
        (args.gen_cpu, args.dut_cpu)
    };
    let out_dir = args
        .out
        .clone()
        .unwrap_or_else(|| root.join("target/bench"));
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let tmp = out_dir.join("tmp");
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    // SAFETY: single-threaded at this point; the test harness reads this variable.
    unsafe { std::env::set_var("XENNET_AGENT", agent) };

    let (paths, mut na) = choose_paths(args, agent, &tmp)?;
    let mut roles: Vec<Role> = paths.iter().copied().map(Role::Path).collect();
    roles.push(Role::Fdb);
    let cfg = Setting {
        args,
        p,
        gen_cpu,
        dut_cpu,
    };
    log(&format!(
        "{} rounds, {:.2} s windows; placement {} (generator CPU {gen_cpu}, DUT CPU {dut_cpu}); \
         building {} DUT namespaces",
        cfg.p.rounds,
        args.placement.name(),
        cfg.p.window.as_secs_f64(),
        roles.len()
    ));
    let guests: Vec<bool> = roles.iter().map(|r| matches!(r, Role::Path(_))).collect();
    let t = Topo::new(&guests, args.flood_ports).context("building the namespaces")?;
    let (m, agent_counters) = measure(&cfg, &t, &roles, &tmp)?;
    drop(t);
    for (path, why) in &m.tcp_broken {
        na.insert((SCN_TCP.into(), path.clone()), format!("fails: {why}"));
    }

    let rep = build_report(&cfg, machine, started, started_unix, m, &na, agent_counters);
    let svg = report::write(&rep, &out_dir)?;
    let stem = report::stem(&rep);
    println!("{}", report::terminal(&rep));
    println!(
        "\nwritten: {}/{stem}.{{md,json,svg}} (and latest.*), {:.0} s",
        out_dir.display(),
        rep.duration_s
    );
    if args.update_docs {
        docs::update_docs(root, &rep, &svg)?;
    }
    Ok(())
}

/// The paths that run (TC only where the agent has a TC datapath, and `--paths`), and which
/// (scenario, path) cannot run, with the reason.
fn choose_paths(
    args: &BenchArgs,
    agent: &Path,
    tmp: &Path,
) -> Result<(Vec<PathKind>, NotAvailable)> {
    let mut na = NotAvailable::new();
    let tc = {
        let cfg = tmp.join("xennet-tc-check.toml");
        std::fs::write(&cfg, paths::xennet_config_text(args.flood_ports, "tc"))
            .with_context(|| format!("writing {}", cfg.display()))?;
        paths::tc_available(agent, &cfg)?
    };
    let paths: Vec<PathKind> = PathKind::ALL
        .into_iter()
        .filter(|k| !matches!(k, PathKind::XennetTc | PathKind::XennetTcSec) || tc.is_ok())
        .filter(|k| args.paths.is_empty() || args.paths.iter().any(|x| x == k.name()))
        .collect();
    if let Err(why) = &tc {
        log(&format!("xennet-tc: n/a ({why})"));
        for s in [
            SCN_U64,
            SCN_TAG,
            SCN_LARGE,
            SCN_FLOOD,
            SCN_TCP,
            SCN_TCP_NOCSUM,
            SCN_RTT,
        ] {
            for k in [PathKind::XennetTc, PathKind::XennetTcSec] {
                na.insert((s.into(), k.name().into()), why.clone());
            }
        }
    }
    na.insert(
        (SCN_FLOOD.into(), PathKind::TcCeiling.name().into()),
        "a bare bpf_redirect sends one copy".into(),
    );
    for k in [
        PathKind::Bridge,
        PathKind::BridgeNf,
        PathKind::BridgeXenAntispoof,
    ] {
        na.insert(
            (SCN_TAG.into(), k.name().into()),
            "no 802.1Q devices nor bridge VLAN filtering in this kernel".into(),
        );
    }
    Ok((paths, na))
}

/// Load the programs, attach the sinks, set every path up once, measure, and tear it all
/// down again whatever happened; the measurements and the agents' counters.
fn measure(
    cfg: &Setting,
    t: &Topo,
    roles: &[Role],
    tmp: &Path,
) -> Result<(Measured, AgentCounters)> {
    let fdb_k = roles.len() - 1;
    let fdb_wanted = cfg.args.wants(SCN_FDB_SMALL) || cfg.args.wants(SCN_FDB_BIG);
    let (mut obj, mut big) = fdb::load_objects(cfg.args, &t.duts[fdb_k], fdb_wanted)?;
    let mut sinks = Vec::new();
    for sink in t.sinks() {
        sinks.push(obj.attach(&t.sink, SINK, &sink)?);
    }
    let (mut actives, ceil_k) = setup_paths(t, roles, &mut obj, tmp, cfg.args.flows)?;
    let result = measure_all(cfg, t, roles, ceil_k, &mut obj, &mut big, &mut actives);
    let counters = agent_counters(t, roles, &actives);
    teardown_all(t, &mut obj, &mut actives);
    for sink in sinks {
        let _ = obj.detach(sink);
    }
    Ok((result?, counters))
}

/// Set every path up, once; on a failure, tear down those already set up. Also the DUT index
/// of the ceiling, if it runs.
fn setup_paths(
    t: &Topo,
    roles: &[Role],
    obj: &mut BenchObj,
    tmp: &Path,
    flows: u16,
) -> Result<(Vec<Option<Active>>, Option<usize>)> {
    let mut actives: Vec<Option<Active>> = Vec::new();
    let mut ceil_k = None;
    for (k, r) in roles.iter().enumerate() {
        let Role::Path(kind) = r else {
            actives.push(None);
            continue;
        };
        log(&format!("setting up {}", kind.name()));
        if *kind == PathKind::Ceiling {
            ceil_k = Some(k);
        }
        let a = paths::setup(*kind, &t.duts[k], obj, tmp, flows)
            .with_context(|| format!("setting up {}", kind.name()));
        match a {
            Ok(a) => actives.push(Some(a)),
            Err(e) => {
                teardown_all(t, obj, &mut actives);
                return Err(e);
            }
        }
    }
    Ok((actives, ceil_k))
}

/// The agents' own counters, as evidence of what the xennet paths did with the frames.
fn agent_counters(t: &Topo, roles: &[Role], actives: &[Option<Active>]) -> AgentCounters {
    let mut counters = BTreeMap::new();
    for (k, a) in actives.iter().enumerate() {
        if let (
            Some(Active::Xennet {
                agent: Some(ag), ..
            }),
            Role::Path(kind),
        ) = (a, roles[k])
        {
            match ag.stats(&t.duts[k].ns) {
                Ok(c) => {
                    counters.insert(kind.name().to_string(), c);
                }
                Err(e) => log(&format!("{}: stats: {e:#}", kind.name())),
            }
        }
    }
    counters
}

fn teardown_all(t: &Topo, obj: &mut BenchObj, actives: &mut [Option<Active>]) {
    for (k, a) in actives.iter_mut().enumerate() {
        if let Some(a) = a.take() {
            if let Err(e) = a.teardown(&t.duts[k], obj) {
                log(&format!("teardown: {e:#}"));
            }
        }
    }
}

/// What the measuring part of a run produced.
struct Measured {
    samples: Vec<Sample>,
    ladder: Vec<(String, f64, f64, f64)>,
    profile: Vec<(String, String, f64, u64)>,
    situ_notes: Vec<String>,
    tcp_broken: BTreeMap<String, String>,
}

/// Every window of every scenario, in this order: the ladder, the frame-rate scenarios, the
/// FDB scenario, TCP and RTT, the in-situ profile.
fn measure_all(
    cfg: &Setting,
    t: &Topo,
    roles: &[Role],
    ceil_k: Option<usize>,
    obj: &mut BenchObj,
    big: &mut BenchObj,
    actives: &mut [Option<Active>],
) -> Result<Measured> {
    cfg.place_napi(t)?;
    let fdb_k = roles.len() - 1;
    let tr = Traffics::new(cfg.args);
    // Program run time ladder (not live), on the FDB DUT's maps.
    let ladder = profile::ladder(cfg, obj, &t.duts[fdb_k], &tr.small, None)?;
    scenarios::ceiling_maps(obj, t, ceil_k, false)?;
    let path_ks: Vec<(usize, PathKind)> = roles
        .iter()
        .enumerate()
        .filter_map(|(k, r)| match r {
            Role::Path(p) => Some((k, *p)),
            Role::Fdb => None,
        })
        .collect();
    let mut samples = scenarios::rate_rounds(cfg, t, &tr, &path_ks, ceil_k, obj, actives)?;
    if cfg.args.wants(SCN_FDB_SMALL) || cfg.args.wants(SCN_FDB_BIG) {
        samples.extend(fdb::rounds(cfg, t, fdb_k, &tr.fdb, obj, big)?);
    }
    let guests = tcp::rounds(cfg, t, &path_ks)?;
    samples.extend(guests.samples);
    // In-situ program cost, on the FDB DUT.
    let (profile, situ_notes) = profile::in_situ(cfg, t, obj, &t.duts[fdb_k], &tr.small)?;
    Ok(Measured {
        samples,
        ladder,
        profile,
        situ_notes,
        tcp_broken: guests.tcp_broken,
    })
}

/// The report of a run: summaries, targets, notes and parameters around the measurements.
fn build_report(
    cfg: &Setting,
    machine: topo::Machine,
    started: Instant,
    started_unix: u64,
    m: Measured,
    na: &NotAvailable,
    agent_counters: AgentCounters,
) -> Report {
    let scenarios = scenarios::scenarios(cfg.args);
    let path_names: Vec<String> = std::iter::once(scenarios::NO_DUT.to_string())
        .chain(PathKind::ALL.iter().map(|k| k.name().to_string()))
        .collect();
    let summary = report::summarize(&scenarios, &path_names, &m.samples, na);
    let mut targets = targets::targets(&summary, cfg.args);
    targets.extend(targets::monitor_off(&m.ladder));
    targets.extend(targets::in_situ(&m.profile));
    targets.extend(targets::port_security(&m.ladder));
    let mut notes = targets::run_notes(cfg.args, cfg.gen_cpu, cfg.dut_cpu, &machine);
    if !cfg.args.scenarios.is_empty() || !cfg.args.paths.is_empty() {
        notes.push("A partial run (--scenarios/--paths).".into());
    }
    notes.extend(m.situ_notes.iter().map(|n| {
        let mut c = n.chars();
        c.next()
            .map(|f| f.to_uppercase().chain(c).collect::<String>() + ".")
            .unwrap_or_default()
    }));
    Report {
        machine,
        command: args::command_line(),
        params: cfg.p.listed(cfg.args, cfg.gen_cpu, cfg.dut_cpu),
        started_unix,
        duration_s: started.elapsed().as_secs_f64(),
        scenarios,
        paths: path_names,
        samples: m.samples,
        summary,
        ladder: m.ladder,
        profile: m.profile,
        targets,
        notes,
        agent_counters,
    }
}

static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Stop at the next step after SIGINT/SIGTERM, so that everything is torn down.
fn interrupted() -> Result<()> {
    if INTERRUPTED.load(std::sync::atomic::Ordering::Relaxed) {
        bail!("interrupted");
    }
    Ok(())
}

fn catch_signals() {
    let h = on_signal as extern "C" fn(libc::c_int);
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, h as libc::sighandler_t);
        libc::signal(libc::SIGTERM, h as libc::sighandler_t);
    }
}
