//! Upgrade and downgrade of a running datapath with numbered frames flowing (XDP and TC):
//! to a build whose programs differ (same map layout), to one whose map layout differs
//! (`XN_STATS` and `XN_PORTS` of other capacities, one more map `XN_PROBE`), and back to the
//! embedded build. Each step: no frame lost, the same links running the new build's
//! programs (another tag; the build number in `XN_PROBE`), the learned entry, the run-time
//! port and the counters kept.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use xennet_agent::ebpf::{ALT_OBJECT, NEXT_OBJECT, OBJECT_ENV};
use xennet_common::maps::{MAX_PORTS, STATS_SLOTS};
use xennet_tests::{
    counters::get,
    kernel::{LinkRow, array_u32, links, map_entries, pins},
    liveflows::{LiveFlows, assert_no_loss, g9_learned},
    require_root,
    topo::{Agent, BpfFs, Mode, SeedDom0},
};

/// `bytes` written to a file the agent can load (`XENNET_TEST_OBJECT`).
fn object_file(tag: &str, name: &str, bytes: &[u8]) -> PathBuf {
    let p = std::env::temp_dir().join(format!("xennet-{tag}-{name}.o"));
    std::fs::write(&p, bytes).expect("writing the object");
    p
}

/// The program links (TC and XDP: the pass links run a program no build changes).
fn prog_links(pin_dir: &Path) -> std::collections::BTreeMap<String, LinkRow> {
    let mut l = links(pin_dir).expect("links");
    l.retain(|n, _| n.starts_with("link_tc_") || n.starts_with("link_xdp_"));
    l
}

/// One step of the story: which build runs after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Build {
    /// `xennet-alt`: programs differ, map layout the same.
    Alt,
    /// `xennet-next`: another map layout.
    Next,
    /// The embedded object again (a downgrade from `Next`).
    Embedded,
}

#[expect(clippy::too_many_lines, reason = "one story, start to finish")]
fn upgrade_loses_nothing(tag: &str, mode: Mode) {
    if !require_root() {
        return;
    }
    let sim = SeedDom0::new(tag).expect("building the simulated dom0");
    let fs = BpfFs::new(sim.dom0.name()).expect("mounting a bpffs");
    let cfg = mode.config(sim.dom0.name(), "").expect("config");
    let pin_dir = fs.pin_dir();
    let alt = object_file(tag, "alt", ALT_OBJECT);
    let next = object_file(tag, "next", NEXT_OBJECT);
    let mut agent = Agent::start(&sim.dom0, &cfg, &pin_dir).expect("starting the agent");
    let LiveFlows {
        g9: _g9,
        slow,
        fast,
    } = LiveFlows::start(tag, &sim, &agent, mode);
    let base = prog_links(&pin_dir);
    assert_eq!(
        base.len(),
        if mode == Mode::Xdp { 10 } else { 5 },
        "{base:?}"
    );
    let mut prev = base.clone();
    let mut before = agent.counters().expect("counters");

    for build in [Build::Alt, Build::Next, Build::Embedded] {
        assert!(agent.leave_running().expect("SIGTERM"), "agent exits 0");
        agent = match build {
            Build::Alt => Agent::start_env(&sim.dom0, &cfg, &pin_dir, &[(OBJECT_ENV, &alt)]),
            Build::Next => Agent::start_env(&sim.dom0, &cfg, &pin_dir, &[(OBJECT_ENV, &next)]),
            Build::Embedded => Agent::start(&sim.dom0, &cfg, &pin_dir),
        }
        .unwrap_or_else(|e| panic!("starting the {build:?} build: {e:#}"));
        std::thread::sleep(Duration::from_millis(300));
        // The same links, each running the new build's programs.
        let now = prog_links(&pin_dir);
        assert_eq!(now.len(), base.len(), "{build:?}: {now:?}");
        for (pin, row) in &now {
            let was = prev[pin];
            assert_eq!(
                row.link, was.link,
                "{build:?} {pin}: the link itself is kept"
            );
            assert_ne!(
                row.prog, was.prog,
                "{build:?} {pin}: the program is replaced"
            );
            if build == Build::Embedded {
                assert_eq!(
                    row.tag, base[pin].tag,
                    "{pin}: back to the first build's program"
                );
            } else {
                assert_ne!(
                    row.tag, base[pin].tag,
                    "{build:?} {pin}: another build's program"
                );
            }
        }
        // The layout: the next build's maps replaced the pins; back again after the downgrade.
        let (stats, ports) = if build == Build::Next {
            (STATS_SLOTS + 64, MAX_PORTS + 64)
        } else {
            (STATS_SLOTS, MAX_PORTS)
        };
        assert_eq!(
            map_entries(&pin_dir, "XN_STATS").expect("XN_STATS"),
            stats,
            "{build:?}"
        );
        assert_eq!(
            map_entries(&pin_dir, "XN_PORTS").expect("XN_PORTS"),
            ports,
            "{build:?}"
        );
        let probe = array_u32(&pin_dir, "XN_PROBE").expect("XN_PROBE");
        if build == Build::Next {
            assert_eq!(
                probe,
                Some(2),
                "the next build's programs write their number"
            );
        } else {
            assert_eq!(
                probe, None,
                "{build:?}: XN_PROBE pinned only with the next build"
            );
        }
        let all = pins(&pin_dir).expect("pins");
        assert!(
            all.iter().all(|p| !p.ends_with("_staged")),
            "{build:?}: no staged map left: {all:?}"
        );
        assert!(g9_learned(&agent), "{build:?}: the learned entry is kept");
        let ports = agent.ports().expect("ports");
        assert!(
            ports.iter().any(|p| p["interface"] == "vif9.0"),
            "{build:?}: the run-time port is kept: {ports:?}"
        );
        let after = agent.counters().expect("counters");
        for (port, counter) in [("vif1.0", "rx_packets"), ("vif9.0", "tx_packets")] {
            let (b, a) = (get(&before, port, counter), get(&after, port, counter));
            // 300 ms of a 10 kHz flow and more: counted on, not restarted from zero.
            assert!(
                a > b + 500,
                "{build:?}: {port} {counter} continues: {b} then {a}"
            );
        }
        before = after;
        prev = now;
    }
    std::thread::sleep(Duration::from_millis(200));
    let r_slow = slow.finish(Duration::from_millis(200)).expect("flow");
    let r_fast = fast.finish(Duration::from_millis(200)).expect("flow");
    assert_no_loss("1 kHz flow g1 → g2", &r_slow, 500);
    assert_no_loss("10 kHz flow g1 → g9", &r_fast, 2000);
    assert!(agent.stop().expect("stop"), "agent exits 0");
    assert!(!pin_dir.exists(), "pin directory left after down");
    let _ = std::fs::remove_file(&cfg);
    let _ = std::fs::remove_file(&alt);
    let _ = std::fs::remove_file(&next);
}

#[test]
fn upgrade_and_downgrade_lose_nothing_xdp() {
    upgrade_loses_nothing("upx", Mode::Xdp);
}

#[test]
fn upgrade_and_downgrade_lose_nothing_tc() {
    upgrade_loses_nothing("upt", Mode::AllTc);
}
