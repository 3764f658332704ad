//! Traffic that must survive a datapath change (an agent restart, an upgrade): two numbered
//! flows from guest 1 of a running seed dom0 — 1 kHz to guest 2, 10 kHz to guest 9 on a
//! run-time port (`port add vif9.0`) whose MAC the datapath learned — and the no-loss check.
//! Test support: a failing step panics with its context.

use std::time::Duration;

use crate::{
    Netns, RawSocket,
    flow::{Flow, FlowResult},
    frame::{Mac, format_mac, test_frame},
    set_gro, set_mac,
    topo::{Agent, Mode, SeedDom0},
    veth,
    wait::poll,
};

/// Guest 9's MAC (learned on `vif9.0`, never configured).
pub const G9: Mac = [0x00, 0x16, 0x3e, 0x00, 0x00, 0x09];

/// Guest 9 and the two running flows.
pub struct LiveFlows {
    /// Guest 9's namespace (behind `vif9.0`).
    pub g9: Netns,
    /// 1 kHz, guest 1 → guest 2.
    pub slow: Flow,
    /// 10 kHz, guest 1 → guest 9.
    pub fast: Flow,
}

impl LiveFlows {
    /// Plug guest 9 into `sim` (`vif9.0`, access 4094 of bridge `trunk`, TC unless `mode` is
    /// all-XDP) through `agent`'s `port add`, wait until its MAC is learned, and start both
    /// flows; they run 200 ms before this returns.
    ///
    /// # Panics
    /// When a step of the set-up fails or guest 9 is not learned within 2 s.
    #[must_use]
    pub fn start(tag: &str, sim: &SeedDom0, agent: &Agent, mode: Mode) -> LiveFlows {
        let g9 = Netns::new(&format!("{tag}-g9")).expect("guest 9");
        veth(&sim.dom0, "vif9.0", &g9, "eth0").expect("vif9.0");
        set_mac(&g9, "eth0", G9).expect("mac");
        // Receiving native-XDP redirects on a veth needs NAPI (GRO) on the receiving end.
        set_gro(&g9, "eth0", true).expect("gro");
        let mut args = vec![
            "port", "add", "vif9.0", "--bridge", "trunk", "--access", "4094",
        ];
        if mode != Mode::Xdp {
            args.extend(["--attach", "tc"]);
        }
        let out = agent.ctl(&args).expect("port add");
        assert!(out.status.success(), "port add: {out:?}");
        let g9_sock = RawSocket::open(&g9, "eth0").expect("socket");
        let g1 = sim.guest("vif1.0").expect("g1").mac;
        let g2 = sim.guest("vif2.0").expect("g2").mac;
        g9_sock.send(&test_frame(g1, G9, &[], 1)).expect("send");
        let (ok, _) = poll(
            Duration::from_secs(2),
            Duration::from_millis(20),
            || g9_learned(agent),
            |l| *l,
        );
        assert!(ok, "g9 learned on vif9.0");
        // Receivers with room for seconds of the flow: on a loaded machine a descheduled test
        // thread must not lose frames the datapath delivered.
        let big = |sock: RawSocket| {
            sock.set_rcvbuf(32 << 20).expect("SO_RCVBUFFORCE");
            sock
        };
        let slow = Flow::start(
            sim.guest_socket("vif1.0").expect("socket"),
            big(sim.guest_socket("vif2.0").expect("socket")),
            g2,
            g1,
            1000,
            1_000_000,
        );
        let fast = Flow::start(
            sim.guest_socket("vif1.0").expect("socket"),
            big(g9_sock),
            G9,
            g1,
            10_000,
            5_000_000,
        );
        std::thread::sleep(Duration::from_millis(200));
        LiveFlows { g9, slow, fast }
    }
}

/// Whether `agent`'s FDB holds guest 9's MAC as learned on `vif9.0` (VLAN 4094).
#[must_use]
pub fn g9_learned(agent: &Agent) -> bool {
    agent.fdb(Some("trunk")).ok().is_some_and(|rows| {
        rows.iter().any(|r| {
            r.mac == format_mac(&G9) && r.vlan == 4094 && r.port == "vif9.0" && !r.is_static
        })
    })
}

/// Assert that flow result `r` sent at least `min_sent` frames and lost none.
///
/// # Panics
/// When it did not.
pub fn assert_no_loss(what: &str, r: &FlowResult, min_sent: u32) {
    assert!(r.sent >= min_sent, "{what}: only {} frames sent", r.sent);
    assert!(
        r.missing.is_empty(),
        "{what}: {} of {} frames lost (first {:?})",
        r.missing.len(),
        r.sent,
        &r.missing[..r.missing.len().min(10)]
    );
}
