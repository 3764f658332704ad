//! `BPF_PROG_TEST_RUN` of the XDP and TC programs in a namespace built from a fixture lab
//! (`xennet_common::fwd::fixtures`): the lab, the two runners, and the check of one fixture
//! row per program.
//!
//! What `BPF_PROG_TEST_RUN` does and does not do (observed on this kernel, relied upon by the
//! checks):
//! * frames shorter than 14 bytes are refused with `EINVAL` before either program runs;
//! * `XDP_REDIRECT` is only a return value: without `BPF_F_TEST_XDP_LIVE_FRAMES` nothing is
//!   transmitted, a flood's devmap broadcast never runs (nor `xennet_flood_out`), and the
//!   output buffer holds the frame as the program left it;
//! * TC: `bpf_redirect` too is only a return value (`TC_ACT_REDIRECT`), but
//!   `bpf_clone_redirect` really transmits, so a TC flood sends and counts its copies (the
//!   lab's veth peers are not ports: the copies go nowhere further, and [`Lab::check`] reads
//!   each one, tag included, on the peer of its port). The kernel picks the
//!   device from `__sk_buff.ifindex` (> 1), sees every tag in the bytes (`vlan_tci` and
//!   `vlan_present` cannot be set), and reports the skb's bytes, not its tag metadata;
//! * with `repeat` > 1 the program runs again on the *same* buffer without restoring it.

use std::{
    collections::{BTreeMap, BTreeSet},
    os::fd::{AsFd as _, AsRawFd as _, BorrowedFd},
    time::Duration,
};

use aya::{
    maps::{Array, HashMap, Map, MapData},
    programs::{
        ProgramError, ProgramFd, SchedClassifier, TestRun as _, TestRunOptions, Xdp,
        tc::TcAttachType,
    },
};
use xennet_agent::{
    config::Config,
    datapath::{Attached, Datapath},
};
use xennet_common::{
    fwd::fixtures::{
        Delta, Fate, Program, Row, hex, host,
        lab::{GONE, GONE_IFINDEX, Lab as Fixture},
    },
    maps::{
        FDB_STATIC, FdbKey, FdbVal, MAP_FDB, MAP_LEARNED, MAP_PORTS, MAP_SLOTS, PROG_TC, PortConf,
    },
};

use crate::{Netns, RawSocket, topo::BpfFs, veth};

/// XDP actions (`enum xdp_action`).
pub const XDP_DROP: u32 = 1;
/// See [`XDP_DROP`].
pub const XDP_PASS: u32 = 2;
/// See [`XDP_DROP`].
pub const XDP_REDIRECT: u32 = 4;
/// TC actions.
pub const TC_ACT_OK: u32 = 0;
/// See [`TC_ACT_OK`].
pub const TC_ACT_SHOT: u32 = 2;
/// See [`TC_ACT_OK`].
pub const TC_ACT_REDIRECT: u32 = 7;

/// The return value `program` gives for `fate`.
///
/// # Panics
/// For fates that have no return value (refused, not run) or that TC cannot have.
#[must_use]
pub fn action(program: Program, fate: Fate) -> u32 {
    match (program, fate) {
        (Program::Xdp, Fate::Forward | Fate::Flood) => XDP_REDIRECT,
        (Program::Xdp, Fate::Pass | Fate::Deferred) => XDP_PASS,
        (Program::Xdp, Fate::Drop) => XDP_DROP,
        (Program::Tc, Fate::Forward) => TC_ACT_REDIRECT,
        // A TC flood sends clones and consumes the original.
        (Program::Tc, Fate::Flood | Fate::Drop) => TC_ACT_SHOT,
        (Program::Tc, Fate::Pass) => TC_ACT_OK,
        _ => panic!("{program:?} has no return value for {fate:?}"),
    }
}

/// What one run returned: the action and the frame as the program left it.
#[derive(Debug)]
pub struct Run {
    /// The program's return value.
    pub action: u32,
    /// The output buffer.
    pub output: Vec<u8>,
    /// The kernel's mean run time per repeat, in ns (`BPF_PROG_TEST_RUN`'s `duration`: the
    /// program alone, time away on a reschedule excluded).
    pub duration_ns: u32,
}

/// Run the XDP program `repeat` times on `input` arriving on `ingress`.
pub fn run_xdp(prog: &Xdp, ingress: u32, input: &[u8], repeat: u32) -> std::io::Result<Run> {
    let data_end = u32::try_from(input.len()).map_err(std::io::Error::other)?;
    // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex
    let ctx: Vec<u8> = [0, data_end, 0, ingress, 0, 0]
        .iter()
        .flat_map(|v: &u32| v.to_ne_bytes())
        .collect();
    // Room for a pushed tag and more: a short buffer would make the kernel fail with ENOSPC.
    let mut out = vec![0u8; input.len() + 64];
    let r = prog
        .test_run(TestRunOptions {
            data_in: Some(input),
            data_out: Some(&mut out),
            ctx_in: Some(&ctx),
            repeat,
            ..Default::default()
        })
        .map_err(|e| match e {
            ProgramError::SyscallError(s) => s.io_error,
            other => std::io::Error::other(other),
        })?;
    out.truncate(r.data_size_out as usize);
    Ok(Run {
        action: r.return_value,
        output: out,
        duration_ns: u32::try_from(r.duration.as_nanos()).unwrap_or(u32::MAX),
    })
}

/// The `test` member of `union bpf_attr` (`BPF_PROG_TEST_RUN`).
#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    pad: u32,
}

/// `BPF_PROG_TEST_RUN`.
const BPF_PROG_TEST_RUN: libc::c_long = 10;

/// Run the `sched_cls` program `prog` `repeat` times on `input` arriving on `ingress`, with the
/// bpf syscall directly (aya's `TestRun` needs the `SchedClassifier`, which the datapath keeps
/// to itself). The context is a `struct __sk_buff` with only `ifindex` set.
pub fn run_tc(
    prog: BorrowedFd<'_>,
    ingress: u32,
    input: &[u8],
    repeat: u32,
) -> std::io::Result<Run> {
    // struct __sk_buff up to ifindex: len, pkt_type, mark, queue_mapping, protocol,
    // vlan_present, vlan_tci, vlan_proto, priority, ingress_ifindex, ifindex.
    let mut ctx = [0u32; 11];
    ctx[10] = ingress;
    let mut out = vec![0u8; input.len() + 64];
    let size = |n: usize| u32::try_from(n).map_err(std::io::Error::other);
    let mut attr = TestRunAttr {
        prog_fd: u32::try_from(prog.as_raw_fd()).map_err(std::io::Error::other)?,
        data_size_in: size(input.len())?,
        data_size_out: size(out.len())?,
        data_in: input.as_ptr() as u64,
        data_out: out.as_mut_ptr() as u64,
        repeat,
        ctx_size_in: size(std::mem::size_of_val(&ctx))?,
        ctx_in: ctx.as_ptr() as u64,
        ..TestRunAttr::default()
    };
    // SAFETY: the attr points at live buffers of the sizes given, for the duration of the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            &raw mut attr,
            std::mem::size_of::<TestRunAttr>(),
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    out.truncate(attr.data_size_out as usize);
    Ok(Run {
        action: attr.retval,
        output: out,
        duration_ns: attr.duration,
    })
}

/// The loaded and applied datapath in the lab namespace. Only usable on the thread that
/// [`with_lab`] runs the test body on (it has joined the namespace).
pub struct Lab {
    /// The datapath.
    pub dp: Datapath,
    /// The fixture lab it was built from.
    pub fixture: Fixture,
    ifindex: BTreeMap<&'static str, u32>,
    /// `XN_LEARNED`, opened from its pin: read with map lookups (the kernel's own view),
    /// independently of the agent's memory mapping of it.
    learned_map: Array<MapData, u32>,
    /// The TC program, as attached to the first port.
    tc: ProgramFd,
    /// Where the maps are pinned.
    pin_dir: std::path::PathBuf,
    /// A raw socket on the veth peer of each port (what the port transmits arrives there).
    peers: BTreeMap<&'static str, RawSocket>,
}

impl Lab {
    /// Set port `name`'s `PORT_F_*` flags to `flags(old)` in `XN_PORTS` and `XN_SLOTS`, past
    /// the agent (a measurement toggles what the agent would only set with a limit).
    ///
    /// # Panics
    /// When the pinned maps cannot be opened or written.
    pub fn set_port_flags(&self, name: &str, flags: impl Fn(u8) -> u8) {
        let open = |map: &str| {
            MapData::from_pin(self.pin_dir.join(map))
                .map_err(anyhow::Error::from)
                .and_then(|m| Ok(Map::from_map_data(m)?))
                .unwrap_or_else(|e| panic!("opening the pinned {map}: {e:#}"))
        };
        let idx = self.ifindex(name);
        let mut ports: HashMap<MapData, u32, PortConf> =
            HashMap::try_from(open(MAP_PORTS)).expect("XN_PORTS type");
        let mut conf = ports.get(&idx, 0).expect("the port's XN_PORTS entry");
        conf.flags = flags(conf.flags);
        ports.insert(idx, conf, 0).expect("writing XN_PORTS");
        let mut slots: Array<MapData, PortConf> =
            Array::try_from(open(MAP_SLOTS)).expect("XN_SLOTS type");
        let mut at = slots.get(&conf.slot, 0).expect("the port's XN_SLOTS entry");
        at.flags = flags(at.flags);
        slots.set(conf.slot, at, 0).expect("writing XN_SLOTS");
    }

    /// Interface index of `name` ([`GONE_IFINDEX`] for [`GONE`]).
    ///
    /// # Panics
    /// When the lab has no such interface.
    #[must_use]
    pub fn ifindex(&self, name: &str) -> u32 {
        if name == GONE {
            return GONE_IFINDEX;
        }
        *self
            .ifindex
            .get(name)
            .unwrap_or_else(|| panic!("no interface {name} in the lab"))
    }

    /// The XDP program.
    ///
    /// # Panics
    /// When the datapath has none.
    pub fn xdp(&mut self) -> &mut Xdp {
        self.dp.xdp_program().expect("the XDP program")
    }

    /// The TC program's fd.
    #[must_use]
    pub fn tc(&self) -> BorrowedFd<'_> {
        self.tc.as_fd()
    }

    /// Every port's counters, keyed (port, counter) as the host runner's are, for
    /// [`host::delta`].
    ///
    /// # Panics
    /// When they cannot be read.
    #[must_use]
    pub fn counters(&self) -> Delta {
        self.dp
            .counters()
            .expect("reading the counters")
            .into_iter()
            .flat_map(|p| {
                let port = p.interface;
                p.counters.into_iter().filter_map(move |(name, v)| {
                    let name = xennet_common::stats::Stat::ALL
                        .iter()
                        .find(|s| s.name() == name)?
                        .name();
                    Some(((port.clone(), name), v))
                })
            })
            .collect()
    }

    /// Run `input` through `program` on `port` (`repeat` times), returning the result and
    /// the counters that moved.
    pub fn run(
        &mut self,
        program: Program,
        port: &str,
        input: &[u8],
        repeat: u32,
    ) -> (std::io::Result<Run>, Delta) {
        let idx = self.ifindex(port);
        let before = self.counters();
        let r = match program {
            Program::Xdp => run_xdp(self.xdp(), idx, input, repeat),
            Program::Tc => run_tc(self.tc(), idx, input, repeat),
            Program::Host => Err(std::io::Error::other("the host core does not run here")),
        };
        let after = self.counters();
        (r, host::delta(&before, &after))
    }

    /// Run one fixture row through `program` and check the action, the output bytes and the
    /// counter deltas that the row expects of that program.
    ///
    /// # Panics
    /// When the program disagrees with the row.
    pub fn check(&mut self, program: Program, row: &Row) {
        let what = row.what;
        let fate = row.fate_for(program);
        if fate == Fate::NotRun {
            return;
        }
        for sock in self.peers.values() {
            let _ = sock.collect(Duration::ZERO);
        }
        let (r, d) = self.run(program, row.port, &row.input, 1);
        let want = row.counters_for(program, &self.fixture);
        if fate == Fate::Refused {
            let e = r.err().map(|e| e.raw_os_error());
            assert_eq!(e, Some(Some(libc::EINVAL)), "{what}: expected EINVAL");
            assert_eq!(d, want, "{what}: the program must not have run");
            return;
        }
        let r = r.unwrap_or_else(|e| panic!("{what}: BPF_PROG_TEST_RUN failed: {e}"));
        if program == Program::Tc && fate == Fate::Flood {
            self.check_copies(row);
        }
        assert_eq!(
            r.action,
            action(program, fate),
            "{what}: {program:?} action (XDP: 1 drop, 2 pass, 4 redirect; TC: 0 ok, 2 shot, \
             7 redirect)\ninput  {}",
            hex(&row.input)
        );
        assert_eq!(
            hex(&r.output),
            hex(&row.output_for(program)),
            "{what}: {program:?} output bytes (left: got, right: expected)\ninput  {}",
            hex(&row.input)
        );
        assert_eq!(d, want, "{what}: {program:?} counter deltas");
    }

    /// The copies a TC flood of `row` sent: on the wire (tag metadata included), one out of
    /// every member of the VLAN, tagged unless the VLAN is the member's untagged one, and
    /// nothing out of any other port.
    fn check_copies(&self, row: &Row) {
        let what = row.what;
        let members = row.flood_members(&self.fixture);
        let mut order: Vec<(&str, &RawSocket)> = self.peers.iter().map(|(p, s)| (*p, s)).collect();
        // Members first: once their copies are in, any stray copy would be too.
        order.sort_by_key(|(p, _)| !members.iter().any(|(m, _)| m == p));
        for (port, sock) in order {
            let want = members.iter().find(|(m, _)| *m == port).map(|(_, tagged)| {
                if *tagged {
                    row.output.clone()
                } else {
                    xennet_common::fwd::fixtures::without_outer(&row.output)
                }
            });
            let got = if want.is_some() {
                sock.recv_timeout(Duration::from_secs(1))
            } else {
                sock.recv_timeout(Duration::ZERO)
            }
            .unwrap_or_else(|e| panic!("{what}: reading the copy out of {port}: {e:#}"));
            assert_eq!(
                got.as_deref().map(hex),
                want.as_deref().map(hex),
                "{what}: TC flood copy out of {port} (left: got, right: expected)"
            );
        }
    }

    /// Stats slot of port `name`.
    ///
    /// # Panics
    /// When `name` is not a port.
    #[must_use]
    pub fn slot(&self, name: &str) -> u32 {
        self.dp
            .ports()
            .into_iter()
            .find(|p| p.interface == name)
            .unwrap_or_else(|| panic!("{name} is not a port of the datapath"))
            .slot
    }

    /// MACs learned on each of `ports`, as the datapath counts them (`XN_LEARNED`, read with
    /// `BPF_MAP_LOOKUP_ELEM`).
    ///
    /// # Panics
    /// When the map cannot be read.
    #[must_use]
    pub fn learned(&self, ports: &[&'static str]) -> BTreeMap<&'static str, u32> {
        ports
            .iter()
            .map(|p| {
                let n = self
                    .learned_map
                    .get(&self.slot(p), 0)
                    .unwrap_or_else(|e| panic!("reading {MAP_LEARNED}[{p}]: {e}"));
                (*p, n)
            })
            .collect()
    }

    /// The same counts as the agent reports them (`Datapath::learned_on`).
    ///
    /// # Panics
    /// When a name is not a port.
    #[must_use]
    pub fn agent_learned(&self, ports: &[&'static str]) -> BTreeMap<&'static str, u32> {
        ports
            .iter()
            .map(|p| {
                let n = self
                    .dp
                    .learned_on(p)
                    .unwrap_or_else(|| panic!("{p} is not a port of the datapath"));
                (*p, n)
            })
            .collect()
    }

    /// Learned (non-static) FDB entries per port, for each of `ports`.
    ///
    /// # Panics
    /// When the FDB cannot be read.
    #[must_use]
    pub fn learned_in_fdb(&self, ports: &[&'static str]) -> BTreeMap<&'static str, u32> {
        let fdb = self.fdb();
        ports
            .iter()
            .map(|p| {
                let n = fdb.iter().filter(|e| !e.3 && e.2 == *p).count();
                (*p, u32::try_from(n).expect("count fits in u32"))
            })
            .collect()
    }

    /// The FDB as `(MAC, VLAN, port, static)`, sorted.
    ///
    /// # Panics
    /// When it cannot be read.
    #[must_use]
    pub fn fdb(&self) -> BTreeSet<(String, u16, String, bool)> {
        self.dp
            .fdb_entries(None)
            .expect("reading the FDB")
            .into_iter()
            .map(|e| (e.mac, e.vlan, e.port, e.is_static))
            .collect()
    }
}

/// Build the namespace and the veths of `fixture`, load the datapath (maps pinned on a
/// private bpffs), apply the fixture's configuration (every port TC-only with `all_tc`),
/// write its raw FDB entries, and run `f` inside the namespace. A panic in `f` fails the test
/// with its message.
///
/// # Panics
/// When any step of the setup fails.
pub fn with_lab<R: Send>(
    tag: &str,
    fixture: &Fixture,
    all_tc: bool,
    f: impl FnOnce(&mut Lab) -> R + Send,
) -> R {
    let ns = Netns::new(tag).expect("creating the test namespace");
    for (a, b) in fixture.veths {
        veth(&ns, a, &ns, b).unwrap_or_else(|e| panic!("creating veth {a}/{b}: {e:#}"));
    }
    let text = fixture.config(all_tc);
    let cfg = Config::parse(&text, "fixture.toml")
        .unwrap_or_else(|e| panic!("parsing the fixture config: {e:#}\n{text}"));
    // Dropped after the datapath (which removes its pins), which lives inside `run_in`.
    let bpffs = BpfFs::new(tag).expect("mounting a private bpffs");
    let pin_dir = bpffs.pin_dir();
    let fixture = *fixture;
    let peers: BTreeMap<&'static str, RawSocket> = fixture
        .veths
        .iter()
        .map(|(port, peer)| {
            let s = RawSocket::open(&ns, peer)
                .unwrap_or_else(|e| panic!("raw socket on {peer}: {e:#}"));
            (*port, s)
        })
        .collect();
    ns.run_in(move || {
        let mut dp = Datapath::load(&pin_dir)
            .expect("loading the datapath (eBPF object embedded? verifier happy?)");
        dp.pin().expect("pinning the maps");
        let learned_map = MapData::from_pin(pin_dir.join(MAP_LEARNED))
            .map_err(anyhow::Error::from)
            .and_then(|m| Ok(Map::from_map_data(m)?))
            .and_then(|m| Ok(Array::try_from(m)?))
            .unwrap_or_else(|e| panic!("opening the pinned {MAP_LEARNED}: {e:#}"));
        let changes = dp.apply(&cfg).expect("applying the config (maps + attach)");
        let want: BTreeSet<String> = fixture.ports.iter().map(|p| p.name.to_string()).collect();
        let attached: BTreeSet<String> = dp.ports().into_iter().map(|p| p.interface).collect();
        assert_eq!(attached, want, "attached ports ({changes:?})");
        // Native XDP on every port unless the lab asks for TC: a TC-only port makes XDP defer
        // floods (or frames for it) to the TC program, which changes the verdicts.
        for p in dp.ports() {
            let tc = all_tc || fixture.port(&p.interface).is_some_and(|s| s.tc);
            let want = if tc { Attached::Tc } else { Attached::Xdp };
            assert_eq!(p.attached, want, "{}: attach mode", p.interface);
        }
        let ifindex: BTreeMap<&'static str, u32> = fixture
            .veths
            .iter()
            .flat_map(|(a, b)| [*a, *b])
            .map(|n| {
                let i = xennet_agent::datapath::ifindex(n).expect("ifindex in the namespace");
                (n, i)
            })
            .collect();
        write_raw_entries(&fixture, &ifindex, &pin_dir);
        let first = fixture.ports[0].name;
        let tc = tc_program(first);
        let mut lab = Lab {
            dp,
            fixture,
            ifindex,
            learned_map,
            tc,
            pin_dir,
            peers,
        };
        f(&mut lab)
    })
    .unwrap_or_else(|e| panic!("{e:#}"))
}

/// The TC program attached (tcx) to the ingress of `port`.
fn tc_program(port: &str) -> ProgramFd {
    let (_, progs) = SchedClassifier::query_tcx(port, TcAttachType::Ingress)
        .unwrap_or_else(|e| panic!("querying the tcx programs of {port}: {e}"));
    progs
        .into_iter()
        .find(|p| p.name_as_str() == Some(PROG_TC))
        .unwrap_or_else(|| panic!("no {PROG_TC} attached to {port}"))
        .fd()
        .unwrap_or_else(|e| panic!("fd of {PROG_TC}: {e}"))
}

/// Write the fixture's raw FDB entries (static) into the pinned FDB. Bridges are numbered as
/// the agent numbers a fresh datapath's: 1, 2, … in order of appearance.
fn write_raw_entries(
    fixture: &Fixture,
    ifindex: &BTreeMap<&'static str, u32>,
    pin_dir: &std::path::Path,
) {
    if fixture.raw.is_empty() {
        return;
    }
    let mut fdb: HashMap<MapData, FdbKey, FdbVal> = MapData::from_pin(pin_dir.join(MAP_FDB))
        .map_err(anyhow::Error::from)
        .and_then(|m| Ok(Map::from_map_data(m)?))
        .and_then(|m| Ok(HashMap::try_from(m)?))
        .unwrap_or_else(|e| panic!("opening the pinned {MAP_FDB}: {e:#}"));
    let bridges = fixture.bridges();
    for e in fixture.raw {
        let bridge = bridges
            .iter()
            .position(|b| *b == e.bridge)
            .expect("bridge of the lab");
        let key = FdbKey {
            mac: e.mac,
            vlan: e.vlan,
            bridge: u32::try_from(bridge + 1).expect("bridge id"),
        };
        let target = if e.port == GONE {
            GONE_IFINDEX
        } else {
            ifindex[e.port]
        };
        let val = FdbVal {
            ifindex: target,
            flags: FDB_STATIC,
            slot: 0,
            last_seen_ns: 0,
        };
        fdb.insert(key, val, 0)
            .unwrap_or_else(|err| panic!("writing raw FDB entry {e:?}: {err}"));
    }
}
