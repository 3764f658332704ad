//! The FDB-size scenario: the bench-loaded copies of `xennet_xdp`, one with `--fdb-hot`
//! entries and one with the large FDB, swapped on one DUT window by window.

use std::time::Instant;

use anyhow::Result;
use xennet_common::maps::PROG_XDP;

use super::{
    Setting,
    args::BenchArgs,
    interrupted, log,
    paths::PathKind,
    report::{Sample, Unit},
    scenarios::{SCN_FDB_BIG, SCN_FDB_SMALL, Traffic, null_window, sample},
    topo::{Dut, Topo},
    traffic::{BenchObj, CEIL, CEIL_BC, GEN, LADDER, LADDER_TC, SINK},
};

/// The capacity of the loaded objects' `XN_FDB`: room for `--fdb-entries`.
pub fn cap(args: &BenchArgs) -> u32 {
    args.fdb_entries.next_power_of_two().max(1 << 18)
}

/// The bench object (generator, sinks, ceiling, ladder) with a copy of the datapath object
/// (its `xennet_xdp` with `--fdb-hot` FDB entries), and a second datapath copy holding the
/// large FDB (filled only when `fill_big`); every `XN_FDB` sized for the large one, so that
/// only the number of entries differs.
pub fn load_objects(
    args: &BenchArgs,
    fdb_dut: &Dut,
    fill_big: bool,
) -> Result<(BenchObj, BenchObj)> {
    let fdb_cap = cap(args);
    log(&format!(
        "loading the bench programs; FDB of {} entries (map sized {fdb_cap})",
        args.fdb_entries
    ));
    let mut obj = BenchObj::load(
        &[
            GEN,
            SINK,
            CEIL,
            CEIL_BC,
            LADDER[1],
            LADDER[2],
            PROG_XDP,
            LADDER_TC[0],
            LADDER_TC[1],
        ],
        Some(fdb_cap),
    )?;
    obj.fill_xennet(fdb_dut, args.flows, args.fdb_hot, args.fdb_hot)?;
    let mut big = BenchObj::load(&[PROG_XDP], Some(fdb_cap))?;
    if fill_big {
        let fill = Instant::now();
        big.fill_xennet(fdb_dut, args.flows, args.fdb_hot, args.fdb_entries)?;
        log(&format!(
            "filled the large FDB in {:.1} s",
            fill.elapsed().as_secs_f64()
        ));
    }
    Ok((obj, big))
}

/// The same program with the small or the large FDB on DUT `fdb_k`, alternating which goes
/// first.
pub fn rounds(
    cfg: &Setting,
    t: &Topo,
    fdb_k: usize,
    fdb: &Traffic,
    obj: &mut BenchObj,
    big: &mut BenchObj,
) -> Result<Vec<Sample>> {
    let mut samples = Vec::new();
    let d = &t.duts[fdb_k];
    let fdb_path = PathKind::XennetXdp.name();
    for round in 0..cfg.p.rounds {
        let mut order = [(false, SCN_FDB_SMALL), (true, SCN_FDB_BIG)];
        if round % 2 == 1 {
            order.reverse();
        }
        log(&format!("fdb: round {}/{}", round + 1, cfg.p.rounds));
        let null = null_window(cfg, t, obj, SCN_FDB_SMALL, round, fdb, &mut samples)?;
        for (is_big, scn) in order {
            interrupted()?;
            let o: &mut BenchObj = if is_big { &mut *big } else { &mut *obj };
            let link = o.attach(&d.ns, PROG_XDP, "xb0")?;
            cfg.place_napi(t)?;
            // The generator and the sinks are the bench object's, whichever FDB forwards.
            let w = cfg.window(t, obj, d.gen_if, fdb);
            let o: &mut BenchObj = if is_big { &mut *big } else { &mut *obj };
            o.detach(link)?;
            samples.push(sample(scn, fdb_path, round, &w?, Unit::Pps, cfg, null));
        }
    }
    Ok(samples)
}
