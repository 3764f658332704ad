//! Host test of the embedded eBPF objects (parsed, not loaded: no root): the agent's datapath
//! object has no bench programs or maps, the bench object has every program the bench loads.

use std::collections::BTreeSet;

use xennet_common::{
    bench,
    fdbcache::{MAP_FDBCACHE, MAP_FDBGEN},
    maps::{
        MAP_FDB, MAP_FLOOD, MAP_FLOODG, MAP_IFSLOTS, MAP_LEARNED, MAP_MEMBERS, MAP_PORTS,
        MAP_SLOTS, MAP_STATS, MAP_TX, PROG_FLOOD_OUT, PROG_PASS, PROG_TC, PROG_XDP,
    },
    monitor::{MAP_LOGS, MAP_MONITOR},
    rate::MAP_RATES,
    vstats::{MAP_VSLOTS, MAP_VSTATS},
};

use super::traffic::{CEIL_BC, GEN, LADDER, LADDER_TC, SINK};

/// (program names, map names) of `object`, or `None` when it is empty (built without the eBPF
/// toolchain; then `XENNET_REQUIRE_EBPF=1`, as `cargo xtask test` sets, makes that a failure).
fn names(what: &str, object: &[u8]) -> Option<(BTreeSet<String>, BTreeSet<String>)> {
    if object.is_empty() {
        let required = std::env::var("XENNET_REQUIRE_EBPF").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "the {what} object is empty but XENNET_REQUIRE_EBPF=1"
        );
        eprintln!("the {what} object is empty (no eBPF toolchain at build time): not checked");
        return None;
    }
    let obj = aya_obj::Object::parse(object).expect("parsing the object");
    Some((
        obj.programs.keys().cloned().collect(),
        obj.maps.keys().cloned().collect(),
    ))
}

#[test]
fn the_datapath_object_has_no_bench_programs_or_maps() {
    let Some((progs, maps)) = names("datapath", xennet_agent::ebpf::OBJECT) else {
        return;
    };
    let want_progs = [PROG_XDP, PROG_TC, PROG_FLOOD_OUT, PROG_PASS];
    let want_maps = [
        MAP_PORTS,
        MAP_SLOTS,
        MAP_IFSLOTS,
        MAP_FDB,
        MAP_FDBCACHE,
        MAP_FDBGEN,
        MAP_TX,
        MAP_STATS,
        MAP_FLOOD,
        MAP_FLOODG,
        MAP_LEARNED,
        MAP_MEMBERS,
        MAP_RATES,
        MAP_VSTATS,
        MAP_VSLOTS,
        MAP_MONITOR,
        MAP_LOGS,
        // Per-CPU scratch (not pinned): the TC flood walk, the monitor's event.
        "XN_EVENT",
        "XN_FLOODWALK",
        // aya-log's `AYA_LOG_LEVEL` global.
        ".rodata",
    ];
    assert_eq!(
        progs,
        want_progs.iter().map(ToString::to_string).collect(),
        "programs of the datapath object"
    );
    assert_eq!(
        maps,
        want_maps.iter().map(ToString::to_string).collect(),
        "maps of the datapath object"
    );
    assert!(!progs.iter().any(|p| p.starts_with(bench::PROG_PREFIX)));
    assert!(!maps.iter().any(|m| m.starts_with(bench::MAP_PREFIX)));
}

#[test]
fn the_bench_object_has_the_bench_programs_and_maps_only() {
    let Some((progs, maps)) = names("bench", xennet_agent::ebpf::BENCH_OBJECT) else {
        return;
    };
    for p in [GEN, SINK, CEIL_BC]
        .iter()
        .chain(&LADDER[..3])
        .chain(&LADDER_TC[..1])
    {
        assert!(progs.contains(*p), "bench object lacks {p}: {progs:?}");
    }
    // Every program is the bench's own: the datapath's come from the datapath object.
    for p in &progs {
        assert!(p.starts_with(bench::PROG_PREFIX), "{p} in the bench object");
    }
    for m in [
        bench::MAP_GEN,
        bench::MAP_SEQ,
        bench::MAP_SINK,
        bench::MAP_CEIL_TX,
        bench::MAP_CEIL_ALL,
        bench::MAP_TC_TX,
        // The ladder's own copy of the datapath maps it reads.
        MAP_PORTS,
        MAP_SLOTS,
        MAP_IFSLOTS,
        MAP_FDB,
        MAP_FDBCACHE,
        MAP_FDBGEN,
        MAP_TX,
    ] {
        assert!(maps.contains(m), "bench object lacks map {m}: {maps:?}");
    }
}
