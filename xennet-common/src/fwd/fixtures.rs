//! One table of frames and expected outcomes, run through the host core, the XDP program and
//! the TC program (feature `fixtures`), so that the three can never disagree unnoticed.
//!
//! A [`Row`] names its ingress port, its input bytes, the expected [`Fate`], the outcome
//! counter, the bytes on the wire after the ingress program and the egress port. Everything a
//! runner checks is derived from those columns by [`Row::fate_for`], [`Row::output_for`] and
//! [`Row::counters_for`], one translation per [`Program`]; where a program truly differs the
//! row says so with [`Row::on`] and its description tells why.
//!
//! * [`lab`]: the ports, static MACs and raw FDB entries every runner sets up, and the frame
//!   builders the rows use;
//! * [`table`]: the frames whose outcome does not depend on learned state;
//! * [`story`]: learning, in order;
//! * [`host`]: the in-memory [`super::Frame`] and [`super::Tables`] that run the core on the
//!   host, and the host runner.

pub mod extra;
pub mod host;
pub mod hostile;
pub mod lab;
pub mod moves;
pub mod portsec;
pub mod rate;
pub mod story;
pub mod table;

use std::{collections::BTreeMap, string::String, vec::Vec};

use crate::{ETH_P_8021AD, ETH_P_8021Q, stats::Stat};

use lab::{Lab, Mode};

/// Where a row runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Program {
    /// The forwarding core on the host (`fwd::decide` and `fwd::account`).
    Host,
    /// `xennet_xdp` through `BPF_PROG_TEST_RUN`.
    Xdp,
    /// `xennet_tc` through `BPF_PROG_TEST_RUN`.
    Tc,
}

/// The expected fate of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Sent out of the row's egress port (XDP: `XDP_REDIRECT`; TC: `TC_ACT_REDIRECT`).
    Forward,
    /// Flooded (XDP: `XDP_REDIRECT` to the flood devmap; TC: copies sent with
    /// `bpf_clone_redirect`, the original `TC_ACT_SHOT`).
    Flood,
    /// To the host stack (XDP: `XDP_PASS`; TC: `TC_ACT_OK`).
    Pass,
    /// Dropped (XDP: `XDP_DROP`; TC: `TC_ACT_SHOT`).
    Drop,
    /// `BPF_PROG_TEST_RUN` refuses the frame (`EINVAL`) before the program runs.
    Refused,
    /// XDP hands the frame unchanged and uncounted to the TC program of the same device.
    Deferred,
    /// The program never sees this frame (the reason is in the row's description).
    NotRun,
}

/// One expected counter change: (port, counter, increase).
pub type CounterRow = (&'static str, Stat, u64);

/// Changed counters: (port, counter name) → increase.
pub type Delta = BTreeMap<(String, &'static str), u64>;

/// The name under which the agent reports stats slot 0 (frames on interfaces that are not
/// ports); the host runner uses it too.
pub const NOT_A_PORT: &str = "(not a port)";

/// One frame through the ingress program, and what must come of it.
#[derive(Clone, Debug)]
pub struct Row {
    /// What the row shows.
    pub what: &'static str,
    /// Ingress interface.
    pub port: &'static str,
    /// The frame.
    pub input: Vec<u8>,
    /// Expected fate (for every program unless [`Row::per_program`] says otherwise).
    pub fate: Fate,
    /// The outcome counter that must increment on the ingress port.
    pub stat: Stat,
    /// The frame on the wire after the ingress program (tag pushed, popped or rewritten; a
    /// flood's frame carries its VLAN tag). For drops and passes: the input, unchanged.
    pub output: Vec<u8>,
    /// For forwards: the port that sends the frame (and counts it as transmitted).
    pub egress: Option<&'static str>,
    /// The learning counter that must increment on the ingress port, if any.
    pub learn: Option<Stat>,
    /// The classified VLAN, checked by the host runner; when `None`, a flood's is read from
    /// its output tag and a forward's from its egress side.
    pub vlan: Option<u16>,
    /// Programs whose fate differs from [`Row::fate`], and how.
    pub per_program: Vec<(Program, Fate)>,
    /// Programs whose output buffer differs from [`Row::output_for`]'s rule, and how.
    pub shows: Vec<(Program, Vec<u8>)>,
    /// Programs whose counter deltas differ from [`Row::counters_for`]'s rule, and how.
    pub counts: Vec<(Program, Vec<CounterRow>)>,
    /// The frame takes over a MAC static (or guarded) on another port: `learn_static_move`
    /// increments on the ingress port (counted inside learning, not as [`Row::learn`]).
    pub moves: bool,
}

impl Row {
    fn new(what: &'static str, port: &'static str, input: Vec<u8>, fate: Fate, stat: Stat) -> Row {
        Row {
            what,
            port,
            output: input.clone(),
            input,
            fate,
            stat,
            egress: None,
            learn: None,
            vlan: None,
            per_program: Vec::new(),
            shows: Vec::new(),
            counts: Vec::new(),
            moves: false,
        }
    }

    /// The frame takes over a MAC static (or guarded) on another port ([`Row::moves`]).
    #[must_use]
    pub fn moves_mac(mut self) -> Self {
        self.moves = true;
        self
    }

    /// The same row, also counting the learning event `stat` on the ingress port.
    ///
    /// # Panics
    /// When `stat` is not a learning counter (a mistake in the table).
    #[must_use]
    pub fn learns(mut self, stat: Stat) -> Self {
        assert!(stat.is_learning(), "{stat:?} is not a learning counter");
        self.learn = Some(stat);
        self
    }

    /// The same row, with the classified VLAN checked on the host.
    #[must_use]
    pub fn in_vlan(mut self, vlan: u16) -> Self {
        self.vlan = Some(vlan);
        self
    }

    /// The same row, with fate `fate` in `program` (the description must say why).
    #[must_use]
    pub fn on(mut self, program: Program, fate: Fate) -> Self {
        self.per_program.push((program, fate));
        self
    }

    /// The same row, with `program` leaving `output` in its output buffer (the description
    /// must say why).
    #[must_use]
    pub fn shows(mut self, program: Program, output: Vec<u8>) -> Self {
        self.shows.push((program, output));
        self
    }

    /// The same row, with `program` moving exactly the counters `rows` (the description must
    /// say why).
    #[must_use]
    pub fn counts(mut self, program: Program, rows: Vec<CounterRow>) -> Self {
        self.counts.push((program, rows));
        self
    }

    /// The fate this row expects in `program`.
    #[must_use]
    pub fn fate_for(&self, program: Program) -> Fate {
        self.per_program
            .iter()
            .find(|(p, _)| *p == program)
            .map_or(self.fate, |(_, f)| *f)
    }

    /// The bytes `program` must leave in its output buffer.
    ///
    /// TC differs from the wire where a helper moved a tag into skb metadata, which a test run
    /// does not report: `bpf_skb_vlan_push` always puts the new tag there, and
    /// `bpf_skb_vlan_pop` moves a remaining inner tag there. So a TC forward that changed the
    /// tags shows the wire frame without its outer tag, and a TC flood (which strips the tag,
    /// then pushes and pops it again around each tagged copy) shows the frame untagged.
    #[must_use]
    pub fn output_for(&self, program: Program) -> Vec<u8> {
        if let Some((_, o)) = self.shows.iter().find(|(p, _)| *p == program) {
            return o.clone();
        }
        match (program, self.fate_for(program)) {
            (_, Fate::Deferred | Fate::Pass | Fate::Drop) => self.input.clone(),
            (Program::Tc, Fate::Forward) if self.output != self.input => {
                without_outer(&self.output)
            }
            (Program::Tc, Fate::Flood) => without_outer(&self.output),
            _ => self.output.clone(),
        }
    }

    /// The counters that must move, and by how much, when `program` runs this row once in
    /// `lab`.
    ///
    /// Every program counts the frame and its outcome on the ingress port, learning events
    /// included, and a forward as transmitted on its egress port. A flood's copies are counted
    /// only where they are made: by TC's clone loop (one `tx` per member that carries the
    /// VLAN, tagged or not), never in an XDP test run (the devmap broadcast does not run) nor
    /// on the host (the core only decides).
    #[must_use]
    pub fn counters_for(&self, program: Program, lab: &Lab) -> Delta {
        if let Some((_, c)) = self.counts.iter().find(|(p, _)| *p == program) {
            return delta_of(c);
        }
        let mut rows: Vec<(&str, Stat, u64)> = Vec::new();
        let ingress = if self.stat == Stat::PassNotPort {
            NOT_A_PORT
        } else {
            self.port
        };
        match self.fate_for(program) {
            Fate::Refused | Fate::NotRun => {}
            Fate::Deferred => {
                // XDP counts the learning it did before handing the frame to TC.
                if let Some(l) = self.learn {
                    rows.push((ingress, l, 1));
                }
                if self.moves {
                    rows.push((ingress, Stat::LearnStaticMove, 1));
                }
            }
            fate => {
                let len = self.input.len() as u64;
                rows.push((ingress, Stat::RxPackets, 1));
                rows.push((ingress, Stat::RxBytes, len));
                rows.push((ingress, self.stat, 1));
                if let Some(l) = self.learn {
                    rows.push((ingress, l, 1));
                }
                if self.moves {
                    rows.push((ingress, Stat::LearnStaticMove, 1));
                }
                if let (Fate::Forward, Some(out)) = (fate, self.egress) {
                    rows.push((out, Stat::TxPackets, 1));
                    rows.push((out, Stat::TxBytes, self.output.len() as u64));
                }
                if fate == Fate::Flood && program == Program::Tc {
                    for (member, tagged) in self.flood_members(lab) {
                        let len = without_outer(&self.output).len() as u64;
                        rows.push((member, Stat::TxPackets, 1));
                        rows.push((member, Stat::TxBytes, len + if tagged { 4 } else { 0 }));
                    }
                }
            }
        }
        delta_of(&rows)
    }

    /// The ports a flood of this row reaches, and whether tagged: every other port of the
    /// ingress port's bridge that carries the flood's VLAN (read from the output's tag).
    #[must_use]
    pub fn flood_members(&self, lab: &Lab) -> Vec<(&'static str, bool)> {
        let Some(vid) = outer_vid(&self.output) else {
            return Vec::new();
        };
        let Some(inp) = lab.port(self.port) else {
            return Vec::new();
        };
        lab.ports
            .iter()
            .filter(|p| p.name != self.port && p.bridge == inp.bridge)
            .filter_map(|p| match p.mode {
                Mode::Access(v) => (v == vid).then_some((p.name, false)),
                Mode::Trunk { vlans, native } => {
                    if native == Some(vid) {
                        Some((p.name, false))
                    } else {
                        vlans.contains(&vid).then_some((p.name, true))
                    }
                }
            })
            .collect()
    }
}

/// A counter delta from `(port, counter, increase)` rows (zero increases left out).
#[must_use]
pub fn delta_of(rows: &[(&str, Stat, u64)]) -> Delta {
    let mut d = Delta::new();
    for (port, stat, v) in rows {
        if *v != 0 {
            *d.entry(((*port).into(), stat.name())).or_default() += v;
        }
    }
    d
}

/// Whether `t` is a VLAN TPID.
const fn is_vlan(t: u16) -> bool {
    t == ETH_P_8021Q || t == ETH_P_8021AD
}

/// The VLAN id of the frame's outer in-band tag, if any.
#[must_use]
pub fn outer_vid(f: &[u8]) -> Option<u16> {
    let t = u16::from_be_bytes([*f.get(12)?, *f.get(13)?]);
    let tci = u16::from_be_bytes([*f.get(14)?, *f.get(15)?]);
    is_vlan(t).then_some(tci & crate::VLAN_VID_MASK)
}

/// The frame without its outer in-band tag (unchanged when it has none).
#[must_use]
pub fn without_outer(f: &[u8]) -> Vec<u8> {
    let mut v = f.to_vec();
    if v.len() >= 16 && is_vlan(u16::from_be_bytes([v[12], v[13]])) {
        v.drain(12..16);
    }
    v
}

/// Lowercase hex bytes separated by spaces (for failure messages).
#[must_use]
pub fn hex(b: &[u8]) -> String {
    use core::fmt::Write as _;
    let mut s = String::new();
    for (i, x) in b.iter().enumerate() {
        let _ = write!(s, "{}{x:02x}", if i == 0 { "" } else { " " });
    }
    s
}

/// Run `f` on every item, even after a failure, then fail with the list of failed items. The
/// frames carry different marker ids (or lengths), so a mix-up between rows would show.
///
/// # Panics
/// When any item's check panicked.
pub fn run_all<T>(what: &str, items: &[T], name: impl Fn(&T) -> &str, mut f: impl FnMut(&T)) {
    let failed: Vec<&str> = items
        .iter()
        .filter(|c| std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(c))).is_err())
        .map(name)
        .collect();
    assert!(
        failed.is_empty(),
        "{what}: {} of {} cases failed (details above):\n  {}",
        failed.len(),
        items.len(),
        failed.join("\n  ")
    );
}
