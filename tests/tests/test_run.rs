//! The real XDP and TC programs, run in the kernel with `BPF_PROG_TEST_RUN` on the shared
//! fixture table (`xennet_common::fwd::fixtures`, which the host core runs too): each row
//! checked for the action, the exact output bytes and exactly which counters moved, per
//! program. Also the learning story, a full FDB, repeat counts and runt refusal, in both
//! programs, and the XDP-only checks (verifier load, deferring to TC, learned counts as the
//! agent reads them).
//!
//! The labs, their veths and the runners are in `xennet_tests::testrun`; the XDP lab attaches
//! every port with native XDP, the TC lab the same ports with TC only (a TC-only port is what
//! the TC program serves alone: it counts what it learns and passes). A TC flood really sends
//! its copies: each is read back, tag included, on the veth peer of its port.

use std::collections::{BTreeMap, BTreeSet};

use aya::programs::{TestRun as _, TestRunOptions};
use xennet_agent::datapath::Datapath;
use xennet_common::{
    fwd::fixtures::{
        Fate, NOT_A_PORT, Program, delta_of, extra, hex, host, hostile,
        lab::{
            self, BROADCAST, G1, Lab as Fixture, MCAST, Mac, Mode, PortFixture, R2, UP, frame, q,
        },
        moves, portsec, rate, run_all, story, table,
    },
    maps::{FDB_MAX_ENTRIES, MAP_LEARNED},
    stats::Stat,
};
use xennet_tests::{
    Netns, require_root,
    testrun::{TC_ACT_REDIRECT, TC_ACT_SHOT, XDP_DROP, XDP_PASS, XDP_REDIRECT, run_xdp, with_lab},
};

/// Outcome and learning counters no row of the kernel tables produces, with the reason.
const NOT_HERE: [(Stat, &str); 4] = [
    (
        Stat::DropRunt,
        "the kernel refuses frames < 14 bytes (the runt rows expect Fate::Refused)",
    ),
    (
        Stat::DropTagOp,
        "bpf_xdp_adjust_head and the vlan helpers do not fail on a test-run buffer",
    ),
    (
        Stat::DropRedirect,
        "every port is in XN_TX and up, so no redirect fails",
    ),
    (
        Stat::FloodTruncated,
        "counted by the TC program's flood loop only, for bridges of more than MAX_TC_FLOOD ports",
    ),
];

/// Counters `fdb_full_counts_learn_table_full` checks.
const FDB_FULL_STATS: [Stat; 4] = [
    Stat::Forward,
    Stat::LearnNew,
    Stat::LearnMove,
    Stat::LearnTableFull,
];

/// The test-namespace tag of `program`'s variant of a test.
fn tag(program: Program, what: &str) -> String {
    let p = if program == Program::Tc { "tc" } else { "xdp" };
    format!("tr{p}-{what}")
}

/// Whether the lab of `program` attaches every port with TC.
fn all_tc(program: Program) -> bool {
    program == Program::Tc
}

#[test]
fn every_outcome_has_a_case_or_a_reason() {
    // No root needed: this only looks at the tables.
    let mut covered: BTreeSet<Stat> = BTreeSet::new();
    let story = story::learning_story();
    let hostile = hostile::hostile_table();
    let portsec = portsec::portsec_table();
    let rates = rate::rate_rows();
    let moved = moves::move_story();
    for r in table::main_table()
        .iter()
        .chain(story.iter().map(|s| &s.row))
        .chain(&hostile)
        .chain(&portsec)
        .chain(&rates)
        .chain(moved.iter().map(|s| &s.row))
    {
        if r.fate_for(Program::Xdp) != Fate::Refused {
            covered.insert(r.stat);
            covered.extend(r.learn);
            if r.moves {
                covered.insert(Stat::LearnStaticMove);
            }
        }
    }
    covered.extend(FDB_FULL_STATS);
    for s in Stat::ALL.iter().skip(Stat::Forward as usize) {
        let reason = NOT_HERE.iter().find(|(n, _)| n == s).map(|(_, r)| *r);
        assert!(
            covered.contains(s) != reason.is_some(),
            "outcome {}: {}",
            s.name(),
            if covered.contains(s) {
                "has a case, remove it from NOT_HERE"
            } else {
                "has no case and no reason in NOT_HERE"
            }
        );
    }
}

#[test]
fn datapath_loads_and_passes_the_verifier() {
    if !require_root() {
        return;
    }
    let ns = Netns::new("trload").expect("creating the test namespace");
    ns.run_in(|| {
        // A pin directory that does not exist: nothing is pinned without `Datapath::pin`.
        let pin = std::env::temp_dir().join(format!("xennet-trload-{}-unused", std::process::id()));
        // `load` runs the verifier on every program; an error here carries its log.
        let mut dp = Datapath::load(&pin).expect("Datapath::load (verifier)");
        // Without a context the kernel runs the program as if on the namespace's loopback,
        // which is not a port: handed to the host stack, counted in slot 0.
        let input = frame(G1, UP, &[], 1);
        let mut out = vec![0u8; 128];
        let r = dp
            .xdp_program()
            .expect("the XDP program")
            .test_run(TestRunOptions {
                data_in: Some(&input),
                data_out: Some(&mut out),
                ..Default::default()
            })
            .expect("BPF_PROG_TEST_RUN without ctx");
        assert_eq!(r.return_value, XDP_PASS, "no port configured: pass");
        assert_eq!(
            hex(&out[..r.data_size_out as usize]),
            hex(&input),
            "frame unchanged"
        );
        let c = dp.counters().expect("counters");
        assert_eq!(c.len(), 1, "only the not-a-port slot: {c:?}");
        assert_eq!(c[0].interface, NOT_A_PORT);
        let nonzero: BTreeMap<&str, u64> = c[0]
            .counters
            .iter()
            .filter(|(_, v)| **v != 0)
            .map(|(k, v)| (k.as_str(), *v))
            .collect();
        assert_eq!(
            nonzero,
            BTreeMap::from([
                (Stat::RxPackets.name(), 1),
                (Stat::RxBytes.name(), input.len() as u64),
                (Stat::PassNotPort.name(), 1),
            ]),
        );
    })
    .unwrap_or_else(|e| panic!("{e:#}"));
}

/// The main table through `program`, in one lab; the FDB must be the same afterwards.
fn table_through(program: Program) {
    with_lab(&tag(program, "table"), &lab::MAIN, all_tc(program), |lab| {
        let statics = lab.fdb();
        let entries = lab.dp.fdb_entries(None).expect("reading the FDB").len();
        let want = lab::MAIN.statics() + lab::MAIN.raw.len();
        assert_eq!(entries, want, "static entries: {statics:?}");
        assert!(
            statics.iter().all(|e| e.3),
            "only static entries: {statics:?}"
        );
        let rows = table::main_table();
        run_all(
            &format!("{program:?} table"),
            &rows,
            |r| r.what,
            |r| lab.check(program, r),
        );
        assert_eq!(lab.fdb(), statics, "the table must not change the FDB");
        let learned = lab.learned(&story::STORY_PORTS);
        assert!(
            learned.values().all(|n| *n == 0),
            "learned counts: {learned:?}"
        );
    });
}

#[test]
fn table_of_frames_through_xdp() {
    if require_root() {
        table_through(Program::Xdp);
    }
}

#[test]
fn table_of_frames_through_tc() {
    if require_root() {
        table_through(Program::Tc);
    }
}

/// The hostile frames (VLAN hopping through a priority tag, and the like) through `program`,
/// in their lab of an 802.1Q and an 802.1ad bridge; the FDB must be the same afterwards.
fn hostile_through(program: Program) {
    let fixture = hostile::HOSTILE;
    with_lab(&tag(program, "hostile"), &fixture, all_tc(program), |lab| {
        let statics = lab.fdb();
        assert_eq!(statics.len(), fixture.statics(), "static entries");
        let rows = hostile::hostile_table();
        run_all(
            &format!("{program:?} hostile"),
            &rows,
            |r| r.what,
            |r| lab.check(program, r),
        );
        assert_eq!(lab.fdb(), statics, "the table must not change the FDB");
    });
}

#[test]
fn hostile_frames_through_xdp() {
    if require_root() {
        hostile_through(Program::Xdp);
    }
}

#[test]
fn hostile_frames_through_tc() {
    if require_root() {
        hostile_through(Program::Tc);
    }
}

/// The port security frames (issue 13: every spoof kind and every legitimate kind) through
/// `program`; the FDB must be the same afterwards (a secured port never learns).
fn portsec_through(program: Program) {
    let fixture = portsec::PORTSEC;
    with_lab(&tag(program, "portsec"), &fixture, all_tc(program), |lab| {
        let statics = lab.fdb();
        assert_eq!(statics.len(), fixture.statics(), "static entries");
        let rows = portsec::portsec_table();
        run_all(
            &format!("{program:?} portsec"),
            &rows,
            |r| r.what,
            |r| lab.check(program, r),
        );
        assert_eq!(lab.fdb(), statics, "the table must not change the FDB");
    });
}

#[test]
fn portsec_frames_through_xdp() {
    if require_root() {
        portsec_through(Program::Xdp);
    }
}

#[test]
fn portsec_frames_through_tc() {
    if require_root() {
        portsec_through(Program::Tc);
    }
}

/// The bandwidth limit rows through `program`, in order in one lab (each depends on the
/// bucket the ones before left): within the burst forwarded, then `drop_rate_limit`.
fn rates_through(program: Program) {
    with_lab(
        &tag(program, "rate"),
        &rate::RATED,
        all_tc(program),
        |lab| {
            for r in rate::rate_rows() {
                lab.check(program, &r);
            }
        },
    );
}

#[test]
fn rate_limit_rows_through_xdp() {
    if require_root() {
        rates_through(Program::Xdp);
    }
}

#[test]
fn rate_limit_rows_through_tc() {
    if require_root() {
        rates_through(Program::Tc);
    }
}

/// The learning story through `program`, with the learned counts after every step.
fn story_through(program: Program) {
    with_lab(&tag(program, "learn"), &lab::MAIN, all_tc(program), |lab| {
        let statics = lab.fdb();
        let story = story::learning_story();
        let ports = story::STORY_PORTS;
        // Later steps depend on earlier ones: a failure early on makes later ones fail too.
        run_all(
            &format!("{program:?} learning story"),
            &story,
            |s| s.row.what,
            |s| {
                lab.check(program, &s.row);
                let want: BTreeMap<&str, u32> = ports.into_iter().zip(s.learned).collect();
                let what = s.row.what;
                assert_eq!(
                    lab.learned(&ports),
                    want,
                    "{what}: {MAP_LEARNED} after the step"
                );
                assert_eq!(
                    lab.learned_in_fdb(&ports),
                    want,
                    "{what}: learned FDB entries"
                );
            },
        );
        let learned: BTreeSet<_> = lab.fdb().difference(&statics).cloned().collect();
        let want: BTreeSet<_> = story::learned_after_story()
            .into_iter()
            .map(|(m, v, p)| (lab::fmt_mac(&m), v, p.to_string(), false))
            .collect();
        assert_eq!(learned, want, "learned FDB entries");
        assert_eq!(
            lab.fdb().len(),
            statics.len() + learned.len(),
            "static entries untouched"
        );
    });
}

#[test]
fn learning_story_through_xdp() {
    if require_root() {
        story_through(Program::Xdp);
    }
}

#[test]
fn learning_story_through_tc() {
    if require_root() {
        story_through(Program::Tc);
    }
}

/// The move story (issue 15) through `program`: a guest's static MAC taken over by a claim
/// on the uplink only, with the learned counts after every step.
fn moves_through(program: Program) {
    with_lab(
        &tag(program, "move"),
        &moves::MOVE,
        all_tc(program),
        |lab| {
            let statics = lab.fdb();
            run_all(
                &format!("{program:?} move story"),
                &moves::move_story(),
                |s| s.row.what,
                |s| {
                    lab.check(program, &s.row);
                    let want: BTreeMap<&str, u32> =
                        moves::MOVE_PORTS.into_iter().zip(s.learned).collect();
                    let what = s.row.what;
                    assert_eq!(
                        lab.learned(&moves::MOVE_PORTS),
                        want,
                        "{what}: {MAP_LEARNED} after the step"
                    );
                },
            );
            let now: BTreeSet<_> = lab.fdb();
            let want: BTreeSet<_> = moves::learned_after_moves()
                .into_iter()
                .map(|(m, v, p)| (lab::fmt_mac(&m), v, p.to_string(), false))
                .collect();
            assert_eq!(
                now, want,
                "the FDB after the story: G1 moved, nothing static left"
            );
            assert_eq!(statics.len(), 1, "G1 was the one static entry");
        },
    );
}

#[test]
fn move_story_through_xdp() {
    if require_root() {
        moves_through(Program::Xdp);
    }
}

#[test]
fn move_story_through_tc() {
    if require_root() {
        moves_through(Program::Tc);
    }
}

/// Runts through `program`: refused by the kernel, nothing counted.
fn runts_through(program: Program) {
    with_lab(&tag(program, "runt"), &lab::MAIN, all_tc(program), |lab| {
        let rows = extra::runts();
        assert!(rows.iter().all(|r| r.fate_for(program) == Fate::Refused));
        run_all("runts", &rows, |r| r.what, |r| lab.check(program, r));
    });
}

#[test]
fn runt_frames_are_refused_by_the_kernel_xdp() {
    if require_root() {
        runts_through(Program::Xdp);
    }
}

#[test]
fn runt_frames_are_refused_by_the_kernel_tc() {
    if require_root() {
        runts_through(Program::Tc);
    }
}

/// The lab where `p2` is TC-only: XDP defers to TC; TC (on the XDP ports, as it runs after
/// XDP passed a frame up) finishes the deferred frames.
fn defer_through(program: Program) {
    with_lab(&tag(program, "defer"), &lab::DEFER, false, |lab| {
        let rows = extra::defer_table();
        run_all(
            &format!("{program:?} defer"),
            &rows,
            |r| r.what,
            |r| lab.check(program, r),
        );
    });
}

#[test]
fn xdp_defers_to_tc_for_a_tc_only_port() {
    if require_root() {
        defer_through(Program::Xdp);
    }
}

#[test]
fn tc_finishes_what_xdp_deferred() {
    if require_root() {
        defer_through(Program::Tc);
    }
}

/// One repeated run: `input` on `port`, `N` times, with the last run's action and output and
/// the counter deltas of all runs.
struct Repeat {
    what: &'static str,
    port: &'static str,
    input: Vec<u8>,
    action: u32,
    output: Vec<u8>,
    counters: Vec<(&'static str, Stat, u64)>,
    /// MACs learned on t0 afterwards, if checked.
    learned_t0: Option<u32>,
}

/// How many times each repeated frame runs.
const N: u32 = 1000;

/// Scenarios of `repeat` > 1 (the kernel reruns the program on its own output).
fn repeats(program: Program) -> Vec<Repeat> {
    let n = u64::from(N);
    let xdp = program == Program::Xdp;
    let mut v = Vec::new();
    // A frame the program leaves as it is (trunk → trunk, tag kept): every one of the N runs
    // sees the same frame and forwards it.
    let input = frame(R2, UP, &[q(5, 4094)], 1);
    let len = input.len() as u64;
    v.push(Repeat {
        what: "trunk → trunk",
        port: "t0",
        action: if xdp { XDP_REDIRECT } else { TC_ACT_REDIRECT },
        output: input.clone(),
        input,
        counters: vec![
            ("t0", Stat::RxPackets, n),
            ("t0", Stat::RxBytes, n * len),
            ("t0", Stat::Forward, n),
            ("t2", Stat::TxPackets, n),
            ("t2", Stat::TxBytes, n * len),
        ],
        learned_t0: None,
    });
    // The same from a source nobody knows yet: learned by the first run only, the other runs
    // find it in place (a refresh is not counted).
    let input = frame(R2, lab::L1, &[q(5, 4094)], 2);
    v.push(Repeat {
        what: "trunk → trunk from a new source",
        port: "t0",
        action: if xdp { XDP_REDIRECT } else { TC_ACT_REDIRECT },
        output: input.clone(),
        input,
        counters: vec![
            ("t0", Stat::RxPackets, n),
            ("t0", Stat::RxBytes, n * len),
            ("t0", Stat::Forward, n),
            ("t0", Stat::LearnNew, 1),
            ("t2", Stat::TxPackets, n),
            ("t2", Stat::TxBytes, n * len),
        ],
        learned_t0: Some(1),
    });
    // Frames the program tags: run 1 pushes the tag and runs 2..N see a frame tagged 4094 on
    // an access port (XDP: in the bytes; TC: in skb metadata, where bpf_skb_vlan_push put it,
    // so TC's output bytes stay untagged). Every run is still counted, as wire bytes.
    let input = frame(UP, G1, &[], 4);
    let len = input.len() as u64;
    v.push(Repeat {
        what: "access → trunk",
        port: "p0",
        action: if xdp { XDP_DROP } else { TC_ACT_SHOT },
        output: if xdp {
            frame(UP, G1, &[q(0, 4094)], 4)
        } else {
            input.clone()
        },
        input,
        counters: vec![
            ("p0", Stat::RxPackets, n),
            ("p0", Stat::RxBytes, len + (n - 1) * (len + 4)),
            ("p0", Stat::Forward, 1),
            ("p0", Stat::DropTaggedOnAccess, n - 1),
            ("t0", Stat::TxPackets, 1),
            ("t0", Stat::TxBytes, len + 4),
        ],
        learned_t0: None,
    });
    if xdp {
        // XDP floods leave the frame tagged in the buffer: multicast on a trunk keeps its tag
        // and floods every run; a broadcast on an access port is tagged by run 1, and runs
        // 2..N see it tagged. (TC strips the tag of a flooded frame and sends copies instead:
        // its reruns see another frame, which the single-run rows already cover.)
        let input = frame(MCAST, UP, &[q(0, 4094)], 3);
        let len = input.len() as u64;
        v.push(Repeat {
            what: "multicast on a trunk",
            port: "t0",
            action: XDP_REDIRECT,
            output: input.clone(),
            input,
            counters: vec![
                ("t0", Stat::RxPackets, n),
                ("t0", Stat::RxBytes, n * len),
                ("t0", Stat::Flood, n),
            ],
            learned_t0: None,
        });
        let input = frame(BROADCAST, G1, &[], 5);
        let len = input.len() as u64;
        v.push(Repeat {
            what: "broadcast on access",
            port: "p0",
            action: XDP_DROP,
            output: frame(BROADCAST, G1, &[q(0, 4094)], 5),
            input,
            counters: vec![
                ("p0", Stat::RxPackets, n),
                ("p0", Stat::RxBytes, len + (n - 1) * (len + 4)),
                ("p0", Stat::Flood, 1),
                ("p0", Stat::DropTaggedOnAccess, n - 1),
            ],
            learned_t0: None,
        });
    }
    v
}

fn repeat_through(program: Program) {
    with_lab(
        &tag(program, "repeat"),
        &lab::MAIN,
        all_tc(program),
        |lab| {
            for r in repeats(program) {
                let what = r.what;
                let (got, d) = lab.run(program, r.port, &r.input, N);
                let got =
                    got.unwrap_or_else(|e| panic!("{what}: BPF_PROG_TEST_RUN with repeat: {e}"));
                assert_eq!(
                    got.action, r.action,
                    "{what}, repeat {N}: action of the last run"
                );
                assert_eq!(
                    hex(&got.output),
                    hex(&r.output),
                    "{what}, repeat {N}: output"
                );
                assert_eq!(d, delta_of(&r.counters), "{what}, repeat {N}: counters");
                if let Some(n) = r.learned_t0 {
                    assert_eq!(lab.learned(&["t0"]), BTreeMap::from([("t0", n)]), "{what}");
                }
            }
        },
    );
}

#[test]
fn repeat_counts_every_run_xdp() {
    if require_root() {
        repeat_through(Program::Xdp);
    }
}

#[test]
fn repeat_counts_every_run_tc() {
    if require_root() {
        repeat_through(Program::Tc);
    }
}

const fn access(name: &'static str, macs: &'static [(Mac, Option<u16>)]) -> PortFixture {
    PortFixture {
        name,
        bridge: "br",
        mode: Mode::Access(4094),
        mac_limit: Some(0),
        macs,
        tc: false,
        sec: None,
        mac_move: None,
    }
}

/// Two access ports without a MAC limit and one trunk with one static entry: learning from
/// `p0` can fill the whole FDB.
const FULL: Fixture = Fixture {
    ports: &[
        access("p0", &[]),
        access("p2", &[]),
        PortFixture {
            mode: Mode::Trunk {
                vlans: &[4094],
                native: None,
            },
            ..access("t0", &[(UP, Some(4094))])
        },
    ],
    raw: &[],
    veths: &[("p0", "p3"), ("p2", "p5"), ("t0", "t1")],
    ad_bridges: &[],
    rates: &[],
};

/// The `i`-th source MAC of the FDB filler (locally administered unicast).
fn filler_mac(i: u32) -> Mac {
    let b = i.to_be_bytes();
    [0x02, 0x10, b[0], b[1], b[2], b[3]]
}

fn fdb_full_through(program: Program) {
    with_lab(&tag(program, "full"), &FULL, all_tc(program), |lab| {
        // Fill the FDB (FDB_MAX_ENTRIES, one of them the static UP@4094) by learning from p0.
        let n = FDB_MAX_ENTRIES - 1;
        let idx = lab.ifindex("p0");
        let mut input = frame(UP, filler_mac(0), &[], 1);
        let len = input.len() as u64;
        let before = lab.counters();
        let want = if program == Program::Xdp {
            XDP_REDIRECT
        } else {
            TC_ACT_REDIRECT
        };
        for i in 0..n {
            input[6..12].copy_from_slice(&filler_mac(i));
            let r = match program {
                Program::Tc => xennet_tests::testrun::run_tc(lab.tc(), idx, &input, 1),
                _ => run_xdp(lab.xdp(), idx, &input, 1),
            }
            .expect("BPF_PROG_TEST_RUN");
            assert_eq!(r.action, want, "filler frame {i}");
        }
        let d = host::delta(&before, &lab.counters());
        let nn = u64::from(n);
        assert_eq!(
            d,
            delta_of(&[
                ("p0", Stat::RxPackets, nn),
                ("p0", Stat::RxBytes, nn * len),
                ("p0", Stat::Forward, nn),
                ("p0", Stat::LearnNew, nn),
                ("t0", Stat::TxPackets, nn),
                ("t0", Stat::TxBytes, nn * (len + 4)),
            ]),
            "filling the FDB"
        );
        assert_eq!(
            lab.learned(&["p0", "p2"]),
            BTreeMap::from([("p0", n), ("p2", 0)])
        );
        assert_eq!(
            lab.dp.fdb_entries(None).expect("reading the FDB").len(),
            FDB_MAX_ENTRIES as usize
        );
        let steps = [
            table::fwd(
                "a new MAC on p0 with the FDB full: not learned, still forwarded",
                "p0",
                frame(UP, filler_mac(n), &[], 2),
                "t0",
                frame(UP, filler_mac(n), &[q(0, 4094)], 2),
            )
            .learns(Stat::LearnTableFull),
            table::fwd(
                "a learned MAC moving to p2 with the FDB full: the entry is replaced in place",
                "p2",
                frame(UP, filler_mac(0), &[], 3),
                "t0",
                frame(UP, filler_mac(0), &[q(0, 4094)], 3),
            )
            .learns(Stat::LearnMove),
            table::fwd(
                "t0 → the moved MAC: forwarded to p2",
                "t0",
                frame(filler_mac(0), UP, &[q(0, 4094)], 4),
                "p2",
                frame(filler_mac(0), UP, &[], 4),
            ),
            table::fwd(
                "a new MAC on p2: still full, not learned",
                "p2",
                frame(UP, filler_mac(n + 1), &[], 5),
                "t0",
                frame(UP, filler_mac(n + 1), &[q(0, 4094)], 5),
            )
            .learns(Stat::LearnTableFull),
        ];
        run_all("full FDB", &steps, |c| c.what, |c| lab.check(program, c));
        assert_eq!(
            lab.learned(&["p0", "p2"]),
            BTreeMap::from([("p0", n - 1), ("p2", 1)])
        );
    });
}

#[test]
fn fdb_full_counts_learn_table_full_xdp() {
    if require_root() {
        fdb_full_through(Program::Xdp);
    }
}

#[test]
fn fdb_full_counts_learn_table_full_tc() {
    if require_root() {
        fdb_full_through(Program::Tc);
    }
}

#[test]
fn agent_reads_the_learned_counts_the_datapath_keeps() {
    if !require_root() {
        return;
    }
    with_lab("trxdp-count", &lab::MAIN, false, |lab| {
        let ports = story::STORY_PORTS;
        // A different number of new sources on each port, so that a count read from the
        // wrong slot shows. p2 stops at its mac_limit of 1.
        let sends: [(&str, u8); 5] = [("p0", 1), ("p1", 2), ("p2", 1), ("t0", 3), ("t2", 0)];
        for (port, n) in sends {
            // t0 has no native VLAN: tagged 4094, to the guest on p0; the others untagged.
            let (dst, tags) = if port == "t0" {
                (G1, vec![q(0, 4094)])
            } else {
                (UP, vec![])
            };
            for i in 0..n {
                let src = [0x02, 0x20, 0, port.as_bytes()[0], port.as_bytes()[1], i];
                let input = frame(dst, src, &tags, u32::from(i));
                let (r, d) = lab.run(Program::Xdp, port, &input, 1);
                assert_eq!(r.expect("BPF_PROG_TEST_RUN").action, XDP_REDIRECT);
                assert_eq!(
                    d.get(&(port.to_string(), Stat::LearnNew.name())),
                    Some(&1),
                    "{port}: source {i} learned"
                );
            }
        }
        let want = BTreeMap::from([("p0", 1), ("p1", 2), ("p2", 1), ("t0", 3), ("t2", 0)]);
        assert_eq!(lab.learned(&ports), want, "{MAP_LEARNED} (map lookups)");
        assert_eq!(lab.learned_in_fdb(&ports), want, "learned FDB entries");
        assert_eq!(
            lab.agent_learned(&ports),
            want,
            "Datapath::learned_on disagrees with {MAP_LEARNED} read through the bpf syscall \
             (slots: {:?})",
            ports.map(|p| (p, lab.slot(p)))
        );
    });
}
