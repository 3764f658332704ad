//! `cargo xtask bench --ladder-only`: the program-cost part of the bench alone, in seconds —
//! the `BPF_PROG_TEST_RUN` ladder and the in-situ (`bpf_stats`) windows on one DUT, no paths,
//! no agent — for iterating on the datapath's per-frame cost.

use std::fmt::Write as _;

use anyhow::{Context as _, Result};

use xennet_common::maps::{PROG_TC, PROG_XDP};

use super::{
    Setting, args::BenchArgs, args::Params, fdb, log, profile, scenarios::Traffics, topo,
    topo::Topo, traffic::BenchObj,
};

/// Run the ladder and the in-situ windows and print them.
pub fn run(args: &BenchArgs) -> Result<()> {
    topo::remove_stale();
    let machine = topo::Machine::probe();
    let (gen_cpu, dut_cpu) = if machine.cpus < 2 {
        (0, 0)
    } else {
        (args.gen_cpu, args.dut_cpu)
    };
    let cfg = Setting {
        args,
        p: Params::new(args),
        gen_cpu,
        dut_cpu,
    };
    let t = Topo::new(&[false], args.flood_ports).context("building the namespaces")?;
    let d = &t.duts[0];
    let (mut obj, _big) = fdb::load_objects(args, d, false)?;
    let mut other = match &args.compare {
        Some(path) => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("reading the compared object {}", path.display()))?;
            let mut o = BenchObj::load_other(&bytes, &[PROG_XDP, PROG_TC], Some(fdb::cap(args)))?;
            o.fill_xennet(d, args.flows, args.fdb_hot, args.fdb_hot)?;
            Some(o)
        }
        None => None,
    };
    let mut sinks = Vec::new();
    for sink in t.sinks() {
        sinks.push(obj.attach(&t.sink, super::traffic::SINK, &sink)?);
    }
    let tr = Traffics::new(args);
    let result = (|| -> Result<String> {
        cfg.place_napi(&t)?;
        let ladder = profile::ladder(&cfg, &mut obj, d, &tr.small, other.as_mut())?;
        let situ = profile::in_situ(&cfg, &t, &mut obj, d, &tr.small)?;
        let mut text = profile::render(&ladder, &situ);
        let targets = super::targets::monitor_off(&ladder)
            .into_iter()
            .chain(super::targets::in_situ(&situ.0))
            .chain(super::targets::port_security(&ladder));
        for t in targets {
            let met = match t.met {
                Some(true) => "met",
                Some(false) => "MISSED",
                None => "for reference",
            };
            let _ = write!(
                text,
                "\n{}: {} (wanted {}) {met}\n",
                t.what, t.measured, t.wanted
            );
        }
        Ok(text)
    })();
    for s in sinks {
        let _ = obj.detach(s);
    }
    let text = result?;
    log(&format!("load average: {}", machine.loadavg_before));
    println!("{text}");
    Ok(())
}
