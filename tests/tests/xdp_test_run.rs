//! The real XDP program, run in the kernel with `BPF_PROG_TEST_RUN`: one table of frames, each
//! checked for the XDP action, the exact output bytes and exactly which counters moved.
//!
//! Everything runs in a fresh network namespace holding three veth pairs:
//!
//! ```text
//!   p0 ── p1      p0: access 4094 (guest 00:16:3e:00:00:01), p1: access 4093 (00:16:3e:00:00:03)
//!   t0 ── t1      t0: trunk [4093, 4094], no native VLAN (router 02:00:00:00:00:fe on both)
//!   t2 ── t3      t2: trunk [4094], native 4093 (02:00:00:00:00:a1@4094, 02:00:00:00:00:a2@4093)
//! ```
//!
//! `t1` and `t3` are not ports. `Datapath::apply` attaches the program to the four ports, which
//! is what makes their ifindexes usable as `ingress_ifindex` in the test context.
//!
//! What `BPF_PROG_TEST_RUN` does and does not do (observed on this kernel, and relied upon
//! below):
//! * frames shorter than 14 bytes are refused with `EINVAL` before the program runs, so the
//!   core's runt rule (`drop_runt`) can only be covered by the host tests of `xennet-common`;
//! * `XDP_REDIRECT` is only a return value: without `BPF_F_TEST_XDP_LIVE_FRAMES` the kernel
//!   never calls `xdp_do_redirect`, nothing is transmitted, and the output buffer holds the frame
//!   as the program left it (tag pushed or popped);
//! * with `repeat` > 1 the kernel runs the program again on the *same* buffer without
//!   restoring it, so a program that changes the frame sees its own output on the next run.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::atomic::{AtomicU32, Ordering},
};

use aya::programs::{ProgramError, TestRun as _, TestRunOptions, Xdp};
use xennet_agent::{config::Config, datapath::Datapath};
use xennet_common::stats::Stat;
use xennet_tests::{
    Netns,
    frame::{BROADCAST, ETH_P_8021AD, ETH_P_8021Q, ETH_P_TEST, Mac, build_eth, tci, test_frame},
    require_root, veth,
};

/// XDP actions (`enum xdp_action`).
const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_REDIRECT: u32 = 4;

/// Guest on `p0`, VLAN 4094.
const G1: Mac = [0x00, 0x16, 0x3e, 0, 0, 0x01];
/// Guest on `p1`, VLAN 4093.
const G3: Mac = [0x00, 0x16, 0x3e, 0, 0, 0x03];
/// Router behind `t0`, in VLANs 4094 and 4093.
const UP: Mac = [0x02, 0, 0, 0, 0, 0xfe];
/// Station behind `t2`, VLAN 4094 (tagged there).
const R2: Mac = [0x02, 0, 0, 0, 0, 0xa1];
/// Station behind `t2`, VLAN 4093 (its native VLAN, untagged there).
const N2: Mac = [0x02, 0, 0, 0, 0, 0xa2];
/// A unicast MAC the FDB does not know in any VLAN.
const STRANGER: Mac = [0x02, 0, 0, 0, 0, 0x99];
/// An IPv4 multicast MAC.
const MCAST: Mac = [0x01, 0x00, 0x5e, 0, 0, 0x01];

const CONFIG: &str = r#"
[[bridge]]
name = "br"

[[bridge.port]]
interface = "p0"
access = 4094
macs = ["00:16:3e:00:00:01"]

[[bridge.port]]
interface = "p1"
access = 4093
macs = ["00:16:3e:00:00:03"]

[[bridge.port]]
interface = "t0"
trunk = [4093, 4094]
macs = ["02:00:00:00:00:fe@4094", "02:00:00:00:00:fe@4093"]

[[bridge.port]]
interface = "t2"
trunk = [4094]
native_vlan = 4093
macs = ["02:00:00:00:00:a1@4094", "02:00:00:00:00:a2"]
"#;

/// Name under which `Datapath::counters` reports stats slot 0 (frames on non-ports).
const NOT_A_PORT: &str = "(not a port)";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// An 802.1Q tag `(tpid, tci)` with priority `pcp` on VLAN `vid`.
fn q(pcp: u8, vid: u16) -> (u16, u16) {
    (ETH_P_8021Q, tci(pcp, false, vid))
}

/// A test frame (ethertype 0x88b5, marker payload `id`).
fn frame(dst: Mac, src: Mac, tags: &[(u16, u16)], id: u32) -> Vec<u8> {
    test_frame(dst, src, tags, id)
}

/// The first `n` bytes of `f`.
fn cut(f: &[u8], n: usize) -> Vec<u8> {
    f[..n].to_vec()
}

/// `struct xdp_md` for a frame of `len` bytes arriving on `ingress_ifindex`, queue 0.
fn xdp_md(ingress_ifindex: u32, len: usize) -> Vec<u8> {
    let data_end = u32::try_from(len).expect("frame length fits in u32");
    // data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex
    [0, data_end, 0, ingress_ifindex, 0, 0]
        .iter()
        .flat_map(|v: &u32| v.to_ne_bytes())
        .collect()
}

/// What one run returned: the XDP action and the frame as the program left it.
#[derive(Debug)]
struct Run {
    action: u32,
    output: Vec<u8>,
}

/// Run the program `repeat` times on `input` arriving on `ingress_ifindex`.
fn test_run(
    prog: &Xdp,
    ingress_ifindex: u32,
    input: &[u8],
    repeat: u32,
) -> Result<Run, ProgramError> {
    let ctx = xdp_md(ingress_ifindex, input.len());
    // Room for a pushed tag and more: a short buffer would make the kernel fail with ENOSPC.
    let mut out = vec![0u8; input.len() + 64];
    let r = prog.test_run(TestRunOptions {
        data_in: Some(input),
        data_out: Some(&mut out),
        ctx_in: Some(&ctx),
        repeat,
        ..Default::default()
    })?;
    out.truncate(r.data_size_out as usize);
    Ok(Run {
        action: r.return_value,
        output: out,
    })
}

/// Counters by port name, then by counter name.
type Counters = BTreeMap<String, BTreeMap<&'static str, u64>>;
/// Changed counters: (port, counter) → increase.
type Delta = BTreeMap<(String, &'static str), u64>;

/// Every counter that changed between two snapshots (ports missing before count from zero).
fn delta(before: &Counters, after: &Counters) -> Delta {
    let mut d = Delta::new();
    for (port, cs) in after {
        for (name, v) in cs {
            let old = before
                .get(port)
                .and_then(|c| c.get(name))
                .copied()
                .unwrap_or(0);
            assert!(
                *v >= old,
                "counter {port}/{name} went backwards: {old} → {v}"
            );
            if *v != old {
                d.insert((port.clone(), *name), v - old);
            }
        }
    }
    d
}

fn expect(rows: &[(&str, Stat, u64)]) -> Delta {
    let mut d = Delta::new();
    for (port, stat, v) in rows {
        if *v != 0 {
            *d.entry(((*port).to_string(), stat.name())).or_default() += v;
        }
    }
    d
}

fn hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The loaded and applied datapath in the test namespace. Only usable on the thread that
/// `with_lab` runs the test body on (it has joined the namespace).
struct Lab {
    dp: Datapath,
    ifindex: BTreeMap<&'static str, u32>,
}

impl Lab {
    fn ifindex(&self, name: &str) -> u32 {
        *self
            .ifindex
            .get(name)
            .unwrap_or_else(|| panic!("no interface {name} in the lab"))
    }

    fn prog(&mut self) -> &mut Xdp {
        self.dp.xdp_program().expect("the XDP program")
    }

    fn counters(&self) -> Counters {
        self.dp
            .counters()
            .expect("reading the counters")
            .into_iter()
            .map(|p| (p.interface, p.counters))
            .collect()
    }

    /// Run `input` on `port` (`repeat` times), returning the result and the counters that moved.
    fn run(&mut self, port: &str, input: &[u8], repeat: u32) -> (Result<Run, ProgramError>, Delta) {
        let idx = self.ifindex(port);
        let before = self.counters();
        let r = test_run(self.prog(), idx, input, repeat);
        let after = self.counters();
        (r, delta(&before, &after))
    }
}

/// A pin directory that does not exist (nothing is pinned without `Datapath::pin`; the
/// datapath's drop only removes the directory if it exists and is empty).
fn unused_pin_dir() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    std::env::temp_dir().join(format!(
        "xennet-xdp-test-run-{}-{}-unused",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Build the namespace and its veths, load and apply the datapath, and run `f` inside the
/// namespace. A panic in `f` fails the test with its message.
fn with_lab<R: Send>(tag: &str, f: impl FnOnce(&mut Lab) -> R + Send) -> R {
    let ns = Netns::new(tag).expect("creating the test namespace");
    for (a, b) in [("p0", "p1"), ("t0", "t1"), ("t2", "t3")] {
        veth(&ns, a, &ns, b).unwrap_or_else(|e| panic!("creating veth {a}/{b}: {e:#}"));
    }
    let cfg = Config::parse(CONFIG, "xdp_test_run.toml").expect("parsing the test config");
    ns.run_in(move || {
        let mut dp = Datapath::load(&unused_pin_dir())
            .expect("loading the datapath (eBPF object embedded? verifier happy?)");
        dp.apply(&cfg)
            .expect("applying the config (maps + XDP attach)");
        let ifindex = ["p0", "p1", "t0", "t1", "t2", "t3"]
            .into_iter()
            .map(|n| {
                let i = xennet_agent::datapath::ifindex(n).expect("ifindex in the namespace");
                (n, i)
            })
            .collect();
        let mut lab = Lab { dp, ifindex };
        f(&mut lab)
    })
    .unwrap_or_else(|e| panic!("{e:#}"))
}

// ---------------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------------

/// One frame through the program.
struct Case {
    what: &'static str,
    /// Ingress interface.
    port: &'static str,
    input: Vec<u8>,
    /// Expected XDP action.
    action: u32,
    /// Expected frame after the program (for drops and passes: the input, unchanged).
    output: Vec<u8>,
    /// The outcome counter that must increment on the ingress port.
    stat: Stat,
    /// For redirects: the port that must count the frame as transmitted.
    egress: Option<&'static str>,
}

fn dropped(what: &'static str, port: &'static str, input: Vec<u8>, stat: Stat) -> Case {
    Case {
        what,
        port,
        output: input.clone(),
        input,
        action: XDP_DROP,
        stat,
        egress: None,
    }
}

fn pass(what: &'static str, port: &'static str, input: Vec<u8>, stat: Stat) -> Case {
    Case {
        what,
        port,
        output: input.clone(),
        input,
        action: XDP_PASS,
        stat,
        egress: None,
    }
}

fn fwd(
    what: &'static str,
    port: &'static str,
    input: Vec<u8>,
    egress: &'static str,
    output: Vec<u8>,
) -> Case {
    Case {
        what,
        port,
        input,
        action: XDP_REDIRECT,
        output,
        stat: Stat::Forward,
        egress: Some(egress),
    }
}

#[allow(clippy::too_many_lines, reason = "one table")]
fn cases() -> Vec<Case> {
    let tagged_4094 = frame(G1, UP, &[q(0, 4094)], 0);
    vec![
        // ---- Parse errors. ----
        dropped(
            "14-byte header announcing an 802.1Q tag",
            "t0",
            cut(&tagged_4094, 14),
            Stat::DropTruncated,
        ),
        dropped(
            "16-byte frame: TCI present, ethertype after the tag missing",
            "t0",
            cut(&tagged_4094, 16),
            Stat::DropTruncated,
        ),
        dropped(
            "17-byte frame: tag cut inside the inner ethertype",
            "t0",
            cut(&tagged_4094, 17),
            Stat::DropTruncated,
        ),
        dropped(
            "QinQ with the inner tag cut short (20 bytes)",
            "t0",
            cut(&frame(G1, UP, &[q(0, 4094), q(0, 7)], 1), 20),
            Stat::DropTruncated,
        ),
        dropped(
            "truncated tag on an access port",
            "p0",
            cut(&frame(UP, G1, &[q(0, 4094)], 2), 16),
            Stat::DropTruncated,
        ),
        // ---- Source MAC. ----
        dropped(
            "multicast source MAC",
            "p0",
            frame(UP, MCAST, &[], 3),
            Stat::DropBadSrcMac,
        ),
        dropped(
            "broadcast source MAC",
            "t0",
            frame(G1, BROADCAST, &[q(0, 4094)], 4),
            Stat::DropBadSrcMac,
        ),
        dropped(
            "zero source MAC",
            "p0",
            frame(UP, [0; 6], &[], 5),
            Stat::DropBadSrcMac,
        ),
        // ---- Classification. ----
        dropped(
            "802.1Q tag on an access port",
            "p0",
            frame(UP, G1, &[q(0, 4094)], 6),
            Stat::DropTaggedOnAccess,
        ),
        dropped(
            "VLAN 100 on a trunk that does not carry it",
            "t0",
            frame(G1, UP, &[q(0, 100)], 7),
            Stat::DropVlanNotAllowed,
        ),
        dropped(
            "VLAN 100 on a trunk with a native VLAN",
            "t2",
            frame(G1, R2, &[q(0, 100)], 8),
            Stat::DropVlanNotAllowed,
        ),
        dropped(
            "untagged on a trunk without native VLAN",
            "t0",
            frame(G1, UP, &[], 9),
            Stat::DropUntaggedOnTrunk,
        ),
        dropped(
            "priority tag (VID 0) on a trunk without native VLAN",
            "t0",
            frame(G1, UP, &[q(3, 0)], 10),
            Stat::DropUntaggedOnTrunk,
        ),
        dropped(
            "VID 4095 on a trunk",
            "t0",
            frame(G1, UP, &[q(0, 4095)], 11),
            Stat::DropBadVid,
        ),
        dropped(
            "VID 4095 on an access port",
            "p0",
            frame(UP, G1, &[q(0, 4095)], 12),
            Stat::DropBadVid,
        ),
        dropped(
            "802.1ad outer tag on an 802.1Q bridge",
            "t0",
            frame(G1, UP, &[(ETH_P_8021AD, 4094)], 13),
            Stat::DropForeignTpid,
        ),
        dropped(
            "802.1ad tag on an access port",
            "p0",
            frame(UP, G1, &[(ETH_P_8021AD, 4094)], 14),
            Stat::DropForeignTpid,
        ),
        // ---- Lookup. ----
        dropped(
            "destination behind the ingress port (hairpin)",
            "t0",
            frame(UP, STRANGER, &[q(0, 4094)], 15),
            Stat::DropHairpin,
        ),
        pass(
            "access 4094 to a MAC known only in VLAN 4093",
            "p0",
            frame(G3, G1, &[], 16),
            Stat::PassUnknown,
        ),
        pass(
            "trunk VLAN 4093 to a MAC known only in VLAN 4094",
            "t0",
            frame(G1, UP, &[q(0, 4093)], 17),
            Stat::PassUnknown,
        ),
        pass(
            "unknown unicast on a trunk",
            "t0",
            frame(STRANGER, UP, &[q(0, 4094)], 18),
            Stat::PassUnknown,
        ),
        pass(
            "broadcast on an access port",
            "p0",
            frame(BROADCAST, G1, &[], 19),
            Stat::PassFlood,
        ),
        pass(
            "multicast on a trunk",
            "t0",
            frame(MCAST, UP, &[q(0, 4094)], 20),
            Stat::PassFlood,
        ),
        pass(
            "frame on an interface that is not a port",
            "t1",
            frame(G1, UP, &[q(0, 4094)], 21),
            Stat::PassNotPort,
        ),
        // ---- Forwarding: push. ----
        fwd(
            "access 4094 → trunk: 802.1Q tag 4094 inserted after the MACs",
            "p0",
            frame(UP, G1, &[], 30),
            "t0",
            frame(UP, G1, &[q(0, 4094)], 30),
        ),
        fwd(
            "access 4093 → trunk: tag 4093 inserted",
            "p1",
            frame(UP, G3, &[], 31),
            "t0",
            frame(UP, G3, &[q(0, 4093)], 31),
        ),
        fwd(
            "header-only 14-byte frame, access → trunk: becomes an 18-byte tagged header",
            "p0",
            build_eth(UP, G1, &[], ETH_P_TEST, &[]),
            "t0",
            build_eth(UP, G1, &[q(0, 4094)], ETH_P_TEST, &[]),
        ),
        fwd(
            "native VLAN of t2 → t0: tag 4093 inserted",
            "t2",
            frame(UP, N2, &[], 32),
            "t0",
            frame(UP, N2, &[q(0, 4093)], 32),
        ),
        // ---- Forwarding: pop. ----
        fwd(
            "trunk (4094, PCP 5) → access: tag removed",
            "t0",
            frame(G1, UP, &[q(5, 4094)], 33),
            "p0",
            frame(G1, UP, &[], 33),
        ),
        fwd(
            "trunk (4093) → access 4093: tag removed",
            "t0",
            frame(G3, UP, &[q(0, 4093)], 34),
            "p1",
            frame(G3, UP, &[], 34),
        ),
        fwd(
            "QinQ: outer 4094 popped, inner 0x8100/7 kept",
            "t0",
            frame(G1, UP, &[q(5, 4094), q(0, 7)], 35),
            "p0",
            frame(G1, UP, &[q(0, 7)], 35),
        ),
        fwd(
            "t0 tagged 4093 → native 4093 of t2: tag removed",
            "t0",
            frame(N2, UP, &[q(1, 4093)], 36),
            "t2",
            frame(N2, UP, &[], 36),
        ),
        fwd(
            "t2 tagged with its native VID → access 4093: tag removed",
            "t2",
            frame(G3, N2, &[q(4, 4093)], 37),
            "p1",
            frame(G3, N2, &[], 37),
        ),
        fwd(
            "priority tag on t2 (native 4093) → access 4093: tag removed",
            "t2",
            frame(G3, N2, &[q(2, 0)], 38),
            "p1",
            frame(G3, N2, &[], 38),
        ),
        // ---- Forwarding: keep. ----
        fwd(
            "trunk → trunk, VLAN 4094: tag kept as is (PCP 5)",
            "t0",
            frame(R2, UP, &[q(5, 4094)], 39),
            "t2",
            frame(R2, UP, &[q(5, 4094)], 39),
        ),
        fwd(
            "trunk t2 → trunk t0, VLAN 4094: tag kept",
            "t2",
            frame(UP, R2, &[q(0, 4094)], 40),
            "t0",
            frame(UP, R2, &[q(0, 4094)], 40),
        ),
        fwd(
            "native of t2 → access 4093: untagged both ways",
            "t2",
            frame(G3, N2, &[], 41),
            "p1",
            frame(G3, N2, &[], 41),
        ),
        fwd(
            "access 4093 → native of t2: stays untagged",
            "p1",
            frame(N2, G3, &[], 42),
            "t2",
            frame(N2, G3, &[], 42),
        ),
        // ---- Forwarding: rewrite. ----
        fwd(
            "priority tag (VID 0, PCP 6) on access 4094 → trunk: VID 4094, PCP 6 kept",
            "p0",
            frame(UP, G1, &[q(6, 0)], 43),
            "t0",
            frame(UP, G1, &[q(6, 4094)], 43),
        ),
        fwd(
            "priority tag with DEI (PCP 1) on access 4093 → trunk: VID 4093, PCP and DEI kept",
            "p1",
            frame(UP, G3, &[(ETH_P_8021Q, tci(1, true, 0))], 44),
            "t0",
            frame(UP, G3, &[(ETH_P_8021Q, tci(1, true, 4093))], 44),
        ),
    ]
}

/// Run one case and check action, bytes and counters.
fn check(lab: &mut Lab, c: &Case) {
    let what = c.what;
    let (r, d) = lab.run(c.port, &c.input, 1);
    let r = r.unwrap_or_else(|e| panic!("{what}: BPF_PROG_TEST_RUN failed: {e:#}"));
    assert_eq!(
        r.action,
        c.action,
        "{what}: XDP action (1 drop, 2 pass, 4 redirect)\ninput  {}",
        hex(&c.input)
    );
    assert_eq!(
        hex(&r.output),
        hex(&c.output),
        "{what}: output bytes (left: got, right: expected)\ninput  {}",
        hex(&c.input)
    );
    let ingress = if c.stat == Stat::PassNotPort {
        NOT_A_PORT
    } else {
        c.port
    };
    let len = c.input.len() as u64;
    let mut rows = vec![
        (ingress, Stat::RxPackets, 1),
        (ingress, Stat::RxBytes, len),
        (ingress, c.stat, 1),
    ];
    if let Some(out) = c.egress {
        rows.push((out, Stat::TxPackets, 1));
        rows.push((out, Stat::TxBytes, c.output.len() as u64));
    }
    assert_eq!(d, expect(&rows), "{what}: counter deltas");
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn datapath_loads_and_passes_the_verifier() {
    if !require_root() {
        return;
    }
    let ns = Netns::new("xtr-load").expect("creating the test namespace");
    ns.run_in(|| {
        // `load` runs the verifier on xennet_xdp; an error here carries its log.
        let mut dp = Datapath::load(&unused_pin_dir()).expect("Datapath::load (verifier)");
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
        let nonzero: BTreeMap<_, _> = c[0].counters.iter().filter(|(_, v)| **v != 0).collect();
        assert_eq!(
            nonzero,
            BTreeMap::from([
                (&Stat::RxPackets.name(), &1),
                (&Stat::RxBytes.name(), &(input.len() as u64)),
                (&Stat::PassNotPort.name(), &1),
            ]),
        );
    })
    .unwrap_or_else(|e| panic!("{e:#}"));
}

#[test]
fn table_of_frames_through_the_kernel() {
    if !require_root() {
        return;
    }
    with_lab("xtr-table", |lab| {
        let cases = cases();
        // Run every case even after a failure, then report all failures at once. The frames
        // carry different marker ids (or lengths), so a mix-up between cases would show.
        let failed: Vec<&str> = cases
            .iter()
            .filter(|c| {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(lab, c))).is_err()
            })
            .map(|c| c.what)
            .collect();
        assert!(
            failed.is_empty(),
            "{} of {} cases failed (details above):\n  {}",
            failed.len(),
            cases.len(),
            failed.join("\n  ")
        );
        // The table covers every outcome the kernel can produce from configuration alone;
        // drop_runt (kernel refuses < 14 bytes), drop_egress_vlan / drop_stale_fdb (the
        // config validator rules them out), drop_tag_op / drop_redirect (helpers do not fail
        // here) and pass_host (no host entries in the config format) are host-tested only.
        let covered: std::collections::BTreeSet<Stat> = cases.iter().map(|c| c.stat).collect();
        let not_here = [
            Stat::DropRunt,
            Stat::DropEgressVlan,
            Stat::DropStaleFdb,
            Stat::DropTagOp,
            Stat::DropRedirect,
            Stat::PassHost,
        ];
        for s in Stat::ALL.iter().skip(Stat::Forward as usize) {
            assert!(
                covered.contains(s) || not_here.contains(s),
                "outcome {} has no case in the table",
                s.name()
            );
        }
    });
}

#[test]
fn runt_frames_are_refused_by_the_kernel() {
    if !require_root() {
        return;
    }
    with_lab("xtr-runt", |lab| {
        // The kernel rejects data_size_in < ETH_HLEN with EINVAL before running the program,
        // so the core's runt rule (drop_runt) cannot be reached here: it is covered by the
        // host tests of xennet-common's fwd module only.
        for n in [0usize, 1, 13] {
            let input = cut(&frame(UP, G1, &[], 1), n);
            let (r, d) = lab.run("p0", &input, 1);
            match r {
                Err(ProgramError::SyscallError(e)) => assert_eq!(
                    e.io_error.raw_os_error(),
                    Some(libc::EINVAL),
                    "{n}-byte frame: expected EINVAL, got {e}"
                ),
                other => panic!("{n}-byte frame: expected the kernel to refuse it, got {other:?}"),
            }
            assert_eq!(
                d,
                Delta::new(),
                "{n}-byte frame: the program must not have run"
            );
        }
    });
}

#[test]
fn header_only_frames_spelled_out_byte_by_byte() {
    if !require_root() {
        return;
    }
    // The smallest frames the kernel accepts, with the expected bytes written out by hand
    // (independent of the frame builder the table uses).
    #[rustfmt::skip]
    let untagged: Vec<u8> = vec![
        0x02, 0x00, 0x00, 0x00, 0x00, 0xfe,     // dst: the router behind t0
        0x00, 0x16, 0x3e, 0x00, 0x00, 0x01,     // src: guest on p0 (access 4094)
        0x88, 0xb5,                             // ethertype
    ];
    #[rustfmt::skip]
    let tagged: Vec<u8> = vec![
        0x02, 0x00, 0x00, 0x00, 0x00, 0xfe,
        0x00, 0x16, 0x3e, 0x00, 0x00, 0x01,
        0x81, 0x00, 0x0f, 0xfe,                 // 802.1Q, PCP 0, VID 4094
        0x88, 0xb5,
    ];
    #[rustfmt::skip]
    let from_trunk: Vec<u8> = vec![
        0x00, 0x16, 0x3e, 0x00, 0x00, 0x01,     // dst: guest on p0
        0x02, 0x00, 0x00, 0x00, 0x00, 0xfe,     // src: the router
        0x81, 0x00, 0xaf, 0xfe,                 // 802.1Q, PCP 5, VID 4094
        0x08, 0x06,                             // ARP
    ];
    #[rustfmt::skip]
    let popped: Vec<u8> = vec![
        0x00, 0x16, 0x3e, 0x00, 0x00, 0x01,
        0x02, 0x00, 0x00, 0x00, 0x00, 0xfe,
        0x08, 0x06,
    ];
    let mut broadcast = untagged.clone();
    broadcast[..6].copy_from_slice(&[0xff; 6]);
    with_lab("xtr-hdr", |lab| {
        check(
            lab,
            &fwd(
                "14-byte header-only frame, access 4094 → trunk: 4-byte tag after the MACs",
                "p0",
                untagged,
                "t0",
                tagged,
            ),
        );
        check(
            lab,
            &fwd(
                "18-byte header-only tagged frame, trunk → access: tag removed",
                "t0",
                from_trunk,
                "p0",
                popped,
            ),
        );
        check(
            lab,
            &pass(
                "14-byte header-only broadcast",
                "p0",
                broadcast,
                Stat::PassFlood,
            ),
        );
    });
}

#[test]
fn repeat_counts_every_run() {
    const N: u32 = 1000;
    if !require_root() {
        return;
    }
    with_lab("xtr-repeat", |lab| {
        // A frame the program leaves as it is (trunk → trunk, tag kept): every one of the N runs
        // sees the same frame and forwards it.
        let input = frame(R2, UP, &[q(5, 4094)], 1);
        let len = input.len() as u64;
        let (r, d) = lab.run("t0", &input, N);
        let r = r.expect("BPF_PROG_TEST_RUN with repeat");
        assert_eq!(r.action, XDP_REDIRECT);
        assert_eq!(hex(&r.output), hex(&input));
        let n = u64::from(N);
        assert_eq!(
            d,
            expect(&[
                ("t0", Stat::RxPackets, n),
                ("t0", Stat::RxBytes, n * len),
                ("t0", Stat::Forward, n),
                ("t2", Stat::TxPackets, n),
                ("t2", Stat::TxBytes, n * len),
            ]),
            "trunk → trunk, repeat {N}"
        );

        // The access → trunk frame: the kernel does not restore the buffer between runs, so
        // run 1 pushes the tag and runs 2..N see a frame tagged 4094 on an access port. Every
        // run is still counted (rx_packets moves by exactly N).
        let input = frame(UP, G1, &[], 2);
        let len = input.len() as u64;
        let tagged = frame(UP, G1, &[q(0, 4094)], 2);
        let (r, d) = lab.run("p0", &input, N);
        let r = r.expect("BPF_PROG_TEST_RUN with repeat");
        assert_eq!(r.action, XDP_DROP, "last run saw its own tagged output");
        assert_eq!(hex(&r.output), hex(&tagged), "tag pushed exactly once");
        assert_eq!(
            d,
            expect(&[
                ("p0", Stat::RxPackets, n),
                ("p0", Stat::RxBytes, len + (n - 1) * (len + 4)),
                ("p0", Stat::Forward, 1),
                ("p0", Stat::DropTaggedOnAccess, n - 1),
                ("t0", Stat::TxPackets, 1),
                ("t0", Stat::TxBytes, len + 4),
            ]),
            "access → trunk, repeat {N}"
        );
    });
}
