//! Upgrade from another agent binary and back (`XENNET_AGENT_OLD`, e.g. a build of an earlier
//! commit whose datapath has fewer maps): live flows lose nothing, the learned entry and the
//! counters are kept, and each build's own maps are pinned (`XN_FDBCACHE`, `XN_FDBGEN` with
//! this one). Skipped unless `XENNET_AGENT_OLD` is set.

use std::{path::PathBuf, time::Duration};

use xennet_tests::{
    counters::get,
    kernel::pins,
    liveflows::{LiveFlows, assert_no_loss, g9_learned},
    require_root,
    topo::{Agent, BpfFs, Mode, SeedDom0},
};

fn across(tag: &str, mode: Mode) {
    if !require_root() {
        return;
    }
    let Some(old) = std::env::var_os("XENNET_AGENT_OLD").map(PathBuf::from) else {
        eprintln!("XENNET_AGENT_OLD is not set: no other build to upgrade from; skipped");
        return;
    };
    let new = std::env::var_os("XENNET_AGENT").expect("XENNET_AGENT");
    let sim = SeedDom0::new(tag).expect("building the simulated dom0");
    let fs = BpfFs::new(sim.dom0.name()).expect("mounting a bpffs");
    let cfg = mode.config(sim.dom0.name(), "").expect("config");
    let pin_dir = fs.pin_dir();
    // SAFETY (set_var): this test's threads only read the variable when starting an agent.
    unsafe { std::env::set_var("XENNET_AGENT", &old) };
    let mut agent = Agent::start(&sim.dom0, &cfg, &pin_dir).expect("starting the old agent");
    let LiveFlows {
        g9: _g9,
        slow,
        fast,
    } = LiveFlows::start(tag, &sim, &agent, mode);
    std::thread::sleep(Duration::from_millis(300));
    let mut before = agent.counters().expect("counters");
    for (which, bin) in [("new", new.clone()), ("old", old.into_os_string())] {
        assert!(agent.leave_running().expect("SIGTERM"), "agent exits 0");
        // SAFETY: as above.
        unsafe { std::env::set_var("XENNET_AGENT", &bin) };
        agent = Agent::start(&sim.dom0, &cfg, &pin_dir)
            .unwrap_or_else(|e| panic!("starting the {which} agent: {e:#}"));
        std::thread::sleep(Duration::from_millis(300));
        let all = pins(&pin_dir).expect("pins");
        let has = |n: &str| all.iter().any(|p| p.ends_with(n));
        if which == "new" {
            assert!(has("XN_FDBCACHE") && has("XN_FDBGEN"), "{which}: {all:?}");
        }
        assert!(
            all.iter().all(|p| !p.ends_with("_staged")),
            "{which}: {all:?}"
        );
        assert!(g9_learned(&agent), "{which}: the learned entry is kept");
        let after = agent.counters().expect("counters");
        let (b, a) = (
            get(&before, "vif1.0", "rx_packets"),
            get(&after, "vif1.0", "rx_packets"),
        );
        assert!(
            a > b + 500,
            "{which}: vif1.0 rx_packets continues: {b} then {a}"
        );
        before = after;
    }
    // SAFETY: as above.
    unsafe { std::env::set_var("XENNET_AGENT", &new) };
    std::thread::sleep(Duration::from_millis(200));
    let r_slow = slow.finish(Duration::from_millis(200)).expect("flow");
    let r_fast = fast.finish(Duration::from_millis(200)).expect("flow");
    assert_no_loss("1 kHz flow g1 → g2", &r_slow, 500);
    assert_no_loss("10 kHz flow g1 → g9", &r_fast, 2000);
    assert!(agent.stop().expect("stop"), "agent exits 0");
    let _ = std::fs::remove_file(&cfg);
}

/// One test for both modes: each switches `XENNET_AGENT`, which must not race.
#[test]
fn upgrade_from_another_build_and_back() {
    across("uax", Mode::Xdp);
    across("uat", Mode::AllTc);
}
